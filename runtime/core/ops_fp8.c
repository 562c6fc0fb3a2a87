/* ops_fp8.c - the checked entry points of the FP8 ops (backend.h, fp8.h).
 *
 * The same validation as ops.c's: tensors on the backend, exact shapes,
 * activations in be->act_dtype, quantized data e4m3, scales f32.
 */
#include "runtime/core/backend.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static sk_status chk(const char *op, const char *arg, const sk_backend *be, const sk_tensor *t,
                     int ndim, sk_dtype dt)
{
    char b[96];
    SK_CHECK(t, SK_E_INVALID_ARG, "op %s: tensor %s is NULL", op, arg);
    SK_CHECK(t->be == be, SK_E_INVALID_ARG, "op %s: tensor %s lives on another backend than "
             "'%s'; allocate it on the same backend", op, arg, be->name ? be->name : "?");
    SK_CHECK(t->data || sk_tensor_numel(t) == 0, SK_E_INVALID_ARG,
             "op %s: tensor %s has no memory (data is NULL)", op, arg);
    SK_CHECK(t->ndim == ndim, SK_E_SHAPE, "op %s: %s must be %dD, got %s", op, arg, ndim,
             sk_shape_str(t, b, sizeof b));
    SK_CHECK(t->dtype == dt, SK_E_DTYPE, "op %s: %s is %s; expected %s", op, arg,
             sk_dtype_name(t->dtype), sk_dtype_name(dt));
    return SK_OK;
}

static sk_status chk_len(const char *op, const char *an, const sk_tensor *a, int i,
                         const char *bn, const sk_tensor *b, int j)
{
    char sa[96], sb[96];
    SK_CHECK(a->shape[i] == b->shape[j], SK_E_SHAPE, "op %s: %s %s and %s %s disagree (dim %d "
             "vs dim %d: %lld vs %lld)", op, an, sk_shape_str(a, sa, sizeof sa), bn,
             sk_shape_str(b, sb, sizeof sb), i, j, (long long)a->shape[i], (long long)b->shape[j]);
    return SK_OK;
}

int sk_backend_has_fp8(const sk_backend *be)
{
    return be && be->ops && be->ops->quantize_rows && be->ops->linear_fp8;
}

#define NO_FP8(op)                                                                             \
    SK_CHECK(sk_backend_has_fp8(be), SK_E_UNSUPPORTED, "op %s: the %s backend has no FP8 "      \
             "ops; use --dtype bf16 there", op, be->name ? be->name : "?")

/* the shapes of both row quantizations: x [M, K] act dtype, q [M, K] e4m3, s [M] f32 */
static sk_status chk_quantize(const char *op, const sk_backend *be, const sk_tensor *q,
                              const sk_tensor *s, const sk_tensor *x)
{
    SK_TRY(chk(op, "x", be, x, 2, be->act_dtype));
    SK_TRY(chk(op, "q", be, q, 2, SK_DTYPE_F8_E4M3));
    SK_TRY(chk(op, "s", be, s, 1, SK_DTYPE_F32));
    SK_TRY(chk_len(op, "q", q, 0, "x", x, 0));
    SK_TRY(chk_len(op, "q", q, 1, "x", x, 1));
    return chk_len(op, "s", s, 0, "x", x, 0);
}

sk_status sk_op_quantize_rows(sk_backend *be, sk_tensor *q, sk_tensor *s, const sk_tensor *x)
{
    const char *op = "quantize_rows";
    SK_CHECK(be, SK_E_INVALID_ARG, "op %s: backend is NULL", op);
    NO_FP8(op);
    SK_TRY(chk_quantize(op, be, q, s, x));
    return be->ops->quantize_rows(be, q, s, x);
}

/* opt-in until the fused kernel is measured on a GPU (tests/gpu/check_fp8.c checks it) */
static int fused_norm_wanted(void)
{
    const char *e = getenv("SK_FP8_FUSED_NORM");
    return e && (strcmp(e, "1") == 0 || strcmp(e, "on") == 0);
}

