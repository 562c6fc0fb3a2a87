/* cuda_wgmma_common.cuh - the small device helpers both Hopper attention kernels use
 * (cuda_flash_wgmma.cu, cuda_flash_fa3.cu): bf16 packing of P for the register operand,
 * exp2 as one MUFU instruction, the wgmma group fences and the softmax's exponentials
 * over an accumulator fragment. Compiled only where wgmma
 * exists (sm_90a: __CUDA_ARCH_FEAT_SM90_ALL); both files include it inside that guard. */
#ifndef SK_CUDA_WGMMA_COMMON_CUH
#define SK_CUDA_WGMMA_COMMON_CUH

#include <cuda_bf16.h>
#include <stdint.h>

__device__ __forceinline__ uint32_t sk_pk_bf16(float lo, float hi)
{
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<uint32_t *>(&v);
}
__device__ __forceinline__ float sk_ex2(float x)
{
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
    return y;
}
__device__ __forceinline__ void sk_wg_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void sk_wg_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int N> __device__ __forceinline__ void sk_wg_wait()
{
    asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
/* The online softmax's exponentials over one thread's part of an m64nN accumulator (NG = N/8
 * groups of 4: [4n], [4n+1] in row g, [4n+2], [4n+3] in row g+8): s = exp2(s * mul - mu) in
 * place, and each row's sum of this thread's values added to ps0 / ps1. */
template <int NG>
__device__ __forceinline__ void sk_frag_exp2_rowsum(float *s, float mul, float mu0, float mu1, float &ps0,
                                                    float &ps1)
{
#pragma unroll
    for (int n = 0; n < NG; n++) {
        s[4 * n] = sk_ex2(fmaf(s[4 * n], mul, -mu0));
        s[4 * n + 1] = sk_ex2(fmaf(s[4 * n + 1], mul, -mu0));
        s[4 * n + 2] = sk_ex2(fmaf(s[4 * n + 2], mul, -mu1));
        s[4 * n + 3] = sk_ex2(fmaf(s[4 * n + 3], mul, -mu1));
        ps0 += s[4 * n] + s[4 * n + 1];
        ps1 += s[4 * n + 2] + s[4 * n + 3];
    }
}

#endif
