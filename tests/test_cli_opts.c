/* test_cli_opts.c - the option-table library every subcommand uses: every
 * value type, both --opt value and --opt=value, short options, env vars
 * (argv wins), --no-flag, "--", the error exit code 2, and --help printing
 * the real defaults from the fields. tools/ is not a library, so the source
 * is compiled in here. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <stdlib.h>
#include <string.h>

#include "tools/cli_opts.c"

typedef struct {
    int frames, json, decode, device;
    int64_t seed;
    float cfg;
    double shift;
    const char *out;
    sk_int_list steps;
} opts_t;

static opts_t defaults(void)
{
    opts_t o = {.frames = 21, .json = 0, .decode = 1, .device = 1, .seed = 42, .cfg = 1.5f,
                .shift = 5.0, .out = "out.mp4", .steps = {4, {1000, 750, 500, 250}}};
    return o;
}

#define TABLE(o)                                                                            \
    const sk_opt table[] = {                                                                \
        SK_OPT_HEADING("Sampling"),                                                         \
        {"frames", 'f', SK_OPT_INT, &(o).frames, .help = "latent frames", .env = "SKT_FRAMES", \
         .metavar = "N", .lo = 1, .hi = 1000},                                              \
        {"seed", 0, SK_OPT_INT64, &(o).seed, .help = "noise seed"},                         \
        {"cfg", 0, SK_OPT_FLOAT, &(o).cfg, .help = "guidance"},                             \
        {"shift", 0, SK_OPT_DOUBLE, &(o).shift, .help = "timestep shift"},                  \
        {"steps", 0, SK_OPT_INT_LIST, &(o).steps, .help = "timesteps", .lo = 0, .hi = 1000}, \
        SK_OPT_HEADING("Output"),                                                           \
        {"output", 'o', SK_OPT_STRING, &(o).out, .help = "video file", .metavar = "FILE"},  \
        {"device", 0, SK_OPT_ENUM, &(o).device, .help = "backend", .env = "SKT_DEVICE",     \
         .choices = "cpu|cuda"},                                                            \
        {"json", 'j', SK_OPT_FLAG, &(o).json, .help = "JSON summary"},                      \
        {"decode", 0, SK_OPT_FLAG, &(o).decode, .help = "decode latents"},                  \
    };                                                                                      \
    sk_cli cli = {"sinkstream test", "[options] PROMPT", "A test command.", table,          \
                  (int)(sizeof table / sizeof table[0]), 0, 2}

static int parse(opts_t *o, sk_cli_pos *pos, int argc, const char **args)
{
    TABLE(*o);
    return sk_cli_parse(&cli, argc, (char **)args, pos);
}

Test(cli_opts, every_type_and_both_forms)
{
    unsetenv("SKT_FRAMES");
    unsetenv("SKT_DEVICE");
    opts_t o = defaults();
    sk_cli_pos pos;
    const char *a[] = {"test", "--frames", "9", "--seed=-7", "--cfg", "2.25", "--shift=3e0",
                       "--steps", "999,500,0", "-o", "x.mp4", "--device=cpu", "-j",
                       "--no-decode", "hello", "--", "--not-an-option"};
    cr_assert_eq(parse(&o, &pos, (int)(sizeof a / sizeof a[0]), a), -1);
    cr_expect_eq(o.frames, 9);
    cr_expect_eq(o.seed, -7);
    cr_expect_eq(o.cfg, 2.25f);
    cr_expect_eq(o.shift, 3.0);
    cr_expect_eq(o.steps.n, 3);
    cr_expect(o.steps.v[0] == 999 && o.steps.v[1] == 500 && o.steps.v[2] == 0);
    cr_expect_str_eq(o.out, "x.mp4");
    cr_expect_eq(o.device, 0);
    cr_expect_eq(o.json, 1);
    cr_expect_eq(o.decode, 0);
    cr_expect_eq(pos.n, 2);
    cr_expect_str_eq(pos.v[0], "hello");
    cr_expect_str_eq(pos.v[1], "--not-an-option");

    /* short with attached value, and nothing given keeps the defaults */
    o = defaults();
    const char *b[] = {"test", "-f12", "-ofile.mkv"};
    cr_assert_eq(parse(&o, &pos, 3, b), -1);
    cr_expect_eq(o.frames, 12);
    cr_expect_str_eq(o.out, "file.mkv");
    cr_expect_eq(o.shift, 5.0);
    cr_expect_eq(o.steps.n, 4);
    cr_expect_eq(pos.n, 0);
}

