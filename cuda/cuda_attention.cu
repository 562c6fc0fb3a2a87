/* cuda_attention.cu - multi-head attention over a list of KV ranges.
 *
 * Dispatch: bf16 q/k/v/out with head dim 64 or 128 and 16-byte aligned rows go
 * to the tensor-core flash kernel (cuda_flash_mma.cu). Everything else (the
 * f32 parity mode, odd head dims, mixed dtypes) runs the generic kernel here:
 * online softmax in f32, K/V tiles of 32 keys staged in shared memory as f32,
 * one warp per query row, lane j scoring key j of the tile. Neither kernel
 * copies the ranges together: each tile is read from its own range.
 */
#include <stdlib.h>
#include <string.h>

#include "cuda_internal.h"
#include "cuda_attention.h"

#define GEN_ROWS 8  /* query rows (warps) per block */
#define GEN_TILE 32 /* keys per shared-memory tile */
#define GEN_MAX_HD 256

__global__ void __launch_bounds__(GEN_ROWS * 32)
    k_attention_generic(void *out, int ot, const void *q, int qt, sk_att_ranges R, int64_t Nq,
                        int64_t NH, int64_t HD, int64_t Nk, float scale, const void *bias,
                        int bt)
{
    extern __shared__ float sm[];
    const int64_t KLD = HD + 1; /* padded: lane j reads row j, no bank conflicts */
    float *Ks = sm;
    float *Vs = Ks + GEN_TILE * KLD;
    float *Qs = Vs + GEN_TILE * HD;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int64_t h = blockIdx.y;
    const int64_t i = (int64_t)blockIdx.x * GEN_ROWS + warp;
    const bool active = i < Nq;
    float *qrow = Qs + warp * HD;
    for (int64_t d = lane; d < HD; d += 32)
        qrow[d] = active ? sk_ld(q, qt, (i * NH + h) * HD + d) * scale : 0.0f;
    float acc[GEN_MAX_HD / 32];
#pragma unroll
    for (int t = 0; t < GEN_MAX_HD / 32; t++) acc[t] = 0.0f;
    float m = -INFINITY, l = 0.0f;
    const int nthr = blockDim.x;
    for (int r = 0; r < R.n; r++) {
        for (int64_t j0 = 0; j0 < R.len[r]; j0 += GEN_TILE) {
            const int64_t nv = min((int64_t)GEN_TILE, R.len[r] - j0);
            __syncthreads(); /* previous tile fully consumed */
            for (int64_t e = threadIdx.x; e < GEN_TILE * HD; e += nthr) {
                int64_t jj = e / HD, d = e - jj * HD;
                float kv = 0.0f, vv = 0.0f;
                if (jj < nv) {
                    int64_t off = ((R.start[r] + j0 + jj) * NH + h) * HD + d;
                    kv = sk_ld(R.k[r], R.kt, off);
                    vv = sk_ld(R.v[r], R.vt, off);
                }
                Ks[jj * KLD + d] = kv;
                Vs[jj * HD + d] = vv;
            }
            __syncthreads();
            /* lane scores key `lane` of the tile */
            float s = -INFINITY;
            if (lane < nv) {
                float dot = 0.0f;
                const float *kr = Ks + lane * KLD;
                for (int64_t d = 0; d < HD; d++) dot += qrow[d] * kr[d];
                if (bias && active)
                    dot += sk_ld(bias, bt, (h * Nq + i) * Nk + R.kbase[r] + j0 + lane);
                s = dot;
            }
            float mx = s;
            for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
            const float mn = fmaxf(m, mx);
            const float alpha = (m == -INFINITY) ? 0.0f : __expf(m - mn);
            const float p = (s == -INFINITY) ? 0.0f : __expf(s - mn);
            float ps = p;
            for (int o = 16; o > 0; o >>= 1) ps += __shfl_xor_sync(0xffffffffu, ps, o);
            l = l * alpha + ps;
            m = mn;
#pragma unroll
            for (int t = 0; t < GEN_MAX_HD / 32; t++) acc[t] *= alpha;
            for (int jj = 0; jj < nv; jj++) {
                const float pj = __shfl_sync(0xffffffffu, p, jj);
                const float *vr = Vs + jj * HD;
#pragma unroll
                for (int t = 0; t < GEN_MAX_HD / 32; t++) {
                    int64_t d = lane + 32 * t;
                    if (d < HD) acc[t] += pj * vr[d];
                }
            }
        }
    }
    if (!active) return;
    const float inv = l > 0.0f ? 1.0f / l : 0.0f;
#pragma unroll
    for (int t = 0; t < GEN_MAX_HD / 32; t++) {
        int64_t d = lane + 32 * t;
        if (d < HD) sk_st(out, ot, i * NH * HD + h * HD + d, acc[t] * inv);
    }
}

