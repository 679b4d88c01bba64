/*
 * metrics_serve.c — `--metrics-listen` for `daemon` and `worker`: the
 * metrics of metrics.c served by the responder of http.c from a thread of
 * the supervising process (the daemon, or the worker pool's supervisor),
 * so one port answers for the whole process tree.
 *
 * Each scrape opens a connection of its own, reads, and closes it. A
 * resident one would save a connect per scrape, but the worker pool forks
 * children that go on without exec, and a child must not inherit an open
 * SQLite connection (SQLite's per-process lock bookkeeping would be
 * copied along with it) or a libpq call half done. So with guard_forks a
 * scrape holds ms_fork_mu from open to close, and a fork (pthread_atfork)
 * takes it first: a child is forked only between scrapes, with no
 * connection of the thread's open. Such a fork only restarts a crashed
 * worker process, and waits at most for one scrape (its queries are cut at
 * 10 s on PostgreSQL, its connect at libpq's connect_timeout). The daemon
 * execs its children at once and needs no guard: a slow scrape never
 * delays a slot's start.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "service/http.h"
#include "service/metrics.h"

#define MS_TYPE "text/plain; version=0.0.4; charset=utf-8"
#define MS_LOG_EVERY_NS 10000000000LL

struct rt__metrics_server {
    rt__http *http;
    char *url;
    bool guard;
    pthread_mutex_t mu; /* guards s and stopping */
    rt_store *s;        /* the scrape's connection while one runs */
    bool stopping;
    int64_t logged_ns;  /* last error logged (monotonic; the thread's own) */
};

static pthread_mutex_t ms_fork_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t ms_once = PTHREAD_ONCE_INIT;

static void ms_fork_lock(void) { pthread_mutex_lock(&ms_fork_mu); }
static void ms_fork_unlock(void) { pthread_mutex_unlock(&ms_fork_mu); }
static void ms_atfork(void) {
    pthread_atfork(ms_fork_lock, ms_fork_unlock, ms_fork_unlock);
}

/* One scrape, on the server's thread. */
static int ms_scrape(void *arg, rt__buf *body) {
    rt__metrics_server *m = arg;
    char err[RT_ERRMSG_MAX];
    rt_store *s = NULL;
    if (m->guard) pthread_mutex_lock(&ms_fork_mu);
    int rc = rt__store_open(m->url, &s, err, sizeof err);
    if (rc == RT_OK) {
        pthread_mutex_lock(&m->mu);
        m->s = s;
        bool stopping = m->stopping;
        pthread_mutex_unlock(&m->mu);
        /* A scraper gives up after ~10 s; so does the query (where the
         * store can bound it: store.h, statement_timeout). */
        rc = rt__store_statement_timeout(s, 10000);
        if (rc == RT_OK) rc = stopping ? RT_STOPPED : rt__metrics_render(s, body);
        if (rc != RT_OK) snprintf(err, sizeof err, "%s", s->errmsg);
        pthread_mutex_lock(&m->mu);
        m->s = NULL;
        pthread_mutex_unlock(&m->mu);
        rt__store_close(s);
    }
    if (m->guard) pthread_mutex_unlock(&ms_fork_mu);
    if (rc == RT_OK) return 200;
    int64_t now = rt__mono_ns();
    if (!m->logged_ns || now - m->logged_ns >= MS_LOG_EVERY_NS) {
        m->logged_ns = now;
        rt__log(RT_LOG_ERROR, "metrics_error", NULL,
                "cannot read the metrics: %s", err);
    }
    body->len = 0;
    rt__buf_puts(body, "cannot read the metrics from the database; see the "
                       "log of the process that serves them\n");
    return 503;
}

int rt__metrics_listen_check(const char *cmd, const char *v) {
    if (!v)
        return rt__usage_error("%s: --metrics-listen needs [ADDR:]PORT, e.g. "
                               "9100 or 127.0.0.1:9100", cmd);
    struct sockaddr_storage ss;
    socklen_t len;
    char why[256];
    if (rt__http_parse_listen(v, &ss, &len, why, sizeof why) != RT_OK)
        return rt__usage_error("%s: --metrics-listen '%s': %s", cmd, v, why);
    return RT_EXIT_OK;
}

int rt__metrics_serve_start(const char *listen, const char *url,
                            bool guard_forks, rt__metrics_server **out) {
    *out = NULL;
    pthread_once(&ms_once, ms_atfork);
    rt__metrics_server *m = rt__xcalloc(1, sizeof *m);
    m->url = rt__xstrdup(url);
    m->guard = guard_forks;
    pthread_mutex_init(&m->mu, NULL);
    char err[512];
    if (rt__http_start(listen, "/metrics", MS_TYPE, ms_scrape, m, &m->http, err,
                       sizeof err) != RT_OK) {
        rt__log(RT_LOG_ERROR, "metrics_listen", NULL, "--metrics-listen %s", err);
        pthread_mutex_destroy(&m->mu);
        free(m->url);
        free(m);
        return RT_EXIT_USAGE;
    }
    rt__log(RT_LOG_INFO, "metrics_listen", NULL,
            "serving metrics on http://%s/metrics", rt__http_address(m->http));
    *out = m;
    return RT_EXIT_OK;
}

void rt__metrics_serve_stop(rt__metrics_server *m) {
    if (!m) return;
    pthread_mutex_lock(&m->mu);
    m->stopping = true;
    rt__store_interrupt(m->s);
    pthread_mutex_unlock(&m->mu);
    rt__http_stop(m->http);
    pthread_mutex_destroy(&m->mu);
    free(m->url);
    free(m);
}
