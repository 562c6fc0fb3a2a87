/* device.c - a backend by device name (see device.h). */
#include "runtime/engine/device.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/sk_cuda.h"
#include "runtime/core/log.h"
#include "runtime/cpu/cpu_fast.h"

int sk_device_cpu_ref_forced(void)
{
    const char *e = getenv("SK_CPU_REF");
    return e && *e && strcmp(e, "0") != 0;
}

const char *sk_device_auto(void)
{
    return sk_cuda_device_count() > 0 ? "cuda" : "cpu";
}

const char *sk_device_describe(const char *name)
{
    static char buf[160];
    if (strcmp(name, "cpu-ref") == 0 || (strcmp(name, "cpu") == 0 && sk_device_cpu_ref_forced()))
        snprintf(buf, sizeof buf, "cpu-ref (the reference loops, one thread%s)",
                 strcmp(name, "cpu") == 0 ? "; SK_CPU_REF is set" : "");
    else if (strcmp(name, "cpu") == 0)
        snprintf(buf, sizeof buf, "cpu (%s)", sk_cpu_fast_describe());
    else
        snprintf(buf, sizeof buf, "%s", name);
    return buf;
}

sk_status sk_backend_create(const char *name, sk_dtype act_dtype, sk_backend **out)
{
    SK_CHECK(name && out, SK_E_INVALID_ARG, "backend: no name given");
    if (strcmp(name, "auto") == 0) name = sk_device_auto();
    if (strcmp(name, "cpu") == 0)
        return sk_device_cpu_ref_forced() ? sk_backend_cpu_create(out)
                                          : sk_backend_cpu_fast_create(out);
    if (strcmp(name, "cpu-ref") == 0) return sk_backend_cpu_create(out);
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
                     "backend: unknown device '%s'; expected auto, cpu, cpu-ref, cuda or cuda:N",
                     name);
        }
        return sk_backend_cuda_create(dev, act_dtype, out);
    }
    return SK_ERR(SK_E_INVALID_ARG,
                  "backend: unknown device '%s'; expected auto, cpu, cpu-ref, cuda or cuda:N", name);
}
