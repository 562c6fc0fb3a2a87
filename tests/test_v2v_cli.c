/* test_v2v_cli.c - `sinkstream generate --input` through the built binary with the
 * tiny models at 64x64 (docs/INPUTS.md): a lavfi testsrc streamed through the
 * encoder (frame counts: 4 ceil(T/4) - 3 out of T in), another rate and aspect
 * (resampled by timestamp, scaled to cover and cropped), a length cut short of the
 * input, pipes that end (raw frames and Matroska on stdin) stop the run cleanly
 * with the file finalised, real-time pacing and the status's input object, and the
 * bad inputs: a file that does not exist, a corrupt one, --strength outside 0..1,
 * input flags without --input. */
#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>

#include "runtime/io/safetensors.h"
#include "tests/common/cli_run.h"

static char g_dir[64];
static void setup(void)
{
    snprintf(g_dir, sizeof g_dir, "/tmp/sk_v2v_XXXXXX");
    cr_assert(mkdtemp(g_dir));
}
static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    cr_expect_eq(system(cmd), 0);
}
TestSuite(v2v_cli, .init = setup, .fini = teardown, .timeout = 240);

/* `pre | sinkstream generate <tiny models> extra` in g_dir (pre may be "") */
static int gen(const char *pre, const char *extra, char **err)
{
    static char cmd[8192];
    const char *src = getenv("SK_SOURCE_DIR");
    cr_assert(src);
    snprintf(cmd, sizeof cmd,
             "cd '%s' && ( %s%s'%s' generate --dit %s/tests/fixtures/demo/dit_demo_c16.safetensors "
             "--text-encoder %s/tests/fixtures/text/umt5_tiny.safetensors --tokenizer "
             "%s/tests/fixtures/text/spiece_tiny.model --prompt 'a cat surfing' --vae "
             "%s/tests/fixtures/taehv/taehv_tiny_21.safetensors --height 64 --width 64 %s )",
             g_dir, pre, *pre ? " | " : "", tu_bin(), src, src, src, src, extra);
    return tu_sh(cmd, err);
}

/* ffprobe: frames decoded, width, height of a file in g_dir (-1 when it cannot be read) */
static int probe(const char *file, int *w, int *h)
{
    char cmd[512], out[256] = {0};
    snprintf(cmd, sizeof cmd, "ffprobe -v error -count_frames -select_streams v:0 -show_entries "
             "stream=nb_read_frames,width,height -of csv=p=0 '%s/%s' 2>/dev/null", g_dir, file);
    FILE *f = popen(cmd, "r");
    cr_assert(f);
    size_t n = fread(out, 1, sizeof out - 1, f);
    out[n] = 0;
    pclose(f);
    int frames = -1, ww = 0, hh = 0;
    if (sscanf(out, "%d,%d,%d", &ww, &hh, &frames) != 3) return -1;
    if (w) *w = ww;
    if (h) *h = hh;
    return frames;
}

Test(v2v_cli, lavfi_testsrc_frame_counts)
{
    char *err;
    /* 32 frames at 16 fps -> 8 latents -> 29 frames (the decoder trims 3) */
    cr_assert_eq(gen("", "--input 'lavfi:testsrc=size=192x128:rate=16:duration=2' --strength 0.5 "
                     "-o a.mp4", &err), 0, "%s", err);
    int w, h;
    cr_expect_eq(probe("a.mp4", &w, &h), 29, "%s", err);
    cr_expect(w == 64 && h == 64, "%dx%d", w, h);
    cr_expect(strstr(err, "32 frames at 16 fps used (decoded 32, repeated 0, skipped 0"), "%s",
              err);
    cr_expect(strstr(err, "strength 0.5 -> 2 of 4 sampler steps"), "%s", err);
    cr_expect(strstr(err, "latency input frame -> output p50"), "%s", err);
    /* 18 frames: 5 latents (the last group padded with the last frame) -> 17 frames */
    cr_assert_eq(gen("", "--input lavfi:testsrc=size=64x64:rate=16:duration=1.125 -o b.mkv",
                     &err), 0, "%s", err);
    cr_expect_eq(probe("b.mkv", NULL, NULL), 17, "%s", err);
    cr_expect(strstr(err, "last chunk of 2 latent frames"), "%s", err);
    /* output frame j shows input frame j + 3: the last 2 outputs show the padding (no
     * latency), so 15 of the 17 are measured */
    cr_expect(strstr(err, "over 15 frames"), "%s", err);
    /* --input-format lavfi with the graph as the source */
    cr_assert_eq(gen("", "--input testsrc=size=64x64:rate=16:duration=0.5 --input-format lavfi "
                     "-o c.mp4", &err), 0, "%s", err);
    cr_expect_eq(probe("c.mp4", NULL, NULL), 5, "%s", err);
}

