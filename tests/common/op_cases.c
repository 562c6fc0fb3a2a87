/* op_cases.c - the op case table and its backend-agnostic runner (op_cases.h).
 *
 * Meaning of d[] / i[] / f[] per op (sizes in the op's own letters):
 *   convert          d = R, C                  x:dtype -> y:wdtype; f = input range lo, hi
 *   linear           d = M, K, N               i = act, has_bias
 *   layernorm        d = R, D                  i = has_w, has_b;         f0 = eps
 *   rmsnorm          d = R, D                  i = has_w;                f0 = eps
 *   modulate         d = G, rows_per_group, D, K   i = i_shift, i_scale, ln; f0 = eps
 *   gated_add        d = G, rows_per_group, D, K   i = i_gate (-1: plain add)
 *   axpby            d = R, C                  f = a, b
 *   mul              d = R, C
 *   act              d = R, C                  i0 = act (inputs in [-6, 6])
 *   attention        d = Nq, NH, HD, len0, len1, len2   i = nranges, has_bias; f0 = scale (0: 1/sqrt(HD))
 *                    (range r has its own k/v of Ncap = len + 5 rows and starts at row 2 + r)
 *   rope3d           d = F, Hp, Wp, NH, HD, t0 (theta 10000)
 *   rmsnorm_rope3d   d = F, Hp, Wp, NH, HD, t0   i0 = has_w;   f0 = eps (x is [N, NH*HD])
 *   conv2d           d = N, Ci, H, W, Co, kh, kw   i = stride, pad, has_bias
 *   pixel_shuffle    d = N, C, H, W (C, H, W of the output's channels and input's grid) i0 = p
 *   pixel_unshuffle  d = N, C, H, W (the input)    i0 = p
 *   upsample_nearest d = N, C, H, W (the input)    i0 = s
 *   concat_channels  d = N, Ca, Cb, H, W
 *   patchify         d = F, C, H, W (x)
 *   unpatchify       d = F, C, H, W (y)
 *   embedding        d = V, D, N
 *   noise            d = three dims of y, frame0   i0 = stream
 */
#include "op_cases.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compare.h"

#define F32 SK_DTYPE_F32
#define F16 SK_DTYPE_F16
#define BF16 SK_DTYPE_BF16
#define FP8 SK_DTYPE_F8_E4M3

#define EX SK_OPC_EXACT
#define EW SK_OPC_ELEMENTWISE
#define NO SK_OPC_NORM
#define MM SK_OPC_MATMUL
#define AT SK_OPC_ATTENTION
#define NZ SK_OPC_NOISE

