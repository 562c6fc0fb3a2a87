/* wan_vae_load.c - Wan2.2 VAE encoder: layout detection from tensor shapes and
 * strict binding of the upstream tensors (vae2_2.py names), reduced to what one
 * image uses (see wan_vae.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/core/log.h"
#include "vae/wan_vae_internal.h"

/* utils/wan_5b_wrapper.py WanVAEWrapper (= wan/modules/vae2_2.py Wan2_2_VAE) */
const float sk_wanvae22_mean[48] = {
    -0.2289f, -0.0052f, -0.1323f, -0.2339f, -0.2799f, 0.0174f,  0.1838f,  0.1557f,
    -0.1382f, 0.0542f,  0.2813f,  0.0891f,  0.1570f,  -0.0098f, 0.0375f,  -0.1825f,
    -0.2246f, -0.1207f, -0.0698f, 0.5109f,  0.2665f,  -0.2108f, -0.2158f, 0.2502f,
    -0.2055f, -0.0322f, 0.1109f,  0.1567f,  -0.0729f, 0.0899f,  -0.2799f, -0.1230f,
    -0.0313f, -0.1649f, 0.0117f,  0.0723f,  -0.2839f, -0.2083f, -0.0520f, 0.3748f,
    0.0152f,  0.1957f,  0.1433f,  -0.2944f, 0.3573f,  -0.0548f, -0.1681f, -0.0667f};
const float sk_wanvae22_std[48] = {
    0.4765f, 1.0364f, 0.4514f, 1.1677f, 0.5313f, 0.4990f, 0.4818f, 0.5013f,
    0.8158f, 1.0344f, 0.5894f, 1.0901f, 0.6885f, 0.6165f, 0.8454f, 0.4978f,
    0.5759f, 0.3523f, 0.7135f, 0.6804f, 0.5833f, 1.4146f, 0.8986f, 0.5659f,
    0.7069f, 0.5338f, 0.4889f, 0.4917f, 0.4069f, 0.4999f, 0.6866f, 0.4093f,
    0.5709f, 0.6065f, 0.6415f, 0.4944f, 0.5726f, 1.2042f, 0.5458f, 1.6887f,
    0.3971f, 1.0600f, 0.3943f, 0.5537f, 0.5444f, 0.4089f, 0.7468f, 0.7744f};

typedef struct {
    sk_backend *be;
    const sk_st_file *f;
    char *used;                 /* [n_tensors] */
} wv_loader;

static const sk_st_tensor *find_mark(wv_loader *L, const char *name)
{
    const sk_st_tensor *t = sk_st_find(L->f, name);
    if (t) L->used[t - L->f->tensors] = 1;
    return t;
}

/* Reads name (shape checked) as host f32. */
static sk_status rd(wv_loader *L, const char *name, int nd, const int64_t *shape, float **out)
{
    (void)find_mark(L, name);
    sk_status st = sk_st_read_f32(L->f, name, nd, shape, out, NULL);
    if (st != SK_OK) sk_error_prefix("Wan2.2 VAE encoder '%s': ", L->f->path);
    return st;
}

static sk_status up(wv_loader *L, const float *v, int nd, const int64_t *shape, sk_tensor *t)
{
    SK_TRY(sk_tensor_alloc(L->be, SK_DTYPE_F32, nd, shape, t));
    return sk_tensor_upload_f32(t, v, (size_t)sk_tensor_numel(t));
}

/* A vector [n] (bias) or a gamma [n, 1, ...] (nd_in dims) uploaded as [n]. */
static sk_status vec(wv_loader *L, const char *name, int64_t n, int nd_in, sk_tensor *t)
{
    int64_t sh[5] = {n, 1, 1, 1, 1};
    float *v = NULL;
    SK_TRY(rd(L, name, nd_in, sh, &v));
    sk_status st = up(L, v, 1, sh, t);
    free(v);
    return st;
}

/* A causal Conv3d weight [co, ci, kt, k, k]: its last temporal tap as [co, ci, k, k]. */
static sk_status conv_tap(wv_loader *L, const char *name, int64_t co, int64_t ci, int64_t kt,
                          int64_t k, sk_tensor *t)
{
    int64_t sh[5] = {co, ci, kt, k, k};
    float *v = NULL, *s;
    SK_TRY(rd(L, name, 5, sh, &v));
    const int64_t kk = k * k;
    s = malloc((size_t)(co * ci * kk) * sizeof *s);
    if (!s) {
        free(v);
        return SK_ERR(SK_E_OOM, "Wan2.2 VAE encoder: out of host memory for '%s'", name);
    }
    for (int64_t r = 0; r < co * ci; r++) memcpy(s + r * kk, v + (r * kt + kt - 1) * kk,
                                                 (size_t)kk * sizeof *s);
    free(v);
    int64_t o[4] = {co, ci, k, k};
    sk_status st = up(L, s, 4, o, t);
    free(s);
    return st;
}

