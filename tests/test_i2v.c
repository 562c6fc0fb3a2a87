/* test_i2v.c - LongLive 2.0 image-to-video on the CPU: the whole loop with the
 * image latent clamped (--image-latent) against the independent PyTorch
 * reference (tests/reference/make_longlive2_i2v_fixtures.py); --image end to end
 * through the Wan2.2 VAE encoder (tiny random weights) and taew2_2's encoder
 * (frame 0 of the run = the encoder's latent of the preprocessed picture); the
 * bad inputs, each refused before the DiT loads with the flag in the message. */
#include "common/cli_run.h"
#include "dit_test_util.h"

#include <unistd.h>

#include "runtime/core/backend.h"
#include "runtime/sinkstream.h"
#include "vae/image_prep.h"
#include "vae/taehv.h"
#include "vae/wan_vae.h"

#ifdef SK_HAVE_STB
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wshadow"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-function"
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STB_IMAGE_WRITE_STATIC
#include <stb/stb_image_write.h>
#pragma GCC diagnostic pop
#endif

#define LL2 SK_SOURCE_DIR "/tests/fixtures/longlive2/"
#define I2V SK_SOURCE_DIR "/tests/fixtures/longlive2_i2v/"
#define WV SK_SOURCE_DIR "/tests/fixtures/wan_vae/"

static double rel_l2(const float *a, const float *b, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        cr_assert(isfinite(a[i]), "non-finite value at %zu", i);
        num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        den += (double)b[i] * b[i];
    }
    return sqrt(num / fmax(den, 1e-30));
}

/* The reference-run command line of issue 18 with extra flags; latents into out (r.err:
 * tu_sh's static buffer, valid until the next run). */
static tu_result run_ll2(const char *out, int steps, const char *extra)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "%s generate --device cpu --dit %sdit_tiny.safetensors --dit-config %sconfig.json "
             "--text-embeds %sembeds.safetensors --prompts %sschedule.jsonl --noise-file "
             "%snoise.safetensors --latents-out %s --frames 20 --latent-height 4 --latent-width 6 "
             "--chunk 2 --sampler unipc --num-steps %d --shift 5 --kv-policy multishot "
             "--kv-sink 2 --kv-window 8 --no-decode %s",
             tu_bin(), LL2, LL2, LL2, LL2, LL2, out, steps, extra);
    char *err = NULL;
    tu_result r = {0};
    r.code = tu_sh(cmd, &err);
    r.err = err;
    return r;
}

static float *read_latents(const char *path, size_t *n)
{
    sk_st_file *f;
    dt_ok(sk_st_open(path, &f), path);
    float *v = dt_read(f, "latents", n);
    sk_st_close(&f);
    return v;
}

static void reference_i2v(int steps, const char *expected)
{
    char out[] = "/tmp/sk_i2v_lat_XXXXXX";
    close(mkstemp(out));
    tu_result r = run_ll2(out, steps, "--image-latent " I2V "image_latent.safetensors");
    cr_assert_eq(r.code, 0, "generate failed (%d): %s", r.code, r.err);
    size_t n, m, k;
    float *got = read_latents(out, &n), *ref = read_latents(expected, &m);
    cr_assert_eq(n, m);
    const double e = rel_l2(got, ref, n);
    cr_log_info("I2V UniPC %d steps: relative L2 %.3g", steps, e);
    cr_expect(e <= 1e-4, "%s: relative L2 %.3g > 1e-4", expected, e);
    /* frame 0 is the image latent itself */
    sk_st_file *f;
    dt_ok(sk_st_open(I2V "image_latent.safetensors", &f), "image latent");
    float *img = dt_read(f, "image_latent", &k);
    sk_st_close(&f);
    cr_assert_eq(k, (size_t)48 * 4 * 6);
    for (size_t i = 0; i < k; i++) cr_assert_eq(got[i], img[i], "frame 0 [%zu]", i);
    /* and the image reaches later chunks (through the global sink) */
    float *t2v = read_latents(LL2 "expected_unipc4.safetensors", &m);
    cr_expect(rel_l2(got + 2 * k, t2v + 2 * k, n - 2 * k) > 1e-2, "the image changed nothing");
    free(got);
    free(ref);
    free(img);
    free(t2v);
    unlink(out);
}

