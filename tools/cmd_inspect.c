/* cmd_inspect.c - `sinkstream inspect FILE|DIR [--json] [--all]`.
 *
 * Opens a safetensors file through the validating loader (so a broken file
 * fails here exactly as it would at load time, with the same message) and
 * describes it: size, tensor count, dtype histogram, parameter count,
 * metadata, tensors, and which known layout the names and shapes match
 * (Wan DiT, TAEHV, umT5), with the configuration read off the shapes.
 * A directory is inspected file by file (*.safetensors, sorted).
 */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dit/config.h"
#include "runtime/io/safetensors.h"
#include "tools/cli_opts.h"
#include "tools/commands.h"
#include "runtime/engine/model_dir.h"

#define LIST_DEFAULT 20

typedef struct {
    int json, all, limit;
} inspect_opts;

/* ------------------------------------------------------------- helpers */

static uint64_t numel(const sk_st_tensor *t)
{
    uint64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= (uint64_t)t->shape[i];
    return n;
}

/* 1418996800 -> "1,418,996,800" */
static const char *grouped(uint64_t v, char *buf, size_t cap)
{
    char tmp[32];
    int n = snprintf(tmp, sizeof tmp, "%" PRIu64, v), o = 0;
    for (int i = 0; i < n && (size_t)o + 2 < cap; i++) {
        if (i && (n - i) % 3 == 0) buf[o++] = ',';
        buf[o++] = tmp[i];
    }
    buf[o] = 0;
    return buf;
}

static const char *human(double v, const char *unit, char *buf, size_t cap)
{
    static const char *const k[] = {"", "K", "M", "G", "T"};
    int i = 0;
    while (v >= 1000.0 && i < 4) v /= 1000.0, i++;
    snprintf(buf, cap, i ? "%.2f %s%s" : "%.0f %s%s", v, k[i], unit);
    return buf;
}

static const sk_st_tensor *findp(const sk_st_file *f, const char *prefix, const char *name)
{
    char key[512];
    snprintf(key, sizeof key, "%s%s", prefix, name);
    return sk_st_find(f, key);
}

/* Largest N+1 over names "<prefix><stem>N<suffix>", e.g. blocks.N.self_attn.q.weight;
 * *count receives how many distinct matches there were. */
static int count_indexed(const sk_st_file *f, const char *prefix, const char *stem,
                         const char *suffix, int *count)
{
    size_t lp = strlen(prefix), ls = strlen(stem);
    int max = -1, n = 0;
    for (int i = 0; i < f->n_tensors; i++) {
        const char *s = f->tensors[i].name;
        if (strncmp(s, prefix, lp) || strncmp(s + lp, stem, ls)) continue;
        const char *d = s + lp + ls;
        char *end;
        if (*d < '0' || *d > '9') continue;
        long v = strtol(d, &end, 10);
        if (strcmp(end, suffix) || v > 100000) continue;
        n++;
        if (v > max) max = (int)v;
    }
    if (count) *count = n;
    return max + 1;
}

/* ------------------------------------------------------- layout detection */

typedef struct {
    char text[1280]; /* one paragraph for the text output */
    cJSON *json;    /* {"name": ..., fields}; owned by the caller */
} layout;

static int has_lora(const sk_st_file *f)
{
    for (int i = 0; i < f->n_tensors; i++)
        if (strstr(f->tensors[i].name, "lora_A") || strstr(f->tensors[i].name, "lora_down"))
            return 1;
    return 0;
}

