/* stream.c - the streaming chunk loop (see stream.h). */
#include "runtime/stream/stream.h"

#include <stdlib.h>
#include <string.h>

#include "runtime/core/log.h"
#include "runtime/stream/stream_rolling.h"
#include "runtime/stream/stream_unipc.h"
#include "runtime/stream/v2v.h"

sk_stream_params sk_stream_params_default(void)
{
    sk_stream_params p;
    memset(&p, 0, sizeof p);
    p.chunk_frames = 3;
    static const int steps[4] = {1000, 750, 500, 250};
    (void)sk_schedule_make(steps, 4, 5.0, 1, &p.sched);
    p.kv_policy = SK_KV_SINK;
    p.kv_window = 12;
    p.kv_sink = 3;
    p.kv_rope = SK_KV_ROPE_AUTO;
    p.ema_alpha = 0.999;
    p.kv_recent = 4;
    p.context_t = 0.0f;
    p.sampler = SK_SAMPLER_RENOISE;
    (void)sk_unipc_table_make(4, 5.0, &p.unipc);
    p.shot_rope_offset = 8;
    return p;
}

void sk_stream_free(sk_stream **ps)
{
    if (!ps || !*ps) return;
    sk_stream *s = *ps;
    sk_kv_cache_free(&s->kv);
    sk_dit_ctx_free(&s->dit);
    sk_tensor_free(&s->roll_state);
    sk_tensor_free(&s->roll_x);
    sk_tensor_free(&s->roll_v);
    sk_tensor_free(&s->roll_x0);
    sk_tensor_free(&s->roll_z);
    sk_noise_source_free(&s->own_noise);
    sk_tensor_free(&s->x);
    sk_tensor_free(&s->v);
    sk_tensor_free(&s->x0);
    sk_tensor_free(&s->z);
    sk_tensor_free(&s->ring);
    sk_tensor_free(&s->rec_x);
    sk_tensor_free(&s->rec_v);
    sk_tensor_free(&s->sink_lat);
    for (int i = 0; i < 3; i++) sk_tensor_free(&s->um[i]);
    sk_tensor_free(&s->image_lat);
    free(s->tbuf);
    free(s);
    *ps = NULL;
}

