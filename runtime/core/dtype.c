/* dtype.c - see dtype.h. Bit-level conversions; no reliance on compiler
 * _Float16/__bf16 support so results are identical everywhere. */
#include "runtime/core/dtype.h"

#include <math.h>
#include <string.h>
#include <strings.h>

static const struct {
    const char *name, *st;
    size_t size;
    int is_float;
} k_dt[SK_DTYPE_COUNT_] = {
    [SK_DTYPE_F32] = {"f32", "F32", 4, 1},
    [SK_DTYPE_F16] = {"f16", "F16", 2, 1},
    [SK_DTYPE_BF16] = {"bf16", "BF16", 2, 1},
    [SK_DTYPE_F8_E4M3] = {"f8e4m3", "F8_E4M3", 1, 1},
    [SK_DTYPE_I32] = {"i32", "I32", 4, 0},
    [SK_DTYPE_I64] = {"i64", "I64", 8, 0},
    [SK_DTYPE_U8] = {"u8", "U8", 1, 0},
    [SK_DTYPE_F64] = {"f64", "F64", 8, 1},
};

size_t sk_dtype_size(sk_dtype t) { return (unsigned)t < SK_DTYPE_COUNT_ ? k_dt[t].size : 0; }
const char *sk_dtype_name(sk_dtype t) { return (unsigned)t < SK_DTYPE_COUNT_ ? k_dt[t].name : "?"; }
const char *sk_dtype_st_name(sk_dtype t) { return (unsigned)t < SK_DTYPE_COUNT_ ? k_dt[t].st : "?"; }
int sk_dtype_is_float(sk_dtype t) { return (unsigned)t < SK_DTYPE_COUNT_ && k_dt[t].is_float; }

sk_status sk_dtype_from_st_name(const char *s, sk_dtype *out)
{
    for (int i = 0; i < SK_DTYPE_COUNT_; i++)
        if (strcmp(s, k_dt[i].st) == 0) { *out = (sk_dtype)i; return SK_OK; }
    return SK_E_DTYPE;
}

sk_status sk_dtype_from_name(const char *s, sk_dtype *out)
{
    static const struct { const char *a; sk_dtype t; } alias[] = {
        {"f32", SK_DTYPE_F32}, {"fp32", SK_DTYPE_F32}, {"float32", SK_DTYPE_F32},
        {"f16", SK_DTYPE_F16}, {"fp16", SK_DTYPE_F16}, {"float16", SK_DTYPE_F16},
        {"bf16", SK_DTYPE_BF16}, {"bfloat16", SK_DTYPE_BF16},
        {"f8e4m3", SK_DTYPE_F8_E4M3}, {"fp8", SK_DTYPE_F8_E4M3}, {"f8_e4m3", SK_DTYPE_F8_E4M3},
    };
    for (size_t i = 0; i < sizeof alias / sizeof alias[0]; i++)
        if (strcasecmp(s, alias[i].a) == 0) { *out = alias[i].t; return SK_OK; }
    return SK_E_DTYPE;
}

static uint32_t f2u(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static float u2f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

uint16_t sk_f32_to_bf16(float f)
{
    uint32_t u = f2u(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1u); /* round to nearest even */
    return (uint16_t)(u >> 16);
}

float sk_bf16_to_f32(uint16_t h) { return u2f((uint32_t)h << 16); }

uint16_t sk_f32_to_f16(float f)
{
    uint32_t u = f2u(f);
    uint32_t sign = (u >> 16) & 0x8000u;
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00u);       /* NaN */
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);      /* >= 65520 rounds to Inf */
    if (a < 0x38800000u) {                                        /* below 2^-14: subnormal */
        /* value = a as float; f16 subnormal unit is 2^-24 */
        float v = u2f(a) * 16777216.0f; /* exact scaling by 2^24 */
        /* round half to even: nearbyint uses current mode (default RNE) */
        uint32_t m = (uint32_t)nearbyintf(v);
        return (uint16_t)(sign | m); /* m may be 0x400 = smallest normal, still correct */
    }
    uint32_t exp = ((a >> 23) - 127 + 15);
    uint32_t mant = a & 0x7fffffu;
    uint32_t h = (exp << 10) | (mant >> 13);
    uint32_t rem = mant & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) h++; /* may carry into exponent: fine */
    return (uint16_t)(sign | h);
}

float sk_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    if (exp == 0) {
        float v = (float)mant / 16777216.0f; /* mant * 2^-24, exact */
        return sign ? -v : v;
    }
    if (exp == 31) return u2f(sign | 0x7f800000u | (mant << 13));
    return u2f(sign | ((exp - 15 + 127) << 23) | (mant << 13));
}

