/* test_compare.c - the rules of sk_compare (NaN never passes, Inf must match,
 * element and NMSE bounds) and the seeded fill helpers. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "tests/common/compare.h"

Test(compare, identical_passes_with_zero_error)
{
    const float a[] = {1, -2, 0, 3.5f, INFINITY, -INFINITY};
    sk_compare_result r = sk_compare(a, a, 6, 0.0, 0.0, 0.0);
    cr_assert(r.ok);
    cr_assert_eq(r.nmse, 0.0);
    cr_assert_eq(r.max_abs, 0.0);
}

Test(compare, nan_never_passes)
{
    const float ref[] = {1, 2, 3}, got[] = {1, NAN, 3};
    sk_compare_result r = sk_compare(got, ref, 3, 1e9, 1e9, 1e9);
    cr_assert(!r.ok);
    cr_assert_eq(r.n_nan, 1);
    cr_assert_eq(r.worst_index, 1);
    r = sk_compare(ref, got, 3, 1e9, 1e9, 1e9); /* NaN in the reference too */
    cr_assert(!r.ok);
    r = sk_compare(got, got, 3, 1e9, 1e9, 1e9); /* NaN == NaN is still a failure */
    cr_assert(!r.ok);
}

Test(compare, inf_must_match_in_sign_and_presence)
{
    const float ref[] = {INFINITY, 1}, neg[] = {-INFINITY, 1}, fin[] = {3e38f, 1};
    cr_assert(!sk_compare(neg, ref, 2, 1e9, 1e9, 1e9).ok);
    cr_assert(!sk_compare(fin, ref, 2, 1e9, 1e9, 1e9).ok);
    cr_assert(!sk_compare(ref, fin, 2, 1e9, 1e9, 1e9).ok);
    sk_compare_result r = sk_compare(neg, ref, 2, 1e9, 1e9, 1e9);
    cr_assert_eq(r.n_inf_mismatch, 1);
}

Test(compare, element_bound_atol_plus_rtol)
{
    const float ref[] = {100, 0}, got[] = {100.5f, 0.05f};
    /* |100.5-100| = .5 <= .01 + .005*100 = .51 ; |.05| <= .01 + 0 ? no */
    sk_compare_result r = sk_compare(got, ref, 2, 1.0, 0.01, 0.005);
    cr_assert(!r.ok);
    cr_assert_eq(r.n_bad, 1);
    cr_assert_eq(r.worst_index, 1);
    r = sk_compare(got, ref, 2, 1.0, 0.06, 0.005);
    cr_assert(r.ok, "nmse %g", r.nmse);
    cr_assert_float_eq(r.max_abs, 0.5, 1e-9);
    /* worst element: .5 / (.06 + .005*100) = 89.3% of its bound */
    cr_assert(fabs(r.pct_of_bound - 100 * 0.5 / 0.56) < 0.01, "pct %g", r.pct_of_bound);
}

Test(compare, nmse_bound)
{
    const float ref[] = {1, 1, 1, 1}, got[] = {1.1f, 1, 1, 1};
    /* nmse = 0.01 / 4 = 0.0025 */
    sk_compare_result r = sk_compare(got, ref, 4, 0.002, 1, 1);
    cr_assert(!r.ok);
    cr_assert(fabs(r.nmse - 0.0025) < 1e-6, "nmse %g", r.nmse);
    cr_assert(sk_compare(got, ref, 4, 0.003, 1, 1).ok);
    char buf[256];
    sk_compare_format(&r, got, ref, buf, sizeof buf);
    cr_assert(strstr(buf, "FAIL") && strstr(buf, "nmse"), "%s", buf);
}

Test(compare, fill_uniform_is_seeded_and_in_range)
{
    float a[1000], b[1000], c[1000];
    sk_test_fill_uniform(a, 1000, 5, -2, 3);
    sk_test_fill_uniform(b, 1000, 5, -2, 3);
    sk_test_fill_uniform(c, 1000, 6, -2, 3);
    cr_assert(memcmp(a, b, sizeof a) == 0);
    int same = 0;
    double s = 0;
    for (int i = 0; i < 1000; i++) {
        cr_assert(a[i] >= -2 && a[i] < 3, "a[%d] = %g", i, a[i]);
        same += a[i] == c[i];
        s += a[i];
    }
    cr_assert_lt(same, 3);
    cr_assert(fabs(s / 1000 - 0.5) < 0.15, "mean %g", s / 1000);
    sk_test_fill_normal(a, 1000, 1, 2.0f);
    sk_test_fill_normal(b, 1000, 1, 2.0f);
    cr_assert(memcmp(a, b, sizeof a) == 0);
}
