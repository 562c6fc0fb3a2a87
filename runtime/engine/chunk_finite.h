/* chunk_finite.h - the per-chunk NaN/Inf check of every session (generate, serve, the binding)
 * (issue 15 #7: NaN latents or a DiT whose output overflows made a black or
 * NaN video with exit 0). Each chunk's x0 is checked on its backend into a
 * device-side int32 flag (sk_op_flag_nonfinite: one kernel, no sync); the
 * flag is read once per chunk, before the chunk's frames are written.
 */
#ifndef SK_ENGINE_CHUNK_FINITE_H
#define SK_ENGINE_CHUNK_FINITE_H

#include <stdint.h>

#include "runtime/core/backend.h"

typedef struct {
    sk_backend *be; /* the backend the flag lives on (x0's) */
    void *flag;     /* int32 in be's memory */
} gen_finite;

/* Allocates the flag on be now (a session does it when it is made: allocated
 * lazily at the first chunk, it was the one cudaMalloc that bench found in
 * every measured chunk loop, issue 19). */
sk_status gen_finite_prepare(gen_finite *g, sk_backend *be);
/* Checks x0 of the chunk starting at latent frame f0; an error names the
 * chunk and its frames. The flag is allocated on x0's backend at first use
 * unless gen_finite_prepare made it there. */
sk_status gen_finite_check(gen_finite *g, const sk_tensor *x0, int64_t f0);
void gen_finite_free(gen_finite *g);

#endif
