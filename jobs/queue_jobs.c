/*
 * queue_jobs.c — example jobs for the run queue (`ratchet enqueue`,
 * `ratchet worker`):
 *
 *   noop    one empty step, exclusive per key: runs spread over all
 *           workers; for measuring claim-and-complete throughput.
 *   flaky   one step that fails on attempts 1..fail_times (param, default
 *           1) with a clear message, then succeeds: for the retry tests and
 *           the README's failure walkthrough.
 */
#include "jobs.h"

static int noop_step(rt_ctx *ctx) {
    (void)ctx;
    return RT_DONE;
}

static const rt_step noop_steps[] = {{"noop", noop_step}, {NULL, NULL}};

const rt_job noop_job = {
    .name = "noop",
    .description = "does nothing, one run per key in parallel (queue throughput)",
    .steps = noop_steps,
    .exclusive = RT_EXCLUSIVE_KEY,
};

static int flaky_step(rt_ctx *ctx) {
    int64_t fail_times;
    int rc = rt_param_int64(ctx, "fail_times", 1, &fail_times);
    if (rc != RT_OK) return rc;
    if (rt_attempt(ctx) <= fail_times)
        return rt_fail(ctx, "failing on purpose: attempt %d of the first %lld",
                       rt_attempt(ctx), (long long)fail_times);
    rc = rt_exec(ctx,
                 "CREATE TABLE IF NOT EXISTS flaky_log (run_key TEXT NOT NULL, "
                 "attempt BIGINT NOT NULL)",
                 0, NULL);
    if (rc == RT_OK)
        rc = RT_EXEC(ctx, "INSERT INTO flaky_log VALUES ($1, $2)",
                     rt_text(rt_key(ctx)), rt_int(rt_attempt(ctx)));
    return rc == RT_OK ? RT_DONE : rc;
}

static const rt_step flaky_steps[] = {{"work", flaky_step}, {NULL, NULL}};

static const rt_param_def flaky_params[] = {
    {"fail_times", RT_PARAM_INT, "1", "attempts that fail before one succeeds"},
    {NULL, 0, NULL, NULL},
};

const rt_job flaky_job = {
    .name = "flaky",
    .description = "fails its first fail_times attempts, then succeeds",
    .steps = flaky_steps,
    .params = flaky_params,
    .exclusive = RT_EXCLUSIVE_KEY,
    .max_backoff_s = 2,
};
