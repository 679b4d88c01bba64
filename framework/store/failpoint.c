/*
 * failpoint.c — the failpoints of test builds (failpoint.h): parses
 * RATCHET_FAILPOINT once, counts the hits of the seams it names, and acts
 * on the chosen hit — SIGKILL, SIGSTOP or SIGTERM to this process, a sleep,
 * or an injected error that travels the path a backend error takes.
 *
 *   RATCHET_FAILPOINT=SPEC[,SPEC...]     SPEC = SEAM:ACTION[:NTH]
 *   ACTION = kill | stop | term | ioerr | busy | connerr | sleep:MS
 *   NTH    = N (the Nth hit only; default 1) | N+ (every hit from the Nth)
 *
 * e.g. commit.before:sleep:200:3 sleeps 200 ms before the third COMMIT.
 * RATCHET_FAILPOINT_LOG=PATH appends "SEAM ACTION HIT PID" to PATH each time
 * one fires (before it acts), so a test knows whether a run met it.
 * ioerr, busy and connerr fail the call with RT_DBERR, RT_BUSY or RT_CONN;
 * after connerr the store counts as broken (every seam on it fails with
 * RT_CONN) until it reconnects, as after a real drop. In-process tests
 * (tests/check_runner_faults.c) re-read the environment between runs with
 * rt__failpoint_reset(), which may scope the failpoints to one store.
 * Compiled only with -DRT_TEST_HOOKS; the production library holds none of
 * this (the file is empty there).
 */
#ifdef RT_TEST_HOOKS
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "store/failpoint.h"

/* Every seam a RT_FAILPOINT call site names (docs/RELIABILITY.md). */
static const char *const fp_seams[] = {
    "begin.before",  "begin.after",   "step",
    "commit.before", "commit.after",  "lease.acquire",
    "lease.renew",   "lease.release", "resume.read_cursor",
    "stop.rollback", "run.exit",     "exec",          NULL};

enum { FP_KILL, FP_STOP, FP_TERM, FP_IOERR, FP_SLEEP, FP_BUSY, FP_CONNERR };
static const char *const fp_actions[] = {"kill",  "stop", "term",    "ioerr",
                                         "sleep", "busy", "connerr", NULL};

typedef struct fp_spec {
    const char *seam; /* an entry of fp_seams */
    int action;
    int64_t ms;       /* FP_SLEEP */
    int64_t nth;
    bool from_nth;    /* N+ */
    atomic_llong hits;
} fp_spec;

#define FP_MAX 16
static fp_spec fp_specs[FP_MAX];
static int fp_n;
static bool fp_unfenced;
static const char *fp_log;
static char fp_error[512];
static pthread_once_t fp_once = PTHREAD_ONCE_INIT;
/* A 'step' ioerr waiting for the step's next SQL call (main thread). */
static rt_store *fp_armed;
static int64_t fp_armed_hit;
static int fp_armed_rc;
/* The store a connerr broke, until it reconnects (any thread may ask). */
static _Atomic(rt_store *) fp_broken;
/* rt__failpoint_reset's scope (NULL: every store) and the fires since. */
static const rt_store *fp_scope;
static atomic_llong fp_fires;

static int fp_find(const char *const *table, const char *word) {
    for (int i = 0; table[i]; i++)
        if (!strcmp(table[i], word)) return i;
    return -1;
}

/* A positive decimal; "N+" when plus is non-NULL. */
static bool fp_count(const char *s, int64_t *out, bool *plus) {
    size_t n = strlen(s);
    if (plus) *plus = n > 1 && s[n - 1] == '+';
    if (plus && *plus) n--;
    int64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9' || v > 100000000) return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return n > 0 && v >= 1;
}

