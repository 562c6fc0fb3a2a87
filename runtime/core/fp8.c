/* fp8.c - row-wise e4m3 quantization on the host (see fp8.h). */
#include "runtime/core/fp8.h"

#include <math.h>

#include "runtime/core/dtype.h"

uint8_t sk_fp8_sat(float v)
{
    if (v > SK_FP8_MAX) v = SK_FP8_MAX;       /* NaN compares false: stays NaN */
    else if (v < -SK_FP8_MAX) v = -SK_FP8_MAX;
    return sk_f32_to_f8e4m3(v);
}

void sk_fp8_row_scales(float amax, float *inv, float *scale)
{
    if (amax == 0.0f) { *inv = 1.0f; *scale = 1.0f; return; }
    if (!isfinite(amax)) { *inv = 0.0f; *scale = INFINITY; return; }
    *inv = SK_FP8_MAX / amax;
    *scale = amax / SK_FP8_MAX;
}

void sk_fp8_row_scales_pow2(float amax, float *inv, float *scale)
{
    if (amax == 0.0f) { *inv = 1.0f; *scale = 1.0f; return; }
    if (!isfinite(amax)) { *inv = 0.0f; *scale = INFINITY; return; }
    int e = -126; /* the floor: inv = 2^126 stays finite (amax/448 may even underflow to 0) */
    const float r = amax / SK_FP8_MAX;
    if (r > 0x1p-126f) {
        const float m = frexpf(r, &e); /* r = m 2^e, m in [0.5, 1) */
        if (m == 0.5f) e -= 1;          /* a power of two itself */
    }
    *scale = ldexpf(1.0f, e);
    *inv = ldexpf(1.0f, -e);
}

/* one row by the given scale rules: amax, (inv, scale), q = e4m3(x * inv) */
static float quantize_row_by(const float *x, int64_t n, uint8_t *q,
                             void (*rules)(float, float *, float *))
{
    float amax = 0.0f;
    for (int64_t k = 0; k < n; k++) amax = fmaxf(amax, fabsf(x[k]));
    float inv, scale;
    rules(amax, &inv, &scale);
    for (int64_t k = 0; k < n; k++) q[k] = sk_fp8_sat(x[k] * inv);
    return scale;
}

float sk_fp8_quantize_row_pow2(const float *x, int64_t n, uint8_t *q)
{
    return quantize_row_by(x, n, q, sk_fp8_row_scales_pow2);
}

float sk_fp8_quantize_row(const float *x, int64_t n, uint8_t *q)
{
    return quantize_row_by(x, n, q, sk_fp8_row_scales);
}
