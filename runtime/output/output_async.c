/* output_async.c - a worker thread in front of one sink (params.queue_frames > 0).
 *
 * Why: converting and encoding a frame (x264 medium at 832x480: several ms)
 * should not stall the chunk loop that produced it. The caller's write copies
 * the frame into one of N slots allocated at open (no allocation per frame) and
 * returns; the worker feeds the slots to the real sink in order. Backpressure:
 * write blocks while all N slots are waiting.
 * Errors: the worker keeps the first failure (status + message, copied out of
 * its thread-local error context); the next write and close return it in the
 * caller's thread. After a failure the worker drops frames, so the caller never
 * blocks on a dead sink. Close drains the queue, joins, then closes the inner
 * sink from the caller's thread. Tested by tests/test_output.c (async_*).
 *
 * Pacing (params.pace, live output): the worker hands frame k to the sink at
 * t0 + k / fps on the monotonic clock, sleeping when it is early (the queue
 * then fills and the caller's write blocks: generation waits for real time).
 * A frame that is late goes at once and the clock restarts from it, so a slow
 * producer makes a slower stream (lag reported in the stats), never a burst.
 * The abort flag cuts the waits short (close then drains without pacing).
 * Stats: the worker copies the inner sink's counters under the lock after
 * each frame, so sk_output_get_stats is safe from the caller's thread. */
#include "runtime/output/output_impl.h"

#include "runtime/core/log.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    sk_output *inner;
    float *buf;           /* [slots, 3, H, W] */
    size_t per;           /* floats per frame */
    int slots, head, count;
    int closing;
    sk_status err;        /* first worker failure */
    char msg[1024];
    pthread_mutex_t mu;
    pthread_cond_t can_put, can_take;
    pthread_t th;
    /* pacing */
    int pace;
    double period;        /* seconds per frame */
    const volatile int *abort_flag;
    double t0;            /* clock origin: frame k0 is due at t0 */
    int64_t k, k0;        /* frames taken; frame index at t0 */
    double jit_sum;
    double warned_at;     /* mono_s() of the last falling-behind warning (0: none) */
    const char *name;     /* the inner sink's path, for that warning */
    int64_t jit_n;
    sk_output_stats st;   /* under mu */
} async_sink;

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int aborted(const async_sink *a) { return a->abort_flag && *a->abort_flag; }

/* Waits until the next frame is due (worker thread, lock not held). */
static void pace_wait(async_sink *a)
{
    double now = mono_s();
    if (a->k == 0) {
        a->t0 = now;
        a->k0 = 0;
    }
    const double due = a->t0 + (double)(a->k - a->k0) * a->period;
    double late = now - due;
    if (late > 0.002) { /* late: send now, restart the clock here */
        pthread_mutex_lock(&a->mu);
        a->st.late_frames++;
        a->st.lag_ms = late * 1e3;
        if (a->st.lag_ms > a->st.max_lag_ms) a->st.max_lag_ms = a->st.lag_ms;
        a->st.stall_ms += late * 1e3;
        const double stall = a->st.stall_ms;
        const int64_t lates = a->st.late_frames;
        pthread_mutex_unlock(&a->mu);
        /* a paced (live) output that falls behind says so while it runs, at most every
         * 5 s, once it is a tenth of a second behind in all */
        if (stall > 100 && (a->warned_at == 0 || now - a->warned_at > 5.0)) {
            a->warned_at = now;
            SK_LOGW("output '%s': behind real time: frame %lld left %.0f ms late; %.1f s of "
                    "stalls in %lld late frames so far (frames come slower than %.2f fps)",
                    a->name, (long long)a->k, late * 1e3, stall / 1e3, (long long)lates,
                    1.0 / a->period);
        }
        a->t0 = now;
        a->k0 = a->k;
        return;
    }
    while (now < due && !aborted(a)) { /* sleep in slices so an abort is seen */
        double t = due - now > 0.05 ? now + 0.05 : due;
        struct timespec ts = {.tv_sec = (time_t)t, .tv_nsec = (long)((t - floor(t)) * 1e9)};
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {}
        now = mono_s();
    }
    const double j = fabs(now - due) * 1e3;
    pthread_mutex_lock(&a->mu);
    a->st.lag_ms = 0;
    a->jit_sum += j;
    a->jit_n++;
    a->st.jitter_mean_ms = a->jit_sum / (double)a->jit_n;
    if (j > a->st.jitter_max_ms) a->st.jitter_max_ms = j;
    pthread_mutex_unlock(&a->mu);
}

static void *worker(void *arg)
{
    async_sink *a = arg;
    pthread_mutex_lock(&a->mu);
    for (;;) {
        while (a->count == 0 && !a->closing) pthread_cond_wait(&a->can_take, &a->mu);
        if (a->count == 0) break; /* closing and drained */
        const int idx = a->head;
        const int failed = a->err != SK_OK;
        pthread_mutex_unlock(&a->mu);
        if (a->pace && !failed) pace_wait(a);
        a->k++;
        /* slot idx is ours until count drops: the caller only fills free slots */
        sk_status s = failed ? SK_OK : sk_output_write(a->inner, a->buf + (size_t)idx * a->per);
        sk_output_stats in;
        sk_output_get_stats(a->inner, &in);
        pthread_mutex_lock(&a->mu);
        a->st.sent = in.sent;
        a->st.dropped = in.dropped;
        a->st.reconnects = in.reconnects;
        a->st.connected = in.connected;
        if (s != SK_OK && a->err == SK_OK) {
            a->err = s;
            snprintf(a->msg, sizeof a->msg, "%s", sk_error_message());
        }
        a->head = (a->head + 1) % a->slots;
        a->count--;
        pthread_cond_signal(&a->can_put);
    }
    pthread_mutex_unlock(&a->mu);
    return NULL;
}

