/* session.c - sk_session of runtime/sinkstream.h: one stream over an engine's
 * models. A step is one turn of the chunk loop that `sinkstream generate` ran:
 * live boundary (pause / step / stop, control prompts), the due prompt switch,
 * the DiT chunk (or the pipeline stages), the VAE (overlapped on CUDA), the
 * outputs and callbacks. Outputs, pull calls, control and status are in
 * session_io.c; deferred prompts (read when due, bounded cache) in
 * session_prompts.c.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/core/log.h"
#include "runtime/core/progress.h"
#include "runtime/engine/engine_impl.h"

sk_session_params sk_session_params_default(void)
{
    sk_session_params p;
    memset(&p, 0, sizeof p);
    p.frames = 21;
    p.chunk = 3;
    p.latent_h = 60;
    p.latent_w = 104;
    static const int steps[] = {1000, 750, 500, 250};
    memcpy(p.steps, steps, sizeof steps);
    p.n_steps = 4;
    p.num_steps = 4;
    p.shift = 5.0;
    p.warp = 1;
    p.kv_window = -1;
    p.kv_sink = -1;
    p.ema_alpha = 0.999;
    p.kv_recent = 4;
    p.shot_rope_offset = 8;
    p.prompt_switch = 1;
    p.decode = -1;
    p.fps = 16;
    return p;
}

/* --dump-steps: every denoising step's x_t, v and x0 under the names the PyTorch
 * reference fixtures use (xt.{chunk}.{step}, v.*, x0.*). */
static void on_step_dump(void *user, int chunk, int step, const sk_tensor *xt, const sk_tensor *v,
                         const sk_tensor *x0)
{
    sk_session *s = user;
    const sk_tensor *ts[3] = {xt, v, x0};
    static const char *const pre[3] = {"xt", "v", "x0"};
    for (int i = 0; i < 3 && s->dump_st == SK_OK; i++) {
        size_t n = (size_t)sk_tensor_numel(ts[i]);
        float *h = malloc(n * sizeof *h);
        char name[64];
        snprintf(name, sizeof name, "%s.%d.%d", pre[i], chunk, step);
        s->dump_st = h ? sk_tensor_download_f32(ts[i], h, n)
                       : SK_ERR(SK_E_OOM, "--dump-steps: out of memory");
        if (s->dump_st == SK_OK)
            s->dump_st = sk_st_writer_add_f32(s->dump, name, SK_DTYPE_F32, ts[i]->ndim,
                                              ts[i]->shape, h);
        free(h);
    }
}

static void snapshot(sk_session *s);

static char *dup_or_null(const char *v, int *oom)
{
    if (!v) return NULL;
    char *d = strdup(v);
    if (!d) *oom = 1;
    return d;
}

