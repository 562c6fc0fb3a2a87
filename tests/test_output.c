/* test_output.c - the output sinks (runtime/output/output.h).
 *
 * Video files are checked from the outside: ffprobe reports codec, size, frame
 * rate and the number of frames it decoded, and the ffmpeg CLI decodes them back
 * to RGB24 to check that the colours survived (matrix/range tags right). PNGs
 * are read back with stb_image, safetensors with our reader. Error paths assert
 * the status and that the message names the path. Without FFmpeg in the build
 * the video tests assert SK_E_UNSUPPORTED instead. */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#include "runtime/output/output.h"
#include "runtime/core/progress.h"
#include "runtime/io/safetensors.h"

#ifdef SK_HAVE_STB /* PNGs are read back with stb_image (libstb-dev) */
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wshadow"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-function"
#endif
#define STB_IMAGE_IMPLEMENTATION
#include <stb/stb_image.h>
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif
#endif

/* ---- helpers ---------------------------------------------------------- */

static char g_dir[64];

static void make_tmpdir(void)
{
    snprintf(g_dir, sizeof g_dir, "/tmp/sk_test_output_XXXXXX");
    cr_assert(mkdtemp(g_dir), "mkdtemp: %s", strerror(errno));
}

static void rm_tmpdir(void)
{
    if (!g_dir[0]) return;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_dir);
}

TestSuite(output, .init = make_tmpdir, .fini = rm_tmpdir);

static const char *tpath(const char *name)
{
    static char buf[4][256];
    static int i;
    i = (i + 1) % 4;
    snprintf(buf[i], sizeof buf[i], "%s/%s", g_dir, name);
    return buf[i];
}

/* Smooth, saturated test clip [t, 3, h, w]: a colour gradient that moves per
 * frame, values k/255 exactly (uint8-representable). */
static float *make_clip(int t, int w, int h)
{
    float *f = malloc(sizeof(float) * 3 * (size_t)w * h * t);
    cr_assert(f);
    for (int n = 0; n < t; n++)
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++) {
                    int v;
                    if (c == 0) v = (x * 255) / (w > 1 ? w - 1 : 1);
                    else if (c == 1) v = (y * 255) / (h > 1 ? h - 1 : 1);
                    else v = (40 + 20 * n) % 256;
                    f[(((size_t)n * 3 + c) * h + y) * w + x] = (float)v / 255.0f;
                }
    return f;
}

static int file_exists(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0;
}

typedef struct {
    char codec[256];
    int width, height, frames;
    char rate[256];
    char color_space[256], color_range[256];
    double duration; /* container duration, seconds */
} probe_info;

/* ffprobe's view of the first video stream; key=value output so the order of
 * the fields does not matter. */
static __attribute__((unused)) int ffprobe(const char *file, probe_info *pi)
{
    memset(pi, 0, sizeof *pi);
    pi->frames = -1;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "ffprobe -v error -select_streams v:0 -count_frames -show_entries "
             "stream=codec_name,width,height,nb_read_frames,r_frame_rate,color_space,color_range:"
             "format=duration -of default=nw=1 '%s'",
             file);
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    char line[256];
    while (fgets(line, sizeof line, p)) {
        line[strcspn(line, "\r\n")] = 0;
        if (!strncmp(line, "codec_name=", 11)) snprintf(pi->codec, sizeof pi->codec, "%s", line + 11);
        else if (!strncmp(line, "width=", 6)) pi->width = atoi(line + 6);
        else if (!strncmp(line, "height=", 7)) pi->height = atoi(line + 7);
        else if (!strncmp(line, "nb_read_frames=", 15)) pi->frames = atoi(line + 15);
        else if (!strncmp(line, "color_space=", 12))
            snprintf(pi->color_space, sizeof pi->color_space, "%s", line + 12);
        else if (!strncmp(line, "color_range=", 12))
            snprintf(pi->color_range, sizeof pi->color_range, "%s", line + 12);
        else if (!strncmp(line, "duration=", 9)) pi->duration = atof(line + 9);
        else if (!strncmp(line, "r_frame_rate=", 13)) snprintf(pi->rate, sizeof pi->rate, "%s", line + 13);
    }
    return pclose(p);
}

/* Decodes a video to packed RGB24 [t, h, w, 3] with the ffmpeg CLI. */
static __attribute__((unused)) uint8_t *ffmpeg_decode(const char *file, int w, int h, int t)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "ffmpeg -v error -i '%s' -f rawvideo -pix_fmt rgb24 -", file);
    FILE *p = popen(cmd, "r");
    cr_assert(p);
    size_t n = (size_t)w * h * 3 * t;
    uint8_t *buf = malloc(n + 1);
    cr_assert(buf);
    size_t got = fread(buf, 1, n + 1, p);
    int rc = pclose(p);
    cr_assert(rc == 0 && got == n, "ffmpeg decode of %s: rc %d, %zu bytes, expected %zu", file, rc,
              got, n);
    return buf;
}

