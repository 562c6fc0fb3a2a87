/* test_dit_forward.c - one DiT forward against the PyTorch reference
 * (tests/reference/make_dit_fixtures.py: forward_single, forward_single_f3),
 * intermediate by intermediate. */
#include "dit_test_util.h"

#include "runtime/kv/kv_cache.h"

typedef struct {
    const sk_st_file *fix;
    int checked;
    int seen_v;
} dump_ctx;

/* Every intermediate the fixture also has is compared as it is produced. */
static void on_dump(void *user, const char *name, const sk_tensor *t)
{
    dump_ctx *d = user;
    if (!sk_st_find(d->fix, name)) return;
    dt_check(d->fix, name, t, name);
    d->checked++;
    if (!strcmp(name, "v")) d->seen_v = 1;
}

static void setup_run(sk_backend **be, sk_dit_model **m, sk_dit_ctx **ctx, sk_kv_cache **kv,
                      const sk_st_file *fix, dump_ctx *d)
{
    dt_ok(sk_backend_cpu_create(be), "cpu backend");
    *m = dt_load_tiny(*be);
    dt_ok(sk_dit_ctx_init(*m, 3, 8, 8, 16, ctx), "ctx init");
    (*ctx)->debug = on_dump;
    (*ctx)->debug_user = d;
    sk_kv_params kp = {.policy = SK_KV_FIFO, .window_frames = 6, .sink_frames = 0,
                       .max_chunk_frames = 3, .tokens_per_frame = 16,
                       .num_layers = (*m)->cfg.num_layers, .num_heads = (*m)->cfg.num_heads,
                       .head_dim = (*m)->cfg.head_dim, .dtype = (*be)->act_dtype};
    dt_ok(sk_kv_cache_init(*be, &kp, kv), "kv init");
    size_t n;
    float *ctxv = dt_read(fix, "context", &n);
    dt_ok(sk_dit_set_context(*ctx, ctxv, 16), "set context");
    free(ctxv);
}

static void upload_fix(const sk_st_file *fix, const char *name, sk_backend *be, sk_tensor *t)
{
    int64_t s[4] = {3, 4, 8, 8};
    dt_ok(sk_tensor_alloc(be, be->act_dtype, 4, s, t), "alloc");
    size_t n;
    float *x = dt_read(fix, name, &n);
    cr_assert_eq(n, (size_t)(3 * 4 * 8 * 8));
    dt_ok(sk_tensor_upload_f32(t, x, n), "upload");
    free(x);
}

Test(dit_forward, single_chunk_matches_reference_intermediates)
{
    sk_st_file *fix = NULL;
    dt_ok(sk_st_open(DIT_FIX "forward_single.safetensors", &fix), "open fixture");
    dump_ctx d = {fix, 0, 0};
    sk_backend *be; sk_dit_model *m; sk_dit_ctx *ctx; sk_kv_cache *kv;
    setup_run(&be, &m, &ctx, &kv, fix, &d);
    cr_expect_eq(d.checked, 1, "context_emb compared at set_context");
    sk_tensor x, v;
    upload_fix(fix, "x", be, &x);
    upload_fix(fix, "x", be, &v);
    size_t nt;
    float *t = dt_read(fix, "t", &nt);
    cr_assert_eq(nt, 3u);
    dt_ok(sk_kv_begin_chunk(kv, 0, 3), "begin chunk");
    dt_ok(sk_dit_forward(ctx, kv, &x, t, 0, &v), "forward");
    /* time_sinusoid e e0 patch_tokens block0_out block1_out head_out v + context_emb */
    cr_expect_geq(d.checked, 9, "only %d intermediates compared", d.checked);
    cr_expect(d.seen_v);
    free(t);
    sk_tensor_free(&x); sk_tensor_free(&v);
    sk_kv_cache_free(&kv); sk_dit_ctx_free(&ctx); sk_dit_free(&m); sk_backend_free_(&be);
    sk_st_close(&fix);
}

Test(dit_forward, second_chunk_attends_to_cached_clean_frames)
{
    sk_st_file *fix = NULL;
    dt_ok(sk_st_open(DIT_FIX "forward_single_f3.safetensors", &fix), "open fixture");
    dump_ctx d = {fix, 0, 0};
    sk_backend *be; sk_dit_model *m; sk_dit_ctx *ctx; sk_kv_cache *kv;
    setup_run(&be, &m, &ctx, &kv, fix, &d);
    sk_tensor x, v, pre;
    upload_fix(fix, "x", be, &x);
    upload_fix(fix, "x", be, &v);
    upload_fix(fix, "prefill_x", be, &pre);
    /* prefill: frames 0..2 at t = 0, no dumps (the fixture's intermediates are chunk 1's) */
    float t0[3] = {0, 0, 0};
    ctx->debug = NULL;
    dt_ok(sk_kv_begin_chunk(kv, 0, 3), "begin chunk 0");
    dt_ok(sk_dit_forward(ctx, kv, &pre, t0, 0, &v), "prefill forward");
    sk_kv_commit(kv);
    /* the cached K/V of frames 0..2 equal the reference cache */
    char name[32];
    for (int l = 0; l < 2; l++) {
        sk_kv_range r[8];
        dt_ok(sk_kv_begin_chunk(kv, 3, 3), "begin chunk 1");
        int nr = sk_kv_visible(kv, l, r, 8);
        cr_assert_geq(nr, 1);
        cr_assert_eq(r[0].start, 0);
        cr_assert_geq(r[0].len, 48, "frames 0..2 lead the visible set");
        sk_tensor ck = sk_tensor_rows(&kv->k[l], 0, 48), cv = sk_tensor_rows(&kv->v[l], 0, 48);
        snprintf(name, sizeof name, "cache_k.%d", l);
        dt_check(fix, name, &ck, name);
        snprintf(name, sizeof name, "cache_v.%d", l);
        dt_check(fix, name, &cv, name);
        sk_kv_abort(kv);
    }
    ctx->debug = on_dump;
    size_t nt;
    float *t = dt_read(fix, "t", &nt);
    dt_ok(sk_kv_begin_chunk(kv, 3, 3), "begin chunk 1");
    dt_ok(sk_dit_forward(ctx, kv, &x, t, 3, &v), "forward chunk 1");
    cr_expect(d.seen_v);
    cr_expect_geq(d.checked, 8);
    free(t);
    sk_tensor_free(&x); sk_tensor_free(&v); sk_tensor_free(&pre);
    sk_kv_cache_free(&kv); sk_dit_ctx_free(&ctx); sk_dit_free(&m); sk_backend_free_(&be);
    sk_st_close(&fix);
}

