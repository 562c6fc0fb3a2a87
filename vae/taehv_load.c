/* taehv_load.c - TAEHV config detection from tensor shapes and strict weight
 * binding (spec A1, A3, A4, A8). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/core/log.h"
#include "vae/taehv_internal.h"

/* Upstream Sequential indices of the MemBlocks. */
static const int k_dec_mem[SK_TAEHV_NMEM] = {3, 4, 5, 9, 10, 11, 15, 16, 17};
static const int k_enc_mem[SK_TAEHV_NMEM] = {4, 5, 6, 9, 10, 11, 14, 15, 16};
static const int k_dec_grow[3] = {7, 13, 19}, k_dec_stage[3] = {8, 14, 20};
static const int k_enc_pool[3] = {2, 7, 12}, k_enc_down[3] = {3, 8, 13};

sk_taehv_load_opts sk_taehv_load_opts_default(void)
{
    sk_taehv_load_opts o;
    memset(&o, 0, sizeof o);
    o.variant = SK_TAEHV_AUTO;
    o.need_decoder = 1;
    return o;
}

const char *sk_taehv_variant_name(sk_taehv_variant v)
{
    switch (v) {
    case SK_TAEHV_W2_1: return "taew2_1";
    case SK_TAEHV_W2_2: return "taew2_2";
    default: return "auto";
    }
}

sk_status sk_taehv_variant_from_name(const char *s, sk_taehv_variant *out)
{
    SK_CHECK(s && out, SK_E_INVALID_ARG, "taehv: no variant name given");
    if (!strcmp(s, "auto")) *out = SK_TAEHV_AUTO;
    else if (!strcmp(s, "taew2_1") || !strcmp(s, "2.1")) *out = SK_TAEHV_W2_1;
    else if (!strcmp(s, "taew2_2") || !strcmp(s, "2.2")) *out = SK_TAEHV_W2_2;
    else if (strstr(s, "super"))
        return SK_ERR(SK_E_UNSUPPORTED,
                      "taehv: variant '%s' is not supported: taew2_2_super uses a different "
                      "(SuperMemBlock) decoder; use taew2_1 or taew2_2", s);
    else
        return SK_ERR(SK_E_INVALID_ARG,
                      "taehv: unknown variant '%s'; expected auto, taew2_1 or taew2_2", s);
    return SK_OK;
}

const sk_taehv_config *sk_taehv_get_config(const sk_taehv *m) { return &m->cfg; }
sk_backend *sk_taehv_backend(const sk_taehv *m) { return m->be; }

const char *sk_taehv_describe(const sk_taehv *m, char *buf, size_t cap)
{
    const sk_taehv_config *c = &m->cfg;
    char enc[32] = "none";
    if (c->has_encoder) snprintf(enc, sizeof enc, "%d", c->enc_width);
    if (c->has_decoder)
        snprintf(buf, cap, "%s (z=%d, patch %d, %dx spatial, decoder %d/%d/%d/%d, encoder %s)",
                 sk_taehv_variant_name(c->variant), c->latent_channels, c->patch,
                 c->space_factor, c->nf[0], c->nf[1], c->nf[2], c->nf[3], enc);
    else
        snprintf(buf, cap, "%s (z=%d, patch %d, %dx spatial, no decoder, encoder %s)",
                 sk_taehv_variant_name(c->variant), c->latent_channels, c->patch,
                 c->space_factor, enc);
    return buf;
}

int64_t sk_taehv_frames_for_latents(const sk_taehv_config *c, int64_t n)
{
    return n <= 0 ? 0 : n * c->t_upscale - c->frames_to_trim;
}

int64_t sk_taehv_latents_for_frames(const sk_taehv_config *c, int64_t t)
{
    return t <= 0 ? 0 : (t + c->t_upscale - 1) / c->t_upscale;
}

/* ---------------------------------------------------------------- detection */

