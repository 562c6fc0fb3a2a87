/* test_live_prompts.c - the --prompts schedule rules (tools/gen_prompts.c,
 * compiled in here) and prompt switching through the binary: rounding up to
 * the chunk, "at" seconds, the first line as the starting prompt, errors that
 * name the line, --recache off (hard switch) and --recache-sink. */
#include "live_test_util.h"
#include "dit_test_util.h"

#include "runtime/live/prompts.c"

static void mk(void) { lu_dir_make("live_prompts"); }
static void rm(void) { lu_dir_remove(); }

TestSuite(live_prompts, .init = mk, .fini = rm);

static const char *file_with(const char *name, const char *text)
{
    static char path[4][256];
    static int k;
    k = (k + 1) % 4;
    snprintf(path[k], sizeof path[k], "%s/%s", g_dir, name);
    FILE *f = fopen(path[k], "w");
    cr_assert(f);
    fputs(text, f);
    fclose(f);
    return path[k];
}

/* parses text with frames 30, chunk 3, fps 16; returns the status */
static sk_status parse(const char *text, gen_prompt_list *l, int *first)
{
    memset(l, 0, sizeof *l);
    return gen_prompts_parse(file_with("p.jsonl", text), 30, 3, 16, l, first);
}

Test(live_prompts, frames_round_up_to_the_chunk_and_at_is_video_seconds)
{
    gen_prompt_list l;
    int first = -1;
    sk_status st = parse("# comment\n\n{\"prompt\": \"a\"}\n{\"frame\": 10, \"embeds\": \"e1\"}\n"
                         "{\"frame\": 12, \"embeds\": \"e2\"}\n{\"at\": 0.5 , \"prompt\": \"b\"}\n",
                         &l, &first);
    /* "at" 0.5 s -> latent 2 comes after frame 12: times must not decrease */
    cr_assert_eq(st, SK_E_FORMAT);
    cr_expect(strstr(sk_error_message(), "line 6") && strstr(sk_error_message(), "decrease"), "%s",
              sk_error_message());
    gen_prompt_list_free(&l);

    st = parse("{\"prompt\": \"a\"}\n{\"at\": 0.5, \"prompt\": \"b\"}\n{\"frame\": 10, \"embeds\": "
               "\"e1\"}\n{\"frame\": 12, \"embeds\": \"e2\"}\n{\"at\": 4.0, \"embeds\": \"e3\"}\n",
               &l, &first);
    cr_assert_eq(st, SK_OK, "%s", sk_error_message());
    cr_assert_eq(l.n, 5);
    cr_expect_eq(first, 1, "a first line without a time is the starting prompt");
    cr_expect_eq(l.v[0].frame, 0);
    cr_expect_str_eq(l.v[0].text, "a");
    /* 0.5 s at 16 fps = video frame 8 = latent 2 -> chunk boundary 3 */
    cr_expect_eq(l.v[1].raw_frame, 2);
    cr_expect_eq(l.v[1].frame, 3);
    cr_expect_eq(l.v[2].frame, 12, "frame 10 rounds up to 12");
    cr_expect_eq(l.v[3].frame, 12, "frame 12 stays");
    cr_expect_str_eq(l.v[3].key, "e2");
    /* 4 s = video frame 64 = latent 16 -> 18 */
    cr_expect_eq(l.v[4].raw_frame, 16);
    cr_expect_eq(l.v[4].frame, 18);
    gen_prompt_list_free(&l);
}

/* "at" values that land between latent frames, so each rounding rule gives a
 * different frame: video frame v = round(at * fps) (not truncated), latent
 * ceil(v / 4) (not floor, not round), then up to the chunk (not down). At 16 fps:
 * 0.3 s -> v 4.8 -> 5 (trunc 4) -> latent 2 (floor 1) -> chunk boundary 3;
 * 0.8125 s -> v 13 -> latent 4 (floor 3, round 3) -> 6 (down: 3);
 * 1.5 s -> v 24 -> latent 6 exactly -> 6 (ceil of an exact multiple stays);
 * 1.5625 s -> v 25 -> latent 7 (floor 6, round 6) -> 9. */
