/* test_longlive2.c - LongLive 2.0 on the CPU against the independent PyTorch
 * reference (tests/reference/make_longlive2_fixtures.py): the UniPC tables and
 * one chunk's update sequence, the multishot key sets the upstream rolling
 * buffer really attends, the whole loop through the reference-run interface
 * of issue 18, and the bad-input checks that must fire before weights load. */
#include "common/cli_run.h"
#include "dit_test_util.h"

#include <unistd.h>

#include "runtime/engine/device.h"
#include "runtime/kv/kv_cache.h"
#include "runtime/sinkstream.h"
#include "sampler/unipc.h"

#define LL2_FIX SK_SOURCE_DIR "/tests/fixtures/longlive2/"

/* ------------------------------------------------------------------ UniPC */

/* max |a - b| / max(|b|, 1e-30) over the elements, and the relative L2 */
static void rel_err(const float *a, const float *b, size_t n, double *maxrel, double *rl2)
{
    double num = 0, den = 0, mr = 0;
    for (size_t i = 0; i < n; i++) {
        cr_assert(isfinite(a[i]), "non-finite value at %zu", i);
        double d = (double)a[i] - b[i];
        num += d * d;
        den += (double)b[i] * b[i];
        double r = fabs(d) / fmax(fabs((double)b[i]), 1e-3);
        if (r > mr) mr = r;
    }
    *maxrel = mr;
    *rl2 = sqrt(num / fmax(den, 1e-30));
}

Test(longlive2, unipc_tables_match_the_reference)
{
    sk_st_file *f;
    dt_ok(sk_st_open(LL2_FIX "unipc.safetensors", &f), "unipc fixture");
    for (int n = 2; n <= 4; n++) {
        sk_unipc_table tb;
        dt_ok(sk_unipc_table_make(n, 5.0, &tb), "table");
        char name[64];
        size_t m;
        snprintf(name, sizeof name, "sigmas.%d", n);
        float *sg = dt_read(f, name, &m);
        cr_assert_eq(m, (size_t)n + 1);
        for (int k = 0; k <= n; k++)
            cr_expect(fabs((double)tb.sigma[k] - sg[k]) <= 1e-6 * fmax(fabs(sg[k]), 1e-6),
                      "%d steps: sigma[%d] %.9g, reference %.9g", n, k, (double)tb.sigma[k],
                      (double)sg[k]);
        snprintf(name, sizeof name, "timesteps.%d", n);
        float *ts = dt_read(f, name, &m);
        cr_assert_eq(m, (size_t)n);
        for (int k = 0; k < n; k++)
            cr_expect_eq(tb.t[k], ts[k], "%d steps: t[%d] %g, reference %g", n, k,
                         (double)tb.t[k], (double)ts[k]);
        free(sg);
        free(ts);
    }
    /* the spec's table (spec-longlive2.md §2) */
    sk_unipc_table t4, t3, t2;
    dt_ok(sk_unipc_table_make(4, 5.0, &t4), "4");
    dt_ok(sk_unipc_table_make(3, 5.0, &t3), "3");
    dt_ok(sk_unipc_table_make(2, 5.0, &t2), "2");
    const float e4[4] = {999, 937, 833, 624}, e3[3] = {999, 908, 713}, e2[2] = {999, 833};
    for (int k = 0; k < 4; k++) cr_expect_eq(t4.t[k], e4[k]);
    for (int k = 0; k < 3; k++) cr_expect_eq(t3.t[k], e3[k]);
    for (int k = 0; k < 2; k++) cr_expect_eq(t2.t[k], e2[k]);
    cr_expect(fabs(t4.sigma[1] - 0.93727f) < 1e-5f, "sigma[1] %g", (double)t4.sigma[1]);
    cr_expect_eq(t4.sigma[4], 0.0f);
    /* orders: lower-order warm-up and final step */
    cr_expect_eq(sk_unipc_order(&t4, 0), 1);
    cr_expect_eq(sk_unipc_order(&t4, 1), 2);
    cr_expect_eq(sk_unipc_order(&t4, 3), 1);
    cr_expect_eq(sk_unipc_order(&t2, 1), 1);
    sk_unipc_table bad;
    cr_expect_neq(sk_unipc_table_make(0, 5.0, &bad), SK_OK);
    cr_expect_neq(sk_unipc_table_make(4, -1.0, &bad), SK_OK);
    sk_st_close(&f);
}

