/* test_api_reliab.c - issue 15's session behaviour below the API
 * (runtime/sinkstream.h), where every front end (the CLI, serve, the Python
 * binding) gets it: deferred prompts (read when due through the session's
 * bounded cache) make the same latents as prompts queued with their context;
 * their errors come at queue time; sk_session_abort stops like
 * sk_session_stop (the network side is test_live_rtmp's); NaN latents pushed
 * into a decoding session are refused, naming the frame. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "api_test_util.h"
#include "dit_test_util.h"
#include "runtime/sinkstream.h"

#define TAEHV SK_SOURCE_DIR "/tests/fixtures/taehv/taehv_tiny_21.safetensors"

TestSuite(api_reliab, .timeout = 300);

/* The schedule: context from 0, then switches at these frames (names alternate). */
static const int64_t k_at[] = {3, 6, 6, 9, 12};
static const char *const k_name[] = {"context.1", "context", "context.1", "context", "context.1"};
#define N_SW 5

/* mode 0: no switch; 1: switches queued with their contexts; 2: deferred. */
static float *run(sk_engine *e, int mode)
{
    const int64_t frames = 15;
    float *lat = calloc((size_t)(frames * 4 * 64), sizeof(float));
    sk_session_params sp = sk_session_params_default();
    sp.frames = frames;
    sp.latent_h = sp.latent_w = 8;
    sp.kv_policy = "sink";
    sp.kv_window = 9;
    sp.seed = 5;
    sp.on_latents = api_copy_latents;
    sp.user = lat;
    sk_session *s = NULL;
    cr_assert_eq(sk_session_create(e, &sp, &s), SK_OK, "%s", sk_last_error());
    int64_t r, c;
    float *ctx = api_embeds("context", &r, &c);
    cr_assert_eq(sk_session_queue_prompt_embeds(s, ctx, r, c, 0, SK_SWITCH_DEFAULT, "context"),
                 SK_OK, "%s", sk_last_error());
    free(ctx);
    for (int i = 0; mode && i < N_SW; i++) {
        sk_status st;
        if (mode == 1) {
            float *x = api_embeds(k_name[i], &r, &c);
            st = sk_session_queue_prompt_embeds(s, x, r, c, k_at[i], SK_SWITCH_DEFAULT, k_name[i]);
            free(x);
        } else {
            st = sk_session_queue_prompt_deferred(s, NULL, API_EMBEDS, k_name[i], k_at[i],
                                                  SK_SWITCH_DEFAULT);
        }
        cr_assert_eq(st, SK_OK, "queue %d: %s", i, sk_last_error());
    }
    sk_status st = SK_OK;
    while (st == SK_OK && !sk_session_done(s)) st = sk_session_step(s, NULL);
    cr_assert_eq(st, SK_OK, "step: %s", sk_last_error());
    cr_assert_eq(sk_session_finish(s, NULL), SK_OK, "%s", sk_last_error());
    sk_session_close(&s);
    return lat;
}

Test(api_reliab, deferred_prompts_equal_prompts_queued_with_their_context)
{
    sk_engine *e = api_open_tiny();
    float *none = run(e, 0), *eager = run(e, 1), *lazy = run(e, 2);
    const size_t n = 15 * 256 * sizeof(float);
    cr_expect(memcmp(eager, lazy, n) == 0, "deferred prompts made other latents");
    cr_expect(memcmp(none, eager, n) != 0, "the switches changed nothing (no test)");
    free(none), free(eager), free(lazy);
    cr_assert_eq(sk_engine_close(&e), SK_OK, "%s", sk_last_error());
}

