/*
 * cli.c — rt_main(): the command line over the library. Each command is a
 * row of cli_commands with its usage text and its table of options
 * (rt__cli_opt), read by the one parser of args.c (both `--flag value` and
 * `--flag=value`, global flags anywhere) and by completion.c; every input
 * is validated before the database is touched, and outcomes map to the
 * exit codes of DESIGN.md: 0 done, 1 failed, 2 usage/configuration, 3
 * held or fenced, 75 interrupted (resumable) - through the one table,
 * rt_exit_code. It is a client of ratchet.h: what it needs from below
 * that is not public API comes through cli.h (service/cli_entry.h).
 * SIGTERM and SIGINT are blocked from rt_main's first instruction and, for
 * run, worker and daemon, handled from the moment the command is known
 * (signals.c), so a stop at any time gives that command's documented exit.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

#define CLI_DEFAULT_DB "sqlite:ratchet.db"

typedef struct rt__cli {
    const rt_job *const *jobs;
    const char *db;
    const char *cmd;
    const char *exe; /* argv[0] of the process */
    bool help;
} cli;

/* The global options' help (their table is cli_global_opts). */
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
    "                              [--restart-step NAME] [--start-at MS]\n"
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
    "  --start-at MS        connect and get ready now, take the run at this\n"
    "                       wall-clock time (ms since the epoch): for a\n"
    "                       scheduler that starts the process ahead of its slot\n"
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
 * The slots of the options' values (rt__cli_opt.slot): one list for every
 * command, so the rows run, daemon and worker share are written once.
 */
enum {
    O_GRACE, O_TTL, O_ITEMS, O_CHUNK_MS, /* run, daemon, worker */
    O_KEY, O_PARAM, O_IF_RUNNING, O_RESTART, O_START_AT, O_RECORD_SKIP,
    O_ONLY, O_WORKERS, O_METRICS, O_SCHEDULE, O_OVERLAP, O_MISFIRE,
    O_LATENESS, O_RUN_AT, O_PRIORITY, O_MAX_ATTEMPTS, O_JSON, O_LIMIT,
    O_FORCE, O_TIMEOUT, O_OLDER_THAN,
    O_DB = 0, O_HELP, O_VERSION, /* the global options' own */
};

#define CLI_INT_MAX 9.3e18 /* above any int64: no upper bound */

/* --key: a run key (rt__cli_key_check), or one usage line naming cmd. */
static int cli_key_check(const char *cmd, const rt__cli_opt *o, const char *v,
                         rt__cli_val *out) {
    (void)o;
    (void)out;
    if (!v || !*v)
        return rt__cli_usage("%s: --key needs a non-empty value", cmd);
    char err[160];
    if (rt__cli_key_check(v, err, sizeof err) != RT_OK)
        return rt__cli_usage("%s: --key: %s", cmd, err);
    return RT_EXIT_OK;
}

/* --metrics-listen [ADDR:]PORT, checked before anything starts. */
static int cli_listen_check(const char *cmd, const rt__cli_opt *o,
                            const char *v, rt__cli_val *out) {
    (void)o;
    (void)out;
    return rt__cli_listen_check(cmd, v);
}

/* --run-at TIME or +DURATION; +DURATION counts from the database's clock,
 * which workers compare run-at with: added once the database is open. */
static int cli_run_at_check(const char *cmd, const rt__cli_opt *o,
                            const char *v, rt__cli_val *out) {
    if (v && rt__cli_parse_time(v, &out->i)) return RT_EXIT_OK;
    return rt__cli_usage("%s: %s %s, got '%s'", cmd, o->name, o->want,
                           v ? v : "");
}

/* The rows of the options run, daemon and worker share. */
#define CLI_ROW_GRACE                                                        \
    {"--grace", RT_CLI_REAL, O_GRACE, "takes seconds > 0", 0, 86400, "S",    \
     RT_CLI_MIN_OPEN, NULL}
#define CLI_ROW_TTL                                                          \
    {"--lease-ttl", RT_CLI_REAL, O_TTL, "takes seconds from 0.1 to 86400",   \
     0.1, 86400, "S", 0, NULL}
#define CLI_ROW_ITEMS                                                        \
    {"--chunk-items", RT_CLI_INT, O_ITEMS, "takes a count >= 0", 0,          \
     CLI_INT_MAX, "N", 0, NULL}
#define CLI_ROW_CHUNK_MS                                                     \
    {"--chunk-ms", RT_CLI_INT, O_CHUNK_MS, "takes milliseconds >= 0", 0,     \
     CLI_INT_MAX, "MS", 0, NULL}
#define CLI_ROW_KEY                                                          \
    {"--key", RT_CLI_CHECK, O_KEY, NULL, 0, 0, "K", 0, cli_key_check}
