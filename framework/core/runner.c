/*
 * runner.c — the supervisor: finds or creates a run, checks that the job
 * still matches it, and drives its steps under the commit protocol.
 *
 * Why progress is written in the same transaction as the work: a step's
 * inserts and the run's new cursor either both commit or both vanish, so after
 * any crash the cursor says exactly what was done — no committed work is
 * redone, nothing is written twice. Every transaction is
 *
 *     BEGIN (IMMEDIATE)
 *       the step's own SQL, on this connection
 *       UPDATE rt_run SET ...progress... WHERE id = ? AND epoch = ?
 *       -- 0 rows: another process took the run over: ROLLBACK, exit 3
 *     COMMIT
 *
 * Each start of a run bumps its epoch (the fencing token) in a short
 * transaction of its own, so an older process still working on the run can
 * never commit again. Resuming costs one row read: there is no history to
 * replay.
 *
 * It answers with an RT_* code, and in an rt__run_out with the CLI's exit
 * code, the one line behind the code (runner_why) and what the run came to
 * (runner_result). What it is told (rt__run_opts) means the same for every
 * caller: a lease readied already is an input (the worker's, or one readied
 * on a thread: lease_bg.c), and so is a worker's next claim, made with the
 * run's last commit (claim.c). A cron slot's bookkeeping is the daemon's.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/lifecycle.h"

typedef struct runner {
    rt_store *s;
    const rt_job *job;
    rt__run run;
    rt_ctx ctx;
    int nsteps;
    int64_t started_ns;      /* this process's start on the run */
    int64_t step_start_ns;   /* this process's start on the current step */
    int64_t step_start_items;
    rt__lease *lease;        /* ours while the run goes */
    rt__claim *claim_next;   /* a worker's next claim, with the last commit */
    bool redo;               /* the chained claim failed: redo the chunk */
    bool prepared_ahead;     /* the commit's statements were sent to parse */
    bool read_early;         /* run read before its lease was ours */
    bool claimed;            /* this process moved the run's epoch */
    bool created;            /* this start inserted the run */
    bool touched;            /* a commit of this process was attempted */
    bool forgotten;          /* the run was deleted (runner_forget) */
    bool skipped;            /* held, and --if-running skip: */
    char held_scope[512];    /* the scope, */
    char holder[160];        /* who held it, */
    char holder_key[256];    /* and for which run */
    int code;                /* the exit code, once the start ended while
                                taking the lease (RUNNER_LEASE_ENDED) */
    int why;                 /* the RT_* code behind the exit code, for
                                rt_run (0: the exit code's own, see
                                runner_result) */
    char why_msg[RT_ERRMSG_MAX];
} runner;

static void runner_fields(const runner *r, rt__log_fields *f) {
    f->job = r->job->name;
    f->key = r->run.key;
    f->run = r->run.id;
    f->step = r->run.step_index < r->nsteps
                  ? r->job->steps[r->run.step_index].name
                  : NULL;
    f->items = r->run.step_items;
    f->ms = -1;
}

static void runner_log(const runner *r, int level, const char *event,
                       int64_t ms, const char *fmt, const char *arg) {
    rt__log_fields f;
    runner_fields(r, &f);
    f.ms = ms;
    rt__log(level, event, &f, fmt, arg ? arg : "");
}

/* Why the run ends as it does, in the words of rt_run (rt__run_out):
 * the first reason given stays. */
static void runner_why(runner *r, int rc, const char *msg) {
    if (r->why) return;
    r->why = rc;
    size_t n = msg ? strlen(msg) : 0; /* cut to fit */
    if (n >= sizeof r->why_msg) n = sizeof r->why_msg - 1;
    if (n) memcpy(r->why_msg, msg, n);
    r->why_msg[n] = '\0';
}

static int64_t runner_elapsed_ms(int64_t since_ns) {
    return (rt__mono_ns() - since_ns) / 1000000;
}

/* ------------------------------------------------------ finding the run */

/* "seed,copy,report" from "seed\ncopy\nreport", for messages. */
static char *runner_steps_csv(const char *steps) {
    char *s = rt__xstrdup(steps);
    for (char *p = s; *p; p++)
        if (*p == '\n') *p = ',';
    return s;
}

/*
 * The index of step name in the job, -1 if it has none. Names, not indexes,
 * are the durable key; hint (the stored index) settles a repeated name.
 */
static int runner_step_index(const runner *r, const char *name, int hint) {
    if (hint >= 0 && hint < r->nsteps && !strcmp(r->job->steps[hint].name, name))
        return hint;
    for (int i = 0; i < r->nsteps; i++)
        if (!strcmp(r->job->steps[i].name, name)) return i;
    return -1;
}

/* A step list as stored ("a\nb\nc"), cut into names. */
typedef struct runner_names {
    char *text; /* a copy, cut at each '\n' */
    char **v;
    int n;
} runner_names;

static void runner_names_split(runner_names *l, const char *steps) {
    l->text = rt__xstrdup(steps);
    l->n = *steps ? 1 : 0;
    for (const char *p = steps; *p; p++) l->n += *p == '\n';
    l->v = rt__xmalloc(sizeof *l->v * (size_t)(l->n + 1));
    char *p = l->text;
    for (int i = 0; i < l->n; i++) {
        l->v[i] = p;
        p = strchr(p, '\n');
        if (p) *p++ = '\0';
    }
}

static int runner_names_find(const runner_names *l, const char *name) {
    for (int i = 0; i < l->n; i++)
        if (!strcmp(l->v[i], name)) return i;
    return -1;
}

static void runner_names_free(runner_names *l) {
    free(l->text);
    free(l->v);
}

/* out, ready for one more clause. */
static rt__buf *runner_clause(rt__buf *out) {
    if (out->len) rt__buf_puts(out, ", ");
    return out;
}

/*
 * What changed from the stored step list to the job's, in words, clauses
 * joined by ", ": "step 'b' was removed", "step 'b' was renamed or replaced
 * by 'x'", "step 'x' was inserted before 'c'", "step 'd' was added", "steps
 * were reordered". A removed and an added step between the same kept steps
 * pair up as a rename.
 */
void rt__runner_describe_change(const char *was_text, const char *now_text,
                                rt__buf *out) {
    runner_names was, now;
    runner_names_split(&was, was_text);
    runner_names_split(&now, now_text);
    /* gap: how many kept steps (in both lists) come before each step. */
    int *was_gap = rt__xmalloc(sizeof *was_gap * (size_t)(was.n + 1));
    int *now_gap = rt__xmalloc(sizeof *now_gap * (size_t)(now.n + 1));
    bool *paired = rt__xmalloc(sizeof *paired * (size_t)(now.n + 1));
    int was_kept = 0, now_kept = 0;
    for (int i = 0; i < was.n; i++) {
        was_gap[i] = was_kept;
        if (runner_names_find(&now, was.v[i]) >= 0) was_kept++;
    }
    for (int j = 0; j < now.n; j++) {
        now_gap[j] = now_kept;
        paired[j] = false;
        if (runner_names_find(&was, now.v[j]) >= 0) now_kept++;
    }
    /* The kept steps in another order (a repeated name is beyond words). */
    bool reordered = false;
    for (int i = 0, j = 0; was_kept == now_kept && i < was.n && !reordered;
         i++) {
        if (runner_names_find(&now, was.v[i]) < 0) continue;
        while (j < now.n && runner_names_find(&was, now.v[j]) < 0) j++;
        reordered = j < now.n && strcmp(was.v[i], now.v[j]) != 0;
        j++;
    }
    for (int i = 0; i < was.n; i++) {
        if (runner_names_find(&now, was.v[i]) >= 0) continue;
        int j = 0;
        while (j < now.n && (paired[j] || now_gap[j] != was_gap[i] ||
                             runner_names_find(&was, now.v[j]) >= 0))
            j++;
        if (j < now.n) {
            paired[j] = true;
            rt__buf_printf(runner_clause(out),
                           "step '%s' was renamed or replaced by '%s'",
                           was.v[i], now.v[j]);
        } else {
            rt__buf_printf(runner_clause(out), "step '%s' was removed",
                           was.v[i]);
        }
    }
    for (int j = 0; j < now.n; j++) {
        if (paired[j] || runner_names_find(&was, now.v[j]) >= 0) continue;
        int k = j + 1;
        while (k < now.n && runner_names_find(&was, now.v[k]) < 0) k++;
        if (k < now.n)
            rt__buf_printf(runner_clause(out),
                           "step '%s' was inserted before '%s'", now.v[j],
                           now.v[k]);
        else
            rt__buf_printf(runner_clause(out), "step '%s' was added",
                           now.v[j]);
    }
    if (reordered) rt__buf_puts(runner_clause(out), "steps were reordered");
    /* Only a repeated name can get here without a clause. */
    if (!out->len) rt__buf_puts(out, "its step list changed");
    free(was_gap);
    free(now_gap);
    free(paired);
    runner_names_free(&was);
    runner_names_free(&now);
}

/*
 * How the run meets the job's definition, decided before anything is
 * written. Same fingerprint: compatible. Steps only appended at the end:
 * compatible, and *adopt says the stored list follows the job when the run
 * is claimed. Anything else — removed, renamed, reordered — is refused,
 * naming the difference: resuming would run the wrong code against the
 * saved cursor. restart_step (--restart-step) takes the job's definition
 * whatever it is; *restart_at is that step's index, else -1.
 */
