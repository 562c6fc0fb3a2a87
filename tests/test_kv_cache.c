/* test_kv_cache.c - the frame-slot KV cache against hand-computed LongLive /
 * Self-Forcing index cases (spec-wan-causal-dit.md §5.5), its data path and
 * its transactional abort. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/kv/kv_cache.h"

#define S 4   /* tokens per frame */
#define NH 2
#define HD 4
#define ROW (NH * HD)

static void ok(sk_status st, const char *what)
{
    cr_assert_eq(st, SK_OK, "%s: %s", what, sk_error_message());
}

static sk_kv_cache *make(sk_backend *be, sk_kv_policy pol, int64_t window, int64_t sink,
                         int64_t chunk)
{
    sk_kv_params p = {.policy = pol, .window_frames = window, .sink_frames = sink,
                      .max_chunk_frames = chunk, .tokens_per_frame = S, .num_layers = 2,
                      .num_heads = NH, .head_dim = HD, .dtype = SK_DTYPE_F32};
    sk_kv_cache *c = NULL;
    ok(sk_kv_cache_init(be, &p, &c), "init");
    return c;
}

/* K of frame f, token i, element j = 1000 f + 10 i + j (V is its negative):
 * lets a read-back name the frame each key came from. */
static void write_chunk(sk_kv_cache *c, sk_backend *be, int64_t f0, int64_t n)
{
    int64_t shape[3] = {n * S, NH, HD};
    sk_tensor k, v;
    ok(sk_tensor_alloc(be, SK_DTYPE_F32, 3, shape, &k), "alloc k");
    ok(sk_tensor_alloc(be, SK_DTYPE_F32, 3, shape, &v), "alloc v");
    float *h = malloc(sizeof(float) * (size_t)(n * S * ROW));
    for (int64_t f = 0; f < n; f++)
        for (int64_t i = 0; i < S * ROW; i++) h[f * S * ROW + i] = (float)(1000 * (f0 + f) + i);
    ok(sk_tensor_upload_f32(&k, h, (size_t)(n * S * ROW)), "up k");
    for (int64_t i = 0; i < n * S * ROW; i++) h[i] = -h[i];
    ok(sk_tensor_upload_f32(&v, h, (size_t)(n * S * ROW)), "up v");
    for (int l = 0; l < 2; l++) ok(sk_kv_write(c, l, &k, &v), "write");
    free(h);
    sk_tensor_free(&k);
    sk_tensor_free(&v);
}

/* The frames attention sees, read back from the data through the ranges. */
static int read_frames(sk_kv_cache *c, int layer, int64_t *frames, int cap)
{
    sk_kv_range r[32];
    int nr = sk_kv_visible(c, layer, r, 32);
    cr_assert_leq(nr, 32);
    int n = 0;
    float *kb = malloc(sizeof(float) * (size_t)sk_tensor_numel(&c->k[layer]));
    float *vb = malloc(sizeof(float) * (size_t)sk_tensor_numel(&c->v[layer]));
    ok(sk_tensor_download_f32(&c->k[layer], kb, (size_t)sk_tensor_numel(&c->k[layer])), "dl");
    ok(sk_tensor_download_f32(&c->v[layer], vb, (size_t)sk_tensor_numel(&c->v[layer])), "dl");
    for (int i = 0; i < nr; i++) {
        cr_assert_eq(r[i].len % S, 0, "ranges cover whole frames");
        for (int64_t t = r[i].start; t < r[i].start + r[i].len; t += S) {
            float k0 = kb[t * ROW];
            int64_t f = (int64_t)(k0 / 1000.0f);
            /* the whole frame is intact: every element where it should be */
            for (int64_t e = 0; e < S * ROW; e++) {
                cr_assert_eq(kb[t * ROW + e], (float)(1000 * f + e), "K of frame %lld elem %lld", (long long)f, (long long)e);
                cr_assert_eq(vb[t * ROW + e], -(float)(1000 * f + e));
            }
            if (n < cap) frames[n] = f;
            n++;
        }
    }
    free(kb);
    free(vb);
    return n;
}

