/* cpu_noise.c - counter-based Gaussian noise (runtime/core/noise.h): y viewed as
 * [F, E] with F = shape[0] gets sk_noise_value(seed, frame0 + f, stream, e). */
#include "cpu_internal.h"

#include "runtime/core/noise.h"

sk_status sk_cpu_noise(sk_backend *be, sk_tensor *y, uint64_t seed, int64_t frame0,
                       uint32_t stream)
{
    const int64_t F = y->shape[0];
    const int64_t E = F ? sk_tensor_numel(y) / F : 0;
    for (int64_t f = 0; f < F; f++)
        for (int64_t e = 0; e < E; e++) {
            const float v = sk_noise_value(seed, frame0 + f, stream, e);
            const int64_t i = f * E + e;
            switch (y->dtype) {
            case SK_DTYPE_F32: ((float *)y->data)[i] = v; break;
            case SK_DTYPE_F16: ((uint16_t *)y->data)[i] = sk_f32_to_f16(v); break;
            case SK_DTYPE_BF16: ((uint16_t *)y->data)[i] = sk_f32_to_bf16(v); break;
            default:
                return SK_ERR(SK_E_DTYPE, "op noise: cpu cannot write %s noise",
                              sk_dtype_name(y->dtype));
            }
        }
    return SK_OK;
}
