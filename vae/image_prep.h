/* image_prep.h - a picture to the Wan2.2 VAE encoder's input, as LongLive 2.0's
 * I2V does it (utils/dataset.py ImagePromptDataset._load_image + inference.py):
 * RGB / 255 -> torchvision Resize((H, W), antialias=True) on the float tensor
 * (bilinear with PIL-style antialiasing, no crop, aspect not kept) ->
 * Normalize(0.5, 0.5) to [-1, 1] -> .to(float16) (the dataset) -> .to(bfloat16)
 * (inference.py, before the VAE). */
#ifndef SK_VAE_IMAGE_PREP_H
#define SK_VAE_IMAGE_PREP_H

#include <stdint.h>

#include "runtime/core/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* dst [C, H, W] = F.interpolate(src [C, h, w], (H, W), mode="bilinear",
 * align_corners=False, antialias=True): separable, width first. */
sk_status sk_resize_bilinear_aa(const float *src, int64_t C, int64_t h, int64_t w, float *dst,
                                int64_t H, int64_t W);

/* rgb: h x w interleaved 8-bit RGB (stb_image's layout). out: [3, H, W] in [-1, 1].
 * round_like_upstream: the values rounded to f16 then bf16 as LongLive 2.0 does. */
sk_status sk_image_prep(const uint8_t *rgb, int64_t w, int64_t h, int64_t W, int64_t H,
                        int round_like_upstream, float *out);

#ifdef __cplusplus
}
#endif
#endif
