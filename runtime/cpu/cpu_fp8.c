/* cpu_fp8.c - the FP8 ops on the CPU: the oracle of runtime/core/fp8.h, emulated
 * in f32 (quantize exactly as the hardware does, then compute on the e4m3
 * values, whose pairwise products are exact in f32).
 *
 * linear_fp8 runs an f32 linear on the raw e4m3 values (the reference's loops,
 * or the fast backend's sgemm: sk_cpu_linear_fp8_with, called directly, not
 * through the op table, so a profile counts it once) and applies the two
 * scales, the bias and the activation after it, in the order fp8.h defines.
 */
#include "cpu_internal.h"

#include <string.h>

#include "runtime/core/fp8.h"

sk_status sk_cpu_quantize_rows(sk_backend *be, sk_tensor *q, sk_tensor *s, const sk_tensor *x)
{
    (void)be;
    const int64_t M = x->shape[0], K = x->shape[1];
    const float *xd = (const float *)x->data; /* CPU activations are f32 (ops check) */
    uint8_t *qd = (uint8_t *)q->data;
    float *sd = (float *)s->data;
    for (int64_t m = 0; m < M; m++) sd[m] = sk_fp8_quantize_row(xd + m * K, K, qd + m * K);
    return SK_OK;
}

sk_status sk_cpu_quantize_rows_pow2(sk_backend *be, sk_tensor *q, sk_tensor *s, const sk_tensor *x)
{
    (void)be;
    const int64_t M = x->shape[0], K = x->shape[1];
    const float *xd = (const float *)x->data;
    uint8_t *qd = (uint8_t *)q->data;
    float *sd = (float *)s->data;
    for (int64_t m = 0; m < M; m++) sd[m] = sk_fp8_quantize_row_pow2(xd + m * K, K, qd + m * K);
    return SK_OK;
}

/* The fused norm + quantization ops' definition: the norm (this backend's, through its
 * table: the fast backend's own kernels), then quantize_rows of its output. */
sk_status sk_cpu_modulate_fp8(sk_backend *be, sk_tensor *y, sk_tensor *q, sk_tensor *s,
                              const sk_tensor *x, const sk_tensor *mod, int i_shift, int i_scale,
                              int64_t rows_per_group, int ln, float eps)
{
    SK_TRY(be->ops->modulate(be, y, x, mod, i_shift, i_scale, rows_per_group, ln, eps));
    return sk_cpu_quantize_rows(be, q, s, y);
}

sk_status sk_cpu_layernorm_fp8(sk_backend *be, sk_tensor *y, sk_tensor *q, sk_tensor *s,
                               const sk_tensor *x, const sk_tensor *w, const sk_tensor *b,
                               float eps)
{
    SK_TRY(be->ops->layernorm(be, y, x, w, b, eps));
    return sk_cpu_quantize_rows(be, q, s, y);
}

sk_status sk_cpu_linear_fp8_with(sk_backend *be, sk_tensor *y, const sk_tensor *q,
                                 const sk_tensor *sx, const sk_tensor *w, const sk_tensor *sw,
                                 const sk_tensor *b, sk_act act, sk_cpu_linear_fn linear)
{
    const int64_t M = q->shape[0], K = q->shape[1], N = w->shape[0];
    if (M == 0 || N == 0) return SK_OK;
    float *xf = NULL, *acc = NULL;
    SK_TRY(sk_cpu_scratch("linear_fp8", (size_t)(M * K) * sizeof(float), (void **)&xf));
    sk_status st = sk_cpu_scratch("linear_fp8", (size_t)(M * N) * sizeof(float), (void **)&acc);
    if (st != SK_OK) { free(xf); return st; }
    st = sk_convert(xf, SK_DTYPE_F32, q->data, SK_DTYPE_F8_E4M3, (size_t)(M * K));
    if (st == SK_OK) {
        int64_t xs[2] = {M, K}, ys[2] = {M, N};
        sk_tensor xt = sk_tensor_desc(SK_DTYPE_F32, 2, xs), at = sk_tensor_desc(SK_DTYPE_F32, 2, ys);
        xt.data = xf; xt.be = be;
        at.data = acc; at.be = be;
        st = linear(be, &at, &xt, w, NULL, SK_ACT_NONE);
    }
    if (st == SK_OK) {
        const float *sxd = (const float *)sx->data, *swd = (const float *)sw->data;
        float *yd = (float *)y->data;
        for (int64_t m = 0; m < M; m++)
            for (int64_t n = 0; n < N; n++) {
                float v = acc[m * N + n] * (sxd[m] * swd[n]);
                if (b) v += sk_cpu_ld(b->data, b->dtype, n);
                yd[m * N + n] = act == SK_ACT_NONE ? v : sk_cpu_act1(v, act);
            }
    }
    free(xf);
    free(acc);
    return st;
}

