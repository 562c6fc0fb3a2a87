/* input.c - the consumer side of an input (runtime/input/input.h): the frame queue,
 * reads as float CHW, the synthetic source, latency percentiles. */
#include "runtime/input/input.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "runtime/core/log.h"
#include "runtime/core/progress.h"
#include "runtime/input/input_impl.h"

static void deadline_in(struct timespec *ts, int ms)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_nsec += (long)ms * 1000000L;
    ts->tv_sec += ts->tv_nsec / 1000000000L;
    ts->tv_nsec %= 1000000000L;
}

int sk_input_stopping(const sk_input *in)
{
    return in->interrupted || (in->stop && *in->stop);
}

int sk_input_put(sk_input *in, const uint8_t *rgb, double arrival)
{
    pthread_mutex_lock(&in->mu);
    while (in->count == in->cap && !in->live && !sk_input_stopping(in)) {
        struct timespec ts;
        deadline_in(&ts, 50);
        pthread_cond_timedwait(&in->cv, &in->mu, &ts);
    }
    if (sk_input_stopping(in)) {
        pthread_mutex_unlock(&in->mu);
        return 1;
    }
    if (in->count == in->cap) { /* live: the oldest goes */
        in->head = (in->head + 1) % in->cap;
        in->count--;
        in->st.dropped++;
    }
    const int slot = (in->head + in->count) % in->cap;
    memcpy(in->q + (size_t)slot * in->fbytes, rgb, in->fbytes);
    in->q_t[slot] = arrival;
    in->count++;
    in->st.frames++;
    pthread_cond_broadcast(&in->cv);
    pthread_mutex_unlock(&in->mu);
    return 0;
}

void sk_input_end(sk_input *in, sk_status st, const char *fmt, ...)
{
    pthread_mutex_lock(&in->mu);
    if (!in->ended) {
        in->ended = 1;
        in->err = st;
        if (fmt) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(in->st.error, sizeof in->st.error, fmt, ap);
            va_end(ap);
        }
        snprintf(in->st.state, sizeof in->st.state, "%s", st == SK_OK ? "ended" : "failed");
    }
    pthread_cond_broadcast(&in->cv);
    pthread_mutex_unlock(&in->mu);
}

static sk_status input_alloc(const sk_input_opts *o, const char *src, sk_input **out)
{
    *out = NULL;
    SK_CHECK(o && o->width >= 2 && o->height >= 2 && o->fps_num >= 1 && o->fps_den >= 1,
             SK_E_INVALID_ARG, "input: frame size %lldx%lld at %d/%d fps; expected a positive "
             "size and rate", o ? (long long)o->width : 0LL, o ? (long long)o->height : 0LL,
             o ? o->fps_num : 0, o ? o->fps_den : 0);
    sk_input *in = calloc(1, sizeof *in);
    SK_CHECK(in, SK_E_OOM, "input: out of memory");
    in->o = *o;
    in->o.format = in->o.options = NULL; /* not kept: the opener reads them from o */
    in->W = o->width;
    in->H = o->height;
    in->fbytes = (size_t)(in->W * in->H * 3);
    in->cap = o->queue_frames > 0 ? o->queue_frames : 64;
    if (o->live_queue_frames > in->cap) in->cap = o->live_queue_frames; /* room for either */
    in->src = strdup(src ? src : "synthetic");
    in->q = malloc((size_t)in->cap * in->fbytes);
    in->q_t = calloc((size_t)in->cap, sizeof *in->q_t);
    pthread_mutex_init(&in->mu, NULL);
    pthread_cond_init(&in->cv, NULL);
    snprintf(in->st.state, sizeof in->st.state, "opening");
    if (!in->src || !in->q || !in->q_t) {
        sk_input_close(&in);
        return SK_ERR(SK_E_OOM, "input: out of memory for a queue of %d frames of %lldx%lld",
                      o->queue_frames > 0 ? o->queue_frames : 64, (long long)o->width,
                      (long long)o->height);
    }
    *out = in;
    return SK_OK;
}

