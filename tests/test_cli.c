/* test_cli.c - runs the built `sinkstream` binary (env SK_SINKSTREAM, else
 * SK_BINARY_DIR/sinkstream) as a user would and checks exit codes and
 * output: top-level --help/--version/unknown command, and `inspect` on
 * files written here with known layouts, on committed broken files and on
 * missing files. */
#define _GNU_SOURCE
#include "common/cli_run.h"
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runtime/io/safetensors.h"

extern char **environ;

static char g_dir[256];

static void setup(void)
{
    snprintf(g_dir, sizeof g_dir, "/tmp/sk_cli_test.XXXXXX");
    cr_assert_not_null(mkdtemp(g_dir));
}

static void teardown(void)
{
    DIR *d = opendir(g_dir);
    if (!d) return;
    struct dirent *e;
    char p[600];
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(p, sizeof p, "%s/%s", g_dir, e->d_name);
            if (unlink(p) != 0) { /* a sub directory of files */
                DIR *s = opendir(p);
                struct dirent *f;
                char q[900];
                while (s && (f = readdir(s)))
                    if (f->d_name[0] != '.') {
                        snprintf(q, sizeof q, "%s/%s", p, f->d_name);
                        unlink(q);
                    }
                if (s) closedir(s);
                rmdir(p);
            }
        }
    closedir(d);
    rmdir(g_dir);
}

TestSuite(cli, .init = setup, .fini = teardown);






static int count_substr(const char *s, const char *sub)
{
    int n = 0;
    for (const char *p = s; (p = strstr(p, sub)); p += strlen(sub)) n++;
    return n;
}

/* ----------------------------------------------------------- top level */

Test(cli, help_lists_commands)
{
    tu_result r = tu_run("--help", NULL);
    cr_expect_eq(r.code, 0, "stderr: %s", r.err);
    cr_expect(strstr(r.out, "usage: sinkstream"), "%s", r.out);
    cr_expect(strstr(r.out, "inspect"), "inspect not listed: %s", r.out);
    tu_result_free(&r);
}

Test(cli, version)
{
    tu_result r = tu_run("--version", NULL);
    cr_expect_eq(r.code, 0);
    cr_expect(strncmp(r.out, "sinkstream ", 11) == 0, "%s", r.out);
    cr_expect(r.out[11] >= '0' && r.out[11] <= '9', "no version number: %s", r.out);
    tu_result_free(&r);
}

Test(cli, unknown_command_and_no_command)
{
    tu_result r = tu_run("frobnicate", NULL);
    cr_expect_eq(r.code, 2);
    cr_expect(strstr(r.err, "unknown command 'frobnicate'"), "%s", r.err);
    tu_result_free(&r);
    r = tu_run(NULL);
    cr_expect_eq(r.code, 2);
    cr_expect(strstr(r.err, "usage:"), "%s", r.err);
    tu_result_free(&r);
}

Test(cli, inspect_help_shows_defaults)
{
    tu_result r = tu_run("inspect", "--help", NULL);
    cr_expect_eq(r.code, 0);
    cr_expect(strstr(r.out, "usage: sinkstream inspect"), "%s", r.out);
    cr_expect(strstr(r.out, "--json") && strstr(r.out, "--all"), "%s", r.out);
    cr_expect(strstr(r.out, "(default: 20)"), "limit default missing: %s", r.out);
    tu_result_free(&r);
}