/* rows give only the fields they use; the rest are zero */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
static const sk_op_case k_cases[] = {
    /* convert */
    {"convert_f32_to_bf16", "convert", EX, F32, BF16, {7, 13}, {0}, {-4, 4}},
    {"convert_f32_to_f16", "convert", EX, F32, F16, {5, 11}, {0}, {-70000, 70000}},
    {"convert_f32_to_fp8", "convert", EX, F32, FP8, {3, 37}, {0}, {-440, 440}},
    {"convert_bf16_to_f32", "convert", EX, BF16, F32, {11, 5}, {0}, {-4, 4}},
    {"convert_f16_to_bf16", "convert", EX, F16, BF16, {1, 129}, {0}, {-4, 4}},
    /* linear */
    {"linear_f32_7x13x11", "linear", MM, F32, F32, {7, 13, 11}, {SK_ACT_NONE, 1}},
    {"linear_f32_33x65x17_gelu", "linear", MM, F32, F32, {33, 65, 17}, {SK_ACT_GELU_TANH, 1}},
    {"linear_f32_1x128x96_silu_nobias", "linear", MM, F32, F32, {1, 128, 96}, {SK_ACT_SILU, 0}},
    {"linear_f32_256x128x128", "linear", MM, F32, F32, {256, 128, 128}, {SK_ACT_NONE, 1}},
    {"linear_f32_w_bf16_5x64x33", "linear", MM, F32, BF16, {5, 64, 33}, {SK_ACT_NONE, 1}},
    {"linear_f32_w_f16_11x31x7", "linear", MM, F32, F16, {11, 31, 7}, {SK_ACT_RELU, 1}},
    {"linear_bf16_7x13x11", "linear", MM, BF16, BF16, {7, 13, 11}, {SK_ACT_NONE, 1}},
    {"linear_bf16_65x257x129_gelu", "linear", MM, BF16, BF16, {65, 257, 129}, {SK_ACT_GELU_TANH, 1}},
    {"linear_bf16_w_f32_3x96x40_silu", "linear", MM, BF16, F32, {3, 96, 40}, {SK_ACT_SILU, 0}},
    /* norms */
    {"layernorm_f32_5x7_affine", "layernorm", NO, F32, F32, {5, 7}, {1, 1}, {1e-6f}},
    {"layernorm_f32_13x129_plain", "layernorm", NO, F32, F32, {13, 129}, {0, 0}, {1e-6f}},
    {"layernorm_bf16_3x1536_w_bf16", "layernorm", NO, BF16, BF16, {3, 1536}, {1, 1}, {1e-5f}},
    {"rmsnorm_f32_5x7_w", "rmsnorm", NO, F32, F32, {5, 7}, {1}, {1e-6f}},
    {"rmsnorm_f32_11x130_plain", "rmsnorm", NO, F32, F32, {11, 130}, {0}, {1e-6f}},
    {"rmsnorm_bf16_17x256_w", "rmsnorm", NO, BF16, BF16, {17, 256}, {1}, {1e-6f}},
    {"modulate_f32_ln_3x4x7", "modulate", NO, F32, F32, {3, 4, 7, 6}, {0, 1, 1}, {1e-6f}},
    {"modulate_f32_noln_2x5x11", "modulate", NO, F32, F32, {2, 5, 11, 6}, {3, 4, 0}, {1e-6f}},
    {"modulate_bf16_ln_1x13x64", "modulate", NO, BF16, BF16, {1, 13, 64, 6}, {0, 1, 1}, {1e-6f}},
    /* elementwise */
    {"gated_add_f32_3x4x7", "gated_add", EW, F32, F32, {3, 4, 7, 6}, {2}},
    {"gated_add_f32_plain_1x5x13", "gated_add", EW, F32, F32, {1, 5, 13, 6}, {-1}},
    {"gated_add_bf16_2x7x33", "gated_add", EW, BF16, BF16, {2, 7, 33, 6}, {5}},
    {"axpby_f32_7x13", "axpby", EW, F32, F32, {7, 13}, {0}, {0.5f, -1.25f}},
    {"axpby_bf16_5x257", "axpby", EW, BF16, BF16, {5, 257}, {0}, {-0.75f, 2.0f}},
    {"mul_f32_5x11", "mul", EW, F32, F32, {5, 11}},
    {"mul_bf16_3x129", "mul", EW, BF16, BF16, {3, 129}},
    {"act_f32_none", "act", EW, F32, F32, {3, 37}, {SK_ACT_NONE}},
    {"act_f32_gelu_tanh", "act", EW, F32, F32, {3, 37}, {SK_ACT_GELU_TANH}},
    {"act_f32_silu", "act", EW, F32, F32, {3, 37}, {SK_ACT_SILU}},
    {"act_f32_relu", "act", EW, F32, F32, {3, 37}, {SK_ACT_RELU}},
    {"act_f32_tanh_clamp", "act", EW, F32, F32, {3, 37}, {SK_ACT_TANH_CLAMP}},
    {"act_f32_clamp01", "act", EW, F32, F32, {3, 37}, {SK_ACT_CLAMP01}},
    {"act_bf16_gelu_tanh", "act", EW, BF16, BF16, {7, 65}, {SK_ACT_GELU_TANH}},
    {"act_bf16_silu", "act", EW, BF16, BF16, {7, 65}, {SK_ACT_SILU}},
    /* attention */
    {"attention_f32_5q_2h_8d_7k", "attention", AT, F32, F32, {5, 2, 8, 7}, {1, 0}},
    {"attention_f32_13q_3h_16d_5+11k", "attention", AT, F32, F32, {13, 3, 16, 5, 11}, {2, 0}},
    {"attention_f32_33q_2h_64d_17+0+40k_bias", "attention", AT, F32, F32, {33, 2, 64, 17, 0, 40},
     {3, 1}, {1.0f}},
    {"attention_f32_1q_1h_128d_257k", "attention", AT, F32, F32, {1, 1, 128, 257}, {1, 0}},
    {"attention_bf16_13q_3h_16d_5+11k", "attention", AT, BF16, BF16, {13, 3, 16, 5, 11}, {2, 0}},
    {"attention_bf16_65q_2h_128d_33+97k", "attention", AT, BF16, BF16, {65, 2, 128, 33, 97},
     {2, 0}},
    {"attention_bf16_7q_2h_64d_29k_bias", "attention", AT, BF16, BF16, {7, 2, 64, 29}, {1, 1},
     {1.0f}},
    /* rope */
    {"rope3d_f32_2x3x5_2h_12d_t3", "rope3d", EW, F32, F32, {2, 3, 5, 2, 12, 3}},
    {"rope3d_f32_1x2x3_1h_128d_t7", "rope3d", EW, F32, F32, {1, 2, 3, 1, 128, 7}},
    {"rope3d_f32_3x1x2_3h_14d_t0", "rope3d", EW, F32, F32, {3, 1, 2, 3, 14, 0}},
    {"rope3d_bf16_2x3x4_2h_128d_t21", "rope3d", EW, BF16, BF16, {2, 3, 4, 2, 128, 21}},
    /* fused rmsnorm + rope3d (every DiT query and key): the CPU oracle runs the two
     * ops; the CUDA kernel has variants by width D = NH*HD: <= 2048 (one chunk of 8 per
     * thread), <= 4096 (two: the 5B model's 3072), <= 8192 (four, 14B's 5120 uses 3),
     * and HD % 8 != 0 falls back to the two kernels */
    {"rmsnorm_rope3d_f32_2x3x4_2h_128d_t5_w", "rmsnorm_rope3d", NO, F32, F32, {2, 3, 4, 2, 128, 5},
     {1}, {1e-6f}},
    {"rmsnorm_rope3d_bf16_1x2x3_16h_128d_t9_w", "rmsnorm_rope3d", NO, BF16, BF16,
     {1, 2, 3, 16, 128, 9}, {1}, {1e-6f}},
    {"rmsnorm_rope3d_bf16_1x2x2_24h_128d_t9_w", "rmsnorm_rope3d", NO, BF16, BF16,
     {1, 2, 2, 24, 128, 9}, {1}, {1e-6f}},
    {"rmsnorm_rope3d_f32_2x1x2_24h_128d_t0", "rmsnorm_rope3d", NO, F32, F32, {2, 1, 2, 24, 128, 0},
     {0}, {1e-6f}},
    {"rmsnorm_rope3d_bf16_1x1x3_40h_128d_t2_w", "rmsnorm_rope3d", NO, BF16, BF16,
     {1, 1, 3, 40, 128, 2}, {1}, {1e-6f}},
    {"rmsnorm_rope3d_f32_2x1x3_2h_12d_t1_w", "rmsnorm_rope3d", NO, F32, F32, {2, 1, 3, 2, 12, 1},
     {1}, {1e-6f}},
    /* conv and friends */
    {"conv2d_f32_3to5_7x11_k3s1p1", "conv2d", MM, F32, F32, {1, 3, 7, 11, 5, 3, 3}, {1, 1, 1}},
    {"conv2d_f32_4to3_9x13_k3s2p1", "conv2d", MM, F32, F32, {2, 4, 9, 13, 3, 3, 3}, {2, 1, 1}},
    {"conv2d_f32_13to7_5x5_k1", "conv2d", MM, F32, F16, {1, 13, 5, 5, 7, 1, 1}, {1, 0, 0}},
    {"conv2d_f32_2to3_8x7_k5p2", "conv2d", MM, F32, BF16, {1, 2, 8, 7, 3, 5, 5}, {1, 2, 1}},
    {"conv2d_bf16_17to9_6x10_k3s1p1", "conv2d", MM, BF16, BF16, {1, 17, 6, 10, 9, 3, 3},
     {1, 1, 1}},
    {"pixel_shuffle_f32_p2", "pixel_shuffle", EX, F32, F32, {1, 3, 5, 7}, {2}},
    {"pixel_shuffle_bf16_p3", "pixel_shuffle", EX, BF16, BF16, {2, 2, 3, 4}, {3}},
    {"pixel_unshuffle_f32_p2", "pixel_unshuffle", EX, F32, F32, {1, 3, 10, 14}, {2}},
    {"pixel_unshuffle_bf16_p2", "pixel_unshuffle", EX, BF16, BF16, {2, 5, 6, 4}, {2}},
    {"upsample_nearest_f32_s2", "upsample_nearest", EX, F32, F32, {1, 3, 5, 7}, {2}},
    {"upsample_nearest_bf16_s3", "upsample_nearest", EX, BF16, BF16, {2, 2, 3, 5}, {3}},
    {"concat_channels_f32", "concat_channels", EX, F32, F32, {2, 3, 5, 5, 7}},
    {"concat_channels_bf16", "concat_channels", EX, BF16, BF16, {1, 1, 7, 3, 11}},
    /* layout */
    {"patchify_f32_2x3x6x10", "patchify", EX, F32, F32, {2, 3, 6, 10}},
    {"patchify_bf16_3x16x4x6", "patchify", EX, BF16, BF16, {3, 16, 4, 6}},
    {"unpatchify_f32_2x5x4x6", "unpatchify", EX, F32, F32, {2, 5, 4, 6}},
    {"unpatchify_bf16_1x16x6x8", "unpatchify", EX, BF16, BF16, {1, 16, 6, 8}},
    {"embedding_f32_37x13_11ids", "embedding", EX, F32, F32, {37, 13, 11}},
    {"embedding_bf16_table_bf16", "embedding", EX, BF16, BF16, {101, 64, 7}},
    {"embedding_f32_table_f16", "embedding", EX, F32, F16, {5, 7, 3}},
    /* noise */
    {"noise_f32_3x5x7_f2_s1", "noise", NZ, F32, F32, {3, 5, 7, 2}, {1}},
    {"noise_f32_1x1x1001_f0_s0", "noise", NZ, F32, F32, {1, 1, 1001, 0}, {0}},
    {"noise_bf16_2x16x9_f5_s3", "noise", NZ, BF16, BF16, {2, 16, 9, 5}, {3}},
};
#pragma GCC diagnostic pop