static int detect_wan(const sk_st_file *f, layout *L)
{
    /* The prefix is whatever precedes patch_embedding.weight ("", "model.", ...). */
    const char *key = "patch_embedding.weight";
    const sk_st_tensor *pe = NULL;
    char prefix[256] = "";
    for (int i = 0; i < f->n_tensors && !pe; i++) {
        const char *s = f->tensors[i].name;
        size_t ls = strlen(s), lk = strlen(key);
        if (ls >= lk && !strcmp(s + ls - lk, key) && ls - lk < sizeof prefix &&
            (ls == lk || s[ls - lk - 1] == '.')) {
            pe = &f->tensors[i];
            snprintf(prefix, sizeof prefix, "%.*s", (int)(ls - lk), s);
        }
    }
    if (!pe) return 0;
    const sk_st_tensor *hh = findp(f, prefix, "head.head.weight");
    const sk_st_tensor *q0 = findp(f, prefix, "blocks.0.self_attn.q.weight");
    if (!hh || !q0 || pe->ndim != 5 || hh->ndim != 2) return 0;

    int64_t dim = pe->shape[0], in_ch = pe->shape[1];
    int64_t pt = pe->shape[2], ph = pe->shape[3], pw = pe->shape[4];
    int64_t patch = pt * ph * pw;
    int64_t out_ch = patch ? hh->shape[0] / patch : 0;
    int nq = 0;
    int layers = count_indexed(f, prefix, "blocks.", ".self_attn.q.weight", &nq);
    const sk_st_tensor *ffn = findp(f, prefix, "blocks.0.ffn.0.weight");
    const sk_st_tensor *te = findp(f, prefix, "text_embedding.0.weight");
    const sk_st_tensor *tm = findp(f, prefix, "time_embedding.0.weight");
    int64_t ffn_dim = ffn && ffn->ndim == 2 ? ffn->shape[0] : -1;
    int64_t text_dim = te && te->ndim == 2 ? te->shape[1] : -1;
    int64_t freq_dim = tm && tm->ndim == 2 ? tm->shape[1] : -1;
    /* Head count is not visible in any shape (q/k norms span the full dim).
     * A "config" metadata entry (the JSON convert_checkpoint.py and the
     * fixtures write; Wan or diffusers names) says it, and text_len/eps too;
     * otherwise assume Wan's head_dim of 128, which holds for every released
     * size. Every field the shapes also give is compared with them. */
    int64_t heads = dim % 128 == 0 ? dim / 128 : -1;
    const char *heads_src = "head_dim 128 assumed";
    char cfg_warn[384] = "", cfg_extra[96] = "";
    const char *meta_cfg = sk_st_meta(f, "config");
    cJSON *cfg = meta_cfg ? cJSON_Parse(meta_cfg) : NULL;
    if (cfg) {
        /* the loader's own parser (Wan and diffusers names, validation) */
        sk_dit_config mc;
        int parsed = sk_dit_config_from_json(meta_cfg, "metadata config", &mc) == SK_OK;
        if (parsed) {
            heads = mc.num_heads;
            heads_src = "from the metadata config";
            snprintf(cfg_extra, sizeof cfg_extra, ", text_len %" PRId64 ", eps %g", mc.text_len,
                     (double)mc.eps);
        } else {
            snprintf(cfg_extra, sizeof cfg_extra, "; metadata config not usable by the loader");
        }
        /* only the fields the JSON states are compared with the shapes */
        struct { const char *n, *alias; int64_t shp; } cmp[] = {
            {"dim", NULL, dim}, {"num_layers", NULL, layers}, {"ffn_dim", NULL, ffn_dim},
            {"in_dim", "in_channels", in_ch}, {"out_dim", "out_channels", out_ch},
            {"text_dim", NULL, text_dim}, {"freq_dim", NULL, freq_dim}};
        size_t at = 0;
        for (size_t i = 0; i < sizeof cmp / sizeof cmp[0]; i++) {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, cmp[i].n);
            if (!v && cmp[i].alias) v = cJSON_GetObjectItemCaseSensitive(cfg, cmp[i].alias);
            if (cJSON_IsNumber(v) && (int64_t)v->valuedouble != cmp[i].shp && at < sizeof cfg_warn)
                at += (size_t)snprintf(cfg_warn + at, sizeof cfg_warn - at, "%s%s %g vs %" PRId64,
                                       at ? ", " : "; WARNING: metadata config (", cmp[i].n,
                                       v->valuedouble, cmp[i].shp);
        }
        if (at && at < sizeof cfg_warn)
            snprintf(cfg_warn + at, sizeof cfg_warn - at, " in the shapes) disagrees with the shapes");
        cJSON_Delete(cfg);
    }
    int64_t head_dim = heads > 0 && dim % heads == 0 ? dim / heads : -1;

    const char *known = "";
    if (dim == 1536 && layers == 30 && in_ch == 16) known = "Wan2.1-T2V-1.3B (Self-Forcing / LongLive 1.0)";
    else if (dim == 3072 && layers == 30 && in_ch == 48) known = "Wan2.2-TI2V-5B (LongLive 2.0)";
    else if (dim == 5120 && layers == 40 && in_ch == 16) known = "Wan2.1-T2V-14B";
    int lora = has_lora(f);

    cJSON *j = L->json = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "name", "wan_dit");
    cJSON_AddStringToObject(j, "prefix", prefix);
    cJSON_AddNumberToObject(j, "dim", (double)dim);
    cJSON_AddNumberToObject(j, "ffn_dim", (double)ffn_dim);
    cJSON_AddNumberToObject(j, "num_layers", layers);
    cJSON_AddNumberToObject(j, "num_heads", (double)heads);
    cJSON_AddNumberToObject(j, "head_dim", (double)head_dim);
    cJSON_AddStringToObject(j, "num_heads_source", heads_src);
    if (cfg_warn[0]) cJSON_AddStringToObject(j, "warning", cfg_warn + 2);
    cJSON_AddNumberToObject(j, "in_dim", (double)in_ch);
    cJSON_AddNumberToObject(j, "out_dim", (double)out_ch);
    cJSON_AddNumberToObject(j, "text_dim", (double)text_dim);
    cJSON_AddNumberToObject(j, "freq_dim", (double)freq_dim);
    cJSON *p = cJSON_AddArrayToObject(j, "patch_size");
    cJSON_AddItemToArray(p, cJSON_CreateNumber((double)pt));
    cJSON_AddItemToArray(p, cJSON_CreateNumber((double)ph));
    cJSON_AddItemToArray(p, cJSON_CreateNumber((double)pw));
    if (*known) cJSON_AddStringToObject(j, "matches", known);
    cJSON_AddBoolToObject(j, "lora", lora);

    char extra[256] = "";
    if (nq != layers)
        snprintf(extra, sizeof extra, "; WARNING: only %d of %d blocks have self_attn.q", nq, layers);
    snprintf(L->text, sizeof L->text,
             "Wan DiT%s%s%s: dim %" PRId64 ", ffn %" PRId64 ", layers %d, heads %" PRId64
             " x head_dim %" PRId64 " (%s), in %" PRId64 " / out %" PRId64 " channels, patch %"
             PRId64 "x%" PRId64 "x%" PRId64 ", text_dim %" PRId64 ", freq_dim %" PRId64
             "%s%s%s%s%s%.300s",
             *prefix ? " (key prefix '" : "", prefix, *prefix ? "')" : "", dim, ffn_dim, layers,
             heads, head_dim, heads_src, in_ch, out_ch, pt, ph, pw, text_dim, freq_dim, cfg_extra,
             *known ? "; matches " : "", known, lora ? "; has LoRA tensors" : "", extra, cfg_warn);
    return 1;
}

