/* test_nonfinite.c - NaN/Inf never makes a silent video (issue 15 #7): the
 * per-chunk flag op (CPU reference), TAEHV weights checked at load, `decode`
 * of NaN latents, a DiT whose finite but huge weights overflow its output.
 * Each failure names the tensor or the chunk; exit != 0. Also `decode` of an
 * empty latents tensor says so (issue 15 #8). */
#include "common/cli_run.h"
#include "tmpdir_util.h"

#include <math.h>

#include "runtime/core/backend.h"
#include "runtime/engine/device.h"
#include "runtime/io/safetensors.h"

#define FIX SK_SOURCE_DIR "/tests/fixtures/"

static void mk(void) { tmp_make("sk_nonfinite_"); }
TestSuite(nonfinite, .init = mk, .fini = tmp_remove, .timeout = 120);

/* Copies src to dst as f32 with every tensor passed through edit (may be NULL). */
static void rewrite(const char *src, const char *dst,
                    void (*edit)(const char *name, int ndim, const int64_t *shape, float *x,
                                 size_t n))
{
    sk_st_file *f;
    cr_assert_eq(sk_st_open(src, &f), SK_OK, "%s", sk_error_message());
    sk_st_writer *w;
    cr_assert_eq(sk_st_writer_create(&w), SK_OK);
    for (int i = 0; i < f->n_tensors; i++) {
        const sk_st_tensor *t = &f->tensors[i];
        float *x = NULL;
        cr_assert_eq(sk_st_read_f32(f, t->name, 0, NULL, &x, NULL), SK_OK);
        size_t n = 1;
        for (int d = 0; d < t->ndim; d++) n *= (size_t)t->shape[d];
        if (edit) edit(t->name, t->ndim, t->shape, x, n);
        cr_assert_eq(sk_st_writer_add_f32(w, t->name, SK_DTYPE_F32, t->ndim, t->shape, x), SK_OK);
        free(x);
    }
    for (int i = 0; i < f->n_meta; i++)
        cr_assert_eq(sk_st_writer_meta(w, f->meta_keys[i], f->meta_values[i]), SK_OK);
    cr_assert_eq(sk_st_writer_save(w, dst), SK_OK, "%s", sk_error_message());
    sk_st_writer_free(&w);
    sk_st_close(&f);
}

static void latents_file(const char *p, int64_t F, int nan_at)
{
    int64_t shape[4] = {F, 16, 4, 4};
    size_t n = (size_t)(F * 16 * 16);
    float *x = malloc((n ? n : 1) * sizeof *x);
    for (size_t i = 0; i < n; i++) x[i] = (float)((i * 37 % 101) / 50.0 - 1.0);
    if (nan_at >= 0) x[nan_at] = NAN;
    sk_st_writer *w;
    cr_assert_eq(sk_st_writer_create(&w), SK_OK);
    cr_assert_eq(sk_st_writer_add_f32(w, "latents", SK_DTYPE_F32, 4, shape, x), SK_OK);
    cr_assert_eq(sk_st_writer_save(w, p), SK_OK, "%s", sk_error_message());
    sk_st_writer_free(&w);
    free(x);
}

/* The CPU reference of the flag op on random data: clean data leaves the
 * flag alone, one NaN or Inf anywhere sets it, and it stays set. */
Test(nonfinite, flag_op_cpu)
{
    sk_backend *be;
    cr_assert_eq(sk_backend_create("cpu", SK_DTYPE_F32, &be), SK_OK);
    int32_t *flag = NULL;
    cr_assert_eq(be->ops->alloc(be, sizeof *flag, (void **)&flag), SK_OK);
    const int64_t shape[3] = {3, 17, 29};
    sk_tensor x;
    cr_assert_eq(sk_tensor_alloc(be, SK_DTYPE_F32, 3, shape, &x), SK_OK);
    const size_t n = (size_t)sk_tensor_numel(&x);
    float *h = malloc(n * sizeof *h);
    uint32_t r = 12345;
    for (int trial = 0; trial < 20; trial++) {
        for (size_t i = 0; i < n; i++) {
            r = r * 1664525u + 1013904223u;
            h[i] = ((float)(r >> 8) / 16777216.0f - 0.5f) * 1e30f;
        }
        const size_t at = (size_t)(r % n);
        const int kind = trial % 3; /* 0 clean, 1 NaN, 2 Inf */
        if (kind == 1) h[at] = NAN;
        if (kind == 2) h[at] = trial % 2 ? INFINITY : -INFINITY;
        cr_assert_eq(sk_tensor_upload_raw(&x, h, n * sizeof *h), SK_OK);
        *flag = 0;
        cr_assert_eq(sk_op_flag_nonfinite(be, &x, flag), SK_OK, "%s", sk_error_message());
        cr_expect_eq(*flag, kind != 0, "trial %d (kind %d at %zu): flag %d", trial, kind, at,
                     *flag);
        if (kind) { /* stays set through a clean tensor */
            h[at] = 0;
            cr_assert_eq(sk_tensor_upload_raw(&x, h, n * sizeof *h), SK_OK);
            cr_assert_eq(sk_op_flag_nonfinite(be, &x, flag), SK_OK);
            cr_expect_eq(*flag, 1);
        }
    }
    sk_tensor i32;
    cr_assert_eq(sk_tensor_alloc(be, SK_DTYPE_I32, 1, (int64_t[]){4}, &i32), SK_OK);
    cr_expect_eq(sk_op_flag_nonfinite(be, &i32, flag), SK_E_DTYPE);
    sk_tensor_free(&i32);
    free(h);
    sk_tensor_free(&x);
    be->ops->free(be, flag);
    sk_backend_free_(&be);
}

