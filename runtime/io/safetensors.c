/* safetensors.c - see safetensors.h.
 *
 * Format: u64 little-endian header length N, N bytes of JSON header
 * {"name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]},
 *  "__metadata__": {"k": "v"}}, then the data area; offsets are relative to
 * the start of the data area.
 *
 * The reader trusts nothing: every number that comes out of the header is
 * range-checked before it is used in arithmetic, and every byte span is
 * checked against the data area, so a corrupt or hostile file yields a
 * status and a message, never an out-of-bounds read (tests/fuzz).
 *
 * The writer is in safetensors_write.c.
 */
#define _GNU_SOURCE /* mkstemp, fsync */
#include "runtime/io/safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* Same limit as the reference implementation: a header beyond this is a
 * corrupt length prefix, not a real model. */
#define ST_MAX_HEADER ((uint64_t)100000000)
/* JSON numbers are doubles in cJSON: above 2^53 integers are not exact. */
#define ST_MAX_INT 9007199254740992.0 /* 2^53 */

/* The public sk_st_file plus what only this file needs. pub must stay first. */
typedef struct {
    sk_st_file pub;
    int owns_map;   /* 1: map came from mmap in sk_st_open */
    int *by_name;   /* tensor indices sorted by name, for sk_st_find */
} st_file_impl;

/* ------------------------------------------------------------------ errors */

/* Tensor names come from untrusted input: show at most 120 bytes, escaped. */
static const char *show(const char *s, char *buf, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; s[i] && o + 5 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (i >= 120) { memcpy(buf + o, "...", 3); o += 3; break; }
        if (c < 32 || c == 127) o += (size_t)snprintf(buf + o, cap - o, "\\x%02x", c);
        else buf[o++] = (char)c;
    }
    buf[o] = 0;
    return buf;
}

/* Raises st with "safetensors 'label'[: tensor 'name']: <message>". */
static sk_status __attribute__((format(printf, 5, 6)))
fail_at(sk_status st, int line, const char *label, const char *tensor, const char *fmt, ...)
{
    char msg[1024], nb[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (tensor)
        return sk_error_set(st, __FILE__, line, "safetensors", "safetensors '%s': tensor '%s': %s",
                            label, show(tensor, nb, sizeof nb), msg);
    return sk_error_set(st, __FILE__, line, "safetensors", "safetensors '%s': %s", label, msg);
}
#define FAIL(st, label, tensor, ...) fail_at((st), __LINE__, (label), (tensor), __VA_ARGS__)

/* ------------------------------------------------------------ validation */

static uint64_t le64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

/* dtypes that exist in the safetensors format but that sinkstream does not
 * read: a clear "unsupported" instead of "unknown". */
static int is_known_unsupported(const char *s)
{
    static const char *const k[] = {"BOOL", "I8", "I16", "U16", "U32", "U64", "F8_E5M2",
                                    "F8_E8M0", "F4", "F6_E2M3", "F6_E3M2", "C64", "F8_E4M3FNUZ",
                                    "F8_E5M2FNUZ"};
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++)
        if (!strcmp(s, k[i])) return 1;
    return 0;
}

/* A JSON number that must be an exact non-negative integer < 2^53. */
static int get_uint(const cJSON *v, uint64_t *out)
{
    if (!cJSON_IsNumber(v)) return 0;
    double d = v->valuedouble;
    if (!isfinite(d) || d < 0 || d >= ST_MAX_INT || floor(d) != d) return 0;
    *out = (uint64_t)d;
    return 1;
}

static const char *json_type(const cJSON *v)
{
    if (!v) return "missing";
    if (cJSON_IsString(v)) return "a string";
    if (cJSON_IsNumber(v)) return "a number";
    if (cJSON_IsArray(v)) return "an array";
    if (cJSON_IsObject(v)) return "an object";
    if (cJSON_IsBool(v)) return "a boolean";
    if (cJSON_IsNull(v)) return "null";
    return "invalid";
}