static sk_status session_setup(sk_session *s, const sk_session_params *in)
{
    sk_engine *e = s->e;
    int oom = 0;
    s->p = *in;
    s->p.noise_file = s->noise_file = dup_or_null(in->noise_file, &oom);
    s->p.dump_steps = s->dump_steps = dup_or_null(in->dump_steps, &oom);
    s->p.kv_policy = s->kv_policy = dup_or_null(in->kv_policy, &oom);
    s->p.rope = s->rope = dup_or_null(in->rope, &oom);
    s->p.recache = s->recache = dup_or_null(in->recache, &oom);
    s->p.sampler = s->sampler = dup_or_null(in->sampler, &oom);
    SK_CHECK(!oom, SK_E_OOM, "sk_session_create: out of memory");
    const sk_session_params *p = &s->p;
    SK_CHECK(p->frames >= 0, SK_E_INVALID_ARG, "session: frames %lld < 0 (0: unbounded)",
             (long long)p->frames);
    SK_CHECK(p->chunk >= 1 && p->chunk <= 64, SK_E_INVALID_ARG, "session: chunk %lld: expected "
             "1..64 latent frames", (long long)p->chunk);
    SK_CHECK(p->latent_h >= 2 && p->latent_w >= 2 && p->latent_h % 2 == 0 && p->latent_w % 2 == 0,
             SK_E_INVALID_ARG, "session: latent size %lldx%lld must be even and >= 2 (the DiT's "
             "2x2 patch)", (long long)p->latent_h, (long long)p->latent_w);
    SK_CHECK(p->n_steps >= 1 && p->n_steps <= SK_MAX_STEPS, SK_E_INVALID_ARG,
             "session: n_steps %d: expected 1..%d", p->n_steps, SK_MAX_STEPS);
    SK_CHECK(p->fps >= 1, SK_E_INVALID_ARG, "session: fps %d < 1", p->fps);
    SK_CHECK((p->fps_num == 0 && p->fps_den == 0) || (p->fps_num >= 1 && p->fps_den >= 1),
             SK_E_INVALID_ARG, "session: fps_num/fps_den %d/%d: expected both >= 1 (30000/1001), "
             "or both 0 (fps/1)", p->fps_num, p->fps_den);
    s->chunk = p->frames > 0 && p->frames < p->chunk ? p->frames : p->chunk;

    sk_stream_params sp = sk_stream_params_default();
    SK_TRY(sk_schedule_make(p->steps, p->n_steps, p->shift, p->warp, &sp.sched));
    if (!p->sampler || !strcmp(p->sampler, "renoise")) {
        sp.sampler = SK_SAMPLER_RENOISE;
    } else if (!strcmp(p->sampler, "unipc")) {
        sp.sampler = SK_SAMPLER_UNIPC;
        SK_CHECK(p->num_steps >= 1 && p->num_steps <= SK_MAX_STEPS, SK_E_INVALID_ARG,
                 "session: num_steps %d: expected 1..%d (UniPC solver steps a chunk; LongLive "
                 "2.0: 4 or 2)", p->num_steps, SK_MAX_STEPS);
        SK_TRY(sk_unipc_table_make(p->num_steps, p->shift, &sp.unipc));
    } else {
        return SK_ERR(SK_E_INVALID_ARG, "session: sampler '%s': expected renoise or unipc",
                      p->sampler);
    }
    sp.frames = p->frames;
    sp.chunk_frames = p->chunk;
    sp.latent_h = p->latent_h;
    sp.latent_w = p->latent_w;
    if (p->kv_policy) {
        if (sk_kv_policy_from_name(p->kv_policy, &sp.kv_policy) != SK_OK) {
            sk_error_prefix("session: ");
            return SK_E_INVALID_ARG;
        }
    }
    if (p->rope) {
        if (sk_kv_rope_from_name(p->rope, &sp.kv_rope) != SK_OK) {
            sk_error_prefix("session: ");
            return SK_E_INVALID_ARG;
        }
    } else {
        sp.kv_rope = SK_KV_ROPE_AUTO;
    }
    const sk_kv_policy pol = sp.kv_policy;
    sp.kv_window = p->kv_window >= 0 ? p->kv_window
                   : pol == SK_KV_MULTISHOT ? 4 * s->chunk
                   : pol == SK_KV_EMA ? 9
                   : (pol == SK_KV_DEEP_SINK || pol == SK_KV_ROLLING) ? 21 : 12;
    sp.kv_sink = p->kv_sink >= 0 ? p->kv_sink : sk_kv_default_sink(pol, sp.kv_window, s->chunk);
    sp.ema_alpha = p->ema_alpha;
    sp.kv_compress = p->kv_compress;
    sp.kv_recent = p->kv_recent;
    sp.seed = p->seed;
    sp.shot_rope_offset = p->shot_rope_offset;
    sp.shot_clean_recache = p->shot_clean_recache;
    SK_CHECK(p->shot_rope_offset >= 0, SK_E_INVALID_ARG, "session: shot_rope_offset %lld < 0",
             (long long)p->shot_rope_offset);
    /* (0 is accepted too: params not made by sk_session_params_default) */
    SK_CHECK(pol == SK_KV_MULTISHOT ||
                 (!p->shot_clean_recache && (p->shot_rope_offset == 8 || p->shot_rope_offset == 0)),
             SK_E_INVALID_ARG, "session: shot_rope_offset / shot_clean_recache are for kv_policy "
             "multishot (this is %s)", sk_kv_policy_name(pol));
    if (!p->recache) sp.recache = pol == SK_KV_MULTISHOT ? SK_RECACHE_OFF : SK_RECACHE_WINDOW;
    else if (!strcmp(p->recache, "on")) sp.recache = SK_RECACHE_WINDOW;
    else if (!strcmp(p->recache, "off")) sp.recache = SK_RECACHE_OFF;
    else if (!strcmp(p->recache, "sink")) sp.recache = SK_RECACHE_WITH_SINK;
    else return SK_ERR(SK_E_INVALID_ARG, "session: recache '%s': expected on, off or sink",
                       p->recache);
    SK_CHECK(pol != SK_KV_MULTISHOT || sp.recache == SK_RECACHE_OFF, SK_E_UNSUPPORTED,
             "session: recache '%s' with kv_policy multishot: a prompt-switch re-cache is not "
             "implemented for the multi-shot sink (LongLive 2.0 switches without one: recache "
             "\"off\" or NULL)", p->recache);
    sp.prompt_switch = p->prompt_switch && sp.recache != SK_RECACHE_OFF;
    if (p->noise_file) {
        SK_TRY(sk_noise_source_file(p->noise_file, &s->ns));
        sp.noise = s->ns;
    }
    if (p->dump_steps) {
        SK_TRY(sk_st_writer_create(&s->dump));
        sp.on_step = on_step_dump;
        sp.on_step_user = s;
    }
    const int decode = p->decode < 0 || !e->m ? e->vae != NULL : p->decode;
    SK_CHECK(!decode || e->vae, SK_E_INVALID_ARG, "session: decode needs an engine with a VAE "
             "(engine params vae)");
    SK_CHECK(e->m || e->vae, SK_E_INVALID_ARG, "session: the engine has neither a DiT nor a "
             "VAE (a text-only engine encodes text: sk_engine_encode_text)");
    if (e->pipelined) {
        SK_CHECK(!p->dump_steps, SK_E_UNSUPPORTED, "session: dump_steps is not supported over "
                 "pipeline stages yet (step dumps need the whole model on one backend)");
        SK_CHECK(sp.sampler == SK_SAMPLER_RENOISE, SK_E_UNSUPPORTED, "session: sampler unipc is "
                 "not supported over pipeline stages yet");
        SK_CHECK(pol <= SK_KV_SINK && sk_kv_rope_resolve(pol, sp.kv_rope) == SK_KV_ROPE_ABSOLUTE &&
                 !sp.kv_compress, SK_E_UNSUPPORTED, "session: pipeline stages run kv_policy fifo "
                 "or sink with absolute RoPE only (for now)");
        sp.prompt_switch = 0;
    }
    s->sp = sp;
    if (decode) {
        SK_TRY(sk_vae_pipe_create(e->be, e->vae, p->latent_h, p->latent_w, (int)s->chunk,
                                  !p->frames_on_device, &s->dec));
        sk_vae_pipe_frame_size(s->dec, &s->vid_h, &s->vid_w);
    }
    if (e->m && !e->pipelined) {
        SK_TRY(sk_stream_init(e->m, &s->sp, &s->s));
        if (p->no_cuda_graphs) s->s->dit->graphs = 0;
        SK_TRY(gen_finite_prepare(&s->fin, e->m->be)); /* x0's backend: not in the chunk loop */
    }
    s->lv_opts = (gen_live_opts){.control_port = -1};
    SK_TRY(gen_live_start(&s->lv, &s->lv_opts, NULL, 0, p->frames, s->chunk, p->fps,
                          &s->stop_flag));
    const int64_t C = e->m ? e->m->cfg.out_dim : sk_taehv_get_config(e->vae)->latent_channels;
    s->lat_host = malloc((size_t)(s->chunk * C * p->latent_h * p->latent_w) * sizeof(float));
    SK_CHECK(s->lat_host, SK_E_OOM, "session: out of host memory for a chunk of latents");
    return sk_meter_create(s);
}

