/*
 * bench.c — the `make bench` driver. Runs ratchet (the CLI with the rowcopy
 * demo job) and the hand-written baselines (baseline_sqlite.c,
 * baseline_pg.c) as child processes and prints one table (Markdown) on
 * stdout; progress goes to stderr.
 *
 *   bench RATCHET_BIN BASELINE_SQLITE_BIN BASELINE_PG_BIN
 *
 * Measurements (docs/BENCHMARKS.md explains each):
 *   fsync floor   baseline: FSYNC_N one-row transactions, commits/s
 *   copy          rowcopy's copy step, items/s, at chunk sizes 1, 100, 1000
 *                 (ROWS_C1, ROWS_C100, ROWS_C1000 rows); ratchet's time is
 *                 the copy step's step_done "ms", the baseline times the
 *                 same span itself; BENCH_REPS runs each, alternating.
 *                 PostgreSQL also "pipelined copy": the baseline's pcopy
 *                 mode (libpq pipeline mode) against rowcopy --param
 *                 pipeline=true (rt_exec_later), at chunk 1, 100, 1000
 *                 (ROWS_P1, ROWS_P100, ROWS_P1000 rows); goal ≤ 1.2
 *   stop          SIGTERM to waitpid() return, STOP_TRIALS trials, with
 *                 item_us=STOP_ITEM_US (1 ms items)
 *   resume        process start to the "resume" line and to the first commit
 *                 (chunk 1) with the cursor at RESUME_NEAR and at RESUME_FAR,
 *                 RESUME_TRIALS each, baseline and ratchet interleaved
 *   takeover      SIGKILL of a lease holder to the waiting replica's
 *                 takeover line and first commit, TAKEOVER_TRIALS trials
 *   memory        peak RSS (wait4 ru_maxrss) of whole runs of MEM_SMALL and
 *                 MEM_BIG rows, MEM_REPS each, alternating
 *   queue         QUEUE_RUNS queued runs of the built-in noop job (the first
 *                 by `ratchet enqueue`, the rest copies of its row inserted
 *                 in one transaction) worked off by `ratchet worker
 *                 --concurrency 4`: runs/s from the first run's started_ms to
 *                 the last one's finished_ms, and from spawning the pool to
 *                 the bench's poll seeing no run left; QUEUE_REPS trials,
 *                 each on a fresh database; the pool must exit 0 on SIGTERM
 *   schedule      three `ratchet daemon --schedule 'tick=* * * * * *'`
 *                 replicas on one fresh database for SCHEDULE_S seconds
 *                 (started 100 ms after a wall-clock second), then SIGTERM
 *                 (each must exit 0); lateness of each slot's run = tick's
 *                 step start_ms (tick_log) - the slot (rt_run.slot_ms), read
 *                 with the bench's own connection; dies when a slot ran
 *                 twice or fewer than SCHEDULE_S-3 slots ran
 * A size NAME is read from BENCH_SQLITE_NAME or BENCH_PG_NAME, else
 * BENCH_NAME, else the backend's default (main() below).
 *
 * Backends: SQLite always (a fresh file per run in BENCH_DIR, default a new
 * directory under $TMPDIR or /tmp); PostgreSQL when BENCH_PG_URL (a libpq
 * conninfo or URI of a role that may CREATE DATABASE) is set: a fresh
 * database per run. BENCH_ONLY=sqlite|postgres and
 * BENCH_PARTS=copy,stop,resume,takeover,memory,queue,schedule select what
 * runs.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <libpq-fe.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_SAMPLES 1024
#define MAX_BACKENDS 2
#define MAX_ROWS 40
#define CELL 64

/* ---------------------------------------------------------------- util */

static const char *ratchet_bin, *baseline_sqlite_bin, *baseline_pg_bin;
static char scratch[4096];
static bool scratch_made;

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "bench: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(1);
}

static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void note(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "bench: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
}

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void sleep_ms(double ms) {
    struct timespec ts = {(time_t)(ms / 1000),
                          (long)((ms - (double)(int64_t)(ms / 1000) * 1000) * 1e6)};
    while (nanosleep(&ts, &ts) && errno == EINTR) {
    }
}

static int64_t env_int(const char *name, int64_t def, int64_t min) {
    const char *v = getenv(name);
    if (!v || !*v) return def;
    char *end;
    long long n = strtoll(v, &end, 10);
    if (*end || n < min) die("%s='%s': want an integer >= %lld", name, v, (long long)min);
    return n;
}

/* 1234567 -> "1,234,567" (static ring of buffers). */
static const char *commas(int64_t n) {
    static char ring[8][32];
    static int at;
    char *out = ring[at++ % 8], tmp[32];
    snprintf(tmp, sizeof tmp, "%lld", (long long)(n < 0 ? -n : n));
    size_t len = strlen(tmp), o = 0;
    if (n < 0) out[o++] = '-';
    for (size_t i = 0; i < len; i++) {
        if (i && (len - i) % 3 == 0) out[o++] = ',';
        out[o++] = tmp[i];
    }
    out[o] = 0;
    return out;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static double rng_uniform(double lo, double hi) { /* xorshift64* */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    uint64_t r = rng_state * 2685821657736338717ULL;
    return lo + (hi - lo) * (double)(r >> 11) / 9007199254740992.0;
}

/* ------------------------------------------------------------ samples */

typedef struct samples {
    double v[MAX_SAMPLES];
    int n;
} samples;

static void add(samples *s, double v) {
    if (s->n < MAX_SAMPLES) s->v[s->n++] = v;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void sorted(const samples *s, double *out) {
    memcpy(out, s->v, sizeof(double) * (size_t)s->n);
    qsort(out, (size_t)s->n, sizeof *out, cmp_double);
}

static double median(const samples *s) {
    double v[MAX_SAMPLES];
    sorted(s, v);
    return s->n % 2 ? v[s->n / 2] : (v[s->n / 2 - 1] + v[s->n / 2]) / 2;
}

/* Nearest-rank percentile: the ceil(p/100 * n)-th smallest. */
static double percentile(const samples *s, double p) {
    double v[MAX_SAMPLES];
    sorted(s, v);
    int rank = (int)(p / 100.0 * s->n + 0.999999);
    if (rank < 1) rank = 1;
    if (rank > s->n) rank = s->n;
    return v[rank - 1];
}

static double smin(const samples *s) {
    double m = s->v[0];
    for (int i = 1; i < s->n; i++) m = s->v[i] < m ? s->v[i] : m;
    return m;
}

static double smax(const samples *s) {
    double m = s->v[0];
    for (int i = 1; i < s->n; i++) m = s->v[i] > m ? s->v[i] : m;
    return m;
}

/* A number with about 3 significant digits, or a comma-grouped integer. */
static void fmt_num(char *out, size_t n, double v) {
    if (v >= 1000) snprintf(out, n, "%s", commas((int64_t)(v + 0.5)));
    else if (v >= 100) snprintf(out, n, "%.0f", v);
    else if (v >= 10) snprintf(out, n, "%.1f", v);
    else snprintf(out, n, "%.2f", v);
}

/* "median [min–max]" */
static void fmt_range(char *out, size_t n, const samples *s) {
    if (!s->n) {
        snprintf(out, n, "-");
        return;
    }
    char a[24], b[24], c[24];
    fmt_num(a, sizeof a, median(s));
    fmt_num(b, sizeof b, smin(s));
    fmt_num(c, sizeof c, smax(s));
    snprintf(out, n, "%s [%s–%s]", a, b, c);
}

/* ------------------------------------------------------------ table */

typedef struct row {
    char label[96];
    /* per backend: ratchet, baseline, ratio */
    char cell[MAX_BACKENDS][3][CELL * 2];
} row;

static row table[MAX_ROWS];
static int ntable;

/* Sizes, printed under the table (labels stay backend-free). */
static char sizes[MAX_BACKENDS][512];

static void size_note(int backend, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void size_note(int backend, const char *fmt, ...) {
    size_t n = strlen(sizes[backend]);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sizes[backend] + n, sizeof sizes[backend] - n, fmt, ap);
    va_end(ap);
}

static row *row_get(const char *label) {
    for (int i = 0; i < ntable; i++)
        if (!strcmp(table[i].label, label)) return &table[i];
    if (ntable == MAX_ROWS) die("too many table rows");
    row *r = &table[ntable++];
    snprintf(r->label, sizeof r->label, "%s", label);
    for (int b = 0; b < MAX_BACKENDS; b++)
        for (int k = 0; k < 3; k++) snprintf(r->cell[b][k], CELL * 2, "-");
    return r;
}

static void row_set(const char *label, int backend, int col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void row_set(const char *label, int backend, int col, const char *fmt, ...) {
    row *r = row_get(label);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->cell[backend][col], CELL * 2, fmt, ap);
    va_end(ap);
}

/*
 * Fill ratchet, baseline and cost-ratio cells of one row. The ratio is of
 * medians and always reads "ratchet's cost ÷ the baseline's" (above 1:
 * ratchet is slower or bigger): ratchet ÷ baseline for times and sizes,
 * baseline ÷ ratchet for rates (items/s).
 */
static void row_pair_as(const char *label, int backend, const samples *ratchet,
                        const samples *baseline, bool rate) {
    char buf[CELL * 2];
    if (ratchet->n) {
        fmt_range(buf, sizeof buf, ratchet);
        row_set(label, backend, 0, "%s", buf);
    } else {
        row_get(label);
    }
    if (baseline && baseline->n) {
        fmt_range(buf, sizeof buf, baseline);
        row_set(label, backend, 1, "%s", buf);
    }
    if (ratchet->n && baseline && baseline->n && median(baseline) > 0 &&
        median(ratchet) > 0)
        row_set(label, backend, 2, "%.2f",
                rate ? median(baseline) / median(ratchet)
                     : median(ratchet) / median(baseline));
}

static void row_pair(const char *label, int backend, const samples *ratchet,
                     const samples *baseline) {
    row_pair_as(label, backend, ratchet, baseline, false);
}

/* Display width of UTF-8 text (the table uses – and →). */
static int width(const char *s) {
    int w = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xc0) != 0x80) w++;
    return w;
}

