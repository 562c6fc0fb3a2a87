/* prompt_clean.h - Wan's prompt cleaning before tokenization.
 *
 * Wan (wan/modules/tokenizers.py, clean='whitespace') runs
 *   ftfy.fix_text -> html.unescape twice -> strip -> regex \s+ -> ' ' -> strip
 * on every prompt. sk_prompt_clean reproduces that on UTF-8 text; see
 * prompt_clean.c for the exact subset of ftfy that is implemented and what
 * is not (mojibake repair, NFC).
 */
#ifndef SK_TEXT_PROMPT_CLEAN_H
#define SK_TEXT_PROMPT_CLEAN_H

#include "runtime/core/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Cleans UTF-8 `text` into a new malloc'd NUL-terminated UTF-8 string (*out,
 * free() it). Invalid UTF-8 bytes become U+FFFD. */
sk_status sk_prompt_clean(const char *text, char **out);

#ifdef __cplusplus
}
#endif
#endif
