/* cmd_generate.c - `sinkstream generate`: the causal DiT chunk loop from the
 * command line, with the reference-run interface of DESIGN.md (--text-embeds,
 * --noise-file, --latents-out) so any PyTorch Self-Forcing / LongLive run
 * can be reproduced. Everything is validated before weights are loaded.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dit/config.h"
#include "dit/model.h"
#include "runtime/core/log.h"
#include "runtime/core/progress.h"
#include "runtime/engine/model_dir.h"
#include "runtime/engine/pp_setup.h"
#include "runtime/input/input.h"
#include "runtime/io/safetensors.h"
#include "runtime/kv/kv_cache.h"
#include "runtime/live/control.h"
#include "runtime/live/live_loop.h"
#include "runtime/live/prompt_cache.h"
#include "runtime/live/prompts.h"
#include "runtime/output/output.h"
#include "runtime/sinkstream.h"
#include "sampler/schedule.h"
#include "sampler/unipc.h"
#include "tools/cli_device.h"
#include "tools/cli_opts.h"
#include "tools/commands.h"
#include "tools/gen_phase.h"
#include "tools/gen_progress_json.h"
#include "tools/gen_speed.h"
#include "tools/gen_timeline.h"
#include "tools/gen_image.h"
#include "tools/gen_units.h"
#include "tools/out_opts.h"
#include "tools/run_meta.h"

typedef struct {
    const char *model; /* --model DIR: files and model.json defaults (flags win) */
    int allow_outside; /* --allow-outside: its files may resolve outside DIR */
    const char *dit, *dit_config, *text_embeds, *embeds_key, *noise_file, *latents_out, *prompts;
    const char *vae, *output, *frames_dir, *rgb_out;
    const char *prompt, *text_encoder, *tokenizer, *text_encoder_config, *dump_steps;
    int text_offload; /* live prompts: free the encoder weights between encodes */
    int fps; /* --fps rounded to whole frames a second ("at" times, --seconds) */
    int64_t frames, chunk, height, width, latent_h, latent_w, kv_window, kv_sink;
    sk_int_list steps;
    double shift;
    int64_t seed;
    int kv_policy;  /* sk_kv_policy: fifo, sink, ema, deep-sink, rolling */
    int rope;       /* sk_kv_rope: auto, absolute, relative */
    double ema_alpha;
    int64_t kv_compress, kv_recent;
    int print_config;
    int device;     /* SK_DEV_*: 0 cpu, 1 cuda after sk_cli_device_resolve (auto, cpu-ref) */
    const char *device_api; /* the engine's name for the device asked for (cpu-ref, auto) */
    int wdtype;     /* 0 as-stored, 1 f32, 2 bf16, 3 f16, 4 fp8 */
    int act_dtype;  /* 0 auto, 1 f32, 2 bf16, 3 fp8 (--dtype: auto activations, fp8 DiT) */
    int no_decode, no_warp, no_overlap;
    /* live (docs/LIVE.md) */
    double seconds;  /* -1: --frames decides; 0: until stopped */
    int recache;     /* 0 on, 1 off, 2 auto (off for multishot, else on) */
    int sampler;     /* GEN_SAMPLER_*: renoise, unipc (sk_session_params.sampler) */
    int num_steps;   /* unipc steps */
    int64_t shot_rope_offset;
    int shot_clean_recache;
    int recache_sink;
    const char *tee;
    int net_timeout_ms, reconnect_max_ms;
    gen_live_opts live;
    gen_pp_opts pp; /* --gpus / --pp-stages (docs/MULTIGPU.md) */
    const char *timeline_out; /* --timeline-out FILE (tools/gen_timeline.h) */
    int progress;             /* --progress: 0 text, 1 json, 2 off */
    int64_t video_frames;     /* --video-frames N (0: not given; tools/gen_units.h) */
    sk_out_opts out; /* --fps --codec --preset --crf --bitrate ... -y (tools/out_opts.h) */
    gen_image img;   /* --image / --image-latent (LongLive 2.0 I2V, tools/gen_image.h) */
    /* video-to-video (docs/INPUTS.md) */
    const char *input, *input_format, *input_options;
    double strength;
    int input_realtime, input_reconnect_max_ms;
} gen_opts;

/* --sampler, in its choices' order; the names are sk_session_params.sampler's */
enum { GEN_SAMPLER_RENOISE = 0, GEN_SAMPLER_UNIPC = 1 };
static const char *const k_sampler_names[] = {"renoise", "unipc"};

/* file size in GB for the "loading ..." lines (0 when it cannot be read) */
static double gen_file_gb(const char *path)
{
    struct stat sb;
    return path && stat(path, &sb) == 0 ? (double)sb.st_size / 1e9 : 0.0;
}

/* --timeline-out: the session reports each prompt as it takes effect */
static void on_prompt_timeline(void *user, int64_t frame, const char *text, const char *label,
                               const char *source)
{
    gen_timeline *tl = user;
    if (tl->st == SK_OK) tl->st = gen_timeline_add(tl, frame, text, label, source);
}

static int readable(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    fclose(f);
    return 1;
}

/* First SIGINT/SIGTERM: the session stops at its next chunk boundary like POST /stop and
 * every frame made is written and sent (the live outputs drain, bounded by their queue and
 * --net-timeout-ms), exit 0. Second: sk_session_abort, the network waits end at once (files
 * are still finalised), exit 1 (issue 15 #4). A third kills at once. */
static sk_session *volatile g_run_session;
static volatile int g_run_signalled;
static struct sigaction g_old_int, g_old_term, g_old_pipe;

static void on_signal(int sig)
{
    (void)sig;
    if (!g_run_signalled) {
        g_run_signalled = 1;
        if (g_run_session) sk_session_stop(g_run_session);
        return;
    }
    if (g_run_session) sk_session_abort(g_run_session);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
}

static void signals_install(int on)
{
    if (on) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_signal;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, &g_old_int);
        sigaction(SIGTERM, &sa, &g_old_term);
        sa.sa_handler = SIG_IGN; /* a dead RTMP peer must give EPIPE, not kill us */
        sigaction(SIGPIPE, &sa, &g_old_pipe);
    } else {
        sigaction(SIGINT, &g_old_int, NULL);
        sigaction(SIGTERM, &g_old_term, NULL);
        sigaction(SIGPIPE, &g_old_pipe, NULL);
    }
}

/* The prompts of the run: the command line's, then --prompts (whose first line replaces
 * it when it has no time). Embeddings are read here, before any weight is loaded; text
 * is encoded by the engine when queued. */
static sk_status gather_prompts(const gen_opts *o, int64_t chunk, gen_prompt_list *pl,
                                sk_st_file **emb, int *any_text)
{
    gen_prompt_list file_pl = {0};
    sk_status st = SK_OK;
    int first_initial = 0;
    *any_text = 0;
    if (o->prompts && (st = gen_prompts_parse(o->prompts, o->frames, chunk, o->fps, &file_pl,
                                              &first_initial)) != SK_OK)
        goto out;
    if (first_initial && (o->prompt || o->embeds_key)) {
        st = SK_ERR(SK_E_INVALID_ARG, "--prompts '%s' line %d has no time (or 0), so it is the "
                    "starting prompt; drop %s or give that line a time", o->prompts,
                    file_pl.v[0].line, o->prompt ? "--prompt" : "--embeds-key");
        goto out;
    }
    if (!first_initial) {
        if (!o->prompt && !o->text_embeds) {
            st = SK_ERR(SK_E_INVALID_ARG, "--prompts '%s': no starting prompt; give --prompt, "
                        "--text-embeds (--embeds-key) or a first line without a time", o->prompts);
            goto out;
        }
        if ((st = gen_prompt_list_add(pl, 0, 0, o->prompt ? NULL : o->embeds_key ? o->embeds_key
                                                                                  : "context",
                                      o->prompt)) != SK_OK)
            goto out;
    }
    for (int i = 0; i < file_pl.n; i++) /* ownership moves to pl */
        if ((st = gen_prompt_list_take(pl, &file_pl.v[i])) != SK_OK) goto out;
    for (int i = 0; i < pl->n; i++) {
        char d[96];
        if (pl->v[i].text && !o->text_encoder) {
            st = SK_ERR(SK_E_INVALID_ARG, "--prompts line %d: %s needs --text-encoder",
                        pl->v[i].line, gen_prompt_desc(&pl->v[i], d, sizeof d));
            goto out;
        }
        if (pl->v[i].key && !o->text_embeds) {
            st = SK_ERR(SK_E_INVALID_ARG, "--prompts line %d: %s needs --text-embeds",
                        pl->v[i].line, gen_prompt_desc(&pl->v[i], d, sizeof d));
            goto out;
        }
        *any_text |= pl->v[i].text != NULL;
    }
    if (o->text_embeds && (st = sk_st_open(o->text_embeds, emb)) != SK_OK) goto out;
    /* every line is checked now (names, shapes) but none is read: the session reads or
     * encodes each when it comes due, through a bounded cache (issue 15 #6) */
    for (int i = 0, cols0 = 0; i < pl->n; i++) {
        int64_t cols = 0;
        if ((st = gen_prompt_check(&pl->v[i], *emb, o->text_encoder != NULL, &cols)) != SK_OK) {
            if (pl->v[i].line > 0) sk_error_prefix("--prompts '%s' line %d: ", o->prompts,
                                                   pl->v[i].line);
            goto out;
        }
        if (cols && cols0 && cols != cols0) {
            st = SK_ERR(SK_E_SHAPE, "--prompts '%s' line %d: the prompt has %lld columns, the "
                        "first one %d", o->prompts, pl->v[i].line, (long long)cols, cols0);
            goto out;
        }
        if (cols && !cols0) cols0 = (int)cols;
    }
out:
    gen_prompt_list_free(&file_pl);
    return st;
}

/* Opens the engine, attaches the outputs and control, queues the prompts, then steps the
 * session to the end. Returns the exit code. */
