/* cpu_pool.h - the fast CPU backend's worker threads.
 *
 * sk_par_for(n, grain, fn, ctx) runs fn(ctx, i0, i1) over pieces of [0, n)
 * on the pool and the calling thread, and returns when every piece is done.
 * Pieces are claimed one at a time from a shared counter, and the caller
 * waits only for pieces a worker has claimed: a worker that the OS has not
 * scheduled yet costs nothing. (OpenMP's barrier waits for every thread of
 * the team; on a 2-core machine shared with other processes that made a
 * 2-thread run 8x slower than one thread.)
 *
 * When the workers ran under a tenth of the pieces on average (the OS gave
 * them no core), the next 256 jobs run on the caller alone without waking
 * anyone, then the pool tries again.
 *
 * Nested or concurrent calls (another thread already using the pool) run
 * serially on the caller. Threads: SK_CPU_THREADS (default: online cores).
 *
 * The pieces depend on n and grain only (at most 16 of them), never on the
 * threads, the back-off or another session using the pool, and a serial run
 * goes through the same pieces one by one: OpenBLAS's sgemm rounds a sub-product
 * differently from the whole, so a cut that followed the scheduling made the
 * same session give other bits from run to run (two sessions of one engine,
 * a busy machine).
 */
#ifndef SK_CPU_POOL_H
#define SK_CPU_POOL_H

#include <stdint.h>

typedef void (*sk_par_fn)(void *ctx, int64_t i0, int64_t i1);

/* pieces hold at least `grain` items (>= 1); n <= grain runs on the caller */
void sk_par_for(int64_t n, int64_t grain, sk_par_fn fn, void *ctx);

/* threads the pool uses, the caller included (>= 1) */
int sk_par_threads(void);

#endif
