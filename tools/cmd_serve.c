/* cmd_serve.c - `sinkstream serve --model DIR`: loads the engine once and
 * hosts live sessions behind a REST API with a web page (docs/SERVER.md).
 * The pieces: runtime/live/serve_http.c (HTTP, safety, streams),
 * runtime/live/serve_sessions.c (sessions on the engine API), the page
 * tools/web/ (embedded at build time, or --web-dir to serve it from disk).
 * SIGINT / SIGTERM: the server stops taking requests, every session stops at
 * its next chunk boundary and its files are finalised, then it exits 0. */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "runtime/core/log.h"
#include "runtime/engine/model_dir.h"
#include "runtime/live/serve.h"
#include "runtime/live/serve_sessions.h"
#include "runtime/sinkstream.h"
#include "tools/cli_opts.h"
#include "tools/commands.h"

extern const sk_serve_asset sk_web_assets[];
extern const int sk_web_n_assets;

typedef struct {
    const char *model, *host, *token, *device, *record_dir, *web_dir, *random_model;
    int port, max_sessions, max_connections;
    int64_t max_body, max_prompt, random_seed;
} serve_opts;

/* --web-dir: the same files as the embedded table, read from DIR now. */
static int load_web_dir(const char *dir, sk_serve_asset *out, unsigned char **bufs)
{
    for (int i = 0; i < sk_web_n_assets; i++) {
        out[i] = sk_web_assets[i];
        bufs[i] = NULL;
        const char *name = !strcmp(out[i].path, "/") ? "/index.html" : out[i].path;
        char path[4096];
        snprintf(path, sizeof path, "%s%s", dir, name);
        FILE *f = fopen(path, "rb");
        if (!f) {
            fprintf(stderr, "sinkstream serve: --web-dir %s: cannot open %s; the directory must "
                    "hold the files of tools/web/\n", dir, path);
            return -1;
        }
        fseek(f, 0, SEEK_END);
        long n = ftell(f);
        fseek(f, 0, SEEK_SET);
        bufs[i] = malloc(n > 0 ? (size_t)n : 1);
        if (!bufs[i] || fread(bufs[i], 1, (size_t)n, f) != (size_t)n) {
            fclose(f);
            fprintf(stderr, "sinkstream serve: --web-dir: cannot read %s\n", path);
            return -1;
        }
        fclose(f);
        out[i].data = bufs[i];
        out[i].size = (size_t)n;
    }
    return 0;
}

/* model.json's "generate" defaults (generate's option names, tools/convert_checkpoint.py)
 * that shape a session: the sampler, the KV cache, the size. A session's request wins
 * over them; "frames" does not apply (a request says how long). */
static int model_defaults(const sk_model_dir *m, int64_t vae_stride, sk_session_params *sp)
{
    for (const cJSON *g = m->generate ? m->generate->child : NULL; g; g = g->next) {
        const char *k = g->string;
        const double v = cJSON_IsNumber(g) ? g->valuedouble : 0;
        /* only defaults that describe the model (issue 15 #2, runtime/engine/model_dir.c's
         * allowlist, as generate --model): a shared model directory sets nothing else */
        if (!sk_model_dir_option_allowed(k)) {
            SK_LOGW("serve: %s: generate.%s is not a default a model directory may set (only "
                    "%s); ignored", m->json_path, k, sk_model_dir_allowed_list());
            continue;
        }
        if (!strcmp(k, "chunk") && v > 0) sp->chunk = (int64_t)v;
        else if (!strcmp(k, "shift") && v > 0) sp->shift = v;
        else if (!strcmp(k, "kv-window") && cJSON_IsNumber(g)) sp->kv_window = (int64_t)v;
        else if (!strcmp(k, "kv-sink") && cJSON_IsNumber(g)) sp->kv_sink = (int64_t)v;
        else if (!strcmp(k, "ema-alpha") && v > 0) sp->ema_alpha = v;
        else if (!strcmp(k, "kv-compress") && cJSON_IsNumber(g)) sp->kv_compress = (int64_t)v;
        else if (!strcmp(k, "kv-recent") && cJSON_IsNumber(g)) sp->kv_recent = (int64_t)v;
        else if (!strcmp(k, "height") && v >= 16) sp->latent_h = (int64_t)v / vae_stride;
        else if (!strcmp(k, "width") && v >= 16) sp->latent_w = (int64_t)v / vae_stride;
        else if (!strcmp(k, "fps") && v > 0) sp->fps = (int)v;
        else if (!strcmp(k, "kv-policy") && cJSON_IsString(g)) sp->kv_policy = g->valuestring;
        else if (!strcmp(k, "rope") && cJSON_IsString(g)) sp->rope = g->valuestring;
        else if (!strcmp(k, "recache") && cJSON_IsString(g)) sp->recache = g->valuestring;
        else if (!strcmp(k, "sampler") && cJSON_IsString(g)) sp->sampler = g->valuestring;
        else if (!strcmp(k, "num-steps") && v >= 1) sp->num_steps = (int)v;
        else if (!strcmp(k, "shot-rope-offset") && cJSON_IsNumber(g))
            sp->shot_rope_offset = (int64_t)v;
        else if (!strcmp(k, "shot-clean-recache") && cJSON_IsBool(g))
            sp->shot_clean_recache = cJSON_IsTrue(g);
        else if (!strcmp(k, "steps") && cJSON_IsArray(g)) {
            int n = cJSON_GetArraySize(g);
            if (n < 1 || n > SK_MAX_STEPS) {
                fprintf(stderr, "sinkstream serve: %s: generate.steps has %d entries (1..%d)\n",
                        m->json_path, n, SK_MAX_STEPS);
                return -1;
            }
            sp->n_steps = n;
            for (int i = 0; i < n; i++) sp->steps[i] = cJSON_GetArrayItem(g, i)->valueint;
        } else if (strcmp(k, "frames")) {
            SK_LOGD("serve: %s: generate.%s does not shape a session; ignored", m->json_path, k);
        }
    }
    return 0;
}

