/* test_wan_vae.c - the Wan2.2 VAE encoder (vae/wan_vae.h) on the CPU backend
 * against tests/reference/make_wan_vae_fixtures.py: two tiny random layouts
 * (Wan2.2's temporal flags and another set, so both AvgDown3D channel maps
 * run) and the real layout (dim 160, 48 latents) on a 64x64 image with weights
 * generated here from each tensor's name by the same hash as the script.
 * Plus the layout ops it added (transpose, pad2d), config detection and the
 * loader's errors. */
#include <criterion/criterion.h>

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/core/backend.h"
#include "runtime/io/safetensors.h"
#include "tests/common/compare.h"
#include "tests/common/test_util.h"
#include "runtime/core/dtype.h"
#include "vae/image_prep.h"
#include "vae/wan_vae.h"

#define FIX SK_SOURCE_DIR "/tests/fixtures/wan_vae/"

static sk_backend *g_be;
static void setup(void) { TT_OK(sk_backend_cpu_create(&g_be)); }
static void teardown(void) { sk_backend_free_(&g_be); }

static float *read_f32(const char *path, const char *name, int nd, int64_t *shape)
{
    sk_st_file *f = NULL;
    TT_OK(sk_st_open(path, &f));
    float *buf = NULL;
    const sk_st_tensor *info = NULL;
    TT_OK(sk_st_read_f32(f, name, 0, NULL, &buf, &info));
    cr_assert_eq(info->ndim, nd, "%s:%s has %d dims", path, name, info->ndim);
    for (int i = 0; i < nd; i++) shape[i] = info->shape[i];
    sk_st_close(&f);
    return buf;
}

/* relative L2 <= 1e-4 (nmse <= 1e-8) */
static void check_latent(const float *got, const float *ref, size_t n, const char *what)
{
    sk_compare_result r = sk_compare(got, ref, n, 1e-8, 1e-4, 1e-3);
    char line[512];
    sk_compare_format(&r, got, ref, line, sizeof line);
    cr_log_info("%s: %s", what, line);
    cr_assert(r.ok, "%s: %s", what, line);
}

static void encode_vs(const sk_wanvae_enc *m, const char *expected, const char *what)
{
    int64_t si[3], sl[3];
    float *img = read_f32(expected, "image", 3, si);
    float *ref = read_f32(expected, "latent", 3, sl);
    const sk_wanvae_config *c = sk_wanvae_enc_config(m);
    cr_assert_eq(si[0], 3);
    cr_assert_eq(sl[0], c->z);
    cr_assert_eq(sl[1], si[1] / c->space_factor);
    cr_assert_eq(sl[2], si[2] / c->space_factor);
    const size_t n = (size_t)(sl[0] * sl[1] * sl[2]);
    float *got = malloc(n * sizeof *got);
    TT_OK(sk_wanvae_encode_image(m, img, si[1], si[2], got));
    check_latent(got, ref, n, what);
    /* the image matters: another one gives another latent */
    for (int64_t i = 0; i < 3 * si[1] * si[2]; i++) img[i] = -img[i];
    float *neg = malloc(n * sizeof *neg);
    TT_OK(sk_wanvae_encode_image(m, img, si[1], si[2], neg));
    sk_compare_result r = sk_compare(neg, ref, n, 1e-4, 1e30, 0);
    cr_assert(!r.ok, "%s: the latent of the negated image is the same (nmse %g)", what, r.nmse);
    free(img);
    free(ref);
    free(got);
    free(neg);
}

Test(wan_vae, tiny_a_matches_pytorch, .init = setup, .fini = teardown)
{
    sk_wanvae_enc *m = NULL;
    TT_OK(sk_wanvae_enc_load(g_be, FIX "tiny_a.safetensors", &m));
    const sk_wanvae_config *c = sk_wanvae_enc_config(m);
    cr_assert_eq(c->dim, 4);
    cr_assert_eq(c->levels, 4);
    cr_assert_eq(c->n_res, 2);
    cr_assert_eq(c->space_factor, 16);
    const int td[4] = {0, 1, 1, 0}, dn[4] = {1, 1, 1, 0}, wd[4] = {4, 8, 16, 16};
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(c->t_down[i], td[i], "level %d t_down", i);
        cr_assert_eq(c->down[i], dn[i], "level %d down", i);
        cr_assert_eq(c->width[i], wd[i], "level %d width", i);
    }
    encode_vs(m, FIX "expected_tiny_a.safetensors", "tiny_a");
    sk_wanvae_enc_free(&m);
    cr_assert_null(m);
}

