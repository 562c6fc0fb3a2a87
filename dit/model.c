/* model.c - strict loading of the causal Wan DiT weights (see model.h). */
#include "dit/model.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/core/fp8.h"
#include "runtime/core/log.h"
#include "runtime/io/safetensors.h"

/* FP8 self-attention (runtime/core/fp8.h) is opt-in: SK_FP8_ATTENTION=1 (or "on"). Its CUDA
 * path (cuDNN's FP8 SDPA graph) has not yet run on a GPU, and where cuDNN declines the graph
 * the fallback is a slow emulation kernel, so `--dtype fp8` keeps bf16 attention by default. */
int sk_dit_fp8_attention_requested(void)
{
    const char *e = getenv("SK_FP8_ATTENTION");
    return e && (!strcmp(e, "1") || !strcmp(e, "on"));
}

/* Index of the first non-finite value in raw data of a float dtype, or -1.
 * Loads go through memcpy: mmap'd tensor data need not be aligned. */
static int64_t first_nonfinite(const void *data, sk_dtype dt, int64_t n)
{
    const unsigned char *p = data;
    for (int64_t i = 0; i < n; i++) {
        if (dt == SK_DTYPE_F32) {
            uint32_t u; memcpy(&u, p + 4 * i, 4);
            if ((u & 0x7f800000u) == 0x7f800000u) return i;
        } else if (dt == SK_DTYPE_BF16) {
            uint16_t u; memcpy(&u, p + 2 * i, 2);
            if ((u & 0x7f80u) == 0x7f80u) return i;
        } else if (dt == SK_DTYPE_F16) {
            uint16_t u; memcpy(&u, p + 2 * i, 2);
            if ((u & 0x7c00u) == 0x7c00u) return i;
        } else if (dt == SK_DTYPE_F64) {
            double d; memcpy(&d, p + 8 * i, 8);
            if (!isfinite(d)) return i;
        }
    }
    return -1;
}

static int loadable_dtype(sk_dtype dt)
{
    return dt == SK_DTYPE_F32 || dt == SK_DTYPE_BF16 || dt == SK_DTYPE_F16 || dt == SK_DTYPE_F64;
}

/* Checks one bound tensor against the expected shape, dtype and finiteness. */
static sk_status check_tensor(const char *path, const char *canon, const sk_st_tensor *t, int ndim,
                              const int64_t *shape)
{
    char a[128], b[128];
    int ok = t->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++) ok = t->shape[i] == shape[i];
    SK_CHECK(ok, SK_E_SHAPE, "'%s': tensor '%s' (stored as '%s') has shape %s; expected %s for "
             "this config (wrong --dit-config or a different model?)",
             path, canon, t->name, sk_shape_str_n(t->ndim, t->shape, a, sizeof a),
             sk_shape_str_n(ndim, shape, b, sizeof b));
    SK_CHECK(loadable_dtype(t->dtype), SK_E_DTYPE,
             "'%s': tensor '%s' has dtype %s; expected a float dtype (F32, BF16, F16 or F64)", path,
             t->name, sk_dtype_st_name(t->dtype));
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    int64_t bad = first_nonfinite(t->data, t->dtype, n);
    SK_CHECK(bad < 0, SK_E_FORMAT,
             "'%s': tensor '%s' holds a non-finite value (NaN or Inf) at flat index %lld; "
             "expected finite weights (corrupt or diverged checkpoint)",
             path, t->name, (long long)bad);
    return SK_OK;
}

