/* kv_cache.c - frame-slot KV cache and its policies (see kv_cache.h and
 * docs/KV_POLICIES.md). */
#include "runtime/kv/kv_cache.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/core/log.h"

static const char *const k_policy_names[SK_KV_POLICY_COUNT_] = {
    [SK_KV_FIFO] = "fifo", [SK_KV_SINK] = "sink", [SK_KV_EMA] = "ema",
    [SK_KV_DEEP_SINK] = "deep-sink", [SK_KV_ROLLING] = "rolling",
};
static const char *const k_rope_names[3] = {"auto", "absolute", "relative"};

const char *sk_kv_policy_name(sk_kv_policy p)
{
    return (p >= 0 && p < SK_KV_POLICY_COUNT_) ? k_policy_names[p] : "?";
}

sk_status sk_kv_policy_from_name(const char *s, sk_kv_policy *out)
{
    for (int i = 0; i < SK_KV_POLICY_COUNT_; i++)
        if (s && strcmp(s, k_policy_names[i]) == 0) { *out = (sk_kv_policy)i; return SK_OK; }
    return SK_ERR(SK_E_INVALID_ARG, "unknown KV-cache policy '%s'; expected fifo, sink, ema, "
                  "deep-sink or rolling", s ? s : "(null)");
}

const char *sk_kv_rope_name(sk_kv_rope r)
{
    return (r >= 0 && r <= SK_KV_ROPE_RELATIVE) ? k_rope_names[r] : "?";
}

sk_status sk_kv_rope_from_name(const char *s, sk_kv_rope *out)
{
    for (int i = 0; i < 3; i++)
        if (s && strcmp(s, k_rope_names[i]) == 0) { *out = (sk_kv_rope)i; return SK_OK; }
    return SK_ERR(SK_E_INVALID_ARG, "unknown RoPE mode '%s'; expected auto, absolute or relative",
                  s ? s : "(null)");
}

sk_kv_rope sk_kv_rope_resolve(sk_kv_policy p, sk_kv_rope r)
{
    if (r != SK_KV_ROPE_AUTO) return r;
    return p == SK_KV_EMA ? SK_KV_ROPE_RELATIVE : SK_KV_ROPE_ABSOLUTE;
}

int64_t sk_kv_default_sink(sk_kv_policy p, int64_t window, int64_t chunk)
{
    switch (p) {
    case SK_KV_FIFO: return 0;
    case SK_KV_DEEP_SINK: return window / 2;
    case SK_KV_ROLLING: return chunk;
    default: return 3;
    }
}

/* ---- geometry ---------------------------------------------------------- */

typedef struct {
    int raw;
    int64_t sink_banks, comp_frames, recent_committed, ring_len, n_slots;
} kv_plan;

static int64_t window_pass_frames(const sk_kv_params *p)
{
    return p->policy == SK_KV_ROLLING ? p->roll_chunks * p->max_chunk_frames : 0;
}

static kv_plan plan_of(const sk_kv_params *p)
{
    kv_plan g;
    memset(&g, 0, sizeof g);
    const int64_t W = p->window_frames, S = p->sink_frames, n = p->max_chunk_frames;
    const sk_kv_rope rope = sk_kv_rope_resolve(p->policy, p->rope);
    g.raw = p->store_raw || !((p->policy == SK_KV_FIFO || p->policy == SK_KV_SINK) &&
                              rope == SK_KV_ROPE_ABSOLUTE && p->compress_frames == 0);
    g.sink_banks = S > 0 ? (p->policy == SK_KV_EMA ? 2 : 1) : 0;
    if (p->compress_frames > 0) {
        const int64_t R = p->recent_frames > 0 ? p->recent_frames : 4;
        g.comp_frames = p->compress_frames - S - R;
        g.recent_committed = R - n;
    }
    if (p->policy == SK_KV_ROLLING)
        g.ring_len = (W - n) + window_pass_frames(p);
    else
        g.ring_len = W - S + n;
    g.n_slots = g.sink_banks * S + 2 * g.comp_frames + g.ring_len;
    return g;
}

