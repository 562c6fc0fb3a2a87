/* cuda_attention_fp8.cu - FP8 self-attention (runtime/core/fp8.h) for --dtype fp8:
 * Q, K, V in e4m3 with one scale per tensor, through cuDNN's FP8 fused flash
 * attention on Hopper, else an emulation kernel.
 *
 * Per call:
 *   1. amax of q, of all keys and of all values (one kernel over the segments;
 *      a KV cache in the act dtype is quantized per call; ranges of the FP8 KV
 *      cache, e4m3 with a scale per frame, are dequantized on the fly: fp8.h);
 *   2. their (inv, descale) pairs on the device by fp8.h's row rules;
 *   3. q, the keys and the values quantized (satfinite RNE) into one buffer,
 *      the ranges concatenated: cuDNN then runs ONE graph over all keys (no
 *      per-range calls, no LSE merge);
 *   4. cuDNN's FP8 SDPA forward, the graph cudnn-frontend's sdpa_fp8 builds:
 *        S = Q8 K8^T (f32) * attn_scale * descale_q * descale_k
 *        softmax (max, sub, exp, sum, div; Stats = max + log(sum))
 *        amax_s = amax(P);  P8 = e4m3(P * scale_s)
 *        O = (P8 V8) * descale_s * descale_v * scale_o;  amax_o = amax(before scale_o)
 *      with scale_s = 448, descale_s = 1/448 (fp8.h) and the output in e4m3 with
 *      scale_o = 1/descale_v (|O| <= max|V|) and a dequantizing cast after it.
 *      A bf16 output (scale_o 1, no cast) is cuDNN's only on Blackwell with cuDNN
 *      >= 9.13 (cudnn-frontend's sdpa_support_surface.h refuses it for sm_90, and
 *      this path runs on sm_90 only: wgmma_ok), so it is tried only when
 *      SK_CUDA_FP8_ATTN_O=bf16 asks (a probe). The e4m3 output adds one e4m3
 *      rounding of O (relative step 2^-4) that the oracle does not have: the
 *      device check (tests/gpu/check_fp8.c) adds it to its bounds;
 *   5. where cuDNN is absent, declines, or the activations are not bf16: the
 *      emulation kernel below (fp8.h's arithmetic, one block per query row and
 *      head; slow, for tests and small shapes). SK_CUDA_FP8_ATTN=ref forces it,
 *      SK_CUDA_FP8_ATTN_O=bf16 tries the bf16-output graphs first (probe),
 *      SK_CUDA_FP8_ATTN_STATS=0 only the graphs without the Stats output (A/B),
 *      SK_CUDA_FP8_ATTN=cudnn makes a shape cuDNN declines (or a failed execute)
 *      an error (benches: never time the emulation). A plan whose execute fails
 *      is dropped with a warning and the emulation kernel runs instead.
 *
 * CUDA graphs: nothing is created or allocated while a graph is recorded; a
 * call that would need to falls back to the act-dtype attention (warned once).
 */
#include <cuda_fp8.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_e4m3.cuh"
#include "cuda_internal.h"
#include "cuda_attention.h"
#include "sk_cuda.h"

#define F8_MAXSEG (2 * SK_ATT_MAX_RANGES + 1)

/* device scalars, 16 bytes apart (cuDNN's tensors declare 16-byte alignment) */
enum {
    SL_AMAX_Q, SL_AMAX_K, SL_AMAX_V, /* amax as f32 bits (atomicMax on uint) */
    SL_DESC_Q, SL_DESC_K, SL_DESC_V, /* dequant scales */
    SL_INV_Q, SL_INV_K, SL_INV_V,    /* quant multipliers */
    SL_SCALE_S, SL_DESCALE_S, SL_ONE, SL_AMAX_S, SL_AMAX_O, SL_N
};
#define SLOT(p, k) ((float *)(p) + 4 * (k))

typedef struct {
    const void *src[F8_MAXSEG];
    uint8_t *dst[F8_MAXSEG];
    int64_t n[F8_MAXSEG];
    int which[F8_MAXSEG]; /* 0 q, 1 k, 2 v */
    /* FP8 KV cache segments (src e4m3): element i's value is dec(src[i]) * fsc[(foff + i) / fper] */
    const float *fsc[F8_MAXSEG]; /* NULL: src in the act dtype */
    int64_t foff[F8_MAXSEG], fper[F8_MAXSEG];
    int nseg;
} f8_segs;

/* element i of segment g in f32 (the FP8 cache's dequantization: one product, fp8.h) */
__device__ __forceinline__ float seg_ld(const f8_segs &G, int g, int dt, int64_t i)
{
    if (!G.fsc[g]) return sk_ld(G.src[g], dt, i);
    const float s = G.fsc[g][(G.foff[g] + i) / G.fper[g]];
    return __fmul_rn(sk_e4m3_dec(((const uint8_t *)G.src[g])[i]), s);
}

