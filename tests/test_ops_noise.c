/* test_ops_noise.c - the noise op: same values whatever the chunking, equal to
 * runtime/core/noise.h element by element, standard normal statistics, and
 * different seeds / streams / frames giving different draws; and two oracles
 * from outside the header: Random123's Philox4x32-10 known-answer vectors and
 * values of the counter layout from tests/reference/philox_noise.py. */
#include "tests/common/test_util.h"

#include "runtime/core/noise.h"
#include "runtime/io/safetensors.h"

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

/* Random123's known-answer vectors (tests/kat_vectors, the three "philox4x32 10"
 * lines): an independent oracle for the generator itself. A wrong multiplier,
 * Weyl constant, round count or word order fails here and names the cause. */
Test(ops_noise, philox4x32_10_known_answers)
{
    static const uint32_t kat[3][10] = {
        {0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
         0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8},
        {0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff,
         0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd},
        {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0,
         0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1},
    };
    for (int i = 0; i < 3; i++) {
        uint32_t out[4];
        sk_philox4x32_10(kat[i], kat[i][4], kat[i][5], out);
        for (int j = 0; j < 4; j++)
            cr_assert_eq(out[j], kat[i][6 + j],
                         "Philox4x32-10 known answer %d word %d: %08x, Random123 says %08x "
                         "(runtime/core/noise.h)", i, j, out[j], kat[i][6 + j]);
    }
}

/* The counter layout (seed, frame, stream, element) -> value against values written
 * by tests/reference/philox_noise.py (an independent NumPy implementation of the
 * documented layout): catches a swapped counter word, a seed half dropped, the
 * cos/sin parity or the 53-bit uniform construction. */
Test(ops_noise, layout_matches_the_python_reference)
{
    sk_st_file *f = NULL;
    TT_OK(sk_st_open(SK_SOURCE_DIR "/tests/fixtures/kv/noise_philox_samples.safetensors", &f));
    const sk_st_tensor *q = sk_st_find(f, "query"), *v = sk_st_find(f, "value");
    cr_assert(q && v && q->dtype == SK_DTYPE_I64 && v->dtype == SK_DTYPE_F32 && q->ndim == 2 &&
              q->shape[1] == 4 && v->shape[0] == q->shape[0], "samples file malformed");
    const int64_t n = q->shape[0];
    int64_t *qs = malloc((size_t)n * 4 * sizeof *qs);
    float *vs = malloc((size_t)n * sizeof *vs);
    memcpy(qs, q->data, (size_t)n * 4 * sizeof *qs);
    memcpy(vs, v->data, (size_t)n * sizeof *vs);
    int bad = 0;
    for (int64_t i = 0; i < n; i++) {
        const float got = sk_noise_value((uint64_t)qs[4 * i], qs[4 * i + 1], (uint32_t)qs[4 * i + 2],
                                         qs[4 * i + 3]);
        /* double log/sin/cos may differ by an ulp between libm and NumPy: one float ulp */
        if (fabsf(got - vs[i]) > 2e-7f * fmaxf(1.f, fabsf(vs[i]))) {
            if (bad++ < 5)
                cr_log_error("seed %lld frame %lld stream %lld element %lld: %.9g, reference %.9g",
                             (long long)qs[4 * i], (long long)qs[4 * i + 1], (long long)qs[4 * i + 2],
                             (long long)qs[4 * i + 3], got, vs[i]);
        }
    }
    cr_assert_eq(bad, 0, "%d of %lld noise values differ from tests/reference/philox_noise.py "
                 "(the counter layout of runtime/core/noise.h changed?)", bad, (long long)n);
    cr_assert_gt(n, 100);
    free(qs), free(vs);
    sk_st_close(&f);
}
