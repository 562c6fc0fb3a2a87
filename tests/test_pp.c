/* test_pp.c - pipeline parallelism on the CPU (runtime/pp_*.h): stage plans,
 * the schedule and its dependency rule, and pipelined runs over loopback
 * stages that must give latents bit-identical (memcmp) to one sk_stream on
 * one backend, through KV eviction, with 1-3 stages and 1-2 lanes; every
 * stage must see exactly the KV states of the serial run. */
#include "common/cli_run.h"
#include "dit_test_util.h"

#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runtime/stream/pp_stream.h"

/* ---------------------------------------------------------------- plans */

static void expect_plan(const sk_pp_plan *p, const int *sizes, int n)
{
    char buf[256];
    cr_assert_eq(p->n_stages, n);
    for (int k = 0; k < n; k++)
        cr_expect_eq(p->last[k] - p->first[k], sizes[k], "stage %d: %d blocks, expected %d (%s)", k,
                     p->last[k] - p->first[k], sizes[k], sk_pp_plan_str(p, buf, sizeof buf));
    cr_expect_eq(p->first[0], 0);
    for (int k = 1; k < n; k++) cr_expect_eq(p->first[k], p->last[k - 1], "contiguous");
    cr_expect_eq(p->last[n - 1], p->n_blocks);
}

Test(pp_plan, balanced_uniform_splits)
{
    sk_pp_plan p;
    dt_ok(sk_pp_plan_balanced(6, 3, NULL, 0, 0, &p), "6/3");
    expect_plan(&p, (int[]){2, 2, 2}, 3);
    dt_ok(sk_pp_plan_balanced(30, 1, NULL, 0, 0, &p), "30/1");
    expect_plan(&p, (int[]){30}, 1);
    dt_ok(sk_pp_plan_balanced(30, 2, NULL, 0, 0, &p), "30/2");
    expect_plan(&p, (int[]){15, 15}, 2);
    dt_ok(sk_pp_plan_balanced(30, 4, NULL, 0, 0, &p), "30/4");
    int mx = 0, tot = 0;
    for (int k = 0; k < 4; k++) {
        int n = p.last[k] - p.first[k];
        mx = n > mx ? n : mx;
        tot += n;
        cr_expect(n == 7 || n == 8, "30 blocks over 4: stage %d has %d", k, n);
    }
    cr_expect_eq(mx, 8);
    cr_expect_eq(tot, 30);
    dt_ok(sk_pp_plan_balanced(2, 2, NULL, 0, 0, &p), "2/2");
    expect_plan(&p, (int[]){1, 1}, 2);
    char buf[64];
    dt_ok(sk_pp_plan_balanced(30, 3, NULL, 0, 0, &p), "30/3");
    cr_expect_str_eq(sk_pp_plan_str(&p, buf, sizeof buf), "0-9 | 10-19 | 20-29");
}

/* Measured costs move the boundaries: an expensive embedding (stage 0) or
 * head (last stage) costs that stage blocks; a slow block gets a stage alone. */
Test(pp_plan, balanced_by_cost)
{
    sk_pp_plan p;
    dt_ok(sk_pp_plan_balanced(30, 3, NULL, 3.0, 0, &p), "embed 3");
    expect_plan(&p, (int[]){8, 11, 11}, 3);
    cr_expect_float_eq(p.cost[0], 11.0, 1e-9);
    dt_ok(sk_pp_plan_balanced(30, 3, NULL, 0, 3.0, &p), "head 3");
    expect_plan(&p, (int[]){11, 11, 8}, 3);
    dt_ok(sk_pp_plan_balanced(30, 3, NULL, 4.0, 0, &p), "embed 4");
    cr_expect_float_eq(p.cost[0] > p.cost[2] ? p.cost[0] : p.cost[2], 12.0, 1e-9);
    double c[6] = {5, 1, 1, 1, 1, 1};
    dt_ok(sk_pp_plan_balanced(6, 2, c, 0, 0, &p), "skewed");
    expect_plan(&p, (int[]){1, 5}, 2);
    double c2[8] = {1, 1, 1, 1, 1, 1, 1, 9};
    dt_ok(sk_pp_plan_balanced(8, 3, c2, 0, 0, &p), "slow last block");
    cr_expect_eq(p.last[2] - p.first[2], 1, "the slow block alone");
    cr_expect_float_eq(p.cost[2], 9.0, 1e-9);
    /* the cost model: identical blocks, small ends */
    double b, e, h;
    sk_pp_cost_estimate(1536, 8960, 16, 512, 3, 1560, 12, &b, &e, &h);
    cr_expect(b > 100 * e && b > 100 * h, "block %g embed %g head %g", b, e, h);
}

Test(pp_plan, invalid_splits_fail_clearly)
{
    sk_pp_plan p;
    sk_status st = sk_pp_plan_balanced(2, 3, NULL, 0, 0, &p);
    cr_expect_eq(st, SK_E_INVALID_ARG);
    cr_expect(strstr(sk_error_message(), "3 stages for a model of 2 blocks") &&
                  strstr(sk_error_message(), "at least one block"),
              "%s", sk_error_message());
    cr_expect_eq(sk_pp_plan_balanced(30, 0, NULL, 0, 0, &p), SK_E_INVALID_ARG);
    cr_expect_eq(sk_pp_plan_balanced(30, SK_PP_MAX_STAGES + 1, NULL, 0, 0, &p), SK_E_INVALID_ARG);
    double bad[3] = {1, -1, 1};
    cr_expect_eq(sk_pp_plan_balanced(3, 2, bad, 0, 0, &p), SK_E_INVALID_ARG);
    cr_expect_eq(sk_pp_plan_from_sizes(30, 2, (int[]){10, 10}, &p), SK_E_INVALID_ARG);
    cr_expect(strstr(sk_error_message(), "hold 20 blocks; the model has 30"), "%s",
              sk_error_message());
    cr_expect_eq(sk_pp_plan_from_sizes(30, 2, (int[]){0, 30}, &p), SK_E_INVALID_ARG);
    dt_ok(sk_pp_plan_parse("10,12,8", 30, 3, &p), "parse");
    expect_plan(&p, (int[]){10, 12, 8}, 3);
    cr_expect_eq(sk_pp_plan_parse("10,20", 30, 3, &p), SK_E_INVALID_ARG);
    cr_expect(strstr(sk_error_message(), "names 2 stages; the pipeline has 3"), "%s",
              sk_error_message());
    cr_expect_eq(sk_pp_plan_parse("10;20", 30, 2, &p), SK_E_INVALID_ARG);
    cr_expect_eq(sk_pp_plan_parse("", 30, 1, &p), SK_E_INVALID_ARG);
}

