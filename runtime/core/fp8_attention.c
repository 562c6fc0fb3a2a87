/* fp8_attention.c - the oracle of the FP8 self-attention (fp8.h): what cuDNN's
 * FP8 SDPA computes from e4m3 Q, K, V with per-tensor scales, emulated on the
 * host with the same quantization steps (dots of e4m3 values and the sums in
 * f64, the rest in f32 in the order fp8.h gives). */
#include "runtime/core/fp8.h"

#include <math.h>
#include <stdlib.h>

#include "runtime/core/dtype.h"

float sk_fp8_value(uint8_t q) { return sk_f8e4m3_to_f32(q); }

float sk_fp8_frames_max_scale(float m, int64_t start, int64_t len, const float *scale,
                              int64_t scale_rows)
{
    for (int64_t f = start / scale_rows; len > 0 && f <= (start + len - 1) / scale_rows; f++)
        m = fmaxf(m, scale[f]);
    return m;
}

void sk_fp8_reencode_rows(uint8_t *out, const uint8_t *q8, int64_t start, int64_t len, int64_t row,
                          const float *scale, int64_t scale_rows, float sc)
{
    const float inv = 1.0f / sc; /* a power of two (or 0 for a non-finite frame): exact */
    for (int64_t r = 0; r < len; r++) {
        const float s = scale[(start + r) / scale_rows];
        const uint8_t *src = q8 + (start + r) * row;
        for (int64_t c = 0; c < row; c++)
            out[r * row + c] = sk_fp8_sat((sk_f8e4m3_to_f32(src[c]) * s) * inv);
    }
}

void sk_fp8_attention_rows(float *out, const uint8_t *q8, const uint8_t *k8, const uint8_t *v8,
                           int64_t Nk, int64_t NH, int64_t HD, int64_t i0, int64_t i1, float scale,
                           float sq, float sk, float sv)
{
    float lut[256];
    for (int b = 0; b < 256; b++) lut[b] = sk_f8e4m3_to_f32((uint8_t)b);
    float *s = malloc((size_t)(Nk > 0 ? Nk : 1) * sizeof *s);
    double *acc = malloc((size_t)HD * sizeof *acc);
    if (!s || !acc) { /* the oracle has no status: NaN output cannot pass a check */
        for (int64_t i = 0; i < (i1 - i0) * NH * HD; i++) out[i] = NAN;
        free(s), free(acc);
        return;
    }
    const int64_t row = NH * HD;
    for (int64_t i = i0; i < i1; i++)
        for (int64_t h = 0; h < NH; h++) {
            const uint8_t *qi = q8 + i * row + h * HD;
            float m = -INFINITY;
            for (int64_t j = 0; j < Nk; j++) {
                const uint8_t *kj = k8 + j * row + h * HD;
                double d = 0.0;
                for (int64_t c = 0; c < HD; c++) d += (double)lut[qi[c]] * lut[kj[c]];
                s[j] = (((float)d * scale) * sq) * sk;
                m = fmaxf(m, s[j]);
            }
            double Z = 0.0;
            for (int64_t c = 0; c < HD; c++) acc[c] = 0.0;
            for (int64_t j = 0; j < Nk; j++) {
                const float e = expf(s[j] - m);
                Z += e;
                const float p = lut[sk_fp8_sat(e * SK_FP8_P_SCALE)];
                if (p == 0.0f) continue;
                const uint8_t *vj = v8 + j * row + h * HD;
                for (int64_t c = 0; c < HD; c++) acc[c] += (double)p * lut[vj[c]];
            }
            float *o = out + (i - i0) * row + h * HD;
            for (int64_t c = 0; c < HD; c++)
                o[c] = Nk > 0 ? (((float)acc[c] / (float)Z) * SK_FP8_P_DESCALE) * sv : 0.0f;
        }
    free(s);
    free(acc);
}
