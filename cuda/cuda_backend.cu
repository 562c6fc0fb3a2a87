/* cuda_backend.cu - CUDA backend creation, memory, transfers and the op table.
 *
 * Ops are asynchronous on the backend's one stream; upload waits for its copy
 * (the caller may free the host buffer right after), download and sync wait for
 * everything queued before them and report deferred kernel errors.
 */
#include <stdlib.h>
#include <string.h>

#include "cuda_internal.h"
#include "cuda_attention.h"
#include "sk_cuda.h"

/* cuBLASLt workspace: 32 MiB is what NVIDIA recommends for Hopper GEMMs. */
#define SK_CUDA_LT_WS_BYTES (32u << 20)
/* scratch made at creation; enough to convert a 1.3B DiT FFN weight (8960x1536) */
#define SK_CUDA_SCRATCH_BYTES (64u << 20)

static sk_status check_deferred(sk_backend *be, const char *op)
{
    sk_cuda_ctx *c = sk_cuda(be);
    int flag = 0;
    SK_CU(op, cudaMemcpyAsync(&flag, c->err_flag, sizeof flag, cudaMemcpyDeviceToHost, c->stream));
    SK_CU(op, cudaStreamSynchronize(c->stream));
    if (flag) {
        SK_CU(op, cudaMemsetAsync(c->err_flag, 0, sizeof(int), c->stream));
        if (flag & SK_CUDA_ERR_EMBED_RANGE)
            return SK_ERR(SK_E_INVALID_ARG,
                          "cuda embedding: an id was outside [0, rows) of the table and was "
                          "clamped (reported at %s); check the token ids",
                          op);
    }
    return SK_OK;
}

static sk_status cu_alloc(sk_backend *be, size_t bytes, void **out)
{
    sk_cuda_ctx *c = sk_cuda(be);
    void *p = NULL;
    SK_CHECK(!c->capturing, SK_E_INTERNAL,
             "cuda alloc: %zu bytes asked for while a graph is being recorded (the chunk loop "
             "must not allocate)", bytes);
    cudaError_t e = cudaMalloc(&p, bytes);
    c->n_mallocs++;
    if (e != cudaSuccess) {
        size_t fr = 0, tot = 0;
        cudaGetLastError();
        cudaMemGetInfo(&fr, &tot);
        return SK_ERR(SK_E_OOM,
                      "cuda alloc: %zu bytes failed (%s); device %d has %zu of %zu MiB free; "
                      "use a smaller resolution/window or bf16 activations",
                      bytes, cudaGetErrorString(e), c->device, fr >> 20, tot >> 20);
    }
    if (c->n_allocs == c->cap_allocs) {
        size_t cap = c->cap_allocs ? c->cap_allocs * 2 : 256;
        sk_cuda_allocation *na =
            (sk_cuda_allocation *)realloc(c->allocs, cap * sizeof(sk_cuda_allocation));
        if (!na) {
            cudaFree(p);
            return SK_ERR(SK_E_OOM, "cuda alloc: out of host memory for the allocation table");
        }
        c->allocs = na;
        c->cap_allocs = cap;
    }
    c->allocs[c->n_allocs].ptr = p;
    c->allocs[c->n_allocs].bytes = bytes;
    c->n_allocs++;
    be->bytes_live += bytes;
    if (be->bytes_live > be->bytes_peak) be->bytes_peak = be->bytes_live;
    *out = p;
    return SK_OK;
}

static void cu_free(sk_backend *be, void *p)
{
    sk_cuda_ctx *c = sk_cuda(be);
    if (!p) return;
    for (size_t i = c->n_allocs; i-- > 0;) {
        if (c->allocs[i].ptr == p) {
            be->bytes_live -= c->allocs[i].bytes;
            c->allocs[i] = c->allocs[--c->n_allocs];
            break;
        }
    }
    /* cudaFree waits for the device: work queued on p finishes first */
    cudaFree(p);
}

static sk_status cu_upload(sk_backend *be, void *dst, const void *src, size_t bytes)
{
    sk_cuda_ctx *c = sk_cuda(be);
    SK_CHECK(!c->capturing, SK_E_INTERNAL, "cuda upload while a graph is being recorded");
    SK_CU("upload", cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, c->stream));
    SK_CU("upload", cudaStreamSynchronize(c->stream));
    return SK_OK;
}

static sk_status cu_download(sk_backend *be, void *dst, const void *src, size_t bytes)
{
    sk_cuda_ctx *c = sk_cuda(be);
    SK_CHECK(!c->capturing, SK_E_INTERNAL, "cuda download while a graph is being recorded");
    SK_CU("download", cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, c->stream));
    return check_deferred(be, "download");
}

