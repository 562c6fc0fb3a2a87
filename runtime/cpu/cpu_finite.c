/* cpu_finite.c - flag_nonfinite: the CPU reference of the per-chunk NaN/Inf
 * check (issue 15 #7). */
#include <math.h>
#include <stdint.h>

#include "runtime/cpu/cpu_internal.h"

sk_status sk_cpu_flag_nonfinite(sk_backend *be, const sk_tensor *x, void *flag)
{
    (void)be;
    const int64_t n = sk_tensor_numel(x);
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(sk_cpu_ld(x->data, x->dtype, i))) {
            *(int32_t *)flag = 1;
            return SK_OK;
        }
    return SK_OK;
}
