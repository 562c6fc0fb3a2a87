/* test_cli_compare.c - `sinkstream compare`: the README's way to check a run
 * against a PyTorch reference. It must pass equal files, fail a perturbed
 * one at the right tolerance, fail NaN whatever the tolerance, and name
 * missing tensors and shape mismatches. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runtime/io/safetensors.h"

static char g_dir[64];

static void write_file(const char *name, float scale, float at3, const char *tname)
{
    float v[6] = {1, -2, 3, 0.5f, 4, -1};
    for (int i = 0; i < 6; i++) v[i] *= scale;
    v[3] += at3;
    int64_t shape[2] = {2, 3};
    sk_st_writer *w = NULL;
    cr_assert_eq(sk_st_writer_create(&w), SK_OK);
    cr_assert_eq(sk_st_writer_add_f32(w, tname, SK_DTYPE_F32, 2, shape, v), SK_OK);
    char path[128];
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    cr_assert_eq(sk_st_writer_save(w, path), SK_OK);
    sk_st_writer_free(&w);
}

/* Runs `sinkstream compare ARGS`; stdout+stderr into out. Returns the exit code. */
static int run(const char *args, char *out, size_t cap)
{
    const char *bin = getenv("SK_SINKSTREAM");
    cr_assert(bin && *bin, "SK_SINKSTREAM is not set (ctest sets it)");
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "cd %s && %s compare %s 2>&1", g_dir, bin, args);
    FILE *p = popen(cmd, "r");
    cr_assert(p);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = 0;
    int rc = pclose(p);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static void setup(void)
{
    snprintf(g_dir, sizeof g_dir, "/tmp/sk_compare_XXXXXX");
    cr_assert(mkdtemp(g_dir));
    write_file("ref.safetensors", 1.0f, 0.0f, "latents");
    write_file("same.safetensors", 1.0f, 0.0f, "latents");
    write_file("near.safetensors", 1.0f, 2e-4f, "latents");   /* rel 5e-5 of max 4 */
    write_file("far.safetensors", 1.0f, 4e-3f, "latents");    /* rel 1e-3 */
    write_file("nan.safetensors", 1.0f, NAN, "latents");
    write_file("other.safetensors", 1.0f, 0.0f, "x");
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", g_dir);
    cr_expect_eq(system(cmd), 0);
}

TestSuite(cli_compare, .init = setup, .fini = teardown);

Test(cli_compare, equal_files_pass)
{
    char out[4096];
    cr_assert_eq(run("same.safetensors ref.safetensors", out, sizeof out), 0, "%s", out);
    cr_assert(strstr(out, "rel 0.000e+00"), "%s", out);
}

Test(cli_compare, tolerance_decides)
{
    char out[4096];
    cr_assert_eq(run("near.safetensors ref.safetensors --tol 1e-4", out, sizeof out), 0, "%s", out);
    cr_assert_eq(run("far.safetensors ref.safetensors --tol 1e-4", out, sizeof out), 1, "%s", out);
    cr_assert(strstr(out, "FAIL") && strstr(out, "element 3"), "names the worst element: %s", out);
    cr_assert_eq(run("far.safetensors ref.safetensors --tol 2e-3", out, sizeof out), 0, "%s", out);
}

Test(cli_compare, nan_never_passes)
{
    char out[4096];
    cr_assert_eq(run("nan.safetensors ref.safetensors --tol 1e30", out, sizeof out), 1, "%s", out);
    cr_assert(strstr(out, "NaN"), "%s", out);
}

Test(cli_compare, renamed_and_missing_tensors)
{
    char out[4096];
    cr_assert_eq(run("other.safetensors ref.safetensors", out, sizeof out), 1, "%s", out);
    cr_assert(strstr(out, "share no float tensor"), "%s", out);
    cr_assert_eq(run("other.safetensors ref.safetensors -t x --ref-tensor latents", out, sizeof out),
                 0, "%s", out);
    cr_assert_eq(run("ref.safetensors ref.safetensors -t nope", out, sizeof out), 1, "%s", out);
    cr_assert(strstr(out, "'nope' not found"), "%s", out);
    cr_assert_eq(run("missing.safetensors ref.safetensors", out, sizeof out), 1, "%s", out);
    cr_assert(strstr(out, "missing.safetensors"), "%s", out);
    cr_assert_eq(run("ref.safetensors", out, sizeof out), 2, "usage error: %s", out);
}
