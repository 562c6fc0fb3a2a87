/* test_dit_load.c - DiT config sources and strict weight binding: every
 * failure is an error that names the tensor, the file and expected vs got.
 * Mutated copies of the tiny checkpoint are written with the safetensors
 * writer into a temporary directory. */
#include "dit_test_util.h"

#include <unistd.h>

#include "dit/names.h"

typedef enum { MUT_NONE, MUT_DROP, MUT_EXTRA, MUT_SHAPE, MUT_NAN, MUT_INF_BF16, MUT_INT, MUT_LAYER,
               MUT_DUP, MUT_BF16 } mut_kind;

static char g_dir[64];

static void mk_dir(void)
{
    strcpy(g_dir, "/tmp/sk_dit_load_XXXXXX");
    cr_assert_not_null(mkdtemp(g_dir));
}

/* Writes a copy of dit_tiny with one mutation applied to tensor `target`;
 * meta: the "config" metadata to store (NULL: none). Returns the path. */
static char *mutant(const char *file, mut_kind k, const char *target, const char *meta)
{
    static char path[256];
    snprintf(path, sizeof path, "%s/%s", g_dir, file);
    sk_st_file *src;
    dt_ok(sk_st_open(DIT_FIX "dit_tiny.safetensors", &src), "open tiny");
    sk_st_writer *w;
    dt_ok(sk_st_writer_create(&w), "writer");
    for (int i = 0; i < src->n_tensors; i++) {
        const sk_st_tensor *t = &src->tensors[i];
        int hit = target && !strcmp(t->name, target);
        int64_t shape[6];
        memcpy(shape, t->shape, sizeof shape);
        if (hit && k == MUT_DROP) continue;
        float *f = NULL;
        dt_ok(sk_st_read_f32(src, t->name, 0, NULL, &f, NULL), "read");
        size_t n = t->nbytes / 4;
        if (hit && k == MUT_NAN) f[n / 2] = NAN;
        if (hit && k == MUT_SHAPE) { shape[0] = t->shape[0] / 2; n /= 2; }
        if (hit && k == MUT_INT) {
            int32_t *iv = calloc(n, 4);
            dt_ok(sk_st_writer_add_raw(w, t->name, SK_DTYPE_I32, t->ndim, shape, iv, n * 4), "add");
            free(iv);
        } else if (k == MUT_BF16 || (hit && k == MUT_INF_BF16)) {
            if (hit) f[1] = INFINITY;
            dt_ok(sk_st_writer_add_f32(w, t->name, SK_DTYPE_BF16, t->ndim, shape, f), "add");
        } else {
            dt_ok(sk_st_writer_add_f32(w, t->name, SK_DTYPE_F32, t->ndim, shape, f), "add");
        }
        if (hit && k == MUT_DUP) {
            char nm[256];
            snprintf(nm, sizeof nm, "model.%s", t->name);
            dt_ok(sk_st_writer_add_f32(w, nm, SK_DTYPE_F32, t->ndim, shape, f), "dup");
        }
        free(f);
    }
    if (k == MUT_EXTRA || k == MUT_LAYER) {
        float z[128] = {0};
        int64_t s1[1] = {128};
        dt_ok(sk_st_writer_add_f32(w, k == MUT_EXTRA ? "blocks.0.self_attn.lora_A.weight"
                                                     : "blocks.2.norm3.weight",
                                   SK_DTYPE_F32, 1, s1, z), "extra");
    }
    if (meta) dt_ok(sk_st_writer_meta(w, "config", meta), "meta");
    dt_ok(sk_st_writer_save(w, path), "save");
    sk_st_writer_free(&w);
    sk_st_close(&src);
    return path;
}

static const char *TINY_CFG = "{\"dim\": 128, \"ffn_dim\": 256, \"num_heads\": 2, \"num_layers\": 2, "
                              "\"in_dim\": 4, \"out_dim\": 4, \"text_dim\": 64, \"freq_dim\": 32, "
                              "\"eps\": 1e-06, \"patch_size\": [1, 2, 2], \"text_len\": 16}";

/* Loading must fail with `want` and a message holding every needle. */
static void expect_fail(const char *path, sk_status want, const char *n1, const char *n2,
                        const char *n3)
{
    sk_backend *be;
    dt_ok(sk_backend_cpu_create(&be), "cpu");
    sk_dit_model *m = NULL;
    sk_status st = sk_dit_load(path, NULL, be, SK_DIT_WDTYPE_AS_STORED, &m);
    const char *msg = sk_error_message();
    cr_expect_eq(st, want, "status %s, expected %s: %s", sk_status_name(st), sk_status_name(want), msg);
    cr_expect_null(m);
    const char *needles[3] = {n1, n2, n3};
    for (int i = 0; i < 3; i++)
        if (needles[i]) cr_expect(strstr(msg, needles[i]) != NULL, "message lacks '%s': %s", needles[i], msg);
    cr_expect(strstr(msg, path) != NULL, "message does not name the file: %s", msg);
    sk_backend_free_(&be);
}

