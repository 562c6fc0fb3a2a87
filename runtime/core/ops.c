/* ops.c - the checked sk_op_* entry points of backend.h.
 *
 * Every backend gets the same validation here, once: non-NULL tensors with
 * memory, all on the backend they are passed to, ndim and shapes exactly as
 * backend.h specifies, activations in be->act_dtype, weights f32/f16/bf16,
 * ids i32. Only then is the backend's function pointer called, so backends
 * may assume well-formed arguments. A NULL pointer in the table means "this
 * backend does not implement the op" and becomes SK_E_UNSUPPORTED.
 *
 * Messages name the op and the argument: "op linear: x [4, 7] and w [5, 6]
 * disagree on K (7 vs 6)".
 */
#include "runtime/core/backend.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define SHP(t, buf) sk_shape_str((t), (buf), sizeof(buf))

static const char *be_name(const sk_backend *be) { return be && be->name ? be->name : "?"; }

/* Tensor exists, has memory and lives on be. */
static sk_status chk_tensor(const char *op, const char *arg, const sk_backend *be,
                            const sk_tensor *t)
{
    SK_CHECK(t, SK_E_INVALID_ARG, "op %s: tensor %s is NULL", op, arg);
    SK_CHECK(t->be == be, SK_E_INVALID_ARG,
             "op %s: tensor %s lives on %sbackend '%s', the op runs on '%s'; "
             "allocate it on the same backend", op, arg,
             t->be && be && t->be->name == be->name ? "another instance of " : "",
             t->be ? be_name(t->be) : "host (none)", be_name(be));
    SK_CHECK(t->data || sk_tensor_numel(t) == 0, SK_E_INVALID_ARG,
             "op %s: tensor %s has no memory (data is NULL)", op, arg);
    return SK_OK;
}

static sk_status chk_ndim(const char *op, const char *arg, const sk_tensor *t, int ndim,
                          const char *layout)
{
    char b[96];
    SK_CHECK(t->ndim == ndim, SK_E_SHAPE, "op %s: %s must be %dD %s, got %s", op, arg, ndim,
             layout, SHP(t, b));
    return SK_OK;
}

static sk_status chk_act(const char *op, const char *arg, const sk_backend *be, const sk_tensor *t)
{
    SK_CHECK(t->dtype == be->act_dtype, SK_E_DTYPE,
             "op %s: %s is %s but the %s backend computes activations in %s; convert it first "
             "(sk_op_convert)", op, arg, sk_dtype_name(t->dtype), be_name(be),
             sk_dtype_name(be->act_dtype));
    return SK_OK;
}

static sk_status chk_weight(const char *op, const char *arg, const sk_tensor *t)
{
    SK_CHECK(t->dtype == SK_DTYPE_F32 || t->dtype == SK_DTYPE_F16 || t->dtype == SK_DTYPE_BF16,
             SK_E_DTYPE, "op %s: weight %s is %s; expected f32, f16 or bf16", op, arg,
             sk_dtype_name(t->dtype));
    return SK_OK;
}

/* Activation tensor of the given rank. */
static sk_status chk_a(const char *op, const char *arg, const sk_backend *be, const sk_tensor *t,
                       int ndim, const char *layout)
{
    SK_TRY(chk_tensor(op, arg, be, t));
    SK_TRY(chk_ndim(op, arg, t, ndim, layout));
    return chk_act(op, arg, be, t);
}

/* Weight tensor of the given rank. */
static sk_status chk_w(const char *op, const char *arg, const sk_backend *be, const sk_tensor *t,
                       int ndim, const char *layout)
{
    SK_TRY(chk_tensor(op, arg, be, t));
    SK_TRY(chk_ndim(op, arg, t, ndim, layout));
    return chk_weight(op, arg, t);
}

/* a.shape[ia] == b.shape[ib], else "a [..] and b [..] disagree on WHAT (x vs y)". */
static sk_status chk_dim(const char *op, const char *an, const sk_tensor *a, int ia,
                         const char *bn, const sk_tensor *b, int ib, const char *what)
{
    char sa[96], sb[96];
    SK_CHECK(a->shape[ia] == b->shape[ib], SK_E_SHAPE, "op %s: %s %s and %s %s disagree on %s "
             "(%lld vs %lld)", op, an, SHP(a, sa), bn, SHP(b, sb), what, (long long)a->shape[ia],
             (long long)b->shape[ib]);
    return SK_OK;
}

/* t.shape[i] == want, else "t [..] dim i is x, expected want (why)". */
static sk_status chk_eq(const char *op, const char *an, const sk_tensor *a, int i, int64_t want,
                        const char *why)
{
    char sa[96];
    SK_CHECK(a->shape[i] == want, SK_E_SHAPE, "op %s: %s %s has %lld at dim %d, expected %lld (%s)",
             op, an, SHP(a, sa), (long long)a->shape[i], i, (long long)want, why);
    return SK_OK;
}

