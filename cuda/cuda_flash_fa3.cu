/* cuda_flash_fa3.cu - one-pass Hopper (sm_90a) flash attention, FA3 design.
 *
 * Forward, non-causal, bf16, head dim 128, Q/K/V/O in the [tokens, heads, 128]
 * layout; K/V are read in place from the ranges of sk_att_ranges (up to
 * SK_ATT_MAX_RANGES, not necessarily adjacent) and one softmax runs over all
 * keys of all ranges inside one kernel: no per-range calls, no LSE merge.
 *
 * Block = 3 warpgroups, 128 query rows:
 *  - warpgroup 0, the producer: drops its registers (setmaxnreg) and one thread
 *    issues TMA loads: Q once, then for every key tile the K and V tiles into
 *    an ST-stage shared-memory ring; full/empty mbarriers per stage.
 *  - warpgroups 1 and 2, the consumers: 64 query rows each; S = Q K^T as wgmma
 *    m64nBNk16 (Q, K from shared memory), online softmax in registers (exp2,
 *    scale folded in), O += P V as wgmma m64n128k16 with P from registers.
 *    Intra-warpgroup overlap: S(t) is issued together with P(t-1) V(t-1), so
 *    the softmax of tile t runs while the tensor cores do P V of tile t-1;
 *    optionally the two consumers take turns issuing (named-barrier pingpong),
 *    so one's softmax overlaps the other's GEMMs.
 *
 * Each range has its own TMA descriptors (base = its first row, rows = its
 * length), so rows past a range's end are zero-filled by TMA: never garbage
 * from the pool (which could hold NaN bit patterns), and masked to -inf in S.
 * Shared tiles are in TMA's 128-byte swizzle: a tile of R rows is two halves
 * (head dims 0-63, 64-127) of R x 128 bytes, chunk c of row r at
 * ((c ^ (r % 8)) * 16), the layout the wgmma descriptors below describe.
 *
 * Built for sm_90a only (CMake adds that target for this file); the plain
 * sm_90 image holds a stub, and the dispatch only calls it when
 * sk_cuda_wgmma_probe() said the sm_90a image is the one loaded.
 */
#include <cuda.h>
#include <cudaTypedefs.h>
#include <cuda_bf16.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_internal.h"
#include "cuda_attention.h"

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define SK_FA3 1
#endif

#define FA3_HD 128
#define FA3_BM 128 /* query rows per block: 2 consumer warpgroups x 64 */

typedef struct {
    CUtensorMap tq;                      /* q [Nq, NH, 128], box 64 x 1 x BM */
    CUtensorMap tk[SK_ATT_MAX_RANGES];   /* range r: rows [start, start+len), box 64 x 1 x BN */
    CUtensorMap tv[SK_ATT_MAX_RANGES];
    int len[SK_ATT_MAX_RANGES];
    int tiles_before[SK_ATT_MAX_RANGES + 1]; /* BN-key tiles before range r */
    int n;
    int pingpong;
    /* the grid: CTAs [0, units_full) each do a whole (q tile, head) unit; the
     * rest split each remaining unit's key tiles into ksplit parts, whose
     * partial results meet in scr and are combined by the last part done */
    int units_full, ksplit, qtiles;
    float *scr;    /* [slot][128 rows][128] unnormalized O */
    float *scr_ml; /* [slot][128 rows][2] (row max of raw scores, row sum) */
    int *cnt;      /* per split unit: parts done (the last one resets it) */
    __nv_bfloat16 *out;
    int64_t Nq, NH;
    float sl2; /* scale * log2(e) */
} fa3_params;

#ifdef SK_FA3
#include "cuda_wgmma_common.cuh"

__device__ __forceinline__ void fa3_wgmma_ss_n128(float *d, uint64_t da, uint64_t db, int acc)
{
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 "
        "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31,%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%46,%47,%48,%49,%50,%51,%52,%53,%54,%55,%56,%57,%58,%59,%60,%61,%62,%63}, %64, %65, p, 1, 1, 0, 0;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
        : "l"(da), "l"(db), "r"(acc));
}

