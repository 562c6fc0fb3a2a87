/* log.c - see log.h. */
#include "runtime/core/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int g_level = -1; /* -1: not yet read from the environment */

int sk_log_parse_level(const char *s)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    for (int i = 0; i < 4; i++)
        if (s && strcmp(s, names[i]) == 0) return i;
    return -1;
}

sk_log_level sk_log_get_level(void)
{
    if (g_level < 0) {
        int env = sk_log_parse_level(getenv("SINKSTREAM_LOG"));
        g_level = env >= 0 ? env : SK_LOG_INFO;
    }
    return (sk_log_level)g_level;
}

void sk_log_set_level(sk_log_level lvl) { g_level = (int)lvl; }

static int g_libav_verbose;
void sk_log_set_libav_verbose(int on) { g_libav_verbose = on; }
int sk_log_libav_verbose(void) { return g_libav_verbose; }

void sk_log(sk_log_level lvl, const char *fmt, ...)
{
    if ((int)lvl > (int)sk_log_get_level()) return;
    static const char *const tags[] = {"error", "warn", "info", "debug"};
    char buf[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    fprintf(stderr, "sinkstream: %s: %s\n", tags[lvl], buf);
}
