/*
 * claim.c — the queue's claim: pick the next due queued run a claimer
 * runs, take its lease and bump its epoch, in one transaction. It owns the
 * claim's steps (the SQL is lifecycle.h's and, for a batched claim, the
 * store's claim_sql built around lifecycle.h's parts), for the two places
 * a claim happens:
 *   - rt__claim_run: a transaction of its own, on the claimer's lease
 *     connection (a worker's claim when it has no run);
 *   - rt__claim_with, then rt__claim_chained: inside another transaction,
 *     the last commit of a run (runner.c, rt__run_opts.claim_next), so
 *     that a busy queue costs one commit per run. With a batched claim on
 *     a pipelined store (PostgreSQL) its one statement goes out with that
 *     COMMIT and its answer is read after it; else (SQLite) the claimed run
 *     waits in the rt__claim until the commit says it is real.
 *
 * A claimed run is a held run: the claim takes the scope's lease (the
 * row; the claimer's liveness lock is taken once, with its first lease),
 * so claims compose with leases, fencing and takeover. Two claimers after
 * the same run race for its lease row; the loser moves on. On PostgreSQL
 * the pick is FOR UPDATE SKIP LOCKED, so they rarely meet.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <string.h>

#include "core/lifecycle.h"

static const rt_store_claim_parts claim_parts = {
    .columns = RT__RUN_COLUMNS,
    .claimable = RT__LC_CLAIMABLE,
    .claim_cte = RT__LC_CLAIM_CTE,
};

void rt__claim_init(rt__claim *c, const rt_job *const *jobs, const char *only,
                    rt__lease *lease) {
    memset(c, 0, sizeof *c);
    c->jobs = jobs;
    c->only = only;
    c->lease = lease;
    int n = 0, scoped = 0;
    for (int i = 0; jobs[i]; i++) {
        if (!rt__claim_wants(c, jobs[i]->name)) continue;
        char fp[17];
        rt__job_fingerprint(jobs[i], fp);
        rt__store_list_text(&c->fingerprints, n, fp);
        rt__store_list_text(&c->wanted, n++, jobs[i]->name);
        if (jobs[i]->exclusive == RT_EXCLUSIVE_JOB)
            rt__store_list_text(&c->job_scoped, scoped++, jobs[i]->name);
    }
    rt__store_list_end(&c->wanted, n);
    rt__store_list_end(&c->fingerprints, n);
    rt__store_list_end(&c->job_scoped, scoped);
}

void rt__claim_free(rt__claim *c) {
    rt__run run;
    const rt_job *job;
    if (rt__claim_chained(c, &run, &job) == RT_OK) rt__run_free(&run);
    rt__buf_free(&c->wanted);
    rt__buf_free(&c->fingerprints);
    rt__buf_free(&c->job_scoped);
    free(c->refused);
}

bool rt__claim_wants(const rt__claim *c, const char *job) {
    return rt__job_find(c->jobs, job) && rt__job_listed(c->only, job);
}

bool rt__claim_refused(const rt__claim *c, const char *job, const char *key) {
    for (int i = 0; i < c->nrefused; i++)
        if (!strcmp(c->refused[i].job, job) && !strcmp(c->refused[i].key, key))
            return true;
    return false;
}

void rt__claim_set_aside(rt__claim *c, const rt__run *run) {
    c->refused = rt__xrealloc(c->refused,
                              sizeof *c->refused * (size_t)(c->nrefused + 1));
    rt__claim_pick *p = &c->refused[c->nrefused++];
    snprintf(p->job, sizeof p->job, "%s", run->job);
    snprintf(p->key, sizeof p->key, "%s", run->key);
    p->priority = run->priority;
    p->id = run->id;
}

int rt__claim_rows(const rt__claim *c, rt_stmt *st, int rc,
                   rt__claim_pick *out, int max, int *n) {
    while (rc == RT_ROW) {
        const char *job = rt__store_column_text(st, 0);
        const char *key = rt__store_column_text(st, 1);
        if (*n < max && job && key && rt__claim_wants(c, job) &&
            !rt__claim_refused(c, job, key)) {
            rt__claim_pick *p = &out[(*n)++];
            snprintf(p->job, sizeof p->job, "%s", job);
            snprintf(p->key, sizeof p->key, "%s", key);
            p->priority = rt__store_column_int64(st, 2);
            p->id = 0;
        }
        rc = rt__store_step(st);
    }
    return rc == RT_DONE ? RT_OK : rc;
}

void rt__claim_scope(const rt_job *job, const char *key, char *out, size_t n) {
    if (job->exclusive == RT_EXCLUSIVE_JOB)
        snprintf(out, n, "%s", job->name);
    else
        snprintf(out, n, "%.300s/%.255s", job->name, key);
}

/* The refused runs' ids, a list parameter (rt__store_list), into *ids. */
static void claim_refused_ids(const rt__claim *c, rt__buf *ids) {
    for (int i = 0; i < c->nrefused; i++)
        rt__store_list_int(ids, i, c->refused[i].id);
    rt__store_list_end(ids, c->nrefused);
}