__device__ __forceinline__ void fa3_wgmma_ss_n176(float *d, uint64_t da, uint64_t db, int acc)
{
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %90, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n176k16.f32.bf16.bf16 "
        "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31,%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%46,%47,%48,%49,%50,%51,%52,%53,%54,%55,%56,%57,%58,%59,%60,%61,%62,%63,%64,%65,%66,%67,%68,%69,%70,%71,%72,%73,%74,%75,%76,%77,%78,%79,%80,%81,%82,%83,%84,%85,%86,%87}, %88, %89, p, 1, 1, 0, 0;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]), "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]), "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79]), "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]), "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87])
        : "l"(da), "l"(db), "r"(acc));
}

__device__ __forceinline__ void fa3_wgmma_rs_n128(float *d, const uint32_t *a, uint64_t db)
{
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 "
        "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31,%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%46,%47,%48,%49,%50,%51,%52,%53,%54,%55,%56,%57,%58,%59,%60,%61,%62,%63}, {%64,%65,%66,%67}, %68, p, 1, 1, 1;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(1));
}


template <int N> __device__ __forceinline__ void fa3_fence_regs(float (&r)[N])
{
#pragma unroll
    for (int i = 0; i < N; i++) asm volatile("" : "+f"(r[i])::"memory");
}
template <int N> __device__ __forceinline__ void fa3_fence_regs(uint32_t (&r)[N][4])
{
#pragma unroll
    for (int i = 0; i < N; i++)
#pragma unroll
        for (int j = 0; j < 4; j++) asm volatile("" : "+r"(r[i][j])::"memory");
}
/* K-major (or MN-major with tnsp) descriptor, 128-byte swizzle */
__device__ __forceinline__ uint64_t fa3_desc(uint32_t saddr, uint32_t lbo, uint32_t sbo)
{
    return (uint64_t)((saddr & 0x3FFFFu) >> 4) | ((uint64_t)(lbo >> 4) << 16) |
           ((uint64_t)(sbo >> 4) << 32) | (1ull << 62);
}
__device__ __forceinline__ void bar_init(uint32_t b, int count)
{
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(b), "r"(count));
}
__device__ __forceinline__ void bar_expect(uint32_t b, uint32_t bytes)
{
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(b), "r"(bytes) : "memory");
}
__device__ __forceinline__ void bar_arrive(uint32_t b)
{
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(b) : "memory");
}
__device__ __forceinline__ void bar_wait(uint32_t b, uint32_t parity)
{
    asm volatile(
        "{\n.reg .pred ok;\n"
        "WAIT_%=:\n"
        "mbarrier.try_wait.parity.shared::cta.b64 ok, [%0], %1;\n"
        "@!ok bra WAIT_%=;\n}\n" ::"r"(b), "r"(parity) : "memory");
}
__device__ __forceinline__ void tma3(uint32_t dst, const CUtensorMap *m, int c0, int c1, int c2, uint32_t bar)
{
    asm volatile(
        "cp.async.bulk.tensor.3d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, %4}], [%5];\n"
        ::"r"(dst), "l"((uint64_t)m), "r"(c0), "r"(c1), "r"(c2), "r"(bar) : "memory");
}
template <int BN> __device__ __forceinline__ void fa3_wgmma_ss(float *d, uint64_t da, uint64_t db, int acc)
{
    if constexpr (BN == 128) fa3_wgmma_ss_n128(d, da, db, acc);
    else fa3_wgmma_ss_n176(d, da, db, acc);
}
/* named barriers 1 and 2: consumer warpgroup 1 / 2 may issue its GEMMs;
 * 3: both consumer warpgroups (the split-unit epilogue) */
__device__ __forceinline__ void nbar_sync(int id) { asm volatile("bar.sync %0, 256;\n" ::"r"(id) : "memory"); }
__device__ __forceinline__ void nbar_arrive(int id) { asm volatile("bar.arrive %0, 256;\n" ::"r"(id) : "memory"); }
#endif

