/* dtype.h - element types and exact conversions.
 *
 * All narrowing conversions round to nearest, ties to even (as PyTorch's
 * .to(dtype) does). NaN stays NaN. f16 overflow gives +-Inf; bf16 keeps the
 * f32 exponent range. fp8-e4m3 ("e4m3fn": no Inf, max 448) follows PyTorch's
 * float8_e4m3fn: |x| >= 480 or NaN becomes NaN (0x7f | sign), values in
 * [448, 480) round to 448.
 */
#ifndef SK_DTYPE_H
#define SK_DTYPE_H

#include <stddef.h>
#include <stdint.h>

#include "runtime/core/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    SK_DTYPE_F32 = 0,
    SK_DTYPE_F16,
    SK_DTYPE_BF16,
    SK_DTYPE_F8_E4M3,
    SK_DTYPE_I32,
    SK_DTYPE_I64,
    SK_DTYPE_U8,
    SK_DTYPE_F64,
    SK_DTYPE_COUNT_
} sk_dtype;

/* Bytes per element. */
size_t sk_dtype_size(sk_dtype t);
/* Our name ("f32", "bf16", ...). */
const char *sk_dtype_name(sk_dtype t);
/* safetensors name ("F32", "BF16", "F8_E4M3", ...). */
const char *sk_dtype_st_name(sk_dtype t);
/* Parses a safetensors dtype string; returns SK_E_DTYPE (no message) if unknown. */
sk_status sk_dtype_from_st_name(const char *s, sk_dtype *out);
/* Parses our names and common aliases ("fp32", "float32", "bf16", ...). */
sk_status sk_dtype_from_name(const char *s, sk_dtype *out);
int sk_dtype_is_float(sk_dtype t);

uint16_t sk_f32_to_bf16(float f);
float sk_bf16_to_f32(uint16_t h);
uint16_t sk_f32_to_f16(float f);
float sk_f16_to_f32(uint16_t h);
uint8_t sk_f32_to_f8e4m3(float f);
float sk_f8e4m3_to_f32(uint8_t v);

/* Converts n elements between any two float dtypes (f32/f16/bf16/f8/f64).
 * src and dst must not overlap unless they are the same pointer and dtype. */
sk_status sk_convert(void *dst, sk_dtype dst_t, const void *src, sk_dtype src_t, size_t n);

/* Rounds f32 values in place through dtype t and back (f32 -> t -> f32), so
 * tests can give both sides of a comparison the same representable inputs. */
void sk_round_through(float *x, size_t n, sk_dtype t);

#ifdef __cplusplus
}
#endif
#endif
