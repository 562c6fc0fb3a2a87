/* prompt_cache.h - encoded prompts of a run, resolved when they come due
 * (issue 15 #6: a schedule held one full text context per line before the
 * first frame; 200k lines of the tiny model took 866 MB, a 1000-line schedule
 * at real size ~8 GiB). The cache keeps at most `cap` distinct contexts (an
 * embeds name or a text), least recently used out first, so memory does not
 * grow with the schedule's length; a schedule that alternates a few prompts
 * resolves each once.
 */
#ifndef SK_LIVE_PROMPT_CACHE_H
#define SK_LIVE_PROMPT_CACHE_H

#include <stdint.h>

#include "runtime/live/prompts.h"

#define GEN_PROMPT_CACHE_CAP 16

typedef struct {
    char *key, *text; /* exactly one (owned) */
    float *ctx;       /* [rows, cols] (owned) */
    int64_t rows, cols;
    uint64_t used;    /* tick of the last use */
} gen_prompt_cache_entry;

typedef struct {
    gen_prompt_cache_entry *e;
    int n, cap;
    uint64_t tick;
    int64_t hits, misses;
} gen_prompt_cache;

/* cap <= 0: GEN_PROMPT_CACHE_CAP. */
sk_status gen_prompt_cache_init(gen_prompt_cache *c, int cap);
void gen_prompt_cache_free(gen_prompt_cache *c);

/* Number of distinct prompts (by embeds name / text) in l. */
int gen_prompt_distinct(const gen_prompt_list *l);

/* Fills p->ctx (a copy p owns; gen_prompt_free releases it) from the cache,
 * or resolves it (gen_prompt_resolve: the embeds file or the encoder) and
 * keeps a copy. */
sk_status gen_prompt_cache_resolve(gen_prompt_cache *c, gen_prompt *p, const sk_st_file *emb,
                                   gen_text *text);

/* Resolves every distinct prompt of l into the cache (while it has room),
 * without keeping a context per line. Returns the count not cached in *left. */
sk_status gen_prompt_cache_warm(gen_prompt_cache *c, const gen_prompt_list *l,
                                const sk_st_file *emb, gen_text *text, int *left);

/* gen_prompt_fit on every cached context (the DiT's text_dim and text_len). */
sk_status gen_prompt_cache_fit(gen_prompt_cache *c, const sk_dit_config *cfg);

/* Checks a prompt without reading it: an embeds name is in the file with a
 * [L, cols] shape (*cols set), a text needs the encoder. Errors name the line. */
sk_status gen_prompt_check(const gen_prompt *p, const sk_st_file *emb, int have_encoder,
                           int64_t *cols);

#endif
