/* model.h - a loaded causal Wan DiT: config + weights on a backend.
 *
 * Loading is strict: every expected tensor (names.h) must be present with the
 * expected shape and a float dtype, no unexpected tensor may be present, and
 * no weight may hold NaN or Inf. Errors name the tensor, the file, and the
 * expected vs actual value.
 *
 * The model is immutable after sk_dit_load and may serve several streams
 * (each stream owns its own KV cache and scratch; see runtime/stream/stream.h).
 */
#ifndef SK_DIT_MODEL_H
#define SK_DIT_MODEL_H

#include "dit/config.h"
#include "dit/names.h"
#include "runtime/core/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Pass as wdtype to keep linear-layer matrices in the dtype the file stores
 * (f64 files become f32). */
#define SK_DIT_WDTYPE_AS_STORED SK_DTYPE_COUNT_

typedef struct {
    /* indexed by sk_dit_block_id; SK_DB_MOD is viewed [6, D] */
    sk_tensor w[SK_DB_COUNT_];
    /* FP8 models (wdtype SK_DTYPE_F8_E4M3): the block linears' matrices are e4m3
     * and wscale[id] holds their f32 scale per output row [N] (runtime/core/fp8.h);
     * empty (data NULL) otherwise and for non-matrix ids */
    sk_tensor wscale[SK_DB_COUNT_];
} sk_dit_block;

typedef struct sk_dit_model {
    sk_dit_config cfg;
    sk_backend *be;
    /* indexed by sk_dit_global_id. PATCH_W is viewed [D, C_in*4] (the GEMM
     * form of the (1,2,2) conv); HEAD_MOD is viewed [2, D]. */
    sk_tensor g[SK_DW_COUNT_];
    sk_dit_block *blocks;   /* [num_layers]; only [block_first, block_last) hold weights */
    int64_t block_first, block_last; /* all blocks unless loaded for a pipeline stage */
    size_t weight_bytes;    /* on the backend */
    char *path;
    int fp8;                /* block linears in e4m3 with row scales (blocks[].wscale) */
    int fp8_attention;      /* fp8 models: self-attention in e4m3 too (SK_FP8_ATTENTION=1;
                             * off by default until its cuDNN graph is measured on a GPU) */
} sk_dit_model;

/* 1 when SK_FP8_ATTENTION asks fp8 models to run self-attention in e4m3 too */
int sk_dit_fp8_attention_requested(void);

/* Loads a DiT from a safetensors file onto be.
 *  cfg: the config to use, or NULL to take it from the file's metadata
 *       ("config" key, JSON) or else infer it from tensor shapes.
 *  wdtype: dtype for linear-layer matrices (f32/f16/bf16), or
 *       SK_DIT_WDTYPE_AS_STORED. Vector parameters (biases, norm weights,
 *       modulation tables) use the backend's activation dtype.
 *       SK_DTYPE_F8_E4M3 (--dtype fp8; the backend must have the FP8 ops):
 *       the ten block linears are quantized once here, row-wise with one f32
 *       scale per output row (fp8.h); the small projections (text, time,
 *       time projection, patch embedding, head) stay in the activation dtype,
 *       as LongLive 2.0 keeps them. */
sk_status sk_dit_load(const char *path, const sk_dit_config *cfg, sk_backend *be, sk_dtype wdtype,
                      sk_dit_model **out);
/* The same for a pipeline stage (runtime/stream/pp_stream.h): every tensor of the
 * file is checked as above, but only the global tensors and blocks
 * [first, last) go to the backend (0 <= first <= last <= num_layers; last
 * -1 means num_layers; first == last loads the global tensors alone). */
sk_status sk_dit_load_blocks(const char *path, const sk_dit_config *cfg, sk_backend *be,
                             sk_dtype wdtype, int first, int last, sk_dit_model **out);
/* A model with random weights for benchmarks and GPU checks (no file):
 * matrices uniform in +-1/sqrt(fan_in), biases and modulation tables small,
 * norm weights near 1; deterministic for a seed. */
sk_status sk_dit_random(const sk_dit_config *cfg, sk_backend *be, sk_dtype wdtype, uint64_t seed,
                        sk_dit_model **out);
/* Blocks [first, last) of the same random model (the same values as
 * sk_dit_random with that seed; last -1 means num_layers). */
sk_status sk_dit_random_blocks(const sk_dit_config *cfg, sk_backend *be, sk_dtype wdtype,
                               uint64_t seed, int first, int last, sk_dit_model **out);
/* Accepts NULL and *m == NULL; NULLs the pointer. */
void sk_dit_free(sk_dit_model **m);

#ifdef __cplusplus
}
#endif
#endif