sk_status sk_op_modulate_fp8(sk_backend *be, sk_tensor *y, sk_tensor *q, sk_tensor *s,
                             const sk_tensor *x, const sk_tensor *mod, int i_shift, int i_scale,
                             int64_t rows_per_group, int ln, float eps)
{
    const char *op = "modulate_fp8";
    SK_CHECK(be, SK_E_INVALID_ARG, "op %s: backend is NULL", op);
    NO_FP8(op);
    SK_TRY(sk_op_modulate_check(be, op, y, x, mod, i_shift, i_scale, rows_per_group, eps));
    SK_TRY(chk_quantize(op, be, q, s, y));
    if (be->ops->modulate_fp8 && fused_norm_wanted())
        return be->ops->modulate_fp8(be, y, q, s, x, mod, i_shift, i_scale, rows_per_group, ln,
                                     eps);
    SK_CHECK(be->ops->modulate, SK_E_UNSUPPORTED, "op %s: the %s backend has no modulate", op,
             be->name ? be->name : "?");
    SK_TRY(be->ops->modulate(be, y, x, mod, i_shift, i_scale, rows_per_group, ln, eps));
    return be->ops->quantize_rows(be, q, s, y);
}

sk_status sk_op_layernorm_fp8(sk_backend *be, sk_tensor *y, sk_tensor *q, sk_tensor *s,
                              const sk_tensor *x, const sk_tensor *w, const sk_tensor *b, float eps)
{
    const char *op = "layernorm_fp8";
    SK_CHECK(be, SK_E_INVALID_ARG, "op %s: backend is NULL", op);
    NO_FP8(op);
    SK_TRY(sk_op_layernorm_check(be, op, y, x, w, b, eps));
    SK_TRY(chk_quantize(op, be, q, s, y));
    if (be->ops->layernorm_fp8 && fused_norm_wanted())
        return be->ops->layernorm_fp8(be, y, q, s, x, w, b, eps);
    SK_CHECK(be->ops->layernorm, SK_E_UNSUPPORTED, "op %s: the %s backend has no layernorm", op,
             be->name ? be->name : "?");
    SK_TRY(be->ops->layernorm(be, y, x, w, b, eps));
    return be->ops->quantize_rows(be, q, s, y);
}

sk_status sk_op_quantize_rows_pow2(sk_backend *be, sk_tensor *q, sk_tensor *s, const sk_tensor *x)
{
    const char *op = "quantize_rows_pow2";
    SK_CHECK(be, SK_E_INVALID_ARG, "op %s: backend is NULL", op);
    SK_CHECK(sk_backend_has_fp8_kv(be), SK_E_UNSUPPORTED, "op %s: the %s backend has no FP8 KV "
             "cache ops (SK_FP8_KV=0 keeps the cache in the act dtype)", op,
             be->name ? be->name : "?");
    SK_TRY(chk_quantize(op, be, q, s, x));
    return be->ops->quantize_rows_pow2(be, q, s, x);
}

int sk_backend_has_fp8_kv(const sk_backend *be)
{
    return sk_backend_has_attention_fp8(be) && be->ops->quantize_rows_pow2;
}

sk_status sk_op_linear_fp8(sk_backend *be, sk_tensor *y, const sk_tensor *q, const sk_tensor *sx,
                           const sk_tensor *w, const sk_tensor *sw, const sk_tensor *b,
                           sk_act act)
{
    const char *op = "linear_fp8";
    SK_CHECK(be, SK_E_INVALID_ARG, "op %s: backend is NULL", op);
    NO_FP8(op);
    SK_TRY(chk(op, "y", be, y, 2, be->act_dtype));
    SK_TRY(chk(op, "q", be, q, 2, SK_DTYPE_F8_E4M3));
    SK_TRY(chk(op, "sx", be, sx, 1, SK_DTYPE_F32));
    SK_TRY(chk(op, "w", be, w, 2, SK_DTYPE_F8_E4M3));
    SK_TRY(chk(op, "sw", be, sw, 1, SK_DTYPE_F32));
    SK_TRY(chk_len(op, "q", q, 1, "w", w, 1));   /* K */
    SK_TRY(chk_len(op, "y", y, 0, "q", q, 0));   /* M */
    SK_TRY(chk_len(op, "y", y, 1, "w", w, 0));   /* N */
    SK_TRY(chk_len(op, "sx", sx, 0, "q", q, 0));
    SK_TRY(chk_len(op, "sw", sw, 0, "w", w, 0));
    if (b) {
        SK_TRY(chk(op, "b", be, b, 1, be->act_dtype));
        SK_TRY(chk_len(op, "b", b, 0, "w", w, 0));
    }
    SK_CHECK((int)act >= 0 && act < SK_ACT_COUNT_, SK_E_INVALID_ARG,
             "op %s: unknown activation %d", op, (int)act);
    return be->ops->linear_fp8(be, y, q, sx, w, sw, b, act);
}

int sk_backend_has_attention_fp8(const sk_backend *be)
{
    return be && be->ops && be->ops->attention_fp8;
}

