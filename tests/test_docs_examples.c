/* test_docs_examples.c - the docs' example commands run as written, so they
 * cannot rot: every ```sh block preceded by a `<!-- runnable -->` line in
 * README.md and the docs/ pages (.md) runs with bash -eu from the repository root (as a
 * fresh clone would), with the built `sinkstream` first on PATH. The blocks
 * use the tiny models under tests/fixtures and write under /tmp. */
#include <dirent.h>
#include <sys/stat.h>

#include "tests/common/cli_run.h"

/* Returns the number of failed blocks; *count grows by the blocks run. */
static int run_blocks(const char *src, const char *md, const char *bindir, int *count)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", src, md);
    FILE *f = fopen(path, "r");
    cr_assert(f, "cannot open %s", path);
    char line[4096];
    int armed = 0, in = 0, failed = 0, lineno = 0, start = 0;
    static char block[1 << 16];
    size_t used = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        if (!in && strstr(line, "<!-- runnable -->")) { armed = 1; continue; }
        if (!in && armed && !strncmp(line, "```sh", 5)) { in = 1; used = 0; start = lineno; continue; }
        if (in && !strncmp(line, "```", 3)) {
            in = armed = 0;
            block[used] = 0;
            char script[] = "/tmp/sk_docs_block_XXXXXX";
            int fd = mkstemp(script);
            cr_assert_geq(fd, 0);
            cr_assert_eq(write(fd, block, used), (ssize_t)used);
            close(fd);
            char cmd[2048], *err;
            snprintf(cmd, sizeof cmd, "cd '%s' && PATH='%s':\"$PATH\" bash -eu '%s'", src, bindir,
                     script);
            int rc = tu_sh(cmd, &err);
            unlink(script);
            cr_expect_eq(rc, 0, "%s:%d: the example exits %d:\n%s\n--- stderr:\n%s", md, start, rc,
                         block, err);
            failed += rc != 0;
            (*count)++;
            continue;
        }
        if (in) {
            size_t n = strlen(line);
            cr_assert_lt(used + n, sizeof block, "%s:%d: example too long", md, start);
            memcpy(block + used, line, n);
            used += n;
        } else if (line[0] != '\n') {
            armed = 0; /* the marker must be right before the block */
        }
    }
    fclose(f);
    return failed;
}

Test(docs_examples, runnable_blocks_run_as_written, .timeout = 600)
{
    const char *src = getenv("SK_SOURCE_DIR");
    cr_assert(src, "SK_SOURCE_DIR is not set (ctest sets it)");
    /* a directory whose `sinkstream` is the built binary */
    char bindir[] = "/tmp/sk_docs_bin_XXXXXX";
    cr_assert(mkdtemp(bindir));
    char link[256];
    snprintf(link, sizeof link, "%s/sinkstream", bindir);
    cr_assert_eq(symlink(tu_bin(), link), 0);
    int count = 0;
    run_blocks(src, "README.md", bindir, &count);
    /* the pages a newcomer follows must each keep at least one runnable example */
    static const char *const must[] = {"README.md", "docs/CLI.md", "docs/LIVE.md",
                                       "docs/SERVER.md", "docs/OUTPUT.md"};
    int seen[sizeof must / sizeof must[0]] = {[0] = count};
    DIR *d = opendir(SK_SOURCE_DIR "/docs");
    cr_assert(d);
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n > 3 && !strcmp(e->d_name + n - 3, ".md")) {
            char md[512];
            snprintf(md, sizeof md, "docs/%s", e->d_name);
            const int before = count;
            run_blocks(src, md, bindir, &count);
            for (size_t i = 0; i < sizeof must / sizeof must[0]; i++)
                if (!strcmp(md, must[i])) seen[i] += count - before;
        }
    }
    closedir(d);
    for (size_t i = 0; i < sizeof must / sizeof must[0]; i++)
        cr_expect_gt(seen[i], 0, "%s has no runnable example (a ```sh block right after a "
                     "<!-- runnable --> line)", must[i]);
    unlink(link);
    rmdir(bindir);
    cr_expect_geq(count, 5, "only %d runnable examples found", count);
}
