/* http_guard.c - see http_guard.h. */
#include "runtime/live/http_guard.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "runtime/live/control.h"

int sk_control_addr_is_loopback(const char *a)
{
    if (!a || !*a) return 1; /* the default bind */
    if (!strcasecmp(a, "localhost")) return 1;
    struct in_addr v4;
    struct in6_addr v6;
    if (inet_pton(AF_INET, a, &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, a, &v6) == 1) return IN6_IS_ADDR_LOOPBACK(&v6);
    return 0;
}

int sk_http_token_equal(const char *expected, const char *given)
{
    if (!expected || !*expected) return 1;
    if (!given) return 0;
    size_t n = strlen(given), m = strlen(expected);
    unsigned diff = (unsigned)(n ^ m);
    for (size_t i = 0; i < m; i++)
        diff |= (unsigned)(unsigned char)expected[i] ^ (unsigned)(unsigned char)(i < n ? given[i] : 0);
    return diff == 0;
}

int sk_http_bearer_ok(const char *expected, const char *h)
{
    if (!expected || !*expected) return 1;
    if (!h || strncasecmp(h, "Bearer ", 7) != 0) return 0;
    h += 7;
    while (*h == ' ') h++;
    return sk_http_token_equal(expected, h);
}

int sk_http_host_is_loopback(const char *h)
{
    if (!h) return 1; /* HTTP/1.0 clients may leave it out */
    char host[128];
    if (strlen(h) >= sizeof host) return 0;
    snprintf(host, sizeof host, "%s", h);
    char *end;
    if (host[0] == '[') { /* [::1]:port */
        char *rb = strchr(host, ']');
        if (!rb) return 0;
        *rb = 0;
        memmove(host, host + 1, strlen(host + 1) + 1);
    } else if ((end = strrchr(host, ':'))) {
        *end = 0;
    }
    if (!host[0]) return 0;
    return sk_control_addr_is_loopback(host);
}

int sk_http_origin_same(const char *origin, const char *host)
{
    if (!origin) return 1;
    if (!host || strncasecmp(origin, "http://", 7) != 0) return 0;
    return strcasecmp(origin + 7, host) == 0;
}

sk_status sk_http_bind_addr(const char *bind, int port, const char *flag,
                            struct sockaddr_storage *ss, int *v6)
{
    memset(ss, 0, sizeof *ss);
    *v6 = 0;
    SK_CHECK(port >= 0 && port <= 65535, SK_E_INVALID_ARG, "port %d: expected 0..65535", port);
    const char *num = !bind || !*bind ? "127.0.0.1" : !strcasecmp(bind, "localhost") ? "127.0.0.1"
                                                                                   : bind;
    struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, num, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        return SK_OK;
    }
    if (inet_pton(AF_INET6, num, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        *v6 = 1;
        return SK_OK;
    }
    return SK_ERR(SK_E_INVALID_ARG, "%s '%s': not a numeric IPv4/IPv6 address (or localhost)",
                  flag, bind);
}
