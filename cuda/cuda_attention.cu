/* cuda_attention.cu - multi-head attention over a list of KV ranges.
 *
 * Dispatch: bf16 q/k/v/out with head dim 64 or 128 and 16-byte aligned rows go
 * to cuDNN's fused flash attention on Hopper when there is no bias and the
 * shape is large (cuda_attention_cudnn.cu), else to the tensor-core flash
 * kernels (cuda_flash_wgmma.cu on Hopper, cuda_flash_mma.cu). The one-pass
 * FA3-style kernel (cuda_flash_fa3.cu: TMA, producer/consumer warpgroups, all
 * ranges in one softmax) is the default where it measured faster than cuDNN
 * (use_fa3: the 1.3B self-attention shapes; SK_CUDA_NO_FA3=1 turns it off);
 * SK_CUDA_ATTN=fa3|cudnn|wgmma|mma|generic forces one kernel wherever it applies. Everything else (the
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

/* Generic kernel for HD = 32*DPL (the f32 parity mode at the real shapes):
 * each warp owns 4 query rows, so every K/V value read from shared memory
 * feeds 4 FMAs (float4 reads; rows padded by 4 floats). Lane j scores key j
 * of the tile for the 4 rows; the probabilities go through shared memory as
 * one float4 per key; lane l accumulates output dims [l*DPL, (l+1)*DPL). */
