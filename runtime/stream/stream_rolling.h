/* stream_rolling.h - Rolling Forcing's chunk loop inside sk_stream (private
 * to runtime/stream/stream.c; see stream_rolling.c). */
#ifndef SK_STREAM_ROLLING_H
#define SK_STREAM_ROLLING_H

#include "runtime/stream/stream.h"

/* Allocates the window buffers (called by sk_stream_init for kv_policy rolling). */
sk_status sk_stream_rolling_init(sk_stream *s);
/* sk_stream_step for kv_policy rolling. */
sk_status sk_stream_rolling_step(sk_stream *s, sk_tensor *x0, int64_t *frame0);

#endif
