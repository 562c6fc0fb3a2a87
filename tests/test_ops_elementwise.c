/* test_ops_elementwise.c - axpby, mul, activations and convert on the CPU. */
#include "tests/common/test_util.h"

static sk_backend *be;
static void setup(void) { TT_OK(sk_backend_cpu_create(&be)); }
static void teardown(void)
{
    cr_expect_eq(be->bytes_live, 0, "test leaked %zu bytes of backend memory", be->bytes_live);
    sk_backend_free_(&be);
}
TestSuite(ops_elementwise, .init = setup, .fini = teardown);

Test(ops_elementwise, axpby_and_mul_hand_with_aliasing)
{
    const float x[] = {1, -2, 3.5f, 0}, z[] = {4, 0.5f, -1, 7};
    const float axpby[] = {2 * 1 - 3 * 4, 2 * -2 - 3 * 0.5f, 2 * 3.5f + 3, -21};
    const float mul[] = {4, -1, -3.5f, 0};
    sk_tensor tx = tt_new(be, SK_DTYPE_F32, 2, TT_SHAPE(2, 2), x);
    sk_tensor tz = tt_new(be, SK_DTYPE_F32, 2, TT_SHAPE(2, 2), z);
    sk_tensor ty = tt_new(be, SK_DTYPE_F32, 2, TT_SHAPE(2, 2), NULL);
    TT_OK(sk_op_axpby(be, &ty, 2.0f, &tx, -3.0f, &tz));
    float *g = tt_get(&ty);
    TT_CLOSE(g, axpby, 4, TT_F32);
    free(g);
    TT_OK(sk_op_mul(be, &tx, &tx, &tz)); /* y aliases x */
    g = tt_get(&tx);
    TT_CLOSE(g, mul, 4, TT_F32);
    free(g);
    sk_tensor bad = tt_new(be, SK_DTYPE_F32, 2, TT_SHAPE(4, 1), NULL);
    TT_FAILS(sk_op_axpby(be, &bad, 1, &tx, 1, &tz), SK_E_SHAPE, "op axpby: y [4, 1] and x [2, 2]");
    TT_FAILS(sk_op_mul(be, &ty, &tx, &bad), SK_E_SHAPE, "op mul");
    TT_FAILS(sk_op_axpby(be, &ty, 1, &tx, 1, NULL), SK_E_INVALID_ARG, "op axpby: tensor z is NULL");
    sk_tensor_free(&tx), sk_tensor_free(&tz), sk_tensor_free(&ty), sk_tensor_free(&bad);
}

static double ref_act(double v, sk_act a)
{
    switch (a) {
    case SK_ACT_NONE: return v;
    case SK_ACT_GELU_TANH: return 0.5 * v * (1 + tanh(sqrt(2 / M_PI) * (v + 0.044715 * v * v * v)));
    case SK_ACT_SILU: return v / (1 + exp(-v));
    case SK_ACT_RELU: return v > 0 ? v : 0;
    case SK_ACT_TANH_CLAMP: return 3 * tanh(v / 3);
    case SK_ACT_CLAMP01: return v < 0 ? 0 : v > 1 ? 1 : v;
    default: return NAN;
    }
}

Test(ops_elementwise, activations_match_their_formulas)
{
    const float x[] = {-8, -3, -1, -0.5f, -1e-3f, 0, 1e-3f, 0.25f, 0.5f, 1, 1.5f, 3, 8, 40};
    const size_t n = sizeof x / sizeof x[0];
    sk_tensor tx = tt_new(be, SK_DTYPE_F32, 2, TT_SHAPE(1, (int64_t)n), x);
    sk_tensor ty = tt_new(be, SK_DTYPE_F32, 2, TT_SHAPE(1, (int64_t)n), NULL);
    for (int a = 0; a < SK_ACT_COUNT_; a++) {
        float want[16];
        for (size_t i = 0; i < n; i++) want[i] = (float)ref_act(x[i], (sk_act)a);
        TT_OK(sk_op_act(be, &ty, &tx, (sk_act)a));
        float *g = tt_get(&ty);
        sk_compare_result r = sk_compare(g, want, n, 1e-12, 1e-7, 1e-6);
        cr_assert(r.ok, "act %s: worst [%zu] got %g want %g", sk_act_name((sk_act)a),
                  r.worst_index, g[r.worst_index], want[r.worst_index]);
        free(g);
    }
    /* spot values worked by hand */
    const float spot[] = {0, 1};
    sk_tensor sx = tt_new(be, SK_DTYPE_F32, 2, TT_SHAPE(1, 2), spot);
    sk_tensor sy = tt_new(be, SK_DTYPE_F32, 2, TT_SHAPE(1, 2), NULL);
    TT_OK(sk_op_act(be, &sy, &sx, SK_ACT_SILU));
    float *g = tt_get(&sy);
    cr_assert_eq(g[0], 0.0f);
    cr_assert_float_eq(g[1], 0.7310585786f, 1e-7); /* 1/(1+e^-1) */
    free(g);
    cr_assert_str_eq(sk_act_name(SK_ACT_GELU_TANH), "gelu_tanh");
    cr_assert_str_eq(sk_act_name((sk_act)77), "?");
    sk_tensor_free(&tx), sk_tensor_free(&ty), sk_tensor_free(&sx), sk_tensor_free(&sy);
}

