/* cuda_internal.h - shared state and helpers of the CUDA backend (cuda/ only).
 *
 * One backend = one device, one non-blocking stream, one cuBLASLt handle and
 * two device buffers made at creation: the cuBLASLt workspace and a scratch
 * buffer for dtype conversions of weights/biases. Ops only enqueue work on the
 * stream; download and sync are the only places that wait for the device.
 */
#ifndef SK_CUDA_INTERNAL_H
#define SK_CUDA_INTERNAL_H

#include <cuda_runtime.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cublasLt.h>
#include <stdint.h>

#include "runtime/core/backend.h"
#include "runtime/core/log.h"

typedef struct {
    void *ptr;
    size_t bytes;
} sk_cuda_allocation;

/* cached cuBLASLt plan for one (shape, dtypes, epilogue, alignment) key */
typedef struct {
    int valid;
    int64_t m, n, k;
    int a_t, c_t, epi, bias_t, align;
    cublasLtMatmulAlgo_t algo;
} sk_cuda_lt_plan;

#define SK_CUDA_LT_PLANS 128

typedef struct {
    int device;
    int n_sm;
    cudaStream_t stream;
    cublasLtHandle_t lt;
    void *lt_ws;            /* cuBLASLt workspace, made once */
    size_t lt_ws_bytes;
    void *scratch;          /* conversions of weights/biases (grown only if too small) */
    size_t scratch_bytes;
    int *err_flag;          /* device int: kernels set bits for deferred errors */
    sk_cuda_allocation *allocs; /* live allocations (ptr -> size) for bytes_live */
    size_t n_allocs, cap_allocs;
    sk_cuda_lt_plan plans[SK_CUDA_LT_PLANS];
    int wgmma_ok;           /* the sm_90a wgmma attention kernel runs on this device */
    void *cudnn;            /* cuDNN state, made at the first conv2d (cuda_conv_cudnn.cu) */
    /* graphs and allocation counters (cuda_graph.cu) */
    void *graphs;           /* executable graph cache, made at the first capture */
    int capturing;          /* between graph_begin and graph_end: no sync/upload/alloc */
    unsigned scratch_gen;   /* bumped when scratch is reallocated: graphs using it go stale */
    uint64_t n_mallocs;     /* every cudaMalloc the backend made (tensors, scratch growth) */
    void *cudnn_attn;       /* cuDNN attention state, made at the first large attention
                               (cuda_attention_cudnn.cu) */
    void *cudnn_attn_fp8;   /* FP8 attention state (cuda_attention_fp8.cu), made at its first call */
    void *fa3_split;        /* the FA3 kernel's split-unit partials (cuda_flash_fa3.cu) */
    size_t fa3_split_bytes;
} sk_cuda_ctx;

/* deferred error bits in err_flag (checked at sync/download) */
#define SK_CUDA_ERR_EMBED_RANGE 1

static inline sk_cuda_ctx *sk_cuda(sk_backend *be) { return (sk_cuda_ctx *)be->ctx; }

