/* engine_impl.h - what is behind the opaque handles of runtime/sinkstream.h.
 *
 * Private to runtime/engine/: engine.c (models, text, handle registry),
 * session.c (the chunk loop), session_io.c (outputs, control, pull calls).
 * The engine owns the loaded models; a session owns one stream's state and
 * borrows the engine's models.
 */
#ifndef SK_ENGINE_IMPL_H
#define SK_ENGINE_IMPL_H

#include <pthread.h>
#include <stdint.h>

#include "cuda/sk_cuda.h"
#include "dit/model.h"
#include "runtime/core/backend.h"
#include "runtime/core/status.h"
#include "runtime/engine/chunk_finite.h"
#include "runtime/engine/model_dir.h"
#include "runtime/engine/pp_setup.h"
#include "runtime/engine/turn_lock.h"
#include "runtime/io/safetensors.h"
#include "runtime/live/live_loop.h"
#include "runtime/live/prompt_cache.h"
#include "runtime/live/prompts.h"
#include "runtime/output/output.h"
#include "runtime/sinkstream.h"
#include "runtime/stream/stream.h"
#include "runtime/stream/vae_pipe.h"
#include "vae/taehv.h"

struct sk_engine {
    sk_backend *be;            /* the DiT's (and without overlap the VAE's) backend */
    sk_dit_model *m;           /* pipelined: config + global tensors only */
    sk_backend *vae_be;        /* overlap: the VAE's own stream on the DiT's device */
    sk_taehv *vae;             /* NULL without a VAE */
    gen_text text;             /* text.te NULL without an encoder */
    pthread_mutex_t text_mu;   /* one encode at a time (the encoder and its backend) */
    sk_turn_lock step_turn;    /* GPU: one chunk at a time on the device's stream, turns
                                * in arrival order (turn_lock.h) */
    int serialize_steps;       /* 1 on a non-CPU backend */
    pthread_mutex_t mu;        /* n_sessions */
    int n_sessions;
    int cuda;
    sk_dtype act, wdtype;
    char *dit_path;            /* pipelined sessions load their stages from it */
    gen_pp_opts pp;
    char *pp_split;
    int pipelined;
    sk_model_dir *md;
    char device[32];
    /* device memory samples (engine_stats.c), under mu */
    size_t mem_min_free, mem_free_at_open, mem_total;
};

/* A prompt waiting for its chunk boundary. */
typedef struct sk_queued_prompt {
    gen_prompt p;              /* resolved and fitted: p.ctx [rows, text_dim] */
    int64_t frame;             /* SK_FRAME_NEXT_CHUNK or a latent frame */
    sk_switch_mode mode;
    int deferred;              /* p.ctx NULL: read or encoded through the session's prompt
                                * cache when it comes due (sk_session_queue_prompt_deferred) */
    uint64_t seq;              /* queue order */
    struct sk_queued_prompt *next;
} sk_queued_prompt;

typedef struct {
    int id;
    char *path;
    sk_output *o;
} sk_session_output;

#define SK_SESSION_MAX_OUTPUTS 8

/* Session params stats: chunk times, latent hashes, allocation counts, the op profile
 * (session_stats.c). */

typedef struct {
    int events;                /* chunk times from CUDA events (decided at the first chunk) */
    int decided;
    int64_t n, cap;            /* chunks timed; room in ms/hash */
    double *ms;
    uint64_t *hash;
    double t0;
    sk_cuda_timer *tm, *tv;    /* chunk start/end marks; VAE-stream marks (overlap) */
    sk_tensor ring;            /* copies of the last R chunks' x0, hashed when full */
    int R, held;
    int64_t *ring_rows;        /* [R] rows of each copy */
    void *x0_host;
    uint64_t a0, v0, m0;       /* allocation counters at the start of the chunk work */
    uint64_t allocs, mallocs;
    int profiling;             /* an op profile is running (this chunk) */
    sk_op_time *ops;
    int n_ops;
    double prof_ms;
    int64_t prof_chunk;
} sk_session_meter;

