/* umt5.h - the umT5 encoder as Wan uses it (models_t5_umt5-xxl-enc-bf16).
 *
 * Architecture (docs spec-taehv-umt5.md B2): x = E[ids] (no scaling); per layer
 *   x += o(attn(rms1(x)))  with scores q.k (NO 1/sqrt(d)) + bias_l(i, j),
 *   x += fc2(gelu_tanh(gate(rms2(x))) * fc1(rms2(x)));
 * out = rms_final(x). RMSNorm is T5's (no mean, eps 1e-6); every layer has
 * its own relative-position table [num_buckets, num_heads] (umT5: shared_pos
 * False), bidirectional buckets, max distance 128.
 *
 * Weights: safetensors under Wan's names (blocks.i.attn.q.weight, ...) or the
 * Hugging Face UMT5EncoderModel names (encoder.block.i.layer.0.SelfAttention.q.
 * weight, ...), with optional "model." / "_orig_mod." prefixes; one table in
 * umt5.c holds every alias. Binding is strict: a missing, mis-shaped or
 * unexpected tensor is an error naming it. The config comes from a config.json
 * (Wan or HF keys) or the file's __metadata__ when given, else from shapes;
 * values that shapes determine must agree with it.
 *
 * Wan runs the encoder on the padded sequence with the padded keys masked and
 * zeroes the rows past the real length; masked keys contribute exactly nothing,
 * so this runs only the real tokens (EOS included) and zero-fills the rest.
 */
#ifndef SK_TEXT_UMT5_H
#define SK_TEXT_UMT5_H

#include <stdint.h>

#include "runtime/core/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int64_t vocab, dim, dim_attn, dim_ffn, num_heads, num_layers;
    int64_t num_buckets, max_distance;
    int64_t text_len; /* default sequence length (Wan: 512) from config/metadata */
    float eps;        /* RMSNorm epsilon, 1e-6 */
} sk_umt5_config;

typedef struct sk_umt5 sk_umt5;

/* Loads and binds weights onto backend be from path: a .safetensors file, a
 * Hugging Face model.safetensors.index.json (sharded), or a folder holding
 * either (Diffusers text_encoder/, whose config.json is then used when
 * config_json is NULL). config_json may be NULL. Files stay mapped while the
 * model lives (the CPU backend uses the mapping directly when aligned). */
sk_status sk_umt5_load(sk_backend *be, const char *path, const char *config_json, sk_umt5 **out);
void sk_umt5_free(sk_umt5 **m); /* accepts NULL; NULLs the pointer */

const sk_umt5_config *sk_umt5_config_of(const sk_umt5 *m);
/* One line "umT5: 24 layers, dim 4096, ... (config from shapes)" for logs. */
const char *sk_umt5_describe(const sk_umt5 *m);

/* Encodes n real token ids (EOS included, 1 <= n <= rows) into out, a host
 * f32 buffer of rows*dim values: rows [0, n) the encoder output, rows [n, rows)
 * zero (Wan's context layout [text_len, dim]). */
sk_status sk_umt5_encode(sk_umt5 *m, const int32_t *ids, int n, int rows, float *out);

/* Bidirectional T5 relative-position bucket of rel = key_pos - query_pos. */
int sk_umt5_bucket(int64_t rel, int64_t num_buckets, int64_t max_distance);

#ifdef __cplusplus
}
#endif
#endif
