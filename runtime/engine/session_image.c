/* session_image.c - sk_session_set_image_latent (runtime/sinkstream.h): LongLive
 * 2.0 image-to-video on a session's stream (runtime/stream/stream_image.c). */
#include <math.h>

#include "runtime/engine/engine_impl.h"

sk_status sk_session_set_image_latent(sk_session *s, const float *latent, int64_t c, int64_t h,
                                      int64_t w)
{
    SK_API_SESSION(s);
    SK_CHECK(latent, SK_E_INVALID_ARG, "sk_session_set_image_latent: latent is NULL");
    SK_CHECK(s->s, SK_E_UNSUPPORTED, "sk_session_set_image_latent: image-to-video is not "
             "supported on a pipelined session (--gpus / --pp-stages)");
    SK_CHECK(s->chunks == 0 && !s->finished, SK_E_INVALID_ARG, "sk_session_set_image_latent: "
             "after the first step (%lld chunks made); set the image before it",
             (long long)s->chunks);
    SK_CHECK(!s->v2v, SK_E_UNSUPPORTED, "sk_session_set_image_latent: the session has a video "
             "input (--input / sk_session_attach_input); image-to-video and video-to-video do not "
             "combine (the image would replace the input's first frame); use one of them");
    const int64_t n = c * h * w;
    for (int64_t i = 0; i < n; i++)
        SK_CHECK(isfinite(latent[i]), SK_E_INVALID_ARG, "sk_session_set_image_latent: value %lld "
                 "is %s; expected a finite latent", (long long)i, isnan(latent[i]) ? "NaN" : "Inf");
    return sk_stream_set_image_latent(s->s, latent, c, h, w);
}
