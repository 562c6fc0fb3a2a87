/* text_encoder.c - tokenizer + umT5 + prompt cache + offload (see text_encoder.h).
 *
 * The cache is a tiny array LRU (a handful of entries of text_len*dim floats,
 * 8 MiB each for Wan): linear search by exact prompt bytes is cheaper than
 * anything cleverer at this size. It is keyed by the raw prompt, before
 * cleaning, so a hit costs one strcmp per entry.
 */
#include "text_encoder.h"

#include <stdlib.h>
#include <string.h>

#include "runtime/core/log.h"
#include "runtime/io/safetensors.h"
#include "tokenizer.h"
#include "umt5.h"

#define SK_TEXT_CACHE_DEFAULT 8

typedef struct {
    char *prompt;    /* NULL: empty slot */
    float *context;  /* [rows, dim] */
    int32_t *ids;    /* [rows] */
    int len;
    uint64_t used;   /* LRU clock */
} cache_entry;

struct sk_text_encoder {
    sk_backend *be;
    char *encoder_path, *config_path;
    sk_tokenizer *tok;
    sk_umt5 *model; /* NULL while offloaded */
    sk_umt5_config cfg;
    int64_t rows;
    int offload;
    int n_cache;
    cache_entry *cache;
    uint64_t clock, runs, hits, loads;
    int32_t *ids_buf;
};

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

static sk_status load_model(sk_text_encoder *te)
{
    if (te->model) return SK_OK;
    SK_TRY(sk_umt5_load(te->be, te->encoder_path, te->config_path, &te->model));
    te->loads++;
    return SK_OK;
}

/* The tokenizer: the given file, else the `spiece_model` u8 tensor of the weights. */
static sk_status load_tokenizer(sk_text_encoder *te, const char *path)
{
    if (path) return sk_tokenizer_load(path, &te->tok);
    sk_st_file *f = NULL;
    SK_TRY(sk_st_open(te->encoder_path, &f));
    const sk_st_tensor *t = sk_st_find(f, "spiece_model");
    sk_status st;
    if (!t || t->dtype != SK_DTYPE_U8)
        st = SK_ERR(SK_E_INVALID_ARG,
                    "text encoder: no tokenizer given and '%s' has no 'spiece_model' u8 tensor; "
                    "pass --tokenizer google/umt5-xxl/spiece.model", te->encoder_path);
    else
        st = sk_tokenizer_load_blob(t->data, t->nbytes, te->encoder_path, &te->tok);
    sk_st_close(&f);
    return st;
}

sk_status sk_text_encoder_create(sk_backend *be, const sk_text_opts *o, sk_text_encoder **out)
{
    SK_CHECK(be && o && out, SK_E_INVALID_ARG, "text encoder: NULL argument");
    *out = NULL;
    SK_CHECK(o->encoder_path && *o->encoder_path, SK_E_INVALID_ARG,
             "text encoder: no encoder weights given (--text-encoder FILE)");
    SK_CHECK(o->text_len >= 0 && o->text_len <= 65536, SK_E_INVALID_ARG,
             "text encoder: text_len %d; expected 1..65536 (Wan uses 512) or 0 for the default",
             o->text_len);
    sk_text_encoder *te = calloc(1, sizeof *te);
    SK_CHECK(te, SK_E_OOM, "text encoder: out of memory");
    te->be = be;
    te->offload = o->offload;
    te->encoder_path = strdup(o->encoder_path);
    te->config_path = dup_or_null(o->config_path);
    sk_status st = SK_E_OOM;
    if (!te->encoder_path || (o->config_path && !te->config_path)) {
        st = SK_ERR(SK_E_OOM, "text encoder: out of memory");
        goto fail;
    }
    if ((st = load_tokenizer(te, o->tokenizer_path)) != SK_OK) goto fail;
    if ((st = load_model(te)) != SK_OK) goto fail;
    te->cfg = *sk_umt5_config_of(te->model);
    te->rows = o->text_len > 0 ? o->text_len : te->cfg.text_len;
    if (sk_tokenizer_vocab_size(te->tok) > te->cfg.vocab) {
        st = SK_ERR(SK_E_SHAPE, "text encoder: tokenizer '%s' has %lld pieces but the encoder "
                    "'%s' embeds only %lld ids; they do not belong together",
                    sk_tokenizer_source(te->tok), (long long)sk_tokenizer_vocab_size(te->tok),
                    te->encoder_path, (long long)te->cfg.vocab);
        goto fail;
    }
    te->n_cache = o->cache_entries == 0 ? SK_TEXT_CACHE_DEFAULT
                  : o->cache_entries < 0 ? 0 : o->cache_entries;
    te->cache = calloc((size_t)te->n_cache + 1, sizeof *te->cache);
    te->ids_buf = malloc((size_t)te->rows * sizeof *te->ids_buf);
    if (!te->cache || !te->ids_buf) {
        st = SK_ERR(SK_E_OOM, "text encoder: out of memory");
        goto fail;
    }
    /* with offload the weights stay until the first encode: it uses them */
    *out = te;
    return SK_OK;
fail:
    sk_text_encoder_free(&te);
    return st;
}

