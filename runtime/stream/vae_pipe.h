/* vae_pipe.h - the TAEHV decode of a chunk overlapped with the DiT's next chunk.
 *
 * Used by sessions (runtime/engine/session.c) and `sinkstream bench --with-vae`. Two modes:
 *  - overlapped: the decoder's model lives on a second CUDA backend of the DiT's
 *    device (its own stream, workspace and scratch). push copies the chunk's
 *    latents on the DiT stream into a buffer of the VAE backend (after the VAE
 *    has finished reading the previous chunk's), the VAE stream waits for that
 *    copy, decodes, and copies the frames to page-locked host memory; the host
 *    collects them one chunk later, while the GPU runs the next chunk's DiT.
 *  - sequential (CPU, one backend, or SK_NO_VAE_OVERLAP=1 / --no-overlap): push
 *    decodes at once (sk_taehv_dec_stream_push_host) and returns this chunk's
 *    frames.
 * The frames are bitwise the same in both modes (same kernels, same inputs).
 * Caller loop: push each chunk and write the frames it returns (n may be 0),
 * then flush and write what it returns. Frames are host f32 [n, 3, H, W], valid
 * until the next push/flush.
 */
#ifndef SK_STREAM_VAE_PIPE_H
#define SK_STREAM_VAE_PIPE_H

#include <stdint.h>

#include "runtime/core/backend.h"
#include "vae/taehv.h"

typedef struct sk_vae_pipe sk_vae_pipe;

/* 1 when overlap is possible and not disabled: dit_be is CUDA and
 * SK_NO_VAE_OVERLAP is unset or "0". Then load the VAE on a backend made with
 * sk_vae_pipe_backend_create, else on dit_be. */
int sk_vae_pipe_want_overlap(sk_backend *dit_be);
/* A second backend on dit_be's device with the same activation dtype. */
sk_status sk_vae_pipe_backend_create(sk_backend *dit_be, sk_backend **out);

/* vae loaded on dit_be (sequential) or on another CUDA backend of the same device
 * (overlapped). host: 1 when push/flush return host frames; 0 keeps them on the
 * device (bench without an encoder). */
sk_status sk_vae_pipe_create(sk_backend *dit_be, const sk_taehv *vae, int64_t lat_h,
                             int64_t lat_w, int max_chunk, int host, sk_vae_pipe **out);
void sk_vae_pipe_free(sk_vae_pipe **p);
/* Back to the start of a stream (decoder states); waits for pending work first. */
sk_status sk_vae_pipe_reset(sk_vae_pipe *p);
int sk_vae_pipe_overlapped(const sk_vae_pipe *p);
sk_backend *sk_vae_pipe_vae_backend(const sk_vae_pipe *p);
void sk_vae_pipe_frame_size(const sk_vae_pipe *p, int64_t *h, int64_t *w);

/* x0: the chunk's latents on dit_be. *n_frames frames come back in *rgb (host
 * mode; NULL otherwise): the previous chunk's when overlapped, this one's when
 * sequential, 0 when none. *n_frames counts frames decoded even in device mode. */
sk_status sk_vae_pipe_push(sk_vae_pipe *p, const sk_tensor *x0, const float **rgb,
                           int64_t *n_frames);
/* The last chunk's frames when overlapped (waits for them); 0 frames otherwise. */
sk_status sk_vae_pipe_flush(sk_vae_pipe *p, const float **rgb, int64_t *n_frames);

#endif