static sk_status chk_same(const char *op, const char *an, const sk_tensor *a, const char *bn,
                          const sk_tensor *b)
{
    char sa[96], sb[96];
    SK_CHECK(sk_tensor_same_shape(a, b), SK_E_SHAPE, "op %s: %s %s and %s %s must have the same "
             "shape", op, an, SHP(a, sa), bn, SHP(b, sb));
    return SK_OK;
}

#define DISPATCH(opname, fn, ...)                                                             \
    do {                                                                                      \
        if (!be->ops || !be->ops->fn)                                                         \
            return SK_ERR(SK_E_UNSUPPORTED, "op %s: not implemented by the %s backend; use "   \
                          "--device cpu or another backend", opname, be_name(be));            \
        return be->ops->fn(be, __VA_ARGS__);                                                  \
    } while (0)

#define CHK_BE(opname) \
    SK_CHECK(be, SK_E_INVALID_ARG, "op %s: backend is NULL", opname)

const char *sk_act_name(sk_act a)
{
    switch (a) {
    case SK_ACT_NONE: return "none";
    case SK_ACT_GELU_TANH: return "gelu_tanh";
    case SK_ACT_SILU: return "silu";
    case SK_ACT_RELU: return "relu";
    case SK_ACT_TANH_CLAMP: return "tanh_clamp";
    case SK_ACT_CLAMP01: return "clamp01";
    default: return "?";
    }
}

static sk_status chk_actfn(const char *op, sk_act a)
{
    SK_CHECK((int)a >= 0 && a < SK_ACT_COUNT_, SK_E_INVALID_ARG,
             "op %s: unknown activation %d (expected 0..%d)", op, (int)a, SK_ACT_COUNT_ - 1);
    return SK_OK;
}

static int is_f_storage(sk_dtype t)
{
    return t == SK_DTYPE_F32 || t == SK_DTYPE_F16 || t == SK_DTYPE_BF16;
}

sk_status sk_op_convert(sk_backend *be, sk_tensor *y, const sk_tensor *x)
{
    const char *op = "convert";
    CHK_BE(op);
    SK_TRY(chk_tensor(op, "y", be, y));
    SK_TRY(chk_tensor(op, "x", be, x));
    SK_TRY(chk_same(op, "y", y, "x", x));
    SK_CHECK(sk_dtype_is_float(x->dtype) && x->dtype != SK_DTYPE_F64 &&
                 sk_dtype_is_float(y->dtype) && y->dtype != SK_DTYPE_F64,
             SK_E_DTYPE, "op convert: %s -> %s is not supported; expected f32, f16, bf16 or "
             "f8e4m3 on both sides", sk_dtype_name(x->dtype), sk_dtype_name(y->dtype));
    DISPATCH(op, convert, y, x);
}

sk_status sk_op_linear(sk_backend *be, sk_tensor *y, const sk_tensor *x, const sk_tensor *w,
                       const sk_tensor *b, sk_act act)
{
    const char *op = "linear";
    CHK_BE(op);
    SK_TRY(chk_a(op, "y", be, y, 2, "[M, N]"));
    SK_TRY(chk_a(op, "x", be, x, 2, "[M, K]"));
    SK_TRY(chk_w(op, "w", be, w, 2, "[N, K]"));
    SK_TRY(chk_dim(op, "x", x, 1, "w", w, 1, "K"));
    SK_TRY(chk_dim(op, "y", y, 0, "x", x, 0, "M"));
    SK_TRY(chk_dim(op, "y", y, 1, "w", w, 0, "N"));
    if (b) {
        SK_TRY(chk_w(op, "b", be, b, 1, "[N]"));
        SK_TRY(chk_dim(op, "b", b, 0, "w", w, 0, "N"));
    }
    SK_TRY(chk_actfn(op, act));
    DISPATCH(op, linear, y, x, w, b, act);
}

sk_status sk_op_layernorm_check(sk_backend *be, const char *op, const sk_tensor *y,
                                const sk_tensor *x, const sk_tensor *w, const sk_tensor *b,
                                float eps)
{
    CHK_BE(op);
    SK_TRY(chk_a(op, "y", be, y, 2, "[R, D]"));
    SK_TRY(chk_a(op, "x", be, x, 2, "[R, D]"));
    SK_TRY(chk_same(op, "y", y, "x", x));
    if (w) {
        SK_TRY(chk_w(op, "w", be, w, 1, "[D]"));
        SK_TRY(chk_dim(op, "w", w, 0, "x", x, 1, "D"));
    }
    if (b) {
        SK_TRY(chk_w(op, "b", be, b, 1, "[D]"));
        SK_TRY(chk_dim(op, "b", b, 0, "x", x, 1, "D"));
    }
    SK_CHECK(eps >= 0.0f, SK_E_INVALID_ARG, "op %s: eps %g must be >= 0", op, (double)eps);
    return SK_OK;
}

