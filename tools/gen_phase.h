/* gen_phase.h - progress for the phases before the first chunk (loading the weights,
 * encoding the starting prompt), which can take minutes for real models:
 *   text:  "sinkstream: info: loading the DiT 'x' (2.84 GB) ..." at the start, then every
 *          tick (2 s; $SK_PROGRESS_TICK_S) "... loading: 4 s, resident 1.92 GB", and at the
 *          end "weights loaded in 6.1 s (resident 2.95 GB)"; info level, so -q silences them;
 *   json:  (--progress json) one object a line on stderr, whatever the log level:
 *          {"phase":"load","state":"start","what":"...","bytes":N}
 *          {"phase":"load","state":"running","elapsed_s":4.0,"rss_bytes":N}  (every tick)
 *          {"phase":"load","state":"done","elapsed_s":6.1,"rss_bytes":N,"ok":true}
 * A phase runs on the calling thread; a ticker thread prints while it runs. */
#ifndef SK_GEN_PHASE_H
#define SK_GEN_PHASE_H

#include <stdint.h>

typedef struct gen_phase gen_phase;

/* phase: a JSON name ("load", "encode_text"); verb: "loading" (tick lines); done: "weights
 * loaded" (the end line: "weights loaded in 6.1 s ..."); what: the
 * start line's text (also the JSON "what"); bytes: the input size (0: unknown); json:
 * --progress json. Never fails: without memory or a thread it just prints less. */
gen_phase *gen_phase_begin(const char *phase, const char *verb, const char *done,
                           const char *what, int64_t bytes, int json);
/* Stops the ticker, prints the end line; ok = the phase succeeded. Frees ph. */
void gen_phase_end(gen_phase *ph, int ok);

#endif