/* elements 8c..8c+7 (vec: fper % 8 == 0 and foff % 8 == 0, so one scale covers them) */
__device__ __forceinline__ void seg_ld8(const f8_segs &G, int g, int dt, int64_t c, float v[8])
{
    if (!G.fsc[g]) { sk_ld8(G.src[g], dt, c, v); return; }
    sk_e4m3_ld8((const uint8_t *)G.src[g], c, v);
    const float s = G.fsc[g][(G.foff[g] + 8 * c) / G.fper[g]];
#pragma unroll
    for (int k = 0; k < 8; k++) v[k] = __fmul_rn(v[k], s);
}

/* 1. amax per segment into its slot (vec: every segment 16-byte aligned, n % 8 == 0);
 * an FP8 KV cache segment gives its largest frame scale instead (fp8.h: no data pass) */
__global__ void k_f8_amax(f8_segs G, int dt, int vec, float *sc)
{
    const int g = blockIdx.y;
    const int64_t n = G.n[g];
    float a = 0.0f;
    if (G.fsc[g]) {
        const int64_t f0 = G.foff[g] / G.fper[g], f1 = (G.foff[g] + n - 1) / G.fper[g];
        for (int64_t f = f0 + (int64_t)blockIdx.x * blockDim.x + threadIdx.x; f <= f1;
             f += (int64_t)gridDim.x * blockDim.x)
            a = fmaxf(a, G.fsc[g][f]);
    } else if (vec) {
        for (int64_t c = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; c < n / 8;
             c += (int64_t)gridDim.x * blockDim.x) {
            float v[8];
            seg_ld8(G, g, dt, c, v);
#pragma unroll
            for (int k = 0; k < 8; k++) a = fmaxf(a, fabsf(v[k]));
        }
    } else {
        for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
             i += (int64_t)gridDim.x * blockDim.x)
            a = fmaxf(a, fabsf(seg_ld(G, g, dt, i)));
    }
    __shared__ float red[32];
    a = sk_blk_reduce(a, 1, red);
    if (threadIdx.x == 0 && a > 0.0f)
        atomicMax(reinterpret_cast<unsigned *>(SLOT(sc, SL_AMAX_Q + G.which[g])), __float_as_uint(a));
}

/* 2. fp8.h's (inv, scale) from each amax; the probability scales. kv8: K and V came
 * from the FP8 KV cache, their slots hold the largest frame scale (a power of two) */
__global__ void k_f8_scales(float *sc, int kv8)
{
    for (int w = 0; w < 3; w++) {
        const float amax = *SLOT(sc, SL_AMAX_Q + w);
        float inv, scale;
        if (kv8 && w > 0) {
            scale = amax;
            inv = isfinite(amax) ? __fdiv_rn(1.0f, amax) : 0.0f;
        } else if (amax == 0.0f) { inv = 1.0f; scale = 1.0f; }
        else if (!isfinite(amax)) { inv = 0.0f; scale = __int_as_float(0x7f800000); }
        else { inv = __fdiv_rn(448.0f, amax); scale = __fdiv_rn(amax, 448.0f); }
        *SLOT(sc, SL_INV_Q + w) = inv;
        *SLOT(sc, SL_DESC_Q + w) = scale;
    }
    *SLOT(sc, SL_SCALE_S) = 448.0f;
    *SLOT(sc, SL_DESCALE_S) = 1.0f / 448.0f;
    *SLOT(sc, SL_ONE) = 1.0f;
}

/* 3. quantize every segment with its tensor's multiplier */
__global__ void k_f8_quant(f8_segs G, int dt, int vec, const float *sc)
{
    const int g = blockIdx.y;
    const void *x = G.src[g];
    uint8_t *q = G.dst[g];
    const int64_t n = G.n[g];
    const float inv = *SLOT(sc, SL_INV_Q + G.which[g]);
    if (vec && !G.fsc[g]) {
        for (int64_t c = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; c < n / 8;
             c += (int64_t)gridDim.x * blockDim.x)
            sk_e4m3_quant8(q, x, dt, c, inv);
    } else if (vec) { /* the FP8 cache: re-encoded to the call's scale (fp8.h) */
        for (int64_t c = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; c < n / 8;
             c += (int64_t)gridDim.x * blockDim.x) {
            float v[8];
            seg_ld8(G, g, dt, c, v);
            uint2 o;
            uint8_t *b = reinterpret_cast<uint8_t *>(&o);
#pragma unroll
            for (int k = 0; k < 8; k++) b[k] = sk_e4m3_sat(v[k] * inv);
            reinterpret_cast<uint2 *>(q)[c] = o;
        }
    } else {
        for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
             i += (int64_t)gridDim.x * blockDim.x)
            q[i] = sk_e4m3_sat(seg_ld(G, g, dt, i) * inv);
    }
}

/* 5. the emulation: fp8.h's arithmetic, one block of 128 threads per (query row,
 * head); HD <= 256. Pass 1 the row max, pass 2 the probabilities and P8 V. */
