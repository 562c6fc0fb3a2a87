/* umt5_load.c - umT5 config detection and strict weight binding (see umt5.h).
 *
 * One table (k_slots) lists every tensor the encoder needs under its Wan name
 * and its Hugging Face UMT5EncoderModel aliases; one list (k_prefixes) the
 * key prefixes that are stripped; one list (k_ignored) the tensors a file may
 * carry that the encoder does not use. Anything else is an error.
 */
#include <cjson/cJSON.h>

#include "runtime/io/json_strict.h"
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "runtime/core/log.h"
#include "umt5_internal.h"

/* ---------------------------------------------------------------- the name table */
typedef enum { SH_EMB, SH_DIM, SH_QKV, SH_O, SH_POS, SH_FFN_IN, SH_FFN_OUT } shape_kind;

typedef struct {
    const char *names[3]; /* Wan name first, then aliases; "%d" = layer index */
    int per_layer;
    shape_kind shape;
    size_t field; /* offsetof in sk_umt5_layer (per layer) or sk_umt5 */
} slot;

#define LF(f) offsetof(sk_umt5_layer, f)
#define MF(f) offsetof(struct sk_umt5, f)
#define HFB "encoder.block.%d.layer."
static const slot k_slots[] = {
    {{"token_embedding.weight", "shared.weight", "encoder.embed_tokens.weight"}, 0, SH_EMB,
     MF(embed)},
    {{"blocks.%d.norm1.weight", HFB "0.layer_norm.weight"}, 1, SH_DIM, LF(norm1)},
    {{"blocks.%d.attn.q.weight", HFB "0.SelfAttention.q.weight"}, 1, SH_QKV, LF(q)},
    {{"blocks.%d.attn.k.weight", HFB "0.SelfAttention.k.weight"}, 1, SH_QKV, LF(k)},
    {{"blocks.%d.attn.v.weight", HFB "0.SelfAttention.v.weight"}, 1, SH_QKV, LF(v)},
    {{"blocks.%d.attn.o.weight", HFB "0.SelfAttention.o.weight"}, 1, SH_O, LF(o)},
    {{"blocks.%d.pos_embedding.embedding.weight",
      HFB "0.SelfAttention.relative_attention_bias.weight"}, 1, SH_POS, 0 /* host copy */},
    {{"blocks.%d.norm2.weight", HFB "1.layer_norm.weight"}, 1, SH_DIM, LF(norm2)},
    {{"blocks.%d.ffn.gate.0.weight", HFB "1.DenseReluDense.wi_0.weight"}, 1, SH_FFN_IN, LF(gate)},
    {{"blocks.%d.ffn.fc1.weight", HFB "1.DenseReluDense.wi_1.weight"}, 1, SH_FFN_IN, LF(fc1)},
    {{"blocks.%d.ffn.fc2.weight", HFB "1.DenseReluDense.wo.weight"}, 1, SH_FFN_OUT, LF(fc2)},
    {{"norm.weight", "encoder.final_layer_norm.weight"}, 0, SH_DIM, MF(norm)},
};
#define N_SLOTS ((int)(sizeof k_slots / sizeof k_slots[0]))
enum { SLOT_EMB = 0, SLOT_Q = 2, SLOT_POS = 6, SLOT_FC1 = 9 };

static const char *const k_prefixes[] = {"model.", "_orig_mod.", "text_encoder."};
/* Present in some files, not used by the encoder: ComfyUI's tokenizer blob
 * (read by text_encoder.c instead), the decoder and LM head of full T5 files. */
static int is_ignored(const char *name)
{
    return !strcmp(name, "spiece_model") || !strncmp(name, "decoder.", 8) ||
           !strcmp(name, "lm_head.weight");
}

static const char *strip_prefixes(const char *name)
{
    for (int again = 1; again;) {
        again = 0;
        for (size_t i = 0; i < sizeof k_prefixes / sizeof k_prefixes[0]; i++) {
            size_t n = strlen(k_prefixes[i]);
            if (!strncmp(name, k_prefixes[i], n)) { name += n; again = 1; }
        }
    }
    return name;
}