Test(cli, inspect_usage_errors)
{
    tu_result r = tu_run("inspect", NULL);
    cr_expect_eq(r.code, 2);
    cr_expect(strstr(r.err, "missing argument"), "%s", r.err);
    tu_result_free(&r);
    r = tu_run("inspect", "--bogus", "x.safetensors", NULL);
    cr_expect_eq(r.code, 2);
    cr_expect(strstr(r.err, "unknown option '--bogus'"), "%s", r.err);
    tu_result_free(&r);
    r = tu_run("inspect", "--lmit", "3", "x.safetensors", NULL);
    cr_expect_eq(r.code, 2);
    cr_expect(strstr(r.err, "did you mean --limit"), "%s", r.err);
    tu_result_free(&r);
    r = tu_run("inspect", "x.safetensors", "--limit", "many", NULL);
    cr_expect_eq(r.code, 2);
    cr_expect(strstr(r.err, "--limit") && strstr(r.err, "'many' is not an integer"), "%s", r.err);
    tu_result_free(&r);
    r = tu_run("inspect", "x.safetensors", "--limit", NULL);
    cr_expect_eq(r.code, 2);
    cr_expect(strstr(r.err, "--limit") && strstr(r.err, "missing value"), "%s", r.err);
    tu_result_free(&r);
    r = tu_run("inspect", "a.safetensors", "b.safetensors", NULL);
    cr_expect_eq(r.code, 2);
    cr_expect(strstr(r.err, "unexpected extra argument 'b.safetensors'"), "%s", r.err);
    tu_result_free(&r);
}

/* ------------------------------------------------------- inspect files */

typedef struct {
    const char *name;
    int ndim;
    int64_t shape[5];
} spec;

/* Writes the tensors (f32 zeros) and returns the total parameter count. */
static const char *g_config; /* metadata "config" to write, or NULL */

static uint64_t write_model(const char *path, const char *prefix, const spec *s, int n)
{
    sk_st_writer *w = NULL;
    cr_assert_eq(sk_st_writer_create(&w), SK_OK);
    uint64_t total = 0;
    for (int i = 0; i < n; i++) {
        uint64_t numel = 1;
        for (int d = 0; d < s[i].ndim; d++) numel *= (uint64_t)s[i].shape[d];
        float *z = calloc(numel ? numel : 1, sizeof(float));
        char name[256];
        snprintf(name, sizeof name, "%s%s", prefix, s[i].name);
        cr_assert_eq(sk_st_writer_add_f32(w, name, SK_DTYPE_BF16, s[i].ndim, s[i].shape, z), SK_OK,
                     "%s", sk_error_message());
        free(z);
        total += numel;
    }
    cr_assert_eq(sk_st_writer_meta(w, "format", "pt"), SK_OK);
    if (g_config) cr_assert_eq(sk_st_writer_meta(w, "config", g_config), SK_OK);
    cr_assert_eq(sk_st_writer_save(w, path), SK_OK, "%s", sk_error_message());
    sk_st_writer_free(&w);
    return total;
}

/* A Wan-shaped DiT: dim 256 (2 heads of 128), 2 blocks, ffn 512, 16 -> 16
 * channels, patch 1x2x2, text_dim 32, freq_dim 16. */
static const spec k_wan[] = {
    {"patch_embedding.weight", 5, {256, 16, 1, 2, 2}},
    {"patch_embedding.bias", 1, {256}},
    {"text_embedding.0.weight", 2, {256, 32}},
    {"time_embedding.0.weight", 2, {256, 16}},
    {"blocks.0.self_attn.q.weight", 2, {256, 256}},
    {"blocks.0.ffn.0.weight", 2, {512, 256}},
    {"blocks.1.self_attn.q.weight", 2, {256, 256}},
    {"blocks.1.ffn.0.weight", 2, {512, 256}},
    {"head.head.weight", 2, {64, 256}},
};

static char *fmt_grouped(uint64_t v, char *buf)
{
    char tmp[32];
    int n = snprintf(tmp, sizeof tmp, "%llu", (unsigned long long)v), o = 0;
    for (int i = 0; i < n; i++) {
        if (i && (n - i) % 3 == 0) buf[o++] = ',';
        buf[o++] = tmp[i];
    }
    buf[o] = 0;
    return buf;
}

