/* test_live_http.c - live control through the binary: a prompt posted over
 * HTTP (or written on stdin) while the run is paused at a chunk boundary
 * changes the prompt from that boundary on, with the re-cache, exactly like
 * the same schedule given as a --prompts file (bitwise); bad requests get a
 * 4xx with a message; with --control-token, no token -> 401; POST /stop ends
 * the run cleanly. Deterministic: --start-paused and `step` put the run at a
 * known boundary before anything is posted. */
#include "live_test_util.h"
#include "dit_test_util.h"

#include "runtime/live/control.h"

static void mk(void) { lu_dir_make("live_http"); }
static void rm(void) { lu_dir_remove(); }

TestSuite(live_http, .init = mk, .fini = rm, .timeout = 300);


static const char *common(void)
{
    static char c[1024];
    snprintf(c, sizeof c, "--dit %sdit_tiny.safetensors --dit-config %sconfig.json --text-embeds "
             "%sembeds.safetensors --frames 15 --latent-height 8 --latent-width 8 --kv-window 9 "
             "--kv-sink 3 --seed 5", DIT_FIX, DIT_FIX, DIT_FIX);
    return c;
}

static float *latents(const char *file, size_t *n)
{
    sk_st_file *f;
    dt_ok(sk_st_open(file, &f), file);
    float *v = dt_read(f, "latents", n);
    sk_st_close(&f);
    return v;
}

/* The reference: the same switch as a schedule file. */
static float *scheduled(size_t *n)
{
    const char *pf = lu_path("sched.jsonl");
    FILE *f = fopen(pf, "w");
    fputs("{\"embeds\": \"context\"}\n{\"frame\": 6, \"embeds\": \"context.1\"}\n", f);
    fclose(f);
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s generate %s --prompts %s --latents-out %s", lu_bin(), common(),
             pf, lu_path("sched.safetensors"));
    int rc = lu_wait(lu_spawn(cmd, lu_path("sched.log"), NULL), 120);
    char *e = lu_read(lu_path("sched.log"));
    cr_assert_eq(rc, 0, "scheduled run: %s", e);
    free(e);
    return latents(lu_path("sched.safetensors"), n);
}

/* Starts generate with --control-port 0 and reads the port it prints. */
static pid_t start_http(const char *extra, const char *out, const char *log, int *port)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s generate %s --embeds-key context --control-port 0 %s "
             "--latents-out %s", lu_bin(), common(), extra, out);
    pid_t pid = lu_spawn(cmd, log, NULL);
    if (!lu_wait_for_text(log, "listening on port ", 60)) {
        char *e = lu_read(log);
        kill(-pid, SIGKILL);
        cr_assert_fail("no port printed: %s", e);
    }
    char *e = lu_read(log);
    *port = atoi(strstr(e, "listening on port ") + 18);
    free(e);
    cr_assert(*port > 0);
    return pid;
}

/* Polls GET /status until it contains all of the needles. */
static void wait_status(int port, const char *tok_hdr, const char *n1, const char *n2)
{
    char body[8192];
    double t_end = lu_now() + 60;
    while (lu_now() < t_end) {
        int code = lu_http(port, "GET", "/status", tok_hdr, NULL, body, sizeof body);
        if (code == 200 && strstr(body, n1) && (!n2 || strstr(body, n2))) return;
        lu_sleep(0.02);
    }
    cr_assert_fail("status never showed %s %s: %s", n1, n2 ? n2 : "", body);
}

