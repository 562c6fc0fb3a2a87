/* serve_http.c - the HTTP server of `sinkstream serve` (serve.h), on
 * libmicrohttpd with one thread per connection: the streams (SSE, fMP4,
 * MJPEG) block in their content callbacks on the session's fan-outs, so a
 * thread per open stream is the simple, bounded model (max_connections).
 *
 * Every request passes, before its body is read:
 *   Host    a loopback server answers only to loopback Host names (403):
 *           a DNS-rebinding page cannot reach it through its own name;
 *   Origin  a browser request must come from this server's own page (403),
 *           and Sec-Fetch-Site: cross-site is refused (403);
 *   token   /v1/ needs "Authorization: Bearer T" (or ?access_token=T, for
 *           EventSource / <img>) when a token is set (401);
 *   size    Content-Length over max_body (413); bodies are bounded as read.
 * Routes: docs/SERVER.md. Errors: {"error": {"code": "...", "message": "..."}}. */
#include "runtime/live/serve.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "runtime/core/log.h"
#include "runtime/live/control.h"
#include "runtime/live/http_guard.h"

#ifndef SK_HAVE_MHD

sk_status sk_serve_http_start(const sk_serve_http_params *p, const sk_serve_backend *b,
                              sk_serve_http **out)
{
    (void)p;
    (void)b;
    if (out) *out = NULL;
    return SK_ERR(SK_E_UNSUPPORTED, "serve: this build has no HTTP server (libmicrohttpd); "
                  "install libmicrohttpd-dev (tools/install_deps.sh) and rebuild");
}
int sk_serve_http_port(const sk_serve_http *s) { (void)s; return 0; }
void sk_serve_http_stop(sk_serve_http **s) { (void)s; }

#else

#include <cjson/cJSON.h>

#include "runtime/live/http_mhd.h"

typedef sk_mhd_result mhd_result;

struct sk_serve_http {
    struct MHD_Daemon *d;
    sk_serve_backend b;
    char *token;
    size_t max_body, max_prompt;
    int loopback, port;
    const sk_serve_asset *assets;
    int n_assets;
    atomic_int stopping;
};

static const char *code_name(unsigned code)
{
    switch (code) {
    case 400: return "bad_request";
    case 401: return "unauthorized";
    case 403: return "forbidden";
    case 404: return "not_found";
    case 405: return "method_not_allowed";
    case 409: return "conflict";
    case 413: return "body_too_large";
    case 429: return "too_many_sessions";
    case 503: return "unavailable";
    default: return "internal";
    }
}

static void common_headers(struct MHD_Response *r)
{
    MHD_add_response_header(r, "Cache-Control", "no-store");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
    MHD_add_response_header(r, "X-Frame-Options", "DENY");
}

static mhd_result reply_raw(struct MHD_Connection *conn, unsigned code, const void *data,
                            size_t n, const char *mime, const char *allow)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(n, (void *)data, MHD_RESPMEM_MUST_COPY);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, "Content-Type", mime);
    common_headers(r);
    if (code == 401) MHD_add_response_header(r, "WWW-Authenticate", "Bearer realm=\"sinkstream\"");
    if (allow) MHD_add_response_header(r, "Allow", allow);
    mhd_result ret = MHD_queue_response(conn, code, r);
    MHD_destroy_response(r);
    return ret;
}

static mhd_result reply_json(struct MHD_Connection *conn, unsigned code, const char *json)
{
    return reply_raw(conn, code, json, strlen(json), "application/json", NULL);
}

static mhd_result reply_error(struct MHD_Connection *conn, const char *method, const char *url,
                              unsigned code, const char *msg, const char *allow)
{
    cJSON *j = cJSON_CreateObject(), *e = cJSON_AddObjectToObject(j, "error");
    cJSON_AddStringToObject(e, "code", code_name(code));
    cJSON_AddStringToObject(e, "message", msg && *msg ? msg : code_name(code));
    char *t = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    SK_LOGI("serve: %s %s -> %u %s", method, url, code, msg);
    mhd_result r = reply_raw(conn, code, t ? t : "{\"error\":{\"code\":\"internal\"}}",
                             t ? strlen(t) : 28, "application/json", allow);
    free(t);
    return r;
}

