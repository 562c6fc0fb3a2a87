/* fp8_run.h - one short run of the tiny DiT fixture through the public API in a
 * chosen dtype (the FP8 tests and GPU checks compare such runs). */
#ifndef SK_TEST_FP8_RUN_H
#define SK_TEST_FP8_RUN_H

#include <stddef.h>
#include <stdint.h>

#include "runtime/sinkstream.h"

#define SK_FP8_RUN_FRAMES 9   /* three chunks of 3: the sink cache fills and rolls */
#define SK_FP8_RUN_VALS ((size_t)SK_FP8_RUN_FRAMES * 4 * 8 * 8)

/* tests/fixtures/dit/dit_tiny (sink policy, window 6, seed 5, 8x8 latents) on device
 * ("cpu", "cpu-ref", "cuda") with act_dtype ("auto", "f32", "bf16") and dit_dtype
 * ("as-stored", "fp8"): the latents [9, 4, 8, 8] into lat. weights_bytes (may be NULL)
 * gets the engine's DiT weight bytes. On failure returns the status and writes the
 * message into err. */
sk_status sk_test_fp8_run(const char *src_dir, const char *device, const char *act_dtype,
                          const char *dit_dtype, float *lat, int64_t *weights_bytes, char *err,
                          size_t err_cap);

/* relative L2 error |a - b| / |b| over n values (NaN or Inf anywhere gives NaN) */
double sk_test_rel_l2(const float *a, const float *b, size_t n);

#endif