#define N_CASES ((int)(sizeof k_cases / sizeof k_cases[0]))

int sk_op_case_count(void) { return N_CASES; }

const sk_op_case *sk_op_case_get(int i) { return i >= 0 && i < N_CASES ? &k_cases[i] : NULL; }

const sk_op_case *sk_op_case_find(const char *name)
{
    for (int i = 0; name && i < N_CASES; i++)
        if (strcmp(k_cases[i].name, name) == 0) return &k_cases[i];
    return NULL;
}

const char *sk_op_class_name(sk_op_class cls)
{
    static const char *const n[SK_OPC_COUNT_] = {"exact", "elementwise", "norm",
                                                  "matmul", "attention", "noise"};
    return (unsigned)cls < SK_OPC_COUNT_ ? n[cls] : "?";
}

/* Bounds per (class, dtype). f32 cases hold a GPU to near-f32 agreement (no
 * TF32); bf16 cases allow bf16 storage of inputs and outputs with f32
 * accumulation; f16 sits in between. */
sk_op_bounds sk_op_case_bounds(const sk_op_case *c)
{
    const int lowp = c->dtype == BF16 || c->dtype == FP8;
    const int half = c->dtype == F16;
    sk_op_bounds b = {0, 0, 0};
    switch (c->cls) {
    case SK_OPC_EXACT: break; /* bit-identical */
    case SK_OPC_ELEMENTWISE:
        if (lowp) b = (sk_op_bounds){2e-5, 1e-3, 1.6e-2};
        else if (half) b = (sk_op_bounds){1e-6, 1e-4, 2e-3};
        else b = (sk_op_bounds){1e-7, 1e-5, 1e-5};
        break;
    case SK_OPC_NORM:
        if (lowp) b = (sk_op_bounds){1e-4, 2e-2, 1.6e-2};
        else if (half) b = (sk_op_bounds){4e-6, 3e-3, 2e-3};
        else b = (sk_op_bounds){1e-7, 1e-4, 1e-4};
        break;
    case SK_OPC_MATMUL:
        /* f32 weights on a bf16 backend are rounded by the backend but not
         * by the oracle: one more bf16 rounding per product */
        if (lowp && c->wdtype == F32) b = (sk_op_bounds){5e-4, 3e-2, 3e-2};
        else if (lowp) b = (sk_op_bounds){5e-4, 1e-2, 1.6e-2};
        else if (half) b = (sk_op_bounds){2e-5, 2e-3, 2e-3};
        else b = (sk_op_bounds){1e-6, 1e-3, 1e-3};
        break;
    case SK_OPC_ATTENTION:
        if (lowp) b = (sk_op_bounds){5e-4, 5e-3, 2e-2};
        else if (half) b = (sk_op_bounds){2e-5, 1e-3, 4e-3};
        else b = (sk_op_bounds){1e-6, 1e-4, 1e-3};
        break;
    case SK_OPC_NOISE:
        if (lowp) b = (sk_op_bounds){1e-12, 1e-6, 4e-3}; /* an ulp flip may cross a bf16 tie */
        else b = (sk_op_bounds){1e-12, 1e-6, 1e-6};
        break;
    default: break;
    }
    return b;
}

