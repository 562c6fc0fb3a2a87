/* test_live_hostile.c - live control under hostile or careless clients
 * (issue 15): slow HTTP clients must not lock the API out, stop must get
 * through a full command queue, a line with a NUL byte is reported, and
 * text that reaches the log cannot forge log lines or carry terminal escapes.
 * Network: loopback only (127.0.0.1 for the legitimate client, 127.0.0.2 for
 * the slow ones: Linux routes all of 127/8 to lo). */
#include "live_test_util.h"
#include "dit_test_util.h"

#include "runtime/core/log.h"
#include "runtime/live/control.h"

static void mk(void) { lu_dir_make("live_hostile"); }
static void rm(void) { lu_kill_all(); lu_dir_remove(); }

TestSuite(live_hostile, .init = mk, .fini = rm, .timeout = 240);

static pid_t start_paused(int *port, const char *log)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s generate --dit %sdit_tiny.safetensors --dit-config %sconfig.json "
             "--text-embeds %sembeds.safetensors --embeds-key context --frames 6 "
             "--latent-height 8 --latent-width 8 --start-paused --control-port 0 --no-decode",
             lu_bin(), DIT_FIX, DIT_FIX, DIT_FIX);
    pid_t pid = lu_spawn(cmd, log, NULL);
    if (!lu_wait_for_text(log, "listening on port ", 60)) {
        char *e = lu_read(log);
        cr_assert_fail("no port printed: %s", e);
    }
    char *e = lu_read(log);
    *port = atoi(strstr(e, "listening on port ") + 18);
    free(e);
    cr_assert(*port > 0);
    return pid;
}

/* A connection from 127.0.0.2 that has sent one byte of a request. */
static int slow_client(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert(fd >= 0);
    struct sockaddr_in me = {0}, a = {0};
    me.sin_family = AF_INET;
    me.sin_addr.s_addr = htonl(0x7f000002);
    cr_assert_eq(bind(fd, (struct sockaddr *)&me, sizeof me), 0, "bind 127.0.0.2: %s",
                 strerror(errno));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    if (send(fd, "G", 1, MSG_NOSIGNAL) != 1) {}
    return fd;
}

/* Issue 15 #3: 16 connections that trickle a request locked the API out (0
 * of 14 probes answered). Now a client address holds a few connections at
 * most, and everyone else is still answered. */
Test(live_hostile, slow_clients_do_not_lock_out_the_api)
{
    int port;
    const char *log = lu_path("slow.log");
    pid_t pid = start_paused(&port, log);
    int fds[40], n = 0;
    for (int i = 0; i < 40; i++) fds[n++] = slow_client(port);
    lu_sleep(0.3);
    char body[8192];
    int answered = 0;
    for (int i = 0; i < 8; i++) {
        int code = lu_http(port, "GET", "/status", "", NULL, body, sizeof body);
        answered += code == 200;
        /* keep the slow ones alive: one more byte each */
        for (int k = 0; k < n; k++)
            if (fds[k] >= 0 && send(fds[k], "E", 1, MSG_NOSIGNAL) != 1) {}
        lu_sleep(0.2);
    }
    cr_expect_eq(answered, 8, "%d of 8 status probes answered while 40 slow clients were open",
                 answered);
    int code = lu_http(port, "POST", "/stop", "", NULL, body, sizeof body);
    cr_expect_eq(code, 202, "stop: %d %s", code, body);
    int rc = lu_wait(pid, 30);
    for (int k = 0; k < n; k++)
        if (fds[k] >= 0) close(fds[k]);
    char *e = lu_read(log);
    cr_expect_eq(rc, 0, "%s", e);
    free(e);
}