#define REF_T 128
__device__ __forceinline__ float ref_score(const float *qf, const uint8_t *kj, int64_t HD,
                                           float scale, float dq, float dk)
{
    float d = 0.0f;
    for (int64_t c = 0; c < HD; c++) d += qf[c] * sk_e4m3_dec(kj[c]);
    return ((d * scale) * dq) * dk;
}

__global__ void k_f8_att_ref(void *out, int odt, const uint8_t *q8, const uint8_t *k8,
                             const uint8_t *v8, const float *sc, int64_t Nk, int64_t NH,
                             int64_t HD, float scale)
{
    extern __shared__ float sm[];
    float *qf = sm, *pt = sm + HD, *red = pt + REF_T;
    const int64_t i = blockIdx.x, h = blockIdx.y, row = NH * HD;
    const int t = threadIdx.x;
    for (int64_t c = t; c < HD; c += REF_T) qf[c] = sk_e4m3_dec(q8[i * row + h * HD + c]);
    __syncthreads();
    const float dq = *SLOT(sc, SL_DESC_Q), dk = *SLOT(sc, SL_DESC_K), dv = *SLOT(sc, SL_DESC_V);
    float m = -INFINITY;
    for (int64_t j = t; j < Nk; j += REF_T)
        m = fmaxf(m, ref_score(qf, k8 + j * row + h * HD, HD, scale, dq, dk));
    m = sk_blk_reduce(m, 1, red);
    float acc0 = 0.0f, acc1 = 0.0f, z = 0.0f;
    for (int64_t j0 = 0; j0 < Nk; j0 += REF_T) {
        const int64_t j = j0 + t;
        float p = 0.0f;
        if (j < Nk) {
            const float e = expf(ref_score(qf, k8 + j * row + h * HD, HD, scale, dq, dk) - m);
            z += e;
            p = sk_e4m3_dec(sk_e4m3_sat(e * 448.0f));
        }
        pt[t] = p;
        __syncthreads();
        const int64_t nj = Nk - j0 < REF_T ? Nk - j0 : REF_T;
        for (int64_t jj = 0; jj < nj; jj++) {
            const float pv = pt[jj];
            if (pv == 0.0f) continue;
            const uint8_t *vj = v8 + (j0 + jj) * row + h * HD;
            if (t < HD) acc0 += pv * sk_e4m3_dec(vj[t]);
            if (t + REF_T < HD) acc1 += pv * sk_e4m3_dec(vj[t + REF_T]);
        }
        __syncthreads();
    }
    const float Z = sk_blk_reduce(z, 0, red);
    if (t < HD) sk_st(out, odt, i * row + h * HD + t, ((acc0 / Z) * (1.0f / 448.0f)) * dv);
    if (t + REF_T < HD)
        sk_st(out, odt, i * row + h * HD + t + REF_T, ((acc1 / Z) * (1.0f / 448.0f)) * dv);
}

/* e4m3 output of cuDNN (scale_o = 1/descale_v) back to bf16 */
__global__ void k_f8_o_dequant(__nv_bfloat16 *out, const uint8_t *o8, int64_t n, const float *sc)
{
    const float dv = *SLOT(sc, SL_DESC_V);
    SK_GRID_STRIDE(i, n) out[i] = __float2bfloat16_rn(sk_e4m3_dec(o8[i]) * dv);
}

/* ------------------------------------------------------------ state */
#define F8_PLANS 32

typedef struct {
    int valid; /* 1 built, -1 declined */
    int64_t nq, nk, nh, hd;
    int o8;    /* output in e4m3 (else bf16) */
    int stats; /* Stats is a real output (else virtual) */
    void *plan;
    int64_t ws;
    int64_t picked, offered; /* engine config taken, configs the heuristics gave (log) */
} f8_plan;

typedef struct {
    void *h; /* cudnnHandle_t */
    int broken, warned_capture, warned_decline;
    int last_o8; /* the last call's path: -1 emulation, 0 cuDNN bf16 out, 1 cuDNN e4m3 out */
    f8_plan plans[F8_PLANS];
    float *sc;
    void *buf;
    size_t buf_bytes;
} f8_state;

static size_t al256(size_t x) { return (x + 255) & ~(size_t)255; }

#ifdef SK_HAVE_CUDNN
#include "cuda_cudnn_graph.h"

enum {
    U_Q = 1, U_K, U_V, U_O, U_ATTN, U_DQ, U_DK, U_DV, U_SS, U_DS, U_SO, U_AMAX_S, U_AMAX_O,
    U_STATS, U_VIRT = 100
};