static sk_status validate(const sk_kv_params *p)
{
    SK_CHECK(p->policy >= 0 && p->policy < SK_KV_POLICY_COUNT_, SK_E_INVALID_ARG,
             "KV cache: unknown policy %d", (int)p->policy);
    SK_CHECK(p->rope >= SK_KV_ROPE_AUTO && p->rope <= SK_KV_ROPE_RELATIVE, SK_E_INVALID_ARG,
             "KV cache: unknown RoPE mode %d", (int)p->rope);
    SK_CHECK(p->window_frames >= 1 && p->window_frames <= 4096, SK_E_INVALID_ARG,
             "KV cache: window of %lld frames; expected 1..4096 (--kv-window)",
             (long long)p->window_frames);
    SK_CHECK(p->sink_frames >= 0, SK_E_INVALID_ARG, "KV cache: negative sink (--kv-sink %lld)",
             (long long)p->sink_frames);
    SK_CHECK(p->policy != SK_KV_FIFO || p->sink_frames == 0, SK_E_INVALID_ARG,
             "KV cache: policy fifo keeps no sink, but %lld sink frames were asked for; "
             "use --kv-policy sink or --kv-sink 0", (long long)p->sink_frames);
    SK_CHECK(p->policy == SK_KV_FIFO || p->sink_frames >= 1, SK_E_INVALID_ARG,
             "KV cache: policy %s needs a sink of at least one frame (--kv-sink)",
             sk_kv_policy_name(p->policy));
    SK_CHECK(p->max_chunk_frames >= 1, SK_E_INVALID_ARG, "KV cache: chunk of %lld frames",
             (long long)p->max_chunk_frames);
    SK_CHECK(p->sink_frames + p->max_chunk_frames <= p->window_frames, SK_E_INVALID_ARG,
             "KV cache: sink %lld + chunk %lld frames exceed the window of %lld frames; a chunk "
             "must fit in the window beside the sink (raise --kv-window or lower --chunk/--kv-sink)",
             (long long)p->sink_frames, (long long)p->max_chunk_frames,
             (long long)p->window_frames);
    SK_CHECK(p->tokens_per_frame >= 1 && p->num_layers >= 1 && p->num_heads >= 1 &&
                 p->head_dim >= 2 && p->head_dim % 2 == 0, SK_E_INVALID_ARG,
             "KV cache: empty geometry (S %lld, layers %lld, heads %lld, head_dim %lld)",
             (long long)p->tokens_per_frame, (long long)p->num_layers, (long long)p->num_heads,
             (long long)p->head_dim);
    if (p->policy == SK_KV_EMA)
        SK_CHECK(p->ema_alpha >= 0.0 && p->ema_alpha <= 1.0, SK_E_INVALID_ARG,
                 "KV cache: EMA momentum %g; expected 0..1 (--ema-alpha; Reward Forcing uses "
                 "0.999)", p->ema_alpha);
    if (p->policy == SK_KV_ROLLING) {
        SK_CHECK(p->roll_chunks >= 1 && p->roll_chunks <= 64, SK_E_INVALID_ARG,
                 "KV cache: rolling window of %lld chunks; expected 1..64 (one per denoising "
                 "step)", (long long)p->roll_chunks);
        SK_CHECK(p->sink_frames + window_pass_frames(p) <= p->window_frames, SK_E_INVALID_ARG,
                 "KV cache: rolling: sink %lld + a window of %lld chunks x %lld frames exceed "
                 "--kv-window %lld (Rolling Forcing: 3 + 5 x 3 <= 21)",
                 (long long)p->sink_frames, (long long)p->roll_chunks,
                 (long long)p->max_chunk_frames, (long long)p->window_frames);
        SK_CHECK(p->compress_frames == 0, SK_E_INVALID_ARG,
                 "KV cache: --kv-compress works with fifo, sink and deep-sink, not rolling");
    }
    if (p->compress_frames > 0) {
        const int64_t R = p->recent_frames > 0 ? p->recent_frames : 4;
        SK_CHECK(p->policy != SK_KV_EMA, SK_E_INVALID_ARG,
                 "KV cache: --kv-compress works with fifo, sink and deep-sink, not ema");
        SK_CHECK(R >= p->max_chunk_frames, SK_E_INVALID_ARG,
                 "KV cache: --kv-recent %lld is smaller than a chunk (%lld frames); the recent "
                 "frames include the chunk being generated", (long long)R,
                 (long long)p->max_chunk_frames);
        SK_CHECK(p->compress_frames >= p->sink_frames + R + 1 &&
                     p->compress_frames <= p->window_frames, SK_E_INVALID_ARG,
                 "KV cache: --kv-compress %lld frames must leave room for the sink (%lld), the "
                 "recent frames (%lld) and at least one frame of kept tokens, within the window "
                 "(%lld)", (long long)p->compress_frames, (long long)p->sink_frames, (long long)R,
                 (long long)p->window_frames);
    }
    return SK_OK;
}

