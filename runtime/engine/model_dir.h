/* model_dir.h - a sinkstream model directory (what tools/convert_checkpoint.py writes).
 *
 *   DIR/model.json               {"format": "sinkstream-model", "version": 1,
 *                                 "family": "self-forcing" | "longlive" | "longlive2" |
 *                                           "reward-forcing" | "rolling-forcing" | "demo",
 *                                 "files": {"dit": "dit.safetensors", "text_encoder": ...,
 *                                           "tokenizer": "tokenizer/spiece.model",
 *                                           "vae": "vae.safetensors"},
 *                                 "generate": {"kv-policy": "sink", "kv-window": 12, ...},
 *                                 "fallback": {"kv-policy": "sink"}, ...}
 *   DIR/dit.safetensors          (required) DiT, config in its metadata
 *   DIR/text_encoder.safetensors umT5 encoder       (optional)
 *   DIR/tokenizer/spiece.model   its SentencePiece  (with the encoder)
 *   DIR/vae.safetensors          TAEHV decoder      (optional)
 *
 * "generate" holds defaults for `sinkstream generate` under its own long option
 * names (numbers, strings, booleans, arrays of integers for lists); the command
 * line wins over them. "fallback" names a replacement value for an option whose
 * value this build does not offer (e.g. a KV policy not built yet).
 */
#ifndef SK_ENGINE_MODEL_DIR_H
#define SK_ENGINE_MODEL_DIR_H

#include <stdio.h>

#include "runtime/core/status.h"

typedef struct cJSON cJSON;

typedef struct {
    char *dir;
    char *json_path;   /* DIR/model.json */
    cJSON *root;       /* the parsed model.json (owned) */
    const char *family;
    const char *title; /* "" when absent */
    /* resolved paths (owned), NULL when the file is not part of the model */
    char *dit, *dit_config, *text_encoder, *tokenizer, *vae;
    const cJSON *generate; /* object or NULL */
    const cJSON *fallback; /* object or NULL */
    char **kept;           /* sk_model_dir_keep's copies (owned) */
    int n_kept;
    int allow_outside;     /* files may resolve outside the directory */
    char *vae_encoder;     /* files.vae_encoder: the Wan2.2 VAE encoder (I2V); NULL if absent */
} sk_model_dir;

/* 1 when path is a directory that holds a model.json. */
int sk_model_dir_is(const char *path);

/* Reads and validates DIR/model.json: format and version, a known family,
 * "files" with at least "dit", every listed file present (a tokenizer only with
 * a text encoder), "generate" an object of scalars / integer arrays. Messages
 * name the directory and the field. */
sk_status sk_model_dir_open(const char *dir, sk_model_dir **out);
/* The same; every file must resolve (symlinks followed) inside the directory
 * unless allow_outside (generate --allow-outside). */
sk_status sk_model_dir_open_ex(const char *dir, int allow_outside, sk_model_dir **out);
void sk_model_dir_free(sk_model_dir **m); /* accepts NULL; NULLs the pointer */

/* The text form of a "generate" value for an option parser: numbers without a
 * trailing ".0" for integers, arrays as "1,2,3", booleans as "1"/"0". Returns
 * 0, or -1 (buf untouched) for a value of another kind. */
int sk_model_dir_value_text(const cJSON *v, char *buf, size_t cap);

/* A copy of text that lives as long as m (an option parser keeps string options by pointer:
 * a "generate" value set through it must outlive the caller's buffer). NULL when out of memory. */
const char *sk_model_dir_keep(sk_model_dir *m, const char *text);
/* 1 when a "generate" key of model.json may set that option: only defaults
 * that describe the model (size, length, fps, chunking, steps, shift, KV
 * policy and sizes, dtypes). Where files are written or read, the control
 * API's address and token and the like are the user's to give, never a
 * downloaded directory's (issue 15 #2). */
int sk_model_dir_option_allowed(const char *name);
const char *sk_model_dir_allowed_list(void); /* "frames, height, ..." for messages */

/* `sinkstream inspect DIR` on a model directory: loads every part on the CPU
 * (strict loaders: names, shapes, dtypes, NaN/Inf) and checks that they fit
 * together: DiT text_dim == encoder dim, VAE latent channels == DiT in/out
 * channels, tokenizer pieces <= encoder vocabulary (and its special ids inside
 * it), encoder text_len vs DiT text_len, model.json's config vs the file's, the
 * KV policy named in "generate". Prints a report (text, or one JSON object when
 * json) to out. Returns the number of problems (0: the directory is usable). */
int sk_model_dir_check(const sk_model_dir *m, int json, FILE *out);

#endif
