/* test_fp8.c - the FP8 (e4m3) path on the CPU: the row quantization rules of
 * runtime/core/fp8.h, the quantize_rows / linear_fp8 ops of both CPU backends
 * against an independent f64 computation, and a whole run of the tiny DiT with
 * --dtype fp8 against f32. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/compare.h"
#include "common/cli_run.h"
#include "common/fp8_run.h"
#include "runtime/core/backend.h"
#include "runtime/core/fp8.h"
#include "runtime/cpu/cpu_fast.h"

static void ok(sk_status st, const char *what)
{
    cr_assert_eq(st, SK_OK, "%s: %s", what, sk_error_message());
}

/* e4m3 as the hardware's satfinite cvt: round to nearest even, +-448 saturation */
Test(fp8, saturating_rounding)
{
    cr_expect_eq(sk_f8e4m3_to_f32(sk_fp8_sat(1.0625f)), 1.0f, "tie -> even mantissa (down)");
    cr_expect_eq(sk_f8e4m3_to_f32(sk_fp8_sat(1.1875f)), 1.25f, "tie -> even mantissa (up)");
    cr_expect_eq(sk_f8e4m3_to_f32(sk_fp8_sat(1.07f)), 1.125f, "above the tie rounds up");
    cr_expect_eq(sk_fp8_sat(500.0f), 0x7e, "500 saturates to 448 (not NaN)");
    cr_expect_eq(sk_fp8_sat(-1e30f), 0xfe, "-1e30 saturates to -448");
    cr_expect_eq(sk_fp8_sat(464.0f), 0x7e, "464 -> 448");
    cr_expect_eq(sk_fp8_sat(INFINITY), 0x7e, "+Inf saturates (satfinite)");
    cr_expect(isnan(sk_f8e4m3_to_f32(sk_fp8_sat(NAN))), "NaN stays NaN");
    /* subnormals: unit 2^-9; 1.5 units is a tie -> 2 units */
    cr_expect_eq(sk_fp8_sat(1.5f / 512.0f), 0x02, "subnormal tie to even");
    cr_expect_eq(sk_fp8_sat(0.4f / 512.0f), 0x00, "below half a unit -> 0");
}

Test(fp8, row_scales)
{
    uint8_t q[4];
    const float z[4] = {0, 0, -0.0f, 0};
    cr_expect_eq(sk_fp8_quantize_row(z, 4, q), 1.0f, "zero row: scale 1");
    for (int i = 0; i < 4; i++) cr_expect_eq(q[i] & 0x7f, 0, "zero row quantizes to 0");
    const float x[4] = {2.0f, -1.0f, 0.5f, NAN};
    float s = sk_fp8_quantize_row(x, 4, q);
    cr_expect_eq(s, 2.0f / 448.0f, "amax 2 (NaN ignored): scale %g", (double)s);
    cr_expect_eq(q[0], 0x7e, "the amax element maps to 448");
    cr_expect_eq(sk_f8e4m3_to_f32(q[1]), -224.0f, "-1 -> -224");
    cr_expect(isnan(sk_f8e4m3_to_f32(q[3])), "NaN element stays NaN");
    const float inf[3] = {1.0f, INFINITY, 3.0f};
    s = sk_fp8_quantize_row(inf, 3, q);
    cr_expect(isinf(s), "a row with Inf gets scale Inf");
    cr_expect(isnan(sk_f8e4m3_to_f32(q[1])), "Inf * 0 = NaN: the Inf stays visible");
}

