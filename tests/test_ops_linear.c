/* test_ops_linear.c - the CPU linear op against hand-derived values, an
 * independent f64 loop, weight dtypes, shape/dtype errors. (Its speed is a
 * benchmark, `sinkstream bench` / tests/gpu/bench.sh, not a test.) */

#include "tests/common/test_util.h"

static sk_backend *be;
static void setup(void) { TT_OK(sk_backend_cpu_create(&be)); }
static void teardown(void)
{
    cr_expect_eq(be->bytes_live, 0, "test leaked %zu bytes of backend memory", be->bytes_live);
    sk_backend_free_(&be);
}
TestSuite(ops_linear, .init = setup, .fini = teardown);

/* x [2,3], w [2,3], b [2] worked by hand:
 * row 0: [1,2,3].[1,0,-1] + 0.25 = -1.75   [1,2,3].[.5,.5,.5] - 1 = 2
 * row 1: [4,5,6].[1,0,-1] + 0.25 = -1.75   [4,5,6].[.5,.5,.5] - 1 = 6.5 */
static const float X23[] = {1, 2, 3, 4, 5, 6};
static const float W23[] = {1, 0, -1, 0.5f, 0.5f, 0.5f};
static const float B2[] = {0.25f, -1};

static void run_hand(sk_dtype wdt, sk_act act, const float *want)
{
    sk_tensor x = tt_new(be, SK_DTYPE_F32, 2, TT_SHAPE(2, 3), X23);
    sk_tensor w = tt_new(be, wdt, 2, TT_SHAPE(2, 3), W23);
    sk_tensor b = tt_new(be, wdt, 1, TT_SHAPE(2), B2);
    sk_tensor y = tt_new(be, SK_DTYPE_F32, 2, TT_SHAPE(2, 2), NULL);
    TT_OK(sk_op_linear(be, &y, &x, &w, &b, act));
    float *g = tt_get(&y);
    TT_CLOSE(g, want, 4, TT_F32);
    free(g);
    sk_tensor_free(&x);
    sk_tensor_free(&w);
    sk_tensor_free(&b);
    sk_tensor_free(&y);
}

Test(ops_linear, hand_2x3_all_weight_dtypes)
{
    const float want[] = {-1.75f, 2.0f, -1.75f, 6.5f};
    run_hand(SK_DTYPE_F32, SK_ACT_NONE, want);
    run_hand(SK_DTYPE_BF16, SK_ACT_NONE, want); /* all values exact in bf16/f16 */
    run_hand(SK_DTYPE_F16, SK_ACT_NONE, want);
}

Test(ops_linear, hand_2x3_relu_and_gelu)
{
    const float relu[] = {0.0f, 2.0f, 0.0f, 6.5f};
    run_hand(SK_DTYPE_F32, SK_ACT_RELU, relu);
    float gelu[4];
    const double pre[4] = {-1.75, 2.0, -1.75, 6.5};
    for (int i = 0; i < 4; i++) {
        const double v = pre[i];
        gelu[i] = (float)(0.5 * v * (1 + tanh(sqrt(2 / M_PI) * (v + 0.044715 * v * v * v))));
    }
    run_hand(SK_DTYPE_F32, SK_ACT_GELU_TANH, gelu);
}

Test(ops_linear, no_bias)
{
    sk_tensor x = tt_new(be, SK_DTYPE_F32, 2, TT_SHAPE(2, 3), X23);
    sk_tensor w = tt_new(be, SK_DTYPE_F32, 2, TT_SHAPE(2, 3), W23);
    sk_tensor y = tt_new(be, SK_DTYPE_F32, 2, TT_SHAPE(2, 2), NULL);
    TT_OK(sk_op_linear(be, &y, &x, &w, NULL, SK_ACT_NONE));
    float *g = tt_get(&y);
    const float want[] = {-2.0f, 3.0f, -2.0f, 7.5f};
    TT_CLOSE(g, want, 4, TT_F32);
    free(g);
    sk_tensor_free(&x);
    sk_tensor_free(&w);
    sk_tensor_free(&y);
}