/* name against a pattern with at most one "%d"; returns 1 and the layer on a match. */
static int match_pattern(const char *pat, const char *name, int64_t *layer)
{
    const char *d = strstr(pat, "%d");
    if (!d) { *layer = -1; return !strcmp(pat, name); }
    size_t pre = (size_t)(d - pat);
    if (strncmp(pat, name, pre)) return 0;
    const char *p = name + pre;
    if (*p < '0' || *p > '9' || (p[0] == '0' && p[1] >= '0' && p[1] <= '9')) return 0;
    int64_t v = 0;
    while (*p >= '0' && *p <= '9') {
        v = v * 10 + (*p++ - '0');
        if (v > 100000) return 0;
    }
    if (strcmp(p, d + 2)) return 0;
    *layer = v;
    return 1;
}

/* The slot name for layer l (for messages). */
static const char *slot_name(int s, int alias, int64_t l, char *buf, size_t cap)
{
    snprintf(buf, cap, k_slots[s].names[alias], (int)l);
    return buf;
}

/* ---------------------------------------------------------------- config sources */
typedef struct {
    int64_t v[9]; /* vocab dim dim_attn dim_ffn heads layers buckets maxdist text_len; -1 unset */
    double eps;   /* NAN unset */
    int64_t d_kv; /* HF: dim_attn = d_kv * num_heads */
    const char *src;
} declared;
enum { D_VOCAB, D_DIM, D_ATTN, D_FFN, D_HEADS, D_LAYERS, D_BUCKETS, D_MAXDIST, D_TEXTLEN };
static const char *const k_dnames[9] = {"vocab_size", "dim", "dim_attn", "dim_ffn", "num_heads",
                                        "num_layers", "num_buckets", "max_distance", "text_len"};

static const struct { const char *key; int idx; } k_keys[] = {
    {"vocab_size", D_VOCAB}, {"vocab", D_VOCAB}, {"dim", D_DIM}, {"d_model", D_DIM},
    {"dim_attn", D_ATTN}, {"dim_ffn", D_FFN}, {"d_ff", D_FFN}, {"num_heads", D_HEADS},
    {"num_layers", D_LAYERS}, {"encoder_layers", D_LAYERS}, {"num_buckets", D_BUCKETS},
    {"relative_attention_num_buckets", D_BUCKETS}, {"max_distance", D_MAXDIST},
    {"max_dist", D_MAXDIST}, {"relative_attention_max_distance", D_MAXDIST},
    {"text_len", D_TEXTLEN},
};

/* One key = value (number, or a string holding one). Unknown keys are ignored:
 * config files carry many fields the encoder has no use for. */
static sk_status declare(declared *d, const char *key, const char *sval, double num, int is_num)
{
    double v = num;
    if (!is_num) {
        char *end = NULL;
        v = strtod(sval, &end);
        is_num = end && end != sval && *end == 0;
    }
    if (!strcmp(key, "layer_norm_epsilon") || !strcmp(key, "eps")) {
        SK_CHECK(is_num && v > 0 && v < 1, SK_E_FORMAT, "umT5 %s: '%s' = '%s' is not an epsilon",
                 d->src, key, sval ? sval : "?");
        d->eps = v;
        return SK_OK;
    }
    if (!strcmp(key, "dense_act_fn") || !strcmp(key, "feed_forward_proj")) {
        const char *s = sval ? sval : "";
        SK_CHECK(!strcmp(s, "gelu_new") || !strcmp(s, "gelu_pytorch_tanh") ||
                     !strcmp(s, "gated-gelu"),
                 SK_E_UNSUPPORTED,
                 "umT5 %s: '%s' is '%s'; only the gated tanh-GELU FFN of umT5/T5 v1.1 "
                 "(gelu_new, gelu_pytorch_tanh, gated-gelu) is implemented", d->src, key, s);
        return SK_OK;
    }
    if (!strcmp(key, "is_gated_act")) {
        SK_CHECK(!sval || !strcmp(sval, "true") || !strcmp(sval, "True"), SK_E_UNSUPPORTED,
                 "umT5 %s: is_gated_act is false; only the gated FFN is implemented", d->src);
        return SK_OK;
    }
    int idx = -1;
    if (!strcmp(key, "d_kv")) idx = 100;
    for (size_t i = 0; i < sizeof k_keys / sizeof k_keys[0]; i++)
        if (!strcmp(key, k_keys[i].key)) idx = k_keys[i].idx;
    if (idx < 0) return SK_OK;
    SK_CHECK(is_num && v >= 1 && v <= 1e9 && v == floor(v), SK_E_FORMAT,
             "umT5 %s: '%s' must be a positive integer (got '%s')", d->src, key,
             sval ? sval : "non-integer number");
    if (idx == 100) d->d_kv = (int64_t)v;
    else d->v[idx] = (int64_t)v;
    return SK_OK;
}

