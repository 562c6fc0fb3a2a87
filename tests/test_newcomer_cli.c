/* test_newcomer_cli.c - the first hour of a new user, through the built
 * binary: --device auto says what it picked and why (cpu in this build), a
 * run far slower than real time warns after its first chunk, -y guards
 * existing outputs, --seed -1 prints the seed it drew and the video's tags
 * carry it (with prompt, model, steps, sampler, KV policy, version), -q /
 * -v change what is printed on every command, --version lists the features
 * built in, and `cmake --install` + pkg-config give a prefix a program links
 * against. */
#include <sys/stat.h>

#include "tests/common/cli_run.h"

static char g_dir[64];
static void setup(void)
{
    snprintf(g_dir, sizeof g_dir, "/tmp/sk_newcomer_XXXXXX");
    cr_assert(mkdtemp(g_dir));
}
static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    cr_expect_eq(system(cmd), 0);
}
TestSuite(newcomer, .init = setup, .fini = teardown, .timeout = 300);

/* the tiny demo models (tests/fixtures), 3 latent frames of 64x64 */
static const char *g_prompt = "--prompt 'a cat surfing'";
static int gen(const char *extra, char **err)
{
    static char cmd[4096];
    const char *src = getenv("SK_SOURCE_DIR");
    cr_assert(src);
    snprintf(cmd, sizeof cmd,
             "cd '%s' && '%s' generate --dit %s/tests/fixtures/demo/dit_demo_c16.safetensors "
             "--text-encoder %s/tests/fixtures/text/umt5_tiny.safetensors --tokenizer "
             "%s/tests/fixtures/text/spiece_tiny.model %s --vae "
             "%s/tests/fixtures/taehv/taehv_tiny_21.safetensors %s --height 64 --width 64 "
             "%s", g_dir, tu_bin(), src, src, src, g_prompt, src,
             strstr(extra, "--video-frames") || strstr(extra, "--seconds") ? "" : "--frames 3",
             extra);
    return tu_sh(cmd, err);
}

static char *probe_tags(const char *file)
{
    static char out[8192];
    char cmd[512];
    snprintf(cmd, sizeof cmd, "ffprobe -v error -show_entries format_tags -of default=nw=1 '%s/%s'",
             g_dir, file);
    FILE *f = popen(cmd, "r");
    cr_assert(f);
    size_t n = fread(out, 1, sizeof out - 1, f);
    out[n] = 0;
    pclose(f);
    return out;
}

Test(newcomer, device_auto_says_what_it_picked)
{
    char *err;
    cr_assert_eq(gen("-o a.mp4", &err), 0, "%s", err);
#ifndef SK_HAVE_CUDA
    cr_expect(strstr(err, "device cpu (") && strstr(err, "--device auto: no CUDA build"), "%s",
              err);
#endif
    cr_assert_eq(gen("-o b.mp4 --device cpu-ref", &err), 0, "%s", err);
    cr_expect(strstr(err, "device cpu-ref"), "%s", err);
}

Test(newcomer, overwrite_needs_y)
{
    char *err;
    cr_assert_eq(gen("-o a.mkv", &err), 0, "%s", err);
    struct stat before, after;
    char path[128];
    snprintf(path, sizeof path, "%s/a.mkv", g_dir);
    cr_assert_eq(stat(path, &before), 0);
    cr_expect_eq(gen("-o a.mkv", &err), 2, "an existing output must be refused: %s", err);
    cr_expect(strstr(err, "'a.mkv' exists") && strstr(err, "-y"), "%s", err);
    cr_assert_eq(stat(path, &after), 0);
    cr_expect_eq(before.st_mtime, after.st_mtime);
    cr_expect_eq(before.st_ino, after.st_ino);
    cr_expect_eq(gen("-o a.mkv -y", &err), 0, "%s", err);
}