static void check_wan(const char *prefix)
{
    char path[400], num[40];
    snprintf(path, sizeof path, "%s/wan.safetensors", g_dir);
    uint64_t params = write_model(path, prefix, k_wan, (int)(sizeof k_wan / sizeof k_wan[0]));
    cr_assert_gt(params, 1000);

    tu_result r = tu_run("inspect", path, NULL);
    cr_expect_eq(r.code, 0, "stderr: %s", r.err);
    cr_expect(strstr(r.out, "Wan DiT"), "layout not named: %s", r.out);
    cr_expect(strstr(r.out, fmt_grouped(params, num)), "parameter count %s missing: %s", num, r.out);
    cr_expect(strstr(r.out, "tensors:    9"), "%s", r.out);
    cr_expect(strstr(r.out, "BF16 x9"), "dtype histogram: %s", r.out);
    cr_expect(strstr(r.out, "format = pt"), "metadata: %s", r.out);
    if (*prefix) cr_expect(strstr(r.out, "key prefix 'model.'"), "%s", r.out);
    tu_result_free(&r);

    r = tu_run("inspect", "--json", path, NULL);
    cr_expect_eq(r.code, 0, "stderr: %s", r.err);
    cJSON *j = cJSON_Parse(r.out);
    cr_assert_not_null(j, "--json output is not JSON: %s", r.out);
    cr_expect_eq(cJSON_GetObjectItem(j, "parameters")->valuedouble, (double)params);
    cr_expect_eq(cJSON_GetObjectItem(j, "tensors")->valueint, 9);
    const cJSON *L = cJSON_GetObjectItem(j, "layout");
    cr_assert_not_null(L);
    cr_expect_str_eq(cJSON_GetObjectItem(L, "name")->valuestring, "wan_dit");
    cr_expect_str_eq(cJSON_GetObjectItem(L, "prefix")->valuestring, prefix);
    cr_expect_eq(cJSON_GetObjectItem(L, "dim")->valueint, 256);
    cr_expect_eq(cJSON_GetObjectItem(L, "ffn_dim")->valueint, 512);
    cr_expect_eq(cJSON_GetObjectItem(L, "num_layers")->valueint, 2);
    cr_expect_eq(cJSON_GetObjectItem(L, "num_heads")->valueint, 2);
    cr_expect_eq(cJSON_GetObjectItem(L, "in_dim")->valueint, 16);
    cr_expect_eq(cJSON_GetObjectItem(L, "out_dim")->valueint, 16);
    cr_expect_eq(cJSON_GetObjectItem(L, "text_dim")->valueint, 32);
    cr_expect_eq(cJSON_GetObjectItem(L, "freq_dim")->valueint, 16);
    cJSON_Delete(j);
    tu_result_free(&r);
}

Test(cli, inspect_wan_dit) { check_wan(""); }
Test(cli, inspect_wan_dit_model_prefix) { check_wan("model."); }

/* The head count is invisible in the shapes: a metadata config supplies it,
 * and a config that contradicts the shapes is flagged. */
Test(cli, inspect_wan_heads_from_config)
{
    char path[400];
    snprintf(path, sizeof path, "%s/wan.safetensors", g_dir);
    g_config = "{\"dim\": 256, \"num_heads\": 4, \"num_layers\": 2}";
    write_model(path, "", k_wan, (int)(sizeof k_wan / sizeof k_wan[0]));
    tu_result r = tu_run("inspect", path, NULL);
    cr_expect_eq(r.code, 0, "%s", r.err);
    cr_expect(strstr(r.out, "heads 4 x head_dim 64 (from the metadata config)"), "%s", r.out);
    cr_expect(strstr(r.out, "WARNING") == NULL, "%s", r.out);
    tu_result_free(&r);
    g_config = "{\"dim\": 512, \"num_heads\": 4, \"num_layers\": 2}";
    write_model(path, "", k_wan, (int)(sizeof k_wan / sizeof k_wan[0]));
    r = tu_run("inspect", path, NULL);
    cr_expect(strstr(r.out, "WARNING: metadata config (dim 512"), "%s", r.out);
    tu_result_free(&r);
    g_config = NULL;
}

