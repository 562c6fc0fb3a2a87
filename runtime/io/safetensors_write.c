/* safetensors_write.c - the safetensors writer (see safetensors.h; the
 * reader is safetensors.c).
 *
 * The writer packs tensor data without gaps because the reference loader
 * (huggingface/safetensors) rejects files whose spans leave holes
 * ("InvalidOffset" / "MetadataIncompleteBuffer"); the data area starts at a
 * multiple of 8 (header padded with spaces) and data is laid out by element
 * size, largest first, so every tensor is naturally aligned with no padding.
 */
#define _GNU_SOURCE /* mkstemp, fsync */
#include "runtime/io/safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* JSON numbers are doubles in cJSON: above 2^53 integers are not exact. */
#define ST_MAX_INT 9007199254740992.0 /* 2^53 */

typedef struct {
    char *name;
    sk_dtype dtype;
    int ndim;
    int64_t shape[SK_MAX_DIMS];
    void *data;
    size_t nbytes;
} st_wentry;

struct sk_st_writer {
    st_wentry *e;
    int n, cap;
    char **mk, **mv;
    int nm, capm;
};

sk_status sk_st_writer_create(sk_st_writer **out)
{
    SK_CHECK(out, SK_E_INVALID_ARG, "sk_st_writer_create: out is NULL");
    *out = calloc(1, sizeof **out);
    SK_CHECK(*out, SK_E_OOM, "sk_st_writer_create: out of memory");
    return SK_OK;
}

void sk_st_writer_free(sk_st_writer **w)
{
    if (!w || !*w) return;
    sk_st_writer *x = *w;
    for (int i = 0; i < x->n; i++) {
        free(x->e[i].name);
        free(x->e[i].data);
    }
    free(x->e);
    for (int i = 0; i < x->nm; i++) {
        free(x->mk[i]);
        free(x->mv[i]);
    }
    free(x->mk);
    free(x->mv);
    free(x);
    *w = NULL;
}

/* Checks name/dtype/shape, returns the byte size and a new slot. */
static sk_status writer_slot(sk_st_writer *w, const char *name, sk_dtype dtype, int ndim,
                             const int64_t *shape, size_t *nbytes, st_wentry **slot)
{
    SK_CHECK(w && name, SK_E_INVALID_ARG, "safetensors writer: NULL writer or name");
    SK_CHECK(*name, SK_E_INVALID_ARG, "safetensors writer: empty tensor name");
    SK_CHECK(strcmp(name, "__metadata__") != 0, SK_E_INVALID_ARG,
             "safetensors writer: '__metadata__' is reserved and cannot name a tensor");
    SK_CHECK((unsigned)dtype < SK_DTYPE_COUNT_, SK_E_INVALID_ARG,
             "safetensors writer: tensor '%s': invalid dtype %d", name, (int)dtype);
    SK_CHECK(ndim >= 0 && ndim <= SK_MAX_DIMS, SK_E_INVALID_ARG,
             "safetensors writer: tensor '%s': ndim %d outside 0..%d", name, ndim, SK_MAX_DIMS);
    SK_CHECK(ndim == 0 || shape, SK_E_INVALID_ARG,
             "safetensors writer: tensor '%s': shape is NULL", name);
    uint64_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        SK_CHECK(shape[i] >= 0 && (double)shape[i] < ST_MAX_INT, SK_E_INVALID_ARG,
                 "safetensors writer: tensor '%s': dim %d is %lld (must be in 0..2^53)", name,
                 i, (long long)shape[i]);
        uint64_t d = (uint64_t)shape[i];
        SK_CHECK(d == 0 || numel <= SIZE_MAX / 8 / d, SK_E_INVALID_ARG,
                 "safetensors writer: tensor '%s': shape too large", name);
        numel *= d;
    }
    for (int i = 0; i < w->n; i++)
        SK_CHECK(strcmp(w->e[i].name, name) != 0, SK_E_INVALID_ARG,
                 "safetensors writer: tensor '%s' added twice", name);
    if (w->n == w->cap) {
        int cap = w->cap ? w->cap * 2 : 16;
        st_wentry *ne = realloc(w->e, (size_t)cap * sizeof *ne);
        SK_CHECK(ne, SK_E_OOM, "safetensors writer: out of memory");
        w->e = ne;
        w->cap = cap;
    }
    st_wentry *e = &w->e[w->n];
    memset(e, 0, sizeof *e);
    e->dtype = dtype;
    e->ndim = ndim;
    for (int i = 0; i < ndim; i++) e->shape[i] = shape[i];
    e->nbytes = (size_t)numel * sk_dtype_size(dtype);
    *nbytes = e->nbytes;
    *slot = e;
    return SK_OK;
}

