/* cpu_fast_rows.c - the row-wise and elementwise ops on all cores.
 *
 * Each op is the reference's arithmetic (runtime/cpu/cpu_norm.c,
 * cpu_elementwise.c, cpu_rope.c, cpu_conv.c) with its outer loop split over
 * the pool (cpu_pool.h); rows are independent, so the results are the
 * reference's bit for bit, except the activations, which use
 * single-precision tanhf/expf (sk_cpu_fast_act1).
 */
#include "cpu_fast_internal.h"

#include <math.h>

/* rows per piece so that a piece holds at least SK_FAST_PAR_MIN elements */
static int64_t grain_rows(int64_t D)
{
    return D >= SK_FAST_PAR_MIN ? 1 : SK_FAST_PAR_MIN / (D ? D : 1);
}

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

typedef struct {
    float *y;
    const float *x, *z;
    const sk_tensor *w, *b, *mod;
    int64_t D, K, rows_per_group;
    int i0, i1, ln;
    float eps, a, bb;
    sk_act act;
} rows_job;

static void layernorm_rows(void *c, int64_t r0, int64_t r1)
{
    const rows_job *j = c;
    const int64_t D = j->D;
    for (int64_t r = r0; r < r1; r++) {
        const float *xr = j->x + r * D;
        float *yr = j->y + r * D;
        double m, rs;
        row_stats(xr, D, j->eps, &m, &rs);
        for (int64_t d = 0; d < D; d++) {
            double v = (xr[d] - m) * rs;
            if (j->w) v *= sk_cpu_ld(j->w->data, j->w->dtype, d);
            if (j->b) v += sk_cpu_ld(j->b->data, j->b->dtype, d);
            yr[d] = (float)v;
        }
    }
}

sk_status sk_cpu_fast_layernorm(sk_backend *be, sk_tensor *y, const sk_tensor *x,
                                const sk_tensor *w, const sk_tensor *b, float eps)
{
    rows_job j = {.y = y->data, .x = x->data, .w = w, .b = b, .D = x->shape[1], .eps = eps};
    sk_par_for(x->shape[0], grain_rows(j.D), layernorm_rows, &j);
    return SK_OK;
}

static void rmsnorm_rows(void *c, int64_t r0, int64_t r1)
{
    const rows_job *j = c;
    const int64_t D = j->D;
    for (int64_t r = r0; r < r1; r++) {
        const float *xr = j->x + r * D;
        float *yr = j->y + r * D;
        double ss = 0.0;
        for (int64_t d = 0; d < D; d++) ss += (double)xr[d] * xr[d];
        const double rs = 1.0 / sqrt(ss / (double)D + (double)j->eps);
        for (int64_t d = 0; d < D; d++) {
            double v = xr[d] * rs;
            if (j->w) v *= sk_cpu_ld(j->w->data, j->w->dtype, d);
            yr[d] = (float)v;
        }
    }
}

sk_status sk_cpu_fast_rmsnorm(sk_backend *be, sk_tensor *y, const sk_tensor *x, const sk_tensor *w,
                              float eps)
{
    rows_job j = {.y = y->data, .x = x->data, .w = w, .D = x->shape[1], .eps = eps};
    sk_par_for(x->shape[0], grain_rows(j.D), rmsnorm_rows, &j);
    return SK_OK;
}

static void modulate_rows(void *c, int64_t r0, int64_t r1)
{
    const rows_job *j = c;
    const int64_t D = j->D, K = j->K;
    const float *md = (const float *)j->mod->data;
    for (int64_t r = r0; r < r1; r++) {
        const int64_t g = r / j->rows_per_group;
        const float *shift = md + (g * K + j->i0) * D;
        const float *scale = md + (g * K + j->i1) * D;
        const float *xr = j->x + r * D;
        float *yr = j->y + r * D;
        double m = 0.0, rs = 1.0;
        if (j->ln) row_stats(xr, D, j->eps, &m, &rs);
        for (int64_t d = 0; d < D; d++) {
            const double v = j->ln ? (xr[d] - m) * rs : (double)xr[d];
            yr[d] = (float)(v * (1.0 + (double)scale[d]) + (double)shift[d]);
        }
    }
}