/* ---- lifetime ---------------------------------------------------------- */

void sk_kv_cache_free(sk_kv_cache **pc)
{
    if (!pc || !*pc) return;
    sk_kv_cache *c = *pc;
    for (int64_t l = 0; l < c->p.num_layers; l++) {
        if (c->k) sk_tensor_free(&c->k[l]);
        if (c->v) sk_tensor_free(&c->v[l]);
        if (c->qbank) sk_tensor_free(&c->qbank[l]);
    }
    sk_tensor_free(&c->kscr);
    sk_tensor_free(&c->qs);
    sk_tensor_free(&c->qzero);
    sk_tensor_free(&c->qmean);
    sk_tensor_free(&c->score);
    sk_tensor_free(&c->ids);
    free(c->k); free(c->v); free(c->qbank); free(c->qbank_frame);
    free(c->slots); free(c->pend_slot); free(c->vis_slot); free(c->vis_pos); free(c->tmp);
    free(c->pre_slot); free(c->pre_pos); free(c->comp_done); free(c->lay_frame); free(c->lay_cat);
    free(c->h_score); free(c->h_cand); free(c->h_ids); free(c->h_order);
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
}

sk_status sk_kv_cache_init(sk_backend *be, const sk_kv_params *p, sk_kv_cache **out)
{
    SK_CHECK(be && p && out, SK_E_INVALID_ARG, "sk_kv_cache_init: NULL argument");
    *out = NULL;
    SK_TRY(validate(p));
    sk_kv_cache *c = calloc(1, sizeof *c);
    SK_CHECK(c, SK_E_OOM, "KV cache: out of host memory");
    c->p = *p;
    c->p.rope = sk_kv_rope_resolve(p->policy, p->rope);
    if (c->p.recent_frames <= 0) c->p.recent_frames = 4;
    if (!(c->p.rope_theta > 1.0)) c->p.rope_theta = 10000.0;
    if (p->policy != SK_KV_ROLLING) c->p.roll_chunks = 0;
    const kv_plan g = plan_of(&c->p);
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
enum { PASS_CHUNK = 1, PASS_RECOMPUTE = 2, PASS_WINDOW = 3 };

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

/* ---- PC: clean queries ---------------------------------------------------- */

/* Prepares the pending Q bank: frames [frame0 + n - Rc, frame0 + n); those
 * before frame0 are copied from the committed bank. */
static sk_status qbank_begin(sk_kv_cache *c, int64_t frame0, int64_t n)
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

static sk_status qbank_store(sk_kv_cache *c, int layer, const sk_tensor *q)
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
    if (st == SK_OK && c->comp_frames > 0) st = qbank_begin(c, frame0, n);
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
    SK_TRY(begin_common(c, frame0, n, window_pass_frames(&c->p), "rolling window"));
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

/* ---- rotation ------------------------------------------------------------- */

/* Rotates rows [r0, r0 + nf*S) of t temporally only: frame i by pos0 + i
 * (the spatial pairs see position 0: the identity). */
static sk_status rope_temporal(sk_kv_cache *c, sk_tensor *t, int64_t r0, int64_t nf, int64_t pos0)
{
    const int64_t S = c->p.tokens_per_frame;
    sk_tensor rows = sk_tensor_rows(t, r0, nf * S);
    int64_t sh[3] = {nf, S * t->shape[1], t->shape[2]};
    sk_tensor v;
    SK_TRY(sk_tensor_reshape(&rows, 3, sh, &v));
    return sk_op_rope3d(c->be, &v, nf, 1, 1, pos0, c->p.rope_theta);
}

/* Spatial-only rotation of every frame of x [n*S, NH, HD]. */
static sk_status rope_spatial(sk_kv_cache *c, sk_tensor *x, int64_t n, int64_t Hp, int64_t Wp)
{
    const int64_t S = c->p.tokens_per_frame;
    for (int64_t f = 0; f < n; f++) {
        sk_tensor r = sk_tensor_rows(x, f * S, S);
        SK_TRY(sk_op_rope3d(c->be, &r, 1, Hp, Wp, 0, c->p.rope_theta));
    }
    return SK_OK;
}

/* Sorts idx[0..n) by slot[idx] (insertion sort; n is a few dozen). */
static void sort_by_slot(int64_t *idx, const int64_t *slot, int64_t n)
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
static sk_status materialize(sk_kv_cache *c, int layer, const int64_t *slot, const int64_t *pos,
                             int64_t n, int64_t *idx)
{
    const int64_t S = c->p.tokens_per_frame;
    sort_by_slot(idx, slot, n);
    for (int64_t i = 0; i < n;) {
        int64_t j = i + 1;
        while (j < n && slot[idx[j]] == slot[idx[j - 1]] + 1 && pos[idx[j]] == pos[idx[j - 1]] + 1)
            j++;
        int64_t s0 = slot[idx[i]], nf = j - i;
        sk_tensor d = sk_tensor_rows(&c->kscr, s0 * S, nf * S);
        sk_tensor s = sk_tensor_rows(&c->k[layer], s0 * S, nf * S);
        SK_TRY(sk_tensor_copy(&d, &s));
        SK_TRY(rope_temporal(c, &c->kscr, s0 * S, nf, pos[idx[i]]));
        i = j;
    }
    return SK_OK;
}

/* Ranges over entries' slots in slot order, coalescing adjacent slots. */
static int slot_ranges(const sk_kv_cache *c, const sk_tensor *k, const sk_tensor *v,
                       const int64_t *slot, int64_t n, int64_t *idx, sk_kv_range *out, int cap)
{
    const int64_t S = c->p.tokens_per_frame;
    sort_by_slot(idx, slot, n);
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
    SK_TRY(rope_temporal(c, &c->qs, 0, n, c->pre_q_t0));
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
        SK_TRY(rope_temporal(c, &c->qs, nq, 1, pos));
        nq += S;
    }
    /* mean query per head: attention with a zero query weighs every row equally */
    sk_kv_range qr = {&c->qs, &c->qs, 0, nq};
    SK_TRY(sk_op_attention(be, &c->qmean, &c->qzero, &qr, 1, 1.0f, NULL));
    /* candidates rotated to their uncompressed positions, scored against the mean */
    const int64_t *cs = c->pre_slot + c->n_cand_first, *cp = c->pre_pos + c->n_cand_first;
    SK_TRY(materialize(c, layer, cs, cp, c->n_cand, c->tmp));
    int64_t wsh[2] = {1, D};
    sk_tensor w;
    SK_TRY(sk_tensor_reshape(&c->qmean, 2, wsh, &w));
    sort_by_slot(c->tmp, cs, c->n_cand);
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
    SK_TRY(rope_spatial(c, q, n, Hp, Wp));
    SK_TRY(rope_spatial(c, k, n, Hp, Wp));
    if (c->comp_frames > 0) {
        SK_TRY(qbank_store(c, layer, q));
        if (c->compress && !c->comp_done[layer]) SK_TRY(sk_kv_compress_layer(c, layer, q));
    }
    return rope_temporal(c, q, 0, n, c->q_t0);
}

