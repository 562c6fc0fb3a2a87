/* ffmpeg_input.c - the FFmpeg reader of an input (runtime/input/input.h): demux,
 * decode, resample by timestamp to the model's rate, scale to cover and crop the
 * centre, hand frames to the queue; reconnect network sources with backoff. */
#ifdef SK_HAVE_FFMPEG
#include <errno.h>
#include <fcntl.h>
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/dict.h>
#include <libavutil/imgutils.h>
#include <libswscale/swscale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#ifdef SK_HAVE_AVDEVICE
#include <libavdevice/avdevice.h>
#endif

#include "runtime/core/log.h"
#include "runtime/core/progress.h"
#include "runtime/input/input_impl.h"
#include "runtime/output/output.h" /* sk_output_quiet_libav: libav logs through ours */

typedef enum { KIND_FILE, KIND_PIPE, KIND_LAVFI, KIND_DEVICE, KIND_NETWORK } src_kind;
static const char *const k_kind_names[] = {"file", "pipe", "lavfi", "device", "network"};

typedef struct {
    src_kind kind;
    char *url;                 /* what avformat_open_input gets */
    char *format;              /* input format name or NULL */
    char *options;             /* "k=v:k=v" or NULL */
    AVFormatContext *fmt;
    AVCodecContext *dec;
    int vs;                    /* the video stream */
    double tb;                 /* its time base in seconds */
    AVFrame *frame;
    AVPacket *pkt;
    struct SwsContext *sws;
    uint8_t *cover;            /* RGB24 at the cover size */
    int cw, ch, cover_cap;
    double deadline;           /* network: sk_progress_now() bound of the current call */
    /* resampling (by presentation time) */
    uint8_t *held;             /* the newest source frame at the model size */
    int have_held, held_emits;
    double held_rel, held_arr, last_dt;
    double origin;             /* source time of slot 0 */
    int have_origin;
    int64_t slot;              /* next output slot */
    double wall0, rel0;        /* realtime pacing */
    int paced;
    int stdin_flags;           /* stdin's flags before it was made non-blocking (-1: untouched) */
} ffin;

static int interrupt_cb(void *user)
{
    sk_input *in = user;
    ffin *f = in->ff;
    if (sk_input_stopping(in)) return 1;
    return f && f->deadline > 0 && sk_progress_now() > f->deadline;
}

int sk_input_available(void)
{
#ifdef SK_HAVE_AVDEVICE
    return 2;
#else
    return 1;
#endif
}

static const char *av_err(int e, char *buf, size_t cap)
{
    if (av_strerror(e, buf, cap) < 0) snprintf(buf, cap, "error %d", e);
    return buf;
}

static void close_stream(ffin *f)
{
    avcodec_free_context(&f->dec);
    avformat_close_input(&f->fmt);
}