/* ------------------------------------------------------------- schedule */

/* The order is a topological order of the dependency rule: every dependency
 * of (task i, stage k) is an earlier task, or task i on an earlier stage;
 * (C) ties every chunk's passes on a stage to the previous chunk's clean
 * pass on the same stage. */
Test(pp_sched, order_respects_the_dependency_rule)
{
    for (int K = 1; K <= 4; K++)
        for (int lanes = 1; lanes <= 3; lanes++) {
            sk_pp_sched s = {.n_stages = K, .n_lanes = lanes, .steps = 4, .n_chunks = 5};
            int64_t n = sk_pp_sched_count(&s);
            cr_assert_eq(n, 5 * 5 * lanes);
            for (int64_t i = 0; i < n; i++) {
                sk_pp_task t = sk_pp_sched_task(&s, i);
                cr_assert_eq(sk_pp_sched_index(&s, t), i);
                /* lanes in serial order: (c, p) increases along the order */
                if (i >= lanes) {
                    sk_pp_task u = sk_pp_sched_task(&s, i - lanes);
                    cr_assert_eq(u.lane, t.lane);
                    cr_assert(u.chunk * 5 + u.pass + 1 == t.chunk * 5 + t.pass);
                }
                for (int k = 0; k < K; k++) {
                    int64_t dt[4];
                    int ds[4], haveC = 0;
                    int nd = sk_pp_sched_deps(&s, i, k, dt, ds);
                    for (int j = 0; j < nd; j++) {
                        cr_assert(dt[j] < i || (dt[j] == i && ds[j] < k),
                                  "K %d task %lld stage %d depends on task %lld stage %d", K,
                                  (long long)i, k, (long long)dt[j], ds[j]);
                        sk_pp_task d = sk_pp_sched_task(&s, dt[j]);
                        if (ds[j] == k && d.lane == t.lane && d.chunk == t.chunk - 1 &&
                            d.pass == s.steps)
                            haveC = 1;
                    }
                    if (t.pass == 0 && t.chunk > 0) cr_assert(haveC, "rule (C) missing");
                }
            }
        }
}

/* The timeline: the rule holds; one stage is the serial run; one lane
 * overlaps only clean(c) with pass 0 of c+1; lanes = stages fill the
 * pipeline. */
Test(pp_sched, simulated_timeline)
{
    double pc[4] = {1, 1, 1, 1}, cc[4] = {1, 1, 1, 1};
    sk_pp_sim_result r;
    sk_pp_sched s1 = {.n_stages = 1, .n_lanes = 1, .steps = 4, .n_chunks = 8};
    dt_ok(sk_pp_simulate(&s1, pc, cc, 0, 0, NULL, NULL, &r), "sim 1");
    cr_expect_float_eq(r.makespan, 8 * 5.0, 1e-9);
    cr_expect_float_eq(r.chunk_period, 5.0, 1e-9);
    /* 4 stages of a quarter each, one lane: 4 passes in series + a quarter */
    double q[4] = {0.25, 0.25, 0.25, 0.25};
    sk_pp_sched s4 = {.n_stages = 4, .n_lanes = 1, .steps = 4, .n_chunks = 8};
    int64_t n = sk_pp_sched_count(&s4);
    double *st = malloc(sizeof(double) * (size_t)(n * 4)), *en = malloc(sizeof(double) * (size_t)(n * 4));
    dt_ok(sk_pp_simulate(&s4, q, q, 0, 0, st, en, &r), "sim 4");
    cr_expect_float_eq(r.chunk_period, 4.25, 1e-9, "period %g", r.chunk_period);
    for (int64_t i = 0; i < n; i++)
        for (int k = 0; k < 4; k++) {
            int64_t dt[4];
            int ds[4];
            int nd = sk_pp_sched_deps(&s4, i, k, dt, ds);
            for (int j = 0; j < nd; j++)
                cr_assert_geq(st[i * 4 + k], en[dt[j] * 4 + ds[j]] - 1e-12);
        }
    free(st);
    free(en);
    /* 4 lanes fill 4 stages: each lane still gets a chunk every 5 passes */
    sk_pp_sched s44 = {.n_stages = 4, .n_lanes = 4, .steps = 4, .n_chunks = 16};
    dt_ok(sk_pp_simulate(&s44, q, q, 0, 0, NULL, NULL, &r), "sim 4x4");
    cr_expect_float_eq(r.chunk_period, 5.0, 1e-9, "period %g", r.chunk_period);
    for (int k = 0; k < 4; k++) cr_expect_gt(r.busy[k], 0.95, "stage %d busy %g", k, r.busy[k]);
}

/* The estimate docs/MULTIGPU.md quotes: Wan2.1-1.3B at 832x480 on H100s,
 * one pass 59 ms and the clean pass 57 ms on one GPU (docs/PERF.md, 295 ms a
 * chunk), split evenly, sampler 0.3 ms, links free. One exact lane gains at
 * most (steps + 1) / (steps + 1/K); K lanes fill K stages. */