/* Turns a CUDA runtime error into SK_E_CUDA naming the op. */
#define SK_CU(op, call)                                                                    \
    do {                                                                                   \
        cudaError_t sk_cu_e_ = (call);                                                     \
        if (sk_cu_e_ != cudaSuccess)                                                       \
            return SK_ERR(SK_E_CUDA, "cuda %s: %s (%s) in %s", (op),                       \
                          cudaGetErrorString(sk_cu_e_), cudaGetErrorName(sk_cu_e_), #call); \
    } while (0)

/* After a kernel launch: launch-configuration errors surface here. */
#define SK_CU_LAUNCH(op) SK_CU(op, cudaGetLastError())

#define SK_CUBLAS(op, call)                                                                 \
    do {                                                                                    \
        cublasStatus_t sk_cb_s_ = (call);                                                   \
        if (sk_cb_s_ != CUBLAS_STATUS_SUCCESS)                                              \
            return SK_ERR(SK_E_CUDA, "cuda %s: cuBLASLt %s (%d) in %s", (op),              \
                          cublasGetStatusString(sk_cb_s_), (int)sk_cb_s_, #call);            \
    } while (0)

/* Ensures ctx->scratch holds at least `bytes`. Grows (with a device sync) only
 * when an op needs more than creation reserved; logs when that happens. */
sk_status sk_cuda_scratch(sk_backend *be, size_t bytes, void **out);
/* Grows a device buffer the backend owns to at least `bytes` (+1/8, so slowly growing shapes
 * do not reallocate every call). The stream is synchronized first (kernels in flight may still
 * read the old buffer) and recorded graphs that used it go stale (scratch_gen). Never call it
 * while a graph is recorded: callers check c->capturing and decline or fail first. */
sk_status sk_cuda_grow(sk_cuda_ctx *c, void **buf, size_t *cap, size_t bytes, const char *what);

/* Converts n elements between float dtypes on the stream (device to device). */
sk_status sk_cuda_convert_raw(sk_backend *be, void *dst, sk_dtype dt, const void *src,
                              sk_dtype st, int64_t n);

/* 1 if p is aligned for sk_ld8/sk_st8 of dtype t (NULL counts as aligned) */
static inline int sk_cuda_vec_ok(const void *p, sk_dtype t)
{
    return ((uintptr_t)p % (t == SK_DTYPE_F32 ? 32u : 16u)) == 0;
}

/* number of blocks for n threads' worth of work, capped for grid-stride loops */
static inline unsigned sk_cuda_blocks(int64_t n, int threads)
{
    int64_t b = (n + threads - 1) / threads;
    if (b > 65535LL * 32) b = 65535LL * 32;
    if (b < 1) b = 1;
    return (unsigned)b;
}

/* ---- device-side loads/stores of any float dtype (uniform switch per launch) */
#ifdef __CUDACC__
/* fp8 e4m3fn as PyTorch's float8_e4m3fn: |x| >= 480 or NaN -> NaN (0x7f|sign),
 * [448, 480) -> 448, round to nearest even (same rules as runtime/core/dtype.c) */
__device__ __forceinline__ uint8_t sk_f8_enc(float f)
{
    uint32_t u = __float_as_uint(f);
    uint8_t sign = (uint8_t)((u >> 24) & 0x80u);
    float a = fabsf(f);
    if (isnan(f) || a >= 480.0f) return (uint8_t)(sign | 0x7f);
    if (a < 0.015625f) return (uint8_t)(sign | (uint32_t)rintf(a * 512.0f));
    uint32_t au = __float_as_uint(a);
    uint32_t v = (((au >> 23) - 127 + 7) << 3) | ((au & 0x7fffffu) >> 20);
    uint32_t rem = au & 0xfffffu;
    if (rem > 0x80000u || (rem == 0x80000u && (v & 1u))) v++;
    if (v > 0x7e) v = 0x7e;
    return (uint8_t)(sign | v);
}
__device__ __forceinline__ float sk_f8_dec(uint8_t v)
{
    float s = (v & 0x80) ? -1.0f : 1.0f;
    uint32_t e = (v >> 3) & 15u, m = v & 7u;
    if (e == 15u && m == 7u) return __uint_as_float(0x7fc00000u);
    if (e == 0) return s * (float)m * (1.0f / 512.0f);
    return s * __uint_as_float(((e + 120u) << 23) | (m << 20));
}
__device__ __forceinline__ float sk_ld(const void *p, int dt, int64_t i)
{
    switch (dt) {
    case SK_DTYPE_BF16: return __bfloat162float(((const __nv_bfloat16 *)p)[i]);
    case SK_DTYPE_F16: return __half2float(((const __half *)p)[i]);
    case SK_DTYPE_F64: return (float)((const double *)p)[i];
    case SK_DTYPE_F8_E4M3: return sk_f8_dec(((const uint8_t *)p)[i]);
    default: return ((const float *)p)[i];
    }
}
__device__ __forceinline__ void sk_st(void *p, int dt, int64_t i, float v)
{
    switch (dt) {
    case SK_DTYPE_BF16: ((__nv_bfloat16 *)p)[i] = __float2bfloat16_rn(v); break;
    case SK_DTYPE_F16: ((__half *)p)[i] = __float2half_rn(v); break;
    case SK_DTYPE_F64: ((double *)p)[i] = (double)v; break;
    case SK_DTYPE_F8_E4M3: ((uint8_t *)p)[i] = sk_f8_enc(v); break;
    default: ((float *)p)[i] = v; break;
    }
}
__device__ __forceinline__ float sk_act_apply(int act, float x)
{
    switch (act) {
    case SK_ACT_GELU_TANH: {
        float u = 0.7978845608028654f * (x + 0.044715f * x * x * x);
        return 0.5f * x * (1.0f + tanhf(u));
    }
    case SK_ACT_SILU: return x / (1.0f + expf(-x));
    case SK_ACT_RELU: return x > 0.0f ? x : 0.0f;
    case SK_ACT_TANH_CLAMP: return 3.0f * tanhf(x / 3.0f);
    case SK_ACT_CLAMP01: return fminf(fmaxf(x, 0.0f), 1.0f);
    default: return x;
    }
}
/* 8 consecutive elements starting at element 8*c (16-byte aligned for bf16,
 * 32-byte for f32: callers check alignment on the host) */
__device__ __forceinline__ void sk_ld8(const void *p, int dt, int64_t c, float v[8])
{
    if (dt == SK_DTYPE_BF16) {
        uint4 u = reinterpret_cast<const uint4 *>(p)[c];
        const __nv_bfloat162 *h = reinterpret_cast<const __nv_bfloat162 *>(&u);
#pragma unroll
        for (int k = 0; k < 4; k++) {
            float2 f = __bfloat1622float2(h[k]);
            v[2 * k] = f.x;
            v[2 * k + 1] = f.y;
        }
    } else if (dt == SK_DTYPE_F32) {
        float4 a = reinterpret_cast<const float4 *>(p)[2 * c];
        float4 b = reinterpret_cast<const float4 *>(p)[2 * c + 1];
        v[0] = a.x; v[1] = a.y; v[2] = a.z; v[3] = a.w;
        v[4] = b.x; v[5] = b.y; v[6] = b.z; v[7] = b.w;
    } else {
#pragma unroll
        for (int k = 0; k < 8; k++) v[k] = sk_ld(p, dt, 8 * c + k);
    }
}
__device__ __forceinline__ void sk_st8(void *p, int dt, int64_t c, const float v[8])
{
    if (dt == SK_DTYPE_BF16) {
        uint4 u;
        __nv_bfloat162 *h = reinterpret_cast<__nv_bfloat162 *>(&u);
#pragma unroll
        for (int k = 0; k < 4; k++) h[k] = __floats2bfloat162_rn(v[2 * k], v[2 * k + 1]);
        reinterpret_cast<uint4 *>(p)[c] = u;
    } else if (dt == SK_DTYPE_F32) {
        reinterpret_cast<float4 *>(p)[2 * c] = make_float4(v[0], v[1], v[2], v[3]);
        reinterpret_cast<float4 *>(p)[2 * c + 1] = make_float4(v[4], v[5], v[6], v[7]);
    } else {
#pragma unroll
        for (int k = 0; k < 8; k++) sk_st(p, dt, 8 * c + k, v[k]);
    }
}
#define SK_GRID_STRIDE(i, n)                                                         \
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n);        \
         i += (int64_t)gridDim.x * blockDim.x)