/* One SPEC, cut in place at ':'. */
static bool fp_parse_spec(char *text, const char *whole) {
    char *f[6];
    int nf = 0;
    for (char *p = text; nf < 6;) {
        f[nf++] = p;
        p = strchr(p, ':');
        if (!p) break;
        *p++ = '\0';
    }
    if (fp_n == FP_MAX) {
        snprintf(fp_error, sizeof fp_error,
                 "RATCHET_FAILPOINT: more than %d failpoints in '%s'", FP_MAX,
                 whole);
        return false;
    }
    fp_spec *sp = &fp_specs[fp_n];
    int seam = fp_find(fp_seams, f[0]);
    if (seam < 0) {
        snprintf(fp_error, sizeof fp_error,
                 "RATCHET_FAILPOINT: unknown failpoint '%s' in '%s' (known: "
                 "begin.before, begin.after, step, commit.before, "
                 "commit.after, lease.acquire, lease.renew, lease.release, "
                 "resume.read_cursor, stop.rollback, run.exit, exec)",
                 f[0], whole);
        return false;
    }
    sp->seam = fp_seams[seam];
    sp->action = nf > 1 ? fp_find(fp_actions, f[1]) : -1;
    if (sp->action < 0) {
        snprintf(fp_error, sizeof fp_error,
                 "RATCHET_FAILPOINT: '%s' needs an action after '%s:' (kill, "
                 "stop, term, ioerr, busy, connerr or sleep:MS)",
                 whole, f[0]);
        return false;
    }
    int at = 2;
    if (sp->action == FP_SLEEP &&
        (nf < 3 || !fp_count(f[2], &sp->ms, NULL))) {
        snprintf(fp_error, sizeof fp_error,
                 "RATCHET_FAILPOINT: sleep in '%s' needs milliseconds "
                 "(SEAM:sleep:MS[:NTH])",
                 whole);
        return false;
    }
    if (sp->action == FP_SLEEP) at = 3;
    sp->nth = 1;
    sp->from_nth = false;
    if (nf > at + 1 || (nf == at + 1 && !fp_count(f[at], &sp->nth, &sp->from_nth))) {
        snprintf(fp_error, sizeof fp_error,
                 "RATCHET_FAILPOINT: bad hit count in '%s' (SEAM:ACTION[:N] "
                 "or [:N+], N >= 1)",
                 whole);
        return false;
    }
    atomic_init(&sp->hits, 0);
    fp_n++;
    return true;
}

static void fp_setup(void) {
    const char *unfenced = getenv("RATCHET_TEST_UNFENCED");
    fp_unfenced = unfenced && !strcmp(unfenced, "1");
    fp_log = getenv("RATCHET_FAILPOINT_LOG");
    if (fp_log && !*fp_log) fp_log = NULL;
    const char *env = getenv("RATCHET_FAILPOINT");
    if (!env || !*env) return;
    char *copy = rt__xstrdup(env);
    for (char *spec = copy; spec;) {
        char *next = strchr(spec, ',');
        if (next) *next++ = '\0';
        char whole[128];
        snprintf(whole, sizeof whole, "%s", spec);
        if (!*spec) {
            snprintf(fp_error, sizeof fp_error,
                     "RATCHET_FAILPOINT: empty failpoint in '%s'", env);
        }
        if (fp_error[0] || !fp_parse_spec(spec, whole)) {
            fp_n = 0; /* all or nothing */
            break;
        }
        spec = next;
    }
    free(copy);
}

int rt__failpoint_init(void) {
    pthread_once(&fp_once, fp_setup);
    if (fp_error[0]) return rt__usage_error("%s", fp_error);
    return RT_EXIT_OK;
}

