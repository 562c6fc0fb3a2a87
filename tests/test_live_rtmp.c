/* test_live_rtmp.c - RTMP streaming to a real server: nginx with Debian's
 * libnginx-mod-rtmp, started here on 127.0.0.1 on a free port with a temp
 * config that records what it receives (record all). A tiny model's video is
 * streamed paced to real time; ffprobe checks the recording (codec,
 * resolution, frame count). Then the server is stopped and started again
 * mid-stream: the stream resumes (a second recording with frames), the run
 * ends normally, the --tee file has every frame.
 * No nginx or no RTMP module is a FAILURE, not a skip: CI installs both
 * (tools/install_deps.sh). */
#include "live_test_util.h"

#include "runtime/output/output.h"

static void mk(void) { lu_dir_make("live_rtmp"); }
static void rm(void) { lu_dir_remove(); }

TestSuite(live_rtmp, .init = mk, .fini = rm, .timeout = 240);


static const char *nginx_bin(void)
{
    static const char *const cands[] = {"/usr/sbin/nginx", "/usr/local/sbin/nginx",
                                        "/usr/bin/nginx"};
    for (size_t i = 0; i < sizeof cands / sizeof cands[0]; i++)
        if (access(cands[i], X_OK) == 0) return cands[i];
    cr_assert_fail("nginx not found (looked in /usr/sbin, /usr/local/sbin, /usr/bin): install "
                   "nginx-light and libnginx-mod-rtmp (bash tools/install_deps.sh)");
    return NULL;
}

static const char *rtmp_module(void)
{
    static const char *const cands[] = {"/usr/lib/nginx/modules/ngx_rtmp_module.so",
                                        "/usr/share/nginx/modules/ngx_rtmp_module.so"};
    for (size_t i = 0; i < sizeof cands / sizeof cands[0]; i++)
        if (access(cands[i], R_OK) == 0) return cands[i];
    cr_assert_fail("the nginx RTMP module is missing: install libnginx-mod-rtmp "
                   "(bash tools/install_deps.sh)");
    return NULL;
}

/* Starts nginx in the foreground (no daemon, no master) recording into
 * g_dir/<rec>; waits until it accepts connections. */
static pid_t start_nginx(int port, const char *rec)
{
    char conf[300], recdir[300], cmd[1200];
    snprintf(recdir, sizeof recdir, "%s/%s", g_dir, rec);
    mkdir(recdir, 0755);
    snprintf(conf, sizeof conf, "%s/nginx_%s.conf", g_dir, rec);
    FILE *f = fopen(conf, "w");
    cr_assert(f);
    fprintf(f,
            "load_module %s;\n"
            "daemon off;\nmaster_process off;\npid %s/nginx.pid;\n"
            "error_log %s/nginx_error.log info;\n"
            "events { worker_connections 64; }\n"
            "rtmp { server { listen 127.0.0.1:%d; chunk_size 4096;\n"
            "  application live { live on; record all; record_path %s; } } }\n",
            rtmp_module(), g_dir, g_dir, port, recdir);
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s -p %s -c %s -e %s/nginx_error.log", nginx_bin(), g_dir, conf,
             g_dir);
    char log[300];
    snprintf(log, sizeof log, "%s/nginx_%s.out", g_dir, rec);
    pid_t pid = lu_spawn(cmd, log, NULL);
    double t_end = lu_now() + 10;
    for (;;) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {0};
        a.sin_family = AF_INET;
        a.sin_port = htons((uint16_t)port);
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        int ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
        close(fd);
        if (ok) return pid;
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid || lu_now() > t_end) {
            char *e = lu_read(log), *e2 = lu_read(lu_path("nginx_error.log"));
            cr_assert_fail("nginx did not start on port %d: %s %s", port, e, e2);
        }
        lu_sleep(0.05);
    }
}

static void stop_nginx(pid_t pid)
{
    kill(pid, SIGTERM); /* fast shutdown: closes the connections and the recording */
    cr_assert(lu_wait(pid, 10) >= 0, "nginx did not stop");
}

/* frames 0: no --frames (extra gives --seconds; one length option only) */
static char *generate_cmd(int port, int frames, const char *extra)
{
    static char cmd[4096];
    char len[32] = "";
    if (frames > 0) snprintf(len, sizeof len, "--frames %d ", frames);
    snprintf(cmd, sizeof cmd,
             "%s generate --dit %sdemo/dit_demo_c16.safetensors --text-embeds "
             "%sdit/embeds.safetensors --vae %staehv/taehv_tiny_21.safetensors %s"
             "--height 64 --width 64 --fps 16 -o rtmp://127.0.0.1:%d/live/test %s",
             lu_bin(), LIVE_FIX, LIVE_FIX, LIVE_FIX, len, port, extra);
    return cmd;
}

