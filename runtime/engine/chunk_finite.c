/* chunk_finite.c - see chunk_finite.h. */
#include "runtime/engine/chunk_finite.h"

#include <string.h>

sk_status gen_finite_prepare(gen_finite *g, sk_backend *be)
{
    if (g->be == be && g->flag) return SK_OK;
    gen_finite_free(g);
    SK_TRY(be->ops->alloc(be, sizeof(int32_t), &g->flag));
    g->be = be;
    return be->ops->zero(be, g->flag, sizeof(int32_t));
}

sk_status gen_finite_check(gen_finite *g, const sk_tensor *x0, int64_t f0)
{
    sk_backend *be = x0->be;
    SK_CHECK(be, SK_E_INTERNAL, "NaN check: x0 has no backend");
    if (g->be != be) SK_TRY(gen_finite_prepare(g, be));
    SK_TRY(sk_op_flag_nonfinite(be, x0, g->flag));
    int32_t bad = 0;
    SK_TRY(be->ops->download(be, &bad, g->flag, sizeof bad));
    const int64_t n = x0->ndim > 0 ? x0->shape[0] : 1;
    SK_CHECK(!bad, SK_E_INVALID_ARG, "chunk at latent frames %lld..%lld: the DiT's output (x0) "
             "holds NaN or Inf, so the video would be black or garbage; stopping here (the "
             "frames before it are written). Likely causes: DiT weights too large for the "
             "activation dtype (--act-dtype), a NaN text embedding or noise input",
             (long long)f0, (long long)(f0 + n - 1));
    return SK_OK;
}

void gen_finite_free(gen_finite *g)
{
    if (g->be && g->flag) g->be->ops->free(g->be, g->flag);
    memset(g, 0, sizeof *g);
}
