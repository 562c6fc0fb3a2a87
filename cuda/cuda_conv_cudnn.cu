/* cuda_conv_cudnn.cu - bf16 conv2d through cuDNN's convolution API.
 *
 * TAEHV's decoder is ~2 TFLOP per latent frame of 3x3 convs at up to 480x832,
 * so conv speed matters as much as the DiT's. cuDNN's tensor-core kernels
 * beat our WMMA implicit GEMM (cuda_conv.cu), which stays as the fallback
 * (no cuDNN in the build, or cuDNN refuses a shape). Built only when CMake
 * found cuDNN (SK_HAVE_CUDNN); the handle is made at the first conv, so
 * DiT-only runs never load cuDNN's libraries.
 *
 * y = conv(x, w) + b in one rounding: y is first filled with the broadcast
 * bias, then cuDNN computes y = 1*conv + 1*y with f32 accumulation.
 * Algorithms come from cuDNN's heuristics, cached per shape; the workspace
 * lives in the backend's scratch buffer after the converted weights.
 */
#include <stdlib.h>
#include <string.h>

#include "cuda_internal.h"

#ifdef SK_HAVE_CUDNN
#include <cudnn.h>

#define CONV_PLANS 64
typedef struct {
    int valid;
    int n, ci, h, w, co, kh, kw, stride, pad, f32;
    cudnnConvolutionFwdAlgo_t algo;
    size_t ws;
} conv_plan;

typedef struct {
    cudnnHandle_t h;
    int broken; /* creation failed once: stay on the fallback */
    conv_plan plans[CONV_PLANS];
} cudnn_state;

/* y[n, c, :] = b[c] (or 0) */
__global__ void k_fill_bias(void *y, int yt, const void *b, int bt, int64_t C, int64_t HW,
                            int64_t n)
{
    SK_GRID_STRIDE(i, n)
    {
        int64_t c = (i / HW) % C;
        sk_st(y, yt, i, b ? sk_ld(b, bt, c) : 0.0f);
    }
}