Test(v2v_cli, other_rate_and_aspect_are_resampled)
{
    char *err;
    /* 30 fps, 16:9: 60 frames over 2 s -> 32 slots at 16 fps (28 source frames unused) */
    cr_assert_eq(gen("", "--input 'lavfi:testsrc=size=160x90:rate=30:duration=2' -o a.mp4", &err),
                 0, "%s", err);
    int w, h;
    cr_expect_eq(probe("a.mp4", &w, &h), 29, "%s", err);
    cr_expect(w == 64 && h == 64, "%dx%d", w, h);
    cr_expect(strstr(err, "160x90 at 30 fps -> 64x64 at 16 fps"), "%s", err);
    cr_expect(strstr(err, "32 frames at 16 fps used (decoded 60, repeated 0, skipped 28"), "%s",
              err);
    /* 8 fps portrait: 16 frames over 2 s -> every frame twice but the first: 31 slots */
    cr_assert_eq(gen("", "--input 'lavfi:testsrc=size=90x160:rate=8:duration=2' -o b.mp4", &err),
                 0, "%s", err);
    cr_expect(strstr(err, "31 frames at 16 fps used (decoded 16, repeated 15, skipped 0"), "%s",
              err);
    cr_expect_eq(probe("b.mp4", NULL, NULL), 29, "%s", err); /* 8 latents */
}

Test(v2v_cli, a_length_stops_before_the_input_ends)
{
    char *err;
    cr_assert_eq(gen("", "--input lavfi:testsrc=size=64x64:rate=16 --frames 6 -o a.mp4 "
                     "--latents-out l.safetensors", &err), 0, "%s", err);
    cr_expect_eq(probe("a.mp4", NULL, NULL), 21, "%s", err);
    cr_expect(strstr(err, "24 frames at 16 fps used"), "%s", err);
}

Test(v2v_cli, pipes_that_end_stop_the_run_cleanly)
{
    char *err;
    /* raw RGB frames on stdin: 20 frames -> 5 latents -> 17 frames, the file finalised */
    cr_assert_eq(gen("ffmpeg -v error -f lavfi -i testsrc=size=96x64:rate=16 -frames:v 20 -f "
                     "rawvideo -pix_fmt rgb24 -",
                     "--input - --input-format rawvideo --input-options "
                     "video_size=96x64:pixel_format=rgb24:framerate=16 -o a.mp4", &err),
                 0, "%s", err);
    cr_expect_eq(probe("a.mp4", NULL, NULL), 17, "%s", err);
    cr_expect(strstr(err, "input '-' ended: 20 frames decoded"), "%s", err);
    /* a Matroska stream on stdin (a container that needs no seeking) */
    cr_assert_eq(gen("ffmpeg -v error -f lavfi -i testsrc=size=64x64:rate=16 -frames:v 12 "
                     "-c:v libx264 -f matroska -", "--input - -o b.mkv", &err), 0, "%s", err);
    cr_expect_eq(probe("b.mkv", NULL, NULL), 9, "%s", err);
    /* an empty pipe: a clear error, no output frames */
    cr_expect_eq(gen("true", "--input - --input-format rawvideo --input-options "
                     "video_size=64x64:pixel_format=rgb24 -o c.mp4", &err), 1, "%s", err);
    cr_expect(strstr(err, "--input"), "%s", err);
}

