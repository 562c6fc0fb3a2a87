/* test_convert.c - tools/convert_checkpoint.py and model directories, end to end.
 *
 * tests/reference/make_upstream_checkpoints.py writes tiny checkpoints in each
 * upstream layout into a temporary folder (Self-Forcing / Rolling Forcing trainer
 * dicts with EMA and FSDP names, a bare Reward Forcing state dict, LongLive base +
 * PEFT LoRA, Wan's umT5 .pth, a TAEHV .pth, broken files); the converter turns
 * them into model directories; `sinkstream generate --model DIR` must reproduce
 * the reference latents (relative L2 <= 1e-4) and `inspect DIR` must check them.
 *
 * Needs python3 with PyTorch and sentencepiece (Debian python3-torch,
 * python3-sentencepiece; tools/install_deps.sh installs them): the first python3 on
 * PATH that has them is used ($SK_PYTHON overrides).
 * Without one the tests FAIL (CI installs it; a skip would hide a broken setup).
 */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/compare.h"
#include "runtime/io/safetensors.h"

#define SRC SK_SOURCE_DIR
#define DIT_FIX SRC "/tests/fixtures/dit/"

static const char *bin(void)
{
    const char *b = getenv("SK_SINKSTREAM");
    cr_assert(b && *b, "SK_SINKSTREAM is not set (ctest sets it to the built binary)");
    return b;
}

/* The first python3 on PATH that has torch, numpy and sentencepiece. */
static const char *python(void)
{
    static char found[1024];
    if (found[0]) return found;
    const char *env = getenv("SK_PYTHON");
    if (env && *env) {
        snprintf(found, sizeof found, "%s", env);
        return found;
    }
    const char *path = getenv("PATH");
    char buf[8192];
    snprintf(buf, sizeof buf, "%s", path ? path : "/usr/bin:/bin");
    for (char *save = NULL, *d = strtok_r(buf, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
        char cand[1024], cmd[1400];
        snprintf(cand, sizeof cand, "%s/python3", *d ? d : ".");
        if (access(cand, X_OK) != 0) continue;
        /* find_spec: no import (importing torch takes seconds) */
        snprintf(cmd, sizeof cmd, "'%s' -c 'import importlib.util as u, sys; sys.exit(not "
                 "(u.find_spec(\"torch\") and u.find_spec(\"numpy\") and "
                 "u.find_spec(\"sentencepiece\")))' >/dev/null 2>&1", cand);
        if (system(cmd) == 0) {
            snprintf(found, sizeof found, "%s", cand);
            return found;
        }
    }
    cr_assert_fail("no python3 with PyTorch, numpy and sentencepiece on PATH (PATH=%s); the "
                   "converter tests need it: apt-get install python3-torch python3-sentencepiece "
                   "(tools/install_deps.sh does), or set SK_PYTHON",
            path ? path : "");
    return NULL;
}

/* Runs a shell command; *out gets its stdout+stderr (static buffer). Returns the exit code. */
static int sh(char **out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int sh(char **out, const char *fmt, ...)
{
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    char path[] = "/tmp/sk_conv_out_XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    close(fd);
    char full[8400];
    snprintf(full, sizeof full, "(%s) >%s 2>&1", cmd, path);
    int rc = system(full);
    static char buf[1 << 17];
    FILE *f = fopen(path, "rb");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    buf[n] = 0;
    if (f) fclose(f);
    unlink(path);
    if (out) *out = buf;
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

typedef struct {
    char dir[64];   /* the test's temporary folder */
    char up[128];   /* dir/up: the upstream-layout checkpoints */
} fixture;

typedef struct {
    int rc;
    char *out; /* what the converter printed (owned) */
} conv_result;

static void setup(fixture *fx)
{
    snprintf(fx->dir, sizeof fx->dir, "/tmp/sk_convert_XXXXXX");
    cr_assert_not_null(mkdtemp(fx->dir));
    snprintf(fx->up, sizeof fx->up, "%s/up", fx->dir);
}

/* One Python process (PyTorch imports once): writes the fixture groups into fx->up,
 * then runs the converter on each command line (after "convert_checkpoint.py"). */
static void batch(const fixture *fx, const char *groups, char **cases, int n, conv_result *res)
{
    cJSON *arr = cJSON_CreateArray();
    for (int i = 0; i < n; i++) cJSON_AddItemToArray(arr, cJSON_CreateString(cases[i]));
    char cp[256], op[256];
    snprintf(cp, sizeof cp, "%s/cases.json", fx->dir);
    snprintf(op, sizeof op, "%s/results.jsonl", fx->dir);
    char *js = cJSON_PrintUnformatted(arr);
    cJSON_Delete(arr);
    FILE *f = fopen(cp, "w");
    cr_assert_not_null(f);
    fputs(js, f);
    fclose(f);
    free(js);
    char *out;
    int rc = sh(&out, "'%s' %s/tests/reference/convert_batch.py --make %s --up %s %s >%s",
                python(), SRC, groups, fx->up, cp, op);
    cr_assert_eq(rc, 0, "convert_batch.py (fixtures %s) failed (%d):\n%s", groups, rc, out);
    f = fopen(op, "r");
    cr_assert_not_null(f);
    static char line[1 << 18];
    for (int i = 0; i < n; i++) {
        cr_assert_not_null(fgets(line, sizeof line, f), "convert_batch.py: no result for case %d", i);
        cJSON *j = cJSON_Parse(line);
        cr_assert_not_null(j, "convert_batch.py: bad line %s", line);
        res[i].rc = (int)cJSON_GetObjectItem(j, "rc")->valuedouble;
        res[i].out = strdup(cJSON_GetObjectItem(j, "out")->valuestring);
        cJSON_Delete(j);
        cr_log_info("convert_checkpoint.py %s -> %d", cases[i], res[i].rc);
    }
    fclose(f);
}

static void expect_ok(char **cases, const conv_result *res, int i)
{
    cr_assert_eq(res[i].rc, 0, "convert_checkpoint.py %s\nfailed (%d):\n%s", cases[i], res[i].rc,
                 res[i].out);
}

static void release(char **cases, conv_result *res, int n)
{
    for (int i = 0; i < n; i++) {
        free(cases[i]);
        free(res[i].out);
    }
}

static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static char *fmt(const char *f, ...)
{
    char buf[4096];
    va_list ap;
    va_start(ap, f);
    vsnprintf(buf, sizeof buf, f, ap);
    va_end(ap);
    char *s = strdup(buf);
    cr_assert_not_null(s);
    return s;
}

static void cleanup(fixture *fx)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fx->dir);
    cr_expect_eq(system(cmd), 0);
}

static float *read_tensor(const char *path, const char *name, size_t *n)
{
    sk_st_file *f = NULL;
    cr_assert_eq(sk_st_open(path, &f), SK_OK, "%s: %s", path, sk_error_message());
    const sk_st_tensor *t = sk_st_find(f, name);
    cr_assert(t, "'%s' has no '%s'", path, name);
    float *p = NULL;
    cr_assert_eq(sk_st_read_f32(f, name, 0, NULL, &p, NULL), SK_OK, "%s", sk_error_message());
    *n = 1;
    for (int i = 0; i < t->ndim; i++) *n *= (size_t)t->shape[i];
    sk_st_close(&f);
    return p;
}

/* relative L2 error of got vs ref */
static double rel_err(const char *got, const char *ref)
{
    size_t n, m;
    float *a = read_tensor(got, "latents", &n), *b = read_tensor(ref, "latents", &m);
    cr_assert_eq(n, m, "%s has %zu values, %s %zu", got, n, ref, m);
    sk_compare_result r = sk_compare(a, b, n, 1e-8, 1e-5, 1e-2);
    char buf[512];
    sk_compare_format(&r, a, b, buf, sizeof buf);
    cr_log_info("%s vs %s: %s", got, ref, buf);
    free(a);
    free(b);
    return sqrt(r.nmse);
}

/* generate --model DIR on the tiny 8x8 latents, prompt from embeds or flags in extra. */
static void gen(const char *model, const char *extra, const char *latents_out)
{
    char *out;
    int rc = sh(&out, "%s generate --model %s --latent-height 8 --latent-width 8 --device cpu "
                "--no-decode --latents-out %s %s", bin(), model, latents_out, extra);
    cr_assert_eq(rc, 0, "generate --model %s %s failed (%d):\n%s", model, extra, rc, out);
}

#define SINK_RUN "--kv-policy sink --kv-window 9 --kv-sink 3 --frames 15"
#define EMBEDS "--text-embeds " DIT_FIX "embeds.safetensors"

static cJSON *read_json(const char *path)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    cJSON *j = cJSON_Parse(buf);
    cr_assert_not_null(j, "%s is not JSON", path);
    return j;
}

