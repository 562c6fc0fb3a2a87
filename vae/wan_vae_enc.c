/* wan_vae_enc.c - the Wan2.2 VAE encoder's forward on one image (wan_vae.h).
 * Tensors are [1, C, h, w] on the encoder's backend; every intermediate is
 * allocated where it is made and freed as soon as it is consumed (one image,
 * not a hot loop; at 1280x704 one level-0 activation is 144 MB in f32). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "vae/wan_vae_internal.h"

/* F.normalize's eps (1e-12 on the norm) as an eps on the mean square that keeps
 * a zero vector zero; elsewhere it changes nothing at f32 precision. */
#define WV_EPS 1e-24f

static sk_status t4(sk_backend *be, int64_t c, int64_t h, int64_t w, sk_tensor *t)
{
    int64_t sh[4] = {1, c, h, w};
    return sk_tensor_alloc(be, be->act_dtype, 4, sh, t);
}

/* y = RMS_norm over channels of x [1, C, h, w] (gamma g [C]); y may be x. */
static sk_status chnorm(sk_backend *be, const sk_tensor *x, const sk_tensor *g, sk_tensor *y)
{
    const int64_t C = x->shape[1], P = x->shape[2] * x->shape[3];
    int64_t s3[3] = {1, P, C}, c3[3] = {1, C, P}, s2[2] = {P, C};
    sk_tensor a, xv, yv, a2;
    SK_TRY(sk_tensor_alloc(be, be->act_dtype, 3, s3, &a));
    sk_status st = sk_tensor_reshape(x, 3, c3, &xv);
    if (st == SK_OK) st = sk_op_transpose(be, &a, &xv);
    if (st == SK_OK) st = sk_tensor_reshape(&a, 2, s2, &a2);
    if (st == SK_OK) st = sk_op_rmsnorm(be, &a2, &a2, g, WV_EPS);
    if (st == SK_OK) st = sk_tensor_reshape(y, 3, c3, &yv);
    if (st == SK_OK) st = sk_op_transpose(be, &yv, &a);
    sk_tensor_free(&a);
    return st;
}

/* ResidualBlock: x [1, cin, h, w] -> *out [1, cout, h, w] (allocated). */
static sk_status res_fwd(sk_backend *be, const wv_res *r, const sk_tensor *x, sk_tensor *out)
{
    const int64_t h = x->shape[2], w = x->shape[3];
    sk_tensor a = {0}, b = {0};
    memset(out, 0, sizeof *out);
    sk_status st = t4(be, r->cin, h, w, &a);
    if (st == SK_OK) st = chnorm(be, x, &r->g0, &a);
    if (st == SK_OK) st = sk_op_act(be, &a, &a, SK_ACT_SILU);
    if (st == SK_OK) st = t4(be, r->cout, h, w, &b);
    if (st == SK_OK) st = sk_op_conv2d(be, &b, &a, &r->w0, &r->b0, 1, 1);
    sk_tensor_free(&a);
    if (st == SK_OK) st = chnorm(be, &b, &r->g1, &b);
    if (st == SK_OK) st = sk_op_act(be, &b, &b, SK_ACT_SILU);
    if (st == SK_OK) st = t4(be, r->cout, h, w, out);
    if (st == SK_OK) st = sk_op_conv2d(be, out, &b, &r->w1, &r->b1, 1, 1);
    if (st == SK_OK && r->has_sc) st = sk_op_conv2d(be, &b, x, &r->ws, &r->bs, 1, 0);
    if (st == SK_OK) st = sk_op_axpby(be, out, 1.0f, out, 1.0f, r->has_sc ? &b : x);
    sk_tensor_free(&b);
    if (st != SK_OK) sk_tensor_free(out);
    return st;
}

/* *x = res(*x): replaces the tensor (frees the old one). */
static sk_status res_inplace(sk_backend *be, const wv_res *r, sk_tensor *x)
{
    sk_tensor y;
    SK_TRY(res_fwd(be, r, x, &y));
    sk_tensor_free(x);
    *x = y;
    return SK_OK;
}