static int run(const gen_opts *o, const sk_schedule *sched)
{
    int rc = 1;
    sk_engine *e = NULL;
    sk_session *s = NULL;
    sk_st_file *emb = NULL;
    sk_st_writer *w = NULL;
    float *lat = NULL;
    gen_prompt_list pl = {0};
    sk_run_meta meta = {0};
    gen_timeline tl = {0};
    const char *tee_list[2] = {o->tee, NULL};
    sk_status st;
    int signals = 0;
    const int decode = !o->no_decode && (o->output || o->frames_dir || o->rgb_out);
    sk_session_input_status is = {{0}};
    const int64_t chunk = o->frames > 0 && o->frames < o->chunk ? o->frames : o->chunk;
    /* live control may bring text prompts: the encoder stays (weights offloaded between
     * prompts); without it the encoder's weights are freed once the prompts are encoded */
    const int live_ctl = o->live.control_stdin || o->live.control_port >= 0;
    const int keep_text = live_ctl && o->text_encoder;
    int any_text = 0;
    if ((st = gather_prompts(o, chunk, &pl, &emb, &any_text)) != SK_OK) goto fail;
    const int multishot = o->kv_policy == SK_KV_MULTISHOT;
    for (int i = 1; i < pl.n && !multishot; i++)
        if (pl.v[i].cut) {
            SK_LOGW("--prompts line %d opens a new shot (\"cut\" or the scene-cut prefix), which "
                    "only --kv-policy multishot acts on: here it is a plain prompt switch",
                    pl.v[i].line);
            break;
        }
    /* text prompts later in the schedule are encoded when due: the encoder stays, its
     * weights offloaded between encodes */
    int later_text = 0;
    for (int i = 1; i < pl.n; i++) later_text |= pl.v[i].text != NULL;

    static const char *const act_names[] = {"auto", "f32", "bf16", "auto"};
    static const char *const wd_names[] = {"as-stored", "f32", "bf16", "f16", "fp8"};
    static const char *const tr_names[] = {"auto", "loopback", "nccl"};
    sk_engine_params ep = sk_engine_params_default();
    ep.dit = o->dit;
    ep.dit_config = o->dit_config;
    if (o->text_encoder && (any_text || keep_text)) {
        ep.text_encoder = o->text_encoder;
        ep.tokenizer = o->tokenizer;
        ep.text_encoder_config = o->text_encoder_config;
        ep.text_offload = keep_text ? o->text_offload : later_text;
    }
    ep.vae = decode || o->input ? o->vae : NULL; /* --input: its encoder */
    ep.device = o->device_api;
    ep.act_dtype = act_names[o->act_dtype];
    ep.dit_dtype = o->act_dtype == 3 ? "fp8" : wd_names[o->wdtype]; /* --dtype fp8 */
    /* the VAE overlaps the next chunk's DiT on CUDA, except with --no-overlap, live control
     * and --input (frames must leave with their chunk; the input's encoder shares the VAE's
     * stream) and pipeline stages */
    ep.vae_overlap = !o->no_overlap && !live_ctl && !o->input;
    ep.gpus = o->pp.gpus;
    ep.pp_stages = o->pp.stages;
    ep.pp_split = o->pp.split;
    ep.pp_transport = tr_names[o->pp.transport];
    /* a progress line while the weights load (minutes for a real model: issue 17) */
    char what[2400];
    double gb = gen_file_gb(o->dit);
    if (ep.text_encoder) {
        snprintf(what, sizeof what, "loading the text encoder '%s' (%.2f GB); loading the DiT "
                 "'%s' (%.2f GB)", ep.text_encoder, gen_file_gb(ep.text_encoder), o->dit, gb);
        gb += gen_file_gb(ep.text_encoder);
    } else {
        snprintf(what, sizeof what, "loading the DiT '%s' (%.2f GB)", o->dit, gb);
    }
    gen_phase *ph = gen_phase_begin("load", "loading", "weights loaded", what, (int64_t)(gb * 1e9), o->progress == 1);
    st = sk_engine_open(&ep, &e);
    gen_phase_end(ph, st == SK_OK);
    if (st != SK_OK) goto fail;
    sk_engine_info info;
    sk_engine_get_info(e, &info);

    sk_session_params sp = sk_session_params_default();
    sp.frames = o->frames;
    sp.chunk = o->chunk;
    sp.latent_h = o->latent_h;
    sp.latent_w = o->latent_w;
    for (int k = 0; k < sched->n; k++) sp.steps[k] = sched->steps[k];
    sp.n_steps = sched->n;
    sp.sampler = k_sampler_names[o->sampler];
    sp.num_steps = o->num_steps;
    sp.shift = sched->shift;
    sp.warp = sched->warp;
    sp.seed = (uint64_t)o->seed;
    sp.noise_file = o->noise_file;
    sp.kv_policy = sk_kv_policy_name((sk_kv_policy)o->kv_policy);
    sp.kv_window = o->kv_window;
    sp.kv_sink = o->kv_sink;
    sp.rope = sk_kv_rope_name((sk_kv_rope)o->rope);
    sp.ema_alpha = o->ema_alpha;
    sp.kv_compress = o->kv_compress;
    sp.kv_recent = o->kv_recent;
    sp.shot_rope_offset = o->shot_rope_offset;
    sp.shot_clean_recache = o->shot_clean_recache;
    sp.recache = o->recache == 1 ? "off" : o->recache_sink ? "sink" : "on";
    sp.prompt_switch = pl.n > 1 || live_ctl;
    sp.decode = decode;
    sp.fps = o->fps;
    sp.fps_num = o->out.fps_num; /* exact: 30000/1001 */
    sp.fps_den = o->out.fps_den;
    sp.dump_steps = o->dump_steps;
    if ((st = gen_timeline_open(&tl, o->timeline_out)) != SK_OK) goto fail;
    if (o->timeline_out) {
        sp.on_prompt = on_prompt_timeline;
        sp.user = &tl;
    }
    if ((st = sk_session_create(e, &sp, &s)) != SK_OK) goto fail;
    if (o->img.lat && (st = sk_session_set_image_latent(s, o->img.lat, info.latent_channels,
                                                        o->latent_h, o->latent_w)) != SK_OK)
        goto fail;
    if (o->input) {
        sk_session_input_opts io = sk_session_input_opts_default();
        io.strength = o->strength;
        io.format = o->input_format;
        io.options = o->input_options;
        io.realtime = o->input_realtime;
        io.timeout_ms = o->net_timeout_ms;
        io.reconnect_max_ms = o->input_reconnect_max_ms;
        if ((st = sk_session_attach_input(s, o->input, &io)) != SK_OK) goto fail;
    }

    if (decode) {
        /* live (RTMP): paced to the clock by a queue worker holding two chunks of frames,
         * network calls bounded, reconnects; the --tee file gets its own worker */
        if (sk_run_meta_generate(&meta, &pl, o->seed, o->model, o->dit, o->steps.v, o->steps.n,
                                 o->shift, sk_kv_policy_name((sk_kv_policy)o->kv_policy),
                                 o->kv_sink, o->kv_window) != 0) {
            st = SK_ERR(SK_E_OOM, "out of memory for the video's metadata");
            goto fail;
        }
        sk_output_opts oo = {.timeout_ms = o->net_timeout_ms,
                             .reconnect_max_ms = o->reconnect_max_ms, .metadata = meta.kv};
        sk_out_opts_to_api(&o->out, &oo);
        /* --tee next to a file: the same packets through libavformat's tee muxer (one
         * encode); next to RTMP: a sink of its own, so the stream can reconnect */
        sk_output_kind ok = SK_OUTPUT_AUTO;
        const int tee_muxed = o->tee && o->output &&
                              sk_output_detect_kind(o->output, &ok) == SK_OK &&
                              ok == SK_OUTPUT_VIDEO_FILE;
        if (tee_muxed) oo.tee = tee_list;
        if (o->output && (st = sk_session_attach_output(s, o->output, &oo, NULL)) != SK_OK)
            goto fail;
        sk_output_opts to = oo;
        to.kind = "video";
        to.tee = NULL;
        to.timeout_ms = to.reconnect_max_ms = 0;
        to.queue_frames = (int)(8 * chunk + 4);
        if (o->tee && !tee_muxed && (st = sk_session_attach_output(s, o->tee, &to, NULL)) != SK_OK)
            goto fail;
        sk_output_opts po = {.kind = "png", .metadata = meta.kv}, ro = {.kind = "rgb"};
        if (o->frames_dir && (st = sk_session_attach_output(s, o->frames_dir, &po, NULL)) != SK_OK)
            goto fail;
        if (o->rgb_out && (st = sk_session_attach_output(s, o->rgb_out, &ro, NULL)) != SK_OK)
            goto fail;
        const int64_t vh = info.vae_stride * o->latent_h, vw = info.vae_stride * o->latent_w;
        SK_LOGI("decode: TAEHV '%s' -> %lldx%lld frames at %s fps", o->vae, (long long)vw,
                (long long)vh, o->out.fps);
    }
    if (live_ctl) {
        sk_control_opts co = {.control_stdin = o->live.control_stdin,
                              .control_port = o->live.control_port,
                              .control_bind = o->live.control_bind,
                              .control_token = o->live.control_token,
                              .max_body = o->live.max_body,
                              .start_paused = o->live.start_paused,
                              .embeds_file = o->text_embeds};
        if ((st = sk_session_start_control(s, &co, NULL)) != SK_OK) goto fail;
    }
    /* the starting prompt now (its errors before the first chunk); the rest of the schedule
     * deferred: checked, read or encoded by the session when due (issue 15 #6) */
    gen_phase *enc_ph = pl.v[0].text ? gen_phase_begin("encode_text", "encoding",
                                                       "starting prompt encoded",
                                                       "encoding the starting prompt", 0,
                                                       o->progress == 1)
                                     : NULL;
    for (int i = 0; i < pl.n; i++) {
        gen_prompt *p = &pl.v[i];
        /* LongLive 2.0: a line with "cut": true (or a prompt starting "The scene
         * transitions. ") opens a new shot with its chunk */
        const sk_switch_mode mode = p->cut && multishot ? SK_SWITCH_CUT : SK_SWITCH_DEFAULT;
        if (i == 0) {
            st = p->key ? gen_prompt_resolve(p, emb, NULL) : SK_OK;
            if (st == SK_OK)
                st = p->key ? sk_session_queue_prompt_embeds(s, p->ctx, p->rows, p->cols,
                                                             p->frame, mode, p->key)
                            : sk_session_queue_prompt_text(s, p->text, p->frame, mode);
        } else {
            st = sk_session_queue_prompt_deferred(s, p->text, o->text_embeds, p->key, p->frame,
                                                  mode);
        }
        if (i == 0) {
            gen_phase_end(enc_ph, st == SK_OK);
            enc_ph = NULL;
        }
        if (st != SK_OK) {
            if (p->line > 0) sk_error_prefix("--prompts '%s' line %d: ", o->prompts, p->line);
            goto fail;
        }
    }
    if (any_text && !keep_text && !later_text && (st = sk_engine_offload_text(e)) != SK_OK)
        goto fail;

    const int64_t C = info.latent_channels, E = C * o->latent_h * o->latent_w;
    if (o->latents_out) {
        lat = malloc((size_t)(o->frames * E) * sizeof *lat);
        if (!lat) { st = SK_ERR(SK_E_OOM, "out of host memory for %lld latent frames", (long long)o->frames); goto fail; }
    }
    g_run_signalled = 0;
    g_run_session = s;
    signals_install(1);
    signals = 1;
    sk_unipc_table ut = {0};
    const int unipc = o->sampler == GEN_SAMPLER_UNIPC;
    if (unipc && (st = sk_unipc_table_make(o->num_steps, o->shift, &ut)) != SK_OK) goto fail;
    char how_long[64]; /* 0 frames: unbounded (a live run, or until an --input ends) */
    if (o->frames > 0) snprintf(how_long, sizeof how_long, "%lld latent frames", (long long)o->frames);
    else snprintf(how_long, sizeof how_long, "%s", o->input ? "until the input ends" : "unbounded");
    SK_LOGI("generate: %lldx%lld latents, %s, in chunks of %lld, %s %d steps (t %g..%g), "
            "KV %s window %lld sink %lld, noise %s", (long long)o->latent_h,
            (long long)o->latent_w, how_long, (long long)chunk, unipc ? "UniPC" : "re-noise",
            unipc ? ut.n : sched->n, unipc ? (double)ut.t[0] : (double)sched->t[0],
            unipc ? (double)ut.t[ut.n - 1] : (double)sched->t[sched->n - 1],
            sk_kv_policy_name((sk_kv_policy)o->kv_policy),
            (long long)o->kv_window, (long long)o->kv_sink,
            o->noise_file ? o->noise_file : "philox");
    sk_progress pr;
    sk_progress_start(&pr, "video frames", gen_video_frames_of(o->frames));
    pr.log_every_s = o->frames > 0 ? 0 : 5; /* one line per chunk when not on a terminal */
    if (o->progress) pr.quiet = 1; /* json: gen_progress_json instead; off: nothing */
    const double rate = (double)o->out.fps_num / o->out.fps_den;
    gen_speed spd = {0};
    sk_session_status ss;
    while (!sk_session_done(s)) {
        sk_step_info si;
        if ((st = sk_session_step(s, &si)) != SK_OK) goto fail;
        if (tl.st != SK_OK) { st = tl.st; goto fail; }
        if (!si.n_frames) continue;
        if (lat) {
            const float *l;
            int64_t n, f0;
            if ((st = sk_session_latents(s, &l, &n, &f0)) != SK_OK) goto fail;
            memcpy(lat + f0 * E, l, (size_t)(n * E) * sizeof *l);
        }
        const int64_t done_latent = si.first_frame + si.n_frames;
        sk_progress_update(&pr, gen_video_frames_of(done_latent));
        sk_session_get_status(s, &ss);
        if (o->progress == 1)
            gen_progress_json(ss.chunks - 1, done_latent, o->frames, ss.elapsed_s, rate, &ss, 0);
        gen_speed_check(&spd, done_latent, ss.elapsed_s, rate, o->frames, o->device == 1);
    }
    if ((st = sk_session_finish(s, NULL)) != SK_OK) goto fail;
    sk_progress_finish(&pr);
    if (o->input && sk_session_get_input_status(s, &is) == SK_OK) {
        SK_LOGI("input '%s': %lld frames at %s fps used (decoded %lld, repeated %lld, skipped "
                "%lld, dropped %lld, reconnects %d), strength %.3g (from step %d); latency "
                "input frame -> output p50 %.1f ms, p99 %.1f ms, max %.1f ms over %lld frames",
                o->input, (long long)is.used, o->out.fps, (long long)is.decoded,
                (long long)is.repeated, (long long)is.skipped, (long long)is.dropped,
                is.reconnects, is.strength, is.start_step, is.latency_p50_ms, is.latency_p99_ms,
                is.latency_max_ms, (long long)is.latency_n);
    }
    sk_session_get_status(s, &ss);
    const int64_t made = ss.next_frame;
    if (o->progress == 1)
        gen_progress_json(ss.chunks, made, o->frames, ss.elapsed_s, rate, &ss, 1);
    {
        double dt = sk_progress_now() - pr.t_start;
        int64_t vf = made > 0 ? 4 * made - 3 : 0; /* video frames the Wan VAE makes of F latents */
        SK_LOGI("generated %lld latent frames (%lld video frames) in %.2f s: %.1f video fps%s",
                (long long)made, (long long)vf, dt, dt > 0 ? (double)vf / dt : 0.0,
                decode ? " including decode" : "");
    }
    if (o->latents_out) {
        int64_t shape[4] = {made, C, o->latent_h, o->latent_w};
        if ((st = sk_st_writer_create(&w)) != SK_OK ||
            (st = sk_st_writer_add_f32(w, "latents", SK_DTYPE_F32, 4, shape, lat)) != SK_OK ||
            (st = sk_st_writer_meta(w, "generator", "sinkstream generate")) != SK_OK ||
            (st = sk_st_writer_save(w, o->latents_out)) != SK_OK)
            goto fail;
        SK_LOGI("wrote latents [%lld, %lld, %lld, %lld] to '%s'", (long long)made,
                (long long)C, (long long)o->latent_h, (long long)o->latent_w, o->latents_out);
    }
    if ((st = gen_timeline_close(&tl)) != SK_OK) goto fail;
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "sinkstream generate: %s\n", sk_error_message());
    SK_LOGD("raised at %s", sk_error_where());
