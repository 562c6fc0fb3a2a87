/* pp_setup.h - a session over pipeline stages (docs/MULTIGPU.md); runtime/engine/session.c
 * opens it for an engine made with gpus > 1 or pp_stages (the CLI: generate --gpus ...).
 *
 *   --gpus N          N CUDA devices, one stage each, NCCL between them
 *   --pp-stages N     N stages over the loopback transport: N CPU backends
 *                     (tests), or N stages on one GPU; with --gpus N it must
 *                     equal N
 *   --pp-split LIST   blocks per stage ("10,10,10"); default: balanced by the
 *                     FLOP estimate of pp_plan.h
 *   --pp-transport    auto (NCCL for --gpus > 1, else loopback) | loopback |
 *                     nccl (with --gpus 1 --pp-stages 1: NCCL's self-loop)
 * The latents are those of the single-backend run (bit-identical on the
 * CPU). Not with prompt switches, live control or --dump-steps yet.
 */
#ifndef SK_ENGINE_PP_SETUP_H
#define SK_ENGINE_PP_SETUP_H

#include "dit/model.h"
#include "runtime/stream/pp_stream.h"

typedef struct {
    int gpus;          /* --gpus (1) */
    int stages;        /* --pp-stages (0: --gpus decides) */
    const char *split; /* --pp-split */
    int transport;     /* 0 auto, 1 loopback, 2 nccl */
    int cpu_ref;       /* CPU stages on the reference backend (device "cpu-ref") */
} gen_pp_opts;

/* Is a pipelined run asked for? */
int gen_pp_enabled(const gen_pp_opts *o);
/* Checks the options against each other and the device (cuda: 1) before any
 * weight is loaded; NULL when fine, else the message for a usage error. */
const char *gen_pp_usage(const gen_pp_opts *o, int cuda, char *buf, size_t cap);
/* The device the VAE and the x0 hand-off use: the last stage's GPU. */
const char *gen_pp_main_device(const gen_pp_opts *o, int cuda, char *buf, size_t cap);

typedef struct gen_pp gen_pp;

/* Makes the stage backends, loads each stage's blocks of `dit` (cfg: the
 * config of the globals-only model the caller loaded), the transport, and
 * the pipelined stream with the prompt; chunks come out on out_be. */
sk_status gen_pp_open(const gen_pp_opts *o, int cuda, sk_dtype act, const char *dit,
                      const sk_dit_config *cfg, sk_dtype wdtype, const sk_stream_params *p,
                      const float *ctx, int64_t rows, sk_backend *out_be, gen_pp **out);
/* The next chunk: x0 [n, C, H, W] on out_be (valid until the next call). */
sk_status gen_pp_step(gen_pp *g, sk_tensor *x0, int64_t *frame0);
int gen_pp_done(const gen_pp *g);
int64_t gen_pp_next_frame(const gen_pp *g);
/* Waits for the last clean passes, logs each stage's share of the wall time. */
sk_status gen_pp_finish(gen_pp *g);
void gen_pp_close(gen_pp **g);

#endif
