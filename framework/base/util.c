/*
 * util.c — small helpers shared by the library: allocation that aborts on
 * exhaustion, clocks, strict number parsing, a growable string with JSON
 * escaping, and ISO-8601 formatting. Text from outside (run keys, a
 * database's rows) is checked here: a run key is UTF-8 without control
 * characters (rt__key_check), and every JSON string or line for a terminal
 * shows what is not so escaped or replaced, never raw.
 */
#define _POSIX_C_SOURCE 200809L
#include <ctype.h>
#include <errno.h>
#include <unistd.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "base/base.h"

static void util_oom(void) {
    static const char msg[] = "ratchet: out of memory\n";
    fwrite(msg, 1, sizeof msg - 1, stderr);
    abort();
}

void *rt__xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) util_oom();
    return p;
}

void *rt__xcalloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) util_oom();
    return p;
}

void *rt__xrealloc(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    if (!q) util_oom();
    return q;
}

char *rt__xstrdup(const char *s) {
    return s ? rt__xstrndup(s, strlen(s)) : NULL;
}

char *rt__xstrndup(const char *s, size_t n) {
    char *p = rt__xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

int64_t rt__mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void rt__sleep_ms(int64_t ms) {
    if (ms <= 0) return;
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL); /* a stop signal cuts it short */
}

int64_t rt__mono_coarse_ns(void) {
#ifdef CLOCK_MONOTONIC_COARSE
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC_COARSE, &ts) == 0)
        return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
#endif
    return rt__mono_ns();
}

int64_t rt__wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

bool rt__parse_int64(const char *s, int64_t *out) {
    /* strtoll would skip any white space (\v, \r, \n too) */
    if (!s || !*s || isspace((unsigned char)s[0])) return false;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || end == s) return false;
    *out = v;
    return true;
}

bool rt__parse_double(const char *s, double *out) {
    if (!s || !*s || isspace((unsigned char)s[0])) return false;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || end == s || !isfinite(v)) return false;
    *out = v;
    return true;
}

bool rt__parse_bool(const char *s, bool *out) {
    static const char *const yes[] = {"1", "true", "yes", "on"};
    static const char *const no[] = {"0", "false", "no", "off"};
    if (!s) return false;
    for (size_t i = 0; i < sizeof yes / sizeof *yes; i++) {
        if (!strcasecmp(s, yes[i])) { *out = true; return true; }
        if (!strcasecmp(s, no[i])) { *out = false; return true; }
    }
    return false;
}

void rt__buf_add(rt__buf *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 128;
        while (cap < b->len + n + 1) cap *= 2;
        b->p = rt__xrealloc(b->p, cap);
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void rt__buf_puts(rt__buf *b, const char *s) { rt__buf_add(b, s, strlen(s)); }

void rt__buf_printf(rt__buf *b, const char *fmt, ...) {
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof tmp) {
        rt__buf_add(b, tmp, (size_t)n);
        return;
    }
    char *big = rt__xmalloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    rt__buf_add(b, big, (size_t)n);
    free(big);
}

size_t rt__utf8_seq(const char *s, size_t n, uint32_t *cp) {
    const unsigned char *p = (const unsigned char *)s;
    if (!n) return 0;
    if (p[0] < 0x80) {
        if (cp) *cp = p[0];
        return 1;
    }
    size_t len;
    uint32_t c, min;
    if (p[0] >= 0xc2 && p[0] <= 0xdf) len = 2, c = p[0] & 0x1f, min = 0x80;
    else if (p[0] >= 0xe0 && p[0] <= 0xef) len = 3, c = p[0] & 0x0f, min = 0x800;
    else if (p[0] >= 0xf0 && p[0] <= 0xf4) len = 4, c = p[0] & 0x07, min = 0x10000;
    else return 0; /* a continuation byte, 0xc0/0xc1 (overlong) or > 0xf4 */
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80) return 0;
        c = c << 6 | (p[i] & 0x3f);
    }
    /* overlong, a UTF-16 surrogate, or beyond U+10FFFF */
    if (c < min || (c >= 0xd800 && c <= 0xdfff) || c > 0x10ffff) return 0;
    if (cp) *cp = c;
    return len;
}

/* C0, DEL and C1: what a terminal may act on rather than show. */
static bool util_control(uint32_t c) {
    return c < 0x20 || (c >= 0x7f && c <= 0x9f);
}