done:
    g_run_session = NULL;
    sk_session_close(&s); /* finalises the outputs when the run failed */
    if (signals) signals_install(0);
    sk_engine_close(&e);
    sk_st_writer_free(&w);
    sk_st_close(&emb);
    gen_prompt_list_free(&pl);
    sk_run_meta_free(&meta);
    (void)gen_timeline_close(&tl);
    free(lat);
    return rc;
}

/* Is v one of choices "a|b|c"? */
static int choice_ok(const char *choices, const char *v)
{
    size_t n = strlen(v);
    for (const char *p = choices; p && *p;) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && !strncmp(p, v, n)) return 1;
        p = bar ? bar + 1 : NULL;
    }
    return 0;
}

/* --model DIR: the directory's files, then model.json's "generate" defaults set
 * through the option table (as if typed), over the built-in defaults. The
 * caller parses the environment and argv again afterwards, so they win. An
 * option this build lacks is skipped with a warning; an enum value it lacks
 * takes model.json's "fallback" (warned about after the reparse, when it is
 * still in effect). Returns -1 to go on, or an exit code. */
typedef struct {
    const sk_opt *opt;
    char wanted[64], used[64];
} model_fallback;

static int apply_model_dir(const sk_cli *cli, gen_opts *o, const gen_opts *defaults,
                           sk_model_dir **md, model_fallback *fb, int *nfb, int cap)
{
    if (sk_model_dir_open_ex(o->model, o->allow_outside, md) != SK_OK)
        return sk_cli_usage_error(cli, "--model: %s", sk_error_message());
    const sk_model_dir *m = *md;
    *o = *defaults;
    o->model = m->dir;
    o->dit = m->dit;
    o->text_encoder = m->text_encoder;
    o->tokenizer = m->tokenizer;
    o->vae = m->vae;
    o->img.vae_encoder = m->vae_encoder;
    char who[4200];
    snprintf(who, sizeof who, "model.json '%s'", m->json_path);
    for (const cJSON *g = m->generate ? m->generate->child : NULL; g; g = g->next) {
        char v[512];
        if (sk_model_dir_value_text(g, v, sizeof v) != 0) continue; /* checked at open */
        const sk_opt *op = sk_cli_find(cli, g->string);
        if (!op) {
            SK_LOGW("%s: generate.%s is not an option of this build's generate; ignored", who,
                    g->string);
            continue;
        }
        if (!sk_model_dir_option_allowed(g->string))
            return sk_cli_usage_error(cli, "%s: generate.%s is not a default a model directory "
                                      "may set (only %s); give --%s on the command line if you "
                                      "mean it", who, g->string, sk_model_dir_allowed_list(),
                                      g->string);
        if (op->type == SK_OPT_ENUM && !choice_ok(op->choices, v)) {
            const cJSON *f = m->fallback ? cJSON_GetObjectItemCaseSensitive(m->fallback, g->string)
                                         : NULL;
            if (!cJSON_IsString(f) || !choice_ok(op->choices, f->valuestring))
                return sk_cli_usage_error(cli, "%s: --%s %s is not available in this build (%s) "
                                          "and model.json names no usable fallback", who,
                                          g->string, v, op->choices);
            if (*nfb < cap) {
                fb[*nfb].opt = op;
                snprintf(fb[*nfb].wanted, sizeof fb[*nfb].wanted, "%.63s", v);
                snprintf(fb[*nfb].used, sizeof fb[*nfb].used, "%.63s", f->valuestring);
                (*nfb)++;
            }
            snprintf(v, sizeof v, "%s", f->valuestring);
        }
        /* string options are kept by pointer: the text must outlive v (e.g. --fps) */
        const char *kept = sk_model_dir_keep(*md, v);
        if (!kept) return sk_cli_usage_error(cli, "%s: out of memory", who);
        if (sk_cli_set(cli, g->string, kept, who) == 2) return 2;
    }
    SK_LOGI("model '%s': %s%s%s%s", m->dir, m->family, m->title[0] ? " (" : "", m->title,
            m->title[0] ? ")" : "");
    return -1;
}

