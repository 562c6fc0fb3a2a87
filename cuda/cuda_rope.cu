/* cuda_rope.cu - in-place 3D RoPE on interleaved pairs (see backend.h).
 *
 * The angles pos * theta^(-2j/(2*pairs_a)) are computed in f64, like the CPU
 * reference (and Self-Forcing's fp64 complex RoPE), once per (axis position,
 * pair) into a small cos/sin table in the scratch buffer (F*pt + (Hp+Wp)*ph
 * entries); the main kernel then rotates 4 pairs (8 elements, one 16-byte
 * load for bf16) per thread in f32 and rounds once to x's dtype. */
#include <stdlib.h>

#include "cuda_internal.h"

/* table: [F][pt] then [Hp][ph] then [Wp][ph], each (cos, sin) */
__global__ void k_rope_table(float2 *tab, int64_t F, int64_t Hp, int64_t Wp, int64_t pt,
                             int64_t ph, int64_t t0, double log_theta, int64_t n)
{
    SK_GRID_STRIDE(i, n)
    {
        int64_t pos, jj, pa;
        if (i < F * pt) {
            pos = t0 + i / pt; jj = i % pt; pa = pt;
        } else if (i < F * pt + Hp * ph) {
            int64_t k = i - F * pt;
            pos = k / ph; jj = k % ph; pa = ph;
        } else {
            int64_t k = i - F * pt - Hp * ph;
            pos = k / ph; jj = k % ph; pa = ph;
        }
        double freq = exp(-(double)(2 * jj) / (double)(2 * pa) * log_theta);
        double s, c;
        sincos((double)pos * freq, &s, &c);
        tab[i] = make_float2((float)c, (float)s);
    }
}

__device__ __forceinline__ float2 rope_cs(const float2 *tab, int64_t j, int64_t f, int64_t row,
                                          int64_t col, int64_t F, int64_t Hp, int64_t pt,
                                          int64_t ph)
{
    if (j < pt) return tab[f * pt + j];
    if (j < pt + ph) return tab[F * pt + row * ph + (j - pt)];
    return tab[F * pt + Hp * ph + col * ph + (j - pt - ph)];
}

/* 4 pairs per thread; HD % 8 == 0 so the 8 elements stay in one head */
__global__ void k_rope3d8(void *x, int xt, const float2 *tab, int64_t NH, int64_t HD, int64_t F,
                          int64_t Hp, int64_t Wp, int64_t nch)
{
    const int64_t c = HD / 2, pt = c - 2 * (c / 3), ph = c / 3;
    SK_GRID_STRIDE(i, nch)
    {
        const int64_t e0 = 8 * i;
        const int64_t j0 = (e0 % HD) / 2;
        const int64_t tok = e0 / (NH * HD);
        const int64_t f = tok / (Hp * Wp), rem = tok - f * Hp * Wp;
        const int64_t row = rem / Wp, col = rem - row * Wp;
        float v[8];
        sk_ld8(x, xt, i, v);
#pragma unroll
        for (int k = 0; k < 4; k++) {
            float2 cs = rope_cs(tab, j0 + k, f, row, col, F, Hp, pt, ph);
            float a = v[2 * k], b = v[2 * k + 1];
            v[2 * k] = a * cs.x - b * cs.y;
            v[2 * k + 1] = a * cs.y + b * cs.x;
        }
        sk_st8(x, xt, i, v);
    }
}

/* one pair per thread: any even HD or unaligned x */
__global__ void k_rope3d(void *x, int xt, const float2 *tab, int64_t NH, int64_t HD, int64_t F,
                         int64_t Hp, int64_t Wp, int64_t n_pairs)
{
    const int64_t c = HD / 2, pt = c - 2 * (c / 3), ph = c / 3;
    SK_GRID_STRIDE(i, n_pairs)
    {
        int64_t j = i % c;
        int64_t tok = i / (c * NH);
        int64_t f = tok / (Hp * Wp), rem = tok - f * Hp * Wp;
        int64_t row = rem / Wp, col = rem - row * Wp;
        float2 cs = rope_cs(tab, j, f, row, col, F, Hp, pt, ph);
        int64_t e = 2 * i;
        float a = sk_ld(x, xt, e), b = sk_ld(x, xt, e + 1);
        sk_st(x, xt, e, a * cs.x - b * cs.y);
        sk_st(x, xt, e + 1, a * cs.y + b * cs.x);
    }
}

