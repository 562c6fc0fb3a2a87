/* fuzz_prompts.c - libFuzzer target for the --prompts schedule parser
 * (gen_prompts_parse: JSON lines, times, keys) and the checks a parsed line
 * goes through before the run (gen_prompt_check against an embeds file, the
 * prompt cache's distinct count). A file accepted must give lines whose
 * frames are chunk boundaries in order, each with exactly one of key/text;
 * a file refused must leave a message that names the file.
 * Run: ./fuzz_prompts -max_total_time=30 corpus tests/fuzz/corpus_prompts */
#include "fuzz_common.h"

#include "runtime/core/status.h"
#include "runtime/live/prompt_cache.h"
#include "runtime/live/prompts.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 << 16) return 0;
    const char *p = fz_write("p.jsonl", data, size);
    /* the frame bound and chunk come from the first bytes, so both paths are seen */
    const int64_t frames = size ? (data[0] & 1 ? 0 : 64) : 0;
    const int64_t chunk = size > 1 ? 1 + data[1] % 5 : 3;
    gen_prompt_list l = {0};
    int first = -1;
    sk_status st = gen_prompts_parse(p, frames, chunk, 16, &l, &first);
    if (st != SK_OK) {
        if (!strstr(sk_error_message(), "--prompts '")) __builtin_trap();
        gen_prompt_list_free(&l);
        return 0;
    }
    if (l.n < 1 || (first != 0 && first != 1)) __builtin_trap();
    for (int i = 0; i < l.n; i++) {
        const gen_prompt *g = &l.v[i];
        if (!!g->key == !!g->text) __builtin_trap();
        if (g->frame % chunk || g->frame < g->raw_frame || g->line < 1) __builtin_trap();
        if (i && (g->raw_frame < l.v[i - 1].raw_frame || g->line <= l.v[i - 1].line))
            __builtin_trap();
        int64_t cols = 0;
        (void)gen_prompt_check(g, NULL, 0, &cols); /* no embeds file, no encoder: an error */
        char d[96];
        (void)gen_prompt_desc(g, d, sizeof d);
    }
    if (gen_prompt_distinct(&l) > l.n) __builtin_trap();
    gen_prompt_list_free(&l);
    return 0;
}
