/* cpu_conv.c - conv2d (NCHW, zero padding), pixel shuffle/unshuffle, nearest
 * upsampling, channel concat. Plain loops; conv gathers the input patch of a
 * block of output pixels (im2col for that block only) and accumulates in f32
 * over (input channel, kernel row, kernel column) in that order. */
#include "cpu_internal.h"

#include <string.h>

/* Output pixels per block: the gathered input patch col[K][SK_CONV_PB] of a
 * block is reused by every output channel, and the fixed width lets the
 * compiler vectorise the accumulation (as in cpu_linear.c). */
#define SK_CONV_PB 32

/* y[co, p0 + j] for two output channels at once over one pixel block:
 * acc = bias + sum_r w[co, r] * col[r][j], r = (ci, ky, kx) in that order. */
static void conv_block(float *y0, float *y1, const float *w0, const float *w1, float b0, float b1,
                       const float *col, int64_t K, int64_t pb)
{
    float acc0[SK_CONV_PB], acc1[SK_CONV_PB];
    for (int j = 0; j < SK_CONV_PB; j++) acc0[j] = b0, acc1[j] = b1;
    for (int64_t r = 0; r < K; r++) {
        const float a0 = w0[r], a1 = w1 ? w1[r] : 0.0f;
        const float *cr = col + r * SK_CONV_PB;
        for (int j = 0; j < SK_CONV_PB; j++) {
            acc0[j] += a0 * cr[j];
            acc1[j] += a1 * cr[j];
        }
    }
    for (int64_t j = 0; j < pb; j++) y0[j] = acc0[j];
    if (y1)
        for (int64_t j = 0; j < pb; j++) y1[j] = acc1[j];
}

sk_status sk_cpu_conv2d(sk_backend *be, sk_tensor *y, const sk_tensor *x, const sk_tensor *w,
                        const sk_tensor *b, int stride, int pad)
{
    const int64_t N = x->shape[0], Ci = x->shape[1], H = x->shape[2], W = x->shape[3];
    const int64_t Co = w->shape[0], KH = w->shape[2], KW = w->shape[3];
    const int64_t Ho = y->shape[2], Wo = y->shape[3], P = Ho * Wo, K = Ci * KH * KW;
    const float *xd = (const float *)x->data;
    float *yd = (float *)y->data;
    const float *wd;
    float *wown, *col;
    SK_TRY(sk_cpu_weight_f32(w, &wd, &wown));
    sk_status st = sk_cpu_scratch("conv2d", (size_t)K * SK_CONV_PB * sizeof(float), (void **)&col);
    if (st != SK_OK) {
        free(wown);
        return st;
    }
    for (int64_t n = 0; n < N; n++)
        for (int64_t p0 = 0; p0 < P; p0 += SK_CONV_PB) {
            const int64_t pb = P - p0 < SK_CONV_PB ? P - p0 : SK_CONV_PB;
            /* top-left input coordinate of each output pixel of the block */
            int64_t iy0[SK_CONV_PB], ix0[SK_CONV_PB];
            for (int64_t j = 0, oy = p0 / Wo, ox = p0 % Wo; j < pb; j++) {
                iy0[j] = oy * stride - pad;
                ix0[j] = ox * stride - pad;
                if (++ox == Wo) ox = 0, oy++;
            }
            /* gather the patch, zero outside the image and past the block */
            for (int64_t ci = 0; ci < Ci; ci++) {
                const float *xp = xd + (n * Ci + ci) * H * W;
                for (int64_t ky = 0; ky < KH; ky++)
                    for (int64_t kx = 0; kx < KW; kx++) {
                        float *cr = col + ((ci * KH + ky) * KW + kx) * SK_CONV_PB;
                        for (int64_t j = 0; j < pb; j++) {
                            const int64_t iy = iy0[j] + ky, ix = ix0[j] + kx;
                            cr[j] = (iy >= 0 && iy < H && ix >= 0 && ix < W) ? xp[iy * W + ix] : 0.0f;
                        }
                        for (int64_t j = pb; j < SK_CONV_PB; j++) cr[j] = 0.0f;
                    }
            }
            for (int64_t co = 0; co < Co; co += 2) {
                const int two = co + 1 < Co;
                const float b0 = b ? sk_cpu_ld(b->data, b->dtype, co) : 0.0f;
                const float b1 = (b && two) ? sk_cpu_ld(b->data, b->dtype, co + 1) : 0.0f;
                conv_block(yd + (n * Co + co) * P + p0, two ? yd + (n * Co + co + 1) * P + p0 : NULL,
                           wd + co * K, two ? wd + (co + 1) * K : NULL, b0, b1, col, K, pb);
            }
        }
    free(col);
    free(wown);
    return SK_OK;
}

