/* cli_opts.h - the one option table behind every `sinkstream <command>`.
 *
 * A command describes its options once, as a table of sk_opt pointing at the
 * fields of its own options struct. The same table drives:
 *   - parsing: --name VALUE, --name=VALUE, -x VALUE, -xVALUE, --flag,
 *     --no-flag, "--" ends options; environment variables (argv wins);
 *   - errors: unknown option (with a "did you mean"), missing value, bad
 *     number, value out of range, bad enum choice; each names the flag, is
 *     printed to stderr, and makes sk_cli_parse return exit code 2;
 *   - --help / -h: usage line, summary, options grouped under headings,
 *     each with its metavar, help, the REAL default (printed from the field's
 *     initial value, so help can never drift from the code) and its env var.
 *
 * The field's initial value IS the default: set it in the struct before
 * calling sk_cli_parse. def_text only replaces what help prints, for
 * defaults that are computed later (e.g. "from the checkpoint").
 *
 * Field types (what `field` must point to):
 *   SK_OPT_FLAG     int      (0/1; --name sets 1, --no-name sets 0)
 *   SK_OPT_INT      int
 *   SK_OPT_INT64    int64_t
 *   SK_OPT_FLOAT    float
 *   SK_OPT_DOUBLE   double
 *   SK_OPT_STRING   const char *   (points into argv/environ: no free)
 *   SK_OPT_ENUM     int      (index into choices "a|b|c")
 *   SK_OPT_INT_LIST sk_int_list    ("1000,750,500,250")
 *   SK_OPT_GROUP    no field: `name` is a heading for the options after it
 *
 * Example (a complete command):
 *
 *   typedef struct { int frames; double shift; const char *out; int device; int json;
 *                    sk_int_list steps; } gen_opts;
 *
 *   int sk_cmd_generate(int argc, char **argv)
 *   {
 *       gen_opts o = {.frames = 21, .shift = 5.0, .out = "out.mp4", .device = 1,
 *                     .steps = {4, {1000, 750, 500, 250}}};
 *       const sk_opt opts[] = {
 *           SK_OPT_HEADING("Sampling"),
 *           {"frames", 'f', SK_OPT_INT, &o.frames, .help = "latent frames to generate",
 *            .env = "SK_FRAMES", .metavar = "N", .lo = 1, .hi = 100000},
 *           {"shift", 0, SK_OPT_DOUBLE, &o.shift, .help = "timestep shift"},
 *           {"steps", 0, SK_OPT_INT_LIST, &o.steps, .help = "denoising timesteps"},
 *           SK_OPT_HEADING("Output"),
 *           {"output", 'o', SK_OPT_STRING, &o.out, .help = "video file", .metavar = "FILE"},
 *           {"device", 0, SK_OPT_ENUM, &o.device, .help = "backend", .env = "SK_DEVICE",
 *            .choices = "cpu|cuda"},
 *           {"json", 0, SK_OPT_FLAG, &o.json, .help = "print a JSON summary"},
 *       };
 *       sk_cli cli = {"sinkstream generate", "[options] PROMPT", "Generate a video.",
 *                     opts, (int)(sizeof opts / sizeof opts[0]), 1, 1};
 *       sk_cli_pos pos;
 *       int rc = sk_cli_parse(&cli, argc, argv, &pos);
 *       if (rc >= 0) return rc;          // --help (0) or a usage error (2)
 *       if (o.frames % 3) return sk_cli_usage_error(&cli, "--frames %d is not a multiple "
 *                                                   "of 3", o.frames);
 *       ... pos.v[0] is PROMPT ...
 *   }
 *
 * Write name, short, type, field positionally and the rest with designators
 * (.help, .env, .metavar, .def_text, .choices, .lo/.hi) as above: -Wextra
 * warns about a partially filled purely positional initializer.
 *
 * argv is the command's own argv: argv[0] is the command name (main passes
 * argv + 1), so options start at argv[1].
 */
#ifndef SK_CLI_OPTS_H
#define SK_CLI_OPTS_H

#include <stdint.h>
#include <stdio.h>

#define SK_INT_LIST_MAX 64
#define SK_CLI_MAX_POS 16

typedef struct {
    int n;
    int v[SK_INT_LIST_MAX];
} sk_int_list;

typedef enum {
    SK_OPT_FLAG = 0,
    SK_OPT_INT,
    SK_OPT_INT64,
    SK_OPT_FLOAT,
    SK_OPT_DOUBLE,
    SK_OPT_STRING,
    SK_OPT_ENUM,
    SK_OPT_INT_LIST,
    SK_OPT_GROUP,
} sk_opt_type;

typedef struct {
    const char *name;     /* long name without "--"; heading text for SK_OPT_GROUP */
    char short_name;      /* 'o' for -o, or 0 */
    sk_opt_type type;
    void *field;          /* see the table above; its initial value is the default */
    const char *def_text; /* NULL: help prints the field's value; else this text */
    const char *help;     /* one line */
    const char *env;      /* environment variable read before argv, or NULL */
    const char *metavar;  /* "FILE", "N", ...; NULL picks one from the type */
    const char *choices;  /* SK_OPT_ENUM: "cpu|cuda" (the field holds the index) */
    double lo, hi;        /* numeric range checked when lo < hi (each list item too) */
} sk_opt;

/* A heading that groups the options after it in --help. */
#define SK_OPT_HEADING(title) {.name = (title), .type = SK_OPT_GROUP}

typedef struct {
    const char *prog;     /* "sinkstream inspect" (usage lines and messages) */
    const char *args;     /* usage after prog: "[options] FILE" */
    const char *summary;  /* one or two sentences printed under the usage line */
    const sk_opt *opts;
    int n_opts;
    int min_pos, max_pos; /* positional argument count bounds (max <= SK_CLI_MAX_POS) */
} sk_cli;

typedef struct {
    int n;
    char *v[SK_CLI_MAX_POS];
} sk_cli_pos;

/* Parses the environment, then argv[1..argc). Returns -1 to go on, or the
 * exit code the command should return now: 0 after printing --help, 2 after
 * printing a usage error to stderr. pos receives the positional arguments. */
int sk_cli_parse(const sk_cli *cli, int argc, char **argv, sk_cli_pos *pos);

/* Sets option `name` (its long name, without "--") from text exactly as the
 * command line would, for defaults read from a file (generate --model reads
 * model.json this way, then parses argv again so flags still win). `who`
 * names the source in messages ("model.json 'DIR/model.json'"). Returns 0,
 * 2 after printing a message naming `who` and the option, or -1 (nothing
 * printed) when the command has no option of that name. */
int sk_cli_set(const sk_cli *cli, const char *name, const char *value, const char *who);

/* The option `name` (long name) of the table, or NULL. */
const sk_opt *sk_cli_find(const sk_cli *cli, const char *name);

/* Prints the full help (usage, summary, grouped options with defaults). */
void sk_cli_help(const sk_cli *cli, FILE *out);

/* For checks after parsing: prints "prog: <message>" and a --help hint to
 * stderr; returns 2 (the usage exit code). */
int sk_cli_usage_error(const sk_cli *cli, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Formats an option's current field value as help shows it ("21", "5",
 * "cpu", "1000,750", "on"); "" for a NULL string. Returns buf. */
const char *sk_opt_value_str(const sk_opt *o, char *buf, size_t cap);

#endif
