/* cuda_norm.cu - layernorm, rmsnorm, modulate (optionally fused with a
 * LayerNorm) and gated_add. One block per row; statistics in f32 with a
 * two-pass mean/variance (the row is re-read from L1/L2, not DRAM) so large
 * activations do not lose precision to E[x^2]-E[x]^2 cancellation. */
#include <stdlib.h>

#include "cuda_e4m3.cuh"
#include "cuda_internal.h"

#define NORM_THREADS 256

__device__ __forceinline__ float block_sum(float v, float *red)
{
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    int w = threadIdx.x >> 5, l = threadIdx.x & 31;
    __syncthreads(); /* red may still be read by a previous call */
    if (l == 0) red[w] = v;
    __syncthreads();
    float t = 0.0f;
    int nw = blockDim.x >> 5;
    for (int i = 0; i < nw; i++) t += red[i];
    return t;
}

/* mode 0: layernorm (w, b optional), 1: rmsnorm (w optional) */
__global__ void k_norm(void *y, int yt, const void *x, int xt, const void *w, int wt,
                       const void *b, int bt, int64_t D, float eps, int mode)
{
    __shared__ float red[32];
    int64_t r = blockIdx.x;
    const int64_t off = r * D;
    float mean = 0.0f, inv;
    if (mode == 0) {
        float s = 0.0f;
        for (int64_t d = threadIdx.x; d < D; d += blockDim.x) s += sk_ld(x, xt, off + d);
        mean = block_sum(s, red) / (float)D;
        float v = 0.0f;
        for (int64_t d = threadIdx.x; d < D; d += blockDim.x) {
            float t = sk_ld(x, xt, off + d) - mean;
            v += t * t;
        }
        inv = rsqrtf(block_sum(v, red) / (float)D + eps);
    } else {
        float v = 0.0f;
        for (int64_t d = threadIdx.x; d < D; d += blockDim.x) {
            float t = sk_ld(x, xt, off + d);
            v += t * t;
        }
        inv = rsqrtf(block_sum(v, red) / (float)D + eps);
    }
    for (int64_t d = threadIdx.x; d < D; d += blockDim.x) {
        float t = (sk_ld(x, xt, off + d) - mean) * inv;
        if (w) t *= sk_ld(w, wt, d);
        if (b) t += sk_ld(b, bt, d);
        sk_st(y, yt, off + d, t);
    }
}

/* y = norm?(x) * (1 + mod[g, i_scale]) + mod[g, i_shift]; y may equal x
 * (each element is read before it is written, by the same thread) */
__global__ void k_modulate(void *y, int yt, const void *x, int xt, const void *mod, int mt,
                           int64_t D, int64_t K, int i_shift, int i_scale, int64_t rpg, int ln,
                           float eps)
{
    __shared__ float red[32];
    int64_t r = blockIdx.x;
    int64_t g = r / rpg;
    const int64_t off = r * D;
    const int64_t sh = (g * K + i_shift) * D, sc = (g * K + i_scale) * D;
    float mean = 0.0f, inv = 1.0f;
    if (ln) {
        float s = 0.0f;
        for (int64_t d = threadIdx.x; d < D; d += blockDim.x) s += sk_ld(x, xt, off + d);
        mean = block_sum(s, red) / (float)D;
        float v = 0.0f;
        for (int64_t d = threadIdx.x; d < D; d += blockDim.x) {
            float t = sk_ld(x, xt, off + d) - mean;
            v += t * t;
        }
        inv = rsqrtf(block_sum(v, red) / (float)D + eps);
    }
    for (int64_t d = threadIdx.x; d < D; d += blockDim.x) {
        float t = (sk_ld(x, xt, off + d) - mean) * inv;
        t = t * (1.0f + sk_ld(mod, mt, sc + d)) + sk_ld(mod, mt, sh + d);
        sk_st(y, yt, off + d, t);
    }
}

