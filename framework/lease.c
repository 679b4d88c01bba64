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
 *   - the holder also holds the scope's liveness lock (store.h), which the
 *     OS or the server drops the instant the holder dies, so a waiting
 *     process that can take that lock knows the holder is dead and takes
 *     over at once;
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

#include "internal.h"

/* FNV-1a: the scope's liveness lock number, the same in every process. */
static uint64_t lease_hash(const char *s) {
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h >> 1; /* fits a positive bigint */
}

static void lease_owner_id(char *out, size_t n) {
    char host[64] = "localhost";
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = '\0';
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
    }
    if (rc != RT_OK) return rc;
    if (l->s->ops->set_busy_timeout) l->s->ops->set_busy_timeout(l->s, 200);
    snprintf(l->job, sizeof l->job, "%s", job);
    snprintf(l->scope, sizeof l->scope, "%s", scope);
    lease_owner_id(l->owner, sizeof l->owner);
    l->key = lease_hash(scope);
    l->ttl_ms = ttl_ms;
    l->fast = l->s->fast_takeover && l->s->ops->liveness_try != NULL;
    l->session = l->s->ops->session_id ? l->s->ops->session_id(l->s) : -1;
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv, NULL);
    return RT_OK;
}

static void lease_unlock(rt__lease *l) {
    if (l->have_lock) l->s->ops->liveness_release(l->s, l->key);
    l->have_lock = false;
}

/* Fill l->holder* from the row; the caller is in a transaction. */
static int lease_read(rt__lease *l, bool *exists, bool *expired, bool *fast,
                      char *owner, size_t owner_len, int64_t *hb) {
    rt_value arg = rt_text(l->scope);
    rt_stmt *st;
    int rc = rt__store_query(
        l->s,
        "SELECT owner, run_key, rt_now_ms() - heartbeat_ms, "
        "CASE WHEN expires_ms < rt_now_ms() THEN 1 ELSE 0 END, fast, "
        "heartbeat_ms FROM rt_lease WHERE scope = $1",
        1, &arg, &st);
    *exists = rc == RT_ROW;
    if (rc != RT_ROW) return rc == RT_DONE ? RT_OK : rc;
    const rt_store_ops *o = l->s->ops;
    snprintf(owner, owner_len, "%s", o->column_text(st, 0));
    const char *key = o->column_text(st, 1);
    snprintf(l->holder_key, sizeof l->holder_key, "%s", key ? key : "");
    l->holder_age_ms = o->column_int64(st, 2);
    *expired = o->column_int64(st, 3) != 0;
    *fast = o->column_int64(st, 4) != 0;
    *hb = o->column_int64(st, 5);
    o->reset(st);
    return RT_OK;
}

#define LEASE_INSERT_SQL                                                       \
    "INSERT INTO rt_lease (scope, job, run_key, owner, fast, acquired_ms, "   \
    "heartbeat_ms, expires_ms) VALUES ($1, $2, $3, $4, $5, rt_now_ms(), "     \
    "rt_now_ms(), rt_now_ms() + $6) ON CONFLICT (scope) DO NOTHING"

