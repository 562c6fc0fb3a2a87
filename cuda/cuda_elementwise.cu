/* cuda_elementwise.cu - convert, axpby, mul, act: one grid-stride kernel each.
 * Loads/stores go through sk_ld/sk_st so any float dtype mix works; math in f32. */
#include "cuda_internal.h"

__global__ void k_convert(void *y, int yt, const void *x, int xt, int64_t n)
{
    SK_GRID_STRIDE(i, n) sk_st(y, yt, i, sk_ld(x, xt, i));
}

__global__ void k_axpby(void *y, int yt, float a, const void *x, int xt, float b, const void *z,
                        int zt, int64_t n)
{
    SK_GRID_STRIDE(i, n)
    {
        float v = a * sk_ld(x, xt, i);
        if (z) v += b * sk_ld(z, zt, i);
        sk_st(y, yt, i, v);
    }
}

__global__ void k_mul(void *y, int yt, const void *x, int xt, const void *z, int zt, int64_t n)
{
    SK_GRID_STRIDE(i, n) sk_st(y, yt, i, sk_ld(x, xt, i) * sk_ld(z, zt, i));
}

__global__ void k_act(void *y, int yt, const void *x, int xt, int act, int64_t n)
{
    SK_GRID_STRIDE(i, n) sk_st(y, yt, i, sk_act_apply(act, sk_ld(x, xt, i)));
}

sk_status sk_cuda_convert_raw(sk_backend *be, void *dst, sk_dtype dt, const void *src,
                                         sk_dtype st, int64_t n)
{
    if (n <= 0) return SK_OK;
    cudaStream_t s = sk_cuda(be)->stream;
    if (dt == st) {
        SK_CU("convert", cudaMemcpyAsync(dst, src, (size_t)n * sk_dtype_size(dt),
                                         cudaMemcpyDeviceToDevice, s));
        return SK_OK;
    }
    SK_CHECK(sk_dtype_is_float(dt) && sk_dtype_is_float(st), SK_E_DTYPE, "cuda convert: %s -> %s is not supported on the GPU", sk_dtype_name(st),
             sk_dtype_name(dt));
    k_convert<<<sk_cuda_blocks(n, 256), 256, 0, s>>>(dst, dt, src, st, n);
    SK_CU_LAUNCH("convert");
    return SK_OK;
}

extern "C" sk_status sk_cuda_convert(sk_backend *be, sk_tensor *y, const sk_tensor *x)
{
    return sk_cuda_convert_raw(be, y->data, y->dtype, x->data, x->dtype, sk_tensor_numel(x));
}

extern "C" sk_status sk_cuda_axpby(sk_backend *be, sk_tensor *y, float a, const sk_tensor *x,
                                   float b, const sk_tensor *z)
{
    int64_t n = sk_tensor_numel(y);
    if (n == 0) return SK_OK;
    k_axpby<<<sk_cuda_blocks(n, 256), 256, 0, sk_cuda(be)->stream>>>(
        y->data, y->dtype, a, x->data, x->dtype, b, z ? z->data : NULL, z ? z->dtype : 0, n);
    SK_CU_LAUNCH("axpby");
    return SK_OK;
}

extern "C" sk_status sk_cuda_mul(sk_backend *be, sk_tensor *y, const sk_tensor *x,
                                 const sk_tensor *z)
{
    int64_t n = sk_tensor_numel(y);
    if (n == 0) return SK_OK;
    k_mul<<<sk_cuda_blocks(n, 256), 256, 0, sk_cuda(be)->stream>>>(y->data, y->dtype, x->data,
                                                                    x->dtype, z->data, z->dtype, n);
    SK_CU_LAUNCH("mul");
    return SK_OK;
}

extern "C" sk_status sk_cuda_act(sk_backend *be, sk_tensor *y, const sk_tensor *x, sk_act act)
{
    int64_t n = sk_tensor_numel(y);
    if (n == 0) return SK_OK;
    k_act<<<sk_cuda_blocks(n, 256), 256, 0, sk_cuda(be)->stream>>>(y->data, y->dtype, x->data,
                                                                    x->dtype, (int)act, n);
    SK_CU_LAUNCH("act");
    return SK_OK;
}

/* flag_nonfinite (issue 15 #7): any thread that sees a NaN/Inf writes 1; the
 * flag is read by the host once per chunk, never here. */
__global__ void k_flag_nonfinite(const void *x, int xt, int64_t n, int *flag)
{
    SK_GRID_STRIDE(i, n)
    {
        if (!isfinite(sk_ld(x, xt, i))) {
            *flag = 1;
            return;
        }
    }
}

extern "C" sk_status sk_cuda_flag_nonfinite(sk_backend *be, const sk_tensor *x, void *flag)
{
    int64_t n = sk_tensor_numel(x);
    if (n == 0) return SK_OK;
    k_flag_nonfinite<<<sk_cuda_blocks(n, 256), 256, 0, sk_cuda(be)->stream>>>(x->data, x->dtype,
                                                                              n, (int *)flag);
    SK_CU_LAUNCH("flag_nonfinite");
    return SK_OK;
}
