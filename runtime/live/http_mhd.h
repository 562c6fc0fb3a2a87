/* http_mhd.h - the libmicrohttpd plumbing both sinkstream HTTP servers share
 * (the control API of control_http.c and `sinkstream serve`'s serve_http.c):
 * a request's body accumulated up to a bound, its release when the request
 * completes, libmicrohttpd's log lines into ours, and the daemon started
 * with the connection bounds of http_guard.h. The decisions about a
 * request (token, Host, Origin) are http_guard.h's; this is the mechanics.
 * Only with libmicrohttpd (SK_HAVE_MHD). */
#ifndef SK_HTTP_MHD_H
#define SK_HTTP_MHD_H

#ifdef SK_HAVE_MHD

#include <stdarg.h>
#include <stddef.h>
#include <sys/socket.h>

#include <microhttpd.h>

#ifdef __cplusplus
extern "C" {
#endif

#if MHD_VERSION < 0x00097002
typedef int sk_mhd_result;
#else
typedef enum MHD_Result sk_mhd_result;
#endif

/* A request's state (*con_cls of the access handler): its body so far. */
typedef struct {
    char *body;   /* NUL-terminated; NULL while empty */
    size_t n;
    int too_big;  /* more than the bound arrived: answer 413 once it is all read */
    int refused;  /* answered at the header stage: the body is discarded */
} sk_http_req;

/* The first call of a request: a zeroed state in *con_cls (NULL: out of memory). */
sk_http_req *sk_http_req_new(void **con_cls);

/* A call with body data: appends it while the body stays within max bytes (past
 * that, marks too_big and keeps nothing more), discards it when refused, and
 * consumes it (*upload_size = 0). MHD_YES, or MHD_NO when out of memory. */
sk_mhd_result sk_http_req_append(sk_http_req *r, const char *upload, size_t *upload_size,
                                 size_t max);

/* 1 when the request's Content-Length header says more than max bytes. */
int sk_http_content_length_over(struct MHD_Connection *conn, size_t max);

/* "body over the limit of MAX bytes", in buf. */
const char *sk_http_too_big_message(char *buf, size_t n, size_t max);

/* MHD_OPTION_NOTIFY_COMPLETED: frees the sk_http_req of a request. */
void sk_http_req_done(void *cls, struct MHD_Connection *conn, void **con_cls,
                      enum MHD_RequestTerminationCode toe);

/* MHD_OPTION_EXTERNAL_LOGGER: libmicrohttpd's messages at debug level, each
 * prefixed by cls (a string, e.g. "serve: http"). */
void sk_http_mhd_log(void *cls, const char *fmt, va_list ap);

/* MHD_start_daemon on the address ss with handler(cls) and the connection bounds
 * of both servers: max_connections in all, SK_HTTP_MAX_CONN_PER_IP per client
 * address, SK_HTTP_IDLE_TIMEOUT_S idle timeout, SK_HTTP_CONN_MEMORY per
 * connection (slow clients, issue 15 #3); requests are freed by
 * sk_http_req_done and logged with log_prefix. NULL when it cannot listen. */
struct MHD_Daemon *sk_http_daemon_start(unsigned flags, const struct sockaddr_storage *ss,
                                        MHD_AccessHandlerCallback handler, void *cls,
                                        unsigned max_connections, const char *log_prefix);

#ifdef __cplusplus
}
#endif

#endif /* SK_HAVE_MHD */
#endif
