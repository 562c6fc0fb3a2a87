/* fanout.h - one writer, many readers: a bounded ring of byte messages with
 * sequence numbers (1, 2, ...). The writer never waits for a reader; a reader
 * keeps its own cursor (the next sequence it wants) and, when it falls behind
 * the ring, is moved to the newest "key" message (for video: a fragment that
 * starts with a keyframe), so a slow HTTP client skips instead of stalling the
 * stream or growing memory. Used for the live view's fMP4 fragments and MJPEG
 * frames (runtime/output/live_view.c) and the SSE events of `sinkstream serve`.
 *
 * Thread safety: every function may be called from any thread, except
 * sk_fanout_free, which must not race with the others. */
#ifndef SK_FANOUT_H
#define SK_FANOUT_H

#include <stddef.h>
#include <stdint.h>

#include "runtime/core/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sk_fanout sk_fanout;

/* capacity: messages kept (>= 1); max_bytes: bound on the bytes they hold
 * together (0: none); the oldest go first when either is passed. */
sk_status sk_fanout_create(int capacity, size_t max_bytes, sk_fanout **out);
void sk_fanout_free(sk_fanout **f); /* accepts NULL */

/* Copies n bytes in as the next message; key = 1 marks a place a new reader
 * may start. SK_E_INVALID_ARG after close; SK_E_OOM. */
sk_status sk_fanout_push(sk_fanout *f, const void *data, size_t n, int key);
/* End of stream: readers get what is left, then SK_FANOUT_CLOSED. Idempotent. */
void sk_fanout_close(sk_fanout *f);
int sk_fanout_closed(sk_fanout *f);

/* Where a new reader starts. */
typedef enum {
    SK_FANOUT_FROM_OLDEST = 0, /* every message still in the ring */
    SK_FANOUT_FROM_LAST_KEY,   /* the newest key message (or the next one) */
    SK_FANOUT_FROM_NEXT,       /* only messages pushed from now on */
} sk_fanout_start;
uint64_t sk_fanout_cursor(sk_fanout *f, sk_fanout_start where);

typedef enum {
    SK_FANOUT_GOT = 1,     /* *data (malloc'd, caller frees), *n, *key, *seq set; cursor moved */
    SK_FANOUT_TIMEOUT = 0, /* nothing new within timeout_s */
    SK_FANOUT_CLOSED = -1, /* closed and the reader has had everything */
    SK_FANOUT_NOMEM = -2,
} sk_fanout_result;

/* Waits up to timeout_s (0: no wait) for the message at *cursor. A reader
 * that fell behind the ring jumps to the newest key message (*skipped, may be
 * NULL, gets the number of messages it missed). */
sk_fanout_result sk_fanout_read(sk_fanout *f, uint64_t *cursor, double timeout_s, void **data,
                                size_t *n, int *key, uint64_t *seq, uint64_t *skipped);

/* Messages pushed so far (the last sequence number). */
uint64_t sk_fanout_last_seq(sk_fanout *f);

#ifdef __cplusplus
}
#endif
#endif
