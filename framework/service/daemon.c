/*
 * daemon.c — `ratchet daemon`: turns cron slots into runs and starts them.
 *
 * Replicas never talk to each other. Each slot of a job's schedule becomes
 * the run (job, slot time as ISO-8601 UTC), inserted if absent; the replica
 * whose insert created it starts it. So any number of replicas make exactly
 * one run per slot, with no leader and no comparison of their clocks.
 *
 * A run goes through `run` in a child process (this program, exec'd): the
 * lease, fencing and stop handling are those of `ratchet run`, and a job that
 * crashes takes no daemon with it. A child is started DAEMON_LOOKAHEAD_MS
 * before its slot; it connects, then waits for the slot, so a run starts
 * within milliseconds of its slot time.
 *
 *   overlap  the job's previous run still holds the lease at slot time:
 *            skip - the child records the slot as a 'skipped' run;
 *            queue - the child waits for the lease; a later slot that finds
 *            an older one queued is left pending for the work loop, which
 *            starts pending runs oldest first.
 *   misfire  a slot found more than DAEMON_MISFIRE_MS late (no daemon ran,
 *            or this one was stalled): catch-up makes one run, keyed by the
 *            newest missed slot, unless it is later than max lateness; skip
 *            records that slot as skipped. Older missed slots are passed.
 *   healing  every DAEMON_WORK_MS the work loop looks for scheduled runs
 *            that are interrupted, whose holder died (liveness lock free) or
 *            stalled (lease expired), or that stayed pending after their
 *            slot (their starter died), and starts them: the child resumes
 *            or takes over as `run` does.
 *   queue    unless --workers 0, the daemon also runs a worker pool
 *            (`ratchet worker --concurrency N` as a child): the daemon is
 *            scheduler and worker in one.
 *   stop     SIGTERM/SIGINT: scheduling stops, children get SIGTERM (they
 *            commit or roll back their chunk and exit within 80% of the
 *            grace period), and the daemon exits 0. Children get SIGTERM
 *            when the daemon dies (PR_SET_PDEATHSIG), so a killed daemon's
 *            runs are interrupted cleanly and another replica resumes them.
 *            A child starts with SIGTERM blocked until its own handlers
 *            are in (rt__fork_tied, rt_main): a stop sent to it at once
 *            is taken, not fatal.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "service/cron.h"
#include "service/service.h"
#include "service/metrics.h"

#define DAEMON_LOOKAHEAD_MS 300
#define DAEMON_MISFIRE_MS 1000
#define DAEMON_WORK_MS 250
#define DAEMON_ORPHAN_MS 2000
#define DAEMON_MAX_CHILDREN_PER_JOB 8

typedef struct sched {
    const rt_job *job;
    const char *expr;
    rt__cron *cron;
    rt_overlap overlap;
    rt_misfire misfire;
    int64_t max_lateness_ms; /* 0 = no limit */
    rt__params params;
    int64_t cursor_ms;       /* the newest slot dealt with */
} sched;

typedef struct child {
    pid_t pid;
    const sched *sc;
    char key[64];
} child;

typedef struct scheduler {
    const rt__daemon_opts *o;
    rt_store *s;
    sched *v;
    int n;
    child *kids;
    int nkids;
    char exe[PATH_MAX];
    char grace[32], ttl[32], items[32], chunk_ms[32];
    int64_t trouble_logged_ns;
    pid_t worker_pid;          /* the worker pool, 0 when none runs */
    int64_t worker_restart_ns; /* not before (monotonic) */
} scheduler;

/* "2026-11-23T12:00:05Z": slots are whole seconds. */
static void daemon_slot_key(int64_t ms, char *out, size_t n) {
    char iso[40];
    rt__iso8601_ms(ms, iso, sizeof iso);
    char *dot = strchr(iso, '.');
    if (dot) strcpy(dot, "Z");
    snprintf(out, n, "%s", iso);
}

/* ---------------------------------------------------------- configuring */