/* Lexical pass over the raw header, for what cJSON lets through.
 * Control bytes: cJSON skips any byte <= 0x20 as whitespace and keeps raw
 * control bytes inside strings; JSON allows neither.
 * Numbers: cJSON turns "2.0", "1e3" and "+2" into the same double as "2",
 * but shapes and offsets must be plain integers. Flags any number token
 * inside an array that is not [0-9]+ without leading zeros, and names the
 * top-level key it sits under. Strings are skipped (escape-aware) so tensor
 * names may contain anything escaped. */
static sk_status lex_integers(const char *h, size_t n, const char *label)
{
    int depth = 0, arr = 0; /* arr: nesting of '[' */
    size_t key_at = 0, key_len = 0;
    for (size_t i = 0; i < n; i++) {
        char c = h[i];
        if (c == '"') {
            size_t s = ++i;
            while (i < n && h[i] != '"') {
                if ((unsigned char)h[i] < 0x20)
                    return FAIL(SK_E_FORMAT, label, NULL,
                                "raw control byte 0x%02x inside a string at header byte %zu "
                                "(JSON needs it escaped)", (unsigned char)h[i], i);
                i += (h[i] == '\\') ? 2 : 1;
            }
            if (depth == 1) { key_at = s; key_len = (i < n ? i : n) - s; }
            continue;
        }
        if ((unsigned char)c < 0x20 && c != '\t' && c != '\n' && c != '\r')
            return FAIL(SK_E_FORMAT, label, NULL,
                        "control byte 0x%02x at header byte %zu is not valid JSON",
                        (unsigned char)c, i);
        if (c == '{') depth++;
        else if (c == '}') depth--;
        else if (c == '[') arr++;
        else if (c == ']') arr--;
        else if (arr > 0 && (c == '-' || c == '+' || c == '.' || (c >= '0' && c <= '9'))) {
            size_t s = i;
            int plain = 1;
            while (i < n && strchr("0123456789+-.eE", h[i]) && h[i]) {
                if (h[i] < '0' || h[i] > '9') plain = 0;
                i++;
            }
            if (i - s > 1 && h[s] == '0') plain = 0;
            if (!plain) {
                char key[128], tok[40];
                size_t kl = key_len < sizeof key - 1 ? key_len : sizeof key - 1;
                memcpy(key, h + key_at, kl);
                key[kl] = 0;
                size_t tl = i - s < sizeof tok - 1 ? i - s : sizeof tok - 1;
                memcpy(tok, h + s, tl);
                tok[tl] = 0;
                return FAIL(SK_E_FORMAT, label, key_len ? key : NULL,
                            "number '%s' at header byte %zu is not a plain non-negative "
                            "integer (shape and data_offsets hold integers like 3, not "
                            "3.0, 3e0 or -3)", tok, s);
            }
            i--;
        }
    }
    return SK_OK;
}

static int cmp_str_ptr(const void *a, const void *b)
{
    return strcmp(**(const char *const *const *)a, **(const char *const *const *)b);
}

/* Context for sorting tensor indices by name (qsort has no user pointer). */
static int cmp_idx_name_base(const sk_st_tensor *t, int a, int b)
{
    int c = strcmp(t[a].name, t[b].name);
    return c ? c : (a > b) - (a < b);
}
static _Thread_local const sk_st_tensor *tl_sort_tensors;
static int cmp_idx_name(const void *a, const void *b)
{
    return cmp_idx_name_base(tl_sort_tensors, *(const int *)a, *(const int *)b);
}
static int cmp_idx_span(const void *a, const void *b)
{
    const sk_st_tensor *t = tl_sort_tensors;
    const sk_st_tensor *x = &t[*(const int *)a], *y = &t[*(const int *)b];
    if (x->offset != y->offset) return x->offset < y->offset ? -1 : 1;
    return (x->nbytes > y->nbytes) - (x->nbytes < y->nbytes);
}