static int detect_taehv(const sk_st_file *f, layout *L)
{
    int ndec = 0, nenc = 0;
    for (int i = 0; i < f->n_tensors; i++) {
        const char *s = f->tensors[i].name;
        if (!strncmp(s, "decoder.", 8) && s[8] >= '0' && s[8] <= '9') ndec++;
        if (!strncmp(s, "encoder.", 8) && s[8] >= '0' && s[8] <= '9') nenc++;
    }
    if (!ndec && !nenc) return 0;
    const sk_st_tensor *d1 = sk_st_find(f, "decoder.1.weight");
    const sk_st_tensor *d22 = sk_st_find(f, "decoder.22.weight");
    const sk_st_tensor *d7 = sk_st_find(f, "decoder.7.conv.weight");
    const sk_st_tensor *e17 = sk_st_find(f, "encoder.17.weight");
    int64_t z = d1 && d1->ndim == 4 ? d1->shape[1] : (e17 && e17->ndim == 4 ? e17->shape[0] : -1);
    int64_t outc = d22 && d22->ndim == 4 ? d22->shape[0] : -1;
    const char *variant = "unrecognised TAEHV variant", *vid = "unknown";
    if (ndec && (!d1 || !d22)) variant = "unrecognised decoder (e.g. a _super checkpoint)";
    /* Wan's decoder.7 TGrow(stride 1) is square [C, C, 1, 1]; LTX's is [2C, C, 1, 1]. */
    else if (d7 && d7->ndim == 4 && d7->shape[0] != d7->shape[1])
        variant = "not a Wan TAEHV (decoder.7 is not square: an LTX checkpoint?)";
    else if (z == 16 && (outc == 3 || outc < 0)) variant = "taew2_1 (Wan 2.1, 16 latent channels)", vid = "taew2_1";
    else if (z == 48 && (outc == 12 || outc < 0)) variant = "taew2_2 (Wan 2.2 TI2V-5B, 48 latent channels)", vid = "taew2_2";
    cJSON *j = L->json = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "name", "taehv");
    cJSON_AddStringToObject(j, "variant", vid);
    cJSON_AddNumberToObject(j, "latent_channels", (double)z);
    cJSON_AddNumberToObject(j, "decoder_out_channels", (double)outc);
    cJSON_AddNumberToObject(j, "decoder_tensors", ndec);
    cJSON_AddNumberToObject(j, "encoder_tensors", nenc);
    int64_t width = d1 && d1->ndim == 4 ? d1->shape[0] : -1;
    cJSON_AddNumberToObject(j, "decoder_width", (double)width);
    char wtxt[96] = "";
    if (width > 0 && width != 256)
        snprintf(wtxt, sizeof wtxt, "; decoder width %" PRId64 " (released models use 256)", width);
    snprintf(L->text, sizeof L->text,
             "TAEHV tiny video VAE: %s; latent channels %" PRId64 ", final conv %" PRId64
             " outputs; %d decoder and %d encoder tensors%s%s",
             variant, z, outc, ndec, nenc, nenc ? "" : " (decode only)", wtxt);
    return 1;
}

