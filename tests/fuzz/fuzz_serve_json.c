/* fuzz_serve_json.c - libFuzzer target for the request bodies of `sinkstream
 * serve` (POST /v1/sessions and POST /v1/sessions/{id}/prompt: the JSON a
 * network peer sends). The first input byte picks the parser, the rest is the
 * body. An accepted body must satisfy what the server relies on afterwards
 * (a prompt of 1..max bytes, sizes and rates in range); a refused one must
 * answer 400 with a message (success is 200). Run:
 *   ./fuzz_serve_json -max_total_time=30 corpus tests/fuzz/corpus_serve_json */
#include "fuzz_common.h"

#include "runtime/live/serve.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { MAX_PROMPT = 512 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 1 << 16) return 0;
    (void)fz_dir(); /* quiet logs */
    const char *body = (const char *)data + 1;
    const size_t n = size - 1;
    if (data[0] & 1) {
        sk_serve_prompt p;
        const int rc = sk_serve_parse_prompt(body, n, MAX_PROMPT, &p);
        if (rc == 200) {
            if (!p.prompt || !p.prompt[0] || strlen(p.prompt) > MAX_PROMPT || p.at_frame < -1 ||
                (p.cut != 0 && p.cut != 1))
                __builtin_trap();
        } else if (rc != 400 || !sk_error_message()[0]) {
            __builtin_trap();
        }
        sk_serve_prompt_free(&p);
    } else {
        sk_serve_params p;
        const int rc = sk_serve_parse_params(body, n, MAX_PROMPT, &p);
        if (rc == 200) {
            if (!p.prompt || !p.prompt[0] || strlen(p.prompt) > MAX_PROMPT || p.fps < 1 ||
                p.fps > 120 || p.width < 0 || p.height < 0 || p.width % 16 || p.height % 16 ||
                p.frames < 0)
                __builtin_trap();
        } else if (rc != 400 || !sk_error_message()[0]) {
            __builtin_trap();
        }
        sk_serve_params_free(&p);
    }
    return 0;
}