/* Opens the source once; SK_OK or an error naming the source. */
static sk_status open_once(sk_input *in, ffin *f)
{
    char eb[128];
    const AVInputFormat *ifmt = NULL;
    if (f->format) {
        ifmt = av_find_input_format(f->format);
        SK_CHECK(ifmt, SK_E_INVALID_ARG, "--input-format '%s': FFmpeg has no such input format%s",
                 f->format,
#ifdef SK_HAVE_AVDEVICE
                 ""
#else
                 " (this build has no libavdevice: lavfi and v4l2 need it)"
#endif
        );
    }
    AVDictionary *opts = NULL;
    if (f->options && *f->options &&
        av_dict_parse_string(&opts, f->options, "=", ":", 0) < 0) {
        av_dict_free(&opts);
        return SK_ERR(SK_E_INVALID_ARG, "--input-options '%s': expected key=value:key=value",
                      f->options);
    }
    f->fmt = avformat_alloc_context();
    if (!f->fmt) {
        av_dict_free(&opts);
        return SK_ERR(SK_E_OOM, "--input: out of memory");
    }
    f->fmt->interrupt_callback.callback = interrupt_cb;
    f->fmt->interrupt_callback.opaque = in;
    const int to = in->o.timeout_ms > 0 ? in->o.timeout_ms : 10000;
    f->deadline = f->kind == KIND_NETWORK ? sk_progress_now() + to / 1e3 : 0;
    int r = avformat_open_input(&f->fmt, f->url, ifmt, &opts); /* frees fmt on failure */
    if (r >= 0 && av_dict_count(opts) > 0) {
        const AVDictionaryEntry *e = av_dict_get(opts, "", NULL, AV_DICT_IGNORE_SUFFIX);
        SK_LOGW("--input-options: '%s' is not an option of this input; ignored", e->key);
    }
    av_dict_free(&opts);
    if (r < 0)
        return SK_ERR(f->kind == KIND_NETWORK ? SK_E_NET : SK_E_IO, "--input '%s': cannot "
                      "open: %s%s", in->src, av_err(r, eb, sizeof eb),
                      r == AVERROR_INVALIDDATA ? " (not a video FFmpeg can read: corrupt, or "
                      "give --input-format)" : "");
    f->deadline = f->kind == KIND_NETWORK ? sk_progress_now() + to / 1e3 : 0;
    r = avformat_find_stream_info(f->fmt, NULL);
    if (r < 0)
        return SK_ERR(SK_E_FORMAT, "--input '%s': cannot read the stream parameters: %s "
                      "(corrupt or truncated?)", in->src, av_err(r, eb, sizeof eb));
    const AVCodec *codec = NULL;
    f->vs = av_find_best_stream(f->fmt, AVMEDIA_TYPE_VIDEO, -1, -1, &codec, 0);
    SK_CHECK(f->vs >= 0, SK_E_FORMAT, "--input '%s': %s", in->src,
             f->vs == AVERROR_DECODER_NOT_FOUND ? "no decoder for its video stream in this "
             "FFmpeg" : "has no video stream (audio only, or not a video: corrupt?)");
    AVStream *st = f->fmt->streams[f->vs];
    f->tb = av_q2d(st->time_base);
    f->dec = avcodec_alloc_context3(codec);
    SK_CHECK(f->dec, SK_E_OOM, "--input: out of memory for the decoder");
    r = avcodec_parameters_to_context(f->dec, st->codecpar);
    if (r >= 0) {
        f->dec->thread_count = 2;
        r = avcodec_open2(f->dec, codec, NULL);
    }
    if (r < 0)
        return SK_ERR(SK_E_FFMPEG, "--input '%s': cannot open the %s decoder: %s", in->src,
                      codec->name, av_err(r, eb, sizeof eb));
    const AVRational fr = av_guess_frame_rate(f->fmt, st, NULL);
    pthread_mutex_lock(&in->mu);
    in->st.src_width = st->codecpar->width;
    in->st.src_height = st->codecpar->height;
    in->st.src_fps = fr.num > 0 && fr.den > 0 ? av_q2d(fr) : 0;
    snprintf(in->st.state, sizeof in->st.state, "running");
    pthread_mutex_unlock(&in->mu);
    SK_LOGI("input '%s' (%s): %s %dx%d at %.3g fps -> %lldx%lld at %.3g fps (scaled to cover, "
            "centre cropped; frames dropped/repeated by timestamp)", in->src,
            k_kind_names[f->kind], codec->name, st->codecpar->width, st->codecpar->height,
            in->st.src_fps, (long long)in->W, (long long)in->H,
            (double)in->o.fps_num / in->o.fps_den);
    return SK_OK;
}

