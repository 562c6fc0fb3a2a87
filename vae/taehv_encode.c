/* taehv_encode.c - TAEHV encoder: streaming (exact) and whole clip (spec A4).
 *
 * Every TPool of the Wan encoder (strides 2, 2, 1) lines up with groups of 4
 * input frames, and nothing before the first TPool has memory. So a stream
 * keeps the input frames of an incomplete group (at most 3, raw RGB) and runs
 * the encoder only over whole groups: each push's groups run in parallel with
 * MemBlock states carried across pushes, exactly as upstream's whole-clip
 * encode_video. flush pads the last group by repeating the last frame.
 */
#include <stdlib.h>
#include <string.h>

#include "runtime/core/log.h"
#include "vae/taehv_internal.h"

struct sk_taehv_enc_stream {
    const sk_taehv *m;
    int64_t H, W;          /* input frame size (pixels)                 */
    int64_t hs[4], ws[4];  /* grid after unshuffle and each stride-2 conv */
    int max_chunk;
    sk_tensor pending;     /* [3, 3, H, W] frames of an incomplete group */
    int64_t n_pending;
    sk_tensor state[SK_TAEHV_NMEM];
    sk_arena arena;
    sk_taehv_scratch sc;
};

void sk_taehv_enc_stream_latent_size(const sk_taehv_enc_stream *s, int64_t *h, int64_t *w)
{
    *h = s->hs[3];
    *w = s->ws[3];
}

/* Runs the encoder over in [4q, 3, H, W] (act dtype on the backend); writes
 * latents [q, z, h, w] into a temporary. */
static sk_status enc_groups(sk_taehv_enc_stream *s, const sk_tensor *in, sk_tensor *lat_out)
{
    const sk_taehv *m = s->m;
    const sk_taehv_config *c = &m->cfg;
    sk_backend *be = m->be;
    sk_taehv_scratch *sc = &s->sc;
    const sk_dtype dt = be->act_dtype;
    const int p = c->patch;
    const int64_t E = c->enc_width;
    int64_t sh[4], nt = in->shape[0];
    sk_tensor x = *in, a, b;

    sk_tensor lat;
    sk_taehv_shape4(sh, nt / 4, c->latent_channels, s->hs[3], s->ws[3]);
    SK_TRY(sk_taehv_tmp(sc, be, dt, 4, sh, &lat));
    if (p > 1) {
        sk_taehv_shape4(sh, nt, 3 * p * p, s->hs[0], s->ws[0]);
        SK_TRY(sk_taehv_tmp(sc, be, dt, 4, sh, &a));
        SK_TAEHV_OP(sc, sk_op_pixel_unshuffle(be, &a, &x, p));
        x = a;
    }
    /* encoder.0 conv + encoder.1 ReLU */
    sk_taehv_shape4(sh, nt, E, s->hs[0], s->ws[0]);
    SK_TRY(sk_taehv_pp(sc, 0, be, dt, 4, sh, &a));
    SK_TAEHV_OP(sc, sk_op_conv2d(be, &a, &x, &m->e0_w, &m->e0_b, 1, 1));
    SK_TAEHV_OP(sc, sk_op_act(be, &a, &a, SK_ACT_RELU));
    x = a;
    int cur = 0;
    for (int st = 0; st < 3; st++) {
        /* TPool: stride frames -> channels (a free reshape), 1x1 conv */
        const int ps = sk_taehv_tpool_stride[st];
        sk_tensor grouped;
        sk_taehv_shape4(sh, nt / ps, E * ps, s->hs[st], s->ws[st]);
        SK_TRY(sk_tensor_reshape(&x, 4, sh, &grouped));
        nt /= ps;
        sk_taehv_shape4(sh, nt, E, s->hs[st], s->ws[st]);
        SK_TRY(sk_taehv_pp(sc, 1 - cur, be, dt, 4, sh, &b));
        SK_TAEHV_OP(sc, sk_op_conv2d(be, &b, &grouped, &m->epool_w[st], NULL, 1, 0));
        /* stride-2 conv, no bias */
        sk_taehv_shape4(sh, nt, E, s->hs[st + 1], s->ws[st + 1]);
        SK_TRY(sk_taehv_pp(sc, cur, be, dt, 4, sh, &a));
        SK_TAEHV_OP(sc, sk_op_conv2d(be, &a, &b, &m->edown_w[st], NULL, 2, 1));
        x = a;
        for (int k = 0; k < 3; k++) {
            SK_TRY(sk_taehv_pp(sc, 1 - cur, be, dt, 4, x.shape, &b));
            SK_TRY(sk_taehv_memblock_fwd(sc, be, &m->emem[st * 3 + k], &x, &s->state[st * 3 + k],
                                         &b));
            x = b;
            cur = 1 - cur;
        }
    }
    /* encoder.17 conv -> latents (no clamp) */
    SK_TAEHV_OP(sc, sk_op_conv2d(be, &lat, &x, &m->e17_w, &m->e17_b, 1, 1));
    *lat_out = lat;
    return SK_OK;
}