Test(dit_load, config_from_metadata_json_file_and_shapes)
{
    sk_backend *be;
    dt_ok(sk_backend_cpu_create(&be), "cpu");
    sk_dit_model *m = dt_load_tiny(be); /* metadata "config" */
    cr_expect_eq(m->cfg.num_heads, 2);
    cr_expect_eq(m->cfg.head_dim, 64);
    cr_expect_eq(m->cfg.text_len, 16);
    sk_dit_free(&m);
    cr_expect_null(m);

    sk_dit_config c;
    dt_ok(sk_dit_config_from_file(DIT_FIX "config.json", &c), "config.json");
    cr_expect(c.dim == 128 && c.ffn_dim == 256 && c.num_heads == 2 && c.head_dim == 64 &&
              c.num_layers == 2 && c.in_dim == 4 && c.out_dim == 4 && c.text_dim == 64 &&
              c.freq_dim == 32 && c.text_len == 16 && fabsf(c.eps - 1e-6f) < 1e-12f);

    /* shapes only (the prefixed copy has no config metadata): head_dim 128 assumed */
    sk_st_file *f;
    dt_ok(sk_st_open(DIT_FIX "dit_tiny_prefixed.safetensors", &f), "open prefixed");
    cr_assert_null(sk_st_meta(f, "config"));
    dt_ok(sk_dit_config_infer(f, &c), "infer");
    cr_expect(c.dim == 128 && c.ffn_dim == 256 && c.num_layers == 2 && c.in_dim == 4 &&
              c.out_dim == 4 && c.text_dim == 64 && c.freq_dim == 32);
    cr_expect_eq(c.head_dim, 128);
    cr_expect_eq(c.num_heads, 1);
    cr_expect_eq(c.text_len, 512);
    sk_st_close(&f);
    dt_ok(sk_dit_load(DIT_FIX "dit_tiny_prefixed.safetensors", NULL, be, SK_DTYPE_BF16, &m),
          "load inferred, bf16 weights");
    cr_expect_eq(m->g[SK_DW_TEXT0_W].dtype, SK_DTYPE_BF16);
    cr_expect_eq(m->g[SK_DW_TEXT0_B].dtype, SK_DTYPE_F32, "vectors stay in the act dtype");
    cr_expect_eq(m->blocks[1].w[SK_DB_MOD].shape[0], 6);
    sk_dit_free(&m);
    sk_backend_free_(&be);
}

