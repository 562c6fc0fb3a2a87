/* test_vae_tiny.c - TAEHV (vae/taehv.h) on the CPU backend against the
 * independent PyTorch fixtures of tests/reference/make_taehv_fixtures.py
 * (narrow random weights with the real layer structure, both variants), plus
 * streaming == whole-clip checks, variant detection, strict binding errors
 * and a full-width random model built here with the real shapes, its decode
 * and encode checked value by value against the same PyTorch reference run on
 * its weights (tests/reference/taehv_run.py). */
#include "common/cli_run.h"
#include <criterion/criterion.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runtime/core/backend.h"
#include "runtime/io/safetensors.h"
#include "tests/common/compare.h"
#include "tests/common/taehv_random.h"
#include "tests/common/test_util.h"
#include "vae/taehv.h"

#define FIX SK_SOURCE_DIR "/tests/fixtures/taehv/"

/* relative L2 error <= 1e-4 (nmse <= 1e-8) and every element within 1e-4 + 1e-4|ref| */
#define REL_NMSE 1e-8
#define REL_ATOL 1e-4
#define REL_RTOL 1e-4

static sk_backend *g_be;

static void setup(void) { TT_OK(sk_backend_cpu_create(&g_be)); }
static void teardown(void) { sk_backend_free_(&g_be); }

/* A host tensor (be = NULL) over buf. */
static sk_tensor host4(float *buf, const int64_t *s)
{
    sk_tensor t = sk_tensor_desc(SK_DTYPE_F32, 4, s);
    t.data = buf;
    return t;
}

/* Reads tensor name of file path as f32; shape into s. */
static float *read_f32(const char *path, const char *name, int64_t s[4])
{
    sk_st_file *f = NULL;
    TT_OK(sk_st_open(path, &f));
    float *buf = NULL;
    const sk_st_tensor *info = NULL;
    TT_OK(sk_st_read_f32(f, name, 0, NULL, &buf, &info));
    cr_assert_eq(info->ndim, 4, "%s:%s has %d dims", path, name, info->ndim);
    for (int i = 0; i < 4; i++) s[i] = info->shape[i];
    sk_st_close(&f);
    return buf;
}

static sk_taehv *load(const char *path, sk_taehv_variant v)
{
    sk_taehv_load_opts o = sk_taehv_load_opts_default();
    o.variant = v;
    o.need_encoder = 1;
    sk_taehv *m = NULL;
    TT_OK(sk_taehv_load(g_be, path, &o, &m));
    return m;
}

static void expect_close(const float *got, const float *ref, size_t n, double nmse, double atol,
                         double rtol, const char *what)
{
    sk_compare_result r = sk_compare(got, ref, n, nmse, atol, rtol);
    char line[512];
    sk_compare_format(&r, got, ref, line, sizeof line);
    cr_log_info("%s: %s", what, line);
    cr_assert(r.ok, "%s: %s", what, line);
}

/* ------------------------------------------------------------ fixtures */

static void decode_vs_fixture(const char *tag)
{
    char wpath[512], dpath[512];
    snprintf(wpath, sizeof wpath, FIX "taehv_tiny_%s.safetensors", tag);
    snprintf(dpath, sizeof dpath, FIX "taehv_tiny_%s_decode.safetensors", tag);
    sk_taehv *m = load(wpath, SK_TAEHV_AUTO);
    int64_t ls[4], fs[4], os[4];
    float *lat = read_f32(dpath, "latents", ls), *ref = read_f32(dpath, "frames", fs);
    cr_assert_eq(fs[0], 4 * ls[0] - 3);
    sk_tensor lt = host4(lat, ls);
    float *got = NULL;
    TT_OK(sk_taehv_decode_video(m, &lt, 0, &got, os));
    for (int i = 0; i < 4; i++) cr_assert_eq(os[i], fs[i], "frames dim %d: %lld vs fixture %lld", i,
                                             (long long)os[i], (long long)fs[i]);
    size_t n = (size_t)(fs[0] * fs[1] * fs[2] * fs[3]);
    /* not a degenerate fixture: the frames vary and are not all clamped */
    size_t inside = 0;
    for (size_t i = 0; i < n; i++) inside += ref[i] > 0.01f && ref[i] < 0.99f;
    cr_assert_gt(inside, n / 2, "fixture frames mostly clamped (%zu of %zu inside)", inside, n);
    for (size_t i = 0; i < n; i++)
        cr_assert(got[i] >= 0.0f && got[i] <= 1.0f, "frame value %g at %zu outside [0,1]", got[i], i);
    char what[64];
    snprintf(what, sizeof what, "decode taehv_tiny_%s whole", tag);
    expect_close(got, ref, n, REL_NMSE, REL_ATOL, REL_RTOL, what);
    free(got);
    free(lat);
    free(ref);
    sk_taehv_free(&m);
}

