/* cpu_vae_layout.c - transpose and pad2d, the layout ops of the Wan2.2 VAE
 * encoder (backend.h). Plain copies: exact, no arithmetic. */
#include "cpu_internal.h"

#include <string.h>

/* Blocks of 32x32 keep both the read and the write side in cache. */
#define SK_TR_BLOCK 32

sk_status sk_cpu_transpose(sk_backend *be, sk_tensor *y, const sk_tensor *x)
{
    const int64_t B = x->shape[0], M = x->shape[1], N = x->shape[2];
    const float *xd = (const float *)x->data;
    float *yd = (float *)y->data;
    for (int64_t b = 0; b < B; b++) {
        const float *xb = xd + b * M * N;
        float *yb = yd + b * M * N;
        for (int64_t m0 = 0; m0 < M; m0 += SK_TR_BLOCK)
            for (int64_t n0 = 0; n0 < N; n0 += SK_TR_BLOCK) {
                const int64_t m1 = m0 + SK_TR_BLOCK < M ? m0 + SK_TR_BLOCK : M;
                const int64_t n1 = n0 + SK_TR_BLOCK < N ? n0 + SK_TR_BLOCK : N;
                for (int64_t n = n0; n < n1; n++)
                    for (int64_t m = m0; m < m1; m++) yb[n * M + m] = xb[m * N + n];
            }
    }
    return SK_OK;
}

sk_status sk_cpu_pad2d(sk_backend *be, sk_tensor *y, const sk_tensor *x, int top, int left)
{
    const int64_t NC = x->shape[0] * x->shape[1], H = x->shape[2], W = x->shape[3];
    const int64_t Ho = y->shape[2], Wo = y->shape[3];
    const float *xd = (const float *)x->data;
    float *yd = (float *)y->data;
    memset(yd, 0, (size_t)(NC * Ho * Wo) * sizeof *yd);
    for (int64_t nc = 0; nc < NC; nc++)
        for (int64_t h = 0; h < H; h++)
            memcpy(yd + (nc * Ho + h + top) * Wo + left, xd + (nc * H + h) * W,
                   (size_t)W * sizeof *yd);
    return SK_OK;
}