static int runner_check_definition(runner *r, const char *restart_step,
                                   bool *adopt, int *restart_at) {
    char fp[17];
    rt__job_fingerprint(r->job, fp);
    bool same = !strcmp(fp, r->run.fingerprint);
    *adopt = false;
    *restart_at = -1;
    if (restart_step) {
        *restart_at = runner_step_index(r, restart_step, -1);
        if (*restart_at >= 0) {
            *adopt = !same;
            return RT_OK;
        }
        char *known = rt__job_steps_text(r->job);
        char *known_csv = runner_steps_csv(known);
        rt__store_fail(r->s, RT_INVALID,
                       "--restart-step: job %s has no step '%s' (its steps "
                       "are [%s])",
                       r->job->name, restart_step, known_csv);
        free(known_csv);
        free(known);
        return RT_INVALID;
    }
    if (same) return RT_OK;
    char *now = rt__job_steps_text(r->job);
    size_t n = strlen(r->run.steps);
    if (!strncmp(now, r->run.steps, n) && now[n] == '\n') {
        free(now);
        *adopt = true;
        return RT_OK;
    }
    rt__buf why = {0};
    rt__runner_describe_change(r->run.steps, now, &why);
    rt__buf where = {0};
    /* The two lists help, unless they would push the ways out off the
     * message (RT_ERRMSG_MAX). */
    if (n + strlen(now) < 400) {
        char *was_csv = runner_steps_csv(r->run.steps);
        char *now_csv = runner_steps_csv(now);
        rt__buf_printf(&where, "old steps [%s], new [%s]; ", was_csv,
                       now_csv);
        free(was_csv);
        free(now_csv);
    }
    if (r->run.step_name)
        rt__buf_printf(&where, "the run is at step '%s'", r->run.step_name);
    else
        rt__buf_printf(&where, "the run is at step %d", r->run.step_index + 1);
    rt__store_fail(r->s, RT_CHANGED,
                   "job %s changed since run '%s' began: %s (%s); run it "
                   "again with --restart-step NAME to continue at step NAME "
                   "of the new definition, or discard its progress with "
                   "'ratchet reset %s --key %s'",
                   r->job->name, r->run.key, why.p, where.p, r->job->name,
                   r->run.key);
    rt__buf_free(&why);
    rt__buf_free(&where);
    free(now);
    return RT_CHANGED;
}

/* Given params must equal the stored ones: they are part of the run. */
static int runner_check_params(runner *r, const rt__params *given) {
    for (int i = 0; i < given->n; i++) {
        const char *had = rt__params_get(&r->run.params, given->v[i].name);
        if (!had || strcmp(had, given->v[i].value))
            return rt__store_fail(
                r->s, RT_INVALID,
                "run '%s' of %s was started with %s%s%s; --param %s=%s "
                "differs (params are fixed when a run starts; use another "
                "--key for other params)",
                r->run.key, r->job->name, had ? given->v[i].name : "no ",
                had ? "=" : given->v[i].name, had ? had : " param",
                given->v[i].name, given->v[i].value);
    }
    return RT_OK;
}

/* A new run's params by the job's own rules (rt_job.check), before it is
 * stored: RT_INVALID with the reason in s->errmsg when they are refused. */
static int runner_check_new(runner *r, const char *key,
                            const rt__params *params) {
    char err[RT_ERRMSG_MAX];
    if (rt__job_check(r->job, key, params, err, sizeof err) == RT_OK)
        return RT_OK;
    return rt__store_fail(r->s, RT_INVALID, "%s", err);
}

static int runner_find(runner *r, const rt__run_opts *o) {
    rt_store *s = r->s;
    int rc;
    if (o->key) {
        rc = rt__run_load(s, r->job->name, o->key, &r->run);
        if (rc == RT_NOTFOUND && o->restart_step)
            return rt__store_fail(s, RT_INVALID,
                                  "run '%s' of %s does not exist; "
                                  "--restart-step continues an unfinished run",
                                  o->key, r->job->name);
        if (rc == RT_NOTFOUND) {
            rc = runner_check_new(r, o->key, &o->params);
            if (rc == RT_OK)
                rc = rt__run_insert(s, r->job, o->key, &o->params, &r->run);
            if (rc == RT_OK) r->created = true;
            if (rc == RT_HELD) /* created by another process just now */
                rc = rt__run_load(s, r->job->name, o->key, &r->run);
        } else if (rc == RT_OK) {
            rc = runner_check_params(r, &o->params);
        }
        return rc;
    }
    rc = rt__run_load_unfinished(s, r->job->name, &r->run);
    if (rc == RT_OK) return runner_check_params(r, &o->params);
    if (rc != RT_NOTFOUND) return rc;
    if (o->restart_step)
        return rt__store_fail(s, RT_INVALID,
                              "%s has no unfinished run; --restart-step "
                              "continues one (name it with --key)",
                              r->job->name);
    char key[64];
    rt__iso8601_ms(rt__wall_ms(), key, sizeof key);
    if ((rc = runner_check_new(r, key, &o->params)) != RT_OK) return rc;
    for (int i = 2; i < 100; i++) {
        rc = rt__run_insert(s, r->job, key, &o->params, &r->run);
        r->created = rc == RT_OK;
        if (rc != RT_HELD) return rc;
        char base[40];
        rt__iso8601_ms(rt__wall_ms(), base, sizeof base);
        snprintf(key, sizeof key, "%s-%d", base, i);
    }
    return rc;
}

/* The claim (runner_claim): the lifecycle's START or TAKEOVER. */
#define RUNNER_CLAIM_SQL RT__LC_START_SQL

static int runner_set_status(runner *r, rt__event ev, const char *error);

/* The progress the claim returned, into r->run: RT_OK, or RT_INVALID (st
 * reset, s->errmsg naming the run and the column) when a cursor column
 * holds a value of the wrong type: text or a real in cursor_int is not
 * read as 0, which would start the step over. attempt is clamped (one below
 * INT_MAX: a worker adds one), not truncated. */
static int runner_claimed_row(runner *r, rt_stmt *st) {
    rt__run *run = &r->run;
    char err[RT_ERRMSG_MAX];
    if (rt__run_cursor_check(st, 4, 5, r->job->name, run->key, err,
                             sizeof err) != RT_OK) {
        rt__store_reset(st);
        return rt__store_fail(r->s, RT_INVALID, "%s", err);
    }
    run->epoch = rt__store_column_int64(st, 0);
    run->attempt = rt__count_clamp(rt__store_column_int64(st, 1));
    run->step_index = rt__count_clamp(rt__store_column_int64(st, 2));
    free(run->step_name);
    run->step_name = rt__store_column_type(st, 3) == RT_TNULL
                         ? NULL
                         : rt__xstrdup(rt__store_column_text(st, 3));
    run->has_cursor_bytes = rt__store_column_type(st, 5) != RT_TNULL;
    run->has_cursor =
        rt__store_column_type(st, 4) != RT_TNULL || run->has_cursor_bytes;
    run->cursor_int = rt__store_column_type(st, 4) == RT_TNULL
                          ? 0
                          : rt__store_column_int64(st, 4);
    run->cursor_len = 0;
    if (run->has_cursor_bytes) {
        size_t n = 0;
        const void *p = rt__store_column_blob(st, 5, &n);
        run->cursor_bytes = rt__xrealloc(run->cursor_bytes, n + 1);
        if (n) memcpy(run->cursor_bytes, p, n);
        run->cursor_len = n;
    }
    run->items = rt__store_column_int64(st, 6);
    run->step_items = rt__store_column_int64(st, 7);
    run->step_total = rt__store_column_type(st, 8) == RT_TNULL
                          ? -1
                          : rt__store_column_int64(st, 8);
    return RT_OK;
}

/* The run is at a step its job does not have (only a row written by hand
 * says so): RT_CHANGED. */
static int runner_unknown_step(runner *r) {
    return rt__store_fail(r->s, RT_CHANGED,
                          "run '%s' is at step '%s', which job %s does not "
                          "have; 'ratchet reset %s --key %s' discards it",
                          r->run.key, r->run.step_name, r->job->name,
                          r->job->name, r->run.key);
}

/*
 * Bump the epoch: from now on only this process can commit to the run. The
 * same transaction adopts the job's step list when asked (steps appended,
 * or --restart-step) and, for a restart (restart_at >= 0), moves the run to
 * that step with its cursor and step counts cleared; the run's item total
 * stays. The claim is fenced on the epoch the definition was checked
 * against, and the progress comes back from the UPDATE itself: the row as
 * of the fence, whatever an older holder committed meanwhile. The position
 * is the step of that name in the job (names are the durable key).
 *
 * A server gets the UPDATE and its COMMIT in one round trip (pipelined):
 * the step name read with the run is checked before, and the rare
 * correction of a step index written by hand follows in a transaction of
 * its own, fenced by the new epoch.
 */
