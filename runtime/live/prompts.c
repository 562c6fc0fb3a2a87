/* prompts.c - see prompts.h. */
#include "runtime/live/prompts.h"
#include "runtime/engine/device.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/core/log.h"
#include "runtime/io/json_strict.h"

void gen_prompt_free(gen_prompt *p)
{
    if (!p) return;
    free(p->key);
    free(p->text);
    free(p->ctx);
    memset(p, 0, sizeof *p);
}

void gen_prompt_list_free(gen_prompt_list *l)
{
    for (int i = 0; i < l->n; i++) gen_prompt_free(&l->v[i]);
    free(l->v);
    memset(l, 0, sizeof *l);
}

sk_status gen_prompt_list_take(gen_prompt_list *l, gen_prompt *p)
{
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 8;
        gen_prompt *v = realloc(l->v, (size_t)cap * sizeof *v);
        SK_CHECK(v, SK_E_OOM, "prompts: out of memory");
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = *p;
    memset(p, 0, sizeof *p);
    return SK_OK;
}

sk_status gen_prompt_list_add(gen_prompt_list *l, int64_t frame, int line, const char *key,
                              const char *text)
{
    SK_CHECK(!!key != !!text, SK_E_INTERNAL, "prompt: exactly one of key and text");
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 8;
        gen_prompt *v = realloc(l->v, (size_t)cap * sizeof *v);
        SK_CHECK(v, SK_E_OOM, "prompts: out of memory");
        l->v = v;
        l->cap = cap;
    }
    gen_prompt *p = &l->v[l->n];
    memset(p, 0, sizeof *p);
    p->frame = p->raw_frame = frame;
    p->line = line;
    if (key) p->key = strdup(key);
    if (text) p->text = strdup(text);
    SK_CHECK(p->key || p->text, SK_E_OOM, "prompts: out of memory");
    l->n++;
    return SK_OK;
}

/* The latent frame holding the video frame shown at `at` seconds: the Wan VAE
 * makes video frame 0 from latent 0 and video frames 4k-3..4k from latent k. */
static int64_t frame_of_time(double at, int fps)
{
    int64_t v = (int64_t)floor(at * fps + 0.5);
    return (v + 3) / 4;
}

