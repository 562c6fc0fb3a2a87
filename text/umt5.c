/* umt5.c - umT5 encoder forward over the backend op table (see umt5.h).
 *
 * Per layer: rmsnorm -> q,k,v linears -> attention (scale 1, bias [NH, n, n]
 * gathered on the backend from the layer's table by bucket ids computed once
 * per length on the host) -> o -> residual ->
 * rmsnorm -> gelu_tanh(gate) * fc1 -> fc2 -> residual. Final rmsnorm.
 * Scratch (device arena + host bucket ids) is sized at the first encode for
 * the largest row count asked so far (text_len in practice), so later encodes,
 * e.g. a prompt switch mid-stream, allocate nothing.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/core/log.h"
#include "umt5_internal.h"

int sk_umt5_bucket(int64_t rel, int64_t num_buckets, int64_t max_distance)
{
    /* Wan T5RelativeEmbedding._relative_position_bucket, bidirectional, with
     * torch's float32 arithmetic: log(n / max_exact) / log(max_dist / max_exact)
     * * (half - max_exact), truncated, capped at half - 1. */
    int64_t half = num_buckets / 2;
    int64_t b = rel > 0 ? half : 0;
    int64_t n = rel < 0 ? -rel : rel;
    int64_t max_exact = half / 2;
    if (n < max_exact) return (int)(b + n);
    float ratio = (float)n / (float)max_exact;
    float denom = (float)log((double)max_distance / (double)max_exact);
    float large = logf(ratio) / denom * (float)(half - max_exact);
    int64_t v = max_exact + (int64_t)large;
    if (v > half - 1) v = half - 1;
    return (int)(b + v);
}

/* Scratch for up to `rows` tokens: activations, bucket ids and the bias. */
static sk_status ensure_scratch(sk_umt5 *m, int64_t rows)
{
    if (m->scratch_rows >= rows) return SK_OK;
    const sk_umt5_config *c = &m->cfg;
    size_t es = sk_dtype_size(m->be->act_dtype), al = SK_ARENA_ALIGN;
#define SZ(n, e) ((((size_t)(n)) * (e) + al - 1) / al * al)
    size_t bytes = SZ(rows, 4) + SZ(rows * rows, 4)      /* ids, bucket ids (i32) */
                   + 3 * SZ(rows * c->dim, es)          /* x, h, o */
                   + 4 * SZ(rows * c->dim_attn, es)     /* q, k, v, att */
                   + 2 * SZ(rows * c->dim_ffn, es)      /* gate, fc1 */
                   + SZ(c->num_heads * rows * rows, es) /* bias */
                   + al;
#undef SZ
    sk_arena_free(&m->arena);
    free(m->bucket_host);
    m->bucket_host = NULL;
    m->bucket_len = 0;
    m->scratch_rows = 0;
    SK_TRY(sk_arena_init(&m->arena, m->be, bytes));
    m->bucket_host = malloc((size_t)(rows * rows) * sizeof *m->bucket_host);
    SK_CHECK(m->bucket_host, SK_E_OOM, "umT5: out of host memory for %lld x %lld buckets",
             (long long)rows, (long long)rows);
    m->scratch_rows = rows;
    return SK_OK;
}

/* Bucket index of every (query, key) pair for n tokens, into the buffer
 * ensure_scratch sized for its row count; recomputed only when n changes. */
static void ensure_buckets(sk_umt5 *m, int64_t n)
{
    if (m->bucket_len == n) return;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++)
            m->bucket_host[i * n + j] =
                sk_umt5_bucket(j - i, m->cfg.num_buckets, m->cfg.max_distance);
    m->bucket_len = n;
}

