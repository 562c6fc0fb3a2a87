/* wan_vae.h - the encoder of the Wan2.2 VAE (Wan2.2_VAE.pth: z 48, 16x16
 * spatial compression) for ONE image, as LongLive 2.0's I2V encodes its
 * conditioning frame (docs/INPUTS.md, ../shared/docs/spec-longlive2.md §5).
 *
 * Upstream: Wan-Video/Wan2.2 wan/modules/vae2_2.py, WanVAE_.encode on a
 * [1, 3, 1, H, W] clip. With one frame every causal 3-D convolution sees two
 * zero frames and the frame itself, so only its last temporal tap is used
 * (a 2-D convolution with weight[:, :, -1]); the temporal downsamplings
 * (Resample time_conv) only act from the second chunk on and are unused; the
 * avg-shortcut (AvgDown3D) pads the missing frame with zeros, so its channels
 * from the pad average zeros. The rest: patchify 2x2, RMS norms over channels
 * (F.normalize * sqrt(C) * gamma), SiLU, residual blocks, stride-2 convs after
 * a (0,1,0,1) zero pad, one single-head attention block in the middle, the
 * head conv, the 1x1 conv to (mu, logvar), then latent = (mu - mean) / std
 * with the 48 constants of LongLive 2.0's WanVAEWrapper (= Wan2_2_VAE's).
 *
 * Ops: conv2d, pixel_unshuffle, rmsnorm, act, axpby, linear, attention and the
 * layout ops transpose and pad2d. sk_wanvae_enc_load picks the CPU backend
 * itself when the given one lacks an op (sk_backend_has_vae_ops).
 */
#ifndef SK_VAE_WAN_VAE_H
#define SK_VAE_WAN_VAE_H

#include <stdint.h>

#include "runtime/core/backend.h"
#include "runtime/io/safetensors.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SK_WANVAE_MAX_LEVELS 6
#define SK_WANVAE_MAX_RES 4

typedef struct {
    int dim;                          /* encoder base width (Wan2.2: 160)             */
    int z;                            /* latent channels (48)                         */
    int levels;                       /* down blocks (4: widths 160, 320, 640, 640)   */
    int width[SK_WANVAE_MAX_LEVELS];  /* output width of each level                   */
    int down[SK_WANVAE_MAX_LEVELS];   /* level ends in a stride-2 resample            */
    int t_down[SK_WANVAE_MAX_LEVELS]; /* ... which is temporal too (downsample3d)     */
    int n_res;                        /* residual blocks per level (2)                */
    int space_factor;                 /* 2 * 2^(levels with down) = 16                */
} sk_wanvae_config;

typedef struct sk_wanvae_enc sk_wanvae_enc;

/* Loads the encoder from a safetensors file with upstream names
 * (encoder.conv1.*, encoder.downsamples.*, encoder.middle.*, encoder.head.*,
 * conv1.*; decoder.* and conv2.* are ignored when present). The layout is
 * detected from shapes; a missing, mis-shaped or unexpected encoder tensor is
 * an error naming it. be NULL or a backend without the VAE ops: a CPU backend
 * of the encoder's own is made (and logged). */
sk_status sk_wanvae_enc_load(sk_backend *be, const char *path, sk_wanvae_enc **out);
sk_status sk_wanvae_enc_load_st(sk_backend *be, const sk_st_file *f, sk_wanvae_enc **out);
void sk_wanvae_enc_free(sk_wanvae_enc **m); /* accepts NULL and *m == NULL */

const sk_wanvae_config *sk_wanvae_enc_config(const sk_wanvae_enc *m);
/* "Wan2.2 VAE encoder (dim 160, widths 160/160/320/640/640, z 48, 16x)" */
const char *sk_wanvae_enc_describe(const sk_wanvae_enc *m, char *buf, size_t cap);

/* rgb: host f32 [3, H, W] in [-1, 1], H and W multiples of space_factor.
 * latent: host f32 [z, H/16, W/16], normalised ((mu - mean) / std), the
 * latent frame the DiT sees. */
sk_status sk_wanvae_encode_image(const sk_wanvae_enc *m, const float *rgb, int64_t H, int64_t W,
                                 float *latent);

/* The 48 per-channel constants (utils/wan_5b_wrapper.py WanVAEWrapper). */
extern const float sk_wanvae22_mean[48];
extern const float sk_wanvae22_std[48];

#ifdef __cplusplus
}
#endif
#endif
