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

float sk_fp8_quantize_row(const float *x, int64_t n, uint8_t *q)
{
    float amax = 0.0f;
    for (int64_t k = 0; k < n; k++) amax = fmaxf(amax, fabsf(x[k]));
    float inv, scale;
    sk_fp8_row_scales(amax, &inv, &scale);
    for (int64_t k = 0; k < n; k++) q[k] = sk_fp8_sat(x[k] * inv);
    return scale;
}
