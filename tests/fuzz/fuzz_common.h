/* fuzz_common.h - helpers of the libFuzzer targets: a private per-process
 * scratch directory (on /dev/shm when there is one) for the parsers that take
 * a path, and quiet logs. */
#ifndef SK_FUZZ_COMMON_H
#define SK_FUZZ_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/core/log.h"

static inline const char *fz_dir(void)
{
    static char dir[128];
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "%s/sk_fuzz_XXXXXX",
                 access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
        if (!mkdtemp(dir)) abort();
        sk_log_set_level(SK_LOG_ERROR); /* warnings per input would drown the fuzzer */
    }
    return dir;
}

/* dir/name with the bytes of data. */
static inline const char *fz_write(const char *name, const uint8_t *data, size_t size)
{
    static char p[256];
    snprintf(p, sizeof p, "%s/%s", fz_dir(), name);
    FILE *f = fopen(p, "wb");
    if (!f) abort();
    if (size && fwrite(data, 1, size, f) != size) abort();
    fclose(f);
    return p;
}

/* data as a NUL-terminated string (malloc'd, exactly size + 1 bytes). */
static inline char *fz_str(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s) abort();
    if (size) memcpy(s, data, size);
    s[size] = 0;
    return s;
}

#endif