static const sk_st_tensor *need(wv_loader *L, const char *name, int nd)
{
    const sk_st_tensor *t = sk_st_find(L->f, name);
    return t && t->ndim == nd ? t : NULL;
}

static sk_status load_res(wv_loader *L, const char *pre, int64_t cin, int64_t cout, wv_res *r)
{
    char k[160];
    r->cin = cin;
    r->cout = cout;
    snprintf(k, sizeof k, "%s.residual.0.gamma", pre);
    SK_TRY(vec(L, k, cin, 4, &r->g0));
    snprintf(k, sizeof k, "%s.residual.2.weight", pre);
    SK_TRY(conv_tap(L, k, cout, cin, 3, 3, &r->w0));
    snprintf(k, sizeof k, "%s.residual.2.bias", pre);
    SK_TRY(vec(L, k, cout, 1, &r->b0));
    snprintf(k, sizeof k, "%s.residual.3.gamma", pre);
    SK_TRY(vec(L, k, cout, 4, &r->g1));
    snprintf(k, sizeof k, "%s.residual.6.weight", pre);
    SK_TRY(conv_tap(L, k, cout, cout, 3, 3, &r->w1));
    snprintf(k, sizeof k, "%s.residual.6.bias", pre);
    SK_TRY(vec(L, k, cout, 1, &r->b1));
    r->has_sc = cin != cout;
    if (r->has_sc) {
        snprintf(k, sizeof k, "%s.shortcut.weight", pre);
        SK_TRY(conv_tap(L, k, cout, cin, 1, 1, &r->ws));
        snprintf(k, sizeof k, "%s.shortcut.bias", pre);
        SK_TRY(vec(L, k, cout, 1, &r->bs));
    }
    return SK_OK;
}

static void free_res(wv_res *r)
{
    sk_tensor *t[] = {&r->g0, &r->w0, &r->b0, &r->g1, &r->w1, &r->b1, &r->ws, &r->bs};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) sk_tensor_free(t[i]);
}

/* AvgDown3D(cin, cout, ft, fs) on one frame padded in front to ft frames: for
 * the unshuffled input u[c*fs*fs + k], the flat index of the real frame's value
 * is c*F + (ft-1)*fs*fs + k (F = ft*fs*fs); output o averages the G = cin*F/cout
 * consecutive flat indices o*G .. o*G+G-1 (the padded frame's are zeros). */
static sk_status make_avg(wv_loader *L, wv_level *lv, int ft, int fs, int li)
{
    const int64_t F = (int64_t)ft * fs * fs, cin = lv->cin, cout = lv->cout;
    lv->fs = fs;
    SK_CHECK((cin * F) % cout == 0, SK_E_SHAPE, "Wan2.2 VAE encoder '%s': level %d: the "
             "avg-shortcut cannot map %lld channels x %lld onto %lld", L->f->path, li,
             (long long)cin, (long long)F, (long long)cout);
    const int64_t G = cin * F / cout, K = cin * fs * fs;
    if (G == 1 && F == 1) {
        lv->avg_identity = 1;
        return SK_OK;
    }
    float *a = calloc((size_t)(cout * K), sizeof *a);
    SK_CHECK(a, SK_E_OOM, "Wan2.2 VAE encoder: out of host memory");
    for (int64_t c = 0; c < cin; c++)
        for (int64_t k = 0; k < fs * fs; k++) {
            const int64_t idx = c * F + (int64_t)(ft - 1) * fs * fs + k;
            a[(idx / G) * K + c * fs * fs + k] = 1.0f / (float)G;
        }
    int64_t sh[4] = {cout, K, 1, 1};
    sk_status st = up(L, a, 4, sh, &lv->avg);
    free(a);
    return st;
}