/* dim d of tensor name, which must exist with ndim dims. */
static sk_status dim_of(const sk_st_file *f, const char *name, int ndim, int d, int64_t *out)
{
    const sk_st_tensor *t = sk_st_find(f, name);
    SK_CHECK(t, SK_E_FORMAT,
             "taehv '%s': tensor '%s' is missing; the file is not a complete TAEHV checkpoint "
             "(expected upstream key names decoder.N... / encoder.N...)", f->path, name);
    SK_CHECK(t->ndim == ndim, SK_E_SHAPE, "taehv '%s': tensor '%s' has %d dims; expected %d",
             f->path, name, t->ndim, ndim);
    *out = t->shape[d];
    return SK_OK;
}

static int has_prefix(const sk_st_file *f, const char *prefix)
{
    size_t n = strlen(prefix);
    for (int i = 0; i < f->n_tensors; i++)
        if (!strncmp(f->tensors[i].name, prefix, n)) return 1;
    return 0;
}

static sk_status detect(const sk_st_file *f, const sk_taehv_load_opts *o, sk_taehv_config *c)
{
    memset(c, 0, sizeof *c);
    const char *base = strrchr(f->path, '/');
    base = base ? base + 1 : f->path;
    SK_CHECK(!strstr(base, "_super"), SK_E_UNSUPPORTED,
             "taehv '%s': taew2_2_super checkpoints (SuperMemBlock decoder, widths 512/256/128/64) "
             "are not supported; use taew2_1.safetensors or taew2_2.safetensors", f->path);
    c->has_decoder = has_prefix(f, "decoder.");
    c->has_encoder = has_prefix(f, "encoder.");
    SK_CHECK(c->has_decoder || c->has_encoder, SK_E_FORMAT,
             "taehv '%s': no decoder.* or encoder.* tensors; this is not a TAEHV checkpoint "
             "(first tensor: '%s')", f->path, f->n_tensors ? f->tensors[0].name : "none");
    SK_CHECK(c->has_decoder || !o->need_decoder, SK_E_FORMAT,
             "taehv '%s': the file has no decoder.* tensors but decoding was asked for", f->path);
    SK_CHECK(c->has_encoder || !o->need_encoder, SK_E_FORMAT,
             "taehv '%s': the file has no encoder.* tensors (a decoder-only checkpoint?) but "
             "encoding was asked for", f->path);
    int64_t z = 0, p2x3 = 0;
    if (c->has_decoder) {
        int64_t v = 0;
        SK_TRY(dim_of(f, "decoder.1.weight", 4, 1, &z));
        SK_TRY(dim_of(f, "decoder.22.weight", 4, 0, &p2x3));
        SK_TRY(dim_of(f, "decoder.1.weight", 4, 0, &v));  c->nf[0] = (int)v;
        SK_TRY(dim_of(f, "decoder.8.weight", 4, 0, &v));  c->nf[1] = (int)v;
        SK_TRY(dim_of(f, "decoder.14.weight", 4, 0, &v)); c->nf[2] = (int)v;
        SK_TRY(dim_of(f, "decoder.20.weight", 4, 0, &v)); c->nf[3] = (int)v;
        for (int s = 0; s < 3; s++) {
            char name[64];
            snprintf(name, sizeof name, "decoder.%d.conv.weight", k_dec_grow[s]);
            SK_TRY(dim_of(f, name, 4, 0, &v));
            int64_t want = (int64_t)c->nf[s] * sk_taehv_tgrow_stride[s];
            SK_CHECK(v == want, SK_E_UNSUPPORTED,
                     "taehv '%s': '%s' has %lld output rows; the Wan TAEHV has %lld (temporal "
                     "upscale strides 1,2,2). An LTX / other-model TAEHV is not supported",
                     f->path, name, (long long)v, (long long)want);
        }
    }
    if (c->has_encoder) {
        int64_t ez = 0, ep = 0, ew = 0;
        SK_TRY(dim_of(f, "encoder.0.weight", 4, 0, &ew));
        SK_TRY(dim_of(f, "encoder.0.weight", 4, 1, &ep));
        SK_TRY(dim_of(f, "encoder.17.weight", 4, 0, &ez));
        c->enc_width = (int)ew;
        if (!c->has_decoder) {
            z = ez;
            p2x3 = ep;
        } else {
            SK_CHECK(ez == z && ep == p2x3, SK_E_SHAPE,
                     "taehv '%s': encoder and decoder disagree: encoder.17.weight gives %lld latent "
                     "channels and encoder.0.weight %lld input channels; decoder.1.weight gives "
                     "%lld and decoder.22.weight %lld", f->path, (long long)ez, (long long)ep,
                     (long long)z, (long long)p2x3);
        }
    }
    int p = p2x3 == 3 ? 1 : p2x3 == 12 ? 2 : 0;
    SK_CHECK(p != 0, SK_E_UNSUPPORTED,
             "taehv '%s': %lld RGB channels at the %s (3*p^2); only patch 1 (3) and patch 2 (12) "
             "exist in the Wan TAEHVs", f->path, (long long)p2x3,
             c->has_decoder ? "decoder output (decoder.22.weight)" : "encoder input (encoder.0.weight)");
    sk_taehv_variant det = z == 16 && p == 1 ? SK_TAEHV_W2_1 : z == 48 && p == 2 ? SK_TAEHV_W2_2
                                                                                : SK_TAEHV_AUTO;
    if (o->variant != SK_TAEHV_AUTO && o->variant != det) {
        int wz = o->variant == SK_TAEHV_W2_1 ? 16 : 48, wp = o->variant == SK_TAEHV_W2_1 ? 1 : 2;
        return SK_ERR(SK_E_SHAPE,
                      "taehv '%s': --vae-variant %s expects %d latent channels and patch %d, but "
                      "%s has %lld latent channels and %lld RGB channels (patch %d); drop the "
                      "option to auto-detect", f->path, sk_taehv_variant_name(o->variant), wz, wp,
                      c->has_decoder ? "decoder.1.weight" : "encoder.17.weight", (long long)z,
                      (long long)p2x3, p);
    }
    SK_CHECK(det != SK_TAEHV_AUTO, SK_E_UNSUPPORTED,
             "taehv '%s': %lld latent channels with patch %d is not a Wan TAEHV (taew2_1: 16 / 1, "
             "taew2_2: 48 / 2)%s", f->path, (long long)z, p,
             z == 32 && p == 2 ? "; it looks like taehv1_5 (HunyuanVideo 1.5)" : "");
    c->variant = det;
    c->latent_channels = (int)z;
    c->patch = p;
    c->t_upscale = 4;
    c->frames_to_trim = 3;
    c->space_factor = 8 * p;
    for (int i = 0; i < 4 && c->has_decoder; i++)
        SK_CHECK(c->nf[i] > 0 && c->nf[i] <= 4096, SK_E_SHAPE,
                 "taehv '%s': decoder width %d of stage %d is out of range", f->path, c->nf[i], i);
    SK_CHECK(!c->has_encoder || (c->enc_width > 0 && c->enc_width <= 4096), SK_E_SHAPE,
             "taehv '%s': encoder width %d is out of range", f->path, c->enc_width);
    return SK_OK;
}