static void check_taehv(int z, int outc, const char *variant)
{
    const spec s[] = {
        {"decoder.1.weight", 4, {32, z, 3, 3}},
        {"decoder.1.bias", 1, {32}},
        {"decoder.7.conv.weight", 4, {32, 32, 1, 1}},
        {"decoder.22.weight", 4, {outc, 8, 3, 3}},
        {"decoder.22.bias", 1, {outc}},
    };
    char path[400];
    snprintf(path, sizeof path, "%s/tae.safetensors", g_dir);
    write_model(path, "", s, 5);
    tu_result r = tu_run("inspect", path, NULL);
    cr_expect_eq(r.code, 0, "stderr: %s", r.err);
    cr_expect(strstr(r.out, "TAEHV"), "%s", r.out);
    cr_expect(strstr(r.out, variant), "variant %s not named: %s", variant, r.out);
    cr_expect(strstr(r.out, "decode only"), "%s", r.out);
    tu_result_free(&r);
}

Test(cli, inspect_taew2_1) { check_taehv(16, 3, "taew2_1"); }
Test(cli, inspect_taew2_2) { check_taehv(48, 12, "taew2_2"); }

Test(cli, inspect_umt5_both_namings)
{
    const spec wan[] = {
        {"token_embedding.weight", 2, {100, 64}},
        {"blocks.0.attn.q.weight", 2, {64, 64}},
        {"blocks.0.pos_embedding.embedding.weight", 2, {32, 4}},
        {"blocks.0.ffn.fc1.weight", 2, {96, 64}},
        {"blocks.1.attn.q.weight", 2, {64, 64}},
    };
    const spec hf[] = {
        {"shared.weight", 2, {100, 64}},
        {"encoder.block.0.layer.0.SelfAttention.q.weight", 2, {64, 64}},
        {"encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight", 2, {32, 4}},
        {"encoder.block.1.layer.0.SelfAttention.q.weight", 2, {64, 64}},
        {"encoder.block.2.layer.0.SelfAttention.q.weight", 2, {64, 64}},
    };
    char path[400];
    snprintf(path, sizeof path, "%s/t5.safetensors", g_dir);
    write_model(path, "", wan, 5);
    tu_result r = tu_run("inspect", path, NULL);
    cr_expect_eq(r.code, 0);
    cr_expect(strstr(r.out, "umT5") && strstr(r.out, "Wan names"), "%s", r.out);
    cr_expect(strstr(r.out, "layers 2") && strstr(r.out, "heads 4") && strstr(r.out, "ffn 96"),
              "%s", r.out);
    tu_result_free(&r);
    write_model(path, "", hf, 5);
    r = tu_run("inspect", path, NULL);
    cr_expect_eq(r.code, 0);
    cr_expect(strstr(r.out, "umT5") && strstr(r.out, "HF names") && strstr(r.out, "layers 3"),
              "%s", r.out);
    tu_result_free(&r);
}

Test(cli, inspect_lora_adapter)
{
    const spec s[] = {
        {"base_model.model.blocks.0.self_attn.q.lora_A.weight", 2, {8, 64}},
        {"base_model.model.blocks.0.self_attn.q.lora_B.weight", 2, {64, 8}},
        {"base_model.model.blocks.2.ffn.0.lora_A.weight", 2, {8, 64}},
        {"base_model.model.blocks.2.ffn.0.lora_B.weight", 2, {128, 8}},
    };
    char path[400];
    snprintf(path, sizeof path, "%s/lora.safetensors", g_dir);
    write_model(path, "", s, 4);
    tu_result r = tu_run("inspect", path, NULL);
    cr_expect_eq(r.code, 0, "%s", r.err);
    cr_expect(strstr(r.out, "LoRA adapter: 2 adapted layers") && strstr(r.out, "rank 8") &&
              strstr(r.out, "over 3 blocks"), "%s", r.out);
    tu_result_free(&r);
}

