/* cuda_attention.h - the KV-range list as the attention kernels see it. */
#ifndef SK_CUDA_ATTENTION_H
#define SK_CUDA_ATTENTION_H

#include <stdint.h>

#define SK_ATT_MAX_RANGES 8

/* Passed by value to the kernels: keys are the concatenation of the ranges,
 * key j of range r is row start[r] + j of k[r] / v[r] ([Ncap, NH, HD]). */
typedef struct {
    const void *k[SK_ATT_MAX_RANGES];
    const void *v[SK_ATT_MAX_RANGES];
    int64_t start[SK_ATT_MAX_RANGES];
    int64_t len[SK_ATT_MAX_RANGES];
    int64_t kbase[SK_ATT_MAX_RANGES];   /* index of the range's first key in the concatenation */
    int tiles_before[SK_ATT_MAX_RANGES + 1]; /* fast kernel: 64-key tiles before range r */
    int n;
    int kt, vt; /* dtypes of k and v (same for every range) */
} sk_att_ranges;

#ifdef __cplusplus
extern "C" {
#endif
/* Tensor-core flash attention for bf16 q/k/v/out with HD 64 or 128 and 16-byte
 * aligned rows. Returns SK_E_UNSUPPORTED (no message) when it does not apply. */
int sk_cuda_flash_bf16_supported(int64_t HD);
sk_status sk_cuda_flash_bf16(cudaStream_t s, void *out, const void *q, const sk_att_ranges *R,
                             int64_t Nq, int64_t NH, int64_t HD, int64_t Nk, float scale,
                             const void *bias, int bias_t);
/* Hopper wgmma version of the same kernel (cuda_flash_wgmma.cu), same
 * preconditions; only when sk_cuda_wgmma_probe() said the sm_90a image loaded. */
sk_status sk_cuda_flash_wgmma(cudaStream_t s, void *out, const void *q, const sk_att_ranges *R,
                              int64_t Nq, int64_t NH, int64_t HD, int64_t Nk, float scale,
                              const void *bias, int bias_t);
/* bf16 attention through cuDNN's fused flash attention (cuda_attention_cudnn.cu):
 * q/out [Nq, NH, HD], the ranges' K/V rows in place, no bias. *done = 0 when
 * cuDNN is absent or declines the shape (then nothing was written). */
sk_status sk_cuda_attention_cudnn(sk_backend *be, void *out, const void *q,
                                  const sk_att_ranges *R, int64_t Nq, int64_t NH, int64_t HD,
                                  float scale, int *done);
/* One-pass FA3-style kernel (cuda_flash_fa3.cu): bf16, HD 128, no bias, scale
 * > 0, TMA + wgmma, all ranges in one softmax; only when sk_cuda_wgmma_probe()
 * said the sm_90a image loaded. _supported: 1 if it takes this call. */
int sk_cuda_flash_fa3_supported(int64_t HD, int64_t Nq, const sk_att_ranges *R, float scale);
sk_status sk_cuda_flash_fa3(sk_backend *be, void *out, const void *q, const sk_att_ranges *R,
                            int64_t Nq, int64_t NH, float scale);
/* 1 if the wgmma kernel can run here; dev_int: a device int it may scribble on */
int sk_cuda_wgmma_probe(cudaStream_t s, int *dev_int);
#ifdef __cplusplus
}
#endif
#endif
