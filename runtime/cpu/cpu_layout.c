/* cpu_layout.c - Wan (1,2,2) patchify / unpatchify and embedding lookup. */
#include "cpu_internal.h"

#include <string.h>

sk_status sk_cpu_patchify(sk_backend *be, sk_tensor *y, const sk_tensor *x)
{
    const int64_t F = x->shape[0], C = x->shape[1], H = x->shape[2], W = x->shape[3];
    const int64_t Hp = H / 2, Wp = W / 2;
    const float *xd = (const float *)x->data;
    float *yd = (float *)y->data;
    for (int64_t f = 0; f < F; f++)
        for (int64_t hp = 0; hp < Hp; hp++)
            for (int64_t wp = 0; wp < Wp; wp++) {
                float *tok = yd + ((f * Hp + hp) * Wp + wp) * C * 4;
                for (int64_t c = 0; c < C; c++)
                    for (int64_t q = 0; q < 2; q++)
                        for (int64_t r = 0; r < 2; r++)
                            tok[c * 4 + q * 2 + r] =
                                xd[((f * C + c) * H + 2 * hp + q) * W + 2 * wp + r];
            }
    return SK_OK;
}

sk_status sk_cpu_unpatchify(sk_backend *be, sk_tensor *y, const sk_tensor *x)
{
    const int64_t F = y->shape[0], C = y->shape[1], H = y->shape[2], W = y->shape[3];
    const int64_t Hp = H / 2, Wp = W / 2;
    const float *xd = (const float *)x->data;
    float *yd = (float *)y->data;
    for (int64_t f = 0; f < F; f++)
        for (int64_t hp = 0; hp < Hp; hp++)
            for (int64_t wp = 0; wp < Wp; wp++) {
                const float *tok = xd + ((f * Hp + hp) * Wp + wp) * C * 4;
                for (int64_t q = 0; q < 2; q++)
                    for (int64_t r = 0; r < 2; r++)
                        for (int64_t c = 0; c < C; c++)
                            yd[((f * C + c) * H + 2 * hp + q) * W + 2 * wp + r] =
                                tok[(q * 2 + r) * C + c];
            }
    return SK_OK;
}

sk_status sk_cpu_embedding(sk_backend *be, sk_tensor *y, const sk_tensor *table,
                           const sk_tensor *ids)
{
    const int64_t N = ids->shape[0], V = table->shape[0], D = table->shape[1];
    const int32_t *id = (const int32_t *)ids->data;
    /* check every id before writing anything */
    for (int64_t n = 0; n < N; n++)
        SK_CHECK(id[n] >= 0 && id[n] < V, SK_E_INVALID_ARG,
                 "op embedding: ids[%lld] = %d is outside the table's [0, %lld) rows; check the "
                 "tokenizer matches the model's vocabulary", (long long)n, id[n], (long long)V);
    float *yd = (float *)y->data;
    for (int64_t n = 0; n < N; n++) {
        if (table->dtype == SK_DTYPE_F32) {
            memcpy(yd + n * D, (const float *)table->data + (int64_t)id[n] * D,
                   (size_t)D * sizeof(float));
        } else {
            for (int64_t d = 0; d < D; d++)
                yd[n * D + d] = sk_cpu_ld(table->data, table->dtype, (int64_t)id[n] * D + d);
        }
    }
    return SK_OK;
}