static sched *daemon_find(scheduler *d, const char *name, size_t len) {
    for (int i = 0; i < d->n; i++)
        if (strlen(d->v[i].job->name) == len &&
            !strncmp(d->v[i].job->name, name, len))
            return &d->v[i];
    return NULL;
}

/* Split "JOB<sep>REST" of option opt into its scheduled job and REST. */
static int daemon_split(scheduler *d, const char *opt, const char *arg, char sep,
                        sched **sc, const char **rest) {
    const char *at = strchr(arg, sep);
    if (!at || at == arg)
        return rt__usage_error("daemon: %s needs JOB%cVALUE, got '%s'", opt, sep, arg);
    *sc = daemon_find(d, arg, (size_t)(at - arg));
    *rest = at + 1;
    if (*sc) return RT_EXIT_OK;
    return rt__usage_error("daemon: %s '%s': job '%.*s' is not scheduled by this daemon",
                        opt, arg, (int)(at - arg), arg);
}

/* Which jobs run on which schedule: --only, job schedules, --schedule. */
static int daemon_pick(scheduler *d, const rt_job *const *jobs) {
    const rt__daemon_opts *o = d->o;
    int code = rt__job_list_check(jobs, o->only, "daemon");
    if (code) return code;
    int njobs = 0;
    while (jobs[njobs]) njobs++;
    d->v = rt__xcalloc((size_t)njobs + 1, sizeof *d->v);
    for (int i = 0; i < njobs; i++) {
        const char *expr = jobs[i]->schedule;
        for (int k = 0; k < o->nschedules; k++) {
            const char *eq = strchr(o->schedules[k], '=');
            if (eq && (size_t)(eq - o->schedules[k]) == strlen(jobs[i]->name) &&
                !strncmp(o->schedules[k], jobs[i]->name, strlen(jobs[i]->name)))
                expr = eq + 1;
        }
        if (!rt__job_listed(o->only, jobs[i]->name)) continue;
        if (!expr) {
            if (o->only)
                return rt__usage_error("daemon: job %s has no schedule; give --schedule "
                                    "'%s=EXPR'", jobs[i]->name, jobs[i]->name);
            continue;
        }
        sched *sc = &d->v[d->n++];
        sc->job = jobs[i];
        sc->expr = expr;
        sc->overlap = jobs[i]->overlap;
        sc->misfire = jobs[i]->misfire;
        sc->max_lateness_ms = jobs[i]->max_lateness_s * 1000;
    }
    for (int k = 0; k < o->nschedules; k++) {
        const char *eq = strchr(o->schedules[k], '=');
        if (!eq || eq == o->schedules[k])
            return rt__usage_error("daemon: --schedule needs JOB=EXPR, got '%s'",
                                o->schedules[k]);
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)(eq - o->schedules[k]),
                 o->schedules[k]);
        if (!rt__job_find(jobs, name))
            return rt__usage_error("daemon: --schedule: unknown job '%s' (see 'ratchet "
                                "jobs')", name);
        if (!rt__job_listed(o->only, name))
            return rt__usage_error("daemon: --schedule: job '%s' is not in --only", name);
    }
    if (!d->n)
        return rt__usage_error("daemon: no job has a schedule; give --schedule "
                            "'JOB=EXPR' (see 'ratchet daemon --help')");
    return RT_EXIT_OK;
}

static int daemon_parse_cron(scheduler *d) {
    for (int i = 0; i < d->n; i++) {
        sched *sc = &d->v[i];
        char err[512];
        if (rt__cron_parse(sc->expr, &sc->cron, err, sizeof err) != RT_OK)
            return rt__usage_error("daemon: job %s: %s", sc->job->name, err);
        if (rt__cron_next(sc->cron, rt__wall_ms()) < 0)
            return rt__usage_error("daemon: job %s: cron '%s' never fires", sc->job->name,
                                sc->expr);
    }
    return RT_EXIT_OK;
}