int rt__key_check(const char *key, char *err, size_t errlen) {
    size_t n = key ? strlen(key) : 0;
    if (!n) {
        snprintf(err, errlen, "a run key must not be empty");
        return RT_INVALID;
    }
    if (n > RT__KEY_MAX) {
        snprintf(err, errlen, "a run key is at most %d bytes; this one is %zu",
                 RT__KEY_MAX, n);
        return RT_INVALID;
    }
    for (size_t i = 0; i < n;) {
        uint32_t c;
        size_t len = rt__utf8_seq(key + i, n - i, &c);
        if (!len) {
            snprintf(err, errlen, "a run key must be valid UTF-8; byte %zu "
                     "(0x%02x) is not", i + 1, (unsigned char)key[i]);
            return RT_INVALID;
        }
        if (util_control(c)) {
            snprintf(err, errlen, "a run key must not hold control characters; "
                     "byte %zu is U+%04X", i + 1, (unsigned)c);
            return RT_INVALID;
        }
        i += len;
    }
    return RT_OK;
}

void rt__buf_json(rt__buf *b, const char *s) {
    rt__buf_add(b, "\"", 1);
    if (!s) s = "";
    size_t n = strlen(s);
    const char *run = s; /* copied as it is, up to p */
    for (size_t i = 0; i < n;) {
        uint32_t c = 0;
        size_t len = rt__utf8_seq(s + i, n - i, &c);
        const char *esc = NULL;
        char u[8];
        if (!len) {
            esc = "\\ufffd"; /* not UTF-8: the replacement character */
            len = 1;
        } else if (c == '"') {
            esc = "\\\"";
        } else if (c == '\\') {
            esc = "\\\\";
        } else if (c == '\n') {
            esc = "\\n";
        } else if (c == '\r') {
            esc = "\\r";
        } else if (c == '\t') {
            esc = "\\t";
        } else if (util_control(c)) {
            snprintf(u, sizeof u, "\\u%04x", (unsigned)c);
            esc = u;
        }
        if (esc) {
            rt__buf_add(b, run, (size_t)(s + i - run));
            rt__buf_puts(b, esc);
            run = s + i + len;
        }
        i += len;
    }
    rt__buf_puts(b, run);
    rt__buf_add(b, "\"", 1);
}

void rt__buf_text(rt__buf *b, const char *s) {
    if (!s) return;
    size_t n = strlen(s);
    const char *run = s;
    for (size_t i = 0; i < n;) {
        uint32_t c = 0;
        size_t len = rt__utf8_seq(s + i, n - i, &c);
        char esc[12] = "";
        if (!len) {
            snprintf(esc, sizeof esc, "\\x%02x", (unsigned char)s[i]);
            len = 1;
        } else if (c == '\n') {
            strcpy(esc, "\\n");
        } else if (c == '\r') {
            strcpy(esc, "\\r");
        } else if (c == '\t') {
            strcpy(esc, "\\t");
        } else if (c < 0x80 && util_control(c)) {
            snprintf(esc, sizeof esc, "\\x%02x", (unsigned)c);
        } else if (util_control(c)) {
            snprintf(esc, sizeof esc, "\\u%04x", (unsigned)c);
        }
        if (esc[0]) {
            rt__buf_add(b, run, (size_t)(s + i - run));
            rt__buf_puts(b, esc);
            run = s + i + len;
        }
        i += len;
    }
    rt__buf_puts(b, run);
}

char *rt__text_safe(const char *s) {
    rt__buf b = {0};
    rt__buf_text(&b, s ? s : "");
    rt__buf_add(&b, "", 0);
    return b.p;
}

int64_t rt__add_sat(int64_t a, int64_t b) {
    if (b > 0 && a > INT64_MAX - b) return INT64_MAX;
    if (b < 0 && a < INT64_MIN - b) return INT64_MIN;
    return a + b;
}

int rt__int_clamp(int64_t v) {
    return v > INT_MAX ? INT_MAX : v < INT_MIN ? INT_MIN : (int)v;
}

int rt__count_clamp(int64_t v) {
    return v < 0 ? 0 : v >= INT_MAX ? INT_MAX - 1 : (int)v;
}