sk_status sk_input_open(const char *src, const sk_input_opts *o, sk_input **out)
{
    SK_CHECK(src && *src, SK_E_INVALID_ARG, "--input: empty source; expected a file, a URL, "
             "/dev/videoN, lavfi:GRAPH or - (stdin)");
    SK_CHECK(out, SK_E_INVALID_ARG, "sk_input_open: out is NULL");
    SK_CHECK(sk_input_available(), SK_E_UNSUPPORTED, "--input '%s': this build has no FFmpeg "
             "(libavformat/libavcodec/libswscale); rebuild with them", src);
    sk_input *in;
    SK_TRY(input_alloc(o, src, &in));
    in->o.format = o->format;   /* read by the opener only, during this call */
    in->o.options = o->options;
    sk_status st = sk_input_ffmpeg_open(in);
    in->o.format = in->o.options = NULL;
    if (st != SK_OK) {
        sk_input_close(&in);
        return st;
    }
    *out = in;
    return SK_OK;
}

sk_status sk_input_open_synthetic(const sk_input_opts *o, int64_t max_frames, sk_input **out)
{
    SK_CHECK(out, SK_E_INVALID_ARG, "sk_input_open_synthetic: out is NULL");
    sk_input *in;
    SK_TRY(input_alloc(o, "synthetic", &in));
    in->synthetic = 1;
    in->syn_max = max_frames;
    snprintf(in->st.kind, sizeof in->st.kind, "synthetic");
    snprintf(in->st.state, sizeof in->st.state, "running");
    in->st.src_width = in->W;
    in->st.src_height = in->H;
    in->st.src_fps = (double)o->fps_num / o->fps_den;
    *out = in;
    return SK_OK;
}

void sk_input_close(sk_input **pin)
{
    if (!pin || !*pin) return;
    sk_input *in = *pin;
    *pin = NULL;
    in->interrupted = 1;
    if (in->ff || in->have_thread) sk_input_ffmpeg_close(in);
    pthread_mutex_destroy(&in->mu);
    pthread_cond_destroy(&in->cv);
    free(in->q);
    free(in->q_t);
    free(in->src);
    free(in);
}

void sk_input_set_stop(sk_input *in, const volatile int *flag)
{
    if (in) in->stop = flag;
}

void sk_input_interrupt(sk_input *in)
{
    if (!in) return;
    in->interrupted = 1;
    pthread_mutex_lock(&in->mu);
    pthread_cond_broadcast(&in->cv);
    pthread_mutex_unlock(&in->mu);
}

void sk_input_get_stats(sk_input *in, sk_input_stats *out)
{
    memset(out, 0, sizeof *out);
    if (!in) return;
    pthread_mutex_lock(&in->mu);
    *out = in->st;
    pthread_mutex_unlock(&in->mu);
}

/* RGB HWC bytes -> float CHW in [0, 1] */
static void to_chw(const uint8_t *rgb, float *dst, int64_t H, int64_t W)
{
    const int64_t P = H * W;
    for (int64_t i = 0; i < P; i++)
        for (int c = 0; c < 3; c++) dst[c * P + i] = (float)rgb[3 * i + c] * (1.0f / 255.0f);
}

/* A moving pattern: diagonal gradients that scroll with the frame index, a square that
 * bounces (something for the encoder to see move). */
static void synth_frame(int64_t i, int64_t H, int64_t W, float *dst)
{
    const int64_t P = H * W, side = (H < W ? H : W) / 4 + 1;
    const int64_t sx = (i * 3) % (W > side ? W - side : 1);
    const int64_t sy = (i * 2) % (H > side ? H - side : 1);
    for (int64_t y = 0; y < H; y++)
        for (int64_t x = 0; x < W; x++) {
            const int in_sq = x >= sx && x < sx + side && y >= sy && y < sy + side;
            dst[y * W + x] = in_sq ? 0.95f : (float)((x + 2 * i) % W) / (float)W;
            dst[P + y * W + x] = in_sq ? 0.2f : (float)((y + i) % H) / (float)H;
            dst[2 * P + y * W + x] = 0.5f + 0.4f * sinf(0.05f * (float)(x + y + i));
        }
}

