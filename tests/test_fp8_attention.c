/* test_fp8_attention.c - the FP8 self-attention of runtime/core/fp8.h on both CPU
 * backends: against an independent computation of the definition (per-tensor
 * e4m3 q/k/v, e4m3 probabilities), against the f32 attention (the quantization
 * happened and its error is bounded), non-finite inputs and argument errors. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/cli_run.h"
#include "common/compare.h"
#include "common/fp8_run.h"
#include "runtime/core/backend.h"
#include "runtime/core/dtype.h"
#include "runtime/core/fp8.h"
#include "runtime/cpu/cpu_fast.h"

static void ok(sk_status st, const char *what)
{
    cr_assert_eq(st, SK_OK, "%s: %s", what, sk_error_message());
}

enum { NQ = 24, NH = 3, HD = 32, CAP = 60 };
#define ROW (NH * HD)

typedef struct {
    sk_tensor q, k, v, out, ref;
    sk_kv_range r[2];
} fixture;

/* q [NQ, NH, HD]; one KV pool of CAP rows; two ranges of it, not adjacent */
static void setup_fx(sk_backend *be, fixture *f, const float *q, const float *k, const float *v)
{
    int64_t qs[3] = {NQ, NH, HD}, ks[3] = {CAP, NH, HD}, os[2] = {NQ, ROW};
    ok(sk_tensor_alloc(be, SK_DTYPE_F32, 3, qs, &f->q), "alloc q");
    ok(sk_tensor_alloc(be, SK_DTYPE_F32, 3, ks, &f->k), "alloc k");
    ok(sk_tensor_alloc(be, SK_DTYPE_F32, 3, ks, &f->v), "alloc v");
    ok(sk_tensor_alloc(be, SK_DTYPE_F32, 2, os, &f->out), "alloc out");
    ok(sk_tensor_alloc(be, SK_DTYPE_F32, 2, os, &f->ref), "alloc ref");
    ok(sk_tensor_upload_f32(&f->q, q, NQ * ROW), "upload q");
    ok(sk_tensor_upload_f32(&f->k, k, CAP * ROW), "upload k");
    ok(sk_tensor_upload_f32(&f->v, v, CAP * ROW), "upload v");
    f->r[0] = (sk_kv_range){&f->k, &f->v, 4, 17};
    f->r[1] = (sk_kv_range){&f->k, &f->v, 30, 25};
}

static void free_fx(fixture *f)
{
    sk_tensor_free(&f->q), sk_tensor_free(&f->k), sk_tensor_free(&f->v);
    sk_tensor_free(&f->out), sk_tensor_free(&f->ref);
}

static void random_qkv(float *q, float *k, float *v, uint64_t seed)
{
    sk_test_fill_normal(q, NQ * ROW, seed, 1.0f);
    sk_test_fill_normal(k, CAP * ROW, seed + 1, 1.5f);
    sk_test_fill_normal(v, CAP * ROW, seed + 2, 0.7f);
}

/* the definition of fp8.h written out independently: dequantized values, f64 dots */
static void independent(float *out, const float *q, const float *k, const float *v,
                        const sk_kv_range *r, int nr, float scale)
{
    int64_t Nk = 0;
    for (int i = 0; i < nr; i++) Nk += r[i].len;
    float *kc = malloc((size_t)(Nk * ROW) * 4), *vc = malloc((size_t)(Nk * ROW) * 4);
    uint8_t *q8 = malloc(NQ * ROW), *k8 = malloc((size_t)(Nk * ROW)), *v8 = malloc((size_t)(Nk * ROW));
    int64_t j = 0;
    for (int i = 0; i < nr; i++) {
        memcpy(kc + j * ROW, k + r[i].start * ROW, (size_t)(r[i].len * ROW) * 4);
        memcpy(vc + j * ROW, v + r[i].start * ROW, (size_t)(r[i].len * ROW) * 4);
        j += r[i].len;
    }
    const float sq = sk_fp8_quantize_row(q, NQ * ROW, q8);
    const float sk = sk_fp8_quantize_row(kc, Nk * ROW, k8);
    const float sv = sk_fp8_quantize_row(vc, Nk * ROW, v8);
    float *s = malloc((size_t)Nk * 4);
    for (int64_t i = 0; i < NQ; i++)
        for (int64_t h = 0; h < NH; h++) {
            float m = -INFINITY;
            for (int64_t t = 0; t < Nk; t++) {
                double d = 0;
                for (int c = 0; c < HD; c++)
                    d += (double)sk_f8e4m3_to_f32(q8[i * ROW + h * HD + c]) *
                         sk_f8e4m3_to_f32(k8[t * ROW + h * HD + c]);
                s[t] = (((float)d * scale) * sq) * sk;
                if (s[t] > m) m = s[t];
            }
            double Z = 0, acc[HD] = {0};
            for (int64_t t = 0; t < Nk; t++) {
                const float e = expf(s[t] - m);
                Z += e;
                const double p = sk_f8e4m3_to_f32(sk_fp8_sat(e * 448.0f));
                for (int c = 0; c < HD; c++) acc[c] += p * sk_f8e4m3_to_f32(v8[t * ROW + h * HD + c]);
            }
            for (int c = 0; c < HD; c++)
                out[i * ROW + h * HD + c] = (float)(acc[c] / Z / 448.0 * sv);
        }
    free(kc), free(vc), free(q8), free(k8), free(v8), free(s);
}

