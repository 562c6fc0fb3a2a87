/* backend.h - the backend op table.
 *
 * Model code (dit/, vae/, text/) calls only the sk_op_* functions below; it
 * never includes a CUDA header. Two backends implement the table: the CPU
 * reference (runtime/cpu/, plain loops, fp32 accumulation, the oracle CI runs)
 * and CUDA (cuda/). The sk_op_* wrappers (runtime/core/ops.c) check shapes and
 * dtypes once for every backend, then call the backend's function pointer.
 *
 * Conventions for every op:
 *  - all tensors are dense, contiguous, and live on the backend they are passed to;
 *  - outputs are written, never accumulated into, unless the op says "in place";
 *  - activations use the backend's act_dtype (f32 on CPU; bf16 or f32 on CUDA);
 *    weights of linear/conv may be f32, f16 or bf16 (and the backend converts);
 *  - returns SK_OK or a status with a message (sk_error_message()).
 */
#ifndef SK_BACKEND_H
#define SK_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "runtime/core/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    SK_ACT_NONE = 0,
    SK_ACT_GELU_TANH,   /* 0.5x(1+tanh(sqrt(2/pi)(x+0.044715x^3)))          */
    SK_ACT_SILU,        /* x*sigmoid(x)                                      */
    SK_ACT_RELU,
    SK_ACT_TANH_CLAMP,  /* 3*tanh(x/3): TAEHV's soft clamp of latents         */
    SK_ACT_CLAMP01,     /* min(max(x,0),1): TAEHV's output clamp             */
    SK_ACT_COUNT_
} sk_act;

/* A range of cached keys/values to attend to: rows [start, start+len) of
 * k and v, both [Ncap, NH, HD]. A query block attends to the concatenation
 * of its ranges in order, without them being copied together.
 * k and v in e4m3 (the FP8 KV cache, fp8.h; attention_fp8 only): row r of k
 * is dequantized with k_scale[r / scale_rows] (f32 [Ncap / scale_rows]: one
 * scale per cached frame), v likewise; the scale fields are read only then. */
typedef struct {
    const sk_tensor *k;
    const sk_tensor *v;
    int64_t start;
    int64_t len;
    const sk_tensor *k_scale;
    const sk_tensor *v_scale;
    int64_t scale_rows;
} sk_kv_range;

