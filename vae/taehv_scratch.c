/* taehv_scratch.c - plan/run scratch, the MemBlock forward and input staging
 * shared by the TAEHV decoder and encoder streams. */
#include <string.h>

#include "vae/taehv_internal.h"

static size_t align_up(size_t x) { return (x + SK_ARENA_ALIGN - 1) / SK_ARENA_ALIGN * SK_ARENA_ALIGN; }

void sk_taehv_scratch_plan(sk_taehv_scratch *sc)
{
    memset(sc, 0, sizeof *sc);
    sc->plan = 1;
}

sk_status sk_taehv_scratch_alloc(sk_taehv_scratch *sc, sk_arena *arena, sk_backend *be)
{
    size_t c0 = align_up(sc->pp_cap[0]), c1 = align_up(sc->pp_cap[1]);
    size_t total = c0 + c1 + align_up(sc->peak) + SK_ARENA_ALIGN;
    SK_TRY(sk_arena_init(arena, be, total));
    sc->plan = 0;
    sc->arena = arena;
    int64_t n0 = (int64_t)(c0 ? c0 : SK_ARENA_ALIGN), n1 = (int64_t)(c1 ? c1 : SK_ARENA_ALIGN);
    SK_TRY(sk_arena_tensor(arena, SK_DTYPE_U8, 1, &n0, &sc->pp[0]));
    SK_TRY(sk_arena_tensor(arena, SK_DTYPE_U8, 1, &n1, &sc->pp[1]));
    sc->pp_cap[0] = (size_t)n0;
    sc->pp_cap[1] = (size_t)n1;
    sc->used = sk_arena_mark(arena); /* the bump region starts here */
    return SK_OK;
}

void sk_taehv_scratch_begin(sk_taehv_scratch *sc)
{
    if (sc->plan) {
        sc->used = 0;
        return;
    }
    sk_arena_reset_to(sc->arena, sc->used);
}

sk_status sk_taehv_tmp(sk_taehv_scratch *sc, sk_backend *be, sk_dtype dt, int ndim,
                       const int64_t *shape, sk_tensor *out)
{
    if (!sc->plan) return sk_arena_tensor(sc->arena, dt, ndim, shape, out);
    sk_tensor t = sk_tensor_desc(dt, ndim, shape);
    t.be = be;
    size_t off = align_up(sc->used);
    sc->used = off + sk_tensor_nbytes(&t);
    if (sc->used > sc->peak) sc->peak = sc->used;
    *out = t;
    return SK_OK;
}

sk_status sk_taehv_pp(sk_taehv_scratch *sc, int i, sk_backend *be, sk_dtype dt, int ndim,
                      const int64_t *shape, sk_tensor *out)
{
    sk_tensor t = sk_tensor_desc(dt, ndim, shape);
    t.be = be;
    size_t bytes = sk_tensor_nbytes(&t);
    if (sc->plan) {
        if (bytes > sc->pp_cap[i]) sc->pp_cap[i] = bytes;
    } else {
        char s[96];
        SK_CHECK(bytes <= sc->pp_cap[i], SK_E_INTERNAL,
                 "taehv: activation %s needs %zu bytes, ping-pong buffer %d holds %zu; "
                 "the scratch plan and the forward disagree (a bug in sinkstream)",
                 sk_shape_str(&t, s, sizeof s), bytes, i, sc->pp_cap[i]);
        t.data = sc->pp[i].data;
    }
    *out = t;
    return SK_OK;
}

size_t sk_taehv_mark(const sk_taehv_scratch *sc)
{
    return sc->plan ? sc->used : sk_arena_mark(sc->arena);
}

void sk_taehv_reset_to(sk_taehv_scratch *sc, size_t mark)
{
    if (sc->plan) sc->used = mark;
    else sk_arena_reset_to(sc->arena, mark);
}

size_t sk_taehv_scratch_total(const sk_taehv_scratch *sc)
{
    return sc->arena ? sc->arena->cap : 0;
}

