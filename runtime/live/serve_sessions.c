/* serve_sessions.c - the session manager of `sinkstream serve` on the engine
 * API (serve_sessions.h): the list, references, and the backend calls of the
 * HTTP layer. One thread per session runs it (serve_session.c).
 *
 * Locks: m->mu guards the list and reference counts; ss->mu guards a
 * session's control flags, counters and pending prompts; ss->api_mu guards
 * the sk_session pointer against the close at the end of the thread (the
 * engine's queue/stop/status calls are thread-safe by themselves). */
#include "runtime/live/serve_sessions_impl.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/core/log.h"
#include "runtime/output/live_view.h"

/* ---- JSON */

static double rss_mib(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, rss = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &rss) != 2) rss = 0;
        fclose(f);
    }
    return (double)rss * (double)sysconf(_SC_PAGESIZE) / (1024.0 * 1024.0);
}

static cJSON *session_json(srv_session *ss)
{
    cJSON *j = cJSON_CreateObject();
    pthread_mutex_lock(&ss->mu);
    cJSON_AddStringToObject(j, "id", ss->id);
    cJSON_AddStringToObject(j, "state", ss->state);
    cJSON_AddStringToObject(j, "prompt", ss->prompt);
    cJSON_AddNumberToObject(j, "prompt_frame", (double)ss->prompt_frame);
    cJSON_AddNumberToObject(j, "frame", (double)ss->video_frames);
    cJSON_AddNumberToObject(j, "frames", ss->latent_total ? (double)video_of_latent(ss->latent_total) : 0);
    cJSON_AddNumberToObject(j, "latent_frame", (double)ss->next_latent);
    cJSON_AddNumberToObject(j, "chunks", (double)ss->chunks);
    cJSON_AddNumberToObject(j, "fps", round(ss->fps * 100) / 100);
    cJSON_AddNumberToObject(j, "fps_target", ss->p.fps);
    cJSON_AddNumberToObject(j, "gen_fps", round(ss->gen_fps * 100) / 100);
    cJSON_AddNumberToObject(j, "chunk_ms", round(ss->chunk_ms * 10) / 10);
    cJSON_AddBoolToObject(j, "pace", ss->p.pace);
    /* how far behind real time the session is: the GPU cannot keep up when > 0 */
    cJSON_AddNumberToObject(j, "lag_s", round(ss->lag_s * 1000) / 1000);
    cJSON_AddNumberToObject(j, "queued_prompts", ss->n_pend);
    cJSON_AddNumberToObject(j, "switches", ss->switches);
    cJSON_AddNumberToObject(j, "width", ss->p.width);
    cJSON_AddNumberToObject(j, "height", ss->p.height);
    cJSON_AddNumberToObject(j, "seed", (double)ss->p.seed);
    cJSON_AddStringToObject(j, "kv_policy", ss->p.kv_policy[0] ? ss->p.kv_policy
                            : ss->m->base.kv_policy ? ss->m->base.kv_policy : "default");
    cJSON_AddNumberToObject(j, "created_ms", round(ss->t_created_epoch));
    cJSON_AddNumberToObject(j, "memory_mib", round(rss_mib()));
    if (ss->record_path[0]) cJSON_AddStringToObject(j, "record", ss->record_path);
    else cJSON_AddNullToObject(j, "record");
    if (ss->error[0]) cJSON_AddStringToObject(j, "error", ss->error);
    if (ss->view) {
        cJSON *l = cJSON_AddObjectToObject(j, "live");
        char u[128];
        cJSON_AddStringToObject(l, "mime", sk_live_view_mime(ss->view));
        snprintf(u, sizeof u, "/v1/sessions/%s/live.mp4", ss->id);
        cJSON_AddStringToObject(l, "mp4", u);
        snprintf(u, sizeof u, "/v1/sessions/%s/live.mjpeg", ss->id);
        cJSON_AddStringToObject(l, "mjpeg", u);
    } else {
        cJSON_AddNullToObject(j, "live");
    }
    pthread_mutex_unlock(&ss->mu);
    return j;
}

static int give_json(cJSON *j, char **out)
{
    *out = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return *out ? 0 : srv_fail(500, SK_E_OOM, "out of memory");
}

