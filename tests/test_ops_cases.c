/* test_ops_cases.c - the shared op case table (tests/common/op_cases.h) on
 * the CPU backend: every op of the table has cases, every case runs, gives
 * finite deterministic seed-dependent output, and an ideal low-precision
 * backend (the oracle's output rounded to the case dtype) passes the case's
 * bounds, so the bounds the CUDA check uses are attainable. */
#include "tests/common/op_cases.h"
#include "tests/common/test_util.h"

static sk_backend *be;
static void setup(void) { TT_OK(sk_backend_cpu_create(&be)); }
static void teardown(void)
{
    cr_expect_eq(be->bytes_live, 0, "leaked %zu bytes of backend memory", be->bytes_live);
    sk_backend_free_(&be);
}
TestSuite(op_cases, .init = setup, .fini = teardown);

/* every compute entry of sk_backend_ops (backend.h) */
static const char *const k_ops[] = {
    "convert",         "linear",        "layernorm",       "rmsnorm",          "modulate",
    "gated_add",       "axpby",         "mul",             "act",              "attention",
    "rope3d",          "conv2d",        "pixel_shuffle",   "pixel_unshuffle",  "upsample_nearest",
    "concat_channels", "patchify",      "unpatchify",      "embedding",        "noise",
    "rmsnorm_rope3d",
};

Test(op_cases, every_op_has_cases_and_names_are_unique)
{
    const int n = sk_op_case_count();
    cr_assert_gt(n, 40);
    for (size_t o = 0; o < sizeof k_ops / sizeof k_ops[0]; o++) {
        int found = 0, lowp = 0;
        for (int i = 0; i < n; i++) {
            const sk_op_case *c = sk_op_case_get(i);
            if (strcmp(c->op, k_ops[o]) == 0) {
                found++;
                lowp += c->dtype != SK_DTYPE_F32;
            }
        }
        cr_assert_gt(found, 0, "op %s has no case", k_ops[o]);
        cr_assert_gt(lowp, 0, "op %s has no low-precision case", k_ops[o]);
    }
    for (int i = 0; i < n; i++) {
        const sk_op_case *c = sk_op_case_get(i);
        cr_assert_eq(sk_op_case_find(c->name), c, "case name %s is not unique", c->name);
        int known = 0;
        for (size_t o = 0; o < sizeof k_ops / sizeof k_ops[0]; o++) known |= !strcmp(c->op, k_ops[o]);
        cr_assert(known, "case %s names unknown op %s", c->name, c->op);
        sk_op_bounds b = sk_op_case_bounds(c);
        if (c->cls == SK_OPC_EXACT) cr_assert(b.nmse == 0 && b.atol == 0 && b.rtol == 0);
        else cr_assert(b.nmse > 0 && b.rtol > 0, "case %s has no tolerance", c->name);
    }
    cr_assert_null(sk_op_case_get(n));
    cr_assert_null(sk_op_case_get(-1));
    cr_assert_null(sk_op_case_find("no_such_case"));
}

Test(op_cases, runs_on_follows_the_activation_dtype)
{
    sk_backend bf = *be;
    bf.act_dtype = SK_DTYPE_BF16;
    int f32_on_bf = 0, bf_on_bf = 0;
    for (int i = 0; i < sk_op_case_count(); i++) {
        const sk_op_case *c = sk_op_case_get(i);
        cr_assert(sk_op_case_runs_on(c, be), "the f32 oracle must run %s", c->name);
        if (strcmp(c->op, "convert") && strcmp(c->op, "noise")) {
            f32_on_bf += c->dtype == SK_DTYPE_F32 && sk_op_case_runs_on(c, &bf);
            bf_on_bf += c->dtype == SK_DTYPE_BF16 && sk_op_case_runs_on(c, &bf);
        }
    }
    cr_assert_eq(f32_on_bf, 0);
    cr_assert_gt(bf_on_bf, 10);
}

