/*
 * entry.c — the one way into the core. It owns:
 *   - rt__db_open: open a database and bring its schema up to date, the
 *     first thing of every command (cli.c, daemon.c, worker.c) and of
 *     rt_run, so each meets a bad URL, a newer schema or a full disk alike;
 *   - rt__exit_code: the one table from return codes (RT_*) to the CLI's
 *     exit codes (RT_EXIT_*), public as rt_exit_code (admin.c);
 *   - rt__run_job: open, migrate and run or resume a job (rt__runner_run),
 *     the path `ratchet run` and rt_run share;
 *   - rt_run, rt_request_stop and rt_clear_stop: that path for programs
 *     that embed ratchet, without argv, signal handlers or exit.
 *
 * A stop is one process-wide flag (rt__stop_flag, signals.c): the stop
 * signals set it under rt_main, rt_request_stop sets it for an embedder,
 * and everything that must notice a stop reads it. An embedder's grace
 * (rt_run_opts.grace_s) cannot end the process as the CLI's deadline does;
 * instead a watcher thread per rt_run interrupts the statement in flight
 * once the grace has passed, and the run then ends as a stop does. The
 * watcher learns of the request through a pipe (write(2) is
 * async-signal-safe, a condition variable is not): rt_request_stop writes
 * a byte, which stays unread until rt_clear_stop, so every watcher sees
 * the pipe readable.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/core.h"

/* ------------------------------------------------------- exit codes */

int rt__exit_code(int rc, rt_store *s) {
    switch (rc) {
    case RT_OK:
    case RT_DONE:
        return RT_EXIT_OK;
    case RT_INVALID:
    case RT_MISUSE:
    case RT_SCHEMA:
    case RT_CHANGED:
    case RT_NOTFOUND:
        return RT_EXIT_USAGE;
    case RT_HELD:
    case RT_FENCED:
        return RT_EXIT_HELD;
    case RT_STOPPED:
    case RT_BUSY: /* a lock not had in time; SQLite's open: a full disk */
        return RT_EXIT_INTERRUPTED;
    case RT_TIMEOUT:
        return RT_EXIT_TIMEOUT;
    default:
        break;
    }
    if (!s) /* nothing opened */
        return rc == RT_CONN || rc == RT_NOMEM || rc == RT_ERROR
                   ? RT_EXIT_FAILED
                   : RT_EXIT_USAGE;
    if (rc == RT_CONN || rt__store_broken(s) || s->disk_full)
        return RT_EXIT_INTERRUPTED;
    return RT_EXIT_FAILED;
}

/* ---------------------------------------------------- open + migrate */

int rt__db_open(const char *url, rt_store **s, int *from, int *to, int *code,
                char *err, size_t errlen) {
    char msg[2 * RT_ERRMSG_MAX];
    int f = 0, t = 0;
    int rc = rt__store_open(url, s, msg, sizeof msg);
    if (rc != RT_OK) {
        *s = NULL;
        rt__log(RT_LOG_ERROR, "db_open", NULL, "%s", msg);
        if (code) *code = rt__exit_code(rc, NULL);
    } else if ((rc = rt__migrate(*s, &f, &t)) != RT_OK) {
        snprintf(msg, sizeof msg, "%s: %s", (*s)->url_display, (*s)->errmsg);
        rt__log(RT_LOG_ERROR, rc == RT_SCHEMA ? "schema" : "migrate", NULL,
                "%s", msg);
        /* A connection lost on the way (server restart) is temporary, and
         * so are a full disk and a migration's locks not had in time. */
        if (code) *code = rt__exit_code(rc, *s);
        rt__store_close(*s);
        *s = NULL;
    } else if (code) {
        *code = RT_EXIT_OK;
    }
    if (from) *from = f;
    if (to) *to = t;
    if (err && errlen) snprintf(err, errlen, "%s", rc == RT_OK ? "" : msg);
    return rc;
}

/* ------------------------------------------------------- embedding */

/* The stop request's pipe: [0] readable while a request stands. -1 until
 * the first rt_run makes it. */
static volatile sig_atomic_t entry_stop_rd = -1, entry_stop_wr = -1;
static pthread_once_t entry_pipe_once = PTHREAD_ONCE_INIT;

static void entry_pipe_make(void) {
    int p[2];
    if (pipe(p)) return; /* no pipe: the grace is not enforced */
    for (int i = 0; i < 2; i++) {
        fcntl(p[i], F_SETFD, FD_CLOEXEC);
        fcntl(p[i], F_SETFL, O_NONBLOCK);
    }
    entry_stop_rd = p[0];
    entry_stop_wr = p[1];
    /* A request made before the pipe was: make it readable too. */
    if (rt__stop_flag) rt_request_stop();
}