static int is_op(const sk_op_case *c, const char *op) { return strcmp(c->op, op) == 0; }

int sk_op_case_runs_on(const sk_op_case *c, const sk_backend *be)
{
    if (!c || !be) return 0;
    if (is_op(c, "convert") || is_op(c, "noise")) return 1;
    return be->act_dtype == SK_DTYPE_F32 || be->act_dtype == c->dtype;
}

const char *sk_op_case_describe(const sk_op_case *c, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s [%s] d=%lld,%lld,%lld,%lld,%lld,%lld,%lld i=%d,%d,%d x:%s w:%s",
             c->op, sk_op_class_name(c->cls), (long long)c->d[0], (long long)c->d[1],
             (long long)c->d[2], (long long)c->d[3], (long long)c->d[4], (long long)c->d[5],
             (long long)c->d[6], c->i[0], c->i[1], c->i[2], sk_dtype_name(c->dtype),
             sk_dtype_name(c->wdtype));
    return buf;
}

/* ---- runner ---------------------------------------------------------------- */

#define MAX_T 12

typedef struct {
    sk_backend *be;
    uint32_t seed;
    int nt;
    sk_tensor t[MAX_T];
} run_ctx;

/* Allocates a tensor of dtype dt on the backend, filled with seeded uniform
 * values in [lo, hi) rounded through `round` (the case dtype). Input k of a
 * case always uses the same sub-seed, so both backends see the same data. */
