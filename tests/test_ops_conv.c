/* test_ops_conv.c - conv2d against hand sums and a direct f64 loop, pixel
 * shuffle / unshuffle formulas and round trips, nearest upsampling, channel
 * concat, and shape errors. */
#include "tests/common/test_util.h"

static sk_backend *be;
static void setup(void) { TT_OK(sk_backend_cpu_create(&be)); }
static void teardown(void)
{
    cr_expect_eq(be->bytes_live, 0, "test leaked %zu bytes of backend memory", be->bytes_live);
    sk_backend_free_(&be);
}
TestSuite(ops_conv, .init = setup, .fini = teardown);

/* x = 1..16 on a 4x4 grid, 3x3 kernel of ones, pad 1: each output is the sum
 * of its (clipped) 3x3 neighbourhood. */
Test(ops_conv, box_kernel_hand_sums)
{
    float x[16], w[9];
    for (int i = 0; i < 16; i++) x[i] = (float)(i + 1);
    for (int i = 0; i < 9; i++) w[i] = 1.0f;
    sk_tensor tx = tt_new(be, SK_DTYPE_F32, 4, TT_SHAPE(1, 1, 4, 4), x);
    sk_tensor tw = tt_new(be, SK_DTYPE_BF16, 4, TT_SHAPE(1, 1, 3, 3), w);
    sk_tensor ty = tt_new(be, SK_DTYPE_F32, 4, TT_SHAPE(1, 1, 4, 4), NULL);
    TT_OK(sk_op_conv2d(be, &ty, &tx, &tw, NULL, 1, 1));
    float *g = tt_get(&ty);
    cr_assert_eq(g[0], 1 + 2 + 5 + 6);                    /* corner */
    cr_assert_eq(g[1], 1 + 2 + 3 + 5 + 6 + 7);            /* edge */
    cr_assert_eq(g[5], 1 + 2 + 3 + 5 + 6 + 7 + 9 + 10 + 11); /* interior = 54 */
    cr_assert_eq(g[15], 11 + 12 + 15 + 16);
    free(g);
    /* stride 2, pad 0, 3x3 on 4x4 -> 1x1: the top-left 3x3 sum, plus bias 0.5 */
    const float bias = 0.5f;
    sk_tensor tb = tt_new(be, SK_DTYPE_F32, 1, TT_SHAPE(1), &bias);
    sk_tensor t1 = tt_new(be, SK_DTYPE_F32, 4, TT_SHAPE(1, 1, 1, 1), NULL);
    TT_OK(sk_op_conv2d(be, &t1, &tx, &tw, &tb, 2, 0));
    g = tt_get(&t1);
    cr_assert_eq(g[0], 54.5f);
    free(g);
    sk_tensor_free(&tx), sk_tensor_free(&tw), sk_tensor_free(&ty), sk_tensor_free(&tb);
    sk_tensor_free(&t1);
}

/* A Laplacian kernel on a linear ramp gives 0 inside (second differences). */
Test(ops_conv, laplacian_of_ramp_is_zero_inside)
{
    const int64_t H = 6, W = 7;
    float x[42];
    for (int64_t h = 0; h < H; h++)
        for (int64_t w = 0; w < W; w++) x[h * W + w] = (float)(3 * h - 2 * w + 1);
    const float k[9] = {0, 1, 0, 1, -4, 1, 0, 1, 0};
    sk_tensor tx = tt_new(be, SK_DTYPE_F32, 4, TT_SHAPE(1, 1, H, W), x);
    sk_tensor tw = tt_new(be, SK_DTYPE_F32, 4, TT_SHAPE(1, 1, 3, 3), k);
    sk_tensor ty = tt_new(be, SK_DTYPE_F32, 4, TT_SHAPE(1, 1, H - 2, W - 2), NULL);
    TT_OK(sk_op_conv2d(be, &ty, &tx, &tw, NULL, 1, 0));
    float *g = tt_get(&ty);
    for (int i = 0; i < (H - 2) * (W - 2); i++) cr_assert_eq(g[i], 0.0f, "[%d] = %g", i, g[i]);
    free(g);
    sk_tensor_free(&tx), sk_tensor_free(&tw), sk_tensor_free(&ty);
}