static int runner_claim(runner *r, bool adopt, int restart_at) {
    rt_store *s = r->s;
    if (r->run.epoch == INT64_MAX) /* only a row written by hand gets here */
        return rt__store_fail(s, RT_INVALID,
                              "run '%s' of %s has used up its epochs (%lld): "
                              "no process can take it; 'ratchet reset %s "
                              "--key %s' discards it",
                              r->run.key, r->job->name,
                              (long long)r->run.epoch, r->job->name,
                              r->run.key);
    bool piped = rt__store_pipelined(s);
    if (piped && restart_at < 0 && r->run.step_name &&
        runner_step_index(r, r->run.step_name, r->run.step_index) < 0)
        return runner_unknown_step(r);
    char fp[17];
    rt__job_fingerprint(r->job, fp);
    char *steps = rt__job_steps_text(r->job);
    /* Its commit need not be durable (store.h, lax_transaction): one fsync
     * less before the first chunk (SQLite). */
    rt__store_lax_transaction(s);
    int rc = rt__store_begin(s);
    if (rc != RT_OK) {
        free(steps);
        return rc;
    }
    bool restart = restart_at >= 0;
    rt_value args[] = {
        rt_int(r->run.id),
        rt_text(fp),
        rt_text(steps),
        rt_int(adopt),
        rt_int(r->run.epoch),
        rt_int(restart),
        rt_int(restart ? restart_at : 0),
        restart ? rt_text(r->job->steps[restart_at].name) : rt_null(),
    };
    rt_stmt *st = NULL;
    /* Failpoint resume.read_cursor (test builds): where a start reads its
     * saved step and cursor back. */
    rc = RT_FAILPOINT(s, "resume.read_cursor");
    if (rc == RT_OK && piped) {
        rc = rt__store_send_kept(s, RUNNER_CLAIM_SQL, 8, args, false, &st);
        if (rc == RT_OK) rc = rt__store_commit(s);
        if (rc == RT_OK) rc = rt__store_step(st); /* committed: its row */
    } else if (rc == RT_OK) {
        rc = rt__store_query(s, RUNNER_CLAIM_SQL, 8, args, &st);
    }
    if (rc == RT_ROW) {
        rc = runner_claimed_row(r, st);
        if (rc == RT_OK) rc = rt__store_step(st);
    } else if (rc == RT_DONE) {
        rc = rt__store_fail(s, RT_FENCED,
                            "run finished, was claimed by another process "
                            "or was removed meanwhile; run again to see "
                            "where it stands");
    }
    /* Where the run is: the step of its name. Only a row written by hand
     * can disagree with its index; the index follows the name. */
    int at = r->run.step_index;
    if (rc == RT_DONE && r->run.step_name) {
        at = runner_step_index(r, r->run.step_name, r->run.step_index);
        if (at < 0) rc = runner_unknown_step(r);
    }
    bool fix = rc == RT_DONE && at != r->run.step_index;
    if (fix && piped) rc = rt__store_begin(s);
    if (fix && (rc == RT_OK || rc == RT_DONE)) {
        rt_value fixed[] = {rt_int(r->run.id), rt_int(at), rt_int(r->run.epoch)};
        rc = rt__store_exec(s,
                            "UPDATE rt_run SET step_index = $2 WHERE id = $1 "
                            "AND epoch = $3",
                            3, fixed, NULL);
        if (rc == RT_OK) rc = RT_DONE;
        r->run.step_index = at;
    }
    if (rc == RT_DONE && (!piped || fix)) rc = rt__store_commit(s);
    if (rc == RT_DONE) rc = RT_OK;
    if (rc != RT_OK) {
        free(steps);
        /* Pipelined, the claim may be committed: its run is left as a
         * stopped one is (only a step name written meanwhile gets here). */
        if (piped && s->in_tx) rt__store_abort(s, rc);
        if (piped && rc == RT_CHANGED) {
            int why = rc;
            r->run.status = RT__ST_RUNNING; /* as the claim left it */
            runner_set_status(r, RT__EV_REFUSE, NULL);
            return why;
        }
        return piped ? rc : rt__store_abort(s, rc);
    }
    /* Committed: the run in memory follows the database (its status too:
     * runner_interrupted trusts it to know whether 'interrupted' is saved). */
    r->run.status = RT__ST_RUNNING;
    r->claimed = true;
    if (adopt) {
        free(r->run.steps);
        r->run.steps = steps;
        free(r->run.fingerprint);
        r->run.fingerprint = rt__xstrdup(fp);
    } else {
        free(steps);
    }
    return RT_OK;
}

/* ------------------------------------------------------------ the loop */

/* The fenced progress UPDATE of every commit: the lifecycle's COMMIT,
 * FINISH, STOP or CANCEL_SEEN. */
#define RUNNER_PROGRESS_SQL RT__LC_COMMIT_SQL

/* The same, failing in the server when the fence does not hold (no row:
 * a division by zero), returning cancel_requested. A commit that ends the
 * run 'cancelled' deletes its lease ($11 scope, $12 owner) with it: a
 * finished run keeps no lease. */
#define RUNNER_FENCED_SQL                                                      \
    "WITH u AS (" RUNNER_PROGRESS_SQL " RETURNING cancel_requested), d AS "    \
    "(DELETE FROM rt_lease WHERE scope = $11 AND owner = $12 AND EXISTS "     \
    "(SELECT 1 FROM u WHERE cancel_requested = 1)) SELECT "                    \
    "max(cancel_requested), 1 / count(*) FROM u"

/* The same when the status stays (lifecycle.h). */
#define RUNNER_PROGRESS_SAME_STATUS_SQL RT__LC_COMMIT_SAME_SQL

/*
 * Run the progress UPDATE and read cancel_requested back: RT_OK, RT_DONE
 * when no row matched (fenced), or an error. A server answers both in one
 * round trip (RETURNING); in process a SELECT is a mere call, where SQLite's
 * RETURNING would cost a statement journal, allocated and freed, per commit.
 * In process, most commits are settled by the same-status UPDATE alone.
 */
static int runner_progress_update(runner *r, const rt_value *args,
                                  bool *cancel) {
    rt_stmt *st;
    int rc;
    *cancel = false;
    if (r->s->in_process) {
        int64_t changes = 0;
        rc = rt__store_exec(r->s, RUNNER_PROGRESS_SAME_STATUS_SQL, 10, args,
                            &changes);
        if (rc != RT_OK || changes == 1) return rc;
        rc = rt__store_exec(r->s, RUNNER_PROGRESS_SQL, 10, args, &changes);
        if (rc != RT_OK) return rc;
        if (changes == 0) return RT_DONE;
        rc = rt__store_query(r->s,
                             "SELECT cancel_requested FROM rt_run WHERE id = $1",
                             1, args, &st);
    } else {
        rc = rt__store_query(r->s,
                             RUNNER_PROGRESS_SQL " RETURNING cancel_requested",
                             10, args, &st);
    }
    if (rc != RT_ROW) return rc;
    *cancel = rt__store_column_int64(st, 0) != 0;
    rc = rt__store_step(st);
    return rc == RT_DONE ? RT_OK : rc;
}

/* The lease given up in the open transaction: its DELETE goes out with
 * the COMMIT. */
static int runner_release_later(runner *r) {
    rt_value largs[] = {rt_text(r->lease->scope), rt_text(r->lease->owner)};
    int rc = RT_FAILPOINT(r->s, "lease.release"); /* test builds */
    return rc == RT_OK ? rt__store_exec_later(r->s, RT__LEASE_DELETE_SQL, 2, largs)
                       : rc;
}

/*
 * The fenced progress update, in the step's transaction, then COMMIT.
 * RT_FENCED when the run's epoch moved on (taken over). When an operator
 * asked to cancel, the chunk still commits and the run ends 'cancelled' in
 * this very transaction.
 */
static int runner_commit(runner *r, bool step_done) {
    rt_ctx *c = &r->ctx;
    bool last = step_done && r->run.step_index + 1 == r->nsteps;
    int next = step_done ? r->run.step_index + 1 : r->run.step_index;
    /* A stop already requested is recorded with this commit. The flag is
     * read once: memory must say what the commit wrote, or a SIGTERM
     * between two reads leaves the run 'running' after exit 75. */
    bool stopping = rt__stop_flag;
    int64_t fence = r->run.epoch;
    /* Test builds, RATCHET_TEST_UNFENCED=1: no fence (the control). */
    RT_UNFENCE(r->s, r->run.id, &fence);
    rt_value args[] = {
        rt_int(r->run.id),
        rt_int(fence),
        rt_int(next),
        next < r->nsteps ? rt_text(r->job->steps[next].name) : rt_null(),
        !step_done && c->has_cursor ? rt_int(c->cursor_int) : rt_null(),
        !step_done && c->has_cursor_bytes
            ? rt_blob(c->cursor_bytes, c->cursor_len)
            : rt_null(),
        rt_int(rt__add_sat(r->run.items, c->chunk_items)),
        rt_int(step_done ? 0 : c->step_items),
        !step_done && c->total >= 0 ? rt_int(c->total) : rt_null(),
        rt_text(rt__status_name(last       ? RT__ST_DONE
                                : stopping ? RT__ST_INTERRUPTED
                                           : RT__ST_RUNNING)),
        /* RUNNER_FENCED_SQL's: the lease a cancel takes with it */
        r->lease && !r->lease->lost ? rt_text(r->lease->scope) : rt_null(),
        r->lease && !r->lease->lost ? rt_text(r->lease->owner) : rt_null(),
    };
    bool cancel = false;
    /* Pipelining backends: the fence fails in the server, so COMMIT goes
     * out with the update and cancel_requested is read after it. */
    rt_stmt *fenced = NULL;
    int rc = rt__store_pipelined(r->s)
                 ? rt__store_send_kept(r->s, RUNNER_FENCED_SQL, 12, args,
                                       true, &fenced)
                 : runner_progress_update(r, args, &cancel);
    if (rc == RT_DONE) rc = RT_FENCED;
    /* In process the cancel is known before COMMIT: a commit that ends the
     * run 'cancelled' gives its lease up with it (a server does it in
     * RUNNER_FENCED_SQL). */
    bool cancel_release = cancel && !last && r->lease && !r->lease->lost &&
                          !r->lease->cancel && !stopping;
    if (rc == RT_OK && cancel_release) rc = runner_release_later(r);
    /* One writer at a time: the heartbeat thread cannot write while a
     * chunk's transaction is open, so each commit refreshes the lease. */
    if (rc == RT_OK && r->lease && r->s->single_writer)
        rc = rt__lease_refresh_sql(r->lease, r->s);
    /* The run's end, or its stop, gives its lease up in the same
     * transaction: one commit less on the way out. So does a cancel the
     * heartbeat thread saw asked (the commit then ends the run
     * 'cancelled'): a finished run keeps no lease. */
    bool ending = last || stopping || (r->lease && r->lease->cancel);
    if (rc == RT_OK && ending && r->lease && !r->lease->lost) {
        rc = runner_release_later(r);
    }
    /* A worker's next run is claimed by this very commit (claim.c). Should
     * that fail, nothing of this transaction stays: the chunk is redone,
     * alone. */
    bool chained = last && !stopping && r->claim_next && rc == RT_OK;
    if (chained && (rc = rt__claim_with(r->claim_next, r->s)) != RT_OK) {
        r->claim_next->claimed = false;
        if (rc != RT_FENCED && !rt__store_broken(r->s)) {
            runner_log(r, RT_LOG_WARN, "chain", -1,
                       "claiming the next run with this commit failed (%s); "
                       "redoing the last chunk without it", r->s->errmsg);
            r->claim_next = NULL;
            r->redo = true;
        }
    }
    if (rc == RT_OK) rc = rt__store_commit(r->s);
    if (rc == RT_FENCED)
        rc = rt__store_fail(r->s, RT_FENCED,
                            "run was taken over (epoch %lld is no longer "
                            "current); this process rolled back and stops",
                            (long long)r->run.epoch);
    if (rc != RT_OK) return rt__store_abort(r->s, rc);
    if (fenced) { /* committed: its row is there */
        if (rt__store_step(fenced) == RT_ROW)
            cancel = rt__store_column_int64(fenced, 0) != 0;
        rt__store_reset(fenced);
    }
    cancel = cancel && !last; /* the last commit finished the run anyway */
    if (cancel && r->lease) r->lease->released = true; /* with the commit */

    /* Committed: the run in memory follows the database. */
    if (chained) r->claim_next->committed = true;
    if (ending && r->lease) r->lease->released = true;
    r->run.items = rt__add_sat(r->run.items, c->chunk_items);
    if (step_done) {
        r->run.step_index = next;
        r->run.has_cursor = r->run.has_cursor_bytes = false;
        r->run.cursor_int = 0;
        r->run.cursor_len = 0;
        r->run.step_items = 0;
        r->run.step_total = -1;
    } else {
        r->run.has_cursor = c->has_cursor;
        r->run.has_cursor_bytes = c->has_cursor_bytes;
        r->run.cursor_int = c->cursor_int;
        if (c->has_cursor_bytes) {
            r->run.cursor_bytes =
                rt__xrealloc(r->run.cursor_bytes, c->cursor_len + 1);
            memcpy(r->run.cursor_bytes, c->cursor_bytes, c->cursor_len + 1);
            r->run.cursor_len = c->cursor_len;
        }
        r->run.step_items = c->step_items;
        r->run.step_total = c->total;
    }
    if (last || cancel || stopping)
        r->run.status = last     ? RT__ST_DONE
                        : cancel ? RT__ST_CANCELLED
                                 : RT__ST_INTERRUPTED;
    return RT_OK;
}

