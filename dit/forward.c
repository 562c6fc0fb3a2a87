/* forward.c - the causal Wan DiT forward over the backend op table (spec §2).
 *
 * Every per-token computation is an sk_op_*; the host only loops over
 * layers and (for the per-frame modulation tables) over the F frames of a
 * chunk. Scratch comes from the context's arena, reset after each call.
 */
#include "dit/forward.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/core/log.h"

#define ALIGN_PAD (SK_ARENA_ALIGN)

static size_t act_bytes(const sk_dit_model *m, int64_t n)
{
    return (size_t)n * sk_dtype_size(m->be->act_dtype) + ALIGN_PAD;
}

void sk_dit_ctx_free(sk_dit_ctx **pc)
{
    if (!pc || !*pc) return;
    sk_dit_ctx *c = *pc;
    if (c->cross_k)
        for (int64_t l = 0; l < c->m->cfg.num_layers; l++) {
            sk_tensor_free(&c->cross_k[l]);
            sk_tensor_free(&c->cross_v[l]);
        }
    free(c->cross_k);
    free(c->cross_v);
    sk_arena_free(&c->arena);
    free(c->stage);
    free(c->ranges);
    free(c);
    *pc = NULL;
}

sk_status sk_dit_ctx_init(const sk_dit_model *m, int64_t max_frames, int64_t H, int64_t W,
                          int kv_max_ranges, sk_dit_ctx **out)
{
    SK_CHECK(m, SK_E_INVALID_ARG, "sk_dit_ctx_init: NULL argument");
    return sk_dit_ctx_init_blocks(m, max_frames, H, W, kv_max_ranges, 0, (int)m->cfg.num_layers,
                                  out);
}

sk_status sk_dit_ctx_init_blocks(const sk_dit_model *m, int64_t max_frames, int64_t H, int64_t W,
                                 int kv_max_ranges, int first, int last, sk_dit_ctx **out)
{
    SK_CHECK(m && out, SK_E_INVALID_ARG, "sk_dit_ctx_init: NULL argument");
    *out = NULL;
    SK_CHECK(first >= 0 && first < last && last <= m->cfg.num_layers &&
                 first >= m->block_first && last <= m->block_last, SK_E_INVALID_ARG,
             "DiT: blocks [%d, %d) asked for; the model has %lld blocks and holds [%lld, %lld)",
             first, last, (long long)m->cfg.num_layers, (long long)m->block_first,
             (long long)m->block_last);
    SK_CHECK(max_frames >= 1, SK_E_INVALID_ARG, "DiT: chunk of %lld frames", (long long)max_frames);
    SK_CHECK(H >= 2 && W >= 2 && H % 2 == 0 && W % 2 == 0 && H <= 65536 && W <= 65536,
             SK_E_INVALID_ARG, "DiT: latent size %lldx%lld; expected even sizes (the (1,2,2) "
             "patch); in pixels that is a multiple of 16", (long long)H, (long long)W);
    SK_CHECK(kv_max_ranges >= 1, SK_E_INVALID_ARG, "DiT: %d KV ranges", kv_max_ranges);
    const sk_dit_config *cf = &m->cfg;
    sk_dit_ctx *c = calloc(1, sizeof *c);
    SK_CHECK(c, SK_E_OOM, "DiT: out of host memory");
    c->m = m;
    c->be = m->be;
    c->max_frames = max_frames;
    c->blk_first = first;
    c->blk_last = last;
    c->H = H; c->W = W; c->Hp = H / 2; c->Wp = W / 2; c->S = c->Hp * c->Wp;
    sk_status st = SK_OK;

    /* scratch: the largest of the forward's and the prompt pass's needs */
    const int64_t F = max_frames, N = F * c->S, D = cf->dim, Lt = cf->text_len;
    size_t fwd = act_bytes(m, N * 4 * cf->in_dim)            /* patch */
               + 7 * act_bytes(m, N * D)                     /* x h tmp q k v att */
               + act_bytes(m, N * cf->ffn_dim)               /* ffn hidden */
               + act_bytes(m, N * 4 * cf->out_dim)           /* head out */
               + act_bytes(m, F * cf->freq_dim)              /* sinusoid */
               + 3 * act_bytes(m, F * D)                     /* e_h e e_silu */
               + 2 * act_bytes(m, F * 6 * D)                 /* e0 mod */
               + act_bytes(m, F * 2 * D);                    /* head mod */
    size_t txt = act_bytes(m, Lt * cf->text_dim) + 3 * act_bytes(m, Lt * D);
    if (m->fp8) { /* the quantized copy of one activation and its row scales */
        const int64_t wmax = D > cf->ffn_dim ? D : cf->ffn_dim;
        fwd += (size_t)(N * wmax) + (size_t)N * 4 + 2 * ALIGN_PAD;
        txt += (size_t)(Lt * D) + (size_t)Lt * 4 + 2 * ALIGN_PAD;
    }
    size_t cap = (fwd > txt ? fwd : txt) + 4 * ALIGN_PAD;
    SK_TRY_GOTO(st, sk_arena_init(&c->arena, c->be, cap), fail);

    c->cross_k = calloc((size_t)cf->num_layers, sizeof *c->cross_k);
    c->cross_v = calloc((size_t)cf->num_layers, sizeof *c->cross_v);
    c->ranges = calloc((size_t)kv_max_ranges, sizeof *c->ranges);
    c->ranges_cap = kv_max_ranges;
    int64_t stage_n = Lt * cf->text_dim > F * cf->freq_dim ? Lt * cf->text_dim : F * cf->freq_dim;
    c->stage_cap = (size_t)stage_n * 4 * 2;
    c->stage = malloc(c->stage_cap);
    if (!c->cross_k || !c->cross_v || !c->ranges || !c->stage) {
        st = SK_ERR(SK_E_OOM, "DiT: out of host memory");
        goto fail;
    }
    int64_t ks[3] = {Lt, cf->num_heads, cf->head_dim};
    for (int64_t l = first; l < last; l++) {
        SK_TRY_GOTO(st, sk_tensor_alloc(c->be, c->be->act_dtype, 3, ks, &c->cross_k[l]), fail);
        SK_TRY_GOTO(st, sk_tensor_alloc(c->be, c->be->act_dtype, 3, ks, &c->cross_v[l]), fail);
    }
    const char *ng = getenv("SK_NO_CUDA_GRAPH");
    c->graphs = !(ng && *ng && strcmp(ng, "0") != 0);
    const char *nd = getenv("SK_NO_KV_DIRECT");
    c->kv_direct = !(nd && *nd && strcmp(nd, "0") != 0);
    SK_LOGD("DiT context: chunk %lld frames of %lldx%lld (S = %lld tokens), scratch %.1f MB",
            (long long)F, (long long)H, (long long)W, (long long)c->S, (double)cap / 1e6);
    *out = c;
    return SK_OK;
fail:
    sk_dit_ctx_free(&c);
    return st;
}