static const char *jstr(const cJSON *o, const char *a, const char *b)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, a);
    if (b) x = cJSON_GetObjectItemCaseSensitive(x, b);
    return cJSON_IsString(x) ? x->valuestring : "";
}

static double jnum(const cJSON *o, const char *a, const char *b)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, a);
    if (b) x = cJSON_GetObjectItemCaseSensitive(x, b);
    return cJSON_IsNumber(x) ? x->valuedouble : NAN;
}

static int file_exists(const char *dir, const char *name)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    struct stat sb;
    return stat(p, &sb) == 0;
}

/* Every tensor of the converted DiT in dtype dt; metadata key `weights` = which. */
static void expect_dit_file(const char *model, sk_dtype dt, const char *which)
{
    char p[512];
    snprintf(p, sizeof p, "%s/dit.safetensors", model);
    sk_st_file *f = NULL;
    cr_assert_eq(sk_st_open(p, &f), SK_OK, "%s", sk_error_message());
    cr_expect_eq(f->n_tensors, 69, "tiny DiT has 69 tensors, got %d", f->n_tensors);
    for (int i = 0; i < f->n_tensors; i++) {
        cr_expect_eq(f->tensors[i].dtype, dt, "'%s' dtype", f->tensors[i].name);
        cr_expect(strncmp(f->tensors[i].name, "model.", 6) && !strstr(f->tensors[i].name, "_fsdp"),
                  "'%s' is not a canonical name", f->tensors[i].name);
    }
    cr_expect(sk_st_meta(f, "config") != NULL, "no config metadata");
    const char *w = sk_st_meta(f, "weights");
    cr_expect(w && !strcmp(w, which), "weights '%s', expected '%s'", w ? w : "", which);
    sk_st_close(&f);
}

/* ------------------------------------------------------------------ tests */

/* Self-Forcing: trainer dict, EMA generator picked by default (FSDP names inside),
 * bf16 cast (lossless for these weights), reproduces the sink and fifo references;
 * the non-EMA generator gives other latents; model.json's defaults are applied. */