Test(pp_sched, scaling_estimate_wan_1_3b)
{
    const double T = 59.0, Tc = 57.0;
    double one = 0;
    for (int K = 1; K <= 8; K *= 2)
        for (int lanes = 1; lanes <= K; lanes = lanes == 1 && K > 1 ? K : lanes + K) {
            double pc[8], cc[8];
            for (int k = 0; k < K; k++) {
                pc[k] = T / K;
                cc[k] = Tc / K;
            }
            sk_pp_sched s = {.n_stages = K, .n_lanes = lanes, .steps = 4, .n_chunks = 40};
            sk_pp_sim_result r;
            dt_ok(sk_pp_simulate(&s, pc, cc, 0.3, 0, NULL, NULL, &r), "sim");
            double busy = 0;
            for (int k = 0; k < K; k++) busy += r.busy[k] / K;
            if (K == 1) one = r.chunk_period;
            cr_log_info("estimate: %d GPU(s), %d lane(s): %.1f ms a chunk per lane, %.1f video "
                        "fps per lane, %.1f in all, stages busy %.0f%%", K, lanes, r.chunk_period,
                        12e3 / r.chunk_period, 12e3 * lanes / r.chunk_period, 100 * busy);
            double speed = one / r.chunk_period * lanes;
            if (lanes == 1) {
                double bound = 5.0 / (4.0 + 1.0 / K);
                cr_expect_leq(speed, bound + 1e-9, "K %d: %.3f above the bound %.3f", K, speed, bound);
                cr_expect_geq(speed, 0.97 * bound, "K %d: %.3f", K, speed);
            } else {
                cr_expect_geq(speed, 0.95 * K, "K %d lanes %d: %.2fx", K, lanes, speed);
            }
        }
}

/* ------------------------------------------------------ pipelined runs */

static void setup_two(sk_backend *be[2], sk_dit_model *m[2], sk_pp_params *pp, int frames);
static void teardown_two(sk_backend *be[2], sk_dit_model *m[2]);

typedef struct {
    sk_kv_policy pol;
    int64_t window, sink, frames;
    const char *noise_file; /* NULL: Philox */
    uint64_t seed;
    const char *ctx_name;
    sk_kv_rope rope;          /* AUTO unless set */
    int64_t compress;         /* Deep Forcing PC budget (0: off) */
} run_cfg;

static sk_stream_params stream_params(const run_cfg *rc, sk_noise_source *ns)
{
    sk_stream_params p = sk_stream_params_default();
    p.frames = rc->frames;
    p.latent_h = 8;
    p.latent_w = 8;
    p.kv_policy = rc->pol;
    p.kv_window = rc->window;
    p.kv_sink = rc->sink;
    p.noise = ns;
    p.seed = rc->seed;
    p.kv_rope = rc->rope;
    p.kv_compress = rc->compress;
    return p;
}

static float *read_ctx(const char *name)
{
    sk_st_file *emb = NULL;
    dt_ok(sk_st_open(DIT_FIX "embeds.safetensors", &emb), "embeds");
    size_t n;
    float *c = dt_read(emb, name, &n);
    cr_assert_eq(n, 16u * 64u);
    sk_st_close(&emb);
    return c;
}

/* A model: the fixture (2 blocks) or a random 6-block model of the same
 * widths, whole or blocks [first, last). */
static sk_dit_model *model_on(sk_backend *be, int random6, int first, int last)
{
    sk_dit_model *m = NULL;
    if (!random6) {
        dt_ok(sk_dit_load_blocks(DIT_FIX "dit_tiny.safetensors", NULL, be,
                                 SK_DIT_WDTYPE_AS_STORED, first, last, &m), "load blocks");
    } else {
        sk_dit_config cfg;
        dt_ok(sk_dit_config_from_file(DIT_FIX "config.json", &cfg), "config");
        cfg.num_layers = 6;
        dt_ok(sk_dit_random_blocks(&cfg, be, SK_DTYPE_F32, 7, first, last, &m), "random blocks");
    }
    return m;
}

/* KV states seen by each forward: per (stage range, lane) a list of
 * (chunk, pass, hash of the visible frames and the committed K/V they hold). */
#define MAX_REC 512
typedef struct {
    int n;
    int chunk[MAX_REC], pass[MAX_REC];
    uint64_t hash[MAX_REC];
} kv_log;

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

/* Hash of layers [l0, l1) of kv: the visible frames in attention order and,
 * for the committed ones, their K and V rows. The pending chunk's slots are
 * rewritten before any read, so only their frame numbers count. */
static uint64_t kv_hash(const sk_kv_cache *kv, int l0, int l1)
{
    uint64_t h = 0xcbf29ce484222325ull;
    int64_t frames[64];
    int64_t nf = sk_kv_visible_frames(kv, frames, 64);
    h = fnv(h, frames, sizeof(int64_t) * (size_t)nf);
    const int64_t S = kv->p.tokens_per_frame, row = kv->p.num_heads * kv->p.head_dim;
    for (int l = l0; l < l1; l++) {
        const sk_tensor *K = &kv->k[l], *V = &kv->v[l];
        const float *kd = K->data, *vd = V->data; /* CPU backend: host memory */
        for (int64_t j = 0; j < kv->n_vis; j++) {
            int64_t slot = kv->vis_slot[j], pending = 0;
            for (int64_t q = 0; q < kv->pend_n; q++) pending |= kv->pend_slot[q] == slot;
            if (pending) continue;
            h = fnv(h, kd + slot * S * row, sizeof(float) * (size_t)(S * row));
            h = fnv(h, vd + slot * S * row, sizeof(float) * (size_t)(S * row));
        }
    }
    return h;
}

static void log_add(kv_log *g, int chunk, int pass, uint64_t h)
{
    cr_assert_lt(g->n, MAX_REC);
    g->chunk[g->n] = chunk;
    g->pass[g->n] = pass;
    g->hash[g->n] = h;
    g->n++;
}

/* serial reference: sk_stream on one backend; the debug hook's first dump of
 * each forward gives the KV state that forward sees */
typedef struct {
    sk_stream *s;
    int forwards, steps;
    const sk_pp_plan *plan;
    kv_log *logs; /* [n_stages] */
} serial_ctx;

static void serial_debug(void *user, const char *name, const sk_tensor *t)
{
    (void)t;
    serial_ctx *c = user;
    if (strcmp(name, "time_sinusoid") != 0) return;
    int chunk = c->forwards / (c->steps + 1), pass = c->forwards % (c->steps + 1);
    c->forwards++;
    if (!c->plan) return;
    for (int k = 0; k < c->plan->n_stages; k++)
        log_add(&c->logs[k], chunk, pass, kv_hash(c->s->kv, c->plan->first[k], c->plan->last[k]));
}

