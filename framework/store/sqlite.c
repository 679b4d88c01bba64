/*
 * sqlite.c — the SQLite backend, the embedded default.
 *
 * URL: sqlite:PATH[?synchronous=full|normal|off&busy_timeout=MS].
 * The database runs in WAL mode with synchronous=FULL by default, so a
 * committed checkpoint survives power loss; step transactions use BEGIN
 * IMMEDIATE so a step never discovers half-way that another writer holds the
 * lock. The file is created 0600 before SQLite opens it; SQLite gives the
 * -wal and -shm files the same mode.
 *
 * Liveness locks (see store.h) are open-file-description locks on bytes of
 * PATH-ratchet.lock: released by the kernel when the process dies, and, unlike
 * classic fcntl locks, exclusive between two descriptors of one process.
 *
 * Waiting for the write lock is our own busy handler: it backs off up to the
 * busy timeout and gives up at once when a stop was requested, so a busy
 * database never delays a stop.
 *
 * SQLite has no queue for its write lock: a runner that commits a chunk and
 * begins the next at once would starve every other writer (another job, a
 * second key) until their busy timeout. So ratchet's writers also pass a
 * turnstile on the lock file: a write transaction holds the TURN byte; a
 * writer that finds it taken read-locks the WAITING byte while it polls for
 * TURN; and a writer that releases TURN while WAITING is locked pauses (up
 * to 100 ms) until a waiter has taken it. Chunks of different runs then
 * alternate.
 */
#define _GNU_SOURCE /* F_OFD_SETLK */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store/store.h"
#include "store/failpoint.h"

typedef struct sqlite_stmt {
    rt_stmt base;
    sqlite3_stmt *st;
    int nmap;
    int *map; /* $N -> SQLite parameter index */
    /* Our copy of each bound text/blob ($N), reused from bind to bind so
     * binding copies without a malloc and SQLite binds it as static. */
    char **copy;
    size_t *copy_cap;
    const char *key_ptr; /* where the text was last passed: tried first */
    char *sql;
    /*
     * Bindings are cleared lazily: preparing again (or rt_reset) only marks
     * the parameters that hold a value as stale, and the next step binds
     * NULL to those not bound anew. A loop that rebinds every parameter
     * then never pays for sqlite3_clear_bindings. Bit N-1 is $N; a
     * statement of more than SQLITE_LAZY_PARAMS parameters is cleared at
     * once instead.
     */
    uint64_t held;  /* parameters bound since they were last cleared */
    uint64_t stale; /* of those, the ones to clear before the next step */
} sqlite_stmt;

#define SQLITE_LAZY_PARAMS 64

typedef struct sqlite_store {
    rt_store base;
    sqlite3 *db;
    char *path;      /* the database file, for the lock file beside it */
    int lock_fd;     /* PATH-ratchet.lock, opened on first use; -1 */
    int busy_timeout_ms;
    bool turn_held;  /* this connection holds the turnstile (see top) */
    bool no_wait;    /* one attempt at the write lock, no busy waiting */
    int sync;        /* synchronous: 0 OFF, 1 NORMAL, 2 FULL */
    bool sync_lax;   /* this transaction runs NORMAL: FULL again after it */
    sqlite_stmt **stmts;
    int nstmts, capstmts;
} sqlite_store;

static bool sqlite_accepts(const char *url) {
    return strncmp(url, "sqlite:", 7) == 0;
}

/*
 * A write failed for want of space: SQLITE_FULL, or an I/O error whose
 * system call said ENOSPC/EDQUOT (growing the -shm file or the WAL's first
 * frames on a full disk report SQLITE_IOERR_*, not SQLITE_FULL).
 */
static bool sqlite_disk_full(sqlite3 *db, int native) {
    if ((native & 0xff) == SQLITE_FULL) return true;
    if ((native & 0xff) != SQLITE_IOERR || !db) return false;
    int e = sqlite3_system_errno(db);
    return e == ENOSPC || e == EDQUOT;
}

