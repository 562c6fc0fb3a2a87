/* cuda_flash_mma.cu - tensor-core flash attention (bf16 in, f32 accumulation).
 *
 * FlashAttention-2 structure on mma.sync.m16n8k16 (bf16): a block owns 64
 * query rows of one head (4 warps x 16 rows); it streams 64-key tiles of K and
 * V through shared memory (cp.async, two stages, rows padded by 16 bytes so
 * ldmatrix is conflict-free) from the KV ranges in order, never copying them
 * together. Scores stay in registers: S = Q K^T, online softmax in the log2
 * domain (exp2f), P re-packed as bf16 A fragments, O += P V. Keys past a
 * range's end are zero-filled and masked to -inf.
 */
#include <cuda_bf16.h>
#include <stdlib.h>

#include "cuda_internal.h"
#include "cuda_attention.h"

#define FA_PAD 8

__device__ __forceinline__ void cp_async16(void *smem, const void *gmem, bool valid)
{
    unsigned s = (unsigned)__cvta_generic_to_shared(smem);
    int sz = valid ? 16 : 0;
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem), "r"(sz));
}
__device__ __forceinline__ void cp_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N> __device__ __forceinline__ void cp_wait()
{
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}
__device__ __forceinline__ void ldsm_x4(uint32_t &r0, uint32_t &r1, uint32_t &r2, uint32_t &r3,
                                        const void *p)
{
    unsigned a = (unsigned)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
                 : "r"(a));
}
__device__ __forceinline__ void ldsm_x4_t(uint32_t &r0, uint32_t &r1, uint32_t &r2, uint32_t &r3,
                                          const void *p)
{
    unsigned a = (unsigned)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
                 : "r"(a));
}
__device__ __forceinline__ void mma16816(float *c, const uint32_t *a, uint32_t b0, uint32_t b1)
{
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
                 "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
__device__ __forceinline__ float ex2(float x)
{
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
    return y;
}
__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi)
{
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<uint32_t *>(&v);
}

/* HD: head dim; MT: 16-row m-tiles per warp (2 halves the K/V ldmatrix
 * traffic per MMA, at the cost of registers; with MT == 1 Q stays in
 * registers, with MT == 2 its fragments are re-read from shared memory);
 * BC: keys per tile. 4 warps per block, so a block owns 64*MT query rows. */