/* Send (later: with the COMMIT, its row kept) or run the batched claim
 * sql (RT_STORE_CLAIM_ONE). */
static int claim_one(rt__claim *c, rt_store *s, const char *sql, bool later,
                     rt_stmt **st) {
    rt__buf ids = {0};
    claim_refused_ids(c, &ids);
    rt__lease *l = c->lease;
    rt_value args[] = {rt_text(c->wanted.p),
                       rt_text(ids.p),
                       rt_text(c->job_scoped.p),
                       rt_text(l->owner),
                       rt_int(l->have_lock),
                       l->have_lock ? rt_int((int64_t)l->key) : rt_null(),
                       rt_int(l->ttl_ms),
                       rt_text(c->fingerprints.p)};
    int rc = later ? rt__store_send_kept(s, sql, 8, args, false, st)
                   : rt__store_query(s, sql, 8, args, st);
    rt__buf_free(&ids);
    return rc;
}

/*
 * Its answer (rc: of stepping st onto its row): RT_OK, *run and *job are
 * taken; RT_NOTFOUND: nothing due; RT_HELD: its scope has a lease. st is
 * reset.
 */
static int claim_one_row(rt__claim *c, rt_store *s, rt_stmt *st, int rc,
                         rt__run *run, const rt_job **job) {
    memset(run, 0, sizeof *run);
    if (rc != RT_ROW) {
        if (rc == RT_DONE) rc = RT_NOTFOUND;
        rt__store_reset(st);
        return rc;
    }
    rt__run_from_row(st, run);
    bool params = rt__store_column_int64(st, RT__RUN_NCOLUMNS) != 0;
    bool taken = rt__store_column_int64(st, RT__RUN_NCOLUMNS + 2) != 0;
    rt__store_reset(st);
    *job = rt__job_find(c->jobs, run->job);
    rc = taken && *job ? RT_OK : RT_HELD;
    if (rc == RT_OK && params) rc = rt__run_load_params(s, run);
    if (rc != RT_OK && taken && *job && !s->in_tx) {
        /* Claimed, committed, but not to be run: give its lease up, so
         * that a worker's heal takes it up again (as a crashed attempt). */
        char scope[600];
        rt__claim_scope(*job, run->key, scope, sizeof scope);
        rt__lease_target(c->lease, (*job)->name, scope);
        rt__lease_release(c->lease);
    }
    if (rc != RT_OK) rt__run_free(run);
    return rc;
}

/* The pick, on s: the run's row into *run, params included. */
static int claim_pick(rt__claim *c, rt_store *s, rt__run *run) {
    const char *sql = rt__store_claim_sql(s, RT_STORE_CLAIM_PICK, &claim_parts);
    if (sql) {
        rt__buf ids = {0};
        claim_refused_ids(c, &ids);
        rt_value args[] = {rt_text(c->wanted.p), rt_text(ids.p),
                           rt_text(c->job_scoped.p)};
        rt_stmt *st;
        int rc = rt__store_query(s, sql, 3, args, &st);
        rt__buf_free(&ids);
        if (rc == RT_DONE) return RT_NOTFOUND;
        if (rc != RT_ROW) return rc;
        rt__run_from_row(st, run);
        bool params = rt__store_column_int64(st, RT__RUN_NCOLUMNS) != 0;
        rc = rt__store_step(st);
        if (rc == RT_DONE) rc = params ? rt__run_load_params(s, run) : RT_OK;
        return rc;
    }
    rt__claim_pick picks[8];
    int n = 0;
    rt_stmt *st;
    int rc = rt__store_query(s, RT__LC_CLAIM_PICK_SQL, 0, NULL, &st);
    rc = rt__claim_rows(c, st, rc, picks, 8, &n);
    if (rc != RT_OK) return rc;
    return n ? rt__run_load(s, picks[0].job, picks[0].key, run) : RT_NOTFOUND;
}

/* Are the run's steps still its job's? Else the ordinary start decides. */
static bool claim_same_steps(const rt_job *job, const rt__run *run) {
    char fp[17];
    rt__job_fingerprint(job, fp);
    return !strcmp(fp, run->fingerprint) &&
           run->step_index < rt__job_step_count(job) &&
           (!run->step_name ||
            !strcmp(run->step_name, job->steps[run->step_index].name));
}

