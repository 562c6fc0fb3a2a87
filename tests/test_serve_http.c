/* test_serve_http.c - the HTTP layer of `sinkstream serve` (runtime/live/
 * serve_http.c) in process, over a fake session manager: the safety checks
 * (Host, Origin, Sec-Fetch-Site, token in header or query, body limit),
 * strict JSON bodies, routing and error bodies, and the streams (SSE history
 * and live records, fMP4 init segment + fragment, MJPEG parts). The same API
 * on the real engine: tests/test_serve_api.c. */
#define _GNU_SOURCE /* memmem */
#include <criterion/criterion.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/live/http_guard.h"
#include "runtime/live/serve.h"
#include "tests/common/test_util.h"
#include "tests/live_test_util.h"

/* ---- the guard rules as plain functions */

Test(serve_guard, token_host_origin_rules)
{
    cr_expect(sk_http_bearer_ok(NULL, NULL));
    cr_expect(sk_http_bearer_ok("s3", "Bearer s3"));
    cr_expect(sk_http_bearer_ok("s3", "bearer   s3"));
    cr_expect(!sk_http_bearer_ok("s3", "Bearer s33"));
    cr_expect(!sk_http_bearer_ok("s3", "Bearer s"));
    cr_expect(!sk_http_bearer_ok("s3", "Basic s3"));
    cr_expect(!sk_http_bearer_ok("s3", NULL));
    cr_expect(sk_http_token_equal("s3", "s3") && !sk_http_token_equal("s3", ""));
    cr_expect(sk_http_host_is_loopback("127.0.0.1:8080"));
    cr_expect(sk_http_host_is_loopback("localhost"));
    cr_expect(sk_http_host_is_loopback("[::1]:80"));
    cr_expect(sk_http_host_is_loopback(NULL));
    cr_expect(!sk_http_host_is_loopback("evil.example:8080"), "DNS rebinding name accepted");
    cr_expect(!sk_http_host_is_loopback("127.0.0.1.evil.example"));
    cr_expect(!sk_http_host_is_loopback(":8080"));
    cr_expect(sk_http_origin_same(NULL, "127.0.0.1:8080"));
    cr_expect(sk_http_origin_same("http://127.0.0.1:8080", "127.0.0.1:8080"));
    cr_expect(!sk_http_origin_same("http://evil.example", "127.0.0.1:8080"));
    cr_expect(!sk_http_origin_same("http://127.0.0.1:8081", "127.0.0.1:8080"));
    cr_expect(!sk_http_origin_same("null", "127.0.0.1:8080"));
}

