/* engine.c - sk_engine of runtime/sinkstream.h: the models on a device, text
 * encoding, and the registry that turns a stale handle into a status.
 */
#include <stdlib.h>
#include <string.h>

#include "runtime/core/log.h"
#include "runtime/engine/device.h"
#include "runtime/engine/engine_impl.h"
#include "runtime/engine/random_model.h"

#ifndef SK_VERSION
#define SK_VERSION "0.1.0"
#endif

_Static_assert(SK_E_COUNT_ == 12, "runtime/sinkstream.h and runtime/core/status.h list the "
                                  "same statuses");

const char *sk_last_error(void) { return sk_error_message(); }
const char *sk_status_str(sk_status s) { return sk_status_name(s); }
void sk_free(void *p) { free(p); }
const char *sk_version(void) { return SK_VERSION; }

/* ---- handle registry: every live engine and session, so that a call with a
 * closed (freed) handle is answered with a status instead of touching freed
 * memory. A freed address reused by a later handle of the same kind is not
 * caught; that needs the caller to have kept a stale pointer that long. */
static pthread_mutex_t g_reg_mu = PTHREAD_MUTEX_INITIALIZER;
static const void **g_reg;
static int g_reg_n, g_reg_cap;

static int reg_find(const void *h)
{
    for (int i = 0; i < g_reg_n; i++)
        if (g_reg[i] == h) return i;
    return -1;
}

static int reg_set(const void *h, int add)
{
    pthread_mutex_lock(&g_reg_mu);
    int ok = 1, i = reg_find(h);
    if (add && i < 0) {
        if (g_reg_n == g_reg_cap) {
            int cap = g_reg_cap ? 2 * g_reg_cap : 16;
            const void **v = realloc(g_reg, (size_t)cap * sizeof *v);
            if (v) {
                g_reg = v;
                g_reg_cap = cap;
            } else {
                ok = 0;
            }
        }
        if (ok) g_reg[g_reg_n++] = h;
    } else if (!add && i >= 0) {
        g_reg[i] = g_reg[--g_reg_n];
        if (g_reg_n == 0) { /* nothing left: give the table back (leak checkers) */
            free(g_reg);
            g_reg = NULL;
            g_reg_cap = 0;
        }
    }
    pthread_mutex_unlock(&g_reg_mu);
    return ok;
}

static int reg_has(const void *h)
{
    pthread_mutex_lock(&g_reg_mu);
    int i = reg_find(h);
    pthread_mutex_unlock(&g_reg_mu);
    return i >= 0;
}

/* Engines and sessions share the table; the tag byte tells them apart. */
int sk_api_engine_live(const sk_engine *e) { return e && reg_has((const char *)e + 1); }
int sk_api_session_live(const sk_session *s) { return s && reg_has(s); }
void sk_api_session_register(sk_session *s, int add) { (void)reg_set(s, add); }

sk_engine_params sk_engine_params_default(void)
{
    sk_engine_params p;
    memset(&p, 0, sizeof p);
    p.vae_overlap = 1;
    p.gpus = 1;
    return p;
}

static int pick(const char *s, const char *const *names, int n, int dflt)
{
    if (!s || !*s) return dflt;
    for (int i = 0; i < n; i++)
        if (!strcmp(s, names[i])) return i;
    return -1;
}

static void engine_free(sk_engine *e)
{
    gen_text_close(&e->text);
    sk_taehv_free(&e->vae);
    sk_backend_free_(&e->vae_be);
    sk_dit_free(&e->m);
    sk_backend_free_(&e->be);
    sk_model_dir_free(&e->md);
    free(e->dit_path);
    free(e->pp_split);
    pthread_mutex_destroy(&e->text_mu);
    sk_turn_lock_destroy(&e->step_turn);
    pthread_mutex_destroy(&e->mu);
    free(e);
}

