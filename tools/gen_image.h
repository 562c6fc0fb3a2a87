/* gen_image.h - `sinkstream generate --image / --image-latent` (LongLive 2.0
 * image-to-video, docs/INPUTS.md): checks the flags against the model before
 * any weight loads, reads and preprocesses the picture as upstream does
 * (vae/image_prep.h) and encodes it to the latent frame 0 of the stream with
 * the Wan2.2 VAE encoder (vae/wan_vae.h) or taew2_2's encoder (--image-encoder
 * tae), on the CPU, before the DiT loads. */
#ifndef SK_TOOLS_GEN_IMAGE_H
#define SK_TOOLS_GEN_IMAGE_H

#include <stdint.h>

#include "dit/config.h"
#include "tools/cli_opts.h"

typedef struct {
    const char *image;        /* --image FILE (PNG / JPEG)                     */
    const char *image_latent; /* --image-latent FILE ('image_latent' [1,C,H,W]) */
    const char *vae_encoder;  /* --vae-encoder FILE (Wan2.2 VAE encoder)        */
    int encoder;              /* --image-encoder: 0 wan, 1 tae                  */
    float *lat;               /* [c, h, w] once prepared (owned)                */
    int64_t c, h, w;
} gen_image;

#define GEN_IMAGE_ENCODERS "wan|tae"

/* Validates the I2V flags for the DiT pc (before weights load), then (unless
 * print_config) makes g->lat. unipc / pipelined: the run's sampler and
 * --gpus/--pp-stages; vae: the TAEHV file (--image-encoder tae encodes with
 * it). -1 to go on, else the exit code (the message printed). */
int gen_image_prepare(const sk_cli *cli, gen_image *g, const sk_dit_config *pc, int unipc,
                      int pipelined, int64_t lat_h, int64_t lat_w, int64_t vae_stride,
                      const char *vae, int print_config);
void gen_image_free(gen_image *g);

#endif