typedef struct sk_backend_ops {
    /* memory */
    sk_status (*alloc)(sk_backend *be, size_t bytes, void **out);
    void (*free)(sk_backend *be, void *p);
    sk_status (*upload)(sk_backend *be, void *dst, const void *host_src, size_t bytes);
    sk_status (*download)(sk_backend *be, void *host_dst, const void *src, size_t bytes);
    sk_status (*copy)(sk_backend *be, void *dst, const void *src, size_t bytes);
    sk_status (*zero)(sk_backend *be, void *dst, size_t bytes);
    sk_status (*sync)(sk_backend *be);
    void (*destroy)(sk_backend *be);

    /* y = x converted to y's dtype (same shape) */
    sk_status (*convert)(sk_backend *be, sk_tensor *y, const sk_tensor *x);

    /* y[M,N] = act(x[M,K] . w[N,K]^T + b[N]);  b may be NULL */
    sk_status (*linear)(sk_backend *be, sk_tensor *y, const sk_tensor *x, const sk_tensor *w,
                        const sk_tensor *b, sk_act act);

    /* y[R,D] = (x - mean)/sqrt(var + eps) * w + b over the last dim; w, b may be NULL */
    sk_status (*layernorm)(sk_backend *be, sk_tensor *y, const sk_tensor *x, const sk_tensor *w,
                           const sk_tensor *b, float eps);
    /* y[R,D] = x / sqrt(mean(x^2) + eps) * w; w may be NULL */
    sk_status (*rmsnorm)(sk_backend *be, sk_tensor *y, const sk_tensor *x, const sk_tensor *w,
                         float eps);

    /* Per-group modulation. x, y [R, D]; mod [G, K, D]; row r belongs to
     * group g = r / rows_per_group (R = G * rows_per_group).
     *   y = x * (1 + mod[g, i_scale]) + mod[g, i_shift]
     * ln != 0 first applies a LayerNorm without affine (eps) to x: the DiT's
     * "norm -> modulate" pair fused. y may equal x. */
    sk_status (*modulate)(sk_backend *be, sk_tensor *y, const sk_tensor *x, const sk_tensor *mod,
                          int i_shift, int i_scale, int64_t rows_per_group, int ln, float eps);
    /* In place: x[R,D] += y[R,D] * mod[g, i_gate]  (gate per group as above);
     * i_gate < 0 means no gate (plain residual add), mod may then be NULL. */
    sk_status (*gated_add)(sk_backend *be, sk_tensor *x, const sk_tensor *y, const sk_tensor *mod,
                           int i_gate, int64_t rows_per_group);

    /* Elementwise, same shapes (y may alias a or x):
     *   axpby: y = a*x + b*z          mul: y = x*z          act: y = act(x) */
    sk_status (*axpby)(sk_backend *be, sk_tensor *y, float a, const sk_tensor *x, float b,
                       const sk_tensor *z);
    sk_status (*mul)(sk_backend *be, sk_tensor *y, const sk_tensor *x, const sk_tensor *z);
    sk_status (*act)(sk_backend *be, sk_tensor *y, const sk_tensor *x, sk_act act);

    /* Multi-head softmax attention.
     *   out [Nq, NH*HD], q [Nq, NH, HD], keys = concat of ranges (Nk rows total)
     *   out[i,h,:] = sum_j softmax_j(scale * q[i,h].k[j,h] + bias[h,i,j]) v[j,h,:]
     * bias [NH, Nq, Nk] or NULL (T5's relative position bias); scale 1 for T5,
     * 1/sqrt(HD) for Wan. Softmax statistics in f32 (f64 on CPU). */
    sk_status (*attention)(sk_backend *be, sk_tensor *out, const sk_tensor *q,
                           const sk_kv_range *ranges, int nranges, float scale,
                           const sk_tensor *bias);

    /* In place 3D RoPE on interleaved pairs (x[2j], x[2j+1]).
     * x [N, NH, HD] with N = F*Hp*Wp, tokens frame-major then row then column.
     * The HD/2 pairs split into t = c - 2*(c/3), h = c/3, w = c/3 pairs (c = HD/2);
     * pair j of axis a rotates by pos_a * theta^(-2j/(2*pairs_a)).
     * Positions: t = t0 + f, h = row, w = column. Angles in f64 on CPU. */
    sk_status (*rope3d)(sk_backend *be, sk_tensor *x, int64_t F, int64_t Hp, int64_t Wp,
                        int64_t t0, double theta);

    /* y[N,Co,Ho,Wo] = conv2d(x[N,Ci,H,W], w[Co,Ci,kh,kw]) + b[Co] (b may be NULL);
     * Ho = (H + 2*pad - kh)/stride + 1 */
    sk_status (*conv2d)(sk_backend *be, sk_tensor *y, const sk_tensor *x, const sk_tensor *w,
                        const sk_tensor *b, int stride, int pad);
    /* PyTorch pixel_shuffle: y[N,C,H*p,W*p](c, h*p+i, w*p+j) = x[N,C*p*p,H,W](c*p*p+i*p+j, h, w);
     * pixel_unshuffle is its inverse. */
    sk_status (*pixel_shuffle)(sk_backend *be, sk_tensor *y, const sk_tensor *x, int p);
    sk_status (*pixel_unshuffle)(sk_backend *be, sk_tensor *y, const sk_tensor *x, int p);
    /* y[N,C,H*s,W*s] = nearest upsampling of x[N,C,H,W] */
    sk_status (*upsample_nearest)(sk_backend *be, sk_tensor *y, const sk_tensor *x, int s);
    /* y[N,Ca+Cb,H,W] = concat over channels of a[N,Ca,H,W], b[N,Cb,H,W] */
    sk_status (*concat_channels)(sk_backend *be, sk_tensor *y, const sk_tensor *a,
                                 const sk_tensor *b);

    /* Wan patch embedding input, patch (1,2,2):
     *   y[F*Hp*Wp, C*4](token, c*4 + q*2 + r) = x[F,C,H,W](f, c, 2h'+q, 2w'+r)
     * and unpatchify, channel fastest:
     *   y[F,C,H,W](f, c, 2h'+q, 2w'+r) = x[F*Hp*Wp, 4*C](token, (q*2+r)*C + c) */
    sk_status (*patchify)(sk_backend *be, sk_tensor *y, const sk_tensor *x);
    sk_status (*unpatchify)(sk_backend *be, sk_tensor *y, const sk_tensor *x);

    /* y[N,D] = table[ids[n], :]; ids is an i32 tensor [N] on this backend;
     * out-of-range ids are an error (checked on the host for CPU, clamped and
     * reported by the CUDA backend). */
    sk_status (*embedding)(sk_backend *be, sk_tensor *y, const sk_tensor *table,
                           const sk_tensor *ids);

    /* Counter-based standard normal noise (runtime/core/noise.h defines the
     * generator): y viewed as [F, E] gets, for frame f and element e,
     *   sk_noise_value(seed, frame0 + f, stream, e).
     * Identical bits on every backend and independent of chunking. */
    sk_status (*noise)(sk_backend *be, sk_tensor *y, uint64_t seed, int64_t frame0,
                       uint32_t stream);

    /* Optional graph capture (NULL where the backend has none; CUDA graphs).
     * graph_begin starts recording: the ops issued until graph_end are
     * recorded, not run, and must not sync, upload, download or allocate.
     * graph_end stores the recording as the executable graph of `key` (a byte
     * string the caller derives from everything the recording depends on:
     * buffer addresses, shapes, scalars). Keys equal in their first 16 bytes
     * should record the same op sequence: a new recording replaces the least
     * recently used graph of such a key (patched in place, much cheaper than a
     * fresh one, or made afresh if the sequences differ after all), else the
     * least recently used graph. discard != 0 drops the
     * recording (error path). graph_find says whether a usable graph of key
     * exists (not evicted, not stale because a buffer it used was
     * reallocated); graph_launch runs it on the backend's stream. */
    sk_status (*graph_begin)(sk_backend *be);
    sk_status (*graph_end)(sk_backend *be, const void *key, size_t key_len, int discard);
    int (*graph_find)(sk_backend *be, const void *key, size_t key_len);
    sk_status (*graph_launch)(sk_backend *be, const void *key, size_t key_len);

    /* Optional fusion (NULL: sk_op_rmsnorm_rope3d runs rmsnorm then rope3d):
     * y [N, NH, HD] = rope3d(rmsnorm(x [N, NH*HD], w, eps)) with the rope3d
     * arguments; the DiT's q/k path in one pass over the data. */
    sk_status (*rmsnorm_rope3d)(sk_backend *be, sk_tensor *y, const sk_tensor *x,
                                const sk_tensor *w, float eps, int64_t F, int64_t Hp, int64_t Wp,
                                int64_t t0, double theta);

    /* Optional (NULL: sk_op_flag_nonfinite downloads x and checks on the host):
     * sets the backend int32 *flag to 1 when x (a float dtype) holds a NaN or
     * Inf, never back to 0; queued like any op, no sync. */
    sk_status (*flag_nonfinite)(sk_backend *be, const sk_tensor *x, void *flag);

    /* The Wan2.2 VAE encoder's layout ops (vae/wan_vae_enc.c); NULL where a
     * backend lacks them (the encoder then runs on the CPU backend):
     *   transpose: y[B,N,M](b,n,m) = x[B,M,N](b,m,n)  (channel-first <-> token-major)
     *   pad2d: y[N,C,Ho,Wo] = x[N,C,H,W] placed at (top, left), zeros elsewhere
     *          (Ho >= H + top, Wo >= W + left: PyTorch's ZeroPad2d) */
    sk_status (*transpose)(sk_backend *be, sk_tensor *y, const sk_tensor *x);
    sk_status (*pad2d)(sk_backend *be, sk_tensor *y, const sk_tensor *x, int top, int left);
    /* FP8 (e4m3) row-wise quantization, defined in runtime/core/fp8.h (NULL: the
     * backend has no FP8 and --dtype fp8 is refused on it):
     *   quantize_rows: q [M, K] e4m3 and s [M] f32 from x [M, K] (act dtype), one
     *                  scale per row;
     *   linear_fp8:    y [M, N] = act(acc * (sx[m] * sw[n]) + b[n]), acc = q . w^T
     *                  with q [M, K] e4m3, sx [M] f32, w [N, K] e4m3, sw [N] f32,
     *                  b [N] (act dtype) or NULL. */
    sk_status (*quantize_rows)(sk_backend *be, sk_tensor *q, sk_tensor *s, const sk_tensor *x);
    sk_status (*linear_fp8)(sk_backend *be, sk_tensor *y, const sk_tensor *q, const sk_tensor *sx,
                            const sk_tensor *w, const sk_tensor *sw, const sk_tensor *b,
                            sk_act act);
    /* FP8 self-attention (fp8.h: per-tensor e4m3 q, k, v, e4m3 probabilities), the
     * same arguments as attention without a bias; out in the act dtype. NULL: the
     * backend has none (the DiT then runs attention in its act dtype). */
    sk_status (*attention_fp8)(sk_backend *be, sk_tensor *out, const sk_tensor *q,
                               const sk_kv_range *ranges, int nranges, float scale);
    /* quantize_rows with power-of-two scales (fp8.h: the FP8 KV cache's frames, one
     * row each). NULL: the backend keeps its KV cache in the act dtype. */
    sk_status (*quantize_rows_pow2)(sk_backend *be, sk_tensor *q, sk_tensor *s, const sk_tensor *x);
    /* modulate, then quantize_rows of its output, in one pass over each row (the FP8
     * DiT's activations quantized inside the kernel that makes them: issue 19). y is
     * written as modulate writes it and q/s are quantize_rows(y) of y's act-dtype values,
     * bit for bit. NULL: sk_op_modulate_fp8 runs the two ops. */
    sk_status (*modulate_fp8)(sk_backend *be, sk_tensor *y, sk_tensor *q, sk_tensor *s,
                              const sk_tensor *x, const sk_tensor *mod, int i_shift, int i_scale,
                              int64_t rows_per_group, int ln, float eps);
    /* the same for layernorm (affine w/b optional): y = layernorm(x), q/s = quantize_rows(y) */
    sk_status (*layernorm_fp8)(sk_backend *be, sk_tensor *y, sk_tensor *q, sk_tensor *s,
                               const sk_tensor *x, const sk_tensor *w, const sk_tensor *b,
                               float eps);
} sk_backend_ops;