/* random rows: every dequantized value within half an e4m3 step of x; amax -> +-448 */
static void check_quantize(sk_backend *be)
{
    const int64_t M = 37, K = 200;
    float *x = malloc((size_t)(M * K) * sizeof *x);
    sk_test_fill_normal(x, (size_t)(M * K), 11, 1.0f);
    for (int64_t k = 0; k < K; k++) x[5 * K + k] *= 1e-4f; /* a row with subnormals */
    sk_tensor xt, qt, st;
    int64_t xs[2] = {M, K};
    ok(sk_tensor_alloc(be, SK_DTYPE_F32, 2, xs, &xt), "alloc");
    ok(sk_tensor_alloc(be, SK_DTYPE_F8_E4M3, 2, xs, &qt), "alloc");
    ok(sk_tensor_alloc(be, SK_DTYPE_F32, 1, &M, &st), "alloc");
    ok(sk_tensor_upload_f32(&xt, x, (size_t)(M * K)), "upload");
    ok(sk_op_quantize_rows(be, &qt, &st, &xt), "quantize_rows");
    const uint8_t *q = qt.data;
    const float *s = st.data;
    for (int64_t m = 0; m < M; m++) {
        double amax = 0;
        for (int64_t k = 0; k < K; k++) amax = fmax(amax, fabs(x[m * K + k]));
        cr_expect(fabs(s[m] - amax / 448.0) <= 1e-6 * amax, "row %lld scale", (long long)m);
        int top = 0;
        for (int64_t k = 0; k < K; k++) {
            const double d = sk_f8e4m3_to_f32(q[m * K + k]) * (double)s[m];
            const double xv = x[m * K + k];
            /* half a step: 2^-4 relative (3 mantissa bits), or half a subnormal unit */
            const double tol = fmax(fabs(xv) / 16.0, (double)s[m] / 1024.0) * (1 + 1e-6);
            cr_expect(fabs(d - xv) <= tol, "row %lld col %lld: %g -> %g", (long long)m,
                      (long long)k, xv, d);
            if ((q[m * K + k] & 0x7f) == 0x7e) top = 1;
        }
        cr_expect(top, "row %lld: its amax element is not +-448", (long long)m);
    }
    sk_tensor_free(&xt), sk_tensor_free(&qt), sk_tensor_free(&st);
    free(x);
}

/* linear_fp8 against f64 sums of the dequantized operands */
static void check_linear(sk_backend *be, int64_t M, int64_t K, int64_t N, sk_act act, int bias)
{
    float *x = malloc((size_t)(M * K) * sizeof *x), *w = malloc((size_t)(N * K) * sizeof *w);
    float *b = malloc((size_t)N * sizeof *b), *y = malloc((size_t)(M * N) * sizeof *y);
    float *ref = malloc((size_t)(M * N) * sizeof *ref);
    uint8_t *wq = malloc((size_t)(N * K));
    float *sw = malloc((size_t)N * sizeof *sw);
    sk_test_fill_normal(x, (size_t)(M * K), 21, 1.0f);
    sk_test_fill_uniform(w, (size_t)(N * K), 22, -0.1f, 0.1f);
    sk_test_fill_uniform(b, (size_t)N, 23, -0.5f, 0.5f);
    for (int64_t n = 0; n < N; n++) sw[n] = sk_fp8_quantize_row(w + n * K, K, wq + n * K);
    int64_t xs[2] = {M, K}, ws[2] = {N, K}, ys[2] = {M, N};
    sk_tensor xt, qt, sxt, wt, swt, bt, yt;
    ok(sk_tensor_alloc(be, SK_DTYPE_F32, 2, xs, &xt), "alloc");
    ok(sk_tensor_alloc(be, SK_DTYPE_F8_E4M3, 2, xs, &qt), "alloc");
    ok(sk_tensor_alloc(be, SK_DTYPE_F32, 1, &M, &sxt), "alloc");
    ok(sk_tensor_alloc(be, SK_DTYPE_F8_E4M3, 2, ws, &wt), "alloc");
    ok(sk_tensor_alloc(be, SK_DTYPE_F32, 1, &N, &swt), "alloc");
    ok(sk_tensor_alloc(be, SK_DTYPE_F32, 1, &N, &bt), "alloc");
    ok(sk_tensor_alloc(be, SK_DTYPE_F32, 2, ys, &yt), "alloc");
    ok(sk_tensor_upload_f32(&xt, x, (size_t)(M * K)), "upload");
    ok(sk_tensor_upload_raw(&wt, wq, (size_t)(N * K)), "upload");
    ok(sk_tensor_upload_raw(&swt, sw, (size_t)N * 4), "upload");
    ok(sk_tensor_upload_f32(&bt, b, (size_t)N), "upload");
    ok(sk_op_quantize_rows(be, &qt, &sxt, &xt), "quantize_rows");
    ok(sk_op_linear_fp8(be, &yt, &qt, &sxt, &wt, &swt, bias ? &bt : NULL, act), "linear_fp8");
    ok(sk_tensor_download_f32(&yt, y, (size_t)(M * N)), "download");
    const uint8_t *q = qt.data;
    const float *sx = sxt.data;
    for (int64_t m = 0; m < M; m++)
        for (int64_t n = 0; n < N; n++) {
            double acc = 0;
            for (int64_t k = 0; k < K; k++)
                acc += (double)sk_f8e4m3_to_f32(q[m * K + k]) * sk_f8e4m3_to_f32(wq[n * K + k]);
            double v = acc * sx[m] * sw[n] + (bias ? b[n] : 0.0);
            if (act == SK_ACT_GELU_TANH)
                v = 0.5 * v * (1 + tanh(0.7978845608028654 * (v + 0.044715 * v * v * v)));
            ref[m * N + n] = (float)v;
        }
    sk_compare_result r = sk_compare(y, ref, (size_t)(M * N), 1e-10, 1e-5, 1e-4);
    char buf[512];
    sk_compare_format(&r, y, ref, buf, sizeof buf);
    cr_expect(r.ok, "%s linear_fp8 M=%lld K=%lld N=%lld act %d: %s", be->name, (long long)M,
              (long long)K, (long long)N, (int)act, buf);
    /* and the FP8 product is close to the f32 product of the unquantized operands */
    double num = 0, den = 0;
    for (int64_t m = 0; m < M; m++)
        for (int64_t n = 0; n < N; n++) {
            double acc = 0;
            for (int64_t k = 0; k < K; k++) acc += (double)x[m * K + k] * w[n * K + k];
            double v = acc + (bias ? b[n] : 0.0);
            if (act == SK_ACT_GELU_TANH)
                v = 0.5 * v * (1 + tanh(0.7978845608028654 * (v + 0.044715 * v * v * v)));
            num += (v - y[m * N + n]) * (v - y[m * N + n]);
            den += v * v;
        }
    cr_expect(sqrt(num / den) < 0.06 && sqrt(num / den) > 1e-4,
              "fp8 vs exact: relative error %g (expected a few %%)", sqrt(num / den));
    sk_tensor_free(&xt), sk_tensor_free(&qt), sk_tensor_free(&sxt), sk_tensor_free(&wt);
    sk_tensor_free(&swt), sk_tensor_free(&bt), sk_tensor_free(&yt);
    free(x), free(w), free(b), free(y), free(ref), free(wq), free(sw);
}