/* Odd sizes one past the 32-column block and 2-row step, against a plain f64 loop. */
static void run_random(int64_t M, int64_t K, int64_t N, sk_dtype wdt, sk_act act)
{
    sk_tensor x = tt_rand(be, SK_DTYPE_F32, 2, TT_SHAPE(M, K), 11, -1, 1);
    sk_tensor w = tt_rand(be, wdt, 2, TT_SHAPE(N, K), 12, -1, 1);
    sk_tensor b = tt_rand(be, wdt, 1, TT_SHAPE(N), 13, -1, 1);
    sk_tensor y = tt_new(be, SK_DTYPE_F32, 2, TT_SHAPE(M, N), NULL);
    TT_OK(sk_op_linear(be, &y, &x, &w, &b, act));
    float *hx = tt_get(&x), *hw = tt_get(&w), *hb = tt_get(&b), *g = tt_get(&y);
    float *ref = malloc((size_t)(M * N) * sizeof(float));
    for (int64_t i = 0; i < M; i++)
        for (int64_t n = 0; n < N; n++) {
            double s = hb[n];
            for (int64_t k = 0; k < K; k++) s += (double)hx[i * K + k] * hw[n * K + k];
            if (act == SK_ACT_SILU) s = s / (1 + exp(-s));
            ref[i * N + n] = (float)s;
        }
    TT_CLOSE(g, ref, (size_t)(M * N), 1e-11, 1e-5, 1e-4);
    free(hx), free(hw), free(hb), free(g), free(ref);
    sk_tensor_free(&x), sk_tensor_free(&w), sk_tensor_free(&b), sk_tensor_free(&y);
}

Test(ops_linear, random_odd_sizes_vs_f64_loop)
{
    run_random(1, 1, 1, SK_DTYPE_F32, SK_ACT_NONE);
    run_random(37, 67, 33, SK_DTYPE_F32, SK_ACT_NONE);
    run_random(5, 13, 65, SK_DTYPE_BF16, SK_ACT_SILU);
    run_random(3, 129, 31, SK_DTYPE_F16, SK_ACT_NONE);
}

Test(ops_linear, shape_errors_name_the_op)
{
    sk_tensor x = tt_new(be, SK_DTYPE_F32, 2, TT_SHAPE(4, 7), NULL);
    sk_tensor w = tt_new(be, SK_DTYPE_F32, 2, TT_SHAPE(5, 6), NULL);
    sk_tensor w2 = tt_new(be, SK_DTYPE_F32, 2, TT_SHAPE(5, 7), NULL);
    sk_tensor b = tt_new(be, SK_DTYPE_F32, 1, TT_SHAPE(4), NULL);
    sk_tensor y = tt_new(be, SK_DTYPE_F32, 2, TT_SHAPE(4, 5), NULL);
    sk_tensor y3 = tt_new(be, SK_DTYPE_F32, 3, TT_SHAPE(4, 5, 1), NULL);
    TT_FAILS(sk_op_linear(be, &y, &x, &w, NULL, SK_ACT_NONE), SK_E_SHAPE,
             "op linear: x [4, 7] and w [5, 6] disagree on K (7 vs 6)");
    TT_FAILS(sk_op_linear(be, &y, &x, &w2, &b, SK_ACT_NONE), SK_E_SHAPE, "disagree on N");
    TT_FAILS(sk_op_linear(be, &y3, &x, &w2, NULL, SK_ACT_NONE), SK_E_SHAPE, "op linear: y must be 2D");
    TT_FAILS(sk_op_linear(be, &y, &x, NULL, NULL, SK_ACT_NONE), SK_E_INVALID_ARG, "op linear: tensor w is NULL");
    TT_FAILS(sk_op_linear(be, &y, &x, &w2, NULL, (sk_act)99), SK_E_INVALID_ARG, "unknown activation");
    TT_OK(sk_op_linear(be, &y, &x, &w2, NULL, SK_ACT_NONE));
    sk_tensor_free(&x), sk_tensor_free(&w), sk_tensor_free(&w2), sk_tensor_free(&b);
    sk_tensor_free(&y), sk_tensor_free(&y3);
}

Test(ops_linear, dtype_errors)
{
    sk_tensor xb = tt_new(be, SK_DTYPE_BF16, 2, TT_SHAPE(2, 3), NULL);
    sk_tensor x = tt_new(be, SK_DTYPE_F32, 2, TT_SHAPE(2, 3), NULL);
    sk_tensor w8 = tt_new(be, SK_DTYPE_F8_E4M3, 2, TT_SHAPE(2, 3), NULL);
    sk_tensor w = tt_new(be, SK_DTYPE_F32, 2, TT_SHAPE(2, 3), NULL);
    sk_tensor y = tt_new(be, SK_DTYPE_F32, 2, TT_SHAPE(2, 2), NULL);
    TT_FAILS(sk_op_linear(be, &y, &xb, &w, NULL, SK_ACT_NONE), SK_E_DTYPE, "op linear: x is bf16");
    TT_FAILS(sk_op_linear(be, &y, &x, &w8, NULL, SK_ACT_NONE), SK_E_DTYPE, "weight w is f8e4m3");
    sk_tensor_free(&xb), sk_tensor_free(&x), sk_tensor_free(&w8), sk_tensor_free(&w);
    sk_tensor_free(&y);
}