static void conv_vs_loop(int64_t N, int64_t Ci, int64_t H, int64_t W, int64_t Co, int64_t kh,
                         int64_t kw, int s, int p, sk_dtype wdt)
{
    const int64_t Ho = (H + 2 * p - kh) / s + 1, Wo = (W + 2 * p - kw) / s + 1;
    sk_tensor x = tt_rand(be, SK_DTYPE_F32, 4, TT_SHAPE(N, Ci, H, W), 31, -1, 1);
    sk_tensor w = tt_rand(be, wdt, 4, TT_SHAPE(Co, Ci, kh, kw), 32, -1, 1);
    sk_tensor b = tt_rand(be, wdt, 1, TT_SHAPE(Co), 33, -1, 1);
    sk_tensor y = tt_new(be, SK_DTYPE_F32, 4, TT_SHAPE(N, Co, Ho, Wo), NULL);
    TT_OK(sk_op_conv2d(be, &y, &x, &w, &b, s, p));
    float *hx = tt_get(&x), *hw = tt_get(&w), *hb = tt_get(&b), *g = tt_get(&y);
    float *ref = malloc((size_t)(N * Co * Ho * Wo) * sizeof(float));
    for (int64_t n = 0; n < N; n++)
        for (int64_t co = 0; co < Co; co++)
            for (int64_t oy = 0; oy < Ho; oy++)
                for (int64_t ox = 0; ox < Wo; ox++) {
                    double acc = hb[co];
                    for (int64_t ci = 0; ci < Ci; ci++)
                        for (int64_t ky = 0; ky < kh; ky++)
                            for (int64_t kx = 0; kx < kw; kx++) {
                                const int64_t iy = oy * s - p + ky, ix = ox * s - p + kx;
                                if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                                acc += (double)hw[((co * Ci + ci) * kh + ky) * kw + kx] *
                                       hx[((n * Ci + ci) * H + iy) * W + ix];
                            }
                    ref[((n * Co + co) * Ho + oy) * Wo + ox] = (float)acc;
                }
    TT_CLOSE(g, ref, (size_t)(N * Co * Ho * Wo), 1e-11, 1e-5, 1e-4);
    free(hx), free(hw), free(hb), free(g), free(ref);
    sk_tensor_free(&x), sk_tensor_free(&w), sk_tensor_free(&b), sk_tensor_free(&y);
}

Test(ops_conv, random_vs_direct_loop)
{
    conv_vs_loop(1, 3, 7, 11, 5, 3, 3, 1, 1, SK_DTYPE_F32);
    conv_vs_loop(2, 4, 9, 13, 3, 3, 3, 2, 1, SK_DTYPE_F16);
    conv_vs_loop(1, 13, 5, 5, 7, 1, 1, 1, 0, SK_DTYPE_BF16);
    conv_vs_loop(1, 2, 8, 7, 3, 5, 5, 1, 2, SK_DTYPE_F32);
    conv_vs_loop(1, 3, 10, 9, 2, 3, 3, 3, 2, SK_DTYPE_F32); /* pad 2, stride 3 */
    conv_vs_loop(1, 2, 5, 6, 2, 2, 3, 2, 0, SK_DTYPE_F32);  /* non-square kernel */
}

