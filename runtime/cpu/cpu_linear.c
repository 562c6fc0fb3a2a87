/* cpu_linear.c - y[M,N] = act(x[M,K] . w[N,K]^T + b[N]) on the CPU.
 *
 * Plain loops, f32 accumulation in k order. To stay fast without SIMD
 * intrinsics or threads, w is handled in blocks of SK_LIN_NB output columns:
 * the block is transposed (and converted to f32) into wt[K][SK_LIN_NB], then
 * every row of x sweeps it with an axpy over a fixed-width accumulator, which
 * the compiler vectorises (fixed trip count, no reassociation needed).
 */
#include "cpu_internal.h"

#include <math.h>
#include <string.h>

#define SK_LIN_NB 32

float sk_cpu_act1(float v, sk_act act)
{
    switch (act) {
    case SK_ACT_NONE: return v;
    case SK_ACT_GELU_TANH: {
        double x = v;
        return (float)(0.5 * x * (1.0 + tanh(0.79788456080286535588 * (x + 0.044715 * x * x * x))));
    }
    case SK_ACT_SILU: {
        double x = v;
        return (float)(x / (1.0 + exp(-x)));
    }
    case SK_ACT_RELU: return v > 0.0f ? v : (v == v ? 0.0f : v); /* NaN stays NaN */
    case SK_ACT_TANH_CLAMP: return (float)(3.0 * tanh((double)v / 3.0));
    case SK_ACT_CLAMP01:
        if (v != v) return v;
        return v < 0.0f ? 0.0f : (v > 1.0f ? 1.0f : v);
    default: return v;
    }
}

static void store_row(float *y, const float *acc, int64_t nb, sk_act act)
{
    if (act == SK_ACT_NONE)
        for (int64_t j = 0; j < nb; j++) y[j] = acc[j];
    else
        for (int64_t j = 0; j < nb; j++) y[j] = sk_cpu_act1(acc[j], act);
}

sk_status sk_cpu_linear(sk_backend *be, sk_tensor *y, const sk_tensor *x, const sk_tensor *w,
                        const sk_tensor *b, sk_act act)
{
    const int64_t M = x->shape[0], K = x->shape[1], N = w->shape[0];
    const float *xd = (const float *)x->data;
    float *yd = (float *)y->data;
    float *wt;
    SK_TRY(sk_cpu_scratch("linear", (size_t)K * SK_LIN_NB * sizeof(float), (void **)&wt));
    /* y must not alias x: block n0's outputs are written while later blocks
     * still read the same rows of x. */
    for (int64_t n0 = 0; n0 < N; n0 += SK_LIN_NB) {
        const int64_t nb = N - n0 < SK_LIN_NB ? N - n0 : SK_LIN_NB;
        float bias[SK_LIN_NB];
        for (int64_t j = 0; j < SK_LIN_NB; j++)
            bias[j] = (b && j < nb) ? sk_cpu_ld(b->data, b->dtype, n0 + j) : 0.0f;
        for (int64_t k = 0; k < K; k++) {
            float *row = wt + k * SK_LIN_NB;
            for (int64_t j = 0; j < nb; j++) row[j] = sk_cpu_ld(w->data, w->dtype, (n0 + j) * K + k);
            for (int64_t j = nb; j < SK_LIN_NB; j++) row[j] = 0.0f;
        }
        /* two rows of x at a time: each wt row loaded once feeds both */
        int64_t i = 0;
        for (; i + 2 <= M; i += 2) {
            float acc0[SK_LIN_NB], acc1[SK_LIN_NB];
            const float *x0 = xd + i * K, *x1 = x0 + K;
            memcpy(acc0, bias, sizeof acc0);
            memcpy(acc1, bias, sizeof acc1);
            for (int64_t k = 0; k < K; k++) {
                const float a0 = x0[k], a1 = x1[k];
                const float *wk = wt + k * SK_LIN_NB;
                for (int j = 0; j < SK_LIN_NB; j++) {
                    acc0[j] += a0 * wk[j];
                    acc1[j] += a1 * wk[j];
                }
            }
            store_row(yd + i * N + n0, acc0, nb, act);
            store_row(yd + (i + 1) * N + n0, acc1, nb, act);
        }
        for (; i < M; i++) {
            float acc[SK_LIN_NB];
            const float *xi = xd + i * K;
            memcpy(acc, bias, sizeof acc);
            for (int64_t k = 0; k < K; k++) {
                const float xv = xi[k];
                const float *wk = wt + k * SK_LIN_NB;
                for (int j = 0; j < SK_LIN_NB; j++) acc[j] += xv * wk[j];
            }
            store_row(yd + i * N + n0, acc, nb, act);
        }
    }
    free(wt);
    return SK_OK;
}
