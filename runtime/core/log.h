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

#define SK_LOGE(...) sk_log(SK_LOG_ERROR, __VA_ARGS__)
#define SK_LOGW(...) sk_log(SK_LOG_WARN, __VA_ARGS__)
#define SK_LOGI(...) sk_log(SK_LOG_INFO, __VA_ARGS__)
#define SK_LOGD(...) sk_log(SK_LOG_DEBUG, __VA_ARGS__)

#ifdef __cplusplus
}
#endif
#endif