/* Validates one tensor entry and fills t (name owned by t). */
static sk_status parse_entry(const cJSON *e, const char *label, uint64_t data_size, sk_st_tensor *t)
{
    const char *name = e->string;
    char sb[160];
    if (!cJSON_IsObject(e))
        return FAIL(SK_E_FORMAT, label, name,
                    "entry is %s, expected an object {\"dtype\", \"shape\", \"data_offsets\"}",
                    json_type(e));
    const cJSON *dt = NULL, *sh = NULL, *off = NULL;
    for (const cJSON *f = e->child; f; f = f->next) {
        const cJSON **slot = !strcmp(f->string, "dtype")          ? &dt
                             : !strcmp(f->string, "shape")        ? &sh
                             : !strcmp(f->string, "data_offsets") ? &off
                                                                  : NULL;
        if (!slot) continue; /* unknown keys are tolerated, as the reference loader does */
        if (*slot)
            return FAIL(SK_E_FORMAT, label, name, "key '%s' appears twice in the entry",
                        f->string);
        *slot = f;
    }
    /* dtype */
    if (!cJSON_IsString(dt))
        return FAIL(SK_E_FORMAT, label, name, "\"dtype\" is %s, expected a string like \"BF16\"",
                    json_type(dt));
    if (sk_dtype_from_st_name(dt->valuestring, &t->dtype) != SK_OK) {
        if (is_known_unsupported(dt->valuestring))
            return FAIL(SK_E_DTYPE, label, name,
                        "unsupported dtype '%s' (sinkstream reads F64 F32 F16 BF16 F8_E4M3 "
                        "I64 I32 U8; convert the tensor first)", show(dt->valuestring, sb, sizeof sb));
        return FAIL(SK_E_DTYPE, label, name,
                    "unknown dtype '%s' (expected one of F64 F32 F16 BF16 F8_E4M3 I64 I32 U8)",
                    show(dt->valuestring, sb, sizeof sb));
    }
    /* shape */
    if (!cJSON_IsArray(sh))
        return FAIL(SK_E_FORMAT, label, name, "\"shape\" is %s, expected an array of integers",
                    json_type(sh));
    int nd = cJSON_GetArraySize(sh);
    if (nd > SK_MAX_DIMS)
        return FAIL(SK_E_FORMAT, label, name, "shape has %d dims, at most %d are supported", nd,
                    SK_MAX_DIMS);
    t->ndim = nd;
    uint64_t numel = 1;
    int k = 0, overflow = 0;
    for (const cJSON *d = sh->child; d; d = d->next, k++) {
        uint64_t v;
        if (!get_uint(d, &v)) {
            if (cJSON_IsNumber(d))
                return FAIL(SK_E_FORMAT, label, name,
                            "shape dim %d is %.17g, expected a non-negative integer below 2^53",
                            k, d->valuedouble);
            return FAIL(SK_E_FORMAT, label, name,
                        "shape dim %d is %s, expected a non-negative integer", k, json_type(d));
        }
        t->shape[k] = (int64_t)v;
        if (v != 0 && numel > UINT64_MAX / v) overflow = 1;
        else numel *= v;
    }
    char shs[160];
    sk_shape_str_n(nd, t->shape, shs, sizeof shs);
    size_t esz = sk_dtype_size(t->dtype);
    /* A zero dim makes the product 0 whatever the others are. */
    for (int i = 0; i < nd; i++)
        if (t->shape[i] == 0) overflow = 0, numel = 0;
    if (overflow || numel > UINT64_MAX / esz)
        return FAIL(SK_E_FORMAT, label, name,
                    "shape %s x %zu bytes overflows 64 bits (corrupt shape)", shs, esz);
    uint64_t need = numel * esz;
    /* data_offsets */
    if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2)
        return FAIL(SK_E_FORMAT, label, name,
                    "\"data_offsets\" is %s%s, expected an array [begin, end]", json_type(off),
                    cJSON_IsArray(off) ? " of the wrong length" : "");
    uint64_t b, en;
    if (!get_uint(off->child, &b) || !get_uint(off->child->next, &en))
        return FAIL(SK_E_FORMAT, label, name,
                    "data_offsets must be two non-negative integers below 2^53");
    if (en < b)
        return FAIL(SK_E_FORMAT, label, name,
                    "data_offsets [%llu, %llu] end before they begin", (unsigned long long)b,
                    (unsigned long long)en);
    if (en - b != need)
        return FAIL(SK_E_FORMAT, label, name,
                    "data_offsets [%llu, %llu] span %llu bytes but shape %s x %s (%zu bytes) "
                    "needs %llu", (unsigned long long)b, (unsigned long long)en,
                    (unsigned long long)(en - b), shs, sk_dtype_st_name(t->dtype), esz,
                    (unsigned long long)need);
    if (en > data_size)
        return FAIL(SK_E_FORMAT, label, name,
                    "data_offsets [%llu, %llu] run past the end of the data area (%llu bytes): "
                    "the file is truncated", (unsigned long long)b, (unsigned long long)en,
                    (unsigned long long)data_size);
    t->offset = b;
    t->nbytes = (size_t)need;
    t->name = strdup(name);
    if (!t->name) return SK_ERR(SK_E_OOM, "safetensors '%s': out of memory", label);
    return SK_OK;
}

