/* cmd_bench.c - `sinkstream bench`: the real streaming chunk loop of a named
 * DiT configuration with seeded random weights made directly on the device
 * (no file), timed.
 *
 * Passes, each on a fresh stream (its KV cache, scratch and graphs made
 * before its first chunk):
 *   1. warm-up (--warmup chunks): lazy kernel loading, GEMM plans, cuDNN;
 *   2. measured (--chunks): the time of every chunk (steps + clean pass,
 *      + TAEHV decode with --with-vae, + x264 with --with-encode; see
 *      run_pass for how it is taken). The chunk 0 time is the first-chunk
 *      latency; FPS, p50 and p99 come from the steady chunks
 *      (the window full); backend allocations and device mallocs are counted
 *      over the whole pass (must be 0);
 *   3. profile (unless --no-profile): the same loop up to the first steady
 *      chunk with every op call of that chunk bracketed by CUDA events (or
 *      the host clock on the CPU), graphs off; only the per-op breakdown
 *      comes from it, so the event overhead never touches the headline;
 *   4. with --compare-graph: pass 2 again with CUDA graphs the other way
 *      round; the chunks' x0 must be bitwise identical.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cuda/sk_cuda.h"
#include "runtime/engine/device.h"
#include "dit/model.h"
#include "runtime/core/log.h"
#include "runtime/output/output.h"
#include "runtime/core/progress.h"
#include "runtime/stream/stream.h"
#include "tools/bench_taehv.h"
#include "runtime/stream/vae_pipe.h"
#include "tools/cli_opts.h"
#include "tools/commands.h"
#include "vae/taehv.h"

typedef struct {
    int config;     /* 0 wan2.1-1.3b, 1 tiny */
    int device;     /* 0 cpu, 1 cuda */
    int act_dtype;  /* 0 auto, 1 f32, 2 bf16 */
    int64_t height, width, chunk, kv_window, kv_sink, seed;
    int kv_policy;  /* 0 fifo, 1 sink */
    int chunks, warmup;
    sk_int_list steps;
    double shift;
    int with_vae, with_encode, with_download, no_graph, compare_graph, no_profile, json, no_overlap;
    const char *encode_preset;
} bench_opts;

static const char *const k_configs[] = {"wan2.1-1.3b", "tiny"};

/* tiny: the shapes of the 1.3B model scaled down so the CPU runs it in a second
 * (in/out 16 like Wan 2.1, so a taew2_1-shaped decoder fits) */
static sk_dit_config config_of(int which)
{
    sk_dit_config c = sk_dit_config_wan_1_3b();
    if (which == 1) {
        c.dim = 128; c.ffn_dim = 256; c.num_heads = 2; c.head_dim = 64; c.num_layers = 2;
        c.text_dim = 64; c.freq_dim = 32; c.text_len = 16;
    }
    return c;
}

/* ------------------------------------------------------------------ profiling
 * A copy of the backend's op table whose entries record the time of each call
 * (CUDA events on the backend's stream, or the host clock on a synchronous
 * backend) under a kind name, for the profile pass only. */
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

static sk_status w_linear(sk_backend *be, sk_tensor *y, const sk_tensor *x, const sk_tensor *w,
                          const sk_tensor *b, sk_act ac)
{
    const int64_t K = w->shape[1], N = w->shape[0], D = P.cfg->dim, FF = P.cfg->ffn_dim;
    const char *kind = N == FF && K == D   ? "linear ffn up (+gelu)"
                       : N == D && K == FF ? "linear ffn down"
                       : N == D && K == D  ? "linear q/k/v/o"
                                           : "linear (other)";
    int a = prof_begin();
    sk_status st = P.inner->linear(be, y, x, w, b, ac);
    prof_end(a, kind);
    return st;
}

static sk_status w_attention(sk_backend *be, sk_tensor *out, const sk_tensor *q,
                             const sk_kv_range *r, int nr, float scale, const sk_tensor *bias)
{
    const int cross = nr == 1 && r[0].k->shape[0] == P.cfg->text_len;
    int a = prof_begin();
    sk_status st = P.inner->attention(be, out, q, r, nr, scale, bias);
    prof_end(a, cross ? "cross-attention" : "self-attention");
    return st;
}

static sk_status prof_install(sk_backend *be, const sk_dit_config *cfg)
{
    memset(&P, 0, sizeof P);
    P.be = be;
    P.cfg = cfg;
    P.inner = be->ops;
    P.table = *be->ops;
    P.phase = "dit";
    P.rec = calloc(PROF_MAX, sizeof *P.rec);
    SK_CHECK(P.rec, SK_E_OOM, "bench: out of host memory");
    if (sk_cuda_backend_stream(be)) SK_TRY(sk_cuda_timer_create(be, 2 * PROF_MAX, &P.timer));
#define SET(fn) P.table.fn = w_##fn
    SET(convert); SET(linear); SET(layernorm); SET(rmsnorm); SET(modulate); SET(gated_add);
    SET(axpby); SET(mul); SET(act); SET(attention); SET(rope3d); SET(conv2d);
    SET(pixel_shuffle); SET(pixel_unshuffle); SET(upsample_nearest); SET(concat_channels);
    SET(patchify); SET(unpatchify); SET(embedding); SET(noise); SET(copy); SET(zero);
    SET(upload); SET(download);
    if (P.inner->rmsnorm_rope3d) SET(rmsnorm_rope3d); /* else sk_op_ composes the two ops */
#undef SET
    /* the profile pass runs op by op */
    P.table.graph_begin = NULL;
    P.table.graph_end = NULL;
    P.table.graph_find = NULL;
    P.table.graph_launch = NULL;
    be->ops = &P.table;
    return SK_OK;
}

static void prof_remove(void)
{
    if (P.be && P.inner) P.be->ops = P.inner;
    sk_cuda_timer_free(&P.timer);
    free(P.rec);
    P.rec = NULL;
    P.inner = NULL;
}

