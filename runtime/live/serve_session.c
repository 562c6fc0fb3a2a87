/* serve_session.c - one session's thread in `sinkstream serve`
 * (serve_sessions.h):
 *
 *   wait while paused; wait for the pace (real time: the next chunk starts
 *   when the video made so far, less one chunk's measured step time, has been
 *   due); sk_session_step -> the frame callback writes the frames into the
 *   live view and closes one fMP4 fragment (a "chunk" SSE event carries the
 *   wall time, so a browser measures decode -> display); the prompts due at
 *   this boundary get a "prompt" event with the video frame they took
 *   effect at; then sk_session_finish (files finalised) and close. */
#include "runtime/live/serve_sessions_impl.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/core/log.h"
#include "runtime/output/live_view.h"

/* ---- events */

void srv_event(srv_session *ss, const char *type, cJSON *d)
{
    if (sk_serve_event(ss->events, type, d) != SK_OK)
        SK_LOGW("serve: session %.8s: event '%s' lost: %s", ss->id, type, sk_error_message());
}

/* The engine's frame callback (the session's thread): frames into the live
 * view, one fragment per call, and a "chunk" event with the wall time. */
void srv_on_frames(void *user, const uint8_t *rgb, int64_t n, int64_t h, int64_t w,
                      int64_t first_frame)
{
    srv_session *ss = user;
    /* the frames' decode time: now, before the live view's encode (which is part of the
     * delay a viewer sees, docs/SERVER.md "The page") */
    const double t_decoded = srv_now_epoch_ms();
    if (ss->view) {
        sk_status st = SK_OK;
        for (int64_t i = 0; i < n && st == SK_OK; i++)
            st = sk_live_view_write_rgb24(ss->view, rgb + (size_t)i * (size_t)(h * w * 3));
        if (st == SK_OK) st = sk_live_view_flush(ss->view);
        if (st != SK_OK) SK_LOGW("serve: session %.8s: live view: %s", ss->id, sk_error_message());
    }
    pthread_mutex_lock(&ss->mu);
    ss->video_frames = first_frame + n;
    pthread_mutex_unlock(&ss->mu);
    cJSON *d = cJSON_CreateObject();
    cJSON_AddNumberToObject(d, "first_frame", (double)first_frame);
    cJSON_AddNumberToObject(d, "frames", (double)n);
    cJSON_AddNumberToObject(d, "t_ms", t_decoded);
    pthread_mutex_lock(&ss->mu); /* as of the previous chunk */
    cJSON_AddNumberToObject(d, "fps", round(ss->fps * 100) / 100);
    cJSON_AddNumberToObject(d, "lag_s", round(ss->lag_s * 1000) / 1000);
    pthread_mutex_unlock(&ss->mu);
    srv_event(ss, "chunk", d);
}

/* After a step that started at latent frame f: the prompts due there were
 * taken by the engine; the last queued of them is the one in effect. */
static void prompts_applied(srv_session *ss, int64_t f, double t_step)
{
    pthread_mutex_lock(&ss->mu);
    int last = -1, k = 0;
    for (int i = 0; i < ss->n_pend; i++)
        if (ss->pend[i].t_queued <= t_step && (ss->pend[i].latent < 0 || ss->pend[i].latent <= f))
            last = i;
    cJSON *applied = NULL;
    for (int i = 0; i < ss->n_pend; i++) {
        pending_prompt *pp = &ss->pend[i];
        if (!(pp->t_queued <= t_step && (pp->latent < 0 || pp->latent <= f))) {
            ss->pend[k++] = *pp; /* not due yet: keeps its place */
            continue;
        }
        cJSON *d = cJSON_CreateObject();
        cJSON_AddNumberToObject(d, "request", (double)pp->req);
        cJSON_AddStringToObject(d, "prompt", pp->text);
        cJSON_AddNumberToObject(d, "frame", (double)video_of_latent(f));
        cJSON_AddNumberToObject(d, "latent_frame", (double)f);
        cJSON_AddStringToObject(d, "mode", pp->cut ? "cut" : "switch");
        if (i == last) {
            snprintf(ss->prompt, sizeof ss->prompt, "%s", pp->text);
            ss->prompt_frame = video_of_latent(f);
            applied = d;
        } else { /* several due at one boundary: the engine applies the last queued */
            srv_event(ss, "prompt-superseded", d);
        }
        free(pp->text);
    }
    ss->n_pend = k;
    pthread_mutex_unlock(&ss->mu);
    if (applied) srv_event(ss, "prompt", applied);
}

