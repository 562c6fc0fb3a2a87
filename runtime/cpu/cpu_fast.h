/* cpu_fast.h - the fast CPU backend: the reference backend's op table with
 * the heavy ops replaced by threaded ones (runtime/cpu/cpu_pool.c) and a real sgemm
 * (OpenBLAS, when the build found it) for linears, convolutions and
 * attention. Every replaced op is checked against the reference loops by
 * tests/test_cpu_fast.c (relative error bound per op).
 *
 * Threads: SK_CPU_THREADS=N (default: the online cores; runtime/cpu/cpu_pool.c).
 */
#ifndef SK_CPU_FAST_H
#define SK_CPU_FAST_H

#include "runtime/core/backend.h"

/* the fast backend (name "cpu") */
sk_status sk_backend_cpu_fast_create(sk_backend **out);

/* worker threads the fast ops use (>= 1) */
int sk_cpu_fast_threads(void);

/* what the fast backend is built with, e.g. "OpenBLAS sgemm, 2 threads" */
const char *sk_cpu_fast_describe(void);

#endif