static sk_status mk(run_ctx *k, sk_dtype dt, sk_dtype round, int nd, const int64_t *shape,
                    float lo, float hi, sk_tensor **out)
{
    if (k->nt >= MAX_T) return SK_ERR(SK_E_INTERNAL, "op_cases: too many tensors in one case");
    sk_tensor *t = &k->t[k->nt];
    SK_TRY(sk_tensor_alloc(k->be, dt, nd, shape, t));
    k->nt++;
    size_t n = (size_t)sk_tensor_numel(t);
    float *h = malloc((n ? n : 1) * sizeof(float));
    SK_CHECK(h, SK_E_OOM, "op_cases: out of memory for %zu input values", n);
    sk_test_fill_uniform(h, n, (uint64_t)k->seed * 1000003u + (uint64_t)k->nt, lo, hi);
    sk_round_through(h, n, round);
    sk_status st = sk_tensor_upload_f32(t, h, n);
    free(h);
    *out = t;
    return st;
}

/* Output tensor (contents overwritten by the op; zero-filled so a missing
 * write shows up as 0 rather than garbage). */
static sk_status mk_out(run_ctx *k, sk_dtype dt, int nd, const int64_t *shape, sk_tensor **out)
{
    if (k->nt >= MAX_T) return SK_ERR(SK_E_INTERNAL, "op_cases: too many tensors in one case");
    sk_tensor *t = &k->t[k->nt];
    SK_TRY(sk_tensor_alloc(k->be, dt, nd, shape, t));
    k->nt++;
    *out = t;
    return sk_tensor_zero(t);
}