static float *run_serial(int random6, const run_cfg *rc, const sk_pp_plan *plan, kv_log *logs)
{
    sk_backend *be;
    dt_ok(sk_backend_cpu_create(&be), "cpu backend");
    sk_dit_model *m = model_on(be, random6, 0, -1);
    sk_noise_source *ns = NULL;
    if (rc->noise_file) dt_ok(sk_noise_source_file(rc->noise_file, &ns), "noise");
    sk_stream_params p = stream_params(rc, ns);
    serial_ctx sc = {NULL, 0, p.sched.n, plan, logs};
    if (plan) {
        p.debug = serial_debug;
        p.debug_user = &sc;
    }
    sk_stream *s = NULL;
    dt_ok(sk_stream_init(m, &p, &s), "stream init");
    sc.s = s;
    float *ctx = read_ctx(rc->ctx_name);
    dt_ok(sk_stream_set_prompt(s, ctx, 16), "prompt");
    free(ctx);
    const int64_t E = 4 * 8 * 8;
    float *lat = calloc((size_t)(rc->frames * E), sizeof *lat);
    while (!sk_stream_done(s)) {
        sk_tensor x0;
        int64_t f0;
        dt_ok(sk_stream_step(s, &x0, &f0), "stream step");
        dt_ok(sk_tensor_download_f32(&x0, lat + f0 * E, (size_t)sk_tensor_numel(&x0)), "dl");
    }
    sk_stream_free(&s);
    sk_noise_source_free(&ns);
    sk_dit_free(&m);
    sk_backend_free_(&be);
    return lat;
}

typedef struct {
    pthread_mutex_t mu;
    kv_log logs[SK_PP_MAX_STAGES][2];
    int steps;
} pp_hook_ctx;

static void pp_on_pass(void *user, int stage, int lane, int chunk, int pass, const sk_kv_cache *kv)
{
    pp_hook_ctx *c = user;
    uint64_t h = kv_hash(kv, 0, (int)kv->p.num_layers); /* runs on the stage's own thread */
    pthread_mutex_lock(&c->mu);
    log_add(&c->logs[stage][lane], chunk, pass, h);
    pthread_mutex_unlock(&c->mu);
}

typedef struct {
    int n_stages, n_lanes, random6;
    const int *sizes; /* NULL: balanced */
    run_cfg lane[2];
    int trace;
    pp_hook_ctx *hook;
} pp_cfg;

/* Runs the pipeline; returns each lane's latents [frames * E]. */
static void run_pp(const pp_cfg *pc, sk_pp_plan *plan_out, float *lat[2])
{
    const int K = pc->n_stages, NL = pc->n_lanes;
    sk_backend *be[SK_PP_MAX_STAGES];
    sk_dit_model *m[SK_PP_MAX_STAGES];
    sk_pp_params pp;
    memset(&pp, 0, sizeof pp);
    pp.n_stages = K;
    const int L = pc->random6 ? 6 : 2;
    if (pc->sizes) dt_ok(sk_pp_plan_from_sizes(L, K, pc->sizes, &pp.plan), "plan");
    else dt_ok(sk_pp_plan_balanced(L, K, NULL, 0, 0, &pp.plan), "plan");
    *plan_out = pp.plan;
    for (int k = 0; k < K; k++) {
        dt_ok(sk_backend_cpu_create(&be[k]), "cpu backend");
        m[k] = model_on(be[k], pc->random6, pp.plan.first[k], pp.plan.last[k]);
        pp.be[k] = be[k];
        pp.model[k] = m[k];
        if (K > 1) cr_expect_null(m[k]->blocks[pp.plan.first[k] ? 0 : L - 1].w[0].data,
                                  "stage %d holds a block of another stage", k);
    }
    sk_noise_source *ns[2] = {NULL, NULL};
    for (int l = 0; l < NL; l++) {
        if (pc->lane[l].noise_file) dt_ok(sk_noise_source_file(pc->lane[l].noise_file, &ns[l]), "noise");
        pp.lanes[l].noise = ns[l];
        pp.lanes[l].seed = pc->lane[l].seed;
    }
    pp.sp = stream_params(&pc->lane[0], NULL);
    pp.n_lanes = NL;
    pp.trace = pc->trace;
    if (pc->hook) {
        pp.on_pass = pp_on_pass;
        pp.on_pass_user = pc->hook;
    }
    sk_pp_stream *s = NULL;
    dt_ok(sk_pp_stream_init(&pp, &s), "pp init");
    for (int l = 0; l < NL; l++) {
        float *ctx = read_ctx(pc->lane[l].ctx_name);
        dt_ok(sk_pp_stream_set_prompt(s, l, ctx, 16), "prompt");
        free(ctx);
    }
    const int64_t E = 4 * 8 * 8, F = pc->lane[0].frames, chunk = sk_pp_stream_chunk_frames(s);
    for (int l = 0; l < NL; l++) lat[l] = calloc((size_t)(F * E), sizeof(float));
    int64_t expect_f0[2] = {0, 0};
    int prev_lane = NL - 1;
    while (!sk_pp_stream_done(s)) {
        int lane;
        int64_t f0, n;
        const float *x0;
        dt_ok(sk_pp_stream_next(s, NULL, &lane, &f0, &n, &x0, NULL), "pp next");
        cr_assert(lane >= 0 && lane < NL);
        cr_expect_eq(lane, (prev_lane + 1) % NL, "outputs in the schedule's lane order");
        prev_lane = lane;
        cr_expect_eq(f0, expect_f0[lane]);
        cr_expect_eq(n, f0 + chunk <= F ? chunk : F - f0);
        expect_f0[lane] = f0 + n;
        memcpy(lat[lane] + f0 * E, x0, sizeof(float) * (size_t)(n * E));
    }
    dt_ok(sk_pp_stream_finish(s), "finish");
    sk_pp_stats stt;
    sk_pp_stream_stats(s, &stt);
    if (pc->trace) {
        cr_assert(stt.start_seq && stt.end_seq);
        /* the run itself respected the rule: each (task, stage) started after
         * everything it depends on had ended */
        for (int64_t i = 0; i < stt.tasks; i++)
            for (int k = 0; k < K; k++) {
                int64_t dtk[4];
                int ds[4];
                int nd = sk_pp_sched_deps(stt.sched, i, k, dtk, ds);
                int64_t me = stt.start_seq[i * K + k];
                cr_assert_geq(me, 0, "task %lld never ran on stage %d", (long long)i, k);
                for (int j = 0; j < nd; j++)
                    cr_assert_lt(stt.end_seq[dtk[j] * K + ds[j]], me,
                                 "task %lld on stage %d started before task %lld on stage %d ended",
                                 (long long)i, k, (long long)dtk[j], ds[j]);
            }
    }
    for (int k = 0; k < K; k++) cr_expect_geq(stt.busy_s[k], 0.0);
    sk_pp_stream_free(&s);
    for (int l = 0; l < NL; l++) sk_noise_source_free(&ns[l]);
    for (int k = 0; k < K; k++) {
        sk_dit_free(&m[k]);
        sk_backend_free_(&be[k]);
    }
}

