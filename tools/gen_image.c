/* gen_image.c - see gen_image.h. */
#include "tools/gen_image.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/core/backend.h"
#include "runtime/core/log.h"
#include "runtime/core/progress.h"
#include "runtime/cpu/cpu_fast.h"
#include "runtime/io/safetensors.h"
#include "vae/image_prep.h"
#include "vae/taehv.h"
#include "vae/wan_vae.h"

#ifdef SK_HAVE_STB
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wshadow"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wunused-but-set-variable"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#pragma GCC diagnostic ignored "-Wmisleading-indentation"
#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_PNG
#define STBI_ONLY_JPEG
#define STBI_FAILURE_USERMSG
#include <stb/stb_image.h>
#pragma GCC diagnostic pop
#endif

void gen_image_free(gen_image *g)
{
    free(g->lat);
    g->lat = NULL;
}

/* --image-latent: 'image_latent' [1, C, H, W] (or [C, H, W]) of the run's size. */
static int read_latent(const sk_cli *cli, gen_image *g, int64_t C, int64_t H, int64_t W)
{
    sk_st_file *f = NULL;
    if (sk_st_open(g->image_latent, &f) != SK_OK)
        return sk_cli_usage_error(cli, "--image-latent: %s", sk_error_message());
    const sk_st_tensor *t = sk_st_find(f, "image_latent");
    const int ok = t && ((t->ndim == 4 && t->shape[0] == 1 && t->shape[1] == C &&
                          t->shape[2] == H && t->shape[3] == W) ||
                         (t->ndim == 3 && t->shape[0] == C && t->shape[1] == H &&
                          t->shape[2] == W));
    if (!ok) {
        char s[96] = "absent";
        if (t) sk_shape_str_n(t->ndim, t->shape, s, sizeof s);
        sk_st_close(&f);
        return sk_cli_usage_error(cli, "--image-latent '%s': expected a tensor 'image_latent' "
                                  "[1, %lld, %lld, %lld] (the run's latent channels and size), "
                                  "got %s", g->image_latent, (long long)C, (long long)H,
                                  (long long)W, s);
    }
    float *v = NULL;
    sk_status st = sk_st_read_f32(f, "image_latent", 0, NULL, &v, NULL);
    sk_st_close(&f);
    if (st != SK_OK) return sk_cli_usage_error(cli, "--image-latent: %s", sk_error_message());
    g->lat = v;
    return -1;
}

/* The taew2_2 file has an encoder (encoder.0.weight), else the message. */
static int tae_has_encoder(const char *path)
{
    sk_st_file *f = NULL;
    int ok = sk_st_open(path, &f) == SK_OK && sk_st_find(f, "encoder.0.weight");
    sk_st_close(&f);
    return ok;
}

static sk_status encode(gen_image *g, const float *img, int64_t H, int64_t W, const char *vae,
                        int64_t C)
{
    sk_backend *be = NULL;
    SK_TRY(sk_backend_cpu_fast_create(&be));
    sk_status st = SK_OK;
    const double t0 = sk_progress_now();
    if (g->encoder == 0) {
        sk_wanvae_enc *m = NULL;
        st = sk_wanvae_enc_load(be, g->vae_encoder, &m);
        if (st == SK_OK) st = sk_wanvae_encode_image(m, img, H, W, g->lat);
        sk_wanvae_enc_free(&m);
    } else {
        sk_taehv *m = NULL;
        sk_taehv_load_opts lo = sk_taehv_load_opts_default();
        lo.need_encoder = 1;
        lo.need_decoder = 0;
        st = sk_taehv_load(be, vae, &lo, &m);
        float *rgb01 = NULL, *lat = NULL;
        int64_t ls[4];
        if (st == SK_OK) {
            rgb01 = malloc((size_t)(3 * H * W) * sizeof *rgb01);
            if (!rgb01) st = SK_ERR(SK_E_OOM, "--image: out of host memory");
        }
        if (st == SK_OK) {
            for (int64_t i = 0; i < 3 * H * W; i++) rgb01[i] = (img[i] + 1.0f) * 0.5f;
            int64_t fs[4] = {1, 3, H, W};
            sk_tensor fr = sk_tensor_desc(SK_DTYPE_F32, 4, fs);
            fr.data = rgb01;
            /* one frame: the encoder pads its group of 4 with copies (upstream encode_video) */
            st = sk_taehv_encode_video(m, &fr, 0, &lat, ls);
        }
        if (st == SK_OK && (ls[0] != 1 || ls[1] != C || ls[2] * 16 != H || ls[3] * 16 != W))
            st = SK_ERR(SK_E_SHAPE, "--image-encoder tae: '%s' made a latent [%lld, %lld, %lld, "
                        "%lld]; expected [1, %lld, %lld, %lld] (taew2_2)", vae, (long long)ls[0],
                        (long long)ls[1], (long long)ls[2], (long long)ls[3], (long long)C,
                        (long long)H / 16, (long long)W / 16);
        if (st == SK_OK) memcpy(g->lat, lat, (size_t)(C * H * W / 256) * sizeof *lat);
        free(rgb01);
        free(lat);
        sk_taehv_free(&m);
    }
    if (st == SK_OK)
        SK_LOGI("encoded the image with %s in %.1f s (CPU)",
                g->encoder == 0 ? "the Wan2.2 VAE encoder" : "taew2_2's encoder",
                sk_progress_now() - t0);
    sk_backend_free_(&be);
    return st;
}