void rt_request_stop(void) {
    int saved = errno;
    rt__stop_flag = 1;
    int fd = entry_stop_wr;
    if (fd >= 0) {
        ssize_t n = write(fd, "x", 1); /* full: a byte is there already */
        (void)n;
    }
    errno = saved;
}

void rt_clear_stop(void) {
    rt__stop_flag = 0;
    rt__stop_signal = 0;
    int fd = entry_stop_rd;
    char buf[64];
    while (fd >= 0 && read(fd, buf, sizeof buf) > 0) {
    }
}

/* The watcher of one rt_run: after a stop request and the grace, it
 * interrupts the statement in flight on the run's work connection. */
typedef struct entry_watch {
    pthread_t thread;
    bool started;
    int done[2];         /* the run ended: [1] is closed */
    int64_t grace_ms;
    rt_store *s;         /* the run's work connection */
} entry_watch;

static void *entry_watch_main(void *arg) {
    entry_watch *w = arg;
    struct pollfd fds[2] = {{.fd = w->done[0], .events = POLLIN},
                            {.fd = entry_stop_rd, .events = POLLIN}};
    while (poll(fds, 2, -1) < 0 && errno == EINTR) {
    }
    if (fds[0].revents) return NULL; /* ended without a stop */
    /* Stop requested: the run has the grace to reach its boundary. */
    int64_t until = rt__mono_ns() + w->grace_ms * 1000000;
    for (;;) {
        int64_t left = (until - rt__mono_ns()) / 1000000;
        if (left <= 0) break;
        int n = poll(fds, 1, left > 1000000 ? 1000000 : (int)left);
        if (n > 0) return NULL; /* ended in time */
    }
    rt__log(RT_LOG_WARN, "deadline", NULL,
            "stop grace of %lld ms passed; interrupting the database call "
            "in flight (uncommitted work rolls back)",
            (long long)w->grace_ms);
    /* Again now and then: a step may start another statement after one
     * was interrupted. */
    do {
        rt__store_interrupt(w->s);
    } while (poll(fds, 1, 1000) == 0);
    return NULL;
}

/* Watch s for a stop request (grace_ms < 0: nothing to watch for). */
static void entry_watch_start(entry_watch *w, rt_store *s, int64_t grace_ms) {
    memset(w, 0, sizeof *w);
    w->done[0] = w->done[1] = -1;
    w->s = s;
    if (grace_ms < 0) return;
    pthread_once(&entry_pipe_once, entry_pipe_make);
    if (entry_stop_rd < 0 || pipe(w->done)) return;
    w->grace_ms = grace_ms;
    /* The embedder's signals stay with the embedder's threads. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    w->started = pthread_create(&w->thread, NULL, entry_watch_main, w) == 0;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

static void entry_watch_end(entry_watch *w) {
    if (w->done[1] >= 0) close(w->done[1]);
    if (w->started) pthread_join(w->thread, NULL);
    if (w->done[0] >= 0) close(w->done[0]);
}

int rt__run_job(const rt_job *job, rt__run_opts *o, bool signals,
                int64_t grace_ms) {
    rt__run_out out;
    memset(&out, 0, sizeof out);
    /* The lease's connection (PostgreSQL) opens and its lease gets ready
     * while the work one opens and migrates: each costs a server backend's
     * start. The runner may take the lease there while it reads the run. */
    rt__lease_bg lease_bg;
    rt__lease_bg_start(&lease_bg, o->url, o->lease_ttl_ms);
    o->lease_bg = &lease_bg;
    rt_store *s = NULL;
    int code = RT_EXIT_OK;
    int rc = rt__db_open(o->url, &s, NULL, NULL, &code, out.err,
                         sizeof out.err);
    /* A stop ends a wait for a busy database: interrupted, not failed. */
    if (rc != RT_OK && rt__stop_flag && code == RT_EXIT_FAILED) {
        code = RT_EXIT_INTERRUPTED;
        rc = RT_STOPPED;
    }
    if (rc == RT_OK) {
        entry_watch watch;
        if (signals) rt__signals_store(s);
        else entry_watch_start(&watch, s, grace_ms);
        rc = rt__runner_run(s, job, o, &out);
        if (signals) rt__signals_store(NULL);
        else entry_watch_end(&watch);
        if (out.result.skipped) {
            rt__log_fields f = RT_LOG_FIELDS_NONE;
            f.job = job->name;
            f.key = o->key;
            rt__log(RT_LOG_INFO, "skipped", &f,
                    "%s is held by %s (run '%s'); skipped", out.held_scope,
                    out.holder, out.holder_key);
        }
    } else {
        out.result.exit_code = code;
    }
    rt__lease_bg_end(&lease_bg);
    o->lease_bg = NULL;
    rt__store_close(s);
    if (o->result) *o->result = out.result;
    if (o->err && o->errlen) snprintf(o->err, o->errlen, "%s", out.err);
    return rc;
}

