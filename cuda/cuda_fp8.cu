/* cuda_fp8.cu - the FP8 ops (runtime/core/fp8.h): row-wise e4m3 quantization of
 * activations and the e4m3 x e4m3 GEMM through cuBLASLt (Hopper and newer).
 *
 * quantize_rows: one block per row (few long rows: many, below); pass 1 the row's amax (fmaxf: NaN ignored),
 * the pair (inv, scale) exactly as the host computes it (IEEE f32 division),
 * pass 2 q = satfinite_e4m3(x * inv) by the hardware's cvt (round to nearest
 * even). The bytes and scales equal the CPU oracle's for the same input.
 *
 * linear_fp8: y^T[N,M] = op(w)[N,K] . q^T[K,M] in cuBLAS's column-major view
 * (A = w transposed, B = q: the "TN" layout FP8 needs). The two row scales are
 * applied in one of three ways, tried in this order per shape (the first the
 * library accepts is kept; SK_CUDA_FP8_MODE=0|1|2 forces one):
 *   0 "outer"  cuBLASLt's outer-vector scaling (A: sw per output feature, B: sx
 *              per token, CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F) with the
 *              bias / GELU_BIAS epilogue fused: one kernel;
 *   1 "outer+" the same scaling, then bias and activation in a small kernel;
 *   2 "plain"  an unscaled GEMM to bf16, then y = act(y * sx[m] * sw[n] + b[n])
 *              in the small kernel (works on every cuBLASLt with FP8).
 * SK_CUDA_FP8_FAST_ACCUM=1 turns on cuBLASLt's fast FP8 accumulation.
 */
#include <cuda_fp8.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_e4m3.cuh"
#include "cuda_internal.h"

/* ------------------------------------------------------------ quantize_rows */

/* fp8.h's power-of-two rules (the FP8 KV cache's frames): the same bits as the host's
 * frexpf / ldexpf (IEEE division, exact exponent arithmetic) */
__device__ __forceinline__ void fp8_row_scales_pow2(float amax, float *inv, float *scale)
{
    if (amax == 0.0f) { *inv = 1.0f; *scale = 1.0f; return; }
    if (!isfinite(amax)) { *inv = 0.0f; *scale = __int_as_float(0x7f800000); return; }
    int e = -126;
    const float r = __fdiv_rn(amax, 448.0f);
    if (r > 0x1p-126f) {
        const float m = frexpf(r, &e);
        if (m == 0.5f) e -= 1;
    }
    *scale = ldexpf(1.0f, e);
    *inv = ldexpf(1.0f, -e);
}

__device__ __forceinline__ void row_scales(int p2, float amax, float *inv, float *scale)
{
    if (p2) fp8_row_scales_pow2(amax, inv, scale);
    else fp8_row_scales(amax, inv, scale);
}

/* max |x| over this thread's elements of a row of K: element (or 8-element group with
 * VEC) i0, i0 + step, ... (NaN ignored by fmaxf) */
template <int VEC>
__device__ __forceinline__ float span_amax(const void *xr, int dt, int64_t K, int64_t i0, int64_t step)
{
    float amax = 0.0f;
    if (VEC) {
        for (int64_t c = i0; c < K / 8; c += step) {
            float v[8];
            sk_ld8(xr, dt, c, v);
#pragma unroll
            for (int k = 0; k < 8; k++) amax = fmaxf(amax, fabsf(v[k]));
        }
    } else {
        for (int64_t i = i0; i < K; i += step) amax = fmaxf(amax, fabsf(sk_ld(xr, dt, i)));
    }
    return amax;
}

template <int VEC>
__global__ void quantize_rows_kernel(uint8_t *__restrict__ q, float *__restrict__ s,
                                     const void *__restrict__ x, int dt, int64_t K, int p2)
{
    const int64_t row = blockIdx.x;
    const void *xr = (const char *)x + (size_t)row * K * (dt == SK_DTYPE_BF16 ? 2 : 4);
    uint8_t *qr = q + (size_t)row * K;
    __shared__ float red[32];
    const float amax = sk_blk_reduce(span_amax<VEC>(xr, dt, K, threadIdx.x, blockDim.x), 1, red);
    float inv, scale;
    row_scales(p2, amax, &inv, &scale);
    if (threadIdx.x == 0) s[row] = scale;
    if (VEC) {
        for (int64_t c = threadIdx.x; c < K / 8; c += blockDim.x) sk_e4m3_quant8(qr, xr, dt, c, inv);
    } else {
        for (int64_t i = threadIdx.x; i < K; i += blockDim.x) qr[i] = sk_e4m3_sat(sk_ld(xr, dt, i) * inv);
    }
}

