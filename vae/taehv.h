/* taehv.h - TAEHV, the tiny video autoencoder for Wan (taew2_1, taew2_2).
 *
 * Architecture and facts: docs/spec-taehv-umt5.md Part A (upstream:
 * madebyollin/taehv). The model is immutable once loaded and may serve several
 * streams; a stream (decoder or encoder) owns its MemBlock states and a
 * scratch arena sized once at creation, so pushing a chunk allocates nothing.
 *
 * Decoder: latents [n, z, h, w] (normalized Wan latents, exactly what the DiT
 * produces; no scale/shift) -> RGB frames [T, 3, 8p*h, 8p*w] in [0, 1].
 * Streaming is the exact "chunked stateful" mode: each chunk runs in parallel
 * over its frames and every MemBlock carries the last input frame it saw in
 * the previous chunk (zeros before the first). The first 3 raw frames of a
 * stream are dropped once, so n latents pushed in total give 4n - 3 frames,
 * identical to a whole-clip decode whatever the chunking:
 *   first chunk of n latents -> 4n - 3 frames, every later chunk -> 4n.
 *
 * Encoder: RGB frames [n, 3, H, W] in [0, 1] -> latents [k, z, h, w].
 * Frames are grouped by 4 (latent i <- frames 4i..4i+3); a push returns every
 * latent whose 4 frames are complete and keeps up to 3 pending frames; flush
 * pads the last group by repeating the last frame (as upstream encode_video).
 *
 * Tensors passed in may live on the model's backend (any float dtype) or on
 * the host (be == NULL, data = host memory in the tensor's dtype). Outputs are
 * views into the stream's arena on the model's backend, dtype = the backend's
 * act_dtype, valid until the next push/flush/reset/free of that stream.
 */
#ifndef SK_VAE_TAEHV_H
#define SK_VAE_TAEHV_H

#include <stddef.h>
#include <stdint.h>

#include "runtime/core/backend.h"
#include "runtime/io/safetensors.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    SK_TAEHV_AUTO = 0, /* detect from tensor shapes                          */
    SK_TAEHV_W2_1,     /* taew2_1: z = 16, patch 1, 8x spatial (Wan 2.1 / 2.2 A14B) */
    SK_TAEHV_W2_2,     /* taew2_2: z = 48, patch 2, 16x spatial (Wan 2.2 TI2V-5B)  */
} sk_taehv_variant;

typedef struct {
    sk_taehv_variant variant;
    int latent_channels;   /* z: 16 or 48                                      */
    int patch;             /* p: 1 or 2 (pixel (un)shuffle)                    */
    int nf[4];             /* decoder widths (real models: 256, 128, 64, 64)   */
    int enc_width;         /* encoder width (real models: 64); 0 without encoder */
    int has_decoder, has_encoder;
    int t_upscale;         /* 4 raw frames per latent                          */
    int frames_to_trim;    /* 3, dropped once at the start of a decode stream  */
    int space_factor;      /* 8 * patch                                         */
} sk_taehv_config;

typedef struct {
    sk_taehv_variant variant; /* AUTO, or force one (checked against the shapes) */
    /* Conv weights are stored on the backend in the act dtype unless
     * set_weight_dtype != 0, then in weight_dtype (f32/f16/bf16; the backend's
     * conv converts). Biases always use the backend's act dtype. */
    int set_weight_dtype;
    sk_dtype weight_dtype;
    int need_encoder;         /* fail when the file has no encoder.* tensors     */
    int need_decoder;         /* fail when the file has no decoder.* tensors     */
} sk_taehv_load_opts;

/* Defaults: AUTO variant, weights in act dtype, decoder required. */
sk_taehv_load_opts sk_taehv_load_opts_default(void);

typedef struct sk_taehv sk_taehv;

/* Loads path (safetensors, upstream key names decoder.N... / encoder.N...).
 * Strict: a missing, mis-shaped, non-float or unexpected tensor is an error
 * naming it; taew2_2_super / LTX / other TAEHV checkpoints are rejected with a
 * message that says so. opts may be NULL (defaults). Logs what was detected. */
sk_status sk_taehv_load(sk_backend *be, const char *path, const sk_taehv_load_opts *opts,
                        sk_taehv **out);
/* Same from an opened file (label used in messages = f->path). */
sk_status sk_taehv_load_st(sk_backend *be, const sk_st_file *f, const sk_taehv_load_opts *opts,
                           sk_taehv **out);
void sk_taehv_free(sk_taehv **m); /* accepts NULL and *m == NULL */

const sk_taehv_config *sk_taehv_get_config(const sk_taehv *m);
sk_backend *sk_taehv_backend(const sk_taehv *m);
/* "taew2_1", "taew2_2", "auto" */
const char *sk_taehv_variant_name(sk_taehv_variant v);
/* Accepts "taew2_1", "taew2_2", "auto" (also "2.1", "2.2"); SK_E_INVALID_ARG with
 * the accepted list otherwise; "taew2_2_super" gets its own message. */
