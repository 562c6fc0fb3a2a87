/* test_kv_fp8.c - the FP8 (e4m3) KV cache (kv_cache.h, fp8.h): every frame a chunk
 * writes is quantized as one row into its slot with its own power-of-two scale, the ranges
 * attention gets carry those scales, the policies that rewrite cached keys are
 * refused with a message, and when a stream's cache is FP8 (sk_kv_storage_dtype). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/compare.h"
#include "runtime/core/backend.h"
#include "runtime/core/fp8.h"
#include "runtime/kv/kv_cache.h"

#define S 4 /* tokens per frame */
#define NH 2
#define HD 8
#define ROW (NH * HD)
#define FR (S * ROW) /* values per frame */

static void ok(sk_status st, const char *what)
{
    cr_assert_eq(st, SK_OK, "%s: %s", what, sk_error_message());
}

static sk_kv_params params(sk_kv_policy pol, int64_t window, int64_t sink, int64_t chunk)
{
    sk_kv_params p = {.policy = pol, .window_frames = window, .sink_frames = sink,
                      .max_chunk_frames = chunk, .tokens_per_frame = S, .num_layers = 2,
                      .num_heads = NH, .head_dim = HD, .dtype = SK_DTYPE_F8_E4M3,
                      .shot_rope_offset = 8};
    return p;
}

/* K of frame f: normal values scaled by (1 + f % 3), so frames get different scales;
 * V the same with another seed */
static void frame_values(float *k, float *v, int64_t f)
{
    sk_test_fill_normal(k, FR, 1000 + (uint64_t)f, 1.0f + (float)(f % 3));
    sk_test_fill_normal(v, FR, 5000 + (uint64_t)f, 0.5f + (float)(f % 2));
}

static void write_chunk(sk_kv_cache *c, sk_backend *be, int64_t f0, int64_t n)
{
    int64_t shape[3] = {n * S, NH, HD};
    sk_tensor k, v;
    ok(sk_tensor_alloc(be, be->act_dtype, 3, shape, &k), "alloc k");
    ok(sk_tensor_alloc(be, be->act_dtype, 3, shape, &v), "alloc v");
    float *hk = malloc(sizeof(float) * (size_t)(n * FR)), *hv = malloc(sizeof(float) * (size_t)(n * FR));
    for (int64_t f = 0; f < n; f++) frame_values(hk + f * FR, hv + f * FR, f0 + f);
    ok(sk_tensor_upload_f32(&k, hk, (size_t)(n * FR)), "up k");
    ok(sk_tensor_upload_f32(&v, hv, (size_t)(n * FR)), "up v");
    sk_tensor vk, vv;
    cr_expect_eq(sk_kv_write_views(c, 0, &vk, &vv), 0, "an FP8 cache offers no write views");
    for (int l = 0; l < 2; l++) ok(sk_kv_write(c, l, &k, &v), "write");
    free(hk), free(hv);
    sk_tensor_free(&k), sk_tensor_free(&v);
}

/* every visible frame's bytes and scale are the frame's values quantized as one row;
 * returns the visible frames in slot order */
