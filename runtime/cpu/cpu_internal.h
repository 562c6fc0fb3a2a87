/* cpu_internal.h - shared by the CPU reference backend's op files.
 *
 * The CPU backend is the oracle: plain loops, f32 accumulation (f64 for
 * normalisation statistics and softmax sums). Activations are always f32 here
 * (sk_op_* checked that); weights may be f32, f16 or bf16 and are converted
 * per element or into a scratch copy.
 */
#ifndef SK_CPU_INTERNAL_H
#define SK_CPU_INTERNAL_H

#include <stdint.h>
#include <stdlib.h>

#include "runtime/core/backend.h"

/* Element i of a float tensor's memory as f32. */
static inline float sk_cpu_ld(const void *p, sk_dtype t, int64_t i)
{
    switch (t) {
    case SK_DTYPE_F32: return ((const float *)p)[i];
    case SK_DTYPE_F16: return sk_f16_to_f32(((const uint16_t *)p)[i]);
    case SK_DTYPE_BF16: return sk_bf16_to_f32(((const uint16_t *)p)[i]);
    case SK_DTYPE_F8_E4M3: return sk_f8e4m3_to_f32(((const uint8_t *)p)[i]);
    case SK_DTYPE_F64: return (float)((const double *)p)[i];
    default: return 0.0f;
    }
}

/* y[i] += a * x[i]. Written as fixed 8-wide steps plus a scalar tail because
 * GCC's -O2 cost model only vectorises loops whose trip count is a known
 * multiple of the vector width; the arithmetic is the plain loop's. */
static inline void sk_cpu_axpy(float *restrict y, float a, const float *restrict x, int64_t n)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int t = 0; t < 8; t++) y[i + t] += a * x[i + t];
    for (; i < n; i++) y[i] += a * x[i];
}

/* f32 view of a weight: w's own memory when it is f32 (*owned = NULL), else a
 * converted malloc'd copy that the caller frees through *owned. */
sk_status sk_cpu_weight_f32(const sk_tensor *w, const float **out, float **owned);

/* scratch allocation with an op-named OOM message */
sk_status sk_cpu_scratch(const char *op, size_t bytes, void **out);

/* ops (argument checks already done by runtime/core/ops.c) */
sk_status sk_cpu_convert(sk_backend *be, sk_tensor *y, const sk_tensor *x);
sk_status sk_cpu_linear(sk_backend *be, sk_tensor *y, const sk_tensor *x, const sk_tensor *w,
                        const sk_tensor *b, sk_act act);
sk_status sk_cpu_layernorm(sk_backend *be, sk_tensor *y, const sk_tensor *x, const sk_tensor *w,
                           const sk_tensor *b, float eps);
sk_status sk_cpu_rmsnorm(sk_backend *be, sk_tensor *y, const sk_tensor *x, const sk_tensor *w,
                         float eps);
sk_status sk_cpu_modulate(sk_backend *be, sk_tensor *y, const sk_tensor *x, const sk_tensor *mod,
                          int i_shift, int i_scale, int64_t rows_per_group, int ln, float eps);
sk_status sk_cpu_gated_add(sk_backend *be, sk_tensor *x, const sk_tensor *y, const sk_tensor *mod,
                           int i_gate, int64_t rows_per_group);
sk_status sk_cpu_axpby(sk_backend *be, sk_tensor *y, float a, const sk_tensor *x, float b,
                       const sk_tensor *z);
sk_status sk_cpu_mul(sk_backend *be, sk_tensor *y, const sk_tensor *x, const sk_tensor *z);
sk_status sk_cpu_flag_nonfinite(sk_backend *be, const sk_tensor *x, void *flag);
sk_status sk_cpu_quantize_rows(sk_backend *be, sk_tensor *q, sk_tensor *s, const sk_tensor *x);
sk_status sk_cpu_quantize_rows_pow2(sk_backend *be, sk_tensor *q, sk_tensor *s, const sk_tensor *x);
sk_status sk_cpu_modulate_fp8(sk_backend *be, sk_tensor *y, sk_tensor *q, sk_tensor *s,
                              const sk_tensor *x, const sk_tensor *mod, int i_shift, int i_scale,
                              int64_t rows_per_group, int ln, float eps);
sk_status sk_cpu_layernorm_fp8(sk_backend *be, sk_tensor *y, sk_tensor *q, sk_tensor *s,
                               const sk_tensor *x, const sk_tensor *w, const sk_tensor *b,
                               float eps);
sk_status sk_cpu_attention_fp8(sk_backend *be, sk_tensor *out, const sk_tensor *q,
                               const sk_kv_range *ranges, int nranges, float scale);
sk_status sk_cpu_linear_fp8(sk_backend *be, sk_tensor *y, const sk_tensor *q, const sk_tensor *sx,
                            const sk_tensor *w, const sk_tensor *sw, const sk_tensor *b,
                            sk_act act);
typedef sk_status (*sk_cpu_linear_fn)(sk_backend *be, sk_tensor *y, const sk_tensor *x,
                                     const sk_tensor *w, const sk_tensor *b, sk_act act);
/* linear_fp8 with the given f32 linear (the reference's or the fast backend's) */
sk_status sk_cpu_linear_fp8_with(sk_backend *be, sk_tensor *y, const sk_tensor *q,
                                 const sk_tensor *sx, const sk_tensor *w, const sk_tensor *sw,
                                 const sk_tensor *b, sk_act act, sk_cpu_linear_fn linear);
sk_status sk_cpu_act(sk_backend *be, sk_tensor *y, const sk_tensor *x, sk_act act);
sk_status sk_cpu_attention(sk_backend *be, sk_tensor *out, const sk_tensor *q,
                           const sk_kv_range *ranges, int nranges, float scale,
                           const sk_tensor *bias);
sk_status sk_cpu_rope3d(sk_backend *be, sk_tensor *x, int64_t F, int64_t Hp, int64_t Wp,
                        int64_t t0, double theta);
sk_status sk_cpu_conv2d(sk_backend *be, sk_tensor *y, const sk_tensor *x, const sk_tensor *w,
                        const sk_tensor *b, int stride, int pad);
sk_status sk_cpu_pixel_shuffle(sk_backend *be, sk_tensor *y, const sk_tensor *x, int p);
sk_status sk_cpu_pixel_unshuffle(sk_backend *be, sk_tensor *y, const sk_tensor *x, int p);
sk_status sk_cpu_upsample_nearest(sk_backend *be, sk_tensor *y, const sk_tensor *x, int s);
sk_status sk_cpu_concat_channels(sk_backend *be, sk_tensor *y, const sk_tensor *a,
                                 const sk_tensor *b);
sk_status sk_cpu_transpose(sk_backend *be, sk_tensor *y, const sk_tensor *x);
sk_status sk_cpu_pad2d(sk_backend *be, sk_tensor *y, const sk_tensor *x, int top, int left);
sk_status sk_cpu_patchify(sk_backend *be, sk_tensor *y, const sk_tensor *x);
sk_status sk_cpu_unpatchify(sk_backend *be, sk_tensor *y, const sk_tensor *x);
sk_status sk_cpu_embedding(sk_backend *be, sk_tensor *y, const sk_tensor *table,
                           const sk_tensor *ids);
sk_status sk_cpu_noise(sk_backend *be, sk_tensor *y, uint64_t seed, int64_t frame0,
                       uint32_t stream);

/* scalar activation, shared by linear's epilogue and the act op */
float sk_cpu_act1(float v, sk_act act);

#endif
