/* cuda_conv.cu - conv2d (NCHW, weights [Co, Ci, kh, kw], zero padding).
 *
 * Direct convolution: one thread per output element, f32 accumulation. A warp
 * covers consecutive output columns of one channel, so weight reads are
 * broadcasts and input reads are coalesced (stride 1) rows.
 * TODO(speed): implicit GEMM on tensor cores for TAEHV's 3x3 64-channel convs.
 */
#include "cuda_internal.h"

__global__ void k_conv2d(void *y, int yt, const void *x, int xt, const void *w, int wt,
                         const void *b, int bt, int64_t Ci, int64_t H, int64_t W, int64_t Co,
                         int64_t Ho, int64_t Wo, int kh, int kw, int stride, int pad, int64_t n)
{
    SK_GRID_STRIDE(o, n)
    {
        int64_t wo = o % Wo, t = o / Wo;
        int64_t ho = t % Ho;
        t /= Ho;
        int64_t co = t % Co, bn = t / Co;
        float acc = b ? sk_ld(b, bt, co) : 0.0f;
        const int64_t h0 = ho * stride - pad, w0 = wo * stride - pad;
        for (int64_t ci = 0; ci < Ci; ci++) {
            const int64_t xb = (bn * Ci + ci) * H;
            const int64_t wb = (co * Ci + ci) * kh;
            for (int i = 0; i < kh; i++) {
                int64_t h = h0 + i;
                if (h < 0 || h >= H) continue;
                for (int j = 0; j < kw; j++) {
                    int64_t ww = w0 + j;
                    if (ww < 0 || ww >= W) continue;
                    acc += sk_ld(x, xt, (xb + h) * W + ww) * sk_ld(w, wt, (wb + i) * kw + j);
                }
            }
        }
        sk_st(y, yt, o, acc);
    }
}

extern "C" sk_status sk_cuda_conv2d(sk_backend *be, sk_tensor *y, const sk_tensor *x,
                                    const sk_tensor *w, const sk_tensor *b, int stride, int pad)
{
    SK_CHECK(x->ndim == 4 && w->ndim == 4 && y->ndim == 4, SK_E_SHAPE,
             "cuda conv2d: x, w, y must be 4-D");
    int64_t n = sk_tensor_numel(y);
    if (n == 0) return SK_OK;
    k_conv2d<<<sk_cuda_blocks(n, 256), 256, 0, sk_cuda(be)->stream>>>(
        y->data, y->dtype, x->data, x->dtype, w->data, w->dtype, b ? b->data : NULL,
        b ? b->dtype : 0, x->shape[1], x->shape[2], x->shape[3], y->shape[1], y->shape[2],
        y->shape[3], (int)w->shape[2], (int)w->shape[3], stride, pad, n);
    SK_CU_LAUNCH("conv2d");
    return SK_OK;
}