Test(wan_vae, tiny_b_other_flags_matches_pytorch, .init = setup, .fini = teardown)
{
    sk_wanvae_enc *m = NULL;
    TT_OK(sk_wanvae_enc_load(g_be, FIX "tiny_b.safetensors", &m));
    const sk_wanvae_config *c = sk_wanvae_enc_config(m);
    cr_assert_eq(c->levels, 3);
    cr_assert_eq(c->n_res, 1);
    cr_assert_eq(c->space_factor, 8);
    cr_assert_eq(c->t_down[0], 1);
    cr_assert_eq(c->t_down[1], 0);
    encode_vs(m, FIX "expected_tiny_b.safetensors", "tiny_b");
    sk_wanvae_enc_free(&m);
}

/* ---- the real layout with hash weights (make_wan_vae_fixtures.py hash_tensor) */
typedef struct {
    char name[96];
    int nd;
    int64_t sh[5];
} ent;

typedef struct {
    ent *e;
    int n, cap;
} ents;

static void add(ents *l, const char *name, int nd, int64_t a, int64_t b, int64_t c, int64_t d,
                int64_t e)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->e = realloc(l->e, (size_t)l->cap * sizeof *l->e);
        cr_assert_not_null(l->e);
    }
    ent *x = &l->e[l->n++];
    snprintf(x->name, sizeof x->name, "%s", name);
    x->nd = nd;
    int64_t s[5] = {a, b, c, d, e};
    memcpy(x->sh, s, sizeof s);
}

static void add_res(ents *l, const char *pre, int64_t i, int64_t o)
{
    char k[96];
    snprintf(k, sizeof k, "%s.residual.0.gamma", pre);
    add(l, k, 4, i, 1, 1, 1, 0);
    snprintf(k, sizeof k, "%s.residual.2.weight", pre);
    add(l, k, 5, o, i, 3, 3, 3);
    snprintf(k, sizeof k, "%s.residual.2.bias", pre);
    add(l, k, 1, o, 0, 0, 0, 0);
    snprintf(k, sizeof k, "%s.residual.3.gamma", pre);
    add(l, k, 4, o, 1, 1, 1, 0);
    snprintf(k, sizeof k, "%s.residual.6.weight", pre);
    add(l, k, 5, o, o, 3, 3, 3);
    snprintf(k, sizeof k, "%s.residual.6.bias", pre);
    add(l, k, 1, o, 0, 0, 0, 0);
    if (i != o) {
        snprintf(k, sizeof k, "%s.shortcut.weight", pre);
        add(l, k, 5, o, i, 1, 1, 1);
        snprintf(k, sizeof k, "%s.shortcut.bias", pre);
        add(l, k, 1, o, 0, 0, 0, 0);
    }
}

/* Wan2.2's encoder: dim 160, dim_mult [1, 2, 4, 4], 2 res blocks, temporal [F, T, T], z 48 */
static void real_layout(ents *l)
{
    const int64_t dims[5] = {160, 160, 320, 640, 640};
    const int td[3] = {0, 1, 1};
    char k[96];
    add(l, "encoder.conv1.weight", 5, 160, 12, 3, 3, 3);
    add(l, "encoder.conv1.bias", 1, 160, 0, 0, 0, 0);
    for (int li = 0; li < 4; li++) {
        for (int j = 0; j < 2; j++) {
            snprintf(k, sizeof k, "encoder.downsamples.%d.downsamples.%d", li, j);
            add_res(l, k, j ? dims[li + 1] : dims[li], dims[li + 1]);
        }
        if (li < 3) {
            const int64_t o = dims[li + 1];
            snprintf(k, sizeof k, "encoder.downsamples.%d.downsamples.2.resample.1.weight", li);
            add(l, k, 4, o, o, 3, 3, 0);
            snprintf(k, sizeof k, "encoder.downsamples.%d.downsamples.2.resample.1.bias", li);
            add(l, k, 1, o, 0, 0, 0, 0);
            if (td[li]) {
                snprintf(k, sizeof k, "encoder.downsamples.%d.downsamples.2.time_conv.weight", li);
                add(l, k, 5, o, o, 3, 1, 1);
                snprintf(k, sizeof k, "encoder.downsamples.%d.downsamples.2.time_conv.bias", li);
                add(l, k, 1, o, 0, 0, 0, 0);
            }
        }
    }
    add_res(l, "encoder.middle.0", 640, 640);
    add(l, "encoder.middle.1.norm.gamma", 3, 640, 1, 1, 0, 0);
    add(l, "encoder.middle.1.to_qkv.weight", 4, 1920, 640, 1, 1, 0);
    add(l, "encoder.middle.1.to_qkv.bias", 1, 1920, 0, 0, 0, 0);
    add(l, "encoder.middle.1.proj.weight", 4, 640, 640, 1, 1, 0);
    add(l, "encoder.middle.1.proj.bias", 1, 640, 0, 0, 0, 0);
    add_res(l, "encoder.middle.2", 640, 640);
    add(l, "encoder.head.0.gamma", 4, 640, 1, 1, 1, 0);
    add(l, "encoder.head.2.weight", 5, 96, 640, 3, 3, 3);
    add(l, "encoder.head.2.bias", 1, 96, 0, 0, 0, 0);
    add(l, "conv1.weight", 5, 96, 96, 1, 1, 1);
    add(l, "conv1.bias", 1, 96, 0, 0, 0, 0);
}

