/* cmd_generate.c - `sinkstream generate`: the causal DiT chunk loop from the
 * command line, with the reference-run interface of DESIGN.md (--text-embeds,
 * --noise-file, --latents-out) so any PyTorch Self-Forcing / LongLive run
 * can be reproduced. Everything is validated before weights are loaded.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dit/model.h"
#include "runtime/log.h"
#include "runtime/output.h"
#include "runtime/progress.h"
#include "runtime/safetensors.h"
#include "runtime/stream.h"
#include "tools/cli_opts.h"
#include "tools/commands.h"
#include "text/text_encoder.h"
#include "vae/taehv.h"

typedef struct {
    const char *dit, *dit_config, *text_embeds, *embeds_key, *noise_file, *latents_out, *prompts;
    const char *vae, *output, *frames_dir, *rgb_out;
    const char *prompt, *text_encoder, *tokenizer, *text_encoder_config, *dump_steps;
    int fps, crf;
    int64_t frames, chunk, height, width, latent_h, latent_w, kv_window, kv_sink;
    sk_int_list steps;
    double shift;
    int64_t seed;
    int kv_policy;  /* 0 fifo, 1 sink */
    int device;     /* 0 cpu, 1 cuda */
    int wdtype;     /* 0 as-stored, 1 f32, 2 bf16, 3 f16 */
    int act_dtype;  /* 0 auto, 1 f32, 2 bf16 */
    int no_decode, no_warp;
} gen_opts;

static int readable(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    fclose(f);
    return 1;
}

/* A prompt in effect from latent frame `frame` on: a tensor of --text-embeds
 * (key) or a text for the text encoder; resolved to a host context before
 * any DiT weight is loaded. Item 0 is the initial prompt. */
typedef struct {
    int64_t frame;
    char key[128];   /* embeds tensor, "" for a text */
    char *text;      /* prompt text (owned), NULL for embeds */
    float *ctx;      /* [rows, cols] f32 (owned) */
    int64_t rows, cols;
} prompt_item;

#define MAX_PROMPTS 256

static void free_prompts(prompt_item *it, int n)
{
    for (int i = 0; i < n; i++) {
        free(it[i].text);
        free(it[i].ctx);
    }
}

/* Parses --prompts: JSON lines {"frame": N | "at": SECONDS, "embeds": NAME |
 * "prompt": TEXT} appended after out[0..*n). "at" maps a time of the output
 * video (fps) to the latent frame holding it (video frame v is in latent
 * (v + 3) / 4). Returns SK_OK or a message naming the line. */
static sk_status parse_prompts(const char *path, int64_t frames, int fps, prompt_item *out, int *n,
                               int cap)
{
    FILE *f = fopen(path, "r");
    SK_CHECK(f, SK_E_IO, "--prompts '%s': cannot open (%s)", path, strerror(errno));
    char line[8192];
    int lineno = 0;
    sk_status st = SK_OK;
    while (st == SK_OK && fgets(line, sizeof line, f)) {
        lineno++;
        char *p = line;
        while (*p == ' ' || *p == '\t') p++;
        if (*p == '\n' || *p == '\r' || *p == 0 || *p == '#') continue;
        cJSON *j = cJSON_Parse(p);
        const cJSON *fr = j ? cJSON_GetObjectItemCaseSensitive(j, "frame") : NULL;
        const cJSON *at = j ? cJSON_GetObjectItemCaseSensitive(j, "at") : NULL;
        const cJSON *em = j ? cJSON_GetObjectItemCaseSensitive(j, "embeds") : NULL;
        const cJSON *tx = j ? cJSON_GetObjectItemCaseSensitive(j, "prompt") : NULL;
        int64_t frame = -1;
        if (cJSON_IsNumber(fr) && fr->valuedouble == (double)(int64_t)fr->valuedouble)
            frame = (int64_t)fr->valuedouble;
        else if (!fr && cJSON_IsNumber(at) && at->valuedouble >= 0 && at->valuedouble < 1e7)
            frame = ((int64_t)floor(at->valuedouble * fps + 0.5) + 3) / 4;
        if (!j || !cJSON_IsObject(j)) {
            st = SK_ERR(SK_E_FORMAT, "--prompts '%s' line %d: not a JSON object", path, lineno);
        } else if (frame < 0 || frame >= frames) {
            st = SK_ERR(SK_E_FORMAT, "--prompts '%s' line %d: needs \"frame\" (an integer latent "
                        "frame in 0..%lld) or \"at\" (seconds of video at %d fps within the "
                        "video)", path, lineno, (long long)frames - 1, fps);
        } else if (!!cJSON_IsString(em) == !!cJSON_IsString(tx)) {
            st = SK_ERR(SK_E_FORMAT, "--prompts '%s' line %d: needs exactly one of \"embeds\" "
                        "(a tensor of --text-embeds) and \"prompt\" (text for --text-encoder)",
                        path, lineno);
        } else if (em && strlen(em->valuestring) >= sizeof out[0].key) {
            st = SK_ERR(SK_E_FORMAT, "--prompts '%s' line %d: embeds name too long", path, lineno);
        } else if (*n >= cap) {
            st = SK_ERR(SK_E_FORMAT, "--prompts '%s': more than %d prompts", path, cap - 1);
        } else if (*n > 1 && frame <= out[*n - 1].frame) {
            st = SK_ERR(SK_E_FORMAT, "--prompts '%s' line %d: frames must increase (%lld after "
                        "%lld)", path, lineno, (long long)frame, (long long)out[*n - 1].frame);
        } else {
            prompt_item *it = &out[(*n)++];
            memset(it, 0, sizeof *it);
            it->frame = frame;
            if (em) snprintf(it->key, sizeof it->key, "%s", em->valuestring);
            else if (!(it->text = strdup(tx->valuestring))) st = SK_ERR(SK_E_OOM, "out of memory");
        }
        cJSON_Delete(j);
    }
    fclose(f);
    return st;
}

