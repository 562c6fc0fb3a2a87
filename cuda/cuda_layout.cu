/* cuda_layout.cu - data movement ops: patchify/unpatchify (Wan patch 1x2x2),
 * embedding lookup, pixel (un)shuffle, nearest upsampling, channel concat.
 * One thread per OUTPUT element (coalesced writes, gathered reads). */
#include "cuda_internal.h"

__global__ void k_patchify(void *y, int yt, const void *x, int xt, int64_t C, int64_t H,
                           int64_t W, int64_t n)
{
    const int64_t Hp = H / 2, Wp = W / 2, C4 = C * 4;
    SK_GRID_STRIDE(i, n)
    {
        int64_t tok = i / C4, k = i - tok * C4;
        int64_t c = k / 4, q = (k / 2) & 1, r = k & 1;
        int64_t f = tok / (Hp * Wp), rem = tok - f * Hp * Wp;
        int64_t hp = rem / Wp, wp = rem - hp * Wp;
        sk_st(y, yt, i, sk_ld(x, xt, ((f * C + c) * H + 2 * hp + q) * W + 2 * wp + r));
    }
}

__global__ void k_unpatchify(void *y, int yt, const void *x, int xt, int64_t C, int64_t H,
                             int64_t W, int64_t n)
{
    const int64_t Hp = H / 2, Wp = W / 2;
    SK_GRID_STRIDE(i, n)
    {
        int64_t w = i % W, t = i / W;
        int64_t h = t % H;
        t /= H;
        int64_t c = t % C, f = t / C;
        int64_t tok = (f * Hp + h / 2) * Wp + w / 2;
        int64_t q = h & 1, r = w & 1;
        sk_st(y, yt, i, sk_ld(x, xt, tok * 4 * C + (q * 2 + r) * C + c));
    }
}

__global__ void k_embedding(void *y, int yt, const void *tab, int tt, const int32_t *ids,
                            int64_t rows, int64_t D, int64_t n, int *err)
{
    SK_GRID_STRIDE(i, n)
    {
        int64_t t = i / D, d = i - t * D;
        int64_t id = ids[t];
        if (id < 0 || id >= rows) {
            if (d == 0) atomicOr(err, SK_CUDA_ERR_EMBED_RANGE);
            id = id < 0 ? 0 : rows - 1;
        }
        sk_st(y, yt, i, sk_ld(tab, tt, id * D + d));
    }
}

/* y[N,C,H*p,W*p](c, h*p+i, w*p+j) = x[N,C*p*p,H,W](c*p*p+i*p+j, h, w) */
__global__ void k_pixel_shuffle(void *y, int yt, const void *x, int xt, int64_t C, int64_t H,
                                int64_t W, int p, int64_t n)
{
    const int64_t Ho = H * p, Wo = W * p;
    SK_GRID_STRIDE(o, n)
    {
        int64_t wo = o % Wo, t = o / Wo;
        int64_t ho = t % Ho;
        t /= Ho;
        int64_t c = t % C, b = t / C;
        int64_t h = ho / p, i = ho - h * p, w = wo / p, j = wo - w * p;
        int64_t ci = c * p * p + i * p + j;
        sk_st(y, yt, o, sk_ld(x, xt, ((b * C * p * p + ci) * H + h) * W + w));
    }
}

/* inverse: y[N,C*p*p,H/p,W/p](c*p*p+i*p+j, h, w) = x[N,C,H,W](c, h*p+i, w*p+j) */
__global__ void k_pixel_unshuffle(void *y, int yt, const void *x, int xt, int64_t C, int64_t H,
                                  int64_t W, int p, int64_t n)
{
    const int64_t Ho = H / p, Wo = W / p, Co = C * p * p;
    SK_GRID_STRIDE(o, n)
    {
        int64_t w = o % Wo, t = o / Wo;
        int64_t h = t % Ho;
        t /= Ho;
        int64_t co = t % Co, b = t / Co;
        int64_t c = co / (p * p), k = co - c * p * p, i = k / p, j = k - i * p;
        sk_st(y, yt, o, sk_ld(x, xt, ((b * C + c) * H + h * p + i) * W + w * p + j));
    }
}

__global__ void k_upsample(void *y, int yt, const void *x, int xt, int64_t H, int64_t W, int s,
                           int64_t n)
{
    const int64_t Ho = H * s, Wo = W * s;
    SK_GRID_STRIDE(o, n)
    {
        int64_t wo = o % Wo, t = o / Wo;
        int64_t ho = t % Ho, nc = t / Ho;
        sk_st(y, yt, o, sk_ld(x, xt, (nc * H + ho / s) * W + wo / s));
    }
}

