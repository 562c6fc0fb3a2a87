/* test_ops_attention.c - CPU attention: a hand-worked case, softmax
 * properties (via one-hot values), range splitting, bias, long key lists. */
#include "tests/common/test_util.h"

static sk_backend *be;
static void setup(void) { TT_OK(sk_backend_cpu_create(&be)); }
static void teardown(void)
{
    cr_expect_eq(be->bytes_live, 0, "test leaked %zu bytes of backend memory", be->bytes_live);
    sk_backend_free_(&be);
}
TestSuite(ops_attention, .init = setup, .fini = teardown);

Test(ops_attention, hand_two_keys)
{
    /* q = [1, 0]; keys [1,0], [0,1]; scale 1 -> scores 1, 0 */
    const float q[] = {1, 0}, k[] = {1, 0, 0, 1}, v[] = {1, 2, 3, 4};
    const double e = exp(1.0), p0 = e / (e + 1), p1 = 1 / (e + 1);
    const float want[] = {(float)(p0 * 1 + p1 * 3), (float)(p0 * 2 + p1 * 4)};
    sk_tensor tq = tt_new(be, SK_DTYPE_F32, 3, TT_SHAPE(1, 1, 2), q);
    sk_tensor tk = tt_new(be, SK_DTYPE_F32, 3, TT_SHAPE(2, 1, 2), k);
    sk_tensor tv = tt_new(be, SK_DTYPE_F32, 3, TT_SHAPE(2, 1, 2), v);
    sk_tensor to = tt_new(be, SK_DTYPE_F32, 2, TT_SHAPE(1, 2), NULL);
    sk_kv_range r = {&tk, &tv, 0, 2};
    TT_OK(sk_op_attention(be, &to, &tq, &r, 1, 1.0f, NULL));
    float *g = tt_get(&to);
    TT_CLOSE(g, want, 2, TT_F32);
    free(g);
    sk_tensor_free(&tq), sk_tensor_free(&tk), sk_tensor_free(&tv), sk_tensor_free(&to);
}

/* With v[j, h, :] = e_j (one-hot, HD = Nk) the output row is the softmax row
 * itself: compare with an f64 softmax and check each row sums to 1. */
Test(ops_attention, one_hot_values_give_softmax_rows)
{
    const int64_t Nq = 5, NH = 3, Nk = 16, HD = 16;
    const float scale = 0.7f;
    sk_tensor q = tt_rand(be, SK_DTYPE_F32, 3, TT_SHAPE(Nq, NH, HD), 1, -1, 1);
    sk_tensor k = tt_rand(be, SK_DTYPE_F32, 3, TT_SHAPE(Nk, NH, HD), 2, -1, 1);
    float *hv = calloc((size_t)(Nk * NH * HD), sizeof(float));
    for (int64_t j = 0; j < Nk; j++)
        for (int64_t h = 0; h < NH; h++) hv[(j * NH + h) * HD + j] = 1.0f;
    sk_tensor v = tt_new(be, SK_DTYPE_F32, 3, TT_SHAPE(Nk, NH, HD), hv);
    sk_tensor o = tt_new(be, SK_DTYPE_F32, 2, TT_SHAPE(Nq, NH * HD), NULL);
    sk_kv_range r = {&k, &v, 0, Nk};
    TT_OK(sk_op_attention(be, &o, &q, &r, 1, scale, NULL));
    float *g = tt_get(&o), *hq = tt_get(&q), *hk = tt_get(&k);
    for (int64_t i = 0; i < Nq; i++)
        for (int64_t h = 0; h < NH; h++) {
            double s[16], m = -INFINITY, sum = 0, rowsum = 0;
            for (int64_t j = 0; j < Nk; j++) {
                double d = 0;
                for (int64_t c = 0; c < HD; c++)
                    d += (double)hq[(i * NH + h) * HD + c] * hk[(j * NH + h) * HD + c];
                s[j] = scale * d;
                if (s[j] > m) m = s[j];
            }
            for (int64_t j = 0; j < Nk; j++) sum += exp(s[j] - m);
            for (int64_t j = 0; j < Nk; j++) {
                const float got = g[i * NH * HD + h * HD + j];
                const double want = exp(s[j] - m) / sum;
                cr_assert(fabs(got - want) < 1e-6, "p[%lld,%lld,%lld] got %g want %g",
                          (long long)i, (long long)h, (long long)j, got, want);
                cr_assert(got > 0 && got < 1);
                rowsum += got;
            }
            cr_assert(fabs(rowsum - 1) < 1e-5, "row sum %.9f", rowsum);
        }
    free(g), free(hq), free(hk), free(hv);
    sk_tensor_free(&q), sk_tensor_free(&k), sk_tensor_free(&v), sk_tensor_free(&o);
}

/* Keys split over three ranges of two tensors (one range empty) give the
 * same result as the same keys copied into one range. */
