/* output_impl.h - private: the per-sink function table behind output.h.
 * Only runtime/output/output*.c include this. Each sink's open fills o->vt and o->impl;
 * output.c owns the sk_output struct itself, its path copy and the tee. */
#ifndef SK_OUTPUT_IMPL_H
#define SK_OUTPUT_IMPL_H

#include "runtime/output/output.h"

typedef struct {
    /* One frame [3, H, W] f32. Called only between a successful open and close. */
    sk_status (*write)(sk_output *o, const float *rgb);
    /* Finalise and free o->impl (always frees, even when it fails). Called once. */
    sk_status (*close)(sk_output *o);
    /* Optional: counters (called from the thread that writes, or under the queue's lock). */
    void (*stats)(const sk_output *o, sk_output_stats *st);
} sk_output_vtbl;

struct sk_output {
    sk_output_kind kind;
    char *path;               /* owned copy */
    int width, height;        /* frame size the caller writes */
    int64_t frames;           /* frames written successfully */
    const sk_output_vtbl *vt; /* NULL for a tee */
    void *impl;
    int n_children;           /* tee: > 0 */
    sk_output **children;
};

/* Sink constructors: p has its defaults resolved and is validated for
 * size/path; on failure they free what they made and leave o->impl NULL. */
sk_status sk_output_ffmpeg_open(sk_output *o, const sk_output_params *p);
sk_status sk_output_png_open(sk_output *o, const sk_output_params *p);
sk_status sk_output_rgb_open(sk_output *o, const sk_output_params *p);

/* Wraps an opened sink `inner` (taken over, also on failure) in a worker thread
 * with `slots` preallocated frame buffers (output_async.c). */
sk_status sk_output_async_wrap(sk_output *inner, int slots, const sk_output_params *p,
                               sk_output **out);

/* Routes libav's log through ours, at our level (once per process; output_ffmpeg.c;
 * FFmpeg builds only). */
void sk_output_quiet_libav(void);

/* mkdir -p; message names the component that failed. */
sk_status sk_output_mkdirs(const char *dir);

#endif
