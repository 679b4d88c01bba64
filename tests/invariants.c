/*
 * invariants.c — the invariants of invariants.h, as SQL over a connection of
 * the checker's own (sqlite3 or libpq). Every check is portable SQL that
 * runs unchanged on both backends; run keys are the tests' own (no quotes).
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <libpq-fe.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "invariants.h"

struct inv_db {
    sqlite3 *lite;
    PGconn *pg;
};

#if defined(__GNUC__) || defined(__clang__)
#define INV_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define INV_PRINTF(a, b)
#endif

static bool inv_say(char *msg, size_t n, const char *fmt, ...) INV_PRINTF(3, 4);

/* Write a message; always false, so a check can `return inv_say(...)`. */
static bool inv_say(char *msg, size_t n, const char *fmt, ...) {
    if (msg && n) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, n, fmt, ap);
        va_end(ap);
    }
    return false;
}

/* ---------------------------------------------------------- connection */

inv_db *inv_open(const char *url, char *err, size_t errlen) {
    inv_db *db = calloc(1, sizeof *db);
    if (!db) {
        inv_say(err, errlen, "out of memory");
        return NULL;
    }
    if (!strncmp(url, "sqlite:", 7)) {
        char path[1024];
        snprintf(path, sizeof path, "%s", url + 7);
        path[strcspn(path, "?")] = '\0';
        struct stat st;
        if (stat(path, &st) != 0) {
            inv_say(err, errlen, "%s: no such database", path);
            free(db);
            return NULL;
        }
        int rc = sqlite3_open_v2(path, &db->lite, SQLITE_OPEN_READWRITE, NULL);
        if (rc != SQLITE_OK) {
            inv_say(err, errlen, "open %s: %s", path, sqlite3_errstr(rc));
            sqlite3_close(db->lite);
            free(db);
            return NULL;
        }
        sqlite3_busy_timeout(db->lite, 10000);
        /* Closing must not checkpoint: a checker leaves the WAL as the
         * process under test left it. */
        sqlite3_db_config(db->lite, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
        return db;
    }
    db->pg = PQconnectdb(url);
    if (PQstatus(db->pg) != CONNECTION_OK) {
        inv_say(err, errlen, "connect: %s", PQerrorMessage(db->pg));
        PQfinish(db->pg);
        free(db);
        return NULL;
    }
    PQclear(PQexec(db->pg, "SET client_min_messages = warning"));
    return db;
}

void inv_close(inv_db *db) {
    if (!db) return;
    if (db->lite) sqlite3_close(db->lite);
    if (db->pg) PQfinish(db->pg);
    free(db);
}

bool inv_broken(const inv_db *db) {
    return db->pg && PQstatus(db->pg) != CONNECTION_OK;
}

bool inv_exec(inv_db *db, const char *sql, char *err, size_t errlen) {
    if (db->lite) {
        char *e = NULL;
        if (sqlite3_exec(db->lite, sql, NULL, NULL, &e) == SQLITE_OK) return true;
        inv_say(err, errlen, "%s: %s", sql, e ? e : "?");
        sqlite3_free(e);
        return false;
    }
    PGresult *r = PQexec(db->pg, sql);
    ExecStatusType st = PQresultStatus(r);
    PQclear(r);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) return true;
    return inv_say(err, errlen, "%s: %s", sql, PQerrorMessage(db->pg));
}