static void check_backend(sk_backend *be)
{
    float *q = malloc(NQ * ROW * 4), *k = malloc(CAP * ROW * 4), *v = malloc(CAP * ROW * 4);
    float *y = malloc(NQ * ROW * 4), *ref = malloc(NQ * ROW * 4), *y32 = malloc(NQ * ROW * 4);
    random_qkv(q, k, v, 70);
    fixture f;
    setup_fx(be, &f, q, k, v);
    const float scale = 1.0f / sqrtf((float)HD);
    ok(sk_op_attention_fp8(be, &f.out, &f.q, f.r, 2, scale), "attention_fp8");
    ok(sk_tensor_download_f32(&f.out, y, NQ * ROW), "download");
    independent(ref, q, k, v, f.r, 2, scale);
    const double e_def = sk_test_rel_l2(y, ref, NQ * ROW);
    cr_expect(e_def < 1e-5, "%s: attention_fp8 vs the definition: rel L2 %.3g", be->name, e_def);
    ok(sk_op_attention(be, &f.ref, &f.q, f.r, 2, scale, NULL), "attention");
    ok(sk_tensor_download_f32(&f.ref, y32, NQ * ROW), "download");
    const double e32 = sk_test_rel_l2(y, y32, NQ * ROW);
    /* e4m3 keeps 3 mantissa bits: ~2-4% per operand, averaged down by the sums */
    cr_expect(e32 > 1e-3 && e32 < 0.08, "%s: attention_fp8 vs f32 attention: rel L2 %.4f (the "
              "quantization ran: > 1e-3; bounded: < 0.08)", be->name, e32);
    /* one range of all keys gives the same result as the two ranges */
    int64_t ks[3] = {42, NH, HD};
    sk_tensor kc, vc;
    ok(sk_tensor_alloc(be, SK_DTYPE_F32, 3, ks, &kc), "alloc");
    ok(sk_tensor_alloc(be, SK_DTYPE_F32, 3, ks, &vc), "alloc");
    float *cat = malloc(42 * ROW * 4);
    memcpy(cat, k + 4 * ROW, 17 * ROW * 4);
    memcpy(cat + 17 * ROW, k + 30 * ROW, 25 * ROW * 4);
    ok(sk_tensor_upload_f32(&kc, cat, 42 * ROW), "upload");
    memcpy(cat, v + 4 * ROW, 17 * ROW * 4);
    memcpy(cat + 17 * ROW, v + 30 * ROW, 25 * ROW * 4);
    ok(sk_tensor_upload_f32(&vc, cat, 42 * ROW), "upload");
    sk_kv_range one = {&kc, &vc, 0, 42};
    ok(sk_op_attention_fp8(be, &f.ref, &f.q, &one, 1, scale), "attention_fp8 one range");
    ok(sk_tensor_download_f32(&f.ref, y32, NQ * ROW), "download");
    cr_expect(memcmp(y, y32, NQ * ROW * 4) == 0, "%s: two ranges != the same keys in one", be->name);
    sk_tensor_free(&kc), sk_tensor_free(&vc);
    free(cat);
    free_fx(&f);
    free(q), free(k), free(v), free(y), free(ref), free(y32);
}

