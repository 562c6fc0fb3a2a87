/* test_dtype.c - the exact conversions of runtime/core/dtype.h: round to nearest
 * even on exact halfway cases, subnormals, overflow, NaN, and exhaustive
 * decode->encode round trips of every bf16, f16 and fp8-e4m3 bit pattern. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "runtime/core/dtype.h"

static float u2f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

Test(dtype, bf16_round_to_nearest_even)
{
    cr_assert_eq(sk_f32_to_bf16(1.0f), 0x3f80);
    cr_assert_eq(sk_f32_to_bf16(u2f(0x3f808000u)), 0x3f80, "tie goes to even (down)");
    cr_assert_eq(sk_f32_to_bf16(u2f(0x3f818000u)), 0x3f82, "tie goes to even (up)");
    cr_assert_eq(sk_f32_to_bf16(u2f(0x3f808001u)), 0x3f81, "just above the tie rounds up");
    cr_assert_eq(sk_f32_to_bf16(u2f(0x3f807fffu)), 0x3f80, "just below the tie rounds down");
    cr_assert_eq(sk_f32_to_bf16(-1.0f), 0xbf80);
    cr_assert_eq(sk_f32_to_bf16(u2f(0xbf818000u)), 0xbf82, "negative tie to even");
    /* subnormals: f32 0x00008000 is halfway between bf16 0x0000 and 0x0001 */
    cr_assert_eq(sk_f32_to_bf16(u2f(0x00008000u)), 0x0000);
    cr_assert_eq(sk_f32_to_bf16(u2f(0x00018000u)), 0x0002);
    cr_assert_eq(sk_f32_to_bf16(u2f(0x00010000u)), 0x0001);
    cr_assert_eq(sk_bf16_to_f32(0x0001), ldexpf(1.0f, -133));
    /* overflow: f32 max is above the last bf16 tie -> Inf; Inf stays Inf */
    cr_assert_eq(sk_f32_to_bf16(u2f(0x7f7fffffu)), 0x7f80);
    cr_assert_eq(sk_f32_to_bf16(u2f(0x7f7f7fffu)), 0x7f7f);
    cr_assert_eq(sk_f32_to_bf16(INFINITY), 0x7f80);
    cr_assert_eq(sk_f32_to_bf16(-INFINITY), 0xff80);
    /* NaN stays NaN, even a payload that rounding would carry into Inf */
    const uint32_t nans[] = {0x7f800001u, 0x7fc00000u, 0xff800001u, 0x7fffffffu};
    for (int i = 0; i < 4; i++) {
        uint16_t h = sk_f32_to_bf16(u2f(nans[i]));
        cr_assert((h & 0x7f80) == 0x7f80 && (h & 0x7f) != 0, "NaN 0x%08x -> 0x%04x", nans[i], h);
        cr_assert(isnan(sk_bf16_to_f32(h)));
    }
}