Test(newcomer, random_seed_is_printed_and_stored_with_the_run)
{
    char *err;
    cr_assert_eq(gen("-o s.mp4 --seed -1 --crf 0 --fps 30000/1001", &err), 0, "%s", err);
    const char *p = strstr(err, "seed ");
    cr_assert(p, "no seed printed: %s", err);
    long long seed = atoll(p + 5);
    char want[64];
    snprintf(want, sizeof want, "seed=%lld", seed);
    const char *tags = probe_tags("s.mp4");
    cr_expect(strstr(tags, want), "the tags must hold the printed seed %lld: %s", seed, tags);
    cr_expect(strstr(tags, "prompt=a cat surfing"), "%s", tags);
    cr_expect(strstr(tags, "dit_demo_c16"), "model: %s", tags);
    cr_expect(strstr(tags, "steps=1000,750,500,250"), "%s", tags);
    cr_expect(strstr(tags, "kv_policy=sink"), "%s", tags);
    cr_expect(strstr(tags, "sinkstream"), "version: %s", tags);
    /* a second random run draws another seed */
    cr_assert_eq(gen("-o s2.mp4 --seed -1", &err), 0, "%s", err);
    cr_expect(!strstr(probe_tags("s2.mp4"), want), "two random runs drew the same seed");
}

Test(newcomer, slower_than_real_time_warns_after_the_first_chunk)
{
    char *err;
    /* the reference loops make well under 500 video fps of even 64x64 */
    cr_assert_eq(gen("-o w.mp4 --device cpu-ref --fps 1000 --frames 6", &err), 0,
                 "%s", err);
    cr_expect(strstr(err, "slower than real time") && strstr(err, "--device cpu"), "%s", err);
}

Test(newcomer, quiet_and_verbose_on_every_command)
{
    char *err;
    cr_assert_eq(gen("-o q.mp4 -q", &err), 0, "%s", err);
    cr_expect(!strstr(err, "info:"), "-q must drop info lines: %s", err);
    cr_assert_eq(gen("-o v.mp4 -v", &err), 0, "%s", err);
    cr_expect(strstr(err, "debug:"), "-v must show debug lines: %s", err);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "'%s' inspect -q '%s/tests/fixtures/demo/dit_demo_c16.safetensors'",
             tu_bin(), getenv("SK_SOURCE_DIR"));
    cr_expect_eq(tu_sh(cmd, &err), 0, "inspect -q: %s", err);
}

Test(newcomer, version_lists_the_features)
{
    tu_result r = tu_run("--version", NULL);
    cr_assert_eq(r.code, 0);
    const char *want[] = {"sinkstream ", "cuda:", "cpu:", "ffmpeg:", "png:", "http:",
                          "tokenizer:"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        cr_expect(strstr(r.out, want[i]), "--version lacks '%s': %s", want[i], r.out);
    cr_expect(strstr(r.out, "ffmpeg:      yes"), "%s", r.out);
    tu_result_free(&r);
}

Test(newcomer, cmake_install_and_pkg_config)
{
    char cmd[4096], *err;
    snprintf(cmd, sizeof cmd, "cmake --install '%s' --prefix '%s/prefix'", SK_BINARY_DIR, g_dir);
    cr_assert_eq(tu_sh(cmd, &err), 0, "%s", err);
    snprintf(cmd, sizeof cmd, "'%s/prefix/bin/sinkstream' --version", g_dir);
    cr_assert_eq(tu_sh(cmd, &err), 0, "%s", err);
    /* a program against the installed public API (libsinkstream.so), found by pkg-config:
     * a bad device must come back as a status naming it */
    snprintf(cmd, sizeof cmd,
             "cd '%s' && printf '%%s\\n' '#include \"runtime/sinkstream.h\"' '#include <stdio.h>' "
             "'int main(void) { sk_engine_params p = sk_engine_params_default(); sk_engine *e = 0;' "
             "'p.vae = \"x.safetensors\"; p.device = \"tpu\";' "
             "'if (sk_engine_open(&p, &e) != SK_E_INVALID_ARG) return 1;' "
             "'printf(\"%%s %%s\\n\", sk_version(), sk_last_error()); return 0; }' > api.c && "
             "cc -std=gnu11 api.c -o api "
             "$(PKG_CONFIG_PATH='%s/prefix/lib/pkgconfig' pkg-config --cflags --libs "
             "sinkstream) && ./api | grep -q \"device 'tpu'\"",
             g_dir, g_dir);
    cr_expect_eq(tu_sh(cmd, &err), 0, "%s", err);
    /* and one below it, against the static libraries (sinkstream-static.pc) */
    snprintf(cmd, sizeof cmd,
             "cd '%s' && printf '%%s\\n' '#include \"runtime/engine/device.h\"' '#include <stdio.h>' "
             "'int main(void) { sk_backend *be = 0; if (sk_backend_create(\"cpu\", SK_DTYPE_F32, &be)) "
             "return 1; puts(be->name); sk_backend_free_(&be); return 0; }' > use.c && "
             "cc -std=gnu11 use.c -o use "
             "$(PKG_CONFIG_PATH='%s/prefix/lib/pkgconfig' pkg-config --cflags --libs "
             "sinkstream-static) && ./use | grep -qx cpu",
             g_dir, g_dir);
    cr_expect_eq(tu_sh(cmd, &err), 0, "%s", err);
    snprintf(cmd, sizeof cmd, "test -f '%s/prefix/share/doc/sinkstream/CLI.md'", g_dir);
    cr_expect_eq(tu_sh(cmd, &err), 0, "docs not installed");
}

Test(newcomer, timeline_out_replays_the_run_exactly)
{
    char sched[128], cmd[1024], *err;
    snprintf(sched, sizeof sched, "%s/sched.jsonl", g_dir);
    FILE *f = fopen(sched, "w");
    cr_assert(f);
    fprintf(f, "{\"frame\": 0, \"prompt\": \"a cat\"}\n{\"at\": 0.3, \"prompt\": \"a \\\"dog\\\"\"}\n");
    fclose(f);
    g_prompt = "";
    cr_assert_eq(gen("--prompts sched.jsonl --frames 9 --no-decode --latents-out l1.safetensors "
                     "--timeline-out tl.jsonl --seed 7", &err), 0, "%s", err);
    snprintf(cmd, sizeof cmd, "grep -c '\"source\"' '%s/tl.jsonl' | grep -qx 2 && grep -q "
             "'\"prompt\":\"a \\\\\"dog\\\\\"\",\"wall_s\":' '%s/tl.jsonl'", g_dir, g_dir);
    cr_expect_eq(tu_sh(cmd, &err), 0, "timeline: %s", err);
    /* --prompts TIMELINE replays: the very same latents */
    cr_assert_eq(gen("--prompts tl.jsonl --frames 9 --no-decode --latents-out l2.safetensors "
                     "--seed 7", &err), 0, "replay: %s", err);
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' compare l1.safetensors l2.safetensors --tensor "
             "latents --tol 0", g_dir, tu_bin());
    cr_expect_eq(tu_sh(cmd, &err), 0, "the replay differs: %s", err);
}