/* --param, --overlap, --misfire, --max-lateness. */
static int daemon_policies(scheduler *d) {
    const rt__daemon_opts *o = d->o;
    sched *sc;
    const char *v;
    int code;
    for (int k = 0; k < o->nparams; k++) {
        if ((code = daemon_split(d, "--param", o->params[k], '.', &sc, &v)))
            return code;
        const char *eq = strchr(v, '=');
        if (!eq || eq == v)
            return rt__usage_error("daemon: --param needs JOB.NAME=VALUE, got '%s'",
                                o->params[k]);
        char name[256], err[1024];
        snprintf(name, sizeof name, "%.*s", (int)(eq - v), v);
        if (rt__job_check_param(sc->job, name, eq + 1, err, sizeof err))
            return rt__usage_error("daemon: %s", err);
        rt__params_set(&sc->params, name, eq + 1);
    }
    /* The slots' runs get these params: the jobs' own rules now. */
    for (int i = 0; i < d->n; i++) {
        char err[RT_ERRMSG_MAX];
        if (rt__job_check(d->v[i].job, NULL, &d->v[i].params, err, sizeof err))
            return rt__usage_error("daemon: %s", err);
    }
    for (int k = 0; k < o->noverlaps; k++) {
        if ((code = daemon_split(d, "--overlap", o->overlaps[k], '=', &sc, &v)))
            return code;
        if (!strcmp(v, "skip")) sc->overlap = RT_OVERLAP_SKIP;
        else if (!strcmp(v, "queue")) sc->overlap = RT_OVERLAP_QUEUE;
        else return rt__usage_error("daemon: --overlap %s: takes skip or queue",
                                 o->overlaps[k]);
    }
    for (int k = 0; k < o->nmisfires; k++) {
        if ((code = daemon_split(d, "--misfire", o->misfires[k], '=', &sc, &v)))
            return code;
        if (!strcmp(v, "catch-up")) sc->misfire = RT_MISFIRE_CATCH_UP;
        else if (!strcmp(v, "skip")) sc->misfire = RT_MISFIRE_SKIP;
        else return rt__usage_error("daemon: --misfire %s: takes catch-up or skip",
                                 o->misfires[k]);
    }
    for (int k = 0; k < o->nlateness; k++) {
        if ((code = daemon_split(d, "--max-lateness", o->lateness[k], '=', &sc,
                                 &v)))
            return code;
        double secs;
        if (!rt__parse_double(v, &secs) || secs < 0 || secs > 1e9)
            return rt__usage_error("daemon: --max-lateness %s: takes seconds >= 0",
                                o->lateness[k]);
        sc->max_lateness_ms = (int64_t)(secs * 1000);
    }
    return RT_EXIT_OK;
}

/* ------------------------------------------------------------- children */

static bool daemon_has_kid(const scheduler *d, const sched *sc, const char *key) {
    for (int i = 0; i < d->nkids; i++)
        if (d->kids[i].sc == sc && (!key || !strcmp(d->kids[i].key, key)))
            return true;
    return false;
}

static int daemon_count_kids(const scheduler *d, const sched *sc) {
    int n = 0;
    for (int i = 0; i < d->nkids; i++) n += d->kids[i].sc == sc;
    return n;
}

/*
 * Start this program with argv as a child that dies with the daemon. The
 * child's environment lacks NOTIFY_SOCKET: only the daemon, the service's
 * main process, speaks to systemd (built before fork, as a child of a
 * threaded process may only make async-signal-safe calls before exec).
 */
static pid_t daemon_exec(scheduler *d, const char **argv) {
    size_t n = 0;
    while (environ[n]) n++;
    char **env = rt__xcalloc(n + 1, sizeof *env);
    for (size_t i = 0, j = 0; i < n; i++)
        if (strncmp(environ[i], "NOTIFY_SOCKET=", 14) != 0) env[j++] = environ[i];
    pid_t pid = rt__fork_tied();
    if (pid != 0) {
        free(env);
        return pid;
    }
    execve(d->exe, (char *const *)argv, env);
    static const char msg[] = "ratchet daemon: cannot execute the child\n";
    ssize_t w = write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)w;
    _exit(127);
}

