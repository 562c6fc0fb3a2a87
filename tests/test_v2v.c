/* test_v2v.c - video-to-video's strength schedule against the PyTorch reference
 * (tests/reference/make_v2v_fixtures.py -> tests/fixtures/v2v): the start step of
 * each strength, the steps that run, the noise level the input latent gets (the
 * first model input) and the latents of three chunks of the tiny DiT over a sink
 * cache with eviction (1e-4); strength 1 is the text-to-video run bit for bit; the
 * UniPC tail solver; strengths outside 0..1 are refused. */
#include "dit_test_util.h"

#include "runtime/stream/stream.h"
#include "runtime/stream/v2v.h"
#include "dit/config.h"

#define V2V_FIX SK_SOURCE_DIR "/tests/fixtures/v2v/"
#define NF 9
#define E (4 * 8 * 8)

typedef struct {
    const sk_st_file *exp;
    const char *name;
    int steps[16], n_steps; /* chunk 0's step indices */
    double xt_err;
    int xt_checked;
} v2v_ctx;

static void on_step(void *user, int chunk, int step, const sk_tensor *xt, const sk_tensor *v,
                    const sk_tensor *x0)
{
    (void)v, (void)x0;
    v2v_ctx *c = user;
    if (chunk != 0) return;
    if (c->n_steps == 0 && c->exp) { /* the first model input: the noised input latent */
        char nm[64];
        snprintf(nm, sizeof nm, "xt_start.%s", c->name);
        c->xt_err = dt_check(c->exp, nm, xt, nm);
        c->xt_checked = 1;
    }
    if (c->n_steps < 16) c->steps[c->n_steps++] = step;
}

typedef struct {
    sk_backend *be;
    sk_dit_model *m;
    sk_st_file *exp, *emb;
    float *ctx, *input;
} fix;

static void fix_open(fix *f)
{
    dt_ok(sk_backend_cpu_create(&f->be), "cpu backend");
    f->m = dt_load_tiny(f->be);
    dt_ok(sk_st_open(V2V_FIX "expected.safetensors", &f->exp), "expected");
    dt_ok(sk_st_open(DIT_FIX "embeds.safetensors", &f->emb), "embeds");
    size_t n;
    f->ctx = dt_read(f->emb, "context", &n);
    f->input = dt_read(f->exp, "input", &n);
    cr_assert_eq(n, (size_t)(NF * E));
}

static void fix_close(fix *f)
{
    free(f->ctx);
    free(f->input);
    sk_st_close(&f->exp);
    sk_st_close(&f->emb);
    sk_dit_free(&f->m);
    sk_backend_free_(&f->be);
}

/* Runs the 9 frames from `start` (start < 0: the text-to-video sk_stream_step); lat gets
 * [NF, 4, 8, 8]. */
static void run(fix *f, int start, v2v_ctx *c, float *lat)
{
    sk_noise_source *ns = NULL;
    dt_ok(sk_noise_source_file(V2V_FIX "noise.safetensors", &ns), "noise file");
    sk_stream_params p = sk_stream_params_default();
    p.frames = NF;
    p.latent_h = 8;
    p.latent_w = 8;
    p.kv_policy = SK_KV_SINK;
    p.kv_window = 6;
    p.kv_sink = 3;
    p.noise = ns;
    p.on_step = on_step;
    p.on_step_user = c;
    sk_stream *s = NULL;
    dt_ok(sk_stream_init(f->m, &p, &s), "stream init");
    dt_ok(sk_stream_set_prompt(s, f->ctx, 16), "prompt");
    int64_t shape[4] = {3, 4, 8, 8};
    sk_tensor in;
    dt_ok(sk_tensor_alloc(f->be, f->be->act_dtype, 4, shape, &in), "input tensor");
    while (!sk_stream_done(s)) {
        const int64_t f0 = s->next_frame, n = sk_stream_next_chunk_frames(s);
        cr_assert_eq(n, 3);
        dt_ok(sk_tensor_upload_f32(&in, f->input + f0 * E, (size_t)(n * E)), "upload");
        sk_tensor x0;
        int64_t g0;
        if (start < 0) dt_ok(sk_stream_step(s, &x0, &g0), "step");
        else dt_ok(sk_stream_step_from(s, &in, start, &x0, &g0), "step_from");
        cr_assert_eq(g0, f0);
        dt_ok(sk_tensor_download_f32(&x0, lat + f0 * E, (size_t)(n * E)), "download");
    }
    sk_tensor_free(&in);
    sk_stream_free(&s);
    sk_noise_source_free(&ns);
}

