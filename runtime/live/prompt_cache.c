/* prompt_cache.c - see prompt_cache.h. */
#include "runtime/live/prompt_cache.h"

#include <stdlib.h>
#include <string.h>

sk_status gen_prompt_cache_init(gen_prompt_cache *c, int cap)
{
    memset(c, 0, sizeof *c);
    c->cap = cap > 0 ? cap : GEN_PROMPT_CACHE_CAP;
    c->e = calloc((size_t)c->cap, sizeof *c->e);
    SK_CHECK(c->e, SK_E_OOM, "prompt cache: out of memory");
    return SK_OK;
}

static void entry_free(gen_prompt_cache_entry *e)
{
    free(e->key);
    free(e->text);
    free(e->ctx);
    memset(e, 0, sizeof *e);
}

void gen_prompt_cache_free(gen_prompt_cache *c)
{
    for (int i = 0; i < c->n; i++) entry_free(&c->e[i]);
    free(c->e);
    memset(c, 0, sizeof *c);
}

static int same(const char *a, const char *b) { return a && b && !strcmp(a, b); }

static int same_prompt(const char *k1, const char *t1, const char *k2, const char *t2)
{
    return (k1 && same(k1, k2)) || (t1 && same(t1, t2));
}

int gen_prompt_distinct(const gen_prompt_list *l)
{
    /* quadratic in the distinct count only: stops counting past a bound the
     * callers care about */
    int n = 0;
    const int bound = 4096;
    const gen_prompt **seen = malloc((size_t)bound * sizeof *seen);
    if (!seen) return l->n;
    for (int i = 0; i < l->n; i++) {
        int dup = 0;
        for (int k = 0; k < n && !dup; k++)
            dup = same_prompt(seen[k]->key, seen[k]->text, l->v[i].key, l->v[i].text);
        if (dup) continue;
        if (n == bound) { n = l->n; break; }
        seen[n++] = &l->v[i];
    }
    free(seen);
    return n;
}

static gen_prompt_cache_entry *find(gen_prompt_cache *c, const gen_prompt *p)
{
    for (int i = 0; i < c->n; i++)
        if (same_prompt(c->e[i].key, c->e[i].text, p->key, p->text)) return &c->e[i];
    return NULL;
}

static sk_status copy_out(gen_prompt_cache *c, gen_prompt_cache_entry *e, gen_prompt *p)
{
    size_t n = (size_t)(e->rows * e->cols);
    float *x = malloc((n ? n : 1) * sizeof *x);
    SK_CHECK(x, SK_E_OOM, "out of host memory for a [%lld, %lld] context", (long long)e->rows,
             (long long)e->cols);
    memcpy(x, e->ctx, n * sizeof *x);
    free(p->ctx);
    p->ctx = x;
    p->rows = e->rows;
    p->cols = e->cols;
    e->used = ++c->tick;
    return SK_OK;
}

/* Stores p's resolved context (a copy), evicting the least recently used. */
static sk_status store(gen_prompt_cache *c, const gen_prompt *p, gen_prompt_cache_entry **out)
{
    gen_prompt_cache_entry *e;
    if (c->n < c->cap) {
        e = &c->e[c->n++];
    } else {
        e = &c->e[0];
        for (int i = 1; i < c->n; i++)
            if (c->e[i].used < e->used) e = &c->e[i];
        entry_free(e);
    }
    size_t n = (size_t)(p->rows * p->cols);
    e->ctx = malloc((n ? n : 1) * sizeof *e->ctx);
    e->key = p->key ? strdup(p->key) : NULL;
    e->text = p->text ? strdup(p->text) : NULL;
    if (!e->ctx || (p->key && !e->key) || (p->text && !e->text)) {
        entry_free(e);
        *e = c->e[--c->n]; /* keep the table dense */
        memset(&c->e[c->n], 0, sizeof c->e[c->n]);
        return SK_ERR(SK_E_OOM, "prompt cache: out of memory");
    }
    memcpy(e->ctx, p->ctx, n * sizeof *e->ctx);
    e->rows = p->rows;
    e->cols = p->cols;
    e->used = ++c->tick;
    *out = e;
    return SK_OK;
}

sk_status gen_prompt_cache_resolve(gen_prompt_cache *c, gen_prompt *p, const sk_st_file *emb,
                                   gen_text *text)
{
    gen_prompt_cache_entry *e = find(c, p);
    if (e) {
        c->hits++;
        return copy_out(c, e, p);
    }
    c->misses++;
    SK_TRY(gen_prompt_resolve(p, emb, text));
    return store(c, p, &e);
}

sk_status gen_prompt_cache_warm(gen_prompt_cache *c, const gen_prompt_list *l,
                                const sk_st_file *emb, gen_text *text, int *left)
{
    *left = 0;
    for (int i = 0; i < l->n; i++) {
        if (find(c, &l->v[i])) continue;
        if (c->n == c->cap) {
            (*left)++;
            continue;
        }
        gen_prompt tmp = {.key = l->v[i].key, .text = l->v[i].text, .frame = l->v[i].frame};
        sk_status st = gen_prompt_resolve(&tmp, emb, text);
        gen_prompt_cache_entry *e;
        if (st == SK_OK) st = store(c, &tmp, &e);
        free(tmp.ctx); /* key and text stay l's */
        if (st != SK_OK) {
            if (l->v[i].line > 0) sk_error_prefix("--prompts line %d: ", l->v[i].line);
            return st;
        }
    }
    return SK_OK;
}

sk_status gen_prompt_cache_fit(gen_prompt_cache *c, const sk_dit_config *cfg)
{
    for (int i = 0; i < c->n; i++) {
        gen_prompt_cache_entry *e = &c->e[i];
        gen_prompt tmp = {.key = e->key, .text = e->text, .ctx = e->ctx, .rows = e->rows,
                          .cols = e->cols, .line = -1};
        SK_TRY(gen_prompt_fit(&tmp, cfg));
        e->rows = tmp.rows;
    }
    return SK_OK;
}

sk_status gen_prompt_check(const gen_prompt *p, const sk_st_file *emb, int have_encoder,
                           int64_t *cols)
{
    *cols = 0;
    if (p->text) {
        SK_CHECK(have_encoder, SK_E_INVALID_ARG, "text prompt '%.40s' needs --text-encoder FILE",
                 p->text);
        return SK_OK;
    }
    SK_CHECK(emb, SK_E_INVALID_ARG, "prompt embeds '%s' needs --text-embeds FILE", p->key);
    const sk_st_tensor *et = sk_st_find(emb, p->key);
    SK_CHECK(et, SK_E_FORMAT, "--text-embeds '%s': no tensor '%s' (expected [L, text_dim]; "
             "choose another with --embeds-key)", emb->path, p->key);
    char b[96];
    SK_CHECK(et->ndim == 2 || (et->ndim == 3 && et->shape[0] == 1), SK_E_SHAPE,
             "--text-embeds '%s': tensor '%s' has shape %s; expected [L, text_dim]", emb->path,
             p->key, sk_shape_str_n(et->ndim, et->shape, b, sizeof b));
    *cols = et->shape[et->ndim - 1];
    return SK_OK;
}