/* The worker pool for queued runs (`ratchet worker`), as a child. */
static void daemon_spawn_worker(scheduler *d) {
    char n[16], grace[32];
    snprintf(n, sizeof n, "%d", d->o->workers);
    snprintf(grace, sizeof grace, "%.3f", (double)d->o->grace_ms * 0.9 / 1000);
    const char *argv[] = {d->exe, "worker", "--concurrency", n, "--grace", grace,
                          "--lease-ttl", d->ttl, "--chunk-items", d->items,
                          "--chunk-ms", d->chunk_ms, d->o->only ? "--only" : NULL,
                          d->o->only, NULL};
    d->worker_pid = daemon_exec(d, argv);
    if (d->worker_pid < 0) {
        rt__log(RT_LOG_ERROR, "spawn", NULL, "cannot start the worker pool: %s",
                strerror(errno));
        d->worker_pid = 0;
    }
    d->worker_restart_ns = rt__mono_ns() + 1000000000LL;
}

/* Start `run JOB --key KEY ...` as a child. */
static int daemon_spawn(scheduler *d, const sched *sc, const char *key,
                        int64_t start_at_ms, const char *if_running,
                        bool record_skip) {
    char start_at[32];
    snprintf(start_at, sizeof start_at, "%lld", (long long)start_at_ms);
    const char *argv[24];
    int n = 0;
    argv[n++] = d->exe;
    argv[n++] = "run";
    argv[n++] = sc->job->name;
    argv[n++] = "--key";
    argv[n++] = key;
    argv[n++] = "--if-running";
    argv[n++] = if_running;
    argv[n++] = "--grace";
    argv[n++] = d->grace;
    argv[n++] = "--lease-ttl";
    argv[n++] = d->ttl;
    argv[n++] = "--chunk-items";
    argv[n++] = d->items;
    argv[n++] = "--chunk-ms";
    argv[n++] = d->chunk_ms;
    if (start_at_ms > 0) {
        argv[n++] = "--start-at";
        argv[n++] = start_at;
    }
    if (record_skip) argv[n++] = "--record-skip";
    argv[n] = NULL;
    pid_t pid = daemon_exec(d, argv);
    if (pid < 0) return RT_NOMEM;
    d->kids = rt__xrealloc(d->kids, sizeof *d->kids * (size_t)(d->nkids + 1));
    child *k = &d->kids[d->nkids++];
    k->pid = pid;
    k->sc = sc;
    snprintf(k->key, sizeof k->key, "%s", key);
    return RT_OK;
}

/* Collect children that exited; say so when one did not end cleanly. */
static void daemon_reap(scheduler *d) {
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        if (pid == d->worker_pid) {
            d->worker_pid = 0;
            if (!rt__stop_flag)
                rt__log(RT_LOG_ERROR, "worker_exit", NULL,
                        "the worker pool exited (status %d); restarting it",
                        status);
            continue;
        }
        for (int i = 0; i < d->nkids; i++) {
            if (d->kids[i].pid != pid) continue;
            child k = d->kids[i];
            d->kids[i] = d->kids[--d->nkids];
            int code = WIFEXITED(status) ? WEXITSTATUS(status)
                                         : 128 + WTERMSIG(status);
            if (code == RT_EXIT_OK || code == RT_EXIT_INTERRUPTED) break;
            rt__log_fields f = RT_LOG_FIELDS_NONE;
            f.job = k.sc->job->name;
            f.key = k.key;
            rt__log(code == RT_EXIT_HELD ? RT_LOG_WARN : RT_LOG_ERROR,
                    "run_exit", &f, "the run's process exited with code %d%s",
                    code, code == RT_EXIT_HELD ? " (lost its lease)" : "");
            break;
        }
    }
}

/* ------------------------------------------------------------- the DB */


