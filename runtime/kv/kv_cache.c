/* kv_cache.c - frame-slot KV cache and its policies (see kv_cache.h and
 * docs/KV_POLICIES.md): lifetime, slots and layouts, EMA fusion, begin / commit
 * / abort, the per-layer hooks. Names and validation: kv_params.c; key rotation
 * and participative compression: kv_keys.c. */
#include "runtime/kv/kv_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/core/log.h"
#include "runtime/kv/kv_multishot.h"

/* ---- lifetime ---------------------------------------------------------- */

void sk_kv_cache_free(sk_kv_cache **pc)
{
    if (!pc || !*pc) return;
    sk_kv_cache *c = *pc;
    for (int64_t l = 0; l < c->p.num_layers; l++) {
        if (c->k) sk_tensor_free(&c->k[l]);
        if (c->v) sk_tensor_free(&c->v[l]);
        if (c->qbank) sk_tensor_free(&c->qbank[l]);
        if (c->ks) sk_tensor_free(&c->ks[l]);
        if (c->vs) sk_tensor_free(&c->vs[l]);
    }
    sk_tensor_free(&c->kscr);
    sk_tensor_free(&c->qs);
    sk_tensor_free(&c->qzero);
    sk_tensor_free(&c->qmean);
    sk_tensor_free(&c->score);
    sk_tensor_free(&c->ids);
    free(c->k); free(c->v); free(c->ks); free(c->vs); free(c->qbank); free(c->qbank_frame);
    free(c->slots); free(c->pend_slot); free(c->vis_slot); free(c->vis_pos); free(c->tmp);
    free(c->pre_slot); free(c->pre_pos); free(c->comp_done); free(c->lay_frame); free(c->lay_cat);
    free(c->h_score); free(c->h_cand); free(c->h_ids); free(c->h_order);
    sk_kv_ms_free(c);
    free(c);
    *pc = NULL;
}

void sk_kv_cache_reset(sk_kv_cache *c)
{
    for (int64_t s = 0; s < c->n_slots; s++) {
        c->slots[s].abs_frame = -1;
        c->slots[s].kind = SK_KV_SLOT_FREE;
        c->slots[s].rope_t = 0;
    }
    if (c->qbank_frame)
        for (int64_t i = 0; i < 2 * c->recent_committed; i++) c->qbank_frame[i] = -1;
    c->next_frame = 0;
    c->pending = 0;
    c->n_vis = 0;
    c->sink_bank = c->comp_bank = 0;
    c->qcur = 0;
    c->n_comp = 0;
    c->reg_lo = c->p.sink_frames;
    c->ema_fused = c->compress = 0;
    sk_kv_ms_reset(c);
}