Test(cli, inspect_unknown_layout_and_all)
{
    spec s[25];
    char names[25][16];
    for (int i = 0; i < 25; i++) {
        snprintf(names[i], sizeof names[i], "x%02d", i);
        s[i] = (spec){names[i], 2, {2, 3}};
    }
    char path[400];
    snprintf(path, sizeof path, "%s/misc.safetensors", g_dir);
    write_model(path, "", s, 25);
    tu_result r = tu_run("inspect", path, NULL);
    cr_expect_eq(r.code, 0);
    cr_expect(strstr(r.out, "unknown layout"), "%s", r.out);
    cr_expect_eq(count_substr(r.out, "[2, 3]"), 20, "default lists 20: %s", r.out);
    cr_expect(strstr(r.out, "first 20 of 25"), "%s", r.out);
    tu_result_free(&r);
    r = tu_run("inspect", "--all", path, NULL);
    cr_expect_eq(count_substr(r.out, "[2, 3]"), 25, "--all lists 25: %s", r.out);
    tu_result_free(&r);
    r = tu_run("inspect", "--limit=3", path, NULL);
    cr_expect_eq(count_substr(r.out, "[2, 3]"), 3, "--limit=3: %s", r.out);
    tu_result_free(&r);
    r = tu_run("inspect", "-n", "5", "--json", path, NULL);
    cJSON *j = cJSON_Parse(r.out);
    cr_assert_not_null(j, "%s", r.out);
    cr_expect_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "tensor_list")), 5);
    cr_expect_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "layout"), "name")->valuestring,
                     "unknown");
    cJSON_Delete(j);
    tu_result_free(&r);
}

Test(cli, inspect_broken_fixture_exits_1)
{
    static const char *const k[][2] = {
        {"overlap.safetensors", "overlap"},
        {"truncated.safetensors", "truncated"},
        {"bool_dtype.safetensors", "unsupported dtype 'BOOL'"},
    };
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++) {
        char path[600];
        snprintf(path, sizeof path, "%s/tests/fixtures/bad_safetensors/%s", SK_SOURCE_DIR, k[i][0]);
        tu_result r = tu_run("inspect", path, NULL);
        cr_expect_eq(r.code, 1, "%s: exit %d", k[i][0], r.code);
        cr_expect(strstr(r.err, path), "message does not name the file: %s", r.err);
        cr_expect(strstr(r.err, k[i][1]), "%s: %s", k[i][0], r.err);
        cr_expect_eq(r.out[0], 0, "nothing on stdout for a broken file: %s", r.out);
        tu_result_free(&r);
    }
}

Test(cli, inspect_missing_file)
{
    char path[400];
    snprintf(path, sizeof path, "%s/nope.safetensors", g_dir);
    tu_result r = tu_run("inspect", path, NULL);
    cr_expect_eq(r.code, 1);
    cr_expect(strstr(r.err, path) && strstr(r.err, "No such file"), "%s", r.err);
    tu_result_free(&r);
}

Test(cli, inspect_directory)
{
    char sub[400], a[500], b[500];
    snprintf(sub, sizeof sub, "%s/model", g_dir);
    cr_assert_eq(mkdir(sub, 0755), 0);
    snprintf(a, sizeof a, "%s/b-dit.safetensors", sub);
    snprintf(b, sizeof b, "%s/a-other.safetensors", sub);
    write_model(a, "", k_wan, (int)(sizeof k_wan / sizeof k_wan[0]));
    const spec one[] = {{"w", 1, {4}}};
    write_model(b, "", one, 1);
    tu_result r = tu_run("inspect", sub, NULL);
    cr_expect_eq(r.code, 0, "%s", r.err);
    const char *pa = strstr(r.out, "a-other"), *pb = strstr(r.out, "b-dit");
    cr_expect(pa && pb && pa < pb, "both files, sorted: %s", r.out);
    cr_expect(strstr(r.out, "Wan DiT"), "%s", r.out);
    tu_result_free(&r);
}

/* ----------------------------------------- full-size headers (sparse files)
 * The released checkpoints' key lists, rebuilt here from the specs
 * (spec-wan-causal-dit.md §4.1, spec-taehv-umt5.md A8) as a header-only file
 * whose data area is a hole (ftruncate): inspect must name the model and
 * count exactly the parameters the specs state. Nothing reads the data. */