/* Uploads t into a new backend tensor of dtype `want` with the given (view) shape. */
static sk_status upload(sk_backend *be, const sk_st_tensor *t, sk_dtype want, int ndim,
                        const int64_t *shape, void **scratch, size_t *scratch_cap, sk_tensor *out)
{
    SK_TRY(sk_tensor_alloc(be, want, ndim, shape, out));
    size_t n = (size_t)sk_tensor_numel(out);
    if (t->dtype == want) return sk_tensor_upload_raw(out, t->data, t->nbytes);
    size_t need = n * sk_dtype_size(want);
    if (need > *scratch_cap) {
        void *p = realloc(*scratch, need);
        SK_CHECK(p, SK_E_OOM, "out of host memory (%zu bytes) converting tensor '%s'", need,
                 t->name);
        *scratch = p;
        *scratch_cap = need;
    }
    /* the source may be unaligned inside the mapping: convert from an aligned copy */
    void *src = malloc(t->nbytes ? t->nbytes : 1);
    SK_CHECK(src, SK_E_OOM, "out of host memory (%zu bytes) converting tensor '%s'", t->nbytes,
             t->name);
    memcpy(src, t->data, t->nbytes);
    sk_status st = sk_convert(*scratch, want, src, t->dtype, n);
    free(src);
    SK_TRY(st);
    return sk_tensor_upload_raw(out, *scratch, need);
}

/* Quantizes a host matrix [N, K] (f32, or already in the activation dtype) row-wise to e4m3 (fp8.h) into new backend
 * tensors q [N, K] and s [N]: uploaded in the activation dtype into *tmp (grown
 * as needed; the caller frees it), then the backend's quantize_rows, the op the
 * activations go through (bytes equal on every backend, tests/gpu/check_fp8.c),
 * which on a GPU takes a fraction of the host's time for 5B weights. So an fp8
 * model is the bf16 model's weights quantized (the f32 ones on the CPU). */
static sk_status upload_fp8(sk_backend *be, const void *w, sk_dtype wdt, int64_t N, int64_t K,
                            sk_tensor *tmp, sk_tensor *q, sk_tensor *s)
{
    int64_t qs[2] = {N, K};
    if (sk_tensor_numel(tmp) < N * K || tmp->dtype != be->act_dtype) {
        sk_tensor_free(tmp);
        SK_TRY(sk_tensor_alloc(be, be->act_dtype, 2, qs, tmp));
    }
    sk_tensor x = *tmp; /* a view [N, K] of its first N*K elements */
    x.owns = 0;
    x.ndim = 2;
    x.shape[0] = N;
    x.shape[1] = K;
    if (wdt == x.dtype) SK_TRY(sk_tensor_upload_raw(&x, w, (size_t)(N * K) * sk_dtype_size(wdt)));
    else SK_TRY(sk_tensor_upload_f32(&x, (const float *)w, (size_t)(N * K)));
    SK_TRY(sk_tensor_alloc(be, SK_DTYPE_F8_E4M3, 2, qs, q));
    SK_TRY(sk_tensor_alloc(be, SK_DTYPE_F32, 1, &N, s));
    return sk_op_quantize_rows(be, q, s, &x);
}

/* The stored tensor t as f32 into *buf (grown as needed), for quantization. */
static sk_status to_f32(const sk_st_tensor *t, int64_t n, float **buf, size_t *cap)
{
    if ((size_t)n > *cap) {
        float *p = realloc(*buf, (size_t)n * sizeof *p);
        SK_CHECK(p, SK_E_OOM, "out of host memory converting tensor '%s'", t->name);
        *buf = p;
        *cap = (size_t)n;
    }
    void *src = malloc(t->nbytes ? t->nbytes : 1);
    SK_CHECK(src, SK_E_OOM, "out of host memory converting tensor '%s'", t->name);
    memcpy(src, t->data, t->nbytes); /* the mapping may be unaligned */
    sk_status st = sk_convert(*buf, SK_DTYPE_F32, src, t->dtype, (size_t)n);
    free(src);
    return st;
}

void sk_dit_free(sk_dit_model **pm)
{
    if (!pm || !*pm) return;
    sk_dit_model *m = *pm;
    for (int i = 0; i < SK_DW_COUNT_; i++) sk_tensor_free(&m->g[i]);
    if (m->blocks)
        for (int64_t l = 0; l < m->cfg.num_layers; l++)
            for (int i = 0; i < SK_DB_COUNT_; i++) {
                sk_tensor_free(&m->blocks[l].w[i]);
                sk_tensor_free(&m->blocks[l].wscale[i]);
            }
    free(m->blocks);
    free(m->path);
    free(m);
    *pm = NULL;
}

