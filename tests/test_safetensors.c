/* test_safetensors.c - reader/writer round trips and the validation of
 * malformed files. Each malformed file is built byte by byte in a temp dir
 * and checked twice: through sk_st_open (file) and sk_st_parse (memory).
 * Every case asserts its status, that the message names the file, and a
 * substring that is specific to that failure. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/io/safetensors.h"

/* ---------------------------------------------------------------- helpers */

static char g_dir[256];

static void make_tmpdir(void)
{
    snprintf(g_dir, sizeof g_dir, "/tmp/sk_st_test.XXXXXX");
    cr_assert_not_null(mkdtemp(g_dir));
}

static void rm_tmpdir(void)
{
    DIR *d = opendir(g_dir);
    if (!d) return;
    struct dirent *e;
    char p[512];
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(p, sizeof p, "%s/%s", g_dir, e->d_name);
            unlink(p);
        }
    closedir(d);
    rmdir(g_dir);
}

TestSuite(safetensors, .init = make_tmpdir, .fini = rm_tmpdir);

static void path_in(char *buf, size_t cap, const char *name)
{
    snprintf(buf, cap, "%s/%s", g_dir, name);
}

static void write_bytes(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "cannot create %s", path);
    if (n) cr_assert_eq(fwrite(p, 1, n, f), n);
    fclose(f);
}

/* A file: 8-byte little-endian `hlen` (the real header length when
 * hlen == UINT64_MAX), the header text (hdr_n bytes), then `data` zero bytes. */
typedef struct {
    unsigned char *p;
    size_t n;
} blob;

static blob mk(uint64_t hlen, const char *hdr, size_t hdr_n, size_t data)
{
    blob b;
    b.n = 8 + hdr_n + data;
    b.p = calloc(1, b.n);
    cr_assert_not_null(b.p);
    if (hlen == UINT64_MAX) hlen = hdr_n;
    for (int i = 0; i < 8; i++) b.p[i] = (unsigned char)(hlen >> (8 * i));
    memcpy(b.p + 8, hdr, hdr_n);
    return b;
}

static blob empty_blob(void)
{
    blob b = {calloc(1, 1), 0};
    return b;
}

static blob short_blob(void)
{
    blob b = mk(2, "{}", 0, 0);
    b.n = 5; /* only part of the length prefix */
    return b;
}

static blob mkh(const char *hdr, size_t data) { return mk(UINT64_MAX, hdr, strlen(hdr), data); }

/* Opens blob as a file and from memory; both must fail with st and a message
 * containing the label and `want`. */
static void expect_bad(const char *case_name, blob b, sk_status st, const char *want)
{
    char path[512];
    path_in(path, sizeof path, case_name);
    write_bytes(path, b.p, b.n);

    sk_st_file *f = (sk_st_file *)0x1;
    sk_status got = sk_st_open(path, &f);
    const char *msg = sk_error_message();
    cr_expect_eq(got, st, "%s: status %s, expected %s (message: %s)", case_name,
                 sk_status_name(got), sk_status_name(st), msg);
    cr_expect_null(f, "%s: *out must be NULL on failure", case_name);
    cr_expect(strstr(msg, path) != NULL, "%s: message does not name the file: %s", case_name, msg);
    cr_expect(strstr(msg, want) != NULL, "%s: message lacks '%s': %s", case_name, want, msg);
    if (got == SK_OK) sk_st_close(&f);

    f = (sk_st_file *)0x1;
    got = sk_st_parse(b.p, b.n, "mem-label", &f);
    msg = sk_error_message();
    cr_expect_eq(got, st, "%s (memory): status %s, expected %s (message: %s)", case_name,
                 sk_status_name(got), sk_status_name(st), msg);
    cr_expect_null(f);
    cr_expect(strstr(msg, "mem-label") != NULL, "%s (memory): no label in: %s", case_name, msg);
    cr_expect(strstr(msg, want) != NULL, "%s (memory): message lacks '%s': %s", case_name, want,
              msg);
    if (got == SK_OK) sk_st_close(&f);
    free(b.p);
}

