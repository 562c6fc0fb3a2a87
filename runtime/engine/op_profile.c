/* op_profile.c - see op_profile.h. Moved from tools/cmd_bench.c (which
 * installed it around its profile pass) so that any session can be profiled. */
#include "runtime/engine/op_profile.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/sk_cuda.h"
#include "runtime/core/progress.h"

#define PROF_KINDS 48
#define PROF_MAX 40000

typedef struct {
    const char *phase, *kind;
    int a, b;          /* timer marks (CUDA) */
    double t;          /* host seconds (CPU) */
} prof_rec;

typedef struct {
    const char *phase, *kind;
    double ms;
    int64_t calls;
} prof_sum;

static struct {
    const sk_backend_ops *inner;
    sk_backend_ops table;
    sk_backend *be;
    sk_cuda_timer *timer; /* NULL: host clock */
    int on;
    const char *phase;
    prof_rec *rec;
    int n;
    prof_sum sum[PROF_KINDS];
    int nsum;
    const sk_dit_config *cfg;
} P;

static double P_host0;
static int prof_begin(void)
{
    if (!P.on || P.n >= PROF_MAX) return -1;
    if (P.timer) return sk_cuda_timer_mark(P.timer);
    P_host0 = sk_progress_now();
    return 0;
}

static void prof_end(int a, const char *kind)
{
    if (a < 0 || !P.on || P.n >= PROF_MAX) return;
    prof_rec *r = &P.rec[P.n];
    r->phase = P.phase;
    r->kind = kind;
    r->a = a;
    if (P.timer) {
        r->b = sk_cuda_timer_mark(P.timer);
        if (r->b < 0) return;
    } else {
        r->t = sk_progress_now() - P_host0;
    }
    P.n++;
}

static void prof_add(const char *phase, const char *kind, double ms)
{
    int i = 0;
    while (i < P.nsum && (strcmp(P.sum[i].kind, kind) || strcmp(P.sum[i].phase, phase))) i++;
    if (i == P.nsum) {
        if (P.nsum == PROF_KINDS) return;
        P.sum[P.nsum++] = (prof_sum){phase, kind, 0, 0};
    }
    P.sum[i].ms += ms;
    P.sum[i].calls++;
}

/* Reads the recorded times (waits for the device) into the sums. */
static sk_status prof_flush(void)
{
    for (int i = 0; i < P.n; i++) {
        double ms = 1e3 * P.rec[i].t;
        if (P.timer) {
            float f = 0;
            SK_TRY(sk_cuda_timer_elapsed(P.timer, P.rec[i].a, P.rec[i].b, &f));
            ms = f;
        }
        prof_add(P.rec[i].phase, P.rec[i].kind, ms);
    }
    P.n = 0;
    sk_cuda_timer_reset(P.timer);
    return SK_OK;
}

#define W0(fn, kind, params, args)                                 \
    static sk_status w_##fn params                                 \
    {                                                              \
        int a_ = prof_begin();                                     \
        sk_status st_ = P.inner->fn args;                          \
        prof_end(a_, kind);                                        \
        return st_;                                                \
    }

W0(convert, "convert", (sk_backend *be, sk_tensor *y, const sk_tensor *x), (be, y, x))
W0(layernorm, "layernorm", (sk_backend *be, sk_tensor *y, const sk_tensor *x, const sk_tensor *w,
                            const sk_tensor *b, float eps), (be, y, x, w, b, eps))
W0(rmsnorm, "rmsnorm", (sk_backend *be, sk_tensor *y, const sk_tensor *x, const sk_tensor *w,
                        float eps), (be, y, x, w, eps))
W0(modulate, "modulate", (sk_backend *be, sk_tensor *y, const sk_tensor *x, const sk_tensor *mod,
                          int i_shift, int i_scale, int64_t rpg, int ln, float eps),
   (be, y, x, mod, i_shift, i_scale, rpg, ln, eps))
W0(gated_add, "gated_add", (sk_backend *be, sk_tensor *x, const sk_tensor *y, const sk_tensor *mod,
                            int i_gate, int64_t rpg), (be, x, y, mod, i_gate, rpg))
W0(axpby, "axpby", (sk_backend *be, sk_tensor *y, float a, const sk_tensor *x, float b,
                    const sk_tensor *z), (be, y, a, x, b, z))
