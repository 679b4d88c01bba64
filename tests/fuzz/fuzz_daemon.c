/*
 * fuzz_daemon.c — the daemon's options as rt__daemon reads them before it
 * opens the database: --only JOB,..., --schedule JOB=EXPR, --param
 * JOB.NAME=VALUE, --overlap JOB=skip|queue, --misfire JOB=catch-up|skip,
 * --max-lateness JOB=S, against jobs with and without schedules and
 * params. The database URL names no backend, so a configuration that is
 * accepted ends at the open: the answer is always exit code 2, and the
 * options must get there without a crash, a leak or undefined behaviour.
 * Input: one option a line, its first character saying which: S schedule,
 * P param, O overlap, M misfire, L max-lateness, Y only.
 */
#include "fuzz.h"
#include "service/service.h"

#define FUZZ_MAX_OPTS 24

static int fuzz_noop(rt_ctx *ctx) {
    (void)ctx;
    return RT_DONE;
}

static const rt_step fuzz_steps[] = {{"only", fuzz_noop}, {NULL, NULL}};

static const rt_param_def fuzz_params[] = {
    {"n", RT_PARAM_INT, "1", NULL},
    {"r", RT_PARAM_REAL, NULL, NULL},
    {"b", RT_PARAM_BOOL, NULL, NULL},
    {NULL, 0, NULL, NULL},
};

static const rt_job fuzz_hourly = {
    .name = "hourly", .steps = fuzz_steps, .params = fuzz_params, .schedule = "@hourly"};
static const rt_job fuzz_zoned = {.name = "zoned",
                                  .steps = fuzz_steps,
                                  .schedule = "TZ=Europe/Paris 30 2 * * *",
                                  .max_lateness_s = 60};
static const rt_job fuzz_plain = {.name = "plain", .steps = fuzz_steps, .params = fuzz_params};
static const rt_job *const fuzz_jobs[] = {&fuzz_hourly, &fuzz_zoned, &fuzz_plain, NULL};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 4096) return 0;
    char *text = fuzz_str(data, size);
    char *lines[FUZZ_MAX_OPTS];
    int n = fuzz_split(text, '\n', lines, FUZZ_MAX_OPTS);
    const char *sched[FUZZ_MAX_OPTS], *param[FUZZ_MAX_OPTS], *overlap[FUZZ_MAX_OPTS];
    const char *misfire[FUZZ_MAX_OPTS], *late[FUZZ_MAX_OPTS];
    rt__daemon_opts o = {.url = "none:", .exe = "ratchet", .grace_ms = 8000,
                         .lease_ttl_ms = 30000, .chunk_items = 1000, .chunk_ms = 1000};
    o.schedules = sched;
    o.params = param;
    o.overlaps = overlap;
    o.misfires = misfire;
    o.lateness = late;
    for (int i = 0; i < n; i++) {
        const char *v = lines[i][0] ? lines[i] + 1 : lines[i];
        switch (lines[i][0]) {
        case 'S': sched[o.nschedules++] = v; break;
        case 'P': param[o.nparams++] = v; break;
        case 'O': overlap[o.noverlaps++] = v; break;
        case 'M': misfire[o.nmisfires++] = v; break;
        case 'L': late[o.nlateness++] = v; break;
        case 'Y': o.only = v; break;
        default: break;
        }
    }
    int code = rt__daemon(fuzz_jobs, &o);
    FUZZ_CHECK(code == RT_EXIT_USAGE, "exit code %d", code);
    free(text);
    return 0;
}