Test(fp8, ops_cpu_ref)
{
    sk_backend *be = NULL;
    ok(sk_backend_cpu_create(&be), "cpu-ref");
    check_quantize(be);
    check_linear(be, 33, 96, 40, SK_ACT_NONE, 1);
    check_linear(be, 8, 64, 128, SK_ACT_GELU_TANH, 1);
    check_linear(be, 5, 48, 16, SK_ACT_NONE, 0);
    sk_backend_free_(&be);
}

Test(fp8, ops_cpu_fast)
{
    sk_backend *be = NULL;
    ok(sk_backend_cpu_fast_create(&be), "cpu fast");
    check_quantize(be);
    check_linear(be, 33, 96, 40, SK_ACT_NONE, 1);
    check_linear(be, 8, 64, 128, SK_ACT_GELU_TANH, 1);
    sk_backend_free_(&be);
}

/* modulate_fp8 = modulate, then quantize_rows of its output: y equal to sk_op_modulate's,
 * q/s equal to quantize_rows(y), whether the backend fuses them or not (layernorm_fp8
 * likewise); bad shapes are refused naming the op */
static void check_modulate_fp8(sk_backend *be)
{
    const int64_t G = 3, Kmod = 6, rpg = 4, R = G * rpg, D = 64;
    float *x = malloc((size_t)(R * D) * sizeof *x), *m = malloc((size_t)(G * Kmod * D) * sizeof *m);
    sk_test_fill_normal(x, (size_t)(R * D), 21, 2.0f);
    sk_test_fill_normal(m, (size_t)(G * Kmod * D), 22, 0.5f);
    sk_tensor xt, mt, y1, y2, q1, q2, s1, s2, qbad;
    int64_t xs[2] = {R, D}, ms[3] = {G, Kmod, D}, bad[2] = {R, D - 8};
    ok(sk_tensor_alloc(be, SK_DTYPE_F32, 2, xs, &xt), "alloc");
    ok(sk_tensor_alloc(be, SK_DTYPE_F32, 3, ms, &mt), "alloc");
    ok(sk_tensor_alloc(be, SK_DTYPE_F32, 2, xs, &y1), "alloc");
    ok(sk_tensor_alloc(be, SK_DTYPE_F32, 2, xs, &y2), "alloc");
    ok(sk_tensor_alloc(be, SK_DTYPE_F8_E4M3, 2, xs, &q1), "alloc");
    ok(sk_tensor_alloc(be, SK_DTYPE_F8_E4M3, 2, xs, &q2), "alloc");
    ok(sk_tensor_alloc(be, SK_DTYPE_F8_E4M3, 2, bad, &qbad), "alloc");
    ok(sk_tensor_alloc(be, SK_DTYPE_F32, 1, &R, &s1), "alloc");
    ok(sk_tensor_alloc(be, SK_DTYPE_F32, 1, &R, &s2), "alloc");
    ok(sk_tensor_upload_f32(&xt, x, (size_t)(R * D)), "upload");
    ok(sk_tensor_upload_f32(&mt, m, (size_t)(G * Kmod * D)), "upload");
    for (int ln = 0; ln < 2; ln++) {
        for (int fused = 0; fused < 2; fused++) {
            setenv("SK_FP8_FUSED_NORM", fused ? "1" : "0", 1);
            ok(sk_op_modulate_fp8(be, &y1, &q1, &s1, &xt, &mt, 3, 4, rpg, ln, 1e-6f),
               "modulate_fp8");
            ok(sk_op_modulate(be, &y2, &xt, &mt, 3, 4, rpg, ln, 1e-6f), "modulate");
            ok(sk_op_quantize_rows(be, &q2, &s2, &y2), "quantize_rows");
            cr_expect(memcmp(y1.data, y2.data, (size_t)(R * D) * 4) == 0,
                      "ln %d fused %d: y differs from modulate's", ln, fused);
            cr_expect(memcmp(q1.data, q2.data, (size_t)(R * D)) == 0,
                      "ln %d fused %d: q differs from quantize_rows(y)", ln, fused);
            cr_expect(memcmp(s1.data, s2.data, (size_t)R * 4) == 0,
                      "ln %d fused %d: scales differ from quantize_rows(y)", ln, fused);
            /* and the scales are the row rules of y itself */
            const float *y = y1.data, *sc = s1.data;
            for (int64_t r = 0; r < R; r++) {
                float amax = 0;
                for (int64_t d = 0; d < D; d++) amax = fmaxf(amax, fabsf(y[r * D + d]));
                cr_expect_eq(sc[r], amax / 448.0f, "row %lld scale", (long long)r);
            }
        }
    }
    /* layernorm_fp8 (affine from mod's first rows as w and b) the same way */
    sk_tensor m2, wt, bt;
    int64_t d1[1] = {D}, m2s[2] = {G * Kmod, D};
    ok(sk_tensor_reshape(&mt, 2, m2s, &m2), "mod as rows");
    wt = sk_tensor_rows(&m2, 0, 1), bt = sk_tensor_rows(&m2, 1, 1);
    ok(sk_tensor_reshape(&wt, 1, d1, &wt), "w view");
    ok(sk_tensor_reshape(&bt, 1, d1, &bt), "b view");
    for (int fused = 0; fused < 2; fused++) {
        setenv("SK_FP8_FUSED_NORM", fused ? "1" : "0", 1);
        ok(sk_op_layernorm_fp8(be, &y1, &q1, &s1, &xt, &wt, &bt, 1e-6f), "layernorm_fp8");
        ok(sk_op_layernorm(be, &y2, &xt, &wt, &bt, 1e-6f), "layernorm");
        ok(sk_op_quantize_rows(be, &q2, &s2, &y2), "quantize_rows");
        cr_expect(memcmp(y1.data, y2.data, (size_t)(R * D) * 4) == 0 &&
                      memcmp(q1.data, q2.data, (size_t)(R * D)) == 0 &&
                      memcmp(s1.data, s2.data, (size_t)R * 4) == 0,
                  "layernorm_fp8 (fused %d) differs from layernorm + quantize_rows", fused);
    }
    unsetenv("SK_FP8_FUSED_NORM");
    cr_expect_eq(sk_op_layernorm_fp8(be, &y1, &qbad, &s1, &xt, &wt, &bt, 1e-6f), SK_E_SHAPE,
                 "layernorm_fp8: q of the wrong width is refused");
    cr_expect(strstr(sk_error_message(), "layernorm_fp8"), "message names the op: %s",
              sk_error_message());
    cr_expect_eq(sk_op_modulate_fp8(be, &y1, &qbad, &s1, &xt, &mt, 3, 4, rpg, 1, 1e-6f), SK_E_SHAPE,
                 "q of the wrong width is refused");
    cr_expect(strstr(sk_error_message(), "modulate_fp8"), "message names the op: %s",
              sk_error_message());
    cr_expect_neq(sk_op_modulate_fp8(be, &y1, &q1, &s1, &xt, &mt, 3, 7, rpg, 1, 1e-6f), SK_OK,
                  "i_scale out of range is refused");
    sk_tensor_free(&xt), sk_tensor_free(&mt), sk_tensor_free(&y1), sk_tensor_free(&y2);
    sk_tensor_free(&q1), sk_tensor_free(&q2), sk_tensor_free(&s1), sk_tensor_free(&s2);
    sk_tensor_free(&qbad);
    free(x), free(m);
}