static void queue_free_all(sk_session *s)
{
    while (s->queue) {
        sk_queued_prompt *q = s->queue;
        s->queue = q->next;
        gen_prompt_free(&q->p);
        free(q);
    }
    s->q_last = NULL;
    s->q_len = 0;
}

static void session_free(sk_session *s)
{
    gen_finite_free(&s->fin); /* its flag lives on x0's backend (a pipeline stage's too) */
    sk_session_input_free(s); /* stops the reader first: it may wait on the stop flag */
    gen_live_finish(&s->lv);
    sk_st_close(&s->ctl_emb);
    for (int i = 0; i < s->n_outs; i++) {
        if (s->outs[i].o) (void)sk_output_close(&s->outs[i].o);
        free(s->outs[i].path);
    }
    sk_meter_free(s);
    sk_vae_pipe_free(&s->dec);
    sk_stream_free(&s->s);
    gen_pp_close(&s->ppl);
    sk_noise_source_free(&s->ns);
    sk_st_writer_free(&s->dump);
    queue_free_all(s);
    sk_session_prompts_free(s);
    free(s->lat_host);
    free(s->rgb8);
    free(s->noise_file);
    free(s->dump_steps);
    free(s->kv_policy);
    free(s->rope);
    free(s->recache);
    free(s->sampler);
    pthread_mutex_destroy(&s->q_mu);
    free(s);
}

