/* test_cli_doc.c - docs/CLI.md matches `--help` (issue 17): its generated reference section
 * is the verbatim --help of sinkstream and of every command the binary lists, and the
 * hand-written part names no option that no command has. tools/update_cli_doc.sh --check does
 * the comparison (a unified diff on failure); without --check it rewrites the section. */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "tests/common/cli_run.h"

Test(cli_doc, cli_md_matches_every_help, .timeout = 120)
{
    const char *src = getenv("SK_SOURCE_DIR");
    cr_assert(src, "SK_SOURCE_DIR is not set (ctest sets it)");
    char cmd[2048], *err;
    /* the script prints the diff on stdout: into the captured stderr with it */
    snprintf(cmd, sizeof cmd, "sh -c \"bash '%s/tools/update_cli_doc.sh' --check '%s' 1>&2\"",
             src, tu_bin());
    int rc = tu_sh(cmd, &err);
    cr_expect_eq(rc, 0, "docs/CLI.md and --help disagree:\n%s", err);
}
