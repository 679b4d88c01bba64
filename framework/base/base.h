/*
 * base/base.h — the floor every layer stands on: allocation, clocks, strict
 * parsers, strings and JSON escaping (util.c), log lines (log.c), and the
 * CLI's exit codes. Nothing here knows of a database or a run.
 * Everything here is rt__-prefixed and hidden from the shared library.
 */
#ifndef RT_BASE_H
#define RT_BASE_H

#include <pthread.h>
#include <signal.h>
#include <stdio.h>

#include "ratchet.h"

/* The longest one-line error message a call leaves. */
#define RT_ERRMSG_MAX 1024

/* The longest run key, in bytes: a lease scope is "JOB/KEY" and the
 * workers' buffers hold that much. */
#define RT__KEY_MAX 255
#if defined(__GNUC__) || defined(__clang__)
#define RT_UNUSED __attribute__((unused))
#else
#define RT_UNUSED
#endif

/* Exit codes of the CLI (RT_EXIT_*, DESIGN.md) are public: ratchet.h,
 * beside rt_exit_code. Which return code (RT_*) gives which is one table:
 * rt__exit_code (core/entry.c). */

/* ------------------------------------------------------------- util.c */

void *rt__xmalloc(size_t n);
void *rt__xcalloc(size_t n, size_t size);
void *rt__xrealloc(void *p, size_t n);
char *rt__xstrdup(const char *s);
char *rt__xstrndup(const char *s, size_t n);
/* Monotonic clock in nanoseconds / milliseconds; wall clock in ms. */
int64_t rt__mono_ns(void);
/* The same clock as of its last tick (Linux: 1-4 ms behind, never ahead),
 * several times cheaper to read; rt__mono_ns where there is none. */
int64_t rt__mono_coarse_ns(void);
int64_t rt__wall_ms(void);
/* Sleep ms (nothing when ms <= 0); a stop signal cuts it short. */
void rt__sleep_ms(int64_t ms);
/* Strict decimal parsers: whole string, no overflow. */
bool rt__parse_int64(const char *s, int64_t *out);
bool rt__parse_double(const char *s, double *out);
bool rt__parse_bool(const char *s, bool *out);
/* "90s", "15m", "12h", "30d" (or plain seconds) as milliseconds. */
bool rt__parse_duration_ms(const char *s, int64_t *out);
/* "2026-11-23T12:00:00Z" (".123" and "+01:00" allowed) or "+DURATION"
 * from now_ms, as ms since the epoch. */
bool rt__parse_time_ms(const char *s, int64_t now_ms, int64_t *out);
/* Four random bytes (/dev/urandom; the clock and pid if it fails). */
uint32_t rt__random_u32(void);
/* A public call's err/errlen, emptied; a scratch buffer when NULL/0. */
char *rt__err_out(char *err, size_t *errlen);
/* Growable string. */
typedef struct rt__buf {
    char *p;
    size_t len, cap;
} rt__buf;
void rt__buf_add(rt__buf *b, const char *s, size_t n);
void rt__buf_puts(rt__buf *b, const char *s);
void rt__buf_printf(rt__buf *b, const char *fmt, ...) RT_PRINTF(2, 3);
/* Append s as a JSON string literal, quotes included: ", \\ and control
 * characters (C0, DEL, C1) escaped, each byte that is not part of valid
 * UTF-8 replaced by \ufffd, so the document always parses. */
void rt__buf_json(rt__buf *b, const char *s);
/* Append s for a terminal or a text log, on one line: \n, \r, \t, other
 * C0 and DEL as \xNN, C1 as \uNNNN, a byte that is not UTF-8 as \xNN.
 * Nothing when s is NULL. */
void rt__buf_text(rt__buf *b, const char *s);
/* The same as a malloc'd string ("" for NULL); the caller frees it. */
char *rt__text_safe(const char *s);
/* The length of the valid UTF-8 sequence at s (at most n bytes; 1 to 4;
 * it reads no further than a NUL),
 * its code point in *cp (may be NULL); 0 when it is not one (a stray or
 * missing continuation byte, overlong, a surrogate, > U+10FFFF). */
size_t rt__utf8_seq(const char *s, size_t n, uint32_t *cp);
/* Is key a valid run key: not empty, at most RT__KEY_MAX bytes, UTF-8, no
 * control character (C0, DEL, C1)? RT_OK, or RT_INVALID with one line in
 * err saying what is wrong and where. Every key from outside goes here. */
int rt__key_check(const char *key, char *err, size_t errlen);
/* a + b, saturated at INT64_MAX / INT64_MIN instead of overflowing. */
int64_t rt__add_sat(int64_t a, int64_t b);
/* v clamped into int's range (a counter read from a 64-bit column). */
int rt__int_clamp(int64_t v);
/* A count or an index (attempt, failures, step_index) read into an int: 0
 * to INT_MAX - 1, one below the limit since readers add one (the next
 * attempt, a step number for people). */
int rt__count_clamp(int64_t v);
void rt__buf_free(rt__buf *b);
/* Format ms since the epoch as 2026-11-22T15:08:00.123Z (out >= 32 bytes). */
void rt__iso8601_ms(int64_t ms, char *out, size_t n);
/*
 * A malloc'd copy of text (a URL, a conninfo, a libpq message) with every
 * password replaced by ***, read as libpq reads them: the one in
 * user:PASSWORD@ and every password=VALUE and sslpassword=VALUE (conninfo
 * keyword or URI query parameter, percent-encoded or not).
 */
char *rt__mask_secrets(const char *text);

/* -------------------------------------------------------------- log.c */

/* Structured fields of a log line; unset: NULL / negative. */
typedef struct rt__log_fields {
    const char *job, *key, *step;
    int64_t run, items, ms;
} rt__log_fields;

#define RT_LOG_FIELDS_NONE {NULL, NULL, NULL, -1, -1, -1}

/* Read RATCHET_LOG (json|text) and RATCHET_LOG_LEVEL; detect a TTY. */
void rt__log_init(void);
/* Lines are JSON (not a TTY, or RATCHET_LOG=json). Async-signal-safe read. */
bool rt__log_json(void);
bool rt__log_enabled(int level);
void rt__log(int level, const char *event, const rt__log_fields *f,
             const char *fmt, ...) RT_PRINTF(4, 5);
/* Log one line naming a usage error (event "usage"); returns exit code 2. */
int rt__usage_error(const char *fmt, ...) RT_PRINTF(1, 2);
/* Live progress line on a TTY (no-op otherwise); throttled. */
void rt__progress(const rt__log_fields *f, int step_no, int steps,
                  int64_t total, double rate, bool force);
void rt__progress_clear(void);

#endif
