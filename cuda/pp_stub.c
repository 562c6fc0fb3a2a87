/* pp_stub.c - the pipeline transport's CUDA/NCCL entry points for builds that
 * lack them (cuda/pp_nccl.cu holds the real ones). Kept in cuda/ so that
 * runtime/pp stays free of build-feature switches of the layers above it. */
#include "runtime/pp/pp_transport.h"

/* ---- builds without NCCL (cuda/pp_nccl.cu holds the real ones) ---- */
#ifndef SK_HAVE_NCCL
int sk_pp_have_nccl(void) { return 0; }

sk_status sk_pp_transport_nccl(int n_stages, sk_backend *const *bes, size_t max_bytes, int depth,
                               sk_pp_transport **out)
{
    (void)n_stages; (void)bes; (void)max_bytes; (void)depth;
    if (out) *out = NULL;
    return SK_ERR(SK_E_UNSUPPORTED, "pipeline: this build has no NCCL (rebuild with CUDA and "
                  "NCCL found: nccl.h and libnccl); --pp-stages runs the stages over the "
                  "loopback transport instead");
}
#endif
#ifndef SK_HAVE_CUDA
sk_status sk_pp_bind_backend(sk_backend *be)
{
    (void)be;
    return SK_OK;
}
#endif
