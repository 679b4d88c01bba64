/*
 * fuzz_cron.c — cron expressions (--schedule JOB=EXPR, rt_job.schedule):
 * rt__cron_parse, then for an expression that parses a few rt__cron_next
 * slots from a start the input picks. Invariants: a refusal is RT_INVALID
 * with one line of message; slots are whole seconds, strictly increasing,
 * and nothing fires between the start and the slot (asking again from just
 * before the slot, or from half way, gives the same slot); a UTC slot
 * matches the expression and no second just after the start or just before
 * the slot does.
 * Input: 8 bytes choosing the start, then the expression.
 */
#include <stdbool.h>

#include "service/cron.h"
#include "fuzz.h"

#define FUZZ_SLOTS 4
#define FUZZ_SCAN 1500 /* seconds checked by brute force at each end */

static int64_t fuzz_start(uint64_t raw) {
    if (raw & 1) return (int64_t)raw; /* anything, the extremes too */
    /* mostly 1938..2223, where zones have rules */
    return (int64_t)(raw >> 1 & ((UINT64_C(1) << 43) - 1)) - INT64_C(1000000000000);
}

static void fuzz_no_match(const rt__cron *c, const char *expr, int64_t from_s,
                          int64_t to_s) {
    for (int64_t t = from_s; t < to_s; t++)
        FUZZ_CHECK(!rt__cron_matches(c, t),
                   "'%s': second %lld matches but was skipped (slot at %lld)",
                   expr, (long long)t, (long long)to_s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 4096) return 0;
    int64_t start = fuzz_start(fuzz_u64(&data, &size));
    char *expr = fuzz_str(data, size);
    char err[512];
    rt__cron *c = (rt__cron *)(void *)err; /* must be NULL after a failure */
    int rc = rt__cron_parse(expr, &c, err, sizeof err);
    if (rc != RT_OK) {
        FUZZ_CHECK(rc == RT_INVALID && c == NULL, "'%s': rc %d", expr, rc);
        FUZZ_CHECK(!strncmp(err, "cron '", 6), "'%s': message '%s'", expr, err);
        for (const char *p = err; *p; p++)
            FUZZ_CHECK((unsigned char)*p >= 0x20 && *p != 0x7f,
                       "'%s': control character in message", expr);
        free(expr);
        return 0;
    }
    FUZZ_CHECK(c != NULL, "'%s': RT_OK without an expression", expr);
    bool utc = !strcmp(rt__cron_zone(c), "UTC");
    int64_t t = start;
    for (int i = 0; i < FUZZ_SLOTS; i++) {
        int64_t s = rt__cron_next(c, t);
        if (s < 0) break;
        FUZZ_CHECK(s > t && s % 1000 == 0, "'%s': next(%lld) = %lld", expr,
                   (long long)t, (long long)s);
        /* nothing fires in (t, s): from any instant in it, s comes next */
        int64_t mid = t + (int64_t)(((uint64_t)s - (uint64_t)t) / 2), before = s - 1;
        FUZZ_CHECK(rt__cron_next(c, mid) == s, "'%s': next(%lld) = %lld, "
                   "next(%lld) = %lld", expr, (long long)t, (long long)s,
                   (long long)mid, (long long)rt__cron_next(c, mid));
        FUZZ_CHECK(rt__cron_next(c, before) == s, "'%s': next(%lld) = %lld, "
                   "next(%lld) = %lld", expr, (long long)t, (long long)s,
                   (long long)before, (long long)rt__cron_next(c, before));
        if (utc) {
            int64_t ts = t / 1000 - (t % 1000 < 0); /* rounded down */
            int64_t ss = s / 1000;
            FUZZ_CHECK(rt__cron_matches(c, ss), "'%s': slot %lld does not match",
                       expr, (long long)ss);
            int64_t lo = ss - ts - 1 > 2 * FUZZ_SCAN ? ts + 1 + FUZZ_SCAN : ss;
            fuzz_no_match(c, expr, ts + 1, lo);
            fuzz_no_match(c, expr, ss - FUZZ_SCAN > lo ? ss - FUZZ_SCAN : lo, ss);
        }
        t = s;
    }
    rt__cron_free(c);
    free(expr);
    return 0;
}
