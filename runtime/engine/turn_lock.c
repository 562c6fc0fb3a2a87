/* turn_lock.c - tickets over a mutex and a condition variable (turn_lock.h says why). */
#include "runtime/engine/turn_lock.h"

int sk_turn_lock_init(sk_turn_lock *t)
{
    t->next = t->serving = 0;
    int rc = pthread_mutex_init(&t->mu, NULL);
    if (rc) return rc;
    rc = pthread_cond_init(&t->cv, NULL);
    if (rc) pthread_mutex_destroy(&t->mu);
    return rc;
}

void sk_turn_lock_destroy(sk_turn_lock *t)
{
    pthread_cond_destroy(&t->cv);
    pthread_mutex_destroy(&t->mu);
}

void sk_turn_acquire(sk_turn_lock *t)
{
    pthread_mutex_lock(&t->mu);
    const uint64_t mine = t->next++;
    while (t->serving != mine) pthread_cond_wait(&t->cv, &t->mu);
    pthread_mutex_unlock(&t->mu);
}

void sk_turn_release(sk_turn_lock *t)
{
    pthread_mutex_lock(&t->mu);
    t->serving++;
    /* every waiter re-checks its ticket; a handful of sessions, so a broadcast is cheap */
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
}
