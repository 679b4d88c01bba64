/*
 * check_cron.c — cron expressions (framework/service/cron.c): tables of
 * {expression, after, expected next} in UTC and in zones across daylight
 * saving changes, chains of successive firings, schedules that never fire,
 * the far future, and a table of bad expressions with the position and
 * reason of each error. Expected instants are written by hand (DST ones
 * checked with `TZ=America/New_York date -d @EPOCH`), never computed here.
 */
#define _DEFAULT_SOURCE /* timegm */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "service/cron.h"
#include "suites.h"

/* ------------------------------------------------------------- helpers */

/* "2026-03-08T07:00:00Z" or "...:00.999Z" to ms since the epoch (UTC). */
static int64_t tcron_ms(const char *iso) {
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    int ms = 0, used = 0;
    int n = sscanf(iso, "%d-%d-%dT%d:%d:%d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                   &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &used);
    ck_assert_msg(n == 6, "bad test time '%s'", iso);
    const char *rest = iso + used;
    if (*rest == '.') {
        ck_assert_msg(sscanf(rest, ".%3d", &ms) == 1 && rest[4] == 'Z', "bad test time '%s'", iso);
        rest += 4;
    }
    ck_assert_msg(strcmp(rest, "Z") == 0, "bad test time '%s'", iso);
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (int64_t)timegm(&tm) * 1000 + ms;
}

/* ms to "2026-03-08T07:00:00Z" ("never" for -1, with ms when not whole). */
static const char *tcron_iso(int64_t ms, char *out, size_t n) {
    if (ms == -1) {
        snprintf(out, n, "never");
        return out;
    }
    time_t t = (time_t)(ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000));
    int frac = (int)(ms - (int64_t)t * 1000);
    struct tm tm;
    ck_assert(gmtime_r(&t, &tm) != NULL);
    char base[40];
    strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
    if (frac) snprintf(out, n, "%s.%03dZ (not a whole second)", base, frac);
    else snprintf(out, n, "%sZ", base);
    return out;
}

static rt__cron *tcron_parse(const char *expr) {
    char err[256];
    rt__cron *c = NULL;
    int rc = rt__cron_parse(expr, &c, err, sizeof err);
    ck_assert_msg(rc == RT_OK, "parse '%s': rc %d: %s", expr, rc, err);
    ck_assert_ptr_nonnull(c);
    return c;
}

/* want NULL: never fires (-1). */
static void tcron_expect(const char *expr, const char *after, const char *want, int row) {
    rt__cron *c = tcron_parse(expr);
    int64_t got = rt__cron_next(c, tcron_ms(after));
    int64_t expected = want ? tcron_ms(want) : -1;
    char g[128], w[128];
    ck_assert_msg(got == expected, "row %d: '%s' after %s: got %s, want %s", row, expr, after,
                  tcron_iso(got, g, sizeof g), tcron_iso(expected, w, sizeof w));
    rt__cron_free(c);
}

/* ------------------------------------------------------------- next() */

typedef struct tcron_case {
    const char *expr, *after, *want; /* want NULL: never */
} tcron_case;

