/*
 * embed_main.c — build/ratchet-embed: a program that embeds ratchet the
 * way a service would, for tests/check_embed.c. It runs its job with
 * rt_run (never rt_main), takes SIGTERM with a handler of its own that
 * calls rt_request_stop, and prints what each rt_run returned on stdout,
 * one line per call:
 *
 *   <label> rc=RT_STOPPED status=interrupted items=50 id=1 key=k exit=75 skipped=0 err=...
 *
 * Usage: RATCHET_DB=URL ratchet-embed MODE KEY [IF_RUNNING]
 *   signal  run; at item HOLD the step says "embed: halfway" on stderr and
 *           waits for a stop (SIGTERM -> rt_request_stop); then print
 *           rt_run_status, rt_clear_stop, run again (a resume) and print.
 *   thread  the same, but a thread of its own requests the stop.
 *   hold    run, stopped as for signal; no second run.
 *   once    one rt_run with IF_RUNNING (fail, skip or wait); exit with
 *           the exit code it reports.
 *   grace   job embed_slow, whose step runs one statement of a minute or
 *           more: a thread requests the stop once it began, and
 *           rt_run (grace_s 0.3) interrupts it; prints "ms=" how long the
 *           call took after the request.
 * Job embed_count: step setup (atomic) creates embed_item; step fill
 * inserts items 0..n-1 (param n, default 100) with their number as the
 * cursor, HOLD = 50 (param hold; -1: never); step report records the count.
 * embed_item's primary key makes a restarted step fail, not double.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ratchet.h"

static int embed_fd_halfway[2] = {-1, -1}; /* thread mode: the step says */

static int embed_setup(rt_ctx *ctx) {
    int rc = rt_exec(ctx,
                     "CREATE TABLE IF NOT EXISTS embed_item "
                     "(i BIGINT PRIMARY KEY, run_key TEXT NOT NULL);"
                     "CREATE TABLE IF NOT EXISTS embed_report "
                     "(run_key TEXT PRIMARY KEY, n BIGINT NOT NULL)",
                     0, NULL);
    return rc == RT_OK ? RT_DONE : rc;
}

static int embed_fill(rt_ctx *ctx) {
    int64_t n, hold;
    int rc = rt_param_int64(ctx, "n", 100, &n);
    if (rc == RT_OK) rc = rt_param_int64(ctx, "hold", 50, &hold);
    if (rc != RT_OK) return rc;
    for (int64_t i = rt_cursor_int64(ctx); i < n; i++) {
        if (!rt_continue(ctx)) return RT_MORE;
        rc = RT_EXEC(ctx, "INSERT INTO embed_item (i, run_key) VALUES ($1, $2)",
                     rt_int(i), rt_text(rt_key(ctx)));
        if (rc != RT_OK) return rc;
        rt_add_items(ctx, 1);
        rt_set_cursor_int64(ctx, i + 1);
        if (i + 1 == hold) {
            /* Items 0..hold-1 are done: wait here for a stop, so that it
             * comes mid-step, at a known place. */
            static const char msg[] = "embed: halfway\n";
            ssize_t w = write(STDERR_FILENO, msg, sizeof msg - 1);
            (void)w;
            if (embed_fd_halfway[1] >= 0) {
                w = write(embed_fd_halfway[1], "h", 1);
                (void)w;
            }
            while (!rt_stop_requested(ctx)) {
                struct timespec ts = {0, 2000000};
                nanosleep(&ts, NULL);
            }
        }
    }
    return RT_DONE;
}

static int embed_report(rt_ctx *ctx) {
    int64_t n = 0;
    int rc = rt_query_int64(ctx,
                            "SELECT count(*) FROM embed_item WHERE run_key = $1",
                            1, (rt_value[]){rt_text(rt_key(ctx))}, &n);
    if (rc != RT_OK) return rc;
    rc = RT_EXEC(ctx, "INSERT INTO embed_report (run_key, n) VALUES ($1, $2)",
                 rt_text(rt_key(ctx)), rt_int(n));
    return rc == RT_OK ? RT_DONE : rc;
}

static const rt_step embed_steps[] = {
    {"setup", embed_setup},
    {"fill", embed_fill},
    {"report", embed_report},
    {NULL, NULL},
};
static const rt_param_def embed_params[] = {
    {"n", RT_PARAM_INT, "100", "items to insert"},
    {"hold", RT_PARAM_INT, "50", "wait for a stop after this many (-1: never)"},
    {NULL, 0, NULL, NULL},
};
/* A step stuck in one long statement (rt_backend tells which SQL). It
 * asks rt_continue first, so it is chunked: a stop requested from here on
 * does not refuse its statement, as it would an atomic step's; only the
 * grace's interrupt ends it. */
static int embed_slow_step(rt_ctx *ctx) {
    if (!rt_continue(ctx)) return RT_MORE;
    ssize_t w = write(embed_fd_halfway[1], "s", 1); /* it begins */
    (void)w;
    int64_t n = 0;
    int rc = !strcmp(rt_backend(ctx), "postgres")
                 ? rt_query_int64(ctx, "SELECT 1 FROM pg_sleep(120)", 0, NULL, &n)
                 : rt_query_int64(ctx,
                                  "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL "
                                  "SELECT x + 1 FROM c WHERE x < 4000000000) "
                                  "SELECT count(*) FROM c",
                                  0, NULL, &n);
    return rc == RT_OK ? RT_DONE : rc;
}
static const rt_step embed_slow_steps[] = {{"slow", embed_slow_step},
                                           {NULL, NULL}};
