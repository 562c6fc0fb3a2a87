/* tokenizer.h - the umT5 tokenizer (SentencePiece) and Wan's tokenization.
 *
 * sk_tokenizer wraps libsentencepiece (text/tokenizer_spm.cpp, built when
 * pkg-config finds `sentencepiece`; without it every load returns
 * SK_E_UNSUPPORTED). Special ids (pad, eos, unk) are read from the model.
 *
 * sk_tokenize_wan is what Wan's HuggingfaceTokenizer(clean='whitespace',
 * seq_len=text_len) does: clean the prompt (prompt_clean.h), encode, keep at
 * most text_len-1 pieces, append EOS, right-pad with pad to text_len. The real
 * length (pieces + EOS, what Wan's mask sums to) is returned in *len.
 * Known difference: Wan runs the HF *fast* tokenizer, which matches literal
 * "</s>" / "<extra_id_N>" in the text as special tokens; SentencePiece encodes
 * them as plain text.
 */
#ifndef SK_TEXT_TOKENIZER_H
#define SK_TEXT_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "runtime/core/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sk_tokenizer sk_tokenizer;

/* Loads a SentencePiece model file (spiece.model), or <path>/spiece.model when
 * path is a folder (google/umt5-xxl/ as Wan ships it). */
sk_status sk_tokenizer_load(const char *path, sk_tokenizer **out);
/* Loads a serialized SentencePiece model from memory (e.g. the `spiece_model`
 * u8 tensor of ComfyUI-format umT5 files); label names it in messages. */
sk_status sk_tokenizer_load_blob(const void *data, size_t size, const char *label,
                                 sk_tokenizer **out);
void sk_tokenizer_free(sk_tokenizer **t); /* accepts NULL; NULLs the pointer */

/* Raw SentencePiece ids of `text` (no cleaning, no EOS): *ids malloc'd (free()),
 * *n entries (may be 0; *ids is then still a valid pointer). */
sk_status sk_tokenizer_encode(const sk_tokenizer *t, const char *text, int32_t **ids, size_t *n);

int32_t sk_tokenizer_pad_id(const sk_tokenizer *t);
int32_t sk_tokenizer_eos_id(const sk_tokenizer *t);
int32_t sk_tokenizer_unk_id(const sk_tokenizer *t);
int64_t sk_tokenizer_vocab_size(const sk_tokenizer *t);
/* The piece text of id, or NULL when out of range. Valid while t lives. */
const char *sk_tokenizer_piece(const sk_tokenizer *t, int32_t id);
/* Path or label the tokenizer was loaded from. */
const char *sk_tokenizer_source(const sk_tokenizer *t);

/* Wan tokenization (see above): ids[text_len] filled, *len = real length
 * (1..text_len). text_len >= 1. */
sk_status sk_tokenize_wan(const sk_tokenizer *t, const char *prompt, int text_len, int32_t *ids,
                          int *len);

#ifdef __cplusplus
}
#endif
#endif
