/* sinkstream.h - the public C API of sinkstream: one engine under every front end
 * (the `sinkstream` CLI, the server, the Python binding in tools/python/).
 *
 * Two objects, split the way whisper.cpp splits whisper_context / whisper_state:
 *   sk_engine   the loaded models (causal Wan DiT, optional umT5 text encoder,
 *               optional TAEHV decoder) on one device. Immutable after
 *               sk_engine_open; shared by every session made from it.
 *   sk_session  one stream: its KV cache and policy, noise counter, prompt
 *               state and prompt queue, VAE decoder state, outputs. Made with
 *               sk_session_create, advanced one chunk at a time with
 *               sk_session_step, ended with sk_session_close.
 *
 * A minimal program (docs/API.md has the complete one):
 *   sk_engine_params ep = sk_engine_params_default();
 *   ep.model_dir = "models/tiny";
 *   sk_engine *e; if (sk_engine_open(&ep, &e)) { puts(sk_last_error()); return 1; }
 *   sk_session_params sp = sk_session_params_default();
 *   sp.frames = 6; sp.latent_h = sp.latent_w = 8;
 *   sk_session *s; sk_session_create(e, &sp, &s);
 *   sk_session_queue_prompt_text(s, "a red fox", SK_FRAME_NEXT_CHUNK, SK_SWITCH_DEFAULT);
 *   while (!sk_session_done(s)) sk_session_step(s, NULL);   (frames: callback or pull)
 *   sk_session_close(&s); sk_engine_close(&e);
 *
 * Status codes. Every fallible call returns sk_status (SK_OK = 0) and passes
 * results through out-parameters. On failure the message ("what failed: where
 * (expected vs got); what to do") is kept per thread: sk_last_error() returns
 * it for the calling thread until that thread's next failing call. Bad use
 * (NULL handles, a closed session, a prompt of the wrong width, an output
 * attached twice, a call from the wrong state) is a status, never a crash.
 *
 * Threading.
 *   - An engine is immutable after sk_engine_open and may serve any number of
 *     sessions from any threads. sk_engine_close must come after every
 *     session made from it is closed (it fails with SK_E_INVALID_ARG and
 *     closes nothing otherwise) and not concurrently with other calls on it.
 *   - Each session is driven by one thread at a time: create, step, finish,
 *     attach/detach outputs, the pull calls and close must not run
 *     concurrently on the same session. Different sessions may step at the
 *     same time on different threads. On the CPU they run in parallel; on a
 *     GPU the engine serialises their chunks on its device (one at a time, in
 *     arrival order: sessions waiting for the device take turns chunk by chunk).
 *   - Safe from any thread at any time while the session is open:
 *     sk_session_queue_prompt_text, sk_session_queue_prompt_embeds,
 *     sk_session_stop, sk_session_get_status. A queued prompt takes effect at
 *     the chunk boundary it names (text is encoded in the queueing thread).
 *     sk_session_stop is also async-signal-safe (a SIGINT handler may call it).
 *   - sk_session_abort: any thread, async-signal-safe (a second SIGINT's
 *     handler calls it); it stops like sk_session_stop and also ends every
 *     wait of the live outputs on the network at once (frames still queued
 *     for an RTMP server are dropped; files are still finalised).
 *   - sk_session_queue_prompt_deferred belongs to the driving thread (it may
 *     open the embeddings file): not concurrently with a step.
 *   - sk_engine_encode_text may be called from any thread (calls are
 *     serialised inside the engine).
 *
 * Lifetimes. Strings in params are copied by the call that takes them. Memory
 * handed to a callback is valid until the callback returns; memory returned
 * by a pull call is valid until the next step, finish or close of that
 * session. Nothing returned needs freeing except where a call says so
 * (sk_engine_encode_text: sk_free).
 *
 * Tensor layouts (PyTorch order, last dimension contiguous):
 *   text context  float32 [rows, text_dim]        (rows <= text_len)
 *   latents       float32 [n, C, H, W]            (C = latent channels, H/W latent size)
 *   frames        uint8   [n, height, width, 3]   (RGB, height = s H, width = s W, s the
 *                                                  engine's vae_stride: 8 for Wan 2.1's
 *                                                  16-channel VAE, 16 for Wan2.2's 48-channel
 *                                                  one, LongLive 2.0)
 * The Wan VAE makes 4F - 3 video frames from F latent frames.
 */
