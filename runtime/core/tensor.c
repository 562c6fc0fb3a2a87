/* tensor.c - see tensor.h. Shapes and views only; allocating a tensor on a backend
 * (sk_tensor_alloc / sk_tensor_free) is in backend.c, so tensor.c does not include
 * backend.h (which includes tensor.h). */
#include "runtime/core/tensor.h"

#include <stdio.h>
#include <string.h>

int64_t sk_tensor_numel(const sk_tensor *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

size_t sk_tensor_nbytes(const sk_tensor *t)
{
    return (size_t)sk_tensor_numel(t) * sk_dtype_size(t->dtype);
}

int64_t sk_tensor_inner(const sk_tensor *t, int from)
{
    int64_t n = 1;
    for (int i = from; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

const char *sk_shape_str_n(int ndim, const int64_t *shape, char *buf, size_t cap)
{
    size_t o = 0;
    if (cap == 0) return buf;
    o += (size_t)snprintf(buf + o, cap - o, "[");
    for (int i = 0; i < ndim && o < cap; i++)
        o += (size_t)snprintf(buf + o, cap - o, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (o < cap) snprintf(buf + o, cap - o, "]");
    return buf;
}

const char *sk_shape_str(const sk_tensor *t, char *buf, size_t cap)
{
    return sk_shape_str_n(t->ndim, t->shape, buf, cap);
}

int sk_tensor_same_shape(const sk_tensor *a, const sk_tensor *b)
{
    if (a->ndim != b->ndim) return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return 0;
    return 1;
}

sk_tensor sk_tensor_desc(sk_dtype dt, int ndim, const int64_t *shape)
{
    sk_tensor t;
    memset(&t, 0, sizeof t);
    t.dtype = dt;
    t.ndim = ndim;
    for (int i = 0; i < ndim && i < SK_MAX_DIMS; i++) t.shape[i] = shape[i];
    return t;
}

sk_tensor sk_tensor_rows(const sk_tensor *t, int64_t start, int64_t n)
{
    sk_tensor v = *t;
    v.owns = 0;
    v.shape[0] = n;
    size_t row = (size_t)sk_tensor_inner(t, 1) * sk_dtype_size(t->dtype);
    v.data = t->data ? (char *)t->data + (size_t)start * row : NULL;
    return v;
}

sk_status sk_tensor_reshape(const sk_tensor *t, int ndim, const int64_t *shape, sk_tensor *out)
{
    sk_tensor v = sk_tensor_desc(t->dtype, ndim, shape);
    char a[96], b[96];
    SK_CHECK(sk_tensor_numel(&v) == sk_tensor_numel(t), SK_E_SHAPE,
             "tensor: cannot reshape %s to %s (element counts differ)", sk_shape_str(t, a, sizeof a),
             sk_shape_str(&v, b, sizeof b));
    v.data = t->data;
    v.be = t->be;
    v.owns = 0;
    *out = v;
    return SK_OK;
}