#define R4_ROWS 4
#define R4_WARPS 8
template <int DPL>
__global__ void __launch_bounds__(R4_WARPS * 32)
    k_attention_rows4(void *out, int ot, const void *q, int qt, sk_att_ranges R, int64_t Nq,
                      int64_t NH, float scale, const void *bias, int bt, int64_t Nk)
{
    constexpr int HD = 32 * DPL, KLD = HD + 4;
    extern __shared__ __align__(16) float sm4[];
    float *Ks = sm4;                            /* [GEN_TILE][KLD] */
    float *Vs = Ks + GEN_TILE * KLD;            /* [GEN_TILE][HD]  */
    float *Qs = Vs + GEN_TILE * HD;             /* [R4_WARPS*4][HD] */
    float4 *Ps = (float4 *)(Qs + R4_WARPS * R4_ROWS * HD); /* [R4_WARPS][GEN_TILE] */
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int64_t h = blockIdx.y;
    const int64_t ib = (int64_t)blockIdx.x * R4_WARPS * R4_ROWS + warp * R4_ROWS;
    for (int e = lane; e < R4_ROWS * HD; e += 32) {
        int r = e / HD, d = e - r * HD;
        int64_t i = ib + r;
        Qs[(warp * R4_ROWS + r) * HD + d] = i < Nq ? sk_ld(q, qt, (i * NH + h) * HD + d) * scale : 0.0f;
    }
    float acc[R4_ROWS][DPL];
    float m[R4_ROWS], l[R4_ROWS];
#pragma unroll
    for (int r = 0; r < R4_ROWS; r++) {
        m[r] = -INFINITY;
        l[r] = 0.0f;
#pragma unroll
        for (int k = 0; k < DPL; k++) acc[r][k] = 0.0f;
    }
    const float *qw = Qs + warp * R4_ROWS * HD;
    for (int rg = 0; rg < R.n; rg++) {
        for (int64_t j0 = 0; j0 < R.len[rg]; j0 += GEN_TILE) {
            const int nv = (int)min((int64_t)GEN_TILE, R.len[rg] - j0);
            __syncthreads();
            for (int e = threadIdx.x; e < GEN_TILE * HD; e += blockDim.x) {
                int jj = e / HD, d = e - jj * HD;
                float kv = 0.0f, vv = 0.0f;
                if (jj < nv) {
                    int64_t off = ((R.start[rg] + j0 + jj) * NH + h) * HD + d;
                    kv = sk_ld(R.k[rg], R.kt, off);
                    vv = sk_ld(R.v[rg], R.vt, off);
                }
                Ks[jj * KLD + d] = kv;
                Vs[jj * HD + d] = vv;
            }
            __syncthreads();
            float sc[R4_ROWS];
#pragma unroll
            for (int r = 0; r < R4_ROWS; r++) sc[r] = 0.0f;
            const float4 *kr = (const float4 *)(Ks + lane * KLD);
#pragma unroll 4
            for (int d4 = 0; d4 < HD / 4; d4++) {
                float4 kv = kr[d4];
#pragma unroll
                for (int r = 0; r < R4_ROWS; r++) {
                    float4 qv = ((const float4 *)(qw + r * HD))[d4];
                    sc[r] += qv.x * kv.x + qv.y * kv.y + qv.z * kv.z + qv.w * kv.w;
                }
            }
            float p[R4_ROWS];
#pragma unroll
            for (int r = 0; r < R4_ROWS; r++) {
                float sv = -INFINITY;
                if (lane < nv) {
                    sv = sc[r];
                    const int64_t i = ib + r;
                    if (bias && i < Nq) sv += sk_ld(bias, bt, (h * Nq + i) * Nk + R.kbase[rg] + j0 + lane);
                }
                float mx = sv;
                for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
                const float mn = fmaxf(m[r], mx);
                const float alpha = (m[r] == -INFINITY) ? 0.0f : __expf(m[r] - mn);
                p[r] = (sv == -INFINITY) ? 0.0f : __expf(sv - mn);
                float ps = p[r];
                for (int o = 16; o > 0; o >>= 1) ps += __shfl_xor_sync(0xffffffffu, ps, o);
                l[r] = l[r] * alpha + ps;
                m[r] = mn;
#pragma unroll
                for (int k = 0; k < DPL; k++) acc[r][k] *= alpha;
            }
            Ps[warp * GEN_TILE + lane] = make_float4(p[0], p[1], p[2], p[3]);
            __syncwarp();
            for (int jj = 0; jj < nv; jj++) {
                const float4 pj = Ps[warp * GEN_TILE + jj];
                const float *vr = Vs + jj * HD + lane * DPL;
                float v[DPL];
                if (DPL % 4 == 0) {
#pragma unroll
                    for (int k = 0; k < DPL; k += 4) {
                        float4 t = *(const float4 *)(vr + k);
                        v[k] = t.x; v[k + 1] = t.y; v[k + 2] = t.z; v[k + 3] = t.w;
                    }
                } else {
#pragma unroll
                    for (int k = 0; k < DPL; k++) v[k] = vr[k];
                }
#pragma unroll
                for (int k = 0; k < DPL; k++) {
                    acc[0][k] += pj.x * v[k];
                    acc[1][k] += pj.y * v[k];
                    acc[2][k] += pj.z * v[k];
                    acc[3][k] += pj.w * v[k];
                }
            }
            __syncwarp();
        }
    }
#pragma unroll
    for (int r = 0; r < R4_ROWS; r++) {
        const int64_t i = ib + r;
        if (i >= Nq) continue;
        const float inv = l[r] > 0.0f ? 1.0f / l[r] : 0.0f;
#pragma unroll
        for (int k = 0; k < DPL; k++)
            sk_st(out, ot, i * NH * HD + h * HD + lane * DPL + k, acc[r][k] * inv);
    }
}

template <int DPL>
static sk_status launch_rows4(cudaStream_t s, sk_tensor *out, const sk_tensor *q,
                              const sk_att_ranges *R, int64_t Nq, int64_t NH, float scale,
                              const sk_tensor *bias, int64_t Nk)
{
    constexpr int HD = 32 * DPL;
    const size_t smem = ((size_t)GEN_TILE * (HD + 4) + (size_t)GEN_TILE * HD +
                         (size_t)R4_WARPS * R4_ROWS * HD + (size_t)R4_WARPS * GEN_TILE * 4) *
                        sizeof(float);
    static unsigned long long set = 0; /* per device */
    int dev = 0;
    SK_CU("attention", cudaGetDevice(&dev));
    if (!(set >> (dev & 63) & 1ull)) {
        SK_CU("attention", cudaFuncSetAttribute(k_attention_rows4<DPL>,
                                                cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                (int)smem));
        set |= 1ull << (dev & 63);
    }
    dim3 grid((unsigned)((Nq + R4_WARPS * R4_ROWS - 1) / (R4_WARPS * R4_ROWS)), (unsigned)NH);
    k_attention_rows4<DPL><<<grid, R4_WARPS * 32, smem, s>>>(
        out->data, out->dtype, q->data, q->dtype, *R, Nq, NH, scale, bias ? bias->data : NULL,
        bias ? bias->dtype : 0, Nk);
    SK_CU_LAUNCH("attention (generic, 4 rows/warp)");
    return SK_OK;
}