extern "C" sk_status sk_cuda_rope3d(sk_backend *be, sk_tensor *x, int64_t F, int64_t Hp,
                                    int64_t Wp, int64_t t0, double theta)
{
    SK_CHECK(x->ndim == 3 && x->shape[2] % 2 == 0, SK_E_SHAPE,
             "cuda rope3d: x must be [N, NH, HD] with even HD");
    const int64_t NH = x->shape[1], HD = x->shape[2];
    const int64_t n = sk_tensor_numel(x) / 2;
    if (n == 0) return SK_OK;
    const int64_t c = HD / 2, pt = c - 2 * (c / 3), ph = c / 3;
    const int64_t nt = F * pt + (Hp + Wp) * ph;
    void *sc = NULL;
    SK_TRY(sk_cuda_scratch(be, (size_t)(nt > 0 ? nt : 1) * sizeof(float2), &sc));
    cudaStream_t s = sk_cuda(be)->stream;
    float2 *tab = (float2 *)sc;
    if (nt > 0) {
        k_rope_table<<<sk_cuda_blocks(nt, 256), 256, 0, s>>>(tab, F, Hp, Wp, pt, ph, t0,
                                                             log(theta), nt);
        SK_CU_LAUNCH("rope3d (table)");
    }
    if (HD % 8 == 0 && sk_cuda_vec_ok(x->data, x->dtype)) {
        const int64_t nch = n / 4;
        k_rope3d8<<<sk_cuda_blocks(nch, 256), 256, 0, s>>>(x->data, x->dtype, tab, NH, HD, F, Hp,
                                                           Wp, nch);
    } else {
        k_rope3d<<<sk_cuda_blocks(n, 256), 256, 0, s>>>(x->data, x->dtype, tab, NH, HD, F, Hp, Wp,
                                                        n);
    }
    SK_CU_LAUNCH("rope3d");
    return SK_OK;
}

/* ---- rmsnorm + rope3d fused (the DiT's q/k path): one block per token row
 * of D = NH*HD elements, read once into registers (NC chunks of 8 per
 * thread), sum of squares reduced in the block, then scaled by w and rotated
 * in f32 from the same cos/sin table as rope3d, and written once: one read and
 * one write of the row instead of two of each, one rounding instead of two. */
__device__ __forceinline__ float rr_block_sum(float v, float *red)
{
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    const int w = threadIdx.x >> 5, l = threadIdx.x & 31;
    if (l == 0) red[w] = v;
    __syncthreads();
    float t = 0.0f;
    for (int i = 0; i < (int)(blockDim.x >> 5); i++) t += red[i];
    return t;
}

