/* cmd_encode_text.c - `sinkstream encode-text`: prompt(s) -> umT5 context file.
 *
 * Writes a safetensors file with `context` [text_len, dim] float32 (rows past
 * the real length zero, as Wan) and `ids` [text_len] int32, plus metadata
 * (prompt, seq_len), which `sinkstream generate --text-embeds` reads. With
 * --prompt-file (one prompt a line) every prompt i is also written as
 * `context.i` / `ids.i` (metadata prompt.i, seq_len.i), the layout of a prompt
 * schedule (`generate --prompts` lines {"frame": N, "embeds": "context.i"});
 * `context` is then the first prompt.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/core/log.h"
#include "runtime/io/safetensors.h"
#include "runtime/sinkstream.h"
#include "tools/cli_device.h"
#include "tools/cli_opts.h"
#include "tools/commands.h"

static int readable(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    fclose(f);
    return 1;
}

/* Prompts of a file, one a line (blank lines skipped, trailing \r removed);
 * *buf owns the text, (*v)[i] point into it. Returns the count, -1 on error. */
static int read_prompt_lines(const char *path, char **buf, char ***v)
{
    FILE *f = fopen(path, "rb");
    *buf = NULL;
    *v = NULL;
    if (!f) return -1;
    size_t cap = 4096, n = 0;
    char *b = malloc(cap);
    int c;
    while (b && (c = fgetc(f)) != EOF) {
        if (n + 2 > cap) {
            char *nb = realloc(b, cap *= 2);
            if (!nb) { free(b); b = NULL; break; }
            b = nb;
        }
        b[n++] = (char)c;
    }
    fclose(f);
    if (!b) return -1;
    b[n] = 0;
    int count = 0;
    char **lines = malloc((n / 1 + 2) * sizeof *lines);
    if (!lines) { free(b); return -1; }
    for (char *p = b; *p;) {
        char *e = strchr(p, '\n');
        if (e) *e = 0;
        size_t l = strlen(p);
        if (l && p[l - 1] == '\r') p[--l] = 0;
        if (l) lines[count++] = p;
        if (!e) break;
        p = e + 1;
    }
    *buf = b;
    *v = lines;
    return count;
}

