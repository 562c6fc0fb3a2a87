/* cmd_bench.c - `sinkstream bench`: the real streaming chunk loop of a named
 * DiT configuration with seeded random weights made directly on the device
 * (no file), timed. A client of the public API (runtime/sinkstream.h): an
 * engine with random_model, one session with stats per pass; the timing,
 * hashing, allocation counting and the op profiler are the session's
 * (runtime/engine/session_stats.c, op_profile.c). Options and printing are here.
 *
 * Passes, each on a fresh session (its KV cache, scratch and graphs made
 * before its first chunk):
 *   1. warm-up (--warmup chunks): lazy kernel loading, GEMM plans, cuDNN;
 *   2. measured (--chunks): the time of every chunk (steps + clean pass,
 *      + TAEHV decode with --with-vae, + x264 with --with-encode; see
 *      session_stats.c for how it is taken). The chunk 0 time is the first-chunk
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

#include "dit/config.h"
#include "dit/model.h"
#include "runtime/core/log.h"
#include "runtime/core/progress.h"
#include "runtime/output/output.h"
#include "runtime/sinkstream.h"
#include "sampler/schedule.h"
#include "tools/cli_device.h"
#include "tools/cli_opts.h"
#include "tools/commands.h"

typedef struct {
    int config;     /* 0 wan2.1-1.3b, 1 tiny, 2 wan2.2-5b (LongLive 2.0), 3 tiny-ti2v */
    int device;     /* 0 cpu, 1 cuda */
    int act_dtype;  /* 0 auto, 1 f32, 2 bf16, 3 fp8 (--dtype: auto activations, fp8 DiT) */
    int compare_dtype; /* --compare-dtype: 0 none, else as act_dtype (1 f32, 2 bf16, 3 fp8) */
    int64_t height, width, chunk, kv_window, kv_sink, seed;
    int kv_policy;  /* 0 fifo, 1 sink, 2 multishot */
    int sampler;    /* 0 renoise (--steps), 1 unipc (--num-steps) */
    int num_steps;
    int chunks, warmup;
    sk_int_list steps;
    double shift;
    int with_vae, with_encode, with_download, no_graph, compare_graph, no_profile, json, no_overlap;
    const char *encode_preset;
    int with_input, input_live; /* video-to-video: synthetic input frames (docs/INPUTS.md) */
    double strength;
} bench_opts;

/* names of sk_engine_params.random_model (runtime/engine/random_model.c) */
static const char *const k_configs[] = {"wan2.1-1.3b", "tiny", "wan2.2-5b", "tiny-ti2v"};
static const char *const k_policies[] = {"fifo", "sink", "multishot"};

/* the 48-channel Wan2.2-TI2V-5B family (LongLive 2.0): VAE stride 16, UniPC, multishot */
static int is_ti2v(int config) { return config >= 2; }
static int vae_stride(int config) { return is_ti2v(config) ? 16 : 8; }
/* denoising forwards per chunk (a clean pass follows) */
static int n_forwards(const bench_opts *o) { return o->sampler ? o->num_steps : o->steps.n; }

/* ------------------------------------------------------------------ the loop
 * Everything below runs through the public API (runtime/sinkstream.h): an
 * engine of random weights (random_model, random_vae), one session per pass
 * with stats on (chunk times, x0 hashes, allocations; docs/API.md "Measuring a
 * session"), and the engine's device counters. */
typedef struct {
    const bench_opts *o;
    sk_engine *e;
    sk_engine_info info;
    float *ctx;            /* the random prompt [text_len, text_dim] */
    char out_path[64];     /* --with-encode: the x264 file (removed at the end) */
    int is_cuda;
    int vae_overlap;       /* the decoder ran on a second stream (set by the passes) */
} bench;

typedef struct {
    int n;
    double *ms;       /* ms per chunk (the session's timer) */
    uint64_t *hash;   /* FNV-1a of each chunk's x0 bytes */
    uint64_t allocs, mallocs;
    uint64_t graph_records, graph_replays;
    size_t kv_bytes;
    sk_op_time *ops;  /* profile pass: the profiled chunk's time by op */
    int n_ops;
    sk_session_input_status in; /* --with-input: latency, frames */
    double *wall_ms;  /* host wall time of each step (input read, encode, DiT, decode) */
} pass_result;

static uint64_t fnv(const void *p, size_t n, uint64_t h)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

/* One pass of n chunks on a fresh session (its KV cache, scratch and graphs made before its
 * first chunk). graphs: CUDA graphs on/off. profile_chunk >= 0: op times are recorded in
 * that chunk only. How chunks are timed: runtime/engine/session_stats.c. */
