/* names.h - THE table of the causal Wan DiT's tensor names and shapes.
 *
 * Every name the loader accepts, and every prefix it strips, lives here and
 * nowhere else. Names are the upstream Wan ones (spec §4.1). A checkpoint may
 * carry wrapper prefixes; sk_dit_strip_name() removes them:
 *   leading:  "generator." / "generator_ema." (trainer dicts flattened),
 *             "module.", "model." (WanDiffusionWrapper)
 *   anywhere: "_orig_mod." (torch.compile), "_fsdp_wrapped_module.",
 *             "_checkpoint_wrapped_module." (FSDP / activation checkpointing)
 */
#ifndef SK_DIT_NAMES_H
#define SK_DIT_NAMES_H

#include <stddef.h>
#include <stdint.h>

#include "dit/config.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Global (non-block) tensors. */
typedef enum {
    SK_DW_PATCH_W = 0, SK_DW_PATCH_B,
    SK_DW_TEXT0_W, SK_DW_TEXT0_B, SK_DW_TEXT2_W, SK_DW_TEXT2_B,
    SK_DW_TIME0_W, SK_DW_TIME0_B, SK_DW_TIME2_W, SK_DW_TIME2_B,
    SK_DW_TPROJ_W, SK_DW_TPROJ_B,
    SK_DW_HEAD_MOD, SK_DW_HEAD_W, SK_DW_HEAD_B,
    SK_DW_COUNT_
} sk_dit_global_id;

/* Per-block tensors ("blocks.{i}." + suffix). */
typedef enum {
    SK_DB_MOD = 0,
    SK_DB_SA_Q_W, SK_DB_SA_Q_B, SK_DB_SA_K_W, SK_DB_SA_K_B,
    SK_DB_SA_V_W, SK_DB_SA_V_B, SK_DB_SA_O_W, SK_DB_SA_O_B,
    SK_DB_SA_NQ, SK_DB_SA_NK,
    SK_DB_N3_W, SK_DB_N3_B,
    SK_DB_CA_Q_W, SK_DB_CA_Q_B, SK_DB_CA_K_W, SK_DB_CA_K_B,
    SK_DB_CA_V_W, SK_DB_CA_V_B, SK_DB_CA_O_W, SK_DB_CA_O_B,
    SK_DB_CA_NQ, SK_DB_CA_NK,
    SK_DB_FFN0_W, SK_DB_FFN0_B, SK_DB_FFN2_W, SK_DB_FFN2_B,
    SK_DB_COUNT_
} sk_dit_block_id;

/* Is the tensor a matrix of a linear layer (stored in the weight dtype) or a
 * vector-like parameter (bias, norm weight, modulation: kept in the backend's
 * activation dtype)? */
int sk_dit_global_is_matrix(sk_dit_global_id id);
int sk_dit_block_is_matrix(sk_dit_block_id id);

const char *sk_dit_global_name(sk_dit_global_id id);
const char *sk_dit_block_suffix(sk_dit_block_id id);

/* Expected shape for a config; returns ndim. */
int sk_dit_global_shape(const sk_dit_config *c, sk_dit_global_id id, int64_t shape[6]);
int sk_dit_block_shape(const sk_dit_config *c, sk_dit_block_id id, int64_t shape[6]);

/* Writes the canonical (unprefixed) name of `name` into buf: strips the
 * wrapper prefixes listed above. Returns 0 if buf was too small. */
int sk_dit_strip_name(const char *name, char *buf, size_t cap);

/* Parses a canonical name: returns 1 and sets *global (>= 0) or *block and
 * *layer for a known name, 0 otherwise. */
int sk_dit_parse_name(const char *canonical, int *global, int *block, int *layer);

#ifdef __cplusplus
}
#endif
#endif
