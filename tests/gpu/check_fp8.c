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
 * 5. attention_fp8 (fp8.h: per-tensor e4m3 q/k/v, e4m3 probabilities): small shapes
 *    in full against the CPU op (cuDNN where it takes them, and the emulation kernel:
 *    SK_CUDA_FP8_ATTN=ref); the DiT's shapes (q 4680, kv 18720 in two ranges, 12x128;
 *    q 7040, kv 28160, 24x128) on rows spread over the queries against the oracle
 *    (runtime/core/fp8_attention.c) with the device's scales (which must equal the
 *    host's), and both against exact f64 attention beside cuDNN's bf16.
 * 6. unless --no-time: FP8 attention (with and without the per-call quantization)
 *    beside bf16 cuDNN at those shapes, TFLOP/s, the table printed last; and the
 *    FP8 KV cache's call (frames re-encoded, no K/V quantization pass) and its write.
 * 7. the FP8 KV cache: quantize_rows_pow2 bytes and scales == CPU (frames of the 1.3B
 *    and 5B as long rows, the one-block and scalar kernels) and the amax rules' long-row
 *    kernel; attention_fp8 over e4m3 frame ranges against the CPU op (emulation kernel
 *    and default path), the call's scales equal to the largest frame scales.
 *
 * 8. modulate_fp8 / layernorm_fp8 (the quantization fused into the norm kernel,
 *    SK_FP8_FUSED_NORM=1):
 *    at the 1.3B and 5B widths (and one the row kernel does not take), y, q and s EQUAL
 *    the unfused modulate + quantize_rows on the same backend, and q/s equal the CPU's
 *    quantize_rows of the device's y; then (unless --no-time) both ways timed.
 *
 * SK_CUDA_FP8_MODE=0|1|2 forces the way the scales are applied (cuda/cuda_fp8.cu).
 * Lines end in " PASS " / " FAIL " (tests/gpu/all.sh counts them).
 * usage: gpu_check_fp8 [--no-time] [--reps N] [--no-attention] (skips 5 and 6)
 *        exit 0 pass, 1 a check failed, 2 setup
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "runtime/core/backend.h"
#include "runtime/core/fp8.h"
#include "runtime/core/progress.h"
#include "runtime/cpu/cpu_fast.h"
#include "cuda/sk_cuda.h"
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

/* 1. quantize_rows: CUDA bytes and scales == CPU (pow2: quantize_rows_pow2, part 7) */
static void check_quantize_op(sk_backend *cpu, sk_backend *gpu, int64_t M, int64_t K, int specials,
                              int pow2)
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
    OK((pow2 ? sk_op_quantize_rows_pow2 : sk_op_quantize_rows)(cpu, &qc, &sc, &xc));
    OK((pow2 ? sk_op_quantize_rows_pow2 : sk_op_quantize_rows)(gpu, &qg, &sg, &xg));
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
    verdict(!bad && !bad_s, "quantize_rows%s %lldx%lld %s%s: %zu of %zu bytes differ, %d of %lld "
            "scales differ%s", pow2 ? "_pow2" : "", (long long)M, (long long)K, sk_dtype_name(gpu->act_dtype),
            specials ? " (zero row, NaN)" : "", bad, n, bad_s, (long long)M, at);
    sk_tensor_free(&xc), sk_tensor_free(&qc), sk_tensor_free(&sc);
    sk_tensor_free(&xg), sk_tensor_free(&qg), sk_tensor_free(&sg);
    free(x), free(q), free(s);
}

static double now_s(void);

/* 8. modulate_fp8 fused against modulate + quantize_rows (same backend: equal bits) and its
 * q/s against the CPU's quantize_rows of the device's y */
/* ln_wb: layernorm_fp8 with w, b = rows 0 and 1 of m viewed as [rows, D] (else modulate_fp8) */
static sk_status mod8_call(sk_backend *gpu, sk_tensor *y, sk_tensor *q, sk_tensor *s,
                           const sk_tensor *x, const sk_tensor *m, int64_t rpg, int ln_wb)
{
    if (!ln_wb) return sk_op_modulate_fp8(gpu, y, q, s, x, m, 3, 4, rpg, 1, 1e-6f);
    const int64_t D = m->shape[2];
    int64_t m2s[2] = {m->shape[0] * m->shape[1], D}, d1[1] = {D};
    sk_tensor m2, w, b;
    SK_TRY(sk_tensor_reshape(m, 2, m2s, &m2));
    w = sk_tensor_rows(&m2, 0, 1), b = sk_tensor_rows(&m2, 1, 1);
    SK_TRY(sk_tensor_reshape(&w, 1, d1, &w));
    SK_TRY(sk_tensor_reshape(&b, 1, d1, &b));
    return sk_op_layernorm_fp8(gpu, y, q, s, x, &w, &b, 1e-6f);
}

static double mod8_run(sk_backend *gpu, int fused, sk_tensor *y, sk_tensor *q, sk_tensor *s,
                       const sk_tensor *x, const sk_tensor *m, int64_t rpg, int reps, int ln_wb)
{
    setenv("SK_FP8_FUSED_NORM", fused ? "1" : "0", 1);
    OK(mod8_call(gpu, y, q, s, x, m, rpg, ln_wb));
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        OK(sk_backend_sync(gpu));
        const double t0 = now_s();
        for (int i = 0; i < 10; i++) OK(mod8_call(gpu, y, q, s, x, m, rpg, ln_wb));
        OK(sk_backend_sync(gpu));
        const double t = (now_s() - t0) / 10;
        if (t < best) best = t;
    }
    unsetenv("SK_FP8_FUSED_NORM");
    return best;
}

