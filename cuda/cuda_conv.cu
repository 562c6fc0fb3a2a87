/* cuda_conv.cu - conv2d (NCHW, weights [Co, Ci, kh, kw], zero padding).
 *
 * bf16 activations: implicit GEMM on tensor cores (WMMA bf16, f32 accumulate):
 *   y[co, p] = sum_k w[co, k] * im2col(x)[k, p],  p = (n, ho, wo), k = (ci, i, j)
 * with the im2col tile gathered straight from x into shared memory (never
 * materialised). Block tile 64 channels x 128 pixels x 32 k, 8 warps of 32x32;
 * the next k-tile is fetched into registers while the current one multiplies.
 * cuDNN, when the build has it, runs first (cuda_conv_cudnn.cu); this kernel is
 * the fallback. f32 activations (the parity mode): cuDNN with strict FP32 FMA
 * math and GEMM/direct algorithms only, else the direct convolution, one thread per output,
 * f32 FMAs in the CPU's order of taps.
 */
#include <mma.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_internal.h"

using namespace nvcuda;

#define CV_BM 64
#define CV_BN 128
#define CV_BK 32
#define CV_LDA (CV_BK + 8)
#define CV_LDB (CV_BN + 8)
#define CV_LDC (CV_BN + 4)

__global__ void __launch_bounds__(256)
    k_conv2d_igemm(__nv_bfloat16 *__restrict__ y, const __nv_bfloat16 *__restrict__ x,
                   const __nv_bfloat16 *__restrict__ w, const void *__restrict__ b, int bt,
                   int Ci, int H, int W, int Co, int Ho, int Wo, int kh, int kw, int stride,
                   int pad, int64_t P)
{
    __shared__ __align__(128) unsigned char smem[CV_BM * CV_LDC * 4];
    __nv_bfloat16 *As = reinterpret_cast<__nv_bfloat16 *>(smem);
    __nv_bfloat16 *Bs = As + CV_BM * CV_LDA;
    float *Cs = reinterpret_cast<float *>(smem);

    const int tid = threadIdx.x, warp = tid >> 5;
    const int wm = warp >> 2, wn = warp & 3; /* 2 x 4 warps */
    const int co0 = blockIdx.y * CV_BM;
    const int64_t p0 = (int64_t)blockIdx.x * CV_BN;
    const int KK = kh * kw, Kt = Ci * KK;

    /* this thread's pixel column for B loads */
    const int pc = tid & (CV_BN - 1), kr0 = tid >> 7; /* rows kr0, kr0+2, ... */
    const int64_t p = p0 + pc;
    const bool pvalid = p < P;
    int64_t nimg = 0;
    int h0 = 0, w0 = 0;
    if (pvalid) {
        int64_t t = p;
        int wo = (int)(t % Wo);
        t /= Wo;
        int ho = (int)(t % Ho);
        nimg = t / Ho;
        h0 = ho * stride - pad;
        w0 = wo * stride - pad;
    }
    const __nv_bfloat16 *xn = x + nimg * (int64_t)Ci * H * W;
    const __nv_bfloat16 zero = __float2bfloat16(0.0f);

    __nv_bfloat16 ra[8], rb[16];
    auto fetch = [&](int k0) {
#pragma unroll
        for (int t = 0; t < 8; t++) {
            int e = tid + t * 256;
            int r = e / CV_BK, c = e % CV_BK;
            int co = co0 + r, k = k0 + c;
            ra[t] = (co < Co && k < Kt) ? w[(int64_t)co * Kt + k] : zero;
        }
#pragma unroll
        for (int t = 0; t < 16; t++) {
            int k = k0 + kr0 + 2 * t;
            __nv_bfloat16 v = zero;
            if (pvalid && k < Kt) {
                int ci = k / KK, rem = k - ci * KK;
                int i = rem / kw, j = rem - i * kw;
                int hh = h0 + i, ww = w0 + j;
                if (hh >= 0 && hh < H && ww >= 0 && ww < W)
                    v = xn[((int64_t)ci * H + hh) * W + ww];
            }
            rb[t] = v;
        }
    };
    auto stash = [&]() {
#pragma unroll
        for (int t = 0; t < 8; t++) {
            int e = tid + t * 256;
            As[(e / CV_BK) * CV_LDA + e % CV_BK] = ra[t];
        }
#pragma unroll
        for (int t = 0; t < 16; t++) Bs[(kr0 + 2 * t) * CV_LDB + pc] = rb[t];
    };

    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[2][2];
#pragma unroll
    for (int i = 0; i < 2; i++)
#pragma unroll
        for (int j = 0; j < 2; j++) wmma::fill_fragment(acc[i][j], 0.0f);

    fetch(0);
    for (int k0 = 0; k0 < Kt; k0 += CV_BK) {
        __syncthreads(); /* previous tile consumed */
        stash();
        __syncthreads();
        if (k0 + CV_BK < Kt) fetch(k0 + CV_BK); /* in flight during the MMAs */
#pragma unroll
        for (int kk = 0; kk < CV_BK; kk += 16) {
            wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> fa[2];
            wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::row_major> fb[2];
#pragma unroll
            for (int i = 0; i < 2; i++)
                wmma::load_matrix_sync(fa[i], As + (wm * 32 + i * 16) * CV_LDA + kk, CV_LDA);
#pragma unroll
            for (int j = 0; j < 2; j++)
                wmma::load_matrix_sync(fb[j], Bs + kk * CV_LDB + wn * 32 + j * 16, CV_LDB);
#pragma unroll
            for (int i = 0; i < 2; i++)
#pragma unroll
                for (int j = 0; j < 2; j++) wmma::mma_sync(acc[i][j], fa[i], fb[j], acc[i][j]);
        }
    }
    __syncthreads(); /* As/Bs are reused as Cs */
#pragma unroll
    for (int i = 0; i < 2; i++)
#pragma unroll
        for (int j = 0; j < 2; j++)
            wmma::store_matrix_sync(Cs + (wm * 32 + i * 16) * CV_LDC + wn * 32 + j * 16,
                                    acc[i][j], CV_LDC, wmma::mem_row_major);
    __syncthreads();
    const int64_t HWo = (int64_t)Ho * Wo;
    for (int e = tid; e < CV_BM * CV_BN; e += 256) {
        int r = e / CV_BN, c = e % CV_BN;
        int co = co0 + r;
        int64_t pp = p0 + c;
        if (co >= Co || pp >= P) continue;
        int64_t n = pp / HWo, hw = pp - n * HWo;
        float v = Cs[r * CV_LDC + c] + (b ? sk_ld(b, bt, co) : 0.0f);
        y[(n * Co + co) * HWo + hw] = __float2bfloat16_rn(v);
    }
}