Test(convert, self_forcing)
{
    fixture fx;
    setup(&fx);
    char m[256], m2[256], lat[256], lat2[256], *out;
    snprintf(m, sizeof m, "%s/sf", fx.dir);
    snprintf(m2, sizeof m2, "%s/sf_noema", fx.dir);
    char m3[256];
    snprintf(m3, sizeof m3, "%s/sf_st", fx.dir);
    char *cases[] = {
        fmt("--dit %s/sf/self_forcing_dmd.pt --dit-config %sconfig.json --out %s", fx.up, DIT_FIX, m),
        fmt("--dit %s/sf/self_forcing_dmd.pt --dit-config %sconfig.json --no-ema --out %s", fx.up,
            DIT_FIX, m2),
        /* a safetensors DiT with 'model.' names and no config metadata */
        fmt("--dit %sdit_tiny_prefixed.safetensors --family self-forcing --dit-config %sconfig.json "
            "--out %s", DIT_FIX, DIT_FIX, m3),
    };
    conv_result res[3];
    batch(&fx, "sf", cases, 3, res);
    expect_ok(cases, res, 0);
    expect_ok(cases, res, 1);
    expect_ok(cases, res, 2);
    cr_expect(strstr(res[0].out, "family self-forcing"), "%s", res[0].out);
    expect_dit_file(m, SK_DTYPE_BF16, "generator_ema");
    expect_dit_file(m2, SK_DTYPE_BF16, "generator");
    char jp[300];
    snprintf(jp, sizeof jp, "%s/model.json", m);
    cJSON *j = read_json(jp);
    cr_expect_str_eq(jstr(j, "family", NULL), "self-forcing");
    cr_expect_str_eq(jstr(j, "generate", "kv-policy"), "fifo");
    cr_expect_eq(jnum(j, "generate", "kv-window"), 21);
    cr_expect_eq(jnum(j, "generate", "frames"), 21);
    cJSON_Delete(j);

    snprintf(lat, sizeof lat, "%s/lat_sink.safetensors", fx.dir);
    gen(m, EMBEDS " --noise-file " DIT_FIX "noise_sink.safetensors " SINK_RUN, lat);
    cr_expect_leq(rel_err(lat, DIT_FIX "expected_sink.safetensors"), 1e-4);
    gen(m, EMBEDS " --noise-file " DIT_FIX "noise_fifo.safetensors --kv-policy fifo --kv-window 6 "
           "--kv-sink 0 --frames 6", lat);
    cr_expect_leq(rel_err(lat, DIT_FIX "expected_fifo.safetensors"), 1e-4);

    gen(m3, EMBEDS " --noise-file " DIT_FIX "noise_sink.safetensors " SINK_RUN, lat);
    cr_expect_leq(rel_err(lat, DIT_FIX "expected_sink.safetensors"), 1e-4);

    /* --no-ema: the 'generator' weights, not the reference */
    gen(m2, EMBEDS " --noise-file " DIT_FIX "noise_sink.safetensors " SINK_RUN, lat);
    cr_expect_gt(rel_err(lat, DIT_FIX "expected_sink.safetensors"), 1e-2,
                 "--no-ema gave the EMA weights");

    /* model.json defaults (fifo, window 21, 21 frames) == the same run spelled out */
    snprintf(lat2, sizeof lat2, "%s/lat_flags.safetensors", fx.dir);
    gen(m, EMBEDS " --seed 5", lat);
    int rc = sh(&out, "%s generate --dit %s/dit.safetensors --latent-height 8 --latent-width 8 "
                "--no-decode --latents-out %s " EMBEDS " --seed 5 --kv-policy fifo --kv-window 21 "
                "--kv-sink 0 --frames 21", bin(), m, lat2);
    cr_assert_eq(rc, 0, "%s", out);
    cr_expect_eq(rel_err(lat, lat2), 0.0, "model.json defaults differ from the flags they name");
    release(cases, res, 3);
    cleanup(&fx);
}

/* LongLive: base + PEFT LoRA merged (f32), reproduces the torch-merged reference;
 * the base alone does not; model.json has LongLive's sink 3 + window 12. */
Test(convert, longlive_lora)
{
    fixture fx;
    setup(&fx);
    char m[256], mb[256], lat[256], exp[256], ext[512];
    snprintf(m, sizeof m, "%s/ll", fx.dir);
    snprintf(mb, sizeof mb, "%s/ll_base", fx.dir);
    char *cases[] = {
        fmt("--dit %s/ll/longlive_base.pt --lora %s/ll/lora.pt --dit-config %sconfig.json "
            "--dtype f32 --out %s", fx.up, fx.up, DIT_FIX, m),
        /* the base alone, as a plain generator */
        fmt("--dit %s/ll/longlive_base.pt --family self-forcing --dit-config %sconfig.json "
            "--dtype f32 --out %s", fx.up, DIT_FIX, mb),
    };
    conv_result res[2];
    batch(&fx, "ll", cases, 2, res);
    expect_ok(cases, res, 0);
    expect_ok(cases, res, 1);
    cr_expect(strstr(res[0].out, "merged 20 LoRA pairs (rank [4]"), "%s", res[0].out);
    expect_dit_file(m, SK_DTYPE_F32, "generator");
    char jp[300];
    snprintf(jp, sizeof jp, "%s/model.json", m);
    cJSON *j = read_json(jp);
    cr_expect_str_eq(jstr(j, "family", NULL), "longlive");
    cr_expect_str_eq(jstr(j, "generate", "kv-policy"), "sink");
    cr_expect_eq(jnum(j, "generate", "kv-window"), 12);
    cr_expect_eq(jnum(j, "generate", "kv-sink"), 3);
    cr_expect_eq(jnum(j, "generate", "frames"), 120);
    cr_expect_eq(cJSON_GetArraySize(cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(
                     j, "dit"), "lora"), "targets")), 10, "10 LoRA targets per block");
    cJSON_Delete(j);
    snprintf(lat, sizeof lat, "%s/lat.safetensors", fx.dir);
    snprintf(exp, sizeof exp, "%s/ll/expected.safetensors", fx.up);
    snprintf(ext, sizeof ext, EMBEDS " --noise-file %s/ll/noise.safetensors " SINK_RUN, fx.up);
    gen(m, ext, lat);
    cr_expect_leq(rel_err(lat, exp), 1e-4);
    gen(mb, ext, lat);
    cr_expect_gt(rel_err(lat, exp), 1e-2, "the LoRA made no difference");
    release(cases, res, 2);
    cleanup(&fx);
}