int rt__lease_acquire(rt__lease *l, const char *run_key, bool *took_over) {
    rt_store *s = l->s;
    *took_over = false;
    l->holder[0] = '\0';
    if (l->fast && !l->have_lock) {
        int rc = s->ops->liveness_try(s, l->key, &l->have_lock);
        if (rc != RT_OK) return rc;
    }
    bool exists, expired = false, fast = false;
    char owner[128] = "";
    int64_t hb = 0;
    /* A live holder is plain to see without the write lock (on SQLite the
     * holder's chunks keep it busy): only a possible takeover needs it. */
    int rc = lease_read(l, &exists, &expired, &fast, owner, sizeof owner, &hb);
    if (rc == RT_OK && exists && strcmp(owner, l->owner) != 0 && !expired &&
        !(fast && l->have_lock)) {
        lease_unlock(l);
        snprintf(l->holder, sizeof l->holder, "%s", owner);
        return RT_HELD;
    }
    if (rc == RT_OK) rc = rt__store_begin(s);
    if (rc == RT_BUSY && exists && strcmp(owner, l->owner) != 0) {
        /* Its transaction keeps the write lock (SQLite: a long step, which
         * cannot refresh the lease meanwhile): a holder at work. */
        lease_unlock(l);
        snprintf(l->holder, sizeof l->holder, "%s", owner);
        return RT_HELD;
    }
    if (rc != RT_OK) {
        lease_unlock(l);
        return rc;
    }
    rc = lease_read(l, &exists, &expired, &fast, owner, sizeof owner, &hb);
    int64_t changes = 0;
    rt_value key = run_key ? rt_text(run_key) : rt_null();
    if (rc == RT_OK && !exists) {
        rt_value args[] = {rt_text(l->scope), rt_text(l->job), key,
                           rt_text(l->owner), rt_int(l->have_lock),
                           rt_int(l->ttl_ms)};
        rc = rt__store_exec(s, LEASE_INSERT_SQL, 6, args, &changes);
    } else if (rc == RT_OK) {
        /* Dead (its liveness lock is ours now) or stalled (expired). */
        bool dead = fast && l->have_lock;
        if (!strcmp(owner, l->owner) || dead || expired) {
            rt_value args[] = {rt_text(l->scope), rt_text(owner), rt_int(hb),
                               rt_text(l->owner), rt_int(l->have_lock),
                               rt_int(l->ttl_ms), key};
            rc = rt__store_exec(
                s,
                "UPDATE rt_lease SET owner = $4, fast = $5, run_key = "
                "coalesce($7, run_key), acquired_ms = rt_now_ms(), "
                "heartbeat_ms = rt_now_ms(), expires_ms = rt_now_ms() + $6 "
                "WHERE scope = $1 AND owner = $2 AND heartbeat_ms = $3",
                7, args, &changes);
            *took_over = changes == 1 && strcmp(owner, l->owner) != 0;
            if (*took_over)
                snprintf(l->holder, sizeof l->holder, "%s (%s)", owner,
                         dead ? "died" : "lease expired");
        }
    }
    /* Failpoint lease.acquire (test builds): the lease row is written,
     * not yet committed. */
    if (rc == RT_OK) rc = RT_FAILPOINT(s, "lease.acquire");
    if (rc == RT_OK) rc = rt__store_commit(s);
    if (rc != RT_OK) {
        rt__store_abort(s, rc);
        lease_unlock(l);
        return rc;
    }
    if (changes == 1) return RT_OK;
    lease_unlock(l);
    /* Lost a race to a holder our snapshot did not show yet: name it. */
    if (!exists &&
        lease_read(l, &exists, &expired, &fast, owner, sizeof owner, &hb) != RT_OK)
        owner[0] = '\0';
    snprintf(l->holder, sizeof l->holder, "%s", owner[0] ? owner : "another process");
    return RT_HELD;
}

void rt__lease_target(rt__lease *l, const char *job, const char *scope) {
    snprintf(l->job, sizeof l->job, "%s", job);
    snprintf(l->scope, sizeof l->scope, "%s", scope);
    l->key = lease_hash(scope);
    l->have_lock = false;
    l->lost = 0;
    l->released = false;
    l->run_id = 0;
    l->cancel = 0;
    l->stopping = false;
    l->holder[0] = l->holder_key[0] = '\0';
    l->refreshed_ns = 0;
}

int rt__lease_insert(rt__lease *l, const char *run_key) {
    rt_store *s = l->s;
    if (l->fast && !l->have_lock) {
        int rc = s->ops->liveness_try(s, l->key, &l->have_lock);
        if (rc != RT_OK) return rc;
        /* Someone still holds the scope's liveness lock (the last holder
         * between its final commit and its exit, or a peek): a lease taken
         * without it (fast = 0) would outlive a crash of ours by the TTL. */
        if (!l->have_lock) return RT_HELD;
    }
    rt_value args[] = {rt_text(l->scope), rt_text(l->job),
                       run_key ? rt_text(run_key) : rt_null(),
                       rt_text(l->owner), rt_int(l->have_lock),
                       rt_int(l->ttl_ms)};
    int64_t changes = 0;
    int rc = rt__store_exec(s, LEASE_INSERT_SQL, 6, args, &changes);
    if (rc == RT_OK && changes == 1) return RT_OK;
    lease_unlock(l);
    return rc == RT_OK ? RT_HELD : rc;
}

void rt__lease_warm(rt__lease *l) {
    bool exists, expired, fast;
    char owner[128];
    int64_t hb;
    lease_read(l, &exists, &expired, &fast, owner, sizeof owner, &hb);
}

int rt__lease_peek(rt_store *s, const char *scope, bool *free,
                   char *holder_key, size_t n, char *owner, size_t owner_len) {
    rt_value arg = rt_text(scope);
    rt_stmt *st;
    *free = true;
    holder_key[0] = '\0';
    if (owner) owner[0] = '\0';
    int rc = rt__store_query(
        s,
        "SELECT run_key, CASE WHEN expires_ms < rt_now_ms() THEN 1 ELSE 0 "
        "END, fast, owner FROM rt_lease WHERE scope = $1",
        1, &arg, &st);
    if (rc == RT_DONE) return RT_OK;
    if (rc != RT_ROW) return rc;
    const char *key = s->ops->column_text(st, 0);
    snprintf(holder_key, n, "%s", key ? key : "");
    bool expired = s->ops->column_int64(st, 1) != 0;
    bool fast = s->ops->column_int64(st, 2) != 0;
    if (owner) snprintf(owner, owner_len, "%s", s->ops->column_text(st, 3));
    s->ops->reset(st);
    rc = RT_OK;
    *free = expired;
    if (!expired && fast && s->fast_takeover && s->ops->liveness_try) {
        uint64_t lock = lease_hash(scope);
        bool got = false;
        rc = s->ops->liveness_try(s, lock, &got);
        if (got) s->ops->liveness_release(s, lock);
        *free = got; /* the holder's lock is gone: it died */
    }
    if (*free) holder_key[0] = '\0';
    return rc;
}