template <int HD, int MT, int BC, bool QREG, int MINB>
__global__ void __launch_bounds__(128, MINB)
    k_flash_bf16(__nv_bfloat16 *__restrict__ out, const __nv_bfloat16 *__restrict__ q,
                 sk_att_ranges R, int64_t Nq, int64_t NH, int64_t Nk, float scale,
                 const void *__restrict__ bias, int bt)
{
    constexpr int WARPS = 4;
    constexpr int BR = 16 * MT * WARPS;
    constexpr int LD = HD + FA_PAD;
    constexpr int CH = HD / 8; /* 16-byte chunks per row */
    extern __shared__ __align__(16) unsigned char fa_smem[];
    __nv_bfloat16 *Qs = reinterpret_cast<__nv_bfloat16 *>(fa_smem);
    __nv_bfloat16 *Ks = Qs + BR * LD;     /* [2][BC][LD] */
    __nv_bfloat16 *Vs = Ks + 2 * BC * LD; /* [2][BC][LD] */

    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int g = lane >> 2, t4 = lane & 3;
    const int64_t h = blockIdx.y;
    const int64_t i0 = (int64_t)blockIdx.x * BR;
    const int ntiles = R.tiles_before[R.n];
    const float L2E = 1.4426950408889634f;
    const float sl2 = scale * L2E;

    for (int c = tid; c < BR * CH; c += WARPS * 32) {
        int r = c / CH, cc = c - r * CH;
        int64_t i = i0 + r;
        bool ok = i < Nq;
        const __nv_bfloat16 *src = ok ? q + (i * NH + h) * HD + cc * 8 : q;
        cp_async16(Qs + r * LD + cc * 8, src, ok);
    }

    auto load_kv = [&](int tile, int stage) {
        int r = 0;
        while (r + 1 < R.n && tile >= R.tiles_before[r + 1]) r++;
        const int64_t j0 = (int64_t)(tile - R.tiles_before[r]) * BC;
        const int64_t nv = R.len[r] - j0;
        const __nv_bfloat16 *kb = (const __nv_bfloat16 *)R.k[r];
        const __nv_bfloat16 *vb = (const __nv_bfloat16 *)R.v[r];
        __nv_bfloat16 *ks = Ks + stage * BC * LD, *vs = Vs + stage * BC * LD;
        for (int c = tid; c < BC * CH; c += WARPS * 32) {
            int jr = c / CH, cc = c - jr * CH;
            bool ok = jr < nv;
            int64_t off = ((R.start[r] + j0 + jr) * NH + h) * HD + cc * 8;
            cp_async16(ks + jr * LD + cc * 8, ok ? kb + off : kb, ok);
            cp_async16(vs + jr * LD + cc * 8, ok ? vb + off : vb, ok);
        }
    };

    if (ntiles > 0) load_kv(0, 0);
    cp_commit();

    uint32_t qf[QREG ? HD / 16 : 1][4];
    float o[MT][HD / 8][4];
    float m[MT][2], l[MT][2];
#pragma unroll
    for (int mt = 0; mt < MT; mt++) {
#pragma unroll
        for (int d = 0; d < HD / 8; d++) o[mt][d][0] = o[mt][d][1] = o[mt][d][2] = o[mt][d][3] = 0.0f;
        m[mt][0] = m[mt][1] = -INFINITY;
        l[mt][0] = l[mt][1] = 0.0f;
    }
    const int64_t wrow = i0 + warp * 16 * MT; /* first query row of this warp */
    const __nv_bfloat16 *qw = Qs + (warp * 16 * MT + (lane & 15)) * LD + (lane >> 4) * 8;

    for (int tile = 0; tile < ntiles; tile++) {
        const int stage = tile & 1;
        if (tile + 1 < ntiles) load_kv(tile + 1, stage ^ 1);
        cp_commit();
        cp_wait<1>();
        __syncthreads();
        if (QREG && tile == 0) {
#pragma unroll
            for (int kk = 0; kk < (QREG ? HD / 16 : 0); kk++)
                ldsm_x4(qf[kk][0], qf[kk][1], qf[kk][2], qf[kk][3], qw + kk * 16);
        }
        int r = 0;
        while (r + 1 < R.n && tile >= R.tiles_before[r + 1]) r++;
        const int64_t j0 = (int64_t)(tile - R.tiles_before[r]) * BC;
        const int nv = (int)min((int64_t)BC, R.len[r] - j0);
        const int64_t kglob = R.kbase[r] + j0;

        const __nv_bfloat16 *ks = Ks + stage * BC * LD, *vs = Vs + stage * BC * LD;
        float s[MT][BC / 8][4];
#pragma unroll
        for (int mt = 0; mt < MT; mt++)
#pragma unroll
            for (int n = 0; n < BC / 8; n++) s[mt][n][0] = s[mt][n][1] = s[mt][n][2] = s[mt][n][3] = 0.0f;
        /* S = Q K^T */
#pragma unroll
        for (int kk = 0; kk < HD / 16; kk++) {
            uint32_t a[MT][4];
            if (!QREG) {
#pragma unroll
                for (int mt = 0; mt < MT; mt++)
                    ldsm_x4(a[mt][0], a[mt][1], a[mt][2], a[mt][3], qw + mt * 16 * LD + kk * 16);
            }
#pragma unroll
            for (int np = 0; np < BC / 16; np++) {
                uint32_t b0, b1, b2, b3;
                ldsm_x4(b0, b1, b2, b3,
                        ks + (np * 16 + (lane >> 4) * 8 + (lane & 7)) * LD + kk * 16 +
                            ((lane >> 3) & 1) * 8);
#pragma unroll
                for (int mt = 0; mt < MT; mt++) {
                    const uint32_t *af = QREG ? qf[QREG ? kk : 0] : a[mt];
                    mma16816(s[mt][2 * np], af, b0, b1);
                    mma16816(s[mt][2 * np + 1], af, b2, b3);
                }
            }
        }
        /* online softmax per row, log2 domain. Full tiles without bias (the
         * DiT's case) skip masking and fold the scale into one FFMA per
         * score: p = 2^(s*scale*log2e - max); other tiles first turn s into
         * masked, biased log2-domain scores (then mul = 1). */
        const bool fast = !bias && nv == BC && sl2 > 0.0f;
        const float mul = fast ? sl2 : 1.0f;
#pragma unroll
        for (int mt = 0; mt < MT; mt++) {
            const int64_t row0 = wrow + mt * 16 + g, row1 = row0 + 8;
            if (!fast) {
#pragma unroll
                for (int n = 0; n < BC / 8; n++) {
#pragma unroll
                    for (int e = 0; e < 4; e++) {
                        const int kl = n * 8 + 2 * t4 + (e & 1);
                        const int64_t row = (e < 2) ? row0 : row1;
                        float v = -INFINITY;
                        if (kl < nv) {
                            v = s[mt][n][e] * sl2;
                            if (bias && row < Nq)
                                v += sk_ld(bias, bt, (h * Nq + row) * Nk + kglob + kl) * L2E;
                        }
                        s[mt][n][e] = v;
                    }
                }
            }
            float mx0 = -INFINITY, mx1 = -INFINITY;
#pragma unroll
            for (int n = 0; n < BC / 8; n++) {
                mx0 = fmaxf(mx0, fmaxf(s[mt][n][0], s[mt][n][1]));
                mx1 = fmaxf(mx1, fmaxf(s[mt][n][2], s[mt][n][3]));
            }
            mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
            mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
            mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
            mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
            const float mn0 = fmaxf(m[mt][0], mx0 * mul), mn1 = fmaxf(m[mt][1], mx1 * mul);
            const float mu0 = mn0 == -INFINITY ? 0.0f : mn0, mu1 = mn1 == -INFINITY ? 0.0f : mn1;
            const float a0 = ex2(m[mt][0] - mu0), a1 = ex2(m[mt][1] - mu1);
            m[mt][0] = mn0;
            m[mt][1] = mn1;
            float ps0 = 0.0f, ps1 = 0.0f;
#pragma unroll
            for (int n = 0; n < BC / 8; n++) {
                s[mt][n][0] = ex2(fmaf(s[mt][n][0], mul, -mu0));
                s[mt][n][1] = ex2(fmaf(s[mt][n][1], mul, -mu0));
                s[mt][n][2] = ex2(fmaf(s[mt][n][2], mul, -mu1));
                s[mt][n][3] = ex2(fmaf(s[mt][n][3], mul, -mu1));
                ps0 += s[mt][n][0] + s[mt][n][1];
                ps1 += s[mt][n][2] + s[mt][n][3];
            }
            l[mt][0] = l[mt][0] * a0 + ps0;
            l[mt][1] = l[mt][1] * a1 + ps1;
            /* once the running max settles, alpha is 1 for every row of the
             * warp: skip the rescale of O (HD/2 multiplies per thread) */
            if (__any_sync(0xffffffffu, a0 != 1.0f || a1 != 1.0f)) {
#pragma unroll
                for (int d = 0; d < HD / 8; d++) {
                    o[mt][d][0] *= a0;
                    o[mt][d][1] *= a0;
                    o[mt][d][2] *= a1;
                    o[mt][d][3] *= a1;
                }
            }
        }
        /* O += P V */
#pragma unroll
        for (int kk = 0; kk < BC / 16; kk++) {
            uint32_t pa[MT][4];
#pragma unroll
            for (int mt = 0; mt < MT; mt++) {
                pa[mt][0] = pack_bf16(s[mt][2 * kk][0], s[mt][2 * kk][1]);
                pa[mt][1] = pack_bf16(s[mt][2 * kk][2], s[mt][2 * kk][3]);
                pa[mt][2] = pack_bf16(s[mt][2 * kk + 1][0], s[mt][2 * kk + 1][1]);
                pa[mt][3] = pack_bf16(s[mt][2 * kk + 1][2], s[mt][2 * kk + 1][3]);
            }
#pragma unroll
            for (int dp = 0; dp < HD / 16; dp++) {
                uint32_t b0, b1, b2, b3;
                ldsm_x4_t(b0, b1, b2, b3,
                          vs + (kk * 16 + ((lane >> 3) & 1) * 8 + (lane & 7)) * LD + dp * 16 +
                              (lane >> 4) * 8);
#pragma unroll
                for (int mt = 0; mt < MT; mt++) {
                    mma16816(o[mt][2 * dp], pa[mt], b0, b1);
                    mma16816(o[mt][2 * dp + 1], pa[mt], b2, b3);
                }
            }
        }
        __syncthreads(); /* this stage is refilled by the next iteration's prefetch */
    }
    cp_wait<0>();

#pragma unroll
    for (int mt = 0; mt < MT; mt++) {
        float l0 = l[mt][0], l1 = l[mt][1];
        l0 += __shfl_xor_sync(0xffffffffu, l0, 1);
        l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
        l1 += __shfl_xor_sync(0xffffffffu, l1, 1);
        l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
        const float inv0 = l0 > 0.0f ? 1.0f / l0 : 0.0f, inv1 = l1 > 0.0f ? 1.0f / l1 : 0.0f;
        const int64_t row0 = wrow + mt * 16 + g, row1 = row0 + 8;
#pragma unroll
        for (int d = 0; d < HD / 8; d++) {
            const int col = d * 8 + 2 * t4;
            if (row0 < Nq)
                *reinterpret_cast<__nv_bfloat162 *>(out + (row0 * NH + h) * HD + col) =
                    __floats2bfloat162_rn(o[mt][d][0] * inv0, o[mt][d][1] * inv0);
            if (row1 < Nq)
                *reinterpret_cast<__nv_bfloat162 *>(out + (row1 * NH + h) * HD + col) =
                    __floats2bfloat162_rn(o[mt][d][2] * inv1, o[mt][d][3] * inv1);
        }
    }
}

