/* stream.h - one generation stream of the causal DiT: the chunk loop.
 *
 * A stream owns everything that changes while a video is generated (the
 * model itself is shared and immutable): the self-attention KV cache, the
 * cross-attention K/V of the current prompt, the scratch arena, the chunk
 * buffers and the noise position. Everything is allocated in sk_stream_init;
 * sk_stream_step allocates nothing on the backend.
 *
 * One sk_stream_step generates the next chunk (Self-Forcing / LongLive 1.0,
 * spec-wan-causal-dit.md §5.4):
 *   x = noise(frames)
 *   for each step s:  v = DiT(x, t_s); x0 = x - sigma_s v;
 *                     if not last: x = (1 - sigma_{s+1}) x0 + sigma_{s+1} fresh_noise
 *   DiT(x0, t = 0)    (the clean pass: the cache keeps the chunk's clean K/V)
 * and hands out x0. A failed step leaves the stream as it was before it
 * (KV cache and frame counter), so the caller may retry or stop cleanly.
 */
#ifndef SK_STREAM_H
#define SK_STREAM_H

#include <stdint.h>

#include "dit/forward.h"
#include "runtime/kv/kv_cache.h"
#include "sampler/noise_source.h"
#include "sampler/schedule.h"
#include "sampler/unipc.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Per denoising step, before re-noising (tests and --dump): x_t fed to the
 * model, its v, and x0 = x_t - sigma v; all [n, C, H, W] on the backend. */
typedef void (*sk_stream_step_fn)(void *user, int chunk, int step, const sk_tensor *xt,
                                  const sk_tensor *v, const sk_tensor *x0);

/* What sk_stream_switch_prompt re-encodes under the new prompt (--recache). */
typedef enum {
    SK_RECACHE_WINDOW = 0,   /* LongLive 1.0 (global sink): the last min(window, generated)
                                frames; the sink keeps its old-prompt K/V */
    SK_RECACHE_OFF,          /* hard switch: only the cross-attention K/V change */
    SK_RECACHE_WITH_SINK,    /* the window, and first the sink frames at their own
                                positions from their kept clean latents (--recache-sink) */
} sk_recache_mode;

/* How a chunk is denoised (--sampler). */
typedef enum {
    SK_SAMPLER_RENOISE = 0,  /* Self-Forcing / LongLive 1.0: x0, fresh noise, next step (sched) */
    SK_SAMPLER_UNIPC,        /* LongLive 2.0: UniPC bh2 order 2, no fresh noise (unipc) */
} sk_sampler_kind;

typedef struct {
    int64_t frames;          /* latent frames to generate; 0 = unbounded (Philox noise only) */
    int64_t chunk_frames;    /* latent frames per chunk (3) */
    int64_t latent_h, latent_w;
    sk_schedule sched;
    sk_kv_policy kv_policy;
    int64_t kv_window;       /* frames a query sees, sink included (12) */
    int64_t kv_sink;         /* sink frames (fifo: always 0; < 0: the policy's default,
                                sk_kv_default_sink) */
    sk_kv_rope kv_rope;      /* temporal RoPE of cached keys (AUTO: the policy's) */
    double ema_alpha;        /* ema: sink momentum (0.999, Reward Forcing) */
    int64_t kv_compress;     /* participative compression budget in frames (0: off) */
    int64_t kv_recent;       /* PC: recent frames incl. the chunk (4) */
    uint64_t seed;           /* Philox noise when noise == NULL */
    sk_noise_source *noise;  /* borrowed; NULL = Philox with seed */
    float context_t;         /* timestep of the clean pass (context_noise = 0) */
    sk_dit_debug_fn debug;   /* optional DiT intermediates */
    void *debug_user;
    sk_stream_step_fn on_step;
    void *on_step_user;
    int prompt_switch;       /* allow sk_stream_switch_prompt: keeps a ring of the last
                                kv_window clean latents, scratch for a kv_window-frame pass */
    sk_recache_mode recache; /* what a prompt switch re-encodes (default: the window) */
    sk_sampler_kind sampler; /* renoise (sched) or unipc (unipc) */
    sk_unipc_table unipc;    /* --sampler unipc: steps, shift (sk_unipc_table_make) */
    int64_t shot_rope_offset;/* multishot: RoPE frames per shot (LongLive 2.0: 8) */
    int shot_clean_recache;  /* multishot: a cut chunk's clean pass sees only the global sink */
} sk_stream_params;

/* LongLive 1.0 defaults: chunk 3, steps 1000,750,500,250 shift 5 (warped),
 * policy sink, window 12, sink 3 (ema alpha 0.999, PC recent 4). Caller sets
 * frames and latent size. With kv_policy rolling (Rolling Forcing) a step
 * runs rolling windows of (steps) chunks until the oldest chunk leaves
 * clean: the first step runs `steps` windows, later ones one each
 * (runtime/stream/stream_rolling.c). */
sk_stream_params sk_stream_params_default(void);

