/* test_ops_noise.c - the noise op: same values whatever the chunking, equal to
 * runtime/core/noise.h element by element, standard normal statistics, and
 * different seeds / streams / frames giving different draws. */
#include "tests/common/test_util.h"

#include "runtime/core/noise.h"

static sk_backend *be;
static void setup(void) { TT_OK(sk_backend_cpu_create(&be)); }
static void teardown(void)
{
    cr_expect_eq(be->bytes_live, 0, "test leaked %zu bytes of backend memory", be->bytes_live);
    sk_backend_free_(&be);
}
TestSuite(ops_noise, .init = setup, .fini = teardown);

#define E (3 * 4 * 5)

static float *draw(int64_t F, int64_t frame0, uint64_t seed, uint32_t stream)
{
    sk_tensor y = tt_new(be, SK_DTYPE_F32, 4, TT_SHAPE(F, 3, 4, 5), NULL);
    TT_OK(sk_op_noise(be, &y, seed, frame0, stream));
    float *h = tt_get(&y);
    sk_tensor_free(&y);
    return h;
}

Test(ops_noise, independent_of_chunking)
{
    const uint64_t seed = 0x123456789abcdefull;
    float *all = draw(6, 0, seed, 2);
    for (int chunk = 1; chunk <= 3; chunk += 2) {
        for (int f0 = 0; f0 < 6; f0 += chunk) {
            float *part = draw(chunk, f0, seed, 2);
            cr_assert(memcmp(part, all + f0 * E, (size_t)(chunk * E) * sizeof(float)) == 0,
                      "chunk of %d at frame %d differs from the one-shot draw", chunk, f0);
            free(part);
        }
    }
    /* and equal to the generator itself */
    for (int f = 0; f < 6; f++)
        for (int e = 0; e < E; e++)
            cr_assert_eq(all[f * E + e], sk_noise_value(seed, f, 2, e));
    free(all);
}

Test(ops_noise, standard_normal_statistics)
{
    const int64_t n = 100000;
    sk_tensor y = tt_new(be, SK_DTYPE_F32, 2, TT_SHAPE(1, n), NULL);
    TT_OK(sk_op_noise(be, &y, 7, 0, 0));
    float *h = tt_get(&y);
    double s = 0, ss = 0, s4 = 0;
    int64_t within1 = 0;
    for (int64_t i = 0; i < n; i++) {
        cr_assert(isfinite(h[i]));
        s += h[i];
        ss += (double)h[i] * h[i];
        s4 += (double)h[i] * h[i] * h[i] * h[i];
        within1 += fabs(h[i]) < 1.0;
    }
    const double mean = s / n, var = ss / n - mean * mean, kurt = s4 / n;
    /* standard errors: mean 0.0032, var 0.0045, kurtosis 0.03 */
    cr_assert(fabs(mean) < 0.015, "mean %g", mean);
    cr_assert(fabs(var - 1) < 0.025, "var %g", var);
    cr_assert(fabs(kurt - 3) < 0.15, "fourth moment %g (normal: 3)", kurt);
    cr_assert(fabs((double)within1 / n - 0.6827) < 0.01, "P(|x|<1) = %g", (double)within1 / n);
    free(h);
    sk_tensor_free(&y);
}

static int count_equal(const float *a, const float *b, int n)
{
    int c = 0;
    for (int i = 0; i < n; i++) c += a[i] == b[i];
    return c;
}

Test(ops_noise, seeds_streams_frames_differ)
{
    float *a = draw(2, 0, 1, 0), *b = draw(2, 0, 2, 0), *c = draw(2, 0, 1, 1), *d = draw(2, 1, 1, 0);
    cr_assert_lt(count_equal(a, b, 2 * E), 2, "seeds 1 and 2 gave the same noise");
    cr_assert_lt(count_equal(a, c, 2 * E), 2, "streams 0 and 1 gave the same noise");
    cr_assert_lt(count_equal(a, a + E, E), 2, "frames 0 and 1 gave the same noise");
    cr_assert(memcmp(a + E, d, E * sizeof(float)) == 0, "frame 1 differs between draws");
    /* high 32 bits of the seed matter too */
    float *e = draw(2, 0, 1 + (1ull << 40), 0);
    cr_assert_lt(count_equal(a, e, 2 * E), 2, "seed high bits ignored");
    free(a), free(b), free(c), free(d), free(e);
}

Test(ops_noise, bf16_output_is_rounded_f32_noise)
{
    sk_tensor y = tt_new(be, SK_DTYPE_BF16, 2, TT_SHAPE(2, 33), NULL);
    TT_OK(sk_op_noise(be, &y, 99, 4, 1));
    float *h = tt_get(&y);
    for (int f = 0; f < 2; f++)
        for (int e = 0; e < 33; e++) {
            const float want = sk_bf16_to_f32(sk_f32_to_bf16(sk_noise_value(99, 4 + f, 1, e)));
            cr_assert_eq(h[f * 33 + e], want);
        }
    free(h);
    sk_tensor ids = tt_new(be, SK_DTYPE_I32, 1, TT_SHAPE(3), NULL);
    TT_FAILS(sk_op_noise(be, &ids, 1, 0, 0), SK_E_DTYPE, "op noise: y is i32");
    TT_FAILS(sk_op_noise(be, &y, 1, -1, 0), SK_E_INVALID_ARG, "frame0");
    sk_tensor_free(&y), sk_tensor_free(&ids);
}
