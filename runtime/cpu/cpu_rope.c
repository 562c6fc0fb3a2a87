/* cpu_rope.c - in-place 3D rotary embedding on interleaved pairs (Wan layout).
 *
 * HD/2 = c pairs split into t = c - 2*(c/3), h = c/3, w = c/3 pairs. Pair j of
 * an axis with P pairs rotates by pos * theta^(-2j/(2P)); positions are
 * t0 + frame, row, column of the token. Angles, cos/sin and the rotation run
 * in f64 and round once. The per-axis cos/sin tables are built per call.
 */
#include "cpu_internal.h"

#include <math.h>

/* cos/sin of pos * theta^(-2j/(2P)) for pos in [p0, p0+npos), j in [0, P). */
static void axis_table(double *cs, double *sn, int64_t p0, int64_t npos, int64_t P, double theta)
{
    for (int64_t p = 0; p < npos; p++)
        for (int64_t j = 0; j < P; j++) {
            const double freq = pow(theta, -(double)(2 * j) / (double)(2 * P));
            const double ang = (double)(p0 + p) * freq;
            cs[p * P + j] = cos(ang);
            sn[p * P + j] = sin(ang);
        }
}

sk_status sk_cpu_rope3d(sk_backend *be, sk_tensor *x, int64_t F, int64_t Hp, int64_t Wp,
                        int64_t t0, double theta)
{
    const int64_t N = x->shape[0], NH = x->shape[1], HD = x->shape[2];
    const int64_t c = HD / 2, ph = c / 3, pw = c / 3, pt = c - 2 * (c / 3);
    if (N == 0 || c == 0) return SK_OK;
    const size_t nt = (size_t)(F * pt), nh = (size_t)(Hp * ph), nw = (size_t)(Wp * pw);
    double *tab;
    SK_TRY(sk_cpu_scratch("rope3d", 2 * (nt + nh + nw + 1) * sizeof(double), (void **)&tab));
    double *ct = tab, *st = ct + nt, *ch = st + nt, *sh = ch + nh, *cw = sh + nh, *sw = cw + nw;
    axis_table(ct, st, t0, F, pt, theta);
    axis_table(ch, sh, 0, Hp, ph, theta);
    axis_table(cw, sw, 0, Wp, pw, theta);

    float *xd = (float *)x->data;
    for (int64_t n = 0; n < N; n++) {
        const int64_t f = n / (Hp * Wp), row = (n / Wp) % Hp, col = n % Wp;
        for (int64_t h = 0; h < NH; h++) {
            float *v = xd + (n * NH + h) * HD;
            for (int64_t p = 0; p < c; p++) {
                double cs, sn;
                if (p < pt) {
                    cs = ct[f * pt + p];
                    sn = st[f * pt + p];
                } else if (p < pt + ph) {
                    cs = ch[row * ph + (p - pt)];
                    sn = sh[row * ph + (p - pt)];
                } else {
                    cs = cw[col * pw + (p - pt - ph)];
                    sn = sw[col * pw + (p - pt - ph)];
                }
                const double a = v[2 * p], b = v[2 * p + 1];
                v[2 * p] = (float)(a * cs - b * sn);
                v[2 * p + 1] = (float)(a * sn + b * cs);
            }
        }
    }
    free(tab);
    return SK_OK;
}