/* Copies rows of src [n, ...] into dst starting at row r (same backend/dtype). */
static sk_status copy_rows(sk_taehv_scratch *sc, sk_tensor *dst, int64_t r, const sk_tensor *src,
                           int64_t s0, int64_t n)
{
    if (sc->plan || n <= 0) return SK_OK;
    sk_tensor d = sk_tensor_rows(dst, r, n), q = sk_tensor_rows(src, s0, n);
    return sk_tensor_copy(&d, &q);
}

/* One push: frames (may be NULL with n = 0 for flush padding). pad > 0 appends
 * pad copies of the last pending/new frame. */
static sk_status enc_forward(sk_taehv_enc_stream *s, const sk_tensor *frames, int64_t pad,
                             sk_tensor *lat_out)
{
    sk_backend *be = s->m->be;
    sk_taehv_scratch *sc = &s->sc;
    const sk_dtype dt = be->act_dtype;
    const int64_t n = frames ? frames->shape[0] : 0;
    int64_t sh[4];
    sk_taehv_scratch_begin(sc);
    sk_tensor x;
    memset(&x, 0, sizeof x);
    if (frames) SK_TRY(sk_taehv_input(sc, be, frames, &x));
    const int64_t total = s->n_pending + n + pad, use = total / 4 * 4;
    if (use == 0) {
        /* not a whole group yet: keep the frames */
        SK_TRY(copy_rows(sc, &s->pending, s->n_pending, &x, 0, n));
        s->n_pending += n;
        memset(lat_out, 0, sizeof *lat_out);
        sk_taehv_shape4(lat_out->shape, 0, s->m->cfg.latent_channels, s->hs[3], s->ws[3]);
        lat_out->ndim = 4;
        lat_out->dtype = dt;
        return SK_OK;
    }
    sk_tensor in;
    sk_taehv_shape4(sh, use, 3, s->H, s->W);
    SK_TRY(sk_taehv_tmp(sc, be, dt, 4, sh, &in));
    /* in = [pending, new frames, padding][0 .. use) */
    int64_t r = 0;
    SK_TRY(copy_rows(sc, &in, r, &s->pending, 0, s->n_pending));
    r += s->n_pending;
    int64_t take = n < use - r ? n : use - r;
    SK_TRY(copy_rows(sc, &in, r, &x, 0, take));
    r += take;
    for (; r < use; r++) SK_TRY(copy_rows(sc, &in, r, &in, r - 1, 1)); /* repeat last frame */
    /* the rest of the new frames (< 4) become pending */
    SK_TRY(copy_rows(sc, &s->pending, 0, &x, take, n - take));
    if (!sc->plan) s->n_pending = n - take;
    return enc_groups(s, &in, lat_out);
}

sk_status sk_taehv_enc_stream_reset(sk_taehv_enc_stream *s)
{
    SK_CHECK(s, SK_E_INVALID_ARG, "taehv: reset of a NULL stream");
    for (int i = 0; i < SK_TAEHV_NMEM; i++) SK_TRY(sk_tensor_zero(&s->state[i]));
    s->n_pending = 0;
    return SK_OK;
}

void sk_taehv_enc_stream_free(sk_taehv_enc_stream **ps)
{
    if (!ps || !*ps) return;
    sk_taehv_enc_stream *s = *ps;
    for (int i = 0; i < SK_TAEHV_NMEM; i++) sk_tensor_free(&s->state[i]);
    sk_tensor_free(&s->pending);
    sk_arena_free(&s->arena);
    free(s);
    *ps = NULL;
}