/* Few long rows (the FP8 KV cache quantizes a whole frame, ~2.4M values, as one row):
 * many blocks per row. The row's amax by atomicMax of the f32 bits (non-negative:
 * their order is the integers'; NaN ignored by fmaxf as above) into s[row], every
 * block then derives the same (inv, scale) from it, and the last kernel turns s
 * into the scales: the bytes and scales the one-block kernel gives. */
template <int VEC>
__global__ void quantize_long_amax(float *__restrict__ s, const void *__restrict__ x, int dt,
                                   int64_t K)
{
    const int64_t row = blockIdx.y;
    const void *xr = (const char *)x + (size_t)row * K * (dt == SK_DTYPE_BF16 ? 2 : 4);
    __shared__ float red[32];
    const float amax = sk_blk_reduce(
        span_amax<VEC>(xr, dt, K, (int64_t)blockIdx.x * blockDim.x + threadIdx.x,
                       (int64_t)gridDim.x * blockDim.x), 1, red);
    if (threadIdx.x == 0 && amax > 0.0f)
        atomicMax(reinterpret_cast<unsigned *>(s + row), __float_as_uint(amax));
}

template <int VEC>
__global__ void quantize_long_rows(uint8_t *__restrict__ q, const float *__restrict__ s,
                                   const void *__restrict__ x, int dt, int64_t K, int p2)
{
    const int64_t row = blockIdx.y;
    const void *xr = (const char *)x + (size_t)row * K * (dt == SK_DTYPE_BF16 ? 2 : 4);
    uint8_t *qr = q + (size_t)row * K;
    float inv, scale;
    row_scales(p2, s[row], &inv, &scale);
    if (VEC) {
        for (int64_t c = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; c < K / 8;
             c += (int64_t)gridDim.x * blockDim.x)
            sk_e4m3_quant8(qr, xr, dt, c, inv);
    } else {
        for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < K;
             i += (int64_t)gridDim.x * blockDim.x)
            qr[i] = sk_e4m3_sat(sk_ld(xr, dt, i) * inv);
    }
}

__global__ void quantize_long_scales(float *s, int64_t M, int p2)
{
    SK_GRID_STRIDE(m, M)
    {
        float inv, scale;
        row_scales(p2, s[m], &inv, &scale);
        s[m] = scale;
    }
}

static sk_status quantize_rows(sk_backend *be, sk_tensor *q, sk_tensor *s, const sk_tensor *x, int p2)
{
    sk_cuda_ctx *c = sk_cuda(be);
    const int64_t M = x->shape[0], K = x->shape[1];
    if (M == 0 || K == 0) return SK_OK;
    SK_CHECK(M <= 2147483647LL, SK_E_SHAPE, "cuda quantize_rows: %lld rows", (long long)M);
    const int vec = K % 8 == 0 && sk_cuda_vec_ok(x->data, x->dtype) && ((uintptr_t)q->data % 8) == 0;
    if (K >= (1 << 17) && M <= 65535) { /* few long rows (frames of the FP8 KV cache) */
        int64_t bx = (K / (vec ? 8 : 1) + 255) / 256;
        const int64_t cap = (int64_t)c->n_sm * 4 / M + 1;
        if (bx > cap) bx = cap;
        const dim3 grid((unsigned)bx, (unsigned)M);
        float *sd = (float *)s->data;
        SK_CU("quantize_rows", cudaMemsetAsync(sd, 0, (size_t)M * sizeof(float), c->stream));
        if (vec) {
            quantize_long_amax<1><<<grid, 256, 0, c->stream>>>(sd, x->data, (int)x->dtype, K);
            quantize_long_rows<1><<<grid, 256, 0, c->stream>>>((uint8_t *)q->data, sd, x->data,
                                                               (int)x->dtype, K, p2);
        } else {
            quantize_long_amax<0><<<grid, 256, 0, c->stream>>>(sd, x->data, (int)x->dtype, K);
            quantize_long_rows<0><<<grid, 256, 0, c->stream>>>((uint8_t *)q->data, sd, x->data,
                                                               (int)x->dtype, K, p2);
        }
        quantize_long_scales<<<sk_cuda_blocks(M, 256), 256, 0, c->stream>>>(sd, M, p2);
        SK_CU_LAUNCH("quantize_rows (long rows)");
        return SK_OK;
    }
    const int threads = K >= 4096 ? 512 : 256;
    if (vec)
        quantize_rows_kernel<1><<<(unsigned)M, threads, 0, c->stream>>>(
            (uint8_t *)q->data, (float *)s->data, x->data, (int)x->dtype, K, p2);
    else
        quantize_rows_kernel<0><<<(unsigned)M, threads, 0, c->stream>>>(
            (uint8_t *)q->data, (float *)s->data, x->data, (int)x->dtype, K, p2);
    SK_CU_LAUNCH("quantize_rows");
    return SK_OK;
}

