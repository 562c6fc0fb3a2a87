/* taehv_decode.c - TAEHV decoder: exact chunked stateful streaming (spec A3,
 * A5, A7 mode 3) and the whole-clip decode built on it.
 *
 * Per chunk of n latents the layers run in parallel over the chunk's frames;
 * each MemBlock's `past` is [its last input frame of the previous chunk, its
 * inputs of this chunk shifted by one], which is exactly what the whole-clip
 * parallel decode computes, so any chunking gives the same frames.
 *
 * Two exact rewrites save work:
 *  - TGrow (a bias-free 1x1 conv) runs before the nearest Upsample instead of
 *    after: the two commute elementwise, and the conv then costs 4x less;
 *  - the last stage (after decoder.17, no MemBlocks) is per frame, so it runs
 *    one stage-C frame (-> 2 output frames) at a time to bound scratch, and
 *    frames that the stream-start trim drops are never computed.
 */
#include <stdlib.h>
#include <string.h>

#include "runtime/core/log.h"
#include "vae/taehv_internal.h"

struct sk_taehv_dec_stream {
    const sk_taehv *m;
    int64_t h, w;        /* latent grid                                  */
    int max_chunk;
    sk_tensor state[SK_TAEHV_NMEM]; /* [1, C, H_i, W_i] last MemBlock inputs  */
    sk_arena arena;
    sk_taehv_scratch sc;
    int64_t n_latents, n_frames; /* pushed / returned so far               */
    float *host;         /* push_host staging, [4 * max_chunk, 3, H, W] f32     */
};

int64_t sk_taehv_dec_stream_latents(const sk_taehv_dec_stream *s) { return s->n_latents; }
int64_t sk_taehv_dec_stream_frames(const sk_taehv_dec_stream *s) { return s->n_frames; }
size_t sk_taehv_dec_stream_scratch_bytes(const sk_taehv_dec_stream *s) { return s->arena.cap; }

size_t sk_taehv_dec_stream_state_bytes(const sk_taehv_dec_stream *s)
{
    size_t b = 0;
    for (int i = 0; i < SK_TAEHV_NMEM; i++) b += sk_tensor_nbytes(&s->state[i]);
    return b;
}

/* conv(x) with a 1x1 bias-free weight [s*C, C, 1, 1], then (N, sC, H, W) ->
 * (N*s, C, H, W): channel group k of frame t becomes frame t*s + k. */
static sk_status tgrow(sk_taehv_scratch *sc, sk_backend *be, const sk_tensor *w, int stride,
                       const sk_tensor *x, sk_tensor *y_buf, sk_tensor *y)
{
    SK_TAEHV_OP(sc, sk_op_conv2d(be, y_buf, x, w, NULL, 1, 0));
    int64_t s[4];
    sk_taehv_shape4(s, x->shape[0] * stride, x->shape[1], x->shape[2], x->shape[3]);
    return sk_tensor_reshape(y_buf, 4, s, y);
}

/* The forward of one chunk. In plan mode latents is a descriptor and
 * nothing runs; frames_out still gets its shape. */
