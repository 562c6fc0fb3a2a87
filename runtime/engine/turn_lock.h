/* turn_lock.h - a first-come-first-served lock for the device's chunk turns.
 *
 * Sessions that share one GPU take turns chunk by chunk (engine serialize_steps).
 * A pthread mutex is not fair: the session that just released it usually takes it
 * again before a woken waiter runs, so with more sessions than the GPU can keep on
 * pace one ran at full speed while others starved (measured: 29-33 fps against
 * 0.3-1.8 fps, docs/SERVER.md). Tickets hand the turns out in arrival order, so
 * every waiting session gets one chunk per round and all fall behind evenly. */
#ifndef SK_TURN_LOCK_H
#define SK_TURN_LOCK_H

#include <pthread.h>
#include <stdint.h>

typedef struct sk_turn_lock {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t next;    /* the ticket the next arrival takes */
    uint64_t serving; /* the ticket whose holder may run */
} sk_turn_lock;

/* 0 on success, else an errno value from pthread */
int sk_turn_lock_init(sk_turn_lock *t);
void sk_turn_lock_destroy(sk_turn_lock *t);
/* blocks until every earlier arrival has had its turn */
void sk_turn_acquire(sk_turn_lock *t);
void sk_turn_release(sk_turn_lock *t);

#endif
