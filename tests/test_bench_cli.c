/* test_bench_cli.c - `sinkstream bench` through the built binary (env
 * SK_SINKSTREAM, else SK_BINARY_DIR/sinkstream) on the CPU with the tiny
 * configuration: the JSON report has every field and sane values, the chunk
 * loop allocates nothing, the run is deterministic, and bad options give
 * usage errors that name the option. */
#define _GNU_SOURCE
#include "common/cli_run.h"
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <fcntl.h>
#include <math.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static char g_dir[256];

static void setup(void)
{
    snprintf(g_dir, sizeof g_dir, "/tmp/sk_bench_test.XXXXXX");
    cr_assert_not_null(mkdtemp(g_dir));
}

static void teardown(void) { rmdir(g_dir); }

TestSuite(bench_cli, .init = setup, .fini = teardown, .timeout = 300);




/* Runs `sinkstream bench args...` (NULL-terminated), stdout/stderr captured. */
static tu_result bench(const char *a0, ...)
{
    va_list ap;
    va_start(ap, a0);
    tu_result r = tu_run_va("bench", a0, ap);
    va_end(ap);
    return r;
}


static double num(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    cr_assert(cJSON_IsNumber(v), "JSON field '%s' missing or not a number", name);
    return v->valuedouble;
}

static const char *str(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    cr_assert(cJSON_IsString(v), "JSON field '%s' missing or not a string", name);
    return v->valuestring;
}

static const cJSON *obj(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    cr_assert(v && (cJSON_IsObject(v) || cJSON_IsArray(v)), "JSON field '%s' missing", name);
    return v;
}

/* The JSON of a successful run (asserts exit 0 and one parseable object). */
static cJSON *json_of(tu_result *r)
{
    cr_assert_eq(r->code, 0, "exit %d, stderr: %s", r->code, r->err);
    cJSON *j = cJSON_Parse(r->out);
    cr_assert_not_null(j, "stdout is not JSON: %.400s", r->out);
    cr_assert(cJSON_IsObject(j));
    return j;
}

Test(bench_cli, tiny_cpu_json_fields)
{
    tu_result r = bench("--config", "tiny", "--device", "cpu", "--chunks", "2", "--json", NULL);
    cJSON *j = json_of(&r);
    cr_expect_str_eq(str(j, "config"), "tiny");
    cr_expect_str_eq(str(j, "device"), "cpu");
    cr_expect_str_eq(str(j, "act_dtype"), "f32");
    cr_expect_eq(num(j, "chunks"), 2);
    cr_expect_eq(num(j, "height"), 64);
    cr_expect_eq(num(j, "width"), 64);
    cr_expect_eq(num(j, "chunk_frames"), 3);
    cr_expect_eq(num(j, "video_frames_per_chunk"), 12);
    cr_expect_eq(num(j, "steps"), 4);
    cr_expect_eq(num(j, "forwards_per_chunk"), 5);
    cr_expect_str_eq(str(j, "kv_policy"), "sink");
    cr_expect_eq(num(j, "kv_sink"), 3);
    cr_expect_eq(num(j, "kv_window"), 12);
    const double fps = num(j, "fps"), first = num(j, "first_chunk_ms"),
                 p50 = num(j, "chunk_ms_p50"), p99 = num(j, "chunk_ms_p99");
    cr_expect(fps > 0 && isfinite(fps), "fps %g", fps);
    cr_expect(first > 0 && first < 60000, "first chunk %g ms", first);
    cr_expect(p50 > 0 && p99 >= p50, "p50 %g p99 %g", p50, p99);
    /* 2 chunks never fill a window of 12 frames: the steady set is chunk 1 */
    const cJSON *m = obj(j, "measured");
    cr_expect_eq(cJSON_GetArraySize(obj(m, "per_chunk_ms")), 2);
    cr_expect(cJSON_IsFalse(cJSON_GetObjectItem(m, "steady_full_window")));
    cr_expect_eq(num(m, "steady_chunks"), 1);
    cr_expect(fabs(fps - 12.0 / (num(m, "chunk_ms_mean") / 1e3)) < 1e-6 * fps);
    cr_expect(num(j, "flops_per_chunk") > 0);
    cr_expect(num(j, "min_bytes_per_chunk") > 0);
    const cJSON *mem = obj(j, "memory");
    cr_expect(num(mem, "weights_bytes") > 0);
    cr_expect(num(mem, "kv_cache_bytes") > 0);
    cr_expect(num(mem, "backend_peak_bytes") >= num(mem, "weights_bytes"));
    const cJSON *al = obj(j, "allocations_in_loop");
    cr_expect_eq(num(al, "backend_allocs"), 0, "the chunk loop allocated");
    cr_expect_eq(num(al, "device_mallocs"), 0);
    /* per-op breakdown: the DiT's op kinds, sums within the chunk's time */
    const cJSON *pr = obj(j, "profile");
    const cJSON *ops = obj(pr, "ops");
    cr_expect_gt(cJSON_GetArraySize(ops), 5);
    int seen_lin = 0, seen_att = 0, seen_x = 0;
    double total = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, ops)
    {
        const char *op = str(e, "op");
        seen_lin |= !strcmp(op, "linear q/k/v/o");
        seen_att |= !strcmp(op, "self-attention");
        seen_x |= !strcmp(op, "cross-attention");
        cr_expect(num(e, "ms") >= 0 && num(e, "calls") >= 1);
        total += num(e, "ms");
    }
    cr_expect(seen_lin && seen_att && seen_x, "op kinds missing: %.600s", r.out);
    cr_expect(fabs(total - num(pr, "ops_ms_total")) < 1e-6 + 1e-9 * total);
    cr_expect(num(pr, "ops_ms_total") <= num(pr, "chunk_ms") * 1.05 + 0.5);
    const char *h = str(j, "x0_hash");
    cr_expect_eq(strlen(h), 16);
    cJSON_Delete(j);
    tu_result_free(&r);
}

