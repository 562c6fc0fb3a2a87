/* test_text.c - the text path: prompt cleaning, tokenizer, umT5 encoder,
 * prompt cache / offload, and `sinkstream encode-text`, against the fixtures
 * of tests/reference/make_umt5_fixtures.py (PyTorch + ftfy + sentencepiece).
 */
#define _GNU_SOURCE /* mkdtemp, environ */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <fcntl.h>
#include <math.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runtime/core/backend.h"
#include "runtime/io/safetensors.h"
#include "tests/common/compare.h"
#include "tests/common/test_util.h"
#include "text/prompt_clean.h"
#include "text/text_encoder.h"
#include "text/tokenizer.h"
#include "text/umt5.h"

extern char **environ;

#define FIX SK_SOURCE_DIR "/tests/fixtures/text/"
#define WEIGHTS FIX "umt5_tiny.safetensors"
#define EXPECTED FIX "umt5_tiny_expected.safetensors"
#define SPM FIX "spiece_tiny.model"

static cJSON *g_manifest;
static sk_backend *g_be;
static char g_dir[256];

static char *slurp(const char *path, size_t *n_out)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot read %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    cr_assert_not_null(s);
    size_t got = fread(s, 1, (size_t)n, f);
    s[got] = 0;
    fclose(f);
    if (n_out) *n_out = got;
    return s;
}

static void setup(void)
{
    char *s = slurp(FIX "manifest.json", NULL);
    g_manifest = cJSON_Parse(s);
    free(s);
    cr_assert_not_null(g_manifest, "manifest.json does not parse");
    TT_OK(sk_backend_cpu_create(&g_be));
    snprintf(g_dir, sizeof g_dir, "/tmp/sk_test_text_XXXXXX");
    cr_assert_not_null(mkdtemp(g_dir));
}

static void teardown(void)
{
    cJSON_Delete(g_manifest);
    sk_backend_free_(&g_be);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(text, .init = setup, .fini = teardown);

/* The tokenizer needs libsentencepiece (tools/install_deps.sh installs it). */
#ifdef SK_HAVE_SENTENCEPIECE
#define NEED_SPM() ((void)0)
#else
#define NEED_SPM() cr_skip_test("built without libsentencepiece")
#endif

static const cJSON *prompts(void)
{
    const cJSON *p = cJSON_GetObjectItem(g_manifest, "prompts");
    cr_assert(cJSON_IsArray(p) && cJSON_GetArraySize(p) >= 4, "manifest has no prompts");
    return p;
}

static int cfg_int(const char *key)
{
    const cJSON *c = cJSON_GetObjectItem(cJSON_GetObjectItem(g_manifest, "config"), key);
    cr_assert(cJSON_IsNumber(c), "manifest config.%s missing", key);
    return c->valueint;
}

static const char *str_of(const cJSON *o, const char *key)
{
    const cJSON *s = cJSON_GetObjectItem(o, key);
    cr_assert(cJSON_IsString(s), "manifest entry has no string '%s'", key);
    return s->valuestring;
}

/* Expected context of prompt key as f32 [T * D] (malloc'd). */
static float *expected_context(const char *key)
{
    sk_st_file *f = NULL;
    TT_OK(sk_st_open(EXPECTED, &f));
    char name[64];
    snprintf(name, sizeof name, "context.%s", key);
    const int64_t shape[2] = {cfg_int("text_len"), cfg_int("dim")};
    float *v = NULL;
    TT_OK(sk_st_read_f32(f, name, 2, shape, &v, NULL));
    sk_st_close(&f);
    return v;
}

static void expect_close(const float *got, const float *ref, size_t n, const char *what)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        cr_assert(isfinite(got[i]), "%s: element %zu is %g", what, i, (double)got[i]);
        num += ((double)got[i] - ref[i]) * ((double)got[i] - ref[i]);
        den += (double)ref[i] * ref[i];
    }
    cr_assert(den > 0, "%s: reference is all zero", what);
    double rel = sqrt(num / den);
    sk_compare_result r = sk_compare(got, ref, n, 1e-8, 1e-4, 1e-3);
    char line[256];
    sk_compare_format(&r, got, ref, line, sizeof line);
    cr_assert(rel <= 1e-4 && r.ok, "%s: rel err %.3g (bound 1e-4); %s", what, rel, line);
}

/* ------------------------------------------------------------ cleaning */
Test(text, prompt_clean_matches_wan)
{
    const cJSON *p;
    int n = 0;
    cJSON_ArrayForEach(p, prompts())
    {
        char *got = NULL;
        TT_OK(sk_prompt_clean(str_of(p, "text"), &got));
        cr_expect_str_eq(got, str_of(p, "cleaned"), "prompt '%s': cleaned to '%s', Wan gives '%s'",
                         str_of(p, "key"), got, str_of(p, "cleaned"));
        free(got);
        n++;
    }
    cr_assert_geq(n, 10);
}

