/*
 * lease.c — exclusion between processes and replicas: who may run a scope
 * (a job, or a job's key), how a dead or stalled holder is replaced, and the
 * heartbeat that keeps a live holder's lease fresh.
 *
 * A lease is a row of rt_lease (owner host:pid:nonce, heartbeat, expiry, all
 * on the database's clock). Safety never depends on it: every commit is
 * fenced by the run's epoch (runner.c). The lease gives liveness and keeps
 * replicas from doing the same work twice:
 *
 *   - the holder also holds its liveness lock (store.h), one per owner
 *     (process), taken with its first lease and kept until it exits; the OS
 *     or the server drops it the instant the holder dies, so a waiting
 *     process that can take the lock a lease names (live_key) knows the
 *     holder is dead and takes over at once;
 *   - a holder that is alive but stalled (SIGSTOP, a paused VM) stops
 *     heartbeating, and its lease expires after the TTL.
 *
 * Every lease read-and-decide happens inside a write transaction, so two
 * challengers cannot both win, and on SQLite a holder inside a long
 * transaction is seen with the heartbeat its last commit wrote.
 *
 * The lease uses a connection of its own: it holds the liveness lock, and a
 * thread heartbeats on it every TTL/3 even while a step runs for longer than
 * the TTL on the work connection.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/lifecycle.h"

/* FNV-1a: a liveness lock number, the same in every process. */
static uint64_t lease_hash(const char *s) {
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h >> 1; /* fits a positive bigint */
}

/* This host's name, as owners carry it. */
static void lease_host(char host[64]) {
    snprintf(host, 64, "localhost");
    gethostname(host, 63);
    host[63] = '\0';
}

static void lease_owner_id(char *out, size_t n) {
    char host[64];
    lease_host(host);
    snprintf(out, n, "%s:%ld:%08x", host, (long)getpid(), rt__random_u32());
}

int rt__lease_open(rt__lease *l, const char *url, const char *job,
                   const char *scope, int64_t ttl_ms, char *err,
                   size_t errlen) {
    rt_store *reuse = l->s;
    memset(l, 0, sizeof *l);
    int rc = RT_OK;
    if (reuse) {
        l->s = reuse;
        l->borrowed = true;
    } else {
        rc = rt__store_open(url, &l->s, err, errlen);
        /* Ours, for lease rows only: their commits need not be durable
         * (store.h, lax_commits): one fsync less for a start (SQLite). */
        if (rc == RT_OK) rt__store_lax_commits(l->s);
    }
    if (rc != RT_OK) return rc;
    rt__store_set_busy_timeout(l->s, 200);
    snprintf(l->job, sizeof l->job, "%s", job);
    snprintf(l->scope, sizeof l->scope, "%s", scope);
    lease_owner_id(l->owner, sizeof l->owner);
    l->key = lease_hash(l->owner);
    l->ttl_ms = ttl_ms;
    l->fast = rt__store_fast_takeover(l->s);
    l->session = rt__store_session_id(l->s);
    pthread_mutex_init(&l->mu, NULL);
    /* The heartbeat thread's waits run on the monotonic clock: on the
     * default (CLOCK_REALTIME) an absolute timeout follows the wall clock,
     * so a clock stepped back by 2 h would stall the heartbeat for 2 h and
     * let the lease expire under a live holder. */
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&l->cv, &ca);
    pthread_condattr_destroy(&ca);
    return RT_OK;
}

static void lease_unlock(rt__lease *l) {
    if (l->have_lock && l->s) rt__store_liveness_release(l->s, l->key);
    l->have_lock = false;
}

/* Take this owner's liveness lock, once: it stays until rt__lease_close,
 * or until its session ends (a reconnect of l->s): then it is taken again.
 * Not getting it (another owner's hash alike, or an observer probing it at
 * that instant) only makes our leases fast = 0: taken over after their TTL
 * instead of at once. */
int rt__lease_lock(rt__lease *l) {
    if (l->have_lock && l->lock_session != l->s->sessions) l->have_lock = false;
    if (!l->fast || l->have_lock) return RT_OK;
    l->lock_session = l->s->sessions;
    return rt__store_liveness_try(l->s, l->key, &l->have_lock);
}

/* Is the liveness lock `key` free? (Probed: taken and let go at once.) */
static int lease_lock_free(rt_store *s, uint64_t key, bool *free) {
    *free = false;
    if (!rt__store_fast_takeover(s)) return RT_OK;
    int rc = rt__store_liveness_try(s, key, free);
    if (*free) rt__store_liveness_release(s, key);
    return rc;
}

