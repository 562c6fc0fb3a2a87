/* status.c - thread-local error context behind status.h. */
#include "runtime/core/status.h"

#include <stdio.h>
#include <string.h>

#define SK_MSG_CAP 2048

static _Thread_local char tl_msg[SK_MSG_CAP];
static _Thread_local char tl_where[256];

static const char *const k_names[SK_E_COUNT_] = {
    "SK_OK",        "SK_E_INVALID_ARG", "SK_E_IO",   "SK_E_FORMAT",
    "SK_E_SHAPE",   "SK_E_DTYPE",       "SK_E_OOM",  "SK_E_CUDA",
    "SK_E_FFMPEG",  "SK_E_NET",         "SK_E_UNSUPPORTED", "SK_E_INTERNAL",
};

const char *sk_status_name(sk_status s)
{
    if ((int)s < 0 || s >= SK_E_COUNT_) return "SK_E_UNKNOWN";
    return k_names[s];
}

sk_status sk_error_set(sk_status s, const char *file, int line, const char *func,
                       const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tl_msg, sizeof tl_msg, fmt, ap);
    va_end(ap);
    const char *base = file ? strrchr(file, '/') : NULL;
    snprintf(tl_where, sizeof tl_where, "%s:%d (%s)", base ? base + 1 : (file ? file : "?"),
             line, func ? func : "?");
    return s;
}

void sk_error_prefix(const char *fmt, ...)
{
    char pre[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pre, sizeof pre, fmt, ap);
    va_end(ap);
    /* pre + old message, truncated to the buffer (a long message loses its tail) */
    char tmp[SK_MSG_CAP];
    size_t np = strlen(pre);
    if (np >= SK_MSG_CAP) np = SK_MSG_CAP - 1;
    memcpy(tmp, pre, np);
    size_t nm = strnlen(tl_msg, SK_MSG_CAP - 1);
    if (nm > SK_MSG_CAP - 1 - np) nm = SK_MSG_CAP - 1 - np;
    memcpy(tmp + np, tl_msg, nm);
    tmp[np + nm] = 0;
    memcpy(tl_msg, tmp, np + nm + 1);
}

const char *sk_error_message(void) { return tl_msg; }
const char *sk_error_where(void) { return tl_where; }
void sk_error_clear(void) { tl_msg[0] = 0; tl_where[0] = 0; }
