/* check_pp.c - pipeline parallelism on GPUs (docs/MULTIGPU.md).
 *
 * Part 1 (correctness, any number of GPUs): the tiny fixture run (LongLive
 * sink 3 + window 9, 5 chunks, reference noise) through the pipelined stream
 * against one sk_stream on cuda:0, with f32 activations (must match to nmse
 * <= 1e-10; bit-identity is reported) and bf16 (nmse <= 1e-6: the same bf16
 * kernels on the same GPU, so only reassociation may differ):
 *   - 1 stage over NCCL's self-loop (a one-rank communicator; one GPU)
 *   - 2 stages on cuda:0 over the loopback transport (one GPU)
 *   - 2 stages on cuda:0 and cuda:1 over NCCL (two GPUs or more)
 * Part 2 (--time, needs the GPUs): random Wan2.1-1.3B weights (bf16), 832x480,
 * chunk 3, sink 3 + window 12, Philox noise: steady-state ms per chunk and
 * video fps for 1, 2, 4, ... stages up to --gpus (one GPU each, NCCL), with
 * one lane and with as many lanes as stages, next to the estimate of
 * sk_pp_simulate from the measured one-GPU pass time.
 *
 * usage: gpu_check_pp [--gpus N] [--time] [--chunks N] [--layers N]
 * Exit status: 0 all pass, 1 a comparison failed, 2 setup error.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dit/model.h"
#include "runtime/stream/pp_stream.h"
#include "runtime/core/progress.h"
#include "runtime/io/safetensors.h"
#include "runtime/stream/stream.h"
#include "tests/common/compare.h"

#define FIX SK_SOURCE_DIR "/tests/fixtures/dit/"

static int g_fail;

#define CHECK_OK(expr)                                                                  \
    do {                                                                                \
        sk_status s_ = (expr);                                                          \
        if (s_ != SK_OK) {                                                              \
            fprintf(stderr, "check_pp: %s failed: %s: %s\n", #expr, sk_status_name(s_), \
                    sk_error_message());                                                \
            exit(2);                                                                    \
        }                                                                               \
    } while (0)

static float *g_ctx;

static void fixture_params(sk_stream_params *p, sk_noise_source *ns)
{
    *p = sk_stream_params_default();
    p->frames = 15;
    p->latent_h = 8;
    p->latent_w = 8;
    p->kv_policy = SK_KV_SINK;
    p->kv_window = 9;
    p->kv_sink = 3;
    p->noise = ns;
}

static float *run_single(sk_dtype act)
{
    sk_backend *be;
    CHECK_OK(sk_backend_cuda_create(0, act, &be));
    sk_dit_model *m;
    CHECK_OK(sk_dit_load(FIX "dit_tiny.safetensors", NULL, be, act, &m));
    sk_noise_source *ns;
    CHECK_OK(sk_noise_source_file(FIX "noise_sink.safetensors", &ns));
    sk_stream_params p;
    fixture_params(&p, ns);
    sk_stream *s;
    CHECK_OK(sk_stream_init(m, &p, &s));
    CHECK_OK(sk_stream_set_prompt(s, g_ctx, 16));
    float *lat = calloc(15 * 256, sizeof *lat);
    while (!sk_stream_done(s)) {
        sk_tensor x0;
        int64_t f0;
        CHECK_OK(sk_stream_step(s, &x0, &f0));
        CHECK_OK(sk_tensor_download_f32(&x0, lat + f0 * 256, (size_t)sk_tensor_numel(&x0)));
    }
    sk_stream_free(&s);
    sk_noise_source_free(&ns);
    sk_dit_free(&m);
    sk_backend_free_(&be);
    return lat;
}

/* K stages on devs[k] (nccl: NCCL transport, else loopback). */
static float *run_pp(int K, const int *devs, int nccl, sk_dtype act, double *wall)
{
    sk_backend *be[SK_PP_MAX_STAGES];
    sk_dit_model *m[SK_PP_MAX_STAGES];
    sk_pp_params pp;
    memset(&pp, 0, sizeof pp);
    pp.n_stages = K;
    CHECK_OK(sk_pp_plan_balanced(2, K, NULL, 0, 0, &pp.plan));
    for (int k = 0; k < K; k++) {
        CHECK_OK(sk_backend_cuda_create(devs[k], act, &be[k]));
        CHECK_OK(sk_dit_load_blocks(FIX "dit_tiny.safetensors", NULL, be[k], act,
                                    pp.plan.first[k], pp.plan.last[k], &m[k]));
        pp.be[k] = be[k];
        pp.model[k] = m[k];
    }
    sk_pp_transport *tr = NULL;
    if (nccl) CHECK_OK(sk_pp_transport_nccl(K, be, 16 * 128 * 3 * 4, 3, &tr));
    pp.transport = tr;
    sk_noise_source *ns;
    CHECK_OK(sk_noise_source_file(FIX "noise_sink.safetensors", &ns));
    fixture_params(&pp.sp, ns);
    sk_pp_stream *s;
    CHECK_OK(sk_pp_stream_init(&pp, &s));
    CHECK_OK(sk_pp_stream_set_prompt(s, 0, g_ctx, 16));
    float *lat = calloc(15 * 256, sizeof *lat);
    double t0 = sk_progress_now();
    while (!sk_pp_stream_done(s)) {
        int64_t f0, n;
        const float *h;
        CHECK_OK(sk_pp_stream_next(s, NULL, NULL, &f0, &n, &h, NULL));
        memcpy(lat + f0 * 256, h, sizeof(float) * (size_t)(n * 256));
    }
    CHECK_OK(sk_pp_stream_finish(s));
    *wall = sk_progress_now() - t0;
    sk_pp_stream_free(&s);
    sk_pp_transport_free(&tr);
    sk_noise_source_free(&ns);
    for (int k = 0; k < K; k++) {
        sk_dit_free(&m[k]);
        sk_backend_free_(&be[k]);
    }
    return lat;
}