/* The liveness lock a lease row names: its owner's (live_key), or for rows
 * from before migration 4 its scope's. */
static uint64_t lease_row_key(const char *scope, int64_t live_key) {
    return live_key >= 0 ? (uint64_t)live_key : lease_hash(scope);
}

/* What a lease row says of its holder (lease_judge). */
enum { LEASE_LIVE, LEASE_SUSPECT, LEASE_DEAD };

/* A lease row as lease_read finds it. */
typedef struct lease_row {
    bool exists, expired, fast;
    char owner[128];
    int64_t hb;        /* heartbeat_ms, the takeover's compare-and-set */
    uint64_t live_key; /* the holder's liveness lock */
} lease_row;

/* Cut a suspect's lease to expire RT__LEASE_SUSPECT_MS from now, unless it
 * renewed since it was read (heartbeat $3) or expires sooner already. */
#define LEASE_SUSPECT_SQL                                                      \
    "UPDATE rt_lease SET expires_ms = rt_now_ms() + $4 WHERE scope = $1 AND "  \
    "owner = $2 AND heartbeat_ms = $3 AND expires_ms > rt_now_ms() + $4"

/*
 * Is owner ("host:pid:nonce", lease_owner_id) a process of this host that
 * no longer exists? Only a definite "no such process" counts: a pid taken
 * again by another process reads as alive, and the grace decides.
 */
static bool lease_owner_gone_here(const char *owner) {
    const char *nonce = strrchr(owner, ':');
    if (!nonce || nonce == owner) return false;
    const char *pid_at = nonce - 1;
    while (pid_at > owner && *pid_at != ':') pid_at--;
    if (*pid_at != ':') return false;
    char host[64];
    lease_host(host);
    size_t hlen = (size_t)(pid_at - owner);
    if (hlen != strlen(host) || strncmp(owner, host, hlen) != 0) return false;
    char digits[24];
    size_t dlen = (size_t)(nonce - pid_at - 1);
    if (dlen == 0 || dlen >= sizeof digits) return false;
    memcpy(digits, pid_at + 1, dlen);
    digits[dlen] = '\0';
    int64_t pid;
    if (!rt__parse_int64(digits, &pid) || pid <= 0 || pid > INT32_MAX ||
        pid == (int64_t)getpid())
        return false;
    return kill((pid_t)pid, 0) != 0 && errno == ESRCH;
}

/*
 * Dead means dead. The holder of row h is dead when its lease expired, or
 * when its liveness lock is free where only the death of its process frees
 * it (SQLite's file lock). Where a live process can lose its lock with its
 * session (store.h, liveness_drops: a terminated backend, a server restart,
 * a failover) a free lock only makes the holder a suspect: its lease is cut
 * to expire RT__LEASE_SUSPECT_MS from now, and a live holder, which watches
 * its connection, reconnects, takes its lock again and renews well within
 * that (lease_thread). The holder is dead once that lease expires unrenewed
 * — or at once when it was a process of this host that no longer exists.
 */
static int lease_judge(rt_store *s, const char *scope, const lease_row *h,
                       int *verdict) {
    *verdict = LEASE_LIVE;
    if (!h->exists || h->expired) {
        *verdict = LEASE_DEAD;
        return RT_OK;
    }
    bool free = false;
    int rc = h->fast ? lease_lock_free(s, h->live_key, &free) : RT_OK;
    if (rc != RT_OK || !free) return rc;
    /* A process of this host that no longer exists is dead as surely. */
    if (!s->liveness_drops || lease_owner_gone_here(h->owner)) {
        *verdict = LEASE_DEAD;
        return RT_OK;
    }
    *verdict = LEASE_SUSPECT;
    rt_value args[] = {rt_text(scope), rt_text(h->owner), rt_int(h->hb),
                       rt_int(RT__LEASE_SUSPECT_MS)};
    return rt__store_exec(s, LEASE_SUSPECT_SQL, 4, args, NULL);
}