struct sk_backend {
    const char *name;        /* "cpu", "cuda"                                */
    sk_dtype act_dtype;      /* dtype activations are computed and stored in */
    const sk_backend_ops *ops;
    void *ctx;               /* backend private state                        */
    /* counters for tests/benchmarks */
    uint64_t n_allocs;       /* number of alloc calls so far                 */
    size_t bytes_live, bytes_peak;
};

/* Backend creation. The CPU backend always exists; the CUDA backend returns
 * SK_E_UNSUPPORTED when the build has no CUDA or no device is present. */
sk_status sk_backend_cpu_create(sk_backend **out);
sk_status sk_backend_cuda_create(int device, sk_dtype act_dtype, sk_backend **out);
/* by name: runtime/engine/device.h (above the ground: it picks cpu/ or cuda/) */
void sk_backend_free_(sk_backend **be); /* accepts NULL and *be == NULL; NULLs it */

sk_status sk_backend_alloc(sk_backend *be, size_t bytes, void **out);
void sk_backend_free(sk_backend *be, void *p);
sk_status sk_backend_sync(sk_backend *be);

/* Host <-> backend transfers of whole tensors, with dtype conversion on the
 * host side: sk_tensor_from_host copies n f32 values into t (converted to
 * t->dtype); sk_tensor_to_host_f32 returns t's values as f32. */
