/* cuda_attention_cudnn.cu - bf16 self-attention through cuDNN's fused flash
 * attention (the runtime-fusion "SDPA" engine), driven by the backend
 * (graph) API.
 *
 * At the DiT's self-attention shape (q 4680, kv 18720, 12 heads x 128) our
 * own kernels reach ~296 TFLOP/s; cuDNN's fused SDPA reaches >500 on the same
 * H100. The graph is the pattern cuDNN's engine recognises:
 *
 *   S = Q K^T (matmul, f32)  ->  S * scale (pointwise, by-value scalar)
 *   M = rowmax(S)  ->  E = exp(S - M)  ->  Z = rowsum(E)  ->  P = E / Z (bf16)
 *   O = P V (matmul, bf16 out)            [+ Stats = M + log(Z), f32]
 *
 * Q/K/V/O keep our [tokens, NH, HD] layout (cuDNN's "BSHD" strides), so K
 * and V are read in place from the KV pool. The op takes a list of KV
 * ranges that need not be adjacent. Each range runs one graph with the Stats
 * output (the range's log-sum-exp per query row; cuDNN 9.14's heuristics
 * offer no engine for the graph without it); the first range writes its
 * partial output into `out`, the others into a buffer, and a small kernel
 * merges them (flash-decoding's LSE merge): out = sum_r exp(L_r - L) O_r
 * with L = log sum_r exp(L_r). Ranges that are adjacent rows of one pool are
 * joined first. Nothing is copied.
 *
 * Plans are cached per (Nq, Nk, NH, HD, stats); the scale is a by-value
 * tensor, so one plan serves every scale. Built only with cuDNN
 * (SK_HAVE_CUDNN); the handle is made at the first call. Any failure to
 * build a plan marks that shape as declined and the caller falls back to the
 * own kernels (cuda_flash_wgmma.cu / cuda_flash_mma.cu).
 *
 * CUDA graphs (cuda_graph.cu): cudnnBackendExecute records like any launch.
 * While a graph is recorded nothing is created, built or allocated here: a
 * shape whose plans or buffer are not ready declines (the own kernel is
 * recorded, with a warning). Growing the buffer or evicting a plan bumps
 * scratch_gen, so graphs that used the old ones go stale.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cuda_internal.h"
#include "cuda_attention.h"

/* merge of per-range partial outputs: out[i,h,:] = sum_r w_r O_r[i,h,:],
 * w_r = exp(L_r[h,i] - L) / sum_r' exp(L_r'[h,i] - L); one thread per 8
 * elements (16 bytes). parts[0] is out itself (read before written). */
typedef struct {
    const __nv_bfloat16 *o[SK_ATT_MAX_RANGES];
    const float *lse[SK_ATT_MAX_RANGES];
    int n;
} att_parts;

__global__ void k_att_lse_merge(__nv_bfloat16 *out, att_parts P, int64_t Nq, int64_t NH,
                                int64_t HD)
{
    const int64_t per_row = HD / 8;
    const int64_t total = Nq * NH * per_row;
    for (int64_t t = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; t < total;
         t += (int64_t)gridDim.x * blockDim.x) {
        const int64_t row = t / per_row, c8 = t - row * per_row; /* row = i*NH + h */
        const int64_t i = row / NH, h = row - i * NH;
        float L[SK_ATT_MAX_RANGES];
        float mx = -INFINITY;
        for (int r = 0; r < P.n; r++) {
            L[r] = P.lse[r][h * Nq + i];
            mx = fmaxf(mx, L[r]);
        }
        float acc[8];
#pragma unroll
        for (int e = 0; e < 8; e++) acc[e] = 0.0f;
        float wsum = 0.0f;
        for (int r = 0; r < P.n; r++) {
            const float w = (L[r] == -INFINITY || mx == -INFINITY) ? 0.0f : __expf(L[r] - mx);
            wsum += w;
            const uint4 raw = *reinterpret_cast<const uint4 *>(P.o[r] + row * HD + c8 * 8);
            const __nv_bfloat162 *b2 = reinterpret_cast<const __nv_bfloat162 *>(&raw);
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const float2 f = __bfloat1622float2(b2[e]);
                acc[2 * e] += w * f.x;
                acc[2 * e + 1] += w * f.y;
            }
        }
        const float inv = wsum > 0.0f ? 1.0f / wsum : 0.0f;
        uint4 res;
        __nv_bfloat162 *r2 = reinterpret_cast<__nv_bfloat162 *>(&res);
#pragma unroll
        for (int e = 0; e < 4; e++) r2[e] = __floats2bfloat162_rn(acc[2 * e] * inv, acc[2 * e + 1] * inv);
        *reinterpret_cast<uint4 *>(out + row * HD + c8 * 8) = res;
    }
}