static sk_status parse_metadata(const cJSON *m, const char *label, sk_st_file *f)
{
    char kb[160];
    if (!cJSON_IsObject(m))
        return FAIL(SK_E_FORMAT, label, NULL,
                    "\"__metadata__\" is %s, expected an object of strings", json_type(m));
    int n = cJSON_GetArraySize(m);
    f->meta_keys = calloc((size_t)n + 1, sizeof(char *));
    f->meta_values = calloc((size_t)n + 1, sizeof(char *));
    if (!f->meta_keys || !f->meta_values)
        return SK_ERR(SK_E_OOM, "safetensors '%s': out of memory", label);
    for (const cJSON *v = m->child; v; v = v->next) {
        if (!cJSON_IsString(v))
            return FAIL(SK_E_FORMAT, label, NULL,
                        "__metadata__ value for key '%s' is %s, expected a string",
                        show(v->string, kb, sizeof kb), json_type(v));
        for (int i = 0; i < f->n_meta; i++)
            if (!strcmp(f->meta_keys[i], v->string))
                return FAIL(SK_E_FORMAT, label, NULL, "__metadata__ key '%s' is duplicate",
                            show(v->string, kb, sizeof kb));
        f->meta_keys[f->n_meta] = strdup(v->string);
        f->meta_values[f->n_meta] = strdup(v->valuestring);
        f->n_meta++;
        if (!f->meta_keys[f->n_meta - 1] || !f->meta_values[f->n_meta - 1])
            return SK_ERR(SK_E_OOM, "safetensors '%s': out of memory", label);
    }
    return SK_OK;
}

/* Top-level names must be unique: cJSON keeps both copies of a repeated key. */
static sk_status check_duplicate_keys(const cJSON *root, int n, const char *label)
{
    if (n < 2) return SK_OK;
    const char **names = malloc((size_t)n * sizeof *names);
    const char ***ptrs = malloc((size_t)n * sizeof *ptrs);
    if (!names || !ptrs) {
        free(names);
        free(ptrs);
        return SK_ERR(SK_E_OOM, "safetensors '%s': out of memory", label);
    }
    int i = 0;
    for (const cJSON *e = root->child; e; e = e->next, i++) {
        names[i] = e->string;
        ptrs[i] = &names[i];
    }
    qsort(ptrs, (size_t)n, sizeof *ptrs, cmp_str_ptr);
    sk_status st = SK_OK;
    for (i = 1; i < n; i++)
        if (!strcmp(*ptrs[i - 1], *ptrs[i])) {
            st = FAIL(SK_E_FORMAT, label, *ptrs[i],
                      "duplicate tensor name in the header (the name appears more than once)");
            break;
        }
    free(names);
    free(ptrs);
    return st;
}