#define S(...) ((const int64_t[]){__VA_ARGS__})

static sk_status run_op(const sk_op_case *c, run_ctx *k, sk_tensor **res)
{
    const sk_dtype A = c->dtype, W = c->wdtype;
    const int64_t *d = c->d;
    sk_backend *be = k->be;
    const sk_dtype act = be->act_dtype;
    sk_tensor *x, *y, *w, *b = NULL, *z, *m;

    if (is_op(c, "convert")) {
        SK_TRY(mk(k, A, A, 2, S(d[0], d[1]), c->f[0], c->f[1], &x));
        SK_TRY(mk_out(k, W, 2, S(d[0], d[1]), &y));
        *res = y;
        return sk_op_convert(be, y, x);
    }
    if (is_op(c, "linear")) {
        SK_TRY(mk(k, act, A, 2, S(d[0], d[1]), -1, 1, &x));
        SK_TRY(mk(k, W, W, 2, S(d[2], d[1]), -1, 1, &w));
        if (c->i[1]) SK_TRY(mk(k, W, W, 1, S(d[2]), -1, 1, &b));
        SK_TRY(mk_out(k, act, 2, S(d[0], d[2]), &y));
        *res = y;
        return sk_op_linear(be, y, x, w, b, (sk_act)c->i[0]);
    }
    if (is_op(c, "layernorm") || is_op(c, "rmsnorm")) {
        sk_tensor *nw = NULL;
        /* an offset so the mean matters */
        SK_TRY(mk(k, act, A, 2, S(d[0], d[1]), -1.5f, 2.5f, &x));
        if (c->i[0]) SK_TRY(mk(k, W, W, 1, S(d[1]), 0.5f, 1.5f, &nw));
        if (is_op(c, "layernorm") && c->i[1]) SK_TRY(mk(k, W, W, 1, S(d[1]), -0.5f, 0.5f, &b));
        SK_TRY(mk_out(k, act, 2, S(d[0], d[1]), &y));
        *res = y;
        return is_op(c, "layernorm") ? sk_op_layernorm(be, y, x, nw, b, c->f[0])
                                     : sk_op_rmsnorm(be, y, x, nw, c->f[0]);
    }
    if (is_op(c, "modulate") || is_op(c, "gated_add")) {
        const int64_t R = d[0] * d[1];
        SK_TRY(mk(k, act, A, 2, S(R, d[2]), -2, 2, &x));
        SK_TRY(mk(k, act, A, 3, S(d[0], d[3], d[2]), -1, 1, &m));
        if (is_op(c, "modulate")) {
            SK_TRY(mk_out(k, act, 2, S(R, d[2]), &y));
            *res = y;
            return sk_op_modulate(be, y, x, m, c->i[0], c->i[1], d[1], c->i[2], c->f[0]);
        }
        SK_TRY(mk(k, act, A, 2, S(R, d[2]), -1, 1, &y));
        *res = x;
        return sk_op_gated_add(be, x, y, c->i[0] >= 0 ? m : NULL, c->i[0], d[1]);
    }
    if (is_op(c, "axpby") || is_op(c, "mul") || is_op(c, "act")) {
        const float r = is_op(c, "act") ? 6.0f : 1.0f;
        SK_TRY(mk(k, act, A, 2, S(d[0], d[1]), -r, r, &x));
        SK_TRY(mk(k, act, A, 2, S(d[0], d[1]), -r, r, &z));
        SK_TRY(mk_out(k, act, 2, S(d[0], d[1]), &y));
        *res = y;
        if (is_op(c, "axpby")) return sk_op_axpby(be, y, c->f[0], x, c->f[1], z);
        if (is_op(c, "mul")) return sk_op_mul(be, y, x, z);
        return sk_op_act(be, y, x, (sk_act)c->i[0]);
    }
    if (is_op(c, "attention")) {
        const int64_t Nq = d[0], NH = d[1], HD = d[2];
        sk_tensor *q, *kk, *vv, *bias = NULL;
        sk_kv_range rg[3];
        int64_t nk = 0;
        SK_TRY(mk(k, act, A, 3, S(Nq, NH, HD), -1, 1, &q));
        for (int r = 0; r < c->i[0] && r < 3; r++) {
            const int64_t len = d[3 + r];
            SK_TRY(mk(k, act, A, 3, S(len + 5, NH, HD), -1, 1, &kk));
            SK_TRY(mk(k, act, A, 3, S(len + 5, NH, HD), -1, 1, &vv));
            rg[r] = (sk_kv_range){kk, vv, 2 + r, len};
            nk += len;
        }
        if (c->i[1]) SK_TRY(mk(k, act, A, 3, S(NH, Nq, nk), -2, 2, &bias));
        SK_TRY(mk_out(k, act, 2, S(Nq, NH * HD), &y));
        const float scale = c->f[0] != 0.0f ? c->f[0] : (float)(1.0 / sqrt((double)HD));
        *res = y;
        /* sharper scores so the softmax is not nearly uniform */
        return sk_op_attention(be, y, q, rg, c->i[0], scale * 2.0f, bias);
    }
    if (is_op(c, "rope3d")) {
        SK_TRY(mk(k, act, A, 3, S(d[0] * d[1] * d[2], d[3], d[4]), -1, 1, &x));
        *res = x;
        return sk_op_rope3d(be, x, d[0], d[1], d[2], d[5], 10000.0);
    }
    if (is_op(c, "rmsnorm_rope3d")) {
        const int64_t N = d[0] * d[1] * d[2], D = d[3] * d[4];
        sk_tensor *nw = NULL;
        SK_TRY(mk(k, act, A, 2, S(N, D), -1.5f, 2.5f, &x));
        if (c->i[0]) SK_TRY(mk(k, W, W, 1, S(D), 0.5f, 1.5f, &nw));
        SK_TRY(mk_out(k, act, 3, S(N, d[3], d[4]), &y));
        *res = y;
        return sk_op_rmsnorm_rope3d(be, y, x, nw, c->f[0], d[0], d[1], d[2], d[5], 10000.0);
    }
    if (is_op(c, "conv2d")) {
        const int s = c->i[0], p = c->i[1];
        const int64_t Ho = (d[2] + 2 * p - d[5]) / s + 1, Wo = (d[3] + 2 * p - d[6]) / s + 1;
        SK_TRY(mk(k, act, A, 4, S(d[0], d[1], d[2], d[3]), -1, 1, &x));
        SK_TRY(mk(k, W, W, 4, S(d[4], d[1], d[5], d[6]), -0.5f, 0.5f, &w));
        if (c->i[2]) SK_TRY(mk(k, W, W, 1, S(d[4]), -1, 1, &b));
        SK_TRY(mk_out(k, act, 4, S(d[0], d[4], Ho, Wo), &y));
        *res = y;
        return sk_op_conv2d(be, y, x, w, b, s, p);
    }
    if (is_op(c, "pixel_shuffle")) {
        const int64_t p = c->i[0];
        SK_TRY(mk(k, act, A, 4, S(d[0], d[1] * p * p, d[2], d[3]), -1, 1, &x));
        SK_TRY(mk_out(k, act, 4, S(d[0], d[1], d[2] * p, d[3] * p), &y));
        *res = y;
        return sk_op_pixel_shuffle(be, y, x, (int)p);
    }
    if (is_op(c, "pixel_unshuffle")) {
        const int64_t p = c->i[0];
        SK_TRY(mk(k, act, A, 4, S(d[0], d[1], d[2], d[3]), -1, 1, &x));
        SK_TRY(mk_out(k, act, 4, S(d[0], d[1] * p * p, d[2] / p, d[3] / p), &y));
        *res = y;
        return sk_op_pixel_unshuffle(be, y, x, (int)p);
    }
    if (is_op(c, "upsample_nearest")) {
        const int64_t s = c->i[0];
        SK_TRY(mk(k, act, A, 4, S(d[0], d[1], d[2], d[3]), -1, 1, &x));
        SK_TRY(mk_out(k, act, 4, S(d[0], d[1], d[2] * s, d[3] * s), &y));
        *res = y;
        return sk_op_upsample_nearest(be, y, x, (int)s);
    }
    if (is_op(c, "concat_channels")) {
        SK_TRY(mk(k, act, A, 4, S(d[0], d[1], d[3], d[4]), -1, 1, &x));
        SK_TRY(mk(k, act, A, 4, S(d[0], d[2], d[3], d[4]), -1, 1, &z));
        SK_TRY(mk_out(k, act, 4, S(d[0], d[1] + d[2], d[3], d[4]), &y));
        *res = y;
        return sk_op_concat_channels(be, y, x, z);
    }
    if (is_op(c, "patchify")) {
        SK_TRY(mk(k, act, A, 4, S(d[0], d[1], d[2], d[3]), -1, 1, &x));
        SK_TRY(mk_out(k, act, 2, S(d[0] * (d[2] / 2) * (d[3] / 2), d[1] * 4), &y));
        *res = y;
        return sk_op_patchify(be, y, x);
    }
    if (is_op(c, "unpatchify")) {
        SK_TRY(mk(k, act, A, 2, S(d[0] * (d[2] / 2) * (d[3] / 2), d[1] * 4), -1, 1, &x));
        SK_TRY(mk_out(k, act, 4, S(d[0], d[1], d[2], d[3]), &y));
        *res = y;
        return sk_op_unpatchify(be, y, x);
    }
    if (is_op(c, "embedding")) {
        const int64_t V = d[0], D = d[1], N = d[2];
        SK_TRY(mk(k, W, W, 2, S(V, D), -1, 1, &w));
        SK_CHECK(k->nt < MAX_T, SK_E_INTERNAL, "op_cases: too many tensors in one case");
        sk_tensor *ids = &k->t[k->nt];
        SK_TRY(sk_tensor_alloc(be, SK_DTYPE_I32, 1, S(N), ids));
        k->nt++;
        int32_t *hid = malloc((size_t)N * sizeof(int32_t));
        SK_CHECK(hid, SK_E_OOM, "op_cases: out of memory for ids");
        /* first and last rows included, the rest spread by the seed */
        for (int64_t n = 0; n < N; n++)
            hid[n] = n == 0 ? 0 : n == 1 ? (int32_t)(V - 1)
                                         : (int32_t)((k->seed * 7919u + (uint32_t)n * 104729u) % V);
        sk_status st = sk_tensor_upload_raw(ids, hid, (size_t)N * sizeof(int32_t));
        free(hid);
        SK_TRY(st);
        SK_TRY(mk_out(k, act, 2, S(N, D), &y));
        *res = y;
        return sk_op_embedding(be, y, w, ids);
    }
    if (is_op(c, "noise")) {
        SK_TRY(mk_out(k, A, 3, S(d[0], d[1], d[2]), &y));
        *res = y;
        return sk_op_noise(be, y, (uint64_t)k->seed * 0x9E3779B97F4A7C15ull + 12345u, d[3],
                           (uint32_t)c->i[0]);
    }
    return SK_ERR(SK_E_INVALID_ARG, "op_cases: case '%s' names unknown op '%s'", c->name, c->op);
}

sk_status sk_op_case_run(const sk_op_case *c, sk_backend *be, uint32_t seed, float **out,
                         size_t *n)
{
    SK_CHECK(c && be && out && n, SK_E_INVALID_ARG, "op_cases: run without case/backend/output");
    *out = NULL;
    *n = 0;
    run_ctx k;
    memset(&k, 0, sizeof k);
    k.be = be;
    k.seed = seed;
    sk_tensor *res = NULL;
    sk_status st = run_op(c, &k, &res);
    if (st == SK_OK) st = sk_backend_sync(be);
    if (st == SK_OK) {
        size_t cnt = (size_t)sk_tensor_numel(res);
        float *h = malloc((cnt ? cnt : 1) * sizeof(float));
        if (!h) {
            st = SK_ERR(SK_E_OOM, "op_cases: out of memory for %zu outputs", cnt);
        } else {
            st = sk_tensor_download_f32(res, h, cnt);
            if (st == SK_OK) {
                *out = h;
                *n = cnt;
            } else {
                free(h);
            }
        }
    }
    if (st != SK_OK) sk_error_prefix("op case '%s': ", c->name);
    for (int i = 0; i < k.nt; i++) sk_tensor_free(&k.t[i]);
    return st;
}