/* Host f32 -> backend tensor of the act dtype, through the staging buffer. */
static sk_status upload(sk_dit_ctx *c, sk_tensor *t, const float *src)
{
    size_t n = (size_t)sk_tensor_numel(t);
    if (t->dtype == SK_DTYPE_F32) return sk_tensor_upload_raw(t, src, n * 4);
    size_t need = n * sk_dtype_size(t->dtype);
    SK_CHECK(need <= c->stage_cap, SK_E_INTERNAL, "DiT: staging buffer too small");
    void *dst = (char *)c->stage + c->stage_cap / 2;
    if ((const void *)src != c->stage) memcpy(c->stage, src, n * 4);
    SK_TRY(sk_convert(dst, t->dtype, c->stage, SK_DTYPE_F32, n));
    return sk_tensor_upload_raw(t, dst, need);
}

static sk_status scratch(sk_dit_ctx *c, int64_t rows, int64_t cols, sk_tensor *out)
{
    int64_t s[2] = {rows, cols};
    return sk_arena_tensor(&c->arena, c->be->act_dtype, 2, s, out);
}

/* FP8 models: an activation quantized row-wise (fp8.h) once for every block
 * linear that reads it; buffers from the arena, sized for [rows, cols]. */
typedef struct {
    sk_tensor qbuf, sbuf; /* [rows, max cols] e4m3, [rows] f32 */
    sk_tensor q, s;       /* views for the activation last quantized */
} fp8_act;

static sk_status fp8_init(sk_dit_ctx *c, fp8_act *a, int64_t rows, int64_t cols)
{
    memset(a, 0, sizeof *a);
    if (!c->m->fp8) return SK_OK;
    int64_t qs[2] = {rows, cols};
    SK_TRY(sk_arena_tensor(&c->arena, SK_DTYPE_F8_E4M3, 2, qs, &a->qbuf));
    return sk_arena_tensor(&c->arena, SK_DTYPE_F32, 1, &rows, &a->sbuf);
}

/* a's views for an activation x [R, K] */
static sk_status fp8_views(fp8_act *a, const sk_tensor *x)
{
    int64_t qs[2] = {x->shape[0], x->shape[1]};
    a->q = a->qbuf;
    a->q.ndim = 2; a->q.shape[0] = qs[0]; a->q.shape[1] = qs[1]; a->q.owns = 0;
    SK_CHECK(qs[0] * qs[1] <= sk_tensor_numel(&a->qbuf), SK_E_INTERNAL,
             "DiT: fp8 buffer too small");
    a->s = sk_tensor_rows(&a->sbuf, 0, qs[0]);
    return SK_OK;
}

/* Quantizes x [R, K] into a (no-op for a bf16/f32 model). */
static sk_status fp8_quant(sk_dit_ctx *c, fp8_act *a, const sk_tensor *x)
{
    if (!c->m->fp8) return SK_OK;
    SK_TRY(fp8_views(a, x));
    return sk_op_quantize_rows(c->be, &a->q, &a->s, x);
}

/* y = modulate(x) and, for an FP8 model, its quantized copy in a: one kernel where the
 * backend fuses them (sk_op_modulate_fp8), the same values either way */
static sk_status fp8_modulate(sk_dit_ctx *c, fp8_act *a, sk_tensor *y, const sk_tensor *x,
                              const sk_tensor *mod, int i_shift, int i_scale, int64_t rpg,
                              float eps)
{
    if (!c->m->fp8) return sk_op_modulate(c->be, y, x, mod, i_shift, i_scale, rpg, 1, eps);
    SK_TRY(fp8_views(a, y));
    return sk_op_modulate_fp8(c->be, y, &a->q, &a->s, x, mod, i_shift, i_scale, rpg, 1, eps);
}