Test(fp8_attention, reference_backend)
{
    sk_backend *be = NULL;
    ok(sk_backend_cpu_create(&be), "cpu");
    cr_assert(sk_backend_has_attention_fp8(be));
    check_backend(be);
    sk_backend_free_(&be);
}

Test(fp8_attention, fast_backend)
{
    sk_backend *be = NULL;
    ok(sk_backend_cpu_fast_create(&be), "cpu fast");
    check_backend(be);
    sk_backend_free_(&be);
}

/* the oracle's rows: any sub-range of query rows equals those rows of the whole */
Test(fp8_attention, oracle_rows_are_independent)
{
    const int64_t Nk = 40;
    uint8_t *q8 = malloc(NQ * ROW), *k8 = malloc((size_t)(Nk * ROW)), *v8 = malloc((size_t)(Nk * ROW));
    float *x = malloc(CAP * ROW * 4), *all = malloc(NQ * ROW * 4), *part = malloc(5 * ROW * 4);
    sk_test_fill_normal(x, CAP * ROW, 5, 1.0f);
    const float sq = sk_fp8_quantize_row(x, NQ * ROW, q8);
    const float sk = sk_fp8_quantize_row(x + 3, Nk * ROW, k8);
    const float sv = sk_fp8_quantize_row(x + 7, Nk * ROW, v8);
    sk_fp8_attention_rows(all, q8, k8, v8, Nk, NH, HD, 0, NQ, 0.2f, sq, sk, sv);
    sk_fp8_attention_rows(part, q8, k8, v8, Nk, NH, HD, 11, 16, 0.2f, sq, sk, sv);
    cr_expect(memcmp(part, all + 11 * ROW, 5 * ROW * 4) == 0);
    free(q8), free(k8), free(v8), free(x), free(all), free(part);
}

/* a NaN in V reaches the output (never a silent pass); argument errors */
Test(fp8_attention, nonfinite_and_errors)
{
    sk_backend *be = NULL;
    ok(sk_backend_cpu_create(&be), "cpu");
    float *q = malloc(NQ * ROW * 4), *k = malloc(CAP * ROW * 4), *v = malloc(CAP * ROW * 4);
    float *y = malloc(NQ * ROW * 4);
    random_qkv(q, k, v, 90);
    v[35 * ROW + 1] = NAN; /* inside range 1, head 0 */
    fixture f;
    setup_fx(be, &f, q, k, v);
    ok(sk_op_attention_fp8(be, &f.out, &f.q, f.r, 2, 0.2f), "attention_fp8");
    ok(sk_tensor_download_f32(&f.out, y, NQ * ROW), "download");
    int nan = 0;
    for (int i = 0; i < NQ * ROW; i++) nan += isnan(y[i]) != 0;
    cr_expect(nan > 0, "a NaN value must show in the output");
    cr_expect_eq(sk_op_attention_fp8(be, &f.out, &f.q, f.r, 0, 0.2f), SK_E_INVALID_ARG);
    sk_kv_range bad = {&f.k, &f.v, 50, 20};
    cr_expect_eq(sk_op_attention_fp8(be, &f.out, &f.q, &bad, 1, 0.2f), SK_E_SHAPE);
    sk_backend_ops ops = *be->ops;
    const sk_backend_ops *keep = be->ops;
    ops.attention_fp8 = NULL;
    be->ops = &ops;
    cr_expect_not(sk_backend_has_attention_fp8(be));
    cr_expect_eq(sk_op_attention_fp8(be, &f.out, &f.q, f.r, 2, 0.2f), SK_E_UNSUPPORTED);
    be->ops = keep;
    free_fx(&f);
    free(q), free(k), free(v), free(y);
    sk_backend_free_(&be);
}

/* --dtype fp8 with SK_FP8_ATTENTION=1 runs the DiT's self-attention through the FP8 op (the
 * profile names it), cross-attention in the act dtype; without it, and with --dtype bf16,
 * the FP8 op is never called */
