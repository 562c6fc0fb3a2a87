/* output.h - output sinks: where decoded frames go as they are produced.
 *
 * A frame is RGB float32 in [0, 1], planar [3, H, W] (channel-major, as the
 * TAEHV decoder produces it). Every sink converts a sample the same way:
 * clamp to [0, 1] (NaN -> 0), then uint8 = round(x * 255) (round half up).
 * The raw-RGB sink keeps the floats as they are.
 *
 * Sinks (sk_output_kind), picked from the path unless params.kind says so:
 *   "*.mp4" | "*.mkv" | "*.mov"  -> FFmpeg file (libx264 yuv420p by default); with
 *                                   FFmpeg, any extension libavformat can mux
 *                                   (.webm, .gif, .ts, .flv, .avi, ...): the codec
 *                                   is then libx264 when the container takes
 *                                   H.264, else the container's default
 *   "rtmp://..." | "rtmps://..." -> FFmpeg FLV over RTMP (live; every blocking
 *                                   call bounded by params.timeout_ms; reconnects
 *                                   with backoff when the server goes away)
 *   "srt://..." | "udp://..."    -> FFmpeg MPEG-TS over SRT (caller mode; needs a
 *                                   libavformat built with libsrt) or UDP; live like
 *                                   RTMP (UDP is connectionless: nothing to reconnect)
 *   "*.m3u8"                     -> FFmpeg HLS: the playlist and its MPEG-TS segments
 *                                   (2 s, on keyframes) in the playlist's directory
 *                                   (created), paced like RTMP; #EXT-X-ENDLIST at close
 *   "*.safetensors"              -> raw frames: tensor `frames` [T, 3, H, W] f32
 *   a directory (existing, or the path ends in '/'), or kind = PNG_DIR
 *                                -> DIR/frame_000000.png, frame_000001.png, ...
 * Several sinks at once ("tee"): sk_output_open_multi.
 *
 * Ownership and lifetime:
 *   - sk_output_open copies everything it needs from params (strings too).
 *   - sk_output_write copies/encodes the frame before returning: the caller may
 *     reuse its buffer at once.
 *   - sk_output_close finalises (encoder flushed, trailer written, PNG/safetensors
 *     files complete) and frees; it always frees, even when finalising fails, and
 *     NULLs the pointer. Accepts NULL / *o == NULL (returns SK_OK).
 * Errors: every function returns sk_status; the message (sk_error_message())
 * names the path and, for FFmpeg failures, carries FFmpeg's own text
 * (av_err2str). Build without FFmpeg: video/RTMP sinks give SK_E_UNSUPPORTED.
 * Not thread-safe: one thread drives one sk_output (queue_frames > 0 adds a
 * private worker thread per sink; the caller still uses one thread).
 */
#ifndef SK_OUTPUT_H
#define SK_OUTPUT_H

#include <stddef.h>
#include <stdint.h>

#include "runtime/core/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    SK_OUTPUT_AUTO = 0,        /* detect from the path (see above)               */
    SK_OUTPUT_VIDEO_FILE,      /* FFmpeg container file, format from the extension */
    SK_OUTPUT_RTMP,            /* FFmpeg FLV muxer over rtmp:// (live)           */
    SK_OUTPUT_PNG_DIR,         /* one PNG per frame in a directory (--frames-dir) */
    SK_OUTPUT_RGB_SAFETENSORS, /* `frames` [T, 3, H, W] f32 (--rgb-out)          */
    SK_OUTPUT_SRT,             /* FFmpeg MPEG-TS over srt:// (live, caller mode)  */
    SK_OUTPUT_UDP,             /* FFmpeg MPEG-TS over udp:// (live)               */
    SK_OUTPUT_HLS,             /* FFmpeg HLS playlist + segments (*.m3u8, paced)  */
    SK_OUTPUT_KIND_COUNT_
} sk_output_kind;

/* yuv420p (and any 2x2-subsampled pix_fmt) needs even width and height. */
typedef enum {
    SK_OUTPUT_ODD_ERROR = 0, /* default: open fails, the message suggests the even size */
    SK_OUTPUT_ODD_PAD,       /* encode at the next even size, replicating the last
                              * column/row (no black bar); the video is then
                              * (W+W%2) x (H+H%2) */
} sk_output_odd_policy;

#define SK_OUTPUT_CRF_LOSSLESS (-1) /* crf = 0 (since 0 in the struct means "default") */

/* Zero-initialised params are valid once path, width and height are set:
 * every 0 / NULL field means "the default" written beside it. */