/* y = layernorm(x; w, b) and, for an FP8 model, its quantized copy in a, as fp8_modulate */
static sk_status fp8_layernorm(sk_dit_ctx *c, fp8_act *a, sk_tensor *y, const sk_tensor *x,
                               const sk_tensor *w, const sk_tensor *b, float eps)
{
    if (!c->m->fp8) return sk_op_layernorm(c->be, y, x, w, b, eps);
    SK_TRY(fp8_views(a, y));
    return sk_op_layernorm_fp8(c->be, y, &a->q, &a->s, x, w, b, eps);
}

/* A block linear y = act(x W^T + b), W = w[wi], b = w[wi + 1]: through the
 * quantized copy a of x when W is e4m3 (fp8_quant(a, x) came first; an FP8
 * model keeps a matrix whose sizes are not multiples of 16 in bf16, as
 * LongLive 2.0's filter does). */
static sk_status blin(sk_dit_ctx *c, sk_tensor *y, const sk_tensor *x, const fp8_act *a,
                      const sk_dit_block *B, int wi, sk_act act)
{
    if (B->w[wi].dtype != SK_DTYPE_F8_E4M3)
        return sk_op_linear(c->be, y, x, &B->w[wi], &B->w[wi + 1], act);
    return sk_op_linear_fp8(c->be, y, &a->q, &a->s, &B->w[wi], &B->wscale[wi], &B->w[wi + 1],
                            act);
}

static void dump(sk_dit_ctx *c, const char *name, const sk_tensor *t)
{
    if (c->debug) c->debug(c->debug_user, name, t);
}

static sk_tensor heads(const sk_tensor *t, int64_t nh, int64_t hd)
{
    sk_tensor v = *t;
    v.owns = 0;
    v.ndim = 3;
    v.shape[0] = t->shape[0];
    v.shape[1] = nh;
    v.shape[2] = hd;
    return v;
}

static sk_status set_context(sk_dit_ctx *c, const float *ctx_host, int64_t rows)
{
    const sk_dit_model *m = c->m;
    const sk_dit_config *cf = &m->cfg;
    const int64_t Lt = cf->text_len, D = cf->dim;
    sk_backend *be = c->be;
    sk_tensor ctx, c1, ce, tmp;
    SK_TRY(scratch(c, Lt, cf->text_dim, &ctx));
    /* zero padding past the real rows, as the umT5 wrapper pads (spec §2.3) */
    float *h = c->stage;
    size_t n = (size_t)(Lt * cf->text_dim);
    memset(h, 0, n * 4);
    memcpy(h, ctx_host, (size_t)(rows * cf->text_dim) * 4);
    for (size_t i = 0; i < (size_t)(rows * cf->text_dim); i++)
        SK_CHECK(isfinite(h[i]), SK_E_INVALID_ARG, "DiT: text embedding holds a non-finite value "
                 "at row %lld, column %lld", (long long)(i / (size_t)cf->text_dim),
                 (long long)(i % (size_t)cf->text_dim));
    SK_TRY(upload(c, &ctx, h));
    SK_TRY(scratch(c, Lt, D, &c1));
    SK_TRY(scratch(c, Lt, D, &ce));
    SK_TRY(scratch(c, Lt, D, &tmp));
    SK_TRY(sk_op_linear(be, &c1, &ctx, &m->g[SK_DW_TEXT0_W], &m->g[SK_DW_TEXT0_B], SK_ACT_GELU_TANH));
    SK_TRY(sk_op_linear(be, &ce, &c1, &m->g[SK_DW_TEXT2_W], &m->g[SK_DW_TEXT2_B], SK_ACT_NONE));
    dump(c, "context_emb", &ce);
    fp8_act qa;
    SK_TRY(fp8_init(c, &qa, Lt, D));
    SK_TRY(fp8_quant(c, &qa, &ce));
    for (int64_t l = c->blk_first; l < c->blk_last; l++) {
        const sk_dit_block *B = &m->blocks[l];
        const sk_tensor *w = B->w;
        int64_t s2[2] = {Lt, D};
        sk_tensor k2, v2;
        SK_TRY(sk_tensor_reshape(&c->cross_k[l], 2, s2, &k2));
        SK_TRY(sk_tensor_reshape(&c->cross_v[l], 2, s2, &v2));
        SK_TRY(blin(c, &tmp, &ce, &qa, B, SK_DB_CA_K_W, SK_ACT_NONE));
        SK_TRY(sk_op_rmsnorm(be, &k2, &tmp, &w[SK_DB_CA_NK], cf->eps));
        SK_TRY(blin(c, &v2, &ce, &qa, B, SK_DB_CA_V_W, SK_ACT_NONE));
    }
    return SK_OK;
}

sk_status sk_dit_set_context(sk_dit_ctx *c, const float *ctx_host, int64_t rows)
{
    const sk_dit_config *cf = &c->m->cfg;
    SK_CHECK(ctx_host && rows >= 1 && rows <= cf->text_len, SK_E_SHAPE,
             "DiT: text embedding with %lld rows; expected 1..%lld (text_len) rows of %lld",
             (long long)rows, (long long)cf->text_len, (long long)cf->text_dim);
    c->cross_ready = 0;
    size_t mark = sk_arena_mark(&c->arena);
    sk_status st = set_context(c, ctx_host, rows);
    sk_arena_reset_to(&c->arena, mark);
    if (st == SK_OK) c->cross_ready = 1;
    return st;
}

