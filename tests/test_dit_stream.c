/* test_dit_stream.c - whole Self-Forcing / LongLive runs through the stream
 * API with the reference's noise, against tests/fixtures/dit/expected_*:
 * every step's x_t, v and x0 and the final latents. */
#include "dit_test_util.h"

#include "runtime/stream/stream.h"

typedef struct {
    const sk_st_file *exp;
    int steps_checked;
    double worst;
} step_ctx;

static void on_step(void *user, int chunk, int step, const sk_tensor *xt, const sk_tensor *v,
                    const sk_tensor *x0)
{
    step_ctx *c = user;
    char name[32];
    const sk_tensor *ts[3] = {xt, v, x0};
    const char *pre[3] = {"xt", "v", "x0"};
    for (int i = 0; i < 3; i++) {
        snprintf(name, sizeof name, "%s.%d.%d", pre[i], chunk, step);
        if (!sk_st_find(c->exp, name)) continue;
        double e = dt_check(c->exp, name, ts[i], name);
        if (e > c->worst) c->worst = e;
    }
    c->steps_checked++;
}

static void run_fixture(const char *noise_file, const char *expected_file, sk_kv_policy pol,
                        int64_t window, int64_t sink, int64_t frames, int check_allocs)
{
    sk_backend *be;
    dt_ok(sk_backend_cpu_create(&be), "cpu backend");
    sk_dit_model *m = dt_load_tiny(be);
    sk_st_file *exp = NULL, *emb = NULL;
    dt_ok(sk_st_open(expected_file, &exp), "expected");
    dt_ok(sk_st_open(DIT_FIX "embeds.safetensors", &emb), "embeds");
    sk_noise_source *ns = NULL;
    dt_ok(sk_noise_source_file(noise_file, &ns), "noise file");

    sk_stream_params p = sk_stream_params_default();
    p.frames = frames;
    p.latent_h = 8; p.latent_w = 8;
    p.kv_policy = pol; p.kv_window = window; p.kv_sink = sink;
    p.noise = ns;
    step_ctx sc = {exp, 0, 0};
    p.on_step = on_step;
    p.on_step_user = &sc;
    /* the schedule is the reference's */
    size_t n;
    float *tv = dt_read(exp, "timesteps", &n);
    float *sg = dt_read(exp, "sigmas", &n);
    cr_assert_eq(n, 4u);
    for (int k = 0; k < 4; k++) {
        cr_expect_float_eq(p.sched.t[k], tv[k], 1e-6f * 1000, "t[%d] %g vs %g", k, p.sched.t[k], tv[k]);
        cr_expect_float_eq(p.sched.sigma[k], sg[k], 1e-6f, "sigma[%d]", k);
    }
    free(tv); free(sg);

    sk_stream *s = NULL;
    dt_ok(sk_stream_init(m, &p, &s), "stream init");
    float *ctx = dt_read(emb, "context", &n);
    dt_ok(sk_stream_set_prompt(s, ctx, 16), "prompt");
    free(ctx);

    int64_t E = 4 * 8 * 8;
    float *lat = calloc((size_t)(frames * E), sizeof *lat);
    uint64_t allocs_after_first = 0;
    int chunks = 0;
    while (!sk_stream_done(s)) {
        sk_tensor x0;
        int64_t f0;
        dt_ok(sk_stream_step(s, &x0, &f0), "stream step");
        dt_ok(sk_tensor_download_f32(&x0, lat + f0 * E, (size_t)sk_tensor_numel(&x0)), "dl");
        if (chunks == 0) allocs_after_first = be->n_allocs;
        chunks++;
    }
    cr_expect_eq(chunks, (int)((frames + 2) / 3));
    cr_expect_eq(sc.steps_checked, chunks * 4);
    if (check_allocs)
        cr_expect_eq(be->n_allocs, allocs_after_first,
                     "the chunk loop allocated %llu times after the first chunk",
                     (unsigned long long)(be->n_allocs - allocs_after_first));
    float *ref = dt_read(exp, "latents", &n);
    cr_assert_eq(n, (size_t)(frames * E));
    sk_compare_result r = sk_compare(lat, ref, n, DIT_NMSE, DIT_ATOL, DIT_RTOL);
    char buf[512];
    sk_compare_format(&r, lat, ref, buf, sizeof buf);
    cr_log_info("latents %s (worst step rel err %.3g)", buf, sc.worst);
    cr_expect(r.ok, "latents: %s", buf);
    cr_expect_leq(sqrt(r.nmse), 1e-4);
    free(ref); free(lat);
    sk_stream_free(&s);
    sk_noise_source_free(&ns);
    sk_st_close(&exp); sk_st_close(&emb);
    sk_dit_free(&m);
    sk_backend_free_(&be);
}

