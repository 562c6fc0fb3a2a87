/* live_view.c - fMP4 (to memory) and MJPEG for browsers; see live_view.h.
 *
 * H.264: libx264, preset ultrafast, tune zerolatency (no lookahead, no
 * B-frames: every frame's packet comes out of avcodec_receive_packet at once),
 * profile baseline, yuv420p BT.709 limited range (as the file sink), global
 * headers (SPS/PPS in the moov's avcC). The first frame after a flush is
 * forced to IDR (pict_type I + x264's forced-idr), so each fragment is
 * independently decodable.
 * mp4 muxer: movflags empty_moov+default_base_moof+frag_custom: write_header
 * emits the init segment, av_write_frame(fmt, NULL) closes a fragment; the
 * AVIOContext's write callback appends to a growing buffer that is handed to
 * the fan-out at each fragment and then emptied.
 * MJPEG: libavcodec's mjpeg encoder (yuvj420p, full range) per frame while a
 * reader watches. */
#include "runtime/output/live_view.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/output/output.h"
#include "runtime/output/output_impl.h"

#ifndef SK_HAVE_FFMPEG

int sk_live_view_available(void) { return 0; }
sk_status sk_live_view_open(const sk_live_view_params *p, sk_live_view **out)
{
    (void)p;
    if (out) *out = NULL;
    return SK_ERR(SK_E_UNSUPPORTED, "live view: this build has no FFmpeg (libavcodec, "
                  "libavformat); install the -dev packages (tools/install_deps.sh) and rebuild");
}
sk_status sk_live_view_write(sk_live_view *v, const float *rgb) { (void)v; (void)rgb; return SK_E_UNSUPPORTED; }
sk_status sk_live_view_write_rgb24(sk_live_view *v, const uint8_t *rgb) { (void)v; (void)rgb; return SK_E_UNSUPPORTED; }
sk_status sk_live_view_flush(sk_live_view *v) { (void)v; return SK_E_UNSUPPORTED; }
sk_status sk_live_view_finish(sk_live_view *v) { (void)v; return SK_E_UNSUPPORTED; }
void sk_live_view_free(sk_live_view **v) { (void)v; }
const char *sk_live_view_mime(const sk_live_view *v) { (void)v; return ""; }
sk_status sk_live_view_init_segment(sk_live_view *v, void **d, size_t *n) { (void)v; (void)d; (void)n; return SK_E_UNSUPPORTED; }
sk_fanout *sk_live_view_fragments(sk_live_view *v) { (void)v; return NULL; }
sk_fanout *sk_live_view_jpegs(sk_live_view *v) { (void)v; return NULL; }
void sk_live_view_mjpeg_watch(sk_live_view *v, int d) { (void)v; (void)d; }
int64_t sk_live_view_frames(const sk_live_view *v) { (void)v; return 0; }

#else

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/opt.h>
#include <libswscale/swscale.h>

typedef struct {
    uint8_t *p;
    size_t n, cap;
    int failed; /* out of memory in the write callback */
} mem_buf;

struct sk_live_view {
    int w, h, fps_num, fps_den;
    /* H.264 + fMP4 */
    AVCodecContext *enc;
    AVFormatContext *fmt;
    AVStream *st;
    AVFrame *frame;
    AVPacket *pkt;
    struct SwsContext *sws;
    uint8_t *rgb; /* packed RGB24 */
    mem_buf out;
    uint8_t *init;
    size_t init_n;
    int64_t next_pts;
    int in_fragment; /* frames written since the last flush */
    char mime[64];
    sk_fanout *frags;
    int finished;
    /* MJPEG */
    AVCodecContext *jenc;
    AVFrame *jframe;
    struct SwsContext *jsws;
    sk_fanout *jpegs;
    atomic_int watchers;
    int jpeg_quality;
};

int sk_live_view_available(void) { return avcodec_find_encoder_by_name("libx264") != NULL; }

static sk_status av_fail(const char *what, int r)
{
    return SK_ERR(r == AVERROR(ENOMEM) ? SK_E_OOM : SK_E_FFMPEG, "live view: %s failed: %s", what,
                  av_err2str(r));
}

