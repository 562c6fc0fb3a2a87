/* cmd_encode_text.c - `sinkstream encode-text`: prompt -> umT5 context file.
 *
 * Writes a safetensors file with `context` [text_len, dim] float32 (rows past
 * the real length zero, as Wan) and `ids` [text_len] int32, plus metadata
 * (prompt, seq_len), which `sinkstream generate --text-embeds` reads.
 */
#include <stdio.h>
#include <stdlib.h>

#include "runtime/backend.h"
#include "runtime/log.h"
#include "runtime/safetensors.h"
#include "text/text_encoder.h"
#include "text/tokenizer.h"
#include "tools/cli_opts.h"
#include "tools/commands.h"

static int readable(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    fclose(f);
    return 1;
}

int sk_cmd_encode_text(int argc, char **argv)
{
    struct {
        const char *encoder, *tokenizer, *config, *prompt, *out;
        int text_len, device, print_ids;
    } o = {.text_len = 0, .device = 0};
    const sk_opt opts[] = {
        SK_OPT_HEADING("Model"),
        {"text-encoder", 0, SK_OPT_STRING, &o.encoder, .metavar = "FILE",
         .help = "umT5 encoder weights (.safetensors; Wan or Hugging Face names)"},
        {"tokenizer", 0, SK_OPT_STRING, &o.tokenizer, .metavar = "FILE",
         .def_text = "the file's spiece_model tensor",
         .help = "SentencePiece model (google/umt5-xxl/spiece.model)"},
        {"text-encoder-config", 0, SK_OPT_STRING, &o.config, .metavar = "FILE",
         .def_text = "metadata / shapes", .help = "config.json of the encoder (optional)"},
        {"device", 0, SK_OPT_ENUM, &o.device, .help = "backend (activations f32 on both)",
         .env = "SK_DEVICE", .choices = "cpu|cuda"},
        SK_OPT_HEADING("Prompt"),
        {"prompt", 'p', SK_OPT_STRING, &o.prompt, .metavar = "TEXT", .help = "the prompt"},
        {"text-len", 0, SK_OPT_INT, &o.text_len, .metavar = "N", .def_text = "512 (the encoder's)",
         .help = "rows of the context (Wan: 512)", .lo = 1, .hi = 65536},
        {"print-ids", 0, SK_OPT_FLAG, &o.print_ids, .help = "print the token ids and pieces"},
        SK_OPT_HEADING("Output"),
        {"out", 'o', SK_OPT_STRING, &o.out, .metavar = "FILE",
         .help = "safetensors with context [text_len, dim] f32 and ids [text_len] i32"},
    };
    sk_cli cli = {"sinkstream encode-text",
                  "--text-encoder FILE --tokenizer spiece.model --prompt TEXT --out FILE",
                  "Encode a prompt with the umT5 text encoder as Wan does (clean, tokenize,\n"
                  "EOS, pad to text_len, encode, zero the rows past the prompt).",
                  opts, (int)(sizeof opts / sizeof opts[0]), 0, 0};
    sk_cli_pos pos;
    int rc = sk_cli_parse(&cli, argc, argv, &pos);
    if (rc >= 0) return rc;

    /* ---- validate everything before loading weights */
    if (!o.encoder) return sk_cli_usage_error(&cli, "--text-encoder FILE is required");
    if (!o.prompt) return sk_cli_usage_error(&cli, "--prompt TEXT is required");
    if (!o.out) return sk_cli_usage_error(&cli, "--out FILE is required");
    if (!readable(o.encoder))
        return sk_cli_usage_error(&cli, "--text-encoder '%s': cannot open it", o.encoder);
    if (o.tokenizer && !readable(o.tokenizer))
        return sk_cli_usage_error(&cli, "--tokenizer '%s': cannot open it", o.tokenizer);
    if (o.config && !readable(o.config))
        return sk_cli_usage_error(&cli, "--text-encoder-config '%s': cannot open it", o.config);

    sk_backend *be = NULL;
    sk_text_encoder *te = NULL;
    sk_st_writer *w = NULL;
    float *ctx = NULL;
    int32_t *ids = NULL;
    int64_t rows = 0, dim = 0;
    int len = 0;
    sk_status st;
    /* f32 activations on CUDA too: the encoder runs once per prompt, so its
     * accuracy matters more than its speed (Self-Forcing runs it in f32). */
    SK_TRY_GOTO(st, sk_backend_create(o.device ? "cuda" : "cpu", SK_DTYPE_F32, &be), done);
    sk_text_opts to = {.encoder_path = o.encoder, .tokenizer_path = o.tokenizer,
                       .config_path = o.config, .text_len = o.text_len, .cache_entries = -1};
    SK_TRY_GOTO(st, sk_text_encoder_create(be, &to, &te), done);
    sk_text_encoder_shape(te, &rows, &dim);
    ctx = malloc((size_t)(rows * dim) * sizeof *ctx);
    ids = malloc((size_t)rows * sizeof *ids);
    if (!ctx || !ids) {
        st = SK_ERR(SK_E_OOM, "out of host memory for a [%lld, %lld] context", (long long)rows,
                    (long long)dim);
        goto done;
    }
    SK_TRY_GOTO(st, sk_text_encode(te, o.prompt, ctx, &len, ids), done);
    if (len == rows)
        SK_LOGW("encode-text: the prompt fills all %lld tokens and may have been truncated",
                (long long)rows);
    if (o.print_ids) {
        printf("seq_len %d\n", len);
        for (int i = 0; i < len; i++) printf("%d\n", (int)ids[i]);
    }
    char lenbuf[32];
    snprintf(lenbuf, sizeof lenbuf, "%d", len);
    SK_TRY_GOTO(st, sk_st_writer_create(&w), done);
    SK_TRY_GOTO(st, sk_st_writer_add_f32(w, "context", SK_DTYPE_F32, 2, (int64_t[]){rows, dim}, ctx),
                done);
    SK_TRY_GOTO(st, sk_st_writer_add_raw(w, "ids", SK_DTYPE_I32, 1, (int64_t[]){rows}, ids,
                                         (size_t)rows * sizeof *ids), done);
    SK_TRY_GOTO(st, sk_st_writer_meta(w, "prompt", o.prompt), done);
    SK_TRY_GOTO(st, sk_st_writer_meta(w, "seq_len", lenbuf), done);
    SK_TRY_GOTO(st, sk_st_writer_save(w, o.out), done);
    SK_LOGI("encode-text: %d tokens -> context [%lld, %lld] in '%s'", len, (long long)rows,
            (long long)dim, o.out);
done:
    sk_st_writer_free(&w);
    free(ctx);
    free(ids);
    sk_text_encoder_free(&te);
    sk_backend_free_(&be);
    if (st != SK_OK) {
        fprintf(stderr, "%s: error: %s (%s)\n", cli.prog, sk_error_message(), sk_status_name(st));
        return 1;
    }
    return 0;
}
