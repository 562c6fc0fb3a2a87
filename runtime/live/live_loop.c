/* live_loop.c - see live_loop.h. */
#include "runtime/live/live_loop.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/core/log.h"
#include "runtime/core/progress.h"

sk_status gen_live_start(gen_live *lv, const gen_live_opts *o, const sk_st_file *emb,
                         int have_text, int64_t frames_total, int64_t chunk, int fps,
                         const volatile int *stop_flag)
{
    memset(lv, 0, sizeof *lv);
    lv->o = o;
    lv->stop_flag = stop_flag;
    lv->fps = fps > 0 ? fps : 16;
    lv->chunk = chunk;
    lv->frames_total = frames_total;
    lv->t_start = sk_progress_now();
    lv->paused = o->start_paused;
    if (lv->paused) lv->t_paused = lv->t_start;
    if (!o->control_stdin && o->control_port < 0) return SK_OK;
    const char **names = NULL;
    int n = 0;
    if (emb && emb->n_tensors > 0) {
        names = calloc((size_t)emb->n_tensors, sizeof *names);
        SK_CHECK(names, SK_E_OOM, "control: out of memory");
        for (int i = 0; i < emb->n_tensors; i++) names[n++] = emb->tensors[i].name;
    }
    sk_control_params cp = {.accept_text = have_text, .embeds = names, .n_embeds = n};
    sk_status st = sk_control_create(&cp, &lv->ctl);
    free(names);
    SK_TRY(st);
    if (o->control_port >= 0) {
        sk_control_http_params hp = {.bind = o->control_bind, .port = o->control_port,
                                     .token = o->control_token,
                                     .max_body = o->max_body > 0 ? (size_t)o->max_body : 0};
        SK_TRY(sk_control_http_start(lv->ctl, &hp));
        /* machine-readable for scripts that pass --control-port 0 */
        fprintf(stderr, "sinkstream: control: listening on port %d\n",
                sk_control_http_port(lv->ctl));
    }
    if (o->control_stdin) {
        SK_TRY(sk_control_stdin_start(lv->ctl, 0));
        SK_LOGI("control: reading commands from stdin (%s)",
                "prompt TEXT | embeds NAME | pause | resume | step [N] | stop | status | help");
    }
    if (lv->paused) SK_LOGI("control: paused before the first chunk (--start-paused)");
    return SK_OK;
}

void gen_live_finish(gen_live *lv)
{
    if (lv->ctl) {
        sk_ctl_status st;
        sk_control_get_status(lv->ctl, &st);
        snprintf(st.state, sizeof st.state, "done");
        sk_control_publish(lv->ctl, &st);
    }
    sk_ctl_cmd_free(&lv->pend);
    sk_control_free(&lv->ctl);
}