sk_status sk_session_create(sk_engine *e, const sk_session_params *p, sk_session **out)
{
    SK_CHECK(out, SK_E_INVALID_ARG, "sk_session_create: out is NULL");
    *out = NULL;
    SK_CHECK(e && sk_api_engine_live(e), SK_E_INVALID_ARG, "sk_session_create: %s engine",
             e ? "not a live" : "NULL");
    SK_CHECK(p, SK_E_INVALID_ARG, "sk_session_create: params are NULL "
             "(sk_session_params_default)");
    sk_session *s = calloc(1, sizeof *s);
    SK_CHECK(s, SK_E_OOM, "sk_session_create: out of memory");
    s->e = e;
    pthread_mutex_init(&s->q_mu, NULL);
    /* allocation happens here only; serialised so backend counters stay exact */
    pthread_mutex_lock(&e->mu);
    sk_status st = session_setup(s, p);
    if (st == SK_OK) e->n_sessions++;
    pthread_mutex_unlock(&e->mu);
    if (st != SK_OK) {
        session_free(s);
        return st;
    }
    snapshot(s);
    sk_api_session_register(s, 1);
    *out = s;
    return SK_OK;
}

/* ---- prompts */

sk_status sk_session_queue_push(sk_session *s, gen_prompt *gp, int64_t frame, sk_switch_mode mode,
                                int deferred)
{
    sk_queued_prompt *q = calloc(1, sizeof *q);
    if (!q) {
        gen_prompt_free(gp);
        return SK_ERR(SK_E_OOM, "queue prompt: out of memory");
    }
    q->p = *gp;
    memset(gp, 0, sizeof *gp);
    q->frame = frame;
    q->mode = mode;
    q->deferred = deferred;
    pthread_mutex_lock(&s->q_mu);
    q->seq = ++s->q_seq;
    if (s->q_last) s->q_last->next = q;
    else s->queue = q;
    s->q_last = q;
    s->q_len++;
    pthread_mutex_unlock(&s->q_mu);
    return SK_OK;
}

sk_status sk_session_check_queue_args(const sk_session *s, int64_t frame, sk_switch_mode mode)
{
    SK_CHECK(frame >= 0 || frame == SK_FRAME_NEXT_CHUNK, SK_E_INVALID_ARG, "queue prompt: frame "
             "%lld: expected a latent frame >= 0 or SK_FRAME_NEXT_CHUNK", (long long)frame);
    SK_CHECK(mode >= SK_SWITCH_DEFAULT && mode <= SK_SWITCH_CUT, SK_E_INVALID_ARG,
             "queue prompt: unknown switch mode %d", (int)mode);
    if (mode == SK_SWITCH_CUT) {
        SK_CHECK(s->sp.kv_policy == SK_KV_MULTISHOT, SK_E_INVALID_ARG, "queue prompt: a shot "
                 "cut (SK_SWITCH_CUT) needs kv_policy \"multishot\" (this session's is %s)",
                 sk_kv_policy_name(s->sp.kv_policy));
        SK_CHECK(frame == SK_FRAME_NEXT_CHUNK || frame % s->chunk == 0, SK_E_INVALID_ARG,
                 "queue prompt: a shot cut must start a chunk: frame %lld is not a multiple of "
                 "the chunk %lld (use frame %lld)", (long long)frame, (long long)s->chunk,
                 (long long)((frame + s->chunk - 1) / s->chunk * s->chunk));
    }
    return SK_OK;
}

/* A prompt opens a new shot: SK_SWITCH_CUT, or on a multishot session a text starting with
 * LongLive 2.0's scene-cut prefix (as its dataset marks cuts). */
static int is_cut(const sk_session *s, const gen_prompt *p, sk_switch_mode mode)
{
    if (s->sp.kv_policy != SK_KV_MULTISHOT) return 0;
    return mode == SK_SWITCH_CUT ||
           (p->text && !strncmp(p->text, SK_SCENE_CUT_PREFIX, strlen(SK_SCENE_CUT_PREFIX)));
}

sk_status sk_session_queue_prompt_embeds(sk_session *s, const float *ctx, int64_t rows,
                                         int64_t cols, int64_t frame, sk_switch_mode mode,
                                         const char *label)
{
    SK_API_SESSION(s);
    SK_TRY(sk_session_check_queue_args(s, frame, mode));
    SK_CHECK(ctx && rows > 0 && cols > 0, SK_E_INVALID_ARG, "queue prompt: %s",
             ctx ? "rows and cols must be > 0" : "ctx is NULL");
    SK_CHECK(s->e->m, SK_E_INVALID_ARG, "queue prompt: the engine has no DiT (a decode-only "
             "session takes latents: sk_session_push_latents)");
    const sk_dit_config *cfg = &s->e->m->cfg;
    SK_CHECK(cols == cfg->text_dim, SK_E_SHAPE, "queue prompt%s%s%s: embeddings of width %lld; "
             "the model takes rows of text_dim %lld (is it another model's text encoder?)",
             label ? " '" : "", label ? label : "", label ? "'" : "", (long long)cols,
             (long long)cfg->text_dim);
    gen_prompt gp;
    memset(&gp, 0, sizeof gp);
    gp.frame = gp.raw_frame = frame;
    gp.key = strdup(label ? label : "(embeddings)");
    gp.ctx = malloc((size_t)(rows * cols) * sizeof(float));
    if (!gp.key || !gp.ctx) {
        gen_prompt_free(&gp);
        return SK_ERR(SK_E_OOM, "queue prompt: out of memory for [%lld, %lld]", (long long)rows,
                      (long long)cols);
    }
    memcpy(gp.ctx, ctx, (size_t)(rows * cols) * sizeof(float));
    gp.rows = rows;
    gp.cols = cols;
    sk_status st = gen_prompt_fit(&gp, cfg);
    if (st != SK_OK) {
        gen_prompt_free(&gp);
        return st;
    }
    return sk_session_queue_push(s, &gp, frame, mode, 0);
}