Test(dtype, f16_round_to_nearest_even)
{
    cr_assert_eq(sk_f32_to_f16(1.0f), 0x3c00);
    cr_assert_eq(sk_f32_to_f16(1.0f + ldexpf(1, -11)), 0x3c00, "tie to even (down)");
    cr_assert_eq(sk_f32_to_f16(1.0f + 3 * ldexpf(1, -11)), 0x3c02, "tie to even (up)");
    cr_assert_eq(sk_f32_to_f16(-2.0f), 0xc000);
    cr_assert_eq(sk_f32_to_f16(65504.0f), 0x7bff);
    cr_assert_eq(sk_f32_to_f16(65519.0f), 0x7bff);
    cr_assert_eq(sk_f32_to_f16(65520.0f), 0x7c00, "tie above max rounds to Inf");
    cr_assert_eq(sk_f32_to_f16(1e6f), 0x7c00);
    cr_assert_eq(sk_f32_to_f16(-1e6f), 0xfc00);
    cr_assert_eq(sk_f32_to_f16(INFINITY), 0x7c00);
    /* subnormals, unit 2^-24 */
    cr_assert_eq(sk_f32_to_f16(ldexpf(1, -24)), 0x0001);
    cr_assert_eq(sk_f32_to_f16(ldexpf(1, -25)), 0x0000, "half the smallest subnormal: tie to 0");
    cr_assert_eq(sk_f32_to_f16(ldexpf(1.5f, -25)), 0x0001, "above the tie");
    cr_assert_eq(sk_f32_to_f16(ldexpf(3, -25)), 0x0002, "1.5 units: tie to even 2");
    cr_assert_eq(sk_f32_to_f16(ldexpf(1023.5f, -24)), 0x0400, "tie into the smallest normal");
    cr_assert_eq(sk_f32_to_f16(ldexpf(1, -14)), 0x0400);
    cr_assert_eq(sk_f32_to_f16(-ldexpf(1, -24)), 0x8001);
    cr_assert_eq(sk_f16_to_f32(0x0001), ldexpf(1, -24));
    cr_assert_eq(sk_f16_to_f32(0x03ff), ldexpf(1023, -24));
    cr_assert_eq(sk_f16_to_f32(0x7bff), 65504.0f);
    cr_assert(isinf(sk_f16_to_f32(0xfc00)) && sk_f16_to_f32(0xfc00) < 0);
    uint16_t h = sk_f32_to_f16(NAN);
    cr_assert((h & 0x7c00) == 0x7c00 && (h & 0x3ff) != 0, "NaN -> 0x%04x", h);
    h = sk_f32_to_f16(u2f(0x7f800001u));
    cr_assert((h & 0x7c00) == 0x7c00 && (h & 0x3ff) != 0, "signalling NaN -> 0x%04x", h);
}

Test(dtype, fp8_e4m3_round_saturate_nan)
{
    cr_assert_eq(sk_f32_to_f8e4m3(1.0f), 0x38);
    cr_assert_eq(sk_f32_to_f8e4m3(1.0625f), 0x38, "tie to even (down)");
    cr_assert_eq(sk_f32_to_f8e4m3(1.1875f), 0x3a, "tie to even (up)");
    cr_assert_eq(sk_f32_to_f8e4m3(-1.0f), 0xb8);
    cr_assert_eq(sk_f32_to_f8e4m3(448.0f), 0x7e);
    cr_assert_eq(sk_f32_to_f8e4m3(449.0f), 0x7e);
    cr_assert_eq(sk_f32_to_f8e4m3(464.0f), 0x7e, "448..480 -> 448");
    cr_assert_eq(sk_f32_to_f8e4m3(479.99f), 0x7e);
    cr_assert_eq(sk_f32_to_f8e4m3(-470.0f), 0xfe);
    cr_assert_eq(sk_f32_to_f8e4m3(480.0f), 0x7f, ">= 480 -> NaN");
    cr_assert_eq(sk_f32_to_f8e4m3(-500.0f), 0xff);
    cr_assert_eq(sk_f32_to_f8e4m3(1e9f), 0x7f);
    cr_assert_eq(sk_f32_to_f8e4m3(INFINITY), 0x7f, "no Inf in e4m3fn: NaN");
    cr_assert_eq(sk_f32_to_f8e4m3(NAN) & 0x7f, 0x7f);
    /* subnormals, unit 2^-9 */
    cr_assert_eq(sk_f32_to_f8e4m3(ldexpf(1, -9)), 0x01);
    cr_assert_eq(sk_f32_to_f8e4m3(ldexpf(1, -10)), 0x00, "tie to 0");
    cr_assert_eq(sk_f32_to_f8e4m3(ldexpf(3, -10)), 0x02, "tie to even 2");
    cr_assert_eq(sk_f32_to_f8e4m3(ldexpf(15, -10)), 0x08, "7.5 units: tie into the smallest normal");
    cr_assert_eq(sk_f32_to_f8e4m3(0.015625f), 0x08);
    cr_assert_eq(sk_f8e4m3_to_f32(0x7e), 448.0f);
    cr_assert_eq(sk_f8e4m3_to_f32(0x01), ldexpf(1, -9));
    cr_assert_eq(sk_f8e4m3_to_f32(0x78), 256.0f);
    cr_assert(isnan(sk_f8e4m3_to_f32(0x7f)) && isnan(sk_f8e4m3_to_f32(0xff)));
}

