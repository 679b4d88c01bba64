/*
 * cli.c — rt_main(): the command line over the library. Parses flags (both
 * `--flag value` and `--flag=value`, global flags anywhere), validates every
 * input before the database is touched, and maps outcomes to the exit codes
 * of DESIGN.md: 0 done, 1 failed, 2 usage/configuration, 3 held or fenced,
 * 75 interrupted (resumable). SIGTERM and SIGINT are blocked from rt_main's
 * first instruction and, for run, worker and daemon, handled from the
 * moment the command is known (signals.c), so a stop at any time gives
 * that command's documented exit.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdlib.h>
#include <string.h>


#include "cli/cli.h"
#include "service/metrics.h"

#define CLI_DEFAULT_DB "sqlite:ratchet.db"

typedef struct cli {
    const rt_job *const *jobs;
    const char *db;
    const char *cmd;
    int argc; /* the command's own arguments */
    char **argv;
    const char *exe; /* argv[0] of the process */
    bool help;
} cli;

/* The global options, accepted anywhere on the line; completion reads them. */
#define CLI_OPTIONS \
    "options:\n" \
    "  --db URL      sqlite:PATH[?synchronous=normal] or a PostgreSQL URI or\n" \
    "                conninfo (default: $RATCHET_DB, else " CLI_DEFAULT_DB ")\n" \
    "  --version     print the version\n" \
    "  --help        show this help, or a command's (also: help COMMAND)\n"

static const char cli_usage[] =
    "usage: ratchet [--db URL] COMMAND [ARGS]\n"
    "\n"
    "Resumable batch jobs: every step commits its work and its progress in one\n"
    "transaction, so a run killed at any instant resumes from the last commit.\n"
    "\n"
    "commands:\n"
    "  run JOB       run or resume a run of JOB in the foreground\n"
    "  daemon        run jobs on their cron schedules (any number of replicas)\n"
    "  enqueue JOB   queue a run of JOB for workers\n"
    "  worker        claim queued runs and run them (--concurrency N)\n"
    "  status [JOB]  show runs: status, step, items, rate, last error\n"
    "  metrics       print Prometheus metrics of the runs (for a scraper)\n"
    "  jobs          list the jobs in this binary, their steps and params\n"
    "  reset JOB     discard a run's progress (--key K)\n"
    "  retry RUN     make a failed, cancelled or skipped run pending again\n"
    "  cancel RUN    cancel a run (a running one stops at its next commit)\n"
    "  history [JOB] list finished runs, newest first\n"
    "  prune         delete finished runs (--older-than DURATION)\n"
    "  wait JOB      block until a run is finished (--key K, --timeout S)\n"
    "  migrate       create or upgrade the database schema\n"
    "  help [CMD]    show help for a command\n"
    "  completion    print a bash completion script ('completion bash')\n"
    "\n"
    CLI_OPTIONS
    "\n"
    "exit codes: 0 done, 1 failed, 2 usage or configuration error,\n"
    "            3 held by another process or fenced, 75 interrupted (resumable)\n"
    "environment: RATCHET_DB, RATCHET_LOG=json|text, RATCHET_LOG_LEVEL\n";

static const char cli_run_usage[] =
    "usage: ratchet [--db URL] run JOB [--key K] [--param NAME=VALUE]...\n"
    "                              [--grace S] [--chunk-items N] [--chunk-ms MS]\n"
    "                              [--if-running fail|skip|wait] [--lease-ttl S]\n"
    "                              [--restart-step NAME]\n"
    "\n"
    "Run or resume the run (JOB, K) in the foreground. Without --key, resume\n"
    "JOB's latest unfinished run or start a new one keyed by the current time.\n"
    "A finished key is not run again (exit 0). Params are fixed when a run\n"
    "starts. A run resumes at its step by name; if JOB's steps were removed,\n"
    "renamed or reordered since it began, it is refused (exit 2) unless\n"
    "--restart-step says where to go on (steps appended at the end are fine).\n"
    "\n"
    "  --key K              the run's key (a date, a customer id, ...): at\n"
    "                       most 255 bytes of UTF-8, no control characters\n"
    "  --param NAME=VALUE   a run parameter; repeatable\n"
    "  --grace S            seconds from the first SIGTERM/SIGINT to forced\n"
    "                       exit (default 8; Cloud Run kills at 10)\n"
    "  --chunk-items N      items per chunk commit (default 1000, 0 = no limit)\n"
    "  --chunk-ms MS        milliseconds per chunk (default 1000, 0 = no limit)\n"
    "  --if-running WHAT    when another live process holds the job (or the\n"
    "                       key, for per-key jobs): fail (exit 3, default),\n"
    "                       skip (exit 0), or wait for it and then resume the\n"
    "                       run or report its outcome\n"
    "  --lease-ttl S        seconds without a heartbeat after which a stalled\n"
    "                       holder is taken over (default 30); a dead one is\n"
    "                       taken over at once\n"
    "  --restart-step NAME  continue an unfinished run at step NAME of JOB's\n"
    "                       current definition, from the step's start (its\n"
    "                       cursor and item count cleared; the run's total\n"
    "                       items kept); also after the steps changed\n"
    "\n"
    "On SIGTERM/SIGINT a chunked step commits the items it finished and an\n"
    "atomic step rolls back; the process exits 75. Run again to resume.\n";

static const char cli_status_usage[] =
    "usage: ratchet [--db URL] status [JOB] [--json] [--limit N]\n"
    "\n"
    "Show runs, newest first: status, step (index/total), items, rate, last\n"
    "error. --json prints one JSON document. --limit N shows at most N runs\n"
    "(default 50).\n";

static const char cli_jobs_usage[] =
    "usage: ratchet jobs\n\nList the jobs in this binary, their steps and "
    "declared params.\n";

static const char cli_reset_usage[] =
    "usage: ratchet [--db URL] reset JOB --key K [--force]\n"
    "\n"
    "Discard the run (JOB, K) and all its progress. The work it committed is\n"
    "not undone; the next 'run' with that key starts from the first step.\n"
    "A running run is refused (exit 3): stop its process first.\n"
    "\n"
    "  --force   discard a running run too; its process rolls back its\n"
    "            chunk at its next commit and exits 3, \"reset by an operator\"\n";

static const char cli_wait_usage[] =
    "usage: ratchet [--db URL] wait JOB [--key K] [--timeout S]\n"
    "\n"
    "Block until the run (JOB, K) - or JOB's latest run - is finished.\n"
    "Exit 0 done; 1 failed, skipped or cancelled (with its error or reason);\n"
    "124 timed out; 2 no such run.\n";

static const char cli_migrate_usage[] =
    "usage: ratchet [--db URL] migrate\n"
    "\n"
    "Create or upgrade the schema (every command does this as needed).\n";