static sk_status cu_copy(sk_backend *be, void *dst, const void *src, size_t bytes)
{
    SK_CU("copy", cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, sk_cuda(be)->stream));
    return SK_OK;
}

static sk_status cu_zero(sk_backend *be, void *dst, size_t bytes)
{
    SK_CU("zero", cudaMemsetAsync(dst, 0, bytes, sk_cuda(be)->stream));
    return SK_OK;
}

static sk_status cu_sync(sk_backend *be)
{
    SK_CHECK(!sk_cuda(be)->capturing, SK_E_INTERNAL, "cuda sync while a graph is being recorded");
    return check_deferred(be, "sync");
}

static void cu_destroy(sk_backend *be)
{
    if (!be) return;
    sk_cuda_ctx *c = sk_cuda(be);
    if (c) {
        cudaSetDevice(c->device);
        if (c->stream) cudaStreamSynchronize(c->stream);
        if (c->n_allocs)
            SK_LOGW("cuda: backend destroyed with %zu allocations (%zu bytes) still live",
                    c->n_allocs, be->bytes_live);
        for (size_t i = 0; i < c->n_allocs; i++) cudaFree(c->allocs[i].ptr);
        free(c->allocs);
        sk_cuda_graph_destroy(c);
        sk_cuda_cudnn_destroy(c);
        sk_cuda_attention_cudnn_destroy(c);
        sk_cuda_attention_fp8_destroy(c);
        if (c->lt) cublasLtDestroy(c->lt);
        if (c->lt_ws) cudaFree(c->lt_ws);
        if (c->scratch) cudaFree(c->scratch);
        if (c->fa3_split) cudaFree(c->fa3_split);
        if (c->err_flag) cudaFree(c->err_flag);
        if (c->stream) cudaStreamDestroy(c->stream);
        free(c);
    }
    free(be);
}

sk_status sk_cuda_scratch(sk_backend *be, size_t bytes, void **out)
{
    sk_cuda_ctx *c = sk_cuda(be);
    if (bytes > c->scratch_bytes) {
        SK_CHECK(!c->capturing, SK_E_INTERNAL,
                 "cuda: the scratch buffer must grow (%zu bytes) while a graph is being recorded",
                 bytes);
        size_t nb = bytes + (bytes >> 3);
        SK_LOGI("cuda: growing the scratch buffer from %zu to %zu MiB", c->scratch_bytes >> 20,
                nb >> 20);
        SK_TRY(sk_cuda_grow(c, &c->scratch, &c->scratch_bytes, bytes, "scratch"));
    }
    *out = c->scratch;
    return SK_OK;
}

sk_status sk_cuda_grow(sk_cuda_ctx *c, void **buf, size_t *cap, size_t bytes, const char *what)
{
    if (bytes <= *cap) return SK_OK;
    const size_t nb = bytes + (bytes >> 3);
    SK_CU(what, cudaStreamSynchronize(c->stream));
    cudaFree(*buf);
    *buf = NULL;
    *cap = 0;
    c->scratch_gen++;
    c->n_mallocs++;
    SK_CU(what, cudaMalloc(buf, nb));
    *cap = nb;
    return SK_OK;
}

static const sk_backend_ops cuda_ops = {
    cu_alloc,
    cu_free,
    cu_upload,
    cu_download,
    cu_copy,
    cu_zero,
    cu_sync,
    cu_destroy,
    sk_cuda_convert,
    sk_cuda_linear,
    sk_cuda_layernorm,
    sk_cuda_rmsnorm,
    sk_cuda_modulate,
    sk_cuda_gated_add,
    sk_cuda_axpby,
    sk_cuda_mul,
    sk_cuda_act,
    sk_cuda_attention,
    sk_cuda_rope3d,
    sk_cuda_conv2d,
    sk_cuda_pixel_shuffle,
    sk_cuda_pixel_unshuffle,
    sk_cuda_upsample_nearest,
    sk_cuda_concat_channels,
    sk_cuda_patchify,
    sk_cuda_unpatchify,
    sk_cuda_embedding,
    sk_cuda_noise,
    sk_cuda_graph_begin,
    sk_cuda_graph_end,
    sk_cuda_graph_find,
    sk_cuda_graph_launch,
    sk_cuda_rmsnorm_rope3d,
    sk_cuda_flag_nonfinite,
    NULL, /* transpose: the Wan2.2 VAE encoder runs on the CPU backend */
    NULL, /* pad2d */
    sk_cuda_quantize_rows,
    sk_cuda_linear_fp8,
    sk_cuda_attention_fp8,
    sk_cuda_quantize_rows_pow2,
    sk_cuda_modulate_fp8,
    sk_cuda_layernorm_fp8,
};