#ifndef SINKSTREAM_H
#define SINKSTREAM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SINKSTREAM_API_VERSION 1

/* ---- status (the same values as runtime/core/status.h, which includes this definition's twin) */
#ifndef SK_STATUS_ENUM_DEFINED
#define SK_STATUS_ENUM_DEFINED
typedef enum {
    SK_OK = 0,
    SK_E_INVALID_ARG,  /* a caller or user passed a bad value (NULL handle, closed session, ...) */
    SK_E_IO,           /* open/read/write failed                                              */
    SK_E_FORMAT,       /* a file is malformed                                                 */
    SK_E_SHAPE,        /* shapes disagree (a prompt's width vs the model's text_dim, ...)     */
    SK_E_DTYPE,        /* unsupported or mismatched dtype                                     */
    SK_E_OOM,          /* host or device memory ran out                                      */
    SK_E_CUDA,         /* CUDA / cuBLAS / cuDNN error                                          */
    SK_E_FFMPEG,       /* libav* error                                                        */
    SK_E_NET,          /* network error or timeout                                            */
    SK_E_UNSUPPORTED,  /* a valid request this build or device cannot do                      */
    SK_E_INTERNAL,     /* broken invariant: a bug in sinkstream                               */
    SK_E_COUNT_
} sk_status;
#endif

/* The calling thread's last error message ("" if none). Never NULL. */
const char *sk_last_error(void);
/* "SK_E_SHAPE", ... Never NULL. */
const char *sk_status_str(sk_status s);
/* Frees memory a call documents as the caller's (sk_engine_encode_text). NULL is fine. */
void sk_free(void *p);
/* "0.1.0" */
const char *sk_version(void);

/* ---- engine: the models on a device */
typedef struct sk_engine sk_engine;

typedef struct {
    /* A converted model directory (model.json + dit/text_encoder/tokenizer/vae,
     * tools/convert_checkpoint.py), or the files one by one. A file given here
     * wins over the directory's. */
    const char *model_dir;
    const char *dit;                 /* DiT weights (.safetensors); required without model_dir */
    const char *dit_config;          /* config.json; NULL: metadata, else tensor shapes */
    const char *text_encoder;        /* umT5 (.safetensors); NULL: embeddings only */
    const char *tokenizer;           /* spiece.model; NULL: the encoder file's own */
    const char *text_encoder_config; /* NULL: metadata / shapes */
    const char *vae;                 /* TAEHV decoder; NULL: latents only */
    const char *vae_variant;         /* "auto" (NULL: from the shapes), "taew2_1", "taew2_2" */
    int text_len;                    /* rows of an encoded context; 0: the encoder's (512) */
    const char *device;              /* "cpu" (NULL: the fast CPU backend, OpenBLAS + threads),
                                        "cpu-ref" (the single-threaded reference loops), "cuda",
                                        "cuda:N", "auto" (cuda when built with it and a GPU is
                                        present, else cpu) */
    const char *act_dtype;           /* "auto" (NULL: f32 on cpu, bf16 on cuda), "f32", "bf16" */
    const char *dit_dtype;           /* DiT linear weights: "as-stored" (NULL), "f32", "bf16", "f16",
                                        "fp8" (the block linears in e4m3 with row scales, their
                                        inputs quantized per token row; runtime/core/fp8.h) */
    int text_offload;                /* 1: free the encoder weights after each encode (reloaded
                                        for the next prompt); the text backend stays */
    int vae_overlap;                 /* 1 (default): on CUDA decode chunk c on a second stream
                                        while the DiT makes c+1 (bitwise the same frames) */
    /* pipeline parallelism (docs/MULTIGPU.md): the DiT's blocks over stages */
    int gpus;                        /* 1 (default); N > 1: cuda:0..N-1, NCCL between them */
    int pp_stages;                   /* 0 (default: gpus decides); N: loopback stages */
    const char *pp_split;            /* "8,8,7,7"; NULL: balanced */
    const char *pp_transport;        /* "auto" (NULL), "loopback", "nccl" */
    /* random weights instead of files (benchmarks, tests; `sinkstream bench`): a DiT of a
     * named shape made directly on the device from a seed, no file read. Needs model_dir and
     * dit unset; prompts are then embeddings of the shape's text_dim. */
    const char *random_model;        /* NULL: off; "wan2.1-1.3b", "tiny", "wan2.2-5b",
                                        "tiny-ti2v" (sk_random_model_name) */
    uint64_t random_seed;            /* seed of the random weights */
    int random_vae;                  /* 1: also a random TAEHV decoder of the taew2_1 layout
                                        (seed random_seed + 1); needs vae unset */
} sk_engine_params;

