/*
 * cron.c — cron expressions: the parser (text to one bitset per field) and
 * the next-fire computation (a walk over civil time guided by the bitsets).
 *
 * Syntax. Five fields "minute hour day-of-month month day-of-week", or six
 * with seconds first. A field is a comma list of items: `*`, `N`, `A-B`,
 * each with an optional step `/S` (`A/S` means A up to the field's maximum,
 * 7 for weekdays). Months jan..dec and weekdays sun..sat (any case) stand
 * for numbers, also in ranges (mon-fri). Weekday 0 and 7 are both Sunday.
 * Aliases (any case): @yearly (= @annually), @monthly, @weekly, @daily
 * (= @midnight), @hourly; @reboot is refused. A prefix
 * `TZ=Zone/Name ` or `CRON_TZ=Zone/Name ` makes the fields local times of
 * that IANA zone, which must be a TZif file under $TZDIR (when set) or
 * /usr/share/zoneinfo; without one, and with TZ=UTC, times are UTC.
 *
 * Day of month and day of week combine like Vixie cron: when either field's
 * text starts with '*' a day must match both; when both are restricted a
 * day matching either fires ("0 0 1 * mon": the 1st and every Monday).
 *
 * Daylight saving. A slot is a local time; it fires at the earliest instant
 * whose local time is at or past it:
 *  - a local time skipped by a spring-forward change fires once, at the
 *    instant of the change (the first instant after the gap); several slots
 *    in one gap collapse onto that one instant;
 *  - a local time that occurs twice (fall back) fires once, at its first
 *    occurrence; the repeated interval fires nothing.
 * In America/New_York, "30 2 * * *" fires on 2026-03-08 at 03:00 EDT (the
 * change), "30 1 * * *" on 2026-11-01 at 01:30 EDT only, and "0 * * * *"
 * that night at 01:00 EDT, then 02:00 EST (01:00 EST does not fire).
 * rt__cron_next returns the smallest such instant strictly after its
 * argument, so successive calls are strictly increasing, also when the
 * argument lies in the second pass of a repeated hour.
 *
 * Speed. UTC schedules are pure arithmetic (days from civil and back) and
 * touch no global state. Zone schedules walk local civil time the same way
 * and convert only candidates, with localtime_r under TZ=zone (a mutex
 * guards TZ; see rt__cron_next). The walk skips whole months, days, hours
 * and minutes by bitset lookups. The Gregorian calendar, weekdays included,
 * repeats every 400 years, so a walk that finds nothing within 400 years
 * and a day never will: "0 0 30 2 *" returns -1 after ~800 steps.
 */
#define _POSIX_C_SOURCE 200809L
#include <ctype.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include "service/cron.h"
#include "service/service.h"

#define CRON_DAY 86400
#define CRON_CYCLE_DAYS 146097 /* days in 400 Gregorian years */
#define CRON_ZONE_MAX 128
#define CRON_ZONE_DIR "/usr/share/zoneinfo"
#define CRON_SHOW_MAX 120 /* expression characters echoed in a message */

struct rt__cron {
    uint64_t second, minute; /* bits 0-59 */
    uint32_t hour;           /* bits 0-23 */
    uint32_t dom;            /* bits 1-31 */
    uint16_t month;          /* bits 1-12 */
    uint8_t dow;             /* bits 0-6, Sunday = 0 */
    bool dom_star, dow_star; /* the field's text starts with '*' */
    bool has_seconds;
    bool utc;
    char zone[CRON_ZONE_MAX];
};

/* Guards the TZ variable: set while converting, read while validating. */
static pthread_mutex_t cron_tz_lock = PTHREAD_MUTEX_INITIALIZER;

/* ============================================================== parsing */

enum { CRON_SECOND, CRON_MINUTE, CRON_HOUR, CRON_DOM, CRON_MONTH, CRON_DOW, CRON_FIELDS };

