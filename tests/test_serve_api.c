/* test_serve_api.c - `sinkstream serve` with the tiny model directory
 * (tests/fixtures/tiny_model), driven over HTTP as docs/SERVER.md says:
 * create, list, prompt (applied at a chunk boundary), pause/resume, two
 * sessions at once, --max-sessions (429), delete (the recording finalised),
 * every error path with its status code, the token off loopback, the live
 * view's frames against the recording of the same session (PSNR), and a
 * clean exit on SIGINT. The page in a browser: tests/serve_browser.py. */
#define _GNU_SOURCE /* memmem */
#include <criterion/criterion.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/live_test_util.h"

#define MODEL LIVE_FIX "tiny_model"

static void fini(void)
{
    lu_kill_all();
    lu_dir_remove();
}

/* --port 0: the server binds a free port itself and names it in its ready line (no
 * race with other programs for a port found free a moment before). */
static pid_t start_server(const char *extra, int *port, const char *log)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s serve --model %s --port 0 --record-dir %s %s", lu_bin(), MODEL,
             lu_path("rec"), extra ? extra : "");
    pid_t pid = lu_spawn(cmd, log, NULL);
    char *t = NULL;
    if (lu_wait_for_text(log, "ready on http", 30)) t = lu_read(log);
    const char *at = t ? strstr(t, "ready on http://127.0.0.1:") : NULL;
    *port = at ? atoi(at + strlen("ready on http://127.0.0.1:")) : 0;
    if (*port <= 0) cr_assert_fail("the server did not start: %s", t ? t : lu_read(log));
    free(t);
    return pid;
}

static int http(int port, const char *method, const char *path, const char *hdr, const char *body,
                char *resp)
{
    return lu_http(port, method, path, hdr, body, resp, 16384);
}

/* "key":"value" or "key":number of a flat JSON answer, as text. */
static const char *field(const char *json, const char *key, char *out, size_t cap)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(json, pat);
    out[0] = 0;
    if (!p) return out;
    p += strlen(pat);
    if (*p == '"') {
        p++;
        size_t n = strcspn(p, "\"");
        snprintf(out, cap, "%.*s", (int)n, p);
    } else {
        size_t n = strcspn(p, ",}");
        snprintf(out, cap, "%.*s", (int)n, p);
    }
    return out;
}

static void create(int port, const char *body, char id[33])
{
    char r[16384], v[64];
    int c = http(port, "POST", "/v1/sessions", NULL, body, r);
    cr_assert_eq(c, 201, "create %s -> %d %s", body, c, r);
    field(r, "id", v, sizeof v);
    cr_assert_eq(strlen(v), 32, "id '%s' is not 32 hex digits", v);
    cr_assert_eq(strspn(v, "0123456789abcdef"), 32, "id '%s' is not hex", v);
    memcpy(id, v, 33);
}

/* Polls GET /v1/sessions/ID until field == want (60 s: a sanitizer build on a busy
 * machine makes a chunk in seconds); the last answer in r. */
static int wait_field(int port, const char *id, const char *key, const char *want, char *r)
{
    char path[128], v[512];
    snprintf(path, sizeof path, "/v1/sessions/%s", id);
    double t_end = lu_now() + 60;
    while (lu_now() < t_end) {
        if (http(port, "GET", path, NULL, NULL, r) == 200 && !strcmp(field(r, key, v, sizeof v), want))
            return 1;
        lu_sleep(0.05);
    }
    return 0;
}

#define EXPECT(code, needle, ...)                                                          \
    do {                                                                                   \
        char r_[16384];                                                                    \
        int c_ = http(__VA_ARGS__, r_);                                                    \
        cr_expect_eq(c_, code, "expected %d, got %d: %s", code, c_, r_);                   \
        cr_expect(strstr(r_, needle), "answer '%s' lacks '%s'", r_, needle);              \
    } while (0)