sk_status sk_session_queue_prompt_text(sk_session *s, const char *text, int64_t frame,
                                       sk_switch_mode mode)
{
    SK_API_SESSION(s);
    SK_TRY(sk_session_check_queue_args(s, frame, mode));
    SK_CHECK(s->e->m, SK_E_INVALID_ARG, "queue prompt: the engine has no DiT (a decode-only "
             "session takes latents: sk_session_push_latents)");
    gen_prompt gp;
    SK_TRY(sk_engine_prompt_from_text(s->e, text, frame, &gp));
    return sk_session_queue_push(s, &gp, frame, mode, 0);
}

/* The prompt due at the boundary before frame `next` (the last queued of those due; the
 * others are dropped with a log line), or NULL. */
static sk_queued_prompt *queue_take_due(sk_session *s, int64_t next)
{
    sk_queued_prompt *due = NULL, *last = NULL;
    pthread_mutex_lock(&s->q_mu);
    for (sk_queued_prompt **t = &s->queue; *t;) {
        sk_queued_prompt *q = *t;
        if (q->frame == SK_FRAME_NEXT_CHUNK || q->frame <= next) {
            *t = q->next;
            s->q_len--;
            if (due) {
                char d[96];
                SK_LOGW("prompt %s replaced by a later one due at the same chunk (latent frame "
                        "%lld)", gen_prompt_desc(&due->p, d, sizeof d), (long long)next);
                gen_prompt_free(&due->p);
                free(due);
            }
            due = q;
        } else {
            last = q;
            t = &q->next;
        }
    }
    s->q_last = last;
    pthread_mutex_unlock(&s->q_mu);
    return due;
}

/* ---- the chunk loop */

static void snapshot(sk_session *s)
{
    pthread_mutex_lock(&s->q_mu);
    sk_session_status *n = &s->snap;
    n->next_frame = s->s ? s->s->next_frame : s->ppl ? gen_pp_next_frame(s->ppl) : 0;
    n->frames_total = s->p.frames;
    n->chunks = s->chunks;
    n->video_frames = s->vframes;
    n->queued_prompts = s->q_len;
    n->switches = s->lv.switches;
    n->stopping = __atomic_load_n(&s->stop_flag, __ATOMIC_ACQUIRE) || s->stopped;
    n->paused = s->lv.paused;
    n->done = s->stopped || s->finished ||
              (s->s ? sk_stream_done(s->s) : s->ppl ? gen_pp_done(s->ppl) : 0);
    n->elapsed_s = s->t_first > 0 ? sk_progress_now() - s->t_first : 0;
    sk_output_stats os;
    sk_output_get_stats(sk_session_first_output(s), &os); /* zeros without an output */
    n->lag_ms = os.lag_ms;
    n->late_frames = os.late_frames;
    n->dropped_frames = os.dropped;
    pthread_mutex_unlock(&s->q_mu);
}

/* the on_prompt callback, for a prompt that just took effect at the next chunk */
static void prompt_applied(sk_session *s, int64_t frame, const gen_prompt *p, const char *source)
{
    if (s->p.on_prompt) s->p.on_prompt(s->p.user, frame, p->text, p->key, source);
}

