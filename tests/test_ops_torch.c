/* test_ops_torch.c - the CPU backend against PyTorch: single-op fixtures made
 * by tests/reference/make_op_fixtures.py (PyTorch's own F.* functions, and the
 * Wan RoPE / patch embedding / unpatchify written from the spec). */
#include "runtime/io/safetensors.h"
#include "tests/common/test_util.h"

static sk_backend *be;
static sk_st_file *fx;

static void setup(void)
{
    TT_OK(sk_backend_cpu_create(&be));
    TT_OK(sk_st_open(SK_SOURCE_DIR "/tests/fixtures/ops/ops.safetensors", &fx));
}
static void teardown(void)
{
    sk_st_close(&fx);
    cr_expect_eq(be->bytes_live, 0, "test leaked %zu bytes of backend memory", be->bytes_live);
    sk_backend_free_(&be);
}
TestSuite(ops_torch, .init = setup, .fini = teardown);

/* The fixture tensor `name` on the backend, with the fixture's shape. */
static sk_tensor load(const char *name)
{
    float *h = NULL;
    const sk_st_tensor *info = NULL;
    TT_OK(sk_st_read_f32(fx, name, 0, NULL, &h, &info));
    sk_tensor t = tt_new(be, SK_DTYPE_F32, info->ndim, info->shape, h);
    free(h);
    return t;
}

/* Host copy of a fixture tensor (caller frees) and its element count. */
static float *want(const char *name, size_t *n)
{
    float *h = NULL;
    const sk_st_tensor *info = NULL;
    TT_OK(sk_st_read_f32(fx, name, 0, NULL, &h, &info));
    size_t c = 1;
    for (int i = 0; i < info->ndim; i++) c *= (size_t)info->shape[i];
    *n = c;
    return h;
}

static sk_tensor like(const sk_tensor *t) { return tt_new(be, SK_DTYPE_F32, t->ndim, t->shape, NULL); }
static sk_tensor shaped(int nd, const int64_t *s) { return tt_new(be, SK_DTYPE_F32, nd, s, NULL); }

/* y against fixture `ref` at f32 agreement */
static void check(const sk_tensor *y, const char *ref, double nmse, double atol, double rtol)
{
    size_t n;
    float *r = want(ref, &n), *g = tt_get(y);
    cr_assert_eq((int64_t)n, sk_tensor_numel(y), "%s: %zu reference values, output has %lld", ref,
                 n, (long long)sk_tensor_numel(y));
    sk_compare_result c = sk_compare(g, r, n, nmse, atol, rtol);
    char buf[512];
    sk_compare_format(&c, g, r, buf, sizeof buf);
    cr_assert(c.ok, "%s: %s", ref, buf);
    free(r), free(g);
}
#define TIGHT 1e-11, 1e-6, 1e-5

Test(ops_torch, activations)
{
    sk_tensor x = load("act.x"), y = like(&x);
    const struct { sk_act a; const char *ref; } k[] = {
        {SK_ACT_GELU_TANH, "act.gelu_tanh"}, {SK_ACT_SILU, "act.silu"}, {SK_ACT_RELU, "act.relu"}};
    sk_tensor x2, y2;
    TT_OK(sk_tensor_reshape(&x, 2, TT_SHAPE(1, 97), &x2));
    TT_OK(sk_tensor_reshape(&y, 2, TT_SHAPE(1, 97), &y2));
    for (int i = 0; i < 3; i++) {
        TT_OK(sk_op_act(be, &y2, &x2, k[i].a));
        check(&y, k[i].ref, TIGHT);
    }
    sk_tensor_free(&x), sk_tensor_free(&y);
}

Test(ops_torch, linear)
{
    sk_tensor x = load("linear.x"), w = load("linear.w"), b = load("linear.b");
    sk_tensor y = shaped(2, TT_SHAPE(7, 11));
    TT_OK(sk_op_linear(be, &y, &x, &w, &b, SK_ACT_NONE));
    check(&y, "linear.y", TIGHT);
    TT_OK(sk_op_linear(be, &y, &x, &w, &b, SK_ACT_GELU_TANH));
    check(&y, "linear.y_gelu", TIGHT);
    sk_tensor_free(&x), sk_tensor_free(&w), sk_tensor_free(&b), sk_tensor_free(&y);
}

Test(ops_torch, norms_and_modulate)
{
    sk_tensor x = load("layernorm.x"), w = load("layernorm.w"), b = load("layernorm.b");
    sk_tensor y = like(&x);
    TT_OK(sk_op_layernorm(be, &y, &x, &w, &b, 1e-6f));
    check(&y, "layernorm.y", TIGHT);
    TT_OK(sk_op_rmsnorm(be, &y, &x, &w, 1e-6f));
    check(&y, "rmsnorm.y", TIGHT);
    sk_tensor xm = load("modulate.x"), mod = load("modulate.mod"), ym = like(&xm);
    TT_OK(sk_op_modulate(be, &ym, &xm, &mod, 0, 1, 4, 1, 1e-6f));
    check(&ym, "modulate.y_ln_s0_c1", TIGHT);
    sk_tensor_free(&x), sk_tensor_free(&w), sk_tensor_free(&b), sk_tensor_free(&y);
    sk_tensor_free(&xm), sk_tensor_free(&mod), sk_tensor_free(&ym);
}