/* rt_run_opts of any size into this version's, zeros where it has none. */
static rt_run_opts entry_opts(const rt_run_opts *given) {
    rt_run_opts o;
    memset(&o, 0, sizeof o);
    if (!given) return o;
    size_t n = given->size && given->size < sizeof o ? given->size : sizeof o;
    memcpy(&o, given, n);
    return o;
}

/* Check what rt_run was given, into the runner's options. */
static int entry_check(const rt_job *job, const char *key,
                       const rt_run_opts *ro, rt__run_opts *o, char *err,
                       size_t errlen) {
    if (key && rt__key_check(key, err, errlen) != RT_OK) return RT_INVALID;
    o->key = key;
    for (int i = 0; ro->params && ro->params[i]; i++) {
        const char *p = ro->params[i], *eq = strchr(p, '=');
        if (!eq || eq == p) {
            snprintf(err, errlen, "rt_run: params: need NAME=VALUE, got '%s'",
                     p);
            return RT_INVALID;
        }
        char *name = rt__xstrndup(p, (size_t)(eq - p));
        int rc = rt__job_check_param(job, name, eq + 1, err, errlen);
        if (rc == RT_OK) rt__params_set(&o->params, name, eq + 1);
        free(name);
        if (rc != RT_OK) return RT_INVALID;
    }
    if (ro->if_running < RT_IF_RUNNING_FAIL ||
        ro->if_running > RT_IF_RUNNING_WAIT) {
        snprintf(err, errlen, "rt_run: if_running is %d: use "
                 "RT_IF_RUNNING_FAIL, _SKIP or _WAIT", (int)ro->if_running);
        return RT_MISUSE;
    }
    o->if_running = ro->if_running;
    double ttl = ro->lease_ttl_s == 0 ? 30 : ro->lease_ttl_s;
    if (!(ttl >= 0.1 && ttl <= 86400)) {
        snprintf(err, errlen, "rt_run: lease_ttl_s takes seconds from 0.1 to "
                 "86400, got %g", ro->lease_ttl_s);
        return RT_INVALID;
    }
    o->lease_ttl_ms = (int64_t)llround(ttl * 1000);
    o->chunk_items = ro->chunk_items == 0 ? 1000
                     : ro->chunk_items < 0 ? 0 : ro->chunk_items;
    o->chunk_ms = ro->chunk_ms == 0 ? 1000 : ro->chunk_ms < 0 ? 0 : ro->chunk_ms;
    o->start_at_ms = ro->start_at_ms > 0 ? ro->start_at_ms : 0;
    if (isnan(ro->grace_s)) {
        snprintf(err, errlen, "rt_run: grace_s is not a number");
        return RT_INVALID;
    }
    return RT_OK;
}

int rt_run(const char *db_url, const rt_job *job, const char *key,
           const rt_run_opts *opts, rt_run_result *out, char *err,
           size_t errlen) {
    err = rt__err_out(err, &errlen);
    rt_run_result scratch;
    if (!out) out = &scratch;
    memset(out, 0, sizeof *out);
    if (!db_url || !job || !job->name || !job->steps || !job->steps[0].name) {
        snprintf(err, errlen, "rt_run: db_url and a job with at least one "
                 "step are required");
        out->exit_code = RT_EXIT_USAGE;
        return RT_MISUSE;
    }
    rt_run_opts ro = entry_opts(opts);
    rt__run_opts o;
    memset(&o, 0, sizeof o);
    int rc = entry_check(job, key, &ro, &o, err, errlen);
    if (rc == RT_OK && rt__stop_flag) {
        snprintf(err, errlen, "rt_run: a stop is requested (rt_request_stop); "
                 "nothing was done (rt_clear_stop withdraws it)");
        rc = RT_STOPPED;
    }
    if (rc != RT_OK) {
        rt__params_free(&o.params);
        out->exit_code = rt__exit_code(rc, NULL);
        return rc;
    }
    /* A stop request ends a wait for a lock (SQLite's busy loop) as the
     * stop signals do (signals.c points the store at the same flag). */
    rt__store_on_stop(&rt__stop_flag);
    o.url = db_url;
    o.result = out;
    o.err = err;
    o.errlen = errlen;
    int64_t grace_ms = ro.grace_s == 0 ? 8000
                       : ro.grace_s < 0 ? -1
                       : ro.grace_s > 86400 ? 86400000
                                            : (int64_t)llround(ro.grace_s * 1000);
    rc = rt__run_job(job, &o, false, grace_ms);
    rt__params_free(&o.params);
    return rc;
}