static sk_status engine_load(sk_engine *e, const sk_engine_params *pin)
{
    sk_engine_params p = *pin;
    if (p.model_dir) {
        SK_TRY(sk_model_dir_open(p.model_dir, &e->md));
        if (!p.dit) p.dit = e->md->dit;
        if (!p.dit_config) p.dit_config = e->md->dit_config;
        if (!p.text_encoder) p.text_encoder = e->md->text_encoder;
        if (!p.tokenizer) p.tokenizer = e->md->tokenizer;
        if (!p.vae) p.vae = e->md->vae;
    }
    if (p.random_model) {
        SK_CHECK(!p.model_dir && !p.dit && !p.dit_config, SK_E_INVALID_ARG, "engine: "
                 "random_model '%s' makes the DiT: leave model_dir, dit and dit_config unset",
                 p.random_model);
        SK_CHECK(!(p.random_vae && p.vae), SK_E_INVALID_ARG, "engine: random_vae and vae '%s' "
                 "both give a decoder: set one", p.vae);
        sk_dit_config rc;
        SK_TRY(sk_random_model_config(p.random_model, &rc)); /* a bad name fails before loading */
    } else {
        SK_CHECK(!p.random_vae, SK_E_INVALID_ARG, "engine: random_vae needs random_model");
    }
    const int has_dit = p.dit || p.random_model, has_vae = p.vae || p.random_vae;
    SK_CHECK(has_dit || p.text_encoder || has_vae, SK_E_INVALID_ARG, "engine: no model: set "
             "model_dir (a converted model directory), or dit, text_encoder and/or vae files "
             "(or random_model)");
    const char *dev = p.device && *p.device ? p.device : "cpu";
    if (!strcmp(dev, "auto")) dev = sk_device_auto(); /* cuda when built with it and a GPU is
                                                         present, else cpu */
    e->cuda = strstr(dev, "cuda") == dev; /* "cuda", "cuda:N" */
    const int cpu_ref = !strcmp(dev, "cpu-ref"); /* the reference loops (the op tests' oracle) */
    SK_CHECK(e->cuda || cpu_ref || !strcmp(dev, "cpu"), SK_E_INVALID_ARG,
             "engine: device '%s': expected auto, cpu, cpu-ref, cuda or cuda:N", dev);
    static const char *const acts[] = {"auto", "f32", "bf16", "fp32"};
    const int a = pick(p.act_dtype, acts, 4, 0);
    SK_CHECK(a >= 0, SK_E_INVALID_ARG, "engine: act_dtype '%s': expected auto, f32 or bf16",
             p.act_dtype);
    e->act = a == 0 ? (e->cuda ? SK_DTYPE_BF16 : SK_DTYPE_F32) : a == 2 ? SK_DTYPE_BF16
                                                                        : SK_DTYPE_F32;
    if (!e->cuda && e->act == SK_DTYPE_BF16) /* the CPU backends have f32 activations only */
        SK_LOGW("engine: the CPU computes activations in f32; act_dtype bf16 (--dtype bf16) "
                "applies on cuda only, so this run is the f32 one");
    /* fp8: the DiT's block linears in e4m3 with row scales, activations quantized per
     * token row for them (runtime/core/fp8.h); everything else in act_dtype */
    static const char *const wds[] = {"as-stored", "f32", "bf16", "f16", "fp8"};
    static const sk_dtype wd_of[] = {SK_DIT_WDTYPE_AS_STORED, SK_DTYPE_F32, SK_DTYPE_BF16,
                                     SK_DTYPE_F16, SK_DTYPE_F8_E4M3};
    const int w = pick(p.dit_dtype, wds, 5, 0);
    SK_CHECK(w >= 0, SK_E_INVALID_ARG, "engine: dit_dtype '%s': expected as-stored, f32, bf16, "
             "f16 or fp8", p.dit_dtype);
    e->wdtype = wd_of[w];
    static const char *const trs[] = {"auto", "loopback", "nccl"};
    const int tr = pick(p.pp_transport, trs, 3, 0);
    SK_CHECK(tr >= 0, SK_E_INVALID_ARG, "engine: pp_transport '%s': expected auto, loopback or "
             "nccl", p.pp_transport);
    if (p.pp_split && !(e->pp_split = strdup(p.pp_split))) return SK_ERR(SK_E_OOM, "engine: OOM");
    e->pp = (gen_pp_opts){.gpus = p.gpus > 0 ? p.gpus : 1, .stages = p.pp_stages,
                          .split = e->pp_split, .transport = tr, .cpu_ref = cpu_ref};
    e->pipelined = gen_pp_enabled(&e->pp);
    if (e->pipelined || e->pp.split || e->pp.transport) {
        char buf[256];
        const char *bad = gen_pp_usage(&e->pp, e->cuda, buf, sizeof buf);
        SK_CHECK(!bad, SK_E_INVALID_ARG, "engine: %s", bad);
    }
    char devname[32];
    const char *main_dev = e->pipelined ? gen_pp_main_device(&e->pp, e->cuda, devname,
                                                             sizeof devname) : dev;
    snprintf(e->device, sizeof e->device, "%s", main_dev);
    if (p.dit && !(e->dit_path = strdup(p.dit))) return SK_ERR(SK_E_OOM, "engine: OOM");
    SK_CHECK(p.dit || !e->pipelined, SK_E_INVALID_ARG, "engine: pipeline stages need a DiT "
             "file%s", p.random_model ? " (random_model is not split over stages)" : "");

    /* the text encoder first: f32 activations on its own backend (it runs once per
     * prompt, as Self-Forcing runs it) */
    if (p.text_encoder) {
        SK_TRY(sk_backend_create(e->cuda ? "cuda" : cpu_ref ? "cpu-ref" : "cpu", SK_DTYPE_F32,
                                 &e->text.be));
        sk_text_opts to = {.encoder_path = p.text_encoder, .tokenizer_path = p.tokenizer,
                           .config_path = p.text_encoder_config, .offload = p.text_offload,
                           .text_len = p.text_len};
        SK_TRY(sk_text_encoder_create(e->text.be, &to, &e->text.te));
    }
    if (!has_dit && !has_vae) return SK_OK; /* a text-only engine */
    SK_TRY(sk_backend_create(main_dev, e->act, &e->be));
    e->serialize_steps = strcmp(e->be->name, "cpu") != 0;
    sk_engine_sample_memory(e); /* before the models: what others use */
    e->mem_free_at_open = e->mem_min_free;
    if (p.random_model) {
        SK_TRY(sk_random_model_dit(p.random_model, e->be, e->wdtype == SK_DIT_WDTYPE_AS_STORED
                                   ? e->act : e->wdtype, p.random_seed, &e->m));
    } else if (p.dit) {
        sk_dit_config cfg, *cfgp = NULL;
        if (p.dit_config) {
            SK_TRY(sk_dit_config_from_file(p.dit_config, &cfg));
            cfgp = &cfg;
        }
        /* pipelined: only the config and the small global tensors here, the blocks on
         * the stages of each session */
        SK_TRY(sk_dit_load_blocks(p.dit, cfgp, e->be, e->wdtype, 0, e->pipelined ? 0 : -1,
                                  &e->m));
    }
    if (p.random_vae) {
        if (p.vae_overlap && sk_vae_pipe_want_overlap(e->be))
            SK_TRY(sk_vae_pipe_backend_create(e->be, &e->vae_be));
        SK_TRY(sk_random_model_vae(e->vae_be ? e->vae_be : e->be, (int)e->m->cfg.out_dim,
                                   p.random_seed + 1, &e->vae));
    } else if (p.vae) {
        /* on CUDA the VAE gets its own stream on the DiT's device and decodes chunk c while
         * the DiT makes c+1 (runtime/stream/vae_pipe.h); without a DiT there is nothing to
         * overlap */
        if (has_dit && p.vae_overlap && !e->pipelined && sk_vae_pipe_want_overlap(e->be))
            SK_TRY(sk_vae_pipe_backend_create(e->be, &e->vae_be));
        sk_taehv_load_opts lo = sk_taehv_load_opts_default();
        if (p.vae_variant && *p.vae_variant &&
            sk_taehv_variant_from_name(p.vae_variant, &lo.variant) != SK_OK) {
            sk_error_prefix("engine: vae_variant: ");
            return SK_E_INVALID_ARG;
        }
        SK_TRY(sk_taehv_load(e->vae_be ? e->vae_be : e->be, p.vae, &lo, &e->vae));
        const sk_taehv_config *vc = sk_taehv_get_config(e->vae);
        SK_CHECK(!e->m || vc->latent_channels == e->m->cfg.out_dim, SK_E_SHAPE,
                 "--vae '%s' decodes %d-channel latents but the DiT makes %lld (taew2_1 for Wan "
                 "2.1, 16 channels; taew2_2 for Wan 2.2 TI2V-5B, 48)", p.vae,
                 vc->latent_channels, e->m ? (long long)e->m->cfg.out_dim : 0LL);
    }
    return SK_OK;
}