Test(op_cases, all_cases_run_deterministic_finite_and_seed_dependent)
{
    for (int i = 0; i < sk_op_case_count(); i++) {
        const sk_op_case *c = sk_op_case_get(i);
        float *a, *b, *s;
        size_t na, nb, ns;
        TT_OK(sk_op_case_run(c, be, 1, &a, &na));
        TT_OK(sk_op_case_run(c, be, 1, &b, &nb));
        TT_OK(sk_op_case_run(c, be, 2, &s, &ns));
        cr_assert(na > 0 && na == nb && na == ns, "%s: sizes %zu %zu %zu", c->name, na, nb, ns);
        cr_assert(memcmp(a, b, na * sizeof(float)) == 0, "%s is not deterministic", c->name);
        size_t nonfinite = 0, differ = 0, nonzero = 0;
        for (size_t j = 0; j < na; j++) {
            nonfinite += !isfinite(a[j]);
            differ += a[j] != s[j];
            nonzero += a[j] != 0;
        }
        /* only the f16 overflow case may produce Inf (never NaN) */
        if (strcmp(c->name, "convert_f32_to_f16") == 0) {
            for (size_t j = 0; j < na; j++) cr_assert(!isnan(a[j]));
        } else {
            cr_assert_eq(nonfinite, 0, "%s: %zu non-finite outputs", c->name, nonfinite);
        }
        cr_assert_gt(differ, 0, "%s: seeds 1 and 2 give the same output", c->name);
        cr_assert_gt(nonzero, na / 4, "%s: mostly zero output (%zu of %zu nonzero)", c->name,
                     nonzero, na);
        sk_op_bounds bd = sk_op_case_bounds(c);
        sk_compare_result r = sk_compare(s, a, na, bd.nmse, bd.atol, bd.rtol);
        /* the bounds must tell this output from the one of other inputs (a case
         * whose bounds admit anything cannot catch a bug) */
        cr_assert(!r.ok, "%s: the output for seed 2 passes the bounds against seed 1", c->name);
        free(a), free(b), free(s);
    }
}

/* An ideal backend storing outputs in the case dtype (the oracle's output
 * rounded to it) must pass the case's bounds with room to spare. */
Test(op_cases, bounds_admit_an_ideal_low_precision_backend)
{
    for (int i = 0; i < sk_op_case_count(); i++) {
        const sk_op_case *c = sk_op_case_get(i);
        if (c->dtype == SK_DTYPE_F32 || !strcmp(c->op, "convert")) continue;
        float *ref, *got;
        size_t n;
        TT_OK(sk_op_case_run(c, be, 3, &ref, &n));
        got = malloc(n * sizeof(float));
        memcpy(got, ref, n * sizeof(float));
        sk_round_through(got, n, c->dtype);
        sk_op_bounds bd = sk_op_case_bounds(c);
        sk_compare_result r = sk_compare(got, ref, n, bd.nmse, bd.atol, bd.rtol);
        char buf[512];
        sk_compare_format(&r, got, ref, buf, sizeof buf);
        cr_assert(r.ok && r.pct_of_bound < 60, "%s: %s", c->name, buf);
        free(ref), free(got);
    }
}

/* The bounds are tight enough to catch a real bug: perturbing one output
 * element by 1% (f32) or 10% (bf16/f16) of the output's RMS fails every case. */
Test(op_cases, bounds_reject_a_wrong_element)
{
    for (int i = 0; i < sk_op_case_count(); i++) {
        const sk_op_case *c = sk_op_case_get(i);
        float *ref;
        size_t n;
        TT_OK(sk_op_case_run(c, be, 4, &ref, &n));
        double rms = 0;
        for (size_t j = 0; j < n; j++) rms += isfinite(ref[j]) ? (double)ref[j] * ref[j] : 0;
        rms = sqrt(rms / (double)n);
        float *bad = malloc(n * sizeof(float));
        memcpy(bad, ref, n * sizeof(float));
        size_t k = n / 2;
        while (!isfinite(bad[k])) k = (k + 1) % n;
        const double frac = c->dtype == SK_DTYPE_F32 ? 0.01 : 0.10;
        bad[k] += (float)(frac * rms + 1e-3);
        sk_op_bounds bd = sk_op_case_bounds(c);
        cr_assert(!sk_compare(bad, ref, n, bd.nmse, bd.atol, bd.rtol).ok,
                  "%s: an error of %.0f%% of the RMS at [%zu] passes its bounds", c->name,
                  frac * 100, k);
        free(ref), free(bad);
    }
}
