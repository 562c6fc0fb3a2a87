/* pp_transport.h - how pipeline stages pass activations (pp_plan.h).
 *
 * The stages form a ring of one-way FIFO links, link k from stage k to
 * stage (k + 1) % n: hidden states go down the pipeline, the sampler's
 * latents come back from the last stage to stage 0 (with one stage, the
 * link is a self-loop). Every message is a small header (which task it
 * belongs to) plus the bytes of a few tensors of the sender's backend. The
 * schedule is deterministic, so a receiver knows what comes next: recv()
 * gets the header it expects and fails (SK_E_INTERNAL) on any other.
 *
 * Each stage's thread uses only its own stage's ends (send on its outgoing
 * link, recv on its incoming one) and its own backend; abort() may be
 * called from any thread and makes every blocked or later call fail.
 *
 * Implementations:
 *  - loopback: threads of one process, links are bounded queues of host
 *    buffers (tensors go through sk_tensor_download_raw / upload_raw). Any
 *    backends, also several stages on one GPU. Used by the CPU tests.
 *  - NCCL (cuda/pp_nccl.cu, built when NCCL is found): one GPU per stage, a
 *    two-rank communicator per link, ncclSend/ncclRecv on per-stage send and
 *    receive CUDA streams ordered against the backend's stream by events,
 *    `depth` device slots per link so the compute stream never waits for a
 *    peer. NCCL_NVLS_ENABLE=0 is forced before any communicator exists.
 */
#ifndef SK_PP_TRANSPORT_H
#define SK_PP_TRANSPORT_H

#include <stdint.h>

#include "runtime/core/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SK_PP_MAGIC 0x53505031u /* "SPP1" */

typedef enum { SK_PP_MSG_HIDDEN = 1, SK_PP_MSG_LATENT = 2 } sk_pp_msg_kind;

typedef struct {
    uint32_t magic, kind;        /* SK_PP_MAGIC, sk_pp_msg_kind */
    int32_t lane, chunk, pass;   /* the task the payload is the input of */
    int32_t reserved;
    int64_t frame0, n_frames;    /* the chunk's latent frames */
    uint64_t bytes;              /* payload bytes */
    float t;                     /* the pass's timestep */
    uint32_t pad;
} sk_pp_header;

typedef struct sk_pp_transport sk_pp_transport;

typedef struct {
    const char *name;
    /* Prepares the calling thread to act as stage `stage` (CUDA: its device). */
    sk_status (*bind)(sk_pp_transport *t, int stage);
    /* Sends h plus tensors ts[0..n) (on stage `from`'s backend) over link
     * `from`. Returns once the tensors may be overwritten. */
    sk_status (*send)(sk_pp_transport *t, int from, const sk_pp_header *h, sk_tensor *const *ts,
                      int n);
    /* Receives the next message of the link into stage `to` (link
     * (to - 1 + n) % n) into ts (same sizes as sent); its header must equal
     * *expect (bytes included). */
    sk_status (*recv)(sk_pp_transport *t, int to, const sk_pp_header *expect, sk_tensor *const *ts,
                      int n);
    /* Waits until everything stage `stage` sent has been delivered. */
    sk_status (*flush)(sk_pp_transport *t, int stage);
    void (*abort)(sk_pp_transport *t);
    void (*destroy)(sk_pp_transport *t);
} sk_pp_transport_ops;

struct sk_pp_transport {
    const sk_pp_transport_ops *ops;
    int n_stages;
    size_t max_bytes;  /* largest payload */
    int depth;         /* messages a link buffers */
    void *impl;
};

/* Loopback links of `depth` messages of up to max_bytes each (allocated now). */
sk_status sk_pp_transport_loopback(int n_stages, size_t max_bytes, int depth,
                                   sk_pp_transport **out);
/* NCCL over the CUDA backends bes[0..n_stages) (distinct devices when
 * n_stages > 1). SK_E_UNSUPPORTED when the build has no NCCL. */
sk_status sk_pp_transport_nccl(int n_stages, sk_backend *const *bes, size_t max_bytes, int depth,
                               sk_pp_transport **out);
/* 1 when this build has the NCCL transport. */
int sk_pp_have_nccl(void);
/* Makes the calling thread use be's device (CUDA; a no-op elsewhere). */
sk_status sk_pp_bind_backend(sk_backend *be);

void sk_pp_transport_free(sk_pp_transport **t);
/* "hidden of lane 0 chunk 3 pass 4 (frames 9..11, t 0)" */
const char *sk_pp_header_str(const sk_pp_header *h, char *buf, size_t cap);

#ifdef __cplusplus
}
#endif
#endif
