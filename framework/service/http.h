/*
 * http.h — a minimal HTTP/1.0 responder for one read-only resource (the
 * metrics), served from a thread of its own. See http.c.
 */
#ifndef RT_HTTP_H
#define RT_HTTP_H

#include <sys/socket.h>

#include "service/service.h"

/* Limits: a request's head, clients at once, and how long each may take. */
#define RT_HTTP_MAX_REQUEST 8192
#define RT_HTTP_MAX_CLIENTS 16
#define RT_HTTP_READ_MS 5000
#define RT_HTTP_WRITE_MS 10000

/*
 * Parse a listen address: PORT (on 127.0.0.1), IPV4:PORT, [IPV6]:PORT or
 * localhost:PORT; PORT 0 to 65535 (0: any free port). Addresses are
 * numeric: nothing is looked up. RT_INVALID with one line in err.
 */
/* addr as ADDR:PORT, or [ADDR]:PORT for IPv6 (what the log line shows). */
void rt__http_format_address(const struct sockaddr_storage *ss, char *out,
                             size_t n);
int rt__http_parse_listen(const char *spec, struct sockaddr_storage *addr,
                          socklen_t *len, char *err, size_t errlen);

/*
 * Make the body of a GET of the served path: returns the HTTP status
 * (200; 500 or 503 with a short text body when it cannot), the body
 * appended to body. Called on the server's thread, one request at a time.
 */
typedef int (*rt__http_handler)(void *arg, rt__buf *body);

typedef struct rt__http rt__http;

/*
 * Bind and listen on spec (see rt__http_parse_listen) and serve from a new
 * thread that blocks every signal: GET or HEAD of path (a query string is
 * ignored) -> handler; another path -> 404; another method -> 405. A
 * request head may be RT_HTTP_MAX_REQUEST bytes (431 beyond) and must
 * arrive within RT_HTTP_READ_MS; at most RT_HTTP_MAX_CLIENTS connections
 * are open (a new one closes the oldest). The sockets are close-on-exec,
 * and a child forked without exec closes them. RT_INVALID (bad address),
 * RT_DBERR (cannot bind or start) with one line in err.
 */
int rt__http_start(const char *spec, const char *path, const char *type,
                   rt__http_handler fn, void *arg, rt__http **out, char *err,
                   size_t errlen);
/* "127.0.0.1:9100" or "[::1]:9100": where it listens (the real port). */
const char *rt__http_address(const rt__http *h);
/* Stop the thread (it finishes the request it is in), close, free; NULL ok. */
void rt__http_stop(rt__http *h);

#endif
