/*
 * pgproxy.c — the loopback TCP proxy of pgproxy.h: faults on the wire
 * between ratchet and PostgreSQL (a dropped COMMIT reply, a black hole, a
 * refused connection).
 *
 * One thread polls every socket (20 ms ticks, so a mode change takes effect
 * within one). Per connection, bytes from the client are cut into protocol
 * messages before they are forwarded, so a COMMIT is seen whole and the
 * proxy can stop exactly before it, or exactly after its pipeline's Sync;
 * bytes from the server are relayed as they come, except after a forwarded
 * COMMIT under a drop, when they are only searched for the COMMIT's own
 * answer (CommandComplete "COMMIT" or "ROLLBACK", then ReadyForQuery) and
 * then thrown away with the connection. PGP_DEBUG=1 in the environment
 * prints each COMMIT seen on stderr.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "pgproxy.h"

#define PGP_MAX_CONNS 64
#define PGP_TICK_MS 20
#define PGP_BACKLOG_LIMIT (1 << 20) /* stop reading a side past 1 MiB queued */
#define PGP_REPLY_WAIT_MS 5000

typedef struct pgp_buf {
    char *p;
    size_t len, cap;
} pgp_buf;

typedef struct pgp_conn {
    int cfd, sfd;   /* client (TCP) and server (unix) sockets; -1 closed */
    pgp_buf cin;    /* from the client, not yet cut into messages */
    pgp_buf to_s;   /* whole messages for the server */
    pgp_buf to_c;   /* from the server, for the client */
    pgp_buf reply;  /* from the server after a dropped COMMIT went out */
    bool typed;     /* past the StartupMessage: messages carry a type byte */
    bool eof_c, eof_s;
    bool group;     /* a dropped COMMIT's Parse went out; forward to Sync */
    bool held;      /* the COMMIT at the head of cin was counted already */
    bool waiting;   /* the COMMIT went out; awaiting its answer */
    int64_t wait_until;
    char commit_names[4][64]; /* statements prepared as COMMIT ("" unused) */
} pgp_conn;

struct pgp {
    char path[108];
    int lfd, port;
    pthread_t thread;
    pthread_mutex_t mu;
    bool stopping, blackhole, refuse;
    int drop_nth; /* 0: no drop armed */
    pgp_drop drop_how;
    bool then_refuse; /* refuse new connections once the drop happened */
    pgp_outcome outcome;
    char dropped_type; /* 'Q', 'P' or 'B': how the dropped COMMIT was sent */
    int64_t connections, commits;
    pgp_conn conns[PGP_MAX_CONNS];
    int nconns;
};

static int64_t pgp_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void pgp_add(pgp_buf *b, const char *data, size_t n) {
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n) cap *= 2;
        b->p = realloc(b->p, cap);
        ck_assert_ptr_nonnull(b->p);
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
}

static void pgp_consume(pgp_buf *b, size_t n) {
    memmove(b->p, b->p + n, b->len - n);
    b->len -= n;
}

static uint32_t pgp_be32(const char *p) {
    const unsigned char *u = (const unsigned char *)p;
    return (uint32_t)u[0] << 24 | (uint32_t)u[1] << 16 | (uint32_t)u[2] << 8 | u[3];
}

/* COMMIT or END, any case, blanks and a ';' around it. */
static bool pgp_is_commit_text(const char *s, size_t n) {
    while (n && (*s == ' ' || *s == '\t' || *s == '\n')) s++, n--;
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' ||
                 s[n - 1] == ';'))
        n--;
    return (n == 6 && !strncasecmp(s, "COMMIT", 6)) ||
           (n == 3 && !strncasecmp(s, "END", 3));
}

/*
 * Is this typed message (type, body of n bytes) a COMMIT? A simple Query,
 * an unnamed Parse of one (its Bind and Execute follow), or the Bind of a
 * statement prepared as COMMIT earlier on this connection: that named
 * Parse is remembered, not counted (it goes out once per session).
 */
static bool pgp_is_commit(pgp_conn *c, char type, const char *body, size_t n) {
    if (type == 'Q') return pgp_is_commit_text(body, strnlen(body, n));
    size_t name = strnlen(body, n);
    if (name + 1 >= n) return false;
    if (type == 'P') { /* statement name, then the query text */
        if (!pgp_is_commit_text(body + name + 1, strnlen(body + name + 1, n - name - 1)))
            return false;
        if (name == 0) return true;
        for (int i = 0; i < 4; i++)
            if (!c->commit_names[i][0] && name < sizeof c->commit_names[i]) {
                memcpy(c->commit_names[i], body, name + 1);
                break;
            }
        return false;
    }
    if (type == 'B') { /* portal name, then the statement's */
        const char *stmt = body + name + 1;
        size_t len = strnlen(stmt, n - name - 1);
        for (int i = 0; len && i < 4; i++)
            if (!strncmp(c->commit_names[i], stmt, len) && !c->commit_names[i][len])
                return true;
    }
    return false;
}

