/* check_kv_policies.c - every KV-cache policy (docs/KV_POLICIES.md) on CUDA.
 *
 * Part 1: the tiny PyTorch fixtures of tests/fixtures/kv through the stream
 * API on the CPU, on CUDA with f32 activations (both to nmse <= 1e-10 against
 * the reference: measured ~1e-12) and on CUDA with bf16 activations and weights.
 * The bf16 bound must tell the policies apart: the latents are O(1) (rms 1.2,
 * max 5) and the closest two policies' references (sink relative vs ema 0.9)
 * are nmse 1.2e-4 apart, so bf16 passes at nmse <= 6e-5 (measured ~2.5e-5)
 * and only when its error is under half the nmse to the nearest reference of
 * another policy (the "gap" column). References closer than twice the bf16
 * bound are told apart by the f32 runs only: the pairs equal by design
 * (deep-sink + PC vs sink + PC relative, nmse 3e-14; rolling and its relative
 * twin) and those two after a switch (1.2e-6).
 * Part 2: random Wan 1.3B weights (bf16), 832x480 (1560 tokens a frame),
 * chunk 3, Philox noise, each policy at its published configuration: wall
 * time per chunk, the steady state per chunk / per forward and video fps,
 * backend allocations after the first chunk (must be 0) and cache bytes.
 *
 * usage: gpu_check_kv_policies [--no-check] [--no-time] [--chunks N] [--layers N]
 * Exit status: 0 all pass, 1 a comparison failed, 2 setup error.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dit/model.h"
#include "runtime/core/progress.h"
#include "runtime/io/safetensors.h"
#include "runtime/stream/stream.h"
#include "tests/common/compare.h"

static int g_fail;

/* fixture paths: $SK_SOURCE_DIR (the device machine's copy of the tree) or the build's */
static const char *fix(const char *dir, const char *name)
{
    static char buf[4][1024];
    static int k;
    const char *root = getenv("SK_SOURCE_DIR");
    if (!root || !*root) root = SK_SOURCE_DIR;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/tests/fixtures/%s/%s", root, dir, name);
    return buf[k];
}

#define CHECK_OK(expr)                                                                   \
    do {                                                                                 \
        sk_status s_ = (expr);                                                           \
        if (s_ != SK_OK) {                                                               \
            fprintf(stderr, "check_kv: %s failed: %s: %s\n", #expr, sk_status_name(s_),  \
                    sk_error_message());                                                 \
            exit(2);                                                                     \
        }                                                                                \
    } while (0)

static float *read_f32(const sk_st_file *f, const char *name, size_t *n)
{
    float *p = NULL;
    const sk_st_tensor *t = NULL;
    CHECK_OK(sk_st_read_f32(f, name, 0, NULL, &p, &t));
    *n = t->nbytes / sk_dtype_size(t->dtype);
    return p;
}

typedef struct {
    const char *tag, *expected, *noise;
    sk_kv_policy policy;
    sk_kv_rope rope;
    int64_t window, sink;
    double alpha;
    int64_t compress;
    int roll5, switch_chunk;
    int64_t frames;  /* 0: 24 */
    uint64_t seed;   /* noise NULL: the built-in Philox generator */
} fx;

#define PHILOX_SEED 0x5EED0000F00Dull