/* ------------------------------------------------------------------ the loop */
typedef struct {
    const bench_opts *o;
    sk_backend *be;
    sk_dit_model *m;
    sk_stream_params sp;
    float *ctx;
    sk_taehv *vae;
    sk_backend *vae_be;   /* the decoder's own backend (stream) when overlapped */
    sk_vae_pipe *dec;
    sk_output *out;
    char out_path[64];
    int64_t video_w, video_h, video_frames;
    int is_cuda;
    size_t min_free, mem_total;
    void *x0_host;
} bench;


typedef struct {
    int n;
    double *ms;       /* wall ms per chunk */
    uint64_t *hash;   /* FNV-1a of each chunk's x0 bytes */
    uint64_t allocs, mallocs;
    uint64_t graph_records, graph_replays;
    size_t kv_bytes;
} pass_result;

static uint64_t fnv(const void *p, size_t n, uint64_t h)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

static void sample_mem(bench *b)
{
    sk_cuda_stats cs;
    if (b->is_cuda && sk_cuda_get_stats(b->be, &cs) == SK_OK) {
        if (!b->min_free || cs.mem_free < b->min_free) b->min_free = cs.mem_free;
        b->mem_total = cs.mem_total;
    }
}

static uint64_t mallocs_now(bench *b)
{
    sk_cuda_stats cs;
    return b->is_cuda && sk_cuda_get_stats(b->be, &cs) == SK_OK ? cs.device_mallocs : 0;
}

/* Downloads the x0 copies held in ring rows [0, cnt) and hashes them as
 * chunks first..first+cnt-1. */
static sk_status hash_ring(bench *b, sk_tensor *ring, int64_t rows_per_chunk, int first, int cnt,
                           pass_result *r)
{
    for (int i = 0; i < cnt; i++) {
        sk_tensor t = sk_tensor_rows(ring, i * rows_per_chunk, rows_per_chunk);
        size_t nb = sk_tensor_nbytes(&t);
        SK_TRY(sk_tensor_download_raw(&t, b->x0_host, nb));
        r->hash[first + i] = fnv(b->x0_host, nb, 0xcbf29ce484222325ull);
    }
    return SK_OK;
}

/* One pass of n chunks on a fresh stream. graphs: CUDA graphs on/off.
 * profile_chunk >= 0: op times are recorded in that chunk only.
 * Chunk times: on CUDA (unless x264 or the profiler needs the host each
 * chunk) CUDA events recorded before and after each chunk on the backend's
 * stream, with no host sync in between, as a server feeding an on-device
 * decoder runs (host time spent before the device reaches the chunk's work,
 * e.g. recording a graph, shows up as device idle inside the chunk);
 * otherwise the host clock around the chunk and a sync. Each chunk's x0 is
 * copied on the device into a ring and hashed between chunks that are not
 * timed. */
static sk_status run_pass(bench *b, int n, int graphs, int profile_chunk, pass_result *r)
{
    const bench_opts *o = b->o;
    memset(r, 0, sizeof *r);
    r->n = n;
    r->ms = calloc((size_t)n, sizeof *r->ms);
    r->hash = calloc((size_t)n, sizeof *r->hash);
    SK_CHECK(r->ms && r->hash, SK_E_OOM, "bench: out of host memory");
    sk_stream_params p = b->sp;
    p.frames = (int64_t)n * o->chunk;
    sk_stream *s = NULL;
    sk_tensor ring;
    memset(&ring, 0, sizeof ring);
    sk_cuda_timer *tm = NULL, *tv = NULL;
    const int events = b->is_cuda && !b->out && profile_chunk < 0;
    const int R = n < 16 ? n : 16;
    const int64_t rows = o->chunk;
    sk_status st = sk_stream_init(b->m, &p, &s);
    if (st != SK_OK) return st;
    s->dit->graphs = graphs;
    r->kv_bytes = sk_kv_bytes(s->kv);
    {
        int64_t rs[4] = {R * rows, b->m->cfg.out_dim, p.latent_h, p.latent_w};
        if ((st = sk_tensor_alloc(b->be, b->be->act_dtype, 4, rs, &ring)) != SK_OK) goto done;
    }
    if (events && (st = sk_cuda_timer_create(b->be, 2 * n, &tm)) != SK_OK) goto done;
    /* overlapped decode: a chunk ends when its frames are decoded (VAE stream); chunk
     * k > 0 is timed from the end of chunk k-1's decode (frames out per chunk) */
    const int ovl = b->dec && sk_vae_pipe_overlapped(b->dec);
    if (events && ovl && (st = sk_cuda_timer_create(b->be, n, &tv)) != SK_OK) goto done;
    if ((st = sk_stream_set_prompt(s, b->ctx, b->m->cfg.text_len)) != SK_OK) goto done;
    if (b->dec && (st = sk_vae_pipe_reset(b->dec)) != SK_OK) goto done;
    if ((st = sk_backend_sync(b->be)) != SK_OK) goto done;
    const uint64_t allocs0 = b->be->n_allocs, mallocs0 = mallocs_now(b),
                   vallocs0 = b->vae_be ? b->vae_be->n_allocs : 0;
    int held = 0; /* chunks in the ring not hashed yet */
    for (int k = 0; k < n; k++) {
        if (held == R) {
            if ((st = hash_ring(b, &ring, rows, k - held, held, r)) != SK_OK) goto done;
            held = 0;
        }
        P.on = k == profile_chunk;
        P.phase = "dit";
        double t0 = sk_progress_now();
        if (events) sk_cuda_timer_mark(tm);
        sk_tensor x0;
        int64_t f0;
        if ((st = sk_stream_step(s, &x0, &f0)) != SK_OK) goto done;
        if (b->dec) {
            P.phase = "vae";
            const float *rgb = NULL;
            int64_t nf = 0;
            if ((st = sk_vae_pipe_push(b->dec, &x0, &rgb, &nf)) != SK_OK) goto done;
            if (events && ovl) sk_cuda_timer_mark_on(tv, b->vae_be);
            P.phase = "encode";
            if (b->out && nf && (st = sk_output_write_frames(b->out, rgb, (int)nf)) != SK_OK)
                goto done;
            b->video_frames += nf;
        }
        if (events) {
            sk_cuda_timer_mark(tm);
        } else {
            if ((st = sk_backend_sync(b->be)) != SK_OK) goto done;
            r->ms[k] = 1e3 * (sk_progress_now() - t0);
        }
        P.on = 0;
        if (x0.shape[0] != rows) {
            st = SK_ERR(SK_E_INTERNAL, "bench: chunk %d has %lld frames", k, (long long)x0.shape[0]);
            goto done;
        }
        sk_tensor dst = sk_tensor_rows(&ring, held * rows, rows);
        if ((st = sk_tensor_copy(&dst, &x0)) != SK_OK) goto done;
        held++;
        if (profile_chunk >= 0 && (st = prof_flush()) != SK_OK) goto done;
        if (!events) {
            sample_mem(b);
            SK_LOGI("bench: chunk %d (frames %lld..%lld): %.1f ms", k, (long long)f0,
                    (long long)(f0 + rows - 1), r->ms[k]);
        }
    }
    if (b->dec) {
        const float *rgb = NULL;
        int64_t nf = 0;
        if ((st = sk_vae_pipe_flush(b->dec, &rgb, &nf)) != SK_OK) goto done;
        if (b->out && nf && (st = sk_output_write_frames(b->out, rgb, (int)nf)) != SK_OK)
            goto done;
        b->video_frames += nf;
    }
    if ((st = sk_backend_sync(b->be)) != SK_OK) goto done;
    if (b->vae_be && (st = sk_backend_sync(b->vae_be)) != SK_OK) goto done;
    r->allocs = b->be->n_allocs - allocs0 + (b->vae_be ? b->vae_be->n_allocs - vallocs0 : 0);
    r->mallocs = mallocs_now(b) - mallocs0;
    sample_mem(b);
    for (int k = 0; events && k < n; k++) {
        float ms = 0;
        if (tv)
            st = k == 0 ? sk_cuda_timer_elapsed2(tm, 0, tv, 0, &ms)
                        : sk_cuda_timer_elapsed2(tv, k - 1, tv, k, &ms);
        else
            st = sk_cuda_timer_elapsed(tm, 2 * k, 2 * k + 1, &ms);
        if (st != SK_OK) goto done;
        r->ms[k] = ms;
        SK_LOGI("bench: chunk %d: %.1f ms (CUDA events)", k, r->ms[k]);
    }
    if ((st = hash_ring(b, &ring, rows, n - held, held, r)) != SK_OK) goto done;
    r->graph_records = s->dit->n_graph_records;
    r->graph_replays = s->dit->n_graph_replays;
done:
    P.on = 0;
    sk_cuda_timer_free(&tm);
    sk_cuda_timer_free(&tv);
    sk_tensor_free(&ring);
    sk_stream_free(&s);
    return st;
}