Test(vae_tiny, decode_21_matches_pytorch, .init = setup, .fini = teardown) { decode_vs_fixture("21"); }
Test(vae_tiny, decode_22_matches_pytorch, .init = setup, .fini = teardown) { decode_vs_fixture("22"); }

static void encode_vs_fixture(const char *tag)
{
    char wpath[512], epath[512];
    snprintf(wpath, sizeof wpath, FIX "taehv_tiny_%s.safetensors", tag);
    snprintf(epath, sizeof epath, FIX "taehv_tiny_%s_encode.safetensors", tag);
    sk_taehv *m = load(wpath, SK_TAEHV_AUTO);
    int64_t fs[4], ls[4], os[4];
    float *frames = read_f32(epath, "frames", fs), *ref = read_f32(epath, "latents", ls);
    cr_assert_eq(ls[0], (fs[0] + 3) / 4);
    cr_assert(fs[0] % 4 != 0, "the fixture should exercise end padding");
    sk_tensor ft = host4(frames, fs);
    size_t n = (size_t)(ls[0] * ls[1] * ls[2] * ls[3]);
    const int chunks[] = {0, 1, 3, 5};
    for (size_t k = 0; k < sizeof chunks / sizeof chunks[0]; k++) {
        float *got = NULL;
        TT_OK(sk_taehv_encode_video(m, &ft, chunks[k], &got, os));
        for (int i = 0; i < 4; i++) cr_assert_eq(os[i], ls[i], "latent dim %d", i);
        char what[64];
        snprintf(what, sizeof what, "encode taehv_tiny_%s chunk %d", tag, chunks[k]);
        expect_close(got, ref, n, REL_NMSE, REL_ATOL, REL_RTOL, what);
        free(got);
    }
    free(frames);
    free(ref);
    sk_taehv_free(&m);
}

Test(vae_tiny, encode_21_matches_pytorch, .init = setup, .fini = teardown) { encode_vs_fixture("21"); }
Test(vae_tiny, encode_22_matches_pytorch, .init = setup, .fini = teardown) { encode_vs_fixture("22"); }

/* ------------------------------------------------------------ streaming */

/* Streams the fixture latents in the given chunk pattern (repeated) and checks
 * the frame counts per push, no allocation after creation, and equality with
 * the whole-clip decode. */
