/* output.c - sink selection, parameter defaults and validation, the tee, and
 * the one float -> uint8 conversion every 8-bit sink shares. The sinks
 * themselves live in output_ffmpeg.c, output_png.c and output_rgb.c.
 * Tested by tests/test_output.c. */
#include "runtime/output/output_impl.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "runtime/core/log.h"

static const char *const k_kind_names[SK_OUTPUT_KIND_COUNT_] = {
    "auto", "video-file", "rtmp", "png-dir", "rgb-safetensors", "srt", "udp", "hls",
};

const char *sk_output_kind_name(sk_output_kind k)
{
    if ((int)k < 0 || k >= SK_OUTPUT_KIND_COUNT_) return "unknown";
    return k_kind_names[k];
}

static int ends_with_ci(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcasecmp(s + n - m, suffix) == 0;
}

int sk_output_kind_is_live(sk_output_kind k)
{
    return k == SK_OUTPUT_RTMP || k == SK_OUTPUT_SRT || k == SK_OUTPUT_UDP || k == SK_OUTPUT_HLS;
}

int sk_output_kind_is_net(sk_output_kind k)
{
    return k == SK_OUTPUT_RTMP || k == SK_OUTPUT_SRT || k == SK_OUTPUT_UDP;
}

sk_status sk_output_detect_kind(const char *path, sk_output_kind *out)
{
    SK_CHECK(path && *path, SK_E_INVALID_ARG, "output: empty path; give a file (.mp4/.mkv/.mov/"
             ".safetensors), an rtmp:// URL or a directory for PNG frames");
    *out = SK_OUTPUT_AUTO;
    if (strncasecmp(path, "rtmp://", 7) == 0 || strncasecmp(path, "rtmps://", 8) == 0) {
        *out = SK_OUTPUT_RTMP;
        return SK_OK;
    }
    if (strncasecmp(path, "srt://", 6) == 0) { *out = SK_OUTPUT_SRT; return SK_OK; }
    if (strncasecmp(path, "udp://", 6) == 0) { *out = SK_OUTPUT_UDP; return SK_OK; }
    if (ends_with_ci(path, ".m3u8")) { *out = SK_OUTPUT_HLS; return SK_OK; }
    static const char *const video_ext[] = {".mp4", ".mkv", ".mov"};
    for (size_t i = 0; i < sizeof video_ext / sizeof video_ext[0]; i++)
        if (ends_with_ci(path, video_ext[i])) { *out = SK_OUTPUT_VIDEO_FILE; return SK_OK; }
    if (ends_with_ci(path, ".safetensors")) { *out = SK_OUTPUT_RGB_SAFETENSORS; return SK_OK; }
    struct stat sb;
    if (path[strlen(path) - 1] == '/' || (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))) {
        *out = SK_OUTPUT_PNG_DIR;
        return SK_OK;
    }
    if (sk_output_ffmpeg_can_mux(path)) { *out = SK_OUTPUT_VIDEO_FILE; return SK_OK; }
    return SK_ERR(SK_E_INVALID_ARG,
                  "output '%s': cannot tell the output kind from the name; use a video file "
                  "(.mp4, .mkv, .mov, .webm, .ts, .gif or another extension this FFmpeg can "
                  "mux), an rtmp:// URL, a .safetensors file (raw RGB), or a directory for PNG "
                  "frames (--frames-dir DIR)", path);
}

#ifndef SK_HAVE_FFMPEG
int sk_output_ffmpeg_can_mux(const char *path)
{
    (void)path;
    return 0;
}
#endif

sk_status sk_output_parse_bitrate(const char *what, const char *s, int64_t *out)
{
    SK_CHECK(s && *s && out, SK_E_INVALID_ARG, "%s: empty value; expected e.g. 2500k or 6M", what);
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    double mul = 1;
    if (end && (*end == 'k' || *end == 'K')) mul = 1e3, end++;
    else if (end && (*end == 'm' || *end == 'M')) mul = 1e6, end++;
    else if (end && (*end == 'g' || *end == 'G')) mul = 1e9, end++;
    SK_CHECK(errno == 0 && end != s && *end == 0 && v > 0 && v * mul >= 1000 && v * mul <= 1e11,
             SK_E_INVALID_ARG, "%s '%s': not a bit rate; expected bits per second from 1k to "
             "100G, e.g. 2500k, 6M or 800000", what, s);
    *out = (int64_t)llround(v * mul);
    return SK_OK;
}

