/* http_mhd.c - see http_mhd.h. */
#include "runtime/live/http_mhd.h"

/* (not empty without libmicrohttpd: ISO C wants a declaration) */
typedef int sk_http_mhd_unused;

#ifdef SK_HAVE_MHD

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/core/log.h"
#include "runtime/live/http_guard.h"

sk_http_req *sk_http_req_new(void **con_cls)
{
    sk_http_req *r = calloc(1, sizeof *r);
    *con_cls = r;
    return r;
}

sk_mhd_result sk_http_req_append(sk_http_req *r, const char *upload, size_t *upload_size,
                                 size_t max)
{
    const size_t add = *upload_size;
    *upload_size = 0;
    if (r->refused) return MHD_YES;
    if (r->too_big || r->n + add > max) {
        r->too_big = 1;
        return MHD_YES;
    }
    char *b = realloc(r->body, r->n + add + 1);
    if (!b) return MHD_NO;
    r->body = b;
    memcpy(r->body + r->n, upload, add);
    r->n += add;
    r->body[r->n] = 0;
    return MHD_YES;
}

int sk_http_content_length_over(struct MHD_Connection *conn, size_t max)
{
    const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
    return cl && strtoull(cl, NULL, 10) > max;
}

const char *sk_http_too_big_message(char *buf, size_t n, size_t max)
{
    snprintf(buf, n, "body over the limit of %zu bytes", max);
    return buf;
}

void sk_http_req_done(void *cls, struct MHD_Connection *conn, void **con_cls,
                      enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)conn;
    (void)toe;
    sk_http_req *r = *con_cls;
    if (r) {
        free(r->body);
        free(r);
    }
    *con_cls = NULL;
}

void sk_http_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char buf[512];
    vsnprintf(buf, sizeof buf, fmt, ap);
    size_t n = strlen(buf);
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r')) buf[--n] = 0;
    SK_LOGD("%s: %s", cls ? (const char *)cls : "http", buf);
}

struct MHD_Daemon *sk_http_daemon_start(unsigned flags, const struct sockaddr_storage *ss,
                                        MHD_AccessHandlerCallback handler, void *cls,
                                        unsigned max_connections, const char *log_prefix)
{
    const uint16_t port = ss->ss_family == AF_INET6
                              ? ntohs(((const struct sockaddr_in6 *)ss)->sin6_port)
                              : ntohs(((const struct sockaddr_in *)ss)->sin_port);
    return MHD_start_daemon(flags, port, NULL, NULL, handler, cls,
                            MHD_OPTION_SOCK_ADDR, (const struct sockaddr *)ss,
                            MHD_OPTION_NOTIFY_COMPLETED, sk_http_req_done, NULL,
                            MHD_OPTION_EXTERNAL_LOGGER, sk_http_mhd_log, (void *)log_prefix,
                            MHD_OPTION_CONNECTION_LIMIT, max_connections,
                            /* slow clients (issue 15 #3): one address holds a few
                             * connections at most, an idle one is closed (a stream
                             * answer turns the timeout off for its own connection) */
                            MHD_OPTION_PER_IP_CONNECTION_LIMIT,
                            (unsigned)SK_HTTP_MAX_CONN_PER_IP,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)SK_HTTP_IDLE_TIMEOUT_S,
                            MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)SK_HTTP_CONN_MEMORY,
                            MHD_OPTION_END);
}

#endif
