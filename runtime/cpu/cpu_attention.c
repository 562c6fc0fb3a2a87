/* cpu_attention.c - multi-head softmax attention over a list of KV ranges.
 *
 * For each query row i and head h: scores against every key of every range in
 * order (f32 dot products), then a softmax with f64 max/sum, then the weighted
 * sum of values accumulated in f32 and divided by the f64 sum. Scores are kept
 * for one (i, h) at a time, so Nk can be tens of thousands. Single-threaded;
 * queries are processed in small blocks so each key row is reused from cache.
 */
#include "cpu_internal.h"

#include <math.h>
#include <string.h>

/* Dot product with 8 independent partial sums: a fixed-width inner loop the
 * compiler vectorises without -ffast-math. */
static inline float dot_f32(const float *a, const float *b, int64_t n)
{
    float s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t d = 0;
    for (; d + 8 <= n; d += 8)
        for (int t = 0; t < 8; t++) s[t] += a[d + t] * b[d + t];
    float r = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
    for (; d < n; d++) r += a[d] * b[d];
    return r;
}

#define SK_ATT_QB 8 /* queries per block sharing one pass over the keys */

sk_status sk_cpu_attention(sk_backend *be, sk_tensor *out, const sk_tensor *q,
                           const sk_kv_range *ranges, int nranges, float scale,
                           const sk_tensor *bias)
{
    const int64_t Nq = q->shape[0], NH = q->shape[1], HD = q->shape[2];
    int64_t Nk = 0;
    for (int r = 0; r < nranges; r++) Nk += ranges[r].len;
    const float *qd = (const float *)q->data;
    const float *bd = bias ? (const float *)bias->data : NULL;
    float *od = (float *)out->data;

    float *scores, *acc;
    SK_TRY(sk_cpu_scratch("attention", (size_t)SK_ATT_QB * (size_t)Nk * sizeof(float),
                          (void **)&scores));
    sk_status st = sk_cpu_scratch("attention", (size_t)SK_ATT_QB * (size_t)HD * sizeof(float),
                                  (void **)&acc);
    if (st != SK_OK) {
        free(scores);
        return st;
    }

    for (int64_t h = 0; h < NH; h++) {
        for (int64_t i0 = 0; i0 < Nq; i0 += SK_ATT_QB) {
            const int64_t qb = Nq - i0 < SK_ATT_QB ? Nq - i0 : SK_ATT_QB;
            double mx[SK_ATT_QB], sum[SK_ATT_QB];
            for (int64_t b = 0; b < qb; b++) mx[b] = -INFINITY;
            /* pass 1: scores and row maxima */
            int64_t j = 0;
            for (int r = 0; r < nranges; r++) {
                const float *kd = (const float *)ranges[r].k->data;
                for (int64_t t = 0; t < ranges[r].len; t++, j++) {
                    const float *krow = kd + ((ranges[r].start + t) * NH + h) * HD;
                    for (int64_t b = 0; b < qb; b++) {
                        const int64_t i = i0 + b;
                        float s = scale * dot_f32(qd + (i * NH + h) * HD, krow, HD);
                        if (bd) s += bd[(h * Nq + i) * Nk + j];
                        scores[b * Nk + j] = s;
                        if (s > mx[b]) mx[b] = s;
                    }
                }
            }
            /* pass 2: exponentials, sums and the weighted sum of values */
            memset(acc, 0, (size_t)qb * (size_t)HD * sizeof(float));
            for (int64_t b = 0; b < qb; b++) sum[b] = 0.0;
            j = 0;
            for (int r = 0; r < nranges; r++) {
                const float *vd = (const float *)ranges[r].v->data;
                for (int64_t t = 0; t < ranges[r].len; t++, j++) {
                    const float *vrow = vd + ((ranges[r].start + t) * NH + h) * HD;
                    for (int64_t b = 0; b < qb; b++) {
                        const double p = exp((double)scores[b * Nk + j] - mx[b]);
                        sum[b] += p;
                        const float pf = (float)p;
                        sk_cpu_axpy(acc + b * HD, pf, vrow, HD);
                    }
                }
            }
            for (int64_t b = 0; b < qb; b++) {
                float *o = od + (i0 + b) * NH * HD + h * HD;
                const double inv = 1.0 / sum[b];
                for (int64_t d = 0; d < HD; d++) o[d] = (float)(acc[b * HD + d] * inv);
            }
        }
    }
    free(acc);
    free(scores);
    return SK_OK;
}