static void pad(const char *s, int w) {
    fputs(s, stdout);
    for (int i = width(s); i < w; i++) putchar(' ');
}

/* ------------------------------------------------------------ processes */

typedef struct child {
    pid_t pid;
    int err_fd; /* read end of the child's stderr */
    int out_fd; /* read end of the child's stdout */
    char buf[1 << 16];
    size_t len;
    int64_t spawned_ns;
} child;

static void child_spawn(child *c, const char *const argv[], const char *log_level) {
    int ep[2], op[2];
    if (pipe2(ep, O_CLOEXEC) || pipe2(op, O_CLOEXEC)) die("pipe: %s", strerror(errno));
    fflush(NULL);
    c->len = 0;
    c->spawned_ns = now_ns();
    pid_t pid = fork();
    if (pid < 0) die("fork: %s", strerror(errno));
    if (pid == 0) {
        dup2(ep[1], STDERR_FILENO);
        dup2(op[1], STDOUT_FILENO);
        setenv("RATCHET_LOG", "json", 1);
        setenv("RATCHET_LOG_LEVEL", log_level, 1);
        execv(argv[0], (char *const *)argv);
        fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(ep[1]);
    close(op[1]);
    c->pid = pid;
    c->err_fd = ep[0];
    c->out_fd = op[0];
}

/* Next stderr line into line (newline stripped): 1, or 0 at EOF, or -1 on
 * timeout. */
static int child_line(child *c, char *line, size_t cap, int timeout_ms) {
    int64_t deadline = now_ns() + (int64_t)timeout_ms * 1000000;
    for (;;) {
        char *nl = memchr(c->buf, '\n', c->len);
        if (nl) {
            size_t n = (size_t)(nl - c->buf);
            size_t k = n < cap - 1 ? n : cap - 1;
            memcpy(line, c->buf, k);
            line[k] = 0;
            memmove(c->buf, nl + 1, c->len - n - 1);
            c->len -= n + 1;
            return 1;
        }
        if (c->len == sizeof c->buf) c->len = 0; /* absurd line: drop */
        int left = (int)((deadline - now_ns()) / 1000000);
        if (left <= 0) return -1;
        struct pollfd p = {c->err_fd, POLLIN, 0};
        int r = poll(&p, 1, left);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        ssize_t got = read(c->err_fd, c->buf + c->len, sizeof c->buf - c->len);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) {
            if (c->len) { /* last line without newline */
                size_t k = c->len < cap - 1 ? c->len : cap - 1;
                memcpy(line, c->buf, k);
                line[k] = 0;
                c->len = 0;
                return 1;
            }
            return 0;
        }
        c->len += (size_t)got;
    }
}

/* Read the rest of a fd to EOF into a malloc'd string. */
static char *slurp(int fd) {
    size_t cap = 4096, len = 0;
    char *s = malloc(cap);
    for (;;) {
        if (len + 1 >= cap) s = realloc(s, cap *= 2);
        ssize_t n = read(fd, s + len, cap - len - 1);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        len += (size_t)n;
    }
    s[len] = 0;
    return s;
}

/* Wait for the child; returns its exit code (128+sig if killed). */
static int child_wait(child *c, struct rusage *ru) {
    int st;
    struct rusage dummy;
    while (wait4(c->pid, &st, 0, ru ? ru : &dummy) < 0)
        if (errno != EINTR) die("wait4: %s", strerror(errno));
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void child_close(child *c) {
    close(c->err_fd);
    close(c->out_fd);
}

/* The string value of "key" in a ratchet JSON log line. */
static bool json_str(const char *line, const char *key, char *out, size_t cap) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":\"", key);
    const char *p = strstr(line, pat);
    if (!p) return false;
    p += strlen(pat);
    size_t n = strcspn(p, "\"");
    if (n >= cap) n = cap - 1;
    memcpy(out, p, n);
    out[n] = 0;
    return true;
}

/* The integer value of ,"key": in a ratchet JSON log line. */
static bool json_int(const char *line, const char *key, int64_t *out) {
    char pat[64];
    snprintf(pat, sizeof pat, ",\"%s\":", key);
    const char *p = strstr(line, pat);
    if (!p) return false;
    *out = strtoll(p + strlen(pat), NULL, 10);
    return true;
}

static bool is_event(const char *line, const char *event) {
    char ev[64];
    return json_str(line, "event", ev, sizeof ev) && !strcmp(ev, event);
}

/* ------------------------------------------------------------ backends */

/*
 * A backend: how ratchet reaches a fresh database and which baseline binary
 * (baseline_sqlite.c, baseline_pg.c: the same command lines) does the same
 * work on it.
 */
typedef struct backend {
    const char *name;
    const char *env;      /* "SQLITE" or "PG": BENCH_<env>_* size overrides */
    const char *pg_url;   /* NULL: SQLite files in the scratch directory */
    const char *baseline; /* baseline binary */
} backend;

static backend backends[MAX_BACKENDS];
static int nbackends;

/*
 * A size for one backend: BENCH_<SQLITE|PG>_<name>, else BENCH_<name>, else
 * the backend's default.
 */
static int64_t benv(const backend *b, const char *name, int64_t def_sqlite,
                    int64_t def_pg, int64_t min) {
    char var[96];
    snprintf(var, sizeof var, "BENCH_%s_%s", b->env, name);
    const char *v = getenv(var);
    if (v && *v) return env_int(var, 0, min);
    snprintf(var, sizeof var, "BENCH_%s", name);
    return env_int(var, b->pg_url ? def_pg : def_sqlite, min);
}

/* PostgreSQL: an admin connection that creates one database per run. */
static PGconn *pg_admin;

static void pg_admin_exec(const char *sql) {
    if (!pg_admin) {
        pg_admin = PQconnectdb(getenv("BENCH_PG_URL"));
        if (PQstatus(pg_admin) != CONNECTION_OK)
            die("BENCH_PG_URL: cannot connect: %s", PQerrorMessage(pg_admin));
        PQclear(PQexec(pg_admin, "SET client_min_messages = warning"));
    }
    PGresult *res = PQexec(pg_admin, sql);
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        die("%s: %s", sql, PQresultErrorMessage(res));
    PQclear(res);
}

/* The server URL with another dbname (URI or conninfo; a later dbname wins
 * in both). */
static void pg_url_db(const char *url, const char *db, char *out, size_t n) {
    if (strstr(url, "://"))
        snprintf(out, n, "%s%cdbname=%s", url, strchr(url, '?') ? '&' : '?', db);
    else
        snprintf(out, n, "%s dbname=%s", url, db);
}

static int db_seq;

/*
 * A fresh database for one run: a new SQLite file in the scratch directory,
 * or a new PostgreSQL database (created here, dropped by db_drop). url is for
 * ratchet (--db), spec for the baseline.
 */