__global__ void k_conv2d(void *y, int yt, const void *x, int xt, const void *w, int wt,
                         const void *b, int bt, int64_t Ci, int64_t H, int64_t W, int64_t Co,
                         int64_t Ho, int64_t Wo, int kh, int kw, int stride, int pad, int64_t n)
{
    SK_GRID_STRIDE(o, n)
    {
        int64_t wo = o % Wo, t = o / Wo;
        int64_t ho = t % Ho;
        t /= Ho;
        int64_t co = t % Co, bn = t / Co;
        float acc = b ? sk_ld(b, bt, co) : 0.0f;
        const int64_t h0 = ho * stride - pad, w0 = wo * stride - pad;
        for (int64_t ci = 0; ci < Ci; ci++) {
            const int64_t xb = (bn * Ci + ci) * H;
            const int64_t wb = (co * Ci + ci) * kh;
            for (int i = 0; i < kh; i++) {
                int64_t h = h0 + i;
                if (h < 0 || h >= H) continue;
                for (int j = 0; j < kw; j++) {
                    int64_t ww = w0 + j;
                    if (ww < 0 || ww >= W) continue;
                    acc += sk_ld(x, xt, (xb + h) * W + ww) * sk_ld(w, wt, (wb + i) * kw + j);
                }
            }
        }
        sk_st(y, yt, o, acc);
    }
}

