/* tokenize_wan.c - Wan's tokenization: clean, encode, truncate + EOS, pad
 * (see tokenizer.h). */
#include "tokenizer.h"

#include <stdlib.h>

#include "prompt_clean.h"

sk_status sk_tokenize_wan(const sk_tokenizer *t, const char *prompt, int text_len, int32_t *ids,
                          int *len)
{
    SK_CHECK(t && prompt && ids && len, SK_E_INVALID_ARG, "tokenize: NULL argument");
    SK_CHECK(text_len >= 1, SK_E_INVALID_ARG,
             "tokenize: text_len %d; expected >= 1 (Wan uses 512)", text_len);
    char *clean = NULL;
    SK_TRY(sk_prompt_clean(prompt, &clean));
    int32_t *raw = NULL;
    size_t n = 0;
    sk_status st = sk_tokenizer_encode(t, clean, &raw, &n);
    free(clean);
    if (st != SK_OK) return st;
    /* HF truncation with add_special_tokens: text_len-1 pieces, then EOS */
    size_t keep = n < (size_t)(text_len - 1) ? n : (size_t)(text_len - 1);
    for (size_t i = 0; i < keep; i++) ids[i] = raw[i];
    ids[keep] = sk_tokenizer_eos_id(t);
    for (size_t i = keep + 1; i < (size_t)text_len; i++) ids[i] = sk_tokenizer_pad_id(t);
    *len = (int)keep + 1;
    free(raw);
    return SK_OK;
}