/* Waits until t (monotonic) or a pause/stop; returns with ss->mu held. */
static void wait_until(srv_session *ss, double t)
{
    while (!ss->stop && !ss->paused) {
        double left = t - srv_now_mono();
        if (left <= 0) break;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        double wake = (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec + (left < 0.5 ? left : 0.5);
        ts.tv_sec = (time_t)wake;
        ts.tv_nsec = (long)((wake - (double)ts.tv_sec) * 1e9);
        pthread_cond_timedwait(&ss->cv, &ss->mu, &ts);
    }
}

void srv_set_state(srv_session *ss, const char *st)
{
    snprintf(ss->state, sizeof ss->state, "%s", st);
}

void *srv_session_main(void *arg)
{
    srv_session *ss = arg;
    sk_session *s = ss->s;
    const double fps = ss->p.fps;
    pthread_mutex_lock(&ss->mu);
    ss->t0 = srv_now_mono();
    pthread_mutex_unlock(&ss->mu);
    sk_status st = SK_OK;
    double prev_paused = 0, t_said = srv_now_mono();
    double hist_t[RATE_CHUNKS];
    int64_t hist_f[RATE_CHUNKS];
    int n_hist = 0;
    for (;;) {
        pthread_mutex_lock(&ss->mu);
        if (ss->paused && !ss->stop) {
            srv_set_state(ss, "paused");
            ss->pause_since = srv_now_mono();
            cJSON *d = cJSON_CreateObject();
            cJSON_AddNumberToObject(d, "frame", (double)ss->video_frames);
            pthread_mutex_unlock(&ss->mu);
            srv_event(ss, "paused", d);
            pthread_mutex_lock(&ss->mu);
            while (ss->paused && !ss->stop) pthread_cond_wait(&ss->cv, &ss->mu);
            ss->paused_total += srv_now_mono() - ss->pause_since;
            if (!ss->stop) {
                d = cJSON_CreateObject();
                cJSON_AddNumberToObject(d, "frame", (double)ss->video_frames);
                pthread_mutex_unlock(&ss->mu);
                srv_event(ss, "resumed", d);
                pthread_mutex_lock(&ss->mu);
            }
        }
        if (!ss->stop && ss->p.pace && ss->chunks > 0) {
            /* start the next chunk so it is ready when the video made so far has played */
            double due = ss->t0 + ss->paused_total + (double)ss->video_frames / fps - ss->step_est;
            wait_until(ss, due);
        }
        int stop = ss->stop, paused = ss->paused;
        if (!stop && !paused) srv_set_state(ss, "running");
        pthread_mutex_unlock(&ss->mu);
        if (stop) break;
        if (paused) continue;

        const double t_step = srv_now_mono();
        sk_step_info info;
        memset(&info, 0, sizeof info);
        st = sk_session_step(s, &info);
        const double t_done = srv_now_mono();
        if (st != SK_OK) break;
        if (info.n_frames > 0) prompts_applied(ss, info.first_frame, t_step);
        sk_session_status ses;
        sk_session_get_status(s, &ses);
        pthread_mutex_lock(&ss->mu);
        const double dt = t_done - t_step;
        ss->chunks++;
        ss->next_latent = ses.next_frame;
        ss->switches = ses.switches;
        ss->chunk_ms = 1e3 * dt;
        ss->step_est = ss->chunks == 1 ? dt : 0.7 * ss->step_est + 0.3 * dt;
        if (!ss->anchored && ss->video_frames > 0) {
            /* real time starts when the first frames exist, not when the first step
             * started: a viewer cannot show frame 0 before it is decoded, so a schedule
             * from the start would have every later chunk arrive the first step's time
             * (warm-up, the first encode) before the viewer needs it, and that time would
             * add to every frame's view delay */
            ss->anchored = 1;
            ss->t0 = t_done - ss->paused_total;
        }
        if (info.n_frames > 0 && dt > 0) /* what the device can make, pace aside */
            ss->gen_fps = (double)(video_of_latent(info.first_frame + info.n_frames) -
                                   video_of_latent(info.first_frame)) / dt;
        /* delivered rate: video frames per wall second over the last RATE_CHUNKS chunk
         * ends (a pause starts the window again) */
        if (ss->paused_total != prev_paused) n_hist = 0;
        prev_paused = ss->paused_total;
        if (n_hist == RATE_CHUNKS) {
            memmove(hist_t, hist_t + 1, sizeof hist_t[0] * (RATE_CHUNKS - 1));
            memmove(hist_f, hist_f + 1, sizeof hist_f[0] * (RATE_CHUNKS - 1));
            n_hist--;
        }
        hist_t[n_hist] = t_done;
        hist_f[n_hist++] = ss->video_frames;
        if (n_hist >= 2 && hist_t[n_hist - 1] > hist_t[0])
            ss->fps = (double)(hist_f[n_hist - 1] - hist_f[0]) / (hist_t[n_hist - 1] - hist_t[0]);
        const double wall = t_done - ss->t0 - ss->paused_total;
        ss->lag_s = ss->p.pace ? fmax(0.0, wall - (double)ss->video_frames / fps) : 0;
        const int say = t_done - t_said >= 10.0;
        if (say) { /* progress on stderr, every 10 s per session */
            t_said = t_done;
            SK_LOGI("serve: session %.8s: frame %lld, %.1f fps (device %.1f), chunk %.0f ms%s%.1f s "
                    "behind real time", ss->id, (long long)ss->video_frames, ss->fps, ss->gen_fps,
                    ss->chunk_ms, ss->p.pace ? ", " : ", unpaced, ", ss->lag_s);
        }
        pthread_mutex_unlock(&ss->mu);
        if (info.done) break;
    }
    sk_step_info fin;
    sk_status fst = sk_session_finish(s, &fin);
    if (st == SK_OK) st = fst;
    sk_live_view_finish(ss->view);
    pthread_mutex_lock(&ss->mu);
    if (st != SK_OK) {
        snprintf(ss->error, sizeof ss->error, "%s", sk_error_message());
        srv_set_state(ss, "failed");
        SK_LOGE("serve: session %.8s failed: %s", ss->id, ss->error);
    } else {
        srv_set_state(ss, ss->stop ? "stopped" : "done");
    }
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "state", ss->state);
    cJSON_AddNumberToObject(d, "frames", (double)ss->video_frames);
    if (st != SK_OK) cJSON_AddStringToObject(d, "message", ss->error);
    const int failed = st != SK_OK;
    pthread_mutex_unlock(&ss->mu);
    if (failed) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "message", ss->error);
        srv_event(ss, "session-error", e);
    }
    srv_event(ss, "end", d);
    sk_fanout_close(ss->events);
    SK_LOGI("serve: session %.8s %s after %lld video frames", ss->id, ss->state,
            (long long)ss->video_frames);
    pthread_mutex_lock(&ss->api_mu);
    sk_session_close(&ss->s);
    pthread_mutex_unlock(&ss->api_mu);
    pthread_mutex_lock(&ss->m->mu);
    ss->m->active--;
    pthread_mutex_unlock(&ss->m->mu);
    return NULL;
}

int srv_ended(srv_session *ss)
{
    return !strcmp(ss->state, "done") || !strcmp(ss->state, "stopped") ||
           !strcmp(ss->state, "failed");
}
