/* noise.h - the deterministic Gaussian noise generator, shared by every backend.
 *
 * Counter-based: Philox4x32-10 keyed by the 64-bit seed, counter
 * (pair index lo, pair index hi, latent frame, stream). One Philox call gives
 * two uniforms -> Box-Muller -> two normals, elements 2p (cos) and 2p+1 (sin).
 * So a value depends only on (seed, frame, stream, element): never on chunk
 * size, backend or call order. `stream` separates independent draws for the
 * same frame: 0 = initial noise, 1 + step = re-noise after denoising step
 * `step` (see sampler/schedule.h).
 *
 * The Box-Muller math runs in double and rounds once to float, so CPU and CUDA
 * agree bit for bit except in the rare case where their double log/sin/cos
 * differ by an ulp right at a float rounding boundary.
 *
 * Header-only so the CUDA kernels use the very same code (SK_HD marks
 * functions __host__ __device__ under nvcc).
 */
#ifndef SK_NOISE_H
#define SK_NOISE_H

#include <stdint.h>
#include <math.h>

#ifdef __CUDACC__
#define SK_HD __host__ __device__ __forceinline__
#else
#define SK_HD static inline
#endif

#define SK_NOISE_STREAM_INIT 0u
#define SK_NOISE_STREAM_RENOISE(step) (1u + (uint32_t)(step))

SK_HD void sk_philox4x32_10(const uint32_t ctr_in[4], uint32_t k0, uint32_t k1, uint32_t out[4])
{
    uint32_t c0 = ctr_in[0], c1 = ctr_in[1], c2 = ctr_in[2], c3 = ctr_in[3];
    for (int r = 0; r < 10; r++) {
        uint64_t p0 = (uint64_t)0xD2511F53u * c0;
        uint64_t p1 = (uint64_t)0xCD9E8D57u * c2;
        uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
        uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
        uint32_t n0 = hi1 ^ c1 ^ k0;
        uint32_t n1 = lo1;
        uint32_t n2 = hi0 ^ c3 ^ k1;
        uint32_t n3 = lo0;
        c0 = n0; c1 = n1; c2 = n2; c3 = n3;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    out[0] = c0; out[1] = c1; out[2] = c2; out[3] = c3;
}

/* Standard normal for (seed, frame, stream, element). */
SK_HD float sk_noise_value(uint64_t seed, int64_t frame, uint32_t stream, int64_t element)
{
    uint64_t pair = (uint64_t)element >> 1;
    uint32_t ctr[4] = {(uint32_t)pair, (uint32_t)(pair >> 32), (uint32_t)frame, stream};
    uint32_t o[4];
    sk_philox4x32_10(ctr, (uint32_t)seed, (uint32_t)(seed >> 32), o);
    /* 53-bit uniforms in (0, 1]: never 0, so log is finite */
    double u1 = ((double)(((uint64_t)o[0] << 21) ^ (o[1] >> 11)) + 1.0) * (1.0 / 9007199254740992.0);
    double u2 = ((double)(((uint64_t)o[2] << 21) ^ (o[3] >> 11)) + 0.5) * (1.0 / 9007199254740992.0);
    double r = sqrt(-2.0 * log(u1));
    double a = 6.283185307179586476925286766559 * u2;
    return (float)((element & 1) ? r * sin(a) : r * cos(a));
}

#endif
