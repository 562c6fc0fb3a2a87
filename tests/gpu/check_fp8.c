/* check_fp8.c - the FP8 ops and the FP8 DiT on CUDA against the CPU oracle
 * (runtime/core/fp8.h, runtime/cpu/cpu_fp8.c), then timings.
 *
 * 1. quantize_rows: bf16 and f32 activations at the DiT's widths (and odd ones,
 *    a zero row, a row with a NaN): the e4m3 bytes and the row scales must EQUAL
 *    the CPU's (same rules, IEEE division, the hardware's satfinite cvt).
 * 2. linear_fp8: the same quantized operands on both sides, at the 1.3B and 5B
 *    block shapes, bias / GELU / none: relative L2 <= 2e-4 with f32 output (products
 *    of e4m3 values are exact; Hopper's FP8 MMAs sum them with ~14 mantissa bits
 *    before the f32 promotion), <= 4e-3 with bf16 output (one bf16 rounding, two in
 *    mode 2).
 * 3. the tiny DiT fixture, 3 chunks with --dtype fp8: CUDA (f32 and bf16
 *    activations) against the CPU's fp8 run and the bf16 run (see
 *    tests/test_fp8_forward.c for why whole-model FP8 runs differ by more than
 *    summation order: the quantization steps cascade).
 * 4. unless --no-time: quantize_rows and linear_fp8 against the bf16 linear at the
 *    real shapes (median of 30 after warm-up, host clock around a synced batch).
 *
 * SK_CUDA_FP8_MODE=0|1|2 forces the way the scales are applied (cuda/cuda_fp8.cu).
 * Lines end in " PASS " / " FAIL " (tests/gpu/all.sh counts them).
 * usage: gpu_check_fp8 [--no-time] [--reps N]   exit 0 pass, 1 a check failed, 2 setup
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/core/backend.h"
#include "runtime/core/fp8.h"
#include "runtime/core/progress.h"
#include "runtime/cpu/cpu_fast.h"
#include "tests/common/compare.h"
#include "tests/common/fp8_run.h"

static int g_fail, g_pass;

#define OK(expr)                                                                          \
    do {                                                                                  \
        sk_status s_ = (expr);                                                            \
        if (s_ != SK_OK) {                                                                \
            fprintf(stderr, "check_fp8: %s failed: %s: %s\n", #expr, sk_status_name(s_),  \
                    sk_error_message());                                                  \
            exit(2);                                                                      \
        }                                                                                 \
    } while (0)

static void verdict(int ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void verdict(int ok, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf(" %s \n", ok ? "PASS" : "FAIL");
    if (ok) g_pass++;
    else g_fail++;
    fflush(stdout);
}

static sk_tensor mk(sk_backend *be, sk_dtype dt, int nd, int64_t a, int64_t b)
{
    sk_tensor t;
    int64_t s[2] = {a, b};
    OK(sk_tensor_alloc(be, dt, nd, s, &t));
    return t;
}

/* 1. quantize_rows: CUDA bytes and scales == CPU */
static void check_quantize(sk_backend *cpu, sk_backend *gpu, int64_t M, int64_t K, int specials)
{
    const size_t n = (size_t)(M * K);
    float *x = malloc(n * sizeof *x);
    sk_test_fill_normal(x, n, (uint64_t)(M * 131 + K), 1.0f);
    for (int64_t m = 0; m < M; m++) /* rows of very different magnitudes */
        for (int64_t k = 0; k < K; k++) x[m * K + k] *= powf(10.0f, (float)(m % 7) - 3.0f);
    if (specials && M >= 3) {
        for (int64_t k = 0; k < K; k++) x[k] = 0.0f; /* a zero row */
        x[2 * K + K / 2] = NAN;                       /* a NaN in row 2 */
    }
    sk_round_through(x, n, gpu->act_dtype); /* both sides quantize the same values */
    sk_tensor xc = mk(cpu, SK_DTYPE_F32, 2, M, K), qc = mk(cpu, SK_DTYPE_F8_E4M3, 2, M, K),
              sc = mk(cpu, SK_DTYPE_F32, 1, M, 0);
    sk_tensor xg = mk(gpu, gpu->act_dtype, 2, M, K), qg = mk(gpu, SK_DTYPE_F8_E4M3, 2, M, K),
              sg = mk(gpu, SK_DTYPE_F32, 1, M, 0);
    OK(sk_tensor_upload_f32(&xc, x, n));
    OK(sk_tensor_upload_f32(&xg, x, n));
    OK(sk_op_quantize_rows(cpu, &qc, &sc, &xc));
    OK(sk_op_quantize_rows(gpu, &qg, &sg, &xg));
    uint8_t *q = malloc(n);
    float *s = malloc((size_t)M * sizeof *s);
    OK(sk_tensor_download_raw(&qg, q, n));
    OK(sk_tensor_download_raw(&sg, s, (size_t)M * 4));
    const uint8_t *qr = qc.data;
    const float *sr = sc.data;
    size_t bad = 0, first = n;
    int bad_s = 0;
    for (size_t i = 0; i < n; i++) {
        /* NaN encodings may differ in sign only */
        const int both_nan = (q[i] & 0x7f) == 0x7f && (qr[i] & 0x7f) == 0x7f;
        if (q[i] != qr[i] && !both_nan) { bad++; if (first == n) first = i; }
    }
    for (int64_t m = 0; m < M; m++)
        if (memcmp(&s[m], &sr[m], 4) != 0) bad_s++;
    char at[96] = "";
    if (bad) snprintf(at, sizeof at, ", first at %zu: cuda 0x%02x cpu 0x%02x", first, q[first],
                      qr[first]);
    verdict(!bad && !bad_s, "quantize_rows %lldx%lld %s%s: %zu of %zu bytes differ, %d of %lld "
            "scales differ%s", (long long)M, (long long)K, sk_dtype_name(gpu->act_dtype),
            specials ? " (zero row, NaN)" : "", bad, n, bad_s, (long long)M, at);
    sk_tensor_free(&xc), sk_tensor_free(&qc), sk_tensor_free(&sc);
    sk_tensor_free(&xg), sk_tensor_free(&qg), sk_tensor_free(&sg);
    free(x), free(q), free(s);
}

