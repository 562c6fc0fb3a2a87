/* cli_opts.c - see cli_opts.h. Parsing happens in two passes over the same
 * setter: environment first, argv second, so a flag always beats its env. */
#include "tools/cli_opts.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---------------------------------------------------------------- values */

/* Finds choice `s` in "a|b|c"; returns its index or -1. */
static int enum_index(const char *choices, const char *s)
{
    int i = 0;
    size_t n = strlen(s);
    for (const char *p = choices; p && *p; i++) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && !strncmp(p, s, n)) return i;
        p = bar ? bar + 1 : NULL;
    }
    return -1;
}

/* Writes choice number idx of "a|b|c" into buf ("?" when out of range). */
static const char *enum_name(const char *choices, int idx, char *buf, size_t cap)
{
    int i = 0;
    for (const char *p = choices; p && *p; i++) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (i == idx) {
            snprintf(buf, cap, "%.*s", (int)len, p);
            return buf;
        }
        p = bar ? bar + 1 : NULL;
    }
    snprintf(buf, cap, "?");
    return buf;
}

const char *sk_opt_value_str(const sk_opt *o, char *buf, size_t cap)
{
    buf[0] = 0;
    if (!o->field) return buf;
    switch (o->type) {
    case SK_OPT_FLAG: snprintf(buf, cap, "%s", *(int *)o->field ? "on" : "off"); break;
    case SK_OPT_INT: snprintf(buf, cap, "%d", *(int *)o->field); break;
    case SK_OPT_INT64: snprintf(buf, cap, "%" PRId64, *(int64_t *)o->field); break;
    case SK_OPT_FLOAT: snprintf(buf, cap, "%g", (double)*(float *)o->field); break;
    case SK_OPT_DOUBLE: snprintf(buf, cap, "%g", *(double *)o->field); break;
    case SK_OPT_STRING: {
        const char *s = *(const char **)o->field;
        snprintf(buf, cap, "%s", s ? s : "");
        break;
    }
    case SK_OPT_ENUM: enum_name(o->choices, *(int *)o->field, buf, cap); break;
    case SK_OPT_INT_LIST: {
        const sk_int_list *l = o->field;
        size_t at = 0;
        for (int i = 0; i < l->n && at < cap; i++)
            at += (size_t)snprintf(buf + at, cap - at, "%s%d", i ? "," : "", l->v[i]);
        break;
    }
    case SK_OPT_GROUP: break;
    }
    return buf;
}

/* Where a value came from, for messages: "--steps" or "$SK_STEPS". */
typedef struct {
    const sk_cli *cli;
    char who[320];
} src_ctx;

static int bad(const src_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int bad(const src_ctx *c, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s: %s: %s\n(see '%s --help')\n", c->cli->prog, c->who, msg, c->cli->prog);
    return 2;
}

static int check_range(const src_ctx *c, const sk_opt *o, double v, const char *text)
{
    if (o->lo < o->hi && (v < o->lo || v > o->hi))
        return bad(c, "'%s' is out of range (expected %.15g to %.15g)", text, o->lo, o->hi);
    return 0;
}

static int parse_i64(const src_ctx *c, const char *s, int64_t lo, int64_t hi, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end || end == s)
        return bad(c, "'%s' is not an integer", s);
    if (errno == ERANGE || v < lo || v > hi)
        return bad(c, "'%s' does not fit (expected %" PRId64 " to %" PRId64 ")", s, lo, hi);
    *out = v;
    return 0;
}

static int parse_dbl(const src_ctx *c, const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (!*s || *end || end == s) return bad(c, "'%s' is not a number", s);
    if (!isfinite(v) || errno == ERANGE) return bad(c, "'%s' is not a finite number", s);
    *out = v;
    return 0;
}

static int parse_bool(const char *s, int *out)
{
    static const char *const yes[] = {"1", "true", "yes", "on"}, *const no[] = {"0", "false", "no", "off", ""};
    for (size_t i = 0; i < 4; i++)
        if (!strcasecmp(s, yes[i])) { *out = 1; return 0; }
    for (size_t i = 0; i < 5; i++)
        if (!strcasecmp(s, no[i])) { *out = 0; return 0; }
    return -1;
}