/*
 * Match --name or --name=value at argv[*i]. For options with a value, *value
 * is set (consuming the next argument if needed). Returns 1 matched, 0 not,
 * -1 a value is missing.
 */
static int cli_opt(int argc, char **argv, int *i, const char *name,
                   const char **value) {
    const char *a = argv[*i];
    size_t n = strlen(name);
    if (strncmp(a, name, n)) return 0;
    if (!value) return a[n] == '\0';
    if (a[n] == '=') {
        *value = a + n + 1;
        return 1;
    }
    if (a[n] != '\0') return 0;
    if (*i + 1 >= argc) return -1;
    *value = argv[++*i];
    return 1;
}

/* --key's value (m: cli_opt's answer) into *key, or a usage error (exit
 * 2): empty, longer than a lease scope holds, not UTF-8, or holding a
 * control character (rt__key_check). */
static int cli_key(const char *cmd, int m, const char *v, const char **key) {
    if (m < 0 || !*v)
        return rt__usage_error("%s: --key needs a non-empty value", cmd);
    char err[160];
    if (rt__key_check(v, err, sizeof err) != RT_OK)
        return rt__usage_error("%s: --key: %s", cmd, err);
    *key = v;
    return RT_EXIT_OK;
}

/* An argument cmd does not take: one line naming it, exit 2. */
static int cli_bad_arg(const cli *c, const char *arg) {
    return rt__usage_error("%s: %s '%s' (see 'ratchet %s --help')", c->cmd,
                           arg[0] == '-' ? "unknown option" : "unexpected argument",
                           arg, c->cmd);
}

/* The options run, daemon and worker share. */
typedef struct cli_run_opts {
    double grace, ttl;
    int64_t chunk_items, chunk_ms;
} cli_run_opts;

#define CLI_GRACE_DEFAULT_MS 8000 /* --grace's default */
#define CLI_RUN_OPTS_DEFAULT {CLI_GRACE_DEFAULT_MS / 1000, 30, 1000, 1000}

/*
 * --grace, --lease-ttl, --chunk-items, --chunk-ms at argv[*i] for command
 * cmd: 1 when it was one of them (*code is 2 if its value is bad), else 0.
 */
static int cli_run_option(const cli *c, int *i, const char *cmd,
                          cli_run_opts *r, int *code) {
    const char *v = NULL;
    int m;
    int64_t n;
    if ((m = cli_opt(c->argc, c->argv, i, "--grace", &v))) {
        if (m < 0 || !rt__parse_double(v, &r->grace) || r->grace <= 0 ||
            r->grace > 86400)
            *code = rt__usage_error("%s: --grace takes seconds > 0, got '%s'",
                                    cmd, m > 0 ? v : "");
    } else if ((m = cli_opt(c->argc, c->argv, i, "--lease-ttl", &v))) {
        if (m < 0 || !rt__parse_double(v, &r->ttl) || r->ttl < 0.1 ||
            r->ttl > 86400)
            *code = rt__usage_error("%s: --lease-ttl takes seconds from 0.1 to "
                                    "86400, got '%s'", cmd, m > 0 ? v : "");
    } else if ((m = cli_opt(c->argc, c->argv, i, "--chunk-items", &v))) {
        if (m < 0 || !rt__parse_int64(v, &n) || n < 0)
            *code = rt__usage_error("%s: --chunk-items takes a count >= 0, got "
                                    "'%s'", cmd, m > 0 ? v : "");
        else r->chunk_items = n;
    } else if ((m = cli_opt(c->argc, c->argv, i, "--chunk-ms", &v))) {
        if (m < 0 || !rt__parse_int64(v, &n) || n < 0)
            *code = rt__usage_error("%s: --chunk-ms takes milliseconds >= 0, "
                                    "got '%s'", cmd, m > 0 ? v : "");
        else r->chunk_ms = n;
    } else {
        return 0;
    }
    return 1;
}

/* Open and migrate the database (rt__db_open): its exit code. */
static int cli_open(const cli *c, rt_store **s) {
    int code;
    rt__db_open(c->db, s, NULL, NULL, &code, NULL, 0);
    return code;
}

/* ------------------------------------------------------------------ run */

static int cli_check_param(const rt_job *job, const char *name,
                           const char *value) {
    char err[1024];
    if (rt__job_check_param(job, name, value, err, sizeof err) == RT_OK)
        return RT_EXIT_OK;
    return rt__usage_error("%s", err);
}