sk_status sk_kv_cache_init(sk_backend *be, const sk_kv_params *p, sk_kv_cache **out)
{
    SK_CHECK(be && p && out, SK_E_INVALID_ARG, "sk_kv_cache_init: NULL argument");
    *out = NULL;
    SK_TRY(kv_validate(p));
    sk_kv_cache *c = calloc(1, sizeof *c);
    SK_CHECK(c, SK_E_OOM, "KV cache: out of host memory");
    c->p = *p;
    c->p.rope = sk_kv_rope_resolve(p->policy, p->rope);
    if (c->p.recent_frames <= 0) c->p.recent_frames = 4;
    if (!(c->p.rope_theta > 1.0)) c->p.rope_theta = 10000.0;
    if (p->policy != SK_KV_ROLLING) c->p.roll_chunks = 0;
    const kv_plan g = kv_plan_of(&c->p);
    const int64_t S = p->tokens_per_frame, NL = p->num_layers, SF = p->sink_frames;
    c->be = be;
    c->raw = g.raw;
    c->n_slots = g.n_slots;
    c->comp_frames = g.comp_frames;
    c->recent_committed = g.recent_committed;
    c->ring_len = g.ring_len;
    c->sink_base[0] = 0;
    c->sink_base[1] = g.sink_banks > 1 ? SF : 0;
    c->comp_base[0] = g.sink_banks * SF;
    c->comp_base[1] = c->comp_base[0] + g.comp_frames;
    c->ring_base = c->comp_base[0] + 2 * g.comp_frames;
    const size_t ns = (size_t)c->n_slots;
    c->k = calloc((size_t)NL, sizeof *c->k);
    c->v = calloc((size_t)NL, sizeof *c->v);
    c->slots = calloc(ns, sizeof *c->slots);
    c->pend_slot = calloc(ns, sizeof *c->pend_slot);
    c->vis_slot = calloc(ns, sizeof *c->vis_slot);
    c->vis_pos = calloc(ns, sizeof *c->vis_pos);
    c->pre_slot = calloc(ns, sizeof *c->pre_slot);
    c->pre_pos = calloc(ns, sizeof *c->pre_pos);
    c->tmp = calloc(ns, sizeof *c->tmp);
    c->lay_frame = calloc(ns, sizeof *c->lay_frame);
    c->lay_cat = calloc(ns, 1);
    c->comp_done = calloc((size_t)NL, 1);
    sk_status st = SK_OK;
    if (!c->k || !c->v || !c->slots || !c->pend_slot || !c->vis_slot || !c->vis_pos ||
        !c->pre_slot || !c->pre_pos || !c->tmp || !c->lay_frame || !c->lay_cat || !c->comp_done) {
        st = SK_ERR(SK_E_OOM, "KV cache: out of host memory");
        goto fail;
    }
    int64_t shape[3] = {c->n_slots * S, p->num_heads, p->head_dim};
    for (int64_t l = 0; l < NL; l++) {
        SK_TRY_GOTO(st, sk_tensor_alloc(be, p->dtype, 3, shape, &c->k[l]), fail);
        SK_TRY_GOTO(st, sk_tensor_alloc(be, p->dtype, 3, shape, &c->v[l]), fail);
    }
    if (p->dtype == SK_DTYPE_F8_E4M3) { /* the FP8 cache: one scale per frame slot */
        if (!sk_backend_has_fp8_kv(be)) {
            st = SK_ERR(SK_E_UNSUPPORTED, "KV cache: an FP8 cache on the %s backend, which has "
                        "no FP8 quantization or attention", be->name);
            goto fail;
        }
        c->ks = calloc((size_t)NL, sizeof *c->ks);
        c->vs = calloc((size_t)NL, sizeof *c->vs);
        if (!c->ks || !c->vs) {
            st = SK_ERR(SK_E_OOM, "KV cache: out of host memory");
            goto fail;
        }
        int64_t ns1[1] = {c->n_slots};
        for (int64_t l = 0; l < NL; l++) {
            SK_TRY_GOTO(st, sk_tensor_alloc(be, SK_DTYPE_F32, 1, ns1, &c->ks[l]), fail);
            SK_TRY_GOTO(st, sk_tensor_alloc(be, SK_DTYPE_F32, 1, ns1, &c->vs[l]), fail);
        }
    }
    if (c->raw) SK_TRY_GOTO(st, sk_tensor_alloc(be, p->dtype, 3, shape, &c->kscr), fail);
    if (g.comp_frames > 0) {
        const int64_t Rc = g.recent_committed, n = p->max_chunk_frames, C = g.comp_frames * S;
        if (Rc > 0) {
            c->qbank = calloc((size_t)NL, sizeof *c->qbank);
            c->qbank_frame = calloc((size_t)(2 * Rc), sizeof *c->qbank_frame);
            if (!c->qbank || !c->qbank_frame) {
                st = SK_ERR(SK_E_OOM, "KV cache: out of host memory");
                goto fail;
            }
            int64_t qb[3] = {2 * Rc * S, p->num_heads, p->head_dim};
            for (int64_t l = 0; l < NL; l++)
                SK_TRY_GOTO(st, sk_tensor_alloc(be, p->dtype, 3, qb, &c->qbank[l]), fail);
        }
        int64_t qs[3] = {(n + Rc) * S, p->num_heads, p->head_dim};
        int64_t qz[3] = {1, p->num_heads, p->head_dim};
        int64_t qm[2] = {1, p->num_heads * p->head_dim};
        int64_t sc[2] = {c->n_slots * S, 1};
        int64_t id[1] = {C};
        SK_TRY_GOTO(st, sk_tensor_alloc(be, p->dtype, 3, qs, &c->qs), fail);
        SK_TRY_GOTO(st, sk_tensor_alloc(be, p->dtype, 3, qz, &c->qzero), fail);
        SK_TRY_GOTO(st, sk_tensor_zero(&c->qzero), fail);
        SK_TRY_GOTO(st, sk_tensor_alloc(be, p->dtype, 2, qm, &c->qmean), fail);
        SK_TRY_GOTO(st, sk_tensor_alloc(be, p->dtype, 2, sc, &c->score), fail);
        SK_TRY_GOTO(st, sk_tensor_alloc(be, SK_DTYPE_I32, 1, id, &c->ids), fail);
        c->h_score = malloc((size_t)(c->n_slots * S) * sizeof *c->h_score);
        c->h_cand = malloc((size_t)(c->n_slots * S) * sizeof *c->h_cand);
        c->h_ids = malloc((size_t)C * sizeof *c->h_ids);
        c->h_order = malloc((size_t)(c->n_slots * S) * sizeof *c->h_order);
        if (!c->h_score || !c->h_cand || !c->h_ids || !c->h_order) {
            st = SK_ERR(SK_E_OOM, "KV cache: out of host memory");
            goto fail;
        }
    }
    if (p->policy == SK_KV_MULTISHOT) SK_TRY_GOTO(st, sk_kv_ms_init(c), fail);
    sk_kv_cache_reset(c);
    char desc[1024];
    sk_kv_describe(&c->p, sk_dtype_size(p->dtype), desc, sizeof desc);
    SK_LOGD("KV cache: %s; %.1f MB on %s", desc, (double)sk_kv_bytes(c) / 1e6, be->name);
    *out = c;
    return SK_OK;
fail:
    sk_kv_cache_free(&c);
    return st;
}

/* ---- slots and layouts -------------------------------------------------- */

/* Slot a real frame lives in (committed or pending). */
static int64_t frame_slot(const sk_kv_cache *c, int64_t f, int bank)
{
    if (f < c->p.sink_frames) return c->sink_base[bank] + f;
    return c->ring_base + f % c->ring_len;
}