Test(bench_cli, deterministic_and_compare)
{
    tu_result a = bench("--config", "tiny", "--device", "cpu", "--chunks", "5", "--warmup", "0",
                         "--no-profile", "--json", NULL);
    tu_result b = bench("--config", "tiny", "--device", "cpu", "--chunks", "5", "--warmup", "1",
                         "--compare-graph", "--json", NULL);
    cJSON *ja = json_of(&a), *jb = json_of(&b);
    cr_expect_str_eq(str(ja, "x0_hash"), str(jb, "x0_hash"), "same seed, different latents");
    cr_expect_null(cJSON_GetObjectItem(ja, "profile"));
    cr_expect_null(cJSON_GetObjectItem(ja, "compare"));
    /* chunks 3 and 4 see the whole window of 12 frames */
    const cJSON *m = obj(ja, "measured");
    cr_expect(cJSON_IsTrue(cJSON_GetObjectItem(m, "steady_full_window")));
    cr_expect_eq(num(m, "steady_first_chunk"), 3);
    cr_expect_eq(num(m, "steady_chunks"), 2);
    const cJSON *c = obj(jb, "compare");
    cr_expect(cJSON_IsTrue(cJSON_GetObjectItem(c, "bitwise_identical")));
    cr_expect(num(c, "fps") > 0);
    /* another seed gives other latents */
    tu_result d = bench("--config", "tiny", "--device", "cpu", "--chunks", "5", "--warmup", "0",
                         "--no-profile", "--seed", "7", "--json", NULL);
    cJSON *jd = json_of(&d);
    cr_expect_str_neq(str(ja, "x0_hash"), str(jd, "x0_hash"));
    cJSON_Delete(ja);
    cJSON_Delete(jb);
    cJSON_Delete(jd);
    tu_result_free(&a);
    tu_result_free(&b);
    tu_result_free(&d);
}

Test(bench_cli, with_vae_and_table)
{
    tu_result r = bench("--config", "tiny", "--device", "cpu", "--chunks", "2", "--warmup", "0",
                         "--with-vae", "--json", NULL);
    cJSON *j = json_of(&r);
    cr_expect(cJSON_IsTrue(cJSON_GetObjectItem(j, "with_vae")));
    int conv = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, obj(obj(j, "profile"), "ops"))
        conv |= !strcmp(str(e, "phase"), "vae") && !strcmp(str(e, "op"), "conv2d");
    cr_expect(conv, "no vae conv2d in the profile: %.600s", r.out);
    cJSON_Delete(j);
    tu_result_free(&r);
    /* the human-readable table */
    r = bench("--config", "tiny", "--device", "cpu", "--chunks", "2", "--warmup", "0", NULL);
    cr_expect_eq(r.code, 0, "%s", r.err);
    cr_expect(strstr(r.out, "video fps"), "%s", r.out);
    cr_expect(strstr(r.out, "first chunk"), "%s", r.out);
    cr_expect(strstr(r.out, "per-op time"), "%s", r.out);
    tu_result_free(&r);
}