static int gcd_i(int a, int b)
{
    while (b) { int t = a % b; a = b; b = t; }
    return a;
}

sk_status sk_output_parse_fps(const char *s, int *num, int *den)
{
    SK_CHECK(s && *s && num && den, SK_E_INVALID_ARG, "--fps: empty value; expected e.g. 16, "
             "30000/1001 or 29.97");
    char *end = NULL;
    long n = 0, d = 1;
    errno = 0;
    if (strchr(s, '/')) {
        n = strtol(s, &end, 10);
        if (end && *end == '/') d = strtol(end + 1, &end, 10);
    } else {
        double v = strtod(s, &end);
        if (v > 0 && v <= 1000 && end != s) { n = lround(v * 1000.0); d = 1000; }
    }
    SK_CHECK(errno == 0 && end && *end == 0 && n > 0 && d > 0 && n <= 1000L * d &&
             n <= 1000000000L && d <= 1000000000L, SK_E_INVALID_ARG,
             "--fps '%s': not a frame rate; expected a positive number up to 1000, e.g. 16, "
             "30000/1001 or 29.97", s);
    int g = gcd_i((int)n, (int)d);
    *num = (int)(n / g);
    *den = (int)(d / g);
    return SK_OK;
}

int sk_output_kind_available(sk_output_kind k)
{
    switch (k) {
    case SK_OUTPUT_VIDEO_FILE:
    case SK_OUTPUT_RTMP:
    case SK_OUTPUT_SRT:
    case SK_OUTPUT_UDP:
    case SK_OUTPUT_HLS:
#ifdef SK_HAVE_FFMPEG
        return 1;
#else
        return 0;
#endif
    case SK_OUTPUT_PNG_DIR:
#ifdef SK_HAVE_STB
        return 1;
#else
        return 0;
#endif
    case SK_OUTPUT_RGB_SAFETENSORS: return 1;
    default: return 0;
    }
}

/* x > 0 fails for NaN, so NaN lands on 0. Written as selects (not fminf/fmaxf,
 * which stay libm calls without -ffast-math) so it compiles to maxss/minss. */
static inline uint8_t unit_to_u8(float v)
{
    v = v > 0.0f ? v : 0.0f;
    v = v < 1.0f ? v : 1.0f;
    return (uint8_t)(v * 255.0f + 0.5f);
}

void sk_rgb_planar_to_rgb24(const float *src, int w, int h, uint8_t *dst, size_t dst_stride)
{
    const size_t plane = (size_t)w * (size_t)h;
    for (int y = 0; y < h; y++) {
        uint8_t *row = dst + (size_t)y * dst_stride;
        const float *r = src + (size_t)y * (size_t)w, *g = r + plane, *b = g + plane;
        for (int x = 0; x < w; x++) {
            row[3 * x + 0] = unit_to_u8(r[x]);
            row[3 * x + 1] = unit_to_u8(g[x]);
            row[3 * x + 2] = unit_to_u8(b[x]);
        }
    }
}