static int detect_umt5(const sk_st_file *f, layout *L)
{
    int wan = sk_st_find(f, "token_embedding.weight") && sk_st_find(f, "blocks.0.attn.q.weight") &&
              sk_st_find(f, "blocks.0.pos_embedding.embedding.weight");
    int hf = !wan && sk_st_find(f, "encoder.block.0.layer.0.SelfAttention.q.weight") &&
             (sk_st_find(f, "shared.weight") || sk_st_find(f, "encoder.embed_tokens.weight"));
    if (!wan && !hf) return 0;
    const sk_st_tensor *emb = wan ? sk_st_find(f, "token_embedding.weight")
                                  : sk_st_find(f, "shared.weight");
    if (!emb) emb = sk_st_find(f, "encoder.embed_tokens.weight");
    const sk_st_tensor *rel = wan ? sk_st_find(f, "blocks.0.pos_embedding.embedding.weight")
                                  : sk_st_find(f, "encoder.block.0.layer.0.SelfAttention."
                                                  "relative_attention_bias.weight");
    const sk_st_tensor *ff = wan ? sk_st_find(f, "blocks.0.ffn.fc1.weight")
                                 : sk_st_find(f, "encoder.block.0.layer.1.DenseReluDense.wi_1.weight");
    int layers = wan ? count_indexed(f, "", "blocks.", ".attn.q.weight", NULL)
                     : count_indexed(f, "", "encoder.block.", ".layer.0.SelfAttention.q.weight", NULL);
    int64_t vocab = emb && emb->ndim == 2 ? emb->shape[0] : -1;
    int64_t dim = emb && emb->ndim == 2 ? emb->shape[1] : -1;
    int64_t buckets = rel && rel->ndim == 2 ? rel->shape[0] : -1;
    int64_t heads = rel && rel->ndim == 2 ? rel->shape[1] : -1;
    int64_t ffn = ff && ff->ndim == 2 ? ff->shape[0] : -1;
    int spiece = sk_st_find(f, "spiece_model") != NULL;
    cJSON *j = L->json = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "name", "umt5_encoder");
    cJSON_AddStringToObject(j, "naming", wan ? "wan" : "hf");
    cJSON_AddNumberToObject(j, "vocab", (double)vocab);
    cJSON_AddNumberToObject(j, "dim", (double)dim);
    cJSON_AddNumberToObject(j, "num_layers", layers);
    cJSON_AddNumberToObject(j, "num_heads", (double)heads);
    cJSON_AddNumberToObject(j, "num_buckets", (double)buckets);
    cJSON_AddNumberToObject(j, "ffn_dim", (double)ffn);
    cJSON_AddBoolToObject(j, "has_tokenizer", spiece);
    snprintf(L->text, sizeof L->text,
             "umT5 text encoder (%s names): vocab %" PRId64 ", dim %" PRId64 ", layers %d, heads %"
             PRId64 ", ffn %" PRId64 ", %" PRId64 " position buckets%s%s",
             wan ? "Wan" : "HF", vocab, dim, layers, heads, ffn, buckets,
             dim == 4096 && layers == 24 ? "; matches umT5-XXL" : "",
             spiece ? "; carries a spiece_model tokenizer tensor" : "");
    return 1;
}

