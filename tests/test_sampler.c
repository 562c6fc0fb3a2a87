/* test_sampler.c - the flow-matching schedule (spec §5.2 values), x0 and
 * re-noise arithmetic, the noise sources (Philox chunk independence, file
 * validation). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/io/safetensors.h"
#include "runtime/core/noise.h"
#include "sampler/noise_source.h"
#include "sampler/schedule.h"

static void ok(sk_status st, const char *what)
{
    cr_assert_eq(st, SK_OK, "%s: %s", what, sk_error_message());
}

Test(schedule, selfforcing_warped_shift5)
{
    /* spec §5.2: t = [1000, 937.5, 833.3333, 625], sigma = t / 1000 */
    const int steps[4] = {1000, 750, 500, 250};
    const double t_ref[4] = {1000.0, 937.5, 2500.0 / 3.0, 625.0};
    sk_schedule s;
    ok(sk_schedule_make(steps, 4, 5.0, 1, &s), "make");
    cr_assert_eq(s.n, 4);
    for (int k = 0; k < 4; k++) {
        cr_expect(fabs(s.t[k] - t_ref[k]) <= 1e-4 * t_ref[k], "t[%d] = %.6f, expected %.6f", k,
                  (double)s.t[k], t_ref[k]);
        cr_expect(fabs(s.sigma[k] - t_ref[k] / 1000.0) <= 1e-6, "sigma[%d] = %.8f", k,
                  (double)s.sigma[k]);
    }
}

Test(schedule, any_step_list_and_shift)
{
    /* shift 1 is the identity warp: t = step */
    const int steps[3] = {900, 400, 100};
    sk_schedule s;
    ok(sk_schedule_make(steps, 3, 1.0, 1, &s), "shift 1");
    for (int k = 0; k < 3; k++) cr_expect(fabs(s.t[k] - steps[k]) < 1e-3, "t[%d] %g", k, (double)s.t[k]);
    /* shift 3, 2 steps: u = 1 and 0.5 -> sigma = 1 and 1.5/2 = 0.75 */
    const int two[2] = {1000, 500};
    ok(sk_schedule_make(two, 2, 3.0, 1, &s), "two steps");
    cr_expect(fabs(s.sigma[1] - 0.75) < 1e-7, "%g", (double)s.sigma[1]);
    cr_expect(fabs(s.t[1] - 750.0) < 1e-4);
    /* no warp: t is the step itself, sigma from the table entry nearest in T */
    ok(sk_schedule_make(two, 2, 5.0, 0, &s), "no warp");
    cr_expect_eq(s.t[1], 500.0f);
    cr_expect(fabs(s.sigma[1] - 0.5) < 2e-3, "sigma %g near 0.5", (double)s.sigma[1]);
}

/* sigma of training-table entry i at shift 5, written out independently */
static double table5(int i)
{
    const double u = (1000 - i) / 1000.0;
    return 5 * u / (1 + 4 * u);
}

/* --no-warp picks the entry nearest in T = 1000 sigma. Neighbouring entries differ
 * by ~2e-3 in sigma, so each value is checked to 1e-7 against the one entry that
 * is nearest, and the test values sit where nearest, next lower and next higher
 * (or a rounded index) give different entries. */
Test(schedule, no_warp_takes_the_nearest_table_entry)
{
    /* t 800: between entries 555 (T 800.36) and 556 (799.71): nearest 556, below t.
     * 500: 833 (500.60) / 834 (498.80): nearest 833, above t. 300: 921 (300.15) /
     * 922 (297.26): 921. 47: 990 (48.08) / 991 (43.44): 990. So neither "the entry
     * with T >= t" nor "T <= t" passes. */
    const int steps[4] = {800, 500, 300, 47};
    const int want_i[4] = {556, 833, 921, 990};
    sk_schedule s;
    ok(sk_schedule_make(steps, 4, 5.0, 0, &s), "no warp");
    for (int k = 0; k < 4; k++) {
        cr_expect_eq(s.t[k], (float)steps[k], "t[%d] = %g: --no-warp keeps the step", k, (double)s.t[k]);
        /* the chosen entry really is the nearest in T */
        const double d = fabs(1000 * table5(want_i[k]) - steps[k]);
        cr_assert(d < fabs(1000 * table5(want_i[k] - 1) - steps[k]) &&
                  d < fabs(1000 * table5(want_i[k] + 1) - steps[k]), "test value %d", k);
        cr_expect(fabs(s.sigma[k] - table5(want_i[k])) < 1e-7,
                  "t %d: sigma %.7f; the nearest table entry (%d) has %.7f, the neighbours "
                  "%.7f / %.7f", steps[k], (double)s.sigma[k], want_i[k], table5(want_i[k]),
                  table5(want_i[k] - 1), table5(want_i[k] + 1));
    }
}