#define BAD(id, blob_expr, status, want) \
    Test(safetensors, bad_##id) { expect_bad(#id ".safetensors", (blob_expr), (status), (want)); }

/* ------------------------------------------------------ malformed files */

/* Framing: the 8-byte prefix and the header bytes. */
BAD(empty_file, empty_blob(), SK_E_FORMAT, "file is empty")
BAD(short_file, short_blob(), SK_E_FORMAT, "shorter than the 8-byte")
BAD(header_len_zero, mk(0, "{}", 2, 0), SK_E_FORMAT, "header length is 0")
BAD(header_len_absurd, mk(1ull << 62, "{}", 2, 0), SK_E_FORMAT, "absurd")
BAD(header_len_past_eof, mk(64, "{}      ", 8, 0), SK_E_FORMAT, "truncated")
BAD(not_json, mkh("{\"a\": {\"dtype\": ", 0), SK_E_FORMAT, "not valid JSON")
BAD(not_object, mkh("[1, 2]  ", 0), SK_E_FORMAT, "does not start with '{'")
BAD(nul_padding, mk(8, "{}\0\0\0\0\0\0", 8, 0), SK_E_FORMAT, "NUL byte")
BAD(control_byte, mkh("{\"w\"\x01:{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1),
    SK_E_FORMAT, "control byte 0x01 at header byte 4")
BAD(raw_newline_in_name, mkh("{\"w\nx\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1),
    SK_E_FORMAT, "raw control byte 0x0a inside a string")
BAD(trailing_garbage, mkh("{}    xy", 0), SK_E_FORMAT, "after the JSON header")

/* dtype */
BAD(unknown_dtype, mkh("{\"w\":{\"dtype\":\"F33\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4),
    SK_E_DTYPE, "unknown dtype 'F33'")
BAD(bool_dtype, mkh("{\"w\":{\"dtype\":\"BOOL\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1),
    SK_E_DTYPE, "unsupported dtype 'BOOL'")
BAD(e5m2_dtype, mkh("{\"w\":{\"dtype\":\"F8_E5M2\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1),
    SK_E_DTYPE, "unsupported dtype 'F8_E5M2'")
BAD(i16_dtype, mkh("{\"w\":{\"dtype\":\"I16\",\"shape\":[1],\"data_offsets\":[0,2]}}", 2),
    SK_E_DTYPE, "unsupported dtype 'I16'")
BAD(dtype_missing, mkh("{\"w\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4), SK_E_FORMAT,
    "\"dtype\" is missing")
BAD(dtype_number, mkh("{\"w\":{\"dtype\":7,\"shape\":[1],\"data_offsets\":[0,4]}}", 4),
    SK_E_FORMAT, "\"dtype\" is a number")

/* entry and shape */
BAD(entry_not_object, mkh("{\"w\": 12}", 0), SK_E_FORMAT, "entry is a number")
BAD(shape_not_array, mkh("{\"w\":{\"dtype\":\"F32\",\"shape\":\"2\",\"data_offsets\":[0,8]}}", 8),
    SK_E_FORMAT, "\"shape\" is a string")
BAD(shape_negative, mkh("{\"w\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8),
    SK_E_FORMAT, "shape dim 0 is -2")
BAD(shape_fraction, mkh("{\"w\":{\"dtype\":\"F32\",\"shape\":[2,1.5],\"data_offsets\":[0,8]}}", 8),
    SK_E_FORMAT, "shape dim 1 is 1.5")
BAD(shape_float_literal,
    mkh("{\"w\":{\"dtype\":\"F32\",\"shape\":[2.0],\"data_offsets\":[0,8]}}", 8), SK_E_FORMAT,
    "number '2.0'")
BAD(shape_string_dim, mkh("{\"w\":{\"dtype\":\"F32\",\"shape\":[\"2\"],\"data_offsets\":[0,8]}}", 8),
    SK_E_FORMAT, "shape dim 0 is a string")
BAD(shape_too_many_dims,
    mkh("{\"w\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1],\"data_offsets\":[0,1]}}", 1),
    SK_E_FORMAT, "7 dims, at most 6")
BAD(shape_dim_beyond_2p53,
    mkh("{\"w\":{\"dtype\":\"U8\",\"shape\":[9007199254740993],\"data_offsets\":[0,1]}}", 1),
    SK_E_FORMAT, "below 2^53")
/* 2^32 * 2^32 * 16 elements: each dim is fine, the product overflows 64 bits. */
BAD(shape_product_overflow,
    mkh("{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,16],\"data_offsets\":[0,4]}}", 4),
    SK_E_FORMAT, "overflows 64 bits")
/* 2^31 * 2^31 * 2 elements of F64: numel fits, numel * 8 bytes does not. */
BAD(shape_bytes_overflow,
    mkh("{\"w\":{\"dtype\":\"F64\",\"shape\":[2147483648,2147483648,2],\"data_offsets\":[0,8]}}", 8),
    SK_E_FORMAT, "overflows 64 bits")

/* data_offsets */
BAD(offsets_missing, mkh("{\"w\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4), SK_E_FORMAT,
    "\"data_offsets\" is missing")
BAD(offsets_wrong_len, mkh("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4),
    SK_E_FORMAT, "\"data_offsets\" is an array of the wrong length")
BAD(offsets_negative, mkh("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", 4),
    SK_E_FORMAT, "data_offsets must be two non-negative integers")
BAD(offsets_reversed, mkh("{\"w\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,0]}}", 4),
    SK_E_FORMAT, "end before they begin")
BAD(offsets_span_mismatch,
    mkh("{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,8]}}", 24), SK_E_FORMAT,
    "span 8 bytes but shape [2, 3] x F32 (4 bytes) needs 24")
BAD(offsets_past_data, mkh("{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 12),
    SK_E_FORMAT, "run past the end of the data area (12 bytes)")
BAD(overlap, mkh("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                 "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12),
    SK_E_FORMAT, "overlap tensor 'a'")
BAD(duplicate_name, mkh("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
                        "\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}", 2),
    SK_E_FORMAT, "duplicate tensor name")
BAD(duplicate_field, mkh("{\"a\":{\"dtype\":\"U8\",\"dtype\":\"U8\",\"shape\":[1],"
                         "\"data_offsets\":[0,1]}}", 1),
    SK_E_FORMAT, "key 'dtype' appears twice")

/* __metadata__ */
BAD(metadata_not_object, mkh("{\"__metadata__\":[\"x\"]}", 0), SK_E_FORMAT,
    "\"__metadata__\" is an array")
BAD(metadata_number_value, mkh("{\"__metadata__\":{\"epoch\":3}}", 0), SK_E_FORMAT,
    "__metadata__ value for key 'epoch' is a number")
BAD(metadata_duplicate_key, mkh("{\"__metadata__\":{\"k\":\"a\",\"k\":\"b\"}}", 0), SK_E_FORMAT,
    "__metadata__ key 'k' is duplicate")

/* Files often mistaken for safetensors are named for what they are. */
static blob text_blob(const char *t)
{
    blob b = {(unsigned char *)strdup(t), strlen(t)};
    return b;
}
BAD(git_lfs_pointer,
    text_blob("version https://git-lfs.github.com/spec/v1\noid sha256:0123\nsize 2836\n"),
    SK_E_FORMAT, "Git LFS pointer")
BAD(pytorch_zip, text_blob("PK\x03\x04" "archive/data.pkl............"), SK_E_FORMAT,
    "PyTorch .pt/.pth")
BAD(html_page, text_blob("<!DOCTYPE html><html><body>403 Forbidden</body></html>"), SK_E_FORMAT,
    "HTML page")
BAD(json_index, text_blob("{\"metadata\": {}, \"weight_map\": {}}"), SK_E_FORMAT,
    "JSON text file")

/* The tensor name appears in per-tensor messages. */
Test(safetensors, message_names_tensor)
{
    blob b = mkh("{\"blocks.7.ffn.0.weight\":{\"dtype\":\"F32\",\"shape\":[3],"
                 "\"data_offsets\":[0,8]}}", 12);
    sk_st_file *f = NULL;
    cr_assert_eq(sk_st_parse(b.p, b.n, "ckpt.safetensors", &f), SK_E_FORMAT);
    cr_expect(strstr(sk_error_message(), "tensor 'blocks.7.ffn.0.weight'"), "%s",
              sk_error_message());
    free(b.p);
}

Test(safetensors, missing_file_and_directory)
{
    char path[512];
    sk_st_file *f = NULL;
    path_in(path, sizeof path, "does_not_exist.safetensors");
    cr_expect_eq(sk_st_open(path, &f), SK_E_IO);
    cr_expect(strstr(sk_error_message(), path) && strstr(sk_error_message(), "No such file"),
              "%s", sk_error_message());
    cr_expect_eq(sk_st_open(g_dir, &f), SK_E_IO);
    cr_expect(strstr(sk_error_message(), "is a directory"), "%s", sk_error_message());
    cr_expect_null(f);
}

/* ------------------------------------------------ valid edge cases */

Test(safetensors, valid_edge_cases)
{
    /* Empty header object, space padding (odd header length: unaligned data),
     * a scalar, a zero-size tensor inside another's span, a gap, trailing
     * bytes after the last tensor, unknown extra keys. */
    const char *h = "{\"s\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]},"
                    "\"z\":{\"dtype\":\"BF16\",\"shape\":[0,5],\"data_offsets\":[2,2]},"
                    "\"g\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[8,12],\"x\":1},"
                    "\"__metadata__\":{\"format\":\"pt\"}}   ";
    blob b = mkh(h, 16);
    float one = 1.5f;
    memcpy(b.p + 8 + strlen(h), &one, 4);
    b.p[8 + strlen(h) + 8] = 0x00, b.p[8 + strlen(h) + 9] = 0x3c; /* f16 1.0 */
    b.p[8 + strlen(h) + 10] = 0x00, b.p[8 + strlen(h) + 11] = 0xc0; /* f16 -2.0 */
    char path[512];
    path_in(path, sizeof path, "edge.safetensors");
    write_bytes(path, b.p, b.n);
    sk_st_file *f = NULL;
    cr_assert_eq(sk_st_open(path, &f), SK_OK, "%s", sk_error_message());
    cr_expect_eq(f->n_tensors, 3);
    cr_expect_str_eq(f->tensors[0].name, "s");
    cr_expect_str_eq(f->tensors[1].name, "z");
    cr_expect_str_eq(f->tensors[2].name, "g");
    cr_expect_eq(f->tensors[0].ndim, 0);
    cr_expect_eq(f->tensors[1].nbytes, 0);
    cr_expect_str_eq(sk_st_meta(f, "format"), "pt");
    cr_expect_null(sk_st_meta(f, "nope"));
    float *x = NULL;
    cr_assert_eq(sk_st_read_f32(f, "s", 0, NULL, &x, NULL), SK_OK, "%s", sk_error_message());
    cr_expect_eq(x[0], 1.5f);
    free(x);
    int64_t want = 2;
    const sk_st_tensor *info = NULL;
    cr_assert_eq(sk_st_read_f32(f, "g", 1, &want, &x, &info), SK_OK, "%s", sk_error_message());
    cr_expect(x[0] == 1.0f && x[1] == -2.0f, "got %g %g", x[0], x[1]);
    cr_expect_eq(info, sk_st_find(f, "g"));
    free(x);
    cr_assert_eq(sk_st_read_f32(f, "z", 0, NULL, &x, NULL), SK_OK, "%s", sk_error_message());
    free(x);
    sk_st_close(&f);
    cr_expect_null(f);
    sk_st_close(&f); /* NULL is fine */
    free(b.p);

    b = mkh("{}", 0);
    cr_assert_eq(sk_st_parse(b.p, b.n, "empty-object", &f), SK_OK, "%s", sk_error_message());
    cr_expect_eq(f->n_tensors, 0);
    cr_expect_eq(f->n_meta, 0);
    cr_expect_null(sk_st_find(f, "x"));
    sk_st_close(&f);
    free(b.p);
}

/* ------------------------------------------------------------ round trip */

static uint32_t lcg(uint32_t *s) { return *s = *s * 1664525u + 1013904223u; }

Test(safetensors, round_trip_all_dtypes)
{
    /* One tensor per dtype, raw bytes with a pattern; odd sizes so the
     * element-size ordering of the data area is exercised. */
    const sk_dtype dts[] = {SK_DTYPE_U8, SK_DTYPE_F16, SK_DTYPE_F32, SK_DTYPE_F64,
                            SK_DTYPE_BF16, SK_DTYPE_F8_E4M3, SK_DTYPE_I32, SK_DTYPE_I64};
    const int nd = (int)(sizeof dts / sizeof dts[0]);
    int64_t shapes[8][3] = {{3, 5, 1}, {7}, {2, 3}, {5}, {1, 1, 9}, {13}, {3}, {2, 2}};
    int ndims[8] = {3, 1, 2, 1, 3, 1, 1, 2};
    unsigned char *bufs[8];
    size_t sizes[8];
    sk_st_writer *w = NULL;
    cr_assert_eq(sk_st_writer_create(&w), SK_OK);
    uint32_t seed = 7;
    char name[32];
    for (int i = 0; i < nd; i++) {
        size_t n = 1;
        for (int d = 0; d < ndims[i]; d++) n *= (size_t)shapes[i][d];
        sizes[i] = n * sk_dtype_size(dts[i]);
        bufs[i] = malloc(sizes[i]);
        for (size_t k = 0; k < sizes[i]; k++) bufs[i][k] = (unsigned char)(lcg(&seed) >> 24);
        if (dts[i] == SK_DTYPE_F8_E4M3) /* avoid NaN encodings so the f32 read is checkable */
            for (size_t k = 0; k < sizes[i]; k++) bufs[i][k] &= 0xf6;
        snprintf(name, sizeof name, "t%d.%s", i, sk_dtype_st_name(dts[i]));
        cr_assert_eq(sk_st_writer_add_raw(w, name, dts[i], ndims[i], shapes[i], bufs[i], sizes[i]),
                     SK_OK, "%s", sk_error_message());
    }
    /* f32 values stored as bf16 through the converting entry point */
    float vals[6] = {1.0f, -2.5f, 3.14159f, 1e-3f, 65504.0f, -0.0f};
    int64_t s6 = 6;
    cr_assert_eq(sk_st_writer_add_f32(w, "conv.bf16", SK_DTYPE_BF16, 1, &s6, vals), SK_OK);
    cr_assert_eq(sk_st_writer_add_f32(w, "conv.f16", SK_DTYPE_F16, 1, &s6, vals), SK_OK);
    cr_assert_eq(sk_st_writer_meta(w, "format", "pt"), SK_OK);
    cr_assert_eq(sk_st_writer_meta(w, "quote\"d", "line\nbreak \xc3\xa9"), SK_OK);
    cr_assert_eq(sk_st_writer_meta(w, "format", "sinkstream"), SK_OK); /* last value wins */

    char path[512];
    path_in(path, sizeof path, "rt.safetensors");
    cr_assert_eq(sk_st_writer_save(w, path), SK_OK, "%s", sk_error_message());
    sk_st_writer_free(&w);
    cr_expect_null(w);

    /* No temp file is left next to the result. */
    DIR *d = opendir(g_dir);
    struct dirent *e;
    int files = 0;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') {
            files++;
            cr_expect(strstr(e->d_name, ".tmp") == NULL, "leftover %s", e->d_name);
        }
    closedir(d);
    cr_expect_eq(files, 1);

    sk_st_file *f = NULL;
    cr_assert_eq(sk_st_open(path, &f), SK_OK, "%s", sk_error_message());
    const unsigned char *m = f->map;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | m[i];
    cr_expect_eq(hlen % 8, 0, "header length %llu not padded to 8", (unsigned long long)hlen);
    cr_expect_eq(m[8 + hlen - 1] == ' ' || m[8 + hlen - 1] == '}', 1);
    cr_expect_eq(f->n_tensors, nd + 2);
    cr_expect_eq(f->n_meta, 2);
    cr_expect_str_eq(sk_st_meta(f, "format"), "sinkstream");
    cr_expect_str_eq(sk_st_meta(f, "quote\"d"), "line\nbreak \xc3\xa9");
    uint64_t covered = 0;
    for (int i = 0; i < nd; i++) {
        snprintf(name, sizeof name, "t%d.%s", i, sk_dtype_st_name(dts[i]));
        const sk_st_tensor *t = &f->tensors[i];
        cr_expect_str_eq(t->name, name, "insertion order kept");
        cr_expect_eq(t->dtype, dts[i]);
        cr_expect_eq(t->ndim, ndims[i]);
        for (int k = 0; k < ndims[i]; k++) cr_expect_eq(t->shape[k], shapes[i][k]);
        cr_expect_eq(t->nbytes, sizes[i]);
        cr_expect_eq(memcmp(t->data, bufs[i], sizes[i]), 0, "%s bytes differ", name);
        /* natural alignment: offset a multiple of the element size, data too */
        cr_expect_eq(t->offset % sk_dtype_size(t->dtype), 0, "%s at %llu", name,
                     (unsigned long long)t->offset);
        cr_expect_eq((uintptr_t)t->data % sk_dtype_size(t->dtype), 0);
        covered += t->nbytes;
        if (sk_dtype_is_float(dts[i])) {
            float *x = NULL;
            cr_assert_eq(sk_st_read_f32(f, name, ndims[i], shapes[i], &x, NULL), SK_OK, "%s",
                         sk_error_message());
            size_t n = sizes[i] / sk_dtype_size(dts[i]);
            float *ref = malloc(n * sizeof *ref);
            cr_assert_eq(sk_convert(ref, SK_DTYPE_F32, bufs[i], dts[i], n), SK_OK);
            for (size_t k = 0; k < n; k++)
                cr_expect(x[k] == ref[k] || (isnan(x[k]) && isnan(ref[k]) && dts[i] != SK_DTYPE_F8_E4M3),
                          "%s[%zu]: %g vs %g", name, k, x[k], ref[k]);
            free(ref);
            free(x);
        } else {
            float *x = (float *)0x1;
            cr_expect_eq(sk_st_read_f32(f, name, 0, NULL, &x, NULL), SK_E_DTYPE);
            cr_expect_null(x);
        }
        free(bufs[i]);
    }
    for (int i = nd; i < nd + 2; i++) covered += f->tensors[i].nbytes;
    /* No gaps: data area is exactly the tensors (reference loader requirement). */
    cr_expect_eq(f->map_size, 8 + hlen + covered);

    float ref[6], *x = NULL;
    memcpy(ref, vals, sizeof ref);
    sk_round_through(ref, 6, SK_DTYPE_BF16);
    cr_assert_eq(sk_st_read_f32(f, "conv.bf16", 1, &s6, &x, NULL), SK_OK);
    for (int k = 0; k < 6; k++) cr_expect_eq(x[k], ref[k], "bf16[%d] %g vs %g", k, x[k], ref[k]);
    cr_expect(signbit(x[5]), "-0 keeps its sign");
    free(x);
    memcpy(ref, vals, sizeof ref);
    sk_round_through(ref, 6, SK_DTYPE_F16);
    cr_assert_eq(sk_st_read_f32(f, "conv.f16", 1, &s6, &x, NULL), SK_OK);
    for (int k = 0; k < 6; k++) cr_expect_eq(x[k], ref[k], "f16[%d] %g vs %g", k, x[k], ref[k]);
    free(x);
    sk_st_close(&f);
}

Test(safetensors, read_f32_errors)
{
    sk_st_writer *w = NULL;
    cr_assert_eq(sk_st_writer_create(&w), SK_OK);
    float v[6] = {0};
    int64_t s[2] = {2, 3};
    cr_assert_eq(sk_st_writer_add_f32(w, "model.w", SK_DTYPE_F32, 2, s, v), SK_OK);
    char path[512];
    path_in(path, sizeof path, "r.safetensors");
    cr_assert_eq(sk_st_writer_save(w, path), SK_OK, "%s", sk_error_message());
    sk_st_writer_free(&w);
    sk_st_file *f = NULL;
    cr_assert_eq(sk_st_open(path, &f), SK_OK);
    float *x = NULL;
    int64_t bad[2] = {3, 2};
    cr_expect_eq(sk_st_read_f32(f, "model.w", 2, bad, &x, NULL), SK_E_SHAPE);
    cr_expect(strstr(sk_error_message(), "shape [2, 3], expected [3, 2]"), "%s", sk_error_message());
    cr_expect_eq(sk_st_read_f32(f, "model.w", 1, bad, &x, NULL), SK_E_SHAPE);
    cr_expect_eq(sk_st_read_f32(f, "w", 0, NULL, &x, NULL), SK_E_FORMAT);
    cr_expect(strstr(sk_error_message(), "not found") && strstr(sk_error_message(), "'model.w'"),
              "prefix hint: %s", sk_error_message());
    cr_expect(strstr(sk_error_message(), path), "%s", sk_error_message());
    cr_expect_null(x);
    sk_st_close(&f);
}

Test(safetensors, writer_errors)
{
    sk_st_writer *w = NULL;
    cr_assert_eq(sk_st_writer_create(&w), SK_OK);
    float v[4] = {1, 2, 3, 4};
    int64_t s[1] = {4}, neg[1] = {-1};
    cr_assert_eq(sk_st_writer_add_f32(w, "a", SK_DTYPE_F32, 1, s, v), SK_OK);
    cr_expect_eq(sk_st_writer_add_f32(w, "a", SK_DTYPE_F32, 1, s, v), SK_E_INVALID_ARG);
    cr_expect(strstr(sk_error_message(), "added twice"), "%s", sk_error_message());
    cr_expect_eq(sk_st_writer_add_f32(w, "__metadata__", SK_DTYPE_F32, 1, s, v), SK_E_INVALID_ARG);
    cr_expect_eq(sk_st_writer_add_f32(w, "n", SK_DTYPE_F32, 1, neg, v), SK_E_INVALID_ARG);
    cr_expect_eq(sk_st_writer_add_f32(w, "i", SK_DTYPE_I32, 1, s, v), SK_E_DTYPE);
    cr_expect_eq(sk_st_writer_add_raw(w, "r", SK_DTYPE_F32, 1, s, v, 12), SK_E_SHAPE);
    cr_expect(strstr(sk_error_message(), "12 bytes given") && strstr(sk_error_message(), "needs 16"),
              "%s", sk_error_message());
    cr_expect_eq(sk_st_writer_add_f32(w, "d", SK_DTYPE_F32, SK_MAX_DIMS + 1, s, v), SK_E_INVALID_ARG);

    const char *bad_path = "/nonexistent-dir-sk/sub/out.safetensors";
    cr_expect_eq(sk_st_writer_save(w, bad_path), SK_E_IO);
    cr_expect(strstr(sk_error_message(), bad_path), "names the path: %s", sk_error_message());
    cr_expect(strstr(sk_error_message(), "No such file"), "%s", sk_error_message());

    /* A failed add leaves the writer usable and the file holds only "a". */
    char path[512];
    path_in(path, sizeof path, "w.safetensors");
    cr_assert_eq(sk_st_writer_save(w, path), SK_OK, "%s", sk_error_message());
    /* Saving over an existing file replaces it atomically. */
    cr_assert_eq(sk_st_writer_add_f32(w, "b", SK_DTYPE_F16, 1, s, v), SK_OK);
    cr_assert_eq(sk_st_writer_save(w, path), SK_OK, "%s", sk_error_message());
    sk_st_writer_free(&w);
    sk_st_file *f = NULL;
    cr_assert_eq(sk_st_open(path, &f), SK_OK, "%s", sk_error_message());
    cr_expect_eq(f->n_tensors, 2);
    cr_expect_str_eq(f->tensors[0].name, "a");
    cr_expect_str_eq(f->tensors[1].name, "b");
    sk_st_close(&f);

    /* An empty writer writes a valid empty file. */
    cr_assert_eq(sk_st_writer_create(&w), SK_OK);
    cr_assert_eq(sk_st_writer_save(w, path), SK_OK);
    sk_st_writer_free(&w);
    cr_assert_eq(sk_st_open(path, &f), SK_OK, "%s", sk_error_message());
    cr_expect_eq(f->n_tensors, 0);
    sk_st_close(&f);
}

/* The committed malformed fixtures (used by test_cli and the fuzz corpus)
 * must keep failing with their reason. */
Test(safetensors, committed_bad_fixtures)
{
    static const struct { const char *file, *want; } k[] = {
        {"overlap.safetensors", "overlap"},
        {"duplicate.safetensors", "duplicate"},
        {"truncated.safetensors", "truncated"},
        {"bad_offsets.safetensors", "data_offsets"},
        {"bool_dtype.safetensors", "unsupported dtype"},
    };
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/tests/fixtures/bad_safetensors/%s", SK_SOURCE_DIR, k[i].file);
        sk_st_file *f = NULL;
        sk_status st = sk_st_open(path, &f);
        cr_expect_neq(st, SK_OK, "%s opened", k[i].file);
        cr_expect(st != SK_E_IO, "%s: %s", k[i].file, sk_error_message());
        cr_expect(strstr(sk_error_message(), k[i].want), "%s: %s", k[i].file, sk_error_message());
        sk_st_close(&f);
    }
}
