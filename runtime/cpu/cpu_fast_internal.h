/* cpu_fast_internal.h - shared by the fast CPU backend's op files. */
#ifndef SK_CPU_FAST_INTERNAL_H
#define SK_CPU_FAST_INTERNAL_H

#include "cpu_fast.h"
#include "cpu_internal.h"
#include "cpu_pool.h"

/* C[M,N] = alpha * A[M,K] . op(B) + beta * C, row-major with leading
 * dimensions; op(B) = B^T (B is [N,K]) when b_trans, else B ([K,N]).
 * OpenBLAS's cblas_sgemm when built with it, else a threaded blocked loop. */
void sk_cpu_sgemm(int b_trans, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                  int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc);

/* f32 copy of a weight, converted with all threads (*owned NULL when w is f32) */
sk_status sk_cpu_fast_weight_f32(const sk_tensor *w, const float **out, float **owned);

/* single-precision activation (the reference computes in f64) */
float sk_cpu_fast_act1(float v, sk_act act);
/* y[0..n) = act(x[0..n)), vectorised (y may equal x) */
void sk_cpu_fast_act_n(float *y, const float *x, int64_t n, sk_act act);

/* below this many elements an op runs on one thread (a parallel region costs
 * a few microseconds) */
#define SK_FAST_PAR_MIN 16384

sk_status sk_cpu_fast_linear(sk_backend *be, sk_tensor *y, const sk_tensor *x, const sk_tensor *w,
                             const sk_tensor *b, sk_act act);
sk_status sk_cpu_fast_conv2d(sk_backend *be, sk_tensor *y, const sk_tensor *x, const sk_tensor *w,
                             const sk_tensor *b, int stride, int pad);
sk_status sk_cpu_fast_attention(sk_backend *be, sk_tensor *out, const sk_tensor *q,
                                const sk_kv_range *ranges, int nranges, float scale,
                                const sk_tensor *bias);
sk_status sk_cpu_fast_layernorm(sk_backend *be, sk_tensor *y, const sk_tensor *x,
                                const sk_tensor *w, const sk_tensor *b, float eps);
sk_status sk_cpu_fast_rmsnorm(sk_backend *be, sk_tensor *y, const sk_tensor *x, const sk_tensor *w,
                              float eps);
sk_status sk_cpu_fast_modulate(sk_backend *be, sk_tensor *y, const sk_tensor *x,
                               const sk_tensor *mod, int i_shift, int i_scale,
                               int64_t rows_per_group, int ln, float eps);
sk_status sk_cpu_fast_gated_add(sk_backend *be, sk_tensor *x, const sk_tensor *y,
                                const sk_tensor *mod, int i_gate, int64_t rows_per_group);
sk_status sk_cpu_fast_axpby(sk_backend *be, sk_tensor *y, float a, const sk_tensor *x, float b,
                            const sk_tensor *z);
sk_status sk_cpu_fast_mul(sk_backend *be, sk_tensor *y, const sk_tensor *x, const sk_tensor *z);
sk_status sk_cpu_fast_act(sk_backend *be, sk_tensor *y, const sk_tensor *x, sk_act act);
sk_status sk_cpu_fast_rope3d(sk_backend *be, sk_tensor *x, int64_t F, int64_t Hp, int64_t Wp,
                             int64_t t0, double theta);
sk_status sk_cpu_fast_upsample_nearest(sk_backend *be, sk_tensor *y, const sk_tensor *x, int s);
sk_status sk_cpu_fast_pixel_shuffle(sk_backend *be, sk_tensor *y, const sk_tensor *x, int p);

#endif