static sk_status dec_forward(sk_taehv_dec_stream *s, const sk_tensor *latents,
                             sk_tensor *frames_out)
{
    const sk_taehv *m = s->m;
    const sk_taehv_config *c = &m->cfg;
    sk_backend *be = m->be;
    sk_taehv_scratch *sc = &s->sc;
    const sk_dtype dt = be->act_dtype;
    const int64_t n = latents->shape[0], h = s->h, w = s->w;
    const int p = c->patch;
    int64_t sh[4];
    sk_tensor x, a, b, g;

    sk_taehv_scratch_begin(sc);
    /* output frames first: they outlive the temporaries of this push */
    const int64_t raw = n * sk_taehv_tgrow_stride[1] * sk_taehv_tgrow_stride[2] *
                        sk_taehv_tgrow_stride[0];
    const int64_t trim = s->n_latents == 0 ? c->frames_to_trim : 0;
    const int64_t H = h * c->space_factor, W = w * c->space_factor;
    sk_tensor out;
    sk_taehv_shape4(sh, raw - trim, 3, H, W);
    SK_TRY(sk_taehv_tmp(sc, be, dt, 4, sh, &out));

    SK_TRY(sk_taehv_input(sc, be, latents, &x));
    /* decoder.0 Clamp, decoder.1 conv + decoder.2 ReLU */
    SK_TRY(sk_taehv_pp(sc, 0, be, dt, 4, x.shape, &a));
    SK_TAEHV_OP(sc, sk_op_act(be, &a, &x, SK_ACT_TANH_CLAMP));
    sk_taehv_shape4(sh, n, c->nf[0], h, w);
    SK_TRY(sk_taehv_pp(sc, 1, be, dt, 4, sh, &b));
    SK_TAEHV_OP(sc, sk_op_conv2d(be, &b, &a, &m->d1_w, &m->d1_b, 1, 1));
    SK_TAEHV_OP(sc, sk_op_act(be, &b, &b, SK_ACT_RELU));
    x = b;
    int cur = 1; /* ping-pong buffer holding x */
    int64_t nt = n, hh = h, ww = w;

    for (int st = 0; st < 3; st++) {
        const int64_t C = c->nf[st];
        /* three MemBlocks at (nt, C, hh, ww) */
        for (int k = 0; k < 3; k++) {
            SK_TRY(sk_taehv_pp(sc, 1 - cur, be, dt, 4, x.shape, &a));
            SK_TRY(sk_taehv_memblock_fwd(sc, be, &m->dmem[st * 3 + k], &x, &s->state[st * 3 + k],
                                         &a));
            x = a;
            cur = 1 - cur;
        }
        if (st == 2) break; /* stage D runs per frame below */
        /* TGrow (before the Upsample, see top), Upsample x2, stage conv */
        const int gs = sk_taehv_tgrow_stride[st];
        sk_taehv_shape4(sh, nt, C * gs, hh, ww);
        SK_TRY(sk_taehv_pp(sc, 1 - cur, be, dt, 4, sh, &g));
        SK_TRY(tgrow(sc, be, &m->dgrow_w[st], gs, &x, &g, &g));
        nt *= gs;
        hh *= 2;
        ww *= 2;
        sk_taehv_shape4(sh, nt, C, hh, ww);
        SK_TRY(sk_taehv_pp(sc, cur, be, dt, 4, sh, &a));
        SK_TAEHV_OP(sc, sk_op_upsample_nearest(be, &a, &g, 2));
        sk_taehv_shape4(sh, nt, c->nf[st + 1], hh, ww);
        SK_TRY(sk_taehv_pp(sc, 1 - cur, be, dt, 4, sh, &b));
        SK_TAEHV_OP(sc, sk_op_conv2d(be, &b, &a, &m->dstage_w[st], NULL, 1, 1));
        x = b;
        cur = 1 - cur;
    }

    /* stage D, per stage-C frame j: TGrow(2) -> Upsample -> decoder.20 conv ->
     * ReLU -> decoder.22 conv -> pixel_shuffle(p) -> clamp to [0, 1]. */
    const int gs = sk_taehv_tgrow_stride[2];
    const int64_t C2 = c->nf[2], C3 = c->nf[3], rgb = 3 * p * p;
    int64_t o = 0; /* next output row */
    for (int64_t j = 0; j < nt; j++) {
        const int64_t r0 = j * gs; /* raw frame index of this group in the chunk */
        if (r0 + gs <= trim) continue; /* every frame of it is trimmed */
        const int64_t skip = r0 < trim ? trim - r0 : 0;
        size_t mark = sk_taehv_mark(sc);
        sk_tensor xf = sk_tensor_rows(&x, j, 1), gg, u, v, y, q;
        sk_taehv_shape4(sh, 1, C2 * gs, hh, ww);
        SK_TRY(sk_taehv_tmp(sc, be, dt, 4, sh, &gg));
        SK_TRY(tgrow(sc, be, &m->dgrow_w[2], gs, &xf, &gg, &gg));
        sk_taehv_shape4(sh, gs, C2, 2 * hh, 2 * ww);
        SK_TRY(sk_taehv_tmp(sc, be, dt, 4, sh, &u));
        SK_TAEHV_OP(sc, sk_op_upsample_nearest(be, &u, &gg, 2));
        sk_taehv_shape4(sh, gs, C3, 2 * hh, 2 * ww);
        SK_TRY(sk_taehv_tmp(sc, be, dt, 4, sh, &v));
        SK_TAEHV_OP(sc, sk_op_conv2d(be, &v, &u, &m->dstage_w[2], NULL, 1, 1));
        SK_TAEHV_OP(sc, sk_op_act(be, &v, &v, SK_ACT_RELU));
        sk_taehv_shape4(sh, gs, rgb, 2 * hh, 2 * ww);
        SK_TRY(sk_taehv_tmp(sc, be, dt, 4, sh, &y));
        SK_TAEHV_OP(sc, sk_op_conv2d(be, &y, &v, &m->d22_w, &m->d22_b, 1, 1));
        if (p > 1) {
            sk_taehv_shape4(sh, gs, 3, H, W);
            SK_TRY(sk_taehv_tmp(sc, be, dt, 4, sh, &q));
            SK_TAEHV_OP(sc, sk_op_pixel_shuffle(be, &q, &y, p));
        } else {
            q = y;
        }
        sk_tensor qs = sk_tensor_rows(&q, skip, gs - skip);
        sk_tensor os = sk_tensor_rows(&out, o, gs - skip);
        SK_TAEHV_OP(sc, sk_op_act(be, &os, &qs, SK_ACT_CLAMP01));
        o += gs - skip;
        sk_taehv_reset_to(sc, mark);
    }
    SK_CHECK(o == out.shape[0], SK_E_INTERNAL,
             "taehv: decoded %lld frames into an output of %lld (a bug in sinkstream)",
             (long long)o, (long long)out.shape[0]);
    *frames_out = out;
    return SK_OK;
}

