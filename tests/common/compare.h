/* compare.h - tensor comparison for tests and the GPU checks.
 *
 * A result passes when
 *   - no NaN on either side (NaN never passes),
 *   - Inf appears at the same places with the same sign on both sides,
 *   - every finite element has |got - ref| <= atol + rtol * |ref|,
 *   - NMSE = sum (got - ref)^2 / sum ref^2 <= nmse_bound (finite elements;
 *     when sum ref^2 is 0 the sum of squared errors itself is used).
 */
#ifndef SK_TEST_COMPARE_H
#define SK_TEST_COMPARE_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int ok;               /* 1 if every rule above holds                      */
    double nmse;          /* normalised mean squared error                    */
    double max_abs;       /* largest |got - ref| over finite pairs            */
    double max_rel;       /* largest |got - ref| / max(|ref|, 1e-30)          */
    size_t worst_index;   /* element with the largest excess over its bound   */
    size_t n_nan;         /* NaNs seen on either side                         */
    size_t n_inf_mismatch;/* Inf on one side only or with different signs     */
    size_t n_bad;         /* finite elements outside atol + rtol*|ref|        */
    double pct_of_bound;  /* 100 * max(nmse/nmse_bound, worst elem err/bound) */
} sk_compare_result;

sk_compare_result sk_compare(const float *got, const float *ref, size_t n, double nmse_bound,
                             double atol, double rtol);

/* One line: "ok nmse 1.2e-09 (0.1% of bound) max_abs ... worst [17] got .. ref .." */
void sk_compare_format(const sk_compare_result *r, const float *got, const float *ref, char *buf,
                       size_t cap);

/* Deterministic uniform fill in [lo, hi) from a 64-bit seed (splitmix64). */
void sk_test_fill_uniform(float *x, size_t n, uint64_t seed, float lo, float hi);
/* Standard normal fill (runtime/core/noise.h generator, frame 0 stream 0). */
void sk_test_fill_normal(float *x, size_t n, uint64_t seed, float stddev);

#endif
