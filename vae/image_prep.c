/* image_prep.c - see image_prep.h. The antialiased resize follows PyTorch's
 * _compute_indices_weights_aa (itself PIL's): scale = in / out, support =
 * max(scale, 1) (the bilinear filter's half width 1, widened when shrinking),
 * taps [int(center - support + 0.5), int(center + support + 0.5)) clipped to
 * the image, weights tri((j - center + 0.5) / max(scale, 1)) normalised to 1. */
#include "vae/image_prep.h"

#include <math.h>
#include <stdlib.h>

#include "runtime/core/dtype.h"

typedef struct {
    int64_t *first, *n;  /* [out] */
    float *w;            /* [out * taps] */
    int64_t taps;
} aa_table;

static void aa_free(aa_table *t)
{
    free(t->first);
    free(t->n);
    free(t->w);
}

static sk_status aa_make(int64_t in, int64_t out, aa_table *t)
{
    const double scale = (double)in / (double)out;
    const double support = scale >= 1.0 ? scale : 1.0, inv = scale >= 1.0 ? 1.0 / scale : 1.0;
    t->taps = (int64_t)ceil(support) * 2 + 1;
    t->first = malloc((size_t)out * sizeof *t->first);
    t->n = malloc((size_t)out * sizeof *t->n);
    t->w = calloc((size_t)(out * t->taps), sizeof *t->w);
    if (!t->first || !t->n || !t->w) {
        aa_free(t);
        return SK_ERR(SK_E_OOM, "image resize: out of host memory");
    }
    for (int64_t i = 0; i < out; i++) {
        const double center = scale * ((double)i + 0.5);
        int64_t lo = (int64_t)(center - support + 0.5), hi = (int64_t)(center + support + 0.5);
        if (lo < 0) lo = 0;
        if (hi > in) hi = in;
        int64_t n = hi - lo;
        if (n > t->taps) n = t->taps;
        double tot = 0.0, wv[64];
        for (int64_t j = 0; j < n && j < 64; j++) {
            double x = fabs(((double)(j + lo) - center + 0.5) * inv);
            wv[j] = x < 1.0 ? 1.0 - x : 0.0;
            tot += wv[j];
        }
        t->first[i] = lo;
        t->n[i] = n;
        for (int64_t j = 0; j < n && j < 64; j++)
            t->w[i * t->taps + j] = (float)(tot != 0.0 ? wv[j] / tot : wv[j]);
    }
    return SK_OK;
}

sk_status sk_resize_bilinear_aa(const float *src, int64_t C, int64_t h, int64_t w, float *dst,
                                int64_t H, int64_t W)
{
    SK_CHECK(src && dst && C > 0 && h > 0 && w > 0 && H > 0 && W > 0, SK_E_INVALID_ARG,
             "image resize: bad arguments (%lldx%lld -> %lldx%lld)", (long long)w, (long long)h,
             (long long)W, (long long)H);
    SK_CHECK((double)w / (double)W < 30.0 && (double)h / (double)H < 30.0, SK_E_INVALID_ARG,
             "image resize: %lldx%lld -> %lldx%lld shrinks more than 30x; give a smaller picture",
             (long long)w, (long long)h, (long long)W, (long long)H);
    aa_table tw = {0}, th = {0};
    SK_TRY(aa_make(w, W, &tw));
    sk_status st = aa_make(h, H, &th);
    float *mid = st == SK_OK ? malloc((size_t)(C * h * W) * sizeof *mid) : NULL;
    if (st == SK_OK && !mid) st = SK_ERR(SK_E_OOM, "image resize: out of host memory");
    if (st == SK_OK) {
        for (int64_t c = 0; c < C; c++) /* width */
            for (int64_t y = 0; y < h; y++) {
                const float *row = src + (c * h + y) * w;
                float *o = mid + (c * h + y) * W;
                for (int64_t x = 0; x < W; x++) {
                    const float *wt = tw.w + x * tw.taps, *p = row + tw.first[x];
                    float acc = 0.0f;
                    for (int64_t j = 0; j < tw.n[x]; j++) acc += wt[j] * p[j];
                    o[x] = acc;
                }
            }
        for (int64_t c = 0; c < C; c++) /* height */
            for (int64_t y = 0; y < H; y++) {
                const float *wt = th.w + y * th.taps;
                float *o = dst + (c * H + y) * W;
                for (int64_t x = 0; x < W; x++) o[x] = 0.0f;
                for (int64_t j = 0; j < th.n[y]; j++) {
                    const float *r = mid + (c * h + th.first[y] + j) * W;
                    for (int64_t x = 0; x < W; x++) o[x] += wt[j] * r[x];
                }
            }
    }
    free(mid);
    aa_free(&tw);
    aa_free(&th);
    return st;
}

sk_status sk_image_prep(const uint8_t *rgb, int64_t w, int64_t h, int64_t W, int64_t H,
                        int round_like_upstream, float *out)
{
    SK_CHECK(rgb && out && w > 0 && h > 0, SK_E_INVALID_ARG, "image prep: bad arguments");
    float *planar = malloc((size_t)(3 * w * h) * sizeof *planar);
    SK_CHECK(planar, SK_E_OOM, "image prep: out of host memory for a %lldx%lld picture",
             (long long)w, (long long)h);
    for (int64_t c = 0; c < 3; c++)
        for (int64_t i = 0; i < w * h; i++) planar[c * w * h + i] = (float)rgb[i * 3 + c] / 255.0f;
    sk_status st = SK_OK;
    if (w == W && h == H) { /* upstream skips the resize at the model's size */
        for (int64_t i = 0; i < 3 * w * h; i++) out[i] = planar[i];
    } else {
        st = sk_resize_bilinear_aa(planar, 3, h, w, out, H, W);
    }
    free(planar);
    SK_TRY(st);
    for (int64_t i = 0; i < 3 * W * H; i++) {
        float v = (out[i] - 0.5f) / 0.5f;
        if (round_like_upstream) v = sk_bf16_to_f32(sk_f32_to_bf16(sk_f16_to_f32(sk_f32_to_f16(v))));
        out[i] = v;
    }
    return SK_OK;
}
