/* input_impl.h - what is behind sk_input (runtime/input/input.h): the frame queue
 * shared by the FFmpeg reader thread (ffmpeg_input.c) and the consumer (input.c). */
#ifndef SK_INPUT_IMPL_H
#define SK_INPUT_IMPL_H

#include <pthread.h>

#include "runtime/input/input.h"

struct sk_input {
    sk_input_opts o;
    char *src;
    int64_t W, H;
    size_t fbytes;             /* W * H * 3 */
    pthread_mutex_t mu;
    pthread_cond_t cv;         /* the queue changed / the input ended */
    uint8_t *q;                /* [cap][H][W][3] RGB */
    double *q_t;               /* [cap] arrival */
    int cap, head, count;
    int ended;                 /* the reader is done (see err) */
    sk_status err;             /* SK_OK: a clean end */
    volatile int interrupted;  /* sk_input_interrupt */
    const volatile int *stop;  /* optional external stop flag, polled by waits */
    int live;                  /* never block the reader: drop the oldest when full */
    sk_input_stats st;         /* under mu */
    /* synthetic */
    int synthetic;
    int64_t syn_max, syn_i;
    double syn_t0;
    /* FFmpeg (ffmpeg_input.c) */
    void *ff;
    pthread_t th;
    int have_thread;
};

/* The reader hands over one resampled frame (RGB HWC at the model size). Blocks while the
 * queue is full unless live (then the oldest is dropped). 1 when the input was
 * interrupted (stop reading), else 0. */
int sk_input_put(sk_input *in, const uint8_t *rgb, double arrival);
/* The reader ends: st SK_OK for a clean end, else the error (message as formatted). */
void sk_input_end(sk_input *in, sk_status st, const char *fmt, ...);
/* 1 when reads and the reader should give up (interrupted or the stop flag set). */
int sk_input_stopping(const sk_input *in);

/* ffmpeg_input.c */
sk_status sk_input_ffmpeg_open(sk_input *in);   /* opens, starts the reader thread */
void sk_input_ffmpeg_close(sk_input *in);       /* joins the thread, frees */

#endif
