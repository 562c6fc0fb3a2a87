/* api_threads.c - the API's threading rules exercised without Criterion, so that
 * it also runs under ThreadSanitizer (Criterion's fork arena does not start under
 * TSan). Public API only, tiny fixtures, CPU. Exits non-zero on any mismatch.
 *   build/api_threads SOURCE_DIR          (ctest: test_api_threads; docs/API.md: TSan)
 * Checks: two sessions of one engine stepped on two threads equal their single
 * runs bit for bit; a prompt queued from a second thread while the session
 * steps applies at its frame; status read from a third thread while stepping;
 * stop from another thread ends an unbounded session at a boundary. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/sinkstream.h"

#define TDIM 64
#define ROWS 4
#define FRAME_VALS (4 * 8 * 8)

static int g_fail;
#define CHECK(c, ...) do { if (!(c)) { fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
    fprintf(stderr, __VA_ARGS__); fprintf(stderr, " (%s)\n", sk_last_error()); g_fail = 1; } } while (0)

/* deterministic prompt embeddings (the model only needs [rows, text_dim]) */
static void prompt(float *ctx, int which)
{
    for (int i = 0; i < ROWS * TDIM; i++) ctx[i] = (float)(((i + 1) * (which ? 7 : 13)) % 17) / 8.0f - 1.0f;
}

typedef struct {
    sk_engine *e;
    const char *policy;
    int64_t window, frames, switch_at; /* switch_at < 0: none */
    uint64_t seed;
    int first;
    float *lat;
    sk_session *s;
    volatile int go, queued;
} job;

static void on_lat(void *user, const float *l, int64_t n, int64_t c, int64_t h, int64_t w, int64_t f0)
{
    job *j = user;
    memcpy(j->lat + f0 * c * h * w, l, (size_t)(n * c * h * w) * sizeof *l);
}

static sk_session *make(job *j)
{
    sk_session_params sp = sk_session_params_default();
    sp.frames = j->frames, sp.latent_h = sp.latent_w = 8, sp.kv_policy = j->policy;
    sp.kv_window = j->window, sp.seed = j->seed, sp.on_latents = on_lat, sp.user = j;
    if (j->frames == 0) sp.rope = "relative";
    sk_session *s = NULL;
    CHECK(sk_session_create(j->e, &sp, &s) == SK_OK, "create");
    float ctx[ROWS * TDIM];
    prompt(ctx, j->first);
    CHECK(sk_session_queue_prompt_embeds(s, ctx, ROWS, TDIM, 0, SK_SWITCH_DEFAULT, "p0") == SK_OK,
          "queue");
    return s;
}

static void *run(void *arg)
{
    job *j = arg;
    sk_session *s = make(j);
    if (j->switch_at >= 0) {
        float ctx[ROWS * TDIM];
        prompt(ctx, !j->first);
        CHECK(sk_session_queue_prompt_embeds(s, ctx, ROWS, TDIM, j->switch_at, 0, "p1") == SK_OK,
              "queue switch");
    }
    while (s && !sk_session_done(s)) CHECK(sk_session_step(s, NULL) == SK_OK, "step");
    sk_session_close(&s);
    return NULL;
}

static void *queue_later(void *arg)
{
    job *j = arg;
    while (!__atomic_load_n(&j->go, __ATOMIC_ACQUIRE)) usleep(100);
    float ctx[ROWS * TDIM];
    prompt(ctx, !j->first);
    CHECK(sk_session_queue_prompt_embeds(j->s, ctx, ROWS, TDIM, j->switch_at, 0, "p1") == SK_OK,
          "queue from a thread");
    __atomic_store_n(&j->queued, 1, __ATOMIC_RELEASE);
    return NULL;
}

static void *watch(void *arg)
{
    job *j = arg;
    sk_session_status st;
    for (int i = 0; i < 200 && !__atomic_load_n(&j->queued, __ATOMIC_ACQUIRE); i++) {
        CHECK(sk_session_get_status(j->s, &st) == SK_OK, "status from a thread");
        usleep(200);
    }
    return NULL;
}