static void check_modulate_fp8(sk_backend *cpu, sk_backend *gpu, int64_t F, int64_t rpg, int64_t D,
                               int reps, int ln_wb)
{
    const int64_t R = F * rpg, K6 = 6;
    const size_t n = (size_t)(R * D);
    float *x = malloc(n * sizeof *x), *m = malloc((size_t)(F * K6 * D) * sizeof *m);
    sk_test_fill_normal(x, n, (uint64_t)(D + F), 3.0f);
    sk_test_fill_normal(m, (size_t)(F * K6 * D), (uint64_t)(D * 7 + F), 0.3f);
    sk_tensor xg, mg, y[2], q[2], sc[2];
    int64_t ms[3] = {F, K6, D};
    xg = mk(gpu, gpu->act_dtype, 2, R, D);
    OK(sk_tensor_alloc(gpu, SK_DTYPE_F32, 3, ms, &mg));
    for (int i = 0; i < 2; i++) {
        y[i] = mk(gpu, gpu->act_dtype, 2, R, D);
        q[i] = mk(gpu, SK_DTYPE_F8_E4M3, 2, R, D);
        sc[i] = mk(gpu, SK_DTYPE_F32, 1, R, 0);
    }
    OK(sk_tensor_upload_f32(&xg, x, n));
    OK(sk_tensor_upload_f32(&mg, m, (size_t)(F * K6 * D)));
    const double tf = mod8_run(gpu, 1, &y[0], &q[0], &sc[0], &xg, &mg, rpg, reps, ln_wb);
    const double tu = mod8_run(gpu, 0, &y[1], &q[1], &sc[1], &xg, &mg, rpg, reps, ln_wb);
    const size_t yb = n * sk_dtype_size(gpu->act_dtype);
    uint8_t *a = malloc(yb), *b = malloc(yb);
    int same_y, same_q, same_s;
    OK(sk_tensor_download_raw(&y[0], a, yb));
    OK(sk_tensor_download_raw(&y[1], b, yb));
    same_y = memcmp(a, b, yb) == 0;
    OK(sk_tensor_download_raw(&q[0], a, n));
    OK(sk_tensor_download_raw(&q[1], b, n));
    same_q = memcmp(a, b, n) == 0;
    OK(sk_tensor_download_raw(&sc[0], a, (size_t)R * 4));
    OK(sk_tensor_download_raw(&sc[1], b, (size_t)R * 4));
    same_s = memcmp(a, b, (size_t)R * 4) == 0;
    /* the CPU's quantize_rows of the device's y */
    float *yf = malloc(n * sizeof *yf);
    OK(sk_tensor_download_f32(&y[0], yf, n));
    sk_tensor yc = mk(cpu, SK_DTYPE_F32, 2, R, D), qc = mk(cpu, SK_DTYPE_F8_E4M3, 2, R, D),
              scc = mk(cpu, SK_DTYPE_F32, 1, R, 0);
    OK(sk_tensor_upload_f32(&yc, yf, n));
    OK(sk_op_quantize_rows(cpu, &qc, &scc, &yc));
    OK(sk_tensor_download_raw(&q[0], a, n));
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) bad += a[i] != ((const uint8_t *)qc.data)[i];
    OK(sk_tensor_download_raw(&sc[0], a, (size_t)R * 4));
    const int cpu_s = memcmp(a, scc.data, (size_t)R * 4) == 0;
    verdict(same_y && same_q && same_s && !bad && cpu_s,
            "%s %lldx%lld %s: fused == unfused (y %s, q %s, s %s); q vs the CPU's "
            "quantize_rows of y: %zu of %zu bytes differ, scales %s; %.1f us fused, %.1f us "
            "norm + quantize_rows", ln_wb ? "layernorm_fp8" : "modulate_fp8", (long long)R, (long long)D, sk_dtype_name(gpu->act_dtype),
            same_y ? "equal" : "DIFFER", same_q ? "equal" : "DIFFER", same_s ? "equal" : "DIFFER",
            bad, n, cpu_s ? "equal" : "DIFFER", tf * 1e6, tu * 1e6);
    for (int i = 0; i < 2; i++) sk_tensor_free(&y[i]), sk_tensor_free(&q[i]), sk_tensor_free(&sc[i]);
    sk_tensor_free(&xg), sk_tensor_free(&mg), sk_tensor_free(&yc), sk_tensor_free(&qc);
    sk_tensor_free(&scc);
    free(x), free(m), free(a), free(b), free(yf);
}

static void check_quantize(sk_backend *cpu, sk_backend *gpu, int64_t M, int64_t K, int specials)
{
    check_quantize_op(cpu, gpu, M, K, specials, 0);
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


/* 5. FP8 attention */
typedef struct {
    int64_t Nq, NH, HD, sink, win; /* keys: rows [0, sink) and [gap, gap + win) of one pool */
} att_shape;

/* exact attention in f64 of rows [i0, i1) from host values (keys concatenated) */
static void exact_rows(float *out, const float *q, const float *k, const float *v, int64_t Nk,
                       int64_t NH, int64_t HD, int64_t i0, int64_t i1, float scale)
{
    const int64_t row = NH * HD;
    double *s = malloc((size_t)Nk * sizeof *s), *acc = malloc((size_t)HD * sizeof *acc);
    for (int64_t i = i0; i < i1; i++)
        for (int64_t h = 0; h < NH; h++) {
            double m = -INFINITY, Z = 0;
            for (int64_t j = 0; j < Nk; j++) {
                double d = 0;
                for (int64_t c = 0; c < HD; c++) d += (double)q[i * row + h * HD + c] * k[j * row + h * HD + c];
                s[j] = d * scale;
                if (s[j] > m) m = s[j];
            }
            for (int64_t c = 0; c < HD; c++) acc[c] = 0;
            for (int64_t j = 0; j < Nk; j++) {
                const double e = exp(s[j] - m);
                Z += e;
                for (int64_t c = 0; c < HD; c++) acc[c] += e * v[j * row + h * HD + c];
            }
            for (int64_t c = 0; c < HD; c++) out[(i - i0) * row + h * HD + c] = (float)(acc[c] / Z);
        }
    free(s), free(acc);
}

static double rel_l2_rows(const float *a, const float *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(a[i]) || !isfinite(b[i])) return NAN;
    return sk_test_rel_l2(a, b, n);
}

/* On Hopper cuDNN's FP8 SDPA writes O in e4m3 (a bf16 O is Blackwell-only):
 * o8 = e4m3(O * 448 / amax_v), then * amax_v / 448 (cuda_attention_fp8.cu), one
 * rounding more than the oracle (relative step 2^-4). o8_round applies it to
 * oracle values; its own rel L2 is added to the cuDNN bounds (triangle inequality:
 * |g - oracle| <= |g - pre| + |pre - oracle|, |g - pre| that rounding). */
static void o8_round(float *dst, const float *src, size_t n, float amax_v)
{
    float inv, scale;
    sk_fp8_row_scales(amax_v, &inv, &scale);
    for (size_t i = 0; i < n; i++) dst[i] = sk_fp8_value(sk_fp8_sat(src[i] * inv)) * scale;
}

static double o8_err(const float *ref, size_t n, float amax_v)
{
    float *r = malloc(n * 4);
    o8_round(r, ref, n, amax_v);
    const double e = rel_l2_rows(r, ref, n);
    free(r);
    return e;
}

/* fp8.h's arithmetic for query row i (all heads) with the probabilities treated
 * three ways, into out[pmode] (NULL: skipped): pmode 0 quantized before the
 * normalization, p8 = e4m3(e * 448) and o = (sum p8 v8) / Z / 448 * sv (fp8.h, the
 * oracle, the emulation kernel: flash kernels defer the division); 1 quantized
 * after it, p8 = e4m3(e / Z * 448) and o = (sum p8 v8) / 448 * sv (the graph's
 * literal order: softmax, then * scale_s); 2 not quantized, o = (sum e v8) / Z * sv.
 * 0 vs 2 measures the probabilities' own rounding error; 0 vs 1 is the diagnostic
 * of which one cuDNN's kernel does. One pass for the dots. */
