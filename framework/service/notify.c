/*
 * notify.c — systemd's readiness protocol without libsystemd: one datagram
 * ("READY=1", "STOPPING=1", "WATCHDOG=1", "STATUS=...") to the unix socket
 * named by $NOTIFY_SOCKET. A leading '@' names an abstract socket. Without
 * the variable every call is a no-op, so a daemon runs the same under
 * systemd, in a container, or in a terminal.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "service/service.h"

int rt__notify(const char *message) {
    const char *path = getenv("NOTIFY_SOCKET");
    if (!path || !*path) return RT_OK;
    struct sockaddr_un addr;
    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    size_t n = strlen(path);
    if (n >= sizeof addr.sun_path || (path[0] != '/' && path[0] != '@'))
        return RT_INVALID;
    memcpy(addr.sun_path, path, n);
    if (path[0] == '@') addr.sun_path[0] = '\0';
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return RT_DBERR;
    socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
    ssize_t sent;
    do {
        sent = sendto(fd, message, strlen(message), MSG_NOSIGNAL,
                      (struct sockaddr *)&addr, len);
    } while (sent < 0 && errno == EINTR);
    close(fd);
    return sent < 0 ? RT_DBERR : RT_OK;
}

int64_t rt__notify_watchdog_ms(void) {
    const char *usec = getenv("WATCHDOG_USEC");
    const char *pid = getenv("WATCHDOG_PID");
    int64_t v, p;
    if (!usec || !rt__parse_int64(usec, &v) || v <= 0) return 0;
    /* WATCHDOG_PID, when set, names the process systemd watches. */
    if (pid && *pid && (!rt__parse_int64(pid, &p) || p != (int64_t)getpid()))
        return 0;
    return v / 1000 > 0 ? v / 1000 : 1;
}
