/* test_ops_errors.c - what the checked sk_op_* wrappers refuse for every
 * backend: NULL backend or tensors, tensors of another backend or of plain
 * host memory, activations in the wrong dtype, and ops a backend leaves out
 * (SK_E_UNSUPPORTED naming op and backend). */
#include "tests/common/test_util.h"

static sk_backend *be, *other;
static void setup(void)
{
    TT_OK(sk_backend_cpu_create(&be));
    TT_OK(sk_backend_cpu_create(&other));
}
static void teardown(void)
{
    cr_expect_eq(be->bytes_live, 0, "test leaked %zu bytes", be->bytes_live);
    cr_expect_eq(other->bytes_live, 0, "test leaked %zu bytes", other->bytes_live);
    sk_backend_free_(&be);
    sk_backend_free_(&other);
}
TestSuite(ops_errors, .init = setup, .fini = teardown);

Test(ops_errors, null_backend_and_tensors)
{
    sk_tensor x = tt_new(be, SK_DTYPE_F32, 2, TT_SHAPE(2, 2), NULL);
    TT_FAILS(sk_op_act(NULL, &x, &x, SK_ACT_NONE), SK_E_INVALID_ARG, "op act: backend is NULL");
    TT_FAILS(sk_op_act(be, NULL, &x, SK_ACT_NONE), SK_E_INVALID_ARG, "op act: tensor y is NULL");
    TT_FAILS(sk_op_mul(be, &x, &x, NULL), SK_E_INVALID_ARG, "op mul: tensor z is NULL");
    TT_FAILS(sk_op_patchify(be, NULL, &x), SK_E_INVALID_ARG, "op patchify");
    sk_tensor_free(&x);
}

Test(ops_errors, tensors_of_another_backend_or_host)
{
    sk_tensor x = tt_new(be, SK_DTYPE_F32, 2, TT_SHAPE(2, 3), NULL);
    sk_tensor w = tt_new(other, SK_DTYPE_F32, 2, TT_SHAPE(4, 3), NULL);
    sk_tensor y = tt_new(be, SK_DTYPE_F32, 2, TT_SHAPE(2, 4), NULL);
    TT_FAILS(sk_op_linear(be, &y, &x, &w, NULL, SK_ACT_NONE), SK_E_INVALID_ARG,
             "op linear: tensor w lives on another instance of backend 'cpu', the op runs on 'cpu'");
    float host[6] = {0};
    sk_tensor h = sk_tensor_desc(SK_DTYPE_F32, 2, TT_SHAPE(2, 3));
    h.data = host;
    TT_FAILS(sk_op_act(be, &x, &h, SK_ACT_NONE), SK_E_INVALID_ARG, "host (none)");
    sk_tensor nodata = tt_new(be, SK_DTYPE_F32, 2, TT_SHAPE(2, 3), NULL);
    sk_tensor_free(&nodata);
    nodata = sk_tensor_desc(SK_DTYPE_F32, 2, TT_SHAPE(2, 3));
    nodata.be = be;
    TT_FAILS(sk_op_act(be, &x, &nodata, SK_ACT_NONE), SK_E_INVALID_ARG, "has no memory");
    sk_tensor_free(&x), sk_tensor_free(&w), sk_tensor_free(&y);
}

Test(ops_errors, activation_dtype_must_be_the_backends)
{
    sk_tensor b = tt_new(be, SK_DTYPE_BF16, 2, TT_SHAPE(4, 8), NULL);
    sk_tensor f = tt_new(be, SK_DTYPE_F32, 2, TT_SHAPE(4, 8), NULL);
    TT_FAILS(sk_op_layernorm(be, &f, &b, NULL, NULL, 1e-6f), SK_E_DTYPE,
             "op layernorm: x is bf16 but the cpu backend computes activations in f32");
    TT_FAILS(sk_op_axpby(be, &f, 1, &f, 1, &b), SK_E_DTYPE, "op axpby: z is bf16");
    TT_FAILS(sk_op_act(be, &b, &f, SK_ACT_SILU), SK_E_DTYPE, "op act: y is bf16");
    TT_OK(sk_op_convert(be, &b, &f)); /* convert is the way between dtypes */
    sk_tensor_free(&b), sk_tensor_free(&f);
}

