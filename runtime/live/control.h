/* control.h - live control of a running generation (docs/LIVE.md).
 *
 * Commands come from other threads (a stdin reader, the HTTP server of
 * control_http.c) and wait in a bounded, mutex-protected queue; the generator
 * takes them at chunk boundaries (sk_control_pop), so a change of prompt
 * applies from the next chunk. The generator publishes a status snapshot
 * (sk_control_publish) that the readers copy out (GET /status).
 *
 * Commands (stdin lines; HTTP has the same set, see control_http.c):
 *   prompt TEXT      switch to a text prompt (needs the text encoder)
 *   embeds NAME      switch to a tensor of --text-embeds
 *   pause | resume   stop / restart generating at the next chunk boundary
 *   step [N]         generate N chunks (default 1), then pause; commands
 *                    queued after it wait until those chunks are done
 *   stop             end the run at the next chunk boundary (outputs are
 *                    finalised); takes effect even while steps are pending
 *   status           (stdin only) print the status JSON on stdout
 *   help             (stdin only) list the commands on stderr
 *
 * Thread safety: every function may be called from any thread, except that
 * sk_control_free must not race with the others.
 */
#ifndef SK_CONTROL_H
#define SK_CONTROL_H

#include <stddef.h>
#include <stdint.h>

#include "runtime/core/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    SK_CTL_NONE = 0,
    SK_CTL_PROMPT,  /* arg: prompt text */
    SK_CTL_EMBEDS,  /* arg: tensor name in --text-embeds */
    SK_CTL_PAUSE,
    SK_CTL_RESUME,
    SK_CTL_STEP,    /* n: chunks */
    SK_CTL_STOP,
} sk_ctl_kind;

typedef struct {
    sk_ctl_kind kind;
    char *arg;        /* owned by the receiver after sk_control_pop (sk_ctl_cmd_free) */
    int64_t n;
    uint64_t id;      /* 1, 2, ... in arrival order */
    double t_recv;    /* monotonic seconds at arrival */
    char source[16];  /* "stdin", "http" */
} sk_ctl_cmd;

const char *sk_ctl_kind_name(sk_ctl_kind k);
void sk_ctl_cmd_free(sk_ctl_cmd *c);

/* What the generator publishes (at chunk boundaries) and GET /status shows. */
typedef struct {
    char state[16];           /* "starting" "running" "paused" "stopping" "done" */
    int64_t frame;            /* next latent frame (a chunk boundary) */
    int64_t frames_total;     /* latent frames of the run; 0 = until stopped */
    int64_t chunk;            /* latent frames per chunk */
    int64_t chunks;           /* chunks generated */
    int64_t video_frames;     /* decoded video frames written (0 without decode) */
    int64_t steps_left;       /* chunks left of a `step` */
    double fps;               /* video frames per wall second over the last chunks */
    double target_fps;        /* --fps */
    double lag_ms;            /* generation behind real time (wall time not paused minus
                                 video time made); 0 when ahead */
    double uptime_s;          /* at the last publish; /status reports it as of the request,
                               * from t_start, so a slow first chunk does not look frozen */
    double t_start;           /* sk_progress_now() when the run started; 0 = unknown */
    /* prompt */
    uint64_t prompt_id;       /* command id of the current prompt; 0: command line/schedule */
    char prompt_kind[8];      /* "embeds" | "text" */
    char prompt[512];         /* the current prompt (text truncated) */
    int64_t prompt_since;     /* latent frame it applies from */
    int pending;              /* commands waiting in the queue */
    /* KV cache */
    char kv_policy[16];
    int64_t kv_window, kv_sink, kv_cached;
    char recache[16];         /* "on" | "off" | "sink" */
    int switches;
    uint64_t last_switch_id;
    int64_t last_switch_frame;
    double last_switch_ms;    /* command arrival -> new prompt applied (recache done) */
    double last_recache_ms;
    int64_t last_recache_from, last_recache_n;
    /* live output (0 / "" when there is none) */
    char output[16];          /* "rtmp" | "video-file" | ... */
    int out_connected;
    int out_reconnects;
    int64_t out_sent, out_dropped;
    double out_lag_ms;        /* how late the last frame left the pacer */
    double out_stall_ms;      /* total time the stream fell behind its clock */
    char last_error[256];     /* the last command that failed when applied */
    /* video-to-video input (docs/INPUTS.md); in_state "" when there is none */
    char in_state[16];        /* "running" "reconnecting" "ended" "failed" */
    char in_kind[16];         /* "file" "pipe" "lavfi" "device" "network" "synthetic" */
    int64_t in_frames, in_dropped, in_repeated, in_skipped;
    int in_reconnects;
    double in_strength;
    int in_start_step;
    double in_latency_p50_ms, in_latency_p99_ms; /* input frame arrival -> its output */
} sk_ctl_status;