__global__ void k_gated_add(void *x, int xt, const void *y, int yt, const void *mod, int mt,
                            int64_t D, int64_t K, int i_gate, int64_t rpg, int64_t n)
{
    SK_GRID_STRIDE(i, n)
    {
        float v = sk_ld(y, yt, i);
        if (i_gate >= 0) {
            int64_t r = i / D, d = i - r * D, g = r / rpg;
            v *= sk_ld(mod, mt, (g * K + i_gate) * D + d);
        }
        sk_st(x, xt, i, sk_ld(x, xt, i) + v);
    }
}

/* Vectorised row kernel (D % 8 == 0, aligned rows): the row is read once
 * into registers as NC chunks of 8 per thread, statistics come from the
 * registers, and the result is written once. mode: 0 layernorm, 1 rmsnorm,
 * 2 modulate (ln), 3 modulate (no ln). Same math as k_norm/k_modulate. */
/* QUANT (modulate_fp8): the row y as stored (rounded to y's dtype) is also quantized
 * to e4m3 with one scale per row (fp8.h), from the registers: quantize_rows(y) without
 * reading y back. */
template <int NC, int QUANT>
__global__ void k_row8(void *y, int yt, const void *x, int xt, const void *w, int wt,
                       const void *b, int bt, const void *mod, int mt, int64_t D, int64_t K,
                       int i_shift, int i_scale, int64_t rpg, float eps, int mode,
                       uint8_t *__restrict__ q8, float *__restrict__ qs)
{
    __shared__ float red[32];
    const int64_t r = blockIdx.x, nch = D / 8, c0 = r * nch;
    float v[NC][8];
#pragma unroll
    for (int k = 0; k < NC; k++) {
        const int64_t c = threadIdx.x + (int64_t)k * blockDim.x;
        if (c < nch) sk_ld8(x, xt, c0 + c, v[k]);
        else
#pragma unroll
            for (int e = 0; e < 8; e++) v[k][e] = 0.0f;
    }
    float mean = 0.0f, inv = 1.0f;
    if (mode != 3) {
        if (mode != 1) {
            float s = 0.0f;
#pragma unroll
            for (int k = 0; k < NC; k++)
#pragma unroll
                for (int e = 0; e < 8; e++) s += v[k][e];
            mean = block_sum(s, red) / (float)D;
        }
        float q = 0.0f;
#pragma unroll
        for (int k = 0; k < NC; k++) {
            const int64_t c = threadIdx.x + (int64_t)k * blockDim.x;
            if (c < nch)
#pragma unroll
                for (int e = 0; e < 8; e++) {
                    float t = v[k][e] - mean;
                    q += t * t;
                }
        }
        inv = rsqrtf(block_sum(q, red) / (float)D + eps);
    }
    const int64_t g = r / rpg;
    const int64_t sh = (g * K + i_shift) * (D / 8), sc = (g * K + i_scale) * (D / 8);
#pragma unroll
    for (int k = 0; k < NC; k++) {
        const int64_t c = threadIdx.x + (int64_t)k * blockDim.x;
        if (c >= nch) continue;
        float o[8], p1[8], p2[8];
#pragma unroll
        for (int e = 0; e < 8; e++) o[e] = (v[k][e] - mean) * inv;
        if (mode >= 2) {
            sk_ld8(mod, mt, sc + c, p1);
            sk_ld8(mod, mt, sh + c, p2);
#pragma unroll
            for (int e = 0; e < 8; e++) o[e] = o[e] * (1.0f + p1[e]) + p2[e];
        } else {
            if (w) {
                sk_ld8(w, wt, c, p1);
#pragma unroll
                for (int e = 0; e < 8; e++) o[e] *= p1[e];
            }
            if (b) {
                sk_ld8(b, bt, c, p2);
#pragma unroll
                for (int e = 0; e < 8; e++) o[e] += p2[e];
            }
        }
        sk_st8(y, yt, c0 + c, o);
        if (QUANT) /* keep the stored values: what quantize_rows would read back */
#pragma unroll
            for (int e = 0; e < 8; e++)
                v[k][e] = yt == SK_DTYPE_BF16 ? __bfloat162float(__float2bfloat16_rn(o[e])) : o[e];
    }
    if (QUANT) {
        float amax = 0.0f; /* fmaxf ignores NaN, as fp8.h's amax */
#pragma unroll
        for (int k = 0; k < NC; k++)
            if (threadIdx.x + (int64_t)k * blockDim.x < nch)
#pragma unroll
                for (int e = 0; e < 8; e++) amax = fmaxf(amax, fabsf(v[k][e]));
        amax = sk_blk_reduce(amax, 1, red);
        float qinv, qscale;
        fp8_row_scales(amax, &qinv, &qscale);
        if (threadIdx.x == 0) qs[r] = qscale;
#pragma unroll
        for (int k = 0; k < NC; k++) {
            const int64_t c = threadIdx.x + (int64_t)k * blockDim.x;
            if (c >= nch) continue;
            uint2 ob;
            uint8_t *bb = reinterpret_cast<uint8_t *>(&ob);
#pragma unroll
            for (int e = 0; e < 8; e++) bb[e] = sk_e4m3_sat(v[k][e] * qinv);
            reinterpret_cast<uint2 *>(q8)[c0 + c] = ob;
        }
    }
}