/* y[F, K, D] = base[K, D] broadcast + add[F, K*D] (per-frame modulation). */
static sk_status frame_mod(sk_backend *be, sk_tensor *y, const sk_tensor *base, const sk_tensor *add,
                           int64_t F, int64_t KD)
{
    int64_t s1[2] = {1, KD};
    sk_tensor b1;
    SK_TRY(sk_tensor_reshape(base, 2, s1, &b1));
    for (int64_t f = 0; f < F; f++) {
        sk_tensor yf, af;
        sk_tensor yr = sk_tensor_rows(y, f, 1), ar = sk_tensor_rows(add, f, 1);
        SK_TRY(sk_tensor_reshape(&yr, 2, s1, &yf));
        SK_TRY(sk_tensor_reshape(&ar, 2, s1, &af));
        SK_TRY(sk_op_axpby(be, &yf, 1.0f, &b1, 1.0f, &af));
    }
    return SK_OK;
}

/* The time sinusoid of spec §2.2 on the host, into c->stage: f64, [cos | sin], raw t. */
static void time_sinusoid(sk_dit_ctx *c, const float *t, int64_t F)
{
    const int64_t fd = c->m->cfg.freq_dim, half = fd / 2;
    float *h = c->stage;
    for (int64_t f = 0; f < F; f++)
        for (int64_t k = 0; k < half; k++) {
            double w = pow(10000.0, -(double)k / (double)half);
            double a = (double)t[f] * w;
            h[f * fd + k] = (float)cos(a);
            h[f * fd + half + k] = (float)sin(a);
        }
}