sk_status sk_umt5_encode(sk_umt5 *m, const int32_t *ids, int n, int rows, float *out)
{
    SK_CHECK(m && ids && out, SK_E_INVALID_ARG, "umT5 encode: NULL argument");
    const sk_umt5_config *c = &m->cfg;
    SK_CHECK(n >= 1 && n <= rows, SK_E_INVALID_ARG,
             "umT5 encode: %d tokens for %d output rows; expected 1 <= tokens <= rows", n, rows);
    for (int i = 0; i < n; i++)
        SK_CHECK(ids[i] >= 0 && ids[i] < c->vocab, SK_E_INVALID_ARG,
                 "umT5 encode: token %d is id %d, outside the vocabulary [0, %lld); does the "
                 "tokenizer belong to this encoder?", i, (int)ids[i], (long long)c->vocab);
    sk_backend *be = m->be;
    const sk_dtype at = be->act_dtype;
    const int64_t N = n, D = c->dim, DA = c->dim_attn, F = c->dim_ffn, NH = c->num_heads;
    const int64_t HD = DA / NH;
    SK_TRY(ensure_scratch(m, rows));
    ensure_buckets(m, N);
    sk_arena_reset(&m->arena);

    sk_tensor tid, tb, x, h, o, q, k, v, att, g, f1, bias, bias_col, q3, k3, v3;
    sk_arena *a = &m->arena;
    SK_TRY(sk_arena_tensor(a, SK_DTYPE_I32, 1, (int64_t[]){N}, &tid));
    SK_TRY(sk_arena_tensor(a, SK_DTYPE_I32, 1, (int64_t[]){N * N}, &tb));
    SK_TRY(sk_arena_tensor(a, at, 2, (int64_t[]){N, D}, &x));
    SK_TRY(sk_arena_tensor(a, at, 2, (int64_t[]){N, D}, &h));
    SK_TRY(sk_arena_tensor(a, at, 2, (int64_t[]){N, D}, &o));
    SK_TRY(sk_arena_tensor(a, at, 2, (int64_t[]){N, DA}, &q));
    SK_TRY(sk_arena_tensor(a, at, 2, (int64_t[]){N, DA}, &k));
    SK_TRY(sk_arena_tensor(a, at, 2, (int64_t[]){N, DA}, &v));
    SK_TRY(sk_arena_tensor(a, at, 2, (int64_t[]){N, DA}, &att));
    SK_TRY(sk_arena_tensor(a, at, 2, (int64_t[]){N, F}, &g));
    SK_TRY(sk_arena_tensor(a, at, 2, (int64_t[]){N, F}, &f1));
    SK_TRY(sk_arena_tensor(a, at, 3, (int64_t[]){NH, N, N}, &bias));
    SK_TRY(sk_tensor_reshape(&bias, 2, (int64_t[]){NH * N * N, 1}, &bias_col));
    SK_TRY(sk_tensor_reshape(&q, 3, (int64_t[]){N, NH, HD}, &q3));
    SK_TRY(sk_tensor_reshape(&k, 3, (int64_t[]){N, NH, HD}, &k3));
    SK_TRY(sk_tensor_reshape(&v, 3, (int64_t[]){N, NH, HD}, &v3));

    SK_TRY(sk_tensor_upload_raw(&tid, ids, (size_t)N * sizeof(int32_t)));
    SK_TRY(sk_tensor_upload_raw(&tb, m->bucket_host, (size_t)(N * N) * sizeof(int32_t)));
    SK_TRY(sk_op_embedding(be, &x, &m->embed, &tid));
    const sk_kv_range kv = {&k3, &v3, 0, N};
    for (int64_t l = 0; l < c->num_layers; l++) {
        const sk_umt5_layer *y = &m->layers[l];
        /* bias[h, i, j] = table[bucket(j - i), h]: for each head a gather of
         * its [NB, 1] column by the bucket ids, on the backend (no host work) */
        for (int64_t hh = 0; hh < NH; hh++) {
            sk_tensor col = sk_tensor_rows(&y->pos_t, hh, 1), table;
            SK_TRY(sk_tensor_reshape(&col, 2, (int64_t[]){c->num_buckets, 1}, &table));
            sk_tensor plane = sk_tensor_rows(&bias_col, hh * N * N, N * N);
            SK_TRY(sk_op_embedding(be, &plane, &table, &tb));
        }

        SK_TRY(sk_op_rmsnorm(be, &h, &x, &y->norm1, c->eps));
        SK_TRY(sk_op_linear(be, &q, &h, &y->q, NULL, SK_ACT_NONE));
        SK_TRY(sk_op_linear(be, &k, &h, &y->k, NULL, SK_ACT_NONE));
        SK_TRY(sk_op_linear(be, &v, &h, &y->v, NULL, SK_ACT_NONE));
        SK_TRY(sk_op_attention(be, &att, &q3, &kv, 1, 1.0f, &bias)); /* T5: no 1/sqrt(d) */
        SK_TRY(sk_op_linear(be, &o, &att, &y->o, NULL, SK_ACT_NONE));
        SK_TRY(sk_op_axpby(be, &x, 1.0f, &x, 1.0f, &o));

        SK_TRY(sk_op_rmsnorm(be, &h, &x, &y->norm2, c->eps));
        SK_TRY(sk_op_linear(be, &g, &h, &y->gate, NULL, SK_ACT_GELU_TANH));
        SK_TRY(sk_op_linear(be, &f1, &h, &y->fc1, NULL, SK_ACT_NONE));
        SK_TRY(sk_op_mul(be, &g, &g, &f1));
        SK_TRY(sk_op_linear(be, &o, &g, &y->fc2, NULL, SK_ACT_NONE));
        SK_TRY(sk_op_axpby(be, &x, 1.0f, &x, 1.0f, &o));
    }
    SK_TRY(sk_op_rmsnorm(be, &h, &x, &m->norm, c->eps));
    SK_TRY(sk_tensor_download_f32(&h, out, (size_t)(N * D)));
    memset(out + N * D, 0, (size_t)((rows - N) * D) * sizeof(float));
    for (int64_t i = 0; i < N * D; i++)
        SK_CHECK(isfinite(out[i]), SK_E_INTERNAL,
                 "umT5 encode: non-finite output at token %lld, channel %lld (%g); the weights "
                 "or the backend produced NaN/Inf", (long long)(i / D), (long long)(i % D),
                 (double)out[i]);
    return SK_OK;
}
