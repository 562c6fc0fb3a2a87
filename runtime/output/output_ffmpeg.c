/* output_ffmpeg.c - the FFmpeg sink: video files (.mp4/.mkv/.mov, any extension
 * libavformat muxes), RTMP (FLV), SRT and UDP (MPEG-TS) and HLS (.m3u8 + segments).
 *
 * Per frame: planar f32 [3, H, W] -> packed RGB24 (sk_rgb_planar_to_rgb24, padded
 * to even size by edge replication when asked) -> libswscale -> pix_fmt (yuv420p,
 * BT.709 limited range, tagged as such so players convert back the same way)
 * -> encoder (libx264 by default, pts = frame index, time base den/num of the
 * frame rate) -> interleaved muxer. Close sends the flush frame, drains the
 * encoder and writes the trailer.
 *
 * Every blocking libav call runs under an AVIOInterruptCB with a deadline
 * (params.timeout_ms, re-armed per call) and the caller's abort flag, so an
 * RTMP server that stops answering cannot hang us.
 * The network kinds (rtmp://, srt://, udp://) share these rules: every call bounded
 * (rw_timeout and the interrupt callback), I/O errors are SK_E_NET, reconnect below.
 * UDP sends datagrams to whoever listens (no connection: a receiver that comes late
 * just joins; MPEG-TS repeats its tables). HLS writes local files: paced like the
 * network kinds (output.c), the playlist's directory is created, segments of 2 s
 * cut at the keyframes (gop 2 s), every segment kept in the playlist (or the last
 * hls_list_size, older ones deleted), #EXT-X-ENDLIST at close (also after Ctrl-C).
 * Reconnect (live, params.reconnect_max_ms > 0): when writing a packet fails
 * (the server went away, a timeout), the muxer and encoder are torn down and
 * the sink goes "down": frames are dropped (counted) and a new connection is
 * tried at a write once the backoff (250 ms, doubling up to
 * reconnect_max_ms) has passed. A new connection is a new stream: a fresh
 * encoder (keyframe and headers first), timestamps from 0. Pacing is the
 * queue worker's job (output_async.c).
 * Crash-safe files (params.fragment_ms > 0): .mp4/.mov are fragmented
 * (movflags frag_keyframe+empty_moov+default_base_moof, frag_duration),
 * .mkv closes a cluster every fragment_ms (cluster_time_limit).
 * Codec and container: any extension libavformat muxes; without a codec
 * given, libx264 where the container takes H.264, else its default encoder.
 * crf / preset / tune are set only when given and the codec has them
 * (FFmpeg's meaning: x264 crf 0 is lossless); bitrate / maxrate / bufsize are
 * the encoder's rate control. Metadata become container tags (mp4/mov with
 * use_metadata_tags, so any key survives). A tee list muxes the same packets
 * into several files / URLs through libavformat's tee muxer (onfail=ignore:
 * a failing branch is dropped and the others go on).
 * Built only with FFmpeg (CMake drops this file otherwise). Tested by
 * tests/test_output.c (files checked with ffprobe). */
#include "runtime/output/output_impl.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/imgutils.h>
#include <libavutil/opt.h>
#include <libavutil/pixdesc.h>
#include <libavutil/time.h>
#include <libswscale/swscale.h>

#include "runtime/core/log.h"

typedef struct {
    int64_t deadline_us;            /* av_gettime_relative() bound; 0 = none */
    int timeout_ms;                 /* 0 = no deadline */
    const volatile int *abort_flag; /* caller's, may be NULL */
    const volatile int *stop_flag;  /* ours: close stops a reconnect attempt */
    int fired;                      /* 1 timeout, 2 abort flag */
} io_guard;


typedef struct {
    AVFormatContext *fmt;
    AVCodecContext *enc;
    AVStream *st;
    AVFrame *frame;       /* encoder input, pix_fmt at enc size */
    AVPacket *pkt;
    struct SwsContext *sws;
    uint8_t *rgb;         /* packed RGB24 at enc size */
    int enc_w, enc_h;     /* even-padded size when odd = PAD */
    int64_t next_pts;
    int header_written;
    int is_file;          /* we created a local file (removed if open fails) */
    int live;             /* network output (rtmp/srt/udp): I/O errors are SK_E_NET */
    io_guard guard;
    int io_failed;        /* the last error came from writing a packet */
    /* reconnect (live) */
    sk_output_params params; /* own copies of the strings, for reopening */
    char *s_codec, *s_preset, *s_tune, *s_pix;
    AVDictionary *meta;   /* own copy of params.metadata */
    char *tee_spec;       /* "[f=mp4:onfail=ignore]a.mp4|[...]b.mkv" or NULL */
    int down;             /* connection lost: frames are dropped */
    int64_t retry_us;     /* av_gettime_relative() of the next attempt */
    int64_t down_us;      /* when it went down */
    int backoff_ms, attempts;
    int64_t sent, dropped, dropped_at_down;
    int reconnects;
    /* a reconnect attempt runs on a thread of its own, so that a connect that waits its
     * whole timeout (an SRT listener gone: no answer) does not hold up the paced writes,
     * which go on dropping frames on time; the writer polls rc_state */
    pthread_t rc_thread;
    int rc_running;       /* a thread was started and not joined yet */
    volatile int rc_state; /* 0 trying, 1 connected, 2 failed (written by the thread) */
    volatile int rc_stop;  /* close: the attempt gives up at once */
    sk_output *rc_out;
} ff_sink;

