/*
 * fuzz_time.c — durations and times: rt__parse_duration_ms (--older-than
 * 7d, enqueue's --run-at +30s), rt__parse_time_ms (--run-at, ISO-8601) and
 * rt__iso8601_ms (every time shown, from stored milliseconds).
 *
 * Invariants: a duration is a plain number with at most one unit, and
 * "Xs" is X seconds; an absolute time that parses has the digits and
 * separators of YYYY-MM-DDTHH:MM:SS in place, and formatting it and
 * parsing that again gives the same instant; "+D" is now plus duration D;
 * any stored value formats to at most 31 characters.
 * Input: 8 bytes of a stored time, then the text.
 */
#include <stdbool.h>

#include "fuzz.h"
#include "service/service.h"

#define FUZZ_NOW INT64_C(1790000000000) /* 2026-09-21 */
#define FUZZ_YEAR_MS INT64_C(31556952000)

static void fuzz_duration(const char *s) {
    int64_t ms;
    if (!rt__parse_duration_ms(s, &ms)) return;
    FUZZ_CHECK(ms >= 0, "duration '%s' = %lld", s, (long long)ms);
    size_t n = strlen(s);
    char stem[64];
    if (n >= sizeof stem) return;
    memcpy(stem, s, n + 1);
    char unit = 's';
    if (strchr("smhd", stem[n - 1])) {
        unit = stem[n - 1];
        stem[--n] = '\0';
    }
    double v;
    FUZZ_CHECK(n && rt__parse_double(stem, &v),
               "duration '%s' = %lld ms, but '%s' is not a number", s, (long long)ms, stem);
    if (unit == 's' && n < 30) { /* seconds, with or without the s */
        int64_t plain, with_s;
        char buf[70];
        snprintf(buf, sizeof buf, "%ss", stem);
        FUZZ_CHECK(rt__parse_duration_ms(stem, &plain) && rt__parse_duration_ms(buf, &with_s) &&
                       plain == ms && with_s == ms,
                   "duration '%s' = %lld, '%s' and '%s' differ", s, (long long)ms, stem, buf);
    }
}

/* iso starts with a four-digit year. */
static bool fuzz_year(const char *iso) {
    return strspn(iso, "0123456789") == 4 && iso[4] == '-';
}

static void fuzz_time(const char *s) {
    int64_t at;
    if (!rt__parse_time_ms(s, FUZZ_NOW, &at)) return;
    if (s[0] == '+') {
        int64_t d;
        FUZZ_CHECK(rt__parse_duration_ms(s + 1, &d) && at == FUZZ_NOW + d, "'%s' = %lld", s,
                   (long long)at);
        return;
    }
    static const char shape[] = "dddd-dd-ddTdd:dd:dd";
    for (int i = 0; shape[i]; i++)
        FUZZ_CHECK(shape[i] == 'd' ? s[i] >= '0' && s[i] <= '9' : s[i] == shape[i],
                   "time '%s' accepted (character %d)", s, i + 1);
    char iso[40];
    rt__iso8601_ms(at, iso, sizeof iso);
    if (!fuzz_year(iso)) return; /* an offset moved it out of 0000..9999 */
    int64_t again;
    FUZZ_CHECK(rt__parse_time_ms(iso, FUZZ_NOW, &again) && again == at,
               "time '%s' = %lld shows as '%s' = %lld", s, (long long)at, iso,
               (long long)again);
}

static void fuzz_stored(int64_t ms) {
    char iso[40];
    memset(iso, 'x', sizeof iso);
    rt__iso8601_ms(ms, iso, 32);
    FUZZ_CHECK(memchr(iso, '\0', 32), "%lld: not terminated", (long long)ms);
    /* years 1..9999 show as they are and read back */
    if (ms >= -1968 * FUZZ_YEAR_MS && ms < 8028 * FUZZ_YEAR_MS) {
        int64_t again;
        FUZZ_CHECK(rt__parse_time_ms(iso, FUZZ_NOW, &again) && again == ms,
                   "%lld shows as '%s' = %lld", (long long)ms, iso, (long long)again);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 4096) return 0;
    fuzz_stored((int64_t)fuzz_u64(&data, &size));
    char *s = fuzz_str(data, size);
    fuzz_duration(s);
    fuzz_time(s);
    free(s);
    return 0;
}