sk_status sk_dit_load(const char *path, const sk_dit_config *cfg_in, sk_backend *be,
                      sk_dtype wdtype, sk_dit_model **out)
{
    return sk_dit_load_blocks(path, cfg_in, be, wdtype, 0, -1, out);
}

sk_status sk_dit_load_blocks(const char *path, const sk_dit_config *cfg_in, sk_backend *be,
                             sk_dtype wdtype, int first, int last, sk_dit_model **out)
{
    SK_CHECK(path && be && out, SK_E_INVALID_ARG, "sk_dit_load: NULL argument");
    *out = NULL;
    SK_CHECK(wdtype == SK_DIT_WDTYPE_AS_STORED || wdtype == SK_DTYPE_F32 ||
                 wdtype == SK_DTYPE_BF16 || wdtype == SK_DTYPE_F16 ||
                 wdtype == SK_DTYPE_F8_E4M3,
             SK_E_INVALID_ARG, "DiT weight dtype %s; expected f32, bf16, f16 or fp8",
             sk_dtype_name(wdtype));
    const int fp8 = wdtype == SK_DTYPE_F8_E4M3;
    SK_CHECK(!fp8 || sk_backend_has_fp8(be), SK_E_UNSUPPORTED, "DiT '%s': fp8 weights asked "
             "for, but the %s backend has no FP8 ops; use --dtype bf16", path, be->name);
    float *fbuf = NULL; /* f32 copies of matrices to quantize */
    size_t fcap = 0;
    sk_tensor ftmp = {0}; /* their upload in the activation dtype */
    sk_st_file *f = NULL;
    sk_status st = sk_st_open(path, &f);
    if (st != SK_OK) return st;

    sk_dit_model *m = calloc(1, sizeof *m);
    const sk_st_tensor **bind = NULL; /* [(1 + L) * SK_DB_COUNT_]: globals first, then blocks */
    void *scratch = NULL;
    size_t scratch_cap = 0;
    char canon[512], label[600];
    if (!m) { st = SK_ERR(SK_E_OOM, "out of memory loading '%s'", path); goto fail; }
    m->be = be;
    m->path = strdup(path);
    m->fp8 = fp8;
    m->fp8_attention = fp8 && sk_dit_fp8_attention_requested();

    /* 1. config: caller, then metadata, then shapes */
    const char *meta = sk_st_meta(f, "config");
    if (cfg_in) {
        snprintf(label, sizeof label, "DiT config given for '%s'", path);
        SK_TRY_GOTO(st, sk_dit_config_validate(cfg_in, label), fail);
        m->cfg = *cfg_in;
        sk_dit_config_log(&m->cfg, "the given config file");
    } else if (meta) {
        snprintf(label, sizeof label, "'%s' __metadata__ \"config\"", path);
        SK_TRY_GOTO(st, sk_dit_config_from_json(meta, label, &m->cfg), fail);
        sk_dit_config_log(&m->cfg, label);
    } else {
        SK_TRY_GOTO(st, sk_dit_config_infer(f, &m->cfg), fail);
        snprintf(label, sizeof label, "tensor shapes of '%s', head_dim assumed 128", path);
        sk_dit_config_log(&m->cfg, label);
    }
    const sk_dit_config *c = &m->cfg;
    const int64_t L = c->num_layers;
    if (last < 0) last = (int)L;
    if (first < 0 || first > last || last > L) {
        st = SK_ERR(SK_E_INVALID_ARG, "'%s': blocks [%d, %d) asked for; the model has %lld",
                    path, first, last, (long long)L);
        goto fail;
    }
    m->block_first = first;
    m->block_last = last;

    /* 2. bind every file tensor to exactly one expected slot */
    bind = calloc((size_t)(1 + L) * SK_DB_COUNT_ + SK_DW_COUNT_, sizeof *bind);
    if (!bind) { st = SK_ERR(SK_E_OOM, "out of memory loading '%s'", path); goto fail; }
    for (int i = 0; i < f->n_tensors; i++) {
        const sk_st_tensor *t = &f->tensors[i];
        int g, b, l;
        if (!sk_dit_strip_name(t->name, canon, sizeof canon) ||
            !sk_dit_parse_name(canon, &g, &b, &l)) {
            st = SK_ERR(SK_E_FORMAT, "'%s': unexpected tensor '%s'; not a Wan DiT parameter "
                        "(a LoRA or a different model? only the names of spec §4.1 are accepted, "
                        "with optional model./generator./_orig_mod. prefixes)", path, t->name);
            goto fail;
        }
        if (b >= 0 && l >= L) {
            st = SK_ERR(SK_E_FORMAT, "'%s': unexpected tensor '%s': block %d, but the config has "
                        "%lld layers", path, t->name, l, (long long)L);
            goto fail;
        }
        size_t slot = g >= 0 ? (size_t)g : SK_DW_COUNT_ + (size_t)l * SK_DB_COUNT_ + (size_t)b;
        if (bind[slot]) {
            st = SK_ERR(SK_E_FORMAT, "'%s': tensors '%s' and '%s' both map to '%s'; keep one "
                        "(e.g. only generator_ema.*)", path, bind[slot]->name, t->name, canon);
            goto fail;
        }
        bind[slot] = t;
    }

    /* 3. check every expected tensor: present, shape, dtype, finite */
    int64_t shape[6];
    for (int g = 0; g < SK_DW_COUNT_; g++) {
        int nd = sk_dit_global_shape(c, g, shape);
        if (!bind[g]) {
            char s[96];
            st = SK_ERR(SK_E_FORMAT, "'%s': missing tensor '%s' (expected shape %s)", path,
                        sk_dit_global_name(g), sk_shape_str_n(nd, shape, s, sizeof s));
            goto fail;
        }
        SK_TRY_GOTO(st, check_tensor(path, sk_dit_global_name(g), bind[g], nd, shape), fail);
    }
    for (int64_t l = 0; l < L; l++)
        for (int b = 0; b < SK_DB_COUNT_; b++) {
            const sk_st_tensor *t = bind[SK_DW_COUNT_ + l * SK_DB_COUNT_ + b];
            int nd = sk_dit_block_shape(c, b, shape);
            snprintf(canon, sizeof canon, "blocks.%lld.%s", (long long)l, sk_dit_block_suffix(b));
            if (!t) {
                char s[96];
                st = SK_ERR(SK_E_FORMAT, "'%s': missing tensor '%s' (expected shape %s)", path,
                            canon, sk_shape_str_n(nd, shape, s, sizeof s));
                goto fail;
            }
            SK_TRY_GOTO(st, check_tensor(path, canon, t, nd, shape), fail);
        }

    /* 4. upload */
    m->blocks = calloc((size_t)L, sizeof *m->blocks);
    if (!m->blocks) { st = SK_ERR(SK_E_OOM, "out of memory loading '%s'", path); goto fail; }
    for (int g = 0; g < SK_DW_COUNT_; g++) {
        const sk_st_tensor *t = bind[g];
        sk_dtype want = sk_dit_global_is_matrix(g) && !fp8
                            ? (wdtype == SK_DIT_WDTYPE_AS_STORED
                                   ? (t->dtype == SK_DTYPE_F64 ? SK_DTYPE_F32 : t->dtype) : wdtype)
                            : be->act_dtype;
        int nd = sk_dit_global_shape(c, g, shape);
        if (g == SK_DW_PATCH_W) { nd = 2; shape[1] = c->in_dim * 4; }
        if (g == SK_DW_HEAD_MOD) { nd = 2; shape[0] = 2; shape[1] = c->dim; }
        SK_TRY_GOTO(st, upload(be, t, want, nd, shape, &scratch, &scratch_cap, &m->g[g]), fail);
        m->weight_bytes += sk_tensor_nbytes(&m->g[g]);
    }
    for (int64_t l = first; l < last; l++)
        for (int b = 0; b < SK_DB_COUNT_; b++) {
            const sk_st_tensor *t = bind[SK_DW_COUNT_ + l * SK_DB_COUNT_ + b];
            sk_dtype want = sk_dit_block_is_matrix(b) && !fp8
                                ? (wdtype == SK_DIT_WDTYPE_AS_STORED
                                       ? (t->dtype == SK_DTYPE_F64 ? SK_DTYPE_F32 : t->dtype)
                                       : wdtype)
                                : be->act_dtype;
            int nd = sk_dit_block_shape(c, b, shape);
            if (b == SK_DB_MOD) { nd = 2; shape[0] = 6; shape[1] = c->dim; }
            /* fp8: the block linears whose sizes are multiples of 16 (FP8 GEMMs need it;
             * LongLive 2.0 keeps the others in bf16 too) */
            if (fp8 && sk_dit_block_is_matrix(b) && shape[0] % 16 == 0 && shape[1] % 16 == 0) {
                SK_TRY_GOTO(st, to_f32(t, shape[0] * shape[1], &fbuf, &fcap), fail);
                SK_TRY_GOTO(st, upload_fp8(be, fbuf, SK_DTYPE_F32, shape[0], shape[1], &ftmp,
                                           &m->blocks[l].w[b], &m->blocks[l].wscale[b]), fail);
                m->weight_bytes += sk_tensor_nbytes(&m->blocks[l].w[b]) +
                                   sk_tensor_nbytes(&m->blocks[l].wscale[b]);
                continue;
            }
            SK_TRY_GOTO(st, upload(be, t, want, nd, shape, &scratch, &scratch_cap,
                                   &m->blocks[l].w[b]), fail);
            m->weight_bytes += sk_tensor_nbytes(&m->blocks[l].w[b]);
        }
    SK_LOGI("DiT '%s': %d tensors, %.1f MB on %s%s", path, f->n_tensors,
            (double)m->weight_bytes / 1e6, be->name, fp8 ? " (block linears fp8 e4m3)" : "");
    free(bind);
    free(scratch);
    free(fbuf);
    sk_tensor_free(&ftmp);
    sk_st_close(&f);
    *out = m;
    return SK_OK;

fail:
    free(bind);
    free(scratch);
    free(fbuf);
    sk_tensor_free(&ftmp);
    sk_st_close(&f);
    sk_dit_free(&m);
    return st;
}