Test(serve_api, sessions_prompts_pause_limits_and_errors, .fini = fini)
{
    lu_dir_make("serve_api");
    int port;
    pid_t pid = start_server("--max-sessions 2", &port, lu_path("serve.log"));
    EXPECT(200, "\"max_sessions\":2", port, "GET", "/v1/server", NULL, NULL);
    char a[33], b[33], r[16384], v[64], path[160];
    create(port, "{\"prompt\": \"a cat\", \"width\": 64, \"height\": 64, \"unbounded\": true, "
                 "\"seed\": 1, \"record\": true}", a);
    create(port, "{\"prompt\": \"a cat\", \"width\": 64, \"height\": 64, \"seconds\": 3, "
                 "\"seed\": 1}", b);
    /* two running: a third is refused */
    EXPECT(429, "too_many_sessions", port, "POST", "/v1/sessions", NULL,
           "{\"prompt\": \"x\", \"width\": 64, \"height\": 64}");
    cr_assert_eq(http(port, "GET", "/v1/sessions", NULL, NULL, r), 200);
    cr_expect(strstr(r, a) && strstr(r, b), "the list lacks a session: %s", r);

    /* a prompt applies at a chunk boundary; the session reports it */
    snprintf(path, sizeof path, "/v1/sessions/%s/prompt", a);
    EXPECT(202, "\"request\":1", port, "POST", path, NULL, "{\"prompt\": \"a dog\"}");
    cr_assert(wait_field(port, a, "prompt", "a dog", r), "the prompt never applied: %s", r);
    cr_expect_str_eq(field(r, "switches", v, sizeof v), "1");

    /* "at" a video frame: applies at the first chunk boundary at or after it */
    int64_t at = atoi(field(r, "frame", v, sizeof v)) + 30;
    char body[128];
    snprintf(body, sizeof body, "{\"prompt\": \"a bird\", \"at\": %lld}", (long long)at);
    snprintf(path, sizeof path, "/v1/sessions/%s/prompt", a);
    EXPECT(202, "\"at\":", port, "POST", path, NULL, body);
    cr_assert(wait_field(port, a, "prompt", "a bird", r), "the prompt at %lld never applied: %s",
              (long long)at, r);
    int64_t pf = atoi(field(r, "prompt_frame", v, sizeof v));
    cr_expect(pf >= at - 3 && pf < at + 12, "asked at video frame %lld, applied at %lld (a chunk "
              "is 12 video frames; latent ceil(at/4) makes frames up to 3 earlier)", (long long)at,
              (long long)pf);

    /* pause holds the frame counter; resume moves it on */
    snprintf(path, sizeof path, "/v1/sessions/%s/pause", a);
    EXPECT(202, "next chunk boundary", port, "POST", path, NULL, NULL);
    cr_assert(wait_field(port, a, "state", "paused", r), "never paused: %s", r);
    char f1[32], f2[32];
    field(r, "frame", f1, sizeof f1);
    lu_sleep(0.6);
    snprintf(path, sizeof path, "/v1/sessions/%s", a);
    http(port, "GET", path, NULL, NULL, r);
    cr_expect_str_eq(field(r, "frame", f2, sizeof f2), f1, "frames were made while paused");
    snprintf(path, sizeof path, "/v1/sessions/%s/resume", a);
    EXPECT(202, "{", port, "POST", path, NULL, NULL);
    cr_assert(wait_field(port, a, "state", "running", r));
    double t_end = lu_now() + 60;
    snprintf(path, sizeof path, "/v1/sessions/%s", a);
    while (lu_now() < t_end && atoi(field(r, "frame", f2, sizeof f2)) <= atoi(f1)) {
        lu_sleep(0.05);
        http(port, "GET", path, NULL, NULL, r);
    }
    cr_expect_gt(atoi(f2), atoi(f1), "no frames after resume");

    /* the bounded one ends by itself: 3 s at 16 fps, whole chunks -> 57 video frames */
    cr_assert(wait_field(port, b, "state", "done", r), "session b never finished: %s", r);
    cr_expect_str_eq(field(r, "frame", v, sizeof v), "57");
    /* ... and frees its place */
    char c[33];
    create(port, "{\"prompt\": \"x\", \"width\": 64, \"height\": 64, \"frames\": 9}", c);

    /* errors, each with its code */
    EXPECT(400, "\"code\":\"bad_request\"", port, "POST", "/v1/sessions", NULL, "{\"prompt\": ");
    EXPECT(400, "unknown key", port, "POST", "/v1/sessions", NULL, "{\"prompt\": \"x\", \"sizes\": 2}");
    EXPECT(404, "not_found", port, "GET", "/v1/sessions/00000000000000000000000000000000", NULL, NULL);
    EXPECT(404, "not_found", port, "POST", "/v1/sessions/00000000000000000000000000000000/prompt",
           NULL, "{\"prompt\": \"x\"}");
    EXPECT(405, "method_not_allowed", port, "PATCH", "/v1/sessions", NULL, NULL);
    snprintf(path, sizeof path, "/v1/sessions/%s/pause", a);
    EXPECT(403, "Origin", port, "POST", path, "Origin: http://evil.example\r\n", NULL);
    EXPECT(403, "Host", port, "GET", "/v1/sessions", "Host: evil.example\r\n", NULL);
    snprintf(path, sizeof path, "/v1/sessions/%s/prompt", b);
    EXPECT(409, "ended", port, "POST", path, NULL, "{\"prompt\": \"too late\"}");

    /* delete: stopped, the recording finalised, then gone */
    char fa[32];
    snprintf(path, sizeof path, "/v1/sessions/%s", a);
    EXPECT(200, "\"state\":\"stopped\"", port, "DELETE", path, NULL, NULL);
    http(port, "GET", "/v1/sessions", NULL, NULL, r);
    cr_expect(!strstr(r, a), "a deleted session is still listed");
    EXPECT(404, "not_found", port, "GET", path, NULL, NULL);
    EXPECT(404, "not_found", port, "DELETE", path, NULL, NULL);
    char rec[512];
    snprintf(rec, sizeof rec, "%s/%s.mp4", lu_path("rec"), a);
    lu_probe pr = lu_ffprobe(rec);
    cr_expect_str_eq(pr.codec, "h264", "the recording %s is not a finished video", rec);
    cr_expect(pr.width == 64 && pr.height == 64);
    cr_expect_gt(pr.frames, 20, "the recording has %d frames", pr.frames);
    (void)fa;

    kill(pid, SIGINT);
    cr_expect_eq(lu_wait(pid, 20), 0, "the server did not exit 0 on SIGINT");
    char *log = lu_read(lu_path("serve.log"));
    cr_expect(strstr(log, "serve: stopped"), "%s", log);
    free(log);
}