static int aligned16(const void *p) { return ((uintptr_t)p & 15) == 0; }

/* SK_CUDA_ATTN=fa3|cudnn|wgmma|mma|generic forces one kernel for the bf16
 * shapes the fast kernels take (A/B runs and tests); unset: the measured
 * default below. Returns the value, or NULL. */
static const char *forced_kernel(void)
{
    static int warned = 0;
    const char *e = getenv("SK_CUDA_ATTN");
    if (!e || !e[0]) return NULL;
    if (strcmp(e, "fa3") && strcmp(e, "cudnn") && strcmp(e, "wgmma") && strcmp(e, "mma") &&
        strcmp(e, "generic")) {
        if (!warned)
            SK_LOGW("cuda attention: SK_CUDA_ATTN=%s is not one of fa3, cudnn, wgmma, mma, "
                    "generic; ignored (unset it for the measured default)", e);
        warned = 1;
        return NULL;
    }
    return e;
}
static int forced(const char *name)
{
    const char *e = forced_kernel();
    return e && strcmp(e, name) == 0;
}

/* the one-pass FA3 kernel for this shape? (bf16, no bias, aligned: checked by
 * the caller). Measured on H100 (2026-12-07, tests/gpu/check_attn_fa3, median of
 * 10, TFLOP/s; docs/PERF.md), its default config (128-row tiles, 2 stages, KV split
 * over two CTAs) against cuDNN:
 *   1.3B self-attention q4680 kv18720 12x128: 642.5 vs 531.8 (1 range), 638.5 vs
 *   499.2 (3 ranges: cuDNN's per-range calls + merge); 444 CTA tiles, 3.4 waves;
 *   5B q7040 kv28160 24x128: 610.5 vs 700.3 (1320 tiles, 10 waves: the split only
 *   costs there, and cuDNN's kernel is the faster one).
 * So: self-attention sized shapes (>= 4096 keys) whose query tiles x heads fill at
 * most 8 waves of the chip, head dim 128; everything else keeps cuDNN. */
static int use_fa3(sk_backend *be, int64_t Nq, int64_t NH, int64_t HD, int64_t Nk)
{
    if (!sk_cuda(be)->wgmma_ok) return 0;
    if (forced_kernel()) return forced("fa3");
    const char *e = getenv("SK_CUDA_CUDNN_ATTN");
    if ((e && e[0] == '1') || getenv("SK_CUDA_NO_WGMMA") || getenv("SK_CUDA_FA_VARIANT") ||
        getenv("SK_CUDA_WG_NWG") || getenv("SK_CUDA_NO_FA3"))
        return 0; /* A/B runs of the other kernels */
    const int64_t tiles = (Nq + 127) / 128 * NH;
    return HD == 128 && Nk >= 4096 && tiles <= 8 * (int64_t)sk_cuda(be)->n_sm;
}

