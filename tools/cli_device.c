/* cli_device.c - resolving --device auto / cpu-ref (see cli_device.h). */
#include "tools/cli_device.h"

#include <stdlib.h>
#include <string.h>

#include "runtime/core/log.h"
#include "runtime/engine/device.h"

const char *sk_cli_device_api_name(int device)
{
    switch (device) {
    case SK_DEV_CUDA: return "cuda";
    case SK_DEV_AUTO: return "auto";
    case SK_DEV_CPU_REF: return "cpu-ref";
    default: return "cpu";
    }
}

void sk_cli_device_resolve(const char *cmd, int *device)
{
    const char *why = "";
    if (*device == SK_DEV_AUTO) {
        const int cuda = sk_device_auto()[1] == 'u';
        *device = cuda ? SK_DEV_CUDA : SK_DEV_CPU;
        why = cuda ? " (--device auto: a GPU is present)"
                   : " (--device auto: no CUDA build or no GPU; --device cuda to insist)";
    } else if (*device == SK_DEV_CPU_REF) {
        setenv("SK_CPU_REF", "1", 1);
        *device = SK_DEV_CPU;
    }
    const char *name = *device == SK_DEV_CUDA ? "cuda" : "cpu";
    if (!strncmp(cmd, "sinkstream ", 11)) cmd += 11; /* the log prefix says sinkstream already */
    sk_log(SK_LOG_INFO, "%s: device %s%s", cmd, sk_device_describe(name), why);
}