static sk_status detect(wv_loader *L, sk_wanvae_config *c)
{
    const sk_st_file *f = L->f;
    char k[160];
    const sk_st_tensor *t = need(L, "encoder.conv1.weight", 5);
    SK_CHECK(t, SK_E_FORMAT, "Wan2.2 VAE encoder '%s': no 5-D tensor 'encoder.conv1.weight' "
             "(is this Wan2.2_VAE.pth converted with tools/convert_checkpoint.py --wan-vae?)",
             f->path);
    SK_CHECK(t->shape[1] == 12, SK_E_SHAPE, "Wan2.2 VAE encoder '%s': encoder.conv1.weight takes "
             "%lld input channels, expected 12 (RGB patchified 2x2): a Wan2.1 VAE (16 latent "
             "channels, 8x) is not this encoder", f->path, (long long)t->shape[1]);
    c->dim = (int)t->shape[0];
    c->levels = 0;
    for (;;) {
        snprintf(k, sizeof k, "encoder.downsamples.%d.downsamples.0.residual.2.weight", c->levels);
        const sk_st_tensor *w = need(L, k, 5);
        if (!w) break;
        SK_CHECK(c->levels < SK_WANVAE_MAX_LEVELS, SK_E_SHAPE, "Wan2.2 VAE encoder '%s': more "
                 "than %d down blocks", f->path, SK_WANVAE_MAX_LEVELS);
        c->width[c->levels++] = (int)w->shape[0];
    }
    SK_CHECK(c->levels > 0, SK_E_FORMAT, "Wan2.2 VAE encoder '%s': no "
             "'encoder.downsamples.0.downsamples.0.residual.2.weight'", f->path);
    c->n_res = 0;
    for (;;) {
        snprintf(k, sizeof k, "encoder.downsamples.0.downsamples.%d.residual.0.gamma", c->n_res);
        if (!sk_st_find(f, k)) break;
        SK_CHECK(c->n_res < SK_WANVAE_MAX_RES, SK_E_SHAPE, "Wan2.2 VAE encoder '%s': more than "
                 "%d residual blocks per level", f->path, SK_WANVAE_MAX_RES);
        c->n_res++;
    }
    c->space_factor = 2;
    for (int i = 0; i < c->levels; i++) {
        snprintf(k, sizeof k, "encoder.downsamples.%d.downsamples.%d.resample.1.weight", i,
                 c->n_res);
        c->down[i] = sk_st_find(f, k) != NULL;
        snprintf(k, sizeof k, "encoder.downsamples.%d.downsamples.%d.time_conv.weight", i,
                 c->n_res);
        c->t_down[i] = c->down[i] && sk_st_find(f, k) != NULL;
        if (c->down[i]) c->space_factor *= 2;
    }
    t = need(L, "conv1.weight", 5);
    SK_CHECK(t, SK_E_FORMAT, "Wan2.2 VAE encoder '%s': no 5-D tensor 'conv1.weight' (the 1x1 "
             "conv that makes mu and logvar)", f->path);
    SK_CHECK(t->shape[0] % 2 == 0, SK_E_SHAPE, "Wan2.2 VAE encoder '%s': conv1.weight has %lld "
             "output channels, expected 2 * z", f->path, (long long)t->shape[0]);
    c->z = (int)(t->shape[0] / 2);
    SK_CHECK(c->z == 48, SK_E_UNSUPPORTED, "Wan2.2 VAE encoder '%s': z = %d latent channels; only "
             "Wan2.2's 48 (with its normalisation constants) are supported", f->path, c->z);
    return SK_OK;
}