/* 2. linear_fp8 from the same quantized operands */
static void check_linear(sk_backend *cpu, sk_backend *gpu, int64_t M, int64_t K, int64_t N,
                         sk_act act, int bias)
{
    float *x = malloc((size_t)(M * K) * sizeof *x), *w = malloc((size_t)(N * K) * sizeof *w);
    float *b = malloc((size_t)N * sizeof *b);
    float *yc = malloc((size_t)(M * N) * sizeof *yc), *yg = malloc((size_t)(M * N) * sizeof *yg);
    uint8_t *wq = malloc((size_t)(N * K)), *xq = malloc((size_t)(M * K));
    float *sw = malloc((size_t)N * sizeof *sw), *sx = malloc((size_t)M * sizeof *sx);
    sk_test_fill_normal(x, (size_t)(M * K), 31, 1.0f);
    sk_test_fill_uniform(w, (size_t)(N * K), 32, -1.0f / sqrtf((float)K), 1.0f / sqrtf((float)K));
    sk_test_fill_uniform(b, (size_t)N, 33, -0.5f, 0.5f);
    sk_round_through(b, (size_t)N, gpu->act_dtype);
    for (int64_t n = 0; n < N; n++) sw[n] = sk_fp8_quantize_row(w + n * K, K, wq + n * K);
    for (int64_t m = 0; m < M; m++) sx[m] = sk_fp8_quantize_row(x + m * K, K, xq + m * K);
    sk_backend *bes[2] = {cpu, gpu};
    float *outs[2] = {yc, yg};
    for (int i = 0; i < 2; i++) {
        sk_backend *be = bes[i];
        sk_tensor qt = mk(be, SK_DTYPE_F8_E4M3, 2, M, K), sxt = mk(be, SK_DTYPE_F32, 1, M, 0);
        sk_tensor wt = mk(be, SK_DTYPE_F8_E4M3, 2, N, K), swt = mk(be, SK_DTYPE_F32, 1, N, 0);
        sk_tensor bt = mk(be, be->act_dtype, 1, N, 0), yt = mk(be, be->act_dtype, 2, M, N);
        OK(sk_tensor_upload_raw(&qt, xq, (size_t)(M * K)));
        OK(sk_tensor_upload_raw(&sxt, sx, (size_t)M * 4));
        OK(sk_tensor_upload_raw(&wt, wq, (size_t)(N * K)));
        OK(sk_tensor_upload_raw(&swt, sw, (size_t)N * 4));
        OK(sk_tensor_upload_f32(&bt, b, (size_t)N));
        sk_status st = sk_op_linear_fp8(be, &yt, &qt, &sxt, &wt, &swt, bias ? &bt : NULL, act);
        if (st != SK_OK) {
            verdict(0, "linear_fp8 M=%lld K=%lld N=%lld on %s: %s", (long long)M, (long long)K,
                    (long long)N, be->name, sk_error_message());
        } else {
            OK(sk_tensor_download_f32(&yt, outs[i], (size_t)(M * N)));
        }
        sk_tensor_free(&qt), sk_tensor_free(&sxt), sk_tensor_free(&wt), sk_tensor_free(&swt);
        sk_tensor_free(&bt), sk_tensor_free(&yt);
        if (st != SK_OK) goto done;
    }
    {
        const int bf = gpu->act_dtype == SK_DTYPE_BF16;
        double rms = 0;
        for (int64_t i = 0; i < M * N; i++) rms += (double)yc[i] * yc[i] / (double)(M * N);
        rms = sqrt(rms);
        /* f32 output: the products are exact, but Hopper's FP8 tensor cores add them with
         * ~14 mantissa bits inside an MMA before cuBLASLt promotes the partial sums to f32
         * (DeepSeek-V3 report, §3.3.2), so ~1e-5..1e-4 of the output, not f32's 1e-7 */
        const double rel = bf ? 4e-3 : 2e-4;
        sk_compare_result r = sk_compare(yg, yc, (size_t)(M * N), rel * rel,
                                         (bf ? 2e-2 : 2e-3) * rms, bf ? 2e-2 : 2e-3);
        char buf[512];
        sk_compare_format(&r, yg, yc, buf, sizeof buf);
        verdict(r.ok, "linear_fp8 M=%lld K=%lld N=%lld %s%s -> %s: rel L2 %.3g (bound %.0e); %s",
                (long long)M, (long long)K, (long long)N, sk_act_name(act), bias ? " +bias" : "",
                sk_dtype_name(gpu->act_dtype), sqrt(r.nmse), rel, buf);
    }
done:
    free(x), free(w), free(b), free(yc), free(yg), free(wq), free(xq), free(sw), free(sx);
}