sk_status sk_taehv_variant_from_name(const char *s, sk_taehv_variant *out);
/* One line: "taew2_1 (z=16, patch 1, decoder 256/128/64/64, encoder 64)". */
const char *sk_taehv_describe(const sk_taehv *m, char *buf, size_t cap);

/* Output frames for n latents pushed in total (4n - 3, 0 for n = 0). */
int64_t sk_taehv_frames_for_latents(const sk_taehv_config *c, int64_t n);
/* Latents for t input frames (ceil(t / 4)). */
int64_t sk_taehv_latents_for_frames(const sk_taehv_config *c, int64_t t);

/* ---------------------------------------------------------------- decoder */
typedef struct sk_taehv_dec_stream sk_taehv_dec_stream;

/* A decode stream for latents of lat_h x lat_w, at most max_chunk latent frames
 * per push. Allocates its states and its whole scratch arena here. */
sk_status sk_taehv_dec_stream_create(const sk_taehv *m, int64_t lat_h, int64_t lat_w,
                                     int max_chunk, sk_taehv_dec_stream **out);
void sk_taehv_dec_stream_free(sk_taehv_dec_stream **s);
/* Back to the start of a stream (zero states, trim re-armed); no allocation. */
sk_status sk_taehv_dec_stream_reset(sk_taehv_dec_stream *s);
/* latents [n, z, lat_h, lat_w], 1 <= n <= max_chunk. frames_out gets a view
 * [T, 3, H, W]: T = 4n - 3 for the first chunk of a stream, 4n afterwards.
 * Argument errors leave the stream untouched; after a failure inside the
 * forward (a backend error) the MemBlock states are undefined: reset. */
sk_status sk_taehv_dec_stream_push(sk_taehv_dec_stream *s, const sk_tensor *latents,
                                   sk_tensor *frames_out);
/* The same, then the frames downloaded as host f32 [T, 3, H, W] into a buffer
 * the stream owns (allocated at the first call, sized for max_chunk; valid
 * until the next push): what sk_output_write_frames takes. */
sk_status sk_taehv_dec_stream_push_host(sk_taehv_dec_stream *s, const sk_tensor *latents,
                                        const float **rgb, int64_t *n_frames);
/* Output frame size in pixels. */
void sk_taehv_dec_stream_frame_size(const sk_taehv_dec_stream *s, int64_t *height,
                                    int64_t *width);
/* Latent frames pushed so far, frames returned so far. */
int64_t sk_taehv_dec_stream_latents(const sk_taehv_dec_stream *s);
int64_t sk_taehv_dec_stream_frames(const sk_taehv_dec_stream *s);
/* Bytes of scratch arena and of MemBlock state this stream holds. */
size_t sk_taehv_dec_stream_scratch_bytes(const sk_taehv_dec_stream *s);
size_t sk_taehv_dec_stream_state_bytes(const sk_taehv_dec_stream *s);

/* Whole clip: latents [F, z, h, w] -> *frames_out malloc'd host f32
 * [4F-3, 3, H, W] (shape in frames_shape). chunk <= 0 decodes all F at once
 * (upstream's parallel mode); otherwise streams in chunks of `chunk`. */
sk_status sk_taehv_decode_video(const sk_taehv *m, const sk_tensor *latents, int chunk,
                                float **frames_out, int64_t frames_shape[4]);

/* ---------------------------------------------------------------- encoder */
typedef struct sk_taehv_enc_stream sk_taehv_enc_stream;

/* An encode stream for frames of height x width pixels (multiples of patch),
 * at most max_chunk frames per push. */
sk_status sk_taehv_enc_stream_create(const sk_taehv *m, int64_t height, int64_t width,
                                     int max_chunk, sk_taehv_enc_stream **out);
void sk_taehv_enc_stream_free(sk_taehv_enc_stream **s);
sk_status sk_taehv_enc_stream_reset(sk_taehv_enc_stream *s);
/* frames [n, 3, H, W], 1 <= n <= max_chunk. latents_out gets a view
 * [k, z, h, w]; k may be 0 (then latents_out->data may be NULL). */
sk_status sk_taehv_enc_stream_push(sk_taehv_enc_stream *s, const sk_tensor *frames,
                                   sk_tensor *latents_out);
/* End of stream: pads the pending frames (if any) with copies of the last frame
 * and returns the last latent (k = 0 or 1). The stream is then reset. */
sk_status sk_taehv_enc_stream_flush(sk_taehv_enc_stream *s, sk_tensor *latents_out);
/* Latent grid for this stream (h, w). */
void sk_taehv_enc_stream_latent_size(const sk_taehv_enc_stream *s, int64_t *h, int64_t *w);

/* Whole clip: frames [T, 3, H, W] -> *latents_out malloc'd host f32
 * [ceil(T/4), z, h, w]. chunk <= 0: all frames in one push. */
sk_status sk_taehv_encode_video(const sk_taehv *m, const sk_tensor *frames, int chunk,
                                float **latents_out, int64_t latents_shape[4]);

#ifdef __cplusplus
}
#endif
#endif
