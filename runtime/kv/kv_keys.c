/* kv_keys.c - what the KV cache does to keys: temporal / spatial RoPE of cached
 * keys, materialising rotated keys in slot order, the contiguous slot ranges
 * attention reads, and participative compression (Deep Forcing) with its bank
 * of clean queries (see kv_cache.h, docs/KV_POLICIES.md). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/core/log.h"
#include "runtime/kv/kv_internal.h"

/* ---- PC: clean queries ---------------------------------------------------- */

/* Prepares the pending Q bank: frames [frame0 + n - Rc, frame0 + n); those
 * before frame0 are copied from the committed bank. */
sk_status kv_qbank_begin(sk_kv_cache *c, int64_t frame0, int64_t n)
{
    const int64_t Rc = c->recent_committed, S = c->p.tokens_per_frame;
    if (Rc <= 0) return SK_OK;
    const int nb = 1 - c->qcur;
    for (int64_t i = 0; i < Rc; i++) {
        int64_t f = frame0 + n - Rc + i;
        c->qbank_frame[nb * Rc + i] = f >= 0 ? f : -1;
        if (f < 0 || f >= frame0) continue;
        int64_t src = -1;
        for (int64_t j = 0; j < Rc; j++)
            if (c->qbank_frame[c->qcur * Rc + j] == f) src = j;
        if (src < 0) { c->qbank_frame[nb * Rc + i] = -1; continue; }
        for (int64_t l = 0; l < c->p.num_layers; l++) {
            sk_tensor d = sk_tensor_rows(&c->qbank[l], (nb * Rc + i) * S, S);
            sk_tensor s = sk_tensor_rows(&c->qbank[l], (c->qcur * Rc + src) * S, S);
            SK_TRY(sk_tensor_copy(&d, &s));
        }
    }
    return SK_OK;
}

sk_status kv_qbank_store(sk_kv_cache *c, int layer, const sk_tensor *q)
{
    const int64_t Rc = c->recent_committed, S = c->p.tokens_per_frame;
    if (Rc <= 0 || c->pending != PASS_CHUNK) return SK_OK;
    const int nb = 1 - c->qcur;
    for (int64_t i = 0; i < Rc; i++) {
        int64_t f = c->qbank_frame[nb * Rc + i];
        if (f < c->pend_frame0 || f >= c->pend_frame0 + c->pend_n) continue;
        sk_tensor d = sk_tensor_rows(&c->qbank[layer], (nb * Rc + i) * S, S);
        sk_tensor s = sk_tensor_rows(q, (f - c->pend_frame0) * S, S);
        SK_TRY(sk_tensor_copy(&d, &s));
    }
    return SK_OK;
}

/* ---- rotation ------------------------------------------------------------- */

/* Rotates rows [r0, r0 + nf*S) of t temporally only: frame i by pos0 + i
 * (the spatial pairs see position 0: the identity). */
sk_status kv_rope_temporal(sk_kv_cache *c, sk_tensor *t, int64_t r0, int64_t nf, int64_t pos0)
{
    const int64_t S = c->p.tokens_per_frame;
    sk_tensor rows = sk_tensor_rows(t, r0, nf * S);
    int64_t sh[3] = {nf, S * t->shape[1], t->shape[2]};
    sk_tensor v;
    SK_TRY(sk_tensor_reshape(&rows, 3, sh, &v));
    return sk_op_rope3d(c->be, &v, nf, 1, 1, pos0, c->p.rope_theta);
}

/* Spatial-only rotation of every frame of x [n*S, NH, HD]. */
sk_status kv_rope_spatial(sk_kv_cache *c, sk_tensor *x, int64_t n, int64_t Hp, int64_t Wp)
{
    const int64_t S = c->p.tokens_per_frame;
    for (int64_t f = 0; f < n; f++) {
        sk_tensor r = sk_tensor_rows(x, f * S, S);
        SK_TRY(sk_op_rope3d(c->be, &r, 1, Hp, Wp, 0, c->p.rope_theta));
    }
    return SK_OK;
}