/* Slot of committed frame f, or -1 when the cache does not hold it. */
static int64_t committed_slot(const sk_kv_cache *c, int64_t f)
{
    if (f < 0 || f >= c->next_frame) return -1;
    int64_t s = frame_slot(c, f, c->sink_bank);
    const sk_kv_slot *m = &c->slots[s];
    if ((m->kind == SK_KV_SLOT_SINK || m->kind == SK_KV_SLOT_LOCAL) && m->abs_frame == f) return s;
    return -1;
}

enum { CAT_SINK = 0, CAT_COMP, CAT_REG, CAT_PEND };

/* A layout under construction: slot, frame, category per entry. */
typedef struct {
    int64_t *slot, *pos, *frame;
    unsigned char *cat;
    int64_t n, cap;
} lay;

static void lay_add(lay *L, int64_t slot, int64_t frame, int cat)
{
    if (L->n < L->cap) {
        L->slot[L->n] = slot;
        L->frame[L->n] = frame;
        L->cat[L->n] = (unsigned char)cat;
    }
    L->n++;
}

/* Does the sink keep its natural positions (0..S-1) in absolute mode? */
static int sink_natural(const sk_kv_cache *c, int pass)
{
    if (c->p.policy == SK_KV_DEEP_SINK) return 0;
    if (c->p.policy == SK_KV_ROLLING && pass == PASS_WINDOW) return 0;
    return 1;
}

static sk_status assign_absolute(const sk_kv_cache *c, lay *L, int pass, int64_t frame0);

/* Assigns positions to a layout and the pass's first query position. */
static sk_status assign_positions(const sk_kv_cache *c, lay *L, int pass, int64_t frame0,
                                  int64_t nq, int64_t *q_t0)
{
    sk_status st = SK_OK;
    if (c->p.rope == SK_KV_ROPE_RELATIVE) {
        int64_t first_pend = -1;
        for (int64_t i = 0; i < L->n; i++) {
            L->pos[i] = i;
            if (L->cat[i] == CAT_PEND && first_pend < 0) first_pend = i;
        }
        *q_t0 = first_pend >= 0 ? first_pend : L->n;
        if (pass == PASS_RECOMPUTE) *q_t0 = L->n >= nq ? L->n - nq : 0;
    } else {
        st = assign_absolute(c, L, pass, frame0);
        *q_t0 = frame0;
    }
    /* a recompute's queries sit where their own keys are: the last query frame at
     * its cached position, the others consecutive before it */
    if (st == SK_OK && pass == PASS_RECOMPUTE)
        for (int64_t i = 0; i < L->n; i++)
            if ((L->cat[i] == CAT_SINK || L->cat[i] == CAT_REG) && L->frame[i] == frame0 + nq - 1 &&
                !(L->cat[i] == CAT_SINK && c->slots[L->slot[i]].kind == SK_KV_SLOT_EMA))
                *q_t0 = L->pos[i] >= nq - 1 ? L->pos[i] - (nq - 1) : 0;
    return st;
}

static sk_status assign_absolute(const sk_kv_cache *c, lay *L, int pass, int64_t frame0)
{
    /* absolute: frames at their index; packed entries (compressed, and a
     * re-aligned sink) end right before the first regular / pending frame */
    const int nat = sink_natural(c, pass);
    int64_t anchor = frame0, npacked = 0;
    for (int64_t i = 0; i < L->n; i++)
        if (L->cat[i] == CAT_REG || L->cat[i] == CAT_PEND) { anchor = L->frame[i]; break; }
    for (int64_t i = 0; i < L->n; i++)
        if (L->cat[i] == CAT_COMP || (L->cat[i] == CAT_SINK && !nat)) npacked++;
    int64_t k = 0;
    for (int64_t i = 0; i < L->n; i++) {
        if (L->cat[i] == CAT_COMP || (L->cat[i] == CAT_SINK && !nat))
            L->pos[i] = anchor - npacked + k++;
        else
            L->pos[i] = L->frame[i]; /* EMA sink slot j: frame j */
        SK_CHECK(L->pos[i] >= 0, SK_E_INTERNAL, "KV cache: negative RoPE position");
    }
    return SK_OK;
}

/* The visible layout of a pass (see kv_cache.h), into L (sink, compressed,
 * regular frames ascending, then the pass's own frames). pre != 0 builds
 * PC's uncompressed layout of a compressing chunk. */