/* the sdpa_fp8 graph of one shape and variant, and the first plan that finalizes */
static int f8_build(f8_state *S, f8_plan *p, char *err, size_t errn)
{
    const int64_t Nq = p->nq, Nk = p->nk, NH = p->nh, HD = p->hd;
    enum { NT = 32, NOPS = 20 };
    bdesc D[NOPS + NT] = {0}, *ops = D, *T = D + NOPS; /* destroyed in this order */
    int nops = 0, nt = 0;
    int rc = -1;
    const cudnnDataType_t E4 = CUDNN_DATA_FP8_E4M3, F32 = CUDNN_DATA_FLOAT;
    const cudnnDataType_t ODT = p->o8 ? E4 : CUDNN_DATA_BFLOAT16;
    const sk_dnn_sdpa_dims L = sk_dnn_sdpa_layout(Nq, Nk, NH, HD);
    int64_t vu = U_VIRT;
#define TEN(var, ...)                                                                      \
    bdesc var;                                                                             \
    SK_DNN(sk_dnn_tensor(&T[nt], __VA_ARGS__));                                            \
    var = T[nt++];
    {
        TEN(tQ, U_Q, E4, L.qd, L.qs, 0, 0);
        TEN(tK, U_K, E4, L.kd, L.ks, 0, 0);
        TEN(tV, U_V, E4, L.vd, L.vs, 0, 0);
        TEN(tO, U_O, ODT, L.qd, L.qs, 0, 0);
        TEN(tA, U_ATTN, F32, L.one, L.one, 0, 1);
        TEN(tDQ, U_DQ, F32, L.one, L.one, 0, 0);
        TEN(tDK, U_DK, F32, L.one, L.one, 0, 0);
        TEN(tDV, U_DV, F32, L.one, L.one, 0, 0);
        TEN(tSS, U_SS, F32, L.one, L.one, 0, 0);
        TEN(tDS, U_DS, F32, L.one, L.one, 0, 0);
        TEN(tSO, U_SO, F32, L.one, L.one, 0, 0);
        TEN(tAS, U_AMAX_S, F32, L.one, L.one, 0, 0);
        TEN(tAO, U_AMAX_O, F32, L.one, L.one, 0, 0);
        TEN(tST, p->stats ? (int64_t)U_STATS : vu++, F32, L.rd, L.rs, !p->stats, 0);
        TEN(s1, vu++, F32, L.sd, L.ss, 1, 0);
        TEN(s2, vu++, F32, L.sd, L.ss, 1, 0);
        TEN(s3, vu++, F32, L.sd, L.ss, 1, 0);
        TEN(s4, vu++, F32, L.sd, L.ss, 1, 0);
        TEN(mx, vu++, F32, L.rd, L.rs, 1, 0);
        TEN(s5, vu++, F32, L.sd, L.ss, 1, 0);
        TEN(ex, vu++, F32, L.sd, L.ss, 1, 0);
        TEN(zs, vu++, F32, L.rd, L.rs, 1, 0);
        TEN(lz, vu++, F32, L.rd, L.rs, 1, 0);
        TEN(pp, vu++, F32, L.sd, L.ss, 1, 0);
        TEN(p8, vu++, E4, L.sd, L.ss, 1, 0);
        TEN(o1, vu++, F32, L.qd, L.qs, 1, 0);
        TEN(o2, vu++, F32, L.qd, L.qs, 1, 0);
        TEN(o3, vu++, F32, L.qd, L.qs, 1, 0);
        SK_DNN(sk_dnn_matmul(&ops[nops++], tQ, tK, s1));
        SK_DNN(sk_dnn_pointwise(&ops[nops++], CUDNN_POINTWISE_MUL, s1, tA, s2));
        SK_DNN(sk_dnn_pointwise(&ops[nops++], CUDNN_POINTWISE_MUL, s2, tDQ, s3));
        SK_DNN(sk_dnn_pointwise(&ops[nops++], CUDNN_POINTWISE_MUL, s3, tDK, s4));
        SK_DNN(sk_dnn_reduction(&ops[nops++], CUDNN_REDUCE_TENSOR_MAX, s4, mx));
        SK_DNN(sk_dnn_pointwise(&ops[nops++], CUDNN_POINTWISE_SUB, s4, mx, s5));
        SK_DNN(sk_dnn_pointwise(&ops[nops++], CUDNN_POINTWISE_EXP, s5, NULL, ex));
        SK_DNN(sk_dnn_reduction(&ops[nops++], CUDNN_REDUCE_TENSOR_ADD, ex, zs));
        SK_DNN(sk_dnn_pointwise(&ops[nops++], CUDNN_POINTWISE_LOG, zs, NULL, lz));
        SK_DNN(sk_dnn_pointwise(&ops[nops++], CUDNN_POINTWISE_ADD, mx, lz, tST));
        SK_DNN(sk_dnn_pointwise(&ops[nops++], CUDNN_POINTWISE_DIV, ex, zs, pp));
        SK_DNN(sk_dnn_reduction(&ops[nops++], CUDNN_REDUCE_TENSOR_AMAX, pp, tAS));
        SK_DNN(sk_dnn_pointwise(&ops[nops++], CUDNN_POINTWISE_MUL, pp, tSS, p8));
        SK_DNN(sk_dnn_matmul(&ops[nops++], p8, tV, o1));
        SK_DNN(sk_dnn_pointwise(&ops[nops++], CUDNN_POINTWISE_MUL, o1, tDS, o2));
        SK_DNN(sk_dnn_pointwise(&ops[nops++], CUDNN_POINTWISE_MUL, o2, tDV, o3));
        SK_DNN(sk_dnn_pointwise(&ops[nops++], CUDNN_POINTWISE_MUL, o3, tSO, tO));
        SK_DNN(sk_dnn_reduction(&ops[nops++], CUDNN_REDUCE_TENSOR_AMAX, o3, tAO));
    }
#undef TEN
    if (sk_dnn_first_plan((cudnnHandle_t)S->h, ops, nops, NULL, &p->plan, &p->ws, &p->picked,
                          &p->offered, err, errn))
        goto fail;
    rc = 0;
fail: /* success too: the plan keeps what it needs of the graph */
    sk_dnn_destroy(D, NOPS + NT);
    return rc;
}

