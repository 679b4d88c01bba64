/*
 * pgproxy.h — a loopback TCP proxy in front of the test PostgreSQL server,
 * for network faults a test cannot get from the server itself: a
 * connection dropped between a COMMIT and its reply (the in-doubt commit),
 * a peer that goes silent without closing (a black hole), a server that
 * refuses new connections.
 *
 * The proxy listens on 127.0.0.1 (a free port) and forwards each
 * connection to the server's unix socket. It runs on a thread of the
 * calling process (a Check test's own forked process); its sockets are
 * close-on-exec, so children started with h_spawn hold none of them and a
 * close by the proxy is a real close (FIN) on the client's side.
 *
 * It reads the PostgreSQL v3 frontend protocol on the client's side (the
 * untyped SSLRequest/GSSENCRequest/StartupMessage packets, then typed
 * messages) to find COMMIT: a simple query ('Q') or an extended-protocol
 * Parse ('P') whose text is COMMIT (or END), as libpq's pipeline mode sends
 * it after statements already in flight. Nothing else is interpreted.
 *
 * Every function is thread-safe (the state is behind a mutex). Errors that
 * the test cannot recover from (socket, bind, thread) fail the test.
 */
#ifndef RATCHET_PGPROXY_H
#define RATCHET_PGPROXY_H

#include <stdbool.h>
#include <stdint.h>

typedef struct pgp pgp;

/* What to do with a COMMIT when the drop is armed. */
typedef enum pgp_drop {
    /* Forward it (with the rest of its pipeline, up to the Sync), wait for
     * the server's answer to it (CommandComplete, then ReadyForQuery), and
     * close both sides without relaying that answer: committed, but the
     * client cannot know. */
    PGP_DROP_AFTER_COMMIT,
    /* Close both sides instead of forwarding it: the server sees the
     * client vanish inside the transaction and rolls it back. */
    PGP_DROP_BEFORE_COMMIT,
    /* Forward what came before it in the stream (a pipeline's statements,
     * the fenced progress UPDATE among them) and then turn into a black
     * hole (pgp_blackhole) with the COMMIT held: the server waits in the
     * middle of an extended-protocol batch, before its Sync. */
    PGP_BLACKHOLE_AT_COMMIT,
} pgp_drop;

/* How the server answered a COMMIT the proxy forwarded and then dropped. */
typedef enum pgp_outcome {
    PGP_NONE,        /* no drop happened yet */
    PGP_COMMITTED,   /* CommandComplete "COMMIT" then ReadyForQuery */
    PGP_ROLLED_BACK, /* "ROLLBACK" (an aborted transaction), or not forwarded */
    PGP_UNKNOWN,     /* no answer within 5 s, or the server closed first */
} pgp_outcome;

/*
 * Start a proxy to the server whose unix socket is socket_path (e.g.
 * DIR/.s.PGSQL.PORT). Pass-through until told otherwise. Stopped and freed
 * by pgp_stop (NULL is a no-op).
 */
pgp *pgp_start(const char *socket_path);
void pgp_stop(pgp *p);

/* The port it listens on, at 127.0.0.1. */
int pgp_port(const pgp *p);

/*
 * url (a libpq conninfo string, as h_db_new returns for PostgreSQL) with
 * host and port pointing at the proxy, then extra (NULL or more
 * "key=value" pairs). Later keys win in a conninfo, so they are appended.
 * malloc'd.
 */
char *pgp_url(const pgp *p, const char *url, const char *extra);

/*
 * Arm a drop: the nth COMMIT seen from now on (on any connection) is
 * handled as `how` says, once; with then_refuse, new connections are
 * refused from then on (pgp_refuse). pgp_outcome_of() reports what
 * happened (PGP_UNKNOWN for the black hole).
 */
void pgp_drop_at_commit(pgp *p, int nth, pgp_drop how, bool then_refuse);
pgp_outcome pgp_outcome_of(const pgp *p);
/* How the dropped COMMIT was sent: 'Q' (simple query), 'P' (a Parse: the
 * extended protocol, libpq's pipeline mode), 0 before the drop. */
char pgp_dropped_type(const pgp *p);

/*
 * Black hole on or off. On: nothing is read or written on any connection,
 * and nothing is closed — no FIN, no RST. A new connection is left in the
 * listen backlog unanswered (the kernel completes its TCP handshake, as it
 * keeps answering keepalive probes on the existing ones: the connections
 * stay up, the peer is silent). Off: forwarding resumes where it
 * stopped, with whatever each side sent meanwhile.
 */
void pgp_blackhole(pgp *p, bool on);

/* Refuse on or off: new connections are closed at once (a server that is
 * down); existing ones carry on. */
void pgp_refuse(pgp *p, bool on);

/* Counters since the start: connections accepted, COMMITs seen. */
int64_t pgp_connections(const pgp *p);
int64_t pgp_commits(const pgp *p);

#endif