#define DNN(call)                                                                             \
    do {                                                                                      \
        cudnnStatus_t ds_ = (call);                                                           \
        if (ds_ != CUDNN_STATUS_SUCCESS) {                                                    \
            st = SK_ERR(SK_E_CUDA, "cuda conv2d (cuDNN): %s in %s", cudnnGetErrorString(ds_), \
                        #call);                                                               \
            goto done;                                                                        \
        }                                                                                     \
    } while (0)

extern "C" sk_status sk_cuda_conv2d_cudnn(sk_backend *be, sk_tensor *y, const sk_tensor *x,
                                          const sk_tensor *w, const sk_tensor *b, int stride,
                                          int pad, int *done)
{
    *done = 0;
    sk_cuda_ctx *c = sk_cuda(be);
    const char *env = getenv("SK_CUDA_CONV");
    if (env && strcmp(env, "cudnn") != 0) return SK_OK; /* "wmma"/"direct": A/B runs */
    cudnn_state *S = (cudnn_state *)c->cudnn;
    if (!S) {
        S = (cudnn_state *)calloc(1, sizeof *S);
        SK_CHECK(S, SK_E_OOM, "cuda conv2d: out of host memory for the cuDNN state");
        c->cudnn = S;
        cudnnStatus_t cs = cudnnCreate(&S->h);
        if (cs == CUDNN_STATUS_SUCCESS) cs = cudnnSetStream(S->h, c->stream);
        if (cs != CUDNN_STATUS_SUCCESS) {
            SK_LOGW("cuda: cuDNN unavailable (%s); conv2d uses the built-in kernel",
                    cudnnGetErrorString(cs));
            S->broken = 1;
        } else {
            SK_LOGI("cuda: cuDNN %zu for conv2d", cudnnGetVersion());
        }
    }
    if (S->broken) return SK_OK;

    /* bf16: tensor-core math; f32 (the parity mode): strict FP32 FMA math and
     * only the GEMM/direct algorithms (FFT and Winograd change the rounding
     * far beyond plain f32 summation) */
    const int f32 = y->dtype == SK_DTYPE_F32;
    const cudnnDataType_t dt = f32 ? CUDNN_DATA_FLOAT : CUDNN_DATA_BFLOAT16;
    const sk_dtype wt = f32 ? SK_DTYPE_F32 : SK_DTYPE_BF16;
    const int N = (int)x->shape[0], Ci = (int)x->shape[1], H = (int)x->shape[2],
              W = (int)x->shape[3];
    const int Co = (int)w->shape[0], kh = (int)w->shape[2], kw = (int)w->shape[3];
    const int Ho = (int)y->shape[2], Wo = (int)y->shape[3];
    sk_status st = SK_OK;
    cudnnTensorDescriptor_t xd = NULL, yd = NULL;
    cudnnFilterDescriptor_t wd = NULL;
    cudnnConvolutionDescriptor_t cd = NULL;
    conv_plan *plan = NULL;
    {
        DNN(cudnnCreateTensorDescriptor(&xd));
        DNN(cudnnCreateTensorDescriptor(&yd));
        DNN(cudnnCreateFilterDescriptor(&wd));
        DNN(cudnnCreateConvolutionDescriptor(&cd));
        DNN(cudnnSetTensor4dDescriptor(xd, CUDNN_TENSOR_NCHW, dt, N, Ci, H, W));
        DNN(cudnnSetTensor4dDescriptor(yd, CUDNN_TENSOR_NCHW, dt, N, Co, Ho, Wo));
        DNN(cudnnSetFilter4dDescriptor(wd, dt, CUDNN_TENSOR_NCHW, Co, Ci, kh, kw));
        DNN(cudnnSetConvolution2dDescriptor(cd, pad, pad, stride, stride, 1, 1,
                                            CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
        DNN(cudnnSetConvolutionMathType(cd, f32 ? CUDNN_FMA_MATH : CUDNN_TENSOR_OP_MATH));

        unsigned hsh = (unsigned)(((((N * 31u + Ci) * 31u + H) * 31u + W) * 31u + Co) * 31u +
                                  kh * 7u + kw * 3u + stride * 5u + pad + 11u * f32) % CONV_PLANS;
        for (int p = 0; p < CONV_PLANS; p++) {
            conv_plan *q = &S->plans[(hsh + p) % CONV_PLANS];
            if (!q->valid) { plan = q; break; }
            if (q->n == N && q->ci == Ci && q->h == H && q->w == W && q->co == Co &&
                q->kh == kh && q->kw == kw && q->stride == stride && q->pad == pad &&
                q->f32 == f32) {
                plan = q;
                break;
            }
        }
        if (!plan) {
            plan = &S->plans[hsh];
            plan->valid = 0;
        }
        if (!plan->valid) {
            cudnnConvolutionFwdAlgoPerf_t perf[8];
            int np = 0;
            DNN(cudnnGetConvolutionForwardAlgorithm_v7(S->h, xd, wd, cd, yd, 8, &np, perf));
            int pick = -1;
            for (int i = 0; i < np; i++)
                if (perf[i].status == CUDNN_STATUS_SUCCESS &&
                    perf[i].memory <= ((size_t)1 << 30) &&
                    (!f32 || perf[i].algo == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM ||
                     perf[i].algo == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM ||
                     perf[i].algo == CUDNN_CONVOLUTION_FWD_ALGO_GEMM ||
                     perf[i].algo == CUDNN_CONVOLUTION_FWD_ALGO_DIRECT) &&
                    (!f32 || perf[i].mathType == CUDNN_FMA_MATH)) {
                    pick = i;
                    break;
                }
            if (pick < 0) goto done; /* no usable algorithm: fallback kernel */
            plan->algo = perf[pick].algo;
            plan->ws = perf[pick].memory;
            plan->n = N; plan->ci = Ci; plan->h = H; plan->w = W; plan->co = Co;
            plan->kh = kh; plan->kw = kw; plan->stride = stride; plan->pad = pad;
            plan->f32 = f32;
            plan->valid = 1;
        }

        /* scratch: [bf16 weights if converted | workspace] */
        const int64_t nw = sk_tensor_numel(w);
        const size_t wbytes =
            w->dtype == wt ? 0 : ((size_t)nw * sk_dtype_size(wt) + 255) / 256 * 256;
        void *sc = NULL;
        if (wbytes + plan->ws) {
            st = sk_cuda_scratch(be, wbytes + plan->ws, &sc);
            if (st != SK_OK) goto done;
        }
        const void *wp = w->data;
        if (wbytes) {
            st = sk_cuda_convert_raw(be, sc, wt, w->data, w->dtype, nw);
            if (st != SK_OK) goto done;
            wp = sc;
        }
        const int64_t ny = sk_tensor_numel(y);
        k_fill_bias<<<sk_cuda_blocks(ny, 256), 256, 0, c->stream>>>(
            y->data, y->dtype, b ? b->data : NULL, b ? b->dtype : 0, Co, (int64_t)Ho * Wo, ny);
        {
            cudaError_t e = cudaGetLastError();
            if (e != cudaSuccess) {
                st = SK_ERR(SK_E_CUDA, "cuda conv2d: bias fill: %s", cudaGetErrorString(e));
                goto done;
            }
        }
        const float one = 1.0f;
        DNN(cudnnConvolutionForward(S->h, &one, xd, x->data, wd, wp, cd, plan->algo,
                                    (char *)sc + wbytes, plan->ws, &one, yd, y->data));
        *done = 1;
    }
done:
    if (cd) cudnnDestroyConvolutionDescriptor(cd);
    if (wd) cudnnDestroyFilterDescriptor(wd);
    if (yd) cudnnDestroyTensorDescriptor(yd);
    if (xd) cudnnDestroyTensorDescriptor(xd);
    return st;
}

extern "C" void sk_cuda_cudnn_destroy(sk_cuda_ctx *c)
{
    cudnn_state *S = (cudnn_state *)c->cudnn;
    if (!S) return;
    if (S->h) cudnnDestroy(S->h);
    free(S);
    c->cudnn = NULL;
}

#else /* no cuDNN in this build */

extern "C" sk_status sk_cuda_conv2d_cudnn(sk_backend *be, sk_tensor *y, const sk_tensor *x,
                                          const sk_tensor *w, const sk_tensor *b, int stride,
                                          int pad, int *done)
{
    (void)be; (void)y; (void)x; (void)w; (void)b; (void)stride; (void)pad;
    *done = 0;
    return SK_OK;
}

extern "C" void sk_cuda_cudnn_destroy(sk_cuda_ctx *c) { (void)c; }

#endif