/* LongLive 2.0 (Wan2.2-TI2V-5B code paths, 48 channels): merged bf16 (model_bf16.pt),
 * model_te.pt (plain merged bf16 of the NVFP4-trained models) and base + PEFT LoRA each
 * reproduce the PyTorch reference of tests/fixtures/longlive2 through `generate --model`
 * (UniPC, multishot, two cuts); model.json carries LongLive 2.0's defaults; the packed
 * NVFP4 model_4o6.pt is refused with a message that names the bf16 files. */
#define LL2_FIX SRC "/tests/fixtures/longlive2/"
Test(convert, longlive2_layouts)
{
    fixture fx;
    setup(&fx);
    char m[3][256], m4[256], lat[256], jp[300], *out;
    const char *names[3] = {"bf16", "te", "lora"};
    for (int i = 0; i < 3; i++) snprintf(m[i], sizeof m[i], "%s/ll2_%s", fx.dir, names[i]);
    snprintf(m4, sizeof m4, "%s/ll2_4o6", fx.dir);
    char *cases[] = {
        fmt("--dit %s/ll2/model_bf16.pt --dit-config %sconfig.json --out %s", fx.up, LL2_FIX, m[0]),
        fmt("--dit %s/ll2/model_te.pt --dit-config %sconfig.json --out %s", fx.up, LL2_FIX, m[1]),
        /* family from the 48 channels (a --lora alone would say LongLive 1.0) */
        fmt("--dit %s/ll2/base.pt --lora %s/ll2/lora.pt --dit-config %sconfig.json --dtype f32 "
            "--out %s", fx.up, fx.up, LL2_FIX, m[2]),
        fmt("--dit %s/ll2/model_4o6.pt --dit-config %sconfig.json --out %s", fx.up, LL2_FIX, m4),
    };
    conv_result res[4];
    batch(&fx, "ll2", cases, 4, res);
    for (int i = 0; i < 3; i++) {
        expect_ok(cases, res, i);
        cr_expect(strstr(res[i].out, "family longlive2"), "%s", res[i].out);
    }
    cr_expect(strstr(res[0].out, "longlive_generator_merged_lora"), "%s", res[0].out);
    cr_expect(strstr(res[1].out, "longlive_generator_merged_bf16"), "%s", res[1].out);
    cr_expect(strstr(res[2].out, "merged 20 LoRA pairs"), "%s", res[2].out);
    cr_expect_eq(res[3].rc, 1, "model_4o6.pt was not refused: %s", res[3].out);
    cr_expect(strstr(res[3].out, "NVFP4") && strstr(res[3].out, "model_te.pt") &&
              strstr(res[3].out, "model_bf16.pt"), "%s", res[3].out);
    cr_expect(!file_exists(m4, "dit.safetensors"), "a refused conversion left files");

    snprintf(jp, sizeof jp, "%s/model.json", m[0]);
    cJSON *j = read_json(jp);
    cr_expect_str_eq(jstr(j, "family", NULL), "longlive2");
    cr_expect_str_eq(jstr(j, "generate", "sampler"), "unipc");
    cr_expect_str_eq(jstr(j, "generate", "kv-policy"), "multishot");
    cr_expect_str_eq(jstr(j, "generate", "recache"), "off");
    cr_expect_str_eq(jstr(cJSON_GetObjectItem(j, "dit"), "config", "model_type"), "ti2v");
    const struct { const char *k; double v; } want[] = {
        {"height", 704}, {"width", 1280}, {"fps", 24}, {"chunk", 8}, {"num-steps", 4},
        {"shift", 5}, {"kv-sink", 8}, {"kv-window", 32}, {"shot-rope-offset", 8}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        cr_expect_eq(jnum(j, "generate", want[i].k), want[i].v, "generate.%s", want[i].k);
    cJSON_Delete(j);

    snprintf(lat, sizeof lat, "%s/ll2_lat.safetensors", fx.dir);
    for (int i = 0; i < 3; i++) {
        /* model.json's defaults with the tiny geometry of the reference */
        int rc = sh(&out, "%s generate --model %s --device cpu --text-embeds %sembeds.safetensors "
                    "--prompts %sschedule.jsonl --noise-file %snoise.safetensors --latents-out %s "
                    "--frames 20 --latent-height 4 --latent-width 6 --chunk 2 --kv-sink 2 "
                    "--kv-window 8 --no-decode", bin(), m[i], LL2_FIX, LL2_FIX, LL2_FIX, lat);
        cr_assert_eq(rc, 0, "generate --model %s failed (%d):\n%s", m[i], rc, out);
        cr_expect(strstr(out, "UniPC 4 steps") && strstr(out, "KV multishot"), "%s", out);
        cr_expect_leq(rel_err(lat, LL2_FIX "expected_unipc4.safetensors"), 1e-4, "%s", names[i]);
    }
    release(cases, res, 4);
    cleanup(&fx);
}

/* Reward Forcing (bare state dict, bf16) and Rolling Forcing (trainer dict, EMA):
 * the family comes from the file name; both reproduce the references. Reward
 * Forcing's EMA sink falls back to the plain sink while this build lacks it. */
Test(convert, reward_and_rolling_forcing)
{
    fixture fx;
    setup(&fx);
    char m[256], mr[256], lat[256], jp[300], *out;
    snprintf(m, sizeof m, "%s/rf", fx.dir);
    snprintf(mr, sizeof mr, "%s/rolling", fx.dir);
    char *cases[] = {
        fmt("--dit %s/rf/rewardforcing.pt --dit-config %sconfig.json --out %s", fx.up, DIT_FIX, m),
        fmt("--dit %s/rolling/rolling_forcing_dmd.pt --dit-config %sconfig.json --out %s", fx.up,
            DIT_FIX, mr),
    };
    conv_result res[2];
    batch(&fx, "rf,rolling", cases, 2, res);
    expect_ok(cases, res, 0);
    expect_ok(cases, res, 1);
    expect_dit_file(m, SK_DTYPE_BF16, "(state dict)");
    snprintf(jp, sizeof jp, "%s/model.json", m);
    cJSON *j = read_json(jp);
    cr_expect_str_eq(jstr(j, "family", NULL), "reward-forcing");
    cr_expect_str_eq(jstr(j, "generate", "kv-policy"), "ema");
    cr_expect_str_eq(jstr(j, "fallback", "kv-policy"), "sink");
    cr_expect_eq(jnum(j, "generate", "kv-window"), 9);
    cJSON_Delete(j);
    snprintf(lat, sizeof lat, "%s/lat.safetensors", fx.dir);
    gen(m, EMBEDS " --noise-file " DIT_FIX "noise_sink.safetensors " SINK_RUN, lat);
    cr_expect_leq(rel_err(lat, DIT_FIX "expected_sink.safetensors"), 1e-4);
    /* its own defaults run (ema, or the sink fallback with a warning) */
    int rc = sh(&out, "%s generate --model %s " EMBEDS " --latent-height 8 --latent-width 8 "
                "--frames 6 --no-decode", bin(), m);
    cr_expect_eq(rc, 0, "%s", out);
    cr_expect(strstr(out, "KV ema") || (strstr(out, "using 'sink' instead") && strstr(out, "KV sink")),
              "neither the EMA sink nor the announced fallback:\n%s", out);

    expect_dit_file(mr, SK_DTYPE_BF16, "generator_ema");
    snprintf(jp, sizeof jp, "%s/model.json", mr);
    j = read_json(jp);
    cr_expect_str_eq(jstr(j, "family", NULL), "rolling-forcing");
    cJSON_Delete(j);
    j = read_json(jp);
    cr_expect_str_eq(jstr(j, "generate", "kv-policy"), "rolling");
    cr_expect_eq(cJSON_GetArraySize(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "generate"), "steps")),
                 5, "Rolling Forcing samples with 5 steps");
    cJSON_Delete(j);
    /* the reference is a Self-Forcing-style fifo run: flags replace model.json's rolling setup */
    gen(mr, EMBEDS " --noise-file " DIT_FIX "noise_fifo.safetensors --kv-policy fifo --kv-window 6 "
            "--kv-sink 0 --frames 6 --steps 1000,750,500,250", lat);
    cr_expect_leq(rel_err(lat, DIT_FIX "expected_fifo.safetensors"), 1e-4);
    release(cases, res, 2);
    cleanup(&fx);
}

