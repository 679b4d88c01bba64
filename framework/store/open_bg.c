/*
 * open_bg.c — open a second connection on a thread of its own while the
 * caller opens and uses the first. A worker on PostgreSQL needs two (the
 * work connection and the leases'), and each costs the server's
 * authentication and backend start (~15 ms here): one after the other they
 * add up, side by side they overlap. (A `run` does the same and more on its
 * lease's thread: lease_bg.c.) URLs of a backend that is not remote
 * (rt__store_url_remote: SQLite) are left alone: their open is local and
 * cheap, and a thread would only add to it.
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <signal.h>
#include <string.h>

#include "store/store.h"

static void *store_bg_main(void *arg) {
    rt__store_bg *bg = arg;
    char err[RT_ERRMSG_MAX]; /* not kept: the caller's own open reports it */
    if (rt__store_open(bg->url, &bg->s, err, sizeof err) != RT_OK) bg->s = NULL;
    return NULL;
}

void rt__store_bg_start(rt__store_bg *bg, const char *url) {
    memset(bg, 0, sizeof *bg);
    if (!rt__store_url_remote(url)) return;
    bg->url = url;
    /* The stop signals stay with the threads that act on them. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    bg->started = pthread_create(&bg->thread, NULL, store_bg_main, bg) == 0;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

rt_store *rt__store_bg_join(rt__store_bg *bg) {
    if (!bg->started) return NULL;
    pthread_join(bg->thread, NULL);
    bg->started = false;
    rt_store *s = bg->s;
    bg->s = NULL;
    return s;
}
