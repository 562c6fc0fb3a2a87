/* model_dir.c - model directories: model.json, and the end-to-end check of
 * `sinkstream inspect DIR` (see model_dir.h). */
#include "runtime/engine/model_dir.h"
#include "runtime/engine/device.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dit/model.h"
#include "runtime/core/backend.h"
#include "runtime/kv/kv_cache.h"
#include "runtime/core/log.h"
#include "runtime/io/json_strict.h"
#include "runtime/io/safetensors.h"
#include "text/tokenizer.h"
#include "text/umt5.h"
#include "vae/taehv.h"
#include "vae/wan_vae.h"

static const char *const k_families[] = {"self-forcing", "longlive", "longlive2",
                                         "reward-forcing", "rolling-forcing", "demo"};

/* The "generate" keys model.json may set (sk_model_dir_option_allowed). */
static const char *const k_allowed[] = {
    "frames", "seconds", "height", "width", "latent-height", "latent-width", "fps", "chunk",
    "steps", "shift", "no-warp", "kv-policy", "kv-window", "kv-sink", "rope", "ema-alpha",
    "kv-compress", "kv-recent", "recache", "recache-sink", "dit-dtype", "act-dtype", "dtype",
    /* LongLive 2.0's sampler and shots describe the model too */
    "sampler", "num-steps", "shot-rope-offset", "shot-clean-recache",
};

int sk_model_dir_option_allowed(const char *name)
{
    for (size_t i = 0; name && i < sizeof k_allowed / sizeof *k_allowed; i++)
        if (!strcmp(name, k_allowed[i])) return 1;
    return 0;
}

const char *sk_model_dir_allowed_list(void)
{
    static char list[512];
    if (!list[0]) {
        size_t at = 0;
        for (size_t i = 0; i < sizeof k_allowed / sizeof *k_allowed && at < sizeof list; i++)
            at += (size_t)snprintf(list + at, sizeof list - at, "%s%s", i ? ", " : "",
                                   k_allowed[i]);
    }
    return list;
}

int sk_model_dir_is(const char *path)
{
    struct stat sb;
    if (!path || stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode)) return 0;
    char p[4096];
    snprintf(p, sizeof p, "%s/model.json", path);
    return stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}

static char *join(const char *dir, const char *rel)
{
    size_t n = strlen(dir) + strlen(rel) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, rel);
    return p;
}

const char *sk_model_dir_keep(sk_model_dir *m, const char *text)
{
    char **k = realloc(m->kept, (size_t)(m->n_kept + 1) * sizeof *k);
    if (!k) return NULL;
    m->kept = k;
    char *d = strdup(text);
    if (d) m->kept[m->n_kept++] = d;
    return d;
}

void sk_model_dir_free(sk_model_dir **mp)
{
    if (!mp || !*mp) return;
    sk_model_dir *m = *mp;
    free(m->dir);
    free(m->json_path);
    free(m->dit);
    free(m->dit_config);
    free(m->text_encoder);
    free(m->tokenizer);
    free(m->vae);
    free(m->vae_encoder);
    for (int i = 0; i < m->n_kept; i++) free(m->kept[i]);
    free(m->kept);
    cJSON_Delete(m->root);
    free(m);
    *mp = NULL;
}

int sk_model_dir_value_text(const cJSON *v, char *buf, size_t cap)
{
    if (cJSON_IsBool(v)) {
        snprintf(buf, cap, "%s", cJSON_IsTrue(v) ? "1" : "0");
    } else if (cJSON_IsNumber(v)) {
        double d = v->valuedouble;
        if (d == floor(d) && fabs(d) < 9e15) snprintf(buf, cap, "%.0f", d);
        else snprintf(buf, cap, "%.17g", d);
    } else if (cJSON_IsString(v)) {
        snprintf(buf, cap, "%s", v->valuestring);
    } else if (cJSON_IsArray(v)) {
        size_t at = 0;
        buf[0] = 0;
        int i = 0;
        for (const cJSON *e = v->child; e; e = e->next, i++) {
            if (!cJSON_IsNumber(e) || e->valuedouble != floor(e->valuedouble)) return -1;
            at += (size_t)snprintf(buf + at, at < cap ? cap - at : 0, "%s%.0f", i ? "," : "",
                                   e->valuedouble);
            if (at >= cap) return -1;
        }
        if (!i) return -1;
    } else {
        return -1;
    }
    return 0;
}