Test(dit_load, bad_configs_are_clear_errors)
{
    sk_dit_config c;
    struct { const char *json, *needle; } cases[] = {
        {"{\"dim\": 128, \"num_heads\": 3, \"num_layers\": 2}", "num_heads 3"},
        {"{\"dim\": 128, \"num_heads\": 2, \"num_layers\": 2, \"freq_dim\": 33}", "freq_dim 33"},
        {"{\"dim\": 128, \"num_heads\": 2, \"num_layers\": 2, \"patch_size\": [1, 4, 4]}", "patch_size"},
        {"{\"num_heads\": 2, \"num_layers\": 2}", "\"dim\""},
        {"{\"dim\": 128, \"num_heads\": 2}", "num_layers"},
        {"{\"dim\": 128.5, \"num_heads\": 2, \"num_layers\": 2}", "integer"},
        {"{\"dim\": 128, \"num_heads\": 2, \"num_layers\": -1}", "num_layers = -1"},
        {"[1, 2]", "JSON object"},
        {"{\"dim\": 12", "not valid JSON"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sk_status st = sk_dit_config_from_json(cases[i].json, "test config", &c);
        cr_expect_neq(st, SK_OK, "accepted: %s", cases[i].json);
        cr_expect(strstr(sk_error_message(), cases[i].needle) != NULL, "'%s': message lacks '%s': %s",
                  cases[i].json, cases[i].needle, sk_error_message());
        cr_expect(strstr(sk_error_message(), "test config") != NULL);
    }
    /* diffusers aliases */
    dt_ok(sk_dit_config_from_json("{\"num_attention_heads\": 2, \"attention_head_dim\": 64, "
                                  "\"num_layers\": 2, \"in_channels\": 4, \"out_channels\": 4}",
                                  "diffusers", &c), "diffusers names");
    cr_expect(c.dim == 128 && c.num_heads == 2 && c.in_dim == 4 && c.out_dim == 4);
    cr_expect_neq(sk_dit_config_from_file("/nonexistent/config.json", &c), SK_OK);
    cr_expect(strstr(sk_error_message(), "/nonexistent/config.json") != NULL);

    /* a metadata config that contradicts the tensors */
    mk_dir();
    char *p = mutant("badmeta.safetensors", MUT_NONE, NULL,
                     "{\"dim\": 128, \"num_heads\": 2, \"num_layers\": 3, \"in_dim\": 4, "
                     "\"out_dim\": 4, \"ffn_dim\": 256, \"text_dim\": 64, \"freq_dim\": 32}");
    expect_fail(p, SK_E_FORMAT, "missing tensor", "blocks.2.", NULL);
    unlink(p);
    p = mutant("badmeta2.safetensors", MUT_NONE, NULL, "{\"dim\": 128, \"num_heads\": 5, \"num_layers\": 2}");
    expect_fail(p, SK_E_INVALID_ARG, "num_heads 5", "__metadata__", NULL);
    unlink(p);
    rmdir(g_dir);
}

Test(dit_load, binding_errors_name_tensor_file_expected_got)
{
    mk_dir();
    char *p;
    p = mutant("drop.safetensors", MUT_DROP, "blocks.1.cross_attn.norm_k.weight", TINY_CFG);
    expect_fail(p, SK_E_FORMAT, "missing tensor 'blocks.1.cross_attn.norm_k.weight'", "[128]", NULL);
    unlink(p);
    p = mutant("extra.safetensors", MUT_EXTRA, NULL, TINY_CFG);
    expect_fail(p, SK_E_FORMAT, "unexpected tensor 'blocks.0.self_attn.lora_A.weight'", NULL, NULL);
    unlink(p);
    p = mutant("layer.safetensors", MUT_LAYER, NULL, TINY_CFG);
    expect_fail(p, SK_E_FORMAT, "blocks.2.norm3.weight", "2 layers", NULL);
    unlink(p);
    p = mutant("shape.safetensors", MUT_SHAPE, "blocks.1.ffn.0.weight", TINY_CFG);
    expect_fail(p, SK_E_SHAPE, "blocks.1.ffn.0.weight", "[128, 128]", "expected [256, 128]");
    unlink(p);
    p = mutant("nan.safetensors", MUT_NAN, "blocks.0.self_attn.q.weight", TINY_CFG);
    expect_fail(p, SK_E_FORMAT, "blocks.0.self_attn.q.weight", "NaN", "8192");
    unlink(p);
    p = mutant("infbf16.safetensors", MUT_INF_BF16, "head.modulation", TINY_CFG);
    expect_fail(p, SK_E_FORMAT, "head.modulation", "non-finite", "index 1");
    unlink(p);
    p = mutant("int.safetensors", MUT_INT, "time_embedding.2.bias", TINY_CFG);
    expect_fail(p, SK_E_DTYPE, "time_embedding.2.bias", "I32", "float dtype");
    unlink(p);
    p = mutant("dup.safetensors", MUT_DUP, "patch_embedding.bias", TINY_CFG);
    expect_fail(p, SK_E_FORMAT, "model.patch_embedding.bias", "both map to", NULL);
    unlink(p);
    /* a clean bf16 copy loads, and its weights keep bf16 when asked "as stored" */
    p = mutant("bf16.safetensors", MUT_BF16, NULL, TINY_CFG);
    sk_backend *be;
    dt_ok(sk_backend_cpu_create(&be), "cpu");
    sk_dit_model *m = NULL;
    dt_ok(sk_dit_load(p, NULL, be, SK_DIT_WDTYPE_AS_STORED, &m), "bf16 copy");
    cr_expect_eq(m->blocks[0].w[SK_DB_FFN0_W].dtype, SK_DTYPE_BF16);
    cr_expect_eq(m->blocks[0].w[SK_DB_FFN0_B].dtype, SK_DTYPE_F32);
    sk_dit_free(&m);
    sk_backend_free_(&be);
    unlink(p);
    rmdir(g_dir);
}

Test(dit_load, prefix_rules)
{
    char b[256];
    const char *cases[][2] = {
        {"model.blocks.0.ffn.0.weight", "blocks.0.ffn.0.weight"},
        {"generator_ema.model.head.head.bias", "head.head.bias"},
        {"generator.model._orig_mod.patch_embedding.weight", "patch_embedding.weight"},
        {"model.blocks.3._fsdp_wrapped_module.norm3.bias", "blocks.3.norm3.bias"},
        {"_orig_mod.blocks.0._checkpoint_wrapped_module.modulation", "blocks.0.modulation"},
        {"head.modulation", "head.modulation"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cr_assert(sk_dit_strip_name(cases[i][0], b, sizeof b));
        cr_expect_str_eq(b, cases[i][1], "'%s'", cases[i][0]);
    }
    int g, bl, l;
    cr_expect(sk_dit_parse_name("blocks.12.cross_attn.v.bias", &g, &bl, &l));
    cr_expect(bl == SK_DB_CA_V_B && l == 12 && g < 0);
    cr_expect(!sk_dit_parse_name("blocks.01.norm3.bias", &g, &bl, &l), "leading zero");
    cr_expect(!sk_dit_parse_name("blocks.x.norm3.bias", &g, &bl, &l));
    cr_expect(!sk_dit_parse_name("blocks.0.norm1.weight", &g, &bl, &l), "norm1 has no params");
}