Test(ops_attention, ranges_equal_concatenation)
{
    const int64_t Nq = 7, NH = 2, HD = 24, L1 = 9, L2 = 14, Nk = L1 + L2;
    sk_tensor q = tt_rand(be, SK_DTYPE_F32, 3, TT_SHAPE(Nq, NH, HD), 3, -1, 1);
    /* cache A holds range 1 at rows [3, 12); cache B holds range 2 at rows [1, 15) */
    sk_tensor ka = tt_rand(be, SK_DTYPE_F32, 3, TT_SHAPE(20, NH, HD), 4, -1, 1);
    sk_tensor va = tt_rand(be, SK_DTYPE_F32, 3, TT_SHAPE(20, NH, HD), 5, -1, 1);
    sk_tensor kb = tt_rand(be, SK_DTYPE_F32, 3, TT_SHAPE(16, NH, HD), 6, -1, 1);
    sk_tensor vb = tt_rand(be, SK_DTYPE_F32, 3, TT_SHAPE(16, NH, HD), 7, -1, 1);
    sk_tensor kc = tt_new(be, SK_DTYPE_F32, 3, TT_SHAPE(Nk, NH, HD), NULL);
    sk_tensor vc = tt_new(be, SK_DTYPE_F32, 3, TT_SHAPE(Nk, NH, HD), NULL);
    const size_t row = (size_t)(NH * HD) * sizeof(float);
    memcpy(kc.data, (char *)ka.data + 3 * row, (size_t)L1 * row);
    memcpy(vc.data, (char *)va.data + 3 * row, (size_t)L1 * row);
    memcpy((char *)kc.data + L1 * row, (char *)kb.data + 1 * row, (size_t)L2 * row);
    memcpy((char *)vc.data + L1 * row, (char *)vb.data + 1 * row, (size_t)L2 * row);
    sk_tensor o1 = tt_new(be, SK_DTYPE_F32, 2, TT_SHAPE(Nq, NH * HD), NULL);
    sk_tensor o2 = tt_new(be, SK_DTYPE_F32, 2, TT_SHAPE(Nq, NH * HD), NULL);
    sk_kv_range split[3] = {{&ka, &va, 3, L1}, {&kb, &vb, 0, 0}, {&kb, &vb, 1, L2}};
    sk_kv_range one = {&kc, &vc, 0, Nk};
    TT_OK(sk_op_attention(be, &o1, &q, split, 3, 0.2f, NULL));
    TT_OK(sk_op_attention(be, &o2, &q, &one, 1, 0.2f, NULL));
    float *a = tt_get(&o1), *b = tt_get(&o2);
    TT_CLOSE(a, b, (size_t)(Nq * NH * HD), 1e-14, 1e-7, 1e-6);
    free(a), free(b);
    sk_tensor_free(&q), sk_tensor_free(&ka), sk_tensor_free(&va), sk_tensor_free(&kb);
    sk_tensor_free(&vb), sk_tensor_free(&kc), sk_tensor_free(&vc), sk_tensor_free(&o1);
    sk_tensor_free(&o2);
}

/* bias: a large negative bias on every key but one selects that key's value;
 * a bias constant along a row changes nothing (softmax shift invariance). */
Test(ops_attention, bias_masks_and_shift_invariance)
{
    const int64_t Nq = 3, NH = 2, HD = 8, Nk = 11;
    sk_tensor q = tt_rand(be, SK_DTYPE_F32, 3, TT_SHAPE(Nq, NH, HD), 8, -1, 1);
    sk_tensor k = tt_rand(be, SK_DTYPE_F32, 3, TT_SHAPE(Nk, NH, HD), 9, -1, 1);
    sk_tensor v = tt_rand(be, SK_DTYPE_F32, 3, TT_SHAPE(Nk, NH, HD), 10, -1, 1);
    float hb[2 * 3 * 11];
    for (int64_t h = 0; h < NH; h++)
        for (int64_t i = 0; i < Nq; i++)
            for (int64_t j = 0; j < Nk; j++)
                hb[(h * Nq + i) * Nk + j] = (j == (i * 3 + h) % Nk) ? 0.0f : -1e4f;
    sk_tensor bias = tt_new(be, SK_DTYPE_F32, 3, TT_SHAPE(NH, Nq, Nk), hb);
    sk_tensor o = tt_new(be, SK_DTYPE_F32, 2, TT_SHAPE(Nq, NH * HD), NULL);
    sk_kv_range r = {&k, &v, 0, Nk};
    TT_OK(sk_op_attention(be, &o, &q, &r, 1, 1.0f, &bias));
    float *g = tt_get(&o), *hv = tt_get(&v);
    for (int64_t i = 0; i < Nq; i++)
        for (int64_t h = 0; h < NH; h++) {
            const int64_t j = (i * 3 + h) % Nk;
            TT_CLOSE(g + i * NH * HD + h * HD, hv + (j * NH + h) * HD, (size_t)HD, TT_F32);
        }
    free(g);
    /* constant per (h, i) row */
    for (int64_t h = 0; h < NH; h++)
        for (int64_t i = 0; i < Nq; i++)
            for (int64_t j = 0; j < Nk; j++) hb[(h * Nq + i) * Nk + j] = (float)(h * 3 - i) * 1.5f;
    TT_OK(sk_tensor_upload_f32(&bias, hb, sizeof hb / sizeof hb[0]));
    sk_tensor o2 = tt_new(be, SK_DTYPE_F32, 2, TT_SHAPE(Nq, NH * HD), NULL);
    TT_OK(sk_op_attention(be, &o, &q, &r, 1, 0.5f, &bias));
    TT_OK(sk_op_attention(be, &o2, &q, &r, 1, 0.5f, NULL));
    float *a = tt_get(&o), *b = tt_get(&o2);
    TT_CLOSE(a, b, (size_t)(Nq * NH * HD), 1e-12, 1e-6, 1e-5);
    free(a), free(b), free(hv);
    sk_tensor_free(&q), sk_tensor_free(&k), sk_tensor_free(&v), sk_tensor_free(&bias);
    sk_tensor_free(&o), sk_tensor_free(&o2);
}

