/* live_view.h - a session's frames for web browsers, with low latency:
 *
 *   fragmented MP4 (H.264 constrained baseline, libx264 ultrafast/zerolatency,
 *   muxed by libavformat into memory through a custom AVIOContext): one init
 *   segment (ftyp + moov) and then one fragment (moof + mdat) per
 *   sk_live_view_flush, i.e. per generated chunk; every fragment starts with
 *   an IDR frame, so a browser may join at any fragment (Media Source
 *   Extensions append the init segment, then fragments as they come);
 *
 *   MJPEG (one JPEG per frame, for browsers without MSE): encoded only while
 *   someone watches (sk_live_view_mjpeg_watch), newest frame wins.
 *
 * Both go out through a fan-out ring (runtime/core/fanout.h): any number of
 * HTTP readers, none of which can stall the writer; a reader that falls
 * behind skips to the newest fragment. Frames are planar f32 RGB [3, H, W] in
 * [0, 1] as in output.h (same 8-bit conversion).
 *
 * Thread safety: one thread writes (write, flush, close); readers use the
 * fan-outs and the getters from any thread until sk_live_view_free.
 * Built with FFmpeg only; otherwise open returns SK_E_UNSUPPORTED.
 * Tested by tests/test_live_view.c. */
#ifndef SK_LIVE_VIEW_H
#define SK_LIVE_VIEW_H

#include <stddef.h>
#include <stdint.h>

#include "runtime/core/fanout.h"
#include "runtime/core/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int width, height;     /* required, even, 16..4096 */
    int fps_num, fps_den;  /* 0 -> 16/1 */
    int crf;               /* 0 -> 26 */
    int keep_fragments;    /* fragments kept for late readers; 0 -> 8 */
    size_t max_bytes;      /* bound on the bytes kept (fragments); 0 -> 32 MiB */
    int jpeg_quality;      /* MJPEG qscale 2 (best) .. 31; 0 -> 5 */
} sk_live_view_params;

typedef struct sk_live_view sk_live_view;

int sk_live_view_available(void);
sk_status sk_live_view_open(const sk_live_view_params *p, sk_live_view **out);

/* One frame [3, H, W] f32 (copied/encoded before returning). */
sk_status sk_live_view_write(sk_live_view *v, const float *rgb);
/* One frame as packed RGB24 [H, W, 3] (what the engine's frame callback gives). */
sk_status sk_live_view_write_rgb24(sk_live_view *v, const uint8_t *rgb);
/* Ends the current fragment (a chunk boundary): it goes to the readers now.
 * No-op when no frame was written since the last flush. */
sk_status sk_live_view_flush(sk_live_view *v);
/* Flushes, then closes the fan-outs: readers drain and see the end. */
sk_status sk_live_view_finish(sk_live_view *v);
void sk_live_view_free(sk_live_view **v); /* finishes too; accepts NULL */

/* 'video/mp4; codecs="avc1.PPCCLL"' for MediaSource.addSourceBuffer. */
const char *sk_live_view_mime(const sk_live_view *v);
/* A copy of the init segment (malloc'd, caller frees). */
sk_status sk_live_view_init_segment(sk_live_view *v, void **data, size_t *n);
sk_fanout *sk_live_view_fragments(sk_live_view *v);
sk_fanout *sk_live_view_jpegs(sk_live_view *v);
/* +1 when an MJPEG reader starts, -1 when it leaves. */
void sk_live_view_mjpeg_watch(sk_live_view *v, int delta);
int64_t sk_live_view_frames(const sk_live_view *v);

#ifdef __cplusplus
}
#endif
#endif