Test(fp8_attention, dit_uses_it_under_dtype_fp8, .timeout = 120)
{
    tu_result r = tu_run("bench", "--config", "tiny", "--device", "cpu", "--chunks", "2",
                         "--warmup", "1", "--dtype", "fp8", NULL);
    cr_assert_eq(r.code, 0, "exit %d: %s", r.code, r.err);
    cr_expect(!strstr(r.out, "self-attention fp8"), "FP8 attention without SK_FP8_ATTENTION:\n%s",
              r.out);
    tu_result_free(&r);
    setenv("SK_FP8_ATTENTION", "1", 1);
    r = tu_run("bench", "--config", "tiny", "--device", "cpu", "--chunks", "2",
                         "--warmup", "1", "--dtype", "fp8", NULL);
    cr_assert_eq(r.code, 0, "exit %d: %s", r.code, r.err);
    const char *p = strstr(r.out, "self-attention fp8");
    cr_expect(p, "no 'self-attention fp8' in the fp8 profile:\n%s", r.out);
    cr_expect(strstr(r.out, "cross-attention"), "%s", r.out);
    cr_expect(!strstr(r.out, "self-attention  "), "act-dtype self-attention in fp8 run:\n%s",
              r.out);
    /* the tiny config's cache (sink) is baked: K/V stored in e4m3, quantized frame by frame */
    cr_expect(strstr(r.out, "fp8 quantize (KV cache frames)"), "no FP8 KV cache:\n%s", r.out);
    tu_result_free(&r);
    /* SK_FP8_KV=0 keeps the cache in the act dtype; ema rewrites keys: act dtype too */
    setenv("SK_FP8_KV", "0", 1);
    r = tu_run("bench", "--config", "tiny", "--device", "cpu", "--chunks", "2",
                         "--warmup", "1", "--dtype", "fp8", NULL);
    cr_assert_eq(r.code, 0, "exit %d: %s", r.code, r.err);
    cr_expect(strstr(r.out, "self-attention fp8") && !strstr(r.out, "KV cache frames"), "%s", r.out);
    tu_result_free(&r);
    unsetenv("SK_FP8_KV");
    const char *pol[2] = {"sink", "ema"};
    for (int i = 0; i < 2; i++) { /* what --print-config says of the cache */
        r = tu_run("generate", "--dit", SK_SOURCE_DIR "/tests/fixtures/dit/dit_tiny.safetensors",
                   "--text-embeds", SK_SOURCE_DIR "/tests/fixtures/dit/embeds.safetensors",
                   "--latent-height", "8", "--latent-width", "8", "--chunk", "3", "--device",
                   "cpu", "--no-decode", "--frames", "24", "--kv-policy", pol[i], "--dtype", "fp8",
                   "--print-config", NULL);
        cr_assert_eq(r.code, 0, "%s: exit %d: %s", pol[i], r.code, r.err);
        cr_expect((strstr(r.out, "e4m3, one scale per frame") != NULL) == (i == 0),
                  "%s: the cache in e4m3 only for baked keys:\n%s", pol[i], r.out);
        tu_result_free(&r);
    }
    /* the FP8 cache's x0 against f32 stays small and flat over the chunks */
    r = tu_run("bench", "--config", "tiny", "--device", "cpu", "--chunks", "10", "--warmup", "1",
               "--dtype", "fp8", "--compare-dtype", "fp32", "--no-profile", NULL);
    cr_assert_eq(r.code, 0, "exit %d: %s", r.code, r.err);
    const char *xm = strstr(r.out, "x0 error: max ");
    cr_assert(xm, "%s", r.out);
    const double emax = atof(xm + strlen("x0 error: max "));
    cr_expect(emax > 0 && emax < 0.02, "FP8 cache: x0 error max %g against f32", emax);
    tu_result_free(&r);
    r = tu_run("bench", "--config", "tiny", "--device", "cpu", "--chunks", "2", "--warmup", "1",
               "--dtype", "bf16", NULL);
    cr_assert_eq(r.code, 0, "exit %d: %s", r.code, r.err);
    cr_expect(!strstr(r.out, "self-attention fp8"), "%s", r.out);
    cr_expect(strstr(r.out, "self-attention"), "%s", r.out);
    tu_result_free(&r);
}

/* ranges of the FP8 KV cache (e4m3 frames of R rows, one power-of-two scale each): the
 * call's scales are the largest frame scales and the frames are re-encoded to them
 * (fp8.h), computed here independently in f64; on both CPU backends */
