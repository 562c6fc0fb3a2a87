/* cuda_stub.c - stands in for the CUDA backend in builds without nvcc. */
#include "runtime/core/backend.h"

sk_status sk_backend_cuda_create(int device, sk_dtype act_dtype, sk_backend **out)
{
    (void)device; (void)act_dtype;
    *out = NULL;
    return SK_ERR(SK_E_UNSUPPORTED,
                  "cuda: this sinkstream was built without CUDA; rebuild with nvcc on PATH "
                  "(cmake -DSK_CUDA=ON) or use --device cpu");
}

#include <string.h>

#include "sk_cuda.h"

int sk_cuda_device_count(void) { return 0; }

void *sk_cuda_backend_stream(sk_backend *be)
{
    (void)be;
    return NULL;
}

sk_status sk_cuda_get_stats(sk_backend *be, sk_cuda_stats *out)
{
    (void)be;
    if (out) memset(out, 0, sizeof *out);
    return SK_ERR(SK_E_UNSUPPORTED, "this sinkstream was built without CUDA");
}

sk_status sk_cuda_timer_create(sk_backend *be, int cap, sk_cuda_timer **out)
{
    (void)be; (void)cap;
    if (out) *out = NULL;
    return SK_ERR(SK_E_UNSUPPORTED, "this sinkstream was built without CUDA");
}

void sk_cuda_timer_free(sk_cuda_timer **t)
{
    if (t) *t = NULL;
}

int sk_cuda_timer_mark(sk_cuda_timer *t)
{
    (void)t;
    return -1;
}

int sk_cuda_timer_count(const sk_cuda_timer *t)
{
    (void)t;
    return 0;
}

sk_status sk_cuda_timer_elapsed(sk_cuda_timer *t, int a, int b, float *ms)
{
    (void)t; (void)a; (void)b;
    if (ms) *ms = 0;
    return SK_ERR(SK_E_UNSUPPORTED, "this sinkstream was built without CUDA");
}

void sk_cuda_timer_reset(sk_cuda_timer *t) { (void)t; }

int sk_cuda_timer_mark_on(sk_cuda_timer *t, sk_backend *be)
{
    (void)t; (void)be;
    return -1;
}

sk_status sk_cuda_event_create(sk_cuda_event **out)
{
    if (out) *out = NULL;
    return SK_ERR(SK_E_UNSUPPORTED, "this sinkstream was built without CUDA");
}

void sk_cuda_event_free(sk_cuda_event **ev)
{
    if (ev) *ev = NULL;
}

sk_status sk_cuda_event_record(sk_cuda_event *ev, sk_backend *be)
{
    (void)ev; (void)be;
    return SK_ERR(SK_E_UNSUPPORTED, "this sinkstream was built without CUDA");
}

sk_status sk_cuda_event_wait(sk_backend *be, sk_cuda_event *ev)
{
    (void)ev; (void)be;
    return SK_ERR(SK_E_UNSUPPORTED, "this sinkstream was built without CUDA");
}

sk_status sk_cuda_event_sync(sk_cuda_event *ev)
{
    (void)ev;
    return SK_ERR(SK_E_UNSUPPORTED, "this sinkstream was built without CUDA");
}

sk_status sk_cuda_copy_async(sk_backend *be, void *dst, const void *src, size_t bytes)
{
    (void)be; (void)dst; (void)src; (void)bytes;
    return SK_ERR(SK_E_UNSUPPORTED, "this sinkstream was built without CUDA");
}

sk_status sk_cuda_download_async(sk_backend *be, void *host_dst, const void *src, size_t bytes)
{
    (void)be; (void)host_dst; (void)src; (void)bytes;
    return SK_ERR(SK_E_UNSUPPORTED, "this sinkstream was built without CUDA");
}

sk_status sk_cuda_host_alloc(size_t bytes, void **out)
{
    (void)bytes;
    if (out) *out = NULL;
    return SK_ERR(SK_E_UNSUPPORTED, "this sinkstream was built without CUDA");
}

void sk_cuda_host_free(void *p) { (void)p; }

int sk_cuda_backend_device(sk_backend *be)
{
    (void)be;
    return -1;
}

sk_status sk_cuda_timer_elapsed2(sk_cuda_timer *ta, int a, sk_cuda_timer *tb, int b, float *ms)
{
    (void)ta; (void)a; (void)tb; (void)b;
    if (ms) *ms = 0;
    return SK_ERR(SK_E_UNSUPPORTED, "this sinkstream was built without CUDA");
}

sk_status sk_cuda_attention_fp8_scalars(sk_backend *be, float out[6])
{
    (void)be;
    if (out) memset(out, 0, 6 * sizeof *out);
    return SK_ERR(SK_E_UNSUPPORTED, "this sinkstream was built without CUDA");
}