/* x += y * gate, 8 elements per thread (D % 8 == 0, aligned) */
__global__ void k_gated_add8(void *x, int xt, const void *y, int yt, const void *mod, int mt,
                             int64_t D, int64_t K, int i_gate, int64_t rpg, int64_t nch)
{
    const int64_t dch = D / 8;
    SK_GRID_STRIDE(c, nch)
    {
        float a[8], v[8];
        sk_ld8(x, xt, c, a);
        sk_ld8(y, yt, c, v);
        if (i_gate >= 0) {
            int64_t r = c / dch, dc = c - r * dch, g = r / rpg;
            float gt[8];
            sk_ld8(mod, mt, (g * K + i_gate) * dch + dc, gt);
#pragma unroll
            for (int e = 0; e < 8; e++) v[e] *= gt[e];
        }
#pragma unroll
        for (int e = 0; e < 8; e++) a[e] += v[e];
        sk_st8(x, xt, c, a);
    }
}

/* launches k_row8 when the shapes/alignment allow; *done = 0 otherwise */
static sk_status row8(sk_backend *be, const char *op, int *done, sk_tensor *y, const sk_tensor *x,
                      const sk_tensor *w, const sk_tensor *b, const sk_tensor *mod, int64_t D,
                      int64_t R, int64_t K, int i_shift, int i_scale, int64_t rpg, float eps,
                      int mode, sk_tensor *q = NULL, sk_tensor *qs = NULL)
{
    *done = 0;
    if (D % 8 || getenv("SK_CUDA_NORM_SCALAR")) return SK_OK;
    if (q && ((uintptr_t)q->data % 8 || !qs)) return SK_OK;
    const sk_tensor *ts[5] = {y, x, w, b, mod};
    for (int i = 0; i < 5; i++)
        if (ts[i] && !sk_cuda_vec_ok(ts[i]->data, ts[i]->dtype)) return SK_OK;
    const int64_t nch = D / 8;
    /* the fewest chunks per thread (<= 256 threads), then threads spread evenly over them:
     * D 3072 runs 192 threads x 2 chunks, not 256 x 2 with a quarter of the slots idle */
    const int64_t nc = (nch + 255) / 256;
    const int threads = (int)(((nch + nc - 1) / nc + 31) / 32 * 32);
    if (nc > 4) return SK_OK;
    cudaStream_t s = sk_cuda(be)->stream;
#define ROW8(NCV, QV)                                                                         \
    k_row8<NCV, QV><<<(unsigned)R, threads, 0, s>>>(                                          \
        y->data, y->dtype, x->data, x->dtype, w ? w->data : NULL, w ? w->dtype : 0,           \
        b ? b->data : NULL, b ? b->dtype : 0, mod ? mod->data : NULL, mod ? mod->dtype : 0, D, \
        K, i_shift, i_scale, rpg, eps, mode, q ? (uint8_t *)q->data : NULL,                   \
        qs ? (float *)qs->data : NULL)
    if (q) {
        if (nc == 1) ROW8(1, 1);
        else if (nc == 2) ROW8(2, 1);
        else ROW8(4, 1);
    } else {
        if (nc == 1) ROW8(1, 0);
        else if (nc == 2) ROW8(2, 0);
        else ROW8(4, 0);
    }
#undef ROW8
    SK_CU_LAUNCH(op);
    *done = 1;
    return SK_OK;
}

