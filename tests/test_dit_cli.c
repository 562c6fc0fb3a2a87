/* test_dit_cli.c - `sinkstream generate` end to end on the tiny fixtures
 * (binary from env SK_SINKSTREAM): the reference run reproduced through the
 * command line, and usage errors that name the flag. */
#include "common/cli_run.h"
#include "dit_test_util.h"

#include <sys/wait.h>
#include "common/taehv_random.h"
#include "dit/names.h"
#include <unistd.h>

/* Runs a shell command, captures stderr into *err (malloc'd); returns the exit code. */
static void run_and_compare_x(const char *policy, int window, int sink, int frames,
                              const char *noise, const char *expected, const char *extra)
{
    char out[] = "/tmp/sk_cli_lat_XXXXXX";
    int fd = mkstemp(out);
    close(fd);
    char cmd[2048], *err;
    snprintf(cmd, sizeof cmd,
             "%s generate --dit %sdit_tiny.safetensors --dit-config %sconfig.json "
             "--text-embeds %sembeds.safetensors --noise-file %s%s --frames %d "
             "--latent-height 8 --latent-width 8 --chunk 3 --steps 1000,750,500,250 --shift 5 "
             "--kv-policy %s --kv-window %d --kv-sink %d --device cpu --no-decode "
             "--latents-out %s %s",
             tu_bin(), DIT_FIX, DIT_FIX, DIT_FIX, DIT_FIX, noise, frames, policy, window, sink, out,
             extra);
    int rc = tu_sh(cmd, &err);
    cr_assert_eq(rc, 0, "generate failed (%d): %s", rc, err);
    cr_expect(strstr(err, "15/15") || strstr(err, "6/6") || strstr(err, "latent frames"),
              "no progress on stderr: %s", err);
    sk_st_file *got, *exp;
    dt_ok(sk_st_open(out, &got), "latents-out");
    dt_ok(sk_st_open(expected, &exp), "expected");
    const sk_st_tensor *t = sk_st_find(got, "latents");
    cr_assert(t, "no 'latents' tensor");
    cr_expect_eq(t->dtype, SK_DTYPE_F32);
    cr_assert(t->ndim == 4 && t->shape[0] == frames && t->shape[1] == 4 && t->shape[2] == 8 &&
              t->shape[3] == 8, "latents shape");
    size_t n, m;
    float *a = dt_read(got, "latents", &n), *b = dt_read(exp, "latents", &m);
    cr_assert_eq(n, m);
    sk_compare_result r = sk_compare(a, b, n, DIT_NMSE, DIT_ATOL, DIT_RTOL);
    char buf[512];
    sk_compare_format(&r, a, b, buf, sizeof buf);
    cr_log_info("generate --kv-policy %s: %s", policy, buf);
    cr_expect(r.ok && sqrt(r.nmse) <= 1e-4, "%s", buf);
    free(a); free(b);
    sk_st_close(&got); sk_st_close(&exp);
    unlink(out);
}

static void run_and_compare(const char *policy, int window, int sink, int frames,
                            const char *noise, const char *expected)
{
    run_and_compare_x(policy, window, sink, frames, noise, expected, "");
}

/* --prompts: a switch at frame 10 takes effect at the next chunk start, 12 */
Test(dit_cli, generate_reproduces_longlive_prompt_switch)
{
    char pf[] = "/tmp/sk_cli_prompts_XXXXXX";
    int fd = mkstemp(pf);
    const char *line = "# switch to the second prompt\n{\"frame\": 10, \"embeds\": \"context.1\"}\n";
    cr_assert_eq(write(fd, line, strlen(line)), (ssize_t)strlen(line));
    close(fd);
    char extra[256];
    snprintf(extra, sizeof extra, "--prompts %s", pf);
    run_and_compare_x("sink", 9, 3, 15, "noise_sink.safetensors",
                      DIT_FIX "expected_switch.safetensors", extra);
    unlink(pf);
}

Test(dit_cli, generate_reproduces_longlive_sink_run)
{
    run_and_compare("sink", 9, 3, 15, "noise_sink.safetensors", DIT_FIX "expected_sink.safetensors");
}

Test(dit_cli, generate_reproduces_selfforcing_fifo_run)
{
    run_and_compare("fifo", 6, 0, 6, "noise_fifo.safetensors", DIT_FIX "expected_fifo.safetensors");
}