Test(v2v_cli, realtime_pacing_and_status)
{
    char *err;
    char out[160];
    snprintf(out, sizeof out, "%s/status.json", g_dir);
    /* 2.5 s of testsrc read at its own rate; `status` asked on stdin after 2 s */
    char pre[256];
    snprintf(pre, sizeof pre, "(sleep 2; echo status; sleep 2)");
    char extra[512];
    snprintf(extra, sizeof extra, "--input 'lavfi:testsrc=size=64x64:rate=16:duration=2.5' "
             "--input-realtime --control-stdin -o a.mp4 > '%s'", out);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    cr_assert_eq(gen(pre, extra, &err), 0, "%s", err);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    const double dt = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    cr_expect(dt >= 2.3, "a 2.5 s input read in real time took %.2f s", dt);
    cr_expect_eq(probe("a.mp4", NULL, NULL), 37, "%s", err); /* 40 frames, 10 latents */
    FILE *f = fopen(out, "r");
    cr_assert(f);
    char js[8192] = {0};
    size_t n = fread(js, 1, sizeof js - 1, f);
    js[n] = 0;
    fclose(f);
    cr_expect(strstr(js, "\"input\":{\"state\":\"running\",\"kind\":\"lavfi\""), "%s", js);
    cr_expect(strstr(js, "\"strength\":0.6,\"start_step\":2"), "%s", js);
    const char *p = strstr(js, "\"latency_p50_ms\":");
    cr_assert(p, "%s", js);
    const double p50 = atof(p + strlen("\"latency_p50_ms\":"));
    /* a chunk of 12 frames gathers for 0.75 s of input time; the tiny model adds little (a
     * slow machine, ASan, may have output nothing yet: then no latency either) */
    const char *vf = strstr(js, "\"video_frames\":");
    cr_assert(vf, "%s", js);
    if (atoi(vf + strlen("\"video_frames\":")) > 0)
        cr_expect(p50 > 0 && p50 < 5000, "latency p50 %.1f ms: %s", p50, js);
    else
        cr_expect(p50 == 0, "latency p50 %.1f ms before any output: %s", p50, js);
    cr_expect(strstr(err, "latency input frame -> output p50"), "%s", err);
}

Test(v2v_cli, bad_inputs_have_clear_messages)
{
    char *err;
    cr_expect_eq(gen("", "--input nope.mp4 -o a.mp4", &err), 2, "%s", err);
    cr_expect(strstr(err, "--input 'nope.mp4': cannot open (No such file or directory)"), "%s",
              err);
    /* a file named .mp4 that holds no video */
    char cmd[512];
    snprintf(cmd, sizeof cmd, "yes 'not a video' | head -c 20000 > '%s/bad.mp4'", g_dir);
    cr_assert_eq(system(cmd), 0);
    cr_expect_eq(gen("", "--input bad.mp4 -o a.mp4", &err), 1, "%s", err);
    cr_expect(strstr(err, "--input 'bad.mp4': cannot open") && strstr(err, "corrupt"), "%s", err);
    cr_expect(!strstr(err, "\n["), "libav's lines go through sinkstream's log: %s", err);
    /* a real video with 8 KB in its middle overwritten: what decodes is used, the run ends */
    snprintf(cmd, sizeof cmd, "cd '%s' && ffmpeg -v error -f lavfi -i testsrc=size=64x64:rate=16 "
             "-frames:v 48 -c:v libx264 -g 8 broken.mkv && dd if=/dev/zero of=broken.mkv bs=1 "
             "seek=12000 count=8000 conv=notrunc status=none", g_dir);
    cr_assert_eq(system(cmd), 0);
    cr_expect_eq(gen("", "--input broken.mkv -o b.mp4", &err), 0, "%s", err);
    const int nb = probe("b.mp4", NULL, NULL);
    cr_expect(nb > 0 && nb <= 45, "%d frames from a damaged 48-frame video: %s", nb, err);
    /* a text file */
    snprintf(cmd, sizeof cmd, "echo hello > '%s/notes.mkv'", g_dir);
    cr_assert_eq(system(cmd), 0);
    cr_expect_eq(gen("", "--input notes.mkv -o a.mp4", &err), 1, "%s", err);
    cr_expect(strstr(err, "--input 'notes.mkv'"), "%s", err);
    cr_expect_eq(gen("", "--input lavfi:testsrc --strength 1.5 -o a.mp4", &err), 2, "%s", err);
    cr_expect(strstr(err, "--strength") && strstr(err, "out of range"), "%s", err);
    cr_expect_eq(gen("", "--input lavfi:testsrc --strength -0.1 -o a.mp4", &err), 2, "%s", err);
    cr_expect(strstr(err, "--strength"), "%s", err);
    cr_expect_eq(gen("", "--strength 0.5 -o a.mp4", &err), 2, "%s", err);
    cr_expect(strstr(err, "--strength needs --input"), "%s", err);
    cr_expect_eq(gen("", "--input somewhere --input-format nosuchformat -o a.mp4",
                     &err), 1, "%s", err);
    cr_expect(strstr(err, "--input-format 'nosuchformat'"), "%s", err);
    cr_expect_eq(gen("", "--input lavfi:testsrc --latents-out l.safetensors", &err), 2, "%s", err);
    cr_expect(strstr(err, "runs until the input ends; --latents-out needs a bounded run"), "%s",
              err);
    cr_expect_eq(gen("", "--input lavfi:testsrc --kv-policy rolling -o a.mp4", &err), 2, "%s",
                 err);
    cr_expect(strstr(err, "rolling"), "%s", err);
}