static void db_for(const backend *b, const char *tag, char *url, size_t n,
                   char *spec, size_t sn) {
    if (b->pg_url) {
        char name[64], sql[128];
        /* Our own identifier: letters, digits and '_' only. */
        snprintf(name, sizeof name, "ratchet_bench_%d_%d", (int)getpid(), ++db_seq);
        snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s", name);
        pg_admin_exec(sql);
        snprintf(sql, sizeof sql, "CREATE DATABASE %s", name);
        pg_admin_exec(sql);
        pg_url_db(b->pg_url, name, url, n);
        snprintf(spec, sn, "%s", url);
        return;
    }
    (void)tag;
    snprintf(spec, sn, "%s/db-%d.db", scratch, ++db_seq);
    snprintf(url, n, "sqlite:%s", spec);
}

static void db_drop(const backend *b, const char *spec) {
    if (b->pg_url) {
        const char *p = strstr(spec, "dbname=ratchet_bench_");
        if (!p) return;
        char sql[128];
        snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %.*s",
                 (int)strspn(p + 7, "abcdefghijklmnopqrstuvwxyz_0123456789"),
                 p + 7);
        pg_admin_exec(sql);
        return;
    }
    const char *sfx[] = {"", "-wal", "-shm", "-journal", "-ratchet.lock"};
    for (int i = 0; i < 5; i++) {
        char p[4200];
        snprintf(p, sizeof p, "%s%s", spec, sfx[i]);
        unlink(p);
    }
}

/*
 * One SQL statement on a backend's database, parameters bound: types says
 * per parameter 'i' (int64_t) or 's' (const char *). Returns the rows it
 * changed.
 */
static int64_t db_sql(const backend *b, const char *spec, const char *sql,
                      const char *types, ...) {
    va_list ap;
    va_start(ap, types);
    int np = (int)strlen(types);
    int64_t changes;
    if (b->pg_url) {
        char num[8][32];
        const char *vals[8];
        for (int i = 0; i < np && i < 8; i++) {
            if (types[i] == 'i') {
                snprintf(num[i], sizeof num[i], "%lld", (long long)va_arg(ap, int64_t));
                vals[i] = num[i];
            } else {
                vals[i] = va_arg(ap, const char *);
            }
        }
        PGconn *c = PQconnectdb(spec);
        if (PQstatus(c) != CONNECTION_OK) die("connect: %s", PQerrorMessage(c));
        PGresult *res = PQexecParams(c, sql, np, NULL, vals, NULL, NULL, 0);
        if (PQresultStatus(res) != PGRES_COMMAND_OK &&
            PQresultStatus(res) != PGRES_TUPLES_OK)
            die("%s: %s", sql, PQresultErrorMessage(res));
        changes = strtoll(PQcmdTuples(res), NULL, 10);
        PQclear(res);
        PQfinish(c);
    } else {
        sqlite3 *db;
        sqlite3_stmt *st;
        if (sqlite3_open(spec, &db) != SQLITE_OK) die("open %s", spec);
        sqlite3_busy_timeout(db, 10000);
        if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
            die("%s: %s", sql, sqlite3_errmsg(db));
        for (int i = 0; i < np; i++) {
            if (types[i] == 'i')
                sqlite3_bind_int64(st, i + 1, va_arg(ap, int64_t));
            else
                sqlite3_bind_text(st, i + 1, va_arg(ap, const char *), -1,
                                  SQLITE_TRANSIENT);
        }
        int rc;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        }
        if (rc != SQLITE_DONE) die("%s: %s", sql, sqlite3_errmsg(db));
        changes = sqlite3_changes(db);
        sqlite3_finalize(st);
        sqlite3_close(db);
    }
    va_end(ap);
    return changes;
}

static int run_seq;

/* A run key unique across the whole bench (postgres keeps its runs). */
static void new_key(char *key, size_t n, const char *what) {
    snprintf(key, n, "bench-%s-%d-%d", what, (int)getpid(), ++run_seq);
}

/* ------------------------------------------------------------ ratchet runs */

typedef struct ratchet_result {
    int code;
    int64_t copy_items, copy_ms;
    double copy_cpu_ms; /* approximate: see schedstat_ns() */
    long maxrss_kb;
} ratchet_result;

/*
 * CPU time a (single-threaded) process has used so far, in ns, from
 * /proc/PID/schedstat. Read when a log line arrives, so it also counts what
 * the child did between writing the line and our read (microseconds when a
 * core is free, up to a scheduler tick under load).
 */