sk_status gen_prompts_parse(const char *path, int64_t frames, int64_t chunk, int fps,
                            gen_prompt_list *out, int *first_initial)
{
    *first_initial = 0;
    FILE *f = fopen(path, "r");
    SK_CHECK(f, SK_E_IO, "--prompts '%s': cannot open (%s)", path, strerror(errno));
    if (chunk < 1) chunk = 1;
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int lineno = 0, seen = 0, first = out->n;
    int64_t last_raw = -1;
    sk_status st = SK_OK;
    while (st == SK_OK && (len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        char *p = line;
        while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') p++;
        if (*p == 0 || *p == '#') continue;
#define BAD(...) do { char m_[512]; snprintf(m_, sizeof m_, __VA_ARGS__); \
                      st = SK_ERR(SK_E_FORMAT, "--prompts '%s' line %d: %s", path, lineno, m_); \
                      goto next; } while (0)
        cJSON *j = NULL;
        if (sk_json_parse_strict(p, (size_t)(len - (p - line)), "JSON", &j) != SK_OK &&
            !strstr(sk_error_message(), "not valid JSON"))
            BAD("%s", sk_error_message()); /* trailing text, a key twice */
        if (!j || !cJSON_IsObject(j))
            BAD("not a JSON object (expected e.g. {\"frame\": 9, \"embeds\": \"context.1\"} or "
                "{\"at\": 2.5, \"prompt\": \"...\"})");
        const cJSON *fr = NULL, *at = NULL, *em = NULL, *tx = NULL, *cu = NULL, *it;
        cJSON_ArrayForEach(it, j) {
            if (!strcmp(it->string, "frame")) fr = it;
            else if (!strcmp(it->string, "at")) at = it;
            else if (!strcmp(it->string, "embeds")) em = it;
            else if (!strcmp(it->string, "prompt")) tx = it;
            else if (!strcmp(it->string, "cut")) cu = it;
            else if (!strcmp(it->string, "wall_s") || !strcmp(it->string, "source")) {
            } /* --timeline-out's record of when and from where: not needed to replay */
            else BAD("unknown key \"%s\" (keys: frame or at, embeds or prompt, and cut)",
                     it->string);
        }
        if (fr && at) BAD("give \"frame\" or \"at\", not both");
        int64_t raw = -1;
        if (fr) {
            if (!cJSON_IsNumber(fr) || fr->valuedouble < 0 || fr->valuedouble > 1e12 ||
                fr->valuedouble != floor(fr->valuedouble))
                BAD("\"frame\" must be an integer latent frame >= 0");
            raw = (int64_t)fr->valuedouble;
        } else if (at) {
            if (!cJSON_IsNumber(at) || !(at->valuedouble >= 0) || at->valuedouble > 1e9)
                BAD("\"at\" must be a number of seconds >= 0");
            raw = frame_of_time(at->valuedouble, fps);
        } else if (seen > 0) {
            BAD("needs \"frame\" (latent frame) or \"at\" (seconds of video at %d fps); only the "
                "first line may leave the time out", fps);
        } else {
            raw = 0;
        }
        if (!!cJSON_IsString(em) == !!cJSON_IsString(tx) || (em && !cJSON_IsString(em)) ||
            (tx && !cJSON_IsString(tx)))
            BAD("needs exactly one of \"embeds\" (a tensor of --text-embeds) and \"prompt\" "
                "(text for --text-encoder), as a string");
        if (em && !*em->valuestring) BAD("\"embeds\" is empty");
        if (tx && !*tx->valuestring) BAD("\"prompt\" is empty");
        if (cu && !cJSON_IsBool(cu)) BAD("\"cut\" must be true or false");
        /* a shot cut (LongLive 2.0): "cut": true, or a text starting with the scene-cut prefix */
        const int cut = cJSON_IsTrue(cu) ||
                        (tx && !strncmp(tx->valuestring, GEN_SCENE_CUT_PREFIX,
                                        strlen(GEN_SCENE_CUT_PREFIX)));
        if (cut && raw % chunk != 0)
            BAD("a shot cut (\"cut\": true or a prompt starting \"%s\") must start a chunk: "
                "frame %lld is not a multiple of --chunk %lld (use frame %lld)",
                GEN_SCENE_CUT_PREFIX, (long long)raw, (long long)chunk,
                (long long)((raw + chunk - 1) / chunk * chunk));
        if (frames > 0 && raw >= frames)
            BAD("frame %lld is past the end of the video (latent frames 0..%lld)%s",
                (long long)raw, (long long)frames - 1, at ? " (from \"at\")" : "");
        if (raw < last_raw)
            BAD("times must not decrease (frame %lld after frame %lld)", (long long)raw,
                (long long)last_raw);
        {
            int64_t eff = (raw + chunk - 1) / chunk * chunk;
            if (out->n > first && eff == out->v[out->n - 1].frame)
                SK_LOGW("--prompts '%s' line %d replaces line %d: both take effect at the chunk "
                        "starting at latent frame %lld", path, lineno, out->v[out->n - 1].line,
                        (long long)eff);
            if (frames > 0 && eff >= frames)
                SK_LOGW("--prompts '%s' line %d: frame %lld rounds up to the chunk at %lld, past "
                        "the last frame %lld: it never applies", path, lineno, (long long)raw,
                        (long long)eff, (long long)frames - 1);
            st = gen_prompt_list_add(out, eff, lineno, em ? em->valuestring : NULL,
                                     tx ? tx->valuestring : NULL);
            if (st == SK_OK) out->v[out->n - 1].raw_frame = raw;
            if (st == SK_OK) out->v[out->n - 1].cut = cut && raw > 0;
            if (st == SK_OK && seen == 0 && raw == 0) *first_initial = 1;
        }
        last_raw = raw;
        seen++;
    next:
        cJSON_Delete(j);
#undef BAD
    }
    free(line);
    fclose(f);
    if (st == SK_OK && seen == 0)
        st = SK_ERR(SK_E_FORMAT, "--prompts '%s': no prompt in the file", path);
    return st;
}

