/* fanout.c - the bounded one-writer many-readers ring of fanout.h. */
#include "runtime/core/fanout.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    void *data;
    size_t n;
    int key;
} fan_msg;

struct sk_fanout {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    fan_msg *ring;
    int cap;
    size_t max_bytes, bytes;
    uint64_t first; /* oldest sequence held; first > last when empty */
    uint64_t last;  /* newest sequence pushed (0: none yet) */
    int closed;
};

sk_status sk_fanout_create(int capacity, size_t max_bytes, sk_fanout **out)
{
    SK_CHECK(out && capacity >= 1, SK_E_INVALID_ARG, "fanout: capacity %d must be >= 1",
             capacity);
    *out = NULL;
    sk_fanout *f = calloc(1, sizeof *f);
    SK_CHECK(f, SK_E_OOM, "fanout: out of memory");
    f->ring = calloc((size_t)capacity, sizeof *f->ring);
    if (!f->ring) {
        free(f);
        return SK_ERR(SK_E_OOM, "fanout: out of memory for %d slots", capacity);
    }
    f->cap = capacity;
    f->max_bytes = max_bytes;
    f->first = 1;
    pthread_mutex_init(&f->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&f->cv, &ca);
    pthread_condattr_destroy(&ca);
    *out = f;
    return SK_OK;
}

void sk_fanout_free(sk_fanout **pf)
{
    if (!pf || !*pf) return;
    sk_fanout *f = *pf;
    for (int i = 0; i < f->cap; i++) free(f->ring[i].data);
    free(f->ring);
    pthread_mutex_destroy(&f->mu);
    pthread_cond_destroy(&f->cv);
    free(f);
    *pf = NULL;
}

static fan_msg *slot(sk_fanout *f, uint64_t seq) { return &f->ring[seq % (uint64_t)f->cap]; }

static void drop_oldest(sk_fanout *f)
{
    fan_msg *m = slot(f, f->first);
    f->bytes -= m->n;
    free(m->data);
    memset(m, 0, sizeof *m);
    f->first++;
}

sk_status sk_fanout_push(sk_fanout *f, const void *data, size_t n, int key)
{
    SK_CHECK(f && (data || !n), SK_E_INVALID_ARG, "fanout push: NULL argument");
    void *copy = malloc(n ? n : 1);
    SK_CHECK(copy, SK_E_OOM, "fanout push: out of memory for %zu bytes", n);
    if (n) memcpy(copy, data, n);
    pthread_mutex_lock(&f->mu);
    if (f->closed) {
        pthread_mutex_unlock(&f->mu);
        free(copy);
        return SK_ERR(SK_E_INVALID_ARG, "fanout push: the stream is closed");
    }
    if (f->last + 1 - f->first >= (uint64_t)f->cap) drop_oldest(f);
    /* the byte bound, but never drop the message being pushed */
    while (f->max_bytes && f->first <= f->last && f->bytes + n > f->max_bytes) drop_oldest(f);
    f->last++;
    fan_msg *m = slot(f, f->last);
    m->data = copy;
    m->n = n;
    m->key = key;
    f->bytes += n;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
    return SK_OK;
}

void sk_fanout_close(sk_fanout *f)
{
    if (!f) return;
    pthread_mutex_lock(&f->mu);
    f->closed = 1;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
}

int sk_fanout_closed(sk_fanout *f)
{
    pthread_mutex_lock(&f->mu);
    int c = f->closed;
    pthread_mutex_unlock(&f->mu);
    return c;
}

uint64_t sk_fanout_last_seq(sk_fanout *f)
{
    pthread_mutex_lock(&f->mu);
    uint64_t s = f->last;
    pthread_mutex_unlock(&f->mu);
    return s;
}

/* The newest key message held, or 0. Caller holds the lock. */
static uint64_t newest_key(sk_fanout *f)
{
    for (uint64_t s = f->last; s >= f->first && s > 0; s--)
        if (slot(f, s)->key) return s;
    return 0;
}

uint64_t sk_fanout_cursor(sk_fanout *f, sk_fanout_start where)
{
    pthread_mutex_lock(&f->mu);
    uint64_t c = f->last + 1;
    if (where == SK_FANOUT_FROM_OLDEST) c = f->first;
    else if (where == SK_FANOUT_FROM_LAST_KEY) {
        uint64_t k = newest_key(f);
        if (k) c = k;
    }
    pthread_mutex_unlock(&f->mu);
    return c;
}

sk_fanout_result sk_fanout_read(sk_fanout *f, uint64_t *cursor, double timeout_s, void **data,
                                size_t *n, int *key, uint64_t *seq, uint64_t *skipped)
{
    if (skipped) *skipped = 0;
    struct timespec dl;
    clock_gettime(CLOCK_MONOTONIC, &dl);
    if (timeout_s > 0) {
        long long ns = (long long)(timeout_s * 1e9) + dl.tv_nsec;
        dl.tv_sec += (time_t)(ns / 1000000000LL);
        dl.tv_nsec = (long)(ns % 1000000000LL);
    }
    pthread_mutex_lock(&f->mu);
    for (;;) {
        if (*cursor < f->first) { /* fell behind: jump to the newest key message */
            uint64_t k = newest_key(f);
            uint64_t to = k ? k : f->first;
            if (skipped) *skipped += to - *cursor;
            *cursor = to;
        }
        if (*cursor <= f->last) break;
        if (f->closed) {
            pthread_mutex_unlock(&f->mu);
            return SK_FANOUT_CLOSED;
        }
        if (timeout_s <= 0) {
            pthread_mutex_unlock(&f->mu);
            return SK_FANOUT_TIMEOUT;
        }
        int rc = pthread_cond_timedwait(&f->cv, &f->mu, &dl);
        if (rc == ETIMEDOUT && *cursor > f->last && !f->closed) {
            pthread_mutex_unlock(&f->mu);
            return SK_FANOUT_TIMEOUT;
        }
    }
    fan_msg *m = slot(f, *cursor);
    void *copy = malloc(m->n ? m->n : 1);
    if (!copy) {
        pthread_mutex_unlock(&f->mu);
        return SK_FANOUT_NOMEM;
    }
    if (m->n) memcpy(copy, m->data, m->n);
    *data = copy;
    *n = m->n;
    if (key) *key = m->key;
    if (seq) *seq = *cursor;
    (*cursor)++;
    pthread_mutex_unlock(&f->mu);
    return SK_FANOUT_GOT;
}