#endif

/* ---- op implementations, one file each (declared with C linkage for the table) */
#ifdef __cplusplus
extern "C" {
#endif
sk_status sk_cuda_linear(sk_backend *be, sk_tensor *y, const sk_tensor *x, const sk_tensor *w,
                         const sk_tensor *b, sk_act act);
sk_status sk_cuda_layernorm(sk_backend *be, sk_tensor *y, const sk_tensor *x, const sk_tensor *w,
                            const sk_tensor *b, float eps);
sk_status sk_cuda_rmsnorm(sk_backend *be, sk_tensor *y, const sk_tensor *x, const sk_tensor *w,
                          float eps);
sk_status sk_cuda_modulate(sk_backend *be, sk_tensor *y, const sk_tensor *x, const sk_tensor *mod,
                           int i_shift, int i_scale, int64_t rows_per_group, int ln, float eps);
sk_status sk_cuda_gated_add(sk_backend *be, sk_tensor *x, const sk_tensor *y, const sk_tensor *mod,
                            int i_gate, int64_t rows_per_group);
sk_status sk_cuda_convert(sk_backend *be, sk_tensor *y, const sk_tensor *x);
sk_status sk_cuda_axpby(sk_backend *be, sk_tensor *y, float a, const sk_tensor *x, float b,
                        const sk_tensor *z);
sk_status sk_cuda_mul(sk_backend *be, sk_tensor *y, const sk_tensor *x, const sk_tensor *z);
sk_status sk_cuda_act(sk_backend *be, sk_tensor *y, const sk_tensor *x, sk_act act);
sk_status sk_cuda_attention(sk_backend *be, sk_tensor *out, const sk_tensor *q,
                            const sk_kv_range *ranges, int nranges, float scale,
                            const sk_tensor *bias);
sk_status sk_cuda_rope3d(sk_backend *be, sk_tensor *x, int64_t F, int64_t Hp, int64_t Wp,
                         int64_t t0, double theta);
sk_status sk_cuda_flag_nonfinite(sk_backend *be, const sk_tensor *x, void *flag);
sk_status sk_cuda_quantize_rows(sk_backend *be, sk_tensor *q, sk_tensor *s, const sk_tensor *x);
sk_status sk_cuda_modulate_fp8(sk_backend *be, sk_tensor *y, sk_tensor *q, sk_tensor *s,
                               const sk_tensor *x, const sk_tensor *mod, int i_shift, int i_scale,
                               int64_t rows_per_group, int ln, float eps);
sk_status sk_cuda_layernorm_fp8(sk_backend *be, sk_tensor *y, sk_tensor *q, sk_tensor *s,
                                const sk_tensor *x, const sk_tensor *w, const sk_tensor *b,
                                float eps);
sk_status sk_cuda_quantize_rows_pow2(sk_backend *be, sk_tensor *q, sk_tensor *s, const sk_tensor *x);
sk_status sk_cuda_linear_fp8(sk_backend *be, sk_tensor *y, const sk_tensor *q, const sk_tensor *sx,
                             const sk_tensor *w, const sk_tensor *sw, const sk_tensor *b,
                             sk_act act);
sk_status sk_cuda_rmsnorm_rope3d(sk_backend *be, sk_tensor *y, const sk_tensor *x,
                                 const sk_tensor *w, float eps, int64_t F, int64_t Hp, int64_t Wp,
                                 int64_t t0, double theta);
sk_status sk_cuda_conv2d(sk_backend *be, sk_tensor *y, const sk_tensor *x, const sk_tensor *w,
                         const sk_tensor *b, int stride, int pad);
sk_status sk_cuda_pixel_shuffle(sk_backend *be, sk_tensor *y, const sk_tensor *x, int p);
sk_status sk_cuda_pixel_unshuffle(sk_backend *be, sk_tensor *y, const sk_tensor *x, int p);
sk_status sk_cuda_upsample_nearest(sk_backend *be, sk_tensor *y, const sk_tensor *x, int s);
sk_status sk_cuda_concat_channels(sk_backend *be, sk_tensor *y, const sk_tensor *a,
                                  const sk_tensor *b);
sk_status sk_cuda_patchify(sk_backend *be, sk_tensor *y, const sk_tensor *x);
sk_status sk_cuda_unpatchify(sk_backend *be, sk_tensor *y, const sk_tensor *x);
sk_status sk_cuda_embedding(sk_backend *be, sk_tensor *y, const sk_tensor *table,
                            const sk_tensor *ids);
sk_status sk_cuda_noise(sk_backend *be, sk_tensor *y, uint64_t seed, int64_t frame0,
                        uint32_t stream);
/* bf16 conv2d through cuDNN; *done = 0 when cuDNN is absent or declines */
sk_status sk_cuda_conv2d_cudnn(sk_backend *be, sk_tensor *y, const sk_tensor *x,
                               const sk_tensor *w, const sk_tensor *b, int stride, int pad,
                               int *done);
void sk_cuda_cudnn_destroy(sk_cuda_ctx *c);
/* graph capture ops of the table (cuda_graph.cu) */
sk_status sk_cuda_graph_begin(sk_backend *be);
sk_status sk_cuda_graph_end(sk_backend *be, const void *key, size_t key_len, int discard);
int sk_cuda_graph_find(sk_backend *be, const void *key, size_t key_len);
sk_status sk_cuda_graph_launch(sk_backend *be, const void *key, size_t key_len);
void sk_cuda_graph_destroy(sk_cuda_ctx *c);
void sk_cuda_attention_cudnn_destroy(sk_cuda_ctx *c);
/* FP8 self-attention (runtime/core/fp8.h; cuda_attention_fp8.cu) */
sk_status sk_cuda_attention_fp8(sk_backend *be, sk_tensor *out, const sk_tensor *q,
                                const sk_kv_range *ranges, int nranges, float scale);
void sk_cuda_attention_fp8_destroy(sk_cuda_ctx *c);
#ifdef __cplusplus
}
#endif

#endif