static uint64_t fnv1a64(const char *s)
{
    uint64_t h = 0xCBF29CE484222325ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001B3ull;
    return h;
}

static int is_gamma(const char *n)
{
    size_t l = strlen(n);
    return l >= 5 && !strcmp(n + l - 5, "gamma");
}

static int64_t numel(const ent *e)
{
    int64_t n = 1;
    for (int i = 0; i < e->nd; i++) n *= e->sh[i];
    return n;
}

/* Fills dst (f32 for gammas, the upper half of f32 = bf16 otherwise: exact). */
static void hash_tensor(const ent *e, void *dst)
{
    const int64_t n = numel(e);
    const uint64_t base = fnv1a64(e->name);
    float scale;
    if (is_gamma(e->name)) scale = 1.0f / 1024.0f;
    else if (e->nd == 1) scale = 1.0f / 128.0f / 16.0f;
    else {
        int64_t fan = n / e->sh[0];
        int k = 0;
        while (((int64_t)1 << (2 * k)) < fan) k++;
        scale = 1.0f / 128.0f / (float)(1 << k);
    }
    for (int64_t j = 0; j < n; j++) {
        uint64_t z = base + (uint64_t)(j + 1) * 0x9E3779B97F4A7C15ull;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        z ^= z >> 31;
        const float m = (float)((int)(z >> 56) - 128);
        if (is_gamma(e->name)) {
            ((float *)dst)[j] = 1.0f + m * scale;
        } else {
            float v = m * scale;
            uint32_t u;
            memcpy(&u, &v, 4);
            ((uint16_t *)dst)[j] = (uint16_t)(u >> 16); /* exact: 8 significant bits */
        }
    }
}

/* The layout as a safetensors buffer (gammas F32, the rest BF16), parsed. */
static sk_st_file *hash_file(unsigned char **bufp)
{
    ents l = {0};
    real_layout(&l);
    cJSON *h = cJSON_CreateObject();
    size_t off = 0;
    for (int i = 0; i < l.n; i++) {
        const ent *e = &l.e[i];
        const size_t es = is_gamma(e->name) ? 4 : 2;
        cJSON *t = cJSON_AddObjectToObject(h, e->name);
        cJSON_AddStringToObject(t, "dtype", es == 4 ? "F32" : "BF16");
        double sh[5];
        for (int d = 0; d < e->nd; d++) sh[d] = (double)e->sh[d];
        cJSON_AddItemToObject(t, "shape", cJSON_CreateDoubleArray(sh, e->nd));
        const size_t nb = es * (size_t)numel(e);
        double o[2] = {(double)off, (double)(off + nb)};
        cJSON_AddItemToObject(t, "data_offsets", cJSON_CreateDoubleArray(o, 2));
        off += (nb + 7) / 8 * 8;
    }
    char *js = cJSON_PrintUnformatted(h);
    cJSON_Delete(h);
    cr_assert_not_null(js);
    const size_t hl = strlen(js), hp = (hl + 7) / 8 * 8, total = 8 + hp + off;
    unsigned char *buf = calloc(1, total);
    cr_assert_not_null(buf, "no memory for the %zu-byte real-layout file", total);
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)hp >> (8 * i));
    memcpy(buf + 8, js, hl);
    memset(buf + 8 + hl, ' ', hp - hl);
    free(js);
    off = 0;
    for (int i = 0; i < l.n; i++) {
        const ent *e = &l.e[i];
        const size_t es = is_gamma(e->name) ? 4 : 2, nb = es * (size_t)numel(e);
        hash_tensor(e, buf + 8 + hp + off);
        off += (nb + 7) / 8 * 8;
    }
    free(l.e);
    sk_st_file *f = NULL;
    TT_OK(sk_st_parse(buf, total, "(Wan2.2 VAE encoder, hash weights)", &f));
    *bufp = buf;
    return f;
}