/* Stores text into o's field; returns 0 or 2 (message printed). */
static int set_value(const src_ctx *c, const sk_opt *o, const char *s)
{
    int64_t i64 = 0;
    double d = 0;
    switch (o->type) {
    case SK_OPT_FLAG: {
        int b;
        if (parse_bool(s, &b)) return bad(c, "'%s' is not a boolean (use 1/0, true/false, yes/no, on/off)", s);
        *(int *)o->field = b;
        return 0;
    }
    case SK_OPT_INT:
        if (parse_i64(c, s, INT32_MIN, INT32_MAX, &i64)) return 2;
        if (check_range(c, o, (double)i64, s)) return 2;
        *(int *)o->field = (int)i64;
        return 0;
    case SK_OPT_INT64:
        if (parse_i64(c, s, INT64_MIN, INT64_MAX, &i64)) return 2;
        if (check_range(c, o, (double)i64, s)) return 2;
        *(int64_t *)o->field = i64;
        return 0;
    case SK_OPT_FLOAT:
    case SK_OPT_DOUBLE:
        if (parse_dbl(c, s, &d)) return 2;
        if (o->type == SK_OPT_FLOAT && fabs(d) > 3.4028234663852886e38)
            return bad(c, "'%s' is too large for a float", s);
        if (check_range(c, o, d, s)) return 2;
        if (o->type == SK_OPT_FLOAT) *(float *)o->field = (float)d;
        else *(double *)o->field = d;
        return 0;
    case SK_OPT_STRING: *(const char **)o->field = s; return 0;
    case SK_OPT_ENUM: {
        int k = enum_index(o->choices, s);
        if (k < 0) return bad(c, "'%s' is not one of %s", s, o->choices ? o->choices : "(none)");
        *(int *)o->field = k;
        return 0;
    }
    case SK_OPT_INT_LIST: {
        sk_int_list tmp = {0};
        const char *p = s;
        if (!*p) return bad(c, "empty list (expected integers separated by commas, e.g. 1,2,3)");
        for (;;) {
            char item[32];
            const char *comma = strchr(p, ',');
            size_t len = comma ? (size_t)(comma - p) : strlen(p);
            if (tmp.n == SK_INT_LIST_MAX) return bad(c, "more than %d values", SK_INT_LIST_MAX);
            if (len == 0 || len >= sizeof item)
                return bad(c, "'%s': item %d is %s (expected integers separated by commas)", s,
                           tmp.n + 1, len ? "too long" : "empty");
            memcpy(item, p, len);
            item[len] = 0;
            if (parse_i64(c, item, INT32_MIN, INT32_MAX, &i64)) return 2;
            if (check_range(c, o, (double)i64, item)) return 2;
            tmp.v[tmp.n++] = (int)i64;
            if (!comma) break;
            p = comma + 1;
        }
        *(sk_int_list *)o->field = tmp;
        return 0;
    }
    case SK_OPT_GROUP: break;
    }
    return bad(c, "internal error: option has no value type");
}

/* ----------------------------------------------------------------- parse */

static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63) return 99;
    size_t row[64];
    for (size_t j = 0; j <= lb; j++) row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t prev = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t cur = row[j];
            size_t sub = prev + (a[i - 1] != b[j - 1]);
            size_t del = row[j] + 1, ins = row[j - 1] + 1;
            row[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
            prev = cur;
        }
    }
    return row[lb];
}

static int unknown(const sk_cli *cli, const char *arg, const char *name)
{
    const char *best = NULL;
    size_t bd = 3; /* suggest only close matches */
    for (int i = 0; i < cli->n_opts; i++) {
        const sk_opt *o = &cli->opts[i];
        if (o->type == SK_OPT_GROUP || !o->name) continue;
        size_t d = edit_distance(name, o->name);
        if (d < bd || (d == bd && !best && strstr(o->name, name))) bd = d, best = o->name;
    }
    if (best)
        fprintf(stderr, "%s: unknown option '%s' (did you mean --%s?)\n(see '%s --help')\n",
                cli->prog, arg, best, cli->prog);
    else
        fprintf(stderr, "%s: unknown option '%s'\n(see '%s --help')\n", cli->prog, arg, cli->prog);
    return 2;
}

static const sk_opt *find_long(const sk_cli *cli, const char *name, size_t len)
{
    for (int i = 0; i < cli->n_opts; i++) {
        const sk_opt *o = &cli->opts[i];
        if (o->type != SK_OPT_GROUP && o->name && strlen(o->name) == len &&
            !strncmp(o->name, name, len))
            return o;
    }
    return NULL;
}

static const sk_opt *find_short(const sk_cli *cli, char ch)
{
    for (int i = 0; i < cli->n_opts; i++)
        if (cli->opts[i].type != SK_OPT_GROUP && cli->opts[i].short_name == ch) return &cli->opts[i];
    return NULL;
}