/* A move of the run's own outside step work (lifecycle.c): stop, refuse,
 * fail, or cancel (a cancel asked while no process held it). Each ends
 * this process's hold on the run, so the lease is given up in the same
 * transaction (one commit, not two, as a chunk's last commit does). Should
 * it fail (the connection lost, the stop's deadline near), the lease stays
 * with the run, which reads 'running' still: a run and its lease never
 * disagree, and the next start takes the run over once this process is
 * gone. */
static int runner_set_status(runner *r, rt__event ev, const char *error) {
    /* 'interrupted' need not survive a power loss (store.h,
     * lax_transaction): lost, the run reads 'running' under the lease of a
     * holder the power loss killed, and the next start takes it over at the
     * same committed position. One fsync less on the way out (SQLite). */
    if (ev == RT__EV_STOP) rt__store_lax_transaction(r->s);
    int rc = rt__store_begin(r->s);
    if (rc != RT_OK) { /* the run stays as it was: so does its lease */
        if (r->lease && !r->lease->lost && !r->lease->released)
            r->lease->keep = true;
        return rc;
    }
    rt__verdict v = {.event = ev, .id = r->run.id, .job = r->job->name,
                     .key = r->run.key, .from = r->run.status,
                     .epoch = r->run.epoch,
                     .who = r->lease ? r->lease->owner : NULL, .why = error,
                     .failures = -1, .delay_ms = -1};
    /* Its answer is awaited (a round trip on a server): only a move that
     * happened gives the lease up with it. */
    bool moved = false;
    rc = rt__transition(r->s, &v, &moved);
    bool give_up = r->lease && !r->lease->lost && !r->lease->released;
    if (rc == RT_OK && !moved) {
        if (give_up) r->lease->keep = true; /* the run stays as it was */
        rt__store_abort(r->s, RT_OK);
        return rt__store_fail(r->s, RT_FENCED,
                              "run %s of %s moved on meanwhile; it stays as "
                              "it is", r->run.key, r->job->name);
    }
    if (rc == RT_OK && give_up) {
        rc = runner_release_later(r);
    }
    if (rc == RT_OK) rc = rt__store_commit(r->s);
    if (rc != RT_OK) {
        if (give_up) r->lease->keep = true;
        return rt__store_abort(r->s, rc);
    }
    if (give_up) r->lease->released = true;
    r->run.status = rt__lifecycle_move(v.from, ev).to;
    return RT_OK;
}

static int runner_db_error(runner *r, const char *what);
static int runner_fenced(runner *r);

/*
 * A queued run's attempt failed (its transaction is rolled back): it goes
 * back to the queue after a backoff, or, after its last attempt or when
 * another cannot go better (final: its input is refused), fails.
 */
static int runner_attempt_failed(runner *r, const char *error, bool final) {
    int max = rt__run_max_attempts(&r->run, r->job);
    int failures = r->run.failures + 1;
    bool again = failures < max && !final;
    int64_t delay = again ? rt__retry_backoff_ms(r->job, failures) : 0;
    /* Its lease goes in the same transaction: a lease left behind would
     * keep the run from its next attempt. */
    bool give_up = r->lease && !r->lease->lost && !r->lease->released;
    rt__verdict v = {.event = again ? RT__EV_STEP_ERROR : RT__EV_FAIL,
                     .id = r->run.id, .job = r->job->name, .key = r->run.key,
                     .from = r->run.status, .epoch = r->run.epoch,
                     .who = r->lease ? r->lease->owner : NULL, .why = error,
                     .failures = failures, .delay_ms = delay,
                     .scope = give_up ? r->lease->scope : NULL,
                     .owner = give_up ? r->lease->owner : NULL};
    bool moved = false;
    int rc = rt__transition(r->s, &v, &moved);
    if (rc != RT_OK && give_up) r->lease->keep = true; /* as the run stays */
    if (rc != RT_OK) return runner_db_error(r, "recording the failed attempt");
    if (!moved) {
        rt__store_fail(r->s, RT_FENCED,
                       "run was taken over before its failed attempt could "
                       "be recorded (epoch %lld is no longer current); this "
                       "process stops", (long long)r->run.epoch);
        return runner_fenced(r);
    }
    if (give_up) r->lease->released = true;
    r->run.status = rt__lifecycle_move(v.from, v.event).to;
    char msg[RT_ERRMSG_MAX + 160];
    snprintf(msg, sizeof msg, "%s (failed attempt %d of %d%s)", error,
             failures, max, again ? "; retried after the backoff in ms" : "");
    runner_log(r, again ? RT_LOG_WARN : RT_LOG_ERROR, again ? "retry" : "failed",
               again ? delay : runner_elapsed_ms(r->started_ns), "%s", msg);
    return RT_EXIT_FAILED;
}

/* Load the committed position into the context before each call. */
static void runner_prepare_ctx(runner *r, bool chunked_before) {
    rt_ctx *c = &r->ctx;
    c->step = &r->job->steps[r->run.step_index];
    c->step_index = r->run.step_index;
    c->attempt = r->run.attempt;
    c->has_cursor = r->run.has_cursor;
    c->cursor_int = r->run.cursor_int;
    c->has_cursor_bytes = false;
    if (r->run.has_cursor_bytes)
        rt_set_cursor_bytes(c, r->run.cursor_bytes, r->run.cursor_len);
    c->step_items = r->run.step_items;
    c->total = r->run.step_total;
    c->chunk_items = 0;
    c->asked = chunked_before;
    c->stopped = false;
    c->sql_stopped = false;
    c->sql_refused = false;
    c->errmsg[0] = '\0';
    c->chunk_start_ns = rt__mono_ns();
}

static void runner_progress(runner *r, bool force) {
    rt__log_fields f;
    runner_fields(r, &f);
    double secs = (double)(rt__mono_ns() - r->step_start_ns) / 1e9;
    double rate = secs > 0.05
                      ? (double)(r->run.step_items - r->step_start_items) / secs
                      : 0;
    rt__progress(&f, r->run.step_index + 1, r->nsteps, r->run.step_total, rate,
                 force);
}

/* Wait for the write lock; a stop request ends the wait. */
static int runner_begin(runner *r) {
    int64_t last_log = 0;
    for (;;) {
        int rc = rt__store_begin(r->s);
        if (rc != RT_BUSY) return rc;
        if (rt__stop_flag) return RT_STOPPED;
        int64_t now = rt__mono_ns();
        if (now - last_log > 10000000000LL) {
            runner_log(r, RT_LOG_WARN, "busy", -1, "%s",
                       "database is locked by another writer; waiting");
            last_log = now;
        }
    }
}

/* `ratchet cancel` reached the run: the commit that saw it ended it. */
static int runner_cancelled(runner *r) {
    rt__progress_clear();
    runner_log(r, RT_LOG_INFO, "cancelled", runner_elapsed_ms(r->started_ns),
               "%s", "cancelled by operator; the work committed so far is "
               "kept, 'ratchet retry' resumes the run");
    runner_why(r, RT_OK, NULL);
    return RT_EXIT_OK;
}