static const tcron_case tcron_utc[] = {
    /* every second / minute; after_ms is exclusive and need not be whole */
    {"* * * * * *", "2026-01-01T00:00:00Z", "2026-01-01T00:00:01Z"},
    {"* * * * * *", "2026-01-01T00:00:00.999Z", "2026-01-01T00:00:01Z"},
    {"* * * * * *", "2025-12-31T23:59:59.500Z", "2026-01-01T00:00:00Z"},
    {"* * * * *", "2026-01-01T00:00:00Z", "2026-01-01T00:01:00Z"},
    {"* * * * *", "2026-01-01T00:00:59.999Z", "2026-01-01T00:01:00Z"},
    {"* * * * *", "2026-12-31T23:59:00Z", "2027-01-01T00:00:00Z"},
    /* steps, ranges, lists */
    {"5-50/5 * * * *", "2026-01-01T00:07:00Z", "2026-01-01T00:10:00Z"},
    {"5-50/5 * * * *", "2026-01-01T00:50:00Z", "2026-01-01T01:05:00Z"},
    {"*/10 * * * *", "2026-01-01T00:00:00Z", "2026-01-01T00:10:00Z"},
    {"*/10 * * * *", "2026-01-01T23:55:00Z", "2026-01-02T00:00:00Z"},
    {"10/20 * * * *", "2026-01-01T00:00:00Z", "2026-01-01T00:10:00Z"},
    {"10/20 * * * *", "2026-01-01T00:50:00Z", "2026-01-01T01:10:00Z"},
    {"0 8,12,18 * * *", "2026-01-01T12:00:00Z", "2026-01-01T18:00:00Z"},
    {"0 8,12,18 * * *", "2026-01-01T18:00:00Z", "2026-01-02T08:00:00Z"},
    {"15,45 9-10 * * *", "2026-01-01T10:45:00Z", "2026-01-02T09:15:00Z"},
    {"0 0 1-7/3,20 * *", "2026-01-04T00:00:00Z", "2026-01-07T00:00:00Z"},
    {"0 0 1-7/3,20 * *", "2026-01-07T00:00:00Z", "2026-01-20T00:00:00Z"},
    /* names (2026-01-01 is a Thursday, 2026-01-30 a Friday, 07-01 a Wednesday) */
    {"0 9 * jan,jul mon-fri", "2026-01-01T00:00:00Z", "2026-01-01T09:00:00Z"},
    {"0 9 * jan,jul mon-fri", "2026-01-30T09:00:00Z", "2026-07-01T09:00:00Z"},
    {"0 9 * JAN,Jul MON-Fri", "2026-01-30T09:00:00Z", "2026-07-01T09:00:00Z"},
    {"0 0 * * sat,sun", "2026-01-01T00:00:00Z", "2026-01-03T00:00:00Z"},
    /* aliases */
    {"@yearly", "2026-05-05T00:00:00Z", "2027-01-01T00:00:00Z"},
    {"@annually", "2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z"},
    {"@monthly", "2026-01-31T12:00:00Z", "2026-02-01T00:00:00Z"},
    {"@weekly", "2026-01-01T00:00:00Z", "2026-01-04T00:00:00Z"},
    {"@daily", "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"},
    {"@midnight", "2026-01-01T23:59:59Z", "2026-01-02T00:00:00Z"},
    {"@hourly", "2026-01-01T00:30:00Z", "2026-01-01T01:00:00Z"},
    {"  @hourly  ", "2026-01-01T01:00:00Z", "2026-01-01T02:00:00Z"},
    /* six fields: seconds first */
    {"30 */15 * * * *", "2026-01-01T00:00:00Z", "2026-01-01T00:00:30Z"},
    {"30 */15 * * * *", "2026-01-01T00:00:30Z", "2026-01-01T00:15:30Z"},
    {"*/20 * * * * *", "2026-01-01T00:00:40Z", "2026-01-01T00:01:00Z"},
    {"0 0 12 * * *", "2026-01-01T12:00:00Z", "2026-01-02T12:00:00Z"},
    /* leap days: 2100 is not a leap year, 2000 is, 1900 is not */
    {"0 0 29 2 *", "2025-03-01T00:00:00Z", "2028-02-29T00:00:00Z"},
    {"0 0 29 2 *", "2096-03-01T00:00:00Z", "2104-02-29T00:00:00Z"},
    {"0 0 29 2 *", "2000-01-01T00:00:00Z", "2000-02-29T00:00:00Z"},
    {"0 12 29 2 *", "1896-03-01T00:00:00Z", "1904-02-29T12:00:00Z"},
    /* month ends */
    {"0 0 31 * *", "2026-01-31T00:00:00Z", "2026-03-31T00:00:00Z"},
    {"0 0 31 * *", "2026-03-31T00:00:00Z", "2026-05-31T00:00:00Z"},
    {"0 0 31 * *", "2026-07-31T00:00:00Z", "2026-08-31T00:00:00Z"},
    {"59 23 28-31 2 *", "2026-02-28T23:59:00Z", "2027-02-28T23:59:00Z"},
    /* never */
    {"0 0 30 2 *", "2026-01-01T00:00:00Z", NULL},
    {"0 0 31 2 *", "2026-01-01T00:00:00Z", NULL},
    {"0 0 31 4,6,9,11 *", "2026-01-01T00:00:00Z", NULL},
    {"0 0 30 2 * ", "9998-06-01T00:00:00Z", NULL},
    /* Vixie: both restricted = either; one starting with '*' = both */
    {"0 0 30 2 mon", "2026-01-01T00:00:00Z", "2026-02-02T00:00:00Z"},
    {"0 0 1 * mon", "2026-01-01T00:00:00Z", "2026-01-05T00:00:00Z"},
    {"0 0 1 * mon", "2026-01-26T00:00:00Z", "2026-02-01T00:00:00Z"},
    {"0 0 */2 * mon", "2026-01-05T00:00:00Z", "2026-01-19T00:00:00Z"},
    {"0 0 * * mon", "2026-01-01T00:00:00Z", "2026-01-05T00:00:00Z"},
    {"0 0 1 * *", "2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z"},
    {"0 0 1 * */7", "2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z"},
    /* weekday 7 is Sunday */
    {"0 0 * * 7", "2026-01-01T00:00:00Z", "2026-01-04T00:00:00Z"},
    {"0 0 * * 0", "2026-01-01T00:00:00Z", "2026-01-04T00:00:00Z"},
    {"0 0 * * 5-7", "2026-01-03T00:00:00Z", "2026-01-04T00:00:00Z"},
    {"0 0 * * 6/1", "2026-01-04T00:00:00Z", "2026-01-10T00:00:00Z"},
    /* far future and before the epoch */
    {"0 0 1 1 *", "2999-06-01T00:00:00Z", "3000-01-01T00:00:00Z"},
    {"0 0 1 1 *", "9998-06-01T00:00:00Z", "9999-01-01T00:00:00Z"},
    {"0 0 1 1 *", "1969-06-01T00:00:00Z", "1970-01-01T00:00:00Z"},
    {"0 0 * * *", "1969-12-31T12:00:00Z", "1970-01-01T00:00:00Z"},
    {"TZ=UTC 0 3 * * *", "2026-01-01T00:00:00Z", "2026-01-01T03:00:00Z"},
};