sk_status sk_op_layernorm(sk_backend *be, sk_tensor *y, const sk_tensor *x, const sk_tensor *w,
                          const sk_tensor *b, float eps)
{
    const char *op = "layernorm";
    SK_TRY(sk_op_layernorm_check(be, op, y, x, w, b, eps));
    DISPATCH(op, layernorm, y, x, w, b, eps);
}

sk_status sk_op_rmsnorm(sk_backend *be, sk_tensor *y, const sk_tensor *x, const sk_tensor *w,
                        float eps)
{
    const char *op = "rmsnorm";
    CHK_BE(op);
    SK_TRY(chk_a(op, "y", be, y, 2, "[R, D]"));
    SK_TRY(chk_a(op, "x", be, x, 2, "[R, D]"));
    SK_TRY(chk_same(op, "y", y, "x", x));
    if (w) {
        SK_TRY(chk_w(op, "w", be, w, 1, "[D]"));
        SK_TRY(chk_dim(op, "w", w, 0, "x", x, 1, "D"));
    }
    SK_CHECK(eps >= 0.0f, SK_E_INVALID_ARG, "op rmsnorm: eps %g must be >= 0", (double)eps);
    DISPATCH(op, rmsnorm, y, x, w, eps);
}

/* mod [G, K, D] against x [R, D] with R = G * rows_per_group. */
static sk_status chk_mod(const char *op, const sk_backend *be, const sk_tensor *x,
                         const sk_tensor *mod, int64_t rows_per_group)
{
    char sx[96], sm[96];
    SK_TRY(chk_a(op, "mod", be, mod, 3, "[G, K, D]"));
    SK_TRY(chk_dim(op, "mod", mod, 2, "x", x, 1, "D"));
    SK_CHECK(rows_per_group > 0, SK_E_INVALID_ARG, "op %s: rows_per_group %lld must be > 0", op,
             (long long)rows_per_group);
    SK_CHECK(mod->shape[0] * rows_per_group == x->shape[0], SK_E_SHAPE,
             "op %s: x %s has %lld rows but mod %s has %lld groups of %lld rows (= %lld)", op,
             SHP(x, sx), (long long)x->shape[0], SHP(mod, sm), (long long)mod->shape[0],
             (long long)rows_per_group, (long long)(mod->shape[0] * rows_per_group));
    return SK_OK;
}

sk_status sk_op_modulate_check(sk_backend *be, const char *op, const sk_tensor *y,
                               const sk_tensor *x, const sk_tensor *mod, int i_shift, int i_scale,
                               int64_t rows_per_group, float eps)
{
    CHK_BE(op);
    SK_TRY(chk_a(op, "y", be, y, 2, "[R, D]"));
    SK_TRY(chk_a(op, "x", be, x, 2, "[R, D]"));
    SK_TRY(chk_same(op, "y", y, "x", x));
    SK_TRY(chk_mod(op, be, x, mod, rows_per_group));
    SK_CHECK(i_shift >= 0 && i_shift < mod->shape[1] && i_scale >= 0 && i_scale < mod->shape[1],
             SK_E_INVALID_ARG, "op %s: i_shift %d / i_scale %d out of range for mod with "
             "K = %lld entries", op, i_shift, i_scale, (long long)mod->shape[1]);
    SK_CHECK(eps >= 0.0f, SK_E_INVALID_ARG, "op %s: eps %g must be >= 0", op, (double)eps);
    return SK_OK;
}

sk_status sk_op_modulate(sk_backend *be, sk_tensor *y, const sk_tensor *x, const sk_tensor *mod,
                         int i_shift, int i_scale, int64_t rows_per_group, int ln, float eps)
{
    const char *op = "modulate";
    SK_TRY(sk_op_modulate_check(be, op, y, x, mod, i_shift, i_scale, rows_per_group, eps));
    DISPATCH(op, modulate, y, x, mod, i_shift, i_scale, rows_per_group, ln, eps);
}