static int sqlite_map_rc(sqlite_store *s, int native) {
    const char *msg = s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(native);
    if (sqlite_disk_full(s->db, native)) {
        /* Name the condition and the file: "database or disk is full"
         * alone does not say which disk. Temporary: exit 75, resume. */
        s->base.disk_full = true;
        int e = sqlite3_system_errno(s->db);
        return rt__store_fail(&s->base, RT_DBERR,
                              "disk full: cannot write %s (sqlite: %s%s%s)",
                              s->path ? s->path : s->base.url_display, msg,
                              e ? ": " : "", e ? strerror(e) : "");
    }
    switch (native & 0xff) {
    case SQLITE_OK: return RT_OK;
    case SQLITE_ROW: return RT_ROW;
    case SQLITE_DONE: return RT_DONE;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return rt__store_fail(&s->base, RT_BUSY, "database is busy (%s)", msg);
    case SQLITE_INTERRUPT:
        return rt__store_fail(&s->base, RT_STOPPED, "interrupted (%s)", msg);
    case SQLITE_NOMEM:
        return rt__store_fail(&s->base, RT_NOMEM, "out of memory");
    case SQLITE_ERROR:      /* a syntax error, no such table ... */
    case SQLITE_CONSTRAINT: /* UNIQUE, NOT NULL, CHECK, FOREIGN KEY */
    case SQLITE_MISMATCH:
    case SQLITE_RANGE:
    case SQLITE_TOOBIG:
    case SQLITE_AUTH:
        /* The statement itself is wrong: again, it fails again. */
        rt__store_fail(&s->base, RT_DBERR, "sqlite: %s", msg);
        s->base.refused = true;
        return RT_DBERR;
    default: /* I/O errors and the like: the file's trouble, not the SQL's */
        return rt__store_fail(&s->base, RT_DBERR, "sqlite: %s", msg);
    }
}

/* Backs off 1, 2, 4 ... 50 ms until the timeout; gives up on a stop. */
static int sqlite_busy(void *arg, int count) {
    sqlite_store *s = arg;
    if ((rt__store_stop_requested() && !s->base.finishing) || s->no_wait) return 0;
    static const int delays[] = {1, 2, 5, 10, 15, 20, 25, 25, 25, 50};
    int n = (int)(sizeof delays / sizeof *delays);
    int waited = 0;
    for (int i = 0; i < count; i++) waited += delays[i < n ? i : n - 1];
    if (waited >= s->busy_timeout_ms) return 0;
    int ms = delays[count < n ? count : n - 1];
    struct timespec ts = {0, (long)ms * 1000000};
    nanosleep(&ts, NULL);
    return 1;
}

static void sqlite_now_ms(sqlite3_context *c, int argc, sqlite3_value **argv) {
    (void)argc;
    (void)argv;
    sqlite3_result_int64(c, rt__wall_ms());
}

int rt__sqlite_parse_url(const char *url, char **path, int *sync,
                         int *busy_ms, char *err, size_t errlen) {
    const char *rest = url + 7;
    if (strncmp(rest, "//", 2) == 0) rest += 2; /* sqlite://PATH */
    const char *q = strchr(rest, '?');
    size_t plen = q ? (size_t)(q - rest) : strlen(rest);
    if (plen == 0) {
        snprintf(err, errlen, "database URL '%s' has no path (sqlite:PATH)",
                 url);
        return RT_INVALID;
    }
    *path = rt__xstrndup(rest, plen);
    *sync = 2;
    *busy_ms = 5000;
    while (q && *q) {
        const char *opt = q + 1;
        const char *amp = strchr(opt, '&');
        size_t olen = amp ? (size_t)(amp - opt) : strlen(opt);
        char buf[128], shown[128];
        snprintf(buf, sizeof buf, "%.*s", (int)(olen < 127 ? olen : 127), opt);
        memcpy(shown, buf, sizeof shown);
        char *eq = strchr(buf, '=');
        int64_t n;
        if (eq) *eq++ = '\0';
        if (eq && !strcmp(buf, "synchronous") &&
            (!strcmp(eq, "full") || !strcmp(eq, "normal") ||
             !strcmp(eq, "off"))) {
            *sync = !strcmp(eq, "full") ? 2 : !strcmp(eq, "normal") ? 1 : 0;
        } else if (eq && !strcmp(buf, "busy_timeout") &&
                   rt__parse_int64(eq, &n) && n >= 0 && n <= 3600000) {
            *busy_ms = (int)n;
        } else {
            snprintf(err, errlen,
                     "bad option '%s' in database URL (known: "
                     "synchronous=full|normal|off, busy_timeout=MS)",
                     shown);
            free(*path);
            *path = NULL;
            return RT_INVALID;
        }
        q = amp;
    }
    return RT_OK;
}

static void sqlite_close(rt_store *base);