static int cli_run(const cli *c) {
    rt__run_opts o;
    memset(&o, 0, sizeof o);
    cli_run_opts ro = CLI_RUN_OPTS_DEFAULT;
    const char *job_name = NULL;
    int code = RT_EXIT_OK;
    for (int i = 0; i < c->argc && code == RT_EXIT_OK; i++) {
        const char *v = NULL;
        int m;
        if ((m = cli_opt(c->argc, c->argv, &i, "--key", &v))) {
            code = cli_key("run", m, v, &o.key);
        } else if (cli_run_option(c, &i, "run", &ro, &code)) {
            /* one of the options all three share */
        } else if ((m = cli_opt(c->argc, c->argv, &i, "--param", &v))) {
            const char *eq = m > 0 ? strchr(v, '=') : NULL;
            if (!eq || eq == v) {
                code = rt__usage_error("run: --param needs NAME=VALUE, got '%s'",
                                 m > 0 ? v : "");
            } else {
                char *name = rt__xstrndup(v, (size_t)(eq - v));
                rt__params_set(&o.params, name, eq + 1);
                free(name);
            }
        } else if ((m = cli_opt(c->argc, c->argv, &i, "--if-running", &v))) {
            if (m > 0 && !strcmp(v, "fail")) o.if_running = RT_IF_RUNNING_FAIL;
            else if (m > 0 && !strcmp(v, "skip")) o.if_running = RT_IF_RUNNING_SKIP;
            else if (m > 0 && !strcmp(v, "wait")) o.if_running = RT_IF_RUNNING_WAIT;
            else code = rt__usage_error("run: --if-running takes fail, skip or wait, "
                                  "got '%s'", m > 0 ? v : "");
        } else if ((m = cli_opt(c->argc, c->argv, &i, "--restart-step", &v))) {
            if (m < 0 || !*v)
                code = rt__usage_error("run: --restart-step needs a step name "
                                       "(see 'ratchet jobs')");
            else o.restart_step = v;
        } else if (c->argv[i][0] != '-' && !job_name) {
            job_name = c->argv[i];
        } else {
            code = cli_bad_arg(c, c->argv[i]);
        }
    }
    const rt_job *job = NULL;
    if (code == RT_EXIT_OK && !job_name)
        code = rt__usage_error("run: which job? (see 'ratchet jobs')");
    if (code == RT_EXIT_OK && !(job = rt__job_find(c->jobs, job_name)))
        code = rt__usage_error("run: unknown job '%s' (see 'ratchet jobs')",
                         job_name);
    for (int i = 0; code == RT_EXIT_OK && i < o.params.n; i++)
        code = cli_check_param(job, o.params.v[i].name, o.params.v[i].value);
    if (code == RT_EXIT_OK && o.restart_step) {
        int k = 0;
        while (job->steps[k].name && strcmp(job->steps[k].name, o.restart_step))
            k++;
        if (!job->steps[k].name) {
            char *known = rt__job_steps_text(job);
            for (char *p = known; *p; p++)
                if (*p == '\n') *p = ',';
            code = rt__usage_error("run: --restart-step: job %s has no step "
                                   "'%s' (its steps are [%s])",
                                   job->name, o.restart_step, known);
            free(known);
        }
    }
    o.url = c->db;
    o.lease_ttl_ms = (int64_t)llround(ro.ttl * 1000);
    o.chunk_items = ro.chunk_items;
    o.chunk_ms = ro.chunk_ms;
    if (code == RT_EXIT_OK) rt__store_set_label(job->name);
    /* The handlers are in since rt_main began (a SIGTERM while it parsed,
     * connects or migrates also ends in exit 75): --grace sets the
     * deadline, also of a stop that came already. */
    if (code == RT_EXIT_OK) rt__signals_grace((int64_t)llround(ro.grace * 1000));
    /* The way rt_run goes too (core/entry.c): open, migrate, run; the
     * stop handlers may interrupt its SQL, and their deadline is --grace. */
    if (code == RT_EXIT_OK) {
        rt_run_result res;
        o.result = &res;
        rt__run_job(job, &o, true, -1);
        code = res.exit_code;
    }
    rt__params_free(&o.params);
    /* The handlers stay until the process exits (rt_main's contract,
     * ratchet.h): put back, the default action of a SIGTERM that lands
     * between here and exit would kill a process whose run is committed
     * (torture saw exit 143). A stop now changes nothing; once stopping,
     * the deadline still holds. Failpoint run.exit (test builds): a
     * SIGTERM of our own here. */
    (void)RT_FAILPOINT(NULL, "run.exit");
    return code;
}

/* --------------------------------------------------------------- daemon */

static const char cli_daemon_usage[] =
    "usage: ratchet [--db URL] daemon [--only JOB,...] [--schedule JOB=EXPR]...\n"
    "                       [--param JOB.NAME=VALUE]... [--overlap JOB=skip|queue]...\n"
    "                       [--misfire JOB=catch-up|skip]... [--max-lateness JOB=S]...\n"
    "                       [--workers N] [--grace S] [--lease-ttl S]\n"
    "                       [--chunk-items N] [--chunk-ms MS]\n"
    "\n"
    "Run jobs on their cron schedules until SIGTERM/SIGINT (then exit 0 within\n"
    "the grace period). Any number of daemons may share one database: each\n"
    "slot becomes exactly one run, keyed by the slot time in ISO-8601 UTC.\n"
    "A daemon also resumes scheduled runs that were interrupted or whose\n"
    "holder died.\n"
    "\n"
    "  --only JOB,...         schedule only these jobs\n"
    "  --schedule JOB=EXPR    cron expression for JOB, overriding its own:\n"
    "                         5 fields (min hour dom month dow), or 6 with\n"
    "                         seconds first; @hourly @daily @weekly @monthly\n"
    "                         @yearly; prefix TZ=Zone/Name for local time\n"
    "  --param JOB.NAME=VALUE a param of JOB's scheduled runs; repeatable\n"
    "  --overlap JOB=WHAT     a slot due while JOB's previous run still goes:\n"
    "                         skip (recorded as skipped; default) or queue\n"
    "  --misfire JOB=WHAT     slots missed while no daemon ran: catch-up (one\n"
    "                         run for the newest missed slot; default) or skip\n"
    "  --max-lateness JOB=S   catch up only a slot at most S seconds late\n"
    "  --workers N            worker processes for queued runs ('ratchet\n"
    "                         enqueue'), default 1; 0 = schedule only\n"
    "  --concurrency N        the same as --workers N (the name 'worker' uses)\n"
    "  --grace S              seconds from SIGTERM to exit (default 8); runs\n"
    "                         get 80% of it to commit and stop\n"
    "  --lease-ttl S, --chunk-items N, --chunk-ms MS   as for 'run'\n"
    "  --metrics-listen [ADDR:]PORT   serve GET /metrics (see 'ratchet metrics')\n"
    "                         on 127.0.0.1, or on ADDR when given\n"
    "\n"
    "systemd: READY=1, STOPPING=1 and WATCHDOG=1 go to $NOTIFY_SOCKET.\n";

/* Append v to a growing array of strings. */
static void cli_push(const char ***list, int *n, const char *v) {
    *list = rt__xrealloc((void *)*list, sizeof **list * (size_t)(*n + 1));
    (*list)[(*n)++] = v;
}

