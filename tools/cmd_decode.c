/* cmd_decode.c - `sinkstream decode` (latents -> video through TAEHV) and
 * `sinkstream encode` (frames -> latents).
 *
 * decode streams the latents through the exact chunked decoder
 * (vae/taehv.h): --stream-chunk latent frames per push, frames written to
 * every output as each chunk comes out, so memory is bounded by the chunk
 * and not by the clip. The frames are the same whatever the chunk.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/core/backend.h"
#include "runtime/engine/device.h"
#include "runtime/core/log.h"
#include "runtime/output/output.h"
#include "runtime/core/progress.h"
#include "runtime/io/safetensors.h"
#include "runtime/sinkstream.h"
#include "tools/cli_device.h"
#include "tools/cli_opts.h"
#include "tools/out_opts.h"
#include "tools/commands.h"
#include "vae/taehv.h"

#define DEVICE_CHOICES SK_CLI_DEVICE_CHOICES
#define VARIANT_CHOICES "auto|taew2_1|taew2_2"
static const sk_taehv_variant k_variants[] = {SK_TAEHV_AUTO, SK_TAEHV_W2_1, SK_TAEHV_W2_2};

static int fail(const char *prog, sk_status st)
{
    fprintf(stderr, "%s: error: %s (%s)\n", prog, sk_error_message(), sk_status_name(st));
    return 1;
}

#define DTYPE_CHOICES "bf16|f32"

/* TAEHV activations: always f32 on the CPU reference; on CUDA bf16 (fast) or
 * f32 (the parity mode, slower) */
static sk_status make_backend(int device, int dtype, sk_backend **be)
{
    return device == 0 ? sk_backend_create("cpu", SK_DTYPE_F32, be)
                       : sk_backend_create("cuda", dtype == 1 ? SK_DTYPE_F32 : SK_DTYPE_BF16, be);
}

/* Reads tensor `name` [F, C, H, W] (or [1, F, C, H, W]) of path as f32. */
static sk_status read_4d(const char *path, const char *name, const char *what, float **data,
                         int64_t shape[4])
{
    sk_st_file *f = NULL;
    SK_TRY(sk_st_open(path, &f));
    const sk_st_tensor *t = sk_st_find(f, name);
    sk_status st = SK_OK;
    if (!t) {
        st = SK_ERR(SK_E_FORMAT, "'%s' has no tensor '%s' (expected %s; %d tensors, first '%s')",
                    path, name, what, f->n_tensors, f->n_tensors ? f->tensors[0].name : "none");
    } else if (!(t->ndim == 4 || (t->ndim == 5 && t->shape[0] == 1))) {
        char s[96];
        st = SK_ERR(SK_E_SHAPE, "'%s': tensor '%s' has shape %s; expected %s", path, name,
                    sk_shape_str_n(t->ndim, t->shape, s, sizeof s), what);
    } else {
        const sk_st_tensor *info = NULL;
        st = sk_st_read_f32(f, name, 0, NULL, data, &info);
        for (int i = 0; st == SK_OK && i < 4; i++) shape[i] = t->shape[t->ndim - 4 + i];
        /* issue 15 #7, #8: an empty tensor or NaN/Inf input gave a confusing error or a
         * black video with exit 0 */
        if (st == SK_OK && shape[0] == 0)
            st = SK_ERR(SK_E_SHAPE, "'%s': tensor '%s' has 0 frames (shape [0, ...]); nothing "
                        "to do", path, name);
        const int64_t per = st == SK_OK ? shape[1] * shape[2] * shape[3] : 0;
        const int64_t n = st == SK_OK ? shape[0] * per : 0;
        for (int64_t i = 0; st == SK_OK && i < n; i++)
            if (!isfinite((*data)[i]))
                st = SK_ERR(SK_E_FORMAT, "'%s': tensor '%s' holds a non-finite value (%s) at "
                            "frame %lld (flat index %lld); expected finite %s", path, name,
                            isnan((*data)[i]) ? "NaN" : "Inf", (long long)(i / (per ? per : 1)),
                            (long long)i, what);
        if (st != SK_OK) {
            free(*data);
            *data = NULL;
        }
    }
    sk_st_close(&f);
    return st;
}

/* ------------------------------------------------------------------ decode */

typedef struct {
    const char *vae, *latents, *latents_name, *rgb_out, *output, *frames_dir;
    int chunk, device, dtype, variant, fps;
    sk_out_opts out; /* --fps --codec --preset --crf --bitrate ... -y */
} decode_opts;

