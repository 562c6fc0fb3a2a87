/* serve_json.c - request bodies of `sinkstream serve` (serve.h): strict
 * parsing (unknown keys, wrong types and out-of-range values are 400s whose
 * message says what to send), and the SSE record format. */
#include "runtime/live/serve.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "runtime/io/json_strict.h"

void sk_serve_params_free(sk_serve_params *p)
{
    if (!p) return;
    free(p->prompt);
    free(p->rtmp);
    memset(p, 0, sizeof *p);
}

void sk_serve_prompt_free(sk_serve_prompt *p)
{
    if (!p) return;
    free(p->prompt);
    memset(p, 0, sizeof *p);
}

/* Records a 400's message; returns 400. */
static int bad(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int bad(const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    SK_ERR(SK_E_INVALID_ARG, "%s", msg);
    return 400;
}

static cJSON *parse_object(const char *body, size_t n, const char *example)
{
    if (!body || !n) {
        bad("empty body; send a JSON object such as %s", example);
        return NULL;
    }
    cJSON *j = NULL;
    if (sk_json_parse_strict(body, n, "body", &j) != SK_OK &&
        !strstr(sk_error_message(), "not valid JSON")) {
        bad("%s; send a single JSON object such as %s", sk_error_message(), example);
        return NULL; /* trailing text, a key twice (issue 15 #8) */
    }
    if (!j || !cJSON_IsObject(j)) {
        cJSON_Delete(j);
        bad("the body is not a JSON object; send e.g. %s", example);
        return NULL;
    }
    return j;
}

static int get_text(const cJSON *v, const char *key, size_t max, char **out)
{
    if (!cJSON_IsString(v)) return bad("\"%s\" must be a string", key);
    size_t n = strlen(v->valuestring);
    if (!n) return bad("\"%s\" is empty", key);
    if (n > max) {
        SK_ERR(SK_E_INVALID_ARG, "\"%s\" is %zu bytes, over the limit of %zu; shorten it", key, n,
               max);
        return 400;
    }
    *out = strdup(v->valuestring);
    if (!*out) {
        SK_ERR(SK_E_OOM, "out of memory");
        return 500;
    }
    return 0;
}

/* An integer in lo..hi. */
static int get_int(const cJSON *v, const char *key, double lo, double hi, double *out)
{
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < lo ||
        v->valuedouble > hi) {
        SK_ERR(SK_E_INVALID_ARG, "\"%s\" must be an integer in %.0f..%.0f", key, lo, hi);
        return 400;
    }
    *out = v->valuedouble;
    return 0;
}

static int get_bool(const cJSON *v, const char *key, int *out)
{
    if (!cJSON_IsBool(v)) return bad("\"%s\" must be true or false", key);
    *out = cJSON_IsTrue(v);
    return 0;
}

#define SESSION_EXAMPLE "{\"prompt\": \"a cat surfing\", \"width\": 64, \"height\": 64, \"seconds\": 3}"