/* Fill *h and l->holder_* from the row. */
static int lease_read(rt__lease *l, lease_row *h) {
    rt_value arg = rt_text(l->scope);
    rt_stmt *st;
    int rc = rt__store_query(
        l->s,
        "SELECT owner, run_key, rt_now_ms() - heartbeat_ms, "
        "CASE WHEN expires_ms < rt_now_ms() THEN 1 ELSE 0 END, fast, "
        "heartbeat_ms, coalesce(live_key, -1) FROM rt_lease WHERE scope = $1",
        1, &arg, &st);
    h->exists = rc == RT_ROW;
    if (rc != RT_ROW) return rc == RT_DONE ? RT_OK : rc;
    snprintf(h->owner, sizeof h->owner, "%s", rt__store_column_text(st, 0));
    const char *key = rt__store_column_text(st, 1);
    snprintf(l->holder_key, sizeof l->holder_key, "%s", key ? key : "");
    l->holder_age_ms = rt__store_column_int64(st, 2);
    h->expired = rt__store_column_int64(st, 3) != 0;
    h->fast = rt__store_column_int64(st, 4) != 0;
    h->hb = rt__store_column_int64(st, 5);
    h->live_key = lease_row_key(l->scope, rt__store_column_int64(st, 6));
    rt__store_reset(st);
    return RT_OK;
}

/* Another owner's lease that is neither expired nor its holder dead;
 * *dead: its holder died (or is gone: the lease expired); l->suspect: it
 * lost its lock and has RT__LEASE_SUSPECT_MS to prove itself alive. */
static int lease_live_other(rt__lease *l, const lease_row *h, bool *live,
                            bool *dead) {
    *live = *dead = false;
    if (!h->exists || !strcmp(h->owner, l->owner) || h->expired) return RT_OK;
    int verdict;
    int rc = lease_judge(l->s, l->scope, h, &verdict);
    *dead = rc == RT_OK && verdict == LEASE_DEAD;
    *live = rc == RT_OK && !*dead;
    if (verdict == LEASE_SUSPECT) l->suspect = true;
    return rc;
}

#define LEASE_INSERT_SQL                                                       \
    "INSERT INTO rt_lease (scope, job, run_key, owner, fast, live_key, "       \
    "acquired_ms, heartbeat_ms, expires_ms) VALUES ($1, $2, $3, $4, $5, $7, " \
    "rt_now_ms(), rt_now_ms(), rt_now_ms() + $6) ON CONFLICT (scope) DO "     \
    "NOTHING"

/* Take over the row of owner $2 as seen (heartbeat $3): ours again, or a
 * dead or stalled holder's. */
#define LEASE_TAKE_SQL                                                         \
    "UPDATE rt_lease SET owner = $4, fast = $5, live_key = $8, "              \
    "run_key = coalesce($7, run_key), acquired_ms = rt_now_ms(), "            \
    "heartbeat_ms = rt_now_ms(), expires_ms = rt_now_ms() + $6 "              \
    "WHERE scope = $1 AND owner = $2 AND heartbeat_ms = $3"

/* The liveness lock this owner's rows name: NULL without one. */
static rt_value lease_live_value(const rt__lease *l) {
    return l->have_lock ? rt_int((int64_t)l->key) : rt_null();
}

