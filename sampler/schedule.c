/* schedule.c - flow-matching few-step schedule (see schedule.h). */
#include "sampler/schedule.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* sigma of the training table at index i (0..1000; 1000 is the appended 0).
 * Computed in double: the PyTorch float32 table differs by < 1 ulp of f32. */
static double table_sigma(int i, double shift)
{
    if (i >= SK_SCHED_TRAIN_STEPS) return 0.0;
    double u = 1.0 - (double)i / SK_SCHED_TRAIN_STEPS;
    return shift * u / (1.0 + (shift - 1.0) * u);
}

sk_status sk_schedule_make(const int *steps, int n, double shift, int warp, sk_schedule *out)
{
    SK_CHECK(n >= 1 && n <= SK_SCHED_MAX_STEPS, SK_E_INVALID_ARG,
             "schedule: %d steps; expected 1..%d", n, SK_SCHED_MAX_STEPS);
    SK_CHECK(isfinite(shift) && shift > 0 && shift <= 1000, SK_E_INVALID_ARG,
             "schedule: shift %g; expected a positive number such as 5 (--shift)", shift);
    memset(out, 0, sizeof *out);
    out->n = n;
    out->shift = shift;
    out->warp = warp;
    for (int k = 0; k < n; k++) {
        SK_CHECK(steps[k] >= 1 && steps[k] <= SK_SCHED_TRAIN_STEPS, SK_E_INVALID_ARG,
                 "schedule: step %d is %d; expected 1..%d (--steps)", k, steps[k],
                 SK_SCHED_TRAIN_STEPS);
        SK_CHECK(k == 0 || steps[k] < steps[k - 1], SK_E_INVALID_ARG,
                 "schedule: steps must decrease strictly (step %d is %d after %d)", k, steps[k],
                 steps[k - 1]);
        out->steps[k] = steps[k];
        if (warp) {
            double sg = table_sigma(SK_SCHED_TRAIN_STEPS - steps[k], shift);
            out->t[k] = (float)(SK_SCHED_TRAIN_STEPS * sg);
            out->sigma[k] = (float)sg;
        } else {
            /* sigma at argmin |T - t| over the 1000-entry table */
            int best = 0;
            double bd = INFINITY;
            for (int i = 0; i < SK_SCHED_TRAIN_STEPS; i++) {
                double d = fabs(SK_SCHED_TRAIN_STEPS * table_sigma(i, shift) - steps[k]);
                if (d < bd) { bd = d; best = i; }
            }
            out->t[k] = (float)steps[k];
            out->sigma[k] = (float)table_sigma(best, shift);
        }
    }
    return SK_OK;
}

sk_status sk_schedule_parse_steps(const char *s, int *steps, int cap, int *n)
{
    SK_CHECK(s && *s, SK_E_INVALID_ARG, "--steps: empty; expected e.g. 1000,750,500,250");
    *n = 0;
    const char *p = s;
    while (*p) {
        char *end = NULL;
        errno = 0;
        long v = strtol(p, &end, 10);
        SK_CHECK(end != p && errno == 0 && (*end == ',' || *end == 0), SK_E_INVALID_ARG,
                 "--steps '%s': bad number at '%s'; expected comma-separated integers such as "
                 "1000,750,500,250", s, p);
        SK_CHECK(*n < cap, SK_E_INVALID_ARG, "--steps '%s': more than %d steps", s, cap);
        SK_CHECK(v >= 1 && v <= SK_SCHED_TRAIN_STEPS, SK_E_INVALID_ARG,
                 "--steps '%s': %ld out of range 1..%d", s, v, SK_SCHED_TRAIN_STEPS);
        steps[(*n)++] = (int)v;
        p = *end ? end + 1 : end;
        SK_CHECK(!(*end == ',' && *p == 0), SK_E_INVALID_ARG, "--steps '%s': trailing comma", s);
    }
    return SK_OK;
}

sk_status sk_sched_x0(sk_backend *be, sk_tensor *x0, const sk_tensor *xt, const sk_tensor *v,
                      float sigma)
{
    return sk_op_axpby(be, x0, 1.0f, xt, -sigma, v);
}

sk_status sk_sched_renoise(sk_backend *be, sk_tensor *x, const sk_tensor *x0,
                           const sk_tensor *noise, float sigma)
{
    return sk_op_axpby(be, x, 1.0f - sigma, x0, sigma, noise);
}
