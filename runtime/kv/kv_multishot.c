/* kv_multishot.c - LongLive 2.0's multi-shot attention sink
 * (spec-longlive2.md §2; upstream wan_5b/modules/causal_model.py
 * CausalWanSelfAttention.forward, pipeline/causal_diffusion_inference.py
 * _pin_current_chunk / _zero_kv_data).
 *
 * Upstream keeps a 32-frame rolling buffer of post-RoPE keys and shifts it:
 * the global sink (chunk 0) is never moved, a pinned shot-sink chunk floats
 * left with the rolls until it lands right after the global sink and is then
 * protected too. Because keys carry absolute RoPE, only the set of cached
 * chunks matters, and that set follows one rule (checked against a literal
 * transcription of the upstream buffer in tests/reference/
 * make_longlive2_fixtures.py): a pass of chunk k attends to
 *   chunk 0 (global sink) + the pinned chunk (if any) + chunks k, k-1, ...
 *   (newest first, skipping the ones already in, not before the history start)
 *   until window/chunk chunks are in.
 * A cut chunk is pinned only after its clean pass, so its own passes still see
 * the previous shot's sink. Keys are written once per pass at their absolute
 * frame + shot_rope_offset * shot (what upstream bakes in), so nothing is
 * re-rotated or moved: each committed chunk keeps its slot group until the
 * next chunk would no longer see it.
 *
 * Slots: the global sink's frames at 0..G-1, then window/chunk - 1 groups of
 * chunk slots (one spare for the chunk in flight). G = the chunk size.
 */
#include "runtime/kv/kv_multishot.h"

#include <stdlib.h>
#include <string.h>

#include "runtime/core/log.h"

static int64_t chunks_in_window(const sk_kv_params *p)
{
    return p->window_frames / p->max_chunk_frames;
}

sk_status sk_kv_ms_validate(const sk_kv_params *p)
{
    const int64_t n = p->max_chunk_frames;
    SK_CHECK(p->sink_frames == n, SK_E_INVALID_ARG,
             "KV cache: multishot: the global sink is the first chunk, so --kv-sink (%lld) must "
             "equal --chunk (%lld)", (long long)p->sink_frames, (long long)n);
    SK_CHECK(p->window_frames % n == 0 && p->window_frames / n >= 3, SK_E_INVALID_ARG,
             "KV cache: multishot: --kv-window %lld must be a multiple of --chunk %lld and hold "
             "at least 3 chunks (global sink, shot sink, the chunk itself; LongLive 2.0: 32 = 4 "
             "chunks of 8)", (long long)p->window_frames, (long long)n);
    SK_CHECK(p->window_frames / n <= 64, SK_E_INVALID_ARG,
             "KV cache: multishot: a window of %lld chunks; at most 64 (--kv-window / --chunk)",
             (long long)(p->window_frames / n));
    SK_CHECK(p->rope != SK_KV_ROPE_RELATIVE, SK_E_INVALID_ARG,
             "KV cache: multishot stores keys at absolute positions (--rope absolute or auto)");
    SK_CHECK(p->compress_frames == 0, SK_E_INVALID_ARG,
             "KV cache: --kv-compress does not work with multishot");
    SK_CHECK(p->shot_rope_offset >= 0 && p->shot_rope_offset <= (1 << 20), SK_E_INVALID_ARG,
             "KV cache: --shot-rope-offset %lld; expected 0..2^20 latent frames",
             (long long)p->shot_rope_offset);
    return SK_OK;
}

int64_t sk_kv_ms_pool_frames(const sk_kv_params *p)
{
    return p->sink_frames + (chunks_in_window(p) - 1) * p->max_chunk_frames;
}

sk_status sk_kv_ms_init(sk_kv_cache *c)
{
    c->ms_groups = chunks_in_window(&c->p) - 1;
    c->ms_group = malloc((size_t)c->ms_groups * sizeof *c->ms_group);
    SK_CHECK(c->ms_group, SK_E_OOM, "KV cache: out of host memory");
    sk_kv_ms_reset(c);
    return SK_OK;
}

void sk_kv_ms_free(sk_kv_cache *c)
{
    free(c->ms_group);
    c->ms_group = NULL;
}