void sk_text_encoder_free(sk_text_encoder **pte)
{
    if (!pte || !*pte) return;
    sk_text_encoder *te = *pte;
    for (int i = 0; te->cache && i < te->n_cache; i++) {
        free(te->cache[i].prompt);
        free(te->cache[i].context);
        free(te->cache[i].ids);
    }
    free(te->cache);
    free(te->ids_buf);
    sk_umt5_free(&te->model);
    sk_tokenizer_free(&te->tok);
    free(te->encoder_path);
    free(te->config_path);
    free(te);
    *pte = NULL;
}

void sk_text_encoder_shape(const sk_text_encoder *te, int64_t *rows, int64_t *dim)
{
    if (rows) *rows = te ? te->rows : 0;
    if (dim) *dim = te ? te->cfg.dim : 0;
}

void sk_text_encoder_offload(sk_text_encoder *te)
{
    if (te && te->model) {
        sk_umt5_free(&te->model);
        SK_LOGD("text encoder: weights of '%s' freed (offload)", te->encoder_path);
    }
}

sk_status sk_text_encode(sk_text_encoder *te, const char *prompt, float *context, int *len,
                         int32_t *ids)
{
    SK_CHECK(te && prompt && context, SK_E_INVALID_ARG, "text encode: NULL argument");
    size_t n_ctx = (size_t)(te->rows * te->cfg.dim);
    te->clock++;
    for (int i = 0; i < te->n_cache; i++) {
        cache_entry *e = &te->cache[i];
        if (!e->prompt || strcmp(e->prompt, prompt)) continue;
        memcpy(context, e->context, n_ctx * sizeof(float));
        if (len) *len = e->len;
        if (ids) memcpy(ids, e->ids, (size_t)te->rows * sizeof *ids);
        e->used = te->clock;
        te->hits++;
        return SK_OK;
    }
    int n = 0;
    SK_TRY(sk_tokenize_wan(te->tok, prompt, (int)te->rows, te->ids_buf, &n));
    SK_TRY(load_model(te));
    sk_status st = sk_umt5_encode(te->model, te->ids_buf, n, (int)te->rows, context);
    if (te->offload) sk_text_encoder_offload(te);
    if (st != SK_OK) return st;
    te->runs++;
    if (len) *len = n;
    if (ids) memcpy(ids, te->ids_buf, (size_t)te->rows * sizeof *ids);
    SK_LOGD("text encoder: encoded %d tokens (run %llu)", n, (unsigned long long)te->runs);

    if (te->n_cache == 0) return SK_OK;
    cache_entry *victim = &te->cache[0];
    for (int i = 1; i < te->n_cache; i++)
        if (!te->cache[i].prompt || (victim->prompt && te->cache[i].used < victim->used))
            victim = &te->cache[i];
    if (!victim->context) victim->context = malloc(n_ctx * sizeof(float));
    if (!victim->ids) victim->ids = malloc((size_t)te->rows * sizeof *victim->ids);
    if (!victim->context || !victim->ids) return SK_OK; /* caching is best-effort */
    char *p = strdup(prompt);
    if (!p) return SK_OK;
    free(victim->prompt);
    victim->prompt = p;
    memcpy(victim->context, context, n_ctx * sizeof(float));
    memcpy(victim->ids, te->ids_buf, (size_t)te->rows * sizeof *victim->ids);
    victim->len = n;
    victim->used = te->clock;
    return SK_OK;
}

uint64_t sk_text_encoder_runs(const sk_text_encoder *te) { return te ? te->runs : 0; }
uint64_t sk_text_encoder_hits(const sk_text_encoder *te) { return te ? te->hits : 0; }
uint64_t sk_text_encoder_loads(const sk_text_encoder *te) { return te ? te->loads : 0; }
int sk_text_encoder_resident(const sk_text_encoder *te) { return te && te->model; }