Test(live_http, posted_prompt_applies_at_the_next_boundary_like_a_schedule)
{
    size_t n, m;
    float *ref = scheduled(&n);
    int port;
    const char *out = lu_path("live.safetensors"), *log = lu_path("live.log");
    pid_t pid = start_http("--start-paused", out, log, &port);
    char body[8192];
    cr_assert_eq(lu_http(port, "POST", "/step", "", "{\"chunks\": 2}", body, sizeof body), 202,
                 "%s", body);
    /* paused again at the boundary before frame 6: now the prompt is posted mid-run */
    wait_status(port, "", "\"state\":\"paused\"", "\"frame\":6,");
    cr_assert_eq(lu_http(port, "POST", "/prompt", "", "{\"embeds\": \"context.1\"}", body,
                         sizeof body), 202, "%s", body);
    cr_expect(strstr(body, "\"id\":2") && strstr(body, "\"earliest_frame\":6") &&
              strstr(body, "\"earliest_latent_frame\":6,\"earliest_video_frame\":21"), "%s", body);
    wait_status(port, "", "\"cached_frames\":6", "\"value\":\"context\"");
    /* every latent count says so, with the video frame beside it (issue 17) */
    wait_status(port, "", "\"latent_frame\":6,\"video_frame\":21,", "\"latent_frames_total\":15,"
                "\"video_frames_total\":57,");
    wait_status(port, "", "\"since_latent_frame\":0,\"since_video_frame\":0",
                "\"cached_latent_frames\":6");
    cr_assert_eq(lu_http(port, "POST", "/resume", "", NULL, body, sizeof body), 202, "%s", body);
    int rc = lu_wait(pid, 120);
    char *e = lu_read(log);
    cr_assert_eq(rc, 0, "live run failed (%d): %s", rc, e);
    cr_expect(strstr(e, "prompt switch #2 (live: embeds 'context.1') applied at latent frame 6"),
              "%s", e);
    cr_expect(strstr(e, "recached frames 0..5"), "no recache: %s", e);
    const char *lat = strstr(e, "applied at latent frame 6, ");
    if (lat) cr_log_info("switch latency (posted while paused, so it includes the pause): %.*s",
                         (int)strcspn(lat + 27, "\n"), lat + 27);
    float *got = latents(out, &m);
    cr_assert_eq(n, m);
    cr_expect(memcmp(ref, got, n * sizeof *got) == 0,
              "the HTTP switch at frame 6 differs from the --prompts schedule");
    free(ref);
    free(got);
    free(e);
}

Test(live_http, stdin_commands_apply_like_a_schedule)
{
    size_t n, m;
    float *ref = scheduled(&n);
    char cmd[4096];
    const char *out = lu_path("stdin.safetensors"), *log = lu_path("stdin.log");
    snprintf(cmd, sizeof cmd, "%s generate %s --embeds-key context --control-stdin --start-paused "
             "--latents-out %s", lu_bin(), common(), out);
    int in;
    pid_t pid = lu_spawn(cmd, log, &in);
    /* queued at once: commands after `step` wait until its chunks are done */
    const char *lines = "frobnicate\nstep 2\nembeds context.1\nresume\n";
    cr_assert_eq(write(in, lines, strlen(lines)), (ssize_t)strlen(lines));
    int rc = lu_wait(pid, 120);
    close(in);
    char *e = lu_read(log);
    cr_assert_eq(rc, 0, "stdin run failed (%d): %s", rc, e);
    cr_expect(strstr(e, "stdin line 1: unknown command 'frobnicate'"), "%s", e);
    cr_expect(strstr(e, "applied at latent frame 6"), "%s", e);
    float *got = latents(out, &m);
    cr_assert_eq(n, m);
    cr_expect(memcmp(ref, got, n * sizeof *got) == 0, "stdin switch differs from the schedule");
    free(ref);
    free(got);
    free(e);
}