static int runner_interrupted(runner *r) {
    rt__progress_clear();
    /* Usually the last chunk's commit recorded it; else one more write. */
    if (r->run.status != RT__ST_INTERRUPTED) {
        r->s->finishing = true; /* wait for the lock despite the stop */
        int rc = runner_set_status(r, RT__EV_STOP, NULL);
        /* Refused while a cancel is asked (lifecycle.c): answer it, under
         * the same fence, rather than leave it pending on a stopped run. */
        bool cancelled = rc == RT_FENCED &&
                         runner_set_status(r, RT__EV_CANCEL_SEEN,
                                           RT_CANCELLED_ERROR) == RT_OK;
        r->s->finishing = false;
        if (cancelled) return runner_cancelled(r);
    }
    runner_log(r, RT_LOG_INFO, "interrupted", runner_elapsed_ms(r->started_ns),
               "stopped by %s; progress saved, run again to resume",
               rt__stop_signal == SIGINT    ? "SIGINT"
               : rt__stop_signal == SIGTERM ? "SIGTERM"
                                            : "request (rt_request_stop)");
    runner_why(r, RT_STOPPED, "stopped on request; progress saved, run "
               "again to resume");
    return RT_EXIT_INTERRUPTED;
}

/* A database error outside the step's own work: resumable, nothing lost. */
static int runner_db_error(runner *r, const char *what) {
    rt__progress_clear();
    char msg[RT_ERRMSG_MAX + 64];
    snprintf(msg, sizeof msg, "%s: %s", what, r->s->errmsg);
    runner_log(r, RT_LOG_ERROR, "db_error", -1,
               "%s; progress up to the last commit is saved, run again to "
               "resume",
               msg);
    runner_why(r, rt__store_broken(r->s) ? RT_CONN : RT_DBERR, msg);
    return RT_EXIT_INTERRUPTED;
}

/*
 * Whose fence moved: an operator's `reset --force` deletes the run (its
 * row is gone, or its key names another run now), anyone else bumps its
 * epoch. Not known (the store failed) reads as taken over.
 */
static bool runner_was_reset(runner *r) {
    if (rt__store_broken(r->s)) return false;
    rt__run now;
    memset(&now, 0, sizeof now);
    int rc = rt__run_load(r->s, r->job->name, r->run.key, &now);
    bool reset = rc == RT_NOTFOUND || (rc == RT_OK && now.id != r->run.id);
    if (rc == RT_OK) rt__run_free(&now);
    return reset;
}

/* The fence did not hold: nothing was written; exit 3. */
static int runner_fenced(runner *r) {
    rt__progress_clear();
    static const char reset[] =
        "run was reset by an operator (deleted with its progress while this "
        "process held it); this process rolled back and stops";
    if (runner_was_reset(r)) {
        runner_log(r, RT_LOG_ERROR, "reset", -1, "%s", reset);
        runner_why(r, RT_FENCED, reset);
    } else {
        runner_log(r, RT_LOG_ERROR, "lease_lost", -1, "%s", r->s->errmsg);
        runner_why(r, RT_FENCED, r->s->errmsg);
    }
    return RT_EXIT_HELD;
}

/*
 * The connection dropped (server restart, pg_terminate_backend, network):
 * the open transaction is gone with it, which is fine — its work and its
 * progress vanished together. Reconnect with jittered exponential backoff,
 * then re-read the run: that also settles a COMMIT whose reply was lost (if
 * the cursor moved, it committed). If the epoch moved, another process took
 * the run over meanwhile: fenced.
 */
#define RUNNER_RECONNECT_LIMIT_MS 60000

static int runner_reload(runner *r) {
    rt__run fresh;
    memset(&fresh, 0, sizeof fresh);
    int rc = rt__run_load(r->s, r->job->name, r->run.key, &fresh);
    if (rc == RT_NOTFOUND)
        rc = rt__store_fail(r->s, RT_FENCED, "run was removed meanwhile");
    if (rc == RT_OK && fresh.epoch != r->run.epoch)
        rc = rt__store_fail(r->s, RT_FENCED,
                            "run was taken over while disconnected (epoch "
                            "%lld, ours %lld); this process stops",
                            (long long)fresh.epoch, (long long)r->run.epoch);
    if (rc != RT_OK) {
        rt__run_free(&fresh);
        return rc;
    }
    rt__run_free(&r->run);
    r->run = fresh;
    return RT_OK;
}

static int runner_recover(runner *r) {
    rt__progress_clear();
    runner_log(r, RT_LOG_WARN, "db_connection_lost", -1,
               "%s; reconnecting, the uncommitted chunk will be redone",
               r->s->errmsg);
    int64_t start = rt__mono_ns();
    int64_t delay_ms = 100;
    unsigned seed = (unsigned)(start ^ (int64_t)getpid());
    for (int attempt = 1;; attempt++) {
        if (rt__stop_flag) return RT_STOPPED;
        int rc = rt__store_reconnect(r->s);
        if (rc == RT_OK) rc = runner_reload(r);
        if (rc == RT_OK) {
            char n[16];
            snprintf(n, sizeof n, "%d", attempt);
            runner_log(r, RT_LOG_INFO, "db_reconnected",
                       runner_elapsed_ms(start),
                       "reconnected (attempt %s); resuming from the last "
                       "commit",
                       n);
            return RT_OK;
        }
        if (rc == RT_FENCED) return rc;
        if (!rt__store_broken(r->s) && rc != RT_CONN) return rc;
        if (runner_elapsed_ms(start) > RUNNER_RECONNECT_LIMIT_MS) return RT_CONN;
        int64_t ms = delay_ms / 2 + (int64_t)(rand_r(&seed) % (delay_ms / 2 + 1));
        struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
        nanosleep(&ts, NULL); /* a stop signal cuts it short */
        if (delay_ms < 5000) delay_ms *= 2;
    }
}

/* One call of the current step in its own transaction. */
static int runner_call(runner *r, bool *chunked, int *step_rc) {
    int rc = runner_begin(r);
    if (rc == RT_STOPPED) return RT_STOPPED;
    if (rc != RT_OK) return rc;
    if (rt__stop_flag) {
        (void)RT_FAILPOINT(r->s, "stop.rollback"); /* test builds */
        rt__store_rollback(r->s);
        return RT_STOPPED;
    }
    /* Once per run in this process, the server parses the statements of
     * the commit while the step works: a stop soon after the start (or a
     * first chunk) then waits for their execution and the WAL flush only.
     * A failure to send resurfaces with the step's first statement. */
    if (!r->prepared_ahead) {
        r->prepared_ahead = true;
        (void)rt__store_prepare_ahead(r->s, RUNNER_FENCED_SQL);
        if (r->lease) (void)rt__store_prepare_ahead(r->s, RT__LEASE_DELETE_SQL);
    }
    runner_prepare_ctx(r, *chunked);
    rt__signals_atomic(!*chunked);
    int src = r->ctx.step->run(&r->ctx);
    rt__signals_atomic(false);
    *chunked = r->ctx.asked;
    /* Its SQL was interrupted: whatever it returns, part of its work is
     * missing, so it must not commit. */
    if (r->ctx.sql_stopped && (src == RT_DONE || src == RT_MORE))
        src = RT_STOPPED;
    *step_rc = src;
    if (src == RT_DONE || src == RT_MORE) return runner_commit(r, src == RT_DONE);
    if (src == RT_STOPPED) (void)RT_FAILPOINT(r->s, "stop.rollback");
    rt__store_rollback(r->s);
    return RT_ERROR;
}

/*
 * What a failed chunk means, decided here once (DESIGN.md, "The run's
 * lifecycle"). rc is the step's return code when by_step, else the code of
 * the chunk's transaction (its BEGIN, or the COMMIT a step's RT_DONE or
 * RT_MORE asked for, where a deferred constraint or a pipelined statement
 * of the step fails too); refused: the database refused the statement that
 * failed (rt_store.refused), which no second try mends.
 */
typedef enum {
    RUNNER_RETRY,   /* transient (busy, serialization failure, deadlock,
                       lock timeout): redo the chunk */
    RUNNER_LOST,    /* the connection is gone: reconnect, or exit 75 */
    RUNNER_TROUBLE, /* the store failed to carry it out (an I/O error, a
                       full disk): exit 75, run again to resume */
    RUNNER_STOP,    /* a stop request: exit 75 */
    RUNNER_FENCED,  /* another process took the run over: exit 3 */
    RUNNER_INVALID, /* the step refused its input: exit 2 */
    RUNNER_FAIL     /* anything else: the run fails with the message */
} runner_verdict;

static runner_verdict runner_classify(int rc, bool by_step, bool broken,
                                      bool refused) {
    if (broken) return RUNNER_LOST;
    switch (rc) {
    case RT_BUSY: return RUNNER_RETRY;
    case RT_STOPPED: return !by_step || rt__stop_flag ? RUNNER_STOP : RUNNER_FAIL;
    case RT_FENCED: return by_step ? RUNNER_FAIL : RUNNER_FENCED;
    case RT_INVALID: return by_step ? RUNNER_INVALID : RUNNER_TROUBLE;
    case RT_DBERR: return refused ? RUNNER_FAIL : RUNNER_TROUBLE;
    case RT_CONN: return RUNNER_TROUBLE; /* said lost, yet not broken */
    default: return by_step ? RUNNER_FAIL : RUNNER_TROUBLE;
    }
}

/* The run fails for good (a queued one: a failed attempt, retried after
 * its backoff while it has attempts left); msg says why. */