/* 3. the tiny DiT fixture, 3 chunks */
static void check_dit(const char *src)
{
    float *c32 = malloc(SK_FP8_RUN_VALS * 4), *c8 = malloc(SK_FP8_RUN_VALS * 4);
    float *g8f = malloc(SK_FP8_RUN_VALS * 4), *g8b = malloc(SK_FP8_RUN_VALS * 4);
    float *gbf = malloc(SK_FP8_RUN_VALS * 4);
    char err[512] = "";
    OK(sk_test_fp8_run(src, "cpu", "auto", "f32", c32, NULL, err, sizeof err));
    OK(sk_test_fp8_run(src, "cpu", "auto", "fp8", c8, NULL, err, sizeof err));
    int64_t wb8 = 0, wbb = 0;
    sk_status s1 = sk_test_fp8_run(src, "cuda", "f32", "fp8", g8f, NULL, err, sizeof err);
    if (s1 != SK_OK) printf("cuda f32-act fp8 run: %s\n", err);
    sk_status s2 = sk_test_fp8_run(src, "cuda", "bf16", "fp8", g8b, &wb8, err, sizeof err);
    if (s2 != SK_OK) printf("cuda bf16 fp8 run: %s\n", err);
    sk_status s3 = sk_test_fp8_run(src, "cuda", "bf16", "bf16", gbf, &wbb, err, sizeof err);
    if (s3 != SK_OK) printf("cuda bf16 run: %s\n", err);
    const double e_cpu = sk_test_rel_l2(c8, c32, SK_FP8_RUN_VALS);
    const double e_f = s1 == SK_OK ? sk_test_rel_l2(g8f, c8, SK_FP8_RUN_VALS) : NAN;
    const double e_b = s2 == SK_OK ? sk_test_rel_l2(g8b, c8, SK_FP8_RUN_VALS) : NAN;
    const double e_bb = s2 == SK_OK && s3 == SK_OK ? sk_test_rel_l2(g8b, gbf, SK_FP8_RUN_VALS) : NAN;
    printf("tiny DiT, 3 chunks: cpu fp8 vs cpu f32 %.4f (the fp8 error)\n", e_cpu);
    /* Two FP8 runs whose f32 arithmetic differs at all decorrelate through the
     * quantization steps (tests/test_fp8_forward.c): two fully independent FP8 noises
     * would differ by ~1.4x the fp8 error. Bounds: within that, with room for the GPU's
     * own rounding (Hopper FP8 accumulation; bf16 activations), and finite. The ops
     * themselves are compared tightly above. */
    verdict(isfinite(e_f) && e_f < 1.5 * e_cpu, "tiny DiT cuda fp8 (f32 activations) vs cpu fp8: "
            "rel L2 %.4f (bound %.4f = 1.5x the fp8 error)", e_f, 1.5 * e_cpu);
    verdict(isfinite(e_b) && e_b < 2.0 * e_cpu, "tiny DiT cuda fp8 (bf16 activations) vs cpu fp8: "
            "rel L2 %.4f (bound %.4f = 2x the fp8 error)", e_b, 2.0 * e_cpu);
    verdict(isfinite(e_bb) && e_bb > 1e-4 && e_bb < 2.5 * e_cpu && wb8 < wbb,
            "tiny DiT cuda fp8 vs cuda bf16: rel L2 %.4f (FP8 ran: > 1e-4, < %.4f); weights %lld "
            "vs %lld bytes", e_bb, 2.5 * e_cpu, (long long)wb8, (long long)wbb);
    free(c32), free(c8), free(g8f), free(g8b), free(gbf);
}

