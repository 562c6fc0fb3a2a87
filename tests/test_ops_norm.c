/* test_ops_norm.c - LayerNorm, RMSNorm, modulate and gated_add on the CPU:
 * hand-derived rows, statistical properties, the fused LayerNorm+modulate
 * against the two ops in sequence, and shape errors. */
#include "tests/common/test_util.h"

static sk_backend *be;
static void setup(void) { TT_OK(sk_backend_cpu_create(&be)); }
static void teardown(void)
{
    cr_expect_eq(be->bytes_live, 0, "test leaked %zu bytes of backend memory", be->bytes_live);
    sk_backend_free_(&be);
}
TestSuite(ops_norm, .init = setup, .fini = teardown);

Test(ops_norm, layernorm_hand_row)
{
    /* x = 1,2,3,4: mean 2.5, biased var 1.25 */
    const float x[] = {1, 2, 3, 4}, w[] = {1, 2, 1, 1}, b[] = {0, 0, 1, 0};
    const double r = 1.0 / sqrt(1.25 + 1e-5);
    const float want[] = {(float)(-1.5 * r), (float)(-0.5 * r * 2), (float)(0.5 * r + 1),
                          (float)(1.5 * r)};
    sk_tensor tx = tt_new(be, SK_DTYPE_F32, 2, TT_SHAPE(1, 4), x);
    sk_tensor tw = tt_new(be, SK_DTYPE_BF16, 1, TT_SHAPE(4), w);
    sk_tensor tb = tt_new(be, SK_DTYPE_F32, 1, TT_SHAPE(4), b);
    sk_tensor ty = tt_new(be, SK_DTYPE_F32, 2, TT_SHAPE(1, 4), NULL);
    TT_OK(sk_op_layernorm(be, &ty, &tx, &tw, &tb, 1e-5f));
    float *g = tt_get(&ty);
    TT_CLOSE(g, want, 4, TT_F32);
    free(g);
    sk_tensor_free(&tx), sk_tensor_free(&tw), sk_tensor_free(&tb), sk_tensor_free(&ty);
}

Test(ops_norm, layernorm_rows_have_mean0_var1)
{
    const int64_t R = 7, D = 129;
    sk_tensor x = tt_rand(be, SK_DTYPE_F32, 2, TT_SHAPE(R, D), 5, 3.0f, 9.0f); /* large mean */
    sk_tensor y = tt_new(be, SK_DTYPE_F32, 2, TT_SHAPE(R, D), NULL);
    TT_OK(sk_op_layernorm(be, &y, &x, NULL, NULL, 0.0f));
    float *g = tt_get(&y);
    for (int64_t r = 0; r < R; r++) {
        double m = 0, v = 0;
        for (int64_t d = 0; d < D; d++) m += g[r * D + d];
        m /= D;
        for (int64_t d = 0; d < D; d++) v += (g[r * D + d] - m) * (g[r * D + d] - m);
        v /= D;
        cr_assert(fabs(m) < 1e-6, "row %lld mean %g", (long long)r, m);
        cr_assert(fabs(v - 1) < 1e-5, "row %lld var %.9f", (long long)r, v);
    }
    free(g);
    sk_tensor_free(&x), sk_tensor_free(&y);
}