/* The i-th shape random_model accepts ("wan2.1-1.3b", "tiny", ...); NULL past the last. */
const char *sk_random_model_name(int i);

sk_engine_params sk_engine_params_default(void);

/* Loads the models named by p onto the device. Nothing is shared with p after it returns.
 * The DiT may be left out for an engine that only encodes text (sk_engine_encode_text) or
 * only decodes latents (sessions fed with sk_session_push_latents). */
sk_status sk_engine_open(const sk_engine_params *p, sk_engine **out);
/* Frees the engine; accepts NULL and *e == NULL; NULLs *e. Fails (and frees nothing) while
 * sessions made from it are open. */
sk_status sk_engine_close(sk_engine **e);

typedef struct {
    int64_t text_dim, text_len;  /* what a prompt context must be: [rows <= text_len, text_dim]
                                    (without a DiT: the encoder's output shape) */
    int64_t latent_channels;     /* C of the latents (16: Wan 2.1, 48: Wan 2.2 TI2V-5B) */
    int has_dit;
    int64_t dim, num_layers, num_heads;
    int has_text_encoder, has_vae;
    int pipelined;               /* the DiT runs over pipeline stages */
    char device[32];             /* "cpu", "cuda:0", ... */
    char act_dtype[8];           /* "f32", "bf16" */
    char family[32];             /* model.json's family, "" without a model directory */
    int64_t in_channels, ffn_dim, freq_dim; /* the DiT's other sizes (cost models) */
    int64_t weights_bytes;       /* the DiT's weights on the device */
    /* (added with LongLive 2.0; fields only ever append) */
    int64_t vae_stride;          /* pixels per latent row/column: 8 (Wan 2.1), 16 (Wan 2.2) */
    char model_type[16];         /* the DiT's: "t2v" (Wan 2.1), "ti2v" (Wan2.2-TI2V-5B,
                                    LongLive 2.0; from config.json / metadata or the 48-channel
                                    tensor shapes); "" without a DiT */
} sk_engine_info;

sk_status sk_engine_get_info(const sk_engine *e, sk_engine_info *out);

/* What the engine's device did so far: memory, allocations, CUDA graphs. For benchmarks
 * and monitoring; sessions made with stats add their samples of device memory. */
typedef struct {
    char backend[16];              /* "cpu", "cuda" */
    char gpu[128];                 /* the GPU's name; "" on the CPU */
    int64_t backend_peak_bytes;    /* most bytes the engine's backends held at once, plus
                                      their fixed workspaces (cuBLASLt, scratch) */
    int64_t device_used_at_open;   /* device memory in use (by every process) before the
                                      models were loaded; 0 on the CPU */
    int64_t device_used_peak;      /* most in use at a sample (open, and the chunks and the
                                      stats reads of sessions with stats); 0 on the CPU */
    int64_t device_total;          /* 0 on the CPU */
    uint64_t backend_allocs;       /* tensor allocations on the engine's backends so far */
    uint64_t device_mallocs;       /* cudaMalloc calls so far (0 on the CPU) */
    uint64_t graph_captures, graph_instantiations, graph_updates, graph_launches;
    double graph_capture_ms;       /* host time recording and instantiating graphs */
} sk_engine_stats;

/* While no session of the engine is inside a call that runs the device (step, push,
 * finish, create): it reads the backends' counters, and samples the device's free memory. */
sk_status sk_engine_get_stats(sk_engine *e, sk_engine_stats *out);

/* Encodes text with the engine's umT5: *ctx (caller frees with sk_free) is float32
 * [*rows, *cols] = [text_len, text_dim], zero-padded past the prompt's *n_tokens. ids (may
 * be NULL): the token ids, int32 [*rows] (caller frees with sk_free). */
sk_status sk_engine_encode_text(sk_engine *e, const char *text, float **ctx, int64_t *rows,
                                int64_t *cols, int32_t **ids, int *n_tokens);

/* Frees the text encoder's weights now (the next text prompt reloads them): e.g. after the
 * prompts of a run are queued. Any thread. */
sk_status sk_engine_offload_text(sk_engine *e);

