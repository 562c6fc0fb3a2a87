/* config.c - DiT config from JSON, metadata or tensor shapes (see config.h). */
#include "dit/config.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dit/names.h"
#include "runtime/core/log.h"
#include "runtime/io/json_strict.h"

sk_dit_config sk_dit_config_wan_1_3b(void)
{
    sk_dit_config c;
    memset(&c, 0, sizeof c);
    c.dim = 1536; c.ffn_dim = 8960; c.num_heads = 12; c.head_dim = 128; c.num_layers = 30;
    c.in_dim = 16; c.out_dim = 16; c.text_dim = 4096; c.freq_dim = 256; c.text_len = 512;
    c.eps = 1e-6f;
    c.patch[0] = 1; c.patch[1] = 2; c.patch[2] = 2;
    c.rope_theta = 10000.0;
    snprintf(c.model_type, sizeof c.model_type, "t2v");
    return c;
}

sk_dit_config sk_dit_config_wan_ti2v_5b(void)
{
    sk_dit_config c = sk_dit_config_wan_1_3b();
    c.dim = 3072; c.ffn_dim = 14336; c.num_heads = 24; c.head_dim = 128; c.num_layers = 30;
    c.in_dim = 48; c.out_dim = 48;
    snprintf(c.model_type, sizeof c.model_type, "ti2v");
    return c;
}

int sk_dit_vae_stride(const sk_dit_config *c)
{
    return c->in_dim == 48 || strcmp(c->model_type, "ti2v") == 0 ? 16 : 8;
}

sk_status sk_dit_config_validate(const sk_dit_config *c, const char *label)
{
    const char *L = label ? label : "DiT config";
    struct { const char *n; int64_t v; } pos[] = {
        {"dim", c->dim}, {"ffn_dim", c->ffn_dim}, {"num_heads", c->num_heads},
        {"head_dim", c->head_dim}, {"num_layers", c->num_layers}, {"in_dim", c->in_dim},
        {"out_dim", c->out_dim}, {"text_dim", c->text_dim}, {"freq_dim", c->freq_dim},
        {"text_len", c->text_len},
    };
    for (size_t i = 0; i < sizeof pos / sizeof pos[0]; i++)
        SK_CHECK(pos[i].v > 0 && pos[i].v <= (1 << 20), SK_E_INVALID_ARG,
                 "%s: %s = %lld; expected a positive size (at most 2^20)", L, pos[i].n,
                 (long long)pos[i].v);
    SK_CHECK(c->num_heads * c->head_dim == c->dim, SK_E_INVALID_ARG,
             "%s: num_heads %lld x head_dim %lld != dim %lld; dim must split evenly into heads "
             "(check num_heads / head_dim)",
             L, (long long)c->num_heads, (long long)c->head_dim, (long long)c->dim);
    /* 3D RoPE: HD/2 complex pairs split t/h/w = c-2(c/3), c/3, c/3; each axis needs one pair */
    SK_CHECK(c->head_dim % 2 == 0 && c->head_dim >= 6, SK_E_INVALID_ARG,
             "%s: head_dim %lld must be even and >= 6 for the 3D RoPE split", L,
             (long long)c->head_dim);
    SK_CHECK(c->freq_dim % 2 == 0, SK_E_INVALID_ARG,
             "%s: freq_dim %lld must be even (cos half + sin half)", L, (long long)c->freq_dim);
    SK_CHECK(c->patch[0] == 1 && c->patch[1] == 2 && c->patch[2] == 2, SK_E_UNSUPPORTED,
             "%s: patch_size (%d, %d, %d); only (1, 2, 2) is supported", L, c->patch[0],
             c->patch[1], c->patch[2]);
    SK_CHECK(isfinite(c->eps) && c->eps > 0 && c->eps < 1, SK_E_INVALID_ARG,
             "%s: eps %g; expected a small positive number such as 1e-6", L, (double)c->eps);
    SK_CHECK(isfinite(c->rope_theta) && c->rope_theta > 1, SK_E_INVALID_ARG,
             "%s: rope_theta %g; expected 10000", L, c->rope_theta);
    SK_CHECK(!c->model_type[0] || !strcmp(c->model_type, "t2v") || !strcmp(c->model_type, "ti2v"),
             SK_E_UNSUPPORTED,
             "%s: model_type \"%s\"; supported: \"t2v\" (Wan2.1, 16 channels) and \"ti2v\" "
             "(Wan2.2-TI2V-5B, 48 channels)", L, c->model_type);
    SK_CHECK(strcmp(c->model_type, "ti2v") || (c->in_dim == 48 && c->out_dim == 48),
             SK_E_INVALID_ARG, "%s: model_type \"ti2v\" has 48 latent channels in and out, "
             "but in_dim/out_dim are %lld/%lld", L, (long long)c->in_dim, (long long)c->out_dim);
    return SK_OK;
}