static const fx k_fx[] = {
    {"fifo relative", "expected_fifo_rel", "noise_kv", SK_KV_FIFO, SK_KV_ROPE_RELATIVE, 6, 0, 0, 0, 0, -1},
    {"sink relative", "expected_sink_rel", "noise_kv", SK_KV_SINK, SK_KV_ROPE_RELATIVE, 9, 3, 0, 0, 0, -1},
    {"sink relative + switch", "expected_sink_rel_switch", "noise_kv", SK_KV_SINK, SK_KV_ROPE_RELATIVE, 9, 3, 0, 0, 0, 4},
    {"ema a=0.9", "expected_ema", "noise_kv", SK_KV_EMA, SK_KV_ROPE_AUTO, 9, 3, 0.9, 0, 0, -1},
    {"ema absolute a=0.5", "expected_ema_abs", "noise_kv", SK_KV_EMA, SK_KV_ROPE_ABSOLUTE, 9, 3, 0.5, 0, 0, -1},
    {"deep-sink", "expected_deep_sink", "noise_kv", SK_KV_DEEP_SINK, SK_KV_ROPE_AUTO, 12, 6, 0, 0, 0, -1},
    {"deep-sink + compression", "expected_deep_sink_pc", "noise_kv", SK_KV_DEEP_SINK, SK_KV_ROPE_AUTO, 12, 3, 0, 9, 0, -1},
    {"sink + compression rel", "expected_sink_pc_rel", "noise_kv", SK_KV_SINK, SK_KV_ROPE_RELATIVE, 12, 3, 0, 9, 0, -1},
    {"rolling", "expected_rolling", "noise_rolling", SK_KV_ROLLING, SK_KV_ROPE_AUTO, 21, 3, 0, 0, 1, -1},
    {"rolling relative", "expected_rolling_rel", "noise_rolling", SK_KV_ROLLING, SK_KV_ROPE_RELATIVE, 21, 3, 0, 0, 1, -1},
    {"ema + switch", "expected_ema_switch", "noise_kv", SK_KV_EMA, SK_KV_ROPE_AUTO, 9, 3, 0.9, 0, 0, 4},
    {"deep-sink + switch", "expected_deep_sink_switch", "noise_kv", SK_KV_DEEP_SINK, SK_KV_ROPE_AUTO, 12, 6, 0, 0, 0, 5},
    {"deep-sink + compression + switch", "expected_deep_sink_pc_switch", "noise_kv", SK_KV_DEEP_SINK, SK_KV_ROPE_AUTO, 12, 3, 0, 9, 0, 5},
    {"sink + compression rel + switch", "expected_sink_pc_rel_switch", "noise_kv", SK_KV_SINK, SK_KV_ROPE_RELATIVE, 12, 3, 0, 9, 0, 5},
    {"sink relative, Philox noise", "expected_sink_rel_philox", NULL, SK_KV_SINK, SK_KV_ROPE_RELATIVE, 9, 3, 0, 0, 0, -1, 24, PHILOX_SEED},
    {"rolling, Philox noise", "expected_rolling_philox", NULL, SK_KV_ROLLING, SK_KV_ROPE_AUTO, 21, 3, 0, 0, 1, -1, 24, PHILOX_SEED},
    {"rolling + switch, 36 frames", "expected_rolling_switch", NULL, SK_KV_ROLLING, SK_KV_ROPE_ABSOLUTE, 21, 3, 0, 0, 1, 8, 36, PHILOX_SEED},
    {"rolling relative + switch, 36 frames", "expected_rolling_rel_switch", NULL, SK_KV_ROLLING, SK_KV_ROPE_RELATIVE, 21, 3, 0, 0, 1, 8, 36, PHILOX_SEED},
};
#define N_FX (sizeof k_fx / sizeof k_fx[0])