Test(wan_vae, real_layout_64x64_matches_pytorch, .init = setup, .fini = teardown, .timeout = 600)
{
    unsigned char *buf = NULL;
    sk_st_file *f = hash_file(&buf);
    sk_wanvae_enc *m = NULL;
    TT_OK(sk_wanvae_enc_load_st(g_be, f, &m));
    sk_st_close(&f);
    free(buf);
    const sk_wanvae_config *c = sk_wanvae_enc_config(m);
    cr_assert_eq(c->dim, 160);
    cr_assert_eq(c->z, 48);
    cr_assert_eq(c->space_factor, 16);
    cr_assert_eq(c->width[3], 640);
    encode_vs(m, FIX "real64.safetensors", "real layout 64x64");
    sk_wanvae_enc_free(&m);
}

/* ---- errors */

/* tiny_a with one tensor renamed / dropped / reshaped, as a buffer. */
static sk_st_file *tiny_edited(const char *drop, const char *extra, unsigned char **bufp)
{
    sk_st_file *src = NULL;
    TT_OK(sk_st_open(FIX "tiny_a.safetensors", &src));
    sk_st_writer *w = NULL;
    TT_OK(sk_st_writer_create(&w));
    for (int i = 0; i < src->n_tensors; i++) {
        const sk_st_tensor *t = &src->tensors[i];
        if (drop && !strcmp(t->name, drop)) continue;
        TT_OK(sk_st_writer_add_raw(w, t->name, t->dtype, t->ndim, t->shape, t->data, t->nbytes));
    }
    if (extra) {
        float z[4] = {0};
        TT_OK(sk_st_writer_add_f32(w, extra, SK_DTYPE_F32, 1, TT_SHAPE(4), z));
    }
    char path[] = "/tmp/sk_wan_vae_XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    close(fd);
    TT_OK(sk_st_writer_save(w, path));
    sk_st_writer_free(&w);
    sk_st_close(&src);
    sk_st_file *f = NULL;
    TT_OK(sk_st_open(path, &f));
    unlink(path);
    *bufp = NULL;
    return f;
}

Test(wan_vae, loader_errors_name_the_tensor, .init = setup, .fini = teardown)
{
    unsigned char *b = NULL;
    sk_wanvae_enc *m = NULL;
    sk_st_file *f = tiny_edited("encoder.middle.1.proj.bias", NULL, &b);
    TT_FAILS(sk_wanvae_enc_load_st(g_be, f, &m), SK_E_FORMAT, "encoder.middle.1.proj.bias");
    cr_assert_null(m);
    sk_st_close(&f);
    f = tiny_edited(NULL, "encoder.middle.3.gamma", &b);
    TT_FAILS(sk_wanvae_enc_load_st(g_be, f, &m), SK_E_FORMAT, "encoder.middle.3.gamma");
    sk_st_close(&f);
    f = tiny_edited("encoder.conv1.weight", NULL, &b);
    TT_FAILS(sk_wanvae_enc_load_st(g_be, f, &m), SK_E_FORMAT, "encoder.conv1.weight");
    sk_st_close(&f);
    /* a TAEHV file is not this model */
    TT_FAILS(sk_wanvae_enc_load(g_be, SK_SOURCE_DIR "/tests/fixtures/taehv/taehv_tiny_22.safetensors",
                                &m), SK_E_FORMAT, "convert_checkpoint.py");
    /* image sizes must be multiples of 16 */
    TT_OK(sk_wanvae_enc_load(g_be, FIX "tiny_a.safetensors", &m));
    float img[3 * 24 * 16] = {0}, lat[48];
    TT_FAILS(sk_wanvae_encode_image(m, img, 24, 16, lat), SK_E_SHAPE, "multiples of 16");
    sk_wanvae_enc_free(&m);
}

