/* cuda_rope.cu - in-place 3D RoPE on interleaved pairs (see backend.h).
 * One thread per (token, head, pair). Angles are computed in f64 like the CPU
 * reference (and the fp64 complex RoPE of Self-Forcing), then the rotation of
 * the pair runs in f32 and rounds once to x's dtype. */
#include "cuda_internal.h"

__global__ void k_rope3d(void *x, int xt, int64_t NH, int64_t HD, int64_t Hp, int64_t Wp,
                         int64_t t0, double log_theta, int64_t n_pairs)
{
    const int64_t c = HD / 2;
    const int64_t pt = c - 2 * (c / 3), ph = c / 3;
    SK_GRID_STRIDE(i, n_pairs)
    {
        int64_t j = i % c;
        int64_t tok = i / (c * NH);
        int64_t f = tok / (Hp * Wp), rem = tok - f * Hp * Wp;
        int64_t row = rem / Wp, col = rem - row * Wp;
        int64_t pos, jj, pa;
        if (j < pt) {
            pos = t0 + f; jj = j; pa = pt;
        } else if (j < pt + ph) {
            pos = row; jj = j - pt; pa = ph;
        } else {
            pos = col; jj = j - pt - ph; pa = ph;
        }
        /* theta^(-2jj/(2pa)) */
        double freq = exp(-(double)(2 * jj) / (double)(2 * pa) * log_theta);
        double s, co;
        sincos((double)pos * freq, &s, &co);
        int64_t e = 2 * i; /* pairs are contiguous: element index of x[2j] */
        float a = sk_ld(x, xt, e), b = sk_ld(x, xt, e + 1);
        float cf = (float)co, sf = (float)s;
        sk_st(x, xt, e, a * cf - b * sf);
        sk_st(x, xt, e + 1, a * sf + b * cf);
    }
}

extern "C" sk_status sk_cuda_rope3d(sk_backend *be, sk_tensor *x, int64_t F, int64_t Hp,
                                    int64_t Wp, int64_t t0, double theta)
{
    SK_CHECK(x->ndim == 3 && x->shape[2] % 2 == 0, SK_E_SHAPE,
             "cuda rope3d: x must be [N, NH, HD] with even HD");
    int64_t NH = x->shape[1], HD = x->shape[2];
    int64_t n = sk_tensor_numel(x) / 2;
    if (n == 0) return SK_OK;
    k_rope3d<<<sk_cuda_blocks(n, 256), 256, 0, sk_cuda(be)->stream>>>(
        x->data, x->dtype, NH, HD, Hp, Wp, t0, log(theta), n);
    SK_CU_LAUNCH("rope3d");
    return SK_OK;
}
