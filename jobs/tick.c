/*
 * tick.c — the scheduling demo job: one atomic step that records when it ran.
 *
 *   tick    records (run key, start_ms, end_ms) in tick_log: the wall-clock
 *           milliseconds when the step began and when it finished. Param
 *           sleep_ms (default 0) makes the step last that long; a stop
 *           request ends the sleep at once and the step rolls back.
 *
 * Run it under `ratchet daemon --schedule 'tick=0-59/5 * * * * *'` (every
 * five seconds) to watch one run per slot (the run key is the slot time),
 * skipped slots when sleep_ms is longer than the period, and takeovers when a
 * daemon dies.
 */
#define _POSIX_C_SOURCE 200809L
#include <time.h>

#include "jobs.h"

static int64_t tick_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int tick_step(rt_ctx *ctx) {
    int64_t start = tick_now_ms(), sleep_ms;
    int rc = rt_param_int64(ctx, "sleep_ms", 0, &sleep_ms);
    if (rc != RT_OK) return rc;
    if (sleep_ms < 0) {
        rt_fail(ctx, "param sleep_ms: %lld is negative", (long long)sleep_ms);
        return RT_INVALID;
    }
    while (tick_now_ms() - start < sleep_ms) {
        if (rt_stop_requested(ctx)) return RT_STOPPED;
        int64_t left = sleep_ms - (tick_now_ms() - start);
        struct timespec ts = {0, (long)(left < 10 ? left : 10) * 1000000L};
        nanosleep(&ts, NULL);
    }
    rc = rt_exec(ctx,
                 "CREATE TABLE IF NOT EXISTS tick_log (run_key TEXT NOT NULL, "
                 "start_ms BIGINT NOT NULL, end_ms BIGINT NOT NULL)",
                 0, NULL);
    if (rc == RT_OK)
        rc = RT_EXEC(ctx, "INSERT INTO tick_log VALUES ($1, $2, $3)",
                     rt_text(rt_key(ctx)), rt_int(start),
                     rt_int(tick_now_ms()));
    return rc == RT_OK ? RT_DONE : rc;
}

static const rt_step tick_steps[] = {{"tick", tick_step}, {NULL, NULL}};

static const rt_param_def tick_params[] = {
    {"sleep_ms", RT_PARAM_INT, "0", "how long the step lasts"},
    {NULL, 0, NULL, NULL},
};

const rt_job tick_job = {
    .name = "tick",
    .description = "record each run's start and end (scheduling demo)",
    .steps = tick_steps,
    .params = tick_params,
};