static int interrupt_cb(void *opaque)
{
    io_guard *g = opaque;
    if (g->abort_flag && *g->abort_flag) { g->fired = 2; return 1; }
    if (g->stop_flag && *g->stop_flag) { g->fired = 2; return 1; }
    if (g->deadline_us && av_gettime_relative() > g->deadline_us) { g->fired = 1; return 1; }
    return 0;
}

static void guard_arm(io_guard *g)
{
    g->fired = 0;
    g->deadline_us = g->timeout_ms > 0 ? av_gettime_relative() + (int64_t)g->timeout_ms * 1000 : 0;
}

/* Turns a libav error into a status naming what and where; a fired interrupt
 * becomes SK_E_NET with the timeout in the message. */
static sk_status ff_err(ff_sink *s, const char *path, const char *what, int averr)
{
    if (s->guard.fired == 1)
        return SK_ERR(SK_E_NET, "output '%s': %s: timed out after %d ms (%s); is the server up "
                      "and reading? raise the timeout if the link is slow", path, what,
                      s->guard.timeout_ms, av_err2str(averr));
    if (s->guard.fired == 2)
        return SK_ERR(SK_E_NET, "output '%s': %s: aborted by the caller (%s)", path, what,
                      av_err2str(averr));
    sk_status st = SK_E_FFMPEG; /* codec / muxer trouble */
    if (averr == AVERROR(ENOMEM)) st = SK_E_OOM;
    else if (averr == AVERROR(ENOENT) || averr == AVERROR(EACCES) || averr == AVERROR(ENOTDIR) ||
             averr == AVERROR(EROFS) || averr == AVERROR(ENOSPC) || averr == AVERROR(EIO) ||
             averr == AVERROR(EISDIR) || averr == AVERROR(EPIPE) || averr == AVERROR(ECONNREFUSED) ||
             averr == AVERROR(ECONNRESET) || averr == AVERROR(ETIMEDOUT) || averr == AVERROR_EOF)
        st = s->live ? SK_E_NET : SK_E_IO;
    return SK_ERR(st, "output '%s': %s failed: %s", path, what, av_err2str(averr));
}

/* Frees every libav object (no trailer); the sink struct, its params and
 * counters stay, ready for another ff_open_impl. */
static void ff_teardown(ff_sink *s)
{
    if (s->fmt) {
        guard_arm(&s->guard);
        if (s->fmt->pb && !(s->fmt->oformat->flags & AVFMT_NOFILE)) avio_closep(&s->fmt->pb);
        avformat_free_context(s->fmt);
        s->fmt = NULL;
    }
    avcodec_free_context(&s->enc);
    av_frame_free(&s->frame);
    av_packet_free(&s->pkt);
    sws_freeContext(s->sws);
    s->sws = NULL;
    free(s->rgb);
    s->rgb = NULL;
    s->st = NULL;
    s->next_pts = 0;
    s->header_written = 0;
    s->io_failed = 0;
}

static void ff_free(ff_sink *s)
{
    if (!s) return;
    ff_teardown(s);
    free(s->s_codec);
    free(s->s_preset);
    free(s->s_tune);
    free(s->s_pix);
    av_dict_free(&s->meta);
    free(s->tee_spec);
    free(s);
}

/* Drains every packet the encoder has ready into the muxer. */
static sk_status drain(ff_sink *s, const char *path)
{
    for (;;) {
        int r = avcodec_receive_packet(s->enc, s->pkt);
        if (r == AVERROR(EAGAIN) || r == AVERROR_EOF) return SK_OK;
        if (r < 0) return ff_err(s, path, "encoding (avcodec_receive_packet)", r);
        av_packet_rescale_ts(s->pkt, s->enc->time_base, s->st->time_base);
        s->pkt->stream_index = s->st->index;
        guard_arm(&s->guard);
        r = av_interleaved_write_frame(s->fmt, s->pkt); /* takes the packet's reference */
        if (r < 0) {
            s->io_failed = 1;
            return ff_err(s, path, "writing a packet (av_interleaved_write_frame)", r);
        }
    }
}

static sk_status ff_encode(sk_output *o, const float *rgb)
{
    ff_sink *s = o->impl;
    const int w = o->width, h = o->height, stride = 3 * s->enc_w;
    sk_rgb_planar_to_rgb24(rgb, w, h, s->rgb, (size_t)stride);
    /* PAD: replicate the last column / row into the extra one (no black edge) */
    if (s->enc_w > w)
        for (int y = 0; y < h; y++) memcpy(s->rgb + (size_t)y * stride + 3 * w,
                                           s->rgb + (size_t)y * stride + 3 * (w - 1), 3);
    if (s->enc_h > h) memcpy(s->rgb + (size_t)h * stride, s->rgb + (size_t)(h - 1) * stride,
                             (size_t)stride);

    int r = av_frame_make_writable(s->frame);
    if (r < 0) return ff_err(s, o->path, "making the frame writable", r);
    const uint8_t *src[1] = {s->rgb};
    const int src_stride[1] = {stride};
    sws_scale(s->sws, src, src_stride, 0, s->enc_h, s->frame->data, s->frame->linesize);
    s->frame->pts = s->next_pts++;
    r = avcodec_send_frame(s->enc, s->frame);
    if (r < 0) return ff_err(s, o->path, "encoding (avcodec_send_frame)", r);
    return drain(s, o->path);
}