/* Reads a whole small file (model.json). */
static sk_status read_text(const char *path, char **out)
{
    FILE *fp = fopen(path, "rb");
    SK_CHECK(fp, SK_E_IO, "model directory: cannot open '%s' (%s)", path, strerror(errno));
    char *buf = NULL;
    long n = -1;
    if (fseek(fp, 0, SEEK_END) == 0) n = ftell(fp);
    if (n >= 0 && n < (1 << 22) && fseek(fp, 0, SEEK_SET) == 0 && (buf = malloc((size_t)n + 1))) {
        if (fread(buf, 1, (size_t)n, fp) != (size_t)n) {
            free(buf);
            buf = NULL;
        } else {
            buf[n] = 0;
        }
    }
    fclose(fp);
    SK_CHECK(buf, SK_E_IO, "model directory: cannot read '%s' (or larger than 4 MiB)", path);
    *out = buf;
    return SK_OK;
}

/* files.<key>: a relative path inside the directory, present on disk. */
static sk_status file_entry(sk_model_dir *m, const cJSON *files, const char *key, int required,
                            char **out)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(files, key);
    if (!f) {
        SK_CHECK(!required, SK_E_FORMAT, "model directory '%s': model.json has no files.%s (the "
                 "DiT weights, e.g. \"dit.safetensors\")", m->dir, key);
        return SK_OK;
    }
    SK_CHECK(cJSON_IsString(f) && f->valuestring[0], SK_E_FORMAT,
             "model directory '%s': model.json files.%s must be a file name", m->dir, key);
    SK_CHECK(f->valuestring[0] != '/' && !strstr(f->valuestring, ".."), SK_E_FORMAT,
             "model directory '%s': model.json files.%s = '%s' must be a path inside the "
             "directory", m->dir, key, f->valuestring);
    char *p = join(m->dir, f->valuestring);
    SK_CHECK(p, SK_E_OOM, "out of memory");
    struct stat sb;
    if (stat(p, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        sk_status st = SK_ERR(SK_E_IO, "model directory '%s': model.json lists files.%s = '%s', "
                              "but '%s' is missing (an interrupted conversion? run "
                              "tools/convert_checkpoint.py again)", m->dir, key, f->valuestring, p);
        free(p);
        return st;
    }
    /* a symlink out of the directory (issue 15 #8): a downloaded model must not make
     * sinkstream read other files, unless the user says so */
    if (!m->allow_outside) {
        char *rd = realpath(m->dir, NULL), *rp = realpath(p, NULL);
        size_t n = rd ? strlen(rd) : 0;
        int inside = rd && rp && !strncmp(rp, rd, n) && rp[n] == '/';
        sk_status st = inside ? SK_OK
                              : SK_ERR(SK_E_INVALID_ARG, "model directory '%s': files.%s = '%s' "
                                       "resolves to '%s', outside the directory (a symlink?); "
                                       "refused. Give --allow-outside if you trust it", m->dir,
                                       key, f->valuestring, rp ? rp : p);
        free(rd);
        free(rp);
        if (st != SK_OK) {
            free(p);
            return st;
        }
    }
    *out = p;
    return SK_OK;
}

sk_status sk_model_dir_open(const char *dir, sk_model_dir **out)
{
    return sk_model_dir_open_ex(dir, 0, out);
}

