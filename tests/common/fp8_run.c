/* fp8_run.c - see fp8_run.h. */
#include "fp8_run.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/core/status.h"
#include "runtime/io/safetensors.h"

typedef struct {
    float *lat;
} fp8_sink;

static void on_lat(void *user, const float *l, int64_t n, int64_t c, int64_t h, int64_t w,
                   int64_t f0)
{
    fp8_sink *s = user;
    if (f0 >= 0 && f0 + n <= SK_FP8_RUN_FRAMES && c == 4 && h == 8 && w == 8)
        memcpy(s->lat + f0 * c * h * w, l, (size_t)(n * c * h * w) * sizeof *l);
}

sk_status sk_test_fp8_run(const char *src_dir, const char *device, const char *act_dtype,
                          const char *dit_dtype, float *lat, int64_t *weights_bytes, char *err,
                          size_t err_cap)
{
    char dit[1024], cfg[1024], emb[1024];
    snprintf(dit, sizeof dit, "%s/tests/fixtures/dit/dit_tiny.safetensors", src_dir);
    snprintf(cfg, sizeof cfg, "%s/tests/fixtures/dit/config.json", src_dir);
    snprintf(emb, sizeof emb, "%s/tests/fixtures/dit/embeds.safetensors", src_dir);
    memset(lat, 0xff, SK_FP8_RUN_VALS * sizeof *lat); /* NaN where nothing was written */
    sk_engine_params ep = sk_engine_params_default();
    ep.dit = dit;
    ep.dit_config = cfg;
    ep.device = device;
    ep.act_dtype = act_dtype;
    ep.dit_dtype = dit_dtype;
    sk_engine *e = NULL;
    sk_session *s = NULL;
    sk_st_file *f = NULL;
    float *ctx = NULL;
    fp8_sink sink = {lat};
    sk_status st = sk_engine_open(&ep, &e);
    if (st == SK_OK && weights_bytes) {
        sk_engine_info info;
        st = sk_engine_get_info(e, &info);
        *weights_bytes = (int64_t)info.weights_bytes;
    }
    if (st == SK_OK) st = sk_st_open(emb, &f);
    const sk_st_tensor *t = st == SK_OK ? sk_st_find(f, "context") : NULL;
    if (st == SK_OK && !t) st = SK_ERR(SK_E_FORMAT, "%s lacks 'context'", emb);
    if (st == SK_OK) st = sk_st_read_f32(f, "context", 0, NULL, &ctx, NULL);
    sk_session_params sp = sk_session_params_default();
    sp.frames = SK_FP8_RUN_FRAMES;
    sp.latent_h = sp.latent_w = 8;
    sp.kv_policy = "sink";
    sp.kv_window = 6;
    sp.seed = 5;
    sp.on_latents = on_lat;
    sp.user = &sink;
    if (st == SK_OK) st = sk_session_create(e, &sp, &s);
    if (st == SK_OK)
        st = sk_session_queue_prompt_embeds(s, ctx, t->shape[t->ndim - 2], t->shape[t->ndim - 1],
                                            0, SK_SWITCH_DEFAULT, "fp8 test");
    while (st == SK_OK && !sk_session_done(s)) st = sk_session_step(s, NULL);
    if (st == SK_OK) st = sk_session_finish(s, NULL);
    if (st != SK_OK && err) snprintf(err, err_cap, "%s", sk_last_error());
    sk_session_close(&s);
    sk_st_close(&f);
    free(ctx);
    sk_status st2 = sk_engine_close(&e);
    return st != SK_OK ? st : st2;
}

double sk_test_rel_l2(const float *a, const float *b, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(a[i]) || !isfinite(b[i])) return NAN;
        const double d = (double)a[i] - (double)b[i];
        num += d * d;
        den += (double)b[i] * b[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}
