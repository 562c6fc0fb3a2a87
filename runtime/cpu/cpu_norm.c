/* cpu_norm.c - LayerNorm, RMSNorm, (LayerNorm +) modulation, gated residual add.
 * Row statistics in f64 (two passes for the variance) so the oracle's error is
 * far below any backend's. */
#include "cpu_internal.h"

#include <math.h>

/* mean and 1/sqrt(var + eps) of one row (biased variance, as PyTorch). */
static void row_stats(const float *x, int64_t D, float eps, double *mean, double *rstd)
{
    double s = 0.0;
    for (int64_t d = 0; d < D; d++) s += x[d];
    const double m = s / (double)D;
    double v = 0.0;
    for (int64_t d = 0; d < D; d++) {
        const double t = x[d] - m;
        v += t * t;
    }
    *mean = m;
    *rstd = 1.0 / sqrt(v / (double)D + (double)eps);
}

sk_status sk_cpu_layernorm(sk_backend *be, sk_tensor *y, const sk_tensor *x, const sk_tensor *w,
                           const sk_tensor *b, float eps)
{
    const int64_t R = x->shape[0], D = x->shape[1];
    const float *xd = (const float *)x->data;
    float *yd = (float *)y->data;
    for (int64_t r = 0; r < R; r++) {
        const float *xr = xd + r * D;
        float *yr = yd + r * D;
        double m, rs;
        row_stats(xr, D, eps, &m, &rs);
        for (int64_t d = 0; d < D; d++) {
            double v = (xr[d] - m) * rs;
            if (w) v *= sk_cpu_ld(w->data, w->dtype, d);
            if (b) v += sk_cpu_ld(b->data, b->dtype, d);
            yr[d] = (float)v;
        }
    }
    return SK_OK;
}

sk_status sk_cpu_rmsnorm(sk_backend *be, sk_tensor *y, const sk_tensor *x, const sk_tensor *w,
                         float eps)
{
    const int64_t R = x->shape[0], D = x->shape[1];
    const float *xd = (const float *)x->data;
    float *yd = (float *)y->data;
    for (int64_t r = 0; r < R; r++) {
        const float *xr = xd + r * D;
        float *yr = yd + r * D;
        double ss = 0.0;
        for (int64_t d = 0; d < D; d++) ss += (double)xr[d] * xr[d];
        const double rs = 1.0 / sqrt(ss / (double)D + (double)eps);
        for (int64_t d = 0; d < D; d++) {
            double v = xr[d] * rs;
            if (w) v *= sk_cpu_ld(w->data, w->dtype, d);
            yr[d] = (float)v;
        }
    }
    return SK_OK;
}

sk_status sk_cpu_modulate(sk_backend *be, sk_tensor *y, const sk_tensor *x, const sk_tensor *mod,
                          int i_shift, int i_scale, int64_t rows_per_group, int ln, float eps)
{
    const int64_t R = x->shape[0], D = x->shape[1], K = mod->shape[1];
    const float *xd = (const float *)x->data;
    const float *md = (const float *)mod->data;
    float *yd = (float *)y->data;
    for (int64_t r = 0; r < R; r++) {
        const int64_t g = r / rows_per_group;
        const float *shift = md + (g * K + i_shift) * D;
        const float *scale = md + (g * K + i_scale) * D;
        const float *xr = xd + r * D;
        float *yr = yd + r * D; /* may equal xr: stats are taken before writing */
        double m = 0.0, rs = 1.0;
        if (ln) row_stats(xr, D, eps, &m, &rs);
        for (int64_t d = 0; d < D; d++) {
            const double v = ln ? (xr[d] - m) * rs : (double)xr[d];
            yr[d] = (float)(v * (1.0 + (double)scale[d]) + (double)shift[d]);
        }
    }
    return SK_OK;
}

sk_status sk_cpu_gated_add(sk_backend *be, sk_tensor *x, const sk_tensor *y, const sk_tensor *mod,
                           int i_gate, int64_t rows_per_group)
{
    const int64_t R = x->shape[0], D = x->shape[1];
    float *xd = (float *)x->data;
    const float *yd = (const float *)y->data;
    if (i_gate < 0) {
        for (int64_t i = 0; i < R * D; i++) xd[i] += yd[i];
        return SK_OK;
    }
    const int64_t K = mod->shape[1];
    const float *md = (const float *)mod->data;
    for (int64_t r = 0; r < R; r++) {
        const float *gate = md + ((r / rows_per_group) * K + i_gate) * D;
        for (int64_t d = 0; d < D; d++) xd[r * D + d] += yd[r * D + d] * gate[d];
    }
    return SK_OK;
}