static void build_layout(const sk_kv_cache *c, int pass, int64_t frame0, int64_t n, int pre,
                         lay *L)
{
    const int64_t S = c->p.sink_frames, W = c->p.window_frames;
    const int fused_bank = c->ema_fused ? 1 - c->sink_bank : c->sink_bank;
    L->n = 0;
    /* sink */
    int64_t s_lo = 0, s_hi = frame0 < S ? frame0 : S;
    if (pass == PASS_RECOMPUTE) s_hi = c->next_frame < S ? c->next_frame : S;
    if (c->p.policy == SK_KV_ROLLING && pass == PASS_CHUNK) {
        int64_t lo = frame0 - (W - n);
        if (lo > s_lo) s_lo = lo;
    }
    for (int64_t f = s_lo; f < s_hi; f++) {
        int bank = pass == PASS_CHUNK ? fused_bank : c->sink_bank;
        lay_add(L, c->sink_base[bank] + f, f, CAT_SINK);
    }
    /* compressed pseudo-frames */
    if (c->compress && pass == PASS_CHUNK && !pre) {
        for (int64_t i = 0; i < c->comp_frames; i++)
            lay_add(L, c->comp_base[1 - c->comp_bank] + i, -1, CAT_COMP);
    } else {
        for (int64_t i = 0; i < c->n_comp; i++)
            lay_add(L, c->comp_base[c->comp_bank] + i, -1, CAT_COMP);
    }
    /* regular frames */
    int64_t lo = c->reg_lo, hi = pass == PASS_RECOMPUTE ? c->next_frame : frame0;
    if (pass != PASS_RECOMPUTE) {
        int64_t want;
        if (c->comp_frames > 0)
            want = (c->compress && !pre) ? frame0 - c->recent_committed : c->reg_lo;
        else if (c->p.policy == SK_KV_ROLLING)
            want = pass == PASS_WINDOW ? frame0 - (W - S - n) : frame0 - (W - n);
        else
            want = frame0 + n - (W - S);
        if (want > lo) lo = want;
    }
    if (lo < S) lo = S;
    for (int64_t f = lo; f < hi; f++) lay_add(L, frame_slot(c, f, 0), f, CAT_REG);
    /* the pass's own frames */
    if (pass != PASS_RECOMPUTE)
        for (int64_t i = 0; i < n; i++) {
            int64_t f = frame0 + i;
            lay_add(L, frame_slot(c, f, f < S ? fused_bank : 0), f, CAT_PEND);
        }
}

static sk_status check_positions(const sk_kv_cache *c, int64_t frame0, int64_t n)
{
    if (c->p.rope != SK_KV_ROPE_ABSOLUTE) return SK_OK;
    SK_CHECK(frame0 + n <= SK_KV_ROPE_MAX_POSITIONS, SK_E_INVALID_ARG,
             "KV cache: frame %lld needs temporal RoPE position %lld, but absolute positions end "
             "at %d (the model's RoPE table has %d entries); use --rope relative (positions "
             "within the window) to go on", (long long)(frame0 + n - 1), (long long)(frame0 + n - 1),
             SK_KV_ROPE_MAX_POSITIONS - 1, SK_KV_ROPE_MAX_POSITIONS);
    return SK_OK;
}

/* Fills vis_* from a layout of pass `pass`. */
static sk_status set_visible(sk_kv_cache *c, int pass, int64_t frame0, int64_t n, int64_t nq)
{
    lay L = {c->vis_slot, c->vis_pos, c->lay_frame, c->lay_cat, 0, c->n_slots};
    build_layout(c, pass, frame0, n, 0, &L);
    SK_CHECK(L.n <= L.cap, SK_E_INTERNAL, "KV cache: %lld visible frames, %lld slots",
             (long long)L.n, (long long)L.cap);
    SK_TRY(assign_positions(c, &L, pass, frame0, nq, &c->q_t0));
    c->n_vis = L.n;
    return SK_OK;
}

/* ---- EMA fusion (begin of a chunk) ------------------------------------- */

static sk_status ema_fuse(sk_kv_cache *c, int64_t leave_lo, int64_t leave_hi)
{
    const int64_t S = c->p.tokens_per_frame, SF = c->p.sink_frames;
    const int nb = 1 - c->sink_bank;
    const float a = (float)c->p.ema_alpha, b = (float)(1.0 - c->p.ema_alpha);
    for (int64_t l = 0; l < c->p.num_layers; l++) {
        sk_tensor *pools[2] = {&c->k[l], &c->v[l]};
        for (int t = 0; t < 2; t++) {
            sk_tensor dst = sk_tensor_rows(pools[t], c->sink_base[nb] * S, SF * S);
            sk_tensor src = sk_tensor_rows(pools[t], c->sink_base[c->sink_bank] * S, SF * S);
            SK_TRY(sk_tensor_copy(&dst, &src));
            for (int64_t f = leave_lo; f < leave_hi; f++) {
                int64_t s = committed_slot(c, f);
                SK_CHECK(s >= 0, SK_E_INTERNAL, "KV cache: evicted frame %lld is not cached",
                         (long long)f);
                sk_tensor y = sk_tensor_rows(pools[t], (c->sink_base[nb] + f % SF) * S, S);
                sk_tensor z = sk_tensor_rows(pools[t], s * S, S);
                SK_TRY(sk_op_axpby(c->be, &y, a, &y, b, &z));
            }
        }
    }
    return SK_OK;
}

/* ---- begin --------------------------------------------------------------- */

