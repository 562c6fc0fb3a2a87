/* cli_run.h - running the built `sinkstream` from a Criterion test.
 * ctest sets SK_SINKSTREAM to the binary (CMakeLists.txt); a test run by hand
 * without it fails with that hint rather than skipping. */
#ifndef SK_TESTS_CLI_RUN_H
#define SK_TESTS_CLI_RUN_H

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static inline const char *tu_bin(void)
{
    const char *b = getenv("SK_SINKSTREAM");
    cr_assert(b && *b, "SK_SINKSTREAM is not set (ctest sets it to the built binary)");
    return b;
}

/* Runs a shell command with stdout discarded; its stderr goes into err
 * (cap bytes, NUL-terminated). Returns the exit code, -1 on a signal. */
static inline int tu_sh_err(const char *cmd, char *err, size_t cap)
{
    char path[] = "/tmp/sk_test_err_XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    close(fd);
    char full[8192];
    snprintf(full, sizeof full, "%s 2>%s >/dev/null", cmd, path);
    int rc = system(full);
    FILE *f = fopen(path, "rb");
    size_t n = f ? fread(err, 1, cap - 1, f) : 0;
    err[n] = 0;
    if (f) fclose(f);
    unlink(path);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

/* The same into a static 64 KiB buffer (*err valid until the next call). */
static inline int tu_sh(const char *cmd, char **err)
{
    static char buf[65536];
    *err = buf;
    return tu_sh_err(cmd, buf, sizeof buf);
}

#endif
