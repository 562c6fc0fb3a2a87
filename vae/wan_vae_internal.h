/* wan_vae_internal.h - the loaded Wan2.2 VAE encoder (private to vae/wan_vae_*.c). */
#ifndef SK_VAE_WAN_VAE_INTERNAL_H
#define SK_VAE_WAN_VAE_INTERNAL_H

#include "vae/wan_vae.h"

/* ResidualBlock: RMS(g0) SiLU conv(w0) RMS(g1) SiLU conv(w1) + shortcut. Convs are
 * the last temporal tap of the causal 3x3x3 kernels: [Co, Ci, 3, 3]. */
typedef struct {
    int64_t cin, cout;
    sk_tensor g0, w0, b0, g1, w1, b1;
    int has_sc;                 /* 1x1 shortcut conv when cin != cout */
    sk_tensor ws, bs;           /* [cout, cin, 1, 1] */
} wv_res;

/* Down_ResidualBlock: residual blocks, then (down) pad (0,1,0,1) + stride-2 conv;
 * plus the AvgDown3D shortcut of the block input, for one frame a fixed linear
 * map of the 2x2-unshuffled input: avg [cout, cin*fs*fs, 1, 1] (none: identity). */
typedef struct {
    int64_t cin, cout;
    wv_res res[SK_WANVAE_MAX_RES];
    int down;
    sk_tensor dw, db;           /* resample.1: [cout, cout, 3, 3] */
    int fs;                     /* shortcut spatial factor (1 or 2) */
    int avg_identity;
    sk_tensor avg;
} wv_level;

struct sk_wanvae_enc {
    sk_backend *be;
    sk_backend *own_be;         /* made here when the caller's lacked an op */
    sk_wanvae_config cfg;
    sk_tensor conv1_w, conv1_b; /* [dim, 12, 3, 3], input channels in pixel_unshuffle order */
    wv_level lv[SK_WANVAE_MAX_LEVELS];
    wv_res mid0, mid1;
    sk_tensor attn_g, wq, bq, wk, bk, wv, bv, wp, bp; /* middle.1: gamma [C], [C, C] linears */
    sk_tensor head_g, head_w, head_b;                  /* head.0 gamma, head.2 conv [2z, C, 3, 3] */
    sk_tensor out_w, out_b;     /* conv1 (mu rows) with the normalisation folded in: [z, 2z, 1, 1] */
};

sk_status sk_wanvae_forward(const sk_wanvae_enc *m, const sk_tensor *rgb, sk_tensor *lat);

#endif