static void expect_identical(const float *a, const float *b, int64_t n, const char *what)
{
    int64_t first = -1;
    for (int64_t i = 0; i < n && first < 0; i++)
        if (memcmp(&a[i], &b[i], sizeof(float)) != 0) first = i;
    cr_expect_eq(first, -1, "%s: latents differ first at %lld (%.9g vs %.9g)", what,
                 (long long)first, first >= 0 ? (double)a[first] : 0.0,
                 first >= 0 ? (double)b[first] : 0.0);
}

static void expect_fixture(const float *lat, const char *expected, int64_t n)
{
    sk_st_file *exp = NULL;
    dt_ok(sk_st_open(expected, &exp), "expected");
    size_t m;
    float *ref = dt_read(exp, "latents", &m);
    cr_assert_eq((int64_t)m, n);
    sk_compare_result r = sk_compare(lat, ref, m, DIT_NMSE, DIT_ATOL, DIT_RTOL);
    char buf[512];
    sk_compare_format(&r, lat, ref, buf, sizeof buf);
    cr_expect(r.ok, "vs the PyTorch reference: %s", buf);
    free(ref);
    sk_st_close(&exp);
}

static void fixture_case(int K, sk_kv_policy pol, int64_t window, int64_t sink, int64_t frames,
                         const char *noise, const char *expected)
{
    run_cfg rc = {pol, window, sink, frames, noise, 0, "context"};
    float *ref = run_serial(0, &rc, NULL, NULL);
    pp_cfg pc = {.n_stages = K, .n_lanes = 1, .lane = {rc}, .trace = 1};
    sk_pp_plan plan;
    float *lat[2] = {NULL, NULL};
    run_pp(&pc, &plan, lat);
    char what[64];
    snprintf(what, sizeof what, "%d stage(s) vs one backend", K);
    expect_identical(lat[0], ref, frames * 256, what);
    expect_fixture(lat[0], expected, frames * 256);
    free(ref);
    free(lat[0]);
}

Test(pp_run, fixture_fifo_one_and_two_stages)
{
    for (int K = 1; K <= 2; K++)
        fixture_case(K, SK_KV_FIFO, 6, 0, 6, DIT_FIX "noise_fifo.safetensors",
                     DIT_FIX "expected_fifo.safetensors");
}

Test(pp_run, fixture_fifo_rolling_two_stages)
{
    fixture_case(2, SK_KV_FIFO, 6, 0, 12, DIT_FIX "noise_fifo_roll.safetensors",
                 DIT_FIX "expected_fifo_roll.safetensors");
}

Test(pp_run, fixture_sink_eviction_two_stages)
{
    fixture_case(2, SK_KV_SINK, 9, 3, 15, DIT_FIX "noise_sink.safetensors",
                 DIT_FIX "expected_sink.safetensors");
}

/* 3 stages need more blocks than the fixture's 2: a random 6-block model,
 * sink 3 + window 9 through eviction, a ragged last chunk (16 frames), and
 * every stage's KV state at every pass compared with the serial run's. */
static void three_stage_case(const int *sizes)
{
    run_cfg rc = {SK_KV_SINK, 9, 3, 16, NULL, 42, "context"};
    pp_hook_ctx *hook = calloc(1, sizeof *hook);
    pthread_mutex_init(&hook->mu, NULL);
    pp_cfg pc = {.n_stages = 3, .n_lanes = 1, .random6 = 1, .sizes = sizes, .lane = {rc},
                 .trace = 1, .hook = hook};
    sk_pp_plan plan;
    float *lat[2] = {NULL, NULL};
    run_pp(&pc, &plan, lat);
    kv_log *ser = calloc(SK_PP_MAX_STAGES, sizeof *ser);
    float *ref = run_serial(1, &rc, &plan, ser);
    expect_identical(lat[0], ref, 16 * 256, "3 stages vs one backend");
    const int passes = 6 * 5; /* 6 chunks (the last of one frame) x (4 steps + clean) */
    for (int k = 0; k < 3; k++) {
        const kv_log *a = &hook->logs[k][0], *b = &ser[k];
        cr_assert_eq(a->n, passes, "stage %d ran %d passes", k, a->n);
        cr_assert_eq(b->n, passes, "serial run: %d forwards", b->n);
        for (int i = 0; i < passes; i++) {
            cr_assert(a->chunk[i] == b->chunk[i] && a->pass[i] == b->pass[i],
                      "stage %d pass %d order differs", k, i);
            cr_expect_eq(a->hash[i], b->hash[i],
                         "stage %d (blocks %d..%d) saw another KV state than the serial run at "
                         "chunk %d pass %d", k, plan.first[k], plan.last[k] - 1, a->chunk[i],
                         a->pass[i]);
        }
    }
    free(ser);
    free(ref);
    free(lat[0]);
    pthread_mutex_destroy(&hook->mu);
    free(hook);
}

Test(pp_run, three_stages_random_model_kv_states_match_serial)
{
    three_stage_case(NULL);
}

Test(pp_run, three_uneven_stages)
{
    three_stage_case((int[]){1, 2, 3});
}