static int check_visible(sk_kv_cache *c, int layer, int64_t *frames, int cap)
{
    sk_kv_range r[16];
    const int nr = sk_kv_visible(c, layer, r, 16);
    cr_assert(nr > 0 && nr <= 16);
    const uint8_t *k8 = c->k[layer].data, *v8 = c->v[layer].data;
    const float *ks = c->ks[layer].data, *vs = c->vs[layer].data;
    float *hk = malloc(FR * sizeof(float)), *hv = malloc(FR * sizeof(float));
    uint8_t *qk = malloc(FR), *qv = malloc(FR);
    int64_t fv[64];
    const int64_t nf = sk_kv_visible_frames(c, fv, 64);
    int n = 0;
    for (int i = 0; i < nr; i++) {
        cr_assert_eq(r[i].k->dtype, SK_DTYPE_F8_E4M3);
        cr_assert(r[i].k_scale == &c->ks[layer] && r[i].v_scale == &c->vs[layer]);
        cr_assert_eq(r[i].scale_rows, S);
        cr_assert_eq(r[i].start % S, 0);
        for (int64_t t = r[i].start; t < r[i].start + r[i].len; t += S) {
            const int64_t slot = t / S;
            /* which frame: the one whose quantized K matches (the visible set names them) */
            int64_t f = -1;
            for (int64_t j = 0; j < nf && f < 0; j++) {
                frame_values(hk, hv, fv[j]);
                const float sk = sk_fp8_quantize_row_pow2(hk, FR, qk);
                if (sk == ks[slot] && !memcmp(qk, k8 + t * ROW, FR)) f = fv[j];
            }
            cr_assert(f >= 0, "slot %lld holds no visible frame's quantized keys", (long long)slot);
            int e;
            cr_expect(frexpf(ks[slot], &e) == 0.5f && frexpf(vs[slot], &e) == 0.5f,
                      "frame scales %g, %g are not powers of two", ks[slot], vs[slot]);
            frame_values(hk, hv, f);
            const float sv = sk_fp8_quantize_row_pow2(hv, FR, qv);
            cr_expect(sv == vs[slot] && !memcmp(qv, v8 + t * ROW, FR),
                      "frame %lld: V bytes or scale differ from its quantized values", (long long)f);
            if (n < cap) frames[n] = f;
            n++;
        }
    }
    free(hk), free(hv), free(qk), free(qv);
    return n;
}

static int has(const int64_t *a, int n, int64_t x)
{
    for (int i = 0; i < n; i++)
        if (a[i] == x) return 1;
    return 0;
}

/* LongLive's sink cache (sink 3, window 9, chunks of 3) in e4m3 over five chunks */
Test(kv_fp8, frames_quantized_one_scale_each)
{
    sk_backend *be = NULL;
    ok(sk_backend_cpu_create(&be), "cpu");
    sk_kv_params p = params(SK_KV_SINK, 9, 3, 3);
    sk_kv_cache *c = NULL;
    ok(sk_kv_cache_init(be, &p, &c), "init");
    cr_assert(c->ks && c->vs);
    cr_assert_eq(c->k[0].dtype, SK_DTYPE_F8_E4M3);
    /* half of bf16's bytes, a quarter of f32's: the pools plus one f32 scale per slot */
    const size_t want = 2 * 2 * ((size_t)c->n_slots * FR + (size_t)c->n_slots * 4);
    cr_expect_eq(sk_kv_bytes(c), want, "bytes %zu, expected %zu", sk_kv_bytes(c), want);
    for (int64_t ch = 0; ch < 5; ch++) {
        ok(sk_kv_begin_chunk(c, 3 * ch, 3), "begin");
        write_chunk(c, be, 3 * ch, 3);
        int64_t fr[16];
        for (int l = 0; l < 2; l++) {
            const int n = check_visible(c, l, fr, 16);
            cr_expect_eq(n, ch == 0 ? 3 : ch == 1 ? 6 : 9, "chunk %lld: %d frames visible",
                         (long long)ch, n);
            for (int64_t f = 0; f < 3; f++) cr_expect(has(fr, n, f), "sink frame %lld", (long long)f);
            for (int64_t f = 3 * ch; f < 3 * ch + 3; f++)
                cr_expect(has(fr, n, f), "own frame %lld", (long long)f);
        }
        sk_kv_range r[16];
        int nr = 0;
        ok(sk_kv_attention_ranges(c, 1, r, 16, &nr), "ranges");
        for (int i = 0; i < nr; i++) cr_expect(r[i].k_scale == &c->ks[1] && r[i].scale_rows == S);
        sk_kv_commit(c);
    }
    sk_kv_cache_free(&c);
    sk_backend_free_(&be);
}