static const rt_job embed_slow = {.name = "embed_slow",
                                  .steps = embed_slow_steps};

static const rt_job embed_job = {
    .name = "embed_count",
    .description = "inserts n items, for tests/check_embed.c",
    .steps = embed_steps,
    .params = embed_params,
};

/* The embedder's own handler: only the public, async-signal-safe call. */
static void embed_on_term(int sig) {
    (void)sig;
    rt_request_stop();
}

static struct timespec embed_stop_at; /* when the stopper requested it */

static void *embed_stopper(void *arg) {
    (void)arg;
    char c;
    while (read(embed_fd_halfway[0], &c, 1) < 0 && errno == EINTR) {
    }
    clock_gettime(CLOCK_MONOTONIC, &embed_stop_at);
    rt_request_stop();
    return NULL;
}

/* The grace: the long statement is interrupted 0.3 s after the stop. */
static int embed_grace(const char *url, const char *key) {
    pthread_t stopper;
    if (pipe(embed_fd_halfway) ||
        pthread_create(&stopper, NULL, embed_stopper, NULL)) {
        perror("embed: thread");
        return 1;
    }
    rt_run_opts o = RT_RUN_OPTS_INIT;
    o.grace_s = 0.3;
    rt_run_result res;
    char err[1024];
    int rc = rt_run(url, &embed_slow, key, &o, &res, err, sizeof err);
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    pthread_join(stopper, NULL);
    long long ms = (now.tv_sec - embed_stop_at.tv_sec) * 1000LL +
                   (now.tv_nsec - embed_stop_at.tv_nsec) / 1000000;
    printf("grace rc=%s status=%s items=%lld id=%lld key=%s exit=%d "
           "skipped=%d ms=%lld err=%s\n",
           rt_code_name(rc), res.status[0] ? res.status : "-",
           (long long)res.items, (long long)res.run_id,
           res.key[0] ? res.key : "-", res.exit_code, (int)res.skipped, ms,
           err);
    return res.exit_code;
}

static int embed_once(const char *label, const char *url, const char *key,
                      rt_if_running policy, const char *const *params) {
    rt_run_opts o = RT_RUN_OPTS_INIT;
    o.chunk_items = 7;
    o.chunk_ms = -1;
    o.if_running = policy;
    o.params = params;
    rt_run_result res;
    char err[1024];
    int rc = rt_run(url, &embed_job, key, &o, &res, err, sizeof err);
    printf("%s rc=%s status=%s items=%lld id=%lld key=%s exit=%d skipped=%d "
           "err=%s\n",
           label, rt_code_name(rc), res.status[0] ? res.status : "-",
           (long long)res.items, (long long)res.run_id,
           res.key[0] ? res.key : "-", res.exit_code, (int)res.skipped, err);
    fflush(stdout);
    return res.exit_code;
}

int main(int argc, char **argv) {
    const char *url = getenv("RATCHET_DB");
    if (argc < 3 || !url) {
        fprintf(stderr, "usage: RATCHET_DB=URL %s signal|thread|hold|once KEY "
                "[fail|skip|wait]\n", argv[0]);
        return 2;
    }
    const char *mode = argv[1], *key = argv[2];
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = embed_on_term;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    if (!strcmp(mode, "once")) {
        const char *p = argc > 3 ? argv[3] : "fail";
        rt_if_running policy = !strcmp(p, "skip")   ? RT_IF_RUNNING_SKIP
                               : !strcmp(p, "wait") ? RT_IF_RUNNING_WAIT
                                                    : RT_IF_RUNNING_FAIL;
        return embed_once("once", url, key, policy, NULL);
    }
    if (!strcmp(mode, "grace")) return embed_grace(url, key);
    pthread_t stopper;
    bool threaded = !strcmp(mode, "thread");
    if (threaded) {
        if (pipe(embed_fd_halfway) ||
            pthread_create(&stopper, NULL, embed_stopper, NULL)) {
            perror("embed: thread");
            return 1;
        }
    }
    int code = embed_once("first", url, key, RT_IF_RUNNING_FAIL, NULL);
    if (threaded) pthread_join(stopper, NULL);
    if (!strcmp(mode, "hold")) return code;
    /* Between the two calls: what the database says. */
    rt_run_info info;
    char err[1024];
    int rc = rt_run_status(url, embed_job.name, key, &info, err, sizeof err);
    printf("between rc=%s status=%s items=%lld id=%lld\n", rt_code_name(rc),
           rc == RT_OK ? info.status : "-", rc == RT_OK ? (long long)info.items : -1,
           rc == RT_OK ? (long long)info.id : -1);
    /* Still requested: a run now does nothing. */
    embed_once("refused", url, key, RT_IF_RUNNING_FAIL, NULL);
    rt_clear_stop();
    return embed_once("second", url, key, RT_IF_RUNNING_FAIL, NULL);
}