static sk_status begin_common(sk_kv_cache *c, int64_t frame0, int64_t n, int64_t nmax,
                              const char *what)
{
    SK_CHECK(!c->pending, SK_E_INTERNAL,
             "KV cache: a pass at frame %lld is still pending (commit or abort it first)",
             (long long)c->pend_frame0);
    SK_CHECK(frame0 == c->next_frame, SK_E_INVALID_ARG,
             "KV cache: new %s starts at frame %lld; expected the next frame %lld", what,
             (long long)frame0, (long long)c->next_frame);
    SK_CHECK(n >= 1 && n <= nmax, SK_E_INVALID_ARG, "KV cache: %s of %lld frames; expected "
             "1..%lld", what, (long long)n, (long long)nmax);
    SK_TRY(check_positions(c, frame0, n));
    const int64_t S = c->p.sink_frames;
    for (int64_t i = 0; i < n; i++) {
        int64_t f = frame0 + i;
        int64_t s = frame_slot(c, f, f < S && c->ema_fused ? 1 - c->sink_bank : c->sink_bank);
        SK_CHECK(c->slots[s].kind == SK_KV_SLOT_FREE, SK_E_INTERNAL,
                 "KV cache: slot %lld for frame %lld is taken by frame %lld", (long long)s,
                 (long long)f, (long long)c->slots[s].abs_frame);
        c->pend_slot[i] = s;
    }
    return SK_OK;
}

sk_status sk_kv_begin_chunk(sk_kv_cache *c, int64_t frame0, int64_t n)
{
    SK_CHECK(!c->pending, SK_E_INTERNAL,
             "KV cache: a chunk at frame %lld is still pending (commit or abort it first)",
             (long long)c->pend_frame0);
    const int64_t S = c->p.sink_frames, W = c->p.window_frames;
    c->ema_fused = 0;
    c->compress = 0;
    if (c->p.policy == SK_KV_MULTISHOT) return sk_kv_ms_begin_chunk(c, frame0, n);
    /* EMA: frames leaving the window are fused into the other sink bank */
    int64_t leave_lo = 0, leave_hi = 0;
    if (c->p.policy == SK_KV_EMA && frame0 == c->next_frame && frame0 >= S) {
        int64_t lo = frame0 + n - (W - S);
        leave_lo = c->reg_lo;
        leave_hi = lo < frame0 ? lo : frame0;
        if (leave_hi > leave_lo) c->ema_fused = 1;
    }
    /* PC: compress when the chunk would overflow the window */
    if (c->comp_frames > 0 && frame0 == c->next_frame) {
        int64_t sinks = frame0 < S ? frame0 : S, regs = frame0 - (c->reg_lo > S ? c->reg_lo : S);
        if (regs < 0) regs = 0;
        if (sinks + c->n_comp + regs + n > W) c->compress = 1;
    }
    sk_status st = begin_common(c, frame0, n, c->p.max_chunk_frames, "chunk");
    if (st == SK_OK && c->ema_fused) st = ema_fuse(c, leave_lo, leave_hi);
    if (st == SK_OK && c->comp_frames > 0) st = kv_qbank_begin(c, frame0, n);
    if (st == SK_OK) st = set_visible(c, PASS_CHUNK, frame0, n, n);
    if (st == SK_OK && c->compress) {
        unsigned char *cat = c->lay_cat;
        lay L = {c->pre_slot, c->pre_pos, c->lay_frame, cat, 0, c->n_slots};
        build_layout(c, PASS_CHUNK, frame0, n, 1, &L);
        st = assign_positions(c, &L, PASS_CHUNK, frame0, n, &c->pre_q_t0);
        c->n_pre = L.n;
        int64_t first = 0, nc = 0;
        while (first < L.n && cat[first] == CAT_SINK) first++;
        /* candidates: old pseudo-frames and the regular frames before the recent ones */
        for (int64_t i = first; i < L.n; i++) {
            if (cat[i] == CAT_PEND) break;
            if (cat[i] == CAT_REG && L.frame[i] >= frame0 - c->recent_committed) break;
            nc++;
        }
        c->n_cand_first = first;
        c->n_cand = nc;
        if (st == SK_OK && nc < c->comp_frames)
            st = SK_ERR(SK_E_INTERNAL, "KV cache: %lld candidate frames for %lld kept",
                        (long long)nc, (long long)c->comp_frames);
        memset(c->comp_done, 0, (size_t)c->p.num_layers);
    }
    if (st != SK_OK) {
        c->ema_fused = c->compress = 0;
        return st;
    }
    c->pend_frame0 = frame0;
    c->pend_n = n;
    c->pending = PASS_CHUNK;
    return SK_OK;
}

sk_status sk_kv_begin_window(sk_kv_cache *c, int64_t frame0, int64_t n)
{
    SK_CHECK(c->p.policy == SK_KV_ROLLING, SK_E_INVALID_ARG,
             "KV cache: a rolling window pass needs --kv-policy rolling (this cache is %s)",
             sk_kv_policy_name(c->p.policy));
    c->ema_fused = c->compress = 0;
    SK_TRY(begin_common(c, frame0, n, kv_window_pass_frames(&c->p), "rolling window"));
    SK_TRY(set_visible(c, PASS_WINDOW, frame0, n, n));
    c->pend_frame0 = frame0;
    c->pend_n = n;
    c->pending = PASS_WINDOW;
    return SK_OK;
}