/* the cached plan of a shape (built unless lookup_only): the first variant that
 * builds of [bf16 output + Stats, bf16 output, only with SK_CUDA_FP8_ATTN_O=bf16]
 * e4m3 output + Stats, e4m3 output (Stats first: cuDNN 9.14 had no bf16 SDPA engine
 * without it, docs/PERF.md; the FP8 graphs of cudnn-frontend's sdpa_fp8 omit it
 * for inference, so both are tried) */
static f8_plan *f8_get_plan(sk_cuda_ctx *cx, f8_state *S, int64_t Nq, int64_t Nk, int64_t NH,
                            int64_t HD, int lookup_only)
{
    const unsigned hsh = (unsigned)(((Nq * 131 + Nk) * 131 + NH) * 131 + HD) % F8_PLANS;
    f8_plan *p = sk_dnn_plan_slot(S->plans, F8_PLANS, hsh, lookup_only, &cx->scratch_gen,
                                  [&](const f8_plan *c) {
                                      return c->nq == Nq && c->nk == Nk && c->nh == NH && c->hd == HD;
                                  });
    if (!p || p->valid) return p; /* cached (or declined), or lookup_only and none */
    /* review fix: bf16 output is not offered on sm_90 (see the header); trying it
     * first cost two heuristics queries per shape and two "declined" lines */
    const char *oe = getenv("SK_CUDA_FP8_ATTN_O");
    const int try_bf16 = oe && !strcmp(oe, "bf16");
    /* SK_CUDA_FP8_ATTN_STATS=0: only the graphs without Stats (A/B on the device:
     * TransformerEngine builds those for inference, which cuDNN >= 9.7 serves for
     * head dims <= 256 on sm_90; with Stats it is the training kernel, d = 128) */
    const char *se = getenv("SK_CUDA_FP8_ATTN_STATS");
    const int no_stats = se && !strcmp(se, "0");
    char err[256] = "", first[256] = "";
    for (int v = try_bf16 ? 0 : 2; v < 4; v++) {
        if (no_stats && !(v & 1)) continue;
        memset(p, 0, sizeof *p);
        p->nq = Nq, p->nk = Nk, p->nh = NH, p->hd = HD;
        p->o8 = v >= 2;
        p->stats = !(v & 1);
        if (f8_build(S, p, err, sizeof err) == 0) {
            p->valid = 1;
            /* review: the engine config and the workspace logged (a non-flash engine
             * would show as a later config and a workspace of the order of the
             * scores, NH * Nq * Nk * 4 bytes) */
            SK_LOGI("cuda attention fp8 (cuDNN): q%lld kv%lld %lldx%lld: %s output%s, engine "
                    "config %lld of %lld, workspace %lld B", (long long)Nq, (long long)Nk,
                    (long long)NH, (long long)HD, p->o8 ? "e4m3" : "bf16",
                    p->stats ? " + stats" : "", (long long)p->picked, (long long)p->offered,
                    (long long)p->ws);
            return p;
        }
        if (!first[0]) snprintf(first, sizeof first, "%s", err);
        SK_LOGI("cuda attention fp8 (cuDNN): variant %d (%s output%s) declined: %s", v,
                p->o8 ? "e4m3" : "bf16", p->stats ? " + stats" : "", err);
    }
    p->valid = -1;
    SK_LOGW("cuda attention fp8: cuDNN declines q%lld kv%lld %lldx%lld (%s; last: %s); the "
            "emulation kernel runs (slow)", (long long)Nq, (long long)Nk, (long long)NH,
            (long long)HD, first, err);
    return p;
}