template <int BN, int ST>
__global__ void __launch_bounds__(384, 1) k_flash_fa3(const __grid_constant__ fa3_params p)
{
#ifdef SK_FA3
    constexpr int QB = FA3_BM * 256, KB = BN * 256; /* bytes of a Q / K / V tile */
    extern __shared__ __align__(16) unsigned char fsm_raw[]; /* aligned to 1024 below */
    const uint32_t raw = (uint32_t)__cvta_generic_to_shared(fsm_raw);
    const uint32_t base = (raw + 1023) & ~1023u;
    const uint32_t sQ = base, sK = base + QB, sV = sK + ST * KB;
    const uint32_t bars = sV + ST * KB; /* q_full, k_full[ST], v_full[ST], k_empty[ST], v_empty[ST] */
    const uint32_t q_full = bars;
    auto k_full = [&](int s) { return bars + 8 + 8 * s; };
    auto v_full = [&](int s) { return bars + 8 + 8 * (ST + s); };
    auto k_empty = [&](int s) { return bars + 8 + 8 * (2 * ST + s); };
    auto v_empty = [&](int s) { return bars + 8 + 8 * (3 * ST + s); };
    const int tid = threadIdx.x, wg = tid >> 7;
    int unit = blockIdx.x, part = 0, nparts = 1;
    if (unit >= p.units_full) {
        const int i = unit - p.units_full;
        unit = p.units_full + i / p.ksplit;
        part = i % p.ksplit;
        nparts = p.ksplit;
    }
    const int h = unit / p.qtiles, q0 = (unit % p.qtiles) * FA3_BM;
    const int nall = p.tiles_before[p.n];
    const int tb = (int)((int64_t)nall * part / nparts);
    const int ntiles = (int)((int64_t)nall * (part + 1) / nparts) - tb; /* >= 1: host checks */
    __shared__ int last_part;

    if (tid == 0) {
        bar_init(q_full, 1);
        for (int s = 0; s < ST; s++) {
            bar_init(k_full(s), 1);
            bar_init(v_full(s), 1);
            bar_init(k_empty(s), 256);
            bar_init(v_empty(s), 256);
        }
        asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
        asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
    }
    __syncthreads();

    if (wg == 0) {
        /* ---- producer ---- */
        asm volatile("setmaxnreg.dec.sync.aligned.u32 24;\n");
        if (tid != 0) return;
        bar_expect(q_full, QB);
        tma3(sQ, &p.tq, 0, h, q0, q_full);
        tma3(sQ + FA3_BM * 128, &p.tq, 64, h, q0, q_full);
        /* in the order the consumers use them: K(0), then K(t+1) before V(t) */
        int rk = 0, rv = 0;
        auto load = [&](int t, bool is_k) { /* t: local tile index */
            int &r = is_k ? rk : rv;
            const int tg = tb + t;
            while (tg >= p.tiles_before[r + 1]) r++;
            const int j0 = (tg - p.tiles_before[r]) * BN;
            const int s = t % ST;
            const uint32_t full = is_k ? k_full(s) : v_full(s);
            const uint32_t dst = (is_k ? sK : sV) + s * KB;
            const CUtensorMap *m = is_k ? &p.tk[r] : &p.tv[r];
            if (t >= ST) bar_wait(is_k ? k_empty(s) : v_empty(s), ((t / ST) - 1) & 1);
            bar_expect(full, KB);
            tma3(dst, m, 0, h, j0, full);
            tma3(dst + BN * 128, m, 64, h, j0, full);
        };
        load(0, true);
        for (int t = 0; t < ntiles; t++) {
            if (t + 1 < ntiles) load(t + 1, true);
            load(t, false);
        }
        return;
    }

    /* ---- consumers ---- */
    asm volatile("setmaxnreg.inc.sync.aligned.u32 240;\n");
    const int cw = wg - 1; /* 0 or 1: rows cw*64 .. cw*64+63 of the block */
    const int lt = tid & 127, warp = lt >> 5, lane = tid & 31, g = lane >> 2, t4 = lane & 3;
    const bool pp = p.pingpong != 0;
    const uint32_t qa = sQ + cw * 64 * 128;
    const float sl2 = p.sl2;
    constexpr int NS = BN / 2, NKK = BN / 16;

    float o[64];
#pragma unroll
    for (int i = 0; i < 64; i++) o[i] = 0.0f;
    float s[NS];
    uint32_t pa[NKK][4];
    float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.0f, l1 = 0.0f;

    auto issue_s = [&](int st) {
        const uint32_t kb = sK + st * KB;
#pragma unroll
        for (int kk = 0; kk < FA3_HD / 16; kk++) {
            const uint32_t off = (kk & 3) * 32; /* 16 dims = 32 bytes into the 128-byte row */
            fa3_wgmma_ss<BN>(s, fa3_desc(qa + (kk >> 2) * (FA3_BM * 128) + off, 16, 1024),
                             fa3_desc(kb + (kk >> 2) * (BN * 128) + off, 16, 1024), kk > 0);
        }
    };
    auto issue_pv = [&](int st) {
        const uint32_t vb = sV + st * KB;
#pragma unroll
        for (int kk = 0; kk < NKK; kk++)
            fa3_wgmma_rs_n128(o, pa[kk], fa3_desc(vb + kk * 2048, BN * 128, 1024));
    };
    /* which range tile t is in: keys valid in it */
    int rr = 0;
    auto valid_keys = [&](int t) { /* t: local tile index */
        const int tg = tb + t;
        while (tg >= p.tiles_before[rr + 1]) rr++;
        return p.len[rr] - (tg - p.tiles_before[rr]) * BN;
    };
    /* softmax of s (raw scores) -> probabilities in s; returns the O rescale */
    auto softmax = [&](int nv, float &a0, float &a1) {
        if (nv < BN) {
#pragma unroll
            for (int n = 0; n < BN / 8; n++)
#pragma unroll
                for (int e = 0; e < 4; e++)
                    if (n * 8 + 2 * t4 + (e & 1) >= nv) s[4 * n + e] = -INFINITY;
        }
        float mx0 = m0, mx1 = m1;
#pragma unroll
        for (int n = 0; n < BN / 8; n++) {
            mx0 = fmaxf(mx0, fmaxf(s[4 * n], s[4 * n + 1]));
            mx1 = fmaxf(mx1, fmaxf(s[4 * n + 2], s[4 * n + 3]));
        }
        mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
        mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
        mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
        mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
        const float ms0 = mx0 == -INFINITY ? 0.0f : mx0 * sl2;
        const float ms1 = mx1 == -INFINITY ? 0.0f : mx1 * sl2;
        a0 = m0 == -INFINITY ? 0.0f : sk_ex2(m0 * sl2 - ms0);
        a1 = m1 == -INFINITY ? 0.0f : sk_ex2(m1 * sl2 - ms1);
        m0 = mx0;
        m1 = mx1;
        float ps0 = 0.0f, ps1 = 0.0f;
        sk_frag_exp2_rowsum<BN / 8>(s, sl2, ms0, ms1, ps0, ps1);
        l0 = l0 * a0 + ps0;
        l1 = l1 * a1 + ps1;
    };
    auto pack_p = [&]() {
#pragma unroll
        for (int kk = 0; kk < NKK; kk++) {
            pa[kk][0] = sk_pk_bf16(s[8 * kk], s[8 * kk + 1]);
            pa[kk][1] = sk_pk_bf16(s[8 * kk + 2], s[8 * kk + 3]);
            pa[kk][2] = sk_pk_bf16(s[8 * kk + 4], s[8 * kk + 5]);
            pa[kk][3] = sk_pk_bf16(s[8 * kk + 6], s[8 * kk + 7]);
        }
    };
    auto rescale = [&](float a0, float a1) {
#pragma unroll
        for (int d = 0; d < 16; d++) {
            o[4 * d] *= a0;
            o[4 * d + 1] *= a0;
            o[4 * d + 2] *= a1;
            o[4 * d + 3] *= a1;
        }
    };

    if (pp && cw == 0) nbar_arrive(1); /* consumer 1 issues first */
    bar_wait(q_full, 0);

    /* tile 0: S only */
    bar_wait(k_full(0), 0);
    if (pp) nbar_sync(1 + cw);
    fa3_fence_regs(s);
    sk_wg_fence();
    issue_s(0);
    sk_wg_commit();
    if (pp) nbar_arrive(2 - cw);
    sk_wg_wait<0>();
    fa3_fence_regs(s);
    bar_arrive(k_empty(0));
    {
        float a0, a1;
        softmax(valid_keys(0), a0, a1);
        pack_p();
    }
    for (int t = 1; t < ntiles; t++) {
        const int st = t % ST, sp = (t - 1) % ST;
        bar_wait(k_full(st), (t / ST) & 1);
        if (pp) nbar_sync(1 + cw);
        fa3_fence_regs(s);
        fa3_fence_regs(o);
        fa3_fence_regs(pa);
        sk_wg_fence();
        issue_s(st);
        sk_wg_commit();
        bar_wait(v_full(sp), ((t - 1) / ST) & 1);
        /* fence again before the P V group (as FA3 does before each GEMM):
         * ptxas saw register traffic across the v_full wait and injected
         * one here anyway (C7519 "warpgroup.arrive is injected"); explicit
         * is better than relying on that */
        sk_wg_fence();
        issue_pv(sp);
        sk_wg_commit();
        if (pp) nbar_arrive(2 - cw);
        sk_wg_wait<1>(); /* S(t) done */
        fa3_fence_regs(s);
        bar_arrive(k_empty(st));
        float a0, a1;
        softmax(valid_keys(t), a0, a1);
        sk_wg_wait<0>(); /* P(t-1) V(t-1) done */
        fa3_fence_regs(o);
        fa3_fence_regs(pa);
        bar_arrive(v_empty(sp));
        /* the row maxima rarely move after the first tiles: skip the 64
         * multiplies when no row of the warp changed */
        if (__any_sync(0xffffffffu, a0 != 1.0f || a1 != 1.0f)) rescale(a0, a1);
        pack_p();
    }
    {
        const int sp = (ntiles - 1) % ST;
        bar_wait(v_full(sp), ((ntiles - 1) / ST) & 1);
        if (pp) nbar_sync(1 + cw);
        fa3_fence_regs(o);
        fa3_fence_regs(pa);
        sk_wg_fence();
        issue_pv(sp);
        sk_wg_commit();
        if (pp) nbar_arrive(2 - cw);
        sk_wg_wait<0>();
        fa3_fence_regs(o);
        bar_arrive(v_empty(sp));
    }

    l0 += __shfl_xor_sync(0xffffffffu, l0, 1);
    l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 1);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
    if (nparts > 1) {
        /* a part of a split unit: publish O (unnormalized), m and l; the last
         * part to finish combines all parts of the unit */
        const int slot0 = (unit - p.units_full) * nparts;
        const int r0 = cw * 64 + warp * 16 + g, r1 = r0 + 8;
        float *so = p.scr + (size_t)(slot0 + part) * FA3_BM * FA3_HD;
        float *sm = p.scr_ml + (size_t)(slot0 + part) * FA3_BM * 2;
#pragma unroll
        for (int d = 0; d < 16; d++) {
            const int col = d * 8 + 2 * t4;
            __stcg(reinterpret_cast<float2 *>(so + r0 * FA3_HD + col), make_float2(o[4 * d], o[4 * d + 1]));
            __stcg(reinterpret_cast<float2 *>(so + r1 * FA3_HD + col), make_float2(o[4 * d + 2], o[4 * d + 3]));
        }
        if (t4 == 0) {
            __stcg(reinterpret_cast<float2 *>(sm + r0 * 2), make_float2(m0, l0));
            __stcg(reinterpret_cast<float2 *>(sm + r1 * 2), make_float2(m1, l1));
        }
        __threadfence();
        nbar_sync(3);
        if (lt == 0 && cw == 0) {
            int *cn = p.cnt + (unit - p.units_full);
            const int prev = atomicAdd(cn, 1);
            last_part = prev == nparts - 1;
            if (last_part) atomicExch(cn, 0); /* ready for the next call */
        }
        nbar_sync(3);
        if (!last_part) return;
        __threadfence();
        float mm0 = -INFINITY, mm1 = -INFINITY;
        for (int j = 0; j < nparts; j++) {
            const float *mj = p.scr_ml + (size_t)(slot0 + j) * FA3_BM * 2;
            mm0 = fmaxf(mm0, __ldcg(mj + r0 * 2));
            mm1 = fmaxf(mm1, __ldcg(mj + r1 * 2));
        }
#pragma unroll
        for (int i = 0; i < 64; i++) o[i] = 0.0f;
        l0 = 0.0f;
        l1 = 0.0f;
        for (int j = 0; j < nparts; j++) {
            const float *mj = p.scr_ml + (size_t)(slot0 + j) * FA3_BM * 2;
            const float *oj = p.scr + (size_t)(slot0 + j) * FA3_BM * FA3_HD;
            const float2 ml0 = __ldcg(reinterpret_cast<const float2 *>(mj + r0 * 2));
            const float2 ml1 = __ldcg(reinterpret_cast<const float2 *>(mj + r1 * 2));
            const float w0 = sk_ex2((ml0.x - mm0) * sl2), w1 = sk_ex2((ml1.x - mm1) * sl2);
            l0 += w0 * ml0.y;
            l1 += w1 * ml1.y;
#pragma unroll
            for (int d = 0; d < 16; d++) {
                const int col = d * 8 + 2 * t4;
                const float2 a = __ldcg(reinterpret_cast<const float2 *>(oj + r0 * FA3_HD + col));
                const float2 b = __ldcg(reinterpret_cast<const float2 *>(oj + r1 * FA3_HD + col));
                o[4 * d] += w0 * a.x;
                o[4 * d + 1] += w0 * a.y;
                o[4 * d + 2] += w1 * b.x;
                o[4 * d + 3] += w1 * b.y;
            }
        }
    }
    const float inv0 = l0 > 0.0f ? 1.0f / l0 : 0.0f, inv1 = l1 > 0.0f ? 1.0f / l1 : 0.0f;
    const int64_t row0 = (int64_t)q0 + cw * 64 + warp * 16 + g, row1 = row0 + 8;
    __nv_bfloat16 *out = p.out;
