/* fp8.h - row-wise FP8 (e4m3) quantization, the definition every backend follows.
 *
 * One f32 scale per row (a weight's output row, an activation's token row):
 *   amax  = max_k |x[k]|               (NaN ignored, as fmaxf does)
 *   inv   = 448 / amax                 (f32 division; amax 0 or not finite: see below)
 *   q[k]  = e4m3(x[k] * inv)           round to nearest even, saturated to +-448
 *                                      ("satfinite": a NaN stays NaN)
 *   scale = amax / 448                 (dequantized value: q[k] * scale)
 * A row of zeros gets inv = scale = 1 (q all zero). A row holding an Inf gets
 * inv = 0 and scale = Inf, so its products are NaN: a non-finite input stays
 * visible downstream (the chunk NaN check catches it).
 *
 * The FP8 linear then is
 *   y[m, n] = act(acc[m, n] * (sx[m] * sw[n]) + b[n]),  acc = sum_k qx[m, k] qw[n, k]
 * where every product of two e4m3 values is exact in f32.
 */
#ifndef SK_FP8_H
#define SK_FP8_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SK_FP8_MAX 448.0f

/* e4m3 of v with saturation to +-448 (NaN stays NaN): the hardware's satfinite cvt. */
uint8_t sk_fp8_sat(float v);
/* Quantizes one row of n f32 values into q (n bytes); returns the row's dequant scale. */
float sk_fp8_quantize_row(const float *x, int64_t n, uint8_t *q);
/* The pair (inv, scale) of a row with the given amax, as above. */
void sk_fp8_row_scales(float amax, float *inv, float *scale);
/* Power-of-two rules (the FP8 KV cache's frames): scale = 2^e with the smallest e
 * >= -126 (inv stays finite) such that amax / 448 (f32 division) <= 2^e;
 * inv = 2^-e (exact); q = e4m3(x * inv) as above; amax 0 or non-finite as above. */
void sk_fp8_row_scales_pow2(float amax, float *inv, float *scale);
float sk_fp8_quantize_row_pow2(const float *x, int64_t n, uint8_t *q);

/* FP8 self-attention (--dtype fp8; cuDNN's FP8 SDPA on Hopper, runtime/core/fp8_attention.c
 * is the oracle). Per-tensor e4m3 quantization (the row rules above over the whole tensor):
 *   sq: q [Nq, NH, HD];  sk: all keys of all ranges;  sv: all values of all ranges.
 * Then for each query row i and head h, with q8, k8, v8 the e4m3 values:
 *   s[j]  = ((q8[i,h] . k8[j,h]) * scale) * sq * sk          (f32, this order)
 *   m     = max_j s[j];  e[j] = exp(s[j] - m);  Z = sum_j e[j]   (f32 softmax)
 *   p8[j] = e4m3(e[j] * SK_FP8_P_SCALE)                       (satfinite, RNE)
 *   o[d]  = (sum_j p8[j] v8[j,h,d]) / Z * SK_FP8_P_DESCALE * sv
 * i.e. the probabilities are quantized unnormalized (the largest is 448) and the
 * sum Z comes from the f32 values, as flash attention defers the normalization;
 * cuDNN's kernel uses its running max where m is the final one (a different
 * e4m3 grid for rows whose max moves: up to sqrt(2)x the probabilities' own
 * rounding error, the device check's bound), and on Hopper it writes o in e4m3
 * (o * 448 / amax_v, dequantized after: one rounding more, cuda_attention_fp8.cu;
 * a bf16 o is cuDNN's on Blackwell only).
 *
 * The FP8 KV cache (runtime/kv, baked keys with FP8 self-attention): each cached
 * frame's K (and V), [S, NH, HD], is quantized as ONE row when it is written, with a
 * power-of-two scale (the pow2 rules below: s_f, bytes k8_f). A call over such
 * ranges takes as its sk the largest s_f of its keys (sv: of its values; no pass over
 * the data) and re-encodes every frame to it: k8 = e4m3(value(k8_f) * s_f * (1/sk)),
 * both products exact, so a byte changes only where the shift leaves e4m3's normal
 * range (below 2^-6: subnormals, rounded RNE): nested grids, one rounding in effect.
 * Then the attention above with those k8, v8, sk, sv. */
#define SK_FP8_P_SCALE 448.0f
#define SK_FP8_P_DESCALE (1.0f / 448.0f)

/* The oracle for rows [i0, i1) of that attention: out [(i1-i0), NH, HD] f32 from
 * q8 [Nq, NH, HD], k8/v8 [Nk, NH, HD] (keys already concatenated), the three
 * dequant scales and the softmax scale. Dots and sums in f64. */
void sk_fp8_attention_rows(float *out, const uint8_t *q8, const uint8_t *k8, const uint8_t *v8,
                           int64_t Nk, int64_t NH, int64_t HD, int64_t i0, int64_t i1, float scale,
                           float sq, float sk, float sv);
/* The FP8 KV cache in a call: the largest frame scale of rows [start, start+len)
 * (scale[r / scale_rows]; m: the running maximum to extend, 0 to start), and those
 * rows re-encoded to the call's scale sc into out [len, row] (e4m3). */
float sk_fp8_frames_max_scale(float m, int64_t start, int64_t len, const float *scale,
                              int64_t scale_rows);
void sk_fp8_reencode_rows(uint8_t *out, const uint8_t *q8, int64_t start, int64_t len, int64_t row,
                          const float *scale, int64_t scale_rows, float sc);
/* The e4m3 value of an encoding (exact in f32). */
float sk_fp8_value(uint8_t q);

#ifdef __cplusplus
}
#endif
#endif