/* One chunk's updates with the reference's own v's: every model input x_i, x0
 * prediction m_i and corrected sample xc_i to 1e-6. */
Test(longlive2, unipc_update_sequence_matches_the_reference)
{
    sk_st_file *f;
    dt_ok(sk_st_open(LL2_FIX "unipc.safetensors", &f), "unipc fixture");
    sk_backend *be;
    dt_ok(sk_backend_create("cpu", SK_DTYPE_F32, &be), "backend");
    for (int n = 2; n <= 4; n++) {
        sk_unipc_table tb;
        dt_ok(sk_unipc_table_make(n, 5.0, &tb), "table");
        int64_t shp[4] = {2, 48, 2, 2};
        sk_tensor x, xc, v, m[3];
        dt_ok(sk_tensor_alloc(be, SK_DTYPE_F32, 4, shp, &x), "x");
        dt_ok(sk_tensor_alloc(be, SK_DTYPE_F32, 4, shp, &xc), "xc");
        dt_ok(sk_tensor_alloc(be, SK_DTYPE_F32, 4, shp, &v), "v");
        for (int i = 0; i < 3; i++) dt_ok(sk_tensor_alloc(be, SK_DTYPE_F32, 4, shp, &m[i]), "m");
        char name[64];
        size_t cnt;
        snprintf(name, sizeof name, "seq%d.x.0", n);
        float *h = dt_read(f, name, &cnt);
        dt_ok(sk_tensor_upload_raw(&x, h, cnt * 4), "upload");
        free(h);
        float *got = malloc(cnt * sizeof *got);
        double worst = 0;
        for (int i = 0; i < n; i++) {
            snprintf(name, sizeof name, "seq%d.v.%d", n, i);
            h = dt_read(f, name, &cnt);
            dt_ok(sk_tensor_upload_raw(&v, h, cnt * 4), "upload");
            free(h);
            sk_tensor *mi = &m[i % 3], *m1 = &m[(i + 2) % 3], *m2 = &m[(i + 1) % 3];
            dt_ok(sk_op_axpby(be, mi, 1.0f, &x, -tb.sigma[i], &v), "m");
            sk_unipc_update u;
            if (i == 0) {
                dt_ok(sk_tensor_copy(&xc, &x), "copy");
            } else if (i < n - 1) {
                dt_ok(sk_unipc_corrector(&tb, i, &u), "corrector");
                dt_ok(sk_unipc_apply(be, &xc, &u, &xc, u.c[1] != 0.0f ? m2 : NULL, m1, mi), "C");
            }
            const char *what[3] = {"m", "xc", "x"};
            sk_tensor *val[3] = {mi, &xc, &x};
            if (i < n - 1) {
                dt_ok(sk_unipc_predictor(&tb, i, &u), "predictor");
                dt_ok(sk_unipc_apply(be, &x, &u, &xc, NULL, m1, mi), "P");
            } else {
                dt_ok(sk_tensor_copy(&x, mi), "final"); /* sigma_n = 0: x_n = m_{n-1} */
            }
            for (int w = 0; w < 3; w++) {
                if (w == 1 && i == n - 1) continue; /* the last corrector cannot change the result */
                snprintf(name, sizeof name, "seq%d.%s.%d", n, what[w], w == 2 ? i + 1 : i);
                float *ref = dt_read(f, name, &cnt);
                dt_ok(sk_tensor_download_f32(val[w], got, cnt), "download");
                double mr, rl2;
                rel_err(got, ref, cnt, &mr, &rl2);
                cr_expect(rl2 <= 1e-6, "%d steps, %s: relative L2 %.3g > 1e-6", n, name, rl2);
                if (rl2 > worst) worst = rl2;
                free(ref);
            }
        }
        cr_log_info("UniPC %d steps: worst relative L2 over the sequence %.3g", n, worst);
        free(got);
        sk_tensor_free(&x); sk_tensor_free(&xc); sk_tensor_free(&v);
        for (int i = 0; i < 3; i++) sk_tensor_free(&m[i]);
    }
    sk_backend_free_(&be);
    sk_st_close(&f);
}

/* ------------------------------------------------------ multishot key sets */

/* The chunks the upstream buffer attended in each pass (fixture "keysets"
 * [chunks, 2 (denoise, clean), K]) against the cache's visible frames. */