/* the cuDNN path for this shape? (bf16, no bias, aligned: checked by the caller) */
static int use_cudnn(sk_backend *be, int64_t Nq, int64_t Nk)
{
    if (forced_kernel()) return forced("cudnn");
    const char *e = getenv("SK_CUDA_CUDNN_ATTN");
    if (e && e[0] == '0') return 0;
    if (getenv("SK_CUDA_NO_WGMMA") || getenv("SK_CUDA_FA_VARIANT") || getenv("SK_CUDA_WG_NWG"))
        return 0; /* A/B runs of the own kernels */
    if (e && e[0] == '1') return 1;
    /* Hopper, enough rows to fill the chip: self-attention (q4680 kv18720:
     * 1.03-1.10 ms vs 1.83 ms wgmma) and cross-attention (q4680 kv512:
     * 0.043 ms vs 0.074 ms) on H100 */
    return sk_cuda(be)->wgmma_ok && Nq >= 1024 && Nk >= 256;
}

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
    if (getenv("SK_CUDA_ATTN_GENERIC") || forced("generic")) fast = 0; /* A/B switch for tests */
    /* the one-pass FA3 kernel (cuda_flash_fa3.cu): every range in one softmax */
    if (fast && !bias && use_fa3(be, Nq, NH, HD, Nk) && sk_cuda_flash_fa3_supported(HD, Nq, &R, scale))
        return sk_cuda_flash_fa3(be, out->data, q->data, &R, Nq, NH, scale);
    /* Hopper, large bf16 shapes without bias: cuDNN's fused flash attention
     * (cuda_attention_cudnn.cu; 1.06 ms vs 1.86 ms for the wgmma kernel at
     * q4680 kv4680+14040). SK_CUDA_CUDNN_ATTN=1 takes it for every shape it
     * accepts (tests), =0 never; the own kernels' A/B switches below turn it
     * off too. It declines (done = 0) when cuDNN is absent or refuses. */
    if (fast && !bias && use_cudnn(be, Nq, Nk)) {
        int done = 0;
        sk_status st = sk_cuda_attention_cudnn(be, out->data, q->data, &R, Nq, NH, HD, scale, &done);
        if (st != SK_OK || done) return st;
    }
    /* Hopper: the wgmma kernel (1.82 ms vs 1.96 ms for the mma.sync one at
     * q4680 kv18720 on H100); SK_CUDA_NO_WGMMA=1 or SK_CUDA_FA_VARIANT=N
     * selects the mma.sync kernel */
    if (fast && sk_cuda(be)->wgmma_ok && !getenv("SK_CUDA_NO_WGMMA") &&
        !getenv("SK_CUDA_FA_VARIANT") && !forced("mma"))
        return sk_cuda_flash_wgmma(s, out->data, q->data, &R, Nq, NH, HD, Nk, scale,
                                   bias ? bias->data : NULL, bias ? bias->dtype : 0);
    if (fast)
        return sk_cuda_flash_bf16(s, out->data, q->data, &R, Nq, NH, HD, Nk, scale,
                                  bias ? bias->data : NULL, bias ? bias->dtype : 0);

    if (!getenv("SK_CUDA_ATTN_ROW1")) {
        if (HD == 32) return launch_rows4<1>(s, out, q, &R, Nq, NH, scale, bias, Nk);
        if (HD == 64) return launch_rows4<2>(s, out, q, &R, Nq, NH, scale, bias, Nk);
        if (HD == 128) return launch_rows4<4>(s, out, q, &R, Nq, NH, scale, bias, Nk);
        if (HD == 256) return launch_rows4<8>(s, out, q, &R, Nq, NH, scale, bias, Nk);
    }
    size_t smem = (size_t)(GEN_TILE * (HD + 1) + GEN_TILE * HD + GEN_ROWS * HD) * sizeof(float);
    static unsigned long long smem_set = 0; /* per device */
    int dev = 0;
    SK_CU("attention", cudaGetDevice(&dev));
    if (!(smem_set >> (dev & 63) & 1ull)) {
        SK_CU("attention", cudaFuncSetAttribute(k_attention_generic,
                                                cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                (GEN_TILE * (GEN_MAX_HD + 1) + GEN_TILE * GEN_MAX_HD +
                                                 GEN_ROWS * GEN_MAX_HD) *
                                                    (int)sizeof(float)));
        smem_set |= 1ull << (dev & 63);
    }
    dim3 grid((unsigned)((Nq + GEN_ROWS - 1) / GEN_ROWS), (unsigned)NH);
    k_attention_generic<<<grid, GEN_ROWS * 32, smem, s>>>(out->data, out->dtype, q->data, q->dtype,
                                                          R, Nq, NH, HD, Nk, scale,
                                                          bias ? bias->data : NULL,
                                                          bias ? bias->dtype : 0);
    SK_CU_LAUNCH("attention");
    return SK_OK;
}