static float *run_fixture(sk_backend *be, sk_dtype wdtype, const fx *f, const sk_st_file *exp)
{
    sk_dit_model *m = NULL;
    CHECK_OK(sk_dit_load(fix("dit", "dit_tiny.safetensors"), NULL, be, wdtype, &m));
    sk_st_file *emb;
    CHECK_OK(sk_st_open(fix("dit", "embeds.safetensors"), &emb));
    char path[512];
    sk_noise_source *ns;
    if (f->noise) {
        snprintf(path, sizeof path, "%s.safetensors", f->noise);
        CHECK_OK(sk_noise_source_file(fix("kv", path), &ns));
    } else {
        CHECK_OK(sk_noise_source_philox(f->seed, &ns));
    }
    const int64_t frames = f->frames ? f->frames : 24;
    sk_stream_params p = sk_stream_params_default();
    p.frames = frames; p.latent_h = 8; p.latent_w = 8;
    p.kv_policy = f->policy; p.kv_rope = f->rope; p.kv_window = f->window; p.kv_sink = f->sink;
    p.ema_alpha = f->alpha; p.kv_compress = f->compress; p.kv_recent = 4;
    if (f->roll5) {
        static const int st5[5] = {1000, 800, 600, 400, 200};
        CHECK_OK(sk_schedule_make(st5, 5, 5.0, 1, &p.sched));
    }
    size_t n;
    float *tv = read_f32(exp, "timesteps", &n), *sg = read_f32(exp, "sigmas", &n);
    for (int k = 0; k < p.sched.n; k++) { p.sched.t[k] = tv[k]; p.sched.sigma[k] = sg[k]; }
    free(tv); free(sg);
    p.noise = ns;
    p.prompt_switch = f->switch_chunk >= 0;
    sk_stream *s;
    CHECK_OK(sk_stream_init(m, &p, &s));
    float *c0 = read_f32(emb, "context", &n), *c1 = read_f32(emb, "context.1", &n);
    CHECK_OK(sk_stream_set_prompt(s, c0, 16));
    float *lat = calloc((size_t)frames * 256, sizeof *lat);
    for (int k = 0; !sk_stream_done(s); k++) {
        if (k == f->switch_chunk) CHECK_OK(sk_stream_switch_prompt(s, c1, 16));
        sk_tensor x0;
        int64_t f0;
        CHECK_OK(sk_stream_step(s, &x0, &f0));
        CHECK_OK(sk_tensor_download_f32(&x0, lat + f0 * 256, (size_t)sk_tensor_numel(&x0)));
    }
    free(c0); free(c1);
    sk_stream_free(&s);
    sk_noise_source_free(&ns);
    sk_st_close(&emb);
    sk_dit_free(&m);
    return lat;
}

static int g_compared;

/* gap < 0: no discrimination requirement; else the bound is also gap / 2 */
static void report(const char *what, const float *got, const float *ref, size_t n, double nmse,
                   double atol, double rtol, double gap)
{
    sk_compare_result r = sk_compare(got, ref, n, nmse, atol, rtol);
    const int apart = gap < 0 || r.nmse <= 0.5 * gap;
    char line[512];
    sk_compare_format(&r, got, ref, line, sizeof line);
    printf("%-48s %s rel %.2e nmse %.2e (bound %.0e%s", what, r.ok && apart ? "PASS" : "FAIL",
           sqrt(r.nmse), r.nmse, nmse, gap >= 0 ? "" : ")");
    if (gap >= 0) printf(", gap to the nearest other policy %.2e%s)", gap, apart ? "" : ": TOO CLOSE");
    printf(" %s\n", line);
    g_compared++;
    if (!r.ok || !apart) g_fail = 1;
}

#define BF16_NMSE 6e-5

/* nmse between the references of fixture i and its nearest fixture of another
 * policy with the same length, among those at least 2 x BF16_NMSE away (closer
 * pairs are for the f32 runs to tell apart) */
static double policy_gap(size_t i, float *const *refs, const size_t *ns)
{
    double best = INFINITY;
    for (size_t j = 0; j < N_FX; j++) {
        if (j == i || ns[j] != ns[i] || k_fx[j].policy == k_fx[i].policy) continue;
        double e = 0, r = 0;
        for (size_t t = 0; t < ns[i]; t++) {
            const double d = (double)refs[j][t] - refs[i][t];
            e += d * d;
            r += (double)refs[i][t] * refs[i][t];
        }
        const double nm = e / (r > 0 ? r : 1);
        if (nm >= 2 * BF16_NMSE && nm < best) best = nm;
    }
    return best;
}