/* 4. timings */
static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void time_shapes(sk_backend *gpu, int reps)
{
    static const struct { int64_t M, K, N; sk_act act; const char *what; } sh[] = {
        {4680, 1536, 1536, SK_ACT_NONE, "1.3B q/k/v/o (chunk 3, 832x480)"},
        {4680, 1536, 8960, SK_ACT_GELU_TANH, "1.3B ffn0 + GELU"},
        {4680, 8960, 1536, SK_ACT_NONE, "1.3B ffn2"},
        {7040, 3072, 3072, SK_ACT_NONE, "5B q/k/v/o (chunk 8, 1280x704)"},
        {7040, 3072, 14336, SK_ACT_GELU_TANH, "5B ffn0 + GELU"},
        {7040, 14336, 3072, SK_ACT_NONE, "5B ffn2"},
    };
    printf("\ntimings (median of %d, host clock around a synced batch of 10):\n", reps);
    printf("| shape | what | bf16 linear ms | TFLOP/s | quantize ms | fp8 linear ms | TFLOP/s | "
           "fp8 total speedup |\n|---|---|---:|---:|---:|---:|---:|---:|\n");
    for (size_t i = 0; i < sizeof sh / sizeof sh[0]; i++) {
        const int64_t M = sh[i].M, K = sh[i].K, N = sh[i].N;
        sk_tensor x = mk(gpu, SK_DTYPE_BF16, 2, M, K), y = mk(gpu, SK_DTYPE_BF16, 2, M, N);
        sk_tensor wb = mk(gpu, SK_DTYPE_BF16, 2, N, K), b = mk(gpu, SK_DTYPE_BF16, 1, N, 0);
        sk_tensor q = mk(gpu, SK_DTYPE_F8_E4M3, 2, M, K), sx = mk(gpu, SK_DTYPE_F32, 1, M, 0);
        sk_tensor w8 = mk(gpu, SK_DTYPE_F8_E4M3, 2, N, K), sw = mk(gpu, SK_DTYPE_F32, 1, N, 0);
        float *h = malloc((size_t)(N * K > M * K ? N * K : M * K) * sizeof *h);
        sk_test_fill_normal(h, (size_t)(M * K), 41, 1.0f);
        OK(sk_tensor_upload_f32(&x, h, (size_t)(M * K)));
        sk_test_fill_uniform(h, (size_t)(N * K), 42, -0.02f, 0.02f);
        OK(sk_tensor_upload_f32(&wb, h, (size_t)(N * K)));
        uint8_t *wq = malloc((size_t)(N * K));
        float *s = malloc((size_t)N * 4);
        for (int64_t n = 0; n < N; n++) s[n] = sk_fp8_quantize_row(h + n * K, K, wq + n * K);
        OK(sk_tensor_upload_raw(&w8, wq, (size_t)(N * K)));
        OK(sk_tensor_upload_raw(&sw, s, (size_t)N * 4));
        sk_test_fill_uniform(h, (size_t)N, 43, -0.1f, 0.1f);
        OK(sk_tensor_upload_f32(&b, h, (size_t)N));
        double t[3][64];
        const int nr = reps > 64 ? 64 : reps;
        for (int kind = 0; kind < 3; kind++) {
            for (int r = -3; r < nr; r++) {
                OK(sk_backend_sync(gpu));
                double t0 = sk_progress_now();
                for (int j = 0; j < 10; j++) {
                    if (kind == 0) OK(sk_op_linear(gpu, &y, &x, &wb, &b, sh[i].act));
                    else if (kind == 1) OK(sk_op_quantize_rows(gpu, &q, &sx, &x));
                    else OK(sk_op_linear_fp8(gpu, &y, &q, &sx, &w8, &sw, &b, sh[i].act));
                }
                OK(sk_backend_sync(gpu));
                if (r >= 0) t[kind][r] = (sk_progress_now() - t0) * 1e3 / 10;
            }
            qsort(t[kind], (size_t)nr, sizeof(double), cmp_d);
        }
        const double fl = 2.0 * (double)M * (double)K * (double)N;
        const double mb = t[0][nr / 2], mq = t[1][nr / 2], m8 = t[2][nr / 2];
        printf("| %lldx%lldx%lld | %s | %.3f | %.0f | %.3f | %.3f | %.0f | %.2fx |\n",
               (long long)M, (long long)K, (long long)N, sh[i].what, mb, fl / mb / 1e9, mq, m8,
               fl / m8 / 1e9, mb / (mq + m8));
        fflush(stdout);
        free(h), free(wq), free(s);
        sk_tensor_free(&x), sk_tensor_free(&y), sk_tensor_free(&wb), sk_tensor_free(&b);
        sk_tensor_free(&q), sk_tensor_free(&sx), sk_tensor_free(&w8), sk_tensor_free(&sw);
    }
}