Test(serve_api, a_token_is_required_off_loopback, .fini = fini)
{
    lu_dir_make("serve_api_token");
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s serve --model %s --host 0.0.0.0 --port 0", lu_bin(), MODEL);
    pid_t pid = lu_spawn(cmd, lu_path("open.log"), NULL);
    cr_expect_eq(lu_wait(pid, 30), 2, "a non-loopback --host without --token must be refused");
    char *t = lu_read(lu_path("open.log"));
    cr_expect(strstr(t, "--token"), "the message does not name --token: %s", t);
    free(t);

    int port;
    pid = start_server("--token s3cret", &port, lu_path("token.log"));
    EXPECT(200, "<!doctype html>", port, "GET", "/", NULL, NULL);
    EXPECT(401, "unauthorized", port, "GET", "/v1/sessions", NULL, NULL);
    EXPECT(401, "unauthorized", port, "POST", "/v1/sessions", "Authorization: Bearer nope\r\n",
           "{\"prompt\": \"x\"}");
    EXPECT(200, "sessions", port, "GET", "/v1/sessions", "Authorization: Bearer s3cret\r\n", NULL);
    kill(pid, SIGTERM);
    cr_expect_eq(lu_wait(pid, 20), 0);
}

/* ---- the live view shows the frames the file gets */

static uint8_t *decode_rgb(const char *file, int w, int h, int *frames)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "ffmpeg -v error -i '%s' -f rawvideo -pix_fmt rgb24 -", file);
    FILE *f = popen(cmd, "r");
    cr_assert(f);
    size_t fs = (size_t)w * h * 3, cap = fs * 64, n = 0;
    uint8_t *buf = malloc(cap);
    size_t got;
    while ((got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) buf = realloc(buf, cap *= 2);
    }
    pclose(f);
    *frames = (int)(n / fs);
    return buf;
}

