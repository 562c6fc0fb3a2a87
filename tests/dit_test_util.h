/* dit_test_util.h - shared helpers of the DiT / stream tests (header-only, so
 * it is compiled only into the tests that include it). */
#ifndef SK_DIT_TEST_UTIL_H
#define SK_DIT_TEST_UTIL_H

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/compare.h"
#include "dit/forward.h"
#include "dit/model.h"
#include "runtime/core/backend.h"
#include "runtime/io/safetensors.h"

#define DIT_FIX SK_SOURCE_DIR "/tests/fixtures/dit/"

/* relative L2 error <= 1e-4 (nmse <= 1e-8), and every element within
 * 1e-5 + 1e-2 |ref| (loose per element, tight overall). */
#define DIT_NMSE 1e-8
#define DIT_ATOL 1e-5
#define DIT_RTOL 1e-2

static inline void dt_ok(sk_status st, const char *what)
{
    cr_assert_eq(st, SK_OK, "%s: %s: %s", what, sk_status_name(st), sk_error_message());
}

/* Reads a whole f32 tensor of a fixture file (shape not checked). */
static inline float *dt_read(const sk_st_file *f, const char *name, size_t *n)
{
    const sk_st_tensor *t = sk_st_find(f, name);
    cr_assert(t, "fixture '%s' lacks tensor '%s'", f->path, name);
    float *p = NULL;
    dt_ok(sk_st_read_f32(f, name, 0, NULL, &p, NULL), name);
    size_t k = 1;
    for (int i = 0; i < t->ndim; i++) k *= (size_t)t->shape[i];
    if (n) *n = k;
    return p;
}

/* Compares a backend tensor against fixture tensor `name`; returns rel error. */
static inline double dt_check(const sk_st_file *f, const char *name, const sk_tensor *got_t,
                              const char *label)
{
    size_t n = 0;
    float *ref = dt_read(f, name, &n);
    cr_assert_eq((size_t)sk_tensor_numel(got_t), n, "%s: %lld values, fixture '%s' has %zu",
                 label, (long long)sk_tensor_numel(got_t), name, n);
    float *got = malloc(n * sizeof *got);
    dt_ok(sk_tensor_download_f32(got_t, got, n), "download");
    sk_compare_result r = sk_compare(got, ref, n, DIT_NMSE, DIT_ATOL, DIT_RTOL);
    char buf[512];
    sk_compare_format(&r, got, ref, buf, sizeof buf);
    cr_log_info("%-28s %s", label, buf);
    cr_expect(r.ok, "%s vs '%s': %s", label, name, buf);
    free(got);
    free(ref);
    return sqrt(r.nmse);
}

static inline sk_dit_model *dt_load_tiny(sk_backend *be)
{
    sk_dit_model *m = NULL;
    dt_ok(sk_dit_load(DIT_FIX "dit_tiny.safetensors", NULL, be, SK_DIT_WDTYPE_AS_STORED, &m),
          "load dit_tiny");
    return m;
}

#endif