static int cli_daemon(const cli *c) {
    rt__daemon_opts o;
    memset(&o, 0, sizeof o);
    o.workers = 1;
    cli_run_opts ro = CLI_RUN_OPTS_DEFAULT;
    int code = RT_EXIT_OK;
    for (int i = 0; i < c->argc && code == RT_EXIT_OK; i++) {
        const char *v = NULL;
        int m;
        int64_t n;
        /* --workers and --concurrency mean the same, as in 'worker'. */
        bool alias = false;
        if ((m = cli_opt(c->argc, c->argv, &i, "--workers", &v)) ||
            (alias = true, m = cli_opt(c->argc, c->argv, &i, "--concurrency", &v))) {
            if (m < 0 || !rt__parse_int64(v, &n) || n < 0 || n > 256)
                code = rt__usage_error("daemon: %s takes 0 to 256, got '%s'",
                                       alias ? "--concurrency" : "--workers",
                                       m > 0 ? v : "");
            else o.workers = (int)n;
        } else if ((m = cli_opt(c->argc, c->argv, &i, "--only", &v))) {
            if (m < 0 || !*v) code = rt__usage_error("daemon: --only needs JOB,...");
            else o.only = v;
        } else if ((m = cli_opt(c->argc, c->argv, &i, "--metrics-listen", &v))) {
            code = rt__metrics_listen_option("daemon", m, v, &o.metrics_listen);
        } else if (cli_run_option(c, &i, "daemon", &ro, &code)) {
            /* one of the options all three share */
        } else if ((m = cli_opt(c->argc, c->argv, &i, "--schedule", &v))) {
            if (m < 0) code = rt__usage_error("daemon: --schedule needs JOB=EXPR");
            else cli_push(&o.schedules, &o.nschedules, v);
        } else if ((m = cli_opt(c->argc, c->argv, &i, "--param", &v))) {
            if (m < 0) code = rt__usage_error("daemon: --param needs JOB.NAME=VALUE");
            else cli_push(&o.params, &o.nparams, v);
        } else if ((m = cli_opt(c->argc, c->argv, &i, "--overlap", &v))) {
            if (m < 0) code = rt__usage_error("daemon: --overlap needs JOB=skip|queue");
            else cli_push(&o.overlaps, &o.noverlaps, v);
        } else if ((m = cli_opt(c->argc, c->argv, &i, "--misfire", &v))) {
            if (m < 0) code = rt__usage_error("daemon: --misfire needs JOB=catch-up|skip");
            else cli_push(&o.misfires, &o.nmisfires, v);
        } else if ((m = cli_opt(c->argc, c->argv, &i, "--max-lateness", &v))) {
            if (m < 0) code = rt__usage_error("daemon: --max-lateness needs JOB=SECONDS");
            else cli_push(&o.lateness, &o.nlateness, v);
        } else {
            code = cli_bad_arg(c, c->argv[i]);
        }
    }
    o.url = c->db;
    o.exe = c->exe;
    o.grace_ms = (int64_t)llround(ro.grace * 1000);
    o.lease_ttl_ms = (int64_t)llround(ro.ttl * 1000);
    o.chunk_items = ro.chunk_items;
    o.chunk_ms = ro.chunk_ms;
    if (code == RT_EXIT_OK) {
        rt__signals_grace(o.grace_ms); /* the handlers are in (rt_main) */
        code = rt__daemon(c->jobs, &o);
        /* Stopped while it opened the database: asked to stop, it did. */
        if (code == RT_EXIT_FAILED && rt__stop_flag) code = RT_EXIT_OK;
    }
    free((void *)o.schedules);
    free((void *)o.params);
    free((void *)o.overlaps);
    free((void *)o.misfires);
    free((void *)o.lateness);
    return code;
}

/* -------------------------------------------------------------- enqueue */

static const char cli_enqueue_usage[] =
    "usage: ratchet [--db URL] enqueue JOB [--key K] [--param NAME=VALUE]...\n"
    "                               [--run-at TIME] [--priority N] [--max-attempts N]\n"
    "\n"
    "Queue a run of JOB for workers ('ratchet worker', 'ratchet daemon'). A key\n"
    "that exists is reported and left as it is (exit 0). Without --key a unique\n"
    "key is made. Prints JOB/KEY.\n"
    "\n"
    "  --run-at TIME       not before TIME: 2026-11-23T12:00:00Z, or +30s, +5m,\n"
    "                      +2h, +1d from now by the database's clock\n"
    "  --priority N        higher runs first (default 0)\n"
    "  --max-attempts N    failed attempts before the run fails (default: the\n"
    "                      job's, 3)\n";

static int cli_enqueue(const cli *c) {
    rt_enqueue_opts o;
    memset(&o, 0, sizeof o);
    const char *job_name = NULL;
    const char **params = rt__xcalloc((size_t)c->argc + 1, sizeof *params);
    int nparams = 0, code = RT_EXIT_OK;
    bool run_at_relative = false; /* --run-at +DURATION: o.run_at_ms holds it */
    for (int i = 0; i < c->argc && code == RT_EXIT_OK; i++) {
        const char *v = NULL;
        int m;
        int64_t n;
        if ((m = cli_opt(c->argc, c->argv, &i, "--key", &v))) {
            code = cli_key("enqueue", m, v, &o.key);
        } else if ((m = cli_opt(c->argc, c->argv, &i, "--param", &v))) {
            if (m < 0 || !strchr(v, '=') || *v == '=')
                code = rt__usage_error("enqueue: --param needs NAME=VALUE, got '%s'",
                                       m > 0 ? v : "");
            else params[nparams++] = v;
        } else if ((m = cli_opt(c->argc, c->argv, &i, "--run-at", &v))) {
            /* +DURATION counts from the database's clock, which workers
             * compare run-at with: added once the database is open. */
            bool ok = m > 0 && rt__parse_time_ms(v, 0, &o.run_at_ms);
            run_at_relative = ok && v[0] == '+';
            if (!ok)
                code = rt__usage_error("enqueue: --run-at takes an ISO-8601 time "
                                       "(2026-11-23T12:00:00Z) or +DURATION (+30s, "
                                       "+5m, +2h, +1d), got '%s'", m > 0 ? v : "");
        } else if ((m = cli_opt(c->argc, c->argv, &i, "--priority", &v))) {
            if (m < 0 || !rt__parse_int64(v, &n) || n < -1000000 || n > 1000000)
                code = rt__usage_error("enqueue: --priority takes an integer, got '%s'",
                                       m > 0 ? v : "");
            else o.priority = (int)n;
        } else if ((m = cli_opt(c->argc, c->argv, &i, "--max-attempts", &v))) {
            if (m < 0 || !rt__parse_int64(v, &n) || n < 1 || n > 1000)
                code = rt__usage_error("enqueue: --max-attempts takes 1 to 1000, "
                                       "got '%s'", m > 0 ? v : "");
            else o.max_attempts = (int)n;
        } else if (c->argv[i][0] != '-' && !job_name) {
            job_name = c->argv[i];
        } else {
            code = cli_bad_arg(c, c->argv[i]);
        }
    }
    const rt_job *job = NULL;
    if (code == RT_EXIT_OK && !job_name)
        code = rt__usage_error("enqueue: which job? (see 'ratchet jobs')");
    if (code == RT_EXIT_OK && !(job = rt__job_find(c->jobs, job_name)))
        code = rt__usage_error("enqueue: unknown job '%s' (see 'ratchet jobs')",
                               job_name);
    o.params = params;
    char err[RT_ERRMSG_MAX], key[256];
    /* Checked before the database is touched; rt__enqueue checks again
     * for the C callers. */
    rt__params checked = {0};
    if (code == RT_EXIT_OK &&
        rt__enqueue_params(job, &o, &checked, err, sizeof err) != RT_OK)
        code = rt__usage_error("enqueue: %s", err);
    rt__params_free(&checked);
    rt_store *s = NULL;
    if (code == RT_EXIT_OK) code = cli_open(c, &s);
    if (code == RT_EXIT_OK) {
        bool created = false;
        int rc = run_at_relative ? rt__store_now_ms(s, o.run_at_ms, &o.run_at_ms)
                                 : RT_OK;
        if (rc != RT_OK) snprintf(err, sizeof err, "%s", s->errmsg);
        else rc = rt__enqueue(s, true, job, &o, key, sizeof key, &created, err,
                              sizeof err);
        if (rc == RT_INVALID) {
            code = rt__usage_error("enqueue: %s", err);
        } else if (rc != RT_OK) {
            rt__log(RT_LOG_ERROR, "db_error", NULL, "%s", err);
            code = RT_EXIT_FAILED;
        } else if (created) {
            printf("%s/%s\n", job->name, key);
        } else {
            rt__run run;
            if (rt__run_load(s, job->name, key, &run) == RT_OK) {
                rt__log_fields f = RT_LOG_FIELDS_NONE;
                f.job = job->name;
                f.key = key;
                rt__log(RT_LOG_INFO, "exists", &f,
                        "run exists already (%s); left as it is",
                        rt__status_name(run.status));
                rt__run_free(&run);
            }
            printf("%s/%s\n", job->name, key);
        }
    }
    rt__store_close(s);
    free(params);
    return code;
}