static uint64_t mix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* The random values are counter-based: draw i of a tensor whose draws start at state s0
 * is mix64 of s0 + (i + 1) * golden, so threads fill disjoint index ranges and give the
 * bits of the sequential loop (a 5B model's 5e9 draws and bf16 conversions take ~30 s on
 * one core, a few on a machine's cores). */
typedef struct {
    void *dst;
    sk_dtype dt; /* F32 or BF16 */
    uint64_t s0;
    int64_t i0, i1;
    float center, half;
} fill_job;

static void *fill_part(void *arg)
{
    const fill_job *j = arg;
    uint64_t st = j->s0 + (uint64_t)j->i0 * 0x9E3779B97F4A7C15ull;
    for (int64_t i = j->i0; i < j->i1; i++) {
        double u = (double)(mix64(&st) >> 11) * (1.0 / 9007199254740992.0);
        float v = j->center + j->half * (float)(2.0 * u - 1.0);
        if (j->dt == SK_DTYPE_BF16) ((uint16_t *)j->dst)[i] = sk_f32_to_bf16(v);
        else ((float *)j->dst)[i] = v;
    }
    return NULL;
}

/* n draws into dst (f32 or bf16 host memory), on up to 32 threads; advances *rng by n. */
static void fill_host(void *dst, sk_dtype dt, int64_t n, uint64_t *rng, float center, float half)
{
    enum { MAXT = 32, MIN_PER_THREAD = 8192 };
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    int nt = (int)(n / MIN_PER_THREAD);
    if (nt > ncpu) nt = (int)ncpu;
    if (nt > MAXT) nt = MAXT;
    if (nt < 1) nt = 1;
    fill_job jobs[MAXT];
    pthread_t th[MAXT];
    int started[MAXT] = {0};
    for (int t = 0; t < nt; t++) {
        jobs[t] = (fill_job){dst, dt, *rng, n * t / nt, n * (t + 1) / nt, center, half};
        if (t > 0) started[t] = pthread_create(&th[t], NULL, fill_part, &jobs[t]) == 0;
    }
    fill_part(&jobs[0]);
    for (int t = 1; t < nt; t++) {
        if (started[t]) pthread_join(th[t], NULL);
        else fill_part(&jobs[t]); /* no thread: do its part here */
    }
    *rng += (uint64_t)n * 0x9E3779B97F4A7C15ull;
}

/* n uniform values center +- half into *buf (grown as needed) as dtype dt (f32, bf16). */
static sk_status draw_random(int64_t n64, uint64_t *rng, float center, float half, sk_dtype dt,
                             float **buf, size_t *cap)
{
    size_t n = (size_t)n64;
    if (n > *cap) {
        float *p = realloc(*buf, n * sizeof *p);
        SK_CHECK(p, SK_E_OOM, "random DiT: out of host memory (%zu values)", n);
        *buf = p;
        *cap = n;
    }
    fill_host(*buf, dt, n64, rng, center, half);
    return SK_OK;
}

/* Fills a backend tensor with uniform values center +- half. */
static sk_status fill_random(sk_tensor *t, uint64_t *rng, float center, float half, float **buf,
                             size_t *cap)
{
    const size_t n = (size_t)sk_tensor_numel(t);
    if (t->dtype == SK_DTYPE_F32 || t->dtype == SK_DTYPE_BF16) {
        SK_TRY(draw_random((int64_t)n, rng, center, half, t->dtype, buf, cap));
        return sk_tensor_upload_raw(t, *buf, n * sk_dtype_size(t->dtype));
    }
    SK_TRY(draw_random((int64_t)n, rng, center, half, SK_DTYPE_F32, buf, cap));
    return sk_tensor_upload_f32(t, *buf, n);
}

sk_status sk_dit_random(const sk_dit_config *cfg, sk_backend *be, sk_dtype wdtype, uint64_t seed,
                        sk_dit_model **out)
{
    return sk_dit_random_blocks(cfg, be, wdtype, seed, 0, -1, out);
}

sk_status sk_dit_random_blocks(const sk_dit_config *cfg, sk_backend *be, sk_dtype wdtype,
                               uint64_t seed, int first, int last, sk_dit_model **out)
{
    SK_CHECK(cfg && be && out, SK_E_INVALID_ARG, "sk_dit_random: NULL argument");
    *out = NULL;
    SK_TRY(sk_dit_config_validate(cfg, "random DiT config"));
    if (last < 0) last = (int)cfg->num_layers;
    SK_CHECK(first >= 0 && first <= last && last <= cfg->num_layers, SK_E_INVALID_ARG,
             "random DiT: blocks [%d, %d) asked for; the config has %lld", first, last,
             (long long)cfg->num_layers);
    if (wdtype == SK_DIT_WDTYPE_AS_STORED) wdtype = be->act_dtype;
    const int fp8 = wdtype == SK_DTYPE_F8_E4M3;
    SK_CHECK(!fp8 || sk_backend_has_fp8(be), SK_E_UNSUPPORTED, "random DiT: fp8 weights asked "
             "for, but the %s backend has no FP8 ops; use --dtype bf16", be->name);
    sk_dit_model *m = calloc(1, sizeof *m);
    SK_CHECK(m, SK_E_OOM, "random DiT: out of host memory");
    m->cfg = *cfg;
    m->be = be;
    m->path = strdup("(random)");
    m->fp8 = fp8;
    m->fp8_attention = fp8 && sk_dit_fp8_attention_requested();
    m->block_first = first;
    m->block_last = last;
    sk_status st = SK_OK;
    float *buf = NULL;
    size_t cap = 0;
    sk_tensor ftmp = {0}; /* fp8: a matrix in the activation dtype, quantized on be */
    uint64_t rng = seed * 0x2545F4914F6CDD1Dull + 7;
    int64_t shape[6];
    m->blocks = calloc((size_t)cfg->num_layers, sizeof *m->blocks);
    if (!m->blocks) { st = SK_ERR(SK_E_OOM, "random DiT: out of host memory"); goto fail; }
    for (int g = 0; g < SK_DW_COUNT_; g++) {
        int nd = sk_dit_global_shape(cfg, g, shape);
        if (g == SK_DW_PATCH_W) { nd = 2; shape[1] = cfg->in_dim * 4; }
        if (g == SK_DW_HEAD_MOD) { nd = 2; shape[0] = 2; shape[1] = cfg->dim; }
        int mat = sk_dit_global_is_matrix(g);
        SK_TRY_GOTO(st, sk_tensor_alloc(be, mat && !fp8 ? wdtype : be->act_dtype, nd, shape,
                                        &m->g[g]), fail);
        float half = mat ? 1.0f / sqrtf((float)shape[1]) : 0.02f;
        SK_TRY_GOTO(st, fill_random(&m->g[g], &rng, 0.0f, half, &buf, &cap), fail);
        m->weight_bytes += sk_tensor_nbytes(&m->g[g]);
    }
    for (int64_t l = 0; l < cfg->num_layers; l++)
        for (int b = 0; b < SK_DB_COUNT_; b++) {
            int nd = sk_dit_block_shape(cfg, b, shape);
            if (b == SK_DB_MOD) { nd = 2; shape[0] = 6; shape[1] = cfg->dim; }
            int mat = sk_dit_block_is_matrix(b);
            int norm = b == SK_DB_SA_NQ || b == SK_DB_SA_NK || b == SK_DB_CA_NQ ||
                       b == SK_DB_CA_NK || b == SK_DB_N3_W;
            if (l < first || l >= last) { /* another stage's block: same draws, not kept */
                int64_t n = 1;
                for (int i = 0; i < nd; i++) n *= shape[i];
                rng += (uint64_t)n * 0x9E3779B97F4A7C15ull; /* = n draws of mix64 */
                continue;
            }
            sk_tensor *t = &m->blocks[l].w[b];
            if (mat && fp8 && shape[0] % 16 == 0 && shape[1] % 16 == 0) {
                /* the same draws, quantized row-wise (sizes as in sk_dit_load_blocks) */
                sk_tensor tf = sk_tensor_desc(SK_DTYPE_F32, nd, shape);
                const sk_dtype hd = be->act_dtype == SK_DTYPE_BF16 ? SK_DTYPE_BF16 : SK_DTYPE_F32;
                SK_TRY_GOTO(st, draw_random(sk_tensor_numel(&tf), &rng, 0.0f,
                                            1.0f / sqrtf((float)shape[1]), hd, &buf, &cap), fail);
                SK_TRY_GOTO(st, upload_fp8(be, buf, hd, shape[0], shape[1], &ftmp, t,
                                           &m->blocks[l].wscale[b]), fail);
                m->weight_bytes += sk_tensor_nbytes(t) + sk_tensor_nbytes(&m->blocks[l].wscale[b]);
                continue;
            }
            SK_TRY_GOTO(st, sk_tensor_alloc(be, mat && !fp8 ? wdtype : be->act_dtype, nd, shape,
                                            t), fail);
            SK_TRY_GOTO(st, fill_random(t, &rng, norm ? 1.0f : 0.0f,
                                        mat ? 1.0f / sqrtf((float)shape[1]) : 0.02f, &buf, &cap),
                        fail);
            m->weight_bytes += sk_tensor_nbytes(t);
        }
    free(buf);
    sk_tensor_free(&ftmp);
    *out = m;
    return SK_OK;
fail:
    free(buf);
    sk_tensor_free(&ftmp);
    sk_dit_free(&m);
    return st;
}