static int daemon_query_int(scheduler *d, const char *sql, int nargs,
                            const rt_value *args, int64_t *out) {
    rt_stmt *st;
    int rc = rt__store_query(d->s, sql, nargs, args, &st);
    *out = -1;
    if (rc == RT_ROW) {
        if (rt__store_column_type(st, 0) != RT_TNULL)
            *out = rt__store_column_int64(st, 0);
        rt__store_reset(st);
        return RT_OK;
    }
    return rc == RT_DONE ? RT_OK : rc;
}

/* An older slot of this job is still waiting or going (queue policy). */
static int daemon_older_unfinished(scheduler *d, const sched *sc, int64_t slot,
                                   bool *yes) {
    rt_value args[] = {rt_text(sc->job->name), rt_int(slot)};
    int64_t one;
    int rc = daemon_query_int(
        d,
        "SELECT 1 FROM rt_run WHERE job = $1 AND slot_ms IS NOT NULL AND "
        "slot_ms < $2 AND status IN ('pending', 'running', 'interrupted') "
        "LIMIT 1",
        2, args, &one);
    *yes = one == 1;
    return rc;
}

/* ------------------------------------------------------------ the slots */

/* The run of one slot: created here, then started here. */
static int daemon_slot(scheduler *d, const sched *sc, int64_t slot,
                       int64_t start_at_ms) {
    char key[64];
    daemon_slot_key(slot, key, sizeof key);
    bool created = false;
    int rc = rt__run_insert_slot(d->s, sc->job, key, slot, &sc->params, NULL,
                                 &created);
    if (rc != RT_OK || !created) return rc;
    bool per_job = sc->job->exclusive == RT_EXCLUSIVE_JOB;
    bool queue = per_job && sc->overlap == RT_OVERLAP_QUEUE;
    if (queue) {
        bool older = false;
        if ((rc = daemon_older_unfinished(d, sc, slot, &older)) != RT_OK)
            return rc;
        if (older) {
            rt__log_fields f = RT_LOG_FIELDS_NONE;
            f.job = sc->job->name;
            f.key = key;
            rt__log(RT_LOG_INFO, "queued", &f, "%s",
                    "an older slot's run is not finished; this one waits");
            return RT_OK;
        }
    }
    rc = daemon_spawn(d, sc, key, start_at_ms, queue ? "wait" : "skip",
                      per_job && !queue);
    if (rc != RT_OK)
        rt__log(RT_LOG_ERROR, "spawn", NULL, "cannot start a process for %s "
                "slot %s: %s", sc->job->name, key, strerror(errno));
    return RT_OK;
}

/* The newest slot s with after < s <= now; -1 if none. */
static int64_t daemon_newest_slot(const rt__cron *c, int64_t after,
                                  int64_t now) {
    for (int64_t w = 1000;; w *= 2) {
        int64_t from = now - w < after ? after : now - w;
        int64_t s = rt__cron_next(c, from);
        if (s >= 0 && s <= now) {
            int64_t next;
            while ((next = rt__cron_next(c, s)) >= 0 && next <= now) s = next;
            return s;
        }
        if (from == after) return -1;
    }
}

/* The next slot is long overdue: no daemon ran then, or this one stalled. */
static int daemon_misfire(scheduler *d, sched *sc, int64_t first, int64_t now) {
    int64_t newest = daemon_newest_slot(sc->cron, sc->cursor_ms, now);
    if (newest < 0) newest = first;
    if (now - newest <= DAEMON_MISFIRE_MS) {
        /* The newest is on time: it stands for the ones passed over. */
        sc->cursor_ms = newest - 1;
        return RT_OK;
    }
    char key[64], from[64], why[512];
    daemon_slot_key(newest, key, sizeof key);
    daemon_slot_key(first, from, sizeof from);
    bool too_late = sc->max_lateness_ms > 0 && now - newest > sc->max_lateness_ms;
    rt__log_fields f = RT_LOG_FIELDS_NONE;
    f.job = sc->job->name;
    f.key = key;
    int rc;
    if (sc->misfire == RT_MISFIRE_CATCH_UP && !too_late) {
        rc = daemon_slot(d, sc, newest, 0);
        if (rc == RT_OK)
            rt__log(RT_LOG_WARN, "misfire", &f,
                    "slots from %s to %s were missed; catching up with one run",
                    from, key);
    } else {
        snprintf(why, sizeof why,
                 "missed: no daemon started the slots from %s to %s in time%s",
                 from, key, too_late ? " (later than --max-lateness)" : "");
        bool created = false;
        rc = rt__run_insert_slot(d->s, sc->job, key, newest, &sc->params, why,
                                 &created);
        if (rc == RT_OK && created)
            rt__log(RT_LOG_WARN, "misfire", &f, "%s; recorded as skipped", why);
    }
    if (rc == RT_OK) sc->cursor_ms = newest;
    return rc;
}

