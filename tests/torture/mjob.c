/*
 * mjob.c — the jobs of the model scenarios (model.c, drops.c), and the
 * driver run as ratchet: started with TORTURE_RATCHET=1 the torture binary
 * is rt_main() — the CLI of build/ratchet, the same library — over these
 * two jobs, so a daemon or worker pool that starts itself again
 * (/proc/self/exe) runs them too.
 *
 *   mjob   one run of the job at a time (the default, job-scoped lease);
 *   mkey   one run per key at a time (RT_EXCLUSIVE_KEY).
 *
 * Both have a chunked step "a" (param items, one row of m_items per item,
 * item_ms each; 24 x 40 ms by default) and an atomic step "b" (b_ms, 150,
 * then one row with n = 0).
 *
 * Each call of a step function writes its begin and end to the file named
 * by TORTURE_MJOB_LOG (O_APPEND, one write per line: outside the step's
 * transaction, so a rolled-back or fenced execution is there too) and holds
 * an flock(2) on a file of its lease scope while it runs. The kernel drops
 * that lock the instant a process dies, so a step that finds it taken knows
 * that another live process is inside a step of the same scope at this very
 * moment — two holders at once — and writes an OVERLAP line naming both.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "ratchet.h"
#include "torture.h"

static int64_t mjob_wall_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void mjob_log(const char *fmt, ...) T_PRINTF(1, 2);

/* One line to the log, in one write(2) on an O_APPEND descriptor: lines of
 * several processes never interleave. */
static void mjob_log(const char *fmt, ...) {
    const char *path = getenv("TORTURE_MJOB_LOG");
    if (!path || !*path) return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line - 1, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if (n > (int)sizeof line - 2) n = (int)sizeof line - 2;
    line[n++] = '\n';
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return;
    ssize_t w = write(fd, line, (size_t)n);
    (void)w;
    close(fd);
}

/* Begin a step's execution: the scope's flock (or an OVERLAP line), then
 * the B line. Returns the lock's descriptor (-1: none). */
static int mjob_enter(rt_ctx *ctx) {
    const char *log = getenv("TORTURE_MJOB_LOG");
    if (!log || !*log) return -1;
    const char *job = rt_job_name(ctx), *key = rt_key(ctx), *step = rt_step_name(ctx);
    bool per_key = !strcmp(job, "mkey");
    char path[1024];
    snprintf(path, sizeof path, "%s.%s%s%s.lock", log, job, per_key ? "." : "",
             per_key ? key : "");
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) != 0) {
        char holder[256] = "";
        ssize_t n = pread(fd, holder, sizeof holder - 1, 0);
        holder[n > 0 ? n : 0] = '\0';
        mjob_log("OVERLAP %lld pid=%d %s/%s step %s attempt %d entered while "
                 "[%s] is inside",
                 (long long)mjob_wall_us(), (int)getpid(), job, key, step,
                 rt_attempt(ctx), holder);
        close(fd);
        fd = -1;
    } else if (fd >= 0) {
        char me[256];
        int n = snprintf(me, sizeof me, "pid=%d %s/%s step %s attempt %d", (int)getpid(),
                         job, key, step, rt_attempt(ctx));
        if (ftruncate(fd, 0) != 0 || pwrite(fd, me, (size_t)n, 0) != n) {
            /* the holder's name is only for the message */
        }
    }
    mjob_log("B %lld pid=%d %s/%s step %s attempt %d", (long long)mjob_wall_us(),
             (int)getpid(), job, key, step, rt_attempt(ctx));
    return fd;
}

static void mjob_leave(rt_ctx *ctx, int fd, int rc) {
    mjob_log("E %lld pid=%d %s/%s step %s rc %d", (long long)mjob_wall_us(),
             (int)getpid(), rt_job_name(ctx), rt_key(ctx), rt_step_name(ctx), rc);
    if (fd >= 0) {
        flock(fd, LOCK_UN);
        close(fd);
    }
}