sk_status sk_model_dir_open_ex(const char *dir, int allow_outside, sk_model_dir **out)
{
    *out = NULL;
    struct stat sb;
    SK_CHECK(dir && stat(dir, &sb) == 0, SK_E_IO, "model directory '%s': %s", dir ? dir : "(null)",
             strerror(errno));
    SK_CHECK(S_ISDIR(sb.st_mode), SK_E_INVALID_ARG,
             "--model '%s' is a file; it takes a model directory (made by "
             "tools/convert_checkpoint.py), or use --dit FILE", dir);
    sk_model_dir *m = calloc(1, sizeof *m);
    SK_CHECK(m, SK_E_OOM, "out of memory");
    m->allow_outside = allow_outside;
    sk_status st = SK_OK;
    char *text = NULL;
    m->dir = strdup(dir);
    m->json_path = join(dir, "model.json");
    if (!m->dir || !m->json_path) { st = SK_ERR(SK_E_OOM, "out of memory"); goto fail; }
    if (stat(m->json_path, &sb) != 0) {
        st = SK_ERR(SK_E_IO, "model directory '%s' has no model.json: not a sinkstream model "
                    "directory (make one with tools/convert_checkpoint.py; see docs/MODELS.md)",
                    dir);
        goto fail;
    }
    if ((st = read_text(m->json_path, &text)) != SK_OK) goto fail;
    {
        char what[4200];
        snprintf(what, sizeof what, "'%s'", m->json_path);
        if ((st = sk_json_parse_strict(text, (size_t)-1, what, &m->root)) != SK_OK) {
            if (strstr(sk_error_message(), "not valid JSON")) {
                char msg[600];
                snprintf(msg, sizeof msg, "%s", sk_error_message() + strlen(what));
                st = SK_ERR(SK_E_FORMAT, "'%s': not a JSON object%s", m->json_path, msg);
            }
            goto fail;
        }
    }
    if (!cJSON_IsObject(m->root)) {
        st = SK_ERR(SK_E_FORMAT, "'%s': not a JSON object", m->json_path);
        goto fail;
    }
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(m->root, "format");
    const cJSON *ver = cJSON_GetObjectItemCaseSensitive(m->root, "version");
    const cJSON *fam = cJSON_GetObjectItemCaseSensitive(m->root, "family");
    const cJSON *files = cJSON_GetObjectItemCaseSensitive(m->root, "files");
    const cJSON *title = cJSON_GetObjectItemCaseSensitive(m->root, "title");
    if (!cJSON_IsString(fmt) || strcmp(fmt->valuestring, "sinkstream-model") != 0) {
        st = SK_ERR(SK_E_FORMAT, "'%s': \"format\" must be \"sinkstream-model\"", m->json_path);
        goto fail;
    }
    if (!cJSON_IsNumber(ver) || ver->valuedouble != 1) {
        st = SK_ERR(SK_E_UNSUPPORTED, "'%s': model.json version %g; this sinkstream reads "
                    "version 1 (convert again with this tree's tools/convert_checkpoint.py)",
                    m->json_path, cJSON_IsNumber(ver) ? ver->valuedouble : -1.0);
        goto fail;
    }
    int known = 0;
    for (size_t i = 0; cJSON_IsString(fam) && i < sizeof k_families / sizeof *k_families; i++)
        known |= !strcmp(fam->valuestring, k_families[i]);
    if (!known) {
        st = SK_ERR(SK_E_FORMAT, "'%s': \"family\" is %s%s%s; expected one of self-forcing, "
                    "longlive, longlive2, reward-forcing, rolling-forcing, demo", m->json_path,
                    cJSON_IsString(fam) ? "'" : "", cJSON_IsString(fam) ? fam->valuestring : "missing",
                    cJSON_IsString(fam) ? "'" : "");
        goto fail;
    }
    m->family = fam->valuestring;
    m->title = cJSON_IsString(title) ? title->valuestring : "";
    if (!cJSON_IsObject(files)) {
        st = SK_ERR(SK_E_FORMAT, "'%s': no \"files\" object", m->json_path);
        goto fail;
    }
    if ((st = file_entry(m, files, "dit", 1, &m->dit)) != SK_OK ||
        (st = file_entry(m, files, "dit_config", 0, &m->dit_config)) != SK_OK ||
        (st = file_entry(m, files, "text_encoder", 0, &m->text_encoder)) != SK_OK ||
        (st = file_entry(m, files, "tokenizer", 0, &m->tokenizer)) != SK_OK ||
        (st = file_entry(m, files, "vae", 0, &m->vae)) != SK_OK ||
        (st = file_entry(m, files, "vae_encoder", 0, &m->vae_encoder)) != SK_OK)
        goto fail;
    if (!!m->text_encoder != !!m->tokenizer) {
        st = SK_ERR(SK_E_FORMAT, "'%s': files.%s without files.%s (the umT5 encoder and its "
                    "tokenizer come together)", m->json_path,
                    m->text_encoder ? "text_encoder" : "tokenizer",
                    m->text_encoder ? "tokenizer" : "text_encoder");
        goto fail;
    }
    m->generate = cJSON_GetObjectItemCaseSensitive(m->root, "generate");
    m->fallback = cJSON_GetObjectItemCaseSensitive(m->root, "fallback");
    if (m->generate && !cJSON_IsObject(m->generate)) {
        st = SK_ERR(SK_E_FORMAT, "'%s': \"generate\" must be an object of option: value",
                    m->json_path);
        goto fail;
    }
    if (m->fallback && !cJSON_IsObject(m->fallback)) {
        st = SK_ERR(SK_E_FORMAT, "'%s': \"fallback\" must be an object of option: value",
                    m->json_path);
        goto fail;
    }
    for (const cJSON *g = m->generate ? m->generate->child : NULL; g; g = g->next) {
        char buf[512];
        if (sk_model_dir_value_text(g, buf, sizeof buf) != 0) {
            st = SK_ERR(SK_E_FORMAT, "'%s': generate.%s must be a number, a string, a boolean or "
                        "an array of integers", m->json_path, g->string);
            goto fail;
        }
    }
    free(text);
    *out = m;
    return SK_OK;
fail:
    free(text);
    sk_model_dir_free(&m);
    return st;
}