Test(ops_conv, pixel_shuffle_formula_and_round_trip)
{
    const int64_t N = 2, C = 3, H = 5, W = 7, p = 2;
    float *hx = malloc((size_t)(N * C * p * p * H * W) * sizeof(float));
    for (int64_t i = 0; i < N * C * p * p * H * W; i++) hx[i] = (float)i;
    sk_tensor x = tt_new(be, SK_DTYPE_F32, 4, TT_SHAPE(N, C * p * p, H, W), hx);
    sk_tensor y = tt_new(be, SK_DTYPE_F32, 4, TT_SHAPE(N, C, H * p, W * p), NULL);
    sk_tensor back = tt_new(be, SK_DTYPE_F32, 4, TT_SHAPE(N, C * p * p, H, W), NULL);
    TT_OK(sk_op_pixel_shuffle(be, &y, &x, (int)p));
    float *g = tt_get(&y);
    for (int64_t n = 0; n < N; n++)
        for (int64_t c = 0; c < C; c++)
            for (int64_t h = 0; h < H; h++)
                for (int64_t w = 0; w < W; w++)
                    for (int64_t i = 0; i < p; i++)
                        for (int64_t j = 0; j < p; j++) {
                            const float want = hx[((n * C * p * p + c * p * p + i * p + j) * H + h) * W + w];
                            const float got = g[((n * C + c) * H * p + h * p + i) * W * p + w * p + j];
                            cr_assert_eq(got, want, "y[%lld,%lld,%lld,%lld]", (long long)n, (long long)c,
                                         (long long)(h * p + i), (long long)(w * p + j));
                        }
    TT_OK(sk_op_pixel_unshuffle(be, &back, &y, (int)p));
    float *b = tt_get(&back);
    cr_assert(memcmp(b, hx, (size_t)(N * C * p * p * H * W) * sizeof(float)) == 0,
              "unshuffle(shuffle(x)) != x");
    /* and the other way round, p = 3 */
    sk_tensor z = tt_rand(be, SK_DTYPE_F32, 4, TT_SHAPE(1, 2, 6, 9), 4, -1, 1);
    sk_tensor zu = tt_new(be, SK_DTYPE_F32, 4, TT_SHAPE(1, 18, 2, 3), NULL);
    sk_tensor zz = tt_new(be, SK_DTYPE_F32, 4, TT_SHAPE(1, 2, 6, 9), NULL);
    TT_OK(sk_op_pixel_unshuffle(be, &zu, &z, 3));
    TT_OK(sk_op_pixel_shuffle(be, &zz, &zu, 3));
    float *za = tt_get(&z), *zb = tt_get(&zz);
    cr_assert(memcmp(za, zb, 108 * sizeof(float)) == 0, "shuffle(unshuffle(x)) != x");
    TT_FAILS(sk_op_pixel_shuffle(be, &y, &x, 3), SK_E_SHAPE, "op pixel_shuffle");
    TT_FAILS(sk_op_pixel_unshuffle(be, &zu, &z, 4), SK_E_SHAPE, "divisible by p = 4");
    free(hx), free(g), free(b), free(za), free(zb);
    sk_tensor_free(&x), sk_tensor_free(&y), sk_tensor_free(&back), sk_tensor_free(&z);
    sk_tensor_free(&zu), sk_tensor_free(&zz);
}

Test(ops_conv, upsample_nearest_values)
{
    const float x[] = {1, 2, 3, 4, 5, 6}; /* [1, 1, 2, 3] */
    sk_tensor tx = tt_new(be, SK_DTYPE_F32, 4, TT_SHAPE(1, 1, 2, 3), x);
    sk_tensor ty = tt_new(be, SK_DTYPE_F32, 4, TT_SHAPE(1, 1, 4, 6), NULL);
    TT_OK(sk_op_upsample_nearest(be, &ty, &tx, 2));
    float *g = tt_get(&ty);
    const float want[24] = {1, 1, 2, 2, 3, 3, 1, 1, 2, 2, 3, 3,
                            4, 4, 5, 5, 6, 6, 4, 4, 5, 5, 6, 6};
    cr_assert(memcmp(g, want, sizeof want) == 0, "upsample x2 differs");
    free(g);
    sk_tensor t3 = tt_new(be, SK_DTYPE_F32, 4, TT_SHAPE(1, 1, 5, 9), NULL);
    TT_FAILS(sk_op_upsample_nearest(be, &t3, &tx, 2), SK_E_SHAPE, "op upsample_nearest");
    sk_tensor t6 = tt_new(be, SK_DTYPE_F32, 4, TT_SHAPE(1, 1, 6, 9), NULL);
    TT_OK(sk_op_upsample_nearest(be, &t6, &tx, 3));
    g = tt_get(&t6);
    for (int oy = 0; oy < 6; oy++)
        for (int ox = 0; ox < 9; ox++) cr_assert_eq(g[oy * 9 + ox], x[(oy / 3) * 3 + ox / 3]);
    free(g);
    sk_tensor_free(&tx), sk_tensor_free(&ty), sk_tensor_free(&t3), sk_tensor_free(&t6);
}