static int64_t last_dim(const sk_tensor *t) { return t->ndim ? t->shape[t->ndim - 1] : 1; }

extern "C" sk_status sk_cuda_layernorm(sk_backend *be, sk_tensor *y, const sk_tensor *x,
                                       const sk_tensor *w, const sk_tensor *b, float eps)
{
    int64_t D = last_dim(x), R = D ? sk_tensor_numel(x) / D : 0;
    if (R == 0) return SK_OK;
    int done = 0;
    SK_TRY(row8(be, "layernorm", &done, y, x, w, b, NULL, D, R, 1, 0, 0, 1, eps, 0));
    if (done) return SK_OK;
    k_norm<<<(unsigned)R, NORM_THREADS, 0, sk_cuda(be)->stream>>>(
        y->data, y->dtype, x->data, x->dtype, w ? w->data : NULL, w ? w->dtype : 0,
        b ? b->data : NULL, b ? b->dtype : 0, D, eps, 0);
    SK_CU_LAUNCH("layernorm");
    return SK_OK;
}

extern "C" sk_status sk_cuda_rmsnorm(sk_backend *be, sk_tensor *y, const sk_tensor *x,
                                     const sk_tensor *w, float eps)
{
    int64_t D = last_dim(x), R = D ? sk_tensor_numel(x) / D : 0;
    if (R == 0) return SK_OK;
    int done = 0;
    SK_TRY(row8(be, "rmsnorm", &done, y, x, w, NULL, NULL, D, R, 1, 0, 0, 1, eps, 1));
    if (done) return SK_OK;
    k_norm<<<(unsigned)R, NORM_THREADS, 0, sk_cuda(be)->stream>>>(
        y->data, y->dtype, x->data, x->dtype, w ? w->data : NULL, w ? w->dtype : 0, NULL, 0, D,
        eps, 1);
    SK_CU_LAUNCH("rmsnorm");
    return SK_OK;
}

extern "C" sk_status sk_cuda_modulate(sk_backend *be, sk_tensor *y, const sk_tensor *x,
                                      const sk_tensor *mod, int i_shift, int i_scale,
                                      int64_t rows_per_group, int ln, float eps)
{
    int64_t D = last_dim(x), R = D ? sk_tensor_numel(x) / D : 0;
    if (R == 0) return SK_OK;
    SK_CHECK(mod->ndim >= 2 && rows_per_group > 0, SK_E_SHAPE,
             "cuda modulate: mod must be [G, K, D] and rows_per_group > 0");
    int64_t K = mod->shape[mod->ndim - 2];
    int done = 0;
    SK_TRY(row8(be, "modulate", &done, y, x, NULL, NULL, mod, D, R, K, i_shift, i_scale,
                rows_per_group, eps, ln ? 2 : 3));
    if (done) return SK_OK;
    k_modulate<<<(unsigned)R, NORM_THREADS, 0, sk_cuda(be)->stream>>>(
        y->data, y->dtype, x->data, x->dtype, mod->data, mod->dtype, D, K, i_shift, i_scale,
        rows_per_group, ln, eps);
    SK_CU_LAUNCH("modulate");
    return SK_OK;
}

/* modulate + quantize_rows of its output in one pass (k_row8's QUANT); where the row kernel
 * does not apply (alignment, D % 8, D > 8192), the two ops */