static uint8_t to_u8(float v) /* independent statement of the rule: clamp, round half up */
{
    if (!(v == v)) return 0;
    double d = v < 0 ? 0.0 : v > 1 ? 1.0 : v;
    return (uint8_t)floor(d * 255.0 + 0.5);
}

static sk_output_params vparams(const char *path, int w, int h)
{
    sk_output_params p = {0};
    p.path = path;
    p.width = w;
    p.height = h;
    return p;
}

static void write_clip(const sk_output_params *p, const float *clip, int t)
{
    sk_output *o = NULL;
    sk_status s = sk_output_open(p, &o);
    cr_assert_eq(s, SK_OK, "open %s: %s", p->path, sk_error_message());
    s = sk_output_write_frames(o, clip, t);
    cr_assert_eq(s, SK_OK, "write %s: %s", p->path, sk_error_message());
    cr_assert_eq(sk_output_frames(o), t);
    s = sk_output_close(&o);
    cr_assert_eq(s, SK_OK, "close %s: %s", p->path, sk_error_message());
    cr_assert_null(o);
}

/* ---- kind detection ---------------------------------------------------- */

Test(output, detect_kind)
{
    struct { const char *path; sk_output_kind kind; } ok[] = {
        {"a.mp4", SK_OUTPUT_VIDEO_FILE}, {"dir/b.MKV", SK_OUTPUT_VIDEO_FILE},
        {"c.mov", SK_OUTPUT_VIDEO_FILE}, {"rtmp://host/live/key", SK_OUTPUT_RTMP},
        {"RTMPS://host/app", SK_OUTPUT_RTMP}, {"x.safetensors", SK_OUTPUT_RGB_SAFETENSORS},
        {"frames/", SK_OUTPUT_PNG_DIR}, {"/tmp", SK_OUTPUT_PNG_DIR},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        sk_output_kind k = SK_OUTPUT_AUTO;
        cr_assert_eq(sk_output_detect_kind(ok[i].path, &k), SK_OK, "%s: %s", ok[i].path,
                     sk_error_message());
        cr_assert_eq(k, ok[i].kind, "%s -> %s, expected %s", ok[i].path, sk_output_kind_name(k),
                     sk_output_kind_name(ok[i].kind));
    }
    sk_output_kind k;
    /* any extension libavformat muxes is a video file now (.avi); an unknown one is not */
    cr_assert_eq(sk_output_detect_kind("clip.avi", &k), SK_OK);
    cr_assert_eq(k, SK_OUTPUT_VIDEO_FILE);
    cr_assert_eq(sk_output_detect_kind("clip.notavideo", &k), SK_E_INVALID_ARG);
    cr_assert(strstr(sk_error_message(), "clip.notavideo") && strstr(sk_error_message(), ".mp4"),
              "message: %s", sk_error_message());
    cr_assert_eq(sk_output_detect_kind("", &k), SK_E_INVALID_ARG);
}

Test(output, parse_fps)
{
    struct { const char *s; int num, den; } ok[] = {
        {"16", 16, 1}, {"30000/1001", 30000, 1001}, {"29.97", 2997, 100}, {"23.976", 2997, 125},
        {"24/2", 12, 1}, {"0.5", 1, 2},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        int n = 0, d = 0;
        cr_assert_eq(sk_output_parse_fps(ok[i].s, &n, &d), SK_OK, "%s: %s", ok[i].s,
                     sk_error_message());
        cr_assert(n == ok[i].num && d == ok[i].den, "%s -> %d/%d, expected %d/%d", ok[i].s, n, d,
                  ok[i].num, ok[i].den);
    }
    const char *bad[] = {"", "0", "-16", "abc", "16fps", "30/0", "1/", "2000", "nan", "1e9"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int n, d;
        cr_assert_eq(sk_output_parse_fps(bad[i], &n, &d), SK_E_INVALID_ARG, "'%s' accepted", bad[i]);
        if (*bad[i]) cr_assert(strstr(sk_error_message(), bad[i]), "%s", sk_error_message());
    }
}

Test(output, bad_params)
{
    sk_output *o = (sk_output *)0x1;
    sk_output_params p = vparams(tpath("x.safetensors"), 0, 4);
    cr_assert_eq(sk_output_open(&p, &o), SK_E_INVALID_ARG);
    cr_assert_null(o);
    cr_assert(strstr(sk_error_message(), "0x4"), "message: %s", sk_error_message());
    p = vparams(tpath("x.safetensors"), 4, 4);
    p.fps_num = -3;
    cr_assert_eq(sk_output_open(&p, &o), SK_E_INVALID_ARG);
    p = vparams(NULL, 4, 4);
    cr_assert_eq(sk_output_open(&p, &o), SK_E_INVALID_ARG);
    cr_assert_eq(sk_output_close(NULL), SK_OK);
    o = NULL;
    cr_assert_eq(sk_output_close(&o), SK_OK);
    cr_assert_eq(sk_output_write(NULL, NULL), SK_E_INVALID_ARG);
}