sk_status sk_op_gated_add(sk_backend *be, sk_tensor *x, const sk_tensor *y, const sk_tensor *mod,
                          int i_gate, int64_t rows_per_group)
{
    const char *op = "gated_add";
    CHK_BE(op);
    SK_TRY(chk_a(op, "x", be, x, 2, "[R, D]"));
    SK_TRY(chk_a(op, "y", be, y, 2, "[R, D]"));
    SK_TRY(chk_same(op, "x", x, "y", y));
    if (i_gate >= 0) {
        SK_CHECK(mod, SK_E_INVALID_ARG, "op gated_add: i_gate %d given but mod is NULL", i_gate);
        SK_TRY(chk_mod(op, be, x, mod, rows_per_group));
        SK_CHECK(i_gate < mod->shape[1], SK_E_INVALID_ARG,
                 "op gated_add: i_gate %d out of range for mod with K = %lld entries", i_gate,
                 (long long)mod->shape[1]);
    }
    DISPATCH(op, gated_add, x, y, mod, i_gate, rows_per_group);
}

sk_status sk_op_axpby(sk_backend *be, sk_tensor *y, float a, const sk_tensor *x, float b,
                      const sk_tensor *z)
{
    const char *op = "axpby";
    CHK_BE(op);
    SK_TRY(chk_tensor(op, "y", be, y));
    SK_TRY(chk_act(op, "y", be, y));
    SK_TRY(chk_tensor(op, "x", be, x));
    SK_TRY(chk_act(op, "x", be, x));
    SK_TRY(chk_tensor(op, "z", be, z));
    SK_TRY(chk_act(op, "z", be, z));
    SK_TRY(chk_same(op, "y", y, "x", x));
    SK_TRY(chk_same(op, "y", y, "z", z));
    DISPATCH(op, axpby, y, a, x, b, z);
}

sk_status sk_op_mul(sk_backend *be, sk_tensor *y, const sk_tensor *x, const sk_tensor *z)
{
    const char *op = "mul";
    CHK_BE(op);
    SK_TRY(chk_tensor(op, "y", be, y));
    SK_TRY(chk_act(op, "y", be, y));
    SK_TRY(chk_tensor(op, "x", be, x));
    SK_TRY(chk_act(op, "x", be, x));
    SK_TRY(chk_tensor(op, "z", be, z));
    SK_TRY(chk_act(op, "z", be, z));
    SK_TRY(chk_same(op, "y", y, "x", x));
    SK_TRY(chk_same(op, "y", y, "z", z));
    DISPATCH(op, mul, y, x, z);
}

sk_status sk_op_flag_nonfinite(sk_backend *be, const sk_tensor *x, void *flag)
{
    const char *op = "flag_nonfinite";
    CHK_BE(op);
    SK_TRY(chk_tensor(op, "x", be, x));
    SK_CHECK(sk_dtype_is_float(x->dtype), SK_E_DTYPE, "op %s: x has dtype %s; expected a float "
             "dtype", op, sk_dtype_name(x->dtype));
    SK_CHECK(flag, SK_E_INVALID_ARG, "op %s: flag is NULL", op);
    if (be->ops && be->ops->flag_nonfinite) return be->ops->flag_nonfinite(be, x, flag);
    /* fallback: through the host */
    size_t n = (size_t)sk_tensor_numel(x);
    float *h = malloc((n ? n : 1) * sizeof *h);
    SK_CHECK(h, SK_E_OOM, "op %s: out of host memory", op);
    sk_status st = sk_tensor_download_f32(x, h, n);
    int32_t bad = 0;
    for (size_t i = 0; st == SK_OK && i < n && !bad; i++) bad = !isfinite(h[i]);
    free(h);
    if (st == SK_OK && bad) st = be->ops->upload(be, flag, &bad, sizeof bad);
    return st;
}

sk_status sk_op_act(sk_backend *be, sk_tensor *y, const sk_tensor *x, sk_act act)
{
    const char *op = "act";
    CHK_BE(op);
    SK_TRY(chk_tensor(op, "y", be, y));
    SK_TRY(chk_act(op, "y", be, y));
    SK_TRY(chk_tensor(op, "x", be, x));
    SK_TRY(chk_act(op, "x", be, x));
    SK_TRY(chk_same(op, "y", y, "x", x));
    SK_TRY(chk_actfn(op, act));
    DISPATCH(op, act, y, x, act);
}