static void on_stop_signal(int sig) { (void)sig; } /* never runs: the signals are blocked */

int sk_cmd_serve(int argc, char **argv)
{
    serve_opts o = {.host = "127.0.0.1", .port = 8080, .device = "auto", .max_sessions = 4,
                    .max_connections = 64, .record_dir = "recordings", .max_body = 65536,
                    .max_prompt = 4096};
    const sk_opt opts[] = {
        SK_OPT_HEADING("Model"),
        {"model", 'm', SK_OPT_STRING, &o.model, .help = "model directory (model.json; "
         "docs/MODELS.md); tests/fixtures/tiny_model is a tiny one", .metavar = "DIR"},
        {"random-model", 0, SK_OPT_STRING, &o.random_model, .help = "instead of --model: "
         "random weights of a named DiT shape (wan2.1-1.3b, tiny, ...; as `sinkstream bench "
         "--config`) with a random TAEHV decoder, made on the device; a prompt's text seeds "
         "a random embedding (no text encoder). For load tests: real sizes, noise video",
         .metavar = "NAME"},
        {"random-seed", 0, SK_OPT_INT64, &o.random_seed, .help = "seed of --random-model's "
         "weights", .lo = 0, .hi = INT64_MAX},
        {"device", 0, SK_OPT_STRING, &o.device, .help = "auto (cuda when built with it and a GPU is present, else cpu), cpu (OpenBLAS + "
         "threads), cpu-ref (the reference loops), cuda or cuda:N", .env = "SK_DEVICE"},
        SK_OPT_HEADING("Server"),
        {"host", 0, SK_OPT_STRING, &o.host, .help = "address to listen on; anything but "
         "loopback needs --token", .metavar = "ADDR"},
        {"port", 'p', SK_OPT_INT, &o.port, .help = "TCP port (0: any free one, logged)",
         .lo = 0, .hi = 65535},
        {"token", 0, SK_OPT_STRING, &o.token, .help = "bearer token the API requires "
         "(Authorization: Bearer TOKEN)", .env = "SK_SERVE_TOKEN", .def_text = "none"},
        {"max-sessions", 0, SK_OPT_INT, &o.max_sessions, .help = "sessions running at once "
         "(429 beyond)", .lo = 1, .hi = 1024},
        {"max-connections", 0, SK_OPT_INT, &o.max_connections, .help = "open HTTP connections "
         "(each live view or event stream holds one)", .lo = 4, .hi = 4096},
        {"max-body", 0, SK_OPT_INT64, &o.max_body, .help = "largest request body in bytes (413 "
         "beyond)", .lo = 1024, .hi = 1 << 24},
        {"max-prompt", 0, SK_OPT_INT64, &o.max_prompt, .help = "longest prompt in bytes",
         .lo = 16, .hi = 1 << 20},
        {"record-dir", 0, SK_OPT_STRING, &o.record_dir, .help = "where \"record\": true writes "
         "<session id>.mp4", .metavar = "DIR"},
        {"web-dir", 0, SK_OPT_STRING, &o.web_dir, .help = "serve the page from DIR (tools/web) "
         "instead of the copy built into the binary", .metavar = "DIR", .def_text = "built in"},
    };
    sk_cli cli = {"sinkstream serve", "--model DIR [options]",
                  "Loads a model once and hosts live sessions: a REST API with Server-Sent Events "
                  "and live video, and a web page at http://HOST:PORT/ (docs/SERVER.md).",
                  opts, (int)(sizeof opts / sizeof opts[0]), 0, 0};
    sk_cli_pos pos;
    int rc = sk_cli_parse(&cli, argc, argv, &pos);
    if (rc >= 0) return rc;
    if (!o.model == !o.random_model)
        return sk_cli_usage_error(&cli, o.model ? "--model and --random-model: give one of them"
                                                : "--model DIR is required (a model directory; "
                                                  "try tests/fixtures/tiny_model), or "
                                                  "--random-model NAME");

    sk_serve_asset web[16];
    unsigned char *web_bufs[16] = {0};
    const sk_serve_asset *assets = sk_web_assets;
    if (o.web_dir) {
        if (sk_web_n_assets > 16 || load_web_dir(o.web_dir, web, web_bufs) != 0) {
            for (int i = 0; i < 16; i++) free(web_bufs[i]);
            return 2;
        }
        assets = web;
    }

    /* SIGINT/SIGTERM are taken by sigwait on this thread: blocked here, before
     * any thread starts, so every thread inherits the mask. A handler first:
     * a shell starts background jobs with SIGINT ignored, and an ignored
     * signal is dropped rather than left pending for sigwait. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    int exit_code = 1;
    sk_model_dir *md = NULL;
    sk_session_params base = sk_session_params_default();
    sk_engine *e = NULL;
    sk_serve_mgr *m = NULL;
    sk_serve_http *http = NULL;
    sk_engine_params ep = sk_engine_params_default();
    char random_name[96] = "";
    if (o.random_model) { /* the DiT and a TAEHV decoder of random weights (as bench) */
        snprintf(random_name, sizeof random_name, "random:%s", o.random_model);
        ep.random_model = o.random_model;
        ep.random_seed = (uint64_t)o.random_seed;
        ep.random_vae = 1;
    } else {
        ep.model_dir = o.model;
    }
    ep.device = o.device;
    const char *model_name = o.random_model ? random_name : o.model;
    SK_LOGI("serve: loading %s on %s", model_name, o.device);
    if (sk_engine_open(&ep, &e) != SK_OK) {
        fprintf(stderr, "sinkstream serve: %s\n", sk_last_error());
        goto out;
    }
    sk_engine_info ei;
    sk_engine_get_info(e, &ei);
    if (o.model && (sk_model_dir_open(o.model, &md) != SK_OK ||
                    model_defaults(md, ei.vae_stride > 0 ? ei.vae_stride : 8, &base) != 0)) {
        fprintf(stderr, "sinkstream serve: --model: %s\n", sk_error_message());
        goto out;
    }
    if (o.random_model) { /* the KV cache of tests/gpu/bench.sh's 832x480 figures (docs/PERF.md) */
        base.kv_policy = "sink";
        base.kv_sink = 3;
        base.kv_window = 12;
    }
    sk_serve_mgr_params mp = {.max_sessions = o.max_sessions, .record_dir = o.record_dir,
                              .model_name = model_name, .base = &base,
                              .hashed_prompts = o.random_model != NULL};
    if (sk_serve_mgr_create(e, &mp, &m) != SK_OK) {
        fprintf(stderr, "sinkstream serve: %s\n", sk_error_message());
        goto out;
    }
    sk_serve_backend b = sk_serve_mgr_backend(m);
    sk_serve_http_params hp = {.host = o.host, .port = o.port, .token = o.token,
                               .max_connections = o.max_connections,
                               .max_body = (size_t)o.max_body, .max_prompt = (size_t)o.max_prompt,
                               .assets = assets, .n_assets = sk_web_n_assets};
    if (sk_serve_http_start(&hp, &b, &http) != SK_OK) {
        fprintf(stderr, "sinkstream serve: %s\n", sk_error_message());
        exit_code = 2;
        goto out;
    }
    /* one line a script can wait for (tests read the port from it) */
    fprintf(stderr, "sinkstream serve: ready on http://%s:%d/\n",
            strchr(o.host, ':') ? "[::1]" : o.host, sk_serve_http_port(http));
    fflush(stderr);
    int sig = 0;
    sigwait(&sigs, &sig);
    SK_LOGI("serve: %s: stopping every session (outputs are finalised)",
            sig == SIGINT ? "SIGINT" : "SIGTERM");
    exit_code = 0;
out:
    sk_serve_http_stop(&http);
    sk_serve_mgr_free(&m);
    if (sk_engine_close(&e) != SK_OK) {
        fprintf(stderr, "sinkstream serve: %s\n", sk_last_error());
        exit_code = 1;
    }
    sk_model_dir_free(&md);
    for (int i = 0; i < 16; i++) free(web_bufs[i]);
    if (exit_code == 0) SK_LOGI("serve: stopped");
    return exit_code;
}