/* A backend answer: json on success, the error message otherwise. */
static mhd_result answer(struct MHD_Connection *conn, const char *method, const char *url,
                         int code, char *json)
{
    mhd_result r;
    if (code < 400 && json) {
        /* changes at info; the reads a page polls every second at debug */
        if (strcmp(method, "GET") && strcmp(method, "HEAD"))
            SK_LOGI("serve: %s %s -> %d", method, url, code);
        else
            SK_LOGD("serve: %s %s -> %d", method, url, code);
        r = reply_json(conn, (unsigned)code, json);
    } else {
        r = reply_error(conn, method, url, code < 400 ? 500 : (unsigned)code,
                        sk_error_message(), NULL);
    }
    free(json);
    return r;
}

/* ---- streams: SSE, fMP4, MJPEG */

typedef enum { ST_SSE, ST_MP4, ST_MJPEG } stream_kind;

typedef struct {
    sk_serve_http *s;
    sk_serve_attach a;
    stream_kind kind;
    sk_fanout *f;
    uint64_t cursor;
    uint8_t *pend;
    size_t pend_n, pend_off;
    int idle_s; /* seconds without a record (SSE keep-alive) */
} stream_rd;

static void set_pending(stream_rd *r, void *data, size_t n)
{
    free(r->pend);
    r->pend = data;
    r->pend_n = n;
    r->pend_off = 0;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    stream_rd *r = cls;
    for (;;) {
        if (r->pend_off < r->pend_n) {
            size_t n = r->pend_n - r->pend_off;
            if (n > max) n = max;
            memcpy(buf, r->pend + r->pend_off, n);
            r->pend_off += n;
            return (ssize_t)n;
        }
        if (atomic_load(&r->s->stopping)) return MHD_CONTENT_READER_END_OF_STREAM;
        void *d = NULL;
        size_t n = 0;
        sk_fanout_result fr = sk_fanout_read(r->f, &r->cursor, 1.0, &d, &n, NULL, NULL, NULL);
        if (fr == SK_FANOUT_CLOSED || fr == SK_FANOUT_NOMEM) return MHD_CONTENT_READER_END_OF_STREAM;
        if (fr == SK_FANOUT_TIMEOUT) {
            /* SSE: a comment every 10 s keeps proxies open and finds gone clients */
            if (r->kind == ST_SSE && ++r->idle_s >= 10) {
                r->idle_s = 0;
                char *k = strdup(": keep-alive\n\n");
                if (!k) return MHD_CONTENT_READER_END_WITH_ERROR;
                set_pending(r, k, strlen(k));
            }
            continue;
        }
        r->idle_s = 0;
        if (r->kind == ST_MJPEG) {
            char head[128];
            int h = snprintf(head, sizeof head, "--skframe\r\nContent-Type: image/jpeg\r\n"
                             "Content-Length: %zu\r\n\r\n", n);
            uint8_t *part = malloc((size_t)h + n + 2);
            if (!part) {
                free(d);
                return MHD_CONTENT_READER_END_WITH_ERROR;
            }
            memcpy(part, head, (size_t)h);
            memcpy(part + h, d, n);
            memcpy(part + h + n, "\r\n", 2);
            free(d);
            set_pending(r, part, (size_t)h + n + 2);
        } else {
            set_pending(r, d, n);
        }
    }
}

static void stream_free(void *cls)
{
    stream_rd *r = cls;
    if (r->kind == ST_MJPEG) sk_live_view_mjpeg_watch(r->a.view, -1);
    if (r->s->b.detach) r->s->b.detach(r->s->b.ctx, &r->a);
    free(r->pend);
    free(r);
}