static void part1(void)
{
    sk_backend *cpu, *g32, *g16;
    CHECK_OK(sk_backend_cpu_create(&cpu));
    CHECK_OK(sk_backend_cuda_create(0, SK_DTYPE_F32, &g32));
    CHECK_OK(sk_backend_cuda_create(0, SK_DTYPE_BF16, &g16));
    float *refs[N_FX];
    size_t ns[N_FX];
    for (size_t i = 0; i < N_FX; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s.safetensors", k_fx[i].expected);
        sk_st_file *exp;
        CHECK_OK(sk_st_open(fix("kv", path), &exp));
        refs[i] = read_f32(exp, "latents", &ns[i]);
        sk_st_close(&exp);
    }
    for (size_t i = 0; i < N_FX; i++) {
        const fx *f = &k_fx[i];
        char path[512], what[128];
        snprintf(path, sizeof path, "%s.safetensors", f->expected);
        sk_st_file *exp;
        CHECK_OK(sk_st_open(fix("kv", path), &exp));
        const size_t n = ns[i];
        const float *ref = refs[i];
        float *a = run_fixture(cpu, SK_DIT_WDTYPE_AS_STORED, f, exp);
        float *b = run_fixture(g32, SK_DIT_WDTYPE_AS_STORED, f, exp);
        float *c = run_fixture(g16, SK_DTYPE_BF16, f, exp);
        snprintf(what, sizeof what, "%s: cpu f32", f->tag);
        report(what, a, ref, n, 1e-10, 1e-5, 1e-2, -1);
        snprintf(what, sizeof what, "%s: cuda f32", f->tag);
        report(what, b, ref, n, 1e-10, 1e-5, 1e-2, -1);
        snprintf(what, sizeof what, "%s: cuda bf16", f->tag);
        /* latents are O(1): atol 0.05 caps the worst element (bf16 steps are 4e-3
         * relative); the nmse bound and the gap decide */
        report(what, c, ref, n, BF16_NMSE, 0.05, 0.0, policy_gap(i, refs, ns));
        free(a); free(b); free(c);
        sk_st_close(&exp);
    }
    for (size_t i = 0; i < N_FX; i++) free(refs[i]);
    sk_backend_free_(&cpu);
    sk_backend_free_(&g32);
    sk_backend_free_(&g16);
}

typedef struct {
    const char *tag;
    sk_kv_policy policy;
    sk_kv_rope rope;
    int64_t window, sink, compress;
    int steps5, chunks;
} big;