static sk_status forward(sk_dit_ctx *c, sk_kv_cache *kv, const sk_tensor *x, const float *t,
                         int64_t t0, sk_tensor *vout)
{
    const sk_dit_model *m = c->m;
    const sk_dit_config *cf = &m->cfg;
    sk_backend *be = c->be;
    const int64_t F = x->shape[0], S = c->S, N = F * S, D = cf->dim, NH = cf->num_heads,
                  HD = cf->head_dim;
    const float eps = cf->eps;

    /* time embedding (spec §2.2): sinusoid in f64, [cos | sin], raw t */
    sk_tensor sinus, eh, e, es, e0, mod, hmod;
    SK_TRY(scratch(c, F, cf->freq_dim, &sinus));
    /* inside a graph recording the caller uploads it before each replay */
    if (!c->capturing) {
        time_sinusoid(c, t, F);
        SK_TRY(upload(c, &sinus, c->stage));
    }
    dump(c, "time_sinusoid", &sinus);
    SK_TRY(scratch(c, F, D, &eh));
    SK_TRY(scratch(c, F, D, &e));
    SK_TRY(scratch(c, F, D, &es));
    SK_TRY(scratch(c, F, 6 * D, &e0));
    SK_TRY(sk_op_linear(be, &eh, &sinus, &m->g[SK_DW_TIME0_W], &m->g[SK_DW_TIME0_B], SK_ACT_SILU));
    SK_TRY(sk_op_linear(be, &e, &eh, &m->g[SK_DW_TIME2_W], &m->g[SK_DW_TIME2_B], SK_ACT_NONE));
    SK_TRY(sk_op_act(be, &es, &e, SK_ACT_SILU));
    SK_TRY(sk_op_linear(be, &e0, &es, &m->g[SK_DW_TPROJ_W], &m->g[SK_DW_TPROJ_B], SK_ACT_NONE));
    dump(c, "e", &e);
    dump(c, "e0", &e0);
    int64_t ms[3] = {F, 6, D}, hs[3] = {F, 2, D};
    SK_TRY(sk_arena_tensor(&c->arena, be->act_dtype, 3, ms, &mod));
    SK_TRY(sk_arena_tensor(&c->arena, be->act_dtype, 3, hs, &hmod));

    /* patch embedding: patchify + GEMM with the conv weight viewed [D, C*4] */
    sk_tensor patch, xs, hb, tmp, q, k, v, att, ffh, hout;
    /* a pipeline stage after the first gets x's hidden state instead (pp_stream.h) */
    const int64_t first = c->blk_first, last = c->blk_last;
    if (c->hidden) xs = *c->hidden;
    else SK_TRY(scratch(c, N, D, &xs));
    if (first == 0) {
        SK_TRY(scratch(c, N, 4 * cf->in_dim, &patch));
        SK_TRY(sk_op_patchify(be, &patch, x));
        SK_TRY(sk_op_linear(be, &xs, &patch, &m->g[SK_DW_PATCH_W], &m->g[SK_DW_PATCH_B],
                            SK_ACT_NONE));
        dump(c, "patch_tokens", &xs);
    }
    SK_TRY(scratch(c, N, D, &hb));
    SK_TRY(scratch(c, N, D, &tmp));
    SK_TRY(scratch(c, N, D, &q));
    SK_TRY(scratch(c, N, D, &k));
    SK_TRY(scratch(c, N, D, &v));
    SK_TRY(scratch(c, N, D, &att));
    SK_TRY(scratch(c, N, cf->ffn_dim, &ffh));
    fp8_act qa;
    SK_TRY(fp8_init(c, &qa, N, D > cf->ffn_dim ? D : cf->ffn_dim));
    sk_tensor q3 = heads(&q, NH, HD), k3 = heads(&k, NH, HD), v3 = heads(&v, NH, HD);
    const float scale = (float)(1.0 / sqrt((double)HD));

    for (int64_t l = first; l < last; l++) {
        const sk_dit_block *B = &m->blocks[l];
        const sk_tensor *w = B->w;
        /* per-frame adaLN table: blocks.l.modulation + e0 (spec §2.4) */
        SK_TRY(frame_mod(be, &mod, &w[SK_DB_MOD], &e0, F, 6 * D));

        /* self-attention on LN1(x)(1 + scale) + shift; K/V into the cache first */
        SK_TRY(fp8_modulate(c, &qa, &hb, &xs, &mod, 0, 1, S, eps));
        /* RoPE positions come from the cache's policy (absolute frames, or the
         * positions it assigns; docs/KV_POLICIES.md); K goes in as it stores it.
         * Keys baked at absolute positions (LongLive's sink/fifo) are rotated
         * exactly as sk_kv_rope_qk would, fused with the q/k RMSNorm. */
        const int fuse = !kv->raw && kv->comp_frames == 0;
        /* and written straight into the cache's slots when the chunk has one run of them
         * (no K/V copies; SK_NO_KV_DIRECT=1 keeps the copies) */
        sk_tensor kd, vd, vd2;
        const int direct = fuse && c->kv_direct &&
                           sk_kv_write_views(kv, (int)(l - first), &kd, &vd) &&
                           kd.dtype == k3.dtype && sk_tensor_reshape(&vd, 2, v.shape, &vd2) == SK_OK;
        SK_TRY(blin(c, &tmp, &hb, &qa, B, SK_DB_SA_Q_W, SK_ACT_NONE));
        if (fuse)
            SK_TRY(sk_op_rmsnorm_rope3d(be, &q3, &tmp, &w[SK_DB_SA_NQ], eps, F, c->Hp, c->Wp,
                                        kv->q_t0, kv->p.rope_theta));
        else
            SK_TRY(sk_op_rmsnorm(be, &q, &tmp, &w[SK_DB_SA_NQ], eps));
        SK_TRY(blin(c, &tmp, &hb, &qa, B, SK_DB_SA_K_W, SK_ACT_NONE));
        if (fuse)
            SK_TRY(sk_op_rmsnorm_rope3d(be, direct ? &kd : &k3, &tmp, &w[SK_DB_SA_NK], eps, F,
                                        c->Hp, c->Wp, kv->q_t0, kv->p.rope_theta));
        else
            SK_TRY(sk_op_rmsnorm(be, &k, &tmp, &w[SK_DB_SA_NK], eps));
        SK_TRY(blin(c, direct ? &vd2 : &v, &hb, &qa, B, SK_DB_SA_V_W, SK_ACT_NONE));
        if (!fuse) SK_TRY(sk_kv_rope_qk(kv, (int)(l - first), &q3, &k3, c->Hp, c->Wp));
        if (!direct) SK_TRY(sk_kv_write(kv, (int)(l - first), &k3, &v3));
        /* a K/V-only pass (the clean pass) needs nothing after the last layer's write */
        if (!vout && l == cf->num_layers - 1) return SK_OK;
        int nr = 0;
        SK_TRY(sk_kv_attention_ranges(kv, (int)(l - first), c->ranges, c->ranges_cap, &nr));
        /* FP8 models with SK_FP8_ATTENTION=1: self-attention in e4m3 too (fp8.h), and
         * the only one that reads an FP8 cache; cross-attention (512 keys) stays in
         * the act dtype */
        if ((m->fp8_attention && sk_backend_has_attention_fp8(be)) || kv->ks)
            SK_TRY(sk_op_attention_fp8(be, &att, &q3, c->ranges, nr, scale));
        else
            SK_TRY(sk_op_attention(be, &att, &q3, c->ranges, nr, scale, NULL));
        SK_TRY(fp8_quant(c, &qa, &att));
        SK_TRY(blin(c, &tmp, &att, &qa, B, SK_DB_SA_O_W, SK_ACT_NONE));
        SK_TRY(sk_op_gated_add(be, &xs, &tmp, &mod, 2, S));

        /* cross-attention on norm3(x) (affine), no modulation, no gate */
        SK_TRY(fp8_layernorm(c, &qa, &hb, &xs, &w[SK_DB_N3_W], &w[SK_DB_N3_B], eps));
        SK_TRY(blin(c, &tmp, &hb, &qa, B, SK_DB_CA_Q_W, SK_ACT_NONE));
        SK_TRY(sk_op_rmsnorm(be, &q, &tmp, &w[SK_DB_CA_NQ], eps));
        sk_kv_range cr = {&c->cross_k[l], &c->cross_v[l], 0, cf->text_len};
        SK_TRY(sk_op_attention(be, &att, &q3, &cr, 1, scale, NULL));
        SK_TRY(fp8_quant(c, &qa, &att));
        SK_TRY(blin(c, &tmp, &att, &qa, B, SK_DB_CA_O_W, SK_ACT_NONE));
        SK_TRY(sk_op_gated_add(be, &xs, &tmp, NULL, -1, S));

        /* FFN on LN2(x)(1 + scale) + shift, gated */
        SK_TRY(fp8_modulate(c, &qa, &hb, &xs, &mod, 3, 4, S, eps));
        SK_TRY(blin(c, &ffh, &hb, &qa, B, SK_DB_FFN0_W, SK_ACT_GELU_TANH));
        SK_TRY(fp8_quant(c, &qa, &ffh));
        SK_TRY(blin(c, &tmp, &ffh, &qa, B, SK_DB_FFN2_W, SK_ACT_NONE));
        SK_TRY(sk_op_gated_add(be, &xs, &tmp, &mod, 5, S));
        if (c->debug) {
            char name[32];
            snprintf(name, sizeof name, "block%lld_out", (long long)l);
            dump(c, name, &xs);
        }
    }
    if (last < cf->num_layers) return SK_OK; /* a pipeline stage before the last: xs is out */

    /* head: LN(x)(1 + scale) + shift with head.modulation + e (not e0), spec §2.5 */
    int64_t h2[2] = {F * 2, D};
    sk_tensor hm2;
    SK_TRY(sk_tensor_reshape(&hmod, 2, h2, &hm2));
    for (int64_t f = 0; f < F; f++)
        for (int64_t j = 0; j < 2; j++) {
            /* hmod[f, j] = head.modulation[j] + e[f]: e broadcast over shift/scale */
            sk_tensor y = sk_tensor_rows(&hm2, f * 2 + j, 1),
                      b = sk_tensor_rows(&m->g[SK_DW_HEAD_MOD], j, 1), ef = sk_tensor_rows(&e, f, 1);
            SK_TRY(sk_op_axpby(be, &y, 1.0f, &b, 1.0f, &ef));
        }
    SK_TRY(sk_op_modulate(be, &hb, &xs, &hmod, 0, 1, S, 1, eps));
    SK_TRY(scratch(c, N, 4 * cf->out_dim, &hout));
    SK_TRY(sk_op_linear(be, &hout, &hb, &m->g[SK_DW_HEAD_W], &m->g[SK_DW_HEAD_B], SK_ACT_NONE));
    dump(c, "head_out", &hout);
    SK_TRY(sk_op_unpatchify(be, vout, &hout));
    dump(c, "v", vout);
    return SK_OK;
}