static void check_strength(const char *name, double strength)
{
    fix f = {0};
    fix_open(&f);
    char nm[64];
    size_t n;
    snprintf(nm, sizeof nm, "start.%s", name);
    float *st = dt_read(f.exp, nm, &n);
    const int start = sk_v2v_start_index(4, strength);
    cr_expect_eq(start, (int)st[0], "strength %g: start step %d, the reference %d", strength,
                 start, (int)st[0]);
    free(st);
    v2v_ctx c = {.exp = f.exp, .name = name};
    float *lat = calloc(NF * E, sizeof *lat);
    run(&f, start, &c, lat);
    /* the steps that ran in chunk 0 are the reference's */
    snprintf(nm, sizeof nm, "steps_run.%s", name);
    float *sr = dt_read(f.exp, nm, &n);
    cr_expect_eq((size_t)c.n_steps, n, "%s: %d steps ran, the reference %zu", name, c.n_steps, n);
    for (size_t i = 0; i < n && i < (size_t)c.n_steps; i++)
        cr_expect_eq(c.steps[i], (int)sr[i], "%s: step %zu is %d, the reference %d", name, i,
                     c.steps[i], (int)sr[i]);
    free(sr);
    cr_expect(c.xt_checked && c.xt_err <= 1e-4, "%s: the first model input (noised input) rel "
              "err %.3g", name, c.xt_err);
    snprintf(nm, sizeof nm, "latents.%s", name);
    float *ref = dt_read(f.exp, nm, &n);
    cr_assert_eq(n, (size_t)(NF * E));
    sk_compare_result r = sk_compare(lat, ref, n, DIT_NMSE, DIT_ATOL, DIT_RTOL);
    char buf[512];
    sk_compare_format(&r, lat, ref, buf, sizeof buf);
    cr_log_info("v2v %s latents %s", name, buf);
    cr_expect(r.ok && sqrt(r.nmse) <= 1e-4, "%s latents: %s", name, buf);
    free(ref);
    free(lat);
    fix_close(&f);
}

Test(v2v, strength_060_two_steps) { check_strength("s060", 0.6); }
Test(v2v, strength_050_two_steps) { check_strength("s050", 0.5); }
Test(v2v, strength_030_last_step) { check_strength("s030", 0.3); }
Test(v2v, strength_000_still_one_step) { check_strength("s000", 0.0); }
Test(v2v, strength_100_is_text_to_video) { check_strength("s100", 1.0); }

/* strength 1 (start 0) ignores the input: bit for bit the text-to-video stream */
Test(v2v, start_0_bitwise_text_to_video)
{
    fix f = {0};
    fix_open(&f);
    v2v_ctx c1 = {0}, c2 = {0};
    float *a = calloc(NF * E, sizeof *a), *b = calloc(NF * E, sizeof *b);
    run(&f, 0, &c1, a);
    run(&f, -1, &c2, b);
    cr_expect(memcmp(a, b, NF * E * sizeof *a) == 0, "start 0 differs from text-to-video");
    cr_expect_eq(c1.n_steps, 4);
    free(a);
    free(b);
    fix_close(&f);
}

Test(v2v, start_index_table)
{
    /* N - round(S N), halves away from zero, at least one step */
    const double s[] = {1.0, 0.875, 0.625, 0.6, 0.5, 0.375, 0.3, 0.125, 0.1, 0.0};
    const int want4[] = {0, 0, 1, 2, 2, 2, 3, 3, 3, 3};
    for (int i = 0; i < 10; i++)
        cr_expect_eq(sk_v2v_start_index(4, s[i]), want4[i], "N 4 S %g", s[i]);
    cr_expect_eq(sk_v2v_start_index(2, 0.5), 1);
    cr_expect_eq(sk_v2v_start_index(2, 0.74), 1);
    cr_expect_eq(sk_v2v_start_index(2, 0.75), 0);
    cr_expect_eq(sk_v2v_start_index(1, 0.0), 0);
}