extern "C" int sk_cuda_flash_bf16_supported(int64_t HD) { return HD == 64 || HD == 128; }

template <int HD, int MT, int BC, bool QREG, int MINB>
static sk_status launch(cudaStream_t s, void *out, const void *q, const sk_att_ranges *R0,
                        int64_t Nq, int64_t NH, int64_t Nk, float scale, const void *bias, int bt)
{
    sk_att_ranges R = *R0; /* tiles of BC keys per range */
    int tiles = 0;
    for (int r = 0; r < R.n; r++) {
        R.tiles_before[r] = tiles;
        tiles += (int)((R.len[r] + BC - 1) / BC);
    }
    R.tiles_before[R.n] = tiles;
    const int BR = 64 * MT;
    const size_t smem = (size_t)(BR + 4 * BC) * (HD + FA_PAD) * sizeof(__nv_bfloat16);
    static unsigned long long attr_set = 0; /* one bit per device: the attribute is per device */
    int dev = 0;
    SK_CU("attention", cudaGetDevice(&dev));
    if (!(attr_set >> (dev & 63) & 1ull)) {
        SK_CU("attention", cudaFuncSetAttribute(k_flash_bf16<HD, MT, BC, QREG, MINB>,
                                                cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                (int)smem));
        attr_set |= 1ull << (dev & 63);
    }
    dim3 grid((unsigned)((Nq + BR - 1) / BR), (unsigned)NH);
    k_flash_bf16<HD, MT, BC, QREG, MINB><<<grid, 128, smem, s>>>((__nv_bfloat16 *)out,
                                                     (const __nv_bfloat16 *)q, R, Nq, NH, Nk,
                                                     scale, bias, bt);
    SK_CU_LAUNCH("attention (flash bf16)");
    return SK_OK;
}