Test(text, prompt_clean_matches_wan_on_random_strings)
{
    const cJSON *cases = cJSON_GetObjectItem(g_manifest, "clean_cases"), *c;
    cr_assert(cJSON_IsArray(cases) && cJSON_GetArraySize(cases) >= 100, "manifest: no clean_cases");
    int bad = 0;
    cJSON_ArrayForEach(c, cases)
    {
        char *got = NULL;
        TT_OK(sk_prompt_clean(str_of(c, "text"), &got));
        if (strcmp(got, str_of(c, "cleaned")) && bad++ < 5)
            cr_log_error("clean('%s') = '%s', Wan gives '%s'", str_of(c, "text"), got,
                         str_of(c, "cleaned"));
        free(got);
    }
    cr_assert_eq(bad, 0, "%d of %d random strings cleaned differently from Wan", bad,
                 cJSON_GetArraySize(cases));
}

Test(text, prompt_clean_edge_cases)
{
    /* Python behaviour, written out: html.unescape's invalid code points give
     * nothing, &#0; gives U+FFFD, an invalid UTF-8 byte gives U+FFFD. */
    struct { const char *in, *out; } c[] = {
        {"", ""},
        {" \t\n ", ""},
        {"a&#1;b", "ab"},
        {"a&#0;b", "a\xEF\xBF\xBD" "b"},
        {"x\xFFy", "x\xEF\xBF\xBDy"},
        {"&#59;", ";"},
        {"&amp;lt;", "<"},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        char *got = NULL;
        TT_OK(sk_prompt_clean(c[i].in, &got));
        cr_expect_str_eq(got, c[i].out, "case %zu", i);
        free(got);
    }
    /* arbitrary bytes (invalid UTF-8, NUL-free): never fails, and the result
     * has no leading, trailing or doubled ASCII space */
    uint64_t st = 12345;
    for (int k = 0; k < 2000; k++) {
        char in[64];
        int n = k % 63;
        for (int i = 0; i < n; i++) {
            st = st * 6364136223846793005ull + 1442695040888963407ull;
            static const char pick[] = "&#;x1 \t\n<a\xc3\xa9\xe2\x80\x9c\xff\x80\xef\xbc\x81";
            in[i] = (st >> 33) % 3 ? pick[(st >> 40) % (sizeof pick - 1)] : (char)(1 + (st >> 50) % 255);
        }
        in[n] = 0;
        char *got = NULL;
        TT_OK(sk_prompt_clean(in, &got));
        size_t m = strlen(got);
        cr_assert(m == 0 || (got[0] != ' ' && got[m - 1] != ' '), "case %d: '%s'", k, got);
        cr_assert_null(strstr(got, "  "), "case %d: doubled space in '%s'", k, got);
        free(got);
    }
}

/* ------------------------------------------------------------ tokenizer */
Test(text, tokenizer_special_ids_from_model)
{
    NEED_SPM();
    sk_tokenizer *t = NULL;
    TT_OK(sk_tokenizer_load(SPM, &t));
    const cJSON *sp = cJSON_GetObjectItem(g_manifest, "special_ids");
    cr_assert_eq(sk_tokenizer_pad_id(t), cJSON_GetObjectItem(sp, "pad")->valueint);
    cr_assert_eq(sk_tokenizer_eos_id(t), cJSON_GetObjectItem(sp, "eos")->valueint);
    cr_assert_eq(sk_tokenizer_unk_id(t), cJSON_GetObjectItem(sp, "unk")->valueint);
    cr_assert_eq(sk_tokenizer_vocab_size(t), cfg_int("vocab"));
    cr_assert_str_eq(sk_tokenizer_piece(t, sk_tokenizer_eos_id(t)), "</s>");
    cr_assert_null(sk_tokenizer_piece(t, 1 << 20));
    sk_tokenizer_free(&t);
    cr_assert_null(t);
    /* a folder means its spiece.model (Wan ships google/umt5-xxl/) */
    char dir[300], cmd[700];
    snprintf(dir, sizeof dir, "%s/umt5-xxl", g_dir);
    snprintf(cmd, sizeof cmd, "mkdir -p '%s' && cp '%s' '%s/spiece.model'", dir, SPM, dir);
    cr_assert_eq(system(cmd), 0);
    TT_OK(sk_tokenizer_load(dir, &t));
    cr_assert(strstr(sk_tokenizer_source(t), "umt5-xxl/spiece.model"), "%s", sk_tokenizer_source(t));
    cr_assert_eq(sk_tokenizer_vocab_size(t), cfg_int("vocab"));
    sk_tokenizer_free(&t);
}

