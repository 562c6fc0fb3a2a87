/* test_cpu_fast.c - the fast CPU backend (OpenBLAS sgemm + a thread pool) against
 * the reference loops: every case of the shared op table, then larger cases
 * that cross the fast path's blocking (several im2col pixel blocks, several
 * attention query blocks, empty KV ranges, T5 bias), each within the f32
 * bound of its op class; the ops the fast backend only threads (norms,
 * modulation, residuals, axpby, mul, RoPE) must match bit for bit. Also the
 * device names: cpu / cpu-ref / auto and the SK_CPU_REF switch. */
#include <stdlib.h>

#include "runtime/cpu/cpu_fast.h"
#include "runtime/engine/device.h"
#include "tests/common/op_cases.h"
#include "tests/common/test_util.h"

static sk_backend *ref, *fast;
static void setup(void)
{
    TT_OK(sk_backend_cpu_create(&ref));
    TT_OK(sk_backend_cpu_fast_create(&fast));
}
static void teardown(void)
{
    cr_expect_eq(ref->bytes_live, 0, "reference leaked %zu bytes", ref->bytes_live);
    cr_expect_eq(fast->bytes_live, 0, "fast backend leaked %zu bytes", fast->bytes_live);
    sk_backend_free_(&ref);
    sk_backend_free_(&fast);
}
TestSuite(cpu_fast, .init = setup, .fini = teardown);

/* ops the fast backend runs with the reference's arithmetic, rows split over threads */
static int bitwise_op(const char *op)
{
    static const char *const k[] = {"layernorm", "rmsnorm", "modulate", "gated_add", "axpby",
                                     "mul",       "rope3d",  "upsample_nearest", "pixel_shuffle"};
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++)
        if (!strcmp(op, k[i])) return 1;
    return 0;
}

Test(cpu_fast, every_op_case_matches_the_reference)
{
    int n_run = 0;
    for (int i = 0; i < sk_op_case_count(); i++) {
        const sk_op_case *c = sk_op_case_get(i);
        float *want, *got;
        size_t nw, ng;
        TT_OK(sk_op_case_run(c, ref, 5, &want, &nw));
        TT_OK(sk_op_case_run(c, fast, 5, &got, &ng));
        cr_assert_eq(nw, ng, "%s: %zu vs %zu outputs", c->name, ng, nw);
        char buf[512];
        if (c->cls == SK_OPC_EXACT || bitwise_op(c->op)) {
            for (size_t j = 0; j < nw; j++)
                cr_assert(memcmp(&got[j], &want[j], sizeof(float)) == 0,
                          "%s: [%zu] %.9g differs from the reference's %.9g", c->name, j, got[j],
                          want[j]);
        } else {
            /* both compute in f32 from the same rounded inputs: the f32 bound */
            sk_op_case c32 = *c;
            c32.dtype = SK_DTYPE_F32;
            sk_op_bounds b = sk_op_case_bounds(&c32);
            sk_compare_result r = sk_compare(got, want, nw, b.nmse, b.atol, b.rtol);
            sk_compare_format(&r, got, want, buf, sizeof buf);
            cr_assert(r.ok, "%s: %s", c->name, buf);
        }
        free(want), free(got);
        n_run++;
    }
    cr_assert_gt(n_run, 40);
}

/* runs fn on both backends with the same inputs, returns both outputs */
typedef struct {
    sk_tensor in[4];
    int nin;
    sk_tensor out;
} io_set;

static void io_free(io_set *s)
{
    for (int i = 0; i < s->nin; i++) sk_tensor_free(&s->in[i]);
    sk_tensor_free(&s->out);
}

static void expect_close(const float *got, const float *want, size_t n, sk_op_class cls,
                         const char *what)
{
    sk_op_case c = {.cls = cls, .dtype = SK_DTYPE_F32, .wdtype = SK_DTYPE_F32};
    sk_op_bounds b = sk_op_case_bounds(&c);
    sk_compare_result r = sk_compare(got, want, n, b.nmse, b.atol, b.rtol);
    char buf[512];
    sk_compare_format(&r, got, want, buf, sizeof buf);
    cr_assert(r.ok, "%s: %s", what, buf);
}

