/* sk_cuda.h - CUDA-backend extras for tools and GPU tests (C-callable).
 * Model code never needs this header: it talks to the backend through
 * runtime/backend.h only. */
#ifndef SK_CUDA_H
#define SK_CUDA_H

#include "runtime/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The backend's CUDA stream (a cudaStream_t) so benchmarks can record events
 * on it; NULL when be is not a CUDA backend or the build has no CUDA. */
void *sk_cuda_backend_stream(sk_backend *be);

#ifdef __cplusplus
}
#endif
#endif