#ifdef SK_HAVE_CUDNN
#include "cuda_cudnn_graph.h"

#define ATT_PLANS 32

typedef struct {
    int valid;    /* 1: plan built; -1: cuDNN declined this shape */
    int64_t nq, nk, nh, hd;
    int stats;
    cudnnBackendDescriptor_t plan;
    int64_t ws;
} att_plan;

typedef struct {
    cudnnHandle_t h;
    int broken;
    att_plan plans[ATT_PLANS];
    void *buf; /* partial outputs, stats, workspace */
    size_t buf_bytes;
    int warned_capture;
} att_state;

enum { UID_Q = 1, UID_K, UID_V, UID_O, UID_SCALE, UID_STATS, UID_VIRT = 100 };

/* Builds the SDPA graph for one shape and the first execution plan that
 * cuDNN's heuristics offer and that finalizes. 0 on success. */
static int build_plan(att_state *S, att_plan *p, char *err, size_t errn)
{
    const int64_t Nq = p->nq, Nk = p->nk, NH = p->nh, HD = p->hd;
    enum { NT = 16, NOPS = 12 };
    bdesc D[NOPS + NT] = {0}, *ops = D, *T = D + NOPS; /* destroyed in this order */
    int nops = 0;
    int64_t picked = -1, offered = 0;
    int rc = -1;
    const cudnnDataType_t BF = CUDNN_DATA_BFLOAT16, F32 = CUDNN_DATA_FLOAT;
    /* Q, O: [1, NH, Nq, HD] with our [Nq, NH, HD] strides; K^T: [1, NH, HD, Nk];
     * V: [1, NH, Nk, HD] */
    const sk_dnn_sdpa_dims L = sk_dnn_sdpa_layout(Nq, Nk, NH, HD);
    int64_t vu = UID_VIRT;
    enum { tQ, tK, tV, tO, tSC, tST, tS1, tS2, tM, tS3, tS4, tZ, tP, tLZ };
    SK_DNN(sk_dnn_tensor(&T[tQ], UID_Q, BF, L.qd, L.qs, 0, 0));
    SK_DNN(sk_dnn_tensor(&T[tK], UID_K, BF, L.kd, L.ks, 0, 0));
    SK_DNN(sk_dnn_tensor(&T[tV], UID_V, BF, L.vd, L.vs, 0, 0));
    SK_DNN(sk_dnn_tensor(&T[tO], UID_O, BF, L.qd, L.qs, 0, 0));
    SK_DNN(sk_dnn_tensor(&T[tSC], UID_SCALE, F32, L.one, L.one, 0, 1));
    SK_DNN(sk_dnn_tensor(&T[tS1], vu++, F32, L.sd, L.ss, 1, 0));
    SK_DNN(sk_dnn_tensor(&T[tS2], vu++, F32, L.sd, L.ss, 1, 0));
    SK_DNN(sk_dnn_tensor(&T[tM], vu++, F32, L.rd, L.rs, 1, 0));
    SK_DNN(sk_dnn_tensor(&T[tS3], vu++, F32, L.sd, L.ss, 1, 0));
    SK_DNN(sk_dnn_tensor(&T[tS4], vu++, F32, L.sd, L.ss, 1, 0));
    SK_DNN(sk_dnn_tensor(&T[tZ], vu++, F32, L.rd, L.rs, 1, 0));
    SK_DNN(sk_dnn_tensor(&T[tP], vu++, BF, L.sd, L.ss, 1, 0));
    SK_DNN(sk_dnn_matmul(&ops[nops++], T[tQ], T[tK], T[tS1]));
    SK_DNN(sk_dnn_pointwise(&ops[nops++], CUDNN_POINTWISE_MUL, T[tS1], T[tSC], T[tS2]));
    SK_DNN(sk_dnn_reduction(&ops[nops++], CUDNN_REDUCE_TENSOR_MAX, T[tS2], T[tM]));
    SK_DNN(sk_dnn_pointwise(&ops[nops++], CUDNN_POINTWISE_SUB, T[tS2], T[tM], T[tS3]));
    SK_DNN(sk_dnn_pointwise(&ops[nops++], CUDNN_POINTWISE_EXP, T[tS3], NULL, T[tS4]));
    SK_DNN(sk_dnn_reduction(&ops[nops++], CUDNN_REDUCE_TENSOR_ADD, T[tS4], T[tZ]));
    if (p->stats) {
        SK_DNN(sk_dnn_tensor(&T[tST], UID_STATS, F32, L.rd, L.rs, 0, 0));
        SK_DNN(sk_dnn_tensor(&T[tLZ], vu++, F32, L.rd, L.rs, 1, 0));
        SK_DNN(sk_dnn_pointwise(&ops[nops++], CUDNN_POINTWISE_LOG, T[tZ], NULL, T[tLZ]));
        SK_DNN(sk_dnn_pointwise(&ops[nops++], CUDNN_POINTWISE_ADD, T[tM], T[tLZ], T[tST]));
    }
    SK_DNN(sk_dnn_pointwise(&ops[nops++], CUDNN_POINTWISE_DIV, T[tS4], T[tZ], T[tP]));
    SK_DNN(sk_dnn_matmul(&ops[nops++], T[tP], T[tV], T[tO]));

    if (sk_dnn_first_plan(S->h, ops, nops, "SK_CUDA_CUDNN_ATTN_CFG", &p->plan, &p->ws, &picked,
                          &offered, err, errn))
        goto fail;
    if (picked >= 0)
        SK_LOGD("cuda attention (cuDNN): q%lld kv%lld %lldx%lld%s: engine config %lld of %lld, "
                "workspace %lld B",
                (long long)Nq, (long long)Nk, (long long)NH, (long long)HD,
                p->stats ? " +stats" : "", (long long)picked, (long long)offered, (long long)p->ws);
    rc = 0;
fail: /* success too: the plan keeps what it needs of the graph */
    sk_dnn_destroy(D, NOPS + NT);
    return rc;
}