static void linear_case(sk_backend *be, io_set *s, int64_t M, int64_t K, int64_t N, sk_dtype wdt,
                        sk_act act)
{
    s->nin = 3;
    s->in[0] = tt_rand(be, SK_DTYPE_F32, 2, TT_SHAPE(M, K), 21, -1, 1);
    s->in[1] = tt_rand(be, wdt, 2, TT_SHAPE(N, K), 22, -0.2f, 0.2f);
    s->in[2] = tt_rand(be, wdt, 1, TT_SHAPE(N), 23, -1, 1);
    s->out = tt_new(be, SK_DTYPE_F32, 2, TT_SHAPE(M, N), NULL);
    TT_OK(sk_op_linear(be, &s->out, &s->in[0], &s->in[1], &s->in[2], act));
}

Test(cpu_fast, linear_bf16_weights_gelu_and_silu)
{
    const sk_act acts[] = {SK_ACT_GELU_TANH, SK_ACT_SILU, SK_ACT_NONE};
    for (int a = 0; a < 3; a++) {
        io_set r = {0}, f = {0};
        linear_case(ref, &r, 67, 200, 131, a == 2 ? SK_DTYPE_F16 : SK_DTYPE_BF16, acts[a]);
        linear_case(fast, &f, 67, 200, 131, a == 2 ? SK_DTYPE_F16 : SK_DTYPE_BF16, acts[a]);
        float *want = tt_get(&r.out), *got = tt_get(&f.out);
        expect_close(got, want, 67 * 131, SK_OPC_MATMUL, "linear");
        free(want), free(got);
        io_free(&r), io_free(&f);
    }
}

/* 64 input channels x 3x3 = K 576: the fast conv takes 16 MB / (4 K) = 7281
 * pixels per im2col block, so 96x96 = 9216 output pixels need two blocks */
static void conv_case(sk_backend *be, io_set *s, int64_t Ci, int64_t H, int64_t W, int64_t Co,
                      int k, int stride, int pad)
{
    const int64_t Ho = (H + 2 * pad - k) / stride + 1, Wo = (W + 2 * pad - k) / stride + 1;
    s->nin = 3;
    s->in[0] = tt_rand(be, SK_DTYPE_F32, 4, TT_SHAPE(2, Ci, H, W), 31, -1, 1);
    s->in[1] = tt_rand(be, SK_DTYPE_BF16, 4, TT_SHAPE(Co, Ci, k, k), 32, -0.1f, 0.1f);
    s->in[2] = tt_rand(be, SK_DTYPE_F32, 1, TT_SHAPE(Co), 33, -1, 1);
    s->out = tt_new(be, SK_DTYPE_F32, 4, TT_SHAPE(2, Co, Ho, Wo), NULL);
    TT_OK(sk_op_conv2d(be, &s->out, &s->in[0], &s->in[1], &s->in[2], stride, pad));
}

Test(cpu_fast, conv2d_over_several_pixel_blocks_and_1x1)
{
    const int cfg[][6] = {{64, 96, 96, 3, 3, 1}, {7, 33, 20, 5, 3, 2}, {24, 17, 19, 9, 1, 1}};
    for (int i = 0; i < 3; i++) {
        const int k = cfg[i][4], pad = k == 1 ? 0 : 1, stride = cfg[i][5];
        io_set r = {0}, f = {0};
        conv_case(ref, &r, cfg[i][0], cfg[i][1], cfg[i][2], cfg[i][3], k, stride, pad);
        conv_case(fast, &f, cfg[i][0], cfg[i][1], cfg[i][2], cfg[i][3], k, stride, pad);
        float *want = tt_get(&r.out), *got = tt_get(&f.out);
        expect_close(got, want, (size_t)sk_tensor_numel(&r.out), SK_OPC_MATMUL, "conv2d");
        free(want), free(got);
        io_free(&r), io_free(&f);
    }
}

