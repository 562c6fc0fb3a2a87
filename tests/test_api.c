/* test_api.c - the public C API (runtime/sinkstream.h) on the tiny fixtures:
 * sessions of one engine in parallel threads equal their single runs bit for
 * bit, prompts queued from another thread while a session steps, bad use
 * answered with a status and a message, and the C example (examples/) equal
 * to the CLI. Run under ASan in CI; a TSan build by hand (docs/API.md). */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/cli_run.h"
#include "api_test_util.h"
#include "dit_test_util.h"
#include "runtime/sinkstream.h"

TestSuite(api, .timeout = 300);

typedef struct {
    sk_engine *e;
    const char *policy, *prompt, *switch_to;
    int64_t window, frames, switch_at;
    uint64_t seed;
    float *lat;      /* [frames, 4, 8, 8] out */
    sk_status st;
    char err[512];
} run_args;

static void *run_session(void *arg)
{
    run_args *a = arg;
    sk_session_params sp = sk_session_params_default();
    sp.frames = a->frames;
    sp.latent_h = sp.latent_w = 8;
    sp.kv_policy = a->policy;
    sp.kv_window = a->window;
    sp.seed = a->seed;
    sp.on_latents = api_copy_latents;
    sp.user = a->lat;
    sk_session *s = NULL;
    int64_t r, c;
    float *ctx = api_embeds(a->prompt, &r, &c);
    float *ctx2 = a->switch_to ? api_embeds(a->switch_to, &r, &c) : NULL;
    a->st = sk_session_create(a->e, &sp, &s);
    if (a->st == SK_OK)
        a->st = sk_session_queue_prompt_embeds(s, ctx, r, c, 0, SK_SWITCH_DEFAULT, a->prompt);
    if (a->st == SK_OK && ctx2)
        a->st = sk_session_queue_prompt_embeds(s, ctx2, r, c, a->switch_at, SK_SWITCH_DEFAULT,
                                               a->switch_to);
    while (a->st == SK_OK && !sk_session_done(s)) a->st = sk_session_step(s, NULL);
    if (a->st == SK_OK) a->st = sk_session_finish(s, NULL);
    if (a->st != SK_OK) snprintf(a->err, sizeof a->err, "%s", sk_last_error());
    sk_session_close(&s);
    free(ctx);
    free(ctx2);
    return NULL;
}

static float *lat_buf(int64_t frames) { return calloc((size_t)(frames * 4 * 64), sizeof(float)); }

/* Two sessions of one engine, stepped at the same time on two threads, each
 * with its own prompt, seed and KV policy, make the latents of their single runs. */
Test(api, two_sessions_in_two_threads_equal_single_runs)
{
    sk_engine *e = api_open_tiny();
    run_args a = {e, "sink", "context", "context.1", 9, 15, 9, 11, NULL, SK_OK, ""};
    run_args b = {e, "fifo", "context.1", NULL, 6, 12, 0, 22, NULL, SK_OK, ""};
    run_args a1 = a, b1 = b;
    a.lat = lat_buf(a.frames), b.lat = lat_buf(b.frames);
    a1.lat = lat_buf(a.frames), b1.lat = lat_buf(b.frames);
    run_session(&a1);
    cr_assert_eq(a1.st, SK_OK, "single a: %s", a1.err);
    run_session(&b1);
    cr_assert_eq(b1.st, SK_OK, "single b: %s", b1.err);
    pthread_t ta, tb;
    pthread_create(&ta, NULL, run_session, &a);
    pthread_create(&tb, NULL, run_session, &b);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    cr_assert_eq(a.st, SK_OK, "thread a: %s", a.err);
    cr_assert_eq(b.st, SK_OK, "thread b: %s", b.err);
    cr_expect(memcmp(a.lat, a1.lat, (size_t)(a.frames * 256) * sizeof(float)) == 0,
              "session a in a thread != its single run");
    cr_expect(memcmp(b.lat, b1.lat, (size_t)(b.frames * 256) * sizeof(float)) == 0,
              "session b in a thread != its single run");
    cr_expect(memcmp(a.lat, b.lat, (size_t)(12 * 256) * sizeof(float)) != 0, "a == b");
    free(a.lat), free(b.lat), free(a1.lat), free(b1.lat);
    cr_assert_eq(sk_engine_close(&e), SK_OK, "%s", sk_last_error());
}

