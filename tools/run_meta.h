/* run_meta.h - how a video was made, as key/value text for its container
 * tags and PNG text chunks: prompt(s), seed, model, steps, sampler, KV
 * policy, sinkstream version (docs/OUTPUT.md "Metadata"). */
#ifndef SK_RUN_META_H
#define SK_RUN_META_H

#include <stddef.h>

#define SK_RUN_META_MAX 16

typedef struct {
    const char *kv[2 * SK_RUN_META_MAX + 1]; /* "key", "value", ..., NULL */
    char *owned[SK_RUN_META_MAX];            /* the values this struct allocated */
    int n;
} sk_run_meta;

/* Adds key = value (copied; a NULL value is skipped); 0 or -1 when full / OOM. */
int sk_run_meta_add(sk_run_meta *m, const char *key, const char *value);
/* printf-style value */
int sk_run_meta_addf(sk_run_meta *m, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void sk_run_meta_free(sk_run_meta *m);



#include <stdint.h>

#include "runtime/live/prompts.h"

/* The metadata of a generate run: the prompt list (text, or the embeds
 * tensor name, each with the latent frame it starts at), seed, model file,
 * steps / shift (the sampler), KV policy and cache, version. */
int sk_run_meta_generate(sk_run_meta *m, const gen_prompt_list *pl, int64_t seed,
                         const char *model, const char *dit, const int *steps, int nsteps, double shift,
                         const char *kv_policy, int64_t kv_sink, int64_t kv_window);
/* a random seed in [0, 2^32) from /dev/urandom (--seed -1) */
int64_t sk_random_seed(void);
#endif