#define EXPECT_FAIL(call, code, needle)                                                       \
    do {                                                                                      \
        sk_status st_ = (call);                                                               \
        cr_expect_eq(st_, code, "%s: %s (%s)", #call, sk_status_str(st_), sk_last_error());    \
        cr_expect(strstr(sk_last_error(), needle), "%s: message '%s' lacks '%s'", #call,      \
                  sk_last_error(), needle);                                                   \
    } while (0)

Test(api_reliab, deferred_prompt_errors_come_at_queue_time)
{
    sk_engine *e = api_open_tiny();
    sk_session_params sp = sk_session_params_default();
    sp.frames = 6, sp.latent_h = sp.latent_w = 8;
    sk_session *s = NULL;
    cr_assert_eq(sk_session_create(e, &sp, &s), SK_OK, "%s", sk_last_error());
    EXPECT_FAIL(sk_session_queue_prompt_deferred(s, NULL, API_EMBEDS, "no_such", 3, 0), SK_E_FORMAT,
                "no tensor 'no_such'");
    EXPECT_FAIL(sk_session_queue_prompt_deferred(s, "a fox", API_EMBEDS, "context", 3, 0),
                SK_E_INVALID_ARG, "exactly one");
    EXPECT_FAIL(sk_session_queue_prompt_deferred(s, "a fox", NULL, NULL, 3, 0), SK_E_INVALID_ARG,
                "text-encoder");
    EXPECT_FAIL(sk_session_queue_prompt_deferred(s, NULL, NULL, "context", 3, 0),
                SK_E_INVALID_ARG, "embeds_file");
    EXPECT_FAIL(sk_session_queue_prompt_deferred(s, NULL, API_EMBEDS, "context", -5, 0),
                SK_E_INVALID_ARG, "frame");
    cr_expect_eq(sk_session_queue_prompt_deferred(s, NULL, API_EMBEDS, "context", 3, 0), SK_OK, "%s",
                 sk_last_error());
    EXPECT_FAIL(sk_session_queue_prompt_deferred(s, NULL, DIT_FIX "dit_tiny.safetensors",
                                                 "context", 3, 0),
                SK_E_INVALID_ARG, "one file per session");
    sk_session_status ss;
    sk_session_get_status(s, &ss);
    cr_expect_eq(ss.queued_prompts, 1, "only the good one is queued (%lld)",
                 (long long)ss.queued_prompts);
    sk_session_close(&s);
    sk_session_abort(NULL); /* a no-op, like stop */
    cr_assert_eq(sk_engine_close(&e), SK_OK, "%s", sk_last_error());
}

Test(api_reliab, abort_stops_at_the_next_boundary)
{
    sk_engine *e = api_open_tiny();
    sk_session_params sp = sk_session_params_default();
    sp.frames = 0, sp.latent_h = sp.latent_w = 8, sp.kv_policy = "fifo", sp.kv_window = 6;
    sp.rope = "relative";
    sk_session *s;
    cr_assert_eq(sk_session_create(e, &sp, &s), SK_OK, "%s", sk_last_error());
    int64_t r, c;
    float *ctx = api_embeds("context", &r, &c);
    cr_assert_eq(sk_session_queue_prompt_embeds(s, ctx, r, c, 0, 0, NULL), SK_OK);
    cr_assert_eq(sk_session_step(s, NULL), SK_OK, "%s", sk_last_error());
    cr_expect(!sk_session_done(s));
    sk_session_abort(s);
    sk_step_info si;
    cr_assert_eq(sk_session_step(s, &si), SK_OK, "%s", sk_last_error());
    cr_expect(si.n_frames == 0 && sk_session_done(s), "an aborted session makes no more chunks");
    sk_session_status ss;
    sk_session_get_status(s, &ss);
    cr_expect(ss.stopping && ss.next_frame == 3, "stopped after one chunk (%lld)",
              (long long)ss.next_frame);
    cr_expect_eq(sk_session_finish(s, NULL), SK_OK, "no live output: %s", sk_last_error());
    sk_session_close(&s);
    free(ctx);
    sk_engine_close(&e);
}

Test(api_reliab, nan_latents_pushed_for_decode_are_refused)
{
    sk_engine_params ep = sk_engine_params_default();
    ep.vae = TAEHV;
    sk_engine *e = NULL;
    cr_assert_eq(sk_engine_open(&ep, &e), SK_OK, "%s", sk_last_error());
    sk_session_params sp = sk_session_params_default();
    sp.frames = 2, sp.latent_h = sp.latent_w = 8, sp.chunk = 2;
    sk_session *s;
    cr_assert_eq(sk_session_create(e, &sp, &s), SK_OK, "%s", sk_last_error());
    float *lat = calloc(2 * 16 * 64, sizeof(float));
    lat[16 * 64 + 5] = NAN;
    EXPECT_FAIL(sk_session_push_latents(s, lat, 2, NULL), SK_E_INVALID_ARG,
                "latent frame 1 of this push");
    lat[16 * 64 + 5] = INFINITY;
    EXPECT_FAIL(sk_session_push_latents(s, lat, 2, NULL), SK_E_INVALID_ARG, "Inf");
    lat[16 * 64 + 5] = 0.5f;
    cr_expect_eq(sk_session_push_latents(s, lat, 2, NULL), SK_OK, "finite: %s", sk_last_error());
    free(lat);
    sk_session_close(&s);
    sk_engine_close(&e);
}