sk_status sk_stream_init(const sk_dit_model *m, const sk_stream_params *p, sk_stream **out)
{
    SK_CHECK(m && p && out, SK_E_INVALID_ARG, "sk_stream_init: NULL argument");
    *out = NULL;
    const sk_dit_config *cf = &m->cfg;
    SK_CHECK(p->frames >= 0, SK_E_INVALID_ARG, "stream: %lld frames (--frames)",
             (long long)p->frames);
    SK_CHECK(p->chunk_frames >= 1 && p->chunk_frames <= 64, SK_E_INVALID_ARG,
             "stream: chunk of %lld latent frames; expected 1..64 (--chunk)",
             (long long)p->chunk_frames);
    SK_CHECK(p->sched.n >= 1, SK_E_INVALID_ARG, "stream: empty step schedule (--steps)");
    SK_CHECK(p->frames > 0 || !p->noise || !sk_noise_source_is_file(p->noise), SK_E_INVALID_ARG,
             "stream: an unbounded stream (frames 0) needs generated noise, not a noise file");
    SK_CHECK(p->latent_h >= 2 && p->latent_w >= 2 && p->latent_h % 2 == 0 &&
                 p->latent_w % 2 == 0, SK_E_INVALID_ARG,
             "stream: latent size %lldx%lld; expected even sizes >= 2 (pixels: multiples of 16)",
             (long long)p->latent_h, (long long)p->latent_w);
    SK_CHECK(cf->in_dim == cf->out_dim, SK_E_UNSUPPORTED,
             "stream: the model maps %lld latent channels to %lld; a sampler needs equal counts",
             (long long)cf->in_dim, (long long)cf->out_dim);
    SK_CHECK(p->recache >= SK_RECACHE_WINDOW && p->recache <= SK_RECACHE_WITH_SINK,
             SK_E_INVALID_ARG, "stream: unknown recache mode %d", (int)p->recache);
    sk_stream *s = calloc(1, sizeof *s);
    SK_CHECK(s, SK_E_OOM, "stream: out of host memory");
    s->m = m;
    s->be = m->be;
    s->p = *p;
    sk_status st = SK_OK;
    int64_t chunk = p->chunk_frames;
    if (p->frames > 0 && p->frames < chunk) chunk = p->frames;
    s->p.chunk_frames = chunk;

    const int rolling = p->kv_policy == SK_KV_ROLLING;
    sk_kv_params kp = {
        .policy = p->kv_policy, .rope = p->kv_rope, .window_frames = p->kv_window,
        .sink_frames = p->kv_policy == SK_KV_FIFO ? 0
                       : p->kv_sink < 0 ? sk_kv_default_sink(p->kv_policy, p->kv_window, chunk)
                                        : p->kv_sink,
        .max_chunk_frames = chunk, .tokens_per_frame = (p->latent_h / 2) * (p->latent_w / 2),
        .num_layers = cf->num_layers, .num_heads = cf->num_heads, .head_dim = cf->head_dim,
        .dtype = s->be->act_dtype, .ema_alpha = p->ema_alpha, .compress_frames = p->kv_compress,
        .recent_frames = p->kv_recent, .roll_chunks = rolling ? p->sched.n : 0,
        .rope_theta = cf->rope_theta, .shot_rope_offset = p->shot_rope_offset,
    };
    kp.dtype = sk_kv_storage_dtype(&kp, s->be, m->fp8_attention, s->be->act_dtype);
    if (p->sampler == SK_SAMPLER_UNIPC && (rolling || p->unipc.n < 1)) {
        st = SK_ERR(SK_E_INVALID_ARG, "stream: --sampler unipc %s",
                    rolling ? "does not work with --kv-policy rolling" : "needs --num-steps");
        goto fail;
    }
    if (p->kv_policy == SK_KV_MULTISHOT && p->prompt_switch && p->recache != SK_RECACHE_OFF) {
        st = SK_ERR(SK_E_UNSUPPORTED, "stream: multishot switches prompts without a KV re-cache "
                    "(sk_stream_params.recache = SK_RECACHE_OFF, --recache off)");
        goto fail;
    }
    if (p->kv_policy == SK_KV_MULTISHOT && p->frames > 0 && p->frames % chunk != 0) {
        st = SK_ERR(SK_E_INVALID_ARG, "stream: multishot works in whole chunks: %lld frames are "
                    "not a multiple of --chunk %lld", (long long)p->frames, (long long)chunk);
        goto fail;
    }
    /* multishot computes its RoPE angles directly (no 1024-entry table) */
    if (p->kv_policy != SK_KV_MULTISHOT && p->frames > SK_KV_ROPE_MAX_POSITIONS &&
        sk_kv_rope_resolve(p->kv_policy, p->kv_rope) == SK_KV_ROPE_ABSOLUTE) {
        st = SK_ERR(SK_E_INVALID_ARG, "stream: %lld frames with absolute RoPE: the model's "
                    "temporal positions end at frame %d (a %d-entry table); use --rope relative "
                    "(positions within the KV window) for longer videos", (long long)p->frames,
                    SK_KV_ROPE_MAX_POSITIONS - 1, SK_KV_ROPE_MAX_POSITIONS);
        goto fail;
    }
    if (rolling && p->frames % chunk != 0) {
        st = SK_ERR(SK_E_INVALID_ARG, "stream: rolling denoises whole chunks: %lld frames are "
                    "not a multiple of --chunk %lld", (long long)p->frames, (long long)chunk);
        goto fail;
    }
    SK_TRY_GOTO(st, sk_kv_cache_init(s->be, &kp, &s->kv), fail);
    /* a prompt-switch recache runs up to kv_window frames in one pass; a rolling window
     * (steps) chunks */
    int64_t max_pass = p->prompt_switch && p->kv_window > chunk ? p->kv_window : chunk;
    if (rolling && p->sched.n * chunk > max_pass) max_pass = p->sched.n * chunk;
    SK_TRY_GOTO(st, sk_dit_ctx_init(m, max_pass, p->latent_h, p->latent_w,
                                    (int)s->kv->n_slots + 1, &s->dit), fail);
    s->dit->debug = p->debug;
    s->dit->debug_user = p->debug_user;
    if (p->noise) {
        s->noise = p->noise;
    } else {
        SK_TRY_GOTO(st, sk_noise_source_philox(p->seed, &s->own_noise), fail);
        s->noise = s->own_noise;
    }
    /* UniPC draws no fresh noise: only the initial noise is read */
    SK_TRY_GOTO(st, sk_noise_source_prepare(s->noise, p->frames, cf->in_dim, p->latent_h,
                                            p->latent_w, chunk,
                                            p->sampler == SK_SAMPLER_UNIPC ? 1 : p->sched.n),
                fail);
    if (rolling) SK_TRY_GOTO(st, sk_stream_rolling_init(s), fail);
    int64_t xs[4] = {chunk, cf->in_dim, p->latent_h, p->latent_w};
    SK_TRY_GOTO(st, sk_tensor_alloc(s->be, s->be->act_dtype, 4, xs, &s->x), fail);
    SK_TRY_GOTO(st, sk_tensor_alloc(s->be, s->be->act_dtype, 4, xs, &s->v), fail);
    SK_TRY_GOTO(st, sk_tensor_alloc(s->be, s->be->act_dtype, 4, xs, &s->x0), fail);
    SK_TRY_GOTO(st, sk_tensor_alloc(s->be, s->be->act_dtype, 4, xs, &s->z), fail);
    if (p->sampler == SK_SAMPLER_UNIPC)
        for (int i = 0; i < 3; i++)
            SK_TRY_GOTO(st, sk_tensor_alloc(s->be, s->be->act_dtype, 4, xs, &s->um[i]), fail);
    if (p->prompt_switch) {
        int64_t rs[4] = {p->kv_window, cf->in_dim, p->latent_h, p->latent_w};
        SK_TRY_GOTO(st, sk_tensor_alloc(s->be, s->be->act_dtype, 4, rs, &s->ring), fail);
        SK_TRY_GOTO(st, sk_tensor_alloc(s->be, s->be->act_dtype, 4, rs, &s->rec_x), fail);
        SK_TRY_GOTO(st, sk_tensor_alloc(s->be, s->be->act_dtype, 4, rs, &s->rec_v), fail);
        if (p->recache == SK_RECACHE_WITH_SINK && s->kv->p.sink_frames > 0) {
            int64_t ks[4] = {s->kv->p.sink_frames, cf->in_dim, p->latent_h, p->latent_w};
            SK_TRY_GOTO(st, sk_tensor_alloc(s->be, s->be->act_dtype, 4, ks, &s->sink_lat), fail);
        }
    }
    s->tbuf = calloc((size_t)max_pass, sizeof *s->tbuf);
    if (!s->tbuf) { st = SK_ERR(SK_E_OOM, "stream: out of host memory"); goto fail; }
    *out = s;
    return SK_OK;
fail:
    sk_stream_free(&s);
    return st;
}