static void expect_frames(sk_kv_cache *c, const int64_t *want, int nwant, const char *what)
{
    int64_t got[64], meta[64];
    int n = read_frames(c, 1, got, 64);
    int64_t nm = sk_kv_visible_frames(c, meta, 64);
    cr_assert_eq(n, nwant, "%s: %d visible frames, expected %d", what, n, nwant);
    cr_assert_eq(nm, nwant, "%s: metadata lists %lld frames", what, (long long)nm);
    /* the order of keys is irrelevant to attention: compare as sets */
    for (int i = 0; i < nwant; i++) {
        int hit = 0, hitm = 0;
        for (int j = 0; j < n; j++) hit |= got[j] == want[i];
        for (int j = 0; j < nm; j++) hitm |= meta[j] == want[i];
        cr_assert(hit && hitm, "%s: frame %lld not visible", what, (long long)want[i]);
    }
}

/* one chunk: begin, write (the "denoising passes" write twice), check, commit */
static void chunk(sk_kv_cache *c, sk_backend *be, int64_t f0, int64_t n, const int64_t *want,
                  int nwant, const char *what)
{
    ok(sk_kv_begin_chunk(c, f0, n), what);
    write_chunk(c, be, f0 + 500, n); /* a noisy pass ... */
    write_chunk(c, be, f0, n);       /* ... overwritten by the clean pass in the same slot */
    expect_frames(c, want, nwant, what);
    sk_kv_commit(c);
}

Test(kv_cache, longlive_sink3_window9_chunk3)
{
    sk_backend *be;
    ok(sk_backend_cpu_create(&be), "cpu");
    sk_kv_cache *c = make(be, SK_KV_SINK, 9, 3, 3);
    /* hand-computed with the spec's buffer (C_cap = 9 frames, sink = 3 frames):
     * chunk 3 rolls E = 3 frames out right after the sink (frames 3..5),
     * chunk 4 rolls out frames 6..8 */
    const int64_t w0[] = {0, 1, 2}, w1[] = {0, 1, 2, 3, 4, 5}, w2[] = {0, 1, 2, 3, 4, 5, 6, 7, 8},
                  w3[] = {0, 1, 2, 6, 7, 8, 9, 10, 11}, w4[] = {0, 1, 2, 9, 10, 11, 12, 13, 14};
    chunk(c, be, 0, 3, w0, 3, "chunk 0");
    cr_expect_eq(sk_kv_global_end(c), 3 * S);
    cr_expect_eq(sk_kv_local_end(c), 3 * S);
    chunk(c, be, 3, 3, w1, 6, "chunk 1");
    chunk(c, be, 6, 3, w2, 9, "chunk 2");
    cr_expect_eq(sk_kv_local_end(c), 9 * S);
    chunk(c, be, 9, 3, w3, 9, "chunk 3");
    chunk(c, be, 12, 3, w4, 9, "chunk 4");
    cr_expect_eq(sk_kv_global_end(c), 15 * S, "global_end after 5 chunks");
    cr_expect_eq(sk_kv_local_end(c), 9 * S, "local_end stays at capacity");
    sk_kv_cache_free(&c);
    sk_backend_free_(&be);
}

Test(kv_cache, selfforcing_fifo_window6_chunk3)
{
    sk_backend *be;
    ok(sk_backend_cpu_create(&be), "cpu");
    sk_kv_cache *c = make(be, SK_KV_FIFO, 6, 0, 3);
    const int64_t w0[] = {0, 1, 2}, w1[] = {0, 1, 2, 3, 4, 5}, w2[] = {3, 4, 5, 6, 7, 8},
                  w3[] = {6, 7, 8, 9, 10, 11};
    chunk(c, be, 0, 3, w0, 3, "chunk 0");
    chunk(c, be, 3, 3, w1, 6, "chunk 1");
    chunk(c, be, 6, 3, w2, 6, "chunk 2");
    chunk(c, be, 9, 3, w3, 6, "chunk 3");
    cr_expect_eq(sk_kv_global_end(c), 12 * S);
    cr_expect_eq(sk_kv_local_end(c), 6 * S);
    sk_kv_cache_free(&c);
    sk_backend_free_(&be);
}