/* ---- the 8-bit conversion ---------------------------------------------- */

Test(output, rgb24_conversion_rule)
{
    const int w = 4, h = 2;
    const float vals[] = {0.0f, 1.0f, 0.5f, -0.25f, 1.75f, NAN, INFINITY, -INFINITY,
                          1.0f / 255, 254.0f / 255, 0.498f, 0.502f, 0.2f, 0.8f, 0.0039f, 0.9961f};
    float src[3 * 4 * 2];
    for (int i = 0; i < 3 * w * h; i++) src[i] = vals[(i * 7) % 16];
    uint8_t dst[2 * 20]; /* stride 20 > 12: padding bytes must stay untouched */
    memset(dst, 0xAB, sizeof dst);
    sk_rgb_planar_to_rgb24(src, w, h, dst, 20);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++) {
                float v = src[(c * h + y) * w + x];
                cr_assert_eq(dst[y * 20 + 3 * x + c], to_u8(v), "(%d,%d,%d) v=%g got %d want %d",
                             c, y, x, v, dst[y * 20 + 3 * x + c], to_u8(v));
            }
    for (int y = 0; y < h; y++)
        for (int i = 12; i < 20; i++) cr_assert_eq(dst[y * 20 + i], 0xAB);
    cr_assert_eq(to_u8(0.5f), 128); /* half up: 127.5 -> 128 */
}

/* ---- video files -------------------------------------------------------- */

#ifdef SK_HAVE_FFMPEG

static void check_video(const char *name, int fps_num, int fps_den, const char *want_rate)
{
    const int w = 64, h = 48, t = 9;
    float *clip = make_clip(t, w, h);
    sk_output_params p = vparams(tpath(name), w, h);
    p.fps_num = fps_num;
    p.fps_den = fps_den;
    p.crf = 12; /* near-transparent, so the colour check below measures conversion, not x264 */
    write_clip(&p, clip, t);

    probe_info pi;
    cr_assert_eq(ffprobe(p.path, &pi), 0, "ffprobe failed on %s", p.path);
    cr_assert_str_eq(pi.codec, "h264", "%s", p.path);
    cr_assert_eq(pi.width, w);
    cr_assert_eq(pi.height, h);
    cr_assert_eq(pi.frames, t, "%s: ffprobe read %d frames, wrote %d", p.path, pi.frames, t);
    cr_assert_str_eq(pi.rate, want_rate, "%s", p.path);
    /* pts = frame index in a 1/fps time base: the clip lasts t frames of den/num s
     * (containers store milliseconds or finer: 1.5 ms slack) */
    const double want_dur = (double)t * fps_den / fps_num;
    cr_assert(fabs(pi.duration - want_dur) < 1.5e-3, "%s: duration %.4f s, expected %.4f",
              p.path, pi.duration, want_dur);
    /* tagged as what the converter produced, so players invert it the same way */
    cr_assert_str_eq(pi.color_space, "bt709", "%s", p.path);
    cr_assert_str_eq(pi.color_range, "tv", "%s", p.path);

    /* colours come back: mean |err| small and no pixel far off. A BT.601/709 or
     * full/limited range mix-up on this gradient measured mean 7.1 / 7.8 (max 41 / 23). */
    uint8_t *dec = ffmpeg_decode(p.path, w, h, t);
    double sum = 0;
    int worst = 0;
    for (int n = 0; n < t; n++)
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                for (int c = 0; c < 3; c++) {
                    int ref = to_u8(clip[(((size_t)n * 3 + c) * h + y) * w + x]);
                    int got = dec[(((size_t)n * h + y) * w + x) * 3 + c];
                    int e = abs(got - ref);
                    sum += e;
                    if (e > worst) worst = e;
                }
    double mean = sum / (3.0 * w * h * t);
    cr_log_info("%s: decoded back mean |err| %.2f, max %d (of 255)", name, mean, worst);
    cr_assert(mean < 2.5 && worst < 40, "%s: colours off after decode: mean |err| %.2f max %d",
              name, mean, worst);
    free(dec);
    free(clip);
}

Test(output, mp4_h264_9_frames) { check_video("a.mp4", 16, 1, "16/1"); }
Test(output, mkv_h264_9_frames) { check_video("a.mkv", 24, 1, "24/1"); }
Test(output, mov_ntsc_rate) { check_video("a.mov", 30000, 1001, "30000/1001"); }