/* Reads an integer field under any of the given names. Returns 1 if found. */
static sk_status get_int(const cJSON *o, const char *label, const char *const *names, int64_t *v,
                         int *found)
{
    *found = 0;
    for (; *names; names++) {
        const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, *names);
        if (!it || cJSON_IsNull(it)) continue;
        SK_CHECK(cJSON_IsNumber(it) && it->valuedouble == floor(it->valuedouble) &&
                     fabs(it->valuedouble) < 1e12,
                 SK_E_FORMAT, "%s: field \"%s\" must be an integer", label, *names);
        *v = (int64_t)it->valuedouble;
        *found = 1;
        return SK_OK;
    }
    return SK_OK;
}

sk_status sk_dit_config_from_json(const char *json, const char *label, sk_dit_config *out)
{
    const char *L = label ? label : "DiT config";
    cJSON *o = NULL;
    SK_TRY(sk_json_parse_strict(json, (size_t)-1, L, &o));
    sk_status st = SK_OK;
    if (!cJSON_IsObject(o)) {
        st = SK_ERR(SK_E_FORMAT, "%s: expected a JSON object with dim, num_heads, ...", L);
        goto done;
    }
    sk_dit_config c = sk_dit_config_wan_1_3b();
    static const char *const n_dim[] = {"dim", NULL};
    static const char *const n_ffn[] = {"ffn_dim", NULL};
    static const char *const n_heads[] = {"num_heads", "num_attention_heads", NULL};
    static const char *const n_hd[] = {"head_dim", "attention_head_dim", NULL};
    static const char *const n_layers[] = {"num_layers", NULL};
    static const char *const n_in[] = {"in_dim", "in_channels", NULL};
    static const char *const n_out[] = {"out_dim", "out_channels", NULL};
    static const char *const n_text[] = {"text_dim", NULL};
    static const char *const n_freq[] = {"freq_dim", NULL};
    static const char *const n_tl[] = {"text_len", NULL};
    int f_dim, f_heads, f_hd, f_layers, f;
    int64_t heads = 0, hd = 0;
    SK_TRY_GOTO(st, get_int(o, L, n_dim, &c.dim, &f_dim), done);
    SK_TRY_GOTO(st, get_int(o, L, n_heads, &heads, &f_heads), done);
    SK_TRY_GOTO(st, get_int(o, L, n_hd, &hd, &f_hd), done);
    SK_TRY_GOTO(st, get_int(o, L, n_layers, &c.num_layers, &f_layers), done);
    SK_TRY_GOTO(st, get_int(o, L, n_ffn, &c.ffn_dim, &f), done);
    SK_TRY_GOTO(st, get_int(o, L, n_in, &c.in_dim, &f), done);
    SK_TRY_GOTO(st, get_int(o, L, n_out, &c.out_dim, &f), done);
    SK_TRY_GOTO(st, get_int(o, L, n_text, &c.text_dim, &f), done);
    SK_TRY_GOTO(st, get_int(o, L, n_freq, &c.freq_dim, &f), done);
    SK_TRY_GOTO(st, get_int(o, L, n_tl, &c.text_len, &f), done);
    /* diffusers names the width by heads x head_dim instead of dim */
    if (!f_dim && f_heads && f_hd) { c.dim = heads * hd; f_dim = 1; }
    if (!f_dim || (!f_heads && !f_hd) || !f_layers) {
        st = SK_ERR(SK_E_FORMAT, "%s: missing %s; a DiT config needs dim, num_heads (or head_dim) "
                    "and num_layers", L, !f_dim ? "\"dim\"" : !f_layers ? "\"num_layers\""
                                                                        : "\"num_heads\"");
        goto done;
    }
    if (f_heads && f_hd) { c.num_heads = heads; c.head_dim = hd; }
    else if (f_heads) { c.num_heads = heads; c.head_dim = heads > 0 ? c.dim / heads : 0; }
    else { c.head_dim = hd; c.num_heads = hd > 0 ? c.dim / hd : 0; }
    const cJSON *eps = cJSON_GetObjectItemCaseSensitive(o, "eps");
    if (eps) {
        if (!cJSON_IsNumber(eps)) { st = SK_ERR(SK_E_FORMAT, "%s: \"eps\" must be a number", L); goto done; }
        c.eps = (float)eps->valuedouble;
    }
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(o, "model_type");
    if (mt && !cJSON_IsNull(mt)) {
        if (!cJSON_IsString(mt) || strlen(mt->valuestring) >= sizeof c.model_type) {
            st = SK_ERR(SK_E_FORMAT, "%s: \"model_type\" must be a short string (\"t2v\" or "
                        "\"ti2v\")", L);
            goto done;
        }
        snprintf(c.model_type, sizeof c.model_type, "%s", mt->valuestring);
    } else if (c.in_dim == 48) {
        snprintf(c.model_type, sizeof c.model_type, "ti2v"); /* Wan2.2-TI2V-5B's channels */
    }
    const cJSON *th = cJSON_GetObjectItemCaseSensitive(o, "rope_theta");
    if (th && cJSON_IsNumber(th)) c.rope_theta = th->valuedouble;
    const cJSON *ps = cJSON_GetObjectItemCaseSensitive(o, "patch_size");
    if (ps && !cJSON_IsNull(ps)) {
        if (!cJSON_IsArray(ps) || cJSON_GetArraySize(ps) != 3) {
            st = SK_ERR(SK_E_FORMAT, "%s: \"patch_size\" must be an array of 3 integers", L);
            goto done;
        }
        for (int i = 0; i < 3; i++) {
            const cJSON *e = cJSON_GetArrayItem(ps, i);
            if (!cJSON_IsNumber(e)) {
                st = SK_ERR(SK_E_FORMAT, "%s: \"patch_size\"[%d] is not a number", L, i);
                goto done;
            }
            c.patch[i] = (int)e->valuedouble;
        }
    }
    SK_TRY_GOTO(st, sk_dit_config_validate(&c, L), done);
    *out = c;
done:
    cJSON_Delete(o);
    return st;
}

