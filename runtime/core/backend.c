/* backend.c - backend lifetime, memory and host transfers (see backend.h). */
#include "runtime/core/backend.h"

#include <stdlib.h>
#include <string.h>

#include "runtime/core/log.h"

void sk_backend_free_(sk_backend **be)
{
    if (!be || !*be) return;
    if ((*be)->ops && (*be)->ops->destroy) (*be)->ops->destroy(*be);
    *be = NULL;
}

sk_status sk_backend_alloc(sk_backend *be, size_t bytes, void **out)
{
    SK_CHECK(be && out, SK_E_INVALID_ARG, "backend: alloc without a backend");
    *out = NULL;
    SK_TRY(be->ops->alloc(be, bytes ? bytes : 1, out));
    be->n_allocs++;
    return SK_OK;
}

void sk_backend_free(sk_backend *be, void *p)
{
    if (be && p) be->ops->free(be, p);
}

sk_status sk_backend_sync(sk_backend *be) { return be->ops->sync ? be->ops->sync(be) : SK_OK; }

sk_status sk_tensor_upload_raw(sk_tensor *t, const void *src, size_t bytes)
{
    SK_CHECK(t && t->be && t->data, SK_E_INVALID_ARG, "tensor: upload into an unallocated tensor");
    SK_CHECK(bytes == sk_tensor_nbytes(t), SK_E_SHAPE,
             "tensor: upload of %zu bytes into a tensor of %zu bytes", bytes, sk_tensor_nbytes(t));
    return t->be->ops->upload(t->be, t->data, src, bytes);
}

sk_status sk_tensor_download_raw(const sk_tensor *t, void *dst, size_t bytes)
{
    SK_CHECK(t && t->be && t->data, SK_E_INVALID_ARG, "tensor: download from an unallocated tensor");
    SK_CHECK(bytes == sk_tensor_nbytes(t), SK_E_SHAPE,
             "tensor: download of %zu bytes from a tensor of %zu bytes", bytes,
             sk_tensor_nbytes(t));
    return t->be->ops->download(t->be, dst, t->data, bytes);
}

sk_status sk_tensor_upload_f32(sk_tensor *t, const float *src, size_t n)
{
    SK_CHECK(t && (int64_t)n == sk_tensor_numel(t), SK_E_SHAPE,
             "tensor: upload of %zu values into a tensor of %lld", n,
             (long long)(t ? sk_tensor_numel(t) : 0));
    if (t->dtype == SK_DTYPE_F32) return sk_tensor_upload_raw(t, src, n * 4);
    size_t bytes = sk_tensor_nbytes(t);
    void *tmp = malloc(bytes ? bytes : 1);
    SK_CHECK(tmp, SK_E_OOM, "tensor: out of host memory (%zu bytes) converting for upload", bytes);
    sk_status st = sk_convert(tmp, t->dtype, src, SK_DTYPE_F32, n);
    if (st == SK_OK) st = sk_tensor_upload_raw(t, tmp, bytes);
    free(tmp);
    return st;
}

sk_status sk_tensor_download_f32(const sk_tensor *t, float *dst, size_t n)
{
    SK_CHECK(t && (int64_t)n == sk_tensor_numel(t), SK_E_SHAPE,
             "tensor: download of %zu values from a tensor of %lld", n,
             (long long)(t ? sk_tensor_numel(t) : 0));
    if (t->dtype == SK_DTYPE_F32) return sk_tensor_download_raw(t, dst, n * 4);
    size_t bytes = sk_tensor_nbytes(t);
    void *tmp = malloc(bytes ? bytes : 1);
    SK_CHECK(tmp, SK_E_OOM, "tensor: out of host memory (%zu bytes) converting a download", bytes);
    sk_status st = sk_tensor_download_raw(t, tmp, bytes);
    if (st == SK_OK) st = sk_convert(dst, SK_DTYPE_F32, tmp, t->dtype, n);
    free(tmp);
    return st;
}

sk_status sk_tensor_copy(sk_tensor *dst, const sk_tensor *src)
{
    SK_CHECK(dst->be && dst->be == src->be, SK_E_INVALID_ARG,
             "tensor: copy between different backends");
    SK_CHECK(dst->dtype == src->dtype && sk_tensor_nbytes(dst) == sk_tensor_nbytes(src),
             SK_E_SHAPE, "tensor: copy of %zu bytes (%s) into %zu bytes (%s)",
             sk_tensor_nbytes(src), sk_dtype_name(src->dtype), sk_tensor_nbytes(dst),
             sk_dtype_name(dst->dtype));
    if (dst->data == src->data) return SK_OK;
    return dst->be->ops->copy(dst->be, dst->data, src->data, sk_tensor_nbytes(dst));
}

sk_status sk_tensor_zero(sk_tensor *t)
{
    SK_CHECK(t && t->be, SK_E_INVALID_ARG, "tensor: zero of an unallocated tensor");
    return t->be->ops->zero(t->be, t->data, sk_tensor_nbytes(t));
}

/* ---- tensors on a backend (declared in tensor.h) */

sk_status sk_tensor_alloc(sk_backend *be, sk_dtype dt, int ndim, const int64_t *shape,
                          sk_tensor *out)
{
    SK_CHECK(ndim >= 0 && ndim <= SK_MAX_DIMS, SK_E_INVALID_ARG,
             "tensor: %d dimensions, at most %d supported", ndim, SK_MAX_DIMS);
    for (int i = 0; i < ndim; i++)
        SK_CHECK(shape[i] >= 0, SK_E_SHAPE, "tensor: negative dimension %lld at axis %d",
                 (long long)shape[i], i);
    sk_tensor t = sk_tensor_desc(dt, ndim, shape);
    size_t bytes = sk_tensor_nbytes(&t);
    SK_TRY(sk_backend_alloc(be, bytes, &t.data));
    t.be = be;
    t.owns = 1;
    *out = t;
    return SK_OK;
}

void sk_tensor_free(sk_tensor *t)
{
    if (!t) return;
    if (t->owns && t->data && t->be) sk_backend_free(t->be, t->data);
    memset(t, 0, sizeof *t);
}