static void publish(gen_live *lv, const sk_stream *s, const sk_output *out, int64_t vframes)
{
    if (!lv->ctl) return;
    sk_ctl_status st;
    memset(&st, 0, sizeof st);
    const double now = sk_progress_now();
    snprintf(st.state, sizeof st.state, "%s",
             lv->stopping ? "stopping" : lv->paused && lv->steps_left == 0 ? "paused" : "running");
    st.frame = s->next_frame;
    st.frames_total = lv->frames_total;
    st.chunk = s->p.chunk_frames;
    st.chunks = lv->chunks;
    st.video_frames = vframes;
    st.steps_left = lv->steps_left;
    if (lv->ring_n >= 2) {
        int a = (lv->ring_n - 1) % 8, b = lv->ring_n > 8 ? lv->ring_n % 8 : 0;
        double dt = lv->ring_t[a] - lv->ring_t[b];
        if (dt > 0) st.fps = (double)(lv->ring_vf[a] - lv->ring_vf[b]) / dt;
    }
    st.target_fps = lv->fps;
    double active = now - lv->t_start - lv->paused_total - (lv->t_paused > 0 ? now - lv->t_paused
                                                                              : 0);
    int64_t made = s->next_frame > 0 ? 4 * s->next_frame - 3 : 0;
    double lag = active - (double)made / lv->fps;
    st.lag_ms = lag > 0 ? lag * 1e3 : 0;
    st.uptime_s = now - lv->t_start;
    st.t_start = lv->t_start;
    st.prompt_id = lv->prompt_id;
    snprintf(st.prompt_kind, sizeof st.prompt_kind, "%s", lv->prompt_kind);
    snprintf(st.prompt, sizeof st.prompt, "%s", lv->prompt);
    st.prompt_since = lv->prompt_since;
    snprintf(st.kv_policy, sizeof st.kv_policy, "%s", sk_kv_policy_name(s->kv->p.policy));
    st.kv_window = s->kv->p.window_frames;
    st.kv_sink = s->kv->p.sink_frames;
    st.kv_cached = s->kv->p.tokens_per_frame > 0
                       ? sk_kv_local_end(s->kv) / s->kv->p.tokens_per_frame : 0;
    snprintf(st.recache, sizeof st.recache, "%s",
             s->p.recache == SK_RECACHE_OFF ? "off"
             : s->p.recache == SK_RECACHE_WITH_SINK ? "sink" : "on");
    st.switches = lv->switches;
    st.last_switch_id = lv->last_switch_id;
    st.last_switch_frame = lv->last_switch_frame;
    st.last_switch_ms = lv->last_switch_ms;
    st.last_recache_ms = lv->last_recache_ms;
    st.last_recache_from = s->rec_f0;
    st.last_recache_n = s->rec_n;
    if (out) {
        sk_output_stats os;
        sk_output_get_stats(out, &os);
        snprintf(st.output, sizeof st.output, "%s", sk_output_kind_name(sk_output_get_kind(out)));
        st.out_connected = os.connected;
        st.out_reconnects = os.reconnects;
        st.out_sent = os.sent;
        st.out_dropped = os.dropped;
        st.out_lag_ms = os.lag_ms;
        st.out_stall_ms = os.stall_ms;
    }
    snprintf(st.last_error, sizeof st.last_error, "%s", lv->last_error);
    memcpy(st.in_state, lv->input.in_state, sizeof st.in_state);
    memcpy(st.in_kind, lv->input.in_kind, sizeof st.in_kind);
    st.in_frames = lv->input.in_frames;
    st.in_dropped = lv->input.in_dropped;
    st.in_repeated = lv->input.in_repeated;
    st.in_skipped = lv->input.in_skipped;
    st.in_reconnects = lv->input.in_reconnects;
    st.in_strength = lv->input.in_strength;
    st.in_start_step = lv->input.in_start_step;
    st.in_latency_p50_ms = lv->input.in_latency_p50_ms;
    st.in_latency_p99_ms = lv->input.in_latency_p99_ms;
    sk_control_publish(lv->ctl, &st);
}

static void set_paused(gen_live *lv, int paused, int64_t frame)
{
    if (paused == lv->paused) return;
    const double now = sk_progress_now();
    lv->paused = paused;
    if (paused) {
        lv->t_paused = now;
        SK_LOGI("control: paused at latent frame %lld", (long long)frame);
    } else {
        if (lv->t_paused > 0) lv->paused_total += now - lv->t_paused;
        lv->t_paused = 0;
        SK_LOGI("control: resumed at latent frame %lld", (long long)frame);
    }
}

int gen_live_boundary(gen_live *lv, const sk_stream *s, const sk_output *out, int64_t vframes)
{
    for (;;) {
        const int flag = lv->stop_flag && __atomic_load_n(lv->stop_flag, __ATOMIC_ACQUIRE);
        if (flag || (lv->ctl && sk_control_stop_requested(lv->ctl))) {
            if (!lv->stopping) /* the flag: a signal handler or sk_session_stop */
                SK_LOGI("%s: stopping at latent frame %lld", flag ? "signal" : "control",
                        (long long)s->next_frame);
            lv->stopping = 1;
            publish(lv, s, out, vframes);
            return 1;
        }
        if (!lv->ctl) return 0;
        /* commands queued after a `step` wait until its chunks are done */
        sk_ctl_cmd c;
        while (lv->steps_left == 0 && sk_control_pop(lv->ctl, &c)) {
            switch (c.kind) {
            case SK_CTL_PAUSE: set_paused(lv, 1, s->next_frame); break;
            case SK_CTL_RESUME: set_paused(lv, 0, s->next_frame); break;
            case SK_CTL_STEP:
                set_paused(lv, 0, s->next_frame); /* paused again after the steps */
                lv->steps_left = c.n;
                SK_LOGI("control: step %lld chunk(s) from latent frame %lld", (long long)c.n,
                        (long long)s->next_frame);
                break;
            case SK_CTL_PROMPT:
            case SK_CTL_EMBEDS:
                if (lv->pend.kind != SK_CTL_NONE) {
                    SK_LOGI("control: command #%llu replaces #%llu before it applied",
                            (unsigned long long)c.id, (unsigned long long)lv->pend.id);
                    sk_ctl_cmd_free(&lv->pend);
                }
                lv->pend = c;
                c.arg = NULL;
                break;
            default: break; /* stop: seen through the flag */
            }
            sk_ctl_cmd_free(&c);
        }
        if (lv->paused && lv->steps_left == 0) {
            publish(lv, s, out, vframes);
            sk_control_wait(lv->ctl, 0.2);
            continue;
        }
        publish(lv, s, out, vframes);
        return 0;
    }
}