static int add_pos(const sk_cli *cli, sk_cli_pos *pos, char *a)
{
    int max = cli->max_pos < SK_CLI_MAX_POS ? cli->max_pos : SK_CLI_MAX_POS;
    if (pos->n >= max) {
        if (max == 0)
            fprintf(stderr, "%s: unexpected argument '%s' (this command takes no arguments)\n",
                    cli->prog, a);
        else
            fprintf(stderr, "%s: unexpected extra argument '%s' (at most %d expected)\n",
                    cli->prog, a, max);
        fprintf(stderr, "usage: %s %s\n", cli->prog, cli->args ? cli->args : "[options]");
        return 2;
    }
    pos->v[pos->n++] = a;
    return 0;
}

int sk_cli_parse(const sk_cli *cli, int argc, char **argv, sk_cli_pos *pos)
{
    sk_cli_pos dummy;
    if (!pos) pos = &dummy;
    pos->n = 0;
    src_ctx c = {.cli = cli};

    /* Environment first: argv overrides it below. */
    for (int i = 0; i < cli->n_opts; i++) {
        const sk_opt *o = &cli->opts[i];
        const char *v = o->env && o->type != SK_OPT_GROUP ? getenv(o->env) : NULL;
        if (!v) continue;
        snprintf(c.who, sizeof c.who, "$%s (for --%s)", o->env, o->name);
        if (set_value(&c, o, v)) return 2;
    }

    int only_pos = 0;
    for (int i = 1; i < argc; i++) {
        char *a = argv[i];
        if (only_pos || a[0] != '-' || a[1] == 0) { /* "-" alone means stdin: positional */
            if (add_pos(cli, pos, a)) return 2;
            continue;
        }
        if (!strcmp(a, "--")) { only_pos = 1; continue; }
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            sk_cli_help(cli, stdout);
            return 0;
        }
        const sk_opt *o;
        const char *val = NULL;
        if (a[1] == '-') {
            const char *name = a + 2, *eq = strchr(name, '=');
            size_t len = eq ? (size_t)(eq - name) : strlen(name);
            o = find_long(cli, name, len);
            int negate = 0;
            if (!o && len > 3 && !strncmp(name, "no-", 3)) {
                o = find_long(cli, name + 3, len - 3);
                if (o && o->type != SK_OPT_FLAG) o = NULL;
                negate = o != NULL;
            }
            if (!o) {
                char nm[128];
                snprintf(nm, sizeof nm, "%.*s", (int)(len < 100 ? len : 100), name);
                return unknown(cli, a, nm);
            }
            snprintf(c.who, sizeof c.who, "option --%s", o->name);
            if (o->type == SK_OPT_FLAG) {
                if (eq) {
                    if (negate) return bad(&c, "--no-%s takes no value", o->name);
                    if (set_value(&c, o, eq + 1)) return 2;
                } else {
                    *(int *)o->field = !negate;
                }
                continue;
            }
            if (eq) val = eq + 1;
        } else {
            o = find_short(cli, a[1]);
            if (!o) return unknown(cli, a, a + 1);
            snprintf(c.who, sizeof c.who, "option -%c (--%s)", a[1], o->name);
            if (o->type == SK_OPT_FLAG) {
                if (a[2]) return bad(&c, "takes no value (got '%s'; combine short flags separately)", a);
                *(int *)o->field = 1;
                continue;
            }
            if (a[2]) val = a[2] == '=' ? a + 3 : a + 2;
        }
        if (!val) {
            if (i + 1 >= argc) {
                char mv[64];
                snprintf(mv, sizeof mv, "%s", o->metavar ? o->metavar : "VALUE");
                return bad(&c, "missing value (expected %s)", mv);
            }
            val = argv[++i];
        }
        if (set_value(&c, o, val)) return 2;
    }
    if (pos->n < cli->min_pos) {
        fprintf(stderr, "%s: missing argument%s\nusage: %s %s\n(see '%s --help')\n", cli->prog,
                cli->min_pos - pos->n > 1 ? "s" : "", cli->prog, cli->args ? cli->args : "",
                cli->prog);
        return 2;
    }
    return -1;
}

const sk_opt *sk_cli_find(const sk_cli *cli, const char *name)
{
    return find_long(cli, name, strlen(name));
}

int sk_cli_set(const sk_cli *cli, const char *name, const char *value, const char *who)
{
    const sk_opt *o = sk_cli_find(cli, name);
    if (!o) return -1;
    src_ctx c = {.cli = cli};
    snprintf(c.who, sizeof c.who, "%s (for --%s)", who ? who : "default", o->name);
    return set_value(&c, o, value) ? 2 : 0;
}