#if LIBAVFORMAT_VERSION_MAJOR >= 61
static int mem_write(void *opaque, const uint8_t *buf, int n)
#else
static int mem_write(void *opaque, uint8_t *buf, int n)
#endif
{
    mem_buf *m = opaque;
    if (n <= 0) return 0;
    if (m->n + (size_t)n > m->cap) {
        size_t cap = m->cap ? m->cap : 65536;
        while (cap < m->n + (size_t)n) cap *= 2;
        uint8_t *p = realloc(m->p, cap);
        if (!p) {
            m->failed = 1;
            return AVERROR(ENOMEM);
        }
        m->p = p;
        m->cap = cap;
    }
    memcpy(m->p + m->n, buf, (size_t)n);
    m->n += (size_t)n;
    return n;
}

/* 'avc1.PPCCLL' from the SPS in the encoder's Annex B extradata. */
static void make_mime(sk_live_view *v)
{
    snprintf(v->mime, sizeof v->mime, "video/mp4; codecs=\"avc1.42C01E\"");
    const uint8_t *e = v->enc->extradata;
    const int n = v->enc->extradata_size;
    for (int i = 0; i + 4 < n; i++) {
        if (e[i] == 0 && e[i + 1] == 0 && e[i + 2] == 1 && (e[i + 3] & 0x1f) == 7 && i + 6 < n) {
            snprintf(v->mime, sizeof v->mime, "video/mp4; codecs=\"avc1.%02X%02X%02X\"", e[i + 4],
                     e[i + 5], e[i + 6]);
            return;
        }
    }
}

static sk_status open_h264(sk_live_view *v, int crf)
{
    const AVCodec *c = avcodec_find_encoder_by_name("libx264");
    SK_CHECK(c, SK_E_UNSUPPORTED, "live view: this FFmpeg has no libx264 encoder; install "
             "Debian's libavcodec with x264 (tools/install_deps.sh)");
    v->enc = avcodec_alloc_context3(c);
    SK_CHECK(v->enc, SK_E_OOM, "live view: out of memory");
    v->enc->width = v->w;
    v->enc->height = v->h;
    v->enc->pix_fmt = AV_PIX_FMT_YUV420P;
    v->enc->time_base = (AVRational){v->fps_den, v->fps_num};
    v->enc->framerate = (AVRational){v->fps_num, v->fps_den};
    v->enc->gop_size = 1 << 30; /* keyframes only where a fragment starts */
    v->enc->max_b_frames = 0;
    v->enc->color_range = AVCOL_RANGE_MPEG;
    v->enc->colorspace = AVCOL_SPC_BT709;
    v->enc->color_primaries = AVCOL_PRI_BT709;
    v->enc->color_trc = AVCOL_TRC_BT709;
    v->enc->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    v->enc->thread_count = 1; /* frame threads would add latency; sessions run side by side */
    AVDictionary *o = NULL;
    char crfs[16];
    snprintf(crfs, sizeof crfs, "%d", crf);
    av_dict_set(&o, "preset", "ultrafast", 0);
    av_dict_set(&o, "tune", "zerolatency", 0);
    av_dict_set(&o, "profile", "baseline", 0);
    av_dict_set(&o, "crf", crfs, 0);
    av_dict_set(&o, "forced-idr", "1", 0);
    int r = avcodec_open2(v->enc, c, &o);
    av_dict_free(&o);
    if (r < 0) return av_fail("opening libx264", r);
    make_mime(v);

    v->frame = av_frame_alloc();
    v->pkt = av_packet_alloc();
    SK_CHECK(v->frame && v->pkt, SK_E_OOM, "live view: out of memory");
    v->frame->format = AV_PIX_FMT_YUV420P;
    v->frame->width = v->w;
    v->frame->height = v->h;
    r = av_frame_get_buffer(v->frame, 0);
    if (r < 0) return av_fail("allocating a frame", r);
    v->sws = sws_getContext(v->w, v->h, AV_PIX_FMT_RGB24, v->w, v->h, AV_PIX_FMT_YUV420P,
                            SWS_BICUBIC, NULL, NULL, NULL);
    SK_CHECK(v->sws, SK_E_FFMPEG, "live view: libswscale cannot convert RGB24 to yuv420p");
    const int *coef = sws_getCoefficients(SWS_CS_ITU709);
    sws_setColorspaceDetails(v->sws, coef, 1, coef, 0, 0, 1 << 16, 1 << 16);

    r = avformat_alloc_output_context2(&v->fmt, NULL, "mp4", NULL);
    if (r < 0) return av_fail("creating the mp4 muxer", r);
    const int iob = 65536;
    uint8_t *b = av_malloc(iob);
    SK_CHECK(b, SK_E_OOM, "live view: out of memory");
    v->fmt->pb = avio_alloc_context(b, iob, 1, &v->out, NULL, mem_write, NULL);
    if (!v->fmt->pb) {
        av_free(b);
        return SK_ERR(SK_E_OOM, "live view: out of memory");
    }
    v->fmt->flags |= AVFMT_FLAG_CUSTOM_IO;
    v->st = avformat_new_stream(v->fmt, NULL);
    SK_CHECK(v->st, SK_E_OOM, "live view: out of memory");
    r = avcodec_parameters_from_context(v->st->codecpar, v->enc);
    if (r < 0) return av_fail("copying codec parameters", r);
    v->st->time_base = v->enc->time_base;
    AVDictionary *mo = NULL;
    av_dict_set(&mo, "movflags", "empty_moov+default_base_moof+frag_custom", 0);
    r = avformat_write_header(v->fmt, &mo);
    av_dict_free(&mo);
    if (r < 0) return av_fail("writing the fMP4 init segment", r);
    avio_flush(v->fmt->pb);
    SK_CHECK(!v->out.failed && v->out.n > 0, SK_E_OOM, "live view: no init segment was written");
    v->init = v->out.p;
    v->init_n = v->out.n;
    memset(&v->out, 0, sizeof v->out);
    return SK_OK;
}

