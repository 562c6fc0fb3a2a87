/* test_live_view.c - the fan-out ring (runtime/core/fanout.h) and the live
 * view (runtime/output/live_view.h): the fMP4 a browser receives (init
 * segment + fragments) is decoded back with libavformat and compared with the
 * frames written (PSNR, x264 is lossy); a reader that joins late starts at a
 * fragment that decodes on its own; MJPEG frames are JPEGs of the right size. */
#include <criterion/criterion.h>

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/core/fanout.h"
#include "runtime/output/live_view.h"
#include "tests/common/test_util.h"

#ifdef SK_HAVE_FFMPEG
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libswscale/swscale.h>
#endif

/* ---- fan-out */

static sk_fanout_result rd(sk_fanout *f, uint64_t *cur, double t, char *out, int *key)
{
    void *d = NULL;
    size_t n = 0;
    uint64_t seq;
    sk_fanout_result r = sk_fanout_read(f, cur, t, &d, &n, key, &seq, NULL);
    if (r == SK_FANOUT_GOT) {
        memcpy(out, d, n);
        out[n] = 0;
        free(d);
    }
    return r;
}

Test(fanout, readers_get_every_message_in_order_then_the_end)
{
    sk_fanout *f;
    TT_OK(sk_fanout_create(4, 0, &f));
    uint64_t a = sk_fanout_cursor(f, SK_FANOUT_FROM_OLDEST);
    TT_OK(sk_fanout_push(f, "one", 3, 1));
    uint64_t b = sk_fanout_cursor(f, SK_FANOUT_FROM_NEXT);
    TT_OK(sk_fanout_push(f, "two", 3, 0));
    char s[16];
    int key;
    cr_assert_eq(rd(f, &a, 0, s, &key), SK_FANOUT_GOT);
    cr_assert_str_eq(s, "one");
    cr_assert_eq(key, 1);
    cr_assert_eq(rd(f, &a, 0, s, &key), SK_FANOUT_GOT);
    cr_assert_str_eq(s, "two");
    cr_assert_eq(rd(f, &b, 0, s, &key), SK_FANOUT_GOT);
    cr_assert_str_eq(s, "two", "a reader from NEXT must not see older messages");
    cr_assert_eq(rd(f, &a, 0.05, s, &key), SK_FANOUT_TIMEOUT);
    sk_fanout_close(f);
    TT_FAILS(sk_fanout_push(f, "x", 1, 0), SK_E_INVALID_ARG, "closed");
    cr_assert_eq(rd(f, &a, 1, s, &key), SK_FANOUT_CLOSED);
    sk_fanout_free(&f);
    cr_assert_null(f);
}

Test(fanout, a_slow_reader_skips_to_the_newest_key_message)
{
    sk_fanout *f;
    TT_OK(sk_fanout_create(3, 0, &f));
    uint64_t slow = sk_fanout_cursor(f, SK_FANOUT_FROM_OLDEST);
    const char *msgs[] = {"k1", "d1", "k2", "d2", "d3"};
    for (int i = 0; i < 5; i++) TT_OK(sk_fanout_push(f, msgs[i], 2, msgs[i][0] == 'k'));
    void *d;
    size_t n;
    int key;
    uint64_t seq, skipped;
    cr_assert_eq(sk_fanout_read(f, &slow, 0, &d, &n, &key, &seq, &skipped), SK_FANOUT_GOT);
    cr_assert(n == 2 && !memcmp(d, "k2", 2), "the slow reader got '%.2s', not k2", (char *)d);
    cr_assert_eq(seq, 3);
    cr_assert_eq(skipped, 2);
    free(d);
    uint64_t late = sk_fanout_cursor(f, SK_FANOUT_FROM_LAST_KEY);
    cr_assert_eq(late, 3, "a late joiner starts at the newest key message");
    sk_fanout_free(&f);
}

Test(fanout, the_byte_bound_drops_the_oldest)
{
    sk_fanout *f;
    TT_OK(sk_fanout_create(10, 10, &f));
    TT_OK(sk_fanout_push(f, "aaaaaa", 6, 1));
    TT_OK(sk_fanout_push(f, "bbbbbb", 6, 1));
    uint64_t c = sk_fanout_cursor(f, SK_FANOUT_FROM_OLDEST);
    char s[16];
    int key;
    cr_assert_eq(rd(f, &c, 0, s, &key), SK_FANOUT_GOT);
    cr_assert_str_eq(s, "bbbbbb");
    sk_fanout_free(&f);
}

static void *late_push(void *arg)
{
    usleep(50000);
    sk_fanout_push(arg, "late", 4, 1);
    return NULL;
}

Test(fanout, a_waiting_reader_wakes_on_push)
{
    sk_fanout *f;
    TT_OK(sk_fanout_create(2, 0, &f));
    uint64_t c = sk_fanout_cursor(f, SK_FANOUT_FROM_NEXT);
    pthread_t th;
    pthread_create(&th, NULL, late_push, f);
    char s[16];
    int key;
    cr_assert_eq(rd(f, &c, 5, s, &key), SK_FANOUT_GOT);
    cr_assert_str_eq(s, "late");
    pthread_join(th, NULL);
    sk_fanout_free(&f);
}

