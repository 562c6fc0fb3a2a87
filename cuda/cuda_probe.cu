// cuda_probe.cu - how many CUDA devices this process can use (for --device auto).
#include <cuda_runtime.h>

extern "C" int sk_cuda_device_count(void)
{
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError(); // no driver / no device: clear the sticky error
        return 0;
    }
    return n;
}