Test(bench_cli, with_encode)
{
    tu_result r = bench("--config", "tiny", "--device", "cpu", "--chunks", "2", "--warmup", "0",
                         "--with-encode", "--no-profile", "--json", NULL);
    if (r.code == 2) { /* a build without FFmpeg says so */
        cr_expect(strstr(r.err, "FFmpeg"), "%s", r.err);
    } else {
        cJSON *j = json_of(&r);
        cr_expect(cJSON_IsTrue(cJSON_GetObjectItem(j, "with_encode")));
        cr_expect(cJSON_IsTrue(cJSON_GetObjectItem(j, "with_vae")));
        cJSON_Delete(j);
    }
    tu_result_free(&r);
}

Test(bench_cli, help_lists_options_with_defaults)
{
    tu_result r = bench("--help", NULL);
    cr_expect_eq(r.code, 0);
    const char *want[] = {"--config", "wan2.1-1.3b", "--chunks", "--warmup", "--kv-policy",
                          "--kv-sink", "--kv-window", "--with-vae", "--with-encode",
                          "--no-cuda-graph", "--compare-graph", "--json", "--device"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        cr_expect(strstr(r.out, want[i]), "--help lacks %s: %s", want[i], r.out);
    tu_result_free(&r);
}

Test(bench_cli, bad_options)
{
    struct {
        const char *a[4];
        const char *msg;
    } cases[] = {
        {{"--config", "huge"}, "--config"},
        {{"--height", "100"}, "multiples of 16"},
        {{"--kv-window", "4"}, "--kv-window 4 is too small"},
        {{"--chunks", "0"}, "--chunks"},
        {{"--kv-policy", "fifo", "--kv-sink", "3"}, "fifo keeps no sink"},
        {{"--frobnicate"}, "--frobnicate"},
        {{"--device", "tpu"}, "--device"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tu_result r = bench("--config", "tiny", "--device", "cpu", cases[i].a[0], cases[i].a[1],
                             cases[i].a[2], cases[i].a[3], NULL);
        /* "--config tiny" first: a later --config/--device overrides it */
        cr_expect_eq(r.code, 2, "case %zu: exit %d, stderr %s", i, r.code, r.err);
        cr_expect(strstr(r.err, cases[i].msg), "case %zu: stderr lacks '%s': %s", i,
                  cases[i].msg, r.err);
        cr_expect_eq(r.out[0], 0, "case %zu printed to stdout: %s", i, r.out);
        tu_result_free(&r);
    }
}

/* LongLive 2.0's loop (tiny-ti2v: 48 latent channels, VAE stride 16): defaults UniPC 4 steps,
 * multishot with the global sink = one chunk and a window of 4 chunks; taew2_2 decode. */
Test(bench_cli, tiny_ti2v_longlive2_defaults)
{
    tu_result r = bench("--config", "tiny-ti2v", "--device", "cpu", "--chunks", "5", "--warmup",
                        "0", "--with-vae", "--json", NULL);
    cJSON *j = json_of(&r);
    cr_expect_str_eq(str(j, "config"), "tiny-ti2v");
    cr_expect_str_eq(str(j, "sampler"), "unipc");
    cr_expect_str_eq(str(j, "kv_policy"), "multishot");
    cr_expect_eq(num(j, "steps"), 4);
    cr_expect_eq(num(j, "forwards_per_chunk"), 5);
    cr_expect_eq(num(j, "chunk_frames"), 2);
    cr_expect_eq(num(j, "kv_sink"), 2);
    cr_expect_eq(num(j, "kv_window"), 8);
    cr_expect_eq(num(j, "height"), 64);
    const cJSON *m = obj(j, "measured");
    cr_expect(cJSON_IsTrue(cJSON_GetObjectItem(m, "steady_full_window")), "window never full");
    cJSON_Delete(j);
    tu_result_free(&r);
    r = bench("--config", "tiny-ti2v", "--device", "cpu", "--chunks", "2", "--warmup", "0",
              "--num-steps", "2", "--json", NULL);
    j = json_of(&r);
    cr_expect_eq(num(j, "forwards_per_chunk"), 3);
    cJSON_Delete(j);
    tu_result_free(&r);
    r = bench("--config", "tiny-ti2v", "--device", "cpu", "--steps", "1000,500", NULL);
    cr_expect_eq(r.code, 2, "unipc with a step list: %s", r.err);
    cr_expect(strstr(r.err, "--num-steps"), "%s", r.err);
    tu_result_free(&r);
}