Test(output, default_fps_is_16)
{
    float *clip = make_clip(3, 32, 32);
    sk_output_params p = vparams(tpath("d.mp4"), 32, 32); /* fps 0/0 -> 16/1 */
    write_clip(&p, clip, 3);
    probe_info pi;
    cr_assert_eq(ffprobe(p.path, &pi), 0);
    cr_assert_str_eq(pi.rate, "16/1");
    cr_assert_eq(pi.frames, 3);
    free(clip);
}

Test(output, zero_frames_still_finalises)
{
    sk_output *o = NULL;
    sk_output_params p = vparams(tpath("empty.mkv"), 32, 32);
    cr_assert_eq(sk_output_open(&p, &o), SK_OK, "%s", sk_error_message());
    cr_assert_eq(sk_output_close(&o), SK_OK, "%s", sk_error_message());
    cr_assert(file_exists(p.path));
}

Test(output, abort_flag_still_finalises_a_file)
{
    const int w = 32, h = 32, t = 5;
    float *clip = make_clip(t, w, h);
    static volatile int stop = 0;
    sk_output_params p = vparams(tpath("abort.mp4"), w, h);
    p.abort_flag = &stop;
    sk_output *o = NULL;
    cr_assert_eq(sk_output_open(&p, &o), SK_OK, "%s", sk_error_message());
    cr_assert_eq(sk_output_write_frames(o, clip, 3), SK_OK, "%s", sk_error_message());
    stop = 1; /* Ctrl-C: writing more may fail, but close must leave a playable file */
    (void)sk_output_write_frames(o, clip + 3 * 3 * w * h, 2);
    cr_assert_eq(sk_output_close(&o), SK_OK, "%s", sk_error_message());
    probe_info pi;
    cr_assert_eq(ffprobe(p.path, &pi), 0, "aborted mp4 is not readable");
    cr_assert_str_eq(pi.codec, "h264");
    cr_assert(pi.frames >= 3 && pi.frames <= 5, "%d frames", pi.frames);
    free(clip);
}

Test(output, unknown_codec)
{
    sk_output *o = NULL;
    sk_output_params p = vparams(tpath("c.mp4"), 64, 48);
    p.codec = "nope264";
    cr_assert_eq(sk_output_open(&p, &o), SK_E_INVALID_ARG);
    cr_assert_null(o);
    cr_assert(strstr(sk_error_message(), "unknown codec 'nope264'"), "%s", sk_error_message());
    cr_assert(strstr(sk_error_message(), p.path), "%s", sk_error_message());
    cr_assert(!file_exists(p.path), "a failed open left %s behind", p.path);
    p.codec = "aac"; /* exists, but audio */
    cr_assert_eq(sk_output_open(&p, &o), SK_E_INVALID_ARG);
    cr_assert(strstr(sk_error_message(), "not a video encoder"), "%s", sk_error_message());
}

Test(output, bad_preset_and_pix_fmt)
{
    sk_output *o = NULL;
    sk_output_params p = vparams(tpath("p.mp4"), 64, 48);
    p.preset = "warp9";
    cr_assert_neq(sk_output_open(&p, &o), SK_OK);
    cr_assert_null(o);
    cr_assert(strstr(sk_error_message(), "warp9") && strstr(sk_error_message(), p.path), "%s",
              sk_error_message());
    cr_assert(!file_exists(p.path));
    p.preset = NULL;
    p.pix_fmt = "notapixfmt";
    cr_assert_eq(sk_output_open(&p, &o), SK_E_INVALID_ARG);
    cr_assert(strstr(sk_error_message(), "notapixfmt"), "%s", sk_error_message());
}

Test(output, unwritable_paths)
{
    sk_output *o = NULL;
    sk_output_params p = vparams("/proc/nonexistent/x.mp4", 64, 48);
    sk_status s = sk_output_open(&p, &o);
    cr_assert(s == SK_E_IO, "got %s: %s", sk_status_name(s), sk_error_message());
    cr_assert_null(o);
    cr_assert(strstr(sk_error_message(), "/proc/nonexistent/x.mp4"), "%s", sk_error_message());

    /* a path through a regular file */
    const char *file = tpath("plainfile");
    FILE *f = fopen(file, "w");
    cr_assert(f);
    fclose(f);
    char bad[300];
    snprintf(bad, sizeof bad, "%s/x.mkv", file);
    p.path = bad;
    s = sk_output_open(&p, &o);
    cr_assert(s == SK_E_IO, "got %s: %s", sk_status_name(s), sk_error_message());
    cr_assert(strstr(sk_error_message(), bad), "%s", sk_error_message());
}

Test(output, odd_size_error_suggests_even)
{
    sk_output *o = NULL;
    sk_output_params p = vparams(tpath("odd.mp4"), 63, 47);
    cr_assert_eq(sk_output_open(&p, &o), SK_E_INVALID_ARG);
    cr_assert_null(o);
    const char *m = sk_error_message();
    cr_assert(strstr(m, "63x47") && strstr(m, "64x48") && strstr(m, p.path), "%s", m);
    cr_assert(!file_exists(p.path));
}

