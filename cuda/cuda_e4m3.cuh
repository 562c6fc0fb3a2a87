/* cuda_e4m3.cuh - FP8 e4m3 conversions shared by the FP8 kernels (cuda_fp8.cu: row
 * quantization for the block linears; cuda_attention_fp8.cu: per-tensor q/k/v and the
 * emulation kernel). One definition, so both round exactly as runtime/core/fp8.h's CPU
 * oracle does: satfinite, round to nearest even. */
#ifndef SK_CUDA_E4M3_CUH
#define SK_CUDA_E4M3_CUH

#include <cuda_fp16.h>
#include <cuda_fp8.h>
#include <stdint.h>

#include "cuda_internal.h"

__device__ __forceinline__ uint8_t sk_e4m3_sat(float v)
{
    return (uint8_t)__nv_cvt_float_to_fp8(v, __NV_SATFINITE, __NV_E4M3);
}

__device__ __forceinline__ float sk_e4m3_dec(uint8_t v)
{
    __half_raw h = __nv_cvt_fp8_to_halfraw((__nv_fp8_storage_t)v, __NV_E4M3);
    return __half2float(*reinterpret_cast<__half *>(&h));
}

/* fp8.h's row rules: (inv, scale) of a row with the given amax */
__device__ __forceinline__ void fp8_row_scales(float amax, float *inv, float *scale)
{
    if (amax == 0.0f) { *inv = 1.0f; *scale = 1.0f; return; }
    if (!isfinite(amax)) { *inv = 0.0f; *scale = __int_as_float(0x7f800000); return; }
    *inv = __fdiv_rn(448.0f, amax);
    *scale = __fdiv_rn(amax, 448.0f);
}

/* elements 8c..8c+7 of x (dtype dt), times inv, as e4m3 into q[8c..8c+7] in one 8-byte store */
__device__ __forceinline__ void sk_e4m3_quant8(uint8_t *q, const void *x, int dt, int64_t c, float inv)
{
    float v[8];
    sk_ld8(x, dt, c, v);
    uint2 o;
    uint8_t *b = reinterpret_cast<uint8_t *>(&o);
#pragma unroll
    for (int k = 0; k < 8; k++) b[k] = sk_e4m3_sat(v[k] * inv);
    reinterpret_cast<uint2 *>(q)[c] = o;
}

/* e4m3 bytes 8c..8c+7 of x (8-byte aligned) decoded to f32 */
__device__ __forceinline__ void sk_e4m3_ld8(const uint8_t *x, int64_t c, float v[8])
{
    const uint2 w = reinterpret_cast<const uint2 *>(x)[c];
    const uint8_t *b = reinterpret_cast<const uint8_t *>(&w);
#pragma unroll
    for (int k = 0; k < 8; k++) v[k] = sk_e4m3_dec(b[k]);
}

/* max (is_max) or sum of v over the block (blockDim a multiple of 32, <= 1024), the result
 * in every thread; red: 32 floats of shared memory. Starts with a barrier, so red can be
 * reused by consecutive calls. */
__device__ __forceinline__ float sk_blk_reduce(float v, int is_max, float *red)
{
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        const float w = __shfl_xor_sync(0xffffffffu, v, o);
        v = is_max ? fmaxf(v, w) : v + w;
    }
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, nw = blockDim.x / 32;
    __syncthreads();
    if (lane == 0) red[warp] = v;
    __syncthreads();
    if (warp == 0) {
        v = lane < nw ? red[lane] : (is_max ? -INFINITY : 0.0f);
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) {
            const float w = __shfl_xor_sync(0xffffffffu, v, o);
            v = is_max ? fmaxf(v, w) : v + w;
        }
        if (lane == 0) red[0] = v;
    }
    __syncthreads();
    return red[0];
}

#endif
