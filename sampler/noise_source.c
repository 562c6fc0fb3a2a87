/* noise_source.c - Philox or file noise for the sampler (see noise_source.h). */
#include "sampler/noise_source.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/io/safetensors.h"
#include "runtime/core/noise.h"

struct sk_noise_source {
    int is_file;
    uint64_t seed;
    sk_st_file *f;
    int64_t C, H, W, frames, chunk;
    int steps;
    void *stage;        /* host staging, max chunk frames, f32 then target dtype */
    size_t stage_cap;
};

sk_status sk_noise_source_philox(uint64_t seed, sk_noise_source **out)
{
    sk_noise_source *ns = calloc(1, sizeof *ns);
    SK_CHECK(ns, SK_E_OOM, "noise: out of memory");
    ns->seed = seed;
    *out = ns;
    return SK_OK;
}

sk_status sk_noise_source_file(const char *path, sk_noise_source **out)
{
    *out = NULL;
    sk_noise_source *ns = calloc(1, sizeof *ns);
    SK_CHECK(ns, SK_E_OOM, "noise: out of memory");
    ns->is_file = 1;
    sk_status st = sk_st_open(path, &ns->f);
    if (st != SK_OK) {
        sk_error_prefix("--noise-file: ");
        free(ns);
        return st;
    }
    *out = ns;
    return SK_OK;
}

void sk_noise_source_free(sk_noise_source **pns)
{
    if (!pns || !*pns) return;
    sk_st_close(&(*pns)->f);
    free((*pns)->stage);
    free(*pns);
    *pns = NULL;
}

int sk_noise_source_is_file(const sk_noise_source *ns) { return ns->is_file; }

static sk_status check_file_tensor(const sk_noise_source *ns, const char *name, int64_t F0)
{
    const sk_st_tensor *t = sk_st_find(ns->f, name);
    SK_CHECK(t, SK_E_FORMAT, "--noise-file '%s': missing tensor '%s' (expected [%lld, %lld, %lld, "
             "%lld])", ns->f->path, name, (long long)F0, (long long)ns->C, (long long)ns->H,
             (long long)ns->W);
    char a[96];
    SK_CHECK(t->ndim == 4 && t->shape[0] >= F0 && t->shape[1] == ns->C && t->shape[2] == ns->H &&
                 t->shape[3] == ns->W,
             SK_E_SHAPE, "--noise-file '%s': tensor '%s' has shape %s; expected [%s%lld, %lld, "
             "%lld, %lld]", ns->f->path, name, sk_shape_str_n(t->ndim, t->shape, a, sizeof a),
             strcmp(name, "noise") == 0 ? ">= " : "", (long long)F0, (long long)ns->C,
             (long long)ns->H, (long long)ns->W);
    SK_CHECK(t->dtype == SK_DTYPE_F32 || t->dtype == SK_DTYPE_BF16 || t->dtype == SK_DTYPE_F16,
             SK_E_DTYPE, "--noise-file '%s': tensor '%s' has dtype %s; expected F32, BF16 or F16",
             ns->f->path, name, sk_dtype_st_name(t->dtype));
    return SK_OK;
}

sk_status sk_noise_source_prepare(sk_noise_source *ns, int64_t frames, int64_t C, int64_t H,
                                  int64_t W, int64_t chunk, int steps)
{
    ns->C = C; ns->H = H; ns->W = W; ns->frames = frames; ns->chunk = chunk; ns->steps = steps;
    if (!ns->is_file) return SK_OK;
    SK_TRY(check_file_tensor(ns, "noise", frames));
    char name[64];
    int nchunks = (int)((frames + chunk - 1) / chunk);
    for (int k = 0; k < nchunks; k++) {
        int64_t n = frames - k * chunk < chunk ? frames - k * chunk : chunk;
        for (int s = 0; s + 1 < steps; s++) {
            snprintf(name, sizeof name, "renoise.%d.%d", k, s);
            SK_TRY(check_file_tensor(ns, name, n));
            const sk_st_tensor *t = sk_st_find(ns->f, name);
            SK_CHECK(t->shape[0] == n, SK_E_SHAPE, "--noise-file '%s': tensor '%s' has %lld "
                     "frames; chunk %d has %lld (check --chunk and --frames)", ns->f->path, name,
                     (long long)t->shape[0], k, (long long)n);
        }
    }
    size_t need = (size_t)(chunk * C * H * W) * 4 * 2;
    free(ns->stage);
    ns->stage = malloc(need);
    SK_CHECK(ns->stage, SK_E_OOM, "noise: out of host memory (%zu bytes)", need);
    ns->stage_cap = need;
    return SK_OK;
}

/* Copies frames [first, first + n) of file tensor `name` into out. */
static sk_status from_file(sk_noise_source *ns, const char *name, int64_t first, sk_tensor *out)
{
    const sk_st_tensor *t = sk_st_find(ns->f, name);
    SK_CHECK(t, SK_E_FORMAT, "--noise-file '%s': missing tensor '%s'", ns->f->path, name);
    int64_t n = out->shape[0], E = ns->C * ns->H * ns->W;
    SK_CHECK(t->ndim == 4 && first + n <= t->shape[0] && t->shape[1] * t->shape[2] * t->shape[3] == E,
             SK_E_SHAPE, "--noise-file '%s': tensor '%s' cannot serve frames %lld..%lld",
             ns->f->path, name, (long long)first, (long long)(first + n - 1));
    size_t cnt = (size_t)(n * E), es = sk_dtype_size(t->dtype);
    SK_CHECK(cnt * 8 <= ns->stage_cap, SK_E_INTERNAL, "noise: staging too small (call prepare)");
    float *f32 = ns->stage;
    void *dst = (char *)ns->stage + cnt * 4;
    /* memcpy first: mmap'd data need not be aligned */
    memcpy(dst, (const char *)t->data + (size_t)(first * E) * es, cnt * es);
    SK_TRY(sk_convert(f32, SK_DTYPE_F32, dst, t->dtype, cnt));
    for (size_t i = 0; i < cnt; i++)
        SK_CHECK(isfinite(f32[i]), SK_E_FORMAT, "--noise-file '%s': tensor '%s' holds a "
                 "non-finite value at frame %lld", ns->f->path, name,
                 (long long)(first + (int64_t)(i / (size_t)E)));
    if (out->dtype == SK_DTYPE_F32) return sk_tensor_upload_raw(out, f32, cnt * 4);
    SK_TRY(sk_convert(dst, out->dtype, f32, SK_DTYPE_F32, cnt));
    return sk_tensor_upload_raw(out, dst, cnt * sk_dtype_size(out->dtype));
}

sk_status sk_noise_initial(sk_noise_source *ns, sk_tensor *out, int64_t frame0)
{
    if (!ns->is_file) return sk_op_noise(out->be, out, ns->seed, frame0, SK_NOISE_STREAM_INIT);
    return from_file(ns, "noise", frame0, out);
}

sk_status sk_noise_renoise(sk_noise_source *ns, sk_tensor *out, int64_t frame0, int chunk,
                           int step)
{
    if (!ns->is_file)
        return sk_op_noise(out->be, out, ns->seed, frame0, SK_NOISE_STREAM_RENOISE(step));
    char name[64];
    snprintf(name, sizeof name, "renoise.%d.%d", chunk, step);
    return from_file(ns, name, 0, out);
}