Test(ops_norm, rmsnorm_hand_and_unit_rms)
{
    const float x[] = {3, 4}, w[] = {2, -1};
    const double r = 1.0 / sqrt(12.5 + 1e-6);
    const float want[] = {(float)(3 * r * 2), (float)(4 * r * -1)};
    sk_tensor tx = tt_new(be, SK_DTYPE_F32, 2, TT_SHAPE(1, 2), x);
    sk_tensor tw = tt_new(be, SK_DTYPE_F16, 1, TT_SHAPE(2), w);
    sk_tensor ty = tt_new(be, SK_DTYPE_F32, 2, TT_SHAPE(1, 2), NULL);
    TT_OK(sk_op_rmsnorm(be, &ty, &tx, &tw, 1e-6f));
    float *g = tt_get(&ty);
    TT_CLOSE(g, want, 2, TT_F32);
    free(g);
    sk_tensor_free(&tx), sk_tensor_free(&tw), sk_tensor_free(&ty);

    /* RMS of the output is 1 before the weight */
    const int64_t R = 5, D = 130;
    sk_tensor a = tt_rand(be, SK_DTYPE_F32, 2, TT_SHAPE(R, D), 8, -3, 1);
    sk_tensor aw = tt_rand(be, SK_DTYPE_F32, 1, TT_SHAPE(D), 9, 0.5f, 2.0f);
    sk_tensor ay = tt_new(be, SK_DTYPE_F32, 2, TT_SHAPE(R, D), NULL);
    TT_OK(sk_op_rmsnorm(be, &ay, &a, &aw, 0.0f));
    float *gy = tt_get(&ay), *gw = tt_get(&aw);
    for (int64_t rr = 0; rr < R; rr++) {
        double ss = 0;
        for (int64_t d = 0; d < D; d++) {
            const double u = gy[rr * D + d] / gw[d];
            ss += u * u;
        }
        cr_assert(fabs(sqrt(ss / D) - 1) < 1e-6, "row %lld rms %.9f", (long long)rr, sqrt(ss / D));
    }
    free(gy), free(gw);
    sk_tensor_free(&a), sk_tensor_free(&aw), sk_tensor_free(&ay);
}

/* modulate without LayerNorm, worked per element: two groups of two rows. */
Test(ops_norm, modulate_hand_groups_and_in_place)
{
    const int64_t G = 2, RPG = 2, D = 3, K = 3;
    float x[12], mod[18], want[12];
    for (int i = 0; i < 12; i++) x[i] = (float)(i - 5) * 0.5f;
    for (int i = 0; i < 18; i++) mod[i] = (float)(i % 7) * 0.25f - 0.5f;
    for (int64_t r = 0; r < G * RPG; r++)
        for (int64_t d = 0; d < D; d++) {
            const int64_t g = r / RPG;
            const float shift = mod[(g * K + 2) * D + d], scale = mod[(g * K + 0) * D + d];
            want[r * D + d] = x[r * D + d] * (1 + scale) + shift;
        }
    sk_tensor tx = tt_new(be, SK_DTYPE_F32, 2, TT_SHAPE(G * RPG, D), x);
    sk_tensor tm = tt_new(be, SK_DTYPE_F32, 3, TT_SHAPE(G, K, D), mod);
    TT_OK(sk_op_modulate(be, &tx, &tx, &tm, 2, 0, RPG, 0, 0.0f)); /* y == x */
    float *g = tt_get(&tx);
    TT_CLOSE(g, want, 12, TT_F32);
    free(g);
    TT_FAILS(sk_op_modulate(be, &tx, &tx, &tm, 3, 0, RPG, 0, 0.0f), SK_E_INVALID_ARG,
             "op modulate: i_shift 3");
    TT_FAILS(sk_op_modulate(be, &tx, &tx, &tm, 0, 1, 3, 0, 0.0f), SK_E_SHAPE, "groups of 3 rows");
    sk_tensor_free(&tx), sk_tensor_free(&tm);
}

/* modulate(ln=1) equals layernorm (no affine) followed by modulate(ln=0). */
Test(ops_norm, modulate_ln_equals_layernorm_then_modulate)
{
    const int64_t G = 3, RPG = 5, D = 67, K = 6;
    sk_tensor x = tt_rand(be, SK_DTYPE_F32, 2, TT_SHAPE(G * RPG, D), 21, -2, 3);
    sk_tensor m = tt_rand(be, SK_DTYPE_F32, 3, TT_SHAPE(G, K, D), 22, -1, 1);
    sk_tensor n = tt_new(be, SK_DTYPE_F32, 2, TT_SHAPE(G * RPG, D), NULL);
    sk_tensor y1 = tt_new(be, SK_DTYPE_F32, 2, TT_SHAPE(G * RPG, D), NULL);
    sk_tensor y2 = tt_new(be, SK_DTYPE_F32, 2, TT_SHAPE(G * RPG, D), NULL);
    TT_OK(sk_op_modulate(be, &y1, &x, &m, 4, 1, RPG, 1, 1e-6f));
    TT_OK(sk_op_layernorm(be, &n, &x, NULL, NULL, 1e-6f));
    TT_OK(sk_op_modulate(be, &y2, &n, &m, 4, 1, RPG, 0, 1e-6f));
    float *a = tt_get(&y1), *b = tt_get(&y2);
    TT_CLOSE(a, b, (size_t)(G * RPG * D), 1e-12, 1e-6, 1e-6);
    /* in place (y == x) gives the same as out of place */
    TT_OK(sk_op_modulate(be, &x, &x, &m, 4, 1, RPG, 1, 1e-6f));
    float *c = tt_get(&x);
    cr_assert(memcmp(a, c, (size_t)(G * RPG * D) * sizeof(float)) == 0, "in-place modulate differs");
    free(a), free(b), free(c);
    sk_tensor_free(&x), sk_tensor_free(&m), sk_tensor_free(&n), sk_tensor_free(&y1);
    sk_tensor_free(&y2);
}