/* Each row of sql (text columns, NULL as NULL) to fn; false stops early. */
static int inv_rows(inv_db *db, const char *sql, inv_row_fn *fn, void *arg,
                    char *err, size_t errlen) {
    const char *cols[16];
    if (db->lite) {
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(db->lite, sql, -1, &st, NULL) != SQLITE_OK) {
            inv_say(err, errlen, "%s: %s", sql, sqlite3_errmsg(db->lite));
            return INV_ERROR;
        }
        int rc, n = sqlite3_column_count(st) < 16 ? sqlite3_column_count(st) : 16;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            for (int i = 0; i < n; i++)
                cols[i] = (const char *)sqlite3_column_text(st, i);
            if (!fn(arg, n, cols)) {
                rc = SQLITE_DONE;
                break;
            }
        }
        if (rc != SQLITE_DONE) inv_say(err, errlen, "%s: %s", sql, sqlite3_errmsg(db->lite));
        sqlite3_finalize(st);
        return rc == SQLITE_DONE ? INV_VALUE : INV_ERROR;
    }
    PGresult *r = PQexec(db->pg, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        inv_say(err, errlen, "%s: %s", sql, PQerrorMessage(db->pg));
        PQclear(r);
        return INV_ERROR;
    }
    int n = PQnfields(r) < 16 ? PQnfields(r) : 16;
    for (int row = 0; row < PQntuples(r); row++) {
        for (int i = 0; i < n; i++)
            cols[i] = PQgetisnull(r, row, i) ? NULL : PQgetvalue(r, row, i);
        if (!fn(arg, n, cols)) break;
    }
    PQclear(r);
    return INV_VALUE;
}

int inv_each(inv_db *db, const char *sql, inv_row_fn *fn, void *arg, char *err,
             size_t errlen) {
    return inv_rows(db, sql, fn, arg, err, errlen);
}

typedef struct inv_first {
    bool found;
    char *out;
    size_t outlen;
} inv_first;

static bool inv_first_row(void *arg, int ncols, const char *const *cols) {
    inv_first *f = arg;
    if (ncols > 0 && cols[0]) {
        f->found = true;
        snprintf(f->out, f->outlen, "%s", cols[0]);
    }
    return false;
}

int inv_text(inv_db *db, const char *sql, char *out, size_t outlen, char *err,
             size_t errlen) {
    inv_first f = {false, out, outlen};
    if (outlen) out[0] = '\0';
    if (inv_rows(db, sql, inv_first_row, &f, err, errlen) != INV_VALUE) return INV_ERROR;
    return f.found ? INV_VALUE : INV_NONE;
}

int inv_int(inv_db *db, const char *sql, int64_t *out, char *err, size_t errlen) {
    char text[64];
    int rc = inv_text(db, sql, text, sizeof text, err, errlen);
    *out = rc == INV_VALUE ? strtoll(text, NULL, 10) : 0;
    return rc;
}

/* An integer the check needs: false (message in msg) on error or NULL. */
static bool inv_need(inv_db *db, const char *sql, int64_t *out, char *msg,
                     size_t n) {
    int rc = inv_int(db, sql, out, msg, n);
    if (rc == INV_NONE) return inv_say(msg, n, "%s: no value", sql);
    return rc == INV_VALUE;
}

/* ------------------------------------------------------------------ runs */

static bool inv_run_row(void *arg, int ncols, const char *const *c) {
    inv_run *r = arg;
    if (ncols < 8) return false;
    r->exists = true;
    snprintf(r->status, sizeof r->status, "%s", c[0] ? c[0] : "");
    r->id = c[1] ? strtoll(c[1], NULL, 10) : 0;
    r->step_index = c[2] ? strtoll(c[2], NULL, 10) : 0;
    r->items = c[3] ? strtoll(c[3], NULL, 10) : 0;
    r->step_items = c[4] ? strtoll(c[4], NULL, 10) : 0;
    r->has_cursor = c[5] != NULL;
    r->cursor = c[5] ? strtoll(c[5], NULL, 10) : 0;
    r->epoch = c[6] ? strtoll(c[6], NULL, 10) : 0;
    r->attempt = c[7] ? strtoll(c[7], NULL, 10) : 0;
    return false;
}