sk_status sk_op_attention(sk_backend *be, sk_tensor *out, const sk_tensor *q,
                          const sk_kv_range *ranges, int nranges, float scale,
                          const sk_tensor *bias)
{
    const char *op = "attention";
    char sa[96], sb[96];
    CHK_BE(op);
    SK_TRY(chk_a(op, "q", be, q, 3, "[Nq, NH, HD]"));
    SK_TRY(chk_a(op, "out", be, out, 2, "[Nq, NH*HD]"));
    SK_TRY(chk_dim(op, "out", out, 0, "q", q, 0, "Nq"));
    SK_CHECK(out->shape[1] == q->shape[1] * q->shape[2], SK_E_SHAPE,
             "op attention: out %s and q %s disagree on NH*HD (%lld vs %lld)", SHP(out, sa),
             SHP(q, sb), (long long)out->shape[1], (long long)(q->shape[1] * q->shape[2]));
    SK_CHECK(ranges && nranges > 0, SK_E_INVALID_ARG,
             "op attention: no key/value ranges given (nranges = %d)", nranges);
    int64_t nk = 0;
    for (int r = 0; r < nranges; r++) {
        const sk_kv_range *kr = &ranges[r];
        char kn[32], vn[32];
        snprintf(kn, sizeof kn, "ranges[%d].k", r);
        snprintf(vn, sizeof vn, "ranges[%d].v", r);
        SK_TRY(chk_a(op, kn, be, kr->k, 3, "[Ncap, NH, HD]"));
        SK_TRY(chk_a(op, vn, be, kr->v, 3, "[Ncap, NH, HD]"));
        SK_TRY(chk_same(op, kn, kr->k, vn, kr->v));
        SK_TRY(chk_dim(op, kn, kr->k, 1, "q", q, 1, "NH"));
        SK_TRY(chk_dim(op, kn, kr->k, 2, "q", q, 2, "HD"));
        SK_CHECK(kr->start >= 0 && kr->len >= 0 && kr->start + kr->len <= kr->k->shape[0],
                 SK_E_SHAPE, "op attention: range %d rows [%lld, %lld) outside k %s", r,
                 (long long)kr->start, (long long)(kr->start + kr->len), SHP(kr->k, sa));
        nk += kr->len;
    }
    SK_CHECK(nk > 0, SK_E_INVALID_ARG,
             "op attention: the %d key ranges hold no keys (softmax over nothing)", nranges);
    if (bias) {
        SK_TRY(chk_a(op, "bias", be, bias, 3, "[NH, Nq, Nk]"));
        SK_CHECK(bias->shape[0] == q->shape[1] && bias->shape[1] == q->shape[0] &&
                     bias->shape[2] == nk,
                 SK_E_SHAPE, "op attention: bias %s, expected [%lld, %lld, %lld] = [NH, Nq, Nk]",
                 SHP(bias, sa), (long long)q->shape[1], (long long)q->shape[0], (long long)nk);
    }
    DISPATCH(op, attention, out, q, ranges, nranges, scale, bias);
}

sk_status sk_op_rope3d(sk_backend *be, sk_tensor *x, int64_t F, int64_t Hp, int64_t Wp,
                       int64_t t0, double theta)
{
    const char *op = "rope3d";
    char sa[96];
    CHK_BE(op);
    SK_TRY(chk_a(op, "x", be, x, 3, "[N, NH, HD]"));
    SK_CHECK(F >= 0 && Hp >= 0 && Wp >= 0 && F * Hp * Wp == x->shape[0], SK_E_SHAPE,
             "op rope3d: x %s has N = %lld tokens but F*Hp*Wp = %lld*%lld*%lld = %lld",
             SHP(x, sa), (long long)x->shape[0], (long long)F, (long long)Hp, (long long)Wp,
             (long long)(F * Hp * Wp));
    SK_CHECK(x->shape[2] % 2 == 0, SK_E_SHAPE,
             "op rope3d: head dim HD = %lld of x %s must be even (rotation pairs)",
             (long long)x->shape[2], SHP(x, sa));
    SK_CHECK(t0 >= 0, SK_E_INVALID_ARG, "op rope3d: first frame position t0 %lld must be >= 0",
             (long long)t0);
    SK_CHECK(theta > 1.0, SK_E_INVALID_ARG, "op rope3d: theta %g must be > 1", theta);
    DISPATCH(op, rope3d, x, F, Hp, Wp, t0, theta);
}