/* Every cache policy sk_stream has (docs/KV_POLICIES.md) but rolling, over 3
 * stages through eviction (24 frames): the same bits as one backend. Each
 * policy acts per layer (EMA fusion, Deep Sink re-timing, PC's token choice),
 * so a stage's cache of its layers goes where the whole cache goes. */
Test(pp_run, every_kv_policy_three_stages)
{
    const run_cfg cs[] = {
        {SK_KV_FIFO, 6, 0, 24, NULL, 5, "context", SK_KV_ROPE_RELATIVE, 0},
        {SK_KV_SINK, 9, 3, 24, NULL, 5, "context", SK_KV_ROPE_RELATIVE, 0},
        {SK_KV_EMA, 9, 3, 24, NULL, 5, "context", SK_KV_ROPE_AUTO, 0},
        {SK_KV_DEEP_SINK, 12, -1, 24, NULL, 5, "context", SK_KV_ROPE_RELATIVE, 0},
        {SK_KV_DEEP_SINK, 12, 3, 24, NULL, 5, "context", SK_KV_ROPE_RELATIVE, 9},
        {SK_KV_SINK, 12, 3, 24, NULL, 5, "context", SK_KV_ROPE_AUTO, 9},
    };
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) {
        pp_cfg pc = {.n_stages = 3, .n_lanes = 1, .random6 = 1, .lane = {cs[i]}, .trace = 1};
        sk_pp_plan plan;
        float *lat[2] = {NULL, NULL};
        run_pp(&pc, &plan, lat);
        float *ref = run_serial(1, &cs[i], NULL, NULL);
        char what[96];
        snprintf(what, sizeof what, "policy %s rope %s compress %lld",
                 sk_kv_policy_name(cs[i].pol), sk_kv_rope_name(cs[i].rope),
                 (long long)cs[i].compress);
        expect_identical(lat[0], ref, 24 * 256, what);
        free(ref);
        free(lat[0]);
    }
    /* rolling denoises a window of chunks jointly: another schedule, refused */
    sk_backend *be[2];
    sk_dit_model *m[2];
    sk_pp_params pp;
    setup_two(be, m, &pp, 21);
    pp.sp.kv_policy = SK_KV_ROLLING;
    pp.sp.kv_window = 21;
    sk_pp_stream *s = NULL;
    cr_expect_eq(sk_pp_stream_init(&pp, &s), SK_E_UNSUPPORTED);
    cr_expect(strstr(sk_error_message(), "rolling"), "%s", sk_error_message());
    teardown_two(be, m);
}

/* Two lanes (independent streams: other seed and prompt) over 3 stages: each
 * lane equals its own single-backend run. */
Test(pp_run, two_lanes_three_stages)
{
    run_cfg a = {SK_KV_SINK, 9, 3, 15, NULL, 1, "context"};
    run_cfg b = {SK_KV_SINK, 9, 3, 15, NULL, 2, "context.1"};
    pp_cfg pc = {.n_stages = 3, .n_lanes = 2, .random6 = 1, .lane = {a, b}, .trace = 1};
    sk_pp_plan plan;
    float *lat[2] = {NULL, NULL};
    run_pp(&pc, &plan, lat);
    float *ra = run_serial(1, &a, NULL, NULL), *rb = run_serial(1, &b, NULL, NULL);
    expect_identical(lat[0], ra, 15 * 256, "lane 0");
    expect_identical(lat[1], rb, 15 * 256, "lane 1");
    int differ = memcmp(ra, rb, sizeof(float) * 15 * 256) != 0;
    cr_expect(differ, "the two lanes should differ");
    free(ra); free(rb); free(lat[0]); free(lat[1]);
}

/* Two lanes over the fixture's noise files: lane 1 is lane 0 with another
 * prompt; lane 0 still matches the reference fixture. */
Test(pp_run, two_lanes_fixture_noise)
{
    run_cfg a = {SK_KV_SINK, 9, 3, 15, DIT_FIX "noise_sink.safetensors", 0, "context"};
    run_cfg b = {SK_KV_SINK, 9, 3, 15, DIT_FIX "noise_sink.safetensors", 0, "context.1"};
    pp_cfg pc = {.n_stages = 2, .n_lanes = 2, .lane = {a, b}};
    sk_pp_plan plan;
    float *lat[2] = {NULL, NULL};
    run_pp(&pc, &plan, lat);
    float *ra = run_serial(0, &a, NULL, NULL), *rb = run_serial(0, &b, NULL, NULL);
    expect_identical(lat[0], ra, 15 * 256, "lane 0");
    expect_identical(lat[1], rb, 15 * 256, "lane 1");
    expect_fixture(lat[0], DIT_FIX "expected_sink.safetensors", 15 * 256);
    free(ra); free(rb); free(lat[0]); free(lat[1]);
}

/* ------------------------------------------------------------- failures */

static void setup_two(sk_backend *be[2], sk_dit_model *m[2], sk_pp_params *pp, int frames)
{
    memset(pp, 0, sizeof *pp);
    pp->n_stages = 2;
    dt_ok(sk_pp_plan_balanced(2, 2, NULL, 0, 0, &pp->plan), "plan");
    for (int k = 0; k < 2; k++) {
        dt_ok(sk_backend_cpu_create(&be[k]), "cpu");
        m[k] = model_on(be[k], 0, k, k + 1);
        pp->be[k] = be[k];
        pp->model[k] = m[k];
    }
    run_cfg rc = {SK_KV_SINK, 9, 3, frames, NULL, 3, "context"};
    pp->sp = stream_params(&rc, NULL);
}

static void teardown_two(sk_backend *be[2], sk_dit_model *m[2])
{
    for (int k = 0; k < 2; k++) {
        sk_dit_free(&m[k]);
        sk_backend_free_(&be[k]);
    }
}

