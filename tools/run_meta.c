/* run_meta.c - key/value metadata of a run (see run_meta.h). */
#include "tools/run_meta.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int sk_run_meta_add(sk_run_meta *m, const char *key, const char *value)
{
    if (!value) return 0;
    if (m->n >= SK_RUN_META_MAX) return -1;
    char *v = strdup(value);
    if (!v) return -1;
    m->owned[m->n] = v;
    m->kv[2 * m->n] = key;
    m->kv[2 * m->n + 1] = v;
    m->n++;
    m->kv[2 * m->n] = NULL;
    return 0;
}

int sk_run_meta_addf(sk_run_meta *m, const char *key, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return sk_run_meta_add(m, key, buf);
}

void sk_run_meta_free(sk_run_meta *m)
{
    for (int i = 0; i < m->n; i++) free(m->owned[i]);
    memset(m, 0, sizeof *m);
}

#ifndef SK_VERSION
#define SK_VERSION "dev"
#endif

int sk_run_meta_generate(sk_run_meta *m, const gen_prompt_list *pl, int64_t seed,
                         const char *model, const char *dit, const int *steps, int nsteps, double shift,
                         const char *kv_policy, int64_t kv_sink, int64_t kv_window)
{
    /* every prompt of the schedule, "[frame N] text" after the first */
    size_t cap = 1;
    for (int i = 0; i < pl->n; i++)
        cap += 48 + strlen(pl->v[i].text ? pl->v[i].text : pl->v[i].key ? pl->v[i].key : "");
    char *all = malloc(cap), *w = all;
    if (!all) return -1;
    *w = 0;
    for (int i = 0; i < pl->n; i++) {
        const gen_prompt *p = &pl->v[i];
        const char *t = p->text ? p->text : p->key ? p->key : "";
        if (i == 0 && p->frame == 0) w += sprintf(w, "%s%s", p->text ? "" : "embeds:", t);
        else w += sprintf(w, "%s[latent_frame %lld] %s%s", i ? " | " : "", (long long)p->frame,
                          p->text ? "" : "embeds:", t);
    }
    char st[256] = "";
    for (int i = 0, n = 0; i < nsteps && n < (int)sizeof st - 16; i++)
        n += snprintf(st + n, sizeof st - (size_t)n, "%s%d", i ? "," : "", steps[i]);
    int rc = sk_run_meta_add(m, "comment", "made with sinkstream " SK_VERSION
                             " (causal Wan DiT, streaming)");
    rc |= sk_run_meta_add(m, "prompt", all);
    rc |= sk_run_meta_addf(m, "seed", "%lld", (long long)seed);
    rc |= sk_run_meta_add(m, "model", model ? model : dit);
    rc |= sk_run_meta_add(m, "steps", st);
    rc |= sk_run_meta_addf(m, "sampler", "flow matching, shift %g, timesteps %s", shift, st);
    rc |= sk_run_meta_addf(m, "kv_policy", "%s (sink %lld, window %lld latent frames)", kv_policy,
                           (long long)kv_sink, (long long)kv_window);
    rc |= sk_run_meta_add(m, "encoder_software", "sinkstream " SK_VERSION);
    free(all);
    return rc;
}

int64_t sk_random_seed(void)
{
    uint32_t v = 0;
    FILE *f = fopen("/dev/urandom", "rb");
    if (!f || fread(&v, sizeof v, 1, f) != 1) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        v = (uint32_t)(ts.tv_nsec ^ (ts.tv_sec << 20) ^ ((int64_t)getpid() << 8));
    }
    if (f) fclose(f);
    return (int64_t)v;
}