/* ---- session: one stream */
typedef struct sk_session sk_session;

/* Callbacks, called on the thread that runs sk_session_step / sk_session_finish.
 * Memory is valid until the callback returns. */
typedef void (*sk_latents_fn)(void *user, const float *latents, int64_t n, int64_t c,
                              int64_t h, int64_t w, int64_t first_frame);
typedef void (*sk_frames_fn)(void *user, const uint8_t *rgb, int64_t n, int64_t height,
                             int64_t width, int64_t first_frame);
/* A prompt as it takes effect, at the chunk boundary `frame` (a latent frame): text, or
 * NULL for embeddings (then label names them, e.g. the tensor); source: "queued" (from
 * sk_session_queue_prompt_*) or "live" (live control). For a record of the run's timeline. */
typedef void (*sk_prompt_fn)(void *user, int64_t frame, const char *text, const char *label,
                             const char *source);

#define SK_MAX_STEPS 64

typedef struct {
    int64_t frames;             /* latent frames to generate (21); 0: unbounded, until stopped */
    int64_t chunk;              /* latent frames per chunk (3) */
    int64_t latent_h, latent_w; /* latent size (60 x 104 = 480 x 832 pixels); even */
    int steps[SK_MAX_STEPS];    /* renoise: denoising timesteps (1000, 750, 500, 250) */
    int n_steps;
    double shift;               /* flow-matching shift (5) */
    int warp;                   /* 1 (default): warp steps by shift; 0: raw timesteps */
    uint64_t seed;              /* Philox noise seed (0) */
    const char *noise_file;     /* reference noise ('noise', 'renoise.{chunk}.{step}'); NULL: Philox */
    /* KV cache (docs/KV_POLICIES.md): the CLI's --kv-* flags */
    const char *kv_policy;      /* "fifo", "sink" (default), "ema", "deep-sink", "rolling",
                                   "multishot" (LongLive 2.0's multi-shot sink: kv_sink = the
                                   chunk, kv_window a multiple of the chunk, >= 3 chunks) */
    int64_t kv_window;          /* -1: the policy's default (multishot: 4 chunks) */
    int64_t kv_sink;            /* -1: the policy's default */
    const char *rope;           /* "auto" (default), "absolute", "relative" */
    double ema_alpha;           /* 0.999 */
    int64_t kv_compress;        /* 0: off */
    int64_t kv_recent;          /* 4 */
    /* prompt switches */
    const char *recache;        /* what a switch re-encodes: "on" (default, the window),
                                   "off" (hard cut), "sink" (the sink frames and the window);
                                   NULL: "on", except "off" for multishot (LongLive 2.0
                                   switches without a re-cache; "on" is refused there) */
    int prompt_switch;          /* 1 (default): switches possible (keeps the window's clean
                                   latents); 0 saves that memory: only the first prompt */
    /* outputs */
    int decode;                 /* 1: decode frames with the engine's VAE (needs one); 0: latents
                                   only; -1 (default): 1 when the engine has a VAE */
    int fps;                    /* 16: video rate for outputs and "at" times */
    sk_latents_fn on_latents;   /* optional: each chunk's latents */
    sk_frames_fn on_frames;     /* optional: each batch of decoded frames */
    void *user;                 /* passed to both */
    const char *dump_steps;     /* optional file: every step's xt/v/x0 (--dump-steps) */
    /* measurement (docs/API.md, "Measuring a session"); 0 for all is the default */
    int stats;                  /* 1: time every chunk, hash its latents, count the
                                   allocations of the chunk loop (sk_session_get_stats) */
    int profile;                /* 1 (needs stats): time every op of chunk profile_chunk, op
                                   by op (no CUDA graphs in that chunk) */
    int64_t profile_chunk;      /* the chunk profiled (0 is the first) */
    int no_cuda_graphs;         /* 1: run the DiT op by op, no CUDA graph replay (CUDA only;
                                   SK_NO_CUDA_GRAPH=1 does the same everywhere) */
    int frames_on_device;       /* 1: decoded frames stay on the device: none reach outputs,
                                   the callback or sk_session_frames (to time the decoder) */
    /* (fields added after the first release: at the end, so older layouts stay valid) */
    int fps_num, fps_den;       /* the outputs' exact rate, e.g. 30000/1001 (pts, pacing);
                                   0: fps/1. fps stays the whole rate "at" times count in */
    sk_prompt_fn on_prompt;     /* optional: each prompt as it takes effect (user as above) */
    /* LongLive 2.0 (Wan2.2-TI2V-5B; docs/API.md) */
    const char *sampler;        /* "renoise" (NULL, default: Self-Forcing / LongLive 1.0: x0,
                                   fresh noise, next of steps) or "unipc" (LongLive 2.0: UniPC
                                   bh2 order 2, num_steps, no fresh noise: a noise_file needs
                                   only 'noise') */
    int num_steps;              /* unipc: solver steps per chunk (4; LongLive 2.0: 4 or 2); t
                                   from sigma = shift(linspace(0.999, 0, N + 1)) */
    int64_t shot_rope_offset;   /* multishot: temporal RoPE shift per shot, in latent frames (8,
                                   every LongLive 2.0 config) */
    int shot_clean_recache;     /* multishot: a cut chunk's clean pass sees only the global
                                   sink; the history before the cut is dropped (0) */
} sk_session_params;