/* q = 0 makes the softmax uniform: the output is the mean of v over all keys,
 * here 40000 of them in two ranges. */
Test(ops_attention, long_key_list_uniform_weights)
{
    const int64_t Nq = 2, NH = 1, HD = 8, Nk = 40000;
    sk_tensor q = tt_new(be, SK_DTYPE_F32, 3, TT_SHAPE(Nq, NH, HD), NULL);
    sk_tensor k = tt_rand(be, SK_DTYPE_F32, 3, TT_SHAPE(Nk, NH, HD), 11, -1, 1);
    sk_tensor v = tt_rand(be, SK_DTYPE_F32, 3, TT_SHAPE(Nk, NH, HD), 12, -1, 1);
    sk_tensor o = tt_new(be, SK_DTYPE_F32, 2, TT_SHAPE(Nq, NH * HD), NULL);
    sk_kv_range r[2] = {{&k, &v, 0, 25000}, {&k, &v, 25000, 15000}};
    TT_OK(sk_op_attention(be, &o, &q, r, 2, 0.125f, NULL));
    float *g = tt_get(&o), *hv = tt_get(&v);
    float mean[8];
    for (int64_t c = 0; c < HD; c++) {
        double s = 0;
        for (int64_t j = 0; j < Nk; j++) s += hv[j * HD + c];
        mean[c] = (float)(s / Nk);
    }
    for (int64_t i = 0; i < Nq; i++) TT_CLOSE(g + i * HD, mean, (size_t)HD, 1e-8, 1e-5, 1e-3);
    free(g), free(hv);
    sk_tensor_free(&q), sk_tensor_free(&k), sk_tensor_free(&v), sk_tensor_free(&o);
}

Test(ops_attention, argument_errors)
{
    sk_tensor q = tt_new(be, SK_DTYPE_F32, 3, TT_SHAPE(4, 2, 8), NULL);
    sk_tensor k = tt_new(be, SK_DTYPE_F32, 3, TT_SHAPE(6, 2, 8), NULL);
    sk_tensor v = tt_new(be, SK_DTYPE_F32, 3, TT_SHAPE(6, 2, 8), NULL);
    sk_tensor k7 = tt_new(be, SK_DTYPE_F32, 3, TT_SHAPE(6, 2, 7), NULL);
    sk_tensor o = tt_new(be, SK_DTYPE_F32, 2, TT_SHAPE(4, 16), NULL);
    sk_tensor o15 = tt_new(be, SK_DTYPE_F32, 2, TT_SHAPE(4, 15), NULL);
    sk_tensor bias = tt_new(be, SK_DTYPE_F32, 3, TT_SHAPE(2, 4, 5), NULL);
    sk_kv_range r = {&k, &v, 0, 6}, past = {&k, &v, 2, 5}, hd = {&k7, &k7, 0, 6};
    sk_kv_range none = {&k, &v, 0, 0}, mixed = {&k, &k7, 0, 6};
    TT_FAILS(sk_op_attention(be, &o15, &q, &r, 1, 1, NULL), SK_E_SHAPE, "op attention: out [4, 15] and q [4, 2, 8] disagree on NH*HD");
    TT_FAILS(sk_op_attention(be, &o, &q, &past, 1, 1, NULL), SK_E_SHAPE, "rows [2, 7) outside");
    TT_FAILS(sk_op_attention(be, &o, &q, &hd, 1, 1, NULL), SK_E_SHAPE, "disagree on HD (7 vs 8)");
    TT_FAILS(sk_op_attention(be, &o, &q, &mixed, 1, 1, NULL), SK_E_SHAPE, "must have the same shape");
    TT_FAILS(sk_op_attention(be, &o, &q, &none, 1, 1, NULL), SK_E_INVALID_ARG, "hold no keys");
    TT_FAILS(sk_op_attention(be, &o, &q, NULL, 0, 1, NULL), SK_E_INVALID_ARG, "op attention: no key/value ranges");
    TT_FAILS(sk_op_attention(be, &o, &q, &r, 1, 1, &bias), SK_E_SHAPE, "expected [2, 4, 6]");
    sk_tensor_free(&q), sk_tensor_free(&k), sk_tensor_free(&v), sk_tensor_free(&k7);
    sk_tensor_free(&o), sk_tensor_free(&o15), sk_tensor_free(&bias);
}
