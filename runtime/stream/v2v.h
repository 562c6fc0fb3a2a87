/* v2v.h - video-to-video: where a chunk's denoising starts when it comes from an
 * input video (SDEdit / StreamDiffusionV2), docs/INPUTS.md.
 *
 * Strength S in [0, 1] picks the sampler step a chunk starts from. With N steps
 * (renoise: the --steps list; unipc: --num-steps):
 *   steps run  r = round(S * N) (halves away from zero), at least 1
 *   start      k = N - r, so k in [0, N - 1]
 * k = 0 (S = 1, or any S with round(S * N) = N) is text-to-video: the chunk starts
 * from the noise alone and the input is not used (bit for bit the T2V run).
 * For k >= 1 the chunk's first model input is the encoded input latent x_in noised
 * to that step's sigma with the chunk's initial noise eps (the Philox stream the
 * T2V run would use for the same frames):
 *   x_k = (1 - sigma_k) x_in + sigma_k eps
 * and steps k .. N-1 run as they would in a T2V chunk (renoise: the same sigmas and
 * fresh-noise streams by absolute step index; unipc: a fresh solver over the tail
 * sigma_k .. sigma_N, so its first update is order 1), then the clean pass.
 */
#ifndef SK_STREAM_V2V_H
#define SK_STREAM_V2V_H

#include "runtime/core/backend.h"
#include "sampler/unipc.h"

#ifdef __cplusplus
extern "C" {
#endif

/* k = N - max(1, round(S N)); S must lie in [0, 1] (sk_v2v_check_strength). */
int sk_v2v_start_index(int n_steps, double strength);
/* SK_E_INVALID_ARG naming flag (e.g. "--strength") unless 0 <= s <= 1 and finite. */
sk_status sk_v2v_check_strength(double s, const char *flag);
/* x = (1 - sigma) x_in + sigma noise; x may alias noise. */
sk_status sk_v2v_noise_input(sk_backend *be, sk_tensor *x, const sk_tensor *x_in,
                             const sk_tensor *noise, float sigma);
/* The solver table of steps k .. n-1 of tb: sigma/t shifted by k, n - k steps. */
sk_status sk_v2v_unipc_tail(const sk_unipc_table *tb, int k, sk_unipc_table *out);

#ifdef __cplusplus
}
#endif
#endif
