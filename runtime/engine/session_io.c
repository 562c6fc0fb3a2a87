/* session_io.c - what leaves a session of runtime/sinkstream.h: outputs
 * (attach / detach / close), the frames callback, the pull calls, live
 * control and the status snapshot.
 */
#include <stdlib.h>
#include <string.h>

#include "runtime/core/log.h"
#include "runtime/engine/engine_impl.h"

_Static_assert(SK_CRF_LOSSLESS == SK_OUTPUT_CRF_LOSSLESS, "sinkstream.h's lossless crf is "
               "output.h's");

const sk_output *sk_session_first_output(const sk_session *s)
{
    for (int i = 0; i < s->n_outs; i++)
        if (s->outs[i].o) return s->outs[i].o;
    return NULL;
}

static sk_status frames_to_rgb8(sk_session *s)
{
    if (s->rgb8_valid) return SK_OK;
    const int64_t h = s->vid_h, w = s->vid_w, n = s->rgb_n;
    if (n > s->rgb8_cap) {
        uint8_t *b = realloc(s->rgb8, (size_t)(n * h * w * 3));
        SK_CHECK(b, SK_E_OOM, "frames: out of host memory for %lld frames of %lldx%lld",
                 (long long)n, (long long)w, (long long)h);
        s->rgb8 = b;
        s->rgb8_cap = n;
    }
    for (int64_t i = 0; i < n; i++)
        sk_rgb_planar_to_rgb24(s->rgb + i * 3 * h * w, (int)w, (int)h, s->rgb8 + i * h * w * 3,
                               (size_t)(w * 3));
    s->rgb8_valid = 1;
    return SK_OK;
}

sk_status sk_session_emit_frames(sk_session *s, const float *rgb, int64_t n)
{
    s->rgb = rgb;
    s->rgb_n = n;
    s->rgb_first = s->vframes;
    s->rgb8_valid = 0;
    if (n == 0) return SK_OK;
    if (s->p.frames_on_device) { /* nothing on the host to hand out */
        s->rgb = NULL;
        s->rgb_n = 0;
        sk_session_input_frames_out(s, s->vframes, n);
        s->vframes += n;
        return SK_OK;
    }
    for (int i = 0; i < s->n_outs; i++)
        if (s->outs[i].o) SK_TRY(sk_output_write_frames(s->outs[i].o, rgb, (int)n));
    if (s->p.on_frames) {
        SK_TRY(frames_to_rgb8(s));
        s->p.on_frames(s->p.user, s->rgb8, n, s->vid_h, s->vid_w, s->rgb_first);
    }
    sk_session_input_frames_out(s, s->vframes, n); /* video-to-video latency */
    s->vframes += n;
    return SK_OK;
}

sk_status sk_session_latents(sk_session *s, const float **latents, int64_t *n,
                             int64_t *first_frame)
{
    SK_API_SESSION(s);
    SK_CHECK(latents && n, SK_E_INVALID_ARG, "sk_session_latents: NULL out-parameter");
    *latents = NULL;
    *n = s->x0_n;
    if (first_frame) *first_frame = s->x0_n ? s->x0_frame0 : -1;
    if (!s->x0_n) return SK_OK;
    if (!s->lat_valid) {
        SK_TRY(sk_tensor_download_f32(&s->x0, s->lat_host, (size_t)sk_tensor_numel(&s->x0)));
        s->lat_valid = 1;
    }
    *latents = s->lat_host;
    return SK_OK;
}

sk_status sk_session_frames(sk_session *s, const uint8_t **rgb, int64_t *n, int64_t *height,
                            int64_t *width)
{
    SK_API_SESSION(s);
    SK_CHECK(rgb && n, SK_E_INVALID_ARG, "sk_session_frames: NULL out-parameter");
    *rgb = NULL;
    *n = 0;
    if (height) *height = s->vid_h;
    if (width) *width = s->vid_w;
    SK_CHECK(s->dec, SK_E_INVALID_ARG, "sk_session_frames: the session does not decode "
             "(session params decode = 0, or the engine has no VAE)");
    if (!s->rgb_n) return SK_OK;
    SK_TRY(frames_to_rgb8(s));
    *rgb = s->rgb8;
    *n = s->rgb_n;
    return SK_OK;
}

