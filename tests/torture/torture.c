/*
 * torture.c — the torture driver's main: reads its environment, seeds the
 * random stream, runs every scenario on every backend it applies to (one
 * line each) and ends with PASS, or with FAIL at the first broken invariant.
 *
 * Environment:
 *   RATCHET_BIN       the ratchet binary (default build/ratchet)
 *   RATCHET_TEST_PG   admin conninfo of a PostgreSQL server (run-tests.sh
 *                     starts a throwaway one); unset with
 *                     RATCHET_TEST_SKIP_PG=1: SQLite only
 *   RATCHET_TEST_PG_DIR, RATCHET_TEST_PG_SERVER
 *                     the server's directory and tests/pg-server.sh, for
 *                     the server-restart scenario (skipped without them)
 *   TORTURE_SEED      reproduce a run's random instants
 *   TORTURE_SCALE     multiplies every count (make torture: 10)
 *   TORTURE_ONLY      comma-separated scenario names (default: all)
 *   TORTURE_KEEP=1    keep the scratch directory (each child's stderr) after
 *                     a PASS too
 *   MODEL_SEQUENCES, MODEL_EVENTS, MODEL_SEED
 *                     the model scenario's sequences per backend, events
 *                     per sequence, and one sequence to replay (model.c)
 *   TORTURE_SERIAL=1  one backend after the other; by default the
 *                     PostgreSQL scenarios run in a forked copy of the
 *                     driver alongside the SQLite ones (they share no
 *                     database, and most of a kill loop is waiting)
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "torture.h"

static const struct {
    const char *name;
    t_scenario_fn *fn;
    bool sqlite, pg;
} scenarios[] = {
    {"sigkill", t_sigkill, true, true},
    {"sigterm", t_sigterm, true, true},
    {"fencing", t_fencing, true, true},
    {"pg-terminate", t_pg_kill, false, true},
    {"pg-restart", t_pg_restarts, false, true},
    {"sqlite-lock", t_sqlite_lock, true, false},
    {"daemon", t_daemon, true, true},
    {"queue", t_queue, true, true},
    {"model", t_model, true, true},
    {"drops", t_drops, false, true},
};

static t_env env;
static const char *cur_name = "setup";
static int cur_backend = -1;
static int64_t cur_start_ms;
static volatile pid_t pg_half; /* the forked PostgreSQL half, in the SQLite half */

/* ----------------------------------------------------- random, clocks */