/* ---------------------------------------------------------------- binding */

typedef struct {
    char name[48];
    sk_tensor *dst;
    int ndim;
    int64_t shape[4];
    int is_bias;
} bind_entry;

typedef struct {
    bind_entry *e;
    int n, cap;
} bind_list;

static sk_status add(bind_list *l, sk_tensor *dst, int is_bias, int ndim, int64_t a, int64_t b,
                     int64_t c, int64_t d, const char *fmt, int idx)
{
    if (l->n == l->cap) {
        int nc = l->cap ? 2 * l->cap : 160;
        bind_entry *ne = realloc(l->e, (size_t)nc * sizeof *ne);
        SK_CHECK(ne, SK_E_OOM, "taehv: out of host memory building the binding table");
        l->e = ne;
        l->cap = nc;
    }
    bind_entry *e = &l->e[l->n++];
    memset(e, 0, sizeof *e);
    snprintf(e->name, sizeof e->name, fmt, idx);
    e->dst = dst;
    e->ndim = ndim;
    e->shape[0] = a; e->shape[1] = b; e->shape[2] = c; e->shape[3] = d;
    e->is_bias = is_bias;
    return SK_OK;
}

static sk_status add_mem(bind_list *l, sk_taehv_memblock *mb, const char *part, int idx, int64_t c)
{
    char fmt[64];
    snprintf(fmt, sizeof fmt, "%s.%%d.conv.0.weight", part);
    SK_TRY(add(l, &mb->w0, 0, 4, c, 2 * c, 3, 3, fmt, idx));
    snprintf(fmt, sizeof fmt, "%s.%%d.conv.0.bias", part);
    SK_TRY(add(l, &mb->b0, 1, 1, c, 0, 0, 0, fmt, idx));
    snprintf(fmt, sizeof fmt, "%s.%%d.conv.2.weight", part);
    SK_TRY(add(l, &mb->w2, 0, 4, c, c, 3, 3, fmt, idx));
    snprintf(fmt, sizeof fmt, "%s.%%d.conv.2.bias", part);
    SK_TRY(add(l, &mb->b2, 1, 1, c, 0, 0, 0, fmt, idx));
    snprintf(fmt, sizeof fmt, "%s.%%d.conv.4.weight", part);
    SK_TRY(add(l, &mb->w4, 0, 4, c, c, 3, 3, fmt, idx));
    snprintf(fmt, sizeof fmt, "%s.%%d.conv.4.bias", part);
    SK_TRY(add(l, &mb->b4, 1, 1, c, 0, 0, 0, fmt, idx));
    return SK_OK;
}