/* Nk 9000 keys over three ranges (one empty): the fast path keeps 8 MB of
 * scores, 2M / 9000 = 233 query rows per block, so 300 queries take two */
static void attention_case(sk_backend *be, io_set *s, int with_bias, int64_t Nq)
{
    const int64_t NH = 2, HD = 8, cap = 9500;
    s->nin = with_bias ? 4 : 3;
    s->in[0] = tt_rand(be, SK_DTYPE_F32, 3, TT_SHAPE(Nq, NH, HD), 41, -1, 1);
    s->in[1] = tt_rand(be, SK_DTYPE_F32, 3, TT_SHAPE(cap, NH, HD), 42, -1, 1);
    s->in[2] = tt_rand(be, SK_DTYPE_F32, 3, TT_SHAPE(cap, NH, HD), 43, -1, 1);
    const sk_kv_range rg[3] = {{&s->in[1], &s->in[2], 100, 0},
                               {&s->in[1], &s->in[2], 7000, 2500},
                               {&s->in[1], &s->in[2], 0, 6500}};
    if (with_bias) s->in[3] = tt_rand(be, SK_DTYPE_F32, 3, TT_SHAPE(NH, Nq, 9000), 44, -2, 2);
    s->out = tt_new(be, SK_DTYPE_F32, 2, TT_SHAPE(Nq, NH * HD), NULL);
    TT_OK(sk_op_attention(be, &s->out, &s->in[0], rg, 3, 0.35f, with_bias ? &s->in[3] : NULL));
}

Test(cpu_fast, attention_over_query_blocks_ranges_and_bias)
{
    for (int bias = 0; bias < 2; bias++) {
        const int64_t Nq = bias ? 37 : 300;
        io_set r = {0}, f = {0};
        attention_case(ref, &r, bias, Nq);
        attention_case(fast, &f, bias, Nq);
        float *want = tt_get(&r.out), *got = tt_get(&f.out);
        expect_close(got, want, (size_t)sk_tensor_numel(&r.out), SK_OPC_ATTENTION, "attention");
        free(want), free(got);
        io_free(&r), io_free(&f);
    }
}

Test(cpu_fast, device_names_pick_the_backend)
{
    sk_backend *a = NULL, *b = NULL, *c = NULL;
    unsetenv("SK_CPU_REF");
    TT_OK(sk_backend_create("cpu", SK_DTYPE_F32, &a));
    TT_OK(sk_backend_create("cpu-ref", SK_DTYPE_F32, &b));
    cr_assert_eq(a->ops, fast->ops, "'cpu' is the fast backend");
    cr_assert_eq(b->ops, ref->ops, "'cpu-ref' is the reference");
    cr_assert_str_eq(a->name, "cpu");
    setenv("SK_CPU_REF", "1", 1);
    TT_OK(sk_backend_create("cpu", SK_DTYPE_F32, &c));
    cr_assert_eq(c->ops, ref->ops, "SK_CPU_REF=1 makes 'cpu' the reference");
    cr_assert(strstr(sk_device_describe("cpu"), "cpu-ref"), "%s", sk_device_describe("cpu"));
    unsetenv("SK_CPU_REF");
    cr_assert(strstr(sk_device_describe("cpu"), "thread"), "%s", sk_device_describe("cpu"));
    sk_backend_free_(&a), sk_backend_free_(&b), sk_backend_free_(&c);
    /* auto is cuda exactly when a GPU is usable; this CPU build has none */
    const char *au = sk_device_auto();
    cr_assert(!strcmp(au, "cpu") || !strcmp(au, "cuda"));
#ifndef SK_HAVE_CUDA
    cr_assert_str_eq(au, "cpu");
#endif
    TT_FAILS(sk_backend_create("gpu", SK_DTYPE_F32, &a), SK_E_INVALID_ARG, "cpu-ref");
    cr_assert(sk_cpu_fast_threads() >= 1);
}