static void mjob_sleep_ms(int64_t ms) {
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static int mjob_a(rt_ctx *ctx) {
    int64_t items, item_ms;
    int rc = rt_param_int64(ctx, "items", 24, &items);
    if (rc == RT_OK) rc = rt_param_int64(ctx, "item_ms", 40, &item_ms);
    if (rc != RT_OK) return rc;
    int fd = mjob_enter(ctx);
    rc = RT_DONE;
    for (int64_t n = rt_cursor_int64(ctx) + 1; n <= items; n++) {
        if (!rt_continue(ctx)) {
            rc = RT_MORE;
            break;
        }
        mjob_sleep_ms(item_ms);
        int x = RT_EXEC(ctx, "INSERT INTO m_items (run_id, n) VALUES ($1, $2)",
                        rt_int(rt_run_id(ctx)), rt_int(n));
        if (x != RT_OK) {
            rc = x;
            break;
        }
        rt_set_cursor_int64(ctx, n);
        rt_add_items(ctx, 1);
    }
    mjob_leave(ctx, fd, rc);
    return rc;
}

static int mjob_b(rt_ctx *ctx) {
    int64_t b_ms;
    int rc = rt_param_int64(ctx, "b_ms", 150, &b_ms);
    if (rc != RT_OK) return rc;
    int fd = mjob_enter(ctx);
    for (int64_t until = mjob_wall_us() + b_ms * 1000; mjob_wall_us() < until;) {
        if (rt_stop_requested(ctx)) {
            mjob_leave(ctx, fd, RT_STOPPED);
            return RT_STOPPED;
        }
        mjob_sleep_ms(5);
    }
    rc = RT_EXEC(ctx, "INSERT INTO m_items (run_id, n) VALUES ($1, 0)",
                 rt_int(rt_run_id(ctx)));
    rc = rc == RT_OK ? RT_DONE : rc;
    mjob_leave(ctx, fd, rc);
    return rc;
}

static const rt_step mjob_steps[] = {{"a", mjob_a}, {"b", mjob_b}, {NULL, NULL}};

static const rt_param_def mjob_params[] = {
    {"items", RT_PARAM_INT, "24", "items of step a"},
    {"item_ms", RT_PARAM_INT, "40", "milliseconds per item"},
    {"b_ms", RT_PARAM_INT, "150", "how long the atomic step b lasts"},
    {NULL, 0, NULL, NULL},
};

static const rt_job mjob_job = {
    .name = "mjob",
    .description = "torture: one run of the job at a time",
    .steps = mjob_steps,
    .params = mjob_params,
};

static const rt_job mkey_job = {
    .name = "mkey",
    .description = "torture: one run per key at a time",
    .steps = mjob_steps,
    .params = mjob_params,
    .exclusive = RT_EXCLUSIVE_KEY,
};

int t_ratchet_main(int argc, char **argv) {
    static const rt_job *const jobs[] = {&mjob_job, &mkey_job, NULL};
    return rt_main(argc, argv, jobs);
}

/* --------------------------------------------------- the driver's side */

void t_mjob_prepare(t_db *db) {
    inv_db *c = t_db_check(db);
    char err[512];
    if (!c || !inv_exec(c, "CREATE TABLE IF NOT EXISTS m_items (run_id BIGINT NOT NULL, "
                           "n BIGINT NOT NULL)",
                        err, sizeof err))
        t_fail("m_items: %s", c ? err : "no database");
    t_db_release(db, c);
}

int t_mjob_overlaps(const char *log, char *first, size_t n) {
    char *text = t_slurp(log);
    int count = 0;
    if (n) first[0] = '\0';
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n"))
        if (!strncmp(line, "OVERLAP ", 8) && count++ == 0 && n)
            snprintf(first, n, "%s", line);
    free(text);
    return count;
}

bool t_mjob_data(inv_db *c, char *msg, size_t n) {
    int64_t bad = 0;
    char err[512];
    /* Every done run wrote items + 1 rows (one per item of a, one of b),
     * each once: a fenced or rolled-back execution left none. */
    int rc = inv_int(c,
                     "SELECT count(*) FROM rt_run r WHERE r.status = 'done' AND "
                     "(SELECT count(*) FROM m_items m WHERE m.run_id = r.id) <> "
                     "r.items + 1 OR r.status = 'done' AND "
                     "(SELECT count(DISTINCT n) FROM m_items m WHERE m.run_id = r.id) "
                     "<> r.items + 1",
                     &bad, err, sizeof err);
    if (rc != INV_VALUE) {
        snprintf(msg, n, "%s", err);
        return false;
    }
    if (bad) {
        snprintf(msg, n, "%lld done runs whose m_items rows are not exactly one per "
                         "item and one for step b", (long long)bad);
        return false;
    }
    return true;
}