#define CLI_ROW_ONLY                                                         \
    {"--only", RT_CLI_WORD, O_ONLY, "needs JOB,...", 0, 0, "JOB,...",        \
     RT_CLI_JOBS, NULL}
#define CLI_ROW_METRICS                                                      \
    {"--metrics-listen", RT_CLI_CHECK, O_METRICS, NULL, 0, 0, "[ADDR:]PORT", \
     0, cli_listen_check}
#define CLI_ROW_END {NULL, RT_CLI_FLAG, 0, NULL, 0, 0, NULL, 0, NULL}

/* The options run, daemon and worker share, as their tables parsed them. */
typedef struct cli_run_opts {
    double grace, ttl;
    int64_t chunk_items, chunk_ms;
} cli_run_opts;

#define CLI_GRACE_DEFAULT_MS 8000 /* --grace's default */

static cli_run_opts cli_run_opts_of(const rt__cli_args *a) {
    cli_run_opts r = {CLI_GRACE_DEFAULT_MS / 1000, 30, 1000, 1000};
    if (a->v[O_GRACE].set) r.grace = a->v[O_GRACE].d;
    if (a->v[O_TTL].set) r.ttl = a->v[O_TTL].d;
    if (a->v[O_ITEMS].set) r.chunk_items = a->v[O_ITEMS].i;
    if (a->v[O_CHUNK_MS].set) r.chunk_ms = a->v[O_CHUNK_MS].i;
    return r;
}

/* Open c->db (rt_db_open, which logs why it could not): RT_EXIT_OK with
 * *db open, or the exit code of the failure (the handle closed). */
static int cli_db(const cli *c, rt_db **db) {
    int rc = rt_db_open(c->db, db, NULL, 0);
    if (rc == RT_OK) return RT_EXIT_OK;
    int code = rt_exit_code(*db, rc);
    rt_db_close(*db);
    *db = NULL;
    return code;
}

/*
 * The exit code of a database failure rc of an operator command on db:
 * the table's (rt_exit_code), except that it stays 1 where the table says
 * 75 (a lost connection, a full disk, a lock not had in time), as these
 * commands always exited.
 */
static int cli_db_exit(const rt_db *db, int rc) {
    int code = rt_exit_code(db, rc);
    return code == RT_EXIT_INTERRUPTED ? RT_EXIT_FAILED : code;
}

/* ------------------------------------------------------------------ run */

/* The job of jobs named name, or NULL. */
static const rt_job *cli_job_find(const rt_job *const *jobs, const char *name) {
    for (int i = 0; jobs && jobs[i]; i++)
        if (!strcmp(jobs[i]->name, name)) return jobs[i];
    return NULL;
}

static const rt__cli_opt cli_run_opts_table[] = {
    CLI_ROW_KEY,
    {"--param", RT_CLI_PAIR, O_PARAM, "needs NAME=VALUE", 0, 0, "NAME=VALUE", 0,
     NULL},
    CLI_ROW_GRACE,
    CLI_ROW_ITEMS,
    CLI_ROW_CHUNK_MS,
    {"--if-running", RT_CLI_CHOICE, O_IF_RUNNING, "takes fail, skip or wait",
     0, 0, "fail|skip|wait", 0, NULL},
    CLI_ROW_TTL,
    {"--restart-step", RT_CLI_WORD, O_RESTART,
     "needs a step name (see 'ratchet jobs')", 0, 0, "NAME", 0, NULL},
    {"--start-at", RT_CLI_INT, O_START_AT, "takes epoch milliseconds", 0,
     CLI_INT_MAX, "MS", 0, NULL},
    /* Internal (the daemon's children): a cron slot's run, recorded
     * skipped when its job is held by another run. */
    {"--record-skip", RT_CLI_FLAG, O_RECORD_SKIP, NULL, 0, 0, NULL,
     RT_CLI_HIDDEN, NULL},
    CLI_ROW_END,
};