static void check_keysets(const char *fixture, int clean)
{
    sk_st_file *f;
    dt_ok(sk_st_open(fixture, &f), fixture);
    const sk_st_tensor *t = sk_st_find(f, "keysets");
    cr_assert(t && t->ndim == 3, "keysets");
    const int64_t nchunks = t->shape[0], K = t->shape[2];
    int64_t *ks = malloc((size_t)(nchunks * 2 * K) * sizeof *ks);
    cr_assert(t->dtype == SK_DTYPE_I64 && t->nbytes == (size_t)(nchunks * 2 * K) * 8, "keysets i64");
    memcpy(ks, t->data, t->nbytes);
    sk_backend *be;
    dt_ok(sk_backend_create("cpu", SK_DTYPE_F32, &be), "backend");
    const int64_t chunk = 2;
    sk_kv_params p = {.policy = SK_KV_MULTISHOT, .window_frames = K * chunk,
                      .sink_frames = chunk, .max_chunk_frames = chunk, .tokens_per_frame = 1,
                      .num_layers = 1, .num_heads = 1, .head_dim = 8, .dtype = SK_DTYPE_F32,
                      .shot_rope_offset = 8};
    sk_kv_cache *c;
    dt_ok(sk_kv_cache_init(be, &p, &c), "cache");
    cr_expect_eq(sk_kv_pool_frames(&p), K * chunk, "pool = the upstream buffer");
    const int64_t cuts[2] = {3, 6};
    int64_t shot = 0;
    for (int64_t k = 0; k < nchunks; k++) {
        const int cut = k == cuts[0] || k == cuts[1];
        if (cut) dt_ok(sk_kv_multishot_cut(c), "cut");
        dt_ok(sk_kv_begin_chunk(c, k * chunk, chunk), "begin");
        shot += cut;
        cr_expect_eq(c->q_t0, k * chunk + 8 * shot, "chunk %lld: RoPE position %lld, expected %lld",
                     (long long)k, (long long)c->q_t0, (long long)(k * chunk + 8 * shot));
        for (int pass = 0; pass < 2; pass++) {
            if (pass == 1 && clean) dt_ok(sk_kv_multishot_clean_recache(c), "clean recache");
            int64_t fr[64];
            int64_t nv = sk_kv_visible_frames(c, fr, 64);
            char got[256] = "", want[256] = "";
            int64_t prev = -1;
            for (int64_t i = 0; i < nv; i++)
                if (fr[i] / chunk != prev) {
                    prev = fr[i] / chunk;
                    snprintf(got + strlen(got), sizeof got - strlen(got), " %lld", (long long)prev);
                }
            for (int64_t j = 0; j < K; j++) {
                int64_t ch = ks[(k * 2 + pass) * K + j];
                if (ch >= 0)
                    snprintf(want + strlen(want), sizeof want - strlen(want), " %lld", (long long)ch);
            }
            cr_expect_str_eq(got, want, "chunk %lld %s pass: attends chunks {%s }, upstream {%s }",
                             (long long)k, pass ? "clean" : "denoising", got, want);
            /* a full window is the whole pool: one key range, so the attention is one call
             * with no merge (what the 5B's speed rests on, docs/PERF.md) */
            sk_kv_range rg[8];
            int nr = 0;
            dt_ok(sk_kv_attention_ranges(c, 0, rg, 8, &nr), "ranges");
            if (nv == K * chunk)
                cr_expect_eq(nr, 1, "chunk %lld %s pass: the full window in %d key ranges, "
                             "expected 1", (long long)k, pass ? "clean" : "denoising", nr);
        }
        sk_kv_commit(c);
    }
    sk_kv_cache_free(&c);
    sk_backend_free_(&be);
    free(ks);
    sk_st_close(&f);
}

Test(longlive2, multishot_key_sets_match_the_upstream_buffer)
{
    check_keysets(LL2_FIX "expected_unipc4.safetensors", 0);
}

Test(longlive2, multishot_clean_recache_key_sets_match_the_upstream_buffer)
{
    check_keysets(LL2_FIX "expected_unipc4_clean.safetensors", 1);
}

/* An aborted cut chunk leaves everything as before (the retry is still a cut);
 * RoPE positions past the 1024-entry table are fine. */