/* --------------------------------------------------------------- worker */

static const char cli_worker_usage[] =
    "usage: ratchet [--db URL] worker [--concurrency N] [--only JOB,...] [--grace S]\n"
    "                              [--lease-ttl S] [--chunk-items N] [--chunk-ms MS]\n"
    "\n"
    "Claim queued runs (priority, then run-at, then age) and run them, until\n"
    "SIGTERM/SIGINT (then exit 0 within the grace period). Any number of\n"
    "workers may share one database; a job-scoped job still runs one run at a\n"
    "time. A failed attempt is retried with exponential backoff (1 s doubling,\n"
    "with jitter) up to the run's max attempts, then the run is failed.\n"
    "\n"
    "  --concurrency N   N worker processes under this one (default 1)\n"
    "  --workers N       the same as --concurrency N (the name 'daemon' uses)\n"
    "  --only JOB,...    claim only these jobs' runs\n"
    "  --grace S         seconds from SIGTERM to exit (default 8)\n"
    "  --lease-ttl S, --chunk-items N, --chunk-ms MS   as for 'run'\n"
    "  --metrics-listen [ADDR:]PORT   serve GET /metrics (see 'ratchet metrics')\n"
    "                    from this process, on 127.0.0.1 or on ADDR when given\n";

static int cli_worker(const cli *c) {
    rt__worker_opts o;
    memset(&o, 0, sizeof o);
    o.concurrency = 1;
    cli_run_opts ro = CLI_RUN_OPTS_DEFAULT;
    int code = RT_EXIT_OK;
    for (int i = 0; i < c->argc && code == RT_EXIT_OK; i++) {
        const char *v = NULL;
        int m;
        int64_t n;
        /* --concurrency and --workers mean the same, as in 'daemon'. */
        bool alias = false;
        if ((m = cli_opt(c->argc, c->argv, &i, "--concurrency", &v)) ||
            (alias = true, m = cli_opt(c->argc, c->argv, &i, "--workers", &v))) {
            if (m < 0 || !rt__parse_int64(v, &n) || n < 1 || n > 256)
                code = rt__usage_error("worker: %s takes 1 to 256, got '%s'",
                                       alias ? "--workers" : "--concurrency",
                                       m > 0 ? v : "");
            else o.concurrency = (int)n;
        } else if (cli_run_option(c, &i, "worker", &ro, &code)) {
            /* one of the options all three share */
        } else if ((m = cli_opt(c->argc, c->argv, &i, "--only", &v))) {
            if (m < 0 || !*v) code = rt__usage_error("worker: --only needs JOB,...");
            else o.only = v;
        } else if ((m = cli_opt(c->argc, c->argv, &i, "--metrics-listen", &v))) {
            code = rt__metrics_listen_option("worker", m, v, &o.metrics_listen);
        } else {
            code = cli_bad_arg(c, c->argv[i]);
        }
    }
    o.url = c->db;
    o.grace_ms = (int64_t)llround(ro.grace * 1000);
    o.lease_ttl_ms = (int64_t)llround(ro.ttl * 1000);
    o.chunk_items = ro.chunk_items;
    o.chunk_ms = ro.chunk_ms;
    if (code == RT_EXIT_OK) {
        rt__signals_grace(o.grace_ms); /* the handlers are in (rt_main) */
        code = rt__worker(c->jobs, &o);
        /* Stopped while it opened the database: asked to stop, it did. */
        if (code == RT_EXIT_FAILED && rt__stop_flag) code = RT_EXIT_OK;
    }
    return code;
}

/* ----------------------------------------------------------------- jobs */

static const char *const cli_param_types[] = {"text", "int", "real", "bool"};

static int cli_jobs(const cli *c) {
    if (c->argc > 0) return cli_bad_arg(c, c->argv[0]);
    for (int i = 0; c->jobs[i]; i++) {
        const rt_job *j = c->jobs[i];
        printf("%s%s%s\n", j->name, j->description ? " — " : "",
               j->description ? j->description : "");
        for (int k = 0; j->steps[k].name; k++)
            printf("  step %d: %s\n", k + 1, j->steps[k].name);
        for (const rt_param_def *p = j->params; p && p->name; p++)
            printf("  param %s (%s%s%s)%s%s\n", p->name,
                   cli_param_types[p->type], p->def ? ", default " : "",
                   p->def ? p->def : "", p->help ? ": " : "",
                   p->help ? p->help : "");
    }
    return RT_EXIT_OK;
}

/* ---------------------------------------------------------------- reset */

/* Tries of a reset whose run moves on between its read and its delete. */
#define CLI_RESET_ROUNDS 10