Test(output, odd_size_pad_replicates_edge)
{
    const int w = 63, h = 47, t = 4;
    float *clip = make_clip(t, w, h);
    sk_output_params p = vparams(tpath("odd.mkv"), w, h);
    p.odd = SK_OUTPUT_ODD_PAD;
    p.crf = 12;
    write_clip(&p, clip, t);
    probe_info pi;
    cr_assert_eq(ffprobe(p.path, &pi), 0);
    cr_assert_eq(pi.width, 64);
    cr_assert_eq(pi.height, 48);
    cr_assert_eq(pi.frames, t);
    /* the pad column/row repeats the last real one (no black bar) */
    uint8_t *dec = ffmpeg_decode(p.path, 64, 48, t);
    double diff = 0;
    for (int n = 0; n < t; n++)
        for (int y = 0; y < 47; y++)
            for (int c = 0; c < 3; c++)
                diff += abs(dec[(((size_t)n * 48 + y) * 64 + 63) * 3 + c] -
                            dec[(((size_t)n * 48 + y) * 64 + 62) * 3 + c]);
    diff /= (double)t * 47 * 3;
    cr_assert(diff < 6.0, "pad column differs from the last column by %.2f on average", diff);
    free(dec);
    free(clip);
}

/* A TCP port that accepts connections (the kernel completes the handshake from
 * the backlog) but never speaks: an RTMP client waits for the server's reply. */