/* Wan's umT5 .pth + the google/umt5-xxl folder: generate --model DIR --prompt
 * reproduces the reference (the prompt's umT5 context through the tiny DiT). */
Test(convert, prompt_through_text_encoder)
{
    fixture fx;
    setup(&fx);
    char m[256], lat[256], exp[256], ext[1024], prompt[256] = "";
    snprintf(m, sizeof m, "%s/txt", fx.dir);
    char *cases[] = {fmt("--dit %s/sf/self_forcing_dmd.pt --dit-config %sconfig.json "
                         "--text-encoder %s/text/umt5_tiny_enc.pth --tokenizer "
                         "%s/text/google/umt5-xxl --dtype f32 --out %s",
                         fx.up, DIT_FIX, fx.up, fx.up, m)};
    conv_result res[1];
    batch(&fx, "sf,text", cases, 1, res);
    expect_ok(cases, res, 0);
    cr_expect(file_exists(m, "text_encoder.safetensors") && file_exists(m, "tokenizer/spiece.model"));
    char pp[300];
    snprintf(pp, sizeof pp, "%s/text/prompt.txt", fx.up);
    FILE *f = fopen(pp, "r");
    cr_assert_not_null(f);
    cr_assert_not_null(fgets(prompt, sizeof prompt, f));
    fclose(f);
    snprintf(lat, sizeof lat, "%s/lat.safetensors", fx.dir);
    snprintf(exp, sizeof exp, "%s/text/expected.safetensors", fx.up);
    snprintf(ext, sizeof ext, "--prompt '%s' --noise-file %s/text/noise.safetensors " SINK_RUN,
             prompt, fx.up);
    gen(m, ext, lat);
    cr_expect_leq(rel_err(lat, exp), 1e-4);
    release(cases, res, 1);
    cleanup(&fx);
}