Test(text, tokenize_wan_matches_fixture)
{
    NEED_SPM();
    sk_tokenizer *t = NULL;
    TT_OK(sk_tokenizer_load(SPM, &t));
    const int T = cfg_int("text_len");
    int32_t ids[64];
    const cJSON *p;
    int n_trunc = 0, n_unk = 0;
    cJSON_ArrayForEach(p, prompts())
    {
        int len = -1;
        TT_OK(sk_tokenize_wan(t, str_of(p, "text"), T, ids, &len));
        const cJSON *want = cJSON_GetObjectItem(p, "ids");
        cr_assert_eq(cJSON_GetArraySize(want), T);
        cr_expect_eq(len, cJSON_GetObjectItem(p, "len")->valueint, "prompt '%s': len %d vs %d",
                     str_of(p, "key"), len, cJSON_GetObjectItem(p, "len")->valueint);
        for (int i = 0; i < T; i++)
            cr_expect_eq(ids[i], cJSON_GetArrayItem(want, i)->valueint,
                         "prompt '%s': id[%d] = %d, expected %d", str_of(p, "key"), i, ids[i],
                         cJSON_GetArrayItem(want, i)->valueint);
        n_trunc += len == T;
        for (int i = 0; i < len; i++) n_unk += ids[i] == sk_tokenizer_unk_id(t);
    }
    cr_assert_geq(n_trunc, 1, "no fixture prompt exercises truncation");
    cr_assert_geq(n_unk, 1, "no fixture prompt exercises <unk>");
    /* empty prompt: just EOS, then padding */
    int len = 0;
    TT_OK(sk_tokenize_wan(t, "", T, ids, &len));
    cr_assert_eq(len, 1);
    cr_assert_eq(ids[0], sk_tokenizer_eos_id(t));
    cr_assert_eq(ids[T - 1], sk_tokenizer_pad_id(t));
    /* text_len 1: only EOS fits */
    TT_OK(sk_tokenize_wan(t, "a red fox", 1, ids, &len));
    cr_assert(len == 1 && ids[0] == sk_tokenizer_eos_id(t));
    TT_FAILS(sk_tokenize_wan(t, "x", 0, ids, &len), SK_E_INVALID_ARG, "text_len");
    sk_tokenizer_free(&t);
}

Test(text, tokenizer_load_errors_name_the_file)
{
    NEED_SPM();
    sk_tokenizer *t = NULL;
    TT_FAILS(sk_tokenizer_load("/nonexistent/spiece.model", &t), SK_E_IO,
             "/nonexistent/spiece.model");
    cr_assert_null(t);
    char bad[300];
    snprintf(bad, sizeof bad, "%s/garbage.model", g_dir);
    FILE *f = fopen(bad, "wb");
    fputs("this is not a protobuf at all \xff\xfe", f);
    fclose(f);
    sk_error_clear();
    cr_assert_neq(sk_tokenizer_load(bad, &t), SK_OK);
    cr_assert(strstr(sk_error_message(), bad), "message '%s' lacks the path", sk_error_message());
    cr_assert_null(t);
}

/* ------------------------------------------------------------ buckets */
Test(text, relative_bucket_matches_spec_and_fixture)
{
    /* spec B3 table (n >= 8), bidirectional: +16 for keys after the query */
    for (int n = 0; n < 1024; n++) {
        int want = n < 8 ? n : n < 12 ? 8 : n < 16 ? 9 : n < 23 ? 10 : n < 32 ? 11
                 : n < 46 ? 12 : n < 64 ? 13 : n < 91 ? 14 : 15;
        cr_assert_eq(sk_umt5_bucket(-n, 32, 128), want, "rel -%d", n);
        if (n > 0) cr_assert_eq(sk_umt5_bucket(n, 32, 128), 16 + want, "rel +%d", n);
    }
    sk_st_file *f = NULL;
    TT_OK(sk_st_open(EXPECTED, &f));
    const sk_st_tensor *b = sk_st_find(f, "buckets");
    cr_assert(b && b->dtype == SK_DTYPE_I32 && b->ndim == 2);
    const int32_t *v = b->data;
    for (int64_t i = 0; i < b->shape[0]; i++)
        for (int64_t j = 0; j < b->shape[1]; j++)
            cr_assert_eq(sk_umt5_bucket(j - i, 32, 128), v[i * b->shape[1] + j]);
    sk_st_close(&f);
}

/* ------------------------------------------------------------ encoder */
static void encode_fixture_prompts(sk_umt5 *m, const char *what)
{
    const int T = cfg_int("text_len"), D = cfg_int("dim");
    float *out = malloc((size_t)T * D * sizeof *out);
    const cJSON *p;
    int n = 0;
    cJSON_ArrayForEach(p, prompts())
    {
        if (!cJSON_IsTrue(cJSON_GetObjectItem(p, "encode"))) continue;
        int32_t ids[64];
        const cJSON *want = cJSON_GetObjectItem(p, "ids");
        for (int i = 0; i < T; i++) ids[i] = cJSON_GetArrayItem(want, i)->valueint;
        int len = cJSON_GetObjectItem(p, "len")->valueint;
        for (int i = 0; i < T * D; i++) out[i] = NAN;
        TT_OK(sk_umt5_encode(m, ids, len, T, out));
        float *ref = expected_context(str_of(p, "key"));
        char label[128];
        snprintf(label, sizeof label, "%s, prompt '%s'", what, str_of(p, "key"));
        expect_close(out, ref, (size_t)len * D, label);
        for (int i = len * D; i < T * D; i++) {
            cr_assert_eq(ref[i], 0.0f, "fixture row %d is not zero", i / D);
            cr_assert_eq(out[i], 0.0f, "%s: padded row %d not zero", label, i / D);
        }
        free(ref);
        n++;
    }
    cr_assert_geq(n, 3);
    free(out);
}