/* A backend whose table lacks an op: the wrapper answers SK_E_UNSUPPORTED. */
Test(ops_errors, missing_op_is_unsupported)
{
    sk_backend_ops ops = *be->ops;
    ops.attention = NULL;
    ops.rope3d = NULL;
    sk_backend fake = *be;
    fake.name = "fake";
    fake.ops = &ops;
    fake.bytes_live = 0;
    sk_tensor q = tt_new(&fake, SK_DTYPE_F32, 3, TT_SHAPE(2, 1, 4), NULL);
    sk_tensor o = tt_new(&fake, SK_DTYPE_F32, 2, TT_SHAPE(2, 4), NULL);
    sk_kv_range r = {&q, &q, 0, 2};
    TT_FAILS(sk_op_attention(&fake, &o, &q, &r, 1, 1, NULL), SK_E_UNSUPPORTED,
             "op attention: not implemented by the fake backend");
    TT_FAILS(sk_op_rope3d(&fake, &q, 1, 1, 2, 0, 1e4), SK_E_UNSUPPORTED, "op rope3d");
    TT_OK(sk_op_act(&fake, &o, &o, SK_ACT_RELU));
    sk_tensor_free(&q), sk_tensor_free(&o);
    cr_assert_eq(fake.bytes_live, 0);
}

/* Each wrapper refuses a wrong rank with the op's name in the message. */
Test(ops_errors, wrong_rank_names_the_op)
{
    sk_tensor t1 = tt_new(be, SK_DTYPE_F32, 1, TT_SHAPE(8), NULL);
    sk_tensor t4 = tt_new(be, SK_DTYPE_F32, 4, TT_SHAPE(1, 2, 2, 2), NULL);
    sk_tensor m3 = tt_new(be, SK_DTYPE_F32, 3, TT_SHAPE(1, 2, 8), NULL);
    sk_tensor ids = tt_new(be, SK_DTYPE_I32, 1, TT_SHAPE(8), NULL);
    TT_FAILS(sk_op_layernorm(be, &t1, &t1, NULL, NULL, 0), SK_E_SHAPE, "op layernorm: y must be 2D");
    TT_FAILS(sk_op_rmsnorm(be, &t4, &t4, NULL, 0), SK_E_SHAPE, "op rmsnorm");
    TT_FAILS(sk_op_modulate(be, &t1, &t1, &m3, 0, 1, 1, 0, 0), SK_E_SHAPE, "op modulate");
    TT_FAILS(sk_op_gated_add(be, &t1, &t1, NULL, -1, 1), SK_E_SHAPE, "op gated_add");
    TT_FAILS(sk_op_conv2d(be, &t1, &t4, &t4, NULL, 1, 0), SK_E_SHAPE, "op conv2d: y must be 4D");
    TT_FAILS(sk_op_pixel_unshuffle(be, &t1, &t4, 2), SK_E_SHAPE, "op pixel_unshuffle");
    TT_FAILS(sk_op_upsample_nearest(be, &t4, &t1, 2), SK_E_SHAPE, "op upsample_nearest: x must be 4D");
    TT_FAILS(sk_op_concat_channels(be, &t4, &t4, &t1), SK_E_SHAPE, "op concat_channels: b must be 4D");
    TT_FAILS(sk_op_unpatchify(be, &t4, &t4), SK_E_SHAPE, "op unpatchify: x must be 2D");
    TT_FAILS(sk_op_embedding(be, &t1, &t4, &ids), SK_E_SHAPE, "op embedding: y must be 2D");
    sk_tensor_free(&t1), sk_tensor_free(&t4), sk_tensor_free(&m3), sk_tensor_free(&ids);
}
