/* kv_multishot.h - internal: LongLive 2.0's multi-shot sink policy, called by
* kv_cache.c and kv_params.c (the public API is in kv_cache.h). */
#ifndef SK_KV_MULTISHOT_H
#define SK_KV_MULTISHOT_H

#include "runtime/kv/kv_internal.h"

sk_status sk_kv_ms_validate(const sk_kv_params *p);
/* Frame slots of one layer's pool: the global sink + (window/chunk - 1) chunk groups. */
int64_t sk_kv_ms_pool_frames(const sk_kv_params *p);
sk_status sk_kv_ms_init(sk_kv_cache *c);
void sk_kv_ms_free(sk_kv_cache *c);
void sk_kv_ms_reset(sk_kv_cache *c);
sk_status sk_kv_ms_begin_chunk(sk_kv_cache *c, int64_t frame0, int64_t n);
void sk_kv_ms_commit(sk_kv_cache *c);
void sk_kv_ms_abort(sk_kv_cache *c);

#endif