/* number after `key` in text, or -1 */
static double num_after(const char *text, const char *key)
{
    const char *p = strstr(text, key);
    return p ? atof(p + strlen(key)) : -1;
}

/* A whole stream, no trouble: the recording has every frame; the run took
 * (frames / fps) of wall time, as real time demands. */
Test(live_rtmp, streams_at_real_time_pace)
{
    int port = lu_free_port();
    pid_t ng = start_nginx(port, "rec");
    const int F = 12, vf = 4 * F - 3; /* 45 frames = 2.81 s at 16 fps */
    double t0 = lu_now();
    int rc = lu_wait(lu_spawn(generate_cmd(port, F, ""), lu_path("gen.log"), NULL), 60);
    double wall = lu_now() - t0;
    stop_nginx(ng);
    char *e = lu_read(lu_path("gen.log"));
    cr_assert_eq(rc, 0, "generate to nginx failed (%d): %s", rc, e);
    lu_probe p = lu_ffprobe(lu_path("rec/test.flv"));
    cr_expect_str_eq(p.codec, "h264");
    cr_expect(p.width == 64 && p.height == 64, "%dx%d", p.width, p.height);
    cr_expect_eq(p.frames, vf, "nginx recorded %d frames, %d were sent", p.frames, vf);
    /* paced: not faster than real time (the tiny model alone makes these in ~0.3 s) */
    const double real = (double)vf / 16.0;
    cr_expect(wall >= real * 0.97, "run took %.2f s for %.2f s of video: not paced", wall, real);
#if !defined(__SANITIZE_ADDRESS__) /* a sanitizer build generates slower than real time */
    cr_expect(wall < real + 20.0, "run took %.2f s for %.2f s of video", wall, real);
#endif
    const char *pc = strstr(e, "paced ");
    cr_log_info("%d frames (%.3f s of video) streamed in %.3f s wall (incl. start-up); %.*s", vf,
                real, wall, pc ? (int)strcspn(pc, "\n") : 0, pc ? pc : "");
    free(e);
}

Test(live_rtmp, survives_a_server_restart)
{
    int port = lu_free_port();
    pid_t ng = start_nginx(port, "rec1");
    const int F = 30, vf = 4 * F - 3; /* 117 frames = 7.3 s at 16 fps */
    char extra[400];
    snprintf(extra, sizeof extra, "--reconnect-max-ms 1000 --net-timeout-ms 3000 --tee %s",
             lu_path("tee.mkv"));
    pid_t gen = lu_spawn(generate_cmd(port, F, extra), lu_path("gen.log"), NULL);
    /* some of the stream has arrived: kill the server under it */
    double t_end = lu_now() + 30;
    while (lu_size(lu_path("rec1/test.flv")) < 8000 && lu_now() < t_end) lu_sleep(0.05);
    cr_assert(lu_size(lu_path("rec1/test.flv")) >= 8000, "nothing recorded: %s",
              lu_read(lu_path("gen.log")));
    stop_nginx(ng);
    double t_down = lu_now();
    lu_sleep(1.0);
    ng = start_nginx(port, "rec2");
    double t_up = lu_now();
    int rc = lu_wait(gen, 90);
    stop_nginx(ng);
    char *e = lu_read(lu_path("gen.log"));
    cr_assert_eq(rc, 0, "generate did not survive the restart (%d): %s", rc, e);
    cr_expect(strstr(e, "connection lost") && strstr(e, "reconnected after"), "%s", e);
    lu_probe a = lu_ffprobe(lu_path("rec1/test.flv")), b = lu_ffprobe(lu_path("rec2/test.flv")),
             t = lu_ffprobe(lu_path("tee.mkv"));
    cr_expect(!strcmp(a.codec, "h264") && a.width == 64 && a.height == 64 && a.frames > 0,
              "first recording: %s %dx%d %d frames", a.codec, a.width, a.height, a.frames);
    cr_expect(!strcmp(b.codec, "h264") && b.width == 64 && b.height == 64 && b.frames > 0,
              "second recording (after the restart): %s %dx%d %d frames", b.codec, b.width,
              b.height, b.frames);
    cr_expect_eq(t.frames, vf, "the --tee file must have every frame: %d of %d", t.frames, vf);
    double dropped = num_after(e, "frames sent, ");
    cr_expect(a.frames + b.frames + (int)dropped <= vf + 1 && a.frames + b.frames < vf,
              "recorded %d + %d, dropped %.0f, sent %d", a.frames, b.frames, dropped, vf);
    const char *rec = strstr(e, "reconnected after");
    cr_log_info("restart: server down %.2f s; %.*s; recorded %d + %d of %d frames", t_up - t_down,
                rec ? (int)strcspn(rec, "\n") : 0, rec ? rec : "", a.frames, b.frames, vf);
    free(e);
}

