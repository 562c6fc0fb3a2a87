/* vae_pipe.c - see vae_pipe.h. */
#include "runtime/stream/vae_pipe.h"

#include <stdlib.h>
#include <string.h>

#include "cuda/sk_cuda.h"
#include "runtime/core/dtype.h"
#include "runtime/core/log.h"

struct sk_vae_pipe {
    sk_backend *dit_be, *vae_be;
    sk_taehv_dec_stream *dec;
    int overlap, host;
    int64_t H, W;
    int max_chunk;
    /* overlapped */
    sk_tensor in;                  /* [max_chunk, z, h, w] on vae_be, the DiT's act dtype */
    sk_cuda_event *ev_x0;          /* DiT stream: the latents were copied into `in` */
    sk_cuda_event *ev_read;        /* VAE stream: the decode has read `in` */
    sk_cuda_event *ev_done[2];     /* VAE stream: slot's frames are on the host */
    void *raw[2];                  /* page-locked [max frames, 3, H, W] act dtype */
    float *rgb;                    /* host f32 of the collected chunk */
    int64_t pend_n[2];             /* frames in a slot waiting to be collected */
    int slot;                      /* slot of the next push */
    int have_read;                 /* ev_read has been recorded */
    size_t frame_elems;
};

int sk_vae_pipe_want_overlap(sk_backend *dit_be)
{
    if (!sk_cuda_backend_stream(dit_be)) return 0;
    const char *e = getenv("SK_NO_VAE_OVERLAP");
    return !(e && *e && strcmp(e, "0") != 0);
}

sk_status sk_vae_pipe_backend_create(sk_backend *dit_be, sk_backend **out)
{
    const int dev = sk_cuda_backend_device(dit_be);
    SK_CHECK(dev >= 0, SK_E_UNSUPPORTED, "vae pipe: the DiT's backend is not CUDA");
    return sk_backend_cuda_create(dev, dit_be->act_dtype, out);
}

sk_status sk_vae_pipe_create(sk_backend *dit_be, const sk_taehv *vae, int64_t lat_h,
                             int64_t lat_w, int max_chunk, int host, sk_vae_pipe **out)
{
    SK_CHECK(out && dit_be && vae && max_chunk > 0, SK_E_INVALID_ARG, "vae pipe: bad arguments");
    *out = NULL;
    sk_vae_pipe *p = calloc(1, sizeof *p);
    SK_CHECK(p, SK_E_OOM, "vae pipe: out of host memory");
    p->dit_be = dit_be;
    p->vae_be = sk_taehv_backend(vae);
    p->host = host;
    p->max_chunk = max_chunk;
    p->overlap = p->vae_be != dit_be;
    sk_status st = sk_taehv_dec_stream_create(vae, lat_h, lat_w, max_chunk, &p->dec);
    if (st != SK_OK) goto fail;
    sk_taehv_dec_stream_frame_size(p->dec, &p->H, &p->W);
    if (p->overlap) {
        if (!sk_cuda_backend_stream(dit_be) || !sk_cuda_backend_stream(p->vae_be) ||
            p->vae_be->act_dtype != dit_be->act_dtype) {
            st = SK_ERR(SK_E_INVALID_ARG, "vae pipe: an overlapped decode needs two CUDA "
                        "backends of one activation dtype");
            goto fail;
        }
        const sk_taehv_config *vc = sk_taehv_get_config(vae);
        int64_t shp[4] = {max_chunk, vc->latent_channels, lat_h, lat_w};
        if ((st = sk_tensor_alloc(p->vae_be, dit_be->act_dtype, 4, shp, &p->in)) != SK_OK) goto fail;
        if ((st = sk_cuda_event_create(&p->ev_x0)) != SK_OK ||
            (st = sk_cuda_event_create(&p->ev_read)) != SK_OK ||
            (st = sk_cuda_event_create(&p->ev_done[0])) != SK_OK ||
            (st = sk_cuda_event_create(&p->ev_done[1])) != SK_OK)
            goto fail;
        p->frame_elems = (size_t)(3 * p->H * p->W);
        if (host) {
            size_t nfr = (size_t)sk_taehv_frames_for_latents(vc, max_chunk) + 3; /* 4n */
            size_t es = sk_dtype_size(dit_be->act_dtype);
            for (int i = 0; i < 2; i++)
                if ((st = sk_cuda_host_alloc(nfr * p->frame_elems * es, &p->raw[i])) != SK_OK)
                    goto fail;
            p->rgb = malloc(nfr * p->frame_elems * sizeof(float));
            if (!p->rgb) { st = SK_ERR(SK_E_OOM, "vae pipe: out of host memory"); goto fail; }
        }
        SK_LOGI("decode: TAEHV on a second CUDA stream, overlapped with the next chunk's "
                "DiT (SK_NO_VAE_OVERLAP=1: in turn)");
    }
    *out = p;
    return SK_OK;
fail:
    sk_vae_pipe_free(&p);
    return st;
}

static sk_status wait_all(sk_vae_pipe *p)
{
    if (p->overlap) return sk_backend_sync(p->vae_be);
    return SK_OK;
}

