/*
 * backend.c — the torture driver's databases: a SQLite file in the scratch
 * directory or a PostgreSQL database on the test server, made empty again
 * between rounds (so a kill can land in schema creation), the checker's
 * connection to each, and the faults only a backend can have: a SQLite
 * integrity check, PostgreSQL sessions terminated, the server restarted.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "torture.h"

#define DB_MAX 32
static t_db *open_dbs[DB_MAX];
static void db_pg_amcheck(t_db *db);
static const char *admin_conninfo;

static void db_admin(const char *sql) {
    char err[512];
    inv_db *a = inv_open(admin_conninfo, err, sizeof err);
    if (!a) t_fail("PostgreSQL admin connection: %s", err);
    bool ok = inv_exec(a, sql, err, sizeof err);
    inv_close(a);
    if (!ok) t_fail("%s", err);
}

void t_db_create(const t_env *env, int backend, const char *tag, t_db *db) {
    memset(db, 0, sizeof *db);
    db->backend = backend;
    if (backend == T_SQLITE) {
        snprintf(db->path, sizeof db->path, "%s/%s.db", env->dir, tag);
        snprintf(db->url, sizeof db->url, "sqlite:%s", db->path);
        t_db_wipe(db);
        return;
    }
    static int counter;
    admin_conninfo = env->pg_admin;
    snprintf(db->name, sizeof db->name, "torture_%d_%d", (int)getpid(), counter++);
    char sql[160];
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", db->name);
    db_admin(sql);
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", db->name);
    db_admin(sql);
    snprintf(db->url, sizeof db->url, "%s dbname=%s", env->pg_admin, db->name);
    for (int i = 0; i < DB_MAX; i++)
        if (!open_dbs[i]) {
            open_dbs[i] = db;
            break;
        }
}

void t_db_wipe(t_db *db) {
    if (db->backend == T_SQLITE) {
        static const char *const suffixes[] = {"", "-wal", "-shm", "-journal",
                                               "-ratchet.lock"};
        for (size_t i = 0; i < sizeof suffixes / sizeof *suffixes; i++) {
            char p[600];
            snprintf(p, sizeof p, "%s%s", db->path, suffixes[i]);
            if (unlink(p) != 0 && errno != ENOENT) t_fail("unlink %s: %s", p, strerror(errno));
        }
        return;
    }
    /* What the runs since the last wipe left is sound, as far as
     * PostgreSQL's own checks can tell. */
    db_pg_amcheck(db);
    inv_db *c = t_db_check(db);
    char err[512];
    /* Sessions of killed clients may still be ending: DROP waits for them. */
    if (!inv_exec(c, "DROP SCHEMA public CASCADE; CREATE SCHEMA public", err, sizeof err))
        t_fail("wiping %s: %s", db->name, err);
}

void t_db_drop(t_db *db) {
    if (db->backend == T_SQLITE) return;
    db_pg_amcheck(db);
    inv_close(db->pg);
    db->pg = NULL;
    for (int i = 0; i < DB_MAX; i++)
        if (open_dbs[i] == db) open_dbs[i] = NULL;
    char sql[160];
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", db->name);
    db_admin(sql);
}

void t_db_cleanup(void) {
    for (int i = 0; i < DB_MAX; i++)
        if (open_dbs[i]) {
            inv_close(open_dbs[i]->pg);
            open_dbs[i]->pg = NULL;
            open_dbs[i] = NULL;
        }
}

inv_db *t_db_check(t_db *db) {
    char err[512];
    if (db->backend == T_SQLITE) {
        if (access(db->path, F_OK) != 0) return NULL;
        inv_db *c = inv_open(db->url, err, sizeof err);
        if (!c) t_fail("checker: %s", err);
        return c;
    }
    /* A server restart or a terminated session breaks it unseen: probe. */
    if (db->pg && (inv_broken(db->pg) || !inv_exec(db->pg, "SELECT 1", err, sizeof err))) {
        inv_close(db->pg);
        db->pg = NULL;
    }
    /* After a server restart the server may take a moment to accept. */
    for (int64_t until = t_now_ms() + 30000; !db->pg;) {
        db->pg = inv_open(db->url, err, sizeof err);
        if (!db->pg && t_now_ms() > until) t_fail("checker: %s", err);
        if (!db->pg) t_sleep_us(50000);
    }
    return db->pg;
}

void t_db_release(t_db *db, inv_db *c) {
    if (db->backend == T_SQLITE) inv_close(c);
}

