/* test_live_streams.c - the live outputs beyond RTMP against local receivers:
 * udp:// and srt:// (MPEG-TS) received by an `ffmpeg` listening on 127.0.0.1
 * (a free port each), and an HLS playlist (-o DIR/NAME.m3u8). Each: every
 * frame arrives (ffprobe counts them), the run is paced to real time, and the
 * failure paths: an SRT caller with no listener fails within --net-timeout-ms
 * with a message, an SRT listener killed mid-stream and started again gets a new
 * stream while the run stays on time, an existing playlist needs -y.
 * Debian's ffmpeg has libsrt; a build without it is checked for its message
 * instead (`ffmpeg -protocols` decides) and the other SRT tests report a skip,
 * which tests/check_no_skips.sh turns into a CI failure. No ffmpeg binary is a FAILURE (CI
 * installs it: tools/install_deps.sh). */
#include "live_test_util.h"

#include "runtime/output/output.h"

static void mk(void) { lu_dir_make("live_streams"); }
static void rm(void) { lu_dir_remove(); }

TestSuite(live_streams, .init = mk, .fini = rm, .timeout = 120);

#define F 6          /* latent frames */
#define VF (4 * F - 3) /* 21 video frames = 1.31 s at 16 fps */

/* A UDP port that was free a moment ago on 127.0.0.1 (SRT runs over UDP too). */
static int udp_free_port(void) { return lu_free_port_of(SOCK_DGRAM); }

/* 1 once some process has a UDP socket bound to port (the receiver is up). */
static int udp_bound(int port)
{
    FILE *f = fopen("/proc/net/udp", "r");
    if (!f) return 0;
    char line[512], want[16];
    snprintf(want, sizeof want, ":%04X ", port);
    int hit = 0;
    while (!hit && fgets(line, sizeof line, f)) {
        const char *local = strchr(line, ':'); /* "sl: local_address rem_address ..." */
        if (local && (local = strchr(local + 1, ':')) && !strncmp(local, want, strlen(want)))
            hit = 1;
    }
    fclose(f);
    return hit;
}

/* Starts `ffmpeg` receiving url into g_dir/out (copy, MPEG-TS); waits until it listens. */
static pid_t start_receiver(const char *url, int port, const char *out)
{
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "ffmpeg -nostdin -v error -y -i '%s' -c copy -f mpegts '%s'", url,
             lu_path(out));
    char log[64];
    snprintf(log, sizeof log, "%s.log", out);
    pid_t pid = lu_spawn(cmd, lu_path(log), NULL);
    double t_end = lu_now() + 10;
    while (!udp_bound(port)) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid || lu_now() > t_end)
            cr_assert_fail("the ffmpeg receiver did not start on %s: %s", url,
                           lu_read(lu_path(log)));
        lu_sleep(0.02);
    }
    return pid;
}

static char *generate_cmd(int frames, const char *out, const char *extra)
{
    static char cmd[2400];
    snprintf(cmd, sizeof cmd,
             "%s generate --dit %sdemo/dit_demo_c16.safetensors --vae "
             "%staehv/taehv_tiny_21.safetensors --text-encoder %stext/umt5_tiny.safetensors "
             "--tokenizer %stext/spiece_tiny.model --prompt cat --frames %d --height 64 "
             "--width 64 --fps 16 -o %s %s",
             lu_bin(), LIVE_FIX, LIVE_FIX, LIVE_FIX, LIVE_FIX, frames, out, extra);
    return cmd;
}

/* Runs generate to out; returns its wall time; the run must succeed. */
static double stream(const char *out, const char *extra)
{
    double t0 = lu_now();
    int rc = lu_wait(lu_spawn(generate_cmd(F, out, extra), lu_path("gen.log"), NULL), 60);
    double wall = lu_now() - t0;
    cr_assert_eq(rc, 0, "generate -o %s failed (%d): %s", out, rc, lu_read(lu_path("gen.log")));
    return wall;
}

static void expect_paced(double wall, const char *what)
{
    const double real = (double)VF / 16.0;
    cr_expect(wall >= real * 0.97, "%s: the run took %.2f s for %.2f s of video: not paced",
              what, wall, real);
    char *e = lu_read(lu_path("gen.log"));
    const char *pc = strstr(e, "paced ");
    cr_expect(pc != NULL, "%s: no pacing summary in: %s", what, e);
    cr_log_info("%s: %d frames (%.2f s of video) in %.2f s wall; %.*s", what, VF, real, wall,
                pc ? (int)strcspn(pc, "\n") : 0, pc ? pc : "");
    free(e);
}

static void expect_stream(const char *file, const char *what)
{
    lu_probe p = lu_ffprobe(lu_path(file));
    cr_expect_str_eq(p.codec, "h264", "%s: codec", what);
    cr_expect(p.width == 64 && p.height == 64, "%s: %dx%d", what, p.width, p.height);
    cr_expect_eq(p.frames, VF, "%s: the receiver got %d frames, %d were sent", what, p.frames, VF);
}