Test(dit_stream, fifo_two_chunks)
{
    run_fixture(DIT_FIX "noise_fifo.safetensors", DIT_FIX "expected_fifo.safetensors", SK_KV_FIFO,
                6, 0, 6, 1);
}

Test(dit_stream, fifo_rolling_window_four_chunks)
{
    run_fixture(DIT_FIX "noise_fifo_roll.safetensors", DIT_FIX "expected_fifo_roll.safetensors",
                SK_KV_FIFO, 6, 0, 12, 1);
}

Test(dit_stream, sink3_window9_five_chunks_with_eviction)
{
    run_fixture(DIT_FIX "noise_sink.safetensors", DIT_FIX "expected_sink.safetensors", SK_KV_SINK,
                9, 3, 15, 1);
}

/* A step that fails half-way (after two forwards wrote K/V) leaves the stream
 * as it was: the retry produces exactly the reference latents. */
Test(dit_stream, failed_step_is_rolled_back)
{
    sk_backend *be;
    dt_ok(sk_backend_cpu_create(&be), "cpu backend");
    sk_dit_model *m = dt_load_tiny(be);
    sk_st_file *exp = NULL, *emb = NULL;
    dt_ok(sk_st_open(DIT_FIX "expected_sink.safetensors", &exp), "expected");
    dt_ok(sk_st_open(DIT_FIX "embeds.safetensors", &emb), "embeds");
    sk_noise_source *ns = NULL;
    dt_ok(sk_noise_source_file(DIT_FIX "noise_sink.safetensors", &ns), "noise");
    sk_stream_params p = sk_stream_params_default();
    p.frames = 15; p.latent_h = 8; p.latent_w = 8;
    p.kv_policy = SK_KV_SINK; p.kv_window = 9; p.kv_sink = 3;
    p.noise = ns;
    sk_stream *s = NULL;
    dt_ok(sk_stream_init(m, &p, &s), "init");
    size_t n;
    float *ctx = dt_read(emb, "context", &n);
    dt_ok(sk_stream_set_prompt(s, ctx, 16), "prompt");
    free(ctx);
    const int64_t E = 4 * 8 * 8;
    float lat[15 * 4 * 8 * 8];
    for (int k = 0; k < 5; k++) {
        sk_tensor x0;
        int64_t f0;
        if (k == 3) {
            /* chunk 3 is the first to evict; break its third forward */
            float keep = s->p.sched.t[2];
            s->p.sched.t[2] = 5000.0f;
            sk_status st = sk_stream_step(s, &x0, &f0);
            cr_expect_eq(st, SK_E_INVALID_ARG, "%s", sk_error_message());
            cr_expect(strstr(sk_error_message(), "chunk 3") && strstr(sk_error_message(), "timestep 5000"),
                      "%s", sk_error_message());
            cr_expect_eq(s->next_frame, 9, "frame counter moved on failure");
            cr_expect_eq(sk_kv_global_end(s->kv), 9 * 16);
            s->p.sched.t[2] = keep;
        }
        dt_ok(sk_stream_step(s, &x0, &f0), "step");
        cr_assert_eq(f0, 3 * k);
        dt_ok(sk_tensor_download_f32(&x0, lat + f0 * E, (size_t)sk_tensor_numel(&x0)), "dl");
    }
    cr_expect(sk_stream_done(s));
    sk_tensor x0;
    int64_t f0;
    cr_expect_neq(sk_stream_step(s, &x0, &f0), SK_OK, "a step past the end is refused");
    float *ref = dt_read(exp, "latents", &n);
    sk_compare_result r = sk_compare(lat, ref, n, DIT_NMSE, DIT_ATOL, DIT_RTOL);
    char buf[512];
    sk_compare_format(&r, lat, ref, buf, sizeof buf);
    cr_expect(r.ok, "latents after a rolled-back failure: %s", buf);
    free(ref);
    sk_stream_free(&s);
    sk_noise_source_free(&ns);
    sk_st_close(&exp); sk_st_close(&emb);
    sk_dit_free(&m);
    sk_backend_free_(&be);
}

