/* cpu_fast_math.h - exp and the activations in single precision, written
 * so that GCC vectorises them at -O2 (fixed 8-wide blocks, no calls, no
 * branches): libm's expf/tanhf are scalar calls and were a quarter of a CPU
 * forward (softmax over tens of thousands of keys, GELU of the FFN).
 *
 * exp: Cephes' expf scheme (range reduction by ln 2 in two parts, degree-6
 * polynomial, 2^n by exponent bits), within 2 ulp of expf on [-87, 88];
 * inputs below -87 give exp(-87) ~ 1.6e-38 instead of a denormal or 0; NaN
 * stays NaN. */
#ifndef SK_CPU_FAST_MATH_H
#define SK_CPU_FAST_MATH_H

#include <stdint.h>
#include <string.h>

static inline float sk_fexp(float x)
{
    x = x < -87.0f ? -87.0f : x;
    x = x > 88.0f ? 88.0f : x;
    const float t = x * 1.44269504088896341f + 12582912.0f; /* round(x / ln 2) in the low bits */
    const float n = t - 12582912.0f;
    /* unsigned: for a NaN input t's bits are any pattern, and a signed shift or
     * subtraction of them would be undefined (UBSan); the bits are the same */
    uint32_t ti;
    memcpy(&ti, &t, sizeof ti);
    const uint32_t ni = ti - 0x4B400000u;
    const float r = (x - n * 0.693359375f) - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    const uint32_t si = (ni + 127u) << 23;
    float s;
    memcpy(&s, &si, sizeof s);
    return p * s;
}

/* tanh(x) = 1 - 2 / (exp(2x) + 1): exact limits +-1, NaN stays NaN */
static inline float sk_ftanh(float x) { return 1.0f - 2.0f / (sk_fexp(2.0f * x) + 1.0f); }

static inline float sk_fgelu_tanh(float v)
{
    return 0.5f * v * (1.0f + sk_ftanh(0.7978845608f * (v + 0.044715f * v * v * v)));
}

static inline float sk_fsilu(float v) { return v / (1.0f + sk_fexp(-v)); }

#endif
