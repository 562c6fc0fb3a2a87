/* taehv_internal.h - TAEHV model layout and the helpers shared by the decoder
 * and encoder streams (not a public header). */
#ifndef SK_VAE_TAEHV_INTERNAL_H
#define SK_VAE_TAEHV_INTERNAL_H

#include "runtime/core/arena.h"
#include "vae/taehv.h"

/* MemBlock(C): conv.0 [C, 2C, 3, 3] + bias, conv.2 and conv.4 [C, C, 3, 3] + bias. */
typedef struct {
    sk_tensor w0, b0, w2, b2, w4, b4;
} sk_taehv_memblock;

/* Fixed temporal structure of the Wan TAEHV (spec A1): checked at load. */
#define SK_TAEHV_NMEM 9
static const int sk_taehv_tgrow_stride[3] = {1, 2, 2}; /* decoder.7, .13, .19 */
static const int sk_taehv_tpool_stride[3] = {2, 2, 1}; /* encoder.2, .7, .12  */

struct sk_taehv {
    sk_backend *be;
    sk_taehv_config cfg;
    /* decoder (indices = upstream decoder.N) */
    sk_tensor d1_w, d1_b;            /* conv z -> nf0                        */
    sk_taehv_memblock dmem[SK_TAEHV_NMEM]; /* decoder.3,4,5,9,10,11,15,16,17 */
    sk_tensor dgrow_w[3];            /* decoder.7/13/19.conv.weight (1x1)    */
    sk_tensor dstage_w[3];           /* decoder.8/14/20.weight (no bias)     */
    sk_tensor d22_w, d22_b;          /* conv nf3 -> 3 p^2                     */
    /* encoder (indices = upstream encoder.N) */
    sk_tensor e0_w, e0_b;            /* conv 3 p^2 -> E                       */
    sk_tensor epool_w[3];            /* encoder.2/7/12.conv.weight (1x1)     */
    sk_tensor edown_w[3];            /* encoder.3/8/13.weight, stride 2       */
    sk_taehv_memblock emem[SK_TAEHV_NMEM]; /* encoder.4,5,6,9,10,11,14,15,16 */
    sk_tensor e17_w, e17_b;          /* conv E -> z                           */
};

/* Scratch context. The same forward code runs twice: once in plan mode at
 * stream creation (no memory, no ops; it only measures the arena it needs)
 * and then for real, so the arena size can never drift from the code.
 * Two ping-pong buffers hold the running activation; everything else is
 * bump-allocated after them and released with mark/reset. */
typedef struct {
    int plan;
    sk_arena *arena;   /* run mode                                          */
    size_t pp_cap[2];  /* plan: max bytes requested; run: capacity          */
    sk_tensor pp[2];   /* run: the two buffers (1-D byte views)             */
    size_t used, peak; /* plan-mode bump counters (arena-compatible alignment) */
} sk_taehv_scratch;

/* Plan-mode ops are skipped. */
#define SK_TAEHV_OP(sc, expr)              \
    do {                                   \
        if (!(sc)->plan) SK_TRY(expr);     \
    } while (0)

void sk_taehv_scratch_plan(sk_taehv_scratch *sc);
/* Allocates the arena of a planned scratch (pp buffers + measured peak). */
sk_status sk_taehv_scratch_alloc(sk_taehv_scratch *sc, sk_arena *arena, sk_backend *be);
/* Resets to the state right after allocation (start of a push). */
void sk_taehv_scratch_begin(sk_taehv_scratch *sc);
/* A temporary from the bump region. */
sk_status sk_taehv_tmp(sk_taehv_scratch *sc, sk_backend *be, sk_dtype dt, int ndim,
                       const int64_t *shape, sk_tensor *out);
/* A view of ping-pong buffer i with the given shape. */
sk_status sk_taehv_pp(sk_taehv_scratch *sc, int i, sk_backend *be, sk_dtype dt, int ndim,
                      const int64_t *shape, sk_tensor *out);
size_t sk_taehv_mark(const sk_taehv_scratch *sc);
void sk_taehv_reset_to(sk_taehv_scratch *sc, size_t mark);
size_t sk_taehv_scratch_total(const sk_taehv_scratch *sc);

/* y [n,C,H,W] = MemBlock(x [n,C,H,W], past = [state, x[0..n-2]]); then
 * state = x[n-1]. y must not alias x. Temporaries from the bump region. */
sk_status sk_taehv_memblock_fwd(sk_taehv_scratch *sc, sk_backend *be,
                                const sk_taehv_memblock *mb, const sk_tensor *x,
                                sk_tensor *state, sk_tensor *y);

/* Brings an input tensor (host or backend, any float dtype) onto the backend
 * in its act dtype: a temporary when a copy/convert is needed, else a view. */
sk_status sk_taehv_input(sk_taehv_scratch *sc, sk_backend *be, const sk_tensor *in,
                         sk_tensor *out);

/* A 4-D shape helper. */
static inline void sk_taehv_shape4(int64_t *s, int64_t a, int64_t b, int64_t c, int64_t d)
{
    s[0] = a; s[1] = b; s[2] = c; s[3] = d;
}

#endif