/* The decoded frame, scaled to cover W x H and centre-cropped into dst (RGB24). */
static sk_status scale_frame(sk_input *in, ffin *f, const AVFrame *fr, uint8_t *dst)
{
    const int sw = fr->width, sh = fr->height, W = (int)in->W, H = (int)in->H;
    SK_CHECK(sw > 0 && sh > 0, SK_E_FORMAT, "--input '%s': a frame of %dx%d", in->src, sw, sh);
    const double s = fmax((double)W / sw, (double)H / sh);
    int cw = (int)lround(sw * s), ch = (int)lround(sh * s);
    if (cw < W) cw = W;
    if (ch < H) ch = H;
    f->sws = sws_getCachedContext(f->sws, sw, sh, (enum AVPixelFormat)fr->format, cw, ch,
                                  AV_PIX_FMT_RGB24, SWS_BICUBIC, NULL, NULL, NULL);
    SK_CHECK(f->sws, SK_E_FFMPEG, "--input '%s': libswscale cannot convert %s %dx%d to RGB "
             "%dx%d", in->src, av_get_pix_fmt_name((enum AVPixelFormat)fr->format), sw, sh, cw, ch);
    const int need = cw * ch * 3;
    if (need > f->cover_cap) {
        uint8_t *c = realloc(f->cover, (size_t)need);
        SK_CHECK(c, SK_E_OOM, "--input: out of memory");
        f->cover = c;
        f->cover_cap = need;
    }
    f->cw = cw;
    f->ch = ch;
    uint8_t *dp[4] = {f->cover, NULL, NULL, NULL};
    int ds[4] = {cw * 3, 0, 0, 0};
    sws_scale(f->sws, (const uint8_t *const *)fr->data, fr->linesize, 0, sh, dp, ds);
    const int x0 = (cw - W) / 2, y0 = (ch - H) / 2;
    for (int y = 0; y < H; y++)
        memcpy(dst + (size_t)y * W * 3, f->cover + ((size_t)(y + y0) * cw + x0) * 3,
               (size_t)W * 3);
    return SK_OK;
}

static void count(sk_input *in, int64_t *field, int64_t d)
{
    pthread_mutex_lock(&in->mu);
    *field += d;
    pthread_mutex_unlock(&in->mu);
}

/* Emits the held frame for every slot before `until` (source seconds, relative). 1 when
 * interrupted. */
static int emit_until(sk_input *in, ffin *f, double until)
{
    const double fps = (double)in->o.fps_num / in->o.fps_den;
    while (f->have_held && (double)f->slot / fps < until) {
        if (sk_input_put(in, f->held, f->held_arr)) return 1;
        if (f->held_emits++ > 0) count(in, &in->st.repeated, 1);
        f->slot++;
    }
    return 0;
}

static int on_frame(sk_input *in, ffin *f, AVFrame *fr)
{
    const double fps = (double)in->o.fps_num / in->o.fps_den;
    const int64_t ts = fr->best_effort_timestamp;
    double t;
    if (ts != AV_NOPTS_VALUE) {
        t = (double)ts * f->tb;
    } else { /* no timestamps: the nominal rate, else the model's */
        const double d = in->st.src_fps > 0 ? 1.0 / in->st.src_fps : 1.0 / fps;
        t = f->have_held ? f->origin + f->held_rel + d : 0;
    }
    if (!f->have_origin) { /* slot numbering continues across reconnects */
        f->origin = t - (double)f->slot / fps;
        f->have_origin = 1;
    }
    double rel = t - f->origin;
    if (f->have_held && rel <= f->held_rel) rel = f->held_rel + 1e-6; /* non-monotonic pts */
    count(in, &in->st.decoded, 1);
    if (f->paced) { /* -re: a file at its own rate */
        const double now = sk_progress_now();
        if (f->wall0 == 0) {
            f->wall0 = now;
            f->rel0 = rel;
        }
        const double due = f->wall0 + (rel - f->rel0);
        while (sk_progress_now() < due && !sk_input_stopping(in)) {
            double d = due - sk_progress_now();
            if (d > 0.05) d = 0.05;
            struct timespec sl = {0, (long)(d * 1e9)};
            if (d > 0) nanosleep(&sl, NULL);
        }
    }
    const double arrival = sk_progress_now();
    if (f->have_held) {
        f->last_dt = rel - f->held_rel;
        if (emit_until(in, f, 0.5 * (f->held_rel + rel))) return 1;
        if (f->held_emits == 0) count(in, &in->st.skipped, 1);
    }
    if (scale_frame(in, f, fr, f->held) != SK_OK) {
        sk_input_end(in, SK_E_FFMPEG, "%s", sk_error_message());
        return 1;
    }
    f->have_held = 1;
    f->held_emits = 0;
    f->held_rel = rel;
    f->held_arr = arrival;
    /* the slots before the predicted midpoint to the next frame (one frame interval on) are
     * this frame's already: they leave now, not when the next frame arrives (no added
     * latency, and a source that stalls does not hold back the frames it sent) */
    const double d = f->last_dt > 0 ? f->last_dt
                     : in->st.src_fps > 0 ? 1.0 / in->st.src_fps : 1.0 / fps;
    return emit_until(in, f, rel + 0.5 * d);
}