static int cmd_generate_impl(int argc, char **argv, sk_model_dir **md);

/* The KV options (docs/KV_POLICIES.md): per-policy defaults, then every rule
 * sk_kv_cache_init would apply, named by flag; -1 to go on, else the exit code. */
static int kv_usage(const sk_cli *cli, gen_opts *o, int64_t chunk)
{
    const sk_kv_policy pol = (sk_kv_policy)o->kv_policy;
    const char *pn = sk_kv_policy_name(pol);
    if (o->kv_window < 0)
        o->kv_window = pol == SK_KV_MULTISHOT ? 4 * chunk
                       : pol == SK_KV_EMA ? 9 : (pol == SK_KV_DEEP_SINK || pol == SK_KV_ROLLING) ? 21 : 12;
    if (o->kv_sink < 0) o->kv_sink = sk_kv_default_sink(pol, o->kv_window, chunk);
    if (pol == SK_KV_FIFO && o->kv_sink != 0)
        return sk_cli_usage_error(cli, "--kv-sink %lld with --kv-policy fifo: fifo keeps no sink "
                                       "(use --kv-policy sink)", (long long)o->kv_sink);
    if (pol != SK_KV_FIFO && o->kv_sink < 1)
        return sk_cli_usage_error(cli, "--kv-policy %s needs --kv-sink of at least 1 frame", pn);
    if (o->kv_sink + chunk > o->kv_window)
        return sk_cli_usage_error(cli, "--kv-window %lld is too small for --kv-sink %lld plus a "
                                       "chunk of %lld frames", (long long)o->kv_window,
                                  (long long)o->kv_sink, (long long)chunk);
    /* --seconds gives a length, not a latent frame count: the policies that work in whole
     * chunks round it up to one (--frames N stays exact, the reference-run interface) */
    if ((pol == SK_KV_ROLLING || pol == SK_KV_MULTISHOT) && o->seconds > 0 && chunk > 0 &&
        o->frames % chunk)
        o->frames += chunk - o->frames % chunk;
    if (pol == SK_KV_ROLLING) {
        if (o->kv_sink + (int64_t)o->steps.n * chunk > o->kv_window)
            return sk_cli_usage_error(cli, "--kv-policy rolling denoises %d chunks at once (one "
                                           "per --steps entry): --kv-window %lld is too small for "
                                           "the sink (%lld) plus %d x %lld frames (Rolling Forcing: "
                                           "--kv-window 21, --kv-sink 3, 5 steps)", o->steps.n,
                                      (long long)o->kv_window, (long long)o->kv_sink, o->steps.n,
                                      (long long)chunk);
        if (o->frames % chunk)
            return sk_cli_usage_error(cli, "--kv-policy rolling denoises whole chunks: --frames "
                                           "%lld is not a multiple of --chunk %lld",
                                      (long long)o->frames, (long long)chunk);
    }
    if (pol == SK_KV_MULTISHOT) {
        if (o->kv_sink != chunk)
            return sk_cli_usage_error(cli, "--kv-policy multishot: the global sink is the first "
                                           "chunk, so --kv-sink (%lld) must equal --chunk (%lld)",
                                      (long long)o->kv_sink, (long long)chunk);
        if (o->kv_window % chunk || o->kv_window / chunk < 3)
            return sk_cli_usage_error(cli, "--kv-policy multishot: --kv-window %lld must be a "
                                           "multiple of --chunk %lld holding at least 3 chunks "
                                           "(LongLive 2.0: --chunk 8 --kv-window 32)",
                                      (long long)o->kv_window, (long long)chunk);
        if (o->frames % chunk)
            return sk_cli_usage_error(cli, "--kv-policy multishot works in whole chunks: --frames "
                                           "%lld is not a multiple of --chunk %lld",
                                      (long long)o->frames, (long long)chunk);
        if (o->rope == SK_KV_ROPE_RELATIVE)
            return sk_cli_usage_error(cli, "--kv-policy multishot keeps keys at absolute "
                                           "positions (drop --rope relative)");
    } else if (o->shot_clean_recache || o->shot_rope_offset != 8) {
        return sk_cli_usage_error(cli, "--shot-rope-offset / --shot-clean-recache are for "
                                       "--kv-policy multishot (this is %s)", pn);
    }
    if (o->ema_alpha != 0.999 && pol != SK_KV_EMA)
        return sk_cli_usage_error(cli, "--ema-alpha is for --kv-policy ema (this is %s)", pn);
    if (o->kv_compress > 0) {
        if (pol == SK_KV_EMA || pol == SK_KV_ROLLING)
            return sk_cli_usage_error(cli, "--kv-compress works with --kv-policy fifo, sink or "
                                           "deep-sink, not %s", pn);
        if (o->kv_recent < chunk)
            return sk_cli_usage_error(cli, "--kv-recent %lld is smaller than a chunk (%lld): the "
                                           "recent frames include the chunk being generated",
                                      (long long)o->kv_recent, (long long)chunk);
        if (o->kv_compress < o->kv_sink + o->kv_recent + 1 || o->kv_compress > o->kv_window)
            return sk_cli_usage_error(cli, "--kv-compress %lld must hold --kv-sink %lld, "
                                           "--kv-recent %lld and at least one frame of kept "
                                           "tokens, within --kv-window %lld (Deep Forcing: 21 / 10 "
                                           "/ 4, compressed to 16)", (long long)o->kv_compress,
                                      (long long)o->kv_sink, (long long)o->kv_recent,
                                      (long long)o->kv_window);
    }
    const sk_kv_rope rope = sk_kv_rope_resolve(pol, (sk_kv_rope)o->rope);
    /* multishot computes its angles directly: no 1024-frame limit */
    if (rope == SK_KV_ROPE_ABSOLUTE && pol != SK_KV_MULTISHOT && o->frames > SK_KV_ROPE_MAX_POSITIONS)
        return sk_cli_usage_error(cli, "--frames %lld with absolute RoPE: the model's temporal "
                                       "positions end at latent frame %d (a %d-entry table); use "
                                       "--rope relative (positions within the KV window)",
                                  (long long)o->frames, SK_KV_ROPE_MAX_POSITIONS - 1,
                                  SK_KV_ROPE_MAX_POSITIONS);
    /* (--input: the run lasts as long as its input; the session says where it would end) */
    if (rope == SK_KV_ROPE_ABSOLUTE && pol != SK_KV_MULTISHOT && o->frames == 0 && !o->input)
        SK_LOGW("an unbounded run with absolute RoPE stops at latent frame %d (%.0f s of video); "
                "--rope relative has no such limit", SK_KV_ROPE_MAX_POSITIONS - 1,
                (4.0 * SK_KV_ROPE_MAX_POSITIONS - 3) / o->fps);
    if ((gen_pp_enabled(&o->pp) || o->pp.split || o->pp.transport) &&
        (pol > SK_KV_SINK || rope != SK_KV_ROPE_ABSOLUTE || o->kv_compress))
        return sk_cli_usage_error(cli, "--gpus / --pp-stages run --kv-policy fifo or sink with "
                                       "absolute RoPE only (for now)");
    return -1;
}

/* The DiT's config without its weights (--dit-config, else the file's metadata or
 * tensor shapes: only the safetensors header is read). */
static sk_status peek_dit_config(const gen_opts *o, sk_dit_config *cfg)
{
    if (o->dit_config) return sk_dit_config_from_file(o->dit_config, cfg);
    sk_st_file *f = NULL;
    sk_status st = sk_st_open(o->dit, &f);
    if (st == SK_OK) {
        const char *meta = sk_st_meta(f, "config");
        st = meta ? sk_dit_config_from_json(meta, o->dit, cfg) : sk_dit_config_infer(f, cfg);
    }
    sk_st_close(&f);
    return st;
}

/* Latent channels of a TAEHV decoder from its header (decoder.1.weight [nf, z, 3, 3]);
 * 0 when it cannot tell (the load reports why). */
static int64_t peek_vae_channels(const char *path)
{
    sk_st_file *f = NULL;
    int64_t z = 0;
    if (sk_st_open(path, &f) == SK_OK) {
        const sk_st_tensor *t = sk_st_find(f, "decoder.1.weight");
        if (t && t->ndim == 4) z = t->shape[1];
    }
    sk_st_close(&f);
    return z;
}