struct sk_session {
    sk_engine *e;
    sk_session_params p;       /* strings below are the session's copies */
    char *noise_file, *dump_steps, *kv_policy, *rope, *recache, *sampler;
    int64_t chunk;             /* the chunk size in effect (frames < chunk: frames) */
    sk_stream_params sp;
    sk_stream *s;              /* NULL when pipelined */
    gen_pp *ppl;               /* pipelined: made at the first step (needs the prompt) */
    sk_noise_source *ns;
    sk_vae_pipe *dec;
    int64_t vid_h, vid_w;      /* decoded frame size */
    /* the live loop (control channels, pause/step/stop, status) */
    gen_live lv;
    gen_live_opts lv_opts;
    sk_st_file *ctl_emb;       /* embeds a control command may name */
    volatile int stop_flag;    /* sk_session_stop: any thread, signal handlers */
    volatile int abort_flag;   /* sk_session_abort: the live outputs' network waits end */
    int control_started;
    /* prompts */
    pthread_mutex_t q_mu;      /* the queue and the status snapshot */
    sk_queued_prompt *queue;
    sk_queued_prompt *q_last;  /* the queue's tail: a long schedule queues in linear time */
    gen_prompt_cache pcache;   /* deferred prompts' contexts (bounded; made at first use) */
    sk_st_file *sched_emb;     /* the embeddings file deferred prompts name */
    char *sched_emb_path;
    gen_finite fin;            /* each chunk's x0 checked for NaN/Inf (issue 15 #7) */
    uint64_t q_seq;
    int64_t q_len;
    int have_prompt;
    /* results of the last step */
    sk_tensor x0;              /* view of the chunk's latents (valid until the next step) */
    int64_t x0_frame0, x0_n;
    float *lat_host;           /* [chunk, C, H, W] host copy, made on demand */
    int lat_valid;
    const float *rgb;          /* the decoder's host frames [n, 3, H, W] (until the next push) */
    int64_t rgb_n, rgb_first;
    uint8_t *rgb8;             /* [n, H, W, 3] on demand */
    int64_t rgb8_cap;
    int rgb8_valid;
    int64_t vframes;           /* decoded frames handed out so far */
    /* outputs */
    sk_session_output outs[SK_SESSION_MAX_OUTPUTS];
    int n_outs, next_out_id;
    /* --dump-steps */
    sk_st_writer *dump;
    sk_status dump_st;
    /* state */
    int64_t chunks;
    double t_first;            /* sk_progress_now() when the first step began (0: none yet) */
    int stopped, finished, broken;
    sk_session_status snap;    /* for sk_session_get_status (under q_mu) */
    sk_session_meter *meter;   /* session params stats; NULL without */
    struct sk_session_v2v *v2v;/* video-to-video input (session_input.c); NULL without */
};

/* Handle registry: a stale or foreign pointer is reported, never dereferenced. */
int sk_api_engine_live(const sk_engine *e);
int sk_api_session_live(const sk_session *s);
void sk_api_session_register(sk_session *s, int add);

/* Checks a handle at the top of a public call. */
#define SK_API_SESSION(s)                                                                     \
    SK_CHECK((s) && sk_api_session_live(s), SK_E_INVALID_ARG,                              \
             "%s: %s session (closed, or never created)", __func__, (s) ? "not a live" : "NULL")

/* session.c: appends a prompt to the queue (takes gp's contents). */
/* The frame and switch mode of a prompt to queue are valid for this session (a shot cut needs
 * the multishot policy and a chunk boundary). */
sk_status sk_session_check_queue_args(const sk_session *s, int64_t frame, sk_switch_mode mode);
sk_status sk_session_queue_push(sk_session *s, gen_prompt *gp, int64_t frame, sk_switch_mode mode,
                                int deferred);
/* session_prompts.c: a deferred prompt's context, from the cache or read/encoded now, fitted
 * to the DiT; no-op for a prompt queued with its context. */
sk_status sk_session_resolve_due(sk_session *s, sk_queued_prompt *q);
void sk_session_prompts_free(sk_session *s);

/* Encodes text into a fitted prompt (engine.c). */
sk_status sk_engine_prompt_from_text(sk_engine *e, const char *text, int64_t frame,
                                     gen_prompt *out);

/* session_io.c: frames to the outputs and the callback; closes all outputs. */
sk_status sk_session_emit_frames(sk_session *s, const float *rgb, int64_t n);
sk_status sk_session_close_outputs(sk_session *s);
const sk_output *sk_session_first_output(const sk_session *s);

/* session_input.c: video-to-video. prepare reads the next chunk's input frames (*end: none
 * left, or stopping); step encodes them and runs the chunk from the strength's step;
 * frames_out records the latency of output frames [first, first + n); publish copies the
 * input's state into the live status. */
typedef struct sk_session_v2v sk_session_v2v;
sk_status sk_session_input_prepare(sk_session *s, int *end);
sk_status sk_session_input_step(sk_session *s, sk_tensor *x0, int64_t *f0);
void sk_session_input_frames_out(sk_session *s, int64_t first, int64_t n);
void sk_session_input_publish(sk_session *s);
void sk_session_input_free(sk_session *s);

/* session_stats.c: the meter around a chunk's work (no-ops without stats). */
sk_status sk_meter_create(sk_session *s);
void sk_meter_free(sk_session *s);
sk_status sk_meter_chunk_begin(sk_session *s);
void sk_meter_phase(sk_session *s, const char *phase); /* "vae", "encode" */
void sk_meter_after_decode(sk_session *s);
sk_status sk_meter_chunk_end(sk_session *s, const sk_tensor *x0);
void sk_meter_step_failed(sk_session *s);              /* ends a running profile */
void sk_meter_alloc_begin(sk_session *s);              /* around finish's decoder flush */
void sk_meter_alloc_end(sk_session *s);
/* engine_stats: a sample of the device's free memory into the engine's record */
void sk_engine_sample_memory(sk_engine *e);

#endif