static void check_cache_ranges(sk_backend *be)
{
    enum { R = 5, NF = CAP / R };
    float *q = malloc(NQ * ROW * 4), *k = malloc(CAP * ROW * 4), *v = malloc(CAP * ROW * 4);
    float *y8 = malloc(NQ * ROW * 4), *yd = malloc(NQ * ROW * 4), *y32 = malloc(NQ * ROW * 4);
    random_qkv(q, k, v, 110);
    for (int f = 0; f < NF; f++) /* frames of different magnitudes: different scales */
        for (int i = 0; i < R * ROW; i++) k[f * R * ROW + i] *= 1.0f + (float)(f % 4);
    int64_t ks[3] = {CAP, NH, HD}, ss[1] = {NF};
    sk_tensor k8, v8, sk, sv;
    ok(sk_tensor_alloc(be, SK_DTYPE_F8_E4M3, 3, ks, &k8), "alloc k8");
    ok(sk_tensor_alloc(be, SK_DTYPE_F8_E4M3, 3, ks, &v8), "alloc v8");
    ok(sk_tensor_alloc(be, SK_DTYPE_F32, 1, ss, &sk), "alloc sk");
    ok(sk_tensor_alloc(be, SK_DTYPE_F32, 1, ss, &sv), "alloc sv");
    float *hs = sk.data, *hv = sv.data; /* CPU backends: host memory */
    uint8_t *b8k = k8.data, *b8v = v8.data;
    for (int f = 0; f < NF; f++) {
        hs[f] = sk_fp8_quantize_row_pow2(k + f * R * ROW, R * ROW, b8k + f * R * ROW);
        hv[f] = sk_fp8_quantize_row_pow2(v + f * R * ROW, R * ROW, b8v + f * R * ROW);
    }
    sk_kv_range r8[2] = {{&k8, &v8, 5, 15, &sk, &sv, R}, {&k8, &v8, 30, 25, &sk, &sv, R}};
    /* independently: the largest scale over frames 1..3 and 6..10, every byte re-encoded */
    double mk = 0, mv = 0;
    int distinct = 0;
    for (int f = 1; f < NF - 1; f++) {
        if (f == 4 || f == 5) continue;
        if (hs[f] > mk) mk = hs[f];
        if (hv[f] > mv) mv = hv[f];
        distinct += hs[f] != hs[1];
    }
    cr_assert(distinct > 0, "the frames must have different scales");
    const int64_t Nk = 40;
    uint8_t *q8 = malloc(NQ * ROW), *kc = malloc(Nk * ROW), *vc = malloc(Nk * ROW);
    int64_t j = 0, changed = 0;
    for (int g = 0; g < 2; g++)
        for (int64_t t = r8[g].start; t < r8[g].start + r8[g].len; t++, j++)
            for (int c = 0; c < ROW; c++) {
                const double ek = (double)sk_f8e4m3_to_f32(b8k[t * ROW + c]) * hs[t / R] / mk;
                const double ev = (double)sk_f8e4m3_to_f32(b8v[t * ROW + c]) * hv[t / R] / mv;
                kc[j * ROW + c] = sk_fp8_sat((float)ek);
                vc[j * ROW + c] = sk_fp8_sat((float)ev);
                changed += kc[j * ROW + c] != b8k[t * ROW + c];
            }
    cr_assert(changed > 0, "no frame was re-encoded");
    const float sq = sk_fp8_quantize_row(q, NQ * ROW, q8);
    const float scale = 1.0f / sqrtf((float)HD);
    sk_fp8_attention_rows(yd, q8, kc, vc, Nk, NH, HD, 0, NQ, scale, sq, (float)mk, (float)mv);
    fixture f;
    setup_fx(be, &f, q, k, v);
    f.r[0] = (sk_kv_range){&f.k, &f.v, 5, 15};
    f.r[1] = (sk_kv_range){&f.k, &f.v, 30, 25};
    ok(sk_op_attention_fp8(be, &f.out, &f.q, r8, 2, scale), "attention_fp8 on e4m3 ranges");
    ok(sk_tensor_download_f32(&f.out, y8, NQ * ROW), "download");
    cr_expect(memcmp(y8, yd, NQ * ROW * 4) == 0,
              "%s: e4m3 cache ranges != fp8.h's definition computed independently", be->name);
    /* against the f32 attention on the values before any quantization: about as near as
     * the FP8 attention quantizing those values once per call */
    ok(sk_op_attention(be, &f.ref, &f.q, f.r, 2, scale, NULL), "attention f32");
    ok(sk_tensor_download_f32(&f.ref, y32, NQ * ROW), "download");
    ok(sk_op_attention_fp8(be, &f.out, &f.q, f.r, 2, scale), "attention_fp8 per call");
    ok(sk_tensor_download_f32(&f.out, yd, NQ * ROW), "download");
    const double e32 = sk_test_rel_l2(y8, y32, NQ * ROW), e1 = sk_test_rel_l2(yd, y32, NQ * ROW);
    cr_log_info("%s: vs f32: FP8 cache %.4f, per-call FP8 %.4f", be->name, e32, e1);
    cr_expect(e1 > 1e-3 && e1 < 0.15 && e32 > 1e-3 && e32 < 1.15 * e1,
              "%s: vs f32: FP8 cache %.4f, per-call FP8 %.4f (bound 1.15x)", be->name, e32, e1);
    /* errors: a range of e4m3 keys without scales, scales of the wrong length, a call
     * mixing the cache with act-dtype keys, the act-dtype attention asked to read e4m3 */
    sk_kv_range bad = r8[0];
    bad.k_scale = NULL;
    cr_expect_eq(sk_op_attention_fp8(be, &f.out, &f.q, &bad, 1, scale), SK_E_INVALID_ARG);
    bad = r8[0];
    bad.scale_rows = 7; /* 60 rows are not whole frames of 7 */
    cr_expect_eq(sk_op_attention_fp8(be, &f.out, &f.q, &bad, 1, scale), SK_E_SHAPE);
    bad.scale_rows = 6; /* 10 frames, 12 scales */
    cr_expect_eq(sk_op_attention_fp8(be, &f.out, &f.q, &bad, 1, scale), SK_E_SHAPE);
    sk_kv_range mix[2] = {r8[0], f.r[1]};
    cr_expect_eq(sk_op_attention_fp8(be, &f.out, &f.q, mix, 2, scale), SK_E_DTYPE);
    cr_expect_neq(sk_op_attention(be, &f.out, &f.q, r8, 2, scale, NULL), SK_OK);
    sk_tensor_free(&k8), sk_tensor_free(&v8), sk_tensor_free(&sk), sk_tensor_free(&sv);
    free_fx(&f);
    free(q), free(k), free(v), free(y8), free(yd), free(y32), free(q8), free(kc), free(vc);
}