#pragma unroll
    for (int d = 0; d < 16; d++) {
        const int col = d * 8 + 2 * t4;
        if (row0 < p.Nq)
            *reinterpret_cast<__nv_bfloat162 *>(out + (row0 * p.NH + h) * FA3_HD + col) =
                __floats2bfloat162_rn(o[4 * d] * inv0, o[4 * d + 1] * inv0);
        if (row1 < p.Nq)
            *reinterpret_cast<__nv_bfloat162 *>(out + (row1 * p.NH + h) * FA3_HD + col) =
                __floats2bfloat162_rn(o[4 * d + 2] * inv1, o[4 * d + 3] * inv1);
    }
#endif
}

/* ---- host side --------------------------------------------------------- */

static PFN_cuTensorMapEncodeTiled_v12000 fa3_encode_fn(void)
{
    static PFN_cuTensorMapEncodeTiled_v12000 fn = NULL;
    static int tried = 0;
    if (!tried) {
        tried = 1;
        void *f = NULL;
        cudaDriverEntryPointQueryResult q;
        if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &f, 12000, cudaEnableDefault,
                                             &q) == cudaSuccess &&
            q == cudaDriverEntryPointSuccess)
            fn = (PFN_cuTensorMapEncodeTiled_v12000)f;
        else
            cudaGetLastError();
    }
    return fn;
}