static int lease_acquire_once(rt__lease *l, const char *run_key,
                              bool *took_over, bool waited) {
    rt_store *s = l->s;
    *took_over = false;
    l->holder[0] = '\0';
    int rc = rt__lease_lock(l);
    if (rc != RT_OK) return rc;
    lease_row h;
    memset(&h, 0, sizeof h);
    bool live = false, dead = false;
    /* A live holder is plain to see without the write lock (on SQLite the
     * holder's chunks keep it busy): only a possible takeover needs it. A
     * server's BEGIN takes no lock, so there the read inside the
     * transaction is the only one. */
    if (s->single_writer) rc = lease_read(l, &h);
    if (rc == RT_OK && h.exists) rc = lease_live_other(l, &h, &live, &dead);
    if (rc == RT_OK && live) {
        snprintf(l->holder, sizeof l->holder, "%s", h.owner);
        return RT_HELD;
    }
    if (rc == RT_OK) rc = rt__store_begin(s);
    if (rc == RT_BUSY && h.exists && strcmp(h.owner, l->owner) != 0) {
        /* Its transaction keeps the write lock (SQLite: a long step, which
         * cannot refresh the lease meanwhile): a holder at work. */
        snprintf(l->holder, sizeof l->holder, "%s", h.owner);
        return RT_HELD;
    }
    if (rc != RT_OK) return rc;
    char seen[128];
    snprintf(seen, sizeof seen, "%s", h.exists ? h.owner : "");
    rc = lease_read(l, &h);
    /* A holder other than the one probed: probe it. */
    if (rc == RT_OK && h.exists && strcmp(h.owner, seen) != 0)
        rc = lease_live_other(l, &h, &live, &dead);
    int64_t changes = 0;
    rt_value key = run_key ? rt_text(run_key) : rt_null();
    /* A server gets the write and COMMIT in one round trip; whether the
     * row was written comes back with the commit (RETURNING). */
    bool piped = rt__store_pipelined(s);
    rt_stmt *written = NULL;
    if (rc == RT_OK && !h.exists) {
        rt_value args[] = {rt_text(l->scope), rt_text(l->job), key,
                           rt_text(l->owner), rt_int(l->have_lock),
                           rt_int(l->ttl_ms), lease_live_value(l)};
        rc = piped ? rt__store_send_kept(s, LEASE_INSERT_SQL " RETURNING 1",
                                         7, args, false, &written)
                   : rt__store_exec(s, LEASE_INSERT_SQL, 7, args, &changes);
    } else if (rc == RT_OK &&
               (!strcmp(h.owner, l->owner) || dead || h.expired)) {
        /* Ours, dead (its liveness lock is free) or stalled (expired). */
        rt_value args[] = {rt_text(l->scope), rt_text(h.owner), rt_int(h.hb),
                           rt_text(l->owner), rt_int(l->have_lock),
                           rt_int(l->ttl_ms), key, lease_live_value(l)};
        rc = piped ? rt__store_send_kept(s, LEASE_TAKE_SQL " RETURNING 1", 8,
                                         args, false, &written)
                   : rt__store_exec(s, LEASE_TAKE_SQL, 8, args, &changes);
        /* A dead or stalled holder's run, other than the one this take is
         * for, gets its verdict with the take: a run 'running' without a
         * lease would wait for a holder that never comes back. */
        bool other_run = l->holder_key[0] &&
                         (!run_key || strcmp(run_key, l->holder_key) != 0);
        if (rc == RT_OK && strcmp(h.owner, l->owner) != 0 && other_run) {
            rt_value oargs[] = {rt_text(l->job), rt_text(l->holder_key),
                                rt_text(l->scope), rt_text(l->owner)};
            rc = rt__store_exec_later(s, RT__LC_ORPHAN_SQL, 4, oargs);
        }
    }
    /* Failpoint lease.acquire (test builds): the lease row is written,
     * not yet committed. */
    if (rc == RT_OK) rc = RT_FAILPOINT(s, "lease.acquire");
    if (rc == RT_OK) rc = rt__store_commit(s);
    if (rc != RT_OK) {
        rt__store_abort(s, rc);
        return rc;
    }
    if (written) { /* committed: its row, if any, is there */
        changes = rt__store_step(written) == RT_ROW ? 1 : 0;
        rt__store_reset(written);
    }
    if (changes == 1 && h.exists && strcmp(h.owner, l->owner) != 0) {
        *took_over = true;
        snprintf(l->holder, sizeof l->holder, "%.100s (%s)", h.owner,
                 dead     ? "died"
                 : waited ? "lock free, not renewed"
                          : "lease expired");
    }
    if (changes == 1) return RT_OK;
    /* Lost a race to a holder our snapshot did not show yet: name it. */
    if (!h.exists && lease_read(l, &h) != RT_OK) h.exists = false;
    snprintf(l->holder, sizeof l->holder, "%s",
             h.exists ? h.owner : "another process");
    return RT_HELD;
}

void rt__lease_target(rt__lease *l, const char *job, const char *scope) {
    snprintf(l->job, sizeof l->job, "%s", job);
    snprintf(l->scope, sizeof l->scope, "%s", scope);
    l->lost = 0;
    l->released = false;
    l->keep = false;
    l->run_id = 0;
    l->cancel = 0;
    l->holder[0] = l->holder_key[0] = '\0';
    l->refreshed_ns = 0;
}

int rt__lease_insert(rt__lease *l, rt_store *s, const char *job,
                     const char *scope, const char *run_key) {
    /* On another connection l->s may be busy (the heartbeat thread): the
     * lock, if not held yet, waits for a claim on l->s. */
    int rc = s == l->s ? rt__lease_lock(l) : RT_OK;
    if (rc != RT_OK) return rc;
    rt_value args[] = {rt_text(scope), rt_text(job),
                       run_key ? rt_text(run_key) : rt_null(),
                       rt_text(l->owner), rt_int(l->have_lock),
                       rt_int(l->ttl_ms), lease_live_value(l)};
    int64_t changes = 0;
    rc = rt__store_exec(s, LEASE_INSERT_SQL, 7, args, &changes);
    if (rc == RT_OK && changes == 1) return RT_OK;
    return rc == RT_OK ? RT_HELD : rc;
}