typedef struct {
    sk_session *s;
    float *ctx;
    int64_t r, c, frame;
    sk_status st;
    volatile int go;
} queue_args;

static void *queue_later(void *arg)
{
    queue_args *q = arg;
    while (!__atomic_load_n(&q->go, __ATOMIC_ACQUIRE)) usleep(100);
    q->st = sk_session_queue_prompt_embeds(q->s, q->ctx, q->r, q->c, q->frame,
                                           SK_SWITCH_DEFAULT, "context.1");
    sk_session_status ss; /* status from this thread while the other steps */
    if (q->st == SK_OK) q->st = sk_session_get_status(q->s, &ss);
    return NULL;
}

/* A prompt queued from a second thread while the session steps applies at the
 * frame it names: the latents equal the run that queued it up front. */
Test(api, prompt_queued_from_another_thread_while_stepping)
{
    sk_engine *e = api_open_tiny();
    run_args ref = {e, "sink", "context", "context.1", 9, 15, 9, 5, lat_buf(15), SK_OK, ""};
    run_session(&ref);
    cr_assert_eq(ref.st, SK_OK, "%s", ref.err);

    run_args got = ref;
    got.lat = lat_buf(15);
    sk_session_params sp = sk_session_params_default();
    sp.frames = 15, sp.latent_h = sp.latent_w = 8, sp.kv_window = 9, sp.seed = 5;
    sp.on_latents = api_copy_latents, sp.user = got.lat;
    sk_session *s;
    cr_assert_eq(sk_session_create(e, &sp, &s), SK_OK, "%s", sk_last_error());
    int64_t r, c;
    float *ctx = api_embeds("context", &r, &c);
    queue_args q = {s, api_embeds("context.1", &r, &c), r, c, 9, SK_OK, 0};
    cr_assert_eq(sk_session_queue_prompt_embeds(s, ctx, r, c, 0, SK_SWITCH_DEFAULT, "context"),
                 SK_OK);
    pthread_t t;
    pthread_create(&t, NULL, queue_later, &q);
    for (int k = 0; !sk_session_done(s); k++) {
        if (k == 1) __atomic_store_n(&q.go, 1, __ATOMIC_RELEASE); /* queues during steps 1-2 */
        if (k == 3) pthread_join(t, NULL);                       /* before the boundary at 9 */
        cr_assert_eq(sk_session_step(s, NULL), SK_OK, "step %d: %s", k, sk_last_error());
    }
    cr_assert_eq(q.st, SK_OK);
    sk_session_status ss;
    cr_assert_eq(sk_session_get_status(s, &ss), SK_OK);
    cr_expect_eq(ss.switches, 1, "one switch applied");
    cr_expect_eq(ss.next_frame, 15);
    cr_expect(memcmp(got.lat, ref.lat, 15 * 256 * sizeof(float)) == 0,
              "queued from a thread != queued up front");
    sk_session_close(&s);
    free(ctx), free(q.ctx), free(got.lat), free(ref.lat);
    sk_engine_close(&e);
}

/* sk_session_stop from another thread ends the run at a chunk boundary. */
static void *stop_later(void *arg)
{
    usleep(2000);
    sk_session_stop(arg);
    return NULL;
}