static void stream_equals_whole(const char *tag, const int *pattern, int np)
{
    char wpath[512], dpath[512];
    snprintf(wpath, sizeof wpath, FIX "taehv_tiny_%s.safetensors", tag);
    snprintf(dpath, sizeof dpath, FIX "taehv_tiny_%s_decode.safetensors", tag);
    sk_taehv *m = load(wpath, SK_TAEHV_AUTO);
    int64_t ls[4], os[4];
    float *lat = read_f32(dpath, "latents", ls);
    sk_tensor lt = host4(lat, ls);
    float *whole = NULL;
    TT_OK(sk_taehv_decode_video(m, &lt, 0, &whole, os));
    const size_t per = (size_t)(os[1] * os[2] * os[3]), n = (size_t)os[0] * per;

    int maxc = 0;
    for (int i = 0; i < np; i++) maxc = pattern[i] > maxc ? pattern[i] : maxc;
    sk_taehv_dec_stream *s = NULL;
    TT_OK(sk_taehv_dec_stream_create(m, ls[2], ls[3], maxc, &s));
    float *got = calloc(n, sizeof(float));
    cr_assert(got);
    for (int pass = 0; pass < 2; pass++) { /* the second pass checks reset */
        uint64_t allocs = g_be->n_allocs;
        int64_t f0 = 0, done = 0;
        for (int k = 0; f0 < ls[0]; k++) {
            int64_t c = pattern[k % np];
            if (c > ls[0] - f0) c = ls[0] - f0;
            sk_tensor part = sk_tensor_rows(&lt, f0, c), fr;
            TT_OK(sk_taehv_dec_stream_push(s, &part, &fr));
            cr_assert_eq(fr.shape[0], f0 == 0 ? 4 * c - 3 : 4 * c, "push %d of %lld latents gave %lld frames",
                         k, (long long)c, (long long)fr.shape[0]);
            cr_assert_leq((size_t)(done + fr.shape[0]) * per, n);
            TT_OK(sk_tensor_download_f32(&fr, got + done * per, (size_t)fr.shape[0] * per));
            done += fr.shape[0];
            f0 += c;
        }
        cr_assert_eq(done, os[0]);
        cr_assert_eq(sk_taehv_dec_stream_frames(s), os[0]);
        cr_assert_eq(g_be->n_allocs, allocs, "the stream allocated %llu times while pushing",
                     (unsigned long long)(g_be->n_allocs - allocs));
        char what[96];
        snprintf(what, sizeof what, "stream taehv_tiny_%s chunks %d..(x%d) pass %d", tag,
                 pattern[0], np, pass);
        /* the same math per frame: equal up to float reassociation at most */
        expect_close(got, whole, n, 1e-12, 1e-6, 0, what);
        TT_OK(sk_taehv_dec_stream_reset(s));
    }
    free(got);
    free(whole);
    free(lat);
    sk_taehv_dec_stream_free(&s);
    sk_taehv_free(&m);
}

Test(vae_tiny, stream_chunk1_equals_whole_21, .init = setup, .fini = teardown)
{
    stream_equals_whole("21", (const int[]){1}, 1);
}
Test(vae_tiny, stream_chunk3_equals_whole_21, .init = setup, .fini = teardown)
{
    stream_equals_whole("21", (const int[]){3}, 1);
}
Test(vae_tiny, stream_uneven_chunks_equal_whole_21, .init = setup, .fini = teardown)
{
    stream_equals_whole("21", (const int[]){2, 1, 3}, 3);
}
Test(vae_tiny, stream_chunk1_equals_whole_22, .init = setup, .fini = teardown)
{
    stream_equals_whole("22", (const int[]){1}, 1);
}
Test(vae_tiny, stream_chunk3_equals_whole_22, .init = setup, .fini = teardown)
{
    stream_equals_whole("22", (const int[]){3}, 1);
}

/* Chunked decode through the whole-clip entry equals the fixture too. */
Test(vae_tiny, decode_video_chunked_matches_pytorch, .init = setup, .fini = teardown)
{
    sk_taehv *m = load(FIX "taehv_tiny_21.safetensors", SK_TAEHV_AUTO);
    int64_t ls[4], fs[4], os[4];
    float *lat = read_f32(FIX "taehv_tiny_21_decode.safetensors", "latents", ls);
    float *ref = read_f32(FIX "taehv_tiny_21_decode.safetensors", "frames", fs);
    sk_tensor lt = host4(lat, ls);
    float *got = NULL;
    TT_OK(sk_taehv_decode_video(m, &lt, 4, &got, os));
    expect_close(got, ref, (size_t)(fs[0] * fs[1] * fs[2] * fs[3]), REL_NMSE, REL_ATOL, REL_RTOL,
                 "decode chunk 4");
    free(got);
    free(lat);
    free(ref);
    sk_taehv_free(&m);
}

/* ------------------------------------------------------------ detection */

