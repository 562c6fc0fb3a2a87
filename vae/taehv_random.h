/* taehv_random.h - a TAEHV (decoder and encoder) with seeded random weights, built in
 * memory (no file) for engines of random weights (`sinkstream bench --with-vae`). */
#ifndef SK_VAE_TAEHV_RANDOM_H
#define SK_VAE_TAEHV_RANDOM_H

#include <stdint.h>

#include "vae/taehv.h"

/* A TAEHV of the taew2_1 layer structure (z latent channels, patch 1, decoder widths nf,
 * encoder width 64; z = 48: taew2_2's, patch 2 with a pixel shuffle) with weights
 * normal(0, 1.2/sqrt(fan_in)) and biases normal(0, 0.05), loaded onto be. The decoder's
 * weights are drawn first (those of the decoder-only model this was before the encoder
 * was added for bench --with-input). */
sk_status sk_taehv_random(sk_backend *be, int z, const int nf[4], uint64_t seed,
                         sk_taehv **out);

#endif