static sk_status declare_json(declared *d, const char *path)
{
    FILE *fp = fopen(path, "rb");
    SK_CHECK(fp, SK_E_IO, "umT5 config '%s': cannot open it", path);
    char *buf = NULL;
    long n = -1;
    if (fseek(fp, 0, SEEK_END) == 0) n = ftell(fp);
    if (n >= 0 && n < (1 << 24) && fseek(fp, 0, SEEK_SET) == 0 && (buf = malloc((size_t)n + 1))) {
        if (fread(buf, 1, (size_t)n, fp) != (size_t)n) { free(buf); buf = NULL; }
        else buf[n] = 0;
    }
    fclose(fp);
    SK_CHECK(buf, SK_E_IO, "umT5 config '%s': cannot read it (or larger than 16 MiB)", path);
    cJSON *root = NULL;
    char what[600];
    snprintf(what, sizeof what, "umT5 config '%.500s'", path);
    sk_status pst = sk_json_parse_strict(buf, (size_t)-1, what, &root);
    free(buf);
    SK_TRY(pst);
    SK_CHECK(cJSON_IsObject(root), SK_E_FORMAT,
             "umT5 config '%s': not a JSON object; expected config.json with d_model/num_heads/... "
             "or dim/num_heads/...", path);
    sk_status st = SK_OK;
    for (cJSON *it = root->child; it && st == SK_OK; it = it->next) {
        char nb[64];
        if (cJSON_IsNumber(it)) {
            snprintf(nb, sizeof nb, "%.17g", it->valuedouble);
            st = declare(d, it->string, nb, it->valuedouble, 1);
        } else if (cJSON_IsString(it)) {
            st = declare(d, it->string, it->valuestring, 0, 0);
        } else if (cJSON_IsBool(it)) {
            st = declare(d, it->string, cJSON_IsTrue(it) ? "true" : "false", 0, 0);
        }
    }
    cJSON_Delete(root);
    return st;
}

/* ---------------------------------------------------------------- binding */
typedef struct {
    const sk_st_tensor *t; /* bound file tensor or NULL */
    int alias;             /* which spelling matched */
} bound;

static sk_status want_shape(const sk_umt5_config *c, shape_kind k, int64_t *shape, int *ndim)
{
    switch (k) {
    case SH_EMB: shape[0] = c->vocab; shape[1] = c->dim; *ndim = 2; break;
    case SH_DIM: shape[0] = c->dim; *ndim = 1; break;
    case SH_QKV: shape[0] = c->dim_attn; shape[1] = c->dim; *ndim = 2; break;
    case SH_O: shape[0] = c->dim; shape[1] = c->dim_attn; *ndim = 2; break;
    case SH_POS: shape[0] = c->num_buckets; shape[1] = c->num_heads; *ndim = 2; break;
    case SH_FFN_IN: shape[0] = c->dim_ffn; shape[1] = c->dim; *ndim = 2; break;
    case SH_FFN_OUT: shape[0] = c->dim; shape[1] = c->dim_ffn; *ndim = 2; break;
    }
    return SK_OK;
}

/* A backend tensor for file tensor t: a view into the mapping on the CPU
 * backend when aligned (no copy of a multi-GB checkpoint), else a copy. */