/* An idle connection is closed by the server within its timeout. */
Test(live_hostile, idle_connection_is_closed)
{
    int port;
    const char *log = lu_path("idle.log");
    pid_t pid = start_paused(&port, log);
    int fd = slow_client(port);
    cr_assert(fd >= 0);
    struct timeval tv = {30, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    double t0 = lu_now();
    char b[64];
    ssize_t got = read(fd, b, sizeof b); /* 0 (EOF) when the server closes it */
    double dt = lu_now() - t0;
    close(fd);
    cr_expect(got <= 0 && dt < 8.0, "idle connection still open after %.1f s (read %zd)", dt, got);
    char body[1024];
    cr_expect_eq(lu_http(port, "POST", "/stop", "", NULL, body, sizeof body), 202, "%s", body);
    cr_expect_eq(lu_wait(pid, 30), 0);
}

/* Issue 15 #5: stop was refused (503) while the queue was full. */
Test(live_hostile, stop_gets_through_a_full_queue)
{
    const char *names[] = {"context", "context.1"};
    sk_control_params p = {.max_queue = 2, .embeds = names, .n_embeds = 2};
    sk_control *c;
    cr_assert_eq(sk_control_create(&p, &c), SK_OK);
    uint64_t id = 0;
    cr_assert_eq(sk_control_push(c, SK_CTL_EMBEDS, "context", 0, "t", &id), SK_OK);
    cr_assert_eq(sk_control_push(c, SK_CTL_EMBEDS, "context.1", 0, "t", &id), SK_OK);
    cr_expect_eq(sk_control_push(c, SK_CTL_PAUSE, NULL, 0, "t", &id), SK_E_OOM, "queue is full");
    cr_expect_eq(sk_control_push(c, SK_CTL_STOP, NULL, 0, "t", &id), SK_OK,
                 "stop refused with a full queue: %s", sk_error_message());
    cr_expect(id > 0, "stop has an id");
    cr_expect(sk_control_stop_requested(c));
    /* a second stop (a client retrying) is no error either */
    cr_expect_eq(sk_control_push(c, SK_CTL_STOP, NULL, 0, "t", &id), SK_OK, "%s",
                 sk_error_message());
    cr_expect_eq(sk_control_push(c, SK_CTL_PAUSE, NULL, 0, "t", &id), SK_E_UNSUPPORTED);
    sk_control_free(&c);
}

/* Runs f with stderr going to a file; returns what was written. */
static char *capture_stderr(void (*f)(void *), void *arg)
{
    fflush(stderr);
    int saved = dup(2);
    const char *p = lu_path("stderr.txt");
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    cr_assert(fd >= 0 && saved >= 0);
    dup2(fd, 2);
    close(fd);
    f(arg);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    return lu_read(p);
}

static void log_hostile(void *arg)
{
    SK_LOGI("prompt switch (live: text '%s') applied", (const char *)arg);
}

/* Issue 15 #8: text from HTTP/stdin reached the log unescaped: a newline
 * forged a log line, ESC sequences drove the terminal. */
Test(live_hostile, log_escapes_control_characters)
{
    const char *evil = "a fox\nsinkstream: error: FORGED\r\x1b[2J\x1b[31mred\x7f";
    char *out = capture_stderr(log_hostile, (void *)evil);
    int lines = 0;
    for (const char *q = out; *q; q++) lines += *q == '\n';
    cr_expect_eq(lines, 1, "one message, one line: %s", out);
    cr_expect(!strchr(out, '\x1b') && !strchr(out, '\r') && !strchr(out, '\x7f'), "raw control "
              "bytes reached the log: %s", out);
    cr_expect(strstr(out, "a fox\\nsinkstream: error: FORGED\\r\\x1b[2J"), "%s", out);
    free(out);
}

static void stdin_lines(void *arg)
{
    sk_control *c = arg;
    int p[2];
    cr_assert_eq(pipe(p), 0);
    cr_assert_eq(sk_control_stdin_start(c, p[0]), SK_OK);
    static const char in[] = "\0stop\nbogus\x1b[31m\nembeds context.1\n";
    cr_assert_eq(write(p[1], in, sizeof in - 1), (ssize_t)(sizeof in - 1));
    close(p[1]);
    double t_end = lu_now() + 5;
    while (sk_control_pending(c) < 1 && lu_now() < t_end) lu_sleep(0.01);
    lu_sleep(0.2);
}

/* Issue 15 #8: a stdin line starting with NUL was skipped silently (and the
 * rest of it never seen); now it is reported and ignored. */
Test(live_hostile, stdin_nul_line_is_reported)
{
    const char *names[] = {"context", "context.1"};
    sk_control_params p = {.embeds = names, .n_embeds = 2};
    sk_control *c;
    cr_assert_eq(sk_control_create(&p, &c), SK_OK);
    char *err = capture_stderr(stdin_lines, c);
    cr_expect(strstr(err, "stdin line 1") && strstr(err, "NUL"), "%s", err);
    cr_expect(!sk_control_stop_requested(c), "the NUL line was taken as a stop");
    cr_expect(strstr(err, "stdin line 2") && strstr(err, "bogus\\x1b[31m") && !strchr(err, '\x1b'),
              "%s", err);
    cr_expect_eq(sk_control_pending(c), 1, "the embeds line of line 3");
    free(err);
    sk_control_free(&c);
}

/* Issue 15 #8: request bodies with a key twice or text after the JSON value
 * were taken (the first key won, silently). */
Test(live_hostile, json_bodies_are_strict)
{
    int port;
    const char *log = lu_path("json.log");
    pid_t pid = start_paused(&port, log);
    char body[8192];
    int code = lu_http(port, "POST", "/prompt", "",
                       "{\"embeds\": \"context\", \"embeds\": \"context.1\"}", body, sizeof body);
    cr_expect_eq(code, 400, "%s", body);
    cr_expect(strstr(body, "appears twice"), "%s", body);
    code = lu_http(port, "POST", "/prompt", "", "{\"embeds\": \"context.1\"} {\"x\": 1}", body,
                   sizeof body);
    cr_expect_eq(code, 400, "%s", body);
    cr_expect(strstr(body, "text after the JSON value"), "%s", body);
    code = lu_http(port, "POST", "/step", "", "{\"chunks\": 1} x", body, sizeof body);
    cr_expect_eq(code, 400, "%s", body);
    cr_expect_eq(lu_http(port, "POST", "/prompt", "", "{\"embeds\": \"context.1\"}\n", body,
                         sizeof body), 202, "%s", body);
    cr_expect_eq(lu_http(port, "POST", "/stop", "", NULL, body, sizeof body), 202, "%s", body);
    cr_expect_eq(lu_wait(pid, 30), 0);
}
