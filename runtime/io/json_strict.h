/* json_strict.h - cJSON with the two checks every sinkstream JSON reader
 * needs (issue 15 #8): exactly one value (no trailing text after it but
 * whitespace), and no object with the same key twice (cJSON keeps both and
 * lookups see the first, so a second "control-bind" or "dim" would hide from
 * whoever reads the file). Used for model.json, config.json, the --prompts
 * lines and the HTTP API's bodies. */
#ifndef SK_IO_JSON_STRICT_H
#define SK_IO_JSON_STRICT_H

#include <stddef.h>

#include "runtime/core/status.h"

typedef struct cJSON cJSON;

/* Parses text[0..len) (len (size_t)-1: up to the NUL). On error *out is NULL
 * and the message starts with `what`: "what: not valid JSON (near '...')",
 * "what: text after the JSON value (near '...')", "what: key \"k\" appears
 * twice in one object". */
sk_status sk_json_parse_strict(const char *text, size_t len, const char *what, cJSON **out);

#endif