sk_status sk_engine_open(const sk_engine_params *p, sk_engine **out)
{
    SK_CHECK(out, SK_E_INVALID_ARG, "sk_engine_open: out is NULL");
    *out = NULL;
    SK_CHECK(p, SK_E_INVALID_ARG, "sk_engine_open: params are NULL (sk_engine_params_default)");
    sk_engine *e = calloc(1, sizeof *e);
    SK_CHECK(e, SK_E_OOM, "sk_engine_open: out of memory");
    pthread_mutex_init(&e->text_mu, NULL);
    sk_turn_lock_init(&e->step_turn);
    pthread_mutex_init(&e->mu, NULL);
    sk_status st = engine_load(e, p);
    if (st == SK_OK && !reg_set((const char *)e + 1, 1))
        st = SK_ERR(SK_E_OOM, "sk_engine_open: out of memory");
    if (st != SK_OK) {
        engine_free(e);
        return st;
    }
    *out = e;
    return SK_OK;
}

sk_status sk_engine_close(sk_engine **pe)
{
    if (!pe || !*pe) return SK_OK;
    sk_engine *e = *pe;
    SK_CHECK(sk_api_engine_live(e), SK_E_INVALID_ARG, "sk_engine_close: not a live engine "
             "(closed twice?)");
    pthread_mutex_lock(&e->mu);
    const int n = e->n_sessions;
    pthread_mutex_unlock(&e->mu);
    SK_CHECK(n == 0, SK_E_INVALID_ARG, "sk_engine_close: %d session(s) of this engine are still "
             "open; close them first", n);
    reg_set((const char *)e + 1, 0);
    engine_free(e);
    *pe = NULL;
    return SK_OK;
}