sk_session_params sk_session_params_default(void);

/* Validates p against the engine and allocates the session's state (KV cache, buffers,
 * decoder state). The session has no prompt yet: queue one before the first step. */
sk_status sk_session_create(sk_engine *e, const sk_session_params *p, sk_session **out);

/* Prompts. frame: the latent frame from which the prompt applies; it takes effect at the
 * first chunk boundary at or after it. SK_FRAME_NEXT_CHUNK: the next boundary. When several
 * are due at one boundary the last queued wins. The first prompt (frame 0) is the starting
 * prompt; later ones are switches (LongLive KV re-cache, see recache). */
#define SK_FRAME_NEXT_CHUNK (-1)
typedef enum {
    SK_SWITCH_DEFAULT = 0,  /* the session's recache mode */
    SK_SWITCH_RECACHE,      /* re-encode the cached window under the new prompt (LongLive) */
    SK_SWITCH_HARD_CUT,     /* only the cross-attention changes */
    SK_SWITCH_CUT,          /* LongLive 2.0 shot cut (kv_policy "multishot" only): the prompt
                               changes without a re-cache and its chunk opens a new shot (RoPE
                               shifted by shot_rope_offset, pinned as the shot sink). frame
                               must be a chunk boundary or SK_FRAME_NEXT_CHUNK; at frame 0 it
                               is the first shot (a plain start). On a multishot session a text
                               prompt starting SK_SCENE_CUT_PREFIX is a cut in any mode. */
} sk_switch_mode;

/* LongLive 2.0's scene-cut prefix (its utils/dataset.py DEFAULT_SCENE_CUT_PREFIX). */
#define SK_SCENE_CUT_PREFIX "The scene transitions. "

/* ctx: float32 [rows, cols] (copied); cols must equal the engine's text_dim and rows be at
 * most text_len (zero rows past it are dropped). label (may be NULL) names the prompt in
 * logs and the status, e.g. the tensor it came from. */
sk_status sk_session_queue_prompt_embeds(sk_session *s, const float *ctx, int64_t rows,
                                         int64_t cols, int64_t frame, sk_switch_mode mode,
                                         const char *label);
/* Encodes text with the engine's text encoder (in the calling thread), then queues it. */
sk_status sk_session_queue_prompt_text(sk_session *s, const char *text, int64_t frame,
                                       sk_switch_mode mode);
/* A prompt checked now but read or encoded only when it comes due: a long schedule costs
 * its lines, not a context per line (sinkstream generate --prompts). The contexts go through
 * the session's cache of SK_PROMPT_CACHE_CAP distinct prompts (least recently used out
 * first), so a schedule that alternates a few prompts reads or encodes each once. Exactly
 * one of text (the engine's encoder must be loaded; it may be offloaded between prompts) and
 * embeds_name (a tensor [rows, text_dim] of the safetensors file embeds_file; every deferred
 * prompt of a session names the same file). A prompt replaced by a later one due at the same
 * boundary is never read. Errors found when it comes due fail that step. The driving
 * thread only (not concurrently with a step). */
#define SK_PROMPT_CACHE_CAP 16
sk_status sk_session_queue_prompt_deferred(sk_session *s, const char *text,
                                           const char *embeds_file, const char *embeds_name,
                                           int64_t frame, sk_switch_mode mode);