Test(live_prompts, at_rounding_rules_are_told_apart)
{
    gen_prompt_list l;
    int first = -1;
    sk_status st = parse("{\"prompt\": \"a\"}\n{\"at\": 0.3, \"prompt\": \"b\"}\n"
                         "{\"at\": 0.8125, \"prompt\": \"c\"}\n{\"at\": 1.5, \"prompt\": \"d\"}\n"
                         "{\"at\": 1.5625, \"prompt\": \"e\"}\n",
                         &l, &first);
    cr_assert_eq(st, SK_OK, "%s", sk_error_message());
    cr_assert_eq(l.n, 5);
    cr_expect_eq(l.v[1].raw_frame, 2, "0.3 s = video frame 4.8 -> 5 -> latent 2 (got %lld)",
                 (long long)l.v[1].raw_frame);
    cr_expect_eq(l.v[1].frame, 3, "latent 2 switches at the chunk boundary 3 (got %lld)",
                 (long long)l.v[1].frame);
    cr_expect_eq(l.v[2].raw_frame, 4, "0.8125 s = video frame 13 -> latent ceil(13/4) = 4 (got %lld)",
                 (long long)l.v[2].raw_frame);
    cr_expect_eq(l.v[2].frame, 6, "latent 4 rounds up to 6 (got %lld)", (long long)l.v[2].frame);
    cr_expect_eq(l.v[3].raw_frame, 6, "1.5 s = video frame 24 -> latent 6 (got %lld)",
                 (long long)l.v[3].raw_frame);
    cr_expect_eq(l.v[3].frame, 6, "latent 6 is a chunk boundary (got %lld)", (long long)l.v[3].frame);
    /* 1.5625 s = video frame 25 -> latent 7 -> 9 */
    cr_expect_eq(l.v[4].raw_frame, 7, "1.5625 s = video frame 25 -> latent 7 (got %lld)",
                 (long long)l.v[4].raw_frame);
    cr_expect_eq(l.v[4].frame, 9);
    gen_prompt_list_free(&l);
}

Test(live_prompts, first_line_with_a_time_is_a_switch)
{
    gen_prompt_list l;
    int first = -1;
    cr_assert_eq(parse("{\"frame\": 4, \"embeds\": \"e1\"}\n", &l, &first), SK_OK, "%s",
                 sk_error_message());
    cr_expect_eq(first, 0);
    cr_expect_eq(l.v[0].frame, 6);
    gen_prompt_list_free(&l);
    cr_assert_eq(parse("{\"frame\": 0, \"embeds\": \"e0\"}\n{\"frame\": 3, \"embeds\": \"e1\"}\n",
                       &l, &first), SK_OK);
    cr_expect_eq(first, 1, "frame 0 on the first line: the starting prompt");
    gen_prompt_list_free(&l);
}