bool inv_run_read(inv_db *db, const char *job, const char *key, inv_run *run,
                  char *err, size_t errlen) {
    memset(run, 0, sizeof *run);
    int64_t tables = 0;
    /* No schema yet (killed before the migration committed): no run. */
    int rc = inv_int(db,
                     db->lite ? "SELECT count(*) FROM sqlite_master WHERE name = 'rt_run'"
                              : "SELECT count(*) FROM pg_tables WHERE tablename = 'rt_run' "
                                "AND schemaname = current_schema()",
                     &tables, err, errlen);
    if (rc != INV_VALUE) return false;
    run->schema = tables > 0;
    if (!run->schema) return true;
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT status, id, step_index, items, step_items, cursor_int, "
             "epoch, attempt FROM rt_run WHERE job = '%s' AND run_key = '%s'",
             job, key);
    return inv_rows(db, sql, inv_run_row, run, err, errlen) == INV_VALUE;
}

/* --------------------------------------------------------------- rowcopy */

bool inv_rowcopy_exact(inv_db *db, char *msg, size_t n) {
    int64_t src, dst, distinct, src_sum, dst_sum, bad;
    if (!inv_need(db, "SELECT count(*) FROM rowcopy_src", &src, msg, n) ||
        !inv_need(db, "SELECT count(*) FROM rowcopy_dst", &dst, msg, n) ||
        !inv_need(db, "SELECT count(DISTINCT id) FROM rowcopy_dst", &distinct, msg, n) ||
        !inv_need(db, "SELECT coalesce(sum(id), 0) FROM rowcopy_src", &src_sum, msg, n) ||
        !inv_need(db, "SELECT coalesce(sum(id), 0) FROM rowcopy_dst", &dst_sum, msg, n) ||
        !inv_need(db,
                  "SELECT count(*) FROM rowcopy_dst d LEFT JOIN rowcopy_src s "
                  "ON s.id = d.id AND s.payload = d.payload WHERE s.id IS NULL",
                  &bad, msg, n))
        return false;
    if (src <= 0) return inv_say(msg, n, "rowcopy_src is empty");
    if (dst != src || distinct != src || dst_sum != src_sum || bad != 0)
        return inv_say(msg, n,
                       "rowcopy_dst differs from rowcopy_src: %lld rows (%lld "
                       "distinct, id sum %lld, %lld wrong payloads), source %lld "
                       "rows (id sum %lld)",
                       (long long)dst, (long long)distinct, (long long)dst_sum,
                       (long long)bad, (long long)src, (long long)src_sum);
    return true;
}

bool inv_rowcopy_progress(inv_db *db, const inv_run *run, const char *key,
                          char *msg, size_t n) {
    if (!run->exists || run->step_index == 0) return true; /* seed is atomic */
    bool done = !strcmp(run->status, "done");
    if (done && run->step_index != 3)
        return inv_say(msg, n, "rowcopy/%s is done at step index %lld", key,
                       (long long)run->step_index);
    if (run->step_index >= 2) {
        int64_t src, rows = -1, sum = -1, src_sum;
        if (!inv_rowcopy_exact(db, msg, n)) return false;
        if (!inv_need(db, "SELECT count(*) FROM rowcopy_src", &src, msg, n)) return false;
        if (run->items != src)
            return inv_say(msg, n, "rowcopy/%s past copy counts %lld items, source has %lld",
                           key, (long long)run->items, (long long)src);
        if (!done) return true;
        char sql[256];
        snprintf(sql, sizeof sql, "SELECT rows FROM rowcopy_report WHERE run_key = '%s'", key);
        if (!inv_need(db, sql, &rows, msg, n)) return false;
        snprintf(sql, sizeof sql, "SELECT id_sum FROM rowcopy_report WHERE run_key = '%s'", key);
        if (!inv_need(db, sql, &sum, msg, n) ||
            !inv_need(db, "SELECT coalesce(sum(id), 0) FROM rowcopy_src", &src_sum, msg, n))
            return false;
        if (rows != src || sum != src_sum)
            return inv_say(msg, n, "rowcopy_report for %s says (%lld rows, id sum %lld), "
                           "want (%lld, %lld)", key, (long long)rows, (long long)sum,
                           (long long)src, (long long)src_sum);
        return true;
    }
    /* In step copy: rowcopy_dst is the cursor's prefix, each row once. */
    int64_t count, distinct, max, bad;
    if (!inv_need(db, "SELECT count(*) FROM rowcopy_dst", &count, msg, n) ||
        !inv_need(db, "SELECT count(DISTINCT id) FROM rowcopy_dst", &distinct, msg, n) ||
        !inv_need(db, "SELECT coalesce(max(id), 0) FROM rowcopy_dst", &max, msg, n) ||
        !inv_need(db,
                  "SELECT count(*) FROM rowcopy_dst d LEFT JOIN rowcopy_src s "
                  "ON s.id = d.id AND s.payload = d.payload WHERE s.id IS NULL",
                  &bad, msg, n))
        return false;
    int64_t cursor = run->has_cursor ? run->cursor : 0;
    if (count != run->step_items || distinct != count || max != cursor ||
        count != cursor || run->items != run->step_items || bad != 0)
        return inv_say(msg, n,
                       "rowcopy/%s in step copy: progress row says cursor %lld, "
                       "%lld step items, %lld items; rowcopy_dst holds %lld rows "
                       "(%lld distinct, max id %lld, %lld wrong payloads)",
                       key, (long long)cursor, (long long)run->step_items,
                       (long long)run->items, (long long)count, (long long)distinct,
                       (long long)max, (long long)bad);
    return true;
}