int sk_cmd_decode(int argc, char **argv)
{
    decode_opts o = {.latents_name = "latents", .chunk = 3, .fps = 16, .device = SK_DEV_AUTO,
                     .out = SK_OUT_OPTS_INIT};
    const sk_opt opts[] = {
        SK_OPT_HEADING("Input"),
        {"vae", 0, SK_OPT_STRING, &o.vae, .help = "TAEHV checkpoint (taew2_1 / taew2_2 .safetensors)",
         .metavar = "FILE", .env = "SK_VAE"},
        {"latents", 'l', SK_OPT_STRING, &o.latents, .help = "safetensors with the latents [F, C, H, W]",
         .metavar = "FILE"},
        {"latents-name", 0, SK_OPT_STRING, &o.latents_name, .help = "tensor name in --latents",
         .metavar = "NAME"},
        {"vae-variant", 0, SK_OPT_ENUM, &o.variant,
         .help = "force the TAEHV variant (auto: from the tensor shapes)", .choices = VARIANT_CHOICES},
        SK_OPT_HEADING("Decoding"),
        {"stream-chunk", 0, SK_OPT_INT, &o.chunk,
         .help = "latent frames per decoder step (exact at any size; 0: whole clip at once)",
         .metavar = "N", .lo = 0, .hi = 4096},
        {"device", 0, SK_OPT_ENUM, &o.device, .help = SK_CLI_DEVICE_HELP, .env = "SK_DEVICE",
         .choices = DEVICE_CHOICES},
        {"vae-dtype", 0, SK_OPT_ENUM, &o.dtype,
         .help = "CUDA activation dtype (the CPU always computes in f32)", .choices = DTYPE_CHOICES},
        {"dtype", 0, SK_OPT_ENUM, &o.dtype, .help = "the same as --vae-dtype (fp32 = f32)",
         .choices = "bf16|fp32"},
        SK_OPT_HEADING("Output (one or more)"),
        {"output", 'o', SK_OPT_STRING, &o.output, .help = "video file (.mp4/.mkv/.mov/.webm/.ts/.gif ...), rtmp:// / srt:// / udp:// URL or DIR/NAME.m3u8 (HLS)",
         .metavar = "FILE"},
        {"frames-dir", 0, SK_OPT_STRING, &o.frames_dir, .help = "write DIR/frame_000000.png, ...",
         .metavar = "DIR"},
        {"rgb-out", 0, SK_OPT_STRING, &o.rgb_out,
         .help = "safetensors with `frames` [T, 3, H, W] float32 in [0, 1]", .metavar = "FILE"},
        SK_OUT_OPTS_ENTRIES(o.out),
    };
    sk_cli cli = {"sinkstream decode", "--vae FILE --latents FILE [options]",
                  "Decode Wan latents [F, C, H, W] (normalized, as the DiT produces them) to\n"
                  "4F-3 RGB frames with the TAEHV tiny VAE, streaming --stream-chunk latents at\n"
                  "a time (exact: the same frames as a whole-clip decode).",
                  opts, (int)(sizeof opts / sizeof opts[0]), 0, 0};
    sk_cli_pos pos;
    int rc = sk_cli_parse(&cli, argc, argv, &pos);
    if (rc >= 0) return rc;
    const char *prog = cli.prog;

    /* ---- validate everything before loading weights */
    if (!o.vae) return sk_cli_usage_error(&cli, "--vae FILE is required");
    if (!o.latents) return sk_cli_usage_error(&cli, "--latents FILE is required");
    if (!o.output && !o.frames_dir && !o.rgb_out)
        return sk_cli_usage_error(&cli, "no output: give -o FILE, --frames-dir DIR and/or --rgb-out FILE");
    if ((rc = sk_out_opts_finish(&cli, &o.out, &o.fps)) >= 0) return rc;
    if ((rc = sk_out_opts_check_overwrite(&cli, &o.out, "-o", o.output)) >= 0) return rc;
    if (o.output) {
        sk_output_kind k;
        if (sk_output_detect_kind(o.output, &k) != SK_OK ||
            (k != SK_OUTPUT_VIDEO_FILE && !sk_output_kind_is_live(k)))
            return sk_cli_usage_error(&cli, "-o '%s': expected a video file (.mp4/.mkv/.mov/.webm/"
                                      ".ts/.gif ...), an rtmp:// / srt:// / udp:// URL or an "
                                      "HLS playlist DIR/NAME.m3u8 (use --frames-dir / "
                                      "--rgb-out for frames)", o.output);
        if (!sk_output_kind_available(k))
            return sk_cli_usage_error(&cli, "-o '%s': this build has no FFmpeg; use --frames-dir or "
                                      "--rgb-out", o.output);
    }
    if (o.frames_dir) {
        if (!sk_output_kind_available(SK_OUTPUT_PNG_DIR))
            return sk_cli_usage_error(&cli, "--frames-dir: this build has no PNG writer");
    }

    float *lat = NULL;
    int64_t ls[4];
    sk_engine *e = NULL;
    sk_session *ses = NULL;
    sk_status st = read_4d(o.latents, o.latents_name, "latents [F, C, H, W]", &lat, ls);
    if (st != SK_OK) goto done;
    /* a decode-only engine: the VAE alone; TAEHV activations f32 on the CPU reference, on
     * CUDA bf16 (fast) or f32 (the parity mode, slower) */
    static const char *const variants[] = {"auto", "taew2_1", "taew2_2"};
    sk_engine_params ep = sk_engine_params_default();
    ep.vae = o.vae;
    ep.vae_variant = variants[o.variant];
    ep.device = sk_cli_device_api_name(o.device); /* auto / cpu-ref: the engine's too */
    sk_cli_device_resolve(prog, &o.device);
    ep.act_dtype = o.device == SK_DEV_CUDA && o.dtype == 1 ? "f32" : "auto";
    SK_TRY_GOTO(st, sk_engine_open(&ep, &e), done);
    sk_engine_info info;
    SK_TRY_GOTO(st, sk_engine_get_info(e, &info), done);
    if (ls[1] != info.latent_channels) {
        st = SK_ERR(SK_E_SHAPE,
                    "'%s': latents have %lld channels but '%s' decodes %lld-channel latents "
                    "(taew2_1: Wan 2.1 / 2.2 A14B, 16; taew2_2: Wan 2.2 TI2V-5B, 48). Latents in "
                    "NCTHW order must be transposed to [F, C, H, W]",
                    o.latents, (long long)ls[1], o.vae, (long long)info.latent_channels);
        goto done;
    }
    const int64_t F = ls[0], T = F > 0 ? 4 * F - 3 : 0;
    int chunk = o.chunk <= 0 || o.chunk > F ? (int)F : o.chunk;
    sk_session_params sp = sk_session_params_default();
    sp.frames = F;
    sp.chunk = chunk;
    sp.latent_h = ls[2];
    sp.latent_w = ls[3];
    sp.fps = o.fps;
    sp.fps_num = o.out.fps_num;
    sp.fps_den = o.out.fps_den;
    SK_TRY_GOTO(st, sk_session_create(e, &sp, &ses), done);
    sk_output_opts oo = {0}, po = {.kind = "png"}, ro = {.kind = "rgb"};
    sk_out_opts_to_api(&o.out, &oo);
    if (o.output) SK_TRY_GOTO(st, sk_session_attach_output(ses, o.output, &oo, NULL), done);
    if (o.frames_dir) SK_TRY_GOTO(st, sk_session_attach_output(ses, o.frames_dir, &po, NULL), done);
    if (o.rgb_out) SK_TRY_GOTO(st, sk_session_attach_output(ses, o.rgb_out, &ro, NULL), done);
    const uint8_t *none;
    int64_t n0, H = 0, W = 0;
    SK_TRY_GOTO(st, sk_session_frames(ses, &none, &n0, &H, &W), done);
    SK_LOGI("decode: %lld latents %lldx%lld -> %lld frames %lldx%lld, chunk %d, %s",
            (long long)F, (long long)ls[2], (long long)ls[3], (long long)T, (long long)W,
            (long long)H, chunk, info.device);
    sk_progress pr;
    sk_progress_start(&pr, "frames", T);
    int64_t made = 0;
    for (int64_t f0 = 0; f0 < F; f0 += chunk) {
        const int64_t n = F - f0 < chunk ? F - f0 : chunk;
        sk_step_info si;
        SK_TRY_GOTO(st, sk_session_push_latents(ses, lat + (size_t)f0 * (size_t)(ls[1] * ls[2] *
                                                                                 ls[3]),
                                                n, &si), done);
        made += si.video_frames;
        sk_progress_update(&pr, made);
    }
    SK_TRY_GOTO(st, sk_session_finish(ses, NULL), done);
    sk_progress_finish(&pr);
done:
    sk_session_close(&ses); /* finalises the outputs when decoding failed */
    sk_engine_close(&e);
    free(lat);
    return st == SK_OK ? 0 : fail(prog, st);
}