sk_status sk_kv_begin_recompute(sk_kv_cache *c, int64_t frame0, int64_t n, int protect_sink)
{
    SK_CHECK(!c->pending, SK_E_INTERNAL,
             "KV cache: a chunk at frame %lld is still pending (commit or abort it first)",
             (long long)c->pend_frame0);
    SK_CHECK(c->p.policy != SK_KV_MULTISHOT, SK_E_UNSUPPORTED,
             "KV cache: a prompt-switch recache (--recache on) is not supported with --kv-policy "
             "multishot; LongLive 2.0 switches prompts without one (--recache off)");
    SK_CHECK(n >= 1 && frame0 >= 0 && frame0 + n <= c->next_frame && n <= c->p.window_frames,
             SK_E_INVALID_ARG, "KV cache: recompute of frames %lld..%lld; expected up to %lld "
             "frames ending at or before the last generated frame %lld", (long long)frame0,
             (long long)(frame0 + n - 1), (long long)c->p.window_frames,
             (long long)c->next_frame - 1);
    c->ema_fused = c->compress = 0;
    for (int64_t i = 0; i < n; i++) {
        int64_t s = committed_slot(c, frame0 + i);
        if (s >= 0 && c->slots[s].kind == SK_KV_SLOT_SINK && protect_sink) s = -1;
        c->pend_slot[i] = s;
    }
    SK_TRY(set_visible(c, PASS_RECOMPUTE, frame0, n, n));
    c->pend_frame0 = frame0;
    c->pend_n = n;
    c->pending = PASS_RECOMPUTE;
    return SK_OK;
}

int64_t sk_kv_recache_span(const sk_kv_cache *c, int64_t *frame0)
{
    int64_t n = c->next_frame < c->p.window_frames ? c->next_frame : c->p.window_frames;
    if (frame0) *frame0 = c->next_frame - n;
    return n;
}

/* ---- per-layer hooks ------------------------------------------------------ */

sk_status sk_kv_rope_qk(sk_kv_cache *c, int layer, sk_tensor *q, sk_tensor *k, int64_t Hp,
                        int64_t Wp)
{
    SK_CHECK(c->pending, SK_E_INTERNAL, "KV cache: RoPE without a pending pass");
    const int64_t n = c->pend_n;
    SK_CHECK(Hp * Wp == c->p.tokens_per_frame && q->shape[0] == n * Hp * Wp &&
                 k->shape[0] == n * Hp * Wp, SK_E_SHAPE,
             "KV cache: RoPE of %lld query rows for %lld frames of %lldx%lld tokens",
             (long long)q->shape[0], (long long)n, (long long)Hp, (long long)Wp);
    if (!c->raw) {
        SK_TRY(sk_op_rope3d(c->be, q, n, Hp, Wp, c->q_t0, c->p.rope_theta));
        return sk_op_rope3d(c->be, k, n, Hp, Wp, c->q_t0, c->p.rope_theta);
    }
    SK_TRY(kv_rope_spatial(c, q, n, Hp, Wp));
    SK_TRY(kv_rope_spatial(c, k, n, Hp, Wp));
    if (c->comp_frames > 0) {
        SK_TRY(kv_qbank_store(c, layer, q));
        if (c->compress && !c->comp_done[layer]) SK_TRY(sk_kv_compress_layer(c, layer, q));
    }
    return kv_rope_temporal(c, q, 0, n, c->q_t0);
}

/* FP8 cache: n frames of x [n*S, NH, HD] (act dtype) into the e4m3 rows dst and the
 * scales [slot0, slot0 + n) of sc, each frame quantized as one row with a
 * power-of-two scale (fp8.h) */
static sk_status kv_quantize_frames(sk_kv_cache *c, sk_tensor *dst, sk_tensor *sc, int64_t slot0,
                                    const sk_tensor *x, int64_t n)
{
    const int64_t fr = c->p.tokens_per_frame * c->p.num_heads * c->p.head_dim;
    int64_t s2[2] = {n, fr};
    sk_tensor q2, x2, s = sk_tensor_rows(sc, slot0, n);
    SK_TRY(sk_tensor_reshape(dst, 2, s2, &q2));
    SK_TRY(sk_tensor_reshape(x, 2, s2, &x2));
    return sk_op_quantize_rows_pow2(c->be, &q2, &s, &x2);
}

/* FP8 cache: each range's frame scales (one per tokens_per_frame rows) */
static void kv_range_scales(const sk_kv_cache *c, int layer, sk_kv_range *r, int n)
{
    for (int i = 0; i < n; i++) {
        r[i].k_scale = c->ks ? &c->ks[layer] : NULL;
        r[i].v_scale = c->vs ? &c->vs[layer] : NULL;
        r[i].scale_rows = c->ks ? c->p.tokens_per_frame : 0;
    }
}

