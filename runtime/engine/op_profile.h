/* op_profile.h - the time of every backend op call of one chunk, by kind
 * (session params profile; `sinkstream bench`'s per-op breakdown).
 *
 * Begin swaps the backend's op table for a copy whose entries bracket each call
 * with CUDA events on the backend's stream (or read the host clock on a
 * synchronous backend) and whose graph entries are NULL, so the chunk runs op
 * by op; end puts the table back and sums the times. One profile at a time in
 * the process (begin waits for the one running), and nothing else may run on
 * that backend meanwhile: the caller guarantees it (sessions: the engine's
 * only session). */
#ifndef SK_ENGINE_OP_PROFILE_H
#define SK_ENGINE_OP_PROFILE_H

#include "dit/config.h"
#include "runtime/core/backend.h"
#include "runtime/sinkstream.h"

sk_status sk_op_profile_begin(sk_backend *be, const sk_dit_config *cfg);
/* Names the phase the next calls belong to ("dit", "vae", "encode"); a static string. */
void sk_op_profile_phase(const char *phase);
/* Waits for the device, restores the table, and hands out the sums, biggest first
 * (*ops: the caller frees; phase/op strings are static). Safe to call after a failed
 * begin or twice (then *n = 0). */
sk_status sk_op_profile_end(sk_op_time **ops, int *n);

#endif