Test(longlive2, multishot_abort_keeps_the_cut_and_runs_past_frame_1024)
{
    sk_backend *be;
    dt_ok(sk_backend_create("cpu", SK_DTYPE_F32, &be), "backend");
    sk_kv_params p = {.policy = SK_KV_MULTISHOT, .window_frames = 12, .sink_frames = 4,
                      .max_chunk_frames = 4, .tokens_per_frame = 1, .num_layers = 1,
                      .num_heads = 1, .head_dim = 8, .dtype = SK_DTYPE_F32,
                      .shot_rope_offset = 8};
    sk_kv_cache *c;
    dt_ok(sk_kv_cache_init(be, &p, &c), "cache");
    for (int64_t k = 0; k < 300; k++) {
        if (k == 250) {
            dt_ok(sk_kv_multishot_cut(c), "cut");
            dt_ok(sk_kv_begin_chunk(c, k * 4, 4), "begin");
            sk_kv_abort(c);
        }
        dt_ok(sk_kv_begin_chunk(c, k * 4, 4), "begin");
        if (k >= 250) cr_expect_eq(c->q_t0, k * 4 + 8, "chunk %lld", (long long)k);
        sk_kv_commit(c);
    }
    cr_expect_eq(c->next_frame, 1200);
    cr_expect_eq(c->ms_pin, 250);
    sk_kv_params bad = p;
    bad.sink_frames = 3;
    sk_kv_cache *c2 = NULL;
    cr_expect_neq(sk_kv_cache_init(be, &bad, &c2), SK_OK, "sink != chunk must be refused");
    cr_expect(strstr(sk_error_message(), "--kv-sink"), "%s", sk_error_message());
    sk_kv_cache_free(&c);
    sk_backend_free_(&be);
}

/* ------------------------------------------------- the reference-run interface */

static void run_reference(const char *expected, int steps, const char *extra)
{
    char out[] = "/tmp/sk_ll2_lat_XXXXXX";
    int fd = mkstemp(out);
    close(fd);
    char cmd[4096], *err;
    snprintf(cmd, sizeof cmd,
             "%s generate --device cpu --dit %sdit_tiny.safetensors --dit-config %sconfig.json "
             "--text-embeds %sembeds.safetensors --prompts %sschedule.jsonl --noise-file "
             "%snoise.safetensors --latents-out %s --frames 20 --latent-height 4 --latent-width 6 "
             "--chunk 2 --sampler unipc --num-steps %d --shift 5 --kv-policy multishot "
             "--kv-sink 2 --kv-window 8 --no-decode %s",
             tu_bin(), LL2_FIX, LL2_FIX, LL2_FIX, LL2_FIX, LL2_FIX, out, steps, extra);
    int rc = tu_sh(cmd, &err);
    cr_assert_eq(rc, 0, "generate failed (%d): %s", rc, err);
    cr_expect(strstr(err, "shot cut at frame 6") && strstr(err, "shot cut at frame 12"),
              "the two cuts are not logged: %s", err);
    sk_st_file *got, *exp;
    dt_ok(sk_st_open(out, &got), "latents-out");
    dt_ok(sk_st_open(expected, &exp), "expected");
    size_t n, m;
    float *a = dt_read(got, "latents", &n), *b = dt_read(exp, "latents", &m);
    cr_assert_eq(n, m, "latents: %zu values, reference %zu", n, m);
    double mr, rl2;
    rel_err(a, b, n, &mr, &rl2);
    cr_log_info("LongLive 2.0 UniPC %d steps %s: relative L2 %.3g", steps, extra, rl2);
    cr_expect(rl2 <= 1e-4, "%s: relative L2 %.3g > 1e-4", expected, rl2);
    free(a); free(b);
    sk_st_close(&got); sk_st_close(&exp);
    unlink(out);
}

Test(longlive2, reference_run_unipc4_multishot_two_cuts)
{
    run_reference(LL2_FIX "expected_unipc4.safetensors", 4, "");
}

Test(longlive2, reference_run_unipc2_multishot_two_cuts)
{
    run_reference(LL2_FIX "expected_unipc2.safetensors", 2, "");
}

Test(longlive2, reference_run_unipc4_shot_clean_recache)
{
    run_reference(LL2_FIX "expected_unipc4_clean.safetensors", 4, "--shot-clean-recache");
}

/* ------------------------------------------------------- the public API */

