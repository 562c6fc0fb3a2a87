/* random_model.h - models of random weights for engines opened with
 * sk_engine_params.random_model (benchmarks, tests): a DiT of a named shape
 * and optionally a TAEHV decoder, made directly on the device from a seed. */
#ifndef SK_ENGINE_RANDOM_MODEL_H
#define SK_ENGINE_RANDOM_MODEL_H

#include <stdint.h>

#include "dit/model.h"
#include "vae/taehv.h"

/* The shape named (sk_random_model_name lists them). SK_E_INVALID_ARG naming the choices
 * when there is none of that name. */
sk_status sk_random_model_config(const char *name, sk_dit_config *out);

/* The DiT of that shape on be (linear weights in wdtype), seeded by seed. */
sk_status sk_random_model_dit(const char *name, sk_backend *be, sk_dtype wdtype, uint64_t seed,
                              sk_dit_model **out);

/* A taew2_1-layout decoder for latents of channels channels on be. */
sk_status sk_random_model_vae(sk_backend *be, int channels, uint64_t seed, sk_taehv **out);

#endif
