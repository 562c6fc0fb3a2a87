/* schedule.h - the few-step flow-matching schedule of Self-Forcing / LongLive 1.0
 * (spec-wan-causal-dit.md §5.2-5.4).
 *
 * Training table (FlowMatchScheduler, shift s, 1000 steps, extra_one_step):
 *   u_i = 1 - i/1000 (i = 0..999), sigma_i = s*u_i / (1 + (s-1)*u_i), T_i = 1000*sigma_i.
 * A denoising step list such as 1000,750,500,250 is "warped": step k maps to
 * T[1000 - k] (k = 0 gives 0), so shift 5 gives t = 1000, 937.5, 833.33, 625 and
 * sigma = t/1000. Without warping the step is used as t directly and sigma is
 * the table's sigma at argmin |T - t|.
 *
 * x_t = (1 - sigma) x0 + sigma * eps; the model predicts v = eps - x0, so
 *   x0 = x_t - sigma * v, and re-noising to the next step draws fresh noise:
 *   x  = (1 - sigma') x0 + sigma' * noise.
 */
#ifndef SK_SCHEDULE_H
#define SK_SCHEDULE_H

#include "runtime/core/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SK_SCHED_MAX_STEPS 64
#define SK_SCHED_TRAIN_STEPS 1000

typedef struct {
    int n;                            /* denoising steps */
    int steps[SK_SCHED_MAX_STEPS];    /* the list as given (e.g. 1000,750,500,250) */
    float t[SK_SCHED_MAX_STEPS];      /* timestep fed to the model */
    float sigma[SK_SCHED_MAX_STEPS];  /* noise level at that step */
    double shift;
    int warp;
} sk_schedule;

/* Builds the schedule. steps: n values in (0, 1000], strictly decreasing. */
sk_status sk_schedule_make(const int *steps, int n, double shift, int warp, sk_schedule *out);
/* Parses "1000,750,500,250" (for --steps). */
sk_status sk_schedule_parse_steps(const char *s, int *steps, int cap, int *n);

/* x0 = x_t - sigma * v   (all [F, C, H, W] on one backend; x0 may alias x_t) */
sk_status sk_sched_x0(sk_backend *be, sk_tensor *x0, const sk_tensor *xt, const sk_tensor *v,
                      float sigma);
/* x = (1 - sigma) * x0 + sigma * noise   (x may alias x0 or noise) */
sk_status sk_sched_renoise(sk_backend *be, sk_tensor *x, const sk_tensor *x0,
                           const sk_tensor *noise, float sigma);

#ifdef __cplusplus
}
#endif
#endif
