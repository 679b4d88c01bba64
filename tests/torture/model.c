/*
 * model.c — the run's lifecycle checked against a model: random sequences
 * of events driven against the real CLI (rt_main; the driver itself as
 * ratchet, mjob.c) on each backend, and after every event the database
 * compared with what the model allows.
 *
 * Events: enqueue a run (--max-attempts 2 or 1000); start `run` of a key
 * (new, or one to resume); a second `run` of a key a live `run` holds (it
 * must wait, or take over a dead holder, never run beside a live one);
 * start a `worker`; let time pass (steps commit); SIGTERM or SIGKILL a
 * process; terminate ratchet's PostgreSQL sessions; restart the server; an
 * operator's `retry`, `cancel`, `reset` (`reset --force` of a running run;
 * plain `reset` of one must be refused with exit 3).
 *
 * The model, after each event (one snapshot of rt_run and rt_lease):
 *   overlap      at most one live process inside a step of one lease scope
 *                (mjob's flock, outside the transaction);
 *   terminal     done, failed, cancelled, skipped change only by retry or
 *                reset;
 *   epoch        a run's epoch only grows;
 *   lease        no rt_lease row names a finished run (in two snapshots in
 *                a row: a `run` of a finished key holds its lease for the
 *                instant it takes to read the run and let go);
 *   unleased     every 'running' run has its lease row (its scope's, naming
 *                it): a run and its lease never disagree;
 *   failed       no run fails (the steps never fail) but a queued one whose
 *                holders were killed as often as its max attempts (2 for a
 *                third of them, else 1000);
 *   attempts     a run's failed attempts are at most the SIGKILLs and
 *                SIGTERMs that hit its holders (a session drop or a server
 *                restart costs none);
 *   reset        reset of a running run is refused (exit 3) without
 *                --force, and done with it;
 *   exit         every process ends with a code it may end with.
 * When the events stop every process is stopped and a worker (and `run` for
 * runs started by `run`) drains: within the lease TTL no run is 'running'
 * without a live holder, every run ends done (an operator retries a failed
 * or cancelled one), no lease is left, and (when nothing was reset) every
 * done run wrote its rows exactly once.
 *
 * Violations are counted, not fatal at once: each is printed with its
 * sequence's seed (MODEL_SEED=S replays that sequence; its events are in
 * the scratch directory), and the scenario fails at the end if there was
 * any. MODEL_SEQUENCES (default 6 x TORTURE_SCALE per backend) and
 * MODEL_EVENTS (default 16) size it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "torture.h"

#define M_TTL "8"
#define M_TTL_MS 8000
#define M_GRACE "2"
#define M_GRACE_MS 2000
#define M_KEYS 6
#define M_PROCS 24

enum { P_RUN, P_WORKER };
enum { K_NONE, K_RUN, K_QUEUED }; /* how a key's run was made */

typedef struct mproc {
    pid_t pid;
    int kind, key;
    char err[600];
    int faults_at_start; /* M->faults when it started */
    bool killed, termed;
} mproc;

typedef struct mkey {
    const char *job;
    char key[16];
    int mode;
    int64_t id, epoch;  /* as last seen (id 0: no row seen) */
    char terminal[16];  /* the finished status last seen, "" none */
    int crashes;        /* SIGKILLs and SIGTERMs of its holders */
    int max_attempts;   /* queued: 2 or 1000 */
    int retries;        /* the drain's */
} mkey;

enum {
    V_OVERLAP, V_TERMINAL, V_EPOCH, V_LEASE, V_FAILED, V_ATTEMPTS, V_RESET,
    V_EXIT, V_VANISHED, V_ORPHAN, V_DRAIN, V_LEFT, V_DATA, V_STOP, V_UNLEASED, V_KINDS
};
static const char *const v_names[V_KINDS] = {
    "overlap", "terminal", "epoch", "lease", "failed", "attempts", "reset",
    "exit", "vanished", "orphan", "drain", "leases-left", "data", "stop", "unleased"};

enum {
    E_ENQUEUE, E_RUN, E_SECOND, E_WORKER, E_TIME, E_TERM, E_KILL, E_PGTERM,
    E_RESTART, E_RETRY, E_CANCEL, E_RESET, E_KINDS
};
static const char *const e_names[E_KINDS] = {
    "enqueue", "run", "second-run", "worker", "time", "sigterm", "sigkill",
    "pg-terminate", "pg-restart", "retry", "cancel", "reset"};
static const int e_weights[E_KINDS] = {3, 3, 2, 3, 3, 2, 3, 3, 1, 2, 2, 1};