typedef struct {
    cJSON *root;
    uint64_t off, params;
    int count;
} hdr_builder;

static void hb_add(hdr_builder *b, const char *name, int nd, const int64_t *shape)
{
    cJSON *e = cJSON_AddObjectToObject(b->root, name);
    cJSON_AddStringToObject(e, "dtype", "BF16");
    cJSON *s = cJSON_AddArrayToObject(e, "shape");
    uint64_t n = 1;
    for (int i = 0; i < nd; i++) {
        cJSON_AddItemToArray(s, cJSON_CreateNumber((double)shape[i]));
        n *= (uint64_t)shape[i];
    }
    cJSON *o = cJSON_AddArrayToObject(e, "data_offsets");
    cJSON_AddItemToArray(o, cJSON_CreateNumber((double)b->off));
    cJSON_AddItemToArray(o, cJSON_CreateNumber((double)(b->off + 2 * n)));
    b->off += 2 * n;
    b->params += n;
    b->count++;
}

#define HB(b, nd, ...) hb_add((b), key, (nd), (const int64_t[]){__VA_ARGS__})

static void hb_write(hdr_builder *b, const char *path)
{
    char *js = cJSON_PrintUnformatted(b->root);
    size_t n = strlen(js);
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    unsigned char pre[8];
    for (int i = 0; i < 8; i++) pre[i] = (unsigned char)((uint64_t)n >> (8 * i));
    fwrite(pre, 1, 8, f);
    fwrite(js, 1, n, f);
    fclose(f);
    cr_assert_eq(truncate(path, (off_t)(8 + n + b->off)), 0, "sparse file %s", path);
    free(js);
    cJSON_Delete(b->root);
}

static void wan_keys(hdr_builder *b, int64_t D, int64_t F, int L, int64_t C)
{
    char key[128];
    const char *pair_w[] = {"text_embedding.0", "text_embedding.2", "time_embedding.0",
                            "time_embedding.2"};
    const int64_t in_w[] = {4096, D, 256, D};
    snprintf(key, sizeof key, "patch_embedding.weight"), HB(b, 5, D, C, 1, 2, 2);
    snprintf(key, sizeof key, "patch_embedding.bias"), HB(b, 1, D);
    for (int i = 0; i < 4; i++) {
        snprintf(key, sizeof key, "%s.weight", pair_w[i]), HB(b, 2, D, in_w[i]);
        snprintf(key, sizeof key, "%s.bias", pair_w[i]), HB(b, 1, D);
    }
    snprintf(key, sizeof key, "time_projection.1.weight"), HB(b, 2, 6 * D, D);
    snprintf(key, sizeof key, "time_projection.1.bias"), HB(b, 1, 6 * D);
    for (int l = 0; l < L; l++) {
        snprintf(key, sizeof key, "blocks.%d.modulation", l), HB(b, 3, 1, 6, D);
        const char *att[] = {"self_attn", "cross_attn"};
        for (int a = 0; a < 2; a++) {
            for (const char *x = "qkvo"; *x; x++) {
                snprintf(key, sizeof key, "blocks.%d.%s.%c.weight", l, att[a], *x), HB(b, 2, D, D);
                snprintf(key, sizeof key, "blocks.%d.%s.%c.bias", l, att[a], *x), HB(b, 1, D);
            }
            snprintf(key, sizeof key, "blocks.%d.%s.norm_q.weight", l, att[a]), HB(b, 1, D);
            snprintf(key, sizeof key, "blocks.%d.%s.norm_k.weight", l, att[a]), HB(b, 1, D);
        }
        snprintf(key, sizeof key, "blocks.%d.norm3.weight", l), HB(b, 1, D);
        snprintf(key, sizeof key, "blocks.%d.norm3.bias", l), HB(b, 1, D);
        snprintf(key, sizeof key, "blocks.%d.ffn.0.weight", l), HB(b, 2, F, D);
        snprintf(key, sizeof key, "blocks.%d.ffn.0.bias", l), HB(b, 1, F);
        snprintf(key, sizeof key, "blocks.%d.ffn.2.weight", l), HB(b, 2, D, F);
        snprintf(key, sizeof key, "blocks.%d.ffn.2.bias", l), HB(b, 1, D);
    }
    snprintf(key, sizeof key, "head.modulation"), HB(b, 3, 1, 2, D);
    snprintf(key, sizeof key, "head.head.weight"), HB(b, 2, 4 * C, D);
    snprintf(key, sizeof key, "head.head.bias"), HB(b, 1, 4 * C);
}