Test(text, encoder_matches_pytorch)
{
    sk_umt5 *m = NULL;
    TT_OK(sk_umt5_load(g_be, WEIGHTS, NULL, &m));
    const sk_umt5_config *c = sk_umt5_config_of(m);
    cr_assert_eq(c->dim, cfg_int("dim"));
    cr_assert_eq(c->dim_attn, cfg_int("dim_attn"));
    cr_assert_eq(c->dim_ffn, cfg_int("dim_ffn"));
    cr_assert_eq(c->num_heads, cfg_int("num_heads"));
    cr_assert_eq(c->num_layers, cfg_int("num_layers"));
    cr_assert_eq(c->num_buckets, cfg_int("num_buckets"));
    cr_assert_eq(c->vocab, cfg_int("vocab"));
    encode_fixture_prompts(m, "Wan names");
    int32_t bad[2] = {5, (int32_t)c->vocab};
    float out[64 * 64];
    TT_FAILS(sk_umt5_encode(m, bad, 2, 2, out), SK_E_INVALID_ARG, "outside the vocabulary");
    TT_FAILS(sk_umt5_encode(m, bad, 3, 2, out), SK_E_INVALID_ARG, "rows");
    sk_umt5_free(&m);
    cr_assert_null(m);
}

/* Copies the fixture weights into dir/name with each tensor renamed by fn
 * (NULL drops it), plus optional extra tensors. */
typedef const char *(*rename_fn)(const char *name, char *buf, size_t cap);

static void write_variant(const char *path, rename_fn fn, const char *extra_name,
                          const int64_t *extra_shape, int extra_ndim, sk_dtype extra_dt,
                          const void *extra_data, size_t extra_bytes)
{
    sk_st_file *f = NULL;
    TT_OK(sk_st_open(WEIGHTS, &f));
    sk_st_writer *w = NULL;
    TT_OK(sk_st_writer_create(&w));
    for (int i = 0; i < f->n_tensors; i++) {
        const sk_st_tensor *t = &f->tensors[i];
        char buf[256];
        const char *nn = fn ? fn(t->name, buf, sizeof buf) : t->name;
        if (!nn) continue;
        TT_OK(sk_st_writer_add_raw(w, nn, t->dtype, t->ndim, t->shape, t->data, t->nbytes));
    }
    if (extra_name)
        TT_OK(sk_st_writer_add_raw(w, extra_name, extra_dt, extra_ndim, extra_shape, extra_data,
                                   extra_bytes));
    TT_OK(sk_st_writer_save(w, path));
    sk_st_writer_free(&w);
    sk_st_close(&f);
}

