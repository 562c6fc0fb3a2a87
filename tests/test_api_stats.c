/* test_api_stats.c - measuring through the public API (runtime/sinkstream.h):
 * engines of random weights (random_model, random_vae), session stats (chunk
 * times, x0 hashes, allocations of the chunk loop), the per-op profile and the
 * engine's counters, as `sinkstream bench` reads them; and bad use of them. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/sinkstream.h"

TestSuite(api_stats, .timeout = 300);

static sk_engine *open_random(int vae, uint64_t seed)
{
    sk_engine_params ep = sk_engine_params_default();
    ep.random_model = "tiny";
    ep.random_seed = seed;
    ep.random_vae = vae;
    sk_engine *e = NULL;
    cr_assert_eq(sk_engine_open(&ep, &e), SK_OK, "engine: %s", sk_last_error());
    return e;
}

/* a [rows, cols] prompt of small values, like bench's */
static float *prompt(int64_t rows, int64_t cols)
{
    float *c = malloc((size_t)(rows * cols) * sizeof *c);
    cr_assert_not_null(c);
    uint64_t z = 3;
    for (int64_t i = 0; i < rows * cols; i++) {
        z = z * 6364136223846793005ull + 1442695040888963407ull;
        c[i] = 0.2f * ((float)(z >> 40) / 16777216.0f - 0.5f);
    }
    return c;
}