static int runner_failed(runner *r, const char *msg) {
    char error[RT_ERRMSG_MAX + 64];
    snprintf(error, sizeof error, "step %s: %s", r->ctx.step->name, msg);
    if (r->run.queued) return runner_attempt_failed(r, error, false);
    int frc = runner_set_status(r, RT__EV_FAIL, error);
    if (frc == RT_FENCED) return runner_fenced(r);
    runner_log(r, RT_LOG_ERROR, "failed", runner_elapsed_ms(r->started_ns),
               "%s", error);
    runner_why(r, RT_ERROR, error);
    return RT_EXIT_FAILED;
}

/*
 * A run that this start created and that has done nothing (no commit was
 * tried, no other start ever claimed it) is deleted, with its params and
 * our lease, in one transaction fenced by its epoch: RT_FENCED when the
 * epoch moved on (nothing is deleted then).
 */
static int runner_forget(runner *r) {
    int rc = rt__store_begin(r->s);
    if (rc != RT_OK) return rc;
    rt__verdict v = {.event = RT__EV_FORGET, .id = r->run.id,
                     .job = r->job->name, .key = r->run.key,
                     .from = r->run.status, .epoch = r->run.epoch,
                     .who = r->lease ? r->lease->owner : NULL,
                     .why = "its start was refused before it did anything",
                     .failures = -1, .delay_ms = -1};
    bool moved = false;
    rc = rt__transition(r->s, &v, &moved);
    if (rc == RT_OK && !moved) rc = RT_FENCED;
    bool give_up = r->lease && !r->lease->lost && !r->lease->released;
    if (rc == RT_OK && give_up) rc = runner_release_later(r);
    if (rc == RT_OK) rc = rt__store_commit(r->s);
    if (rc != RT_OK) return rt__store_abort(r->s, rc);
    if (give_up) r->lease->released = true;
    return RT_OK;
}

/*
 * The step refused its input (RT_INVALID): exit 2. A queued run fails, at
 * once (its params cannot change; another attempt would meet the same):
 * exit 1. A run this
 * start created and that has done nothing is deleted, so that its key is
 * free for a start with other params; any other keeps its progress,
 * 'interrupted' with msg as its error.
 */
static int runner_invalid(runner *r, const char *msg) {
    if (r->run.queued) {
        char error[RT_ERRMSG_MAX + 64];
        snprintf(error, sizeof error, "step %s: %s", r->ctx.step->name, msg);
        return runner_attempt_failed(r, error, true);
    }
    bool forget = r->created && !r->touched && r->run.attempt == 1;
    runner_why(r, RT_INVALID, msg);
    if (forget && runner_forget(r) == RT_OK) {
        r->forgotten = true;
        runner_log(r, RT_LOG_ERROR, "invalid", -1,
                   "%s; the run was not kept (it had done nothing): its key "
                   "is free for a start with other params", msg);
        return RT_EXIT_USAGE;
    }
    runner_set_status(r, RT__EV_REFUSE, msg);
    runner_log(r, RT_LOG_ERROR, "invalid", -1,
               "%s; the run keeps its progress, with this as its error", msg);
    return RT_EXIT_USAGE;
}

static int runner_loop(runner *r) {
    bool chunked = false;
    int busy_retries = 0;
    r->step_start_ns = rt__mono_ns();
    r->step_start_items = r->run.step_items;
    while (r->run.step_index < r->nsteps) {
        int src = RT_OK;
        int rc = runner_call(r, &chunked, &src);
        bool committing = src == RT_DONE || src == RT_MORE;
        r->touched |= committing;
        if (r->redo && !rt__store_broken(r->s)) {
            r->redo = false;
            continue;
        }
        if (rc == RT_OK) {
            busy_retries = 0;
            rt__log_fields f;
            runner_fields(r, &f);
            if (rt__log_enabled(RT_LOG_DEBUG))
                rt__log(RT_LOG_DEBUG, "commit", &f, "chunk of %lld items",
                        (long long)r->ctx.chunk_items);
            if (src == RT_DONE) {
                f.step = r->ctx.step->name;
                f.items = r->ctx.step_items;
                f.ms = runner_elapsed_ms(r->step_start_ns);
                rt__progress_clear();
                rt__log(RT_LOG_INFO, "step_done", &f, "step %d/%d done",
                        r->ctx.step_index + 1, r->nsteps);
                chunked = false;
                r->step_start_ns = rt__mono_ns();
                r->step_start_items = 0;
            } else {
                runner_progress(r, false);
            }
            if (r->run.status == RT__ST_CANCELLED) return runner_cancelled(r);
            if (r->run.step_index < r->nsteps && rt__stop_flag)
                return runner_interrupted(r);
            /* A beat after the last commit gave the lease up finds no row:
             * that is no takeover (the commit held the fence). */
            if (r->lease && r->lease->lost && !r->lease->released) {
                rt__store_fail(r->s, RT_FENCED,
                               "lease of %s was taken over by another "
                               "process; this process stops",
                               r->lease->scope);
                return runner_fenced(r);
            }
            continue;
        }
        /* The chunk did not commit: it is rolled back. What went wrong is
         * the step's return code (RT_ERROR from runner_call), else the
         * code of the chunk's transaction. */
        bool by_step = rc == RT_ERROR && !committing;
        int code = by_step ? src : rc;
        const char *msg = !by_step ? r->s->errmsg
                          : r->ctx.errmsg[0] ? r->ctx.errmsg
                                             : rt_strerror(src);
        runner_verdict v = runner_classify(
            code, by_step, rt__store_broken(r->s),
            by_step ? r->ctx.sql_refused : r->s->refused);
        if (v == RUNNER_LOST) {
            rc = runner_recover(r);
            if (rc == RT_OK) continue;
            if (rc == RT_FENCED) return runner_fenced(r);
            if (rc == RT_STOPPED) return runner_interrupted(r);
            return runner_db_error(r, "database connection lost");
        }
        if (v == RUNNER_STOP) return runner_interrupted(r);
        if (v == RUNNER_FENCED) return runner_fenced(r);
        rt__progress_clear();
        if (v == RUNNER_RETRY && ++busy_retries <= 10) {
            runner_log(r, RT_LOG_WARN, "retry", -1,
                       "transient error, retrying the chunk: %s", msg);
            /* A next run claimed with the failed COMMIT was not claimed:
             * the chunk is redone without it (see runner_commit). */
            if (!by_step) r->claim_next = NULL;
            struct timespec ts = {0, 10000000L * busy_retries};
            nanosleep(&ts, NULL);
            continue;
        }
        if (v == RUNNER_INVALID) return runner_invalid(r, msg);
        if (v == RUNNER_FAIL || (v == RUNNER_RETRY && by_step))
            return runner_failed(r, msg);
        /* RUNNER_TROUBLE (or a COMMIT still busy after its retries). */
        if (by_step) snprintf(r->s->errmsg, sizeof r->s->errmsg, "%s", msg);
        return runner_db_error(r, by_step ? "database error in step"
                                          : "commit failed");
    }
    rt__progress_clear();
    rt__log_fields f;
    runner_fields(r, &f);
    f.items = r->run.items;
    f.ms = runner_elapsed_ms(r->started_ns);
    rt__log(RT_LOG_INFO, "done", &f, "run finished");
    return RT_EXIT_OK;
}

static int runner_refuse(runner *r, int rc) {
    rt__log_fields f = RT_LOG_FIELDS_NONE;
    f.job = r->job->name;
    f.key = r->run.key;
    if (rc == RT_CHANGED || rc == RT_INVALID) {
        rt__log(RT_LOG_ERROR, "refused", &f, "%s", r->s->errmsg);
        runner_why(r, rc, r->s->errmsg);
        return RT_EXIT_USAGE;
    }
    /* Another process (or an operator's reset) moved the run between its
     * read and this start's claim: lost to it, as a fenced holder is. */
    if (rc == RT_FENCED) return runner_fenced(r);
    rt__log(RT_LOG_ERROR, "db_error", &f, "%s", r->s->errmsg);
    runner_why(r, rt__store_broken(r->s) ? RT_CONN : rc, r->s->errmsg);
    /* The connection went away (a server restart, a terminated session),
     * the disk is full, or a lock was not had in time (lock_timeout, a
     * deadlock, a serialization failure: RT_BUSY): temporary, as when it
     * happens mid-run; start again to resume. */
    return rc == RT_BUSY || rt__store_broken(r->s) || r->s->disk_full
               ? RT_EXIT_INTERRUPTED
               : RT_EXIT_FAILED;
}

/* ------------------------------------------------------------ the lease */

/* How taking the lease went: ours (the start goes on); or the start ended
 * (held and --if-running said so, a stop, an error), its exit code in
 * r->code; or (runner_lease_early) no lease was readied on the thread. */
typedef enum runner_took {
    RUNNER_LEASE_OURS,
    RUNNER_LEASE_ENDED,
    RUNNER_LEASE_UNREADY
} runner_took;

static runner_took runner_ended(runner *r, int code) {
    r->code = code;
    return RUNNER_LEASE_ENDED;
}

static runner_took runner_lease_take(runner *r, rt__lease *l,
                                     const char *scope, rt__run_opts *o,
                                     int rc, bool took_over);

/*
 * A cron slot came due while another run of the job holds it: the daemon's
 * overlap policy is skip, so the slot's run is recorded as skipped, at the
 * instant its process found the lease held (the daemon's --record-skip).
 */
static int runner_skip_slot(runner *r, rt__lease *l, const rt__run_opts *o) {
    char reason[512];
    snprintf(reason, sizeof reason,
             "slot skipped: run '%s' of %s was still going (held by %s)",
             l->holder_key, r->job->name, l->holder);
    bool skipped = false;
    rt__log_fields f = RT_LOG_FIELDS_NONE;
    f.job = r->job->name;
    f.key = o->key;
    if (rt__run_skip(r->s, r->job->name, o->key, reason, &skipped) != RT_OK) {
        rt__log(RT_LOG_ERROR, "db_error", &f, "recording the skipped slot: %s",
                r->s->errmsg);
        runner_why(r, RT_DBERR, r->s->errmsg);
        return RT_EXIT_FAILED;
    }
    if (skipped) rt__log(RT_LOG_INFO, "slot_skipped", &f, "%s", reason);
    return RT_EXIT_OK;
}