/* ----------------------------------------------------------------- check */

typedef struct {
    FILE *out;
    int json;
    int problems, warnings;
    cJSON *jparts, *jchecks;
} report;

static void part(report *r, const char *name, const char *file, int ok, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void part(report *r, const char *name, const char *file, int ok, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (!ok) r->problems++;
    if (r->json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "part", name);
        if (file) cJSON_AddStringToObject(j, "file", file);
        cJSON_AddBoolToObject(j, "ok", ok);
        cJSON_AddStringToObject(j, "detail", msg);
        cJSON_AddItemToArray(r->jparts, j);
    } else {
        fprintf(r->out, "  %-13s %-7s %s%s%s\n", name, ok ? "ok" : "PROBLEM", file ? file : "",
                file ? ": " : "", msg);
    }
}

/* level: 0 ok, 1 warning, 2 problem */
static void check(report *r, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void check(report *r, int level, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    static const char *const tag[] = {"ok", "warning", "PROBLEM"};
    if (level == 2) r->problems++;
    if (level == 1) r->warnings++;
    if (r->json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "level", level == 0 ? "ok" : level == 1 ? "warning" : "problem");
        cJSON_AddStringToObject(j, "check", msg);
        cJSON_AddItemToArray(r->jchecks, j);
    } else {
        fprintf(r->out, "  %-7s %s\n", tag[level], msg);
    }
}