Test(i2v, reference_run_unipc4_image_clamped) { reference_i2v(4, I2V "expected_i2v_unipc4.safetensors"); }
Test(i2v, reference_run_unipc2_image_clamped) { reference_i2v(2, I2V "expected_i2v_unipc2.safetensors"); }

/* ---- --image end to end */
#ifdef SK_HAVE_STB
/* A procedural picture (gradients and a disc) of w x h as PNG at path. */
static void write_png(const char *path, int w, int h, uint8_t *px)
{
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            const int in = (x - w / 2) * (x - w / 2) + (y - h / 3) * (y - h / 3) < (w * w) / 16;
            px[(y * w + x) * 3 + 0] = (uint8_t)(255 * x / (w - 1));
            px[(y * w + x) * 3 + 1] = (uint8_t)(in ? 230 : 255 * y / (h - 1));
            px[(y * w + x) * 3 + 2] = (uint8_t)(in ? 40 : 128);
        }
    cr_assert(stbi_write_png(path, w, h, 3, px, w * 3), "cannot write %s", path);
}

/* --image through encoder `enc` (wan / tae): frame 0 of the run == the encoder's latent of
 * the picture preprocessed as upstream, computed here through the library. */
static void image_end_to_end(const char *enc, int pw, int ph)
{
    char png[] = "/tmp/sk_i2v_png_XXXXXX", out[] = "/tmp/sk_i2v_lat_XXXXXX";
    close(mkstemp(png));
    close(mkstemp(out));
    uint8_t *px = malloc((size_t)(pw * ph * 3));
    write_png(png, pw, ph, px);
    const int wan = !strcmp(enc, "wan");
    char extra[1024];
    snprintf(extra, sizeof extra, "--image %s --image-encoder %s %s", png, enc,
             wan ? "--vae-encoder " WV "tiny_a.safetensors"
                 : "--vae " SK_SOURCE_DIR "/tests/fixtures/taehv/taehv_tiny_22.safetensors");
    tu_result r = run_ll2(out, 2, extra);
    cr_assert_eq(r.code, 0, "generate --image (%s) failed (%d): %s", enc, r.code, r.err);
    cr_expect(strstr(r.err, "encoded the image"), "%s", r.err);
    size_t n;
    float *got = read_latents(out, &n);
    /* the same picture through the library */
    const int64_t H = 64, W = 96, K = 48 * 4 * 6;
    float *img = malloc(sizeof(float) * 3 * H * W), want[48 * 4 * 6];
    dt_ok(sk_image_prep(px, pw, ph, W, H, wan, img), "prep");
    sk_backend *be;
    dt_ok(sk_backend_cpu_create(&be), "cpu");
    if (wan) {
        sk_wanvae_enc *m;
        dt_ok(sk_wanvae_enc_load(be, WV "tiny_a.safetensors", &m), "wan enc");
        dt_ok(sk_wanvae_encode_image(m, img, H, W, want), "encode");
        sk_wanvae_enc_free(&m);
    } else {
        sk_taehv *m;
        sk_taehv_load_opts lo = sk_taehv_load_opts_default();
        lo.need_encoder = 1;
        lo.need_decoder = 0;
        dt_ok(sk_taehv_load(be, SK_SOURCE_DIR "/tests/fixtures/taehv/taehv_tiny_22.safetensors",
                            &lo, &m), "tae");
        for (int64_t i = 0; i < 3 * H * W; i++) img[i] = (img[i] + 1.0f) * 0.5f;
        int64_t fs[4] = {1, 3, H, W}, ls[4];
        sk_tensor fr = sk_tensor_desc(SK_DTYPE_F32, 4, fs);
        fr.data = img;
        float *lat = NULL;
        dt_ok(sk_taehv_encode_video(m, &fr, 0, &lat, ls), "tae encode");
        memcpy(want, lat, sizeof want);
        free(lat);
        sk_taehv_free(&m);
    }
    const double e = rel_l2(got, want, (size_t)K);
    cr_log_info("--image %dx%d via %s: frame 0 vs the library's latent: rel L2 %.3g", pw, ph, enc,
                e);
    cr_expect(e <= 1e-5, "frame 0 is not the image's latent (rel L2 %.3g)", e);
    sk_backend_free_(&be);
    free(img);
    free(got);
    free(px);
    unlink(png);
    unlink(out);
}