extern "C" sk_status sk_backend_cuda_create(int device, sk_dtype act_dtype, sk_backend **out)
{
    SK_CHECK(out, SK_E_INVALID_ARG, "cuda: no output pointer");
    *out = NULL;
    SK_CHECK(act_dtype == SK_DTYPE_BF16 || act_dtype == SK_DTYPE_F32, SK_E_DTYPE,
             "cuda: activation dtype %s is not supported; use bf16 (fast) or f32 (parity)",
             sk_dtype_name(act_dtype));
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n == 0) {
        cudaGetLastError();
        return SK_ERR(SK_E_UNSUPPORTED,
                      "no CUDA device: cudaGetDeviceCount says %s (%d devices); run on a machine "
                      "with an NVIDIA GPU and driver, or use --device cpu",
                      e == cudaSuccess ? "no device" : cudaGetErrorString(e), n);
    }
    SK_CHECK(device >= 0 && device < n, SK_E_INVALID_ARG,
             "cuda: device %d does not exist (this machine has %d); use cuda:0..cuda:%d", device,
             n, n - 1);
    SK_CU("create", cudaSetDevice(device));
    cudaDeviceProp prop;
    SK_CU("create", cudaGetDeviceProperties(&prop, device));
    SK_CHECK(prop.major >= 8, SK_E_UNSUPPORTED,
             "cuda: device %d (%s) has compute capability %d.%d; sinkstream needs 8.0 or newer "
             "(bf16 tensor cores)",
             device, prop.name, prop.major, prop.minor);

    sk_backend *be = (sk_backend *)calloc(1, sizeof *be);
    sk_cuda_ctx *c = (sk_cuda_ctx *)calloc(1, sizeof *c);
    if (!be || !c) {
        free(be);
        free(c);
        return SK_ERR(SK_E_OOM, "cuda: out of host memory creating the backend");
    }
    be->name = "cuda";
    be->act_dtype = act_dtype;
    be->ops = &cuda_ops;
    be->ctx = c;
    c->device = device;
    c->n_sm = prop.multiProcessorCount;

    sk_status st = SK_OK;
#define CREATE_CU(call)                                                                       \
    do {                                                                                      \
        cudaError_t ce_ = (call);                                                             \
        if (ce_ != cudaSuccess) {                                                             \
            st = SK_ERR(SK_E_CUDA, "cuda create: %s in %s", cudaGetErrorString(ce_), #call); \
            goto fail;                                                                        \
        }                                                                                     \
    } while (0)
    CREATE_CU(cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking));
    CREATE_CU(cudaMalloc(&c->lt_ws, SK_CUDA_LT_WS_BYTES));
    c->lt_ws_bytes = SK_CUDA_LT_WS_BYTES;
    CREATE_CU(cudaMalloc(&c->scratch, SK_CUDA_SCRATCH_BYTES));
    c->scratch_bytes = SK_CUDA_SCRATCH_BYTES;
    CREATE_CU(cudaMalloc(&c->err_flag, sizeof(int)));
    CREATE_CU(cudaMemset(c->err_flag, 0, sizeof(int)));
#undef CREATE_CU
    {
        cublasStatus_t bs = cublasLtCreate(&c->lt);
        if (bs != CUBLAS_STATUS_SUCCESS) {
            st = SK_ERR(SK_E_CUDA, "cuda create: cublasLtCreate failed: %s",
                        cublasGetStatusString(bs));
            goto fail;
        }
    }
    /* which image of the attention kernels the driver loaded (sm_90a has wgmma) */
    c->wgmma_ok = prop.major == 9 && sk_cuda_wgmma_probe(c->stream, c->err_flag);
    cudaGetLastError();
    SK_LOGI("cuda: device %d %s (sm_%d%d, %d SMs, %zu MiB), activations %s, attention %s", device,
            prop.name, prop.major, prop.minor, prop.multiProcessorCount,
            prop.totalGlobalMem >> 20, sk_dtype_name(act_dtype),
            c->wgmma_ok ? "wgmma" : "mma.sync");
    *out = be;
    return SK_OK;
fail:
    cu_destroy(be);
    return st;
}

extern "C" void *sk_cuda_backend_stream(sk_backend *be)
{
    if (!be || !be->ops || be->ops != &cuda_ops) return NULL;
    return (void *)sk_cuda(be)->stream;
}

extern "C" int sk_cuda_backend_device(sk_backend *be)
{
    if (!be || !be->ops || be->ops != &cuda_ops) return -1;
    return sk_cuda(be)->device;
}
