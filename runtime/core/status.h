/* status.h - error statuses with message context.
 *
 * Every fallible function returns sk_status and passes results through
 * out-parameters. On failure the function records a message in a
 * thread-local error context ("what failed: where (expected vs got); hint")
 * which the caller reads with sk_error_message(). SK_OK is 0.
 */
#ifndef SK_STATUS_H
#define SK_STATUS_H

#include <stdarg.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The same enum is declared in the public runtime/sinkstream.h; whichever header comes
 * first defines it (keep the two lists equal: tests/test_api.c checks the count). */
#ifndef SK_STATUS_ENUM_DEFINED
#define SK_STATUS_ENUM_DEFINED
typedef enum {
    SK_OK = 0,
    SK_E_INVALID_ARG,  /* a caller or user passed a bad value            */
    SK_E_IO,           /* open/read/write/mmap failed                     */
    SK_E_FORMAT,       /* a file is malformed                             */
    SK_E_SHAPE,        /* tensor shapes disagree                          */
    SK_E_DTYPE,        /* unsupported or mismatched dtype                 */
    SK_E_OOM,          /* host or device allocation failed                */
    SK_E_CUDA,         /* CUDA / cuBLAS / cuDNN error                     */
    SK_E_FFMPEG,       /* libav* error                                    */
    SK_E_NET,          /* network error or timeout                        */
    SK_E_UNSUPPORTED,  /* valid request this build or backend cannot do   */
    SK_E_INTERNAL,     /* broken invariant: a bug in sinkstream           */
    SK_E_COUNT_
} sk_status;
#endif

/* Short stable name of a status ("SK_E_SHAPE"). Never NULL. */
const char *sk_status_name(sk_status s);

/* Records a message for the current thread and returns s. The message replaces
 * any earlier one. file/line/func say where in our code it was raised (shown at
 * debug log level). */
sk_status sk_error_set(sk_status s, const char *file, int line, const char *func,
                       const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Prepends context ("loading 'x.safetensors': ") to the current message. */
void sk_error_prefix(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The last message recorded on this thread ("" if none). Valid until the next
 * sk_error_set/sk_error_clear on this thread. */
const char *sk_error_message(void);
const char *sk_error_where(void);
void sk_error_clear(void);

#define SK_ERR(status, ...) sk_error_set((status), __FILE__, __LINE__, __func__, __VA_ARGS__)

/* Propagate a failure unchanged. */
#define SK_TRY(expr)                         \
    do {                                     \
        sk_status sk_try_s_ = (expr);        \
        if (sk_try_s_ != SK_OK) return sk_try_s_; \
    } while (0)

/* Return status with a message if cond is false. */
#define SK_CHECK(cond, status, ...)                              \
    do {                                                         \
        if (!(cond)) return SK_ERR((status), __VA_ARGS__);       \
    } while (0)

/* Inside functions with a cleanup label: set st and jump. */
#define SK_TRY_GOTO(st, expr, label) \
    do { (st) = (expr); if ((st) != SK_OK) goto label; } while (0)

#ifdef __cplusplus
}
#endif
#endif