Test(ops_torch, attention_split_ranges_and_bias)
{
    sk_tensor q = load("attention.q"), k = load("attention.k"), v = load("attention.v");
    sk_tensor bias = load("attention.bias"), y = shaped(2, TT_SHAPE(9, 48));
    /* the 21 keys as two ranges of the same cache: [0, 8) and [8, 21) */
    sk_kv_range r[2] = {{&k, &v, 0, 8}, {&k, &v, 8, 13}};
    TT_OK(sk_op_attention(be, &y, &q, r, 2, 0.25f, NULL));
    check(&y, "attention.y", TIGHT);
    TT_OK(sk_op_attention(be, &y, &q, r, 2, 0.25f, &bias));
    check(&y, "attention.y_bias", TIGHT);
    sk_tensor_free(&q), sk_tensor_free(&k), sk_tensor_free(&v), sk_tensor_free(&bias);
    sk_tensor_free(&y);
}

Test(ops_torch, wan_rope)
{
    sk_tensor x = load("rope.x");
    TT_OK(sk_op_rope3d(be, &x, 2, 3, 4, 5, 10000.0));
    check(&x, "rope.y", 1e-12, 1e-6, 1e-5);
    sk_tensor_free(&x);
}

Test(ops_torch, conv_shuffle_upsample_concat)
{
    sk_tensor x = load("conv.x"), w = load("conv.w"), b = load("conv.b"), w1 = load("conv.w1");
    sk_tensor y1 = shaped(4, TT_SHAPE(1, 7, 9, 11)), y2 = shaped(4, TT_SHAPE(1, 7, 5, 6));
    sk_tensor y3 = shaped(4, TT_SHAPE(1, 4, 9, 11));
    TT_OK(sk_op_conv2d(be, &y1, &x, &w, &b, 1, 1));
    check(&y1, "conv.y_s1p1", TIGHT);
    TT_OK(sk_op_conv2d(be, &y2, &x, &w, &b, 2, 1));
    check(&y2, "conv.y_s2p1", TIGHT);
    TT_OK(sk_op_conv2d(be, &y3, &x, &w1, NULL, 1, 0));
    check(&y3, "conv.y_1x1", TIGHT);
    sk_tensor xs = load("shuffle.x"), ys = shaped(4, TT_SHAPE(2, 3, 6, 10));
    TT_OK(sk_op_pixel_shuffle(be, &ys, &xs, 2));
    check(&ys, "shuffle.y_p2", 0, 0, 0);
    sk_tensor xu = load("unshuffle.x"), yu = shaped(4, TT_SHAPE(2, 12, 3, 2));
    TT_OK(sk_op_pixel_unshuffle(be, &yu, &xu, 2));
    check(&yu, "unshuffle.y_p2", 0, 0, 0);
    sk_tensor yup = shaped(4, TT_SHAPE(2, 3, 12, 8));
    TT_OK(sk_op_upsample_nearest(be, &yup, &xu, 2));
    check(&yup, "upsample.y_s2", 0, 0, 0);
    sk_tensor a = load("concat.a"), bb = load("concat.b"), yc = shaped(4, TT_SHAPE(2, 5, 4, 5));
    TT_OK(sk_op_concat_channels(be, &yc, &a, &bb));
    check(&yc, "concat.y", 0, 0, 0);
    sk_tensor_free(&x), sk_tensor_free(&w), sk_tensor_free(&b), sk_tensor_free(&w1);
    sk_tensor_free(&y1), sk_tensor_free(&y2), sk_tensor_free(&y3), sk_tensor_free(&xs);
    sk_tensor_free(&ys), sk_tensor_free(&xu), sk_tensor_free(&yu), sk_tensor_free(&yup);
    sk_tensor_free(&a), sk_tensor_free(&bb), sk_tensor_free(&yc);
}

/* patchify + linear with the flattened Conv3d weight == Wan's patch embedding */
Test(ops_torch, wan_patch_embedding_and_unpatchify)
{
    sk_tensor x = load("patch.x_fchw"), w = load("patch.w"), b = load("patch.b");
    sk_tensor tok = shaped(2, TT_SHAPE(2 * 3 * 4, 16)), y = shaped(2, TT_SHAPE(24, 8));
    TT_OK(sk_op_patchify(be, &tok, &x));
    TT_OK(sk_op_linear(be, &y, &tok, &w, &b, SK_ACT_NONE));
    check(&y, "patch.y", TIGHT);
    sk_tensor xu = load("unpatch.x"), yu = shaped(4, TT_SHAPE(2, 3, 6, 8));
    TT_OK(sk_op_unpatchify(be, &yu, &xu));
    check(&yu, "unpatch.y_fchw", 0, 0, 0);
    sk_tensor_free(&x), sk_tensor_free(&w), sk_tensor_free(&b), sk_tensor_free(&tok);
    sk_tensor_free(&y), sk_tensor_free(&xu), sk_tensor_free(&yu);
}

Test(ops_torch, embedding)
{
    sk_tensor table = load("embed.table"), y = shaped(2, TT_SHAPE(5, 6)), ids;
    const sk_st_tensor *ti = sk_st_find(fx, "embed.ids");
    cr_assert_not_null(ti);
    cr_assert_eq(ti->dtype, SK_DTYPE_I32);
    TT_OK(sk_tensor_alloc(be, SK_DTYPE_I32, 1, ti->shape, &ids));
    TT_OK(sk_tensor_upload_raw(&ids, ti->data, ti->nbytes));
    TT_OK(sk_op_embedding(be, &y, &table, &ids));
    check(&y, "embed.y", 0, 0, 0);
    sk_tensor_free(&table), sk_tensor_free(&y), sk_tensor_free(&ids);
}
