/* control_http.c - the HTTP API of live control, on libmicrohttpd (one
 * internal polling thread; request parsing is libmicrohttpd's).
 *
 *   GET  /status   200 the status JSON (control.h sk_ctl_status)
 *   POST /prompt   {"prompt": "text"} or {"embeds": "name"}   -> 202 {"id": ...}
 *   POST /pause, /resume, /stop                               -> 202 {"id": ...}
 *   POST /step     optional {"chunks": N} (default 1)         -> 202 {"id": ...}
 *   GET  /         200 the list of endpoints
 * Errors are JSON {"error": "..."}: 400 malformed body / bad value, 401 missing
 * or wrong bearer token (when one is set), 403 a request from a web page
 * (an Origin header) or to a foreign Host name on a loopback bind (DNS
 * rebinding), 404 unknown path, 405 wrong method (with Allow), 409 not
 * possible in this run (text without an encoder, stopping), 413 body over the
 * limit, 503 queue full. A command applies at the next chunk boundary; 202
 * means queued, GET /status shows when it applied (cache.last_switch_*).
 * Built with libmicrohttpd only (SK_HAVE_MHD); otherwise start reports
 * SK_E_UNSUPPORTED. Tested by tests/test_live_http.c. */
#include "runtime/live/control_impl.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "runtime/core/log.h"
#include "runtime/io/json_strict.h"
#include "runtime/live/http_guard.h"

int sk_control_http_port(const sk_control *c) { return c ? c->http_port : 0; }

#ifndef SK_HAVE_MHD

int sk_control_http_available(void) { return 0; }

sk_status sk_control_http_start(sk_control *c, const sk_control_http_params *p)
{
    (void)c;
    (void)p;
    return SK_ERR(SK_E_UNSUPPORTED, "--control-port: this build has no HTTP server "
                  "(libmicrohttpd); install libmicrohttpd-dev and rebuild, or use "
                  "--control-stdin");
}

#else

#include <cjson/cJSON.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "runtime/live/http_mhd.h"

typedef sk_mhd_result mhd_result;

/* Connection bounds (docs/RELIABILITY.md): 64 in all; per client address and
 * idle timeout: http_guard.h (shared with `sinkstream serve`). */
#define SK_CONTROL_HTTP_MAX_CONN 64

typedef struct {
    sk_control *c;
    struct MHD_Daemon *d;
    char *token;
    size_t max_body;
    int loopback;
} http_srv;

int sk_control_http_available(void) { return 1; }

static mhd_result reply(struct MHD_Connection *conn, unsigned code, const char *json,
                        const char *allow)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(json), (void *)json, MHD_RESPMEM_MUST_COPY);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, "Content-Type", "application/json");
    MHD_add_response_header(r, "Cache-Control", "no-store");
    if (code == 401) MHD_add_response_header(r, "WWW-Authenticate", "Bearer realm=\"sinkstream\"");
    if (allow) MHD_add_response_header(r, "Allow", allow);
    mhd_result ret = MHD_queue_response(conn, code, r);
    MHD_destroy_response(r);
    return ret;
}

static mhd_result reply_error(struct MHD_Connection *conn, unsigned code, const char *msg,
                              const char *allow)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "error", msg);
    char *t = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    mhd_result r = reply(conn, code, t ? t : "{\"error\":\"out of memory\"}", allow);
    free(t);
    return r;
}