static const char *base_name(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

static int same_config(const sk_dit_config *a, const sk_dit_config *b)
{
    return a->dim == b->dim && a->ffn_dim == b->ffn_dim && a->num_heads == b->num_heads &&
           a->head_dim == b->head_dim && a->num_layers == b->num_layers && a->in_dim == b->in_dim &&
           a->out_dim == b->out_dim && a->text_dim == b->text_dim && a->freq_dim == b->freq_dim &&
           a->text_len == b->text_len && fabsf(a->eps - b->eps) <= 1e-6f * b->eps;
}

/* The KV policy generate would use, checked against the runtime's policies. */
static void check_policy(report *r, const sk_model_dir *m)
{
    const cJSON *g = m->generate ? cJSON_GetObjectItemCaseSensitive(m->generate, "kv-policy") : NULL;
    if (!cJSON_IsString(g)) return;
    sk_kv_policy p;
    if (sk_kv_policy_from_name(g->valuestring, &p) == SK_OK) {
        check(r, 0, "KV policy '%s' (model.json generate.kv-policy) is available", g->valuestring);
        return;
    }
    const cJSON *fb = m->fallback ? cJSON_GetObjectItemCaseSensitive(m->fallback, "kv-policy") : NULL;
    if (cJSON_IsString(fb) && sk_kv_policy_from_name(fb->valuestring, &p) == SK_OK)
        check(r, 1, "KV policy '%s' (the published one for %s) is not in this build; generate "
              "falls back to '%s' (model.json fallback), which is not the upstream sampler",
              g->valuestring, m->family, fb->valuestring);
    else
        check(r, 2, "KV policy '%s' (model.json generate.kv-policy) is not in this build and no "
              "usable fallback is given", g->valuestring);
}

int sk_model_dir_check(const sk_model_dir *m, int json, FILE *out)
{
    report r = {.out = out, .json = json};
    if (json) {
        r.jparts = cJSON_CreateArray();
        r.jchecks = cJSON_CreateArray();
    } else {
        fprintf(out, "model directory: %s\n  family        %s%s%s%s\n", m->dir, m->family,
                m->title[0] ? " (" : "", m->title, m->title[0] ? ")" : "");
    }
    sk_backend *be = NULL;
    sk_dit_model *dit = NULL;
    sk_umt5 *te = NULL;
    sk_tokenizer *tok = NULL;
    sk_taehv *vae = NULL;
    sk_status st = sk_backend_create("cpu", SK_DTYPE_F32, &be);
    if (st != SK_OK) {
        part(&r, "backend", NULL, 0, "%s", sk_error_message());
        goto report;
    }
    /* ---- the parts, each through its strict loader */
    if (sk_dit_load(m->dit, NULL, be, SK_DIT_WDTYPE_AS_STORED, &dit) == SK_OK) {
        const sk_dit_config *c = &dit->cfg;
        part(&r, "dit", base_name(m->dit), 1,
             "Wan DiT dim %" PRId64 ", %" PRId64 " layers, %" PRId64 " heads x %" PRId64
             ", ffn %" PRId64 ", in/out %" PRId64 "/%" PRId64 ", text_dim %" PRId64
             ", text_len %" PRId64 " (%.1f MB)",
             c->dim, c->num_layers, c->num_heads, c->head_dim, c->ffn_dim, c->in_dim, c->out_dim,
             c->text_dim, c->text_len, (double)dit->weight_bytes / 1e6);
    } else {
        part(&r, "dit", base_name(m->dit), 0, "%s", sk_error_message());
    }
    if (m->text_encoder) {
        if (sk_umt5_load(be, m->text_encoder, NULL, &te) == SK_OK)
            part(&r, "text_encoder", base_name(m->text_encoder), 1, "%s", sk_umt5_describe(te));
        else
            part(&r, "text_encoder", base_name(m->text_encoder), 0, "%s", sk_error_message());
        st = sk_tokenizer_load(m->tokenizer, &tok);
        if (st == SK_OK)
            part(&r, "tokenizer", "tokenizer/spiece.model", 1,
                 "SentencePiece, %" PRId64 " pieces, pad %d, eos %d, unk %d",
                 sk_tokenizer_vocab_size(tok), (int)sk_tokenizer_pad_id(tok),
                 (int)sk_tokenizer_eos_id(tok), (int)sk_tokenizer_unk_id(tok));
        else if (st == SK_E_UNSUPPORTED)
            check(&r, 1, "tokenizer not checked: %s", sk_error_message());
        else
            part(&r, "tokenizer", "tokenizer/spiece.model", 0, "%s", sk_error_message());
    } else {
        check(&r, 1, "no text encoder in the model: generate needs --text-embeds (or "
              "--text-encoder/--tokenizer) for every run");
    }
    if (m->vae) {
        if (sk_taehv_load(be, m->vae, NULL, &vae) == SK_OK) {
            char d[256];
            part(&r, "vae", base_name(m->vae), 1, "%s", sk_taehv_describe(vae, d, sizeof d));
        } else {
            part(&r, "vae", base_name(m->vae), 0, "%s", sk_error_message());
        }
    } else {
        check(&r, 1, "no VAE in the model: generate can write latents only (or give --vae)");
    }
    if (m->vae_encoder) { /* LongLive 2.0 image-to-video (docs/INPUTS.md) */
        sk_wanvae_enc *we = NULL;
        if (sk_wanvae_enc_load(be, m->vae_encoder, &we) == SK_OK) {
            char d[256];
            part(&r, "vae_encoder", base_name(m->vae_encoder), 1, "%s",
                 sk_wanvae_enc_describe(we, d, sizeof d));
            if (dit)
                check(&r, dit->cfg.in_dim == sk_wanvae_enc_config(we)->z ? 0 : 2,
                      "VAE encoder latent channels %d %s DiT in_dim %" PRId64,
                      sk_wanvae_enc_config(we)->z,
                      dit->cfg.in_dim == sk_wanvae_enc_config(we)->z ? "==" : "!=",
                      dit->cfg.in_dim);
        } else {
            part(&r, "vae_encoder", base_name(m->vae_encoder), 0, "%s", sk_error_message());
        }
        sk_wanvae_enc_free(&we);
    }

    /* ---- how they fit together */
    if (dit && te) {
        const sk_umt5_config *t = sk_umt5_config_of(te);
        check(&r, t->dim == dit->cfg.text_dim ? 0 : 2,
              "DiT text_dim %" PRId64 " %s text encoder dim %" PRId64, dit->cfg.text_dim,
              t->dim == dit->cfg.text_dim ? "==" : "!=", t->dim);
        if (t->text_len <= dit->cfg.text_len)
            check(&r, 0, "encoder text_len %" PRId64 " <= DiT text_len %" PRId64, t->text_len,
                  dit->cfg.text_len);
        else
            check(&r, 1, "encoder text_len %" PRId64 " > DiT text_len %" PRId64 ": prompts of more "
                  "than %" PRId64 " tokens will be refused", t->text_len, dit->cfg.text_len,
                  dit->cfg.text_len);
        if (tok) {
            int64_t v = sk_tokenizer_vocab_size(tok);
            int32_t mx = sk_tokenizer_pad_id(tok);
            if (sk_tokenizer_eos_id(tok) > mx) mx = sk_tokenizer_eos_id(tok);
            if (sk_tokenizer_unk_id(tok) > mx) mx = sk_tokenizer_unk_id(tok);
            check(&r, v <= t->vocab && mx < t->vocab ? 0 : 2,
                  "tokenizer pieces %" PRId64 " (special ids <= %d) %s encoder vocabulary %" PRId64,
                  v, (int)mx, v <= t->vocab && mx < t->vocab ? "fit in the" : "do NOT fit in the",
                  t->vocab);
        }
    }
    if (dit && vae) {
        int z = sk_taehv_get_config(vae)->latent_channels;
        int okc = z == dit->cfg.in_dim && z == dit->cfg.out_dim;
        check(&r, okc ? 0 : 2, "VAE latent channels %d %s DiT in/out channels %" PRId64 "/%" PRId64
              "%s", z, okc ? "==" : "!=", dit->cfg.in_dim, dit->cfg.out_dim,
              okc ? "" : " (taew2_1 goes with Wan 2.1: 16; taew2_2 with Wan 2.2 TI2V-5B: 48)");
    }
    if (dit) {
        const cJSON *dj = cJSON_GetObjectItemCaseSensitive(m->root, "dit");
        const cJSON *cj = dj ? cJSON_GetObjectItemCaseSensitive(dj, "config") : NULL;
        if (cj) {
            char *s = cJSON_PrintUnformatted(cj);
            sk_dit_config mc;
            sk_status cs = s ? sk_dit_config_from_json(s, "model.json dit.config", &mc) : SK_E_OOM;
            free(s);
            if (cs != SK_OK)
                check(&r, 2, "model.json dit.config: %s", sk_error_message());
            else
                check(&r, same_config(&mc, &dit->cfg) ? 0 : 1,
                      "model.json dit.config %s the config the DiT file loads with",
                      same_config(&mc, &dit->cfg) ? "matches" : "DIFFERS FROM");
        }
    }
    check_policy(&r, m);
    {
        const cJSON *g = m->generate;
        int n = 0;
        char line[512] = "", v[128];
        size_t at = 0;
        for (const cJSON *e = g ? g->child : NULL; e && at < sizeof line; e = e->next, n++) {
            if (sk_model_dir_value_text(e, v, sizeof v) == 0)
                at += (size_t)snprintf(line + at, sizeof line - at, "%s%s %s", n ? ", " : "",
                                       e->string, v);
        }
        check(&r, 0, "generate defaults (model.json; flags override): %s", n ? line : "none");
        /* the allowlist (issue 15 #2): generate --model refuses these, serve ignores them */
        for (const cJSON *e = g ? g->child : NULL; e; e = e->next)
            if (!sk_model_dir_option_allowed(e->string))
                check(&r, 1, "generate.%s is not a default a model directory may set (only %s)",
                      e->string, sk_model_dir_allowed_list());
    }

report:
    if (json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "model_dir", m->dir);
        cJSON_AddStringToObject(j, "family", m->family);
        cJSON_AddBoolToObject(j, "ok", r.problems == 0);
        cJSON_AddNumberToObject(j, "problems", r.problems);
        cJSON_AddNumberToObject(j, "warnings", r.warnings);
        cJSON_AddItemToObject(j, "parts", r.jparts);
        cJSON_AddItemToObject(j, "checks", r.jchecks);
        char *s = cJSON_Print(j);
        if (s) fprintf(out, "%s\n", s);
        free(s);
        cJSON_Delete(j);
    } else {
        fprintf(out, "result: %s (%d problem%s, %d warning%s)\n",
                r.problems ? "NOT USABLE" : "ok", r.problems, r.problems == 1 ? "" : "s",
                r.warnings, r.warnings == 1 ? "" : "s");
    }
    sk_taehv_free(&vae);
    sk_tokenizer_free(&tok);
    sk_umt5_free(&te);
    sk_dit_free(&dit);
    sk_backend_free_(&be);
    return r.problems;
}
