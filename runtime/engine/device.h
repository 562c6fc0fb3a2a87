/* device.h - a backend by device name ("auto", "cpu", "cpu-ref", "cuda", "cuda:N").
 *
 * Lives above runtime/core so that the ground (core, cpu, io) never calls
 * into cuda/: core defines the op table, cpu/ and cuda/ each implement it,
 * and this file is the one place that picks between them.
 *
 *   auto     cuda when the build has it and a GPU is present, else cpu
 *   cpu      the fast CPU backend (OpenBLAS sgemm + a thread pool);
 *            SK_CPU_REF=1 in the environment makes it the reference instead
 *   cpu-ref  the CPU reference backend (plain loops, one thread: the oracle)
 */
#ifndef SK_ENGINE_DEVICE_H
#define SK_ENGINE_DEVICE_H

#include "runtime/core/backend.h"

sk_status sk_backend_create(const char *name, sk_dtype act_dtype, sk_backend **out);

/* what "auto" means on this machine now: "cuda" or "cpu" */
const char *sk_device_auto(void);
/* one line for logs: "cpu (OpenBLAS sgemm, 2 threads)" (static buffer) */
const char *sk_device_describe(const char *name);
/* SK_CPU_REF is set (and not "0"): "cpu" means the reference loops */
int sk_device_cpu_ref_forced(void);

#endif