static sk_status open_mjpeg(sk_live_view *v)
{
    const AVCodec *c = avcodec_find_encoder(AV_CODEC_ID_MJPEG);
    SK_CHECK(c, SK_E_UNSUPPORTED, "live view: this FFmpeg has no MJPEG encoder");
    v->jenc = avcodec_alloc_context3(c);
    SK_CHECK(v->jenc, SK_E_OOM, "live view: out of memory");
    v->jenc->width = v->w;
    v->jenc->height = v->h;
    v->jenc->pix_fmt = AV_PIX_FMT_YUVJ420P;
    v->jenc->time_base = (AVRational){v->fps_den, v->fps_num};
    v->jenc->flags |= AV_CODEC_FLAG_QSCALE;
    v->jenc->global_quality = FF_QP2LAMBDA * v->jpeg_quality;
    v->jenc->thread_count = 1;
    int r = avcodec_open2(v->jenc, c, NULL);
    if (r < 0) return av_fail("opening the MJPEG encoder", r);
    v->jframe = av_frame_alloc();
    SK_CHECK(v->jframe, SK_E_OOM, "live view: out of memory");
    v->jframe->format = AV_PIX_FMT_YUVJ420P;
    v->jframe->width = v->w;
    v->jframe->height = v->h;
    r = av_frame_get_buffer(v->jframe, 0);
    if (r < 0) return av_fail("allocating a frame", r);
    v->jsws = sws_getContext(v->w, v->h, AV_PIX_FMT_RGB24, v->w, v->h, AV_PIX_FMT_YUVJ420P,
                             SWS_BICUBIC, NULL, NULL, NULL);
    SK_CHECK(v->jsws, SK_E_FFMPEG, "live view: libswscale cannot convert RGB24 to yuvj420p");
    return SK_OK;
}