Test(serve_json, session_bodies_are_strict)
{
    sk_serve_params p;
    const char *ok = "{\"prompt\": \"a cat\", \"width\": 64, \"height\": 64, \"seconds\": 3, "
                     "\"seed\": 1}";
    cr_assert_eq(sk_serve_parse_params(ok, strlen(ok), 100, &p), 200, "%s", sk_error_message());
    cr_expect_str_eq(p.prompt, "a cat");
    cr_expect_eq(p.width, 64);
    cr_expect_eq(p.frames, 48, "3 s at the default 16 fps");
    cr_expect_eq(p.seed, 1);
    cr_expect_eq(p.pace, 1);
    cr_expect_eq(p.live_view, 1);
    sk_serve_params_free(&p);
    const char *unb = "{\"prompt\": \"x\", \"unbounded\": true, \"fps\": 24, \"kv_policy\": \"sink\"}";
    cr_assert_eq(sk_serve_parse_params(unb, strlen(unb), 100, &p), 200, "%s", sk_error_message());
    cr_expect_eq(p.frames, 0);
    cr_expect_str_eq(p.kv_policy, "sink");
    sk_serve_params_free(&p);
    static const struct { const char *body, *needle; } bad[] = {
        {"", "empty body"},
        {"[1]", "not a JSON object"},
        {"{\"prompt\": 5}", "\"prompt\" must be a string"},
        {"{\"width\": 64}", "\"prompt\" is missing"},
        {"{\"prompt\": \"x\", \"width\": 60}", "multiple of 16"},
        {"{\"prompt\": \"x\", \"colour\": 1}", "unknown key \"colour\""},
        {"{\"prompt\": \"x\", \"seconds\": 2, \"frames\": 3}", "one of \"seconds\""},
        {"{\"prompt\": \"x\", \"fps\": 0}", "\"fps\" must be an integer in 1..120"},
        {"{\"prompt\": \"x\", \"kv_policy\": \"lru\"}", "fifo, sink"},
        {"{\"prompt\": \"x\", \"rtmp\": \"file:///etc/passwd\"}", "rtmp://"},
        {"{\"prompt\": \"0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz\"}", "over the limit of 100"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sk_error_clear();
        cr_expect_eq(sk_serve_parse_params(bad[i].body, strlen(bad[i].body), 100, &p), 400,
                     "accepted %s", bad[i].body);
        cr_expect(strstr(sk_error_message(), bad[i].needle), "%s: message '%s' lacks '%s'",
                  bad[i].body, sk_error_message(), bad[i].needle);
        cr_expect_null(p.prompt);
    }
    sk_serve_prompt q;
    const char *pq = "{\"prompt\": \"a dog\", \"at\": 32, \"mode\": \"cut\"}";
    cr_assert_eq(sk_serve_parse_prompt(pq, strlen(pq), 100, &q), 200, "%s", sk_error_message());
    cr_expect(q.at_frame == 32 && q.cut == 1);
    sk_serve_prompt_free(&q);
    const char *pb = "{\"prompt\": \"a dog\", \"mode\": \"blend\"}";
    cr_expect_eq(sk_serve_parse_prompt(pb, strlen(pb), 100, &q), 400);
}

/* ---- a fake session manager: one fixed session with streams */

#define FAKE_ID "0123456789abcdef0123456789abcdef"

typedef struct {
    sk_fanout *events;
    sk_live_view *view;
    int paused, deleted, attached;
    char last_prompt[64];
} fake_mgr;

static int fk_create(void *ctx, const sk_serve_params *p, char **json)
{
    (void)ctx;
    if (p->width == 1024) {
        SK_ERR(SK_E_INVALID_ARG, "too many sessions (--max-sessions 1)");
        return 429;
    }
    *json = strdup("{\"id\":\"" FAKE_ID "\"}");
    return 201;
}
static int fk_list(void *ctx, char **json)
{
    (void)ctx;
    *json = strdup("{\"sessions\":[]}");
    return 200;
}
static int known(const char *id)
{
    if (strcmp(id, FAKE_ID)) {
        SK_ERR(SK_E_INVALID_ARG, "no session %s", id);
        return 0;
    }
    return 1;
}
static int fk_get(void *ctx, const char *id, char **json)
{
    fake_mgr *m = ctx;
    if (!known(id)) return 404;
    char b[64];
    snprintf(b, sizeof b, "{\"state\":\"%s\"}", m->paused ? "paused" : "running");
    *json = strdup(b);
    return 200;
}
static int fk_prompt(void *ctx, const char *id, const sk_serve_prompt *p, char **json)
{
    fake_mgr *m = ctx;
    if (!known(id)) return 404;
    snprintf(m->last_prompt, sizeof m->last_prompt, "%s", p->prompt);
    *json = strdup("{\"request\":1}");
    return 202;
}
static int fk_pause(void *ctx, const char *id, int pause, char **json)
{
    fake_mgr *m = ctx;
    if (!known(id)) return 404;
    m->paused = pause;
    *json = strdup("{}");
    return 202;
}
static int fk_remove(void *ctx, const char *id, char **json)
{
    fake_mgr *m = ctx;
    if (!known(id)) return 404;
    m->deleted = 1;
    *json = strdup("{}");
    return 200;
}
static int fk_attach(void *ctx, const char *id, sk_serve_attach *a)
{
    fake_mgr *m = ctx;
    if (!known(id)) return 404;
    a->events = m->events;
    a->view = m->view;
    a->ref = m;
    m->attached++;
    return 200;
}
static void fk_detach(void *ctx, sk_serve_attach *a)
{
    fake_mgr *m = ctx;
    (void)a;
    m->attached--;
}

static fake_mgr g_m;
static sk_serve_http *g_srv;
static int g_port;

static void start_server(const char *token)
{
    memset(&g_m, 0, sizeof g_m);
    TT_OK(sk_fanout_create(16, 0, &g_m.events));
    sk_live_view_params vp = {.width = 32, .height = 32};
    TT_OK(sk_live_view_open(&vp, &g_m.view));
    static const unsigned char page[] = "<!doctype html><title>t</title>";
    static const sk_serve_asset assets[] = {{"/", "text/html", page, sizeof page - 1}};
    sk_serve_backend b = {.ctx = &g_m, .create = fk_create, .list = fk_list, .get = fk_get,
                          .prompt = fk_prompt, .pause = fk_pause, .remove = fk_remove,
                          .attach = fk_attach, .detach = fk_detach};
    sk_serve_http_params hp = {.token = token, .max_body = 2048, .max_prompt = 256,
                               .assets = assets, .n_assets = 1};
    TT_OK(sk_serve_http_start(&hp, &b, &g_srv));
    g_port = sk_serve_http_port(g_srv);
    cr_assert_gt(g_port, 0);
}

static void stop_server(void)
{
    sk_serve_http_stop(&g_srv);
    cr_expect_eq(g_m.attached, 0, "a stream was not detached");
    sk_live_view_free(&g_m.view);
    sk_fanout_free(&g_m.events);
}

static int req(const char *method, const char *path, const char *headers, const char *body,
               char *resp)
{
    return lu_http(g_port, method, path, headers, body, resp, 8192);
}

#define EXPECT_CODE(code, needle, ...)                                                     \
    do {                                                                                   \
        char r_[8192];                                                                     \
        int c_ = req(__VA_ARGS__, r_);                                                     \
        cr_expect_eq(c_, code, "got %d (%s)", c_, r_);                                     \
        cr_expect(strstr(r_, needle), "body '%s' lacks '%s'", r_, needle);                \
    } while (0)

Test(serve_http, routes_and_every_error_path, .fini = stop_server)
{
    start_server(NULL);
    EXPECT_CODE(200, "<!doctype html>", "GET", "/", NULL, NULL);
    EXPECT_CODE(201, FAKE_ID, "POST", "/v1/sessions", NULL, "{\"prompt\": \"a cat\"}");
    EXPECT_CODE(400, "\"code\":\"bad_request\"", "POST", "/v1/sessions", NULL, "{\"prompt\": ");
    EXPECT_CODE(429, "too_many_sessions", "POST", "/v1/sessions", NULL,
                "{\"prompt\": \"x\", \"width\": 1024}");
    EXPECT_CODE(200, "sessions", "GET", "/v1/sessions", NULL, NULL);
    EXPECT_CODE(200, "running", "GET", "/v1/sessions/" FAKE_ID, NULL, NULL);
    EXPECT_CODE(404, "not_found", "GET", "/v1/sessions/" FAKE_ID "0", NULL, NULL);
    EXPECT_CODE(404, "not_found", "GET", "/v1/sessions/ffffffffffffffffffffffffffffffff", NULL,
                NULL);
    EXPECT_CODE(404, "not_found", "GET", "/v1/sessions/../../etc/passwd", NULL, NULL);
    EXPECT_CODE(404, "not_found", "GET", "/v1/nothing", NULL, NULL);
    EXPECT_CODE(405, "method_not_allowed", "PUT", "/v1/sessions", NULL, NULL);
    EXPECT_CODE(405, "use POST", "GET", "/v1/sessions/" FAKE_ID "/prompt", NULL, NULL);
    EXPECT_CODE(202, "request", "POST", "/v1/sessions/" FAKE_ID "/prompt", NULL,
                "{\"prompt\": \"a dog\"}");
    cr_expect_str_eq(g_m.last_prompt, "a dog");
    EXPECT_CODE(400, "unknown key", "POST", "/v1/sessions/" FAKE_ID "/prompt", NULL,
                "{\"prompt\": \"a dog\", \"when\": 1}");
    EXPECT_CODE(202, "{", "POST", "/v1/sessions/" FAKE_ID "/pause", NULL, NULL);
    cr_expect(g_m.paused);
    EXPECT_CODE(202, "{", "POST", "/v1/sessions/" FAKE_ID "/resume", NULL, NULL);
    cr_expect(!g_m.paused);
    char big[4096];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = 0;
    EXPECT_CODE(413, "body_too_large", "POST", "/v1/sessions", NULL, big);
    /* safety */
    EXPECT_CODE(403, "Host", "GET", "/v1/sessions", "Host: rebind.example:8080\r\n", NULL);
    EXPECT_CODE(403, "Host", "GET", "/", "Host: rebind.example\r\n", NULL);
    EXPECT_CODE(403, "Origin", "POST", "/v1/sessions/" FAKE_ID "/pause",
                "Origin: http://evil.example\r\n", NULL);
    EXPECT_CODE(403, "cross-site", "GET", "/v1/sessions", "Sec-Fetch-Site: cross-site\r\n", NULL);
    char same[96];
    snprintf(same, sizeof same, "Origin: http://127.0.0.1:%d\r\n", g_port);
    EXPECT_CODE(202, "{", "POST", "/v1/sessions/" FAKE_ID "/pause", same, NULL);
    EXPECT_CODE(200, "{", "DELETE", "/v1/sessions/" FAKE_ID, NULL, NULL);
    cr_expect(g_m.deleted);
}

Test(serve_http, the_token_guards_the_api_not_the_page, .fini = stop_server)
{
    start_server("s3cret");
    EXPECT_CODE(200, "<!doctype html>", "GET", "/", NULL, NULL);
    EXPECT_CODE(401, "unauthorized", "GET", "/v1/sessions", NULL, NULL);
    EXPECT_CODE(401, "Bearer", "GET", "/v1/sessions", "Authorization: Bearer nope\r\n", NULL);
    EXPECT_CODE(200, "sessions", "GET", "/v1/sessions", "Authorization: Bearer s3cret\r\n", NULL);
    EXPECT_CODE(200, "sessions", "GET", "/v1/sessions?access_token=s3cret", NULL, NULL);
    EXPECT_CODE(401, "unauthorized", "GET", "/v1/sessions?access_token=s3cre", NULL, NULL);
    cr_expect_eq(sk_serve_http_start(&(sk_serve_http_params){.host = "0.0.0.0"},
                                     &(sk_serve_backend){0}, &(sk_serve_http *){NULL}),
                 SK_E_INVALID_ARG, "a non-loopback host without a token must be refused");
}

/* Reads a stream: the response head, then until the body holds `until` (or
 * `need` bytes when until is NULL), or 10 s. */
static size_t read_stream(const char *path, const char *until, size_t need, char *out, char *head,
                          size_t head_cap)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)g_port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    char rq[256];
    int n = snprintf(rq, sizeof rq, "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", path);
    cr_assert_eq(write(fd, rq, (size_t)n), n);
    static char buf[1 << 20];
    size_t got = 0;
    char *body = NULL;
    double t0 = lu_now();
    while (lu_now() - t0 < 10) {
        ssize_t r = read(fd, buf + got, sizeof buf - 1 - got);
        if (r <= 0) break;
        got += (size_t)r;
        buf[got] = 0;
        body = memmem(buf, got, "\r\n\r\n", 4);
        if (body && (until ? memmem(body, (size_t)(buf + got - body), until, strlen(until)) != NULL
                           : (size_t)(buf + got - (body + 4)) >= need))
            break;
    }
    close(fd);
    cr_assert(body, "no response head from %s", path);
    snprintf(head, head_cap, "%.*s", (int)(body - buf), buf);
    size_t bn = (size_t)(buf + got - (body + 4));
    memcpy(out, body + 4, bn);
    return bn;
}