sk_status sk_op_rmsnorm_rope3d(sk_backend *be, sk_tensor *y, const sk_tensor *x,
                               const sk_tensor *w, float eps, int64_t F, int64_t Hp, int64_t Wp,
                               int64_t t0, double theta)
{
    const char *op = "rmsnorm_rope3d";
    char sa[96], sb[96];
    CHK_BE(op);
    SK_TRY(chk_a(op, "y", be, y, 3, "[N, NH, HD]"));
    SK_TRY(chk_a(op, "x", be, x, 2, "[N, NH*HD]"));
    SK_CHECK(x->shape[0] == y->shape[0] && x->shape[1] == y->shape[1] * y->shape[2], SK_E_SHAPE,
             "op %s: x %s must be [N, NH*HD] for y %s", op, SHP(x, sa), SHP(y, sb));
    if (!be->ops || !be->ops->rmsnorm_rope3d) {
        int64_t s2[2] = {y->shape[0], y->shape[1] * y->shape[2]};
        sk_tensor y2;
        SK_TRY(sk_tensor_reshape(y, 2, s2, &y2));
        SK_TRY(sk_op_rmsnorm(be, &y2, x, w, eps));
        return sk_op_rope3d(be, y, F, Hp, Wp, t0, theta);
    }
    if (w) {
        SK_TRY(chk_w(op, "w", be, w, 1, "[D]"));
        SK_TRY(chk_dim(op, "w", w, 0, "x", x, 1, "D"));
    }
    SK_CHECK(eps >= 0.0f, SK_E_INVALID_ARG, "op %s: eps %g must be >= 0", op, (double)eps);
    SK_CHECK(F >= 0 && Hp >= 0 && Wp >= 0 && F * Hp * Wp == y->shape[0], SK_E_SHAPE,
             "op %s: y %s has N = %lld tokens but F*Hp*Wp = %lld*%lld*%lld = %lld", op,
             SHP(y, sa), (long long)y->shape[0], (long long)F, (long long)Hp, (long long)Wp,
             (long long)(F * Hp * Wp));
    SK_CHECK(y->shape[2] % 2 == 0, SK_E_SHAPE, "op %s: head dim HD = %lld must be even", op,
             (long long)y->shape[2]);
    SK_CHECK(t0 >= 0 && theta > 1.0, SK_E_INVALID_ARG, "op %s: t0 %lld must be >= 0 and theta "
             "%g > 1", op, (long long)t0, theta);
    DISPATCH(op, rmsnorm_rope3d, y, x, w, eps, F, Hp, Wp, t0, theta);
}

sk_status sk_op_conv2d(sk_backend *be, sk_tensor *y, const sk_tensor *x, const sk_tensor *w,
                       const sk_tensor *b, int stride, int pad)
{
    const char *op = "conv2d";
    char sa[96], sb[96];
    CHK_BE(op);
    SK_TRY(chk_a(op, "y", be, y, 4, "[N, Co, Ho, Wo]"));
    SK_TRY(chk_a(op, "x", be, x, 4, "[N, Ci, H, W]"));
    SK_TRY(chk_w(op, "w", be, w, 4, "[Co, Ci, kh, kw]"));
    SK_CHECK(stride >= 1 && pad >= 0, SK_E_INVALID_ARG,
             "op conv2d: stride %d must be >= 1 and pad %d >= 0", stride, pad);
    SK_TRY(chk_dim(op, "x", x, 1, "w", w, 1, "Ci"));
    SK_TRY(chk_dim(op, "y", y, 0, "x", x, 0, "N"));
    SK_TRY(chk_dim(op, "y", y, 1, "w", w, 0, "Co"));
    int64_t hp = x->shape[2] + 2 * pad - w->shape[2], wp = x->shape[3] + 2 * pad - w->shape[3];
    SK_CHECK(hp >= 0 && wp >= 0, SK_E_SHAPE,
             "op conv2d: kernel %s larger than the padded input x %s (pad %d)", SHP(w, sa),
             SHP(x, sb), pad);
    SK_TRY(chk_eq(op, "y", y, 2, hp / stride + 1, "Ho = (H + 2*pad - kh)/stride + 1"));
    SK_TRY(chk_eq(op, "y", y, 3, wp / stride + 1, "Wo = (W + 2*pad - kw)/stride + 1"));
    if (b) {
        SK_TRY(chk_w(op, "b", be, b, 1, "[Co]"));
        SK_TRY(chk_dim(op, "b", b, 0, "w", w, 0, "Co"));
    }
    DISPATCH(op, conv2d, y, x, w, b, stride, pad);
}

sk_status sk_op_pixel_shuffle(sk_backend *be, sk_tensor *y, const sk_tensor *x, int p)
{
    const char *op = "pixel_shuffle";
    char sa[96];
    CHK_BE(op);
    SK_TRY(chk_a(op, "y", be, y, 4, "[N, C, H*p, W*p]"));
    SK_TRY(chk_a(op, "x", be, x, 4, "[N, C*p*p, H, W]"));
    SK_CHECK(p >= 1, SK_E_INVALID_ARG, "op pixel_shuffle: factor p %d must be >= 1", p);
    SK_CHECK(x->shape[1] % ((int64_t)p * p) == 0, SK_E_SHAPE,
             "op pixel_shuffle: x %s channels %lld not divisible by p*p = %d", SHP(x, sa),
             (long long)x->shape[1], p * p);
    SK_TRY(chk_dim(op, "y", y, 0, "x", x, 0, "N"));
    SK_TRY(chk_eq(op, "y", y, 1, x->shape[1] / ((int64_t)p * p), "C = Cx/(p*p)"));
    SK_TRY(chk_eq(op, "y", y, 2, x->shape[2] * p, "H*p"));
    SK_TRY(chk_eq(op, "y", y, 3, x->shape[3] * p, "W*p"));
    DISPATCH(op, pixel_shuffle, y, x, p);
}