/* Everything a recorded forward depends on besides the weights and the
 * context's own buffers (fixed for its life): a graph is replayed only for
 * an identical key. The KV part is hashed (two independent 64-bit hashes). */
typedef struct {
    int64_t frames, clean; /* first 16 bytes: the graph's class (backend.h) */
    int64_t t0, n_layers;
    uint64_t mark, x, v, arena;
    uint64_t h1, h2;
} dit_graph_key;

static void key_mix(uint64_t *h1, uint64_t *h2, uint64_t v)
{
    *h1 = (*h1 ^ v) * 0x100000001b3ull; /* FNV-1a on 64-bit words */
    uint64_t z = *h2 + v + 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    *h2 = z ^ (z >> 31);
}

static void graph_key(sk_dit_ctx *c, const sk_kv_cache *kv, const sk_tensor *x, int64_t t0,
                      const sk_tensor *v, size_t mark, dit_graph_key *k)
{
    memset(k, 0, sizeof *k);
    k->frames = x->shape[0];
    k->clean = v == NULL;
    k->t0 = t0;
    k->n_layers = kv->p.num_layers;
    k->mark = mark;
    k->x = (uint64_t)(uintptr_t)x->data;
    k->v = v ? (uint64_t)(uintptr_t)v->data : 0;
    k->arena = (uint64_t)(uintptr_t)c->arena.base;
    uint64_t h1 = 0xcbf29ce484222325ull, h2 = 0x243F6A8885A308D3ull;
    key_mix(&h1, &h2, (uint64_t)kv->pend_n);
    for (int64_t i = 0; i < kv->pend_n; i++) key_mix(&h1, &h2, (uint64_t)kv->pend_slot[i]);
    /* RoPE: the pass's temporal position and every visible frame's (raw keys) */
    key_mix(&h1, &h2, (uint64_t)kv->q_t0);
    key_mix(&h1, &h2, (uint64_t)kv->raw);
    key_mix(&h1, &h2, (uint64_t)kv->n_vis);
    for (int64_t i = 0; i < kv->n_vis; i++) {
        key_mix(&h1, &h2, (uint64_t)kv->vis_slot[i]);
        key_mix(&h1, &h2, (uint64_t)kv->vis_pos[i]);
    }
    for (int64_t l = 0; l < kv->p.num_layers; l++) {
        int nr = sk_kv_visible(kv, (int)l, c->ranges, c->ranges_cap);
        if (nr > c->ranges_cap) nr = c->ranges_cap;
        key_mix(&h1, &h2, (uint64_t)nr);
        for (int r = 0; r < nr; r++) {
            key_mix(&h1, &h2, (uint64_t)(uintptr_t)c->ranges[r].k->data);
            key_mix(&h1, &h2, (uint64_t)(uintptr_t)c->ranges[r].v->data);
            key_mix(&h1, &h2, (uint64_t)c->ranges[r].start);
            key_mix(&h1, &h2, (uint64_t)c->ranges[r].len);
        }
    }
    k->h1 = h1;
    k->h2 = h2;
}