/* Sleep until the wall clock reaches at_ms, in steps short enough to see
 * a stop request from another thread (rt_request_stop) as well as a
 * signal's; false when a stop came first. */
static bool runner_sleep_until(int64_t at_ms) {
    for (int64_t left; !rt__stop_flag && (left = at_ms - rt__wall_ms()) > 0;)
        rt__sleep_ms(left < 50 ? left : 50);
    return !rt__stop_flag;
}

/*
 * Take the scope's lease, or do what --if-running says when a live process
 * holds it. A lease readied already (l->s set: the caller's, or lease_bg.c's)
 * is pointed at scope; else l opens a connection of its own on o->url.
 */
static runner_took runner_lease(runner *r, rt__lease *l, const char *scope,
                                rt__run_opts *o) {
    char err[RT_ERRMSG_MAX];
    rt__log_fields f = RT_LOG_FIELDS_NONE;
    f.job = r->job->name;
    f.key = o->key;
    int rc = RT_OK;
    if (l->s)
        rt__lease_target(l, r->job->name, scope);
    else
        rc = rt__lease_open(l, o->url, r->job->name, scope, o->lease_ttl_ms,
                            err, sizeof err);
    if (rc != RT_OK) {
        rt__log(RT_LOG_ERROR, "db_open", &f, "%s", err);
        runner_why(r, rc, err);
        /* RT_CONN: the server answered the work connection a moment ago. */
        return runner_ended(r, rc == RT_INVALID ? RT_EXIT_USAGE
                               : rc == RT_CONN  ? RT_EXIT_INTERRUPTED
                                                : RT_EXIT_FAILED);
    }
    if (o->start_at_ms > rt__wall_ms()) {
        /* Early: do now the first-use work of the statements the start
         * needs (a server plans each on a new session), then wait. */
        rt__lease_warm(l);
        rt__run warm;
        if (o->key && rt__run_load(r->s, r->job->name, o->key, &warm) == RT_OK)
            rt__run_free(&warm);
        char at[40];
        rt__iso8601_ms(o->start_at_ms, at, sizeof at);
        rt__log(RT_LOG_DEBUG, "start_wait", &f, "ready; the run is taken at %s",
                at);
        if (!runner_sleep_until(o->start_at_ms)) {
            rt__log(RT_LOG_INFO, "interrupted", &f, "%s",
                    "stopped before the run's start time; nothing was done");
            runner_why(r, RT_STOPPED, "stopped before the run's start time; "
                       "nothing was done");
            return runner_ended(r, RT_EXIT_INTERRUPTED);
        }
    }
    bool took_over = false;
    rc = rt__lease_acquire(l, o->key, &took_over);
    return runner_lease_take(r, l, scope, o, rc, took_over);
}

/* The lease's first attempt gave rc: ours, or --if-running decides,
 * waiting as long as it says. */
static runner_took runner_lease_take(runner *r, rt__lease *l,
                                     const char *scope, rt__run_opts *o,
                                     int rc, bool took_over) {
    rt__log_fields f = RT_LOG_FIELDS_NONE;
    f.job = r->job->name;
    f.key = o->key;
    int64_t waited_since = 0;
    bool said_waiting = false;
    unsigned seed = (unsigned)(rt__mono_ns() ^ (int64_t)getpid());
    for (;; rc = rt__lease_acquire(l, o->key, &took_over)) {
        if (rc == RT_OK) {
            if (took_over)
                rt__log(RT_LOG_WARN, "takeover", &f,
                        "took over %s from %s", scope, l->holder);
            if (waited_since)
                rt__log(RT_LOG_INFO, "acquired", &f,
                        "%s is ours after waiting %lld ms", scope,
                        (long long)((rt__mono_ns() - waited_since) / 1000000));
            r->lease = l;
            return RUNNER_LEASE_OURS;
        }
        if (rc != RT_HELD && rc != RT_BUSY) {
            rt__log(RT_LOG_ERROR, "db_error", &f, "lease of %s: %s", scope,
                    l->s->errmsg);
            runner_why(r, rt__store_broken(l->s) ? RT_CONN : rc, l->s->errmsg);
            return runner_ended(r, rt__store_broken(l->s) || l->s->disk_full
                                       ? RT_EXIT_INTERRUPTED
                                       : RT_EXIT_FAILED);
        }
        if (rc == RT_HELD && o->if_running == RT_IF_RUNNING_FAIL) {
            char msg[RT_ERRMSG_MAX];
            snprintf(msg, sizeof msg,
                     "%s is held by %s (run '%s', heartbeat %.1f s ago); use "
                     "--if-running wait or skip",
                     scope, l->holder, l->holder_key,
                     (double)l->holder_age_ms / 1000.0);
            rt__log(RT_LOG_ERROR, "held", &f, "%s", msg);
            runner_why(r, RT_HELD, msg);
            return runner_ended(r, RT_EXIT_HELD);
        }
        if (rc == RT_HELD && o->if_running == RT_IF_RUNNING_SKIP &&
            o->record_skip && o->key && strcmp(l->holder_key, o->key))
            return runner_ended(r, runner_skip_slot(r, l, o));
        if (rc == RT_HELD && o->if_running == RT_IF_RUNNING_SKIP) {
            /* Its caller says so (rt__run_out), as loud as it likes. */
            r->skipped = true;
            snprintf(r->held_scope, sizeof r->held_scope, "%s", scope);
            snprintf(r->holder, sizeof r->holder, "%s", l->holder);
            snprintf(r->holder_key, sizeof r->holder_key, "%s",
                     l->holder_key);
            return runner_ended(r, RT_EXIT_OK);
        }
        if (!waited_since) waited_since = rt__mono_ns();
        if (rc == RT_HELD && !said_waiting) {
            said_waiting = true;
            rt__log(RT_LOG_INFO, "waiting", &f,
                    "%s is held by %s (run '%s'); waiting for it", scope,
                    l->holder, l->holder_key);
            /* Waiting on the run that is going: its outcome is ours. */
            if (!o->key && l->holder_key[0] && r->job->exclusive == RT_EXCLUSIVE_JOB)
                o->key = f.key = rt__xstrdup(l->holder_key);
        }
        if (rt__stop_flag) {
            rt__log(RT_LOG_INFO, "interrupted", &f, "%s",
                    "stopped while waiting; nothing was done");
            runner_why(r, RT_STOPPED, "stopped while waiting for the run's "
                       "holder; nothing was done");
            return runner_ended(r, RT_EXIT_INTERRUPTED);
        }
        rt__sleep_ms(100 + rand_r(&seed) % 50);
        took_over = false;
    }
}

/*
 * runner_lease for a run named by its key, the lease readied on a thread of
 * its own (lease_bg.c): it takes the lease there while this thread reads
 * the run on the work connection, so the two chains of round trips overlap.
 * The read is kept only when the lease came at the first attempt (*read:
 * r->run holds it); a run read before its lease was ours is claimed fenced
 * on the epoch read, and read again should anything have moved meanwhile
 * (runner_go).
 */
static runner_took runner_lease_early(runner *r, rt__lease_bg *b,
                                      const char *scope, rt__run_opts *o,
                                      bool *read) {
    int rc = rt__run_load(r->s, r->job->name, o->key, &r->run);
    bool took_over = false;
    int taken = rt__lease_bg_taken(b, &took_over);
    *read = rc == RT_OK && taken == RT_OK;
    if (rc == RT_OK && !*read) rt__run_free(&r->run);
    r->read_early = *read;
    if (!b->lease.s) return RUNNER_LEASE_UNREADY;
    return runner_lease_take(r, &b->lease, scope, o, taken, took_over);
}

static int runner_drive(runner *r, const rt__run_opts *o, bool fresh,
                        bool adopt, int restart_at);