void sk_vae_pipe_free(sk_vae_pipe **pp)
{
    if (!pp || !*pp) return;
    sk_vae_pipe *p = *pp;
    if (p->overlap && p->vae_be) (void)sk_backend_sync(p->vae_be);
    sk_taehv_dec_stream_free(&p->dec);
    sk_tensor_free(&p->in);
    sk_cuda_event_free(&p->ev_x0);
    sk_cuda_event_free(&p->ev_read);
    sk_cuda_event_free(&p->ev_done[0]);
    sk_cuda_event_free(&p->ev_done[1]);
    for (int i = 0; i < 2; i++) sk_cuda_host_free(p->raw[i]);
    free(p->rgb);
    free(p);
    *pp = NULL;
}

sk_status sk_vae_pipe_reset(sk_vae_pipe *p)
{
    SK_TRY(wait_all(p));
    p->pend_n[0] = p->pend_n[1] = 0;
    return sk_taehv_dec_stream_reset(p->dec);
}

int sk_vae_pipe_overlapped(const sk_vae_pipe *p) { return p && p->overlap; }
sk_backend *sk_vae_pipe_vae_backend(const sk_vae_pipe *p) { return p ? p->vae_be : NULL; }

void sk_vae_pipe_frame_size(const sk_vae_pipe *p, int64_t *h, int64_t *w)
{
    *h = p->H;
    *w = p->W;
}

/* the frames of slot s to host f32 (waits for them) */
static sk_status collect(sk_vae_pipe *p, int s, const float **rgb, int64_t *n)
{
    *n = p->pend_n[s];
    if (rgb) *rgb = NULL;
    if (!*n) return SK_OK;
    p->pend_n[s] = 0;
    SK_TRY(sk_cuda_event_sync(p->ev_done[s]));
    if (!p->host) return SK_OK;
    SK_TRY(sk_convert(p->rgb, SK_DTYPE_F32, p->raw[s], p->dit_be->act_dtype,
                      (size_t)*n * p->frame_elems));
    if (rgb) *rgb = p->rgb;
    return SK_OK;
}

sk_status sk_vae_pipe_push(sk_vae_pipe *p, const sk_tensor *x0, const float **rgb,
                           int64_t *n_frames)
{
    if (rgb) *rgb = NULL;
    *n_frames = 0;
    if (!p->overlap) {
        if (p->host) return sk_taehv_dec_stream_push_host(p->dec, x0, rgb, n_frames);
        sk_tensor fr;
        SK_TRY(sk_taehv_dec_stream_push(p->dec, x0, &fr));
        *n_frames = fr.shape[0];
        return SK_OK;
    }
    SK_CHECK(x0->be == p->dit_be && x0->dtype == p->in.dtype && x0->ndim == 4 &&
                 x0->shape[0] >= 1 && x0->shape[0] <= p->max_chunk &&
                 sk_tensor_numel(x0) / x0->shape[0] == sk_tensor_numel(&p->in) / p->in.shape[0],
             SK_E_SHAPE, "vae pipe: latents do not fit the decoder's input");
    const int s = p->slot;
    /* the DiT stream copies the latents once the VAE has read the previous ones */
    if (p->have_read) SK_TRY(sk_cuda_event_wait(p->dit_be, p->ev_read));
    sk_tensor in = sk_tensor_rows(&p->in, 0, x0->shape[0]);
    SK_TRY(sk_cuda_copy_async(p->dit_be, in.data, x0->data, sk_tensor_nbytes(x0)));
    SK_TRY(sk_cuda_event_record(p->ev_x0, p->dit_be));
    SK_TRY(sk_cuda_event_wait(p->vae_be, p->ev_x0));
    sk_tensor fr;
    SK_TRY(sk_taehv_dec_stream_push(p->dec, &in, &fr));
    SK_TRY(sk_cuda_event_record(p->ev_read, p->vae_be));
    p->have_read = 1;
    /* the other slot holds the previous chunk: collected before this one's copy lands */
    const float *prev = NULL;
    int64_t prev_n = 0;
    if (p->host) {
        SK_CHECK(fr.dtype == p->dit_be->act_dtype, SK_E_INTERNAL, "vae pipe: frames dtype");
        SK_TRY(sk_cuda_download_async(p->vae_be, p->raw[s], fr.data, sk_tensor_nbytes(&fr)));
    }
    SK_TRY(sk_cuda_event_record(p->ev_done[s], p->vae_be));
    p->pend_n[s] = fr.shape[0];
    p->slot = s ^ 1;
    SK_TRY(collect(p, s ^ 1, &prev, &prev_n));
    if (rgb) *rgb = prev;
    *n_frames = prev_n;
    return SK_OK;
}

sk_status sk_vae_pipe_flush(sk_vae_pipe *p, const float **rgb, int64_t *n_frames)
{
    if (rgb) *rgb = NULL;
    *n_frames = 0;
    if (!p->overlap) return SK_OK;
    return collect(p, p->slot ^ 1, rgb, n_frames);
}