sk_status sk_kv_write(sk_kv_cache *c, int layer, const sk_tensor *k, const sk_tensor *v)
{
    SK_CHECK(c->pending, SK_E_INTERNAL, "KV cache: write without a pending chunk");
    SK_CHECK(layer >= 0 && layer < c->p.num_layers, SK_E_INVALID_ARG,
             "KV cache: layer %d out of range 0..%lld", layer, (long long)c->p.num_layers - 1);
    const int64_t S = c->p.tokens_per_frame, n = c->pend_n;
    const int64_t want[3] = {n * S, c->p.num_heads, c->p.head_dim};
    char a[96], b[96];
    sk_tensor d = sk_tensor_desc(c->p.dtype, 3, want);
    SK_CHECK(sk_tensor_same_shape(k, &d) && sk_tensor_same_shape(v, &d) &&
                 k->dtype == c->p.dtype && v->dtype == c->p.dtype,
             SK_E_SHAPE, "KV cache: write of K %s (%s) into a chunk slot of %s (%s)",
             sk_shape_str(k, a, sizeof a), sk_dtype_name(k->dtype), sk_shape_str(&d, b, sizeof b),
             sk_dtype_name(c->p.dtype));
    /* copy runs of consecutive slots at once; -1 marks query-only frames */
    for (int64_t i = 0; i < n;) {
        if (c->pend_slot[i] < 0) { i++; continue; }
        int64_t j = i + 1;
        while (j < n && c->pend_slot[j] >= 0 && c->pend_slot[j] == c->pend_slot[j - 1] + 1) j++;
        sk_tensor dk = sk_tensor_rows(&c->k[layer], c->pend_slot[i] * S, (j - i) * S);
        sk_tensor dv = sk_tensor_rows(&c->v[layer], c->pend_slot[i] * S, (j - i) * S);
        sk_tensor sk_ = sk_tensor_rows(k, i * S, (j - i) * S);
        sk_tensor sv = sk_tensor_rows(v, i * S, (j - i) * S);
        SK_TRY(sk_tensor_copy(&dk, &sk_));
        SK_TRY(sk_tensor_copy(&dv, &sv));
        i = j;
    }
    return SK_OK;
}