Test(dit_cli, usage_errors_name_the_flag)
{
    struct { const char *args; int rc; const char *needle; } cases[] = {
        {"--text-embeds X --no-decode", 2, "--dit"},
        {"--dit %sdit_tiny.safetensors --no-decode", 2, "--text-embeds"},
        {"--dit /nonexistent.safetensors --text-embeds %sembeds.safetensors --no-decode", 2, "/nonexistent.safetensors"},
        {"--dit %sdit_tiny.safetensors --text-embeds %sembeds.safetensors --no-decode --kv-policy lru", 2, "kv-policy"},
        {"--dit %sdit_tiny.safetensors --text-embeds %sembeds.safetensors --no-decode --chunk 0", 2, "chunk"},
        {"--dit %sdit_tiny.safetensors --text-embeds %sembeds.safetensors --no-decode --kv-policy fifo --kv-sink 3", 2, "--kv-sink"},
        {"--dit %sdit_tiny.safetensors --text-embeds %sembeds.safetensors --no-decode --kv-window 4", 2, "--kv-window"},
        {"--dit %sdit_tiny.safetensors --text-embeds %sembeds.safetensors --no-decode --steps 500,750", 2, "decrease"},
        {"--dit %sdit_tiny.safetensors --text-embeds %sembeds.safetensors --no-decode --height 100", 2, "--height"},
        {"--dit %sdit_tiny.safetensors --text-embeds %sembeds.safetensors", 2, "--latents-out"},
        {"--dit %sdit_tiny.safetensors --text-embeds %sembeds.safetensors --rgb-out /tmp/x.safetensors", 2, "--vae"},
        {"--dit %sdit_tiny.safetensors --text-embeds %sembeds.safetensors --rgb-out /tmp/x.safetensors --no-decode", 2, "--no-decode"},
        {"--dit %sdit_tiny.safetensors --text-embeds %sembeds.safetensors --vae %sdit_tiny.safetensors -o /tmp/x.notavideo", 2, "-o"},
        /* runtime failures: exit 1 with the file and the tensor named */
        {"--dit %sdit_tiny.safetensors --text-embeds %sembeds.safetensors --no-decode --embeds-key ctx", 1, "'ctx'"},
        {"--dit %sdit_tiny.safetensors --text-embeds %sembeds.safetensors --no-decode --prompts /nonexistent.jsonl", 2, "--prompts"},
        {"--dit %sdit_tiny.safetensors --text-embeds %sembeds.safetensors --no-decode --latent-height 8 --latent-width 8 --frames 18 --noise-file %snoise_sink.safetensors", 1, "'noise'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char args[1024], cmd[2048], *err;
        snprintf(args, sizeof args, cases[i].args, DIT_FIX, DIT_FIX, DIT_FIX);
        snprintf(cmd, sizeof cmd, "%s generate %s", tu_bin(), args);
        int rc = tu_sh(cmd, &err);
        cr_expect_eq(rc, cases[i].rc, "'%s': exit %d, expected %d: %s", args, rc, cases[i].rc, err);
        cr_expect(strstr(err, cases[i].needle) != NULL, "'%s': stderr lacks '%s': %s", args,
                  cases[i].needle, err);
    }
}

/* A random DiT checkpoint with 16 latent channels (what a Wan TAEHV decodes):
 * dim 32, 2 heads, 1 layer, text 16 x 64 (so embeds.safetensors fits). */
static void write_dit16(const char *path)
{
    sk_dit_config c = sk_dit_config_wan_1_3b();
    c.dim = 32; c.ffn_dim = 64; c.num_heads = 2; c.head_dim = 16; c.num_layers = 1;
    c.in_dim = 16; c.out_dim = 16; c.text_dim = 64; c.freq_dim = 32; c.text_len = 16;
    sk_st_writer *w;
    dt_ok(sk_st_writer_create(&w), "writer");
    float *buf = malloc(sizeof(float) * 64 * 64 * 4);
    int64_t shape[6];
    char name[128];
    for (int i = 0; i < 2 * (SK_DW_COUNT_ + SK_DB_COUNT_); i++) {
        int nd;
        if (i < SK_DW_COUNT_) {
            nd = sk_dit_global_shape(&c, i, shape);
            snprintf(name, sizeof name, "%s", sk_dit_global_name(i));
        } else if (i < SK_DW_COUNT_ + SK_DB_COUNT_) {
            nd = sk_dit_block_shape(&c, i - SK_DW_COUNT_, shape);
            snprintf(name, sizeof name, "blocks.0.%s", sk_dit_block_suffix(i - SK_DW_COUNT_));
        } else break;
        int64_t n = 1;
        for (int d = 0; d < nd; d++) n *= shape[d];
        sk_test_fill_uniform(buf, (size_t)n, (uint64_t)i + 11, -0.15f, 0.15f);
        dt_ok(sk_st_writer_add_f32(w, name, SK_DTYPE_F32, nd, shape, buf), name);
    }
    dt_ok(sk_st_writer_meta(w, "config", "{\"dim\": 32, \"ffn_dim\": 64, \"num_heads\": 2, "
                            "\"num_layers\": 1, \"in_dim\": 16, \"out_dim\": 16, \"text_dim\": 64, "
                            "\"freq_dim\": 32, \"text_len\": 16}"), "meta");
    dt_ok(sk_st_writer_save(w, path), "save");
    sk_st_writer_free(&w);
    free(buf);
}

/* generate with --vae decodes each chunk as it comes (TAEHV streaming): the
 * frames equal `sinkstream decode` of the latents generate wrote. */
Test(dit_cli, generate_decodes_like_decode)
{
    char dir[] = "/tmp/sk_cli_dec_XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char vae[256], lat[256], rgb1[256], rgb2[256], dit[256], cmd[4096], *err;
    snprintf(dit, sizeof dit, "%s/dit16.safetensors", dir);
    write_dit16(dit);
    snprintf(vae, sizeof vae, "%s/taehv_z4.safetensors", dir);
    snprintf(lat, sizeof lat, "%s/lat.safetensors", dir);
    snprintf(rgb1, sizeof rgb1, "%s/rgb1.safetensors", dir);
    snprintf(rgb2, sizeof rgb2, "%s/rgb2.safetensors", dir);
    const int nf[4] = {16, 8, 8, 8};
    dt_ok(sk_test_write_taehv_random(vae, 16, 1, nf, 16, 5, SK_DTYPE_F32, NULL), "random TAEHV");
    snprintf(cmd, sizeof cmd,
             "%s generate --dit %s --text-embeds %sembeds.safetensors "
             "--frames 6 --latent-height 8 --latent-width 8 --kv-policy fifo --kv-window 6 "
             "--seed 3 --vae %s --rgb-out %s --latents-out %s", tu_bin(), dit, DIT_FIX, vae, rgb1, lat);
    int rc = tu_sh(cmd, &err);
    cr_assert_eq(rc, 0, "generate with decode failed (%d): %s", rc, err);
    snprintf(cmd, sizeof cmd, "%s decode --vae %s --latents %s --rgb-out %s --stream-chunk 0",
             tu_bin(), vae, lat, rgb2);
    rc = tu_sh(cmd, &err);
    cr_assert_eq(rc, 0, "decode failed (%d): %s", rc, err);
    sk_st_file *a, *b;
    dt_ok(sk_st_open(rgb1, &a), "rgb1");
    dt_ok(sk_st_open(rgb2, &b), "rgb2");
    const sk_st_tensor *ta = sk_st_find(a, "frames"), *tb = sk_st_find(b, "frames");
    cr_assert(ta && tb, "no `frames`");
    cr_expect_eq(ta->shape[0], 4 * 6 - 3, "4F - 3 frames");
    cr_assert_eq(ta->nbytes, tb->nbytes);
    size_t n;
    float *fa = dt_read(a, "frames", &n), *fb = dt_read(b, "frames", &n);
    sk_compare_result r = sk_compare(fa, fb, n, 1e-10, 1e-5, 1e-4);
    char buf[512];
    sk_compare_format(&r, fa, fb, buf, sizeof buf);
    cr_expect(r.ok, "generate's frames vs decode's: %s", buf);
    free(fa); free(fb);
    sk_st_close(&a); sk_st_close(&b);
    unlink(vae); unlink(lat); unlink(rgb1); unlink(rgb2); unlink(dit);
    rmdir(dir);
}

/* --prompt with --text-encoder runs umT5 inside generate: the latents are the
 * bytes of encode-text + --text-embeds. A text prompt switch in --prompts
 * changes only the frames after it. */
Test(dit_cli, generate_with_text_encoder)
{
    char dir[] = "/tmp/sk_cli_txt_XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char ctx[256], a[256], b[256], c[256], pf[256], cmd[4096], *err;
    snprintf(ctx, sizeof ctx, "%s/ctx.safetensors", dir);
    snprintf(a, sizeof a, "%s/a.safetensors", dir);
    snprintf(b, sizeof b, "%s/b.safetensors", dir);
    snprintf(c, sizeof c, "%s/c.safetensors", dir);
    snprintf(pf, sizeof pf, "%s/prompts.jsonl", dir);
    const char *T = SK_SOURCE_DIR "/tests/fixtures/text/";
    snprintf(cmd, sizeof cmd, "%s encode-text --text-encoder %sumt5_tiny.safetensors --tokenizer "
             "%sspiece_tiny.model --prompt 'A red fox at dawn.' --out %s", tu_bin(), T, T, ctx);
    int rc = tu_sh(cmd, &err);
    if (rc != 0 && strstr(err, "SentencePiece")) cr_skip_test("no SentencePiece in this build: %s", err);
    cr_assert_eq(rc, 0, "encode-text: %s", err);
    const char *common = "--frames 6 --latent-height 8 --latent-width 8 --kv-policy sink "
                         "--kv-window 6 --kv-sink 3 --seed 9";
    snprintf(cmd, sizeof cmd, "%s generate --dit %sdit_tiny.safetensors --text-embeds %s %s "
             "--latents-out %s", tu_bin(), DIT_FIX, ctx, common, a);
    cr_assert_eq(tu_sh(cmd, &err), 0, "generate --text-embeds: %s", err);
    snprintf(cmd, sizeof cmd, "%s generate --dit %sdit_tiny.safetensors --text-encoder "
             "%sumt5_tiny.safetensors --tokenizer %sspiece_tiny.model --prompt 'A red fox at dawn.' "
             "%s --latents-out %s", tu_bin(), DIT_FIX, T, T, common, b);
    cr_assert_eq(tu_sh(cmd, &err), 0, "generate --prompt: %s", err);
    FILE *f = fopen(pf, "w");
    fprintf(f, "{\"frame\": 3, \"prompt\": \"A blue whale.\"}\n");
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s generate --dit %sdit_tiny.safetensors --text-encoder "
             "%sumt5_tiny.safetensors --tokenizer %sspiece_tiny.model --prompt 'A red fox at dawn.' "
             "--prompts %s %s --latents-out %s", tu_bin(), DIT_FIX, T, T, pf, common, c);
    cr_assert_eq(tu_sh(cmd, &err), 0, "generate --prompts text: %s", err);
    cr_expect(strstr(err, "recached frames 0..2") != NULL, "no recache logged: %s", err);
    sk_st_file *fa, *fb, *fc;
    dt_ok(sk_st_open(a, &fa), "a"); dt_ok(sk_st_open(b, &fb), "b"); dt_ok(sk_st_open(c, &fc), "c");
    size_t n;
    float *la = dt_read(fa, "latents", &n), *lb = dt_read(fb, "latents", &n), *lc = dt_read(fc, "latents", &n);
    cr_expect(memcmp(la, lb, n * 4) == 0, "text prompt in generate != encode-text + --text-embeds");
    cr_expect(memcmp(lb, lc, n / 2 * 4) == 0, "frames before the switch changed");
    cr_expect(memcmp(lb + n / 2, lc + n / 2, n / 2 * 4) != 0, "the switch changed nothing");
    free(la); free(lb); free(lc);
    sk_st_close(&fa); sk_st_close(&fb); sk_st_close(&fc);
    unlink(ctx); unlink(a); unlink(b); unlink(c); unlink(pf);
    rmdir(dir);
}