static void oracle_row_var(float *out[3], const uint8_t *q8, const uint8_t *k8, const uint8_t *v8,
                           int64_t Nk, int64_t NH, int64_t HD, int64_t i, float scale, float sq,
                           float sk, float sv)
{
    const int64_t row = NH * HD;
    float lut[256];
    for (int b = 0; b < 256; b++) lut[b] = sk_fp8_value((uint8_t)b);
    float *s = malloc((size_t)Nk * sizeof *s);
    double *acc = malloc((size_t)(3 * HD) * sizeof *acc);
    for (int64_t h = 0; h < NH; h++) {
        const uint8_t *qi = q8 + i * row + h * HD;
        float m = -INFINITY;
        for (int64_t j = 0; j < Nk; j++) {
            double d = 0.0;
            for (int64_t c = 0; c < HD; c++) d += (double)lut[qi[c]] * lut[k8[j * row + h * HD + c]];
            s[j] = (((float)d * scale) * sq) * sk;
            m = fmaxf(m, s[j]);
        }
        double Z = 0.0;
        for (int64_t j = 0; j < Nk; j++) Z += expf(s[j] - m);
        for (int64_t c = 0; c < 3 * HD; c++) acc[c] = 0.0;
        for (int64_t j = 0; j < Nk; j++) {
            const float e = expf(s[j] - m);
            const float p[3] = {lut[sk_fp8_sat(e * SK_FP8_P_SCALE)],
                                lut[sk_fp8_sat((e / (float)Z) * SK_FP8_P_SCALE)], e};
            const uint8_t *vj = v8 + j * row + h * HD;
            for (int k = 0; k < 3; k++)
                if (out[k] && p[k] != 0.0f)
                    for (int64_t c = 0; c < HD; c++) acc[k * HD + c] += (double)p[k] * lut[vj[c]];
        }
        for (int64_t c = 0; c < HD; c++) {
            if (out[0]) out[0][h * HD + c] = (((float)acc[c] / (float)Z) * SK_FP8_P_DESCALE) * sv;
            if (out[1]) out[1][h * HD + c] = ((float)acc[HD + c] * SK_FP8_P_DESCALE) * sv;
            if (out[2]) out[2][h * HD + c] = ((float)acc[2 * HD + c] / (float)Z) * sv;
        }
    }
    free(s), free(acc);
}

/* rel L2 over rows [0, nrows) (rows `idx` of the queries, all when idx is NULL)
 * between pmode a and pmode b of oracle_row_var */
static double oracle_apart(const uint8_t *q8, const uint8_t *k8, const uint8_t *v8, int64_t Nk,
                           int64_t NH, int64_t HD, const int64_t *idx, int64_t nrows, float scale,
                           float sq, float sk, float sv, int a, int b)
{
    const int64_t row = NH * HD;
    float *x = malloc((size_t)(nrows * row) * 4), *y = malloc((size_t)(nrows * row) * 4);
    for (int64_t r = 0; r < nrows; r++) {
        float *o[3] = {NULL, NULL, NULL};
        o[a] = x + r * row, o[b] = y + r * row;
        oracle_row_var(o, q8, k8, v8, Nk, NH, HD, idx ? idx[r] : r, scale, sq, sk, sv);
    }
    const double e = rel_l2_rows(x, y, (size_t)(nrows * row));
    free(x), free(y);
    return e;
}

/* runs attention_fp8 (fp8 = 1) or attention on gpu; the pool holds sink + gap + win rows */
static sk_status run_att(sk_backend *be, int fp8, sk_tensor *out, sk_tensor *q, sk_tensor *k,
                         sk_tensor *v, const att_shape *sh, float scale)
{
    const int64_t gap = sh->sink + 7; /* not adjacent: two ranges */
    sk_kv_range r[2] = {{k, v, 0, sh->sink}, {k, v, gap, sh->win}};
    const int nr = sh->sink > 0 ? 2 : 1;
    sk_kv_range *rr = sh->sink > 0 ? r : &r[1];
    return fp8 ? sk_op_attention_fp8(be, out, q, rr, nr, scale)
               : sk_op_attention(be, out, q, rr, nr, scale, NULL);
}

typedef struct {
    float *q, *k, *v; /* host values (rounded through the act dtype) */
    int64_t cap;
} att_data;

static void att_fill(att_data *d, const att_shape *sh, sk_dtype act, uint64_t seed)
{
    const int64_t row = sh->NH * sh->HD;
    d->cap = sh->sink + 7 + sh->win;
    d->q = malloc((size_t)(sh->Nq * row) * 4);
    d->k = malloc((size_t)(d->cap * row) * 4);
    d->v = malloc((size_t)(d->cap * row) * 4);
    sk_test_fill_normal(d->q, (size_t)(sh->Nq * row), seed, 1.0f);
    sk_test_fill_normal(d->k, (size_t)(d->cap * row), seed + 1, 1.0f);
    sk_test_fill_normal(d->v, (size_t)(d->cap * row), seed + 2, 1.0f);
    /* a few larger keys: some rows get a peaked softmax */
    for (int64_t i = 0; i < d->cap * row; i += 997) d->k[i] *= 4.0f;
    sk_round_through(d->q, (size_t)(sh->Nq * row), act);
    sk_round_through(d->k, (size_t)(d->cap * row), act);
    sk_round_through(d->v, (size_t)(d->cap * row), act);
}

static void att_free(att_data *d) { free(d->q), free(d->k), free(d->v); }

/* the probabilities' own rounding error of shape sh (oracle_row_var pmode 0 vs 2,
 * every query row): q and run_att's ranges of k and v quantized on the host */
static double att_p_err(const att_data *d, const att_shape *sh, float scale)
{
    const int64_t row = sh->NH * sh->HD, Nk = sh->sink + sh->win, gap = sh->sink + 7;
    float *kc = malloc((size_t)(Nk * row) * 4), *vc = malloc((size_t)(Nk * row) * 4);
    memcpy(kc, d->k, (size_t)(sh->sink * row) * 4);
    memcpy(kc + sh->sink * row, d->k + gap * row, (size_t)(sh->win * row) * 4);
    memcpy(vc, d->v, (size_t)(sh->sink * row) * 4);
    memcpy(vc + sh->sink * row, d->v + gap * row, (size_t)(sh->win * row) * 4);
    uint8_t *q8 = malloc((size_t)(sh->Nq * row)), *k8 = malloc((size_t)(Nk * row));
    uint8_t *v8 = malloc((size_t)(Nk * row));
    const float sq = sk_fp8_quantize_row(d->q, sh->Nq * row, q8);
    const float sk = sk_fp8_quantize_row(kc, Nk * row, k8);
    const float sv = sk_fp8_quantize_row(vc, Nk * row, v8);
    const double e = oracle_apart(q8, k8, v8, Nk, sh->NH, sh->HD, NULL, sh->Nq, scale, sq, sk, sv, 0, 2);
    free(kc), free(vc), free(q8), free(k8), free(v8);
    return e;
}