static mhd_result start_stream(struct MHD_Connection *conn, sk_serve_http *s, const char *method,
                               const char *url, const char *id, stream_kind kind)
{
    stream_rd *r = calloc(1, sizeof *r);
    if (!r) return reply_error(conn, method, url, 500, "out of memory", NULL);
    r->s = s;
    r->kind = kind;
    int code = s->b.attach(s->b.ctx, id, &r->a);
    if (code >= 400) {
        free(r);
        return reply_error(conn, method, url, (unsigned)code, sk_error_message(), NULL);
    }
    const char *mime = "text/event-stream";
    if (kind == ST_SSE) {
        r->f = r->a.events;
        r->cursor = sk_fanout_cursor(r->f, SK_FANOUT_FROM_OLDEST); /* the history: timeline */
        char *retry = strdup("retry: 2000\n\n");
        if (retry) set_pending(r, retry, strlen(retry));
    } else if (!r->a.view) {
        s->b.detach(s->b.ctx, &r->a);
        free(r);
        return reply_error(conn, method, url, 409, "this session has no live view (it was "
                           "created with \"live_view\": false)", NULL);
    } else if (kind == ST_MP4) {
        mime = "video/mp4";
        r->f = sk_live_view_fragments(r->a.view);
        r->cursor = sk_fanout_cursor(r->f, SK_FANOUT_FROM_LAST_KEY);
        void *init;
        size_t n;
        if (sk_live_view_init_segment(r->a.view, &init, &n) == SK_OK) set_pending(r, init, n);
    } else {
        mime = "multipart/x-mixed-replace; boundary=skframe";
        r->f = sk_live_view_jpegs(r->a.view);
        sk_live_view_mjpeg_watch(r->a.view, +1);
        r->cursor = sk_fanout_cursor(r->f, SK_FANOUT_FROM_LAST_KEY);
    }
    struct MHD_Response *resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024, stream_read, r, stream_free);
    if (!resp) {
        stream_free(r);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", mime);
    common_headers(resp);
    MHD_add_response_header(resp, "X-Accel-Buffering", "no");
    MHD_set_connection_option(conn, MHD_CONNECTION_OPTION_TIMEOUT, (unsigned)0);
    SK_LOGI("serve: %s %s -> 200 (stream)", method, url);
    mhd_result ret = MHD_queue_response(conn, 200, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* ---- routing */

static int valid_id(const char *id, size_t n)
{
    if (n != SK_SERVE_ID_HEX) return 0;
    for (size_t i = 0; i < n; i++)
        if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f'))) return 0;
    return 1;
}

static mhd_result route_session(struct MHD_Connection *conn, sk_serve_http *s, const char *method,
                                const char *url, const char *rest, const sk_http_req *rq)
{
    const int get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
    const int post = !strcmp(method, "POST");
    const char *slash = strchr(rest, '/');
    const size_t idn = slash ? (size_t)(slash - rest) : strlen(rest);
    if (!valid_id(rest, idn))
        return reply_error(conn, method, url, 404, "no such session (ids are the 32 hex digits "
                           "POST /v1/sessions answered)", NULL);
    char id[SK_SERVE_ID_HEX + 1];
    memcpy(id, rest, SK_SERVE_ID_HEX);
    id[SK_SERVE_ID_HEX] = 0;
    const char *sub = slash ? slash + 1 : "";
    char *json = NULL;
    if (!*sub) {
        /* the call first, then answer: argument order is unspecified in C */
        int code = 0;
        if (get) code = s->b.get(s->b.ctx, id, &json);
        else if (!strcmp(method, "DELETE")) code = s->b.remove(s->b.ctx, id, &json);
        if (code) return answer(conn, method, url, code, json);
        return reply_error(conn, method, url, 405, "use GET or DELETE /v1/sessions/{id}",
                           "GET, HEAD, DELETE");
    }
    if (!strcmp(sub, "prompt")) {
        if (!post) return reply_error(conn, method, url, 405, "use POST", "POST");
        sk_serve_prompt p;
        int code = sk_serve_parse_prompt(rq->body, rq->n, s->max_prompt, &p);
        if (code >= 400) return reply_error(conn, method, url, (unsigned)code, sk_error_message(),
                                            NULL);
        code = s->b.prompt(s->b.ctx, id, &p, &json);
        sk_serve_prompt_free(&p);
        return answer(conn, method, url, code, json);
    }
    if (!strcmp(sub, "pause") || !strcmp(sub, "resume")) {
        if (!post) return reply_error(conn, method, url, 405, "use POST", "POST");
        int code = s->b.pause(s->b.ctx, id, sub[0] == 'p', &json);
        return answer(conn, method, url, code, json);
    }
    static const struct { const char *name; stream_kind k; } streams[] = {
        {"events", ST_SSE}, {"live.mp4", ST_MP4}, {"live.mjpeg", ST_MJPEG}};
    for (size_t i = 0; i < sizeof streams / sizeof streams[0]; i++) {
        if (strcmp(sub, streams[i].name)) continue;
        if (strcmp(method, "GET")) return reply_error(conn, method, url, 405, "use GET", "GET");
        return start_stream(conn, s, method, url, id, streams[i].k);
    }
    return reply_error(conn, method, url, 404, "no such endpoint under /v1/sessions/{id}; "
                       "see docs/SERVER.md", NULL);
}

static mhd_result route(struct MHD_Connection *conn, sk_serve_http *s, const char *url,
                        const char *method, const sk_http_req *rq)
{
    const int get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
    char *json = NULL;
    if (!strcmp(url, "/v1/sessions")) {
        if (get) {
            int code = s->b.list(s->b.ctx, &json);
            return answer(conn, method, url, code, json);
        }
        if (strcmp(method, "POST"))
            return reply_error(conn, method, url, 405, "use GET or POST /v1/sessions",
                               "GET, HEAD, POST");
        sk_serve_params p;
        int code = sk_serve_parse_params(rq->body, rq->n, s->max_prompt, &p);
        if (code >= 400) return reply_error(conn, method, url, (unsigned)code, sk_error_message(),
                                            NULL);
        code = s->b.create(s->b.ctx, &p, &json);
        sk_serve_params_free(&p);
        return answer(conn, method, url, code, json);
    }
    if (!strncmp(url, "/v1/sessions/", 13)) return route_session(conn, s, method, url, url + 13, rq);
    if (!strcmp(url, "/v1/server")) {
        if (!get) return reply_error(conn, method, url, 405, "use GET /v1/server", "GET, HEAD");
        json = s->b.info ? s->b.info(s->b.ctx) : strdup("{}");
        return answer(conn, method, url, json ? 200 : 500, json);
    }
    if (strncmp(url, "/v1/", 4)) {
        for (int i = 0; i < s->n_assets; i++) {
            if (strcmp(url, s->assets[i].path)) continue;
            if (!get) return reply_error(conn, method, url, 405, "use GET", "GET, HEAD");
            struct MHD_Response *r = MHD_create_response_from_buffer(
                s->assets[i].size, (void *)s->assets[i].data, MHD_RESPMEM_PERSISTENT);
            if (!r) return MHD_NO;
            MHD_add_response_header(r, "Content-Type", s->assets[i].mime);
            common_headers(r);
            MHD_add_response_header(r, "Content-Security-Policy",
                                    "default-src 'self'; media-src 'self' blob:; img-src 'self' "
                                    "blob: data:; frame-ancestors 'none'");
            mhd_result ret = MHD_queue_response(conn, 200, r);
            MHD_destroy_response(r);
            return ret;
        }
    }
    return reply_error(conn, method, url, 404, "no such endpoint; the API is under /v1/ (see "
                       "docs/SERVER.md), the page at /", NULL);
}

/* The checks made on the headers, before any body is read; 0 when passed. */
static mhd_result guard(struct MHD_Connection *conn, sk_serve_http *s, const char *url,
                        const char *method, int *refused)
{
    *refused = 1;
    const char *host = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Host");
    if (s->loopback && !sk_http_host_is_loopback(host))
        return reply_error(conn, method, url, 403, "the Host header is not a loopback name; "
                           "this server listens on loopback only (use http://127.0.0.1:PORT/)",
                           NULL);
    const char *origin = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Origin");
    if (!sk_http_origin_same(origin, host))
        return reply_error(conn, method, url, 403, "requests from other web pages (a foreign "
                           "Origin) are refused; open the page this server serves", NULL);
    const char *site = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Sec-Fetch-Site");
    if (site && !strcasecmp(site, "cross-site"))
        return reply_error(conn, method, url, 403, "cross-site requests are refused", NULL);
    if (!strncmp(url, "/v1/", 4) && s->token) {
        const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
        const char *qt = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "access_token");
        if (!(auth ? sk_http_bearer_ok(s->token, auth) : sk_http_token_equal(s->token, qt ? qt : "")))
            return reply_error(conn, method, url, 401, "missing or wrong bearer token: send "
                               "\"Authorization: Bearer TOKEN\" (the --token of the server)",
                               NULL);
    }
    if (sk_http_content_length_over(conn, s->max_body)) {
        char m[96];
        return reply_error(conn, method, url, 413,
                           sk_http_too_big_message(m, sizeof m, s->max_body), NULL);
    }
    *refused = 0;
    return MHD_YES;
}

static mhd_result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                             const char *method, const char *version, const char *upload,
                             size_t *upload_size, void **con_cls)
{
    (void)version;
    sk_serve_http *s = cls;
    sk_http_req *r = *con_cls;
    if (!r) {
        if (!(r = sk_http_req_new(con_cls))) return MHD_NO;
        int refused;
        mhd_result g = guard(conn, s, url, method, &refused);
        r->refused = refused; /* the body is discarded */
        return g;
    }
    if (*upload_size) return sk_http_req_append(r, upload, upload_size, s->max_body);
    if (r->refused) return MHD_YES; /* answered at the header stage */
    if (r->too_big) {
        char m[96];
        return reply_error(conn, method, url, 413,
                           sk_http_too_big_message(m, sizeof m, s->max_body), NULL);
    }
    sk_error_clear();
    return route(conn, s, url, method, r);
}