typedef struct { fake_mgr *m; } pusher_arg;

static void *push_later(void *arg)
{
    fake_mgr *m = arg;
    lu_sleep(0.3);
    cJSON *d = cJSON_CreateObject();
    cJSON_AddNumberToObject(d, "frame", 12);
    sk_serve_event(m->events, "chunk", d);
    float *rgb = calloc(3 * 32 * 32, sizeof(float));
    for (int i = 0; i < 4; i++) sk_live_view_write(m->view, rgb);
    sk_live_view_flush(m->view);
    for (int i = 0; i < 4; i++) sk_live_view_write(m->view, rgb);
    free(rgb);
    return NULL;
}

Test(serve_http, streams_deliver_history_then_live_records, .fini = stop_server)
{
    start_server(NULL);
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "prompt", "a cat");
    TT_OK(sk_serve_event(g_m.events, "prompt", d));
    pthread_t th;
    pthread_create(&th, NULL, push_later, &g_m);
    static char body[1 << 20];
    char head[1024];
    size_t n = read_stream("/v1/sessions/" FAKE_ID "/events", "event: chunk\ndata: {\"frame\":12}\n\n",
                           0, body, head, sizeof head);
    body[n] = 0;
    cr_expect(strstr(head, "text/event-stream"), "%s", head);
    cr_expect(strstr(body, "event: prompt\ndata: {\"prompt\":\"a cat\"}\n\n"), "history: %s", body);
    cr_expect(strstr(body, "event: chunk\ndata: {\"frame\":12}"), "live record: %s", body);
    pthread_join(th, NULL);
    /* fMP4: the init segment, then the fragment written above */
    n = read_stream("/v1/sessions/" FAKE_ID "/live.mp4", "moof", 0, body, head, sizeof head);
    cr_expect(strstr(head, "video/mp4"), "%s", head);
    cr_assert_gt(n, 16);
    cr_expect(!memcmp(body + 4, "ftyp", 4), "the stream does not start with ftyp");
    cr_expect(memmem(body, n, "moof", 4), "no fragment after the init segment (%zu bytes)", n);
    EXPECT_CODE(405, "use GET", "POST", "/v1/sessions/" FAKE_ID "/live.mp4", NULL, NULL);
}
