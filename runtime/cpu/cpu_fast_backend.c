/* cpu_fast_backend.c - the fast CPU backend: creation, threads, sgemm.
 *
 * It is the reference backend (same memory functions, same op table) with
 * the ops that dominate a forward replaced: linear, conv2d and attention go
 * through sgemm; norms, modulation, elementwise and RoPE run on all cores
 * (runtime/cpu/cpu_pool.c).
 * Ops not replaced (layout, embedding, noise) are the reference's.
 */
#include "cpu_fast_internal.h"
#include "cpu_fast_math.h"

#include "runtime/core/log.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#ifdef SK_HAVE_OPENBLAS
#include <cblas.h>
#endif

static sk_backend_ops g_fast_ops;
static pthread_once_t g_fast_once = PTHREAD_ONCE_INIT;
static int g_threads = 1;

static void fast_init(void)
{
    g_threads = sk_par_threads();
#ifdef SK_HAVE_OPENBLAS
    openblas_set_num_threads(1); /* see sk_cpu_sgemm */
#endif
}

int sk_cpu_fast_threads(void)
{
    pthread_once(&g_fast_once, fast_init);
    return g_threads;
}

const char *sk_cpu_fast_describe(void)
{
    static char buf[128];
    const int n = sk_cpu_fast_threads();
#ifdef SK_HAVE_OPENBLAS
    const char *blas = "OpenBLAS sgemm";
#else
    const char *blas = "built-in sgemm";
#endif
    snprintf(buf, sizeof buf, "%s, %d thread%s", blas, n, n == 1 ? "" : "s");
    return buf;
}

float sk_cpu_fast_act1(float v, sk_act act)
{
    switch (act) {
    case SK_ACT_GELU_TANH: return sk_fgelu_tanh(v);
    case SK_ACT_SILU: return sk_fsilu(v);
    case SK_ACT_TANH_CLAMP: return 3.0f * sk_ftanh(v / 3.0f);
    case SK_ACT_RELU: return v > 0.0f ? v : (v == v ? 0.0f : v); /* NaN stays NaN */
    case SK_ACT_CLAMP01:
        if (v != v) return v;
        return v < 0.0f ? 0.0f : (v > 1.0f ? 1.0f : v);
    default: return sk_cpu_act1(v, act);
    }
}

/* One 8-wide block of act through a local array: y may alias x, and GCC's
 * -O2 vectoriser will not version a loop for aliasing, but it vectorises a
 * fixed-width loop over a local. */
#define SK_ACT_BLOCK(expr)                                                                     \
    for (; i < n8; i += 8) {                                                                  \
        float v[8];                                                                            \
        memcpy(v, x + i, sizeof v);                                                           \
        for (int t = 0; t < 8; t++) v[t] = expr;                                              \
        memcpy(y + i, v, sizeof v);                                                           \
    }

void sk_cpu_fast_act_n(float *y, const float *x, int64_t n, sk_act act)
{
    const int64_t n8 = n / 8 * 8;
    int64_t i = 0;
    if (act == SK_ACT_GELU_TANH) SK_ACT_BLOCK(sk_fgelu_tanh(v[t]))
    else if (act == SK_ACT_SILU) SK_ACT_BLOCK(sk_fsilu(v[t]))
    else if (act == SK_ACT_RELU) SK_ACT_BLOCK(v[t] > 0.0f ? v[t] : (v[t] == v[t] ? 0.0f : v[t]))
    else if (act == SK_ACT_TANH_CLAMP) SK_ACT_BLOCK(3.0f * sk_ftanh(v[t] / 3.0f))
    else if (act == SK_ACT_CLAMP01)
        SK_ACT_BLOCK(v[t] != v[t] ? v[t] : (v[t] < 0.0f ? 0.0f : (v[t] > 1.0f ? 1.0f : v[t])))
    for (; i < n; i++) y[i] = sk_cpu_fast_act1(x[i], act);
}

#ifndef SK_HAVE_OPENBLAS
/* Without OpenBLAS: each row of C accumulated as axpys over rows of B (the
 * reference linear's scheme, vectorised by the compiler). */
static void sgemm_loops(int b_trans, int64_t M, int64_t N, int64_t K, float alpha,
                        const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
                        float *C, int64_t ldc)
{
    for (int64_t i = 0; i < M; i++) {
        float *c = C + i * ldc;
        for (int64_t j = 0; j < N; j++) c[j] = beta == 0.0f ? 0.0f : beta * c[j];
        for (int64_t k = 0; k < K; k++) {
            const float a = alpha * A[i * lda + k];
            if (b_trans)
                for (int64_t j = 0; j < N; j++) c[j] += a * B[j * ldb + k];
            else
                sk_cpu_axpy(c, a, B + k * ldb, N);
        }
    }
}
#endif