int sk_kv_write_views(sk_kv_cache *c, int layer, sk_tensor *k, sk_tensor *v)
{
    if (!c->pending || layer < 0 || layer >= c->p.num_layers || c->pend_n < 1) return 0;
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
        SK_TRY(materialize(c, layer, c->vis_slot, c->vis_pos, c->n_vis, c->tmp));
        nr = slot_ranges(c, &c->kscr, &c->v[layer], c->vis_slot, c->n_vis, c->tmp, out, cap);
    } else {
        nr = slot_ranges(c, &c->k[layer], &c->v[layer], c->vis_slot, c->n_vis, c->tmp, out, cap);
    }
    SK_CHECK(nr <= cap, SK_E_INTERNAL, "KV cache: %d ranges, room for %d", nr, cap);
    *n = nr;
    return SK_OK;
}

int sk_kv_visible(const sk_kv_cache *c, int layer, sk_kv_range *out, int cap)
{
    return slot_ranges(c, &c->k[layer], &c->v[layer], c->vis_slot, c->n_vis, c->tmp, out, cap);
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

size_t sk_kv_bytes(const sk_kv_cache *c)
{
    size_t b = 0;
    for (int64_t l = 0; l < c->p.num_layers; l++) {
        b += sk_tensor_nbytes(&c->k[l]) + sk_tensor_nbytes(&c->v[l]);
        if (c->qbank) b += sk_tensor_nbytes(&c->qbank[l]);
    }
    b += sk_tensor_nbytes(&c->kscr) + sk_tensor_nbytes(&c->qs) + sk_tensor_nbytes(&c->qzero) +
         sk_tensor_nbytes(&c->qmean) + sk_tensor_nbytes(&c->score) + sk_tensor_nbytes(&c->ids);
    return b;
}

int64_t sk_kv_pool_frames(const sk_kv_params *p0)
{
    sk_kv_params p = *p0;
    if (p.recent_frames <= 0) p.recent_frames = 4;
    return plan_of(&p).n_slots;
}

void sk_kv_describe(const sk_kv_params *p0, size_t elem_bytes, char *buf, size_t cap)
{
    sk_kv_params p = *p0;
    p.rope = sk_kv_rope_resolve(p.policy, p.rope);
    if (p.recent_frames <= 0) p.recent_frames = 4;
    const kv_plan g = plan_of(&p);
    const int64_t W = p.window_frames, S = p.sink_frames, n = p.max_chunk_frames;
    const double frame_b = (double)p.tokens_per_frame * (double)(p.num_heads * p.head_dim) *
                           (double)elem_bytes * 2.0;
    char sees[512];
    switch (p.policy) {
    case SK_KV_FIFO:
        snprintf(sees, sizeof sees, "the newest %lld frames (its own %lld included)",
                 (long long)W, (long long)n);
        break;
    case SK_KV_SINK:
        snprintf(sees, sizeof sees, "sink frames 0..%lld + the newest %lld frames (its own "
                 "%lld included)", (long long)S - 1, (long long)(W - S), (long long)n);
        break;
    case SK_KV_EMA:
        snprintf(sees, sizeof sees, "a %lld-frame EMA sink (alpha %g: sink = alpha*sink + "
                 "(1-alpha)*evicted frame) + the newest %lld frames (its own %lld included)",
                 (long long)S, p.ema_alpha, (long long)(W - S), (long long)n);
        break;
    case SK_KV_DEEP_SINK:
        snprintf(sees, sizeof sees, "a %lld-frame deep sink re-timed to end right before the "
                 "newest %lld frames (its own %lld included)", (long long)S, (long long)(W - S),
                 (long long)n);
        break;
    case SK_KV_ROLLING:
        snprintf(sees, sizeof sees, "denoising: a %lld-chunk window (%lld frames) + the newest "
                 "%lld clean frames + the %lld-frame sink placed before them; commit pass: the "
                 "newest %lld clean frames + the leaving chunk", (long long)p.roll_chunks,
                 (long long)(p.roll_chunks * n), (long long)(W - S - p.roll_chunks * n),
                 (long long)S, (long long)(W - n));
        break;
    default:
        snprintf(sees, sizeof sees, "?");
    }
    char pc[256] = "";
    if (p.compress_frames > 0)
        snprintf(pc, sizeof pc, "; participative compression to %lld frames when the window "
                 "overflows (sink %lld + %lld frames of top tokens + %lld recent frames incl. "
                 "the chunk)", (long long)p.compress_frames, (long long)S,
                 (long long)g.comp_frames, (long long)p.recent_frames);
    snprintf(buf, cap, "policy %s, %s RoPE (%s), window %lld frames, sink %lld, chunk %lld; "
             "a query sees %s%s; %lld frame slots = %.1f MB of K/V per layer%s",
             sk_kv_policy_name(p.policy), sk_kv_rope_name(p.rope),
             g.raw ? "keys stored temporally raw, rotated each pass" : "keys stored rotated once",
             (long long)W, (long long)S, (long long)n, sees, pc, (long long)g.n_slots,
             frame_b * (double)g.n_slots / 1e6,
             g.raw ? " (+ one layer of rotated-key scratch)" : "");
}