static sk_status run_pass(bench *b, int n, int graphs, int profile_chunk, pass_result *r,
                          float *keep)
{
    const bench_opts *o = b->o;
    memset(r, 0, sizeof *r);
    r->n = n;
    r->ms = calloc((size_t)n, sizeof *r->ms);
    r->hash = calloc((size_t)n, sizeof *r->hash);
    r->wall_ms = calloc((size_t)n, sizeof *r->wall_ms);
    SK_CHECK(r->ms && r->hash && r->wall_ms, SK_E_OOM, "bench: out of host memory");
    sk_session_params sp = sk_session_params_default();
    sp.frames = (int64_t)n * o->chunk;
    sp.chunk = o->chunk;
    sp.latent_h = o->height / vae_stride(o->config);
    sp.latent_w = o->width / vae_stride(o->config);
    SK_CHECK(o->steps.n <= SK_MAX_STEPS, SK_E_INVALID_ARG, "bench: --steps: at most %d",
             SK_MAX_STEPS);
    memcpy(sp.steps, o->steps.v, (size_t)o->steps.n * sizeof *sp.steps);
    sp.n_steps = o->steps.n;
    sp.shift = o->shift;
    sp.warp = 1;
    sp.sampler = o->sampler ? "unipc" : "renoise";
    sp.num_steps = o->num_steps;
    sp.fps = is_ti2v(o->config) ? 24 : 16; /* the x264 file's rate */
    sp.seed = (uint64_t)o->seed;
    sp.kv_policy = k_policies[o->kv_policy];
    sp.kv_window = o->kv_window;
    sp.kv_sink = o->kv_sink;
    sp.prompt_switch = 0; /* one prompt: no clean window kept for switches */
    sp.decode = o->with_vae;
    sp.frames_on_device = !(o->with_encode || o->with_download);
    sp.stats = 1;
    sp.profile = profile_chunk >= 0;
    sp.profile_chunk = profile_chunk >= 0 ? profile_chunk : 0;
    sp.no_cuda_graphs = !graphs;
    sk_session *s = NULL;
    sk_status st = sk_session_create(b->e, &sp, &s);
    if (st != SK_OK) return st;
    st = sk_session_queue_prompt_embeds(s, b->ctx, b->info.text_len, b->info.text_dim, 0,
                                        SK_SWITCH_DEFAULT, "bench prompt");
    if (st == SK_OK && o->with_encode) {
        sk_output_opts oo = {.kind = "video", .preset = o->encode_preset,
                             .queue_frames = (int)(8 * o->chunk)}; /* x264 beside the next chunk */
        st = sk_session_attach_output(s, b->out_path, &oo, NULL);
    }
    if (st == SK_OK && o->with_input) { /* frames made in memory at the model's size */
        sk_session_input_opts io = sk_session_input_opts_default();
        io.synthetic = 1;
        io.strength = o->strength;
        io.realtime = o->input_live; /* a camera: frame i exists at t0 + i / fps */
        st = sk_session_attach_input(s, NULL, &io);
    }
    const size_t chunk_vals = (size_t)(o->chunk * b->info.latent_channels *
                                       (o->height / vae_stride(o->config)) *
                                       (o->width / vae_stride(o->config)));
    for (int k = 0; st == SK_OK && k < n; k++) {
        sk_step_info si;
        const double t0 = sk_progress_now();
        st = sk_session_step(s, &si);
        r->wall_ms[k] = (sk_progress_now() - t0) * 1e3;
        if (st == SK_OK && si.n_frames != o->chunk)
            st = SK_ERR(SK_E_INTERNAL, "bench: chunk %d has %lld frames", k,
                        (long long)si.n_frames);
        if (st == SK_OK && keep) { /* --compare-dtype: every chunk's x0 to the host */
            const float *lat = NULL;
            int64_t nl = 0;
            st = sk_session_latents(s, &lat, &nl, NULL);
            if (st == SK_OK && (nl != o->chunk || !lat))
                st = SK_ERR(SK_E_INTERNAL, "bench: chunk %d: no latents to compare", k);
            if (st == SK_OK) memcpy(keep + (size_t)k * chunk_vals, lat, chunk_vals * sizeof *lat);
        }
    }
    if (st == SK_OK) st = sk_session_finish(s, NULL);
    if (st == SK_OK && o->with_input) st = sk_session_get_input_status(s, &r->in);
    sk_session_stats ss;
    if (st == SK_OK) st = sk_session_get_stats(s, &ss);
    if (st == SK_OK && ss.chunks != n)
        st = SK_ERR(SK_E_INTERNAL, "bench: %lld chunks timed of %d", (long long)ss.chunks, n);
    if (st == SK_OK) {
        memcpy(r->ms, ss.chunk_ms, (size_t)n * sizeof *r->ms);
        memcpy(r->hash, ss.chunk_hash, (size_t)n * sizeof *r->hash);
        r->allocs = ss.backend_allocs;
        r->mallocs = ss.device_mallocs;
        r->graph_records = ss.graph_records;
        r->graph_replays = ss.graph_replays;
        r->kv_bytes = (size_t)ss.kv_cache_bytes;
        b->vae_overlap = ss.vae_overlapped;
        if (!strcmp(ss.timer, "cuda events"))
            for (int k = 0; k < n; k++) SK_LOGI("bench: chunk %d: %.1f ms (CUDA events)", k, r->ms[k]);
        if (ss.n_ops) {
            r->ops = calloc((size_t)ss.n_ops, sizeof *r->ops);
            if (!r->ops) st = SK_ERR(SK_E_OOM, "bench: out of host memory");
            else memcpy(r->ops, ss.ops, (size_t)ss.n_ops * sizeof *r->ops);
            r->n_ops = r->ops ? ss.n_ops : 0;
        }
    }
    sk_session_close(&s);
    return st;
}