Test(live_http, bad_requests_token_and_stop)
{
    int port;
    const char *out = lu_path("tok.safetensors"), *log = lu_path("tok.log");
    pid_t pid = start_http("--start-paused --control-token s3cret --control-max-body 4096", out,
                           log, &port);
    char body[8192];
    const char *ok = "Authorization: Bearer s3cret\r\n";
    cr_expect_eq(lu_http(port, "GET", "/status", "", NULL, body, sizeof body), 401, "%s", body);
    cr_expect(strstr(body, "bearer token"), "%s", body);
    cr_expect_eq(lu_http(port, "GET", "/status", "Authorization: Bearer wrong\r\n", NULL, body,
                         sizeof body), 401);
    cr_expect_eq(lu_http(port, "POST", "/stop", "", NULL, body, sizeof body), 401,
                 "stop without the token must be refused");
    cr_expect_eq(lu_http(port, "GET", "/status", ok, NULL, body, sizeof body), 200, "%s", body);
    cr_expect(strstr(body, "\"state\":\"paused\"") && strstr(body, "\"policy\":\"sink\""), "%s",
              body);
    char big[6000];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = 0;
    struct { const char *method, *url, *body; int code; const char *needle; } cases[] = {
        {"POST", "/prompt", "{bad json", 400, "not a JSON object"},
        {"POST", "/prompt", "", 400, "empty body"},
        {"POST", "/prompt", "[1]", 400, "not a JSON object"},
        {"POST", "/prompt", "{\"embeds\": \"nope\"}", 400, "no tensor 'nope'"},
        {"POST", "/prompt", "{\"embeds\": 3}", 400, "must be a string"},
        {"POST", "/prompt", "{\"embeds\": \"a\", \"prompt\": \"b\"}", 400, "exactly one"},
        {"POST", "/prompt", "{\"embed\": \"context.1\"}", 400, "unknown key"},
        {"POST", "/prompt", "{\"prompt\": \"a fox\"}", 409, "no text encoder"},
        {"POST", "/prompt", big, 413, "limit of 4096"},
        {"POST", "/step", "{\"chunks\": 0}", 400, "chunks"},
        {"POST", "/step", "{\"chunks\": 2, \"x\": 1}", 400, "chunks"},
        {"GET", "/prompt", NULL, 405, "POST"},
        {"PUT", "/status", NULL, 405, "GET"},
        {"GET", "/nope", NULL, 404, "no such endpoint"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int code = lu_http(port, cases[i].method, cases[i].url, ok, cases[i].body, body,
                           sizeof body);
        cr_expect_eq(code, cases[i].code, "%s %s %.40s: %d %s", cases[i].method, cases[i].url,
                     cases[i].body ? cases[i].body : "", code, body);
        cr_expect(strstr(body, cases[i].needle) && strstr(body, "\"error\""),
                  "%s %s: body lacks '%s': %s", cases[i].method, cases[i].url, cases[i].needle,
                  body);
    }
    char hdr[256];
    snprintf(hdr, sizeof hdr, "%sOrigin: http://example.com\r\n", ok);
    cr_expect_eq(lu_http(port, "POST", "/stop", hdr, NULL, body, sizeof body), 403,
                 "a browser's cross-site request must be refused: %s", body);
    /* nothing above changed the run: still paused at frame 0 */
    cr_expect_eq(lu_http(port, "GET", "/status", ok, NULL, body, sizeof body), 200);
    cr_expect(strstr(body, "\"frame\":0,") && strstr(body, "\"pending\":0"), "%s", body);
    cr_expect_eq(lu_http(port, "POST", "/stop", ok, NULL, body, sizeof body), 202, "%s", body);
    int rc = lu_wait(pid, 30);
    char *e = lu_read(log);
    cr_expect_eq(rc, 0, "stop: exit %d: %s", rc, e);
    cr_expect(strstr(e, "control: stopping at latent frame 0"), "%s", e);
    free(e);
}

/* A text prompt posted live goes through the umT5 encoder kept for it. */
Test(live_http, text_prompt_with_the_encoder)
{
    const char *T = SK_SOURCE_DIR "/tests/fixtures/text/";
    char cmd[4096], tail[1024];
    snprintf(tail, sizeof tail, "--dit %sdit_tiny.safetensors --text-encoder "
             "%sumt5_tiny.safetensors --tokenizer %sspiece_tiny.model --frames 9 --latent-height 8 "
             "--latent-width 8 --kv-window 6 --kv-sink 3 --seed 9", DIT_FIX, T, T);
    const char *pf = lu_path("t.jsonl");
    FILE *f = fopen(pf, "w");
    fputs("{\"prompt\": \"A red fox at dawn.\"}\n{\"frame\": 3, \"prompt\": \"A blue whale.\"}\n", f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s generate %s --prompts %s --latents-out %s", lu_bin(), tail, pf,
             lu_path("t_ref.safetensors"));
    int rc = lu_wait(lu_spawn(cmd, lu_path("t_ref.log"), NULL), 120);
    char *e = lu_read(lu_path("t_ref.log"));
    if (rc != 0 && strstr(e, "SentencePiece")) cr_skip_test("no SentencePiece in this build");
    cr_assert_eq(rc, 0, "%s", e);
    free(e);
    /* the encoder kept resident, then freed and reloaded per prompt (--text-offload) */
    const char *variants[] = {"", "--text-offload"};
    for (int v = 0; v < 2; v++) {
        snprintf(cmd, sizeof cmd, "env SINKSTREAM_LOG=debug %s generate %s --prompt 'A red fox "
                 "at dawn.' --control-stdin --start-paused %s --latents-out %s", lu_bin(), tail,
                 variants[v],
                 lu_path("t_live.safetensors"));
        int in;
        pid_t pid = lu_spawn(cmd, lu_path("t_live.log"), &in);
        const char *lines = "step\nprompt A blue whale.\nresume\n";
        cr_assert_eq(write(in, lines, strlen(lines)), (ssize_t)strlen(lines));
        rc = lu_wait(pid, 120);
        close(in);
        e = lu_read(lu_path("t_live.log"));
        cr_assert_eq(rc, 0, "%s: %s", variants[v], e);
        cr_expect(strstr(e, "(live: text 'A blue whale.') applied at latent frame 3"), "%s", e);
        cr_expect_eq(strstr(e, "freed (offload)") != NULL, v == 1, "%s: %s", variants[v], e);
        size_t n, m;
        float *a = latents(lu_path("t_ref.safetensors"), &n);
        float *b = latents(lu_path("t_live.safetensors"), &m);
        cr_assert_eq(n, m);
        cr_expect(memcmp(a, b, n * sizeof *a) == 0, "live text prompt (%s) differs from the "
                  "schedule", variants[v][0] ? variants[v] : "encoder resident");
        free(a);
        free(b);
        free(e);
    }
}

/* The queue and the HTTP server in-process: validation, order, limits. */
Test(live_http, control_queue_unit)
{
    const char *names[] = {"context", "context.1"};
    sk_control_params p = {.max_queue = 3, .embeds = names, .n_embeds = 2};
    sk_control *c;
    cr_assert_eq(sk_control_create(&p, &c), SK_OK);
    uint64_t id;
    cr_expect_eq(sk_control_push(c, SK_CTL_PROMPT, "x", 0, "t", &id), SK_E_UNSUPPORTED);
    cr_expect_eq(sk_control_push(c, SK_CTL_EMBEDS, "zzz", 0, "t", &id), SK_E_INVALID_ARG);
    cr_expect_eq(sk_control_push_line(c, "step x", "t", &id), SK_E_INVALID_ARG);
    cr_expect_eq(sk_control_push_line(c, "pause now", "t", &id), SK_E_INVALID_ARG);
    cr_expect_eq(sk_control_push_line(c, "  embeds   context.1  ", "t", &id), SK_OK);
    cr_expect_eq(id, 1);
    cr_expect_eq(sk_control_push_line(c, "step 4", "t", &id), SK_OK);
    cr_expect_eq(sk_control_push_line(c, "pause", "t", &id), SK_OK);
    cr_expect_eq(sk_control_push_line(c, "resume", "t", &id), SK_E_OOM, "queue of 3 is full");
    cr_expect_eq(sk_control_http_code(SK_E_OOM), 503);
    sk_ctl_cmd cmd;
    cr_assert(sk_control_pop(c, &cmd));
    cr_expect(cmd.kind == SK_CTL_EMBEDS && !strcmp(cmd.arg, "context.1") && cmd.id == 1);
    sk_ctl_cmd_free(&cmd);
    cr_assert(sk_control_pop(c, &cmd));
    cr_expect(cmd.kind == SK_CTL_STEP && cmd.n == 4);
    cr_expect_eq(sk_control_push_line(c, "stop", "t", &id), SK_OK);
    cr_expect(sk_control_stop_requested(c));
    cr_expect_eq(sk_control_push_line(c, "resume", "t", &id), SK_E_UNSUPPORTED, "after stop");
    cr_expect(sk_control_wait(c, 0.01));
    cr_expect(!sk_control_addr_is_loopback("0.0.0.0"));
    cr_expect(!sk_control_addr_is_loopback("192.168.1.2"));
    cr_expect(sk_control_addr_is_loopback("127.0.0.2") && sk_control_addr_is_loopback("::1") &&
              sk_control_addr_is_loopback("localhost"));
    if (sk_control_http_available()) {
        sk_control_http_params hp = {.bind = "0.0.0.0"};
        cr_expect_eq(sk_control_http_start(c, &hp), SK_E_INVALID_ARG, "non-loopback, no token");
        hp.bind = "not-an-address";
        hp.token = "t";
        cr_expect_eq(sk_control_http_start(c, &hp), SK_E_INVALID_ARG);
        hp.bind = NULL;
        hp.token = NULL;
        cr_assert_eq(sk_control_http_start(c, &hp), SK_OK, "%s", sk_error_message());
        int port = sk_control_http_port(c);
        cr_expect(port > 0);
        char body[2048];
        cr_expect_eq(lu_http(port, "GET", "/", "", NULL, body, sizeof body), 200);
        cr_expect(strstr(body, "POST /prompt"), "%s", body);
        cr_expect_eq(lu_http(port, "GET", "/status", "Host: evil.example:80\r\n", NULL, body,
                             sizeof body), 403, "DNS rebinding: foreign Host on a loopback bind");
        /* the port is taken now */
        sk_control *c2;
        cr_assert_eq(sk_control_create(&p, &c2), SK_OK);
        hp.port = port;
        cr_expect_eq(sk_control_http_start(c2, &hp), SK_E_IO);
        sk_control_free(&c2);
    }
    sk_control_free(&c);
}