static int cli_reset(const cli *c) {
    const char *job = NULL, *key = NULL;
    bool force = false;
    for (int i = 0; i < c->argc; i++) {
        const char *v = NULL;
        int m;
        if ((m = cli_opt(c->argc, c->argv, &i, "--key", &v))) {
            int code = cli_key("reset", m, v, &key);
            if (code != RT_EXIT_OK) return code;
        } else if (cli_opt(c->argc, c->argv, &i, "--force", NULL)) {
            force = true;
        } else if (c->argv[i][0] != '-' && !job) {
            job = c->argv[i];
        } else {
            return cli_bad_arg(c, c->argv[i]);
        }
    }
    if (!job || !key)
        return rt__usage_error("reset: usage: ratchet reset JOB --key K [--force]");
    rt_store *s = NULL;
    int code = cli_open(c, &s);
    if (code != RT_EXIT_OK) return code;
    int rc = RT_NOTFOUND;
    bool deleted = false;
    /* The delete is fenced on what was read: a run that moved on meanwhile
     * (started, taken over, finished) is read and judged again. */
    for (int round = 0; round < CLI_RESET_ROUNDS && !deleted; round++) {
        rt__run run;
        rc = rt__run_load(s, job, key, &run);
        if (rc != RT_OK) break;
        if (!force && run.status == RT__ST_RUNNING) {
            rt__log_fields f = RT_LOG_FIELDS_NONE;
            f.job = job;
            f.key = key;
            rt__log(RT_LOG_ERROR, "refused", &f,
                    "reset: run %s[%s] is running; stop its process first, or "
                    "use --force to discard it anyway (that process then "
                    "stops, exit 3)",
                    job, key);
            rt__run_free(&run);
            rt__store_close(s);
            return RT_EXIT_HELD;
        }
        rc = rt__run_delete(s, &run);
        deleted = rc == RT_OK;
        if (deleted)
            printf("reset %s[%s]: discarded run %lld (was %s at step %d, %lld "
                   "items)\n",
                   job, key, (long long)run.id, rt__status_name(run.status),
                   run.step_index + 1,
                   (long long)run.items);
        rt__run_free(&run);
        if (rc != RT_OK && rc != RT_NOTFOUND) break;
    }
    if (rc == RT_NOTFOUND && !deleted) {
        /* Still there after every round: it kept moving on. */
        rt__run probe;
        if (rt__run_load(s, job, key, &probe) == RT_OK) {
            rt__run_free(&probe);
            rt__store_fail(s, RT_BUSY, "run %s[%s] changed under every one of "
                           "%d tries; try again", job, key, CLI_RESET_ROUNDS);
            rc = RT_BUSY;
        }
    }
    if (rc == RT_NOTFOUND) {
        code = rt__usage_error("reset: no run of job '%s' with key '%s'", job, key);
    } else if (rc != RT_OK) {
        rt__log(RT_LOG_ERROR, "db_error", NULL, "%s", s->errmsg);
        code = RT_EXIT_FAILED;
    }
    rt__store_close(s);
    return code;
}

/* -------------------------------------------------------------- migrate */

static int cli_migrate(const cli *c) {
    if (c->argc > 0) return cli_bad_arg(c, c->argv[0]);
    rt_store *s;
    int from = 0, to = 0, code;
    if (rt__db_open(c->db, &s, &from, &to, &code, NULL, 0) != RT_OK)
        return code; /* logged, with the exit code it means */
    printf("%s: schema version %d%s (latest %d)\n", s->url_display, to,
           from == to ? ", up to date" : "", rt__schema_latest(rt__store_name(s)));
    rt__store_close(s);
    return RT_EXIT_OK;
}

/* ----------------------------------------------------------------- wait */

static int cli_wait(const cli *c) {
    const char *job = NULL, *key = NULL;
    double timeout = -1;
    for (int i = 0; i < c->argc; i++) {
        const char *v = NULL;
        int m;
        if ((m = cli_opt(c->argc, c->argv, &i, "--key", &v))) {
            int code = cli_key("wait", m, v, &key);
            if (code != RT_EXIT_OK) return code;
        } else if ((m = cli_opt(c->argc, c->argv, &i, "--timeout", &v))) {
            if (m < 0 || !rt__parse_double(v, &timeout) || timeout < 0)
                return rt__usage_error("wait: --timeout takes seconds >= 0, got '%s'",
                                 m > 0 ? v : "");
        } else if (c->argv[i][0] != '-' && !job) {
            job = c->argv[i];
        } else {
            return cli_bad_arg(c, c->argv[i]);
        }
    }
    if (!job) return rt__usage_error("wait: which job? usage: ratchet wait JOB [--key K]");
    char err[RT_ERRMSG_MAX];
    int rc = rt_wait(c->db, job, key, timeout, err, sizeof err);
    rt__log_fields f = RT_LOG_FIELDS_NONE;
    f.job = job;
    f.key = key;
    switch (rc) {
    case RT_OK:
        rt__log(RT_LOG_INFO, "done", &f, "%s", "run is finished");
        return RT_EXIT_OK;
    case RT_ERROR:
        rt__log(RT_LOG_ERROR, "failed", &f, "%s", err);
        return RT_EXIT_FAILED;
    case RT_TIMEOUT:
        rt__log(RT_LOG_ERROR, "timeout", &f, "%s after %g s", err, timeout);
        return RT_EXIT_TIMEOUT;
    case RT_NOTFOUND:
    case RT_INVALID:
    case RT_SCHEMA:
        return rt__usage_error("wait: %s", err);
    default:
        rt__log(RT_LOG_ERROR, "db_error", &f, "%s", err);
        return RT_EXIT_FAILED;
    }
}

/* ------------------------------------------------------ status, history */

/* rt__status_render, rt__ops_history */
typedef int (*cli_render_fn)(rt_store *s, const char *job, int64_t limit,
                             bool json, rt__buf *out);

/* `status` and `history`: [JOB] [--json] [--limit N], then a list. */
static int cli_list(const cli *c, cli_render_fn render) {
    const char *job = NULL;
    bool json = false;
    int64_t limit = 50;
    for (int i = 0; i < c->argc; i++) {
        const char *v = NULL;
        int m;
        if (cli_opt(c->argc, c->argv, &i, "--json", NULL)) {
            json = true;
        } else if ((m = cli_opt(c->argc, c->argv, &i, "--limit", &v))) {
            if (m < 0 || !rt__parse_int64(v, &limit) || limit < 1)
                return rt__usage_error("%s: --limit takes a count >= 1, got '%s'",
                                       c->cmd, m > 0 ? v : "");
        } else if (c->argv[i][0] != '-' && !job) {
            job = c->argv[i];
        } else {
            return cli_bad_arg(c, c->argv[i]);
        }
    }
    rt_store *s = NULL;
    int code = cli_open(c, &s);
    if (code != RT_EXIT_OK) return code;
    rt__buf out = {0};
    int rc = render(s, job, limit, json, &out);
    if (rc == RT_OK) {
        fwrite(out.p ? out.p : "", 1, out.len, stdout);
    } else {
        rt__log(RT_LOG_ERROR, "db_error", NULL, "%s", s->errmsg);
        code = RT_EXIT_FAILED;
    }
    rt__buf_free(&out);
    rt__store_close(s);
    return code;
}

static int cli_status(const cli *c) { return cli_list(c, rt__status_render); }

/* -------------------------------------------------------------- metrics */

static const char cli_metrics_usage[] =
    "usage: ratchet [--db URL] metrics\n"
    "\n"
    "Print the runs' metrics in Prometheus text format (0.0.4), read from the\n"
    "database: runs by job and status, items, last success and failure, the\n"
    "progress and lease ages of running runs, schedule lateness, queue depth.\n"
    "For the node exporter's textfile collector, write a file and rename it:\n"
    "  ratchet metrics > DIR/ratchet.prom.tmp && mv DIR/ratchet.prom.tmp DIR/ratchet.prom\n"
    "'daemon' and 'worker' serve the same with --metrics-listen [ADDR:]PORT.\n";