typedef struct {
    int max_queue;                 /* 0 -> 64 */
    size_t max_arg_bytes;          /* longest prompt text / name; 0 -> 16384 */
    int accept_text;               /* a text encoder is loaded */
    const char *const *embeds;     /* names allowed for SK_CTL_EMBEDS (copied); NULL/0: none */
    int n_embeds;
} sk_control_params;

typedef struct sk_control sk_control;

sk_status sk_control_create(const sk_control_params *p, sk_control **out);
/* Stops the stdin and HTTP threads, then frees. Accepts NULL. */
void sk_control_free(sk_control **c);

/* Queues a command (arg copied). Fails without queueing, with a message fit
 * for a user: SK_E_INVALID_ARG for a bad value (unknown embeds name, empty or
 * too long text, step count out of 1..1000000), SK_E_UNSUPPORTED when the run
 * cannot do it (text without an encoder, anything after stop), SK_E_OOM when
 * the queue is full. *id (may be NULL) gets the command id. */
sk_status sk_control_push(sk_control *c, sk_ctl_kind k, const char *arg, int64_t n,
                          const char *source, uint64_t *id);

/* Parses one command line (see the list above) and queues it. "status" and
 * "help" are answered here (stdout / stderr) and queue nothing (*id = 0). */
sk_status sk_control_push_line(sk_control *c, const char *line, const char *source,
                               uint64_t *id);

/* HTTP status code for a push failure: 400, 409, 503. */
int sk_control_http_code(sk_status s);

/* Generator side: takes the oldest command; returns 1 when one was taken. */
int sk_control_pop(sk_control *c, sk_ctl_cmd *out);
/* Generator side: waits up to timeout_s for a command to be queued (or stop);
 * returns 1 when one is waiting. */
int sk_control_wait(sk_control *c, double timeout_s);
/* 1 once a stop was queued (or sk_control_request_stop called). */
int sk_control_stop_requested(sk_control *c);
void sk_control_request_stop(sk_control *c);
int sk_control_pending(sk_control *c);

void sk_control_publish(sk_control *c, const sk_ctl_status *st);
/* fn (may be NULL) refreshes the copy sk_control_status_json prints, as of the request, from
 * any thread (a video-to-video input's state while the generator waits for frames).
 * Set and cleared by the generator's thread; fn must stay valid until cleared. */
void sk_control_set_status_hook(sk_control *c, void (*fn)(void *user, sk_ctl_status *st),
                                void *user);
void sk_control_get_status(sk_control *c, sk_ctl_status *out);
/* The status as one JSON object (malloc'd, caller frees); NULL on OOM. */
char *sk_control_status_json(sk_control *c);

/* Reads command lines from fd (stdin: 0) on a thread until EOF or free.
 * Errors are reported on stderr naming the line; the run goes on. */
sk_status sk_control_stdin_start(sk_control *c, int fd);

/* The HTTP API (control_http.c, libmicrohttpd). */
typedef struct {
    const char *bind;       /* numeric address; NULL -> "127.0.0.1" ("localhost" ok) */
    int port;               /* 0 -> any free port (sk_control_http_port tells) */
    const char *token;      /* bearer token; required when bind is not loopback */
    size_t max_body;        /* request body limit; 0 -> 65536 */
} sk_control_http_params;

/* Starts the server thread. SK_E_UNSUPPORTED in a build without
 * libmicrohttpd; SK_E_INVALID_ARG for a non-loopback bind without a token or
 * a bad address; SK_E_IO when the port cannot be bound. */
sk_status sk_control_http_start(sk_control *c, const sk_control_http_params *p);
int sk_control_http_port(const sk_control *c);
int sk_control_http_available(void);
/* 1 for 127.0.0.0/8, ::1, "localhost". */
int sk_control_addr_is_loopback(const char *addr);

#ifdef __cplusplus
}
#endif
#endif