/* Files that are commonly mistaken for safetensors, recognised by their
 * first bytes, so the message can say what the file really is. */
static const char *sniff(const unsigned char *buf, size_t size)
{
    static const struct { const char *magic, *what; } k[] = {
        {"version https://git-lfs", "a Git LFS pointer, not the weights (run 'git lfs pull')"},
        {"PK\x03\x04", "a zip archive, e.g. a PyTorch .pt/.pth checkpoint (convert it to "
                         "safetensors first)"},
        {"\x80\x02", "a Python pickle, e.g. an old PyTorch checkpoint (convert it first)"},
        {"GGUF", "a GGUF file, not safetensors"},
        {"<!DOCTYPE", "an HTML page (a failed or unauthenticated download?)"},
        {"<html", "an HTML page (a failed or unauthenticated download?)"},
        {"{", "a JSON text file (an index or config?), not safetensors"},
    };
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++) {
        size_t l = strlen(k[i].magic);
        if (size >= l && !memcmp(buf, k[i].magic, l)) return k[i].what;
    }
    /* videos (an easy mix-up for `encode --frames`): MP4/MOV have "ftyp" at byte 4 */
    if (size >= 8 && !memcmp(buf + 4, "ftyp", 4))
        return "an MP4/MOV video; sinkstream reads frames from safetensors (`frames` [T, 3, H, W] "
               "f32: generate/decode --rgb-out writes one)";
    if (size >= 4 && !memcmp(buf, "\x1a\x45\xdf\xa3", 4))
        return "a Matroska/WebM video; sinkstream reads frames from safetensors (`frames` "
               "[T, 3, H, W] f32: generate/decode --rgb-out writes one)";
    return NULL;
}

