/* http_guard.h - the safety checks every sinkstream HTTP server makes before
 * it looks at a request (the single-stream control API of control_http.c and
 * `sinkstream serve`'s serve_http.c): bearer token (constant time), Host of a
 * loopback server (DNS rebinding), Origin (cross-site pages), and the bind
 * address. Strings in, decisions out: no libmicrohttpd here, so the rules are
 * tested directly (tests/test_serve_http.c). */
#ifndef SK_HTTP_GUARD_H
#define SK_HTTP_GUARD_H

#include <sys/socket.h>

#include "runtime/core/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Connection bounds of both servers (issue 15 #3, docs/RELIABILITY.md): one
 * client address holds this many connections at most (more are closed at
 * once), and a connection idle this long is closed (a stream answer turns the
 * idle timeout off for its own connection). Slow clients that dribble header
 * bytes cannot take every slot. */
#define SK_HTTP_MAX_CONN_PER_IP 8
#define SK_HTTP_IDLE_TIMEOUT_S 5
/* Request memory per connection (headers, URL; bodies are bounded apart). */
#define SK_HTTP_CONN_MEMORY 32768

/* 1 when `authorization` is "Bearer <token>" with the expected token (compared
 * in constant time), or expected is NULL/"" (no token set). */
int sk_http_bearer_ok(const char *expected, const char *authorization);
/* The same comparison for a bare token (e.g. ?access_token=, for requests a
 * browser cannot add headers to: EventSource, <img>). */
int sk_http_token_equal(const char *expected, const char *given);

/* 1 when a Host header ("name", "name:port", "[v6]:port") names a loopback
 * host (127.0.0.0/8, ::1, localhost); NULL (HTTP/1.0) counts as loopback. */
int sk_http_host_is_loopback(const char *host);

/* 1 when a browser's Origin header is the server's own origin: "http://" +
 * the request's Host. NULL origin (curl, same-origin GETs) -> 1. */
int sk_http_origin_same(const char *origin, const char *host);

/* Fills *ss for a numeric IPv4/IPv6 bind address (or "localhost"); *v6 = 1
 * for IPv6. `flag` names the option in the message ("--host"). */
sk_status sk_http_bind_addr(const char *bind, int port, const char *flag,
                            struct sockaddr_storage *ss, int *v6);

#ifdef __cplusplus
}
#endif
#endif
