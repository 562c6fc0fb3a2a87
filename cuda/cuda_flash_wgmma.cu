/* cuda_flash_wgmma.cu - Hopper (sm_90a) flash attention on wgmma.
 *
 * Same algorithm and data flow as cuda_flash_mma.cu (64 query rows per block,
 * 64-key tiles streamed through shared memory by cp.async from the KV ranges,
 * online softmax in registers), but the two matrix products run as warpgroup
 * MMAs: S = Q K^T as wgmma m64n64k16 with Q and K read from shared memory,
 * O += P V as wgmma m64nHDk16 with P taken straight from registers and V
 * read from shared memory through a transposed (MN-major) descriptor.
 *
 * Shared tiles use the 128-byte swizzle layout (one layout for Q, K and V;
 * see the kernel). Measured on H100 while writing it: the plain core-matrix
 * (no swizzle) layout ran at 4.5 ms, swizzled Q/K 2.8 ms, all swizzled
 * 2.07 ms, and the 3-stage overlap of S(j+1) with softmax(j) is the step
 * after that. For the plain layout's MN-major V the descriptor's LBO is the
 * K-direction stride and SBO the N-direction one (the other reading faults).
 *
 * Built for sm_90a only (CMake adds that target for this file); the plain
 * sm_90 image holds stubs, and sk_cuda_wgmma_probe() tells at backend
 * creation which image the driver loaded.
 */
#include <cuda_bf16.h>
#include <stdlib.h>

#include "cuda_internal.h"
#include "cuda_attention.h"

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define SK_WGMMA 1
#endif

#ifdef SK_WGMMA
#include "cuda_wgmma_common.cuh"

__device__ __forceinline__ void wgmma_ss_n64(float *d, uint64_t da, uint64_t db, int acc)
{
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 "
        "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31}, %32, %33, p, 1, 1, 0, 0;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
        : "l"(da), "l"(db), "r"(acc));
}
__device__ __forceinline__ void wgmma_rs_n64(float *d, const uint32_t *a, uint64_t db, int acc)
{
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 "
        "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31}, {%32,%33,%34,%35}, %36, p, 1, 1, 1;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(acc));
}
__device__ __forceinline__ void wgmma_rs_n128(float *d, const uint32_t *a, uint64_t db, int acc)
{
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 "
        "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31,%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%46,%47,%48,%49,%50,%51,%52,%53,%54,%55,%56,%57,%58,%59,%60,%61,%62,%63}, {%64,%65,%66,%67}, %68, p, 1, 1, 1;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(acc));
}

__device__ __forceinline__ void fence_async_smem()
{
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
}
__device__ __forceinline__ uint64_t mkdesc(const void *p, uint32_t lbo, uint32_t sbo)
{
    uint32_t a = (uint32_t)__cvta_generic_to_shared(p);
    return (uint64_t)((a & 0x3FFFFu) >> 4) | ((uint64_t)(lbo >> 4) << 16) |
           ((uint64_t)(sbo >> 4) << 32);
}
__device__ __forceinline__ void cp16(void *smem, const void *gmem, bool valid)
{
    unsigned s = (unsigned)__cvta_generic_to_shared(smem);
    int sz = valid ? 16 : 0;
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem), "r"(sz));
}
#endif

#ifdef SK_WGMMA
/* keeps the compiler from moving accesses of registers that an in-flight
 * wgmma writes across the wait (CUTLASS's warpgroup_fence_operand) */
template <int N> __device__ __forceinline__ void fence_regs(float (&r)[N])
{
#pragma unroll
    for (int i = 0; i < N; i++) asm volatile("" : "+f"(r[i])::"memory");
}
#endif

/* Tiles of 64 keys go through 3 shared-memory stages so that S(j+1) = Q K(j+1)^T
 * runs on the tensor cores while the warpgroup does the softmax of tile j
 * (FlashAttention-3's intra-warpgroup overlap). Q, K and V tiles use the
 * 128-byte swizzle layout: (r, c) -> (c/8)*8192 + r*128 + ((c%8) ^ (r%8))*16
 * (c = 16-byte chunk of the row, 64 elements per swizzle atom). */