Test(newcomer, progress_json_lines_and_loading_lines)
{
    char *err;
    cr_assert_eq(gen("-o p.mp4 --frames 6 --progress json", &err), 0, "%s", err);
    cr_expect(strstr(err, "loading the DiT") && strstr(err, "loading the text encoder"), "%s", err);
    cr_expect(strstr(err, "{\"chunk\":0,\"latent_frames\":3,\"video_frames\":9,"
                          "\"total_video_frames\":21,"), "%s", err);
    cr_expect(strstr(err, "\"video_frames\":21,") && strstr(err, "\"done\":true}"), "%s", err);
    cr_expect(!strstr(err, "video frames 9/21"), "json replaces the text line: %s", err);
    /* the phases before the first chunk: JSON lines too, start and done */
    cr_expect(strstr(err, "{\"phase\":\"load\",\"state\":\"start\",\"what\":\"loading the text "
                          "encoder") && strstr(err, "{\"phase\":\"load\",\"state\":\"done\",") &&
              strstr(err, "{\"phase\":\"encode_text\",\"state\":\"done\","), "%s", err);
}

/* a progress line while the weights load and the prompt encodes: at the start, every tick
 * ($SK_PROGRESS_TICK_S, 2 s by default; tiny here so the tiny model's load sees one) and at
 * the end; -q silences the text lines */
Test(newcomer, progress_while_loading_and_encoding)
{
    char *err;
    cr_assert_eq(gen("-o t.mp4 -y", &err), 0, "%s", err);
    cr_expect(strstr(err, "loading the DiT") && strstr(err, "weights loaded in ") &&
              strstr(err, "encoding the starting prompt ...") &&
              strstr(err, "starting prompt encoded in "), "%s", err);
    cr_assert_eq(gen("-o t.mp4 -y --progress json -q", &err), 0, "%s", err);
    cr_expect(strstr(err, "{\"phase\":\"load\",\"state\":\"done\","), "json with -q: %s", err);
    cr_assert_eq(gen("-o t.mp4 -y -q", &err), 0, "%s", err);
    cr_expect(!strstr(err, "loading") && !strstr(err, "loaded"), "-q: %s", err);
    /* the ticker is a thread: on a loaded machine it may not run within the tiny model's
     * ~20 ms load, so up to 3 tries */
    setenv("SK_PROGRESS_TICK_S", "0.0001", 1);
    int ticked = 0;
    for (int t = 0; t < 3 && !ticked; t++) {
        cr_assert_eq(gen("-o t.mp4 -y --progress json", &err), 0, "%s", err);
        ticked = strstr(err, "{\"phase\":\"load\",\"state\":\"running\",\"elapsed_s\":") != NULL;
    }
    unsetenv("SK_PROGRESS_TICK_S");
    cr_expect(ticked, "no tick line: %s", err);
}