sk_status sk_tensor_upload_f32(sk_tensor *t, const float *src, size_t n);
sk_status sk_tensor_download_f32(const sk_tensor *t, float *dst, size_t n);
/* raw bytes of matching size */
sk_status sk_tensor_upload_raw(sk_tensor *t, const void *src, size_t bytes);
sk_status sk_tensor_download_raw(const sk_tensor *t, void *dst, size_t bytes);
sk_status sk_tensor_copy(sk_tensor *dst, const sk_tensor *src); /* same backend, same bytes */
sk_status sk_tensor_zero(sk_tensor *t);

/* Checked op entry points (one per table entry). */
sk_status sk_op_convert(sk_backend *be, sk_tensor *y, const sk_tensor *x);
sk_status sk_op_linear(sk_backend *be, sk_tensor *y, const sk_tensor *x, const sk_tensor *w,
                       const sk_tensor *b, sk_act act);
sk_status sk_op_layernorm(sk_backend *be, sk_tensor *y, const sk_tensor *x, const sk_tensor *w,
                          const sk_tensor *b, float eps);
sk_status sk_op_rmsnorm(sk_backend *be, sk_tensor *y, const sk_tensor *x, const sk_tensor *w,
                        float eps);
sk_status sk_op_modulate(sk_backend *be, sk_tensor *y, const sk_tensor *x, const sk_tensor *mod,
                         int i_shift, int i_scale, int64_t rows_per_group, int ln, float eps);