static void sgemm1(int b_trans, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                   int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc)
{
#ifdef SK_HAVE_OPENBLAS
    cblas_sgemm(CblasRowMajor, CblasNoTrans, b_trans ? CblasTrans : CblasNoTrans, (blasint)M,
                (blasint)N, (blasint)K, alpha, A, (blasint)lda, B, (blasint)ldb, beta, C,
                (blasint)ldc);
#else
    sgemm_loops(b_trans, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
#endif
}

typedef struct {
    int b_trans, by_rows;
    int64_t M, N, K, lda, ldb, ldc;
    float alpha, beta;
    const float *A, *B;
    float *C;
} gemm_job;

static void gemm_part(void *c, int64_t s0, int64_t s1)
{
    const gemm_job *j = c;
    const int64_t n = s1 - s0;
    if (j->by_rows)
        sgemm1(j->b_trans, n, j->N, j->K, j->alpha, j->A + s0 * j->lda, j->lda, j->B, j->ldb,
               j->beta, j->C + s0 * j->ldc, j->ldc);
    else
        sgemm1(j->b_trans, j->M, n, j->K, j->alpha, j->A, j->lda,
               j->b_trans ? j->B + s0 * j->ldb : j->B + s0, j->ldb, j->beta, j->C + s0, j->ldc);
}

/* One pool of threads only: OpenBLAS runs single-threaded (fast_init) and a
 * large product is split over the pool (cpu_pool.h) by rows of C, or by
 * columns when C is wide and short. OpenBLAS's own threads and a second pool
 * both spin-waiting made a loaded 2-core machine many times slower. */
void sk_cpu_sgemm(int b_trans, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                  int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc)
{
    if (M == 0 || N == 0) return;
    gemm_job j = {b_trans, M >= N, M, N, K, lda, ldb, ldc, alpha, beta, A, B, C};
    const int64_t len = j.by_rows ? M : N, other = j.by_rows ? N : M;
    /* pieces of >= 16 rows (OpenBLAS's micro-tiles) and >= ~2 Mflop */
    int64_t grain = (int64_t)(1e6 / ((double)other * (double)(K ? K : 1))) + 1;
    if (grain < 16) grain = 16;
    sk_par_for(len, grain, gemm_part, &j);
}

typedef struct {
    float *dst;
    const void *src;
    sk_dtype dt;
    size_t es;
    _Atomic int bad;
} convert_job;

static void convert_part(void *c, int64_t i0, int64_t i1)
{
    convert_job *j = c;
    if (sk_convert(j->dst + i0, SK_DTYPE_F32, (const char *)j->src + (size_t)i0 * j->es, j->dt,
                   (size_t)(i1 - i0)) != SK_OK)
        j->bad = 1;
}

sk_status sk_cpu_fast_weight_f32(const sk_tensor *w, const float **out, float **owned)
{
    *owned = NULL;
    if (w->dtype == SK_DTYPE_F32) {
        *out = (const float *)w->data;
        return SK_OK;
    }
    const int64_t n = sk_tensor_numel(w);
    float *tmp;
    SK_TRY(sk_cpu_scratch("weight", (size_t)n * sizeof(float), (void **)&tmp));
    convert_job j = {tmp, w->data, w->dtype, sk_dtype_size(w->dtype), 0};
    sk_par_for(n, 65536, convert_part, &j);
    const int bad = j.bad;
    if (bad) {
        free(tmp);
        return SK_ERR(SK_E_UNSUPPORTED, "cpu: cannot convert a %s weight to f32",
                      sk_dtype_name(w->dtype));
    }
    *owned = tmp;
    *out = tmp;
    return SK_OK;
}

static sk_status fast_linear_fp8(sk_backend *be, sk_tensor *y, const sk_tensor *q,
                                 const sk_tensor *sx, const sk_tensor *w, const sk_tensor *sw,
                                 const sk_tensor *b, sk_act act)
{
    return sk_cpu_linear_fp8_with(be, y, q, sx, w, sw, b, act, sk_cpu_fast_linear);
}

static void fast_ops_init(void)
{
    sk_backend *ref = NULL;
    if (sk_backend_cpu_create(&ref) != SK_OK) return;
    g_fast_ops = *ref->ops;
    ref->ops->destroy(ref);
    g_fast_ops.linear = sk_cpu_fast_linear;
    g_fast_ops.linear_fp8 = fast_linear_fp8;
    g_fast_ops.conv2d = sk_cpu_fast_conv2d;
    g_fast_ops.attention = sk_cpu_fast_attention;
    g_fast_ops.layernorm = sk_cpu_fast_layernorm;
    g_fast_ops.rmsnorm = sk_cpu_fast_rmsnorm;
    g_fast_ops.modulate = sk_cpu_fast_modulate;
    g_fast_ops.gated_add = sk_cpu_fast_gated_add;
    g_fast_ops.axpby = sk_cpu_fast_axpby;
    g_fast_ops.mul = sk_cpu_fast_mul;
    g_fast_ops.act = sk_cpu_fast_act;
    g_fast_ops.rope3d = sk_cpu_fast_rope3d;
    g_fast_ops.upsample_nearest = sk_cpu_fast_upsample_nearest;
    g_fast_ops.pixel_shuffle = sk_cpu_fast_pixel_shuffle;
}

sk_status sk_backend_cpu_fast_create(sk_backend **out)
{
    SK_CHECK(out, SK_E_INVALID_ARG, "cpu: sk_backend_cpu_fast_create without an output pointer");
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, fast_ops_init);
    SK_CHECK(g_fast_ops.alloc, SK_E_OOM, "cpu: out of host memory creating the backend");
    sk_cpu_fast_threads();
    SK_TRY(sk_backend_cpu_create(out));
    (*out)->ops = &g_fast_ops;
    return SK_OK;
}