static void memblock(hdr_builder *b, const char *part, int i, int64_t C)
{
    char key[128];
    snprintf(key, sizeof key, "%s.%d.conv.0.weight", part, i), HB(b, 4, C, 2 * C, 3, 3);
    snprintf(key, sizeof key, "%s.%d.conv.0.bias", part, i), HB(b, 1, C);
    snprintf(key, sizeof key, "%s.%d.conv.2.weight", part, i), HB(b, 4, C, C, 3, 3);
    snprintf(key, sizeof key, "%s.%d.conv.2.bias", part, i), HB(b, 1, C);
    snprintf(key, sizeof key, "%s.%d.conv.4.weight", part, i), HB(b, 4, C, C, 3, 3);
    snprintf(key, sizeof key, "%s.%d.conv.4.bias", part, i), HB(b, 1, C);
}

static void taehv_keys(hdr_builder *b, int64_t z, int64_t p)
{
    char key[128];
    snprintf(key, sizeof key, "encoder.0.weight"), HB(b, 4, 64, 3 * p * p, 3, 3);
    snprintf(key, sizeof key, "encoder.0.bias"), HB(b, 1, 64);
    snprintf(key, sizeof key, "encoder.2.conv.weight"), HB(b, 4, 64, 128, 1, 1);
    snprintf(key, sizeof key, "encoder.7.conv.weight"), HB(b, 4, 64, 128, 1, 1);
    snprintf(key, sizeof key, "encoder.12.conv.weight"), HB(b, 4, 64, 64, 1, 1);
    for (int i = 3; i <= 13; i += 5) snprintf(key, sizeof key, "encoder.%d.weight", i), HB(b, 4, 64, 64, 3, 3);
    const int enc_mb[] = {4, 5, 6, 9, 10, 11, 14, 15, 16};
    for (int i = 0; i < 9; i++) memblock(b, "encoder", enc_mb[i], 64);
    snprintf(key, sizeof key, "encoder.17.weight"), HB(b, 4, z, 64, 3, 3);
    snprintf(key, sizeof key, "encoder.17.bias"), HB(b, 1, z);
    snprintf(key, sizeof key, "decoder.1.weight"), HB(b, 4, 256, z, 3, 3);
    snprintf(key, sizeof key, "decoder.1.bias"), HB(b, 1, 256);
    for (int i = 3; i <= 5; i++) memblock(b, "decoder", i, 256);
    for (int i = 9; i <= 11; i++) memblock(b, "decoder", i, 128);
    for (int i = 15; i <= 17; i++) memblock(b, "decoder", i, 64);
    snprintf(key, sizeof key, "decoder.7.conv.weight"), HB(b, 4, 256, 256, 1, 1);
    snprintf(key, sizeof key, "decoder.13.conv.weight"), HB(b, 4, 256, 128, 1, 1);
    snprintf(key, sizeof key, "decoder.19.conv.weight"), HB(b, 4, 128, 64, 1, 1);
    snprintf(key, sizeof key, "decoder.8.weight"), HB(b, 4, 128, 256, 3, 3);
    snprintf(key, sizeof key, "decoder.14.weight"), HB(b, 4, 64, 128, 3, 3);
    snprintf(key, sizeof key, "decoder.20.weight"), HB(b, 4, 64, 64, 3, 3);
    snprintf(key, sizeof key, "decoder.22.weight"), HB(b, 4, 3 * p * p, 64, 3, 3);
    snprintf(key, sizeof key, "decoder.22.bias"), HB(b, 1, 3 * p * p);
}