void sk_kv_ms_reset(sk_kv_cache *c)
{
    if (!c->ms_group) return;
    for (int64_t g = 0; g < c->ms_groups; g++) c->ms_group[g] = -1;
    c->ms_pend_group = -1;
    c->ms_shot = 0;
    c->ms_pin = -1;
    c->ms_hist_lo = 1;
    c->ms_cut_next = 0;
    c->ms_clean = 0;
}

/* The chunks a pass of chunk k sees, with pin / history start given. */
static int chunks_rule(const sk_kv_cache *c, int64_t k, int64_t pin, int64_t hist_lo,
                       int64_t *out, int cap)
{
    const int64_t K = chunks_in_window(&c->p);
    int64_t set[64];
    int n = 0;
    if (k == 0) {
        set[n++] = 0;
    } else {
        set[n++] = 0;
        if (pin > 0 && pin < k) set[n++] = pin;
        set[n++] = k;
        for (int64_t j = k - 1; j >= (hist_lo > 1 ? hist_lo : 1) && n < K && n < 64; j--) {
            if (j == pin) continue;
            set[n++] = j;
        }
    }
    /* ascending */
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && set[j - 1] > set[j]; j--) {
            int64_t t = set[j];
            set[j] = set[j - 1];
            set[j - 1] = t;
        }
    for (int i = 0; i < n && i < cap; i++) out[i] = set[i];
    return n;
}

int sk_kv_multishot_chunks(const sk_kv_cache *c, int64_t k, int64_t *out, int cap)
{
    return chunks_rule(c, k, c->ms_pin, c->ms_hist_lo, out, cap);
}

/* Slot of frame i of chunk j (committed or pending), or -1. */
static int64_t chunk_slot(const sk_kv_cache *c, int64_t j, int64_t i)
{
    const int64_t n = c->p.max_chunk_frames;
    if (j == 0) return i;
    if (c->pending && c->pend_frame0 == j * n) return c->pend_slot[i];
    for (int64_t g = 0; g < c->ms_groups; g++)
        if (c->ms_group[g] == j) return c->p.sink_frames + g * n + i;
    return -1;
}

/* vis_* from a chunk list; q_t0 is the pending chunk's first position. */
static sk_status set_visible(sk_kv_cache *c, const int64_t *chunks, int nc, int64_t k,
                             int64_t nk)
{
    const int64_t n = c->p.max_chunk_frames;
    int64_t nv = 0;
    for (int a = 0; a < nc; a++) {
        const int64_t j = chunks[a];
        const int64_t frames = j == k ? nk : (j + 1) * n <= c->next_frame ? n : c->next_frame - j * n;
        for (int64_t i = 0; i < frames; i++) {
            int64_t s = j == k ? c->pend_slot[i] : chunk_slot(c, j, i);
            SK_CHECK(s >= 0 && nv < c->n_slots, SK_E_INTERNAL,
                     "KV cache: multishot: chunk %lld frame %lld is not cached", (long long)j,
                     (long long)i);
            c->vis_slot[nv] = s;
            c->vis_pos[nv] = j == k ? c->q_t0 + i : c->slots[s].rope_t;
            nv++;
        }
    }
    c->n_vis = nv;
    return SK_OK;
}