sk_status sk_kv_write(sk_kv_cache *c, int layer, const sk_tensor *k, const sk_tensor *v)
{
    SK_CHECK(c->pending, SK_E_INTERNAL, "KV cache: write without a pending chunk");
    SK_CHECK(layer >= 0 && layer < c->p.num_layers, SK_E_INVALID_ARG,
             "KV cache: layer %d out of range 0..%lld", layer, (long long)c->p.num_layers - 1);
    const int64_t S = c->p.tokens_per_frame, n = c->pend_n;
    const int64_t want[3] = {n * S, c->p.num_heads, c->p.head_dim};
    char a[96], b[96];
    const int f8 = c->ks != NULL; /* the FP8 cache takes act-dtype K/V and quantizes them */
    const sk_dtype in = f8 ? c->be->act_dtype : c->p.dtype;
    sk_tensor d = sk_tensor_desc(in, 3, want);
    SK_CHECK(sk_tensor_same_shape(k, &d) && sk_tensor_same_shape(v, &d) && k->dtype == in &&
                 v->dtype == in,
             SK_E_SHAPE, "KV cache: write of K %s (%s) into a chunk slot of %s (%s)",
             sk_shape_str(k, a, sizeof a), sk_dtype_name(k->dtype), sk_shape_str(&d, b, sizeof b),
             sk_dtype_name(in));
    /* copy runs of consecutive slots at once; -1 marks query-only frames */
    for (int64_t i = 0; i < n;) {
        if (c->pend_slot[i] < 0) { i++; continue; }
        int64_t j = i + 1;
        while (j < n && c->pend_slot[j] >= 0 && c->pend_slot[j] == c->pend_slot[j - 1] + 1) j++;
        sk_tensor dk = sk_tensor_rows(&c->k[layer], c->pend_slot[i] * S, (j - i) * S);
        sk_tensor dv = sk_tensor_rows(&c->v[layer], c->pend_slot[i] * S, (j - i) * S);
        sk_tensor sk_ = sk_tensor_rows(k, i * S, (j - i) * S);
        sk_tensor sv = sk_tensor_rows(v, i * S, (j - i) * S);
        if (f8) { /* each frame one row of S*NH*HD values: its own scale (fp8.h) */
            SK_TRY(kv_quantize_frames(c, &dk, &c->ks[layer], c->pend_slot[i], &sk_, j - i));
            SK_TRY(kv_quantize_frames(c, &dv, &c->vs[layer], c->pend_slot[i], &sv, j - i));
        } else {
            SK_TRY(sk_tensor_copy(&dk, &sk_));
            SK_TRY(sk_tensor_copy(&dv, &sv));
        }
        i = j;
    }
    return SK_OK;
}

int sk_kv_write_views(sk_kv_cache *c, int layer, sk_tensor *k, sk_tensor *v)
{
    if (!c->pending || layer < 0 || layer >= c->p.num_layers || c->pend_n < 1 || c->ks) return 0;
    for (int64_t i = 0; i < c->pend_n; i++)
        if (c->pend_slot[i] < 0 || c->pend_slot[i] != c->pend_slot[0] + i) return 0;
    const int64_t S = c->p.tokens_per_frame;
    *k = sk_tensor_rows(&c->k[layer], c->pend_slot[0] * S, c->pend_n * S);
    *v = sk_tensor_rows(&c->v[layer], c->pend_slot[0] * S, c->pend_n * S);
    return 1;
}

sk_status sk_kv_attention_ranges(sk_kv_cache *c, int layer, sk_kv_range *out, int cap, int *n)
{
    SK_CHECK(c->pending, SK_E_INTERNAL, "KV cache: attention without a pending pass");
    int nr;
    if (c->raw) {
        SK_TRY(kv_materialize(c, layer, c->vis_slot, c->vis_pos, c->n_vis, c->tmp));
        nr = kv_slot_ranges(c, &c->kscr, &c->v[layer], c->vis_slot, c->n_vis, c->tmp, out, cap);
    } else {
        nr = kv_slot_ranges(c, &c->k[layer], &c->v[layer], c->vis_slot, c->n_vis, c->tmp, out, cap);
    }
    SK_CHECK(nr <= cap, SK_E_INTERNAL, "KV cache: %d ranges, room for %d", nr, cap);
    kv_range_scales(c, layer, out, nr);
    *n = nr;
    return SK_OK;
}

int sk_kv_visible(const sk_kv_cache *c, int layer, sk_kv_range *out, int cap)
{
    const int nr =
        kv_slot_ranges(c, &c->k[layer], &c->v[layer], c->vis_slot, c->n_vis, c->tmp, out, cap);
    kv_range_scales(c, layer, out, nr < cap ? nr : cap);
    return nr;
}

int64_t sk_kv_visible_frames(const sk_kv_cache *c, int64_t *frames, int64_t cap)
{
    int64_t n = 0;
    for (int64_t i = 0; i < c->n_vis && n < cap; i++) {
        int64_t s = c->vis_slot[i], f = -2;
        for (int64_t p = 0; p < c->pend_n && (c->pending == PASS_CHUNK || c->pending == PASS_WINDOW); p++)
            if (c->pend_slot[p] == s) f = c->pend_frame0 + p;
        if (f == -2) {
            if (s >= c->comp_base[0] && s < c->ring_base) f = -1;
            else if (c->p.sink_frames > 0 && s < c->comp_base[0])
                f = s - c->sink_base[s >= c->sink_base[1] && c->sink_base[1] > 0 ? 1 : 0];
            else f = c->slots[s].abs_frame;
        }
        frames[n++] = f;
    }
    return n;
}

int64_t sk_kv_visible_positions(const sk_kv_cache *c, int64_t *pos, int64_t cap)
{
    int64_t n = c->n_vis < cap ? c->n_vis : cap;
    for (int64_t i = 0; i < n; i++) pos[i] = c->vis_pos[i];
    return n;
}

