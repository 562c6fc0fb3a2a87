/* tensor.h - the tensor descriptor.
 *
 * Shape order is PyTorch's: outermost first, last dimension contiguous, so
 * safetensors files and PyTorch fixtures need no reversal. Tensors here are
 * always dense and contiguous; a "view" is a pointer into another tensor's
 * memory and owns nothing.
 *
 * Dimension letters used in shape comments across sinkstream:
 *   F  latent frames           C  channels            H, W  latent height, width
 *   Hp, Wp  patch grid (H/2, W/2)                     S  tokens per frame = Hp*Wp
 *   N  tokens (= F*S)          D  model dim           NH  heads     HD  head dim
 *   L  layers / text length    K  reduction dim       T  video frames
 */
#ifndef SK_TENSOR_H
#define SK_TENSOR_H

#include <stdint.h>
#include <stddef.h>

#include "runtime/core/dtype.h"
#include "runtime/core/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SK_MAX_DIMS 6

typedef struct sk_backend sk_backend;

typedef struct sk_tensor {
    sk_dtype dtype;
    int ndim;
    int64_t shape[SK_MAX_DIMS];
    void *data;      /* host memory (cpu backend) or device memory (cuda)    */
    sk_backend *be;  /* backend whose memory `data` is; NULL for plain host  */
    int owns;        /* 1 if sk_tensor_free must release data through be    */
} sk_tensor;

int64_t sk_tensor_numel(const sk_tensor *t);
size_t sk_tensor_nbytes(const sk_tensor *t);
/* "[3, 4, 5]" into buf (always NUL-terminated). Returns buf. */
const char *sk_shape_str(const sk_tensor *t, char *buf, size_t cap);
const char *sk_shape_str_n(int ndim, const int64_t *shape, char *buf, size_t cap);
int sk_tensor_same_shape(const sk_tensor *a, const sk_tensor *b);
/* Total elements of dims [from, ndim). */
int64_t sk_tensor_inner(const sk_tensor *t, int from);

/* Descriptor only (no memory): data = NULL, be = NULL. */
sk_tensor sk_tensor_desc(sk_dtype dt, int ndim, const int64_t *shape);

/* Allocates an owned tensor on backend be. Free with sk_tensor_free. */
sk_status sk_tensor_alloc(sk_backend *be, sk_dtype dt, int ndim, const int64_t *shape,
                          sk_tensor *out);
/* Releases owned memory (no-op for views and NULL); leaves *t zeroed. */
void sk_tensor_free(sk_tensor *t);

/* A view of rows [start, start+n) of dim 0 (shares memory, owns nothing). */
sk_tensor sk_tensor_rows(const sk_tensor *t, int64_t start, int64_t n);
/* Same memory, new shape with equal element count (checked). */
sk_status sk_tensor_reshape(const sk_tensor *t, int ndim, const int64_t *shape, sk_tensor *out);

#ifdef __cplusplus
}
#endif
#endif
