/* test_ops_rope.c - CPU 3D RoPE: identity at position 0, norm preservation,
 * composition of rotations, the exact Wan frequency split (22/21/21 pairs for
 * HD = 128), and argument errors. */
#include "tests/common/test_util.h"

static sk_backend *be;
static void setup(void) { TT_OK(sk_backend_cpu_create(&be)); }
static void teardown(void)
{
    cr_expect_eq(be->bytes_live, 0, "test leaked %zu bytes of backend memory", be->bytes_live);
    sk_backend_free_(&be);
}
TestSuite(ops_rope, .init = setup, .fini = teardown);

Test(ops_rope, identity_at_position_zero)
{
    sk_tensor x = tt_rand(be, SK_DTYPE_F32, 3, TT_SHAPE(1, 3, 128), 1, -2, 2);
    float *before = tt_get(&x);
    TT_OK(sk_op_rope3d(be, &x, 1, 1, 1, 0, 10000.0));
    float *after = tt_get(&x);
    cr_assert(memcmp(before, after, 3 * 128 * sizeof(float)) == 0, "rope at (0,0,0) changed x");
    free(before), free(after);
    sk_tensor_free(&x);
}

Test(ops_rope, preserves_pair_norms)
{
    const int64_t F = 2, Hp = 3, Wp = 5, NH = 2, HD = 128, N = F * Hp * Wp;
    sk_tensor x = tt_rand(be, SK_DTYPE_F32, 3, TT_SHAPE(N, NH, HD), 2, -1, 1);
    float *a = tt_get(&x);
    TT_OK(sk_op_rope3d(be, &x, F, Hp, Wp, 9, 10000.0));
    float *b = tt_get(&x);
    int moved = 0;
    for (int64_t i = 0; i < N * NH * HD; i += 2) {
        const double na = hypot(a[i], a[i + 1]), nb = hypot(b[i], b[i + 1]);
        cr_assert(fabs(na - nb) <= 1e-6 * (na + 1e-6), "pair %lld norm %g -> %g", (long long)i / 2,
                  na, nb);
        moved += a[i] != b[i];
    }
    cr_assert(moved > N * NH * HD / 4, "rope left most values unchanged (%d moved)", moved);
    free(a), free(b);
    sk_tensor_free(&x);
}

/* Rotating by t0 = 3 then by t0 = 4 equals rotating by t0 = 7 (one frame,
 * one token: only the t pairs move). */
Test(ops_rope, rotations_compose)
{
    sk_tensor x = tt_rand(be, SK_DTYPE_F32, 3, TT_SHAPE(1, 2, 64), 3, -1, 1);
    sk_tensor y = tt_new(be, SK_DTYPE_F32, 3, TT_SHAPE(1, 2, 64), NULL);
    TT_OK(sk_tensor_copy(&y, &x));
    TT_OK(sk_op_rope3d(be, &x, 1, 1, 1, 3, 10000.0));
    TT_OK(sk_op_rope3d(be, &x, 1, 1, 1, 4, 10000.0));
    TT_OK(sk_op_rope3d(be, &y, 1, 1, 1, 7, 10000.0));
    float *a = tt_get(&x), *b = tt_get(&y);
    TT_CLOSE(a, b, 128, 1e-12, 1e-6, 1e-5);
    free(a), free(b);
    sk_tensor_free(&x), sk_tensor_free(&y);
}

/* Every pair starts as (1, 0), so after rope it reads (cos a, sin a). For
 * HD = 128: pairs 0..21 are t (freq 10000^(-2j/44)), 22..42 h and 43..63 w
 * (freq 10000^(-2j/42)). Tokens frame-major, then row, then column. */
