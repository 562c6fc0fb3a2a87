/* cuda_stub.c - stands in for the CUDA backend in builds without nvcc. */
#include "runtime/backend.h"

sk_status sk_backend_cuda_create(int device, sk_dtype act_dtype, sk_backend **out)
{
    (void)device; (void)act_dtype;
    *out = NULL;
    return SK_ERR(SK_E_UNSUPPORTED,
                  "cuda: this sinkstream was built without CUDA; rebuild with nvcc on PATH "
                  "(cmake -DSK_CUDA=ON) or use --device cpu");
}

#include "sk_cuda.h"

void *sk_cuda_backend_stream(sk_backend *be)
{
    (void)be;
    return NULL;
}