/* Down_ResidualBlock on *x (replaced). */
static sk_status level_fwd(sk_backend *be, const wv_level *lv, sk_tensor *x)
{
    const int64_t h = x->shape[2], w = x->shape[3];
    sk_tensor in = *x, y = {0}, p = {0}, u = {0}, s = {0};
    sk_status st = res_fwd(be, &lv->res[0], &in, &y);
    for (int j = 1; j < SK_WANVAE_MAX_RES && lv->res[j].cout && st == SK_OK; j++)
        st = res_inplace(be, &lv->res[j], &y);
    if (st == SK_OK && lv->down) { /* ZeroPad2d((0, 1, 0, 1)) + conv 3x3 stride 2 */
        st = t4(be, lv->cout, h + 1, w + 1, &p);
        if (st == SK_OK) st = sk_op_pad2d(be, &p, &y, 0, 0);
        sk_tensor_free(&y);
        if (st == SK_OK) st = t4(be, lv->cout, h / 2, w / 2, &y);
        if (st == SK_OK) st = sk_op_conv2d(be, &y, &p, &lv->dw, &lv->db, 2, 0);
        sk_tensor_free(&p);
    }
    /* the AvgDown3D shortcut of the block's input */
    if (st == SK_OK && !lv->avg_identity) {
        const sk_tensor *src = &in;
        if (lv->fs == 2) {
            st = t4(be, lv->cin * 4, h / 2, w / 2, &u);
            if (st == SK_OK) st = sk_op_pixel_unshuffle(be, &u, &in, 2);
            src = &u;
        }
        if (st == SK_OK) st = t4(be, lv->cout, h / lv->fs, w / lv->fs, &s);
        if (st == SK_OK) st = sk_op_conv2d(be, &s, src, &lv->avg, NULL, 1, 0);
        if (st == SK_OK) st = sk_op_axpby(be, &y, 1.0f, &y, 1.0f, &s);
        sk_tensor_free(&u);
        sk_tensor_free(&s);
    } else if (st == SK_OK) {
        st = sk_op_axpby(be, &y, 1.0f, &y, 1.0f, &in);
    }
    sk_tensor_free(x);
    *x = y;
    if (st != SK_OK) sk_tensor_free(x);
    return st;
}

/* AttentionBlock (single head over the h*w tokens) on x, in place. */
static sk_status attn_fwd(const sk_wanvae_enc *m, sk_tensor *x)
{
    sk_backend *be = m->be;
    const int64_t C = x->shape[1], P = x->shape[2] * x->shape[3];
    int64_t s3[3] = {1, P, C}, c3[3] = {1, C, P}, s2[2] = {P, C}, h3[3] = {P, 1, C};
    sk_tensor t = {0}, q = {0}, k = {0}, v = {0}, o = {0}, xv, t2, q3, k3, v3;
    sk_status st = sk_tensor_alloc(be, be->act_dtype, 3, s3, &t);
    if (st == SK_OK) st = sk_tensor_reshape(x, 3, c3, &xv);
    if (st == SK_OK) st = sk_op_transpose(be, &t, &xv);
    if (st == SK_OK) st = sk_tensor_reshape(&t, 2, s2, &t2);
    if (st == SK_OK) st = sk_op_rmsnorm(be, &t2, &t2, &m->attn_g, WV_EPS);
    if (st == SK_OK) st = sk_tensor_alloc(be, be->act_dtype, 2, s2, &q);
    if (st == SK_OK) st = sk_tensor_alloc(be, be->act_dtype, 2, s2, &k);
    if (st == SK_OK) st = sk_tensor_alloc(be, be->act_dtype, 2, s2, &v);
    if (st == SK_OK) st = sk_tensor_alloc(be, be->act_dtype, 2, s2, &o);
    if (st == SK_OK) st = sk_op_linear(be, &q, &t2, &m->wq, &m->bq, SK_ACT_NONE);
    if (st == SK_OK) st = sk_op_linear(be, &k, &t2, &m->wk, &m->bk, SK_ACT_NONE);
    if (st == SK_OK) st = sk_op_linear(be, &v, &t2, &m->wv, &m->bv, SK_ACT_NONE);
    if (st == SK_OK) st = sk_tensor_reshape(&q, 3, h3, &q3);
    if (st == SK_OK) st = sk_tensor_reshape(&k, 3, h3, &k3);
    if (st == SK_OK) st = sk_tensor_reshape(&v, 3, h3, &v3);
    if (st == SK_OK) {
        sk_kv_range r = {&k3, &v3, 0, P};
        st = sk_op_attention(be, &o, &q3, &r, 1, 1.0f / sqrtf((float)C), NULL);
    }
    if (st == SK_OK) st = sk_op_linear(be, &q, &o, &m->wp, &m->bp, SK_ACT_NONE);
    /* back to channel-first into o's memory, then the residual */
    sk_tensor qv, ov;
    if (st == SK_OK) st = sk_tensor_reshape(&q, 3, s3, &qv);
    if (st == SK_OK) st = sk_tensor_reshape(&o, 3, c3, &ov);
    if (st == SK_OK) st = sk_op_transpose(be, &ov, &qv);
    if (st == SK_OK) st = sk_op_axpby(be, &xv, 1.0f, &xv, 1.0f, &ov);
    sk_tensor_free(&t);
    sk_tensor_free(&q);
    sk_tensor_free(&k);
    sk_tensor_free(&v);
    sk_tensor_free(&o);
    return st;
}