/*
 * SQLite's memory statistics (SQLITE_CONFIG_MEMSTATUS, on by default) take a
 * global mutex on every allocation. A ratchet process has a second thread
 * (the lease heartbeat), and glibc then makes every lock an atomic
 * operation: measured, 10 % of rowcopy's CPU time at chunk 1000 went to it
 * (docs/BENCHMARKS.md). Nothing here reads those statistics, so turn them
 * off — when SQLite is not initialised yet; an embedding program that
 * already uses SQLite keeps its settings (sqlite3_config then refuses).
 */
static void sqlite_config_once(void) {
    (void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

static int sqlite_open(const char *url, rt_store **out, char *err,
                       size_t errlen) {
    static pthread_once_t config_once = PTHREAD_ONCE_INIT;
    pthread_once(&config_once, sqlite_config_once);
    char *path = NULL;
    int sync, busy_ms;
    int rc = rt__sqlite_parse_url(url, &path, &sync, &busy_ms, err, errlen);
    if (rc != RT_OK) return rc;

    if (strcmp(path, ":memory:") != 0) {
        /*
         * Create a new file 0600 ourselves (SQLite would use 0644 & ~umask;
         * its -wal and -shm copy the database's mode). Never open and close
         * an existing one: closing any descriptor of the file drops every
         * POSIX lock this process holds on it, including those of another
         * connection here (the lease's), and a process that then thinks it
         * is the last user checkpoints and deletes the WAL under us.
         */
        int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd >= 0) {
            close(fd);
        } else if (errno != EEXIST) {
            snprintf(err, errlen, "cannot open database %s: %s", url,
                     strerror(errno));
            free(path);
            return RT_INVALID;
        }
    }
    sqlite_store *s = rt__xcalloc(1, sizeof *s);
    s->base.ops = &rt__sqlite_ops;
    s->base.url_display = rt__xstrdup(url);
    s->base.single_writer = true;
    s->base.in_process = true;
    s->base.fast_takeover = strcmp(path, ":memory:") != 0;
    s->busy_timeout_ms = busy_ms;
    s->sync = sync;
    s->path = path;
    s->lock_fd = -1;
    int native = sqlite3_open_v2(path, &s->db,
                                 SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                                     SQLITE_OPEN_NOMUTEX,
                                 NULL);
    if (native != SQLITE_OK) {
        snprintf(err, errlen, "cannot open database %s: %s", url,
                 s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(native));
        sqlite_close(&s->base);
        return RT_INVALID;
    }
    sqlite3_extended_result_codes(s->db, 1);
    sqlite3_busy_handler(s->db, sqlite_busy, s);
    sqlite3_create_function(s->db, "rt_now_ms", 0, SQLITE_UTF8, NULL,
                            sqlite_now_ms, NULL, NULL);
    static const char *const sync_sql[] = {"PRAGMA synchronous=OFF",
                                           "PRAGMA synchronous=NORMAL",
                                           "PRAGMA synchronous=FULL"};
    char *emsg = NULL;
    native = sqlite3_exec(s->db, "PRAGMA journal_mode=WAL", NULL, NULL, &emsg);
    /* Switching a new database to WAL takes an exclusive lock, and SQLite
     * answers BUSY at once, without the busy handler, where waiting could
     * deadlock (processes racing to create one database): try again, as
     * long as a busy database is waited for. */
    for (int waited = 0, ms = 1; (native & 0xff) == SQLITE_BUSY &&
                                 !rt__store_stop_requested() && waited < busy_ms;
         waited += ms, ms = ms < 32 ? ms * 2 : ms) {
        sqlite3_free(emsg);
        emsg = NULL;
        struct timespec ts = {0, (long)ms * 1000000};
        nanosleep(&ts, NULL);
        native = sqlite3_exec(s->db, "PRAGMA journal_mode=WAL", NULL, NULL, &emsg);
    }
    if (native != SQLITE_OK ||
        (native = sqlite3_exec(s->db, sync_sql[sync], NULL, NULL, &emsg)) !=
            SQLITE_OK ||
        (native = sqlite3_exec(s->db, "PRAGMA foreign_keys=ON", NULL, NULL,
                               &emsg)) != SQLITE_OK) {
        /* A new database on a full disk fails here, writing its first
         * page: temporary (RT_BUSY, exit 75), not a configuration error. */
        bool full = sqlite_disk_full(s->db, native);
        const char *detail = emsg ? emsg : sqlite3_errmsg(s->db);
        if (full)
            snprintf(err, errlen,
                     "cannot use database %s: disk full: cannot write %s "
                     "(sqlite: %s)",
                     url, path, detail);
        else
            snprintf(err, errlen, "cannot use database %s: %s", url, detail);
        sqlite3_free(emsg);
        sqlite_close(&s->base);
        return full ? RT_BUSY : RT_INVALID;
    }
    *out = &s->base;
    return RT_OK;
}

static int sqlite_wrap(void *handle, rt_store **out) {
    sqlite_store *s = rt__xcalloc(1, sizeof *s);
    s->base.ops = &rt__sqlite_ops;
    s->base.url_display = rt__xstrdup("sqlite:(the caller's connection)");
    s->base.single_writer = true;
    s->base.in_process = true;
    s->base.borrowed = true;
    s->busy_timeout_ms = 5000;
    s->lock_fd = -1;
    s->db = handle;
    sqlite3_extended_result_codes(s->db, 1);
    /* ratchet's SQL calls rt_now_ms(): define it on this connection. */
    sqlite3_create_function(s->db, "rt_now_ms", 0, SQLITE_UTF8, NULL,
                            sqlite_now_ms, NULL, NULL);
    *out = &s->base;
    return RT_OK;
}

static void sqlite_close(rt_store *base) {
    if (!base) return;
    sqlite_store *s = (sqlite_store *)base;
    for (int i = 0; i < s->nstmts; i++) {
        sqlite3_finalize(s->stmts[i]->st);
        free(s->stmts[i]->map);
        for (int k = 0; k <= s->stmts[i]->nmap; k++) free(s->stmts[i]->copy[k]);
        free(s->stmts[i]->copy);
        free(s->stmts[i]->copy_cap);
        free(s->stmts[i]->sql);
        free(s->stmts[i]);
    }
    free(s->stmts);
    /* Stopping against a deadline: leave the WAL for the next open to fold
     * in rather than checkpointing it now (tens of ms on a large WAL). */
    if (rt__store_stop_requested() && s->db && !s->base.borrowed)
        sqlite3_db_config(s->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
    if (!s->base.borrowed) sqlite3_close_v2(s->db);
    if (s->lock_fd >= 0) close(s->lock_fd);
    free(s->path);
    free(s->base.url_display);
    free(s);
}

static int sqlite_exec_script(rt_store *base, const char *sql) {
    RT_FAILPOINT_EXEC(base); /* test builds */
    sqlite_store *s = (sqlite_store *)base;
    char *emsg = NULL;
    int native = sqlite3_exec(s->db, sql, NULL, NULL, &emsg);
    if (native == SQLITE_OK) return RT_OK;
    int rc = sqlite_map_rc(s, native);
    if (emsg && !sqlite_disk_full(s->db, native))
        rt__store_fail(base, rc, "sqlite: %s", emsg);
    sqlite3_free(emsg);
    return rc;
}

/*
 * The cached statement of this text. A pointer seen before is tried first,
 * but the text decides: a buffer may hold another text by now. A hit moves
 * to the front, so a loop's statements are found after a compare or two.
 */
static sqlite_stmt *sqlite_cache_find(sqlite_store *s, const char *sql) {
    int at = -1;
    for (int i = 0; i < s->nstmts && at < 0; i++)
        if (s->stmts[i]->key_ptr == sql && !strcmp(s->stmts[i]->sql, sql))
            at = i;
    for (int i = 0; i < s->nstmts && at < 0; i++)
        if (!strcmp(s->stmts[i]->sql, sql)) at = i;
    if (at < 0) return NULL;
    sqlite_stmt *c = s->stmts[at];
    c->key_ptr = sql;
    if (at > 0) {
        memmove(s->stmts + 1, s->stmts, sizeof *s->stmts * (size_t)at);
        s->stmts[0] = c;
    }
    return c;
}

/* Clear the bindings: at once for a statement of many parameters, else
 * lazily (see sqlite_stmt). */
static void sqlite_clear_bindings(sqlite_stmt *c) {
    if (c->nmap > SQLITE_LAZY_PARAMS) {
        sqlite3_clear_bindings(c->st);
        c->held = 0;
    }
    c->stale = c->held;
}

/* Before a step: NULL into the parameters cleared lazily. */
static int sqlite_bind_stale(sqlite_stmt *c) {
    for (int idx = 1; c->stale; idx++) {
        uint64_t bit = (uint64_t)1 << (idx - 1);
        if (!(c->stale & bit)) continue;
        int native = sqlite3_bind_null(c->st, c->map[idx]);
        if (native != SQLITE_OK) return native;
        c->stale &= ~bit;
        c->held &= ~bit;
    }
    return SQLITE_OK;
}

static int sqlite_prepare(rt_store *base, const char *sql, rt_stmt **out) {
    sqlite_store *s = (sqlite_store *)base;
    sqlite_stmt *c = sqlite_cache_find(s, sql);
    if (c) {
        /* sqlite_step resets a statement when it ends, so only one left
         * reading rows needs it. */
        if (sqlite3_stmt_busy(c->st)) sqlite3_reset(c->st);
        sqlite_clear_bindings(c);
        *out = &c->base;
        return RT_OK;
    }
    sqlite3_stmt *st;
    int native = sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT,
                                    &st, NULL);
    if (native != SQLITE_OK) return sqlite_map_rc(s, native);
    if (!st) return rt__store_fail(base, RT_MISUSE, "empty SQL statement");
    c = rt__xcalloc(1, sizeof *c);
    c->base.store = base;
    c->st = st;
    c->sql = rt__xstrdup(sql);
    c->base.sql = c->sql;
    c->key_ptr = sql;
    int count = sqlite3_bind_parameter_count(st);
    c->nmap = count;
    c->map = rt__xcalloc((size_t)count + 1, sizeof *c->map);
    c->copy = rt__xcalloc((size_t)count + 1, sizeof *c->copy);
    c->copy_cap = rt__xcalloc((size_t)count + 1, sizeof *c->copy_cap);
    for (int i = 1; i <= count; i++) {
        char name[16];
        snprintf(name, sizeof name, "$%d", i);
        int idx = sqlite3_bind_parameter_index(st, name);
        c->map[i] = idx ? idx : i;
    }
    if (s->nstmts == s->capstmts) {
        s->capstmts = s->capstmts ? s->capstmts * 2 : 16;
        s->stmts = rt__xrealloc(s->stmts, sizeof *s->stmts * (size_t)s->capstmts);
    }
    s->stmts[s->nstmts++] = c;
    *out = &c->base;
    return RT_OK;
}

static int sqlite_bind(rt_stmt *base, int idx, const rt_value *v) {
    sqlite_stmt *c = (sqlite_stmt *)base;
    sqlite_store *s = (sqlite_store *)base->store;
    if (idx < 1 || idx > c->nmap)
        return rt__store_fail(base->store, RT_MISUSE,
                              "parameter $%d out of range (statement has %d)",
                              idx, c->nmap);
    /* SQLite refuses it too; checked first, as the statement may still
     * be reading our copy of the previous value. */
    if (sqlite3_stmt_busy(c->st))
        return rt__store_fail(base->store, RT_MISUSE,
                              "bind on a statement that is still running "
                              "(rt_reset it first)");
    int at = c->map[idx], native;
    if (idx <= SQLITE_LAZY_PARAMS) {
        uint64_t bit = (uint64_t)1 << (idx - 1);
        c->held |= bit;
        c->stale &= ~bit;
    }
    switch (v->type) {
    case RT_TNULL: native = sqlite3_bind_null(c->st, at); break;
    case RT_TINT: native = sqlite3_bind_int64(c->st, at, v->u.i); break;
    case RT_TREAL: native = sqlite3_bind_double(c->st, at, v->u.d); break;
    case RT_TTEXT:
        if (v->u.b.p == NULL) {
            native = sqlite3_bind_null(c->st, at);
            break;
        }
        /* fall through */
    case RT_TBLOB: {
        size_t n = v->type == RT_TTEXT && v->u.b.n == (size_t)-1
                       ? strlen(v->u.b.p)
                       : v->u.b.n;
        if (n + 1 > c->copy_cap[idx]) {
            free(c->copy[idx]);
            c->copy_cap[idx] = n + 1 > 64 ? n + 1 : 64;
            c->copy[idx] = rt__xmalloc(c->copy_cap[idx]);
        }
        if (n) memcpy(c->copy[idx], v->u.b.p, n);
        c->copy[idx][n] = '\0';
        native = v->type == RT_TTEXT
                     ? sqlite3_bind_text64(c->st, at, c->copy[idx], n,
                                           SQLITE_STATIC, SQLITE_UTF8)
                     : sqlite3_bind_blob64(c->st, at, c->copy[idx], n,
                                           SQLITE_STATIC);
        break;
    }
    default:
        return rt__store_fail(base->store, RT_MISUSE, "bad value type %d",
                              (int)v->type);
    }
    return native == SQLITE_OK ? RT_OK : sqlite_map_rc(s, native);
}

static int sqlite_step_now(rt_stmt *base) {
    sqlite_stmt *c = (sqlite_stmt *)base;
    int native = c->stale ? sqlite_bind_stale(c) : SQLITE_OK;
    if (native == SQLITE_OK) native = sqlite3_step(c->st);
    if (native == SQLITE_ROW) return RT_ROW;
    int rc = native == SQLITE_DONE ? RT_DONE
                                   : sqlite_map_rc((sqlite_store *)base->store,
                                                   native);
    /* Reset now so a finished statement holds no read snapshot. */
    sqlite3_reset(c->st);
    return rc;
}

/* A statement's step; sqlite_run_simple's BEGIN, COMMIT and ROLLBACK skip
 * the exec failpoint (test builds): they have seams of their own. */
static int sqlite_step(rt_stmt *base) {
    RT_FAILPOINT_EXEC(base->store);
    return sqlite_step_now(base);
}

static int sqlite_reset(rt_stmt *base) {
    sqlite_stmt *c = (sqlite_stmt *)base;
    sqlite3_reset(c->st);
    sqlite_clear_bindings(c);
    return RT_OK;
}

static int sqlite_column_count(rt_stmt *base) {
    return sqlite3_column_count(((sqlite_stmt *)base)->st);
}

static rt_type sqlite_column_type(rt_stmt *base, int col) {
    switch (sqlite3_column_type(((sqlite_stmt *)base)->st, col)) {
    case SQLITE_INTEGER: return RT_TINT;
    case SQLITE_FLOAT: return RT_TREAL;
    case SQLITE_TEXT: return RT_TTEXT;
    case SQLITE_BLOB: return RT_TBLOB;
    default: return RT_TNULL;
    }
}

static int64_t sqlite_column_int64(rt_stmt *base, int col) {
    return sqlite3_column_int64(((sqlite_stmt *)base)->st, col);
}

static double sqlite_column_double(rt_stmt *base, int col) {
    return sqlite3_column_double(((sqlite_stmt *)base)->st, col);
}

static const char *sqlite_column_text(rt_stmt *base, int col) {
    return (const char *)sqlite3_column_text(((sqlite_stmt *)base)->st, col);
}

static const void *sqlite_column_blob(rt_stmt *base, int col, size_t *len) {
    sqlite3_stmt *st = ((sqlite_stmt *)base)->st;
    const void *p = sqlite3_column_blob(st, col);
    if (len) *len = (size_t)sqlite3_column_bytes(st, col);
    return p;
}

static int64_t sqlite_changes(rt_store *base) {
    return sqlite3_changes64(((sqlite_store *)base)->db);
}

static int sqlite_run_simple(sqlite_store *s, const char *sql) {
    rt_stmt *st;
    int rc = sqlite_prepare(&s->base, sql, &st);
    if (rc != RT_OK) return rc;
    rc = sqlite_step_now(st);
    return rc == RT_DONE ? RT_OK : rc;
}

static void sqlite_turn_release(sqlite_store *s);

/* After a lax transaction (sqlite_lax_transaction): durable commits again. */
static void sqlite_sync_restore(sqlite_store *s) {
    if (!s->sync_lax || !sqlite3_get_autocommit(s->db)) return;
    s->sync_lax = false;
    (void)sqlite3_exec(s->db, "PRAGMA synchronous=FULL", NULL, NULL, NULL);
}

static int sqlite_commit(rt_store *base) {
    sqlite_store *s = (sqlite_store *)base;
    int rc = sqlite_run_simple(s, "COMMIT");
    sqlite_turn_release(s); /* a failed COMMIT keeps it until the rollback */
    sqlite_sync_restore(s);
    return rc;
}

static int sqlite_rollback(rt_store *base) {
    sqlite_store *s = (sqlite_store *)base;
    /* An interrupt or I/O error may already have rolled it back. */
    int rc = RT_OK;
    if (!sqlite3_get_autocommit(s->db)) {
        rc = sqlite_run_simple(s, "ROLLBACK");
        if (rc != RT_OK && !sqlite3_get_autocommit(s->db)) {
            /* Statements still reading block the rollback: reset them. */
            for (int i = 0; i < s->nstmts; i++) sqlite3_reset(s->stmts[i]->st);
            rc = sqlite_run_simple(s, "ROLLBACK");
        }
    }
    sqlite_turn_release(s);
    sqlite_sync_restore(s);
    return rc;
}

static int sqlite_lock_schema(rt_store *base) {
    (void)base; /* BEGIN IMMEDIATE already excludes other writers. */
    return RT_OK;
}

/* Liveness keys lie below 2^31; the turnstile's bytes above. */
#define SQLITE_TURN ((off_t)0x80000000)
#define SQLITE_WAITING (SQLITE_TURN + 1)

/* fcntl(cmd) on one byte of the lock file, opened on first use. */
static int sqlite_lock_at(sqlite_store *s, off_t at, short type, int cmd) {
    if (s->lock_fd < 0) {
        size_t n = strlen(s->path) + sizeof "-ratchet.lock";
        char *lock_path = rt__xmalloc(n);
        snprintf(lock_path, n, "%s-ratchet.lock", s->path);
        s->lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (s->lock_fd < 0)
            rt__store_fail(&s->base, RT_DBERR, "cannot open %s: %s",
                           lock_path, strerror(errno));
        free(lock_path);
        if (s->lock_fd < 0) return -1;
    }
    struct flock fl;
    memset(&fl, 0, sizeof fl);
    fl.l_type = type;
    fl.l_whence = SEEK_SET;
    fl.l_start = at;
    fl.l_len = 1;
    int rc = fcntl(s->lock_fd, cmd, &fl);
    if (rc == 0 && cmd == F_OFD_GETLK) return fl.l_type != F_UNLCK;
    return rc;
}

static int sqlite_lock_byte(sqlite_store *s, uint64_t key, short type) {
    return sqlite_lock_at(s, (off_t)(key % 0x7fffffffu), type, F_OFD_SETLK);
}

static bool sqlite_has_lock_file(const sqlite_store *s) {
    return strcmp(s->path, ":memory:") != 0;
}

static void sqlite_pause_us(long us) {
    struct timespec ts = {0, us * 1000};
    nanosleep(&ts, NULL);
}

/*
 * BEGIN IMMEDIATE behind the turnstile. While TURN is taken the writer polls
 * it as a declared waiter, and every 10 ms also tries SQLite's lock itself
 * without waiting: the turnstile orders writers but never blocks one when
 * the database is free (its holder may be stopped between transactions).
 */
static int sqlite_begin_turn(sqlite_store *s) {
    if (!sqlite_has_lock_file(s))
        return sqlite_run_simple(s, "BEGIN IMMEDIATE");
    if (sqlite_lock_at(s, SQLITE_TURN, F_WRLCK, F_OFD_SETLK) != 0) {
        if (s->lock_fd < 0 || (errno != EAGAIN && errno != EACCES))
            return sqlite_run_simple(s, "BEGIN IMMEDIATE");
        sqlite_lock_at(s, SQLITE_WAITING, F_RDLCK, F_OFD_SETLK);
        int64_t deadline =
            rt__mono_ns() + (int64_t)s->busy_timeout_ms * 1000000;
        int rc = RT_BUSY;
        for (int i = 1;; i++) {
            if (sqlite_lock_at(s, SQLITE_TURN, F_WRLCK, F_OFD_SETLK) == 0) {
                rc = RT_OK;
                break;
            }
            if (i % 10 == 0) {
                s->no_wait = true;
                int got = sqlite_run_simple(s, "BEGIN IMMEDIATE");
                s->no_wait = false;
                if (got != RT_BUSY) { /* began, or failed otherwise */
                    sqlite_lock_at(s, SQLITE_WAITING, F_UNLCK, F_OFD_SETLK);
                    return got;
                }
            }
            if ((rt__store_stop_requested() && !s->base.finishing) ||
                rt__mono_ns() >= deadline)
                break;
            sqlite_pause_us(1000);
        }
        sqlite_lock_at(s, SQLITE_WAITING, F_UNLCK, F_OFD_SETLK);
        if (rc != RT_OK)
            return rt__store_fail(&s->base, RT_BUSY, "database is busy (%s)",
                                  rt__store_stop_requested() ? "stop requested"
                                                : "another process is writing");
    }
    s->turn_held = true;
    int rc = sqlite_run_simple(s, "BEGIN IMMEDIATE");
    if (rc != RT_OK) sqlite_turn_release(s);
    return rc;
}

static int sqlite_begin(rt_store *base) {
    sqlite_store *s = (sqlite_store *)base;
    int rc = sqlite_begin_turn(s);
    if (rc != RT_OK) sqlite_sync_restore(s); /* no transaction to be lax */
    return rc;
}

/* Once the transaction is over: release, and let a waiter in first. */
static void sqlite_turn_release(sqlite_store *s) {
    if (!s->turn_held || !sqlite3_get_autocommit(s->db)) return;
    sqlite_lock_at(s, SQLITE_TURN, F_UNLCK, F_OFD_SETLK);
    s->turn_held = false;
    for (int i = 0; i < 400 && sqlite_lock_at(s, SQLITE_WAITING, F_WRLCK,
                                              F_OFD_GETLK) == 1;
         i++)
        sqlite_pause_us(250);
}

static int sqlite_liveness_try(rt_store *base, uint64_t key, bool *got) {
    sqlite_store *s = (sqlite_store *)base;
    *got = false;
    if (sqlite_lock_byte(s, key, F_WRLCK) == 0) {
        *got = true;
        return RT_OK;
    }
    if (s->lock_fd < 0) return RT_DBERR;
    if (errno == EAGAIN || errno == EACCES) return RT_OK;
    return rt__store_fail(base, RT_DBERR, "liveness lock: %s", strerror(errno));
}

static void sqlite_liveness_release(rt_store *base, uint64_t key) {
    sqlite_store *s = (sqlite_store *)base;
    if (s->lock_fd >= 0) sqlite_lock_byte(s, key, F_UNLCK);
}

static void sqlite_set_busy_timeout(rt_store *base, int ms) {
    ((sqlite_store *)base)->busy_timeout_ms = ms;
}

/* synchronous FULL (or EXTRA) -> NORMAL; OFF stays OFF (store.h says why
 * this is safe). */
static void sqlite_lax_commits(rt_store *base) {
    sqlite_store *s = (sqlite_store *)base;
    sqlite3_stmt *st;
    if (s->base.borrowed ||
        sqlite3_prepare_v2(s->db, "PRAGMA synchronous", -1, &st, NULL) != SQLITE_OK)
        return;
    int level = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
    sqlite3_finalize(st);
    if (level > 1 &&
        sqlite3_exec(s->db, "PRAGMA synchronous=NORMAL", NULL, NULL, NULL) ==
            SQLITE_OK)
        s->sync = 1;
}

/* The same for the next transaction only (SQLite refuses the change inside
 * one): FULL becomes NORMAL until its COMMIT or ROLLBACK. */
static void sqlite_lax_transaction(rt_store *base) {
    sqlite_store *s = (sqlite_store *)base;
    if (s->base.borrowed || s->sync != 2 || s->sync_lax ||
        !sqlite3_get_autocommit(s->db))
        return;
    s->sync_lax = sqlite3_exec(s->db, "PRAGMA synchronous=NORMAL", NULL,
                               NULL, NULL) == SQLITE_OK;
}

static void sqlite_interrupt(rt_store *base) {
    sqlite3_interrupt(((sqlite_store *)base)->db);
}

static void *sqlite_handle(rt_store *base) {
    return ((sqlite_store *)base)->db;
}

static char sqlite_versions_text[64];

static void sqlite_versions_init(void) {
    snprintf(sqlite_versions_text, sizeof sqlite_versions_text, "sqlite %s",
             sqlite3_libversion());
}

/* Called once (rt__store_versions). */
static const char *sqlite_versions(void) {
    sqlite_versions_init();
    return sqlite_versions_text;
}

const rt_store_ops rt__sqlite_ops = {
    .name = "sqlite",
    .accepts = sqlite_accepts,
    .open = sqlite_open,
    .close = sqlite_close,
    .wrap = sqlite_wrap,
    .exec_script = sqlite_exec_script,
    .begin = sqlite_begin,
    .commit = sqlite_commit,
    .rollback = sqlite_rollback,
    .lock_schema = sqlite_lock_schema,
    .prepare = sqlite_prepare,
    .bind = sqlite_bind,
    .step = sqlite_step,
    .reset = sqlite_reset,
    .column_count = sqlite_column_count,
    .column_type = sqlite_column_type,
    .column_int64 = sqlite_column_int64,
    .column_double = sqlite_column_double,
    .column_text = sqlite_column_text,
    .column_blob = sqlite_column_blob,
    .changes = sqlite_changes,
    .interrupt = sqlite_interrupt,
    .handle = sqlite_handle,
    .liveness_try = sqlite_liveness_try,
    .liveness_release = sqlite_liveness_release,
    .set_busy_timeout = sqlite_set_busy_timeout,
    .lax_commits = sqlite_lax_commits,
    .lax_transaction = sqlite_lax_transaction,
    .versions = sqlite_versions,
};
