/* kv_cache.c - frame-slot KV cache with fifo / sink policies (see kv_cache.h). */
#include "kv_cache.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"

/* fifo and sink share one rule: frames [0, sink) plus the newest
 * (window - sink) frames >= sink. For fifo, sink = 0. */
static int64_t keep_sink_window(const sk_kv_cache *c, int64_t total, int64_t *frames, int64_t cap)
{
    int64_t sink = c->p.sink_frames, n = 0;
    for (int64_t f = 0; f < sink && f < total && n < cap; f++) frames[n++] = f;
    int64_t lo = total - (c->p.window_frames - sink);
    if (lo < sink) lo = sink;
    for (int64_t f = lo; f < total && n < cap; f++) frames[n++] = f;
    return n;
}

static const sk_kv_policy_ops k_policies[SK_KV_POLICY_COUNT_] = {
    [SK_KV_FIFO] = {"fifo", keep_sink_window},
    [SK_KV_SINK] = {"sink", keep_sink_window},
};

const char *sk_kv_policy_name(sk_kv_policy p)
{
    return (p >= 0 && p < SK_KV_POLICY_COUNT_) ? k_policies[p].name : "?";
}

sk_status sk_kv_policy_from_name(const char *s, sk_kv_policy *out)
{
    for (int i = 0; i < SK_KV_POLICY_COUNT_; i++)
        if (s && strcmp(s, k_policies[i].name) == 0) { *out = (sk_kv_policy)i; return SK_OK; }
    return SK_ERR(SK_E_INVALID_ARG, "unknown KV-cache policy '%s'; expected fifo or sink",
                  s ? s : "(null)");
}

static sk_status validate(const sk_kv_params *p)
{
    SK_CHECK(p->policy >= 0 && p->policy < SK_KV_POLICY_COUNT_, SK_E_INVALID_ARG,
             "KV cache: unknown policy %d", (int)p->policy);
    SK_CHECK(p->window_frames >= 1 && p->window_frames <= 4096, SK_E_INVALID_ARG,
             "KV cache: window of %lld frames; expected 1..4096 (--kv-window)",
             (long long)p->window_frames);
    SK_CHECK(p->sink_frames >= 0, SK_E_INVALID_ARG, "KV cache: negative sink (--kv-sink %lld)",
             (long long)p->sink_frames);
    SK_CHECK(p->policy != SK_KV_FIFO || p->sink_frames == 0, SK_E_INVALID_ARG,
             "KV cache: policy fifo keeps no sink, but %lld sink frames were asked for; "
             "use --kv-policy sink or --kv-sink 0", (long long)p->sink_frames);
    SK_CHECK(p->max_chunk_frames >= 1, SK_E_INVALID_ARG, "KV cache: chunk of %lld frames",
             (long long)p->max_chunk_frames);
    SK_CHECK(p->sink_frames + p->max_chunk_frames <= p->window_frames, SK_E_INVALID_ARG,
             "KV cache: sink %lld + chunk %lld frames exceed the window of %lld frames; a chunk "
             "must fit in the window beside the sink (raise --kv-window or lower --chunk/--kv-sink)",
             (long long)p->sink_frames, (long long)p->max_chunk_frames,
             (long long)p->window_frames);
    SK_CHECK(p->tokens_per_frame >= 1 && p->num_layers >= 1 && p->num_heads >= 1 &&
                 p->head_dim >= 1, SK_E_INVALID_ARG,
             "KV cache: empty geometry (S %lld, layers %lld, heads %lld, head_dim %lld)",
             (long long)p->tokens_per_frame, (long long)p->num_layers, (long long)p->num_heads,
             (long long)p->head_dim);
    return SK_OK;
}

void sk_kv_cache_free(sk_kv_cache **pc)
{
    if (!pc || !*pc) return;
    sk_kv_cache *c = *pc;
    if (c->k)
        for (int64_t l = 0; l < c->p.num_layers; l++) {
            sk_tensor_free(&c->k[l]);
            sk_tensor_free(&c->v[l]);
        }
    free(c->k); free(c->v); free(c->slots); free(c->pend_slot); free(c->vis_slot); free(c->tmp);
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
    c->next_frame = 0;
    c->pending = 0;
    c->n_vis = 0;
}

