/* input.h - a video source for video-to-video (docs/INPUTS.md): anything FFmpeg
 * opens (a file, rtmp:// srt:// udp:// http://, a V4L2 camera /dev/videoN, a
 * lavfi graph, "-" for stdin), read by a worker thread, resampled to the model's
 * rate and size, queued as RGB frames with their arrival times.
 *
 * Rate: each output slot k (time k / fps after the first frame) takes the source
 * frame nearest in presentation time (frames are dropped or repeated by
 * timestamp, never blended). Size: scaled to cover the model's frame keeping the
 * aspect ratio (libswscale, bicubic), then the centre cropped; no padding.
 *
 * Ends: a file, a pipe or a lavfi graph that ends ends the input (the consumer
 * gets the last frames, then end of stream). A network source (a URL with a
 * protocol) that drops or ends is reopened with backoff (250 ms doubling up to
 * reconnect_max_ms; 0: the drop is an error) while the state says "reconnecting".
 * Live sources (network, cameras) never block the reader: when the queue is full
 * the oldest frame is dropped (counted); files and pipes wait for the consumer.
 *
 * The synthetic source (sk_input_open_synthetic) makes frames in memory without
 * FFmpeg (bench --with-input): a moving pattern, arriving when they are read, or
 * in real time at fps (a camera).
 */
#ifndef SK_INPUT_H
#define SK_INPUT_H

#include <stdint.h>

#include "runtime/core/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    const char *format;   /* FFmpeg input format ("lavfi", "v4l2", "rawvideo", ...); NULL: probe.
                             A source "lavfi:GRAPH" sets lavfi */
    const char *options;  /* "key=value:key=value" demuxer/device options (video_size=...,
                             pixel_format=..., framerate=...); NULL: none */
    int64_t width, height;/* the model's frame size in pixels */
    int fps_num, fps_den; /* the model's rate */
    int realtime;         /* read a file or pipe at its own rate (as ffmpeg -re); live sources
                             always are */
    int timeout_ms;       /* network sources: bound on each read (0: 10000) */
    int reconnect_max_ms; /* network sources: backoff cap of the reconnect (0: a drop fails) */
    int queue_frames;     /* resampled frames held (0: 64) */
    int live_queue_frames;/* the same for live sources (network, cameras), whose oldest frames
                             are dropped when it is full: it bounds their latency (0:
                             queue_frames) */
} sk_input_opts;

typedef struct {
    char state[16];          /* "opening" "running" "reconnecting" "ended" "failed" */
    char kind[16];           /* "file" "pipe" "lavfi" "device" "network" "synthetic" */
    int64_t src_width, src_height;
    double src_fps;          /* the source's nominal rate (0: unknown) */
    int64_t decoded;         /* source frames decoded */
    int64_t frames;          /* resampled frames queued */
    int64_t repeated;        /* slots that reused a source frame (the source is slower) */
    int64_t skipped;         /* source frames no slot took (the source is faster) */
    int64_t dropped;         /* frames dropped because the queue was full (live sources) */
    int64_t decode_errors;   /* packets the decoder refused (corrupt data) */
    int reconnects;          /* reopened after a drop */
    double down_ms;          /* total time spent reconnecting */
    char error[256];         /* the error that ended the input ("" if none) */
} sk_input_stats;

typedef struct sk_input sk_input;

/* Opens src now (errors name the source: "--input 'x.mp4': cannot open: ...") and starts
 * the reader. */
sk_status sk_input_open(const char *src, const sk_input_opts *o, sk_input **out);
/* In-memory frames (no FFmpeg): frame i arrives when read, or with realtime at t0 + i / fps.
 * max_frames 0: unbounded. */
sk_status sk_input_open_synthetic(const sk_input_opts *o, int64_t max_frames, sk_input **out);
void sk_input_close(sk_input **in);

/* Waits for up to n frames: dst gets them as float [n, 3, H, W] in [0, 1], arrival[i] (may be
 * NULL) their arrival times (sk_progress_now clock). *got < n only at the end of the input
 * (then 0 once everything was read). Fails with the input's error (a corrupt file, a dropped
 * network source without reconnect), or SK_E_NET "interrupted" after sk_input_interrupt. */
sk_status sk_input_read(sk_input *in, float *dst, int64_t n, double *arrival, int64_t *got);
/* A flag (e.g. the session's stop flag) that ends waits when it becomes non-zero; polled
 * every 50 ms. NULL: none. Before the first read. */
void sk_input_set_stop(sk_input *in, const volatile int *flag);
/* Any thread: ends every wait of the input (reads return at once). */
void sk_input_interrupt(sk_input *in);
/* Any thread. */
void sk_input_get_stats(sk_input *in, sk_input_stats *out);
/* 1 when the build can open FFmpeg sources (and 2 when it has libavdevice: lavfi, v4l2). */
int sk_input_available(void);

/* ---- latency: an input frame's arrival to the same frame's output */
#define SK_LATENCY_RING 4096
#define SK_LATENCY_SAMPLES 8192
typedef struct {
    double arrival[SK_LATENCY_RING]; /* by input frame index % ring */
    int64_t n_in;                    /* input frames recorded */
    float ms[SK_LATENCY_SAMPLES];    /* the newest latencies, ring */
    int64_t n;                       /* latencies recorded */
    double max_ms, sum_ms;
} sk_latency;

/* Input frames [first, first + n) arrived at t[i]. */
void sk_latency_in(sk_latency *l, int64_t first, int64_t n, const double *t);
/* Output frames [first, first + n) left at `now`; output frame j is input frame j + shift
 * (3: the decoder trims its first 3 frames); frames without a recorded input are skipped. */
void sk_latency_out(sk_latency *l, int64_t first, int64_t n, int64_t shift, double now);
/* p in [0, 100] over the newest samples (0 when none). */
double sk_latency_percentile(const sk_latency *l, double p);

#ifdef __cplusplus
}
#endif
#endif
