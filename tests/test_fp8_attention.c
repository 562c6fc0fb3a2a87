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
    tu_result_free(&r);
    r = tu_run("bench", "--config", "tiny", "--device", "cpu", "--chunks", "2", "--warmup", "1",
               "--dtype", "bf16", NULL);
    cr_assert_eq(r.code, 0, "exit %d: %s", r.code, r.err);
    cr_expect(!strstr(r.out, "self-attention fp8"), "%s", r.out);
    cr_expect(strstr(r.out, "self-attention"), "%s", r.out);
    tu_result_free(&r);
}