/* ---- the layout ops against plain loops */
Test(wan_vae, transpose_and_pad2d_ops, .init = setup, .fini = teardown)
{
    const int64_t B = 2, M = 37, N = 45;
    sk_tensor x = tt_rand(g_be, SK_DTYPE_F32, 3, TT_SHAPE(B, M, N), 7, -1.0f, 1.0f);
    sk_tensor y = tt_new(g_be, SK_DTYPE_F32, 3, TT_SHAPE(B, N, M), NULL);
    TT_OK(sk_op_transpose(g_be, &y, &x));
    float *xs = tt_get(&x), *ys = tt_get(&y);
    for (int64_t b = 0; b < B; b++)
        for (int64_t m = 0; m < M; m++)
            for (int64_t n = 0; n < N; n++)
                cr_assert_eq(ys[(b * N + n) * M + m], xs[(b * M + m) * N + n]);
    sk_tensor bad = tt_new(g_be, SK_DTYPE_F32, 3, TT_SHAPE(B, M, N), NULL);
    TT_FAILS(sk_op_transpose(g_be, &bad, &x), SK_E_SHAPE, "transpose");
    free(xs);
    free(ys);
    sk_tensor p = tt_rand(g_be, SK_DTYPE_F32, 4, TT_SHAPE(2, 3, 5, 6), 9, -1.0f, 1.0f);
    sk_tensor q = tt_new(g_be, SK_DTYPE_F32, 4, TT_SHAPE(2, 3, 7, 9), NULL);
    TT_OK(sk_tensor_upload_f32(&q, (float[2 * 3 * 7 * 9]){[0 ... 377] = 5.0f}, 378));
    TT_OK(sk_op_pad2d(g_be, &q, &p, 1, 2));
    float *ps = tt_get(&p), *qs = tt_get(&q);
    for (int64_t c = 0; c < 6; c++)
        for (int64_t h = 0; h < 7; h++)
            for (int64_t w = 0; w < 9; w++) {
                const int in = h >= 1 && h < 6 && w >= 2 && w < 8;
                const float want = in ? ps[(c * 5 + h - 1) * 6 + w - 2] : 0.0f;
                cr_assert_eq(qs[(c * 7 + h) * 9 + w], want, "pad2d [%lld,%lld,%lld]",
                             (long long)c, (long long)h, (long long)w);
            }
    TT_FAILS(sk_op_pad2d(g_be, &q, &p, 3, 0), SK_E_SHAPE, "cannot hold");
    free(ps);
    free(qs);
    sk_tensor_free(&x);
    sk_tensor_free(&y);
    sk_tensor_free(&bad);
    sk_tensor_free(&p);
    sk_tensor_free(&q);
}

/* ---- the I2V picture preprocessing: torchvision's antialiased bilinear resize */
Test(wan_vae, resize_matches_torch_antialias, .init = setup, .fini = teardown)
{
    int64_t ss[3];
    float *src = read_f32(FIX "resize.safetensors", "src", 3, ss);
    const int64_t sizes[3][2] = {{20, 32}, {64, 96}, {11, 70}};
    for (int k = 0; k < 3; k++) {
        char name[32];
        snprintf(name, sizeof name, "dst_%lldx%lld", (long long)sizes[k][0], (long long)sizes[k][1]);
        int64_t ds[3];
        float *ref = read_f32(FIX "resize.safetensors", name, 3, ds);
        const size_t n = (size_t)(ds[0] * ds[1] * ds[2]);
        float *got = malloc(n * sizeof *got);
        TT_OK(sk_resize_bilinear_aa(src, ss[0], ss[1], ss[2], got, ds[1], ds[2]));
        sk_compare_result r = sk_compare(got, ref, n, 1e-10, 1e-5, 1e-4); /* f32 weights in torch */
        char line[512];
        sk_compare_format(&r, got, ref, line, sizeof line);
        cr_assert(r.ok, "%s: %s", name, line);
        free(ref);
        free(got);
    }
    /* preprocessing: /255, resize, [-1, 1], f16 then bf16 like upstream */
    uint8_t px[2 * 3 * 3];
    for (int i = 0; i < 18; i++) px[i] = (uint8_t)(i * 14);
    float out[3 * 2 * 3];
    TT_OK(sk_image_prep(px, 3, 2, 3, 2, 1, out));
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < 6; i++) {
            float want = sk_bf16_to_f32(sk_f32_to_bf16(sk_f16_to_f32(
                sk_f32_to_f16(((float)px[i * 3 + c] / 255.0f - 0.5f) / 0.5f))));
            cr_assert_eq(out[c * 6 + i], want, "prep [%d, %d]", c, i);
        }
    free(src);
}