static void pass_free(pass_result *r)
{
    free(r->ms);
    free(r->hash);
    memset(r, 0, sizeof *r);
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* nearest-rank percentile of v[0..n) */
static double pct(const double *v, int n, double q)
{
    if (n <= 0) return 0;
    double *s = malloc((size_t)n * sizeof *s);
    if (!s) return 0;
    memcpy(s, v, (size_t)n * sizeof *s);
    qsort(s, (size_t)n, sizeof *s, cmp_d);
    int i = (int)ceil(q * n) - 1;
    if (i < 0) i = 0;
    if (i >= n) i = n - 1;
    double r = s[i];
    free(s);
    return r;
}

typedef struct {
    int first, n;     /* steady chunks: [first, first + n) of the pass */
    int full_window;  /* 1 when those chunks see the whole window */
    double mean, p50, p99, min, max, fps;
} steady_stats;

static steady_stats steady_of(const bench_opts *o, const pass_result *r)
{
    steady_stats s;
    memset(&s, 0, sizeof s);
    /* chunk k attends to min(window, (k + 1) * chunk) frames: full from k0 on */
    int k0 = (int)((o->kv_window - o->chunk + o->chunk - 1) / o->chunk);
    if (k0 < 0) k0 = 0;
    s.full_window = k0 < r->n;
    s.first = s.full_window ? k0 : (r->n > 1 ? 1 : 0);
    s.n = r->n - s.first;
    const double *v = r->ms + s.first;
    s.min = s.max = v[0];
    for (int i = 0; i < s.n; i++) {
        s.mean += v[i] / s.n;
        if (v[i] < s.min) s.min = v[i];
        if (v[i] > s.max) s.max = v[i];
    }
    s.p50 = pct(v, s.n, 0.50);
    s.p99 = pct(v, s.n, 0.99);
    s.fps = s.mean > 0 ? 4.0 * (double)o->chunk / (s.mean / 1e3) : 0;
    return s;
}

/* FLOPs and the fewest bytes (every op's inputs read once, outputs written
 * once; bf16 = 2 bytes) of one chunk: steps full forwards + the clean pass
 * (which stops after the last layer's K/V write), self-attention over
 * kv_frames frames. */
static void chunk_cost(const sk_dit_config *c, int64_t S, int64_t F, int64_t kv_frames, int steps,
                       size_t es, double *flops, double *bytes)
{
    const double N = (double)(F * S), Nk = (double)(kv_frames * S), D = (double)c->dim,
                 FF = (double)c->ffn_dim, Lt = (double)c->text_len, L = (double)c->num_layers,
                 C4 = 4.0 * (double)c->in_dim, fd = (double)c->freq_dim, e = (double)es;
    /* one layer, split at the K/V write */
    double f_kv = 3 * 2 * N * D * D;
    double f_rest = 3 * 2 * N * D * D + 2 * 2 * N * D * FF + 4 * N * Nk * D + 4 * N * Lt * D;
    double b_kv = e * (3 * (D * D + N * D + N * D)      /* q k v linears */
                       + 2 * 2 * N * D                  /* modulate */
                       + 2 * 2 * N * D + 2 * 2 * N * D  /* q/k rmsnorm, rope */
                       + 2 * 2 * N * D);                /* K/V into the cache */
    double b_rest = e * (4 * N * D + 2 * Nk * D + 0     /* self-attention q, out, K, V */
                         + 3 * (D * D + 2 * N * D)      /* o, cross q, cross o */
                         + 2 * N * D + 2 * Lt * D + 2 * N * D /* cross-attention */
                         + 2 * (D * FF) + 2 * N * D + 2 * N * FF /* FFN */
                         + 3 * 3 * N * D                /* gated adds */
                         + 2 * 2 * N * D + 2 * 2 * N * D); /* norm3, cross q rmsnorm, modulate */
    double f_io = 2 * N * C4 * D + F * (2 * fd * D + 2 * D * D + 12 * D * D);
    double b_io = e * (2 * N * C4 + C4 * D + N * D);
    double f_head = 2 * N * D * C4, b_head = e * (3 * N * D + D * C4 + 2 * N * C4);
    double f_full = f_io + L * (f_kv + f_rest) + f_head;
    double b_full = b_io + L * (b_kv + b_rest) + b_head;
    double f_clean = f_io + L * f_kv + (L - 1) * f_rest;
    double b_clean = b_io + L * b_kv + (L - 1) * b_rest;
    *flops = steps * f_full + f_clean;
    *bytes = steps * b_full + b_clean;
}

/* ------------------------------------------------------------------ output */
static cJSON *stats_json(const steady_stats *s, const pass_result *r)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "fps", s->fps);
    cJSON_AddNumberToObject(j, "first_chunk_ms", r->ms[0]);
    cJSON_AddNumberToObject(j, "chunk_ms_mean", s->mean);
    cJSON_AddNumberToObject(j, "chunk_ms_p50", s->p50);
    cJSON_AddNumberToObject(j, "chunk_ms_p99", s->p99);
    cJSON_AddNumberToObject(j, "chunk_ms_min", s->min);
    cJSON_AddNumberToObject(j, "chunk_ms_max", s->max);
    cJSON_AddNumberToObject(j, "steady_first_chunk", s->first);
    cJSON_AddNumberToObject(j, "steady_chunks", s->n);
    cJSON_AddBoolToObject(j, "steady_full_window", s->full_window);
    cJSON_AddItemToObject(j, "per_chunk_ms", cJSON_CreateDoubleArray(r->ms, r->n));
    cJSON_AddNumberToObject(j, "graph_records", (double)r->graph_records);
    cJSON_AddNumberToObject(j, "graph_replays", (double)r->graph_replays);
    return j;
}

