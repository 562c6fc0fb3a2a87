/* test_output_controls.c - FFmpeg-grade output controls of the video sink:
 * crf with FFmpeg's meaning (lossless -> x264's High 4:4:4 Predictive
 * profile), rational frame rates, containers beyond mp4/mkv/mov (webm, gif,
 * ts) with the codec picked from the container, the tee muxer (one encode
 * into several files, a failing branch dropped), rate control parameters,
 * metadata as container tags and PNG iTXt chunks. Files are read back with
 * ffprobe. */
#define _GNU_SOURCE
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/core/status.h"
#include "runtime/output/output.h"

static char g_dir[64];
static void setup(void)
{
    snprintf(g_dir, sizeof g_dir, "/tmp/sk_outctl_XXXXXX");
    cr_assert(mkdtemp(g_dir));
}
static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    cr_expect_eq(system(cmd), 0);
}
TestSuite(output_controls, .init = setup, .fini = teardown);

static const char *tpath(const char *name)
{
    static char buf[8][256];
    static int k;
    char *b = buf[k++ % 8];
    snprintf(b, 256, "%s/%s", g_dir, name);
    return b;
}

enum { W = 32, H = 32, T = 6 };

static void write_clip(const sk_output_params *p)
{
    static float clip[T * 3 * H * W];
    for (int i = 0; i < T * 3 * H * W; i++) clip[i] = (float)((i * 7919) % 1000) / 1000.0f;
    sk_output *o = NULL;
    cr_assert_eq(sk_output_open(p, &o), SK_OK, "%s: %s", p->path, sk_error_message());
    cr_assert_eq(sk_output_write_frames(o, clip, T), SK_OK, "%s", sk_error_message());
    cr_assert_eq(sk_output_close(&o), SK_OK, "%s", sk_error_message());
}

/* ffprobe's "key=value" lines for entries of the first video stream / format */
static char *probe(const char *file, const char *entries)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "ffprobe -v error -count_frames -select_streams v:0 -show_entries "
             "%s -of default=nw=1 '%s' 2>&1", entries, file);
    FILE *f = popen(cmd, "r");
    cr_assert(f);
    static char out[8192];
    size_t n = fread(out, 1, sizeof out - 1, f);
    out[n] = 0;
    pclose(f);
    return out;
}

static sk_output_params vp(const char *path)
{
    return (sk_output_params){.path = path, .width = W, .height = H};
}

Test(output_controls, crf_zero_is_lossless_and_fps_is_rational)
{
    sk_output_params p = vp(tpath("l.mp4"));
    p.crf = SK_OUTPUT_CRF_LOSSLESS;
    p.fps_num = 30000;
    p.fps_den = 1001;
    p.preset = "ultrafast";
    write_clip(&p);
    const char *s = probe(p.path, "stream=profile,r_frame_rate,nb_read_frames");
    cr_expect(strstr(s, "profile=High 4:4:4 Predictive"), "crf 0 must be lossless: %s", s);
    cr_expect(strstr(s, "r_frame_rate=30000/1001"), "%s", s);
    cr_expect(strstr(s, "nb_read_frames=6"), "%s", s);
    /* unset crf: x264's default (not lossless) */
    p.path = tpath("d.mp4");
    p.crf = 0;
    write_clip(&p);
    s = probe(p.path, "stream=profile");
    cr_expect(!strstr(s, "4:4:4"), "default crf must not be lossless: %s", s);
}

Test(output_controls, containers_pick_their_codec)
{
    const struct { const char *name, *codec; } c[] = {
        {"v.webm", "codec_name=vp9"}, {"v.gif", "codec_name=gif"}, {"v.ts", "codec_name=h264"},
        {"v.mkv", "codec_name=h264"}};
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        sk_output_kind k;
        cr_assert_eq(sk_output_detect_kind(c[i].name, &k), SK_OK, "%s", c[i].name);
        cr_assert_eq(k, SK_OUTPUT_VIDEO_FILE, "%s", c[i].name);
        sk_output_params p = vp(tpath(c[i].name));
        p.crf = 30;
        write_clip(&p);
        const char *s = probe(p.path, "stream=codec_name,nb_read_frames");
        cr_expect(strstr(s, c[i].codec), "%s: %s", c[i].name, s);
        cr_expect(strstr(s, "nb_read_frames=6"), "%s: %s", c[i].name, s);
    }
    /* a codec the container cannot hold is refused at open, naming both */
    sk_output_params p = vp(tpath("bad.webm"));
    p.codec = "libx264";
    sk_output *o = NULL;
    cr_assert_neq(sk_output_open(&p, &o), SK_OK);
    cr_expect(strstr(sk_error_message(), "webm") && strstr(sk_error_message(), "libx264"), "%s",
              sk_error_message());
    cr_expect(access(p.path, F_OK) != 0, "a refused output leaves no file");
}