/* Reads embeds `key` ([L, text_dim] or [1, L, text_dim]) as f32. */
static sk_status read_embeds(const sk_st_file *emb, const char *key, float **out, int64_t *rows,
                             int64_t *cols)
{
    const sk_st_tensor *et = sk_st_find(emb, key);
    SK_CHECK(et, SK_E_FORMAT, "--text-embeds '%s': no tensor '%s' (expected [L, text_dim]; choose "
             "another with --embeds-key)", emb->path, key);
    char b[96];
    SK_CHECK(et->ndim == 2 || (et->ndim == 3 && et->shape[0] == 1), SK_E_SHAPE,
             "--text-embeds '%s': tensor '%s' has shape %s; expected [L, text_dim]", emb->path,
             key, sk_shape_str_n(et->ndim, et->shape, b, sizeof b));
    *rows = et->shape[et->ndim - 2];
    *cols = et->shape[et->ndim - 1];
    return sk_st_read_f32(emb, key, 0, NULL, out, NULL);
}

/* --dump-steps: every denoising step's x_t, v and x0 under the names the
 * PyTorch reference fixtures use (xt.{chunk}.{step}, v.*, x0.*), to find the
 * first step where a reproduction diverges. */
typedef struct {
    sk_st_writer *w;
    sk_status st;
} step_dump;

static void on_step_dump(void *user, int chunk, int step, const sk_tensor *xt, const sk_tensor *v,
                         const sk_tensor *x0)
{
    step_dump *d = user;
    const sk_tensor *ts[3] = {xt, v, x0};
    static const char *const pre[3] = {"xt", "v", "x0"};
    for (int i = 0; i < 3 && d->st == SK_OK; i++) {
        size_t n = (size_t)sk_tensor_numel(ts[i]);
        float *h = malloc(n * sizeof *h);
        char name[64];
        snprintf(name, sizeof name, "%s.%d.%d", pre[i], chunk, step);
        d->st = h ? sk_tensor_download_f32(ts[i], h, n) : SK_ERR(SK_E_OOM, "--dump-steps: out of memory");
        if (d->st == SK_OK)
            d->st = sk_st_writer_add_f32(d->w, name, SK_DTYPE_F32, ts[i]->ndim, ts[i]->shape, h);
        free(h);
    }
}