static void pass_free(pass_result *r)
{
    free(r->ms);
    free(r->hash);
    free(r->ops);
    free(r->wall_ms);
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

static const char *const k_dtype_names[] = {"auto", "f32", "bf16", "fp8"};

/* The engine of random weights; dtype as bench_opts.act_dtype (3: fp8 DiT block linears,
 * activations auto). */
static sk_status open_engine(const bench_opts *o, int dtype, sk_engine **e)
{
    static const char *const act_names[] = {"auto", "f32", "bf16", "auto"};
    sk_engine_params ep = sk_engine_params_default();
    ep.random_model = k_configs[o->config];
    ep.random_seed = (uint64_t)o->seed;
    ep.random_vae = o->with_vae;
    /* --with-input: the encoder, the DiT and the decoder on one stream, so a chunk's time
     * (CUDA events) covers all three */
    ep.vae_overlap = !o->no_overlap && !o->with_input;
    ep.device = o->device == 1 ? "cuda" : "cpu";
    ep.act_dtype = act_names[dtype];
    if (dtype == 3) ep.dit_dtype = "fp8";
    return sk_engine_open(&ep, e);
}

/* --compare-dtype: the same chunks (same weights, prompt and noise) on a second engine in
 * the other dtype; err[k] = |x0_k - ref_k|_2 / |ref_k|_2 with ref the other dtype's x0. */
static sk_status compare_dtypes(bench *b, const float *mine, size_t chunk_vals, int graphs,
                                double *err, steady_stats *ref_stats)
{
    const bench_opts *o = b->o;
    bench b2 = *b;
    b2.e = NULL;
    pass_result r;
    memset(&r, 0, sizeof r);
    float *ref = malloc((size_t)o->chunks * chunk_vals * sizeof *ref);
    SK_CHECK(ref, SK_E_OOM, "bench: out of host memory for --compare-dtype (%.2f GB)",
             (double)o->chunks * (double)chunk_vals * 4e-9);
    sk_status st = open_engine(o, o->compare_dtype, &b2.e);
    pass_result w;
    memset(&w, 0, sizeof w);
    /* the same warm-up as the measured engine's, so its chunk times compare too */
    if (st == SK_OK && o->warmup > 0) st = run_pass(&b2, o->warmup, graphs, -1, &w, NULL);
    pass_free(&w);
    if (st == SK_OK) st = run_pass(&b2, o->chunks, graphs, -1, &r, ref);
    if (st == SK_OK) *ref_stats = steady_of(o, &r);
    for (int k = 0; st == SK_OK && k < o->chunks; k++) {
        double num = 0, den = 0;
        const float *a = mine + (size_t)k * chunk_vals, *c = ref + (size_t)k * chunk_vals;
        for (size_t i = 0; i < chunk_vals; i++) {
            const double d = (double)a[i] - (double)c[i];
            num += d * d;
            den += (double)c[i] * c[i];
        }
        err[k] = den > 0 ? sqrt(num / den) : sqrt(num);
    }
    pass_free(&r);
    (void)sk_engine_close(&b2.e);
    free(ref);
    return st;
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
    float *keep = NULL;  /* --compare-dtype: every measured chunk's x0 */
    double *xerr = NULL; /* and its relative error against the other dtype */
    double t_setup = sk_progress_now();
    if ((st = open_engine(o, o->act_dtype, &b.e)) != SK_OK) goto fail;
    if ((st = sk_engine_get_info(b.e, &b.info)) != SK_OK) goto fail;
    sk_engine_stats es;
    if ((st = sk_engine_get_stats(b.e, &es)) != SK_OK) goto fail;
    b.is_cuda = es.gpu[0] != 0;
    const sk_dtype act = !strcmp(b.info.act_dtype, "bf16") ? SK_DTYPE_BF16 : SK_DTYPE_F32;
    /* the cost model's view of the DiT */
    sk_dit_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.dim = b.info.dim;
    cfg.ffn_dim = b.info.ffn_dim;
    cfg.text_len = b.info.text_len;
    cfg.text_dim = b.info.text_dim;
    cfg.num_layers = b.info.num_layers;
    cfg.in_dim = b.info.in_channels;
    cfg.freq_dim = b.info.freq_dim;
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
    const int64_t lh = o->height / vae_stride(o->config), lw = o->width / vae_stride(o->config);
    const int nfwd = n_forwards(o);
    if (o->with_encode)
        snprintf(b.out_path, sizeof b.out_path, "/tmp/sinkstream-bench-%d.mkv", (int)getpid());
    t_setup = sk_progress_now() - t_setup;
    SK_LOGI("bench: %s random weights (%.2f GB) on %s, set up in %.1f s", k_configs[o->config],
            (double)b.info.weights_bytes / 1e9, es.backend, t_setup);

    const int graphs = !o->no_graph;
    if (o->warmup > 0 && (st = run_pass(&b, o->warmup, graphs, -1, &warm, NULL)) != SK_OK)
        goto fail;
    const size_t chunk_vals = (size_t)(o->chunk * b.info.latent_channels * lh * lw);
    if (o->compare_dtype) {
        keep = malloc((size_t)o->chunks * chunk_vals * sizeof *keep);
        xerr = calloc((size_t)o->chunks, sizeof *xerr);
        if (!keep || !xerr) { st = SK_ERR(SK_E_OOM, "bench: out of host memory"); goto fail; }
    }
    if ((st = run_pass(&b, o->chunks, graphs, -1, &meas, keep)) != SK_OK) goto fail;
    if (o->compare_graph && (st = run_pass(&b, o->chunks, !graphs, -1, &cmp, NULL)) != SK_OK)
        goto fail;
    steady_stats ss = steady_of(o, &meas);
    int prof_chunk = ss.full_window ? ss.first : o->chunks - 1;
    if (!o->no_profile && (st = run_pass(&b, prof_chunk + 1, 0, prof_chunk, &prof, NULL)) != SK_OK)
        goto fail;
    if (b.out_path[0]) unlink(b.out_path);

    /* ---- report */
    if ((st = sk_engine_get_stats(b.e, &es)) != SK_OK) goto fail;
    int cmp_nan = 0;
    double cmp_max = 0, cmp_first = 0, cmp_last = 0;
    steady_stats cmp_ss;
    memset(&cmp_ss, 0, sizeof cmp_ss);
    if (o->compare_dtype) {
        if ((st = compare_dtypes(&b, keep, chunk_vals, graphs, xerr, &cmp_ss)) != SK_OK) goto fail;
        const int k5 = o->chunks < 5 ? o->chunks : 5;
        for (int k = 0; k < o->chunks; k++) {
            if (!isfinite(xerr[k])) cmp_nan = 1;
            if (xerr[k] > cmp_max) cmp_max = xerr[k];
            if (k < k5) cmp_first += xerr[k] / k5;
            if (k >= o->chunks - k5) cmp_last += xerr[k] / k5;
        }
    }
    const int fp8 = o->act_dtype == 3;
    const int64_t S = (lh / 2) * (lw / 2);
    int64_t kv_frames = o->kv_window;
    if (!ss.full_window) kv_frames = (int64_t)(ss.first + 1) * o->chunk;
    double flops, bytes;
    /* --with-input: only the steps from the strength's start run (the encoder not counted) */
    const int nrun = o->with_input ? nfwd - meas.in.start_step : nfwd;
    chunk_cost(&cfg, S, o->chunk, kv_frames, nrun, sk_dtype_size(act), &flops, &bytes);
    const double tflops = ss.mean > 0 ? flops / (ss.mean / 1e3) / 1e12 : 0;
    int identical = 1;
    for (int k = 0; o->compare_graph && k < o->chunks; k++)
        if (meas.hash[k] != cmp.hash[k]) identical = 0;
    uint64_t all_hash = fnv(meas.hash, (size_t)o->chunks * sizeof *meas.hash, 0xcbf29ce484222325ull);
    double prof_total = 0, prof_chunk_ms = prof.n ? prof.ms[prof_chunk] : 0;
    for (int i = 0; i < prof.n_ops; i++) prof_total += prof.ops[i].ms;
    const size_t be_peak = (size_t)es.backend_peak_bytes;
    const size_t peak_used = (size_t)es.device_used_peak;
    const size_t base_used = (size_t)es.device_used_at_open;

    if (o->json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "command", cmdline);
        cJSON_AddStringToObject(j, "config", k_configs[o->config]);
        cJSON_AddStringToObject(j, "device", es.backend);
        cJSON_AddStringToObject(j, "gpu", es.gpu);
        cJSON_AddStringToObject(j, "act_dtype", sk_dtype_name(act));
        cJSON_AddNumberToObject(j, "height", (double)o->height);
        cJSON_AddNumberToObject(j, "width", (double)o->width);
        cJSON_AddNumberToObject(j, "tokens_per_chunk", (double)(S * o->chunk));
        cJSON_AddNumberToObject(j, "chunk_frames", (double)o->chunk);
        cJSON_AddNumberToObject(j, "video_frames_per_chunk", (double)(4 * o->chunk));
        cJSON_AddNumberToObject(j, "steps", nrun);
        cJSON_AddStringToObject(j, "sampler", o->sampler ? "unipc" : "renoise");
        cJSON_AddNumberToObject(j, "forwards_per_chunk", nrun + 1);
        cJSON_AddStringToObject(j, "kv_policy", k_policies[o->kv_policy]);
        cJSON_AddNumberToObject(j, "kv_sink", (double)o->kv_sink);
        cJSON_AddNumberToObject(j, "kv_window", (double)o->kv_window);
        cJSON_AddNumberToObject(j, "warmup_chunks", o->warmup);
        cJSON_AddNumberToObject(j, "chunks", o->chunks);
        cJSON_AddBoolToObject(j, "cuda_graphs", graphs && b.is_cuda);
        cJSON_AddBoolToObject(j, "with_vae", o->with_vae);
        cJSON_AddBoolToObject(j, "with_encode", o->with_encode);
        cJSON_AddBoolToObject(j, "with_download", o->with_download || o->with_encode);
        cJSON_AddBoolToObject(j, "vae_overlap", b.vae_overlap);
        cJSON_AddNumberToObject(j, "setup_s", t_setup);
        cJSON *m = stats_json(&ss, &meas);
        cJSON_AddNumberToObject(m, "forward_ms_mean", ss.mean / (nrun + 1));
        cJSON_AddItemToObject(j, "measured", m);
        cJSON_AddNumberToObject(j, "fps", ss.fps);
        cJSON_AddNumberToObject(j, "first_chunk_ms", meas.ms[0]);
        cJSON_AddNumberToObject(j, "chunk_ms_p50", ss.p50);
        cJSON_AddNumberToObject(j, "chunk_ms_p99", ss.p99);
        cJSON_AddNumberToObject(j, "flops_per_chunk", flops);
        cJSON_AddNumberToObject(j, "min_bytes_per_chunk", bytes);
        cJSON_AddNumberToObject(j, "tflops", tflops);
        cJSON_AddNumberToObject(j, "h100_bf16_peak_fraction", tflops / 989.0);
        cJSON_AddStringToObject(j, "dit_dtype", fp8 ? "fp8" : sk_dtype_name(act));
        if (fp8) cJSON_AddNumberToObject(j, "h100_fp8_peak_fraction", tflops / 1979.0);
        if (o->compare_dtype) {
            cJSON *cd = cJSON_AddObjectToObject(j, "compare_dtype");
            cJSON_AddStringToObject(cd, "reference", k_dtype_names[o->compare_dtype]);
            cJSON_AddItemToObject(cd, "x0_rel_l2", cJSON_CreateDoubleArray(xerr, o->chunks));
            cJSON_AddNumberToObject(cd, "max", cmp_max);
            cJSON_AddNumberToObject(cd, "mean_first5", cmp_first);
            cJSON_AddNumberToObject(cd, "mean_last5", cmp_last);
            cJSON_AddBoolToObject(cd, "finite", !cmp_nan);
            cJSON_AddNumberToObject(cd, "reference_fps", cmp_ss.fps);
            cJSON_AddNumberToObject(cd, "reference_chunk_ms_p50", cmp_ss.p50);
            cJSON_AddNumberToObject(cd, "reference_chunk_ms_mean", cmp_ss.mean);
        }
        cJSON *mem = cJSON_AddObjectToObject(j, "memory");
        cJSON_AddNumberToObject(mem, "weights_bytes", (double)b.info.weights_bytes);
        cJSON_AddNumberToObject(mem, "kv_cache_bytes", (double)meas.kv_bytes);
        cJSON_AddNumberToObject(mem, "backend_peak_bytes", (double)be_peak);
        cJSON_AddNumberToObject(mem, "device_used_peak_bytes", (double)peak_used);
        cJSON_AddNumberToObject(mem, "device_used_before_model_bytes", (double)base_used);
        cJSON_AddNumberToObject(mem, "device_total_bytes", (double)es.device_total);
        cJSON *al = cJSON_AddObjectToObject(j, "allocations_in_loop");
        cJSON_AddNumberToObject(al, "backend_allocs", (double)meas.allocs);
        cJSON_AddNumberToObject(al, "device_mallocs", (double)meas.mallocs);
        cJSON *gr = cJSON_AddObjectToObject(j, "graphs");
        cJSON_AddNumberToObject(gr, "captures", (double)es.graph_captures);
        cJSON_AddNumberToObject(gr, "instantiations", (double)es.graph_instantiations);
        cJSON_AddNumberToObject(gr, "updates", (double)es.graph_updates);
        cJSON_AddNumberToObject(gr, "launches", (double)es.graph_launches);
        cJSON_AddNumberToObject(gr, "capture_ms_total", es.graph_capture_ms);
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
            for (int i = 0; i < prof.n_ops; i++) {
                cJSON *e = cJSON_CreateObject();
                cJSON_AddStringToObject(e, "phase", prof.ops[i].phase);
                cJSON_AddStringToObject(e, "op", prof.ops[i].op);
                cJSON_AddNumberToObject(e, "ms", prof.ops[i].ms);
                cJSON_AddNumberToObject(e, "calls", (double)prof.ops[i].calls);
                cJSON_AddNumberToObject(e, "pct", prof_total > 0 ? 100 * prof.ops[i].ms / prof_total : 0);
                cJSON_AddItemToArray(ops, e);
            }
        }
        if (o->with_input) {
            cJSON *in = cJSON_AddObjectToObject(j, "input");
            cJSON_AddStringToObject(in, "source", o->input_live ? "synthetic, real time at fps "
                                    "(a camera)" : "synthetic, when needed");
            cJSON_AddNumberToObject(in, "strength", meas.in.strength);
            cJSON_AddNumberToObject(in, "start_step", meas.in.start_step);
            cJSON_AddNumberToObject(in, "steps_run", nfwd - meas.in.start_step);
            cJSON_AddNumberToObject(in, "frames", (double)meas.in.used);
            cJSON_AddNumberToObject(in, "latency_frames", (double)meas.in.latency_n);
            cJSON_AddNumberToObject(in, "latency_p50_ms", meas.in.latency_p50_ms);
            cJSON_AddNumberToObject(in, "latency_p99_ms", meas.in.latency_p99_ms);
            cJSON_AddNumberToObject(in, "latency_max_ms", meas.in.latency_max_ms);
            cJSON_AddNumberToObject(in, "step_wall_ms_p50", pct(meas.wall_ms, o->chunks, 0.5));
            cJSON_AddNumberToObject(in, "step_wall_ms_p99", pct(meas.wall_ms, o->chunks, 0.99));
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
               k_configs[o->config], es.backend, b.is_cuda ? " " : "", es.gpu,
               sk_dtype_name(act), (long long)o->width, (long long)o->height, (long long)o->chunk,
               (long long)(S * o->chunk), nrun, k_policies[o->kv_policy],
               (long long)o->kv_sink, (long long)o->kv_window,
               !o->with_vae ? "" : b.vae_overlap
                                       ? ", + TAEHV decode (second stream, overlapped)"
                                       : ", + TAEHV decode (in turn)",
               o->with_encode ? " + x264" : o->with_download ? " + frames to the host" : "");
        printf("  CUDA graphs %s; %d warm-up chunks, %d measured\n",
               graphs && b.is_cuda ? "on" : "off", o->warmup, o->chunks);
        printf("  steady state (%d chunks from chunk %d%s): %.2f video fps, chunk p50 %.1f ms, p99 %.1f ms "
               "(mean %.1f, min %.1f, max %.1f); %.1f ms per forward\n",
               ss.n, ss.first, ss.full_window ? ", window full" : ", window NOT full", ss.fps, ss.p50,
               ss.p99, ss.mean, ss.min, ss.max, ss.mean / (nrun + 1));
        printf("  first chunk: %.1f ms\n", meas.ms[0]);
        if (o->with_input)
            printf("  video-to-video (synthetic input %s, TAEHV encoder, strength %.3g: steps %d..%d "
                   "of %d): input frame -> decoded frame latency p50 %.1f ms, p99 %.1f ms, max "
                   "%.1f ms over %lld frames; step wall time p50 %.1f ms, p99 %.1f ms\n",
                   o->input_live ? "arriving in real time" : "arriving when needed",
                   meas.in.strength, meas.in.start_step, nfwd - 1, nfwd, meas.in.latency_p50_ms,
                   meas.in.latency_p99_ms, meas.in.latency_max_ms, (long long)meas.in.latency_n,
                   pct(meas.wall_ms, o->chunks, 0.5), pct(meas.wall_ms, o->chunks, 0.99));
        if (fp8) printf("  DiT block linears (row scales)%s in FP8 e4m3; %.2g%% of the H100's "
                        "1979 fp8 dense\n", sk_dit_fp8_attention_requested() ? " and self-attention" : "",
                        100 * tflops / 1979.0);
        if (o->compare_dtype) {
            printf("  x0 against %s, relative L2 error per chunk (chunk timings above include "
                   "the x0 download):\n   ", k_dtype_names[o->compare_dtype]);
            for (int k = 0; k < o->chunks; k++)
                printf(" %.4f%s", xerr[k], (k % 10 == 9 && k + 1 < o->chunks) ? "\n   " : "");
            printf("\n  x0 error: max %.4f, mean of the first 5 chunks %.4f, of the last 5 %.4f%s\n",
                   cmp_max, cmp_first, cmp_last, cmp_nan ? " (NOT FINITE)" : "");
            printf("  %s engine, same warm-up and chunks: %.2f video fps, chunk p50 %.1f ms (mean "
                   "%.1f); this run %.2fx its speed\n", k_dtype_names[o->compare_dtype],
                   cmp_ss.fps, cmp_ss.p50, cmp_ss.mean, cmp_ss.mean > 0 ? cmp_ss.mean / ss.mean : 0);
        }
        printf("  %.4g TFLOP and >= %.4g GB per chunk: %.4g TFLOP/s (%.2g%% of the H100's 989 "
               "bf16 dense)\n", flops / 1e12, bytes / 1e9, tflops, 100 * tflops / 989.0);
        printf("  memory: weights %.2f GB, KV cache %.2f GB, backend peak %.2f GB, device used peak "
               "%.2f GB (before the model %.2f GB)\n", (double)b.info.weights_bytes / 1e9,
               (double)meas.kv_bytes / 1e9, (double)be_peak / 1e9,
               (double)peak_used / 1e9, (double)base_used / 1e9);
        printf("  allocations in the measured chunk loop: %llu backend, %llu cudaMalloc\n",
               (unsigned long long)meas.allocs, (unsigned long long)meas.mallocs);
        if (b.is_cuda)
            printf("  graphs: %llu recorded (%llu instantiated, %llu updated), %llu launched, "
                   "%.1f ms host recording in all\n", (unsigned long long)es.graph_captures,
                   (unsigned long long)es.graph_instantiations,
                   (unsigned long long)es.graph_updates, (unsigned long long)es.graph_launches,
                   es.graph_capture_ms);
        if (o->compare_graph) {
            steady_stats s2 = steady_of(o, &cmp);
            printf("  compare, graphs %s: %.2f video fps, p50 %.1f ms, p99 %.1f ms; x0 of every chunk "
                   "%s\n", !graphs && b.is_cuda ? "on" : "off", s2.fps, s2.p50, s2.p99,
                   identical ? "bitwise identical" : "DIFFERS");
        }
        if (!o->no_profile) {
            printf("  per-op time in chunk %d (op by op, %s; chunk took %.1f ms, ops %.1f ms):\n",
                   prof_chunk, b.is_cuda ? "CUDA events" : "host clock", prof_chunk_ms, prof_total);
            for (int i = 0; i < prof.n_ops; i++)
                printf("    %-7s %-28s %9.2f ms %6lld calls %5.1f%%\n", prof.ops[i].phase,
                       prof.ops[i].op, prof.ops[i].ms, (long long)prof.ops[i].calls,
                       prof_total > 0 ? 100 * prof.ops[i].ms / prof_total : 0);
        }
    }
    rc = 0;
    if (meas.allocs || meas.mallocs) {
        fprintf(stderr, "sinkstream bench: the chunk loop allocated (%llu backend, %llu cudaMalloc)\n",
                (unsigned long long)meas.allocs, (unsigned long long)meas.mallocs);
        rc = 1;
    }
    if (cmp_nan) {
        fprintf(stderr, "sinkstream bench: --compare-dtype: a chunk's x0 error is not finite\n");
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
    if (b.out_path[0]) unlink(b.out_path);
    pass_free(&warm);
    pass_free(&meas);
    pass_free(&cmp);
    pass_free(&prof);
    free(keep);
    free(xerr);
    (void)sk_engine_close(&b.e);
    free(b.ctx);
    return rc;
}

