/* device.h - a backend by device name ("cpu", "cuda", "cuda:N").
 *
 * Lives above runtime/core so that the ground (core, cpu, io) never calls
 * into cuda/: core defines the op table, cpu/ and cuda/ each implement it,
 * and this file is the one place that picks between them. */
#ifndef SK_ENGINE_DEVICE_H
#define SK_ENGINE_DEVICE_H

#include "runtime/core/backend.h"

/* by name: "cpu" or "cuda" / "cuda:N" */
sk_status sk_backend_create(const char *name, sk_dtype act_dtype, sk_backend **out);

#endif