Test(v2v, strength_outside_0_1_refused)
{
    const double bad[] = {-0.01, 1.01, NAN, INFINITY};
    for (int i = 0; i < 4; i++) {
        cr_expect_eq(sk_v2v_check_strength(bad[i], "--strength"), SK_E_INVALID_ARG);
        cr_expect(strstr(sk_error_message(), "--strength"), "message names the flag: %s",
                  sk_error_message());
    }
    cr_expect_eq(sk_v2v_check_strength(0.0, "--strength"), SK_OK);
    cr_expect_eq(sk_v2v_check_strength(1.0, "--strength"), SK_OK);
}

/* UniPC: the tail table of a start step is the solver over the remaining sigmas; its
 * first update is order 1 (no history) and its coefficients are those of a solver whose
 * first sigma is sigma_k */
Test(v2v, unipc_tail_table)
{
    sk_unipc_table tb, tail;
    dt_ok(sk_unipc_table_make(4, 5.0, &tb), "table");
    dt_ok(sk_v2v_unipc_tail(&tb, 2, &tail), "tail");
    cr_expect_eq(tail.n, 2);
    cr_expect(tail.sigma[0] == tb.sigma[2] && tail.sigma[1] == tb.sigma[3]);
    cr_expect(tail.sigma[2] == 0.0f);
    cr_expect(tail.t[0] == tb.t[2] && tail.t[1] == tb.t[3]);
    cr_expect_eq(sk_unipc_order(&tail, 0), 1);
    cr_expect_eq(sk_unipc_order(&tail, 1), 1); /* lower_order_final */
    sk_unipc_update u;
    dt_ok(sk_unipc_predictor(&tail, 0, &u), "predictor");
    /* order 1 from sigma_2 to sigma_3: x = (s3/s2) x + (1 - s3) (1 - e^{-h}) ... the DDIM
     * step in x0 form: x_next = (s3/s2) x - alpha3 expm1(-h) m, h = lambda3 - lambda2 */
    const float s2 = tb.sigma[2], s3 = tb.sigma[3];
    const float h = (logf(1 - s3) - logf(s3)) - (logf(1 - s2) - logf(s2));
    cr_expect_float_eq(u.c[0], s3 / s2, 1e-6f);
    cr_expect_float_eq(u.c[3], -(1 - s3) * expm1f(-h), 1e-6f);
    cr_expect_eq(sk_v2v_unipc_tail(&tb, 4, &tail), SK_E_INVALID_ARG);
}

/* ---- LongLive 2.0: UniPC over the multishot cache (tests/fixtures/longlive2's tiny ti2v DiT) */
#define LL2_FIX SK_SOURCE_DIR "/tests/fixtures/longlive2/"
#define UF 10
#define UE (48 * 4 * 6)