static int run(const bench_opts *o, const char *cmdline)
{
    int rc = 1;
    bench b;
    memset(&b, 0, sizeof b);
    b.o = o;
    pass_result warm, meas, cmp, prof;
    memset(&warm, 0, sizeof warm);
    memset(&meas, 0, sizeof meas);
    memset(&cmp, 0, sizeof cmp);
    memset(&prof, 0, sizeof prof);
    sk_status st;
    sk_dit_config cfg = config_of(o->config);
    static const sk_dtype act_of[] = {SK_DTYPE_F32, SK_DTYPE_F32, SK_DTYPE_BF16};
    sk_dtype act = o->act_dtype == 0 ? (o->device == 1 ? SK_DTYPE_BF16 : SK_DTYPE_F32)
                                     : act_of[o->act_dtype];
    double t_setup = sk_progress_now();
    if ((st = sk_backend_create(o->device == 1 ? "cuda" : "cpu", act, &b.be)) != SK_OK) goto fail;
    b.is_cuda = sk_cuda_backend_stream(b.be) != NULL;
    sample_mem(&b);
    const size_t free_at_start = b.min_free;
    if ((st = sk_dit_random(&cfg, b.be, act, (uint64_t)o->seed, &b.m)) != SK_OK) goto fail;
    /* a random prompt: [text_len, text_dim], ~0.1 scale like umT5 output */
    b.ctx = malloc((size_t)(cfg.text_len * cfg.text_dim) * sizeof *b.ctx);
    if (!b.ctx) { st = SK_ERR(SK_E_OOM, "bench: out of host memory"); goto fail; }
    {
        uint64_t z = (uint64_t)o->seed * 0x9E3779B97F4A7C15ull + 3;
        for (int64_t i = 0; i < cfg.text_len * cfg.text_dim; i++) {
            z = z * 6364136223846793005ull + 1442695040888963407ull;
            b.ctx[i] = 0.2f * ((float)(z >> 40) / 16777216.0f - 0.5f);
        }
    }
    const int64_t lh = o->height / 8, lw = o->width / 8;
    b.sp = sk_stream_params_default();
    b.sp.chunk_frames = o->chunk;
    b.sp.latent_h = lh;
    b.sp.latent_w = lw;
    if ((st = sk_schedule_make(o->steps.v, o->steps.n, o->shift, 1, &b.sp.sched)) != SK_OK) goto fail;
    b.sp.kv_policy = o->kv_policy == 0 ? SK_KV_FIFO : SK_KV_SINK;
    b.sp.kv_window = o->kv_window;
    b.sp.kv_sink = o->kv_sink;
    b.sp.seed = (uint64_t)o->seed;
    b.x0_host = malloc((size_t)(o->chunk * cfg.out_dim * lh * lw) * 8);
    if (!b.x0_host) { st = SK_ERR(SK_E_OOM, "bench: out of host memory"); goto fail; }
    if (o->with_vae) {
        static const int nf[4] = {256, 128, 64, 64};
        if (!o->no_overlap && sk_vae_pipe_want_overlap(b.be) &&
            (st = sk_vae_pipe_backend_create(b.be, &b.vae_be)) != SK_OK)
            goto fail;
        if ((st = sk_bench_taehv_random(b.vae_be ? b.vae_be : b.be, (int)cfg.out_dim, nf,
                                        (uint64_t)o->seed + 1, &b.vae)) != SK_OK ||
            (st = sk_vae_pipe_create(b.be, b.vae, lh, lw, (int)o->chunk,
                                     o->with_encode || o->with_download, &b.dec)) != SK_OK)
            goto fail;
        sk_vae_pipe_frame_size(b.dec, &b.video_h, &b.video_w);
    }
    if (o->with_encode) {
        snprintf(b.out_path, sizeof b.out_path, "/tmp/sinkstream-bench-%d.mkv", (int)getpid());
        sk_output_params op;
        memset(&op, 0, sizeof op);
        op.path = b.out_path;
        op.kind = SK_OUTPUT_VIDEO_FILE;
        op.width = (int)b.video_w;
        op.height = (int)b.video_h;
        op.fps_num = 16;
        op.fps_den = 1;
        op.preset = o->encode_preset;
        op.queue_frames = (int)(8 * o->chunk); /* x264 runs beside the next chunk */
        if ((st = sk_output_open(&op, &b.out)) != SK_OK) goto fail;
    }
    if ((st = sk_backend_sync(b.be)) != SK_OK) goto fail;
    t_setup = sk_progress_now() - t_setup;
    SK_LOGI("bench: %s random weights (%.2f GB) on %s, set up in %.1f s", k_configs[o->config],
            (double)b.m->weight_bytes / 1e9, b.be->name, t_setup);

    const int graphs = !o->no_graph;
    if (o->warmup > 0 && (st = run_pass(&b, o->warmup, graphs, -1, &warm)) != SK_OK) goto fail;
    if ((st = run_pass(&b, o->chunks, graphs, -1, &meas)) != SK_OK) goto fail;
    if (o->compare_graph && (st = run_pass(&b, o->chunks, !graphs, -1, &cmp)) != SK_OK) goto fail;
    steady_stats ss = steady_of(o, &meas);
    int prof_chunk = ss.full_window ? ss.first : o->chunks - 1;
    if (!o->no_profile) {
        if ((st = prof_install(b.be, &cfg)) != SK_OK) goto fail;
        st = run_pass(&b, prof_chunk + 1, 0, prof_chunk, &prof);
        prof_remove();
        if (st != SK_OK) goto fail;
    }
    if (b.out) {
        st = sk_output_close(&b.out);
        unlink(b.out_path);
        if (st != SK_OK) goto fail;
    }

    /* ---- report */
    sk_cuda_stats cs;
    memset(&cs, 0, sizeof cs);
    if (b.is_cuda) (void)sk_cuda_get_stats(b.be, &cs);
    const int64_t S = (lh / 2) * (lw / 2);
    int64_t kv_frames = o->kv_window;
    if (!ss.full_window) kv_frames = (int64_t)(ss.first + 1) * o->chunk;
    double flops, bytes;
    chunk_cost(&cfg, S, o->chunk, kv_frames, o->steps.n, sk_dtype_size(act), &flops, &bytes);
    const double tflops = ss.mean > 0 ? flops / (ss.mean / 1e3) / 1e12 : 0;
    int identical = 1;
    for (int k = 0; o->compare_graph && k < o->chunks; k++)
        if (meas.hash[k] != cmp.hash[k]) identical = 0;
    uint64_t all_hash = fnv(meas.hash, (size_t)o->chunks * sizeof *meas.hash, 0xcbf29ce484222325ull);
    double prof_total = 0, prof_chunk_ms = prof.n ? prof.ms[prof_chunk] : 0;
    for (int i = 0; i < P.nsum; i++) prof_total += P.sum[i].ms;
    /* biggest first */
    for (int i = 0; i < P.nsum; i++)
        for (int j = i + 1; j < P.nsum; j++)
            if (P.sum[j].ms > P.sum[i].ms) {
                prof_sum t = P.sum[i];
                P.sum[i] = P.sum[j];
                P.sum[j] = t;
            }
    size_t be_peak = b.be->bytes_peak + cs.fixed_bytes;
    if (b.vae_be) { /* the decoder's own backend */
        sk_cuda_stats vs;
        if (sk_cuda_get_stats(b.vae_be, &vs) == SK_OK) be_peak += b.vae_be->bytes_peak + vs.fixed_bytes;
    }
    const size_t peak_used = b.min_free && b.mem_total ? b.mem_total - b.min_free : 0;
    const size_t base_used = free_at_start && b.mem_total ? b.mem_total - free_at_start : 0;

    if (o->json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "command", cmdline);
        cJSON_AddStringToObject(j, "config", k_configs[o->config]);
        cJSON_AddStringToObject(j, "device", b.be->name);
        cJSON_AddStringToObject(j, "gpu", b.is_cuda ? cs.device_name : "");
        cJSON_AddStringToObject(j, "act_dtype", sk_dtype_name(act));
        cJSON_AddNumberToObject(j, "height", (double)o->height);
        cJSON_AddNumberToObject(j, "width", (double)o->width);
        cJSON_AddNumberToObject(j, "tokens_per_chunk", (double)(S * o->chunk));
        cJSON_AddNumberToObject(j, "chunk_frames", (double)o->chunk);
        cJSON_AddNumberToObject(j, "video_frames_per_chunk", (double)(4 * o->chunk));
        cJSON_AddNumberToObject(j, "steps", o->steps.n);
        cJSON_AddNumberToObject(j, "forwards_per_chunk", o->steps.n + 1);
        cJSON_AddStringToObject(j, "kv_policy", o->kv_policy ? "sink" : "fifo");
        cJSON_AddNumberToObject(j, "kv_sink", (double)o->kv_sink);
        cJSON_AddNumberToObject(j, "kv_window", (double)o->kv_window);
        cJSON_AddNumberToObject(j, "warmup_chunks", o->warmup);
        cJSON_AddNumberToObject(j, "chunks", o->chunks);
        cJSON_AddBoolToObject(j, "cuda_graphs", graphs && b.is_cuda);
        cJSON_AddBoolToObject(j, "with_vae", o->with_vae);
        cJSON_AddBoolToObject(j, "with_encode", o->with_encode);
        cJSON_AddBoolToObject(j, "with_download", o->with_download || o->with_encode);
        cJSON_AddBoolToObject(j, "vae_overlap", b.dec && sk_vae_pipe_overlapped(b.dec));
        cJSON_AddNumberToObject(j, "setup_s", t_setup);
        cJSON *m = stats_json(&ss, &meas);
        cJSON_AddNumberToObject(m, "forward_ms_mean", ss.mean / (o->steps.n + 1));
        cJSON_AddItemToObject(j, "measured", m);
        cJSON_AddNumberToObject(j, "fps", ss.fps);
        cJSON_AddNumberToObject(j, "first_chunk_ms", meas.ms[0]);
        cJSON_AddNumberToObject(j, "chunk_ms_p50", ss.p50);
        cJSON_AddNumberToObject(j, "chunk_ms_p99", ss.p99);
        cJSON_AddNumberToObject(j, "flops_per_chunk", flops);
        cJSON_AddNumberToObject(j, "min_bytes_per_chunk", bytes);
        cJSON_AddNumberToObject(j, "tflops", tflops);
        cJSON_AddNumberToObject(j, "h100_bf16_peak_fraction", tflops / 989.0);
        cJSON *mem = cJSON_AddObjectToObject(j, "memory");
        cJSON_AddNumberToObject(mem, "weights_bytes", (double)b.m->weight_bytes);
        cJSON_AddNumberToObject(mem, "kv_cache_bytes", (double)meas.kv_bytes);
        cJSON_AddNumberToObject(mem, "backend_peak_bytes", (double)be_peak);
        cJSON_AddNumberToObject(mem, "device_used_peak_bytes", (double)peak_used);
        cJSON_AddNumberToObject(mem, "device_used_before_model_bytes", (double)base_used);
        cJSON_AddNumberToObject(mem, "device_total_bytes", (double)b.mem_total);
        cJSON *al = cJSON_AddObjectToObject(j, "allocations_in_loop");
        cJSON_AddNumberToObject(al, "backend_allocs", (double)meas.allocs);
        cJSON_AddNumberToObject(al, "device_mallocs", (double)meas.mallocs);
        cJSON *gr = cJSON_AddObjectToObject(j, "graphs");
        cJSON_AddNumberToObject(gr, "captures", (double)cs.graphs.captures);
        cJSON_AddNumberToObject(gr, "instantiations", (double)cs.graphs.instantiations);
        cJSON_AddNumberToObject(gr, "updates", (double)cs.graphs.updates);
        cJSON_AddNumberToObject(gr, "launches", (double)cs.graphs.launches);
        cJSON_AddNumberToObject(gr, "capture_ms_total", cs.graphs.capture_ms);
        if (o->compare_graph) {
            steady_stats s2 = steady_of(o, &cmp);
            cJSON *c = stats_json(&s2, &cmp);
            cJSON_AddBoolToObject(c, "cuda_graphs", !graphs && b.is_cuda);
            cJSON_AddBoolToObject(c, "bitwise_identical", identical);
            cJSON_AddItemToObject(j, "compare", c);
        }
        if (!o->no_profile) {
            cJSON *pr = cJSON_AddObjectToObject(j, "profile");
            cJSON_AddNumberToObject(pr, "chunk", prof_chunk);
            cJSON_AddStringToObject(pr, "timer", b.is_cuda ? "cuda events" : "host clock");
            cJSON_AddNumberToObject(pr, "chunk_ms", prof_chunk_ms);
            cJSON_AddNumberToObject(pr, "ops_ms_total", prof_total);
            cJSON *ops = cJSON_AddArrayToObject(pr, "ops");
            for (int i = 0; i < P.nsum; i++) {
                cJSON *e = cJSON_CreateObject();
                cJSON_AddStringToObject(e, "phase", P.sum[i].phase);
                cJSON_AddStringToObject(e, "op", P.sum[i].kind);
                cJSON_AddNumberToObject(e, "ms", P.sum[i].ms);
                cJSON_AddNumberToObject(e, "calls", (double)P.sum[i].calls);
                cJSON_AddNumberToObject(e, "pct", prof_total > 0 ? 100 * P.sum[i].ms / prof_total : 0);
                cJSON_AddItemToArray(ops, e);
            }
        }
        char hs[24];
        snprintf(hs, sizeof hs, "%016llx", (unsigned long long)all_hash);
        cJSON_AddStringToObject(j, "x0_hash", hs);
        char *txt = cJSON_Print(j);
        cJSON_Delete(j);
        if (txt) {
            printf("%s\n", txt);
            free(txt);
        }
    } else {
        printf("sinkstream bench: %s on %s%s%s (%s activations), %lldx%lld, chunk %lld (%lld tokens), "
               "%d steps + clean pass, KV %s (sink %lld, window %lld)%s%s\n",
               k_configs[o->config], b.be->name, b.is_cuda ? " " : "", b.is_cuda ? cs.device_name : "",
               sk_dtype_name(act), (long long)o->width, (long long)o->height, (long long)o->chunk,
               (long long)(S * o->chunk), o->steps.n, o->kv_policy ? "sink" : "fifo",
               (long long)o->kv_sink, (long long)o->kv_window,
               !o->with_vae ? "" : b.dec && sk_vae_pipe_overlapped(b.dec)
                                       ? ", + TAEHV decode (second stream, overlapped)"
                                       : ", + TAEHV decode (in turn)",
               o->with_encode ? " + x264" : o->with_download ? " + frames to the host" : "");
        printf("  CUDA graphs %s; %d warm-up chunks, %d measured\n",
               graphs && b.is_cuda ? "on" : "off", o->warmup, o->chunks);
        printf("  steady state (%d chunks from chunk %d%s): %.2f video fps, chunk p50 %.1f ms, p99 %.1f ms "
               "(mean %.1f, min %.1f, max %.1f); %.1f ms per forward\n",
               ss.n, ss.first, ss.full_window ? ", window full" : ", window NOT full", ss.fps, ss.p50,
               ss.p99, ss.mean, ss.min, ss.max, ss.mean / (o->steps.n + 1));
        printf("  first chunk: %.1f ms\n", meas.ms[0]);
        printf("  %.4g TFLOP and >= %.4g GB per chunk: %.4g TFLOP/s (%.2g%% of the H100's 989 "
               "bf16 dense)\n", flops / 1e12, bytes / 1e9, tflops, 100 * tflops / 989.0);
        printf("  memory: weights %.2f GB, KV cache %.2f GB, backend peak %.2f GB, device used peak "
               "%.2f GB (before the model %.2f GB)\n", (double)b.m->weight_bytes / 1e9,
               (double)meas.kv_bytes / 1e9, (double)be_peak / 1e9,
               (double)peak_used / 1e9, (double)base_used / 1e9);
        printf("  allocations in the measured chunk loop: %llu backend, %llu cudaMalloc\n",
               (unsigned long long)meas.allocs, (unsigned long long)meas.mallocs);
        if (b.is_cuda)
            printf("  graphs: %llu recorded (%llu instantiated, %llu updated), %llu launched, "
                   "%.1f ms host recording in all\n", (unsigned long long)cs.graphs.captures,
                   (unsigned long long)cs.graphs.instantiations,
                   (unsigned long long)cs.graphs.updates, (unsigned long long)cs.graphs.launches,
                   cs.graphs.capture_ms);
        if (o->compare_graph) {
            steady_stats s2 = steady_of(o, &cmp);
            printf("  compare, graphs %s: %.2f video fps, p50 %.1f ms, p99 %.1f ms; x0 of every chunk "
                   "%s\n", !graphs && b.is_cuda ? "on" : "off", s2.fps, s2.p50, s2.p99,
                   identical ? "bitwise identical" : "DIFFERS");
        }
        if (!o->no_profile) {
            printf("  per-op time in chunk %d (op by op, %s; chunk took %.1f ms, ops %.1f ms):\n",
                   prof_chunk, b.is_cuda ? "CUDA events" : "host clock", prof_chunk_ms, prof_total);
            for (int i = 0; i < P.nsum; i++)
                printf("    %-7s %-28s %9.2f ms %6lld calls %5.1f%%\n", P.sum[i].phase,
                       P.sum[i].kind, P.sum[i].ms, (long long)P.sum[i].calls,
                       prof_total > 0 ? 100 * P.sum[i].ms / prof_total : 0);
        }
    }
    rc = 0;
    if (meas.allocs || meas.mallocs) {
        fprintf(stderr, "sinkstream bench: the chunk loop allocated (%llu backend, %llu cudaMalloc)\n",
                (unsigned long long)meas.allocs, (unsigned long long)meas.mallocs);
        rc = 1;
    }
    if (o->compare_graph && !identical) {
        fprintf(stderr, "sinkstream bench: graphs on and off gave different latents\n");
        rc = 1;
    }
    goto done;