/* --print-config: the effective configuration, read from the config alone. */
static int print_config(const gen_opts *o, const sk_schedule *sched, int64_t chunk)
{
    sk_dit_config cfg;
    sk_status st = peek_dit_config(o, &cfg);
    if (st != SK_OK) {
        fprintf(stderr, "sinkstream generate: %s\n", sk_error_message());
        return 1;
    }
    const sk_dtype act = o->act_dtype == 2 || ((o->act_dtype == 0 || o->act_dtype == 3) &&
                                               o->device == 1)
                             ? SK_DTYPE_BF16 : SK_DTYPE_F32;
    const int64_t S = (o->latent_h / 2) * (o->latent_w / 2);
    printf("model        %s: dim %lld, %lld layers, %lld heads x %lld\n", o->dit,
           (long long)cfg.dim, (long long)cfg.num_layers, (long long)cfg.num_heads,
           (long long)cfg.head_dim);
    printf("video        %lld latent frames of %lldx%lld (%lld tokens a frame), chunks of %lld\n",
           (long long)o->frames, (long long)o->latent_h, (long long)o->latent_w, (long long)S,
           (long long)chunk);
    if (o->sampler == GEN_SAMPLER_UNIPC) {
        sk_unipc_table tb;
        if (sk_unipc_table_make(o->num_steps, o->shift, &tb) != SK_OK) {
            fprintf(stderr, "sinkstream generate: %s\n", sk_error_message());
            return 1;
        }
        printf("sampling     UniPC (bh2, order 2), %d steps, t =", tb.n);
        for (int k = 0; k < tb.n; k++) printf(" %g", (double)tb.t[k]);
        printf(" (shift %g), no fresh noise\n", tb.shift);
    } else {
        printf("sampling     %d steps, t =", sched->n);
        for (int k = 0; k < sched->n; k++) printf(" %g", (double)sched->t[k]);
        printf(" (shift %g%s)\n", sched->shift, sched->warp ? ", warped" : "");
    }
    printf("device       %s, activations %s\n", o->device == 1 ? "cuda" : "cpu", sk_dtype_name(act));
    sk_kv_params kp = {.policy = (sk_kv_policy)o->kv_policy, .rope = (sk_kv_rope)o->rope,
                       .window_frames = o->kv_window, .sink_frames = o->kv_sink,
                       .max_chunk_frames = chunk, .tokens_per_frame = S,
                       .num_layers = cfg.num_layers, .num_heads = cfg.num_heads,
                       .head_dim = cfg.head_dim, .dtype = act, .ema_alpha = o->ema_alpha,
                       .compress_frames = o->kv_compress, .recent_frames = o->kv_recent,
                       .roll_chunks = o->kv_policy == SK_KV_ROLLING ? sched->n : 0,
                       .shot_rope_offset = o->shot_rope_offset};
    /* --dtype fp8 with FP8 self-attention: the FP8 cache where the keys are baked */
    kp.dtype = sk_kv_storage_dtype(&kp, NULL, o->act_dtype == 3 && sk_dit_fp8_attention_requested(), act);
    char d[1024];
    sk_kv_describe(&kp, sk_dtype_size(kp.dtype), d, sizeof d);
    printf("kv cache     %s\n", d);
    const double layer_b = (double)sk_kv_pool_frames(&kp) * (double)S *
                           (double)(cfg.num_heads * cfg.head_dim) * 2.0 * (double)sk_dtype_size(kp.dtype);
    printf("kv memory    %.1f MB per layer x %lld layers = %.2f GB\n", layer_b / 1e6,
           (long long)cfg.num_layers, layer_b * (double)cfg.num_layers / 1e9);
    return 0;
}

/* --input and its flags, checked before any weight loads (docs/INPUTS.md) */
static int input_usage(const sk_cli *cli, const gen_opts *o, int argc, char **argv)
{
    if (!o->input) {
        const char *f = gen_argv_has(argc, argv, "strength", 0)          ? "--strength"
                        : o->input_format                                ? "--input-format"
                        : o->input_options                               ? "--input-options"
                        : o->input_realtime                              ? "--input-realtime"
                        : gen_argv_has(argc, argv, "input-reconnect-max-ms", 0)
                            ? "--input-reconnect-max-ms" : NULL;
        if (f) return sk_cli_usage_error(cli, "%s needs --input SRC (video-to-video)", f);
        return -1;
    }
    /* I2V makes latent frame 0 the image, which would replace the input's first frame and
     * condition the stream on a picture that is not in the video: no clear meaning, refused */
    if (o->img.image || o->img.image_latent)
        return sk_cli_usage_error(cli, "%s with --input: not supported (image-to-video starts the "
                                       "stream from a picture, video-to-video restyles the input "
                                       "from its first frame); give one of them",
                                  o->img.image ? "--image" : "--image-latent");
    if (!*o->input)
        return sk_cli_usage_error(cli, "--input: empty; expected a file, a URL, /dev/videoN, "
                                       "lavfi:GRAPH or - (stdin)");
    if (!o->vae)
        return sk_cli_usage_error(cli, "--input needs --vae FILE (the TAEHV checkpoint: its "
                                       "encoder turns the input frames into latents)");
    if (!sk_input_available())
        return sk_cli_usage_error(cli, "--input: this build has no FFmpeg (libavformat, "
                                       "libavcodec, libswscale)");
    if (o->kv_policy == SK_KV_ROLLING)
        return sk_cli_usage_error(cli, "--input does not work with --kv-policy rolling (its "
                                       "windows hold chunks at different noise levels)");
    if (gen_pp_enabled(&o->pp))
        return sk_cli_usage_error(cli, "--input is not supported with --gpus / --pp-stages yet");
    if ((!strcmp(o->input, "-") || !strcmp(o->input, "pipe:0")) && o->live.control_stdin)
        return sk_cli_usage_error(cli, "--input - and --control-stdin both read stdin; use "
                                       "--control-port for live control");
    /* a plain file must exist (URLs, devices, lavfi graphs and stdin are opened as given) */
    const int plain = strcmp(o->input, "-") && !strstr(o->input, "://") &&
                      strncmp(o->input, "lavfi:", 6) && strncmp(o->input, "pipe:", 5) &&
                      strncmp(o->input, "/dev/video", 10) && !o->input_format;
    if (plain && !readable(o->input))
        return sk_cli_usage_error(cli, "--input '%s': cannot open (%s)", o->input,
                                  strerror(errno));
    if (o->frames == 0 && (o->latents_out || o->rgb_out || o->noise_file || o->dump_steps))
        return sk_cli_usage_error(cli, "--input without --frames/--video-frames/--seconds runs "
                                       "until the input ends; %s needs a bounded run (give a "
                                       "length)", o->latents_out ? "--latents-out"
                                       : o->rgb_out ? "--rgb-out" : o->noise_file ? "--noise-file"
                                       : "--dump-steps");
    return -1;
}

/* --seconds and the live options (docs/LIVE.md); -1 to go on, else the exit code. */
static int live_usage(const sk_cli *cli, gen_opts *o)
{
    if (o->seconds == 0) {
        o->frames = 0; /* until stopped */
    } else if (o->seconds > 0) {
        int64_t vf = (int64_t)ceil(o->seconds * o->fps - 1e-9); /* video frames wanted */
        o->frames = (vf + 6) / 4;                               /* 4F - 3 >= vf */
    }
    if (o->frames == 0) {
        const char *bad = o->latents_out ? "--latents-out" : o->rgb_out ? "--rgb-out"
                          : o->noise_file ? "--noise-file" : o->dump_steps ? "--dump-steps" : NULL;
        if (bad)
            return sk_cli_usage_error(cli, "--seconds 0 runs until stopped; %s needs a bounded "
                                           "run (give --seconds S or --frames N)", bad);
    }
    const int ctl = o->live.control_stdin || o->live.control_port >= 0;
    if (o->live.start_paused && !ctl)
        return sk_cli_usage_error(cli, "--start-paused needs --control-stdin or --control-port "
                                       "(something has to resume it)");
    if (o->live.control_port >= 0 && !sk_control_addr_is_loopback(o->live.control_bind) &&
        !(o->live.control_token && *o->live.control_token))
        return sk_cli_usage_error(cli, "--control-bind %s is not a loopback address: set "
                                       "--control-token TOKEN (or $SK_CONTROL_TOKEN)",
                                  o->live.control_bind);
    if (o->live.control_port >= 0 && !sk_control_http_available())
        return sk_cli_usage_error(cli, "--control-port: this build has no libmicrohttpd; use "
                                       "--control-stdin");
    if (o->recache == 2) o->recache = o->kv_policy == SK_KV_MULTISHOT ? 1 : 0;
    if (o->recache == 0 && o->kv_policy == SK_KV_MULTISHOT)
        return sk_cli_usage_error(cli, "--recache on with --kv-policy multishot: a prompt-switch "
                                       "re-cache is not implemented for the multi-shot sink "
                                       "(LongLive 2.0 switches without one: --recache off)");
    if (o->recache == 1 && o->recache_sink)
        return sk_cli_usage_error(cli, "--recache-sink with --recache off: nothing is re-encoded");
    if (o->tee) {
        sk_output_kind k;
        if (!o->output)
            return sk_cli_usage_error(cli, "--tee FILE writes the -o video a second time; give -o");
        if (sk_output_detect_kind(o->tee, &k) != SK_OK || k != SK_OUTPUT_VIDEO_FILE)
            return sk_cli_usage_error(cli, "--tee '%s': expected a video file (.mp4/.mkv/.mov/"
                                           ".webm/.ts ...)", o->tee);
    }
    return -1;
}

int sk_cmd_generate(int argc, char **argv)
{
    sk_model_dir *md = NULL; /* its paths stay in use until the run ends */
    int rc = cmd_generate_impl(argc, argv, &md);
    sk_model_dir_free(&md);
    return rc;
}