template <int HD, int NWG>
__global__ void __launch_bounds__(128 * NWG, NWG == 1 ? 2 : 1)
    k_flash_wgmma(__nv_bfloat16 *__restrict__ out, const __nv_bfloat16 *__restrict__ q,
                  sk_att_ranges R, int64_t Nq, int64_t NH, int64_t Nk, float scale,
                  const void *__restrict__ bias, int bt)
{
#ifdef SK_WGMMA
    constexpr int BC = 64, CH = HD / 8, TB = 64 * HD * 2; /* tile bytes (64 rows) */
    extern __shared__ __align__(128) unsigned char wsm_raw[];
    unsigned char *wsm =
        wsm_raw + ((1024 - ((uint32_t)__cvta_generic_to_shared(wsm_raw) & 1023)) & 1023);
    /* NWG warpgroups share each K/V tile (64*NWG query rows per block): NWG = 2
     * halves the K/V traffic from L2 per query row */
    constexpr int NT = 128 * NWG;
    unsigned char *Qall = wsm, *Ks = wsm + NWG * TB, *Vs = wsm + (NWG + 3) * TB; /* 3 stages */
    const int tid = threadIdx.x, wg = tid >> 7, warp = (tid >> 5) & 3, lane = tid & 31;
    unsigned char *Qs = Qall + wg * TB; /* this warpgroup's 64 rows */
    const int g = lane >> 2, t4 = lane & 3;
    const int64_t h = blockIdx.y, ib = (int64_t)blockIdx.x * 64 * NWG, i0 = ib + wg * 64;
    const int ntiles = R.tiles_before[R.n];
    const float L2E = 1.4426950408889634f, sl2 = scale * L2E;
    auto off = [](int r, int c) -> int {
        return (c >> 3) * 8192 + r * 128 + (((c & 7) ^ (r & 7)) << 4);
    };

    for (int c = tid; c < 64 * NWG * CH; c += NT) {
        int r = c / CH, cc = c - r * CH;
        int64_t i = ib + r;
        bool ok = i < Nq;
        cp16(Qall + (r >> 6) * TB + off(r & 63, cc), ok ? q + (i * NH + h) * HD + cc * 8 : q, ok);
    }
    auto tile_range = [&](int tile, int &r) {
        r = 0;
        while (r + 1 < R.n && tile >= R.tiles_before[r + 1]) r++;
        return (int64_t)(tile - R.tiles_before[r]) * BC;
    };
    auto load_kv = [&](int tile) {
        int r;
        const int64_t j0 = tile_range(tile, r);
        const int64_t nv = R.len[r] - j0;
        const __nv_bfloat16 *kb = (const __nv_bfloat16 *)R.k[r];
        const __nv_bfloat16 *vb = (const __nv_bfloat16 *)R.v[r];
        unsigned char *ks = Ks + (tile % 3) * TB, *vs = Vs + (tile % 3) * TB;
        for (int c = tid; c < BC * CH; c += NT) {
            int jr = c / CH, cc = c - jr * CH;
            bool ok = jr < nv;
            int64_t o = ((R.start[r] + j0 + jr) * NH + h) * HD + cc * 8;
            cp16(ks + off(jr, cc), ok ? kb + o : kb, ok);
            cp16(vs + off(jr, cc), ok ? vb + o : vb, ok);
        }
    };
    auto issue_s = [&](float (&sacc)[32], int tile) {
        const unsigned char *ks = Ks + (tile % 3) * TB;
#pragma unroll
        for (int k = 0; k < 32; k++) sacc[k] = 0.0f;
        fence_regs(sacc);
        sk_wg_fence();
#pragma unroll
        for (int kk = 0; kk < HD / 16; kk++) {
            const int o = (kk >> 2) * 8192 + (kk & 3) * 32;
            wgmma_ss_n64(sacc, mkdesc(Qs + o, 16, 1024) | (1ull << 62),
                         mkdesc(ks + o, 16, 1024) | (1ull << 62), 1);
        }
        sk_wg_commit();
    };

    /* prologue: tiles 0 and 1 in flight, S(0) issued */
    if (ntiles > 0) load_kv(0);
    asm volatile("cp.async.commit_group;\n" ::);
    if (ntiles > 1) load_kv(1);
    asm volatile("cp.async.commit_group;\n" ::);

    float o[HD / 2];
#pragma unroll
    for (int k = 0; k < HD / 2; k++) o[k] = 0.0f;
    float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.0f, l1 = 0.0f;
    const int64_t row0 = i0 + warp * 16 + g, row1 = row0 + 8;
    float sa[32], sb[32];

    asm volatile("cp.async.wait_group 1;\n" ::);
    fence_async_smem();
    __syncthreads();
    if (ntiles > 0) issue_s(sa, 0);

    auto step = [&](float (&s)[32], float (&sn)[32], int tile) {
        /* tile+2 goes into the stage tile-1 used (its P V finished last step) */
        if (tile + 2 < ntiles) load_kv(tile + 2);
        asm volatile("cp.async.commit_group;\n" ::);
        asm volatile("cp.async.wait_group 1;\n" ::); /* tile+1 resident */
        fence_async_smem();
        __syncthreads();
        const bool more = tile + 1 < ntiles;
        if (more) issue_s(sn, tile + 1); /* overlaps the softmax below */
        if (more) sk_wg_wait<1>(); else sk_wg_wait<0>(); /* S(tile) done */
        fence_regs(s);

        int r;
        const int64_t j0 = tile_range(tile, r);
        const int nv = (int)min((int64_t)BC, R.len[r] - j0);
        const int64_t kglob = R.kbase[r] + j0;
        const bool fast = !bias && nv == BC && sl2 > 0.0f;
        const float mul = fast ? sl2 : 1.0f;
        if (!fast) {
#pragma unroll
            for (int n = 0; n < 8; n++)
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    const int kl = n * 8 + 2 * t4 + (e & 1);
                    const int64_t row = (e < 2) ? row0 : row1;
                    float v = -INFINITY;
                    if (kl < nv) {
                        v = s[4 * n + e] * sl2;
                        if (bias && row < Nq)
                            v += sk_ld(bias, bt, (h * Nq + row) * Nk + kglob + kl) * L2E;
                    }
                    s[4 * n + e] = v;
                }
        }
        float mx0 = -INFINITY, mx1 = -INFINITY;
#pragma unroll
        for (int n = 0; n < 8; n++) {
            mx0 = fmaxf(mx0, fmaxf(s[4 * n], s[4 * n + 1]));
            mx1 = fmaxf(mx1, fmaxf(s[4 * n + 2], s[4 * n + 3]));
        }
        mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
        mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
        mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
        mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
        const float mn0 = fmaxf(m0, mx0 * mul), mn1 = fmaxf(m1, mx1 * mul);
        const float mu0 = mn0 == -INFINITY ? 0.0f : mn0, mu1 = mn1 == -INFINITY ? 0.0f : mn1;
        const float a0 = sk_ex2(m0 - mu0), a1 = sk_ex2(m1 - mu1);
        m0 = mn0;
        m1 = mn1;
        float ps0 = 0.0f, ps1 = 0.0f;
        sk_frag_exp2_rowsum<8>(s, mul, mu0, mu1, ps0, ps1);
        l0 = l0 * a0 + ps0;
        l1 = l1 * a1 + ps1;
        if (__any_sync(0xffffffffu, a0 != 1.0f || a1 != 1.0f)) {
#pragma unroll
            for (int d = 0; d < HD / 8; d++) {
                o[4 * d] *= a0;
                o[4 * d + 1] *= a0;
                o[4 * d + 2] *= a1;
                o[4 * d + 3] *= a1;
            }
        }
        uint32_t pa[4][4];
#pragma unroll
        for (int kk = 0; kk < 4; kk++) {
            pa[kk][0] = sk_pk_bf16(s[8 * kk], s[8 * kk + 1]);
            pa[kk][1] = sk_pk_bf16(s[8 * kk + 2], s[8 * kk + 3]);
            pa[kk][2] = sk_pk_bf16(s[8 * kk + 4], s[8 * kk + 5]);
            pa[kk][3] = sk_pk_bf16(s[8 * kk + 6], s[8 * kk + 7]);
        }
        const unsigned char *vs = Vs + (tile % 3) * TB;
        fence_regs(o);
        sk_wg_fence();
#pragma unroll
        for (int kk = 0; kk < 4; kk++) {
            /* V is MN-major: LBO = stride between 64-column atoms along N
             * (8192 B), SBO = stride between 8-key groups (1024 B) */
            const uint64_t dv = mkdesc(vs + kk * 2048, 8192, 1024) | (1ull << 62);
            if (HD == 128) wgmma_rs_n128(o, pa[kk], dv, 1);
            else wgmma_rs_n64(o, pa[kk], dv, 1);
        }
        sk_wg_commit();
        sk_wg_wait<0>(); /* P V(tile) and S(tile+1) */
        fence_regs(o);
        fence_regs(sn);
        __syncthreads(); /* all warps done with stage tile%3 before it is refilled */
    };
    int tile = 0;
    for (; tile + 1 < ntiles; tile += 2) {
        step(sa, sb, tile);
        step(sb, sa, tile + 1);
    }
    if (tile < ntiles) step(sa, sb, tile);
    asm volatile("cp.async.wait_group 0;\n" ::);

    l0 += __shfl_xor_sync(0xffffffffu, l0, 1);
    l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 1);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
    const float inv0 = l0 > 0.0f ? 1.0f / l0 : 0.0f, inv1 = l1 > 0.0f ? 1.0f / l1 : 0.0f;