int sk_cmd_encode_text(int argc, char **argv)
{
    struct {
        const char *encoder, *tokenizer, *config, *prompt, *prompt_file, *out;
        int text_len, device, print_ids;
    } o = {.text_len = 0, .device = SK_DEV_AUTO};
    const sk_opt opts[] = {
        SK_OPT_HEADING("Model"),
        {"text-encoder", 0, SK_OPT_STRING, &o.encoder, .metavar = "PATH",
         .help = "umT5 encoder: .safetensors (Wan or HF names), an HF index .json or a folder"},
        {"tokenizer", 0, SK_OPT_STRING, &o.tokenizer, .metavar = "FILE",
         .def_text = "the file's spiece_model tensor",
         .help = "SentencePiece model (google/umt5-xxl/spiece.model)"},
        {"text-encoder-config", 0, SK_OPT_STRING, &o.config, .metavar = "FILE",
         .def_text = "metadata / shapes", .help = "config.json of the encoder (optional)"},
        {"device", 0, SK_OPT_ENUM, &o.device, .help = SK_CLI_DEVICE_HELP " (activations f32 on both)",
         .env = "SK_DEVICE", .choices = SK_CLI_DEVICE_CHOICES},
        SK_OPT_HEADING("Prompt"),
        {"prompt", 'p', SK_OPT_STRING, &o.prompt, .metavar = "TEXT", .help = "the prompt"},
        {"prompt-file", 0, SK_OPT_STRING, &o.prompt_file, .metavar = "FILE",
         .help = "one prompt a line: writes context.0, context.1, ... (a prompt schedule)"},
        {"text-len", 0, SK_OPT_INT, &o.text_len, .metavar = "N", .def_text = "512 (the encoder's)",
         .help = "rows of the context (Wan: 512)", .lo = 1, .hi = 65536},
        {"print-ids", 0, SK_OPT_FLAG, &o.print_ids, .help = "print the token ids of each prompt"},
        SK_OPT_HEADING("Output"),
        {"out", 'o', SK_OPT_STRING, &o.out, .metavar = "FILE",
         .help = "safetensors with context [text_len, dim] f32 and ids [text_len] i32"},
        {"output", 0, SK_OPT_STRING, &o.out, .metavar = "FILE",
         .help = "the same as -o/--out (the name generate and decode use)"},
    };
    sk_cli cli = {"sinkstream encode-text",
                  "--text-encoder PATH --tokenizer spiece.model --prompt TEXT --out FILE",
                  "Encode prompts with the umT5 text encoder as Wan does (clean, tokenize,\n"
                  "EOS, pad to text_len, encode, zero the rows past the prompt).",
                  opts, (int)(sizeof opts / sizeof opts[0]), 0, 0};
    sk_cli_pos pos;
    int rc = sk_cli_parse(&cli, argc, argv, &pos);
    if (rc >= 0) return rc;

    /* ---- validate everything before loading weights */
    if (!o.encoder) return sk_cli_usage_error(&cli, "--text-encoder PATH is required");
    if (!o.prompt == !o.prompt_file)
        return sk_cli_usage_error(&cli, "give exactly one of --prompt TEXT and --prompt-file FILE");
    if (!o.out) return sk_cli_usage_error(&cli, "--out FILE is required");
    if (!readable(o.encoder))
        return sk_cli_usage_error(&cli, "--text-encoder '%s': cannot open it", o.encoder);
    if (o.tokenizer && !readable(o.tokenizer))
        return sk_cli_usage_error(&cli, "--tokenizer '%s': cannot open it", o.tokenizer);
    if (o.config && !readable(o.config))
        return sk_cli_usage_error(&cli, "--text-encoder-config '%s': cannot open it", o.config);
    char *pbuf = NULL, **prompts = NULL, *one[1] = {(char *)o.prompt};
    int np = 1;
    if (o.prompt_file) {
        np = read_prompt_lines(o.prompt_file, &pbuf, &prompts);
        if (np < 0) return sk_cli_usage_error(&cli, "--prompt-file '%s': cannot read it", o.prompt_file);
        if (np == 0) {
            free(pbuf);
            free(prompts);
            return sk_cli_usage_error(&cli, "--prompt-file '%s': no prompt in it", o.prompt_file);
        }
    } else {
        prompts = one;
    }

    sk_engine *e = NULL;
    sk_st_writer *w = NULL;
    float *ctx = NULL;
    int32_t *ids = NULL;
    int64_t rows = 0, dim = 0;
    sk_status st;
    /* a text-only engine: f32 activations on CUDA too (the encoder runs once per prompt,
     * so its accuracy matters more than its speed; Self-Forcing runs it in f32) */
    sk_engine_params ep = sk_engine_params_default();
    ep.text_encoder = o.encoder;
    ep.tokenizer = o.tokenizer;
    ep.text_encoder_config = o.config;
    ep.text_len = o.text_len;
    const char *dev = sk_cli_device_api_name(o.device); /* auto / cpu-ref: the engine's too */
    sk_cli_device_resolve("sinkstream encode-text", &o.device);
    ep.device = dev;
    SK_TRY_GOTO(st, sk_engine_open(&ep, &e), done);
    SK_TRY_GOTO(st, sk_st_writer_create(&w), done);
    for (int i = 0; i < np; i++) {
        int len = 0;
        sk_free(ctx);
        sk_free(ids);
        ctx = NULL, ids = NULL;
        SK_TRY_GOTO(st, sk_engine_encode_text(e, prompts[i], &ctx, &rows, &dim, &ids, &len), done);
        if (len == rows)
            SK_LOGW("encode-text: prompt %d fills all %lld tokens and may have been truncated", i,
                    (long long)rows);
        if (o.print_ids) {
            printf("prompt %d seq_len %d:", i, len);
            for (int k = 0; k < len; k++) printf(" %d", (int)ids[k]);
            printf("\n");
        }
        char lenbuf[32], name[64];
        snprintf(lenbuf, sizeof lenbuf, "%d", len);
        for (int pass = 0; pass < 2; pass++) {
            const char *suffix = "";
            char sfx[24];
            if (pass == 1) {
                if (!o.prompt_file) break;
                snprintf(sfx, sizeof sfx, ".%d", i);
                suffix = sfx;
            } else if (i > 0) {
                continue; /* `context` is the first prompt */
            }
            snprintf(name, sizeof name, "context%s", suffix);
            SK_TRY_GOTO(st, sk_st_writer_add_f32(w, name, SK_DTYPE_F32, 2, (int64_t[]){rows, dim},
                                                 ctx), done);
            snprintf(name, sizeof name, "ids%s", suffix);
            SK_TRY_GOTO(st, sk_st_writer_add_raw(w, name, SK_DTYPE_I32, 1, (int64_t[]){rows}, ids,
                                                 (size_t)rows * sizeof *ids), done);
            snprintf(name, sizeof name, "prompt%s", suffix);
            SK_TRY_GOTO(st, sk_st_writer_meta(w, name, prompts[i]), done);
            snprintf(name, sizeof name, "seq_len%s", suffix);
            SK_TRY_GOTO(st, sk_st_writer_meta(w, name, lenbuf), done);
        }
    }
    SK_TRY_GOTO(st, sk_st_writer_save(w, o.out), done);
    SK_LOGI("encode-text: %d prompt(s) -> context [%lld, %lld] in '%s'", np, (long long)rows,
            (long long)dim, o.out);
done:
    sk_st_writer_free(&w);
    sk_free(ctx);
    sk_free(ids);
    sk_engine_close(&e);
    if (o.prompt_file) {
        free(pbuf);
        free(prompts);
    }
    if (st != SK_OK) {
        fprintf(stderr, "%s: error: %s (%s)\n", cli.prog, sk_error_message(), sk_status_name(st));
        return 1;
    }
    return 0;
}
