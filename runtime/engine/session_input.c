/* session_input.c - video-to-video for a session (sk_session_attach_input,
 * docs/INPUTS.md): each chunk reads its 4n input frames (runtime/input), encodes
 * them with the engine's TAEHV encoder (streaming state carried from chunk to
 * chunk), and the stream denoises from the strength's start step
 * (runtime/stream/v2v.h). Latency: every input frame's arrival is kept by index;
 * when output frame j is handed to the outputs, input frame j + 3 is the one it
 * shows (the decoder trims its first 3 frames, TAEHV spec A5).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/core/log.h"
#include "runtime/core/progress.h"
#include "runtime/engine/engine_impl.h"
#include "runtime/input/input.h"
#include "runtime/stream/v2v.h"

struct sk_session_v2v {
    sk_input *in;
    sk_taehv_enc_stream *enc;
    double strength;
    int start;              /* first sampler step of every chunk */
    int64_t max_frames;     /* 4 * chunk */
    float *frames;          /* [4 * chunk, 3, H, W] host */
    double *arrival;        /* [4 * chunk] */
    int64_t n_lat;          /* latent frames of the prepared chunk (0: none prepared) */
    int64_t n_real;         /* input frames in it (the rest repeat the last) */
    int64_t used;           /* input frames encoded so far */
    int ended;
    int hooked;             /* the live status reads the input's state at each request */
    pthread_mutex_t mu;     /* lat */
    sk_latency lat;
};

sk_session_input_opts sk_session_input_opts_default(void)
{
    sk_session_input_opts o;
    memset(&o, 0, sizeof o);
    o.strength = 0.6;
    o.reconnect_max_ms = 8000;
    return o;
}

void sk_session_input_free(sk_session *s)
{
    sk_session_v2v *v = s->v2v;
    if (!v) return;
    if (v->hooked && s->lv.ctl) sk_control_set_status_hook(s->lv.ctl, NULL, NULL);
    sk_input_close(&v->in);
    sk_taehv_enc_stream_free(&v->enc);
    free(v->frames);
    free(v->arrival);
    pthread_mutex_destroy(&v->mu);
    free(v);
    s->v2v = NULL;
}

sk_status sk_session_attach_input(sk_session *s, const char *src, const sk_session_input_opts *o)
{
    SK_API_SESSION(s);
    sk_session_input_opts d = sk_session_input_opts_default();
    if (!o) o = &d;
    SK_CHECK(!s->v2v, SK_E_INVALID_ARG, "sk_session_attach_input: the session has an input "
             "already");
    SK_CHECK(s->chunks == 0 && !s->finished, SK_E_INVALID_ARG, "sk_session_attach_input: before "
             "the first step");
    SK_CHECK(o->synthetic || (src && *src), SK_E_INVALID_ARG, "--input: empty source");
    SK_TRY(sk_v2v_check_strength(o->strength, "--strength"));
    sk_engine *e = s->e;
    SK_CHECK(s->s, SK_E_UNSUPPORTED, "--input: video-to-video needs the DiT on one backend "
             "(not with --gpus / --pp-stages yet)");
    SK_CHECK(!s->s->image_lat.data, SK_E_UNSUPPORTED, "--input: the session has an image latent "
             "(--image / sk_session_set_image_latent); image-to-video and video-to-video do not "
             "combine (the image would replace the input's first frame); use one of them");
    SK_CHECK(s->sp.kv_policy != SK_KV_ROLLING, SK_E_UNSUPPORTED, "--input: video-to-video does "
             "not work with --kv-policy rolling (its windows hold chunks at different noise "
             "levels)");
    SK_CHECK(e->vae, SK_E_INVALID_ARG, "--input needs the TAEHV VAE (--vae FILE, or the model "
             "directory's) to encode the input frames");
    const sk_taehv_config *vc = sk_taehv_get_config(e->vae);
    SK_CHECK(vc->has_encoder, SK_E_INVALID_ARG, "--input: the VAE file has no encoder "
             "(encoder.* tensors); video-to-video needs a TAEHV checkpoint with both halves "
             "(taew2_1 / taew2_2 as published have them)");
    sk_session_v2v *v = calloc(1, sizeof *v);
    SK_CHECK(v, SK_E_OOM, "--input: out of memory");
    pthread_mutex_init(&v->mu, NULL);
    s->v2v = v;
    v->strength = o->strength;
    const int N = s->sp.sampler == SK_SAMPLER_UNIPC ? s->sp.unipc.n : s->sp.sched.n;
    v->start = sk_v2v_start_index(N, o->strength);
    v->max_frames = 4 * s->chunk;
    const int64_t H = s->p.latent_h * vc->space_factor, W = s->p.latent_w * vc->space_factor;
    sk_status st = SK_OK;
    v->frames = malloc((size_t)(v->max_frames * 3 * H * W) * sizeof(float));
    v->arrival = calloc((size_t)v->max_frames, sizeof(double));
    if (!v->frames || !v->arrival) {
        st = SK_ERR(SK_E_OOM, "--input: out of host memory for %lld frames of %lldx%lld",
                    (long long)v->max_frames, (long long)W, (long long)H);
        goto fail;
    }
    pthread_mutex_lock(&e->mu); /* allocation on the engine's backend: as session_setup */
    st = sk_taehv_enc_stream_create(e->vae, H, W, (int)v->max_frames, &v->enc);
    pthread_mutex_unlock(&e->mu);
    if (st != SK_OK) goto fail;
    sk_input_opts io = {.format = o->format, .options = o->options, .width = W, .height = H,
                        .fps_num = s->p.fps_num > 0 ? s->p.fps_num : s->p.fps,
                        .fps_den = s->p.fps_num > 0 ? s->p.fps_den : 1,
                        .realtime = o->realtime, .timeout_ms = o->timeout_ms,
                        .reconnect_max_ms = o->reconnect_max_ms,
                        .queue_frames = o->queue_frames > 0 ? o->queue_frames
                                                            : (int)(8 * v->max_frames),
                        /* a live source: two chunks' worth, so a slow generator drops old
                         * frames instead of falling seconds behind the camera */
                        .live_queue_frames = o->queue_frames > 0 ? o->queue_frames
                                                                 : (int)(2 * v->max_frames)};
    st = o->synthetic ? sk_input_open_synthetic(&io, o->synthetic_frames, &v->in)
                      : sk_input_open(src, &io, &v->in);
    if (st != SK_OK) goto fail;
    sk_input_set_stop(v->in, &s->stop_flag);
    /* absolute RoPE ends at latent frame 1023: an input longer than that (256 s at 16 fps)
     * ends the run there cleanly instead of failing the chunk that would cross it */
    if (s->p.frames == 0 && s->sp.kv_policy != SK_KV_MULTISHOT &&
        sk_kv_rope_resolve(s->sp.kv_policy, s->sp.kv_rope) == SK_KV_ROPE_ABSOLUTE) {
        s->s->p.frames = s->p.frames = SK_KV_ROPE_MAX_POSITIONS;
        SK_LOGI("video-to-video: absolute RoPE: the run ends at latent frame %d at the latest "
                "(--rope relative has no limit)", SK_KV_ROPE_MAX_POSITIONS - 1);
    }
    SK_LOGI("video-to-video: strength %.3g -> %d of %d sampler steps run a chunk (from step %d, "
            "sigma %.4g)%s", o->strength, N - v->start, N, v->start,
            s->sp.sampler == SK_SAMPLER_UNIPC ? (double)s->sp.unipc.sigma[v->start]
                                              : (double)s->sp.sched.sigma[v->start],
            v->start == 0 ? ": the input is not used (text-to-video)" : "");
    return SK_OK;
fail:
    sk_session_input_free(s);
    return st;
}