/* The CLI's latents of the reference run (as run_reference, into a buffer). */
static float *cli_latents(int steps, const char *extra, size_t *n)
{
    char out[] = "/tmp/sk_ll2_api_XXXXXX";
    int fd = mkstemp(out);
    close(fd);
    char cmd[4096], *err;
    snprintf(cmd, sizeof cmd,
             "%s generate --device cpu --dit %sdit_tiny.safetensors --dit-config %sconfig.json "
             "--text-embeds %sembeds.safetensors --prompts %sschedule.jsonl --noise-file "
             "%snoise.safetensors --latents-out %s --frames 20 --latent-height 4 --latent-width 6 "
             "--chunk 2 --sampler unipc --num-steps %d --shift 5 --kv-policy multishot "
             "--kv-sink 2 --kv-window 8 --no-decode %s",
             tu_bin(), LL2_FIX, LL2_FIX, LL2_FIX, LL2_FIX, LL2_FIX, out, steps, extra);
    int rc = tu_sh(cmd, &err);
    cr_assert_eq(rc, 0, "generate failed (%d): %s", rc, err);
    sk_st_file *f;
    dt_ok(sk_st_open(out, &f), "latents-out");
    float *a = dt_read(f, "latents", n);
    sk_st_close(&f);
    unlink(out);
    return a;
}

static void api_ok(sk_status st, const char *what)
{
    cr_assert_eq(st, SK_OK, "%s: %s: %s", what, sk_status_str(st), sk_last_error());
}

/* The reference run of issue 18 through runtime/sinkstream.h: the schedule's "cut" lines
 * as SK_SWITCH_CUT, the rest as plain switches, the LongLive 2.0 options as session params
 * (recache left NULL: off for multishot). Equal to the CLI bit for bit. */
static void api_equals_cli(int steps, int clean)
{
    size_t n_cli;
    float *cli = cli_latents(steps, clean ? "--shot-clean-recache" : "", &n_cli);

    sk_engine_params ep = sk_engine_params_default();
    ep.dit = LL2_FIX "dit_tiny.safetensors";
    ep.dit_config = LL2_FIX "config.json";
    ep.device = "cpu";
    sk_engine *e = NULL;
    api_ok(sk_engine_open(&ep, &e), "engine");
    sk_engine_info info;
    api_ok(sk_engine_get_info(e, &info), "info");
    cr_expect_str_eq(info.model_type, "ti2v", "the engine detects the ti2v DiT");
    cr_expect_eq(info.latent_channels, 48);
    cr_expect_eq(info.vae_stride, 16, "48-channel latents are Wan2.2's 16x VAE's");

    sk_session_params sp = sk_session_params_default();
    sp.frames = 20;
    sp.chunk = 2;
    sp.latent_h = 4;
    sp.latent_w = 6;
    sp.sampler = "unipc";
    sp.num_steps = steps;
    sp.shift = 5;
    sp.noise_file = LL2_FIX "noise.safetensors";
    sp.kv_policy = "multishot";
    sp.kv_sink = 2;
    sp.kv_window = 8;
    sp.shot_clean_recache = clean;
    sp.decode = 0;
    sk_session *s = NULL;
    api_ok(sk_session_create(e, &sp, &s), "session");

    /* schedule.jsonl: context.0 at 0, cuts to context.1 at 6 and context.2 at 12, a soft
     * switch back to context.0 at 16 */
    static const struct { const char *key; int64_t frame; sk_switch_mode mode; } sched[] = {
        {"context.0", 0, SK_SWITCH_DEFAULT}, {"context.1", 6, SK_SWITCH_CUT},
        {"context.2", 12, SK_SWITCH_CUT}, {"context.0", 16, SK_SWITCH_DEFAULT}};
    sk_st_file *emb;
    dt_ok(sk_st_open(LL2_FIX "embeds.safetensors", &emb), "embeds");
    for (int i = 0; i < 4; i++) {
        const sk_st_tensor *t = sk_st_find(emb, sched[i].key);
        cr_assert(t && t->ndim == 2, "%s: a [rows, text_dim] tensor", sched[i].key);
        float *ctx = dt_read(emb, sched[i].key, NULL);
        api_ok(sk_session_queue_prompt_embeds(s, ctx, t->shape[0], t->shape[1], sched[i].frame,
                                              sched[i].mode, sched[i].key), "queue");
        free(ctx);
    }
    sk_st_close(&emb);

    float *api = calloc(n_cli, sizeof *api);
    const int64_t E = 48 * 4 * 6;
    int64_t made = 0;
    while (!sk_session_done(s)) {
        sk_step_info si;
        api_ok(sk_session_step(s, &si), "step");
        const float *l;
        int64_t n, f0;
        api_ok(sk_session_latents(s, &l, &n, &f0), "latents");
        cr_assert_eq(f0, made, "chunk at frame %lld, expected %lld", (long long)f0,
                     (long long)made);
        cr_assert((size_t)((f0 + n) * E) <= n_cli, "more latents than the CLI made");
        memcpy(api + f0 * E, l, (size_t)(n * E) * sizeof *l);
        made += n;
    }
    api_ok(sk_session_finish(s, NULL), "finish");
    sk_session_close(&s);
    api_ok(sk_engine_close(&e), "engine close");
    cr_assert_eq((size_t)(made * E), n_cli, "API made %lld frames", (long long)made);
    size_t diff = 0;
    for (size_t i = 0; i < n_cli; i++) diff += memcmp(&api[i], &cli[i], sizeof *api) != 0;
    cr_expect_eq(diff, 0, "UniPC %d%s: %zu of %zu latent values differ from the CLI's", steps,
                 clean ? " clean recache" : "", diff, n_cli);
    free(api);
    free(cli);
}