sk_status sk_st_writer_add_raw(sk_st_writer *w, const char *name, sk_dtype dtype, int ndim,
                               const int64_t *shape, const void *data, size_t nbytes)
{
    size_t need;
    st_wentry *e;
    SK_TRY(writer_slot(w, name, dtype, ndim, shape, &need, &e));
    char sb[160];
    SK_CHECK(nbytes == need, SK_E_SHAPE,
             "safetensors writer: tensor '%s': %zu bytes given, shape %s x %s needs %zu", name,
             nbytes, sk_shape_str_n(ndim, shape, sb, sizeof sb), sk_dtype_st_name(dtype), need);
    SK_CHECK(data || need == 0, SK_E_INVALID_ARG, "safetensors writer: tensor '%s': data is NULL",
             name);
    e->name = strdup(name);
    e->data = malloc(need ? need : 1);
    if (!e->name || !e->data) {
        free(e->name);
        free(e->data);
        return SK_ERR(SK_E_OOM, "safetensors writer: tensor '%s': out of memory (%zu bytes)",
                      name, need);
    }
    if (need) memcpy(e->data, data, need);
    w->n++;
    return SK_OK;
}

sk_status sk_st_writer_add_f32(sk_st_writer *w, const char *name, sk_dtype dtype, int ndim,
                               const int64_t *shape, const float *data)
{
    size_t need;
    st_wentry *e;
    SK_TRY(writer_slot(w, name, dtype, ndim, shape, &need, &e));
    SK_CHECK(sk_dtype_is_float(dtype), SK_E_DTYPE,
             "safetensors writer: tensor '%s': add_f32 needs a float dtype, got %s "
             "(use sk_st_writer_add_raw for integers)", name, sk_dtype_st_name(dtype));
    size_t n = need / sk_dtype_size(dtype);
    SK_CHECK(data || n == 0, SK_E_INVALID_ARG, "safetensors writer: tensor '%s': data is NULL",
             name);
    e->name = strdup(name);
    e->data = malloc(need ? need : 1);
    if (!e->name || !e->data) {
        free(e->name);
        free(e->data);
        return SK_ERR(SK_E_OOM, "safetensors writer: tensor '%s': out of memory (%zu bytes)",
                      name, need);
    }
    sk_status st = n ? sk_convert(e->data, dtype, data, SK_DTYPE_F32, n) : SK_OK;
    if (st != SK_OK) {
        free(e->name);
        free(e->data);
        return st;
    }
    w->n++;
    return SK_OK;
}

sk_status sk_st_writer_meta(sk_st_writer *w, const char *key, const char *value)
{
    SK_CHECK(w && key && value, SK_E_INVALID_ARG, "safetensors writer: NULL metadata key/value");
    for (int i = 0; i < w->nm; i++)
        if (!strcmp(w->mk[i], key)) { /* last value wins */
            char *v = strdup(value);
            SK_CHECK(v, SK_E_OOM, "safetensors writer: out of memory");
            free(w->mv[i]);
            w->mv[i] = v;
            return SK_OK;
        }
    if (w->nm == w->capm) {
        int cap = w->capm ? w->capm * 2 : 8;
        char **k = realloc(w->mk, (size_t)cap * sizeof *k);
        SK_CHECK(k, SK_E_OOM, "safetensors writer: out of memory");
        w->mk = k;
        char **v = realloc(w->mv, (size_t)cap * sizeof *v);
        SK_CHECK(v, SK_E_OOM, "safetensors writer: out of memory");
        w->mv = v;
        w->capm = cap;
    }
    char *k = strdup(key), *v = strdup(value);
    if (!k || !v) {
        free(k);
        free(v);
        return SK_ERR(SK_E_OOM, "safetensors writer: out of memory");
    }
    w->mk[w->nm] = k;
    w->mv[w->nm] = v;
    w->nm++;
    return SK_OK;
}

static sk_status write_all(int fd, const void *p, size_t n, const char *path)
{
    const char *c = p;
    while (n) {
        ssize_t k = write(fd, c, n);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0)
            return SK_ERR(SK_E_IO, "safetensors writer: writing '%s' failed: %s", path,
                          strerror(errno));
        c += k;
        n -= (size_t)k;
    }
    return SK_OK;
}