/* Philox noise (no noise file): a seed gives the same latents on every run.
 * Chunk-size independence of the noise itself is tested in test_sampler. */
Test(dit_stream, philox_run_is_deterministic)
{
    sk_backend *be;
    dt_ok(sk_backend_cpu_create(&be), "cpu backend");
    sk_dit_model *m = dt_load_tiny(be);
    sk_st_file *emb = NULL;
    dt_ok(sk_st_open(DIT_FIX "embeds.safetensors", &emb), "embeds");
    size_t n;
    float *ctx = dt_read(emb, "context", &n);
    float out[2][6 * 256];
    for (int run = 0; run < 2; run++) {
        sk_stream_params p = sk_stream_params_default();
        p.frames = 6; p.latent_h = 8; p.latent_w = 8;
        p.kv_policy = SK_KV_FIFO; p.kv_window = 6; p.kv_sink = 0;
        p.seed = 42;
        sk_stream *s = NULL;
        dt_ok(sk_stream_init(m, &p, &s), "init");
        dt_ok(sk_stream_set_prompt(s, ctx, 16), "prompt");
        while (!sk_stream_done(s)) {
            sk_tensor x0;
            int64_t f0;
            dt_ok(sk_stream_step(s, &x0, &f0), "step");
            dt_ok(sk_tensor_download_f32(&x0, out[run] + f0 * 256, (size_t)sk_tensor_numel(&x0)), "dl");
        }
        sk_stream_free(&s);
    }
    cr_expect(memcmp(out[0], out[1], sizeof out[0]) == 0, "two runs with seed 42 differ");
    int finite = 1;
    double ss = 0;
    for (int i = 0; i < 6 * 256; i++) { finite &= isfinite(out[0][i]) != 0; ss += out[0][i] * out[0][i]; }
    cr_expect(finite && ss > 0, "latents finite and non-zero");
    free(ctx);
    sk_st_close(&emb);
    sk_dit_free(&m);
    sk_backend_free_(&be);
}

/* LongLive prompt switch with KV-recache (spec §5.6): the recache pass's v,
 * the cache content per frame right after it, and the final latents. */