sk_status sk_serve_http_start(const sk_serve_http_params *p, const sk_serve_backend *b,
                              sk_serve_http **out)
{
    SK_CHECK(p && b && out, SK_E_INVALID_ARG, "serve: NULL argument");
    *out = NULL;
    const char *host = p->host && *p->host ? p->host : "127.0.0.1";
    const int loop = sk_control_addr_is_loopback(host);
    SK_CHECK(loop || (p->token && *p->token), SK_E_INVALID_ARG, "--host %s is not a loopback "
             "address: anyone on the network could drive the GPU; set --token (or "
             "$SK_SERVE_TOKEN) and send it as \"Authorization: Bearer TOKEN\"", host);
    struct sockaddr_storage ss;
    int v6;
    SK_TRY(sk_http_bind_addr(host, p->port, "--host", &ss, &v6));
    sk_serve_http *s = calloc(1, sizeof *s);
    SK_CHECK(s, SK_E_OOM, "serve: out of memory");
    s->b = *b;
    s->max_body = p->max_body ? p->max_body : 65536;
    s->max_prompt = p->max_prompt ? p->max_prompt : 4096;
    s->loopback = loop;
    s->assets = p->assets;
    s->n_assets = p->n_assets;
    if (p->token && *p->token && !(s->token = strdup(p->token))) {
        free(s);
        return SK_ERR(SK_E_OOM, "serve: out of memory");
    }
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                     MHD_USE_ERROR_LOG | (v6 ? MHD_USE_IPv6 : 0);
    /* slow clients (issue 15 #3): http_mhd.c's bounds, as control_http.c */
    s->d = sk_http_daemon_start(flags, &ss, on_request, s,
                                (unsigned)(p->max_connections > 0 ? p->max_connections : 64),
                                "serve: http");
    if (!s->d) {
        free(s->token);
        free(s);
        return SK_ERR(SK_E_IO, "serve: cannot listen on %s port %d (port in use, or no such "
                      "address); pick another with --port", host, p->port);
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : p->port;
    SK_LOGI("serve: listening on http://%s%s%s:%d/ (%s)", v6 ? "[" : "", host, v6 ? "]" : "",
            s->port, s->token ? "bearer token required for /v1/" : "no token: loopback only");
    *out = s;
    return SK_OK;
}

int sk_serve_http_port(const sk_serve_http *s) { return s ? s->port : 0; }

void sk_serve_http_stop(sk_serve_http **ps)
{
    if (!ps || !*ps) return;
    sk_serve_http *s = *ps;
    atomic_store(&s->stopping, 1);
    MHD_stop_daemon(s->d); /* joins the connection threads; streams see `stopping` within 1 s */
    free(s->token);
    free(s);
    *ps = NULL;
}

#endif
