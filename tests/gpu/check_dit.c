/* check_dit.c - the whole causal DiT chunk loop on CUDA against the CPU
 * reference, then timings at Wan2.1-1.3B's real size.
 *
 * Part 1: the tiny PyTorch fixtures (tests/fixtures/dit: the LongLive sink
 * run over 5 chunks and its prompt-switch variant) through the stream API on
 * the CPU backend, on CUDA with f32 activations (both must match the
 * reference to nmse <= 1e-10; measured ~1e-12) and on CUDA with bf16
 * activations and weights (nmse <= 6e-5 and |err| <= 0.05: bf16 rounding after
 * every op; measured nmse 2.7e-5, max |err| 0.023 on the H100, 2026-11-24). The
 * latents are O(1) (rms ~1.2, max ~4); 6e-5 is half the nmse between the
 * closest two KV policies' references (tests/gpu/check_kv_policies.c), so a
 * bf16 run that passes is told apart from a run of another policy.
 * Part 2: random 1.3B weights (bf16), 832x480 (latent 60x104, 1560 tokens a
 * frame), chunk 3, LongLive window 12 with sink 3, Philox noise: wall time of
 * each chunk (4 denoising forwards + the clean pass) until the window is full,
 * the steady-state time per forward and the video frames per second
 * (12 video frames a chunk); backend allocations after the first chunk must
 * be 0.
 *
 * usage: gpu_check_dit [--no-time] [--no-check] [--chunks N] [--layers N]
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

#define FIX SK_SOURCE_DIR "/tests/fixtures/dit/"

static int g_fail;

#define CHECK_OK(expr)                                                                   \
    do {                                                                                 \
        sk_status s_ = (expr);                                                           \
        if (s_ != SK_OK) {                                                               \
            fprintf(stderr, "check_dit: %s failed: %s: %s\n", #expr, sk_status_name(s_), \
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

/* The sink fixture run (switch_chunk < 0: no switch) on one backend. */
static float *run_fixture(sk_backend *be, sk_dtype wdtype, int switch_chunk)
{
    sk_dit_model *m = NULL;
    CHECK_OK(sk_dit_load(FIX "dit_tiny.safetensors", NULL, be, wdtype, &m));
    sk_st_file *emb;
    CHECK_OK(sk_st_open(FIX "embeds.safetensors", &emb));
    sk_noise_source *ns;
    CHECK_OK(sk_noise_source_file(FIX "noise_sink.safetensors", &ns));
    sk_stream_params p = sk_stream_params_default();
    p.frames = 15; p.latent_h = 8; p.latent_w = 8;
    p.kv_policy = SK_KV_SINK; p.kv_window = 9; p.kv_sink = 3;
    p.noise = ns;
    p.prompt_switch = switch_chunk >= 0;
    sk_stream *s;
    CHECK_OK(sk_stream_init(m, &p, &s));
    size_t n;
    float *c0 = read_f32(emb, "context", &n), *c1 = read_f32(emb, "context.1", &n);
    CHECK_OK(sk_stream_set_prompt(s, c0, 16));
    float *lat = calloc(15 * 256, sizeof *lat);
    for (int k = 0; !sk_stream_done(s); k++) {
        if (k == switch_chunk) CHECK_OK(sk_stream_switch_prompt(s, c1, 16));
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

static void report(const char *what, const float *got, const float *ref, size_t n, double nmse,
                   double atol, double rtol)
{
    sk_compare_result r = sk_compare(got, ref, n, nmse, atol, rtol);
    char line[512];
    sk_compare_format(&r, got, ref, line, sizeof line);
    printf("%-40s %s nmse %.2e (bound %.0e) %s\n", what, r.ok ? "PASS" : "FAIL", r.nmse, nmse,
           line);
    g_compared++;
    if (!r.ok) g_fail = 1;
}

static void part1(void)
{
    struct { const char *file; int sw; const char *tag; } runs[] = {
        {FIX "expected_sink.safetensors", -1, "sink 3 + window 9, 5 chunks"},
        {FIX "expected_switch.safetensors", 4, "prompt switch at chunk 4"},
    };
    sk_backend *cpu, *g32, *g16;
    CHECK_OK(sk_backend_cpu_create(&cpu));
    CHECK_OK(sk_backend_cuda_create(0, SK_DTYPE_F32, &g32));
    CHECK_OK(sk_backend_cuda_create(0, SK_DTYPE_BF16, &g16));
    for (size_t i = 0; i < sizeof runs / sizeof runs[0]; i++) {
        sk_st_file *exp;
        CHECK_OK(sk_st_open(runs[i].file, &exp));
        size_t n;
        float *ref = read_f32(exp, "latents", &n);
        float *a = run_fixture(cpu, SK_DIT_WDTYPE_AS_STORED, runs[i].sw);
        float *b = run_fixture(g32, SK_DIT_WDTYPE_AS_STORED, runs[i].sw);
        float *c = run_fixture(g16, SK_DTYPE_BF16, runs[i].sw);
        char what[128];
        snprintf(what, sizeof what, "%s: cpu f32", runs[i].tag);
        report(what, a, ref, n, 1e-10, 1e-5, 1e-2);
        snprintf(what, sizeof what, "%s: cuda f32", runs[i].tag);
        report(what, b, ref, n, 1e-10, 1e-5, 1e-2);
        snprintf(what, sizeof what, "%s: cuda bf16", runs[i].tag);
        /* latents are O(1); bf16's relative steps of 4e-3 on every op add up to max
         * |err| ~0.02: atol 0.05 caps the worst element, the nmse bound decides */
        report(what, c, ref, n, 6e-5, 0.05, 0.0);
        free(a); free(b); free(c); free(ref);
        sk_st_close(&exp);
    }
    sk_backend_free_(&cpu);
    sk_backend_free_(&g32);
    sk_backend_free_(&g16);
}

static void part2(int chunks, int layers)
{
    sk_backend *be;
    CHECK_OK(sk_backend_cuda_create(0, SK_DTYPE_BF16, &be));
    sk_dit_config cfg = sk_dit_config_wan_1_3b();
    if (layers > 0) cfg.num_layers = layers;
    double t0 = sk_progress_now();
    sk_dit_model *m;
    CHECK_OK(sk_dit_random(&cfg, be, SK_DTYPE_BF16, 1, &m));
    CHECK_OK(sk_backend_sync(be));
    printf("random Wan 1.3B (%lld layers): %.2f GB of bf16 weights in %.1f s\n",
           (long long)cfg.num_layers, (double)m->weight_bytes / 1e9, sk_progress_now() - t0);
    sk_stream_params p = sk_stream_params_default();
    p.frames = 3 * chunks;
    p.latent_h = 60; p.latent_w = 104;
    p.kv_policy = SK_KV_SINK; p.kv_window = 12; p.kv_sink = 3;
    p.seed = 7;
    sk_stream *s;
    CHECK_OK(sk_stream_init(m, &p, &s));
    float *ctx = calloc((size_t)(512 * 4096), sizeof *ctx);
    for (int i = 0; i < 100 * 4096; i++) ctx[i] = 0.1f * sinf((float)i * 0.37f);
    t0 = sk_progress_now();
    CHECK_OK(sk_stream_set_prompt(s, ctx, 100));
    CHECK_OK(sk_backend_sync(be));
    printf("prompt (text MLP + 30 layers of cross K/V): %.1f ms\n", 1e3 * (sk_progress_now() - t0));
    uint64_t allocs = 0;
    double steady = 0;
    int nsteady = 0;
    for (int k = 0; k < chunks; k++) {
        sk_tensor x0;
        int64_t f0;
        t0 = sk_progress_now();
        CHECK_OK(sk_stream_step(s, &x0, &f0));
        CHECK_OK(sk_backend_sync(be));
        double dt = sk_progress_now() - t0;
        int64_t keys = 0;
        for (int64_t i = 0; i < s->kv->n_slots; i++) keys += s->kv->slots[i].kind != SK_KV_SLOT_FREE;
        printf("chunk %d (frames %lld..%lld): %7.1f ms  (%.1f ms per forward, %lld frames cached)\n",
               k, (long long)f0, (long long)(f0 + 2), 1e3 * dt, 1e3 * dt / 5, (long long)keys);
        if (k == 0) allocs = be->n_allocs;
        if (k >= 4) { steady += dt; nsteady++; }
    }
    if (nsteady) {
        double c = steady / nsteady;
        printf("steady state (window full, 18720 keys): %.1f ms per chunk, %.1f ms per forward, "
               "%.1f video fps (12 frames a chunk)\n", 1e3 * c, 1e3 * c / 5, 12.0 / c);
    }
    printf("backend allocations after chunk 0: %llu %s; peak %.2f GB\n",
           (unsigned long long)(be->n_allocs - allocs), be->n_allocs == allocs ? "PASS" : "FAIL",
           (double)be->bytes_peak / 1e9);
    if (be->n_allocs != allocs) g_fail = 1;
    free(ctx);
    sk_stream_free(&s);
    sk_dit_free(&m);
    sk_backend_free_(&be);
}

/* Part 3: where a steady-state forward's time goes: each op the forward
 * calls, timed alone at the 1.3B shapes (N = 4680 query tokens, 18720 keys)
 * and multiplied by its count per forward (30 layers). */
static double time_op(sk_backend *be, int reps, sk_status (*fn)(void *), void *arg)
{
    CHECK_OK(fn(arg));
    CHECK_OK(sk_backend_sync(be));
    double t0 = sk_progress_now();
    for (int i = 0; i < reps; i++) CHECK_OK(fn(arg));
    CHECK_OK(sk_backend_sync(be));
    return (sk_progress_now() - t0) / reps;
}

typedef struct {
    sk_backend *be;
    sk_tensor x, y, h, w, b, wf, bf, wd, big, q3, mod, kc, vc, nw, ctxk, ctxv;
    sk_kv_range r[2];
} opb;

static sk_status f_lin(void *a) { opb *o = a; return sk_op_linear(o->be, &o->y, &o->x, &o->w, &o->b, SK_ACT_NONE); }
static sk_status f_ffn1(void *a) { opb *o = a; return sk_op_linear(o->be, &o->big, &o->x, &o->wf, &o->bf, SK_ACT_GELU_TANH); }
static sk_status f_ffn2(void *a) { opb *o = a; return sk_op_linear(o->be, &o->y, &o->big, &o->wd, &o->b, SK_ACT_NONE); }
static sk_status f_att(void *a) { opb *o = a; return sk_op_attention(o->be, &o->y, &o->q3, o->r, 1, 0.088f, NULL); }
static sk_status f_xatt(void *a) { opb *o = a; return sk_op_attention(o->be, &o->y, &o->q3, o->r + 1, 1, 0.088f, NULL); }
static sk_status f_mod(void *a) { opb *o = a; return sk_op_modulate(o->be, &o->h, &o->x, &o->mod, 0, 1, 1560, 1, 1e-6f); }
static sk_status f_ln(void *a) { opb *o = a; return sk_op_layernorm(o->be, &o->h, &o->x, &o->nw, &o->nw, 1e-6f); }
static sk_status f_rms(void *a) { opb *o = a; return sk_op_rmsnorm(o->be, &o->h, &o->x, &o->nw, 1e-6f); }
static sk_status f_rope(void *a) { opb *o = a; return sk_op_rope3d(o->be, &o->q3, 3, 30, 52, 9, 10000.0); }
static sk_status f_gadd(void *a) { opb *o = a; return sk_op_gated_add(o->be, &o->y, &o->h, &o->mod, 2, 1560); }
static sk_status f_copy(void *a) { opb *o = a; sk_tensor d = sk_tensor_rows(&o->kc, 0, 4680); sk_tensor s3 = o->q3; return sk_tensor_copy(&d, &s3); }

static void part3(void)
{
    opb o;
    memset(&o, 0, sizeof o);
    CHECK_OK(sk_backend_cuda_create(0, SK_DTYPE_BF16, &o.be));
    sk_backend *be = o.be;
    const int64_t N = 4680, D = 1536, FF = 8960, K = 18720;
    sk_dtype bt = SK_DTYPE_BF16;
    int64_t sND[2] = {N, D}, sDD[2] = {D, D}, sD[1] = {D}, sFD[2] = {FF, D}, sDF[2] = {D, FF},
            sF[1] = {FF}, sNF[2] = {N, FF}, s3[3] = {N, 12, 128}, sK[3] = {K, 12, 128},
            sC[3] = {512, 12, 128}, sM[3] = {3, 6, D};
    CHECK_OK(sk_tensor_alloc(be, bt, 2, sND, &o.x));
    CHECK_OK(sk_tensor_alloc(be, bt, 2, sND, &o.y));
    CHECK_OK(sk_tensor_alloc(be, bt, 2, sND, &o.h));
    CHECK_OK(sk_tensor_alloc(be, bt, 2, sDD, &o.w));
    CHECK_OK(sk_tensor_alloc(be, bt, 1, sD, &o.b));
    CHECK_OK(sk_tensor_alloc(be, bt, 1, sD, &o.nw));
    CHECK_OK(sk_tensor_alloc(be, bt, 2, sFD, &o.wf));
    CHECK_OK(sk_tensor_alloc(be, bt, 1, sF, &o.bf));
    CHECK_OK(sk_tensor_alloc(be, bt, 2, sDF, &o.wd));
    CHECK_OK(sk_tensor_alloc(be, bt, 2, sNF, &o.big));
    CHECK_OK(sk_tensor_alloc(be, bt, 3, s3, &o.q3));
    CHECK_OK(sk_tensor_alloc(be, bt, 3, sK, &o.kc));
    CHECK_OK(sk_tensor_alloc(be, bt, 3, sK, &o.vc));
    CHECK_OK(sk_tensor_alloc(be, bt, 3, sC, &o.ctxk));
    CHECK_OK(sk_tensor_alloc(be, bt, 3, sC, &o.ctxv));
    CHECK_OK(sk_tensor_alloc(be, bt, 3, sM, &o.mod));
    sk_tensor *all[] = {&o.x, &o.y, &o.h, &o.w, &o.b, &o.nw, &o.wf, &o.bf, &o.wd, &o.big, &o.q3,
                        &o.kc, &o.vc, &o.ctxk, &o.ctxv, &o.mod};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        CHECK_OK(sk_op_noise(be, all[i], 3, 0, (uint32_t)i));
    CHECK_OK(sk_op_axpby(be, &o.w, 0.02f, &o.w, 0.0f, &o.w));
    CHECK_OK(sk_op_axpby(be, &o.wf, 0.02f, &o.wf, 0.0f, &o.wf));
    CHECK_OK(sk_op_axpby(be, &o.wd, 0.01f, &o.wd, 0.0f, &o.wd));
    o.r[0] = (sk_kv_range){&o.kc, &o.vc, 0, K};
    o.r[1] = (sk_kv_range){&o.ctxk, &o.ctxv, 0, 512};
    struct { const char *name; sk_status (*fn)(void *); int count; double flop; } ops[] = {
        {"linear 1536->1536 (q k v o, cross q o)", f_lin, 6, 2.0 * N * D * D},
        {"linear 1536->8960 + gelu (ffn.0)", f_ffn1, 1, 2.0 * N * D * FF},
        {"linear 8960->1536 (ffn.2)", f_ffn2, 1, 2.0 * N * D * FF},
        {"self-attention 4680 x 18720 keys", f_att, 1, 4.0 * N * K * D},
        {"cross-attention 4680 x 512", f_xatt, 1, 4.0 * N * 512 * D},
        {"modulate (LN + scale/shift)", f_mod, 2, 0},
        {"layernorm (norm3)", f_ln, 1, 0},
        {"rmsnorm (q, k, cross q)", f_rms, 3, 0},
        {"rope3d (q, k)", f_rope, 2, 0},
        {"gated_add (3 residuals)", f_gadd, 3, 0},
        {"copy K/V into the cache", f_copy, 2, 0},
    };
    double total = 0;
    printf("\nop budget of one steady-state forward (bf16, x30 layers):\n");
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        double t = time_op(be, 10, ops[i].fn, &o);
        double per = t * ops[i].count * 30;
        total += per;
        if (ops[i].flop > 0)
            printf("  %-42s %7.3f ms x %d x 30 = %6.2f ms  (%.0f TFLOP/s)\n", ops[i].name, 1e3 * t,
                   ops[i].count, 1e3 * per, ops[i].flop / t / 1e12);
        else
            printf("  %-42s %7.3f ms x %d x 30 = %6.2f ms\n", ops[i].name, 1e3 * t, ops[i].count,
                   1e3 * per);
    }
    printf("  sum of the ops: %.1f ms per forward (compare with the measured forward above)\n",
           1e3 * total);
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) sk_tensor_free(all[i]);
    sk_backend_free_(&o.be);
}

int main(int argc, char **argv)
{
    int time_it = 1, check = 1, chunks = 7, layers = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--no-time")) time_it = 0;
        else if (!strcmp(argv[i], "--no-check")) check = 0;
        else if (!strcmp(argv[i], "--chunks") && i + 1 < argc) chunks = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--layers") && i + 1 < argc) layers = atoi(argv[++i]);
        else { fprintf(stderr, "usage: gpu_check_dit [--no-time] [--no-check] [--chunks N] [--layers N]\n"); return 2; }
    }
    if (check) part1();
    if (time_it) part2(chunks, layers);
    if (time_it) part3();
    if (check && g_compared == 0) {
        fprintf(stderr, "check_dit: no comparison ran\n");
        g_fail = 1;
    }
    printf("check_dit: %d comparisons, %s\n", g_compared, g_fail ? "FAIL" : "all PASS");
    return g_fail;
}