/* the first python3 with torch (to write checkpoints and check the result) */
static const char *torch_python(void)
{
    static const char *const cands[] = {"/usr/bin/python3", "python3"};
    for (size_t i = 0; i < sizeof cands / sizeof cands[0]; i++) {
        char cmd[256], *err;
        snprintf(cmd, sizeof cmd, "%s -c 'import torch, numpy'", cands[i]);
        if (tu_sh(cmd, &err) == 0) return cands[i];
    }
    cr_assert_fail("no python3 with torch and numpy (apt-get install python3-torch python3-numpy)");
    return NULL;
}

/* runs tools/pth_to_safetensors.py ARGS in a python where `import torch` fails */
#define NOTORCH(args)                                                                         \
    "cd '%s' && %s -c \"import sys, runpy; sys.modules['torch'] = None; sys.argv = "            \
    "['pth_to_safetensors.py', " args "]; runpy.run_path('%s/tools/pth_to_safetensors.py', "    \
    "run_name='__main__')\""

Test(newcomer, pth_to_safetensors_without_pytorch)
{
    const char *py = torch_python(), *src = getenv("SK_SOURCE_DIR");
    char cmd[4096], *err;
    /* a checkpoint with bf16, a non-contiguous view, a Parameter, nested under a key */
    snprintf(cmd, sizeof cmd,
             "cd '%s' && %s -c \"import torch, collections; torch.manual_seed(0); "
             "sd = collections.OrderedDict(); sd['a.weight'] = torch.randn(3, 5).to(torch.bfloat16); "
             "sd['b'] = torch.arange(12).reshape(3, 4).t(); sd['c'] = torch.randn(7).half(); "
             "sd['d'] = torch.nn.Parameter(torch.randn(2, 2)); sd['e'] = torch.randn(4, 6)[1:3, ::2]; "
             "torch.save({'generator_ema': sd, 'step': 3}, 'ck.pt'); "
             "torch.save(sd, 'old.pt', _use_new_zipfile_serialization=False)\"",
             g_dir, py);
    cr_assert_eq(tu_sh(cmd, &err), 0, "%s", err);
    /* convert with torch hidden (sys.modules['torch'] = None: import torch fails): numpy only */
    snprintf(cmd, sizeof cmd, NOTORCH("'ck.pt', 'ck.safetensors', '--key', 'generator_ema'"),
             g_dir, py, src);
    cr_assert_eq(tu_sh(cmd, &err), 0, "%s", err);
    /* bit for bit what torch holds */
    snprintf(cmd, sizeof cmd,
             "cd '%s' && %s -c \"import torch, json, struct; sd = torch.load('ck.pt')['generator_ema']; "
             "b = open('ck.safetensors', 'rb').read(); n = struct.unpack('<Q', b[:8])[0]; "
             "h = json.loads(b[8:8 + n]); "
             "bad = [k for k, v in sd.items() if b[8 + n + h[k]['data_offsets'][0]:8 + n + "
             "h[k]['data_offsets'][1]] != v.detach().contiguous().view(torch.uint8).numpy().tobytes() "
             "or h[k]['shape'] != list(v.shape)]; assert not bad, bad\"", g_dir, py);
    cr_expect_eq(tu_sh(cmd, &err), 0, "%s", err);
    snprintf(cmd, sizeof cmd, "'%s' inspect '%s/ck.safetensors'", tu_bin(), g_dir);
    cr_expect_eq(tu_sh(cmd, &err), 0, "%s", err);
    /* an old pickle without torch: a message, not a traceback */
    snprintf(cmd, sizeof cmd, NOTORCH("'old.pt', 'old.safetensors'"), g_dir, py, src);
    cr_expect_eq(tu_sh(cmd, &err), 1, "%s", err);
    cr_expect(strstr(err, "pre-1.6") && strstr(err, "needs PyTorch") && !strstr(err, "Traceback"),
              "%s", err);
    /* a file that is no checkpoint: a message naming it */
    snprintf(cmd, sizeof cmd, "cd '%s' && echo hello > not.pt && %s '%s/tools/pth_to_safetensors.py' "
             "not.pt x.safetensors", g_dir, py, src);
    cr_expect_eq(tu_sh(cmd, &err), 1, "%s", err);
    cr_expect(strstr(err, "'not.pt' is not a PyTorch checkpoint") && !strstr(err, "Traceback"),
              "%s", err);
}