sk_status sk_engine_get_info(const sk_engine *e, sk_engine_info *out)
{
    SK_CHECK(e && sk_api_engine_live(e), SK_E_INVALID_ARG, "sk_engine_get_info: %s engine",
             e ? "not a live" : "NULL");
    SK_CHECK(out, SK_E_INVALID_ARG, "sk_engine_get_info: out is NULL");
    memset(out, 0, sizeof *out);
    if (e->m) {
        const sk_dit_config *c = &e->m->cfg;
        out->has_dit = 1;
        out->text_dim = c->text_dim;
        out->text_len = c->text_len;
        out->latent_channels = c->out_dim;
        out->dim = c->dim;
        out->num_layers = c->num_layers;
        out->num_heads = c->num_heads;
        out->vae_stride = sk_dit_vae_stride(c);
        snprintf(out->model_type, sizeof out->model_type, "%s", c->model_type);
    } else {
        if (e->text.te) sk_text_encoder_shape(e->text.te, &out->text_len, &out->text_dim);
        if (e->vae) out->latent_channels = sk_taehv_get_config(e->vae)->latent_channels;
        /* the 48-channel latents are Wan2.2's 16x VAE's */
        out->vae_stride = out->latent_channels == 48 ? 16 : 8;
    }
    out->has_text_encoder = e->text.te != NULL;
    out->has_vae = e->vae != NULL;
    out->pipelined = e->pipelined;
    snprintf(out->device, sizeof out->device, "%s", e->device);
    snprintf(out->act_dtype, sizeof out->act_dtype, "%s", sk_dtype_name(e->act));
    if (e->md) snprintf(out->family, sizeof out->family, "%s", e->md->family);
    if (e->m) {
        out->in_channels = e->m->cfg.in_dim;
        out->ffn_dim = e->m->cfg.ffn_dim;
        out->freq_dim = e->m->cfg.freq_dim;
        out->weights_bytes = (int64_t)e->m->weight_bytes;
    }
    return SK_OK;
}