sk_status sk_taehv_enc_stream_create(const sk_taehv *m, int64_t height, int64_t width,
                                     int max_chunk, sk_taehv_enc_stream **out)
{
    SK_CHECK(m && out, SK_E_INVALID_ARG, "taehv: encode stream without model or output");
    *out = NULL;
    const sk_taehv_config *c = &m->cfg;
    SK_CHECK(c->has_encoder, SK_E_INVALID_ARG,
             "taehv: the loaded checkpoint has no encoder (decoder-only file?)");
    SK_CHECK(height >= 1 && width >= 1 && height <= 16384 && width <= 16384, SK_E_INVALID_ARG,
             "taehv: frame size %lldx%lld out of range", (long long)height, (long long)width);
    SK_CHECK(height % c->patch == 0 && width % c->patch == 0, SK_E_INVALID_ARG,
             "taehv: frame size %lldx%lld is not a multiple of %s's patch size %d",
             (long long)height, (long long)width, sk_taehv_variant_name(c->variant), c->patch);
    SK_CHECK(max_chunk >= 1 && max_chunk <= 65536, SK_E_INVALID_ARG,
             "taehv: encode chunk %d out of range 1..65536", max_chunk);
    sk_taehv_enc_stream *s = calloc(1, sizeof *s);
    SK_CHECK(s, SK_E_OOM, "taehv: out of host memory");
    s->m = m;
    s->H = height;
    s->W = width;
    s->max_chunk = max_chunk;
    s->hs[0] = height / c->patch;
    s->ws[0] = width / c->patch;
    for (int i = 1; i < 4; i++) { /* 3x3 conv, stride 2, pad 1 */
        s->hs[i] = (s->hs[i - 1] + 2 - 3) / 2 + 1;
        s->ws[i] = (s->ws[i - 1] + 2 - 3) / 2 + 1;
    }
    sk_backend *be = m->be;
    int64_t sh[4];
    sk_taehv_shape4(sh, 3, 3, height, width);
    sk_status st = sk_tensor_alloc(be, be->act_dtype, 4, sh, &s->pending);
    for (int i = 0; i < SK_TAEHV_NMEM && st == SK_OK; i++) {
        sk_taehv_shape4(sh, 1, c->enc_width, s->hs[i / 3 + 1], s->ws[i / 3 + 1]);
        st = sk_tensor_alloc(be, be->act_dtype, 4, sh, &s->state[i]);
    }
    if (st == SK_OK) {
        /* plan the worst push: 3 pending + max_chunk new frames from a host f64 tensor */
        sk_taehv_shape4(sh, max_chunk, 3, height, width);
        sk_tensor desc = sk_tensor_desc(SK_DTYPE_F64, 4, sh), lo;
        sk_taehv_scratch_plan(&s->sc);
        s->n_pending = 3;
        st = enc_forward(s, &desc, 0, &lo);
        s->n_pending = 0;
    }
    if (st == SK_OK) st = sk_taehv_scratch_alloc(&s->sc, &s->arena, be);
    if (st == SK_OK) st = sk_taehv_enc_stream_reset(s);
    if (st != SK_OK) {
        sk_error_prefix("taehv: creating an encode stream (%lldx%lld frames, chunk %d): ",
                        (long long)height, (long long)width, max_chunk);
        sk_taehv_enc_stream_free(&s);
        return st;
    }
    *out = s;
    return SK_OK;
}

sk_status sk_taehv_enc_stream_push(sk_taehv_enc_stream *s, const sk_tensor *frames,
                                   sk_tensor *latents_out)
{
    SK_CHECK(s && frames && latents_out, SK_E_INVALID_ARG, "taehv: push without stream/input/output");
    char got[96];
    SK_CHECK(frames->ndim == 4 && frames->shape[1] == 3 && frames->shape[2] == s->H &&
                 frames->shape[3] == s->W,
             SK_E_SHAPE, "taehv: frames have shape %s; expected [n, 3, %lld, %lld]",
             sk_shape_str(frames, got, sizeof got), (long long)s->H, (long long)s->W);
    SK_CHECK(frames->shape[0] >= 1 && frames->shape[0] <= s->max_chunk, SK_E_SHAPE,
             "taehv: chunk of %lld frames; this stream takes 1..%d per push",
             (long long)frames->shape[0], s->max_chunk);
    return enc_forward(s, frames, 0, latents_out);
}