sk_status sk_stream_set_prompt(sk_stream *s, const float *ctx, int64_t rows)
{
    s->have_prompt = 0;
    SK_TRY(sk_dit_set_context(s->dit, ctx, rows));
    s->have_prompt = 1;
    return SK_OK;
}

/* One t = 0 pass over frames [f0, f0 + n) (clean latents already in rec_x
 * rows 0..n-1) that rewrites their cached K/V under the current prompt. */
static sk_status recompute(sk_stream *s, int64_t f0, int64_t n, int protect_sink)
{
    sk_tensor x = sk_tensor_rows(&s->rec_x, 0, n), v = sk_tensor_rows(&s->rec_v, 0, n);
    for (int64_t f = 0; f < n; f++) s->tbuf[f] = s->p.context_t;
    SK_TRY(sk_kv_begin_recompute(s->kv, f0, n, protect_sink));
    sk_status st = sk_dit_forward(s->dit, s->kv, &x, s->tbuf, f0, &v);
    if (st != SK_OK) {
        sk_kv_abort(s->kv);
        return st;
    }
    sk_kv_commit(s->kv);
    return SK_OK;
}

static sk_status recache(sk_stream *s)
{
    const int64_t W = s->p.kv_window, next = s->next_frame;
    const int64_t n = next < W ? next : W, r0 = next - n;
    /* --recache-sink: the sink frames first, at their own positions, when the window pass
     * below does not cover them */
    const int64_t ns = s->sink_lat.data ? s->sink_lat.shape[0] : 0;
    s->rec_sink_n = 0;
    if (ns > 0 && r0 > 0) {
        sk_tensor dst = sk_tensor_rows(&s->rec_x, 0, ns);
        SK_TRY(sk_tensor_copy(&dst, &s->sink_lat));
        SK_TRY(recompute(s, 0, ns, 0));
        s->rec_sink_n = ns;
    }
    /* the clean latents of frames r0..next-1, in order, from the ring */
    for (int64_t i = 0; i < n; i++) {
        sk_tensor dst = sk_tensor_rows(&s->rec_x, i, 1);
        sk_tensor src = sk_tensor_rows(&s->ring, (r0 + i) % W, 1);
        SK_TRY(sk_tensor_copy(&dst, &src));
    }
    /* LongLive protects the sink on a recompute that does not start at frame 0 */
    SK_TRY(recompute(s, r0, n, r0 > 0));
    s->rec_n = n;
    s->rec_f0 = r0;
    if (s->rec_sink_n)
        SK_LOGI("prompt switch at frame %lld: recached sink frames 0..%lld and frames %lld..%lld",
                (long long)next, (long long)ns - 1, (long long)r0, (long long)(next - 1));
    else
        SK_LOGI("prompt switch at frame %lld: recached frames %lld..%lld", (long long)next,
                (long long)r0, (long long)(next - 1));
    return SK_OK;
}