sk_status sk_engine_prompt_from_text(sk_engine *e, const char *text, int64_t frame,
                                     gen_prompt *out)
{
    memset(out, 0, sizeof *out);
    out->frame = out->raw_frame = frame;
    SK_CHECK(text && *text, SK_E_INVALID_ARG, "prompt text is %s", text ? "empty" : "NULL");
    SK_CHECK(e->text.te, SK_E_INVALID_ARG, "text prompt '%.40s' needs a text encoder (engine "
             "params text_encoder, or a model directory with one); or give embeddings", text);
    out->text = strdup(text);
    SK_CHECK(out->text, SK_E_OOM, "out of memory");
    pthread_mutex_lock(&e->text_mu);
    sk_status st = gen_prompt_resolve(out, NULL, &e->text);
    pthread_mutex_unlock(&e->text_mu);
    if (st == SK_OK && e->m) st = gen_prompt_fit(out, &e->m->cfg);
    if (st != SK_OK) gen_prompt_free(out);
    return st;
}

sk_status sk_engine_offload_text(sk_engine *e)
{
    SK_CHECK(e && sk_api_engine_live(e), SK_E_INVALID_ARG, "sk_engine_offload_text: %s engine",
             e ? "not a live" : "NULL");
    pthread_mutex_lock(&e->text_mu);
    if (e->text.te) sk_text_encoder_offload(e->text.te);
    pthread_mutex_unlock(&e->text_mu);
    return SK_OK;
}

sk_status sk_engine_encode_text(sk_engine *e, const char *text, float **ctx, int64_t *rows,
                                int64_t *cols, int32_t **ids, int *n_tokens)
{
    SK_CHECK(e && sk_api_engine_live(e), SK_E_INVALID_ARG, "sk_engine_encode_text: %s engine",
             e ? "not a live" : "NULL");
    SK_CHECK(ctx && rows && cols, SK_E_INVALID_ARG, "sk_engine_encode_text: NULL out-parameter");
    SK_CHECK(text, SK_E_INVALID_ARG, "sk_engine_encode_text: text is NULL");
    *ctx = NULL;
    if (ids) *ids = NULL;
    SK_CHECK(e->text.te, SK_E_INVALID_ARG, "sk_engine_encode_text: the engine has no text "
             "encoder (engine params text_encoder)");
    int64_t tr = 0, tc = 0;
    sk_text_encoder_shape(e->text.te, &tr, &tc);
    float *c = malloc((size_t)(tr * tc) * sizeof *c);
    int32_t *id = ids ? malloc((size_t)tr * sizeof *id) : NULL;
    if (!c || (ids && !id)) {
        free(c);
        free(id);
        return SK_ERR(SK_E_OOM, "out of host memory for a [%lld, %lld] context", (long long)tr,
                      (long long)tc);
    }
    int len = 0;
    pthread_mutex_lock(&e->text_mu);
    sk_status st = sk_text_encode(e->text.te, text, c, &len, id);
    pthread_mutex_unlock(&e->text_mu);
    if (st != SK_OK) {
        free(c);
        free(id);
        return st;
    }
    *ctx = c;
    if (ids) *ids = id;
    *rows = tr;
    *cols = tc;
    if (n_tokens) *n_tokens = len;
    return SK_OK;
}