typedef struct {
    const char *path;           /* file, URL or directory (required)                    */
    sk_output_kind kind;        /* AUTO: detect from path                               */
    int width, height;          /* frame size in pixels (required, 1..16384)            */
    int fps_num, fps_den;       /* frame rate num/den; 0 -> 16/1 (Wan 2.1's rate)       */
    int crf;                    /* 0 -> the encoder's default (x264: 23); 1..63 as the
                                 * codec takes it; SK_OUTPUT_CRF_LOSSLESS -> crf 0, which
                                 * is lossless for x264 (FFmpeg's meaning)              */
    const char *preset;         /* NULL -> the encoder's default (x264: "medium")       */
    const char *tune;           /* NULL -> none for files, "zerolatency" for RTMP       */
    const char *codec;          /* NULL -> libx264 if the container takes H.264, else the
                                 * container's default (any FFmpeg video encoder name)  */
    const char *pix_fmt;        /* NULL -> yuv420p, or the codec's nearest to RGB24 when
                                 * it cannot take yuv420p (gif)                         */
    int gop;                    /* keyframe interval in frames; 0 -> encoder default for
                                 * files, 2 seconds for RTMP                            */
    sk_output_odd_policy odd;   /* odd width/height with a subsampled pix_fmt           */
    int timeout_ms;             /* bound on each blocking network call; 0 -> 10000 for
                                 * RTMP, none for files; <0 -> none                     */
    const volatile int *abort_flag; /* optional: when *abort_flag != 0 any blocking
                                 * FFmpeg I/O returns at once (e.g. set by SIGINT)       */
    int queue_frames;           /* 0: write encodes before returning. N > 0: a worker
                                 * thread per sink does the conversion/encoding/I/O;
                                 * write copies the frame into one of N preallocated
                                 * slots and blocks only when all N are waiting. A
                                 * worker's error is returned by the next write or by
                                 * close. Lets the GPU loop run on while x264 works.    */
    int pace;                   /* 1: frames leave at wall-clock speed, frame k at
                                 * t0 + k / fps (t0: when the first frame is taken). The
                                 * worker waits when frames come early; a late frame goes
                                 * at once and the clock restarts from it (never a burst
                                 * to catch up). Needs a queue: queue_frames 0 -> 16.   */
    int reconnect_max_ms;       /* RTMP: when the connection breaks after open, frames are
                                 * dropped and the connection is retried with a backoff of
                                 * 250 ms doubling up to this; each attempt is bounded by
                                 * timeout_ms. 0 -> 8000; < 0 -> no reconnect: the write
                                 * fails with SK_E_NET                                   */
    int fragment_ms;            /* files: crash safety. .mp4/.mov are fragmented MP4
                                 * (empty moov, a fragment at each keyframe and at least
                                 * every fragment_ms), .mkv closes a cluster every
                                 * fragment_ms, so a killed process leaves a file that
                                 * plays up to the last fragment. 0 -> 1000; < 0 -> off
                                 * (mp4: one moov written at close)                      */
    int64_t bitrate;            /* target bits/s (FFmpeg -b:v); 0 -> none (crf decides)  */
    int64_t maxrate, bufsize;   /* rate cap and its VBV buffer (-maxrate / -bufsize, bits
                                 * per second / bits); 0 -> none. Streaming services ask
                                 * for a cap: maxrate needs bufsize                     */
    const char *const *metadata;/* NULL, or "key", "value", ..., NULL: container tags
                                 * (ffprobe -show_entries format_tags) and PNG tEXt
                                 * chunks; copied at open                               */
    const char *const *tee;     /* video file / RTMP: NULL, or more files (NULL-ended)
                                 * that get the very same packets through libavformat's
                                 * tee muxer (one encode). A branch that fails is dropped
                                 * with a warning and the others go on; no reconnect
                                 * then (a broken RTMP branch stays dropped)            */
    int hls_list_size;          /* HLS: 0 -> every segment stays in the playlist (a recording);
                                 * N > 0 -> the last N segments only, older ones deleted
                                 * (an unbounded live stream keeps its disk use bounded)  */
} sk_output_params;

