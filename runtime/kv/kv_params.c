/* kv_params.c - the KV cache's parameters: policy and RoPE names, defaults, the
 * slot plan a configuration needs, validation, and the description --print-config
 * shows (see kv_cache.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/core/log.h"
#include "runtime/kv/kv_internal.h"
#include "runtime/kv/kv_multishot.h"

static const char *const k_policy_names[SK_KV_POLICY_COUNT_] = {
    [SK_KV_FIFO] = "fifo", [SK_KV_SINK] = "sink", [SK_KV_EMA] = "ema",
    [SK_KV_DEEP_SINK] = "deep-sink", [SK_KV_ROLLING] = "rolling",
    [SK_KV_MULTISHOT] = "multishot",
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
                  "deep-sink, rolling or multishot", s ? s : "(null)");
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
    case SK_KV_ROLLING:
    case SK_KV_MULTISHOT: return chunk;
    default: return 3;
    }
}

/* ---- geometry ---------------------------------------------------------- */


int64_t kv_window_pass_frames(const sk_kv_params *p)
{
    return p->policy == SK_KV_ROLLING ? p->roll_chunks * p->max_chunk_frames : 0;
}

kv_plan kv_plan_of(const sk_kv_params *p)
{
    kv_plan g;
    memset(&g, 0, sizeof g);
    const int64_t W = p->window_frames, S = p->sink_frames, n = p->max_chunk_frames;
    const sk_kv_rope rope = sk_kv_rope_resolve(p->policy, p->rope);
    g.raw = p->store_raw || !((p->policy == SK_KV_FIFO || p->policy == SK_KV_SINK) &&
                              rope == SK_KV_ROPE_ABSOLUTE && p->compress_frames == 0);
    g.sink_banks = S > 0 ? (p->policy == SK_KV_EMA ? 2 : 1) : 0;
    if (p->policy == SK_KV_MULTISHOT) {
        g.raw = p->store_raw;
        g.ring_len = sk_kv_ms_pool_frames(p) - S;
        g.n_slots = sk_kv_ms_pool_frames(p);
        return g;
    }
    if (p->compress_frames > 0) {
        const int64_t R = p->recent_frames > 0 ? p->recent_frames : 4;
        g.comp_frames = p->compress_frames - S - R;
        g.recent_committed = R - n;
    }
    if (p->policy == SK_KV_ROLLING)
        g.ring_len = (W - n) + kv_window_pass_frames(p);
    else
        g.ring_len = W - S + n;
    g.n_slots = g.sink_banks * S + 2 * g.comp_frames + g.ring_len;
    return g;
}

sk_status kv_validate(const sk_kv_params *p)
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
        SK_CHECK(p->sink_frames + kv_window_pass_frames(p) <= p->window_frames, SK_E_INVALID_ARG,
                 "KV cache: rolling: sink %lld + a window of %lld chunks x %lld frames exceed "
                 "--kv-window %lld (Rolling Forcing: 3 + 5 x 3 <= 21)",
                 (long long)p->sink_frames, (long long)p->roll_chunks,
                 (long long)p->max_chunk_frames, (long long)p->window_frames);
        SK_CHECK(p->compress_frames == 0, SK_E_INVALID_ARG,
                 "KV cache: --kv-compress works with fifo, sink and deep-sink, not rolling");
    }
    if (p->policy == SK_KV_MULTISHOT) SK_TRY(sk_kv_ms_validate(p));
    SK_CHECK(p->dtype != SK_DTYPE_F8_E4M3 || sk_kv_params_baked(p), SK_E_UNSUPPORTED,
             "KV cache: an FP8 (e4m3) cache needs keys stored rotated once: policies fifo, "
             "sink and multishot with absolute RoPE and no --kv-compress; %s%s rewrites or "
             "re-rotates cached keys (SK_FP8_KV=0 keeps the cache in bf16)",
             sk_kv_policy_name(p->policy), p->compress_frames > 0 ? " with --kv-compress" : "");
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

int sk_kv_params_baked(const sk_kv_params *p)
{
    return !kv_plan_of(p).raw && p->compress_frames == 0;
}

sk_dtype sk_kv_storage_dtype(const sk_kv_params *p, const sk_backend *be, int fp8_attention,
                             sk_dtype act)
{
    const char *e = getenv("SK_FP8_KV");
    if (!fp8_attention || (e && !strcmp(e, "0")) || !sk_kv_params_baked(p)) return act;
    if (be && !sk_backend_has_fp8_kv(be)) return act;
    return SK_DTYPE_F8_E4M3;
}

int64_t sk_kv_pool_frames(const sk_kv_params *p0)
{
    sk_kv_params p = *p0;
    if (p.recent_frames <= 0) p.recent_frames = 4;
    return kv_plan_of(&p).n_slots;
}

void sk_kv_describe(const sk_kv_params *p0, size_t elem_bytes, char *buf, size_t cap)
{
    sk_kv_params p = *p0;
    p.rope = sk_kv_rope_resolve(p.policy, p.rope);
    if (p.recent_frames <= 0) p.recent_frames = 4;
    const kv_plan g = kv_plan_of(&p);
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
    case SK_KV_MULTISHOT:
        snprintf(sees, sizeof sees, "the global sink (frames 0..%lld) + the pinned shot-sink "
                 "chunk + the newest chunks, %lld frames in all (its own %lld included; a shot "
                 "cut shifts RoPE by %lld frames per shot)", (long long)S - 1, (long long)W,
                 (long long)n, (long long)p.shot_rope_offset);
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
             "a query sees %s%s; %lld frame slots = %.1f MB of K/V per layer%s%s",
             sk_kv_policy_name(p.policy), sk_kv_rope_name(p.rope),
             g.raw ? "keys stored temporally raw, rotated each pass" : "keys stored rotated once",
             (long long)W, (long long)S, (long long)n, sees, pc, (long long)g.n_slots,
             frame_b * (double)g.n_slots / 1e6,
             g.raw ? " (+ one layer of rotated-key scratch)" : "",
             p.dtype == SK_DTYPE_F8_E4M3 ? " (e4m3, one scale per frame)" : "");
}