Test(longlive2, api_run_equals_the_cli_bit_for_bit)
{
    api_equals_cli(4, 0);
    api_equals_cli(2, 1);
}

/* Bad use of the LongLive 2.0 parts of the API: a status and a message, before any step. */
Test(longlive2, api_refuses_bad_cuts_and_options)
{
    sk_engine_params ep = sk_engine_params_default();
    ep.dit = LL2_FIX "dit_tiny.safetensors";
    ep.dit_config = LL2_FIX "config.json";
    sk_engine *e = NULL;
    api_ok(sk_engine_open(&ep, &e), "engine");
    sk_session_params sp = sk_session_params_default();
    sp.frames = 8;
    sp.chunk = 2;
    sp.latent_h = 4;
    sp.latent_w = 6;
    sp.decode = 0;
    sk_session *s = NULL;
    float ctx[64] = {0};
    const int64_t td = 64;
    sk_engine_info info;
    api_ok(sk_engine_get_info(e, &info), "info");
    cr_assert_leq(info.text_dim, td, "the fixture's text_dim fits the buffer");

    /* a cut needs multishot */
    api_ok(sk_session_create(e, &sp, &s), "sink session");
    cr_expect_eq(sk_session_queue_prompt_embeds(s, ctx, 1, info.text_dim, 2, SK_SWITCH_CUT, "c"),
                 SK_E_INVALID_ARG);
    cr_expect(strstr(sk_last_error(), "multishot"), "%s", sk_last_error());
    sk_session_close(&s);

    /* shot options on another policy */
    sp.shot_clean_recache = 1;
    cr_expect_eq(sk_session_create(e, &sp, &s), SK_E_INVALID_ARG);
    cr_expect(strstr(sk_last_error(), "shot_clean_recache"), "%s", sk_last_error());
    sp.shot_clean_recache = 0;

    sp.kv_policy = "multishot";
    sp.kv_sink = 2;
    sp.kv_window = 8;
    sp.sampler = "unipc";
    /* a re-cache is refused with multishot */
    sp.recache = "on";
    cr_expect_eq(sk_session_create(e, &sp, &s), SK_E_UNSUPPORTED);
    cr_expect(strstr(sk_last_error(), "recache"), "%s", sk_last_error());
    sp.recache = NULL;
    /* an unknown sampler */
    sp.sampler = "ddim";
    cr_expect_eq(sk_session_create(e, &sp, &s), SK_E_INVALID_ARG);
    cr_expect(strstr(sk_last_error(), "renoise or unipc"), "%s", sk_last_error());
    sp.sampler = "unipc";
    /* a cut off a chunk boundary */
    api_ok(sk_session_create(e, &sp, &s), "multishot session");
    cr_expect_eq(sk_session_queue_prompt_embeds(s, ctx, 1, info.text_dim, 3, SK_SWITCH_CUT, "c"),
                 SK_E_INVALID_ARG);
    cr_expect(strstr(sk_last_error(), "use frame 4"), "%s", sk_last_error());
    api_ok(sk_session_queue_prompt_embeds(s, ctx, 1, info.text_dim, 4, SK_SWITCH_CUT, "c"),
           "a cut on a chunk boundary");
    cr_expect_eq(sk_session_queue_prompt_embeds(s, ctx, 1, info.text_dim, 0, (sk_switch_mode)9,
                                                "c"), SK_E_INVALID_ARG);
    sk_session_close(&s);
    api_ok(sk_engine_close(&e), "engine close");
}

/* ------------------------------------------------------------- bad input */

static char *write_tmp(const char *text)
{
    static char path[4][64];
    static int k;
    char *p = path[k++ % 4];
    snprintf(p, 64, "/tmp/sk_ll2_XXXXXX");
    int fd = mkstemp(p);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return p;
}