static sk_status ff_open_impl(ff_sink *s, sk_output *o, const sk_output_params *p);

/* The connection broke: drop the muxer/encoder, drop frames until a retry works. */
static void go_down(ff_sink *s, sk_output *o)
{
    SK_LOGW("output '%s': connection lost (%s); frames are dropped while reconnecting (retry in "
            "250 ms, backoff up to %d ms)", o->path, sk_error_message(),
            s->params.reconnect_max_ms);
    ff_teardown(s);
    s->down = 1;
    s->down_us = av_gettime_relative();
    s->backoff_ms = 250;
    s->attempts = 0;
    s->retry_us = s->down_us + (int64_t)s->backoff_ms * 1000;
    s->dropped_at_down = s->dropped;
}

static void *reconnect_thread(void *arg)
{
    ff_sink *s = arg;
    sk_status st = ff_open_impl(s, s->rc_out, &s->params);
    if (st != SK_OK) {
        SK_LOGD("output '%s': reconnect attempt %d failed: %s", s->rc_out->path, s->attempts,
                sk_error_message());
        ff_teardown(s);
    }
    __atomic_store_n(&s->rc_state, st == SK_OK ? 1 : 2, __ATOMIC_RELEASE);
    return NULL;
}

/* While down: starts an attempt when the backoff has passed, or collects a finished one;
 * never waits on the network. 1 when the sink is up again. */
static int try_reconnect(ff_sink *s, sk_output *o)
{
    if (s->rc_running) {
        const int state = __atomic_load_n(&s->rc_state, __ATOMIC_ACQUIRE);
        if (state == 0) return 0;
        pthread_join(s->rc_thread, NULL);
        s->rc_running = 0;
        if (state == 1) {
            s->down = 0;
            s->reconnects++;
            SK_LOGI("output '%s': reconnected after %.2f s (attempt %d); %lld frames dropped "
                    "while down; the stream restarts with a keyframe", o->path,
                    (double)(av_gettime_relative() - s->down_us) / 1e6, s->attempts,
                    (long long)(s->dropped - s->dropped_at_down));
            return 1;
        }
        s->backoff_ms = s->backoff_ms * 2 > s->params.reconnect_max_ms
                            ? s->params.reconnect_max_ms : s->backoff_ms * 2;
        s->retry_us = av_gettime_relative() + (int64_t)s->backoff_ms * 1000;
        return 0;
    }
    const int64_t now = av_gettime_relative();
    if (now < s->retry_us || (s->guard.abort_flag && *s->guard.abort_flag)) return 0;
    s->attempts++;
    s->rc_out = o;
    s->rc_state = 0;
    if (pthread_create(&s->rc_thread, NULL, reconnect_thread, s) != 0) {
        s->retry_us = now + (int64_t)s->backoff_ms * 1000; /* no thread now: later */
        return 0;
    }
    s->rc_running = 1;
    return 0;
}

/* close: ends an attempt in flight (its connect returns at once) and waits for it */
static void stop_reconnect(ff_sink *s)
{
    if (!s->rc_running) return;
    s->rc_stop = 1;
    pthread_join(s->rc_thread, NULL);
    s->rc_running = 0;
    s->rc_stop = 0;
    if (s->rc_state == 1) s->down = 0, s->reconnects++; /* made it anyway: close it properly */
}

static sk_status ff_write(sk_output *o, const float *rgb)
{
    ff_sink *s = o->impl;
    if (s->down && !try_reconnect(s, o)) {
        s->dropped++;
        return SK_OK;
    }
    sk_status st = ff_encode(o, rgb);
    if (st == SK_OK) {
        s->sent++;
        return SK_OK;
    }
    /* a live sink survives a broken connection (not an abort, not an encoder error) */
    if (s->live && s->io_failed && s->params.reconnect_max_ms > 0 && s->guard.fired != 2) {
        go_down(s, o);
        s->dropped++;
        return SK_OK;
    }
    return st;
}

static void ff_stats(const sk_output *o, sk_output_stats *st)
{
    const ff_sink *s = o->impl;
    st->sent = s->sent;
    st->dropped = s->dropped;
    st->reconnects = s->reconnects;
    st->connected = !s->down;
}

/* An SRT receiver in live mode hands a packet on only after its latency (120 ms by
 * default, `latency=` microseconds in the URL) and discards what it holds when the
 * connection closes: the last frames would be lost. Wait twice the latency (plus
 * 50 ms) before closing; the abort flag cuts it short. */
static void srt_drain_wait(ff_sink *s)
{
    int64_t lat_us = 120000;
    const char *q = s->params.path ? strchr(s->params.path, '?') : NULL;
    for (const char *l = q; l && (l = strstr(l, "latency=")); l += 8)
        if (l[-1] == '?' || l[-1] == '&') lat_us = strtoll(l + 8, NULL, 10);
    if (lat_us < 0) lat_us = 0;
    if (lat_us > 10000000) lat_us = 10000000;
    const int64_t end = av_gettime_relative() + 2 * lat_us + 50000;
    while (av_gettime_relative() < end && !(s->guard.abort_flag && *s->guard.abort_flag))
        av_usleep(10000);
}

