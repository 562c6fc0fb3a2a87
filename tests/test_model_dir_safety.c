/* test_model_dir_safety.c - a model directory is input from whoever made it
 * (a download, a shared folder): its model.json must not reach memory it does
 * not own, nor set options that are not about the model (where files go, the
 * control API's address and token), nor make sinkstream read files outside
 * the directory. Each case writes a small model directory around the demo
 * DiT and runs `sinkstream generate --model` (under ASan in CI). */
#include "common/cli_run.h"
#include "tmpdir_util.h"

#include <sys/stat.h>

#define FIX SK_SOURCE_DIR "/tests/fixtures/"

static void mk(void) { tmp_make("sk_mdsafe_"); }
TestSuite(model_dir_safety, .init = mk, .fini = tmp_remove, .timeout = 120);

static void put(const char *name, const char *text)
{
    FILE *f = fopen(tmp_path(name), "w");
    cr_assert_not_null(f, "%s", tmp_path(name));
    fputs(text, f);
    fclose(f);
}

static void copy_file(const char *from, const char *to)
{
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", from, to);
    cr_assert_eq(system(cmd), 0);
}

/* DIR/m with the demo DiT and a model.json whose "generate" is gen_json. */
static const char *model(const char *gen_json)
{
    mkdir(tmp_path("m"), 0755);
    copy_file(FIX "demo/dit_demo_c16.safetensors", tmp_path("m/dit.safetensors"));
    char j[4096];
    snprintf(j, sizeof j,
             "{\"format\": \"sinkstream-model\", \"version\": 1, \"family\": \"self-forcing\",\n"
             " \"files\": {\"dit\": \"dit.safetensors\"},\n \"generate\": %s}\n", gen_json);
    put("m/model.json", j);
    return tmp_path("m");
}

static int exists(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0;
}

/* The model's own defaults (size, frames, KV) still apply from model.json. */
Test(model_dir_safety, model_defaults_apply)
{
    const char *m = model("{\"frames\": 6, \"kv-policy\": \"sink\", \"kv-window\": 6, "
                          "\"kv-sink\": 3, \"height\": 32, \"width\": 32, \"steps\": [1000, 500]}");
    tu_result r = tu_run("generate", "--model", m, "--text-embeds", FIX "dit/embeds.safetensors",
                         "--latents-out", tmp_path("lat.safetensors"), "--no-decode", NULL);
    cr_assert_eq(r.code, 0, "%s", r.err);
    cr_expect(strstr(r.err, "6 latent frames") && strstr(r.err, "KV sink window 6 sink 3"), "%s",
              r.err);
    cr_expect(exists(tmp_path("lat.safetensors")));
    tu_result_free(&r);
}

/* Issue 15 #1 and #2: a string under "generate" was kept as a pointer into a
 * loop-local buffer (ASan: stack-use-after-scope; release: latents written
 * to ''), and any option could be set there. Now string defaults point into
 * model.json (tools/cmd_generate.c), and options that are not about the
 * model are refused, naming the key, before anything is written. */
static void expect_refused(const char *key, const char *value)
{
    char g[600];
    snprintf(g, sizeof g, "{\"frames\": 3, \"height\": 32, \"width\": 32, \"%s\": %s}", key,
             value);
    const char *m = model(g);
    tu_result r = tu_run("generate", "--model", m, "--text-embeds", FIX "dit/embeds.safetensors",
                         "--no-decode", "--latents-out", tmp_path("lat.safetensors"), NULL);
    cr_expect_eq(r.code, 2, "generate.%s was accepted: %s", key, r.err);
    cr_expect(strstr(r.err, "model.json") && strstr(r.err, key) &&
                  strstr(r.err, "is not a default a model directory may set"),
              "generate.%s: %s", key, r.err);
    cr_expect(!exists(tmp_path("lat.safetensors")), "generate.%s: the run went on", key);
    cr_expect(!exists(tmp_path("from_json.safetensors")), "generate.%s: a file was written", key);
    tu_result_free(&r);
}

Test(model_dir_safety, options_not_about_the_model_are_refused)
{
    char v[400];
    snprintf(v, sizeof v, "\"%s\"", tmp_path("from_json.safetensors"));
    expect_refused("latents-out", v);
    expect_refused("dump-steps", v);
    expect_refused("frames-dir", v);
    expect_refused("control-bind", "\"0.0.0.0\"");
    expect_refused("control-token", "\"x\"");
    expect_refused("control-port", "8088");
    expect_refused("tee", v);
    expect_refused("noise-file", v);
}

/* An option this build does not know stays a warning (newer converters). */
Test(model_dir_safety, unknown_option_is_a_warning)
{
    const char *m = model("{\"frames\": 3, \"height\": 32, \"width\": 32, \"future-option\": 7}");
    tu_result r = tu_run("generate", "--model", m, "--text-embeds", FIX "dit/embeds.safetensors",
                         "--no-decode", NULL);
    cr_expect_eq(r.code, 0, "%s", r.err);
    cr_expect(strstr(r.err, "generate.future-option is not an option"), "%s", r.err);
    tu_result_free(&r);
}