Test(i2v, image_wan_encoder_end_to_end) { image_end_to_end("wan", 96, 64); }
Test(i2v, image_wan_encoder_resized_end_to_end) { image_end_to_end("wan", 61, 83); }
Test(i2v, image_tae_encoder_end_to_end) { image_end_to_end("tae", 150, 100); }
#endif

/* ---- bad input: a usage error (2) naming the flag, before the DiT loads */
static void refused(const char *extra, const char *needle, const char *dit_dir)
{
    char cmd[4096], *err = NULL;
    snprintf(cmd, sizeof cmd,
             "%s generate --device cpu --dit %sdit_tiny.safetensors --dit-config %sconfig.json "
             "--text-embeds %sembeds.safetensors --latents-out /tmp/sk_i2v_never.safetensors "
             "--frames 4 --latent-height 4 --latent-width 6 --chunk 2 --sampler unipc "
             "--num-steps 2 --kv-policy multishot --kv-sink 2 --kv-window 8 --no-decode %s",
             tu_bin(), dit_dir, dit_dir, dit_dir, extra);
    int rc = tu_sh(cmd, &err);
    cr_expect_eq(rc, 2, "%s: exit %d (want 2): %s", extra, rc, err);
    cr_expect(strstr(err, needle), "%s: message does not say '%s': %s", extra, needle, err);
    cr_expect(!strstr(err, "loading the DiT"), "%s: refused only after loading: %s", extra, err);
}

Test(i2v, bad_inputs_refused_before_loading)
{
    char txt[] = "/tmp/sk_i2v_txt_XXXXXX";
    int fd = mkstemp(txt);
    cr_assert(write(fd, "not a picture\n", 14) == 14);
    close(fd);
    char a[512];
    snprintf(a, sizeof a, "--image %s --vae-encoder " WV "tiny_a.safetensors", txt);
    refused(a, "not a picture", LL2);
    refused("--image /nonexistent.png --vae-encoder " WV "tiny_a.safetensors", "cannot open",
            LL2);
    /* a model with no image path (the 16-channel / Wan2.1-style tiny DiT) */
    snprintf(a, sizeof a, "--image %s --vae-encoder " WV "tiny_a.safetensors", txt);
    refused(a, "no image path", SK_SOURCE_DIR "/tests/fixtures/dit/");
    /* no Wan encoder given */
    refused("--image /tmp/whatever.png", "--vae-encoder", LL2);
    /* tae without encoder weights: a decoder-only TAEHV */
    refused("--image /tmp/whatever.png --image-encoder tae", "--image-encoder tae needs --vae",
            LL2);
    refused("--image /tmp/whatever.png --image-encoder tae --vae " WV "tiny_a.safetensors",
            "has no encoder weights", LL2);
    /* the re-noise sampler has no clamp */
    refused("--image-latent " I2V "image_latent.safetensors --sampler renoise --steps 1000,500",
            "--sampler unipc", LL2);
    /* a latent of another size */
    refused("--image-latent " WV "expected_tiny_a.safetensors", "'image_latent'", LL2);
    refused("--image-latent " I2V "image_latent.safetensors --image x.png", "not both", LL2);
    /* image-to-video and video-to-video do not combine */
    refused("--image-latent " I2V "image_latent.safetensors --input lavfi:testsrc",
            "--image-latent with --input: not supported", LL2);
    refused("--image /tmp/whatever.png --vae-encoder " WV "tiny_a.safetensors --input x.mp4",
            "--image with --input: not supported", LL2);
    unlink(txt);
}

/* ---- the public API: sk_session_set_image_latent's rules */
static void api_ok(sk_status st, const char *what)
{
    cr_assert_eq(st, SK_OK, "%s: %s: %s", what, sk_status_str(st), sk_last_error());
}

static sk_session *api_session(sk_engine *e, const char *sampler)
{
    sk_session_params sp = sk_session_params_default();
    sp.frames = 4;
    sp.chunk = 2;
    sp.latent_h = 4;
    sp.latent_w = 6;
    sp.sampler = sampler;
    sp.num_steps = 2;
    sp.kv_policy = "multishot";
    sp.kv_sink = 2;
    sp.kv_window = 8;
    sp.decode = 0;
    sk_session *s = NULL;
    api_ok(sk_session_create(e, &sp, &s), "session");
    return s;
}

