/* compare.c - see compare.h. */
#include "compare.h"

#include <math.h>
#include <stdio.h>

#include "runtime/core/noise.h"

sk_compare_result sk_compare(const float *got, const float *ref, size_t n, double nmse_bound,
                             double atol, double rtol)
{
    sk_compare_result r = {0};
    double se = 0.0, sr = 0.0, worst_excess = -INFINITY, worst_ratio = 0.0;
    for (size_t i = 0; i < n; i++) {
        const double g = got[i], f = ref[i];
        if (isnan(g) || isnan(f)) {
            if (r.n_nan == 0 && r.n_inf_mismatch == 0) r.worst_index = i;
            r.n_nan++;
            continue;
        }
        if (isinf(g) || isinf(f)) {
            if (!(isinf(g) && isinf(f) && (g > 0) == (f > 0))) {
                if (r.n_nan == 0 && r.n_inf_mismatch == 0) r.worst_index = i;
                r.n_inf_mismatch++;
            }
            continue;
        }
        const double d = fabs(g - f);
        const double bound = atol + rtol * fabs(f);
        se += d * d;
        sr += f * f;
        if (d > r.max_abs) r.max_abs = d;
        const double rel = d / (fabs(f) > 1e-30 ? fabs(f) : 1e-30);
        if (rel > r.max_rel) r.max_rel = rel;
        if (d > bound) r.n_bad++;
        const double ratio = bound > 0 ? d / bound : (d > 0 ? INFINITY : 0.0);
        if (ratio > worst_ratio) worst_ratio = ratio;
        if (r.n_nan == 0 && r.n_inf_mismatch == 0 && d - bound > worst_excess) {
            worst_excess = d - bound;
            r.worst_index = i;
        }
    }
    r.nmse = sr > 0.0 ? se / sr : se;
    const double nratio = nmse_bound > 0 ? r.nmse / nmse_bound : (r.nmse > 0 ? INFINITY : 0.0);
    r.pct_of_bound = 100.0 * (nratio > worst_ratio ? nratio : worst_ratio);
    r.ok = r.n_nan == 0 && r.n_inf_mismatch == 0 && r.n_bad == 0 && r.nmse <= nmse_bound;
    return r;
}

void sk_compare_format(const sk_compare_result *r, const float *got, const float *ref, char *buf,
                       size_t cap)
{
    size_t w = r->worst_index;
    snprintf(buf, cap,
             "%s nmse %.3g (%.1f%% of bound) max_abs %.3g max_rel %.3g nan %zu inf-mismatch %zu "
             "bad %zu worst [%zu] got %.9g ref %.9g",
             r->ok ? "ok" : "FAIL", r->nmse, r->pct_of_bound, r->max_abs, r->max_rel, r->n_nan,
             r->n_inf_mismatch, r->n_bad, w, got ? (double)got[w] : 0.0,
             ref ? (double)ref[w] : 0.0);
}

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void sk_test_fill_uniform(float *x, size_t n, uint64_t seed, float lo, float hi)
{
    uint64_t s = seed * 0x2545F4914F6CDD1Dull + 1;
    for (size_t i = 0; i < n; i++) {
        const double u = (double)(splitmix64(&s) >> 11) * (1.0 / 9007199254740992.0);
        float v = (float)(lo + (hi - lo) * u);
        if (v >= hi) v = lo; /* rounding to float can reach hi */
        x[i] = v;
    }
}

void sk_test_fill_normal(float *x, size_t n, uint64_t seed, float stddev)
{
    for (size_t i = 0; i < n; i++) x[i] = stddev * sk_noise_value(seed, 0, 0, (int64_t)i);
}