int sk_serve_parse_params(const char *body, size_t n, size_t max_prompt, sk_serve_params *p)
{
    memset(p, 0, sizeof *p);
    p->fps = 16;
    p->pace = 1;
    p->live_view = 1;
    cJSON *j = parse_object(body, n, SESSION_EXAMPLE);
    if (!j) return 400;
    int rc = 0, have_seconds = 0, have_frames = 0, unbounded = 0;
    double d;
    const cJSON *it;
    cJSON_ArrayForEach(it, j) {
        const char *k = it->string;
        if (!strcmp(k, "prompt")) rc = get_text(it, k, max_prompt, &p->prompt);
        else if (!strcmp(k, "width") || !strcmp(k, "height")) {
            rc = get_int(it, k, 16, 4096, &d);
            if (!rc && ((int)d % 16)) {
                SK_ERR(SK_E_INVALID_ARG, "\"%s\" %d must be a multiple of 16 (the VAE's 8x and "
                       "the DiT's 2x2 patches)", k, (int)d);
                rc = 400;
            }
            if (!rc) *(k[0] == 'w' ? &p->width : &p->height) = (int)d;
        } else if (!strcmp(k, "seconds")) {
            if (!cJSON_IsNumber(it) || !(it->valuedouble >= 0) || it->valuedouble > 86400) {
                SK_ERR(SK_E_INVALID_ARG, "\"seconds\" must be a number in 0..86400 (0: until "
                       "the session is deleted)");
                rc = 400;
            } else {
                p->seconds = it->valuedouble;
                have_seconds = 1;
            }
        } else if (!strcmp(k, "frames")) {
            rc = get_int(it, k, 0, 1e8, &d);
            if (!rc) {
                p->frames = (int64_t)d;
                have_frames = 1;
            }
        } else if (!strcmp(k, "unbounded")) rc = get_bool(it, k, &unbounded);
        else if (!strcmp(k, "seed")) {
            rc = get_int(it, k, 0, 9007199254740991.0, &d);
            if (!rc) p->seed = (uint64_t)d;
        } else if (!strcmp(k, "fps")) {
            rc = get_int(it, k, 1, 120, &d);
            if (!rc) p->fps = (int)d;
        } else if (!strcmp(k, "pace")) rc = get_bool(it, k, &p->pace);
        else if (!strcmp(k, "record")) rc = get_bool(it, k, &p->record);
        else if (!strcmp(k, "live_view")) rc = get_bool(it, k, &p->live_view);
        else if (!strcmp(k, "paused")) rc = get_bool(it, k, &p->paused);
        else if (!strcmp(k, "kv_policy")) {
            static const char *const pol[] = {"fifo", "sink", "ema", "deep-sink", "rolling"};
            int ok = 0;
            for (size_t i = 0; cJSON_IsString(it) && i < sizeof pol / sizeof pol[0]; i++)
                if (!strcmp(it->valuestring, pol[i])) ok = 1;
            if (!ok) rc = bad("\"%s\" must be one of fifo, sink, ema, deep-sink, rolling", k);
            else snprintf(p->kv_policy, sizeof p->kv_policy, "%s", it->valuestring);
        } else if (!strcmp(k, "rtmp")) {
            rc = get_text(it, k, 2048, &p->rtmp);
            if (!rc && strncmp(p->rtmp, "rtmp://", 7) && strncmp(p->rtmp, "rtmps://", 8))
                rc = bad("\"%s\" must be an rtmp:// or rtmps:// URL", k);
        } else {
            SK_ERR(SK_E_INVALID_ARG, "unknown key \"%.60s\"; known: prompt, width, height, "
                   "seconds, frames, unbounded, seed, fps, pace, kv_policy, record, rtmp, "
                   "live_view, paused", k);
            rc = 400;
        }
        if (rc) break;
    }
    if (!rc && !p->prompt) rc = bad("\"prompt\" is missing; send e.g. %s", SESSION_EXAMPLE);
    if (!rc && have_seconds + have_frames + unbounded > 1)
        rc = bad("give one of \"seconds\", \"frames\" and \"unbounded\"");
    if (!rc && have_seconds) p->frames = (int64_t)llround(p->seconds * p->fps);
    if (!rc && have_seconds && p->seconds > 0 && p->frames < 1) p->frames = 1;
    if (!rc && !have_seconds && !have_frames && !unbounded) {
        p->seconds = 10; /* a default that ends: an unbounded stream must be asked for */
        p->frames = 10 * p->fps;
    }
    if (!rc && have_frames) p->seconds = (double)p->frames / p->fps;
    cJSON_Delete(j);
    if (rc) sk_serve_params_free(p);
    return rc ? rc : 200;
}

int sk_serve_parse_prompt(const char *body, size_t n, size_t max_prompt, sk_serve_prompt *p)
{
    memset(p, 0, sizeof *p);
    p->at_frame = -1;
    cJSON *j = parse_object(body, n, "{\"prompt\": \"a dog running\"}");
    if (!j) return 400;
    int rc = 0;
    double d;
    const cJSON *it;
    cJSON_ArrayForEach(it, j) {
        const char *k = it->string;
        if (!strcmp(k, "prompt")) rc = get_text(it, k, max_prompt, &p->prompt);
        else if (!strcmp(k, "at")) {
            if (cJSON_IsString(it) && !strcmp(it->valuestring, "now")) p->at_frame = -1;
            else {
                rc = get_int(it, k, 0, 1e12, &d);
                if (rc) rc = bad("\"at\" must be \"now\" or a video frame number >= 0");
                else p->at_frame = (int64_t)d;
            }
        } else if (!strcmp(k, "mode")) {
            if (cJSON_IsString(it) && !strcmp(it->valuestring, "switch")) p->cut = 0;
            else if (cJSON_IsString(it) && !strcmp(it->valuestring, "cut")) p->cut = 1;
            else rc = bad("\"mode\" must be \"switch\" (keep the scene, re-cache) or \"cut\" "
                          "(a new shot)");
        } else {
            SK_ERR(SK_E_INVALID_ARG, "unknown key \"%.60s\"; known: prompt, at, mode", k);
            rc = 400;
        }
        if (rc) break;
    }
    if (!rc && !p->prompt) rc = bad("\"prompt\" is missing; send e.g. {\"prompt\": \"a dog running\"}");
    cJSON_Delete(j);
    if (rc) sk_serve_prompt_free(p);
    return rc ? rc : 200;
}

sk_status sk_serve_event(sk_fanout *f, const char *type, cJSON *data)
{
    if (!f) {
        cJSON_Delete(data);
        return SK_OK;
    }
    char *js = data ? cJSON_PrintUnformatted(data) : NULL;
    cJSON_Delete(data);
    SK_CHECK(js, SK_E_OOM, "serve: out of memory formatting an event");
    size_t n = strlen(js) + strlen(type) + 32;
    char *rec = malloc(n);
    if (!rec) {
        free(js);
        return SK_ERR(SK_E_OOM, "serve: out of memory formatting an event");
    }
    int len = snprintf(rec, n, "event: %s\ndata: %s\n\n", type, js);
    free(js);
    sk_status st = sk_fanout_push(f, rec, (size_t)len, 1);
    free(rec);
    return st;
}