sk_status sk_op_pixel_unshuffle(sk_backend *be, sk_tensor *y, const sk_tensor *x, int p)
{
    const char *op = "pixel_unshuffle";
    char sa[96];
    CHK_BE(op);
    SK_TRY(chk_a(op, "y", be, y, 4, "[N, C*p*p, H/p, W/p]"));
    SK_TRY(chk_a(op, "x", be, x, 4, "[N, C, H, W]"));
    SK_CHECK(p >= 1, SK_E_INVALID_ARG, "op pixel_unshuffle: factor p %d must be >= 1", p);
    SK_CHECK(x->shape[2] % p == 0 && x->shape[3] % p == 0, SK_E_SHAPE,
             "op pixel_unshuffle: x %s height and width must be divisible by p = %d", SHP(x, sa),
             p);
    SK_TRY(chk_dim(op, "y", y, 0, "x", x, 0, "N"));
    SK_TRY(chk_eq(op, "y", y, 1, x->shape[1] * p * p, "C*p*p"));
    SK_TRY(chk_eq(op, "y", y, 2, x->shape[2] / p, "H/p"));
    SK_TRY(chk_eq(op, "y", y, 3, x->shape[3] / p, "W/p"));
    DISPATCH(op, pixel_unshuffle, y, x, p);
}

sk_status sk_op_upsample_nearest(sk_backend *be, sk_tensor *y, const sk_tensor *x, int s)
{
    const char *op = "upsample_nearest";
    CHK_BE(op);
    SK_TRY(chk_a(op, "y", be, y, 4, "[N, C, H*s, W*s]"));
    SK_TRY(chk_a(op, "x", be, x, 4, "[N, C, H, W]"));
    SK_CHECK(s >= 1, SK_E_INVALID_ARG, "op upsample_nearest: factor s %d must be >= 1", s);
    SK_TRY(chk_dim(op, "y", y, 0, "x", x, 0, "N"));
    SK_TRY(chk_dim(op, "y", y, 1, "x", x, 1, "C"));
    SK_TRY(chk_eq(op, "y", y, 2, x->shape[2] * s, "H*s"));
    SK_TRY(chk_eq(op, "y", y, 3, x->shape[3] * s, "W*s"));
    DISPATCH(op, upsample_nearest, y, x, s);
}

sk_status sk_op_concat_channels(sk_backend *be, sk_tensor *y, const sk_tensor *a,
                                const sk_tensor *b)
{
    const char *op = "concat_channels";
    CHK_BE(op);
    SK_TRY(chk_a(op, "y", be, y, 4, "[N, Ca+Cb, H, W]"));
    SK_TRY(chk_a(op, "a", be, a, 4, "[N, Ca, H, W]"));
    SK_TRY(chk_a(op, "b", be, b, 4, "[N, Cb, H, W]"));
    SK_TRY(chk_dim(op, "a", a, 0, "b", b, 0, "N"));
    SK_TRY(chk_dim(op, "a", a, 2, "b", b, 2, "H"));
    SK_TRY(chk_dim(op, "a", a, 3, "b", b, 3, "W"));
    SK_TRY(chk_dim(op, "y", y, 0, "a", a, 0, "N"));
    SK_TRY(chk_eq(op, "y", y, 1, a->shape[1] + b->shape[1], "Ca + Cb"));
    SK_TRY(chk_dim(op, "y", y, 2, "a", a, 2, "H"));
    SK_TRY(chk_dim(op, "y", y, 3, "a", a, 3, "W"));
    DISPATCH(op, concat_channels, y, a, b);
}

sk_status sk_op_patchify(sk_backend *be, sk_tensor *y, const sk_tensor *x)
{
    const char *op = "patchify";
    char sa[96];
    CHK_BE(op);
    SK_TRY(chk_a(op, "y", be, y, 2, "[F*Hp*Wp, C*4]"));
    SK_TRY(chk_a(op, "x", be, x, 4, "[F, C, H, W]"));
    SK_CHECK(x->shape[2] % 2 == 0 && x->shape[3] % 2 == 0, SK_E_SHAPE,
             "op patchify: x %s height and width must be even (patch 1x2x2)", SHP(x, sa));
    SK_TRY(chk_eq(op, "y", y, 0, x->shape[0] * (x->shape[2] / 2) * (x->shape[3] / 2),
                  "F*Hp*Wp tokens"));
    SK_TRY(chk_eq(op, "y", y, 1, x->shape[1] * 4, "C*4"));
    DISPATCH(op, patchify, y, x);
}