static int cli_metrics(const cli *c) {
    if (c->argc > 0) return cli_bad_arg(c, c->argv[0]);
    rt_store *s = NULL;
    int code = cli_open(c, &s);
    if (code != RT_EXIT_OK) return code;
    rt__buf out = {0};
    int rc = rt__metrics_render(s, &out);
    if (rc == RT_OK) {
        fwrite(out.p ? out.p : "", 1, out.len, stdout);
    } else {
        rt__log(RT_LOG_ERROR, "db_error", NULL, "metrics: %s", s->errmsg);
        code = RT_EXIT_FAILED;
    }
    rt__buf_free(&out);
    rt__store_close(s);
    return code;
}

static const char cli_history_usage[] =
    "usage: ratchet [--db URL] history [JOB] [--json] [--limit N]\n"
    "\n"
    "Finished runs (done, failed, skipped, cancelled), newest first: id, job,\n"
    "key, status, attempts, items, start, finish, duration, error. --json\n"
    "prints one JSON document. --limit N shows at most N runs (default 50).\n";

static int cli_history(const cli *c) { return cli_list(c, rt__ops_history); }

/* -------------------------------------------------------- retry, cancel */

static const char cli_retry_usage[] =
    "usage: ratchet [--db URL] retry RUN\n"
    "\n"
    "Make a failed, cancelled or skipped run pending again, its error and\n"
    "attempt count cleared. Its progress is kept: it resumes at the step and\n"
    "cursor where it stopped. A queued run goes back to the workers; any other\n"
    "is resumed by 'ratchet run JOB --key K'. RUN is a run id (as 'ratchet\n"
    "history' shows) or JOB/KEY. Exit 2 when the run does not exist or is in\n"
    "another state.\n";

static const char cli_cancel_usage[] =
    "usage: ratchet [--db URL] cancel RUN\n"
    "\n"
    "Cancel a run. A pending or interrupted run, or a running one whose\n"
    "process is gone, is cancelled at once. A running run stops at its next\n"
    "commit (item boundary): the chunk it finished commits, the run ends\n"
    "'cancelled' and its process exits 0. 'ratchet retry' resumes a cancelled\n"
    "run. RUN is a run id or JOB/KEY. Exit 2 when the run does not exist or is\n"
    "finished.\n";

/* rt__ops_retry, rt__ops_cancel */
typedef int (*cli_run_op_fn)(rt_store *s, const rt_job *const *jobs,
                             const rt__run_ref *ref, rt__buf *out);

/* `retry RUN`, `cancel RUN`: one line on stdout, or one error line. */
static int cli_run_op(const cli *c, cli_run_op_fn op) {
    if (c->argc == 0)
        return rt__usage_error("%s: which run? usage: ratchet %s RUN (a run id "
                               "or JOB/KEY)", c->cmd, c->cmd);
    if (c->argv[0][0] == '-') return cli_bad_arg(c, c->argv[0]);
    if (c->argc > 1) return cli_bad_arg(c, c->argv[1]);
    char err[RT_ERRMSG_MAX];
    rt__run_ref ref;
    if (rt__run_ref_parse(c->argv[0], &ref, err, sizeof err) != RT_OK)
        return rt__usage_error("%s: %s", c->cmd, err);
    rt_store *s = NULL;
    int code = cli_open(c, &s);
    if (code == RT_EXIT_OK) {
        rt__buf out = {0};
        int rc = op(s, c->jobs, &ref, &out);
        if (rc == RT_OK) {
            fwrite(out.p ? out.p : "", 1, out.len, stdout);
        } else if (rc == RT_NOTFOUND) {
            code = rt__usage_error("%s: %s", c->cmd, s->errmsg);
        } else if (rc == RT_INVALID) {
            rt__log(RT_LOG_ERROR, "refused", NULL, "%s: %s", c->cmd, s->errmsg);
            code = RT_EXIT_USAGE;
        } else {
            rt__log(RT_LOG_ERROR, "db_error", NULL, "%s: %s", c->cmd, s->errmsg);
            code = RT_EXIT_FAILED;
        }
        rt__buf_free(&out);
    }
    rt__store_close(s);
    rt__run_ref_free(&ref);
    return code;
}

static int cli_retry(const cli *c) { return cli_run_op(c, rt__ops_retry); }
static int cli_cancel(const cli *c) { return cli_run_op(c, rt__ops_cancel); }

/* ---------------------------------------------------------------- prune */

static const char cli_prune_usage[] =
    "usage: ratchet [--db URL] prune --older-than DURATION\n"
    "\n"
    "Delete the finished runs (done, failed, skipped, cancelled) that finished\n"
    "more than DURATION ago - N followed by s, m, h or d: 45s, 90m, 12h, 30d -\n"
    "with their params. Unfinished runs are never deleted. Times are the\n"
    "database's clock.\n";

/* N followed by s, m, h or d, as milliseconds. */
static bool cli_age(const char *v, int64_t *ms) {
    size_t n = strlen(v);
    if (n < 2 || !strchr("smhd", v[n - 1])) return false;
    for (size_t i = 0; i + 1 < n; i++)
        if (v[i] < '0' || v[i] > '9') return false;
    return rt__parse_duration_ms(v, ms);
}

static int cli_prune(const cli *c) {
    const char *age = NULL;
    for (int i = 0; i < c->argc; i++) {
        const char *v = NULL;
        int m;
        if ((m = cli_opt(c->argc, c->argv, &i, "--older-than", &v))) {
            if (m < 0) return rt__usage_error("prune: --older-than needs a DURATION");
            age = v;
        } else {
            return cli_bad_arg(c, c->argv[i]);
        }
    }
    int64_t ms = 0;
    if (!age)
        return rt__usage_error("prune: --older-than DURATION is required (e.g. 30d)");
    if (!cli_age(age, &ms))
        return rt__usage_error("prune: --older-than takes N followed by s, m, h "
                               "or d (e.g. 30d, 12h), got '%s'", age);
    rt_store *s = NULL;
    int code = cli_open(c, &s);
    if (code != RT_EXIT_OK) return code;
    int64_t deleted = 0;
    int rc = rt__ops_prune(s, ms, &deleted);
    if (rc == RT_OK) {
        printf("pruned %lld finished run%s that finished more than %s ago\n",
               (long long)deleted, deleted == 1 ? "" : "s", age);
    } else {
        rt__log(RT_LOG_ERROR, "db_error", NULL, "prune: %s", s->errmsg);
        code = RT_EXIT_FAILED;
    }
    rt__store_close(s);
    return code;
}