/* Drains the decoder (pkt NULL: flush). 1 when interrupted or failed. */
static int decode(sk_input *in, ffin *f, const AVPacket *pkt)
{
    int r = avcodec_send_packet(f->dec, pkt);
    if (r < 0 && r != AVERROR(EAGAIN) && r != AVERROR_EOF) {
        char eb[128];
        count(in, &in->st.decode_errors, 1);
        SK_LOGD("input '%s': the decoder refused a packet: %s", in->src, av_err(r, eb, sizeof eb));
        return 0;
    }
    for (;;) {
        r = avcodec_receive_frame(f->dec, f->frame);
        if (r == AVERROR(EAGAIN) || r == AVERROR_EOF) return 0;
        if (r < 0) {
            count(in, &in->st.decode_errors, 1);
            return 0;
        }
        const int stop = on_frame(in, f, f->frame);
        av_frame_unref(f->frame);
        if (stop) return 1;
    }
}

/* The held frame's own slots at the end of a stream (it lasts one frame interval). */
static int emit_last(sk_input *in, ffin *f)
{
    const double fps = (double)in->o.fps_num / in->o.fps_den;
    const double d = f->last_dt > 0 ? f->last_dt
                     : in->st.src_fps > 0 ? 1.0 / in->st.src_fps : 1.0 / fps;
    int stop;
    if (f->have_held && f->held_emits == 0 && f->slot == 0) /* a single frame: one slot */
        stop = emit_until(in, f, 0.5 / fps);
    else
        stop = emit_until(in, f, f->held_rel + 0.5 * d);
    if (!stop && f->have_held && f->held_emits == 0) count(in, &in->st.skipped, 1);
    f->have_held = 0;
    return stop;
}

static void sleep_interruptible(sk_input *in, double s)
{
    const double end = sk_progress_now() + s;
    while (!sk_input_stopping(in) && sk_progress_now() < end) {
        struct timespec sl = {0, 20 * 1000000L};
        nanosleep(&sl, NULL);
    }
}

/* A network source dropped: reopen with backoff until it comes back or the input is
 * stopped. 0: reopened; 1: stopped. */
static int reconnect(sk_input *in, ffin *f, const char *why)
{
    close_stream(f);
    if (emit_last(in, f)) return 1;
    f->have_held = 0;
    f->have_origin = 0;
    f->last_dt = 0;
    pthread_mutex_lock(&in->mu);
    snprintf(in->st.state, sizeof in->st.state, "reconnecting");
    pthread_mutex_unlock(&in->mu);
    SK_LOGW("input '%s': %s; reconnecting (backoff 250 ms doubling up to %d ms)", in->src, why,
            in->o.reconnect_max_ms);
    const double t0 = sk_progress_now();
    double backoff = 0.25;
    for (int attempt = 1; !sk_input_stopping(in); attempt++) {
        sleep_interruptible(in, backoff);
        if (sk_input_stopping(in)) break;
        if (open_once(in, f) == SK_OK) {
            const double down = sk_progress_now() - t0;
            pthread_mutex_lock(&in->mu);
            in->st.reconnects++;
            in->st.down_ms += down * 1e3;
            pthread_mutex_unlock(&in->mu);
            SK_LOGI("input '%s': reconnected (attempt %d, %.2f s down)", in->src, attempt, down);
            return 0;
        }
        SK_LOGD("input '%s': reconnect attempt %d failed: %s", in->src, attempt,
                sk_error_message());
        close_stream(f);
        backoff *= 2;
        if (backoff > in->o.reconnect_max_ms / 1e3) backoff = in->o.reconnect_max_ms / 1e3;
    }
    return 1;
}

