/*
 * http.c — a minimal HTTP/1.0 responder: one resource, GET or HEAD, one
 * response per connection, from one thread with a poll() loop.
 *
 * Why not a library: Debian's libmicrohttpd would add a build and run
 * dependency, and threads of its own, for what is here one path and two
 * methods. What a scraper needs — bounded requests, a deadline per client so
 * a slow or silent one cannot wedge the loop, no signal taken from the main
 * thread — fits in this file and is tested end to end (check_metrics.c).
 *
 * Each connection goes READ (the request head, within RT_HTTP_READ_MS and
 * RT_HTTP_MAX_REQUEST bytes) -> WRITE (the whole response, within
 * RT_HTTP_WRITE_MS) -> DRAIN (our side shut, what the client still sends
 * is read and dropped for a moment, so an unread request body cannot turn
 * the close into a reset that loses the response) -> closed. Sockets are
 * non-blocking; the only thing that blocks the loop is the handler.
 *
 * Forks: a child forked without exec (the worker pool) must not keep the
 * listening socket or a client's connection open, or a client would wait
 * for the child's exit to see its response end. A pthread_atfork child
 * handler closes them; the thread accepts and closes under http_mu, which
 * the prepare handler takes, so the child's list of descriptors is exact.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "service/http.h"

#define HTTP_DRAIN_MS 1000

enum { HC_FREE, HC_READ, HC_WRITE, HC_DRAIN };

typedef struct http_client {
    int fd;
    int state;
    int64_t opened_ns, deadline_ns; /* monotonic */
    char in[RT_HTTP_MAX_REQUEST + 1];
    size_t inlen;
    rt__buf out;
    size_t outoff;
} http_client;

struct rt__http {
    int lfd;
    int wake[2]; /* a byte on wake[1] stops the thread */
    pthread_t thread;
    char address[INET6_ADDRSTRLEN + 16];
    char *path, *type;
    rt__http_handler fn;
    void *arg;
    http_client clients[RT_HTTP_MAX_CLIENTS];
    rt__http *next; /* the live servers (http_live) */
};

static pthread_mutex_t http_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t http_once = PTHREAD_ONCE_INIT;
static rt__http *http_live;

/* ------------------------------------------------------------- forks */

static void http_fork_prepare(void) { pthread_mutex_lock(&http_mu); }
static void http_fork_parent(void) { pthread_mutex_unlock(&http_mu); }

static void http_fork_child(void) {
    for (rt__http *h = http_live; h; h = h->next) {
        close(h->lfd);
        close(h->wake[0]);
        close(h->wake[1]);
        for (int i = 0; i < RT_HTTP_MAX_CLIENTS; i++)
            if (h->clients[i].state != HC_FREE) close(h->clients[i].fd);
    }
    http_live = NULL; /* the child has no thread to serve them */
    pthread_mutex_unlock(&http_mu);
}

static void http_atfork(void) {
    pthread_atfork(http_fork_prepare, http_fork_parent, http_fork_child);
}

/* ----------------------------------------------------------- address */

static bool http_port(const char *s, in_port_t *port) {
    size_t n = strlen(s);
    if (n == 0 || n > 5) return false;
    long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return false;
        v = v * 10 + (s[i] - '0');
    }
    if (v > 65535) return false;
    *port = htons((in_port_t)v);
    return true;
}

