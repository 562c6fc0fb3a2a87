/* tmpdir_util.h - a fresh temporary directory per test, for the tests that
 * write files (model directories, rewritten weights, outputs), header-only
 * (Criterion asserts). Use:
 *
 *   static void mk(void) { tmp_make("sk_mytest_"); }
 *   TestSuite(mytest, .init = mk, .fini = tmp_remove);
 *   ... fopen(tmp_path("a.json"), "w") ...
 */
#ifndef SK_TMPDIR_UTIL_H
#define SK_TMPDIR_UTIL_H

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>

static char g_tmp_dir[256];

/* mkdtemp /tmp/<prefix>XXXXXX (a suite's .init). */
static inline void tmp_make(const char *prefix)
{
    snprintf(g_tmp_dir, sizeof g_tmp_dir, "/tmp/%sXXXXXX", prefix);
    cr_assert_not_null(mkdtemp(g_tmp_dir), "mkdtemp %s", g_tmp_dir);
}

/* rm -rf the directory (a suite's .fini). */
static inline void tmp_remove(void)
{
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp_dir);
    cr_assert_eq(system(cmd), 0);
}

static inline const char *tmp_dir(void) { return g_tmp_dir; }

/* DIR/name; the last four results stay valid (one call may take several). */
static inline const char *tmp_path(const char *name)
{
    static char p[4][400];
    static int i;
    i = (i + 1) % 4;
    snprintf(p[i], sizeof p[i], "%s/%s", g_tmp_dir, name);
    return p[i];
}

#endif
