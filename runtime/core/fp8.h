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

#ifdef __cplusplus
}
#endif
#endif