/* bench --with-input: synthetic frames through the encoder and the strength path; the JSON has
 * the latency of every output frame (3 chunks of 12 frames in, 33 out) */
Test(v2v_cli, bench_with_input)
{
    char cmd[512], out[160];
    snprintf(out, sizeof out, "%s/bench.json", g_dir);
    snprintf(cmd, sizeof cmd, "( '%s' bench --config tiny --device cpu --chunks 3 --warmup 0 "
             "--no-profile --with-input --strength 0.5 --json -q > '%s' )", tu_bin(), out);
    char *err;
    cr_assert_eq(tu_sh(cmd, &err), 0, "%s", err);
    FILE *f = fopen(out, "r");
    cr_assert(f);
    static char js[65536];
    size_t n = fread(js, 1, sizeof js - 1, f);
    js[n] = 0;
    fclose(f);
    const char *in = strstr(js, "\"input\"");
    cr_assert(in, "%s", js);
    cr_expect(strstr(in, "\"strength\":\t0.5"), "%s", in);
    cr_expect(strstr(in, "\"start_step\":\t2"), "%s", in);
    cr_expect(strstr(in, "\"frames\":\t36"), "%s", in);
    cr_expect(strstr(in, "\"latency_frames\":\t33"), "%s", in);
    const char *p = strstr(in, "\"latency_p50_ms\":");
    cr_assert(p);
    cr_expect_gt(atof(p + strlen("\"latency_p50_ms\":")), 0.0);
    snprintf(cmd, sizeof cmd, "'%s' bench --config tiny --device cpu --strength 0.5", tu_bin());
    cr_expect_eq(tu_sh(cmd, &err), 2, "%s", err);
    cr_expect(strstr(err, "--strength / --input-live need --with-input"), "%s", err);
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t l = sizeof a;
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &l), 0);
    close(fd);
    return ntohs(a.sin_port);
}

/* A network input that drops is reopened with backoff, and the status says so while it is
 * down: an ffmpeg "server" (MPEG-TS over TCP, listening) sends 1.5 s and exits; 1 s later a
 * second one listens on the same port. The run needs 48 frames, so it must reconnect. */
Test(v2v_cli, network_input_drop_is_reconnected)
{
    const int port = free_port();
    char pre[1024], extra[512], st_path[160];
    snprintf(st_path, sizeof st_path, "%s/status.jsonl", g_dir);
    snprintf(pre, sizeof pre,
             "( timeout 15 ffmpeg -v quiet -re -f lavfi -i testsrc=size=64x64:rate=16 -t 1.5 "
             "-c:v libx264 -g 8 -f mpegts 'tcp://127.0.0.1:%d?listen=1'; sleep 1; timeout 15 "
             "ffmpeg -v quiet -re -f lavfi -i testsrc=size=64x64:rate=16 -t 6 -c:v libx264 -g 8 "
             "-f mpegts "
             "'tcp://127.0.0.1:%d?listen=1' ) >/dev/null 2>&1 & sleep 0.5; "
             "(for i in $(seq 40); do echo status; sleep 0.2; done)", port, port);
    snprintf(extra, sizeof extra, "--input tcp://127.0.0.1:%d --input-reconnect-max-ms 400 "
             "--frames 12 --control-stdin -o a.mkv > '%s'", port, st_path);
    char *err;
    cr_assert_eq(gen(pre, extra, &err), 0, "%s", err);
    cr_expect(strstr(err, "the stream ended; reconnecting"), "%s", err);
    cr_expect(strstr(err, "reconnected (attempt"), "%s", err);
    cr_expect(strstr(err, "48 frames at 16 fps used") && strstr(err, "reconnects 1)"), "%s", err);
    cr_expect_eq(probe("a.mkv", NULL, NULL), 45, "%s", err);
    FILE *f = fopen(st_path, "r");
    cr_assert(f);
    static char js[1 << 18];
    size_t n = fread(js, 1, sizeof js - 1, f);
    js[n] = 0;
    fclose(f);
    cr_expect(strstr(js, "\"input\":{\"state\":\"reconnecting\",\"kind\":\"network\""),
              "no status line said reconnecting: %.2000s", js);
    cr_expect(strstr(js, "\"reconnects\":1"), "%.2000s", js);
}