static int64_t schedstat_ns(pid_t pid) {
    char path[64], buf[128];
    snprintf(path, sizeof path, "/proc/%d/schedstat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return -1;
    buf[n] = 0;
    return strtoll(buf, NULL, 10);
}

/*
 * A whole rowcopy run to the end (with --param pipeline=true when
 * pipelined); collects the copy step's step_done.
 */
static ratchet_result ratchet_rowcopy(const char *url, int64_t rows, int64_t chunk,
                                      bool pipelined) {
    char key[96], rows_p[64], chunk_s[32];
    new_key(key, sizeof key, "copy");
    snprintf(rows_p, sizeof rows_p, "rows=%lld", (long long)rows);
    snprintf(chunk_s, sizeof chunk_s, "%lld", (long long)chunk);
    const char *argv[] = {ratchet_bin, "--db", url, "run", "rowcopy",
                    "--key", key, "--param", rows_p, "--chunk-items", chunk_s,
                    pipelined ? "--param" : NULL, "pipeline=true", NULL};
    child c;
    child_spawn(&c, argv, "info");
    ratchet_result r = {0, -1, -1, -1, 0};
    char line[4096], step[64];
    char last[4096] = "";
    int64_t cpu_seeded = -1;
    int got;
    while ((got = child_line(&c, line, sizeof line, 600000)) == 1) {
        snprintf(last, sizeof last, "%s", line);
        if (!is_event(line, "step_done") || !json_str(line, "step", step, sizeof step))
            continue;
        if (!strcmp(step, "seed")) cpu_seeded = schedstat_ns(c.pid);
        if (!strcmp(step, "copy")) {
            int64_t cpu = schedstat_ns(c.pid);
            if (cpu_seeded >= 0 && cpu >= 0)
                r.copy_cpu_ms = (double)(cpu - cpu_seeded) / 1e6;
            json_int(line, "items", &r.copy_items);
            json_int(line, "ms", &r.copy_ms);
        }
    }
    if (got < 0) {
        kill(c.pid, SIGKILL);
        die("ratchet run timed out");
    }
    struct rusage ru;
    r.code = child_wait(&c, &ru);
    r.maxrss_kb = ru.ru_maxrss;
    child_close(&c);
    if (r.code != 0 || r.copy_items != rows || r.copy_ms < 0)
        die("ratchet rowcopy rows=%lld chunk=%lld%s: exit %d, copy items %lld; "
            "last log line: %s",
            (long long)rows, (long long)chunk, pipelined ? " pipeline=true" : "",
            r.code, (long long)r.copy_items, last);
    return r;
}

typedef struct baseline_result {
    double ms, cpu_ms;
    int64_t n;
    long maxrss_kb;
} baseline_result;

/* baseline copy|pcopy SPEC ROWS CHUNK | baseline fsync SPEC N */
static baseline_result baseline_run(const backend *b, const char *mode,
                                    const char *spec, int64_t a1, int64_t a2) {
    char s1[32], s2[32];
    snprintf(s1, sizeof s1, "%lld", (long long)a1);
    snprintf(s2, sizeof s2, "%lld", (long long)a2);
    bool copy = !strcmp(mode, "copy") || !strcmp(mode, "pcopy");
    const char *argv[] = {b->baseline, mode, spec, s1, copy ? s2 : NULL, NULL};
    child c;
    child_spawn(&c, argv, "info");
    char *out = slurp(c.out_fd);
    char *err = slurp(c.err_fd);
    struct rusage ru;
    int code = child_wait(&c, &ru);
    child_close(&c);
    baseline_result r = {-1, -1, -1, ru.ru_maxrss};
    long long n = -1;
    double ms = -1, cpu = -1;
    if (code != 0 ||
        sscanf(out, copy ? "items=%lld ms=%lf cpu_ms=%lf" : "commits=%lld ms=%lf",
               &n, &ms, &cpu) != (copy ? 3 : 2))
        die("%s %s: exit %d: %s%s", b->baseline, mode, code, out, err);
    r.ms = ms;
    r.cpu_ms = cpu;
    r.n = n;
    free(out);
    free(err);
    return r;
}

/* ------------------------------------------------------------ measurements */

static int64_t reps;
static bool verbose;

static void bench_fsync(int bi) {
    const backend *b = &backends[bi];
    if (!b->baseline) return;
    int64_t n = benv(b, "FSYNC_N", 2000, 2000, 1);
    samples s = {0};
    for (int64_t r = 0; r < reps; r++) {
        char url[4200], spec[4200];
        db_for(b, "fsync", url, sizeof url, spec, sizeof spec);
        baseline_result br = baseline_run(b, "fsync", spec, n, 0);
        add(&s, (double)br.n / (br.ms / 1000));
        db_drop(b, spec);
    }
    char label[96];
    snprintf(label, sizeof label, "fsync floor: 1-row commits/s (n=%s)", commas(n));
    samples none = {0};
    row_pair(label, bi, &none, &s);
    note("%s fsync floor: %.0f commits/s", b->name, median(&s));
}

/* CPU rows go in the table after all the throughput rows. */
static struct cpu_row {
    int bi;
    char label[96];
    samples rt, base;
} cpu_rows[8];
static int ncpu_rows;

static void bench_copy_cpu_rows(void) {
    for (int i = 0; i < ncpu_rows; i++)
        row_pair(cpu_rows[i].label, cpu_rows[i].bi, &cpu_rows[i].rt,
                 &cpu_rows[i].base);
    ncpu_rows = 0;
}

/*
 * Throughput of rowcopy's copy step at one chunk size, baseline and ratchet
 * alternating. pipelined: the baseline's pcopy mode against `--param
 * pipeline=true` (PostgreSQL only: SQLite has nothing to pipeline).
 */
static void bench_copy(int bi, int64_t chunk, const char *env, int64_t def_sqlite,
                       int64_t def_pg, bool pipelined) {
    const backend *b = &backends[bi];
    if (pipelined && !b->pg_url) return;
    if (ncpu_rows == (int)(sizeof cpu_rows / sizeof *cpu_rows)) die("too many CPU rows");
    int64_t rows = benv(b, env, def_sqlite, def_pg, 1);
    samples rt = {0}, base = {0}, rt_cpu = {0}, base_cpu = {0};
    for (int64_t r = 0; r < reps; r++) {
        char url[4200], spec[4200];
        if (b->baseline) {
            db_for(b, "copy-base", url, sizeof url, spec, sizeof spec);
            baseline_result br =
                baseline_run(b, pipelined ? "pcopy" : "copy", spec, rows, chunk);
            add(&base, (double)br.n / (br.ms / 1000));
            add(&base_cpu, br.cpu_ms * 1000 / (double)br.n);
            db_drop(b, spec);
        }
        db_for(b, "copy-ratchet", url, sizeof url, spec, sizeof spec);
        ratchet_result rr = ratchet_rowcopy(url, rows, chunk, pipelined);
        add(&rt, (double)rr.copy_items / ((double)(rr.copy_ms ? rr.copy_ms : 1) / 1000));
        if (rr.copy_cpu_ms >= 0) add(&rt_cpu, rr.copy_cpu_ms * 1000 / (double)rr.copy_items);
        db_drop(b, spec);
        if (verbose)
            note("  rep %lld: baseline %.0f/s %.2f cpu-us/item, ratchet %.0f/s "
                 "%.2f cpu-us/item (%lld ms)",
                 (long long)r + 1, base.n ? base.v[base.n - 1] : 0.0,
                 base_cpu.n ? base_cpu.v[base_cpu.n - 1] : 0.0, rt.v[rt.n - 1],
                 rt_cpu.n ? rt_cpu.v[rt_cpu.n - 1] : 0.0, (long long)rr.copy_ms);
    }
    const char *what = pipelined ? "pipelined copy" : "copy";
    char label[96];
    snprintf(label, sizeof label, "%s, chunk %lld: items/s%s", what,
             (long long)chunk, pipelined ? " (goal ≤ 1.2)" : "");
    size_note(bi, "%s%s chunk %lld: %s rows", sizes[bi][0] ? "; " : "", what,
              (long long)chunk, commas(rows));
    row_pair_as(label, bi, &rt, &base, true);
    cpu_rows[ncpu_rows].bi = bi;
    snprintf(cpu_rows[ncpu_rows].label, sizeof cpu_rows[ncpu_rows].label,
             "%s, chunk %lld: CPU µs/item", what, (long long)chunk);
    cpu_rows[ncpu_rows].rt = rt_cpu;
    cpu_rows[ncpu_rows].base = base_cpu;
    ncpu_rows++;
    note("%s %s chunk %lld: ratchet %.0f/s, baseline %.0f/s", b->name, what,
         (long long)chunk, median(&rt), base.n ? median(&base) : 0.0);
}

/*
 * Start `ratchet run rowcopy --key KEY ...` and wait for the line with event
 * `until` (and, for step_done, step `step`). Returns false at EOF/timeout.
 */
static bool spawn_until(child *c, const char *const argv[], const char *level,
                        const char *until, const char *step, int64_t *at_ns,
                        char *line, size_t cap) {
    child_spawn(c, argv, level);
    char st[64];
    int got;
    while ((got = child_line(c, line, cap, 120000)) == 1) {
        if (!is_event(line, until)) continue;
        if (step && !(json_str(line, "step", st, sizeof st) && !strcmp(st, step)))
            continue;
        if (at_ns) *at_ns = now_ns();
        return true;
    }
    return false;
}

/* SIGTERM, wait; returns the exit code and the kill-to-reaped time. */
static int term_and_wait(child *c, double *ms) {
    int64_t t0 = now_ns();
    if (kill(c->pid, SIGTERM)) die("kill: %s", strerror(errno));
    int code = child_wait(c, NULL);
    int64_t t1 = now_ns();
    if (ms) *ms = (double)(t1 - t0) / 1e6;
    child_close(c);
    return code;
}

static void bench_stop(int bi) {
    const backend *b = &backends[bi];
    int64_t trials = benv(b, "STOP_TRIALS", 100, 100, 1);
    int64_t item_us = benv(b, "STOP_ITEM_US", 1000, 1000, 0);
    int64_t rows = benv(b, "STOP_ROWS", 100000, 100000, 1);
    if (trials > MAX_SAMPLES) trials = MAX_SAMPLES;
    char url[4200], spec[4200], key[96], rows_p[64], us_p[64], line[4096];
    db_for(b, "stop", url, sizeof url, spec, sizeof spec);
    new_key(key, sizeof key, "stop");
    snprintf(rows_p, sizeof rows_p, "rows=%lld", (long long)rows);
    snprintf(us_p, sizeof us_p, "item_us=%lld", (long long)item_us);
    const char *argv[] = {ratchet_bin, "--db", url, "run", "rowcopy", "--key",
                    key, "--param", rows_p, "--param", us_p, NULL};
    child c;
    /* Untimed: the first start seeds; stop it once the copy step began. */
    if (!spawn_until(&c, argv, "info", "step_done", "seed", NULL, line, sizeof line))
        die("stop: the seed step did not finish: %s", line);
    int code = term_and_wait(&c, NULL);
    if (code != 75) die("stop: preparation run exited %d, not 75", code);
    samples s = {0};
    for (int64_t t = 0; t < trials; t++) {
        if (!spawn_until(&c, argv, "info", "resume", NULL, NULL, line, sizeof line))
            die("stop: trial %lld did not resume: %s", (long long)t, line);
        /* Land anywhere inside a chunk (1000 items of item_us each). */
        sleep_ms(rng_uniform(20, 120));
        double ms;
        code = term_and_wait(&c, &ms);
        if (code != 75) die("stop: trial %lld exited %d, not 75", (long long)t, code);
        add(&s, ms);
    }
    db_drop(b, spec);
    char label[96], a[32], p[32], q[32], mx[32];
    fmt_num(a, sizeof a, percentile(&s, 50));
    fmt_num(p, sizeof p, percentile(&s, 99));
    fmt_num(q, sizeof q, smin(&s));
    fmt_num(mx, sizeof mx, smax(&s));
    snprintf(label, sizeof label, "stop: SIGTERM → exit, ms (n=%lld, item %lld µs)",
             (long long)trials, (long long)item_us);
    row_set(label, bi, 0, "p50 %s, p99 %s [%s–%s]", a, p, q, mx);
    note("%s stop: p50 %s ms, p99 %s ms, max %s ms", b->name, a, p, mx);
}

/*
 * A run of rowcopy over `rows` source rows whose copy step stands at cursor
 * `at`: let ratchet create the run and seed, stop it, then write by SQL the
 * state ratchet itself commits after copying `at` items (rowcopy_dst holds
 * ids 1..at; rt_run at step 2 'copy' with cursor_int = at).
 */
static void resume_state(const backend *b, const char *spec,
                         const char *const argv[], const char *key,
                         int64_t rows, int64_t at) {
    child c;
    char line[4096];
    if (!spawn_until(&c, argv, "info", "step_done", "seed", NULL, line, sizeof line))
        die("resume: the seed step did not finish: %s", line);
    int code = term_and_wait(&c, NULL);
    if (code != 75 && code != 0) die("resume: preparation run exited %d", code);
    db_sql(b, spec, "DELETE FROM rowcopy_dst", "");
    db_sql(b, spec,
           "INSERT INTO rowcopy_dst (id, payload) SELECT id, payload "
           "FROM rowcopy_src WHERE id <= $1 ORDER BY id",
           "i", at);
    int64_t n = db_sql(b, spec,
                       "UPDATE rt_run SET step_index = 1, step_name = 'copy', "
                       "cursor_int = $1, cursor_bytes = NULL, items = $1, "
                       "step_items = $1, step_total = $2, status = 'interrupted' "
                       "WHERE job = 'rowcopy' AND run_key = $3",
                       "iis", at, rows, key);
    if (n != 1) die("resume: run %s not found", key);
}

static void bench_resume(int bi) {
    const backend *b = &backends[bi];
    int64_t trials = benv(b, "RESUME_TRIALS", 20, 20, 1);
    int64_t near = benv(b, "RESUME_NEAR", 1000, 1000, 0);
    int64_t far = benv(b, "RESUME_FAR", 1000000, 1000000, 0);
    int64_t tail = trials * 50 + 100;
    int64_t rows = (far > near ? far : near) + tail;
    if (trials > MAX_SAMPLES) trials = MAX_SAMPLES;
    struct st {
        int64_t at;
        char url[4200], spec[4200], key[96], rows_p[64];
        const char *argv[12];
        samples to_resume, to_commit, base_resume, base_commit;
    } *s = calloc(2, sizeof *s);
    s[0].at = near;
    s[1].at = far;
    for (int i = 0; i < 2; i++) {
        db_for(b, "resume", s[i].url, sizeof s[i].url, s[i].spec, sizeof s[i].spec);
        new_key(s[i].key, sizeof s[i].key, "resume");
        snprintf(s[i].rows_p, sizeof s[i].rows_p, "rows=%lld", (long long)rows);
        const char *argv[] = {ratchet_bin, "--db", s[i].url, "run", "rowcopy",
                        "--key", s[i].key, "--param", s[i].rows_p,
                        "--chunk-items", "1", NULL};
        memcpy(s[i].argv, argv, sizeof argv);
        note("%s resume: building a run of %s rows at cursor %s", b->name,
             commas(rows), commas(s[i].at));
        resume_state(b, s[i].spec, s[i].argv, s[i].key, rows, s[i].at);
    }
    char line[4096];
    for (int64_t t = 0; t < trials; t++) {
        for (int i = 0; i < 2; i++) {
            /* A: the baseline opens the database, reads the run's row,
             * copies one item and commits. */
            child c;
            const char *argv_b[] = {b->baseline, "resume", s[i].spec, "rowcopy",
                                    s[i].key, NULL};
            child_spawn(&c, argv_b, "info");
            int got, seen = 0;
            int64_t t_resume = 0, t_commit = 0;
            while ((got = child_line(&c, line, sizeof line, 60000)) == 1) {
                if (!strncmp(line, "resumed", 7)) t_resume = now_ns(), seen |= 1;
                if (!strcmp(line, "committed")) t_commit = now_ns(), seen |= 2;
            }
            int code = child_wait(&c, NULL);
            child_close(&c);
            if (code != 0 || seen != 3) die("resume: baseline exited %d: %s", code, line);
            add(&s[i].base_resume, (double)(t_resume - c.spawned_ns) / 1e6);
            add(&s[i].base_commit, (double)(t_commit - c.spawned_ns) / 1e6);

            /* B: ratchet resumes the run, chunk 1. */
            int64_t items = -1;
            if (!spawn_until(&c, s[i].argv, "debug", "resume", NULL, &t_resume,
                             line, sizeof line))
                die("resume: no resume line: %s", line);
            json_int(line, "items", &items);
            if (items < s[i].at || items > s[i].at + tail)
                die("resume: resumed at %lld items, expected about %lld: %s",
                    (long long)items, (long long)s[i].at, line);
            while ((got = child_line(&c, line, sizeof line, 60000)) == 1)
                if (is_event(line, "commit")) break;
            if (got != 1) die("resume: no commit line");
            t_commit = now_ns();
            code = term_and_wait(&c, NULL);
            if (code != 75) die("resume: trial exited %d, not 75", code);
            add(&s[i].to_resume, (double)(t_resume - c.spawned_ns) / 1e6);
            add(&s[i].to_commit, (double)(t_commit - c.spawned_ns) / 1e6);
        }
    }
    for (int i = 0; i < 2; i++) {
        char label[96];
        snprintf(label, sizeof label, "resume at item %s: start → resume line, ms",
                 commas(s[i].at));
        row_pair(label, bi, &s[i].to_resume, &s[i].base_resume);
        snprintf(label, sizeof label, "resume at item %s: start → 1st commit, ms",
                 commas(s[i].at));
        row_pair(label, bi, &s[i].to_commit, &s[i].base_commit);
        note("%s resume at %s: first commit after %.2f ms (median), baseline "
             "%.2f ms", b->name, commas(s[i].at), median(&s[i].to_commit),
             median(&s[i].base_commit));
        db_drop(b, s[i].spec);
    }
    free(s);
}

/*
 * The floor under resume latency: fork to waitpid() of a process that only
 * starts and exits (`ratchet --version`; the baseline without arguments
 * prints its usage). Dynamic loading is most of it.
 */
static void bench_start(int bi) {
    const backend *b = &backends[bi];
    if (b->pg_url) return; /* backend-independent: measured once */
    int64_t trials = benv(b, "RESUME_TRIALS", 20, 20, 1);
    if (trials > MAX_SAMPLES) trials = MAX_SAMPLES;
    samples rt = {0}, base = {0};
    for (int64_t t = 0; t < trials; t++) {
        for (int k = 0; k < 2; k++) {
            const char *argv_b[] = {b->baseline, NULL};
            const char *argv_r[] = {ratchet_bin, "--version", NULL};
            if (k == 0 && !b->baseline) continue;
            child c;
            child_spawn(&c, k == 0 ? argv_b : argv_r, "info");
            free(slurp(c.out_fd));
            free(slurp(c.err_fd));
            child_wait(&c, NULL);
            add(k == 0 ? &base : &rt, (double)(now_ns() - c.spawned_ns) / 1e6);
            child_close(&c);
        }
    }
    row_pair("process start → exit, no work, ms", bi, &rt, &base);
}

static void bench_memory(int bi, const char *env, int64_t def_sqlite,
                         int64_t def_pg) {
    const backend *b = &backends[bi];
    int64_t rows = benv(b, env, def_sqlite, def_pg, 1);
    int64_t mreps = benv(b, "MEM_REPS", 2, 2, 1);
    samples rt = {0}, base = {0};
    for (int64_t r = 0; r < mreps; r++) {
        char url[4200], spec[4200];
        if (b->baseline) {
            db_for(b, "mem-base", url, sizeof url, spec, sizeof spec);
            baseline_result br = baseline_run(b, "copy", spec, rows, 1000);
            add(&base, (double)br.maxrss_kb / 1024);
            db_drop(b, spec);
        }
        db_for(b, "mem-ratchet", url, sizeof url, spec, sizeof spec);
        ratchet_result rr = ratchet_rowcopy(url, rows, 1000, false);
        add(&rt, (double)rr.maxrss_kb / 1024);
        db_drop(b, spec);
    }
    char label[96];
    snprintf(label, sizeof label, "peak RSS, whole run, %s, MiB",
             !strcmp(env, "MEM_SMALL") ? "small" : "big");
    size_note(bi, "; RSS %s run: %s rows", !strcmp(env, "MEM_SMALL") ? "small" : "big",
              commas(rows));
    row_pair(label, bi, &rt, &base);
    note("%s memory %s rows: ratchet %.1f MiB, baseline %.1f MiB", b->name,
         commas(rows), median(&rt), base.n ? median(&base) : 0.0);
}

/*
 * Takeover: a holder runs rowcopy (chunks of 100 items of item_us each); a
 * replica started with --if-running wait logs "waiting"; then SIGKILL the
 * holder and time, on the replica's stderr, its "takeover" line and its
 * first "commit" line. BENCH_TAKEOVER_TRIALS trials, each on a new key.
 */
static void bench_takeover(int bi) {
    const backend *b = &backends[bi];
    int64_t trials = benv(b, "TAKEOVER_TRIALS", 10, 10, 1);
    int64_t rows = benv(b, "TAKEOVER_ROWS", 200000, 200000, 1);
    int64_t item_us = benv(b, "TAKEOVER_ITEM_US", 50, 50, 0);
    if (trials > MAX_SAMPLES) trials = MAX_SAMPLES;
    char url[4200], spec[4200], rows_p[64], us_p[64], line[4096];
    db_for(b, "takeover", url, sizeof url, spec, sizeof spec);
    snprintf(rows_p, sizeof rows_p, "rows=%lld", (long long)rows);
    snprintf(us_p, sizeof us_p, "item_us=%lld", (long long)item_us);
    samples to_takeover = {0}, to_commit = {0};
    for (int64_t t = 0; t < trials; t++) {
        char key[96];
        new_key(key, sizeof key, "tk");
        const char *argv_h[] = {ratchet_bin, "--db", url, "run", "rowcopy",
                                "--key", key, "--param", rows_p, "--param",
                                us_p, "--chunk-items", "100", NULL};
        const char *argv_r[] = {ratchet_bin, "--db", url, "run", "rowcopy",
                                "--key", key, "--param", rows_p, "--param",
                                us_p, "--chunk-items", "100", "--if-running",
                                "wait", NULL};
        child holder, replica;
        /* The holder is in the copy step once it committed items. */
        child_spawn(&holder, argv_h, "debug");
        int got;
        int64_t items = 0;
        while ((got = child_line(&holder, line, sizeof line, 120000)) == 1)
            if (is_event(line, "commit") && json_int(line, "items", &items) &&
                items > 0)
                break;
        if (got != 1) die("takeover: the holder did not commit: %s", line);
        if (!spawn_until(&replica, argv_r, "debug", "waiting", NULL, NULL, line,
                         sizeof line))
            die("takeover: the replica did not wait: %s", line);
        int64_t t0 = now_ns();
        if (kill(holder.pid, SIGKILL)) die("kill: %s", strerror(errno));
        int64_t t_take = 0, t_commit = 0;
        while ((got = child_line(&replica, line, sizeof line, 60000)) == 1) {
            if (!t_take && is_event(line, "takeover")) t_take = now_ns();
            if (is_event(line, "commit")) {
                t_commit = now_ns();
                break;
            }
        }
        if (got != 1 || !t_take)
            die("takeover: the replica did not take over and commit: %s", line);
        add(&to_takeover, (double)(t_take - t0) / 1e6);
        add(&to_commit, (double)(t_commit - t0) / 1e6);
        child_wait(&holder, NULL);
        child_close(&holder);
        int code = term_and_wait(&replica, NULL);
        if (code != 75) die("takeover: the replica exited %d, not 75", code);
    }
    db_drop(b, spec);
    char label[96];
    snprintf(label, sizeof label, "takeover: SIGKILL → replica's takeover line, ms (n=%lld)",
             (long long)trials);
    row_pair(label, bi, &to_takeover, NULL);
    snprintf(label, sizeof label, "takeover: SIGKILL → replica's 1st commit, ms (n=%lld)",
             (long long)trials);
    row_pair(label, bi, &to_commit, NULL);
    note("%s takeover: first commit %.1f ms after SIGKILL (median)", b->name,
         median(&to_commit));
}

/* A connection of the bench's own to a backend's database, kept open. */
typedef struct dbconn {
    PGconn *pg;
    sqlite3 *db;
} dbconn;

static void dbc_open(const backend *b, const char *spec, dbconn *c) {
    c->pg = NULL;
    c->db = NULL;
    if (b->pg_url) {
        c->pg = PQconnectdb(spec);
        if (PQstatus(c->pg) != CONNECTION_OK) die("connect: %s", PQerrorMessage(c->pg));
        return;
    }
    if (sqlite3_open(spec, &c->db) != SQLITE_OK) die("open %s", spec);
    sqlite3_busy_timeout(c->db, 10000);
}

static void dbc_close(dbconn *c) {
    if (c->pg) PQfinish(c->pg);
    if (c->db) sqlite3_close(c->db);
    c->pg = NULL;
    c->db = NULL;
}

/*
 * The integers a query returns, row by row and column by column, into out
 * (at most cap); returns how many there were (all of them, also beyond cap).
 * NULL reads as 0.
 */
static int dbc_ints(dbconn *c, const char *sql, int64_t *out, int cap) {
    int n = 0;
    if (c->pg) {
        PGresult *res = PQexec(c->pg, sql);
        if (PQresultStatus(res) != PGRES_TUPLES_OK)
            die("%s: %s", sql, PQresultErrorMessage(res));
        for (int r = 0; r < PQntuples(res); r++)
            for (int k = 0; k < PQnfields(res); k++, n++)
                if (n < cap) out[n] = strtoll(PQgetvalue(res, r, k), NULL, 10);
        PQclear(res);
        return n;
    }
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(c->db, sql, -1, &st, NULL) != SQLITE_OK)
        die("%s: %s", sql, sqlite3_errmsg(c->db));
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        for (int k = 0; k < sqlite3_column_count(st); k++, n++)
            if (n < cap) out[n] = sqlite3_column_int64(st, k);
    if (rc != SQLITE_DONE) die("%s: %s", sql, sqlite3_errmsg(c->db));
    sqlite3_finalize(st);
    return n;
}