static sk_status f8_run(f8_state *S, f8_plan *p, void *o, const void *q8, const void *k8,
                        const void *v8, float *attn, float *sc, float *stats, void *ws)
{
    int64_t uids[14] = {U_Q, U_K, U_V, U_O, U_ATTN, U_DQ, U_DK, U_DV, U_SS, U_DS, U_SO,
                        U_AMAX_S, U_AMAX_O, U_STATS};
    void *ptrs[14] = {(void *)q8, (void *)k8, (void *)v8, o, attn, SLOT(sc, SL_DESC_Q),
                      SLOT(sc, SL_DESC_K), SLOT(sc, SL_DESC_V), SLOT(sc, SL_SCALE_S),
                      SLOT(sc, SL_DESCALE_S), p->o8 ? SLOT(sc, SL_INV_V) : SLOT(sc, SL_ONE),
                      SLOT(sc, SL_AMAX_S), SLOT(sc, SL_AMAX_O), stats};
    const int64_t n = p->stats ? 14 : 13;
    const cudnnStatus_t s = sk_dnn_execute((cudnnHandle_t)S->h, (bdesc)p->plan, n, uids, ptrs, ws);
    if (s != CUDNN_STATUS_SUCCESS)
        return SK_ERR(SK_E_CUDA, "cuda attention fp8 (cuDNN): %s", cudnnGetErrorString(s));
    return SK_OK;
}
#endif /* SK_HAVE_CUDNN */

static int f8_force_ref(void)
{
    const char *e = getenv("SK_CUDA_FP8_ATTN");
    return e && !strcmp(e, "ref");
}

/* falls back to the act-dtype attention while a graph is recorded and something
 * would have to be made first (warned once) */
static sk_status f8_decline(sk_backend *be, f8_state *S, sk_tensor *out, const sk_tensor *q,
                            const sk_kv_range *ranges, int nranges, float scale)
{
    if (!S || !S->warned_capture) {
        if (S) S->warned_capture = 1;
        SK_LOGW("cuda attention fp8: q%lld first seen while a graph is recorded; the graph runs "
                "the %s attention (run the shape once before recording)", (long long)q->shape[0],
                sk_dtype_name(q->dtype));
    }
    return sk_cuda_attention(be, out, q, ranges, nranges, scale, NULL);
}