extern "C" sk_status sk_cuda_modulate_fp8(sk_backend *be, sk_tensor *y, sk_tensor *q, sk_tensor *s,
                                          const sk_tensor *x, const sk_tensor *mod, int i_shift,
                                          int i_scale, int64_t rows_per_group, int ln, float eps)
{
    int64_t D = last_dim(x), R = D ? sk_tensor_numel(x) / D : 0;
    if (R == 0) return SK_OK;
    SK_CHECK(mod->ndim >= 2 && rows_per_group > 0, SK_E_SHAPE,
             "cuda modulate_fp8: mod must be [G, K, D] and rows_per_group > 0");
    int64_t K = mod->shape[mod->ndim - 2];
    int done = 0;
    SK_TRY(row8(be, "modulate_fp8", &done, y, x, NULL, NULL, mod, D, R, K, i_shift, i_scale,
                rows_per_group, eps, ln ? 2 : 3, q, s));
    if (done) return SK_OK;
    SK_TRY(sk_cuda_modulate(be, y, x, mod, i_shift, i_scale, rows_per_group, ln, eps));
    return sk_cuda_quantize_rows(be, q, s, y);
}

/* layernorm + quantize_rows of its output in one pass, as sk_cuda_modulate_fp8 */
extern "C" sk_status sk_cuda_layernorm_fp8(sk_backend *be, sk_tensor *y, sk_tensor *q,
                                           sk_tensor *s, const sk_tensor *x, const sk_tensor *w,
                                           const sk_tensor *b, float eps)
{
    int64_t D = last_dim(x), R = D ? sk_tensor_numel(x) / D : 0;
    if (R == 0) return SK_OK;
    int done = 0;
    SK_TRY(row8(be, "layernorm_fp8", &done, y, x, w, b, NULL, D, R, 1, 0, 0, 1, eps, 0, q, s));
    if (done) return SK_OK;
    SK_TRY(sk_cuda_layernorm(be, y, x, w, b, eps));
    return sk_cuda_quantize_rows(be, q, s, y);
}

extern "C" sk_status sk_cuda_gated_add(sk_backend *be, sk_tensor *x, const sk_tensor *y,
                                       const sk_tensor *mod, int i_gate, int64_t rows_per_group)
{
    int64_t n = sk_tensor_numel(x), D = last_dim(x);
    if (n == 0) return SK_OK;
    int64_t K = 1;
    if (i_gate >= 0) {
        SK_CHECK(mod && mod->ndim >= 2 && rows_per_group > 0, SK_E_SHAPE,
                 "cuda gated_add: mod must be [G, K, D] and rows_per_group > 0");
        K = mod->shape[mod->ndim - 2];
    }
    if (D % 8 == 0 && sk_cuda_vec_ok(x->data, x->dtype) && sk_cuda_vec_ok(y->data, y->dtype) &&
        (i_gate < 0 || sk_cuda_vec_ok(mod->data, mod->dtype)) && !getenv("SK_CUDA_NORM_SCALAR")) {
        const int64_t nch = n / 8;
        k_gated_add8<<<sk_cuda_blocks(nch, 256), 256, 0, sk_cuda(be)->stream>>>(
            x->data, x->dtype, y->data, y->dtype, i_gate >= 0 ? mod->data : NULL,
            i_gate >= 0 ? mod->dtype : 0, D, K, i_gate, rows_per_group > 0 ? rows_per_group : 1,
            nch);
        SK_CU_LAUNCH("gated_add");
        return SK_OK;
    }
    k_gated_add<<<sk_cuda_blocks(n, 256), 256, 0, sk_cuda(be)->stream>>>(
        x->data, x->dtype, y->data, y->dtype, i_gate >= 0 ? mod->data : NULL,
        i_gate >= 0 ? mod->dtype : 0, D, K, i_gate, rows_per_group > 0 ? rows_per_group : 1, n);
    SK_CU_LAUNCH("gated_add");
    return SK_OK;
}