extern "C" sk_status sk_cuda_quantize_rows(sk_backend *be, sk_tensor *q, sk_tensor *s,
                                           const sk_tensor *x)
{
    return quantize_rows(be, q, s, x, 0);
}

extern "C" sk_status sk_cuda_quantize_rows_pow2(sk_backend *be, sk_tensor *q, sk_tensor *s,
                                                const sk_tensor *x)
{
    return quantize_rows(be, q, s, x, 1);
}

/* ------------------------------------------------------------ epilogue kernel */
/* y[m, n] = act(y * (sx[m] * sw[n]) + b[n]) (scaled = 1), or act(y + b[n]) */
__global__ void fp8_epilogue_kernel(void *y, int dt, const float *__restrict__ sx,
                                    const float *__restrict__ sw, const void *__restrict__ b,
                                    int bdt, int act, int scaled, int64_t M, int64_t N)
{
    SK_GRID_STRIDE(i, M * N)
    {
        const int64_t m = i / N, n = i - m * N;
        float v = sk_ld(y, dt, i);
        if (scaled) v = v * (sx[m] * sw[n]);
        if (b) v += sk_ld(b, bdt, n);
        sk_st(y, dt, i, sk_act_apply(act, v));
    }
}

/* ------------------------------------------------------------ linear_fp8 */
static unsigned ptr_align(const void *p)
{
    uintptr_t a = (uintptr_t)p;
    unsigned al = 256;
    while (al > 1 && (a % al)) al >>= 1;
    return al;
}

static int fp8_forced_mode(void)
{
    static int mode = -2;
    if (mode == -2) {
        const char *e = getenv("SK_CUDA_FP8_MODE");
        mode = (e && *e >= '0' && *e <= '2' && !e[1]) ? *e - '0' : -1;
    }
    return mode;
}

static int fp8_fast_accum(void)
{
    static int v = -1;
    if (v < 0) {
        const char *e = getenv("SK_CUDA_FP8_FAST_ACCUM");
        v = e && *e && strcmp(e, "0") != 0;
    }
    return v;
}

/* The descriptor of one mode; *ok = 0 (no error) when the library declines it. */
/* probing (no plan yet for the shape): a failing cublasLtMatmul counts as a refusal
 * of the mode too (the next one is tried); with a cached plan it is an error */