/* the cached plan of a shape; builds it unless `lookup_only` (then NULL when
 * there is none yet) */
static att_plan *get_plan(sk_cuda_ctx *cx, att_state *S, int64_t Nq, int64_t Nk, int64_t NH,
                          int64_t HD, int stats, int lookup_only)
{
    unsigned hsh = (unsigned)((((Nq * 131 + Nk) * 131 + NH) * 131 + HD) * 2 + stats) % ATT_PLANS;
    att_plan *p = sk_dnn_plan_slot(S->plans, ATT_PLANS, hsh, lookup_only, &cx->scratch_gen,
                                   [&](const att_plan *c) {
                                       return c->nq == Nq && c->nk == Nk && c->nh == NH &&
                                              c->hd == HD && c->stats == stats;
                                   });
    if (!p || p->valid) return p; /* cached (or declined), or lookup_only and none */
    p->nq = Nq;
    p->nk = Nk;
    p->nh = NH;
    p->hd = HD;
    p->stats = stats;
    char err[256] = "";
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    const int rc = build_plan(S, p, err, sizeof err);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (rc == 0) {
        p->valid = 1;
        SK_LOGD("cuda attention (cuDNN): plan for q%lld kv%lld built in %.1f ms", (long long)Nq,
                (long long)Nk, (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) * 1e-6);
    } else {
        p->valid = -1;
        SK_LOGI("cuda attention: cuDNN declines q%lld kv%lld %lldx%lld%s (%s); own kernel runs",
                (long long)Nq, (long long)Nk, (long long)NH, (long long)HD,
                stats ? " +stats" : "", err);
    }
    return p;
}