/* The whole path on tiny models: converter (16-channel DiT, umT5, tokenizer,
 * TAEHV .pth) -> inspect -> generate --model DIR --prompt "a cat surfing" -o
 * out.mp4, checked with ffprobe; the TAEHV tensors are the fixture's, bit for bit,
 * and decode with them matches the TAEHV reference frames. */
Test(convert, prompt_to_mp4)
{
    fixture fx;
    setup(&fx);
    char m[256], mp4[256], *out;
    snprintf(m, sizeof m, "%s/demo", fx.dir);
    char *cases[] = {fmt("--dit %s/demo/self_forcing_dmd.pt --dit-config %s/demo/config.json "
                         "--text-encoder %s/text/umt5_tiny_enc.pth --tokenizer "
                         "%s/text/google/umt5-xxl --vae %s/vae/taew2_1.pth --set height=64 "
                         "--set width=96 --set frames=6 --out %s",
                         fx.up, fx.up, fx.up, fx.up, fx.up, m)};
    conv_result res[1];
    batch(&fx, "demo,text", cases, 1, res);
    expect_ok(cases, res, 0);
    int rc = sh(&out, "%s inspect %s", bin(), m);
    cr_expect_eq(rc, 0, "inspect %s:\n%s", m, out);
    cr_expect(strstr(out, "result: ok (0 problems"), "%s", out);

    snprintf(mp4, sizeof mp4, "%s/out.mp4", fx.dir);
    rc = sh(&out, "%s generate --model %s --prompt \"a cat surfing\" -o %s", bin(), m, mp4);
    if (rc != 0 && strstr(out, "no FFmpeg")) cr_skip_test("this build has no FFmpeg: %s", out);
    cr_assert_eq(rc, 0, "generate --model --prompt -o failed (%d):\n%s", rc, out);
    rc = sh(&out, "ffprobe -v error -count_frames -select_streams v:0 -show_entries "
            "stream=codec_name,width,height,nb_read_frames -of default=nw=1 %s", mp4);
    cr_assert_eq(rc, 0, "ffprobe: %s", out);
    cr_expect(strstr(out, "codec_name=h264") && strstr(out, "width=96") && strstr(out, "height=64") &&
                  strstr(out, "nb_read_frames=21"),
              "ffprobe says:\n%s", out);

    /* TAEHV: converted tensors == the fixture's, and decoding matches the reference */
    char vp[300];
    snprintf(vp, sizeof vp, "%s/vae.safetensors", m);
    sk_st_file *a = NULL, *b = NULL;
    cr_assert_eq(sk_st_open(vp, &a), SK_OK, "%s", sk_error_message());
    cr_assert_eq(sk_st_open(SRC "/tests/fixtures/taehv/taehv_tiny_21.safetensors", &b), SK_OK);
    cr_expect_eq(a->n_tensors, b->n_tensors);
    for (int i = 0; i < b->n_tensors; i++) {
        const sk_st_tensor *tb = &b->tensors[i], *ta = sk_st_find(a, tb->name);
        cr_assert(ta, "vae.safetensors lacks '%s'", tb->name);
        cr_expect(ta->dtype == tb->dtype && ta->nbytes == tb->nbytes &&
                      !memcmp(ta->data, tb->data, tb->nbytes),
                  "'%s' differs from the fixture", tb->name);
    }
    sk_st_close(&a);
    sk_st_close(&b);
    char rgb[256];
    snprintf(rgb, sizeof rgb, "%s/rgb.safetensors", fx.dir);
    const char *dec = SRC "/tests/fixtures/taehv/taehv_tiny_21_decode.safetensors";
    rc = sh(&out, "%s decode --vae %s --latents %s --rgb-out %s", bin(), vp, dec, rgb);
    cr_assert_eq(rc, 0, "decode: %s", out);
    size_t ng = 0, nr = 0;
    float *fg = read_tensor(rgb, "frames", &ng), *fr = read_tensor(dec, "frames", &nr);
    cr_assert_eq(ng, nr);
    sk_compare_result cmp = sk_compare(fg, fr, ng, 1e-8, 1e-4, 1e-4);
    char buf[512];
    sk_compare_format(&cmp, fg, fr, buf, sizeof buf);
    cr_expect(cmp.ok, "decode with the converted TAEHV: %s", buf);
    free(fg);
    free(fr);
    release(cases, res, 1);
    cleanup(&fx);
}

typedef struct {
    const char *args;   /* %s (up to 3) = upstream folder */
    const char *expect; /* substring of the message */
    int rc;
} bad_case;

/* Broken or mismatched inputs: refused with a message that says what is wrong,
 * and nothing (no half-written file) is left in the output folder. */
