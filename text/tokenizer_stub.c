/* tokenizer_stub.c - sk_tokenizer when the build has no libsentencepiece:
 * loading reports SK_E_UNSUPPORTED with what to install; the rest is inert. */
#ifndef SK_HAVE_SENTENCEPIECE
#include "tokenizer.h"

#include <stddef.h>

static sk_status no_spm(const char *what)
{
    return SK_ERR(SK_E_UNSUPPORTED,
                  "tokenizer '%s': this build has no SentencePiece support; install "
                  "libsentencepiece-dev (pkg-config 'sentencepiece') and rebuild, or pass "
                  "--text-embeds with precomputed embeddings",
                  what ? what : "(memory)");
}

sk_status sk_tokenizer_load(const char *path, sk_tokenizer **out)
{
    if (out) *out = NULL;
    return no_spm(path);
}

sk_status sk_tokenizer_load_blob(const void *data, size_t size, const char *label,
                                 sk_tokenizer **out)
{
    if (out) *out = NULL;
    return no_spm(label);
}

void sk_tokenizer_free(sk_tokenizer **t)
{
    if (t) *t = NULL;
}

sk_status sk_tokenizer_encode(const sk_tokenizer *t, const char *text, int32_t **ids, size_t *n)
{
    return no_spm(NULL);
}

int32_t sk_tokenizer_pad_id(const sk_tokenizer *t) { return -1; }
int32_t sk_tokenizer_eos_id(const sk_tokenizer *t) { return -1; }
int32_t sk_tokenizer_unk_id(const sk_tokenizer *t) { return -1; }
int64_t sk_tokenizer_vocab_size(const sk_tokenizer *t) { return 0; }
const char *sk_tokenizer_piece(const sk_tokenizer *t, int32_t id) { return NULL; }
const char *sk_tokenizer_source(const sk_tokenizer *t) { return ""; }
#else
typedef int sk_tokenizer_stub_unused_;
#endif
