/* serve.h - `sinkstream serve`: the HTTP API (serve_http.c) over a session
 * manager (serve_sessions.c, on the engine API runtime/sinkstream.h). The API
 * is documented call by call in docs/SERVER.md.
 *
 * The HTTP layer owns: routing, request limits, the safety checks
 * (http_guard.h: loopback by default, bearer token, Host and Origin), JSON
 * bodies parsed and validated into sk_serve_params / sk_serve_prompt, error
 * bodies, Server-Sent Events and the live-view streams. The manager (any
 * sk_serve_backend: the real one, or a fake in tests) owns the sessions.
 *
 * A backend call returns the HTTP status it wants (200, 201, 202 on success;
 * 400, 404, 409, 429, 500, 503 on failure with the reason in
 * sk_error_message(), set on the calling thread) and, on success, a malloc'd
 * JSON body in *json. */
#ifndef SK_SERVE_H
#define SK_SERVE_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "runtime/core/fanout.h"
#include "runtime/core/status.h"
#include "runtime/output/live_view.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SK_SERVE_ID_HEX 32 /* session ids: 128 random bits as hex */

/* POST /v1/sessions, after validation (every field has its default filled in). */
typedef struct {
    char *prompt;        /* required, 1..max_prompt bytes */
    int width, height;   /* pixels; 0 -> the model's default */
    int64_t frames;      /* video frames to make; 0 -> until deleted (unbounded) */
    double seconds;      /* as asked ("seconds" turned into frames with fps) */
    uint64_t seed;       /* default 0 */
    int fps;             /* 1..120, default 16 */
    int pace;            /* 1 (default): real-time pace; 0: as fast as the device goes */
    char kv_policy[16];  /* "" -> the model's default; fifo|sink|ema|deep-sink|rolling */
    int record;          /* 1: also write --record-dir/<id>.mp4 */
    char *rtmp;          /* NULL or an rtmp:// URL to stream to */
    int live_view;       /* 1 (default): fMP4 + MJPEG for browsers */
    int paused;          /* 1: created paused */
} sk_serve_params;

/* POST /v1/sessions/{id}/prompt */
typedef struct {
    char *prompt;        /* required */
    int64_t at_frame;    /* -1: now (the next chunk boundary); else a video frame */
    int cut;             /* 0 "switch" (KV re-cache, LongLive) / 1 "cut" (a new shot) */
} sk_serve_prompt;

void sk_serve_params_free(sk_serve_params *p);
void sk_serve_prompt_free(sk_serve_prompt *p);

/* Parses a request body. On failure returns 400 with the message naming the
 * key and what to send instead; max_prompt bounds prompt text (bytes). */
int sk_serve_parse_params(const char *body, size_t n, size_t max_prompt, sk_serve_params *out);
int sk_serve_parse_prompt(const char *body, size_t n, size_t max_prompt, sk_serve_prompt *out);

/* A live session's streams, held by an SSE or video reader until detach. */
typedef struct {
    sk_fanout *events;   /* SSE records (sk_serve_event) */
    sk_live_view *view;  /* NULL when the session has no live view */
    void *ref;           /* the backend's reference */
} sk_serve_attach;

typedef struct {
    void *ctx;
    int (*create)(void *ctx, const sk_serve_params *p, char **json);   /* 201 */
    int (*list)(void *ctx, char **json);                               /* 200 */
    int (*get)(void *ctx, const char *id, char **json);                /* 200 */
    int (*prompt)(void *ctx, const char *id, const sk_serve_prompt *p, char **json); /* 202 */
    int (*pause)(void *ctx, const char *id, int pause, char **json);  /* 202 */
    int (*remove)(void *ctx, const char *id, char **json);             /* 200 */
    int (*attach)(void *ctx, const char *id, sk_serve_attach *out);    /* 200 */
    void (*detach)(void *ctx, sk_serve_attach *a);
    char *(*info)(void *ctx);                                          /* GET /v1/server */
} sk_serve_backend;

/* One SSE record "event: TYPE\ndata: JSON\n\n" pushed to f; takes data. */
sk_status sk_serve_event(sk_fanout *f, const char *type, cJSON *data);

/* A file the server serves as is (the web page). */
typedef struct {
    const char *path;    /* "/", "/app.js", ... */
    const char *mime;
    const unsigned char *data;
    size_t size;
} sk_serve_asset;

typedef struct {
    const char *host;       /* NULL -> 127.0.0.1 */
    int port;               /* 0 -> any free port (sk_serve_http_port) */
    const char *token;      /* required when host is not loopback */
    int max_connections;    /* 0 -> 64 (streams hold one each) */
    size_t max_body;        /* 0 -> 65536 */
    size_t max_prompt;      /* 0 -> 4096 */
    const sk_serve_asset *assets;
    int n_assets;
} sk_serve_http_params;

typedef struct sk_serve_http sk_serve_http;

/* Starts listening (threads of libmicrohttpd, one per connection). The backend
 * and assets must outlive the server. SK_E_INVALID_ARG: a non-loopback host
 * without a token, a bad address; SK_E_IO: the port cannot be bound;
 * SK_E_UNSUPPORTED: built without libmicrohttpd. */
sk_status sk_serve_http_start(const sk_serve_http_params *p, const sk_serve_backend *b,
                              sk_serve_http **out);
int sk_serve_http_port(const sk_serve_http *s);
/* Ends every stream (readers see the end), stops the threads, frees. */
void sk_serve_http_stop(sk_serve_http **s);

#ifdef __cplusplus
}
#endif
#endif