static uint64_t fnv(const void *p, size_t n)
{
    const unsigned char *b = p;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

static sk_session_params params(int64_t chunks)
{
    sk_session_params sp = sk_session_params_default();
    sp.frames = 3 * chunks;
    sp.latent_h = sp.latent_w = 8;
    sp.decode = 0;
    sp.stats = 1;
    sp.prompt_switch = 0;
    return sp;
}

static sk_session *start(sk_engine *e, const sk_session_params *sp)
{
    sk_engine_info info;
    cr_assert_eq(sk_engine_get_info(e, &info), SK_OK);
    sk_session *s = NULL;
    cr_assert_eq(sk_session_create(e, sp, &s), SK_OK, "session: %s", sk_last_error());
    float *ctx = prompt(info.text_len, info.text_dim);
    cr_assert_eq(sk_session_queue_prompt_embeds(s, ctx, info.text_len, info.text_dim, 0,
                                                SK_SWITCH_DEFAULT, "test"), SK_OK, "%s",
                 sk_last_error());
    free(ctx);
    return s;
}

/* Runs chunks chunks; hashes[k] = FNV-1a of chunk k's pulled latents (f32 on the CPU, the
 * bytes the session hashes). */
static void run(sk_session *s, int64_t chunks, uint64_t *hashes)
{
    for (int64_t k = 0; k < chunks; k++) {
        sk_step_info si;
        cr_assert_eq(sk_session_step(s, &si), SK_OK, "step %lld: %s", (long long)k,
                     sk_last_error());
        const float *lat;
        int64_t n, f0;
        cr_assert_eq(sk_session_latents(s, &lat, &n, &f0), SK_OK);
        cr_assert_eq(n, 3);
        if (hashes) hashes[k] = fnv(lat, (size_t)(n * 16 * 8 * 8) * sizeof *lat);
    }
    cr_assert_eq(sk_session_finish(s, NULL), SK_OK, "%s", sk_last_error());
}

Test(api_stats, random_engine_info_and_counters)
{
    sk_engine *e = open_random(0, 1);
    sk_engine_info info;
    cr_assert_eq(sk_engine_get_info(e, &info), SK_OK);
    cr_expect(info.has_dit && !info.has_vae && !info.has_text_encoder);
    cr_expect_eq(info.dim, 128);
    cr_expect_eq(info.num_layers, 2);
    cr_expect_eq(info.text_dim, 64);
    cr_expect_eq(info.text_len, 16);
    cr_expect_eq(info.latent_channels, 16);
    cr_expect_eq(info.in_channels, 16);
    cr_expect_eq(info.ffn_dim, 256);
    cr_expect_eq(info.freq_dim, 32);
    cr_expect(info.weights_bytes > 0);
    sk_engine_stats es;
    cr_assert_eq(sk_engine_get_stats(e, &es), SK_OK);
    cr_expect_str_eq(es.backend, "cpu");
    cr_expect_str_eq(es.gpu, "");
    cr_expect(es.backend_peak_bytes >= info.weights_bytes, "peak %lld < weights %lld",
              (long long)es.backend_peak_bytes, (long long)info.weights_bytes);
    cr_expect(es.backend_allocs > 0, "the weights were allocated");
    cr_expect_eq(es.device_total, 0);
    cr_assert_eq(sk_engine_close(&e), SK_OK);
    int i = 0;
    while (sk_random_model_name(i)) i++;
    cr_expect(i >= 2, "random shapes: %d", i);
    cr_expect_str_eq(sk_random_model_name(1), "tiny");
}

Test(api_stats, chunk_times_hashes_and_no_allocations_after_warmup)
{
    sk_engine *e = open_random(0, 5);
    enum { N = 5 };
    /* warm-up: a first session (lazy scratch, plans) */
    sk_session_params sp = params(2);
    sk_session *s = start(e, &sp);
    run(s, 2, NULL);
    sk_session_close(&s);

    sp = params(N);
    s = start(e, &sp);
    uint64_t pulled[N];
    run(s, N, pulled);
    sk_session_stats st;
    cr_assert_eq(sk_session_get_stats(s, &st), SK_OK, "%s", sk_last_error());
    cr_assert_eq(st.chunks, N);
    cr_expect_str_eq(st.timer, "host clock");
    for (int k = 0; k < N; k++) {
        cr_expect(st.chunk_ms[k] > 0 && st.chunk_ms[k] < 60000, "chunk %d: %g ms", k,
                  st.chunk_ms[k]);
        cr_expect_eq(st.chunk_hash[k], pulled[k], "chunk %d: the stats hash is not the hash "
                     "of the chunk's latents", k);
    }
    cr_expect_neq(st.chunk_hash[0], st.chunk_hash[1]);
    cr_expect_eq(st.backend_allocs, 0, "the chunk loop allocated %llu times",
                 (unsigned long long)st.backend_allocs);
    cr_expect_eq(st.device_mallocs, 0);
    cr_expect(st.kv_cache_bytes > 0);
    cr_expect_eq(st.profile_chunk, -1);
    cr_expect_eq(st.n_ops, 0);
    cr_expect_eq(st.vae_overlapped, 0);
    uint64_t first[N];
    memcpy(first, st.chunk_hash, sizeof first);
    sk_session_close(&s);

    /* the same arguments again: the same latents; another seed: others */
    s = start(e, &sp);
    run(s, N, NULL);
    cr_assert_eq(sk_session_get_stats(s, &st), SK_OK);
    for (int k = 0; k < N; k++) cr_expect_eq(st.chunk_hash[k], first[k], "chunk %d", k);
    sk_session_close(&s);
    sp.seed = 9;
    s = start(e, &sp);
    run(s, N, NULL);
    cr_assert_eq(sk_session_get_stats(s, &st), SK_OK);
    cr_expect_neq(st.chunk_hash[0], first[0], "the noise seed changed nothing");
    sk_session_close(&s);
    cr_assert_eq(sk_engine_close(&e), SK_OK);
}

Test(api_stats, per_op_profile_of_one_chunk)
{
    sk_engine *e = open_random(1, 2);
    sk_session_params sp = params(2);
    sp.decode = 1;
    sp.frames_on_device = 1;
    sp.profile = 1;
    sp.profile_chunk = 1;
    sk_session *s = start(e, &sp);
    for (int k = 0; k < 2; k++) {
        sk_step_info si;
        cr_assert_eq(sk_session_step(s, &si), SK_OK, "%s", sk_last_error());
        cr_expect_gt(si.video_frames, 0, "chunk %d decoded nothing", k);
        const uint8_t *rgb;
        int64_t n;
        cr_assert_eq(sk_session_frames(s, &rgb, &n, NULL, NULL), SK_OK);
        cr_expect_eq(n, 0, "frames_on_device: frames reached the host");
    }
    cr_expect_eq(sk_session_attach_output(s, "/tmp/sk_api_stats_never.mkv", NULL, NULL),
                 SK_E_INVALID_ARG);
    cr_assert_eq(sk_session_finish(s, NULL), SK_OK);
    sk_session_stats st;
    cr_assert_eq(sk_session_get_stats(s, &st), SK_OK, "%s", sk_last_error());
    cr_assert_eq(st.profile_chunk, 1);
    cr_assert_gt(st.n_ops, 0);
    cr_expect_eq(st.backend_allocs, 0, "%llu", (unsigned long long)st.backend_allocs);
    double total = 0;
    int qkv = 0, conv = 0;
    for (int i = 0; i < st.n_ops; i++) {
        cr_expect(st.ops[i].ms >= 0 && st.ops[i].calls > 0, "%s", st.ops[i].op);
        if (i) cr_expect(st.ops[i].ms <= st.ops[i - 1].ms, "not biggest first");
        total += st.ops[i].ms;
        qkv += !strcmp(st.ops[i].phase, "dit") && !strcmp(st.ops[i].op, "linear q/k/v/o");
        conv += !strcmp(st.ops[i].phase, "vae") && !strcmp(st.ops[i].op, "conv2d");
    }
    cr_expect(qkv == 1 && conv == 1, "op kinds: q/k/v/o %d, vae conv2d %d", qkv, conv);
    cr_expect(total > 0 && total <= st.profile_chunk_ms * 1.05 + 1, "ops %g ms, chunk %g ms",
              total, st.profile_chunk_ms);
    cr_expect_eq(st.profile_chunk_ms, st.chunk_ms[1]);
    sk_session_close(&s);
    cr_assert_eq(sk_engine_close(&e), SK_OK);
}

Test(api_stats, bad_use_is_a_status)
{
    sk_engine_params ep = sk_engine_params_default();
    sk_engine *e = NULL;
    ep.random_model = "wan9";
    cr_expect_eq(sk_engine_open(&ep, &e), SK_E_INVALID_ARG);
    cr_expect(strstr(sk_last_error(), "wan9") && strstr(sk_last_error(), "tiny"), "%s",
              sk_last_error());
    ep.random_model = "tiny";
    ep.dit = "/nonexistent.safetensors";
    cr_expect_eq(sk_engine_open(&ep, &e), SK_E_INVALID_ARG);
    cr_expect(strstr(sk_last_error(), "random_model"), "%s", sk_last_error());
    ep = sk_engine_params_default();
    ep.random_vae = 1;
    ep.vae = "/nonexistent.safetensors";
    cr_expect_eq(sk_engine_open(&ep, &e), SK_E_INVALID_ARG);
    cr_expect(strstr(sk_last_error(), "random_vae"), "%s", sk_last_error());
    cr_expect_null(e);

    e = open_random(0, 1);
    sk_session_params sp = params(2);
    sp.stats = 0;
    sp.profile = 1;
    sk_session *s = NULL;
    cr_expect_eq(sk_session_create(e, &sp, &s), SK_E_INVALID_ARG);
    cr_expect(strstr(sk_last_error(), "stats"), "%s", sk_last_error());
    sp.stats = 1;
    sp.profile_chunk = -2;
    cr_expect_eq(sk_session_create(e, &sp, &s), SK_E_INVALID_ARG);
    sp = params(2);
    sp.stats = 0;
    s = start(e, &sp);
    sk_session_stats st;
    cr_expect_eq(sk_session_get_stats(s, &st), SK_E_INVALID_ARG);
    cr_expect_eq(sk_session_get_stats(s, NULL), SK_E_INVALID_ARG);
    sk_session_close(&s);
    cr_expect_eq(sk_session_get_stats(NULL, &st), SK_E_INVALID_ARG);
    cr_expect_eq(sk_engine_get_stats(NULL, NULL), SK_E_INVALID_ARG);

    /* a profile needs the engine to itself (it swaps the engine's op table) */
    sp = params(2);
    sp.profile = 1;
    sp.profile_chunk = 0;
    s = start(e, &sp);
    sk_session_params sp2 = params(2);
    sk_session *other = start(e, &sp2);
    cr_expect_eq(sk_session_step(s, NULL), SK_E_UNSUPPORTED);
    cr_expect(strstr(sk_last_error(), "only session"), "%s", sk_last_error());
    sk_session_close(&other);
    cr_expect_eq(sk_session_step(other, NULL), SK_E_INVALID_ARG);
    cr_assert_eq(sk_session_step(s, NULL), SK_OK, "%s", sk_last_error());
    cr_assert_eq(sk_session_get_stats(s, &st), SK_OK);
    cr_expect_eq(st.profile_chunk, 0);
    cr_expect_gt(st.n_ops, 0);
    sk_session_close(&s);
    cr_assert_eq(sk_engine_close(&e), SK_OK);
}
