/* fuzz_model_json.c - libFuzzer target for a model directory's model.json
 * (sk_model_dir_open: format, version, family, files inside the directory,
 * "generate"/"fallback" objects) and what generate does with its defaults
 * (sk_model_dir_value_text, the option allowlist). The directory holds a
 * small dit.safetensors and vae.safetensors so that "files" can be valid.
 * Run: ./fuzz_model_json -max_total_time=30 corpus tests/fuzz/corpus_model_json */
#include "fuzz_common.h"

#include <cjson/cJSON.h>

#include "runtime/engine/model_dir.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    if (!ready) {
        static const uint8_t st[] = {2, 0, 0, 0, 0, 0, 0, 0, '{', '}'};
        fz_write("dit.safetensors", st, sizeof st);
        fz_write("vae.safetensors", st, sizeof st);
        ready = 1;
    }
    if (size > 1 << 16) return 0;
    fz_write("model.json", data, size);
    sk_model_dir *m = NULL;
    if (sk_model_dir_open(fz_dir(), &m) != SK_OK) {
        if (m || !sk_error_message()[0]) __builtin_trap();
        return 0;
    }
    if (!m->dit || strncmp(m->dit, fz_dir(), strlen(fz_dir()))) __builtin_trap();
    for (const cJSON *g = m->generate ? m->generate->child : NULL; g; g = g->next) {
        char v[512];
        if (sk_model_dir_value_text(g, v, sizeof v) != 0) __builtin_trap(); /* checked at open */
        if (strlen(v) >= sizeof v) __builtin_trap();
        (void)sk_model_dir_option_allowed(g->string);
    }
    sk_model_dir_free(&m);
    if (m) __builtin_trap();
    return 0;
}