Test(ops_rope, wan_frequency_split_hd128)
{
    const int64_t F = 2, Hp = 2, Wp = 3, N = F * Hp * Wp, HD = 128, t0 = 5;
    float *h = calloc((size_t)(N * HD), sizeof(float));
    for (int64_t i = 0; i < N * HD; i += 2) h[i] = 1.0f;
    sk_tensor x = tt_new(be, SK_DTYPE_F32, 3, TT_SHAPE(N, 1, HD), h);
    TT_OK(sk_op_rope3d(be, &x, F, Hp, Wp, t0, 10000.0));
    float *g = tt_get(&x);
    for (int64_t n = 0; n < N; n++) {
        const int64_t f = n / (Hp * Wp), row = (n / Wp) % Hp, col = n % Wp;
        for (int64_t p = 0; p < 64; p++) {
            double ang;
            if (p < 22) ang = (double)(t0 + f) * pow(10000.0, -2.0 * p / 44.0);
            else if (p < 43) ang = (double)row * pow(10000.0, -2.0 * (p - 22) / 42.0);
            else ang = (double)col * pow(10000.0, -2.0 * (p - 43) / 42.0);
            const float c = g[n * HD + 2 * p], s = g[n * HD + 2 * p + 1];
            cr_assert(fabs(c - cos(ang)) < 1e-6 && fabs(s - sin(ang)) < 1e-6,
                      "token %lld pair %lld: got (%g, %g) want angle %g -> (%g, %g)",
                      (long long)n, (long long)p, c, s, ang, cos(ang), sin(ang));
        }
    }
    free(g), free(h);
    sk_tensor_free(&x);
}

/* HD = 14: c = 7 pairs split 3 (t) / 2 (h) / 2 (w). */
Test(ops_rope, odd_pair_count_split)
{
    const int64_t HD = 14;
    float h[14] = {0};
    for (int i = 0; i < 14; i += 2) h[i] = 1.0f;
    sk_tensor x = tt_new(be, SK_DTYPE_F32, 3, TT_SHAPE(1, 1, HD), h);
    /* one token at frame position 2 (t0 = 2), row 0, col 0: only t pairs move */
    TT_OK(sk_op_rope3d(be, &x, 1, 1, 1, 2, 10000.0));
    float *g = tt_get(&x);
    for (int p = 0; p < 7; p++) {
        const double ang = p < 3 ? 2.0 * pow(10000.0, -2.0 * p / 6.0) : 0.0;
        cr_assert(fabs(g[2 * p] - cos(ang)) < 1e-6 && fabs(g[2 * p + 1] - sin(ang)) < 1e-6,
                  "pair %d: (%g, %g) want angle %g", p, g[2 * p], g[2 * p + 1], ang);
    }
    free(g);
    sk_tensor_free(&x);
}

Test(ops_rope, argument_errors)
{
    sk_tensor x = tt_new(be, SK_DTYPE_F32, 3, TT_SHAPE(6, 1, 8), NULL);
    sk_tensor odd = tt_new(be, SK_DTYPE_F32, 3, TT_SHAPE(6, 1, 7), NULL);
    sk_tensor x2 = tt_new(be, SK_DTYPE_F32, 2, TT_SHAPE(6, 8), NULL);
    TT_FAILS(sk_op_rope3d(be, &x, 1, 2, 2, 0, 10000.0), SK_E_SHAPE, "op rope3d: x [6, 1, 8] has N = 6 tokens but F*Hp*Wp = 1*2*2 = 4");
    TT_FAILS(sk_op_rope3d(be, &odd, 1, 2, 3, 0, 10000.0), SK_E_SHAPE, "must be even");
    TT_FAILS(sk_op_rope3d(be, &x2, 1, 2, 3, 0, 10000.0), SK_E_SHAPE, "op rope3d: x must be 3D");
    TT_FAILS(sk_op_rope3d(be, &x, 1, 2, 3, -1, 10000.0), SK_E_INVALID_ARG, "t0");
    TT_OK(sk_op_rope3d(be, &x, 1, 2, 3, 0, 10000.0));
    sk_tensor_free(&x), sk_tensor_free(&odd), sk_tensor_free(&x2);
}