sk_status sk_session_attach_output(sk_session *s, const char *path, const sk_output_opts *opts,
                                   int *id)
{
    SK_API_SESSION(s);
    SK_CHECK(path && *path, SK_E_INVALID_ARG, "sk_session_attach_output: no path");
    SK_CHECK(!s->finished, SK_E_INVALID_ARG, "sk_session_attach_output: the session is finished");
    SK_CHECK(s->dec, SK_E_INVALID_ARG, "output '%s': the session does not decode frames "
             "(session params decode, and an engine with a VAE)", path);
    SK_CHECK(!s->p.frames_on_device, SK_E_INVALID_ARG, "output '%s': the session keeps its "
             "frames on the device (session params frames_on_device = 1)", path);
    int used = 0;
    for (int i = 0; i < s->n_outs; i++) {
        SK_CHECK(!s->outs[i].o || strcmp(s->outs[i].path, path), SK_E_INVALID_ARG,
                 "output '%s' is attached already (output %d); detach it first", path,
                 s->outs[i].id);
        used += s->outs[i].o != NULL;
    }
    SK_CHECK(s->n_outs < SK_SESSION_MAX_OUTPUTS, SK_E_INVALID_ARG, "output '%s': a session has "
             "at most %d outputs", path, SK_SESSION_MAX_OUTPUTS);
    sk_output_opts o = opts ? *opts : (sk_output_opts){0};
    sk_output_kind k = SK_OUTPUT_AUTO;
    if (!o.kind || !*o.kind || !strcmp(o.kind, "auto")) SK_TRY(sk_output_detect_kind(path, &k));
    else if (!strcmp(o.kind, "video")) k = SK_OUTPUT_VIDEO_FILE;
    else if (!strcmp(o.kind, "rtmp")) k = SK_OUTPUT_RTMP;
    else if (!strcmp(o.kind, "srt")) k = SK_OUTPUT_SRT;
    else if (!strcmp(o.kind, "udp")) k = SK_OUTPUT_UDP;
    else if (!strcmp(o.kind, "hls")) k = SK_OUTPUT_HLS;
    else if (!strcmp(o.kind, "png")) k = SK_OUTPUT_PNG_DIR;
    else if (!strcmp(o.kind, "rgb")) k = SK_OUTPUT_RGB_SAFETENSORS;
    else return SK_ERR(SK_E_INVALID_ARG, "output '%s': kind '%s': expected auto, video, rtmp, "
                       "srt, udp, hls, png or rgb", path, o.kind);
    SK_CHECK(!o.maxrate || o.bufsize, SK_E_INVALID_ARG, "output '%s': maxrate needs bufsize "
             "(the rate-control buffer, e.g. twice the rate)", path);
    SK_CHECK(!o.tee || k == SK_OUTPUT_VIDEO_FILE || sk_output_kind_is_net(k), SK_E_INVALID_ARG,
             "output '%s': tee files go beside a video file or an rtmp:// / srt:// / udp:// "
             "stream", path);
    sk_output_params op = {.path = path, .kind = k, .width = (int)s->vid_w,
                           .height = (int)s->vid_h,
                           .fps_num = s->p.fps_num ? s->p.fps_num : s->p.fps,
                           .fps_den = s->p.fps_num ? s->p.fps_den : 1,
                           .crf = o.crf, .queue_frames = o.queue_frames, .codec = o.codec,
                           .preset = o.preset, .bitrate = o.bitrate, .maxrate = o.maxrate,
                           .bufsize = o.bufsize, .metadata = o.metadata, .tee = o.tee};
    if (sk_output_kind_is_live(k)) { /* rtmp, srt, udp, hls */
        /* live: paced to the clock by a queue worker holding two chunks of frames, network
         * calls bounded, reconnects; a stop lets the queued frames go out (bounded by the
         * queue and timeout_ms), an abort ends the network waits at once (issue 15 #4) */
        op.pace = 1;
        if (!op.queue_frames) op.queue_frames = (int)(8 * s->chunk + 4);
        op.timeout_ms = o.timeout_ms;
        op.reconnect_max_ms = o.reconnect_max_ms > 0 ? o.reconnect_max_ms : -1;
        op.abort_flag = &s->abort_flag;
        /* HLS of an unbounded run: a sliding window of 10 segments (20 s), so the disk use
         * stays bounded; a bounded run keeps them all (a recording) */
        if (k == SK_OUTPUT_HLS && s->p.frames == 0) op.hls_list_size = 10;
    }
    sk_session_output so = {.id = ++s->next_out_id, .path = strdup(path)};
    SK_CHECK(so.path, SK_E_OOM, "output: out of memory");
    sk_status st = sk_output_open(&op, &so.o);
    if (st != SK_OK) {
        free(so.path);
        return st;
    }
    s->outs[s->n_outs++] = so;
    if (id) *id = so.id;
    (void)used;
    return SK_OK;
}

