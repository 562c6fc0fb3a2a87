/* fuzz_config_json.c - libFuzzer target for a DiT config.json
 * (sk_dit_config_from_json, through the strict JSON reader: one value, no key
 * twice) and the strict reader itself. An accepted config must pass the
 * config's own validation (positive sizes, heads x head_dim == dim, ...).
 * Run: ./fuzz_config_json -max_total_time=30 corpus tests/fuzz/corpus_config_json */
#include "fuzz_common.h"

#include <cjson/cJSON.h>

#include "dit/config.h"
#include "runtime/io/json_strict.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 << 16) return 0;
    char *s = fz_str(data, size);
    sk_dit_config c;
    if (sk_dit_config_from_json(s, "fuzz", &c) == SK_OK) {
        if (c.dim <= 0 || c.num_heads <= 0 || c.head_dim <= 0 || c.num_layers <= 0 ||
            c.num_heads * c.head_dim != c.dim)
            __builtin_trap();
    } else if (!strstr(sk_error_message(), "fuzz")) {
        __builtin_trap(); /* messages name the file */
    }
    cJSON *j = NULL;
    if (sk_json_parse_strict((const char *)data, size, "fuzz", &j) == SK_OK) {
        char *t = cJSON_PrintUnformatted(j); /* round trip: still one strict value */
        cJSON *k = NULL;
        if (t && sk_json_parse_strict(t, (size_t)-1, "again", &k) != SK_OK) __builtin_trap();
        cJSON_Delete(k);
        free(t);
    } else if (j) {
        __builtin_trap();
    }
    cJSON_Delete(j);
    free(s);
    return 0;
}