Test(fp8_attention, fp8_cache_ranges_reference_backend)
{
    sk_backend *be = NULL;
    ok(sk_backend_cpu_create(&be), "cpu");
    check_cache_ranges(be);
    sk_backend_free_(&be);
}

Test(fp8_attention, fp8_cache_ranges_fast_backend)
{
    sk_backend *be = NULL;
    ok(sk_backend_cpu_fast_create(&be), "cpu fast");
    check_cache_ranges(be);
    sk_backend_free_(&be);
}

/* the power-of-two row rules: the smallest power of two at or above amax/448 */
Test(fp8_attention, pow2_row_scales)
{
    const float amax[] = {448.0f, 449.0f, 1.0f, 3.5f, 1e-30f, 1e-44f, 3e38f};
    for (unsigned i = 0; i < sizeof amax / sizeof amax[0]; i++) {
        float inv, s;
        sk_fp8_row_scales_pow2(amax[i], &inv, &s);
        int e;
        cr_expect(frexpf(s, &e) == 0.5f && s * inv == 1.0f && isfinite(inv), "amax %g: scale %g inv %g",
                  amax[i], s, inv);
        cr_expect(amax[i] / 448.0f <= s, "amax %g: scale %g too small", amax[i], s);
        cr_expect(amax[i] / 448.0f > s / 2 || s == ldexpf(1.0f, -126), "amax %g: scale %g not the smallest",
                  amax[i], s);
    }
    float inv, s;
    sk_fp8_row_scales_pow2(0.0f, &inv, &s);
    cr_expect(inv == 1.0f && s == 1.0f);
    sk_fp8_row_scales_pow2(INFINITY, &inv, &s);
    cr_expect(inv == 0.0f && isinf(s));
}