__global__ void k_concat(void *y, int yt, const void *a, int at, const void *b, int bt,
                         int64_t Ca, int64_t Cb, int64_t HW, int64_t n)
{
    const int64_t Cy = Ca + Cb;
    SK_GRID_STRIDE(o, n)
    {
        int64_t hw = o % HW, t = o / HW;
        int64_t c = t % Cy, bn = t / Cy;
        float v = c < Ca ? sk_ld(a, at, (bn * Ca + c) * HW + hw)
                         : sk_ld(b, bt, (bn * Cb + (c - Ca)) * HW + hw);
        sk_st(y, yt, o, v);
    }
}

#define LAUNCH(op, n, kern, ...)                                                         \
    do {                                                                                 \
        if ((n) > 0) {                                                                   \
            kern<<<sk_cuda_blocks((n), 256), 256, 0, sk_cuda(be)->stream>>>(__VA_ARGS__); \
            SK_CU_LAUNCH(op);                                                            \
        }                                                                                \
        return SK_OK;                                                                    \
    } while (0)

extern "C" sk_status sk_cuda_patchify(sk_backend *be, sk_tensor *y, const sk_tensor *x)
{
    SK_CHECK(x->ndim == 4, SK_E_SHAPE, "cuda patchify: x must be [F, C, H, W]");
    int64_t n = sk_tensor_numel(y);
    LAUNCH("patchify", n, k_patchify, y->data, y->dtype, x->data, x->dtype, x->shape[1],
           x->shape[2], x->shape[3], n);
}

extern "C" sk_status sk_cuda_unpatchify(sk_backend *be, sk_tensor *y, const sk_tensor *x)
{
    SK_CHECK(y->ndim == 4, SK_E_SHAPE, "cuda unpatchify: y must be [F, C, H, W]");
    int64_t n = sk_tensor_numel(y);
    LAUNCH("unpatchify", n, k_unpatchify, y->data, y->dtype, x->data, x->dtype, y->shape[1],
           y->shape[2], y->shape[3], n);
}

extern "C" sk_status sk_cuda_embedding(sk_backend *be, sk_tensor *y, const sk_tensor *table,
                                       const sk_tensor *ids)
{
    SK_CHECK(table->ndim == 2 && ids->dtype == SK_DTYPE_I32, SK_E_SHAPE,
             "cuda embedding: table must be [V, D] and ids i32");
    int64_t n = sk_tensor_numel(y);
    LAUNCH("embedding", n, k_embedding, y->data, y->dtype, table->data, table->dtype,
           (const int32_t *)ids->data, table->shape[0], table->shape[1], n, sk_cuda(be)->err_flag);
}

extern "C" sk_status sk_cuda_pixel_shuffle(sk_backend *be, sk_tensor *y, const sk_tensor *x,
                                           int p)
{
    int64_t n = sk_tensor_numel(y);
    LAUNCH("pixel_shuffle", n, k_pixel_shuffle, y->data, y->dtype, x->data, x->dtype, y->shape[1],
           x->shape[2], x->shape[3], p, n);
}

extern "C" sk_status sk_cuda_pixel_unshuffle(sk_backend *be, sk_tensor *y, const sk_tensor *x,
                                             int p)
{
    int64_t n = sk_tensor_numel(y);
    LAUNCH("pixel_unshuffle", n, k_pixel_unshuffle, y->data, y->dtype, x->data, x->dtype,
           x->shape[1], x->shape[2], x->shape[3], p, n);
}

extern "C" sk_status sk_cuda_upsample_nearest(sk_backend *be, sk_tensor *y, const sk_tensor *x,
                                              int s)
{
    int64_t n = sk_tensor_numel(y);
    LAUNCH("upsample_nearest", n, k_upsample, y->data, y->dtype, x->data, x->dtype, x->shape[2],
           x->shape[3], s, n);
}

extern "C" sk_status sk_cuda_concat_channels(sk_backend *be, sk_tensor *y, const sk_tensor *a,
                                             const sk_tensor *b)
{
    int64_t n = sk_tensor_numel(y);
    LAUNCH("concat_channels", n, k_concat, y->data, y->dtype, a->data, a->dtype, b->data,
           b->dtype, a->shape[1], b->shape[1], a->shape[2] * a->shape[3], n);
}