static sk_status parse_header(const unsigned char *buf, size_t size, const char *label,
                              st_file_impl *fi)
{
    sk_st_file *f = &fi->pub;
    if (size == 0)
        return FAIL(SK_E_FORMAT, label, NULL,
                    "file is empty (0 bytes); hint: an interrupted download?");
    if (size < 8)
        return FAIL(SK_E_FORMAT, label, NULL,
                    "file is %zu bytes, shorter than the 8-byte header length prefix", size);
    uint64_t n = le64(buf);
    /* A length prefix that cannot be right: say what the file is, if we can tell. */
    const char *what = (n == 0 || n > ST_MAX_HEADER || n > size - 8) ? sniff(buf, size) : NULL;
    if (what) return FAIL(SK_E_FORMAT, label, NULL, "not a safetensors file: it is %s", what);
    if (n == 0)
        return FAIL(SK_E_FORMAT, label, NULL,
                    "header length is 0 (expected at least 2 bytes for \"{}\")");
    if (n > ST_MAX_HEADER)
        return FAIL(SK_E_FORMAT, label, NULL,
                    "header length %llu is absurd (limit %llu bytes): not a safetensors file, "
                    "or its first 8 bytes are corrupt", (unsigned long long)n,
                    (unsigned long long)ST_MAX_HEADER);
    if (n > size - 8)
        return FAIL(SK_E_FORMAT, label, NULL,
                    "header length %llu exceeds the %zu bytes that follow the prefix: the file "
                    "is truncated", (unsigned long long)n, size - 8);
    const char *h = (const char *)buf + 8;
    if (h[0] != '{')
        return FAIL(SK_E_FORMAT, label, NULL,
                    "header does not start with '{' (first byte 0x%02x): not a safetensors file",
                    (unsigned char)h[0]);
    const char *nul = memchr(h, 0, (size_t)n);
    if (nul)
        return FAIL(SK_E_FORMAT, label, NULL,
                    "header contains a NUL byte at header byte %zu (padding must be spaces)",
                    (size_t)(nul - h));
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(h, (size_t)n, &end, 0);
    if (!root) {
        size_t at = end && end >= h && end <= h + n ? (size_t)(end - h) : 0;
        return FAIL(SK_E_FORMAT, label, NULL,
                    "header is not valid JSON (error near header byte %zu of %llu)", at,
                    (unsigned long long)n);
    }
    sk_status st = SK_OK;
    for (const char *p = end; p < h + n; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            st = FAIL(SK_E_FORMAT, label, NULL,
                      "unexpected bytes after the JSON header at header byte %zu (only space "
                      "padding may follow)", (size_t)(p - h));
            goto done;
        }
    if (!cJSON_IsObject(root)) {
        st = FAIL(SK_E_FORMAT, label, NULL, "header is %s, expected a JSON object",
                  json_type(root));
        goto done;
    }
    int count = cJSON_GetArraySize(root);
    SK_TRY_GOTO(st, check_duplicate_keys(root, count, label), done);

    uint64_t data_size = (uint64_t)(size - 8 - n);
    f->tensors = calloc((size_t)count + 1, sizeof *f->tensors);
    if (!f->tensors) {
        st = SK_ERR(SK_E_OOM, "safetensors '%s': out of memory", label);
        goto done;
    }
    for (const cJSON *e = root->child; e; e = e->next) {
        if (!strcmp(e->string, "__metadata__")) {
            SK_TRY_GOTO(st, parse_metadata(e, label, f), done);
            continue;
        }
        sk_st_tensor *t = &f->tensors[f->n_tensors];
        SK_TRY_GOTO(st, parse_entry(e, label, data_size, t), done);
        t->data = buf + 8 + n + t->offset;
        f->n_tensors++;
    }
    /* After the per-tensor checks, whose messages are more specific. */
    SK_TRY_GOTO(st, lex_integers(h, (size_t)n, label), done);

    /* Overlap: sort by begin offset; empty tensors overlap nothing. */
    int nt = f->n_tensors;
    int *idx = malloc(((size_t)nt + 1) * sizeof *idx);
    fi->by_name = malloc(((size_t)nt + 1) * sizeof *fi->by_name);
    if (!idx || !fi->by_name) {
        free(idx);
        st = SK_ERR(SK_E_OOM, "safetensors '%s': out of memory", label);
        goto done;
    }
    for (int i = 0; i < nt; i++) idx[i] = fi->by_name[i] = i;
    tl_sort_tensors = f->tensors;
    qsort(idx, (size_t)nt, sizeof *idx, cmp_idx_span);
    qsort(fi->by_name, (size_t)nt, sizeof *fi->by_name, cmp_idx_name);
    const sk_st_tensor *prev = NULL;
    for (int i = 0; i < nt && st == SK_OK; i++) {
        const sk_st_tensor *t = &f->tensors[idx[i]];
        if (t->nbytes == 0) continue;
        if (prev && t->offset < prev->offset + prev->nbytes) {
            char pb[160];
            st = FAIL(SK_E_FORMAT, label, t->name,
                      "bytes [%llu, %llu) overlap tensor '%s' at [%llu, %llu)",
                      (unsigned long long)t->offset, (unsigned long long)(t->offset + t->nbytes),
                      show(prev->name, pb, sizeof pb), (unsigned long long)prev->offset,
                      (unsigned long long)(prev->offset + prev->nbytes));
        }
        prev = t;
    }
    free(idx);
done:
    cJSON_Delete(root);
    return st;
}

static void free_file(st_file_impl *fi)
{
    if (!fi) return;
    sk_st_file *f = &fi->pub;
    for (int i = 0; i < f->n_tensors; i++) free(f->tensors[i].name);
    /* A failed parse_entry may have left a name in the slot past n_tensors. */
    if (f->tensors) free(f->tensors[f->n_tensors].name);
    free(f->tensors);
    for (int i = 0; i < f->n_meta; i++) {
        free(f->meta_keys[i]);
        free(f->meta_values[i]);
    }
    free(f->meta_keys);
    free(f->meta_values);
    free(fi->by_name);
    if (fi->owns_map && f->map) munmap(f->map, f->map_size);
    free(f->path);
    free(fi);
}