int rt__http_parse_listen(const char *spec, struct sockaddr_storage *addr,
                          socklen_t *len, char *err, size_t errlen) {
    memset(addr, 0, sizeof *addr);
    char host[INET6_ADDRSTRLEN + 1] = "127.0.0.1";
    const char *port = spec;
    bool v6 = false;
    if (!*spec) {
        snprintf(err, errlen, "give [ADDR:]PORT, e.g. 9100 or 127.0.0.1:9100");
        return RT_INVALID;
    }
    if (spec[0] == '[') {
        const char *close = strchr(spec, ']');
        if (!close || close[1] != ':' || close == spec + 1 ||
            (size_t)(close - spec - 1) >= sizeof host) {
            snprintf(err, errlen, "an IPv6 address is written [ADDR]:PORT, "
                                  "e.g. [::1]:9100");
            return RT_INVALID;
        }
        snprintf(host, sizeof host, "%.*s", (int)(close - spec - 1), spec + 1);
        port = close + 2;
        v6 = true;
    } else if (strchr(spec, ':')) {
        const char *colon = strrchr(spec, ':');
        if (colon != strchr(spec, ':')) {
            snprintf(err, errlen, "an IPv6 address goes in brackets: "
                                  "[ADDR]:PORT, e.g. [::1]:9100");
            return RT_INVALID;
        }
        if (colon == spec || (size_t)(colon - spec) >= sizeof host) {
            snprintf(err, errlen, "give the address before ':' (127.0.0.1, "
                                  "0.0.0.0, [::1]) or only the port");
            return RT_INVALID;
        }
        snprintf(host, sizeof host, "%.*s", (int)(colon - spec), spec);
        port = colon + 1;
        if (!strcmp(host, "localhost")) snprintf(host, sizeof host, "127.0.0.1");
    }
    in_port_t p;
    if (!http_port(port, &p)) {
        snprintf(err, errlen, "the port must be a number from 0 to 65535");
        return RT_INVALID;
    }
    if (v6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)addr;
        a->sin6_family = AF_INET6;
        a->sin6_port = p;
        if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1) {
            snprintf(err, errlen, "'%s' is not an IPv6 address", host);
            return RT_INVALID;
        }
        *len = sizeof *a;
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)addr;
        a->sin_family = AF_INET;
        a->sin_port = p;
        if (inet_pton(AF_INET, host, &a->sin_addr) != 1) {
            snprintf(err, errlen, "'%s' is not an IPv4 address (names other "
                                  "than localhost are not looked up)", host);
            return RT_INVALID;
        }
        *len = sizeof *a;
    }
    return RT_OK;
}

void rt__http_format_address(const struct sockaddr_storage *ss, char *out,
                             size_t n) {
    char ip[INET6_ADDRSTRLEN] = "?";
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof ip);
        snprintf(out, n, "[%s]:%u", ip, (unsigned)ntohs(a->sin6_port));
    } else {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
        snprintf(out, n, "%s:%u", ip, (unsigned)ntohs(a->sin_port));
    }
}

/* --------------------------------------------------------- the loop */

static void http_close(http_client *c) {
    pthread_mutex_lock(&http_mu);
    close(c->fd);
    c->fd = -1;
    c->state = HC_FREE;
    pthread_mutex_unlock(&http_mu);
    rt__buf_free(&c->out);
    c->outoff = c->inlen = 0;
}

static const char *http_reason(int code) {
    switch (code) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 431: return "Request Header Fields Too Large";
    case 503: return "Service Unavailable";
    default: return "Internal Server Error";
    }
}

/* Queue the response; the loop writes it. */
static void http_reply(http_client *c, int code, const char *type,
                       const rt__buf *body, bool head_only) {
    rt__buf_printf(&c->out,
                   "HTTP/1.0 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu"
                   "\r\nConnection: close\r\n%s\r\n",
                   code, http_reason(code), type, body->len,
                   code == 405 ? "Allow: GET, HEAD\r\n" : "");
    if (!head_only && body->len) rt__buf_add(&c->out, body->p, body->len);
    c->state = HC_WRITE;
    c->deadline_ns = rt__mono_ns() + RT_HTTP_WRITE_MS * 1000000LL;
}

static void http_error(http_client *c, int code, const char *text) {
    rt__buf body = {0};
    rt__buf_puts(&body, text);
    http_reply(c, code, "text/plain; charset=utf-8", &body, false);
    rt__buf_free(&body);
}

