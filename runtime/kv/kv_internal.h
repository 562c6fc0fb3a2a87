/* kv_internal.h - shared by the KV cache's files (kv_cache.c: lifetime, slots,
 * begin/commit; kv_params.c: names, plan, validation; kv_keys.c: key rotation,
 * slot ranges, participative compression). Not for use outside runtime/kv/. */
#ifndef SK_KV_INTERNAL_H
#define SK_KV_INTERNAL_H

#include "runtime/kv/kv_cache.h"

/* the pending pass (sk_kv_cache.pending) */
enum { PASS_CHUNK = 1, PASS_RECOMPUTE = 2, PASS_WINDOW = 3 };

/* How many slots of which kind a configuration needs. */
typedef struct {
    int raw;
    int64_t sink_banks, comp_frames, recent_committed, ring_len, n_slots;
} kv_plan;

kv_plan kv_plan_of(const sk_kv_params *p);
/* frames a rolling-window pass adds (0 for the other policies) */
int64_t kv_window_pass_frames(const sk_kv_params *p);
sk_status kv_validate(const sk_kv_params *p);

/* Rotates rows [r0, r0 + nf*S) of t temporally: frame i by pos0 + i. */
sk_status kv_rope_temporal(sk_kv_cache *c, sk_tensor *t, int64_t r0, int64_t nf, int64_t pos0);
sk_status kv_rope_spatial(sk_kv_cache *c, sk_tensor *x, int64_t n, int64_t Hp, int64_t Wp);
void kv_sort_by_slot(int64_t *idx, const int64_t *slot, int64_t n);
sk_status kv_materialize(sk_kv_cache *c, int layer, const int64_t *slot, const int64_t *pos,
                         int64_t n, int64_t *idx);
int kv_slot_ranges(const sk_kv_cache *c, const sk_tensor *k, const sk_tensor *v,
                   const int64_t *slot, int64_t n, int64_t *idx, sk_kv_range *out, int cap);
/* participative compression: the bank of clean queries of the recent frames */
sk_status kv_qbank_begin(sk_kv_cache *c, int64_t frame0, int64_t n);
sk_status kv_qbank_store(sk_kv_cache *c, int layer, const sk_tensor *q);

#endif