START_TEST(test_next_utc) {
    for (size_t i = 0; i < sizeof tcron_utc / sizeof *tcron_utc; i++)
        tcron_expect(tcron_utc[i].expr, tcron_utc[i].after, tcron_utc[i].want, (int)i);
}
END_TEST

#define NY "TZ=America/New_York "
#define BERLIN "TZ=Europe/Berlin "

/*
 * New York 2026: 03-08 02:00 EST -> 03:00 EDT at 07:00Z (02:xx does not
 * exist); 11-01 02:00 EDT -> 01:00 EST at 06:00Z (01:xx happens twice,
 * first at 05:xxZ, again at 06:xxZ). Berlin 2026: 03-29 02:00 CET -> 03:00
 * CEST at 01:00Z; 10-25 03:00 CEST -> 02:00 CET at 01:00Z.
 */
static const tcron_case tcron_zoned[] = {
    /* spring forward: a skipped slot fires at the change */
    {NY "30 2 * * *", "2026-03-07T00:00:00Z", "2026-03-07T07:30:00Z"},
    {NY "30 2 * * *", "2026-03-07T12:00:00Z", "2026-03-08T07:00:00Z"},
    {NY "30 2 * * *", "2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z"},
    {NY "*/15 2 * * *", "2026-03-08T06:00:00Z", "2026-03-08T07:00:00Z"},
    {NY "*/15 2 * * *", "2026-03-08T07:00:00Z", "2026-03-09T06:00:00Z"},
    {NY "0 3 * * *", "2026-03-08T06:00:00Z", "2026-03-08T07:00:00Z"},
    {NY "* * * * * *", "2026-03-08T06:59:59Z", "2026-03-08T07:00:00Z"},
    {NY "* * * * * *", "2026-03-08T07:00:00Z", "2026-03-08T07:00:01Z"},
    /* fall back: a repeated slot fires at its first occurrence only */
    {NY "30 1 * * *", "2026-11-01T00:00:00Z", "2026-11-01T05:30:00Z"},
    {NY "30 1 * * *", "2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"},
    {NY "30 1 * * *", "2026-11-01T05:45:00Z", "2026-11-02T06:30:00Z"},
    {NY "30 1 * * *", "2026-11-01T06:15:00Z", "2026-11-02T06:30:00Z"},
    {NY "30 1 * * *", "2026-11-01T06:45:00Z", "2026-11-02T06:30:00Z"},
    {NY "* * * * *", "2026-11-01T05:58:30Z", "2026-11-01T05:59:00Z"},
    {NY "* * * * *", "2026-11-01T05:59:00Z", "2026-11-01T07:00:00Z"},
    {NY "* * * * *", "2026-11-01T06:30:00Z", "2026-11-01T07:00:00Z"},
    {NY "0 0 1 1 *", "2999-06-01T00:00:00Z", "3000-01-01T05:00:00Z"},
    /* Berlin */
    {BERLIN "30 2 * * *", "2026-03-28T12:00:00Z", "2026-03-29T01:00:00Z"},
    {BERLIN "30 2 * * *", "2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"},
    {BERLIN "30 2 * * *", "2026-10-24T12:00:00Z", "2026-10-25T00:30:00Z"},
    {BERLIN "30 2 * * *", "2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"},
    {BERLIN "30 2 * * *", "2026-10-25T01:15:00Z", "2026-10-26T01:30:00Z"},
    {BERLIN "0 0 30 2 *", "2026-01-01T00:00:00Z", NULL},
    {"CRON_TZ=Europe/Berlin 0 9 * * *", "2026-01-01T00:00:00Z", "2026-01-01T08:00:00Z"},
    {"CRON_TZ=Europe/Berlin 0 9 * * *", "2026-07-01T00:00:00Z", "2026-07-01T07:00:00Z"},
    /* Tokyo (UTC+9, no DST): local 03:00 is 18:00Z the day before */
    {"TZ=Asia/Tokyo 0 3 * * *", "2026-01-01T00:00:00Z", "2026-01-01T18:00:00Z"},
    {"TZ=Asia/Tokyo @daily", "2026-01-01T00:00:00Z", "2026-01-01T15:00:00Z"},
};