static sk_status ff_close(sk_output *o)
{
    ff_sink *s = o->impl;
    o->impl = NULL;
    sk_status st = SK_OK;
    stop_reconnect(s);
    /* The abort flag (Ctrl-C) must not cut a local file's trailer short: an mp4
     * without its index is unplayable. libav checks the interrupt callback on
     * every write, files included, so stop watching the flag here. A live
     * stream keeps it, so that an abort still returns at once. */
    if (!s->live) s->guard.abort_flag = NULL;
    if (s->down)
        SK_LOGW("output '%s': the connection was still down at the end (%lld frames dropped in "
                "all, %d reconnects)", o->path, (long long)s->dropped, s->reconnects);
    else if (s->live)
        SK_LOGI("output '%s': %lld frames sent, %lld dropped while disconnected, %d reconnects",
                o->path, (long long)s->sent, (long long)s->dropped, s->reconnects);
    if (s->header_written) {
        int r = avcodec_send_frame(s->enc, NULL); /* enter draining mode */
        if (r < 0) st = ff_err(s, o->path, "flushing the encoder", r);
        if (st == SK_OK) st = drain(s, o->path);
        /* the trailer goes out even after an encode error so the file stays playable */
        guard_arm(&s->guard);
        r = av_write_trailer(s->fmt);
        if (r < 0 && st == SK_OK) st = ff_err(s, o->path, "writing the trailer", r);
    }
    if (s->header_written && s->params.kind == SK_OUTPUT_SRT && !s->down) srt_drain_wait(s);
    if (s->fmt && s->fmt->pb && !(s->fmt->oformat->flags & AVFMT_NOFILE)) {
        guard_arm(&s->guard);
        int r = avio_closep(&s->fmt->pb);
        if (r < 0 && st == SK_OK) st = ff_err(s, o->path, "closing", r);
    }
    if (st == SK_OK)
        SK_LOGD("output: '%s' finished, %lld frames", o->path, (long long)s->next_pts);
    ff_free(s);
    return st;
}

static const sk_output_vtbl k_ff_vtbl = {ff_write, ff_close, ff_stats};

/* True when the codec has a private option `name` (crf/preset/tune are x264-style). */
static int codec_has_opt(const AVCodec *c, const char *name)
{
    return c->priv_class &&
           av_opt_find((void *)&c->priv_class, name, NULL, 0, AV_OPT_SEARCH_FAKE_OBJ) != NULL;
}

/* Whether libx264 is the natural codec of the container: it says it takes
 * H.264, or it cannot say (no query_codec: mpegts, avi, flv) and its default
 * is a general-purpose codec that H.264 replaces. */
static int takes_h264(const AVOutputFormat *f)
{
    const int q = avformat_query_codec(f, AV_CODEC_ID_H264, FF_COMPLIANCE_NORMAL);
    if (q >= 0) return q == 1;
    const enum AVCodecID d = f->video_codec;
    return d == AV_CODEC_ID_H264 || d == AV_CODEC_ID_MPEG2VIDEO || d == AV_CODEC_ID_MPEG4 ||
           d == AV_CODEC_ID_FLV1 || d == AV_CODEC_ID_HEVC;
}

/* 1 when this libavformat has an output protocol called name ("srt" needs libsrt) */
static int has_output_protocol(const char *name)
{
    void *it = NULL;
    for (const char *p; (p = avio_enum_protocols(&it, 1));)
        if (!strcmp(p, name)) return 1;
    return 0;
}

/* The muxer of a kind: FLV for RTMP, MPEG-TS for SRT/UDP, HLS; files by extension. */
static const char *kind_muxer(sk_output_kind k)
{
    switch (k) {
    case SK_OUTPUT_RTMP: return "flv";
    case SK_OUTPUT_SRT:
    case SK_OUTPUT_UDP: return "mpegts";
    case SK_OUTPUT_HLS: return "hls";
    default: return NULL;
    }
}

/* mkdir -p of the directory part of path (HLS writes its segments beside the playlist) */
static sk_status make_parent_dirs(const char *path)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir) return SK_OK;
    *slash = 0;
    for (char *c = dir + 1;; c++) {
        const int end = *c == 0;
        if (*c == '/' || end) {
            *c = 0;
            if (mkdir(dir, 0777) != 0 && errno != EEXIST)
                return SK_ERR(SK_E_IO, "output '%s': cannot create the directory '%s': %s", path,
                              dir, strerror(errno));
            if (end) break;
            *c = '/';
        }
    }
    return SK_OK;
}

