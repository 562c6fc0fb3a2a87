/* pp_plan.h - pipeline parallelism: the stage plan and the in-flight schedule.
 *
 * A stream of the causal DiT is split over n_stages stages (one GPU each, or
 * loopback threads on the CPU): stage k runs the contiguous blocks
 * [first[k], last[k]) and holds their weights and their KV cache. Stage 0
 * also runs the patch embedding, the last stage the head and the sampler;
 * every stage recomputes the (tiny) time embedding from t. See
 * docs/MULTIGPU.md for the design and the proof sketch.
 *
 * The schedule. A task is one DiT pass (lane, chunk, pass): pass 0..steps-1
 * are the denoising passes, pass == steps the clean pass that leaves the
 * chunk's clean K/V in the cache. Lanes are independent streams (their own
 * KV caches, prompt and noise) that share the stages. Every stage runs the
 * tasks in one global order:
 *     for chunk c: for pass p in 0..steps: for lane l: (l, c, p)
 * and a task may start on stage k when (the dependency rule):
 *   (A) k > 0:            the same task finished on stage k-1 (its hidden state);
 *   (B) k = 0 and p > 0:  (l, c, p-1) finished on the last stage (the sampler
 *                         made this pass's latents; for the clean pass, x0);
 *   (C) p = 0 and c > 0:  (l, c-1, steps) finished on stage k (the previous
 *                         chunk's clean pass wrote and committed this stage's
 *                         layers' K/V);
 *   (D)                   the task before it in the order finished on stage k.
 * (C) is what makes the cache of every stage go through exactly the states
 * of a single-device run: stage k's cache for lane l is touched only by lane
 * l's tasks on stage k, in the serial order (D), each with the same input
 * (A, B, by induction), so every write and every visible set is the serial
 * one. The order is a topological order of (A)-(D) (every dependency is an
 * earlier task, or the same task on an earlier stage), so with FIFO links
 * nothing deadlocks; a lane has at most two tasks alive at once (the clean
 * pass of chunk c and pass 0 of chunk c+1), so links of 2 * lanes slots
 * never block a sender for good.
 */
#ifndef SK_PP_PLAN_H
#define SK_PP_PLAN_H

#include <stddef.h>
#include <stdint.h>

#include "runtime/core/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SK_PP_MAX_STAGES 16
#define SK_PP_MAX_LANES 16

typedef struct {
    int n_stages, n_blocks;
    int first[SK_PP_MAX_STAGES], last[SK_PP_MAX_STAGES]; /* stage k: blocks [first, last) */
    double cost[SK_PP_MAX_STAGES];                       /* estimated cost of a pass per stage */
} sk_pp_plan;

/* The contiguous split of n_blocks blocks over n_stages stages that
 * minimises the most expensive stage (then the spread), where a stage costs
 * the sum of its blocks' costs, plus embed_cost on stage 0 and head_cost on
 * the last. block_cost [n_blocks] (measured or estimated; NULL: all 1).
 * Every stage gets at least one block: n_stages > n_blocks is an error. */
sk_status sk_pp_plan_balanced(int n_blocks, int n_stages, const double *block_cost,
                              double embed_cost, double head_cost, sk_pp_plan *out);
/* A given split: sizes[n_stages] blocks per stage, summing to n_blocks. */
sk_status sk_pp_plan_from_sizes(int n_blocks, int n_stages, const int *sizes, sk_pp_plan *out);
/* Parses "10,10,10" (blocks per stage) into a plan. */
sk_status sk_pp_plan_parse(const char *text, int n_blocks, int n_stages, sk_pp_plan *out);
/* "0-9 | 10-19 | 20-29" */
const char *sk_pp_plan_str(const sk_pp_plan *p, char *buf, size_t cap);

/* Relative cost of one block, and of the embedding and head, for a chunk of
 * F frames of S tokens attending to kv_frames frames (FLOP count; the blocks
 * are identical in shape, so only the ends differ). */
void sk_pp_cost_estimate(int64_t dim, int64_t ffn_dim, int64_t in_dim, int64_t text_len,
                         int64_t F, int64_t S, int64_t kv_frames, double *block,
                         double *embed, double *head);

/* ---- the schedule ---- */

typedef struct {
    int lane, chunk, pass; /* pass == steps: the clean pass */
} sk_pp_task;

typedef struct {
    int n_stages, n_lanes, steps;
    int64_t n_chunks; /* per lane; <= 0: unbounded */
} sk_pp_sched;

/* Number of tasks (INT64_MAX when unbounded). */
int64_t sk_pp_sched_count(const sk_pp_sched *s);
/* The i-th task of the order every stage runs, and its index. */
sk_pp_task sk_pp_sched_task(const sk_pp_sched *s, int64_t i);
int64_t sk_pp_sched_index(const sk_pp_sched *s, sk_pp_task t);
/* The dependencies (A)-(D) of task t on stage k: up to 4 (task index,
 * stage) pairs; returns the count. */
int sk_pp_sched_deps(const sk_pp_sched *s, int64_t i, int stage, int64_t dep_task[4],
                     int dep_stage[4]);

/* Timeline of the schedule for given costs (same units throughout):
 * pass_cost[k] a denoising pass on stage k, clean_cost[k] the clean pass,
 * sampler_cost on the last stage after each denoising pass, link_cost per
 * message. Tasks start as soon as the rule allows (an estimate: no
 * contention modelled). Steady-state time per chunk of one lane is measured
 * over the second half of the run. start/end [count * n_stages] may be NULL. */
typedef struct {
    double makespan;
    double chunk_period;                /* steady state, per lane */
    double busy[SK_PP_MAX_STAGES];      /* fraction of the makespan each stage computes */
} sk_pp_sim_result;

sk_status sk_pp_simulate(const sk_pp_sched *s, const double *pass_cost, const double *clean_cost,
                         double sampler_cost, double link_cost, double *start, double *end,
                         sk_pp_sim_result *res);

#ifdef __cplusplus
}
#endif
#endif
