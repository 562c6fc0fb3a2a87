/* pp_stream.c - the pipelined chunk loop (see pp_stream.h, pp_plan.h). */
#include "runtime/stream/pp_stream.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "runtime/core/log.h"

typedef struct sk_pp_stream sk_pp_stream;

typedef struct {
    sk_pp_stream *s;
    int k, first, last;
    sk_backend *be;
    const sk_dit_model *m;
    pthread_t th;
    int started;
    sk_kv_cache *kv[SK_PP_MAX_LANES];
    sk_dit_ctx *dit[SK_PP_MAX_LANES];
    sk_tensor hidden;                      /* [chunk * S, D] when there are several stages */
    sk_tensor xin;                         /* stage 0 of several: [chunk, C, H, W] */
    sk_tensor x[SK_PP_MAX_LANES], v[SK_PP_MAX_LANES], x0[SK_PP_MAX_LANES],
        z[SK_PP_MAX_LANES];                /* the last stage: the sampler's state */
    float *tbuf;                           /* [chunk] */
    double busy_s;
} pp_stage;

struct sk_pp_stream {
    sk_pp_params p;
    int K, n_lanes, steps;
    int64_t chunk, frames, n_chunks, C, H, W, E, S;
    sk_pp_sched sched;
    pp_stage st[SK_PP_MAX_STAGES];
    sk_pp_transport *tr, *own_tr;
    sk_noise_source *noise[SK_PP_MAX_LANES], *own_noise[SK_PP_MAX_LANES];
    float *ctx[SK_PP_MAX_LANES];
    int64_t ctx_rows[SK_PP_MAX_LANES];
    pthread_mutex_t noise_mu;   /* a lane's noise source serves stage 0 and the last stage */
    /* output queue (last stage -> sk_pp_stream_next) and the first failure */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int mu_init;
    float *out_buf;             /* [out_depth][chunk * E] */
    int out_depth, out_head, out_count, held;
    int out_lane[16];
    int64_t out_frame0[16], out_n[16];
    int64_t taken, total;       /* outputs handed out / to hand out (-1 unbounded) */
    sk_status err;
    char errmsg[1024];
    atomic_int stop;
    int running, finished;
    double t_start, t_end;
    atomic_llong seq;
    int64_t *start_seq, *end_seq; /* trace */
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int64_t sk_pp_stream_chunk_frames(const sk_pp_stream *s) { return s->chunk; }

/* ---- the stage threads ---- */

/* Records the first failure (message from this thread's error context) and
 * stops everything. */
static void fail(sk_pp_stream *s, sk_status st)
{
    pthread_mutex_lock(&s->mu);
    if (s->err == SK_OK && !atomic_load(&s->stop)) {
        s->err = st;
        snprintf(s->errmsg, sizeof s->errmsg, "%s", sk_error_message());
    }
    atomic_store(&s->stop, 1);
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    if (s->tr) s->tr->ops->abort(s->tr);
}

static sk_status noise_initial(sk_pp_stream *s, int lane, sk_tensor *x, int64_t f0)
{
    pthread_mutex_lock(&s->noise_mu);
    sk_status st = sk_noise_initial(s->noise[lane], x, f0);
    pthread_mutex_unlock(&s->noise_mu);
    return st;
}

static sk_status noise_renoise(sk_pp_stream *s, int lane, sk_tensor *z, int64_t f0, int chunk,
                               int step)
{
    pthread_mutex_lock(&s->noise_mu);
    sk_status st = sk_noise_renoise(s->noise[lane], z, f0, chunk, step);
    pthread_mutex_unlock(&s->noise_mu);
    return st;
}

/* The last stage's x0 of a chunk into the output queue (blocks while full). */
static sk_status emit(sk_pp_stream *s, int lane, int64_t f0, int64_t n, const sk_tensor *x0)
{
    pthread_mutex_lock(&s->mu);
    while (s->out_count == s->out_depth && !atomic_load(&s->stop))
        pthread_cond_wait(&s->cv, &s->mu);
    int slot = (s->out_head + s->out_count) % s->out_depth;
    pthread_mutex_unlock(&s->mu);
    SK_CHECK(!atomic_load(&s->stop), SK_E_INTERNAL, "pipeline: stopped");
    SK_TRY(sk_tensor_download_f32(x0, s->out_buf + (size_t)slot * (size_t)(s->chunk * s->E),
                                  (size_t)(n * s->E)));
    pthread_mutex_lock(&s->mu);
    s->out_lane[slot] = lane;
    s->out_frame0[slot] = f0;
    s->out_n[slot] = n;
    s->out_count++;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return SK_OK;
}

static sk_pp_header header(sk_pp_msg_kind kind, sk_pp_task t, int64_t f0, int64_t n, float tv,
                           const sk_tensor *payload)
{
    sk_pp_header h;
    memset(&h, 0, sizeof h);
    h.magic = SK_PP_MAGIC;
    h.kind = kind;
    h.lane = t.lane;
    h.chunk = t.chunk;
    h.pass = t.pass;
    h.frame0 = f0;
    h.n_frames = n;
    h.bytes = sk_tensor_nbytes(payload);
    h.t = tv;
    return h;
}

static float pass_t(const sk_pp_stream *s, int pass)
{
    return pass < s->steps ? s->p.sp.sched.t[pass] : s->p.sp.context_t;
}

static sk_status run_task(pp_stage *g, sk_pp_task t, int64_t idx)
{
    sk_pp_stream *s = g->s;
    const int K = s->K, k = g->k, last = k == K - 1, L = t.lane, P = t.pass;
    const sk_schedule *sc = &s->p.sp.sched;
    sk_pp_transport *tr = s->tr;
    const int64_t f0 = (int64_t)t.chunk * s->chunk;
    int64_t n = s->chunk;
    if (s->frames > 0 && f0 + n > s->frames) n = s->frames - f0;
    sk_kv_cache *kv = g->kv[L];
    const float tv = pass_t(s, P);
    for (int64_t f = 0; f < n; f++) g->tbuf[f] = tv;
    if (P == 0) SK_TRY(sk_kv_begin_chunk(kv, f0, n));

    /* input: noise, the sampler's latents (stage 0) or the hidden state */
    sk_tensor hid, xv, *xin = NULL;
    memset(&hid, 0, sizeof hid);
    if (K > 1) hid = sk_tensor_rows(&g->hidden, 0, n * s->S);
    if (k == 0) {
        xv = sk_tensor_rows(K == 1 ? &g->x[L] : &g->xin, 0, n);
        if (P == 0) {
            SK_TRY(noise_initial(s, L, &xv, f0));
        } else {
            sk_tensor *ts[1] = {&xv};
            sk_pp_header h = header(SK_PP_MSG_LATENT, t, f0, n, tv, &xv);
            SK_TRY(tr->ops->recv(tr, 0, &h, ts, 1));
        }
        xin = &xv;
    } else {
        sk_tensor *ts[1] = {&hid};
        sk_pp_header h = header(SK_PP_MSG_HIDDEN, t, f0, n, tv, &hid);
        SK_TRY(tr->ops->recv(tr, k, &h, ts, 1));
    }
    if (s->p.on_pass) s->p.on_pass(s->p.on_pass_user, k, L, t.chunk, P, kv);

    /* the stage's blocks */
    if (s->start_seq) s->start_seq[idx * K + k] = atomic_fetch_add(&s->seq, 1);
    double t0 = now_s();
    sk_tensor vv, *vp = NULL;
    if (last && P < s->steps) {
        vv = sk_tensor_rows(&g->v[L], 0, n);
        vp = &vv;
    }
    SK_TRY(sk_dit_forward_blocks(g->dit[L], kv, xin, g->tbuf, f0, n, K > 1 ? &hid : NULL, vp));

    /* output: the hidden state down, or the sampler and its latents back up;
     * the task has ended (trace) once its output exists and a clean pass has
     * committed this stage's cache, before the send */
    sk_tensor out; /* what goes to the next stage */
    sk_pp_header h;
    int send = 0;
    if (!last) {
        out = hid;
        h = header(SK_PP_MSG_HIDDEN, t, f0, n, tv, &out);
        send = 1;
    } else if (P < s->steps) {
        sk_tensor x = sk_tensor_rows(&g->x[L], 0, n), x0 = sk_tensor_rows(&g->x0[L], 0, n),
                  z = sk_tensor_rows(&g->z[L], 0, n);
        /* the same initial noise stage 0 drew (a counter or a file: no state) */
        if (P == 0 && K > 1) SK_TRY(noise_initial(s, L, &x, f0));
        SK_TRY(sk_sched_x0(g->be, &x0, &x, &vv, sc->sigma[P]));
        if (s->p.sp.on_step) s->p.sp.on_step(s->p.sp.on_step_user, t.chunk, P, &x, &vv, &x0);
        if (P + 1 < s->steps) {
            SK_TRY(noise_renoise(s, L, &z, f0, t.chunk, P));
            SK_TRY(sk_sched_renoise(g->be, &x, &x0, &z, sc->sigma[P + 1]));
            out = x;
        } else {
            SK_TRY(emit(s, L, f0, n, &x0));
            out = x0; /* the clean pass runs on x0 */
        }
        sk_pp_task nt = t;
        nt.pass = P + 1;
        h = header(SK_PP_MSG_LATENT, nt, f0, n, pass_t(s, P + 1), &out);
        send = 1;
    }
    if (P == s->steps) sk_kv_commit(kv);
    g->busy_s += now_s() - t0;
    if (s->end_seq) s->end_seq[idx * K + k] = atomic_fetch_add(&s->seq, 1);
    if (send) {
        sk_tensor *ts[1] = {&out};
        SK_TRY(tr->ops->send(tr, k, &h, ts, 1));
    }
    return SK_OK;
}

static sk_status run_stage(pp_stage *g)
{
    sk_pp_stream *s = g->s;
    SK_TRY(sk_pp_bind_backend(g->be));
    SK_TRY(s->tr->ops->bind(s->tr, g->k));
    for (int l = 0; l < s->n_lanes; l++) SK_TRY(sk_dit_set_context(g->dit[l], s->ctx[l], s->ctx_rows[l]));
    const int64_t n = sk_pp_sched_count(&s->sched);
    for (int64_t i = 0; i < n; i++) {
        if (atomic_load(&s->stop)) return SK_ERR(SK_E_INTERNAL, "pipeline: stopped");
        sk_pp_task t = sk_pp_sched_task(&s->sched, i);
        sk_status st = run_task(g, t, i);
        if (st != SK_OK) {
            sk_error_prefix("pipeline stage %d (blocks %d..%d, %s), lane %d chunk %d pass %d%s: ",
                            g->k, g->first, g->last - 1, g->be->name, t.lane, t.chunk, t.pass,
                            t.pass == s->steps ? " (clean)" : "");
            return st;
        }
    }
    return s->tr->ops->flush(s->tr, g->k);
}

static void *stage_main(void *arg)
{
    pp_stage *g = arg;
    sk_status st = run_stage(g);
    if (st != SK_OK) fail(g->s, st);
    return NULL;
}

/* ---- setup ---- */

void sk_pp_stream_free(sk_pp_stream **ps)
{
    if (!ps || !*ps) return;
    sk_pp_stream *s = *ps;
    if (s->running) {
        if (s->mu_init) {
            pthread_mutex_lock(&s->mu);
            atomic_store(&s->stop, 1);
            pthread_cond_broadcast(&s->cv);
            pthread_mutex_unlock(&s->mu);
        }
        if (s->tr) s->tr->ops->abort(s->tr);
        for (int k = 0; k < s->K; k++)
            if (s->st[k].started) pthread_join(s->st[k].th, NULL);
    }
    for (int k = 0; k < s->K; k++) {
        pp_stage *g = &s->st[k];
        if (g->be) (void)sk_pp_bind_backend(g->be);
        for (int l = 0; l < SK_PP_MAX_LANES; l++) {
            sk_kv_cache_free(&g->kv[l]);
            sk_dit_ctx_free(&g->dit[l]);
            sk_tensor_free(&g->x[l]);
            sk_tensor_free(&g->v[l]);
            sk_tensor_free(&g->x0[l]);
            sk_tensor_free(&g->z[l]);
        }
        sk_tensor_free(&g->hidden);
        sk_tensor_free(&g->xin);
        free(g->tbuf);
    }
    sk_pp_transport_free(&s->own_tr);
    for (int l = 0; l < SK_PP_MAX_LANES; l++) {
        sk_noise_source_free(&s->own_noise[l]);
        free(s->ctx[l]);
    }
    if (s->mu_init) {
        pthread_mutex_destroy(&s->mu);
        pthread_cond_destroy(&s->cv);
        pthread_mutex_destroy(&s->noise_mu);
    }
    free(s->out_buf);
    free(s->start_seq);
    free(s->end_seq);
    free(s);
    *ps = NULL;
}

static sk_status check_params(const sk_pp_params *p)
{
    const sk_stream_params *sp = &p->sp;
    const int K = p->n_stages;
    SK_CHECK(K >= 1 && K <= SK_PP_MAX_STAGES, SK_E_INVALID_ARG,
             "pipeline: %d stages; expected 1..%d", K, SK_PP_MAX_STAGES);
    SK_CHECK(p->plan.n_stages == K, SK_E_INVALID_ARG, "pipeline: the plan has %d stages, the "
             "params %d", p->plan.n_stages, K);
    SK_CHECK(p->n_lanes >= 0 && p->n_lanes <= SK_PP_MAX_LANES, SK_E_INVALID_ARG,
             "pipeline: %d lanes; expected 1..%d", p->n_lanes, SK_PP_MAX_LANES);
    SK_CHECK(p->out_depth >= 0 && p->out_depth <= 16, SK_E_INVALID_ARG,
             "pipeline: output queue of %d chunks; expected 1..16", p->out_depth);
    for (int k = 0; k < K; k++) {
        SK_CHECK(p->be[k] && p->model[k], SK_E_INVALID_ARG, "pipeline: stage %d has no backend "
                 "or model", k);
        SK_CHECK(p->model[k]->be == p->be[k], SK_E_INVALID_ARG,
                 "pipeline: stage %d's model lives on another backend", k);
        for (int j = 0; j < k; j++)
            SK_CHECK(p->be[j] != p->be[k], SK_E_INVALID_ARG, "pipeline: stages %d and %d share "
                     "a backend object; each stage needs its own (its thread alone uses it)", j, k);
        const sk_dit_config *a = &p->model[0]->cfg, *b = &p->model[k]->cfg;
        SK_CHECK(a->num_layers == b->num_layers && a->dim == b->dim && a->ffn_dim == b->ffn_dim &&
                     a->num_heads == b->num_heads && a->in_dim == b->in_dim &&
                     a->out_dim == b->out_dim && a->text_dim == b->text_dim &&
                     a->text_len == b->text_len && a->freq_dim == b->freq_dim,
                 SK_E_INVALID_ARG, "pipeline: stage %d's model has another config than stage 0's", k);
        SK_CHECK(p->be[k]->act_dtype == p->be[0]->act_dtype, SK_E_INVALID_ARG,
                 "pipeline: stage %d computes in %s, stage 0 in %s", k,
                 sk_dtype_name(p->be[k]->act_dtype), sk_dtype_name(p->be[0]->act_dtype));
        SK_CHECK(p->plan.n_blocks == a->num_layers, SK_E_INVALID_ARG,
                 "pipeline: the plan splits %d blocks; the model has %lld", p->plan.n_blocks,
                 (long long)a->num_layers);
        SK_CHECK(p->plan.first[k] >= p->model[k]->block_first &&
                     p->plan.last[k] <= p->model[k]->block_last,
                 SK_E_INVALID_ARG, "pipeline: stage %d runs blocks %d..%d but its model holds "
                 "%lld..%lld", k, p->plan.first[k], p->plan.last[k] - 1,
                 (long long)p->model[k]->block_first, (long long)p->model[k]->block_last - 1);
    }
    SK_CHECK(!sp->debug, SK_E_UNSUPPORTED, "pipeline: DiT debug dumps are not supported");
    SK_CHECK(!sp->prompt_switch, SK_E_UNSUPPORTED,
             "pipeline: prompt switching (KV recache) is not supported with several stages yet");
    SK_CHECK(sp->kv_policy != SK_KV_ROLLING, SK_E_UNSUPPORTED,
             "pipeline: the rolling policy (joint denoising of a window of chunks) is not "
             "pipelined yet; use fifo, sink, ema or deep-sink");
    SK_CHECK(sp->frames >= 0, SK_E_INVALID_ARG, "stream: %lld frames (--frames)",
             (long long)sp->frames);
    SK_CHECK(sp->frames <= SK_KV_ROPE_MAX_POSITIONS ||
                 sk_kv_rope_resolve(sp->kv_policy, sp->kv_rope) != SK_KV_ROPE_ABSOLUTE,
             SK_E_INVALID_ARG, "stream: %lld frames with absolute RoPE: the model's temporal "
             "positions end at frame %d; use --rope relative for longer videos",
             (long long)sp->frames, SK_KV_ROPE_MAX_POSITIONS - 1);
    SK_CHECK(sp->chunk_frames >= 1 && sp->chunk_frames <= 64, SK_E_INVALID_ARG,
             "stream: chunk of %lld latent frames; expected 1..64 (--chunk)",
             (long long)sp->chunk_frames);
    SK_CHECK(sp->sched.n >= 1, SK_E_INVALID_ARG, "stream: empty step schedule (--steps)");
    SK_CHECK(sp->latent_h >= 2 && sp->latent_w >= 2 && sp->latent_h % 2 == 0 &&
                 sp->latent_w % 2 == 0, SK_E_INVALID_ARG,
             "stream: latent size %lldx%lld; expected even sizes >= 2 (pixels: multiples of 16)",
             (long long)sp->latent_h, (long long)sp->latent_w);
    const sk_dit_config *cf = &p->model[0]->cfg;
    SK_CHECK(cf->in_dim == cf->out_dim, SK_E_UNSUPPORTED,
             "stream: the model maps %lld latent channels to %lld; a sampler needs equal counts",
             (long long)cf->in_dim, (long long)cf->out_dim);
    return SK_OK;
}

sk_status sk_pp_stream_init(const sk_pp_params *p, sk_pp_stream **out)
{
    SK_CHECK(p && out, SK_E_INVALID_ARG, "sk_pp_stream_init: NULL argument");
    *out = NULL;
    SK_TRY(check_params(p));
    sk_pp_stream *s = calloc(1, sizeof *s);
    SK_CHECK(s, SK_E_OOM, "pipeline: out of host memory");
    sk_status st = SK_OK;
    s->p = *p;
    s->K = p->n_stages;
    s->n_lanes = p->n_lanes ? p->n_lanes : 1;
    if (!p->n_lanes) {
        s->p.lanes[0].seed = p->sp.seed;
        s->p.lanes[0].noise = p->sp.noise;
    }
    s->steps = p->sp.sched.n;
    const sk_dit_config *cf = &p->model[0]->cfg;
    s->frames = p->sp.frames;
    s->chunk = p->sp.chunk_frames;
    if (s->frames > 0 && s->frames < s->chunk) s->chunk = s->frames;
    s->n_chunks = s->frames > 0 ? (s->frames + s->chunk - 1) / s->chunk : 0;
    s->C = cf->in_dim;
    s->H = p->sp.latent_h;
    s->W = p->sp.latent_w;
    s->E = s->C * s->H * s->W;
    s->S = (s->H / 2) * (s->W / 2);
    s->sched = (sk_pp_sched){.n_stages = s->K, .n_lanes = s->n_lanes, .steps = s->steps,
                             .n_chunks = s->n_chunks};
    s->total = s->frames > 0 ? s->n_chunks * s->n_lanes : -1;
    s->out_depth = p->out_depth ? p->out_depth : 2;
    atomic_init(&s->stop, 0);
    atomic_init(&s->seq, 0);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    pthread_mutex_init(&s->noise_mu, NULL);
    s->mu_init = 1;

    for (int l = 0; l < s->n_lanes; l++) {
        const sk_pp_lane *ln = &s->p.lanes[l];
        if (s->frames == 0 && ln->noise && sk_noise_source_is_file(ln->noise)) {
            st = SK_ERR(SK_E_INVALID_ARG, "stream: an unbounded stream (frames 0) needs "
                        "generated noise, not a noise file");
            goto fail;
        }
        if (ln->noise) {
            s->noise[l] = ln->noise;
        } else {
            SK_TRY_GOTO(st, sk_noise_source_philox(ln->seed, &s->own_noise[l]), fail);
            s->noise[l] = s->own_noise[l];
        }
        SK_TRY_GOTO(st, sk_noise_source_prepare(s->noise[l], s->frames, s->C, s->H, s->W,
                                                s->chunk, s->steps), fail);
    }

    const sk_dtype act = p->be[0]->act_dtype;
    const size_t asz = sk_dtype_size(act);
    const size_t hid_bytes = (size_t)(s->chunk * s->S * cf->dim) * asz,
                 lat_bytes = (size_t)(s->chunk * s->E) * asz;
    for (int k = 0; k < s->K; k++) {
        pp_stage *g = &s->st[k];
        g->s = s;
        g->k = k;
        g->first = p->plan.first[k];
        g->last = p->plan.last[k];
        g->be = p->be[k];
        g->m = p->model[k];
        SK_TRY_GOTO(st, sk_pp_bind_backend(g->be), fail);
        /* the cache of sk_stream_init (stream.c), for this stage's blocks only */
        const sk_stream_params *sp = &p->sp;
        sk_kv_params kp = {
            .policy = sp->kv_policy, .rope = sp->kv_rope, .window_frames = sp->kv_window,
            .sink_frames = sp->kv_policy == SK_KV_FIFO ? 0
                           : sp->kv_sink < 0 ? sk_kv_default_sink(sp->kv_policy, sp->kv_window,
                                                                  s->chunk)
                                             : sp->kv_sink,
            .max_chunk_frames = s->chunk, .tokens_per_frame = s->S,
            .num_layers = g->last - g->first, .num_heads = cf->num_heads,
            .head_dim = cf->head_dim, .dtype = act, .ema_alpha = sp->ema_alpha,
            .compress_frames = sp->kv_compress, .recent_frames = sp->kv_recent,
            .rope_theta = cf->rope_theta,
        };
        kp.dtype = sk_kv_storage_dtype(&kp, g->be, g->m->fp8_attention, act);
        for (int l = 0; l < s->n_lanes; l++) {
            SK_TRY_GOTO(st, sk_kv_cache_init(g->be, &kp, &g->kv[l]), fail);
            SK_TRY_GOTO(st, sk_dit_ctx_init_blocks(g->m, s->chunk, s->H, s->W,
                                                   (int)g->kv[l]->n_slots + 1, g->first, g->last,
                                                   &g->dit[l]), fail);
        }
        int64_t xs[4] = {s->chunk, s->C, s->H, s->W};
        if (s->K > 1) {
            int64_t hs[2] = {s->chunk * s->S, cf->dim};
            SK_TRY_GOTO(st, sk_tensor_alloc(g->be, act, 2, hs, &g->hidden), fail);
            if (k == 0) SK_TRY_GOTO(st, sk_tensor_alloc(g->be, act, 4, xs, &g->xin), fail);
        }
        if (k == s->K - 1)
            for (int l = 0; l < s->n_lanes; l++) {
                SK_TRY_GOTO(st, sk_tensor_alloc(g->be, act, 4, xs, &g->x[l]), fail);
                SK_TRY_GOTO(st, sk_tensor_alloc(g->be, act, 4, xs, &g->v[l]), fail);
                SK_TRY_GOTO(st, sk_tensor_alloc(g->be, act, 4, xs, &g->x0[l]), fail);
                SK_TRY_GOTO(st, sk_tensor_alloc(g->be, act, 4, xs, &g->z[l]), fail);
            }
        g->tbuf = calloc((size_t)s->chunk, sizeof *g->tbuf);
        if (!g->tbuf) { st = SK_ERR(SK_E_OOM, "pipeline: out of host memory"); goto fail; }
    }
    if (p->transport) {
        s->tr = p->transport;
        if (s->tr->n_stages != s->K || s->tr->max_bytes < hid_bytes ||
            s->tr->max_bytes < lat_bytes || s->tr->depth < 2 * s->n_lanes) {
            st = SK_ERR(SK_E_INVALID_ARG, "pipeline: the transport has %d stages, %zu-byte "
                        "messages and depth %d; this stream needs %d, %zu and %d",
                        s->tr->n_stages, s->tr->max_bytes, s->tr->depth, s->K,
                        hid_bytes > lat_bytes ? hid_bytes : lat_bytes, 2 * s->n_lanes);
            s->tr = NULL;
            goto fail;
        }
    } else {
        SK_TRY_GOTO(st, sk_pp_transport_loopback(s->K, hid_bytes > lat_bytes ? hid_bytes : lat_bytes,
                                                 2 * s->n_lanes + 1, &s->own_tr), fail);
        s->tr = s->own_tr;
    }
    s->out_buf = malloc(sizeof(float) * (size_t)(s->out_depth * s->chunk * s->E));
    if (!s->out_buf) { st = SK_ERR(SK_E_OOM, "pipeline: out of host memory"); goto fail; }
    if (p->trace) {
        if (!(s->frames > 0 && s->n_chunks * (s->steps + 1) * s->n_lanes * s->K < (1 << 24))) {
            st = SK_ERR(SK_E_INVALID_ARG, "pipeline: a trace needs a short bounded run");
            goto fail;
        }
        size_t nt = (size_t)(sk_pp_sched_count(&s->sched) * s->K);
        s->start_seq = malloc(nt * sizeof *s->start_seq);
        s->end_seq = malloc(nt * sizeof *s->end_seq);
        if (!s->start_seq || !s->end_seq) { st = SK_ERR(SK_E_OOM, "pipeline: out of host memory"); goto fail; }
        for (size_t i = 0; i < nt; i++) s->start_seq[i] = s->end_seq[i] = -1;
    }
    char pl[256];
    SK_LOGI("pipeline: %d stage%s (blocks %s), %d lane%s, transport %s", s->K, s->K > 1 ? "s" : "",
            sk_pp_plan_str(&p->plan, pl, sizeof pl), s->n_lanes, s->n_lanes > 1 ? "s" : "",
            s->tr->ops->name);
    *out = s;
    return SK_OK;
fail:
    sk_pp_stream_free(&s);
    return st;
}

sk_status sk_pp_stream_set_prompt(sk_pp_stream *s, int lane, const float *ctx, int64_t rows)
{
    SK_CHECK(lane >= 0 && lane < s->n_lanes, SK_E_INVALID_ARG, "pipeline: lane %d of %d", lane,
             s->n_lanes);
    SK_CHECK(!s->running, SK_E_UNSUPPORTED, "pipeline: a prompt switch while the stages run is "
             "not supported yet");
    const sk_dit_config *cf = &s->p.model[0]->cfg;
    SK_CHECK(ctx && rows >= 1 && rows <= cf->text_len, SK_E_SHAPE,
             "DiT: text embedding with %lld rows; expected 1..%lld (text_len) rows of %lld",
             (long long)rows, (long long)cf->text_len, (long long)cf->text_dim);
    float *c = malloc(sizeof(float) * (size_t)(rows * cf->text_dim));
    SK_CHECK(c, SK_E_OOM, "pipeline: out of host memory");
    memcpy(c, ctx, sizeof(float) * (size_t)(rows * cf->text_dim));
    free(s->ctx[lane]);
    s->ctx[lane] = c;
    s->ctx_rows[lane] = rows;
    return SK_OK;
}

static sk_status start(sk_pp_stream *s)
{
    for (int l = 0; l < s->n_lanes; l++)
        SK_CHECK(s->ctx[l], SK_E_INVALID_ARG, "pipeline: lane %d has no prompt "
                 "(sk_pp_stream_set_prompt)", l);
    s->running = 1;
    s->t_start = now_s();
    for (int k = 0; k < s->K; k++) {
        int e = pthread_create(&s->st[k].th, NULL, stage_main, &s->st[k]);
        if (e != 0) {
            pthread_mutex_lock(&s->mu);
            atomic_store(&s->stop, 1);
            pthread_mutex_unlock(&s->mu);
            s->tr->ops->abort(s->tr);
            return SK_ERR(SK_E_INTERNAL, "pipeline: cannot start stage %d's thread (%s)", k,
                          strerror(e));
        }
        s->st[k].started = 1;
    }
    return SK_OK;
}

int sk_pp_stream_done(const sk_pp_stream *s) { return s->total >= 0 && s->taken >= s->total; }

sk_status sk_pp_stream_next(sk_pp_stream *s, sk_tensor *out, int *lane, int64_t *frame0,
                            int64_t *n, const float **x0_host, sk_tensor *x0)
{
    SK_CHECK(!sk_pp_stream_done(s), SK_E_INVALID_ARG, "stream: all %lld frames already generated",
             (long long)s->frames);
    if (!s->running) {
        SK_CHECK(!s->finished, SK_E_INTERNAL, "pipeline: already finished");
        SK_TRY(start(s));
    }
    pthread_mutex_lock(&s->mu);
    if (s->held) {
        s->out_head = (s->out_head + 1) % s->out_depth;
        s->out_count--;
        s->held = 0;
        pthread_cond_broadcast(&s->cv);
    }
    while (s->out_count == 0 && s->err == SK_OK && !atomic_load(&s->stop))
        pthread_cond_wait(&s->cv, &s->mu);
    if (s->out_count == 0) {
        sk_status e = s->err != SK_OK ? s->err : SK_E_INTERNAL;
        char msg[sizeof s->errmsg];
        memcpy(msg, s->errmsg, sizeof msg);
        pthread_mutex_unlock(&s->mu);
        if (!msg[0]) return SK_ERR(e, "pipeline: stopped");
        return SK_ERR(e, "%s", msg);
    }
    const int slot = s->out_head;
    s->held = 1;
    s->taken++;
    const int ln = s->out_lane[slot];
    const int64_t f0 = s->out_frame0[slot], nn = s->out_n[slot];
    pthread_mutex_unlock(&s->mu);
    const float *h = s->out_buf + (size_t)slot * (size_t)(s->chunk * s->E);
    if (lane) *lane = ln;
    if (frame0) *frame0 = f0;
    if (n) *n = nn;
    if (x0_host) *x0_host = h;
    if (s->total >= 0 && s->taken >= s->total) s->t_end = now_s();
    if (out) {
        SK_CHECK(out->ndim == 4 && out->shape[0] >= nn && out->shape[1] == s->C &&
                     out->shape[2] == s->H && out->shape[3] == s->W,
                 SK_E_SHAPE, "pipeline: the output tensor holds fewer than %lld frames of "
                 "[%lld, %lld, %lld]", (long long)nn, (long long)s->C, (long long)s->H,
                 (long long)s->W);
        sk_tensor v = sk_tensor_rows(out, 0, nn);
        SK_TRY(sk_tensor_upload_f32(&v, h, (size_t)(nn * s->E)));
        if (x0) *x0 = v;
    }
    return SK_OK;
}

sk_status sk_pp_stream_finish(sk_pp_stream *s)
{
    SK_CHECK(sk_pp_stream_done(s), SK_E_INVALID_ARG,
             "pipeline: finish before every chunk was taken (%lld of %lld)", (long long)s->taken,
             (long long)s->total);
    if (s->running) {
        for (int k = 0; k < s->K; k++)
            if (s->st[k].started) {
                pthread_join(s->st[k].th, NULL);
                s->st[k].started = 0;
            }
        s->running = 0;
        s->finished = 1;
    }
    pthread_mutex_lock(&s->mu);
    sk_status e = s->err;
    char msg[sizeof s->errmsg];
    memcpy(msg, s->errmsg, sizeof msg);
    pthread_mutex_unlock(&s->mu);
    if (e != SK_OK) return SK_ERR(e, "%s", msg);
    return SK_OK;
}

void sk_pp_stream_stats(const sk_pp_stream *s, sk_pp_stats *o)
{
    memset(o, 0, sizeof *o);
    for (int k = 0; k < s->K; k++) o->busy_s[k] = s->st[k].busy_s;
    double end = s->t_end > 0 ? s->t_end : now_s();
    o->wall_s = s->t_start > 0 ? end - s->t_start : 0;
    o->tasks = s->frames > 0 ? sk_pp_sched_count(&s->sched) : -1;
    o->start_seq = s->start_seq;
    o->end_seq = s->end_seq;
    o->sched = &s->sched;
}