/* ------------------------------------------------------------- aggregate */

/* The summary for key equals a recomputation; *days: the days it holds. */
static bool inv_summary_exact(inv_db *db, const char *key, int64_t *days,
                              char *msg, size_t n) {
    char sql[700];
    int64_t want, have, match;
    if (!inv_need(db, "SELECT count(DISTINCT day) FROM agg_events", &want, msg, n))
        return false;
    snprintf(sql, sizeof sql, "SELECT count(*) FROM agg_daily WHERE run_key = '%s'", key);
    if (!inv_need(db, sql, &have, msg, n)) return false;
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM agg_daily d JOIN ("
             " SELECT day, count(*) AS events, sum(amount) AS total,"
             " count(DISTINCT customer) AS customers FROM agg_events GROUP BY day) e"
             " ON e.day = d.day AND e.events = d.events AND e.total = d.total"
             " AND e.customers = d.customers WHERE d.run_key = '%s'",
             key);
    if (!inv_need(db, sql, &match, msg, n)) return false;
    if (want <= 0) return inv_say(msg, n, "agg_events is empty");
    if (have != want || match != want)
        return inv_say(msg, n,
                       "aggregate summary for %s: %lld days, %lld of them equal "
                       "to a recomputation from agg_events (%lld days)",
                       key, (long long)have, (long long)match, (long long)want);
    *days = want;
    return true;
}

/* The report for key holds `lines` correct lines, one per day, up to day
 * `last` (-1: do not check the last day). */
static bool inv_report_lines(inv_db *db, const char *key, int64_t lines,
                             int64_t last, char *msg, size_t n) {
    char sql[700];
    int64_t count, distinct, max, good;
    snprintf(sql, sizeof sql, "SELECT count(*) FROM agg_report WHERE run_key = '%s'", key);
    if (!inv_need(db, sql, &count, msg, n)) return false;
    snprintf(sql, sizeof sql,
             "SELECT count(DISTINCT day) FROM agg_report WHERE run_key = '%s'", key);
    if (!inv_need(db, sql, &distinct, msg, n)) return false;
    snprintf(sql, sizeof sql,
             "SELECT coalesce(max(day), 0) FROM agg_report WHERE run_key = '%s'", key);
    if (!inv_need(db, sql, &max, msg, n)) return false;
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM agg_report r JOIN agg_daily d"
             " ON d.run_key = r.run_key AND d.day = r.day"
             " WHERE r.run_key = '%s' AND r.line LIKE"
             " 'day ' || d.day || ': ' || d.events || ' events, total '"
             " || d.total || ',%%'",
             key);
    if (!inv_need(db, sql, &good, msg, n)) return false;
    if (count != lines || distinct != lines || good != lines || (last >= 0 && max != last))
        return inv_say(msg, n,
                       "aggregate report for %s: %lld lines (%lld days, %lld "
                       "correct, last day %lld), want %lld lines up to day %lld",
                       key, (long long)count, (long long)distinct, (long long)good,
                       (long long)max, (long long)lines, (long long)last);
    return true;
}

