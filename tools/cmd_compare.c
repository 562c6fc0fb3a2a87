/* cmd_compare.c - `sinkstream compare A B`: how far two safetensors files
 * (or one tensor in each) are apart, in the measure the fixtures use:
 *     rel = max|a - b| / max|b|      (b is the reference)
 * A NaN or Inf on either side fails whatever the tolerance. Exit 0 when every
 * compared tensor is within --tol, 1 when one is not or on an error. Users
 * check a run against a PyTorch reference with it (README), so the message
 * says which tensor, where the largest difference is and by how much. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/io/safetensors.h"
#include "runtime/core/status.h"
#include "tools/cli_opts.h"
#include "tools/commands.h"

typedef struct {
    const char *tensor, *ref_tensor;
    double tol;
} compare_opts;

/* Compares one pair; returns 0 within tol, 1 outside, -1 on error (printed). */
static int compare_pair(const sk_st_file *a, const char *na, const sk_st_file *b, const char *nb,
                        double tol)
{
    const sk_st_tensor *ta = sk_st_find(a, na), *tb = sk_st_find(b, nb);
    if (!ta || !tb) {
        fprintf(stderr, "sinkstream compare: tensor '%s' not found in '%s'\n", !ta ? na : nb,
                !ta ? a->path : b->path);
        return -1;
    }
    int same = ta->ndim == tb->ndim;
    for (int i = 0; same && i < ta->ndim; i++) same = ta->shape[i] == tb->shape[i];
    if (!same) {
        fprintf(stderr, "sinkstream compare: '%s' in '%s' and '%s' in '%s' differ in shape\n", na,
                a->path, nb, b->path);
        return -1;
    }
    float *x = NULL, *y = NULL;
    sk_status st = sk_st_read_f32(a, na, 0, NULL, &x, NULL);
    if (st == SK_OK) st = sk_st_read_f32(b, nb, 0, NULL, &y, NULL);
    if (st != SK_OK) {
        fprintf(stderr, "sinkstream compare: %s\n", sk_error_message());
        free(x);
        free(y);
        return -1;
    }
    int64_t n = 1, worst = 0, nonfinite = -1;
    for (int i = 0; i < ta->ndim; i++) n *= ta->shape[i];
    double max_diff = 0.0, max_ref = 0.0;
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(x[i]) || !isfinite(y[i])) {
            if (nonfinite < 0) nonfinite = i;
            continue;
        }
        double d = fabs((double)x[i] - (double)y[i]);
        if (d > max_diff) { max_diff = d; worst = i; }
        if (fabs((double)y[i]) > max_ref) max_ref = fabs((double)y[i]);
    }
    double rel = max_ref > 0 ? max_diff / max_ref : (max_diff > 0 ? INFINITY : 0.0);
    int bad = nonfinite >= 0 || rel > tol;
    if (nonfinite >= 0)
        printf("%-4s %-32s NaN/Inf at element %lld (%g vs %g)\n", "FAIL", na, (long long)nonfinite,
               (double)x[nonfinite], (double)y[nonfinite]);
    else
        printf("%-4s %-32s rel %.3e  max|diff| %.3e at element %lld (%g vs %g)  max|ref| %.3e\n",
               bad ? "FAIL" : "ok", na, rel, max_diff, (long long)worst, n ? (double)x[worst] : 0.0,
               n ? (double)y[worst] : 0.0, max_ref);
    free(x);
    free(y);
    return bad;
}

int sk_cmd_compare(int argc, char **argv)
{
    compare_opts o = {.tol = 1e-4};
    const sk_opt opts[] = {
        {"tensor", 't', SK_OPT_STRING, &o.tensor, .def_text = "every float tensor in both files",
         .help = "compare only this tensor", .metavar = "NAME"},
        {"ref-tensor", 0, SK_OPT_STRING, &o.ref_tensor, .def_text = "same as --tensor",
         .help = "its name in REF when it differs", .metavar = "NAME"},
        {"tol", 0, SK_OPT_DOUBLE, &o.tol, .help = "largest relative error that passes",
         .metavar = "X", .lo = 0, .hi = 1e30},
    };
    sk_cli cli = {"sinkstream compare", "[options] FILE REF",
                  "Compares tensors of FILE with the reference REF: rel = max|a-b| / max|ref|; "
                  "NaN/Inf fail. Exit 0 when all are within --tol.",
                  opts, (int)(sizeof opts / sizeof opts[0]), 2, 2};
    sk_cli_pos pos;
    int rc = sk_cli_parse(&cli, argc, argv, &pos);
    if (rc >= 0) return rc;
    if (o.ref_tensor && !o.tensor)
        return sk_cli_usage_error(&cli, "--ref-tensor needs --tensor");

    sk_st_file *a = NULL, *b = NULL;
    if (sk_st_open(pos.v[0], &a) != SK_OK || sk_st_open(pos.v[1], &b) != SK_OK) {
        fprintf(stderr, "sinkstream compare: %s\n", sk_error_message());
        sk_st_close(&a);
        return 1;
    }
    int failed = 0, compared = 0;
    if (o.tensor) {
        int r = compare_pair(a, o.tensor, b, o.ref_tensor ? o.ref_tensor : o.tensor, o.tol);
        failed = r != 0;
        compared = r >= 0;
    } else {
        for (int i = 0; i < a->n_tensors; i++) {
            const sk_st_tensor *t = &a->tensors[i];
            if (!sk_dtype_is_float(t->dtype) || !sk_st_find(b, t->name)) continue;
            int r = compare_pair(a, t->name, b, t->name, o.tol);
            failed |= r != 0;
            compared += r >= 0;
        }
        if (!compared)
            fprintf(stderr, "sinkstream compare: '%s' and '%s' share no float tensor name; "
                    "use --tensor/--ref-tensor\n", a->path, b->path);
    }
    sk_st_close(&a);
    sk_st_close(&b);
    if (!compared) return 1;
    printf("%s: %d tensor(s) compared, tolerance %g\n", failed ? "FAIL" : "ok", compared, o.tol);
    return failed ? 1 : 0;
}