/* A live-style input that never ends (a lavfi source read in real time): Ctrl-C ends the run
 * at the next chunk boundary, the file finalised, exit 0 */
Test(v2v_cli, ctrl_c_ends_an_endless_input_cleanly)
{
    char *err;
    cr_assert_eq(gen("", "--input lavfi:testsrc=size=64x64:rate=16 --input-realtime -o a.mp4 & "
                     "P=$!; sleep 2.5; kill -INT $P; wait $P", &err), 0, "%s", err);
    const int n = probe("a.mp4", NULL, NULL);
    cr_expect(n >= 9 && (n + 3) % 12 == 0, "%d frames (whole chunks of 12, less the first 3): %s",
              n, err);
    cr_expect(strstr(err, "latency input frame -> output p50"), "%s", err);
}

/* A pipe whose producer sends the frames asked for and then stalls (keeps stdin open, sends
 * nothing): the run ends when it has them, it does not wait for the producer (no frame is
 * held back until the next one, stdin reads are interruptible). `timeout 60` turns a hang
 * into a failure; the producer would stall for 120 s. */
Test(v2v_cli, a_stalled_pipe_does_not_hold_the_run)
{
    const char *src = getenv("SK_SOURCE_DIR");
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "( cd '%s' && mkfifo in.fifo || exit 9; ( ffmpeg -v error -f lavfi -i "
             "testsrc=size=64x64:rate=16 -frames:v 12 -f rawvideo -pix_fmt rgb24 -; exec sleep 120 "
             ") > in.fifo & WP=$!; timeout 60 '%s' generate --dit "
             "%s/tests/fixtures/demo/dit_demo_c16.safetensors --text-embeds "
             "%s/tests/fixtures/dit/embeds.safetensors --vae "
             "%s/tests/fixtures/taehv/taehv_tiny_21.safetensors --height 64 --width 64 --input - "
             "--input-format rawvideo --input-options video_size=64x64:pixel_format=rgb24:"
             "framerate=16 --frames 3 -o a.mp4 < in.fifo; rc=$?; kill $WP; exit $rc )",
             g_dir, tu_bin(), src, src, src);
    char *err;
    cr_assert_eq(tu_sh(cmd, &err), 0, "%s", err);
    cr_expect_eq(probe("a.mp4", NULL, NULL), 9, "%s", err);
}

/* LongLive 2.0's path: the tiny ti2v DiT (48 channels), taew2_2's encoder (patch 2, 16x),
 * UniPC from the start step, the multishot cache, which works in whole chunks: the last
 * partial chunk is padded to a full one with the last frame (36 frames -> 10 latents) */
Test(v2v_cli, longlive2_multishot_pads_the_last_chunk)
{
    const char *src = getenv("SK_SOURCE_DIR");
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "cd '%s' && '%s' generate --dit %s/tests/fixtures/longlive2/dit_tiny.safetensors "
             "--dit-config %s/tests/fixtures/longlive2/config.json --text-embeds "
             "%s/tests/fixtures/longlive2/embeds.safetensors --embeds-key context.0 --vae "
             "%s/tests/fixtures/taehv/taehv_tiny_22.safetensors --height 64 --width 96 "
             "--sampler unipc --num-steps 4 --kv-policy multishot --chunk 2 --kv-sink 2 "
             "--kv-window 8 --fps 24 --strength 0.5 -o a.mp4 "
             "--input lavfi:testsrc=size=320x240:rate=24:duration=1.5",
             g_dir, tu_bin(), src, src, src, src);
    char *err;
    cr_assert_eq(tu_sh(cmd, &err), 0, "%s", err);
    int w, h;
    cr_expect_eq(probe("a.mp4", &w, &h), 37, "%s", err);
    cr_expect(w == 96 && h == 64, "%dx%d", w, h);
    cr_expect(strstr(err, "its last 4 frames make a last chunk of 2 latent frames"), "%s", err);
    cr_expect(strstr(err, "36 frames at 24 fps used") && strstr(err, "over 33 frames"), "%s",
              err);
}