static void compact_outputs(sk_session *s)
{
    int j = 0;
    for (int i = 0; i < s->n_outs; i++) {
        if (s->outs[i].o) s->outs[j++] = s->outs[i];
        else free(s->outs[i].path);
    }
    s->n_outs = j;
}

sk_status sk_session_detach_output(sk_session *s, int id)
{
    SK_API_SESSION(s);
    for (int i = 0; i < s->n_outs; i++) {
        if (s->outs[i].id != id || !s->outs[i].o) continue;
        sk_status st = sk_output_close(&s->outs[i].o);
        s->outs[i].o = NULL;
        compact_outputs(s);
        return st;
    }
    return SK_ERR(SK_E_INVALID_ARG, "sk_session_detach_output: no output %d on this session "
                  "(detached already?)", id);
}

sk_status sk_session_close_outputs(sk_session *s)
{
    sk_status first = SK_OK;
    for (int i = 0; i < s->n_outs; i++) {
        if (!s->outs[i].o) continue;
        sk_status st = sk_output_close(&s->outs[i].o);
        s->outs[i].o = NULL;
        if (first == SK_OK) first = st;
    }
    compact_outputs(s);
    return first;
}

sk_status sk_session_start_control(sk_session *s, const sk_control_opts *o, int *port)
{
    SK_API_SESSION(s);
    SK_CHECK(o, SK_E_INVALID_ARG, "sk_session_start_control: opts are NULL");
    if (port) *port = -1;
    SK_CHECK(!s->control_started, SK_E_INVALID_ARG, "sk_session_start_control: control is "
             "started already");
    SK_CHECK(s->chunks == 0, SK_E_INVALID_ARG, "sk_session_start_control: before the first step");
    SK_CHECK(s->s, SK_E_UNSUPPORTED, "live control is not supported over pipeline stages yet");
    s->lv_opts = (gen_live_opts){.control_stdin = o->control_stdin,
                                 .control_port = o->control_port,
                                 .control_bind = o->control_bind ? o->control_bind : "127.0.0.1",
                                 .control_token = o->control_token,
                                 .start_paused = o->start_paused, .max_body = o->max_body};
    if (o->embeds_file) SK_TRY(sk_st_open(o->embeds_file, &s->ctl_emb));
    gen_live_finish(&s->lv);
    SK_TRY(gen_live_start(&s->lv, &s->lv_opts, s->ctl_emb, s->e->text.te != NULL, s->p.frames,
                          s->chunk, s->p.fps, &s->stop_flag));
    s->control_started = 1;
    if (port && s->lv.ctl && o->control_port >= 0) *port = sk_control_http_port(s->lv.ctl);
    return SK_OK;
}

sk_status sk_session_get_status(const sk_session *s, sk_session_status *out)
{
    SK_API_SESSION(s);
    SK_CHECK(out, SK_E_INVALID_ARG, "sk_session_get_status: out is NULL");
    sk_session *m = (sk_session *)s; /* the lock only */
    pthread_mutex_lock(&m->q_mu);
    *out = s->snap;
    out->queued_prompts = s->q_len;
    out->stopping |= __atomic_load_n(&s->stop_flag, __ATOMIC_ACQUIRE);
    pthread_mutex_unlock(&m->q_mu);
    return SK_OK;
}
