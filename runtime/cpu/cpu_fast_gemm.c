/* cpu_fast_gemm.c - linear, conv2d (im2col blocks) and attention over sgemm.
 *
 * sk_cpu_sgemm splits each product over the pool (cpu_pool.h); the cheap
 * passes between the products (bias + activation, im2col, softmax) are split
 * over it too.
 */
#include "cpu_fast_internal.h"
#include "cpu_fast_math.h"

#include <math.h>
#include <string.h>

typedef struct {
    float *y;
    const float *b;
    int64_t N;
    sk_act act;
} epi_job;

/* y[i,:] = act(y[i,:] + b) */
static void epilogue_rows(void *c, int64_t i0, int64_t i1)
{
    const epi_job *j = c;
    for (int64_t i = i0; i < i1; i++) {
        float *r = j->y + i * j->N;
        if (j->b)
            for (int64_t k = 0; k < j->N; k++) r[k] += j->b[k];
        if (j->act != SK_ACT_NONE) sk_cpu_fast_act_n(r, r, j->N, j->act);
    }
}

sk_status sk_cpu_fast_linear(sk_backend *be, sk_tensor *y, const sk_tensor *x, const sk_tensor *w,
                             const sk_tensor *b, sk_act act)
{
    const int64_t M = x->shape[0], K = x->shape[1], N = w->shape[0];
    const float *wd;
    float *wown, *bown = NULL;
    SK_TRY(sk_cpu_fast_weight_f32(w, &wd, &wown));
    const float *bd = NULL;
    if (b) {
        sk_status st = sk_cpu_fast_weight_f32(b, &bd, &bown);
        if (st != SK_OK) {
            free(wown);
            return st;
        }
    }
    float *yd = (float *)y->data;
    sk_cpu_sgemm(1, M, N, K, 1.0f, (const float *)x->data, K, wd, K, 0.0f, yd, N);
    if (bd || act != SK_ACT_NONE) {
        epi_job j = {yd, bd, N, act};
        sk_par_for(M, N >= SK_FAST_PAR_MIN / 4 ? 1 : SK_FAST_PAR_MIN / 4 / N, epilogue_rows, &j);
    }
    free(bown);
    free(wown);
    return SK_OK;
}

/* im2col of output pixels [p0, p0+pb) of image xp [Ci,H,W]: col[K][pb].
 * Walks whole output rows so the inner loop is a strided copy without
 * per-pixel divisions (contiguous when stride is 1). */
typedef struct {
    float *col;
    const float *xp;
    int64_t H, W, KH, KW, Wo, p0, pb;
    int stride, pad;
} im2col_job;

static void im2col_rows(void *c, int64_t r0, int64_t r1)
{
    const im2col_job *jb = c;
    float *col = jb->col;
    const float *xp = jb->xp;
    const int64_t H = jb->H, W = jb->W, KH = jb->KH, KW = jb->KW, Wo = jb->Wo, p0 = jb->p0,
                  pb = jb->pb;
    const int stride = jb->stride, pad = jb->pad;
    for (int64_t r = r0; r < r1; r++) {
        const int64_t ci = r / (KH * KW), ky = (r / KW) % KH, kx = r % KW;
        const float *xc = xp + ci * H * W;
        float *cr = col + r * pb;
        /* output columns [lo, hi) read inside the input row; the rest are padding */
        int64_t lo = 0, hi = Wo;
        while (lo < Wo && lo * stride - pad + kx < 0) lo++;
        while (hi > lo && (hi - 1) * stride - pad + kx >= W) hi--;
        int64_t p = p0, j = 0;
        while (j < pb) {
            const int64_t oy = p / Wo, ox0 = p % Wo;
            const int64_t n = Wo - ox0 < pb - j ? Wo - ox0 : pb - j, ox1 = ox0 + n;
            const int64_t iy = oy * stride - pad + ky;
            float *dst = cr + j - ox0; /* dst[ox] is output column ox of this row */
            if (iy < 0 || iy >= H) {
                memset(cr + j, 0, (size_t)n * sizeof(float));
            } else {
                const float *xr = xc + iy * W - pad + kx; /* xr[ox * stride] */
                const int64_t a0 = lo > ox0 ? lo : ox0, a1 = hi < ox1 ? hi : ox1;
                for (int64_t ox = ox0; ox < a0 && ox < ox1; ox++) dst[ox] = 0.0f;
                if (stride == 1 && a1 > a0)
                    memcpy(dst + a0, xr + a0, (size_t)(a1 - a0) * sizeof(float));
                else
                    for (int64_t ox = a0; ox < a1; ox++) dst[ox] = xr[ox * stride];
                for (int64_t ox = a1 > a0 ? a1 : a0; ox < ox1; ox++) dst[ox] = 0.0f;
            }
            j += n;
            p += n;
        }
    }
}