Test(serve_api, the_live_view_shows_the_recorded_frames, .fini = fini)
{
    lu_dir_make("serve_api_view");
    int port;
    pid_t pid = start_server(NULL, &port, lu_path("serve.log"));
    char id[33], r[16384], path[160];
    /* created paused, so the viewer is connected before the first frame */
    create(port, "{\"prompt\": \"a cat\", \"width\": 64, \"height\": 48, \"frames\": 33, "
                 "\"seed\": 3, \"record\": true, \"paused\": true}", id);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {20, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    char rq[256];
    int n = snprintf(rq, sizeof rq, "GET /v1/sessions/%s/live.mp4 HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", id);
    cr_assert_eq(write(fd, rq, (size_t)n), n);
    lu_sleep(0.3);
    snprintf(path, sizeof path, "/v1/sessions/%s/resume", id);
    cr_assert_eq(http(port, "POST", path, NULL, NULL, r), 202, "%s", r);
    /* the stream ends when the session does */
    size_t cap = 1 << 22, got = 0;
    char *buf = malloc(cap);
    ssize_t k;
    while ((k = read(fd, buf + got, cap - got)) > 0) got += (size_t)k;
    close(fd);
    char *body = memmem(buf, got, "\r\n\r\n", 4);
    cr_assert(body, "no HTTP answer");
    cr_expect(memmem(buf, (size_t)(body - buf), "video/mp4", 9), "not video/mp4");
    body += 4;
    const char *live = lu_path("live.mp4");
    FILE *f = fopen(live, "wb");
    fwrite(body, 1, (size_t)(buf + got - body), f);
    fclose(f);
    free(buf);
    cr_assert(wait_field(port, id, "state", "done", r), "%s", r);
    snprintf(path, sizeof path, "/v1/sessions/%s", id);
    cr_assert_eq(http(port, "DELETE", path, NULL, NULL, r), 200); /* recording finalised */
    char rec[512];
    snprintf(rec, sizeof rec, "%s/%s.mp4", lu_path("rec"), id);
    int nl, nr;
    uint8_t *fl = decode_rgb(live, 64, 48, &nl), *fr = decode_rgb(rec, 64, 48, &nr);
    cr_expect_eq(nl, 33, "the live view decoded to %d frames", nl);
    cr_expect_eq(nr, 33, "the recording decoded to %d frames", nr);
    /* two lossy x264 encodes of the same frames (live: ultrafast crf 26; file: medium crf
     * 23) of noise-like content (random weights): each frame must match its own twin far
     * better than the neighbouring frame, which is what a frame off by one would give */
    const size_t fsz = 64 * 48 * 3;
    double worst = 99, shifted_best = 0;
    for (int i = 0; i < (nl < nr ? nl : nr); i++) {
        for (int s = 0; s < 2; s++) {
            int jr = s ? (i + 1 < nr ? i + 1 : i - 1) : i;
            double se = 0;
            for (size_t j = 0; j < fsz; j++) {
                double d = (double)fl[(size_t)i * fsz + j] - fr[(size_t)jr * fsz + j];
                se += d * d;
            }
            double mse = se / (double)fsz, psnr = mse > 0 ? 10 * log10(255.0 * 255.0 / mse) : 99;
            if (!s && psnr < worst) worst = psnr;
            if (s && psnr > shifted_best) shifted_best = psnr;
        }
    }
    fprintf(stderr, "live view vs recording: worst frame %.1f dB; best off-by-one %.1f dB\n", worst,
            shifted_best);
    cr_expect_geq(worst, 24.0, "live view vs recording: worst frame PSNR %.1f dB", worst);
    cr_expect_gt(worst, shifted_best + 3.0, "the live view's frames are not the recording's "
                 "(aligned worst %.1f dB, off by one up to %.1f dB)", worst, shifted_best);
    free(fl);
    free(fr);
    kill(pid, SIGINT);
    cr_expect_eq(lu_wait(pid, 20), 0);
}

/* A session is the engine's session as `sinkstream generate` runs it: with the same prompts
 * (a switch at a fixed frame included), seed, size and model.json defaults, its recording
 * decodes to exactly the frames of generate's file (both libx264 at the same settings, which
 * is deterministic, so any difference in the frames shows). */
Test(serve_api, a_session_makes_the_frames_generate_makes, .fini = fini)
{
    lu_dir_make("serve_api_same");
    int port;
    pid_t pid = start_server(NULL, &port, lu_path("serve.log"));
    char id[33], r[16384], path[160];
    create(port, "{\"prompt\": \"a cat\", \"width\": 64, \"height\": 48, \"frames\": 33, "
                 "\"seed\": 7, \"record\": true, \"pace\": false, \"paused\": true}", id);
    snprintf(path, sizeof path, "/v1/sessions/%s/prompt", id);
    /* video frame 13 is made by latent 4: the switch applies at the boundary at latent 6 */
    EXPECT(202, "\"at\":13", port, "POST", path, NULL, "{\"prompt\": \"a dog\", \"at\": 13}");
    snprintf(path, sizeof path, "/v1/sessions/%s/resume", id);
    EXPECT(202, "{", port, "POST", path, NULL, NULL);
    cr_assert(wait_field(port, id, "state", "done", r), "%s", r);
    cr_expect(strstr(r, "\"prompt\":\"a dog\",\"prompt_frame\":21"), "the switch: %s", r);
    snprintf(path, sizeof path, "/v1/sessions/%s", id);
    cr_assert_eq(http(port, "DELETE", path, NULL, NULL, r), 200);
    kill(pid, SIGINT);
    cr_expect_eq(lu_wait(pid, 20), 0);

    FILE *f = fopen(lu_path("prompts.jsonl"), "w");
    fprintf(f, "{\"prompt\": \"a cat\"}\n{\"frame\": 4, \"prompt\": \"a dog\"}\n");
    fclose(f);
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s generate --model %s --prompts %s --frames 9 --height 48 "
             "--width 64 --seed 7 -o %s", lu_bin(), MODEL, lu_path("prompts.jsonl"),
             lu_path("gen.mp4"));
    pid = lu_spawn(cmd, lu_path("gen.log"), NULL);
    cr_assert_eq(lu_wait(pid, 120), 0, "generate failed: %s", lu_read(lu_path("gen.log")));
    char rec[512];
    snprintf(rec, sizeof rec, "%s/%s.mp4", lu_path("rec"), id);
    int ns, ng;
    uint8_t *fs = decode_rgb(rec, 64, 48, &ns), *fg = decode_rgb(lu_path("gen.mp4"), 64, 48, &ng);
    cr_assert_eq(ns, 33, "the session's recording has %d frames", ns);
    cr_assert_eq(ng, 33, "generate's file has %d frames", ng);
    for (int i = 0; i < ns; i++)
        cr_expect(!memcmp(fs + (size_t)i * 64 * 48 * 3, fg + (size_t)i * 64 * 48 * 3, 64 * 48 * 3),
                  "frame %d differs between the session and generate", i);
    free(fs);
    free(fg);
}