static sk_status ff_open_impl(ff_sink *s, sk_output *o, const sk_output_params *p)
{
    const char *path = o->path;
    const int live = s->live = sk_output_kind_is_net(p->kind);
    const int paced_kind = sk_output_kind_is_live(p->kind), hls = p->kind == SK_OUTPUT_HLS;
    if (p->kind == SK_OUTPUT_SRT && !has_output_protocol("srt"))
        return SK_ERR(SK_E_UNSUPPORTED, "output '%s': this FFmpeg (libavformat %s) was built "
                      "without SRT (libsrt): `ffmpeg -protocols` does not list srt. Use an "
                      "FFmpeg built with --enable-libsrt (Debian's is), or stream with "
                      "udp:// or rtmp:// instead", path, LIBAVFORMAT_IDENT);
    if (hls) SK_TRY(make_parent_dirs(path));

    /* encoder and pixel format first: they are the commonest user mistakes and
     * must not leave a file behind */
    const AVOutputFormat *ofmt = av_guess_format(kind_muxer(p->kind), path, NULL);
    if (!ofmt)
        return SK_ERR(SK_E_INVALID_ARG, "output '%s': this FFmpeg cannot mux that extension; use "
                      ".mp4, .mkv, .mov, .webm, .ts, .gif (`ffmpeg -muxers` lists them)", path);
    const AVCodec *codec = NULL;
    if (p->codec) {
        codec = avcodec_find_encoder_by_name(p->codec);
        if (!codec)
            return SK_ERR(SK_E_INVALID_ARG, "output '%s': unknown codec '%s' (no such encoder in "
                          "this FFmpeg build); try libx264, libx265, libsvtav1, libvpx-vp9, or "
                          "list them with `ffmpeg -encoders`", path, p->codec);
    } else if (takes_h264(ofmt) && (codec = avcodec_find_encoder_by_name("libx264"))) {
    } else {
        const enum AVCodecID id = av_guess_codec(ofmt, NULL, path, NULL, AVMEDIA_TYPE_VIDEO);
        codec = id != AV_CODEC_ID_NONE ? avcodec_find_encoder(id) : NULL;
        if (!codec)
            return SK_ERR(SK_E_INVALID_ARG, "output '%s': no video encoder in this FFmpeg for the "
                          "%s container; name one with --codec", path, ofmt->name);
    }
    const char *cname = codec->name;
    if (codec->type != AVMEDIA_TYPE_VIDEO)
        return SK_ERR(SK_E_INVALID_ARG, "output '%s': codec '%s' is not a video encoder", path,
                      cname);
    if (avformat_query_codec(ofmt, codec->id, FF_COMPLIANCE_NORMAL) == 0)
        return SK_ERR(SK_E_INVALID_ARG, "output '%s': the %s container cannot hold %s video; "
                      "pick another --codec or another extension", path, ofmt->name, cname);
    enum AVPixelFormat pix;
    if (p->pix_fmt) {
        pix = av_get_pix_fmt(p->pix_fmt);
        if (pix == AV_PIX_FMT_NONE)
            return SK_ERR(SK_E_INVALID_ARG, "output '%s': unknown pixel format '%s'; use yuv420p",
                          path, p->pix_fmt);
    } else {
        pix = AV_PIX_FMT_YUV420P;
        int has = !codec->pix_fmts;
        for (const enum AVPixelFormat *f = codec->pix_fmts; f && *f != AV_PIX_FMT_NONE; f++)
            has |= *f == pix;
        if (!has) pix = avcodec_find_best_pix_fmt_of_list(codec->pix_fmts, AV_PIX_FMT_RGB24, 0, NULL);
    }
    const char *pixname = av_get_pix_fmt_name(pix);
    if (codec->pix_fmts) {
        int ok = 0;
        char list[512] = "";
        for (const enum AVPixelFormat *f = codec->pix_fmts; *f != AV_PIX_FMT_NONE; f++) {
            if (*f == pix) ok = 1;
            size_t n = strlen(list);
            if (n < sizeof list - 40)
                snprintf(list + n, sizeof list - n, "%s%s", n ? " " : "", av_get_pix_fmt_name(*f));
        }
        if (!ok)
            return SK_ERR(SK_E_INVALID_ARG, "output '%s': codec '%s' cannot take pixel format "
                          "'%s'; it takes: %s", path, cname, pixname, list);
    }
    const AVPixFmtDescriptor *desc = av_pix_fmt_desc_get(pix);
    const int sub_w = 1 << desc->log2_chroma_w, sub_h = 1 << desc->log2_chroma_h;
    s->enc_w = o->width;
    s->enc_h = o->height;
    if (o->width % sub_w || o->height % sub_h) {
        const int ew = (o->width + sub_w - 1) / sub_w * sub_w;
        const int eh = (o->height + sub_h - 1) / sub_h * sub_h;
        if (p->odd != SK_OUTPUT_ODD_PAD)
            return SK_ERR(SK_E_INVALID_ARG, "output '%s': %s needs width and height divisible by "
                          "%d and %d but the frames are %dx%d; use %dx%d (or %dx%d), or let the "
                          "sink pad by edge replication to %dx%d (odd = SK_OUTPUT_ODD_PAD)", path,
                          pixname, sub_w, sub_h, o->width, o->height, ew, eh,
                          o->width / sub_w * sub_w, o->height / sub_h * sub_h, ew, eh);
        s->enc_w = ew;
        s->enc_h = eh;
        SK_LOGI("output '%s': %dx%d frames padded to %dx%d for %s (last column/row repeated)",
                path, o->width, o->height, ew, eh, pixname);
    }

    int r = s->tee_spec ? avformat_alloc_output_context2(&s->fmt, NULL, "tee", s->tee_spec)
                        : avformat_alloc_output_context2(&s->fmt, ofmt, NULL, path);
    if (r < 0 || !s->fmt)
        return ff_err(s, path, "choosing the container (avformat_alloc_output_context2)",
                      r < 0 ? r : AVERROR(EINVAL));
    s->fmt->interrupt_callback.callback = interrupt_cb;
    s->fmt->interrupt_callback.opaque = &s->guard;
    /* each packet leaves at once, not per 32 KB buffer: a live viewer sees it now,
     * and a killed run leaves a .mkv readable up to its last packet (a few
     * syscalls per frame, nothing next to the encoder) */
    s->fmt->flush_packets = 1;

    s->enc = avcodec_alloc_context3(codec);
    s->frame = av_frame_alloc();
    s->pkt = av_packet_alloc();
    s->rgb = malloc((size_t)s->enc_w * (size_t)s->enc_h * 3);
    if (!s->enc || !s->frame || !s->pkt || !s->rgb)
        return SK_ERR(SK_E_OOM, "output '%s': out of memory setting up the encoder", path);

    AVCodecContext *e = s->enc;
    e->width = s->enc_w;
    e->height = s->enc_h;
    e->pix_fmt = pix;
    e->time_base = (AVRational){p->fps_den, p->fps_num};
    e->framerate = (AVRational){p->fps_num, p->fps_den};
    e->sample_aspect_ratio = (AVRational){1, 1};
    if (p->gop > 0) e->gop_size = p->gop;
    if (paced_kind) e->max_b_frames = 0; /* B-frames add latency to a live stream */
    /* what the swscale setup below really produces: BT.709 matrix, limited range */
    if (!(desc->flags & AV_PIX_FMT_FLAG_RGB)) {
        e->colorspace = AVCOL_SPC_BT709;
        e->color_primaries = AVCOL_PRI_BT709;
        e->color_trc = AVCOL_TRC_BT709;
        e->color_range = AVCOL_RANGE_MPEG;
    }
    /* the tee muxer's branches (mp4, flv, mkv) want the headers out of band;
     * mpegts branches get them back in band from the tee's automatic bsf */
    if ((s->fmt->oformat->flags & AVFMT_GLOBALHEADER) || s->tee_spec)
        e->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    if (p->bitrate) e->bit_rate = p->bitrate;
    if (p->maxrate) e->rc_max_rate = p->maxrate;
    if (p->bufsize) e->rc_buffer_size = (int)(p->bufsize > INT32_MAX ? INT32_MAX : p->bufsize);

    AVDictionary *opts = NULL;
    if (p->preset && codec_has_opt(codec, "preset")) av_dict_set(&opts, "preset", p->preset, 0);
    else if (p->preset)
        SK_LOGW("output '%s': codec '%s' has no preset option; '%s' ignored", path, cname,
                p->preset);
    if (p->crf >= 0 && codec_has_opt(codec, "crf")) av_dict_set_int(&opts, "crf", p->crf, 0);
    else if (p->crf >= 0)
        SK_LOGW("output '%s': codec '%s' has no crf option; crf %d ignored (use --bitrate)", path,
                cname, p->crf);
    /* libvpx: crf is constant quality only with no target rate */
    if (p->crf >= 0 && !p->bitrate && !strncmp(cname, "libvpx", 6)) e->bit_rate = 0;
    if (p->tune && codec_has_opt(codec, "tune")) av_dict_set(&opts, "tune", p->tune, 0);
    /* x265 prints to stderr itself, past libav's log */
    if (!strcmp(cname, "libx265") && sk_log_get_level() < SK_LOG_DEBUG)
        av_dict_set(&opts, "x265-params", "log-level=warning", 0);
    r = avcodec_open2(e, codec, &opts);
    av_dict_free(&opts);
    if (r < 0) {
        return SK_ERR(SK_E_FFMPEG, "output '%s': opening encoder '%s' failed: %s (preset '%s', "
                      "tune '%s', crf %d, %s %dx%d; an unknown preset or tune name fails here)",
                      path, cname, av_err2str(r), p->preset ? p->preset : "default",
                      p->tune ? p->tune : "none", p->crf, pixname, s->enc_w, s->enc_h);
    }

    s->st = avformat_new_stream(s->fmt, NULL);
    if (!s->st) return SK_ERR(SK_E_OOM, "output '%s': out of memory adding the stream", path);
    r = avcodec_parameters_from_context(s->st->codecpar, e);
    if (r < 0) return ff_err(s, path, "copying the codec parameters", r);
    s->st->time_base = e->time_base; /* a wish: the muxer may change it in write_header */
    s->st->avg_frame_rate = e->framerate;
    s->st->r_frame_rate = e->framerate;

    s->frame->format = pix;
    s->frame->width = s->enc_w;
    s->frame->height = s->enc_h;
    r = av_frame_get_buffer(s->frame, 0);
    if (r < 0) return ff_err(s, path, "allocating the frame", r);

    /* same size, RGB24 -> pix_fmt; ACCURATE_RND so a flat colour converts exactly */
    s->sws = sws_getContext(s->enc_w, s->enc_h, AV_PIX_FMT_RGB24, s->enc_w, s->enc_h, pix,
                            SWS_BICUBIC | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INP, NULL, NULL, NULL);
    if (!s->sws)
        return SK_ERR(SK_E_FFMPEG, "output '%s': libswscale cannot convert rgb24 to %s at %dx%d",
                      path, pixname, s->enc_w, s->enc_h);
    if (!(desc->flags & AV_PIX_FMT_FLAG_RGB))
        sws_setColorspaceDetails(s->sws, sws_getCoefficients(SWS_CS_DEFAULT), 1 /* full */,
                                 sws_getCoefficients(SWS_CS_ITU709), 0 /* limited */, 0,
                                 1 << 16, 1 << 16);

    if (!(s->fmt->oformat->flags & AVFMT_NOFILE)) {
        AVDictionary *io = NULL;
        if (live && p->timeout_ms > 0)
            av_dict_set_int(&io, "rw_timeout", (int64_t)p->timeout_ms * 1000, 0);
        /* 7 TS packets a datagram (FFmpeg's default of 1472 splits them); pkt_size in
         * the URL still wins */
        if (p->kind == SK_OUTPUT_UDP) av_dict_set_int(&io, "pkt_size", 1316, 0);
        /* SRT's live mode drops what is still unsent at close; wait up to 1 s for the last
         * packets to be acknowledged (linger in seconds) */
        if (p->kind == SK_OUTPUT_SRT) av_dict_set_int(&io, "linger", 1, 0);
        guard_arm(&s->guard);
        r = avio_open2(&s->fmt->pb, path, AVIO_FLAG_WRITE, &s->fmt->interrupt_callback, &io);
        av_dict_free(&io);
        if (r < 0) {
            sk_status st = ff_err(s, path, live ? "connecting (avio_open2)"
                                                : "creating the file (avio_open2)", r);
            if (!live && (r == AVERROR(ENOENT) || r == AVERROR(ENOTDIR))) {
                char msg[1024];
                snprintf(msg, sizeof msg, "%s", sk_error_message());
                st = SK_ERR(SK_E_IO, "%s; check that the directory exists (and is one)", msg);
            }
            return st;
        }
        s->is_file = !live;
    }
    /* crash safety: a killed run leaves a file that plays up to its last fragment */
    AVDictionary *mux = NULL;
    const char *mname = s->fmt->oformat->name;
    if (p->kind == SK_OUTPUT_RTMP) /* a stream has no end to seek back to: no duration/size
                                     * patch at close */
        av_dict_set(&mux, "flvflags", "no_duration_filesize", 0);
    if (hls) {
        /* segments cut at the keyframes every 2 s (the live gop), all kept in the playlist
         * (a recording that can be watched while it grows), segment timestamps and
         * independent segments for players that join late */
        av_dict_set(&mux, "hls_time", "2", 0);
        av_dict_set_int(&mux, "hls_list_size", p->hls_list_size > 0 ? p->hls_list_size : 0, 0);
        av_dict_set(&mux, "hls_flags", p->hls_list_size > 0
                                           ? "independent_segments+temp_file+delete_segments"
                                           : "independent_segments+temp_file", 0);
    }
    if (s->meta) av_dict_copy(&s->fmt->metadata, s->meta, 0);
    if (s->tee_spec) { /* the branches' options are in the spec; nothing to set here */
    } else if (!live && p->fragment_ms > 0) {
        if (!strcmp(mname, "mp4") || !strcmp(mname, "mov")) {
            av_dict_set(&mux, "movflags", "frag_keyframe+empty_moov+default_base_moof"
                                          "+use_metadata_tags", 0);
            av_dict_set_int(&mux, "frag_duration", (int64_t)p->fragment_ms * 1000, 0);
        } else if (!strcmp(mname, "matroska")) {
            av_dict_set_int(&mux, "cluster_time_limit", p->fragment_ms, 0);
        }
    } else if (!live && (!strcmp(mname, "mp4") || !strcmp(mname, "mov"))) {
        av_dict_set(&mux, "movflags", "use_metadata_tags", 0);
    }
    guard_arm(&s->guard);
    r = avformat_write_header(s->fmt, &mux);
    av_dict_free(&mux);
    if (r < 0) return ff_err(s, path, "writing the header (avformat_write_header)", r);
    s->header_written = 1;
    SK_LOGD("output '%s': %s %s %s %dx%d crf %d preset %s, stream time base %d/%d", path,
            s->fmt->oformat->name, cname, pixname, s->enc_w, s->enc_h, p->crf,
            p->preset ? p->preset : "default", s->st->time_base.num, s->st->time_base.den);
    return SK_OK;
}

