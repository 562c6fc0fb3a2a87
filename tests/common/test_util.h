/* test_util.h - small helpers for the Criterion op tests (header-only so the
 * non-Criterion programs that link tests/common/ do not need Criterion). */
#ifndef SK_TEST_UTIL_H
#define SK_TEST_UTIL_H

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/core/backend.h"
#include "tests/common/compare.h"

/* Asserts that expr returned SK_OK, printing the status and message if not. */
#define TT_OK(expr)                                                                         \
    do {                                                                                    \
        sk_status tt_s_ = (expr);                                                           \
        cr_assert_eq(tt_s_, SK_OK, "%s failed: %s: %s", #expr, sk_status_name(tt_s_),       \
                     sk_error_message());                                                   \
    } while (0)

/* Asserts that expr failed with status st and that the message contains needle. */
#define TT_FAILS(expr, st, needle)                                                          \
    do {                                                                                    \
        sk_error_clear();                                                                   \
        sk_status tt_s_ = (expr);                                                           \
        cr_assert_eq(tt_s_, (st), "%s: expected %s, got %s (%s)", #expr, sk_status_name(st), \
                     sk_status_name(tt_s_), sk_error_message());                            \
        cr_assert(strstr(sk_error_message(), (needle)) != NULL,                             \
                  "%s: message '%s' does not mention '%s'", #expr, sk_error_message(),      \
                  (needle));                                                                \
    } while (0)

#define TT_SHAPE(...) ((const int64_t[]){__VA_ARGS__})
#define TT_NDIM(...) ((int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)))

/* A tensor of dtype dt on be, holding vals (f32, converted) or zeros. */
static inline sk_tensor tt_new(sk_backend *be, sk_dtype dt, int nd, const int64_t *shape,
                               const float *vals)
{
    sk_tensor t;
    TT_OK(sk_tensor_alloc(be, dt, nd, shape, &t));
    TT_OK(sk_tensor_zero(&t));
    if (vals) TT_OK(sk_tensor_upload_f32(&t, vals, (size_t)sk_tensor_numel(&t)));
    return t;
}

/* Seeded uniform values in [lo, hi) rounded through dt. */
static inline sk_tensor tt_rand(sk_backend *be, sk_dtype dt, int nd, const int64_t *shape,
                                uint64_t seed, float lo, float hi)
{
    sk_tensor t = sk_tensor_desc(dt, nd, shape);
    size_t n = (size_t)sk_tensor_numel(&t);
    float *h = malloc((n ? n : 1) * sizeof(float));
    cr_assert(h);
    sk_test_fill_uniform(h, n, seed, lo, hi);
    sk_tensor r = tt_new(be, dt, nd, shape, h);
    free(h);
    return r;
}

/* t's values as a malloc'd f32 array (caller frees). */
static inline float *tt_get(const sk_tensor *t)
{
    size_t n = (size_t)sk_tensor_numel(t);
    float *h = malloc((n ? n : 1) * sizeof(float));
    cr_assert(h);
    TT_OK(sk_tensor_download_f32(t, h, n));
    return h;
}

/* Asserts got ~ ref with sk_compare and prints the verdict line on failure. */
#define TT_CLOSE(got, ref, n, ...) TT_CLOSE_(got, ref, n, __VA_ARGS__)
#define TT_CLOSE_(got, ref, n, nmse, atol, rtol)                                            \
    do {                                                                                    \
        sk_compare_result tt_r_ = sk_compare((got), (ref), (n), (nmse), (atol), (rtol));    \
        char tt_b_[512];                                                                    \
        sk_compare_format(&tt_r_, (got), (ref), tt_b_, sizeof tt_b_);                       \
        cr_assert(tt_r_.ok, "%s vs %s: %s", #got, #ref, tt_b_);                             \
    } while (0)

/* f32 oracle tolerances for hand-derived values */
#define TT_F32 1e-10, 1e-5, 1e-5

#endif