START_TEST(test_next_zoned) {
    for (size_t i = 0; i < sizeof tcron_zoned / sizeof *tcron_zoned; i++)
        tcron_expect(tcron_zoned[i].expr, tcron_zoned[i].after, tcron_zoned[i].want, (int)i);
}
END_TEST

/* ------------------------------------------------------------- chains */

typedef struct tcron_chain {
    const char *expr, *after;
    const char *want[5];
} tcron_chain;

static const tcron_chain tcron_chains[] = {
    {"0 0 1 * mon",
     "2026-01-26T00:00:00Z",
     {"2026-02-01T00:00:00Z", "2026-02-02T00:00:00Z", "2026-02-09T00:00:00Z",
      "2026-02-16T00:00:00Z", "2026-02-23T00:00:00Z"}},
    {"0 0 */2 * mon",
     "2026-01-01T00:00:00Z",
     {"2026-01-05T00:00:00Z", "2026-01-19T00:00:00Z", "2026-02-09T00:00:00Z",
      "2026-02-23T00:00:00Z", "2026-03-09T00:00:00Z"}},
    {"0 0 * * mon",
     "2026-01-01T00:00:00Z",
     {"2026-01-05T00:00:00Z", "2026-01-12T00:00:00Z", "2026-01-19T00:00:00Z",
      "2026-01-26T00:00:00Z", "2026-02-02T00:00:00Z"}},
    {"0 0 * * 5-7",
     "2026-01-01T00:00:00Z",
     {"2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z", "2026-01-04T00:00:00Z",
      "2026-01-09T00:00:00Z", "2026-01-10T00:00:00Z"}},
    {"*/20 * * * * *",
     "2026-01-01T00:00:00Z",
     {"2026-01-01T00:00:20Z", "2026-01-01T00:00:40Z", "2026-01-01T00:01:00Z",
      "2026-01-01T00:01:20Z", "2026-01-01T00:01:40Z"}},
    {"0 0 31 * *",
     "2026-01-01T00:00:00Z",
     {"2026-01-31T00:00:00Z", "2026-03-31T00:00:00Z", "2026-05-31T00:00:00Z",
      "2026-07-31T00:00:00Z", "2026-08-31T00:00:00Z"}},
    {"0 0 29 2 *",
     "2095-01-01T00:00:00Z",
     {"2096-02-29T00:00:00Z", "2104-02-29T00:00:00Z", "2108-02-29T00:00:00Z",
      "2112-02-29T00:00:00Z", "2116-02-29T00:00:00Z"}},
    {NY "*/15 2 * * *",
     "2026-03-08T06:00:00Z",
     {"2026-03-08T07:00:00Z", "2026-03-09T06:00:00Z", "2026-03-09T06:15:00Z",
      "2026-03-09T06:30:00Z", "2026-03-09T06:45:00Z"}},
    {NY "30 2 * * *",
     "2026-03-07T00:00:00Z",
     {"2026-03-07T07:30:00Z", "2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z",
      "2026-03-10T06:30:00Z", "2026-03-11T06:30:00Z"}},
    {NY "30 1 * * *",
     "2026-10-31T00:00:00Z",
     {"2026-10-31T05:30:00Z", "2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z",
      "2026-11-03T06:30:00Z", "2026-11-04T06:30:00Z"}},
    /* hourly across fall back: the repeated 01:00 (06:00Z) does not fire */
    {NY "0 * * * *",
     "2026-11-01T04:30:00Z",
     {"2026-11-01T05:00:00Z", "2026-11-01T07:00:00Z", "2026-11-01T08:00:00Z",
      "2026-11-01T09:00:00Z", "2026-11-01T10:00:00Z"}},
    /* hourly across spring forward: 02:00 and 03:00 are one instant */
    {NY "0 * * * *",
     "2026-03-08T05:30:00Z",
     {"2026-03-08T06:00:00Z", "2026-03-08T07:00:00Z", "2026-03-08T08:00:00Z",
      "2026-03-08T09:00:00Z", "2026-03-08T10:00:00Z"}},
};

