/* test_ops_layout.c - patchify / unpatchify index formulas (each input value
 * encodes its own index) and the embedding lookup with its range check. */
#include "tests/common/test_util.h"

static sk_backend *be;
static void setup(void) { TT_OK(sk_backend_cpu_create(&be)); }
static void teardown(void)
{
    cr_expect_eq(be->bytes_live, 0, "test leaked %zu bytes of backend memory", be->bytes_live);
    sk_backend_free_(&be);
}
TestSuite(ops_layout, .init = setup, .fini = teardown);

#define ENC(f, c, h, w) ((float)((f) * 1000000 + (c) * 10000 + (h) * 100 + (w)))

Test(ops_layout, patchify_index_formula)
{
    const int64_t F = 2, C = 3, H = 6, W = 10, Hp = 3, Wp = 5;
    float *hx = malloc((size_t)(F * C * H * W) * sizeof(float));
    for (int64_t f = 0; f < F; f++)
        for (int64_t c = 0; c < C; c++)
            for (int64_t h = 0; h < H; h++)
                for (int64_t w = 0; w < W; w++) hx[((f * C + c) * H + h) * W + w] = ENC(f, c, h, w);
    sk_tensor x = tt_new(be, SK_DTYPE_F32, 4, TT_SHAPE(F, C, H, W), hx);
    sk_tensor y = tt_new(be, SK_DTYPE_F32, 2, TT_SHAPE(F * Hp * Wp, C * 4), NULL);
    TT_OK(sk_op_patchify(be, &y, &x));
    float *g = tt_get(&y);
    for (int64_t f = 0; f < F; f++)
        for (int64_t hp = 0; hp < Hp; hp++)
            for (int64_t wp = 0; wp < Wp; wp++)
                for (int64_t c = 0; c < C; c++)
                    for (int64_t q = 0; q < 2; q++)
                        for (int64_t r = 0; r < 2; r++) {
                            const int64_t tok = (f * Hp + hp) * Wp + wp;
                            cr_assert_eq(g[tok * C * 4 + c * 4 + q * 2 + r],
                                         ENC(f, c, 2 * hp + q, 2 * wp + r),
                                         "token %lld c %lld q %lld r %lld", (long long)tok,
                                         (long long)c, (long long)q, (long long)r);
                        }
    sk_tensor odd = tt_new(be, SK_DTYPE_F32, 4, TT_SHAPE(F, C, 5, W), NULL);
    TT_FAILS(sk_op_patchify(be, &y, &odd), SK_E_SHAPE, "op patchify");
    sk_tensor ybad = tt_new(be, SK_DTYPE_F32, 2, TT_SHAPE(F * Hp * Wp, C * 4 + 1), NULL);
    TT_FAILS(sk_op_patchify(be, &ybad, &x), SK_E_SHAPE, "C*4");
    free(hx), free(g);
    sk_tensor_free(&x), sk_tensor_free(&y), sk_tensor_free(&odd), sk_tensor_free(&ybad);
}

Test(ops_layout, unpatchify_index_formula)
{
    const int64_t F = 2, C = 5, H = 4, W = 6, Hp = 2, Wp = 3, N = F * Hp * Wp;
    float *hx = malloc((size_t)(N * 4 * C) * sizeof(float));
    for (int64_t t = 0; t < N; t++)
        for (int64_t k = 0; k < 4 * C; k++) hx[t * 4 * C + k] = (float)(t * 1000 + k);
    sk_tensor x = tt_new(be, SK_DTYPE_F32, 2, TT_SHAPE(N, 4 * C), hx);
    sk_tensor y = tt_new(be, SK_DTYPE_F32, 4, TT_SHAPE(F, C, H, W), NULL);
    TT_OK(sk_op_unpatchify(be, &y, &x));
    float *g = tt_get(&y);
    for (int64_t f = 0; f < F; f++)
        for (int64_t c = 0; c < C; c++)
            for (int64_t h = 0; h < H; h++)
                for (int64_t w = 0; w < W; w++) {
                    const int64_t tok = (f * Hp + h / 2) * Wp + w / 2;
                    const int64_t k = ((h % 2) * 2 + (w % 2)) * C + c; /* channel fastest */
                    cr_assert_eq(g[((f * C + c) * H + h) * W + w], (float)(tok * 1000 + k),
                                 "y[%lld,%lld,%lld,%lld]", (long long)f, (long long)c,
                                 (long long)h, (long long)w);
                }
    sk_tensor xbad = tt_new(be, SK_DTYPE_F32, 2, TT_SHAPE(N + 1, 4 * C), NULL);
    TT_FAILS(sk_op_unpatchify(be, &y, &xbad), SK_E_SHAPE, "op unpatchify");
    free(hx), free(g);
    sk_tensor_free(&x), sk_tensor_free(&y), sk_tensor_free(&xbad);
}