/* Sorts idx[0..n) by slot[idx] (insertion sort; n is a few dozen). */
void kv_sort_by_slot(int64_t *idx, const int64_t *slot, int64_t n)
{
    for (int64_t i = 0; i < n; i++) idx[i] = i;
    for (int64_t i = 1; i < n; i++) {
        int64_t x = idx[i], j = i;
        while (j > 0 && slot[idx[j - 1]] > slot[x]) { idx[j] = idx[j - 1]; j--; }
        idx[j] = x;
    }
}

/* Copies the keys of entries [0, n) (slots / positions) of `layer` into the
 * scratch rows of the same slots, rotated to their positions. */
sk_status kv_materialize(sk_kv_cache *c, int layer, const int64_t *slot, const int64_t *pos,
                         int64_t n, int64_t *idx)
{
    const int64_t S = c->p.tokens_per_frame;
    kv_sort_by_slot(idx, slot, n);
    for (int64_t i = 0; i < n;) {
        int64_t j = i + 1;
        while (j < n && slot[idx[j]] == slot[idx[j - 1]] + 1 && pos[idx[j]] == pos[idx[j - 1]] + 1)
            j++;
        int64_t s0 = slot[idx[i]], nf = j - i;
        sk_tensor d = sk_tensor_rows(&c->kscr, s0 * S, nf * S);
        sk_tensor s = sk_tensor_rows(&c->k[layer], s0 * S, nf * S);
        SK_TRY(sk_tensor_copy(&d, &s));
        SK_TRY(kv_rope_temporal(c, &c->kscr, s0 * S, nf, pos[idx[i]]));
        i = j;
    }
    return SK_OK;
}

/* Ranges over entries' slots in slot order, coalescing adjacent slots. */
int kv_slot_ranges(const sk_kv_cache *c, const sk_tensor *k, const sk_tensor *v,
                   const int64_t *slot, int64_t n, int64_t *idx, sk_kv_range *out, int cap)
{
    const int64_t S = c->p.tokens_per_frame;
    kv_sort_by_slot(idx, slot, n);
    int nr = 0;
    for (int64_t i = 0; i < n;) {
        int64_t j = i + 1;
        while (j < n && slot[idx[j]] == slot[idx[j - 1]] + 1) j++;
        if (nr < cap) {
            out[nr].k = k;
            out[nr].v = v;
            out[nr].start = slot[idx[i]] * S;
            out[nr].len = (j - i) * S;
        }
        nr++;
        i = j;
    }
    return nr;
}

/* ---- PC compression of one layer ---------------------------------------- */

static _Thread_local const float *g_sort_scores; /* qsort has no context argument */

static int cmp_tok(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    float sx = g_sort_scores[x], sy = g_sort_scores[y];
    if (sx > sy) return -1;
    if (sx < sy) return 1;
    return x < y ? -1 : (x > y);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : (x > y);
}