sk_status sk_taehv_dec_stream_reset(sk_taehv_dec_stream *s)
{
    SK_CHECK(s, SK_E_INVALID_ARG, "taehv: reset of a NULL stream");
    for (int i = 0; i < SK_TAEHV_NMEM; i++) SK_TRY(sk_tensor_zero(&s->state[i]));
    s->n_latents = 0;
    s->n_frames = 0;
    return SK_OK;
}

void sk_taehv_dec_stream_free(sk_taehv_dec_stream **ps)
{
    if (!ps || !*ps) return;
    sk_taehv_dec_stream *s = *ps;
    for (int i = 0; i < SK_TAEHV_NMEM; i++) sk_tensor_free(&s->state[i]);
    sk_arena_free(&s->arena);
    free(s->host);
    free(s);
    *ps = NULL;
}

sk_status sk_taehv_dec_stream_create(const sk_taehv *m, int64_t lat_h, int64_t lat_w,
                                     int max_chunk, sk_taehv_dec_stream **out)
{
    SK_CHECK(m && out, SK_E_INVALID_ARG, "taehv: decode stream without model or output");
    *out = NULL;
    const sk_taehv_config *c = &m->cfg;
    SK_CHECK(c->has_decoder, SK_E_INVALID_ARG,
             "taehv: the loaded checkpoint has no decoder (encoder-only file)");
    SK_CHECK(lat_h >= 1 && lat_w >= 1 && lat_h <= 4096 && lat_w <= 4096, SK_E_INVALID_ARG,
             "taehv: latent size %lldx%lld out of range 1..4096", (long long)lat_h,
             (long long)lat_w);
    SK_CHECK(max_chunk >= 1 && max_chunk <= 4096, SK_E_INVALID_ARG,
             "taehv: decode chunk %d out of range 1..4096", max_chunk);
    sk_taehv_dec_stream *s = calloc(1, sizeof *s);
    SK_CHECK(s, SK_E_OOM, "taehv: out of host memory");
    s->m = m;
    s->h = lat_h;
    s->w = lat_w;
    s->max_chunk = max_chunk;
    sk_backend *be = m->be;
    sk_status st = SK_OK;
    for (int i = 0; i < SK_TAEHV_NMEM && st == SK_OK; i++) {
        int64_t sh[4], f = (int64_t)1 << (i / 3); /* stages A, B, C at 1x, 2x, 4x */
        sk_taehv_shape4(sh, 1, c->nf[i / 3], lat_h * f, lat_w * f);
        st = sk_tensor_alloc(be, be->act_dtype, 4, sh, &s->state[i]);
    }
    if (st == SK_OK) {
        /* plan the worst push: max_chunk latents, first chunk or not (the
         * first chunk's output is smaller), staged from a host f64 tensor */
        int64_t sh[4];
        sk_taehv_shape4(sh, max_chunk, c->latent_channels, lat_h, lat_w);
        sk_tensor desc = sk_tensor_desc(SK_DTYPE_F64, 4, sh), fo;
        sk_taehv_scratch_plan(&s->sc);
        s->n_latents = 1; /* a later chunk: no trim, full output */
        st = dec_forward(s, &desc, &fo);
        s->n_latents = 0;
    }
    if (st == SK_OK) st = sk_taehv_scratch_alloc(&s->sc, &s->arena, be);
    if (st == SK_OK) st = sk_taehv_dec_stream_reset(s);
    if (st != SK_OK) {
        sk_error_prefix("taehv: creating a decode stream (%lldx%lld latents, chunk %d): ",
                        (long long)lat_h, (long long)lat_w, max_chunk);
        sk_taehv_dec_stream_free(&s);
        return st;
    }
    SK_LOGD("taehv: decode stream %lldx%lld chunk %d: scratch %.1f MiB, state %.1f MiB",
            (long long)lat_h, (long long)lat_w, max_chunk, s->arena.cap / 1048576.0,
            sk_taehv_dec_stream_state_bytes(s) / 1048576.0);
    *out = s;
    return SK_OK;
}