sk_status sk_live_view_open(const sk_live_view_params *p, sk_live_view **out)
{
    SK_CHECK(p && out, SK_E_INVALID_ARG, "live view: NULL argument");
    *out = NULL;
    SK_CHECK(p->width >= 16 && p->height >= 16 && p->width <= 4096 && p->height <= 4096 &&
             p->width % 2 == 0 && p->height % 2 == 0, SK_E_INVALID_ARG,
             "live view: size %dx%d: width and height must be even and in 16..4096", p->width,
             p->height);
    SK_CHECK(p->fps_num >= 0 && p->fps_den >= 0, SK_E_INVALID_ARG, "live view: bad frame rate");
    sk_output_quiet_libav();
    sk_live_view *v = calloc(1, sizeof *v);
    SK_CHECK(v, SK_E_OOM, "live view: out of memory");
    v->w = p->width;
    v->h = p->height;
    v->fps_num = p->fps_num ? p->fps_num : 16;
    v->fps_den = p->fps_den ? p->fps_den : 1;
    v->jpeg_quality = p->jpeg_quality >= 2 && p->jpeg_quality <= 31 ? p->jpeg_quality : 5;
    sk_status st = SK_OK;
    v->rgb = malloc((size_t)3 * v->w * v->h);
    if (!v->rgb) st = SK_ERR(SK_E_OOM, "live view: out of memory");
    if (st == SK_OK) st = sk_fanout_create(p->keep_fragments > 0 ? p->keep_fragments : 8,
                                           p->max_bytes ? p->max_bytes : (size_t)32 << 20,
                                           &v->frags);
    if (st == SK_OK) st = sk_fanout_create(2, 0, &v->jpegs);
    if (st == SK_OK) st = open_h264(v, p->crf > 0 ? p->crf : 26);
    if (st == SK_OK) st = open_mjpeg(v);
    if (st != SK_OK) {
        sk_live_view_free(&v);
        return st;
    }
    *out = v;
    return SK_OK;
}

static sk_status encode_jpeg(sk_live_view *v)
{
    int r = av_frame_make_writable(v->jframe);
    if (r < 0) return av_fail("making the JPEG frame writable", r);
    const uint8_t *src[1] = {v->rgb};
    const int stride[1] = {3 * v->w};
    sws_scale(v->jsws, src, stride, 0, v->h, v->jframe->data, v->jframe->linesize);
    v->jframe->pts = v->next_pts;
    v->jframe->quality = v->jenc->global_quality;
    r = avcodec_send_frame(v->jenc, v->jframe);
    if (r < 0) return av_fail("JPEG encoding", r);
    sk_status st = SK_OK;
    while ((r = avcodec_receive_packet(v->jenc, v->pkt)) >= 0) {
        if (st == SK_OK) st = sk_fanout_push(v->jpegs, v->pkt->data, (size_t)v->pkt->size, 1);
        av_packet_unref(v->pkt);
    }
    if (r != AVERROR(EAGAIN) && r != AVERROR_EOF) return av_fail("JPEG encoding", r);
    return st;
}

static sk_status drain_h264(sk_live_view *v)
{
    for (;;) {
        int r = avcodec_receive_packet(v->enc, v->pkt);
        if (r == AVERROR(EAGAIN) || r == AVERROR_EOF) return SK_OK;
        if (r < 0) return av_fail("H.264 encoding", r);
        if (!v->pkt->duration) v->pkt->duration = 1; /* one frame; the fragment's last needs it */
        av_packet_rescale_ts(v->pkt, v->enc->time_base, v->st->time_base);
        v->pkt->stream_index = v->st->index;
        r = av_write_frame(v->fmt, v->pkt);
        av_packet_unref(v->pkt);
        if (r < 0) return av_fail("muxing a packet", r);
    }
}

/* Encodes v->rgb (packed RGB24, filled by the caller). */
static sk_status encode_rgb(sk_live_view *v)
{
    if (atomic_load(&v->watchers) > 0) SK_TRY(encode_jpeg(v));
    int r = av_frame_make_writable(v->frame);
    if (r < 0) return av_fail("making the frame writable", r);
    const uint8_t *src[1] = {v->rgb};
    const int stride[1] = {3 * v->w};
    sws_scale(v->sws, src, stride, 0, v->h, v->frame->data, v->frame->linesize);
    v->frame->pts = v->next_pts++;
    v->frame->pict_type = v->in_fragment ? AV_PICTURE_TYPE_NONE : AV_PICTURE_TYPE_I;
    r = avcodec_send_frame(v->enc, v->frame);
    if (r < 0) return av_fail("H.264 encoding", r);
    v->in_fragment++;
    return drain_h264(v);
}