/* ------------------------------------------------------------------ encode */

typedef struct {
    const char *vae, *frames, *frames_name, *latents_out;
    int chunk, device, dtype, variant;
} encode_opts;

int sk_cmd_encode(int argc, char **argv)
{
    encode_opts o = {.frames_name = "frames", .chunk = 12, .device = SK_DEV_AUTO};
    const sk_opt opts[] = {
        {"vae", 0, SK_OPT_STRING, &o.vae, .help = "TAEHV checkpoint with its encoder",
         .metavar = "FILE", .env = "SK_VAE"},
        {"frames", 0, SK_OPT_STRING, &o.frames,
         .help = "safetensors with RGB frames [T, 3, H, W] in [0, 1]", .metavar = "FILE"},
        {"frames-name", 0, SK_OPT_STRING, &o.frames_name, .help = "tensor name in --frames",
         .metavar = "NAME"},
        {"latents-out", 0, SK_OPT_STRING, &o.latents_out,
         .help = "writes `latents` [ceil(T/4), C, H/8p, W/8p] float32", .metavar = "FILE"},
        {"vae-variant", 0, SK_OPT_ENUM, &o.variant,
         .help = "force the TAEHV variant (auto: from the tensor shapes)", .choices = VARIANT_CHOICES},
        {"stream-chunk", 0, SK_OPT_INT, &o.chunk,
         .help = "frames per encoder step (exact at any size; 0: all at once)", .metavar = "N",
         .lo = 0, .hi = 65536},
        {"device", 0, SK_OPT_ENUM, &o.device, .help = SK_CLI_DEVICE_HELP, .env = "SK_DEVICE",
         .choices = DEVICE_CHOICES},
        {"vae-dtype", 0, SK_OPT_ENUM, &o.dtype,
         .help = "CUDA activation dtype (the CPU always computes in f32)", .choices = DTYPE_CHOICES},
        {"dtype", 0, SK_OPT_ENUM, &o.dtype, .help = "the same as --vae-dtype (fp32 = f32)",
         .choices = "bf16|fp32"},
    };
    sk_cli cli = {"sinkstream encode", "--vae FILE --frames FILE --latents-out FILE [options]",
                  "Encode RGB frames to Wan latents with the TAEHV encoder (4 frames per latent;\n"
                  "a last incomplete group is padded by repeating the last frame).",
                  opts, (int)(sizeof opts / sizeof opts[0]), 0, 0};
    sk_cli_pos pos;
    int rc = sk_cli_parse(&cli, argc, argv, &pos);
    if (rc >= 0) return rc;
    const char *prog = cli.prog;
    if (!o.vae) return sk_cli_usage_error(&cli, "--vae FILE is required");
    if (!o.frames) return sk_cli_usage_error(&cli, "--frames FILE is required");
    if (!o.latents_out) return sk_cli_usage_error(&cli, "--latents-out FILE is required");

    float *fr = NULL, *lat = NULL;
    int64_t fs[4], ls[4];
    sk_backend *be = NULL;
    sk_taehv *m = NULL;
    sk_st_writer *w = NULL;
    sk_status st = read_4d(o.frames, o.frames_name, "frames [T, 3, H, W]", &fr, fs);
    if (st != SK_OK) goto done;
    if (fs[1] != 3) {
        st = SK_ERR(SK_E_SHAPE, "'%s': frames have %lld channels; expected RGB [T, 3, H, W]",
                    o.frames, (long long)fs[1]);
        goto done;
    }
    sk_cli_device_resolve(prog, &o.device);
    SK_TRY_GOTO(st, make_backend(o.device, o.dtype, &be), done);
    sk_taehv_load_opts lo = sk_taehv_load_opts_default();
    lo.variant = k_variants[o.variant];
    lo.need_encoder = 1;
    lo.need_decoder = 0;
    SK_TRY_GOTO(st, sk_taehv_load(be, o.vae, &lo, &m), done);
    sk_tensor ft = sk_tensor_desc(SK_DTYPE_F32, 4, fs);
    ft.data = fr;
    double t0 = sk_progress_now();
    SK_TRY_GOTO(st, sk_taehv_encode_video(m, &ft, o.chunk, &lat, ls), done);
    SK_LOGI("encode: %lld frames %lldx%lld -> latents [%lld, %lld, %lld, %lld] in %.2f s",
            (long long)fs[0], (long long)fs[3], (long long)fs[2], (long long)ls[0],
            (long long)ls[1], (long long)ls[2], (long long)ls[3], sk_progress_now() - t0);
    SK_TRY_GOTO(st, sk_st_writer_create(&w), done);
    SK_TRY_GOTO(st, sk_st_writer_add_f32(w, "latents", SK_DTYPE_F32, 4, ls, lat), done);
    SK_TRY_GOTO(st, sk_st_writer_meta(w, "vae", o.vae), done);
    SK_TRY_GOTO(st, sk_st_writer_save(w, o.latents_out), done);
done:
    sk_st_writer_free(&w);
    sk_taehv_free(&m);
    sk_backend_free_(&be);
    free(fr);
    free(lat);
    return st == SK_OK ? 0 : fail(prog, st);
}