/* ----------------------------------------------------------- completion */

static const char cli_completion_usage[] =
    "usage: ratchet completion bash\n"
    "\n"
    "Print a bash completion script for this program: its commands, each\n"
    "command's flags and the names of the jobs built into it. Load it with\n"
    "  source <(ratchet completion bash)\n"
    "or save it as ~/.local/share/bash-completion/completions/ratchet.\n";

static int cli_completion(const cli *c); /* reads the command table below */

/* ------------------------------------------------------------- dispatch */

typedef struct cli_command {
    const char *name;
    int (*run)(const cli *c);
    const char *usage;
    /* SIGTERM/SIGINT stop it at a safe point (else they just end it),
     * and stop_exit is its exit code when the stop deadline passes. */
    bool stops;
    int stop_exit;
} cli_command;

static const cli_command cli_commands[] = {
    {"run", cli_run, cli_run_usage, true, RT_EXIT_INTERRUPTED},
    /* a resident process asked to stop did what it was asked: exit 0 */
    {"daemon", cli_daemon, cli_daemon_usage, true, RT_EXIT_OK},
    {"enqueue", cli_enqueue, cli_enqueue_usage, false, 0},
    {"worker", cli_worker, cli_worker_usage, true, RT_EXIT_OK},
    {"status", cli_status, cli_status_usage, false, 0},
    {"jobs", cli_jobs, cli_jobs_usage, false, 0},
    {"reset", cli_reset, cli_reset_usage, false, 0},
    {"retry", cli_retry, cli_retry_usage, false, 0},
    {"cancel", cli_cancel, cli_cancel_usage, false, 0},
    {"history", cli_history, cli_history_usage, false, 0},
    {"prune", cli_prune, cli_prune_usage, false, 0},
    {"wait", cli_wait, cli_wait_usage, false, 0},
    {"migrate", cli_migrate, cli_migrate_usage, false, 0},
    {"metrics", cli_metrics, cli_metrics_usage, false, 0},
    {"completion", cli_completion, cli_completion_usage, false, 0},
    {NULL, NULL, NULL, false, 0},
};

static int cli_completion(const cli *c) {
    if (c->argc == 0)
        return rt__usage_error("completion: which shell? usage: ratchet completion bash");
    if (c->argv[0][0] == '-') return cli_bad_arg(c, c->argv[0]);
    if (strcmp(c->argv[0], "bash"))
        return rt__usage_error("completion: unknown shell '%s' (bash is the one "
                               "supported)", c->argv[0]);
    if (c->argc > 1) return cli_bad_arg(c, c->argv[1]);
    enum { N = sizeof cli_commands / sizeof cli_commands[0] };
    rt__cli_doc docs[N];
    for (int i = 0; i < N; i++) {
        docs[i].name = cli_commands[i].name;
        docs[i].usage = cli_commands[i].usage;
    }
    rt__buf out = {0};
    rt__completion_bash(&out, c->exe, CLI_OPTIONS, docs, c->jobs);
    fwrite(out.p, 1, out.len, stdout);
    rt__buf_free(&out);
    return RT_EXIT_OK;
}

static const cli_command *cli_find(const char *name) {
    for (const cli_command *k = cli_commands; k->name; k++)
        if (!strcmp(k->name, name)) return k;
    return NULL;
}

static int cli_version(void) {
    printf("ratchet %s (%s)\n", RT_VERSION, rt__store_versions());
    return RT_EXIT_OK;
}

/*
 * The stop handlers of a command that has them (run, worker, daemon), with
 * the default grace until its --grace is parsed; the others get the signal
 * mask they started with back, and with it the default actions.
 */
static void cli_stop_handlers(const cli_command *k) {
    if (!k || !k->stops) {
        rt__signals_release();
        return;
    }
    rt__signals_deadline_code(k->stop_exit);
    if (rt__signals_install(CLI_GRACE_DEFAULT_MS) != RT_OK)
        rt__log(RT_LOG_WARN, "signals", NULL,
                "could not arm the stop deadline timer");
}

int rt_main(int argc, char **argv, const rt_job *const *jobs) {
    /* First of all: a SIGTERM from now on waits for the handlers of run,
     * worker and daemon (cli_stop_handlers) instead of killing them. */
    rt__signals_hold();
    rt__log_init();
    /* Test builds: a malformed RATCHET_FAILPOINT is a usage error. */
    int bad = RT_FAILPOINT_INIT();
    if (bad) {
        rt__signals_release();
        return bad;
    }
    cli c;
    memset(&c, 0, sizeof c);
    c.jobs = jobs;
    c.exe = argc > 0 ? argv[0] : "ratchet";
    c.db = getenv("RATCHET_DB");
    if (!c.db || !*c.db) c.db = CLI_DEFAULT_DB;
    /* Pull global options out wherever they stand; keep the rest in order. */
    char **rest = rt__xcalloc((size_t)argc + 1, sizeof *rest);
    int nrest = 0, code = RT_EXIT_OK;
    bool version = false;
    for (int i = 1; i < argc && code == RT_EXIT_OK; i++) {
        const char *v = NULL;
        int m;
        if ((m = cli_opt(argc, argv, &i, "--db", &v))) {
            if (m < 0 || !*v) code = rt__usage_error("--db needs a URL");
            else c.db = v;
        } else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            c.help = true;
        } else if (!strcmp(argv[i], "--version")) {
            version = true;
        } else {
            rest[nrest++] = argv[i];
        }
    }
    cli_stop_handlers(code == RT_EXIT_OK && !version && nrest > 0 && !c.help
                          ? cli_find(rest[0])
                          : NULL);
    if (code == RT_EXIT_OK) {
        if (version) {
            code = cli_version();
        } else if (nrest == 0) {
            fputs(cli_usage, c.help ? stdout : stderr);
            code = c.help ? RT_EXIT_OK : RT_EXIT_USAGE;
        } else if (!strcmp(rest[0], "help")) {
            const cli_command *k = nrest > 1 ? cli_find(rest[1]) : NULL;
            if (nrest > 1 && !k && strcmp(rest[1], "help")) /* help help: this */
                code = rt__usage_error("help: unknown command '%s'", rest[1]);
            else
                fputs(k ? k->usage : cli_usage, stdout);
        } else {
            const cli_command *k = cli_find(rest[0]);
            if (!k) {
                code = rt__usage_error("unknown command '%s' (see 'ratchet --help')",
                                 rest[0]);
            } else if (c.help) {
                fputs(k->usage, stdout);
            } else {
                c.cmd = k->name;
                c.argc = nrest - 1;
                c.argv = rest + 1;
                code = k->run(&c);
            }
        }
    }
    free(rest);
    fflush(stdout);
    return code;
}