/* LongLive 2.0's multishot cache stores baked keys too */
Test(kv_fp8, multishot_is_baked)
{
    sk_backend *be = NULL;
    ok(sk_backend_cpu_create(&be), "cpu");
    sk_kv_params p = params(SK_KV_MULTISHOT, 8, 2, 2);
    sk_kv_cache *c = NULL;
    ok(sk_kv_cache_init(be, &p, &c), "init multishot");
    for (int64_t ch = 0; ch < 4; ch++) {
        if (ch == 2) ok(sk_kv_multishot_cut(c), "cut");
        ok(sk_kv_begin_chunk(c, 2 * ch, 2), "begin");
        write_chunk(c, be, 2 * ch, 2);
        int64_t fr[16];
        const int n = check_visible(c, 0, fr, 16);
        cr_expect(has(fr, n, 0) && has(fr, n, 1), "global sink visible");
        sk_kv_commit(c);
    }
    sk_kv_cache_free(&c);
    sk_backend_free_(&be);
}

/* the policies that rewrite or re-rotate cached keys keep the act dtype */
Test(kv_fp8, policies_that_rewrite_keys_are_refused)
{
    sk_backend *be = NULL;
    ok(sk_backend_cpu_create(&be), "cpu");
    sk_kv_params bad[5] = {params(SK_KV_EMA, 9, 3, 3), params(SK_KV_DEEP_SINK, 10, 5, 3),
                           params(SK_KV_SINK, 9, 3, 3), params(SK_KV_SINK, 12, 3, 3),
                           params(SK_KV_ROLLING, 21, 3, 3)};
    bad[2].rope = SK_KV_ROPE_RELATIVE;
    bad[3].compress_frames = 10;
    bad[3].recent_frames = 4;
    bad[4].roll_chunks = 4;
    for (int i = 0; i < 5; i++) {
        sk_kv_cache *c = NULL;
        const sk_status st = sk_kv_cache_init(be, &bad[i], &c);
        cr_expect_eq(st, SK_E_UNSUPPORTED, "case %d: status %d", i, (int)st);
        cr_expect(strstr(sk_error_message(), "FP8") && strstr(sk_error_message(), "SK_FP8_KV=0"),
                  "case %d: %s", i, sk_error_message());
        cr_expect_null(c);
        cr_expect_eq(sk_kv_storage_dtype(&bad[i], be, 1, SK_DTYPE_F32), SK_DTYPE_F32,
                     "case %d: a stream would ask for an FP8 cache", i);
    }
    sk_kv_cache_free(NULL);
    sk_backend_free_(&be);
}

Test(kv_fp8, storage_dtype_of_a_stream)
{
    sk_backend *be = NULL;
    ok(sk_backend_cpu_create(&be), "cpu");
    sk_kv_params p = params(SK_KV_SINK, 9, 3, 3);
    p.dtype = SK_DTYPE_F32;
    cr_expect_eq(sk_kv_storage_dtype(&p, be, 1, SK_DTYPE_F32), SK_DTYPE_F8_E4M3);
    cr_expect_eq(sk_kv_storage_dtype(&p, NULL, 1, SK_DTYPE_F32), SK_DTYPE_F8_E4M3);
    cr_expect_eq(sk_kv_storage_dtype(&p, be, 0, SK_DTYPE_F32), SK_DTYPE_F32,
                 "no FP8 attention, no FP8 cache");
    sk_kv_params f = params(SK_KV_FIFO, 6, 0, 3);
    cr_expect_eq(sk_kv_storage_dtype(&f, be, 1, SK_DTYPE_F32), SK_DTYPE_F8_E4M3);
    setenv("SK_FP8_KV", "0", 1);
    cr_expect_eq(sk_kv_storage_dtype(&p, be, 1, SK_DTYPE_F32), SK_DTYPE_F32, "SK_FP8_KV=0");
    unsetenv("SK_FP8_KV");
    /* a backend without FP8 attention gets the act dtype, and init refuses e4m3 there */
    sk_backend_ops ops = *be->ops;
    const sk_backend_ops *keep = be->ops;
    ops.attention_fp8 = NULL;
    be->ops = &ops;
    cr_expect_eq(sk_kv_storage_dtype(&p, be, 1, SK_DTYPE_F32), SK_DTYPE_F32);
    p.dtype = SK_DTYPE_F8_E4M3;
    sk_kv_cache *c = NULL;
    cr_expect_eq(sk_kv_cache_init(be, &p, &c), SK_E_UNSUPPORTED);
    cr_expect_null(c);
    be->ops = keep;
    sk_backend_free_(&be);
}