uint8_t sk_f32_to_f8e4m3(float f)
{
    uint32_t u = f2u(f);
    uint8_t sign = (uint8_t)((u >> 24) & 0x80u);
    float a = fabsf(f);
    if (isnan(f) || a >= 480.0f) return (uint8_t)(sign | 0x7f);
    if (a < 0.015625f) { /* below 2^-6: subnormal, unit 2^-9 */
        uint32_t m = (uint32_t)nearbyintf(a * 512.0f);
        return (uint8_t)(sign | m); /* m == 8 is the smallest normal: correct encoding */
    }
    uint32_t au = f2u(a);
    uint32_t exp = (au >> 23) - 127 + 7;
    uint32_t mant = au & 0x7fffffu;
    uint32_t v = (exp << 3) | (mant >> 20);
    uint32_t rem = mant & 0xfffffu;
    if (rem > 0x80000u || (rem == 0x80000u && (v & 1u))) v++;
    if (v > 0x7e) v = 0x7e; /* [448, 480) -> 448 */
    return (uint8_t)(sign | v);
}

float sk_f8e4m3_to_f32(uint8_t v)
{
    float s = (v & 0x80) ? -1.0f : 1.0f;
    uint32_t exp = (v >> 3) & 0xfu;
    uint32_t mant = v & 0x7u;
    if (exp == 0xf && mant == 0x7) return NAN;
    if (exp == 0) return s * (float)mant / 512.0f;
    return s * ldexpf(1.0f + (float)mant / 8.0f, (int)exp - 7);
}

static float load_f(const void *p, sk_dtype t, size_t i)
{
    switch (t) {
    case SK_DTYPE_F32: return ((const float *)p)[i];
    case SK_DTYPE_F64: return (float)((const double *)p)[i];
    case SK_DTYPE_F16: return sk_f16_to_f32(((const uint16_t *)p)[i]);
    case SK_DTYPE_BF16: return sk_bf16_to_f32(((const uint16_t *)p)[i]);
    case SK_DTYPE_F8_E4M3: return sk_f8e4m3_to_f32(((const uint8_t *)p)[i]);
    default: return 0.0f;
    }
}

static void store_f(void *p, sk_dtype t, size_t i, float v)
{
    switch (t) {
    case SK_DTYPE_F32: ((float *)p)[i] = v; break;
    case SK_DTYPE_F64: ((double *)p)[i] = v; break;
    case SK_DTYPE_F16: ((uint16_t *)p)[i] = sk_f32_to_f16(v); break;
    case SK_DTYPE_BF16: ((uint16_t *)p)[i] = sk_f32_to_bf16(v); break;
    case SK_DTYPE_F8_E4M3: ((uint8_t *)p)[i] = sk_f32_to_f8e4m3(v); break;
    default: break;
    }
}

sk_status sk_convert(void *dst, sk_dtype dst_t, const void *src, sk_dtype src_t, size_t n)
{
    SK_CHECK(sk_dtype_is_float(dst_t) && sk_dtype_is_float(src_t), SK_E_DTYPE,
             "dtype: cannot convert %s to %s (float types only)", sk_dtype_name(src_t),
             sk_dtype_name(dst_t));
    if (dst_t == src_t) {
        if (dst != src) memmove(dst, src, n * sk_dtype_size(dst_t));
        return SK_OK;
    }
    if (src_t == SK_DTYPE_F64 && dst_t == SK_DTYPE_F32) {
        for (size_t i = 0; i < n; i++) ((float *)dst)[i] = (float)((const double *)src)[i];
        return SK_OK;
    }
    if (src_t == SK_DTYPE_BF16 && dst_t == SK_DTYPE_F32) {
        /* the common case (bf16 weights to a CPU backend): a shift, in a loop the compiler
         * vectorises, instead of a dtype switch per element; bits as sk_bf16_to_f32 */
        const uint16_t *s = src;
        uint32_t *d = dst;
        for (size_t i = 0; i < n; i++) d[i] = (uint32_t)s[i] << 16;
        return SK_OK;
    }
    if (dst_t == SK_DTYPE_F64) {
        for (size_t i = 0; i < n; i++) ((double *)dst)[i] = (double)load_f(src, src_t, i);
        return SK_OK;
    }
    /* f64 -> narrow types goes through f32: double rounding is possible but
     * nothing in sinkstream stores f64 weights. */
    for (size_t i = 0; i < n; i++) store_f(dst, dst_t, i, load_f(src, src_t, i));
    return SK_OK;
}

void sk_round_through(float *x, size_t n, sk_dtype t)
{
    for (size_t i = 0; i < n; i++) {
        switch (t) {
        case SK_DTYPE_F16: x[i] = sk_f16_to_f32(sk_f32_to_f16(x[i])); break;
        case SK_DTYPE_BF16: x[i] = sk_bf16_to_f32(sk_f32_to_bf16(x[i])); break;
        case SK_DTYPE_F8_E4M3: x[i] = sk_f8e4m3_to_f32(sk_f32_to_f8e4m3(x[i])); break;
        default: break;
        }
    }
}
