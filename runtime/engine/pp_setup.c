/* pp_setup.c - a session over pipeline stages (see pp_setup.h). */
#include "runtime/engine/pp_setup.h"
#include "runtime/engine/device.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/core/log.h"

struct gen_pp {
    int K;
    sk_backend *be[SK_PP_MAX_STAGES];
    sk_dit_model *m[SK_PP_MAX_STAGES];
    sk_pp_transport *tr;
    sk_pp_stream *s;
    sk_tensor x0;       /* [chunk, C, H, W] on out_be */
    int64_t next_frame;
    sk_pp_plan plan;
};

int gen_pp_enabled(const gen_pp_opts *o) { return o->gpus > 1 || o->stages > 0; }

static int n_stages(const gen_pp_opts *o) { return o->stages > 0 ? o->stages : o->gpus; }

static int use_nccl(const gen_pp_opts *o, int cuda)
{
    return o->transport == 2 || (o->transport == 0 && cuda && o->gpus > 1);
}

const char *gen_pp_usage(const gen_pp_opts *o, int cuda, char *buf, size_t cap)
{
    if (o->gpus < 1 || o->gpus > SK_PP_MAX_STAGES || o->stages < 0 || o->stages > SK_PP_MAX_STAGES) {
        snprintf(buf, cap, "--gpus / --pp-stages: expected 1..%d", SK_PP_MAX_STAGES);
        return buf;
    }
    if (!cuda && o->gpus > 1) {
        snprintf(buf, cap, "--gpus %d needs --device cuda; on the CPU, --pp-stages N runs N "
                 "loopback stages", o->gpus);
        return buf;
    }
    if (o->gpus > 1 && o->stages > 0 && o->stages != o->gpus) {
        snprintf(buf, cap, "--pp-stages %d with --gpus %d: one stage per GPU (leave out "
                 "--pp-stages)", o->stages, o->gpus);
        return buf;
    }
    if (o->transport == 2 && !cuda) {
        snprintf(buf, cap, "--pp-transport nccl needs --device cuda");
        return buf;
    }
    if (o->transport == 2 && !sk_pp_have_nccl()) {
        snprintf(buf, cap, "--pp-transport nccl: this build has no NCCL (nccl.h and libnccl "
                 "were not found when it was configured)");
        return buf;
    }
    if (o->transport == 2 && o->gpus != n_stages(o)) {
        snprintf(buf, cap, "--pp-transport nccl runs one stage per GPU: give --gpus %d",
                 n_stages(o));
        return buf;
    }
    if ((o->split || o->transport) && !gen_pp_enabled(o)) {
        snprintf(buf, cap, "--pp-split / --pp-transport need --gpus N or --pp-stages N");
        return buf;
    }
    return NULL;
}

const char *gen_pp_main_device(const gen_pp_opts *o, int cuda, char *buf, size_t cap)
{
    if (!cuda) return o->cpu_ref ? "cpu-ref" : "cpu";
    if (!gen_pp_enabled(o) || o->gpus <= 1) return "cuda";
    snprintf(buf, cap, "cuda:%d", o->gpus - 1);
    return buf;
}

void gen_pp_close(gen_pp **pg)
{
    if (!pg || !*pg) return;
    gen_pp *g = *pg;
    sk_pp_stream_free(&g->s);
    sk_pp_transport_free(&g->tr);
    sk_tensor_free(&g->x0);
    for (int k = 0; k < g->K; k++) {
        if (g->be[k]) (void)sk_pp_bind_backend(g->be[k]);
        sk_dit_free(&g->m[k]);
        sk_backend_free_(&g->be[k]);
    }
    free(g);
    *pg = NULL;
}