Test(i2v, api_set_image_latent_rules)
{
    sk_engine_params ep = sk_engine_params_default();
    ep.dit = LL2 "dit_tiny.safetensors";
    ep.dit_config = LL2 "config.json";
    ep.device = "cpu";
    sk_engine *e = NULL;
    api_ok(sk_engine_open(&ep, &e), "engine");
    static float lat[48 * 4 * 6];
    for (int i = 0; i < 48 * 24; i++) lat[i] = 0.01f * (float)(i % 97) - 0.4f;
    sk_session *s = api_session(e, "unipc");
    cr_expect_eq(sk_session_set_image_latent(s, lat, 16, 4, 6), SK_E_SHAPE, "%s", sk_last_error());
    cr_expect(strstr(sk_last_error(), "[16, 4, 6]"), "%s", sk_last_error());
    lat[5] = NAN;
    cr_expect_eq(sk_session_set_image_latent(s, lat, 48, 4, 6), SK_E_INVALID_ARG);
    cr_expect(strstr(sk_last_error(), "NaN"), "%s", sk_last_error());
    lat[5] = 0.0f;
    api_ok(sk_session_set_image_latent(s, lat, 48, 4, 6), "set");
    sk_st_file *emb;
    dt_ok(sk_st_open(LL2 "embeds.safetensors", &emb), "embeds");
    const sk_st_tensor *t = sk_st_find(emb, "context.0");
    float *ctx = dt_read(emb, "context.0", NULL);
    api_ok(sk_session_queue_prompt_embeds(s, ctx, t->shape[0], t->shape[1], 0, SK_SWITCH_DEFAULT,
                                          "context.0"), "queue");
    sk_step_info si;
    api_ok(sk_session_step(s, &si), "step");
    const float *l;
    int64_t n, f0;
    api_ok(sk_session_latents(s, &l, &n, &f0), "latents");
    cr_assert_eq(f0, 0);
    for (int i = 0; i < 48 * 24; i++) cr_assert_eq(l[i], lat[i], "frame 0 [%d]", i);
    cr_expect_eq(sk_session_set_image_latent(s, lat, 48, 4, 6), SK_E_INVALID_ARG);
    cr_expect(strstr(sk_last_error(), "after the first step"), "%s", sk_last_error());
    sk_session_close(&s);
    /* the re-noise sampler has no image path */
    s = api_session(e, "renoise");
    cr_expect_eq(sk_session_set_image_latent(s, lat, 48, 4, 6), SK_E_UNSUPPORTED);
    cr_expect(strstr(sk_last_error(), "unipc"), "%s", sk_last_error());
    sk_session_close(&s);
    free(ctx);
    sk_st_close(&emb);
    api_ok(sk_engine_close(&e), "engine close");
}

/* image-to-video and video-to-video on one session: refused in either order (the image would
 * replace the input's first frame), with a message naming the other call */
Test(i2v, api_image_and_video_input_refused)
{
    sk_engine_params ep = sk_engine_params_default();
    ep.dit = LL2 "dit_tiny.safetensors";
    ep.dit_config = LL2 "config.json";
    ep.vae = SK_SOURCE_DIR "/tests/fixtures/taehv/taehv_tiny_22.safetensors"; /* has an encoder */
    ep.device = "cpu";
    sk_engine *e = NULL;
    api_ok(sk_engine_open(&ep, &e), "engine");
    static float lat[48 * 4 * 6];
    for (int i = 0; i < 48 * 24; i++) lat[i] = 0.01f * (float)(i % 97) - 0.4f;
    sk_session_input_opts io = sk_session_input_opts_default();
    io.synthetic = 1;
    io.synthetic_frames = 8;
    sk_session *s = api_session(e, "unipc");
    api_ok(sk_session_set_image_latent(s, lat, 48, 4, 6), "set");
    cr_expect_eq(sk_session_attach_input(s, NULL, &io), SK_E_UNSUPPORTED, "%s", sk_last_error());
    cr_expect(strstr(sk_last_error(), "image latent"), "%s", sk_last_error());
    sk_session_close(&s);
    s = api_session(e, "unipc");
    api_ok(sk_session_attach_input(s, NULL, &io), "attach a synthetic input");
    cr_expect_eq(sk_session_set_image_latent(s, lat, 48, 4, 6), SK_E_UNSUPPORTED, "%s",
                 sk_last_error());
    cr_expect(strstr(sk_last_error(), "video input"), "%s", sk_last_error());
    sk_session_close(&s);
    api_ok(sk_engine_close(&e), "engine close");
}