Test(kv_cache, sink_not_aligned_to_chunks)
{
    /* sink 3, chunk 2, window 7: after frames 0..5, chunk (6,7) overflows by one
     * frame: E = 2 + 6 - 7 = 1 token-frame evicted right after the sink (frame 3) */
    sk_backend *be;
    ok(sk_backend_cpu_create(&be), "cpu");
    sk_kv_cache *c = make(be, SK_KV_SINK, 7, 3, 2);
    const int64_t w0[] = {0, 1}, w1[] = {0, 1, 2, 3}, w2[] = {0, 1, 2, 3, 4, 5},
                  w3[] = {0, 1, 2, 4, 5, 6, 7}, w4[] = {0, 1, 2, 6, 7, 8, 9};
    chunk(c, be, 0, 2, w0, 2, "chunk 0");
    chunk(c, be, 2, 2, w1, 4, "chunk 1");
    chunk(c, be, 4, 2, w2, 6, "chunk 2");
    chunk(c, be, 6, 2, w3, 7, "chunk 3");
    chunk(c, be, 8, 2, w4, 7, "chunk 4");
    /* a short last chunk of 1 frame: E = 1 + 7 - 7 = 1 (frame 6) */
    const int64_t w5b[] = {0, 1, 2, 7, 8, 9, 10};
    chunk(c, be, 10, 1, w5b, 7, "chunk 5 (1 frame)");
    sk_kv_cache_free(&c);
    sk_backend_free_(&be);
}

Test(kv_cache, abort_leaves_cache_untouched)
{
    sk_backend *be;
    ok(sk_backend_cpu_create(&be), "cpu");
    sk_kv_cache *c = make(be, SK_KV_SINK, 6, 3, 3);
    const int64_t w0[] = {0, 1, 2}, w1[] = {0, 1, 2, 3, 4, 5};
    chunk(c, be, 0, 3, w0, 3, "chunk 0");
    chunk(c, be, 3, 3, w1, 6, "chunk 1");
    /* chunk 2 would evict frames 3..5; it fails half-way (written, not committed) */
    ok(sk_kv_begin_chunk(c, 6, 3), "begin 2");
    write_chunk(c, be, 6, 3);
    sk_kv_abort(c);
    cr_expect_eq(sk_kv_global_end(c), 6 * S, "frame counter unchanged");
    /* the retry sees exactly what the first try would have seen, data intact */
    const int64_t w2[] = {0, 1, 2, 6, 7, 8};
    ok(sk_kv_begin_chunk(c, 6, 3), "retry begin");
    write_chunk(c, be, 6, 3);
    expect_frames(c, w2, 6, "retry");
    sk_kv_abort(c);
    /* and a chunk at the wrong frame is refused */
    cr_expect_neq(sk_kv_begin_chunk(c, 9, 3), SK_OK);
    cr_expect(strstr(sk_error_message(), "expected the next frame 6") != NULL, "%s",
              sk_error_message());
    sk_kv_cache_free(&c);
    sk_backend_free_(&be);
}