Test(nonfinite, decode_refuses_nan_latents)
{
    latents_file(tmp_path("nan.safetensors"), 3, 2 * 256 + 7);
    tu_result r = tu_run("decode", "--vae", FIX "taehv/taehv_tiny_21.safetensors", "--latents",
                         tmp_path("nan.safetensors"), "--rgb-out", tmp_path("rgb.safetensors"), NULL);
    cr_expect_neq(r.code, 0, "NaN latents decoded with exit 0: %s", r.err);
    cr_expect(strstr(r.err, "non-finite value (NaN)") && strstr(r.err, "frame 2") &&
                  strstr(r.err, "nan.safetensors"), "%s", r.err);
    tu_result_free(&r);
}

Test(nonfinite, decode_of_zero_frames_says_so)
{
    latents_file(tmp_path("empty.safetensors"), 0, -1);
    tu_result r = tu_run("decode", "--vae", FIX "taehv/taehv_tiny_21.safetensors", "--latents",
                         tmp_path("empty.safetensors"), "--rgb-out", tmp_path("rgb.safetensors"), NULL);
    cr_expect_neq(r.code, 0, "%s", r.err);
    cr_expect(strstr(r.err, "0 frames") && !strstr(r.err, "out of range"), "%s", r.err);
    tu_result_free(&r);
}

static void nan_in_one_weight(const char *name, int ndim, const int64_t *shape, float *x, size_t n)
{
    (void)ndim;
    (void)shape;
    static int done;
    if (!done && n > 8 && strstr(name, "weight")) {
        x[n / 2] = NAN;
        done = 1;
    }
}

Test(nonfinite, taehv_nan_weight_is_refused_at_load)
{
    rewrite(FIX "taehv/taehv_tiny_21.safetensors", tmp_path("vae_nan.safetensors"), nan_in_one_weight);
    latents_file(tmp_path("ok.safetensors"), 2, -1);
    tu_result r = tu_run("decode", "--vae", tmp_path("vae_nan.safetensors"), "--latents",
                         tmp_path("ok.safetensors"), "--rgb-out", tmp_path("rgb.safetensors"), NULL);
    cr_expect_neq(r.code, 0, "NaN VAE weights accepted: %s", r.err);
    cr_expect(strstr(r.err, "vae_nan.safetensors") && strstr(r.err, "non-finite value") &&
                  strstr(r.err, "tensor '"), "%s", r.err);
    tu_result_free(&r);
}

/* finite weights, but so large that the forward overflows */
static void huge(const char *name, int ndim, const int64_t *shape, float *x, size_t n)
{
    (void)shape;
    if (ndim == 2 && strstr(name, "weight"))
        for (size_t i = 0; i < n; i++) x[i] *= 1e18f;
}

Test(nonfinite, generate_stops_at_the_first_nonfinite_chunk)
{
    rewrite(FIX "demo/dit_demo_c16.safetensors", tmp_path("dit_huge.safetensors"), huge);
    tu_result r = tu_run("generate", "--dit", tmp_path("dit_huge.safetensors"), "--text-embeds",
                         FIX "dit/embeds.safetensors", "--vae",
                         FIX "taehv/taehv_tiny_21.safetensors", "--frames", "6", "--height", "32",
                         "--width", "32", "--rgb-out", tmp_path("rgb.safetensors"), "--latents-out",
                         tmp_path("lat.safetensors"), NULL);
    cr_expect_neq(r.code, 0, "an overflowing DiT gave exit 0: %s", r.err);
    cr_expect(strstr(r.err, "chunk at latent frames 0..2") && strstr(r.err, "NaN or Inf"), "%s",
              r.err);
    tu_result_free(&r);
    /* the same model unscaled runs clean */
    rewrite(FIX "demo/dit_demo_c16.safetensors", tmp_path("dit_ok.safetensors"), NULL);
    r = tu_run("generate", "--dit", tmp_path("dit_ok.safetensors"), "--text-embeds",
               FIX "dit/embeds.safetensors", "--frames", "6", "--height", "32", "--width", "32",
               "--no-decode", NULL);
    cr_expect_eq(r.code, 0, "%s", r.err);
    tu_result_free(&r);
}
