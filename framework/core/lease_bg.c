/*
 * lease_bg.c — a run's lease, taken on a thread of its own (PostgreSQL,
 * `ratchet run`). The thread opens the lease's connection and readies the
 * lease (owner, session, liveness lock) while the caller opens and migrates
 * the work connection; told the scope, it takes the lease while the caller
 * reads the run. Each of these costs a server backend's start or a round
 * trip; side by side, the two chains overlap instead of adding up.
 *
 * The caller either orders the take (rt__lease_bg_take, then
 * rt__lease_bg_taken), or stops the thread and uses the readied lease
 * itself (rt__lease_bg_stop). SQLite URLs are left alone: their open is
 * local and cheap, and a thread would only add to it.
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <signal.h>
#include <string.h>

#include "core/core.h"

enum { LEASE_BG_WAIT, LEASE_BG_TAKE, LEASE_BG_QUIT };

static void *lease_bg_main(void *arg) {
    rt__lease_bg *b = arg;
    char err[RT_ERRMSG_MAX]; /* not kept: the caller's own open reports it */
    rt_store *s = NULL;
    if (rt__store_open(b->url, &s, err, sizeof err) == RT_OK) {
        b->lease.s = s; /* borrowed: closed by rt__lease_bg_end */
        if (rt__lease_open(&b->lease, b->url, "", "", b->ttl_ms, err,
                           sizeof err) == RT_OK)
            (void)rt__lease_lock(&b->lease); /* else again at the take */
        else
            b->lease.s = NULL;
    }
    pthread_mutex_lock(&b->mu);
    b->s = s;
    while (b->order == LEASE_BG_WAIT) pthread_cond_wait(&b->cv, &b->mu);
    bool take = b->order == LEASE_BG_TAKE && b->lease.s;
    pthread_mutex_unlock(&b->mu);
    if (take) {
        rt__lease_target(&b->lease, b->job, b->scope);
        b->rc = rt__lease_acquire(&b->lease, b->key, &b->took_over);
    }
    return NULL;
}

void rt__lease_bg_start(rt__lease_bg *b, const char *url, int64_t ttl_ms) {
    memset(b, 0, sizeof *b);
    if (!rt__store_url_remote(url)) return;
    b->url = url;
    b->ttl_ms = ttl_ms;
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->cv, NULL);
    /* The stop signals stay with the threads that act on them. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    b->started = pthread_create(&b->thread, NULL, lease_bg_main, b) == 0;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (!b->started) {
        pthread_mutex_destroy(&b->mu);
        pthread_cond_destroy(&b->cv);
    }
}

/* Give the thread its order (once) and wait for it to end. */
static void lease_bg_finish(rt__lease_bg *b, int order) {
    if (!b->started || b->joined) return;
    pthread_mutex_lock(&b->mu);
    if (b->order == LEASE_BG_WAIT) b->order = order;
    pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
    pthread_join(b->thread, NULL);
    b->joined = true;
}

bool rt__lease_bg_take(rt__lease_bg *b, const char *job, const char *scope,
                       const char *key) {
    if (!b->started || b->joined) return false;
    pthread_mutex_lock(&b->mu);
    bool given = b->order == LEASE_BG_WAIT;
    if (given) { /* done once the thread is ready */
        b->job = job;
        b->scope = scope;
        b->key = key;
        b->order = LEASE_BG_TAKE;
        pthread_cond_broadcast(&b->cv);
    }
    pthread_mutex_unlock(&b->mu);
    return given;
}

int rt__lease_bg_taken(rt__lease_bg *b, bool *took_over) {
    lease_bg_finish(b, LEASE_BG_QUIT);
    *took_over = b->took_over;
    return b->lease.s ? b->rc : RT_CONN;
}

rt__lease *rt__lease_bg_stop(rt__lease_bg *b) {
    lease_bg_finish(b, LEASE_BG_QUIT);
    return b->started && b->lease.s ? &b->lease : NULL;
}

void rt__lease_bg_end(rt__lease_bg *b) {
    if (!b->started) return;
    lease_bg_finish(b, LEASE_BG_QUIT);
    rt__lease_close(&b->lease); /* a no-op when its user closed it */
    rt__store_close(b->s);
    b->s = NULL;
    pthread_mutex_destroy(&b->mu);
    pthread_cond_destroy(&b->cv);
    b->started = false;
}