START_TEST(test_chains) {
    for (size_t i = 0; i < sizeof tcron_chains / sizeof *tcron_chains; i++) {
        const tcron_chain *t = &tcron_chains[i];
        rt__cron *c = tcron_parse(t->expr);
        int64_t at = tcron_ms(t->after);
        for (int k = 0; k < 5; k++) {
            int64_t got = rt__cron_next(c, at), want = tcron_ms(t->want[k]);
            char g[128], w[128];
            ck_assert_msg(got == want, "chain %zu '%s' firing %d: got %s, want %s", i, t->expr,
                          k + 1, tcron_iso(got, g, sizeof g), tcron_iso(want, w, sizeof w));
            at = got;
        }
        rt__cron_free(c);
    }
}
END_TEST

/*
 * A whole year of an hourly New York schedule: 365 * 24 local slots; 02:00
 * on 03-08 collapses onto 03:00 (one instant), the repeated 01:00 on 11-01
 * fires once: 8759 distinct firings, strictly increasing, each a whole hour.
 */
START_TEST(test_zoned_year_count) {
    rt__cron *c = tcron_parse(NY "0 * * * *");
    int64_t at = tcron_ms("2026-01-01T04:59:59Z"); /* 2025-12-31 23:59:59 EST */
    int64_t end = tcron_ms("2027-01-01T05:00:00Z"); /* 2027-01-01 00:00 EST */
    int count = 0;
    for (;;) {
        int64_t next = rt__cron_next(c, at);
        ck_assert_int_gt(next, at);
        ck_assert_int_eq(next % 3600000, 0);
        if (next >= end) break;
        count++;
        at = next;
    }
    ck_assert_int_eq(count, 8759);
    rt__cron_free(c);
}
END_TEST

