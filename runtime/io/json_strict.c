/* json_strict.c - see json_strict.h. */
#include "runtime/io/json_strict.h"

#include <cjson/cJSON.h>
#include <string.h>

/* The first key that appears twice in one object of the tree, or NULL.
 * Quadratic per object: the files read this way are small (model.json,
 * config.json, a schedule line, a request body of at most 16 MiB whose
 * objects have a few keys; a body with huge objects is refused earlier by
 * the body limit). Depth is bounded by cJSON's nesting limit. */
static const char *dup_key(const cJSON *j)
{
    for (const cJSON *a = j ? j->child : NULL; a; a = a->next) {
        if (cJSON_IsObject(j))
            for (const cJSON *b = a->next; b; b = b->next)
                if (a->string && b->string && !strcmp(a->string, b->string)) return a->string;
        const char *d = dup_key(a);
        if (d) return d;
    }
    return NULL;
}

sk_status sk_json_parse_strict(const char *text, size_t len, const char *what, cJSON **out)
{
    *out = NULL;
    SK_CHECK(text, SK_E_INVALID_ARG, "%s: no text", what);
    if (len == (size_t)-1) len = strlen(text);
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!j) {
        const char *e = cJSON_GetErrorPtr();
        int n = e && e >= text && e < text + len ? (int)(text + len - e) : 0;
        return SK_ERR(SK_E_FORMAT, "%s: not valid JSON (near '%.*s')", what, n > 40 ? 40 : n,
                      n ? e : "");
    }
    const char *p = end ? end : text + len;
    while (p < text + len && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')) p++;
    if (p < text + len) {
        int n = (int)(text + len - p);
        cJSON_Delete(j);
        return SK_ERR(SK_E_FORMAT, "%s: text after the JSON value (near '%.*s')", what,
                      n > 40 ? 40 : n, p);
    }
    const char *d = dup_key(j);
    if (d) {
        sk_status st = SK_ERR(SK_E_FORMAT, "%s: key \"%.80s\" appears twice in one object", what, d);
        cJSON_Delete(j);
        return st;
    }
    *out = j;
    return SK_OK;
}
