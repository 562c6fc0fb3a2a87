/* kv_cache.h - the self-attention KV cache of a causal DiT stream, with its
 * policies (docs/KV_POLICIES.md; facts: spec-kv-sink-policies.md).
 *
 * Baseline semantics are those of Self-Forcing / LongLive 1.0
 * (spec-wan-causal-dit.md §5.5): a chunk's K/V are written before attention,
 * every forward of the same chunk (the denoising passes + the clean pass)
 * overwrites the same slots, and frames the policy no longer keeps are
 * evicted. A pass attends to its visible set without a mask.
 *
 * Policies (sk_kv_policy, --kv-policy):
 *   fifo       Self-Forcing: the newest window_frames frames.
 *   sink       LongLive 1.0: frames [0, sink) + the newest (window - sink).
 *   ema        Reward Forcing: as sink, but each evicted frame f is fused
 *              into sink frame f mod sink: sink = a*sink + (1-a)*evicted
 *              (K and V, token by token); relative RoPE by default.
 *   deep-sink  Deep Forcing's Deep Sink: as sink (default sink = window/2),
 *              the sink's temporal RoPE phase re-aligned each pass so it ends
 *              right before the oldest visible non-sink frame.
 *   rolling    Rolling Forcing: a window of roll_chunks chunks denoised
 *              jointly (sk_kv_begin_window, never committed); the oldest
 *              chunk leaves clean and is committed with a plain chunk pass;
 *              the sink (first frames) is placed right before the clean
 *              frames the window sees.
 *   multishot  LongLive 2.0's multi-shot sink (runtime/kv/kv_multishot.c): chunk 0
 *              is the global sink; a chunk that opens a shot
 *              (sk_kv_multishot_cut) shifts the temporal RoPE by
 *              shot_rope_offset per shot and, once committed, is pinned as the
 *              shot sink; a pass sees the global sink, the pinned chunk and the
 *              newest chunks, window_frames in all. Keys baked (absolute
 *              positions + the shot offset, computed directly: no 1024 limit).
 * and compress_frames > 0 (--kv-compress, Deep Forcing's participative
 * compression) with fifo / sink / deep-sink: when a chunk would overflow the
 * window, the committed non-sink, non-recent frames are replaced by the
 * top tokens by attention participation, re-timed as contiguous
 * pseudo-frames.
 *
 * Key storage. With absolute RoPE and fifo/sink (no compression) keys are
 * stored post-RoPE at absolute frame positions and never touched again
 * ("baked", LongLive 1.0 bit for bit). Every other configuration stores keys
 * "spatially rotated, temporally raw": the row/column pairs are rotated at
 * write time, the temporal pairs are not. Each pass assigns every visible
 * frame a temporal position (pure metadata), and sk_kv_attention_ranges
 * rotates the visible keys into a scratch copy (one copy + one rope per
 * layer and forward), so every key is rotated exactly once from its stored
 * value: no rounding accumulates in bf16, EMA fuses raw keys, and positions
 * can be anything. Absolute positions are limited to the model's 1024-entry
 * RoPE table (SK_KV_ROPE_MAX_POSITIONS); relative ones never exceed the
 * window.
 *
 * Layout (spec-kv-sink-policies.md §9): each layer owns K and V pools of
 * n_slots frame slots, [n_slots * S, NH, HD]. Regions: sink slots (two banks
 * for ema: the fused sink of a chunk in flight goes to the other bank),
 * compressed pseudo-frame slots (two banks), and a ring where regular frame
 * f lives at slot ring_base + f % ring_len. Nothing is ever shifted; the
 * visible set goes to attention as slot ranges in slot order (attention is
 * order-free), at most ~5 ranges. The pool holds a spare chunk of slots:
 * a new chunk is written into free slots and the evicted frames are
 * released only at commit, so a chunk is transactional: sk_kv_abort()
 * after any failure leaves the cache exactly as it was.
 *
 * Hooks per chunk (what sk_dit_forward and sk_stream call):
 *   sk_kv_begin_chunk / sk_kv_begin_window / sk_kv_begin_recompute
 *   per forward, per layer: sk_kv_rope_qk (rotates q, k; keeps PC's clean
 *     queries; runs PC's compression in the chunk's first forward),
 *     sk_kv_write, sk_kv_attention_ranges
 *   sk_kv_commit (after the clean pass) or sk_kv_abort
 *   prompt switch: sk_kv_recache_span + a recompute pass.
 */
#ifndef SK_KV_CACHE_H
#define SK_KV_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "runtime/core/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    SK_KV_FIFO = 0,
    SK_KV_SINK,
    SK_KV_EMA,
    SK_KV_DEEP_SINK,
    SK_KV_ROLLING,
    SK_KV_MULTISHOT,
    SK_KV_POLICY_COUNT_
} sk_kv_policy;

