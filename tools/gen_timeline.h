/* gen_timeline.h - --timeline-out FILE: the prompt timeline a run applied,
 * one JSON line per prompt in the --prompts format, so that
 * `generate --prompts FILE` (with the same seed and sizes, and --text-embeds
 * for embeds entries) replays it exactly:
 *   {"frame": 0, "prompt": "a cat", "wall_s": 0.000, "source": "queued"}
 *   {"frame": 9, "prompt": "a dog", "wall_s": 3.412, "source": "live"}
 * "frame" is the latent frame the prompt applied at (a chunk start, so the
 * replay switches at the same chunk); wall_s (seconds since the chunk loop
 * began) and source are a record, ignored when read back. Each line is
 * flushed as it is written, so the file is complete up to a crash. The lines
 * come from the session's on_prompt callback (runtime/sinkstream.h): "queued"
 * is the command line's prompts (--prompt, --prompts), "live" live control. */
#ifndef SK_GEN_TIMELINE_H
#define SK_GEN_TIMELINE_H

#include <stdint.h>
#include <stdio.h>

#include "runtime/core/status.h"

typedef struct {
    FILE *f;
    char *path;
    double t0;
    sk_status st; /* the first failed add (the callback cannot return it) */
} gen_timeline;

/* path NULL: a timeline that records nothing */
sk_status gen_timeline_open(gen_timeline *t, const char *path);
/* text, or NULL for embeddings named by key */
sk_status gen_timeline_add(gen_timeline *t, int64_t frame, const char *text, const char *key,
                           const char *source);
sk_status gen_timeline_close(gen_timeline *t);

#endif