/* A whole request head is in c->in: answer it. */
static void http_respond(rt__http *h, http_client *c) {
    c->in[c->inlen] = '\0';
    char *eol = strchr(c->in, '\n');
    if (eol) *eol = '\0';
    if (eol && eol > c->in && eol[-1] == '\r') eol[-1] = '\0';
    /* METHOD SP TARGET SP HTTP/x.y */
    char *method = c->in, *target = strchr(method, ' ');
    char *version = target ? strchr(target + 1, ' ') : NULL;
    if (!target || !version || strncmp(version + 1, "HTTP/", 5) ||
        strchr(version + 1, ' ') || target + 1 == version) {
        http_error(c, 400, "bad request\n");
        return;
    }
    *target++ = '\0';
    *version = '\0';
    bool head = !strcmp(method, "HEAD");
    if (!head && strcmp(method, "GET")) {
        http_error(c, 405, "method not allowed: GET or HEAD\n");
        return;
    }
    target[strcspn(target, "?")] = '\0';
    if (strcmp(target, h->path)) {
        char text[128];
        snprintf(text, sizeof text, "not found: try %s\n", h->path);
        http_error(c, 404, text);
        return;
    }
    rt__buf body = {0};
    int code = h->fn(h->arg, &body);
    http_reply(c, code, code == 200 ? h->type : "text/plain; charset=utf-8",
               &body, head);
    rt__buf_free(&body);
}

static void http_read(rt__http *h, http_client *c) {
    ssize_t n = recv(c->fd, c->in + c->inlen, RT_HTTP_MAX_REQUEST - c->inlen, 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n <= 0) { /* gone before asking anything */
        http_close(c);
        return;
    }
    size_t from = c->inlen > 3 ? c->inlen - 3 : 0;
    c->inlen += (size_t)n;
    c->in[c->inlen] = '\0';
    if (memmem(c->in + from, c->inlen - from, "\r\n\r\n", 4) ||
        memmem(c->in + from, c->inlen - from, "\n\n", 2))
        http_respond(h, c);
    else if (memchr(c->in, '\0', c->inlen))
        http_error(c, 400, "bad request\n");
    else if (c->inlen == RT_HTTP_MAX_REQUEST)
        http_error(c, 431, "request head too large\n");
}

static void http_write(http_client *c) {
    size_t left = c->out.len - c->outoff;
    ssize_t n = left ? send(c->fd, c->out.p + c->outoff, left, MSG_NOSIGNAL) : 0;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n < 0) {
        http_close(c);
        return;
    }
    c->outoff += (size_t)n;
    if (c->outoff < c->out.len) return;
    shutdown(c->fd, SHUT_WR);
    c->state = HC_DRAIN;
    c->deadline_ns = rt__mono_ns() + HTTP_DRAIN_MS * 1000000LL;
}

static void http_drain(http_client *c) {
    char scratch[4096];
    ssize_t n = recv(c->fd, scratch, sizeof scratch, 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n <= 0) http_close(c);
}

static void http_accept(rt__http *h) {
    for (int k = 0; k < RT_HTTP_MAX_CLIENTS; k++) {
        http_client *slot = NULL;
        pthread_mutex_lock(&http_mu);
        int fd = accept4(h->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            for (int i = 0; i < RT_HTTP_MAX_CLIENTS; i++) {
                http_client *c = &h->clients[i];
                if (c->state == HC_FREE) {
                    slot = c;
                    break;
                }
                if (!slot || c->opened_ns < slot->opened_ns) slot = c;
            }
            if (slot->state != HC_FREE) close(slot->fd); /* full: the oldest goes */
            slot->fd = fd;
            slot->state = HC_READ;
        }
        pthread_mutex_unlock(&http_mu);
        if (fd < 0) return; /* EAGAIN: no one else waits; or out of fds */
        rt__buf_free(&slot->out);
        slot->inlen = slot->outoff = 0;
        slot->opened_ns = rt__mono_ns();
        slot->deadline_ns = slot->opened_ns + RT_HTTP_READ_MS * 1000000LL;
    }
}