sk_status sk_cpu_linear_fp8(sk_backend *be, sk_tensor *y, const sk_tensor *q, const sk_tensor *sx,
                            const sk_tensor *w, const sk_tensor *sw, const sk_tensor *b,
                            sk_act act)
{
    return sk_cpu_linear_fp8_with(be, y, q, sx, w, sw, b, act, sk_cpu_linear);
}

/* FP8 self-attention: q, the concatenated keys and values quantized per tensor (the
 * FP8 KV cache's frames re-encoded to their largest scale instead; fp8.h), then the
 * oracle (runtime/core/fp8_attention.c) on the e4m3 values */
sk_status sk_cpu_attention_fp8(sk_backend *be, sk_tensor *out, const sk_tensor *q,
                               const sk_kv_range *ranges, int nranges, float scale)
{
    (void)be;
    const int64_t Nq = q->shape[0], NH = q->shape[1], HD = q->shape[2], row = NH * HD;
    int64_t Nk = 0;
    for (int r = 0; r < nranges; r++) Nk += ranges[r].len;
    const int kv8 = ranges[0].k->dtype == SK_DTYPE_F8_E4M3; /* the FP8 KV cache (ops checked) */
    float *kf = NULL, *vf = NULL; /* f32 copies of act-dtype keys/values (none for the cache) */
    uint8_t *q8 = NULL, *k8 = NULL, *v8 = NULL;
    sk_status st = SK_OK;
    if (!kv8)
        st = sk_cpu_scratch("attention_fp8", (size_t)(Nk * row) * sizeof(float), (void **)&kf);
    if (st == SK_OK && !kv8)
        st = sk_cpu_scratch("attention_fp8", (size_t)(Nk * row) * sizeof(float), (void **)&vf);
    if (st == SK_OK) st = sk_cpu_scratch("attention_fp8", (size_t)(Nq * row), (void **)&q8);
    if (st == SK_OK) st = sk_cpu_scratch("attention_fp8", (size_t)(Nk * row), (void **)&k8);
    if (st == SK_OK) st = sk_cpu_scratch("attention_fp8", (size_t)(Nk * row), (void **)&v8);
    if (st == SK_OK) {
        int64_t j = 0; /* the ranges concatenated (CPU activations are f32) */
        float sk = 0.0f, sv = 0.0f;
        if (kv8) /* fp8.h: the largest frame scale of the call, every frame re-encoded to it */
            for (int r = 0; r < nranges; r++) {
                const sk_kv_range *g = &ranges[r];
                sk = sk_fp8_frames_max_scale(sk, g->start, g->len, g->k_scale->data, g->scale_rows);
                sv = sk_fp8_frames_max_scale(sv, g->start, g->len, g->v_scale->data, g->scale_rows);
            }
        for (int r = 0; r < nranges; r++) {
            const sk_kv_range *g = &ranges[r];
            if (kv8) {
                sk_fp8_reencode_rows(k8 + j * row, g->k->data, g->start, g->len, row,
                                     g->k_scale->data, g->scale_rows, sk);
                sk_fp8_reencode_rows(v8 + j * row, g->v->data, g->start, g->len, row,
                                     g->v_scale->data, g->scale_rows, sv);
            } else {
                memcpy(kf + j * row, (const float *)g->k->data + g->start * row,
                       (size_t)(g->len * row) * sizeof(float));
                memcpy(vf + j * row, (const float *)g->v->data + g->start * row,
                       (size_t)(g->len * row) * sizeof(float));
            }
            j += g->len;
        }
        const float sq = sk_fp8_quantize_row((const float *)q->data, Nq * row, q8);
        if (!kv8) {
            sk = sk_fp8_quantize_row(kf, Nk * row, k8);
            sv = sk_fp8_quantize_row(vf, Nk * row, v8);
        }
        sk_fp8_attention_rows((float *)out->data, q8, k8, v8, Nk, NH, HD, 0, Nq, scale, sq, sk, sv);
    }
    free(kf), free(vf), free(q8), free(k8), free(v8);
    return st;
}