sk_status sk_output_mkdirs(const char *dir)
{
    char *buf = strdup(dir);
    SK_CHECK(buf, SK_E_OOM, "output: out of memory copying path '%s'", dir);
    size_t n = strlen(buf);
    while (n > 1 && buf[n - 1] == '/') buf[--n] = 0;
    for (char *p = buf + 1;; p++) {
        int last = (*p == 0);
        if (*p == '/' || last) {
            char saved = *p;
            *p = 0;
            struct stat sb;
            if (stat(buf, &sb) != 0) {
                if (mkdir(buf, 0777) != 0 && errno != EEXIST) {
                    int e = errno;
                    sk_status s = SK_ERR(SK_E_IO, "output directory '%s': cannot create '%s': %s",
                                         dir, buf, strerror(e));
                    free(buf);
                    return s;
                }
            } else if (!S_ISDIR(sb.st_mode)) {
                sk_status s = SK_ERR(SK_E_IO, "output directory '%s': '%s' exists and is not a "
                                     "directory; pick another --frames-dir", dir, buf);
                free(buf);
                return s;
            }
            *p = saved;
        }
        if (last) break;
    }
    free(buf);
    return SK_OK;
}

/* Fills the documented defaults into a copy of the caller's params and checks
 * what every sink needs. */
static sk_status resolve_params(const sk_output_params *in, sk_output_params *p)
{
    SK_CHECK(in, SK_E_INVALID_ARG, "output: params is NULL");
    *p = *in;
    SK_CHECK(p->path && *p->path, SK_E_INVALID_ARG,
             "output: no path given; pass -o FILE|rtmp://URL, --frames-dir DIR or --rgb-out FILE");
    if (p->kind == SK_OUTPUT_AUTO) SK_TRY(sk_output_detect_kind(p->path, &p->kind));
    SK_CHECK(p->kind > SK_OUTPUT_AUTO && p->kind < SK_OUTPUT_KIND_COUNT_, SK_E_INVALID_ARG,
             "output '%s': unknown kind %d", p->path, (int)p->kind);
    SK_CHECK(p->width >= 1 && p->width <= 16384 && p->height >= 1 && p->height <= 16384,
             SK_E_INVALID_ARG, "output '%s': frame size %dx%d out of range (1..16384 each)",
             p->path, p->width, p->height);
    if (p->fps_num == 0 && p->fps_den == 0) { p->fps_num = 16; p->fps_den = 1; }
    if (p->fps_den == 0) p->fps_den = 1;
    SK_CHECK(p->fps_num > 0 && p->fps_den > 0 && p->fps_num / p->fps_den <= 1000, SK_E_INVALID_ARG,
             "output '%s': frame rate %d/%d invalid; expected num/den > 0 and at most 1000 fps",
             p->path, p->fps_num, p->fps_den);
    /* crf -1 after this: not set (the encoder's default) */
    if (p->crf == 0) p->crf = -1;
    else if (p->crf == SK_OUTPUT_CRF_LOSSLESS) p->crf = 0;
    SK_CHECK(p->crf >= -1 && p->crf <= 63, SK_E_INVALID_ARG,
             "output '%s': crf %d out of range; expected 1..63 (x264/x265: 0..51) or lossless",
             p->path, p->crf);
    SK_CHECK(p->bitrate >= 0 && p->maxrate >= 0 && p->bufsize >= 0, SK_E_INVALID_ARG,
             "output '%s': negative bit rate", p->path);
    SK_CHECK(!p->maxrate || p->bufsize, SK_E_INVALID_ARG,
             "output '%s': a rate cap (maxrate %lld) needs a VBV buffer size (bufsize, e.g. twice "
             "the rate)", p->path, (long long)p->maxrate);
    if (!p->tune && sk_output_kind_is_live(p->kind)) p->tune = "zerolatency";
    if (p->gop == 0 && sk_output_kind_is_live(p->kind))
        p->gop = (2 * p->fps_num + p->fps_den - 1) / p->fps_den;
    SK_CHECK(p->gop >= 0, SK_E_INVALID_ARG, "output '%s': gop %d < 0", p->path, p->gop);
    if (p->timeout_ms == 0 && sk_output_kind_is_live(p->kind)) p->timeout_ms = 10000;
    if (p->timeout_ms < 0) p->timeout_ms = 0;
    if (p->pace && p->queue_frames == 0) p->queue_frames = 16;
    if (p->reconnect_max_ms == 0) p->reconnect_max_ms = 8000;
    if (p->fragment_ms == 0) p->fragment_ms = 1000;
    SK_CHECK(p->queue_frames >= 0 && p->queue_frames <= 1024, SK_E_INVALID_ARG,
             "output '%s': queue_frames %d outside 0..1024", p->path, p->queue_frames);
    SK_CHECK(p->odd == SK_OUTPUT_ODD_ERROR || p->odd == SK_OUTPUT_ODD_PAD, SK_E_INVALID_ARG,
             "output '%s': unknown odd-size policy %d", p->path, (int)p->odd);
    return SK_OK;
}