sk_status sk_op_attention_fp8(sk_backend *be, sk_tensor *out, const sk_tensor *q,
                              const sk_kv_range *ranges, int nranges, float scale)
{
    const char *op = "attention_fp8";
    SK_CHECK(be, SK_E_INVALID_ARG, "op %s: backend is NULL", op);
    SK_CHECK(sk_backend_has_attention_fp8(be), SK_E_UNSUPPORTED, "op %s: the %s backend has no "
             "FP8 attention; use --dtype bf16 there", op, be->name ? be->name : "?");
    SK_TRY(chk(op, "q", be, q, 3, be->act_dtype));
    SK_TRY(chk(op, "out", be, out, 2, be->act_dtype));
    SK_TRY(chk_len(op, "out", out, 0, "q", q, 0));
    SK_CHECK(out->shape[1] == q->shape[1] * q->shape[2], SK_E_SHAPE,
             "op %s: out has %lld columns, q has NH*HD = %lld", op, (long long)out->shape[1],
             (long long)(q->shape[1] * q->shape[2]));
    SK_CHECK(ranges && nranges > 0, SK_E_INVALID_ARG,
             "op %s: no key/value ranges given (nranges = %d)", op, nranges);
    int64_t nk = 0;
    for (int r = 0; r < nranges; r++) {
        const sk_kv_range *kr = &ranges[r];
        SK_CHECK(kr->k && kr->v, SK_E_INVALID_ARG, "op %s: range %d has a NULL k or v", op, r);
        /* the FP8 KV cache: e4m3 keys and values with one scale per scale_rows rows */
        const sk_dtype kdt = kr->k->dtype == SK_DTYPE_F8_E4M3 ? SK_DTYPE_F8_E4M3 : be->act_dtype;
        SK_CHECK(r == 0 || (ranges[0].k->dtype == SK_DTYPE_F8_E4M3) == (kdt == SK_DTYPE_F8_E4M3),
                 SK_E_DTYPE, "op %s: range %d is %s, range 0 %s: one call reads one cache", op, r,
                 sk_dtype_name(kr->k->dtype), sk_dtype_name(ranges[0].k->dtype));
        SK_TRY(chk(op, "ranges[].k", be, kr->k, 3, kdt));
        SK_TRY(chk(op, "ranges[].v", be, kr->v, 3, kdt));
        if (kdt == SK_DTYPE_F8_E4M3) {
            const int64_t R = kr->scale_rows;
            SK_CHECK(R > 0 && kr->k->shape[0] % R == 0, SK_E_SHAPE, "op %s: range %d: e4m3 "
                     "keys of %lld rows with a scale every %lld rows", op, r,
                     (long long)kr->k->shape[0], (long long)R);
            SK_TRY(chk(op, "ranges[].k_scale", be, kr->k_scale, 1, SK_DTYPE_F32));
            SK_TRY(chk(op, "ranges[].v_scale", be, kr->v_scale, 1, SK_DTYPE_F32));
            SK_CHECK(kr->k_scale->shape[0] == kr->k->shape[0] / R &&
                         kr->v_scale->shape[0] == kr->k->shape[0] / R, SK_E_SHAPE,
                     "op %s: range %d: %lld key rows need %lld scales (k_scale %lld, v_scale "
                     "%lld)", op, r, (long long)kr->k->shape[0], (long long)(kr->k->shape[0] / R),
                     (long long)kr->k_scale->shape[0], (long long)kr->v_scale->shape[0]);
        }
        for (int d = 0; d < 3; d++) SK_TRY(chk_len(op, "ranges[].k", kr->k, d, "ranges[].v", kr->v, d));
        SK_TRY(chk_len(op, "ranges[].k", kr->k, 1, "q", q, 1));
        SK_TRY(chk_len(op, "ranges[].k", kr->k, 2, "q", q, 2));
        SK_CHECK(kr->start >= 0 && kr->len >= 0 && kr->start + kr->len <= kr->k->shape[0],
                 SK_E_SHAPE, "op %s: range %d rows [%lld, %lld) outside k (%lld rows)", op, r,
                 (long long)kr->start, (long long)(kr->start + kr->len),
                 (long long)kr->k->shape[0]);
        nk += kr->len;
    }
    SK_CHECK(nk > 0, SK_E_INVALID_ARG,
             "op %s: the %d key ranges hold no keys (softmax over nothing)", op, nranges);
    return be->ops->attention_fp8(be, out, q, ranges, nranges, scale);
}