/* Runs a validated request. Returns the exit code. */
static int run(const gen_opts *o, const sk_schedule *sched)
{
    int rc = 1;
    sk_backend *be = NULL;
    sk_dit_model *m = NULL;
    sk_st_file *emb = NULL;
    sk_noise_source *ns = NULL;
    sk_stream *s = NULL;
    float *lat = NULL;
    step_dump sd = {NULL, SK_OK}; /* before any goto: done: frees its writer */
    prompt_item items[MAX_PROMPTS];
    int nitems = 0;
    memset(items, 0, sizeof items);
    sk_st_writer *w = NULL;
    sk_taehv *vae = NULL;
    sk_taehv_dec_stream *dec = NULL;
    sk_output *out = NULL;
    sk_status st;
    const int decode = !o->no_decode && (o->output || o->frames_dir || o->rgb_out);

    /* every prompt resolved to a host context first: cheap next to the DiT, and a bad
     * file or prompt should not cost a model load; the text encoder is freed before the
     * DiT is loaded */
    items[0].frame = 0;
    if (o->prompt) {
        if (!(items[0].text = strdup(o->prompt))) { st = SK_ERR(SK_E_OOM, "out of memory"); goto fail; }
    } else {
        snprintf(items[0].key, sizeof items[0].key, "%s", o->embeds_key);
    }
    nitems = 1;
    if (o->prompts &&
        (st = parse_prompts(o->prompts, o->frames, o->fps, items, &nitems, MAX_PROMPTS)) != SK_OK)
        goto fail;
    for (int i = 0; i < nitems; i++) {
        if (items[i].text && !o->text_encoder) {
            st = SK_ERR(SK_E_INVALID_ARG, "--prompts: text prompt '%.40s' needs --text-encoder",
                        items[i].text);
            goto fail;
        }
        if (!items[i].text && !o->text_embeds) {
            st = SK_ERR(SK_E_INVALID_ARG, "--prompts: embeds '%s' needs --text-embeds", items[i].key);
            goto fail;
        }
    }
    if (o->text_embeds) {
        if ((st = sk_st_open(o->text_embeds, &emb)) != SK_OK) goto fail;
        for (int i = 0; i < nitems; i++)
            if (!items[i].text &&
                (st = read_embeds(emb, items[i].key, &items[i].ctx, &items[i].rows, &items[i].cols)) != SK_OK)
                goto fail;
    }
    if (o->text_encoder) {
        sk_backend *tbe = NULL;
        sk_text_encoder *te = NULL;
        /* f32 activations: the encoder runs once per prompt (as Self-Forcing runs it) */
        st = sk_backend_create(o->device == 1 ? "cuda" : "cpu", SK_DTYPE_F32, &tbe);
        sk_text_opts to = {.encoder_path = o->text_encoder, .tokenizer_path = o->tokenizer,
                           .config_path = o->text_encoder_config};
        if (st == SK_OK) st = sk_text_encoder_create(tbe, &to, &te);
        int64_t tr = 0, tc = 0;
        if (st == SK_OK) sk_text_encoder_shape(te, &tr, &tc);
        for (int i = 0; st == SK_OK && i < nitems; i++) {
            if (!items[i].text) continue;
            items[i].rows = tr;
            items[i].cols = tc;
            items[i].ctx = malloc((size_t)(tr * tc) * sizeof(float));
            int len = 0;
            st = items[i].ctx ? sk_text_encode(te, items[i].text, items[i].ctx, &len, NULL)
                              : SK_ERR(SK_E_OOM, "out of host memory for a [%lld, %lld] context",
                                       (long long)tr, (long long)tc);
            if (st == SK_OK)
                SK_LOGI("prompt %d (frame %lld): %d tokens: %.60s", i, (long long)items[i].frame,
                        len, items[i].text);
        }
        sk_text_encoder_free(&te);
        sk_backend_free_(&tbe);
        if (st != SK_OK) goto fail;
    }
    for (int i = 1; i < nitems; i++)
        if (items[i].cols != items[0].cols) {
            st = SK_ERR(SK_E_SHAPE, "--prompts: prompt %d has %lld columns, the first one %lld", i,
                        (long long)items[i].cols, (long long)items[0].cols);
            goto fail;
        }
    const int nsw = nitems - 1;
    int next_sw = 1;
    if (o->noise_file && (st = sk_noise_source_file(o->noise_file, &ns)) != SK_OK) goto fail;

    sk_dit_config cfg, *cfgp = NULL;
    if (o->dit_config) {
        if ((st = sk_dit_config_from_file(o->dit_config, &cfg)) != SK_OK) goto fail;
        cfgp = &cfg;
    }
    static const sk_dtype act_of[] = {SK_DTYPE_F32, SK_DTYPE_F32, SK_DTYPE_BF16};
    sk_dtype act = o->act_dtype == 0 ? (o->device == 1 ? SK_DTYPE_BF16 : SK_DTYPE_F32)
                                     : act_of[o->act_dtype];
    if ((st = sk_backend_create(o->device == 1 ? "cuda" : "cpu", act, &be)) != SK_OK) goto fail;
    static const sk_dtype wd_of[] = {SK_DIT_WDTYPE_AS_STORED, SK_DTYPE_F32, SK_DTYPE_BF16,
                                     SK_DTYPE_F16};
    if ((st = sk_dit_load(o->dit, cfgp, be, wd_of[o->wdtype], &m)) != SK_OK) goto fail;
    for (int i = 0; i < nitems; i++) {
        /* rows past the DiT's text_len may be dropped when they are zero padding (an encoder
         * padding to 512 for a model of shorter text_len) */
        int64_t keep = items[i].rows;
        while (keep > m->cfg.text_len) {
            const float *r = items[i].ctx + (keep - 1) * items[i].cols;
            int64_t c = 0;
            while (c < items[i].cols && r[c] == 0.0f) c++;
            if (c < items[i].cols) break;
            keep--;
        }
        if (keep < items[i].rows) {
            SK_LOGD("prompt %d: %lld zero padding rows dropped to fit text_len %lld", i,
                    (long long)(items[i].rows - keep), (long long)m->cfg.text_len);
            items[i].rows = keep;
        }
        if (items[i].cols != m->cfg.text_dim || items[i].rows > m->cfg.text_len) {
            st = SK_ERR(SK_E_SHAPE, "prompt %d (%s '%s') is [%lld, %lld]; the model takes up to "
                        "%lld rows of %lld", i, items[i].text ? "text" : "embeds",
                        items[i].text ? items[i].text : items[i].key, (long long)items[i].rows,
                        (long long)items[i].cols, (long long)m->cfg.text_len,
                        (long long)m->cfg.text_dim);
            goto fail;
        }
    }

    if (decode) {
        /* the VAE shares the DiT's backend: latents go from one to the other on the device */
        sk_taehv_load_opts lo = sk_taehv_load_opts_default();
        if ((st = sk_taehv_load(be, o->vae, &lo, &vae)) != SK_OK) goto fail;
        const sk_taehv_config *vc = sk_taehv_get_config(vae);
        if (vc->latent_channels != m->cfg.out_dim) {
            st = SK_ERR(SK_E_SHAPE, "--vae '%s' decodes %d-channel latents but the DiT makes %lld "
                        "(taew2_1 for Wan 2.1, 16 channels; taew2_2 for Wan 2.2 TI2V-5B, 48)",
                        o->vae, vc->latent_channels, (long long)m->cfg.out_dim);
            goto fail;
        }
        int64_t chunk = o->chunk < o->frames ? o->chunk : o->frames;
        if ((st = sk_taehv_dec_stream_create(vae, o->latent_h, o->latent_w, (int)chunk, &dec)) != SK_OK)
            goto fail;
        int64_t vh, vw;
        sk_taehv_dec_stream_frame_size(dec, &vh, &vw);
        sk_output_params ps[3];
        int np = 0;
        memset(ps, 0, sizeof ps);
        if (o->output) {
            sk_output_kind k = SK_OUTPUT_AUTO;
            if ((st = sk_output_detect_kind(o->output, &k)) != SK_OK) goto fail;
            ps[np++] = (sk_output_params){.path = o->output, .kind = k};
        }
        if (o->frames_dir) ps[np++] = (sk_output_params){.path = o->frames_dir, .kind = SK_OUTPUT_PNG_DIR};
        if (o->rgb_out) ps[np++] = (sk_output_params){.path = o->rgb_out, .kind = SK_OUTPUT_RGB_SAFETENSORS};
        for (int i = 0; i < np; i++) {
            ps[i].width = (int)vw;
            ps[i].height = (int)vh;
            ps[i].fps_num = o->fps;
            ps[i].fps_den = 1;
            ps[i].crf = o->crf;
        }
        if ((st = sk_output_open_multi(ps, np, &out)) != SK_OK) goto fail;
        SK_LOGI("decode: TAEHV '%s' -> %lldx%lld frames at %d fps", o->vae, (long long)vw,
                (long long)vh, o->fps);
    }

    sk_stream_params p = sk_stream_params_default();
    p.frames = o->frames;
    p.chunk_frames = o->chunk;
    p.latent_h = o->latent_h;
    p.latent_w = o->latent_w;
    p.sched = *sched;
    p.kv_policy = o->kv_policy == 0 ? SK_KV_FIFO : SK_KV_SINK;
    p.kv_window = o->kv_window;
    p.kv_sink = o->kv_sink;
    p.seed = (uint64_t)o->seed;
    p.noise = ns;
    p.prompt_switch = nsw > 0;
    if (o->dump_steps) {
        if ((st = sk_st_writer_create(&sd.w)) != SK_OK) goto fail;
        p.on_step = on_step_dump;
        p.on_step_user = &sd;
    }
    if ((st = sk_stream_init(m, &p, &s)) != SK_OK) goto fail;
    if ((st = sk_stream_set_prompt(s, items[0].ctx, items[0].rows)) != SK_OK) goto fail;

    const int64_t C = m->cfg.out_dim, E = C * o->latent_h * o->latent_w;
    if (o->latents_out) {
        lat = malloc((size_t)(o->frames * E) * sizeof *lat);
        if (!lat) { st = SK_ERR(SK_E_OOM, "out of host memory for %lld latent frames", (long long)o->frames); goto fail; }
    }
    SK_LOGI("generate: %lld latent frames of %lldx%lld in chunks of %lld, steps %d (t %g..%g), "
            "KV %s window %lld sink %lld, noise %s", (long long)o->frames, (long long)o->latent_h,
            (long long)o->latent_w, (long long)s->p.chunk_frames, sched->n, (double)sched->t[0],
            (double)sched->t[sched->n - 1], sk_kv_policy_name(p.kv_policy),
            (long long)p.kv_window, (long long)s->kv->p.sink_frames,
            o->noise_file ? o->noise_file : "philox");
    sk_progress pr;
    sk_progress_start(&pr, "latent frames", o->frames);
    pr.log_every_s = 0; /* one line per chunk when not on a terminal */
    while (!sk_stream_done(s)) {
        /* switches take effect at the first chunk starting at or after their frame */
        int apply = -1;
        while (next_sw <= nsw && items[next_sw].frame <= s->next_frame) apply = next_sw++;
        if (apply >= 0) {
            SK_LOGI("prompt switch to %s '%.60s' at latent frame %lld",
                    items[apply].text ? "text" : "embeds",
                    items[apply].text ? items[apply].text : items[apply].key,
                    (long long)s->next_frame);
            if ((st = sk_stream_switch_prompt(s, items[apply].ctx, items[apply].rows)) != SK_OK)
                goto fail;
        }
        sk_tensor x0;
        int64_t f0;
        if ((st = sk_stream_step(s, &x0, &f0)) != SK_OK) goto fail;
        if ((st = sd.st) != SK_OK) goto fail;
        if (lat && (st = sk_tensor_download_f32(&x0, lat + f0 * E, (size_t)sk_tensor_numel(&x0))) != SK_OK)
            goto fail;
        if (dec) {
            const float *rgb = NULL;
            int64_t nf = 0;
            if ((st = sk_taehv_dec_stream_push_host(dec, &x0, &rgb, &nf)) != SK_OK ||
                (st = sk_output_write_frames(out, rgb, (int)nf)) != SK_OK)
                goto fail;
        }
        sk_progress_update(&pr, f0 + x0.shape[0]);
    }
    sk_progress_finish(&pr);
    {
        double dt = sk_progress_now() - pr.t_start;
        int64_t vf = 4 * o->frames - 3; /* video frames the Wan VAE makes of F latents */
        SK_LOGI("generated %lld latent frames (%lld video frames) in %.2f s: %.1f video fps%s",
                (long long)o->frames, (long long)vf, dt, dt > 0 ? (double)vf / dt : 0.0,
                dec ? " including decode" : "");
    }
    if (o->latents_out) {
        int64_t shape[4] = {o->frames, C, o->latent_h, o->latent_w};
        if ((st = sk_st_writer_create(&w)) != SK_OK ||
            (st = sk_st_writer_add_f32(w, "latents", SK_DTYPE_F32, 4, shape, lat)) != SK_OK ||
            (st = sk_st_writer_meta(w, "generator", "sinkstream generate")) != SK_OK ||
            (st = sk_st_writer_save(w, o->latents_out)) != SK_OK)
            goto fail;
        SK_LOGI("wrote latents [%lld, %lld, %lld, %lld] to '%s'", (long long)o->frames,
                (long long)C, (long long)o->latent_h, (long long)o->latent_w, o->latents_out);
    }
    if (out) {
        st = sk_output_close(&out);
        if (st != SK_OK) goto fail;
    }
    if (sd.w) {
        for (int k = 0; k < sched->n; k++) {
            char v[32];
            snprintf(v, sizeof v, "%.9g", (double)sched->t[k]);
            char key[32];
            snprintf(key, sizeof key, "t.%d", k);
            if ((st = sk_st_writer_meta(sd.w, key, v)) != SK_OK) goto fail;
        }
        if ((st = sk_st_writer_save(sd.w, o->dump_steps)) != SK_OK) goto fail;
        SK_LOGI("wrote every step's xt/v/x0 to '%s'", o->dump_steps);
    }
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "sinkstream generate: %s\n", sk_error_message());
    SK_LOGD("raised at %s", sk_error_where());