static sk_status place(sk_backend *be, const sk_st_tensor *t, sk_tensor *out)
{
    if (!strcmp(be->name, "cpu") && ((uintptr_t)t->data % sk_dtype_size(t->dtype)) == 0) {
        *out = sk_tensor_desc(t->dtype, t->ndim, t->shape);
        out->data = (void *)t->data;
        out->be = be;
        out->owns = 0;
        return SK_OK;
    }
    SK_TRY(sk_tensor_alloc(be, t->dtype, t->ndim, t->shape, out));
    sk_status st = sk_tensor_upload_raw(out, t->data, t->nbytes);
    if (st != SK_OK) sk_tensor_free(out);
    return st;
}

static sk_status bind_all(sk_umt5 *m, const char *path, const char *config_json)
{
    const sk_st_tensor *const *all = m->all;
    const int n_all = m->n_all;
    const sk_umt5_config *c = &m->cfg;
    char nb[256], nb2[256], s1[96], s2[96];

    /* 1. every file tensor: which slot and layer, or ignored, or unexpected */
    int64_t max_layer = -1;
    int n_ignored = 0, n_unexpected = 0;
    char unexpected[512] = "";
    int *slot_of = calloc((size_t)n_all + 1, sizeof *slot_of);
    int64_t *layer_of = calloc((size_t)n_all + 1, sizeof *layer_of);
    int *alias_of = calloc((size_t)n_all + 1, sizeof *alias_of);
    bound *b = NULL;
    sk_status st = SK_OK;
    if (!slot_of || !layer_of || !alias_of) {
        st = SK_ERR(SK_E_OOM, "umT5 '%s': out of memory binding %d tensors", path, n_all);
        goto done;
    }
    for (int i = 0; i < n_all; i++) {
        const char *name = strip_prefixes(all[i]->name);
        slot_of[i] = -1;
        for (int s = 0; s < N_SLOTS && slot_of[i] < 0; s++)
            for (int a = 0; a < 3 && k_slots[s].names[a] && slot_of[i] < 0; a++) {
                int64_t l;
                if (match_pattern(k_slots[s].names[a], name, &l)) {
                    slot_of[i] = s;
                    layer_of[i] = l;
                    alias_of[i] = a;
                    if (l > max_layer) max_layer = l;
                }
            }
        if (slot_of[i] >= 0) continue;
        if (is_ignored(name)) { n_ignored++; continue; }
        if (n_unexpected++ < 4) {
            size_t u = strlen(unexpected);
            snprintf(unexpected + u, sizeof unexpected - u, "%s'%s'", u ? ", " : "",
                     all[i]->name);
        }
    }
    if (n_unexpected) {
        st = SK_ERR(SK_E_FORMAT,
                    "umT5 '%s': %d unexpected tensor(s): %s%s; expected only Wan T5Encoder names "
                    "(token_embedding.weight, blocks.N.attn.q.weight, ...) or HF "
                    "UMT5EncoderModel names (shared.weight, encoder.block.N.layer.0.SelfAttention."
                    "q.weight, ...)", path, n_unexpected, unexpected, n_unexpected > 4 ? ", ..." : "");
        goto done;
    }
    SK_LOGD("umT5 '%s': %d tensors ignored (tokenizer blob / decoder / lm_head)", path, n_ignored);
    if (max_layer < 0) {
        st = SK_ERR(SK_E_FORMAT, "umT5 '%s': no encoder layer found (no 'blocks.0.attn.q.weight' "
                    "or 'encoder.block.0.layer.0.SelfAttention.q.weight'); is this a umT5 encoder?",
                    path);
        goto done;
    }
    int64_t L = max_layer + 1;
    b = calloc((size_t)(N_SLOTS * (L + 1)), sizeof *b);
    if (!b) { st = SK_ERR(SK_E_OOM, "umT5 '%s': out of memory", path); goto done; }
    for (int i = 0; i < n_all; i++) {
        int s = slot_of[i];
        if (s < 0) continue;
        int64_t l = k_slots[s].per_layer ? layer_of[i] : 0;
        bound *e = &b[(size_t)s * (size_t)(L + 1) + (size_t)l];
        if (e->t) {
            /* tied embedding saved under two names is fine; anything else is ambiguous */
            int same = s == SLOT_EMB && e->t->ndim == all[i]->ndim &&
                       !memcmp(e->t->shape, all[i]->shape, sizeof e->t->shape);
            if (!same) {
                st = SK_ERR(SK_E_FORMAT, "umT5 '%s': '%s' and '%s' both give %s", path,
                            e->t->name, all[i]->name, slot_name(s, 0, l, nb, sizeof nb));
                goto done;
            }
            if (alias_of[i] >= e->alias) continue;
        }
        e->t = all[i];
        e->alias = alias_of[i];
    }
#define B(s, l) (&b[(size_t)(s) * (size_t)(L + 1) + (size_t)(l)])

    /* 2. config: shapes first, then config.json / metadata must agree */
    const sk_st_tensor *te = B(SLOT_EMB, 0)->t, *tq = B(SLOT_Q, 0)->t, *tf = B(SLOT_FC1, 0)->t,
                       *tp = B(SLOT_POS, 0)->t;
    const sk_st_tensor *need[4] = {te, tq, tf, tp};
    const int need_slot[4] = {SLOT_EMB, SLOT_Q, SLOT_FC1, SLOT_POS};
    for (int i = 0; i < 4; i++) {
        if (need[i] && need[i]->ndim == 2) continue;
        if (need[i]) {
            st = SK_ERR(SK_E_SHAPE, "umT5 '%s': tensor '%s' has shape %s; expected 2 dimensions",
                        path, need[i]->name, sk_shape_str_n(need[i]->ndim, need[i]->shape, s1, sizeof s1));
        } else {
            st = SK_ERR(SK_E_FORMAT, "umT5 '%s': missing tensor '%s' (or '%s'); the config is "
                        "read from its shape", path, slot_name(need_slot[i], 0, 0, nb, sizeof nb),
                        slot_name(need_slot[i], 1, 0, nb2, sizeof nb2));
        }
        goto done;
    }
    m->cfg.vocab = te->shape[0];
    m->cfg.dim = te->shape[1];
    m->cfg.dim_attn = tq->shape[0];
    m->cfg.dim_ffn = tf->shape[0];
    m->cfg.num_buckets = tp->shape[0];
    m->cfg.num_heads = tp->shape[1];
    m->cfg.num_layers = L;
    m->cfg.max_distance = 128; /* T5RelativeEmbedding default */
    m->cfg.text_len = 512;     /* Wan's text_len */
    m->cfg.eps = 1e-6f;
    const char *cfg_src = "shapes";

    declared d;
    for (int i = 0; i < 9; i++) d.v[i] = -1;
    d.eps = NAN;
    d.d_kv = -1;
    if (config_json) {
        d.src = config_json;
        cfg_src = "config.json + shapes";
        if ((st = declare_json(&d, config_json)) != SK_OK) goto done;
    } else if (m->files[0]->n_meta > 0) {
        const sk_st_file *f = m->files[0];
        d.src = "metadata";
        for (int i = 0; i < f->n_meta && st == SK_OK; i++)
            st = declare(&d, f->meta_keys[i], f->meta_values[i], 0, 0);
        if (st != SK_OK) goto done;
        for (int i = 0; i < 9; i++)
            if (d.v[i] >= 0) cfg_src = "metadata + shapes";
    }
    if (d.d_kv > 0 && d.v[D_ATTN] < 0 && d.v[D_HEADS] > 0) d.v[D_ATTN] = d.d_kv * d.v[D_HEADS];
    {
        int64_t *have[9] = {&m->cfg.vocab, &m->cfg.dim, &m->cfg.dim_attn, &m->cfg.dim_ffn,
                            &m->cfg.num_heads, &m->cfg.num_layers, &m->cfg.num_buckets,
                            &m->cfg.max_distance, &m->cfg.text_len};
        for (int i = 0; i < 9; i++) {
            if (d.v[i] < 0) continue;
            if (i == D_MAXDIST || i == D_TEXTLEN) { *have[i] = d.v[i]; continue; }
            if (d.v[i] != *have[i]) {
                st = SK_ERR(SK_E_SHAPE, "umT5 '%s': %s says %s = %lld but the weights have %lld "
                            "(from tensor shapes); the config does not belong to these weights",
                            path, d.src, k_dnames[i], (long long)d.v[i], (long long)*have[i]);
                goto done;
            }
        }
        if (!isnan(d.eps)) m->cfg.eps = (float)d.eps;
    }
    if (c->num_heads < 1 || c->dim_attn % c->num_heads != 0 || c->num_buckets < 4 ||
        c->num_buckets % 2 != 0 || c->max_distance < c->num_buckets / 4 + 1) {
        st = SK_ERR(SK_E_SHAPE, "umT5 '%s': inconsistent config: dim_attn %lld over %lld heads "
                    "(from '%s' %s), %lld buckets, max distance %lld", path,
                    (long long)c->dim_attn, (long long)c->num_heads, tp->name,
                    sk_shape_str_n(tp->ndim, tp->shape, s1, sizeof s1), (long long)c->num_buckets,
                    (long long)c->max_distance);
        goto done;
    }

    /* 3. every slot of every layer: present, right shape, float dtype */
    m->layers = calloc((size_t)L, sizeof *m->layers);
    if (!m->layers) { st = SK_ERR(SK_E_OOM, "umT5 '%s': out of memory", path); goto done; }
    for (int s = 0; s < N_SLOTS; s++) {
        int64_t nl = k_slots[s].per_layer ? L : 1;
        for (int64_t l = 0; l < nl; l++) {
            const sk_st_tensor *t = B(s, l)->t;
            if (!t) {
                st = SK_ERR(SK_E_FORMAT, "umT5 '%s': missing tensor '%s' (HF name '%s'); the file "
                            "has layers 0..%lld", path, slot_name(s, 0, l, nb, sizeof nb),
                            slot_name(s, 1, l, nb2, sizeof nb2), (long long)(L - 1));
                goto done;
            }
            int64_t ws[2] = {0, 0};
            int wn = 0;
            want_shape(c, k_slots[s].shape, ws, &wn);
            int ok = t->ndim == wn;
            for (int i = 0; ok && i < wn; i++) ok = t->shape[i] == ws[i];
            if (!ok) {
                st = SK_ERR(SK_E_SHAPE, "umT5 '%s': tensor '%s' has shape %s, expected %s", path,
                            t->name, sk_shape_str_n(t->ndim, t->shape, s1, sizeof s1),
                            sk_shape_str_n(wn, ws, s2, sizeof s2));
                goto done;
            }
            if (t->dtype != SK_DTYPE_F32 && t->dtype != SK_DTYPE_F16 && t->dtype != SK_DTYPE_BF16) {
                st = SK_ERR(SK_E_DTYPE, "umT5 '%s': tensor '%s' is %s; expected F32, F16 or BF16",
                            path, t->name, sk_dtype_st_name(t->dtype));
                goto done;
            }
            if (s == SLOT_POS) {
                /* transposed to [NH, NB] so each head's column is a contiguous
                 * [NB, 1] table for the embedding op (see umt5.c) */
                size_t np = (size_t)(ws[0] * ws[1]);
                float *h = malloc(2 * np * sizeof *h);
                if (!h) { st = SK_ERR(SK_E_OOM, "umT5: out of memory"); goto done; }
                st = sk_convert(h, SK_DTYPE_F32, t->data, t->dtype, np);
                for (int64_t bb = 0; st == SK_OK && bb < ws[0]; bb++)
                    for (int64_t hh = 0; hh < ws[1]; hh++) h[np + hh * ws[0] + bb] = h[bb * ws[1] + hh];
                if (st == SK_OK)
                    st = sk_tensor_alloc(m->be, SK_DTYPE_F32, 2, (int64_t[]){ws[1], ws[0]},
                                         &m->layers[l].pos_t);
                if (st == SK_OK) st = sk_tensor_upload_f32(&m->layers[l].pos_t, h + np, np);
                free(h);
                if (st != SK_OK) goto done;
                continue;
            }
            char *base = k_slots[s].per_layer ? (char *)&m->layers[l] : (char *)m;
            if ((st = place(m->be, t, (sk_tensor *)(base + k_slots[s].field))) != SK_OK) {
                sk_error_prefix("umT5 '%s': tensor '%s': ", path, t->name);
                goto done;
            }
        }
    }
    snprintf(m->describe, sizeof m->describe,
             "umT5 '%s': %lld layers, dim %lld, attention %lld (%lld heads x %lld), ffn %lld, "
             "vocab %lld, %lld buckets, max distance %lld, text_len %lld, %s names, %s weights; "
             "config from %s", path, (long long)L, (long long)c->dim, (long long)c->dim_attn,
             (long long)c->num_heads, (long long)(c->dim_attn / c->num_heads),
             (long long)c->dim_ffn, (long long)c->vocab, (long long)c->num_buckets,
             (long long)c->max_distance, (long long)c->text_len, B(SLOT_Q, 0)->alias ? "HF" : "Wan",
             sk_dtype_name(tq->dtype), cfg_src);
#undef B
done:
    free(slot_of);
    free(layer_of);
    free(alias_of);
    free(b);
    return st;
}