sk_status gen_text_open(gen_text *t, int cuda, const char *encoder, const char *tokenizer,
                        const char *config, int offload)
{
    memset(t, 0, sizeof *t);
    /* f32 activations: the encoder runs once per prompt (as Self-Forcing runs it) */
    SK_TRY(sk_backend_create(cuda ? "cuda" : "cpu", SK_DTYPE_F32, &t->be));
    sk_text_opts to = {.encoder_path = encoder, .tokenizer_path = tokenizer,
                       .config_path = config, .offload = offload};
    sk_status st = sk_text_encoder_create(t->be, &to, &t->te);
    if (st != SK_OK) gen_text_close(t);
    return st;
}

void gen_text_close(gen_text *t)
{
    sk_text_encoder_free(&t->te);
    sk_backend_free_(&t->be);
}

sk_status gen_prompt_resolve(gen_prompt *p, const sk_st_file *emb, gen_text *text)
{
    if (p->ctx) return SK_OK;
    if (p->key) {
        SK_CHECK(emb, SK_E_INVALID_ARG, "prompt embeds '%s' needs --text-embeds FILE", p->key);
        const sk_st_tensor *et = sk_st_find(emb, p->key);
        SK_CHECK(et, SK_E_FORMAT, "--text-embeds '%s': no tensor '%s' (expected [L, text_dim]; "
                 "choose another with --embeds-key)", emb->path, p->key);
        char b[96];
        SK_CHECK(et->ndim == 2 || (et->ndim == 3 && et->shape[0] == 1), SK_E_SHAPE,
                 "--text-embeds '%s': tensor '%s' has shape %s; expected [L, text_dim]",
                 emb->path, p->key, sk_shape_str_n(et->ndim, et->shape, b, sizeof b));
        p->rows = et->shape[et->ndim - 2];
        p->cols = et->shape[et->ndim - 1];
        return sk_st_read_f32(emb, p->key, 0, NULL, &p->ctx, NULL);
    }
    SK_CHECK(text && text->te, SK_E_INVALID_ARG, "text prompt '%.40s' needs --text-encoder FILE",
             p->text);
    int64_t tr = 0, tc = 0;
    sk_text_encoder_shape(text->te, &tr, &tc);
    float *ctx = malloc((size_t)(tr * tc) * sizeof(float));
    SK_CHECK(ctx, SK_E_OOM, "out of host memory for a [%lld, %lld] context", (long long)tr,
             (long long)tc);
    int len = 0;
    sk_status st = sk_text_encode(text->te, p->text, ctx, &len, NULL);
    if (st != SK_OK) {
        free(ctx);
        return st;
    }
    p->ctx = ctx;
    p->rows = tr;
    p->cols = tc;
    if (p->line) /* a --prompts line: its frame is known now; a live prompt's is not */
        SK_LOGI("prompt (--prompts line %d, from latent_frame %lld): %d tokens: %.60s", p->line,
                (long long)p->frame, len, p->text);
    else
        SK_LOGI("prompt encoded: %d tokens: %.60s", len, p->text);
    return SK_OK;
}

sk_status gen_prompt_fit(gen_prompt *p, const sk_dit_config *cfg)
{
    /* rows past the DiT's text_len may be dropped when they are zero padding (an encoder
     * padding to 512 for a model of shorter text_len) */
    int64_t keep = p->rows;
    while (keep > cfg->text_len) {
        const float *r = p->ctx + (keep - 1) * p->cols;
        int64_t c = 0;
        while (c < p->cols && r[c] == 0.0f) c++;
        if (c < p->cols) break;
        keep--;
    }
    if (keep < p->rows) {
        SK_LOGD("prompt at frame %lld: %lld zero padding rows dropped to fit text_len %lld",
                (long long)p->frame, (long long)(p->rows - keep), (long long)cfg->text_len);
        p->rows = keep;
    }
    char d[96];
    SK_CHECK(p->cols == cfg->text_dim && p->rows <= cfg->text_len, SK_E_SHAPE,
             "prompt %s is [%lld, %lld]; the model takes up to %lld rows of %lld",
             gen_prompt_desc(p, d, sizeof d), (long long)p->rows, (long long)p->cols,
             (long long)cfg->text_len, (long long)cfg->text_dim);
    return SK_OK;
}

const char *gen_prompt_desc(const gen_prompt *p, char *buf, int cap)
{
    if (p->key) snprintf(buf, (size_t)cap, "embeds '%s'", p->key);
    else snprintf(buf, (size_t)cap, "text '%.60s%s'", p->text ? p->text : "",
                  p->text && strlen(p->text) > 60 ? "..." : "");
    return buf;
}