/* Issue 15 #8: a model file that is a symlink out of the directory was read. */
Test(model_dir_safety, symlink_outside_the_directory_is_refused)
{
    model("{\"frames\": 3, \"height\": 32, \"width\": 32}");
    cr_assert_eq(unlink(tmp_path("m/dit.safetensors")), 0);
    cr_assert_eq(symlink(FIX "demo/dit_demo_c16.safetensors", tmp_path("m/dit.safetensors")), 0);
    tu_result r = tu_run("generate", "--model", tmp_path("m"), "--text-embeds",
                         FIX "dit/embeds.safetensors", "--no-decode", NULL);
    cr_expect_eq(r.code, 2, "%s", r.err);
    cr_expect(strstr(r.err, "files.dit") && strstr(r.err, "outside the directory") &&
                  strstr(r.err, "--allow-outside"), "%s", r.err);
    tu_result_free(&r);
    r = tu_run("generate", "--model", tmp_path("m"), "--allow-outside", "--text-embeds",
               FIX "dit/embeds.safetensors", "--no-decode", NULL);
    cr_expect_eq(r.code, 0, "--allow-outside: %s", r.err);
    tu_result_free(&r);
    /* a symlink that stays inside is fine */
    cr_assert_eq(unlink(tmp_path("m/dit.safetensors")), 0);
    copy_file(FIX "demo/dit_demo_c16.safetensors", tmp_path("m/real.safetensors"));
    cr_assert_eq(symlink("real.safetensors", tmp_path("m/dit.safetensors")), 0);
    r = tu_run("generate", "--model", tmp_path("m"), "--text-embeds", FIX "dit/embeds.safetensors",
               "--no-decode", NULL);
    cr_expect_eq(r.code, 0, "%s", r.err);
    tu_result_free(&r);
}

/* Issue 15 #8: the JSON readers took trailing garbage and duplicate keys. */
Test(model_dir_safety, json_trailing_text_and_duplicate_keys_are_refused)
{
    const char *m = model("{\"frames\": 3, \"frames\": 9}");
    tu_result r = tu_run("generate", "--model", m, "--text-embeds", FIX "dit/embeds.safetensors",
                         "--no-decode", NULL);
    cr_expect_eq(r.code, 2, "%s", r.err);
    cr_expect(strstr(r.err, "model.json") && strstr(r.err, "key \"frames\" appears twice"), "%s",
              r.err);
    tu_result_free(&r);
    m = model("{\"frames\": 3}} trailing");
    r = tu_run("generate", "--model", m, "--text-embeds", FIX "dit/embeds.safetensors",
               "--no-decode", NULL);
    cr_expect_eq(r.code, 2, "%s", r.err);
    cr_expect(strstr(r.err, "model.json") && strstr(r.err, "text after the JSON value"), "%s",
              r.err);
    tu_result_free(&r);
    /* config.json */
    put("cfg_dup.json", "{\"dim\": 128, \"ffn_dim\": 256, \"num_heads\": 2, \"num_layers\": 2, "
        "\"in_dim\": 16, \"out_dim\": 16, \"text_dim\": 64, \"freq_dim\": 32, \"text_len\": 16, "
        "\"num_heads\": 4}");
    put("cfg_trail.json", "{\"dim\": 128} {\"dim\": 64}");
    const char *cases[][2] = {{"cfg_dup.json", "key \"num_heads\" appears twice"},
                              {"cfg_trail.json", "text after the JSON value"}};
    for (int i = 0; i < 2; i++) {
        r = tu_run("generate", "--dit", FIX "demo/dit_demo_c16.safetensors", "--dit-config",
                   tmp_path(cases[i][0]), "--text-embeds", FIX "dit/embeds.safetensors", "--frames",
                   "3", "--height", "32", "--width", "32", "--no-decode", NULL);
        cr_expect_neq(r.code, 0, "%s", r.err);
        cr_expect(strstr(r.err, cases[i][0]) && strstr(r.err, cases[i][1]), "%s", r.err);
        tu_result_free(&r);
    }
    /* a --prompts line */
    put("p.jsonl", "{\"embeds\": \"context\"}\n{\"frame\": 3, \"embeds\": \"context\", "
        "\"embeds\": \"context.1\"}\n");
    r = tu_run("generate", "--dit", FIX "demo/dit_demo_c16.safetensors", "--text-embeds",
               FIX "dit/embeds.safetensors", "--prompts", tmp_path("p.jsonl"), "--frames", "6",
               "--height", "32", "--width", "32", "--no-decode", NULL);
    cr_expect_neq(r.code, 0, "%s", r.err);
    cr_expect(strstr(r.err, "p.jsonl' line 2") && strstr(r.err, "appears twice"), "%s", r.err);
    tu_result_free(&r);
}

/* Issue 15 #8: a directory as --dit-config said "size 9223372036854775807";
 * a --prompts name that does not resolve did not name the file. */
Test(model_dir_safety, messages_name_what_is_wrong)
{
    tu_result r = tu_run("generate", "--dit", FIX "demo/dit_demo_c16.safetensors", "--dit-config",
                         FIX "dit", "--text-embeds", FIX "dit/embeds.safetensors", "--no-decode",
                         NULL);
    cr_expect_neq(r.code, 0, "%s", r.err);
    cr_expect(strstr(r.err, "is a directory") && !strstr(r.err, "9223372036854775807"), "%s",
              r.err);
    tu_result_free(&r);
    put("p.jsonl", "{\"embeds\": \"context\"}\n{\"frame\": 3, \"embeds\": \"nope\"}\n");
    r = tu_run("generate", "--dit", FIX "demo/dit_demo_c16.safetensors", "--text-embeds",
               FIX "dit/embeds.safetensors", "--prompts", tmp_path("p.jsonl"), "--frames", "6",
               "--height", "32", "--width", "32", "--no-decode", NULL);
    cr_expect_neq(r.code, 0, "%s", r.err);
    cr_expect(strstr(r.err, "p.jsonl' line 2") && strstr(r.err, "no tensor 'nope'"), "%s", r.err);
    tu_result_free(&r);
}