sk_status sk_kv_compress_layer(sk_kv_cache *c, int layer, const sk_tensor *q_spatial)
{
    if (!c->compress || c->comp_done[layer]) return SK_OK;
    SK_CHECK(c->pending == PASS_CHUNK, SK_E_INTERNAL, "KV cache: compression outside a chunk");
    const int64_t S = c->p.tokens_per_frame, n = c->pend_n, Rc = c->recent_committed;
    const int64_t D = c->p.num_heads * c->p.head_dim;
    sk_backend *be = c->be;
    /* scoring queries: the chunk's, then the kept clean queries of the recent frames,
     * each rotated to its position in the uncompressed layout */
    sk_tensor qcur = sk_tensor_rows(&c->qs, 0, n * S);
    SK_TRY(sk_tensor_copy(&qcur, q_spatial));
    SK_TRY(kv_rope_temporal(c, &c->qs, 0, n, c->pre_q_t0));
    int64_t nq = n * S;
    for (int64_t i = 0; i < Rc; i++) {
        int64_t f = c->qbank_frame[c->qcur * Rc + i];
        if (f < 0) continue;
        /* its position in the uncompressed layout: absolute, or (relative) its index,
         * the regular frames being the last ones before the chunk */
        const int64_t pos = c->p.rope == SK_KV_ROPE_ABSOLUTE ? f
                                                              : c->n_pre - n - (c->pend_frame0 - f);
        if (pos < 0) continue;
        sk_tensor d = sk_tensor_rows(&c->qs, nq, S);
        sk_tensor s = sk_tensor_rows(&c->qbank[layer], (c->qcur * Rc + i) * S, S);
        SK_TRY(sk_tensor_copy(&d, &s));
        SK_TRY(kv_rope_temporal(c, &c->qs, nq, 1, pos));
        nq += S;
    }
    /* mean query per head: attention with a zero query weighs every row equally */
    sk_kv_range qr = {&c->qs, &c->qs, 0, nq};
    SK_TRY(sk_op_attention(be, &c->qmean, &c->qzero, &qr, 1, 1.0f, NULL));
    /* candidates rotated to their uncompressed positions, scored against the mean */
    const int64_t *cs = c->pre_slot + c->n_cand_first, *cp = c->pre_pos + c->n_cand_first;
    SK_TRY(kv_materialize(c, layer, cs, cp, c->n_cand, c->tmp));
    int64_t wsh[2] = {1, D};
    sk_tensor w;
    SK_TRY(sk_tensor_reshape(&c->qmean, 2, wsh, &w));
    kv_sort_by_slot(c->tmp, cs, c->n_cand);
    for (int64_t i = 0; i < c->n_cand;) {
        int64_t j = i + 1;
        while (j < c->n_cand && cs[c->tmp[j]] == cs[c->tmp[j - 1]] + 1) j++;
        int64_t s0 = cs[c->tmp[i]], nf = j - i;
        sk_tensor kr = sk_tensor_rows(&c->kscr, s0 * S, nf * S), x, y;
        int64_t xs[2] = {nf * S, D};
        SK_TRY(sk_tensor_reshape(&kr, 2, xs, &x));
        y = sk_tensor_rows(&c->score, s0 * S, nf * S);
        SK_TRY(sk_op_linear(be, &y, &x, &w, NULL, SK_ACT_NONE));
        i = j;
    }
    SK_TRY(sk_tensor_download_f32(&c->score, c->h_score, (size_t)(c->n_slots * S)));
    /* top C tokens (ties: the earlier candidate), kept in candidate order */
    const int64_t C = c->comp_frames * S, nt = c->n_cand * S;
    for (int64_t i = 0; i < nt; i++) c->h_order[i] = i;
    /* token i of the candidate list -> pool row */
    float *sc = c->h_cand; /* allocated at init: nothing allocated per chunk */
    for (int64_t i = 0; i < c->n_cand; i++)
        for (int64_t t = 0; t < S; t++) sc[i * S + t] = c->h_score[cs[i] * S + t];
    g_sort_scores = sc;
    qsort(c->h_order, (size_t)nt, sizeof *c->h_order, cmp_tok);
    qsort(c->h_order, (size_t)C, sizeof *c->h_order, cmp_i64);
    for (int64_t i = 0; i < C; i++) {
        int64_t tok = c->h_order[i];
        c->h_ids[i] = (int32_t)(cs[tok / S] * S + tok % S);
    }
    SK_TRY(sk_tensor_upload_raw(&c->ids, c->h_ids, (size_t)C * sizeof *c->h_ids));
    /* gather the kept rows (K raw, V) into the free pseudo-frame bank */
    const int64_t dst = c->comp_base[1 - c->comp_bank];
    sk_tensor *pools[2] = {&c->k[layer], &c->v[layer]};
    for (int t = 0; t < 2; t++) {
        int64_t ts[2] = {c->n_slots * S, D}, ys[2] = {C, D};
        sk_tensor table, y, yr = sk_tensor_rows(pools[t], dst * S, C);
        SK_TRY(sk_tensor_reshape(pools[t], 2, ts, &table));
        SK_TRY(sk_tensor_reshape(&yr, 2, ys, &y));
        SK_TRY(sk_op_embedding(be, &y, &table, &c->ids));
    }
    c->comp_done[layer] = 1;
    return SK_OK;
}