Test(fp8, modulate_fp8_cpu)
{
    sk_backend *be = NULL;
    ok(sk_backend_cpu_create(&be), "cpu-ref");
    check_modulate_fp8(be);
    sk_backend_free_(&be);
    ok(sk_backend_cpu_fast_create(&be), "cpu fast");
    check_modulate_fp8(be);
    sk_backend_free_(&be);
}

/* a NaN in one token row spoils that row of the output only */
Test(fp8, nan_stays_in_its_row)
{
    sk_backend *be = NULL;
    ok(sk_backend_cpu_create(&be), "cpu-ref");
    const int64_t M = 3, K = 16, N = 16;
    float x[48], w[256], y[48];
    sk_test_fill_uniform(x, 48, 1, -1, 1);
    sk_test_fill_uniform(w, 256, 2, -1, 1);
    x[K + 3] = NAN;
    uint8_t wq[256];
    float sw[16];
    for (int64_t n = 0; n < N; n++) sw[n] = sk_fp8_quantize_row(w + n * K, K, wq + n * K);
    int64_t xs[2] = {M, K}, ws[2] = {N, K}, ys[2] = {M, N};
    sk_tensor xt, qt, sxt, wt, swt, yt;
    ok(sk_tensor_alloc(be, SK_DTYPE_F32, 2, xs, &xt), "alloc");
    ok(sk_tensor_alloc(be, SK_DTYPE_F8_E4M3, 2, xs, &qt), "alloc");
    ok(sk_tensor_alloc(be, SK_DTYPE_F32, 1, &M, &sxt), "alloc");
    ok(sk_tensor_alloc(be, SK_DTYPE_F8_E4M3, 2, ws, &wt), "alloc");
    ok(sk_tensor_alloc(be, SK_DTYPE_F32, 1, &N, &swt), "alloc");
    ok(sk_tensor_alloc(be, SK_DTYPE_F32, 2, ys, &yt), "alloc");
    ok(sk_tensor_upload_f32(&xt, x, 48), "upload");
    ok(sk_tensor_upload_raw(&wt, wq, 256), "upload");
    ok(sk_tensor_upload_raw(&swt, sw, 64), "upload");
    ok(sk_op_quantize_rows(be, &qt, &sxt, &xt), "quantize");
    ok(sk_op_linear_fp8(be, &yt, &qt, &sxt, &wt, &swt, NULL, SK_ACT_NONE), "linear_fp8");
    ok(sk_tensor_download_f32(&yt, y, 48), "download");
    for (int64_t n = 0; n < N; n++) {
        cr_expect(isfinite(y[n]) && isfinite(y[2 * N + n]), "rows 0 and 2 stay finite");
        cr_expect(isnan(y[N + n]), "row 1 (with the NaN) is NaN at %lld", (long long)n);
    }
    /* a wrong dtype is refused with a message, not run */
    cr_expect_eq(sk_op_linear_fp8(be, &yt, &xt, &sxt, &wt, &swt, NULL, SK_ACT_NONE), SK_E_DTYPE);
    cr_expect(strstr(sk_error_message(), "linear_fp8") != NULL, "%s", sk_error_message());
    sk_tensor_free(&xt), sk_tensor_free(&qt), sk_tensor_free(&sxt), sk_tensor_free(&wt);
    sk_tensor_free(&swt), sk_tensor_free(&yt);
    sk_backend_free_(&be);
}