Test(api, stop_from_another_thread)
{
    sk_engine *e = api_open_tiny();
    sk_session_params sp = sk_session_params_default();
    sp.frames = 0, sp.latent_h = sp.latent_w = 8, sp.kv_policy = "fifo", sp.kv_window = 6;
    sp.rope = "relative";
    sk_session *s;
    cr_assert_eq(sk_session_create(e, &sp, &s), SK_OK, "%s", sk_last_error());
    int64_t r, c;
    float *ctx = api_embeds("context", &r, &c);
    cr_assert_eq(sk_session_queue_prompt_embeds(s, ctx, r, c, SK_FRAME_NEXT_CHUNK,
                                                SK_SWITCH_DEFAULT, NULL), SK_OK);
    pthread_t t;
    pthread_create(&t, NULL, stop_later, s);
    int steps = 0;
    while (!sk_session_done(s) && steps < 100000) {
        cr_assert_eq(sk_session_step(s, NULL), SK_OK, "%s", sk_last_error());
        steps++;
    }
    pthread_join(t, NULL);
    cr_expect(sk_session_done(s), "an unbounded session stopped");
    sk_session_status ss;
    sk_session_get_status(s, &ss);
    cr_expect(ss.stopping && ss.next_frame % 3 == 0, "stopped at a boundary (%lld)",
              (long long)ss.next_frame);
    sk_session_close(&s);
    free(ctx);
    sk_engine_close(&e);
}