/* Re-raises the worker's error in the caller's thread. Call with mu held. */
static sk_status raise_worker_error(async_sink *a, const char *path)
{
    char msg[sizeof a->msg];
    memcpy(msg, a->msg, sizeof msg);
    if (!msg[0]) return SK_ERR(a->err, "output '%s': the writer thread failed", path);
    return SK_ERR(a->err, "%s", msg);
}

static sk_status async_write(sk_output *o, const float *rgb)
{
    async_sink *a = o->impl;
    pthread_mutex_lock(&a->mu);
    while (a->count == a->slots && a->err == SK_OK) pthread_cond_wait(&a->can_put, &a->mu);
    if (a->err != SK_OK) {
        sk_status s = raise_worker_error(a, o->path);
        pthread_mutex_unlock(&a->mu);
        return s;
    }
    const int idx = (a->head + a->count) % a->slots;
    pthread_mutex_unlock(&a->mu);
    memcpy(a->buf + (size_t)idx * a->per, rgb, a->per * sizeof(float));
    pthread_mutex_lock(&a->mu);
    a->count++;
    pthread_cond_signal(&a->can_take);
    pthread_mutex_unlock(&a->mu);
    return SK_OK;
}

static void async_free(async_sink *a)
{
    pthread_mutex_destroy(&a->mu);
    pthread_cond_destroy(&a->can_put);
    pthread_cond_destroy(&a->can_take);
    free(a->buf);
    free(a);
}

static sk_status async_close(sk_output *o)
{
    async_sink *a = o->impl;
    o->impl = NULL;
    pthread_mutex_lock(&a->mu);
    a->closing = 1;
    pthread_cond_signal(&a->can_take);
    pthread_mutex_unlock(&a->mu);
    pthread_join(a->th, NULL);
    if (a->pace)
        SK_LOGI("output '%s': paced %lld frames at %.3f fps: on time %lld (wait error mean %.2f ms, "
                "max %.2f ms), late %lld (max %.1f ms, clock pushed back %.1f ms in all)", o->path,
                (long long)a->k, 1.0 / a->period, (long long)a->jit_n, a->st.jitter_mean_ms,
                a->st.jitter_max_ms, (long long)a->st.late_frames, a->st.max_lag_ms,
                a->st.stall_ms);
    sk_status s = sk_output_close(&a->inner); /* finalises even after a worker error */
    if (a->err != SK_OK) s = raise_worker_error(a, o->path); /* the first failure wins */
    async_free(a);
    return s;
}

static void async_stats(const sk_output *o, sk_output_stats *st)
{
    async_sink *a = o->impl;
    pthread_mutex_lock(&a->mu);
    *st = a->st;
    st->queued = a->count;
    pthread_mutex_unlock(&a->mu);
}

static const sk_output_vtbl k_async_vtbl = {async_write, async_close, async_stats};

sk_status sk_output_async_wrap(sk_output *inner, int slots, const sk_output_params *p,
                               sk_output **out)
{
    *out = NULL;
    sk_status st = SK_OK;
    sk_output *o = calloc(1, sizeof *o);
    async_sink *a = calloc(1, sizeof *a);
    if (!o || !a) { st = SK_ERR(SK_E_OOM, "output '%s': out of memory", inner->path); goto fail; }
    a->inner = inner;
    a->slots = slots;
    a->pace = p->pace;
    a->period = (double)p->fps_den / (double)p->fps_num;
    a->name = inner->path;
    a->abort_flag = p->abort_flag;
    a->st.connected = 1;
    a->per = 3 * (size_t)inner->width * (size_t)inner->height;
    a->buf = malloc((size_t)slots * a->per * sizeof(float));
    o->path = strdup(inner->path);
    if (!a->buf || !o->path) {
        st = SK_ERR(SK_E_OOM, "output '%s': out of memory for %d queued frames (%.1f MB)",
                    inner->path, slots, (double)slots * (double)a->per * 4.0 / 1e6);
        goto fail;
    }
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->can_put, NULL);
    pthread_cond_init(&a->can_take, NULL);
    int r = pthread_create(&a->th, NULL, worker, a);
    if (r != 0) {
        st = SK_ERR(SK_E_INTERNAL, "output '%s': cannot start the writer thread: %s", inner->path,
                    strerror(r));
        pthread_mutex_destroy(&a->mu);
        pthread_cond_destroy(&a->can_put);
        pthread_cond_destroy(&a->can_take);
        goto fail;
    }
    o->kind = inner->kind;
    o->width = inner->width;
    o->height = inner->height;
    o->vt = &k_async_vtbl;
    o->impl = a;
    *out = o;
    return SK_OK;
fail:
    if (o) free(o->path);
    free(o);
    if (a) free(a->buf);
    free(a);
    {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", sk_error_message());
        sk_output_close(&inner);
        return SK_ERR(st, "%s", msg);
    }
}
