/* device.c - a backend by device name (see device.h). */
#include "runtime/engine/device.h"

#include <stdlib.h>
#include <string.h>

#include "runtime/core/log.h"

sk_status sk_backend_create(const char *name, sk_dtype act_dtype, sk_backend **out)
{
    SK_CHECK(name && out, SK_E_INVALID_ARG, "backend: no name given");
    if (strcmp(name, "cpu") == 0) return sk_backend_cpu_create(out);
    if (strncmp(name, "cuda", 4) == 0) {
        int dev = 0;
        if (name[4] == ':') {
            char *end = NULL;
            long d = strtol(name + 5, &end, 10);
            SK_CHECK(end && *end == 0 && d >= 0 && d < 64, SK_E_INVALID_ARG,
                     "backend: bad device '%s'; expected cuda or cuda:N", name);
            dev = (int)d;
        } else {
            SK_CHECK(name[4] == 0, SK_E_INVALID_ARG,
                     "backend: unknown device '%s'; expected cpu, cuda or cuda:N", name);
        }
        return sk_backend_cuda_create(dev, act_dtype, out);
    }
    return SK_ERR(SK_E_INVALID_ARG, "backend: unknown device '%s'; expected cpu, cuda or cuda:N",
                  name);
}