W0(mul, "mul", (sk_backend *be, sk_tensor *y, const sk_tensor *x, const sk_tensor *z), (be, y, x, z))
W0(act, "act", (sk_backend *be, sk_tensor *y, const sk_tensor *x, sk_act ac), (be, y, x, ac))
W0(rope3d, "rope3d", (sk_backend *be, sk_tensor *x, int64_t F, int64_t Hp, int64_t Wp, int64_t t0,
                      double theta), (be, x, F, Hp, Wp, t0, theta))
W0(rmsnorm_rope3d, "rmsnorm + rope3d (q, k)", (sk_backend *be, sk_tensor *y, const sk_tensor *x,
                                             const sk_tensor *w, float eps, int64_t F, int64_t Hp,
                                             int64_t Wp, int64_t t0, double theta),
   (be, y, x, w, eps, F, Hp, Wp, t0, theta))
W0(conv2d, "conv2d", (sk_backend *be, sk_tensor *y, const sk_tensor *x, const sk_tensor *w,
                      const sk_tensor *b, int stride, int pad), (be, y, x, w, b, stride, pad))
W0(pixel_shuffle, "pixel_shuffle", (sk_backend *be, sk_tensor *y, const sk_tensor *x, int p),
   (be, y, x, p))
W0(pixel_unshuffle, "pixel_unshuffle", (sk_backend *be, sk_tensor *y, const sk_tensor *x, int p),
   (be, y, x, p))
W0(upsample_nearest, "upsample_nearest", (sk_backend *be, sk_tensor *y, const sk_tensor *x, int s),
   (be, y, x, s))
W0(concat_channels, "concat_channels", (sk_backend *be, sk_tensor *y, const sk_tensor *a,
                                        const sk_tensor *b), (be, y, a, b))
W0(patchify, "patchify", (sk_backend *be, sk_tensor *y, const sk_tensor *x), (be, y, x))
W0(unpatchify, "unpatchify", (sk_backend *be, sk_tensor *y, const sk_tensor *x), (be, y, x))
W0(embedding, "embedding", (sk_backend *be, sk_tensor *y, const sk_tensor *t, const sk_tensor *ids),
   (be, y, t, ids))
W0(noise, "noise", (sk_backend *be, sk_tensor *y, uint64_t seed, int64_t f0, uint32_t stream),
   (be, y, seed, f0, stream))
W0(copy, "copy (KV write, ...)", (sk_backend *be, void *d, const void *s, size_t n), (be, d, s, n))
W0(zero, "zero", (sk_backend *be, void *d, size_t n), (be, d, n))
W0(upload, "upload (host to device)", (sk_backend *be, void *d, const void *s, size_t n),
   (be, d, s, n))
W0(download, "download (device to host)", (sk_backend *be, void *d, const void *s, size_t n),
   (be, d, s, n))

/* which of the DiT's linears w is, from its shape [N, K]: the profile's line for it */
static const char *linear_kind(const sk_tensor *w, int fp8)
{
    static const char *const names[2][4] = {
        {"linear ffn up (+gelu)", "linear ffn down", "linear q/k/v/o", "linear (other)"},
        {"fp8 linear ffn up (+gelu)", "fp8 linear ffn down", "fp8 linear q/k/v/o",
         "fp8 linear (other)"}};
    const int64_t K = w->shape[1], N = w->shape[0], D = P.cfg->dim, FF = P.cfg->ffn_dim;
    const int k = N == FF && K == D ? 0 : N == D && K == FF ? 1 : N == D && K == D ? 2 : 3;
    return names[fp8 ? 1 : 0][k];
}

static sk_status w_linear(sk_backend *be, sk_tensor *y, const sk_tensor *x, const sk_tensor *w,
                          const sk_tensor *b, sk_act ac)
{
    const char *kind = linear_kind(w, 0);
    int a = prof_begin();
    sk_status st = P.inner->linear(be, y, x, w, b, ac);
    prof_end(a, kind);
    return st;
}

static sk_status w_linear_fp8(sk_backend *be, sk_tensor *y, const sk_tensor *q,
                              const sk_tensor *sx, const sk_tensor *w, const sk_tensor *sw,
                              const sk_tensor *b, sk_act ac)
{
    const char *kind = linear_kind(w, 1);
    int a = prof_begin();
    sk_status st = P.inner->linear_fp8(be, y, q, sx, w, sw, b, ac);
    prof_end(a, kind);
    return st;
}

W0(quantize_rows, "fp8 quantize (activation rows)", (sk_backend *be, sk_tensor *q, sk_tensor *s,
                                                     const sk_tensor *x), (be, q, s, x))