typedef struct {
    int64_t first_frame;    /* first latent frame of the chunk made (-1: none) */
    int64_t n_frames;       /* latent frames made (0 when stopped before a chunk) */
    int64_t video_frames;   /* decoded frames handed out by this call (overlap: the previous
                               chunk's) */
    int done;               /* every frame made, or stopped: step no more, call finish */
} sk_step_info;

/* Makes the next chunk: takes the due prompt, runs the DiT, decodes, writes the outputs,
 * calls the callbacks. A failed step leaves the KV cache and frame counter as they were.
 * info may be NULL. */
sk_status sk_session_step(sk_session *s, sk_step_info *info);
/* Decodes latents made elsewhere, float32 [n, C, H, W] on the host (C the VAE's latent
 * channels, H/W the session's latent size, n <= chunk), continuing the decoder's stream:
 * frames go to the outputs, the callback and the pull call as a step's do. For sessions
 * that decode and are not stepped (an engine without a DiT: `sinkstream decode`). */
sk_status sk_session_push_latents(sk_session *s, const float *latents, int64_t n,
                                  sk_step_info *info);

/* 1 when every frame was made or the session was stopped (also for NULL/closed: then 1). */
int sk_session_done(const sk_session *s);
/* Asks the session to stop at its next chunk boundary. Any thread, signal-safe. The live
 * outputs (RTMP) still send the frames they hold (bounded by their queue and timeout_ms) when
 * the session finishes: a first Ctrl-C. */
void sk_session_stop(sk_session *s);
/* sk_session_stop, and the live outputs stop waiting on the network at once: what they still
 * hold is dropped (files are finalised all the same) and finish returns SK_E_NET ("aborted
 * by the caller") for them. Any thread, signal-safe: a second Ctrl-C. */
void sk_session_abort(sk_session *s);
/* After the last step: hands out the frames still in the decoder (VAE overlap), then
 * closes the outputs (files finalised). Idempotent. Close calls it when not yet done. */
sk_status sk_session_finish(sk_session *s, sk_step_info *info);
/* Frees the session (finishing it first; the status of that is lost: call finish to see
 * it); accepts NULL and *s == NULL; NULLs *s. */
void sk_session_close(sk_session **s);

/* Pull: the last step's (or finish's) results. latents: float32 [*n, C, H, W] (downloaded
 * on the first call after a step); frames: uint8 [*n, height, width, 3]. Valid until the
 * next step, finish or close. *n == 0 when the step made none. */
sk_status sk_session_latents(sk_session *s, const float **latents, int64_t *n,
                             int64_t *first_frame);
sk_status sk_session_frames(sk_session *s, const uint8_t **rgb, int64_t *n, int64_t *height,
                            int64_t *width);

/* Outputs the session writes its decoded frames to (needs decode). path: a video file
 * (.mp4/.mkv/.mov, any container FFmpeg muxes), a live stream paced to the clock (rtmp://,
 * srt:// or udp:// URL, or an HLS playlist DIR/NAME.m3u8), a directory for PNGs, or a
 * .safetensors file for `frames` [T, 3, H, W] float32. May be attached and detached
 * between steps; attaching the same path twice is an error. */
typedef struct {
    const char *kind;       /* NULL/"auto" (from the path), "video", "rtmp", "srt", "udp",
                               "hls" (a .m3u8 playlist), "png", "rgb" */
    int crf;                /* quality, lower is better: 0: the encoder's default (x264 23); 1..63
                               as the codec takes it; SK_CRF_LOSSLESS: lossless (x264 crf 0) */
    int timeout_ms;         /* rtmp: bound on every network call (0: 10000) */
    int reconnect_max_ms;   /* rtmp: reconnect backoff cap (0: fail when the peer goes) */
    int queue_frames;       /* 0: write in the step; N: a worker with an N-frame queue
                               (rtmp default: 8 chunks of frames) */
    /* video / rtmp, with FFmpeg's names and meanings (docs/OUTPUT.md); 0 / NULL: defaults */
    const char *codec;      /* libx264 (default where the container takes H.264), libx265,
                               libsvtav1, libvpx-vp9, gif, ... */
    const char *preset;     /* the encoder's preset (x264: ultrafast .. veryslow) */
    int64_t bitrate;        /* target bits/s (-b:v) */
    int64_t maxrate, bufsize; /* rate cap and its buffer (maxrate needs bufsize) */
    const char *const *metadata; /* "key", "value", ..., NULL: container tags / PNG text */
    const char *const *tee; /* more files (NULL-ended) that get the very same packets through
                               libavformat's tee muxer (one encode; a failing branch is dropped
                               and the others go on) */
} sk_output_opts;