typedef struct model {
    char lease_seen[400]; /* the last snapshot's lease of a finished run */
    const t_env *env;
    t_env self;          /* env with bin = this program (as ratchet) */
    int backend;
    t_db db;
    t_rng rng;
    char log[600], events_path[600];
    char env_log[700];
    FILE *events;
    mproc procs[M_PROCS];
    mkey keys[M_KEYS];
    int seq, ev, nspawn, faults, restarts, overlaps_seen;
    uint64_t seq_seed;
    bool any_reset;
    pid_t killed[64];    /* SIGKILLed in this sequence */
    int nkilled;
    bool seen[V_KINDS];  /* printed in this sequence */
    /* figures */
    int sequences, nevents_total, by_event[E_KINDS], violations, by_kind[V_KINDS];
    int vseq; /* sequences with a violation */
} model;

static const char *const m_terminal[] = {"done", "failed", "cancelled", "skipped", NULL};

static bool m_is_terminal(const char *status) {
    for (int i = 0; m_terminal[i]; i++)
        if (!strcmp(status, m_terminal[i])) return true;
    return false;
}

static void m_violation(model *M, int kind, const char *fmt, ...) T_PRINTF(3, 4);

static void m_violation(model *M, int kind, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    t_vline(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (M->events) fprintf(M->events, "  VIOLATION %s: %s\n", v_names[kind], msg);
    if (M->seen[kind]) return; /* once per kind and sequence */
    bool first = true;
    for (int k = 0; k < V_KINDS; k++) first = first && !M->seen[k];
    M->seen[kind] = true;
    M->violations++;
    M->by_kind[kind]++;
    if (first) M->vseq++;
    printf("torture: model %-8s VIOLATION %s: %s (sequence %d, MODEL_SEED=%llu, "
           "after event %d; events in %s)\n",
           t_backend_name(M->backend), v_names[kind], msg, M->seq,
           (unsigned long long)M->seq_seed, M->ev, M->events_path);
    fflush(stdout);
}

static void m_note(model *M, const char *fmt, ...) T_PRINTF(2, 3);

static void m_note(model *M, const char *fmt, ...) {
    if (!M->events) return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(M->events, fmt, ap);
    va_end(ap);
    fputc('\n', M->events);
    fflush(M->events);
}

/* ------------------------------------------------------------ processes */

static mproc *m_spawn(model *M, int kind, int key, const char *const *argv) {
    mproc *p = NULL;
    for (int i = 0; i < M_PROCS && !p; i++)
        if (!M->procs[i].pid) p = &M->procs[i];
    if (!p) t_fail("model: more than %d processes", M_PROCS);
    memset(p, 0, sizeof *p);
    p->kind = kind;
    p->key = key;
    p->faults_at_start = M->faults;
    snprintf(p->err, sizeof p->err, "%s/model-%s-s%d-p%d.err", M->env->dir,
             t_backend_name(M->backend), M->seq, M->nspawn++);
    const char *const extra[] = {"TORTURE_RATCHET=1", M->env_log, NULL};
    p->pid = t_spawn(&M->self, M->db.url, p->err, argv, extra);
    m_note(M, "    pid %d: %s %s %s%s", (int)p->pid, argv[0], argv[1] ? argv[1] : "",
           key >= 0 ? "key " : "", key >= 0 ? M->keys[key].key : "");
    return p;
}

/* A synchronous command (enqueue, retry, cancel, reset): its exit code. */
static int m_command(model *M, const char *const *argv, char *errpath, size_t n) {
    const char *const extra[] = {"TORTURE_RATCHET=1", M->env_log, NULL};
    snprintf(errpath, n, "%s/model-%s-s%d-c%d.err", M->env->dir, t_backend_name(M->backend),
             M->seq, M->nspawn++);
    pid_t pid = t_spawn(&M->self, M->db.url, errpath, argv, extra);
    int code = t_wait(pid, 60000);
    if (code < 0) {
        t_kill_reap(pid);
        m_violation(M, V_EXIT, "%s %s hung for 60 s; %s", argv[0], argv[1],
                    t_file_gist(errpath));
    }
    return code;
}

static void m_status(model *M, int k, char *out, size_t n);

/* May p end with code? */
static bool m_exit_ok(model *M, const mproc *p, int code) {
    if (p->killed && code == 128 + SIGKILL) return true;
    if (code == 0 || code == 75) return true;
    bool faulted = M->faults > p->faults_at_start;
    if (p->kind == P_RUN) {
        if (code == 3) return true; /* held, fenced, or reset by an operator */
        if (code == 1) {            /* its run was failed or cancelled, or the
                                       server was away as it started */
            if (faulted) return true;
            char status[16];
            m_status(M, p->key, status, sizeof status);
            return !strcmp(status, "failed") || !strcmp(status, "cancelled") ||
                   !strcmp(status, "skipped");
        }
        return false;
    }
    return code == 1 && faulted;
}

/* p ended with code (reaped): check and forget it. */
static void m_finish(model *M, mproc *p, int code) {
    m_note(M, "    pid %d exited %d", (int)p->pid, code);
        if (!m_exit_ok(M, p, code))
            m_violation(M, V_EXIT, "%s %s%s%s (pid %d) exited %d%s; %s",
                        p->kind == P_RUN ? "run" : "worker",
                        p->kind == P_RUN ? M->keys[p->key].job : "",
                        p->kind == P_RUN ? "/" : "",
                        p->kind == P_RUN ? M->keys[p->key].key : "", (int)p->pid, code,
                        p->termed ? " after SIGTERM" : "", t_file_gist(p->err));
        p->pid = 0;
}

static void m_reap(model *M) {
    for (int i = 0; i < M_PROCS; i++) {
        mproc *p = &M->procs[i];
        if (!p->pid) continue;
        int code = t_wait(p->pid, 0);
        if (code >= 0) m_finish(M, p, code);
    }
}

static int m_live(model *M, int kind, int key) {
    int n = 0;
    for (int i = 0; i < M_PROCS; i++)
        if (M->procs[i].pid && M->procs[i].kind == kind &&
            (key < 0 || M->procs[i].key == key))
            n++;
    return n;
}

static mproc *m_pick_proc(model *M, int kind /* -1 any */, int key /* -1 any */) {
    mproc *c[M_PROCS];
    int n = 0;
    for (int i = 0; i < M_PROCS; i++)
        if (M->procs[i].pid && (kind < 0 || M->procs[i].kind == kind) &&
            (key < 0 || M->procs[i].key == key))
            c[n++] = &M->procs[i];
    return n ? c[t_between(&M->rng, 0, n - 1)] : NULL;
}

/* ------------------------------------------------------------ snapshots */

static int m_key_of(model *M, const char *job, const char *key) {
    for (int i = 0; i < M_KEYS; i++)
        if (job && key && !strcmp(M->keys[i].job, job) && !strcmp(M->keys[i].key, key))
            return i;
    return -1;
}

typedef struct m_row {
    int key;
    int64_t id, epoch, failures;
    char status[16], error[200];
    bool cancel_requested;
} m_row;

typedef struct m_snap {
    model *M;
    m_row rows[M_KEYS];
    int nrows;
    char lease_terminal[400]; /* a lease naming a finished run */
    char unleased[200];       /* a running run without a lease */
    int leases;
} m_snap;

static bool m_run_row(void *arg, int ncols, const char *const *c) {
    m_snap *S = arg;
    if (ncols < 8) return false;
    int k = m_key_of(S->M, c[0], c[1]);
    if (k < 0 || S->nrows >= M_KEYS) return true;
    m_row *r = &S->rows[S->nrows++];
    r->key = k;
    snprintf(r->status, sizeof r->status, "%s", c[2] ? c[2] : "");
    r->id = c[3] ? strtoll(c[3], NULL, 10) : 0;
    r->epoch = c[4] ? strtoll(c[4], NULL, 10) : 0;
    r->failures = c[5] ? strtoll(c[5], NULL, 10) : 0;
    snprintf(r->error, sizeof r->error, "%s", c[6] ? c[6] : "");
    r->cancel_requested = c[7] && strcmp(c[7], "0") != 0;
    return true;
}

static bool m_unleased_row(void *arg, int ncols, const char *const *c) {
    m_snap *S = arg;
    if (ncols >= 2 && !S->unleased[0])
        snprintf(S->unleased, sizeof S->unleased, "%s/%s is 'running' with no lease row",
                 c[0] ? c[0] : "?", c[1] ? c[1] : "?");
    return false;
}

static bool m_lease_row(void *arg, int ncols, const char *const *c) {
    m_snap *S = arg;
    if (ncols < 4) return false;
    if (!S->lease_terminal[0])
        snprintf(S->lease_terminal, sizeof S->lease_terminal,
                 "lease of scope %s (owner %s) names run %s, which is %s", c[0] ? c[0] : "?",
                 c[1] ? c[1] : "?", c[2] ? c[2] : "?", c[3] ? c[3] : "?");
    return true;
}

/* One consistent read of rt_run and rt_lease. */
static bool m_snapshot(model *M, m_snap *S) {
    memset(S, 0, sizeof *S);
    S->M = M;
    char err[512] = "";
    for (int attempt = 0; attempt < 5; attempt++) {
        memset(S->rows, 0, sizeof S->rows);
        S->nrows = 0;
        S->lease_terminal[0] = '\0';
        S->unleased[0] = '\0';
        inv_db *c = t_db_check(&M->db);
        if (!c) return false;
        int64_t leases = 0;
        bool ok =
            inv_exec(c, M->backend == T_SQLITE ? "BEGIN" : "BEGIN ISOLATION LEVEL REPEATABLE READ",
                     err, sizeof err) &&
            inv_each(c, "SELECT job, run_key, status, id, epoch, failures, error, "
                        "cancel_requested FROM rt_run ORDER BY id",
                     m_run_row, S, err, sizeof err) == INV_VALUE &&
            inv_each(c, "SELECT l.scope, l.owner, r.run_key, r.status FROM rt_lease l "
                        "JOIN rt_run r ON r.job = l.job AND r.run_key = l.run_key "
                        "WHERE r.status IN ('done', 'failed', 'cancelled', 'skipped')",
                     m_lease_row, S, err, sizeof err) == INV_VALUE &&
            inv_each(c, "SELECT r.job, r.run_key FROM rt_run r WHERE r.status = 'running' "
                        "AND NOT EXISTS (SELECT 1 FROM rt_lease l WHERE l.job = r.job AND "
                        "(l.scope = r.job || '/' || r.run_key OR "
                        "(l.scope = r.job AND l.run_key = r.run_key)))",
                     m_unleased_row, S, err, sizeof err) == INV_VALUE &&
            inv_int(c, "SELECT count(*) FROM rt_lease", &leases, err, sizeof err) ==
                INV_VALUE;
        char err2[256];
        inv_exec(c, ok ? "COMMIT" : "ROLLBACK", err2, sizeof err2);
        t_db_release(&M->db, c);
        if (ok) {
            S->leases = (int)leases;
            return true;
        }
        t_sleep_us(200000); /* the server restarting, a session terminated */
    }
    t_fail("model: cannot read the database: %s", err);
}

/* Compare the database with the model; update what the model saw. */
static void m_check(model *M) {
    m_snap S;
    m_snapshot(M, &S);
    bool present[M_KEYS] = {false};
    for (int i = 0; i < S.nrows; i++) {
        m_row *r = &S.rows[i];
        mkey *k = &M->keys[r->key];
        present[r->key] = true;
        if (r->id != k->id) { /* a new row (after a reset): start afresh */
            k->id = r->id;
            k->epoch = r->epoch;
            k->terminal[0] = '\0';
        }
        if (r->epoch < k->epoch)
            m_violation(M, V_EPOCH, "%s/%s: epoch went from %lld down to %lld", k->job,
                        k->key, (long long)k->epoch, (long long)r->epoch);
        k->epoch = r->epoch;
        if (k->terminal[0] && strcmp(k->terminal, r->status) != 0)
            m_violation(M, V_TERMINAL, "%s/%s was %s and is now %s (error: %s) with no "
                        "retry or reset since",
                        k->job, k->key, k->terminal, r->status,
                        r->error[0] ? r->error : "none");
        if (m_is_terminal(r->status))
            snprintf(k->terminal, sizeof k->terminal, "%s", r->status);
        else
            k->terminal[0] = '\0';
        if (!strcmp(r->status, "failed") &&
            !(k->mode == K_QUEUED && k->crashes >= k->max_attempts))
            m_violation(M, V_FAILED, "%s/%s failed (\"%s\"), though its steps never fail "
                        "and only %d of its holders were killed (max attempts %d)",
                        k->job, k->key, r->error, k->crashes,
                        k->mode == K_QUEUED ? k->max_attempts : 0);
        if (r->failures > k->crashes)
            m_violation(M, V_ATTEMPTS, "%s/%s counts %lld failed attempts, but only %d "
                        "of its holders were killed (status %s, error: %s)",
                        k->job, k->key, (long long)r->failures, k->crashes, r->status,
                        r->error[0] ? r->error : "none");
    }
    for (int i = 0; i < M_KEYS; i++)
        if (M->keys[i].id && !present[i]) {
            m_violation(M, V_VANISHED, "%s/%s (id %lld) is gone, not reset", M->keys[i].job,
                        M->keys[i].key, (long long)M->keys[i].id);
            M->keys[i].id = 0;
        }
    /* A process may hold the lease of a finished run for the instant it
     * takes to read the run and let go (a `run` of a done key): only the
     * same lease, same owner, in two snapshots in a row is one left
     * behind. */
    if (S.lease_terminal[0] && !strcmp(S.lease_terminal, M->lease_seen))
        m_violation(M, V_LEASE, "%s (in two snapshots in a row)", S.lease_terminal);
    snprintf(M->lease_seen, sizeof M->lease_seen, "%s", S.lease_terminal);
    /* A run and its lease never disagree: 'running' is held. */
    if (S.unleased[0]) m_violation(M, V_UNLEASED, "%s", S.unleased);
    char first[600];
    int overlaps = t_mjob_overlaps(M->log, first, sizeof first);
    if (overlaps > M->overlaps_seen) {
        m_violation(M, V_OVERLAP, "%d executions entered a step while another live "
                    "process was inside one of the same scope; first: %s",
                    overlaps - M->overlaps_seen, first);
        M->overlaps_seen = overlaps;
    }
}


/* A process is about to be signalled: each run it holds (its lease rows)
 * may count a failed attempt for it. */
typedef struct m_blame_arg {
    model *M;
    pid_t pid;
    bool *held; /* [M_KEYS] */
} m_blame_arg;

static bool m_blame_row(void *arg, int ncols, const char *const *c) {
    m_blame_arg *b = arg;
    if (ncols < 3 || !c[0]) return true;
    const char *colon = strchr(c[0], ':'); /* owner: host:pid:nonce */
    if (!colon || atoi(colon + 1) != (int)b->pid) return true;
    int k = m_key_of(b->M, c[1], c[2]);
    if (k >= 0) b->held[k] = true;
    return true;
}

/* The runs pid holds now (its lease rows), into held. */
static void m_held(model *M, pid_t pid, bool *held) {
    inv_db *c = t_db_check(&M->db);
    if (!c) return;
    m_blame_arg b = {M, pid, held};
    char err[512];
    inv_each(c, "SELECT owner, job, run_key FROM rt_lease", m_blame_row, &b, err, sizeof err);
    t_db_release(&M->db, c);
}

static void m_signal(model *M, mproc *p, int sig) {
    if (sig == SIGTERM) /* before its handlers, any program just dies of it */
        for (int64_t until = t_now_ms() + 5000;
             t_alive(p->pid) && !t_catches(p->pid, SIGTERM) && t_now_ms() < until;)
            t_sleep_us(1000);
    /* Each run it holds may count a failed attempt: those it held just
     * before the signal, and (a claim may commit meanwhile) just after. */
    bool held[M_KEYS] = {false};
    m_held(M, p->pid, held);
    if (sig == SIGKILL) {
        p->killed = true;
        if (M->nkilled < 64) M->killed[M->nkilled++] = p->pid;
    } else {
        p->termed = true;
    }
    kill(p->pid, sig);
    if (sig == SIGKILL && !t_await_death(p->pid, 10000))
        t_fail("process %d alive 10 s after SIGKILL", (int)p->pid);
    m_held(M, p->pid, held);
    for (int k = 0; k < M_KEYS; k++) M->keys[k].crashes += held[k];
}

/* Stop every process: SIGTERM, then each must end within the grace. */
static void m_stop_all(model *M) {
    for (int i = 0; i < M_PROCS; i++)
        if (M->procs[i].pid) m_signal(M, &M->procs[i], SIGTERM);
    int64_t until = t_now_ms() + M_GRACE_MS + 5000;
    for (int i = 0; i < M_PROCS; i++) {
        mproc *p = &M->procs[i];
        if (!p->pid) continue;
        int64_t left = until - t_now_ms();
        int code = t_wait(p->pid, left > 0 ? left : 0);
        if (code < 0) {
            m_violation(M, V_STOP, "pid %d still there %d ms after SIGTERM (grace %d ms); %s",
                        (int)p->pid, M_GRACE_MS + 5000, M_GRACE_MS, t_file_gist(p->err));
            p->killed = true;
            if (M->nkilled < 64) M->killed[M->nkilled++] = p->pid;
            kill(p->pid, SIGKILL);
            code = t_wait(p->pid, 10000);
        }
        m_finish(M, p, code);
    }
}

/* ---------------------------------------------------------------- events */

static void m_run_argv(model *M, int k, const char **argv) {
    int n = 0;
    argv[n++] = "run";
    argv[n++] = M->keys[k].job;
    argv[n++] = "--key";
    argv[n++] = M->keys[k].key;
    argv[n++] = "--if-running";
    argv[n++] = "wait";
    argv[n++] = "--grace";
    argv[n++] = M_GRACE;
    argv[n++] = "--lease-ttl";
    argv[n++] = M_TTL;
    argv[n++] = "--chunk-items";
    argv[n++] = "3";
    argv[n] = NULL;
}

static void m_start_worker(model *M) {
    static const char *const argv[] = {"worker", "--grace", M_GRACE, "--lease-ttl", M_TTL,
                                       "--chunk-items", "3", NULL};
    m_spawn(M, P_WORKER, -1, argv);
}

static int m_pick_key(model *M, bool (*fit)(model *, int)) {
    int c[M_KEYS], n = 0;
    for (int i = 0; i < M_KEYS; i++)
        if (fit(M, i)) c[n++] = i;
    return n ? c[t_between(&M->rng, 0, n - 1)] : -1;
}

static bool m_fit_new(model *M, int k) { return M->keys[k].mode == K_NONE; }
static bool m_fit_run(model *M, int k) {
    return M->keys[k].mode == K_NONE ||
           (M->keys[k].mode == K_RUN && m_live(M, P_RUN, k) == 0);
}
static bool m_fit_any(model *M, int k) { return M->keys[k].mode != K_NONE; }

/* The run's status as the last snapshot saw it ("" when it has no row). */
static void m_status(model *M, int k, char *out, size_t n) {
    m_snap S;
    m_snapshot(M, &S);
    out[0] = '\0';
    for (int i = 0; i < S.nrows; i++)
        if (S.rows[i].key == k) snprintf(out, n, "%s", S.rows[i].status);
}

static void m_forget_run(model *M, int k) {
    M->keys[k].id = 0;
    M->keys[k].terminal[0] = '\0';
    M->keys[k].crashes = 0;
    M->any_reset = true;
}

static void m_op(model *M, int what, int k) {
    mkey *K = &M->keys[k];
    char ref[64], err[700];
    snprintf(ref, sizeof ref, "%s/%s", K->job, K->key);
    if (what == E_RETRY || what == E_CANCEL) {
        const char *const argv[] = {what == E_RETRY ? "retry" : "cancel", ref, NULL};
        int code = m_command(M, argv, err, sizeof err);
        m_note(M, "    %s %s: exit %d", argv[0], ref, code);
        if (what == E_RETRY && code == 0) {
            K->terminal[0] = '\0';
            K->crashes = 0;
        }
        return;
    }
    /* reset */
    char status[16];
    m_status(M, k, status, sizeof status);
    bool running = !strcmp(status, "running");
    bool force = running && t_between(&M->rng, 0, 1);
    const char *const argv[] = {"reset", K->job, "--key", K->key, force ? "--force" : NULL,
                                NULL};
    int code = m_command(M, argv, err, sizeof err);
    char out[720];
    snprintf(out, sizeof out, "%s.out", err);
    bool was_running = t_file_has(out, "(was running");
    m_note(M, "    reset%s %s (seen %s): exit %d", force ? " --force" : "", ref,
           status[0] ? status : "absent", code);
    if (force && code != 0)
        m_violation(M, V_RESET, "reset --force of running run %s: exit %d, want 0; %s", ref,
                    code, t_file_gist(err));
    if (!force && code == 0 && was_running)
        m_violation(M, V_RESET, "reset of running run %s was accepted (exit 0), want it "
                    "refused with exit 3 without --force",
                    ref);
    if (!force && running && code != 0 && code != 3)
        m_violation(M, V_RESET, "reset of running run %s: exit %d, want 3; %s", ref, code,
                    t_file_gist(err));
    if (code == 0) m_forget_run(M, k);
}

static int m_choose(model *M) {
    int total = 0;
    for (int e = 0; e < E_KINDS; e++)
        if (M->backend == T_PG || (e != E_PGTERM && e != E_RESTART)) total += e_weights[e];
    int64_t r = t_between(&M->rng, 0, total - 1);
    for (int e = 0; e < E_KINDS; e++) {
        if (M->backend != T_PG && (e == E_PGTERM || e == E_RESTART)) continue;
        if (r < e_weights[e]) return e;
        r -= e_weights[e];
    }
    return E_TIME;
}

/* One event; returns the kind that happened (E_TIME when the chosen one
 * had nothing to act on). */
static int m_event(model *M, int e) {
    int k;
    mproc *p;
    switch (e) {
    case E_ENQUEUE:
        if ((k = m_pick_key(M, m_fit_new)) < 0) return m_event(M, E_WORKER);
        {
            /* A third of them fail after their second crash: then a live
             * holder must not write over the verdict. */
            M->keys[k].max_attempts = t_between(&M->rng, 0, 2) ? 1000 : 2;
            const char *const argv[] = {"enqueue", M->keys[k].job, "--key", M->keys[k].key,
                                        "--max-attempts",
                                        M->keys[k].max_attempts == 2 ? "2" : "1000", NULL};
            char err[700];
            int code = m_command(M, argv, err, sizeof err);
            m_note(M, "    enqueue %s/%s: exit %d", M->keys[k].job, M->keys[k].key, code);
            if (code != 0)
                m_violation(M, V_EXIT, "enqueue %s/%s: exit %d; %s", M->keys[k].job,
                            M->keys[k].key, code, t_file_gist(err));
            M->keys[k].mode = K_QUEUED;
        }
        return e;
    case E_RUN:
        if ((k = m_pick_key(M, m_fit_run)) < 0) return m_event(M, E_SECOND);
        {
            const char *argv[16];
            m_run_argv(M, k, argv);
            M->keys[k].mode = K_RUN;
            m_spawn(M, P_RUN, k, argv);
        }
        return e;
    case E_SECOND:
        if (!(p = m_pick_proc(M, P_RUN, -1))) return m_event(M, E_TIME);
        {
            const char *argv[16];
            m_run_argv(M, p->key, argv);
            m_spawn(M, P_RUN, p->key, argv);
        }
        return e;
    case E_WORKER:
        if (m_live(M, P_WORKER, -1) >= 2) return m_event(M, E_TIME);
        m_start_worker(M);
        return e;
    case E_TIME:
        t_sleep_us(t_between(&M->rng, 100000, 600000));
        return e;
    case E_TERM:
    case E_KILL:
        if (!(p = m_pick_proc(M, -1, -1))) return m_event(M, E_TIME);
        /* A random instant of its work. */
        t_sleep_us(t_between(&M->rng, 0, 300000));
        if (!t_alive(p->pid)) return m_event(M, E_TIME);
        m_note(M, "    %s pid %d", e == E_KILL ? "SIGKILL" : "SIGTERM", (int)p->pid);
        m_signal(M, p, e == E_KILL ? SIGKILL : SIGTERM);
        return e;
    case E_PGTERM:
        t_sleep_us(t_between(&M->rng, 0, 300000));
        M->faults++;
        m_note(M, "    %d sessions terminated", t_pg_terminate(&M->db));
        return e;
    case E_RESTART:
        if (M->restarts >= 1 || !M->env->pg_dir || !M->env->pg_server)
            return m_event(M, E_PGTERM);
        t_sleep_us(t_between(&M->rng, 0, 300000));
        M->faults++;
        M->restarts++;
        t_pg_restart(M->env);
        M->faults++; /* and once more: a start may fail until it is up */
        return e;
    case E_RETRY:
    case E_CANCEL:
    case E_RESET:
        if ((k = m_pick_key(M, m_fit_any)) < 0) return m_event(M, E_RUN);
        m_op(M, e, k);
        return e;
    }
    return E_TIME;
}

/* ----------------------------------------------------------------- drain */

typedef struct m_left_arg {
    model *M;
    char *out;
    size_t n;
    int count;
} m_left_arg;

static bool m_left_row(void *arg, int ncols, const char *const *c) {
    m_left_arg *a = arg;
    if (ncols < 2 || !c[0]) return true;
    const char *colon = strchr(c[0], ':');
    pid_t pid = colon ? (pid_t)atoi(colon + 1) : 0;
    for (int i = 0; i < a->M->nkilled; i++)
        if (a->M->killed[i] == pid) return true;
    a->count++;
    size_t len = strlen(a->out);
    snprintf(a->out + len, a->n - len, "%s%s (owner %s)", len ? ", " : "", c[1], c[0]);
    return true;
}

static void m_drain(model *M) {
    m_stop_all(M);
    m_check(M);
    int64_t t0 = t_now_ms(), orphan_since = 0, deadline = t0 + 90000;
    char orphan[512] = "";
    for (;;) {
        m_reap(M);
        if (m_live(M, P_WORKER, -1) == 0) m_start_worker(M);
        m_snap S;
        m_snapshot(M, &S);
        bool all_done = true;
        for (int i = 0; i < S.nrows; i++) {
            m_row *r = &S.rows[i];
            mkey *K = &M->keys[r->key];
            if (!strcmp(r->status, "done")) continue;
            all_done = false;
            if (m_is_terminal(r->status)) {
                if (K->retries++ < 5) m_op(M, E_RETRY, r->key);
            } else if (K->mode == K_RUN && m_live(M, P_RUN, r->key) == 0) {
                const char *argv[16];
                m_run_argv(M, r->key, argv);
                m_spawn(M, P_RUN, r->key, argv);
            }
        }
        m_check(M);
        inv_db *c = t_db_check(&M->db);
        bool ok = inv_no_orphans(c, orphan, sizeof orphan);
        t_db_release(&M->db, c);
        int64_t now = t_now_ms();
        if (ok) {
            orphan_since = 0;
        } else if (!orphan_since) {
            orphan_since = now;
        } else if (now - orphan_since > M_TTL_MS + 3000) {
            m_violation(M, V_ORPHAN, "%s for %lld ms while a worker drains (lease TTL %d ms)",
                        orphan, (long long)(now - orphan_since), M_TTL_MS);
            orphan_since = now;
        }
        if (all_done) break;
        if (now > deadline) {
            char list[600] = "";
            for (int i = 0; i < S.nrows; i++)
                if (strcmp(S.rows[i].status, "done") != 0)
                    snprintf(list + strlen(list), sizeof list - strlen(list), " %s/%s=%s",
                             M->keys[S.rows[i].key].job, M->keys[S.rows[i].key].key,
                             S.rows[i].status);
            m_violation(M, V_DRAIN, "90 s of draining left runs unfinished:%s; %s", list,
                        orphan);
            break;
        }
        t_sleep_us(100000);
    }
    m_note(M, "  drained in %lld ms", (long long)(t_now_ms() - t0));
    m_stop_all(M);
    m_check(M);
    char msg[512];
    /* A process killed before its run existed leaves a lease nobody needed
     * since: harmless (a dead owner's lease is taken over). Any other is
     * left behind by a process that stopped cleanly. */
    char left[400] = "";
    inv_db *lc = t_db_check(&M->db);
    m_left_arg la = {M, left, sizeof left, 0};
    inv_each(lc, "SELECT owner, scope FROM rt_lease", m_left_row, &la, msg, sizeof msg);
    t_db_release(&M->db, lc);
    if (la.count)
        m_violation(M, V_LEFT, "%d lease rows left by processes that were not killed, "
                    "after every run is done and every process stopped: %s", la.count, left);
    inv_db *c = t_db_check(&M->db);
    if (!M->any_reset && !t_mjob_data(c, msg, sizeof msg)) m_violation(M, V_DATA, "%s", msg);
    t_db_release(&M->db, c);
}

/* ------------------------------------------------------------- sequence */

static void m_sequence(model *M, int nevents) {
    memset(M->procs, 0, sizeof M->procs);
    memset(M->seen, 0, sizeof M->seen);
    M->lease_seen[0] = '\0';
    static const char *const names[M_KEYS] = {"k0", "k1", "k2", "k3", "k4", "k5"};
    for (int i = 0; i < M_KEYS; i++) {
        memset(&M->keys[i], 0, sizeof M->keys[i]);
        M->keys[i].job = i < M_KEYS / 2 ? "mjob" : "mkey";
        snprintf(M->keys[i].key, sizeof M->keys[i].key, "%s", names[i]);
    }
    M->ev = M->faults = M->restarts = M->overlaps_seen = M->nspawn = 0;
    M->any_reset = false;
    M->nkilled = 0;
    const char *b = t_backend_name(M->backend);
    snprintf(M->log, sizeof M->log, "%s/model-%s-s%d.log", M->env->dir, b, M->seq);
    snprintf(M->env_log, sizeof M->env_log, "TORTURE_MJOB_LOG=%s", M->log);
    snprintf(M->events_path, sizeof M->events_path, "%s/model-%s-s%d.events", M->env->dir,
             b, M->seq);
    M->events = fopen(M->events_path, "w");
    if (!M->events) t_fail("%s: %s", M->events_path, strerror(errno));
    m_note(M, "sequence %d, MODEL_SEED=%llu, backend %s", M->seq,
           (unsigned long long)M->seq_seed, b);
    t_db_wipe(&M->db);
    const char *const migrate[] = {"migrate", NULL};
    char err[700];
    int code = m_command(M, migrate, err, sizeof err);
    if (code != 0) t_fail("migrate: exit %d; %s", code, t_file_gist(err));
    t_mjob_prepare(&M->db);
    int violations = M->violations;
    for (M->ev = 1; M->ev <= nevents; M->ev++) {
        int e = m_choose(M);
        m_note(M, "event %d: %s", M->ev, e_names[e]);
        int done = m_event(M, e);
        if (done != e) m_note(M, "  (became %s)", e_names[done]);
        M->by_event[done]++;
        M->nevents_total++;
        m_reap(M);
        m_check(M);
    }
    m_note(M, "drain");
    m_drain(M);
    fclose(M->events);
    M->events = NULL;
    M->sequences++;
    printf("torture: model %-8s sequence %d (MODEL_SEED=%llu): %d events, %d violations\n",
           b, M->seq, (unsigned long long)M->seq_seed, nevents, M->violations - violations);
    fflush(stdout);
}

static int m_env_int(const char *name, int def) {
    const char *v = getenv(name);
    return v && atoi(v) > 0 ? atoi(v) : def;
}

void t_model(const t_env *env, int backend, t_rng *rng) {
    static model M; /* large; one per process (each backend has its own half) */
    memset(&M, 0, sizeof M);
    M.env = env;
    t_env_self(env, &M.self);
    M.backend = backend;
    t_db_create(env, backend, "model", &M.db);
    int sequences = m_env_int("MODEL_SEQUENCES", t_count(env, 6));
    int nevents = m_env_int("MODEL_EVENTS", 16);
    const char *replay = getenv("MODEL_SEED");
    if (replay && *replay) sequences = 1;
    for (int s = 0; s < sequences; s++) {
        M.seq = s;
        M.seq_seed = replay && *replay ? strtoull(replay, NULL, 10)
                                       : t_rand(rng) % 1000000000000ULL;
        M.rng.s = M.seq_seed;
        m_sequence(&M, nevents);
    }
    t_db_drop(&M.db);
    char events[400] = "", kinds[400] = "";
    for (int e = 0; e < E_KINDS; e++)
        if (M.by_event[e])
            snprintf(events + strlen(events), sizeof events - strlen(events), "%s%d %s",
                     events[0] ? ", " : "", M.by_event[e], e_names[e]);
    for (int v = 0; v < V_KINDS; v++)
        if (M.by_kind[v])
            snprintf(kinds + strlen(kinds), sizeof kinds - strlen(kinds), "%s%d %s",
                     kinds[0] ? ", " : "", M.by_kind[v], v_names[v]);
    t_report("%d sequences, %d events (%s), %d violations%s%s%s", M.sequences, M.nevents_total,
             events, M.violations, kinds[0] ? " (" : "", kinds, kinds[0] ? ")" : "");
    if (M.violations)
        t_fail("%d violations of the lifecycle model in %d of %d sequences: %s (each "
               "printed above with its MODEL_SEED)",
               M.violations, M.vseq, M.sequences, kinds);
}
