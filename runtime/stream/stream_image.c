/* stream_image.c - LongLive 2.0 image-to-video: the conditioning latent frame
 * (stream.h sk_stream_set_image_latent; the clamp itself is in stream_unipc.c). */
#include "runtime/stream/stream.h"

sk_status sk_stream_set_image_latent(sk_stream *s, const float *lat, int64_t c, int64_t h,
                                     int64_t w)
{
    SK_CHECK(s && lat, SK_E_INVALID_ARG, "sk_stream_set_image_latent: NULL argument");
    SK_CHECK(s->p.sampler == SK_SAMPLER_UNIPC, SK_E_UNSUPPORTED,
             "image-to-video runs LongLive 2.0's UniPC sampler only (--sampler unipc); this "
             "stream re-noises (--sampler renoise)");
    SK_CHECK(s->next_frame == 0 && s->chunk_index == 0, SK_E_INVALID_ARG,
             "the image latent must be set before the first chunk (frame %lld already made)",
             (long long)s->next_frame);
    const int64_t C = s->x.shape[1], H = s->x.shape[2], W = s->x.shape[3];
    SK_CHECK(c == C && h == H && w == W, SK_E_SHAPE,
             "the image latent is [%lld, %lld, %lld] but the stream's latent frames are [%lld, "
             "%lld, %lld] (channels, height, width)", (long long)c, (long long)h, (long long)w,
             (long long)C, (long long)H, (long long)W);
    if (!s->image_lat.data) {
        int64_t sh[4] = {1, C, H, W};
        SK_TRY(sk_tensor_alloc(s->be, s->be->act_dtype, 4, sh, &s->image_lat));
    }
    sk_status st = sk_tensor_upload_f32(&s->image_lat, lat, (size_t)(C * H * W));
    if (st != SK_OK) sk_tensor_free(&s->image_lat);
    return st;
}