static int token_ok(const http_srv *s, struct MHD_Connection *conn)
{
    return sk_http_bearer_ok(s->token,
                             MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization"));
}

/* Host header of a loopback server: a loopback name or address (with a port). */
static int host_ok(const http_srv *s, struct MHD_Connection *conn)
{
    return !s->loopback ||
           sk_http_host_is_loopback(MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Host"));
}

static mhd_result accepted(struct MHD_Connection *conn, http_srv *s, sk_ctl_kind k,
                           uint64_t id)
{
    sk_ctl_status st;
    sk_control_get_status(s->c, &st);
    int paused = !strcmp(st.state, "paused");
    char buf[400];
    /* latent frame (earliest_frame: the older name), and the video frame it starts */
    const long long f = paused || !strcmp(st.state, "starting") ? st.frame : st.frame + st.chunk;
    snprintf(buf, sizeof buf, "{\"id\":%llu,\"command\":\"%s\",\"queued\":%d,\"applies\":"
             "\"at the next chunk boundary\",\"earliest_frame\":%lld,"
             "\"earliest_latent_frame\":%lld,\"earliest_video_frame\":%lld}",
             (unsigned long long)id, sk_ctl_kind_name(k), st.pending, f, f, f > 0 ? 4 * f - 3 : 0);
    return reply(conn, 202, buf, NULL);
}

static mhd_result push_reply(struct MHD_Connection *conn, http_srv *s, sk_ctl_kind k,
                             const char *arg, int64_t n)
{
    uint64_t id = 0;
    sk_status st = sk_control_push(s->c, k, arg, n, "http", &id);
    if (st != SK_OK)
        return reply_error(conn, (unsigned)sk_control_http_code(st), sk_error_message(), NULL);
    SK_LOGI("control: http %s queued as command #%llu", sk_ctl_kind_name(k),
            (unsigned long long)id);
    return accepted(conn, s, k, id);
}

static mhd_result post_prompt(struct MHD_Connection *conn, http_srv *s, const sk_http_req *r)
{
    if (!r->n) return reply_error(conn, 400, "empty body; expected {\"prompt\": \"text\"} or "
                                  "{\"embeds\": \"name\"}", NULL);
    cJSON *j = NULL;
    if (sk_json_parse_strict(r->body, r->n, "body", &j) != SK_OK &&
        !strstr(sk_error_message(), "not valid JSON"))
        return reply_error(conn, 400, sk_error_message(), NULL); /* trailing text, a key twice */
    if (!j || !cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return reply_error(conn, 400, "body is not a JSON object; expected {\"prompt\": \"text\"} "
                           "or {\"embeds\": \"name\"}", NULL);
    }
    const cJSON *tx = NULL, *em = NULL, *it;
    char msg[200] = "";
    cJSON_ArrayForEach(it, j) {
        if (!strcmp(it->string, "prompt")) tx = it;
        else if (!strcmp(it->string, "embeds")) em = it;
        else if (!msg[0]) snprintf(msg, sizeof msg, "unknown key \"%.60s\"; expected \"prompt\" or "
                                   "\"embeds\"", it->string);
    }
    if (!msg[0] && !!tx == !!em)
        snprintf(msg, sizeof msg, "give exactly one of \"prompt\" (text) and \"embeds\" (a tensor "
                 "name of --text-embeds)");
    const cJSON *v = tx ? tx : em;
    if (!msg[0] && !cJSON_IsString(v))
        snprintf(msg, sizeof msg, "\"%s\" must be a string", tx ? "prompt" : "embeds");
    mhd_result ret;
    if (msg[0]) ret = reply_error(conn, 400, msg, NULL);
    else ret = push_reply(conn, s, tx ? SK_CTL_PROMPT : SK_CTL_EMBEDS, v->valuestring, 0);
    cJSON_Delete(j);
    return ret;
}

static mhd_result post_step(struct MHD_Connection *conn, http_srv *s, const sk_http_req *r)
{
    int64_t n = 1;
    if (r->n) {
        cJSON *j = NULL;
        (void)sk_json_parse_strict(r->body, r->n, "body", &j); /* NULL: refused below */
        const cJSON *ch = j && cJSON_IsObject(j) ? cJSON_GetObjectItemCaseSensitive(j, "chunks")
                                                 : NULL;
        int ok = j && cJSON_IsObject(j) && (!ch || cJSON_IsNumber(ch)) &&
                 cJSON_GetArraySize(j) == (ch ? 1 : 0);
        if (ch && ok) {
            ok = ch->valuedouble >= 1 && ch->valuedouble <= 1e6 &&
                 ch->valuedouble == (double)(int64_t)ch->valuedouble;
            n = (int64_t)ch->valuedouble;
        }
        cJSON_Delete(j);
        if (!ok) return reply_error(conn, 400, "expected {\"chunks\": N} with N in 1..1000000 (or "
                                    "no body for one chunk)", NULL);
    }
    return push_reply(conn, s, SK_CTL_STEP, NULL, n);
}

static mhd_result route(struct MHD_Connection *conn, http_srv *s, const char *url,
                        const char *method, const sk_http_req *r)
{
    const int get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
    const int post = !strcmp(method, "POST");
    if (!strcmp(url, "/status")) {
        if (!get) return reply_error(conn, 405, "use GET /status", "GET, HEAD");
        char *j = sk_control_status_json(s->c);
        mhd_result ret = j ? reply(conn, 200, j, NULL) : reply_error(conn, 500, "out of memory",
                                                                       NULL);
        free(j);
        return ret;
    }
    if (!strcmp(url, "/")) {
        if (!get) return reply_error(conn, 405, "use GET /", "GET, HEAD");
        return reply(conn, 200, "{\"endpoints\":[\"GET /status\",\"POST /prompt {\\\"prompt\\\": "
                     "TEXT} | {\\\"embeds\\\": NAME}\",\"POST /pause\",\"POST /resume\","
                     "\"POST /step {\\\"chunks\\\": N}\",\"POST /stop\"]}", NULL);
    }
    static const struct { const char *path; sk_ctl_kind k; } cmds[] = {
        {"/prompt", SK_CTL_PROMPT}, {"/pause", SK_CTL_PAUSE}, {"/resume", SK_CTL_RESUME},
        {"/step", SK_CTL_STEP}, {"/stop", SK_CTL_STOP},
    };
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        if (strcmp(url, cmds[i].path)) continue;
        if (!post) {
            char m[64];
            snprintf(m, sizeof m, "use POST %s", cmds[i].path);
            return reply_error(conn, 405, m, "POST");
        }
        if (cmds[i].k == SK_CTL_PROMPT) return post_prompt(conn, s, r);
        if (cmds[i].k == SK_CTL_STEP) return post_step(conn, s, r);
        return push_reply(conn, s, cmds[i].k, NULL, 0);
    }
    return reply_error(conn, 404, "no such endpoint; see GET /", NULL);
}

static mhd_result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                             const char *method, const char *version, const char *upload,
                             size_t *upload_size, void **con_cls)
{
    (void)version;
    http_srv *s = cls;
    sk_http_req *r = *con_cls;
    if (!r) { /* headers only: decide early what needs no body */
        if (!(r = sk_http_req_new(con_cls))) return MHD_NO;
        if (MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Origin"))
            return reply_error(conn, 403, "requests from web pages (with an Origin header) are "
                               "refused", NULL);
        if (!host_ok(s, conn))
            return reply_error(conn, 403, "Host is not a loopback name", NULL);
        if (!token_ok(s, conn))
            return reply_error(conn, 401, s->token ? "missing or wrong bearer token "
                               "(Authorization: Bearer TOKEN)" : "unauthorized", NULL);
        char m[96];
        if (sk_http_content_length_over(conn, s->max_body))
            return reply_error(conn, 413, sk_http_too_big_message(m, sizeof m, s->max_body),
                               NULL);
        return MHD_YES;
    }
    if (*upload_size) /* body data; more may follow */
        return sk_http_req_append(r, upload, upload_size, s->max_body);
    if (r->too_big) {
        char m[96];
        return reply_error(conn, 413, sk_http_too_big_message(m, sizeof m, s->max_body), NULL);
    }
    return route(conn, s, url, method, r);
}

static void http_stop(sk_control *c)
{
    http_srv *s = c->http;
    if (!s) return;
    /* let answers already queued (the 202 of the /stop that ended the run) go
     * out before the sockets close: wait up to 0.5 s for open connections */
    for (int i = 0; i < 50; i++) {
        const union MHD_DaemonInfo *di =
            MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
        if (!di || di->num_connections == 0) break;
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    MHD_stop_daemon(s->d);
    free(s->token);
    free(s);
    c->http = NULL;
    c->http_stop = NULL;
}

sk_status sk_control_http_start(sk_control *c, const sk_control_http_params *p)
{
    SK_CHECK(c && p, SK_E_INVALID_ARG, "control http: NULL argument");
    SK_CHECK(!c->http, SK_E_INVALID_ARG, "control http: already started");
    const char *bind = p->bind && *p->bind ? p->bind : "127.0.0.1";
    const int loop = sk_control_addr_is_loopback(bind);
    SK_CHECK(loop || (p->token && *p->token), SK_E_INVALID_ARG, "--control-bind %s is not a "
             "loopback address: set a bearer token with --control-token (or $SK_CONTROL_TOKEN)",
             bind);
    SK_CHECK(p->port >= 0 && p->port <= 65535, SK_E_INVALID_ARG, "--control-port %d: expected "
             "0..65535", p->port);
    struct sockaddr_storage ss;
    int v6 = 0;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ERROR_LOG;
    SK_TRY(sk_http_bind_addr(bind, p->port, "--control-bind", &ss, &v6));
    if (v6) flags |= MHD_USE_IPv6;
    http_srv *s = calloc(1, sizeof *s);
    SK_CHECK(s, SK_E_OOM, "control http: out of memory");
    s->c = c;
    s->max_body = p->max_body ? p->max_body : 65536;
    s->loopback = loop;
    if (p->token && *p->token && !(s->token = strdup(p->token))) {
        free(s);
        return SK_ERR(SK_E_OOM, "control http: out of memory");
    }
    /* slow clients (issue 15 #3): http_mhd.c's bounds per address and idle
     * timeout; the polling thread serves the others meanwhile */
    s->d = sk_http_daemon_start(flags, &ss, on_request, s, (unsigned)SK_CONTROL_HTTP_MAX_CONN,
                                "control: http");
    if (!s->d) {
        free(s->token);
        free(s);
        return SK_ERR(SK_E_IO, "--control-port %d: cannot listen on %s:%d (port in use, or no "
                      "such address)", p->port, bind, p->port);
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    c->http_port = di ? di->port : p->port;
    c->http = s;
    c->http_stop = http_stop;
    SK_LOGI("control: HTTP API on http://%s%s%s:%d/ (%s)", v6 ? "[" : "", bind, v6 ? "]" : "",
            c->http_port,
            s->token ? "bearer token required" : "no token: loopback only");
    return SK_OK;
}

#endif