Test(dit_forward, prefixed_checkpoint_and_explicit_config_give_same_v)
{
    sk_backend *be;
    dt_ok(sk_backend_cpu_create(&be), "cpu backend");
    sk_dit_config cfg;
    dt_ok(sk_dit_config_from_file(DIT_FIX "config.json", &cfg), "config.json");
    sk_dit_model *m = NULL;
    dt_ok(sk_dit_load(DIT_FIX "dit_tiny_prefixed.safetensors", &cfg, be, SK_DTYPE_F32, &m),
          "load prefixed");
    sk_st_file *fix = NULL;
    dt_ok(sk_st_open(DIT_FIX "forward_single.safetensors", &fix), "open fixture");
    sk_dit_ctx *ctx;
    dt_ok(sk_dit_ctx_init(m, 3, 8, 8, 16, &ctx), "ctx");
    sk_kv_params kp = {.policy = SK_KV_FIFO, .window_frames = 3, .max_chunk_frames = 3,
                       .tokens_per_frame = 16, .num_layers = 2, .num_heads = 2, .head_dim = 64,
                       .dtype = be->act_dtype};
    sk_kv_cache *kv;
    dt_ok(sk_kv_cache_init(be, &kp, &kv), "kv");
    size_t n;
    float *c = dt_read(fix, "context", &n);
    dt_ok(sk_dit_set_context(ctx, c, 16), "ctx");
    sk_tensor x, v;
    upload_fix(fix, "x", be, &x);
    upload_fix(fix, "x", be, &v);
    float *t = dt_read(fix, "t", &n);
    dt_ok(sk_kv_begin_chunk(kv, 0, 3), "begin");
    dt_ok(sk_dit_forward(ctx, kv, &x, t, 0, &v), "forward");
    dt_check(fix, "v", &v, "v (prefixed)");
    free(c); free(t);
    sk_tensor_free(&x); sk_tensor_free(&v);
    sk_kv_cache_free(&kv); sk_dit_ctx_free(&ctx); sk_dit_free(&m); sk_backend_free_(&be);
    sk_st_close(&fix);
}

/* The K/V-only pass (v NULL: the clean pass) fills the cache exactly as a
 * full forward does. */
Test(dit_forward, kv_only_pass_writes_the_same_cache)
{
    sk_st_file *fix = NULL;
    dt_ok(sk_st_open(DIT_FIX "forward_single.safetensors", &fix), "open fixture");
    dump_ctx d = {fix, 0, 0};
    sk_backend *be; sk_dit_model *m; sk_dit_ctx *ctx; sk_kv_cache *kv;
    setup_run(&be, &m, &ctx, &kv, fix, &d);
    ctx->debug = NULL;
    sk_tensor x, v;
    upload_fix(fix, "x", be, &x);
    upload_fix(fix, "x", be, &v);
    float t[3] = {0, 0, 0};
    size_t n = (size_t)sk_tensor_numel(&kv->k[1]);
    float *full = malloc(n * 4), *only = malloc(n * 4);
    dt_ok(sk_kv_begin_chunk(kv, 0, 3), "begin");
    dt_ok(sk_dit_forward(ctx, kv, &x, t, 0, &v), "full forward");
    dt_ok(sk_tensor_download_f32(&kv->k[1], full, n), "dl");
    dt_ok(sk_tensor_zero(&kv->k[1]), "zero");
    dt_ok(sk_dit_forward(ctx, kv, &x, t, 0, NULL), "K/V-only forward");
    dt_ok(sk_tensor_download_f32(&kv->k[1], only, n), "dl");
    cr_expect(memcmp(full, only, n * 4) == 0, "last layer's K differs between full and K/V-only passes");
    float s = 0;
    for (size_t i = 0; i < n; i++) s += fabsf(only[i]);
    cr_expect(s > 0, "K/V-only pass wrote nothing");
    free(full); free(only);
    sk_tensor_free(&x); sk_tensor_free(&v);
    sk_kv_cache_free(&kv); sk_dit_ctx_free(&ctx); sk_dit_free(&m); sk_backend_free_(&be);
    sk_st_close(&fix);
}