/* sk_output_opts.crf: lossless (FFmpeg's crf 0; a crf of 0 in the struct means the default) */
#define SK_CRF_LOSSLESS (-1)

/* opts may be NULL. *id (may be NULL) names it for detach. */
sk_status sk_session_attach_output(sk_session *s, const char *path, const sk_output_opts *opts,
                                   int *id);
/* Closes and finalises that output. */
sk_status sk_session_detach_output(sk_session *s, int id);

/* Live control through stdin lines and/or an HTTP API (docs/LIVE.md); the commands act at
 * chunk boundaries (pause blocks inside sk_session_step until resume/step/stop). */
typedef struct {
    int control_stdin;         /* read commands from stdin */
    int control_port;          /* -1: no HTTP; 0: any free port */
    const char *control_bind;  /* NULL: 127.0.0.1 (not loopback: needs a token) */
    const char *control_token; /* bearer token */
    int max_body;              /* largest HTTP body (0: 65536) */
    int start_paused;          /* wait for resume/step before the first chunk */
    const char *embeds_file;   /* safetensors whose tensors `embeds NAME` commands may name */
} sk_control_opts;

/* Before the first step, once. *port (may be NULL): the HTTP port bound (-1 without). */
sk_status sk_session_start_control(sk_session *s, const sk_control_opts *o, int *port);

typedef struct {
    int64_t next_frame;       /* first latent frame of the next chunk */
    int64_t frames_total;     /* 0: unbounded */
    int64_t chunks;           /* chunks made */
    int64_t video_frames;     /* decoded frames handed out */
    int64_t queued_prompts;   /* prompts waiting for their boundary */
    int switches;             /* prompt switches applied */
    int stopping, done, paused;
    /* (fields added after the first release) */
    double elapsed_s;         /* wall time since the first step began (0 before it) */
    double lag_ms;            /* a paced (rtmp) output: how late its last frame left (0: on time
                                 or no paced output); the first output's */
    int64_t late_frames;      /* frames of that output that left after their time */
    int64_t dropped_frames;   /* frames dropped while a live connection was down */
} sk_session_status;

/* Any thread. */
sk_status sk_session_get_status(const sk_session *s, sk_session_status *out);

/* ---- measuring a session (session params stats = 1; `sinkstream bench` reads these) */
typedef struct {
    const char *phase;          /* "dit", "vae" (decode on the DiT's stream), "encode" (outputs) */
    const char *op;             /* "linear q/k/v/o", "self-attention", "copy (KV write, ...)", ... */
    double ms;                  /* the op's time in the profiled chunk, all calls */
    int64_t calls;
} sk_op_time;

typedef struct {
    int64_t chunks;             /* chunks timed: every step that made latents */
    const double *chunk_ms;     /* [chunks] each chunk's time, see timer */
    const uint64_t *chunk_hash; /* [chunks] FNV-1a 64 of each chunk's latents (x0) as the DiT
                                   made them (bytes of the activation dtype): equal hashes,
                                   bitwise equal latents */
    const char *timer;          /* "cuda events": device time from the chunk's first op to its
                                   last (with vae overlap: from the previous chunk's frames to
                                   this one's), no host wait between chunks; "host clock":
                                   wall time of the step with a device sync (the CPU, outputs
                                   attached, a profiled or unbounded session) */
    uint64_t backend_allocs;    /* allocations on the engine's backends inside this session's
                                   chunk work (DiT, decode, outputs; not prompt switches) and
                                   finish's decoder flush: 0 once the session exists */
    uint64_t device_mallocs;    /* cudaMalloc calls there (0 on the CPU) */
    uint64_t graph_records, graph_replays; /* CUDA graphs of the DiT's chunks */
    int64_t kv_cache_bytes;
    int vae_overlapped;         /* frames decoded on a second stream beside the next chunk */
    int64_t profile_chunk;      /* the chunk profiled; -1: none (yet) */
    const char *profile_timer;  /* "cuda events" or "host clock" */
    double profile_chunk_ms;    /* that chunk's time (ops one by one) */
    const sk_op_time *ops;      /* [n_ops] the profiled chunk's time by op, biggest first */
    int n_ops;
} sk_session_stats;