int sk_cli_usage_error(const sk_cli *cli, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s: %s\n(see '%s --help')\n", cli->prog, msg, cli->prog);
    return 2;
}

/* ------------------------------------------------------------------ help */

static const char *default_metavar(const sk_opt *o)
{
    if (o->metavar) return o->metavar;
    switch (o->type) {
    case SK_OPT_INT:
    case SK_OPT_INT64: return "N";
    case SK_OPT_FLOAT:
    case SK_OPT_DOUBLE: return "X";
    case SK_OPT_STRING: return "STR";
    case SK_OPT_ENUM: return o->choices ? o->choices : "CHOICE";
    case SK_OPT_INT_LIST: return "N,N,...";
    default: return "";
    }
}

/* Help text starts at this column; lines wrap before HELP_WIDTH. */
#define HELP_COL 30
#define HELP_WIDTH 100

/* Prints text word-wrapped into [HELP_COL, HELP_WIDTH); the cursor is at
 * HELP_COL. A \1 byte prints as a space that never breaks. */
static void print_wrapped(const char *text, FILE *out)
{
    int col = HELP_COL;
    const char *p = text;
    while (*p) {
        while (*p == ' ') p++;
        size_t w = strcspn(p, " ");
        if (!w) break;
        if (col > HELP_COL && col + 1 + (int)w > HELP_WIDTH) {
            fprintf(out, "\n%*s", HELP_COL, "");
            col = HELP_COL;
        } else if (col > HELP_COL) {
            fputc(' ', out);
            col++;
        }
        for (size_t k = 0; k < w; k++) fputc(p[k] == '\1' ? ' ' : p[k], out);
        col += (int)w;
        p += w;
    }
    fputc('\n', out);
}

static void print_opt(const sk_opt *o, FILE *out)
{
    char left[160], def[512], text[1400];
    int at = 0;
    if (o->short_name) at = snprintf(left, sizeof left, "-%c, ", o->short_name);
    else at = snprintf(left, sizeof left, "    ");
    if (o->type == SK_OPT_FLAG)
        snprintf(left + at, sizeof left - (size_t)at, "--%s", o->name);
    else
        snprintf(left + at, sizeof left - (size_t)at, "--%s %s", o->name, default_metavar(o));
    if (strlen(left) <= HELP_COL - 4) fprintf(out, "  %-*s  ", HELP_COL - 4, left);
    else fprintf(out, "  %s\n%*s", left, HELP_COL, "");

    if (o->def_text) snprintf(def, sizeof def, "%s", o->def_text);
    else sk_opt_value_str(o, def, sizeof def);
    /* A flag that is off and a string with no value have nothing to say. */
    int show = def[0] && !(o->type == SK_OPT_FLAG && !o->def_text && !*(int *)o->field);
    size_t n = (size_t)snprintf(text, sizeof text, "%s", o->help ? o->help : "");
    if (show && o->type == SK_OPT_FLAG && !o->def_text && n < sizeof text)
        n += (size_t)snprintf(text + n, sizeof text - n, " (default: on; --no-%s turns it off)",
                              o->name);
    else if (show && n < sizeof text)
        n += (size_t)snprintf(text + n, sizeof text - n, " (default: %s)", def);
    if (o->env && n < sizeof text) snprintf(text + n, sizeof text - n, " [env %s]", o->env);
    /* Keep "(default: ...)" and "[env ...]" on one line each (scripts grep
     * for them): their spaces become \1, which wrapping does not split. */
    size_t hl = strlen(o->help ? o->help : "");
    for (size_t k = hl + 1; k < sizeof text && text[k]; k++)
        if (text[k] == ' ' && text[k - 1] != ')' && text[k - 1] != ']') text[k] = '\1';
    print_wrapped(text, out);
}

void sk_cli_help(const sk_cli *cli, FILE *out)
{
    fprintf(out, "usage: %s %s\n", cli->prog, cli->args ? cli->args : "[options]");
    if (cli->summary) fprintf(out, "\n%s\n", cli->summary);
    fprintf(out, "\noptions:\n  %-*s  show this help and exit\n", HELP_COL - 4, "-h, --help");
    for (int i = 0; i < cli->n_opts; i++) {
        const sk_opt *o = &cli->opts[i];
        if (o->type == SK_OPT_GROUP) fprintf(out, "\n%s:\n", o->name);
        else print_opt(o, out);
    }
}