static void run_switch(const char *expected_file, int switch_chunk)
{
    sk_backend *be;
    dt_ok(sk_backend_cpu_create(&be), "cpu backend");
    sk_dit_model *m = dt_load_tiny(be);
    sk_st_file *exp = NULL, *emb = NULL;
    dt_ok(sk_st_open(expected_file, &exp), "expected");
    dt_ok(sk_st_open(DIT_FIX "embeds.safetensors", &emb), "embeds");
    sk_noise_source *ns = NULL;
    dt_ok(sk_noise_source_file(DIT_FIX "noise_sink.safetensors", &ns), "noise");
    sk_stream_params p = sk_stream_params_default();
    p.frames = 15; p.latent_h = 8; p.latent_w = 8;
    p.kv_policy = SK_KV_SINK; p.kv_window = 9; p.kv_sink = 3;
    p.noise = ns;
    p.prompt_switch = 1;
    step_ctx sc = {exp, 0, 0};
    p.on_step = on_step;
    p.on_step_user = &sc;
    sk_stream *s = NULL;
    dt_ok(sk_stream_init(m, &p, &s), "init");
    size_t n;
    float *c0 = dt_read(emb, "context", &n), *c1 = dt_read(emb, "context.1", &n);
    dt_ok(sk_stream_set_prompt(s, c0, 16), "prompt");
    const int64_t E = 4 * 8 * 8, S = 16, ROW = 128;
    float lat[15 * 256];
    for (int k = 0; k < 5; k++) {
        if (k == switch_chunk) {
            dt_ok(sk_stream_switch_prompt(s, c1, 16), "switch");
            const sk_st_tensor *sf = sk_st_find(exp, "recache.start_frame");
            cr_assert(sf && sf->dtype == SK_DTYPE_I64);
            int64_t r0;
            memcpy(&r0, sf->data, 8);
            cr_expect_eq(s->next_frame - s->rec_n, r0, "recache starts at frame %lld, reference %lld",
                         (long long)(s->next_frame - s->rec_n), (long long)r0);
            sk_tensor rv = sk_tensor_rows(&s->rec_v, 0, s->rec_n);
            dt_check(exp, "recache.v", &rv, "recache.v");
            /* cache content, frame by frame: the reference's slot j holds frame fr[j] */
            const sk_st_tensor *cf = sk_st_find(exp, "recache.cache_frames");
            cr_assert(cf && cf->dtype == SK_DTYPE_I64 && cf->ndim == 1);
            int64_t fr[32];
            memcpy(fr, cf->data, (size_t)cf->shape[0] * 8);
            for (int l = 0; l < 2; l++) {
                char nm[40];
                snprintf(nm, sizeof nm, "recache.cache_k.%d", l);
                float *rk = dt_read(exp, nm, &n);
                snprintf(nm, sizeof nm, "recache.cache_v.%d", l);
                float *rvv = dt_read(exp, nm, &n);
                float *mk = malloc(sizeof(float) * (size_t)sk_tensor_numel(&s->kv->k[l]));
                float *mv = malloc(sizeof(float) * (size_t)sk_tensor_numel(&s->kv->v[l]));
                dt_ok(sk_tensor_download_f32(&s->kv->k[l], mk, (size_t)sk_tensor_numel(&s->kv->k[l])), "dl");
                dt_ok(sk_tensor_download_f32(&s->kv->v[l], mv, (size_t)sk_tensor_numel(&s->kv->v[l])), "dl");
                for (int64_t j = 0; j < cf->shape[0]; j++) {
                    if (fr[j] < 0) continue;
                    int64_t slot = -1;
                    for (int64_t q = 0; q < s->kv->n_slots; q++)
                        if (s->kv->slots[q].kind != SK_KV_SLOT_FREE && s->kv->slots[q].abs_frame == fr[j]) slot = q;
                    cr_assert_geq(slot, 0, "frame %lld missing from the cache", (long long)fr[j]);
                    sk_compare_result r = sk_compare(mk + slot * S * ROW, rk + j * S * ROW, (size_t)(S * ROW),
                                                     DIT_NMSE, DIT_ATOL, DIT_RTOL);
                    sk_compare_result r2 = sk_compare(mv + slot * S * ROW, rvv + j * S * ROW, (size_t)(S * ROW),
                                                      DIT_NMSE, DIT_ATOL, DIT_RTOL);
                    cr_expect(r.ok && r2.ok, "layer %d frame %lld: K/V after recache differ (nmse %g / %g)",
                              l, (long long)fr[j], r.nmse, r2.nmse);
                }
                free(rk); free(rvv); free(mk); free(mv);
            }
        }
        sk_tensor x0;
        int64_t f0;
        dt_ok(sk_stream_step(s, &x0, &f0), "step");
        dt_ok(sk_tensor_download_f32(&x0, lat + f0 * E, (size_t)sk_tensor_numel(&x0)), "dl");
    }
    float *ref = dt_read(exp, "latents", &n);
    sk_compare_result r = sk_compare(lat, ref, n, DIT_NMSE, DIT_ATOL, DIT_RTOL);
    char buf[512];
    sk_compare_format(&r, lat, ref, buf, sizeof buf);
    cr_log_info("switch at chunk %d: latents %s", switch_chunk, buf);
    cr_expect(r.ok && sqrt(r.nmse) <= 1e-4, "latents with a prompt switch: %s", buf);
    free(ref); free(c0); free(c1);
    sk_stream_free(&s);
    sk_noise_source_free(&ns);
    sk_st_close(&exp); sk_st_close(&emb);
    sk_dit_free(&m);
    sk_backend_free_(&be);
}

Test(dit_stream, prompt_switch_recache_protects_sink)
{
    run_switch(DIT_FIX "expected_switch.safetensors", 4);
}

Test(dit_stream, prompt_switch_recache_from_frame0_rewrites_sink)
{
    run_switch(DIT_FIX "expected_switch_f6.safetensors", 2);
}