/* A LoRA adapter on its own (LongLive's lora.pt converted to safetensors):
 * PEFT names "<...>.q.lora_A.weight" [r, in] / "lora_B.weight" [out, r]. */
static int detect_lora(const sk_st_file *f, layout *L)
{
    int na = 0, nb = 0;
    int64_t rank = -1;
    int mixed = 0;
    for (int i = 0; i < f->n_tensors; i++) {
        const sk_st_tensor *t = &f->tensors[i];
        if (strstr(t->name, ".lora_A.") || strstr(t->name, ".lora_down.")) {
            na++;
            if (t->ndim == 2) {
                if (rank >= 0 && rank != t->shape[0]) mixed = 1;
                rank = t->shape[0];
            }
        } else if (strstr(t->name, ".lora_B.") || strstr(t->name, ".lora_up.")) {
            nb++;
        }
    }
    if (!na) return 0;
    int blocks = 0;
    for (int i = 0; i < f->n_tensors; i++) {
        const char *b = strstr(f->tensors[i].name, "blocks.");
        if (b && b[7] >= '0' && b[7] <= '9') {
            int v = atoi(b + 7) + 1;
            if (v > blocks && v < 100000) blocks = v;
        }
    }
    cJSON *j = L->json = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "name", "lora");
    cJSON_AddNumberToObject(j, "adapted_layers", na);
    cJSON_AddNumberToObject(j, "rank", mixed ? -1 : (double)rank);
    cJSON_AddNumberToObject(j, "blocks", blocks);
    snprintf(L->text, sizeof L->text,
             "LoRA adapter: %d adapted layers (%d lora_A, %d lora_B), rank %s%" PRId64
             ", over %d blocks%s", na, na, nb, mixed ? "mixed, last " : "", rank, blocks,
             na != nb ? "; WARNING: lora_A and lora_B counts differ" : "");
    return 1;
}

static void detect(const sk_st_file *f, layout *L)
{
    L->text[0] = 0;
    L->json = NULL;
    if (detect_wan(f, L) || detect_taehv(f, L) || detect_umt5(f, L) || detect_lora(f, L)) return;
    L->json = cJSON_CreateObject();
    cJSON_AddStringToObject(L->json, "name", "unknown");
    snprintf(L->text, sizeof L->text,
             "unknown layout (not a Wan DiT, TAEHV, umT5 or LoRA checkpoint)");
}

/* --------------------------------------------------------------- output */

typedef struct {
    int count;
    uint64_t params, bytes;
} dt_stat;

