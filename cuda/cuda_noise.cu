/* cuda_noise.cu - counter-based Gaussian noise. Calls runtime/core/noise.h's
 * sk_noise_value, the same code the CPU runs, so values match bit for bit
 * (up to the ulp caveat noted in noise.h). */
#include "cuda_internal.h"
#include "runtime/core/noise.h"

__global__ void k_noise(void *y, int yt, int64_t E, int64_t n, uint64_t seed, int64_t frame0,
                        uint32_t stream)
{
    SK_GRID_STRIDE(i, n)
    {
        int64_t f = i / E, e = i - f * E;
        sk_st(y, yt, i, sk_noise_value(seed, frame0 + f, stream, e));
    }
}

extern "C" sk_status sk_cuda_noise(sk_backend *be, sk_tensor *y, uint64_t seed, int64_t frame0,
                                   uint32_t stream)
{
    int64_t n = sk_tensor_numel(y);
    if (n == 0) return SK_OK;
    int64_t F = y->ndim ? y->shape[0] : 1;
    int64_t E = F ? n / F : 0;
    k_noise<<<sk_cuda_blocks(n, 256), 256, 0, sk_cuda(be)->stream>>>(y->data, y->dtype, E, n, seed,
                                                                      frame0, stream);
    SK_CU_LAUNCH("noise");
    return SK_OK;
}
