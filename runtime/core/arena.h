/* arena.h - bump allocator over one backend buffer.
 *
 * sinkstream has three memory lifetimes: weights (model), stream state (KV
 * cache, decoder state), scratch (per chunk). Scratch comes from an arena that
 * is reset every step, so the chunk loop performs no allocation at all.
 * Tensors handed out are views (owns = 0) valid until the next reset/free.
 */
#ifndef SK_ARENA_H
#define SK_ARENA_H

#include "runtime/core/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    sk_backend *be;
    char *base;
    size_t cap, used, peak;
} sk_arena;

#define SK_ARENA_ALIGN 256

sk_status sk_arena_init(sk_arena *a, sk_backend *be, size_t cap);
void sk_arena_free(sk_arena *a);
/* A tensor view of the arena; fails with SK_E_OOM naming the sizes when full. */
sk_status sk_arena_tensor(sk_arena *a, sk_dtype dt, int ndim, const int64_t *shape, sk_tensor *out);
size_t sk_arena_mark(const sk_arena *a);
void sk_arena_reset_to(sk_arena *a, size_t mark);
void sk_arena_reset(sk_arena *a);

#ifdef __cplusplus
}
#endif
#endif
