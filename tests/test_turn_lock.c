/* test_turn_lock.c - the device's chunk turns go to sessions in arrival order
 * (runtime/engine/turn_lock.h): waiters are served first come first served, and
 * threads that all want the lock get even shares, which a plain mutex does not give. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <sched.h>
#include <time.h>

#include "runtime/engine/turn_lock.h"

static sk_turn_lock g_lock;
static int g_order[8], g_n_order;

static void *take_once(void *arg)
{
    sk_turn_acquire(&g_lock);
    g_order[g_n_order++] = (int)(intptr_t)arg;
    sk_turn_release(&g_lock);
    return NULL;
}

static uint64_t queued(void)
{
    pthread_mutex_lock(&g_lock.mu);
    uint64_t n = g_lock.next;
    pthread_mutex_unlock(&g_lock.mu);
    return n;
}

Test(turn_lock, waiters_are_served_in_arrival_order)
{
    cr_assert_eq(sk_turn_lock_init(&g_lock), 0);
    g_n_order = 0;
    sk_turn_acquire(&g_lock); /* held while three waiters queue up, one after another */
    pthread_t th[3];
    for (int i = 0; i < 3; i++) {
        const uint64_t before = queued();
        cr_assert_eq(pthread_create(&th[i], NULL, take_once, (void *)(intptr_t)i), 0);
        while (queued() == before) sched_yield(); /* thread i holds its ticket */
    }
    sk_turn_release(&g_lock);
    for (int i = 0; i < 3; i++) pthread_join(th[i], NULL);
    cr_assert_eq(g_n_order, 3);
    for (int i = 0; i < 3; i++)
        cr_expect_eq(g_order[i], i, "turn %d went to waiter %d: not arrival order", i, g_order[i]);
    sk_turn_lock_destroy(&g_lock);
}

#define NT 4
#define TURNS 2000
static int g_inside, g_overlap, g_total, g_count[NT];
static pthread_barrier_t g_bar;

static void spin_us(int us)
{
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    do clock_gettime(CLOCK_MONOTONIC, &b);
    while ((b.tv_sec - a.tv_sec) * 1000000L + (b.tv_nsec - a.tv_nsec) / 1000 < us);
}

static void *busy_session(void *arg)
{
    const int me = (int)(intptr_t)arg;
    pthread_barrier_wait(&g_bar);
    for (;;) {
        sk_turn_acquire(&g_lock);
        const int done = g_total >= TURNS;
        if (!done) {
            if (__atomic_exchange_n(&g_inside, 1, __ATOMIC_ACQ_REL)) g_overlap = 1;
            spin_us(20); /* a "chunk" */
            g_count[me]++;
            g_total++;
            __atomic_store_n(&g_inside, 0, __ATOMIC_RELEASE);
        }
        sk_turn_release(&g_lock); /* and straight back in line, as a late session does */
        if (done) return NULL;
    }
}

Test(turn_lock, sessions_that_are_all_behind_share_evenly)
{
    cr_assert_eq(sk_turn_lock_init(&g_lock), 0);
    pthread_barrier_init(&g_bar, NULL, NT);
    pthread_t th[NT];
    for (int i = 0; i < NT; i++)
        cr_assert_eq(pthread_create(&th[i], NULL, busy_session, (void *)(intptr_t)i), 0);
    for (int i = 0; i < NT; i++) pthread_join(th[i], NULL);
    cr_assert_not(g_overlap, "two holders at once");
    cr_assert_eq(g_total, TURNS);
    /* a fair share is 25%; a thread only misses rounds while the OS has it descheduled */
    for (int i = 0; i < NT; i++)
        cr_expect_geq(g_count[i], TURNS * 15 / 100, "thread %d got %d of %d turns (%d %d %d %d)",
                      i, g_count[i], TURNS, g_count[0], g_count[1], g_count[2], g_count[3]);
    pthread_barrier_destroy(&g_bar);
    sk_turn_lock_destroy(&g_lock);
}