/* Reads the next chunk's frames; *end when the input has none left (or the session is
 * stopping). A short last read becomes a shorter last chunk (padded to whole latents with
 * the last frame; multishot: to the whole chunk). */
sk_status sk_session_input_prepare(sk_session *s, int *end)
{
    sk_session_v2v *v = s->v2v;
    *end = 0;
    v->n_lat = 0;
    const int64_t n = sk_stream_next_chunk_frames(s->s);
    if (n == 0 || v->ended) {
        *end = 1;
        return SK_OK;
    }
    const int64_t need = 4 * n;
    int64_t got = 0;
    SK_TRY(sk_input_read(v->in, v->frames, need, v->arrival, &got));
    if (got < need && __atomic_load_n(&s->stop_flag, __ATOMIC_ACQUIRE)) {
        *end = 1; /* stopped while waiting for frames: the partial chunk is not made */
        return SK_OK;
    }
    if (got == 0) {
        v->ended = 1;
        *end = 1;
        SK_CHECK(v->used > 0, SK_E_FORMAT, "--input: the input ended before its first frame");
        SK_LOGI("video-to-video: the input ended after %lld frames", (long long)v->used);
        return SK_OK;
    }
    int64_t nl = n;
    if (got < need) { /* the input's last frames */
        v->ended = 1;
        if (s->sp.kv_policy != SK_KV_MULTISHOT) nl = (got + 3) / 4;
        const int64_t fr = 4 * nl, fsz = (int64_t)sk_taehv_get_config(s->e->vae)->space_factor;
        const int64_t fe = 3 * (s->p.latent_h * fsz) * (s->p.latent_w * fsz);
        for (int64_t i = got; i < fr; i++) {
            memcpy(v->frames + i * fe, v->frames + (got - 1) * fe, (size_t)fe * sizeof(float));
            v->arrival[i] = v->arrival[got - 1];
        }
        const int64_t f0 = s->s->next_frame;
        s->s->p.frames = s->p.frames = f0 + nl; /* the stream ends with this chunk */
        SK_LOGI("video-to-video: the input ended: its last %lld frames make a last chunk of %lld "
                "latent frames", (long long)got, (long long)nl);
    }
    pthread_mutex_lock(&v->mu);
    sk_latency_in(&v->lat, v->used, got, v->arrival);
    pthread_mutex_unlock(&v->mu);
    v->used += got;
    v->n_real = got;
    v->n_lat = nl;
    return SK_OK;
}