int rt__lease_set_key(rt__lease *l, const char *run_key) {
    rt_value args[] = {rt_text(l->scope), rt_text(l->owner), rt_text(run_key)};
    /* Once per run, so it may wait out another run's chunk (SQLite). */
    if (l->s->ops->set_busy_timeout) l->s->ops->set_busy_timeout(l->s, 5000);
    int rc = rt__store_begin(l->s);
    if (rc == RT_OK)
        rc = rt__store_exec(l->s,
                            "UPDATE rt_lease SET run_key = $3 WHERE scope = $1 "
                            "AND owner = $2",
                            3, args, NULL);
    rc = rc == RT_OK ? rt__store_commit(l->s) : rt__store_abort(l->s, rc);
    if (l->s->ops->set_busy_timeout) l->s->ops->set_busy_timeout(l->s, 200);
    return rc;
}

/* One heartbeat; sets l->lost when the lease is no longer ours. */
static void lease_beat(rt__lease *l) {
    rt_store *s = l->s;
    if (rt__store_broken(s)) {
        if (rt__store_reconnect(s) != RT_OK) return;
        l->session = s->ops->session_id ? s->ops->session_id(s) : -1;
        if (l->have_lock) { /* the old session took the lock with it */
            bool got = false;
            s->ops->liveness_try(s, l->key, &got);
            l->have_lock = got;
        }
    } else if (l->have_lock && s->ops->session_id &&
               s->ops->session_id(s) != l->session) {
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
    if (l->s->ops->column_int64(st, 0) != 0) l->cancel = 1;
    l->s->ops->reset(st);
}

/* The cancel flag is looked at every second at most, for it ends the
 * chunk at its next item: `ratchet cancel` takes effect within a second. */
#define LEASE_CANCEL_POLL_MS 1000

static void *lease_thread(void *arg) {
    rt__lease *l = arg;
    int64_t every_ms = l->ttl_ms / 3;
    if (every_ms < 50) every_ms = 50;
    if (every_ms > 10000) every_ms = 10000;
    int64_t wake_ms = l->run_id && every_ms > LEASE_CANCEL_POLL_MS
                          ? LEASE_CANCEL_POLL_MS
                          : every_ms;
    int64_t next_beat_ns = rt__mono_ns() + every_ms * 1000000;
    pthread_mutex_lock(&l->mu);
    while (!l->stopping && !l->lost) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        int64_t ns = until.tv_nsec + (wake_ms % 1000) * 1000000;
        until.tv_sec += (time_t)(wake_ms / 1000 + ns / 1000000000);
        until.tv_nsec = (long)(ns % 1000000000);
        while (!l->stopping &&
               pthread_cond_timedwait(&l->cv, &l->mu, &until) != ETIMEDOUT) {
        }
        if (l->stopping) break;
        pthread_mutex_unlock(&l->mu);
        if (l->run_id && !l->cancel) lease_check_cancel(l);
        if (rt__mono_ns() >= next_beat_ns) {
            lease_beat(l);
            next_beat_ns = rt__mono_ns() + every_ms * 1000000;
        }
        pthread_mutex_lock(&l->mu);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

int rt__lease_start(rt__lease *l) {
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

static void lease_stop_thread(rt__lease *l) {
    if (!l->running) return;
    pthread_mutex_lock(&l->mu);
    l->stopping = true;
    pthread_cond_signal(&l->cv);
    pthread_mutex_unlock(&l->mu);
    pthread_join(l->thread, NULL);
    l->running = false;
}

void rt__lease_release(rt__lease *l) {
    if (!l->s) return;
    lease_stop_thread(l);
    l->s->finishing = true; /* give it up even while stopping */
    /* Failpoint lease.release (test builds); an ioerr leaves the row
     * behind as a failed DELETE would. */
    if (!l->lost && !l->released && RT_FAILPOINT(l->s, "lease.release") == RT_OK) {
        rt_value args[] = {rt_text(l->scope), rt_text(l->owner)};
        if (rt__store_begin(l->s) == RT_OK) {
            if (rt__store_exec(l->s,
                               "DELETE FROM rt_lease WHERE scope = $1 AND "
                               "owner = $2",
                               2, args, NULL) == RT_OK)
                rt__store_commit(l->s);
            else
                rt__store_abort(l->s, RT_DBERR);
        }
    }
    l->s->finishing = false;
    lease_unlock(l);
}

void rt__lease_close(rt__lease *l) {
    if (!l->s) return;
    lease_stop_thread(l);
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