int gen_live_take_prompt(gen_live *lv, const sk_st_file *emb, gen_text *text,
                         const sk_dit_config *cfg, gen_prompt *out, uint64_t *id, double *t_recv)
{
    memset(out, 0, sizeof *out);
    if (lv->pend.kind == SK_CTL_NONE) return 0;
    sk_ctl_cmd c = lv->pend;
    memset(&lv->pend, 0, sizeof lv->pend);
    *id = c.id;
    *t_recv = c.t_recv;
    sk_status st = SK_OK;
    out->line = -1;
    if (c.kind == SK_CTL_EMBEDS) out->key = c.arg;
    else out->text = c.arg;
    c.arg = NULL;
    if (st == SK_OK) st = gen_prompt_resolve(out, emb, text);
    if (st == SK_OK) st = gen_prompt_fit(out, cfg);
    if (st != SK_OK) {
        snprintf(lv->last_error, sizeof lv->last_error, "command #%llu: %s",
                 (unsigned long long)c.id, sk_error_message());
        SK_LOGE("control: %s; the run goes on with the current prompt", lv->last_error);
        gen_prompt_free(out);
        return 0;
    }
    return 1;
}

void gen_live_initial(gen_live *lv, const gen_prompt *p)
{
    lv->prompt_id = 0;
    snprintf(lv->prompt_kind, sizeof lv->prompt_kind, "%s", p->key ? "embeds" : "text");
    snprintf(lv->prompt, sizeof lv->prompt, "%s", p->key ? p->key : p->text ? p->text : "");
    lv->prompt_since = 0;
}

sk_status gen_live_switch(gen_live *lv, sk_stream *s, const gen_prompt *p, uint64_t id,
                          double t_recv, const char *source)
{
    char d[96];
    gen_prompt_desc(p, d, sizeof d);
    const int64_t frame = s->next_frame;
    const double t0 = sk_progress_now();
    SK_TRY(sk_stream_switch_prompt(s, p->ctx, p->rows));
    /* the recache ran on the backend; wait for it so the time is real */
    SK_TRY(sk_backend_sync(s->be));
    const double t1 = sk_progress_now();
    gen_live_initial(lv, p);
    lv->prompt_id = id;
    lv->prompt_since = frame;
    if (frame == 0) return SK_OK; /* before the first chunk: no switch, no recache */
    lv->switches++;
    lv->last_switch_id = id;
    lv->last_switch_frame = frame;
    lv->last_recache_ms = (t1 - t0) * 1e3;
    if (id) {
        lv->last_switch_ms = (t1 - t_recv) * 1e3;
        SK_LOGI("prompt switch #%llu (%s: %s) applied at latent frame %lld, video frame %lld, "
                "%.1f ms after it arrived (recache %.1f ms)", (unsigned long long)id, source, d,
                (long long)frame, (long long)(4 * frame - 3), lv->last_switch_ms,
                lv->last_recache_ms);
    } else {
        lv->last_switch_ms = lv->last_recache_ms;
        SK_LOGI("prompt switch (%s: %s) at latent frame %lld, video frame %lld (recache %.1f ms)",
                source, d, (long long)frame, (long long)(4 * frame - 3), lv->last_recache_ms);
    }
    return SK_OK;
}

void gen_live_after_chunk(gen_live *lv, const sk_stream *s, const sk_output *out,
                          int64_t vframes)
{
    lv->chunks++;
    const int i = lv->ring_n % 8;
    lv->ring_t[i] = sk_progress_now();
    lv->ring_vf[i] = vframes > 0 ? vframes : 4 * s->next_frame - 3;
    lv->ring_n++;
    if (lv->steps_left > 0 && --lv->steps_left == 0) set_paused(lv, 1, s->next_frame);
    publish(lv, s, out, vframes);
}