Test(output_controls, tee_muxes_one_encode_and_survives_a_failing_branch)
{
    const char *tee[] = {tpath("t2.mp4"), "/nonexistent_dir_sk/x.mkv", NULL};
    sk_output_params p = vp(tpath("t1.mkv"));
    p.tee = tee;
    write_clip(&p);
    const char *a = probe(tpath("t1.mkv"), "stream=codec_name,nb_read_frames");
    cr_expect(strstr(a, "nb_read_frames=6"), "%s", a);
    char b[8192];
    snprintf(b, sizeof b, "%s", probe(tpath("t2.mp4"), "stream=nb_read_frames"));
    cr_expect(strstr(b, "nb_read_frames=6"), "%s", b);
    /* one encode: both files hold the same bitstream */
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "test \"$(ffmpeg -v error -i '%s' -c copy -f h264 - | md5sum)\" = "
             "\"$(ffmpeg -v error -i '%s' -c copy -f h264 - | md5sum)\"", tpath("t1.mkv"),
             tpath("t2.mp4"));
    cr_expect_eq(system(cmd), 0, "the tee branches differ: two encodes?");
}

Test(output_controls, rate_control_and_its_checks)
{
    int64_t r = 0;
    cr_assert_eq(sk_output_parse_bitrate("--bitrate", "2.5M", &r), SK_OK);
    cr_expect_eq(r, 2500000);
    cr_assert_eq(sk_output_parse_bitrate("--bitrate", "800k", &r), SK_OK);
    cr_expect_eq(r, 800000);
    cr_expect_neq(sk_output_parse_bitrate("--bitrate", "fast", &r), SK_OK);
    cr_expect(strstr(sk_error_message(), "--bitrate 'fast'"), "%s", sk_error_message());
    cr_expect_neq(sk_output_parse_bitrate("--maxrate", "-1M", &r), SK_OK);
    sk_output_params p = vp(tpath("r.mp4"));
    p.maxrate = 400000;
    sk_output *o = NULL;
    cr_expect_neq(sk_output_open(&p, &o), SK_OK, "maxrate without bufsize");
    cr_expect(strstr(sk_error_message(), "bufsize"), "%s", sk_error_message());
    p.bufsize = 800000;
    p.bitrate = 300000;
    write_clip(&p);
    const char *s = probe(p.path, "stream=nb_read_frames");
    cr_expect(strstr(s, "nb_read_frames=6"), "%s", s);
}

Test(output_controls, metadata_in_mp4_mkv_tags_and_png_text)
{
    const char *meta[] = {"prompt", "a cat surfing, \xc3\xa9t\xc3\xa9", "seed", "1234", NULL};
    const char *names[] = {"m.mp4", "m.mkv"};
    for (int i = 0; i < 2; i++) {
        sk_output_params p = vp(tpath(names[i]));
        p.metadata = meta;
        write_clip(&p);
        char s[8192];
        snprintf(s, sizeof s, "%s", probe(p.path, "format_tags"));
        cr_expect(strcasestr(s, "prompt=a cat surfing, \xc3\xa9t\xc3\xa9"), "%s: %s", names[i], s);
        cr_expect(strcasestr(s, "seed=1234"), "%s: %s", names[i], s);
    }
    sk_output_params p = vp(tpath("frames"));
    p.kind = SK_OUTPUT_PNG_DIR;
    p.metadata = meta;
    write_clip(&p);
    FILE *f = fopen(tpath("frames/frame_000005.png"), "rb");
    cr_assert(f);
    static unsigned char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    cr_assert_gt(n, 60);
    /* the chunk right after IHDR is iTXt "prompt" */
    cr_expect(memcmp(buf + 33 + 4, "iTXt", 4) == 0, "no iTXt after IHDR");
    cr_expect(memcmp(buf + 33 + 8, "prompt\0\0\0\0\0a cat", 16) == 0, "iTXt prompt");
    /* the PNG still decodes, and Python's PIL-free check: ffprobe reads it */
    const char *s = probe(tpath("frames/frame_000005.png"), "stream=width,height");
    cr_expect(strstr(s, "width=32"), "%s", s);
}
