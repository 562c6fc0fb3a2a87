/* session_prompts.c - deferred prompts of a session (sinkstream.h:
 * sk_session_queue_prompt_deferred; issue 15 #6). A schedule of many lines
 * queues each line's name or text only; the context is read from the
 * embeddings file or encoded when the line comes due, through a cache of
 * SK_PROMPT_CACHE_CAP distinct contexts (runtime/live/prompt_cache.h), so
 * memory follows the number of distinct prompts in use, not the schedule's
 * length. Every front end (the CLI, serve, the Python binding) gets this by
 * calling the API.
 */
#include <stdlib.h>
#include <string.h>

#include "runtime/engine/engine_impl.h"

/* Opens the embeddings file deferred prompts name (once per session). */
static sk_status sched_embeds(sk_session *s, const char *path)
{
    if (s->sched_emb) {
        SK_CHECK(!strcmp(s->sched_emb_path, path), SK_E_INVALID_ARG, "queue prompt: embeddings "
                 "file '%s': this session's deferred prompts already name '%s' (one file per "
                 "session)", path, s->sched_emb_path);
        return SK_OK;
    }
    s->sched_emb_path = strdup(path);
    SK_CHECK(s->sched_emb_path, SK_E_OOM, "queue prompt: out of memory");
    sk_status st = sk_st_open(path, &s->sched_emb);
    if (st != SK_OK) {
        free(s->sched_emb_path);
        s->sched_emb_path = NULL;
    }
    return st;
}

sk_status sk_session_queue_prompt_deferred(sk_session *s, const char *text,
                                           const char *embeds_file, const char *embeds_name,
                                           int64_t frame, sk_switch_mode mode)
{
    SK_API_SESSION(s);
    SK_TRY(sk_session_check_queue_args(s, frame, mode)); /* frame, mode, shot cuts */
    SK_CHECK(!text != !embeds_name, SK_E_INVALID_ARG, "queue prompt: give exactly one of text "
             "and embeds_name (got %s)", text ? "both" : "neither");
    SK_CHECK(!text || *text, SK_E_INVALID_ARG, "queue prompt: the text is empty");
    SK_CHECK(!embeds_name || (embeds_file && *embeds_file), SK_E_INVALID_ARG, "queue prompt: "
             "embeds '%s' needs the embeddings file (embeds_file)", embeds_name);
    SK_CHECK(s->e->m, SK_E_INVALID_ARG, "queue prompt: the engine has no DiT (a decode-only "
             "session takes latents: sk_session_push_latents)");
    if (embeds_name) SK_TRY(sched_embeds(s, embeds_file));
    if (!s->pcache.e) SK_TRY(gen_prompt_cache_init(&s->pcache, SK_PROMPT_CACHE_CAP));
    gen_prompt gp;
    memset(&gp, 0, sizeof gp);
    gp.frame = gp.raw_frame = frame;
    gp.key = embeds_name ? strdup(embeds_name) : NULL;
    gp.text = text ? strdup(text) : NULL;
    if (!gp.key && !gp.text) return SK_ERR(SK_E_OOM, "queue prompt: out of memory");
    /* checked now (the name and its shape, an encoder for text), read when due */
    int64_t cols = 0;
    sk_status st = gen_prompt_check(&gp, s->sched_emb, s->e->text.te != NULL, &cols);
    if (st == SK_OK && cols && cols != s->e->m->cfg.text_dim)
        st = SK_ERR(SK_E_SHAPE, "queue prompt '%s': embeddings of width %lld; the model takes "
                    "rows of text_dim %lld (is it another model's text encoder?)", embeds_name,
                    (long long)cols, (long long)s->e->m->cfg.text_dim);
    if (st != SK_OK) {
        gen_prompt_free(&gp);
        return st;
    }
    return sk_session_queue_push(s, &gp, frame, mode, 1);
}

sk_status sk_session_resolve_due(sk_session *s, sk_queued_prompt *q)
{
    if (!q->deferred) return SK_OK;
    sk_engine *e = s->e;
    pthread_mutex_lock(&e->text_mu); /* the encoder is the engine's (one encode at a time) */
    sk_status st = gen_prompt_cache_resolve(&s->pcache, &q->p, s->sched_emb, &e->text);
    pthread_mutex_unlock(&e->text_mu);
    SK_TRY(st);
    SK_TRY(gen_prompt_fit(&q->p, &e->m->cfg));
    q->deferred = 0;
    return SK_OK;
}

void sk_session_prompts_free(sk_session *s)
{
    gen_prompt_cache_free(&s->pcache);
    sk_st_close(&s->sched_emb);
    free(s->sched_emb_path);
    s->sched_emb_path = NULL;
}