void rt__lease_warm(rt__lease *l) {
    lease_row h;
    lease_read(l, &h);
}

int rt__lease_acquire(rt__lease *l, const char *run_key, bool *took_over) {
    /* A suspect holder proves itself alive by renewing, or is dead when its
     * cut lease expires (lease_judge): wait that long, no more, before the
     * answer. */
    int64_t until = 0;
    for (;;) {
        l->suspect = false;
        int rc = lease_acquire_once(l, run_key, took_over, until != 0);
        if (rc != RT_HELD || !l->suspect || rt__stop_flag) return rc;
        int64_t now = rt__mono_ns();
        if (!until) until = now + (RT__LEASE_SUSPECT_MS + 500) * 1000000LL;
        if (now > until) return rc;
        rt__sleep_ms(100);
    }
}

int rt__lease_peek(rt_store *s, const char *scope, bool *free,
                   char *holder_key, size_t n, char *owner, size_t owner_len,
                   const char **why, int64_t *heartbeat) {
    if (why) *why = "it holds no lease";
    if (heartbeat) *heartbeat = -1;
    rt_value arg = rt_text(scope);
    rt_stmt *st;
    *free = true;
    holder_key[0] = '\0';
    if (owner) owner[0] = '\0';
    int rc = rt__store_query(
        s,
        "SELECT run_key, CASE WHEN expires_ms < rt_now_ms() THEN 1 ELSE 0 "
        "END, fast, owner, coalesce(live_key, -1), heartbeat_ms FROM "
        "rt_lease WHERE scope = $1",
        1, &arg, &st);
    if (rc == RT_DONE) return RT_OK;
    if (rc != RT_ROW) return rc;
    lease_row h = {.exists = true};
    const char *key = rt__store_column_text(st, 0);
    snprintf(holder_key, n, "%s", key ? key : "");
    h.expired = rt__store_column_int64(st, 1) != 0;
    h.fast = rt__store_column_int64(st, 2) != 0;
    snprintf(h.owner, sizeof h.owner, "%s", rt__store_column_text(st, 3));
    h.live_key = lease_row_key(scope, rt__store_column_int64(st, 4));
    h.hb = rt__store_column_int64(st, 5);
    rt__store_reset(st);
    if (owner) snprintf(owner, owner_len, "%s", h.owner);
    if (heartbeat) *heartbeat = h.hb;
    int verdict;
    rc = lease_judge(s, scope, &h, &verdict);
    *free = rc == RT_OK && verdict == LEASE_DEAD;
    if (why)
        *why = !h.expired ? "its liveness lock is free and its process is gone"
               : h.fast   ? "its liveness lock was free and it did not renew"
                          : "its lease expired (no heartbeat for its TTL)";
    if (*free) holder_key[0] = '\0';
    return rc;
}

int rt__lease_set_key(rt__lease *l, const char *run_key) {
    rt_value args[] = {rt_text(l->scope), rt_text(l->owner), rt_text(run_key)};
    /* Once per run, so it may wait out another run's chunk (SQLite). */
    rt__store_set_busy_timeout(l->s, 5000);
    int rc = rt__store_begin(l->s);
    if (rc == RT_OK)
        rc = rt__store_exec(l->s,
                            "UPDATE rt_lease SET run_key = $3 WHERE scope = $1 "
                            "AND owner = $2",
                            3, args, NULL);
    rc = rc == RT_OK ? rt__store_commit(l->s) : rt__store_abort(l->s, rc);
    rt__store_set_busy_timeout(l->s, 200);
    return rc;
}

/* One heartbeat; sets l->lost when the lease is no longer ours. A
 * session that ended (the server dropped it: its liveness lock went with
 * it) is replaced and the lock taken again before the beat, which then
 * proves this holder alive to whoever found its lock free (lease_judge). */
