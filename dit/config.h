/* config.h - the causal Wan DiT's hyper-parameters.
 *
 * A config comes from one of three places, in this order of preference:
 *  1. a diffusers/Wan-style config.json (--dit-config),
 *  2. a JSON string under the key "config" in the safetensors __metadata__,
 *  3. the tensor shapes of the checkpoint (head_dim is then assumed to be
 *     128, as in every released Wan model; tiny test models must therefore
 *     ship a config).
 * Whatever was used is logged at info level with its source.
 */
#ifndef SK_DIT_CONFIG_H
#define SK_DIT_CONFIG_H

#include <stdint.h>

#include "runtime/io/safetensors.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int64_t dim;        /* D                                  */
    int64_t ffn_dim;    /* FFN hidden width                   */
    int64_t num_heads;  /* NH                                 */
    int64_t head_dim;   /* HD = D / NH                        */
    int64_t num_layers; /* transformer blocks                 */
    int64_t in_dim;     /* latent channels in                 */
    int64_t out_dim;    /* latent channels out                */
    int64_t text_dim;   /* text encoder width (4096 umT5-XXL) */
    int64_t freq_dim;   /* time sinusoid width (256)          */
    int64_t text_len;   /* text rows (512)                    */
    float eps;          /* every LayerNorm / RMSNorm          */
    int patch[3];       /* (t, h, w) = (1, 2, 2), the only one supported */
    double rope_theta;  /* 10000                              */
    char model_type[16];/* "t2v" (Wan2.1) or "ti2v" (Wan2.2-TI2V-5B, LongLive 2.0:
                           48 latent channels, a 16x16x4 VAE) */
} sk_dit_config;

/* Wan2.2-TI2V-5B (LongLive 2.0; spec-longlive2.md §1). */
sk_dit_config sk_dit_config_wan_ti2v_5b(void);

/* Pixels per latent row/column of the VAE this DiT's latents belong to: 16 for
 * the 48-channel Wan2.2 VAE (ti2v), 8 for the 16-channel Wan2.1 VAE. */
int sk_dit_vae_stride(const sk_dit_config *c);

/* Wan2.1-T2V-1.3B defaults (spec §1.1). */
sk_dit_config sk_dit_config_wan_1_3b(void);

/* Parses a JSON object. Accepts the Wan names (dim, ffn_dim, num_heads,
 * num_layers, in_dim, out_dim, text_dim, freq_dim, eps, patch_size, text_len,
 * head_dim, model_type) and the diffusers aliases (num_attention_heads, attention_head_dim,
 * in_channels, out_channels). Missing optional fields take the 1.3B defaults;
 * dim, num_heads (or head_dim) and num_layers are required. label names the
 * source in messages. Validates the result. */
sk_status sk_dit_config_from_json(const char *json, const char *label, sk_dit_config *out);
sk_status sk_dit_config_from_file(const char *path, sk_dit_config *out);

/* Infers the config from tensor shapes of an opened checkpoint (names may be
 * prefixed; see names.h). head_dim = 128, text_len = 512, eps = 1e-6. */
sk_status sk_dit_config_infer(const sk_st_file *f, sk_dit_config *out);

/* Checks internal consistency (dim % heads, head_dim even and a 3D RoPE split,
 * freq_dim even, positive sizes, patch (1,2,2)). label names the source. */
sk_status sk_dit_config_validate(const sk_dit_config *c, const char *label);

/* Info-level log line: "DiT config (from <source>): dim ..., heads ...". */
void sk_dit_config_log(const sk_dit_config *c, const char *source);

#ifdef __cplusplus
}
#endif
#endif