/* Deal with every slot due by now + lookahead; *wake_ms: when to look next. */
static void daemon_fire(scheduler *d, sched *sc, int64_t now, int64_t *wake_ms) {
    for (;;) {
        int64_t slot = rt__cron_next(sc->cron, sc->cursor_ms);
        if (slot < 0) return;
        if (slot - now > DAEMON_LOOKAHEAD_MS) {
            if (slot - DAEMON_LOOKAHEAD_MS < *wake_ms)
                *wake_ms = slot - DAEMON_LOOKAHEAD_MS;
            return;
        }
        bool late = now - slot > DAEMON_MISFIRE_MS;
        int rc = late ? daemon_misfire(d, sc, slot, now)
                      : daemon_slot(d, sc, slot, slot);
        if (rc != RT_OK) {
            rt__store_trouble(d->s, &d->trouble_logged_ns, "scheduling a slot");
            return;
        }
        if (!late) sc->cursor_ms = slot;
    }
}

/* ------------------------------------------------------- the work loop */

/* Start scheduled runs nobody works on: interrupted, orphaned, queued. */
static void daemon_work(scheduler *d, sched *sc) {
    bool per_job = sc->job->exclusive == RT_EXCLUSIVE_JOB;
    if (per_job && daemon_has_kid(d, sc, NULL)) return;
    /* A slot's own starter gets DAEMON_ORPHAN_MS first; a queued slot's
     * starter waits on purpose, so it may go as soon as the lease is free. */
    int64_t due = rt__wall_ms();
    if (sc->overlap != RT_OVERLAP_QUEUE || !per_job) due -= DAEMON_ORPHAN_MS;
    rt_value args[] = {rt_text(sc->job->name), rt_int(due)};
    rt_stmt *st;
    int rc = rt__store_query(
        d->s,
        "SELECT run_key FROM rt_run WHERE job = $1 AND slot_ms IS NOT NULL "
        "AND (status IN ('running', 'interrupted') OR (status = 'pending' "
        "AND slot_ms <= $2)) ORDER BY slot_ms LIMIT 8",
        2, args, &st);
    char keys[8][64];
    int nkeys = 0;
    while (rc == RT_ROW && nkeys < 8) {
        const char *k = rt__store_column_text(st, 0);
        snprintf(keys[nkeys++], sizeof keys[0], "%s", k ? k : "");
        rc = rt__store_step(st);
    }
    if (rc == RT_ROW) rt__store_reset(st);
    else if (rc != RT_DONE) {
        rt__store_trouble(d->s, &d->trouble_logged_ns, "looking for runs to resume");
        return;
    }
    for (int i = 0; i < nkeys; i++) {
        if (daemon_has_kid(d, sc, keys[i])) continue;
        if (daemon_count_kids(d, sc) >= DAEMON_MAX_CHILDREN_PER_JOB) return;
        char scope[600], holder_key[256];
        if (per_job) snprintf(scope, sizeof scope, "%s", sc->job->name);
        else snprintf(scope, sizeof scope, "%.400s/%.63s", sc->job->name, keys[i]);
        bool free_now = false;
        if (rt__lease_peek(d->s, scope, &free_now, holder_key,
                           sizeof holder_key, NULL, 0, NULL, NULL) != RT_OK) {
            rt__store_trouble(d->s, &d->trouble_logged_ns, "reading a lease");
            return;
        }
        if (!free_now) {
            if (per_job) return;
            continue;
        }
        /* It may have finished between the query and the peek. */
        rt__run run;
        if (rt__run_load(d->s, sc->job->name, keys[i], &run) != RT_OK) continue;
        bool open = run.status == RT__ST_PENDING ||
                    run.status == RT__ST_RUNNING ||
                    run.status == RT__ST_INTERRUPTED;
        rt__run_free(&run);
        if (!open) continue;
        rt__log_fields f = RT_LOG_FIELDS_NONE;
        f.job = sc->job->name;
        f.key = keys[i];
        rt__log(RT_LOG_INFO, "pick_up", &f, "%s",
                "starting a scheduled run that nobody works on");
        daemon_spawn(d, sc, keys[i], 0, "skip", false);
        if (per_job) return;
    }
}