Test(schedule, bad_lists_are_refused)
{
    int steps[8], n;
    const char *bad[] = {"", "1000,,250", "1000,750,", "abc", "1000,1001", "0,1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_expect_neq(sk_schedule_parse_steps(bad[i], steps, 8, &n), SK_OK, "'%s' accepted", bad[i]);
    ok(sk_schedule_parse_steps("1000,750,500,250", steps, 8, &n), "parse");
    cr_expect_eq(n, 4);
    cr_expect_eq(steps[3], 250);
    const int up[2] = {500, 750};
    sk_schedule s;
    cr_expect_eq(sk_schedule_make(up, 2, 5.0, 1, &s), SK_E_INVALID_ARG);
    cr_expect(strstr(sk_error_message(), "decrease") != NULL, "%s", sk_error_message());
    cr_expect_eq(sk_schedule_make(up, 2, -1.0, 1, &s), SK_E_INVALID_ARG);
}

Test(schedule, x0_and_renoise_arithmetic)
{
    sk_backend *be;
    ok(sk_backend_cpu_create(&be), "cpu");
    int64_t sh[4] = {2, 3, 2, 2};
    sk_tensor xt, v, x0, z;
    ok(sk_tensor_alloc(be, SK_DTYPE_F32, 4, sh, &xt), "a");
    ok(sk_tensor_alloc(be, SK_DTYPE_F32, 4, sh, &v), "a");
    ok(sk_tensor_alloc(be, SK_DTYPE_F32, 4, sh, &x0), "a");
    ok(sk_tensor_alloc(be, SK_DTYPE_F32, 4, sh, &z), "a");
    float a[24], b[24], c[24], out[24];
    for (int i = 0; i < 24; i++) { a[i] = 0.1f * i - 1; b[i] = 0.05f * (i % 7) - 0.2f; c[i] = (float)(i % 5) - 2; }
    ok(sk_tensor_upload_f32(&xt, a, 24), "u");
    ok(sk_tensor_upload_f32(&v, b, 24), "u");
    ok(sk_tensor_upload_f32(&z, c, 24), "u");
    ok(sk_sched_x0(be, &x0, &xt, &v, 0.9375f), "x0");
    ok(sk_tensor_download_f32(&x0, out, 24), "d");
    for (int i = 0; i < 24; i++)
        cr_expect(fabs(out[i] - (a[i] - 0.9375 * b[i])) < 1e-6, "x0[%d]", i);
    ok(sk_sched_renoise(be, &xt, &x0, &z, 0.625f), "renoise");
    ok(sk_tensor_download_f32(&xt, out, 24), "d");
    for (int i = 0; i < 24; i++) {
        double x0r = a[i] - 0.9375 * b[i];
        cr_expect(fabs(out[i] - (0.375 * x0r + 0.625 * c[i])) < 1e-6, "renoise[%d]", i);
    }
    sk_tensor_free(&xt); sk_tensor_free(&v); sk_tensor_free(&x0); sk_tensor_free(&z);
    sk_backend_free_(&be);
}

Test(noise_source, philox_is_chunk_independent)
{
    sk_backend *be;
    ok(sk_backend_cpu_create(&be), "cpu");
    sk_noise_source *ns;
    ok(sk_noise_source_philox(1234, &ns), "philox");
    ok(sk_noise_source_prepare(ns, 6, 4, 4, 6, 3, 4), "prepare");
    const int64_t E = 4 * 4 * 6;
    int64_t s6[4] = {6, 4, 4, 6}, s2[4] = {2, 4, 4, 6}, s4[4] = {4, 4, 4, 6};
    sk_tensor all, a, b;
    ok(sk_tensor_alloc(be, SK_DTYPE_F32, 4, s6, &all), "a");
    ok(sk_tensor_alloc(be, SK_DTYPE_F32, 4, s2, &a), "a");
    ok(sk_tensor_alloc(be, SK_DTYPE_F32, 4, s4, &b), "a");
    float h6[6 * 96], h2[2 * 96], h4[4 * 96];
    for (int stream = 0; stream < 2; stream++) {
        /* one chunk of 6 frames vs chunks of 2 + 4 */
        if (stream == 0) {
            ok(sk_noise_initial(ns, &all, 0), "all");
            ok(sk_noise_initial(ns, &a, 0), "a");
            ok(sk_noise_initial(ns, &b, 2), "b");
        } else {
            ok(sk_noise_renoise(ns, &all, 0, 0, 1), "all");
            ok(sk_noise_renoise(ns, &a, 0, 0, 1), "a");
            ok(sk_noise_renoise(ns, &b, 2, 7, 1), "b"); /* chunk index is irrelevant */
        }
        ok(sk_tensor_download_f32(&all, h6, 6 * 96), "d");
        ok(sk_tensor_download_f32(&a, h2, 2 * 96), "d");
        ok(sk_tensor_download_f32(&b, h4, 4 * 96), "d");
        cr_expect(memcmp(h6, h2, sizeof h2) == 0, "frames 0..1 differ between chunkings");
        cr_expect(memcmp(h6 + 2 * E, h4, sizeof h4) == 0, "frames 2..5 differ between chunkings");
        /* the values are the generator's, element by element */
        for (int64_t f = 0; f < 6; f++)
            for (int64_t e = 0; e < E; e += 17)
                cr_expect_eq(h6[f * E + e],
                             sk_noise_value(1234, f, stream ? SK_NOISE_STREAM_RENOISE(1) : SK_NOISE_STREAM_INIT, e));
    }
    /* init and re-noise streams are independent draws */
    float init0[192];
    ok(sk_noise_initial(ns, &a, 0), "a");
    ok(sk_tensor_download_f32(&a, init0, 192), "d");
    cr_expect(memcmp(init0, h6, sizeof init0) != 0);
    /* rough N(0,1) sanity over 576 values */
    double m = 0, v = 0;
    for (int i = 0; i < 6 * 96; i++) m += h6[i];
    m /= 576;
    for (int i = 0; i < 6 * 96; i++) v += (h6[i] - m) * (h6[i] - m);
    v /= 575;
    cr_expect(fabs(m) < 0.2 && v > 0.7 && v < 1.3, "mean %g var %g", m, v);
    sk_tensor_free(&all); sk_tensor_free(&a); sk_tensor_free(&b);
    sk_noise_source_free(&ns);
    sk_backend_free_(&be);
}

Test(noise_source, file_is_validated_up_front)
{
    char dir[] = "/tmp/sk_noise_XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/noise.safetensors", dir);
    sk_st_writer *w;
    ok(sk_st_writer_create(&w), "writer");
    float buf[6 * 16];
    for (int i = 0; i < 6 * 16; i++) buf[i] = (float)i / 100;
    int64_t sn[4] = {6, 1, 4, 4}, sr[4] = {3, 1, 4, 4};
    ok(sk_st_writer_add_f32(w, "noise", SK_DTYPE_F32, 4, sn, buf), "noise");
    ok(sk_st_writer_add_f32(w, "renoise.0.0", SK_DTYPE_F32, 4, sr, buf), "r");
    ok(sk_st_writer_add_f32(w, "renoise.1.0", SK_DTYPE_F32, 4, sr, buf), "r");
    ok(sk_st_writer_save(w, path), "save");
    sk_st_writer_free(&w);
    sk_noise_source *ns;
    ok(sk_noise_source_file(path, &ns), "open");
    ok(sk_noise_source_prepare(ns, 6, 1, 4, 4, 3, 2), "2 steps, 2 chunks");
    cr_expect_neq(sk_noise_source_prepare(ns, 6, 1, 4, 4, 3, 3), SK_OK, "3 steps need renoise.*.1");
    cr_expect(strstr(sk_error_message(), "renoise.0.1") != NULL, "%s", sk_error_message());
    cr_expect_neq(sk_noise_source_prepare(ns, 9, 1, 4, 4, 3, 2), SK_OK, "9 frames > 6");
    cr_expect(strstr(sk_error_message(), "'noise'") != NULL, "%s", sk_error_message());
    cr_expect_neq(sk_noise_source_prepare(ns, 6, 2, 4, 4, 3, 2), SK_OK, "2 channels");
    /* the values come back exactly */
    ok(sk_noise_source_prepare(ns, 6, 1, 4, 4, 3, 2), "prepare");
    sk_backend *be;
    ok(sk_backend_cpu_create(&be), "cpu");
    sk_tensor t;
    ok(sk_tensor_alloc(be, SK_DTYPE_F32, 4, sr, &t), "a");
    ok(sk_noise_initial(ns, &t, 3), "frames 3..5");
    float got[48];
    ok(sk_tensor_download_f32(&t, got, 48), "d");
    cr_expect(memcmp(got, buf + 48, sizeof got) == 0);
    sk_tensor_free(&t);
    sk_backend_free_(&be);
    sk_noise_source_free(&ns);
    unlink(path);
    rmdir(dir);
}