static void im2col(float *col, const float *xp, int64_t Ci, int64_t H, int64_t W, int64_t KH,
                   int64_t KW, int64_t Wo, int stride, int pad, int64_t p0, int64_t pb)
{
    im2col_job j = {col, xp, H, W, KH, KW, Wo, p0, pb, stride, pad};
    sk_par_for(Ci * KH * KW, pb >= SK_FAST_PAR_MIN ? 1 : SK_FAST_PAR_MIN / pb, im2col_rows, &j);
}

/* output pixels per im2col block: the block's columns stay within ~16 MB */
static int64_t conv_block_pixels(int64_t K, int64_t P)
{
    int64_t pb = (int64_t)(16u << 20) / (int64_t)sizeof(float) / (K ? K : 1);
    if (pb < 256) pb = 256;
    return pb < P ? pb : P;
}

typedef struct {
    float *y;
    const sk_tensor *b;
    int64_t Co, P;
} bias_job;

static void bias_planes(void *c, int64_t p0, int64_t p1)
{
    const bias_job *j = c;
    for (int64_t nc = p0; nc < p1; nc++) {
        const float bv = sk_cpu_ld(j->b->data, j->b->dtype, nc % j->Co);
        float *r = j->y + nc * j->P;
        for (int64_t k = 0; k < j->P; k++) r[k] += bv;
    }
}

sk_status sk_cpu_fast_conv2d(sk_backend *be, sk_tensor *y, const sk_tensor *x, const sk_tensor *w,
                             const sk_tensor *b, int stride, int pad)
{
    const int64_t N = x->shape[0], Ci = x->shape[1], H = x->shape[2], W = x->shape[3];
    const int64_t Co = w->shape[0], KH = w->shape[2], KW = w->shape[3];
    const int64_t Ho = y->shape[2], Wo = y->shape[3], P = Ho * Wo, K = Ci * KH * KW;
    const float *xd = (const float *)x->data;
    float *yd = (float *)y->data;
    const int direct = KH == 1 && KW == 1 && stride == 1 && pad == 0; /* x is its own im2col */
    const float *wd;
    float *wown, *col = NULL;
    SK_TRY(sk_cpu_fast_weight_f32(w, &wd, &wown));
    const int64_t PB = conv_block_pixels(K, P);
    if (!direct && P > 0) {
        sk_status st = sk_cpu_scratch("conv2d", (size_t)K * (size_t)PB * sizeof(float),
                                      (void **)&col);
        if (st != SK_OK) {
            free(wown);
            return st;
        }
    }
    for (int64_t n = 0; n < N; n++) {
        const float *xp = xd + n * Ci * H * W;
        float *yp = yd + n * Co * P;
        for (int64_t p0 = 0; p0 < P; p0 += PB) {
            const int64_t pb = P - p0 < PB ? P - p0 : PB;
            if (direct) {
                sk_cpu_sgemm(0, Co, pb, K, 1.0f, wd, K, xp + p0, P, 0.0f, yp + p0, P);
            } else {
                im2col(col, xp, Ci, H, W, KH, KW, Wo, stride, pad, p0, pb);
                sk_cpu_sgemm(0, Co, pb, K, 1.0f, wd, K, col, pb, 0.0f, yp + p0, P);
            }
        }
    }
    if (b) {
        bias_job j = {yd, b, Co, P};
        sk_par_for(N * Co, P >= SK_FAST_PAR_MIN ? 1 : SK_FAST_PAR_MIN / (P ? P : 1), bias_planes,
                   &j);
    }
    free(col);
    free(wown);
    return SK_OK;
}

/* Softmax of each row of s[qb][Nk] in place (f32 exponentials, f64 sums);
 * inv[i] = 1/sum of row i, applied after the value product. */
typedef struct {
    float *s;
    const float *bias; /* [qb, Nk] rows of T5's bias for this head and block, or NULL */
    int64_t Nk;
    double *inv;
} softmax_job;