extern "C" sk_status sk_cuda_attention_fp8(sk_backend *be, sk_tensor *out, const sk_tensor *q,
                                           const sk_kv_range *ranges, int nranges, float scale)
{
    sk_cuda_ctx *c = sk_cuda(be);
    const int64_t Nq = q->shape[0], NH = q->shape[1], HD = q->shape[2], row = NH * HD;
    SK_CHECK(nranges <= SK_ATT_MAX_RANGES, SK_E_INVALID_ARG,
             "cuda attention fp8: %d KV ranges; at most %d supported", nranges, SK_ATT_MAX_RANGES);
    SK_CHECK(HD <= 2 * REF_T, SK_E_UNSUPPORTED,
             "cuda attention fp8: head dim %lld; at most %d supported", (long long)HD, 2 * REF_T);
    int64_t Nk = 0;
    for (int r = 0; r < nranges; r++) Nk += ranges[r].len;
    if (Nq == 0 || NH == 0 || Nk == 0) return SK_OK;
    f8_state *S = (f8_state *)c->cudnn_attn_fp8;
    if (!S) {
        if (c->capturing) return f8_decline(be, S, out, q, ranges, nranges, scale);
        S = (f8_state *)calloc(1, sizeof *S);
        SK_CHECK(S, SK_E_OOM, "cuda attention fp8: out of host memory");
        c->cudnn_attn_fp8 = S;
        S->last_o8 = -1;
        c->n_mallocs++;
        SK_CU("attention fp8", cudaMalloc(&S->sc, SL_N * 16));
        SK_CU("attention fp8", cudaMemsetAsync(S->sc, 0, SL_N * 16, c->stream));
#ifdef SK_HAVE_CUDNN
        cudnnHandle_t h = NULL;
        cudnnStatus_t cs = cudnnCreate(&h);
        if (cs == CUDNN_STATUS_SUCCESS) cs = cudnnSetStream(h, c->stream);
        if (cs != CUDNN_STATUS_SUCCESS) {
            SK_LOGW("cuda: cuDNN unavailable for FP8 attention (%s); the emulation kernel runs",
                    cudnnGetErrorString(cs));
            if (h) cudnnDestroy(h);
            S->broken = 1;
        } else {
            S->h = h;
        }
#else
        S->broken = 1;
#endif
    }
    const int dt = (int)q->dtype;
    int use_dnn = !S->broken && c->wgmma_ok && HD % 16 == 0 && q->dtype == SK_DTYPE_BF16 &&
                  out->dtype == SK_DTYPE_BF16 && !f8_force_ref();
    int64_t ws = 0;
    int o8 = 0, stats = 0;
#ifdef SK_HAVE_CUDNN
    f8_plan *pl = NULL;
    if (use_dnn) {
        pl = f8_get_plan(c, S, Nq, Nk, NH, HD, c->capturing);
        if (!pl) return f8_decline(be, S, out, q, ranges, nranges, scale);
        if (pl->valid != 1) use_dnn = 0;
        else { ws = pl->ws; o8 = pl->o8; stats = pl->stats; }
    }
#endif
    /* SK_CUDA_FP8_ATTN=cudnn: an error instead of the (slow) emulation kernel (benches) */
    const char *fe = getenv("SK_CUDA_FP8_ATTN");
    SK_CHECK(use_dnn || !fe || strcmp(fe, "cudnn") != 0, SK_E_UNSUPPORTED,
             "cuda attention fp8: no cuDNN FP8 plan for q%lld kv%lld %lldx%lld and "
             "SK_CUDA_FP8_ATTN=cudnn forbids the emulation kernel", (long long)Nq, (long long)Nk,
             (long long)NH, (long long)HD);
    const size_t q_off = 0, k_off = al256((size_t)(Nq * row)), v_off = k_off + al256((size_t)(Nk * row));
    const size_t o_off = v_off + al256((size_t)(Nk * row));
    const size_t st_off = o_off + (o8 ? al256((size_t)(Nq * row)) : 0);
    const size_t w_off = st_off + (stats ? al256((size_t)(NH * Nq) * 4) : 0);
    const size_t need = w_off + (size_t)ws;
    if (need > S->buf_bytes) {
        if (c->capturing) return f8_decline(be, S, out, q, ranges, nranges, scale);
        SK_TRY(sk_cuda_grow(c, &S->buf, &S->buf_bytes, need, "attention fp8"));
    }
    uint8_t *B = (uint8_t *)S->buf;
    /* 1-3: amax, scales, quantize */
    f8_segs G;
    memset(&G, 0, sizeof G);
    int vec = (row % 8) == 0 && (dt == SK_DTYPE_BF16 || dt == SK_DTYPE_F32);
    const size_t esz = dt == SK_DTYPE_BF16 ? 2 : dt == SK_DTYPE_F32 ? 4 : 0;
    SK_CHECK(esz, SK_E_DTYPE, "cuda attention fp8: activations %s; bf16 or f32 expected",
             sk_dtype_name(q->dtype));
    G.src[0] = q->data, G.dst[0] = B + q_off, G.n[0] = Nq * row, G.which[0] = 0;
    G.nseg = 1;
    int64_t j = 0;
    const int kv8 = ranges[0].k->dtype == SK_DTYPE_F8_E4M3; /* the FP8 KV cache */
    for (int r = 0; r < nranges; r++) {
        const sk_kv_range *g = &ranges[r];
        if (g->len <= 0) continue;
        const int f8kv = g->k->dtype == SK_DTYPE_F8_E4M3; /* the FP8 KV cache (ops checked) */
        for (int w = 1; w <= 2; w++) {
            const sk_tensor *t = w == 1 ? g->k : g->v;
            G.src[G.nseg] = (const char *)t->data + (size_t)(g->start * row) * (f8kv ? 1 : esz);
            G.dst[G.nseg] = B + (w == 1 ? k_off : v_off) + (size_t)(j * row);
            G.n[G.nseg] = g->len * row;
            G.which[G.nseg] = w;
            if (f8kv) {
                G.fsc[G.nseg] = (const float *)(w == 1 ? g->k_scale : g->v_scale)->data;
                G.foff[G.nseg] = g->start * row;
                G.fper[G.nseg] = g->scale_rows * row;
                if (G.fper[G.nseg] % 8 != 0 || G.foff[G.nseg] % 8 != 0) vec = 0;
            }
            G.nseg++;
        }
        j += g->len;
    }
    for (int s = 0; s < G.nseg; s++)
        if (((uintptr_t)G.src[s] % (G.fsc[s] ? 8 : 32)) != 0) vec = 0;
    const int64_t maxn = Nk * row > Nq * row ? Nk * row : Nq * row;
    int64_t bx = (maxn / (vec ? 8 : 1) + 255) / 256;
    if (bx > c->n_sm * 8) bx = c->n_sm * 8;
    if (bx < 1) bx = 1;
    /* SK_CUDA_FP8_ATTN_SKIPQ=1: reuse the last call's quantized operands (timing the
     * attention alone in tests/gpu; the output is then that of the old operands) */
    const int skipq = getenv("SK_CUDA_FP8_ATTN_SKIPQ") != NULL;
    if (!skipq) {
        SK_CU("attention fp8", cudaMemsetAsync(S->sc, 0, 3 * 16, c->stream));
        k_f8_amax<<<dim3((unsigned)bx, (unsigned)G.nseg), 256, 0, c->stream>>>(G, dt, vec, S->sc);
        SK_CU_LAUNCH("attention fp8 (amax)");
        k_f8_scales<<<1, 1, 0, c->stream>>>(S->sc, kv8);
        SK_CU_LAUNCH("attention fp8 (scales)");
        k_f8_quant<<<dim3((unsigned)bx, (unsigned)G.nseg), 256, 0, c->stream>>>(G, dt, vec, S->sc);
        SK_CU_LAUNCH("attention fp8 (quantize)");
    }
    /* review fix: amax_s / amax_o (two adjacent slots) zeroed on every call, in case
     * cuDNN max-reduces into them rather than storing, and so that they read 0 after
     * an emulation call (only the device check reads them; they were zeroed only at
     * creation) */
    SK_CU("attention fp8", cudaMemsetAsync(SLOT(S->sc, SL_AMAX_S), 0, 2 * 16, c->stream));
#ifdef SK_HAVE_CUDNN
    if (use_dnn) {
        float attn = scale; /* by value: read at execute time */
        const sk_status rs = f8_run(S, pl, o8 ? (void *)(B + o_off) : out->data, B + q_off,
                                    B + k_off, B + v_off, &attn, S->sc,
                                    stats ? (float *)(B + st_off) : NULL, ws ? B + w_off : NULL);
        if (rs == SK_OK) {
            S->last_o8 = o8;
            if (o8) {
                const int64_t n = Nq * row;
                k_f8_o_dequant<<<sk_cuda_blocks(n, 256), 256, 0, c->stream>>>(
                    (__nv_bfloat16 *)out->data, B + o_off, n, S->sc);
                SK_CU_LAUNCH("attention fp8 (output cast)");
            }
            return SK_OK;
        }
        /* review fix: a plan that finalized but does not execute (a status at
         * cudnnBackendExecute, before any kernel ran: nothing was written) is dropped
         * like a declined shape and the emulation kernel runs from the operands
         * already quantized; SK_CUDA_FP8_ATTN=cudnn keeps it an error (benches, the
         * device check's DiT shapes) */
        if (fe && !strcmp(fe, "cudnn")) return rs;
        SK_LOGW("cuda attention fp8: cuDNN's plan for q%lld kv%lld %lldx%lld (%s output%s) "
                "failed to execute (%s); dropped, the emulation kernel runs (slow)",
                (long long)Nq, (long long)Nk, (long long)NH, (long long)HD,
                o8 ? "e4m3" : "bf16", stats ? " + stats" : "", sk_error_message());
        cudnnBackendDestroyDescriptor((bdesc)pl->plan);
        pl->plan = NULL;
        pl->valid = -1;
        c->scratch_gen++; /* graphs recorded with that plan go stale */
    }
#endif
    S->last_o8 = -1;
    const size_t smem = (size_t)(HD + REF_T + 32) * sizeof(float);
    k_f8_att_ref<<<dim3((unsigned)Nq, (unsigned)NH), REF_T, smem, c->stream>>>(
        out->data, (int)out->dtype, B + q_off, B + k_off, B + v_off, S->sc, Nk, NH, HD, scale);
    SK_CU_LAUNCH("attention fp8 (emulation)");
    return SK_OK;
}