sk_status sk_op_gated_add(sk_backend *be, sk_tensor *x, const sk_tensor *y, const sk_tensor *mod,
                          int i_gate, int64_t rows_per_group);
sk_status sk_op_axpby(sk_backend *be, sk_tensor *y, float a, const sk_tensor *x, float b,
                      const sk_tensor *z);
sk_status sk_op_mul(sk_backend *be, sk_tensor *y, const sk_tensor *x, const sk_tensor *z);
/* *flag (an int32 in be's memory) = 1 when x holds a NaN or Inf (issue 15 #7:
 * a device-side flag per chunk, read once per chunk). */
sk_status sk_op_flag_nonfinite(sk_backend *be, const sk_tensor *x, void *flag);
sk_status sk_op_act(sk_backend *be, sk_tensor *y, const sk_tensor *x, sk_act act);
sk_status sk_op_attention(sk_backend *be, sk_tensor *out, const sk_tensor *q,
                          const sk_kv_range *ranges, int nranges, float scale,
                          const sk_tensor *bias);
sk_status sk_op_rope3d(sk_backend *be, sk_tensor *x, int64_t F, int64_t Hp, int64_t Wp,
                       int64_t t0, double theta);
/* y [N, NH, HD] = rope3d(rmsnorm(x [N, NH*HD], w, eps)): the backend's fused op
 * when it has one, else the two ops (y then rotated in place). */
sk_status sk_op_rmsnorm_rope3d(sk_backend *be, sk_tensor *y, const sk_tensor *x,
                               const sk_tensor *w, float eps, int64_t F, int64_t Hp, int64_t Wp,
                               int64_t t0, double theta);
sk_status sk_op_conv2d(sk_backend *be, sk_tensor *y, const sk_tensor *x, const sk_tensor *w,
                       const sk_tensor *b, int stride, int pad);
sk_status sk_op_pixel_shuffle(sk_backend *be, sk_tensor *y, const sk_tensor *x, int p);
sk_status sk_op_pixel_unshuffle(sk_backend *be, sk_tensor *y, const sk_tensor *x, int p);
sk_status sk_op_upsample_nearest(sk_backend *be, sk_tensor *y, const sk_tensor *x, int s);
sk_status sk_op_concat_channels(sk_backend *be, sk_tensor *y, const sk_tensor *a,
                                const sk_tensor *b);
