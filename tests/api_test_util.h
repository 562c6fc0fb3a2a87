/* api_test_util.h - set-up shared by the public API tests (tests/test_api*.c),
 * header-only (Criterion asserts; tests/common/ is also linked into the GPU
 * checks, which have no Criterion): an engine of the tiny DiT fixture, its
 * prompt embeddings, and a latents callback that copies into a buffer. */
#ifndef SK_API_TEST_UTIL_H
#define SK_API_TEST_UTIL_H

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "dit_test_util.h"
#include "runtime/sinkstream.h"

/* the fixture's prompt embeddings: context, context.1, ... [rows, 64] */
#define API_EMBEDS DIT_FIX "embeds.safetensors"

/* An engine (CPU) of the tiny DiT fixture, without text encoder or VAE. */
static inline sk_engine *api_open_tiny(void)
{
    sk_engine_params ep = sk_engine_params_default();
    ep.dit = DIT_FIX "dit_tiny.safetensors";
    ep.dit_config = DIT_FIX "config.json";
    sk_engine *e = NULL;
    cr_assert_eq(sk_engine_open(&ep, &e), SK_OK, "engine: %s", sk_last_error());
    return e;
}

/* The embeddings tensor `name` of API_EMBEDS (malloc'd, caller frees): [*rows, *cols]. */
static inline float *api_embeds(const char *name, int64_t *rows, int64_t *cols)
{
    sk_st_file *f;
    dt_ok(sk_st_open(API_EMBEDS, &f), "embeds");
    const sk_st_tensor *t = sk_st_find(f, name);
    cr_assert(t, "no %s in %s", name, API_EMBEDS);
    *rows = t->shape[t->ndim - 2];
    *cols = t->shape[t->ndim - 1];
    size_t n;
    float *v = dt_read(f, name, &n);
    sk_st_close(&f);
    return v;
}

/* sk_session_params.on_latents with user = a float buffer of every latent frame
 * [frames, c, h, w]: each chunk lands at its first frame. */
static inline void api_copy_latents(void *user, const float *l, int64_t n, int64_t c, int64_t h,
                                    int64_t w, int64_t f0)
{
    memcpy((float *)user + f0 * c * h * w, l, (size_t)(n * c * h * w) * sizeof *l);
}

#endif