/* The run is found and the lease is ours: claim it and drive its steps. */
static int runner_go(runner *r, const rt__run_opts *o) {
    rt_store *s = r->s;
    rt__status status = r->run.status;
    if (o->restart_step && rt__status_terminal(status)) {
        rt__store_fail(s, RT_INVALID,
                       "run '%s' of %s is %s; --restart-step continues only "
                       "an unfinished run (pending, running or interrupted); "
                       "'ratchet reset %s --key %s' discards this one",
                       r->run.key, r->job->name, rt__status_name(status),
                       r->job->name, r->run.key);
        return runner_refuse(r, RT_INVALID);
    }
    if (status == RT__ST_GONE) {
        rt__store_fail(s, RT_INVALID,
                       "run '%s' of %s has a status this version does not "
                       "know; 'ratchet reset %s --key %s' discards it",
                       r->run.key, r->job->name, r->job->name, r->run.key);
        return runner_refuse(r, RT_INVALID);
    }
    if (status == RT__ST_DONE) {
        runner_log(r, RT_LOG_INFO, "already_done", -1, "%s",
                   "run already finished; nothing to do");
        return RT_EXIT_OK;
    }
    if (status == RT__ST_SKIPPED) {
        runner_log(r, RT_LOG_INFO, "already_skipped", -1,
                   "run was skipped (%s); 'ratchet reset' discards it",
                   r->run.error ? r->run.error : "no reason recorded");
        return RT_EXIT_OK;
    }
    if (status == RT__ST_CANCELLED) {
        runner_log(r, RT_LOG_INFO, "already_cancelled", -1, "%s",
                   "run was cancelled; 'ratchet retry' resumes it");
        return RT_EXIT_OK;
    }
    if (status == RT__ST_FAILED) {
        runner_log(r, RT_LOG_ERROR, "already_failed", -1,
                   "run failed earlier (%s); 'ratchet retry' resumes it, "
                   "'ratchet reset' discards it",
                   r->run.error ? r->run.error : "no message");
        char msg[RT_ERRMSG_MAX];
        snprintf(msg, sizeof msg, "run failed earlier: %s",
                 r->run.error ? r->run.error : "no message");
        runner_why(r, RT_ERROR, msg);
        return RT_EXIT_FAILED;
    }
    /* Cancelled while its holder was away (killed, or stopped outside a
     * commit): end it here rather than run one more chunk. */
    if (r->run.cancel_requested) {
        int crc = runner_set_status(r, RT__EV_CANCEL, RT_CANCELLED_ERROR);
        if (crc != RT_OK) return runner_refuse(r, crc);
        return runner_cancelled(r);
    }
    bool adopt = false;
    int restart_at = -1;
    bool fresh = r->run.status == RT__ST_PENDING && r->run.items == 0 &&
                 r->run.step_index == 0 && !r->run.has_cursor;
    int rc = runner_check_definition(r, o->restart_step, &adopt, &restart_at);
    if (rc == RT_OK) rc = runner_claim(r, adopt, restart_at);
    if ((rc == RT_FENCED || rc == RT_CHANGED) && r->read_early) {
        /* Read before the lease was ours, and something moved since (a
         * holder finished it, or adopted new steps): read it again. */
        r->read_early = false;
        rt__run_free(&r->run);
        rc = runner_find(r, o);
        return rc == RT_OK ? runner_go(r, o) : runner_refuse(r, rc);
    }
    if (rc != RT_OK) return runner_refuse(r, rc);
    return runner_drive(r, o, fresh, adopt, restart_at);
}

/* The run is claimed (its epoch is ours): heartbeat, and drive its steps. */
static int runner_drive(runner *r, const rt__run_opts *o, bool fresh,
                        bool adopt, int restart_at) {
    rt_store *s = r->s;
    if (r->lease) { /* its heartbeat thread also watches for a cancel */
        r->lease->run_id = r->run.id;
        r->ctx.cancel = &r->lease->cancel;
    }
    if (r->lease && rt__lease_start(r->lease) != RT_OK)
        rt__log(RT_LOG_WARN, "heartbeat", NULL,
                "could not start the heartbeat thread");
    r->ctx.store = s;
    r->ctx.job = r->job;
    r->ctx.run = &r->run;
    r->ctx.budget_items = o->chunk_items;
    r->ctx.budget_ms = o->chunk_ms;
    s->ctx = &r->ctx;
    rt__log_fields f;
    runner_fields(r, &f);
    if (restart_at >= 0)
        rt__log(RT_LOG_INFO, "restart_step", &f,
                "restarting at step %d/%d from scratch (cursor and step "
                "items cleared, %lld items kept)%s (attempt %d)",
                r->run.step_index + 1, r->nsteps, (long long)r->run.items,
                adopt ? "; the run now follows the job's current steps" : "",
                r->run.attempt);
    else if (fresh)
        rt__log(RT_LOG_INFO, "start", &f, "run started (%d steps)", r->nsteps);
    else
        rt__log(RT_LOG_INFO, "resume", &f,
                "resuming at step %d/%d after %lld items (attempt %d)",
                r->run.step_index + 1, r->nsteps,
                (long long)r->run.step_items, r->run.attempt);
    int code = runner_loop(r);
    s->ctx = NULL;
    return code;
}

/*
 * What the run came to (out): the code given with the reason (runner_why),
 * else the one the exit code means; returned.
 */
static int runner_result(const runner *r, int code, rt__run_out *out) {
    int rc = r->why;
    if (!rc && code != RT_EXIT_OK)
        rc = code == RT_EXIT_FAILED  ? RT_ERROR
             : code == RT_EXIT_USAGE ? RT_INVALID
             : code == RT_EXIT_HELD  ? RT_HELD
             : rt__stop_flag         ? RT_STOPPED
                                     : RT_DBERR;
    if (!out) return rc;
    memset(out, 0, sizeof *out);
    out->exit_code = code;
    snprintf(out->err, sizeof out->err, "%s",
             rc == RT_OK ? ""
             : r->why_msg[0] ? r->why_msg
             : r->s->errmsg[0] ? r->s->errmsg
                               : rt_strerror(rc));
    rt_run_result *res = &out->result;
    bool known = r->run.id > 0 && !r->forgotten;
    if (known) {
        res->run_id = r->run.id;
        snprintf(res->key, sizeof res->key, "%s", r->run.key ? r->run.key : "");
        snprintf(res->status, sizeof res->status, "%s",
                 rt__status_name(r->run.status));
        res->items = r->run.items;
    }
    res->skipped = r->skipped;
    res->exit_code = code;
    if (r->skipped) {
        snprintf(out->held_scope, sizeof out->held_scope, "%s",
                 r->held_scope);
        snprintf(out->holder, sizeof out->holder, "%s", r->holder);
        snprintf(out->holder_key, sizeof out->holder_key, "%s",
                 r->holder_key);
    }
    return rc;
}

static void runner_init(runner *r, rt_store *s, const rt_job *job) {
    memset(r, 0, sizeof *r);
    r->s = s;
    r->job = job;
    r->nsteps = rt__job_step_count(job);
    r->started_ns = rt__mono_ns();
}

int rt__runner_run(rt_store *s, const rt_job *job, const rt__run_opts *given,
                   rt__run_out *out) {
    runner r;
    runner_init(&r, s, job);
    rt__run_opts o = *given;
    const char *given_key = o.key;
    /* The lease: the caller's (readied: its connection open, its owner
     * set; kept by the caller), the one readied on lease_bg's thread, or
     * one of this start's own. */
    rt__lease own, *lease = o.lease ? o.lease : &own;
    memset(&own, 0, sizeof own);
    bool per_key = job->exclusive == RT_EXCLUSIVE_KEY;
    runner_took took = RUNNER_LEASE_OURS;
    char scope[512];
    snprintf(scope, sizeof scope, per_key ? "%s/%s" : "%s", job->name,
             o.key ? o.key : "");
    /* The lease first, then the run: a run read in the meantime is kept
     * only when runner_lease_early says so. */
    bool early = o.url && o.key && !o.lease && !o.start_at_ms && o.lease_bg &&
                 rt__lease_bg_take(o.lease_bg, job->name, scope, o.key);
    bool read = false;
    if (early) took = runner_lease_early(&r, o.lease_bg, scope, &o, &read);
    if (early && took != RUNNER_LEASE_UNREADY) {
        lease = &o.lease_bg->lease;
    } else if (o.lease_bg) {
        early = false;
        took = RUNNER_LEASE_OURS;
        rt__lease *readied = rt__lease_bg_stop(o.lease_bg);
        if (readied && !o.lease) lease = readied;
    }
    if (!early && !per_key && o.url)
        took = runner_lease(&r, lease, job->name, &o);
    bool go = took == RUNNER_LEASE_OURS;
    int code = go ? RT_EXIT_OK : r.code;
    if (go) {
        int rc = read ? runner_check_params(&r, &o.params)
                      : runner_find(&r, &o);
        go = rc == RT_OK;
        if (!go) code = runner_refuse(&r, rc);
    }
    if (go && per_key && o.url && !early) {
        snprintf(scope, sizeof scope, "%s/%s", job->name, r.run.key);
        if (!o.key) o.key = rt__xstrdup(r.run.key);
        took = runner_lease(&r, lease, scope, &o);
        go = took == RUNNER_LEASE_OURS;
        if (!go) code = r.code;
        /* Waited: the holder may have moved the run on; read it again. */
        if (go) {
            rt__run_free(&r.run);
            int rc = runner_find(&r, &o);
            go = rc == RT_OK;
            if (!go) code = runner_refuse(&r, rc);
        }
    }
    /* Without a key the lease was taken before the run was known. */
    if (go && r.lease && !given_key &&
        rt__lease_set_key(r.lease, r.run.key) != RT_OK)
        rt__log(RT_LOG_WARN, "lease", NULL, "could not record the run key "
                "in the lease: %s", lease->s->errmsg);
    if (go) code = runner_go(&r, &o);
    /* A run left 'running' by a holder this process took the lease from,
     * and did not claim after all (a stop, a busy database): its lease
     * stays with it, to be taken over again, rather than a 'running' run
     * without one. */
    if (r.run.status == RT__ST_RUNNING && !r.claimed) lease->keep = true;
    rt__lease_release(lease);
    if (lease != o.lease) rt__lease_close(lease); /* the caller keeps its own */
    int rc = runner_result(&r, code, out);
    if (o.key != given_key) free((char *)o.key);
    free(r.ctx.cursor_bytes);
    rt__run_free(&r.run);
    return rc;
}

int rt__runner_run_claimed(rt_store *s, const rt_job *job,
                           const rt__run_opts *o, rt__run *run, bool fresh,
                           rt__lease *lease, rt__run_out *out) {
    runner r;
    runner_init(&r, s, job);
    r.run = *run;
    memset(run, 0, sizeof *run);
    r.lease = lease;
    r.claim_next = o->claim_next;
    /* A cursor of the wrong type (rt__run_from_row): a failed attempt
     * saying so, not a step started over from cursor 0. */
    int code = r.run.invalid[0] ? runner_attempt_failed(&r, r.run.invalid, true)
                                : runner_drive(&r, o, fresh, false, -1);
    rt__lease_release(lease);
    int rc = runner_result(&r, code, out);
    free(r.ctx.cursor_bytes);
    rt__run_free(&r.run);
    return rc;
}