/* Temporal RoPE positions of cached keys: AUTO is the policy's default
 * (relative for ema, absolute otherwise). */
typedef enum { SK_KV_ROPE_AUTO = 0, SK_KV_ROPE_ABSOLUTE, SK_KV_ROPE_RELATIVE } sk_kv_rope;

/* Positions per axis of the Wan RoPE table (rope_params(1024, ...)). */
#define SK_KV_ROPE_MAX_POSITIONS 1024

/* Parses "fifo" / "sink" / "ema" / "deep-sink" / "rolling" / "multishot". */
sk_status sk_kv_policy_from_name(const char *s, sk_kv_policy *out);
const char *sk_kv_policy_name(sk_kv_policy p);
/* "auto" / "absolute" / "relative" */
sk_status sk_kv_rope_from_name(const char *s, sk_kv_rope *out);
const char *sk_kv_rope_name(sk_kv_rope r);
/* The effective RoPE mode of a policy (resolves AUTO). */
sk_kv_rope sk_kv_rope_resolve(sk_kv_policy p, sk_kv_rope r);
/* Default sink frames of a policy: fifo 0, sink/ema 3, deep-sink window/2,
 * rolling one chunk. */
int64_t sk_kv_default_sink(sk_kv_policy p, int64_t window, int64_t chunk);

typedef struct {
    sk_kv_policy policy;
    sk_kv_rope rope;          /* AUTO: the policy's default */
    int64_t window_frames;    /* frames a pass sees, sink and its own frames included */
    int64_t sink_frames;      /* kept first frames; must be 0 for fifo */
    int64_t max_chunk_frames; /* largest chunk that will be written (rolling: a block) */
    int64_t tokens_per_frame; /* S = Hp * Wp */
    int64_t num_layers, num_heads, head_dim;
    sk_dtype dtype;           /* storage dtype: the backend's act dtype, or e4m3 (the FP8
                                 cache: baked keys only, sk_kv_params_baked; read by
                                 attention_fp8 alone) */
    double ema_alpha;         /* ema: sink momentum in [0, 1] (Reward Forcing: 0.999) */
    int64_t compress_frames;  /* participative compression budget N in frames (0: off) */
    int64_t recent_frames;    /* PC: recent frames R (the chunk included); 0: 4 */
    int64_t roll_chunks;      /* rolling: chunks in the denoising window (= steps) */
    double rope_theta;        /* 0: 10000 */
    int store_raw;            /* tests: keep keys temporally raw even where baked would do */
    int64_t shot_rope_offset; /* multishot: temporal RoPE shift per shot, in latent frames
                                 (LongLive 2.0: 8) */
} sk_kv_params;

typedef enum {
    SK_KV_SLOT_FREE = 0,
    SK_KV_SLOT_SINK,       /* a real sink frame */
    SK_KV_SLOT_LOCAL,      /* a regular frame */
    SK_KV_SLOT_PENDING,    /* (unused in metadata; kept for compatibility) */
    SK_KV_SLOT_EMA,        /* an EMA-fused sink frame (no longer one source frame) */
    SK_KV_SLOT_COMPRESSED, /* a PC pseudo-frame: kept tokens of several frames */
} sk_kv_slot_kind;

typedef struct {
    int64_t abs_frame;   /* source latent frame; sink index for EMA; -1 free/compressed */
    sk_kv_slot_kind kind;
    int64_t rope_t;      /* baked: the position in K; raw: the last position assigned */
} sk_kv_slot;

typedef struct sk_kv_cache sk_kv_cache;