/* libav's log goes through ours: its errors and warnings as our warnings
 * ("sinkstream: warn: libav tee: ..."), its info as our debug, its verbose
 * lines only with -vv; nothing raw reaches the terminal. Errors also come
 * back in our statuses, so these lines are context. Lines arrive in pieces:
 * each thread gathers its own until the newline. */
static void libav_log(void *avcl, int level, const char *fmt, va_list vl);
static void install_libav_log(void)
{
    av_log_set_level(sk_log_libav_verbose() ? AV_LOG_VERBOSE : AV_LOG_INFO);
    av_log_set_callback(libav_log);
}

static void libav_log(void *avcl, int level, const char *fmt, va_list vl)
{
    sk_log_level ours = level <= AV_LOG_WARNING ? SK_LOG_WARN : SK_LOG_DEBUG;
    if (level > AV_LOG_INFO && !sk_log_libav_verbose()) return;
    if ((int)ours > (int)sk_log_get_level()) return;
    static _Thread_local char line[1024];
    static _Thread_local size_t used;
    static _Thread_local int prefix = 1;
    char part[1024];
    av_log_format_line2(avcl, level, fmt, vl, part, sizeof part, &prefix);
    const size_t n = strlen(part);
    const size_t room = sizeof line - 1 - used;
    memcpy(line + used, part, n < room ? n : room);
    used += n < room ? n : room;
    line[used] = 0;
    if (used && (line[used - 1] == '\n' || used == sizeof line - 1)) {
        while (used && (line[used - 1] == '\n' || line[used - 1] == '\r')) line[--used] = 0;
        if (used) sk_log(ours, "libav %s", line);
        used = 0;
    }
}