static cJSON *inspect_json(const char *path)
{
    tu_result r = tu_run("inspect", "--json", "-n", "0", path, NULL);
    cr_assert_eq(r.code, 0, "%s", r.err);
    cJSON *j = cJSON_Parse(r.out);
    cr_assert_not_null(j, "%s", r.out);
    tu_result_free(&r);
    return j;
}

Test(cli, inspect_released_wan_sizes)
{
    static const struct {
        int64_t D, F;
        int L;
        int64_t C;
        double params; /* from spec-wan-causal-dit.md §1 */
        const char *name;
    } k[] = {
        {1536, 8960, 30, 16, 1418996800.0, "Wan2.1-T2V-1.3B"},
        {3072, 14336, 30, 48, 4999787712.0, "Wan2.2-TI2V-5B"},
    };
    char path[400];
    snprintf(path, sizeof path, "%s/big.safetensors", g_dir);
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++) {
        hdr_builder b = {cJSON_CreateObject(), 0, 0, 0};
        wan_keys(&b, k[i].D, k[i].F, k[i].L, k[i].C);
        cr_expect_eq(b.count, 825, "spec: 825 tensors");
        hb_write(&b, path);
        cJSON *j = inspect_json(path);
        cr_expect_eq(cJSON_GetObjectItem(j, "parameters")->valuedouble, k[i].params, "%s",
                     k[i].name);
        cJSON *L = cJSON_GetObjectItem(j, "layout");
        cr_assert(cJSON_IsString(cJSON_GetObjectItem(L, "matches")), "no known model named");
        cr_expect(strstr(cJSON_GetObjectItem(L, "matches")->valuestring, k[i].name), "%s",
                  cJSON_GetObjectItem(L, "matches")->valuestring);
        cr_expect_eq(cJSON_GetObjectItem(L, "num_heads")->valueint, (int)(k[i].D / 128));
        cr_expect_eq(cJSON_GetObjectItem(L, "num_layers")->valueint, k[i].L);
        cr_expect_eq(cJSON_GetObjectItem(L, "ffn_dim")->valueint, (int)k[i].F);
        cr_expect_eq(cJSON_GetObjectItem(L, "out_dim")->valueint, (int)k[i].C);
        cr_expect_eq(cJSON_GetObjectItem(L, "text_dim")->valueint, 4096);
        cr_expect_eq(cJSON_GetObjectItem(L, "freq_dim")->valueint, 256);
        cJSON_Delete(j);
        unlink(path);
    }
}

Test(cli, inspect_released_taehv)
{
    static const struct {
        int64_t z, p;
        double params; /* from spec-taehv-umt5.md A1 */
        const char *variant;
    } k[] = {{16, 1, 11315539.0, "taew2_1"}, {48, 2, 11418108.0, "taew2_2"}};
    char path[400];
    snprintf(path, sizeof path, "%s/tae.safetensors", g_dir);
    for (size_t i = 0; i < 2; i++) {
        hdr_builder b = {cJSON_CreateObject(), 0, 0, 0};
        taehv_keys(&b, k[i].z, k[i].p);
        cr_expect_eq(b.count, 128, "spec: 128 tensors");
        hb_write(&b, path);
        cJSON *j = inspect_json(path);
        cr_expect_eq(cJSON_GetObjectItem(j, "parameters")->valuedouble, k[i].params);
        cJSON *L = cJSON_GetObjectItem(j, "layout");
        cr_expect_str_eq(cJSON_GetObjectItem(L, "variant")->valuestring, k[i].variant);
        cr_expect_eq(cJSON_GetObjectItem(L, "decoder_width")->valueint, 256);
        cJSON_Delete(j);
        unlink(path);
    }
}
