/* test_progress.c - the progress reporter (runtime/core/progress.h): the line format
 * with a fixed clock, and what reaches the stream on a terminal vs a log. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/core/progress.h"

static sk_progress fixed(const char *label, int64_t total)
{
    sk_progress p;
    sk_progress_start(&p, label, total);
    p.t_start = 100.0; /* a fixed clock: format() takes `now` explicitly */
    return p;
}

Test(progress, format_with_total)
{
    sk_progress p = fixed("frames", 240);
    char buf[128];
    /* 120 frames in 5.128 s = 23.4 fps; 120 left -> 5.1 s -> 0:05 */
    sk_progress_format(&p, 120, 105.128, buf, sizeof buf);
    cr_assert_str_eq(buf, "frames 120/240  23.4 fps  ETA 0:05");
    /* ETA over an hour: 1 fps, 3725 left */
    p.total = 3726;
    sk_progress_format(&p, 1, 101.0, buf, sizeof buf);
    cr_assert_str_eq(buf, "frames 1/3726  1.0 fps  ETA 1:02:05");
    /* nothing done yet: no rate, no ETA guess */
    sk_progress_format(&p, 0, 100.0, buf, sizeof buf);
    cr_assert_str_eq(buf, "frames 0/3726  -- fps  ETA --:--");
    /* done: ETA 0:00 */
    p.total = 10;
    sk_progress_format(&p, 10, 102.0, buf, sizeof buf);
    cr_assert_str_eq(buf, "frames 10/10  5.0 fps  ETA 0:00");
}

Test(progress, format_unknown_total)
{
    sk_progress p = fixed("chunks", 0);
    char buf[128];
    sk_progress_format(&p, 30, 110.0, buf, sizeof buf);
    cr_assert_str_eq(buf, "chunks 30  3.0 fps");
    /* a small buffer truncates, never overflows */
    char small[8];
    sk_progress_format(&p, 30, 110.0, small, sizeof small);
    cr_assert_eq(strlen(small), 7);
}

static char *slurp(FILE *f)
{
    fflush(f);
    long n = ftell(f);
    rewind(f);
    char *s = calloc(1, (size_t)n + 1);
    cr_assert(s);
    cr_assert_eq(fread(s, 1, (size_t)n, f), (size_t)n);
    return s;
}

static int count(const char *s, const char *needle)
{
    int n = 0;
    for (const char *p = strstr(s, needle); p; p = strstr(p + 1, needle)) n++;
    return n;
}

Test(progress, log_lines_every_update)
{
    FILE *f = tmpfile();
    cr_assert(f);
    sk_progress p;
    sk_progress_start(&p, "frames", 12);
    p.fp = f;
    p.tty = 0;
    p.quiet = 0;
    p.log_every_s = 0; /* one line per chunk */
    for (int i = 3; i <= 12; i += 3) sk_progress_update(&p, i);
    sk_progress_finish(&p); /* 12/12 already logged: no repeat */
    char *s = slurp(f);
    cr_assert_eq(count(s, "\n"), 4, "output:\n%s", s);
    cr_assert_eq(count(s, "\r"), 0);
    cr_assert(strstr(s, "frames 3/12") && strstr(s, "frames 12/12"), "%s", s);
    free(s);
    fclose(f);
}

Test(progress, log_lines_rate_limited)
{
    FILE *f = tmpfile();
    cr_assert(f);
    sk_progress p;
    sk_progress_start(&p, "frames", 1000);
    p.fp = f;
    p.tty = 0;
    p.quiet = 0;
    p.log_every_s = 3600; /* nothing due within this test */
    for (int i = 1; i <= 100; i++) sk_progress_update(&p, i);
    char *s = slurp(f);
    cr_assert_eq(s[0], 0, "printed before due: %s", s);
    free(s);
    sk_progress_finish(&p); /* the final line always comes */
    s = slurp(f);
    cr_assert_eq(count(s, "\n"), 1);
    cr_assert(strstr(s, "frames 100/1000"), "%s", s);
    free(s);
    fclose(f);
}

Test(progress, tty_rewrites_one_line)
{
    FILE *f = tmpfile();
    cr_assert(f);
    sk_progress p;
    sk_progress_start(&p, "frames", 4);
    p.fp = f;
    p.tty = 1;
    p.quiet = 0;
    p.t_last = -1e9; /* make the first update due */
    sk_progress_update(&p, 2);
    sk_progress_finish(&p);
    char *s = slurp(f);
    cr_assert_eq(count(s, "\r"), 2, "%s", s);
    cr_assert_eq(count(s, "\n"), 1, "%s", s);
    cr_assert(strstr(s, "\x1b[K"), "no clear-to-end-of-line");
    cr_assert_eq(s[strlen(s) - 1], '\n');
    free(s);
    fclose(f);
}

Test(progress, quiet_prints_nothing)
{
    FILE *f = tmpfile();
    cr_assert(f);
    sk_progress p;
    sk_progress_start(&p, "frames", 4);
    p.fp = f;
    p.quiet = 1;
    p.log_every_s = 0;
    sk_progress_update(&p, 1);
    sk_progress_finish(&p);
    cr_assert_eq(ftell(f), 0);
    cr_assert_eq(p.done, 1);
    fclose(f);
}

Test(progress, log_final_line_not_repeated)
{
    FILE *f = tmpfile();
    cr_assert(f);
    sk_progress p;
    sk_progress_start(&p, "frames", 3);
    p.fp = f;
    p.tty = 0;
    p.quiet = 0;
    p.log_every_s = 0; /* a line per update */
    for (int i = 1; i <= 3; i++) sk_progress_update(&p, i);
    sk_progress_finish(&p); /* 3/3 is already logged */
    char *s = slurp(f);
    cr_assert_eq(count(s, "\n"), 3, "%s", s);
    cr_assert_eq(count(s, "frames 3/3"), 1, "%s", s);
    free(s);
    fclose(f);
}