/*
 * Inside a transaction on s: pick the next due run, take its lease and bump
 * its epoch (sent without waiting: it goes out with the COMMIT). RT_OK:
 * *run is taken once the transaction commits; RT_NOTFOUND: nothing due;
 * RT_HELD: its scope has a lease (a race lost); RT_CHANGED: the run's steps
 * differ from its job's (*run and *job say which); nothing is taken then.
 */
static int claim_take(rt__claim *c, rt_store *s, rt__run *run,
                      const rt_job **job) {
    memset(run, 0, sizeof *run);
    int rc = claim_pick(c, s, run);
    *job = rc == RT_OK ? rt__job_find(c->jobs, run->job) : NULL;
    if (rc == RT_OK && !*job) rc = RT_NOTFOUND; /* not ours (SQL filtered) */
    if (rc == RT_OK && !claim_same_steps(*job, run)) rc = RT_CHANGED;
    if (rc == RT_OK) {
        char scope[600];
        rt__claim_scope(*job, run->key, scope, sizeof scope);
        rc = rt__lease_insert(c->lease, s, (*job)->name, scope, run->key);
    }
    if (rc == RT_OK) {
        rt_value args[] = {rt_int(run->id), rt_int(run->epoch)};
        rc = rt__store_exec_later(s, RT__LC_CLAIM_SQL, 2, args);
    }
    if (rc != RT_OK && rc != RT_CHANGED) rt__run_free(run);
    return rc;
}

void rt__claim_taken(rt__claim *c, const rt_job *job, rt__run *run,
                     bool *fresh) {
    char scope[600];
    rt__claim_scope(job, run->key, scope, sizeof scope);
    rt__lease_target(c->lease, job->name, scope);
    *fresh = run->status == RT__ST_PENDING && run->items == 0 &&
             run->step_index == 0 && !run->has_cursor;
    run->epoch++;
    if (run->attempt < INT32_MAX) run->attempt++;
    run->status = RT__ST_RUNNING;
}

int rt__claim_run(rt__claim *c, rt__run *run, bool *fresh,
                  const rt_job **job) {
    rt_store *s = c->lease->s;
    memset(run, 0, sizeof *run);
    *job = NULL;
    const char *one = rt__store_claim_sql(s, RT_STORE_CLAIM_ONE, &claim_parts);
    int rc = rt__store_begin(s);
    if (rc == RT_OK && one) {
        rt_stmt *st;
        rc = claim_one(c, s, one, false, &st);
        rc = claim_one_row(c, s, st, rc, run, job);
        if (rc == RT_NOTFOUND) rc = claim_take(c, s, run, job);
    } else if (rc == RT_OK) {
        rc = claim_take(c, s, run, job);
    }
    if (rc == RT_OK) {
        rc = rt__store_commit(s);
        if (rc != RT_OK) rt__run_free(run);
    }
    if (s->in_tx) rt__store_rollback(s);
    if (rc == RT_OK) rt__claim_taken(c, *job, run, fresh);
    return rc;
}

int rt__claim_with(rt__claim *c, rt_store *s) {
    c->claimed = c->committed = false;
    c->on = s;
    const char *one = rt__store_claim_sql(s, RT_STORE_CLAIM_ONE, &claim_parts);
    if (one && rt__store_pipelined(s)) {
        int rc = claim_one(c, s, one, true, &c->next_st);
        if (rc == RT_OK) c->claimed = true;
        else c->next_st = NULL;
        return rc;
    }
    int rc = claim_take(c, s, &c->next, &c->next_job);
    if (rc == RT_OK) c->claimed = true;
    if (rc == RT_CHANGED) rt__run_free(&c->next); /* the ordinary claim's */
    return rc == RT_NOTFOUND || rc == RT_HELD || rc == RT_CHANGED ? RT_OK : rc;
}

int rt__claim_chained(rt__claim *c, rt__run *run, const rt_job **job) {
    int rc = RT_NOTFOUND;
    bool ours = c->claimed && c->committed;
    if (c->next_st) {
        rt_stmt *st = c->next_st;
        rc = ours ? claim_one_row(c, c->on, st, rt__store_step(st), run, job)
                  : (rt__store_reset(st), RT_NOTFOUND);
        if (rc != RT_OK && rc != RT_NOTFOUND && rc != RT_HELD)
            rt__store_trouble(c->on, &c->trouble_logged_ns,
                              "reading the run claimed with the last commit");
    } else if (ours) {
        *run = c->next;
        *job = c->next_job;
        rc = RT_OK;
    } else if (c->claimed) {
        rt__run_free(&c->next); /* rolled back */
    }
    c->next_st = NULL;
    c->claimed = c->committed = false;
    memset(&c->next, 0, sizeof c->next);
    return rc == RT_OK ? RT_OK : RT_NOTFOUND;
}