/* The driving thread, between steps or after finish (before close): waits for the device,
 * then reports. Pointers stay valid until the next step, finish, stats read or close. */
sk_status sk_session_get_stats(sk_session *s, sk_session_stats *out);

/* LongLive 2.0 image-to-video (docs/INPUTS.md): latent [c, h, w] host f32 is the normalised
 * Wan2.2-VAE latent of the conditioning image (sinkstream generate --image makes it; or
 * --image-latent FILE). It becomes latent frame 0 of the stream, kept at t = 0 in every
 * call of chunk 0 and output as frame 0, so the image stays in the global sink. Before the
 * first step; UniPC sessions (sampler "unipc") on one backend (not pipelined) only; not with
 * a video input (sk_session_attach_input; either order: SK_E_UNSUPPORTED). */
sk_status sk_session_set_image_latent(sk_session *s, const float *latent, int64_t c, int64_t h,
                                      int64_t w);

/* ---- video-to-video: a video input restyled live (docs/INPUTS.md) */
typedef struct {
    double strength;           /* 0..1: which sampler step a chunk starts from (N steps: start
                                  N - round(S N), at least one step runs); 1: text-to-video */
    const char *format;        /* FFmpeg input format ("lavfi", "v4l2", "rawvideo", ...); NULL:
                                  probed ("lavfi:GRAPH" as the source sets lavfi) */
    const char *options;       /* demuxer/device options "key=value:key=value" (NULL: none) */
    int realtime;              /* 1: read a file or pipe at its own rate (ffmpeg -re) */
    int timeout_ms;            /* network sources: bound on each read (0: 10000) */
    int reconnect_max_ms;      /* network sources: reconnect backoff cap (0: a drop fails) */
    int queue_frames;          /* resampled frames buffered (0: 8 chunks' worth for files and
                                  pipes, which wait when it is full; 2 chunks' for live sources,
                                  which drop their oldest frames) */
    int synthetic;             /* 1: in-memory frames (benchmarks; src ignored): a moving
                                  pattern, arriving when needed, or with realtime at fps */
    int64_t synthetic_frames;  /* synthetic: frames before the input ends (0: unbounded) */
} sk_session_input_opts;

/* Defaults: strength 0.6, reconnect_max_ms 8000, the rest 0 / NULL. */
sk_session_input_opts sk_session_input_opts_default(void);

/* Feeds the session from a video source before its first step: src is anything FFmpeg opens (a
 * file, rtmp://, srt://, udp://, http://, /dev/videoN, lavfi:GRAPH, "-" for stdin). Frames are
 * resampled to the session's fps and frame size (scaled to cover, centre cropped), encoded with
 * the engine's TAEHV encoder chunk by chunk, noised to the strength's start step and denoised
 * from there. The session ends when the input does (after its last frames; a last partial
 * chunk is shorter, or padded with the last frame for kv_policy multishot). Needs an engine
 * whose VAE file has the encoder, one backend (not pipelined), a kv_policy other than
 * rolling, and no image latent (sk_session_set_image_latent). */
sk_status sk_session_attach_input(sk_session *s, const char *src, const sk_session_input_opts *o);

typedef struct {
    char state[16];            /* "running", "reconnecting", "ended", "failed"; "" without input */
    char kind[16];             /* "file", "pipe", "lavfi", "device", "network", "synthetic" */
    int64_t src_width, src_height;
    double src_fps;            /* the source's nominal rate (0: unknown) */
    int64_t decoded;           /* source frames decoded */
    int64_t frames;            /* frames at the session's rate and size */
    int64_t repeated, skipped; /* rate conversion: slots that reused a frame, frames unused */
    int64_t dropped;           /* live sources: frames dropped because generation fell behind */
    int64_t used;              /* frames encoded so far (padding excluded) */
    int reconnects;
    double strength;
    int start_step;            /* the first sampler step a chunk runs (0: text-to-video) */
    int64_t latency_n;         /* frames whose latency was measured */
    double latency_p50_ms, latency_p99_ms, latency_max_ms; /* an input frame's arrival (decoded,
                                  resampled, queued) to the same frame handed to the outputs */
    char error[256];           /* what ended the input, "" if nothing went wrong */
} sk_session_input_status;

/* Any thread. Zeros (state "") for a session without input. */
sk_status sk_session_get_input_status(const sk_session *s, sk_session_input_status *out);

#ifdef __cplusplus
}
#endif
#endif