int main(int argc, char **argv)
{
    int do_time = 1, reps = 30;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--no-time")) do_time = 0;
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: gpu_check_fp8 [--no-time] [--reps N]\n");
            return 2;
        }
    }
    const char *src = getenv("SK_SOURCE_DIR");
    if (!src || !*src) src = SK_SOURCE_DIR;
    sk_backend *cpu = NULL, *cpuf = NULL, *gb = NULL, *gf = NULL;
    OK(sk_backend_cpu_create(&cpu));
    OK(sk_backend_cpu_fast_create(&cpuf)); /* the GEMM oracle at these sizes: the reference's
                                              ops on threads (tests/test_fp8.c checks both) */
    OK(sk_backend_cuda_create(0, SK_DTYPE_BF16, &gb));
    OK(sk_backend_cuda_create(0, SK_DTYPE_F32, &gf));
    sk_backend *gpus[2] = {gb, gf};
    for (int g = 0; g < 2; g++) {
        check_quantize(cpu, gpus[g], 512, 1536, 1);
        check_quantize(cpu, gpus[g], 64, 8960, 0);
        check_quantize(cpu, gpus[g], 33, 3072, 1);
        check_quantize(cpu, gpus[g], 29, 24, 1); /* K % 8 != 0: the scalar kernel */
    }
    for (int g = 0; g < 2; g++) {
        check_linear(cpuf, gpus[g], 256, 1536, 1536, SK_ACT_NONE, 1);
        check_linear(cpuf, gpus[g], 128, 1536, 8960, SK_ACT_GELU_TANH, 1);
        check_linear(cpuf, gpus[g], 128, 8960, 1536, SK_ACT_NONE, 1);
        check_linear(cpuf, gpus[g], 96, 3072, 3072, SK_ACT_NONE, 1);
        check_linear(cpuf, gpus[g], 77, 64, 48, SK_ACT_NONE, 0);
        check_linear(cpuf, gpus[g], 40, 128, 256, SK_ACT_GELU_TANH, 1);
        check_linear(cpuf, gpus[g], 40, 128, 256, SK_ACT_SILU, 0);
    }
    check_dit(src);
    if (do_time) time_shapes(gb, reps);
    printf("\ncheck_fp8: %d passed, %d failed%s\n", g_pass, g_fail,
           g_pass + g_fail == 0 ? " (no comparison ran)" : "");
    sk_backend_free_(&gf);
    sk_backend_free_(&gb);
    sk_backend_free_(&cpuf);
    sk_backend_free_(&cpu);
    return g_fail || !g_pass ? 1 : 0;
}