/* Every libav user (file outputs, the live view) calls this first. */
void sk_output_quiet_libav(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, install_libav_log);
}

int sk_output_ffmpeg_can_mux(const char *path)
{
    return path && av_guess_format(NULL, path, NULL) != NULL;
}

/* The tee muxer's target: every path as a branch with its own format (from
 * its name; flv for rtmp://) and onfail=ignore; '|', '[', ']' and ':' in a
 * path are escaped with '\' as the tee syntax wants. */
static char *tee_spec(const char *main, const sk_output_params *p)
{
    size_t cap = 64;
    for (const char *const *t = p->tee; *t; t++) cap += 2 * strlen(*t) + 200;
    cap += 2 * strlen(main) + 200;
    char *spec = malloc(cap), *w = spec;
    if (!spec) return NULL;
    for (int i = -1; i < 0 || p->tee[i]; i++) {
        const char *path = i < 0 ? main : p->tee[i];
        const int rtmp = !strncmp(path, "rtmp", 4);
        const int ts = !strncmp(path, "srt://", 6) || !strncmp(path, "udp://", 6);
        const AVOutputFormat *f = av_guess_format(rtmp ? "flv" : ts ? "mpegts" : NULL, path, NULL);
        w += sprintf(w, "%s[f=%s:onfail=ignore", i < 0 ? "" : "|", f ? f->name : "matroska");
        if (f && (!strcmp(f->name, "mp4") || !strcmp(f->name, "mov")))
            w += p->fragment_ms > 0
                     ? sprintf(w, ":movflags=+frag_keyframe+empty_moov+default_base_moof"
                                  "+use_metadata_tags:frag_duration=%lld",
                               (long long)p->fragment_ms * 1000)
                     : sprintf(w, ":movflags=+use_metadata_tags");
        else if (f && !strcmp(f->name, "matroska") && p->fragment_ms > 0)
            w += sprintf(w, ":cluster_time_limit=%d", p->fragment_ms);
        else if (rtmp)
            w += sprintf(w, ":flvflags=no_duration_filesize");
        *w++ = ']';
        for (const char *c = path; *c; c++) {
            if (strchr("|[]\\", *c)) *w++ = '\\';
            *w++ = *c;
        }
    }
    *w = 0;
    return spec;
}