static const char *to_hf(const char *name, char *buf, size_t cap)
{
    int l;
    char rest[128];
    if (!strcmp(name, "token_embedding.weight")) return "shared.weight";
    if (!strcmp(name, "norm.weight")) return "encoder.final_layer_norm.weight";
    cr_assert_eq(sscanf(name, "blocks.%d.%127s", &l, rest), 2, "unexpected fixture name %s", name);
    static const char *map[][2] = {
        {"norm1.weight", "layer.0.layer_norm.weight"},
        {"attn.q.weight", "layer.0.SelfAttention.q.weight"},
        {"attn.k.weight", "layer.0.SelfAttention.k.weight"},
        {"attn.v.weight", "layer.0.SelfAttention.v.weight"},
        {"attn.o.weight", "layer.0.SelfAttention.o.weight"},
        {"pos_embedding.embedding.weight", "layer.0.SelfAttention.relative_attention_bias.weight"},
        {"norm2.weight", "layer.1.layer_norm.weight"},
        {"ffn.gate.0.weight", "layer.1.DenseReluDense.wi_0.weight"},
        {"ffn.fc1.weight", "layer.1.DenseReluDense.wi_1.weight"},
        {"ffn.fc2.weight", "layer.1.DenseReluDense.wo.weight"},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (!strcmp(rest, map[i][0])) {
            snprintf(buf, cap, "encoder.block.%d.%s", l, map[i][1]);
            return buf;
        }
    cr_assert_fail("no HF name for %s", name);
    return NULL;
}

static const char *to_hf_prefixed(const char *name, char *buf, size_t cap)
{
    char tmp[256];
    const char *h = to_hf(name, tmp, sizeof tmp);
    snprintf(buf, cap, "model.%s", h);
    return buf;
}

Test(text, hf_alias_names_bind)
{
    NEED_SPM();
    char path[300];
    snprintf(path, sizeof path, "%s/hf.safetensors", g_dir);
    /* HF files may carry the tied embedding twice and ComfyUI's tokenizer blob */
    size_t n_spm = 0;
    char *spm = slurp(SPM, &n_spm);
    write_variant(path, to_hf, "spiece_model", (int64_t[]){(int64_t)n_spm}, 1, SK_DTYPE_U8, spm,
                  n_spm);
    sk_umt5 *m = NULL;
    TT_OK(sk_umt5_load(g_be, path, NULL, &m));
    cr_assert(strstr(sk_umt5_describe(m), "HF names"), "%s", sk_umt5_describe(m));
    encode_fixture_prompts(m, "HF names");
    sk_umt5_free(&m);

    snprintf(path, sizeof path, "%s/hf_prefixed.safetensors", g_dir);
    write_variant(path, to_hf_prefixed, NULL, NULL, 0, SK_DTYPE_F32, NULL, 0);
    TT_OK(sk_umt5_load(g_be, path, NULL, &m));
    encode_fixture_prompts(m, "model.-prefixed HF names");
    sk_umt5_free(&m);

    /* the tokenizer comes from the spiece_model tensor when none is given */
    snprintf(path, sizeof path, "%s/hf.safetensors", g_dir);
    sk_text_opts o = {.encoder_path = path, .text_len = cfg_int("text_len")};
    sk_text_encoder *te = NULL;
    TT_OK(sk_text_encoder_create(g_be, &o, &te));
    float ctx[16 * 64];
    int len = 0;
    TT_OK(sk_text_encode(te, "A red fox at dawn.", ctx, &len, NULL));
    float *ref = expected_context("fox");
    expect_close(ctx, ref, (size_t)len * 64, "tokenizer from spiece_model tensor");
    free(ref);
    sk_text_encoder_free(&te);
    free(spm);
}

static const char *drop_fc2_1(const char *name, char *buf, size_t cap)
{
    return strcmp(name, "blocks.1.ffn.fc2.weight") ? name : NULL;
}

static const char *drop_embedding(const char *name, char *buf, size_t cap)
{
    return strcmp(name, "token_embedding.weight") ? name : NULL;
}

static const char *drop_o_0(const char *name, char *buf, size_t cap)
{
    return strcmp(name, "blocks.0.attn.o.weight") ? name : NULL;
}

static const char *rename_o(const char *name, char *buf, size_t cap)
{
    return strcmp(name, "blocks.0.attn.o.weight") ? name : "blocks.0.attn.out.weight";
}

Test(text, strict_binding_errors_name_the_tensor)
{
    char path[300];
    sk_umt5 *m = NULL;
    snprintf(path, sizeof path, "%s/missing.safetensors", g_dir);
    write_variant(path, drop_fc2_1, NULL, NULL, 0, SK_DTYPE_F32, NULL, 0);
    TT_FAILS(sk_umt5_load(g_be, path, NULL, &m), SK_E_FORMAT, "blocks.1.ffn.fc2.weight");
    cr_assert_null(m);

    snprintf(path, sizeof path, "%s/noembed.safetensors", g_dir);
    write_variant(path, drop_embedding, NULL, NULL, 0, SK_DTYPE_F32, NULL, 0);
    TT_FAILS(sk_umt5_load(g_be, path, NULL, &m), SK_E_FORMAT, "token_embedding.weight");

    snprintf(path, sizeof path, "%s/unexpected.safetensors", g_dir);
    write_variant(path, rename_o, NULL, NULL, 0, SK_DTYPE_F32, NULL, 0);
    TT_FAILS(sk_umt5_load(g_be, path, NULL, &m), SK_E_FORMAT, "blocks.0.attn.out.weight");

    /* mis-shaped: o is [dim, dim_attn/2] instead of [dim, dim_attn] */
    const int D = cfg_int("dim"), DA = cfg_int("dim_attn");
    float *junk = calloc((size_t)D * DA / 2, sizeof *junk);
    snprintf(path, sizeof path, "%s/misshaped.safetensors", g_dir);
    write_variant(path, drop_o_0, "blocks.0.attn.o.weight", (int64_t[]){D, DA / 2}, 2,
                  SK_DTYPE_F32, junk, (size_t)D * DA / 2 * sizeof *junk);
    free(junk);
    TT_FAILS(sk_umt5_load(g_be, path, NULL, &m), SK_E_SHAPE, "blocks.0.attn.o.weight");
    char want[64];
    snprintf(want, sizeof want, "expected [%d, %d]", D, DA);
    cr_assert(strstr(sk_error_message(), want), "'%s' lacks '%s'", sk_error_message(), want);

    /* a stray extra layer is incomplete: its missing tensors are named */
    float one[1] = {1};
    snprintf(path, sizeof path, "%s/strayed.safetensors", g_dir);
    write_variant(path, NULL, "blocks.7.norm1.weight", (int64_t[]){1}, 1, SK_DTYPE_F32, one,
                  sizeof one);
    TT_FAILS(sk_umt5_load(g_be, path, NULL, &m), SK_E_FORMAT, "blocks.2.");

    TT_FAILS(sk_umt5_load(g_be, "/nonexistent/t5.safetensors", NULL, &m), SK_E_IO,
             "/nonexistent/t5.safetensors");
}

Test(text, config_json_checked_against_shapes)
{
    char path[300];
    sk_umt5 *m = NULL;
    snprintf(path, sizeof path, "%s/config.json", g_dir);
    FILE *f = fopen(path, "w");
    fprintf(f, "{\"d_model\": %d, \"d_kv\": %d, \"d_ff\": %d, \"num_heads\": %d, \"num_layers\": %d,"
               " \"relative_attention_num_buckets\": 32, \"relative_attention_max_distance\": 128,"
               " \"dense_act_fn\": \"gelu_new\", \"is_gated_act\": true, \"vocab_size\": %d,"
               " \"layer_norm_epsilon\": 1e-06, \"text_len\": 16, \"model_type\": \"umt5\"}",
            cfg_int("dim"), cfg_int("dim_attn") / cfg_int("num_heads"), cfg_int("dim_ffn"),
            cfg_int("num_heads"), cfg_int("num_layers"), cfg_int("vocab"));
    fclose(f);
    TT_OK(sk_umt5_load(g_be, WEIGHTS, path, &m));
    cr_assert_eq(sk_umt5_config_of(m)->text_len, 16);
    encode_fixture_prompts(m, "with config.json");
    sk_umt5_free(&m);

    f = fopen(path, "w");
    fprintf(f, "{\"d_model\": 32}");
    fclose(f);
    TT_FAILS(sk_umt5_load(g_be, WEIGHTS, path, &m), SK_E_SHAPE, "dim = 32");

    f = fopen(path, "w");
    fprintf(f, "{\"dense_act_fn\": \"relu\", \"is_gated_act\": false}");
    fclose(f);
    TT_FAILS(sk_umt5_load(g_be, WEIGHTS, path, &m), SK_E_UNSUPPORTED, "relu");
    cr_assert_null(m);
}

/* ------------------------------------------------------------ cache, offload */
Test(text, cache_hit_skips_the_encoder)
{
    NEED_SPM();
    const int T = cfg_int("text_len"), D = cfg_int("dim");
    sk_text_opts o = {.encoder_path = WEIGHTS, .tokenizer_path = SPM, .text_len = T,
                      .cache_entries = 2};
    sk_text_encoder *te = NULL;
    TT_OK(sk_text_encoder_create(g_be, &o, &te));
    int64_t rows, dim;
    sk_text_encoder_shape(te, &rows, &dim);
    cr_assert(rows == T && dim == D);
    float *a = malloc((size_t)T * D * 4), *b = malloc((size_t)T * D * 4);
    int la = 0, lb = 0;
    int32_t ia[16], ib[16];
    TT_OK(sk_text_encode(te, "A red fox at dawn.", a, &la, ia));
    cr_assert_eq(sk_text_encoder_runs(te), 1);
    for (int i = 0; i < T * D; i++) b[i] = NAN;
    TT_OK(sk_text_encode(te, "A red fox at dawn.", b, &lb, ib));
    cr_assert_eq(sk_text_encoder_runs(te), 1, "a cached prompt ran the encoder again");
    cr_assert_eq(sk_text_encoder_hits(te), 1);
    cr_assert_eq(la, lb);
    cr_assert_arr_eq(a, b, (size_t)T * D * 4);
    cr_assert_arr_eq(ia, ib, sizeof ia);
    float *ref = expected_context("fox");
    expect_close(b, ref, (size_t)la * D, "cached context");
    free(ref);
    /* LRU of 2: fox, messy, long evicts fox (least recent) */
    TT_OK(sk_text_encode(te, "  A cat &amp; a dog\t\n  play &lt;fetch&gt; ", b, &lb, NULL));
    TT_OK(sk_text_encode(te, "A red fox at dawn.", b, &lb, NULL)); /* hit: fox now newest */
    cr_assert_eq(sk_text_encoder_runs(te), 2);
    uint64_t allocs = g_be->n_allocs;
    TT_OK(sk_text_encode(te, "another prompt", b, &lb, NULL));    /* evicts messy */
    cr_assert_eq(g_be->n_allocs, allocs, "a later encode allocated backend memory");
    TT_OK(sk_text_encode(te, "A red fox at dawn.", b, &lb, NULL)); /* still cached */
    cr_assert_eq(sk_text_encoder_runs(te), 3);
    TT_OK(sk_text_encode(te, "  A cat &amp; a dog\t\n  play &lt;fetch&gt; ", b, &lb, NULL));
    cr_assert_eq(sk_text_encoder_runs(te), 4, "evicted prompt should run again");
    ref = expected_context("messy");
    expect_close(b, ref, (size_t)lb * D, "re-encoded after eviction");
    free(ref);
    sk_text_encoder_free(&te);
    cr_assert_null(te);
    free(a);
    free(b);
}

Test(text, offload_frees_and_reloads)
{
    NEED_SPM();
    const int T = cfg_int("text_len"), D = cfg_int("dim");
    sk_text_opts o = {.encoder_path = WEIGHTS, .tokenizer_path = SPM, .text_len = T,
                      .offload = 1};
    sk_text_encoder *te = NULL;
    size_t live0 = g_be->bytes_live;
    TT_OK(sk_text_encoder_create(g_be, &o, &te));
    cr_assert_eq(sk_text_encoder_resident(te), 1, "create loads (and validates) the weights");
    float *a = malloc((size_t)T * D * 4);
    int len = 0;
    TT_OK(sk_text_encode(te, "A red fox at dawn.", a, &len, NULL));
    cr_assert_eq(sk_text_encoder_resident(te), 0, "offload: weights still resident after use");
    cr_assert_eq(sk_text_encoder_loads(te), 1);
    cr_assert_eq(g_be->bytes_live, live0, "offload left %zu backend bytes behind",
                 g_be->bytes_live - live0);
    float *ref = expected_context("fox");
    expect_close(a, ref, (size_t)len * D, "offloaded encoder");
    free(ref);
    TT_OK(sk_text_encode(te, "A red fox at dawn.", a, &len, NULL));
    cr_assert_eq(sk_text_encoder_loads(te), 1, "a cached prompt reloaded the weights");
    TT_OK(sk_text_encode(te, "Time-lapse of clouds", a, &len, NULL));
    cr_assert_eq(sk_text_encoder_loads(te), 2);
    cr_assert_eq(sk_text_encoder_resident(te), 0);
    cr_assert_eq(sk_text_encoder_runs(te), 2);
    sk_text_encoder_free(&te);
    free(a);
}

Test(text, text_encoder_end_to_end)
{
    NEED_SPM();
    const int T = cfg_int("text_len"), D = cfg_int("dim");
    sk_text_opts o = {.encoder_path = WEIGHTS, .tokenizer_path = SPM, .text_len = T};
    sk_text_encoder *te = NULL;
    TT_OK(sk_text_encoder_create(g_be, &o, &te));
    float *ctx = malloc((size_t)T * D * 4);
    const cJSON *p;
    cJSON_ArrayForEach(p, prompts())
    {
        if (!cJSON_IsTrue(cJSON_GetObjectItem(p, "encode"))) continue;
        int len = 0;
        TT_OK(sk_text_encode(te, str_of(p, "text"), ctx, &len, NULL));
        cr_assert_eq(len, cJSON_GetObjectItem(p, "len")->valueint);
        float *ref = expected_context(str_of(p, "key"));
        expect_close(ctx, ref, (size_t)T * D, str_of(p, "key"));
        free(ref);
    }
    free(ctx);
    sk_text_encoder_free(&te);
    sk_text_opts bad = {.encoder_path = WEIGHTS, .tokenizer_path = SPM, .text_len = -3};
    TT_FAILS(sk_text_encoder_create(g_be, &bad, &te), SK_E_INVALID_ARG, "text_len");
    cr_assert_null(te);
}

/* ------------------------------------------------------------ CLI */
static const char *binary(void)
{
    const char *b = getenv("SK_SINKSTREAM");
    return b && *b ? b : SK_BINARY_DIR "/sinkstream";
}

static int run_cli(const char *a0, ...)
{
    const char *argv[32];
    int n = 0;
    argv[n++] = binary();
    va_list ap;
    va_start(ap, a0);
    for (const char *a = a0; a && n < 31; a = va_arg(ap, const char *)) argv[n++] = a;
    va_end(ap);
    argv[n] = NULL;
    char err[300];
    snprintf(err, sizeof err, "%s/.stderr", g_dir);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    pid_t pid;
    int rc = posix_spawn(&pid, argv[0], &fa, NULL, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    cr_assert_eq(rc, 0, "cannot start %s: %s (set SK_SINKSTREAM)", argv[0], strerror(rc));
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status), "%s died (signal %d)", argv[0],
              WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    return WEXITSTATUS(status);
}

Test(text, cli_encode_text_writes_context)
{
    NEED_SPM();
    const int T = cfg_int("text_len"), D = cfg_int("dim");
    char out[300], tl[16];
    snprintf(out, sizeof out, "%s/ctx.safetensors", g_dir);
    snprintf(tl, sizeof tl, "%d", T);
    const char *prompt = "  A cat &amp; a dog\t\n  play &lt;fetch&gt; ";
    int rc = run_cli("encode-text", "--text-encoder", WEIGHTS, "--tokenizer", SPM, "--prompt",
                     prompt, "--text-len", tl, "--out", out, NULL);
    if (rc != 0) {
        char e[300];
        snprintf(e, sizeof e, "%s/.stderr", g_dir);
        char *msg = slurp(e, NULL);
        cr_assert_fail("encode-text exited %d: %s", rc, msg);
    }
    sk_st_file *f = NULL;
    TT_OK(sk_st_open(out, &f));
    float *ctx = NULL;
    TT_OK(sk_st_read_f32(f, "context", 2, (int64_t[]){T, D}, &ctx, NULL));
    cr_assert_eq(sk_st_find(f, "context")->dtype, SK_DTYPE_F32);
    cr_assert_str_eq(sk_st_meta(f, "prompt"), prompt);
    float *ref = expected_context("messy");
    expect_close(ctx, ref, (size_t)T * D, "encode-text output");
    free(ref);
    free(ctx);
    sk_st_close(&f);

    /* a prompt schedule: one prompt a line -> context.0, context.1, ... */
    const cJSON *pr, *fox = NULL, *lng = NULL;
    cJSON_ArrayForEach(pr, prompts())
    {
        if (!strcmp(str_of(pr, "key"), "fox")) fox = pr;
        if (!strcmp(str_of(pr, "key"), "long")) lng = pr;
    }
    cr_assert(fox && lng);
    char pf[300];
    snprintf(pf, sizeof pf, "%s/prompts.txt", g_dir);
    FILE *fp = fopen(pf, "w");
    fprintf(fp, "%s\n\n%s\r\n%s\n", str_of(fox, "text"), str_of(lng, "text"), str_of(fox, "text"));
    fclose(fp);
    rc = run_cli("encode-text", "--text-encoder", WEIGHTS, "--tokenizer", SPM, "--prompt-file", pf,
                 "--text-len", tl, "--out", out, NULL);
    cr_assert_eq(rc, 0, "encode-text --prompt-file exited %d", rc);
    TT_OK(sk_st_open(out, &f));
    const char *names[] = {"context", "context.0", "context.1", "context.2"};
    const char *keys[] = {"fox", "fox", "long", "fox"};
    for (int i = 0; i < 4; i++) {
        TT_OK(sk_st_read_f32(f, names[i], 2, (int64_t[]){T, D}, &ctx, NULL));
        ref = expected_context(keys[i]);
        expect_close(ctx, ref, (size_t)T * D, names[i]);
        free(ref);
        free(ctx);
    }
    cr_assert_null(sk_st_find(f, "context.3"), "the blank line made a prompt");
    cr_assert_str_eq(sk_st_meta(f, "prompt.1"), str_of(lng, "text"));
    sk_st_close(&f);

    /* usage errors exit 2 before loading anything */
    cr_assert_eq(run_cli("encode-text", "--text-encoder", WEIGHTS, "--prompt", "x", "--prompt-file",
                         pf, "--out", out, NULL), 2);
    cr_assert_eq(run_cli("encode-text", "--text-encoder", WEIGHTS, "--out", out, NULL), 2);
    cr_assert_eq(run_cli("encode-text", "--text-encoder", "/nonexistent.safetensors", "--prompt",
                         "x", "--out", out, NULL), 2);
    /* runtime failure (no tokenizer anywhere) exits 1 */
    cr_assert_eq(run_cli("encode-text", "--text-encoder", WEIGHTS, "--prompt", "x", "--out", out,
                         NULL), 1);
}

/* Diffusers layout: text_encoder/{config.json, model.safetensors.index.json, shards} */
Test(text, sharded_hf_folder_binds)
{
    char dir[300], path[400];
    snprintf(dir, sizeof dir, "%s/text_encoder", g_dir);
    cr_assert_eq(mkdir(dir, 0755), 0);
    sk_st_file *f = NULL;
    TT_OK(sk_st_open(WEIGHTS, &f));
    sk_st_writer *w[2] = {NULL, NULL};
    TT_OK(sk_st_writer_create(&w[0]));
    TT_OK(sk_st_writer_create(&w[1]));
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    FILE *idx = fopen(path, "w");
    fprintf(idx, "{\"metadata\": {\"total_size\": 1}, \"weight_map\": {");
    for (int i = 0; i < f->n_tensors; i++) {
        const sk_st_tensor *t = &f->tensors[i];
        char buf[256];
        const char *hf = to_hf(t->name, buf, sizeof buf);
        int shard = i % 2;
        TT_OK(sk_st_writer_add_raw(w[shard], hf, t->dtype, t->ndim, t->shape, t->data, t->nbytes));
        fprintf(idx, "%s\"%s\": \"model-0000%d-of-00002.safetensors\"", i ? ", " : "", hf,
                shard + 1);
    }
    fprintf(idx, "}}");
    fclose(idx);
    for (int s = 0; s < 2; s++) {
        snprintf(path, sizeof path, "%s/model-0000%d-of-00002.safetensors", dir, s + 1);
        TT_OK(sk_st_writer_save(w[s], path));
        sk_st_writer_free(&w[s]);
    }
    sk_st_close(&f);
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *cf = fopen(path, "w");
    fprintf(cf, "{\"d_model\": %d, \"relative_attention_max_distance\": 128, \"text_len\": 16}",
            cfg_int("dim"));
    fclose(cf);

    sk_umt5 *m = NULL;
    TT_OK(sk_umt5_load(g_be, dir, NULL, &m));
    cr_assert_eq(sk_umt5_config_of(m)->text_len, 16, "the folder's config.json was not read");
    encode_fixture_prompts(m, "sharded HF folder");
    sk_umt5_free(&m);
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    TT_OK(sk_umt5_load(g_be, path, NULL, &m));
    encode_fixture_prompts(m, "sharded HF index");
    sk_umt5_free(&m);

    /* a shard the index names but that is missing */
    snprintf(path, sizeof path, "%s/model-00002-of-00002.safetensors", dir);
    cr_assert_eq(unlink(path), 0);
    TT_FAILS(sk_umt5_load(g_be, dir, NULL, &m), SK_E_IO, "model-00002-of-00002.safetensors");
    cr_assert_null(m);
}