Test(ops_elementwise, nan_propagates_through_activations)
{
    const float x[] = {NAN, -NAN};
    sk_tensor tx = tt_new(be, SK_DTYPE_F32, 2, TT_SHAPE(1, 2), x);
    sk_tensor ty = tt_new(be, SK_DTYPE_F32, 2, TT_SHAPE(1, 2), NULL);
    for (int a = 0; a < SK_ACT_COUNT_; a++) {
        TT_OK(sk_op_act(be, &ty, &tx, (sk_act)a));
        float *g = tt_get(&ty);
        cr_assert(isnan(g[0]) && isnan(g[1]), "act %s turned NaN into %g, %g",
                  sk_act_name((sk_act)a), g[0], g[1]);
        free(g);
    }
    sk_tensor_free(&tx), sk_tensor_free(&ty);
}

Test(ops_elementwise, convert_rounds_like_dtype_h)
{
    const int64_t n = 257;
    sk_tensor x = tt_rand(be, SK_DTYPE_F32, 2, TT_SHAPE(1, n), 3, -300, 300);
    float *hx = tt_get(&x);
    const sk_dtype to[] = {SK_DTYPE_BF16, SK_DTYPE_F16, SK_DTYPE_F8_E4M3};
    for (int t = 0; t < 3; t++) {
        sk_tensor y = tt_new(be, to[t], 2, TT_SHAPE(1, n), NULL);
        TT_OK(sk_op_convert(be, &y, &x));
        uint8_t raw[257 * 2];
        TT_OK(sk_tensor_download_raw(&y, raw, sk_tensor_nbytes(&y)));
        for (int64_t i = 0; i < n; i++) {
            uint32_t got, want;
            if (to[t] == SK_DTYPE_F8_E4M3) {
                got = raw[i];
                want = sk_f32_to_f8e4m3(hx[i]);
            } else {
                uint16_t h;
                memcpy(&h, raw + 2 * i, 2);
                got = h;
                want = to[t] == SK_DTYPE_BF16 ? sk_f32_to_bf16(hx[i]) : sk_f32_to_f16(hx[i]);
            }
            cr_assert_eq(got, want, "%s [%lld] of %g: got 0x%x want 0x%x", sk_dtype_name(to[t]),
                         (long long)i, hx[i], got, want);
        }
        /* and back: exactly the rounded value */
        sk_tensor back = tt_new(be, SK_DTYPE_F32, 2, TT_SHAPE(1, n), NULL);
        TT_OK(sk_op_convert(be, &back, &y));
        float *g = tt_get(&back);
        float *r = malloc((size_t)n * sizeof(float));
        memcpy(r, hx, (size_t)n * sizeof(float));
        sk_round_through(r, (size_t)n, to[t]);
        cr_assert(memcmp(g, r, (size_t)n * sizeof(float)) == 0, "%s round trip differs",
                  sk_dtype_name(to[t]));
        free(g), free(r);
        sk_tensor_free(&y), sk_tensor_free(&back);
    }
    sk_tensor bad = tt_new(be, SK_DTYPE_F32, 2, TT_SHAPE(n, 1), NULL);
    TT_FAILS(sk_op_convert(be, &bad, &x), SK_E_SHAPE, "op convert");
    sk_tensor ids = tt_new(be, SK_DTYPE_I32, 2, TT_SHAPE(1, n), NULL);
    TT_FAILS(sk_op_convert(be, &ids, &x), SK_E_DTYPE, "op convert: f32 -> i32");
    free(hx);
    sk_tensor_free(&x), sk_tensor_free(&bad), sk_tensor_free(&ids);
}