#pragma unroll
    for (int d = 0; d < HD / 8; d++) {
        const int col = d * 8 + 2 * t4;
        if (row0 < Nq)
            *reinterpret_cast<__nv_bfloat162 *>(out + (row0 * NH + h) * HD + col) =
                __floats2bfloat162_rn(o[4 * d] * inv0, o[4 * d + 1] * inv0);
        if (row1 < Nq)
            *reinterpret_cast<__nv_bfloat162 *>(out + (row1 * NH + h) * HD + col) =
                __floats2bfloat162_rn(o[4 * d + 2] * inv1, o[4 * d + 3] * inv1);
    }
#endif
}

__global__ void k_wgmma_probe(int *flag)
{
#ifdef SK_WGMMA
    *flag = 1;
#else
    *flag = 2;
#endif
}

/* 1 when the sm_90a image (with the wgmma kernel) is the one loaded */
extern "C" int sk_cuda_wgmma_probe(cudaStream_t s, int *dev_int)
{
    if (cudaMemsetAsync(dev_int, 0, sizeof(int), s) != cudaSuccess) return 0;
    k_wgmma_probe<<<1, 1, 0, s>>>(dev_int);
    int v = 0;
    if (cudaGetLastError() != cudaSuccess) return 0;
    if (cudaMemcpyAsync(&v, dev_int, sizeof v, cudaMemcpyDeviceToHost, s) != cudaSuccess) return 0;
    if (cudaStreamSynchronize(s) != cudaSuccess) return 0;
    cudaMemsetAsync(dev_int, 0, sizeof(int), s);
    cudaStreamSynchronize(s);
    return v == 1;
}

