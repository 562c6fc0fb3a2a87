/* prompts.h - prompts of a session and of `sinkstream generate`: the --prompts
 * schedule (JSON lines), turning a prompt (an --text-embeds tensor or a text
 * for the umT5 encoder) into a host context, and fitting it to the DiT.
 * Used for the schedule before the DiT is loaded and, with live control
 * (docs/LIVE.md), for prompts that arrive while the video runs.
 *
 * Schedule rules (docs/LIVE.md, tested by tests/test_live_prompts.c):
 *   - one JSON object per line; blank lines and lines starting with '#' skipped
 *   - keys: "frame" (latent frame, integer >= 0) or "at" (seconds of video at
 *     --fps, >= 0; video frame v = round(at * fps) lies in latent frame
 *     ceil(v / 4)), and exactly one of "embeds" (a tensor of --text-embeds)
 *     and "prompt" (text for --text-encoder); any other key is an error
 *   - the first line applies from the start: its time may be left out (or 0);
 *     a first line with a time > 0 is a switch away from the command line's
 *     prompt (--prompt / --embeds-key)
 *   - every later line needs a time; times may not decrease
 *   - a switch takes effect at the first chunk boundary at or after its frame
 *     (rounded up to a multiple of the chunk); when two lines land on the
 *     same boundary the later one wins (a warning names both)
 *   - errors name the file and the line
 */
#ifndef SK_LIVE_PROMPTS_H
#define SK_LIVE_PROMPTS_H

#include <stdint.h>

#include "dit/model.h"
#include "runtime/io/safetensors.h"
#include "runtime/core/status.h"
#include "text/text_encoder.h"

/* One prompt: in effect from latent frame `frame` (a chunk boundary) on. */
typedef struct {
    int64_t frame;     /* effective frame (rounded up to the chunk) */
    int64_t raw_frame; /* the line's own frame */
    int line;          /* line of --prompts; 0 = from the command line */
    char *key;         /* embeds tensor name (owned), or NULL */
    char *text;        /* prompt text (owned), or NULL */
    float *ctx;        /* [rows, cols] f32 (owned), NULL until resolved */
    int64_t rows, cols;
} gen_prompt;

typedef struct {
    gen_prompt *v;
    int n, cap;
} gen_prompt_list;

void gen_prompt_free(gen_prompt *p);
void gen_prompt_list_free(gen_prompt_list *l);
/* Appends a prompt (key or text, exactly one; copied). */
sk_status gen_prompt_list_add(gen_prompt_list *l, int64_t frame, int line, const char *key,
                              const char *text);

/* Appends *p, taking over what it owns (*p is zeroed). */
sk_status gen_prompt_list_take(gen_prompt_list *l, gen_prompt *p);

/* Parses --prompts `path` into out (appended). frames = latent frames of the
 * video (0 = unbounded), chunk = latent frames per chunk, fps = video rate.
 * *first_initial is set to 1 when the file's first line applies from frame 0
 * (it is then out->v[first index] with frame 0). */
sk_status gen_prompts_parse(const char *path, int64_t frames, int64_t chunk, int fps,
                            gen_prompt_list *out, int *first_initial);

/* The text encoder kept for prompts (f32 activations, its own backend). */
typedef struct {
    sk_backend *be;
    sk_text_encoder *te;
} gen_text;

sk_status gen_text_open(gen_text *t, int cuda, const char *encoder, const char *tokenizer,
                        const char *config, int offload);
void gen_text_close(gen_text *t);

/* Resolves p->ctx from the embeds file (p->key) or the encoder (p->text).
 * emb / text may be NULL when that kind is not available (an error then). */
sk_status gen_prompt_resolve(gen_prompt *p, const sk_st_file *emb, gen_text *text);

/* Checks p against the DiT (text_dim, text_len); rows past text_len that are
 * zero padding are dropped. */
sk_status gen_prompt_fit(gen_prompt *p, const sk_dit_config *cfg);

/* "embeds 'context.1'" / "text 'a red fox...'" (truncated) into buf. */
const char *gen_prompt_desc(const gen_prompt *p, char *buf, int cap);

#endif