sk_status sk_stream_switch_prompt(sk_stream *s, const float *ctx, int64_t rows)
{
    SK_CHECK(!s->broken, SK_E_INVALID_ARG, "stream: a failed prompt switch lost the KV cache; "
             "start a new stream");
    if (s->next_frame == 0) return sk_stream_set_prompt(s, ctx, rows);
    if (s->p.recache == SK_RECACHE_OFF) {
        SK_TRY(sk_stream_set_prompt(s, ctx, rows));
        s->n_switches++;
        s->rec_n = s->rec_sink_n = 0;
        SK_LOGI("prompt switch at frame %lld: hard switch (no recache)", (long long)s->next_frame);
        return SK_OK;
    }
    SK_CHECK(s->p.prompt_switch, SK_E_INVALID_ARG, "stream: prompt switching was not enabled "
             "when the stream was created (sk_stream_params.prompt_switch)");
    SK_TRY(sk_stream_set_prompt(s, ctx, rows));
    s->n_switches++;
    sk_status st = recache(s);
    if (st != SK_OK) {
        s->broken = 1;
        sk_error_prefix("prompt switch at frame %lld: ", (long long)s->next_frame);
    }
    return st;
}

sk_status sk_stream_cut(sk_stream *s)
{
    SK_CHECK(s->p.kv_policy == SK_KV_MULTISHOT, SK_E_INVALID_ARG,
             "stream: a shot cut (\"cut\": true) needs --kv-policy multishot");
    if (s->next_frame == 0) return SK_OK; /* the first chunk is the first shot */
    SK_TRY(sk_kv_multishot_cut(s->kv));
    SK_LOGI("shot cut at frame %lld: RoPE offset %lld frames, pinned as the shot sink",
            (long long)s->next_frame, (long long)(s->kv->ms_shot + 1) * s->p.shot_rope_offset);
    return SK_OK;
}

int sk_stream_done(const sk_stream *s) { return s->p.frames > 0 && s->next_frame >= s->p.frames; }

static sk_status run_chunk(sk_stream *s, int64_t f0, int64_t n)
{
    if (s->p.sampler == SK_SAMPLER_UNIPC) return sk_stream_unipc_chunk(s, f0, n);
    const sk_schedule *sc = &s->p.sched;
    sk_backend *be = s->be;
    sk_tensor x = sk_tensor_rows(&s->x, 0, n), v = sk_tensor_rows(&s->v, 0, n),
              x0 = sk_tensor_rows(&s->x0, 0, n), z = sk_tensor_rows(&s->z, 0, n);
    SK_TRY(sk_noise_initial(s->noise, &x, f0));
    int k0 = 0;
    if (s->in_lat && s->in_start > 0) { /* video-to-video: the input noised to step k0 */
        k0 = s->in_start;
        sk_tensor in = sk_tensor_rows(s->in_lat, 0, n);
        SK_TRY(sk_v2v_noise_input(be, &x, &in, &x, sc->sigma[k0]));
    }
    for (int k = k0; k < sc->n; k++) {
        for (int64_t f = 0; f < n; f++) s->tbuf[f] = sc->t[k];
        SK_TRY(sk_dit_forward(s->dit, s->kv, &x, s->tbuf, f0, &v));
        SK_TRY(sk_sched_x0(be, &x0, &x, &v, sc->sigma[k]));
        if (s->p.on_step) s->p.on_step(s->p.on_step_user, s->chunk_index, k, &x, &v, &x0);
        if (k + 1 < sc->n) {
            SK_TRY(sk_noise_renoise(s->noise, &z, f0, s->chunk_index, k));
            SK_TRY(sk_sched_renoise(be, &x, &x0, &z, sc->sigma[k + 1]));
        }
    }
    /* clean pass: only the chunk's clean K/V are wanted, so no output */
    for (int64_t f = 0; f < n; f++) s->tbuf[f] = s->p.context_t;
    SK_TRY(sk_dit_forward(s->dit, s->kv, &x0, s->tbuf, f0, NULL));
    return SK_OK;
}