static sk_status synth_read(sk_input *in, float *dst, int64_t n, double *arrival, int64_t *got)
{
    const int64_t per = 3 * in->H * in->W;
    const double fps = (double)in->o.fps_num / in->o.fps_den;
    *got = 0;
    for (int64_t k = 0; k < n; k++) {
        if (in->syn_max > 0 && in->syn_i >= in->syn_max) break;
        if (sk_input_stopping(in)) break;
        double t = sk_progress_now();
        if (in->o.realtime) { /* a camera: frame i exists at t0 + i / fps */
            if (in->syn_i == 0) in->syn_t0 = t;
            const double due = in->syn_t0 + (double)in->syn_i / fps;
            while (t < due && !sk_input_stopping(in)) {
                double d = due - t;
                if (d > 0.05) d = 0.05;
                struct timespec ts = {0, (long)(d * 1e9)};
                nanosleep(&ts, NULL);
                t = sk_progress_now();
            }
            t = due;
        }
        synth_frame(in->syn_i, in->H, in->W, dst + k * per);
        if (arrival) arrival[k] = t;
        in->syn_i++;
        (*got)++;
        pthread_mutex_lock(&in->mu);
        in->st.decoded++;
        in->st.frames++;
        pthread_mutex_unlock(&in->mu);
    }
    if (in->syn_max > 0 && in->syn_i >= in->syn_max) {
        pthread_mutex_lock(&in->mu);
        snprintf(in->st.state, sizeof in->st.state, "ended");
        pthread_mutex_unlock(&in->mu);
    }
    return SK_OK;
}

sk_status sk_input_read(sk_input *in, float *dst, int64_t n, double *arrival, int64_t *got)
{
    SK_CHECK(in && dst && got && n >= 0, SK_E_INVALID_ARG, "sk_input_read: bad argument");
    if (in->synthetic) return synth_read(in, dst, n, arrival, got);
    const int64_t per = 3 * in->H * in->W;
    *got = 0;
    pthread_mutex_lock(&in->mu);
    while (*got < n) {
        while (in->count == 0 && !in->ended && !sk_input_stopping(in)) {
            struct timespec ts;
            deadline_in(&ts, 50);
            pthread_cond_timedwait(&in->cv, &in->mu, &ts);
        }
        if (in->count == 0) break; /* ended or stopping */
        to_chw(in->q + (size_t)in->head * in->fbytes, dst + *got * per, in->H, in->W);
        if (arrival) arrival[*got] = in->q_t[in->head];
        in->head = (in->head + 1) % in->cap;
        in->count--;
        (*got)++;
        pthread_cond_broadcast(&in->cv);
    }
    const int failed = *got == 0 && in->ended && in->err != SK_OK && in->count == 0;
    sk_status err = in->err;
    char msg[256];
    snprintf(msg, sizeof msg, "%s", in->st.error);
    pthread_mutex_unlock(&in->mu);
    if (failed) return SK_ERR(err, "%s", msg);
    return SK_OK;
}

/* ---- latency */

void sk_latency_in(sk_latency *l, int64_t first, int64_t n, const double *t)
{
    for (int64_t i = 0; i < n; i++) l->arrival[(first + i) % SK_LATENCY_RING] = t[i];
    if (first + n > l->n_in) l->n_in = first + n;
}

void sk_latency_out(sk_latency *l, int64_t first, int64_t n, int64_t shift, double now)
{
    for (int64_t j = first; j < first + n; j++) {
        const int64_t i = j + shift;
        /* padding past the input's end, or an arrival already overwritten */
        if (i >= l->n_in || i < l->n_in - SK_LATENCY_RING) continue;
        const double ms = (now - l->arrival[i % SK_LATENCY_RING]) * 1e3;
        l->ms[l->n % SK_LATENCY_SAMPLES] = (float)ms;
        l->n++;
        l->sum_ms += ms;
        if (ms > l->max_ms) l->max_ms = ms;
    }
}

static int cmp_float(const void *a, const void *b)
{
    const float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

double sk_latency_percentile(const sk_latency *l, double p)
{
    const int64_t k = l->n < SK_LATENCY_SAMPLES ? l->n : SK_LATENCY_SAMPLES;
    if (k == 0) return 0;
    float *v = malloc((size_t)k * sizeof *v);
    if (!v) return 0;
    memcpy(v, l->ms, (size_t)k * sizeof *v);
    qsort(v, (size_t)k, sizeof *v, cmp_float);
    /* nearest rank */
    int64_t r = (int64_t)ceil(p / 100.0 * (double)k) - 1;
    if (r < 0) r = 0;
    if (r >= k) r = k - 1;
    const double out = v[r];
    free(v);
    return out;
}

#ifndef SK_HAVE_FFMPEG
int sk_input_available(void) { return 0; }
sk_status sk_input_ffmpeg_open(sk_input *in)
{
    return SK_ERR(SK_E_UNSUPPORTED, "--input '%s': this build has no FFmpeg", in->src);
}
void sk_input_ffmpeg_close(sk_input *in) { (void)in; }
#endif