static void *stop_later(void *arg)
{
    usleep(3000);
    sk_session_stop(arg);
    return NULL;
}

int main(int argc, char **argv)
{
    const char *src = argc > 1 ? argv[1] : ".";
    char dit[512], cfg[512];
    snprintf(dit, sizeof dit, "%s/tests/fixtures/dit/dit_tiny.safetensors", src);
    snprintf(cfg, sizeof cfg, "%s/tests/fixtures/dit/config.json", src);
    sk_engine_params ep = sk_engine_params_default();
    ep.dit = dit, ep.dit_config = cfg;
    sk_engine *e = NULL;
    if (sk_engine_open(&ep, &e) != SK_OK) {
        fprintf(stderr, "engine: %s\n", sk_last_error());
        return 1;
    }
    /* 1. two sessions on two threads == their single runs */
    job a = {e, "sink", 9, 15, 9, 11, 0}, b = {e, "fifo", 6, 12, -1, 22, 1};
    job a1 = a, b1 = b;
    a.lat = calloc(15 * FRAME_VALS, 4), a1.lat = calloc(15 * FRAME_VALS, 4);
    b.lat = calloc(12 * FRAME_VALS, 4), b1.lat = calloc(12 * FRAME_VALS, 4);
    run(&a1);
    run(&b1);
    pthread_t ta, tb;
    pthread_create(&ta, NULL, run, &a);
    pthread_create(&tb, NULL, run, &b);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    CHECK(!memcmp(a.lat, a1.lat, 15 * FRAME_VALS * 4), "session a on a thread != single run");
    CHECK(!memcmp(b.lat, b1.lat, 12 * FRAME_VALS * 4), "session b on a thread != single run");
    /* 2. a prompt queued from a thread while stepping, status read from a third */
    job q = a1;
    q.lat = calloc(15 * FRAME_VALS, 4);
    q.s = make(&q);
    pthread_t tq, tw;
    pthread_create(&tq, NULL, queue_later, &q);
    pthread_create(&tw, NULL, watch, &q);
    for (int k = 0; q.s && !sk_session_done(q.s); k++) {
        if (k == 1) __atomic_store_n(&q.go, 1, __ATOMIC_RELEASE);
        if (k == 3) pthread_join(tq, NULL); /* queued before the boundary at frame 9 */
        CHECK(sk_session_step(q.s, NULL) == SK_OK, "step %d", k);
    }
    pthread_join(tw, NULL);
    CHECK(!memcmp(q.lat, a1.lat, 15 * FRAME_VALS * 4), "queued from a thread != up front");
    sk_session_close(&q.s);
    /* 3. stop from another thread */
    job u = {e, "fifo", 6, 0, -1, 3, 0};
    u.lat = NULL;
    sk_session_params sp = sk_session_params_default();
    sp.frames = 0, sp.latent_h = sp.latent_w = 8, sp.kv_policy = "fifo", sp.kv_window = 6;
    sp.rope = "relative";
    sk_session *s = NULL;
    CHECK(sk_session_create(e, &sp, &s) == SK_OK, "create unbounded");
    float ctx[ROWS * TDIM];
    prompt(ctx, 0);
    CHECK(sk_session_queue_prompt_embeds(s, ctx, ROWS, TDIM, SK_FRAME_NEXT_CHUNK, 0, NULL) == SK_OK,
          "queue");
    pthread_t ts;
    pthread_create(&ts, NULL, stop_later, s);
    for (int k = 0; s && !sk_session_done(s) && k < 1000000; k++)
        CHECK(sk_session_step(s, NULL) == SK_OK, "step");
    pthread_join(ts, NULL);
    CHECK(sk_session_done(s), "stopped");
    sk_session_close(&s);
    (void)u;
    free(a.lat), free(a1.lat), free(b.lat), free(b1.lat), free(q.lat);
    CHECK(sk_engine_close(&e) == SK_OK, "engine close");
    if (!g_fail) printf("api_threads: ok\n");
    return g_fail;
}