sk_status gen_pp_open(const gen_pp_opts *o, int cuda, sk_dtype act, const char *dit,
                      const sk_dit_config *cfg, sk_dtype wdtype, const sk_stream_params *p,
                      const float *ctx, int64_t rows, sk_backend *out_be, gen_pp **out)
{
    *out = NULL;
    gen_pp *g = calloc(1, sizeof *g);
    SK_CHECK(g, SK_E_OOM, "out of host memory");
    sk_status st = SK_OK;
    const int K = n_stages(o);
    g->K = K;
    const int L = (int)cfg->num_layers;
    const int64_t chunk = p->frames > 0 && p->frames < p->chunk_frames ? p->frames : p->chunk_frames;
    const int64_t S = (p->latent_h / 2) * (p->latent_w / 2);
    if (o->split) {
        SK_TRY_GOTO(st, sk_pp_plan_parse(o->split, L, K, &g->plan), fail);
    } else {
        double b, e, h;
        sk_pp_cost_estimate(cfg->dim, cfg->ffn_dim, cfg->in_dim, cfg->text_len, chunk, S,
                            p->kv_window, &b, &e, &h);
        SK_TRY_GOTO(st, sk_pp_plan_balanced(L, K, NULL, e / b, h / b, &g->plan), fail);
    }
    for (int k = 0; k < K; k++) {
        char name[32];
        if (cuda) snprintf(name, sizeof name, "cuda:%d", o->gpus > 1 ? k : 0);
        else snprintf(name, sizeof name, "%s", o->cpu_ref ? "cpu-ref" : "cpu");
        SK_TRY_GOTO(st, sk_backend_create(name, act, &g->be[k]), fail);
        SK_TRY_GOTO(st, sk_pp_bind_backend(g->be[k]), fail);
        SK_TRY_GOTO(st, sk_dit_load_blocks(dit, cfg, g->be[k], wdtype, g->plan.first[k],
                                           g->plan.last[k], &g->m[k]), fail);
    }
    const size_t asz = sk_dtype_size(act);
    const size_t hid = (size_t)(chunk * S * cfg->dim) * asz,
                 lat = (size_t)(chunk * cfg->in_dim * p->latent_h * p->latent_w) * asz;
    if (use_nccl(o, cuda))
        SK_TRY_GOTO(st, sk_pp_transport_nccl(K, g->be, hid > lat ? hid : lat, 3, &g->tr), fail);
    sk_pp_params pp;
    memset(&pp, 0, sizeof pp);
    pp.n_stages = K;
    pp.plan = g->plan;
    for (int k = 0; k < K; k++) {
        pp.be[k] = g->be[k];
        pp.model[k] = g->m[k];
    }
    pp.transport = g->tr;
    pp.sp = *p;
    pp.out_depth = 2;
    SK_TRY_GOTO(st, sk_pp_stream_init(&pp, &g->s), fail);
    SK_TRY_GOTO(st, sk_pp_stream_set_prompt(g->s, 0, ctx, rows), fail);
    int64_t xs[4] = {chunk, cfg->out_dim, p->latent_h, p->latent_w};
    (void)sk_pp_bind_backend(out_be);
    SK_TRY_GOTO(st, sk_tensor_alloc(out_be, out_be->act_dtype, 4, xs, &g->x0), fail);
    *out = g;
    return SK_OK;
fail:
    gen_pp_close(&g);
    return st;
}

sk_status gen_pp_step(gen_pp *g, sk_tensor *x0, int64_t *frame0)
{
    int64_t f0, n;
    SK_TRY(sk_pp_stream_next(g->s, &g->x0, NULL, &f0, &n, NULL, x0));
    g->next_frame = f0 + n;
    if (frame0) *frame0 = f0;
    return SK_OK;
}

int gen_pp_done(const gen_pp *g) { return sk_pp_stream_done(g->s); }

int64_t gen_pp_next_frame(const gen_pp *g) { return g->next_frame; }

sk_status gen_pp_finish(gen_pp *g)
{
    SK_TRY(sk_pp_stream_finish(g->s));
    sk_pp_stats stt;
    sk_pp_stream_stats(g->s, &stt);
    char line[512];
    size_t o = 0;
    for (int k = 0; k < g->K && o < sizeof line; k++) {
        int w = snprintf(line + o, sizeof line - o, "%s stage %d (blocks %d-%d) %.0f%%",
                         k ? "," : "", k, g->plan.first[k], g->plan.last[k] - 1,
                         stt.wall_s > 0 ? 100.0 * stt.busy_s[k] / stt.wall_s : 0.0);
        if (w < 0) break;
        o += (size_t)w;
    }
    SK_LOGI("pipeline: %.2f s; busy share of the wall time:%s", stt.wall_s, line);
    return SK_OK;
}