static int have_srt(void)
{
    return system("ffmpeg -hide_banner -protocols 2>/dev/null | grep -qx '  srt'") == 0;
}

Test(live_streams, udp_mpegts_to_a_local_receiver)
{
    int port = udp_free_port();
    char url[128], out[128];
    /* the receiver ends 4 s after the last datagram (UDP has no end of stream) */
    snprintf(url, sizeof url, "udp://127.0.0.1:%d?timeout=4000000", port);
    pid_t rx = start_receiver(url, port, "udp.ts");
    snprintf(out, sizeof out, "udp://127.0.0.1:%d", port);
    double wall = stream(out, "");
    cr_expect_geq(lu_wait(rx, 20), 0, "the receiver did not end");
    expect_stream("udp.ts", "udp");
    expect_paced(wall, "udp");
}

Test(live_streams, srt_mpegts_to_a_local_listener)
{
    int port = udp_free_port();
    char url[160], out[128];
    snprintf(out, sizeof out, "srt://127.0.0.1:%d", port);
    if (!have_srt()) { /* this FFmpeg lacks libsrt: the message says so */
        int rc = lu_wait(lu_spawn(generate_cmd(F, out, ""), lu_path("gen.log"), NULL), 60);
        char *e = lu_read(lu_path("gen.log"));
        cr_expect(rc == 1 && strstr(e, "without SRT (libsrt)"), "exit %d: %s", rc, e);
        free(e);
        return;
    }
    snprintf(url, sizeof url, "srt://127.0.0.1:%d?mode=listener&listen_timeout=20000000", port);
    pid_t rx = start_receiver(url, port, "srt.ts");
    double wall = stream(out, "");
    cr_expect_geq(lu_wait(rx, 20), 0, "the SRT listener did not end with the stream");
    expect_stream("srt.ts", "srt");
    expect_paced(wall, "srt");
}

/* Nobody listening: SRT's caller gives up within --net-timeout-ms, with a message. */
Test(live_streams, srt_without_a_listener_fails_in_time)
{
    if (!have_srt()) cr_skip_test("this FFmpeg has no libsrt (the message is checked instead)");
    char out[128];
    snprintf(out, sizeof out, "srt://127.0.0.1:%d", udp_free_port());
    double t0 = lu_now();
    int rc = lu_wait(lu_spawn(generate_cmd(3, out, "--net-timeout-ms 1000"), lu_path("gen.log"),
                              NULL), 60);
    double wall = lu_now() - t0;
    char *e = lu_read(lu_path("gen.log"));
    cr_expect_eq(rc, 1, "exit %d: %s", rc, e);
    cr_expect(strstr(e, out) && strstr(e, "connecting") && strstr(e, "timed out after 1000 ms"),
              "%s", e);
    cr_expect_lt(wall, 30, "gave up after %.1f s", wall);
    free(e);
}

/* The SRT listener is killed mid-stream: libsrt reports the broken connection after its
 * peer-idle timeout (5 s; FFmpeg 5.1 does not expose it), then the sink drops frames while
 * it reconnects on a thread of its own (the paced frames stay on time: a connect attempt
 * may wait its whole --net-timeout-ms), a listener started again on the port gets a new
 * stream (keyframe first), and the run ends on its own, exit 0, on time. */
