/*
 * log.c — structured logs and the live progress line, both on stderr.
 *
 * When stderr is not a TTY each line is one JSON object (ts, level, event,
 * job, key, run, step, items, ms, msg) for log collectors; on a TTY lines are
 * short and human, and a progress line (step i/n, items, rate, ETA) is
 * redrawn in place at most ten times a second. RATCHET_LOG=json|text and
 * RATCHET_LOG_LEVEL=debug|info|warn|error override the defaults. Text
 * from outside (keys, messages) never breaks a line: JSON strings escape
 * control characters and replace bytes that are not UTF-8; text lines show
 * control characters escaped (\x1b, \n).
 */
#define _POSIX_C_SOURCE 200809L
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "base/base.h"

static volatile bool log_json_mode = true;
static int log_level = RT_LOG_INFO;
static bool log_tty;
static bool log_progress_shown;
static int64_t log_progress_last_ns;

static const char *const log_level_names[] = {"debug", "info", "warn",
                                              "error"};

void rt__log_init(void) {
    log_tty = isatty(STDERR_FILENO);
    log_json_mode = !log_tty;
    const char *mode = getenv("RATCHET_LOG");
    if (mode && !strcasecmp(mode, "json")) log_json_mode = true;
    if (mode && !strcasecmp(mode, "text")) log_json_mode = false;
    const char *level = getenv("RATCHET_LOG_LEVEL");
    for (int i = 0; level && i < 4; i++)
        if (!strcasecmp(level, log_level_names[i])) log_level = i;
}

bool rt__log_json(void) { return log_json_mode; }

bool rt__log_enabled(int level) { return level >= log_level; }

static void log_write(const rt__buf *b) {
    /* One write per line so concurrent processes do not interleave. */
    size_t off = 0;
    while (off < b->len) {
        ssize_t n = write(STDERR_FILENO, b->p + off, b->len - off);
        if (n <= 0) break;
        off += (size_t)n;
    }
}

void rt__progress_clear(void) {
    if (!log_progress_shown) return;
    static const char clear[] = "\r\033[K";
    ssize_t n = write(STDERR_FILENO, clear, sizeof clear - 1);
    (void)n;
    log_progress_shown = false;
}

void rt__log(int level, const char *event, const rt__log_fields *f,
             const char *fmt, ...) {
    if (level < log_level) return;
    char msg[RT_ERRMSG_MAX + 256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    char ts[40];
    rt__iso8601_ms(rt__wall_ms(), ts, sizeof ts);
    rt__buf b = {0};
    if (log_json_mode) {
        rt__buf_printf(&b, "{\"ts\":\"%s\",\"level\":\"%s\",\"event\":", ts,
                       log_level_names[level]);
        rt__buf_json(&b, event);
        if (f && f->job) {
            rt__buf_puts(&b, ",\"job\":");
            rt__buf_json(&b, f->job);
        }
        if (f && f->key) {
            rt__buf_puts(&b, ",\"key\":");
            rt__buf_json(&b, f->key);
        }
        if (f && f->run >= 0) rt__buf_printf(&b, ",\"run\":%lld", (long long)f->run);
        if (f && f->step) {
            rt__buf_puts(&b, ",\"step\":");
            rt__buf_json(&b, f->step);
        }
        if (f && f->items >= 0)
            rt__buf_printf(&b, ",\"items\":%lld", (long long)f->items);
        if (f && f->ms >= 0) rt__buf_printf(&b, ",\"ms\":%lld", (long long)f->ms);
        rt__buf_puts(&b, ",\"msg\":");
        rt__buf_json(&b, msg);
        rt__buf_puts(&b, "}\n");
    } else {
        rt__progress_clear();
        rt__buf_printf(&b, "%s %-5s %s", ts + 11, log_level_names[level],
                       event);
        /* One line whatever a key or a message holds (a key stored before
         * keys were checked, a database's multi-line error). */
        if (f && f->job) {
            rt__buf_puts(&b, " ");
            rt__buf_text(&b, f->job);
            rt__buf_puts(&b, "[");
            rt__buf_text(&b, f->key);
            rt__buf_puts(&b, "]");
        }
        if (f && f->step) {
            rt__buf_puts(&b, " ");
            rt__buf_text(&b, f->step);
        }
        if (msg[0]) {
            rt__buf_puts(&b, ": ");
            rt__buf_text(&b, msg);
        }
        bool items = f && f->items > 0, ms = f && f->ms >= 0;
        if (items) rt__buf_printf(&b, " (%lld items", (long long)f->items);
        if (ms) rt__buf_printf(&b, "%s%lld ms", items ? ", " : " (", (long long)f->ms);
        if (items || ms) rt__buf_puts(&b, ")");
        rt__buf_puts(&b, "\n");
    }
    log_write(&b);
    rt__buf_free(&b);
}

void rt__progress(const rt__log_fields *f, int step_no, int steps,
                  int64_t total, double rate, bool force) {
    if (!log_tty || log_json_mode) return;
    int64_t now = rt__mono_ns();
    if (!force && now - log_progress_last_ns < 100000000) return;
    log_progress_last_ns = now;
    rt__buf b = {0};
    rt__buf_puts(&b, "\r\033[K");
    rt__buf_text(&b, f->job);
    rt__buf_puts(&b, "[");
    rt__buf_text(&b, f->key);
    rt__buf_puts(&b, "]");
    rt__buf_printf(&b, " step %d/%d ", step_no, steps);
    rt__buf_text(&b, f->step);
    rt__buf_printf(&b, ": %lld items", (long long)(f->items > 0 ? f->items : 0));
    if (total > 0)
        rt__buf_printf(&b, "/%lld (%.0f%%)", (long long)total,
                       100.0 * (double)f->items / (double)total);
    if (rate > 0) rt__buf_printf(&b, ", %.0f/s", rate);
    if (total > 0 && rate > 0 && f->items < total)
        rt__buf_printf(&b, ", ETA %.0f s", (double)(total - f->items) / rate);
    log_write(&b);
    rt__buf_free(&b);
    log_progress_shown = true;
}

int rt__usage_error(const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    rt__log(RT_LOG_ERROR, "usage", NULL, "%s", msg);
    return RT_EXIT_USAGE;
}
