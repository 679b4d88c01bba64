/*
 * migrate.c — brings a database's schema up to the version this library
 * knows, from the migrations embedded at build time.
 *
 * The common case (schema current) is one read and no write lock, so starting
 * a run never waits for a writer. Otherwise each migration is applied in its
 * own transaction together with its row in rt_schema_version: killed at any
 * instant, the database is at one version or the next, never between. A
 * database newer than the library is refused, untouched. A migration that
 * cannot have its locks in time (PostgreSQL: 500 ms, store/postgres.c) gives
 * way and is tried again every 2 s, so the runs go on meanwhile, for 60 s
 * at most.
 */
#include <stdlib.h>
#include <string.h>

#include "core/core.h"

static const char migrate_version_sql[] =
    "SELECT coalesce(max(version), 0) FROM rt_schema_version";

int rt__schema_latest(const char *backend) {
    int latest = 0;
    for (int i = 0; i < rt__migrations_count; i++)
        if (!strcmp(rt__migrations[i].backend, backend) &&
            rt__migrations[i].version > latest)
            latest = rt__migrations[i].version;
    return latest;
}

static const rt__migration *migrate_find(const char *backend, int version) {
    for (int i = 0; i < rt__migrations_count; i++)
        if (!strcmp(rt__migrations[i].backend, backend) &&
            rt__migrations[i].version == version)
            return &rt__migrations[i];
    return NULL;
}

static int migrate_read_version(rt_store *s, int *version) {
    rt_stmt *st;
    int rc = rt__store_query(s, migrate_version_sql, 0, NULL, &st);
    if (rc == RT_ROW) {
        *version = (int)rt__store_column_int64(st, 0);
        rt__store_reset(st);
        return RT_OK;
    }
    return rc == RT_DONE ? rt__store_fail(s, RT_DBERR, "no schema version")
                         : rc;
}

static int migrate_newer(rt_store *s, int version, int latest) {
    return rt__store_fail(s, RT_SCHEMA,
                          "database schema version %d is newer than this "
                          "ratchet %s knows (%d): upgrade ratchet",
                          version, RT_VERSION, latest);
}

/* One transaction: apply the next migration, if any. *done when current. */
static int migrate_one(rt_store *s, int latest, int *version, bool *done) {
    int rc = rt__store_begin(s);
    if (rc != RT_OK) return rc;
    if ((rc = rt__store_lock_schema(s)) != RT_OK) goto fail;
    rc = rt__store_exec_script(
        s, "CREATE TABLE IF NOT EXISTS rt_schema_version ("
           " version INTEGER PRIMARY KEY,"
           " name TEXT NOT NULL,"
           " applied_ms BIGINT NOT NULL)");
    if (rc != RT_OK) goto fail;
    if ((rc = migrate_read_version(s, version)) != RT_OK) goto fail;
    if (*version > latest) {
        rc = migrate_newer(s, *version, latest);
        goto fail;
    }
    if (*version == latest) {
        *done = true;
        return rt__store_commit(s);
    }
    const rt__migration *m = migrate_find(rt__store_name(s), *version + 1);
    if (!m) {
        rc = rt__store_fail(s, RT_DBERR, "migration %d for %s is missing",
                            *version + 1, rt__store_name(s));
        goto fail;
    }
    if ((rc = rt__store_exec_script(s, m->sql)) != RT_OK) {
        char detail[RT_ERRMSG_MAX];
        snprintf(detail, sizeof detail, "%s", s->errmsg);
        rt__store_fail(s, rc, "migration %04d_%s failed: %s", m->version,
                       m->name, detail);
        goto fail;
    }
    rt_value args[] = {rt_int(m->version), rt_text(m->name)};
    rc = rt__store_exec(s,
                        "INSERT INTO rt_schema_version (version, name, "
                        "applied_ms) VALUES ($1, $2, rt_now_ms())",
                        2, args, NULL);
    if (rc != RT_OK) goto fail;
    if ((rc = rt__store_commit(s)) != RT_OK) goto fail;
    *version = m->version;
    rt__log(RT_LOG_INFO, "migrate", NULL, "applied migration %04d_%s (%s)",
            m->version, m->name, rt__store_name(s));
    return RT_OK;
fail:
    return rt__store_abort(s, rc);
}

/* How long a migration keeps trying for its locks: a caller of the C API
 * (rt_enqueue, rt_wait) must not wait for ever. Test builds read
 * RATCHET_TEST_MIGRATE_PATIENCE_MS. */
static int64_t migrate_patience_ns(void) {
#ifdef RT_TEST_HOOKS
    int64_t ms;
    const char *v = getenv("RATCHET_TEST_MIGRATE_PATIENCE_MS");
    if (v && rt__parse_int64(v, &ms)) return ms * 1000000;
#endif
    return 60 * 1000000000LL;
}

int rt__migrate(rt_store *s, int *from, int *to) {
    int latest = rt__schema_latest(rt__store_name(s));
    int version = 0;
    /* Fast path: a plain read. It fails when the table does not exist yet. */
    if (migrate_read_version(s, &version) == RT_OK) {
        if (from) *from = version;
        if (to) *to = version;
        if (version > latest) return migrate_newer(s, version, latest);
        if (version == latest) return RT_OK;
    }
    bool first = true, done = false;
    int64_t started_ns = rt__mono_ns(), warned_ns = 0;
    int64_t patience_ns = migrate_patience_ns();
    while (!done) {
        int rc = migrate_one(s, latest, &version, &done);
        if (rc == RT_BUSY && !rt__stop_flag) {
            /* A lock not had in time (store/postgres.c, pg_lock_schema): others
             * go on meanwhile; say so now and then, and try again. */
            if (rt__mono_ns() - started_ns > patience_ns) {
                char why[RT_ERRMSG_MAX];
                snprintf(why, sizeof why, "%s", s->errmsg);
                return rt__store_fail(s, RT_BUSY,
                                      "%s; gave up after %d s of trying: run "
                                      "it again once the long transactions "
                                      "ended",
                                      why, (int)(patience_ns / 1000000000));
            }
            if (!warned_ns || rt__mono_ns() - warned_ns > 10000000000LL) {
                rt__log(RT_LOG_WARN, "migrate", NULL,
                        "%s; a lock it needs is held (by a running step's "
                        "transaction, likely): trying again every 2 s, the "
                        "runs go on meanwhile",
                        s->errmsg);
                warned_ns = rt__mono_ns();
            }
            rt__sleep_ms(2000);
            continue;
        }
        if (rc != RT_OK) return rc;
        if (first && from) *from = done ? version : version - 1;
        first = false;
    }
    if (to) *to = version;
    return RT_OK;
}
