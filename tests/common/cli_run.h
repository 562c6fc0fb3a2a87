/* cli_run.h - running the built `sinkstream` from a Criterion test.
 * ctest sets SK_SINKSTREAM to the binary (CMakeLists.txt); a test run by hand
 * without it fails with that hint rather than skipping. */
#ifndef SK_TESTS_CLI_RUN_H
#define SK_TESTS_CLI_RUN_H

#include <criterion/criterion.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

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

typedef struct {
    int code;        /* exit code */
    char *out, *err; /* captured stdout / stderr, NUL-terminated (free with tu_result_free) */
} tu_result;

static inline char *tu_slurp_fd(int fd)
{
    off_t n = lseek(fd, 0, SEEK_END);
    cr_assert_geq(n, 0);
    char *s = malloc((size_t)n + 1);
    cr_assert_not_null(s);
    ssize_t got = pread(fd, s, (size_t)n, 0);
    s[got > 0 ? got : 0] = 0;
    return s;
}

/* Runs `sinkstream [pre] a0 ...` (the list ends with NULL; pre may be NULL)
 * directly (no shell), capturing stdout and stderr. A crash fails the test. */
static inline tu_result tu_run_va(const char *pre, const char *a0, va_list ap)
{
    const char *argv[48];
    int n = 0;
    argv[n++] = tu_bin();
    if (pre) argv[n++] = pre;
    for (const char *a = a0; a && n < 47; a = va_arg(ap, const char *)) argv[n++] = a;
    argv[n] = NULL;
    char po[] = "/tmp/sk_test_out_XXXXXX", pe[] = "/tmp/sk_test_err_XXXXXX";
    int fo = mkstemp(po), fe = mkstemp(pe);
    cr_assert(fo >= 0 && fe >= 0);
    unlink(po);
    unlink(pe);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fo, 1);
    posix_spawn_file_actions_adddup2(&fa, fe, 2);
    pid_t pid;
    int rc = posix_spawn(&pid, argv[0], &fa, NULL, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    cr_assert_eq(rc, 0, "cannot start %s: %s", argv[0], strerror(rc));
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status), "%s did not exit normally (signal %d)", argv[0],
              WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    tu_result r = {WEXITSTATUS(status), tu_slurp_fd(fo), tu_slurp_fd(fe)};
    close(fo);
    close(fe);
    return r;
}

static inline tu_result tu_run(const char *a0, ...)
{
    va_list ap;
    va_start(ap, a0);
    tu_result r = tu_run_va(NULL, a0, ap);
    va_end(ap);
    return r;
}

static inline void tu_result_free(tu_result *r)
{
    free(r->out);
    free(r->err);
    r->out = r->err = NULL;
}

#endif