/* Builds the padded header; offs[i] receives tensor i's data offset. */
static sk_status build_header(const sk_st_writer *w, const uint64_t *offs, char **out, size_t *len)
{
    cJSON *root = cJSON_CreateObject();
    SK_CHECK(root, SK_E_OOM, "safetensors writer: out of memory");
    int ok = 1;
    if (w->nm) {
        cJSON *m = cJSON_AddObjectToObject(root, "__metadata__");
        ok = m != NULL;
        for (int i = 0; ok && i < w->nm; i++) ok = cJSON_AddStringToObject(m, w->mk[i], w->mv[i]) != NULL;
    }
    for (int i = 0; ok && i < w->n; i++) {
        const st_wentry *e = &w->e[i];
        cJSON *t = cJSON_AddObjectToObject(root, e->name);
        ok = t && cJSON_AddStringToObject(t, "dtype", sk_dtype_st_name(e->dtype));
        cJSON *sh = ok ? cJSON_AddArrayToObject(t, "shape") : NULL;
        ok = sh != NULL;
        for (int d = 0; ok && d < e->ndim; d++) {
            cJSON *v = cJSON_CreateNumber((double)e->shape[d]);
            ok = v && cJSON_AddItemToArray(sh, v);
        }
        cJSON *of = ok ? cJSON_AddArrayToObject(t, "data_offsets") : NULL;
        ok = of != NULL;
        cJSON *b = ok ? cJSON_CreateNumber((double)offs[i]) : NULL;
        ok = b && cJSON_AddItemToArray(of, b);
        cJSON *en = ok ? cJSON_CreateNumber((double)(offs[i] + e->nbytes)) : NULL;
        ok = en && cJSON_AddItemToArray(of, en);
    }
    char *s = ok ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    SK_CHECK(s, SK_E_OOM, "safetensors writer: out of memory building the header");
    size_t n = strlen(s), padded = (n + 7) & ~(size_t)7;
    char *h = realloc(s, padded + 1);
    if (!h) {
        free(s);
        return SK_ERR(SK_E_OOM, "safetensors writer: out of memory");
    }
    memset(h + n, ' ', padded - n);
    h[padded] = 0;
    *out = h;
    *len = padded;
    return SK_OK;
}

sk_status sk_st_writer_save(sk_st_writer *w, const char *path)
{
    SK_CHECK(w && path && *path, SK_E_INVALID_ARG, "safetensors writer: NULL writer or path");
    /* Data order: element size descending, insertion order within a size,
     * so every tensor is naturally aligned without gaps. */
    uint64_t *offs = calloc((size_t)w->n + 1, sizeof *offs);
    int *order = calloc((size_t)w->n + 1, sizeof *order);
    if (!offs || !order) {
        free(offs);
        free(order);
        return SK_ERR(SK_E_OOM, "safetensors writer: out of memory");
    }
    uint64_t pos = 0;
    int k = 0;
    for (size_t esz = 8; esz >= 1; esz /= 2)
        for (int i = 0; i < w->n; i++)
            if (sk_dtype_size(w->e[i].dtype) == esz) {
                offs[i] = pos;
                pos += w->e[i].nbytes;
                order[k++] = i;
            }
    char *hdr = NULL;
    size_t hlen = 0;
    sk_status st = build_header(w, offs, &hdr, &hlen);
    free(offs);
    if (st != SK_OK) {
        free(order);
        return st;
    }
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 16);
    if (!tmp) {
        free(order);
        free(hdr);
        return SK_ERR(SK_E_OOM, "safetensors writer: out of memory");
    }
    snprintf(tmp, plen + 16, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        st = SK_ERR(SK_E_IO,
                    "safetensors writer: cannot create '%s' (temp file for '%s'): %s; hint: "
                    "does the directory exist and is it writable?", tmp, path, strerror(errno));
        goto out;
    }
    /* mkstemp creates 0600; model files are normally world-readable. */
    (void)fchmod(fd, 0644);
    unsigned char pre[8];
    for (int i = 0; i < 8; i++) pre[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
    st = write_all(fd, pre, 8, path);
    if (st == SK_OK) st = write_all(fd, hdr, hlen, path);
    for (int i = 0; st == SK_OK && i < w->n; i++)
        st = write_all(fd, w->e[order[i]].data, w->e[order[i]].nbytes, path);
    if (st == SK_OK && fsync(fd) != 0)
        st = SK_ERR(SK_E_IO, "safetensors writer: fsync of '%s' failed: %s", tmp, strerror(errno));
    if (close(fd) != 0 && st == SK_OK)
        st = SK_ERR(SK_E_IO, "safetensors writer: closing '%s' failed: %s", tmp, strerror(errno));
    if (st == SK_OK && rename(tmp, path) != 0)
        st = SK_ERR(SK_E_IO, "safetensors writer: cannot rename '%s' to '%s': %s", tmp, path,
                    strerror(errno));
    if (st != SK_OK) unlink(tmp);
out:
    free(tmp);
    free(hdr);
    free(order);
    return st;
}