/* ---------------------------------------------------------------- files */
static sk_status add_file(sk_umt5 *m, const char *path)
{
    sk_st_file **fs = realloc(m->files, (size_t)(m->n_files + 1) * sizeof *fs);
    SK_CHECK(fs, SK_E_OOM, "umT5: out of memory opening '%s'", path);
    m->files = fs;
    SK_TRY(sk_st_open(path, &m->files[m->n_files]));
    m->n_files++;
    return SK_OK;
}

/* Shards named by a Hugging Face model.safetensors.index.json (weight_map values,
 * in order of first appearance), relative to the index's folder. */
static sk_status open_index(sk_umt5 *m, const char *index)
{
    FILE *fp = fopen(index, "rb");
    SK_CHECK(fp, SK_E_IO, "umT5 index '%s': cannot open it", index);
    char *buf = NULL;
    long n = -1;
    if (fseek(fp, 0, SEEK_END) == 0) n = ftell(fp);
    if (n >= 0 && n < (1 << 26) && fseek(fp, 0, SEEK_SET) == 0 && (buf = malloc((size_t)n + 1))) {
        if (fread(buf, 1, (size_t)n, fp) != (size_t)n) { free(buf); buf = NULL; }
        else buf[n] = 0;
    }
    fclose(fp);
    SK_CHECK(buf, SK_E_IO, "umT5 index '%s': cannot read it", index);
    cJSON *root = cJSON_Parse(buf);
    free(buf);
    const cJSON *map = root ? cJSON_GetObjectItem(root, "weight_map") : NULL;
    if (!cJSON_IsObject(map)) {
        cJSON_Delete(root);
        return SK_ERR(SK_E_FORMAT, "umT5 index '%s': no \"weight_map\" object; expected a "
                      "model.safetensors.index.json", index);
    }
    const char *slash = strrchr(index, '/');
    int dirlen = slash ? (int)(slash - index) + 1 : 0;
    sk_status st = SK_OK;
    for (const cJSON *it = map->child; it && st == SK_OK; it = it->next) {
        if (!cJSON_IsString(it) || strchr(it->valuestring, '/')) {
            st = SK_ERR(SK_E_FORMAT, "umT5 index '%s': entry '%s' is not a shard file name", index,
                        it->string ? it->string : "?");
            break;
        }
        int seen = 0;
        for (const cJSON *p = map->child; p != it && !seen; p = p->next)
            seen = !strcmp(p->valuestring, it->valuestring);
        if (seen) continue;
        char shard[4096];
        snprintf(shard, sizeof shard, "%.*s%s", dirlen, index, it->valuestring);
        st = add_file(m, shard);
    }
    cJSON_Delete(root);
    if (st == SK_OK && m->n_files == 0)
        st = SK_ERR(SK_E_FORMAT, "umT5 index '%s': the weight_map names no shard", index);
    return st;
}