sk_status sk_cpu_pixel_shuffle(sk_backend *be, sk_tensor *y, const sk_tensor *x, int p)
{
    const int64_t N = y->shape[0], C = y->shape[1], H = x->shape[2], W = x->shape[3];
    const float *xd = (const float *)x->data;
    float *yd = (float *)y->data;
    for (int64_t n = 0; n < N; n++)
        for (int64_t c = 0; c < C; c++)
            for (int64_t i = 0; i < p; i++)
                for (int64_t j = 0; j < p; j++) {
                    const float *xp = xd + ((n * C + c) * p * p + i * p + j) * H * W;
                    float *yp = yd + (n * C + c) * (H * p) * (W * p);
                    for (int64_t h = 0; h < H; h++)
                        for (int64_t w = 0; w < W; w++)
                            yp[(h * p + i) * (W * p) + w * p + j] = xp[h * W + w];
                }
    return SK_OK;
}

sk_status sk_cpu_pixel_unshuffle(sk_backend *be, sk_tensor *y, const sk_tensor *x, int p)
{
    const int64_t N = x->shape[0], C = x->shape[1], H = y->shape[2], W = y->shape[3];
    const float *xd = (const float *)x->data;
    float *yd = (float *)y->data;
    for (int64_t n = 0; n < N; n++)
        for (int64_t c = 0; c < C; c++)
            for (int64_t i = 0; i < p; i++)
                for (int64_t j = 0; j < p; j++) {
                    float *yp = yd + ((n * C + c) * p * p + i * p + j) * H * W;
                    const float *xp = xd + (n * C + c) * (H * p) * (W * p);
                    for (int64_t h = 0; h < H; h++)
                        for (int64_t w = 0; w < W; w++)
                            yp[h * W + w] = xp[(h * p + i) * (W * p) + w * p + j];
                }
    return SK_OK;
}

sk_status sk_cpu_upsample_nearest(sk_backend *be, sk_tensor *y, const sk_tensor *x, int s)
{
    const int64_t NC = x->shape[0] * x->shape[1], H = x->shape[2], W = x->shape[3];
    const int64_t Ho = H * s, Wo = W * s;
    const float *xd = (const float *)x->data;
    float *yd = (float *)y->data;
    for (int64_t nc = 0; nc < NC; nc++)
        for (int64_t oy = 0; oy < Ho; oy++) {
            const float *xr = xd + (nc * H + oy / s) * W;
            float *yr = yd + (nc * Ho + oy) * Wo;
            for (int64_t ox = 0; ox < Wo; ox++) yr[ox] = xr[ox / s];
        }
    return SK_OK;
}

sk_status sk_cpu_concat_channels(sk_backend *be, sk_tensor *y, const sk_tensor *a,
                                 const sk_tensor *b)
{
    const int64_t N = y->shape[0];
    const size_t na = (size_t)sk_tensor_inner(a, 1) * sizeof(float);
    const size_t nb = (size_t)sk_tensor_inner(b, 1) * sizeof(float);
    char *yd = (char *)y->data;
    for (int64_t n = 0; n < N; n++) {
        if (na) memcpy(yd + n * (na + nb), (const char *)a->data + n * na, na);
        if (nb) memcpy(yd + n * (na + nb) + na, (const char *)b->data + n * nb, nb);
    }
    return SK_OK;
}