/* Was --name (or --name=...) on the command line? */
static int arg_given(int argc, char **argv, const char *name)
{
    size_t n = strlen(name);
    for (int i = 1; i < argc; i++)
        if (!strncmp(argv[i], name, n) && (argv[i][n] == 0 || argv[i][n] == '=')) return 1;
    return 0;
}

int sk_cmd_bench(int argc, char **argv)
{
    bench_opts o = {.config = 0, .device = SK_DEV_AUTO, .chunk = 3, .kv_window = 12, .kv_sink = 3,
                    .kv_policy = 1, .chunks = 10, .warmup = 8,
                    .steps = {4, {1000, 750, 500, 250}}, .shift = 5.0, .num_steps = 4, .strength = 0.6,
                    .encode_preset = "veryfast"};
#define GROUP(t) {.name = (t), .type = SK_OPT_GROUP}
#define OPT(n_, ty_, f_, def_, h_, env_, mv_) \
    .name = (n_), .type = (ty_), .field = (f_), .def_text = (def_), .help = (h_), .env = (env_), \
    .metavar = (mv_)
    const sk_opt opts[] = {
        GROUP("Model"),
        {OPT("config", SK_OPT_ENUM, &o.config, NULL, "DiT configuration (random weights made on "
             "the device): wan2.1-1.3b (dim 1536, 30 layers), tiny (CI-sized), wan2.2-5b "
             "(LongLive 2.0: Wan2.2-TI2V-5B, dim 3072, 48 latent channels; defaults 1280x704, "
             "chunk 8, UniPC 4 steps, multishot sink 8 window 32) or tiny-ti2v (its CI-sized "
             "twin)", NULL, NULL),
         .choices = "wan2.1-1.3b|tiny|wan2.2-5b|tiny-ti2v"},
        {OPT("seed", SK_OPT_INT64, &o.seed, NULL, "seed of the weights, prompt and noise", NULL,
             "N")},
        GROUP("Video"),
        {OPT("height", SK_OPT_INT64, &o.height, "480 (wan2.1-1.3b), 704 (wan2.2-5b), 64 (tiny)",
             "height in pixels (multiple of 16)", NULL, "PX"), .lo = 0, .hi = 16384},
        {OPT("width", SK_OPT_INT64, &o.width, "832 (wan2.1-1.3b), 1280 (wan2.2-5b), 64 (tiny)",
             "width in pixels (multiple of 16)", NULL, "PX"), .lo = 0, .hi = 16384},
        {OPT("chunk", SK_OPT_INT64, &o.chunk, NULL, "latent frames per chunk (4 video frames "
             "each)", NULL, "N"), .lo = 1, .hi = 64},
        {OPT("steps", SK_OPT_INT_LIST, &o.steps, NULL, "denoising timesteps (warped by --shift); "
             "a clean pass follows", NULL, "LIST"), .lo = 1, .hi = 1000},
        {OPT("shift", SK_OPT_DOUBLE, &o.shift, NULL, "flow-matching timestep shift", NULL, "X"),
         .lo = 0.01, .hi = 1000},
        {OPT("sampler", SK_OPT_ENUM, &o.sampler, "renoise (unipc for wan2.2-5b)", "renoise "
             "(--steps) or unipc (LongLive 2.0, --num-steps)", NULL, NULL),
         .choices = "renoise|unipc"},
        {OPT("num-steps", SK_OPT_INT, &o.num_steps, NULL, "UniPC steps per chunk (a clean pass "
             "follows)", NULL, "N"), .lo = 1, .hi = 64},
        GROUP("KV cache"),
        {OPT("kv-policy", SK_OPT_ENUM, &o.kv_policy, NULL,
             "fifo (Self-Forcing), sink (LongLive) or multishot (LongLive 2.0; no cuts in a bench)",
             NULL, NULL), .choices = "fifo|sink|multishot"},
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
             "TAEHV (taew2_1-shaped; taew2_2-shaped for the 48-channel configs)", NULL, NULL)},
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
        {OPT("with-input", SK_OPT_FLAG, &o.with_input, NULL, "video-to-video: synthetic input "
             "frames at the model's size through the TAEHV encoder and --strength's start step "
             "(implies --with-vae; the VAE on the DiT's stream); reports the latency from an "
             "input frame's arrival to its decoded frame", NULL, NULL)},
        {OPT("strength", SK_OPT_DOUBLE, &o.strength, NULL, "--with-input: 0..1, N steps start at "
             "step N - round(S*N)", NULL, "S"), .lo = 0, .hi = 1},
        {OPT("input-live", SK_OPT_FLAG, &o.input_live, NULL, "--with-input: frames arrive in "
             "real time at the model's fps (a camera; the latency then includes gathering a "
             "chunk), instead of when a chunk needs them", NULL, NULL)},
        {OPT("no-cuda-graph", SK_OPT_FLAG, &o.no_graph, NULL, "run every op on its own (no CUDA "
             "graphs; SK_NO_CUDA_GRAPH=1 does the same everywhere)", NULL, NULL)},
        {OPT("compare-graph", SK_OPT_FLAG, &o.compare_graph, NULL, "measure again with graphs the "
             "other way round and check the latents are bitwise identical", NULL, NULL)},
        {OPT("no-profile", SK_OPT_FLAG, &o.no_profile, NULL, "skip the per-op profile pass",
             NULL, NULL)},
        GROUP("Device and output"),
        {OPT("device", SK_OPT_ENUM, &o.device, NULL, SK_CLI_DEVICE_HELP, "SK_DEVICE", NULL),
         .choices = SK_CLI_DEVICE_CHOICES},
        {OPT("act-dtype", SK_OPT_ENUM, &o.act_dtype, NULL,
             "activation and weight dtype (auto: f32 on cpu, bf16 on cuda)", NULL, NULL),
         .choices = "auto|f32|bf16"},
        {OPT("dtype", SK_OPT_ENUM, &o.act_dtype, NULL, "the same as --act-dtype (fp32 = f32); "
             "fp8: activations auto (bf16 on cuda), the DiT's block linears in FP8 e4m3 with a "
             "scale per row, activations quantized per token row for them; with SK_FP8_ATTENTION=1 "
             "self-attention in FP8 e4m3 too (q, k, v per tensor) and the KV cache in e4m3 with a "
             "power-of-two scale per frame (half the bytes; SK_FP8_KV=0 keeps it bf16): H100 "
             "figures in docs/PERF.md; SK_FP8_FUSED_NORM=1 quantizes inside the modulate kernel "
             "(not yet run on a GPU)", NULL, NULL),
         .choices = "auto|fp32|bf16|fp8"},
        {OPT("compare-dtype", SK_OPT_ENUM, &o.compare_dtype, NULL, "quality: run the warm-up "
             "and the measured chunks again on a second engine in this dtype (same weights, "
             "prompt, noise) and print every chunk's x0 relative L2 error against it and its "
             "speed (e.g. --dtype fp8 --compare-dtype bf16; every chunk's x0 is downloaded in "
             "both runs, and their chunk times include that)", NULL, NULL), .choices = "none|fp32|bf16|fp8"},
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
    sk_cli_device_resolve("sinkstream bench", &o.device);

    /* LongLive 2.0's defaults for the 5B configs, for what the command line leaves out */
    if (is_ti2v(o.config)) {
        if (!arg_given(argc, argv, "--chunk")) o.chunk = o.config == 3 ? 2 : 8;
        if (!arg_given(argc, argv, "--kv-window")) o.kv_window = 4 * o.chunk;
        if (!arg_given(argc, argv, "--kv-sink")) o.kv_sink = o.chunk;
        if (!arg_given(argc, argv, "--kv-policy")) o.kv_policy = 2;
        if (!arg_given(argc, argv, "--sampler")) o.sampler = 1;
    }
    const int vs = vae_stride(o.config);
    if (!o.height) o.height = o.config == 1 || o.config == 3 ? 64 : is_ti2v(o.config) ? 704 : 480;
    if (!o.width) o.width = o.config == 1 || o.config == 3 ? 64 : is_ti2v(o.config) ? 1280 : 832;
    if (o.height % (2 * vs) || o.width % (2 * vs))
        return sk_cli_usage_error(&cli, "--height %lld / --width %lld: both must be multiples of %d "
                                        "(the %dx VAE and the 2x2 patch)",
                                  (long long)o.height, (long long)o.width, 2 * vs, vs);
    if (o.sampler && arg_given(argc, argv, "--steps"))
        return sk_cli_usage_error(&cli, "--sampler unipc takes --num-steps N, not --steps");
    if (o.kv_policy == 2 && (o.kv_sink != o.chunk || o.kv_window % o.chunk ||
                             o.kv_window / o.chunk < 3))
        return sk_cli_usage_error(&cli, "--kv-policy multishot: --kv-sink must equal --chunk and "
                                        "--kv-window be a multiple of it holding >= 3 chunks");
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
    if (o.kv_policy <= 1 && !arg_given(argc, argv, "--warmup")) {
        /* the warm-up must see the KV ring wrap (a new range layout: its attention plans,
         * buffers and graph) or the measured loop does: fifo 21 wraps at chunk 8 */
        const int64_t ring = o.kv_window - o.kv_sink + o.chunk;
        const int need = (int)(ring / o.chunk) + 2;
        if (o.warmup < need) o.warmup = need;
    }
    if (o.kv_sink + o.chunk > o.kv_window)
        return sk_cli_usage_error(&cli, "--kv-window %lld is too small for --kv-sink %lld plus a "
                                        "chunk of %lld frames", (long long)o.kv_window,
                                  (long long)o.kv_sink, (long long)o.chunk);
    if (o.with_download || o.with_input) o.with_vae = 1;
    if ((o.input_live || arg_given(argc, argv, "--strength")) && !o.with_input)
        return sk_cli_usage_error(&cli, "--strength / --input-live need --with-input");
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