/* grows the partials/workspace buffer (never while a graph is recorded: the
 * caller declines then). Recorded graphs that used the old buffer go stale
 * through scratch_gen, as for the scratch buffer (cuda_graph.cu). */
static sk_status att_buf(sk_cuda_ctx *c, att_state *S, size_t bytes)
{
    return sk_cuda_grow(c, &S->buf, &S->buf_bytes, bytes, "attention (cuDNN)");
}

/* while a graph is recorded nothing may be created, built or allocated: a
 * shape that was not run once before recording falls back to the own
 * kernels inside the graph (logged once) */
static void decline_in_capture(att_state *S, int64_t Nq, int64_t NH, int64_t HD)
{
    if (S && S->warned_capture) return;
    if (S) S->warned_capture = 1;
    SK_LOGW("cuda attention: q%lld %lldx%lld first seen while a graph is recorded; the graph "
            "uses the own kernel (run the shape once before recording for cuDNN)",
            (long long)Nq, (long long)NH, (long long)HD);
}

static sk_status run_plan(att_state *S, att_plan *p, void *o, const void *q, const void *k,
                          const void *v, float *scale, float *stats, void *ws)
{
    int64_t uids[6] = {UID_Q, UID_K, UID_V, UID_O, UID_SCALE, UID_STATS};
    void *ptrs[6] = {(void *)q, (void *)k, (void *)v, o, scale, stats};
    const int64_t n = p->stats ? 6 : 5;
    const cudnnStatus_t s = sk_dnn_execute(S->h, p->plan, n, uids, ptrs, ws);
    if (s != CUDNN_STATUS_SUCCESS)
        return SK_ERR(SK_E_CUDA, "cuda attention (cuDNN): %s", cudnnGetErrorString(s));
    return SK_OK;
}