/* dbc_ints on a connection of its own. */
static int db_ints(const backend *b, const char *spec, const char *sql,
                   int64_t *out, int cap) {
    dbconn c;
    dbc_open(b, spec, &c);
    int n = dbc_ints(&c, sql, out, cap);
    dbc_close(&c);
    return n;
}

static int64_t wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Scheduling lateness: three daemons on one fresh database schedule the
 * built-in tick job every second (each slot is one run, keyed by the slot
 * time; the daemon whose insert created it starts it in a child process
 * 300 ms ahead, which waits for the slot). They are started 100 ms after a
 * wall-clock second, so the first slot is ~900 ms away (steady state, not a
 * daemon's start racing a slot), and stopped SCHEDULE_S seconds later, also
 * ~100 ms after a slot. Their logs are drained meanwhile (a full pipe would
 * block them) and misfire, slot_skipped and pick_up lines shown and counted
 * (none is expected: every slot's run is started by its creator). Lateness:
 * tick's start_ms (wall clock when its step began) - rt_run.slot_ms.
 */
static void bench_schedule(int bi) {
    const backend *b = &backends[bi];
    int64_t secs = benv(b, "SCHEDULE_S", 20, 20, 4);
    char url[4200], spec[4200], line[4096];
    db_for(b, "schedule", url, sizeof url, spec, sizeof spec);
    const char *argv[] = {ratchet_bin, "--db", url, "daemon", "--schedule",
                          "tick=* * * * * *", NULL};
    enum { NREP = 3 };
    child d[NREP];
    int misfire = 0, skipped = 0, pick_up = 0, errors = 0;
    char last_err[4096] = "";
    int64_t w = wall_ms();
    sleep_ms((double)((1100 - w % 1000) % 1000));
    note("%s schedule: 3 daemons, tick every second, %lld s", b->name,
         (long long)secs);
    for (int i = 0; i < NREP; i++) child_spawn(&d[i], argv, "info");
    int64_t end = now_ns() + secs * 1000000000;
    for (int64_t left; (left = (end - now_ns()) / 1000000) > 0;) {
        struct pollfd p[NREP];
        for (int i = 0; i < NREP; i++)
            p[i] = (struct pollfd){d[i].err_fd, POLLIN, 0};
        int r = poll(p, NREP, (int)left);
        if (r < 0 && errno != EINTR) die("poll: %s", strerror(errno));
        for (int i = 0; i < NREP && r > 0; i++) {
            if (!p[i].revents) continue;
            int got;
            while ((got = child_line(&d[i], line, sizeof line, 5)) == 1) {
                bool odd = true;
                if (is_event(line, "misfire")) misfire++;
                else if (is_event(line, "slot_skipped")) skipped++;
                else if (is_event(line, "pick_up")) pick_up++;
                else odd = false;
                if (odd) note("%s schedule: daemon %d: %s", b->name, i + 1, line);
                if (strstr(line, "\"level\":\"error\"")) {
                    errors++;
                    snprintf(last_err, sizeof last_err, "%s", line);
                }
            }
            if (got == 0) { /* stop the others: daemons do not end by themselves */
                for (int k = 0; k < NREP; k++) kill(d[k].pid, SIGTERM);
                die("schedule: daemon %d closed its stderr (exit code %d)", i + 1,
                    child_wait(&d[i], NULL));
            }
        }
    }
    for (int i = 0; i < NREP; i++)
        if (kill(d[i].pid, SIGTERM)) die("kill: %s", strerror(errno));
    for (int i = 0; i < NREP; i++) {
        int code = child_wait(&d[i], NULL);
        child_close(&d[i]);
        if (code != 0) die("schedule: daemon %d exited %d, not 0", i + 1, code);
    }
    if (errors) note("%s schedule: %d error line(s) from the daemons, last: %s",
                     b->name, errors, last_err);
    int64_t cnt[2];
    if (db_ints(b, spec, "SELECT count(*), count(DISTINCT run_key) FROM tick_log",
                cnt, 2) != 2)
        die("schedule: no counts from tick_log");
    if (cnt[0] != cnt[1])
        die("schedule: %lld tick_log rows but %lld distinct slots: a slot ran twice",
            (long long)cnt[0], (long long)cnt[1]);
    if (cnt[0] < secs - 3)
        die("schedule: %lld slots ran in %lld s, want at least %lld",
            (long long)cnt[0], (long long)secs, (long long)(secs - 3));
    static int64_t late[MAX_SAMPLES];
    int n = db_ints(b, spec,
                    "SELECT t.start_ms - r.slot_ms FROM tick_log t JOIN rt_run r "
                    "ON r.job = 'tick' AND r.run_key = t.run_key",
                    late, MAX_SAMPLES);
    if (n != cnt[0])
        die("schedule: %d of %lld tick_log rows have a run with a slot", n,
            (long long)cnt[0]);
    if (n > MAX_SAMPLES) n = MAX_SAMPLES;
    samples s = {0};
    for (int i = 0; i < n; i++) add(&s, (double)late[i]);
    db_drop(b, spec);
    /* Whole milliseconds: start_ms and slot_ms are integer ms. */
    char label[96];
    snprintf(label, sizeof label, "schedule: slot → step start, ms, 3 replicas (n=%d)", n);
    row_set(label, bi, 0, "p50 %.0f, p99 %.0f [%.0f–%.0f]", percentile(&s, 50),
            percentile(&s, 99), smin(&s), smax(&s));
    note("%s schedule: %d slots, lateness p50 %.0f ms, p99 %.0f ms, max %.0f ms; "
         "misfire %d, slot_skipped %d, pick_up %d lines", b->name, n,
         percentile(&s, 50), percentile(&s, 99), smax(&s), misfire, skipped, pick_up);
    if (verbose) {
        char all[4096] = "";
        for (int i = 0; i < n; i++)
            snprintf(all + strlen(all), sizeof all - strlen(all), " %lld",
                     (long long)late[i]);
        note("%s schedule: lateness ms:%s", b->name, all);
    }
}

/*
 * Queue throughput: QUEUE_RUNS queued runs of the built-in noop job (one
 * empty step, a lease per key, so runs spread over all workers) with
 * distinct keys on a fresh database, worked off by `ratchet worker
 * --concurrency 4` (RATCHET_LOG_LEVEL=warn: no lines per run), QUEUE_REPS
 * trials. The first run is enqueued by `ratchet enqueue` (which also creates
 * the schema); the others are copies of its row under other keys, inserted
 * by one SQL statement (one transaction), so the queue holds exactly what
 * enqueue writes without a process per run. The bench polls the number of
 * unfinished runs on a connection of its own, every 2 % of the time so far
 * (20-500 ms), and drains the pool's log meanwhile. Rate: QUEUE_RUNS ÷ (max(finished_ms) - min(started_ms)), the
 * database's clock from the first claim to the last completion; the second
 * row divides by the wall-clock span from spawning the pool to the poll that
 * saw no run left, so it includes the pool's start and up to one poll
 * interval. Then SIGTERM: the pool must exit 0, and every run must be done.
 * Runs that took more than one attempt are counted (in the notes).
 */
static void bench_queue(int bi) {
    const backend *b = &backends[bi];
    int64_t n = benv(b, "QUEUE_RUNS", 5000, 5000, 1);
    int64_t trials = benv(b, "QUEUE_REPS", 3, 3, 1);
    int64_t timeout_s = benv(b, "QUEUE_TIMEOUT_S", 900, 900, 1);
    if (trials > MAX_SAMPLES) trials = MAX_SAMPLES;
    samples rate = {0}, rate_wall = {0};
    int64_t retried_all = 0;
    char line[4096];
    note("%s queue: %lld no-op runs, 4 workers, %lld trials", b->name,
         (long long)n, (long long)trials);
    for (int64_t t = 0; t < trials; t++) {
        char url[4200], spec[4200];
        db_for(b, "queue", url, sizeof url, spec, sizeof spec);
        const char *argv_e[] = {ratchet_bin, "--db", url, "enqueue", "noop",
                                "--key", "k0", NULL};
        child c;
        child_spawn(&c, argv_e, "warn");
        char *out = slurp(c.out_fd);
        char *err = slurp(c.err_fd);
        int code = child_wait(&c, NULL);
        child_close(&c);
        if (code != 0) die("queue: ratchet enqueue exited %d: %s%s", code, out, err);
        free(out);
        free(err);
        if (n > 1)
            db_sql(b, spec,
                   "WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 "
                   "FROM g WHERE i < $1) INSERT INTO rt_run (job, run_key, "
                   "status, fingerprint, steps, step_index, step_name, queued, "
                   "priority, created_ms, updated_ms) SELECT r.job, 'k' || g.i, "
                   "r.status, r.fingerprint, r.steps, r.step_index, "
                   "r.step_name, r.queued, r.priority, r.created_ms, "
                   "r.updated_ms FROM rt_run r, g WHERE r.job = 'noop' AND "
                   "r.run_key = 'k0'",
                   "i", n - 1);
        dbconn q;
        dbc_open(b, spec, &q);
        int64_t v[5] = {0};
        dbc_ints(&q,
                 "SELECT count(DISTINCT run_key) FROM rt_run WHERE job = 'noop' "
                 "AND status = 'pending' AND queued = 1",
                 v, 1);
        if (v[0] != n)
            die("queue: %lld pending queued runs, want %lld", (long long)v[0],
                (long long)n);

        const char *argv_w[] = {ratchet_bin, "--db", url, "worker",
                                "--concurrency", "4", NULL};
        child w;
        int lines = 0;
        child_spawn(&w, argv_w, "warn");
        int64_t deadline = w.spawned_ns + timeout_s * 1000000000, t_done;
        for (;;) {
            /* Every 2 % of the time so far (20-500 ms): the wall-clock row
             * stays within ~2 %, and the bench's count costs the server
             * little CPU on a long trial. */
            int64_t every = (now_ns() - w.spawned_ns) / 50000000;
            every = every < 20 ? 20 : every > 500 ? 500 : every;
            struct pollfd p = {w.err_fd, POLLIN, 0};
            int r = poll(&p, 1, (int)every);
            if (r < 0 && errno != EINTR) die("poll: %s", strerror(errno));
            if (r > 0) {
                int got;
                while ((got = child_line(&w, line, sizeof line, 5)) == 1)
                    if (lines++ < 5) note("%s queue: worker: %s", b->name, line);
                if (got == 0)
                    die("queue: the worker pool closed its stderr (exit code %d)",
                        child_wait(&w, NULL));
            }
            dbc_ints(&q,
                     "SELECT count(*) FROM rt_run WHERE job = 'noop' AND "
                     "status IN ('pending', 'running', 'interrupted')",
                     v, 1);
            if (v[0] == 0) {
                t_done = now_ns();
                break;
            }
            if (now_ns() > deadline) {
                kill(w.pid, SIGTERM);
                die("queue: %lld of %lld runs still unfinished after %lld s",
                    (long long)v[0], (long long)n, (long long)timeout_s);
            }
        }
        code = term_and_wait(&w, NULL);
        if (code != 0) die("queue: the worker pool exited %d, not 0", code);
        if (dbc_ints(&q,
                     "SELECT sum(CASE WHEN status = 'done' THEN 1 ELSE 0 END), "
                     "max(finished_ms) - min(started_ms), sum(CASE WHEN attempt "
                     "> 1 THEN 1 ELSE 0 END), max(attempt), count(*) FROM rt_run "
                     "WHERE job = 'noop'",
                     v, 5) != 5)
            die("queue: no counts from rt_run");
        dbc_close(&q);
        db_drop(b, spec);
        if (v[0] != n || v[4] != n)
            die("queue: %lld of %lld runs done (%lld rows)", (long long)v[0],
                (long long)n, (long long)v[4]);
        int64_t span_ms = v[1] > 0 ? v[1] : 1;
        double wall_s = (double)(t_done - w.spawned_ns) / 1e9;
        add(&rate, (double)n * 1000 / (double)span_ms);
        add(&rate_wall, (double)n / wall_s);
        retried_all += v[2];
        note("%s queue: trial %lld: %lld runs in %lld ms (first start → last "
             "finish) = %.0f runs/s; %.2f s from spawn to all done = %.0f "
             "runs/s; %lld run(s) took more than one attempt (max attempt "
             "%lld); %d log line(s)",
             b->name, (long long)t + 1, (long long)n, (long long)span_ms,
             rate.v[rate.n - 1], wall_s, rate_wall.v[rate_wall.n - 1],
             (long long)v[2], (long long)v[3], lines);
    }
    char label[96];
    snprintf(label, sizeof label,
             "queue: no-op runs claimed and completed, runs/s, 4 workers (n=%s)",
             commas(n));
    row_pair(label, bi, &rate, NULL);
    snprintf(label, sizeof label, "queue: worker spawn → all done (wall), runs/s (n=%s)",
             commas(n));
    row_pair(label, bi, &rate_wall, NULL);
    size_note(bi, "%squeue: %lld trials", sizes[bi][0] ? "; " : "",
              (long long)trials);
    note("%s queue: %.0f runs/s (median of %lld), %lld run(s) retried in all",
         b->name, median(&rate), (long long)trials, (long long)retried_all);
}

/* ------------------------------------------------------------ main */

/* BENCH_PARTS=copy,stop,resume,takeover,memory,queue,schedule (default: all). */
static bool part(const char *name) {
    const char *p = getenv("BENCH_PARTS");
    if (!p || !*p) return true;
    size_t n = strlen(name);
    for (const char *q = p; (q = strstr(q, name)) != NULL; q += n)
        if ((q == p || q[-1] == ',') && (q[n] == ',' || q[n] == '\0')) return true;
    return false;
}

/* The three load averages from /proc/loadavg ("1.05 0.37 0.14"). */
static void loadavg(char *out, size_t n) {
    FILE *f = fopen("/proc/loadavg", "r");
    if (!f) return;
    double a, b, c;
    if (fscanf(f, "%lf %lf %lf", &a, &b, &c) == 3)
        snprintf(out, n, "%.2f/%.2f/%.2f", a, b, c);
    fclose(f);
}

static void cleanup(void) {
    if (scratch_made) rmdir(scratch);
}

static void print_table(void) {
    int w0 = width("measurement");
    for (int i = 0; i < ntable; i++)
        if (width(table[i].label) > w0) w0 = width(table[i].label);
    static const char *const heads[3] = {"ratchet", "baseline", "cost ratio"};
    int w[MAX_BACKENDS][3];
    char head[MAX_BACKENDS][3][64];
    for (int b = 0; b < nbackends; b++)
        for (int k = 0; k < 3; k++) {
            snprintf(head[b][k], sizeof head[b][k], "%s %s", backends[b].name, heads[k]);
            w[b][k] = width(head[b][k]);
            for (int i = 0; i < ntable; i++)
                if (width(table[i].cell[b][k]) > w[b][k]) w[b][k] = width(table[i].cell[b][k]);
        }
    printf("| ");
    pad("measurement", w0);
    for (int b = 0; b < nbackends; b++)
        for (int k = 0; k < 3; k++) {
            printf(" | ");
            pad(head[b][k], w[b][k]);
        }
    printf(" |\n|");
    for (int i = 0; i < w0 + 2; i++) putchar('-');
    for (int b = 0; b < nbackends; b++)
        for (int k = 0; k < 3; k++) {
            printf("|");
            for (int i = 0; i < w[b][k] + 2; i++) putchar('-');
        }
    printf("|\n");
    for (int r = 0; r < ntable; r++) {
        printf("| ");
        pad(table[r].label, w0);
        for (int b = 0; b < nbackends; b++)
            for (int k = 0; k < 3; k++) {
                printf(" | ");
                pad(table[r].cell[b][k], w[b][k]);
            }
        printf(" |\n");
    }
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: bench RATCHET_BIN BASELINE_SQLITE_BIN BASELINE_PG_BIN\n");
        return 2;
    }
    ratchet_bin = argv[1];
    baseline_sqlite_bin = argv[2];
    baseline_pg_bin = argv[3];
    for (int i = 1; i < 4; i++)
        if (access(argv[i], X_OK)) die("%s is not executable", argv[i]);
    signal(SIGPIPE, SIG_IGN);
    reps = env_int("BENCH_REPS", 5, 1);
    verbose = env_int("BENCH_VERBOSE", 0, 0) != 0;
    if (reps > MAX_SAMPLES) reps = MAX_SAMPLES;

    const char *dir = getenv("BENCH_DIR");
    if (dir && *dir) {
        snprintf(scratch, sizeof scratch, "%s", dir);
        mkdir(scratch, 0700);
    } else {
        const char *tmp = getenv("TMPDIR");
        snprintf(scratch, sizeof scratch, "%s/ratchet-bench.XXXXXX",
                 tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(scratch)) die("mkdtemp %s: %s", scratch, strerror(errno));
        scratch_made = true;
    }
    atexit(cleanup);

    backends[nbackends++] = (backend){"sqlite", "SQLITE", NULL, baseline_sqlite_bin};
    const char *pg = getenv("BENCH_PG_URL");
    if (pg && *pg) backends[nbackends++] = (backend){"postgres", "PG", pg, baseline_pg_bin};
    /* BENCH_ONLY=sqlite|postgres: one backend's column only. */
    const char *only = getenv("BENCH_ONLY");

    char load0[128] = "?", load1[128] = "?";
    loadavg(load0, sizeof load0);
    int64_t t0 = now_ns();
    for (int b = 0; b < nbackends; b++) {
        if (only && *only && strcmp(only, backends[b].name)) continue;
        note("backend %s (%s)", backends[b].name,
             backends[b].pg_url ? "a database per run" : scratch);
        if (part("copy")) {
            bench_fsync(b);
            bench_copy(b, 1, "ROWS_C1", 3000, 3000, false);
            bench_copy(b, 100, "ROWS_C100", 300000, 60000, false);
            bench_copy(b, 1000, "ROWS_C1000", 1000000, 100000, false);
            /* PostgreSQL only; pipelined runs are ~5-10x faster at chunk
             * >= 100, hence more rows. */
            bench_copy(b, 1, "ROWS_P1", 0, 3000, true);
            bench_copy(b, 100, "ROWS_P100", 0, 300000, true);
            bench_copy(b, 1000, "ROWS_P1000", 0, 500000, true);
            bench_copy_cpu_rows();
        }
        if (part("stop")) bench_stop(b);
        if (part("resume")) {
            bench_resume(b);
            bench_start(b);
        }
        if (part("takeover")) bench_takeover(b);
        if (part("memory")) {
            bench_memory(b, "MEM_SMALL", 100000, 100000);
            bench_memory(b, "MEM_BIG", 10000000, 1000000);
        }
        if (part("queue")) bench_queue(b);
        if (part("schedule")) bench_schedule(b);
    }
    loadavg(load1, sizeof load1);
    print_table();
    printf("\n");
    for (int b = 0; b < nbackends; b++)
        if (sizes[b][0]) printf("%s sizes: %s.\n", backends[b].name, sizes[b]);
    printf("\nmedian [min–max]; throughput: %lld runs per cell, baseline and "
           "ratchet alternating (A B A B ...);\nstop, schedule: nearest-rank "
           "percentiles [min–max]; resume: baseline and ratchet interleaved.\n"
           "cost ratio: ratchet's time, ms or MiB ÷ the baseline's (for items/s:"
           " baseline ÷ ratchet); above 1 = ratchet costs more.\n"
           "%ld CPUs, load average %s at start, %s at end; %.0f s in all.\n",
           (long long)reps, sysconf(_SC_NPROCESSORS_ONLN), load0, load1,
           (double)(now_ns() - t0) / 1e9);
    if (pg_admin) PQfinish(pg_admin);
    return 0;
}
