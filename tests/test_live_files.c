/* test_live_files.c - long and killed runs: `kill -9` in the middle of a run
 * leaves a playable .mp4 (fragmented) and .mkv (ffprobe decodes frames);
 * SIGINT stops at a chunk boundary with a complete file; a 2000-chunk run
 * keeps its RSS flat. Tiny models, CPU. */
#include "live_test_util.h"

static void mk(void) { lu_dir_make("live_files"); }
static void rm(void) { lu_dir_remove(); }

TestSuite(live_files, .init = mk, .fini = rm, .timeout = 600);


static const char *gen_cmd(const char *args)
{
    static char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "%s generate --dit %sdemo/dit_demo_c16.safetensors --text-embeds "
             "%sdit/embeds.safetensors --vae %staehv/taehv_tiny_21.safetensors --height 64 "
             "--width 64 %s", lu_bin(), LIVE_FIX, LIVE_FIX, LIVE_FIX, args);
    return cmd;
}

/* An endless run (--seconds 0) killed with SIGKILL once the file holds a few
 * fragments: what is on disk plays. */
static void killed_file_plays(const char *name)
{
    char args[400];
    snprintf(args, sizeof args, "--seconds 0 -o %s", lu_path(name));
    pid_t pid = lu_spawn(gen_cmd(args), lu_path("gen.log"), NULL);
    /* a few fragments / clusters on disk (the header alone is under 1 KB) */
    double t_end = lu_now() + 120;
    while (lu_size(lu_path(name)) < 15000 && lu_now() < t_end) lu_sleep(0.05);
    cr_assert(lu_size(lu_path(name)) >= 15000, "the file did not grow");
    cr_assert_eq(kill(-pid, SIGKILL), 0);
    cr_expect_eq(lu_wait(pid, 10), 128 + SIGKILL);
    lu_probe p = lu_ffprobe(lu_path(name));
    cr_expect_str_eq(p.codec, "h264", "%s: not playable after kill -9", name);
    cr_expect(p.width == 64 && p.height == 64);
    cr_expect(p.frames > 0, "%s: ffprobe decoded %d frames", name, p.frames);
    cr_log_info("%s killed at %lld bytes: %d frames play", name, (long long)lu_size(lu_path(name)),
                p.frames);
}

Test(live_files, kill9_leaves_a_playable_fragmented_mp4) { killed_file_plays("k.mp4"); }
Test(live_files, kill9_leaves_a_playable_mkv) { killed_file_plays("k.mkv"); }

/* SIGINT: the run stops at the next chunk boundary and finalises the file:
 * every frame generated is in it. */
Test(live_files, sigint_stops_at_a_boundary_with_a_complete_file)
{
    char args[400];
    snprintf(args, sizeof args, "--seconds 0 -o %s", lu_path("i.mp4"));
    pid_t pid = lu_spawn(gen_cmd(args), lu_path("gen.log"), NULL);
    double t_end = lu_now() + 120;
    while (lu_size(lu_path("i.mp4")) < 15000 && lu_now() < t_end) lu_sleep(0.05);
    cr_assert_eq(kill(pid, SIGINT), 0);
    int rc = lu_wait(pid, 30);
    char *e = lu_read(lu_path("gen.log"));
    cr_assert_eq(rc, 0, "SIGINT: exit %d: %s", rc, e);
    const char *g = strstr(e, "latent frames (");
    cr_assert(g && strstr(e, "signal: stopping at latent frame"), "%s", e);
    long vf = atol(g + 15); /* "(N video frames)" */
    lu_probe p = lu_ffprobe(lu_path("i.mp4"));
    cr_expect_eq(p.frames, vf, "file has %d frames, %ld were generated", p.frames, vf);
    free(e);
}

/* 2000 chunks (6000 latent frames; positions past the 1024-entry RoPE table,
 * so relative RoPE) of the smallest latent with one step: RssAnon sampled over
 * the run must stay within a few MB of where it was once the run was going
 * (4 MB; 32 MB under ASan, whose allocator and shadow memory grow on their
 * own even with the quarantine turned off for the child). */
Test(live_files, rss_flat_over_2000_chunks)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "%s%s generate --dit %sdemo/dit_demo_c16.safetensors --text-embeds "
             "%sdit/embeds.safetensors --frames 6000 --chunk 3 --latent-height 2 "
             "--latent-width 2 --steps 1000 --rope relative --no-decode --control-port 0",
#if defined(__SANITIZE_ADDRESS__)
             "env ASAN_OPTIONS=$ASAN_OPTIONS:quarantine_size_mb=0:thread_local_quarantine_size_kb=0 ",
#else
             "",
#endif
             lu_bin(), LIVE_FIX, LIVE_FIX);
    pid_t pid = lu_spawn(cmd, lu_path("rss.log"), NULL);
    long base = -1, maxkb = 0, last = 0;
    int samples = 0;
    double t0 = lu_now();
    for (;;) {
        char *e = lu_read(lu_path("rss.log"));
        const char *f = NULL, *p = e;
        while ((p = strstr(p, "video frames ")) && (f = p++)) {}
        long done = f ? (atol(f + 13) + 3) / 4 : 0; /* progress counts video frames: 4F-3 */
        free(e);
        long kb = lu_rss_kb(pid); /* -1 once it exited (a zombie has no RssAnon) */
        if (kb < 0) break;
        if (base < 0 && done >= 600) base = kb; /* 200 chunks in: everything allocated */
        if (base >= 0) {
            if (kb > maxkb) maxkb = kb;
            last = kb;
            samples++;
        }
        lu_sleep(0.05);
    }
    int rc = lu_wait(pid, 60);
    double dt = lu_now() - t0;
    char *e = lu_read(lu_path("rss.log"));
    cr_assert_eq(rc, 0, "2000-chunk run failed (%d): %.2000s", rc, e);
    cr_assert(strstr(e, "generated 6000 latent frames"), "%.2000s", e);
    cr_assert(base > 0 && samples >= 5, "too few RSS samples (%d) in %.1f s", samples, dt);
    cr_log_info("RSS over 2000 chunks: %ld kB after 200 chunks, max %ld kB, last %ld kB (+%ld kB), "
                "%d samples, %.1f s", base, maxkb, last, maxkb - base, samples, dt);
#if defined(__SANITIZE_ADDRESS__) /* ASan's allocator and shadow pages: a looser bound */
    const long limit = 32768;
#else
    const long limit = 4096;
#endif
    cr_expect(maxkb - base <= limit, "RSS grew by %ld kB over the run (%ld -> %ld)", maxkb - base,
              base, maxkb);
    free(e);
}
