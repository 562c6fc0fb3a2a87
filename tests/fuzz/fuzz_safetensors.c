/* fuzz_safetensors.c - libFuzzer target for the safetensors parser.
 *
 * Feeds arbitrary bytes to sk_st_parse (the same validation sk_st_open runs
 * on a mapped file). When a file is accepted, touches every byte of every
 * tensor, every name and metadata string, looks each tensor up by name and
 * converts the float ones to f32: any span or string the validator let
 * through that is not really inside the buffer shows up under ASan.
 * Build: CC=clang cmake -DSK_FUZZ=ON ... --target fuzz_safetensors
 * Run:   ./fuzz_safetensors -max_total_time=60 corpus tests/fuzz/corpus_safetensors
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/io/safetensors.h"

/* With SK_FUZZ every library is built with -fsanitize=fuzzer-no-link,address,
 * so the parser linked from sk_runtime is instrumented for coverage and ASan. */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A private copy with no slack after it, so reads past the end trip ASan. */
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf) return 0;
    if (size) memcpy(buf, data, size);
    sk_st_file *f = NULL;
    if (sk_st_parse(buf, size, "fuzz", &f) != SK_OK) {
        /* Failure must leave a message and no file. */
        if (f != NULL || sk_error_message()[0] == 0) __builtin_trap();
        free(buf);
        return 0;
    }
    volatile unsigned sum = 0;
    for (int i = 0; i < f->n_tensors; i++) {
        const sk_st_tensor *t = &f->tensors[i];
        const uint8_t *p = t->data;
        for (size_t k = 0; k < t->nbytes; k++) sum += p[k];
        sum += (unsigned)strlen(t->name);
        if (sk_st_find(f, t->name) == NULL) __builtin_trap(); /* every name is findable */
        if (t->ndim < 0 || t->ndim > SK_MAX_DIMS) __builtin_trap();
        uint64_t n = 1;
        for (int d = 0; d < t->ndim; d++) n *= (uint64_t)t->shape[d];
        if (n * sk_dtype_size(t->dtype) != t->nbytes) __builtin_trap();
        if (p < buf + 8 || p + t->nbytes > buf + size) __builtin_trap();
        if (sk_dtype_is_float(t->dtype) && t->nbytes <= (1u << 20)) {
            float *x = NULL;
            if (sk_st_read_f32(f, t->name, 0, NULL, &x, NULL) == SK_OK) {
                size_t m = t->nbytes / sk_dtype_size(t->dtype);
                for (size_t k = 0; k < m; k++) sum += x[k] == x[k];
                free(x);
            }
        }
    }
    for (int i = 0; i < f->n_meta; i++) {
        sum += (unsigned)strlen(f->meta_keys[i]) + (unsigned)strlen(f->meta_values[i]);
        if (sk_st_meta(f, f->meta_keys[i]) == NULL) __builtin_trap();
    }
    (void)sum;
    sk_st_close(&f);
    free(buf);
    return 0;
}