Test(cli_opts, env_then_argv)
{
    opts_t o = defaults();
    sk_cli_pos pos;
    setenv("SKT_FRAMES", "33", 1);
    setenv("SKT_DEVICE", "cpu", 1);
    const char *a[] = {"test"};
    cr_assert_eq(parse(&o, &pos, 1, a), -1);
    cr_expect_eq(o.frames, 33);
    cr_expect_eq(o.device, 0);
    o = defaults();
    const char *b[] = {"test", "--frames", "7"};
    cr_assert_eq(parse(&o, &pos, 3, b), -1);
    cr_expect_eq(o.frames, 7, "argv beats the environment");
    setenv("SKT_FRAMES", "lots", 1);
    o = defaults();
    cr_expect_eq(parse(&o, &pos, 1, a), 2, "a bad env value is a usage error");
    unsetenv("SKT_FRAMES");
    unsetenv("SKT_DEVICE");
}

static void expect_error(const char **args, int n, const char *want)
{
    opts_t o = defaults();
    sk_cli_pos pos;
    fflush(stderr);
    char *buf = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    FILE *saved = stderr;
    stderr = mem;
    int rc = parse(&o, &pos, n, args);
    stderr = saved;
    fclose(mem);
    cr_expect_eq(rc, 2, "%s: rc %d", args[1], rc);
    cr_expect(strstr(buf, want) != NULL, "expected '%s' in: %s", want, buf);
    free(buf);
}

Test(cli_opts, errors_name_the_flag)
{
    unsetenv("SKT_FRAMES");
    unsetenv("SKT_DEVICE");
    const char *a1[] = {"test", "--framez", "3"};
    expect_error(a1, 3, "unknown option '--framez' (did you mean --frames?)");
    const char *a2[] = {"test", "--frames"};
    expect_error(a2, 2, "option --frames: missing value (expected N)");
    const char *a3[] = {"test", "--frames", "3x"};
    expect_error(a3, 3, "option --frames: '3x' is not an integer");
    const char *a4[] = {"test", "--frames", "0"};
    expect_error(a4, 3, "option --frames: '0' is out of range (expected 1 to 1000)");
    const char *a5[] = {"test", "--shift", "fast"};
    expect_error(a5, 3, "option --shift: 'fast' is not a number");
    const char *a6[] = {"test", "--device", "tpu"};
    expect_error(a6, 3, "option --device: 'tpu' is not one of cpu|cuda");
    const char *a7[] = {"test", "--steps", "1000,,250"};
    expect_error(a7, 3, "item 2 is empty");
    const char *a8[] = {"test", "--steps", "1000,1001"};
    expect_error(a8, 3, "'1001' is out of range");
    const char *a9[] = {"test", "--no-decode=1"};
    expect_error(a9, 2, "--no-decode takes no value");
    const char *a10[] = {"test", "-x"};
    expect_error(a10, 2, "unknown option '-x'");
    const char *a11[] = {"test", "a", "b", "c"};
    expect_error(a11, 4, "unexpected extra argument 'c'");
    const char *a12[] = {"test", "--no-frames"};
    expect_error(a12, 2, "unknown option '--no-frames'");
    const char *a13[] = {"test", "--seed", "99999999999999999999"};
    expect_error(a13, 3, "does not fit");
    const char *a14[] = {"test", "--cfg", "1e39"};
    expect_error(a14, 3, "too large for a float");
    const char *a15[] = {"test", "-jq"};
    expect_error(a15, 2, "takes no value");
}