sk_status sk_output_open(const sk_output_params *in, sk_output **out)
{
    SK_CHECK(out, SK_E_INVALID_ARG, "output: out is NULL");
    *out = NULL;
    sk_output_params p;
    SK_TRY(resolve_params(in, &p));

    if (!sk_output_kind_available(p.kind)) {
        if (p.kind == SK_OUTPUT_PNG_DIR)
            return SK_ERR(SK_E_UNSUPPORTED, "output '%s': PNG frames need stb_image_write.h, which "
                          "this build did not find; install libstb-dev and rebuild, or write a "
                          ".safetensors file", p.path);
        return SK_ERR(SK_E_UNSUPPORTED, "output '%s': %s output needs FFmpeg, which this build "
                      "lacks; install libavformat-dev libavcodec-dev libswscale-dev and rebuild "
                      "(SK_FFMPEG=ON), or use --frames-dir DIR / --rgb-out FILE.safetensors",
                      p.path, sk_output_kind_name(p.kind));
    }

    sk_output *o = calloc(1, sizeof *o);
    SK_CHECK(o, SK_E_OOM, "output '%s': out of memory", p.path);
    o->kind = p.kind;
    o->width = p.width;
    o->height = p.height;
    o->path = strdup(p.path);
    if (!o->path) { free(o); return SK_ERR(SK_E_OOM, "output '%s': out of memory", p.path); }

    sk_status s = SK_E_INTERNAL;
    switch (p.kind) {
#ifdef SK_HAVE_FFMPEG
    case SK_OUTPUT_VIDEO_FILE:
    case SK_OUTPUT_RTMP:
    case SK_OUTPUT_SRT:
    case SK_OUTPUT_UDP:
    case SK_OUTPUT_HLS: s = sk_output_ffmpeg_open(o, &p); break;
#endif
    case SK_OUTPUT_PNG_DIR: s = sk_output_png_open(o, &p); break;
    case SK_OUTPUT_RGB_SAFETENSORS: s = sk_output_rgb_open(o, &p); break;
    default: s = SK_ERR(SK_E_INTERNAL, "output '%s': no sink for kind %s", p.path,
                        sk_output_kind_name(p.kind));
    }
    if (s != SK_OK) {
        free(o->path);
        free(o);
        return s;
    }
    SK_LOGD("output: opened %s '%s' (%dx%d @ %d/%d fps, queue %d)", sk_output_kind_name(o->kind),
            o->path, o->width, o->height, p.fps_num, p.fps_den, p.queue_frames);
    if (p.queue_frames > 0) return sk_output_async_wrap(o, p.queue_frames, &p, out);
    *out = o;
    return SK_OK;
}