sk_status sk_taehv_dec_stream_push(sk_taehv_dec_stream *s, const sk_tensor *latents,
                                   sk_tensor *frames_out)
{
    SK_CHECK(s && latents && frames_out, SK_E_INVALID_ARG, "taehv: push without stream/input/output");
    const sk_taehv_config *c = &s->m->cfg;
    char got[96];
    SK_CHECK(latents->ndim == 4 && latents->shape[1] == c->latent_channels &&
                 latents->shape[2] == s->h && latents->shape[3] == s->w,
             SK_E_SHAPE,
             "taehv: latents have shape %s; expected [n, %d, %lld, %lld] (%s has %d latent "
             "channels)", sk_shape_str(latents, got, sizeof got), c->latent_channels,
             (long long)s->h, (long long)s->w, sk_taehv_variant_name(c->variant),
             c->latent_channels);
    SK_CHECK(latents->shape[0] >= 1 && latents->shape[0] <= s->max_chunk, SK_E_SHAPE,
             "taehv: chunk of %lld latent frames; this stream takes 1..%d per push",
             (long long)latents->shape[0], s->max_chunk);
    SK_TRY(dec_forward(s, latents, frames_out));
    s->n_latents += latents->shape[0];
    s->n_frames += frames_out->shape[0];
    return SK_OK;
}

sk_status sk_taehv_decode_video(const sk_taehv *m, const sk_tensor *latents, int chunk,
                                float **frames_out, int64_t frames_shape[4])
{
    SK_CHECK(m && latents && frames_out, SK_E_INVALID_ARG, "taehv: decode without input/output");
    *frames_out = NULL;
    const sk_taehv_config *c = &m->cfg;
    char got[96];
    SK_CHECK(latents->ndim == 4 && latents->shape[0] >= 1, SK_E_SHAPE,
             "taehv: latents have shape %s; expected [F, %d, H, W]",
             sk_shape_str(latents, got, sizeof got), c->latent_channels);
    const int64_t F = latents->shape[0];
    int ch = chunk <= 0 || chunk > F ? (int)F : chunk;
    sk_taehv_dec_stream *s = NULL;
    SK_TRY(sk_taehv_dec_stream_create(m, latents->shape[2], latents->shape[3], ch, &s));
    const int64_t T = sk_taehv_frames_for_latents(c, F), H = latents->shape[2] * c->space_factor,
                  W = latents->shape[3] * c->space_factor;
    const size_t per = (size_t)(3 * H * W);
    float *buf = malloc((size_t)T * per * sizeof(float));
    sk_status st = buf ? SK_OK : SK_ERR(SK_E_OOM, "taehv: out of host memory for %lld frames",
                                        (long long)T);
    int64_t done = 0;
    for (int64_t f0 = 0; st == SK_OK && f0 < F; f0 += ch) {
        int64_t n = F - f0 < ch ? F - f0 : ch;
        sk_tensor part = sk_tensor_rows(latents, f0, n), fr;
        st = sk_taehv_dec_stream_push(s, &part, &fr);
        if (st == SK_OK && done + fr.shape[0] > T)
            st = SK_ERR(SK_E_INTERNAL, "taehv: decode produced more frames than 4F-3");
        if (st == SK_OK)
            st = sk_tensor_download_f32(&fr, buf + (size_t)done * per,
                                        (size_t)fr.shape[0] * per);
        if (st == SK_OK) done += fr.shape[0];
    }
    if (st == SK_OK && done != T)
        st = SK_ERR(SK_E_INTERNAL, "taehv: decode produced %lld frames; expected %lld",
                    (long long)done, (long long)T);
    sk_taehv_dec_stream_free(&s);
    if (st != SK_OK) {
        free(buf);
        return st;
    }
    frames_shape[0] = T;
    frames_shape[1] = 3;
    frames_shape[2] = H;
    frames_shape[3] = W;
    *frames_out = buf;
    return SK_OK;
}

void sk_taehv_dec_stream_frame_size(const sk_taehv_dec_stream *s, int64_t *height, int64_t *width)
{
    *height = s->h * s->m->cfg.space_factor;
    *width = s->w * s->m->cfg.space_factor;
}

sk_status sk_taehv_dec_stream_push_host(sk_taehv_dec_stream *s, const sk_tensor *latents,
                                        const float **rgb, int64_t *n_frames)
{
    SK_CHECK(s && rgb && n_frames, SK_E_INVALID_ARG, "taehv: push_host without outputs");
    const int64_t per = 3 * s->h * s->w * s->m->cfg.space_factor * s->m->cfg.space_factor;
    if (!s->host) {
        size_t bytes = (size_t)s->max_chunk * (size_t)s->m->cfg.t_upscale * (size_t)per * 4;
        s->host = malloc(bytes);
        SK_CHECK(s->host, SK_E_OOM, "taehv: out of host memory for %zu bytes of frames", bytes);
    }
    sk_tensor fr;
    SK_TRY(sk_taehv_dec_stream_push(s, latents, &fr));
    SK_TRY(sk_tensor_download_f32(&fr, s->host, (size_t)(fr.shape[0] * per)));
    *rgb = s->host;
    *n_frames = fr.shape[0];
    return SK_OK;
}