W0(quantize_rows_pow2, "fp8 quantize (KV cache frames)", (sk_backend *be, sk_tensor *q,
                                                           sk_tensor *s, const sk_tensor *x),
   (be, q, s, x))

static sk_status w_attention(sk_backend *be, sk_tensor *out, const sk_tensor *q,
                             const sk_kv_range *r, int nr, float scale, const sk_tensor *bias)
{
    const int cross = nr == 1 && r[0].k->shape[0] == P.cfg->text_len;
    int a = prof_begin();
    sk_status st = P.inner->attention(be, out, q, r, nr, scale, bias);
    prof_end(a, cross ? "cross-attention" : "self-attention");
    return st;
}

static sk_status w_attention_fp8(sk_backend *be, sk_tensor *out, const sk_tensor *q,
                                 const sk_kv_range *r, int nr, float scale)
{
    int a = prof_begin();
    sk_status st = P.inner->attention_fp8(be, out, q, r, nr, scale);
    prof_end(a, "self-attention fp8");
    return st;
}

static pthread_mutex_t g_prof_mu = PTHREAD_MUTEX_INITIALIZER;

sk_status sk_op_profile_begin(sk_backend *be, const sk_dit_config *cfg)
{
    pthread_mutex_lock(&g_prof_mu);
    memset(&P, 0, sizeof P);
    P.be = be;
    P.cfg = cfg;
    P.inner = be->ops;
    P.table = *be->ops;
    P.phase = "dit";
    P.rec = calloc(PROF_MAX, sizeof *P.rec);
    sk_status st = P.rec ? SK_OK : SK_ERR(SK_E_OOM, "profile: out of host memory");
    if (st == SK_OK && sk_cuda_backend_stream(be))
        st = sk_cuda_timer_create(be, 2 * PROF_MAX, &P.timer);
    if (st != SK_OK) {
        free(P.rec);
        memset(&P, 0, sizeof P);
        pthread_mutex_unlock(&g_prof_mu);
        return st;
    }
#define SET(fn) P.table.fn = w_##fn
    SET(convert); SET(linear); SET(layernorm); SET(rmsnorm); SET(modulate); SET(gated_add);
    SET(axpby); SET(mul); SET(act); SET(attention); SET(rope3d); SET(conv2d);
    SET(pixel_shuffle); SET(pixel_unshuffle); SET(upsample_nearest); SET(concat_channels);
    SET(patchify); SET(unpatchify); SET(embedding); SET(noise); SET(copy); SET(zero);
    SET(upload); SET(download);
    if (P.inner->rmsnorm_rope3d) SET(rmsnorm_rope3d); /* else sk_op_ composes the two ops */
    if (P.inner->linear_fp8) SET(linear_fp8);
    if (P.inner->quantize_rows) SET(quantize_rows);
    if (P.inner->attention_fp8) SET(attention_fp8);
    if (P.inner->quantize_rows_pow2) SET(quantize_rows_pow2);
#undef SET
    /* the profiled chunk runs op by op */
    P.table.graph_begin = NULL;
    P.table.graph_end = NULL;
    P.table.graph_find = NULL;
    P.table.graph_launch = NULL;
    be->ops = &P.table;
    P.on = 1;
    return SK_OK;
}

void sk_op_profile_phase(const char *phase)
{
    if (P.on) P.phase = phase;
}

sk_status sk_op_profile_end(sk_op_time **ops, int *n)
{
    *ops = NULL;
    *n = 0;
    if (!P.inner) return SK_OK; /* not begun */
    P.on = 0;
    sk_status st = prof_flush();
    P.be->ops = P.inner;
    sk_cuda_timer_free(&P.timer);
    free(P.rec);
    P.rec = NULL;
    P.inner = NULL;
    /* biggest first */
    for (int i = 0; i < P.nsum; i++)
        for (int j = i + 1; j < P.nsum; j++)
            if (P.sum[j].ms > P.sum[i].ms) {
                prof_sum t = P.sum[i];
                P.sum[i] = P.sum[j];
                P.sum[j] = t;
            }
    if (st == SK_OK && P.nsum) {
        *ops = calloc((size_t)P.nsum, sizeof **ops);
        if (!*ops) {
            st = SK_ERR(SK_E_OOM, "profile: out of host memory");
        } else {
            for (int i = 0; i < P.nsum; i++)
                (*ops)[i] = (sk_op_time){P.sum[i].phase, P.sum[i].kind, P.sum[i].ms,
                                         P.sum[i].calls};
            *n = P.nsum;
        }
    }
    pthread_mutex_unlock(&g_prof_mu);
    return st;
}