static void print_text(const sk_st_file *f, const layout *L, const inspect_opts *o)
{
    char a[64], b[64];
    dt_stat hist[SK_DTYPE_COUNT_] = {{0}};
    uint64_t params = 0;
    for (int i = 0; i < f->n_tensors; i++) {
        const sk_st_tensor *t = &f->tensors[i];
        hist[t->dtype].count++;
        hist[t->dtype].params += numel(t);
        hist[t->dtype].bytes += t->nbytes;
        params += numel(t);
    }
    printf("file:       %s\n", f->path);
    printf("size:       %s (%s bytes)\n", human((double)f->map_size, "B", a, sizeof a),
           grouped(f->map_size, b, sizeof b));
    printf("tensors:    %d\n", f->n_tensors);
    printf("parameters: %s (%s)\n", grouped(params, a, sizeof a), human((double)params, "", b, sizeof b));
    printf("dtypes:    ");
    for (int d = 0; d < SK_DTYPE_COUNT_; d++)
        if (hist[d].count)
            printf(" %s x%d (%s params)", sk_dtype_st_name((sk_dtype)d), hist[d].count,
                   grouped(hist[d].params, a, sizeof a));
    printf("%s\n", f->n_tensors ? "" : " (none)");
    printf("metadata:%s\n", f->n_meta ? "" : "   (none)");
    for (int i = 0; i < f->n_meta; i++) {
        const char *v = f->meta_values[i];
        size_t lv = strlen(v);
        printf("  %s = %.*s%s\n", f->meta_keys[i], (int)(lv > 200 ? 200 : lv), v,
               lv > 200 ? "... (truncated)" : "");
    }
    printf("layout:     %s\n", L->text);
    int n = o->all ? f->n_tensors : (f->n_tensors < o->limit ? f->n_tensors : o->limit);
    if (n == 0) {
        /* --limit 0: summary only */
    } else if (n < f->n_tensors)
        printf("tensors (first %d of %d in file order; --all lists every one):\n", n, f->n_tensors);
    else if (n)
        printf("tensors (%d, in file order):\n", n);
    for (int i = 0; i < n; i++) {
        const sk_st_tensor *t = &f->tensors[i];
        char sh[160];
        printf("  %-8s %-24s %s\n", sk_dtype_st_name(t->dtype),
               sk_shape_str_n(t->ndim, t->shape, sh, sizeof sh), t->name);
    }
}

static cJSON *to_json(const sk_st_file *f, layout *L, const inspect_opts *o)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "file", f->path);
    cJSON_AddNumberToObject(j, "size_bytes", (double)f->map_size);
    cJSON_AddNumberToObject(j, "tensors", f->n_tensors);
    uint64_t params = 0;
    dt_stat hist[SK_DTYPE_COUNT_] = {{0}};
    for (int i = 0; i < f->n_tensors; i++) {
        const sk_st_tensor *t = &f->tensors[i];
        params += numel(t);
        hist[t->dtype].count++;
        hist[t->dtype].params += numel(t);
        hist[t->dtype].bytes += t->nbytes;
    }
    cJSON_AddNumberToObject(j, "parameters", (double)params);
    cJSON *dt = cJSON_AddObjectToObject(j, "dtypes");
    for (int d = 0; d < SK_DTYPE_COUNT_; d++)
        if (hist[d].count) {
            cJSON *e = cJSON_AddObjectToObject(dt, sk_dtype_st_name((sk_dtype)d));
            cJSON_AddNumberToObject(e, "tensors", hist[d].count);
            cJSON_AddNumberToObject(e, "parameters", (double)hist[d].params);
            cJSON_AddNumberToObject(e, "bytes", (double)hist[d].bytes);
        }
    cJSON *m = cJSON_AddObjectToObject(j, "metadata");
    for (int i = 0; i < f->n_meta; i++) cJSON_AddStringToObject(m, f->meta_keys[i], f->meta_values[i]);
    cJSON_AddItemToObject(j, "layout", L->json);
    L->json = NULL; /* now owned by j */
    int n = o->all ? f->n_tensors : (f->n_tensors < o->limit ? f->n_tensors : o->limit);
    cJSON_AddBoolToObject(j, "tensor_list_complete", n == f->n_tensors);
    cJSON *list = cJSON_AddArrayToObject(j, "tensor_list");
    for (int i = 0; i < n; i++) {
        const sk_st_tensor *t = &f->tensors[i];
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "name", t->name);
        cJSON_AddStringToObject(e, "dtype", sk_dtype_st_name(t->dtype));
        cJSON *s = cJSON_AddArrayToObject(e, "shape");
        for (int d = 0; d < t->ndim; d++) cJSON_AddItemToArray(s, cJSON_CreateNumber((double)t->shape[d]));
        cJSON_AddItemToArray(list, e);
    }
    return j;
}