static void part2(int chunks_override, int layers)
{
    sk_backend *be;
    CHECK_OK(sk_backend_cuda_create(0, SK_DTYPE_BF16, &be));
    sk_dit_config cfg = sk_dit_config_wan_1_3b();
    if (layers > 0) cfg.num_layers = layers;
    double t0 = sk_progress_now();
    sk_dit_model *m;
    CHECK_OK(sk_dit_random(&cfg, be, SK_DTYPE_BF16, 1, &m));
    CHECK_OK(sk_backend_sync(be));
    printf("\nrandom Wan 1.3B (%lld layers) in %.1f s; 832x480, chunk 3, bf16\n",
           (long long)cfg.num_layers, sk_progress_now() - t0);
    float *ctx = calloc((size_t)(512 * 4096), sizeof *ctx);
    for (int i = 0; i < 100 * 4096; i++) ctx[i] = 0.1f * sinf((float)i * 0.37f);
    static const big runs[] = {
        {"sink 3 + window 12, absolute (LongLive, baked keys)", SK_KV_SINK, SK_KV_ROPE_ABSOLUTE, 12, 3, 0, 0, 6},
        {"sink 3 + window 12, relative (raw keys)", SK_KV_SINK, SK_KV_ROPE_RELATIVE, 12, 3, 0, 0, 6},
        {"fifo 21 (Self-Forcing)", SK_KV_FIFO, SK_KV_ROPE_ABSOLUTE, 21, 0, 0, 0, 9},
        {"ema sink 3 + window 9 (Reward Forcing)", SK_KV_EMA, SK_KV_ROPE_AUTO, 9, 3, 0, 0, 6},
        {"deep-sink 10 + window 21 (Deep Sink)", SK_KV_DEEP_SINK, SK_KV_ROPE_AUTO, 21, 10, 0, 0, 9},
        {"deep-sink 10 + PC to 16 (Deep Forcing)", SK_KV_DEEP_SINK, SK_KV_ROPE_AUTO, 21, 10, 16, 0, 10},
        {"rolling 5 x 3 + sink 3, window 21", SK_KV_ROLLING, SK_KV_ROPE_AUTO, 21, 3, 0, 1, 8},
    };
    printf("%-52s %9s %9s %10s %8s %8s %7s\n", "policy", "chunk0 ms", "steady ms",
           "ms/forward", "video fps", "KV GB", "allocs");
    for (size_t i = 0; i < sizeof runs / sizeof runs[0]; i++) {
        const big *r = &runs[i];
        const int chunks = chunks_override > 0 ? chunks_override : r->chunks;
        sk_stream_params p = sk_stream_params_default();
        p.frames = 3 * chunks;
        p.latent_h = 60; p.latent_w = 104;
        p.kv_policy = r->policy; p.kv_rope = r->rope;
        p.kv_window = r->window; p.kv_sink = r->sink; p.kv_compress = r->compress;
        p.seed = 7;
        if (r->steps5) {
            static const int st5[5] = {1000, 800, 600, 400, 200};
            CHECK_OK(sk_schedule_make(st5, 5, 5.0, 1, &p.sched));
        }
        sk_stream *s;
        CHECK_OK(sk_stream_init(m, &p, &s));
        CHECK_OK(sk_stream_set_prompt(s, ctx, 100));
        CHECK_OK(sk_backend_sync(be));
        uint64_t allocs = 0;
        double first = 0, steady = 0;
        int nsteady = 0, finite = 1;
        /* steady: the window is full (rolling: after the first output) */
        const int k_steady = r->policy == SK_KV_ROLLING ? 1 : (int)((r->window + 2) / 3);
        for (int k = 0; k < chunks; k++) {
            sk_tensor x0;
            int64_t f0;
            double ts = sk_progress_now();
            CHECK_OK(sk_stream_step(s, &x0, &f0));
            CHECK_OK(sk_backend_sync(be));
            double dt = sk_progress_now() - ts;
            if (k == 0) { first = dt; allocs = be->n_allocs; }
            if (k >= k_steady) { steady += dt; nsteady++; }
            if (k == chunks - 1) {
                size_t ne = (size_t)sk_tensor_numel(&x0);
                float *h = malloc(ne * sizeof *h);
                CHECK_OK(sk_tensor_download_f32(&x0, h, ne));
                for (size_t j = 0; j < ne; j++) finite &= isfinite(h[j]) != 0;
                free(h);
            }
        }
        if (!finite) {
            printf("%s: the last chunk is not finite: FAIL\n", r->tag);
            g_fail = 1;
        }
        double c = nsteady ? steady / nsteady : first;
        /* forwards per output chunk: 4 steps + clean pass; rolling: one window + one commit */
        const double fwd = r->policy == SK_KV_ROLLING ? 2.0 : 5.0;
        printf("%-52s %9.1f %9.1f %10.1f %8.1f %8.2f %7llu\n", r->tag, 1e3 * first, 1e3 * c,
               1e3 * c / fwd, 12.0 / c, (double)sk_kv_bytes(s->kv) / 1e9,
               (unsigned long long)(be->n_allocs - allocs));
        if (be->n_allocs != allocs) g_fail = 1;
        sk_stream_free(&s);
    }
    printf("(steady: mean over the chunks after the window is full; 12 video frames a chunk; "
           "peak %.2f GB)\n", (double)be->bytes_peak / 1e9);
    free(ctx);
    sk_dit_free(&m);
    sk_backend_free_(&be);
}

int main(int argc, char **argv)
{
    int time_it = 1, check = 1, chunks = 0, layers = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--no-time")) time_it = 0;
        else if (!strcmp(argv[i], "--no-check")) check = 0;
        else if (!strcmp(argv[i], "--chunks") && i + 1 < argc) chunks = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--layers") && i + 1 < argc) layers = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: gpu_check_kv_policies [--no-check] [--no-time] [--chunks N] "
                            "[--layers N]\n");
            return 2;
        }
    }
    if (check) part1();
    if (time_it) part2(chunks, layers);
    if (check && g_compared == 0) {
        fprintf(stderr, "check_kv_policies: no comparison ran\n");
        g_fail = 1;
    }
    printf("check_kv_policies: %d comparisons, %s\n", g_compared, g_fail ? "FAIL" : "all PASS");
    return g_fail;
}
