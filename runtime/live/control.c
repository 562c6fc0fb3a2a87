/* control.c - the command queue, the status snapshot and the stdin reader of
 * live control (control.h). The HTTP server is control_http.c.
 * Tested by tests/test_live_control.c (unit) and tests/test_live_http.c. */
#include "runtime/live/control_impl.h"

#include "runtime/core/progress.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "runtime/core/log.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

const char *sk_ctl_kind_name(sk_ctl_kind k)
{
    switch (k) {
    case SK_CTL_PROMPT: return "prompt";
    case SK_CTL_EMBEDS: return "embeds";
    case SK_CTL_PAUSE: return "pause";
    case SK_CTL_RESUME: return "resume";
    case SK_CTL_STEP: return "step";
    case SK_CTL_STOP: return "stop";
    default: return "none";
    }
}

void sk_ctl_cmd_free(sk_ctl_cmd *c)
{
    if (!c) return;
    free(c->arg);
    c->arg = NULL;
}

sk_status sk_control_create(const sk_control_params *p, sk_control **out)
{
    SK_CHECK(p && out, SK_E_INVALID_ARG, "control: NULL argument");
    *out = NULL;
    sk_control *c = calloc(1, sizeof *c);
    SK_CHECK(c, SK_E_OOM, "control: out of memory");
    c->qcap = p->max_queue > 0 ? p->max_queue : 64;
    c->max_arg = p->max_arg_bytes > 0 ? p->max_arg_bytes : 16384;
    c->accept_text = p->accept_text;
    c->next_id = 1;
    atomic_init(&c->stop, 0);
    atomic_init(&c->in_quit, 0);
    c->q = calloc((size_t)c->qcap, sizeof *c->q);
    if (p->n_embeds > 0) c->embeds = calloc((size_t)p->n_embeds, sizeof *c->embeds);
    int ok = c->q && (p->n_embeds <= 0 || c->embeds);
    for (int i = 0; ok && i < p->n_embeds; i++) {
        c->embeds[i] = strdup(p->embeds[i]);
        ok = c->embeds[i] != NULL;
        c->n_embeds = i + 1;
    }
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    snprintf(c->st.state, sizeof c->st.state, "starting");
    if (!ok) {
        sk_control_free(&c);
        return SK_ERR(SK_E_OOM, "control: out of memory");
    }
    *out = c;
    return SK_OK;
}

void sk_control_free(sk_control **pc)
{
    if (!pc || !*pc) return;
    sk_control *c = *pc;
    *pc = NULL;
    if (c->http_stop) c->http_stop(c);
    if (c->in_running) {
        atomic_store(&c->in_quit, 1);
        pthread_join(c->in_th, NULL);
    }
    for (int i = 0; i < c->qn; i++) sk_ctl_cmd_free(&c->q[(c->qhead + i) % c->qcap]);
    for (int i = 0; i < c->n_embeds; i++) free(c->embeds[i]);
    free(c->embeds);
    free(c->q);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    free(c);
}

/* Validates a command's value (no lock needed: the settings are immutable). */
static sk_status check_cmd(sk_control *c, sk_ctl_kind k, const char *arg, int64_t n)
{
    switch (k) {
    case SK_CTL_PROMPT:
        SK_CHECK(c->accept_text, SK_E_UNSUPPORTED, "this run has no text encoder: a text prompt "
                 "cannot be encoded; start with --text-encoder, or switch with embeds NAME "
                 "(HTTP: {\"embeds\": NAME})");
        SK_CHECK(arg && *arg, SK_E_INVALID_ARG, "empty prompt");
        SK_CHECK(strlen(arg) <= c->max_arg, SK_E_INVALID_ARG, "prompt of %zu bytes is longer "
                 "than the limit of %zu", strlen(arg), c->max_arg);
        return SK_OK;
    case SK_CTL_EMBEDS: {
        SK_CHECK(arg && *arg, SK_E_INVALID_ARG, "empty embeds name");
        SK_CHECK(c->n_embeds > 0, SK_E_UNSUPPORTED, "this run has no --text-embeds file: "
                 "switch with a text prompt instead");
        for (int i = 0; i < c->n_embeds; i++)
            if (!strcmp(c->embeds[i], arg)) return SK_OK;
        char list[256] = "";
        for (int i = 0; i < c->n_embeds && strlen(list) < sizeof list - 40; i++) {
            size_t l = strlen(list);
            snprintf(list + l, sizeof list - l, "%s'%s'", i ? ", " : "", c->embeds[i]);
        }
        return SK_ERR(SK_E_INVALID_ARG, "no tensor '%.100s' in --text-embeds (it has %s%s)", arg,
                      list, c->n_embeds > 8 ? ", ..." : "");
    }
    case SK_CTL_STEP:
        SK_CHECK(n >= 1 && n <= 1000000, SK_E_INVALID_ARG, "step: %lld chunks; expected 1..1000000",
                 (long long)n);
        return SK_OK;
    case SK_CTL_PAUSE:
    case SK_CTL_RESUME:
    case SK_CTL_STOP: return SK_OK;
    default: return SK_ERR(SK_E_INVALID_ARG, "unknown command %d", (int)k);
    }
}