/* The shapes a forward runs at (frames, clean or not, the KV ranges' lengths):
 * a graph is recorded only for shapes that ran plainly once before, so that
 * every op found its plan, kernel image and workspace outside the recording
 * (cuDNN attention builds a plan per range length, never while recording). */
static uint64_t shape_sig(sk_dit_ctx *c, const sk_kv_cache *kv, int64_t F, int clean)
{
    uint64_t h1 = 0xcbf29ce484222325ull, h2 = 0;
    key_mix(&h1, &h2, (uint64_t)F);
    key_mix(&h1, &h2, (uint64_t)clean);
    int nr = sk_kv_visible(kv, 0, c->ranges, c->ranges_cap);
    if (nr > c->ranges_cap) nr = c->ranges_cap;
    key_mix(&h1, &h2, (uint64_t)nr);
    for (int r = 0; r < nr; r++) key_mix(&h1, &h2, (uint64_t)c->ranges[r].len);
    return h2 ? h2 : 1;
}

/* A forward through the backend's graphs: recorded when no graph of its key
 * is held, then the time sinusoid is uploaded (to the same arena address the
 * recording used) and the graph launched. Recording comes before the upload,
 * so it overlaps with the device still running the previous work. If
 * recording fails, the forward runs plainly (graphs stay on: a graph is never
 * replayed across chunks, its key holds the chunk's first frame, so a buffer
 * reallocated by that plain run cannot be used by an older graph). */
static sk_status forward_graph(sk_dit_ctx *c, sk_kv_cache *kv, const sk_tensor *x,
                               const float *t, int64_t t0, sk_tensor *vout, size_t mark)
{
    sk_backend *be = c->be;
    const int64_t F = x->shape[0];
    dit_graph_key key;
    graph_key(c, kv, x, t0, vout, mark, &key);
    if (!be->ops->graph_find(be, &key, sizeof key)) {
        sk_status st = be->ops->graph_begin(be);
        if (st == SK_OK) {
            c->capturing = 1;
            st = forward(c, kv, x, t, t0, vout);
            c->capturing = 0;
            sk_arena_reset_to(&c->arena, mark);
            if (st == SK_OK) st = be->ops->graph_end(be, &key, sizeof key, 0);
            else (void)be->ops->graph_end(be, &key, sizeof key, 1);
        }
        if (st != SK_OK) {
            /* e.g. a library growing its workspace (sync + cudaMalloc) inside the
             * recording: run this forward plainly; give up after repeated failures */
            if (++c->graph_failures >= 8) {
                SK_LOGW("DiT: recording a graph failed %d times (last: %s); running without "
                        "graphs", c->graph_failures, sk_error_message());
                c->graphs = 0;
            } else {
                SK_LOGD("DiT: recording a graph failed (%s); this forward runs plainly",
                        sk_error_message());
            }
            return forward(c, kv, x, t, t0, vout);
        }
        c->graph_failures = 0;
        c->n_graph_records++;
    }
    sk_tensor sinus;
    SK_TRY(scratch(c, F, c->m->cfg.freq_dim, &sinus));
    time_sinusoid(c, t, F);
    SK_TRY(upload(c, &sinus, c->stage));
    SK_TRY(be->ops->graph_launch(be, &key, sizeof key));
    c->n_graph_replays++;
    return SK_OK;
}

sk_status sk_dit_forward(sk_dit_ctx *c, sk_kv_cache *kv, const sk_tensor *x, const float *t,
                         int64_t start_frame, sk_tensor *v)
{
    const sk_dit_config *cf = &c->m->cfg;
    char a[96], b[96];
    SK_CHECK(c->cross_ready, SK_E_INVALID_ARG,
             "DiT forward: no prompt set (call sk_dit_set_context first)");
    SK_CHECK(x->ndim == 4 && x->shape[0] >= 1 && x->shape[0] <= c->max_frames &&
                 x->shape[1] == cf->in_dim && x->shape[2] == c->H && x->shape[3] == c->W,
             SK_E_SHAPE, "DiT forward: x is %s; expected [1..%lld, %lld, %lld, %lld]",
             sk_shape_str(x, a, sizeof a), (long long)c->max_frames, (long long)cf->in_dim,
             (long long)c->H, (long long)c->W);
    SK_CHECK(!v || (v->ndim == 4 && v->shape[0] == x->shape[0] && v->shape[1] == cf->out_dim &&
                 v->shape[2] == c->H && v->shape[3] == c->W),
             SK_E_SHAPE, "DiT forward: output v is %s; expected [%lld, %lld, %lld, %lld]",
             v ? sk_shape_str(v, b, sizeof b) : "", (long long)x->shape[0], (long long)cf->out_dim,
             (long long)c->H, (long long)c->W);
    SK_CHECK(kv && kv->pending && kv->pend_frame0 == start_frame && kv->pend_n == x->shape[0],
             SK_E_INTERNAL, "DiT forward: KV cache has no pending chunk of %lld frames at frame "
             "%lld (call sk_kv_begin_chunk)", (long long)x->shape[0], (long long)start_frame);
    SK_CHECK(kv->p.tokens_per_frame == c->S && kv->p.num_layers == cf->num_layers &&
                 kv->p.num_heads == cf->num_heads && kv->p.head_dim == cf->head_dim,
             SK_E_INVALID_ARG, "DiT forward: KV cache geometry does not match the model");
    for (int64_t f = 0; f < x->shape[0]; f++)
        SK_CHECK(isfinite(t[f]) && t[f] >= 0 && t[f] <= 1000.5f, SK_E_INVALID_ARG,
                 "DiT forward: timestep %g for frame %lld; expected 0..1000", (double)t[f],
                 (long long)f);
    size_t mark = sk_arena_mark(&c->arena);
    const int64_t F = x->shape[0];
    const int clean = v == NULL;
    sk_status st;
    const uint64_t sig = shape_sig(c, kv, F, clean);
    int seen = 0;
    for (int i = 0; i < SK_DIT_GRAPH_SEEN && !seen; i++) seen = c->graph_seen[i] == sig;
    /* compression (Deep Forcing PC) picks tokens on the host: never recorded */
    if (c->graphs && !c->debug && c->be->ops->graph_begin && seen && kv->comp_frames == 0) {
        st = forward_graph(c, kv, x, t, start_frame, v, mark);
    } else {
        st = forward(c, kv, x, t, start_frame, v);
        if (st == SK_OK && !seen) c->graph_seen[c->n_graph_seen++ % SK_DIT_GRAPH_SEEN] = sig;
    }
    sk_arena_reset_to(&c->arena, mark);
    return st;
}