static int is_dir(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static int exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

static int ends_with(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

/* path: a .safetensors file, an index .json, or a folder holding either (the
 * Diffusers text_encoder/ layout). A folder's config.json is used when no
 * config was given; *cfg_auto then holds its path (malloc'd). */
static sk_status open_weights(sk_umt5 *m, const char *path, char **cfg_auto)
{
    char buf[4096];
    *cfg_auto = NULL;
    if (is_dir(path)) {
        snprintf(buf, sizeof buf, "%s/config.json", path);
        if (exists(buf)) *cfg_auto = strdup(buf);
        snprintf(buf, sizeof buf, "%s/model.safetensors.index.json", path);
        if (exists(buf)) SK_TRY(open_index(m, buf));
        else {
            snprintf(buf, sizeof buf, "%s/model.safetensors", path);
            SK_CHECK(exists(buf), SK_E_IO, "umT5 '%s': folder has neither "
                     "model.safetensors.index.json nor model.safetensors", path);
            SK_TRY(add_file(m, buf));
        }
    } else if (ends_with(path, ".json")) {
        SK_TRY(open_index(m, path));
        const char *slash = strrchr(path, '/');
        snprintf(buf, sizeof buf, "%.*sconfig.json", slash ? (int)(slash - path) + 1 : 0, path);
        if (exists(buf)) *cfg_auto = strdup(buf);
    } else {
        SK_TRY(add_file(m, path));
    }
    int total = 0;
    for (int i = 0; i < m->n_files; i++) total += m->files[i]->n_tensors;
    m->all = calloc((size_t)total + 1, sizeof *m->all);
    SK_CHECK(m->all, SK_E_OOM, "umT5 '%s': out of memory", path);
    for (int i = 0; i < m->n_files; i++)
        for (int j = 0; j < m->files[i]->n_tensors; j++) {
            const sk_st_tensor *t = &m->files[i]->tensors[j];
            for (int k = 0; k < i; k++)
                SK_CHECK(!sk_st_find(m->files[k], t->name), SK_E_FORMAT,
                         "umT5 '%s': tensor '%s' is in both '%s' and '%s'", path, t->name,
                         m->files[k]->path, m->files[i]->path);
            m->all[m->n_all++] = t;
        }
    return SK_OK;
}

sk_status sk_umt5_load(sk_backend *be, const char *path, const char *config_json, sk_umt5 **out)
{
    SK_CHECK(be && path && out, SK_E_INVALID_ARG, "umT5: NULL argument to load");
    *out = NULL;
    sk_umt5 *m = calloc(1, sizeof *m);
    SK_CHECK(m, SK_E_OOM, "umT5 '%s': out of memory", path);
    m->be = be;
    char *cfg_auto = NULL;
    sk_status st = open_weights(m, path, &cfg_auto);
    if (st == SK_OK) st = bind_all(m, path, config_json ? config_json : cfg_auto);
    free(cfg_auto);
    if (st != SK_OK) {
        sk_umt5_free(&m);
        return st;
    }
    SK_LOGD("%s", m->describe); /* internals: -v shows them */
    *out = m;
    return SK_OK;
}

void sk_umt5_free(sk_umt5 **pm)
{
    if (!pm || !*pm) return;
    sk_umt5 *m = *pm;
    if (m->layers) {
        for (int64_t l = 0; l < m->cfg.num_layers; l++) {
            sk_umt5_layer *y = &m->layers[l];
            sk_tensor *ts[] = {&y->norm1, &y->q, &y->k, &y->v, &y->o,
                               &y->norm2, &y->gate, &y->fc1, &y->fc2};
            for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) sk_tensor_free(ts[i]);
            sk_tensor_free(&y->pos_t);
        }
        free(m->layers);
    }
    sk_tensor_free(&m->embed);
    sk_tensor_free(&m->norm);
    sk_arena_free(&m->arena);
    free(m->bucket_host);
    for (int i = 0; i < m->n_files; i++) sk_st_close(&m->files[i]);
    free(m->files);
    free(m->all);
    free(m);
    *pm = NULL;
}

const sk_umt5_config *sk_umt5_config_of(const sk_umt5 *m) { return m ? &m->cfg : NULL; }
const char *sk_umt5_describe(const sk_umt5 *m) { return m ? m->describe : ""; }