static void report(const char *what, const float *got, const float *ref, double nmse_max)
{
    sk_compare_result r = sk_compare(got, ref, 15 * 256, nmse_max, 0.05, 0.0);
    int same = memcmp(got, ref, sizeof(float) * 15 * 256) == 0;
    char buf[512];
    sk_compare_format(&r, got, ref, buf, sizeof buf);
    printf("  %-52s %s  %s%s\n", what, r.ok ? "PASS" : "FAIL", buf,
           same ? "  (bit-identical)" : "");
    if (!r.ok) g_fail = 1;
}

static void part1(int gpus)
{
    sk_st_file *emb;
    CHECK_OK(sk_st_open(FIX "embeds.safetensors", &emb));
    CHECK_OK(sk_st_read_f32(emb, "context", 0, NULL, &g_ctx, NULL));
    sk_st_close(&emb);
    printf("part 1: tiny fixture, pipelined vs one stream on cuda:0 (NCCL %s)\n",
           sk_pp_have_nccl() ? "built" : "NOT built");
    const sk_dtype acts[2] = {SK_DTYPE_F32, SK_DTYPE_BF16};
    for (int a = 0; a < 2; a++) {
        const char *an = a ? "bf16" : "f32";
        /* the same kernels in the same dtype on one GPU: nmse ~0 (bit-identity is
         * reported); 1e-6 still admits a reordered reduction, not a wrong stage */
        const double tol = a ? 1e-6 : 1e-10;
        float *ref = run_single(acts[a]);
        char what[96];
        double wall;
        int d0[2] = {0, 0}, d01[2] = {0, 1};
        if (sk_pp_have_nccl()) {
            float *l = run_pp(1, d0, 1, acts[a], &wall);
            snprintf(what, sizeof what, "%s: 1 stage, NCCL self-loop on cuda:0", an);
            report(what, l, ref, tol);
            free(l);
        }
        float *l2 = run_pp(2, d0, 0, acts[a], &wall);
        snprintf(what, sizeof what, "%s: 2 stages on cuda:0, loopback", an);
        report(what, l2, ref, tol);
        free(l2);
        if (gpus >= 2 && sk_pp_have_nccl()) {
            float *l3 = run_pp(2, d01, 1, acts[a], &wall);
            snprintf(what, sizeof what, "%s: 2 stages on cuda:0 + cuda:1, NCCL", an);
            report(what, l3, ref, tol);
            free(l3);
        }
        free(ref);
    }
    free(g_ctx);
}

/* ---- part 2: scaling at the 1.3B size ---- */

typedef struct {
    double ms_chunk;   /* steady state, per lane */
    double pass_ms;    /* one stage: a pass */
} timing;