/* the device scalars (amax, scales) of the last call: for tests */
extern "C" sk_status sk_cuda_attention_fp8_scalars(sk_backend *be, float out[6])
{
    SK_CHECK(be && be->name && !strcmp(be->name, "cuda"), SK_E_UNSUPPORTED, "not a CUDA backend");
    sk_cuda_ctx *c = sk_cuda(be);
    f8_state *S = (f8_state *)c->cudnn_attn_fp8;
    SK_CHECK(S && S->sc, SK_E_INVALID_ARG, "cuda attention fp8: no call yet");
    float h[SL_N * 4];
    SK_CU("attention fp8", cudaStreamSynchronize(c->stream));
    SK_CU("attention fp8", cudaMemcpy(h, S->sc, sizeof h, cudaMemcpyDeviceToHost));
    out[0] = h[4 * SL_DESC_Q], out[1] = h[4 * SL_DESC_K], out[2] = h[4 * SL_DESC_V];
    out[3] = h[4 * SL_AMAX_S], out[4] = h[4 * SL_AMAX_O];
    /* review fix: the path of the last call, not that of any valid plan in the
     * cache (a shape cuDNN declined was reported with another shape's output) */
    out[5] = (float)S->last_o8;
    return SK_OK;
}

extern "C" void sk_cuda_attention_fp8_destroy(sk_cuda_ctx *c)
{
    f8_state *S = (f8_state *)c->cudnn_attn_fp8;
    if (!S) return;
#ifdef SK_HAVE_CUDNN
    for (int i = 0; i < F8_PLANS; i++)
        if (S->plans[i].plan) cudnnBackendDestroyDescriptor((bdesc)S->plans[i].plan);
    if (S->h) cudnnDestroy((cudnnHandle_t)S->h);
#endif
    if (S->buf) cudaFree(S->buf);
    if (S->sc) cudaFree(S->sc);
    free(S);
    c->cudnn_attn_fp8 = NULL;
}