struct sk_kv_cache {
    sk_kv_params p;          /* rope resolved, defaults filled */
    sk_backend *be;
    int raw;                 /* keys stored temporally raw (see above) */
    int64_t n_slots;
    sk_tensor *k, *v;        /* [num_layers] pools [n_slots * S, NH, HD] */
    sk_tensor *ks, *vs;      /* FP8 cache: [num_layers] frame scales [n_slots] f32 (fp8.h);
                                else NULL */
    sk_kv_slot *slots;       /* [n_slots] committed metadata */
    int64_t next_frame;      /* frames committed so far (global_end / S) */
    /* regions */
    int64_t sink_base[2], comp_base[2], ring_base, ring_len, comp_frames, recent_committed;
    int sink_bank, comp_bank;
    int64_t n_comp;          /* committed pseudo-frames (0 or comp_frames) */
    int64_t reg_lo;          /* oldest retained regular frame */
    /* the pass in flight */
    int pending;             /* 0 none, 1 chunk, 2 recompute, 3 rolling window */
    int64_t pend_frame0, pend_n;
    int64_t *pend_slot;      /* [n_slots]; -1: query-only frame (not written) */
    int64_t *vis_slot, *vis_pos; /* [n_slots] visible slots and positions, layout order */
    int64_t n_vis, q_t0;     /* q_t0: temporal position of the pass's first frame */
    int ema_fused;           /* the pass uses the other sink bank */
    int compress;            /* PC runs in this chunk */
    unsigned char *comp_done;/* [num_layers] */
    int64_t *pre_slot, *pre_pos, n_pre, pre_q_t0; /* PC: the uncompressed layout */
    int64_t n_cand_first;    /* PC: pre_slot[n_cand_first .. + n_cand) are the candidates */
    int64_t n_cand;
    int64_t *tmp;            /* [n_slots] scratch */
    int64_t *lay_frame;      /* [n_slots] layout scratch: frame and category per entry */
    unsigned char *lay_cat;
    /* raw mode: rotated keys of one layer, same rows as the pools */
    sk_tensor kscr;
    /* PC scratch */
    sk_tensor *qbank;        /* [num_layers] [2 * recent_committed * S, NH, HD] clean queries */
    int64_t *qbank_frame;    /* [2 * recent_committed] frame held by each bank row-block */
    int qcur;                /* committed Q bank */
    sk_tensor qs, qzero, qmean, score, ids; /* scoring queries, zero query, mean, scores, i32 ids */
    float *h_score;
    float *h_cand;           /* scores in candidate order (sorted on the host) */
    int32_t *h_ids;
    int64_t *h_order;
    /* multishot (kv_multishot.c): chunk-sized slot groups after the global sink */
    int64_t *ms_group;       /* [ms_groups] chunk index held by each group, -1 free */
    int64_t ms_groups, ms_pend_group;
    int64_t ms_shot;         /* shot index of the committed chunks (0: the first shot) */
    int64_t ms_pin;          /* chunk pinned as the shot sink, -1 none */
    int64_t ms_hist_lo;      /* oldest chunk history may come from (a clean recache moves it) */
    int ms_cut_next;         /* the next chunk opens a shot */
    int ms_clean;            /* the pending cut chunk's clean pass follows a clean recache */
};

/* Validates the params (window > sink, chunk + sink <= window, ...) and
 * allocates everything on be (once; nothing is allocated later). */
sk_status sk_kv_cache_init(sk_backend *be, const sk_kv_params *p, sk_kv_cache **out);
void sk_kv_cache_free(sk_kv_cache **c);
/* Forgets everything (new video); keeps the memory. */
void sk_kv_cache_reset(sk_kv_cache *c);

/* Starts a new chunk of n frames at frame0 (must equal next_frame): picks
 * slots, computes the visible set and its positions; ema fuses the frames
 * that leave into the other sink bank (data work, undone by abort); PC plans
 * a compression when the chunk would overflow the window. With absolute
 * positions a frame >= 1024 is refused. Changes no committed state. */
sk_status sk_kv_begin_chunk(sk_kv_cache *c, int64_t frame0, int64_t n);
/* Rolling only: a denoising pass over the window frames [frame0, frame0+n)
 * (frame0 = next_frame, n <= roll_chunks * chunk): sink + the newest clean
 * frames that fit + the window. Never committed: end it with sk_kv_abort. */
sk_status sk_kv_begin_window(sk_kv_cache *c, int64_t frame0, int64_t n);
/* Starts a recompute of frames [frame0, frame0 + n) ending at next_frame
 * (LongLive KV-recache after a prompt switch, spec §5.6): the frames are
 * re-encoded in place, without moving any index. Frames the cache no longer
 * keeps are query-only (their K/V are dropped); with protect_sink the real
 * sink frames keep their old K/V too (LongLive does so when frame0 > 0); an
 * EMA sink and PC pseudo-frames are never rewritten (they are no frame).
 * The visible set is everything the cache keeps. A recompute overwrites
 * committed slots, so unlike a new chunk it cannot be undone. */
sk_status sk_kv_begin_recompute(sk_kv_cache *c, int64_t frame0, int64_t n, int protect_sink);
/* The frames a prompt-switch recache re-encodes: the last
 * min(window, generated) frames. Returns n (0 before any frame). */
int64_t sk_kv_recache_span(const sk_kv_cache *c, int64_t *frame0);

/* RoPE of one layer's q and k [n*S, NH, HD] of the pass in flight (Hp*Wp =
 * S): baked: both at the absolute positions; raw: k spatially only (what
 * sk_kv_write stores), q fully at q_t0. In raw mode it also keeps PC's clean
 * queries and runs PC's compression of this layer in the chunk's first
 * forward. */
sk_status sk_kv_rope_qk(sk_kv_cache *c, int layer, sk_tensor *q, sk_tensor *k, int64_t Hp,
                        int64_t Wp);
/* Writes the pending pass's K and V ([n*S, NH, HD]) of one layer into its
 * slots (overwriting any earlier pass of the same chunk). An FP8 cache
 * quantizes each frame as one row (fp8.h) into its slot and frame scale. */