template <int HD, int NWG>
static sk_status launch_wg(cudaStream_t s, void *out, const void *q, const sk_att_ranges *R0,
                           int64_t Nq, int64_t NH, int64_t Nk, float scale, const void *bias, int bt)
{
    sk_att_ranges R = *R0;
    int tiles = 0;
    for (int r = 0; r < R.n; r++) {
        R.tiles_before[r] = tiles;
        tiles += (int)((R.len[r] + 63) / 64);
    }
    R.tiles_before[R.n] = tiles;
    const size_t smem = (size_t)(6 + NWG) * 64 * HD * 2 + 1024; /* Q + 3 K + 3 V, + slack */
    static unsigned long long set = 0;
    int dev = 0;
    SK_CU("attention", cudaGetDevice(&dev));
    if (!(set >> (dev & 63) & 1ull)) {
        SK_CU("attention", cudaFuncSetAttribute(k_flash_wgmma<HD, NWG>,
                                                cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                (int)smem));
        set |= 1ull << (dev & 63);
    }
    dim3 grid((unsigned)((Nq + 64 * NWG - 1) / (64 * NWG)), (unsigned)NH);
    k_flash_wgmma<HD, NWG><<<grid, 128 * NWG, smem, s>>>((__nv_bfloat16 *)out, (const __nv_bfloat16 *)q, R,
                                              Nq, NH, Nk, scale, bias, bt);
    SK_CU_LAUNCH("attention (flash wgmma)");
    return SK_OK;
}

extern "C" sk_status sk_cuda_flash_wgmma(cudaStream_t s, void *out, const void *q,
                                         const sk_att_ranges *R, int64_t Nq, int64_t NH,
                                         int64_t HD, int64_t Nk, float scale, const void *bias,
                                         int bias_t)
{
    const char *e = getenv("SK_CUDA_WG_NWG");
    const int two = e ? atoi(e) == 2 : 0;
    if (HD == 128 && two) return launch_wg<128, 2>(s, out, q, R, Nq, NH, Nk, scale, bias, bias_t);
    if (HD == 128) return launch_wg<128, 1>(s, out, q, R, Nq, NH, Nk, scale, bias, bias_t);
    if (HD == 64 && two) return launch_wg<64, 2>(s, out, q, R, Nq, NH, Nk, scale, bias, bias_t);
    if (HD == 64) return launch_wg<64, 1>(s, out, q, R, Nq, NH, Nk, scale, bias, bias_t);
    return SK_ERR(SK_E_UNSUPPORTED, "cuda attention: wgmma kernel has no head dim %lld",
                  (long long)HD);
}