static sk_status fp8_try_mode(sk_backend *be, int mode, int64_t M, int64_t N, int64_t K,
                              sk_dtype T, const void *A, const void *B, void *D, const float *sw,
                              const float *sx, const void *bias, sk_act act,
                              sk_cuda_lt_plan *plan, int probing, int *ok, int *post)
{
    sk_cuda_ctx *c = sk_cuda(be);
    *ok = 0;
    *post = 0;
    cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_DEFAULT;
    if (mode == 0) {
        if (act == SK_ACT_GELU_TANH) epi = bias ? CUBLASLT_EPILOGUE_GELU_BIAS : CUBLASLT_EPILOGUE_GELU;
        else if (act == SK_ACT_RELU) epi = bias ? CUBLASLT_EPILOGUE_RELU_BIAS : CUBLASLT_EPILOGUE_RELU;
        else {
            if (bias) epi = CUBLASLT_EPILOGUE_BIAS;
            if (act != SK_ACT_NONE) *post = 1; /* the activation alone after it */
        }
    } else {
        *post = 1;
    }
    const cudaDataType_t dt = T == SK_DTYPE_BF16 ? CUDA_R_16BF : CUDA_R_32F;
    cublasLtMatmulDesc_t op = NULL;
    cublasLtMatrixLayout_t la = NULL, lb = NULL, lc = NULL;
    cublasLtMatmulPreference_t pref = NULL;
    sk_status st = SK_OK;
    cublasStatus_t cs = CUBLAS_STATUS_SUCCESS;
    const cublasOperation_t tA = CUBLAS_OP_T, tB = CUBLAS_OP_N;
    const int32_t outer = CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F;
    const int8_t fast = (int8_t)fp8_fast_accum();
    /* a library refusal of this mode's descriptor: not an error, the next mode is tried */
#define TRY(call)                                                                              \
    do {                                                                                       \
        cs = (call);                                                                           \
        if (cs != CUBLAS_STATUS_SUCCESS) goto done;                                            \
    } while (0)
    TRY(cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    TRY(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &tA, sizeof tA));
    TRY(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &tB, sizeof tB));
    TRY(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_FAST_ACCUM, &fast, sizeof fast));
    if (mode <= 1) {
        TRY(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_A_SCALE_MODE, &outer,
                                           sizeof outer));
        TRY(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_B_SCALE_MODE, &outer,
                                           sizeof outer));
        TRY(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &sw,
                                           sizeof sw));
        TRY(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &sx,
                                           sizeof sx));
    }
    TRY(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi));
    if (epi != CUBLASLT_EPILOGUE_DEFAULT && bias) {
        const cudaDataType_t bt = dt;
        TRY(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias,
                                           sizeof bias));
        TRY(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bt,
                                           sizeof bt));
    }
    TRY(cublasLtMatrixLayoutCreate(&la, CUDA_R_8F_E4M3, (uint64_t)K, (uint64_t)N, K));
    TRY(cublasLtMatrixLayoutCreate(&lb, CUDA_R_8F_E4M3, (uint64_t)K, (uint64_t)M, K));
    TRY(cublasLtMatrixLayoutCreate(&lc, dt, (uint64_t)N, (uint64_t)M, N));
    if (!plan->valid) {
        TRY(cublasLtMatmulPreferenceCreate(&pref));
        size_t wsb = c->lt_ws_bytes;
        TRY(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                 &wsb, sizeof wsb));
        /* the heuristic assumes 256-byte aligned operands unless told otherwise */
        uint32_t a32 = ptr_align(A);
        if (ptr_align(B) < a32) a32 = ptr_align(B);
        if (ptr_align(D) < a32) a32 = ptr_align(D);
        if (bias && ptr_align(bias) < a32) a32 = ptr_align(bias);
        TRY(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES,
                                                 &a32, sizeof a32));
        TRY(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
                                                 &a32, sizeof a32));
        TRY(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES,
                                                 &a32, sizeof a32));
        TRY(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES,
                                                 &a32, sizeof a32));
        cublasLtMatmulHeuristicResult_t res;
        int nres = 0;
        memset(&res, 0, sizeof res);
        TRY(cublasLtMatmulAlgoGetHeuristic(c->lt, op, la, lb, lc, lc, pref, 1, &res, &nres));
        if (nres < 1) goto done;
        plan->algo = res.algo;
        plan->valid = 1;
    }
    {
        const float alpha = 1.0f, beta = 0.0f;
        cs = cublasLtMatmul(c->lt, op, &alpha, A, la, B, lb, &beta, D, lc, D, lc, &plan->algo,
                            c->lt_ws, c->lt_ws_bytes, c->stream);
        if (cs == CUBLAS_STATUS_SUCCESS) {
            *ok = 1;
        } else if (probing) {
            cudaGetLastError();
            plan->valid = 0;
        } else {
            st = SK_ERR(SK_E_CUDA, "cuda linear_fp8 [M=%lld K=%lld N=%lld, mode %d]: cuBLASLt "
                        "%s in cublasLtMatmul", (long long)M, (long long)K, (long long)N, mode,
                        cublasGetStatusString(cs));
        }
    }
done:
#undef TRY
    if (pref) cublasLtMatmulPreferenceDestroy(pref);
    if (la) cublasLtMatrixLayoutDestroy(la);
    if (lb) cublasLtMatrixLayoutDestroy(lb);
    if (lc) cublasLtMatrixLayoutDestroy(lc);
    if (op) cublasLtMatmulDescDestroy(op);
    if (!*ok && cs != CUBLAS_STATUS_SUCCESS)
        SK_LOGD("cuda linear_fp8 [M=%lld K=%lld N=%lld]: mode %d declined (%s)", (long long)M,
                (long long)K, (long long)N, mode, cublasGetStatusString(cs));
    return st;
}