sk_status sk_kv_write(sk_kv_cache *c, int layer, const sk_tensor *k, const sk_tensor *v);
/* When the pending pass writes all its frames into one run of consecutive slots
 * of an act-dtype cache: views k, v [n*S, NH, HD] of those slots of `layer`
 * (returns 1), so the producer of K and V can write them in place instead of
 * calling sk_kv_write; else 0 (always for an FP8 cache). */
int sk_kv_write_views(sk_kv_cache *c, int layer, sk_tensor *k, sk_tensor *v);
/* The key/value ranges a query of the pending pass attends to in `layer`,
 * keys rotated to their positions (raw mode: into the scratch; baked: the
 * pool itself). *n gets the count (error past cap). */
sk_status sk_kv_attention_ranges(sk_kv_cache *c, int layer, sk_kv_range *out, int cap, int *n);
/* The stored (unrotated in raw mode) visible ranges of the pool: returns the
 * count (<= n_slots), coalescing adjacent slots, in slot order. */
int sk_kv_visible(const sk_kv_cache *c, int layer, sk_kv_range *out, int cap);
/* Visible set in layout order: absolute frames (EMA sink: its index,
 * compressed: -1) and temporal positions (may be NULL); returns the count. */
int64_t sk_kv_visible_frames(const sk_kv_cache *c, int64_t *frames, int64_t cap);
int64_t sk_kv_visible_positions(const sk_kv_cache *c, int64_t *pos, int64_t cap);
/* multishot: the next chunk (sk_kv_begin_chunk) opens a new shot: its passes
 * run at RoPE offset shot_rope_offset * (shots so far + 1) and after its commit
 * it is the pinned shot sink. Chunk 0 opens no shot (ignored). Survives an
 * abort of that chunk (a retry is still a cut). */
sk_status sk_kv_multishot_cut(sk_kv_cache *c);
/* multishot, --shot-clean-recache: between the denoising passes and the clean
 * pass of a pending cut chunk: the clean pass sees only the global sink and the
 * chunk itself, and all history before the chunk is dropped at commit
 * (upstream _zero_kv_data). */
sk_status sk_kv_multishot_clean_recache(sk_kv_cache *c);
/* multishot: chunk indices a pass of chunk k would see (global sink, pinned
 * shot sink, newest chunks; ascending), for tests and logs; returns the count. */
int sk_kv_multishot_chunks(const sk_kv_cache *c, int64_t k, int64_t *out, int cap);

/* Makes the pending chunk permanent: advances next_frame, evicts (a window
 * or a recompute moves nothing). */
void sk_kv_commit(sk_kv_cache *c);
/* Drops the pending pass: the cache is as before it began. */
void sk_kv_abort(sk_kv_cache *c);

/* PC, for tests without a model: compresses `layer` of the pending chunk as
 * its first forward would, scoring with q [n*S, NH, HD] (spatially rotated
 * only) plus the kept clean queries. */
sk_status sk_kv_compress_layer(sk_kv_cache *c, int layer, const sk_tensor *q_spatial);

/* Spec §5.5 index equivalents in tokens, for logs and tests:
 * global_end = committed frames * S; local_end = the filled part of a
 * window_frames-sized rolling buffer = min(window, committed frames) * S. */
int64_t sk_kv_global_end(const sk_kv_cache *c);
int64_t sk_kv_local_end(const sk_kv_cache *c);
/* Backend bytes: pools + scratch. */
size_t sk_kv_bytes(const sk_kv_cache *c);
/* 1 when keys are stored rotated once and never rewritten (fifo, sink, multishot
 * with absolute RoPE, no compression): what an FP8 (e4m3) cache needs. */
int sk_kv_params_baked(const sk_kv_params *p);
/* The storage dtype of a stream's cache: e4m3 (the FP8 cache, half the bytes) when
 * the DiT runs self-attention in FP8 (fp8_attention), the keys are baked, the
 * backend (NULL: not checked) has the FP8 ops and SK_FP8_KV is not "0"; else act. */
sk_dtype sk_kv_storage_dtype(const sk_kv_params *p, const sk_backend *be, int fp8_attention,
                             sk_dtype act);
/* Frame slots of one layer's K and V pools for these params (the resident
 * cache is that x tokens_per_frame x heads x head_dim x 2 x dtype, per layer). */
int64_t sk_kv_pool_frames(const sk_kv_params *p);
/* One paragraph: policy, positions, slots and memory per layer, what a query
 * sees in the steady state (--print-config). elem_bytes: storage dtype size. */
void sk_kv_describe(const sk_kv_params *p, size_t elem_bytes, char *buf, size_t cap);

#ifdef __cplusplus
}
#endif
#endif