sk_status sk_st_parse(const void *buf, size_t size, const char *label, sk_st_file **out)
{
    SK_CHECK(out, SK_E_INVALID_ARG, "sk_st_parse: out is NULL");
    *out = NULL;
    if (!label) label = "<memory>";
    SK_CHECK(buf || size == 0, SK_E_INVALID_ARG, "sk_st_parse('%s'): buf is NULL", label);
    st_file_impl *fi = calloc(1, sizeof *fi);
    if (!fi) return SK_ERR(SK_E_OOM, "safetensors '%s': out of memory", label);
    fi->pub.path = strdup(label);
    fi->pub.map = (void *)buf;
    fi->pub.map_size = size;
    if (!fi->pub.path) {
        free_file(fi);
        return SK_ERR(SK_E_OOM, "safetensors '%s': out of memory", label);
    }
    sk_status st = parse_header(buf, size, label, fi);
    if (st != SK_OK) {
        free_file(fi);
        return st;
    }
    *out = &fi->pub;
    return SK_OK;
}

sk_status sk_st_open(const char *path, sk_st_file **out)
{
    SK_CHECK(out, SK_E_INVALID_ARG, "sk_st_open: out is NULL");
    *out = NULL;
    SK_CHECK(path && *path, SK_E_INVALID_ARG, "sk_st_open: empty path");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return SK_ERR(SK_E_IO, "safetensors '%s': cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return SK_ERR(SK_E_IO, "safetensors '%s': cannot stat: %s", path, strerror(e));
    }
    if (S_ISDIR(sb.st_mode)) {
        close(fd);
        return SK_ERR(SK_E_IO, "safetensors '%s': is a directory, expected a .safetensors file",
                      path);
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return SK_ERR(SK_E_IO, "safetensors '%s': not a regular file", path);
    }
    size_t size = (size_t)sb.st_size;
    void *map = NULL;
    if (size > 0) {
        map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            int e = errno;
            close(fd);
            return SK_ERR(SK_E_IO, "safetensors '%s': mmap of %zu bytes failed: %s", path, size,
                          strerror(e));
        }
    }
    close(fd); /* the mapping stays valid */
    sk_st_file *f = NULL;
    sk_status st = sk_st_parse(map, size, path, &f);
    if (st != SK_OK) {
        if (map) munmap(map, size);
        return st;
    }
    ((st_file_impl *)f)->owns_map = (map != NULL);
    *out = f;
    return SK_OK;
}

void sk_st_close(sk_st_file **f)
{
    if (!f || !*f) return;
    free_file((st_file_impl *)*f);
    *f = NULL;
}

const sk_st_tensor *sk_st_find(const sk_st_file *f, const char *name)
{
    if (!f || !name) return NULL;
    const st_file_impl *fi = (const st_file_impl *)f;
    int lo = 0, hi = f->n_tensors - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        const sk_st_tensor *t = &f->tensors[fi->by_name[mid]];
        int c = strcmp(name, t->name);
        if (c == 0) return t;
        if (c < 0) hi = mid - 1;
        else lo = mid + 1;
    }
    return NULL;
}

const char *sk_st_meta(const sk_st_file *f, const char *key)
{
    if (!f || !key) return NULL;
    for (int i = 0; i < f->n_meta; i++)
        if (!strcmp(f->meta_keys[i], key)) return f->meta_values[i];
    return NULL;
}

