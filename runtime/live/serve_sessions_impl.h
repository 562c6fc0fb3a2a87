/* serve_sessions_impl.h - private to runtime/live/serve_session.c (a session's
 * thread: pace, step, events, live view) and serve_sessions.c (the manager: list,
 * references, the backend calls). Locks: see serve_sessions.c. */
#ifndef SK_SERVE_SESSIONS_IMPL_H
#define SK_SERVE_SESSIONS_IMPL_H

#include <pthread.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "runtime/live/serve_sessions.h"

#define MAX_LISTED 64   /* sessions kept in the list, finished ones included */
#define MAX_PENDING 64  /* prompts waiting for their boundary, per session */
#define EVENTS_KEPT 512 /* SSE records kept for late subscribers (the timeline) */
#define RATE_CHUNKS 6   /* the delivered fps is measured over this many chunk ends */

typedef struct {
    uint64_t req;
    char *text;
    int64_t latent;  /* -1: the next chunk boundary */
    int cut;
    double t_queued; /* monotonic */
} pending_prompt;

typedef struct srv_session {
    char id[SK_SERVE_ID_HEX + 1];
    struct sk_serve_mgr *m;
    int refs;          /* m->mu: the list's one + attached readers */
    int listed;
    pthread_t th;
    int joined;
    pthread_mutex_t api_mu;
    sk_session *s;     /* api_mu; NULL once closed */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int paused, stop;
    char state[12];    /* starting running paused done stopped failed */
    char error[512];
    char prompt[512];  /* the prompt in effect */
    int64_t prompt_frame; /* the video frame it took effect at */
    /* request */
    sk_serve_params p;
    int64_t latent_total; /* 0: unbounded */
    int64_t chunk;
    char record_path[1024];
    /* progress */
    int64_t video_frames, chunks, next_latent;
    double t_created_epoch, t0, paused_total, pause_since;
    double fps, gen_fps, chunk_ms, lag_s, step_est;
    int anchored;      /* t0 is the time the first frames came out (serve_session.c) */
    int switches;
    pending_prompt pend[MAX_PENDING];
    int n_pend;
    uint64_t next_req;
    sk_fanout *events;
    sk_live_view *view;
} srv_session;

struct sk_serve_mgr {
    sk_engine *e;
    sk_session_params base;
    sk_engine_info info;
    int hashed_prompts; /* sk_serve_mgr_params.hashed_prompts */
    pthread_mutex_t mu;
    srv_session *list[MAX_LISTED];
    int n, active, max_active;
    char *record_dir;
    char model[256];
    double t_start;
};

static inline double srv_now_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static inline double srv_now_epoch_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec * 1e3 + 1e-6 * (double)ts.tv_nsec;
}

/* Queues a prompt's text: encoded by the engine's text encoder, or with
 * hashed_prompts a random embedding seeded by the text (serve_sessions.c). */
sk_status srv_queue_prompt(struct sk_serve_mgr *m, sk_session *s, const char *text,
                           int64_t latent_frame, sk_switch_mode mode);

/* Video frame where latent frame f starts (the Wan VAE: 1 + 4 (F - 1) frames). */
static inline int64_t video_of_latent(int64_t f) { return f <= 0 ? 0 : 4 * f - 3; }
/* The latent frame that makes video frame v: ceil(v / 4) (as --prompts "at", docs/LIVE.md). */
static inline int64_t latent_of_video(int64_t v) { return v <= 0 ? 0 : (v + 3) / 4; }

static inline int srv_fail(int code, sk_status st, const char *msg)
{
    SK_ERR(st, "%s", msg);
    return code;
}

/* The HTTP status for an engine failure: the request's fault (400), the
 * model's (409), the device full (503: fewer or smaller sessions), or ours. */
static inline int srv_engine_code(sk_status st)
{
    switch (st) {
    case SK_E_INVALID_ARG: case SK_E_SHAPE: return 400;
    case SK_E_UNSUPPORTED: return 409;
    case SK_E_OOM: return 503;
    default: return 500;
    }
}

/* serve_session.c */
void srv_event(srv_session *ss, const char *type, cJSON *d); /* takes d */
void srv_on_frames(void *user, const uint8_t *rgb, int64_t n, int64_t h, int64_t w,
                   int64_t first_frame);
void *srv_session_main(void *arg);
void srv_set_state(srv_session *ss, const char *st); /* ss->mu held */
int srv_ended(srv_session *ss);                       /* ss->mu held */

/* serve_sessions.c */
srv_session *srv_find_ref(sk_serve_mgr *m, const char *id);
void srv_ref_drop(srv_session *ss);
void srv_session_free(srv_session *ss);
void srv_stop_and_join(srv_session *ss);

#endif