/* Counters of a sink (sk_output_get_stats); for a tee, the first sink's. */
typedef struct {
    int64_t frames;             /* frames given to the sink (sk_output_frames) */
    int64_t sent;               /* frames encoded into a connected / open output */
    int64_t dropped;            /* frames dropped while a live connection was down */
    int reconnects;             /* live connections re-established */
    int connected;              /* live: the connection is up now (files: 1) */
    int queued;                 /* frames waiting in the queue */
    /* pacing (pace = 1) */
    int64_t late_frames;        /* frames that left after their time (clock restarted) */
    double lag_ms;              /* how late the last frame left (0: on time) */
    double max_lag_ms;
    double stall_ms;            /* total time the clock was pushed back by late frames */
    double jitter_mean_ms;      /* on-time frames: mean |send time - due time| */
    double jitter_max_ms;
} sk_output_stats;

typedef struct sk_output sk_output;

/* "video-file", "rtmp", "png-dir", "rgb-safetensors", "srt", "udp", "hls" ("auto" for AUTO). */
const char *sk_output_kind_name(sk_output_kind k);

/* Live kinds (RTMP, SRT, UDP, HLS): paced to the clock, tune zerolatency, a keyframe every
 * 2 s, no B-frames. Network kinds (RTMP, SRT, UDP): every call bounded by timeout_ms,
 * reconnect with backoff. */
int sk_output_kind_is_live(sk_output_kind k);
int sk_output_kind_is_net(sk_output_kind k);

/* The kind a path gets under SK_OUTPUT_AUTO. SK_E_INVALID_ARG (message lists the
 * accepted forms) when the path fits none. Checks the file system only to see
 * whether path is an existing directory. */
sk_status sk_output_detect_kind(const char *path, sk_output_kind *out);

/* Parses a frame rate for the CLI: "16", "30000/1001" or "29.97" (decimals are
 * turned into num/1000 and reduced: "29.97" -> 2997/100, "23.976" -> 2997/125).
 * SK_E_INVALID_ARG naming the text when it is not a positive rate <= 1000. */
sk_status sk_output_parse_fps(const char *s, int *num, int *den);

/* 1 if this build's libavformat can mux path's extension (0 without FFmpeg). */
int sk_output_ffmpeg_can_mux(const char *path);

/* Parses a bit rate for the CLI: "2500000", "2500k", "2.5M" (k = 1000).
 * SK_E_INVALID_ARG naming what (the flag) when it is not a positive rate. */
sk_status sk_output_parse_bitrate(const char *what, const char *s, int64_t *out);

/* 1 if this build can write kind (video/RTMP need FFmpeg, PNG needs stb). */
int sk_output_kind_available(sk_output_kind k);

/* Opens one sink. Validates the params, creates the file / directory / connection
 * (RTMP connects here) and, for video, opens the encoder and writes the header,
 * so that a bad path, codec, preset or size fails here and not at the first
 * frame. On failure *out is NULL and nothing is left open (a half-made video
 * file is removed). */
sk_status sk_output_open(const sk_output_params *p, sk_output **out);

/* Tee: one sk_output that writes every frame to n sinks (n >= 1) in order. All
 * must have the same width and height. On failure none is left open. */
sk_status sk_output_open_multi(const sk_output_params *ps, int n, sk_output **out);

/* Writes one frame, rgb = [3, H, W] f32 (H, W as opened). For a tee, the first
 * failing sink's error is returned (the later sinks do not get this frame). */
sk_status sk_output_write(sk_output *o, const float *rgb);

/* Writes t frames stored back to back: rgb = [t, 3, H, W] f32. */
sk_status sk_output_write_frames(sk_output *o, const float *rgb, int t);

/* Frames accepted by write so far (with queue_frames > 0 some may still be queued). */
int64_t sk_output_frames(const sk_output *o);
/* The path / URL as opened (for a tee, the first sink's); valid until close. */
const char *sk_output_path(const sk_output *o);
sk_output_kind sk_output_get_kind(const sk_output *o); /* first sink's kind for a tee */

/* Fills *st (zeros when o is NULL). Safe while a queue worker runs. */
void sk_output_get_stats(const sk_output *o, sk_output_stats *st);

/* Finalises and frees (see above). Returns the first finalising error. */
sk_status sk_output_close(sk_output **o);

/* The conversion every 8-bit sink uses: planar f32 [3, h, w] -> packed RGB24
 * rows of dst_stride bytes. Clamp to [0, 1], NaN -> 0, round(x * 255). */
/* Routes libav's log through sinkstream's (once; every libav user calls it first: outputs,
 * the live view, runtime/input; FFmpeg builds only). */
void sk_output_quiet_libav(void);
void sk_rgb_planar_to_rgb24(const float *src, int w, int h, uint8_t *dst, size_t dst_stride);

#ifdef __cplusplus
}
#endif
#endif