Test(vae_tiny, variant_detection, .init = setup, .fini = teardown)
{
    sk_taehv *m = load(FIX "taehv_tiny_21.safetensors", SK_TAEHV_AUTO);
    const sk_taehv_config *c = sk_taehv_get_config(m);
    cr_assert_eq(c->variant, SK_TAEHV_W2_1);
    cr_assert_eq(c->latent_channels, 16);
    cr_assert_eq(c->patch, 1);
    cr_assert_eq(c->space_factor, 8);
    cr_assert(c->nf[0] == 32 && c->nf[1] == 16 && c->nf[2] == 8 && c->nf[3] == 8,
              "widths %d/%d/%d/%d", c->nf[0], c->nf[1], c->nf[2], c->nf[3]);
    cr_assert_eq(c->enc_width, 8);
    cr_assert(c->has_decoder && c->has_encoder);
    cr_assert_eq(sk_taehv_frames_for_latents(c, 21), 81);
    cr_assert_eq(sk_taehv_latents_for_frames(c, 81), 21);
    sk_taehv_free(&m);

    m = load(FIX "taehv_tiny_22.safetensors", SK_TAEHV_AUTO);
    c = sk_taehv_get_config(m);
    cr_assert_eq(c->variant, SK_TAEHV_W2_2);
    cr_assert_eq(c->latent_channels, 48);
    cr_assert_eq(c->patch, 2);
    cr_assert_eq(c->space_factor, 16);
    sk_taehv_free(&m);

    /* forcing the right variant works, the wrong one fails naming both */
    m = load(FIX "taehv_tiny_22.safetensors", SK_TAEHV_W2_2);
    sk_taehv_free(&m);
    TT_FAILS(sk_taehv_load(g_be, FIX "taehv_tiny_21.safetensors",
                           &(sk_taehv_load_opts){.variant = SK_TAEHV_W2_2, .need_decoder = 1}, &m),
             SK_E_SHAPE, "taew2_2 expects 48 latent channels");
    cr_assert_null(m);

    sk_taehv_variant v;
    TT_OK(sk_taehv_variant_from_name("taew2_1", &v));
    cr_assert_eq(v, SK_TAEHV_W2_1);
    TT_FAILS(sk_taehv_variant_from_name("taew2_2_super", &v), SK_E_UNSUPPORTED, "SuperMemBlock");
    TT_FAILS(sk_taehv_variant_from_name("taew3", &v), SK_E_INVALID_ARG, "taew2_1");
}

/* ------------------------------------------------------------ bad weights */

typedef enum { EDIT_DROP, EDIT_RESHAPE, EDIT_EXTRA } edit_kind;

/* Copies src to dst, dropping / mis-shaping tensor `name` or adding an extra one. */
static void write_edited(const char *src, const char *dst, edit_kind k, const char *name)
{
    sk_st_file *f = NULL;
    TT_OK(sk_st_open(src, &f));
    sk_st_writer *w = NULL;
    TT_OK(sk_st_writer_create(&w));
    for (int i = 0; i < f->n_tensors; i++) {
        const sk_st_tensor *t = &f->tensors[i];
        if (!strcmp(t->name, name) && k == EDIT_DROP) continue;
        if (!strcmp(t->name, name) && k == EDIT_RESHAPE) {
            /* same bytes, the two leading dims swapped (e.g. [C, 2C, 3, 3] -> [2C, C, 3, 3]) */
            int64_t s[SK_MAX_DIMS];
            memcpy(s, t->shape, sizeof s);
            int64_t a = s[0];
            s[0] = s[1];
            s[1] = a;
            TT_OK(sk_st_writer_add_raw(w, t->name, t->dtype, t->ndim, s, t->data, t->nbytes));
            continue;
        }
        TT_OK(sk_st_writer_add_raw(w, t->name, t->dtype, t->ndim, t->shape, t->data, t->nbytes));
    }
    if (k == EDIT_EXTRA) {
        float v[4] = {1, 2, 3, 4};
        TT_OK(sk_st_writer_add_f32(w, name, SK_DTYPE_F32, 1, (int64_t[]){4}, v));
    }
    TT_OK(sk_st_writer_save(w, dst));
    sk_st_writer_free(&w);
    sk_st_close(&f);
}