Test(cli_opts, help_shows_real_defaults)
{
    opts_t o = defaults();
    o.frames = 77; /* a changed initial value must show up: help reads the field */
    TABLE(o);
    char *buf = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    sk_cli_help(&cli, mem);
    fclose(mem);
    cr_expect(strstr(buf, "usage: sinkstream test [options] PROMPT"), "%s", buf);
    cr_expect(strstr(buf, "Sampling:") && strstr(buf, "Output:"), "groups: %s", buf);
    cr_expect(strstr(buf, "Sampling:") < strstr(buf, "--frames"), "%s", buf);
    cr_expect(strstr(buf, "-f, --frames N"), "%s", buf);
    cr_expect(strstr(buf, "(default: 77) [env SKT_FRAMES]"), "%s", buf);
    cr_expect(strstr(buf, "(default: 1000,750,500,250)"), "%s", buf);
    cr_expect(strstr(buf, "(default: 5)"), "%s", buf);
    cr_expect(strstr(buf, "(default: 1.5)"), "%s", buf);
    cr_expect(strstr(buf, "(default: out.mp4)"), "%s", buf);
    cr_expect(strstr(buf, "--device cpu|cuda") && strstr(buf, "(default: cuda)"), "%s", buf);
    cr_expect(strstr(buf, "(default: on; --no-decode turns it off)"), "%s", buf);
    cr_expect(strstr(buf, "-h, --help"), "%s", buf);
    free(buf);

    /* --help through the parser prints to stdout and returns 0 */
    cr_redirect_stdout();
    const char *a[] = {"test", "--frames", "5", "--help"};
    opts_t p = defaults();
    sk_cli_pos pos;
    cr_expect_eq(parse(&p, &pos, 4, a), 0);
}

Test(cli_opts, usage_error_returns_2)
{
    cr_redirect_stderr();
    opts_t o = defaults();
    TABLE(o);
    cr_expect_eq(sk_cli_usage_error(&cli, "--frames %d is odd", 3), 2);
    fflush(stderr);
    cr_expect_stderr_eq_str("sinkstream test: --frames 3 is odd\n(see 'sinkstream test --help')\n");
}

Test(cli_opts, value_str)
{
    opts_t o = defaults();
    TABLE(o);
    char buf[64];
    (void)cli;
    cr_expect_str_eq(sk_opt_value_str(&table[1], buf, sizeof buf), "21");
    cr_expect_str_eq(sk_opt_value_str(&table[2], buf, sizeof buf), "42");
    cr_expect_str_eq(sk_opt_value_str(&table[5], buf, sizeof buf), "1000,750,500,250");
    cr_expect_str_eq(sk_opt_value_str(&table[8], buf, sizeof buf), "cuda");
    cr_expect_str_eq(sk_opt_value_str(&table[9], buf, sizeof buf), "off");
}

Test(cli_opts, help_wraps_long_lines_but_not_defaults)
{
    int n = 12345678;
    const sk_opt t[] = {
        {"number", 0, SK_OPT_INT, &n,
         .help = "a deliberately long help text that goes on and on about what this option "
                 "does so that it has to wrap at least once or twice in the help output",
         .env = "SKT_NUMBER"},
    };
    sk_cli cli = {"sinkstream w", NULL, NULL, t, 1, 0, 0};
    char *buf = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    sk_cli_help(&cli, mem);
    fclose(mem);
    int lines = 0;
    for (char *line = buf, *nl; *line; line = nl + 1) {
        nl = strchr(line, '\n');
        cr_assert_not_null(nl);
        cr_expect_leq(nl - line, 100, "line too long: %.*s", (int)(nl - line), line);
        lines++;
    }
    cr_expect_gt(lines, 5, "%s", buf);
    cr_expect(strstr(buf, "(default: 12345678)"), "%s", buf);
    cr_expect(strstr(buf, "[env SKT_NUMBER]"), "%s", buf);
    cr_expect(strchr(buf, '\1') == NULL, "no marker bytes leak");
    free(buf);
}
