/* unipc.h - the UniPC sampler as LongLive 2.0 runs it (spec-longlive2.md §2;
 * upstream wan_5b/utils/fm_solvers_unipc.py FlowUniPCMultistepScheduler with
 * num_train_timesteps 1000, solver_order 2, bh2, predict_x0, lower_order_final,
 * corrector on, final sigma 0; a fresh solver for every chunk).
 *
 * Tables (set_timesteps(N, shift)): s_k = linspace(sigma_max, 0, N+1)[k]
 * (k < N, sigma_max = f32(0.999), f64 arithmetic), sigma_k = f32(shift s /
 * (1 + (shift-1) s)), sigma_N = 0; the model timestep is t_k = (float)
 * int64(1000 * shift(s_k)) (truncated): 4 steps t = 999, 937, 833, 624.
 *
 * Step i with model input x_i and output v_i (flow prediction):
 *   m_i = x_i - sigma_i v_i                               (x0 prediction)
 *   i > 0: xc_i = UniC(xc_{i-1}; m_{i-2}, m_{i-1}, m_i; order p_{i-1})
 *   i = 0: xc_0 = x_0
 *   p_i = min(2, N - i, i + 1)
 *   x_{i+1} = UniP(xc_i; m_{i-1}, m_i; order p_i)
 * With sigma_N = 0 and p_{N-1} = 1 the chunk's result is exactly m_{N-1},
 * so the last corrector (which cannot change it) is skipped.
 *
 * The scalar coefficients are computed the way upstream computes them: from
 * the f32 sigmas, in f32 (log, expm1, the 2x2 solve), because 1 - sigma near
 * sigma = 1 loses most of its digits and the reference does the same. Each
 * update is then a linear combination of at most four tensors; the
 * coefficients of one update are folded into one table (sk_unipc_update) so
 * the tensor work is a few axpby's.
 */
#ifndef SK_UNIPC_H
#define SK_UNIPC_H

#include "runtime/core/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SK_UNIPC_MAX_STEPS 64

typedef struct {
    int n;                              /* denoising steps (model calls) per chunk */
    double shift;
    float sigma[SK_UNIPC_MAX_STEPS + 1]; /* f32 sigmas, sigma[n] = 0 */
    float t[SK_UNIPC_MAX_STEPS];        /* model timesteps (integers) */
} sk_unipc_table;

/* Builds the table for n steps (1..64) and a shift (> 0). */
sk_status sk_unipc_table_make(int n, double shift, sk_unipc_table *out);

/* One update as coefficients of (xc_prev, m_{i-2}, m_{i-1}, m_i), all in f32:
 *   corrector (step i > 0):  xc_i    = c[0] xc_{i-1} + c[1] m_{i-2} + c[2] m_{i-1} + c[3] m_i
 *   predictor (step i):      x_{i+1} = c[0] xc_i     + c[1] m_{i-2} + c[2] m_{i-1} + c[3] m_i
 * (the predictor never uses m_{i-2}; c[1] = 0 there). order: the UniPC order. */
typedef struct {
    float c[4];
    int order;
} sk_unipc_update;

/* The corrector of step i (1 <= i < n; order p_{i-1}). */
sk_status sk_unipc_corrector(const sk_unipc_table *tb, int i, sk_unipc_update *out);
/* The predictor of step i (0 <= i < n; order p_i). */
sk_status sk_unipc_predictor(const sk_unipc_table *tb, int i, sk_unipc_update *out);
/* p_i = min(2, n - i, i + 1). */
int sk_unipc_order(const sk_unipc_table *tb, int i);

/* y = c[0] a + c[1] b + c[2] m1 + c[3] m2 with zero coefficients skipped
 * (b may be NULL when c[1] == 0). y may alias a. */
sk_status sk_unipc_apply(sk_backend *be, sk_tensor *y, const sk_unipc_update *u,
                         const sk_tensor *a, const sk_tensor *b, const sk_tensor *m1,
                         const sk_tensor *m2);

#ifdef __cplusplus
}
#endif
#endif