/* Inspects one file: 0 or 1 (message printed). json_out: append there instead of printing. */
static int inspect_file(const char *path, const inspect_opts *o, cJSON *json_out)
{
    sk_st_file *f = NULL;
    if (sk_st_open(path, &f) != SK_OK) {
        fprintf(stderr, "sinkstream inspect: %s\n", sk_error_message());
        return 1;
    }
    layout L;
    detect(f, &L);
    if (o->json) {
        cJSON *j = to_json(f, &L, o);
        if (json_out) {
            cJSON_AddItemToArray(json_out, j);
        } else {
            char *s = cJSON_Print(j);
            if (s) printf("%s\n", s);
            free(s);
            cJSON_Delete(j);
        }
    } else {
        print_text(f, &L, o);
    }
    cJSON_Delete(L.json);
    sk_st_close(&f);
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int inspect_dir(const char *dir, const inspect_opts *o)
{
    DIR *d = opendir(dir);
    if (!d) {
        perror("sinkstream inspect: opendir");
        return 1;
    }
    char **names = NULL;
    int n = 0, cap = 0, rc = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l < 12 || strcmp(e->d_name + l - 12, ".safetensors")) continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            char **nn = realloc(names, (size_t)cap * sizeof *nn);
            if (!nn) { rc = 1; break; }
            names = nn;
        }
        size_t need = strlen(dir) + l + 2;
        names[n] = malloc(need);
        if (!names[n]) { rc = 1; break; }
        snprintf(names[n], need, "%s/%s", dir, e->d_name);
        n++;
    }
    closedir(d);
    if (rc) fprintf(stderr, "sinkstream inspect: out of memory listing '%s'\n", dir);
    if (!rc && n == 0) {
        fprintf(stderr, "sinkstream inspect: no .safetensors files in directory '%s'\n", dir);
        rc = 1;
    }
    if (!rc) {
        qsort(names, (size_t)n, sizeof *names, cmp_str);
        cJSON *arr = o->json ? cJSON_CreateArray() : NULL;
        for (int i = 0; i < n; i++) {
            if (!o->json && i) printf("\n");
            if (inspect_file(names[i], o, arr)) rc = 1;
        }
        if (arr) {
            cJSON *top = cJSON_CreateObject();
            cJSON_AddStringToObject(top, "directory", dir);
            cJSON_AddItemToObject(top, "files", arr);
            char *s = cJSON_Print(top);
            if (s) printf("%s\n", s);
            free(s);
            cJSON_Delete(top);
        }
    }
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
    return rc;
}

int sk_cmd_inspect(int argc, char **argv)
{
    inspect_opts o = {.json = 0, .all = 0, .limit = LIST_DEFAULT};
    const sk_opt opts[] = {
        {"json", 0, SK_OPT_FLAG, &o.json, .help = "print one JSON object (machine readable)"},
        {"all", 'a', SK_OPT_FLAG, &o.all, .help = "list every tensor, not only the first --limit"},
        {"limit", 'n', SK_OPT_INT, &o.limit, .help = "tensors listed without --all",
         .metavar = "N", .lo = 0, .hi = 1e9},
    };
    sk_cli cli = {"sinkstream inspect", "[options] FILE|DIR",
                  "Validate a .safetensors file (or every one in a directory) and describe it:\n"
                  "size, tensor count, dtypes, parameters, metadata, tensors, and the model\n"
                  "layout it matches (Wan DiT, TAEHV, umT5) with the configuration read off\n"
                  "its shapes. Exits 1 if a file is malformed, printing why. A model directory\n"
                  "(one with model.json, from tools/convert_checkpoint.py) is checked end to end:\n"
                  "every part loads, and DiT, text encoder, tokenizer and VAE fit together.",
                  opts, (int)(sizeof opts / sizeof opts[0]), 1, 1};
    sk_cli_pos pos;
    int rc = sk_cli_parse(&cli, argc, argv, &pos);
    if (rc >= 0) return rc;
    struct stat sb;
    if (sk_model_dir_is(pos.v[0])) {
        /* a model directory (model.json): checked end to end */
        sk_model_dir *md = NULL;
        if (sk_model_dir_open(pos.v[0], &md) != SK_OK) {
            fprintf(stderr, "sinkstream inspect: %s\n", sk_error_message());
            return 1;
        }
        int problems = sk_model_dir_check(md, o.json, stdout);
        sk_model_dir_free(&md);
        return problems ? 1 : 0;
    }
    if (stat(pos.v[0], &sb) == 0 && S_ISDIR(sb.st_mode)) return inspect_dir(pos.v[0], &o);
    return inspect_file(pos.v[0], &o, NULL);
}