static void *reader(void *user)
{
    sk_input *in = user;
    ffin *f = in->ff;
    char eb[128];
    const int to = in->o.timeout_ms > 0 ? in->o.timeout_ms : 10000;
    for (;;) {
        if (sk_input_stopping(in)) {
            sk_input_end(in, SK_OK, NULL);
            break;
        }
        f->deadline = f->kind == KIND_NETWORK ? sk_progress_now() + to / 1e3 : 0;
        int r = av_read_frame(f->fmt, f->pkt);
        if (r >= 0) {
            int stop = 0;
            if (f->pkt->stream_index == f->vs) stop = decode(in, f, f->pkt);
            av_packet_unref(f->pkt);
            if (stop) {
                sk_input_end(in, SK_OK, NULL);
                break;
            }
            continue;
        }
        if (sk_input_stopping(in)) {
            sk_input_end(in, SK_OK, NULL);
            break;
        }
        /* the end, or an error: take what the decoder still holds */
        f->deadline = 0;
        if (decode(in, f, NULL)) {
            sk_input_end(in, SK_OK, NULL);
            break;
        }
        const int eof = r == AVERROR_EOF;
        if (f->kind == KIND_NETWORK && in->o.reconnect_max_ms > 0) {
            char why[160];
            snprintf(why, sizeof why, "%s", eof ? "the stream ended" : av_err(r, eb, sizeof eb));
            if (reconnect(in, f, why)) {
                sk_input_end(in, SK_OK, NULL);
                break;
            }
            continue;
        }
        if (emit_last(in, f)) {
            sk_input_end(in, SK_OK, NULL);
            break;
        }
        int64_t decoded, frames, errs;
        pthread_mutex_lock(&in->mu);
        decoded = in->st.decoded;
        frames = in->st.frames;
        errs = in->st.decode_errors;
        pthread_mutex_unlock(&in->mu);
        if (decoded == 0)
            sk_input_end(in, SK_E_FORMAT, "--input '%s': no video frame could be decoded (%s%s); "
                         "is it a corrupt or empty video?", in->src,
                         eof ? "end of input" : av_err(r, eb, sizeof eb),
                         errs ? ", the decoder refused its data" : "");
        else if (!eof && f->kind == KIND_NETWORK)
            sk_input_end(in, SK_E_NET, "--input '%s': the stream dropped after %lld frames: %s "
                         "(--input-reconnect-max-ms > 0 reconnects)", in->src,
                         (long long)decoded, av_err(r, eb, sizeof eb));
        else {
            if (!eof)
                SK_LOGW("input '%s': read error after %lld frames (%s): ending the input there",
                        in->src, (long long)decoded, av_err(r, eb, sizeof eb));
            if (errs)
                SK_LOGW("input '%s': the decoder refused %lld packets (corrupt data skipped)",
                        in->src, (long long)errs);
            SK_LOGI("input '%s' ended: %lld frames decoded, %lld at the model's rate", in->src,
                    (long long)decoded, (long long)frames);
            sk_input_end(in, SK_OK, NULL);
        }
        break;
    }
    return NULL;
}

static void ffin_free(ffin *f)
{
    if (!f) return;
    close_stream(f);
    if (f->stdin_flags >= 0) (void)fcntl(0, F_SETFL, f->stdin_flags);
    av_frame_free(&f->frame);
    av_packet_free(&f->pkt);
    sws_freeContext(f->sws);
    free(f->cover);
    free(f->held);
    free(f->url);
    free(f->format);
    free(f->options);
    free(f);
}

