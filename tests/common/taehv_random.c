/* taehv_random.c - see taehv_random.h. */
#include "tests/common/taehv_random.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "runtime/io/safetensors.h"
#include "tests/common/compare.h"

typedef struct {
    sk_st_writer *w;
    float *buf;
    size_t cap;
    uint64_t seed;
    sk_dtype dt;
    int count;
} rnd_ctx;

/* Adds tensor name of shape s (1-D bias or 4-D OIHW conv weight). */
static sk_status add(rnd_ctx *c, const char *name, int nd, int64_t a, int64_t b, int64_t h,
                     int64_t w)
{
    const int64_t s[4] = {a, b, h, w};
    size_t n = nd == 1 ? (size_t)a : (size_t)(a * b * h * w);
    if (n > c->cap) {
        float *nb = realloc(c->buf, n * sizeof(float));
        SK_CHECK(nb, SK_E_OOM, "taehv_random: out of memory");
        c->buf = nb;
        c->cap = n;
    }
    /* variance scaling keeps activations O(1); the residual branch is damped */
    float fan = nd == 4 ? (float)(b * h * w) : 1.0f;
    float sd = nd == 4 ? 1.2f / sqrtf(fan) : 0.05f;
    sk_test_fill_normal(c->buf, n, c->seed++, sd);
    c->count++;
    return sk_st_writer_add_f32(c->w, name, c->dt, nd, s, c->buf);
}

static sk_status add_mem(rnd_ctx *c, const char *part, int idx, int64_t ch)
{
    char k[64];
    static const int convs[3] = {0, 2, 4};
    for (int i = 0; i < 3; i++) {
        snprintf(k, sizeof k, "%s.%d.conv.%d.weight", part, idx, convs[i]);
        SK_TRY(add(c, k, 4, ch, i == 0 ? 2 * ch : ch, 3, 3));
        snprintf(k, sizeof k, "%s.%d.conv.%d.bias", part, idx, convs[i]);
        SK_TRY(add(c, k, 1, ch, 0, 0, 0));
    }
    return SK_OK;
}

static sk_status build(rnd_ctx *c, int z, int p, const int nf[4], int e)
{
    static const int dmem[9] = {3, 4, 5, 9, 10, 11, 15, 16, 17};
    static const int emem[9] = {4, 5, 6, 9, 10, 11, 14, 15, 16};
    static const int grow[3] = {7, 13, 19}, gstride[3] = {1, 2, 2}, stage[3] = {8, 14, 20};
    static const int pool[3] = {2, 7, 12}, pstride[3] = {2, 2, 1}, down[3] = {3, 8, 13};
    const int rgb = 3 * p * p;
    char k[64];
    SK_TRY(add(c, "decoder.1.weight", 4, nf[0], z, 3, 3));
    SK_TRY(add(c, "decoder.1.bias", 1, nf[0], 0, 0, 0));
    for (int i = 0; i < 9; i++) SK_TRY(add_mem(c, "decoder", dmem[i], nf[i / 3]));
    for (int s = 0; s < 3; s++) {
        snprintf(k, sizeof k, "decoder.%d.conv.weight", grow[s]);
        SK_TRY(add(c, k, 4, nf[s] * gstride[s], nf[s], 1, 1));
        snprintf(k, sizeof k, "decoder.%d.weight", stage[s]);
        SK_TRY(add(c, k, 4, nf[s + 1], nf[s], 3, 3));
    }
    SK_TRY(add(c, "decoder.22.weight", 4, rgb, nf[3], 3, 3));
    SK_TRY(add(c, "decoder.22.bias", 1, rgb, 0, 0, 0));
    SK_TRY(add(c, "encoder.0.weight", 4, e, rgb, 3, 3));
    SK_TRY(add(c, "encoder.0.bias", 1, e, 0, 0, 0));
    for (int s = 0; s < 3; s++) {
        snprintf(k, sizeof k, "encoder.%d.conv.weight", pool[s]);
        SK_TRY(add(c, k, 4, e, e * pstride[s], 1, 1));
        snprintf(k, sizeof k, "encoder.%d.weight", down[s]);
        SK_TRY(add(c, k, 4, e, e, 3, 3));
    }
    for (int i = 0; i < 9; i++) SK_TRY(add_mem(c, "encoder", emem[i], e));
    SK_TRY(add(c, "encoder.17.weight", 4, z, e, 3, 3));
    SK_TRY(add(c, "encoder.17.bias", 1, z, 0, 0, 0));
    return SK_OK;
}

sk_status sk_test_write_taehv_random(const char *path, int z, int p, const int nf[4], int enc,
                                     uint64_t seed, sk_dtype dtype, int *n_tensors)
{
    rnd_ctx c = {.seed = seed, .dt = dtype};
    SK_TRY(sk_st_writer_create(&c.w));
    sk_status st = build(&c, z, p, nf, enc);
    if (st == SK_OK) st = sk_st_writer_save(c.w, path);
    sk_st_writer_free(&c.w);
    free(c.buf);
    if (n_tensors) *n_tensors = c.count;
    return st;
}