done:
    sk_st_writer_free(&sd.w);
    if (out) (void)sk_output_close(&out);
    sk_taehv_dec_stream_free(&dec);
    sk_taehv_free(&vae);
    sk_st_writer_free(&w);
    sk_stream_free(&s);
    sk_noise_source_free(&ns);
    sk_dit_free(&m);
    sk_backend_free_(&be);
    sk_st_close(&emb);
    free_prompts(items, nitems);
    free(lat);
    return rc;
}

int sk_cmd_generate(int argc, char **argv)
{
    gen_opts o = {.embeds_key = "context", .frames = 21, .chunk = 3, .height = 480, .width = 832,
                  .kv_window = 12, .kv_sink = -1, .steps = {4, {1000, 750, 500, 250}},
                  .shift = 5.0, .seed = 0, .kv_policy = 1, .fps = 16};
#define GROUP(t) {.name = (t), .type = SK_OPT_GROUP}
#define OPT(n_, ty_, f_, def_, h_, env_, mv_) \
    .name = (n_), .type = (ty_), .field = (f_), .def_text = (def_), .help = (h_), .env = (env_), \
    .metavar = (mv_)
    const sk_opt opts[] = {
        GROUP("Model"),
        {OPT("dit", SK_OPT_STRING, &o.dit, NULL, "causal Wan DiT weights (.safetensors, upstream "
             "names, optional model./generator. prefixes)", "SK_DIT", "FILE")},
        {OPT("dit-config", SK_OPT_STRING, &o.dit_config, "from the checkpoint",
             "config.json (dim, num_heads, ...); else safetensors metadata, else tensor shapes",
             NULL, "FILE")},
        {OPT("dit-dtype", SK_OPT_ENUM, &o.wdtype, NULL, "dtype of the DiT's linear weights", NULL,
             NULL), .choices = "as-stored|f32|bf16|f16"},
        GROUP("Prompt"),
        {OPT("prompt", SK_OPT_STRING, &o.prompt, NULL, "the prompt (encoded with "
             "--text-encoder)", NULL, "TEXT"), .short_name = 'p'},
        {OPT("text-encoder", SK_OPT_STRING, &o.text_encoder, NULL, "umT5 encoder weights "
             "(.safetensors)", "SK_TEXT_ENCODER", "FILE")},
        {OPT("tokenizer", SK_OPT_STRING, &o.tokenizer, "the encoder file's spiece_model",
             "SentencePiece model (spiece.model)", NULL, "FILE")},
        {OPT("text-encoder-config", SK_OPT_STRING, &o.text_encoder_config, "metadata / shapes",
             "config.json of the text encoder", NULL, "FILE")},
        {OPT("text-embeds", SK_OPT_STRING, &o.text_embeds, NULL,
             "safetensors with the text encoder output [L, text_dim]", NULL, "FILE")},
        {OPT("embeds-key", SK_OPT_STRING, &o.embeds_key, NULL, "tensor in --text-embeds to use",
             NULL, "NAME")},
        {OPT("prompts", SK_OPT_STRING, &o.prompts, NULL, "prompt switches, JSON lines "
             "{\"frame\": N | \"at\": SECONDS, \"embeds\": NAME | \"prompt\": TEXT} "
             "(LongLive KV-recache)", NULL, "FILE")},
        GROUP("Video"),
        {OPT("frames", SK_OPT_INT64, &o.frames, NULL, "latent frames to generate", NULL, "N"),
         .short_name = 'f', .lo = 1, .hi = 1 << 20},
        {OPT("height", SK_OPT_INT64, &o.height, NULL, "height in pixels (multiple of 16)", NULL,
             "PX"), .lo = 16, .hi = 16384},
        {OPT("width", SK_OPT_INT64, &o.width, NULL, "width in pixels (multiple of 16)", NULL,
             "PX"), .lo = 16, .hi = 16384},
        {OPT("latent-height", SK_OPT_INT64, &o.latent_h, "height/8",
             "latent height (overrides --height; even)", NULL, "N"), .lo = 0, .hi = 2048},
        {OPT("latent-width", SK_OPT_INT64, &o.latent_w, "width/8",
             "latent width (overrides --width; even)", NULL, "N"), .lo = 0, .hi = 2048},
        GROUP("Sampling"),
        {OPT("chunk", SK_OPT_INT64, &o.chunk, NULL, "latent frames per chunk", NULL, "N"),
         .lo = 1, .hi = 64},
        {OPT("steps", SK_OPT_INT_LIST, &o.steps, NULL, "denoising timesteps (warped by --shift)",
             NULL, "LIST"), .lo = 1, .hi = 1000},
        {OPT("shift", SK_OPT_DOUBLE, &o.shift, NULL, "flow-matching timestep shift", NULL, "X"),
         .lo = 0.01, .hi = 1000},
        {OPT("no-warp", SK_OPT_FLAG, &o.no_warp, NULL, "use --steps as raw timesteps (no warp)",
             NULL, NULL)},
        {OPT("seed", SK_OPT_INT64, &o.seed, NULL, "noise seed (Philox; ignored with --noise-file)",
             "SK_SEED", "N")},
        {OPT("noise-file", SK_OPT_STRING, &o.noise_file, NULL, "reference noise: 'noise' "
             "[F,C,H,W] and 'renoise.{chunk}.{step}'", NULL, "FILE")},
        GROUP("KV cache"),
        {OPT("kv-policy", SK_OPT_ENUM, &o.kv_policy, NULL,
             "fifo (Self-Forcing) or sink (LongLive)", NULL, NULL), .choices = "fifo|sink"},
        {OPT("kv-window", SK_OPT_INT64, &o.kv_window, NULL,
             "frames a chunk attends to, sink and itself included", NULL, "N"), .lo = 1,
         .hi = 4096},
        {OPT("kv-sink", SK_OPT_INT64, &o.kv_sink, "3 (sink), 0 (fifo)",
             "first frames kept as the attention sink", NULL, "N"), .lo = -1, .hi = 4096},
        GROUP("Output"),
        {OPT("latents-out", SK_OPT_STRING, &o.latents_out, NULL,
             "write the denoised latents as 'latents' [F,C,H,W] f32", NULL, "FILE")},
        {OPT("output", SK_OPT_STRING, &o.output, NULL, "video file (.mp4/.mkv/.mov) or rtmp:// URL "
             "(decoded with --vae)", NULL, "FILE"), .short_name = 'o'},
        {OPT("frames-dir", SK_OPT_STRING, &o.frames_dir, NULL, "write decoded frames as "
             "DIR/frame_000000.png, ...", NULL, "DIR")},
        {OPT("rgb-out", SK_OPT_STRING, &o.rgb_out, NULL, "write decoded frames as `frames` "
             "[T, 3, H, W] f32 in [0, 1]", NULL, "FILE")},
        {OPT("vae", SK_OPT_STRING, &o.vae, NULL, "TAEHV decoder (taew2_1 / taew2_2 .safetensors)",
             "SK_VAE", "FILE")},
        {OPT("fps", SK_OPT_INT, &o.fps, NULL, "frame rate of the video", NULL, "N"), .lo = 1,
         .hi = 1000},
        {OPT("crf", SK_OPT_INT, &o.crf, NULL, "x264 quality (0: encoder default 23)", NULL, "N"),
         .lo = 0, .hi = 51},
        {OPT("no-decode", SK_OPT_FLAG, &o.no_decode, NULL, "do not decode to video", NULL, NULL)},
        {OPT("dump-steps", SK_OPT_STRING, &o.dump_steps, NULL, "write every denoising step's "
             "xt/v/x0 (xt.{chunk}.{step}, ...) to compare with a PyTorch run", NULL, "FILE")},
        GROUP("Device"),
        {OPT("device", SK_OPT_ENUM, &o.device, NULL, "backend", "SK_DEVICE", NULL),
         .choices = "cpu|cuda"},
        {OPT("act-dtype", SK_OPT_ENUM, &o.act_dtype, NULL,
             "activation dtype (auto: f32 on cpu, bf16 on cuda)", NULL, NULL),
         .choices = "auto|f32|bf16"},
    };
#undef OPT
#undef GROUP
    sk_cli cli = {"sinkstream generate", "[options]",
                  "Generate video with a causal Wan DiT (Self-Forcing / LongLive chunk loop): prompt\n"
                  "(umT5 or precomputed embeddings) -> DiT chunks -> TAEHV -> video / latents.",
                  opts, (int)(sizeof opts / sizeof opts[0]), 0, 0};
    sk_cli_pos pos;
    int rc = sk_cli_parse(&cli, argc, argv, &pos);
    if (rc >= 0) return rc;

    /* validate everything before loading weights */
    if (!o.dit) return sk_cli_usage_error(&cli, "--dit FILE is required");
    if (!o.text_embeds && !o.prompt)
        return sk_cli_usage_error(&cli, "give --prompt TEXT (with --text-encoder FILE) or "
                                        "--text-embeds FILE");
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
    if (o.no_decode && video_out)
        return sk_cli_usage_error(&cli, "--no-decode with -o/--frames-dir/--rgb-out: nothing "
                                        "would be written there");
    /* --no-decode without --latents-out is allowed: a timing run that writes nothing */
    if (!o.latents_out && !video_out && !o.no_decode)
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
            (k != SK_OUTPUT_VIDEO_FILE && k != SK_OUTPUT_RTMP))
            return sk_cli_usage_error(&cli, "-o '%s': expected a .mp4/.mkv/.mov file or an "
                                            "rtmp:// URL", o.output);
        if (!sk_output_kind_available(k))
            return sk_cli_usage_error(&cli, "-o '%s': this build has no FFmpeg; use --frames-dir "
                                            "or --rgb-out", o.output);
    }
    if (!o.latent_h) {
        if (o.height % 16) return sk_cli_usage_error(&cli, "--height %lld is not a multiple of 16", (long long)o.height);
        o.latent_h = o.height / 8;
    }
    if (!o.latent_w) {
        if (o.width % 16) return sk_cli_usage_error(&cli, "--width %lld is not a multiple of 16", (long long)o.width);
        o.latent_w = o.width / 8;
    }
    if (o.latent_h % 2 || o.latent_w % 2 || o.latent_h < 2 || o.latent_w < 2)
        return sk_cli_usage_error(&cli, "latent size %lldx%lld must be even (the DiT's 2x2 patch)",
                                  (long long)o.latent_h, (long long)o.latent_w);
    if (o.kv_sink < 0) o.kv_sink = o.kv_policy == 1 ? 3 : 0;
    if (o.kv_policy == 0 && o.kv_sink != 0)
        return sk_cli_usage_error(&cli, "--kv-sink %lld with --kv-policy fifo: fifo keeps no sink "
                                        "(use --kv-policy sink)", (long long)o.kv_sink);
    int64_t chunk = o.chunk < o.frames ? o.chunk : o.frames;
    if (o.kv_sink + chunk > o.kv_window)
        return sk_cli_usage_error(&cli, "--kv-window %lld is too small for --kv-sink %lld plus a "
                                        "chunk of %lld frames", (long long)o.kv_window,
                                  (long long)o.kv_sink, (long long)chunk);
    sk_schedule sched;
    sk_status st = sk_schedule_make(o.steps.v, o.steps.n, o.shift, !o.no_warp, &sched);
    if (st != SK_OK) return sk_cli_usage_error(&cli, "%s", sk_error_message());
    return run(&o, &sched);
}