extern "C" sk_status sk_cuda_conv2d(sk_backend *be, sk_tensor *y, const sk_tensor *x,
                                    const sk_tensor *w, const sk_tensor *b, int stride, int pad)
{
    SK_CHECK(x->ndim == 4 && w->ndim == 4 && y->ndim == 4, SK_E_SHAPE,
             "cuda conv2d: x, w, y must be 4-D");
    int64_t n = sk_tensor_numel(y);
    if (n == 0) return SK_OK;
    /* cuDNN for 3x3 convs (64->64 at 480x832: 0.37 ms vs 1.43 ms WMMA on H100);
     * the WMMA kernel for tiny reductions (the encoder's 3-channel input conv,
     * Ci*kh*kw = 27: 0.19 vs 0.28 ms) and 1x1 convs (256->256 at 120x208:
     * 0.18 vs 0.26 ms) */
    const int f32 = x->dtype == SK_DTYPE_F32 && y->dtype == SK_DTYPE_F32;
    if (((x->dtype == SK_DTYPE_BF16 && y->dtype == SK_DTYPE_BF16 &&
          x->shape[1] * w->shape[2] * w->shape[3] >= 64 && w->shape[2] * w->shape[3] > 1) ||
         f32) && !getenv("SK_CUDA_CONV_NO_CUDNN")) {
        int done = 0;
        SK_TRY(sk_cuda_conv2d_cudnn(be, y, x, w, b, stride, pad, &done));
        if (done) return SK_OK;
    }
    const char *cv = getenv("SK_CUDA_CONV"); /* cudnn (default) | wmma | direct */
    if (x->dtype == SK_DTYPE_BF16 && y->dtype == SK_DTYPE_BF16 && !(cv && !strcmp(cv, "direct"))) {
        const int64_t Co = y->shape[1], Ho = y->shape[2], Wo = y->shape[3];
        const int64_t P = y->shape[0] * Ho * Wo;
        const int64_t nw = sk_tensor_numel(w);
        const __nv_bfloat16 *wb = (const __nv_bfloat16 *)w->data;
        if (w->dtype != SK_DTYPE_BF16) { /* weights to bf16 in scratch (small: Co*Ci*kh*kw) */
            void *sc = NULL;
            SK_TRY(sk_cuda_scratch(be, (size_t)nw * 2, &sc));
            SK_TRY(sk_cuda_convert_raw(be, sc, SK_DTYPE_BF16, w->data, w->dtype, nw));
            wb = (const __nv_bfloat16 *)sc;
        }
        dim3 grid((unsigned)((P + CV_BN - 1) / CV_BN), (unsigned)((Co + CV_BM - 1) / CV_BM));
        k_conv2d_igemm<<<grid, 256, 0, sk_cuda(be)->stream>>>(
            (__nv_bfloat16 *)y->data, (const __nv_bfloat16 *)x->data, wb, b ? b->data : NULL,
            b ? b->dtype : 0, (int)x->shape[1], (int)x->shape[2], (int)x->shape[3], (int)Co,
            (int)Ho, (int)Wo, (int)w->shape[2], (int)w->shape[3], stride, pad, P);
        SK_CU_LAUNCH("conv2d (implicit gemm)");
        return SK_OK;
    }
    k_conv2d<<<sk_cuda_blocks(n, 256), 256, 0, sk_cuda(be)->stream>>>(
        y->data, y->dtype, x->data, x->dtype, w->data, w->dtype, b ? b->data : NULL,
        b ? b->dtype : 0, x->shape[1], x->shape[2], x->shape[3], y->shape[1], y->shape[2],
        y->shape[3], (int)w->shape[2], (int)w->shape[3], stride, pad, n);
    SK_CU_LAUNCH("conv2d");
    return SK_OK;
}