uint64_t t_rand(t_rng *r) {
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

int t_count(const t_env *e, int base) {
    double n = base * e->scale + 0.5;
    return n < 1 ? 1 : (int)n;
}

int64_t t_between(t_rng *r, int64_t lo, int64_t hi) {
    if (hi <= lo) return lo;
    return lo + (int64_t)(t_rand(r) % (uint64_t)(hi - lo + 1));
}

int64_t t_now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t t_now_ms(void) { return t_now_us() / 1000; }

void t_sleep_us(int64_t us) {
    if (us <= 0) return;
    struct timespec ts = {(time_t)(us / 1000000), (long)(us % 1000000) * 1000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* ------------------------------------------------------ lines, failure */

const char *t_backend_name(int backend) {
    return backend == T_PG ? "postgres" : "sqlite";
}

void t_report(const char *fmt, ...) {
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    printf("torture: %-13s %-8s %s (%.1f s)\n", cur_name, t_backend_name(cur_backend),
           line, (double)(t_now_ms() - cur_start_ms) / 1000.0);
    fflush(stdout);
}

void t_vline(char *out, size_t n, const char *fmt, va_list ap) {
    vsnprintf(out, n, fmt, ap);
    for (char *p = out; *p; p++)
        if (*p == '\n') *p = ' ';
}

void t_env_self(const t_env *given, t_env *out) {
    static char self[1024];
    *out = *given;
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) t_fail("readlink /proc/self/exe: %s", strerror(errno));
    self[n] = '\0';
    out->bin = self;
}

void t_fail(const char *fmt, ...) {
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    t_vline(msg, sizeof msg, fmt, ap);
    va_end(ap);
    printf("torture: FAIL seed=%llu scenario=%s backend=%s: %s (TORTURE_SEED=%llu "
           "TORTURE_SCALE=%g TORTURE_ONLY=%s to reproduce; files in %s)\n",
           (unsigned long long)env.seed, cur_name,
           cur_backend < 0 ? "-" : t_backend_name(cur_backend), msg,
           (unsigned long long)env.seed, env.scale, cur_name, env.dir);
    fflush(stdout);
    t_proc_cleanup();
    t_db_cleanup();
    if (pg_half > 0) { /* it stops its own children (torture_stop) */
        kill(pg_half, SIGTERM);
        waitpid(pg_half, NULL, 0);
    }
    exit(1);
}

/* Told to stop (Ctrl-C; the other half failed or died): stop every child
 * and the PostgreSQL half, then exit. kill() and waitpid() are
 * async-signal-safe. */
static void torture_stop(int sig) {
    t_proc_cleanup();
    if (pg_half > 0) kill(pg_half, SIGTERM);
    _exit(128 + sig);
}

/* ---------------------------------------------------------------- main */

static bool torture_selected(const char *only, const char *name) {
    if (!only || !*only) return true;
    size_t n = strlen(name);
    for (const char *p = only; (p = strstr(p, name)); p += n)
        if ((p == only || p[-1] == ',') && (p[n] == '\0' || p[n] == ',')) return true;
    return false;
}

static uint64_t torture_seed(void) {
    const char *s = getenv("TORTURE_SEED");
    if (s && *s) return strtoull(s, NULL, 10);
    uint64_t seed = 0;
    FILE *f = fopen("/dev/urandom", "rb");
    if (!f || fread(&seed, sizeof seed, 1, f) != 1)
        seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
    if (f) fclose(f);
    return seed % 1000000000000ULL; /* short enough to type */
}

int main(int argc, char **argv) {
    /* Started by a model scenario as ratchet itself (mjob.c). */
    const char *as_ratchet = getenv("TORTURE_RATCHET");
    if (as_ratchet && !strcmp(as_ratchet, "1")) return t_ratchet_main(argc, argv);
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, torture_stop);
    signal(SIGINT, torture_stop);
    /* t_wait sleeps on SIGCHLD: keep it pending until asked for. */
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_BLOCK, &chld, NULL);

    const char *bin = getenv("RATCHET_BIN");
    env.bin = bin && *bin ? bin : "build/ratchet";
    if (access(env.bin, X_OK) != 0) t_fail("%s is not an executable (RATCHET_BIN)", env.bin);
    const char *scale = getenv("TORTURE_SCALE");
    env.scale = scale && atof(scale) > 0 ? atof(scale) : 1;
    env.seed = torture_seed();
    env.pg_admin = getenv("RATCHET_TEST_PG");
    if (env.pg_admin && !*env.pg_admin) env.pg_admin = NULL;
    env.pg_dir = getenv("RATCHET_TEST_PG_DIR");
    env.pg_server = getenv("RATCHET_TEST_PG_SERVER");
    const char *skip = getenv("RATCHET_TEST_SKIP_PG");
    if (!env.pg_admin && !(skip && !strcmp(skip, "1")))
        t_fail("RATCHET_TEST_PG is not set: run 'make torture' or 'make check' (they "
               "start PostgreSQL), or set RATCHET_TEST_SKIP_PG=1");
    snprintf(env.dir, sizeof env.dir, "/tmp/ratchet-torture.XXXXXX");
    if (!mkdtemp(env.dir)) t_fail("mkdtemp: %s", strerror(errno));
    const char *only = getenv("TORTURE_ONLY");

    const char *serial = getenv("TORTURE_SERIAL");
    bool split = env.pg_admin && !(serial && !strcmp(serial, "1"));
    printf("torture: seed %llu (TORTURE_SEED=%llu reproduces it), scale %g, %s%s\n",
           (unsigned long long)env.seed, (unsigned long long)env.seed, env.scale,
           env.pg_admin ? "SQLite and PostgreSQL" : "SQLite only",
           split ? " side by side" : "");
    int64_t t0 = t_now_ms();
    int ran = 0, first = T_SQLITE, last = T_PG;
    if (split) {
        pid_t parent = getpid();
        pg_half = fork();
        if (pg_half < 0) t_fail("fork: %s", strerror(errno));
        if (pg_half == 0) { /* the PostgreSQL half */
            prctl(PR_SET_PDEATHSIG, SIGTERM);
            if (getppid() != parent) torture_stop(SIGTERM);
            first = T_PG;
        } else {
            last = T_SQLITE;
        }
    }
    for (size_t i = 0; i < sizeof scenarios / sizeof *scenarios; i++) {
        if (!torture_selected(only, scenarios[i].name)) continue;
        for (int b = first; b <= last; b++) {
            if (!(b == T_SQLITE ? scenarios[i].sqlite : scenarios[i].pg)) continue;
            cur_name = scenarios[i].name;
            cur_backend = b;
            cur_start_ms = t_now_ms();
            if (b == T_PG && !env.pg_admin) {
                t_report("skipped: RATCHET_TEST_SKIP_PG=1");
                continue;
            }
            /* Each scenario has its own stream: TORTURE_ONLY=name with the
             * same seed replays the same instants. */
            t_rng rng = {env.seed ^ (0x51ed2701ULL * (i + 1)) ^ ((uint64_t)b << 40)};
            scenarios[i].fn(&env, b, &rng);
            ran++;
        }
    }
    cur_name = "setup";
    cur_backend = -1;
    t_db_cleanup();
    t_pg_amcheck_report();
    if (split && pg_half == 0) exit(0); /* the PostgreSQL half passed */
    if (split) {
        int status = 0;
        while (waitpid(pg_half, &status, 0) < 0 && errno == EINTR) {
        }
        pg_half = 0;
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            t_fail("the PostgreSQL half failed (its FAIL line is above)");
        for (size_t i = 0; i < sizeof scenarios / sizeof *scenarios; i++)
            ran += scenarios[i].pg && torture_selected(only, scenarios[i].name);
    }
    if (!ran) t_fail("no scenario matches TORTURE_ONLY=%s", only ? only : "");
    const char *keep = getenv("TORTURE_KEEP");
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", env.dir);
    if (keep && !strcmp(keep, "1")) printf("torture: files kept in %s\n", env.dir);
    else if (system(cmd) != 0) fprintf(stderr, "torture: could not remove %s\n", env.dir);
    printf("torture: PASS seed=%llu, %d scenario runs, %.1f s\n",
           (unsigned long long)env.seed, ran, (double)(t_now_ms() - t0) / 1000.0);
    return 0;
}