void rt__buf_free(rt__buf *b) {
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

void rt__iso8601_ms(int64_t ms, char *out, size_t n) {
    /* Rounded down: before 1970 the millisecond part stays positive. */
    int64_t secs = ms / 1000 - (ms % 1000 < 0);
    time_t t = (time_t)secs;
    struct tm tm;
    if (!gmtime_r(&t, &tm)) {
        /* Years beyond what struct tm holds (a corrupt stored time). */
        snprintf(out, n, "@%lld ms", (long long)ms);
        return;
    }
    int frac = (int)(ms % 1000);
    /* Four digits of year at least (strftime's %Y gives "226"). */
    snprintf(out, n, "%04lld-%02d-%02dT%02d:%02d:%02d.%03dZ",
             (long long)tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
             tm.tm_hour, tm.tm_min, tm.tm_sec, frac < 0 ? frac + 1000 : frac);
}

/*
 * The masking follows libpq's own reading of a URL or conninfo, since
 * whatever libpq takes as a password must not show:
 *  - scheme://user:PASSWORD@host: the password runs from the first ':' to
 *    the first '@' before any '/' (it may hold '?', '#', spaces, quotes);
 *  - KEYWORD=VALUE where KEYWORD is password or sslpassword (any case,
 *    percent-escapes decoded as in a URI query), after white space, '?',
 *    '&' or ';': in a URI's query the value runs to the next '&' (libpq
 *    takes spaces and quotes there as they are); in a conninfo it runs to
 *    white space outside 'quotes', with backslash escapes.
 * Masking more than libpq would read is harmless; less is a leak.
 */
static bool util_secret_key(const char *p, const char **end) {
    static const char *const keys[] = {"password", "sslpassword"};
    char key[16];
    size_t n = 0;
    while (*p && *p != '=' && *p != '&' && !isspace((unsigned char)*p)) {
        int c = (unsigned char)*p++;
        if (c == '%' && isxdigit((unsigned char)p[0]) && isxdigit((unsigned char)p[1])) {
            char hex[3] = {p[0], p[1], '\0'};
            c = (int)strtol(hex, NULL, 16);
            p += 2;
        }
        if (n < sizeof key - 1) key[n] = (char)c;
        n++;
    }
    *end = p;
    if (n >= sizeof key) return false;
    key[n] = '\0';
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
        if (!strcasecmp(key, keys[i])) return true;
    return false;
}

static const char *util_value_end(const char *p, bool uri) {
    if (uri) return p + strcspn(p, "&");
    /* Text glued to a quoted part ('a b'c) goes with it. */
    bool quoted = false;
    for (; *p && (quoted || !isspace((unsigned char)*p)); p++) {
        if (*p == '\\' && p[1]) p++;
        else if (*p == '\'') quoted = !quoted;
    }
    return p;
}

/* Where the value of a secret keyword at p begins, or NULL if there is
 * none at p. */
static const char *util_secret_value(const char *text, const char *p, bool uri) {
    const char *q;
    bool boundary = p == text || isspace((unsigned char)p[-1]) || strchr("?&;", p[-1]);
    if (!boundary || !util_secret_key(p, &q)) return NULL;
    while (isspace((unsigned char)*q)) q++;
    if (*q != '=') return NULL;
    q++;
    while (!uri && isspace((unsigned char)*q)) q++;
    return q;
}

char *rt__mask_secrets(const char *text) {
    rt__buf b = {0};
    const char *p = text;
    bool uri = false; /* past a "://": values are a query's */
    while (*p) {
        if (!strncmp(p, "://", 3)) {
            uri = true;
            rt__buf_add(&b, p, 3);
            p += 3;
            size_t span = strcspn(p, "@/");
            const char *colon = memchr(p, ':', span);
            if (p[span] == '@' && colon) {
                rt__buf_add(&b, p, (size_t)(colon - p) + 1);
                rt__buf_puts(&b, "***");
                p += span;
            }
            continue;
        }
        const char *q = util_secret_value(text, p, uri);
        if (q) {
            rt__buf_add(&b, p, (size_t)(q - p));
            rt__buf_puts(&b, "***");
            /* What is hidden may hold a keyword that libpq reads as one
             * ("host=a;password= password=x": libpq's host is "a;password="):
             * its value goes too. */
            const char *end = util_value_end(q, uri), *v;
            for (const char *r = q; r < end; r++)
                if ((v = util_secret_value(text, r, uri)) != NULL) {
                    const char *e = util_value_end(v, uri);
                    if (e > end) end = e;
                }
            p = end;
            continue;
        }
        rt__buf_add(&b, p, 1);
        p++;
    }
    rt__buf_add(&b, "", 0);
    return b.p ? b.p : rt__xstrdup("");
}

bool rt__parse_duration_ms(const char *s, int64_t *out) {
    size_t n = strlen(s);
    if (!n || n > 30) return false;
    static const struct { char unit; int64_t ms; } units[] = {
        {'s', 1000}, {'m', 60000}, {'h', 3600000}, {'d', 86400000}};
    int64_t mult = 1000;
    char num[32];
    memcpy(num, s, n + 1);
    /* One unit at most: "1ms" is not a number of minutes, and "s" alone
     * leaves nothing to look at. */
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (num[n - 1] == units[i].unit) {
            mult = units[i].ms;
            num[--n] = '\0';
            break;
        }
    double v;
    if (!n || !rt__parse_double(num, &v) || v < 0 || v * (double)mult > 9e15)
        return false;
    *out = (int64_t)(v * (double)mult);
    return true;
}

/* s starts with shape: 'd' a digit, anything else itself. */
static bool util_shape(const char *s, const char *shape) {
    for (; *shape; s++, shape++)
        if (*shape == 'd' ? !(*s >= '0' && *s <= '9') : *s != *shape) return false;
    return true;
}

/* The n digits at s as a number. */
static int util_digits(const char *s, int n) {
    int v = 0;
    while (n-- > 0) v = v * 10 + (*s++ - '0');
    return v;
}

bool rt__parse_time_ms(const char *s, int64_t now_ms, int64_t *out) {
    int64_t d;
    if (s[0] == '+') {
        if (!rt__parse_duration_ms(s + 1, &d)) return false;
        *out = now_ms + d;
        return true;
    }
    /* Digits where digits go (sscanf would take signs and spaces too). */
    if (!util_shape(s, "dddd-dd-ddTdd:dd:dd")) return false;
    int y = util_digits(s, 4), mo = util_digits(s + 5, 2),
        da = util_digits(s + 8, 2), h = util_digits(s + 11, 2),
        mi = util_digits(s + 14, 2), sec = util_digits(s + 17, 2);
    if (mo < 1 || mo > 12 || da < 1 || da > 31 || h > 23 || mi > 59 || sec > 60)
        return false;
    const char *p = s + 19;
    int64_t ms = 0;
    if (*p == '.') {
        int digits = 0;
        for (p++; *p >= '0' && *p <= '9'; p++, digits++)
            if (digits < 3) ms = ms * 10 + (*p - '0');
        if (!digits) return false;
        for (; digits < 3; digits++) ms *= 10;
    }
    int64_t offset_s = 0;
    if (*p == 'Z') {
        p++;
    } else if ((*p == '+' || *p == '-') && util_shape(p + 1, "dd:dd")) {
        int oh = util_digits(p + 1, 2), om = util_digits(p + 4, 2);
        if (oh > 23 || om > 59) return false;
        offset_s = (*p == '-' ? -1 : 1) * (oh * 3600 + om * 60);
        p += 6;
    } else {
        return false;
    }
    if (*p) return false;
    /* days from civil (proleptic Gregorian), as in signals.c's inverse */
    int64_t yy = y - (mo <= 2);
    int64_t era = (yy >= 0 ? yy : yy - 399) / 400;
    int64_t yoe = yy - era * 400;
    int64_t doy = (153 * (mo + (mo > 2 ? -3 : 9)) + 2) / 5 + da - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    int64_t days = era * 146097 + doe - 719468;
    *out = ((days * 86400 + h * 3600 + mi * 60 + sec) - offset_s) * 1000 + ms;
    return true;
}

uint32_t rt__random_u32(void) {
    uint32_t r = 0;
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0 || read(fd, &r, sizeof r) != (ssize_t)sizeof r)
        r = (uint32_t)(rt__mono_ns() ^ (int64_t)getpid() << 16);
    if (fd >= 0) close(fd);
    return r;
}

char *rt__err_out(char *err, size_t *errlen) {
    static _Thread_local char scratch[RT_ERRMSG_MAX];
    if (!err || !*errlen) {
        err = scratch;
        *errlen = sizeof scratch;
    }
    err[0] = '\0';
    return err;
}
