/* log.h - leveled logging to stderr. The level comes from sk_log_set_level()
 * or the SINKSTREAM_LOG environment variable (error|warn|info|debug). */
#ifndef SK_LOG_H
#define SK_LOG_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { SK_LOG_ERROR = 0, SK_LOG_WARN, SK_LOG_INFO, SK_LOG_DEBUG } sk_log_level;

void sk_log_set_level(sk_log_level lvl);
sk_log_level sk_log_get_level(void);
/* Parses "error|warn|info|debug"; returns -1 if unknown. */
int sk_log_parse_level(const char *s);
/* -vv: FFmpeg's own verbose lines too (runtime/output routes libav's log
 * through sk_log; by default only its warnings and errors) */
void sk_log_set_libav_verbose(int on);
int sk_log_libav_verbose(void);
void sk_log(sk_log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Copies src into dst (cap bytes, NUL-terminated, truncated) with every
 * control byte (< 0x20, 0x7f) written as \n, \r, \t or \xNN, so text from
 * a network peer or stdin cannot forge a log line or drive the terminal.
 * sk_log applies it to every message. Returns dst. */
char *sk_log_escape(char *dst, unsigned long cap, const char *src);

#define SK_LOGE(...) sk_log(SK_LOG_ERROR, __VA_ARGS__)
#define SK_LOGW(...) sk_log(SK_LOG_WARN, __VA_ARGS__)
#define SK_LOGI(...) sk_log(SK_LOG_INFO, __VA_ARGS__)
#define SK_LOGD(...) sk_log(SK_LOG_DEBUG, __VA_ARGS__)

#ifdef __cplusplus
}
#endif
#endif