/* ---- prompts */

/* FNV-1a of the text seeds an LCG (as `sinkstream bench`'s random prompt): values
 * in [-0.1, 0.1), about the scale of umT5's output. */
sk_status srv_queue_prompt(sk_serve_mgr *m, sk_session *s, const char *text,
                           int64_t latent_frame, sk_switch_mode mode)
{
    if (!m->hashed_prompts) return sk_session_queue_prompt_text(s, text, latent_frame, mode);
    const int64_t rows = m->info.text_len > 0 ? m->info.text_len : 512;
    const int64_t cols = m->info.text_dim;
    SK_CHECK(cols > 0, SK_E_INTERNAL, "serve: the engine reports no text_dim");
    float *ctx = malloc((size_t)(rows * cols) * sizeof *ctx);
    SK_CHECK(ctx, SK_E_OOM, "serve: out of memory for a prompt embedding [%lld, %lld]",
             (long long)rows, (long long)cols);
    uint64_t z = 1469598103934665603ull;
    for (const unsigned char *c = (const unsigned char *)text; *c; c++)
        z = (z ^ *c) * 1099511628211ull;
    for (int64_t i = 0; i < rows * cols; i++) {
        z = z * 6364136223846793005ull + 1442695040888963407ull;
        ctx[i] = 0.2f * ((float)(z >> 40) / 16777216.0f - 0.5f);
    }
    sk_status st = sk_session_queue_prompt_embeds(s, ctx, rows, cols, latent_frame, mode, text);
    free(ctx);
    return st;
}

/* ---- list and references */

/* Finds a listed session and takes a reference (m->mu not held). */
srv_session *srv_find_ref(sk_serve_mgr *m, const char *id)
{
    srv_session *ss = NULL;
    pthread_mutex_lock(&m->mu);
    for (int i = 0; i < m->n; i++)
        if (!strcmp(m->list[i]->id, id)) {
            ss = m->list[i];
            ss->refs++;
            break;
        }
    pthread_mutex_unlock(&m->mu);
    if (!ss) SK_ERR(SK_E_INVALID_ARG, "no session %s (deleted, or never made; GET /v1/sessions "
                    "lists them)", id);
    return ss;
}

void srv_session_free(srv_session *ss)
{
    if (!ss->joined) pthread_join(ss->th, NULL);
    for (int i = 0; i < ss->n_pend; i++) free(ss->pend[i].text);
    sk_live_view_free(&ss->view);
    sk_fanout_free(&ss->events);
    sk_serve_params_free(&ss->p);
    pthread_mutex_destroy(&ss->mu);
    pthread_mutex_destroy(&ss->api_mu);
    pthread_cond_destroy(&ss->cv);
    free(ss);
}

void srv_ref_drop(srv_session *ss)
{
    sk_serve_mgr *m = ss->m;
    pthread_mutex_lock(&m->mu);
    int last = --ss->refs == 0;
    pthread_mutex_unlock(&m->mu);
    if (last) srv_session_free(ss);
}

/* Asks a session to stop and joins its thread (outputs finalised). */
void srv_stop_and_join(srv_session *ss)
{
    pthread_mutex_lock(&ss->mu);
    ss->stop = 1;
    pthread_cond_broadcast(&ss->cv);
    pthread_mutex_unlock(&ss->mu);
    pthread_mutex_lock(&ss->api_mu);
    if (ss->s) sk_session_stop(ss->s);
    pthread_mutex_unlock(&ss->api_mu);
    if (!ss->joined) {
        pthread_join(ss->th, NULL);
        ss->joined = 1;
    }
}

/* Unlists (m->mu held); the caller drops the list's reference. */
static void unlist(sk_serve_mgr *m, int i)
{
    m->list[i]->listed = 0;
    memmove(&m->list[i], &m->list[i + 1], sizeof m->list[0] * (size_t)(m->n - i - 1));
    m->n--;
}

/* ---- backend calls */