/* The server goes away for good: the run still ends (frames dropped, the
 * file tee complete), nothing hangs. */
Test(live_rtmp, server_gone_for_good_does_not_hang)
{
    int port = lu_free_port();
    pid_t ng = start_nginx(port, "rec");
    const int F = 9, vf = 4 * F - 3;
    char extra[400];
    snprintf(extra, sizeof extra, "--reconnect-max-ms 500 --net-timeout-ms 2000 --tee %s",
             lu_path("tee.mp4"));
    pid_t gen = lu_spawn(generate_cmd(port, F, extra), lu_path("gen.log"), NULL);
    double t_end = lu_now() + 30;
    while (lu_size(lu_path("rec/test.flv")) < 3000 && lu_now() < t_end) lu_sleep(0.05);
    stop_nginx(ng);
    int rc = lu_wait(gen, 60);
    char *e = lu_read(lu_path("gen.log"));
    cr_expect_eq(rc, 0, "%s", e);
    cr_expect(strstr(e, "still down at the end"), "%s", e);
    cr_expect_eq(lu_ffprobe(lu_path("tee.mp4")).frames, vf);
    free(e);
}

/* Issue 15 #4: Ctrl-C on a healthy stream exited 1 ("aborted by the caller")
 * and dropped the queued frames (76 of 104 reached the server). Now a first
 * SIGINT stops like POST /stop: the frames made are all sent, exit 0. */
Test(live_rtmp, first_ctrl_c_flushes_the_stream)
{
    int port = lu_free_port();
    pid_t ng = start_nginx(port, "rec");
    char extra[400];
    snprintf(extra, sizeof extra, "--seconds 0 --tee %s", lu_path("tee.mkv"));
    pid_t gen = lu_spawn(generate_cmd(port, 0, extra), lu_path("gen.log"), NULL);
    double t_end = lu_now() + 30;
    while (lu_size(lu_path("rec/test.flv")) < 8000 && lu_now() < t_end) lu_sleep(0.05);
    cr_assert(lu_size(lu_path("rec/test.flv")) >= 8000, "nothing recorded: %s",
              lu_read(lu_path("gen.log")));
    kill(gen, SIGINT);
    double t0 = lu_now();
    int rc = lu_wait(gen, 60);
    double dt = lu_now() - t0;
    stop_nginx(ng);
    char *e = lu_read(lu_path("gen.log"));
    cr_assert_eq(rc, 0, "first Ctrl-C must stop cleanly (exit %d): %s", rc, e);
    cr_expect(strstr(e, "signal: stopping at latent frame"), "%s", e);
    double made = num_after(e, "latent frames (");
    lu_probe r = lu_ffprobe(lu_path("rec/test.flv")), t = lu_ffprobe(lu_path("tee.mkv"));
    cr_expect(made > 0 && r.frames == (int)made && t.frames == (int)made,
              "made %.0f video frames, the server recorded %d, the tee has %d: %s", made, r.frames,
              t.frames, e);
    cr_expect(strstr(e, " 0 dropped"), "%s", e);
    cr_expect(dt < 15.0, "the flush took %.1f s", dt);
    free(e);
}

/* A second Ctrl-C does not wait for the flush: the run ends at once. */
Test(live_rtmp, second_ctrl_c_aborts_at_once)
{
    int port = lu_free_port();
    pid_t ng = start_nginx(port, "rec");
    pid_t gen = lu_spawn(generate_cmd(port, 0, "--seconds 0"), lu_path("gen.log"), NULL);
    double t_end = lu_now() + 30;
    while (lu_size(lu_path("rec/test.flv")) < 8000 && lu_now() < t_end) lu_sleep(0.05);
    cr_assert(lu_size(lu_path("rec/test.flv")) >= 8000, "nothing recorded (the run must be "
              "streaming before the Ctrl-Cs): %s", lu_read(lu_path("gen.log")));
    kill(ng, SIGSTOP); /* a frozen server: the flush could only end by the timeout */
    lu_sleep(0.5);
    kill(gen, SIGINT);
    lu_sleep(0.3);
    kill(gen, SIGINT);
    double t0 = lu_now();
    int rc = lu_wait(gen, 60);
    double dt = lu_now() - t0;
    kill(ng, SIGCONT);
    stop_nginx(ng);
    char *e = lu_read(lu_path("gen.log"));
    cr_expect(rc != 0, "an aborted run must not exit 0: %s", e);
    cr_expect(dt < 5.0, "second Ctrl-C took %.1f s to end the run: %s", dt, e);
    free(e);
}