static void lease_beat(rt__lease *l) {
    rt_store *s = l->s;
    if (rt__store_broken(s)) {
        if (rt__store_reconnect(s) != RT_OK) return;
        l->session = rt__store_session_id(s);
        rt__log(RT_LOG_WARN, "lease_reconnected", NULL,
                "the lease's database session of %s ended; reconnected%s",
                l->scope, l->fast ? " and took its liveness lock again" : "");
    } else if (l->have_lock && rt__store_session_id(s) != l->session) {
        /* Another server session answers on this connection: a
         * transaction-pooling proxy. Session locks leak there; stop
         * relying on them and let the lease alone decide. */
        rt__log(RT_LOG_WARN, "fast_takeover_off", NULL,
                "the database session changed under this connection "
                "(a transaction-pooling proxy?); takeover now waits for the "
                "lease TTL");
        l->have_lock = false;
        l->fast = false;
    }
    /* Lost with a session, or not had when an observer probed it. */
    if (rt__lease_lock(l) != RT_OK) l->have_lock = false;
    rt_value args[] = {rt_text(l->scope), rt_text(l->owner), rt_int(l->ttl_ms),
                       rt_int(l->have_lock)};
    int64_t changes = -1;
    /* Failpoint lease.renew (test builds); an ioerr skips this beat as a
     * failed UPDATE would. */
    int rc = RT_FAILPOINT(s, "lease.renew");
    if (rc == RT_OK)
        rc = rt__store_exec(s,
                            "UPDATE rt_lease SET heartbeat_ms = rt_now_ms(), "
                            "expires_ms = rt_now_ms() + $3, fast = $4 "
                            "WHERE scope = $1 AND owner = $2",
                            4, args, &changes);
    if (rc == RT_OK && changes == 0) l->lost = 1;
}

/* Did `ratchet cancel` ask for the held run? A read, on both backends. */
static void lease_check_cancel(rt__lease *l) {
    rt_value arg = rt_int(l->run_id);
    rt_stmt *st;
    if (rt__store_broken(l->s)) return; /* the heartbeat reconnects */
    int rc = rt__store_query(l->s,
                             "SELECT cancel_requested FROM rt_run WHERE id = $1",
                             1, &arg, &st);
    if (rc != RT_ROW) return;
    if (rt__store_column_int64(st, 0) != 0) l->cancel = 1;
    rt__store_reset(st);
}

/* The cancel flag is looked at every second at most, for it ends the
 * chunk at its next item: `ratchet cancel` takes effect within a second. */
#define LEASE_CANCEL_POLL_MS 1000
/* How often a holder looks at its lease connection for a dropped session. */
#define LEASE_WATCH_MS 100

/*
 * The heartbeat thread. While a hold is active (rt__lease_start) it beats
 * every TTL/3 and looks for a cancel; between holds it waits. A worker's
 * lease keeps one thread for all its runs: a thread created and joined per
 * run cost ~28 µs of CPU (clone, TLS, exit), a tenth of a no-op run's.
 */