Test(ops_conv, concat_channels_layout)
{
    const int64_t N = 2, Ca = 2, Cb = 3, H = 2, W = 3;
    float ha[24], hb[36];
    for (int i = 0; i < 24; i++) ha[i] = (float)i;
    for (int i = 0; i < 36; i++) hb[i] = 1000.0f + (float)i;
    sk_tensor a = tt_new(be, SK_DTYPE_F32, 4, TT_SHAPE(N, Ca, H, W), ha);
    sk_tensor b = tt_new(be, SK_DTYPE_F32, 4, TT_SHAPE(N, Cb, H, W), hb);
    sk_tensor y = tt_new(be, SK_DTYPE_F32, 4, TT_SHAPE(N, Ca + Cb, H, W), NULL);
    TT_OK(sk_op_concat_channels(be, &y, &a, &b));
    float *g = tt_get(&y);
    for (int64_t n = 0; n < N; n++)
        for (int64_t c = 0; c < Ca + Cb; c++)
            for (int64_t s = 0; s < H * W; s++) {
                const float want = c < Ca ? ha[(n * Ca + c) * H * W + s] : hb[(n * Cb + c - Ca) * H * W + s];
                cr_assert_eq(g[(n * (Ca + Cb) + c) * H * W + s], want);
            }
    free(g);
    sk_tensor bad = tt_new(be, SK_DTYPE_F32, 4, TT_SHAPE(N, Cb, H, W + 1), NULL);
    TT_FAILS(sk_op_concat_channels(be, &y, &a, &bad), SK_E_SHAPE, "op concat_channels: a [2, 2, 2, 3] and b [2, 3, 2, 4] disagree on W");
    sk_tensor_free(&a), sk_tensor_free(&b), sk_tensor_free(&y), sk_tensor_free(&bad);
}

Test(ops_conv, conv_shape_errors)
{
    sk_tensor x = tt_new(be, SK_DTYPE_F32, 4, TT_SHAPE(1, 3, 8, 8), NULL);
    sk_tensor w = tt_new(be, SK_DTYPE_F32, 4, TT_SHAPE(4, 2, 3, 3), NULL);
    sk_tensor w3 = tt_new(be, SK_DTYPE_F32, 4, TT_SHAPE(4, 3, 3, 3), NULL);
    sk_tensor y = tt_new(be, SK_DTYPE_F32, 4, TT_SHAPE(1, 4, 8, 8), NULL);
    sk_tensor b5 = tt_new(be, SK_DTYPE_F32, 1, TT_SHAPE(5), NULL);
    TT_FAILS(sk_op_conv2d(be, &y, &x, &w, NULL, 1, 1), SK_E_SHAPE, "op conv2d: x [1, 3, 8, 8] and w [4, 2, 3, 3] disagree on Ci (3 vs 2)");
    TT_FAILS(sk_op_conv2d(be, &y, &x, &w3, NULL, 1, 0), SK_E_SHAPE, "Ho = (H + 2*pad - kh)/stride + 1");
    TT_FAILS(sk_op_conv2d(be, &y, &x, &w3, &b5, 1, 1), SK_E_SHAPE, "disagree on Co");
    TT_FAILS(sk_op_conv2d(be, &y, &x, &w3, NULL, 0, 1), SK_E_INVALID_ARG, "stride 0");
    TT_OK(sk_op_conv2d(be, &y, &x, &w3, NULL, 1, 1));
    sk_tensor_free(&x), sk_tensor_free(&w), sk_tensor_free(&w3), sk_tensor_free(&y);
    sk_tensor_free(&b5);
}
