/* test_v2v_rtmp.c - a video-to-video input from a real RTMP server (docs/INPUTS.md): nginx
 * with Debian's libnginx-mod-rtmp on 127.0.0.1, an ffmpeg publisher, `sinkstream generate
 * --input rtmp://...` playing it. The server is stopped mid-stream and started again 1 s
 * later with a new publisher: the input reconnects with backoff and the run makes every frame
 * it was asked for. No nginx or no RTMP module is a FAILURE, not a skip (CI installs both:
 * tools/install_deps.sh), as in tests/test_live_rtmp.c, whose nginx start-up this copies. */
#include "live_test_util.h"

static void mk(void) { lu_dir_make("v2v_rtmp"); }
static void rm(void) { lu_dir_remove(); }

TestSuite(v2v_rtmp, .init = mk, .fini = rm, .timeout = 120);

static const char *find_file(const char *const *cands, int n, const char *what)
{
    for (int i = 0; i < n; i++)
        if (access(cands[i], R_OK) == 0) return cands[i];
    cr_assert_fail("%s not found: install nginx-light and libnginx-mod-rtmp (bash "
                   "tools/install_deps.sh)", what);
    return NULL;
}

/* nginx in the foreground (no daemon, no master), live application "live", no recording;
 * returns once it accepts connections */
static pid_t start_nginx(int port, int run)
{
    static const char *const bins[] = {"/usr/sbin/nginx", "/usr/local/sbin/nginx",
                                       "/usr/bin/nginx"};
    static const char *const mods[] = {"/usr/lib/nginx/modules/ngx_rtmp_module.so",
                                       "/usr/share/nginx/modules/ngx_rtmp_module.so"};
    char conf[300], cmd[1200], log[300];
    snprintf(conf, sizeof conf, "%s/nginx_%d.conf", g_dir, run);
    FILE *f = fopen(conf, "w");
    cr_assert(f);
    fprintf(f,
            "load_module %s;\n"
            "daemon off;\nmaster_process off;\npid %s/nginx.pid;\n"
            "error_log %s/nginx_error.log info;\n"
            "events { worker_connections 64; }\n"
            "rtmp { server { listen 127.0.0.1:%d; chunk_size 4096;\n"
            "  application live { live on; } } }\n",
            find_file(mods, 2, "the nginx RTMP module"), g_dir, g_dir, port);
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s -p %s -c %s -e %s/nginx_error.log",
             find_file(bins, 3, "nginx"), g_dir, conf, g_dir);
    snprintf(log, sizeof log, "%s/nginx_%d.out", g_dir, run);
    pid_t pid = lu_spawn(cmd, log, NULL);
    const double t_end = lu_now() + 10;
    for (;;) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {0};
        a.sin_family = AF_INET;
        a.sin_port = htons((uint16_t)port);
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        const int ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
        close(fd);
        if (ok) return pid;
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid || lu_now() > t_end)
            cr_assert_fail("nginx did not start on port %d: %s %s", port, lu_read(log),
                           lu_read(lu_path("nginx_error.log")));
        lu_sleep(0.05);
    }
}

/* an ffmpeg publisher of `seconds` of testsrc at 16 fps */
static pid_t publish(int port, int n, int seconds)
{
    char cmd[600], log[64];
    snprintf(cmd, sizeof cmd, "timeout 90 ffmpeg -v error -re -f lavfi -i "
             "testsrc=size=64x64:rate=16 -t %d -c:v libx264 -g 8 -tune zerolatency -f flv "
             "rtmp://127.0.0.1:%d/live/in", seconds, port);
    snprintf(log, sizeof log, "publisher_%d.log", n);
    return lu_spawn(cmd, lu_path(log), NULL);
}

Test(v2v_rtmp, server_stopped_and_restarted_mid_stream)
{
    const int port = lu_free_port();
    /* the first publisher sends 48 frames at most; the run needs 80: it cannot end before
     * the reconnect, whatever the timing */
    pid_t ng = start_nginx(port, 1), pub = publish(port, 1, 3);
    lu_sleep(1.0); /* the stream is published */
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "%s generate --dit %sdemo/dit_demo_c16.safetensors --text-embeds "
             "%sdit/embeds.safetensors --vae %staehv/taehv_tiny_21.safetensors --height 64 "
             "--width 64 --input rtmp://127.0.0.1:%d/live/in --input-reconnect-max-ms 500 "
             "--net-timeout-ms 5000 --frames 20 -o %s/out.mkv",
             lu_bin(), LIVE_FIX, LIVE_FIX, LIVE_FIX, port, g_dir);
    const char *err = lu_path("generate.err");
    pid_t gen = lu_spawn(cmd, err, NULL);
    cr_assert(lu_wait_for_text(err, "(network): h264", 15), "the input did not open: %s",
              lu_read(err));
    lu_sleep(1.5); /* some frames through, then the server goes away */
    kill(ng, SIGTERM);
    cr_assert(lu_wait(ng, 10) >= 0, "nginx did not stop");
    lu_wait(pub, 10); /* the publisher fails with it */
    cr_assert(lu_wait_for_text(err, "reconnecting", 10), "no reconnect: %s", lu_read(err));
    lu_sleep(1.0);
    ng = start_nginx(port, 2);
    /* long enough for a slow (sanitizer) build: a live source drops the frames a slow
     * run cannot take, so the 80 used frames may need far more than 80 published ones; the
     * publisher is stopped once the run is done */
    pub = publish(port, 2, 80);
    const int rc = lu_wait(gen, 120);
    char *e = lu_read(err);
    cr_assert_eq(rc, 0, "generate failed (%d): %s", rc, e);
    cr_expect(strstr(e, "reconnected (attempt"), "%s", e);
    cr_expect(strstr(e, "80 frames at 16 fps used"), "%s", e);
    const char *r = strstr(e, "reconnects ");
    cr_expect(r && atoi(r + strlen("reconnects ")) >= 1, "%s", e);
    free(e);
    kill(pub, SIGTERM);
    lu_wait(pub, 10);
    kill(ng, SIGTERM);
    lu_wait(ng, 10);
    char probe[512];
    snprintf(probe, sizeof probe, "ffprobe -v error -count_frames -select_streams v:0 "
             "-show_entries stream=nb_read_frames -of csv=p=0 %s/out.mkv", g_dir);
    FILE *p = popen(probe, "r");
    cr_assert(p);
    int frames = 0;
    cr_expect_eq(fscanf(p, "%d", &frames), 1);
    pclose(p);
    cr_expect_eq(frames, 77, "77 frames from 80 input frames, got %d", frames);
}