#define EXPECT_FAIL(call, code, needle)                                                       \
    do {                                                                                      \
        sk_status st_ = (call);                                                               \
        cr_expect_eq(st_, code, "%s: %s (%s)", #call, sk_status_str(st_), sk_last_error());    \
        cr_expect(strstr(sk_last_error(), needle), "%s: message '%s' lacks '%s'", #call,      \
                  sk_last_error(), needle);                                                   \
    } while (0)

Test(api, null_handles_get_a_status)
{
    sk_session *s = NULL;
    sk_engine *e = NULL;
    EXPECT_FAIL(sk_engine_open(NULL, &e), SK_E_INVALID_ARG, "params are NULL");
    EXPECT_FAIL(sk_engine_open(NULL, NULL), SK_E_INVALID_ARG, "out is NULL");
    sk_session_params sp = sk_session_params_default();
    EXPECT_FAIL(sk_session_create(NULL, &sp, &s), SK_E_INVALID_ARG, "NULL engine");
    EXPECT_FAIL(sk_session_step(NULL, NULL), SK_E_INVALID_ARG, "NULL session");
    EXPECT_FAIL(sk_session_queue_prompt_text(NULL, "x", 0, 0), SK_E_INVALID_ARG, "NULL session");
    EXPECT_FAIL(sk_session_finish(NULL, NULL), SK_E_INVALID_ARG, "NULL session");
    EXPECT_FAIL(sk_session_attach_output(NULL, "a.mp4", NULL, NULL), SK_E_INVALID_ARG,
                "NULL session");
    sk_session_status ss;
    EXPECT_FAIL(sk_session_get_status(NULL, &ss), SK_E_INVALID_ARG, "NULL session");
    sk_engine_info info;
    EXPECT_FAIL(sk_engine_get_info(NULL, &info), SK_E_INVALID_ARG, "NULL engine");
    float *ctx;
    int64_t r, c;
    EXPECT_FAIL(sk_engine_encode_text(NULL, "x", &ctx, &r, &c, NULL, NULL), SK_E_INVALID_ARG,
                "NULL engine");
    cr_expect(sk_session_done(NULL));
    sk_session_stop(NULL);
    sk_session_close(NULL);
    sk_session_close(&s);
    cr_expect_eq(sk_engine_close(NULL), SK_OK);
    cr_expect_eq(sk_engine_close(&e), SK_OK);
    sk_engine_params ep = sk_engine_params_default();
    EXPECT_FAIL(sk_engine_open(&ep, &e), SK_E_INVALID_ARG, "no model");
    ep.dit = DIT_FIX "dit_tiny.safetensors";
    ep.device = "tpu";
    EXPECT_FAIL(sk_engine_open(&ep, &e), SK_E_INVALID_ARG, "device 'tpu'");
    cr_expect_null(e);
}

Test(api, bad_use_of_a_live_engine_and_session)
{
    sk_engine *e = api_open_tiny();
    sk_engine_info info;
    cr_assert_eq(sk_engine_get_info(e, &info), SK_OK);
    cr_expect_eq(info.text_dim, 64);
    cr_expect_eq(info.latent_channels, 4);
    cr_expect(!info.has_vae && !info.has_text_encoder);
    sk_session_params sp = sk_session_params_default();
    sp.frames = 6, sp.latent_h = sp.latent_w = 8;
    sk_session *s = NULL;
    sp.kv_policy = "lru";
    EXPECT_FAIL(sk_session_create(e, &sp, &s), SK_E_INVALID_ARG, "lru");
    sp.kv_policy = NULL;
    sp.latent_h = 7;
    EXPECT_FAIL(sk_session_create(e, &sp, &s), SK_E_INVALID_ARG, "must be even");
    sp.latent_h = 8;
    sp.decode = 1;
    EXPECT_FAIL(sk_session_create(e, &sp, &s), SK_E_INVALID_ARG, "needs an engine with a VAE");
    sp.decode = -1;
    cr_assert_eq(sk_session_create(e, &sp, &s), SK_OK, "%s", sk_last_error());
    /* no prompt yet */
    EXPECT_FAIL(sk_session_step(s, NULL), SK_E_INVALID_ARG, "no prompt");
    /* a prompt whose width is not the model's text_dim */
    float ctx[4 * 63] = {0};
    EXPECT_FAIL(sk_session_queue_prompt_embeds(s, ctx, 4, 63, 0, SK_SWITCH_DEFAULT, "narrow"),
                SK_E_SHAPE, "text_dim 64");
    EXPECT_FAIL(sk_session_queue_prompt_embeds(s, NULL, 4, 64, 0, SK_SWITCH_DEFAULT, NULL),
                SK_E_INVALID_ARG, "ctx is NULL");
    EXPECT_FAIL(sk_session_queue_prompt_embeds(s, ctx, 4, 64, -7, SK_SWITCH_DEFAULT, NULL),
                SK_E_INVALID_ARG, "frame -7");
    EXPECT_FAIL(sk_session_queue_prompt_text(s, "a fox", 0, SK_SWITCH_DEFAULT),
                SK_E_INVALID_ARG, "needs a text encoder");
    /* outputs need frames; this session has no decoder */
    EXPECT_FAIL(sk_session_attach_output(s, "/tmp/x.safetensors", NULL, NULL), SK_E_INVALID_ARG,
                "does not decode");
    const uint8_t *rgb;
    int64_t n;
    EXPECT_FAIL(sk_session_frames(s, &rgb, &n, NULL, NULL), SK_E_INVALID_ARG, "does not decode");
    /* the engine outlives its sessions */
    EXPECT_FAIL(sk_engine_close(&e), SK_E_INVALID_ARG, "still open");
    cr_assert_not_null(e);
    /* a session used after close */
    sk_session *stale = s;
    sk_session_close(&s);
    cr_expect_null(s);
    EXPECT_FAIL(sk_session_step(stale, NULL), SK_E_INVALID_ARG, "not a live session");
    EXPECT_FAIL(sk_session_queue_prompt_embeds(stale, ctx, 4, 64, 0, 0, NULL), SK_E_INVALID_ARG,
                "not a live session");
    EXPECT_FAIL(sk_session_attach_output(stale, "/tmp/y", NULL, NULL), SK_E_INVALID_ARG,
                "not a live session");
    cr_expect(sk_session_done(stale));
    sk_session_stop(NULL);
    sk_session_close(&stale); /* twice: a message, no crash */
    cr_expect(strstr(sk_last_error(), "closed twice"), "%s", sk_last_error());
    sk_engine *stale_e = e;
    cr_assert_eq(sk_engine_close(&e), SK_OK, "%s", sk_last_error());
    EXPECT_FAIL(sk_session_create(stale_e, &sp, &s), SK_E_INVALID_ARG, "not a live engine");
    EXPECT_FAIL(sk_engine_close(&stale_e), SK_E_INVALID_ARG, "closed twice");
}

#define DEMO SK_SOURCE_DIR "/tests/fixtures/"

/* Outputs attached twice; attach / detach between steps; the frames pulled equal
 * the frames an output wrote. */
Test(api, outputs_attach_twice_detach_and_pull)
{
    sk_engine_params ep = sk_engine_params_default();
    ep.dit = DEMO "demo/dit_demo_c16.safetensors";
    ep.vae = DEMO "taehv/taehv_tiny_21.safetensors";
    sk_engine *e = NULL;
    cr_assert_eq(sk_engine_open(&ep, &e), SK_OK, "%s", sk_last_error());
    sk_session_params sp = sk_session_params_default();
    sp.frames = 6, sp.latent_h = sp.latent_w = 8, sp.kv_window = 6;
    sk_session *s;
    cr_assert_eq(sk_session_create(e, &sp, &s), SK_OK, "%s", sk_last_error());
    char dir[] = "/tmp/sk_api_out_XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char a[300], b[300];
    snprintf(a, sizeof a, "%s/a.safetensors", dir);
    snprintf(b, sizeof b, "%s/b.safetensors", dir);
    int ida = 0, idb = 0;
    cr_assert_eq(sk_session_attach_output(s, a, NULL, &ida), SK_OK, "%s", sk_last_error());
    EXPECT_FAIL(sk_session_attach_output(s, a, NULL, NULL), SK_E_INVALID_ARG, "attached already");
    sk_output_opts bad = {.kind = "gif"};
    EXPECT_FAIL(sk_session_attach_output(s, b, &bad, NULL), SK_E_INVALID_ARG, "kind 'gif'");
    int64_t r, c;
    float *ctx = api_embeds("context", &r, &c);
    cr_assert_eq(sk_session_queue_prompt_embeds(s, ctx, r, c, 0, 0, "context"), SK_OK);
    /* step 1 with output a only; then b joins; pulled frames counted */
    int64_t pulled = 0;
    uint8_t *all = malloc(21 * 64 * 64 * 3);
    for (int k = 0; !sk_session_done(s); k++) {
        if (k == 1) cr_assert_eq(sk_session_attach_output(s, b, NULL, &idb), SK_OK, "%s",
                                 sk_last_error());
        sk_step_info si;
        cr_assert_eq(sk_session_step(s, &si), SK_OK, "%s", sk_last_error());
        const uint8_t *rgb;
        int64_t n, h, w;
        cr_assert_eq(sk_session_frames(s, &rgb, &n, &h, &w), SK_OK, "%s", sk_last_error());
        cr_expect_eq(n, si.video_frames);
        cr_expect(h == 64 && w == 64);
        memcpy(all + pulled * 64 * 64 * 3, rgb, (size_t)(n * 64 * 64 * 3));
        pulled += n;
        const float *lat;
        int64_t ln, f0;
        cr_assert_eq(sk_session_latents(s, &lat, &ln, &f0), SK_OK);
        cr_expect(ln == si.n_frames && f0 == si.first_frame);
    }
    sk_step_info fi;
    cr_assert_eq(sk_session_finish(s, &fi), SK_OK, "%s", sk_last_error());
    cr_expect_eq(pulled + fi.video_frames, 21, "4F - 3 frames");
    EXPECT_FAIL(sk_session_detach_output(s, ida), SK_E_INVALID_ARG, "no output");
    EXPECT_FAIL(sk_session_step(s, NULL), SK_E_INVALID_ARG, "finished");
    sk_session_close(&s);
    /* output a holds every frame, as float [T, 3, H, W]; the pulled uint8 frames agree */
    sk_st_file *f;
    dt_ok(sk_st_open(a, &f), "a");
    const sk_st_tensor *t = sk_st_find(f, "frames");
    cr_assert(t && t->shape[0] == 21, "frames in a");
    size_t n;
    float *fa = dt_read(f, "frames", &n);
    int bad_px = 0;
    for (int64_t i = 0; i < pulled; i++)
        for (int y = 0; y < 64 * 64; y++)
            for (int ch = 0; ch < 3; ch++) {
                float v = fa[(i * 3 + ch) * 4096 + y] * 255.0f;
                int q = all[(i * 4096 + y) * 3 + ch];
                bad_px += q < v - 1.0f || q > v + 1.0f;
            }
    cr_expect_eq(bad_px, 0, "pulled uint8 frames vs the rgb output");
    free(fa);
    sk_st_close(&f);
    dt_ok(sk_st_open(b, &f), "b");
    t = sk_st_find(f, "frames");
    cr_expect(t && t->shape[0] < 21 && t->shape[0] > 0, "b joined after the first chunk");
    sk_st_close(&f);
    free(all);
    free(ctx);
    unlink(a), unlink(b), rmdir(dir);
    sk_engine_close(&e);
}

/* examples/generate_tiny.c, built against libsinkstream.so, writes the frames the
 * CLI writes for the same arguments. */
Test(api, c_example_runs_and_equals_the_cli)
{
    char dir[] = "/tmp/sk_api_ex_XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char cmd[2048], *err;
    snprintf(cmd, sizeof cmd, "%s/example_generate_tiny %s/tests/fixtures %s/ex.safetensors",
             SK_BINARY_DIR, SK_SOURCE_DIR, dir);
    int rc = tu_sh(cmd, &err);
    if (rc != 0 && strstr(err, "SentencePiece")) cr_skip_test("no SentencePiece: %s", err);
    cr_assert_eq(rc, 0, "example: %s", err);
    const char *F = SK_SOURCE_DIR "/tests/fixtures/";
    snprintf(cmd, sizeof cmd, "%s generate --dit %sdemo/dit_demo_c16.safetensors --text-encoder "
             "%stext/umt5_tiny.safetensors --tokenizer %stext/spiece_tiny.model --vae "
             "%staehv/taehv_tiny_21.safetensors --prompt 'A red fox at dawn.' --frames 6 "
             "--latent-height 8 --latent-width 8 --kv-window 6 --seed 9 --rgb-out %s/cli.safetensors",
             tu_bin(), F, F, F, F, dir);
    cr_assert_eq(tu_sh(cmd, &err), 0, "cli: %s", err);
    sk_st_file *a, *b;
    char pa[300], pb[300];
    snprintf(pa, sizeof pa, "%s/ex.safetensors", dir);
    snprintf(pb, sizeof pb, "%s/cli.safetensors", dir);
    dt_ok(sk_st_open(pa, &a), "example's frames");
    dt_ok(sk_st_open(pb, &b), "cli's frames");
    size_t na, nb;
    float *fa = dt_read(a, "frames", &na), *fb = dt_read(b, "frames", &nb);
    cr_assert_eq(na, nb);
    cr_expect_eq(na, (size_t)21 * 3 * 64 * 64);
    cr_expect(memcmp(fa, fb, na * sizeof *fa) == 0, "example != cli");
    free(fa), free(fb);
    sk_st_close(&a), sk_st_close(&b);
    unlink(pa), unlink(pb), rmdir(dir);
}

/* An engine without a DiT: text only (encode) or VAE only (decode sessions fed latents);
 * what they cannot do is a status. Pushing latents chunk by chunk equals one push of all. */
Test(api, text_only_and_decode_only_engines)
{
    sk_engine_params ep = sk_engine_params_default();
    ep.vae = DEMO "taehv/taehv_tiny_21.safetensors";
    sk_engine *e = NULL;
    cr_assert_eq(sk_engine_open(&ep, &e), SK_OK, "%s", sk_last_error());
    sk_engine_info info;
    cr_assert_eq(sk_engine_get_info(e, &info), SK_OK);
    cr_expect(!info.has_dit && info.has_vae && info.latent_channels == 16);
    float *ctx;
    int64_t r, c;
    EXPECT_FAIL(sk_engine_encode_text(e, "x", &ctx, &r, &c, NULL, NULL), SK_E_INVALID_ARG,
                "no text encoder");
    sk_session_params sp = sk_session_params_default();
    sp.frames = 6, sp.latent_h = sp.latent_w = 8, sp.chunk = 2;
    float *lat = malloc(6 * 16 * 64 * sizeof(float));
    for (int i = 0; i < 6 * 16 * 64; i++) lat[i] = (float)((i * 7919) % 200) / 100.0f - 1.0f;
    uint8_t *fr[2] = {malloc(21 * 64 * 64 * 3), malloc(21 * 64 * 64 * 3)};
    for (int pass = 0; pass < 2; pass++) {
        sp.chunk = pass ? 6 : 2;
        sk_session *s;
        cr_assert_eq(sk_session_create(e, &sp, &s), SK_OK, "%s", sk_last_error());
        EXPECT_FAIL(sk_session_step(s, NULL), SK_E_INVALID_ARG, "no DiT");
        EXPECT_FAIL(sk_session_queue_prompt_embeds(s, lat, 1, 64, 0, 0, NULL), SK_E_INVALID_ARG,
                    "no DiT");
        EXPECT_FAIL(sk_session_push_latents(s, lat, 7, NULL), SK_E_INVALID_ARG, "a push");
        int64_t got = 0;
        for (int64_t f0 = 0; f0 < 6; f0 += sp.chunk) {
            cr_assert_eq(sk_session_push_latents(s, lat + f0 * 16 * 64, sp.chunk, NULL), SK_OK,
                         "%s", sk_last_error());
            const uint8_t *rgb;
            int64_t n;
            cr_assert_eq(sk_session_frames(s, &rgb, &n, NULL, NULL), SK_OK);
            memcpy(fr[pass] + got * 64 * 64 * 3, rgb, (size_t)(n * 64 * 64 * 3));
            got += n;
        }
        cr_expect_eq(got, 21, "pass %d: 4F - 3 frames", pass);
        sk_session_close(&s);
    }
    cr_expect(memcmp(fr[0], fr[1], 21 * 64 * 64 * 3) == 0, "chunks of 2 != one chunk of 6");
    free(fr[0]), free(fr[1]), free(lat);
    sk_engine_close(&e);

    ep = sk_engine_params_default();
    ep.text_encoder = DEMO "text/umt5_tiny.safetensors";
    ep.tokenizer = DEMO "text/spiece_tiny.model";
    ep.text_len = 16;
    sk_status st = sk_engine_open(&ep, &e);
    if (st != SK_OK && strstr(sk_last_error(), "SentencePiece")) return; /* not in this build */
    cr_assert_eq(st, SK_OK, "%s", sk_last_error());
    int32_t *ids;
    int len = 0;
    cr_assert_eq(sk_engine_encode_text(e, "A red fox.", &ctx, &r, &c, &ids, &len), SK_OK, "%s",
                 sk_last_error());
    cr_expect(r == 16 && c == 64 && len > 1 && len < 16, "[%lld, %lld] %d tokens", (long long)r,
              (long long)c, len);
    cr_expect(ids[len - 1] == 1, "ends with </s> (id 1), got %d", ids[len - 1]);
    sk_free(ctx), sk_free(ids);
    sk_session *s = NULL;
    EXPECT_FAIL(sk_session_create(e, &sp, &s), SK_E_INVALID_ARG, "neither a DiT nor a VAE");
    sk_engine_close(&e);
}

/* The options issue 17 added to the API: devices "auto" / "cpu-ref", the exact output rate,
 * the on_prompt record of each prompt as it takes effect, the status's elapsed time. */
typedef struct {
    int n;
    int64_t frame[4];
    char label[4][32], source[4][16];
} prompt_log;

static void on_prompt_log(void *user, int64_t frame, const char *text, const char *label,
                          const char *source)
{
    prompt_log *l = user;
    cr_expect(!text, "embeddings come with label, not text");
    if (l->n >= 4) return;
    l->frame[l->n] = frame;
    snprintf(l->label[l->n], sizeof l->label[0], "%s", label ? label : "");
    snprintf(l->source[l->n], sizeof l->source[0], "%s", source ? source : "");
    l->n++;
}

Test(api, devices_rate_prompt_record_and_elapsed)
{
    static const char *const devs[] = {"auto", "cpu-ref"};
    for (int d = 0; d < 2; d++) {
        sk_engine_params ep = sk_engine_params_default();
        ep.dit = DIT_FIX "dit_tiny.safetensors";
        ep.dit_config = DIT_FIX "config.json";
        ep.device = devs[d];
        sk_engine *e = NULL;
        cr_assert_eq(sk_engine_open(&ep, &e), SK_OK, "%s: %s", devs[d], sk_last_error());
        sk_engine_info info;
        cr_assert_eq(sk_engine_get_info(e, &info), SK_OK);
        if (d == 0)
            cr_expect(!strcmp(info.device, "cpu") || !strncmp(info.device, "cuda", 4),
                      "auto became '%s'", info.device);
        else
            cr_expect_str_eq(info.device, "cpu-ref");
        sk_engine_close(&e);
    }
    sk_engine *e = api_open_tiny();
    sk_session_params sp = sk_session_params_default();
    sp.frames = 6, sp.chunk = 3, sp.latent_h = sp.latent_w = 8;
    sp.fps_num = 30000; /* without fps_den */
    sk_session *s = NULL;
    EXPECT_FAIL(sk_session_create(e, &sp, &s), SK_E_INVALID_ARG, "fps_num/fps_den");
    sp.fps_den = 1001;
    prompt_log log = {0};
    sp.on_prompt = on_prompt_log;
    sp.user = &log;
    cr_assert_eq(sk_session_create(e, &sp, &s), SK_OK, "%s", sk_last_error());
    int64_t r, c;
    float *c0 = api_embeds("context", &r, &c), *c1 = api_embeds("context.1", &r, &c);
    cr_assert_eq(sk_session_queue_prompt_embeds(s, c0, r, c, 0, 0, "context"), SK_OK);
    cr_assert_eq(sk_session_queue_prompt_embeds(s, c1, r, c, 2, 0, "context.1"), SK_OK);
    sk_session_status ss;
    cr_assert_eq(sk_session_get_status(s, &ss), SK_OK);
    cr_expect_eq(ss.elapsed_s, 0.0, "no step yet");
    while (!sk_session_done(s)) cr_assert_eq(sk_session_step(s, NULL), SK_OK, "%s", sk_last_error());
    cr_assert_eq(sk_session_get_status(s, &ss), SK_OK);
    cr_expect(ss.elapsed_s > 0, "elapsed_s after two chunks: %g", ss.elapsed_s);
    cr_expect(ss.lag_ms == 0 && ss.late_frames == 0 && ss.dropped_frames == 0, "no output");
    /* the switch queued for frame 2 takes effect at the next chunk boundary, 3 */
    cr_assert_eq(log.n, 2, "prompts recorded: %d", log.n);
    cr_expect(log.frame[0] == 0 && !strcmp(log.label[0], "context"), "%lld %s",
              (long long)log.frame[0], log.label[0]);
    cr_expect(log.frame[1] == 3 && !strcmp(log.label[1], "context.1"), "%lld %s",
              (long long)log.frame[1], log.label[1]);
    cr_expect_str_eq(log.source[0], "queued");
    sk_session_close(&s);
    free(c0), free(c1);
    sk_engine_close(&e);
}