Test(convert, broken_inputs_are_refused)
{
    static const bad_case cases[] = {
        {"--dit %s/broken/truncated.pt", "truncated or corrupt", 1},
        {"--dit %s/broken/garbage.pt", "not a PyTorch checkpoint", 1},
        {"--dit %s/broken/unknown_key.pt", "unexpected tensors (first: blocks.0.self_attn.extra_gate", 1},
        {"--dit %s/broken/nan.pt", "tensor 'blocks.1.ffn.0.bias' holds NaN or Inf", 1},
        {"--dit %s/ll/longlive_base.pt --lora %s/broken/lora_extra_blocks.pt",
         "which the base checkpoint does not have", 1},
        {"--dit %s/ll/longlive_base.pt --lora %s/broken/lora_half.pt", "has lora_A without its lora_B", 1},
        {"--dit %s/ll/longlive_base.pt", "pass --lora lora.pt", 1},
        {"--dit %s/rf/rewardforcing.pt --family self-forcing", "wrong file or wrong --family", 1},
        {"--dit %s/rf/rewardforcing.pt --ema", "no EMA copy", 1},
        {"--dit %s/vae/taew2_1.pth", "looks like a TAEHV tiny VAE (pass it with --vae)", 1},
        {"--dit %s/ll/lora.pt", "is a LoRA adapter file", 1},
        {"--dit %s/sf/self_forcing_dmd.pt --vae %s/text/umt5_tiny_enc.pth",
         "looks like a umT5 text encoder", 1},
        {"--dit %s/sf/self_forcing_dmd.pt --vae " SRC "/tests/fixtures/taehv/taehv_tiny_21.safetensors",
         "decodes 16-channel latents but the DiT makes 4", 1},
        {"--dit %s/sf/self_forcing_dmd.pt --text-encoder %s/broken/umt5_dim32.safetensors "
         "--tokenizer %s/text/google/umt5-xxl", "outputs dim 32 but the DiT takes text_dim 64", 1},
        {"--dit %s/sf/self_forcing_dmd.pt --text-encoder %s/broken/umt5_vocab128.safetensors "
         "--tokenizer %s/text/google/umt5-xxl", "wrong tokenizer", 1},
        {"--dit %s/sf/no_such.pt", "no such file", 1},
        {"--dit %s/sf/self_forcing_dmd.pt --text-encoder %s/text/umt5_tiny_enc.pth",
         "needs --tokenizer", 2},
        {"--dit %s/sf/self_forcing_dmd.pt --set frames", "expected OPTION=VALUE", 2},
    };
    enum { N = sizeof cases / sizeof cases[0] };
    fixture fx;
    setup(&fx);
    char m[256];
    snprintf(m, sizeof m, "%s/out", fx.dir);
    char *args[N];
    for (int i = 0; i < N; i++) {
        char a[1024];
        snprintf(a, sizeof a, cases[i].args, fx.up, fx.up, fx.up);
        args[i] = fmt("%s --dit-config %sconfig.json --out %s", a, DIT_FIX, m);
    }
    conv_result res[N];
    batch(&fx, "sf,ll,rf,text,broken", args, N, res);
    for (int i = 0; i < N; i++) {
        cr_expect_eq(res[i].rc, cases[i].rc, "case %d (%s): exit %d, expected %d:\n%s", i, args[i],
                     res[i].rc, cases[i].rc, res[i].out);
        cr_expect(strstr(res[i].out, cases[i].expect) != NULL, "case %d (%s): no '%s' in:\n%s", i,
                  args[i], cases[i].expect, res[i].out);
    }
    struct stat sb;
    cr_expect(stat(m, &sb) != 0, "a refused conversion left the output folder %s behind", m);
    release(args, res, N);
    cleanup(&fx);
}

/* Writes text to dir/name. */
static void put(const char *dir, const char *name, const char *text)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
}

static void copy(const char *from, const char *dir, const char *name)
{
    char *out;
    cr_assert_eq(sh(&out, "cp '%s' '%s/%s'", from, dir, name), 0, "%s", out);
}

/* inspect DIR: a good model directory passes (text and --json); each kind of
 * mismatch is reported and exits 1; generate --model refuses broken ones. */