static sk_status bind(wv_loader *L, sk_wanvae_enc *m)
{
    const sk_wanvae_config *c = &m->cfg;
    char k[160], pre[128];
    /* conv1: upstream patchify puts pixel (q, r) of a 2x2 patch at channel c*4 + r*2 + q,
     * pixel_unshuffle at c*4 + q*2 + r: permute the weight's input channels */
    {
        const int64_t D = c->dim;
        int64_t sh[5] = {D, 12, 3, 3, 3};
        float *v = NULL;
        SK_TRY(rd(L, "encoder.conv1.weight", 5, sh, &v));
        float *s = malloc((size_t)(D * 12 * 9) * sizeof *s);
        if (!s) {
            free(v);
            return SK_ERR(SK_E_OOM, "Wan2.2 VAE encoder: out of host memory");
        }
        for (int64_t o = 0; o < D; o++)
            for (int64_t ch = 0; ch < 3; ch++)
                for (int q = 0; q < 2; q++)
                    for (int r = 0; r < 2; r++) {
                        const int64_t us = ch * 4 + q * 2 + r, them = ch * 4 + r * 2 + q;
                        memcpy(s + (o * 12 + us) * 9, v + ((o * 12 + them) * 3 + 2) * 9,
                               9 * sizeof *s);
                    }
        free(v);
        int64_t o4[4] = {D, 12, 3, 3};
        sk_status st = up(L, s, 4, o4, &m->conv1_w);
        free(s);
        SK_TRY(st);
        SK_TRY(vec(L, "encoder.conv1.bias", D, 1, &m->conv1_b));
    }
    int64_t cin = c->dim;
    for (int i = 0; i < c->levels; i++) {
        wv_level *lv = &m->lv[i];
        lv->cin = cin;
        lv->cout = c->width[i];
        for (int j = 0; j < c->n_res; j++) {
            snprintf(pre, sizeof pre, "encoder.downsamples.%d.downsamples.%d", i, j);
            SK_TRY(load_res(L, pre, j ? lv->cout : cin, lv->cout, &lv->res[j]));
        }
        lv->down = c->down[i];
        if (lv->down) {
            int64_t sh[4] = {lv->cout, lv->cout, 3, 3};
            float *v = NULL;
            snprintf(k, sizeof k, "encoder.downsamples.%d.downsamples.%d.resample.1.weight", i,
                     c->n_res);
            SK_TRY(rd(L, k, 4, sh, &v));
            sk_status st = up(L, v, 4, sh, &lv->dw);
            free(v);
            SK_TRY(st);
            snprintf(k, sizeof k, "encoder.downsamples.%d.downsamples.%d.resample.1.bias", i,
                     c->n_res);
            SK_TRY(vec(L, k, lv->cout, 1, &lv->db));
            if (c->t_down[i]) { /* first-chunk no-op: only marked as known */
                snprintf(k, sizeof k, "encoder.downsamples.%d.downsamples.%d.time_conv.weight",
                         i, c->n_res);
                (void)find_mark(L, k);
                snprintf(k, sizeof k, "encoder.downsamples.%d.downsamples.%d.time_conv.bias", i,
                         c->n_res);
                (void)find_mark(L, k);
            }
        }
        SK_TRY(make_avg(L, lv, c->t_down[i] ? 2 : 1, lv->down ? 2 : 1, i));
        cin = lv->cout;
    }
    const int64_t C = cin;
    SK_TRY(load_res(L, "encoder.middle.0", C, C, &m->mid0));
    SK_TRY(load_res(L, "encoder.middle.2", C, C, &m->mid1));
    SK_TRY(vec(L, "encoder.middle.1.norm.gamma", C, 3, &m->attn_g));
    {
        int64_t sh[4] = {3 * C, C, 1, 1}, s2[2] = {C, C};
        float *v = NULL, *b = NULL;
        SK_TRY(rd(L, "encoder.middle.1.to_qkv.weight", 4, sh, &v));
        sk_status st = rd(L, "encoder.middle.1.to_qkv.bias", 1, sh, &b);
        sk_tensor *w3[3] = {&m->wq, &m->wk, &m->wv}, *b3[3] = {&m->bq, &m->bk, &m->bv};
        for (int i = 0; i < 3 && st == SK_OK; i++) {
            st = up(L, v + i * C * C, 2, s2, w3[i]);
            if (st == SK_OK) st = up(L, b + i * C, 1, s2, b3[i]);
        }
        free(v);
        free(b);
        SK_TRY(st);
        int64_t p4[4] = {C, C, 1, 1};
        SK_TRY(rd(L, "encoder.middle.1.proj.weight", 4, p4, &v));
        st = up(L, v, 2, s2, &m->wp);
        free(v);
        SK_TRY(st);
        SK_TRY(vec(L, "encoder.middle.1.proj.bias", C, 1, &m->bp));
    }
    const int64_t z2 = 2 * c->z;
    SK_TRY(vec(L, "encoder.head.0.gamma", C, 4, &m->head_g));
    SK_TRY(conv_tap(L, "encoder.head.2.weight", z2, C, 3, 3, &m->head_w));
    SK_TRY(vec(L, "encoder.head.2.bias", z2, 1, &m->head_b));
    {
        /* latent = (mu - mean) / std, mu = conv1 rows 0..z-1: folded into the 1x1 conv */
        int64_t sh[5] = {z2, z2, 1, 1, 1};
        float *w = NULL, *b = NULL;
        SK_TRY(rd(L, "conv1.weight", 5, sh, &w));
        sk_status st = rd(L, "conv1.bias", 1, sh, &b);
        if (st == SK_OK) {
            for (int o = 0; o < c->z; o++) {
                const float is = 1.0f / sk_wanvae22_std[o];
                for (int64_t i = 0; i < z2; i++) w[o * z2 + i] *= is;
                b[o] = (b[o] - sk_wanvae22_mean[o]) * is;
            }
            int64_t o4[4] = {c->z, z2, 1, 1}, o1[1] = {c->z};
            st = up(L, w, 4, o4, &m->out_w);
            if (st == SK_OK) st = up(L, b, 1, o1, &m->out_b);
        }
        free(w);
        free(b);
        SK_TRY(st);
    }
    /* every encoder tensor must have been used: another layout is not this model */
    for (int i = 0; i < L->f->n_tensors; i++) {
        const char *n = L->f->tensors[i].name;
        const int ours = !strncmp(n, "encoder.", 8) || !strncmp(n, "conv1.", 6);
        SK_CHECK(!ours || L->used[i], SK_E_FORMAT, "Wan2.2 VAE encoder '%s': unexpected tensor "
                 "'%s' (not part of the detected layout: dim %d, %d levels, %d residual blocks "
                 "each)", L->f->path, n, c->dim, c->levels, c->n_res);
    }
    return SK_OK;
}