static int silent_server(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert(fd >= 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(listen(fd, 4), 0);
    socklen_t len = sizeof a;
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

Test(output, rtmp_silent_server_times_out)
{
    int port;
    int fd = silent_server(&port);
    char url[128];
    snprintf(url, sizeof url, "rtmp://127.0.0.1:%d/live/test", port);
    sk_output_params p = vparams(url, 64, 48);
    p.timeout_ms = 400;
    sk_output *o = NULL;
    double t0 = sk_progress_now();
    sk_status s = sk_output_open(&p, &o);
    double dt = sk_progress_now() - t0;
    cr_assert_eq(s, SK_E_NET, "got %s: %s", sk_status_name(s), sk_error_message());
    cr_assert_null(o);
    cr_assert(strstr(sk_error_message(), url) && strstr(sk_error_message(), "timed out"), "%s",
              sk_error_message());
    cr_assert(dt < 5.0, "open took %.2f s with a 0.4 s timeout", dt);
    close(fd);
}

Test(output, rtmp_abort_flag)
{
    int port;
    int fd = silent_server(&port);
    char url[128];
    snprintf(url, sizeof url, "rtmp://127.0.0.1:%d/live/test", port);
    static volatile int stop = 1;
    sk_output_params p = vparams(url, 64, 48);
    p.abort_flag = &stop; /* already set: nothing may block */
    sk_output *o = NULL;
    double t0 = sk_progress_now();
    sk_status s = sk_output_open(&p, &o);
    cr_assert_eq(s, SK_E_NET, "got %s: %s", sk_status_name(s), sk_error_message());
    cr_assert(strstr(sk_error_message(), "aborted"), "%s", sk_error_message());
    cr_assert(sk_progress_now() - t0 < 3.0);
    close(fd);
}

Test(output, rtmp_connection_refused)
{
    /* find a port nobody listens on: bind, read it, close */
    int port;
    int fd = silent_server(&port);
    close(fd);
    char url[128];
    snprintf(url, sizeof url, "rtmp://127.0.0.1:%d/live/test", port);
    sk_output_params p = vparams(url, 64, 48);
    p.timeout_ms = 3000;
    sk_output *o = NULL;
    sk_status s = sk_output_open(&p, &o);
    cr_assert_eq(s, SK_E_NET, "got %s: %s", sk_status_name(s), sk_error_message());
    cr_assert(strstr(sk_error_message(), url), "%s", sk_error_message());
}

/* Loopback smoke test: the ffmpeg CLI plays an RTMP server (-listen 1) and
 * copies what it receives into an FLV file, which ffprobe then checks. */
Test(output, rtmp_loopback_to_ffmpeg_server, .timeout = 60)
{
    int port;
    int fd = silent_server(&port); /* reserve a free port number, then release it */
    close(fd);
    char url[128], flv[300];
    snprintf(url, sizeof url, "rtmp://127.0.0.1:%d/live/test", port);
    snprintf(flv, sizeof flv, "%s", tpath("received.flv"));
    char *argv[] = {"timeout", "50", "ffmpeg", "-nostdin", "-v", "error", "-listen", "1",
                    "-i", url, "-c", "copy", "-y", flv, NULL};
    pid_t pid;
    posix_spawn_file_actions_t fa; /* the server's stderr ("I/O error" at stream end) to a file */
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 2, tpath("server.log"), O_WRONLY | O_CREAT | O_TRUNC,
                                     0644);
    cr_assert_eq(posix_spawnp(&pid, "timeout", &fa, NULL, argv, environ), 0);
    posix_spawn_file_actions_destroy(&fa);

    const int w = 64, h = 48, t = 9;
    float *clip = make_clip(t, w, h);
    sk_output_params p = vparams(url, w, h);
    p.timeout_ms = 5000;
    sk_output *o = NULL;
    sk_status s = SK_E_NET;
    /* until the server listens: ffmpeg can take seconds to start on a loaded
     * 2-core CI machine, so allow 25 s, but stop early if it died */
    for (double t_end = sk_progress_now() + 25.0; s != SK_OK && sk_progress_now() < t_end;) {
        s = sk_output_open(&p, &o);
        if (s != SK_OK) {
            int st;
            cr_assert_eq(waitpid(pid, &st, WNOHANG), 0, "the ffmpeg RTMP server exited (see %s)",
                         tpath("server.log"));
            usleep(50 * 1000);
        }
    }
    cr_assert_eq(s, SK_OK, "could not stream to a local ffmpeg server: %s", sk_error_message());
    cr_assert_eq(sk_output_get_kind(o), SK_OUTPUT_RTMP);
    cr_assert_eq(sk_output_write_frames(o, clip, t), SK_OK, "%s", sk_error_message());
    cr_assert_eq(sk_output_close(&o), SK_OK, "%s", sk_error_message());
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    probe_info pi;
    cr_assert_eq(ffprobe(flv, &pi), 0, "ffprobe on the received stream failed");
    cr_assert_str_eq(pi.codec, "h264");
    cr_assert(pi.width == w && pi.height == h);
    cr_assert_eq(pi.frames, t, "server received %d frames, sent %d", pi.frames, t);
    cr_assert_str_eq(pi.rate, "16/1");
    free(clip);
}

#else /* !SK_HAVE_FFMPEG */

/* Reported as a skip so tests/run.sh (which fails on any skip) sees that the
 * video tests above were compiled out. */
Test(output, ffmpeg_tests_compiled_out)
{
    cr_skip_test("built without FFmpeg: the video/RTMP output tests are compiled out "
                 "(install libavformat-dev etc.: tools/install_deps.sh)");
}

Test(output, video_unsupported_without_ffmpeg)
{
    sk_output *o = NULL;
    sk_output_params p = vparams(tpath("a.mp4"), 64, 48);
    cr_assert_eq(sk_output_open(&p, &o), SK_E_UNSUPPORTED);
    cr_assert(strstr(sk_error_message(), "FFmpeg"), "%s", sk_error_message());
    p.path = "rtmp://127.0.0.1/live/x";
    cr_assert_eq(sk_output_open(&p, &o), SK_E_UNSUPPORTED);
    cr_assert_null(o);
}

#endif

/* ---- PNG frames ---------------------------------------------------------- */

#ifdef SK_HAVE_STB

Test(output, png_frames_read_back_exactly)
{
    const int w = 7, h = 5, t = 3; /* odd sizes are fine for PNG */
    float *clip = make_clip(t, w, h);
    /* a few out-of-range and non-representable values: they follow the rule */
    clip[0] = -0.5f;
    clip[1] = 1.5f;
    clip[2] = NAN;
    clip[3] = 0.5f;
    const char *dir = tpath("frames/sub"); /* two levels created */
    sk_output_params p = vparams(dir, w, h);
    p.kind = SK_OUTPUT_PNG_DIR;
    write_clip(&p, clip, t);
    for (int n = 0; n < t; n++) {
        char name[300];
        snprintf(name, sizeof name, "%s/frame_%06d.png", dir, n);
        int iw, ih, ic;
        uint8_t *img = stbi_load(name, &iw, &ih, &ic, 3);
        cr_assert(img, "cannot read back %s: %s", name, stbi_failure_reason());
        cr_assert(iw == w && ih == h, "%s is %dx%d, wrote %dx%d", name, iw, ih, w, h);
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                for (int c = 0; c < 3; c++) {
                    float v = clip[(((size_t)n * 3 + c) * h + y) * w + x];
                    cr_assert_eq(img[(y * w + x) * 3 + c], to_u8(v),
                                 "%s (%d,%d) ch %d: got %d want %d (v=%g)", name, y, x, c,
                                 img[(y * w + x) * 3 + c], to_u8(v), v);
                }
        stbi_image_free(img);
    }
    char extra[300];
    snprintf(extra, sizeof extra, "%s/frame_%06d.png", dir, t);
    cr_assert(!file_exists(extra));
    free(clip);
}

Test(output, png_dir_inside_a_file_fails)
{
    const char *file = tpath("plain");
    FILE *f = fopen(file, "w");
    cr_assert(f);
    fclose(f);
    char bad[300];
    snprintf(bad, sizeof bad, "%s/frames", file);
    sk_output_params p = vparams(bad, 8, 8);
    p.kind = SK_OUTPUT_PNG_DIR;
    sk_output *o = NULL;
    cr_assert_eq(sk_output_open(&p, &o), SK_E_IO);
    cr_assert(strstr(sk_error_message(), bad), "%s", sk_error_message());
    p.path = file; /* the dir itself is a file */
    cr_assert_eq(sk_output_open(&p, &o), SK_E_IO);
    cr_assert(strstr(sk_error_message(), "not a directory"), "%s", sk_error_message());
}

#else /* !SK_HAVE_STB */

Test(output, png_tests_compiled_out)
{
    cr_skip_test("built without libstb-dev: the PNG output tests are compiled out");
}

Test(output, png_unsupported_without_stb)
{
    sk_output_params p = vparams(tpath("frames"), 8, 8);
    p.kind = SK_OUTPUT_PNG_DIR;
    sk_output *o = NULL;
    cr_assert_eq(sk_output_open(&p, &o), SK_E_UNSUPPORTED);
    cr_assert_null(o);
    cr_assert(strstr(sk_error_message(), "libstb-dev"), "%s", sk_error_message());
}

#endif

/* ---- raw RGB safetensors ------------------------------------------------ */

Test(output, rgb_safetensors_round_trip)
{
    const int w = 5, h = 3, t = 20; /* > 16 frames: the buffer grows once */
    float *clip = make_clip(t, w, h);
    clip[7] = -0.25f; /* kept as is: this sink does not clamp */
    clip[8] = 1.25f;
    sk_output_params p = vparams(tpath("rgb.safetensors"), w, h);
    p.fps_num = 24;
    write_clip(&p, clip, t);

    sk_st_file *f = NULL;
    cr_assert_eq(sk_st_open(p.path, &f), SK_OK, "%s", sk_error_message());
    const sk_st_tensor *tn = sk_st_find(f, "frames");
    cr_assert(tn, "no tensor 'frames'");
    cr_assert_eq(tn->dtype, SK_DTYPE_F32);
    cr_assert_eq(tn->ndim, 4);
    cr_assert(tn->shape[0] == t && tn->shape[1] == 3 && tn->shape[2] == h && tn->shape[3] == w);
    cr_assert_eq(tn->nbytes, sizeof(float) * 3 * w * h * t);
    cr_assert(memcmp(tn->data, clip, tn->nbytes) == 0, "frames differ after the round trip");
    cr_assert(sk_st_meta(f, "fps") && strcmp(sk_st_meta(f, "fps"), "24/1") == 0);
    sk_st_close(&f);
    free(clip);
}

Test(output, rgb_safetensors_bad_dir_fails_at_open)
{
    sk_output_params p = vparams("/proc/nonexistent/rgb.safetensors", 4, 4);
    sk_output *o = NULL;
    cr_assert_eq(sk_output_open(&p, &o), SK_E_IO);
    cr_assert_null(o);
    cr_assert(strstr(sk_error_message(), p.path), "%s", sk_error_message());
}

/* ---- worker thread (queue_frames) -------------------------------------- */

Test(output, async_same_result_as_sync)
{
    const int w = 16, h = 8, t = 40; /* more frames than slots: backpressure is exercised */
    float *clip = make_clip(t, w, h);
    sk_output_params p = vparams(tpath("async.safetensors"), w, h);
    p.queue_frames = 3;
    sk_output *o = NULL;
    cr_assert_eq(sk_output_open(&p, &o), SK_OK, "%s", sk_error_message());
    cr_assert_eq(sk_output_get_kind(o), SK_OUTPUT_RGB_SAFETENSORS);
    float *scratch = malloc(sizeof(float) * 3 * w * h);
    cr_assert(scratch);
    for (int i = 0; i < t; i++) {
        memcpy(scratch, clip + (size_t)i * 3 * w * h, sizeof(float) * 3 * w * h);
        cr_assert_eq(sk_output_write(o, scratch), SK_OK, "%s", sk_error_message());
        /* the caller may reuse its buffer as soon as write returns */
        for (int k = 0; k < 3 * w * h; k++) scratch[k] = 7.0f;
    }
    free(scratch);
    cr_assert_eq(sk_output_frames(o), t);
    cr_assert_eq(sk_output_close(&o), SK_OK, "%s", sk_error_message());
    sk_st_file *f = NULL;
    cr_assert_eq(sk_st_open(p.path, &f), SK_OK, "%s", sk_error_message());
    const sk_st_tensor *tn = sk_st_find(f, "frames");
    cr_assert(tn && tn->shape[0] == t, "frames missing or wrong count");
    cr_assert(memcmp(tn->data, clip, tn->nbytes) == 0, "frames reordered or corrupted");
    sk_st_close(&f);
    free(clip);
}

#ifdef SK_HAVE_STB
Test(output, async_worker_error_reaches_the_caller)
{
    const int w = 8, h = 8;
    float *clip = make_clip(1, w, h);
    const char *dir = tpath("vanishing");
    sk_output_params p = vparams(dir, w, h);
    p.kind = SK_OUTPUT_PNG_DIR;
    p.queue_frames = 2;
    sk_output *o = NULL;
    cr_assert_eq(sk_output_open(&p, &o), SK_OK, "%s", sk_error_message());
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
    /* the worker fails on the first frame; some later write or close must say so */
    sk_status s = SK_OK;
    for (int i = 0; i < 50 && s == SK_OK; i++) s = sk_output_write(o, clip);
    sk_status c = sk_output_close(&o);
    cr_assert(s == SK_E_IO || c == SK_E_IO, "write %s, close %s", sk_status_name(s),
              sk_status_name(c));
    cr_assert(strstr(sk_error_message(), "frame_000000.png"), "%s", sk_error_message());
    free(clip);
}
#endif

#ifdef SK_HAVE_FFMPEG
Test(output, async_video_matches_sync)
{
    const int w = 64, h = 48, t = 9;
    float *clip = make_clip(t, w, h);
    sk_output_params p = vparams(tpath("sync.mkv"), w, h);
    write_clip(&p, clip, t);
    p.path = tpath("async.mkv");
    p.queue_frames = 4;
    write_clip(&p, clip, t);
    probe_info pi;
    cr_assert_eq(ffprobe(p.path, &pi), 0);
    cr_assert_eq(pi.frames, t);
    uint8_t *a = ffmpeg_decode(tpath("sync.mkv"), w, h, t);
    uint8_t *b = ffmpeg_decode(p.path, w, h, t);
    cr_assert(memcmp(a, b, (size_t)w * h * 3 * t) == 0, "threaded writer changed the video");
    free(a);
    free(b);
    free(clip);
}
#endif

/* ---- tee ------------------------------------------------------------------ */

Test(output, tee_writes_every_sink)
{
    const int w = 16, h = 16, t = 5;
    float *clip = make_clip(t, w, h);
    sk_output_params ps[3];
    int n = 0;
    ps[n++] = vparams(tpath("tee.safetensors"), w, h);
#ifdef SK_HAVE_FFMPEG
    ps[n++] = vparams(tpath("tee.mp4"), w, h);
#endif
#ifdef SK_HAVE_STB
    ps[n] = vparams(tpath("teeframes"), w, h);
    ps[n++].kind = SK_OUTPUT_PNG_DIR;
#endif
    sk_output *o = NULL;
    cr_assert_eq(sk_output_open_multi(ps, n, &o), SK_OK, "%s", sk_error_message());
    for (int i = 0; i < t; i++)
        cr_assert_eq(sk_output_write(o, clip + (size_t)i * 3 * w * h), SK_OK, "%s",
                     sk_error_message());
    cr_assert_eq(sk_output_frames(o), t);
    cr_assert_str_eq(sk_output_path(o), ps[0].path);
    cr_assert_eq(sk_output_close(&o), SK_OK, "%s", sk_error_message());

    sk_st_file *f = NULL;
    cr_assert_eq(sk_st_open(ps[0].path, &f), SK_OK, "%s", sk_error_message());
    cr_assert_eq(sk_st_find(f, "frames")->shape[0], t);
    sk_st_close(&f);
#ifdef SK_HAVE_FFMPEG
    probe_info pi;
    cr_assert_eq(ffprobe(tpath("tee.mp4"), &pi), 0);
    cr_assert_eq(pi.frames, t);
#endif
#ifdef SK_HAVE_STB
    char last[300];
    snprintf(last, sizeof last, "%s/frame_%06d.png", tpath("teeframes"), t - 1);
    cr_assert(file_exists(last), "%s missing", last);
#endif
    free(clip);
}

Test(output, tee_failure_names_the_sink_and_closes_the_rest)
{
    sk_output_params ps[2] = {vparams(tpath("ok.safetensors"), 8, 8),
                              vparams("/proc/nonexistent/bad.safetensors", 8, 8)};
    sk_output *o = NULL;
    cr_assert_eq(sk_output_open_multi(ps, 2, &o), SK_E_IO);
    cr_assert_null(o);
    cr_assert(strstr(sk_error_message(), "sink 2 of 2") &&
              strstr(sk_error_message(), "/proc/nonexistent/bad.safetensors"), "%s",
              sk_error_message());
    ps[1] = vparams(tpath("b.safetensors"), 8, 6);
    cr_assert_eq(sk_output_open_multi(ps, 2, &o), SK_E_INVALID_ARG);
    cr_assert(strstr(sk_error_message(), "8x6"), "%s", sk_error_message());
}