static int bf16_is_nan(uint16_t h) { return (h & 0x7f80) == 0x7f80 && (h & 0x7f); }
static int f16_is_nan(uint16_t h) { return (h & 0x7c00) == 0x7c00 && (h & 0x3ff); }

Test(dtype, exhaustive_round_trips)
{
    for (uint32_t b = 0; b < 65536; b++) {
        const float f = sk_bf16_to_f32((uint16_t)b);
        const uint16_t back = sk_f32_to_bf16(f);
        if (bf16_is_nan((uint16_t)b))
            cr_assert(bf16_is_nan(back), "bf16 NaN 0x%04x -> 0x%04x", b, back);
        else
            cr_assert_eq(back, b, "bf16 0x%04x -> %g -> 0x%04x", b, f, back);
    }
    for (uint32_t b = 0; b < 65536; b++) {
        const float f = sk_f16_to_f32((uint16_t)b);
        const uint16_t back = sk_f32_to_f16(f);
        if (f16_is_nan((uint16_t)b))
            cr_assert(f16_is_nan(back) && isnan(f), "f16 NaN 0x%04x -> 0x%04x", b, back);
        else
            cr_assert_eq(back, b, "f16 0x%04x -> %g -> 0x%04x", b, f, back);
    }
    for (uint32_t b = 0; b < 256; b++) {
        const float f = sk_f8e4m3_to_f32((uint8_t)b);
        const uint8_t back = sk_f32_to_f8e4m3(f);
        if ((b & 0x7f) == 0x7f)
            cr_assert(isnan(f) && (back & 0x7f) == 0x7f, "fp8 NaN 0x%02x -> 0x%02x", b, back);
        else
            cr_assert_eq(back, b, "fp8 0x%02x -> %g -> 0x%02x", b, f, back);
    }
}

/* Decoding is monotonic over the positive patterns (catches exponent/mantissa
 * mix-ups that a round trip alone would not). */
Test(dtype, decode_is_monotonic)
{
    for (uint32_t b = 1; b < 0x7f80; b++)
        cr_assert(sk_bf16_to_f32((uint16_t)b) > sk_bf16_to_f32((uint16_t)(b - 1)), "bf16 0x%04x", b);
    for (uint32_t b = 1; b < 0x7c00; b++)
        cr_assert(sk_f16_to_f32((uint16_t)b) > sk_f16_to_f32((uint16_t)(b - 1)), "f16 0x%04x", b);
    for (uint32_t b = 1; b < 0x7f; b++)
        cr_assert(sk_f8e4m3_to_f32((uint8_t)b) > sk_f8e4m3_to_f32((uint8_t)(b - 1)), "fp8 0x%02x", b);
}

Test(dtype, bulk_convert_matches_scalar)
{
    float src[64], back[64];
    uint16_t h[64];
    for (int i = 0; i < 64; i++) src[i] = (float)(i - 32) * 0.37f + 1e-3f * (float)i;
    cr_assert_eq(sk_convert(h, SK_DTYPE_BF16, src, SK_DTYPE_F32, 64), SK_OK);
    for (int i = 0; i < 64; i++) cr_assert_eq(h[i], sk_f32_to_bf16(src[i]));
    cr_assert_eq(sk_convert(back, SK_DTYPE_F32, h, SK_DTYPE_BF16, 64), SK_OK);
    sk_round_through(src, 64, SK_DTYPE_BF16);
    cr_assert(memcmp(src, back, sizeof src) == 0);
    cr_assert_eq(sk_convert(h, SK_DTYPE_I32, src, SK_DTYPE_F32, 4), SK_E_DTYPE);
}
