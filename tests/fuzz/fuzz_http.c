/*
 * fuzz_http.c — the metrics endpoint's request reader (http.c): what a
 * scraper, or anyone who can reach --metrics-listen, sends. A server on
 * 127.0.0.1 (a free port, started once) serves /metrics; each input is sent
 * on a new connection, which is then half-closed, and the answer read to
 * its end. Invariants: an answer is one HTTP/1.0 status line with a code
 * the server knows, headers, and a body of its Content-Length; a request
 * head that fits arrives whole (a blank line, no NUL before it) is always
 * answered; "GET /metrics" is 200.
 * Input: the bytes sent.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "fuzz.h"
#include "service/http.h"

static int fuzz_handler(void *arg, rt__buf *body) {
    (void)arg;
    rt__buf_puts(body, "ratchet_up 1\n");
    return 200;
}

static struct sockaddr_in fuzz_addr;

static void fuzz_server(void) {
    static rt__http *h;
    if (h) return;
    char err[256];
    if (rt__http_start("127.0.0.1:0", "/metrics", "text/plain; version=0.0.4", fuzz_handler,
                       NULL, &h, err, sizeof err) != RT_OK) {
        printf("fuzz_http: %s\n", err);
        abort();
    }
    const char *colon = strrchr(rt__http_address(h), ':');
    fuzz_addr.sin_family = AF_INET;
    fuzz_addr.sin_port = htons((uint16_t)atoi(colon + 1));
    fuzz_addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
}

/* Send data, half-close, read the answer (at most cap bytes) to its end. */
static size_t fuzz_exchange(const uint8_t *data, size_t size, char *out, size_t cap) {
    int fd;
    for (;;) { /* libFuzzer's timer signal may cut a connect short */
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        FUZZ_CHECK(fd >= 0, "socket: %s", strerror(errno));
        if (connect(fd, (struct sockaddr *)&fuzz_addr, sizeof fuzz_addr) == 0) break;
        FUZZ_CHECK(errno == EINTR, "connect: %s", strerror(errno));
        close(fd);
    }
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    for (size_t off = 0; off < size;) {
        ssize_t n = send(fd, data + off, size - off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue; /* libFuzzer's timer */
        if (n <= 0) break; /* answered and closed already */
        off += (size_t)n;
    }
    shutdown(fd, SHUT_WR);
    size_t got = 0;
    for (;;) {
        ssize_t n = recv(fd, out + got, cap - got, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            FUZZ_CHECK(n == 0 || errno == ECONNRESET, "recv: %s", strerror(errno));
            break;
        }
        got += (size_t)n;
        if (got == cap) break;
    }
    close(fd);
    out[got < cap ? got : cap - 1] = '\0';
    return got;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 3 * RT_HTTP_MAX_REQUEST) return 0;
    fuzz_server();
    static char answer[65536];
    size_t n = fuzz_exchange(data, size, answer, sizeof answer);
    /* a whole head that fits, with no NUL before its blank line */
    const uint8_t *end = NULL;
    size_t fits = size < RT_HTTP_MAX_REQUEST ? size : RT_HTTP_MAX_REQUEST;
    for (size_t i = 0; i + 1 < fits && !end; i++) {
        if (data[i] == '\0') break;
        if (data[i] == '\n' && data[i + 1] == '\n') end = data + i;
        if (i + 3 < fits && !memcmp(data + i, "\r\n\r\n", 4)) end = data + i;
    }
    if (end) FUZZ_CHECK(n > 0, "a whole request head had no answer");
    if (n == 0) return 0;
    int code = 0, used = 0;
    FUZZ_CHECK(sscanf(answer, "HTTP/1.0 %3d %n", &code, &used) == 1 && used == 13,
               "answer '%.40s'", answer);
    FUZZ_CHECK(code == 200 || code == 400 || code == 404 || code == 405 || code == 431,
               "status %d", code);
    const char *body = strstr(answer, "\r\n\r\n");
    const char *len = strstr(answer, "\r\nContent-Length: ");
    FUZZ_CHECK(body && len && len < body, "answer '%.200s'", answer);
    body += 4;
    size_t length = (size_t)strtoul(len + 18, NULL, 10);
    bool head = size >= 5 && !memcmp(data, "HEAD ", 5) && code == 200;
    FUZZ_CHECK(n == (size_t)(body - answer) + (head ? 0 : length),
               "answer of %zu bytes, body %zu, Content-Length %zu", n,
               n - (size_t)(body - answer), length);
    static const char get[] = "GET /metrics HTTP/1.0\r\n\r\n";
    if (size >= sizeof get - 1 && !memcmp(data, get, sizeof get - 1))
        FUZZ_CHECK(code == 200 && !strcmp(body, "ratchet_up 1\n"), "GET /metrics: %d", code);
    return 0;
}