/* kernel variants (rows/warp, keys/tile, Q in registers, blocks/SM):
 *   1: 16, 64, yes, 2    2: 32, 64, no, 2     3: 32, 32, no, 2
 *   4: 16, 32, no, 4     5: 16, 64, no, 3     6: 32, 48, no, 2
 * SK_CUDA_FA_VARIANT overrides the default for measurements. */
static int fa_variant(int64_t Nq)
{
    const char *e = getenv("SK_CUDA_FA_VARIANT");
    if (e && atoi(e) >= 1 && atoi(e) <= 6) return atoi(e);
    return Nq >= 256 ? 2 : 1;
}

extern "C" sk_status sk_cuda_flash_bf16(cudaStream_t s, void *out, const void *q,
                                        const sk_att_ranges *R, int64_t Nq, int64_t NH,
                                        int64_t HD, int64_t Nk, float scale, const void *bias,
                                        int bias_t)
{
    const int v = fa_variant(Nq);
#define FA_GO(hd, mt, bc, qr, mb) \
    return launch<hd, mt, bc, qr, mb>(s, out, q, R, Nq, NH, Nk, scale, bias, bias_t)
#define FA_ALL(hd)                              \
    do {                                        \
        if (v == 1) FA_GO(hd, 1, 64, true, 2);  \
        if (v == 2) FA_GO(hd, 2, 64, false, 2); \
        if (v == 3) FA_GO(hd, 2, 32, false, 2); \
        if (v == 4) FA_GO(hd, 1, 32, false, 4); \
        if (v == 5) FA_GO(hd, 1, 64, false, 3); \
        FA_GO(hd, 2, 48, false, 2);             \
    } while (0)
    if (HD == 128) FA_ALL(128);
    if (HD == 64) FA_ALL(64);
#undef FA_ALL
#undef FA_GO
    return SK_ERR(SK_E_UNSUPPORTED, "cuda attention: flash kernel has no head dim %lld",
                  (long long)HD);
}