sk_status sk_dit_config_from_file(const char *path, sk_dit_config *out)
{
    struct stat sb;
    /* a directory opens for reading on Linux and seeks to LONG_MAX (issue 15 #8) */
    SK_CHECK(stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode), SK_E_INVALID_ARG,
             "DiT config '%s' is a directory; --dit-config takes the config.json file", path);
    FILE *fp = fopen(path, "rb");
    SK_CHECK(fp, SK_E_IO, "DiT config '%s': cannot open (check --dit-config)", path);
    char *buf = NULL;
    sk_status st = SK_OK;
    if (fseek(fp, 0, SEEK_END) != 0) { st = SK_ERR(SK_E_IO, "DiT config '%s': cannot seek", path); goto done; }
    long n = ftell(fp);
    if (n < 0 || n > (1 << 24)) {
        st = SK_ERR(SK_E_FORMAT, "DiT config '%s': size %ld; expected a small JSON file", path, n);
        goto done;
    }
    rewind(fp);
    buf = malloc((size_t)n + 1);
    if (!buf) { st = SK_ERR(SK_E_OOM, "DiT config '%s': out of memory", path); goto done; }
    if (fread(buf, 1, (size_t)n, fp) != (size_t)n) {
        st = SK_ERR(SK_E_IO, "DiT config '%s': short read", path);
        goto done;
    }
    buf[n] = 0;
    char label[512];
    snprintf(label, sizeof label, "DiT config '%s'", path);
    st = sk_dit_config_from_json(buf, label, out);
done:
    free(buf);
    fclose(fp);
    return st;
}