sk_status sk_control_push(sk_control *c, sk_ctl_kind k, const char *arg, int64_t n,
                          const char *source, uint64_t *id)
{
    if (id) *id = 0;
    SK_CHECK(c, SK_E_INVALID_ARG, "control: NULL");
    SK_TRY(check_cmd(c, k, arg, n));
    char *copy = NULL;
    if (arg && (k == SK_CTL_PROMPT || k == SK_CTL_EMBEDS)) {
        copy = strdup(arg);
        SK_CHECK(copy, SK_E_OOM, "control: out of memory");
    }
    pthread_mutex_lock(&c->mu);
    sk_status st = SK_OK;
    if (k == SK_CTL_STOP) {
        /* stop always gets through (issue 15 #5): it needs no queue slot, the
         * boundary sees the flag; a repeated stop is answered the same way */
        if (id) *id = c->next_id;
        c->next_id++;
        atomic_store(&c->stop, 1);
        pthread_cond_broadcast(&c->cv);
    } else if (atomic_load(&c->stop)) {
        st = SK_ERR(SK_E_UNSUPPORTED, "the run is stopping; no more commands are taken");
    } else if (c->qn == c->qcap) {
        st = SK_ERR(SK_E_OOM, "the command queue is full (%d waiting); try again after the next "
                    "chunk", c->qn);
    } else {
        sk_ctl_cmd *q = &c->q[(c->qhead + c->qn) % c->qcap];
        memset(q, 0, sizeof *q);
        q->kind = k;
        q->arg = copy;
        copy = NULL;
        q->n = n;
        q->id = c->next_id++;
        q->t_recv = now_s();
        snprintf(q->source, sizeof q->source, "%s", source ? source : "api");
        if (id) *id = q->id;
        c->qn++;
        pthread_cond_broadcast(&c->cv);
    }
    pthread_mutex_unlock(&c->mu);
    free(copy);
    return st;
}

int sk_control_http_code(sk_status s)
{
    switch (s) {
    case SK_OK: return 202;
    case SK_E_UNSUPPORTED: return 409;
    case SK_E_OOM: return 503;
    default: return 400;
    }
}

int sk_control_pop(sk_control *c, sk_ctl_cmd *out)
{
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&c->mu);
    int got = c->qn > 0;
    if (got) {
        *out = c->q[c->qhead];
        memset(&c->q[c->qhead], 0, sizeof c->q[c->qhead]);
        c->qhead = (c->qhead + 1) % c->qcap;
        c->qn--;
    }
    pthread_mutex_unlock(&c->mu);
    return got;
}

int sk_control_wait(sk_control *c, double timeout_s)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    double t = (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec + (timeout_s > 0 ? timeout_s : 0);
    ts.tv_sec = (time_t)t;
    ts.tv_nsec = (long)((t - (double)ts.tv_sec) * 1e9);
    pthread_mutex_lock(&c->mu);
    while (c->qn == 0 && !atomic_load(&c->stop)) {
        if (pthread_cond_timedwait(&c->cv, &c->mu, &ts) == ETIMEDOUT) break;
    }
    int n = c->qn;
    pthread_mutex_unlock(&c->mu);
    return n > 0;
}

int sk_control_stop_requested(sk_control *c) { return c && atomic_load(&c->stop); }