/* Encodes the prepared frames and runs the chunk from the start step. */
sk_status sk_session_input_step(sk_session *s, sk_tensor *x0, int64_t *f0)
{
    sk_session_v2v *v = s->v2v;
    SK_CHECK(v->n_lat > 0, SK_E_INTERNAL, "video-to-video: no input frames prepared");
    const int64_t fsz = (int64_t)sk_taehv_get_config(s->e->vae)->space_factor;
    int64_t shape[4] = {4 * v->n_lat, 3, s->p.latent_h * fsz, s->p.latent_w * fsz};
    sk_tensor fr = sk_tensor_desc(SK_DTYPE_F32, 4, shape);
    fr.data = v->frames; /* host memory: the encoder uploads it */
    sk_tensor lat;
    sk_meter_phase(s, "vae-encode"); /* the op profile: the input's encode apart */
    sk_status st = sk_taehv_enc_stream_push(v->enc, &fr, &lat);
    sk_meter_phase(s, "dit");
    SK_TRY(st);
    SK_CHECK(lat.ndim == 4 && lat.shape[0] == v->n_lat, SK_E_INTERNAL, "video-to-video: %lld "
             "frames encoded to %lld latents; expected %lld", (long long)shape[0],
             (long long)(lat.data ? lat.shape[0] : 0), (long long)v->n_lat);
    /* the encoder may run on the VAE's own stream (overlap): done before the DiT reads it */
    sk_backend *vb = sk_taehv_backend(s->e->vae);
    if (vb != s->e->be) SK_TRY(sk_backend_sync(vb));
    v->n_lat = 0;
    return sk_stream_step_from(s->s, &lat, v->start, x0, f0);
}

void sk_session_input_frames_out(sk_session *s, int64_t first, int64_t n)
{
    sk_session_v2v *v = s->v2v;
    if (!v || n <= 0) return;
    const double now = sk_progress_now();
    pthread_mutex_lock(&v->mu);
    sk_latency_out(&v->lat, first, n, sk_taehv_get_config(s->e->vae)->frames_to_trim, now);
    pthread_mutex_unlock(&v->mu);
}

static void fill_status(sk_session_v2v *v, sk_session_input_status *out)
{
    sk_input_stats st;
    sk_input_get_stats(v->in, &st);
    memcpy(out->state, st.state, sizeof out->state);
    memcpy(out->kind, st.kind, sizeof out->kind);
    out->src_width = st.src_width;
    out->src_height = st.src_height;
    out->src_fps = st.src_fps;
    out->decoded = st.decoded;
    out->frames = st.frames;
    out->repeated = st.repeated;
    out->skipped = st.skipped;
    out->dropped = st.dropped;
    out->reconnects = st.reconnects;
    memcpy(out->error, st.error, sizeof out->error);
    out->used = v->used;
    out->strength = v->strength;
    out->start_step = v->start;
    pthread_mutex_lock(&v->mu);
    out->latency_n = v->lat.n;
    out->latency_p50_ms = sk_latency_percentile(&v->lat, 50);
    out->latency_p99_ms = sk_latency_percentile(&v->lat, 99);
    out->latency_max_ms = v->lat.max_ms;
    pthread_mutex_unlock(&v->mu);
}

sk_status sk_session_get_input_status(const sk_session *cs, sk_session_input_status *out)
{
    SK_CHECK(out, SK_E_INVALID_ARG, "sk_session_get_input_status: out is NULL");
    memset(out, 0, sizeof *out);
    sk_session *s = (sk_session *)cs;
    SK_API_SESSION(s);
    if (s->v2v) fill_status(s->v2v, out);
    return SK_OK;
}

static void to_ctl(const sk_session_input_status *is, sk_ctl_status *c)
{
    memcpy(c->in_state, is->state, sizeof c->in_state);
    memcpy(c->in_kind, is->kind, sizeof c->in_kind);
    c->in_frames = is->frames;
    c->in_dropped = is->dropped;
    c->in_repeated = is->repeated;
    c->in_skipped = is->skipped;
    c->in_reconnects = is->reconnects;
    c->in_strength = is->strength;
    c->in_start_step = is->start_step;
    c->in_latency_p50_ms = is->latency_p50_ms;
    c->in_latency_p99_ms = is->latency_p99_ms;
}

/* GET /status and `status` while the generator waits for input frames (a reconnect): the
 * input's state as of the request */
static void status_hook(void *user, sk_ctl_status *st)
{
    sk_session_input_status is;
    memset(&is, 0, sizeof is);
    fill_status(user, &is);
    to_ctl(&is, st);
}

void sk_session_input_publish(sk_session *s)
{
    if (!s->v2v || !s->lv.ctl) return;
    sk_session_input_status is;
    memset(&is, 0, sizeof is);
    fill_status(s->v2v, &is);
    to_ctl(&is, &s->lv.input);
    if (!s->v2v->hooked) {
        sk_control_set_status_hook(s->lv.ctl, status_hook, s->v2v);
        s->v2v->hooked = 1;
    }
}