sk_status sk_st_read_f32(const sk_st_file *f, const char *name, int want_ndim,
                         const int64_t *want_shape, float **out, sk_st_tensor const **info)
{
    SK_CHECK(f && name && out, SK_E_INVALID_ARG, "sk_st_read_f32: NULL argument");
    *out = NULL;
    if (info) *info = NULL;
    const sk_st_tensor *t = sk_st_find(f, name);
    if (!t) {
        /* The usual cause is a prefix mismatch: suggest the other spelling. */
        char alt[640] = "";
        if (!strncmp(name, "model.", 6) && sk_st_find(f, name + 6))
            snprintf(alt, sizeof alt, " (the file has '%s': no 'model.' prefix)", name + 6);
        else if (strlen(name) < 400) {
            char pre[512];
            snprintf(pre, sizeof pre, "model.%s", name);
            if (sk_st_find(f, pre)) snprintf(alt, sizeof alt, " (the file has '%s')", pre);
        }
        return SK_ERR(SK_E_FORMAT, "safetensors '%s': tensor '%s' not found among %d tensors%s",
                      f->path, name, f->n_tensors, alt);
    }
    char a[160], b[160];
    if (!sk_dtype_is_float(t->dtype))
        return SK_ERR(SK_E_DTYPE,
                      "safetensors '%s': tensor '%s' has dtype %s, expected a float dtype "
                      "(F32/F16/BF16/F8_E4M3/F64)", f->path, name, sk_dtype_st_name(t->dtype));
    if (want_shape) {
        int same = t->ndim == want_ndim;
        for (int i = 0; same && i < want_ndim; i++) same = t->shape[i] == want_shape[i];
        if (!same)
            return SK_ERR(SK_E_SHAPE, "safetensors '%s': tensor '%s' has shape %s, expected %s",
                          f->path, name, sk_shape_str_n(t->ndim, t->shape, a, sizeof a),
                          sk_shape_str_n(want_ndim, want_shape, b, sizeof b));
    }
    size_t esz = sk_dtype_size(t->dtype);
    size_t n = t->nbytes / esz;
    float *dst = malloc(n ? n * sizeof(float) : 1);
    if (!dst)
        return SK_ERR(SK_E_OOM, "safetensors '%s': cannot allocate %zu floats for tensor '%s'",
                      f->path, n, name);
    /* Files written without header padding leave data unaligned: copy first
     * rather than read floats through a misaligned pointer. */
    const void *src = t->data;
    void *tmp = NULL;
    if (n && ((uintptr_t)src % esz) != 0) {
        tmp = malloc(t->nbytes);
        if (!tmp) {
            free(dst);
            return SK_ERR(SK_E_OOM, "safetensors '%s': out of memory", f->path);
        }
        memcpy(tmp, src, t->nbytes);
        src = tmp;
    }
    sk_status st = n ? sk_convert(dst, SK_DTYPE_F32, src, t->dtype, n) : SK_OK;
    free(tmp);
    if (st != SK_OK) {
        free(dst);
        sk_error_prefix("safetensors '%s': tensor '%s': ", f->path, name);
        return st;
    }
    *out = dst;
    if (info) *info = t;
    return SK_OK;
}

int64_t sk_st_first_nonfinite(const sk_st_tensor *t)
{
    const unsigned char *p = t->data;
    const size_t es = sk_dtype_size(t->dtype);
    const int64_t n = es ? (int64_t)(t->nbytes / es) : 0;
    for (int64_t i = 0; i < n; i++) {
        if (t->dtype == SK_DTYPE_F32) {
            uint32_t u;
            memcpy(&u, p + 4 * i, 4);
            if ((u & 0x7f800000u) == 0x7f800000u) return i;
        } else if (t->dtype == SK_DTYPE_BF16 || t->dtype == SK_DTYPE_F16) {
            uint16_t u;
            memcpy(&u, p + 2 * i, 2);
            const uint16_t e = t->dtype == SK_DTYPE_BF16 ? 0x7f80u : 0x7c00u;
            if ((u & e) == e) return i;
        } else if (t->dtype == SK_DTYPE_F64) {
            uint64_t u;
            memcpy(&u, p + 8 * i, 8);
            if ((u & 0x7ff0000000000000ull) == 0x7ff0000000000000ull) return i;
        } else {
            return -1;
        }
    }
    return -1;
}