Test(live_prompts, errors_name_the_line)
{
    static const struct { const char *text, *needle; } cases[] = {
        {"{\"prompt\": \"a\"}\n{\"prompt\": \"b\"}\n", "line 2: needs \"frame\""},
        {"\n# c\n{\"frame\": 3, \"embeds\": \"x\", \"colour\": 1}\n", "line 3: unknown key \"colour\""},
        {"{\"frame\": 3, \"at\": 1, \"embeds\": \"x\"}\n", "line 1: give \"frame\" or \"at\""},
        {"{\"frame\": 3}\n", "line 1: needs exactly one of"},
        {"{\"frame\": 3, \"embeds\": \"x\", \"prompt\": \"y\"}\n", "line 1: needs exactly one"},
        {"{\"frame\": 2.5, \"embeds\": \"x\"}\n", "line 1: \"frame\" must be an integer"},
        {"{\"frame\": -1, \"embeds\": \"x\"}\n", "line 1: \"frame\" must be an integer"},
        {"{\"at\": -1, \"embeds\": \"x\"}\n", "line 1: \"at\" must be"},
        {"{\"frame\": 30, \"embeds\": \"x\"}\n", "line 1: frame 30 is past the end"},
        {"{\"at\": 7.5, \"embeds\": \"x\"}\n", "past the end"},
        {"{\"prompt\": \"a\"}\n{\"frame\": 9, \"embeds\": \"x\"}\n{\"frame\": 6, \"embeds\": "
         "\"y\"}\n", "line 3: times must not decrease"},
        {"{\"prompt\": \"a\"\n", "line 1: not a JSON object"},
        {"[1, 2]\n", "line 1: not a JSON object"},
        {"{\"embeds\": \"\"}\n", "line 1: \"embeds\" is empty"},
        {"# nothing\n", "no prompt in the file"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        gen_prompt_list l;
        int first;
        sk_status st = parse(cases[i].text, &l, &first);
        cr_expect_eq(st, SK_E_FORMAT, "case %zu accepted: %s", i, cases[i].text);
        cr_expect(strstr(sk_error_message(), cases[i].needle) != NULL &&
                      strstr(sk_error_message(), "p.jsonl"),
                  "case %zu: '%s' lacks '%s'", i, sk_error_message(), cases[i].needle);
        gen_prompt_list_free(&l);
    }
}

Test(live_prompts, same_chunk_the_later_line_wins_unbounded_has_no_end)
{
    gen_prompt_list l;
    int first;
    memset(&l, 0, sizeof l);
    cr_assert_eq(gen_prompts_parse(file_with("q.jsonl", "{\"frame\": 4, \"embeds\": \"a\"}\n"
                                             "{\"frame\": 5, \"embeds\": \"b\"}\n"
                                             "{\"frame\": 100000, \"embeds\": \"c\"}\n"),
                                   0, 3, 16, &l, &first), SK_OK, "%s", sk_error_message());
    cr_assert_eq(l.n, 3);
    cr_expect(l.v[0].frame == 6 && l.v[1].frame == 6, "both at the chunk starting at 6");
    cr_expect_eq(l.v[2].frame, 100002);
    gen_prompt_list_free(&l);
}

/* ---- through the binary -------------------------------------------------- */

static const char *common(void)
{
    static char c[1024];
    snprintf(c, sizeof c, "--dit %sdit_tiny.safetensors --dit-config %sconfig.json --text-embeds "
             "%sembeds.safetensors --latent-height 8 --latent-width 8 --kv-window 9 --kv-sink 3 "
             "--seed 5", DIT_FIX, DIT_FIX, DIT_FIX);
    return c;
}

/* runs generate with extra args into latents `name`; returns the floats */
static float *gen(const char *extra, const char *name, size_t *n, char **log)
{
    char out[256], err[256], cmd[4096];
    snprintf(out, sizeof out, "%s/%s.safetensors", g_dir, name);
    snprintf(err, sizeof err, "%s/%s.log", g_dir, name);
    snprintf(cmd, sizeof cmd, "%s generate %s %s --latents-out %s", lu_bin(), common(), extra, out);
    int rc = lu_wait(lu_spawn(cmd, err, NULL), 120);
    char *e = lu_read(err);
    cr_assert_eq(rc, 0, "generate %s failed (%d): %s", extra, rc, e);
    sk_st_file *f;
    dt_ok(sk_st_open(out, &f), out);
    float *v = dt_read(f, "latents", n);
    sk_st_close(&f);
    if (log) *log = e;
    else free(e);
    return v;
}

/* The reference fixture of a switch at frame 10 (applied at 12), with the
 * starting prompt given as the file's first line instead of --embeds-key. */
Test(live_prompts, first_line_starting_prompt_reproduces_switch_fixture)
{
    char extra[600];
    snprintf(extra, sizeof extra, "--frames 15 --noise-file %snoise_sink.safetensors --prompts %s",
             DIT_FIX, file_with("s.jsonl", "{\"embeds\": \"context\"}\n"
                                            "{\"frame\": 10, \"embeds\": \"context.1\"}\n"));
    size_t n, m;
    float *got = gen(extra, "switch", &n, NULL);
    sk_st_file *f;
    dt_ok(sk_st_open(DIT_FIX "expected_switch.safetensors", &f), "expected");
    float *exp = dt_read(f, "latents", &m);
    sk_st_close(&f);
    cr_assert_eq(n, m);
    sk_compare_result r = sk_compare(got, exp, n, DIT_NMSE, DIT_ATOL, DIT_RTOL);
    cr_expect(r.ok, "switch fixture: nmse %g", r.nmse);
    free(got);
    free(exp);
}

Test(live_prompts, at_seconds_equals_the_frame_it_maps_to)
{
    char a[600], b[600];
    /* 2.0 s at 16 fps = video frame 32 = latent 8 -> the chunk at 9 */
    snprintf(a, sizeof a, "--frames 15 --prompts %s", file_with("a.jsonl",
             "{\"embeds\": \"context\"}\n{\"at\": 2.0, \"embeds\": \"context.1\"}\n"));
    snprintf(b, sizeof b, "--frames 15 --prompts %s", file_with("b.jsonl",
             "{\"embeds\": \"context\"}\n{\"frame\": 9, \"embeds\": \"context.1\"}\n"));
    size_t n, m;
    char *log;
    float *x = gen(a, "at", &n, &log), *y = gen(b, "frame", &m, NULL);
    cr_assert_eq(n, m);
    cr_expect(memcmp(x, y, n * sizeof *x) == 0, "at 2.0 != frame 9");
    cr_expect(strstr(log, "at latent frame 9"), "%s", log);
    free(x);
    free(y);
    free(log);
}

/* --recache off: the frames before the switch are the no-switch run's, the
 * ones after differ from the re-cached run's; --recache-sink re-encodes the
 * sink too (a switch at 12 with window 9: frames 3..11 plus sink 0..2). */
Test(live_prompts, recache_off_and_recache_sink)
{
    const char *sw = file_with("sw.jsonl", "{\"frame\": 12, \"embeds\": \"context.1\"}\n");
    char base[600], on[600], off[600], sink[600];
    snprintf(base, sizeof base, "--frames 15");
    snprintf(on, sizeof on, "--frames 15 --prompts %s", sw);
    snprintf(off, sizeof off, "--frames 15 --prompts %s --recache off", sw);
    snprintf(sink, sizeof sink, "--frames 15 --prompts %s --recache-sink", sw);
    size_t n;
    char *log_on, *log_off, *log_sink;
    float *b = gen(base, "base", &n, NULL), *a_on = gen(on, "on", &n, &log_on),
          *a_off = gen(off, "off", &n, &log_off), *a_sink = gen(sink, "sink", &n, &log_sink);
    const size_t pre = n / 15 * 12; /* frames 0..11 */
    cr_expect(memcmp(b, a_on, pre * 4) == 0 && memcmp(b, a_off, pre * 4) == 0 &&
                  memcmp(b, a_sink, pre * 4) == 0, "frames before the switch changed");
    cr_expect(memcmp(a_on + pre, a_off + pre, (n - pre) * 4) != 0, "recache off == on");
    cr_expect(memcmp(a_on + pre, a_sink + pre, (n - pre) * 4) != 0, "recache-sink == on");
    cr_expect(memcmp(b + pre, a_off + pre, (n - pre) * 4) != 0, "hard switch changed nothing");
    cr_expect(strstr(log_on, "recached frames 3..11"), "%s", log_on);
    cr_expect(strstr(log_off, "hard switch"), "%s", log_off);
    cr_expect(strstr(log_sink, "recached sink frames 0..2 and frames 3..11"), "%s", log_sink);
    free(b); free(a_on); free(a_off); free(a_sink);
    free(log_on); free(log_off); free(log_sink);
}

Test(live_prompts, cli_errors)
{
    struct { const char *extra, *needle; int rc; } cases[] = {
        {"--frames 6 --no-decode --embeds-key context --prompts %s", "drop --embeds-key", 1},
        {"--frames 6 --no-decode --prompts %s --recache off --recache-sink", "--recache-sink", 2},
        {"--seconds 0 --latents-out /tmp/x.safetensors", "--latents-out", 2},
        {"--frames 6 --no-decode --start-paused", "--start-paused", 2},
        {"--frames 6 --no-decode --control-port 0 --control-bind 0.0.0.0", "--control-token", 2},
        {"--frames 6 --no-decode --tee /tmp/x.mkv", "--tee", 2},
    };
    const char *pf = file_with("e.jsonl", "{\"embeds\": \"context\"}\n");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char extra[600], cmd[4096], err[256];
        snprintf(extra, sizeof extra, cases[i].extra, pf);
        snprintf(err, sizeof err, "%s/err%zu.log", g_dir, i);
        snprintf(cmd, sizeof cmd, "%s generate %s %s", lu_bin(), common(), extra);
        int rc = lu_wait(lu_spawn(cmd, err, NULL), 60);
        char *e = lu_read(err);
        cr_expect_eq(rc, cases[i].rc, "'%s': exit %d: %s", extra, rc, e);
        cr_expect(strstr(e, cases[i].needle), "'%s': stderr lacks '%s': %s", extra,
                  cases[i].needle, e);
        free(e);
    }
}
