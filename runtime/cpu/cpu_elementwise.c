/* cpu_elementwise.c - axpby, mul, activations and dtype conversion. Outputs may
 * alias inputs (each element is read before it is written). */
#include "cpu_internal.h"

#include <string.h>

sk_status sk_cpu_axpby(sk_backend *be, sk_tensor *y, float a, const sk_tensor *x, float b,
                       const sk_tensor *z)
{
    const int64_t n = sk_tensor_numel(y);
    float *yd = (float *)y->data;
    const float *xd = (const float *)x->data, *zd = (const float *)z->data;
    for (int64_t i = 0; i < n; i++) yd[i] = a * xd[i] + b * zd[i];
    return SK_OK;
}

sk_status sk_cpu_mul(sk_backend *be, sk_tensor *y, const sk_tensor *x, const sk_tensor *z)
{
    const int64_t n = sk_tensor_numel(y);
    float *yd = (float *)y->data;
    const float *xd = (const float *)x->data, *zd = (const float *)z->data;
    for (int64_t i = 0; i < n; i++) yd[i] = xd[i] * zd[i];
    return SK_OK;
}

sk_status sk_cpu_act(sk_backend *be, sk_tensor *y, const sk_tensor *x, sk_act act)
{
    const int64_t n = sk_tensor_numel(y);
    float *yd = (float *)y->data;
    const float *xd = (const float *)x->data;
    for (int64_t i = 0; i < n; i++) yd[i] = sk_cpu_act1(xd[i], act);
    return SK_OK;
}

sk_status sk_cpu_convert(sk_backend *be, sk_tensor *y, const sk_tensor *x)
{
    const size_t n = (size_t)sk_tensor_numel(x);
    const size_t xb = sk_tensor_nbytes(x), yb = sk_tensor_nbytes(y);
    const char *xs = (const char *)x->data, *ys = (const char *)y->data;
    const int overlap = n && xs < ys + yb && ys < xs + xb;
    if (!overlap || (x->data == y->data && x->dtype == y->dtype))
        return sk_convert(y->data, y->dtype, x->data, x->dtype, n);
    /* in-place narrowing/widening: go through a temporary copy of x */
    void *tmp;
    SK_TRY(sk_cpu_scratch("convert", xb, &tmp));
    memcpy(tmp, x->data, xb);
    sk_status st = sk_convert(y->data, y->dtype, tmp, x->dtype, n);
    free(tmp);
    return st;
}