Test(vae_tiny, bad_weights_are_named, .init = setup, .fini = teardown)
{
    char path[256];
    snprintf(path, sizeof path, "/tmp/sk_test_vae_%d.safetensors", (int)getpid());
    sk_taehv *m = NULL;

    write_edited(FIX "taehv_tiny_21.safetensors", path, EDIT_DROP, "decoder.16.conv.2.bias");
    TT_FAILS(sk_taehv_load(g_be, path, NULL, &m), SK_E_FORMAT, "'decoder.16.conv.2.bias'");
    cr_assert(strstr(sk_error_message(), "missing"), "%s", sk_error_message());
    cr_assert_null(m);

    write_edited(FIX "taehv_tiny_21.safetensors", path, EDIT_RESHAPE, "decoder.9.conv.0.weight");
    TT_FAILS(sk_taehv_load(g_be, path, NULL, &m), SK_E_SHAPE, "decoder.9.conv.0.weight");
    cr_assert(strstr(sk_error_message(), "[16, 32, 3, 3]"), "%s", sk_error_message());

    write_edited(FIX "taehv_tiny_21.safetensors", path, EDIT_EXTRA, "decoder.23.weight");
    TT_FAILS(sk_taehv_load(g_be, path, NULL, &m), SK_E_FORMAT, "decoder.23.weight");
    cr_assert(strstr(sk_error_message(), "unexpected"), "%s", sk_error_message());

    /* a missing tensor that detection reads is named too */
    write_edited(FIX "taehv_tiny_22.safetensors", path, EDIT_DROP, "decoder.1.weight");
    TT_FAILS(sk_taehv_load(g_be, path, NULL, &m), SK_E_FORMAT, "decoder.1.weight");
    unlink(path);

    /* taew2_2_super is refused by name */
    char sup[256];
    snprintf(sup, sizeof sup, "/tmp/sk_test_vae_%d_taew2_2_super.safetensors", (int)getpid());
    write_edited(FIX "taehv_tiny_22.safetensors", sup, EDIT_EXTRA, "decoder.3.dummy");
    TT_FAILS(sk_taehv_load(g_be, sup, NULL, &m), SK_E_UNSUPPORTED, "taew2_2_super");
    unlink(sup);

    /* not a TAEHV at all */
    TT_FAILS(sk_taehv_load(g_be, FIX "taehv_tiny_21_decode.safetensors", NULL, &m), SK_E_FORMAT,
             "not a TAEHV");
}

Test(vae_tiny, wrong_latent_channels_is_clear, .init = setup, .fini = teardown)
{
    sk_taehv *m = load(FIX "taehv_tiny_21.safetensors", SK_TAEHV_AUTO);
    sk_taehv_dec_stream *s = NULL;
    TT_OK(sk_taehv_dec_stream_create(m, 8, 12, 3, &s));
    float *buf = calloc(48 * 8 * 12, sizeof(float));
    sk_tensor lt = host4(buf, (int64_t[]){1, 48, 8, 12}), fr;
    TT_FAILS(sk_taehv_dec_stream_push(s, &lt, &fr), SK_E_SHAPE, "16 latent channels");
    /* too large a chunk and a wrong grid are errors too */
    sk_tensor big = host4(buf, (int64_t[]){4, 16, 8, 12});
    TT_FAILS(sk_taehv_dec_stream_push(s, &big, &fr), SK_E_SHAPE, "1..3");
    sk_tensor grid = host4(buf, (int64_t[]){1, 16, 12, 8});
    TT_FAILS(sk_taehv_dec_stream_push(s, &grid, &fr), SK_E_SHAPE, "[n, 16, 8, 12]");
    free(buf);
    sk_taehv_dec_stream_free(&s);
    sk_taehv_free(&m);
}

/* ------------------------------------------------------------ full width */

/* Runs tests/reference/taehv_run.py (the independent PyTorch TAEHV) on weights
 * `wpath` for `mode` (decode / encode) of x [s0..s3]; returns its f32 output of
 * `n_out` values. Python: $SK_PYTHON or /usr/bin/python3 (Debian python3-torch,
 * installed by tools/install_deps.sh). */