/* amax of the values the call's ranges cover (run_att's two ranges) */
static float att_v_amax(const att_data *d, const att_shape *sh)
{
    const int64_t row = sh->NH * sh->HD, gap = sh->sink + 7;
    float a = 0.0f;
    for (int64_t i = 0; i < sh->sink * row; i++) a = fmaxf(a, fabsf(d->v[i]));
    for (int64_t i = gap * row; i < (gap + sh->win) * row; i++) a = fmaxf(a, fabsf(d->v[i]));
    return a;
}

static void att_upload(sk_backend *be, const att_data *d, const att_shape *sh, sk_tensor *q,
                       sk_tensor *k, sk_tensor *v, sk_tensor *o)
{
    const int64_t row = sh->NH * sh->HD;
    int64_t qs[3] = {sh->Nq, sh->NH, sh->HD}, ks[3] = {d->cap, sh->NH, sh->HD}, os[2] = {sh->Nq, row};
    OK(sk_tensor_alloc(be, be->act_dtype, 3, qs, q));
    OK(sk_tensor_alloc(be, be->act_dtype, 3, ks, k));
    OK(sk_tensor_alloc(be, be->act_dtype, 3, ks, v));
    OK(sk_tensor_alloc(be, be->act_dtype, 2, os, o));
    OK(sk_tensor_upload_f32(q, d->q, (size_t)(sh->Nq * row)));
    OK(sk_tensor_upload_f32(k, d->k, (size_t)(d->cap * row)));
    OK(sk_tensor_upload_f32(v, d->v, (size_t)(d->cap * row)));
}

/* small shapes, every output: cuda vs the CPU op */
static void check_att_small(sk_backend *cpu, sk_backend *gpu, const att_shape *sh, int ref_kernel)
{
    const int64_t row = sh->NH * sh->HD, n = sh->Nq * row;
    const float scale = 1.0f / sqrtf((float)sh->HD);
    att_data d;
    att_fill(&d, sh, gpu->act_dtype, (uint64_t)(sh->Nq * 7 + sh->HD));
    sk_tensor qc, kc, vc, oc, qg, kg, vg, og;
    att_upload(cpu, &d, sh, &qc, &kc, &vc, &oc);
    att_upload(gpu, &d, sh, &qg, &kg, &vg, &og);
    float *yc = malloc((size_t)n * 4), *yg = malloc((size_t)n * 4), *y32 = malloc((size_t)n * 4);
    OK(run_att(cpu, 1, &oc, &qc, &kc, &vc, sh, scale));
    OK(sk_tensor_download_f32(&oc, yc, (size_t)n));
    OK(run_att(cpu, 0, &oc, &qc, &kc, &vc, sh, scale));
    OK(sk_tensor_download_f32(&oc, y32, (size_t)n));
    if (ref_kernel) setenv("SK_CUDA_FP8_ATTN", "ref", 1);
    sk_status st = run_att(gpu, 1, &og, &qg, &kg, &vg, sh, scale);
    unsetenv("SK_CUDA_FP8_ATTN");
    if (st != SK_OK) {
        verdict(0, "attention_fp8 q%lld: %s", (long long)sh->Nq, sk_error_message());
    } else {
        OK(sk_tensor_download_f32(&og, yg, (size_t)n));
        float sc[6] = {0};
        OK(sk_cuda_attention_fp8_scalars(gpu, sc));
        const double e_fp8 = rel_l2_rows(yc, y32, (size_t)n), e = rel_l2_rows(yg, yc, (size_t)n);
        const int bf = gpu->act_dtype == SK_DTYPE_BF16;
        /* the emulation kernel: fp8.h's arithmetic, so only summation order and the output
         * rounding differ. cuDNN (review fix, see check_att_big): its running max puts
         * probabilities on another e4m3 grid, up to sqrt(2)x their own rounding error e_p,
         * and on Hopper its e4m3 output adds a rounding the CPU op does not have (e_o8) */
        const int dnn = sc[5] >= 0;
        const double e_o8 = sc[5] > 0 ? o8_err(yc, (size_t)n, att_v_amax(&d, sh)) : 0.0;
        const double e_p = dnn ? att_p_err(&d, sh, scale) : 0.0;
        const double bound = !dnn ? (bf ? 4e-3 : 1e-4) : 1.5 * e_p + 1.1 * e_o8;
        verdict(isfinite(e) && e <= bound, "attention_fp8 q%lld kv%lld+%lld %lldx%lld %s (%s): vs "
                "cpu rel L2 %.3g (bound %.3g); cpu fp8 vs f32 %.4f; P rounding %.4f; e4m3 output "
                "rounding %.4f; path %s", (long long)sh->Nq, (long long)sh->sink, (long long)sh->win,
                (long long)sh->NH, (long long)sh->HD, sk_dtype_name(gpu->act_dtype),
                ref_kernel ? "emulation kernel" : "default path", e, bound, e_fp8, e_p, e_o8,
                sc[5] < 0 ? "emulation" : sc[5] > 0 ? "cuDNN, e4m3 output" : "cuDNN, bf16 output");
    }
    sk_tensor_free(&qc), sk_tensor_free(&kc), sk_tensor_free(&vc), sk_tensor_free(&oc);
    sk_tensor_free(&qg), sk_tensor_free(&kg), sk_tensor_free(&vg), sk_tensor_free(&og);
    free(yc), free(yg), free(y32);
    att_free(&d);
}