/* The expected tensors of this config, with the destination of each. */
static sk_status build_table(sk_taehv *m, bind_list *l)
{
    const sk_taehv_config *c = &m->cfg;
    const int64_t z = c->latent_channels, rgb = 3 * c->patch * c->patch;
    if (c->has_decoder) {
        const int64_t *nf = (int64_t[]){c->nf[0], c->nf[1], c->nf[2], c->nf[3]};
        SK_TRY(add(l, &m->d1_w, 0, 4, nf[0], z, 3, 3, "decoder.%d.weight", 1));
        SK_TRY(add(l, &m->d1_b, 1, 1, nf[0], 0, 0, 0, "decoder.%d.bias", 1));
        for (int i = 0; i < SK_TAEHV_NMEM; i++)
            SK_TRY(add_mem(l, &m->dmem[i], "decoder", k_dec_mem[i], nf[i / 3]));
        for (int s = 0; s < 3; s++) {
            SK_TRY(add(l, &m->dgrow_w[s], 0, 4, nf[s] * sk_taehv_tgrow_stride[s], nf[s], 1, 1,
                       "decoder.%d.conv.weight", k_dec_grow[s]));
            SK_TRY(add(l, &m->dstage_w[s], 0, 4, nf[s + 1], nf[s], 3, 3, "decoder.%d.weight",
                       k_dec_stage[s]));
        }
        SK_TRY(add(l, &m->d22_w, 0, 4, rgb, nf[3], 3, 3, "decoder.%d.weight", 22));
        SK_TRY(add(l, &m->d22_b, 1, 1, rgb, 0, 0, 0, "decoder.%d.bias", 22));
    }
    if (c->has_encoder) {
        const int64_t e = c->enc_width;
        SK_TRY(add(l, &m->e0_w, 0, 4, e, rgb, 3, 3, "encoder.%d.weight", 0));
        SK_TRY(add(l, &m->e0_b, 1, 1, e, 0, 0, 0, "encoder.%d.bias", 0));
        for (int s = 0; s < 3; s++) {
            SK_TRY(add(l, &m->epool_w[s], 0, 4, e, e * sk_taehv_tpool_stride[s], 1, 1,
                       "encoder.%d.conv.weight", k_enc_pool[s]));
            SK_TRY(add(l, &m->edown_w[s], 0, 4, e, e, 3, 3, "encoder.%d.weight", k_enc_down[s]));
        }
        for (int i = 0; i < SK_TAEHV_NMEM; i++)
            SK_TRY(add_mem(l, &m->emem[i], "encoder", k_enc_mem[i], e));
        SK_TRY(add(l, &m->e17_w, 0, 4, z, e, 3, 3, "encoder.%d.weight", 17));
        SK_TRY(add(l, &m->e17_b, 1, 1, z, 0, 0, 0, "encoder.%d.bias", 17));
    }
    return SK_OK;
}