fail:
    fprintf(stderr, "sinkstream bench: %s\n", sk_error_message());
done:
    prof_remove();
    if (b.out) {
        (void)sk_output_close(&b.out);
        unlink(b.out_path);
    }
    pass_free(&warm);
    pass_free(&meas);
    pass_free(&cmp);
    pass_free(&prof);
    sk_vae_pipe_free(&b.dec);
    sk_taehv_free(&b.vae);
    sk_backend_free_(&b.vae_be);
    sk_dit_free(&b.m);
    sk_backend_free_(&b.be);
    free(b.ctx);
    free(b.x0_host);
    return rc;
}

int sk_cmd_bench(int argc, char **argv)
{
    bench_opts o = {.config = 0, .device = 1, .chunk = 3, .kv_window = 12, .kv_sink = 3,
                    .kv_policy = 1, .chunks = 10, .warmup = 8,
                    .steps = {4, {1000, 750, 500, 250}}, .shift = 5.0,
                    .encode_preset = "veryfast"};
#define GROUP(t) {.name = (t), .type = SK_OPT_GROUP}
#define OPT(n_, ty_, f_, def_, h_, env_, mv_) \
    .name = (n_), .type = (ty_), .field = (f_), .def_text = (def_), .help = (h_), .env = (env_), \
    .metavar = (mv_)
    const sk_opt opts[] = {
        GROUP("Model"),
        {OPT("config", SK_OPT_ENUM, &o.config, NULL, "DiT configuration (random weights made on "
             "the device): wan2.1-1.3b (dim 1536, 30 layers) or tiny (CI-sized)", NULL, NULL),
         .choices = "wan2.1-1.3b|tiny"},
        {OPT("seed", SK_OPT_INT64, &o.seed, NULL, "seed of the weights, prompt and noise", NULL,
             "N")},
        GROUP("Video"),
        {OPT("height", SK_OPT_INT64, &o.height, "480 (wan2.1-1.3b), 64 (tiny)",
             "height in pixels (multiple of 16)", NULL, "PX"), .lo = 0, .hi = 16384},
        {OPT("width", SK_OPT_INT64, &o.width, "832 (wan2.1-1.3b), 64 (tiny)",
             "width in pixels (multiple of 16)", NULL, "PX"), .lo = 0, .hi = 16384},
        {OPT("chunk", SK_OPT_INT64, &o.chunk, NULL, "latent frames per chunk (4 video frames "
             "each)", NULL, "N"), .lo = 1, .hi = 64},
        {OPT("steps", SK_OPT_INT_LIST, &o.steps, NULL, "denoising timesteps (warped by --shift); "
             "a clean pass follows", NULL, "LIST"), .lo = 1, .hi = 1000},
        {OPT("shift", SK_OPT_DOUBLE, &o.shift, NULL, "flow-matching timestep shift", NULL, "X"),
         .lo = 0.01, .hi = 1000},
        GROUP("KV cache"),
        {OPT("kv-policy", SK_OPT_ENUM, &o.kv_policy, NULL,
             "fifo (Self-Forcing) or sink (LongLive)", NULL, NULL), .choices = "fifo|sink"},
        {OPT("kv-window", SK_OPT_INT64, &o.kv_window, NULL,
             "frames a chunk attends to, sink and itself included", NULL, "N"), .lo = 1, .hi = 4096},
        {OPT("kv-sink", SK_OPT_INT64, &o.kv_sink, NULL, "first frames kept as the attention sink "
             "(0 with fifo)", NULL, "N"), .lo = 0, .hi = 4096},
        GROUP("Run"),
        {OPT("chunks", SK_OPT_INT, &o.chunks, NULL, "measured chunks (steady state once the "
             "window is full)", NULL, "N"), .lo = 1, .hi = 100000},
        {OPT("warmup", SK_OPT_INT, &o.warmup, NULL, "warm-up chunks on a separate stream first "
             "(enough for every KV layout of the window to have run: plans, graphs)", NULL, "N"),
         .lo = 0, .hi = 1000},
        {OPT("with-vae", SK_OPT_FLAG, &o.with_vae, NULL, "also decode every chunk with a random "
             "taew2_1-shaped TAEHV", NULL, NULL)},
        {OPT("with-download", SK_OPT_FLAG, &o.with_download, NULL, "also copy the decoded "
             "frames to the host as f32 (what generate hands its outputs; implies --with-vae)",
             NULL, NULL)},
        {OPT("with-encode", SK_OPT_FLAG, &o.with_encode, NULL, "also encode the frames with x264 "
             "to a temporary file (implies --with-vae; needs FFmpeg)", NULL, NULL)},
        {OPT("no-overlap", SK_OPT_FLAG, &o.no_overlap, NULL, "decode each chunk on the DiT's "
             "stream after it, instead of on a second stream beside the next chunk's DiT "
             "(SK_NO_VAE_OVERLAP=1 does the same everywhere)", NULL, NULL)},
        {OPT("encode-preset", SK_OPT_STRING, &o.encode_preset, NULL, "x264 preset for "
             "--with-encode", NULL, "NAME")},
        {OPT("no-cuda-graph", SK_OPT_FLAG, &o.no_graph, NULL, "run every op on its own (no CUDA "
             "graphs; SK_NO_CUDA_GRAPH=1 does the same everywhere)", NULL, NULL)},
        {OPT("compare-graph", SK_OPT_FLAG, &o.compare_graph, NULL, "measure again with graphs the "
             "other way round and check the latents are bitwise identical", NULL, NULL)},
        {OPT("no-profile", SK_OPT_FLAG, &o.no_profile, NULL, "skip the per-op profile pass",
             NULL, NULL)},
        GROUP("Device and output"),
        {OPT("device", SK_OPT_ENUM, &o.device, NULL, "backend", "SK_DEVICE", NULL),
         .choices = "cpu|cuda"},
        {OPT("act-dtype", SK_OPT_ENUM, &o.act_dtype, NULL,
             "activation and weight dtype (auto: f32 on cpu, bf16 on cuda)", NULL, NULL),
         .choices = "auto|f32|bf16"},
        {OPT("json", SK_OPT_FLAG, &o.json, NULL, "print one JSON object instead of the table",
             NULL, NULL)},
    };
#undef OPT
#undef GROUP
    sk_cli cli = {"sinkstream bench", "[options]",
                  "Time the streaming chunk loop (denoising steps + clean pass over the KV cache) of a\n"
                  "named DiT configuration with random weights made on the device: FPS, first-chunk\n"
                  "latency, p50/p99 chunk time, per-op breakdown, peak memory.",
                  opts, (int)(sizeof opts / sizeof opts[0]), 0, 0};
    sk_cli_pos pos;
    int rc = sk_cli_parse(&cli, argc, argv, &pos);
    if (rc >= 0) return rc;

    if (!o.height) o.height = o.config == 1 ? 64 : 480;
    if (!o.width) o.width = o.config == 1 ? 64 : 832;
    if (o.height % 16 || o.width % 16)
        return sk_cli_usage_error(&cli, "--height %lld / --width %lld: both must be multiples of 16 "
                                        "(the 8x VAE and the 2x2 patch)",
                                  (long long)o.height, (long long)o.width);
    if (o.kv_policy == 0 && o.kv_sink != 0) {
        /* fifo keeps no sink: the default 3 becomes 0 unless given explicitly */
        int given = 0;
        for (int i = 1; i < argc; i++)
            if (!strncmp(argv[i], "--kv-sink", 9)) given = 1;
        if (given)
            return sk_cli_usage_error(&cli, "--kv-sink %lld with --kv-policy fifo: fifo keeps no "
                                            "sink (use --kv-policy sink)", (long long)o.kv_sink);
        o.kv_sink = 0;
    }
    if (o.kv_sink + o.chunk > o.kv_window)
        return sk_cli_usage_error(&cli, "--kv-window %lld is too small for --kv-sink %lld plus a "
                                        "chunk of %lld frames", (long long)o.kv_window,
                                  (long long)o.kv_sink, (long long)o.chunk);
    if (o.with_download) o.with_vae = 1;
    if (o.with_encode) {
        o.with_vae = 1;
        if (!sk_output_kind_available(SK_OUTPUT_VIDEO_FILE))
            return sk_cli_usage_error(&cli, "--with-encode: this build has no FFmpeg (rebuild with "
                                            "libavcodec, -DSK_FFMPEG=ON)");
    }
    if (o.compare_graph && o.device == 0)
        SK_LOGI("bench: --compare-graph on the CPU compares two plain runs (no graphs there)");
    sk_schedule sched;
    if (sk_schedule_make(o.steps.v, o.steps.n, o.shift, 1, &sched) != SK_OK)
        return sk_cli_usage_error(&cli, "%s", sk_error_message());
    char cmdline[1024];
    size_t len = (size_t)snprintf(cmdline, sizeof cmdline, "sinkstream");
    for (int i = 0; i < argc && len < sizeof cmdline; i++)
        len += (size_t)snprintf(cmdline + len, sizeof cmdline - len, " %s", argv[i]);
    return run(&o, cmdline);
}