static sk_status apply_prompt(sk_session *s, sk_queued_prompt *q)
{
    if (!s->s) return SK_OK;
    const sk_recache_mode keep = s->s->p.recache;
    if (q->mode == SK_SWITCH_HARD_CUT || q->mode == SK_SWITCH_CUT) s->s->p.recache = SK_RECACHE_OFF;
    if (q->mode == SK_SWITCH_RECACHE && keep == SK_RECACHE_OFF) {
        s->s->p.recache = SK_RECACHE_WINDOW;
        SK_CHECK(s->s->p.prompt_switch || s->s->next_frame == 0, SK_E_INVALID_ARG,
                 "a re-cached prompt switch needs a session made with prompt_switch = 1 and "
                 "recache other than \"off\"");
    }
    const int64_t at = s->s->next_frame;
    sk_status st = gen_live_switch(&s->lv, s->s, &q->p, 0, 0, "queued");
    s->s->p.recache = keep;
    if (st == SK_OK) {
        s->have_prompt = 1;
        prompt_applied(s, at, &q->p, "queued");
    }
    /* LongLive 2.0: the chunk after the switch opens a new shot */
    if (st == SK_OK && is_cut(s, &q->p, q->mode)) st = sk_stream_cut(s->s);
    return st;
}

static sk_status step_locked(sk_session *s, sk_step_info *info)
{
    sk_engine *e = s->e;
    sk_status st;
    sk_tensor x0;
    int64_t f0 = 0;
    if (e->pipelined) {
        if (__atomic_load_n(&s->stop_flag, __ATOMIC_ACQUIRE)) {
            s->stopped = 1;
            return SK_OK;
        }
        const int64_t next = s->ppl ? gen_pp_next_frame(s->ppl) : 0;
        sk_queued_prompt *q = queue_take_due(s, next);
        if (q && s->ppl) {
            gen_prompt_free(&q->p);
            free(q);
            return SK_ERR(SK_E_UNSUPPORTED, "prompt switches are not supported over pipeline "
                          "stages yet (the prompt queued for frame %lld)", (long long)next);
        }
        if (!s->ppl) {
            SK_CHECK(q, SK_E_INVALID_ARG, "sk_session_step: no prompt: queue one before the "
                     "first step (sk_session_queue_prompt_text / _embeds)");
            st = sk_session_resolve_due(s, q);
            if (st == SK_OK)
                st = gen_pp_open(&e->pp, e->cuda, e->act, e->dit_path, &e->m->cfg, e->wdtype,
                                 &s->sp, q->p.ctx, q->p.rows, e->be, &s->ppl);
            if (st == SK_OK) prompt_applied(s, 0, &q->p, "queued");
            gen_prompt_free(&q->p);
            free(q);
            SK_TRY(st);
        }
        SK_TRY(sk_meter_chunk_begin(s));
        SK_TRY(gen_pp_step(s->ppl, &x0, &f0));
    } else {
        sk_session_input_publish(s);
        if (gen_live_boundary(&s->lv, s->s, sk_session_first_output(s), s->vframes)) {
            s->stopped = 1;
            return SK_OK;
        }
        /* a live (control) prompt taken at the same boundary wins over a queued one */
        sk_queued_prompt *q = queue_take_due(s, s->s->next_frame);
        gen_prompt live;
        uint64_t lid = 0;
        double lt = 0;
        pthread_mutex_lock(&e->text_mu);
        const int have_live = gen_live_take_prompt(&s->lv, s->ctl_emb, e->text.te ? &e->text
                                                                                  : NULL,
                                                   &e->m->cfg, &live, &lid, &lt);
        pthread_mutex_unlock(&e->text_mu);
        st = SK_OK;
        if (have_live) {
            if (q) {
                char d[96];
                SK_LOGI("queued prompt %s skipped: a live prompt came for the same chunk",
                        gen_prompt_desc(&q->p, d, sizeof d));
            }
            const int64_t at = s->s->next_frame;
            st = gen_live_switch(&s->lv, s->s, &live, lid, lt, "live");
            if (st == SK_OK) {
                s->have_prompt = 1;
                prompt_applied(s, at, &live, "live");
            }
            if (st == SK_OK && is_cut(s, &live, SK_SWITCH_DEFAULT)) st = sk_stream_cut(s->s);
            gen_prompt_free(&live);
        } else if (q) {
            st = sk_session_resolve_due(s, q); /* a deferred prompt is read only now */
            if (st == SK_OK) st = apply_prompt(s, q);
        }
        if (q) {
            gen_prompt_free(&q->p);
            free(q);
        }
        SK_TRY(st);
        SK_CHECK(s->have_prompt, SK_E_INVALID_ARG, "sk_session_step: no prompt: queue one "
                 "before the first step (sk_session_queue_prompt_text / _embeds)");
        if (s->v2v) { /* video-to-video: this chunk's input frames (session_input.c) */
            int end = 0;
            SK_TRY(sk_session_input_prepare(s, &end));
            if (end) {
                s->stopped = 1;
                return SK_OK;
            }
        }
        SK_TRY(sk_meter_chunk_begin(s));
        SK_TRY(s->v2v ? sk_session_input_step(s, &x0, &f0) : sk_stream_step(s->s, &x0, &f0));
    }
    SK_TRY(s->dump_st);
    /* NaN/Inf never makes a silent video (issue 15 #7): a device-side flag, read once a chunk,
     * before the chunk reaches the callbacks, the decoder and the outputs */
    SK_TRY(gen_finite_check(&s->fin, &x0, f0));
    s->x0 = x0;
    s->x0_frame0 = f0;
    s->x0_n = x0.shape[0];
    if (info) {
        info->first_frame = f0;
        info->n_frames = x0.shape[0];
    }
    if (s->p.on_latents) {
        const float *lat;
        int64_t n, ff;
        SK_TRY(sk_session_latents(s, &lat, &n, &ff));
        s->p.on_latents(s->p.user, lat, n, x0.shape[1], x0.shape[2], x0.shape[3], ff);
    }
    if (s->dec) {
        const float *rgb = NULL;
        int64_t nf = 0;
        sk_meter_phase(s, "vae");
        SK_TRY(sk_vae_pipe_push(s->dec, &x0, &rgb, &nf));
        sk_meter_after_decode(s);
        sk_meter_phase(s, "encode");
        SK_TRY(sk_session_emit_frames(s, rgb, nf));
        if (info) info->video_frames = nf;
    }
    SK_TRY(sk_meter_chunk_end(s, &x0));
    s->chunks++;
    sk_session_input_publish(s);
    if (s->s) gen_live_after_chunk(&s->lv, s->s, sk_session_first_output(s), s->vframes);
    return SK_OK;
}