static void pgp_close_conn(pgp_conn *c) {
    if (c->cfd >= 0) close(c->cfd);
    if (c->sfd >= 0) close(c->sfd);
    c->cfd = c->sfd = -1;
}

/* The forwarded COMMIT's answer, if it is all in: CommandComplete
 * "COMMIT" or "ROLLBACK" and a ReadyForQuery after it. */
static pgp_outcome pgp_answer(const pgp_buf *b) {
    static const char commit[] = "C\0\0\0\x0b" "COMMIT";
    static const char rollback[] = "C\0\0\0\x0d" "ROLLBACK";
    static const char ready[] = "Z\0\0\0\x05";
    if (!b->len) return PGP_NONE;
    const char *tag = memmem(b->p, b->len, commit, sizeof commit);
    pgp_outcome o = PGP_COMMITTED;
    if (!tag) {
        tag = memmem(b->p, b->len, rollback, sizeof rollback);
        o = PGP_ROLLED_BACK;
    }
    if (!tag) return PGP_NONE;
    size_t from = (size_t)(tag - b->p);
    return memmem(tag, b->len - from, ready, sizeof ready - 1) ? o : PGP_NONE;
}

/*
 * Cut the client's bytes into messages and queue them for the server,
 * acting on the armed COMMIT. Stops while a dropped COMMIT awaits its
 * answer (what the client sends after it is never forwarded).
 */
static void pgp_parse_client(pgp *p, pgp_conn *c) {
    while (!c->waiting && c->cfd >= 0) {
        size_t total;
        if (!c->typed) { /* Int32 length (itself included), Int32 code */
            if (c->cin.len < 8) return;
            total = pgp_be32(c->cin.p);
            if (total < 8 || total > 10000) { /* not PostgreSQL */
                pgp_close_conn(c);
                return;
            }
            if (c->cin.len < total) return;
            if (pgp_be32(c->cin.p + 4) == 196608) c->typed = true; /* 3.0 */
            pgp_add(&c->to_s, c->cin.p, total);
            pgp_consume(&c->cin, total);
            continue;
        }
        if (c->cin.len < 5) return;
        total = 1 + (size_t)pgp_be32(c->cin.p + 1);
        if (c->cin.len < total) return;
        char type = c->cin.p[0];
        bool counted = c->held;
        c->held = false;
        if (!c->group && !counted && pgp_is_commit(c, type, c->cin.p + 5, total - 5)) {
            p->commits++;
            if (getenv("PGP_DEBUG"))
                fprintf(stderr, "pgproxy: COMMIT %lld ('%c') on connection %d\n",
                        (long long)p->commits, type, (int)(c - p->conns));
            if (p->drop_nth > 0 && --p->drop_nth == 0) {
                p->dropped_type = type;
                if (p->drop_how == PGP_DROP_BEFORE_COMMIT) {
                    /* Not forwarded: the server rolls the transaction back
                     * when it sees the client gone. */
                    p->outcome = PGP_ROLLED_BACK;
                    p->refuse |= p->then_refuse;
                    pgp_close_conn(c);
                    return;
                }
                if (p->drop_how == PGP_BLACKHOLE_AT_COMMIT) {
                    /* What came before it is forwarded; it and all else
                     * stays here. */
                    p->outcome = PGP_UNKNOWN;
                    p->blackhole = true;
                    c->held = true;
                    return;
                }
                c->group = true; /* Parse or Bind: forward through the Sync */
                c->wait_until = pgp_now_ms() + PGP_REPLY_WAIT_MS;
            }
        }
        pgp_add(&c->to_s, c->cin.p, total);
        pgp_consume(&c->cin, total);
        if (c->group && (type == 'Q' || type == 'S')) {
            c->group = false;
            c->waiting = true;
        }
    }
}

/* Write what is queued for fd; false when the peer is gone. */
static bool pgp_flush(int fd, pgp_buf *b) {
    while (b->len) {
        ssize_t n = send(fd, b->p, b->len, MSG_NOSIGNAL);
        if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
        pgp_consume(b, (size_t)n);
    }
    return true;
}

