/* cpu_conv.c - conv2d (NCHW, zero padding), pixel shuffle/unshuffle, nearest
 * upsampling, channel concat. Plain loops; conv accumulates in f32 straight
 * into y, one (input channel, kernel tap) at a time over whole output rows. */
#include "cpu_internal.h"

#include <string.h>

sk_status sk_cpu_conv2d(sk_backend *be, sk_tensor *y, const sk_tensor *x, const sk_tensor *w,
                        const sk_tensor *b, int stride, int pad)
{
    const int64_t N = x->shape[0], Ci = x->shape[1], H = x->shape[2], W = x->shape[3];
    const int64_t Co = w->shape[0], KH = w->shape[2], KW = w->shape[3];
    const int64_t Ho = y->shape[2], Wo = y->shape[3];
    const float *xd = (const float *)x->data;
    float *yd = (float *)y->data;
    const float *wd;
    float *wown;
    SK_TRY(sk_cpu_weight_f32(w, &wd, &wown));

    for (int64_t n = 0; n < N; n++)
        for (int64_t co = 0; co < Co; co++) {
            float *yp = yd + (n * Co + co) * Ho * Wo;
            const float bv = b ? sk_cpu_ld(b->data, b->dtype, co) : 0.0f;
            for (int64_t i = 0; i < Ho * Wo; i++) yp[i] = bv;
            for (int64_t ci = 0; ci < Ci; ci++) {
                const float *xp = xd + (n * Ci + ci) * H * W;
                for (int64_t ky = 0; ky < KH; ky++)
                    for (int64_t kx = 0; kx < KW; kx++) {
                        const float wv = wd[((co * Ci + ci) * KH + ky) * KW + kx];
                        /* output columns whose input column ox*stride - pad + kx is inside */
                        const int64_t off = kx - pad;
                        int64_t ox0 = off >= 0 ? 0 : (-off + stride - 1) / stride;
                        int64_t ox1 = (W - 1 - off) >= 0 ? (W - 1 - off) / stride + 1 : 0;
                        if (ox1 > Wo) ox1 = Wo;
                        for (int64_t oy = 0; oy < Ho; oy++) {
                            const int64_t iy = oy * stride - pad + ky;
                            if (iy < 0 || iy >= H) continue;
                            const float *xr = xp + iy * W + off;
                            float *yr = yp + oy * Wo;
                            if (stride == 1)
                                sk_cpu_axpy(yr + ox0, wv, xr + ox0, ox1 - ox0);
                            else
                                for (int64_t ox = ox0; ox < ox1; ox++) yr[ox] += wv * xr[ox * stride];
                        }
                    }
            }
        }
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
