/*
 * fuzz_listen.c — the metrics listen address (--metrics-listen
 * [ADDR:]PORT): rt__http_parse_listen. Invariants: an accepted address is
 * IPv4 or IPv6 with the matching length, and written back as ADDR:PORT (or
 * [ADDR]:PORT) it parses to the same address and port; a refusal is
 * RT_INVALID with a message.
 * Input: the text.
 */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <netinet/in.h>

#include "fuzz.h"
#include "service/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 1024) return 0;
    char *spec = fuzz_str(data, size);
    struct sockaddr_storage addr, again;
    socklen_t len = 0, len2 = 0;
    char err[512] = "";
    int rc = rt__http_parse_listen(spec, &addr, &len, err, sizeof err);
    if (rc != RT_OK) {
        FUZZ_CHECK(rc == RT_INVALID && *err, "'%s': rc %d", spec, rc);
        free(spec);
        return 0;
    }
    FUZZ_CHECK((addr.ss_family == AF_INET && len == sizeof(struct sockaddr_in)) ||
                   (addr.ss_family == AF_INET6 && len == sizeof(struct sockaddr_in6)),
               "'%s': family %d, length %u", spec, addr.ss_family, (unsigned)len);
    char back[INET6_ADDRSTRLEN + 16];
    rt__http_format_address(&addr, back, sizeof back);
    FUZZ_CHECK(rt__http_parse_listen(back, &again, &len2, err, sizeof err) == RT_OK &&
                   len2 == len && !memcmp(&addr, &again, len),
               "'%s' reads as '%s', which reads back differently (%s)", spec, back, err);
    free(spec);
    return 0;
}