typedef struct cron_field {
    const char *name; /* for messages: "minute 61 is out of range 0-59" */
    int min, max;
    const char *const *names; /* three-letter names, or NULL */
    int names_base;           /* the value of names[0] */
    const char *names_hint;
} cron_field;

static const char *const cron_month_names[] = {"jan", "feb", "mar", "apr", "may", "jun", "jul",
                                               "aug", "sep", "oct", "nov", "dec", NULL};
static const char *const cron_dow_names[] = {"sun", "mon", "tue", "wed",
                                             "thu", "fri", "sat", NULL};

static const cron_field cron_fields[CRON_FIELDS] = {
    [CRON_SECOND] = {"second", 0, 59, NULL, 0, NULL},
    [CRON_MINUTE] = {"minute", 0, 59, NULL, 0, NULL},
    [CRON_HOUR] = {"hour", 0, 23, NULL, 0, NULL},
    [CRON_DOM] = {"day of month", 1, 31, NULL, 0, NULL},
    [CRON_MONTH] = {"month", 1, 12, cron_month_names, 1, "jan-dec"},
    [CRON_DOW] = {"day of week", 0, 7, cron_dow_names, 0, "sun-sat"},
};

static const struct {
    const char *name, *fields;
} cron_aliases[] = {
    {"@yearly", "0 0 1 1 *"}, {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"},
    {"@weekly", "0 0 * * 0"}, {"@daily", "0 0 * * *"},    {"@midnight", "0 0 * * *"},
    {"@hourly", "0 * * * *"}, {NULL, NULL},
};

typedef struct cron_parser {
    const char *expr; /* positions in messages count from here */
    char *err;
    size_t errlen;
} cron_parser;

/*
 * Write "cron 'EXPR': position N: REASON" (at inside expr) or
 * "cron 'EXPR': REASON" (at NULL) and return RT_INVALID. Control characters
 * become '?' so the message stays one line.
 */
static int cron_fail(const cron_parser *p, const char *at, const char *fmt, ...)
    RT_PRINTF(3, 4);
static int cron_fail(const cron_parser *p, const char *at, const char *fmt, ...) {
    if (!p->err || p->errlen == 0) return RT_INVALID;
    char reason[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    size_t len = strlen(p->expr);
    int shown = len > CRON_SHOW_MAX ? CRON_SHOW_MAX : (int)len;
    const char *more = len > CRON_SHOW_MAX ? "..." : "";
    if (at)
        snprintf(p->err, p->errlen, "cron '%.*s%s': position %d: %s", shown, p->expr, more,
                 (int)(at - p->expr) + 1, reason);
    else
        snprintf(p->err, p->errlen, "cron '%.*s%s': %s", shown, p->expr, more, reason);
    for (char *s = p->err; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f) *s = '?';
    return RT_INVALID;
}

static bool cron_space(char ch) { return isspace((unsigned char)ch) != 0; }
static bool cron_digit(char ch) { return ch >= '0' && ch <= '9'; }
static bool cron_alpha(char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
}

static const char *cron_skip_space(const char *s) {
    while (cron_space(*s)) s++;
    return s;
}

/* "unexpected character 'x'" (or its hex code when not printable). */
static int cron_unexpected(const cron_parser *p, const char *at) {
    unsigned char ch = (unsigned char)*at;
    if (ch > 0x20 && ch < 0x7f) return cron_fail(p, at, "unexpected character '%c'", ch);
    return cron_fail(p, at, "unexpected character 0x%02x", ch);
}

/* One value of field f at *qp (before e): a number or a name. */
static int cron_value(const cron_parser *p, const cron_field *f, const char **qp,
                      const char *e, int *out) {
    const char *s = *qp, *q = s;
    if (q < e && cron_digit(*q)) {
        long v = 0;
        for (; q < e && cron_digit(*q); q++)
            if (v < 1000000) v = v * 10 + (*q - '0');
        if (v < f->min || v > f->max)
            return cron_fail(p, s, "%s %.*s is out of range %d-%d", f->name, (int)(q - s), s,
                             f->min, f->max);
        *out = (int)v;
        *qp = q;
        return RT_OK;
    }
    if (q < e && cron_alpha(*q)) {
        while (q < e && cron_alpha(*q)) q++;
        int len = (int)(q - s);
        if (!f->names)
            return cron_fail(p, s, "expected a %s number, got '%.*s'", f->name, len, s);
        for (int i = 0; f->names[i]; i++)
            if (len == 3 && strncasecmp(s, f->names[i], 3) == 0) {
                *out = f->names_base + i;
                *qp = q;
                return RT_OK;
            }
        return cron_fail(p, s, "'%.*s' is not a %s name (%s)", len, s, f->name, f->names_hint);
    }
    if (q == e || *q == ',' || *q == '-' || *q == '/')
        return cron_fail(p, s, "expected a %s value", f->name);
    return cron_unexpected(p, q);
}

/* The step after a '/' at *qp: 1 up to the field's maximum. */
static int cron_step(const cron_parser *p, const cron_field *f, const char **qp,
                     const char *e, int *out) {
    const char *s = *qp, *q = s;
    if (q == e || !cron_digit(*q)) return cron_fail(p, s, "expected a step number after '/'");
    long v = 0;
    for (; q < e && cron_digit(*q); q++)
        if (v < 1000000) v = v * 10 + (*q - '0');
    if (v < 1 || v > f->max)
        return cron_fail(p, s, "%s step %.*s is out of range 1-%d", f->name, (int)(q - s), s,
                         f->max);
    *out = (int)v;
    *qp = q;
    return RT_OK;
}

/* Field text [s, e): a comma list of items, each adding bits to *bits. */
static int cron_parse_field(const cron_parser *p, const cron_field *f, const char *s,
                            const char *e, uint64_t *bits) {
    const char *q = s;
    for (;;) {
        if (q == e || *q == ',') return cron_fail(p, q, "empty list item");
        const char *item = q;
        int lo, hi, step = 1, rc;
        if (*q == '*') {
            lo = f->min;
            hi = f->max;
            q++;
        } else {
            if ((rc = cron_value(p, f, &q, e, &lo)) != RT_OK) return rc;
            hi = lo;
            if (q < e && *q == '-') {
                q++;
                if ((rc = cron_value(p, f, &q, e, &hi)) != RT_OK) return rc;
                if (hi < lo)
                    return cron_fail(p, item, "range %.*s is reversed (start after end)",
                                     (int)(q - item), item);
            } else if (q < e && *q == '/') {
                hi = f->max; /* A/S: from A to the end */
            }
        }
        if (q < e && *q == '/') {
            q++;
            if ((rc = cron_step(p, f, &q, e, &step)) != RT_OK) return rc;
        }
        for (int v = lo; v <= hi; v += step) *bits |= UINT64_C(1) << v;
        if (q == e) return RT_OK;
        if (*q != ',') return cron_unexpected(p, q);
        q++;
    }
}

/* Split s at white space; stores at most max fields, returns the count. */
static int cron_split(const char *s, const char **fs, const char **fe, int max) {
    int n = 0;
    for (s = cron_skip_space(s); *s; s = cron_skip_space(s)) {
        const char *start = s;
        while (*s && !cron_space(*s)) s++;
        if (n < max) {
            fs[n] = start;
            fe[n] = s;
        }
        n++;
    }
    return n;
}

/* n (5 or 6) fields into c's bitsets. */
static int cron_parse_fields(const cron_parser *p, int n, const char **fs, const char **fe,
                             rt__cron *c) {
    uint64_t bits[CRON_FIELDS] = {[CRON_SECOND] = 1}; /* five fields: second 0 */
    int first = n == 6 ? CRON_SECOND : CRON_MINUTE;
    if (n == 6) bits[CRON_SECOND] = 0;
    for (int i = 0; i < n; i++) {
        int rc = cron_parse_field(p, &cron_fields[first + i], fs[i], fe[i], &bits[first + i]);
        if (rc != RT_OK) return rc;
    }
    c->second = bits[CRON_SECOND];
    c->minute = bits[CRON_MINUTE];
    c->hour = (uint32_t)bits[CRON_HOUR];
    c->dom = (uint32_t)bits[CRON_DOM];
    c->month = (uint16_t)bits[CRON_MONTH];
    c->dow = (uint8_t)((bits[CRON_DOW] | bits[CRON_DOW] >> 7) & 0x7f); /* 7 is Sunday */
    c->dom_star = *fs[CRON_DOM - first] == '*';
    c->dow_star = *fs[CRON_DOW - first] == '*';
    c->has_seconds = n == 6;
    return RT_OK;
}

/* "@daily" and friends; n counts the fields after the time zone. */
static int cron_parse_alias(const cron_parser *p, int n, const char **fs, const char **fe,
                            rt__cron *c) {
    int len = (int)(fe[0] - fs[0]);
    if (n > 1)
        return cron_fail(p, fs[1], "unexpected '%.*s' after %.*s", (int)(fe[1] - fs[1]), fs[1],
                         len, fs[0]);
    for (int i = 0; cron_aliases[i].name; i++) {
        if ((size_t)len != strlen(cron_aliases[i].name) ||
            strncasecmp(fs[0], cron_aliases[i].name, (size_t)len) != 0)
            continue;
        const char *as[5], *ae[5];
        int an = cron_split(cron_aliases[i].fields, as, ae, 5);
        return cron_parse_fields(p, an, as, ae, c);
    }
    if (len == 7 && strncasecmp(fs[0], "@reboot", 7) == 0)
        return cron_fail(p, fs[0], "@reboot is not supported: a schedule fires at times, "
                                   "not at startup (start the job from the service manager)");
    return cron_fail(p, fs[0],
                     "unknown alias '%.*s' (use @yearly, @annually, @monthly, @weekly, "
                     "@daily, @midnight or @hourly)",
                     len, fs[0]);
}

/*
 * Whether name[0..len) is a zone we can load: "UTC", or a safe relative name
 * ([A-Za-z0-9_+/-], no leading '/', no "..") of a TZif file in the zone
 * directory glibc reads ($TZDIR, else /usr/share/zoneinfo).
 */
static bool cron_zone_exists(const char *name, size_t len) {
    if (len == 3 && memcmp(name, "UTC", 3) == 0) return true;
    if (len == 0 || len >= CRON_ZONE_MAX || name[0] == '/') return false;
    for (size_t i = 0; i < len; i++) {
        char ch = name[i];
        /* no '.' at all, so no ".." either */
        if (!cron_alpha(ch) && !cron_digit(ch) && !strchr("_+-/", ch)) return false;
    }
    char path[4096];
    pthread_mutex_lock(&cron_tz_lock);
    const char *dir = getenv("TZDIR");
    int n = snprintf(path, sizeof path, "%s/%.*s", dir && *dir ? dir : CRON_ZONE_DIR, (int)len,
                     name);
    pthread_mutex_unlock(&cron_tz_lock);
    if (n < 0 || (size_t)n >= sizeof path) return false;
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) return false;
    FILE *f = fopen(path, "rb");
    if (!f) return false;
    char magic[4];
    bool tzif = fread(magic, 1, 4, f) == 4 && memcmp(magic, "TZif", 4) == 0;
    fclose(f);
    return tzif;
}

/* An optional "TZ=Zone " / "CRON_TZ=Zone " prefix at *qp; UTC without. */
static int cron_parse_zone(const cron_parser *p, const char **qp, rt__cron *c) {
    const char *q = *qp, *name;
    if (strncmp(q, "TZ=", 3) == 0)
        name = q + 3;
    else if (strncmp(q, "CRON_TZ=", 8) == 0)
        name = q + 8;
    else {
        strcpy(c->zone, "UTC");
        c->utc = true;
        return RT_OK;
    }
    const char *e = name;
    while (*e && !cron_space(*e)) e++;
    size_t len = (size_t)(e - name);
    if (!cron_zone_exists(name, len))
        return cron_fail(p, name, "unknown time zone '%.*s'", (int)len, name);
    memcpy(c->zone, name, len);
    c->zone[len] = '\0';
    c->utc = strcmp(c->zone, "UTC") == 0;
    *qp = e;
    return RT_OK;
}

int rt__cron_parse(const char *expr, rt__cron **out, char *err, size_t errlen) {
    if (err && errlen) err[0] = '\0';
    if (out) *out = NULL;
    if (!expr || !out) {
        if (err && errlen) snprintf(err, errlen, "cron: %s is NULL", expr ? "out" : "expr");
        return RT_MISUSE;
    }
    cron_parser p = {expr, err, errlen};
    rt__cron c;
    memset(&c, 0, sizeof c);
    const char *q = cron_skip_space(expr);
    int rc = cron_parse_zone(&p, &q, &c);
    if (rc != RT_OK) return rc;
    const char *fs[7], *fe[7];
    int n = cron_split(q, fs, fe, 7);
    if (n >= 1 && fs[0][0] == '@')
        rc = cron_parse_alias(&p, n, fs, fe, &c);
    else if (n != 5 && n != 6)
        rc = cron_fail(&p, NULL, "expected 5 fields (or 6 with seconds first), got %d", n);
    else
        rc = cron_parse_fields(&p, n, fs, fe, &c);
    if (rc != RT_OK) return rc;
    *out = rt__xmalloc(sizeof **out);
    **out = c;
    return RT_OK;
}

void rt__cron_free(rt__cron *c) { free(c); }

const char *rt__cron_zone(const rt__cron *c) { return c->zone; }

bool rt__cron_has_seconds(const rt__cron *c) { return c->has_seconds; }

/* ======================================================== civil time */

/* a / b rounded down (b > 0). */
static int64_t cron_floor_div(int64_t a, int64_t b) {
    int64_t q = a / b;
    return (a % b != 0 && a < 0) ? q - 1 : q;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant). */
static int64_t cron_days_from_civil(int64_t y, int m, int d) {
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * CRON_CYCLE_DAYS + doe - 719468;
}

static void cron_civil_from_days(int64_t z, int64_t *y, int *m, int *d) {
    z += 719468;
    int64_t era = (z >= 0 ? z : z - (CRON_CYCLE_DAYS - 1)) / CRON_CYCLE_DAYS;
    int64_t doe = z - era * CRON_CYCLE_DAYS;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static int cron_days_in_month(int64_t y, int m) {
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
    return m == 2 && leap ? 29 : days[m - 1];
}

/* The smallest member of set that is >= from, or -1. */
static int cron_next_bit(uint64_t set, int from) {
    if (from >= 64) return -1;
    uint64_t rest = set & (~UINT64_C(0) << from);
    return rest ? __builtin_ctzll(rest) : -1;
}

/* The days of month m of year y that fire, as bits 1-31. */
static uint32_t cron_day_set(const rt__cron *c, int64_t y, int m) {
    int dim = cron_days_in_month(y, m);
    uint32_t valid = (uint32_t)(((UINT64_C(1) << dim) - 1) << 1);
    int wd = (int)((cron_days_from_civil(y, m, 1) % 7 + 11) % 7); /* 1970-01-01: Thu */
    /* bit i of week: weekday (wd + i) % 7 fires; repeated, it covers days i + 1 */
    uint64_t week = ((uint64_t)c->dow >> wd | (uint64_t)c->dow << (7 - wd)) & 0x7f;
    uint32_t dows = (uint32_t)((week | week << 7 | week << 14 | week << 21 | week << 28) << 1);
    uint32_t days = c->dom_star || c->dow_star ? c->dom & dows : c->dom | dows;
    return days & valid;
}

/*
 * The first civil time >= from (seconds since 1970-01-01T00:00 of the same
 * calendar, no zone) that matches c. False when none within 400 years and a
 * day. Each turn of the loop settles one field or carries into the next
 * larger one, jumping straight to the next member of its set.
 */
static bool cron_walk(const rt__cron *c, int64_t from, int64_t *out) {
    int64_t day = cron_floor_div(from, CRON_DAY), y;
    int64_t limit = day + CRON_CYCLE_DAYS + 1;
    int sod = (int)(from - day * CRON_DAY), m, d;
    int hour = sod / 3600, min = sod / 60 % 60, sec = sod % 60;
    cron_civil_from_days(day, &y, &m, &d);
    while (day <= limit) {
        if (!(c->month >> m & 1)) { /* the first day of the next month in the set */
            int next = cron_next_bit(c->month, m + 1);
            if (next < 0) {
                y++;
                next = cron_next_bit(c->month, 1);
            }
            m = next;
            d = 1;
            hour = min = sec = 0;
            day = cron_days_from_civil(y, m, d);
            continue;
        }
        int nd = cron_next_bit(cron_day_set(c, y, m), d);
        if (nd < 0) { /* no day left this month: the 1st of the next */
            if (++m > 12) {
                m = 1;
                y++;
            }
            d = 1;
            hour = min = sec = 0;
            day = cron_days_from_civil(y, m, d);
            continue;
        }
        if (nd != d) {
            day += nd - d;
            d = nd;
            hour = min = sec = 0;
        }
        int nh = cron_next_bit(c->hour, hour);
        if (nh < 0) { /* no hour left today: tomorrow */
            cron_civil_from_days(++day, &y, &m, &d);
            hour = min = sec = 0;
            continue;
        }
        if (nh != hour) {
            hour = nh;
            min = sec = 0;
        }
        int nmin = cron_next_bit(c->minute, min);
        if (nmin < 0) { /* the next hour; hour 24 carries into tomorrow above */
            hour++;
            min = sec = 0;
            continue;
        }
        if (nmin != min) {
            min = nmin;
            sec = 0;
        }
        int ns = cron_next_bit(c->second, sec);
        if (ns < 0) { /* the next minute; minute 60 carries above */
            min++;
            sec = 0;
            continue;
        }
        *out = day * CRON_DAY + hour * 3600 + min * 60 + ns;
        return true;
    }
    return false;
}

bool rt__cron_matches(const rt__cron *c, int64_t civil_s) {
    int64_t day = cron_floor_div(civil_s, CRON_DAY), y;
    int sod = (int)(civil_s - day * CRON_DAY), m, d;
    cron_civil_from_days(day, &y, &m, &d);
    int wd = (int)((day % 7 + 11) % 7); /* 1970-01-01 was a Thursday */
    bool dom = c->dom >> d & 1, dow = c->dow >> wd & 1;
    bool date = c->dom_star || c->dow_star ? dom && dow : dom || dow;
    return date && (c->month >> m & 1) && (c->hour >> (sod / 3600) & 1) &&
           (c->minute >> (sod / 60 % 60) & 1) && (c->second >> (sod % 60) & 1);
}

/* ======================================================== time zones */

/* Local civil seconds of instant u in the current TZ. */
static bool cron_local(int64_t u, int64_t *out) {
    time_t t = (time_t)u;
    struct tm tm;
    if ((int64_t)t != u || !localtime_r(&t, &tm)) return false;
    *out = cron_days_from_civil(tm.tm_year + INT64_C(1900), tm.tm_mon + 1, tm.tm_mday) * CRON_DAY +
           tm.tm_hour * 3600 + tm.tm_min * 60 + tm.tm_sec;
    return true;
}

/*
 * The earliest instant whose local time is >= slot: the slot itself when it
 * exists (its first occurrence when it exists twice), the end of the gap
 * when a spring-forward change skipped it. The offsets a day before and
 * after are the two candidates around any change near the slot.
 */
static bool cron_first_instant(int64_t slot, int64_t *out) {
    int64_t around[2] = {slot - CRON_DAY, slot + CRON_DAY}, best = INT64_MAX, local;
    for (int i = 0; i < 2; i++) {
        if (!cron_local(around[i], &local)) return false;
        int64_t u = slot - (local - around[i]); /* slot minus that offset */
        int64_t back;
        if (!cron_local(u, &back)) return false;
        if (back == slot && u < best) best = u;
    }
    if (best != INT64_MAX) {
        *out = best;
        return true;
    }
    /* In a gap: the change is the first instant whose local time is past slot. */
    int64_t lo = around[0], hi = around[1]; /* local(lo) < slot < local(hi) */
    while (hi - lo > 1) {
        int64_t mid = lo + (hi - lo) / 2;
        if (!cron_local(mid, &local)) return false;
        if (local >= slot) hi = mid;
        else lo = mid;
    }
    *out = hi;
    return true;
}

/*
 * The latest local time reached by an instant in [lo, hi], given that
 * local(lo) >= slot > local(hi): hi is in the second pass of an interval
 * repeated by a fall-back change that lies between them.
 */
static bool cron_latest_local(int64_t slot, int64_t lo, int64_t hi, int64_t *out) {
    int64_t local;
    while (hi - lo > 1) {
        int64_t mid = lo + (hi - lo) / 2;
        if (!cron_local(mid, &local)) return false;
        if (local >= slot) lo = mid;
        else hi = mid;
    }
    return cron_local(lo, out);
}

/* The first firing instant > after (seconds) in the current TZ. */
static bool cron_next_local(const rt__cron *c, int64_t after, int64_t *out) {
    int64_t from;
    if (!cron_local(after, &from)) return false;
    from++;
    for (;;) {
        int64_t slot, at, reached;
        if (!cron_walk(c, from, &slot) || !cron_first_instant(slot, &at)) return false;
        if (at > after) {
            *out = at;
            return true;
        }
        /*
         * after is in the second pass of a repeated interval whose first pass
         * reached slot already: the slots up to the latest local time reached
         * by then have fired; look past it.
         */
        if (!cron_latest_local(slot, at, after, &reached)) return false;
        from = (reached > slot ? reached : slot) + 1;
    }
}

/* Run cron_next_local with TZ set to c's zone, restoring TZ afterwards. */
static bool cron_next_zoned(const rt__cron *c, int64_t after, int64_t *out) {
    char tz[CRON_ZONE_MAX + 1];
    snprintf(tz, sizeof tz, ":%s", c->zone); /* ':' : a file, never a POSIX rule */
    pthread_mutex_lock(&cron_tz_lock);
    const char *old = getenv("TZ");
    char *saved = old ? rt__xstrdup(old) : NULL;
    setenv("TZ", tz, 1);
    tzset(); /* glibc's localtime_r does not re-read TZ by itself */
    bool found = cron_next_local(c, after, out);
    if (saved)
        setenv("TZ", saved, 1);
    else
        unsetenv("TZ");
    tzset();
    pthread_mutex_unlock(&cron_tz_lock);
    free(saved);
    return found;
}

int64_t rt__cron_next(const rt__cron *c, int64_t after_ms) {
    if (!c) return -1;
    /* Slots are whole seconds: strictly after after_ms is after its second. */
    int64_t after = cron_floor_div(after_ms, 1000), at;
    bool found = c->utc ? cron_walk(c, after + 1, &at) : cron_next_zoned(c, after, &at);
    if (!found || at > INT64_MAX / 1000) return -1;
    return at * 1000;
}