static void embed_case(sk_dtype tdt)
{
    const int64_t V = 5, D = 4;
    float ht[20];
    for (int i = 0; i < 20; i++) ht[i] = (float)i * 0.25f; /* exact in bf16/f16 */
    sk_tensor table = tt_new(be, tdt, 2, TT_SHAPE(V, D), ht);
    const int32_t id[] = {3, 0, 4, 3, 1, 2};
    sk_tensor ids;
    TT_OK(sk_tensor_alloc(be, SK_DTYPE_I32, 1, TT_SHAPE(6), &ids));
    TT_OK(sk_tensor_upload_raw(&ids, id, sizeof id));
    sk_tensor y = tt_new(be, SK_DTYPE_F32, 2, TT_SHAPE(6, D), NULL);
    TT_OK(sk_op_embedding(be, &y, &table, &ids));
    float *g = tt_get(&y);
    for (int n = 0; n < 6; n++)
        for (int d = 0; d < D; d++)
            cr_assert_eq(g[n * D + d], ht[id[n] * D + d], "%s row %d col %d",
                         sk_dtype_name(tdt), n, d);
    free(g);
    sk_tensor_free(&table), sk_tensor_free(&ids), sk_tensor_free(&y);
}

Test(ops_layout, embedding_lookup_all_table_dtypes)
{
    embed_case(SK_DTYPE_F32);
    embed_case(SK_DTYPE_BF16);
    embed_case(SK_DTYPE_F16);
}

Test(ops_layout, embedding_out_of_range_is_an_error)
{
    sk_tensor table = tt_new(be, SK_DTYPE_F32, 2, TT_SHAPE(5, 4), NULL);
    sk_tensor ids;
    TT_OK(sk_tensor_alloc(be, SK_DTYPE_I32, 1, TT_SHAPE(3), &ids));
    sk_tensor y = tt_new(be, SK_DTYPE_F32, 2, TT_SHAPE(3, 4), NULL);
    const int32_t big[] = {0, 5, 1}, neg[] = {-1, 0, 0};
    TT_OK(sk_tensor_upload_raw(&ids, big, sizeof big));
    TT_FAILS(sk_op_embedding(be, &y, &table, &ids), SK_E_INVALID_ARG, "op embedding: ids[1] = 5");
    TT_OK(sk_tensor_upload_raw(&ids, neg, sizeof neg));
    TT_FAILS(sk_op_embedding(be, &y, &table, &ids), SK_E_INVALID_ARG, "ids[0] = -1");
    sk_tensor fids = tt_new(be, SK_DTYPE_F32, 1, TT_SHAPE(3), NULL);
    TT_FAILS(sk_op_embedding(be, &y, &table, &fids), SK_E_DTYPE, "ids are f32, expected i32");
    sk_tensor y5 = tt_new(be, SK_DTYPE_F32, 2, TT_SHAPE(3, 5), NULL);
    TT_FAILS(sk_op_embedding(be, &y5, &table, &ids), SK_E_SHAPE, "disagree on D");
    sk_tensor_free(&table), sk_tensor_free(&ids), sk_tensor_free(&y), sk_tensor_free(&fids);
    sk_tensor_free(&y5);
}
