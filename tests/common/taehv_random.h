/* taehv_random.h - writes a random TAEHV checkpoint with the real key names and
 * the layer structure of spec A8 at any widths (tests and GPU checks). */
#ifndef SK_TEST_TAEHV_RANDOM_H
#define SK_TEST_TAEHV_RANDOM_H

#include <stdint.h>

#include "runtime/core/dtype.h"
#include "runtime/core/status.h"

/* z latent channels, p patch (1 or 2), nf decoder widths, enc encoder width,
 * weights normal(0, gain/sqrt(fan_in)) stored as dtype. *n_tensors (may be
 * NULL) receives the tensor count (128 for a full model). */
sk_status sk_test_write_taehv_random(const char *path, int z, int p, const int nf[4], int enc,
                                     uint64_t seed, sk_dtype dtype, int *n_tensors);

#endif