static float *torch_taehv(const char *mode, const char *wpath, int p, const float *x,
                          const int64_t s[4], size_t n_out)
{
    char in[256], out[256], cmd[2048];
    snprintf(in, sizeof in, "/tmp/sk_test_vae_in_%d.f32", (int)getpid());
    snprintf(out, sizeof out, "/tmp/sk_test_vae_out_%d.f32", (int)getpid());
    FILE *f = fopen(in, "wb");
    cr_assert(f, "cannot write %s", in);
    const size_t n_in = (size_t)(s[0] * s[1] * s[2] * s[3]);
    cr_assert_eq(fwrite(x, sizeof(float), n_in, f), n_in);
    fclose(f);
    const char *py = getenv("SK_PYTHON");
    snprintf(cmd, sizeof cmd, "'%s' '%s/tests/reference/taehv_run.py' %s '%s' %d '%s' "
             "%lld,%lld,%lld,%lld '%s'", py && *py ? py : "/usr/bin/python3",
             SK_SOURCE_DIR, mode, wpath, p, in, (long long)s[0], (long long)s[1],
             (long long)s[2], (long long)s[3], out);
    char err[4096];
    const int rc = tu_sh_err(cmd, err, sizeof err);
    unlink(in);
    cr_assert_eq(rc, 0, "the PyTorch reference failed (%d): %s\n%s", rc, cmd, err);
    float *y = malloc(n_out * sizeof *y);
    f = fopen(out, "rb");
    cr_assert(f && y, "no output %s", out);
    const size_t got = fread(y, sizeof(float), n_out, f);
    const int extra = fgetc(f) != EOF;
    fclose(f);
    unlink(out);
    cr_assert(got == n_out && !extra, "PyTorch %s wrote a different size than %zu values", mode,
              n_out);
    return y;
}

static void full_width(int z, int p, sk_taehv_variant want)
{
    char path[256];
    snprintf(path, sizeof path, "/tmp/sk_test_vae_full_%d_%d.safetensors", z, (int)getpid());
    int nt = 0;
    const int nf[4] = {256, 128, 64, 64}; /* spec A8 real widths, encoder 64 */
    TT_OK(sk_test_write_taehv_random(path, z, p, nf, 64, 1, SK_DTYPE_F16, &nt));
    cr_assert_eq(nt, 128, "spec A8: 128 tensors, wrote %d", nt);
    sk_taehv *m = load(path, SK_TAEHV_AUTO);
    const sk_taehv_config *c = sk_taehv_get_config(m);
    cr_assert_eq(c->variant, want);
    cr_assert(c->nf[0] == 256 && c->nf[1] == 128 && c->nf[2] == 64 && c->nf[3] == 64);
    cr_assert_eq(c->enc_width, 64);
    /* decode 2 latents of 2x2 */
    int64_t ls[4] = {2, z, 2, 2}, os[4];
    size_t nl = (size_t)(2 * z * 4);
    float *lat = malloc(nl * sizeof(float));
    sk_test_fill_normal(lat, nl, 7, 1.0f);
    sk_tensor lt = host4(lat, ls);
    float *fr = NULL;
    TT_OK(sk_taehv_decode_video(m, &lt, 0, &fr, os));
    cr_assert(os[0] == 5 && os[1] == 3 && os[2] == 2 * 8 * p && os[3] == 2 * 8 * p,
              "got [%lld, %lld, %lld, %lld]", (long long)os[0], (long long)os[1],
              (long long)os[2], (long long)os[3]);
    size_t n = (size_t)(os[0] * os[1] * os[2] * os[3]);
    for (size_t i = 0; i < n; i++) cr_assert(fr[i] >= 0.0f && fr[i] <= 1.0f, "frame[%zu] = %g", i, fr[i]);
    /* the values, against the PyTorch reference on the very same weights: every
     * full-width layer (256/128/64 channels, the real tensor count) is checked, not
     * just the narrow fixtures' */
    float *fref = torch_taehv("decode", path, p, lat, ls, n);
    size_t inside = 0;
    for (size_t i = 0; i < n; i++) inside += fref[i] > 0.01f && fref[i] < 0.99f;
    /* random full-width weights saturate many pixels (taew2_2: ~23% inside); the
     * clamped ones must clamp on the same side, the rest match in value */
    cr_assert_gt(inside, n / 10, "reference frames nearly all clamped (%zu of %zu inside): a "
                 "weak test", inside, n);
    char what[96];
    snprintf(what, sizeof what, "full-width taew2_%d decode vs PyTorch", p == 1 ? 1 : 2);
    expect_close(fr, fref, n, REL_NMSE, REL_ATOL, REL_RTOL, what);
    free(fref);
    /* and encode those frames back to latents, against PyTorch too */
    int64_t es[4];
    float *el = NULL;
    sk_tensor ft = host4(fr, os);
    TT_OK(sk_taehv_encode_video(m, &ft, 0, &el, es));
    cr_assert(es[0] == 2 && es[1] == z && es[2] == 2 && es[3] == 2);
    for (size_t i = 0; i < nl; i++) cr_assert(isfinite(el[i]), "latent[%zu] = %g", i, el[i]);
    float *eref = torch_taehv("encode", path, p, fr, os, nl);
    snprintf(what, sizeof what, "full-width taew2_%d encode vs PyTorch", p == 1 ? 1 : 2);
    expect_close(el, eref, nl, REL_NMSE, REL_ATOL, REL_RTOL, what);
    free(eref);
    unlink(path);
    free(el);
    free(fr);
    free(lat);
    sk_taehv_free(&m);
}