sk_status sk_taehv_enc_stream_flush(sk_taehv_enc_stream *s, sk_tensor *latents_out)
{
    SK_CHECK(s && latents_out, SK_E_INVALID_ARG, "taehv: flush without stream/output");
    int64_t pad = s->n_pending ? 4 - s->n_pending : 0;
    sk_status st = SK_OK;
    if (pad) st = enc_forward(s, NULL, pad, latents_out);
    else {
        memset(latents_out, 0, sizeof *latents_out);
        latents_out->ndim = 4;
        latents_out->dtype = s->m->be->act_dtype;
        sk_taehv_shape4(latents_out->shape, 0, s->m->cfg.latent_channels, s->hs[3], s->ws[3]);
    }
    if (st != SK_OK) return st;
    /* a new stream starts after a flush */
    for (int i = 0; i < SK_TAEHV_NMEM; i++) SK_TRY(sk_tensor_zero(&s->state[i]));
    s->n_pending = 0;
    return SK_OK;
}

sk_status sk_taehv_encode_video(const sk_taehv *m, const sk_tensor *frames, int chunk,
                                float **latents_out, int64_t latents_shape[4])
{
    SK_CHECK(m && frames && latents_out, SK_E_INVALID_ARG, "taehv: encode without input/output");
    *latents_out = NULL;
    char got[96];
    SK_CHECK(frames->ndim == 4 && frames->shape[0] >= 1 && frames->shape[1] == 3, SK_E_SHAPE,
             "taehv: frames have shape %s; expected [T, 3, H, W]",
             sk_shape_str(frames, got, sizeof got));
    const sk_taehv_config *c = &m->cfg;
    const int64_t T = frames->shape[0];
    int ch = chunk <= 0 || chunk > T ? (int)T : chunk;
    sk_taehv_enc_stream *s = NULL;
    SK_TRY(sk_taehv_enc_stream_create(m, frames->shape[2], frames->shape[3], ch, &s));
    const int64_t L = sk_taehv_latents_for_frames(c, T);
    const size_t per = (size_t)(c->latent_channels * s->hs[3] * s->ws[3]);
    float *buf = malloc((size_t)L * per * sizeof(float));
    sk_status st = buf ? SK_OK : SK_ERR(SK_E_OOM, "taehv: out of host memory for latents");
    int64_t done = 0;
    /* pushes of ch frames, then one flush (f0 == T) */
    for (int64_t f0 = 0; st == SK_OK && f0 <= T; f0 = f0 < T && f0 + ch > T ? T : f0 + ch) {
        sk_tensor lat;
        if (f0 < T) {
            int64_t n = T - f0 < ch ? T - f0 : ch;
            sk_tensor part = sk_tensor_rows(frames, f0, n);
            st = sk_taehv_enc_stream_push(s, &part, &lat);
        } else {
            st = sk_taehv_enc_stream_flush(s, &lat);
        }
        if (st == SK_OK && done + lat.shape[0] > L)
            st = SK_ERR(SK_E_INTERNAL, "taehv: encode produced more than ceil(T/4) latents");
        if (st == SK_OK && lat.shape[0] > 0)
            st = sk_tensor_download_f32(&lat, buf + (size_t)done * per, (size_t)lat.shape[0] * per);
        if (st == SK_OK) done += lat.shape[0];
    }
    if (st == SK_OK && done != L)
        st = SK_ERR(SK_E_INTERNAL, "taehv: encode produced %lld latents; expected %lld",
                    (long long)done, (long long)L);
    latents_shape[0] = L;
    latents_shape[1] = c->latent_channels;
    latents_shape[2] = s->hs[3];
    latents_shape[3] = s->ws[3];
    sk_taehv_enc_stream_free(&s);
    if (st != SK_OK) {
        free(buf);
        return st;
    }
    *latents_out = buf;
    return SK_OK;
}
