/* pp_stream.h - one or more generation streams of the causal DiT, pipelined
 * over several stages (GPUs, or loopback threads on the CPU).
 *
 * What sk_stream does on one backend, split by blocks (pp_plan.h): stage k
 * holds blocks [first[k], last[k]) (weights: a model loaded with
 * sk_dit_load_blocks; the KV cache of those blocks; the cross-attention K/V
 * of those blocks), stage 0 also the patch embedding, the last stage also
 * the head and the sampler (x0, re-noise). Each stage is a thread that runs
 * the tasks of the schedule in pp_plan.h's order and talks to its
 * neighbours through a transport (pp_transport.h): hidden states [n*S, D]
 * go down the pipeline, latents [n, C, H, W] come back to stage 0.
 *
 * Every chunk sees exactly the KV cache it would see on one device (the
 * dependency rule of pp_plan.h), and each stage runs exactly the ops
 * sk_dit_forward runs for its blocks, so on the CPU backend the latents are
 * bit-identical to sk_stream's (tests/test_pp.c). One lane overlaps only
 * the clean pass of chunk c with pass 0 of chunk c+1 (the single-device
 * dependencies allow no more); lanes (independent streams, e.g. several
 * users) fill the pipeline: see docs/MULTIGPU.md.
 *
 * The stage threads start at the first sk_pp_stream_next and run ahead on
 * their own; the last stage hands each chunk's x0 (f32, host) to a bounded
 * queue that sk_pp_stream_next drains. After any failure the stream is
 * unusable (unlike sk_stream it is not transactional): every later call
 * returns the first failure.
 */
#ifndef SK_PP_STREAM_H
#define SK_PP_STREAM_H

#include "runtime/pp/pp_plan.h"
#include "runtime/pp/pp_transport.h"
#include "runtime/stream/stream.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Called on stage `stage`'s thread right before a pass runs there, with
 * that stage's cache of the lane (tests: the KV state each stage sees). */
typedef void (*sk_pp_pass_fn)(void *user, int stage, int lane, int chunk, int pass,
                              const sk_kv_cache *kv);

typedef struct {
    uint64_t seed;          /* Philox seed when noise is NULL */
    sk_noise_source *noise; /* borrowed */
} sk_pp_lane;

typedef struct {
    int n_stages;
    sk_backend *be[SK_PP_MAX_STAGES];            /* borrowed; stage k's thread alone uses be[k] */
    const sk_dit_model *model[SK_PP_MAX_STAGES]; /* borrowed; on be[k], holding the stage's blocks */
    sk_pp_plan plan;
    sk_pp_transport *transport; /* borrowed; NULL: a loopback transport made here */
    /* As for sk_stream. seed / noise are lane 0's when n_lanes is 0. on_step
     * runs on the last stage's thread (chunk = the lane's chunk index). debug
     * and prompt_switch are not supported with pipelining (an error). */
    sk_stream_params sp;
    int n_lanes;                          /* 0: one lane from sp */
    sk_pp_lane lanes[SK_PP_MAX_LANES];    /* when n_lanes >= 1 */
    int out_depth;                        /* chunks the output queue holds (0: 2) */
    sk_pp_pass_fn on_pass;
    void *on_pass_user;
    int trace;  /* record every (task, stage)'s start and end order (bounded runs; tests) */
} sk_pp_params;

typedef struct sk_pp_stream sk_pp_stream;

/* Validates everything (plan vs models, stream params), then allocates every
 * stage's state on its backend. Starts nothing. */
sk_status sk_pp_stream_init(const sk_pp_params *p, sk_pp_stream **out);
/* Stops the stage threads (if running) and frees everything it made. */
void sk_pp_stream_free(sk_pp_stream **s);

/* Sets a lane's prompt (ctx [rows, text_dim] f32, copied) before the first
 * sk_pp_stream_next; a prompt switch while running is not supported yet. */
sk_status sk_pp_stream_set_prompt(sk_pp_stream *s, int lane, const float *ctx, int64_t rows);

/* The next chunk in the schedule's order (for c: for lane: chunk c of the
 * lane): *lane, *frame0, and x0 [n, C, H, W] f32 on the host (*x0_host,
 * valid until the next call). When out (a tensor [chunk, C, H, W] on a
 * backend no stage uses) is given, x0 is also uploaded into its first n
 * rows and *x0 is that view. Any pointer may be NULL. */
sk_status sk_pp_stream_next(sk_pp_stream *s, sk_tensor *out, int *lane, int64_t *frame0,
                            int64_t *n, const float **x0_host, sk_tensor *x0);
/* 1 when every lane has handed out every requested frame. */
int sk_pp_stream_done(const sk_pp_stream *s);
int64_t sk_pp_stream_chunk_frames(const sk_pp_stream *s);

/* After the last chunk was taken: waits for the stage threads to end (the
 * last clean passes) and returns the first failure, if any. */
sk_status sk_pp_stream_finish(sk_pp_stream *s);

/* After sk_pp_stream_finish: seconds each stage spent in passes, the wall time since the
 * threads started, and with params.trace the start/end order numbers
 * [task * n_stages + stage] (NULL otherwise; owned by s). */
typedef struct {
    double busy_s[SK_PP_MAX_STAGES];
    double wall_s;
    int64_t tasks;
    const int64_t *start_seq, *end_seq;
    const sk_pp_sched *sched;
} sk_pp_stats;
void sk_pp_stream_stats(const sk_pp_stream *s, sk_pp_stats *out);

#ifdef __cplusplus
}
#endif
#endif
