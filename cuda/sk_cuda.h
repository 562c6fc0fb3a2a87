/* sk_cuda.h - CUDA-backend extras for tools and GPU tests (C-callable).
 * Model code never needs this header: it talks to the backend through
 * runtime/core/backend.h only. */
#ifndef SK_CUDA_H
#define SK_CUDA_H

#include "runtime/core/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Number of CUDA devices usable now; 0 without a driver, a device or a CUDA
 * build (--device auto picks cuda when this is > 0). */
int sk_cuda_device_count(void);

/* The backend's CUDA stream (a cudaStream_t) so benchmarks can record events
 * on it; NULL when be is not a CUDA backend or the build has no CUDA. */
void *sk_cuda_backend_stream(sk_backend *be);
/* The backend's device index; -1 when be is not a CUDA backend. */
int sk_cuda_backend_device(sk_backend *be);

/* Graph counters since the backend was made (cuda_graph.cu). */
typedef struct {
    uint64_t captures;        /* recordings kept                                    */
    uint64_t instantiations;  /* of them made with cudaGraphInstantiate              */
    uint64_t updates;         /* of them patched into an older graph (ExecUpdate)    */
    uint64_t launches;
    double capture_ms;        /* host time recording + instantiating/updating        */
} sk_cuda_graph_counters;

typedef struct {
    char device_name[128];
    int sm_count, cc_major, cc_minor, driver_version, runtime_version;
    uint64_t device_mallocs;  /* every cudaMalloc the backend made so far             */
    size_t fixed_bytes;       /* cuBLASLt workspace + scratch (not in bytes_live)     */
    size_t mem_free, mem_total; /* cudaMemGetInfo now                                 */
    sk_cuda_graph_counters graphs;
} sk_cuda_stats;

/* SK_E_UNSUPPORTED when be is not a CUDA backend (or the build has no CUDA). */
sk_status sk_cuda_get_stats(sk_backend *be, sk_cuda_stats *out);

/* FP8 attention (cuda_attention_fp8.cu), for tests: the device scalars of the last
 * call: out[0..2] the dequant scales of q, k, v; out[3] amax of the probabilities
 * and out[4] of the output as cuDNN reported them (0 when the emulation ran);
 * out[5] the last call's path: 1 cuDNN with e4m3 output, 0 cuDNN with bf16
 * output, -1 the emulation kernel. */
sk_status sk_cuda_attention_fp8_scalars(sk_backend *be, float out[6]);

/* CUDA event marks on the backend's stream, for per-op timing. */
typedef struct sk_cuda_timer sk_cuda_timer;
sk_status sk_cuda_timer_create(sk_backend *be, int cap, sk_cuda_timer **out);
void sk_cuda_timer_free(sk_cuda_timer **t);
/* Records the next event; returns its index, or -1 when all cap are used. */
int sk_cuda_timer_mark(sk_cuda_timer *t);
int sk_cuda_timer_count(const sk_cuda_timer *t);
/* Waits for mark b; milliseconds from mark a to mark b. */
sk_status sk_cuda_timer_elapsed(sk_cuda_timer *t, int a, int b, float *ms);
/* Waits for mark b of tb; milliseconds from mark a of ta to it (timers of one device). */
sk_status sk_cuda_timer_elapsed2(sk_cuda_timer *ta, int a, sk_cuda_timer *tb, int b, float *ms);
/* Forgets the marks (after their times were read). */
void sk_cuda_timer_reset(sk_cuda_timer *t);


/* Marks mark `a` to the timer's own stream; sk_cuda_timer_mark_on records the
 * next mark on another CUDA backend's stream (same device) instead, so one
 * timer can time work spread over two backends. */
int sk_cuda_timer_mark_on(sk_cuda_timer *t, sk_backend *be);

/* ---- two backends on one device (two streams), for overlapping work such as
 * the VAE decode of chunk c with the DiT's chunk c+1 (tools/vae_pipe.c). Device
 * pointers of one CUDA backend are valid on another of the same device. */
typedef struct sk_cuda_event sk_cuda_event;
sk_status sk_cuda_event_create(sk_cuda_event **out);
void sk_cuda_event_free(sk_cuda_event **ev);
/* ev marks everything queued on be so far */
sk_status sk_cuda_event_record(sk_cuda_event *ev, sk_backend *be);
/* work queued on be from now on runs after ev */
sk_status sk_cuda_event_wait(sk_backend *be, sk_cuda_event *ev);
/* the host waits for ev */
sk_status sk_cuda_event_sync(sk_cuda_event *ev);
/* bytes device -> device on be's stream; src/dst may be any CUDA backend's memory */
sk_status sk_cuda_copy_async(sk_backend *be, void *dst, const void *src, size_t bytes);
/* bytes device -> host on be's stream without waiting (complete once an event
 * recorded after it has completed); host_dst should come from sk_cuda_host_alloc */
sk_status sk_cuda_download_async(sk_backend *be, void *host_dst, const void *src, size_t bytes);
/* page-locked host memory (fast asynchronous copies) */
sk_status sk_cuda_host_alloc(size_t bytes, void **out);
void sk_cuda_host_free(void *p);

#ifdef __cplusplus
}
#endif
#endif