template <int NC>
__global__ void k_rmsnorm_rope8(void *y, int yt, const void *x, int xt, const void *w, int wt,
                                const float2 *tab, int64_t D, int64_t HD, int64_t F, int64_t Hp,
                                int64_t Wp, float eps)
{
    __shared__ float red[32];
    const int64_t r = blockIdx.x, nch = D / 8, c0 = r * nch;
    float v[NC][8];
    float q = 0.0f;
#pragma unroll
    for (int k = 0; k < NC; k++) {
        const int64_t c = threadIdx.x + (int64_t)k * blockDim.x;
        if (c < nch) {
            sk_ld8(x, xt, c0 + c, v[k]);
#pragma unroll
            for (int e = 0; e < 8; e++) q += v[k][e] * v[k][e];
        }
    }
    const float inv = rsqrtf(rr_block_sum(q, red) / (float)D + eps);
    const int64_t hc = HD / 2, pt = hc - 2 * (hc / 3), ph = hc / 3;
    const int64_t f = r / (Hp * Wp), rem = r - f * Hp * Wp;
    const int64_t row = rem / Wp, col = rem - row * Wp;
#pragma unroll
    for (int k = 0; k < NC; k++) {
        const int64_t c = threadIdx.x + (int64_t)k * blockDim.x;
        if (c >= nch) continue;
        float o[8], wv[8];
#pragma unroll
        for (int e = 0; e < 8; e++) o[e] = v[k][e] * inv;
        if (w) {
            sk_ld8(w, wt, c, wv);
#pragma unroll
            for (int e = 0; e < 8; e++) o[e] *= wv[e];
        }
        const int64_t j0 = ((8 * c) % HD) / 2;
#pragma unroll
        for (int p = 0; p < 4; p++) {
            const float2 cs = rope_cs(tab, j0 + p, f, row, col, F, Hp, pt, ph);
            const float a = o[2 * p], b = o[2 * p + 1];
            o[2 * p] = a * cs.x - b * cs.y;
            o[2 * p + 1] = a * cs.y + b * cs.x;
        }
        sk_st8(y, yt, c0 + c, o);
    }
}

extern "C" sk_status sk_cuda_rmsnorm_rope3d(sk_backend *be, sk_tensor *y, const sk_tensor *x,
                                            const sk_tensor *w, float eps, int64_t F, int64_t Hp,
                                            int64_t Wp, int64_t t0, double theta)
{
    const int64_t N = y->shape[0], HD = y->shape[2], D = y->shape[1] * HD;
    if (N == 0 || D == 0) return SK_OK;
    const int64_t nch = D / 8;
    const int64_t nc = (nch + 255) / 256; /* balanced as cuda_norm.cu's k_row8 launch */
    const int threads = (int)(((nch + nc - 1) / nc + 31) / 32 * 32);
    int vec = HD % 8 == 0 && nc <= 4 && sk_cuda_vec_ok(x->data, x->dtype) &&
              sk_cuda_vec_ok(y->data, y->dtype) && (!w || sk_cuda_vec_ok(w->data, w->dtype)) &&
              !getenv("SK_CUDA_NO_FUSED_ROPE");
    if (!vec) { /* the two ops */
        int64_t s2[2] = {N, D};
        sk_tensor y2;
        SK_TRY(sk_tensor_reshape(y, 2, s2, &y2));
        SK_TRY(sk_cuda_rmsnorm(be, &y2, x, w, eps));
        return sk_cuda_rope3d(be, y, F, Hp, Wp, t0, theta);
    }
    const int64_t c = HD / 2, pt = c - 2 * (c / 3), ph = c / 3;
    const int64_t nt = F * pt + (Hp + Wp) * ph;
    void *sc = NULL;
    SK_TRY(sk_cuda_scratch(be, (size_t)(nt > 0 ? nt : 1) * sizeof(float2), &sc));
    cudaStream_t s = sk_cuda(be)->stream;
    float2 *tab = (float2 *)sc;
    if (nt > 0) {
        k_rope_table<<<sk_cuda_blocks(nt, 256), 256, 0, s>>>(tab, F, Hp, Wp, pt, ph, t0,
                                                             log(theta), nt);
        SK_CU_LAUNCH("rmsnorm_rope3d (table)");
    }
#define RR(NCV)                                                                             \
    k_rmsnorm_rope8<NCV><<<(unsigned)N, threads, 0, s>>>(y->data, y->dtype, x->data, x->dtype, \
                                                       w ? w->data : NULL, w ? w->dtype : 0, \
                                                       tab, D, HD, F, Hp, Wp, eps)
    if (nc == 1) RR(1);
    else if (nc == 2) RR(2);
    else RR(4);
#undef RR
    SK_CU_LAUNCH("rmsnorm_rope3d");
    return SK_OK;
}
