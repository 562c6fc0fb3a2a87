/* unipc.c - UniPC (bh2, order 2, predict-x0) for flow matching (see unipc.h). */
#include "sampler/unipc.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

sk_status sk_unipc_table_make(int n, double shift, sk_unipc_table *out)
{
    SK_CHECK(n >= 1 && n <= SK_UNIPC_MAX_STEPS, SK_E_INVALID_ARG,
             "UniPC: %d steps; expected 1..%d (--num-steps)", n, SK_UNIPC_MAX_STEPS);
    SK_CHECK(isfinite(shift) && shift > 0 && shift <= 1000, SK_E_INVALID_ARG,
             "UniPC: shift %g; expected a positive number such as 5 (--shift)", shift);
    memset(out, 0, sizeof *out);
    out->n = n;
    out->shift = shift;
    /* the training table (shift 1) as f32: sigma_max = f32(1 - 0.001), sigma_min = 0 */
    const double smax = (double)(float)(1.0 - 1.0 / 1000.0), smin = 0.0;
    for (int k = 0; k < n; k++) {
        /* np.linspace(smax, smin, n + 1): start + k * step, step = (stop - start) / n */
        const double s = smax + (double)k * ((smin - smax) / (double)n);
        const double sh = shift * s / (1.0 + (shift - 1.0) * s);
        out->sigma[k] = (float)sh;
        out->t[k] = (float)(int64_t)(sh * 1000.0); /* int64 cast truncates */
    }
    out->sigma[n] = 0.0f;
    return SK_OK;
}

int sk_unipc_order(const sk_unipc_table *tb, int i)
{
    int p = 2;
    if (tb->n - i < p) p = tb->n - i;
    if (i + 1 < p) p = i + 1;
    return p;
}

/* lambda = log(alpha) - log(sigma), alpha = 1 - sigma, all in f32 (sigma 0: +inf) */
static float lambda_of(float sigma)
{
    const float a = 1.0f - sigma;
    return logf(a) - logf(sigma);
}

sk_status sk_unipc_predictor(const sk_unipc_table *tb, int i, sk_unipc_update *u)
{
    SK_CHECK(i >= 0 && i < tb->n, SK_E_INVALID_ARG, "UniPC: predictor of step %d of %d", i,
             tb->n);
    memset(u, 0, sizeof *u);
    const int p = sk_unipc_order(tb, i);
    const float st = tb->sigma[i + 1], s0 = tb->sigma[i];
    const float at = 1.0f - st;
    const float h = lambda_of(st) - lambda_of(s0);
    const float hh = -h;
    const float phi1 = expm1f(hh), bh = expm1f(hh); /* bh2: B(h) = e^hh - 1 */
    u->order = p;
    u->c[0] = st / s0;
    u->c[3] = -(at * phi1);
    if (p == 2) {
        /* D1 = (m_{i-1} - m_i) / rk, rk = (lambda_{i-1} - lambda_i) / h, rho_p = 0.5 */
        const float rk = (lambda_of(tb->sigma[i - 1]) - lambda_of(s0)) / h;
        const float k = at * bh * 0.5f / rk;
        u->c[2] = -k;
        u->c[3] += k;
    }
    return SK_OK;
}

sk_status sk_unipc_corrector(const sk_unipc_table *tb, int i, sk_unipc_update *u)
{
    SK_CHECK(i >= 1 && i < tb->n, SK_E_INVALID_ARG, "UniPC: corrector of step %d of %d", i,
             tb->n);
    memset(u, 0, sizeof *u);
    const int p = sk_unipc_order(tb, i - 1);
    const float st = tb->sigma[i], s0 = tb->sigma[i - 1];
    const float at = 1.0f - st;
    const float h = lambda_of(st) - lambda_of(s0);
    const float hh = -h;
    const float phi1 = expm1f(hh), bh = expm1f(hh);
    float rho0 = 0.0f, rho1 = 0.5f, rk = 1.0f;
    if (p == 2) {
        rk = (lambda_of(tb->sigma[i - 2]) - lambda_of(s0)) / h;
        /* b_k from the phi_k recursion (factorial_i = 1, 2) */
        float hphik = phi1 / hh - 1.0f;
        const float b1 = hphik * 1.0f / bh;
        hphik = hphik / hh - 1.0f / 2.0f;
        const float b2 = hphik * 2.0f / bh;
        /* R = [[1, 1], [rk, 1]] rho = b (torch.linalg.solve) */
        rho0 = (b1 - b2) / (1.0f - rk);
        rho1 = b1 - rho0;
    }
    u->order = p;
    u->c[0] = st / s0;
    const float g = at * bh;
    /* xc_i = c0 xc - at phi1 m_{i-1} - g (rho0 (m_{i-2} - m_{i-1}) / rk + rho1 (m_i - m_{i-1})) */
    u->c[1] = p == 2 ? -g * rho0 / rk : 0.0f;
    u->c[2] = -(at * phi1) + (p == 2 ? g * rho0 / rk : 0.0f) + g * rho1;
    u->c[3] = -g * rho1;
    return SK_OK;
}

sk_status sk_unipc_apply(sk_backend *be, sk_tensor *y, const sk_unipc_update *u,
                         const sk_tensor *a, const sk_tensor *b, const sk_tensor *m1,
                         const sk_tensor *m2)
{
    SK_CHECK(y != m1 && y != m2 && (!b || y != b), SK_E_INTERNAL,
             "UniPC: the output may alias only the first input");
    SK_TRY(sk_op_axpby(be, y, u->c[0], a, u->c[3], m2));
    if (u->c[2] != 0.0f) SK_TRY(sk_op_axpby(be, y, 1.0f, y, u->c[2], m1));
    if (u->c[1] != 0.0f) {
        SK_CHECK(b, SK_E_INTERNAL, "UniPC: an order-2 corrector needs m_{i-2}");
        SK_TRY(sk_op_axpby(be, y, 1.0f, y, u->c[1], b));
    }
    return SK_OK;
}