int gen_image_prepare(const sk_cli *cli, gen_image *g, const sk_dit_config *pc, int unipc,
                      int pipelined, int64_t lat_h, int64_t lat_w, int64_t vae_stride,
                      const char *vae, int print_config)
{
    if (!g->image && !g->image_latent) return -1;
    const char *flag = g->image ? "--image" : "--image-latent";
    if (g->image && g->image_latent)
        return sk_cli_usage_error(cli, "give --image or --image-latent, not both");
    if (pc->in_dim != 48 || strcmp(pc->model_type, "ti2v") != 0)
        return sk_cli_usage_error(cli, "%s: image-to-video needs a LongLive 2.0 model (a "
                                  "48-channel Wan2.2-TI2V DiT, model.json family longlive2); "
                                  "this DiT is a %lld-channel '%s' model with no image path",
                                  flag, (long long)pc->in_dim,
                                  pc->model_type[0] ? pc->model_type : "t2v");
    if (!unipc)
        return sk_cli_usage_error(cli, "%s runs LongLive 2.0's loop: --sampler unipc (the "
                                  "image is clamped into chunk 0 at every solver step)", flag);
    if (pipelined)
        return sk_cli_usage_error(cli, "%s is not supported with --gpus / --pp-stages yet", flag);
    const int64_t C = pc->in_dim;
    if (g->image_latent) return print_config ? -1 : read_latent(cli, g, C, lat_h, lat_w);

    /* --image: the encoder's weights first (a missing file fails before anything loads) */
    if (g->encoder == 0) {
        if (!g->vae_encoder)
            return sk_cli_usage_error(cli, "--image needs the Wan2.2 VAE encoder: --vae-encoder "
                                      "FILE (tools/convert_checkpoint.py --wan-vae "
                                      "Wan2.2_VAE.pth writes wan2.2_vae_encoder.safetensors "
                                      "into the model directory), or --image-encoder tae "
                                      "(taew2_2's encoder, approximate)");
        FILE *f = fopen(g->vae_encoder, "rb");
        if (!f)
            return sk_cli_usage_error(cli, "--vae-encoder '%s': cannot open (%s)",
                                      g->vae_encoder, strerror(errno));
        fclose(f);
    } else {
        if (!vae)
            return sk_cli_usage_error(cli, "--image-encoder tae needs --vae FILE: taew2_2 with "
                                      "its encoder (taew2_2.pth converted whole)");
        if (!tae_has_encoder(vae))
            return sk_cli_usage_error(cli, "--image-encoder tae: the TAEHV file '%s' has no "
                                      "encoder weights (encoder.*): convert taew2_2.pth with "
                                      "its encoder, or use --image-encoder wan", vae);
    }
#ifndef SK_HAVE_STB
    (void)vae_stride;
    return sk_cli_usage_error(cli, "--image: this build has no stb_image (libstb-dev) to read "
                              "PNG/JPEG; give --image-latent FILE instead");
#else
    int w = 0, h = 0, n = 0;
    FILE *f = fopen(g->image, "rb");
    if (!f)
        return sk_cli_usage_error(cli, "--image '%s': cannot open (%s)", g->image,
                                  strerror(errno));
    unsigned char *px = stbi_load_from_file(f, &w, &h, &n, 3);
    fclose(f);
    if (!px)
        return sk_cli_usage_error(cli, "--image '%s': not a picture this build reads (PNG or "
                                  "JPEG): %s", g->image, stbi_failure_reason());
    const int64_t H = lat_h * vae_stride, W = lat_w * vae_stride;
    SK_LOGI("--image '%s': %dx%d, resized to %lldx%lld (antialiased bilinear, no crop, as "
            "LongLive 2.0)", g->image, w, h, (long long)W, (long long)H);
    if (print_config) {
        stbi_image_free(px);
        return -1;
    }
    float *img = malloc((size_t)(3 * H * W) * sizeof *img);
    g->lat = malloc((size_t)(C * lat_h * lat_w) * sizeof *g->lat);
    sk_status st = img && g->lat ? SK_OK : SK_ERR(SK_E_OOM, "--image: out of host memory");
    if (st == SK_OK) st = sk_image_prep(px, w, h, W, H, g->encoder == 0, img);
    stbi_image_free(px);
    if (st == SK_OK) st = encode(g, img, H, W, vae, C);
    free(img);
    if (st != SK_OK) {
        gen_image_free(g);
        fprintf(stderr, "sinkstream generate: %s: %s\n", flag, sk_error_message());
        return 1;
    }
    return -1;
#endif
}