typedef struct sk_stream {
    const sk_dit_model *m;
    sk_backend *be;
    sk_stream_params p;
    sk_kv_cache *kv;
    sk_dit_ctx *dit;
    /* rolling (stream_rolling.c): noisy latents of the blocks in the window, block b at
     * rows (b % steps) * chunk; the ordered window input, its v and x0; fresh noise */
    sk_tensor roll_state, roll_x, roll_v, roll_x0, roll_z;
    int64_t roll_w;          /* windows run so far */
    sk_noise_source *noise, *own_noise;
    sk_tensor x, v, x0, z;   /* [chunk, C, H, W] */
    float *tbuf;             /* [chunk] timesteps per frame */
    int64_t next_frame;      /* first frame of the next chunk */
    int chunk_index;
    int have_prompt;
    int broken;              /* a prompt-switch recache failed: the cache is lost */
    sk_tensor ring;          /* [kv_window, C, H, W] clean latents, frame f at f % kv_window */
    sk_tensor rec_x, rec_v;  /* [kv_window, C, H, W] recache input / output */
    int64_t rec_n;           /* frames of the last recache (rec_v rows valid) */
    sk_tensor sink_lat;      /* [kv_sink, C, H, W] clean latents of the sink frames
                                (recache WITH_SINK only) */
    int64_t rec_f0;          /* first frame of the last window recache */
    int64_t rec_sink_n;      /* sink frames re-encoded by the last switch */
    int n_switches;          /* prompt switches made after the first chunk */
    sk_tensor um[3];         /* unipc: x0 predictions m_i, ring by step (stream_unipc.c) */
    sk_tensor image_lat;     /* [1, C, H, W] I2V: latent frame 0, clamped (stream_image.c);
                                data NULL without an image */
    /* video-to-video (sk_stream_step_from): the chunk's input latents and start step, set
     * for the one step that uses them */
    const sk_tensor *in_lat;
    int in_start;
} sk_stream;

/* Validates params against the model, then allocates everything. */
sk_status sk_stream_init(const sk_dit_model *m, const sk_stream_params *p, sk_stream **out);
void sk_stream_free(sk_stream **s);

/* Sets / switches the prompt: ctx [rows, text_dim] f32 on the host
 * (rows <= text_len). Recomputes the cross-attention K/V. */
sk_status sk_stream_set_prompt(sk_stream *s, const float *ctx, int64_t rows);

/* Switches the prompt mid-stream, LongLive 1.0 style (spec §5.6, global
 * sink): the cross-attention K/V are recomputed for the new prompt, then the
 * last min(kv_window, generated) clean latent frames are run once more at
 * t = 0 with the new prompt at their absolute positions, rewriting their
 * cached K/V (the sink keeps its old K/V unless the recache starts at frame
 * 0). params.recache picks the variant: OFF sets the prompt only (a hard
 * switch), WITH_SINK first re-encodes the sink frames (from their kept clean
 * latents, at positions 0..sink-1, attending to the cache as it is) and then
 * the window. The new prompt applies from the next chunk. Needs
 * params.prompt_switch unless recache is OFF. Before the first chunk it just
 * sets the prompt. If a recache pass fails the stream is unusable (the cache
 * was partly rewritten): later steps report it. */
sk_status sk_stream_switch_prompt(sk_stream *s, const float *ctx, int64_t rows);

/* multishot (LongLive 2.0 shot cut): the next chunk opens a new shot (RoPE
 * offset + shot_rope_offset, pinned as the shot sink after its clean pass).
 * Call after switching to the shot's prompt; ignored before the first chunk. */
sk_status sk_stream_cut(sk_stream *s);

/* LongLive 2.0 image-to-video (spec-longlive2.md §5): lat [C, H, W] host f32, the
 * normalised latent of the conditioning image, becomes latent frame 0: chunk 0's frame 0 is
 * overwritten with it before every model call (its timestep 0) and in the chunk's result,
 * so the image sits in the global sink for the whole stream. UniPC sampler only; before
 * the first chunk. */
sk_status sk_stream_set_image_latent(sk_stream *s, const float *lat, int64_t c, int64_t h,
                                     int64_t w);

/* 1 when every requested frame has been generated. */
int sk_stream_done(const sk_stream *s);

/* Generates the next chunk. On success *x0 is a view [n, C, H, W] of the
 * chunk's clean latents on the backend (valid until the next step) and
 * *frame0 its first frame. */
sk_status sk_stream_step(sk_stream *s, sk_tensor *x0, int64_t *frame0);

/* Video-to-video (runtime/stream/v2v.h): the next chunk starts from the input
 * latents in_lat [n, C, H, W] (n = the chunk's latent frames, the backend's act
 * dtype) noised to step `start` (sk_v2v_start_index) with the chunk's initial
 * noise, and runs steps start..N-1 and the clean pass. start 0 ignores in_lat
 * (text-to-video). on_step reports absolute step indices. Not with the rolling
 * policy (its windows hold chunks at different noise levels). */
sk_status sk_stream_step_from(sk_stream *s, const sk_tensor *in_lat, int start, sk_tensor *x0,
                              int64_t *frame0);
/* Latent frames the next chunk will have (0 when done). */
int64_t sk_stream_next_chunk_frames(const sk_stream *s);

#ifdef __cplusplus
}
#endif
#endif