static int make_id(char id[SK_SERVE_ID_HEX + 1])
{
    unsigned char r[SK_SERVE_ID_HEX / 2];
    size_t got = 0;
    while (got < sizeof r) {
        ssize_t n = getrandom(r + got, sizeof r - got, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return -1;
        got += (size_t)n;
    }
    for (size_t i = 0; i < sizeof r; i++) snprintf(id + 2 * i, 3, "%02x", r[i]);
    return 0;
}

static int be_create(void *ctx, const sk_serve_params *p, char **json)
{
    sk_serve_mgr *m = ctx;
    if (!m->info.has_text_encoder && !m->hashed_prompts)
        return srv_fail(409, SK_E_UNSUPPORTED, "this model has no text encoder, so it cannot take "
                    "a text prompt; serve a model directory with text_encoder.safetensors");
    if (p->rtmp && !m->info.has_vae)
        return srv_fail(409, SK_E_UNSUPPORTED, "this model has no VAE: no frames to stream");
    /* a place in the list: drop the oldest finished session when it is full */
    srv_session *evict = NULL;
    pthread_mutex_lock(&m->mu);
    if (m->active >= m->max_active) {
        int a = m->active;
        pthread_mutex_unlock(&m->mu);
        SK_ERR(SK_E_INVALID_ARG, "too many sessions: %d of --max-sessions %d are running; delete "
               "one (DELETE /v1/sessions/{id}) or wait until one ends", a, m->max_active);
        return 429;
    }
    if (m->n >= MAX_LISTED) {
        for (int i = 0; i < m->n && !evict; i++) {
            srv_session *o = m->list[i];
            pthread_mutex_lock(&o->mu);
            int ended = !strcmp(o->state, "done") || !strcmp(o->state, "stopped") ||
                        !strcmp(o->state, "failed");
            pthread_mutex_unlock(&o->mu);
            if (ended) {
                evict = o;
                unlist(m, i);
            }
        }
    }
    m->active++;
    pthread_mutex_unlock(&m->mu);
    if (evict) srv_ref_drop(evict);

    int code = 500;
    srv_session *ss = calloc(1, sizeof *ss);
    if (!ss) {
        code = srv_fail(500, SK_E_OOM, "out of memory");
        goto undo;
    }
    ss->m = m;
    ss->refs = 1;
    ss->joined = 1; /* no thread yet */
    pthread_mutex_init(&ss->mu, NULL);
    pthread_mutex_init(&ss->api_mu, NULL);
    pthread_cond_init(&ss->cv, NULL);
    srv_set_state(ss, p->paused ? "paused" : "starting");
    ss->t_created_epoch = srv_now_epoch_ms();
    ss->p = *p;
    ss->p.prompt = strdup(p->prompt);
    ss->p.rtmp = p->rtmp ? strdup(p->rtmp) : NULL;
    ss->paused = p->paused;
    snprintf(ss->prompt, sizeof ss->prompt, "%s", p->prompt);
    if (!ss->p.prompt || (p->rtmp && !ss->p.rtmp) || make_id(ss->id) != 0 ||
        sk_fanout_create(EVENTS_KEPT, 0, &ss->events) != SK_OK) {
        code = srv_fail(500, SK_E_OOM, "out of memory (or no random source for the session id)");
        goto fail_ss;
    }
    sk_session_params sp = m->base;
    /* pixels per latent: 8, or 16 for Wan2.2's 48-channel VAE (LongLive 2.0) */
    const int64_t vs = m->info.vae_stride > 0 ? m->info.vae_stride : 8;
    if (p->width) sp.latent_w = p->width / vs;
    if (p->height) sp.latent_h = p->height / vs;
    ss->p.width = (int)(sp.latent_w * vs);
    ss->p.height = (int)(sp.latent_h * vs);
    ss->chunk = sp.chunk > 0 ? sp.chunk : 3;
    if (p->frames > 0) { /* latent frames for the video frames asked, whole chunks */
        int64_t lf = (p->frames + 3 + 3) / 4; /* the fewest F with 4 F - 3 >= frames */
        lf = (lf + ss->chunk - 1) / ss->chunk * ss->chunk;
        ss->latent_total = sp.frames = lf;
    } else {
        sp.frames = 0;
    }
    sp.seed = p->seed;
    sp.fps = p->fps;
    if (p->kv_policy[0]) sp.kv_policy = p->kv_policy;
    sp.on_frames = srv_on_frames;
    sp.user = ss;
    sk_status st = sk_session_create(m->e, &sp, &ss->s);
    if (st != SK_OK) {
        code = srv_engine_code(st);
        goto fail_ss;
    }
    if (p->live_view && m->info.has_vae) {
        sk_live_view_params vp = {.width = ss->p.width, .height = ss->p.height,
                                  .fps_num = p->fps, .fps_den = 1};
        if (sk_live_view_open(&vp, &ss->view) != SK_OK) {
            code = 500;
            goto fail_ss;
        }
    }
    if (p->record) {
        if (!m->info.has_vae) {
            code = srv_fail(409, SK_E_UNSUPPORTED, "\"record\": this model has no VAE, so there "
                        "are no frames to record");
            goto fail_ss;
        }
        mkdir(m->record_dir, 0755);
        snprintf(ss->record_path, sizeof ss->record_path, "%s/%s.mp4", m->record_dir, ss->id);
        if (sk_session_attach_output(ss->s, ss->record_path, NULL, NULL) != SK_OK) {
            code = 500;
            goto fail_ss;
        }
    }
    if (p->rtmp) {
        sk_output_opts oo = {.reconnect_max_ms = 8000};
        if ((st = sk_session_attach_output(ss->s, p->rtmp, &oo, NULL)) != SK_OK) {
            code = srv_engine_code(st);
            goto fail_ss;
        }
    }
    if ((st = srv_queue_prompt(m, ss->s, p->prompt, 0, SK_SWITCH_DEFAULT)) != SK_OK) {
        code = srv_engine_code(st);
        goto fail_ss;
    }
    ss->pend[0] = (pending_prompt){.req = 0, .text = strdup(p->prompt), .latent = 0,
                                   .t_queued = srv_now_mono()};
    ss->n_pend = ss->pend[0].text ? 1 : 0;
    ss->next_req = 1;
    if (pthread_create(&ss->th, NULL, srv_session_main, ss) != 0) {
        code = srv_fail(500, SK_E_INTERNAL, "cannot start a session thread");
        goto fail_ss;
    }
    ss->joined = 0;
    pthread_mutex_lock(&m->mu);
    ss->listed = 1;
    m->list[m->n++] = ss;
    pthread_mutex_unlock(&m->mu);
    SK_LOGI("serve: session %.8s created: %dx%d, %s, \"%.60s\"", ss->id, ss->p.width,
            ss->p.height, ss->latent_total ? "bounded" : "unbounded", p->prompt);
    cJSON *j = session_json(ss);
    return give_json(j, json) ? 500 : 201;

fail_ss:
    {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", sk_error_message());
        sk_session_close(&ss->s);
        ss->refs = 0;
        srv_session_free(ss);
        SK_ERR(SK_E_INVALID_ARG, "%s", msg);
    }
undo:
    pthread_mutex_lock(&m->mu);
    m->active--;
    pthread_mutex_unlock(&m->mu);
    return code;
}

static int be_list(void *ctx, char **json)
{
    sk_serve_mgr *m = ctx;
    cJSON *j = cJSON_CreateObject(), *a = cJSON_AddArrayToObject(j, "sessions");
    pthread_mutex_lock(&m->mu);
    for (int i = 0; i < m->n; i++) cJSON_AddItemToArray(a, session_json(m->list[i]));
    pthread_mutex_unlock(&m->mu);
    return give_json(j, json) ? 500 : 200;
}

static int be_get(void *ctx, const char *id, char **json)
{
    srv_session *ss = srv_find_ref(ctx, id);
    if (!ss) return 404;
    cJSON *j = session_json(ss);
    srv_ref_drop(ss);
    return give_json(j, json) ? 500 : 200;
}


static int be_prompt(void *ctx, const char *id, const sk_serve_prompt *p, char **json)
{
    srv_session *ss = srv_find_ref(ctx, id);
    if (!ss) return 404;
    int code = 202;
    pthread_mutex_lock(&ss->mu);
    if (srv_ended(ss)) code = srv_fail(409, SK_E_INVALID_ARG, "the session has ended; start a new one");
    else if (ss->n_pend >= MAX_PENDING)
        code = srv_fail(503, SK_E_OOM, "64 prompts are already waiting; wait for them to apply");
    const uint64_t req = ss->next_req++;
    pthread_mutex_unlock(&ss->mu);
    int64_t latent = p->at_frame < 0 ? SK_FRAME_NEXT_CHUNK : latent_of_video(p->at_frame);
    if (code == 202) {
        /* the text is encoded here, on the request's thread, not the session's */
        pthread_mutex_lock(&ss->api_mu);
        sk_status st = ss->s ? srv_queue_prompt(ss->m, ss->s, p->prompt, latent,
                                                p->cut ? SK_SWITCH_HARD_CUT : SK_SWITCH_DEFAULT)
                             : SK_ERR(SK_E_INVALID_ARG, "the session has ended");
        if (st == SK_OK) {
            pthread_mutex_lock(&ss->mu);
            ss->pend[ss->n_pend++] = (pending_prompt){.req = req, .text = strdup(p->prompt),
                                                      .latent = latent, .cut = p->cut,
                                                      .t_queued = srv_now_mono()};
            pthread_mutex_unlock(&ss->mu);
        }
        pthread_mutex_unlock(&ss->api_mu);
        if (st != SK_OK) code = srv_engine_code(st);
    }
    if (code == 202) {
        cJSON *d = cJSON_CreateObject();
        cJSON_AddNumberToObject(d, "request", (double)req);
        cJSON_AddStringToObject(d, "prompt", p->prompt);
        cJSON_AddStringToObject(d, "mode", p->cut ? "cut" : "switch");
        if (p->at_frame >= 0) cJSON_AddNumberToObject(d, "at", (double)p->at_frame);
        else cJSON_AddStringToObject(d, "at", "now");
        srv_event(ss, "prompt-queued", cJSON_Duplicate(d, 1));
        cJSON_AddStringToObject(d, "applies", "at the first chunk boundary at or after \"at\"; "
                                "the \"prompt\" event on /events tells the frame");
        code = give_json(d, json) ? 500 : 202;
    }
    srv_ref_drop(ss);
    return code;
}

static int be_pause(void *ctx, const char *id, int pause, char **json)
{
    srv_session *ss = srv_find_ref(ctx, id);
    if (!ss) return 404;
    int code = 202;
    pthread_mutex_lock(&ss->mu);
    if (srv_ended(ss)) code = srv_fail(409, SK_E_INVALID_ARG, "the session has ended");
    else {
        ss->paused = pause;
        pthread_cond_broadcast(&ss->cv);
    }
    pthread_mutex_unlock(&ss->mu);
    if (code == 202) {
        cJSON *j = session_json(ss);
        cJSON_AddStringToObject(j, "applies", "at the next chunk boundary");
        code = give_json(j, json) ? 500 : 202;
    }
    srv_ref_drop(ss);
    return code;
}

static int be_remove(void *ctx, const char *id, char **json)
{
    sk_serve_mgr *m = ctx;
    srv_session *ss = NULL;
    pthread_mutex_lock(&m->mu);
    for (int i = 0; i < m->n; i++)
        if (!strcmp(m->list[i]->id, id)) {
            ss = m->list[i];
            unlist(m, i);
            break;
        }
    pthread_mutex_unlock(&m->mu);
    if (!ss) {
        SK_ERR(SK_E_INVALID_ARG, "no session %s (already deleted?)", id);
        return 404;
    }
    srv_stop_and_join(ss); /* outputs finalised before we answer */
    cJSON *j = session_json(ss);
    srv_ref_drop(ss);
    return give_json(j, json) ? 500 : 200;
}

static int be_attach(void *ctx, const char *id, sk_serve_attach *a)
{
    srv_session *ss = srv_find_ref(ctx, id);
    if (!ss) return 404;
    a->events = ss->events;
    a->view = ss->view;
    a->ref = ss;
    return 200;
}

static void be_detach(void *ctx, sk_serve_attach *a)
{
    (void)ctx;
    if (a && a->ref) srv_ref_drop(a->ref);
}

static char *be_info(void *ctx)
{
    sk_serve_mgr *m = ctx;
    cJSON *j = cJSON_CreateObject();
    pthread_mutex_lock(&m->mu);
    cJSON_AddStringToObject(j, "model", m->model);
    cJSON_AddStringToObject(j, "family", m->info.family);
    cJSON_AddStringToObject(j, "device", m->info.device);
    cJSON_AddStringToObject(j, "version", sk_version());
    cJSON_AddNumberToObject(j, "sessions", m->active);
    cJSON_AddNumberToObject(j, "listed", m->n);
    cJSON_AddNumberToObject(j, "max_sessions", m->max_active);
    cJSON_AddBoolToObject(j, "text_prompts", m->info.has_text_encoder || m->hashed_prompts);
    /* serve --random-model: prompts seed random embeddings, the video is noise */
    cJSON_AddBoolToObject(j, "random_weights", m->hashed_prompts);
    cJSON_AddBoolToObject(j, "video", m->info.has_vae);
    cJSON *d = cJSON_AddObjectToObject(j, "defaults"); /* a session's size and rate */
    const int64_t vs = m->info.vae_stride > 0 ? m->info.vae_stride : 8;
    cJSON_AddNumberToObject(d, "width", (double)(m->base.latent_w * vs));
    cJSON_AddNumberToObject(d, "height", (double)(m->base.latent_h * vs));
    cJSON_AddNumberToObject(d, "fps", m->base.fps);
    cJSON_AddNumberToObject(j, "uptime_s", round(srv_now_mono() - m->t_start));
    cJSON_AddNumberToObject(j, "memory_mib", round(rss_mib()));
    pthread_mutex_unlock(&m->mu);
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return s;
}

sk_serve_backend sk_serve_mgr_backend(sk_serve_mgr *m)
{
    return (sk_serve_backend){.ctx = m, .create = be_create, .list = be_list, .get = be_get,
                              .prompt = be_prompt, .pause = be_pause, .remove = be_remove,
                              .attach = be_attach, .detach = be_detach, .info = be_info};
}

sk_status sk_serve_mgr_create(sk_engine *e, const sk_serve_mgr_params *p, sk_serve_mgr **out)
{
    SK_CHECK(e && p && out, SK_E_INVALID_ARG, "serve: NULL argument");
    *out = NULL;
    sk_serve_mgr *m = calloc(1, sizeof *m);
    SK_CHECK(m, SK_E_OOM, "serve: out of memory");
    m->e = e;
    sk_status st = sk_engine_get_info(e, &m->info);
    if (st != SK_OK) {
        free(m);
        return st;
    }
    m->base = p->base ? *p->base : sk_session_params_default();
    m->hashed_prompts = p->hashed_prompts && !m->info.has_text_encoder;
    m->max_active = p->max_sessions > 0 ? p->max_sessions : 4;
    m->record_dir = strdup(p->record_dir && *p->record_dir ? p->record_dir : "recordings");
    if (!m->record_dir) {
        free(m);
        return SK_ERR(SK_E_OOM, "serve: out of memory");
    }
    snprintf(m->model, sizeof m->model, "%s", p->model_name ? p->model_name : "");
    pthread_mutex_init(&m->mu, NULL);
    m->t_start = srv_now_mono();
    *out = m;
    return SK_OK;
}

void sk_serve_mgr_free(sk_serve_mgr **pm)
{
    if (!pm || !*pm) return;
    sk_serve_mgr *m = *pm;
    /* stop them all first (their chunks end together), then join one by one */
    for (int i = 0; i < m->n; i++) {
        srv_session *ss = m->list[i];
        pthread_mutex_lock(&ss->mu);
        ss->stop = 1;
        pthread_cond_broadcast(&ss->cv);
        pthread_mutex_unlock(&ss->mu);
        pthread_mutex_lock(&ss->api_mu);
        if (ss->s) sk_session_stop(ss->s);
        pthread_mutex_unlock(&ss->api_mu);
    }
    while (m->n > 0) {
        srv_session *ss = m->list[m->n - 1];
        m->n--;
        srv_stop_and_join(ss);
        srv_ref_drop(ss);
    }
    pthread_mutex_destroy(&m->mu);
    free(m->record_dir);
    free(m);
    *pm = NULL;
}