sk_status sk_wanvae_forward(const sk_wanvae_enc *m, const sk_tensor *rgb, sk_tensor *lat)
{
    sk_backend *be = m->be;
    const sk_wanvae_config *c = &m->cfg;
    const int64_t H = rgb->shape[2], W = rgb->shape[3];
    sk_tensor u = {0}, x = {0}, hd = {0};
    sk_status st = t4(be, 12, H / 2, W / 2, &u);
    if (st == SK_OK) st = sk_op_pixel_unshuffle(be, &u, rgb, 2);
    if (st == SK_OK) st = t4(be, c->dim, H / 2, W / 2, &x);
    if (st == SK_OK) st = sk_op_conv2d(be, &x, &u, &m->conv1_w, &m->conv1_b, 1, 1);
    sk_tensor_free(&u);
    for (int i = 0; i < c->levels && st == SK_OK; i++) st = level_fwd(be, &m->lv[i], &x);
    if (st == SK_OK) st = res_inplace(be, &m->mid0, &x);
    if (st == SK_OK) st = attn_fwd(m, &x);
    if (st == SK_OK) st = res_inplace(be, &m->mid1, &x);
    if (st == SK_OK) st = chnorm(be, &x, &m->head_g, &x);
    if (st == SK_OK) st = sk_op_act(be, &x, &x, SK_ACT_SILU);
    if (st == SK_OK) st = t4(be, 2 * c->z, x.shape[2], x.shape[3], &hd);
    if (st == SK_OK) st = sk_op_conv2d(be, &hd, &x, &m->head_w, &m->head_b, 1, 1);
    if (st == SK_OK) st = sk_op_conv2d(be, lat, &hd, &m->out_w, &m->out_b, 1, 0);
    sk_tensor_free(&x);
    sk_tensor_free(&hd);
    return st;
}

sk_status sk_wanvae_encode_image(const sk_wanvae_enc *m, const float *rgb, int64_t H, int64_t W,
                                 float *latent)
{
    SK_CHECK(m && rgb && latent, SK_E_INVALID_ARG, "sk_wanvae_encode_image: NULL argument");
    const sk_wanvae_config *c = &m->cfg;
    const int64_t f = c->space_factor;
    SK_CHECK(H > 0 && W > 0 && H % f == 0 && W % f == 0, SK_E_SHAPE,
             "Wan2.2 VAE encoder: the image is %lldx%lld (WxH); both sides must be positive "
             "multiples of %lld", (long long)W, (long long)H, (long long)f);
    sk_backend *be = m->be;
    int64_t si[4] = {1, 3, H, W};
    sk_tensor in = {0}, lat = {0};
    SK_TRY(sk_tensor_alloc(be, be->act_dtype, 4, si, &in));
    sk_status st = sk_tensor_upload_f32(&in, rgb, (size_t)(3 * H * W));
    if (st == SK_OK) st = t4(be, c->z, H / f, W / f, &lat);
    if (st == SK_OK) st = sk_wanvae_forward(m, &in, &lat);
    if (st == SK_OK) st = sk_tensor_download_f32(&lat, latent, (size_t)sk_tensor_numel(&lat));
    sk_tensor_free(&in);
    sk_tensor_free(&lat);
    return st;
}