sk_status sk_live_view_write(sk_live_view *v, const float *rgb)
{
    SK_CHECK(v && rgb, SK_E_INVALID_ARG, "live view write: NULL argument");
    SK_CHECK(!v->finished, SK_E_INVALID_ARG, "live view write: already finished");
    sk_rgb_planar_to_rgb24(rgb, v->w, v->h, v->rgb, (size_t)3 * v->w);
    return encode_rgb(v);
}

sk_status sk_live_view_write_rgb24(sk_live_view *v, const uint8_t *rgb)
{
    SK_CHECK(v && rgb, SK_E_INVALID_ARG, "live view write: NULL argument");
    SK_CHECK(!v->finished, SK_E_INVALID_ARG, "live view write: already finished");
    memcpy(v->rgb, rgb, (size_t)3 * v->w * v->h);
    return encode_rgb(v);
}

sk_status sk_live_view_flush(sk_live_view *v)
{
    SK_CHECK(v, SK_E_INVALID_ARG, "live view flush: NULL argument");
    if (!v->in_fragment || v->finished) return SK_OK;
    int r = av_write_frame(v->fmt, NULL); /* frag_custom: close the fragment */
    if (r < 0) return av_fail("closing an fMP4 fragment", r);
    avio_flush(v->fmt->pb);
    SK_CHECK(!v->out.failed, SK_E_OOM, "live view: out of memory buffering a fragment");
    v->in_fragment = 0;
    sk_status st = SK_OK;
    if (v->out.n) st = sk_fanout_push(v->frags, v->out.p, v->out.n, 1);
    v->out.n = 0;
    return st;
}

sk_status sk_live_view_finish(sk_live_view *v)
{
    if (!v || v->finished) return SK_OK;
    sk_status st = v->fmt ? sk_live_view_flush(v) : SK_OK;
    v->finished = 1;
    sk_fanout_close(v->frags);
    sk_fanout_close(v->jpegs);
    return st;
}

void sk_live_view_free(sk_live_view **pv)
{
    if (!pv || !*pv) return;
    sk_live_view *v = *pv;
    sk_live_view_finish(v);
    if (v->fmt) {
        if (v->fmt->pb) {
            av_freep(&v->fmt->pb->buffer);
            avio_context_free(&v->fmt->pb);
        }
        avformat_free_context(v->fmt);
    }
    avcodec_free_context(&v->enc);
    avcodec_free_context(&v->jenc);
    av_frame_free(&v->frame);
    av_frame_free(&v->jframe);
    av_packet_free(&v->pkt);
    sws_freeContext(v->sws);
    sws_freeContext(v->jsws);
    sk_fanout_free(&v->frags);
    sk_fanout_free(&v->jpegs);
    free(v->out.p);
    free(v->init);
    free(v->rgb);
    free(v);
    *pv = NULL;
}

const char *sk_live_view_mime(const sk_live_view *v) { return v ? v->mime : ""; }

sk_status sk_live_view_init_segment(sk_live_view *v, void **data, size_t *n)
{
    SK_CHECK(v && data && n, SK_E_INVALID_ARG, "live view: NULL argument");
    *data = malloc(v->init_n);
    SK_CHECK(*data, SK_E_OOM, "live view: out of memory");
    memcpy(*data, v->init, v->init_n);
    *n = v->init_n;
    return SK_OK;
}

sk_fanout *sk_live_view_fragments(sk_live_view *v) { return v ? v->frags : NULL; }
sk_fanout *sk_live_view_jpegs(sk_live_view *v) { return v ? v->jpegs : NULL; }
void sk_live_view_mjpeg_watch(sk_live_view *v, int delta)
{
    if (v) atomic_fetch_add(&v->watchers, delta);
}
int64_t sk_live_view_frames(const sk_live_view *v) { return v ? v->next_pts : 0; }

#endif