/* Never-firing expressions give up fast: the walk skips by month. */
START_TEST(test_never_is_fast) {
    rt__cron *c = tcron_parse("0 0 30 2 *");
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < 1000; i++) ck_assert_int_eq(rt__cron_next(c, i * INT64_C(86400000)), -1);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    ck_assert_msg(ms < 1000, "1000 never-firing searches took %.1f ms", ms);
    rt__cron_free(c);
}
END_TEST

/* ------------------------------------------------------------- accessors */

START_TEST(test_accessors) {
    rt__cron *c = tcron_parse("0 3 * * *");
    ck_assert_str_eq(rt__cron_zone(c), "UTC");
    ck_assert(!rt__cron_has_seconds(c));
    rt__cron_free(c);
    c = tcron_parse("CRON_TZ=America/New_York */5 0 3 * * *");
    ck_assert_str_eq(rt__cron_zone(c), "America/New_York");
    ck_assert(rt__cron_has_seconds(c));
    rt__cron_free(c);
    c = tcron_parse("TZ=Asia/Tokyo @hourly");
    ck_assert_str_eq(rt__cron_zone(c), "Asia/Tokyo");
    ck_assert(!rt__cron_has_seconds(c));
    rt__cron_free(c);
    rt__cron_free(NULL);

    char err[64] = "x";
    rt__cron *out = (rt__cron *)&err; /* must be reset */
    ck_assert_int_eq(rt__cron_parse(NULL, &out, err, sizeof err), RT_MISUSE);
    ck_assert_ptr_null(out);
    ck_assert_int_eq(rt__cron_parse("* * * *", &out, NULL, 0), RT_INVALID);
}
END_TEST

/* TZ is restored after a zoned computation, set or unset. */
START_TEST(test_tz_restored) {
    rt__cron *c = tcron_parse(NY "0 3 * * *");
    ck_assert_int_eq(setenv("TZ", "Asia/Tokyo", 1), 0);
    tzset();
    ck_assert_int_eq(rt__cron_next(c, 0), tcron_ms("1970-01-01T08:00:00Z"));
    ck_assert_str_eq(getenv("TZ"), "Asia/Tokyo");
    time_t t = 0;
    struct tm tm;
    ck_assert_ptr_nonnull(localtime_r(&t, &tm));
    ck_assert_int_eq(tm.tm_hour, 9); /* Tokyo again, not New York */
    ck_assert_int_eq(unsetenv("TZ"), 0);
    tzset();
    ck_assert_int_gt(rt__cron_next(c, 0), 0);
    ck_assert_ptr_null(getenv("TZ"));
    rt__cron_free(c);
}
END_TEST

