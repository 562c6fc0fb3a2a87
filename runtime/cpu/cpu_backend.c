/* cpu_backend.c - the CPU reference backend: memory, the op table, creation.
 *
 * Memory is plain host memory, 64-byte aligned. Each block carries a small
 * header with its size so bytes_live / bytes_peak can be kept without a
 * lookup table (free() gets only the pointer).
 */
#include "cpu_internal.h"

#include <string.h>

#define SK_CPU_ALIGN 64

static sk_status cpu_alloc(sk_backend *be, size_t bytes, void **out)
{
    size_t total = SK_CPU_ALIGN + ((bytes + SK_CPU_ALIGN - 1) / SK_CPU_ALIGN) * SK_CPU_ALIGN;
    SK_CHECK(total > bytes, SK_E_OOM, "cpu: allocation of %zu bytes overflows", bytes);
    char *base = aligned_alloc(SK_CPU_ALIGN, total);
    SK_CHECK(base, SK_E_OOM, "cpu: out of host memory allocating %zu bytes (%zu live); "
             "try a smaller resolution or fewer frames", bytes, be->bytes_live);
    memcpy(base, &bytes, sizeof bytes);
    be->bytes_live += bytes;
    if (be->bytes_live > be->bytes_peak) be->bytes_peak = be->bytes_live;
    *out = base + SK_CPU_ALIGN;
    return SK_OK;
}

static void cpu_free(sk_backend *be, void *p)
{
    if (!p) return;
    char *base = (char *)p - SK_CPU_ALIGN;
    size_t bytes;
    memcpy(&bytes, base, sizeof bytes);
    be->bytes_live -= bytes;
    free(base);
}

static sk_status cpu_upload(sk_backend *be, void *dst, const void *src, size_t bytes)
{
    if (bytes && dst != src) memmove(dst, src, bytes);
    return SK_OK;
}

static sk_status cpu_copy(sk_backend *be, void *dst, const void *src, size_t bytes)
{
    if (bytes && dst != src) memmove(dst, src, bytes);
    return SK_OK;
}

static sk_status cpu_zero(sk_backend *be, void *dst, size_t bytes)
{
    if (bytes) memset(dst, 0, bytes);
    return SK_OK;
}

static sk_status cpu_sync(sk_backend *be) { return SK_OK; }

static void cpu_destroy(sk_backend *be) { free(be); }

sk_status sk_cpu_scratch(const char *op, size_t bytes, void **out)
{
    *out = malloc(bytes ? bytes : 1);
    SK_CHECK(*out, SK_E_OOM, "cpu %s: out of host memory for %zu bytes of scratch", op, bytes);
    return SK_OK;
}

sk_status sk_cpu_weight_f32(const sk_tensor *w, const float **out, float **owned)
{
    *owned = NULL;
    if (w->dtype == SK_DTYPE_F32) {
        *out = (const float *)w->data;
        return SK_OK;
    }
    size_t n = (size_t)sk_tensor_numel(w);
    float *tmp;
    SK_TRY(sk_cpu_scratch("weight", n * sizeof(float), (void **)&tmp));
    sk_status st = sk_convert(tmp, SK_DTYPE_F32, w->data, w->dtype, n);
    if (st != SK_OK) {
        free(tmp);
        return st;
    }
    *owned = tmp;
    *out = tmp;
    return SK_OK;
}

static sk_status cpu_convert_op(sk_backend *be, sk_tensor *y, const sk_tensor *x)
{
    return sk_cpu_convert(be, y, x);
}

static const sk_backend_ops k_cpu_ops = {
    .alloc = cpu_alloc,
    .free = cpu_free,
    .upload = cpu_upload,
    .download = cpu_upload,
    .copy = cpu_copy,
    .zero = cpu_zero,
    .sync = cpu_sync,
    .destroy = cpu_destroy,
    .convert = cpu_convert_op,
    .linear = sk_cpu_linear,
    .layernorm = sk_cpu_layernorm,
    .rmsnorm = sk_cpu_rmsnorm,
    .modulate = sk_cpu_modulate,
    .gated_add = sk_cpu_gated_add,
    .axpby = sk_cpu_axpby,
    .mul = sk_cpu_mul,
    .act = sk_cpu_act,
    .attention = sk_cpu_attention,
    .rope3d = sk_cpu_rope3d,
    .conv2d = sk_cpu_conv2d,
    .pixel_shuffle = sk_cpu_pixel_shuffle,
    .pixel_unshuffle = sk_cpu_pixel_unshuffle,
    .upsample_nearest = sk_cpu_upsample_nearest,
    .concat_channels = sk_cpu_concat_channels,
    .patchify = sk_cpu_patchify,
    .unpatchify = sk_cpu_unpatchify,
    .embedding = sk_cpu_embedding,
    .noise = sk_cpu_noise,
    .flag_nonfinite = sk_cpu_flag_nonfinite,
    .transpose = sk_cpu_transpose,
    .pad2d = sk_cpu_pad2d,
    .quantize_rows = sk_cpu_quantize_rows,
    .linear_fp8 = sk_cpu_linear_fp8,
    .attention_fp8 = sk_cpu_attention_fp8,
    .quantize_rows_pow2 = sk_cpu_quantize_rows_pow2,
    .modulate_fp8 = sk_cpu_modulate_fp8,
    .layernorm_fp8 = sk_cpu_layernorm_fp8,
};

sk_status sk_backend_cpu_create(sk_backend **out)
{
    SK_CHECK(out, SK_E_INVALID_ARG, "cpu: sk_backend_cpu_create without an output pointer");
    sk_backend *be = calloc(1, sizeof *be);
    SK_CHECK(be, SK_E_OOM, "cpu: out of host memory creating the backend");
    be->name = "cpu";
    be->act_dtype = SK_DTYPE_F32;
    be->ops = &k_cpu_ops;
    *out = be;
    return SK_OK;
}