void sk_control_request_stop(sk_control *c)
{
    pthread_mutex_lock(&c->mu);
    atomic_store(&c->stop, 1);
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

int sk_control_pending(sk_control *c)
{
    pthread_mutex_lock(&c->mu);
    int n = c->qn;
    pthread_mutex_unlock(&c->mu);
    return n;
}

void sk_control_publish(sk_control *c, const sk_ctl_status *st)
{
    pthread_mutex_lock(&c->mu);
    c->st = *st;
    c->st.pending = c->qn;
    c->have_status = 1;
    pthread_mutex_unlock(&c->mu);
}

void sk_control_get_status(sk_control *c, sk_ctl_status *out)
{
    pthread_mutex_lock(&c->mu);
    *out = c->st;
    out->pending = c->qn;
    pthread_mutex_unlock(&c->mu);
}

void sk_control_set_status_hook(sk_control *c, void (*fn)(void *user, sk_ctl_status *st),
                                void *user)
{
    pthread_mutex_lock(&c->mu);
    c->status_hook = fn;
    c->status_hook_user = user;
    pthread_mutex_unlock(&c->mu);
}

/* The first video frame of latent frame f (the Wan VAE makes 1 video frame of latent 0
 * and 4 of each later one). */
static double video_of_latent(int64_t f) { return f > 0 ? (double)(4 * f - 3) : 0.0; }

/* Field names: a count of latent frames says `latent` in its name, beside the video frame
 * where one exists (issue 17). The older names (`frame`, `frames_total`, `since_frame`,
 * `window`, `sink`, `cached_frames`, `last_switch_frame`, `last_recache_from`,
 * `last_recache_frames`: all latent) stay for existing clients; docs/LIVE.md lists both. */
char *sk_control_status_json(sk_control *c)
{
    sk_ctl_status s;
    sk_control_get_status(c, &s);
    /* the hook runs under mu, so clearing it waits for a call in progress */
    pthread_mutex_lock(&c->mu);
    if (c->status_hook) c->status_hook(c->status_hook_user, &s);
    pthread_mutex_unlock(&c->mu);
    cJSON *j = cJSON_CreateObject(), *o;
    if (!j) return NULL;
    cJSON_AddStringToObject(j, "state", s.state);
    cJSON_AddNumberToObject(j, "frame", (double)s.frame); /* = latent_frame (kept for clients) */
    cJSON_AddNumberToObject(j, "latent_frame", (double)s.frame);
    cJSON_AddNumberToObject(j, "video_frame", video_of_latent(s.frame));
    cJSON_AddNumberToObject(j, "frames_total", (double)s.frames_total); /* = latent_frames_total */
    cJSON_AddNumberToObject(j, "latent_frames_total", (double)s.frames_total);
    cJSON_AddNumberToObject(j, "video_frames_total",
                            s.frames_total > 0 ? video_of_latent(s.frames_total) : 0);
    cJSON_AddNumberToObject(j, "chunk", (double)s.chunk);
    cJSON_AddNumberToObject(j, "chunks", (double)s.chunks);
    cJSON_AddNumberToObject(j, "video_frames", (double)s.video_frames);
    cJSON_AddNumberToObject(j, "steps_left", (double)s.steps_left);
    cJSON_AddNumberToObject(j, "fps", s.fps);
    cJSON_AddNumberToObject(j, "target_fps", s.target_fps);
    cJSON_AddNumberToObject(j, "lag_ms", s.lag_ms);
    cJSON_AddNumberToObject(j, "uptime_s",
                            s.t_start > 0 ? sk_progress_now() - s.t_start : s.uptime_s);
    cJSON_AddNumberToObject(j, "pending", s.pending);
    if ((o = cJSON_AddObjectToObject(j, "prompt"))) {
        cJSON_AddNumberToObject(o, "id", (double)s.prompt_id);
        cJSON_AddStringToObject(o, "kind", s.prompt_kind);
        cJSON_AddStringToObject(o, "value", s.prompt);
        cJSON_AddNumberToObject(o, "since_frame", (double)s.prompt_since); /* latent */
        cJSON_AddNumberToObject(o, "since_latent_frame", (double)s.prompt_since);
        cJSON_AddNumberToObject(o, "since_video_frame", video_of_latent(s.prompt_since));
    }
    if ((o = cJSON_AddObjectToObject(j, "cache"))) {
        cJSON_AddStringToObject(o, "policy", s.kv_policy);
        cJSON_AddNumberToObject(o, "window", (double)s.kv_window); /* latent frames */
        cJSON_AddNumberToObject(o, "sink", (double)s.kv_sink);
        cJSON_AddNumberToObject(o, "cached_frames", (double)s.kv_cached);
        cJSON_AddNumberToObject(o, "window_latent_frames", (double)s.kv_window);
        cJSON_AddNumberToObject(o, "sink_latent_frames", (double)s.kv_sink);
        cJSON_AddNumberToObject(o, "cached_latent_frames", (double)s.kv_cached);
        cJSON_AddStringToObject(o, "recache", s.recache);
        cJSON_AddNumberToObject(o, "switches", s.switches);
        cJSON_AddNumberToObject(o, "last_switch_id", (double)s.last_switch_id);
        cJSON_AddNumberToObject(o, "last_switch_frame", (double)s.last_switch_frame); /* latent */
        cJSON_AddNumberToObject(o, "last_switch_latent_frame", (double)s.last_switch_frame);
        cJSON_AddNumberToObject(o, "last_switch_video_frame", video_of_latent(s.last_switch_frame));
        cJSON_AddNumberToObject(o, "last_switch_ms", s.last_switch_ms);
        cJSON_AddNumberToObject(o, "last_recache_ms", s.last_recache_ms);
        cJSON_AddNumberToObject(o, "last_recache_from", (double)s.last_recache_from); /* latent */
        cJSON_AddNumberToObject(o, "last_recache_frames", (double)s.last_recache_n);
        cJSON_AddNumberToObject(o, "last_recache_from_latent_frame", (double)s.last_recache_from);
        cJSON_AddNumberToObject(o, "last_recache_latent_frames", (double)s.last_recache_n);
    }
    if (s.output[0] && (o = cJSON_AddObjectToObject(j, "output"))) {
        cJSON_AddStringToObject(o, "kind", s.output);
        cJSON_AddBoolToObject(o, "connected", s.out_connected);
        cJSON_AddNumberToObject(o, "reconnects", s.out_reconnects);
        cJSON_AddNumberToObject(o, "sent", (double)s.out_sent);
        cJSON_AddNumberToObject(o, "dropped", (double)s.out_dropped);
        cJSON_AddNumberToObject(o, "lag_ms", s.out_lag_ms);
        cJSON_AddNumberToObject(o, "stall_ms", s.out_stall_ms);
    }
    if (s.in_state[0] && (o = cJSON_AddObjectToObject(j, "input"))) {
        cJSON_AddStringToObject(o, "state", s.in_state);
        cJSON_AddStringToObject(o, "kind", s.in_kind);
        cJSON_AddNumberToObject(o, "frames", (double)s.in_frames);
        cJSON_AddNumberToObject(o, "dropped", (double)s.in_dropped);
        cJSON_AddNumberToObject(o, "repeated", (double)s.in_repeated);
        cJSON_AddNumberToObject(o, "skipped", (double)s.in_skipped);
        cJSON_AddNumberToObject(o, "reconnects", s.in_reconnects);
        cJSON_AddNumberToObject(o, "strength", s.in_strength);
        cJSON_AddNumberToObject(o, "start_step", s.in_start_step);
        cJSON_AddNumberToObject(o, "latency_p50_ms", s.in_latency_p50_ms);
        cJSON_AddNumberToObject(o, "latency_p99_ms", s.in_latency_p99_ms);
    }
    if (s.last_error[0]) cJSON_AddStringToObject(j, "last_error", s.last_error);
    char *txt = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return txt;
}

/* ---- text commands (stdin) ----------------------------------------------- */

static const char k_help[] =
    "commands: prompt TEXT | embeds NAME | pause | resume | step [N] | stop | status | help";

sk_status sk_control_push_line(sk_control *c, const char *line, const char *source, uint64_t *id)
{
    if (id) *id = 0;
    while (isspace((unsigned char)*line)) line++;
    size_t n = strlen(line);
    while (n > 0 && isspace((unsigned char)line[n - 1])) n--;
    if (n == 0) return SK_OK;
    const char *sp = line;
    while (sp < line + n && !isspace((unsigned char)*sp)) sp++;
    size_t wl = (size_t)(sp - line);
    const char *rest = sp;
    while (rest < line + n && isspace((unsigned char)*rest)) rest++;
    size_t rl = (size_t)(line + n - rest);
    char *arg = malloc(rl + 1);
    SK_CHECK(arg, SK_E_OOM, "control: out of memory");
    memcpy(arg, rest, rl);
    arg[rl] = 0;
    sk_status st;
#define IS(w) (wl == strlen(w) && !strncmp(line, (w), wl))
    if (IS("prompt")) st = sk_control_push(c, SK_CTL_PROMPT, arg, 0, source, id);
    else if (IS("embeds")) st = sk_control_push(c, SK_CTL_EMBEDS, arg, 0, source, id);
    else if ((IS("pause") || IS("resume") || IS("stop")) && rl > 0)
        st = SK_ERR(SK_E_INVALID_ARG, "'%.*s' takes no argument", (int)wl, line);
    else if (IS("pause")) st = sk_control_push(c, SK_CTL_PAUSE, NULL, 0, source, id);
    else if (IS("resume")) st = sk_control_push(c, SK_CTL_RESUME, NULL, 0, source, id);
    else if (IS("stop")) st = sk_control_push(c, SK_CTL_STOP, NULL, 0, source, id);
    else if (IS("step")) {
        char *end = NULL;
        long long k = rl ? strtoll(arg, &end, 10) : 1;
        if (rl && (!end || *end)) st = SK_ERR(SK_E_INVALID_ARG, "step: '%s' is not a count", arg);
        else st = sk_control_push(c, SK_CTL_STEP, NULL, k, source, id);
    } else if (IS("status")) {
        char *j = sk_control_status_json(c);
        if (j) {
            fprintf(stdout, "%s\n", j);
            fflush(stdout);
        }
        free(j);
        st = SK_OK;
    } else if (IS("help")) {
        fprintf(stderr, "sinkstream: %s\n", k_help);
        st = SK_OK;
    } else {
        st = SK_ERR(SK_E_INVALID_ARG, "unknown command '%.*s' (%s)", (int)(wl > 40 ? 40 : wl),
                    line, k_help);
    }
#undef IS
    free(arg);
    return st;
}

static void handle_line(sk_control *c, char *line, size_t len, int lineno)
{
    uint64_t id = 0;
    sk_status st = memchr(line, 0, len)
                       ? SK_ERR(SK_E_INVALID_ARG, "has a NUL byte; ignored (commands are text)")
                       : sk_control_push_line(c, line, "stdin", &id);
    if (st != SK_OK) {
        char esc[600];
        fprintf(stderr, "sinkstream: control: stdin line %d: %s\n", lineno,
                sk_log_escape(esc, sizeof esc, sk_error_message()));
    } else if (id) {
        SK_LOGI("control: stdin line %d queued as command #%llu", lineno, (unsigned long long)id);
    }
}

/* Reads fd with poll() so that sk_control_free can stop it (quit flag). */
static void *stdin_main(void *arg)
{
    sk_control *c = arg;
    size_t cap = c->max_arg + 64, n = 0;
    char *buf = malloc(cap + 1);
    int lineno = 0, skipping = 0;
    if (!buf) return NULL;
    while (!atomic_load(&c->in_quit)) {
        struct pollfd pf = {.fd = c->in_fd, .events = POLLIN};
        int r = poll(&pf, 1, 100);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) break;
        if (r == 0) continue;
        ssize_t got = read(c->in_fd, buf + n, cap - n);
        if (got < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (got <= 0) { /* EOF: the run goes on without stdin control */
            if (n > 0 && !skipping) {
                buf[n] = 0;
                handle_line(c, buf, n, ++lineno);
            }
            SK_LOGD("control: stdin closed");
            break;
        }
        n += (size_t)got;
        char *start = buf, *nl;
        while ((nl = memchr(start, '\n', (size_t)(buf + n - start)))) {
            *nl = 0;
            ++lineno;
            if (skipping) skipping = 0;
            else handle_line(c, start, (size_t)(nl - start), lineno);
            start = nl + 1;
        }
        n -= (size_t)(start - buf);
        memmove(buf, start, n);
        if (n == cap) { /* a line longer than the limit: report it once, drop it */
            if (!skipping)
                fprintf(stderr, "sinkstream: control: stdin line %d: longer than %zu bytes; "
                        "ignored\n", lineno + 1, cap);
            skipping = 1;
            n = 0;
        }
    }
    free(buf);
    return NULL;
}

sk_status sk_control_stdin_start(sk_control *c, int fd)
{
    SK_CHECK(!c->in_running, SK_E_INVALID_ARG, "control: stdin reader already running");
    c->in_fd = fd;
    atomic_store(&c->in_quit, 0);
    int r = pthread_create(&c->in_th, NULL, stdin_main, c);
    SK_CHECK(r == 0, SK_E_INTERNAL, "control: cannot start the stdin thread: %s", strerror(r));
    c->in_running = 1;
    return SK_OK;
}