Test(live_streams, srt_reconnects_to_a_restarted_listener)
{
    if (!have_srt()) cr_skip_test("this FFmpeg has no libsrt (the message is checked instead)");
    int port = udp_free_port();
    char url[200], out[128];
    snprintf(url, sizeof url, "srt://127.0.0.1:%d?mode=listener&listen_timeout=30000000", port);
    pid_t rx = start_receiver(url, port, "srt1.ts");
    snprintf(out, sizeof out, "srt://127.0.0.1:%d", port);
    const int frames = 40, vf = 4 * frames - 3; /* 157 frames = 9.8 s at 16 fps */
    double t0 = lu_now();
    pid_t gen = lu_spawn(generate_cmd(frames, out, "--net-timeout-ms 1000 --reconnect-max-ms 500"),
                         lu_path("gen.log"), NULL);
    cr_assert(lu_wait_for_text(lu_path("gen.log"), ", 40 latent frames, in chunks", 30), "%s",
              lu_read(lu_path("gen.log")));
    lu_sleep(1.0); /* a second of the stream has gone out */
    kill(-rx, SIGKILL);
    lu_wait(rx, 5);
    cr_assert(lu_wait_for_text(lu_path("gen.log"), "connection lost", 20),
              "the sink never noticed the listener was gone: %s", lu_read(lu_path("gen.log")));
    rx = start_receiver(url, port, "srt2.ts");
    int rc = lu_wait(gen, 60);
    double wall = lu_now() - t0;
    char *e = lu_read(lu_path("gen.log"));
    cr_expect_eq(rc, 0, "the run did not survive the listener restart (%d): %s", rc, e);
    cr_expect(strstr(e, "reconnected after"), "%s", e);
    /* A reconnect that held up the pacer would make frames late by up to --net-timeout-ms
     * (1000 ms); on a loaded machine a frame or two may be late by scheduler jitter (tens of
     * ms), which is not what this checks. */
    const char *lt = strstr(e, ", late ");
    int nlate = -1;
    double late_max = 0;
    if (lt && sscanf(lt, ", late %d (max %lf ms", &nlate, &late_max) < 1) nlate = -1;
    cr_expect(nlate == 0 || (nlate > 0 && nlate <= 4 && late_max < 250.0),
              "paced frames held up by the reconnect (late %d, max %.1f ms): %s", nlate, late_max,
              e);
    cr_expect_lt(wall, (double)vf / 16.0 + 4.0, "the run took %.1f s for %.1f s of video: the "
                 "reconnect held up the paced frames", wall, (double)vf / 16.0);
    cr_expect_geq(lu_wait(rx, 20), 0, "the second listener did not end with the stream");
    lu_probe b = lu_ffprobe(lu_path("srt2.ts"));
    cr_expect(!strcmp(b.codec, "h264") && b.frames > 0, "second listener: '%s', %d frames",
              b.codec, b.frames);
    const char *r = strstr(e, "reconnected after");
    cr_log_info("srt listener restart: %.*s; the second listener got %d of %d frames; run %.2f s",
                r ? (int)strcspn(r, "\n") : 0, r ? r : "", b.frames, vf, wall);
    free(e);
}

Test(live_streams, hls_playlist_and_segments)
{
    char out[300];
    snprintf(out, sizeof out, "%s/hls/live/stream.m3u8", g_dir); /* the folders are created */
    double wall = stream(out, "");
    char *m3u8 = lu_read(out);
    cr_expect(strstr(m3u8, "#EXTM3U") && strstr(m3u8, "stream0.ts") &&
              strstr(m3u8, "#EXT-X-ENDLIST"), "playlist:\n%s", m3u8);
    free(m3u8);
    cr_expect_gt(lu_size(lu_path("hls/live/stream0.ts")), 0);
    lu_probe p = lu_ffprobe(out);
    cr_expect_str_eq(p.codec, "h264");
    cr_expect_eq(p.frames, VF, "the playlist plays %d frames, %d were made", p.frames, VF);
    expect_paced(wall, "hls");
    /* the playlist exists now: without -y it is refused before anything loads */
    int rc = lu_wait(lu_spawn(generate_cmd(F, out, ""), lu_path("gen2.log"), NULL), 60);
    char *e = lu_read(lu_path("gen2.log"));
    cr_expect(rc == 2 && strstr(e, "exists; pass -y"), "exit %d: %s", rc, e);
    free(e);
}

/* An unbounded run's HLS keeps a sliding window (output params hls_list_size; the session
 * uses 10): the playlist lists the last N segments and the older files are deleted. Through
 * the sink directly, unpaced, so 9 s of video take a fraction of a second. */
Test(live_streams, hls_sliding_window_deletes_old_segments)
{
    char path[300];
    snprintf(path, sizeof path, "%s/win/s.m3u8", g_dir);
    sk_output_params p = {.path = path, .width = 32, .height = 32, .fps_num = 16, .fps_den = 1,
                          .hls_list_size = 2};
    sk_output *o = NULL;
    cr_assert_eq(sk_output_open(&p, &o), SK_OK, "%s", sk_error_message());
    cr_expect_eq(sk_output_get_kind(o), SK_OUTPUT_HLS);
    float *f = calloc(3 * 32 * 32, sizeof *f);
    cr_assert(f);
    for (int i = 0; i < 16 * 9; i++) { /* 9 s: segments of 2 s -> s0 .. s4 */
        for (int k = 0; k < 3 * 32 * 32; k++) f[k] = (float)((i + k) % 7) / 7.0f;
        cr_assert_eq(sk_output_write(o, f), SK_OK, "%s", sk_error_message());
    }
    free(f);
    cr_assert_eq(sk_output_close(&o), SK_OK, "%s", sk_error_message());
    char *m3u8 = lu_read(path);
    int n = 0;
    for (const char *c = m3u8; (c = strstr(c, "#EXTINF")); c++) n++;
    cr_expect_eq(n, 2, "the playlist lists %d segments, expected the last 2:\n%s", n, m3u8);
    cr_expect(strstr(m3u8, "s4.ts") && strstr(m3u8, "#EXT-X-ENDLIST") && !strstr(m3u8, "s0.ts"),
              "%s", m3u8);
    free(m3u8);
    cr_expect_lt(lu_size(lu_path("win/s0.ts")), 0, "the oldest segment was not deleted");
    cr_expect_gt(lu_size(lu_path("win/s4.ts")), 0, "the newest segment is missing");
}