/* the tiny DiT fixture, three chunks, --dtype fp8 against f32 on both CPU backends:
 * close (FP8 noise only), not equal (FP8 really ran), weights smaller */
Test(fp8, tiny_dit_fp8_vs_f32)
{
    float *a = malloc(SK_FP8_RUN_VALS * sizeof *a), *b = malloc(SK_FP8_RUN_VALS * sizeof *b);
    float *c = malloc(SK_FP8_RUN_VALS * sizeof *c);
    char err[512] = "";
    int64_t w32 = 0, w8 = 0;
    cr_assert_eq(sk_test_fp8_run(SK_SOURCE_DIR, "cpu", "auto", "f32", a, &w32, err, sizeof err),
                 SK_OK, "f32 run: %s", err);
    cr_assert_eq(sk_test_fp8_run(SK_SOURCE_DIR, "cpu", "auto", "fp8", b, &w8, err, sizeof err),
                 SK_OK, "fp8 run: %s", err);
    cr_assert_eq(sk_test_fp8_run(SK_SOURCE_DIR, "cpu-ref", "auto", "fp8", c, NULL, err,
                                 sizeof err), SK_OK, "fp8 cpu-ref run: %s", err);
    const double e = sk_test_rel_l2(b, a, SK_FP8_RUN_VALS);
    const double e_ref = sk_test_rel_l2(c, b, SK_FP8_RUN_VALS);
    cr_log_info("tiny DiT, 9 frames: fp8 vs f32 rel. L2 %.3g; cpu-ref fp8 vs cpu fp8 %.3g", e,
                e_ref);
    cr_expect(isfinite(e) && e < 0.05, "fp8 vs f32: relative L2 %g (bound 0.05)", e);
    cr_expect(e > 1e-5, "fp8 vs f32: relative L2 %g: fp8 did not change anything", e);
    /* the backends' f32 differences (~1e-7) cascade through the quantizations (see
     * test_fp8_forward.c): measured 0.013 against an fp8 error of 0.029 */
    cr_expect(isfinite(e_ref) && e_ref < 0.75 * e, "cpu-ref vs cpu fp8: %g (bound %g, 3/4 of "
              "the fp8 error)", e_ref, 0.75 * e);
    cr_expect(w8 < w32, "fp8 weights %lld bytes, f32 %lld", (long long)w8, (long long)w32);
    free(a), free(b), free(c);
}