static int aligned16(const void *p) { return ((uintptr_t)p & 15) == 0; }

extern "C" sk_status sk_cuda_attention(sk_backend *be, sk_tensor *out, const sk_tensor *q,
                                       const sk_kv_range *ranges, int nranges, float scale,
                                       const sk_tensor *bias)
{
    SK_CHECK(q->ndim == 3, SK_E_SHAPE, "cuda attention: q must be [Nq, NH, HD]");
    const int64_t Nq = q->shape[0], NH = q->shape[1], HD = q->shape[2];
    SK_CHECK(nranges >= 0 && nranges <= SK_ATT_MAX_RANGES, SK_E_INVALID_ARG,
             "cuda attention: %d KV ranges; at most %d supported", nranges, SK_ATT_MAX_RANGES);
    if (Nq == 0 || NH == 0) return SK_OK;
    SK_CHECK(HD <= GEN_MAX_HD, SK_E_UNSUPPORTED,
             "cuda attention: head dim %lld; at most %d supported", (long long)HD, GEN_MAX_HD);
    sk_att_ranges R;
    memset(&R, 0, sizeof R);
    int64_t Nk = 0;
    int tiles = 0;
    int fast = sk_cuda_flash_bf16_supported(HD) && q->dtype == SK_DTYPE_BF16 &&
               out->dtype == SK_DTYPE_BF16 && aligned16(q->data) && aligned16(out->data);
    for (int r = 0; r < nranges; r++) {
        const sk_kv_range *g = &ranges[r];
        if (g->len <= 0) continue;
        int n = R.n++;
        R.k[n] = g->k->data;
        R.v[n] = g->v->data;
        R.start[n] = g->start;
        R.len[n] = g->len;
        R.kbase[n] = Nk;
        R.tiles_before[n] = tiles;
        Nk += g->len;
        tiles += (int)((g->len + 63) / 64);
        if (n == 0) {
            R.kt = g->k->dtype;
            R.vt = g->v->dtype;
        }
        SK_CHECK(g->k->dtype == R.kt && g->v->dtype == R.vt, SK_E_DTYPE,
                 "cuda attention: range %d has k/v dtypes %s/%s, range 0 has %s/%s", r,
                 sk_dtype_name(g->k->dtype), sk_dtype_name(g->v->dtype),
                 sk_dtype_name((sk_dtype)R.kt), sk_dtype_name((sk_dtype)R.vt));
        size_t row_off = (size_t)g->start * NH * HD * 2;
        if (!aligned16((char *)g->k->data + row_off) || !aligned16((char *)g->v->data + row_off))
            fast = 0;
    }
    R.tiles_before[R.n] = tiles;
    if (R.kt != SK_DTYPE_BF16 || R.vt != SK_DTYPE_BF16) fast = 0;
    cudaStream_t s = sk_cuda(be)->stream;
    if (Nk == 0) {
        SK_CU("attention", cudaMemsetAsync(out->data, 0, sk_tensor_nbytes(out), s));
        return SK_OK;
    }
    if (getenv("SK_CUDA_ATTN_GENERIC")) fast = 0; /* A/B switch for tests */
    if (fast)
        return sk_cuda_flash_bf16(s, out->data, q->data, &R, Nq, NH, HD, Nk, scale,
                                  bias ? bias->data : NULL, bias ? bias->dtype : 0);

    size_t smem = (size_t)(GEN_TILE * (HD + 1) + GEN_TILE * HD + GEN_ROWS * HD) * sizeof(float);
    static int smem_set = 0; /* the attribute is per function, once per process */
    if (!smem_set) {
        SK_CU("attention", cudaFuncSetAttribute(k_attention_generic,
                                                cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                (GEN_TILE * (GEN_MAX_HD + 1) + GEN_TILE * GEN_MAX_HD +
                                                 GEN_ROWS * GEN_MAX_HD) *
                                                    (int)sizeof(float)));
        smem_set = 1;
    }
    dim3 grid((unsigned)((Nq + GEN_ROWS - 1) / GEN_ROWS), (unsigned)NH);
    k_attention_generic<<<grid, GEN_ROWS * 32, smem, s>>>(out->data, out->dtype, q->data, q->dtype,
                                                          R, Nq, NH, HD, Nk, scale,
                                                          bias ? bias->data : NULL,
                                                          bias ? bias->dtype : 0);
    SK_CU_LAUNCH("attention");
    return SK_OK;
}