Test(newcomer, doc_defects_fixed)
{
    char cmd[2048], *err;
    const char *src = getenv("SK_SOURCE_DIR");
    /* --print-config loads nothing: no prompt and no output needed */
    snprintf(cmd, sizeof cmd, "'%s' generate --dit '%s/tests/fixtures/demo/dit_demo_c16.safetensors' "
             "--print-config", tu_bin(), src);
    cr_expect_eq(tu_sh(cmd, &err), 0, "%s", err);
    /* encode given a video: says what the file is */
    cr_assert_eq(gen("-o v.mp4", &err), 0, "%s", err);
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' encode --vae '%s/tests/fixtures/taehv/taehv_tiny_21.safetensors' "
             "--frames v.mp4 --latents-out l.safetensors", g_dir, tu_bin(), src);
    cr_expect_eq(tu_sh(cmd, &err), 1, "%s", err);
    cr_expect(strstr(err, "MP4/MOV video") && !strstr(err, "absurd"), "%s", err);
    /* one option name for the output file across commands */
    tu_result r = tu_run("encode-text", "--help", NULL);
    cr_expect(strstr(r.out, "--output"), "encode-text --help lacks --output: %s", r.out);
    tu_result_free(&r);
    /* --frames and --seconds together: refused, not silently overridden */
    cr_expect_eq(gen("-o x.mp4 --frames 6 --seconds 2", &err), 2, "%s", err);
    cr_expect(strstr(err, "--video-frames"), "%s", err);
    /* a bad --frames says a whole-number range */
    cr_expect_eq(gen("-o x.mp4 --frames -1", &err), 2, "%s", err);
    cr_expect(strstr(err, "expected 1 to 1048576"), "%s", err);
    /* --video-frames: 21 video frames are 6 latent frames */
    cr_assert_eq(gen("-o vf.mp4 --video-frames 21", &err), 0, "%s", err);
    cr_expect(strstr(err, "generated 6 latent frames (21 video frames)"), "%s", err);
}

Test(newcomer, status_names_latent_and_video_frames_and_uptime_runs)
{
    char *err;
    /* status at once, then again 0.6 s later: uptime is as of the request */
    static char cmd[4096];
    const char *src = getenv("SK_SOURCE_DIR");
    snprintf(cmd, sizeof cmd,
             "(cd '%s' && (sleep 0.3; echo status; sleep 0.6; echo status; echo stop) | '%s' generate "
             "--dit %s/tests/fixtures/demo/dit_demo_c16.safetensors --text-encoder "
             "%s/tests/fixtures/text/umt5_tiny.safetensors --tokenizer "
             "%s/tests/fixtures/text/spiece_tiny.model --prompt cat --vae "
             "%s/tests/fixtures/taehv/taehv_tiny_21.safetensors --frames 600 --height 64 --width 64 "
             "-o st.mkv --control-stdin --start-paused -q > status.txt)",
             g_dir, tu_bin(), src, src, src, src);
    cr_assert_eq(tu_sh(cmd, &err), 0, "%s", err);
    char path[256];
    snprintf(path, sizeof path, "%s/status.txt", g_dir);
    FILE *f = fopen(path, "r");
    cr_assert(f);
    char a[8192] = "", b[8192] = "";
    cr_assert(fgets(a, sizeof a, f) && fgets(b, sizeof b, f), "two status lines expected");
    fclose(f);
    cr_expect(strstr(a, "\"latent_frame\":0,\"video_frame\":0,"), "%s", a);
    const double u1 = atof(strstr(a, "\"uptime_s\":") + 11), u2 = atof(strstr(b, "\"uptime_s\":") + 11);
    cr_expect(u2 - u1 > 0.4, "uptime must advance while paused: %g then %g", u1, u2);
}