/* "SEAM ACTION HIT PID" appended to RATCHET_FAILPOINT_LOG. */
static void fp_record(const fp_spec *sp, int64_t hit) {
    if (!fp_log) return;
    char line[128];
    int n = snprintf(line, sizeof line, "%s %s %lld %ld\n", sp->seam,
                     fp_actions[sp->action], (long long)hit, (long)getpid());
    int fd = open(fp_log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return;
    if (write(fd, line, (size_t)n) < 0) { /* the test will notice */
    }
    close(fd);
}

static void fp_sleep_ms(int64_t ms) {
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* The error an ioerr, busy or connerr injects at hit of seam name. */
static int fp_fail(rt_store *s, int code, const char *name, int64_t hit) {
    if (code == RT_CONN) {
        atomic_store(&fp_broken, s);
        return rt__store_fail(s, RT_CONN,
                              "injected connection loss (failpoint %s, hit %lld)",
                              name, (long long)hit);
    }
    if (code == RT_BUSY)
        return rt__store_fail(s, RT_BUSY,
                              "injected busy database (failpoint %s, hit %lld)",
                              name, (long long)hit);
    return rt__store_fail(s, RT_DBERR,
                          "injected I/O error (failpoint %s, hit %lld)", name,
                          (long long)hit);
}

int rt__failpoint(rt_store *s, const char *name) {
    pthread_once(&fp_once, fp_setup);
    if (fp_scope && s != fp_scope) return RT_OK;
    if (s && s == atomic_load(&fp_broken))
        return rt__store_fail(s, RT_CONN,
                              "connection lost (failpoint connerr)");
    int rc = RT_OK;
    for (int i = 0; i < fp_n; i++) {
        fp_spec *sp = &fp_specs[i];
        if (strcmp(sp->seam, name) != 0) continue;
        int64_t hit = (int64_t)atomic_fetch_add(&sp->hits, 1) + 1;
        if (hit != sp->nth && !(sp->from_nth && hit > sp->nth)) continue;
        fp_record(sp, hit);
        atomic_fetch_add(&fp_fires, 1);
        switch (sp->action) {
        case FP_KILL:
            kill(getpid(), SIGKILL);
            for (;;) pause();
        case FP_STOP: /* the whole process, until SIGCONT */
            kill(getpid(), SIGSTOP);
            break;
        case FP_TERM: /* as a platform's stop request */
            kill(getpid(), SIGTERM);
            break;
        case FP_SLEEP:
            fp_sleep_ms(sp->ms);
            break;
        default: { /* FP_IOERR, FP_BUSY, FP_CONNERR */
            int code = sp->action == FP_BUSY      ? RT_BUSY
                       : sp->action == FP_CONNERR ? RT_CONN
                                                  : RT_DBERR;
            if (!strcmp(name, "step")) {
                /* Between items no call can fail; the next one does. */
                fp_armed = s;
                fp_armed_hit = hit;
                fp_armed_rc = code;
                break;
            }
            rc = fp_fail(s, code, name, hit);
        }
        }
    }
    return rc;
}

int rt__failpoint_armed(rt_store *s) {
    if (!fp_armed || fp_armed != s) return RT_OK;
    fp_armed = NULL;
    return fp_fail(s, fp_armed_rc, "step", fp_armed_hit);
}

bool rt__failpoint_broken(const rt_store *s) {
    return s && s == atomic_load(&fp_broken);
}

void rt__failpoint_mend(rt_store *s) {
    if (!s || s != atomic_load(&fp_broken)) return;
    atomic_store(&fp_broken, NULL);
    /* A connection that dropped took its transaction with it. */
    s->ops->rollback(s);
    s->in_tx = 0;
}

const char *rt__failpoint_reset(const rt_store *only) {
    pthread_once(&fp_once, fp_setup);
    fp_n = 0;
    fp_error[0] = '\0';
    fp_armed = NULL;
    atomic_store(&fp_broken, NULL);
    fp_scope = only;
    atomic_store(&fp_fires, 0);
    fp_setup();
    return fp_error[0] ? fp_error : NULL;
}

int64_t rt__failpoint_fired(void) { return (int64_t)atomic_load(&fp_fires); }

void rt__failpoint_unfence(rt_store *s, int64_t run_id, int64_t *epoch) {
    pthread_once(&fp_once, fp_setup);
    if (!fp_unfenced) return;
    rt_value arg = rt_int(run_id);
    rt_stmt *st;
    if (rt__store_query(s, "SELECT epoch FROM rt_run WHERE id = $1", 1, &arg,
                        &st) != RT_ROW)
        return;
    *epoch = s->ops->column_int64(st, 0);
    s->ops->reset(st);
}

#else
/* ISO C wants a declaration in every translation unit. */
typedef int rt__failpoint_none;
#endif