extern "C" sk_status sk_cuda_attention_cudnn(sk_backend *be, void *out, const void *q,
                                             const sk_att_ranges *R0, int64_t Nq, int64_t NH,
                                             int64_t HD, float scale, int *done)
{
    *done = 0;
    sk_cuda_ctx *c = sk_cuda(be);
    att_state *S = (att_state *)c->cudnn_attn;
    if (!S && c->capturing) {
        decline_in_capture(S, Nq, NH, HD);
        return SK_OK;
    }
    if (!S) {
        S = (att_state *)calloc(1, sizeof *S);
        SK_CHECK(S, SK_E_OOM, "cuda attention: out of host memory for the cuDNN state");
        c->cudnn_attn = S;
        cudnnStatus_t cs = cudnnCreate(&S->h);
        if (cs == CUDNN_STATUS_SUCCESS) cs = cudnnSetStream(S->h, c->stream);
        if (cs != CUDNN_STATUS_SUCCESS) {
            SK_LOGW("cuda: cuDNN unavailable for attention (%s); own kernels run",
                    cudnnGetErrorString(cs));
            S->broken = 1;
        } else {
            SK_LOGI("cuda: cuDNN %zu fused attention for large bf16 shapes", cudnnGetVersion());
        }
    }
    if (S->broken) return SK_OK;

    /* join ranges that are adjacent rows of one pool */
    sk_att_ranges R;
    memset(&R, 0, sizeof R);
    for (int r = 0; r < R0->n; r++) {
        if (R.n > 0 && R.k[R.n - 1] == R0->k[r] && R.v[R.n - 1] == R0->v[r] &&
            R.start[R.n - 1] + R.len[R.n - 1] == R0->start[r]) {
            R.len[R.n - 1] += R0->len[r];
            continue;
        }
        R.k[R.n] = R0->k[r];
        R.v[R.n] = R0->v[r];
        R.start[R.n] = R0->start[r];
        R.len[R.n] = R0->len[r];
        R.n++;
    }
    if (R.n == 0) return SK_OK;
    /* always the Stats form: cuDNN 9.14's heuristics offer no engine for the
     * graph without it (measured on H100); one range just ignores them */
    const int stats = 1;
    att_plan *pl[SK_ATT_MAX_RANGES];
    size_t ws = 0;
    for (int r = 0; r < R.n; r++) {
        pl[r] = get_plan(c, S, Nq, R.len[r], NH, HD, stats, c->capturing);
        if (!pl[r]) {
            decline_in_capture(S, Nq, NH, HD);
            return SK_OK;
        }
        if (pl[r]->valid != 1) return SK_OK; /* declined: the caller's kernels run */
        if ((size_t)pl[r]->ws > ws) ws = (size_t)pl[r]->ws;
    }
    const size_t on = (size_t)Nq * NH * HD * 2, ln = (size_t)Nq * NH * sizeof(float);
    const size_t o_off = 0, l_off = (size_t)(R.n - 1) * on;
    const size_t w_off = (l_off + R.n * ln + 255) & ~(size_t)255;
    if (c->capturing && w_off + ws > S->buf_bytes) {
        decline_in_capture(S, Nq, NH, HD);
        return SK_OK;
    }
    /* When the buffer must grow, it grows for one range more than this call has: a
     * ring of KV slots that wraps (fifo's window after ring_len frames, the sink
     * policy's window) adds a range later, and that first wrap may come in a measured
     * chunk loop after a warm-up too short to see it (bench --kv-policy fifo
     * --kv-window 21: the 24-slot ring first wraps at chunk 8) */
    size_t need = w_off + ws;
    if (need > S->buf_bytes && R.n < SK_ATT_MAX_RANGES) {
        const size_t l_more = (size_t)R.n * on, w_more = (l_more + (R.n + 1) * ln + 255) & ~(size_t)255;
        need = w_more + ws;
    }
    sk_status st = att_buf(c, S, need);
    if (st != SK_OK) return st;
    char *buf = (char *)S->buf;
    att_parts P;
    memset(&P, 0, sizeof P);
    P.n = R.n;
    float sc = scale; /* by-value: read at execute time */
    const size_t row = (size_t)NH * HD * 2;
    for (int r = 0; r < R.n; r++) {
        void *o = r == 0 ? out : buf + o_off + (size_t)(r - 1) * on;
        float *l = (float *)(buf + l_off + (size_t)r * ln);
        P.o[r] = (const __nv_bfloat16 *)o;
        P.lse[r] = l;
        st = run_plan(S, pl[r], o, q, (const char *)R.k[r] + (size_t)R.start[r] * row,
                      (const char *)R.v[r] + (size_t)R.start[r] * row, &sc, stats ? l : NULL,
                      ws ? buf + w_off : NULL);
        if (st != SK_OK) return st;
    }
    if (R.n > 1) {
        const int64_t total = Nq * NH * (HD / 8);
        int blocks = (int)((total + 255) / 256);
        if (blocks > c->n_sm * 16) blocks = c->n_sm * 16;
        k_att_lse_merge<<<blocks, 256, 0, c->stream>>>((__nv_bfloat16 *)out, P, Nq, NH, HD);
        SK_CU_LAUNCH("attention (cuDNN range merge)");
    }
    *done = 1;
    return SK_OK;
}

extern "C" void sk_cuda_attention_cudnn_destroy(sk_cuda_ctx *c)
{
    att_state *S = (att_state *)c->cudnn_attn;
    if (!S) return;
    for (int i = 0; i < ATT_PLANS; i++)
        if (S->plans[i].plan) cudnnBackendDestroyDescriptor(S->plans[i].plan);
    if (S->buf) cudaFree(S->buf);
    if (S->h) cudnnDestroy(S->h);
    free(S);
    c->cudnn_attn = NULL;
}

#else /* no cuDNN in this build */

extern "C" sk_status sk_cuda_attention_cudnn(sk_backend *be, void *out, const void *q,
                                             const sk_att_ranges *R, int64_t Nq, int64_t NH,
                                             int64_t HD, float scale, int *done)
{
    (void)be; (void)out; (void)q; (void)R; (void)Nq; (void)NH; (void)HD; (void)scale;
    *done = 0;
    return SK_OK;
}

extern "C" void sk_cuda_attention_cudnn_destroy(sk_cuda_ctx *c) { (void)c; }

#endif