static int cli_run(const cli *c, const rt__cli_args *a) {
    rt__cli_run_opts o;
    memset(&o, 0, sizeof o);
    cli_run_opts ro = cli_run_opts_of(a);
    const char *job_name = a->npos > 0 ? a->pos[0] : NULL;
    const rt_job *job = NULL;
    int code = RT_EXIT_OK;
    if (!job_name)
        code = rt__cli_usage("run: which job? (see 'ratchet jobs')");
    else if (!(job = cli_job_find(c->jobs, job_name)))
        code = rt__cli_usage("run: unknown job '%s' (see 'ratchet jobs')",
                             job_name);
    const rt__cli_val *params = &a->v[O_PARAM];
    for (int i = 0; code == RT_EXIT_OK && i < params->n; i++) {
        const char *v = params->list[i], *eq = strchr(v, '=');
        char *name = strndup(v, (size_t)(eq - v)), err[1024];
        if (!name) abort();
        if (rt__cli_param_check(job, name, eq + 1, err, sizeof err) != RT_OK)
            code = rt__cli_usage("%s", err);
        free(name);
    }
    const char *restart = a->v[O_RESTART].text;
    if (code == RT_EXIT_OK && restart) {
        int k = 0;
        while (job->steps[k].name && strcmp(job->steps[k].name, restart)) k++;
        if (!job->steps[k].name) {
            char known[1024];
            size_t n = 0;
            known[0] = '\0';
            for (int i = 0; job->steps[i].name && n < sizeof known; i++)
                n += (size_t)snprintf(known + n, sizeof known - n, "%s%s",
                                      i ? "," : "", job->steps[i].name);
            code = rt__cli_usage("run: --restart-step: job %s has no step "
                                 "'%s' (its steps are [%s])",
                                 job->name, restart, known);
        }
    }
    if (code != RT_EXIT_OK) return code;
    o.url = c->db;
    o.key = a->v[O_KEY].text;
    o.params = params->list;
    o.nparams = params->n;
    /* the choices' order is RT_IF_RUNNING_FAIL, _SKIP, _WAIT */
    o.if_running = (int)a->v[O_IF_RUNNING].i;
    o.restart_step = restart;
    o.lease_ttl_ms = (int64_t)llround(ro.ttl * 1000);
    o.chunk_items = ro.chunk_items;
    o.chunk_ms = ro.chunk_ms;
    o.start_at_ms = a->v[O_START_AT].i;
    o.record_skip = a->v[O_RECORD_SKIP].set;
    /* The handlers are in since rt_main began (a SIGTERM while it parsed,
     * connects or migrates also ends in exit 75): --grace sets the
     * deadline, also of a stop that came already. */
    rt__cli_signals_grace((int64_t)llround(ro.grace * 1000));
    code = rt__cli_run(job, &o);
    /* The handlers stay until the process exits (rt_main's contract,
     * ratchet.h): put back, the default action of a SIGTERM that lands
     * between here and exit would kill a process whose run is committed
     * (torture saw exit 143). A stop now changes nothing; once stopping,
     * the deadline still holds. Failpoint run.exit (test builds): a
     * SIGTERM of our own here. */
    rt__cli_failpoint_run_exit();
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

static const rt__cli_opt cli_daemon_opts[] = {
    CLI_ROW_ONLY,
    {"--schedule", RT_CLI_LIST, O_SCHEDULE, "needs JOB=EXPR", 0, 0,
     "JOB=EXPR", 0, NULL},
    {"--param", RT_CLI_LIST, O_PARAM, "needs JOB.NAME=VALUE", 0, 0,
     "JOB.NAME=VALUE", 0, NULL},
    {"--overlap", RT_CLI_LIST, O_OVERLAP, "needs JOB=skip|queue", 0, 0,
     "JOB=skip|queue", 0, NULL},
    {"--misfire", RT_CLI_LIST, O_MISFIRE, "needs JOB=catch-up|skip", 0, 0,
     "JOB=catch-up|skip", 0, NULL},
    {"--max-lateness", RT_CLI_LIST, O_LATENESS, "needs JOB=SECONDS", 0, 0,
     "JOB=S", 0, NULL},
    /* --workers and --concurrency mean the same, as in 'worker'. */
    {"--workers", RT_CLI_INT, O_WORKERS, "takes 0 to 256", 0, 256, "N", 0,
     NULL},
    CLI_ROW_GRACE,
    CLI_ROW_TTL,
    CLI_ROW_ITEMS,
    CLI_ROW_CHUNK_MS,
    {"--concurrency", RT_CLI_INT, O_WORKERS, "takes 0 to 256", 0, 256, "N", 0,
     NULL},
    CLI_ROW_METRICS,
    CLI_ROW_END,
};

static int cli_daemon(const cli *c, const rt__cli_args *a) {
    rt__cli_daemon_opts o;
    memset(&o, 0, sizeof o);
    o.workers = a->v[O_WORKERS].set ? (int)a->v[O_WORKERS].i : 1;
    o.only = a->v[O_ONLY].text;
    o.metrics_listen = a->v[O_METRICS].text;
    o.schedules = a->v[O_SCHEDULE].list;
    o.nschedules = a->v[O_SCHEDULE].n;
    o.params = a->v[O_PARAM].list;
    o.nparams = a->v[O_PARAM].n;
    o.overlaps = a->v[O_OVERLAP].list;
    o.noverlaps = a->v[O_OVERLAP].n;
    o.misfires = a->v[O_MISFIRE].list;
    o.nmisfires = a->v[O_MISFIRE].n;
    o.lateness = a->v[O_LATENESS].list;
    o.nlateness = a->v[O_LATENESS].n;
    cli_run_opts ro = cli_run_opts_of(a);
    o.url = c->db;
    o.exe = c->exe;
    o.grace_ms = (int64_t)llround(ro.grace * 1000);
    o.lease_ttl_ms = (int64_t)llround(ro.ttl * 1000);
    o.chunk_items = ro.chunk_items;
    o.chunk_ms = ro.chunk_ms;
    rt__cli_signals_grace(o.grace_ms); /* the handlers are in (rt_main) */
    int code = rt__cli_daemon(c->jobs, &o);
    /* Stopped while it opened the database: asked to stop, it did. */
    if (code == RT_EXIT_FAILED && rt__cli_stopping()) code = RT_EXIT_OK;
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

static const rt__cli_opt cli_enqueue_opts[] = {
    CLI_ROW_KEY,
    {"--param", RT_CLI_PAIR, O_PARAM, "needs NAME=VALUE", 0, 0, "NAME=VALUE", 0,
     NULL},
    {"--run-at", RT_CLI_CHECK, O_RUN_AT,
     "takes an ISO-8601 time (2026-11-23T12:00:00Z) or +DURATION (+30s, +5m, "
     "+2h, +1d)", 0, 0, "TIME", 0, cli_run_at_check},
    {"--priority", RT_CLI_INT, O_PRIORITY, "takes an integer", -1000000,
     1000000, "N", 0, NULL},
    {"--max-attempts", RT_CLI_INT, O_MAX_ATTEMPTS, "takes 1 to 1000", 1, 1000,
     "N", 0, NULL},
    CLI_ROW_END,
};

static int cli_enqueue(const cli *c, const rt__cli_args *a) {
    rt_enqueue_opts o;
    memset(&o, 0, sizeof o);
    const char *job_name = a->npos > 0 ? a->pos[0] : NULL;
    const char *const none[] = {NULL};
    const char *const *params = a->v[O_PARAM].n ? a->v[O_PARAM].list : none;
    int code = RT_EXIT_OK;
    o.key = a->v[O_KEY].text;
    o.run_at_ms = a->v[O_RUN_AT].i;
    /* --run-at +DURATION: o.run_at_ms holds it */
    bool run_at_relative = a->v[O_RUN_AT].set && a->v[O_RUN_AT].text[0] == '+';
    o.priority = (int)a->v[O_PRIORITY].i;
    o.max_attempts = (int)a->v[O_MAX_ATTEMPTS].i;
    const rt_job *job = NULL;
    if (code == RT_EXIT_OK && !job_name)
        code = rt__cli_usage("enqueue: which job? (see 'ratchet jobs')");
    if (code == RT_EXIT_OK && !(job = cli_job_find(c->jobs, job_name)))
        code = rt__cli_usage("enqueue: unknown job '%s' (see 'ratchet jobs')",
                             job_name);
    o.params = params;
    char err[1024], key[256], status[32];
    /* Checked before the database is touched; rt__cli_enqueue checks
     * again. */
    if (code == RT_EXIT_OK &&
        rt__cli_enqueue_check(job, &o, err, sizeof err) != RT_OK)
        code = rt__cli_usage("enqueue: %s", err);
    if (code != RT_EXIT_OK) return code;
    rt_db *db = NULL;
    code = cli_db(c, &db);
    if (code != RT_EXIT_OK) return code;
    bool created = false;
    int rc = rt__cli_enqueue(db, job, &o, run_at_relative, key, sizeof key,
                             &created, status, sizeof status, err, sizeof err);
    if (rc == RT_INVALID) {
        code = rt__cli_usage("enqueue: %s", err);
    } else if (rc != RT_OK) {
        rt__cli_log(RT_LOG_ERROR, "db_error", NULL, NULL, "%s", err);
        code = cli_db_exit(db, rc);
    } else {
        if (!created && status[0])
            rt__cli_log(RT_LOG_INFO, "exists", job->name, key,
                        "run exists already (%s); left as it is", status);
        printf("%s/%s\n", job->name, key);
    }
    rt_db_close(db);
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

static const rt__cli_opt cli_worker_opts[] = {
    /* --concurrency and --workers mean the same, as in 'daemon'. */
    {"--concurrency", RT_CLI_INT, O_WORKERS, "takes 1 to 256", 1, 256, "N", 0,
     NULL},
    CLI_ROW_ONLY,
    CLI_ROW_GRACE,
    CLI_ROW_TTL,
    CLI_ROW_ITEMS,
    CLI_ROW_CHUNK_MS,
    {"--workers", RT_CLI_INT, O_WORKERS, "takes 1 to 256", 1, 256, "N", 0,
     NULL},
    CLI_ROW_METRICS,
    CLI_ROW_END,
};

static int cli_worker(const cli *c, const rt__cli_args *a) {
    rt__cli_worker_opts o;
    memset(&o, 0, sizeof o);
    o.concurrency = a->v[O_WORKERS].set ? (int)a->v[O_WORKERS].i : 1;
    o.only = a->v[O_ONLY].text;
    o.metrics_listen = a->v[O_METRICS].text;
    cli_run_opts ro = cli_run_opts_of(a);
    o.url = c->db;
    o.grace_ms = (int64_t)llround(ro.grace * 1000);
    o.lease_ttl_ms = (int64_t)llround(ro.ttl * 1000);
    o.chunk_items = ro.chunk_items;
    o.chunk_ms = ro.chunk_ms;
    rt__cli_signals_grace(o.grace_ms); /* the handlers are in (rt_main) */
    int code = rt__cli_worker(c->jobs, &o);
    /* Stopped while it opened the database: asked to stop, it did. */
    if (code == RT_EXIT_FAILED && rt__cli_stopping()) code = RT_EXIT_OK;
    return code;
}

/* ----------------------------------------------------------------- jobs */

static const char *const cli_param_types[] = {"text", "int", "real", "bool"};

static int cli_jobs(const cli *c, const rt__cli_args *a) {
    (void)a;
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

static const rt__cli_opt cli_reset_opts[] = {
    CLI_ROW_KEY,
    {"--force", RT_CLI_FLAG, O_FORCE, NULL, 0, 0, NULL, 0, NULL},
    CLI_ROW_END,
};

static int cli_reset(const cli *c, const rt__cli_args *a) {
    const char *job = a->npos > 0 ? a->pos[0] : NULL, *key = a->v[O_KEY].text;
    bool force = a->v[O_FORCE].set;
    if (!job || !key)
        return rt__cli_usage("reset: usage: ratchet reset JOB --key K [--force]");
    rt_db *db = NULL;
    int code = cli_db(c, &db);
    if (code != RT_EXIT_OK) return code;
    rt_reset_info was;
    int rc = rt_reset_run(db, job, key, force, &was);
    if (rc == RT_OK) {
        printf("reset %s[%s]: discarded run %lld (was %s at step %d, %lld "
               "items)\n",
               job, key, (long long)was.id, was.status, was.step,
               (long long)was.items);
    } else if (rc == RT_NOTFOUND) {
        code = rt__cli_usage("%s", rt_db_errmsg(db));
    } else if (rc == RT_HELD) {
        rt__cli_log(RT_LOG_ERROR, "refused", job, key, "%s", rt_db_errmsg(db));
        code = rt_exit_code(db, rc);
    } else {
        rt__cli_log(RT_LOG_ERROR, "db_error", NULL, NULL, "%s", rt_db_errmsg(db));
        code = cli_db_exit(db, rc);
    }
    rt_db_close(db);
    return code;
}

/* -------------------------------------------------------------- migrate */

static int cli_migrate(const cli *c, const rt__cli_args *a) {
    (void)a;
    rt_db *db = NULL;
    int code = cli_db(c, &db);
    if (code != RT_EXIT_OK) return code; /* logged, with the exit code it means */
    int from = 0, to = 0, latest = 0;
    rt_db_schema(db, &from, &to, &latest);
    printf("%s: schema version %d%s (latest %d)\n", rt_db_url(db), to,
           from == to ? ", up to date" : "", latest);
    rt_db_close(db);
    return RT_EXIT_OK;
}

/* ----------------------------------------------------------------- wait */

static const rt__cli_opt cli_wait_opts[] = {
    CLI_ROW_KEY,
    {"--timeout", RT_CLI_REAL, O_TIMEOUT, "takes seconds >= 0", 0, HUGE_VAL,
     "S", 0, NULL},
    CLI_ROW_END,
};

static int cli_wait(const cli *c, const rt__cli_args *a) {
    const char *job = a->npos > 0 ? a->pos[0] : NULL, *key = a->v[O_KEY].text;
    double timeout = a->v[O_TIMEOUT].set ? a->v[O_TIMEOUT].d : -1;
    if (!job) return rt__cli_usage("wait: which job? usage: ratchet wait JOB [--key K]");
    char err[1024];
    int rc = rt_wait(c->db, job, key, timeout, err, sizeof err);
    /* The exit code is the table's (0, 1, 124, 2), but for a database
     * error, which is 1 as wait always gave (rt_wait opens its own
     * connection: the table, without it, would call some of them the
     * URL's, 2). */
    int code = rt_exit_code(NULL, rc);
    switch (rc) {
    case RT_OK:
        rt__cli_log(RT_LOG_INFO, "done", job, key, "%s", "run is finished");
        return code;
    case RT_ERROR:
        rt__cli_log(RT_LOG_ERROR, "failed", job, key, "%s", err);
        return code;
    case RT_TIMEOUT:
        rt__cli_log(RT_LOG_ERROR, "timeout", job, key, "%s after %g s", err,
                    timeout);
        return code;
    case RT_NOTFOUND:
    case RT_INVALID:
    case RT_SCHEMA:
        rt__cli_usage("wait: %s", err);
        return code;
    default:
        rt__cli_log(RT_LOG_ERROR, "db_error", job, key, "%s", err);
        return RT_EXIT_FAILED;
    }
}

/* ------------------------------------------------------ status, history */

/* `status` and `history`: [JOB] [--json] [--limit N], then a list. */
static const rt__cli_opt cli_list_opts[] = {
    {"--json", RT_CLI_FLAG, O_JSON, NULL, 0, 0, NULL, 0, NULL},
    {"--limit", RT_CLI_INT, O_LIMIT, "takes a count >= 1", 1, CLI_INT_MAX, "N",
     0, NULL},
    CLI_ROW_END,
};

/* rt__cli_status, rt__cli_history */
typedef int (*cli_render_fn)(const char *url, const char *job, int64_t limit,
                             bool json);

static int cli_list(const cli *c, const rt__cli_args *a, cli_render_fn render) {
    const char *job = a->npos > 0 ? a->pos[0] : NULL;
    bool json = a->v[O_JSON].set;
    int64_t limit = a->v[O_LIMIT].set ? a->v[O_LIMIT].i : 50;
    return render(c->db, job, limit, json);
}

static int cli_status(const cli *c, const rt__cli_args *a) {
    return cli_list(c, a, rt__cli_status);
}

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

static int cli_metrics(const cli *c, const rt__cli_args *a) {
    (void)a;
    rt_db *db = NULL;
    int code = cli_db(c, &db);
    if (code != RT_EXIT_OK) return code;
    char *text = NULL;
    int rc = rt_metrics_text(db, &text);
    if (rc == RT_OK) {
        fputs(text, stdout);
    } else {
        rt__cli_log(RT_LOG_ERROR, "db_error", NULL, NULL, "metrics: %s",
                    rt_db_errmsg(db));
        code = cli_db_exit(db, rc);
    }
    rt_free(text);
    rt_db_close(db);
    return code;
}

static const char cli_history_usage[] =
    "usage: ratchet [--db URL] history [JOB] [--json] [--limit N]\n"
    "\n"
    "Finished runs (done, failed, skipped, cancelled), newest first: id, job,\n"
    "key, status, attempts, items, start, finish, duration, error. --json\n"
    "prints one JSON document. --limit N shows at most N runs (default 50).\n";

static int cli_history(const cli *c, const rt__cli_args *a) {
    return cli_list(c, a, rt__cli_history);
}

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

/* rt_retry_run, rt_cancel_run */
typedef int (*cli_run_op_fn)(rt_db *db, const rt_job *const *jobs,
                             const char *run, char *msg, size_t msglen);

/* `retry RUN`, `cancel RUN`: one line on stdout, or one error line. */
static int cli_run_op(const cli *c, const rt__cli_args *a, cli_run_op_fn op) {
    if (a->npos == 0)
        return rt__cli_usage("%s: which run? usage: ratchet %s RUN (a run id "
                               "or JOB/KEY)", c->cmd, c->cmd);
    char err[1024];
    if (rt_run_name_check(a->pos[0], err, sizeof err) != RT_OK)
        return rt__cli_usage("%s: %s", c->cmd, err);
    rt_db *db = NULL;
    int code = cli_db(c, &db);
    if (code != RT_EXIT_OK) return code;
    char msg[1024];
    int rc = op(db, c->jobs, a->pos[0], msg, sizeof msg);
    if (rc == RT_OK) {
        fputs(msg, stdout);
    } else if (rc == RT_NOTFOUND) {
        code = rt__cli_usage("%s: %s", c->cmd, rt_db_errmsg(db));
    } else if (rc == RT_INVALID) {
        rt__cli_log(RT_LOG_ERROR, "refused", NULL, NULL, "%s: %s", c->cmd,
                rt_db_errmsg(db));
        code = rt_exit_code(db, rc);
    } else {
        rt__cli_log(RT_LOG_ERROR, "db_error", NULL, NULL, "%s: %s", c->cmd,
                rt_db_errmsg(db));
        code = cli_db_exit(db, rc);
    }
    rt_db_close(db);
    return code;
}

static int cli_retry(const cli *c, const rt__cli_args *a) {
    return cli_run_op(c, a, rt_retry_run);
}
static int cli_cancel(const cli *c, const rt__cli_args *a) {
    return cli_run_op(c, a, rt_cancel_run);
}

/* ---------------------------------------------------------------- prune */

static const char cli_prune_usage[] =
    "usage: ratchet [--db URL] prune --older-than DURATION\n"
    "\n"
    "Delete the finished runs (done, failed, skipped, cancelled) that finished\n"
    "more than DURATION ago - N followed by s, m, h or d: 45s, 90m, 12h, 30d -\n"
    "with their params. Unfinished runs are never deleted. Times are the\n"
    "database's clock.\n";

/* N followed by s, m, h or d, as milliseconds (at most 9e15). */
static bool cli_age(const char *v, int64_t *ms) {
    static const struct { char unit; int64_t ms; } units[] = {
        {'s', 1000}, {'m', 60000}, {'h', 3600000}, {'d', 86400000}};
    size_t n = strlen(v);
    if (n < 2 || n > 30) return false;
    for (size_t i = 0; i + 1 < n; i++)
        if (v[i] < '0' || v[i] > '9') return false;
    char num[32];
    memcpy(num, v, n - 1);
    num[n - 1] = '\0';
    int64_t k;
    if (!rt__cli_int(num, &k)) return false;
    for (size_t u = 0; u < sizeof units / sizeof units[0]; u++)
        if (v[n - 1] == units[u].unit) {
            if ((double)k * (double)units[u].ms > 9e15) return false;
            *ms = k * units[u].ms;
            return true;
        }
    return false;
}

static const rt__cli_opt cli_prune_opts[] = {
    {"--older-than", RT_CLI_TEXT, O_OLDER_THAN, "needs a DURATION", 0, 0,
     "DURATION", 0, NULL},
    CLI_ROW_END,
};

static int cli_prune(const cli *c, const rt__cli_args *a) {
    const char *age = a->v[O_OLDER_THAN].text;
    int64_t ms = 0;
    if (!age)
        return rt__cli_usage("prune: --older-than DURATION is required (e.g. 30d)");
    if (!cli_age(age, &ms))
        return rt__cli_usage("prune: --older-than takes N followed by s, m, h "
                               "or d (e.g. 30d, 12h), got '%s'", age);
    rt_db *db = NULL;
    int code = cli_db(c, &db);
    if (code != RT_EXIT_OK) return code;
    int64_t deleted = 0;
    int rc = rt_prune_runs(db, ms, &deleted);
    if (rc == RT_OK) {
        printf("pruned %lld finished run%s that finished more than %s ago\n",
               (long long)deleted, deleted == 1 ? "" : "s", age);
    } else {
        rt__cli_log(RT_LOG_ERROR, "db_error", NULL, NULL, "prune: %s",
                    rt_db_errmsg(db));
        code = cli_db_exit(db, rc);
    }
    rt_db_close(db);
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

static int cli_completion(const cli *c, const rt__cli_args *a); /* reads
                                              the command table below */

/* ------------------------------------------------------------- dispatch */

/* The commands: their options, what they take, what a stop does to them. */
static const rt__cli_cmd cli_commands[] = {
    {"run", cli_run_usage, cli_run_opts_table, 1, "JOB", true, cli_run, true,
     RT_EXIT_INTERRUPTED},
    /* a resident process asked to stop did what it was asked: exit 0 */
    {"daemon", cli_daemon_usage, cli_daemon_opts, 0, NULL, true, cli_daemon, true,
     RT_EXIT_OK},
    {"enqueue", cli_enqueue_usage, cli_enqueue_opts, 1, "JOB", true, cli_enqueue,
     false, 0},
    {"worker", cli_worker_usage, cli_worker_opts, 0, NULL, true, cli_worker, true,
     RT_EXIT_OK},
    {"status", cli_status_usage, cli_list_opts, 1, "JOB", true, cli_status, false, 0},
    {"jobs", cli_jobs_usage, NULL, 0, NULL, false, cli_jobs, false, 0},
    {"reset", cli_reset_usage, cli_reset_opts, 1, "JOB", true, cli_reset, false, 0},
    {"retry", cli_retry_usage, NULL, 1, NULL, true, cli_retry, false, 0},
    {"cancel", cli_cancel_usage, NULL, 1, NULL, true, cli_cancel, false, 0},
    {"history", cli_history_usage, cli_list_opts, 1, "JOB", true, cli_history, false,
     0},
    {"prune", cli_prune_usage, cli_prune_opts, 0, NULL, true, cli_prune, false, 0},
    {"wait", cli_wait_usage, cli_wait_opts, 1, "JOB", true, cli_wait, false, 0},
    {"migrate", cli_migrate_usage, NULL, 0, NULL, true, cli_migrate, false, 0},
    {"metrics", cli_metrics_usage, NULL, 0, NULL, true, cli_metrics, false, 0},
    /* two: `completion zsh x` says which shells there are first */
    {"completion", cli_completion_usage, NULL, 2, "bash", false, cli_completion,
     false, 0},
    {NULL, NULL, NULL, 0, NULL, false, NULL, false, 0},
};

/* The global options, accepted anywhere on the line. */
static const rt__cli_opt cli_global_opts[] = {
    {"--db", RT_CLI_WORD, O_DB, "needs a URL", 0, 0, "URL", 0, NULL},
    {"--version", RT_CLI_FLAG, O_VERSION, NULL, 0, 0, NULL, 0, NULL},
    {"--help", RT_CLI_FLAG, O_HELP, NULL, 0, 0, NULL, 0, NULL},
    {"-h", RT_CLI_FLAG, O_HELP, NULL, 0, 0, NULL, RT_CLI_HIDDEN, NULL},
    CLI_ROW_END,
};

static int cli_completion(const cli *c, const rt__cli_args *a) {
    if (a->npos == 0)
        return rt__cli_usage("completion: which shell? usage: ratchet completion bash");
    if (strcmp(a->pos[0], "bash"))
        return rt__cli_usage("completion: unknown shell '%s' (bash is the one "
                               "supported)", a->pos[0]);
    if (a->npos > 1)
        return rt__cli_usage("completion: unexpected argument '%s' (see "
                               "'ratchet completion --help')", a->pos[1]);
    rt__completion_bash(stdout, c->exe, cli_global_opts, cli_commands, c->jobs);
    return RT_EXIT_OK;
}

static const rt__cli_cmd *cli_find(const char *name) {
    for (const rt__cli_cmd *k = cli_commands; k->name; k++)
        if (!strcmp(k->name, name)) return k;
    return NULL;
}

static int cli_version(void) {
    printf("ratchet %s (%s)\n", RT_VERSION, rt_versions());
    return RT_EXIT_OK;
}

/*
 * The stop handlers of a command that has them (run, worker, daemon), with
 * the default grace until its --grace is parsed; the others get the signal
 * mask they started with back, and with it the default actions.
 */
static void cli_stop_handlers(const rt__cli_cmd *k) {
    if (!k || !k->stops) {
        rt__cli_signals_release();
        return;
    }
    rt__cli_signals_install(k->stop_exit, CLI_GRACE_DEFAULT_MS);
}

int rt_main(int argc, char **argv, const rt_job *const *jobs) {
    /* First of all: a SIGTERM from now on waits for the handlers of run,
     * worker and daemon (cli_stop_handlers) instead of killing them. */
    rt__cli_signals_hold();
    rt__cli_log_init();
    /* Test builds: a malformed RATCHET_FAILPOINT is a usage error. */
    int bad = rt__cli_failpoint_init();
    if (bad) {
        rt__cli_signals_release();
        return bad;
    }
    cli c;
    memset(&c, 0, sizeof c);
    c.jobs = jobs;
    c.exe = argc > 0 ? argv[0] : "ratchet";
    c.db = getenv("RATCHET_DB");
    if (!c.db || !*c.db) c.db = CLI_DEFAULT_DB;
    /* Pull global options out wherever they stand; keep the rest in order. */
    char **rest = calloc((size_t)argc + 1, sizeof *rest);
    if (!rest) abort();
    int nrest = 0;
    rt__cli_args g;
    memset(&g, 0, sizeof g);
    int code = rt__cli_parse(NULL, cli_global_opts, 0, argc > 0 ? argc - 1 : 0,
                             argv + 1, &g, rest, &nrest);
    if (g.v[O_DB].set) c.db = g.v[O_DB].text;
    c.help = g.v[O_HELP].set;
    bool version = g.v[O_VERSION].set;
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
            const rt__cli_cmd *k = nrest > 1 ? cli_find(rest[1]) : NULL;
            if (nrest > 1 && !k && strcmp(rest[1], "help")) /* help help: this */
                code = rt__cli_usage("help: unknown command '%s'", rest[1]);
            else
                fputs(k ? k->usage : cli_usage, stdout);
        } else {
            const rt__cli_cmd *k = cli_find(rest[0]);
            if (!k) {
                code = rt__cli_usage("unknown command '%s' (see 'ratchet --help')",
                                 rest[0]);
            } else if (c.help) {
                fputs(k->usage, stdout);
            } else {
                c.cmd = k->name;
                rt__cli_args a;
                memset(&a, 0, sizeof a);
                code = rt__cli_parse(k->name, k->opts, k->maxpos, nrest - 1,
                                     rest + 1, &a, NULL, NULL);
                if (code == RT_EXIT_OK) code = k->run(&c, &a);
                rt__cli_args_free(&a);
            }
        }
    }
    free(rest);
    fflush(stdout);
    return code;
}