sk_status sk_kv_cache_init(sk_backend *be, const sk_kv_params *p, sk_kv_cache **out)
{
    SK_CHECK(be && p && out, SK_E_INVALID_ARG, "sk_kv_cache_init: NULL argument");
    *out = NULL;
    SK_TRY(validate(p));
    sk_kv_cache *c = calloc(1, sizeof *c);
    SK_CHECK(c, SK_E_OOM, "KV cache: out of host memory");
    c->p = *p;
    c->ops = &k_policies[p->policy];
    c->be = be;
    c->n_slots = p->window_frames + p->max_chunk_frames;
    c->k = calloc((size_t)p->num_layers, sizeof *c->k);
    c->v = calloc((size_t)p->num_layers, sizeof *c->v);
    c->slots = calloc((size_t)c->n_slots, sizeof *c->slots);
    c->pend_slot = calloc((size_t)c->n_slots, sizeof *c->pend_slot);
    c->vis_slot = calloc((size_t)c->n_slots, sizeof *c->vis_slot);
    c->tmp = calloc((size_t)c->n_slots, sizeof *c->tmp);
    sk_status st = SK_OK;
    if (!c->k || !c->v || !c->slots || !c->pend_slot || !c->vis_slot || !c->tmp) {
        st = SK_ERR(SK_E_OOM, "KV cache: out of host memory");
        goto fail;
    }
    int64_t shape[3] = {c->n_slots * p->tokens_per_frame, p->num_heads, p->head_dim};
    for (int64_t l = 0; l < p->num_layers; l++) {
        SK_TRY_GOTO(st, sk_tensor_alloc(be, p->dtype, 3, shape, &c->k[l]), fail);
        SK_TRY_GOTO(st, sk_tensor_alloc(be, p->dtype, 3, shape, &c->v[l]), fail);
    }
    sk_kv_cache_reset(c);
    SK_LOGI("KV cache: policy %s, window %lld frames (sink %lld), %lld slots x %lld tokens, "
            "%lld layers, %.1f MB", c->ops->name, (long long)p->window_frames,
            (long long)p->sink_frames, (long long)c->n_slots, (long long)p->tokens_per_frame,
            (long long)p->num_layers, (double)sk_kv_bytes(c) / 1e6);
    *out = c;
    return SK_OK;
fail:
    sk_kv_cache_free(&c);
    return st;
}

static int64_t slot_of(const sk_kv_cache *c, int64_t frame)
{
    for (int64_t s = 0; s < c->n_slots; s++)
        if (c->slots[s].kind != SK_KV_SLOT_FREE && c->slots[s].abs_frame == frame) return s;
    return -1;
}