Test(kv_cache, bad_params_are_refused)
{
    sk_backend *be;
    ok(sk_backend_cpu_create(&be), "cpu");
    sk_kv_params p = {.policy = SK_KV_FIFO, .window_frames = 6, .sink_frames = 3,
                      .max_chunk_frames = 3, .tokens_per_frame = S, .num_layers = 1,
                      .num_heads = NH, .head_dim = HD, .dtype = SK_DTYPE_F32};
    sk_kv_cache *c = NULL;
    cr_expect_eq(sk_kv_cache_init(be, &p, &c), SK_E_INVALID_ARG, "fifo with a sink");
    cr_expect(strstr(sk_error_message(), "fifo") != NULL);
    p.policy = SK_KV_SINK;
    p.window_frames = 5;
    cr_expect_eq(sk_kv_cache_init(be, &p, &c), SK_E_INVALID_ARG, "sink + chunk > window");
    cr_expect(strstr(sk_error_message(), "--kv-window") != NULL, "%s", sk_error_message());
    cr_expect_null(c);
    sk_kv_policy pol;
    cr_expect_eq(sk_kv_policy_from_name("lru", &pol), SK_E_INVALID_ARG);
    cr_expect(strstr(sk_error_message(), "deep-sink") != NULL, "%s", sk_error_message());
    cr_expect_eq(sk_kv_policy_from_name("ema", &pol), SK_OK);
    cr_expect_eq(pol, SK_KV_EMA);
    cr_expect_eq(sk_kv_policy_from_name("sink", &pol), SK_OK);
    cr_expect_eq(pol, SK_KV_SINK);
    sk_backend_free_(&be);
}

/* LongLive KV-recache indices (spec §5.6), hand-computed for sink 3, window 9:
 * after 12 frames the cache keeps 0,1,2 + 6..11; a recache of frames 3..11
 * (start > 0, so the sink is protected) rewrites only 6..11; frames 3..5 are
 * query-only. After 6 frames a recache of 0..5 starts at frame 0 and rewrites
 * everything, sink included. Indices never move. */
Test(kv_cache, recompute_after_prompt_switch)
{
    sk_backend *be;
    ok(sk_backend_cpu_create(&be), "cpu");
    sk_kv_cache *c = make(be, SK_KV_SINK, 9, 3, 3);
    for (int64_t f0 = 0; f0 < 12; f0 += 3) {
        ok(sk_kv_begin_chunk(c, f0, 3), "begin");
        write_chunk(c, be, f0, 3);
        sk_kv_commit(c);
    }
    cr_expect_neq(sk_kv_begin_recompute(c, 4, 9, 1), SK_OK, "must not go past the last frame");
    cr_expect_neq(sk_kv_begin_recompute(c, 1, 11, 1), SK_OK, "more than the window");
    ok(sk_kv_begin_recompute(c, 3, 9, 1), "recompute 3..11");
    /* the pass writes K of frames 3..11 tagged as frame + 100 */
    write_chunk(c, be, 103, 9);
    int64_t got[16];
    int n = read_frames(c, 0, got, 16);
    cr_assert_eq(n, 9, "the pass sees everything cached");
    int seen[200] = {0};
    for (int i = 0; i < n; i++) seen[got[i]] = 1;
    for (int f = 0; f < 3; f++) cr_expect(seen[f], "sink frame %d keeps its old K/V", f);
    for (int f = 106; f < 112; f++) cr_expect(seen[f], "frame %d rewritten", f - 100);
    for (int f = 103; f < 106; f++) cr_expect(!seen[f], "frame %d is query-only", f - 100);
    sk_kv_commit(c);
    cr_expect_eq(sk_kv_global_end(c), 12 * S, "indices do not move");
    sk_kv_cache_free(&c);

    c = make(be, SK_KV_SINK, 9, 3, 3);
    for (int64_t f0 = 0; f0 < 6; f0 += 3) {
        ok(sk_kv_begin_chunk(c, f0, 3), "begin");
        write_chunk(c, be, f0, 3);
        sk_kv_commit(c);
    }
    ok(sk_kv_begin_recompute(c, 0, 6, 0), "recompute 0..5");
    write_chunk(c, be, 100, 6);
    n = read_frames(c, 1, got, 16);
    cr_assert_eq(n, 6);
    memset(seen, 0, sizeof seen);
    for (int i = 0; i < n; i++) seen[got[i]] = 1;
    for (int f = 100; f < 106; f++) cr_expect(seen[f], "frame %d rewritten (sink too)", f - 100);
    sk_kv_commit(c);
    /* generation goes on from frame 6 */
    ok(sk_kv_begin_chunk(c, 6, 3), "next chunk");
    sk_kv_abort(c);
    sk_kv_cache_free(&c);
    sk_backend_free_(&be);
}