sk_status sk_kv_ms_begin_chunk(sk_kv_cache *c, int64_t frame0, int64_t n)
{
    const int64_t cn = c->p.max_chunk_frames;
    SK_CHECK(frame0 == c->next_frame, SK_E_INVALID_ARG,
             "KV cache: new chunk starts at frame %lld; expected the next frame %lld",
             (long long)frame0, (long long)c->next_frame);
    SK_CHECK(frame0 % cn == 0 && n >= 1 && n <= cn, SK_E_INVALID_ARG,
             "KV cache: multishot works in whole chunks of %lld frames (chunk at frame %lld of "
             "%lld frames)", (long long)cn, (long long)frame0, (long long)n);
    const int64_t k = frame0 / cn;
    const int cut = c->ms_cut_next && k > 0;
    const int64_t shot = c->ms_shot + (cut ? 1 : 0);
    c->q_t0 = frame0 + c->p.shot_rope_offset * shot;
    c->ms_pend_group = -1;
    if (k == 0) {
        for (int64_t i = 0; i < n; i++) c->pend_slot[i] = i;
    } else {
        for (int64_t g = 0; g < c->ms_groups && c->ms_pend_group < 0; g++)
            if (c->ms_group[g] < 0) c->ms_pend_group = g;
        SK_CHECK(c->ms_pend_group >= 0, SK_E_INTERNAL,
                 "KV cache: multishot: no free slot group for chunk %lld", (long long)k);
        for (int64_t i = 0; i < n; i++)
            c->pend_slot[i] = c->p.sink_frames + c->ms_pend_group * cn + i;
    }
    c->pend_frame0 = frame0;
    c->pend_n = n;
    c->pending = PASS_CHUNK;
    c->ms_clean = 0;
    int64_t ch[64];
    int nc = chunks_rule(c, k, c->ms_pin, c->ms_hist_lo, ch, 64);
    sk_status st = set_visible(c, ch, nc, k, n);
    if (st != SK_OK) sk_kv_ms_abort(c);
    return st;
}

sk_status sk_kv_multishot_cut(sk_kv_cache *c)
{
    SK_CHECK(c && c->p.policy == SK_KV_MULTISHOT, SK_E_INVALID_ARG,
             "KV cache: a shot cut needs --kv-policy multishot");
    SK_CHECK(!c->pending, SK_E_INTERNAL, "KV cache: a shot cut while a chunk is in flight");
    c->ms_cut_next = 1;
    return SK_OK;
}

sk_status sk_kv_multishot_clean_recache(sk_kv_cache *c)
{
    SK_CHECK(c && c->p.policy == SK_KV_MULTISHOT && c->pending == 1, SK_E_INTERNAL,
             "KV cache: a shot clean recache needs a pending multishot chunk");
    const int64_t k = c->pend_frame0 / c->p.max_chunk_frames;
    if (!(c->ms_cut_next && k > 0)) return SK_OK; /* not a cut: nothing changes */
    int64_t ch[64];
    int nc = chunks_rule(c, k, -1, k, ch, 64);
    SK_TRY(set_visible(c, ch, nc, k, c->pend_n));
    c->ms_clean = 1;
    return SK_OK;
}

void sk_kv_ms_commit(sk_kv_cache *c)
{
    const int64_t cn = c->p.max_chunk_frames, frame0 = c->pend_frame0, k = frame0 / cn;
    for (int64_t i = 0; i < c->pend_n; i++) {
        sk_kv_slot *s = &c->slots[c->pend_slot[i]];
        s->abs_frame = frame0 + i;
        s->kind = k == 0 ? SK_KV_SLOT_SINK : SK_KV_SLOT_LOCAL;
        s->rope_t = c->q_t0 + i;
    }
    if (c->ms_pend_group >= 0) c->ms_group[c->ms_pend_group] = k;
    c->next_frame = frame0 + c->pend_n;
    if (c->ms_cut_next && k > 0) {
        c->ms_shot++;
        c->ms_pin = k;
        if (c->ms_clean) c->ms_hist_lo = k;
    }
    if (k > 0) c->ms_cut_next = 0;
    /* keep exactly what the next chunk will see */
    int64_t ch[64];
    int nc = chunks_rule(c, k + 1, c->ms_pin, c->ms_hist_lo, ch, 64);
    for (int64_t g = 0; g < c->ms_groups; g++) {
        if (c->ms_group[g] < 0) continue;
        int keep = 0;
        for (int a = 0; a < nc; a++) keep |= ch[a] == c->ms_group[g];
        if (!keep) {
            for (int64_t i = 0; i < cn; i++) {
                sk_kv_slot *s = &c->slots[c->p.sink_frames + g * cn + i];
                s->kind = SK_KV_SLOT_FREE;
                s->abs_frame = -1;
            }
            c->ms_group[g] = -1;
        }
    }
    c->pending = 0;
    c->n_vis = 0;
    c->ms_clean = 0;
    c->ms_pend_group = -1;
}

void sk_kv_ms_abort(sk_kv_cache *c)
{
    c->pending = 0;
    c->pend_n = 0;
    c->n_vis = 0;
    c->ms_clean = 0;
    c->ms_pend_group = -1;
}