sk_status sk_output_ffmpeg_open(sk_output *o, const sk_output_params *p)
{
    sk_output_quiet_libav();
    ff_sink *s = calloc(1, sizeof *s);
    SK_CHECK(s, SK_E_OOM, "output '%s': out of memory", o->path);
    s->guard.timeout_ms = p->timeout_ms;
    s->guard.abort_flag = p->abort_flag;
    s->guard.stop_flag = &s->rc_stop;
    /* own copies of what a reconnect needs again (the caller's strings may go) */
    s->params = *p;
    s->params.path = o->path;
    s->s_codec = p->codec ? strdup(p->codec) : NULL;
    s->s_preset = p->preset ? strdup(p->preset) : NULL;
    s->s_tune = p->tune ? strdup(p->tune) : NULL;
    s->s_pix = p->pix_fmt ? strdup(p->pix_fmt) : NULL;
    int oom = (p->codec && !s->s_codec) || (p->preset && !s->s_preset) ||
              (p->tune && !s->s_tune) || (p->pix_fmt && !s->s_pix);
    for (const char *const *kv = p->metadata; !oom && kv && kv[0] && kv[1]; kv += 2)
        oom = av_dict_set(&s->meta, kv[0], kv[1], 0) < 0;
    if (!oom && p->tee && p->tee[0]) {
        s->tee_spec = tee_spec(o->path, p);
        oom = !s->tee_spec;
        s->params.reconnect_max_ms = -1; /* a dropped branch stays dropped */
    }
    s->params.metadata = NULL;
    s->params.tee = NULL;
    if (oom) {
        ff_free(s);
        return SK_ERR(SK_E_OOM, "output '%s': out of memory", o->path);
    }
    s->params.codec = s->s_codec;
    s->params.preset = s->s_preset;
    s->params.tune = s->s_tune;
    s->params.pix_fmt = s->s_pix;
    sk_status st = ff_open_impl(s, o, p);
    if (st != SK_OK) {
        int remove_file = s->is_file;
        ff_free(s);
        /* a header-less file is unplayable: do not leave it behind */
        if (remove_file) unlink(o->path);
        return st;
    }
    o->impl = s;
    o->vt = &k_ff_vtbl;
    return SK_OK;
}