/* PSNR (dB) of --rgb-out frames [T, 3, H, W] against the input frames raw RGB24 [N, H, W, 3]:
 * output frame j shows input frame j + 3 */
static double psnr_vs_input(const char *rgb_out, const uint8_t *in, int64_t n_in, int64_t H,
                            int64_t W)
{
    sk_st_file *f = NULL;
    cr_assert_eq(sk_st_open(rgb_out, &f), SK_OK, "%s", sk_error_message());
    float *o = NULL;
    const sk_st_tensor *t = NULL;
    cr_assert_eq(sk_st_read_f32(f, "frames", 0, NULL, &o, &t), SK_OK, "%s", sk_error_message());
    cr_assert(t->ndim == 4 && t->shape[1] == 3 && t->shape[2] == H && t->shape[3] == W);
    const int64_t T = t->shape[0];
    cr_assert_leq(T + 3, n_in);
    double se = 0;
    for (int64_t j = 0; j < T; j++)
        for (int64_t c = 0; c < 3; c++)
            for (int64_t p = 0; p < H * W; p++) {
                const double d = o[((j * 3) + c) * H * W + p] -
                                 in[((j + 3) * H * W + p) * 3 + c] / 255.0;
                se += d * d;
            }
    free(o);
    sk_st_close(&f);
    return 10 * log10(1.0 / (se / (double)(T * 3 * H * W)));
}

/* What the strength means, end to end with the demo model (models-demo: its trained TAEHV
 * encoder and decoder and DiT): the output is closer to the input the smaller the strength
 * (measured 10.8, 6.0, 4.7 dB PSNR at 0, 0.5, 1 on testsrc at 192x128; the demo VAE is small
 * and testsrc is far from its training shapes, hence the low values). A session that ignored
 * the encoded input, or paired frames wrongly, would not order them so. */
Test(v2v_cli, less_strength_keeps_more_of_the_input)
{
    const char *src = getenv("SK_SOURCE_DIR");
    char cmd[4096], path[3][200];
    const char *st[3] = {"0", "0.5", "1"};
    char *err;
    for (int i = 0; i < 3; i++) {
        snprintf(path[i], sizeof path[i], "%s/out_%d.safetensors", g_dir, i);
        snprintf(cmd, sizeof cmd, "'%s' generate --model %s/models-demo --prompt 'a red circle "
                 "moving right on a dark blue background' --input "
                 "lavfi:testsrc=size=192x128:rate=16:duration=2 --strength %s --frames 8 "
                 "--rgb-out '%s' -q", tu_bin(), src, st[i], path[i]);
        cr_assert_eq(tu_sh(cmd, &err), 0, "%s", err);
    }
    snprintf(cmd, sizeof cmd, "ffmpeg -v error -f lavfi -i testsrc=size=192x128:rate=16:"
             "duration=2 -f rawvideo -pix_fmt rgb24 -y '%s/in.rgb'", g_dir);
    cr_assert_eq(tu_sh(cmd, &err), 0, "%s", err);
    char rp[200];
    snprintf(rp, sizeof rp, "%s/in.rgb", g_dir);
    FILE *f = fopen(rp, "rb");
    cr_assert(f);
    const int64_t fb = 128 * 192 * 3;
    uint8_t *in = malloc((size_t)(32 * fb));
    const size_t got = fread(in, 1, (size_t)(32 * fb), f);
    fclose(f);
    cr_assert_eq(got, (size_t)(32 * fb));
    double p[3];
    for (int i = 0; i < 3; i++) p[i] = psnr_vs_input(path[i], in, 32, 128, 192);
    free(in);
    cr_log_info("PSNR against the input: strength 0 %.2f dB, 0.5 %.2f dB, 1 %.2f dB", p[0], p[1],
                p[2]);
    cr_expect(p[0] > p[1] && p[1] > p[2], "PSNR %.2f / %.2f / %.2f dB at strength 0 / 0.5 / 1",
              p[0], p[1], p[2]);
    cr_expect_gt(p[0] - p[2], 3.0, "strength 0 is only %.2f dB closer than 1", p[0] - p[2]);
}