static sk_status upload_one(sk_backend *be, const sk_st_tensor *src, sk_dtype dt, sk_tensor *dst)
{
    SK_TRY(sk_tensor_alloc(be, dt, src->ndim, src->shape, dst));
    if (src->dtype == dt) return sk_tensor_upload_raw(dst, src->data, src->nbytes);
    size_t n = (size_t)sk_tensor_numel(dst);
    void *tmp = malloc(sk_tensor_nbytes(dst) ? sk_tensor_nbytes(dst) : 1);
    SK_CHECK(tmp, SK_E_OOM, "taehv: out of host memory converting '%s'", src->name);
    sk_status st = sk_convert(tmp, dt, src->data, src->dtype, n);
    if (st == SK_OK) st = sk_tensor_upload_raw(dst, tmp, sk_tensor_nbytes(dst));
    free(tmp);
    return st;
}

static sk_status bind(sk_taehv *m, const sk_st_file *f, const sk_taehv_load_opts *o)
{
    bind_list l = {0};
    unsigned char *claimed = NULL;
    sk_status st = build_table(m, &l);
    if (st != SK_OK) goto done;
    claimed = calloc((size_t)f->n_tensors + 1, 1);
    if (!claimed) {
        st = SK_ERR(SK_E_OOM, "taehv: out of host memory");
        goto done;
    }
    /* 1: every expected tensor present, right shape, float dtype */
    for (int i = 0; i < l.n; i++) {
        const bind_entry *e = &l.e[i];
        const sk_st_tensor *t = sk_st_find(f, e->name);
        char want[96], got[96];
        sk_shape_str_n(e->ndim, e->shape, want, sizeof want);
        if (!t) {
            st = SK_ERR(SK_E_FORMAT,
                        "taehv '%s': tensor '%s' %s is missing (%s layout detected); the "
                        "checkpoint is incomplete or not a base TAEHV", f->path, e->name, want,
                        sk_taehv_variant_name(m->cfg.variant));
            goto done;
        }
        claimed[t - f->tensors] = 1;
        int same = t->ndim == e->ndim;
        for (int d = 0; same && d < e->ndim; d++) same = t->shape[d] == e->shape[d];
        if (!same) {
            st = SK_ERR(SK_E_SHAPE, "taehv '%s': tensor '%s' has shape %s; expected %s for %s",
                        f->path, e->name, sk_shape_str_n(t->ndim, t->shape, got, sizeof got),
                        want, sk_taehv_variant_name(m->cfg.variant));
            goto done;
        }
        if (!(t->dtype == SK_DTYPE_F32 || t->dtype == SK_DTYPE_F16 ||
              t->dtype == SK_DTYPE_BF16)) {
            st = SK_ERR(SK_E_DTYPE, "taehv '%s': tensor '%s' has dtype %s; expected F32, F16 or BF16",
                        f->path, e->name, sk_dtype_st_name(t->dtype));
            goto done;
        }
        /* NaN/Inf weights would decode to a black or NaN video with exit 0 (issue 15 #7) */
        int64_t bad = sk_st_first_nonfinite(t);
        if (bad >= 0) {
            st = SK_ERR(SK_E_FORMAT, "taehv '%s': tensor '%s' holds a non-finite value (NaN or "
                        "Inf) at flat index %lld; expected finite weights (a corrupt file?)",
                        f->path, e->name, (long long)bad);
            goto done;
        }
    }
    /* 2: nothing unexpected */
    int n_unexp = 0, first = -1;
    for (int i = 0; i < f->n_tensors; i++)
        if (!claimed[i]) {
            if (first < 0) first = i;
            n_unexp++;
        }
    if (n_unexp) {
        st = SK_ERR(SK_E_FORMAT,
                    "taehv '%s': %d unexpected tensor(s), first '%s'; a base TAEHV (%s) has "
                    "exactly %d. A taew2_2_super (SuperMemBlock) or otherwise modified checkpoint "
                    "is not supported", f->path, n_unexp, f->tensors[first].name,
                    sk_taehv_variant_name(m->cfg.variant), l.n);
        goto done;
    }
    /* 3: upload */
    sk_dtype wdt = o->set_weight_dtype ? o->weight_dtype : m->be->act_dtype;
    for (int i = 0; i < l.n; i++) {
        const bind_entry *e = &l.e[i];
        const sk_st_tensor *t = sk_st_find(f, e->name);
        st = upload_one(m->be, t, e->is_bias ? m->be->act_dtype : wdt, e->dst);
        if (st != SK_OK) {
            sk_error_prefix("taehv '%s': uploading '%s': ", f->path, e->name);
            goto done;
        }
    }
done:
    free(claimed);
    free(l.e);
    return st;
}