sk_status sk_stream_step(sk_stream *s, sk_tensor *x0, int64_t *frame0)
{
    SK_CHECK(!s->broken, SK_E_INVALID_ARG, "stream: a failed prompt switch lost the KV cache; "
             "start a new stream");
    SK_CHECK(s->have_prompt, SK_E_INVALID_ARG, "stream: no prompt set (sk_stream_set_prompt)");
    SK_CHECK(!sk_stream_done(s), SK_E_INVALID_ARG, "stream: all %lld frames already generated",
             (long long)s->p.frames);
    if (s->p.kv_policy == SK_KV_ROLLING) return sk_stream_rolling_step(s, x0, frame0);
    int64_t f0 = s->next_frame, n = s->p.chunk_frames;
    if (s->p.frames > 0 && f0 + n > s->p.frames) n = s->p.frames - f0;
    SK_TRY(sk_kv_begin_chunk(s->kv, f0, n));
    sk_status st = run_chunk(s, f0, n);
    if (st != SK_OK) {
        sk_kv_abort(s->kv); /* the cache and frame counter stay as before this chunk */
        sk_error_prefix("chunk %d (frames %lld..%lld): ", s->chunk_index, (long long)f0,
                        (long long)(f0 + n - 1));
        return st;
    }
    /* keep the clean latents for a later prompt-switch recache (ring by frame; the sink
     * frames also apart for --recache-sink) */
    for (int64_t f = 0; s->p.prompt_switch && f < n; f++) {
        sk_tensor dst = sk_tensor_rows(&s->ring, (f0 + f) % s->p.kv_window, 1);
        sk_tensor src = sk_tensor_rows(&s->x0, f, 1);
        st = sk_tensor_copy(&dst, &src);
        if (st == SK_OK && s->sink_lat.data && f0 + f < s->sink_lat.shape[0]) {
            sk_tensor ds = sk_tensor_rows(&s->sink_lat, f0 + f, 1);
            st = sk_tensor_copy(&ds, &src);
        }
        if (st != SK_OK) {
            sk_kv_abort(s->kv);
            return st;
        }
    }
    sk_kv_commit(s->kv);
    s->next_frame = f0 + n;
    s->chunk_index++;
    if (x0) *x0 = sk_tensor_rows(&s->x0, 0, n);
    if (frame0) *frame0 = f0;
    return SK_OK;
}

int64_t sk_stream_next_chunk_frames(const sk_stream *s)
{
    if (sk_stream_done(s)) return 0;
    int64_t n = s->p.chunk_frames;
    if (s->p.frames > 0 && s->next_frame + n > s->p.frames) n = s->p.frames - s->next_frame;
    return n;
}

sk_status sk_stream_step_from(sk_stream *s, const sk_tensor *in_lat, int start, sk_tensor *x0,
                              int64_t *frame0)
{
    SK_CHECK(s && in_lat, SK_E_INVALID_ARG, "sk_stream_step_from: NULL argument");
    SK_CHECK(s->p.kv_policy != SK_KV_ROLLING, SK_E_UNSUPPORTED, "video-to-video does not work "
             "with --kv-policy rolling (its windows hold chunks at different noise levels)");
    const int N = s->p.sampler == SK_SAMPLER_UNIPC ? s->p.unipc.n : s->p.sched.n;
    SK_CHECK(start >= 0 && start < N, SK_E_INVALID_ARG, "video-to-video: start step %d; the "
             "sampler has %d steps (0..%d)", start, N, N - 1);
    const int64_t n = sk_stream_next_chunk_frames(s);
    SK_CHECK(in_lat->ndim == 4 && in_lat->shape[0] >= n && in_lat->shape[1] == s->x.shape[1] &&
                 in_lat->shape[2] == s->p.latent_h && in_lat->shape[3] == s->p.latent_w &&
                 in_lat->dtype == s->x.dtype, SK_E_SHAPE,
             "video-to-video: input latents [%lld, %lld, %lld, %lld] %s; the chunk needs [%lld, "
             "%lld, %lld, %lld] %s", (long long)in_lat->shape[0], (long long)in_lat->shape[1],
             (long long)in_lat->shape[2], (long long)in_lat->shape[3],
             sk_dtype_name(in_lat->dtype), (long long)n, (long long)s->x.shape[1],
             (long long)s->p.latent_h, (long long)s->p.latent_w, sk_dtype_name(s->x.dtype));
    s->in_lat = in_lat;
    s->in_start = start;
    sk_status st = sk_stream_step(s, x0, frame0);
    s->in_lat = NULL;
    s->in_start = 0;
    return st;
}
