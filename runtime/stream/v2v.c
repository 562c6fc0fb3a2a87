/* v2v.c - the strength schedule of video-to-video (see v2v.h). */
#include "runtime/stream/v2v.h"

#include <math.h>
#include <string.h>

#include "sampler/schedule.h"

int sk_v2v_start_index(int n_steps, double strength)
{
    if (n_steps < 1) return 0;
    if (!(strength >= 0.0)) strength = 0.0; /* NaN too: callers check first */
    if (strength > 1.0) strength = 1.0;
    long r = lround(strength * n_steps);    /* halves away from zero */
    if (r < 1) r = 1;
    if (r > n_steps) r = n_steps;
    return n_steps - (int)r;
}

sk_status sk_v2v_check_strength(double s, const char *flag)
{
    SK_CHECK(isfinite(s) && s >= 0.0 && s <= 1.0, SK_E_INVALID_ARG,
             "%s %g: expected a number from 0 to 1 (1: the input is replaced by noise, as "
             "text-to-video; smaller keeps more of the input)", flag ? flag : "strength", s);
    return SK_OK;
}

sk_status sk_v2v_noise_input(sk_backend *be, sk_tensor *x, const sk_tensor *x_in,
                             const sk_tensor *noise, float sigma)
{
    /* the flow-matching forward process, as the sampler's re-noise */
    return sk_sched_renoise(be, x, x_in, noise, sigma);
}

sk_status sk_v2v_unipc_tail(const sk_unipc_table *tb, int k, sk_unipc_table *out)
{
    SK_CHECK(k >= 0 && k < tb->n, SK_E_INVALID_ARG, "v2v: start step %d of %d UniPC steps", k,
             tb->n);
    memset(out, 0, sizeof *out);
    out->n = tb->n - k;
    out->shift = tb->shift;
    for (int i = 0; i <= out->n; i++) out->sigma[i] = tb->sigma[k + i];
    for (int i = 0; i < out->n; i++) out->t[i] = tb->t[k + i];
    return SK_OK;
}