/* --dtype fp8 is refused by name on a backend without the FP8 ops */
Test(fp8, engine_rejects_unknown_dit_dtype)
{
    sk_engine_params ep = sk_engine_params_default();
    ep.dit = SK_SOURCE_DIR "/tests/fixtures/dit/dit_tiny.safetensors";
    ep.dit_dtype = "fp4";
    sk_engine *e = NULL;
    cr_expect_neq(sk_engine_open(&ep, &e), SK_OK);
    cr_expect(strstr(sk_last_error(), "fp8") != NULL, "message names the choices: %s",
              sk_last_error());
    sk_engine_close(&e);
}

/* the command line: --dtype fp8 with a contradicting --dit-dtype is a usage error before
 * anything loads; bench runs --dtype fp8 against f32 on the CPU and prints the x0 error */
Test(fp8, cli)
{
    tu_result r = tu_run("generate", "--dit", SK_SOURCE_DIR "/tests/fixtures/dit/dit_tiny.safetensors",
                         "--dit-config", SK_SOURCE_DIR "/tests/fixtures/dit/config.json",
                         "--text-embeds", SK_SOURCE_DIR "/tests/fixtures/dit/embeds.safetensors",
                         "--frames", "3", "--latent-height", "8", "--latent-width", "8",
                         "--no-decode", "--dtype", "fp8", "--dit-dtype", "bf16", NULL);
    cr_expect_eq(r.code, 2, "exit %d: %s", r.code, r.err);
    cr_expect(strstr(r.err, "--dtype fp8") && strstr(r.err, "--dit-dtype bf16"), "%s", r.err);
    tu_result_free(&r);
    r = tu_run("bench", "--config", "tiny", "--device", "cpu", "--chunks", "3", "--warmup", "1",
               "--no-profile", "--dtype", "fp8", "--compare-dtype", "fp32", "--json", NULL);
    cr_expect_eq(r.code, 0, "exit %d: %s", r.code, r.err);
    cr_expect(strstr(r.out, "\"dit_dtype\":\t\"fp8\"") && strstr(r.out, "\"x0_rel_l2\""), "%s",
              r.out);
    const char *f = strstr(r.out, "\"max\":");
    cr_assert(f, "%s", r.out);
    const double mx = strtod(f + 6, NULL);
    cr_expect(mx > 1e-5 && mx < 0.05, "bench fp8 vs f32 x0 error %g", mx);
    tu_result_free(&r);
}