/* ----------------------------------------------------------------- life */

/* Ask the children to stop, wait for them until the grace period ends. */
static int daemon_stop(scheduler *d, int64_t stop_ns) {
    rt__notify("STOPPING=1");
    rt__log(RT_LOG_INFO, "stopping", NULL,
            "stop requested; %d run(s) in progress are asked to stop",
            d->nkids);
    for (int i = 0; i < d->nkids; i++) kill(d->kids[i].pid, SIGTERM);
    if (d->worker_pid) kill(d->worker_pid, SIGTERM);
    int64_t deadline = stop_ns + (d->o->grace_ms - 200) * 1000000;
    while ((d->nkids > 0 || d->worker_pid) && rt__mono_ns() < deadline) {
        daemon_reap(d);
        if (d->nkids || d->worker_pid) rt__sleep_ms(5);
    }
    if (d->worker_pid) {
        kill(d->worker_pid, SIGKILL);
        waitpid(d->worker_pid, NULL, 0);
    }
    for (int i = 0; i < d->nkids; i++) {
        rt__log(RT_LOG_ERROR, "run_killed", NULL,
                "the run of %s '%s' did not stop in time; killed (it resumes "
                "from its last commit)",
                d->kids[i].sc->job->name, d->kids[i].key);
        kill(d->kids[i].pid, SIGKILL);
        waitpid(d->kids[i].pid, NULL, 0);
    }
    d->nkids = 0;
    rt__log(RT_LOG_INFO, "stopped", NULL, "daemon stopped after %lld ms",
            (long long)((rt__mono_ns() - stop_ns) / 1000000));
    return RT_EXIT_OK;
}

static int daemon_loop(scheduler *d) {
    int64_t wd_ms = rt__notify_watchdog_ms(), next_wd_ns = 0, next_work_ns = 0;
    unsigned seed = (unsigned)(rt__mono_ns() ^ (int64_t)getpid());
    while (!rt__stop_flag) {
        daemon_reap(d);
        if (d->o->workers > 0 && !d->worker_pid &&
            rt__mono_ns() >= d->worker_restart_ns)
            daemon_spawn_worker(d);
        int64_t now = rt__wall_ms();
        int64_t wake_ms = now + 50;
        for (int i = 0; i < d->n && !rt__stop_flag; i++)
            daemon_fire(d, &d->v[i], now, &wake_ms);
        int64_t mono = rt__mono_ns();
        if (mono >= next_work_ns) {
            for (int i = 0; i < d->n && !rt__stop_flag; i++)
                daemon_work(d, &d->v[i]);
            next_work_ns = mono + (DAEMON_WORK_MS + rand_r(&seed) % 50) * 1000000LL;
        }
        if (wd_ms && mono >= next_wd_ns) {
            rt__notify("WATCHDOG=1");
            next_wd_ns = mono + wd_ms * 500000; /* half the period */
        }
        rt__sleep_ms(wake_ms - rt__wall_ms());
    }
    return daemon_stop(d, rt__mono_ns());
}