Test(ops_norm, gated_add_hand_and_plain)
{
    const int64_t G = 2, RPG = 1, D = 2, K = 2;
    const float x[] = {1, 2, 3, 4}, y[] = {10, 20, 30, 40};
    const float mod[] = {/* g0 */ 9, 9, 0.5f, -1, /* g1 */ 9, 9, 2, 0};
    const float want_gate[] = {1 + 10 * 0.5f, 2 - 20, 3 + 30 * 2, 4};
    const float want_plain[] = {11, 22, 33, 44};
    sk_tensor tx = tt_new(be, SK_DTYPE_F32, 2, TT_SHAPE(G * RPG, D), x);
    sk_tensor ty = tt_new(be, SK_DTYPE_F32, 2, TT_SHAPE(G * RPG, D), y);
    sk_tensor tm = tt_new(be, SK_DTYPE_F32, 3, TT_SHAPE(G, K, D), mod);
    TT_OK(sk_op_gated_add(be, &tx, &ty, &tm, 1, RPG));
    float *g = tt_get(&tx);
    TT_CLOSE(g, want_gate, 4, TT_F32);
    free(g);
    TT_OK(sk_tensor_upload_f32(&tx, x, 4));
    TT_OK(sk_op_gated_add(be, &tx, &ty, NULL, -1, 0));
    g = tt_get(&tx);
    TT_CLOSE(g, want_plain, 4, TT_F32);
    free(g);
    TT_FAILS(sk_op_gated_add(be, &tx, &ty, NULL, 0, 1), SK_E_INVALID_ARG, "op gated_add");
    TT_FAILS(sk_op_gated_add(be, &tx, &ty, &tm, 2, 1), SK_E_INVALID_ARG, "i_gate 2 out of range");
    sk_tensor_free(&tx), sk_tensor_free(&ty), sk_tensor_free(&tm);
}

Test(ops_norm, shape_errors)
{
    sk_tensor x = tt_new(be, SK_DTYPE_F32, 2, TT_SHAPE(3, 8), NULL);
    sk_tensor y = tt_new(be, SK_DTYPE_F32, 2, TT_SHAPE(3, 7), NULL);
    sk_tensor y8 = tt_new(be, SK_DTYPE_F32, 2, TT_SHAPE(3, 8), NULL);
    sk_tensor w = tt_new(be, SK_DTYPE_F32, 1, TT_SHAPE(7), NULL);
    TT_FAILS(sk_op_layernorm(be, &y, &x, NULL, NULL, 1e-6f), SK_E_SHAPE, "op layernorm: y [3, 7] and x [3, 8]");
    TT_FAILS(sk_op_layernorm(be, &y8, &x, &w, NULL, 1e-6f), SK_E_SHAPE, "op layernorm: w [7] and x [3, 8] disagree on D (7 vs 8)");
    TT_FAILS(sk_op_rmsnorm(be, &y8, &x, &w, 1e-6f), SK_E_SHAPE, "op rmsnorm");
    TT_FAILS(sk_op_rmsnorm(be, &y8, &x, NULL, -1.0f), SK_E_INVALID_ARG, "eps");
    sk_tensor_free(&x), sk_tensor_free(&y), sk_tensor_free(&y8), sk_tensor_free(&w);
}