sk_status sk_dit_forward_blocks(sk_dit_ctx *c, sk_kv_cache *kv, const sk_tensor *x,
                                const float *t, int64_t start_frame, int64_t n_frames,
                                sk_tensor *hidden, sk_tensor *v)
{
    const sk_dit_config *cf = &c->m->cfg;
    const int64_t L = cf->num_layers, F = n_frames, N = F * c->S;
    const int first = c->blk_first, last = c->blk_last;
    char a[96];
    SK_CHECK(c->cross_ready, SK_E_INVALID_ARG,
             "DiT forward: no prompt set (call sk_dit_set_context first)");
    SK_CHECK(F >= 1 && F <= c->max_frames, SK_E_SHAPE,
             "DiT forward (blocks %d..%d): %lld frames; expected 1..%lld", first, last - 1,
             (long long)F, (long long)c->max_frames);
    SK_CHECK(first > 0 || (x && x->ndim == 4 && x->shape[0] == F && x->shape[1] == cf->in_dim &&
                           x->shape[2] == c->H && x->shape[3] == c->W),
             SK_E_SHAPE, "DiT forward (first stage): x is %s; expected [%lld, %lld, %lld, %lld]",
             x ? sk_shape_str(x, a, sizeof a) : "missing", (long long)F, (long long)cf->in_dim,
             (long long)c->H, (long long)c->W);
    SK_CHECK((first == 0 && last == L) ||
                 (hidden && hidden->ndim == 2 && hidden->shape[0] == N &&
                  hidden->shape[1] == cf->dim && hidden->dtype == c->be->act_dtype &&
                  hidden->be == c->be),
             SK_E_SHAPE, "DiT forward (blocks %d..%d): the hidden state is %s; expected "
             "[%lld, %lld] of %s on this stage's backend", first, last - 1,
             hidden ? sk_shape_str(hidden, a, sizeof a) : "missing", (long long)N,
             (long long)cf->dim, sk_dtype_name(c->be->act_dtype));
    SK_CHECK(!v || (last == L && v->ndim == 4 && v->shape[0] == F && v->shape[1] == cf->out_dim &&
                    v->shape[2] == c->H && v->shape[3] == c->W),
             SK_E_SHAPE, "DiT forward (blocks %d..%d): an output v only comes from the last "
             "stage, as [%lld, %lld, %lld, %lld]", first, last - 1, (long long)F,
             (long long)cf->out_dim, (long long)c->H, (long long)c->W);
    SK_CHECK(kv && kv->pending && kv->pend_frame0 == start_frame && kv->pend_n == F,
             SK_E_INTERNAL, "DiT forward: KV cache has no pending chunk of %lld frames at frame "
             "%lld (call sk_kv_begin_chunk)", (long long)F, (long long)start_frame);
    SK_CHECK(kv->p.tokens_per_frame == c->S && kv->p.num_layers == last - first &&
                 kv->p.num_heads == cf->num_heads && kv->p.head_dim == cf->head_dim,
             SK_E_INVALID_ARG, "DiT forward: the KV cache (%lld layers) does not match blocks "
             "%d..%d of the model", (long long)kv->p.num_layers, first, last - 1);
    for (int64_t f = 0; f < F; f++)
        SK_CHECK(isfinite(t[f]) && t[f] >= 0 && t[f] <= 1000.5f, SK_E_INVALID_ARG,
                 "DiT forward: timestep %g for frame %lld; expected 0..1000", (double)t[f],
                 (long long)f);
    /* first > 0: forward() reads only x's shape (F) */
    sk_tensor xd;
    if (first > 0) {
        memset(&xd, 0, sizeof xd);
        xd.ndim = 4;
        xd.shape[0] = F; xd.shape[1] = cf->in_dim; xd.shape[2] = c->H; xd.shape[3] = c->W;
        xd.dtype = c->be->act_dtype;
        xd.be = c->be;
        x = &xd;
    }
    size_t mark = sk_arena_mark(&c->arena);
    c->hidden = hidden;
    sk_status st = forward(c, kv, x, t, start_frame, v);
    c->hidden = NULL;
    sk_arena_reset_to(&c->arena, mark);
    return st;
}