static void softmax_part(void *c, int64_t i0, int64_t i1)
{
    const softmax_job *j = c;
    const int64_t Nk = j->Nk, N8 = Nk / 8 * 8;
    for (int64_t i = i0; i < i1; i++) {
        float *r = j->s + i * Nk;
        if (j->bias)
            for (int64_t k = 0; k < Nk; k++) r[k] += j->bias[i * Nk + k];
        /* 8 partial maxima and sums: fixed-width loops the compiler vectorises */
        float m8[8], s8[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        for (int t = 0; t < 8; t++) m8[t] = -INFINITY;
        for (int64_t k = 0; k < N8; k += 8)
            for (int t = 0; t < 8; t++) m8[t] = r[k + t] > m8[t] ? r[k + t] : m8[t];
        float mx = -INFINITY;
        for (int t = 0; t < 8; t++) mx = m8[t] > mx ? m8[t] : mx;
        for (int64_t k = N8; k < Nk; k++) mx = r[k] > mx ? r[k] : mx;
        int nan = 0;
        for (int64_t k = 0; k < Nk; k++) nan |= r[k] != r[k];
        if (nan) mx = NAN; /* a NaN score makes the row NaN, as in the reference */
        for (int64_t k = 0; k < N8; k += 8)
            for (int t = 0; t < 8; t++) {
                r[k + t] = sk_fexp(r[k + t] - mx);
                s8[t] += r[k + t];
            }
        double sum = 0.0;
        for (int t = 0; t < 8; t++) sum += s8[t];
        for (int64_t k = N8; k < Nk; k++) {
            r[k] = sk_fexp(r[k] - mx);
            sum += r[k];
        }
        j->inv[i] = 1.0 / sum;
    }
}

/* query rows per block: the block's scores stay within ~8 MB (in cache-friendly
 * pieces; tests/test_cpu_fast.c relies on this size to cross a block) */
static int64_t att_block_rows(int64_t Nq, int64_t Nk)
{
    int64_t qb = (int64_t)(8u << 20) / (int64_t)sizeof(float) / (Nk ? Nk : 1);
    if (qb < 16) qb = 16;
    return qb < Nq ? qb : Nq;
}

sk_status sk_cpu_fast_attention(sk_backend *be, sk_tensor *out, const sk_tensor *q,
                                const sk_kv_range *ranges, int nranges, float scale,
                                const sk_tensor *bias)
{
    const int64_t Nq = q->shape[0], NH = q->shape[1], HD = q->shape[2], ld = NH * HD;
    int64_t Nk = 0;
    for (int r = 0; r < nranges; r++) Nk += ranges[r].len;
    const float *qd = (const float *)q->data;
    const float *bd = bias ? (const float *)bias->data : NULL;
    float *od = (float *)out->data;
    if (Nq == 0) return SK_OK;
    if (Nk == 0) { /* softmax over nothing: the reference divides 0 by 0 */
        const int64_t n = Nq * ld;
        for (int64_t i = 0; i < n; i++) od[i] = NAN;
        return SK_OK;
    }
    const int64_t QB = att_block_rows(Nq, Nk);
    float *scores;
    double *inv;
    SK_TRY(sk_cpu_scratch("attention", (size_t)QB * (size_t)Nk * sizeof(float), (void **)&scores));
    sk_status st = sk_cpu_scratch("attention", (size_t)QB * sizeof(double), (void **)&inv);
    if (st != SK_OK) {
        free(scores);
        return st;
    }
    for (int64_t h = 0; h < NH; h++)
        for (int64_t i0 = 0; i0 < Nq; i0 += QB) {
            const int64_t qb = Nq - i0 < QB ? Nq - i0 : QB;
            const float *qh = qd + i0 * ld + h * HD;
            int64_t off = 0;
            for (int r = 0; r < nranges; r++) {
                const float *kh = (const float *)ranges[r].k->data + ranges[r].start * ld + h * HD;
                sk_cpu_sgemm(1, qb, ranges[r].len, HD, scale, qh, ld, kh, ld, 0.0f, scores + off,
                             Nk);
                off += ranges[r].len;
            }
            /* softmax of each row in place (f32 exponentials, f64 sums); the
             * 1/sum is applied after the value product */
            softmax_job sj = {scores, bd ? bd + (h * Nq + i0) * Nk : NULL, Nk, inv};
            sk_par_for(qb, Nk >= SK_FAST_PAR_MIN / 4 ? 1 : SK_FAST_PAR_MIN / 4 / Nk, softmax_part,
                       &sj);
            float *oh = od + i0 * ld + h * HD;
            off = 0;
            int first = 1; /* the first non-empty range overwrites, the others add */
            for (int r = 0; r < nranges; r++) {
                if (ranges[r].len == 0) continue;
                const float *vh = (const float *)ranges[r].v->data + ranges[r].start * ld + h * HD;
                sk_cpu_sgemm(0, qb, HD, ranges[r].len, 1.0f, scores + off, Nk, vh, ld,
                             first ? 0.0f : 1.0f, oh, ld);
                off += ranges[r].len;
                first = 0;
            }
            for (int64_t i = 0; i < qb; i++)
                for (int64_t d = 0; d < HD; d++) oh[i * ld + d] = (float)(oh[i * ld + d] * inv[i]);
        }
    free(inv);
    free(scores);
    return SK_OK;
}