static void free_mem(sk_taehv_memblock *mb)
{
    sk_tensor_free(&mb->w0); sk_tensor_free(&mb->b0);
    sk_tensor_free(&mb->w2); sk_tensor_free(&mb->b2);
    sk_tensor_free(&mb->w4); sk_tensor_free(&mb->b4);
}

void sk_taehv_free(sk_taehv **pm)
{
    if (!pm || !*pm) return;
    sk_taehv *m = *pm;
    sk_tensor_free(&m->d1_w); sk_tensor_free(&m->d1_b);
    sk_tensor_free(&m->d22_w); sk_tensor_free(&m->d22_b);
    sk_tensor_free(&m->e0_w); sk_tensor_free(&m->e0_b);
    sk_tensor_free(&m->e17_w); sk_tensor_free(&m->e17_b);
    for (int i = 0; i < 3; i++) {
        sk_tensor_free(&m->dgrow_w[i]); sk_tensor_free(&m->dstage_w[i]);
        sk_tensor_free(&m->epool_w[i]); sk_tensor_free(&m->edown_w[i]);
    }
    for (int i = 0; i < SK_TAEHV_NMEM; i++) {
        free_mem(&m->dmem[i]);
        free_mem(&m->emem[i]);
    }
    free(m);
    *pm = NULL;
}

sk_status sk_taehv_load_st(sk_backend *be, const sk_st_file *f, const sk_taehv_load_opts *opts,
                           sk_taehv **out)
{
    SK_CHECK(be && f && out, SK_E_INVALID_ARG, "taehv: load without backend, file or output");
    *out = NULL;
    sk_taehv_load_opts o = opts ? *opts : sk_taehv_load_opts_default();
    if (o.set_weight_dtype)
        SK_CHECK(o.weight_dtype == SK_DTYPE_F32 || o.weight_dtype == SK_DTYPE_F16 ||
                     o.weight_dtype == SK_DTYPE_BF16,
                 SK_E_INVALID_ARG, "taehv: weight dtype %s; expected f32, f16 or bf16",
                 sk_dtype_name(o.weight_dtype));
    sk_taehv *m = calloc(1, sizeof *m);
    SK_CHECK(m, SK_E_OOM, "taehv: out of host memory");
    m->be = be;
    sk_status st = detect(f, &o, &m->cfg);
    if (st == SK_OK) st = bind(m, f, &o);
    if (st != SK_OK) {
        sk_taehv_free(&m);
        return st;
    }
    char d[160];
    SK_LOGD("taehv: %s: %s", f->path, sk_taehv_describe(m, d, sizeof d));
    *out = m;
    return SK_OK;
}

sk_status sk_taehv_load(sk_backend *be, const char *path, const sk_taehv_load_opts *opts,
                        sk_taehv **out)
{
    SK_CHECK(path && out, SK_E_INVALID_ARG, "taehv: no path given");
    *out = NULL;
    sk_st_file *f = NULL;
    SK_TRY(sk_st_open(path, &f));
    sk_status st = sk_taehv_load_st(be, f, opts, out);
    sk_st_close(&f);
    return st;
}
