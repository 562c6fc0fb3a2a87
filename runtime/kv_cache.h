/* kv_cache.h - the self-attention KV cache of a causal DiT stream.
 *
 * Semantics are those of Self-Forcing / LongLive 1.0 (spec-wan-causal-dit.md
 * §5.5): a chunk's K/V are written before attention, every forward of the
 * same chunk (4 denoising passes + the clean pass) overwrites the same slot,
 * and once more than `window_frames` frames exist the oldest frames right
 * after the sink are evicted. A query sees
 *     frames [0, sink_frames)  U  the newest (window_frames - sink_frames)
 *     frames >= sink_frames, the current chunk included.
 * Keys are stored post-RoPE at absolute positions; nothing is re-rotated.
 *
 * Layout (spec-kv-sink-policies.md §9): each layer owns K and V pools of
 * n_slots frame slots, [n_slots * S, NH, HD], addressed by frame slot with
 * per-slot metadata (absolute frame, kind, rope position). Slots need not be
 * in order: the visible set goes to attention as a list of slot ranges
 * (sk_kv_range), so nothing is ever shifted in memory. The pool has
 * window_frames + max_chunk_frames slots: a new chunk is written into free
 * slots and the evicted frames are released only at commit. That makes a
 * chunk transactional: sk_kv_abort() after any failure leaves the cache
 * exactly as it was (indices and data), at the price of one chunk of memory.
 *
 * Per chunk:  sk_kv_begin_chunk -> per forward, per layer: sk_kv_write then
 * sk_kv_visible -> sk_kv_commit (after the clean pass) or sk_kv_abort.
 *
 * Policies plug in through sk_kv_policy_ops: `fifo` (Self-Forcing: no sink)
 * and `sink` (LongLive 1.0: the first sink_frames frames are kept; the window
 * counts the sink). Later policies (EMA sink, deep sink, relative RoPE) add
 * ops that edit slot metadata and choose the visible set.
 */
#ifndef SK_KV_CACHE_H
#define SK_KV_CACHE_H

#include <stdint.h>

#include "backend.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { SK_KV_FIFO = 0, SK_KV_SINK, SK_KV_POLICY_COUNT_ } sk_kv_policy;

/* Parses "fifo" / "sink"; SK_E_INVALID_ARG naming the choices otherwise. */
sk_status sk_kv_policy_from_name(const char *s, sk_kv_policy *out);
const char *sk_kv_policy_name(sk_kv_policy p);

typedef struct {
    sk_kv_policy policy;
    int64_t window_frames;    /* frames a query sees, sink and current chunk included */
    int64_t sink_frames;      /* kept first frames (policy sink); must be 0 for fifo */
    int64_t max_chunk_frames; /* largest chunk that will be written */
    int64_t tokens_per_frame; /* S = Hp * Wp */
    int64_t num_layers, num_heads, head_dim;
    sk_dtype dtype;           /* storage dtype (the backend's act dtype) */
} sk_kv_params;

typedef enum { SK_KV_SLOT_FREE = 0, SK_KV_SLOT_SINK, SK_KV_SLOT_LOCAL, SK_KV_SLOT_PENDING } sk_kv_slot_kind;

typedef struct {
    int64_t abs_frame;   /* source latent frame; -1 when free */
    sk_kv_slot_kind kind;
    int64_t rope_t;      /* temporal RoPE position baked into K (absolute frame here) */
} sk_kv_slot;

typedef struct sk_kv_cache sk_kv_cache;

/* Policy hooks (spec-kv-sink-policies.md §9). All are pure metadata. */
typedef struct {
    const char *name;
    /* Fills frames[] (ascending) with the absolute frames that stay visible
     * when `pending` new frames starting at next_frame are added; returns
     * the count. */
    int64_t (*keep)(const sk_kv_cache *c, int64_t total_frames, int64_t *frames, int64_t cap);
} sk_kv_policy_ops;

struct sk_kv_cache {
    sk_kv_params p;
    const sk_kv_policy_ops *ops;
    sk_backend *be;
    int64_t n_slots;
    sk_tensor *k, *v;        /* [num_layers] pools [n_slots * S, NH, HD] */
    sk_kv_slot *slots;       /* [n_slots] committed metadata */
    int64_t next_frame;      /* frames committed so far (global_end / S) */
    /* the chunk in flight */
    int pending;             /* 0 none, 1 new chunk, 2 recompute */
    int64_t pend_frame0, pend_n;
    int64_t *pend_slot;      /* [n_slots]; -1: query-only frame (not written) */
    int64_t *vis_slot;       /* [n_slots] visible slots, in attention order */
    int64_t n_vis;
    int64_t *tmp;            /* [n_slots] scratch for the policy */
};

/* Validates the params (window > sink, chunk + sink <= window, ...) and
 * allocates the pools on be (once; nothing is allocated later). */
sk_status sk_kv_cache_init(sk_backend *be, const sk_kv_params *p, sk_kv_cache **out);
void sk_kv_cache_free(sk_kv_cache **c);
/* Forgets everything (new video); keeps the memory. */
void sk_kv_cache_reset(sk_kv_cache *c);

/* Starts a new chunk of n frames at frame0 (must equal next_frame): picks
 * free slots and computes the visible set. Changes no committed state. */
sk_status sk_kv_begin_chunk(sk_kv_cache *c, int64_t frame0, int64_t n);
/* Starts a recompute of frames [frame0, frame0 + n) ending at or before next_frame
 * (LongLive KV-recache after a prompt switch, spec §5.6): the frames are
 * re-encoded in place, without moving any index. Frames the cache no longer
 * keeps are query-only (their K/V are dropped), and with protect_sink the
 * sink frames keep their old K/V too (LongLive does so when frame0 > 0).
 * The visible set is everything the cache keeps. A recompute overwrites
 * committed slots, so unlike a new chunk it cannot be undone. */
sk_status sk_kv_begin_recompute(sk_kv_cache *c, int64_t frame0, int64_t n, int protect_sink);
/* Writes the pending chunk's K and V ([n*S, NH, HD]) of one layer into its
 * slots (overwriting any earlier pass of the same chunk). */
sk_status sk_kv_write(sk_kv_cache *c, int layer, const sk_tensor *k, const sk_tensor *v);
/* The ranges a query of the pending chunk attends to in `layer`: returns
 * the count (<= n_slots), coalescing adjacent slots. */
int sk_kv_visible(const sk_kv_cache *c, int layer, sk_kv_range *out, int cap);
/* Absolute frames of the visible set, in attention order; returns the count. */
int64_t sk_kv_visible_frames(const sk_kv_cache *c, int64_t *frames, int64_t cap);
/* Makes the pending chunk permanent: advances next_frame, evicts. */
void sk_kv_commit(sk_kv_cache *c);
/* Drops the pending chunk: the cache is as before sk_kv_begin_chunk. */
void sk_kv_abort(sk_kv_cache *c);

/* Spec §5.5 index equivalents in tokens, for logs and tests:
 * global_end = committed frames * S; local_end = the filled part of a
 * window_frames-sized rolling buffer = min(window, committed frames) * S. */
int64_t sk_kv_global_end(const sk_kv_cache *c);
int64_t sk_kv_local_end(const sk_kv_cache *c);
size_t sk_kv_bytes(const sk_kv_cache *c);

#ifdef __cplusplus
}
#endif
#endif
