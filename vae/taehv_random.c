/* taehv_random.c - see taehv_random.h. The decoder's and encoder's tensor lists is the one
 * docs/spec-taehv-umt5.md (A8) gives and vae/taehv_load.c expects; the
 * checkpoint is serialised as safetensors into a host buffer and parsed from
 * there, so the normal strict loader does the binding. */
#include "vae/taehv_random.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/io/safetensors.h"

typedef struct {
    char name[48];
    int ndim;
    int64_t shape[4];
    size_t n;
} ent;

typedef struct {
    ent e[128];
    int n;
} ent_list;

static void add(ent_list *l, const char *name, int nd, int64_t a, int64_t b, int64_t h, int64_t w)
{
    ent *e = &l->e[l->n++];
    snprintf(e->name, sizeof e->name, "%s", name);
    e->ndim = nd;
    e->shape[0] = a; e->shape[1] = b; e->shape[2] = h; e->shape[3] = w;
    e->n = nd == 1 ? (size_t)a : (size_t)(a * b * h * w);
}

static void layers(ent_list *l, int z, const int nf[4])
{
    static const int mem[9] = {3, 4, 5, 9, 10, 11, 15, 16, 17};
    static const int grow[3] = {7, 13, 19}, gstride[3] = {1, 2, 2}, stage[3] = {8, 14, 20};
    char k[48];
    add(l, "decoder.1.weight", 4, nf[0], z, 3, 3);
    add(l, "decoder.1.bias", 1, nf[0], 0, 0, 0);
    for (int i = 0; i < 9; i++) {
        const int64_t ch = nf[i / 3];
        static const int conv[3] = {0, 2, 4};
        for (int j = 0; j < 3; j++) {
            snprintf(k, sizeof k, "decoder.%d.conv.%d.weight", mem[i], conv[j]);
            add(l, k, 4, ch, j == 0 ? 2 * ch : ch, 3, 3);
            snprintf(k, sizeof k, "decoder.%d.conv.%d.bias", mem[i], conv[j]);
            add(l, k, 1, ch, 0, 0, 0);
        }
    }
    for (int s = 0; s < 3; s++) {
        snprintf(k, sizeof k, "decoder.%d.conv.weight", grow[s]);
        add(l, k, 4, (int64_t)nf[s] * gstride[s], nf[s], 1, 1);
        snprintf(k, sizeof k, "decoder.%d.weight", stage[s]);
        add(l, k, 4, nf[s + 1], nf[s], 3, 3);
    }
    /* taew2_2 (48 channels): patch 2, 12 = 3 * 2 * 2 outputs before the pixel shuffle */
    const int rgb = z == 48 ? 12 : 3;
    add(l, "decoder.22.weight", 4, rgb, nf[3], 3, 3);
    add(l, "decoder.22.bias", 1, rgb, 0, 0, 0);
    /* the encoder (width 64, spec A8), after the decoder so the decoder's draws are those of
     * a decoder-only model: video-to-video benchmarks (bench --with-input) encode with it */
    const int64_t E = 64;
    add(l, "encoder.0.weight", 4, E, rgb, 3, 3);
    add(l, "encoder.0.bias", 1, E, 0, 0, 0);
    static const int pool[3] = {2, 7, 12}, pstride[3] = {2, 2, 1}, down[3] = {3, 8, 13};
    static const int emem[9] = {4, 5, 6, 9, 10, 11, 14, 15, 16};
    for (int s = 0; s < 3; s++) {
        snprintf(k, sizeof k, "encoder.%d.conv.weight", pool[s]);
        add(l, k, 4, E, E * pstride[s], 1, 1);
        snprintf(k, sizeof k, "encoder.%d.weight", down[s]);
        add(l, k, 4, E, E, 3, 3);
    }
    for (int i = 0; i < 9; i++) {
        static const int conv[3] = {0, 2, 4};
        for (int j = 0; j < 3; j++) {
            snprintf(k, sizeof k, "encoder.%d.conv.%d.weight", emem[i], conv[j]);
            add(l, k, 4, E, j == 0 ? 2 * E : E, 3, 3);
            snprintf(k, sizeof k, "encoder.%d.conv.%d.bias", emem[i], conv[j]);
            add(l, k, 1, E, 0, 0, 0);
        }
    }
    add(l, "encoder.17.weight", 4, z, E, 3, 3);
    add(l, "encoder.17.bias", 1, z, 0, 0, 0);
}

static uint64_t mix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* standard normal (Box-Muller) */
static float normal(uint64_t *s)
{
    double u1 = ((double)(mix64(s) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
    double u2 = (double)(mix64(s) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

sk_status sk_taehv_random(sk_backend *be, int z, const int nf[4], uint64_t seed,
                       sk_taehv **out)
{
    *out = NULL;
    ent_list l;
    memset(&l, 0, sizeof l);
    layers(&l, z, nf);
    /* header */
    cJSON *h = cJSON_CreateObject();
    SK_CHECK(h, SK_E_OOM, "random TAEHV: out of memory");
    size_t off = 0;
    for (int i = 0; i < l.n; i++) {
        cJSON *t = cJSON_AddObjectToObject(h, l.e[i].name);
        cJSON_AddStringToObject(t, "dtype", "F32");
        double sh[4];
        for (int d = 0; d < l.e[i].ndim; d++) sh[d] = (double)l.e[i].shape[d];
        cJSON_AddItemToObject(t, "shape", cJSON_CreateDoubleArray(sh, l.e[i].ndim));
        double o[2] = {(double)off, (double)(off + 4 * l.e[i].n)};
        cJSON_AddItemToObject(t, "data_offsets", cJSON_CreateDoubleArray(o, 2));
        off += 4 * l.e[i].n;
    }
    char *js = cJSON_PrintUnformatted(h);
    cJSON_Delete(h);
    SK_CHECK(js, SK_E_OOM, "random TAEHV: out of memory");
    size_t hl = strlen(js), hpad = (hl + 7) / 8 * 8;
    size_t total = 8 + hpad + off;
    unsigned char *buf = malloc(total);
    if (!buf) {
        free(js);
        return SK_ERR(SK_E_OOM, "random TAEHV: out of host memory (%zu bytes)", total);
    }
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)hpad >> (8 * i));
    memcpy(buf + 8, js, hl);
    memset(buf + 8 + hl, ' ', hpad - hl); /* the format allows trailing spaces */
    free(js);
    float *data = (float *)(buf + 8 + hpad); /* 8-byte aligned within malloc's block */
    uint64_t rng = seed * 0x2545F4914F6CDD1Dull + 11;
    size_t pos = 0;
    for (int i = 0; i < l.n; i++) {
        const ent *e = &l.e[i];
        float sd = e->ndim == 4 ? 1.2f / sqrtf((float)(e->shape[1] * e->shape[2] * e->shape[3]))
                                : 0.05f;
        for (size_t j = 0; j < e->n; j++) data[pos + j] = sd * normal(&rng);
        pos += e->n;
    }
    sk_st_file *f = NULL;
    sk_status st = sk_st_parse(buf, total, z == 48 ? "(random taew2_2-shaped TAEHV)"
                                                   : "(random taew2_1-shaped TAEHV)", &f);
    if (st == SK_OK) {
        sk_taehv_load_opts o = sk_taehv_load_opts_default();
        o.variant = z == 48 ? SK_TAEHV_W2_2 : SK_TAEHV_W2_1;
        st = sk_taehv_load_st(be, f, &o, out);
    }
    sk_st_close(&f);
    free(buf);
    return st;
}