/* the DiT's shapes on bf16: rows spread over the queries against the oracle */
static void check_att_big(sk_backend *gpu, const att_shape *sh, int nrows)
{
    const int64_t row = sh->NH * sh->HD, Nk = sh->sink + sh->win;
    const float scale = 1.0f / sqrtf((float)sh->HD);
    att_data d;
    att_fill(&d, sh, SK_DTYPE_BF16, 77);
    sk_tensor qg, kg, vg, og;
    att_upload(gpu, &d, sh, &qg, &kg, &vg, &og);
    const size_t n = (size_t)(sh->Nq * row);
    float *y8 = malloc(n * 4), *yb = malloc(n * 4);
    setenv("SK_CUDA_FP8_ATTN", "cudnn", 1); /* not the emulation kernel at this size */
    sk_status st8 = run_att(gpu, 1, &og, &qg, &kg, &vg, sh, scale);
    unsetenv("SK_CUDA_FP8_ATTN");
    if (st8 != SK_OK) {
        verdict(0, "attention_fp8 q%lld kv%lld: %s", (long long)sh->Nq, (long long)Nk,
                sk_error_message());
        sk_tensor_free(&qg), sk_tensor_free(&kg), sk_tensor_free(&vg), sk_tensor_free(&og);
        free(y8), free(yb);
        att_free(&d);
        return;
    }
    OK(sk_tensor_download_f32(&og, y8, n));
    float sc[6] = {0};
    OK(sk_cuda_attention_fp8_scalars(gpu, sc));
    OK(run_att(gpu, 0, &og, &qg, &kg, &vg, sh, scale));
    OK(sk_tensor_download_f32(&og, yb, n));
    /* host quantization of the same values: the scales must be equal */
    float *kc = malloc((size_t)(Nk * row) * 4), *vc = malloc((size_t)(Nk * row) * 4);
    memcpy(kc, d.k, (size_t)(sh->sink * row) * 4);
    memcpy(kc + sh->sink * row, d.k + (sh->sink + 7) * row, (size_t)(sh->win * row) * 4);
    memcpy(vc, d.v, (size_t)(sh->sink * row) * 4);
    memcpy(vc + sh->sink * row, d.v + (sh->sink + 7) * row, (size_t)(sh->win * row) * 4);
    uint8_t *q8 = malloc(n), *k8 = malloc((size_t)(Nk * row)), *v8 = malloc((size_t)(Nk * row));
    const float sq = sk_fp8_quantize_row(d.q, sh->Nq * row, q8);
    const float sk = sk_fp8_quantize_row(kc, Nk * row, k8);
    const float sv = sk_fp8_quantize_row(vc, Nk * row, v8);
    verdict(sq == sc[0] && sk == sc[1] && sv == sc[2], "attention_fp8 q%lld kv%lld: device "
            "scales %.6g %.6g %.6g, host %.6g %.6g %.6g (must be equal); cuDNN amax_s %.4g "
            "amax_o %.4g, output %s", (long long)sh->Nq, (long long)Nk, sc[0], sc[1], sc[2], sq,
            sk, sv, sc[3], sc[4], sc[5] < 0 ? "none (emulation kernel)" : sc[5] > 0 ? "e4m3" : "bf16");
    float *o_or = malloc((size_t)row * 4), *o_ex = malloc((size_t)row * 4);
    float *g8 = malloc((size_t)(nrows * row) * 4), *gb = malloc((size_t)(nrows * row) * 4);
    float *orc = malloc((size_t)(nrows * row) * 4), *exa = malloc((size_t)(nrows * row) * 4);
    float *orn = malloc((size_t)(nrows * row) * 4), *oru = malloc((size_t)(nrows * row) * 4);
    for (int r = 0; r < nrows; r++) {
        const int64_t i = (int64_t)r * (sh->Nq - 1) / (nrows > 1 ? nrows - 1 : 1);
        float *o3[3] = {NULL, orn + r * row, oru + r * row};
        oracle_row_var(o3, q8, k8, v8, Nk, sh->NH, sh->HD, i, scale, sq, sk, sv);
        sk_fp8_attention_rows(o_or, q8, k8, v8, Nk, sh->NH, sh->HD, i, i + 1, scale, sq, sk, sv);
        exact_rows(o_ex, d.q, kc, vc, Nk, sh->NH, sh->HD, i, i + 1, scale);
        memcpy(orc + r * row, o_or, (size_t)row * 4);
        memcpy(exa + r * row, o_ex, (size_t)row * 4);
        memcpy(g8 + r * row, y8 + i * row, (size_t)row * 4);
        memcpy(gb + r * row, yb + i * row, (size_t)row * 4);
    }
    const size_t m = (size_t)(nrows * row);
    const double e_or = rel_l2_rows(g8, orc, m), e_ex = rel_l2_rows(g8, exa, m);
    const double e_orx = rel_l2_rows(orc, exa, m), e_bf = rel_l2_rows(gb, exa, m);
    /* Review fix, the bounds. (a) On Hopper O is e4m3 (one more rounding, e_o8: its
     * own rel L2 on the oracle). (b) cuDNN's kernel quantizes exp(s - running max)
     * * 448: wherever the row max moves after a KV tile (on random keys the max sits
     * in a uniformly random tile, so about half the keys), its probabilities lie on
     * another e4m3 grid than the oracle's: up to two independent roundings of P,
     * sqrt(2) e_p with e_p the probabilities' own rounding error (oracle vs the same
     * with P unquantized). 0.35x the whole FP8 error did not cover either. */
    float amax_v = 0.0f;
    for (int64_t t = 0; t < Nk * row; t++) amax_v = fmaxf(amax_v, fabsf(vc[t]));
    const int o8 = sc[5] > 0;
    const double e_o8 = o8 ? o8_err(orc, m, amax_v) : 0.0, e_p = rel_l2_rows(orc, oru, m);
    const double b_or = 1.5 * e_p + 1.1 * e_o8, b_ex = 1.3 * e_orx + 1.1 * e_o8;
    verdict(isfinite(e_or) && e_or <= b_or && isfinite(e_ex) && e_ex <= b_ex,
            "attention_fp8 q%lld kv%lld+%lld %lldx%lld, %d rows: vs oracle %.3g (bound %.3g = 1.5x "
            "P rounding %.4f + e4m3 output rounding %.4f); vs exact %.4f (bound %.4f; oracle vs "
            "exact %.4f); bf16 cuDNN vs exact %.4f", (long long)sh->Nq, (long long)sh->sink,
            (long long)sh->win, (long long)sh->NH, (long long)sh->HD, nrows, e_or, b_or, e_p, e_o8,
            e_ex, b_ex, e_orx, e_bf);
    /* diagnostic (printed, not a verdict): does the kernel quantize P before the
     * normalization (fp8.h) or after it (the graph's literal order)? Both oracles
     * through the same output rounding as the device. */
    if (o8) {
        o8_round(orc, orc, m, amax_v);
        o8_round(orn, orn, m, amax_v);
    }
    const double e_pu = rel_l2_rows(g8, orc, m), e_pn = rel_l2_rows(g8, orn, m);
    printf("attention_fp8 q%lld kv%lld diagnostic: cuDNN vs oracle with P quantized unnormalized "
           "(fp8.h) %.4g, normalized (graph order) %.4g; oracles apart %.4g: %s\n",
           (long long)sh->Nq, (long long)Nk, e_pu, e_pn, rel_l2_rows(orc, orn, m),
           e_pu <= e_pn ? "fp8.h matches the closer one"
                        : "cuDNN quantizes normalized P: change fp8.h, fp8_attention.c and the "
                          "emulation kernel to e4m3(e / Z * 448) and drop the / Z after P V");
    /* diagnostic: cuDNN's amax outputs against what the graph defines (they do not
     * feed our output): amax_s = amax of the normalized P, in (0, 1] (1 / the
     * smallest row sum when the kernel defers the normalization); amax_o = max |O|
     * before scale_o, so within one e4m3 step (2^-4) of max |output| here */
    if (sc[5] >= 0) {
        float ymax = 0.0f;
        for (size_t t = 0; t < n; t++) ymax = fmaxf(ymax, fabsf(y8[t]));
        printf("attention_fp8 q%lld kv%lld diagnostic: cuDNN amax_s %.6g (expected in (0, 1]); "
               "amax_o %.6g vs max |O| %.6g (expected within 6.25%%): %s\n", (long long)sh->Nq,
               (long long)Nk, sc[3], sc[4], ymax,
               sc[3] > 0.0f && sc[3] <= 1.0f && fabsf(sc[4] - ymax) <= 0.0625f * ymax
                   ? "as the graph defines"
                   : "NOT as expected (the scale convention or the amax outputs differ)");
    }
    free(o_or), free(o_ex), free(g8), free(gb), free(orc), free(exa), free(orn), free(oru);
    free(kc), free(vc), free(q8), free(k8), free(v8), free(y8), free(yb);
    sk_tensor_free(&qg), sk_tensor_free(&kg), sk_tensor_free(&vg), sk_tensor_free(&og);
    att_free(&d);
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp_dd(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static char g_att_table[4096];

/* 7. the FP8 KV cache: a pool of NF frames of R rows quantized frame by frame
 * (quantize_rows_pow2 on the CPU, bytes and scales uploaded to both sides), attention
 * over frames [0, a) and [a + 1, NF) on CUDA against the CPU op */
typedef struct {
    sk_tensor k8, v8, ks, vs;
} kv8_pool;

static void kv8_make(sk_backend *be, const float *k, const float *v, int64_t NF, int64_t R,
                     int64_t row, kv8_pool *p)
{
    const int64_t n = NF * R * row;
    uint8_t *b = malloc((size_t)(2 * n));
    float *sc = malloc((size_t)(2 * NF) * 4);
    for (int64_t f = 0; f < NF; f++) {
        sc[f] = sk_fp8_quantize_row_pow2(k + f * R * row, R * row, b + f * R * row);
        sc[NF + f] = sk_fp8_quantize_row_pow2(v + f * R * row, R * row, b + n + f * R * row);
    }
    p->k8 = mk(be, SK_DTYPE_F8_E4M3, 2, NF * R, row);
    p->v8 = mk(be, SK_DTYPE_F8_E4M3, 2, NF * R, row);
    p->ks = mk(be, SK_DTYPE_F32, 1, NF, 0);
    p->vs = mk(be, SK_DTYPE_F32, 1, NF, 0);
    OK(sk_tensor_upload_raw(&p->k8, b, (size_t)n));
    OK(sk_tensor_upload_raw(&p->v8, b + n, (size_t)n));
    OK(sk_tensor_upload_raw(&p->ks, sc, (size_t)NF * 4));
    OK(sk_tensor_upload_raw(&p->vs, sc + NF, (size_t)NF * 4));
    free(b), free(sc);
}

static void kv8_free(kv8_pool *p)
{
    sk_tensor_free(&p->k8), sk_tensor_free(&p->v8), sk_tensor_free(&p->ks), sk_tensor_free(&p->vs);
}

/* attention_fp8 over the pool's frames [0, a) and [a + 1, NF) (3-D views of the pool) */
static sk_status run_att8(sk_backend *be, sk_tensor *out, sk_tensor *q, kv8_pool *p, int64_t NF,
                          int64_t R, int64_t a, int64_t NH, int64_t HD, float scale)
{
    int64_t s3[3] = {NF * R, NH, HD};
    sk_tensor k3, v3;
    SK_TRY(sk_tensor_reshape(&p->k8, 3, s3, &k3));
    SK_TRY(sk_tensor_reshape(&p->v8, 3, s3, &v3));
    sk_kv_range r[2] = {{&k3, &v3, 0, a * R, &p->ks, &p->vs, R},
                        {&k3, &v3, (a + 1) * R, (NF - a - 1) * R, &p->ks, &p->vs, R}};
    return sk_op_attention_fp8(be, out, q, a > 0 ? r : &r[1], a > 0 ? 2 : 1, scale);
}

static void check_att_cache(sk_backend *cpu, sk_backend *gpu, int64_t Nq, int64_t NH, int64_t HD,
                            int64_t NF, int64_t R, int64_t a, int ref_kernel)
{
    const int64_t row = NH * HD, n = Nq * row, cap = NF * R;
    const float scale = 1.0f / sqrtf((float)HD);
    float *q = malloc((size_t)n * 4), *k = malloc((size_t)(cap * row) * 4), *v = malloc((size_t)(cap * row) * 4);
    sk_test_fill_normal(q, (size_t)n, 300 + (uint64_t)Nq, 1.0f);
    sk_test_fill_normal(k, (size_t)(cap * row), 301, 1.0f);
    sk_test_fill_normal(v, (size_t)(cap * row), 302, 1.0f);
    for (int64_t f = 0; f < NF; f++) /* frames of different magnitudes: different scales */
        for (int64_t i = 0; i < R * row; i++) k[f * R * row + i] *= 1.0f + (float)(f % 3);
    sk_round_through(q, (size_t)n, gpu->act_dtype);
    kv8_pool pc, pg;
    kv8_make(cpu, k, v, NF, R, row, &pc);
    kv8_make(gpu, k, v, NF, R, row, &pg);
    sk_tensor qc = mk(cpu, SK_DTYPE_F32, 2, Nq, row), oc = mk(cpu, SK_DTYPE_F32, 2, Nq, row);
    sk_tensor qg = mk(gpu, gpu->act_dtype, 2, Nq, row), og = mk(gpu, gpu->act_dtype, 2, Nq, row);
    OK(sk_tensor_upload_f32(&qc, q, (size_t)n));
    OK(sk_tensor_upload_f32(&qg, q, (size_t)n));
    int64_t s3[3] = {Nq, NH, HD};
    sk_tensor qc3, qg3;
    OK(sk_tensor_reshape(&qc, 3, s3, &qc3));
    OK(sk_tensor_reshape(&qg, 3, s3, &qg3));
    float *yc = malloc((size_t)n * 4), *yg = malloc((size_t)n * 4);
    OK(run_att8(cpu, &oc, &qc3, &pc, NF, R, a, NH, HD, scale));
    OK(sk_tensor_download_f32(&oc, yc, (size_t)n));
    if (ref_kernel) setenv("SK_CUDA_FP8_ATTN", "ref", 1);
    const sk_status st = run_att8(gpu, &og, &qg3, &pg, NF, R, a, NH, HD, scale);
    unsetenv("SK_CUDA_FP8_ATTN");
    if (st != SK_OK) {
        verdict(0, "attention_fp8 FP8 cache q%lld: %s", (long long)Nq, sk_error_message());
    } else {
        OK(sk_tensor_download_f32(&og, yg, (size_t)n));
        float sc[6] = {0};
        OK(sk_cuda_attention_fp8_scalars(gpu, sc));
        /* the call's scales: the largest frame scales of its frames (fp8.h), bit for bit */
        float mk_ = 0, mv = 0;
        const float *hk = pc.ks.data, *hv = pc.vs.data;
        for (int64_t f = 0; f < NF; f++)
            if (f != a) mk_ = fmaxf(mk_, hk[f]), mv = fmaxf(mv, hv[f]);
        const int sc_ok = sc[1] == mk_ && sc[2] == mv;
        const double e = rel_l2_rows(yg, yc, (size_t)n);
        const int dnn = sc[5] >= 0, bf = gpu->act_dtype == SK_DTYPE_BF16;
        /* bounds as in check_att_small: the P rounding of the same softmax (estimated
         * from the per-call quantization of these keys) and the e4m3 output on the grid
         * of the call's value scale */
        double e_p = 0.0, e_o8 = 0.0;
        if (dnn) { /* att_p_err's layout: the call's keys after a gap of 7 rows */
            const int64_t Nk = (NF - 1) * R;
            float *kk = calloc((size_t)((Nk + 7) * row), 4), *vv = calloc((size_t)((Nk + 7) * row), 4);
            for (int64_t f = 0, j = 7; f < NF; f++) {
                if (f == a) continue;
                memcpy(kk + j * row, k + f * R * row, (size_t)(R * row) * 4);
                memcpy(vv + j * row, v + f * R * row, (size_t)(R * row) * 4);
                j += R;
            }
            att_shape sh = {Nq, NH, HD, 0, Nk};
            att_data d = {q, kk, vv, Nk + 7};
            e_p = att_p_err(&d, &sh, scale);
            free(kk), free(vv);
            if (sc[5] > 0) e_o8 = o8_err(yc, (size_t)n, mv * 448.0f);
        }
        const double bound = !dnn ? (bf ? 4e-3 : 1e-4) : 1.5 * e_p + 1.1 * e_o8;
        verdict(isfinite(e) && e <= bound && sc_ok, "attention_fp8 FP8 cache q%lld %lld frames x %lld "
                "rows %lldx%lld %s (%s): vs cpu rel L2 %.3g (bound %.3g); call scales %s (k %g v %g); "
                "path %s", (long long)Nq, (long long)(NF - 1), (long long)R, (long long)NH,
                (long long)HD, sk_dtype_name(gpu->act_dtype), ref_kernel ? "emulation kernel" :
                "default path", e, bound, sc_ok ? "equal" : "DIFFER", (double)sc[1], (double)sc[2],
                sc[5] < 0 ? "emulation" : sc[5] > 0 ? "cuDNN, e4m3 output" : "cuDNN, bf16 output");
    }
    kv8_free(&pc), kv8_free(&pg);
    sk_tensor_free(&qc), sk_tensor_free(&oc), sk_tensor_free(&qg), sk_tensor_free(&og);
    free(q), free(k), free(v), free(yc), free(yg);
}

/* timing of the FP8-cache call at a DiT shape (frames of S rows; no K/V quantization
 * pass, the frames re-encoded to the call's scale): ms and TFLOP/s into the table */
static void time_att_cache(sk_backend *gpu, const att_shape *sh, int64_t S, int reps)
{
    const int64_t row = sh->NH * sh->HD, NF = (sh->sink + sh->win) / S + 1, a = sh->sink / S;
    const int64_t cap = NF * S;
    float *h = malloc((size_t)(cap * row) * 4);
    sk_tensor x = mk(gpu, SK_DTYPE_BF16, 2, NF, S * row);
    kv8_pool p;
    p.k8 = mk(gpu, SK_DTYPE_F8_E4M3, 2, cap, row);
    p.v8 = mk(gpu, SK_DTYPE_F8_E4M3, 2, cap, row);
    p.ks = mk(gpu, SK_DTYPE_F32, 1, NF, 0);
    p.vs = mk(gpu, SK_DTYPE_F32, 1, NF, 0);
    int64_t s2[2] = {NF, S * row};
    sk_tensor k2, v2;
    OK(sk_tensor_reshape(&p.k8, 2, s2, &k2));
    OK(sk_tensor_reshape(&p.v8, 2, s2, &v2));
    sk_test_fill_normal(h, (size_t)(cap * row), 501, 1.0f);
    OK(sk_tensor_upload_f32(&x, h, (size_t)(cap * row)));
    OK(sk_op_quantize_rows_pow2(gpu, &k2, &p.ks, &x));
    /* the cache write itself: one layer's K of a 3-frame (8-frame) chunk, frames as rows */
    const int64_t nc = sh->Nq / S;
    sk_tensor xc = sk_tensor_rows(&x, 0, nc), kc = sk_tensor_rows(&k2, 0, nc),
              sc1 = sk_tensor_rows(&p.ks, 0, nc);
    double tw[64];
    const int nr = reps > 64 ? 64 : reps;
    for (int r = -2; r < nr; r++) {
        OK(sk_backend_sync(gpu));
        const double t0 = now_s();
        for (int j = 0; j < 5; j++) OK(sk_op_quantize_rows_pow2(gpu, &kc, &sc1, &xc));
        OK(sk_backend_sync(gpu));
        if (r >= 0) tw[r] = (now_s() - t0) * 1e3 / 5;
    }
    qsort(tw, (size_t)nr, sizeof(double), cmp_dd);
    sk_test_fill_normal(h, (size_t)(cap * row), 502, 1.0f);
    OK(sk_tensor_upload_f32(&x, h, (size_t)(cap * row)));
    OK(sk_op_quantize_rows_pow2(gpu, &v2, &p.vs, &x));
    sk_tensor q = mk(gpu, SK_DTYPE_BF16, 2, sh->Nq, row), o = mk(gpu, SK_DTYPE_BF16, 2, sh->Nq, row);
    OK(sk_tensor_upload_f32(&q, h, (size_t)(sh->Nq * row)));
    int64_t s3[3] = {sh->Nq, sh->NH, sh->HD};
    sk_tensor q3;
    OK(sk_tensor_reshape(&q, 3, s3, &q3));
    const float scale = 1.0f / sqrtf((float)sh->HD);
    setenv("SK_CUDA_FP8_ATTN", "cudnn", 1);
    const sk_status st = run_att8(gpu, &o, &q3, &p, NF, S, a, sh->NH, sh->HD, scale);
    double t[64], med = 0;
    if (st == SK_OK) {
        for (int r = -2; r < nr; r++) {
            OK(sk_backend_sync(gpu));
            const double t0 = now_s();
            for (int j = 0; j < 5; j++) OK(run_att8(gpu, &o, &q3, &p, NF, S, a, sh->NH, sh->HD, scale));
            OK(sk_backend_sync(gpu));
            if (r >= 0) t[r] = (now_s() - t0) * 1e3 / 5;
        }
        qsort(t, (size_t)nr, sizeof(double), cmp_dd);
        med = t[nr / 2];
    }
    unsetenv("SK_CUDA_FP8_ATTN");
    const double fl = 4.0 * (double)sh->Nq * (double)(sh->sink + sh->win) * (double)row;
    const size_t len = strlen(g_att_table);
    if (st == SK_OK)
        snprintf(g_att_table + len, sizeof g_att_table - len,
                 "| q%lld kv%lld+%lld %lldx%lld, FP8 cache | fp8 from the cache: %.3f ms (%.0f TFLOP/s); "
                 "writing a chunk's K (%lld frames): %.3f ms |\n", (long long)sh->Nq,
                 (long long)sh->sink, (long long)sh->win, (long long)sh->NH, (long long)sh->HD,
                 med, fl / med / 1e9, (long long)nc, tw[nr / 2]);
    else
        snprintf(g_att_table + len, sizeof g_att_table - len, "| FP8 cache q%lld: %s |\n",
                 (long long)sh->Nq, sk_error_message());
    kv8_free(&p);
    sk_tensor_free(&x), sk_tensor_free(&q), sk_tensor_free(&o);
    free(h);
}

/* 6. timing: median of reps batches of 5 calls, host clock around a synced batch */
static void time_att(sk_backend *gpu, const att_shape *sh, int reps)
{
    att_data d;
    att_fill(&d, sh, SK_DTYPE_BF16, 99);
    sk_tensor q, k, v, o;
    att_upload(gpu, &d, sh, &q, &k, &v, &o);
    const float scale = 1.0f / sqrtf((float)sh->HD);
    const int64_t Nk = sh->sink + sh->win;
    const double fl = 4.0 * (double)sh->Nq * (double)Nk * (double)(sh->NH * sh->HD);
    double med[3] = {0, 0, 0};
    float sc[6] = {0};
    setenv("SK_CUDA_FP8_ATTN", "cudnn", 1);
    const int have = run_att(gpu, 1, &o, &q, &k, &v, sh, scale) == SK_OK;
    unsetenv("SK_CUDA_FP8_ATTN");
    OK(sk_cuda_attention_fp8_scalars(gpu, sc));
    /* without a cuDNN plan the emulation kernel would run: far too slow to time */
    const int kinds = !have || sc[5] < 0 ? 1 : 3;
    for (int kind = 0; kind < kinds; kind++) { /* bf16, fp8 with quantization, fp8 alone */
        double t[64];
        const int nr = reps > 64 ? 64 : reps;
        if (kind == 2) setenv("SK_CUDA_FP8_ATTN_SKIPQ", "1", 1);
        for (int r = -2; r < nr; r++) {
            OK(sk_backend_sync(gpu));
            const double t0 = now_s();
            for (int j = 0; j < 5; j++) OK(run_att(gpu, kind > 0, &o, &q, &k, &v, sh, scale));
            OK(sk_backend_sync(gpu));
            if (r >= 0) t[r] = (now_s() - t0) * 1e3 / 5;
        }
        unsetenv("SK_CUDA_FP8_ATTN_SKIPQ");
        qsort(t, (size_t)nr, sizeof(double), cmp_dd);
        med[kind] = t[nr / 2];
    }
    const size_t len = strlen(g_att_table);
    snprintf(g_att_table + len, sizeof g_att_table - len,
             "| q%lld kv%lld+%lld %lldx%lld | %.3f (%.0f) | %.3f (%.0f) | %.3f (%.0f) | %.2fx |\n",
             (long long)sh->Nq, (long long)sh->sink, (long long)sh->win, (long long)sh->NH,
             (long long)sh->HD, med[0], fl / med[0] / 1e9, med[1], fl / med[1] / 1e9, med[2],
             fl / med[2] / 1e9, kinds > 1 ? med[0] / med[1] : 0.0);
    if (kinds == 1) {
        const size_t l2 = strlen(g_att_table);
        snprintf(g_att_table + l2, sizeof g_att_table - l2, "(fp8 not timed: no cuDNN plan)\n");
    }
    sk_tensor_free(&q), sk_tensor_free(&k), sk_tensor_free(&v), sk_tensor_free(&o);
    att_free(&d);
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
    int do_time = 1, reps = 30, do_att = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--no-time")) do_time = 0;
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--no-attention")) do_att = 0;
        else {
            fprintf(stderr, "usage: gpu_check_fp8 [--no-time] [--reps N] [--no-attention]\n");
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
    if (do_att) {
        const att_shape small[] = {{200, 2, 128, 96, 300}, {130, 4, 64, 0, 257}, {77, 3, 32, 40, 90}};
        for (int g = 0; g < 2; g++)
            for (size_t i = 0; i < sizeof small / sizeof small[0]; i++) {
                check_att_small(cpu, gpus[g], &small[i], 1);
                check_att_small(cpu, gpus[g], &small[i], 0);
            }
    }
    const att_shape big[] = {{4680, 12, 128, 4680, 14040}, {7040, 24, 128, 7040, 21120}};
    if (do_att) {
        check_att_big(gb, &big[0], 6);
        check_att_big(gb, &big[1], 3);
    }
    if (do_att) { /* 7. the FP8 KV cache: frame quantization (long rows) and attention */
        for (int g = 0; g < 2; g++) {
            check_quantize_op(cpu, gpus[g], 3, 1560 * 1536, 0, 1); /* 1.3B frames */
            check_quantize_op(cpu, gpus[g], 2, 880 * 3072, 1, 1);  /* 5B frames, zero row, NaN */
            check_quantize_op(cpu, gpus[g], 64, 8960, 1, 1);       /* one block per row */
            check_quantize_op(cpu, gpus[g], 29, 24, 1, 1);         /* the scalar kernel */
            check_quantize_op(cpu, gpus[g], 3, 1560 * 1536 + 4, 0, 0); /* long rows, amax rules */
            check_att_cache(cpu, gpus[g], 200, 2, 128, 12, 32, 3, 1);
            check_att_cache(cpu, gpus[g], 200, 2, 128, 12, 32, 3, 0);
            check_att_cache(cpu, gpus[g], 77, 3, 32, 9, 16, 0, 0);
        }
    }
    for (int g = 0; g < 2; g++) { /* 8. modulate_fp8 */
        const int r8 = do_time ? 5 : 1;
        for (int ln_wb = 0; ln_wb < 2; ln_wb++) {
            check_modulate_fp8(cpu, gpus[g], 3, 1560, 1536, r8, ln_wb); /* 1.3B chunk */
            check_modulate_fp8(cpu, gpus[g], 8, 880, 3072, r8, ln_wb);  /* 5B chunk */
            check_modulate_fp8(cpu, gpus[g], 2, 30, 1540, 1, ln_wb);    /* D % 8: the two ops */
        }
    }
    check_dit(src);
    if (do_time) time_shapes(gb, reps);
    if (do_time && do_att) {
        for (int i = 0; i < 2; i++) time_att(gb, &big[i], reps);
        time_att_cache(gb, &big[0], 1560, reps);
        time_att_cache(gb, &big[1], 880, reps);
        printf("\nattention (median of %d, host clock around a synced batch of 5; ms (TFLOP/s)):\n"
               "| shape | bf16 cuDNN | fp8 (quantize + cuDNN fp8) | fp8 cuDNN alone | fp8 speedup |\n"
               "|---|---:|---:|---:|---:|\n%s", reps, g_att_table);
    }
    printf("\ncheck_fp8: %d passed, %d failed%s\n", g_pass, g_fail,
           g_pass + g_fail == 0 ? " (no comparison ran)" : "");
    sk_backend_free_(&gf);
    sk_backend_free_(&gb);
    sk_backend_free_(&cpuf);
    sk_backend_free_(&cpu);
    return g_fail || !g_pass ? 1 : 0;
}