/* [rows, NH, 128] bf16 at base, box 64 dims x 1 head x box_rows, 128-byte swizzle */
static int fa3_map(CUtensorMap *m, const void *base, int64_t rows, int64_t NH, int box_rows)
{
    PFN_cuTensorMapEncodeTiled_v12000 enc = fa3_encode_fn();
    if (!enc) return 0;
    cuuint64_t dims[3] = {FA3_HD, (cuuint64_t)NH, (cuuint64_t)rows};
    cuuint64_t strides[2] = {FA3_HD * 2, (cuuint64_t)(NH * FA3_HD * 2)};
    cuuint32_t box[3] = {64, 1, (cuuint32_t)box_rows};
    cuuint32_t es[3] = {1, 1, 1};
    return enc(m, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 3, (void *)base, dims, strides, box, es,
               CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
               CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
}

template <int BN, int ST>
static sk_status fa3_launch(cudaStream_t s, fa3_params &p)
{
    const size_t smem = 1024 + (size_t)FA3_BM * 256 + (size_t)2 * ST * BN * 256 + 8 * (1 + 4 * ST);
    static unsigned long long set = 0; /* per device */
    int dev = 0;
    SK_CU("attention (fa3)", cudaGetDevice(&dev));
    if (!(set >> (dev & 63) & 1ull)) {
        /* setmaxnreg.inc blocks until the CTA's register pool (launch
         * registers x 384 threads) has the registers: 24 x 128 (producer)
         * + 240 x 256 (consumers) = 168 x 384. An image built with fewer
         * registers (another ptxas, or the plain sm_90 stub loaded instead
         * of the sm_90a one) would hang in the consumers' setmaxnreg or
         * do nothing: refuse it with a message instead. */
        cudaFuncAttributes fa;
        SK_CU("attention (fa3)", cudaFuncGetAttributes(&fa, k_flash_fa3<BN, ST>));
        if (((fa.numRegs + 7) & ~7) * 384 < 24 * 128 + 240 * 256) /* allocated in 8s */
            return SK_ERR(SK_E_UNSUPPORTED,
                          "cuda attention (fa3): the loaded kernel image has %d registers a thread; "
                          "its setmaxnreg 24/240 split needs 168 (is the sm_90a image the one "
                          "loaded? rebuild cuda/cuda_flash_fa3.cu for sm_90a, or unset SK_CUDA_ATTN)",
                          fa.numRegs);
        SK_CU("attention (fa3)", cudaFuncSetAttribute(k_flash_fa3<BN, ST>,
                                                      cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                      (int)smem));
        set |= 1ull << (dev & 63);
    }
    const int grid = p.units_full + (p.qtiles * (int)p.NH - p.units_full) * p.ksplit;
    k_flash_fa3<BN, ST><<<grid, 384, smem, s>>>(p);
    SK_CU_LAUNCH("attention (flash fa3)");
    return SK_OK;
}

extern "C" int sk_cuda_flash_fa3_supported(int64_t HD, int64_t Nq, const sk_att_ranges *R,
                                           float scale)
{
    if (HD != FA3_HD || scale <= 0.0f || Nq > INT32_MAX / 2 || !fa3_encode_fn()) return 0;
    for (int r = 0; r < R->n; r++)
        if (R->len[r] > INT32_MAX / 2 || R->start[r] < 0) return 0;
    return 1;
}

/* The last, partial wave of (q tile, head) units: with U units on n SMs and
 * U % n = rem, the rem units of the last wave would leave n - rem SMs idle
 * (q 4680 x 12 heads: 444 units, 3.36 waves on 132 SMs run as 4). Splitting
 * each of them in k = n / rem key-range parts (at most 4) ends the grid after
 * floor(U/n) + 1/k waves. Needs the split buffer: made once per backend
 * (never while a graph is recorded: then no split). Returns k (1: none). */
static int fa3_split(sk_cuda_ctx *c, fa3_params &p, int ntiles, int want)
{
    const int U = p.qtiles * (int)p.NH, n = c->n_sm > 0 ? c->n_sm : 1, rem = U % n;
    p.units_full = U;
    p.ksplit = 1;
    if (!want || rem == 0) return 1;
    int k = n / rem;
    if (k > 4) k = 4;
    if (k > ntiles) k = ntiles;
    if (k < 2) return 1;
    const size_t slot = (size_t)FA3_BM * FA3_HD * 4 + (size_t)FA3_BM * 2 * 4;
    const size_t need = slot * (size_t)n + (size_t)n * sizeof(int);
    if (c->fa3_split_bytes < need) {
        if (c->capturing) return 1;
        if (c->fa3_split) cudaFree(c->fa3_split);
        c->fa3_split = NULL;
        c->fa3_split_bytes = 0;
        c->n_mallocs++;
        if (cudaMalloc(&c->fa3_split, need) != cudaSuccess ||
            cudaMemsetAsync(c->fa3_split, 0, need, c->stream) != cudaSuccess) {
            cudaGetLastError();
            if (c->fa3_split) cudaFree(c->fa3_split);
            c->fa3_split = NULL;
            return 1;
        }
        c->fa3_split_bytes = need;
    }
    p.scr = (float *)c->fa3_split;
    p.scr_ml = p.scr + (size_t)FA3_BM * FA3_HD * n;
    p.cnt = (int *)(p.scr_ml + (size_t)FA3_BM * 2 * n);
    p.units_full = U - rem;
    p.ksplit = k;
    return k;
}

/* SK_CUDA_FA3_CFG=BN,ST,PINGPONG,SPLIT picks the config for A/B runs (BN,ST:
 * 128,2 / 128,3 / 176,2; PINGPONG 0/1; SPLIT 0/1: split the last wave) */
extern "C" sk_status sk_cuda_flash_fa3(sk_backend *be, void *out, const void *q,
                                       const sk_att_ranges *R, int64_t Nq, int64_t NH, float scale)
{
    sk_cuda_ctx *c = sk_cuda(be);
    cudaStream_t s = c->stream;
    int bn = 128, st = 2, pingpong = 0, split = 1;
    const char *e = getenv("SK_CUDA_FA3_CFG");
    if (e) sscanf(e, "%d,%d,%d,%d", &bn, &st, &pingpong, &split);
    if (!((bn == 128 && (st == 2 || st == 3)) || (bn == 176 && st == 2)))
        return SK_ERR(SK_E_INVALID_ARG,
                      "cuda attention: SK_CUDA_FA3_CFG=%s: use 128,2 or 128,3 or 176,2 "
                      "(block keys, stages), then optionally ,PINGPONG (0 default, 1 on) and "
                      ",SPLIT (1 default: split the last wave; 0 off)", e);
    fa3_params p;
    memset(&p, 0, sizeof p);
    p.n = R->n;
    p.pingpong = pingpong;
    p.out = (__nv_bfloat16 *)out;
    p.Nq = Nq;
    p.NH = NH;
    p.sl2 = scale * 1.4426950408889634f;
    if (!fa3_map(&p.tq, q, Nq, NH, FA3_BM))
        return SK_ERR(SK_E_CUDA, "cuda attention (fa3): cuTensorMapEncodeTiled failed for q");
    int tiles = 0;
    for (int r = 0; r < R->n; r++) {
        const size_t off = (size_t)R->start[r] * NH * FA3_HD * 2;
        if (!fa3_map(&p.tk[r], (const char *)R->k[r] + off, R->len[r], NH, bn) ||
            !fa3_map(&p.tv[r], (const char *)R->v[r] + off, R->len[r], NH, bn))
            return SK_ERR(SK_E_CUDA, "cuda attention (fa3): cuTensorMapEncodeTiled failed for range %d", r);
        p.len[r] = (int)R->len[r];
        p.tiles_before[r] = tiles;
        tiles += (int)((R->len[r] + bn - 1) / bn);
    }
    p.tiles_before[R->n] = tiles;
    for (int r = R->n + 1; r <= SK_ATT_MAX_RANGES; r++) p.tiles_before[r] = tiles;
    if (tiles == 0) return SK_ERR(SK_E_INVALID_ARG, "cuda attention (fa3): no keys");
    p.qtiles = (int)((Nq + FA3_BM - 1) / FA3_BM);
    fa3_split(c, p, tiles, split);
    if (bn == 176) return fa3_launch<176, 2>(s, p);
    if (st == 3) return fa3_launch<128, 3>(s, p);
    return fa3_launch<128, 2>(s, p);
}
