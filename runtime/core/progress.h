/* progress.h - progress on stderr for decode / generate.
 *
 * On a terminal (isatty(2)) one line rewritten in place, at most 10 times a
 * second:   "frames 120/240  23.4 fps  ETA 0:05"
 * Otherwise (log file, CI) plain lines through stderr, one every
 * `log_every_s` seconds, or one per update when log_every_s is 0 (per chunk).
 * The rate is the average since sk_progress_start (frames / elapsed wall time),
 * which is what a user compares with real time; ETA = remaining / rate.
 * With total = 0 (unknown length, e.g. a live stream) no "/total" and no ETA.
 *
 * Usage:
 *   sk_progress pr;
 *   sk_progress_start(&pr, "frames", 240);
 *   for each chunk: ...; sk_progress_update(&pr, frames_done);
 *   sk_progress_finish(&pr);   // final line + newline on a terminal
 * No allocation; a plain struct the caller owns. Not thread-safe.
 */
#ifndef SK_PROGRESS_H
#define SK_PROGRESS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    const char *label;    /* "frames"; not copied, must outlive the reporter */
    int64_t total;        /* 0 = unknown */
    int64_t done;
    double t_start;       /* seconds, monotonic clock */
    double t_last;        /* last time a line was printed */
    double log_every_s;   /* non-terminal: seconds between lines; 0 = every update */
    int tty;              /* 1: rewrite one line ("\r...\x1b[K") */
    int quiet;            /* 1: print nothing */
    int printed;          /* a tty line is on screen (finish ends it with '\n') */
    int64_t logged_done;  /* non-terminal: `done` of the last line printed (-1: none) */
    FILE *fp;             /* stderr */
} sk_progress;

/* Monotonic seconds (CLOCK_MONOTONIC). */
double sk_progress_now(void);

/* Starts the clock. tty from isatty(2); log_every_s = 5; quiet when the log level
 * (SINKSTREAM_LOG) is below info. Fields may be changed after this call. */
void sk_progress_start(sk_progress *p, const char *label, int64_t total);

/* Sets the count (not an increment) and prints if due. */
void sk_progress_update(sk_progress *p, int64_t done);

/* Prints the final line (always, unless quiet). */
void sk_progress_finish(sk_progress *p);

/* The line for `done` frames at time `now` (no newline), into buf; returns buf.
 * "frames 120/240  23.4 fps  ETA 0:05"; before any time has passed the rate
 * reads "-- fps" and the ETA "ETA --:--". ETA over an hour prints H:MM:SS. */
const char *sk_progress_format(const sk_progress *p, int64_t done, double now, char *buf,
                               size_t cap);

#ifdef __cplusplus
}
#endif
#endif
