/* text_encoder.h - prompt -> Wan context [text_len, dim]: tokenizer + umT5,
 * with a small LRU cache keyed by the prompt text and optional offload.
 *
 * A prompt seen before (same text, same encoder) is answered from the cache
 * without running the encoder. With offload set, the encoder weights are freed
 * after every encode and loaded again from the same file when a new prompt
 * needs them (the tokenizer, config and cache stay).
 *
 * Usage:
 *   sk_text_opts o = {.encoder_path = "umt5.safetensors", .tokenizer_path = "spiece.model"};
 *   sk_text_encoder *te;  SK_TRY(sk_text_encoder_create(be, &o, &te));
 *   float *ctx = malloc(rows * dim * 4);   // sk_text_encoder_shape(te, &rows, &dim)
 *   SK_TRY(sk_text_encode(te, "a red fox", ctx, &len));
 */
#ifndef SK_TEXT_TEXT_ENCODER_H
#define SK_TEXT_TEXT_ENCODER_H

#include <stdint.h>

#include "runtime/core/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    const char *encoder_path;   /* umT5 safetensors (Wan or HF names)                   */
    const char *tokenizer_path; /* spiece.model; NULL: the `spiece_model` tensor of the
                                   encoder file (ComfyUI format)                        */
    const char *config_path;    /* optional config.json for the encoder                 */
    int text_len;               /* rows of the context; 0: the encoder's (Wan: 512)     */
    int offload;                /* free the encoder weights after each encode           */
    int cache_entries;          /* LRU size; 0: default (8); < 0: no cache              */
} sk_text_opts;

typedef struct sk_text_encoder sk_text_encoder;

/* Loads the tokenizer and the encoder (paths are copied). */
sk_status sk_text_encoder_create(sk_backend *be, const sk_text_opts *opts, sk_text_encoder **out);
void sk_text_encoder_free(sk_text_encoder **te); /* accepts NULL; NULLs the pointer */

/* Context shape: rows = text_len, dim = the encoder's model dim. */
void sk_text_encoder_shape(const sk_text_encoder *te, int64_t *rows, int64_t *dim);

/* Encodes prompt into context (host f32, rows*dim values, rows past the real
 * length zero, as Wan). *len (may be NULL) gets the real token count incl. EOS;
 * ids (may be NULL) gets the rows token ids (padded). */
sk_status sk_text_encode(sk_text_encoder *te, const char *prompt, float *context, int *len,
                         int32_t *ids);

/* Frees the encoder weights now (the next uncached prompt reloads them). */
void sk_text_encoder_offload(sk_text_encoder *te);

/* Counters for tests and logs. */
uint64_t sk_text_encoder_runs(const sk_text_encoder *te);   /* encoder forwards so far */
uint64_t sk_text_encoder_hits(const sk_text_encoder *te);   /* cache hits so far       */
uint64_t sk_text_encoder_loads(const sk_text_encoder *te);  /* weight loads so far     */
int sk_text_encoder_resident(const sk_text_encoder *te);    /* weights loaded now?     */

#ifdef __cplusplus
}
#endif
#endif