/* Zones are looked up in $TZDIR when set; UTC needs no file. */
START_TEST(test_tzdir) {
    ck_assert_int_eq(setenv("TZDIR", "/nonexistent-zoneinfo", 1), 0);
    char err[256];
    rt__cron *c = NULL;
    ck_assert_int_eq(rt__cron_parse(BERLIN "0 3 * * *", &c, err, sizeof err), RT_INVALID);
    ck_assert_str_eq(err, "cron '" BERLIN "0 3 * * *': position 4: unknown time zone "
                          "'Europe/Berlin'");
    c = tcron_parse("TZ=UTC 0 3 * * *");
    rt__cron_free(c);
    ck_assert_int_eq(unsetenv("TZDIR"), 0); /* for CK_FORK=no */
}
END_TEST

/* ------------------------------------------------------------- errors */

typedef struct tcron_bad {
    const char *expr;
    int position; /* 0: a whole-expression message without a position */
    const char *reason;
} tcron_bad;

static const tcron_bad tcron_bads[] = {
    {"* * * *", 0, "expected 5 fields (or 6 with seconds first), got 4"},
    {"* * * * * * *", 0, "got 7"},
    {"", 0, "got 0"},
    {"TZ=Europe/Berlin", 0, "got 0"},
    {"60 * * * *", 1, "minute 60 is out of range 0-59"},
    {" 61 * * * *", 2, "minute 61 is out of range 0-59"},
    {"0 24 * * *", 3, "hour 24 is out of range 0-23"},
    {"0 0 0 * *", 5, "day of month 0 is out of range 1-31"},
    {"0 0 32 * *", 5, "day of month 32 is out of range 1-31"},
    {"0 0 1 13 *", 7, "month 13 is out of range 1-12"},
    {"0 0 * * 8", 9, "day of week 8 is out of range 0-7"},
    {"60 0 0 * * *", 1, "second 60 is out of range 0-59"},
    {"0 99999999999999999999 * * *", 3, "hour 99999999999999999999 is out of range"},
    {"*/0 * * * *", 3, "minute step 0 is out of range 1-59"},
    {"*/60 * * * *", 3, "step 60"},
    {"0 0 1-5/0 * *", 9, "day of month step 0"},
    {"*/ * * * *", 3, "expected a step number"},
    {"5-1 * * * *", 1, "range 5-1 is reversed"},
    {"0 0 * * fri-mon", 9, "range fri-mon is reversed"},
    {"1,,2 * * * *", 3, "empty list item"},
    {"1, * * * *", 3, "empty list item"},
    {",1 * * * *", 1, "empty list item"},
    {"abc * * * *", 1, "expected a minute number, got 'abc'"},
    {"0 0 L * *", 5, "expected a day of month number, got 'L'"},
    {"0 0 * mon *", 7, "'mon' is not a month name (jan-dec)"},
    {"0 0 * * jan", 9, "'jan' is not a day of week name (sun-sat)"},
    {"0 0 * * monday", 9, "'monday' is not a day of week name"},
    {"1- * * * *", 3, "expected a minute value"},
    {"0 0 * * mon-", 13, "expected a day of week value"},
    {"0 0 * * 1x", 10, "unexpected character 'x'"},
    {"0 0 * * ?", 9, "unexpected character '?'"},
    {"0 0 * * 5#2", 10, "unexpected character '#'"},
    {"0 0 * * 1-5-7", 12, "unexpected character '-'"},
    {"*-5 * * * *", 2, "unexpected character '-'"},
    {"0 0 * *\x01 *", 8, "unexpected character 0x01"},
    {"0 0 * * * junk", 11, "'junk' is not a day of week name"},
    {"TZ=Mars/Olympus 0 * * * *", 4, "unknown time zone 'Mars/Olympus'"},
    {"TZ=../../etc/passwd 0 * * * *", 4, "unknown time zone '../../etc/passwd'"},
    {"TZ=America 0 * * * *", 4, "unknown time zone 'America'"},
    {"TZ=zone.tab 0 * * * *", 4, "unknown time zone 'zone.tab'"},
    {"CRON_TZ=/etc/localtime 0 * * * *", 9, "unknown time zone '/etc/localtime'"},
    {"TZ= 0 * * * *", 4, "unknown time zone ''"},
    {"@reboot", 1, "@reboot is not supported"},
    {"TZ=UTC @reboot", 8, "@reboot is not supported"},
    {"@fortnightly", 1, "unknown alias '@fortnightly'"},
    {"@daily 5", 8, "unexpected '5' after @daily"},
};

