/* stream_unipc.h - LongLive 2.0's UniPC chunk loop inside sk_stream (private
 * to runtime/stream/stream.c; see stream_unipc.c). */
#ifndef SK_STREAM_UNIPC_H
#define SK_STREAM_UNIPC_H

#include "runtime/stream/stream.h"

/* Denoises chunk [f0, f0 + n) with a fresh UniPC solver (the cache holds the
 * pending chunk), leaves the result in s->x0 and runs the clean pass. */
sk_status sk_stream_unipc_chunk(sk_stream *s, int64_t f0, int64_t n);

#endif