sk_status sk_taehv_memblock_fwd(sk_taehv_scratch *sc, sk_backend *be,
                                const sk_taehv_memblock *mb, const sk_tensor *x,
                                sk_tensor *state, sk_tensor *y)
{
    const int64_t n = x->shape[0], c = x->shape[1], h = x->shape[2], w = x->shape[3];
    const sk_dtype dt = x->dtype;
    size_t mark = sk_taehv_mark(sc);
    int64_t s1[4], s2[4];
    sk_taehv_shape4(s1, n, c, h, w);
    sk_taehv_shape4(s2, n, 2 * c, h, w);
    sk_tensor past, cat, t1;
    SK_TRY(sk_taehv_tmp(sc, be, dt, 4, s1, &past));
    SK_TRY(sk_taehv_tmp(sc, be, dt, 4, s2, &cat));
    SK_TRY(sk_taehv_tmp(sc, be, dt, 4, s1, &t1));
    if (!sc->plan) {
        /* past = [state, x[0 .. n-2]]: the block's own input one step earlier */
        sk_tensor p0 = sk_tensor_rows(&past, 0, 1);
        SK_TRY(sk_tensor_copy(&p0, state));
        if (n > 1) {
            sk_tensor pr = sk_tensor_rows(&past, 1, n - 1), xr = sk_tensor_rows(x, 0, n - 1);
            SK_TRY(sk_tensor_copy(&pr, &xr));
        }
        sk_tensor xl = sk_tensor_rows(x, n - 1, 1);
        SK_TRY(sk_tensor_copy(state, &xl));
    }
    /* concat order: x first, then past */
    SK_TAEHV_OP(sc, sk_op_concat_channels(be, &cat, x, &past));
    SK_TAEHV_OP(sc, sk_op_conv2d(be, &t1, &cat, &mb->w0, &mb->b0, 1, 1));
    SK_TAEHV_OP(sc, sk_op_act(be, &t1, &t1, SK_ACT_RELU));
    /* past is dead after the concat: reuse its memory for the second conv */
    SK_TAEHV_OP(sc, sk_op_conv2d(be, &past, &t1, &mb->w2, &mb->b2, 1, 1));
    SK_TAEHV_OP(sc, sk_op_act(be, &past, &past, SK_ACT_RELU));
    SK_TAEHV_OP(sc, sk_op_conv2d(be, y, &past, &mb->w4, &mb->b4, 1, 1));
    /* skip is the identity (n_in == n_out in every Wan TAEHV MemBlock) */
    SK_TAEHV_OP(sc, sk_op_axpby(be, y, 1.0f, y, 1.0f, x));
    SK_TAEHV_OP(sc, sk_op_act(be, y, y, SK_ACT_RELU));
    sk_taehv_reset_to(sc, mark);
    return SK_OK;
}

sk_status sk_taehv_input(sk_taehv_scratch *sc, sk_backend *be, const sk_tensor *in,
                         sk_tensor *out)
{
    const sk_dtype act = be->act_dtype;
    SK_CHECK(sk_dtype_is_float(in->dtype), SK_E_DTYPE,
             "taehv: input tensor has dtype %s; expected a float dtype (f32, f16, bf16)",
             sk_dtype_name(in->dtype));
    SK_CHECK(in->be == NULL || in->be == be, SK_E_INVALID_ARG,
             "taehv: input tensor lives on backend '%s' but the model is on '%s'; "
             "download it or pass a host tensor (be = NULL)", in->be->name, be->name);
    if (in->be == be && in->dtype == act) {
        *out = *in;
        out->owns = 0;
        return SK_OK;
    }
    sk_tensor staged = *in;
    if (in->be == NULL) {
        SK_TRY(sk_taehv_tmp(sc, be, in->dtype, in->ndim, in->shape, &staged));
        if (!sc->plan) {
            SK_CHECK(in->data != NULL, SK_E_INVALID_ARG, "taehv: input host tensor has no data");
            SK_TRY(sk_tensor_upload_raw(&staged, in->data, sk_tensor_nbytes(in)));
        }
        if (in->dtype == act) {
            *out = staged;
            return SK_OK;
        }
    }
    SK_TRY(sk_taehv_tmp(sc, be, act, in->ndim, in->shape, out));
    SK_TAEHV_OP(sc, sk_op_convert(be, out, &staged));
    return SK_OK;
}