/* ---- commit / abort --------------------------------------------------------- */

static void free_slot(sk_kv_cache *c, int64_t s)
{
    c->slots[s].kind = SK_KV_SLOT_FREE;
    c->slots[s].abs_frame = -1;
}

void sk_kv_commit(sk_kv_cache *c)
{
    if (!c->pending) return;
    if (c->p.policy == SK_KV_MULTISHOT && c->pending == PASS_CHUNK) {
        sk_kv_ms_commit(c);
        return;
    }
    if (c->pending != PASS_CHUNK) { /* a recompute or a window moves nothing */
        if (c->pending == PASS_RECOMPUTE)
            for (int64_t i = 0; i < c->n_vis; i++) c->slots[c->vis_slot[i]].rope_t = c->vis_pos[i];
        c->pending = 0;
        c->n_vis = 0;
        return;
    }
    const int64_t S = c->p.sink_frames, W = c->p.window_frames, frame0 = c->pend_frame0;
    if (c->compress && c->comp_frames > 0) {
        for (int64_t l = 0; l < c->p.num_layers; l++)
            if (!c->comp_done[l])
                SK_LOGE("KV cache: layer %lld was not compressed in its chunk's first forward; "
                        "its pseudo-frames are undefined", (long long)l);
    }
    for (int64_t i = 0; i < c->pend_n; i++) {
        sk_kv_slot *s = &c->slots[c->pend_slot[i]];
        s->abs_frame = frame0 + i;
        s->kind = s->abs_frame < S ? SK_KV_SLOT_SINK : SK_KV_SLOT_LOCAL;
    }
    for (int64_t i = 0; i < c->n_vis; i++) c->slots[c->vis_slot[i]].rope_t = c->vis_pos[i];
    c->next_frame = frame0 + c->pend_n;
    if (c->ema_fused) {
        const int ob = c->sink_bank, nb = 1 - ob;
        for (int64_t j = 0; j < S; j++) {
            free_slot(c, c->sink_base[ob] + j);
            c->slots[c->sink_base[nb] + j].kind = SK_KV_SLOT_EMA;
            c->slots[c->sink_base[nb] + j].abs_frame = j;
        }
        c->sink_bank = nb;
    }
    /* the regular frames the policy still keeps start at new_lo */
    int64_t new_lo = c->reg_lo;
    if (c->comp_frames > 0) {
        if (c->compress) new_lo = frame0 - c->recent_committed;
    } else if (c->p.policy == SK_KV_ROLLING) {
        new_lo = c->next_frame - (W - c->p.max_chunk_frames);
    } else {
        new_lo = c->next_frame - (W - S);
    }
    if (new_lo < S) new_lo = S;
    for (int64_t f = c->reg_lo; f < new_lo && f < c->next_frame; f++) {
        int64_t s = frame_slot(c, f, 0);
        if (c->slots[s].abs_frame == f) free_slot(c, s);
    }
    if (new_lo > c->reg_lo) c->reg_lo = new_lo;
    if (c->compress) {
        const int ob = c->comp_bank, nb = 1 - ob;
        for (int64_t i = 0; i < c->comp_frames; i++) {
            if (c->n_comp) free_slot(c, c->comp_base[ob] + i);
            c->slots[c->comp_base[nb] + i].kind = SK_KV_SLOT_COMPRESSED;
            c->slots[c->comp_base[nb] + i].abs_frame = -1;
        }
        c->comp_bank = nb;
        c->n_comp = c->comp_frames;
    }
    if (c->recent_committed > 0) c->qcur = 1 - c->qcur;
    c->pending = 0;
    c->ema_fused = c->compress = 0;
    c->n_vis = 0;
}

void sk_kv_abort(sk_kv_cache *c)
{
    if (c->p.policy == SK_KV_MULTISHOT) sk_kv_ms_abort(c);
    c->pending = 0;
    c->pend_n = 0;
    c->n_vis = 0;
    c->ema_fused = c->compress = 0;
}

int64_t sk_kv_global_end(const sk_kv_cache *c) { return c->next_frame * c->p.tokens_per_frame; }

int64_t sk_kv_local_end(const sk_kv_cache *c)
{
    int64_t f = c->next_frame < c->p.window_frames ? c->next_frame : c->p.window_frames;
    return f * c->p.tokens_per_frame;
}

/* bytes of an allocated tensor (a zeroed, never allocated one counts 0, not one element) */
static size_t nb(const sk_tensor *t) { return t->data ? sk_tensor_nbytes(t) : 0; }

size_t sk_kv_bytes(const sk_kv_cache *c)
{
    size_t b = 0;
    for (int64_t l = 0; l < c->p.num_layers; l++) {
        b += nb(&c->k[l]) + nb(&c->v[l]);
        if (c->qbank) b += nb(&c->qbank[l]);
        if (c->ks) b += nb(&c->ks[l]) + nb(&c->vs[l]);
    }
    b += nb(&c->kscr) + nb(&c->qs) + nb(&c->qzero) + nb(&c->qmean) + nb(&c->score) + nb(&c->ids);
    return b;
}