/* Finds a tensor by its canonical (prefix-stripped) name. */
static const sk_st_tensor *find_canon(const sk_st_file *f, const char *canon)
{
    char buf[512];
    for (int i = 0; i < f->n_tensors; i++)
        if (sk_dit_strip_name(f->tensors[i].name, buf, sizeof buf) && strcmp(buf, canon) == 0)
            return &f->tensors[i];
    return NULL;
}

sk_status sk_dit_config_infer(const sk_st_file *f, sk_dit_config *out)
{
    sk_dit_config c = sk_dit_config_wan_1_3b();
    const sk_st_tensor *pe = find_canon(f, "patch_embedding.weight");
    const sk_st_tensor *te = find_canon(f, "text_embedding.0.weight");
    const sk_st_tensor *tm = find_canon(f, "time_embedding.0.weight");
    const sk_st_tensor *ff = find_canon(f, "blocks.0.ffn.0.weight");
    const sk_st_tensor *hh = find_canon(f, "head.head.weight");
    const char *miss = !pe ? "patch_embedding.weight" : !te ? "text_embedding.0.weight"
                     : !tm ? "time_embedding.0.weight" : !ff ? "blocks.0.ffn.0.weight"
                     : !hh ? "head.head.weight" : NULL;
    SK_CHECK(!miss, SK_E_FORMAT,
             "'%s': cannot infer the DiT config: tensor '%s' is missing; is this a Wan DiT "
             "checkpoint? (or pass --dit-config)", f->path ? f->path : "?", miss);
    SK_CHECK(pe->ndim == 5 && te->ndim == 2 && tm->ndim == 2 && ff->ndim == 2 && hh->ndim == 2,
             SK_E_SHAPE, "'%s': cannot infer the DiT config: unexpected ranks of "
             "patch_embedding/text_embedding/time_embedding/ffn/head weights",
             f->path ? f->path : "?");
    c.dim = pe->shape[0];
    c.in_dim = pe->shape[1];
    c.patch[0] = (int)pe->shape[2]; c.patch[1] = (int)pe->shape[3]; c.patch[2] = (int)pe->shape[4];
    c.text_dim = te->shape[1];
    c.freq_dim = tm->shape[1];
    c.ffn_dim = ff->shape[0];
    int64_t pv = (int64_t)c.patch[0] * c.patch[1] * c.patch[2];
    c.out_dim = pv > 0 ? hh->shape[0] / pv : 0;
    c.head_dim = 128;
    c.num_heads = c.dim / 128;
    /* layers: 1 + the largest block index present */
    int64_t layers = 0;
    char buf[512];
    for (int i = 0; i < f->n_tensors; i++) {
        int g, b, l;
        if (sk_dit_strip_name(f->tensors[i].name, buf, sizeof buf) &&
            sk_dit_parse_name(buf, &g, &b, &l) && b >= 0 && l + 1 > layers)
            layers = l + 1;
    }
    c.num_layers = layers;
    /* 48 latent channels: the Wan2.2 VAE, i.e. Wan2.2-TI2V-5B (LongLive 2.0) */
    snprintf(c.model_type, sizeof c.model_type, "%s", c.in_dim == 48 ? "ti2v" : "t2v");
    char label[600];
    snprintf(label, sizeof label, "DiT config inferred from the tensor shapes of '%s' "
             "(head_dim assumed 128; give --dit-config for other models)", f->path ? f->path : "?");
    SK_TRY(sk_dit_config_validate(&c, label));
    *out = c;
    return SK_OK;
}

void sk_dit_config_log(const sk_dit_config *c, const char *source)
{
    SK_LOGD("DiT config (from %s): %s, dim %lld, ffn_dim %lld, heads %lld x %lld, layers %lld, "
            "in/out %lld/%lld, text_dim %lld, freq_dim %lld, text_len %lld, eps %g, "
            "patch (%d,%d,%d), rope_theta %g",
            source, c->model_type, (long long)c->dim, (long long)c->ffn_dim, (long long)c->num_heads,
            (long long)c->head_dim, (long long)c->num_layers, (long long)c->in_dim,
            (long long)c->out_dim, (long long)c->text_dim, (long long)c->freq_dim,
            (long long)c->text_len, (double)c->eps, c->patch[0], c->patch[1], c->patch[2],
            c->rope_theta);
}