sk_status sk_op_unpatchify(sk_backend *be, sk_tensor *y, const sk_tensor *x)
{
    const char *op = "unpatchify";
    char sa[96];
    CHK_BE(op);
    SK_TRY(chk_a(op, "y", be, y, 4, "[F, C, H, W]"));
    SK_TRY(chk_a(op, "x", be, x, 2, "[F*Hp*Wp, 4*C]"));
    SK_CHECK(y->shape[2] % 2 == 0 && y->shape[3] % 2 == 0, SK_E_SHAPE,
             "op unpatchify: y %s height and width must be even (patch 1x2x2)", SHP(y, sa));
    SK_TRY(chk_eq(op, "x", x, 0, y->shape[0] * (y->shape[2] / 2) * (y->shape[3] / 2),
                  "F*Hp*Wp tokens of y"));
    SK_TRY(chk_eq(op, "x", x, 1, y->shape[1] * 4, "4*C of y"));
    DISPATCH(op, unpatchify, y, x);
}

sk_status sk_op_embedding(sk_backend *be, sk_tensor *y, const sk_tensor *table,
                          const sk_tensor *ids)
{
    const char *op = "embedding";
    CHK_BE(op);
    SK_TRY(chk_a(op, "y", be, y, 2, "[N, D]"));
    SK_TRY(chk_w(op, "table", be, table, 2, "[V, D]"));
    SK_TRY(chk_tensor(op, "ids", be, ids));
    SK_TRY(chk_ndim(op, "ids", ids, 1, "[N]"));
    SK_CHECK(ids->dtype == SK_DTYPE_I32, SK_E_DTYPE, "op embedding: ids are %s, expected i32",
             sk_dtype_name(ids->dtype));
    SK_TRY(chk_dim(op, "y", y, 0, "ids", ids, 0, "N"));
    SK_TRY(chk_dim(op, "y", y, 1, "table", table, 1, "D"));
    DISPATCH(op, embedding, y, table, ids);
}

sk_status sk_op_noise(sk_backend *be, sk_tensor *y, uint64_t seed, int64_t frame0,
                      uint32_t stream)
{
    const char *op = "noise";
    CHK_BE(op);
    SK_TRY(chk_tensor(op, "y", be, y));
    /* latents may be kept in f32 on a bf16 backend: any float storage type */
    SK_CHECK(is_f_storage(y->dtype), SK_E_DTYPE, "op noise: y is %s; expected f32, f16 or bf16",
             sk_dtype_name(y->dtype));
    SK_CHECK(y->ndim >= 1, SK_E_SHAPE, "op noise: y must have at least 1 dimension (frames)");
    SK_CHECK(frame0 >= 0, SK_E_INVALID_ARG, "op noise: frame0 %lld must be >= 0",
             (long long)frame0);
    DISPATCH(op, noise, y, seed, frame0, stream);
}

/* ---- the Wan2.2 VAE encoder's layout ops */

sk_status sk_op_transpose(sk_backend *be, sk_tensor *y, const sk_tensor *x)
{
    const char *op = "transpose";
    CHK_BE(op);
    SK_TRY(chk_a(op, "y", be, y, 3, "[B, N, M]"));
    SK_TRY(chk_a(op, "x", be, x, 3, "[B, M, N]"));
    SK_TRY(chk_dim(op, "y", y, 0, "x", x, 0, "B"));
    SK_TRY(chk_dim(op, "y", y, 1, "x", x, 2, "N"));
    SK_TRY(chk_dim(op, "y", y, 2, "x", x, 1, "M"));
    DISPATCH(op, transpose, y, x);
}

sk_status sk_op_pad2d(sk_backend *be, sk_tensor *y, const sk_tensor *x, int top, int left)
{
    const char *op = "pad2d";
    char sa[96], sb[96];
    CHK_BE(op);
    SK_TRY(chk_a(op, "y", be, y, 4, "[N, C, Ho, Wo]"));
    SK_TRY(chk_a(op, "x", be, x, 4, "[N, C, H, W]"));
    SK_TRY(chk_dim(op, "y", y, 0, "x", x, 0, "N"));
    SK_TRY(chk_dim(op, "y", y, 1, "x", x, 1, "C"));
    SK_CHECK(top >= 0 && left >= 0, SK_E_INVALID_ARG, "op pad2d: top %d / left %d must be >= 0",
             top, left);
    SK_CHECK(y->shape[2] >= x->shape[2] + top && y->shape[3] >= x->shape[3] + left, SK_E_SHAPE,
             "op pad2d: y %s cannot hold x %s at (%d, %d)", SHP(y, sa), SHP(x, sb), top, left);
    DISPATCH(op, pad2d, y, x, top, left);
}

int sk_backend_has_vae_ops(const sk_backend *be)
{
    return be && be->ops && be->ops->transpose && be->ops->pad2d && be->ops->conv2d &&
           be->ops->pixel_unshuffle && be->ops->rmsnorm && be->ops->attention;
}