sk_status sk_op_patchify(sk_backend *be, sk_tensor *y, const sk_tensor *x);
sk_status sk_op_unpatchify(sk_backend *be, sk_tensor *y, const sk_tensor *x);
sk_status sk_op_embedding(sk_backend *be, sk_tensor *y, const sk_tensor *table,
                          const sk_tensor *ids);
sk_status sk_op_noise(sk_backend *be, sk_tensor *y, uint64_t seed, int64_t frame0,
                      uint32_t stream);

sk_status sk_op_transpose(sk_backend *be, sk_tensor *y, const sk_tensor *x);
sk_status sk_op_pad2d(sk_backend *be, sk_tensor *y, const sk_tensor *x, int top, int left);
/* 1 when be implements every op the Wan2.2 VAE encoder uses (transpose, pad2d, ...). */
int sk_backend_has_vae_ops(const sk_backend *be);
/* FP8 (runtime/core/ops_fp8.c): the table's quantize_rows / linear_fp8 with
 * their shapes and dtypes checked; sk_backend_has_fp8 says whether be has both. */
sk_status sk_op_quantize_rows(sk_backend *be, sk_tensor *q, sk_tensor *s, const sk_tensor *x);
sk_status sk_op_linear_fp8(sk_backend *be, sk_tensor *y, const sk_tensor *q, const sk_tensor *sx,
                           const sk_tensor *w, const sk_tensor *sw, const sk_tensor *b,
                           sk_act act);
int sk_backend_has_fp8(const sk_backend *be);
/* FP8 self-attention (fp8.h) with attention's checks; SK_E_UNSUPPORTED where the
 * backend has none (sk_backend_has_attention_fp8 says). */
sk_status sk_op_attention_fp8(sk_backend *be, sk_tensor *out, const sk_tensor *q,
                              const sk_kv_range *ranges, int nranges, float scale);
int sk_backend_has_attention_fp8(const sk_backend *be);
/* y = modulate(x) (sk_op_modulate) and q/s = quantize_rows(y) (sk_op_quantize_rows), the
 * same checks; one kernel where the backend has modulate_fp8 and SK_FP8_FUSED_NORM=1 (opt-in
 * until measured on a GPU), else the two ops. Results are equal either way. */
sk_status sk_op_modulate_fp8(sk_backend *be, sk_tensor *y, sk_tensor *q, sk_tensor *s,
                             const sk_tensor *x, const sk_tensor *mod, int i_shift, int i_scale,
                             int64_t rows_per_group, int ln, float eps);
/* y = layernorm(x) and q/s = quantize_rows(y), as sk_op_modulate_fp8 (the same opt-in) */
sk_status sk_op_layernorm_fp8(sk_backend *be, sk_tensor *y, sk_tensor *q, sk_tensor *s,
                              const sk_tensor *x, const sk_tensor *w, const sk_tensor *b, float eps);
/* sk_op_layernorm's argument checks (op names the caller in messages) */
sk_status sk_op_layernorm_check(sk_backend *be, const char *op, const sk_tensor *y,
                                const sk_tensor *x, const sk_tensor *w, const sk_tensor *b,
                                float eps);
/* sk_op_modulate's argument checks (op names the caller in messages) */
sk_status sk_op_modulate_check(sk_backend *be, const char *op, const sk_tensor *y,
                               const sk_tensor *x, const sk_tensor *mod, int i_shift, int i_scale,
                               int64_t rows_per_group, float eps);
/* quantize_rows with power-of-two scales (fp8.h, the FP8 KV cache), the same checks */
sk_status sk_op_quantize_rows_pow2(sk_backend *be, sk_tensor *q, sk_tensor *s, const sk_tensor *x);
/* 1 when the backend can hold an FP8 KV cache: FP8 attention and quantize_rows_pow2 */
int sk_backend_has_fp8_kv(const sk_backend *be);

const char *sk_act_name(sk_act a);

#ifdef __cplusplus
}
#endif
#endif