START_TEST(test_errors) {
    for (size_t i = 0; i < sizeof tcron_bads / sizeof *tcron_bads; i++) {
        const tcron_bad *t = &tcron_bads[i];
        char err[512], prefix[256];
        rt__cron *c = (rt__cron *)err; /* must be reset to NULL */
        int rc = rt__cron_parse(t->expr, &c, err, sizeof err);
        ck_assert_msg(rc == RT_INVALID, "row %zu '%s': rc %d, want RT_INVALID", i, t->expr, rc);
        ck_assert_msg(c == NULL, "row %zu: out not NULL", i);
        ck_assert_msg(strchr(err, '\n') == NULL && strchr(err, '\x01') == NULL,
                      "row %zu: not one clean line: %s", i, err);
        /* the echoed expression has its control characters replaced */
        char shown[128];
        snprintf(shown, sizeof shown, "%s", t->expr);
        for (char *s = shown; *s; s++)
            if (*s < 0x20) *s = '?';
        if (t->position)
            snprintf(prefix, sizeof prefix, "cron '%s': position %d: ", shown, t->position);
        else
            snprintf(prefix, sizeof prefix, "cron '%s': ", shown);
        ck_assert_msg(strncmp(err, prefix, strlen(prefix)) == 0 &&
                          (t->position || strstr(err, "position") == NULL),
                      "row %zu: got '%s', want it to start with '%s'", i, err, prefix);
        ck_assert_msg(strstr(err + strlen(prefix), t->reason) != NULL,
                      "row %zu: got '%s', want the reason '%s'", i, err, t->reason);
    }
}
END_TEST

START_TEST(test_error_message_exact) {
    char err[256];
    rt__cron *c = NULL;
    ck_assert_int_eq(rt__cron_parse("61 * * * *", &c, err, sizeof err), RT_INVALID);
    ck_assert_str_eq(err, "cron '61 * * * *': position 1: minute 61 is out of range 0-59");
    /* a short buffer truncates, still terminated */
    char tiny[10];
    ck_assert_int_eq(rt__cron_parse("61 * * * *", &c, tiny, sizeof tiny), RT_INVALID);
    ck_assert_str_eq(tiny, "cron '61 ");
}
END_TEST

/* Odd but valid spellings. */
START_TEST(test_valid_spellings) {
    static const char *const ok[] = {
        "0 0 * * *\n", "\t0\t0 * * *", "00 05 * * *", "0 0 1-31 1-12 0-7",
        "0 0 * Jan-DEC Sun-Sat", "0 0 * * */7", "0 0 * * 7-7", "0 0 * * 1/2",
        "59 59 23 31 12 *", "TZ=UTC @daily", "CRON_TZ=UTC 0 0 * * *", "@Daily",
    };
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) rt__cron_free(tcron_parse(ok[i]));
}
END_TEST

Suite *cron_suite(void) {
    Suite *su = suite_create("cron");
    TCase *tc = tcase_create("cron");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_next_utc);
    tcase_add_test(tc, test_next_zoned);
    tcase_add_test(tc, test_chains);
    tcase_add_test(tc, test_zoned_year_count);
    tcase_add_test(tc, test_never_is_fast);
    tcase_add_test(tc, test_accessors);
    tcase_add_test(tc, test_tz_restored);
    tcase_add_test(tc, test_tzdir);
    tcase_add_test(tc, test_errors);
    tcase_add_test(tc, test_error_message_exact);
    tcase_add_test(tc, test_valid_spellings);
    suite_add_tcase(su, tc);
    return su;
}