/* --dump-steps writes every step under the reference's names: each one of
 * expected_sink's xt/v/x0 tensors matches. */
Test(dit_cli, dump_steps_match_reference_steps)
{
    char path[] = "/tmp/sk_cli_steps_XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    char cmd[2048], *err;
    snprintf(cmd, sizeof cmd, "%s generate --dit %sdit_tiny.safetensors --text-embeds "
             "%sembeds.safetensors --noise-file %snoise_sink.safetensors --frames 15 "
             "--latent-height 8 --latent-width 8 --kv-window 9 --kv-sink 3 --no-decode "
             "--dump-steps %s", tu_bin(), DIT_FIX, DIT_FIX, DIT_FIX, path);
    int rc = tu_sh(cmd, &err);
    cr_assert_eq(rc, 0, "generate --dump-steps: %s", err);
    sk_st_file *got, *exp;
    dt_ok(sk_st_open(path, &got), "dump");
    dt_ok(sk_st_open(DIT_FIX "expected_sink.safetensors", &exp), "expected");
    int compared = 0;
    for (int i = 0; i < exp->n_tensors; i++) {
        const char *nm = exp->tensors[i].name;
        if (strncmp(nm, "xt.", 3) && strncmp(nm, "v.", 2) && strncmp(nm, "x0.", 3)) continue;
        cr_assert(sk_st_find(got, nm), "dump lacks '%s'", nm);
        size_t n, m;
        float *a = dt_read(got, nm, &n), *b = dt_read(exp, nm, &m);
        cr_assert_eq(n, m, "%s size", nm);
        sk_compare_result r = sk_compare(a, b, n, DIT_NMSE, DIT_ATOL, DIT_RTOL);
        cr_expect(r.ok, "%s: nmse %g", nm, r.nmse);
        free(a); free(b);
        compared++;
    }
    cr_expect_eq(compared, 5 * 4 * 3, "compared %d step tensors", compared);
    sk_st_close(&got); sk_st_close(&exp);
    unlink(path);
}
