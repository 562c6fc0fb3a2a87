/* fuzz_http.c - libFuzzer target for the HTTP control API end to end: one
 * server (libmicrohttpd and our handlers) on 127.0.0.1 for the whole run;
 * each input is written raw (request line, headers, body: whatever the bytes
 * are) to a fresh connection from 127.0.0.2..250, the answer read when the
 * headers were complete, then the connection reset. The handlers (routing,
 * Host/Origin/token checks, body limits, the strict JSON bodies, the command
 * queue) run under ASan/UBSan. Invariants: an answer starts with an HTTP
 * status line; the server still answers afterwards (GET /status from
 * 127.0.0.1 gets 200); the queue stays bounded. An input that stops the run
 * gets a fresh control and server, so later inputs reach a live one.
 * Run: ./fuzz_http -max_total_time=30 corpus tests/fuzz/corpus_http */
#define _GNU_SOURCE /* strcasestr */
#include "fuzz_common.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "runtime/live/control.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static sk_control *g_c;
static int g_port;

static void start(void)
{
    const char *names[] = {"context", "context.1"};
    sk_control_params p = {.max_queue = 8, .embeds = names, .n_embeds = 2};
    if (sk_control_create(&p, &g_c) != SK_OK) __builtin_trap();
    sk_control_http_params hp = {.bind = "127.0.0.1", .port = 0, .max_body = 4096};
    if (sk_control_http_start(g_c, &hp) != SK_OK) __builtin_trap();
    g_port = sk_control_http_port(g_c);
}

/* A connection to the server from 127.0.0.src (the fuzz inputs rotate over
 * 127.0.0.2..250 so that the per-address connection limit, which the
 * server rightly applies to clients that leave connections open, does not
 * refuse the probe from 127.0.0.1). */
static int connect_srv(int src, int rcv_ms)
{
    /* a full accept queue or a port in TIME_WAIT: retry; a server gone: trap */
    for (int tries = 0;; tries++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0) __builtin_trap();
        struct timeval tv = {rcv_ms / 1000, (rcv_ms % 1000) * 1000};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        struct sockaddr_in me = {0}, a = {0};
        me.sin_family = AF_INET;
        me.sin_addr.s_addr = htonl(0x7f000000u | (uint32_t)src);
        if (bind(fd, (struct sockaddr *)&me, sizeof me) != 0) __builtin_trap();
        a.sin_family = AF_INET;
        a.sin_port = htons((uint16_t)g_port);
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0) return fd;
        int e = errno;
        close(fd);
        if (tries == 200) {
            fprintf(stderr, "fuzz_http: cannot connect from 127.0.0.%d: %s\n", src, strerror(e));
            __builtin_trap();
        }
        usleep(10000);
    }
}

/* Reads until the server closes, the timeout, or one whole answer came (a
 * keep-alive HTTP/1.1 connection stays open after it). */
static size_t read_answer(int fd, char *buf, size_t cap)
{
    size_t got = 0;
    ssize_t r;
    while (got < cap - 1 && (r = recv(fd, buf + got, cap - 1 - got, 0)) > 0) {
        got += (size_t)r;
        buf[got] = 0;
        const char *eoh = strstr(buf, "\r\n\r\n");
        const char *cl = strcasestr(buf, "\r\nContent-Length:");
        if (eoh && cl && cl < eoh && got >= (size_t)(eoh + 4 - buf) + strtoul(cl + 17, NULL, 10))
            break;
    }
    buf[got] = 0;
    return got;
}

/* Closes with a reset, so the server frees the connection at once. */
static void close_rst(int fd)
{
    struct linger lg = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 << 14) return 0;
    if (!g_c) {
        (void)fz_dir();
        start();
    }
    static char buf[1 << 16];
    static int src = 2;
    src = src >= 250 ? 2 : src + 1;
    /* an answer comes only for a request whose headers are complete: wait
     * for it briefly then, not at all otherwise (the server would wait for
     * more bytes until its idle timeout) */
    const int complete = memmem(data, size, "\r\n\r\n", 4) || memmem(data, size, "\n\n", 2);
    int fd = connect_srv(src, 50);
    for (size_t off = 0; off < size;) {
        ssize_t w = send(fd, (const char *)data + off, size - off, MSG_NOSIGNAL);
        if (w <= 0) break; /* the server may close early (413, 400) */
        off += (size_t)w;
    }
    size_t got = complete ? read_answer(fd, buf, sizeof buf) : 0;
    close_rst(fd);
    if (got && strncmp(buf, "HTTP/1.", 7) != 0) {
        /* seen once in CI under load (not reproduced from the saved input): say what came */
        fprintf(stderr, "fuzz_http: the answer (%zu bytes) is not an HTTP status line: [%.*s]\n", got,
                (int)(got > 200 ? 200 : got), buf);
        __builtin_trap();
    }
    if (sk_control_pending(g_c) > 8) __builtin_trap();
    /* drain like the chunk loop; a stop ends this control: a fresh one */
    sk_ctl_cmd cmd;
    while (sk_control_pop(g_c, &cmd)) sk_ctl_cmd_free(&cmd);
    if (sk_control_stop_requested(g_c)) {
        sk_control_free(&g_c);
        start();
    }
    /* still serving: GET /status from 127.0.0.1 gets 200. The probe's connection is reset
     * like the inputs' (a plain close can leave it counted against 127.0.0.1's connection
     * limit for a moment on a loaded machine), and a miss is retried a few times before
     * the server is called dead (seen twice in CI on a loaded 2-core box) */
    static const char probe[] = "GET /status HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    for (int attempt = 0;; attempt++) {
        fd = connect_srv(1, 5000);
        got = 0;
        if (send(fd, probe, sizeof probe - 1, MSG_NOSIGNAL) == (ssize_t)(sizeof probe - 1))
            got = read_answer(fd, buf, sizeof buf);
        close_rst(fd);
        if (got >= 12 && strncmp(buf + 9, "200", 3) == 0) break;
        fprintf(stderr, "fuzz_http: probe %d got %zu bytes: [%.*s]\n", attempt, got,
                (int)(got > 120 ? 120 : got), buf);
        if (attempt == 4) __builtin_trap();
        usleep(200000);
    }
    return 0;
}
