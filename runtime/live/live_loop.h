/* live_loop.h - the live side of a session (docs/LIVE.md): the control
 * channels (stdin lines, HTTP), what happens at a chunk boundary (pause /
 * step / stop, a prompt switch with its latency) and the status snapshot.
 * runtime/engine/session.c calls it around sk_stream_step; the stop flag is
 * set by sk_session_stop (the CLI's SIGINT/SIGTERM handler calls that).
 */
#ifndef SK_TOOLS_GEN_LIVE_H
#define SK_TOOLS_GEN_LIVE_H

#include <stdint.h>

#include "runtime/live/control.h"
#include "runtime/output/output.h"
#include "runtime/stream/stream.h"
#include "runtime/live/prompts.h"

/* Options (fields of cmd_generate's option table). */
typedef struct {
    int control_stdin;         /* --control-stdin */
    int control_port;          /* --control-port; -1 = no HTTP */
    const char *control_bind;  /* --control-bind */
    const char *control_token; /* --control-token / $SK_CONTROL_TOKEN */
    int start_paused;          /* --start-paused */
    int max_body;              /* --control-max-body (bytes) */
} gen_live_opts;

typedef struct {
    sk_control *ctl;           /* NULL without --control-* */
    const gen_live_opts *o;
    int fps;
    int64_t chunk, frames_total;
    int paused;
    int64_t steps_left;        /* > 0: chunks left of a `step` */
    int stopping;
    /* a live prompt taken at this boundary */
    sk_ctl_cmd pend;
    /* what runs now */
    uint64_t prompt_id;
    char prompt_kind[8], prompt[512];
    int64_t prompt_since;
    /* counters */
    double t_start, t_paused, paused_total;
    int switches;
    uint64_t last_switch_id;
    int64_t last_switch_frame;
    double last_switch_ms, last_recache_ms;
    char last_error[256];
    double ring_t[8];
    int64_t ring_vf[8];
    int ring_n;
    int64_t chunks;
    const volatile int *stop_flag; /* != 0: stop at the next boundary (signal, API) */
    sk_ctl_status input;       /* the in_* fields: a video-to-video input's state, set by the
                                  session before each boundary (in_state "": none) */
} gen_live;

/* Sets up control (when asked). emb: the --text-embeds file (its tensor names
 * are the embeds a command may name); have_text: a text encoder stays loaded
 * for text prompts; stop_flag (may be NULL): set by a signal handler or
 * sk_session_stop, read at every boundary. */
sk_status gen_live_start(gen_live *lv, const gen_live_opts *o, const sk_st_file *emb,
                         int have_text, int64_t frames_total, int64_t chunk, int fps,
                         const volatile int *stop_flag);
void gen_live_finish(gen_live *lv);

/* At a chunk boundary, before the step: takes the queued commands (pause,
 * resume, step, stop, prompts), waits while paused, publishes the status.
 * Returns 1 when the run should stop here. A prompt command taken is kept
 * for gen_live_take_prompt. */
int gen_live_boundary(gen_live *lv, const sk_stream *s, const sk_output *out, int64_t vframes);

/* The live prompt of this boundary, resolved and fitted (the last of several
 * queued wins); 0 when none or when it failed (logged, and in the status's
 * last_error: the run goes on with the prompt it had). */
int gen_live_take_prompt(gen_live *lv, const sk_st_file *emb, gen_text *text,
                         const sk_dit_config *cfg, gen_prompt *out, uint64_t *id, double *t_recv);

/* Switches the stream to p (scheduled: id 0) with the re-cache, timing it. */
sk_status gen_live_switch(gen_live *lv, sk_stream *s, const gen_prompt *p, uint64_t id,
                          double t_recv, const char *source);

/* Sets the prompt the run starts with (for the status). */
void gen_live_initial(gen_live *lv, const gen_prompt *p);

/* After a chunk: step accounting, rate, status. */
void gen_live_after_chunk(gen_live *lv, const sk_stream *s, const sk_output *out,
                          int64_t vframes);

#endif