Test(vae_tiny, full_width_21_matches_pytorch, .init = setup, .fini = teardown, .timeout = 300)
{
    full_width(16, 1, SK_TAEHV_W2_1);
}
Test(vae_tiny, full_width_22_matches_pytorch, .init = setup, .fini = teardown, .timeout = 300)
{
    full_width(48, 2, SK_TAEHV_W2_2);
}

/* ------------------------------------------------------------ CLI */

/* Runs the built sinkstream binary; returns its exit code, stderr in err. */
static int run_cli(const char *args, char *err, size_t cap)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "'%s' %s", tu_bin(), args);
    return tu_sh_err(cmd, err, cap);
}

Test(vae_tiny, cli_decode_and_encode, .init = setup, .fini = teardown, .timeout = 120)
{
    char out[256], args[1024], err[4096];
    snprintf(out, sizeof out, "/tmp/sk_test_vae_cli_%d.safetensors", (int)getpid());

    /* decode, streamed 2 latents at a time, vs the whole-clip PyTorch frames */
    snprintf(args, sizeof args,
             "decode --vae " FIX "taehv_tiny_22.safetensors --latents " FIX
             "taehv_tiny_22_decode.safetensors --stream-chunk 2 --rgb-out %s", out);
    int rc = run_cli(args, err, sizeof err);
    cr_assert_eq(rc, 0, "decode failed (%d): %s", rc, err);
    int64_t gs[4], rs[4];
    float *got = read_f32(out, "frames", gs);
    float *ref = read_f32(FIX "taehv_tiny_22_decode.safetensors", "frames", rs);
    for (int i = 0; i < 4; i++) cr_assert_eq(gs[i], rs[i]);
    expect_close(got, ref, (size_t)(rs[0] * rs[1] * rs[2] * rs[3]), REL_NMSE, REL_ATOL, REL_RTOL,
                 "cli decode");
    free(got);
    free(ref);
    unlink(out);

    /* encode */
    snprintf(args, sizeof args,
             "encode --vae " FIX "taehv_tiny_21.safetensors --frames " FIX
             "taehv_tiny_21_encode.safetensors --stream-chunk 3 --latents-out %s", out);
    rc = run_cli(args, err, sizeof err);
    cr_assert_eq(rc, 0, "encode failed (%d): %s", rc, err);
    got = read_f32(out, "latents", gs);
    ref = read_f32(FIX "taehv_tiny_21_encode.safetensors", "latents", rs);
    for (int i = 0; i < 4; i++) cr_assert_eq(gs[i], rs[i]);
    expect_close(got, ref, (size_t)(rs[0] * rs[1] * rs[2] * rs[3]), REL_NMSE, REL_ATOL, REL_RTOL,
                 "cli encode");
    free(got);
    free(ref);
    unlink(out);

    /* 48-channel latents into a taew2_1: exit 1, a message that says why, no output */
    snprintf(args, sizeof args,
             "decode --vae " FIX "taehv_tiny_21.safetensors --latents " FIX
             "taehv_tiny_22_decode.safetensors --rgb-out %s", out);
    rc = run_cli(args, err, sizeof err);
    cr_assert_eq(rc, 1, "rc %d: %s", rc, err);
    cr_assert(strstr(err, "48 channels") && strstr(err, "16-channel"), "%s", err);
    cr_assert_neq(access(out, F_OK), 0, "an output was written despite the error");

    /* usage errors: no output, unknown variant */
    rc = run_cli("decode --vae x.safetensors --latents y.safetensors", err, sizeof err);
    cr_assert_eq(rc, 2, "%s", err);
    cr_assert(strstr(err, "no output"), "%s", err);
    rc = run_cli("decode --vae x --latents y --rgb-out z --vae-variant taew9", err, sizeof err);
    cr_assert_eq(rc, 2, "%s", err);
}