bool inv_aggregate_exact(inv_db *db, const char *key, char *msg, size_t n) {
    int64_t days = 0;
    return inv_summary_exact(db, key, &days, msg, n) &&
           inv_report_lines(db, key, days, -1, msg, n);
}

bool inv_aggregate_progress(inv_db *db, const inv_run *run, const char *key,
                            char *msg, size_t n) {
    if (!run->exists || run->step_index < 2) return true; /* atomic steps */
    bool done = !strcmp(run->status, "done");
    if (done && run->step_index != 3)
        return inv_say(msg, n, "aggregate/%s is done at step index %lld", key,
                       (long long)run->step_index);
    int64_t days = 0;
    if (!inv_summary_exact(db, key, &days, msg, n)) return false;
    if (done) {
        if (run->items != days)
            return inv_say(msg, n, "aggregate/%s is done with %lld items, want %lld",
                           key, (long long)run->items, (long long)days);
        return inv_report_lines(db, key, days, -1, msg, n);
    }
    /* In step report: the days up to the cursor, one line each (days are
     * 1..N, so the cursor is also the count). */
    int64_t cursor = run->has_cursor ? run->cursor : 0;
    if (run->step_items != cursor || run->items != cursor)
        return inv_say(msg, n,
                       "aggregate/%s in step report: cursor %lld, %lld step "
                       "items, %lld items",
                       key, (long long)cursor, (long long)run->step_items,
                       (long long)run->items);
    return inv_report_lines(db, key, cursor, cursor, msg, n);
}

/* ----------------------------------------------------------- no orphans */

/* pid is a live process (running or stopped, not a zombie). */
static bool inv_alive(long pid) {
    if (pid <= 0 || (kill((pid_t)pid, 0) != 0 && errno != EPERM)) return false;
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return true; /* no /proc: kill() said it exists */
    size_t len = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[len] = '\0';
    const char *p = strrchr(buf, ')');
    return !(p && p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X'));
}

typedef struct inv_orphans {
    char *msg;
    size_t n;
    bool ok;
} inv_orphans;

static bool inv_orphan_row(void *arg, int ncols, const char *const *c) {
    inv_orphans *o = arg;
    if (ncols < 3) return false;
    const char *owner = c[2];
    /* owner is host:pid:nonce (lease.c). */
    const char *nonce = owner ? strrchr(owner, ':') : NULL;
    const char *pid = nonce && nonce > owner ? nonce - 1 : NULL;
    while (pid && pid > owner && *pid != ':') pid--;
    char host[256] = "", me[256] = "";
    if (pid && *pid == ':') snprintf(host, sizeof host, "%.*s", (int)(pid - owner), owner);
    gethostname(me, sizeof me - 1);
    me[63] = '\0'; /* lease.c keeps 63 characters */
    bool live = owner && pid && *pid == ':' &&
                (strcmp(host, me) != 0 || inv_alive(strtol(pid + 1, NULL, 10)));
    if (live) return true;
    o->ok = inv_say(o->msg, o->n, "run %s/%s is 'running' without a live holder (%s)",
                    c[0] ? c[0] : "?", c[1] ? c[1] : "?",
                    owner ? owner : "no lease");
    return false;
}

bool inv_no_orphans(inv_db *db, char *msg, size_t n) {
    inv_orphans o = {msg, n, true};
    int rc = inv_rows(db,
                      "SELECT r.job, r.run_key, l.owner FROM rt_run r LEFT JOIN rt_lease l"
                      " ON l.job = r.job AND (l.scope = r.job || '/' || r.run_key"
                      " OR (l.scope = r.job AND l.run_key = r.run_key))"
                      " WHERE r.status = 'running' ORDER BY r.id",
                      inv_orphan_row, &o, msg, n);
    return rc == INV_VALUE && o.ok;
}
