/* test_ops_fused.c - sk_op_rmsnorm_rope3d (the DiT's q/k RMSNorm + RoPE):
 * without a fused op in the backend's table it is exactly rmsnorm then
 * rope3d; with one it dispatches there after the shape checks; bad shapes
 * and arguments are refused naming the op. The CPU has no fused kernel, so
 * here the composition (each op checked against PyTorch in test_ops_torch) is
 * the definition; the fused CUDA kernel is compared with it, at every width
 * variant, by the rmsnorm_rope3d cases of tests/common/op_cases.c
 * (gpu_check_ops). */
#include "tests/common/test_util.h"

static sk_backend *be;
static void setup(void) { TT_OK(sk_backend_cpu_create(&be)); }
static void teardown(void)
{
    cr_expect_eq(be->bytes_live, 0, "test leaked %zu bytes", be->bytes_live);
    sk_backend_free_(&be);
}
TestSuite(ops_fused, .init = setup, .fini = teardown);

Test(ops_fused, composition_is_rmsnorm_then_rope)
{
    /* F=2 frames of 2x3 tokens, 2 heads x 12 (6 pairs: t 2, h 2, w 2) */
    const int64_t F = 2, Hp = 2, Wp = 3, N = F * Hp * Wp, NH = 2, HD = 12, D = NH * HD;
    sk_tensor x = tt_rand(be, SK_DTYPE_F32, 2, TT_SHAPE(N, D), 11, -1.0f, 1.0f);
    sk_tensor w = tt_rand(be, SK_DTYPE_F32, 1, TT_SHAPE(D), 12, 0.5f, 1.5f);
    sk_tensor y = tt_new(be, SK_DTYPE_F32, 3, TT_SHAPE(N, NH, HD), NULL);
    sk_tensor r = tt_new(be, SK_DTYPE_F32, 2, TT_SHAPE(N, D), NULL);
    TT_OK(sk_op_rmsnorm_rope3d(be, &y, &x, &w, 1e-6f, F, Hp, Wp, 5, 1e4));
    TT_OK(sk_op_rmsnorm(be, &r, &x, &w, 1e-6f));
    sk_tensor r3;
    TT_OK(sk_tensor_reshape(&r, 3, TT_SHAPE(N, NH, HD), &r3));
    TT_OK(sk_op_rope3d(be, &r3, F, Hp, Wp, 5, 1e4));
    float *a = tt_get(&y), *b = tt_get(&r);
    cr_expect_eq(memcmp(a, b, (size_t)(N * D) * sizeof(float)), 0, "differs from the two ops");
    free(a), free(b);
    sk_tensor_free(&x), sk_tensor_free(&w), sk_tensor_free(&y), sk_tensor_free(&r);
}

static int g_calls;
static sk_status fake_fused(sk_backend *b, sk_tensor *y, const sk_tensor *x, const sk_tensor *w,
                            float eps, int64_t F, int64_t Hp, int64_t Wp, int64_t t0, double theta)
{
    (void)b; (void)y; (void)x; (void)w; (void)eps; (void)F; (void)Hp; (void)Wp; (void)theta;
    g_calls++;
    cr_expect_eq(t0, 7);
    return SK_OK;
}

Test(ops_fused, dispatches_to_the_backends_op_after_checks)
{
    sk_backend_ops ops = *be->ops;
    ops.rmsnorm_rope3d = fake_fused;
    sk_backend fake = *be;
    fake.name = "fake";
    fake.ops = &ops;
    fake.bytes_live = 0;
    sk_tensor x = tt_new(&fake, SK_DTYPE_F32, 2, TT_SHAPE(6, 8), NULL);
    sk_tensor y = tt_new(&fake, SK_DTYPE_F32, 3, TT_SHAPE(6, 2, 4), NULL);
    sk_tensor bad = tt_new(&fake, SK_DTYPE_F32, 3, TT_SHAPE(6, 2, 3), NULL);
    g_calls = 0;
    TT_OK(sk_op_rmsnorm_rope3d(&fake, &y, &x, NULL, 1e-6f, 1, 2, 3, 7, 1e4));
    cr_expect_eq(g_calls, 1);
    TT_FAILS(sk_op_rmsnorm_rope3d(&fake, &bad, &x, NULL, 1e-6f, 1, 2, 3, 7, 1e4), SK_E_SHAPE,
             "op rmsnorm_rope3d: x [6, 8] must be [N, NH*HD]");
    TT_FAILS(sk_op_rmsnorm_rope3d(&fake, &y, &x, NULL, 1e-6f, 1, 2, 2, 7, 1e4), SK_E_SHAPE,
             "F*Hp*Wp");
    TT_FAILS(sk_op_rmsnorm_rope3d(&fake, &y, &x, NULL, 1e-6f, 1, 2, 3, -1, 1e4),
             SK_E_INVALID_ARG, "t0 -1 must be >= 0");
    cr_expect_eq(g_calls, 1);
    sk_tensor_free(&x), sk_tensor_free(&y), sk_tensor_free(&bad);
}