void sk_wanvae_enc_free(sk_wanvae_enc **mp)
{
    if (!mp || !*mp) return;
    sk_wanvae_enc *m = *mp;
    sk_tensor_free(&m->conv1_w);
    sk_tensor_free(&m->conv1_b);
    for (int i = 0; i < SK_WANVAE_MAX_LEVELS; i++) {
        wv_level *lv = &m->lv[i];
        for (int j = 0; j < SK_WANVAE_MAX_RES; j++) free_res(&lv->res[j]);
        sk_tensor_free(&lv->dw);
        sk_tensor_free(&lv->db);
        sk_tensor_free(&lv->avg);
    }
    free_res(&m->mid0);
    free_res(&m->mid1);
    sk_tensor *t[] = {&m->attn_g, &m->wq, &m->bq, &m->wk, &m->bk, &m->wv, &m->bv, &m->wp,
                      &m->bp, &m->head_g, &m->head_w, &m->head_b, &m->out_w, &m->out_b};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) sk_tensor_free(t[i]);
    sk_backend_free_(&m->own_be);
    free(m);
    *mp = NULL;
}

sk_status sk_wanvae_enc_load_st(sk_backend *be, const sk_st_file *f, sk_wanvae_enc **out)
{
    SK_CHECK(f && out, SK_E_INVALID_ARG, "sk_wanvae_enc_load_st: NULL argument");
    *out = NULL;
    sk_wanvae_enc *m = calloc(1, sizeof *m);
    SK_CHECK(m, SK_E_OOM, "Wan2.2 VAE encoder: out of host memory");
    sk_status st = SK_OK;
    if (!sk_backend_has_vae_ops(be)) {
        if (be)
            SK_LOGI("Wan2.2 VAE encoder: the %s backend lacks its layout ops (transpose, pad2d); "
                    "encoding on the CPU", be->name);
        st = sk_backend_cpu_create(&m->own_be);
        be = m->own_be;
    }
    wv_loader L = {be, f, calloc((size_t)f->n_tensors + 1, 1)};
    m->be = be;
    if (st == SK_OK && !L.used) st = SK_ERR(SK_E_OOM, "Wan2.2 VAE encoder: out of host memory");
    if (st == SK_OK) st = detect(&L, &m->cfg);
    if (st == SK_OK) st = bind(&L, m);
    free(L.used);
    if (st != SK_OK) {
        sk_wanvae_enc_free(&m);
        return st;
    }
    char d[160];
    SK_LOGI("loaded %s from '%s'", sk_wanvae_enc_describe(m, d, sizeof d), f->path);
    *out = m;
    return SK_OK;
}

sk_status sk_wanvae_enc_load(sk_backend *be, const char *path, sk_wanvae_enc **out)
{
    SK_CHECK(path && out, SK_E_INVALID_ARG, "sk_wanvae_enc_load: NULL argument");
    *out = NULL;
    sk_st_file *f = NULL;
    SK_TRY(sk_st_open(path, &f));
    sk_status st = sk_wanvae_enc_load_st(be, f, out);
    sk_st_close(&f);
    return st;
}

const sk_wanvae_config *sk_wanvae_enc_config(const sk_wanvae_enc *m) { return &m->cfg; }

const char *sk_wanvae_enc_describe(const sk_wanvae_enc *m, char *buf, size_t cap)
{
    const sk_wanvae_config *c = &m->cfg;
    int n = snprintf(buf, cap, "Wan2.2 VAE encoder (dim %d, widths", c->dim);
    for (int i = 0; i < c->levels && n > 0 && (size_t)n < cap; i++)
        n += snprintf(buf + n, cap - (size_t)n, "%s%d", i ? "/" : " ", c->width[i]);
    if (n > 0 && (size_t)n < cap)
        snprintf(buf + n, cap - (size_t)n, ", %d res blocks, z %d, %dx)", c->n_res, c->z,
                 c->space_factor);
    return buf;
}