/* Read what fd has into b; false at end of stream or on an error. */
static bool pgp_fill(int fd, pgp_buf *b) {
    char chunk[16384];
    ssize_t n = recv(fd, chunk, sizeof chunk, 0);
    if (n > 0) {
        pgp_add(b, chunk, (size_t)n);
        return true;
    }
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR);
}

static int pgp_connect_server(const pgp *p) {
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return -1;
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof a.sun_path, "%s", p->path);
    /* A unix socket connects at once (or fails: EAGAIN is a full backlog). */
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    return fd;
}

static void pgp_accept(pgp *p) {
    int fd = accept4(p->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) return;
    p->connections++;
    if (p->refuse) {
        close(fd);
        return;
    }
    /* Reuse a closed slot. */
    pgp_conn *c = NULL;
    for (int i = 0; i < p->nconns && !c; i++)
        if (p->conns[i].cfd < 0 && p->conns[i].sfd < 0) c = &p->conns[i];
    if (!c && p->nconns < PGP_MAX_CONNS) c = &p->conns[p->nconns++];
    int sfd = c ? pgp_connect_server(p) : -1;
    if (sfd < 0) {
        close(fd);
        return;
    }
    pgp_buf keep[4] = {c->cin, c->to_s, c->to_c, c->reply};
    memset(c, 0, sizeof *c);
    c->cin = keep[0], c->to_s = keep[1], c->to_c = keep[2], c->reply = keep[3];
    c->cin.len = c->to_s.len = c->to_c.len = c->reply.len = 0;
    c->cfd = fd;
    c->sfd = sfd;
}

/* One connection's events (revents of its client and server fds). */
static void pgp_serve(pgp *p, pgp_conn *c, short cev, short sev) {
    if (c->cfd >= 0 && (cev & (POLLIN | POLLHUP | POLLERR)) && !c->waiting) {
        if (!pgp_fill(c->cfd, &c->cin)) c->eof_c = true;
    }
    if (c->cin.len) pgp_parse_client(p, c); /* also what a black hole held */
    if (c->sfd >= 0 && (sev & (POLLIN | POLLHUP | POLLERR))) {
        if (!pgp_fill(c->sfd, c->waiting ? &c->reply : &c->to_c)) c->eof_s = true;
    }
    if (c->sfd >= 0 && c->to_s.len && !pgp_flush(c->sfd, &c->to_s)) c->eof_s = true;
    if (c->cfd >= 0 && c->to_c.len && !pgp_flush(c->cfd, &c->to_c)) c->eof_c = true;
    if (c->waiting) {
        pgp_outcome o = pgp_answer(&c->reply);
        if (o == PGP_NONE && (c->eof_s || pgp_now_ms() >= c->wait_until))
            o = PGP_UNKNOWN;
        if (o != PGP_NONE) { /* answered (or never will be): drop, unrelayed */
            p->outcome = o;
            p->refuse |= p->then_refuse;
            pgp_close_conn(c);
        }
        return;
    }
    /* One side gone: pass on what it sent, then close the other. */
    if ((c->eof_c && !c->to_s.len) || (c->eof_s && !c->to_c.len)) pgp_close_conn(c);
}