void t_db_integrity(t_db *db, inv_db *c) {
    if (db->backend != T_SQLITE || !c) return;
    char out[512], err[512];
    int rc = inv_text(c, "PRAGMA integrity_check", out, sizeof out, err, sizeof err);
    if (rc != INV_VALUE) t_fail("integrity_check: %s", err);
    if (strcmp(out, "ok") != 0) t_fail("PRAGMA integrity_check says: %s", out);
}

/*
 * PostgreSQL's counterpart of PRAGMA integrity_check: contrib's amcheck on
 * every btree index of the database's public schema (ratchet's tables and
 * the jobs'), heapallindexed (every heap tuple has its index entry), and
 * verify_heapam on every table (and its TOAST). An ERROR from
 * bt_index_check or any row of verify_heapam is corruption. The extension
 * lives in a schema of its own, so wiping public keeps it. AccessShareLock
 * only: it runs beside live sessions, never blocking their writes.
 */
static int pg_amchecks;
static int64_t pg_amcheck_indexes, pg_amcheck_tables;

static void db_pg_amcheck(t_db *db) {
    inv_db *c = t_db_check(db);
    char out[1024], err[512];
    int64_t indexes = 0, tables = 0;
    if (!inv_exec(c,
                  "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_extension "
                  "WHERE extname = 'amcheck') THEN "
                  "CREATE SCHEMA IF NOT EXISTS rt_amcheck; "
                  "CREATE EXTENSION amcheck SCHEMA rt_amcheck; END IF; END $$",
                  err, sizeof err))
        t_fail("amcheck (contrib, in the postgresql package) is needed for "
               "PostgreSQL's integrity check: %s", err);
    if (inv_int(c,
                "SELECT count(rt_amcheck.bt_index_check(c.oid, true)) "
                "FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "JOIN pg_am a ON a.oid = c.relam "
                "WHERE n.nspname = 'public' AND a.amname = 'btree' "
                "AND i.indisvalid AND i.indisready AND c.relpersistence <> 't'",
                &indexes, err, sizeof err) != INV_VALUE)
        t_fail("amcheck: bt_index_check: %s", err);
    int rc = inv_text(c,
                      "SELECT c.relname || ' block ' || v.blkno || "
                      "coalesce(' offset ' || v.offnum, '') || ': ' || v.msg "
                      "FROM pg_class c JOIN pg_namespace n "
                      "ON n.oid = c.relnamespace, "
                      "LATERAL rt_amcheck.verify_heapam(c.oid) v "
                      "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'm') "
                      "AND c.relpersistence <> 't' LIMIT 1",
                      out, sizeof out, err, sizeof err);
    if (rc == INV_ERROR) t_fail("amcheck: verify_heapam: %s", err);
    if (rc == INV_VALUE) t_fail("amcheck: verify_heapam: %s", out);
    if (inv_int(c,
                "SELECT count(*) FROM pg_class c JOIN pg_namespace n "
                "ON n.oid = c.relnamespace WHERE n.nspname = 'public' "
                "AND c.relkind IN ('r', 'm') AND c.relpersistence <> 't'",
                &tables, err, sizeof err) != INV_VALUE)
        t_fail("amcheck: %s", err);
    pg_amchecks++;
    pg_amcheck_indexes += indexes;
    pg_amcheck_tables += tables;
}

void t_pg_amcheck_report(void) {
    if (!pg_amchecks) return;
    printf("torture: amcheck       postgres %d integrity checks of the "
           "databases the PostgreSQL scenarios left (before each wipe and "
           "drop): %lld btree indexes (heapallindexed) and %lld tables "
           "(verify_heapam) checked, no corruption\n",
           pg_amchecks, (long long)pg_amcheck_indexes,
           (long long)pg_amcheck_tables);
    fflush(stdout);
}

int t_pg_terminate(t_db *db) {
    inv_db *c = t_db_check(db);
    int64_t n = 0;
    char err[512];
    if (inv_int(c,
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                "AND application_name LIKE 'ratchet:%'",
                &n, err, sizeof err) != INV_VALUE)
        t_fail("pg_terminate_backend: %s", err);
    return (int)n;
}

bool t_pg_restart(const t_env *env) {
    if (!env->pg_dir || !env->pg_server) return false;
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "'%s' restart '%s'", env->pg_server, env->pg_dir);
    int rc = system(cmd);
    if (rc != 0) t_fail("%s: exit %d", cmd, WIFEXITED(rc) ? WEXITSTATUS(rc) : -1);
    return true;
}
