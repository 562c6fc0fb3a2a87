/* serve_sessions.h - the session manager of `sinkstream serve`: sessions of
 * one loaded engine (runtime/sinkstream.h), each on its own thread stepping
 * its sk_session chunk by chunk (the engine serialises their chunks on a GPU,
 * runs them side by side on the CPU), paced to real time when asked, with a
 * live view (runtime/output/live_view.h) and an event stream (SSE records).
 * It fills an sk_serve_backend (serve.h) for the HTTP layer.
 *
 * Session ids are 128 random bits (getrandom), so knowing the server is not
 * enough to watch or steer a session. At most max_sessions run at once (429
 * beyond); finished sessions stay listed (state "done", "stopped" or
 * "failed") until deleted, the oldest dropped past 64 entries. */
#ifndef SK_SERVE_SESSIONS_H
#define SK_SERVE_SESSIONS_H

#include "runtime/live/serve.h"
#include "runtime/sinkstream.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int max_sessions;        /* running at once; 0 -> 4 */
    const char *record_dir;  /* where "record": true writes <id>.mp4; NULL -> "recordings" */
    const char *model_name;  /* shown by GET /v1/server */
    const sk_session_params *base; /* every session starts from these (model.json's sampling
                                      defaults); NULL: sk_session_params_default(). Strings
                                      must outlive the manager. */
    int hashed_prompts;      /* 1: an engine without text encoder (random weights, load
                                tests): a prompt's text seeds a random embedding [text_len,
                                text_dim] (the same text, the same embedding) */
} sk_serve_mgr_params;

typedef struct sk_serve_mgr sk_serve_mgr;

/* The engine must outlive the manager. */
sk_status sk_serve_mgr_create(sk_engine *e, const sk_serve_mgr_params *p, sk_serve_mgr **out);
/* The backend table for sk_serve_http_start (ctx = m). */
sk_serve_backend sk_serve_mgr_backend(sk_serve_mgr *m);
/* Stops every session at its next chunk boundary, finalises its outputs, joins
 * the threads and frees. Call after the HTTP server stopped. Accepts NULL. */
void sk_serve_mgr_free(sk_serve_mgr **m);

#ifdef __cplusplus
}
#endif
#endif