/* serve --random-model (load tests on the device without model files): random weights of
 * a named shape with a random TAEHV decoder; a prompt's text seeds a random embedding,
 * so sessions, prompts and the live view work as with a model directory. */
Test(serve_api, random_weights_host_sessions, .fini = fini)
{
    lu_dir_make("serve_api_random");
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s serve --model %s --random-model tiny --port 0", lu_bin(),
             MODEL);
    pid_t pid = lu_spawn(cmd, lu_path("both.log"), NULL);
    cr_expect_eq(lu_wait(pid, 30), 2, "--model with --random-model must be refused");
    snprintf(cmd, sizeof cmd, "%s serve --random-model tiny --random-seed 3 --device cpu "
             "--port 0 --record-dir %s", lu_bin(), lu_path("rec"));
    pid = lu_spawn(cmd, lu_path("serve.log"), NULL);
    char *t = NULL;
    if (lu_wait_for_text(lu_path("serve.log"), "ready on http", 30)) t = lu_read(lu_path("serve.log"));
    const char *at = t ? strstr(t, "ready on http://127.0.0.1:") : NULL;
    const int port = at ? atoi(at + strlen("ready on http://127.0.0.1:")) : 0;
    if (port <= 0) cr_assert_fail("the server did not start: %s", t ? t : lu_read(lu_path("serve.log")));
    free(t);
    EXPECT(200, "\"random_weights\":true", port, "GET", "/v1/server", NULL, NULL);
    EXPECT(200, "\"model\":\"random:tiny\"", port, "GET", "/v1/server", NULL, NULL);
    char id[33], r[16384], path[160];
    create(port, "{\"prompt\": \"a cat\", \"width\": 64, \"height\": 64, \"frames\": 33, "
                 "\"seed\": 1, \"pace\": false, \"paused\": true}", id);
    snprintf(path, sizeof path, "/v1/sessions/%s/prompt", id);
    EXPECT(202, "\"request\":1", port, "POST", path, NULL, "{\"prompt\": \"a dog\", \"at\": 13}");
    snprintf(path, sizeof path, "/v1/sessions/%s/resume", id);
    EXPECT(202, "{", port, "POST", path, NULL, NULL);
    cr_assert(wait_field(port, id, "state", "done", r), "%s", r);
    cr_expect(strstr(r, "\"prompt\":\"a dog\",\"prompt_frame\":21"), "the switch: %s", r);
    cr_expect(strstr(r, "\"frame\":33,"), "33 video frames: %s", r);
    cr_expect(strstr(r, "\"live\":{\"mime\":\"video/mp4"), "a live view: %s", r);
    kill(pid, SIGINT);
    cr_expect_eq(lu_wait(pid, 20), 0);
}