static void check_unipc(const char *name, double strength)
{
    sk_backend *be;
    dt_ok(sk_backend_cpu_create(&be), "cpu backend");
    FILE *cf = fopen(LL2_FIX "config.json", "rb");
    cr_assert(cf);
    char js[4096] = {0};
    size_t jn = fread(js, 1, sizeof js - 1, cf);
    js[jn] = 0;
    fclose(cf);
    sk_dit_config cfg;
    dt_ok(sk_dit_config_from_json(js, LL2_FIX "config.json", &cfg), "config");
    sk_dit_model *m = NULL;
    dt_ok(sk_dit_load(LL2_FIX "dit_tiny.safetensors", &cfg, be, SK_DIT_WDTYPE_AS_STORED, &m),
          "load the ti2v DiT");
    sk_st_file *exp = NULL, *emb = NULL;
    dt_ok(sk_st_open(V2V_FIX "unipc_expected.safetensors", &exp), "expected");
    dt_ok(sk_st_open(LL2_FIX "embeds.safetensors", &emb), "embeds");
    size_t n;
    float *c5 = dt_read(emb, "context.0", &n);
    cr_assert_eq(n, 5u * 32u);
    float ctx[8 * 32] = {0}; /* the reference pads the context to text_len with zeros */
    memcpy(ctx, c5, sizeof(float) * n);
    free(c5);
    float *input = dt_read(exp, "input", &n);
    cr_assert_eq(n, (size_t)(UF * UE));
    sk_noise_source *ns = NULL;
    dt_ok(sk_noise_source_file(V2V_FIX "unipc_noise.safetensors", &ns), "noise");
    sk_stream_params p = sk_stream_params_default();
    p.frames = UF;
    p.chunk_frames = 2;
    p.latent_h = 4;
    p.latent_w = 6;
    p.sampler = SK_SAMPLER_UNIPC;
    dt_ok(sk_unipc_table_make(4, 5.0, &p.unipc), "table");
    p.kv_policy = SK_KV_MULTISHOT;
    p.kv_window = 8;
    p.kv_sink = 2;
    p.recache = SK_RECACHE_OFF;
    p.noise = ns;
    v2v_ctx c = {.exp = exp, .name = name};
    p.on_step = on_step;
    p.on_step_user = &c;
    sk_stream *s = NULL;
    dt_ok(sk_stream_init(m, &p, &s), "stream init");
    dt_ok(sk_stream_set_prompt(s, ctx, 8), "prompt");
    const int start = sk_v2v_start_index(4, strength);
    char nm[64];
    snprintf(nm, sizeof nm, "start.%s", name);
    float *st = dt_read(exp, nm, &n);
    cr_expect_eq(start, (int)st[0], "%s: start %d, the reference %d", name, start, (int)st[0]);
    free(st);
    int64_t shape[4] = {2, 48, 4, 6};
    sk_tensor in;
    dt_ok(sk_tensor_alloc(be, be->act_dtype, 4, shape, &in), "input tensor");
    float *lat = calloc(UF * UE, sizeof *lat);
    while (!sk_stream_done(s)) {
        const int64_t f0 = s->next_frame;
        dt_ok(sk_tensor_upload_f32(&in, input + f0 * UE, 2 * UE), "upload");
        sk_tensor x0;
        int64_t g0;
        dt_ok(sk_stream_step_from(s, &in, start, &x0, &g0), "step_from");
        dt_ok(sk_tensor_download_f32(&x0, lat + f0 * UE, 2 * UE), "download");
    }
    snprintf(nm, sizeof nm, "steps_run.%s", name);
    float *sr = dt_read(exp, nm, &n);
    cr_expect_eq((size_t)c.n_steps, n, "%s: %d steps ran, the reference %zu", name, c.n_steps, n);
    for (size_t i = 0; i < n && i < (size_t)c.n_steps; i++)
        cr_expect_eq(c.steps[i], (int)sr[i], "%s: step %zu", name, i);
    free(sr);
    cr_expect(c.xt_checked && c.xt_err <= 1e-4, "%s: first model input rel err %.3g", name,
              c.xt_err);
    snprintf(nm, sizeof nm, "latents.%s", name);
    float *ref = dt_read(exp, nm, &n);
    cr_assert_eq(n, (size_t)(UF * UE));
    sk_compare_result r = sk_compare(lat, ref, n, DIT_NMSE, DIT_ATOL, DIT_RTOL);
    char buf[512];
    sk_compare_format(&r, lat, ref, buf, sizeof buf);
    cr_log_info("v2v unipc %s latents %s", name, buf);
    cr_expect(r.ok && sqrt(r.nmse) <= 1e-4, "unipc %s latents: %s", name, buf);
    free(ref);
    free(lat);
    free(input);
    sk_tensor_free(&in);
    sk_stream_free(&s);
    sk_noise_source_free(&ns);
    sk_st_close(&exp);
    sk_st_close(&emb);
    sk_dit_free(&m);
    sk_backend_free_(&be);
}

Test(v2v, unipc_strength_100) { check_unipc("s100", 1.0); }
Test(v2v, unipc_strength_075_three_steps) { check_unipc("s075", 0.75); }
Test(v2v, unipc_strength_060_two_steps) { check_unipc("s060", 0.6); }
Test(v2v, unipc_strength_030_last_step) { check_unipc("s030", 0.3); }