static int cmd_generate_impl(int argc, char **argv, sk_model_dir **md)
{
    gen_opts o = {.live = {.control_port = -1}, .seconds = -1, .net_timeout_ms = 10000,
                  .reconnect_max_ms = 8000, .frames = 21, .chunk = 3, .height = 480, .width = 832,
                  .kv_window = -1, .kv_sink = -1, .steps = {0, {0}}, .num_steps = 4,
                  .shot_rope_offset = 8, .recache = 2,
                  .shift = 5.0, .seed = 0, .kv_policy = 1, .fps = 16, .pp = {.gpus = 1},
                  .ema_alpha = 0.999, .kv_recent = 4, .device = SK_DEV_AUTO,
                  .out = SK_OUT_OPTS_INIT, .strength = 0.6, .input_reconnect_max_ms = 8000};
#define GROUP(t) {.name = (t), .type = SK_OPT_GROUP}
#define OPT(n_, ty_, f_, def_, h_, env_, mv_) \
    .name = (n_), .type = (ty_), .field = (f_), .def_text = (def_), .help = (h_), .env = (env_), \
    .metavar = (mv_)
    const sk_opt opts[] = {
        GROUP("Model"),
        {OPT("model", SK_OPT_STRING, &o.model, NULL, "model directory (tools/convert_checkpoint.py): "
             "its DiT, text encoder, tokenizer and VAE, and model.json's sampling defaults; any "
             "flag overrides them", "SK_MODEL", "DIR")},
        {OPT("allow-outside", SK_OPT_FLAG, &o.allow_outside, NULL, "--model: read files that "
             "resolve outside the directory (symlinks); refused by default", NULL, NULL)},
        {OPT("dit", SK_OPT_STRING, &o.dit, NULL, "causal Wan DiT weights (.safetensors, upstream "
             "names, optional model./generator. prefixes)", "SK_DIT", "FILE")},
        {OPT("dit-config", SK_OPT_STRING, &o.dit_config, "from the checkpoint",
             "config.json (dim, num_heads, ...); else safetensors metadata, else tensor shapes",
             NULL, "FILE")},
        {OPT("dit-dtype", SK_OPT_ENUM, &o.wdtype, NULL, "dtype of the DiT's linear weights "
             "(fp8: the block linears in e4m3 with a scale per row, the rest in the activation "
             "dtype; docs/PERF.md)", NULL, NULL), .choices = "as-stored|f32|bf16|f16|fp8"},
        GROUP("Prompt"),
        {OPT("prompt", SK_OPT_STRING, &o.prompt, NULL, "the prompt (encoded with "
             "--text-encoder)", NULL, "TEXT"), .short_name = 'p'},
        {OPT("text-encoder", SK_OPT_STRING, &o.text_encoder, NULL, "umT5 encoder weights "
             "(.safetensors)", "SK_TEXT_ENCODER", "FILE")},
        {OPT("tokenizer", SK_OPT_STRING, &o.tokenizer, "the encoder file's spiece_model",
             "SentencePiece model (spiece.model)", NULL, "FILE")},
        {OPT("text-encoder-config", SK_OPT_STRING, &o.text_encoder_config, "metadata / shapes",
             "config.json of the text encoder", NULL, "FILE")},
        {OPT("text-offload", SK_OPT_FLAG, &o.text_offload, NULL, "with live control: free the "
             "encoder's weights after each prompt and reload them for the next (saves ~11 GB "
             "at umT5-XXL size; a switch costs the reload). Without live control the encoder is "
             "always freed once the prompts are encoded", NULL, NULL)},
        {OPT("text-embeds", SK_OPT_STRING, &o.text_embeds, NULL,
             "safetensors with the text encoder output [L, text_dim]", NULL, "FILE")},
        {OPT("embeds-key", SK_OPT_STRING, &o.embeds_key, "context", "tensor in --text-embeds to use",
             NULL, "NAME")},
        {OPT("prompts", SK_OPT_STRING, &o.prompts, NULL, "prompt switches, JSON lines "
             "{\"frame\": N | \"at\": SECONDS, \"embeds\": NAME | \"prompt\": TEXT} "
             "(LongLive KV-recache)", NULL, "FILE")},
        {OPT("recache", SK_OPT_ENUM, &o.recache, "auto: off with --kv-policy multishot "
             "(LongLive 2.0), else on", "on a prompt switch re-encode the cached "
             "window under the new prompt (on, LongLive) or only swap the text (off: hard cut)",
             NULL, NULL), .choices = "on|off|auto"},
        {OPT("recache-sink", SK_OPT_FLAG, &o.recache_sink, NULL, "re-encode the sink frames too "
             "(default: the sink keeps its old-prompt K/V)", NULL, NULL)},
        GROUP("Video"),
        {OPT("frames", SK_OPT_INT64, &o.frames, NULL, "LATENT frames to generate (the video "
             "gets 4N-3 frames); or give --video-frames / --seconds", NULL, "N"),
         .short_name = 'f', .lo = 1, .hi = 1 << 20},
        {OPT("video-frames", SK_OPT_INT64, &o.video_frames, "from --frames", "video frames to "
             "generate (rounded up to whole latent frames: 4N-3)", NULL, "N"),
         .lo = 1, .hi = 4 << 20},
        {OPT("seconds", SK_OPT_DOUBLE, &o.seconds, "from --frames", "video length in seconds "
             "at --fps (instead of --frames; rolling and multishot round it up to whole chunks); "
             "0 = until stopped (stop command, Ctrl-C)", NULL, "S"),
         .lo = 0, .hi = 1e7},
        {OPT("height", SK_OPT_INT64, &o.height, NULL, "height in pixels (multiple of 16)", NULL,
             "PX"), .lo = 16, .hi = 16384},
        {OPT("width", SK_OPT_INT64, &o.width, NULL, "width in pixels (multiple of 16)", NULL,
             "PX"), .lo = 16, .hi = 16384},
        {OPT("latent-height", SK_OPT_INT64, &o.latent_h, "height/8 (/16 for a 48-channel DiT)",
             "latent height (overrides --height; even)", NULL, "N"), .lo = 0, .hi = 2048},
        {OPT("latent-width", SK_OPT_INT64, &o.latent_w, "width/8 (/16 for a 48-channel DiT)",
             "latent width (overrides --width; even)", NULL, "N"), .lo = 0, .hi = 2048},
        GROUP("Sampling"),
        {OPT("chunk", SK_OPT_INT64, &o.chunk, NULL, "latent frames per chunk", NULL, "N"),
         .lo = 1, .hi = 64},
        {OPT("sampler", SK_OPT_ENUM, &o.sampler, NULL, "renoise: Self-Forcing / LongLive 1.0 "
             "(x0, fresh noise, next of --steps); unipc: LongLive 2.0's UniPC (bh2, order 2, "
             "--num-steps, no fresh noise)", NULL, NULL), .choices = "renoise|unipc"},
        {OPT("steps", SK_OPT_INT_LIST, &o.steps, "1000,750,500,250", "--sampler renoise: "
             "denoising timesteps (warped by --shift)", NULL, "LIST"), .lo = 1, .hi = 1000},
        {OPT("num-steps", SK_OPT_INT, &o.num_steps, NULL, "--sampler unipc: solver steps per "
             "chunk (LongLive 2.0: 4, or 2 for its 2-step model), t from sigma = shift(linspace"
             "(0.999, 0, N+1))", NULL, "N"), .lo = 1, .hi = 64},
        {OPT("shift", SK_OPT_DOUBLE, &o.shift, NULL, "flow-matching timestep shift", NULL, "X"),
         .lo = 0.01, .hi = 1000},
        {OPT("no-warp", SK_OPT_FLAG, &o.no_warp, NULL, "use --steps as raw timesteps (no warp)",
             NULL, NULL)},
        {OPT("seed", SK_OPT_INT64, &o.seed, NULL, "noise seed (Philox; ignored with --noise-file); "
             "-1: a random one, printed and stored in the video's metadata", "SK_SEED", "N"),
         .lo = -1, .hi = 9.2e18},
        {OPT("noise-file", SK_OPT_STRING, &o.noise_file, NULL, "reference noise: 'noise' "
             "[F,C,H,W] and 'renoise.{chunk}.{step}'", NULL, "FILE")},
        GROUP("KV cache"),
        {OPT("kv-policy", SK_OPT_ENUM, &o.kv_policy, NULL,
             "fifo (Self-Forcing), sink (LongLive), ema (Reward Forcing's EMA sink), deep-sink "
             "(Deep Forcing), rolling (Rolling Forcing), multishot (LongLive 2.0's multi-shot "
             "sink); docs/KV_POLICIES.md", NULL, NULL),
         .choices = "fifo|sink|ema|deep-sink|rolling|multishot"},
        {OPT("shot-rope-offset", SK_OPT_INT64, &o.shot_rope_offset, NULL, "multishot: temporal "
             "RoPE shift per shot, in latent frames (every LongLive 2.0 config: 8)", NULL, "N"),
         .lo = 0, .hi = 1 << 20},
        {OPT("shot-clean-recache", SK_OPT_FLAG, &o.shot_clean_recache, NULL, "multishot: a cut "
             "chunk's clean pass sees only the global sink, and the history before the cut is "
             "dropped (LongLive 2.0's shot_clean_recache)", NULL, NULL)},
        {OPT("kv-window", SK_OPT_INT64, &o.kv_window, "12 (fifo, sink), 9 (ema), 21 (deep-sink, "
             "rolling), 4 chunks (multishot)", "frames a chunk attends to, sink and itself included", NULL, "N"),
         .lo = -1, .hi = 4096},
        {OPT("kv-sink", SK_OPT_INT64, &o.kv_sink, "3 (sink, ema), the first chunk (rolling, multishot), "
             "window/2 (deep-sink), 0 (fifo)", "first frames kept as the attention sink", NULL,
             "N"), .lo = -1, .hi = 4096},
        {OPT("rope", SK_OPT_ENUM, &o.rope, "auto: relative for ema, else absolute",
             "temporal RoPE of cached keys: absolute frame indices (the published models; stops "
             "at frame 1023) or relative positions within the window (no length limit)", NULL,
             NULL), .choices = "auto|absolute|relative"},
        {OPT("ema-alpha", SK_OPT_DOUBLE, &o.ema_alpha, NULL, "ema: sink = alpha*sink + "
             "(1-alpha)*evicted frame (Reward Forcing's released value)", NULL, "X"), .lo = 0,
         .hi = 1},
        {OPT("kv-compress", SK_OPT_INT64, &o.kv_compress, "0 (off)", "participative compression "
             "(Deep Forcing): when the window overflows keep the sink, the most attended tokens "
             "and --kv-recent frames in this many frames", NULL, "N"), .lo = 0, .hi = 4096},
        {OPT("kv-recent", SK_OPT_INT64, &o.kv_recent, NULL, "--kv-compress: recent frames kept "
             "whole (the chunk included); their queries score the rest", NULL, "N"), .lo = 1,
         .hi = 4096},
        {OPT("print-config", SK_OPT_FLAG, &o.print_config, NULL, "print the effective "
             "configuration (KV cache: what a query sees, memory per layer) and exit", NULL,
             NULL)},
        GROUP("Image to video (LongLive 2.0, docs/INPUTS.md)"),
        {OPT("image", SK_OPT_STRING, &o.img.image, NULL, "start from this picture (PNG/JPEG): "
             "resized to the video size, encoded to latent frame 0 and kept in the global sink",
             NULL, "FILE")},
        {OPT("image-encoder", SK_OPT_ENUM, &o.img.encoder, NULL, "--image: wan = the Wan2.2 "
             "VAE encoder the model was trained with (--vae-encoder); tae = taew2_2's encoder "
             "(--vae; faster, approximate)", NULL, NULL), .choices = GEN_IMAGE_ENCODERS},
        {OPT("vae-encoder", SK_OPT_STRING, &o.img.vae_encoder, "the model directory's",
             "Wan2.2 VAE encoder (wan2.2_vae_encoder.safetensors from tools/convert_checkpoint.py "
             "--wan-vae)", NULL, "FILE")},
        {OPT("image-latent", SK_OPT_STRING, &o.img.image_latent, NULL, "the image's latent "
             "instead of --image: 'image_latent' [1, C, H, W] (reference runs)", NULL, "FILE")},
        GROUP("Output"),
        {OPT("latents-out", SK_OPT_STRING, &o.latents_out, NULL,
             "write the denoised latents as 'latents' [F,C,H,W] f32", NULL, "FILE")},
        {OPT("output", SK_OPT_STRING, &o.output, NULL, "video file (.mp4/.mkv/.mov/.webm/.ts/.gif, any "
             "container FFmpeg muxes), a live stream rtmp:// (FLV), srt:// or udp:// (MPEG-TS), "
             "or an HLS playlist DIR/NAME.m3u8 (decoded with --vae)", NULL, "FILE"), .short_name = 'o'},
        {OPT("frames-dir", SK_OPT_STRING, &o.frames_dir, NULL, "write decoded frames as "
             "DIR/frame_000000.png, ...", NULL, "DIR")},
        {OPT("rgb-out", SK_OPT_STRING, &o.rgb_out, NULL, "write decoded frames as `frames` "
             "[T, 3, H, W] f32 in [0, 1]", NULL, "FILE")},
        {OPT("vae", SK_OPT_STRING, &o.vae, NULL, "TAEHV decoder (taew2_1 / taew2_2 .safetensors)",
             "SK_VAE", "FILE")},
        SK_OUT_OPTS_ENTRIES(o.out),
        {OPT("no-decode", SK_OPT_FLAG, &o.no_decode, NULL, "do not decode to video", NULL, NULL)},
        {OPT("dump-steps", SK_OPT_STRING, &o.dump_steps, NULL, "write every denoising step's "
             "xt/v/x0 (xt.{chunk}.{step}, ...) to compare with a PyTorch run", NULL, "FILE")},
        {OPT("progress", SK_OPT_ENUM, &o.progress, NULL, "progress on stderr: text (a line, "
             "video frames and fps), json (a JSON object a chunk: chunk, frames, fps, "
             "realtime, lag, memory) or off", NULL, NULL), .choices = "text|json|off"},
        {OPT("timeline-out", SK_OPT_STRING, &o.timeline_out, NULL, "save the prompt timeline "
             "as applied (JSON lines in the --prompts format, latent frame and wall time): "
             "--prompts FILE replays the run", NULL, "FILE")},
        {OPT("tee", SK_OPT_STRING, &o.tee, NULL, "also write the video to this file: the same "
             "packets through FFmpeg's tee muxer when -o is a file, a sink of its own next to an "
             "rtmp:// / srt:// / udp:// stream", NULL, "FILE")},
        {OPT("net-timeout-ms", SK_OPT_INT, &o.net_timeout_ms, NULL, "RTMP/SRT/UDP: bound on every "
             "network call (connect, send)", NULL, "MS"), .lo = 100, .hi = 600000},
        {OPT("reconnect-max-ms", SK_OPT_INT, &o.reconnect_max_ms, NULL, "RTMP/SRT: reconnect after "
             "the server goes away, backoff 250 ms doubling up to this (0: no reconnect, the run "
             "fails)", NULL, "MS"), .lo = 0, .hi = 600000},
        GROUP("Video-to-video input (docs/INPUTS.md)"),
        {OPT("input", SK_OPT_STRING, &o.input, NULL, "restyle this video: a file, rtmp:// srt:// "
             "udp:// http:// URL, /dev/videoN camera, lavfi:GRAPH (lavfi:testsrc=size=192x128:"
             "rate=16) or - (stdin); resampled to --fps and the frame size (scaled to cover, "
             "centre cropped), encoded with --vae's encoder; runs until it ends unless a length "
             "is given", NULL, "SRC"), .short_name = 'i'},
        {OPT("strength", SK_OPT_DOUBLE, &o.strength, NULL, "--input: 0..1, how much of the "
             "input is replaced: N steps start at step N - round(S*N) (at least one runs); 1 = "
             "pure noise (text-to-video)", NULL, "S"), .lo = 0, .hi = 1},
        {OPT("input-format", SK_OPT_STRING, &o.input_format, "probed", "FFmpeg input format of "
             "--input (lavfi, v4l2, rawvideo, matroska, ...)", NULL, "FMT")},
        {OPT("input-options", SK_OPT_STRING, &o.input_options, NULL, "demuxer/device options of "
             "--input, key=value:key=value (video_size=640x480:pixel_format=rgb24:framerate=16)",
             NULL, "OPTS")},
        {OPT("input-realtime", SK_OPT_FLAG, &o.input_realtime, NULL, "read a file or pipe "
             "--input at its own rate (as ffmpeg -re; cameras and URLs always are)", NULL,
             NULL)},
        {OPT("input-reconnect-max-ms", SK_OPT_INT, &o.input_reconnect_max_ms, NULL, "a network "
             "--input that drops is reopened, backoff 250 ms doubling up to this (0: the run "
             "fails); each read bounded by --net-timeout-ms", NULL, "MS"), .lo = 0,
         .hi = 600000},
        GROUP("Live control (docs/LIVE.md)"),
        {OPT("control-stdin", SK_OPT_FLAG, &o.live.control_stdin, NULL, "read commands from stdin: "
             "prompt TEXT | embeds NAME | pause | resume | step [N] | stop | status", NULL, NULL)},
        {OPT("control-port", SK_OPT_INT, &o.live.control_port, "off", "HTTP API on this port "
             "(0: any free port, printed): POST /prompt /pause /resume /step /stop, GET /status",
             NULL, "PORT"), .lo = 0, .hi = 65535},
        {OPT("control-bind", SK_OPT_STRING, &o.live.control_bind, "127.0.0.1", "address of the "
             "HTTP API (not loopback: needs --control-token)", NULL, "ADDR")},
        {OPT("control-token", SK_OPT_STRING, &o.live.control_token, NULL, "bearer token the HTTP "
             "API requires (Authorization: Bearer TOKEN)", "SK_CONTROL_TOKEN", "TOKEN")},
        {OPT("control-max-body", SK_OPT_INT, &o.live.max_body, "65536", "largest HTTP request "
             "body in bytes", NULL, "BYTES"), .lo = 64, .hi = 16 << 20},
        {OPT("start-paused", SK_OPT_FLAG, &o.live.start_paused, NULL, "wait for resume/step "
             "before the first chunk", NULL, NULL)},
        GROUP("Device"),
        {OPT("device", SK_OPT_ENUM, &o.device, NULL, SK_CLI_DEVICE_HELP, "SK_DEVICE", NULL),
         .choices = SK_CLI_DEVICE_CHOICES},
        {OPT("act-dtype", SK_OPT_ENUM, &o.act_dtype, NULL,
             "activation dtype (auto: f32 on cpu, bf16 on cuda)", NULL, NULL),
         .choices = "auto|f32|bf16"},
        {OPT("dtype", SK_OPT_ENUM, &o.act_dtype, NULL, "the same as --act-dtype (fp32 = f32); "
             "fp8: activations auto (bf16 on cuda), the DiT's block linears in FP8 e4m3 "
             "(--dit-dtype fp8); SK_FP8_ATTENTION=1: its self-attention in FP8 e4m3 too, and "
             "with fifo, sink or multishot the KV cache in e4m3 (half the bytes; SK_FP8_KV=0: "
             "bf16)", NULL, NULL), .choices = "auto|fp32|bf16|fp8"},
        {OPT("no-overlap", SK_OPT_FLAG, &o.no_overlap, NULL, "cuda: decode each chunk after it "
             "on the DiT's stream instead of on a second stream beside the next chunk's DiT "
             "(the frames are bitwise the same; SK_NO_VAE_OVERLAP=1 does the same)", NULL, NULL)},
        GROUP("Pipeline parallelism (docs/MULTIGPU.md)"),
        {OPT("gpus", SK_OPT_INT, &o.pp.gpus, NULL, "split the DiT's blocks over N GPUs "
             "(cuda:0..N-1, NCCL between them); the VAE runs on the last", "SK_GPUS", "N"),
         .lo = 1, .hi = SK_PP_MAX_STAGES},
        {OPT("pp-stages", SK_OPT_INT, &o.pp.stages, "--gpus", "pipeline stages over the "
             "loopback transport (the CPU, or several stages on one GPU; tests)", NULL, "N"),
         .lo = 0, .hi = SK_PP_MAX_STAGES},
        {OPT("pp-split", SK_OPT_STRING, &o.pp.split, "balanced", "blocks per stage, e.g. "
             "8,8,7,7", NULL, "LIST")},
        {OPT("pp-transport", SK_OPT_ENUM, &o.pp.transport, NULL, "between stages (auto: NCCL "
             "for --gpus > 1, else loopback)", NULL, NULL), .choices = "auto|loopback|nccl"},
    };
#undef OPT
#undef GROUP
    sk_cli cli = {"sinkstream generate", "[options]",
                  "Generate video with a causal Wan DiT (Self-Forcing / LongLive chunk loop): prompt\n"
                  "(umT5 or precomputed embeddings) -> DiT chunks -> TAEHV -> video / latents.",
                  opts, (int)(sizeof opts / sizeof opts[0]), 0, 0};
    sk_cli_pos pos;
    const gen_opts defaults = o;
    int rc = sk_cli_parse(&cli, argc, argv, &pos);
    if (rc >= 0) return rc;
    if (o.model) {
        model_fallback fb[8];
        int nfb = 0;
        if ((rc = apply_model_dir(&cli, &o, &defaults, md, fb, &nfb, 8)) >= 0) return rc;
        if ((rc = sk_cli_parse(&cli, argc, argv, &pos)) >= 0) return rc; /* env and flags win */
        for (int i = 0; i < nfb; i++) {
            char cur[64];
            if (strcmp(sk_opt_value_str(fb[i].opt, cur, sizeof cur), fb[i].used) == 0)
                SK_LOGW("--%s %s (what %s publishes) is not in this build; using '%s' instead "
                        "(model.json fallback): the result is not the upstream sampler's",
                        fb[i].opt->name, fb[i].wanted, (*md)->family, fb[i].used);
        }
    }

    int st_;
    if ((st_ = sk_out_opts_finish(&cli, &o.out, &o.fps)) >= 0) return st_;
    if (!o.print_config && ((st_ = sk_out_opts_check_overwrite(&cli, &o.out, "-o", o.output)) >= 0 ||
                            (st_ = sk_out_opts_check_overwrite(&cli, &o.out, "--tee", o.tee)) >= 0))
        return st_;
    if (o.seed == -1) {
        o.seed = sk_random_seed();
        SK_LOGI("seed %lld (random, --seed -1; --seed %lld repeats this run)", (long long)o.seed,
                (long long)o.seed);
    }
    /* validate everything before loading weights */
    if (o.sampler == GEN_SAMPLER_UNIPC && o.steps.n > 0)
        return sk_cli_usage_error(&cli, "--sampler unipc takes --num-steps N (its timesteps come "
                                        "from the solver), not a step list (--steps with %d "
                                        "values)", o.steps.n);
    if (o.steps.n == 0) o.steps = (sk_int_list){4, {1000, 750, 500, 250}};
    if (o.sampler == GEN_SAMPLER_UNIPC && o.kv_policy == SK_KV_ROLLING)
        return sk_cli_usage_error(&cli, "--sampler unipc does not work with --kv-policy rolling "
                                        "(its windows re-noise with --steps)");
    if (o.sampler == GEN_SAMPLER_UNIPC && (gen_pp_enabled(&o.pp) || o.pp.split))
        return sk_cli_usage_error(&cli, "--sampler unipc is not supported with --gpus / "
                                        "--pp-stages yet");
    if (!o.dit) return sk_cli_usage_error(&cli, "give --model DIR (a converted model) or --dit FILE");
    /* --print-config loads nothing: it needs no prompt and no output */
    if (!o.print_config && !o.text_embeds && !o.prompt && !o.prompts)
        return sk_cli_usage_error(&cli, "give --prompt TEXT (with --text-encoder FILE), "
                                        "--text-embeds FILE or --prompts FILE");
    if (o.prompt && !o.text_encoder)
        return sk_cli_usage_error(&cli, "--prompt needs --text-encoder FILE (umT5)");
    const char *files[][2] = {{"--dit", o.dit}, {"--dit-config", o.dit_config},
                              {"--text-embeds", o.text_embeds}, {"--noise-file", o.noise_file},
                              {"--prompts", o.prompts}, {"--text-encoder", o.text_encoder},
                              {"--tokenizer", o.tokenizer},
                              {"--text-encoder-config", o.text_encoder_config}};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        if (files[i][1] && !readable(files[i][1]))
            return sk_cli_usage_error(&cli, "%s '%s': cannot open (%s)", files[i][0], files[i][1],
                                      strerror(errno));
    const int video_out = o.output || o.frames_dir || o.rgb_out;
    if (o.act_dtype == 3 && o.wdtype != 0 && o.wdtype != 4)
        return sk_cli_usage_error(&cli, "--dtype fp8 puts the DiT's block linears in fp8; it "
                                        "contradicts --dit-dtype %s (leave that out)",
                                  o.wdtype == 1 ? "f32" : o.wdtype == 2 ? "bf16" : "f16");
    if (o.no_decode && video_out)
        return sk_cli_usage_error(&cli, "--no-decode with -o/--frames-dir/--rgb-out: nothing "
                                        "would be written there");
    /* --no-decode without --latents-out is allowed: a timing run that writes nothing */
    if (!o.print_config && !o.latents_out && !video_out && !o.no_decode)
        return sk_cli_usage_error(&cli, "no output: give -o FILE, --frames-dir DIR, --rgb-out FILE "
                                        "(with --vae) and/or --latents-out FILE (or --no-decode "
                                        "for a run that writes nothing)");
    if (video_out && !o.vae)
        return sk_cli_usage_error(&cli, "-o/--frames-dir/--rgb-out need --vae FILE (the TAEHV "
                                        "decoder)");
    if (o.vae && !readable(o.vae))
        return sk_cli_usage_error(&cli, "--vae '%s': cannot open (%s)", o.vae, strerror(errno));
    if (o.output) {
        sk_output_kind k;
        if (sk_output_detect_kind(o.output, &k) != SK_OK ||
            (k != SK_OUTPUT_VIDEO_FILE && !sk_output_kind_is_live(k)))
            return sk_cli_usage_error(&cli, "-o '%s': expected a video file (.mp4/.mkv/.mov/"
                                            ".webm/.ts/.gif ...), an rtmp:// / srt:// / udp:// "
                                            "URL or an HLS playlist (DIR/NAME.m3u8)", o.output);
        if (k == SK_OUTPUT_HLS && o.tee)
            return sk_cli_usage_error(&cli, "--tee beside an HLS playlist: not supported; record "
                                            "the segments, or -o FILE --tee ...");
        if (!sk_output_kind_available(k))
            return sk_cli_usage_error(&cli, "-o '%s': this build has no FFmpeg; use --frames-dir "
                                            "or --rgb-out", o.output);
    }
    /* the DiT's config from its header: the VAE stride (8, or 16 for the 48-channel Wan2.2
     * VAE) and the checks that need the model, all before any weight loads */
    sk_dit_config pc;
    if (peek_dit_config(&o, &pc) != SK_OK)
        return sk_cli_usage_error(&cli, "%s", sk_error_message());
    const int64_t vs = sk_dit_vae_stride(&pc);
    if (o.vae && video_out) {
        const int64_t z = peek_vae_channels(o.vae);
        if (z > 0 && z != pc.out_dim)
            return sk_cli_usage_error(&cli, "--vae '%s' decodes %lld-channel latents but the DiT "
                                            "makes %lld (taew2_1 for Wan 2.1, 16 channels; taew2_2 "
                                            "for Wan2.2-TI2V-5B / LongLive 2.0, 48)", o.vae,
                                      (long long)z, (long long)pc.out_dim);
    }
    if (!o.latent_h) {
        if (o.height % (2 * vs)) return sk_cli_usage_error(&cli, "--height %lld is not a multiple of %lld (the VAE's %lldx stride x the DiT's 2x2 patch)", (long long)o.height, (long long)(2 * vs), (long long)vs);
        o.latent_h = o.height / vs;
    }
    if (!o.latent_w) {
        if (o.width % (2 * vs)) return sk_cli_usage_error(&cli, "--width %lld is not a multiple of %lld (the VAE's %lldx stride x the DiT's 2x2 patch)", (long long)o.width, (long long)(2 * vs), (long long)vs);
        o.latent_w = o.width / vs;
    }
    /* Wan2.2-TI2V-5B was trained at 1280x704 and 704x1280 only (SUPPORTED_SIZES['ti2v-5B']) */
    if (!strcmp(pc.model_type, "ti2v") && pc.dim == 3072 &&
        !((o.latent_h == 44 && o.latent_w == 80) || (o.latent_h == 80 && o.latent_w == 44)))
        SK_LOGW("Wan2.2-TI2V-5B (LongLive 2.0) was trained at 1280x704 and 704x1280 only; %lldx%lld "
                "(latent %lldx%lld) is not a size it knows: expect degraded video",
                (long long)(o.latent_w * vs), (long long)(o.latent_h * vs), (long long)o.latent_w,
                (long long)o.latent_h);
    if (o.latent_h % 2 || o.latent_w % 2 || o.latent_h < 2 || o.latent_w < 2)
        return sk_cli_usage_error(&cli, "latent size %lldx%lld must be even (the DiT's 2x2 patch)",
                                  (long long)o.latent_h, (long long)o.latent_w);
    {
        const int nf = gen_argv_has(argc, argv, "frames", 'f'),
                  nv = gen_argv_has(argc, argv, "video-frames", 0),
                  ns = gen_argv_has(argc, argv, "seconds", 0);
        if (nf + nv + ns > 1)
            return sk_cli_usage_error(&cli, "give one of --frames (latent frames), --video-frames "
                                            "and --seconds: they set the same length");
        if (o.video_frames > 0) {
            o.frames = gen_latent_for_video(o.video_frames);
            o.seconds = -1;
        }
        /* --input without a length runs until the input ends */
        if (o.input && nf + nv + ns == 0) o.frames = 0;
        if ((st_ = input_usage(&cli, &o, argc, argv)) >= 0) return st_;
    }
    if ((st_ = live_usage(&cli, &o)) >= 0) return st_;
    int64_t chunk = o.frames > 0 && o.frames < o.chunk ? o.frames : o.chunk;
    if ((st_ = kv_usage(&cli, &o, chunk)) >= 0) return st_;
    o.device_api = sk_cli_device_api_name(o.device); /* auto / cpu-ref: the engine's too */
    sk_cli_device_resolve("sinkstream generate", &o.device);
    if (gen_pp_enabled(&o.pp) || o.pp.split || o.pp.transport) {
        char buf[256];
        const char *e = gen_pp_usage(&o.pp, o.device == 1, buf, sizeof buf);
        const char *no = o.prompts ? "--prompts" : o.live.control_stdin ? "--control-stdin"
                         : o.live.control_port >= 0 ? "--control-port"
                         : o.dump_steps ? "--dump-steps" : NULL;
        if (e) return sk_cli_usage_error(&cli, "%s", e);
        if (no)
            return sk_cli_usage_error(&cli, "%s is not supported with --gpus / --pp-stages yet "
                                            "(prompt switches and step dumps need the whole "
                                            "model on one backend)", no);
    }
    sk_schedule sched;
    sk_status st = sk_schedule_make(o.steps.v, o.steps.n, o.shift, !o.no_warp, &sched);
    if (st != SK_OK) return sk_cli_usage_error(&cli, "%s", sk_error_message());
    if ((st_ = gen_image_prepare(&cli, &o.img, &pc, o.sampler == GEN_SAMPLER_UNIPC,
                                 gen_pp_enabled(&o.pp) || o.pp.split != NULL, o.latent_h,
                                 o.latent_w, vs, o.vae, o.print_config)) >= 0)
        return st_;
    if (o.print_config) return print_config(&o, &sched, chunk);
    st_ = run(&o, &sched);
    gen_image_free(&o.img);
    return st_;
}