#ifdef SK_HAVE_FFMPEG

enum { W = 64, H = 48, CHUNK = 8, CHUNKS = 3 };

/* A smooth moving pattern (x264-friendly, so the PSNR bound is meaningful). */
static void frame_at(int t, float *rgb)
{
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++)
                rgb[(c * H + y) * W + x] =
                    0.5f + 0.4f * sinf(0.15f * (float)(x + 2 * t) + 0.9f * (float)c) *
                               cosf(0.11f * (float)(y - t));
}

static uint8_t u8(float v) { return (uint8_t)(v <= 0 ? 0 : v >= 1 ? 255 : (int)(v * 255 + 0.5f)); }

/* Decodes an MP4 file to RGB24 frames; returns the frame count. */
static int decode_file(const char *path, uint8_t **out)
{
    AVFormatContext *fmt = NULL;
    cr_assert_eq(avformat_open_input(&fmt, path, NULL, NULL), 0, "cannot open %s", path);
    cr_assert_geq(avformat_find_stream_info(fmt, NULL), 0);
    int si = av_find_best_stream(fmt, AVMEDIA_TYPE_VIDEO, -1, -1, NULL, 0);
    cr_assert_geq(si, 0);
    const AVCodec *dec = avcodec_find_decoder(fmt->streams[si]->codecpar->codec_id);
    AVCodecContext *cc = avcodec_alloc_context3(dec);
    avcodec_parameters_to_context(cc, fmt->streams[si]->codecpar);
    cr_assert_eq(avcodec_open2(cc, dec, NULL), 0);
    cr_assert_eq(cc->width, W);
    cr_assert_eq(cc->height, H);
    AVPacket *pkt = av_packet_alloc();
    AVFrame *fr = av_frame_alloc();
    struct SwsContext *sws = NULL;
    size_t cap = 64, n = 0;
    uint8_t *frames = malloc(cap * W * H * 3);
    int eof = 0;
    while (!eof) {
        int r = av_read_frame(fmt, pkt);
        if (r < 0) {
            eof = 1;
            avcodec_send_packet(cc, NULL);
        } else {
            if (pkt->stream_index == si) avcodec_send_packet(cc, pkt);
            av_packet_unref(pkt);
        }
        while (avcodec_receive_frame(cc, fr) == 0) {
            if (!sws) {
                sws = sws_getContext(W, H, fr->format, W, H, AV_PIX_FMT_RGB24, SWS_BICUBIC, NULL,
                                     NULL, NULL);
                const int *coef = sws_getCoefficients(SWS_CS_ITU709);
                sws_setColorspaceDetails(sws, coef, 0, coef, 1, 0, 1 << 16, 1 << 16);
            }
            if (n == cap) frames = realloc(frames, (cap *= 2) * W * H * 3);
            uint8_t *dst[1] = {frames + n * W * H * 3};
            int ds[1] = {3 * W};
            sws_scale(sws, (const uint8_t *const *)fr->data, fr->linesize, 0, H, dst, ds);
            n++;
        }
    }
    sws_freeContext(sws);
    av_frame_free(&fr);
    av_packet_free(&pkt);
    avcodec_free_context(&cc);
    avformat_close_input(&fmt);
    *out = frames;
    return (int)n;
}

static double psnr(const uint8_t *a, const float *ref)
{
    double se = 0;
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < W * H; i++) {
            double d = (double)a[3 * i + c] - (double)u8(ref[c * W * H + i]);
            se += d * d;
        }
    double mse = se / (3.0 * W * H);
    return mse <= 0 ? 99.0 : 10.0 * log10(255.0 * 255.0 / mse);
}

static void append(FILE *f, const void *d, size_t n) { cr_assert_eq(fwrite(d, 1, n, f), n); }

/* Writes CHUNKS chunks; the reader `from_start` reads every fragment, a reader
 * that joins after the first chunk starts at fragment 2. Both files decode to
 * the frames written (PSNR >= 30 dB each). */
