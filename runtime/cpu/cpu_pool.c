/* cpu_pool.c - a small pool of worker threads (see cpu_pool.h). */
#include "cpu_pool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "runtime/core/log.h"

#define SK_POOL_MAX 64
/* pieces a job is cut into (fewer when grain says so): a fixed number, so the
 * cut never depends on the threads (see cpu_pool.h) */
#define SK_POOL_PIECES 16

typedef struct {
    pthread_mutex_t mu;       /* guards the job fields below and gen for sleepers */
    pthread_cond_t wake;
    pthread_mutex_t submit;   /* one job at a time; a second caller runs serially */
    atomic_uint_least64_t gen;/* job number; workers sleep until it changes        */
    /* the current job (written under mu, before gen is bumped) */
    sk_par_fn fn;
    void *ctx;
    int64_t n, piece, npieces;
    /* claims: (job number << 32) | next piece; a claim counts only when the
     * job number is still the current one */
    atomic_uint_least64_t claim;
    atomic_int_least64_t done;
    int nthreads;
    /* back-off on a busy machine (caller's thread only, under `submit`):
     * share = moving average of the pieces the workers ran; when they ran
     * almost none (the OS gave them no core) the next jobs run on the caller
     * alone, without waking anyone, then the pool tries again */
    double share;
    int serial_left;
} sk_pool;

static sk_pool g_pool = {.mu = PTHREAD_MUTEX_INITIALIZER,
                         .wake = PTHREAD_COND_INITIALIZER,
                         .submit = PTHREAD_MUTEX_INITIALIZER,
                         .nthreads = 1,
                         .share = 1.0};
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static _Thread_local int t_in_pool; /* this thread is running a piece */

/* Claims and runs pieces of job `gen` until none is left; returns how many it ran. */
static int64_t run_pieces(sk_pool *p, uint64_t gen, sk_par_fn fn, void *ctx, int64_t n,
                          int64_t piece, int64_t npieces)
{
    int64_t ran = 0;
    for (;;) {
        uint64_t c = atomic_load(&p->claim);
        if ((c >> 32) != (gen & 0xffffffffu)) return ran;
        const int64_t i = (int64_t)(c & 0xffffffffu);
        if (i >= npieces) return ran;
        if (!atomic_compare_exchange_weak(&p->claim, &c, c + 1)) continue;
        const int64_t i0 = i * piece, i1 = i0 + piece < n ? i0 + piece : n;
        t_in_pool = 1;
        fn(ctx, i0, i1);
        t_in_pool = 0;
        atomic_fetch_add(&p->done, 1);
        ran++;
    }
}

static void *worker(void *arg)
{
    sk_pool *p = arg;
    uint64_t seen = 0;
    for (;;) {
        /* a short spin catches the next op of a busy forward without a sleep */
        for (int s = 0; s < 4000 && atomic_load(&p->gen) == seen; s++) sched_yield();
        pthread_mutex_lock(&p->mu);
        while (atomic_load(&p->gen) == seen) pthread_cond_wait(&p->wake, &p->mu);
        seen = atomic_load(&p->gen);
        sk_par_fn fn = p->fn;
        void *ctx = p->ctx;
        const int64_t n = p->n, piece = p->piece, npieces = p->npieces;
        pthread_mutex_unlock(&p->mu);
        run_pieces(p, seen, fn, ctx, n, piece, npieces);
    }
    return NULL;
}

static void pool_init(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    const char *env = getenv("SK_CPU_THREADS");
    if (env && *env) {
        char *end = NULL;
        long v = strtol(env, &end, 10);
        if (end && *end == 0 && v >= 1 && v <= SK_POOL_MAX) n = v;
        else sk_log(SK_LOG_WARN, "SK_CPU_THREADS='%s' is not a thread count (1..%d); using %ld",
                    env, SK_POOL_MAX, n);
    }
    if (n < 1) n = 1;
    if (n > SK_POOL_MAX) n = SK_POOL_MAX;
    int made = 1;
    for (long i = 1; i < n; i++) {
        pthread_t th;
        pthread_attr_t at;
        pthread_attr_init(&at);
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&th, &at, worker, &g_pool) == 0) made++;
        pthread_attr_destroy(&at);
    }
    g_pool.nthreads = made;
}

int sk_par_threads(void)
{
    pthread_once(&g_once, pool_init);
    return g_pool.nthreads;
}

/* the same pieces, one after the other, on the caller */
static void serial_pieces(int64_t n, int64_t piece, sk_par_fn fn, void *ctx)
{
    for (int64_t i0 = 0; i0 < n; i0 += piece) fn(ctx, i0, i0 + piece < n ? i0 + piece : n);
}

void sk_par_for(int64_t n, int64_t grain, sk_par_fn fn, void *ctx)
{
    if (n <= 0) return;
    if (grain < 1) grain = 1;
    /* the cut depends on n and grain only: SK_POOL_PIECES pieces (a late or
     * preempted thread leaves its share to the others), none smaller than grain */
    int64_t piece = (n + SK_POOL_PIECES - 1) / SK_POOL_PIECES;
    if (piece < grain) piece = grain;
    const int64_t npieces = (n + piece - 1) / piece;
    const int T = sk_par_threads();
    if (T == 1 || npieces == 1 || t_in_pool || pthread_mutex_trylock(&g_pool.submit) != 0) {
        serial_pieces(n, piece, fn, ctx);
        return;
    }
    sk_pool *p = &g_pool;
    if (p->serial_left > 0) { /* backing off: the workers got no core lately */
        p->serial_left--;
        pthread_mutex_unlock(&p->submit);
        serial_pieces(n, piece, fn, ctx);
        return;
    }
    pthread_mutex_lock(&p->mu);
    const uint64_t gen = atomic_load(&p->gen) + 1;
    p->fn = fn;
    p->ctx = ctx;
    p->n = n;
    p->piece = piece;
    p->npieces = npieces;
    atomic_store(&p->done, 0);
    atomic_store(&p->claim, (gen & 0xffffffffu) << 32);
    atomic_store(&p->gen, gen);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    const int64_t mine = run_pieces(p, gen, fn, ctx, n, piece, npieces);
    /* only pieces a worker claimed are left: wait for them */
    while (atomic_load(&p->done) < npieces) sched_yield();
    p->share = 0.9 * p->share + 0.1 * (double)(npieces - mine) / (double)npieces;
    if (p->share < 0.1) { /* workers ran under a tenth: 256 jobs alone, then try again */
        p->serial_left = 256;
        p->share = 0.5;
    }
    pthread_mutex_unlock(&p->submit);
}
