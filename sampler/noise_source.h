/* noise_source.h - where a stream's Gaussian noise comes from.
 *
 * Two providers:
 *  - philox: the counter-based generator of runtime/core/noise.h through
 *    sk_op_noise. Initial noise of latent frame f is stream
 *    SK_NOISE_STREAM_INIT at frame f; the fresh noise drawn after denoising
 *    step s is stream SK_NOISE_STREAM_RENOISE(s) at the same absolute frame.
 *    Values therefore do not depend on the chunk size.
 *  - file (reference runs, DESIGN.md "reference-run interface"): a
 *    safetensors file with `noise` [F, C, H, W] and `renoise.{chunk}.{step}`
 *    [frames_in_chunk, C, H, W].
 * sk_noise_source_prepare() validates everything a run will read and sizes
 * the staging buffers, so the chunk loop allocates nothing.
 */
#ifndef SK_NOISE_SOURCE_H
#define SK_NOISE_SOURCE_H

#include <stdint.h>

#include "runtime/core/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sk_noise_source sk_noise_source;

sk_status sk_noise_source_philox(uint64_t seed, sk_noise_source **out);
sk_status sk_noise_source_file(const char *path, sk_noise_source **out);
void sk_noise_source_free(sk_noise_source **ns);
/* 1 for the file provider. */
int sk_noise_source_is_file(const sk_noise_source *ns);

/* Checks that a run of `frames` latent frames [C, H, W], chunks of `chunk`
 * frames and `steps` denoising steps can be served (file: every tensor
 * present with the right shape, a float dtype, finite values). */
sk_status sk_noise_source_prepare(sk_noise_source *ns, int64_t frames, int64_t C, int64_t H,
                                  int64_t W, int64_t chunk, int steps);

/* out [n, C, H, W] on be: initial noise of frames [frame0, frame0 + n). */
sk_status sk_noise_initial(sk_noise_source *ns, sk_tensor *out, int64_t frame0);
/* out [n, C, H, W]: fresh noise after denoising step `step` of chunk `chunk`
 * (which starts at frame0). */
sk_status sk_noise_renoise(sk_noise_source *ns, sk_tensor *out, int64_t frame0, int chunk,
                           int step);

#ifdef __cplusplus
}
#endif
#endif