Test(live_view, fmp4_fragments_decode_to_the_frames_written)
{
    cr_assert(sk_live_view_available(), "this FFmpeg has no libx264");
    sk_live_view_params p = {.width = W, .height = H, .fps_num = 16, .fps_den = 1};
    sk_live_view *v;
    TT_OK(sk_live_view_open(&p, &v));
    cr_assert(strstr(sk_live_view_mime(v), "video/mp4; codecs=\"avc1.42"),
              "mime %s is not H.264 baseline", sk_live_view_mime(v));
    sk_fanout *fr = sk_live_view_fragments(v);
    uint64_t all = sk_fanout_cursor(fr, SK_FANOUT_FROM_LAST_KEY);
    uint64_t late = 0;
    float *rgb = malloc(sizeof(float) * 3 * W * H * CHUNK * CHUNKS);
    for (int c = 0; c < CHUNKS; c++) {
        for (int i = 0; i < CHUNK; i++) {
            float *f = rgb + (size_t)(c * CHUNK + i) * 3 * W * H;
            frame_at(c * CHUNK + i, f);
            TT_OK(sk_live_view_write(v, f));
        }
        cr_assert_eq(sk_fanout_last_seq(fr), (uint64_t)c, "a fragment went out before the flush");
        TT_OK(sk_live_view_flush(v));
        TT_OK(sk_live_view_flush(v)); /* empty: no fragment */
        cr_assert_eq(sk_fanout_last_seq(fr), (uint64_t)c + 1, "flush did not emit one fragment");
        if (c == 0) late = sk_fanout_cursor(fr, SK_FANOUT_FROM_NEXT);
    }
    cr_assert_eq(sk_live_view_frames(v), CHUNK * CHUNKS);
    TT_OK(sk_live_view_finish(v));

    char path_all[] = "/tmp/sk_live_view_XXXXXX", path_late[] = "/tmp/sk_live_late_XXXXXX";
    int fd1 = mkstemp(path_all), fd2 = mkstemp(path_late);
    cr_assert(fd1 >= 0 && fd2 >= 0);
    FILE *fa = fdopen(fd1, "wb"), *fl = fdopen(fd2, "wb");
    void *d;
    size_t n;
    TT_OK(sk_live_view_init_segment(v, &d, &n));
    cr_assert(n > 8 && !memcmp((char *)d + 4, "ftyp", 4), "the init segment does not start "
              "with ftyp");
    append(fa, d, n);
    append(fl, d, n);
    free(d);
    int key, got = 0;
    uint64_t seq;
    while (sk_fanout_read(fr, &all, 0, &d, &n, &key, &seq, NULL) == SK_FANOUT_GOT) {
        cr_assert(n > 8 && !memcmp((char *)d + 4, "moof", 4), "fragment %d is not a moof", got);
        append(fa, d, n);
        free(d);
        got++;
    }
    cr_assert_eq(got, CHUNKS);
    cr_assert_eq(sk_fanout_read(fr, &all, 0.1, &d, &n, &key, &seq, NULL), SK_FANOUT_CLOSED);
    got = 0;
    while (sk_fanout_read(fr, &late, 0, &d, &n, &key, &seq, NULL) == SK_FANOUT_GOT) {
        append(fl, d, n);
        free(d);
        got++;
    }
    cr_assert_eq(got, CHUNKS - 1);
    fclose(fa);
    fclose(fl);

    uint8_t *dec;
    int nf = decode_file(path_all, &dec);
    cr_assert_eq(nf, CHUNK * CHUNKS, "decoded %d frames, wrote %d", nf, CHUNK * CHUNKS);
    for (int i = 0; i < nf; i++) {
        double q = psnr(dec + (size_t)i * W * H * 3, rgb + (size_t)i * 3 * W * H);
        cr_assert_geq(q, 30.0, "frame %d: PSNR %.1f dB < 30", i, q);
    }
    free(dec);
    nf = decode_file(path_late, &dec);
    cr_assert_eq(nf, CHUNK * (CHUNKS - 1), "the late reader decoded %d frames", nf);
    double q = psnr(dec, rgb + (size_t)CHUNK * 3 * W * H);
    cr_assert_geq(q, 30.0, "late reader's first frame: PSNR %.1f dB", q);
    free(dec);
    unlink(path_all);
    unlink(path_late);
    free(rgb);
    sk_live_view_free(&v);
    cr_assert_null(v);
}

Test(live_view, mjpeg_frames_only_while_watched)
{
    sk_live_view_params p = {.width = W, .height = H};
    sk_live_view *v;
    TT_OK(sk_live_view_open(&p, &v));
    sk_fanout *j = sk_live_view_jpegs(v);
    float *rgb = malloc(sizeof(float) * 3 * W * H);
    frame_at(0, rgb);
    TT_OK(sk_live_view_write(v, rgb));
    cr_assert_eq(sk_fanout_last_seq(j), 0, "a JPEG was encoded with nobody watching");
    sk_live_view_mjpeg_watch(v, +1);
    uint64_t c = sk_fanout_cursor(j, SK_FANOUT_FROM_NEXT);
    TT_OK(sk_live_view_write(v, rgb));
    void *d;
    size_t n;
    cr_assert_eq(sk_fanout_read(j, &c, 0, &d, &n, NULL, NULL, NULL), SK_FANOUT_GOT);
    const uint8_t *b = d;
    cr_assert(n > 100 && b[0] == 0xFF && b[1] == 0xD8 && b[n - 2] == 0xFF && b[n - 1] == 0xD9,
              "not a JPEG (%zu bytes)", n);
    free(d);
    sk_live_view_mjpeg_watch(v, -1);
    free(rgb);
    sk_live_view_free(&v);
}

Test(live_view, bad_sizes_are_refused)
{
    sk_live_view *v = (sk_live_view *)1;
    sk_live_view_params p = {.width = 63, .height = 48};
    TT_FAILS(sk_live_view_open(&p, &v), SK_E_INVALID_ARG, "even");
    cr_assert_null(v);
}

#endif
