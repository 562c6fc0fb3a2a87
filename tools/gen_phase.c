/* gen_phase.c - see gen_phase.h. */
#include "tools/gen_phase.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "runtime/core/log.h"
#include "runtime/core/progress.h"
#include "tools/gen_progress_json.h"

struct gen_phase {
    char phase[32], verb[32], done[64];
    int json;
    double t0, tick_s;
    pthread_t thread;
    int have_thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop;
};

static void json_escape(const char *s, char *out, size_t cap)
{
    size_t n = 0;
    for (; *s && n + 7 < cap; s++) {
        const unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') { out[n++] = '\\'; out[n++] = (char)c; }
        else if (c < 0x20) n += (size_t)snprintf(out + n, cap - n, "\\u%04x", c);
        else out[n++] = (char)c;
    }
    out[n] = 0;
}

static void *ticker(void *arg)
{
    gen_phase *ph = arg;
    pthread_mutex_lock(&ph->mu);
    for (int k = 1; !ph->stop; k++) {
        const double due = ph->t0 + k * ph->tick_s;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        const double wait = due - sk_progress_now();
        if (wait > 0) {
            const double t = (double)ts.tv_sec + ts.tv_nsec * 1e-9 + wait;
            ts.tv_sec = (time_t)t;
            ts.tv_nsec = (long)((t - (double)ts.tv_sec) * 1e9);
            while (!ph->stop && pthread_cond_timedwait(&ph->cv, &ph->mu, &ts) == 0) {
            }
        }
        if (ph->stop) break;
        const double el = sk_progress_now() - ph->t0;
        const long long rss = gen_rss_bytes();
        if (ph->json) {
            fprintf(stderr, "{\"phase\":\"%s\",\"state\":\"running\",\"elapsed_s\":%.3f,"
                    "\"rss_bytes\":%lld}\n", ph->phase, el, rss);
            fflush(stderr);
        } else {
            SK_LOGI("... %s: %.0f s, resident %.2f GB", ph->verb, el, (double)rss / 1e9);
        }
    }
    pthread_mutex_unlock(&ph->mu);
    return NULL;
}

gen_phase *gen_phase_begin(const char *phase, const char *verb, const char *done,
                           const char *what, int64_t bytes, int json)
{
    if (json) {
        char esc[1024];
        json_escape(what, esc, sizeof esc);
        fprintf(stderr, "{\"phase\":\"%s\",\"state\":\"start\",\"what\":\"%s\",\"bytes\":%lld}\n",
                phase, esc, (long long)bytes);
        fflush(stderr);
    } else {
        SK_LOGI("%s ...", what);
    }
    gen_phase *ph = calloc(1, sizeof *ph);
    if (!ph) return NULL;
    snprintf(ph->phase, sizeof ph->phase, "%s", phase);
    snprintf(ph->verb, sizeof ph->verb, "%s", verb);
    snprintf(ph->done, sizeof ph->done, "%s", done);
    ph->json = json;
    ph->t0 = sk_progress_now();
    const char *env = getenv("SK_PROGRESS_TICK_S");
    ph->tick_s = env && atof(env) > 0 ? atof(env) : 2.0;
    pthread_mutex_init(&ph->mu, NULL);
    pthread_cond_init(&ph->cv, NULL);
    /* the ticker only when someone reads it: JSON, or info lines */
    if (json || sk_log_get_level() >= SK_LOG_INFO)
        ph->have_thread = pthread_create(&ph->thread, NULL, ticker, ph) == 0;
    return ph;
}

void gen_phase_end(gen_phase *ph, int ok)
{
    if (!ph) return;
    pthread_mutex_lock(&ph->mu);
    ph->stop = 1;
    pthread_cond_broadcast(&ph->cv);
    pthread_mutex_unlock(&ph->mu);
    if (ph->have_thread) pthread_join(ph->thread, NULL);
    const double el = sk_progress_now() - ph->t0;
    const long long rss = gen_rss_bytes();
    if (ph->json) {
        fprintf(stderr, "{\"phase\":\"%s\",\"state\":\"done\",\"elapsed_s\":%.3f,\"rss_bytes\":%lld,"
                "\"ok\":%s}\n", ph->phase, el, rss, ok ? "true" : "false");
        fflush(stderr);
    } else if (ok) {
        SK_LOGI("%s in %.2f s (resident %.2f GB)", ph->done, el, (double)rss / 1e9);
    }
    pthread_mutex_destroy(&ph->mu);
    pthread_cond_destroy(&ph->cv);
    free(ph);
}