static void *http_main(void *arg) {
    rt__http *h = arg;
    struct pollfd pf[2 + RT_HTTP_MAX_CLIENTS];
    int who[2 + RT_HTTP_MAX_CLIENTS];
    for (;;) {
        int64_t now = rt__mono_ns(), next = INT64_MAX;
        int n = 2;
        pf[0] = (struct pollfd){.fd = h->wake[0], .events = POLLIN};
        pf[1] = (struct pollfd){.fd = h->lfd, .events = POLLIN};
        for (int i = 0; i < RT_HTTP_MAX_CLIENTS; i++) {
            http_client *c = &h->clients[i];
            if (c->state == HC_FREE) continue;
            if (now >= c->deadline_ns) { /* too slow: no answer */
                http_close(c);
                continue;
            }
            if (c->deadline_ns < next) next = c->deadline_ns;
            pf[n] = (struct pollfd){
                .fd = c->fd, .events = c->state == HC_WRITE ? POLLOUT : POLLIN};
            who[n++] = i;
        }
        int timeout = next == INT64_MAX ? -1 : (int)((next - now) / 1000000 + 1);
        if (poll(pf, (nfds_t)n, timeout) < 0 && errno != EINTR) break;
        if (pf[0].revents) break;
        /* Clients first: accepting may reuse a slot polled above. */
        for (int k = 2; k < n; k++) {
            if (!pf[k].revents) continue;
            http_client *c = &h->clients[who[k]];
            if (c->state == HC_READ) http_read(h, c);
            else if (c->state == HC_WRITE) http_write(c);
            else if (c->state == HC_DRAIN) http_drain(c);
        }
        if (pf[1].revents & POLLIN) http_accept(h);
    }
    for (int i = 0; i < RT_HTTP_MAX_CLIENTS; i++)
        if (h->clients[i].state != HC_FREE) http_close(&h->clients[i]);
    return NULL;
}

/* ------------------------------------------------------------ the API */

int rt__http_start(const char *spec, const char *path, const char *type,
                   rt__http_handler fn, void *arg, rt__http **out, char *err,
                   size_t errlen) {
    *out = NULL;
    struct sockaddr_storage ss;
    socklen_t len = 0;
    char why[256];
    if (rt__http_parse_listen(spec, &ss, &len, why, sizeof why) != RT_OK) {
        snprintf(err, errlen, "'%s': %s", spec, why);
        return RT_INVALID;
    }
    pthread_once(&http_once, http_atfork);
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) ||
        bind(fd, (struct sockaddr *)&ss, len) || listen(fd, 16)) {
        snprintf(err, errlen, "cannot listen on %s: %s", spec, strerror(errno));
        if (fd >= 0) close(fd);
        return RT_DBERR;
    }
    rt__http *h = rt__xcalloc(1, sizeof *h);
    h->lfd = fd;
    len = sizeof ss;
    getsockname(fd, (struct sockaddr *)&ss, &len);
    rt__http_format_address(&ss, h->address, sizeof h->address);
    h->path = rt__xstrdup(path);
    h->type = rt__xstrdup(type);
    h->fn = fn;
    h->arg = arg;
    for (int i = 0; i < RT_HTTP_MAX_CLIENTS; i++) h->clients[i].fd = -1;
    if (pipe2(h->wake, O_CLOEXEC | O_NONBLOCK)) {
        snprintf(err, errlen, "cannot listen on %s: %s", spec, strerror(errno));
        close(fd);
        free(h->path);
        free(h->type);
        free(h);
        return RT_DBERR;
    }
    /* The thread blocks every signal: SIGTERM, SIGINT and the deadline's
     * SIGALRM stay with the main thread, whose sleeps they cut short. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    pthread_mutex_lock(&http_mu);
    int rc = pthread_create(&h->thread, NULL, http_main, h);
    if (rc == 0) {
        h->next = http_live;
        http_live = h;
    }
    pthread_mutex_unlock(&http_mu);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        snprintf(err, errlen, "cannot start the HTTP thread: %s", strerror(rc));
        close(fd);
        close(h->wake[0]);
        close(h->wake[1]);
        free(h->path);
        free(h->type);
        free(h);
        return RT_DBERR;
    }
    *out = h;
    return RT_OK;
}

const char *rt__http_address(const rt__http *h) { return h->address; }

void rt__http_stop(rt__http *h) {
    if (!h) return;
    ssize_t w = write(h->wake[1], "x", 1);
    (void)w;
    pthread_join(h->thread, NULL);
    pthread_mutex_lock(&http_mu);
    for (rt__http **p = &http_live; *p; p = &(*p)->next)
        if (*p == h) {
            *p = h->next;
            break;
        }
    close(h->lfd);
    close(h->wake[0]);
    close(h->wake[1]);
    pthread_mutex_unlock(&http_mu);
    free(h->path);
    free(h->type);
    free(h);
}