static timing time_pipeline(int K, int lanes, int chunks, int layers)
{
    sk_dit_config cfg = sk_dit_config_wan_1_3b();
    if (layers > 0) cfg.num_layers = layers;
    sk_backend *be[SK_PP_MAX_STAGES];
    sk_dit_model *m[SK_PP_MAX_STAGES];
    sk_pp_params pp;
    memset(&pp, 0, sizeof pp);
    pp.n_stages = K;
    double b, e, h;
    sk_pp_cost_estimate(cfg.dim, cfg.ffn_dim, cfg.in_dim, cfg.text_len, 3, 1560, 12, &b, &e, &h);
    CHECK_OK(sk_pp_plan_balanced((int)cfg.num_layers, K, NULL, e / b, h / b, &pp.plan));
    for (int k = 0; k < K; k++) {
        CHECK_OK(sk_backend_cuda_create(k, SK_DTYPE_BF16, &be[k]));
        CHECK_OK(sk_dit_random_blocks(&cfg, be[k], SK_DTYPE_BF16, 1, pp.plan.first[k],
                                      pp.plan.last[k], &m[k]));
        pp.be[k] = be[k];
        pp.model[k] = m[k];
    }
    const size_t bytes = (size_t)3 * 1560 * 1536 * 2;
    sk_pp_transport *tr = NULL;
    CHECK_OK(sk_pp_have_nccl() ? sk_pp_transport_nccl(K, be, bytes, 2 * lanes + 1, &tr)
                               : SK_ERR(SK_E_UNSUPPORTED, "no NCCL"));
    pp.transport = tr;
    pp.sp = sk_stream_params_default();
    pp.sp.frames = 3 * chunks;
    pp.sp.latent_h = 60;
    pp.sp.latent_w = 104;
    pp.n_lanes = lanes;
    for (int l = 0; l < lanes; l++) pp.lanes[l].seed = 7 + (uint64_t)l;
    sk_pp_stream *s;
    CHECK_OK(sk_pp_stream_init(&pp, &s));
    float *ctx = calloc((size_t)(512 * 4096), sizeof *ctx);
    for (int i = 0; i < 100 * 4096; i++) ctx[i] = 0.1f * sinf((float)i * 0.37f);
    for (int l = 0; l < lanes; l++) CHECK_OK(sk_pp_stream_set_prompt(s, l, ctx, 100));
    free(ctx);
    double *t_out = calloc((size_t)chunks, sizeof *t_out);
    int got = 0;
    while (!sk_pp_stream_done(s)) {
        int lane;
        int64_t f0;
        CHECK_OK(sk_pp_stream_next(s, NULL, &lane, &f0, NULL, NULL, NULL));
        if (lane == 0) t_out[f0 / 3] = sk_progress_now();
        got++;
    }
    CHECK_OK(sk_pp_stream_finish(s));
    sk_pp_stats st;
    sk_pp_stream_stats(s, &st);
    timing r = {0, 0};
    /* steady state: the window (12 frames) is full from chunk 4 on */
    int c0 = chunks / 2 > 4 ? chunks / 2 : 4;
    if (chunks - 1 > c0) r.ms_chunk = 1e3 * (t_out[chunks - 1] - t_out[c0]) / (chunks - 1 - c0);
    r.pass_ms = 1e3 * st.busy_s[0] / (double)(chunks * 5 * lanes);
    free(t_out);
    sk_pp_stream_free(&s);
    sk_pp_transport_free(&tr);
    for (int k = 0; k < K; k++) {
        sk_dit_free(&m[k]);
        sk_backend_free_(&be[k]);
    }
    return r;
}

static void part2(int gpus, int chunks, int layers)
{
    printf("\npart 2: random Wan2.1-1.3B bf16, 832x480, chunk 3, sink 3 + window 12, %d chunks "
           "(steady state from chunk %d)\n", chunks, chunks / 2 > 4 ? chunks / 2 : 4);
    timing one = time_pipeline(1, 1, chunks, layers);
    printf("  %-6s %-6s %14s %16s %16s %22s\n", "GPUs", "lanes", "ms/chunk/lane",
           "video fps/lane", "video fps total", "estimate fps total");
    for (int K = 1; K <= gpus; K *= 2)
        for (int lanes = 1; lanes <= K; lanes = lanes == 1 && K > 1 ? K : lanes + K) {
            timing t = K == 1 && lanes == 1 ? one : time_pipeline(K, lanes, chunks, layers);
            /* estimate: the one-GPU pass split evenly, links free */
            double pc[SK_PP_MAX_STAGES], cc[SK_PP_MAX_STAGES];
            for (int k = 0; k < K; k++) pc[k] = cc[k] = one.ms_chunk / 5.0 / K;
            sk_pp_sched sc = {.n_stages = K, .n_lanes = lanes, .steps = 4, .n_chunks = 16};
            sk_pp_sim_result r;
            CHECK_OK(sk_pp_simulate(&sc, pc, cc, 0, 0, NULL, NULL, &r));
            printf("  %-6d %-6d %14.1f %16.1f %16.1f %22.1f\n", K, lanes, t.ms_chunk,
                   12e3 / t.ms_chunk, 12e3 * lanes / t.ms_chunk, 12e3 * lanes / r.chunk_period);
        }
}

int main(int argc, char **argv)
{
    int gpus = 1, time_it = 0, chunks = 12, layers = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--gpus") && i + 1 < argc) gpus = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--time")) time_it = 1;
        else if (!strcmp(argv[i], "--chunks") && i + 1 < argc) chunks = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--layers") && i + 1 < argc) layers = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: gpu_check_pp [--gpus N] [--time] [--chunks N] [--layers N]\n");
            return 2;
        }
    }
    if (gpus < 1 || gpus > SK_PP_MAX_STAGES || chunks < 6) {
        fprintf(stderr, "check_pp: --gpus 1..%d, --chunks >= 6\n", SK_PP_MAX_STAGES);
        return 2;
    }
    part1(gpus);
    if (time_it) part2(gpus, chunks, layers);
    printf("check_pp: %s\n", g_fail ? "FAIL" : "all PASS");
    return g_fail;
}