/* Where each schedule stands: after the newest slot any replica recorded. */
static int daemon_cursors(scheduler *d) {
    for (int i = 0; i < d->n; i++) {
        sched *sc = &d->v[i];
        rt_value arg = rt_text(sc->job->name);
        int64_t last;
        int rc = daemon_query_int(
            d, "SELECT max(slot_ms) FROM rt_run WHERE job = $1 AND slot_ms IS "
               "NOT NULL", 1, &arg,
            &last);
        if (rc != RT_OK) return rc;
        sc->cursor_ms = last >= 0 ? last : rt__wall_ms();
        char next[64];
        daemon_slot_key(rt__cron_next(sc->cron, sc->cursor_ms), next,
                        sizeof next);
        rt__log_fields f = RT_LOG_FIELDS_NONE;
        f.job = sc->job->name;
        rt__log(RT_LOG_INFO, "schedule", &f,
                "'%s' (%s), overlap %s, misfire %s; next slot %s", sc->expr,
                rt__cron_zone(sc->cron),
                sc->overlap == RT_OVERLAP_QUEUE ? "queue" : "skip",
                sc->misfire == RT_MISFIRE_SKIP ? "skip" : "catch-up", next);
    }
    return RT_OK;
}

static void daemon_free(scheduler *d) {
    for (int i = 0; i < d->n; i++) {
        rt__cron_free(d->v[i].cron);
        rt__params_free(&d->v[i].params);
    }
    free(d->v);
    free(d->kids);
    rt__store_close(d->s);
}

int rt__daemon(const rt_job *const *jobs, const rt__daemon_opts *o) {
    scheduler d;
    memset(&d, 0, sizeof d);
    d.o = o;
    int code = daemon_pick(&d, jobs);
    if (!code) code = daemon_parse_cron(&d);
    if (!code) code = daemon_policies(&d);
    ssize_t n = readlink("/proc/self/exe", d.exe, sizeof d.exe - 1);
    if (n > 0) d.exe[n] = '\0';
    else snprintf(d.exe, sizeof d.exe, "%s", o->exe);
    snprintf(d.grace, sizeof d.grace, "%.3f", (double)o->grace_ms * 0.8 / 1000);
    snprintf(d.ttl, sizeof d.ttl, "%.3f", (double)o->lease_ttl_ms / 1000);
    snprintf(d.items, sizeof d.items, "%lld", (long long)o->chunk_items);
    snprintf(d.chunk_ms, sizeof d.chunk_ms, "%lld", (long long)o->chunk_ms);
    if (!code) {
        rt__store_set_label("ratchet-daemon");
        /* Open and migrate as every command does; logged, with the exit
         * code it means (a full disk: 75). */
        rt__db_open(o->url, &d.s, NULL, NULL, &code, NULL, 0);
    }
    if (!code && daemon_cursors(&d) != RT_OK) {
        rt__log(RT_LOG_ERROR, "db_error", NULL, "%s", d.s->errmsg);
        code = RT_EXIT_FAILED;
    }
    rt__metrics_server *metrics = NULL;
    if (!code) {
        /* The children find the database here, not in their argv (ps). */
        setenv("RATCHET_DB", o->url, 1);
        /* After setenv: the server's thread reads the environment (libpq).
         * The children exec at once: no fork guard. */
        if (o->metrics_listen)
            code = rt__metrics_serve_start(o->metrics_listen, o->url, false,
                                           &metrics);
    }
    if (!code) {
        /* The stop handlers are in since rt_main began (cli.c, exit 0 at
         * the deadline): a stop while the database opened ends the loop
         * before it starts. */
        rt__log(RT_LOG_INFO, "daemon_start", NULL,
                "scheduling %d job(s) on %s", d.n, d.s->url_display);
        rt__notify("READY=1");
        code = daemon_loop(&d);
        rt__metrics_serve_stop(metrics); /* still under the stop deadline;
                                            the handlers stay until exit */
    }
    daemon_free(&d);
    return code;
}
