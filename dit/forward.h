/* forward.h - one call of the causal Wan DiT on one chunk (spec §2).
 *
 * An sk_dit_ctx is the per-stream working state of a model: the scratch
 * arena (allocated once, sized for the largest chunk), the cross-attention
 * K/V of the current prompt (computed once per prompt, spec §5.7), host
 * staging buffers. The self-attention KV cache is passed in separately
 * (runtime/kv/kv_cache.h) and must hold a pending chunk of the same frames.
 * Nothing is allocated by sk_dit_forward.
 */
#ifndef SK_DIT_FORWARD_H
#define SK_DIT_FORWARD_H

#include "dit/model.h"
#include "runtime/core/arena.h"
#include "runtime/kv/kv_cache.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Called with named intermediates when set (tests, --dump): "time_sinusoid"
 * [F, freq_dim], "e" [F, D], "e0" [F, 6D], "context_emb" [text_len, D],
 * "patch_tokens" [N, D], "block{i}_out" [N, D], "head_out" [N, 4*C_out],
 * "v" [F, C_out, H, W]. Tensors live on the backend and are valid only
 * during the call. */
typedef void (*sk_dit_debug_fn)(void *user, const char *name, const sk_tensor *t);

typedef struct sk_dit_ctx {
    const sk_dit_model *m;
    sk_backend *be;
    int64_t max_frames, H, W, Hp, Wp, S;
    sk_arena arena;
    sk_tensor *cross_k, *cross_v; /* [num_layers] of [text_len, NH, HD] */
    int cross_ready;
    /* Pipeline parallelism (runtime/stream/pp_stream.h): the blocks [blk_first,
     * blk_last) this context runs (all for sk_dit_ctx_init), and while
     * sk_dit_forward_blocks runs, the hidden state buffer [N, D] it passes
     * between stages (NULL otherwise). */
    int blk_first, blk_last;
    sk_tensor *hidden;
    void *stage;                  /* host staging for uploads */
    size_t stage_cap;
    sk_kv_range *ranges;
    int ranges_cap;
    sk_dit_debug_fn debug;
    void *debug_user;
    /* Graphs (backends with graph ops, i.e. CUDA): a forward is recorded once
     * per key (buffer addresses, frames, clean or not, RoPE offset, KV ranges)
     * and replayed; only the time sinusoid is uploaded before each replay.
     * The first forward of each shape (frames, clean or not, KV range lengths)
     * runs plainly (lazy loading, GEMM and attention plans, workspaces).
     * graphs = 0 disables (sk_dit_ctx_init sets it to 1 unless the environment
     * has SK_NO_CUDA_GRAPH=1); off while debug is set. */
    int graphs;
    int capturing;                /* inside a recording: forward() skips the upload */
    int kv_direct;                /* K/V written straight into the cache's slots when the
                                     chunk has one run of them (default 1; SK_NO_KV_DIRECT=1: 0) */
#define SK_DIT_GRAPH_SEEN 64
    uint64_t graph_seen[SK_DIT_GRAPH_SEEN]; /* shapes that ran plainly (ring) */
    int n_graph_seen;
    int graph_failures;           /* recordings failed in a row (8: graphs off) */
    uint64_t n_graph_records, n_graph_replays;
} sk_dit_ctx;

/* Allocates everything a forward of up to max_frames frames of H x W
 * latents needs (H, W even). */
sk_status sk_dit_ctx_init(const sk_dit_model *m, int64_t max_frames, int64_t H, int64_t W,
                          int kv_max_ranges, sk_dit_ctx **out);
void sk_dit_ctx_free(sk_dit_ctx **c);
/* The same for a pipeline stage that runs blocks [first, last) only: the
 * cross-attention K/V exist for those blocks alone (m must hold them). */
sk_status sk_dit_ctx_init_blocks(const sk_dit_model *m, int64_t max_frames, int64_t H, int64_t W,
                                 int kv_max_ranges, int first, int last, sk_dit_ctx **out);

/* Sets the prompt: ctx_host [rows, text_dim] f32 (rows <= text_len; the
 * rest is zero padding, as the umT5 wrapper pads). Runs the text MLP and
 * every layer's cross-attention K/V projection once. */
sk_status sk_dit_set_context(sk_dit_ctx *c, const float *ctx_host, int64_t rows);

/* v [F, C_out, H, W] = DiT(x [F, C_in, H, W], t[f] per frame) for the chunk
 * starting at absolute latent frame start_frame. kv must have a pending
 * chunk (sk_kv_begin_chunk) at start_frame with F frames; this call writes
 * its K/V and attends over the visible set. v may be NULL for a pass that
 * only has to fill the cache (the clean pass): it then stops right after the
 * last layer's K/V write (no last-layer attention, FFN or head). */
sk_status sk_dit_forward(sk_dit_ctx *c, sk_kv_cache *kv, const sk_tensor *x, const float *t,
                         int64_t start_frame, sk_tensor *v);

/* One pipeline stage's part of a forward: blocks [c->blk_first, c->blk_last)
 * of the chunk of n_frames frames at start_frame. kv holds those blocks only
 * (its layer i is block blk_first + i) with the chunk pending. Every stage
 * recomputes the time embedding from t (F rows: cheap), so only the hidden
 * state travels between stages:
 *   hidden [n_frames * S, D] (act dtype): the input of block blk_first when
 *          blk_first > 0, the output of block blk_last - 1 when blk_last <
 *          num_layers; may be NULL only for a whole-model context;
 *   x      [n_frames, C_in, H, W]: the latents, read when blk_first == 0
 *          (NULL otherwise);
 *   v      the head's output when blk_last == num_layers, or NULL for a
 *          K/V-only pass (as sk_dit_forward); NULL when blk_last < num_layers.
 * The ops and their order are exactly those of sk_dit_forward for these
 * blocks, so a model split into stages gives the same bits. */
sk_status sk_dit_forward_blocks(sk_dit_ctx *c, sk_kv_cache *kv, const sk_tensor *x,
                                const float *t, int64_t start_frame, int64_t n_frames,
                                sk_tensor *hidden, sk_tensor *v);

#ifdef __cplusplus
}
#endif
#endif