Test(pp_run, bad_params_fail_clearly)
{
    sk_backend *be[2];
    sk_dit_model *m[2];
    sk_pp_params pp;
    sk_pp_stream *s = NULL;
    setup_two(be, m, &pp, 6);
    /* a stage whose model lacks its blocks */
    sk_pp_params bad = pp;
    dt_ok(sk_pp_plan_from_sizes(2, 2, (int[]){1, 1}, &bad.plan), "plan");
    bad.model[1] = m[0];
    bad.be[1] = be[0];
    cr_expect_eq(sk_pp_stream_init(&bad, &s), SK_E_INVALID_ARG);
    bad = pp;
    bad.model[0] = m[1]; /* on be[1], not be[0] */
    cr_expect_eq(sk_pp_stream_init(&bad, &s), SK_E_INVALID_ARG);
    cr_expect(strstr(sk_error_message(), "another backend"), "%s", sk_error_message());
    /* holds block 1 only, asked to run block 0 */
    sk_dit_model *m1 = m[1];
    bad = pp;
    bad.model[0] = m1;
    bad.be[0] = be[1];
    bad.be[1] = be[0];
    bad.model[1] = m[0];
    cr_expect_eq(sk_pp_stream_init(&bad, &s), SK_E_INVALID_ARG);
    cr_expect(strstr(sk_error_message(), "holds"), "%s", sk_error_message());
    bad = pp;
    bad.sp.prompt_switch = 1;
    cr_expect_eq(sk_pp_stream_init(&bad, &s), SK_E_UNSUPPORTED);
    bad = pp;
    bad.n_stages = 3;
    cr_expect_eq(sk_pp_stream_init(&bad, &s), SK_E_INVALID_ARG);
    /* no prompt: the first next fails, nothing hangs */
    dt_ok(sk_pp_stream_init(&pp, &s), "init");
    sk_status st = sk_pp_stream_next(s, NULL, NULL, NULL, NULL, NULL, NULL);
    cr_expect_eq(st, SK_E_INVALID_ARG);
    cr_expect(strstr(sk_error_message(), "no prompt"), "%s", sk_error_message());
    sk_pp_stream_free(&s);
    /* 3 stages of a 2-block model: the plan refuses */
    sk_pp_plan p3;
    cr_expect_eq(sk_pp_plan_balanced((int)m[0]->cfg.num_layers, 3, NULL, 0, 0, &p3),
                 SK_E_INVALID_ARG);
    teardown_two(be, m);
}

/* A pass that fails on stage 0 in the middle of the run: the error comes
 * back through sk_pp_stream_next naming the stage and the pass, and every
 * thread stops (no hang at free). */
Test(pp_run, stage_failure_propagates)
{
    sk_backend *be[2];
    sk_dit_model *m[2];
    sk_pp_params pp;
    setup_two(be, m, &pp, 15);
    pp.sp.sched.t[2] = 5000.0f; /* the DiT refuses timestep 5000 at step 2 */
    sk_pp_stream *s = NULL;
    dt_ok(sk_pp_stream_init(&pp, &s), "init");
    float *ctx = read_ctx("context");
    dt_ok(sk_pp_stream_set_prompt(s, 0, ctx, 16), "prompt");
    free(ctx);
    sk_status st = sk_pp_stream_next(s, NULL, NULL, NULL, NULL, NULL, NULL);
    cr_expect_eq(st, SK_E_INVALID_ARG, "%s", sk_error_message());
    cr_expect(strstr(sk_error_message(), "stage 0") && strstr(sk_error_message(), "pass 2") &&
                  strstr(sk_error_message(), "timestep 5000"),
              "%s", sk_error_message());
    st = sk_pp_stream_next(s, NULL, NULL, NULL, NULL, NULL, NULL);
    cr_expect_eq(st, SK_E_INVALID_ARG, "the failure sticks");
    sk_pp_stream_free(&s);
    teardown_two(be, m);
}

/* Closing a stream in the middle (unbounded frames) stops the threads. */
Test(pp_run, free_while_running)
{
    sk_backend *be[2];
    sk_dit_model *m[2];
    sk_pp_params pp;
    setup_two(be, m, &pp, 0);
    sk_pp_stream *s = NULL;
    dt_ok(sk_pp_stream_init(&pp, &s), "init");
    float *ctx = read_ctx("context");
    dt_ok(sk_pp_stream_set_prompt(s, 0, ctx, 16), "prompt");
    free(ctx);
    for (int i = 0; i < 3; i++) {
        int64_t f0;
        dt_ok(sk_pp_stream_next(s, NULL, NULL, &f0, NULL, NULL, NULL), "next");
        cr_expect_eq(f0, 3 * i);
    }
    cr_expect(!sk_pp_stream_done(s));
    cr_expect_eq(sk_pp_stream_set_prompt(s, 0, pp.sp.sched.t, 1), SK_E_UNSUPPORTED);
    sk_pp_stream_free(&s);
    teardown_two(be, m);
}

/* The x0 view on a backend of the caller's (what generate's decoder reads). */
Test(pp_run, output_tensor_on_callers_backend)
{
    sk_backend *be[2], *ob;
    sk_dit_model *m[2];
    sk_pp_params pp;
    setup_two(be, m, &pp, 6);
    dt_ok(sk_backend_cpu_create(&ob), "out backend");
    sk_tensor out;
    int64_t shape[4] = {3, 4, 8, 8};
    dt_ok(sk_tensor_alloc(ob, SK_DTYPE_F32, 4, shape, &out), "alloc");
    sk_pp_stream *s = NULL;
    dt_ok(sk_pp_stream_init(&pp, &s), "init");
    float *ctx = read_ctx("context");
    dt_ok(sk_pp_stream_set_prompt(s, 0, ctx, 16), "prompt");
    free(ctx);
    while (!sk_pp_stream_done(s)) {
        const float *h;
        sk_tensor x0;
        int64_t n;
        dt_ok(sk_pp_stream_next(s, &out, NULL, NULL, &n, &h, &x0), "next");
        cr_assert_eq(x0.be, ob);
        cr_assert_eq(x0.shape[0], n);
        cr_expect(memcmp(x0.data, h, sizeof(float) * (size_t)(n * 256)) == 0);
    }
    dt_ok(sk_pp_stream_finish(s), "finish");
    cr_expect_eq(sk_pp_stream_next(s, &out, NULL, NULL, NULL, NULL, NULL), SK_E_INVALID_ARG);
    sk_pp_stream_free(&s);
    sk_tensor_free(&out);
    sk_backend_free_(&ob);
    teardown_two(be, m);
}