sk_status sk_cpu_fast_modulate(sk_backend *be, sk_tensor *y, const sk_tensor *x,
                               const sk_tensor *mod, int i_shift, int i_scale,
                               int64_t rows_per_group, int ln, float eps)
{
    rows_job j = {.y = y->data, .x = x->data, .mod = mod, .D = x->shape[1], .K = mod->shape[1],
                  .rows_per_group = rows_per_group, .i0 = i_shift, .i1 = i_scale, .ln = ln,
                  .eps = eps};
    sk_par_for(x->shape[0], grain_rows(j.D), modulate_rows, &j);
    return SK_OK;
}

static void gated_add_rows(void *c, int64_t r0, int64_t r1)
{
    const rows_job *j = c;
    const int64_t D = j->D;
    for (int64_t r = r0; r < r1; r++) {
        float *xr = j->y + r * D; /* the residual stream, updated in place */
        const float *yr = j->x + r * D;
        if (!j->mod) {
            for (int64_t d = 0; d < D; d++) xr[d] += yr[d];
        } else {
            const float *gate = (const float *)j->mod->data +
                                ((r / j->rows_per_group) * j->K + j->i0) * D;
            for (int64_t d = 0; d < D; d++) xr[d] += yr[d] * gate[d];
        }
    }
}

sk_status sk_cpu_fast_gated_add(sk_backend *be, sk_tensor *x, const sk_tensor *y,
                                const sk_tensor *mod, int i_gate, int64_t rows_per_group)
{
    rows_job j = {.y = x->data, .x = y->data, .mod = i_gate < 0 ? NULL : mod, .D = x->shape[1],
                  .K = i_gate < 0 ? 0 : mod->shape[1], .rows_per_group = rows_per_group,
                  .i0 = i_gate};
    sk_par_for(x->shape[0], grain_rows(j.D), gated_add_rows, &j);
    return SK_OK;
}

static void axpby_range(void *c, int64_t i0, int64_t i1)
{
    const rows_job *j = c;
    for (int64_t i = i0; i < i1; i++) j->y[i] = j->a * j->x[i] + j->bb * j->z[i];
}

sk_status sk_cpu_fast_axpby(sk_backend *be, sk_tensor *y, float a, const sk_tensor *x, float b,
                            const sk_tensor *z)
{
    rows_job j = {.y = y->data, .x = x->data, .z = z->data, .a = a, .bb = b};
    sk_par_for(sk_tensor_numel(y), SK_FAST_PAR_MIN, axpby_range, &j);
    return SK_OK;
}

static void mul_range(void *c, int64_t i0, int64_t i1)
{
    const rows_job *j = c;
    for (int64_t i = i0; i < i1; i++) j->y[i] = j->x[i] * j->z[i];
}

sk_status sk_cpu_fast_mul(sk_backend *be, sk_tensor *y, const sk_tensor *x, const sk_tensor *z)
{
    rows_job j = {.y = y->data, .x = x->data, .z = z->data};
    sk_par_for(sk_tensor_numel(y), SK_FAST_PAR_MIN, mul_range, &j);
    return SK_OK;
}

static void act_range(void *c, int64_t i0, int64_t i1)
{
    const rows_job *j = c;
    sk_cpu_fast_act_n(j->y + i0, j->x + i0, i1 - i0, j->act);
}

sk_status sk_cpu_fast_act(sk_backend *be, sk_tensor *y, const sk_tensor *x, sk_act act)
{
    rows_job j = {.y = y->data, .x = x->data, .act = act};
    sk_par_for(sk_tensor_numel(y), SK_FAST_PAR_MIN / 4, act_range, &j);
    return SK_OK;
}

/* RoPE by frames: frame f of x is the reference's rope3d of a one-frame
 * view at t0 + f, so each piece runs the reference on its frames. */