sk_status sk_kv_begin_chunk(sk_kv_cache *c, int64_t frame0, int64_t n)
{
    SK_CHECK(!c->pending, SK_E_INTERNAL,
             "KV cache: a chunk at frame %lld is still pending (commit or abort it first)",
             (long long)c->pend_frame0);
    SK_CHECK(frame0 == c->next_frame, SK_E_INVALID_ARG,
             "KV cache: new chunk starts at frame %lld; expected the next frame %lld",
             (long long)frame0, (long long)c->next_frame);
    SK_CHECK(n >= 1 && n <= c->p.max_chunk_frames, SK_E_INVALID_ARG,
             "KV cache: chunk of %lld frames; expected 1..%lld", (long long)n,
             (long long)c->p.max_chunk_frames);
    /* free slots for the new frames: prefer one contiguous run (one copy per layer) */
    int64_t got = 0;
    for (int64_t s = 0; s + n <= c->n_slots && got == 0; s++) {
        int64_t r = 0;
        while (r < n && c->slots[s + r].kind == SK_KV_SLOT_FREE) r++;
        if (r == n)
            for (int64_t i = 0; i < n; i++) c->pend_slot[got++] = s + i;
    }
    for (int64_t s = 0; s < c->n_slots && got < n; s++)
        if (c->slots[s].kind == SK_KV_SLOT_FREE) c->pend_slot[got++] = s;
    SK_CHECK(got == n, SK_E_INTERNAL, "KV cache: only %lld free slots for a chunk of %lld frames",
             (long long)got, (long long)n);
    /* visible set: committed frames the policy keeps, then the new chunk */
    int64_t nk = c->ops->keep(c, frame0 + n, c->tmp, c->n_slots);
    int64_t nv = 0;
    for (int64_t i = 0; i < nk; i++) {
        int64_t f = c->tmp[i];
        if (f >= frame0) break;
        int64_t s = slot_of(c, f);
        SK_CHECK(s >= 0, SK_E_INTERNAL, "KV cache: frame %lld should be cached but is not",
                 (long long)f);
        c->vis_slot[nv++] = s;
    }
    for (int64_t i = 0; i < n; i++) c->vis_slot[nv++] = c->pend_slot[i];
    c->n_vis = nv;
    c->pend_frame0 = frame0;
    c->pend_n = n;
    c->pending = 1;
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
    for (int64_t i = 0; i < n; i++) {
        int64_t s = slot_of(c, frame0 + i);
        if (s >= 0 && protect_sink && c->slots[s].kind == SK_KV_SLOT_SINK) s = -1;
        c->pend_slot[i] = s;
    }
    int64_t nk = c->ops->keep(c, c->next_frame, c->tmp, c->n_slots);
    for (int64_t i = 0; i < nk; i++) {
        int64_t s = slot_of(c, c->tmp[i]);
        SK_CHECK(s >= 0, SK_E_INTERNAL, "KV cache: frame %lld should be cached but is not",
                 (long long)c->tmp[i]);
        c->vis_slot[i] = s;
    }
    c->n_vis = nk;
    c->pend_frame0 = frame0;
    c->pend_n = n;
    c->pending = 2;
    return SK_OK;
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

int sk_kv_visible(const sk_kv_cache *c, int layer, sk_kv_range *out, int cap)
{
    const int64_t S = c->p.tokens_per_frame;
    int n = 0;
    for (int64_t i = 0; i < c->n_vis;) {
        int64_t j = i + 1;
        while (j < c->n_vis && c->vis_slot[j] == c->vis_slot[j - 1] + 1) j++;
        if (n < cap) {
            out[n].k = &c->k[layer];
            out[n].v = &c->v[layer];
            out[n].start = c->vis_slot[i] * S;
            out[n].len = (j - i) * S;
        }
        n++;
        i = j;
    }
    return n;
}

int64_t sk_kv_visible_frames(const sk_kv_cache *c, int64_t *frames, int64_t cap)
{
    int64_t n = 0;
    for (int64_t i = 0; i < c->n_vis && n < cap; i++) {
        int64_t s = c->vis_slot[i];
        int64_t f = -1;
        for (int64_t p = 0; p < c->pend_n && c->pending == 1; p++)
            if (c->pend_slot[p] == s) f = c->pend_frame0 + p;
        frames[n++] = f >= 0 ? f : c->slots[s].abs_frame;
    }
    return n;
}

void sk_kv_commit(sk_kv_cache *c)
{
    if (!c->pending) return;
    if (c->pending == 2) { /* a recompute moves nothing */
        c->pending = 0;
        c->n_vis = 0;
        return;
    }
    for (int64_t i = 0; i < c->pend_n; i++) {
        sk_kv_slot *s = &c->slots[c->pend_slot[i]];
        s->abs_frame = c->pend_frame0 + i;
        s->rope_t = s->abs_frame;
        s->kind = s->abs_frame < c->p.sink_frames ? SK_KV_SLOT_SINK : SK_KV_SLOT_LOCAL;
    }
    c->next_frame = c->pend_frame0 + c->pend_n;
    c->pending = 0;
    /* evict every frame the policy no longer keeps */
    int64_t nk = c->ops->keep(c, c->next_frame, c->tmp, c->n_slots);
    for (int64_t s = 0; s < c->n_slots; s++) {
        if (c->slots[s].kind == SK_KV_SLOT_FREE) continue;
        int keep = 0;
        for (int64_t i = 0; i < nk && !keep; i++) keep = c->tmp[i] == c->slots[s].abs_frame;
        if (!keep) {
            c->slots[s].kind = SK_KV_SLOT_FREE;
            c->slots[s].abs_frame = -1;
        }
    }
    c->n_vis = 0;
}

void sk_kv_abort(sk_kv_cache *c)
{
    c->pending = 0;
    c->pend_n = 0;
    c->n_vis = 0;
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
    for (int64_t l = 0; l < c->p.num_layers; l++)
        b += sk_tensor_nbytes(&c->k[l]) + sk_tensor_nbytes(&c->v[l]);
    return b;
}