static void *pgp_main(void *arg) {
    pgp *p = arg;
    struct pollfd fds[1 + 2 * PGP_MAX_CONNS];
    int who[1 + 2 * PGP_MAX_CONNS];
    pthread_mutex_lock(&p->mu);
    while (!p->stopping) {
        int n = 0;
        if (!p->blackhole) {
            fds[n] = (struct pollfd){.fd = p->lfd, .events = POLLIN};
            who[n++] = -1;
        }
        for (int i = 0; i < p->nconns && !p->blackhole; i++) {
            pgp_conn *c = &p->conns[i];
            if (c->cfd < 0) continue;
            short ce = 0, se = 0;
            if (!c->waiting && !c->eof_c && c->to_s.len < PGP_BACKLOG_LIMIT) ce |= POLLIN;
            if (c->to_c.len) ce |= POLLOUT;
            if (!c->eof_s && c->to_c.len < PGP_BACKLOG_LIMIT) se |= POLLIN;
            if (c->to_s.len) se |= POLLOUT;
            fds[n] = (struct pollfd){.fd = c->cfd, .events = ce};
            who[n++] = 2 * i;
            fds[n] = (struct pollfd){.fd = c->sfd, .events = se};
            who[n++] = 2 * i + 1;
        }
        pthread_mutex_unlock(&p->mu);
        int ready = poll(fds, (nfds_t)n, PGP_TICK_MS);
        pthread_mutex_lock(&p->mu);
        if (p->stopping) break;
        if (ready < 0 || p->blackhole) continue; /* a black hole: no I/O at all */
        short rev[2 * PGP_MAX_CONNS] = {0};
        for (int k = 0; k < n; k++) {
            if (who[k] < 0) {
                if (fds[k].revents & POLLIN) pgp_accept(p);
            } else {
                rev[who[k]] = fds[k].revents;
            }
        }
        /* Every live connection, with or without events: timeouts of a
         * dropped COMMIT's wait, flushes of what the parse queued. */
        for (int i = 0; i < p->nconns; i++)
            if (p->conns[i].cfd >= 0) pgp_serve(p, &p->conns[i], rev[2 * i], rev[2 * i + 1]);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

pgp *pgp_start(const char *socket_path) {
    pgp *p = calloc(1, sizeof *p);
    ck_assert_ptr_nonnull(p);
    ck_assert_msg(strlen(socket_path) < sizeof p->path, "socket path too long: %s",
                  socket_path);
    snprintf(p->path, sizeof p->path, "%s", socket_path);
    for (int i = 0; i < PGP_MAX_CONNS; i++) p->conns[i].cfd = p->conns[i].sfd = -1;
    p->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    ck_assert_msg(p->lfd >= 0, "socket: %s", strerror(errno));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_msg(bind(p->lfd, (struct sockaddr *)&a, sizeof a) == 0, "bind: %s",
                  strerror(errno));
    ck_assert_msg(listen(p->lfd, 64) == 0, "listen: %s", strerror(errno));
    socklen_t len = sizeof a;
    ck_assert(getsockname(p->lfd, (struct sockaddr *)&a, &len) == 0);
    p->port = ntohs(a.sin_port);
    pthread_mutex_init(&p->mu, NULL);
    ck_assert_int_eq(pthread_create(&p->thread, NULL, pgp_main, p), 0);
    return p;
}

void pgp_stop(pgp *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->stopping = true;
    pthread_mutex_unlock(&p->mu);
    pthread_join(p->thread, NULL);
    for (int i = 0; i < p->nconns; i++) {
        pgp_conn *c = &p->conns[i];
        pgp_close_conn(c);
        free(c->cin.p);
        free(c->to_s.p);
        free(c->to_c.p);
        free(c->reply.p);
    }
    close(p->lfd);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

int pgp_port(const pgp *p) { return p->port; }

char *pgp_url(const pgp *p, const char *url, const char *extra) {
    ck_assert_msg(!strstr(url, "://"), "pgp_url wants a conninfo string: %s", url);
    size_t n = strlen(url) + (extra ? strlen(extra) : 0) + 64;
    char *out = malloc(n);
    ck_assert_ptr_nonnull(out);
    snprintf(out, n, "%s host=127.0.0.1 port=%d%s%s", url, p->port, extra ? " " : "",
             extra ? extra : "");
    return out;
}

#define PGP_LOCKED(p, stmt)                                                    \
    do {                                                                       \
        pthread_mutex_lock((pthread_mutex_t *)&(p)->mu);                       \
        stmt;                                                                  \
        pthread_mutex_unlock((pthread_mutex_t *)&(p)->mu);                     \
    } while (0)

void pgp_drop_at_commit(pgp *p, int nth, pgp_drop how, bool then_refuse) {
    PGP_LOCKED(p, (p->drop_nth = nth, p->drop_how = how, p->then_refuse = then_refuse,
                   p->outcome = PGP_NONE, p->dropped_type = 0));
}

char pgp_dropped_type(const pgp *p) {
    char t;
    PGP_LOCKED(p, t = p->dropped_type);
    return t;
}

pgp_outcome pgp_outcome_of(const pgp *p) {
    pgp_outcome o;
    PGP_LOCKED(p, o = p->outcome);
    return o;
}

void pgp_blackhole(pgp *p, bool on) { PGP_LOCKED(p, p->blackhole = on); }

void pgp_refuse(pgp *p, bool on) { PGP_LOCKED(p, p->refuse = on); }

int64_t pgp_connections(const pgp *p) {
    int64_t n;
    PGP_LOCKED(p, n = p->connections);
    return n;
}

int64_t pgp_commits(const pgp *p) {
    int64_t n;
    PGP_LOCKED(p, n = p->commits);
    return n;
}