Test(convert, inspect_model_dir)
{
    fixture fx;
    setup(&fx);
    char m[256], *out;
    snprintf(m, sizeof m, "%s/txt", fx.dir);
    char *cases[] = {fmt("--dit %s/sf/self_forcing_dmd.pt --dit-config %sconfig.json "
                         "--text-encoder %s/text/umt5_tiny_enc.pth --tokenizer "
                         "%s/text/google/umt5-xxl --out %s", fx.up, DIT_FIX, fx.up, fx.up, m)};
    conv_result res[1];
    batch(&fx, "sf,text,broken", cases, 1, res);
    expect_ok(cases, res, 0);
    int rc = sh(&out, "%s inspect %s", bin(), m);
    cr_expect_eq(rc, 0, "%s", out);
    cr_expect(strstr(out, "DiT text_dim 64 == text encoder dim 64"), "%s", out);
    cr_expect(strstr(out, "no VAE in the model"), "%s", out);
    cr_expect(strstr(out, "result: ok (0 problems"), "%s", out);
    rc = sh(&out, "%s inspect --json %s 2>/dev/null", bin(), m);
    cr_expect_eq(rc, 0);
    cJSON *j = cJSON_Parse(out);
    cr_assert_not_null(j, "--json output is not JSON: %s", out);
    cr_expect(cJSON_IsTrue(cJSON_GetObjectItem(j, "ok")));
    cr_expect_str_eq(jstr(j, "family", NULL), "self-forcing");
    cJSON_Delete(j);

    /* encoder of another width */
    char te[300], keep[300], src[300];
    snprintf(te, sizeof te, "%s/text_encoder.safetensors", m);
    snprintf(keep, sizeof keep, "%s/te_keep.safetensors", fx.dir);
    copy(te, fx.dir, "te_keep.safetensors");
    snprintf(src, sizeof src, "%s/broken/umt5_dim32.safetensors", fx.up);
    copy(src, m, "text_encoder.safetensors");
    rc = sh(&out, "%s inspect %s", bin(), m);
    cr_expect_eq(rc, 1, "%s", out);
    cr_expect(strstr(out, "PROBLEM DiT text_dim 64 != text encoder dim 32"), "%s", out);
    /* a tokenizer bigger than the encoder's vocabulary */
    snprintf(src, sizeof src, "%s/broken/umt5_vocab128.safetensors", fx.up);
    copy(src, m, "text_encoder.safetensors");
    rc = sh(&out, "%s inspect %s", bin(), m);
    cr_expect_eq(rc, 1, "%s", out);
    cr_expect(strstr(out, "do NOT fit in the encoder vocabulary 128"), "%s", out);
    copy(keep, m, "text_encoder.safetensors");

    /* a VAE of the wrong latent width (the tiny DiT makes 4 channels) */
    copy(SRC "/tests/fixtures/taehv/taehv_tiny_21.safetensors", m, "vae.safetensors");
    char jp[300];
    snprintf(jp, sizeof jp, "%s/model.json", m);
    j = read_json(jp);
    cJSON_AddStringToObject(cJSON_GetObjectItem(j, "files"), "vae", "vae.safetensors");
    char *s = cJSON_Print(j);
    put(m, "model.json", s);
    free(s);
    rc = sh(&out, "%s inspect %s", bin(), m);
    cr_expect_eq(rc, 1, "%s", out);
    cr_expect(strstr(out, "VAE latent channels 16 != DiT in/out channels 4/4"), "%s", out);

    /* a listed file that is missing */
    cr_assert_eq(unlink(te), 0);
    rc = sh(&out, "%s inspect %s", bin(), m);
    cr_expect_eq(rc, 1, "%s", out);
    cr_expect(strstr(out, "files.text_encoder = 'text_encoder.safetensors', but"), "%s", out);
    rc = sh(&out, "%s generate --model %s --prompt x --no-decode", bin(), m);
    cr_expect_eq(rc, 2, "%s", out);
    cr_expect(strstr(out, "--model:") && strstr(out, "is missing"), "%s", out);

    /* model.json itself broken */
    cJSON_ReplaceItemInObject(j, "family", cJSON_CreateString("sora"));
    s = cJSON_Print(j);
    put(m, "model.json", s);
    free(s);
    cJSON_Delete(j);
    rc = sh(&out, "%s inspect %s", bin(), m);
    cr_expect_eq(rc, 1, "%s", out);
    cr_expect(strstr(out, "\"family\" is 'sora'"), "%s", out);
    put(m, "model.json", "{\"format\": \"sinkstream-model\", ");
    rc = sh(&out, "%s generate --model %s --prompt x --no-decode", bin(), m);
    cr_expect_eq(rc, 2, "%s", out);
    cr_expect(strstr(out, "not a JSON object"), "%s", out);
    /* not a model directory at all */
    rc = sh(&out, "%s generate --model %s/sf --prompt x --no-decode", bin(), fx.up);
    cr_expect_eq(rc, 2, "%s", out);
    cr_expect(strstr(out, "has no model.json"), "%s", out);
    release(cases, res, 1);
    cleanup(&fx);
}

/* Flags win over model.json, and an unknown model.json option is only a warning. */
Test(convert, flags_override_model_json)
{
    fixture fx;
    setup(&fx);
    char m[256], lat[256], lat2[256], *out;
    snprintf(m, sizeof m, "%s/sf", fx.dir);
    char *cases[] = {fmt("--dit %s/sf/self_forcing_dmd.pt --dit-config %sconfig.json --set frames=9 "
                         "--set kv-policy=sink --set kv-window=6 --set kv-sink=3 "
                         "--set future-option=7 --out %s", fx.up, DIT_FIX, m)};
    conv_result res[1];
    batch(&fx, "sf", cases, 1, res);
    expect_ok(cases, res, 0);
    snprintf(lat, sizeof lat, "%s/a.safetensors", fx.dir);
    snprintf(lat2, sizeof lat2, "%s/b.safetensors", fx.dir);
    int rc = sh(&out, "%s generate --model %s " EMBEDS " --latent-height 8 --latent-width 8 "
                "--no-decode --latents-out %s", bin(), m, lat);
    cr_assert_eq(rc, 0, "%s", out);
    cr_expect(strstr(out, "generate.future-option is not an option"), "%s", out);
    cr_expect(strstr(out, "9 latent frames") && strstr(out, "KV sink window 6 sink 3"), "%s", out);
    rc = sh(&out, "%s generate --model %s " EMBEDS " --latent-height 8 --latent-width 8 "
            "--no-decode --latents-out %s --frames 6 --kv-policy fifo --kv-sink 0", bin(), m, lat2);
    cr_assert_eq(rc, 0, "%s", out);
    cr_expect(strstr(out, "6 latent frames") && strstr(out, "KV fifo window 6 sink 0"), "%s", out);
    /* a bad value in model.json names the file */
    char jp[300];
    snprintf(jp, sizeof jp, "%s/model.json", m);
    cJSON *j = read_json(jp);
    cJSON_ReplaceItemInObject(cJSON_GetObjectItem(j, "generate"), "frames", cJSON_CreateNumber(-4));
    char *s = cJSON_Print(j);
    put(m, "model.json", s);
    free(s);
    cJSON_Delete(j);
    rc = sh(&out, "%s generate --model %s " EMBEDS " --no-decode", bin(), m);
    cr_expect_eq(rc, 2, "%s", out);
    cr_expect(strstr(out, "model.json") && strstr(out, "--frames") && strstr(out, "out of range"),
              "%s", out);
    release(cases, res, 1);
    cleanup(&fx);
}