int sk_session_done(const sk_session *s)
{
    if (!s || !sk_api_session_live(s)) return 1;
    if (s->stopped || s->finished || s->broken) return 1;
    return s->s ? sk_stream_done(s->s) : s->ppl ? gen_pp_done(s->ppl) : 0;
}

sk_status sk_session_step(sk_session *s, sk_step_info *info)
{
    SK_API_SESSION(s);
    if (info) {
        memset(info, 0, sizeof *info);
        info->first_frame = -1;
    }
    SK_CHECK(!s->finished, SK_E_INVALID_ARG, "sk_session_step: the session is finished "
             "(sk_session_finish was called)");
    SK_CHECK(!s->broken, SK_E_INVALID_ARG, "sk_session_step: an earlier step failed in a way "
             "that lost the stream's state; close this session");
    SK_CHECK(s->e->m, SK_E_INVALID_ARG, "sk_session_step: the engine has no DiT; feed this "
             "session latents with sk_session_push_latents");
    s->lat_valid = 0;
    s->rgb8_valid = 0;
    s->rgb = NULL;
    s->rgb_n = 0;
    s->x0_n = 0;
    sk_status st = SK_OK;
    if (!s->t_first) s->t_first = sk_progress_now();
    if (!sk_session_done(s)) {
        if (s->e->serialize_steps) sk_turn_acquire(&s->e->step_turn);
        st = step_locked(s, info);
        if (st != SK_OK) sk_meter_step_failed(s);
        if (s->e->serialize_steps) sk_turn_release(&s->e->step_turn);
        if (st != SK_OK && s->s && s->s->broken) s->broken = 1;
    }
    if (info) info->done = sk_session_done(s);
    snapshot(s);
    return st;
}

sk_status sk_session_push_latents(sk_session *s, const float *latents, int64_t n,
                                  sk_step_info *info)
{
    SK_API_SESSION(s);
    if (info) {
        memset(info, 0, sizeof *info);
        info->first_frame = -1;
    }
    SK_CHECK(s->dec, SK_E_INVALID_ARG, "sk_session_push_latents: the session does not decode "
             "(an engine with a VAE, session params decode)");
    SK_CHECK(!s->finished, SK_E_INVALID_ARG, "sk_session_push_latents: the session is finished");
    SK_CHECK(latents && n >= 1 && n <= s->chunk, SK_E_INVALID_ARG, "sk_session_push_latents: %s "
             "(1..%lld latent frames a push: the session's chunk)", latents ? "bad n" :
             "latents is NULL", (long long)s->chunk);
    SK_CHECK(!sk_vae_pipe_overlapped(s->dec), SK_E_UNSUPPORTED, "sk_session_push_latents: not "
             "on a session whose VAE overlaps the DiT (engine params vae_overlap = 0)");
    s->lat_valid = 0;
    s->rgb8_valid = 0;
    s->rgb = NULL;
    s->rgb_n = 0;
    s->x0_n = 0;
    const int64_t C = s->e->m ? s->e->m->cfg.out_dim
                              : sk_taehv_get_config(s->e->vae)->latent_channels;
    /* NaN/Inf latents decode to a black video (issue 15 #7): refused, naming the frame */
    const int64_t per = C * s->p.latent_h * s->p.latent_w;
    for (int64_t i = 0; i < n * per; i++)
        SK_CHECK(isfinite(latents[i]), SK_E_INVALID_ARG, "sk_session_push_latents: latent frame "
                 "%lld of this push (flat index %lld) is %s; expected finite latents",
                 (long long)(i / per), (long long)i, isnan(latents[i]) ? "NaN" : "Inf");
    int64_t shape[4] = {n, C, s->p.latent_h, s->p.latent_w};
    sk_tensor t = sk_tensor_desc(SK_DTYPE_F32, 4, shape);
    t.data = (void *)latents; /* read only: the sequential decoder uploads it */
    const float *rgb = NULL;
    int64_t nf = 0;
    if (s->e->serialize_steps) sk_turn_acquire(&s->e->step_turn);
    sk_status st = sk_vae_pipe_push(s->dec, &t, &rgb, &nf);
    if (s->e->serialize_steps) sk_turn_release(&s->e->step_turn);
    SK_TRY(st);
    SK_TRY(sk_session_emit_frames(s, rgb, nf));
    if (info) info->video_frames = nf;
    s->chunks++;
    snapshot(s);
    return SK_OK;
}

