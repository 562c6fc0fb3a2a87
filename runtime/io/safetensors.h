/* safetensors.h - mmap reader with complete validation, and a writer.
 *
 * Reader: sk_st_open maps the file and validates everything before returning:
 * header length vs file size, JSON well-formed, known dtypes, shape x dtype
 * size == byte span, spans inside the data area and not overlapping, no
 * integer overflow, duplicate names, __metadata__ values are strings. Every
 * failure names the file (and tensor) and says what was expected.
 * Tensor data points into the mapping: valid until sk_st_close.
 *
 * Writer: collect tensors (copied or borrowed host memory) and metadata, then
 * sk_st_writer_save writes the file atomically (temp file + rename).
 */
#ifndef SK_SAFETENSORS_H
#define SK_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "runtime/core/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    char *name;
    sk_dtype dtype;
    int ndim;
    int64_t shape[SK_MAX_DIMS];
    const void *data;   /* into the mapping */
    size_t nbytes;
    uint64_t offset;    /* begin offset within the data area */
} sk_st_tensor;

typedef struct {
    char *path;
    void *map;
    size_t map_size;
    int n_tensors;
    sk_st_tensor *tensors;  /* in file header order */
    int n_meta;
    char **meta_keys, **meta_values;
} sk_st_file;

/* Opens and validates path. On failure *out is NULL and the message names the file. */
sk_status sk_st_open(const char *path, sk_st_file **out);
/* Same validation over a memory buffer (the fuzzer's entry); buffer must outlive the file. */
sk_status sk_st_parse(const void *buf, size_t size, const char *label, sk_st_file **out);
void sk_st_close(sk_st_file **f); /* accepts NULL; NULLs the pointer */

/* NULL if absent. */
const sk_st_tensor *sk_st_find(const sk_st_file *f, const char *name);

/* Flat index of the first NaN or Inf of a float tensor (F32, F16, BF16, F64),
 * or -1 (also for other dtypes). A pass over the mapped bytes at load. */
int64_t sk_st_first_nonfinite(const sk_st_tensor *t);
const char *sk_st_meta(const sk_st_file *f, const char *key);

/* Reads tensor `name` as f32 into a new malloc'd buffer (converted from any float
 * dtype). Checks the shape when want_shape != NULL (want_ndim dims). */
sk_status sk_st_read_f32(const sk_st_file *f, const char *name, int want_ndim,
                         const int64_t *want_shape, float **out, sk_st_tensor const **info);

typedef struct sk_st_writer sk_st_writer;
sk_status sk_st_writer_create(sk_st_writer **out);
/* Copies n f32 values stored as dtype (converted on the way). */
sk_status sk_st_writer_add_f32(sk_st_writer *w, const char *name, sk_dtype dtype, int ndim,
                               const int64_t *shape, const float *data);
/* Copies raw bytes already in dtype. */
sk_status sk_st_writer_add_raw(sk_st_writer *w, const char *name, sk_dtype dtype, int ndim,
                               const int64_t *shape, const void *data, size_t nbytes);
sk_status sk_st_writer_meta(sk_st_writer *w, const char *key, const char *value);
sk_status sk_st_writer_save(sk_st_writer *w, const char *path);
void sk_st_writer_free(sk_st_writer **w);

#ifdef __cplusplus
}
#endif
#endif