/* The loopback transport refuses a message it did not expect. */
Test(pp_transport, loopback_checks_headers)
{
    sk_backend *be;
    dt_ok(sk_backend_cpu_create(&be), "cpu");
    sk_tensor a, b;
    int64_t sh[1] = {16};
    dt_ok(sk_tensor_alloc(be, SK_DTYPE_F32, 1, sh, &a), "a");
    dt_ok(sk_tensor_alloc(be, SK_DTYPE_F32, 1, sh, &b), "b");
    float v[16];
    for (int i = 0; i < 16; i++) v[i] = (float)i;
    dt_ok(sk_tensor_upload_f32(&a, v, 16), "up");
    sk_pp_transport *t = NULL;
    dt_ok(sk_pp_transport_loopback(2, 64, 2, &t), "loopback");
    sk_pp_header h = {.magic = SK_PP_MAGIC, .kind = SK_PP_MSG_HIDDEN, .chunk = 1, .pass = 2,
                      .frame0 = 3, .n_frames = 3, .bytes = 64, .t = 500.0f};
    sk_tensor *ts[1] = {&a}, *tr[1] = {&b};
    dt_ok(t->ops->send(t, 0, &h, ts, 1), "send");
    dt_ok(t->ops->send(t, 0, &h, ts, 1), "send 2");
    dt_ok(t->ops->recv(t, 1, &h, tr, 1), "recv");
    float w[16];
    dt_ok(sk_tensor_download_f32(&b, w, 16), "dl");
    cr_expect(memcmp(v, w, sizeof v) == 0);
    sk_pp_header e = h;
    e.pass = 3;
    cr_expect_eq(t->ops->recv(t, 1, &e, tr, 1), SK_E_INTERNAL);
    cr_expect(strstr(sk_error_message(), "expected the hidden state of lane 0 chunk 1 pass 3"),
              "%s", sk_error_message());
    /* too big for the link */
    sk_tensor big;
    int64_t bs[1] = {32};
    dt_ok(sk_tensor_alloc(be, SK_DTYPE_F32, 1, bs, &big), "big");
    sk_tensor *tb[1] = {&big};
    cr_expect_eq(t->ops->send(t, 1, &h, tb, 1), SK_E_INTERNAL);
    /* abort wakes a blocked receiver's later call */
    t->ops->abort(t);
    cr_expect_eq(t->ops->recv(t, 0, &h, tr, 1), SK_E_INTERNAL);
    sk_pp_transport_free(&t);
    cr_expect_eq(sk_pp_transport_nccl(2, NULL, 64, 2, &t), sk_pp_have_nccl() ? SK_E_INVALID_ARG : SK_E_UNSUPPORTED);
    sk_tensor_free(&big);
    sk_tensor_free(&a);
    sk_tensor_free(&b);
    sk_backend_free_(&be);
}

/* ------------------------------------------------------------------ CLI */

static unsigned char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    cr_assert(f, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)sz);
    cr_assert_eq(fread(b, 1, (size_t)sz, f), (size_t)sz);
    fclose(f);
    *n = (size_t)sz;
    return b;
}

/* `generate --pp-stages N` writes the same latents file, byte for byte, as
 * the single-backend run; and the pipeline options are checked up front. */
Test(pp_cli, generate_pp_stages_same_file)
{
    const char *bin = getenv("SK_SINKSTREAM");
    cr_assert(bin && *bin, "SK_SINKSTREAM is not set (ctest sets it)");
    char base[2048], cmd[2600], err[65536], outs[3][64];
    snprintf(base, sizeof base,
             "%s generate --dit %sdit_tiny.safetensors --dit-config %sconfig.json "
             "--text-embeds %sembeds.safetensors --noise-file %snoise_sink.safetensors "
             "--frames 15 --latent-height 8 --latent-width 8 --kv-policy sink --kv-window 9 "
             "--kv-sink 3 --device cpu --no-decode",
             bin, DIT_FIX, DIT_FIX, DIT_FIX, DIT_FIX);
    const char *extra[3] = {"", "--pp-stages 2", "--pp-stages 2 --pp-split 1,1 --pp-transport loopback"};
    for (int i = 0; i < 3; i++) {
        snprintf(outs[i], sizeof outs[i], "/tmp/sk_pp_lat_%d_XXXXXX", i);
        int fd = mkstemp(outs[i]);
        close(fd);
        snprintf(cmd, sizeof cmd, "%s --latents-out %s %s", base, outs[i], extra[i]);
        int rc = tu_sh_err(cmd, err, sizeof err);
        cr_assert_eq(rc, 0, "%s failed: %s", extra[i], err);
        if (i) cr_expect(strstr(err, "pipeline: 2 stages"), "%s", err);
    }
    size_t n0, n1, n2;
    unsigned char *a = slurp(outs[0], &n0), *b = slurp(outs[1], &n1), *c = slurp(outs[2], &n2);
    cr_expect(n0 == n1 && memcmp(a, b, n0) == 0, "--pp-stages 2 wrote other latents");
    cr_expect(n0 == n2 && memcmp(a, c, n0) == 0, "--pp-split 1,1 wrote other latents");
    free(a); free(b); free(c);
    for (int i = 0; i < 3; i++) unlink(outs[i]);
    struct {
        const char *args, *msg;
    } bad[] = {
        {"--pp-stages 3", "3 stages for a model of 2 blocks"},
        {"--gpus 2", "--gpus 2 needs --device cuda"},
        {"--pp-stages 2 --pp-split 2,1", "the stages hold 3 blocks; the model has 2"},
        {"--pp-split 1,1", "need --gpus N or --pp-stages N"},
        {"--pp-stages 2 --dump-steps /tmp/x.safetensors", "--dump-steps is not supported"},
        {"--pp-stages 2 --pp-transport nccl", "nccl"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(cmd, sizeof cmd, "%s %s", base, bad[i].args);
        int rc = tu_sh_err(cmd, err, sizeof err);
        cr_expect_neq(rc, 0, "%s should fail", bad[i].args);
        cr_expect(strstr(err, bad[i].msg), "%s: '%s' not in: %s", bad[i].args, bad[i].msg, err);
    }
}