Test(longlive2, bad_input_is_refused_before_weights_load)
{
    /* a bad weight file proves the check came first: loading it would fail differently */
    const char *cut_odd = write_tmp("{\"frame\": 0, \"embeds\": \"context.0\"}\n"
                                    "{\"frame\": 5, \"embeds\": \"context.1\", \"cut\": true}\n");
    const char *cfg5b = write_tmp("{\"model_type\": \"ti2v\", \"dim\": 3072, \"ffn_dim\": 14336, "
                                  "\"num_heads\": 24, \"num_layers\": 30, \"in_dim\": 48, "
                                  "\"out_dim\": 48}\n");
    struct { const char *fmt; int rc; const char *needle; } cases[] = {
        /* 48-channel DiT with a 16-channel (taew2_1) decoder */
        {"--dit %sdit_tiny.safetensors --dit-config %sconfig.json --text-embeds %sembeds.safetensors "
         "--frames 4 --latent-height 4 --latent-width 6 --chunk 2 --vae " SK_SOURCE_DIR
         "/tests/fixtures/taehv/taehv_tiny_21.safetensors --rgb-out /tmp/sk_ll2_x.safetensors",
         2, "16-channel latents but the DiT makes 48"},
        /* UniPC with a step list */
        {"--dit %sdit_tiny.safetensors --dit-config %sconfig.json --text-embeds %sembeds.safetensors "
         "--no-decode --sampler unipc --steps 1000,750,500,250", 2, "--num-steps"},
        /* a cut that is not on a chunk boundary */
        {"--dit %sdit_tiny.safetensors --dit-config %sconfig.json --text-embeds %sembeds.safetensors "
         "--no-decode --frames 8 --latent-height 4 --latent-width 6 --chunk 2 --sampler unipc "
         "--kv-policy multishot --kv-sink 2 --kv-window 8 --prompts CUTFILE", 1, "must start a chunk"},
        /* no prompt-switch re-cache with the multi-shot sink (yet) */
        {"--dit %sdit_tiny.safetensors --dit-config %sconfig.json --text-embeds %sembeds.safetensors "
         "--no-decode --frames 8 --latent-height 4 --latent-width 6 --chunk 2 --kv-policy multishot "
         "--kv-sink 2 --kv-window 8 --recache on", 2, "--recache on with --kv-policy multishot"},
        /* multishot geometry */
        {"--dit %sdit_tiny.safetensors --dit-config %sconfig.json --text-embeds %sembeds.safetensors "
         "--no-decode --frames 8 --latent-height 4 --latent-width 6 --chunk 2 --kv-policy multishot "
         "--kv-sink 3 --kv-window 8", 2, "--kv-sink (3) must equal --chunk (2)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char args[2048], cmd[4096], *err;
        snprintf(args, sizeof args, cases[i].fmt, LL2_FIX, LL2_FIX, LL2_FIX);
        char *cf = strstr(args, "CUTFILE");
        if (cf) {
            char tail[2048];
            snprintf(tail, sizeof tail, "%s%s", cut_odd, cf + 7);
            strcpy(cf, tail);
        }
        snprintf(cmd, sizeof cmd, "%s generate %s", tu_bin(), args);
        int rc = tu_sh(cmd, &err);
        cr_expect_eq(rc, cases[i].rc, "case %zu: exit %d, expected %d: %s", i, rc, cases[i].rc, err);
        cr_expect(strstr(err, cases[i].needle), "case %zu: no '%s' in: %s", i, cases[i].needle, err);
        cr_expect(!strstr(err, "DiT config (from"), "case %zu: weights were loaded first: %s", i,
                  err);
    }
    /* a 5B model at 832x480: a warning, not a refusal (--print-config loads no weights) */
    char cmd[4096], *err;
    snprintf(cmd, sizeof cmd, "%s generate --dit %sdit_tiny.safetensors --dit-config %s "
             "--text-embeds %sembeds.safetensors --no-decode --height 480 --width 832 "
             "--frames 16 --chunk 8 --sampler unipc --kv-policy multishot --print-config",
             tu_bin(), LL2_FIX, cfg5b, LL2_FIX);
    int rc = tu_sh(cmd, &err);
    cr_expect_eq(rc, 0, "832x480 refused: %s", err);
    cr_expect(strstr(err, "1280x704") && strstr(err, "832x480"), "no size warning: %s", err);
    /* and 1280x704 gives none, with latents 44x80 (VAE stride 16) */
    tu_result r = tu_run("generate", "--dit", LL2_FIX "dit_tiny.safetensors", "--dit-config", cfg5b,
                         "--text-embeds", LL2_FIX "embeds.safetensors", "--no-decode", "--height",
                         "704", "--width", "1280", "--frames", "16", "--chunk", "8", "--sampler",
                         "unipc", "--kv-policy", "multishot", "--print-config", NULL);
    cr_expect_eq(r.code, 0, "%s", r.err);
    cr_expect(!strstr(r.err, "trained at"), "unexpected size warning: %s", r.err);
    cr_expect(strstr(r.out, "44x80") && strstr(r.out, "880 tokens"), "%s", r.out);
    cr_expect(strstr(r.out, "multishot"), "%s", r.out);
    tu_result_free(&r);
    for (int i = 0; i < 2; i++) unlink(i ? cfg5b : cut_odd);
}

/* taew2_2 decode of the 48-channel latents inside generate (streamed chunk by chunk,
 * 24 fps): 4F-3 frames at 16x the latent size, the same frames as `sinkstream decode`
 * of the same latents (whose taew2_2 path test_vae_tiny checks against PyTorch). */
Test(longlive2, taew2_2_decode_of_generated_latents)
{
    char lat[] = "/tmp/sk_ll2_dl_XXXXXX", rgb[] = "/tmp/sk_ll2_dr_XXXXXX",
         rgb2[] = "/tmp/sk_ll2_dd_XXXXXX";
    close(mkstemp(lat));
    close(mkstemp(rgb));
    close(mkstemp(rgb2));
    char cmd[4096], *err;
    snprintf(cmd, sizeof cmd,
             "%s generate --device cpu --dit %sdit_tiny.safetensors --dit-config %sconfig.json "
             "--text-embeds %sembeds.safetensors --embeds-key context.1 --noise-file "
             "%snoise.safetensors --latents-out %s --frames 10 --latent-height 4 --latent-width 6 "
             "--chunk 2 --sampler unipc --num-steps 2 --kv-policy multishot --kv-sink 2 "
             "--kv-window 8 --vae " SK_SOURCE_DIR "/tests/fixtures/taehv/taehv_tiny_22.safetensors "
             "--rgb-out %s --fps 24",
             tu_bin(), LL2_FIX, LL2_FIX, LL2_FIX, LL2_FIX, lat, rgb);
    int rc = tu_sh(cmd, &err);
    cr_assert_eq(rc, 0, "generate with taew2_2 failed (%d): %s", rc, err);
    cr_expect(strstr(err, "at 24 fps"), "%s", err);
    snprintf(cmd, sizeof cmd, "%s decode --vae " SK_SOURCE_DIR
             "/tests/fixtures/taehv/taehv_tiny_22.safetensors --latents %s --rgb-out %s",
             tu_bin(), lat, rgb2);
    rc = tu_sh(cmd, &err);
    cr_assert_eq(rc, 0, "decode failed (%d): %s", rc, err);
    sk_st_file *a, *b;
    dt_ok(sk_st_open(rgb, &a), "generate rgb");
    dt_ok(sk_st_open(rgb2, &b), "decode rgb");
    const sk_st_tensor *t = sk_st_find(a, "frames");
    cr_assert(t && t->ndim == 4, "no frames");
    cr_expect(t->shape[0] == 4 * 10 - 3 && t->shape[1] == 3 && t->shape[2] == 64 &&
              t->shape[3] == 96, "frames [%lld, %lld, %lld, %lld], expected [37, 3, 64, 96]",
              (long long)t->shape[0], (long long)t->shape[1], (long long)t->shape[2],
              (long long)t->shape[3]);
    size_t n, m;
    float *x = dt_read(a, "frames", &n), *y = dt_read(b, "frames", &m);
    cr_assert_eq(n, m);
    double mr, rl2;
    rel_err(x, y, n, &mr, &rl2);
    cr_expect(rl2 <= 1e-6, "generate's streamed decode differs from decode: %.3g", rl2);
    double lo = 1, hi = 0;
    for (size_t i = 0; i < n; i++) { lo = fmin(lo, x[i]); hi = fmax(hi, x[i]); }
    cr_expect(lo >= 0 && hi <= 1 && hi > lo, "RGB range [%g, %g]", lo, hi);
    free(x); free(y);
    sk_st_close(&a); sk_st_close(&b);
    unlink(lat); unlink(rgb); unlink(rgb2);
}