void sk_session_stop(sk_session *s)
{
    /* no registry lookup: this may run in a signal handler (a plain store) */
    if (s) __atomic_store_n(&s->stop_flag, 1, __ATOMIC_RELEASE);
}

void sk_session_abort(sk_session *s)
{
    /* no registry lookup: this may run in a signal handler (plain stores) */
    if (!s) return;
    __atomic_store_n(&s->abort_flag, 1, __ATOMIC_RELEASE);
    __atomic_store_n(&s->stop_flag, 1, __ATOMIC_RELEASE);
}

sk_status sk_session_finish(sk_session *s, sk_step_info *info)
{
    SK_API_SESSION(s);
    if (info) {
        memset(info, 0, sizeof *info);
        info->first_frame = -1;
        info->done = 1;
    }
    if (s->finished) return SK_OK;
    s->lat_valid = 0;
    s->rgb8_valid = 0;
    s->rgb = NULL;
    s->rgb_n = 0;
    s->x0_n = 0;
    sk_status st = SK_OK;
    if (s->e->serialize_steps) sk_turn_acquire(&s->e->step_turn);
    if (s->dec) { /* overlapped: the last chunk's frames */
        const float *rgb = NULL;
        int64_t nf = 0;
        sk_meter_alloc_begin(s);
        st = sk_vae_pipe_flush(s->dec, &rgb, &nf);
        if (st == SK_OK) st = sk_session_emit_frames(s, rgb, nf);
        sk_meter_alloc_end(s);
        if (st == SK_OK && info) info->video_frames = nf;
    }
    if (st == SK_OK && s->ppl && gen_pp_done(s->ppl)) st = gen_pp_finish(s->ppl);
    if (s->e->serialize_steps) sk_turn_release(&s->e->step_turn);
    sk_status st2 = sk_session_close_outputs(s);
    if (st == SK_OK) st = st2;
    if (st == SK_OK && s->dump) {
        const int unipc = s->sp.sampler == SK_SAMPLER_UNIPC;
        const int nt = unipc ? s->sp.unipc.n : s->sp.sched.n;
        for (int k = 0; k < nt && st == SK_OK; k++) {
            char v[32], key[32];
            snprintf(v, sizeof v, "%.9g", unipc ? (double)s->sp.unipc.t[k] : (double)s->sp.sched.t[k]);
            snprintf(key, sizeof key, "t.%d", k);
            st = sk_st_writer_meta(s->dump, key, v);
        }
        if (st == SK_OK) st = sk_st_writer_save(s->dump, s->p.dump_steps);
        if (st == SK_OK) SK_LOGI("wrote every step's xt/v/x0 to '%s'", s->p.dump_steps);
    }
    s->finished = 1;
    snapshot(s);
    return st;
}

void sk_session_close(sk_session **ps)
{
    if (!ps || !*ps) return;
    sk_session *s = *ps;
    *ps = NULL;
    if (!sk_api_session_live(s)) {
        sk_error_set(SK_E_INVALID_ARG, __FILE__, __LINE__, __func__,
                     "sk_session_close: not a live session (closed twice?)");
        return;
    }
    if (!s->finished) (void)sk_session_finish(s, NULL);
    sk_api_session_register(s, 0);
    sk_engine *e = s->e;
    pthread_mutex_lock(&e->mu);
    session_free(s);
    e->n_sessions--;
    pthread_mutex_unlock(&e->mu);
}
