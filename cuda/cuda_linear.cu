/* cuda_linear.cu - y[M,N] = act(x[M,K] . w[N,K]^T + b[N]) through cuBLASLt.
 *
 * Row-major y = x w^T is, in cuBLAS's column-major view, y^T[N,M] = op(w)[N,K] .
 * x^T[K,M] with op = transpose on w. Operands are the activation dtype (bf16
 * with f32 accumulation, or plain f32 with CUBLAS_COMPUTE_32F: no TF32, so the
 * f32 mode stays a parity mode). Weights/biases of another dtype are converted
 * into the scratch buffer first (the loaders normally store them in the
 * activation dtype, so this is the rare path).
 *
 * The bias and tanh-GELU are fused into the GEMM epilogue (CUBLASLT_EPILOGUE_
 * BIAS / GELU_BIAS; cuBLASLt's GELU is the tanh approximation, the one
 * PyTorch also maps to it); other activations run as a separate pass.
 * Algorithms from the heuristic are cached per (shape, dtype, epilogue,
 * alignment) so steady-state calls do no search.
 */
#include <string.h>

#include "cuda_internal.h"

static unsigned ptr_align(const void *p)
{
    uintptr_t a = (uintptr_t)p;
    unsigned al = 256;
    while (al > 1 && (a % al)) al >>= 1;
    return al;
}

static cudaDataType_t cuda_type(sk_dtype t)
{
    switch (t) {
    case SK_DTYPE_BF16: return CUDA_R_16BF;
    case SK_DTYPE_F16: return CUDA_R_16F;
    default: return CUDA_R_32F;
    }
}

static size_t round_up(size_t v, size_t a) { return (v + a - 1) / a * a; }