static src_kind classify(const char *src, const char *format)
{
    if (format && !strcmp(format, "lavfi")) return KIND_LAVFI;
    if (!strcmp(src, "-") || !strncmp(src, "pipe:", 5)) return KIND_PIPE;
    if (format && (!strcmp(format, "v4l2") || !strcmp(format, "video4linux2"))) return KIND_DEVICE;
    if (!strncmp(src, "/dev/video", 10)) return KIND_DEVICE;
    const char *p = strstr(src, "://");
    if (p && strncmp(src, "file:", 5) != 0) return KIND_NETWORK;
    return KIND_FILE;
}

sk_status sk_input_ffmpeg_open(sk_input *in)
{
    sk_output_quiet_libav();
    ffin *f = calloc(1, sizeof *f);
    SK_CHECK(f, SK_E_OOM, "--input: out of memory");
    f->stdin_flags = -1;
    in->ff = f;
    const char *src = in->src, *format = in->o.format;
    if (!strncmp(src, "lavfi:", 6)) {
        src += 6;
        format = "lavfi";
    }
    f->kind = classify(src, format);
    if (f->kind == KIND_DEVICE && !format) format = "v4l2";
    f->url = strdup(!strcmp(src, "-") ? "pipe:0" : src);
    f->format = format ? strdup(format) : NULL;
    f->options = in->o.options ? strdup(in->o.options) : NULL;
    f->held = malloc(in->fbytes);
    f->frame = av_frame_alloc();
    f->pkt = av_packet_alloc();
    SK_CHECK(f->url && f->held && f->frame && f->pkt && (!format || f->format) &&
                 (!in->o.options || f->options),
             SK_E_OOM, "--input: out of memory");
    in->live = f->kind == KIND_NETWORK || f->kind == KIND_DEVICE;
    const int qf = in->o.queue_frames > 0 ? in->o.queue_frames : 64;
    const int want = in->live && in->o.live_queue_frames > 0 ? in->o.live_queue_frames : qf;
    if (want < in->cap) in->cap = want; /* the buffer holds the larger of the two */
    f->paced = in->o.realtime && !in->live;
    snprintf(in->st.kind, sizeof in->st.kind, "%s", k_kind_names[f->kind]);
    if (f->kind == KIND_LAVFI || f->kind == KIND_DEVICE) {
#ifdef SK_HAVE_AVDEVICE
        avdevice_register_all();
#else
        return SK_ERR(SK_E_UNSUPPORTED, "--input '%s': %s inputs need libavdevice, which this "
                      "build lacks (install libavdevice-dev, rebuild)", in->src,
                      f->kind == KIND_LAVFI ? "lavfi" : "camera (v4l2)");
#endif
    }
    SK_CHECK(!f->format || av_find_input_format(f->format), SK_E_INVALID_ARG,
             "--input-format '%s': FFmpeg has no such input format (ffmpeg -formats lists "
             "them)", f->format);
    /* stdin non-blocking: FFmpeg's pipe reads then retry with its interrupt callback checked,
     * so a producer that stalls cannot hold the reader thread (and the run's end) forever */
    if (!strcmp(f->url, "pipe:0") || !strcmp(f->url, "pipe:")) {
        const int fl = fcntl(0, F_GETFL);
        if (fl >= 0 && !(fl & O_NONBLOCK) && fcntl(0, F_SETFL, fl | O_NONBLOCK) == 0)
            f->stdin_flags = fl;
    }
    if (f->kind == KIND_FILE && access(f->url, R_OK) != 0)
        return SK_ERR(SK_E_IO, "--input '%s': cannot open: %s", in->src, strerror(errno));
    SK_TRY(open_once(in, f));
    if (pthread_create(&in->th, NULL, reader, in) != 0)
        return SK_ERR(SK_E_INTERNAL, "--input: cannot start the reader thread");
    in->have_thread = 1;
    return SK_OK;
}

void sk_input_ffmpeg_close(sk_input *in)
{
    in->interrupted = 1;
    if (in->have_thread) {
        pthread_mutex_lock(&in->mu);
        pthread_cond_broadcast(&in->cv);
        pthread_mutex_unlock(&in->mu);
        pthread_join(in->th, NULL);
        in->have_thread = 0;
    }
    ffin_free(in->ff);
    in->ff = NULL;
}
#endif