typedef struct {
    sk_backend *be;
    sk_tensor *x;
    int64_t Hp, Wp, t0;
    double theta;
    _Atomic int bad;
} rope_job;

static void rope_frames(void *c, int64_t f0, int64_t f1)
{
    rope_job *j = c;
    const int64_t per = j->Hp * j->Wp, row = j->x->shape[1] * j->x->shape[2];
    for (int64_t f = f0; f < f1; f++) {
        sk_tensor v = *j->x;
        v.shape[0] = per;
        v.data = (float *)j->x->data + f * per * row;
        v.owns = 0;
        if (sk_cpu_rope3d(j->be, &v, 1, j->Hp, j->Wp, j->t0 + f, j->theta) != SK_OK) j->bad = 1;
    }
}

sk_status sk_cpu_fast_rope3d(sk_backend *be, sk_tensor *x, int64_t F, int64_t Hp, int64_t Wp,
                             int64_t t0, double theta)
{
    if (F < 2 || x->shape[0] != F * Hp * Wp) return sk_cpu_rope3d(be, x, F, Hp, Wp, t0, theta);
    rope_job j = {.be = be, .x = x, .Hp = Hp, .Wp = Wp, .t0 = t0, .theta = theta};
    sk_par_for(F, 1, rope_frames, &j);
    return j.bad ? SK_ERR(SK_E_OOM, "cpu rope3d: out of host memory for the angle tables")
                 : SK_OK;
}

typedef struct {
    float *y;
    const float *x;
    int64_t C, H, W;
    int s;
} layout_job;

static void upsample_planes(void *c, int64_t p0, int64_t p1)
{
    const layout_job *j = c;
    const int64_t H = j->H, W = j->W, s = j->s, Ho = H * s, Wo = W * s;
    for (int64_t nc = p0; nc < p1; nc++)
        for (int64_t oy = 0; oy < Ho; oy++) {
            const float *xr = j->x + (nc * H + oy / s) * W;
            float *yr = j->y + (nc * Ho + oy) * Wo;
            for (int64_t ox = 0; ox < Wo; ox++) yr[ox] = xr[ox / s];
        }
}

sk_status sk_cpu_fast_upsample_nearest(sk_backend *be, sk_tensor *y, const sk_tensor *x, int s)
{
    layout_job j = {.y = y->data, .x = x->data, .H = x->shape[2], .W = x->shape[3], .s = s};
    const int64_t plane = j.H * j.W * s * s;
    sk_par_for(x->shape[0] * x->shape[1], plane >= SK_FAST_PAR_MIN ? 1 : SK_FAST_PAR_MIN / plane,
               upsample_planes, &j);
    return SK_OK;
}

static void shuffle_planes(void *c, int64_t p0, int64_t p1)
{
    const layout_job *j = c;
    const int64_t H = j->H, W = j->W, p = j->s;
    for (int64_t nc = p0; nc < p1; nc++)
        for (int64_t i = 0; i < p; i++)
            for (int64_t k = 0; k < p; k++) {
                const float *xp = j->x + (nc * p * p + i * p + k) * H * W;
                float *yp = j->y + nc * (H * p) * (W * p);
                for (int64_t h = 0; h < H; h++)
                    for (int64_t w = 0; w < W; w++)
                        yp[(h * p + i) * (W * p) + w * p + k] = xp[h * W + w];
            }
}

sk_status sk_cpu_fast_pixel_shuffle(sk_backend *be, sk_tensor *y, const sk_tensor *x, int p)
{
    layout_job j = {.y = y->data, .x = x->data, .H = x->shape[2], .W = x->shape[3], .s = p};
    const int64_t plane = j.H * j.W * p * p;
    sk_par_for(y->shape[0] * y->shape[1], plane >= SK_FAST_PAR_MIN ? 1 : SK_FAST_PAR_MIN / plane,
               shuffle_planes, &j);
    return SK_OK;
}