extern "C" sk_status sk_cuda_linear_fp8(sk_backend *be, sk_tensor *y, const sk_tensor *q,
                                        const sk_tensor *sx, const sk_tensor *w,
                                        const sk_tensor *sw, const sk_tensor *b, sk_act act)
{
    sk_cuda_ctx *c = sk_cuda(be);
    const sk_dtype T = y->dtype;
    const int64_t M = q->shape[0], K = q->shape[1], N = w->shape[0];
    if (M == 0 || N == 0) return SK_OK;
    SK_CHECK(T == SK_DTYPE_BF16 || T == SK_DTYPE_F32, SK_E_DTYPE,
             "cuda linear_fp8: output dtype %s; expected bf16 or f32", sk_dtype_name(T));
    SK_CHECK(K % 16 == 0 && N % 16 == 0, SK_E_SHAPE,
             "cuda linear_fp8 [M=%lld K=%lld N=%lld]: FP8 GEMMs need K and N multiples of 16 "
             "(cuBLASLt); use --dtype bf16 for this model", (long long)M, (long long)K,
             (long long)N);
    SK_CHECK(((uintptr_t)q->data | (uintptr_t)w->data | (uintptr_t)y->data) % 16 == 0,
             SK_E_INVALID_ARG, "cuda linear_fp8: operands must be 16-byte aligned");
    const void *bias = b ? b->data : NULL;
    const float *swp = (const float *)sw->data, *sxp = (const float *)sx->data;

    /* plan: the shared cuBLASLt plan table, keyed with a_t = fp8 and c_t = mode */
    const int forced = fp8_forced_mode();
    unsigned al = ptr_align(w->data);
    if (ptr_align(q->data) < al) al = ptr_align(q->data);
    if (ptr_align(y->data) < al) al = ptr_align(y->data);
    if (bias && ptr_align(bias) < al) al = ptr_align(bias);
    const unsigned h = (unsigned)((M * 131 + N * 31 + K * 7 + 977 + (int)T * 3 + (int)act * 17 +
                                   (bias ? 5 : 0) + al) % SK_CUDA_LT_PLANS);
    sk_cuda_lt_plan *plan = NULL;
    for (int probe = 0; probe < SK_CUDA_LT_PLANS; probe++) {
        sk_cuda_lt_plan *p = &c->plans[(h + probe) % SK_CUDA_LT_PLANS];
        if (!p->valid) { plan = p; break; }
        if (p->a_t == (int)SK_DTYPE_F8_E4M3 && p->m == M && p->n == N && p->k == K &&
            p->bias_t == (int)T && p->epi == (int)act + 32 * (bias != NULL) &&
            p->align == (int)al && (forced < 0 || p->c_t == forced)) {
            plan = p;
            break;
        }
    }
    if (!plan) { plan = &c->plans[h]; plan->valid = 0; }
    int ok = 0, post = 0;
    if (plan->valid) {
        SK_TRY(fp8_try_mode(be, plan->c_t, M, N, K, T, w->data, q->data, y->data, swp, sxp, bias,
                            act, plan, 0, &ok, &post));
        SK_CHECK(ok, SK_E_CUDA, "cuda linear_fp8: a cached plan was declined");
        if (post) goto epilogue;
        return SK_OK;
    }
    for (int mode = forced < 0 ? 0 : forced; mode <= (forced < 0 ? 2 : forced); mode++) {
        plan->valid = 0;
        SK_TRY(fp8_try_mode(be, mode, M, N, K, T, w->data, q->data, y->data, swp, sxp, bias, act,
                            plan, 1, &ok, &post));
        if (!ok) continue;
        plan->a_t = (int)SK_DTYPE_F8_E4M3;
        plan->m = M; plan->n = N; plan->k = K;
        plan->bias_t = (int)T;
        plan->epi = (int)act + 32 * (bias != NULL);
        plan->c_t = mode;
        plan->align = (int)al;
        static int told[3];
        static const char *const names[3] = {
            "cuBLASLt outer-vector row scales, bias/GELU fused", "cuBLASLt outer-vector row "
            "scales, bias/activation in a second kernel", "unscaled cuBLASLt GEMM, scales, bias "
            "and activation in a second kernel"};
        if (!told[mode]) SK_LOGI("cuda linear_fp8: mode %d (%s) from [M=%lld K=%lld N=%lld] on",
                                 mode, names[mode], (long long)M, (long long)K, (long long)N);
        told[mode] = 1;
        if (post) goto epilogue;
        return SK_OK;
    }
    plan->valid = 0;
    return SK_ERR(SK_E_CUDA, "cuda linear_fp8 [M=%lld K=%lld N=%lld]: cuBLASLt offers no FP8 "
                  "algorithm on this GPU (FP8 GEMMs need compute capability 8.9 or newer); use "
                  "--dtype bf16", (long long)M, (long long)K, (long long)N);
epilogue:
    {
        const int scaled = plan->c_t == 2;
        if (!scaled && !bias && act == SK_ACT_NONE) return SK_OK;
        fp8_epilogue_kernel<<<sk_cuda_blocks(M * N, 256), 256, 0, c->stream>>>(
            y->data, (int)T, sxp, swp, (plan->c_t == 0) ? NULL : bias, b ? (int)b->dtype : 0,
            (int)act, scaled, M, N);
        SK_CU_LAUNCH("linear_fp8 epilogue");
        return SK_OK;
    }
}