extern "C" sk_status sk_cuda_linear(sk_backend *be, sk_tensor *y, const sk_tensor *x,
                                    const sk_tensor *w, const sk_tensor *b, sk_act act)
{
    sk_cuda_ctx *c = sk_cuda(be);
    const sk_dtype T = y->dtype;
    SK_CHECK(T == SK_DTYPE_BF16 || T == SK_DTYPE_F32, SK_E_DTYPE,
             "cuda linear: output dtype %s; expected bf16 or f32", sk_dtype_name(T));
    const int64_t K = x->shape[x->ndim - 1];
    const int64_t M = K ? sk_tensor_numel(x) / K : 0;
    const int64_t N = w->shape[0];
    if (M == 0 || N == 0) return SK_OK;
    SK_CHECK(K > 0, SK_E_SHAPE, "cuda linear: reduction dim K is 0");

    /* operands in T: convert what is not (into scratch, 256-byte aligned pieces) */
    size_t need = 0, off_w = 0, off_b = 0, off_x = 0;
    if (w->dtype != T) { off_w = need; need += round_up((size_t)N * K * sk_dtype_size(T), 256); }
    if (b && b->dtype != T) { off_b = need; need += round_up((size_t)N * sk_dtype_size(T), 256); }
    if (x->dtype != T) { off_x = need; need += round_up((size_t)M * K * sk_dtype_size(T), 256); }
    const void *A = w->data, *B = x->data, *bias = b ? b->data : NULL;
    if (need) {
        void *s = NULL;
        SK_TRY(sk_cuda_scratch(be, need, &s));
        if (w->dtype != T) {
            A = (char *)s + off_w;
            SK_TRY(sk_cuda_convert_raw(be, (void *)A, T, w->data, w->dtype, N * K));
        }
        if (b && b->dtype != T) {
            bias = (char *)s + off_b;
            SK_TRY(sk_cuda_convert_raw(be, (void *)bias, T, b->data, b->dtype, N));
        }
        if (x->dtype != T) {
            B = (char *)s + off_x;
            SK_TRY(sk_cuda_convert_raw(be, (void *)B, T, x->data, x->dtype, M * K));
        }
    }

    cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_DEFAULT;
    int post_act = 0;
    if (act == SK_ACT_GELU_TANH) epi = bias ? CUBLASLT_EPILOGUE_GELU_BIAS : CUBLASLT_EPILOGUE_GELU;
    else {
        if (bias) epi = CUBLASLT_EPILOGUE_BIAS;
        if (act == SK_ACT_RELU) epi = bias ? CUBLASLT_EPILOGUE_RELU_BIAS : CUBLASLT_EPILOGUE_RELU;
        else if (act != SK_ACT_NONE) post_act = 1;
    }
    unsigned al = ptr_align(A);
    if (ptr_align(B) < al) al = ptr_align(B);
    if (ptr_align(y->data) < al) al = ptr_align(y->data);
    if (bias && ptr_align(bias) < al) al = ptr_align(bias);

    const cudaDataType_t ct = cuda_type(T);
    cublasLtMatmulDesc_t op = NULL;
    cublasLtMatrixLayout_t la = NULL, lb = NULL, lc = NULL;
    cublasLtMatmulPreference_t pref = NULL;
    sk_status st = SK_OK;
    cublasStatus_t cs;
    const cublasOperation_t tA = CUBLAS_OP_T, tB = CUBLAS_OP_N;
#define LT(call)                                                                               \
    do {                                                                                       \
        cs = (call);                                                                           \
        if (cs != CUBLAS_STATUS_SUCCESS) {                                                     \
            st = SK_ERR(SK_E_CUDA, "cuda linear [M=%lld K=%lld N=%lld %s]: cuBLASLt %s in %s", \
                        (long long)M, (long long)K, (long long)N, sk_dtype_name(T),            \
                        cublasGetStatusString(cs), #call);                                     \
            goto done;                                                                         \
        }                                                                                      \
    } while (0)
    {
        LT(cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
        LT(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &tA, sizeof tA));
        LT(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &tB, sizeof tB));
        LT(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi));
        if (bias)
            LT(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias,
                                              sizeof bias));
        LT(cublasLtMatrixLayoutCreate(&la, ct, (uint64_t)K, (uint64_t)N, K));
        LT(cublasLtMatrixLayoutCreate(&lb, ct, (uint64_t)K, (uint64_t)M, K));
        LT(cublasLtMatrixLayoutCreate(&lc, ct, (uint64_t)N, (uint64_t)M, N));

        /* plan cache lookup */
        sk_cuda_lt_plan *plan = NULL;
        unsigned h = (unsigned)((M * 131 + N * 31 + K * 7 + (int)T * 3 + (int)epi * 17 + al) %
                                SK_CUDA_LT_PLANS);
        for (int probe = 0; probe < SK_CUDA_LT_PLANS; probe++) {
            sk_cuda_lt_plan *p = &c->plans[(h + probe) % SK_CUDA_LT_PLANS];
            if (!p->valid) { plan = p; break; }
            if (p->m == M && p->n == N && p->k == K && p->a_t == (int)T && p->epi == (int)epi &&
                p->align == (int)al) {
                plan = p;
                break;
            }
        }
        if (!plan) { /* table full: reuse the home slot */
            plan = &c->plans[h];
            plan->valid = 0;
        }
        if (!plan->valid) {
            LT(cublasLtMatmulPreferenceCreate(&pref));
            size_t wsb = c->lt_ws_bytes;
            uint32_t a32 = al;
            LT(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                    &wsb, sizeof wsb));
            LT(cublasLtMatmulPreferenceSetAttribute(
                pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &a32, sizeof a32));
            LT(cublasLtMatmulPreferenceSetAttribute(
                pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &a32, sizeof a32));
            LT(cublasLtMatmulPreferenceSetAttribute(
                pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &a32, sizeof a32));
            LT(cublasLtMatmulPreferenceSetAttribute(
                pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &a32, sizeof a32));
            cublasLtMatmulHeuristicResult_t res;
            int nres = 0;
            memset(&res, 0, sizeof res);
            LT(cublasLtMatmulAlgoGetHeuristic(c->lt, op, la, lb, lc, lc, pref, 1, &res, &nres));
            if (nres < 1) {
                st = SK_ERR(SK_E_CUDA,
                            "cuda linear [M=%lld K=%lld N=%lld %s]: cuBLASLt found no algorithm "
                            "(alignment %u bytes, epilogue %d)",
                            (long long)M, (long long)K, (long long)N, sk_dtype_name(T), al,
                            (int)epi);
                goto done;
            }
            plan->algo = res.algo;
            plan->m = M; plan->n = N; plan->k = K;
            plan->a_t = (int)T; plan->epi = (int)epi; plan->align = (int)al;
            plan->valid = 1;
        }
        const float alpha = 1.0f, beta = 0.0f;
        LT(cublasLtMatmul(c->lt, op, &alpha, A, la, B, lb, &beta, y->data, lc, y->data, lc,
                          &plan->algo, c->lt_ws, c->lt_ws_bytes, c->stream));
    }
done:
#undef LT
    if (pref) cublasLtMatmulPreferenceDestroy(pref);
    if (la) cublasLtMatrixLayoutDestroy(la);
    if (lb) cublasLtMatrixLayoutDestroy(lb);
    if (lc) cublasLtMatrixLayoutDestroy(lc);
    if (op) cublasLtMatmulDescDestroy(op);
    if (st != SK_OK) return st;
    if (post_act) return sk_cuda_act(be, y, y, act);
    return SK_OK;
}