static void *lease_thread(void *arg) {
    rt__lease *l = arg;
    pthread_mutex_lock(&l->mu);
    while (!l->stopping) {
        if (!l->active || l->lost) { /* between holds */
            pthread_cond_wait(&l->cv, &l->mu);
            continue;
        }
        uint64_t hold = l->hold;
        int64_t every_ms = l->ttl_ms / 3;
        if (every_ms < 50) every_ms = 50;
        if (every_ms > 10000) every_ms = 10000;
        int64_t wake_ms = l->run_id && every_ms > LEASE_CANCEL_POLL_MS
                              ? LEASE_CANCEL_POLL_MS
                              : every_ms;
        /* Where a session can end under a live process, its end is seen
         * within LEASE_WATCH_MS and mended at once (lease_beat): well
         * inside the RT__LEASE_SUSPECT_MS an observer grants. */
        if (l->s->liveness_drops && wake_ms > LEASE_WATCH_MS)
            wake_ms = LEASE_WATCH_MS;
        int64_t next_beat_ns = rt__mono_ns() + every_ms * 1000000;
        for (;;) {
            struct timespec until; /* on l->cv's clock, CLOCK_MONOTONIC */
            clock_gettime(CLOCK_MONOTONIC, &until);
            int64_t ns = until.tv_nsec + (wake_ms % 1000) * 1000000;
            until.tv_sec += (time_t)(wake_ms / 1000 + ns / 1000000000);
            until.tv_nsec = (long)(ns % 1000000000);
            while (!l->stopping && l->active && l->hold == hold &&
                   pthread_cond_timedwait(&l->cv, &l->mu, &until) != ETIMEDOUT) {
            }
            if (l->stopping || !l->active || l->hold != hold || l->lost) break;
            l->busy = true;
            pthread_mutex_unlock(&l->mu);
            bool gone = rt__store_watch(l->s);
            if (l->run_id && !l->cancel && !gone) lease_check_cancel(l);
            if (gone || rt__mono_ns() >= next_beat_ns) {
                lease_beat(l);
                next_beat_ns = rt__mono_ns() + every_ms * 1000000;
            }
            pthread_mutex_lock(&l->mu);
            l->busy = false;
            pthread_cond_broadcast(&l->cv); /* a stop may wait for this */
        }
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

int rt__lease_start(rt__lease *l) {
    pthread_mutex_lock(&l->mu);
    l->active = true;
    l->hold++;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
    if (l->running) return RT_OK;
    /* Signals belong to the main thread (its handlers stop the step). */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int err = pthread_create(&l->thread, NULL, lease_thread, l);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (err) return RT_NOMEM;
    l->running = true;
    return RT_OK;
}

/* The hold ends: no beat after this returns (one under way is awaited).
 * The thread stays for the next hold; it sleeps out its current wait. */
static void lease_stop_thread(rt__lease *l) {
    if (!l->running) return;
    pthread_mutex_lock(&l->mu);
    l->active = false;
    while (l->busy) pthread_cond_wait(&l->cv, &l->mu);
    pthread_mutex_unlock(&l->mu);
}

/* The lease is closed: the thread ends. */
static void lease_end_thread(rt__lease *l) {
    if (!l->running) return;
    pthread_mutex_lock(&l->mu);
    l->active = false;
    l->stopping = true;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
    pthread_join(l->thread, NULL);
    l->running = false;
}

void rt__lease_release(rt__lease *l) {
    if (!l->s) return;
    lease_stop_thread(l);
    l->s->finishing = true; /* give it up even while stopping */
    /* Failpoint lease.release (test builds); an ioerr leaves the row
     * behind as a failed DELETE would. A release that fails otherwise is
     * tried again: on a connection the server dropped (a new session), or
     * after other writers' chunks (SQLite: a longer wait for the lock). */
    if (!l->lost && !l->released && !l->keep &&
        RT_FAILPOINT(l->s, "lease.release") == RT_OK) {
        rt_value args[] = {rt_text(l->scope), rt_text(l->owner)};
        rt__store_set_busy_timeout(l->s, 5000);
        for (int tries = 0; tries < 2; tries++) {
            int rc = rt__store_begin(l->s);
            if (rc == RT_OK)
                rc = rt__store_exec(l->s, RT__LEASE_DELETE_SQL, 2, args, NULL);
            rc = rc == RT_OK ? rt__store_commit(l->s)
                             : rt__store_abort(l->s, rc);
            if (rc == RT_OK || !rt__store_broken(l->s) ||
                rt__store_reconnect(l->s) != RT_OK)
                break;
        }
        rt__store_set_busy_timeout(l->s, 200);
    }
    l->s->finishing = false;
}

void rt__lease_close(rt__lease *l) {
    if (!l->s) return;
    lease_end_thread(l);
    /* A session's advisory locks end with it. The unlock's round trip is
     * spared when the connection closes now (ours) or the process is
     * stopping: a borrowed one is then closed on the way out (cli.c's
     * run, worker.c), and a stop's latency counts. */
    if (l->borrowed && !rt__stop_flag) lease_unlock(l);
    if (!l->borrowed) rt__store_close(l->s);
    l->s = NULL;
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cv);
}

int rt__lease_refresh_sql(rt__lease *l, rt_store *work) {
    /* Every TTL/4 is plenty; each refresh is one more page per commit. */
    int64_t now = rt__mono_ns();
    if (l->refreshed_ns && now - l->refreshed_ns < l->ttl_ms * 250000) return RT_OK;
    l->refreshed_ns = now;
    int rc = RT_FAILPOINT(work, "lease.renew"); /* test builds */
    if (rc != RT_OK) return rc;
    rt_value args[] = {rt_text(l->scope), rt_text(l->owner), rt_int(l->ttl_ms)};
    return rt__store_exec(work,
                          "UPDATE rt_lease SET heartbeat_ms = rt_now_ms(), "
                          "expires_ms = rt_now_ms() + $3 WHERE scope = $1 AND "
                          "owner = $2",
                          3, args, NULL);
}