sk_status sk_output_open_multi(const sk_output_params *ps, int n, sk_output **out)
{
    SK_CHECK(out, SK_E_INVALID_ARG, "output: out is NULL");
    *out = NULL;
    SK_CHECK(ps && n >= 1, SK_E_INVALID_ARG, "output: tee needs at least one sink (got %d)", n);
    if (n == 1) return sk_output_open(&ps[0], out);
    for (int i = 1; i < n; i++)
        SK_CHECK(ps[i].width == ps[0].width && ps[i].height == ps[0].height, SK_E_INVALID_ARG,
                 "output tee: sink %d '%s' is %dx%d but sink 0 '%s' is %dx%d; all sinks get the "
                 "same frames", i, ps[i].path ? ps[i].path : "(null)", ps[i].width, ps[i].height,
                 ps[0].path ? ps[0].path : "(null)", ps[0].width, ps[0].height);
    sk_output *o = calloc(1, sizeof *o);
    sk_output **kids = calloc((size_t)n, sizeof *kids);
    if (!o || !kids) {
        free(o);
        free(kids);
        return SK_ERR(SK_E_OOM, "output tee: out of memory");
    }
    o->children = kids;
    for (int i = 0; i < n; i++) {
        sk_status s = sk_output_open(&ps[i], &kids[i]);
        if (s != SK_OK) {
            /* keep this sink's message: closing the others must not replace it */
            char msg[1024];
            snprintf(msg, sizeof msg, "%s", sk_error_message());
            for (int j = 0; j < i; j++) {
                /* a video file closed after a failed tee open is still a valid (empty) file;
                 * remove nothing: the user named these paths */
                sk_output_close(&kids[j]);
            }
            free(kids);
            free(o);
            return SK_ERR(s, "output tee: sink %d of %d: %s", i + 1, n, msg);
        }
        o->n_children = i + 1;
    }
    o->kind = kids[0]->kind;
    o->path = strdup(kids[0]->path);
    o->width = kids[0]->width;
    o->height = kids[0]->height;
    if (!o->path) {
        sk_output_close(&o);
        return SK_ERR(SK_E_OOM, "output tee: out of memory");
    }
    *out = o;
    return SK_OK;
}

sk_status sk_output_write(sk_output *o, const float *rgb)
{
    SK_CHECK(o, SK_E_INVALID_ARG, "output: write on a NULL output (already closed?)");
    SK_CHECK(rgb, SK_E_INVALID_ARG, "output '%s': frame %lld is NULL", o->path,
             (long long)o->frames);
    if (o->n_children > 0) {
        for (int i = 0; i < o->n_children; i++) SK_TRY(sk_output_write(o->children[i], rgb));
    } else {
        SK_TRY(o->vt->write(o, rgb));
    }
    o->frames++;
    return SK_OK;
}

sk_status sk_output_write_frames(sk_output *o, const float *rgb, int t)
{
    SK_CHECK(o, SK_E_INVALID_ARG, "output: write on a NULL output (already closed?)");
    SK_CHECK(t >= 0, SK_E_INVALID_ARG, "output '%s': frame count %d < 0", o->path, t);
    const size_t per = 3 * (size_t)o->width * (size_t)o->height;
    for (int i = 0; i < t; i++) SK_TRY(sk_output_write(o, rgb + (size_t)i * per));
    return SK_OK;
}

void sk_output_get_stats(const sk_output *o, sk_output_stats *st)
{
    memset(st, 0, sizeof *st);
    if (!o) return;
    if (o->n_children > 0) {
        sk_output_get_stats(o->children[0], st);
    } else if (o->vt && o->vt->stats) {
        o->vt->stats(o, st);
    } else {
        st->sent = o->frames;
        st->connected = 1;
    }
    st->frames = o->frames;
}

int64_t sk_output_frames(const sk_output *o) { return o ? o->frames : 0; }
const char *sk_output_path(const sk_output *o) { return o ? o->path : NULL; }
sk_output_kind sk_output_get_kind(const sk_output *o) { return o ? o->kind : SK_OUTPUT_AUTO; }

sk_status sk_output_close(sk_output **po)
{
    if (!po || !*po) return SK_OK;
    sk_output *o = *po;
    *po = NULL;
    sk_status first = SK_OK;
    char msg[1024] = "";
    if (o->n_children > 0 || o->children) {
        for (int i = 0; i < o->n_children; i++) {
            sk_status s = sk_output_close(&o->children[i]);
            if (s != SK_OK && first == SK_OK) {
                first = s;
                snprintf(msg, sizeof msg, "%s", sk_error_message());
            }
        }
        free(o->children);
    } else if (o->vt) {
        first = o->vt->close(o);
    }
    free(o->path);
    free(o);
    if (first != SK_OK && msg[0]) return SK_ERR(first, "%s", msg);
    return first;
}
