/*
 * check_input.c — input that must not break anything (issue 18, items 7
 * and 9): run keys that are not UTF-8 or hold control characters are
 * refused before anything is stored; a bad key stored before the check
 * still prints as valid JSON and as one line on a terminal; JSON escaping
 * and terminal escaping case by case; counters that saturate instead of
 * overflowing; a cursor of the wrong type refused instead of read as 0.
 *
 * JSON output is checked by a small validator of its own (below): strict
 * UTF-8, no raw control character in a string, the JSON grammar. No
 * python3 needed.
 */
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "service/service.h"
#include "suites.h"

/* ------------------------------------------------ a strict JSON checker */

typedef struct jv {
    const unsigned char *p, *end;
    const char *why; /* the first error */
} jv;

static bool jv_fail(jv *j, const char *why) {
    if (!j->why) j->why = why;
    return false;
}

static void jv_ws(jv *j) {
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\n' || *j->p == '\r' ||
                             *j->p == '\t'))
        j->p++;
}

/* One UTF-8 sequence at j->p (RFC 3629), written apart from util.c's. */
static bool jv_utf8(jv *j) {
    const unsigned char *p = j->p;
    size_t left = (size_t)(j->end - p), n;
    unsigned lo = 0x80, hi = 0xbf;
    if (p[0] < 0x80) n = 1;
    else if (p[0] >= 0xc2 && p[0] <= 0xdf) n = 2;
    else if (p[0] == 0xe0) n = 3, lo = 0xa0;
    else if (p[0] == 0xed) n = 3, hi = 0x9f;
    else if (p[0] >= 0xe1 && p[0] <= 0xef) n = 3;
    else if (p[0] == 0xf0) n = 4, lo = 0x90;
    else if (p[0] == 0xf4) n = 4, hi = 0x8f;
    else if (p[0] >= 0xf1 && p[0] <= 0xf3) n = 4;
    else return jv_fail(j, "a byte that is not UTF-8");
    if (left < n) return jv_fail(j, "a truncated UTF-8 sequence");
    for (size_t i = 1; i < n; i++) {
        unsigned b = p[i];
        if (b < (i == 1 ? lo : 0x80) || b > (i == 1 ? hi : 0xbf))
            return jv_fail(j, "a bad UTF-8 continuation");
    }
    j->p += n;
    return true;
}

static bool jv_string(jv *j) {
    j->p++; /* the opening quote */
    while (j->p < j->end) {
        unsigned char c = *j->p;
        if (c == '"') {
            j->p++;
            return true;
        }
        if (c < 0x20) return jv_fail(j, "a raw control character in a string");
        if (c == '\\') {
            if (j->end - j->p < 2) return jv_fail(j, "a cut escape");
            unsigned char e = j->p[1];
            if (e == 'u') {
                if (j->end - j->p < 6) return jv_fail(j, "a cut \\u escape");
                for (int i = 2; i < 6; i++)
                    if (!strchr("0123456789abcdefABCDEF", j->p[i]) || !j->p[i])
                        return jv_fail(j, "a bad \\u escape");
                j->p += 6;
            } else if (e && strchr("\"\\/bfnrt", e)) {
                j->p += 2;
            } else {
                return jv_fail(j, "a bad escape");
            }
            continue;
        }
        if (!jv_utf8(j)) return false;
    }
    return jv_fail(j, "an unterminated string");
}

static bool jv_value(jv *j, int depth);

static bool jv_number(jv *j) {
    const unsigned char *s = j->p;
    if (*j->p == '-') j->p++;
    while (j->p < j->end && strchr("0123456789.eE+-", *j->p) && *j->p) j->p++;
    return j->p > s || jv_fail(j, "not a value");
}

static bool jv_word(jv *j, const char *w) {
    size_t n = strlen(w);
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, w, n))
        return jv_fail(j, "not a value");
    j->p += n;
    return true;
}

static bool jv_items(jv *j, int depth, char close, bool members) {
    j->p++;
    jv_ws(j);
    if (j->p < j->end && *j->p == close) {
        j->p++;
        return true;
    }
    for (;;) {
        jv_ws(j);
        if (members) {
            if (j->p >= j->end || *j->p != '"') return jv_fail(j, "a member without a name");
            if (!jv_string(j)) return false;
            jv_ws(j);
            if (j->p >= j->end || *j->p != ':') return jv_fail(j, "no ':' after a name");
            j->p++;
        }
        if (!jv_value(j, depth + 1)) return false;
        jv_ws(j);
        if (j->p < j->end && *j->p == ',') {
            j->p++;
            continue;
        }
        if (j->p < j->end && *j->p == close) {
            j->p++;
            return true;
        }
        return jv_fail(j, "no ',' or end after an item");
    }
}

static bool jv_value(jv *j, int depth) {
    if (depth > 64) return jv_fail(j, "too deep");
    jv_ws(j);
    if (j->p >= j->end) return jv_fail(j, "the text ends before a value");
    switch (*j->p) {
    case '{': return jv_items(j, depth, '}', true);
    case '[': return jv_items(j, depth, ']', false);
    case '"': return jv_string(j);
    case 't': return jv_word(j, "true");
    case 'f': return jv_word(j, "false");
    case 'n': return jv_word(j, "null");
    default: return jv_number(j);
    }
}

/* Is text[0..n) exactly one JSON document? why gets the reason if not. */
static bool json_valid(const char *text, size_t n, const char **why) {
    jv j = {(const unsigned char *)text, (const unsigned char *)text + n, NULL};
    bool ok = jv_value(&j, 0);
    jv_ws(&j);
    if (ok && j.p != j.end) ok = jv_fail(&j, "text after the document");
    *why = j.why;
    return ok;
}

#define ASSERT_JSON(text, n)                                                   \
    do {                                                                       \
        const char *why_ = NULL;                                               \
        ck_assert_msg(json_valid((text), (n), &why_), "not valid JSON (%s):\n%s", \
                      why_, (text));                                           \
    } while (0)

/* Every line of a JSON log (stderr) is one valid JSON document. */
static void assert_json_lines(const char *text) {
    int lines = 0;
    for (const char *p = text; *p;) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        if (n) ASSERT_JSON(p, n);
        lines += n > 0;
        p += n + (nl != NULL);
    }
    ck_assert_msg(lines > 0, "no log lines");
}

/* Text for a terminal: valid UTF-8, no control character but line feeds,
 * and exactly want lines. */
static void assert_terminal_safe(const char *text, int want) {
    jv j = {(const unsigned char *)text,
            (const unsigned char *)text + strlen(text), NULL};
    while (j.p < j.end) {
        unsigned char c = *j.p;
        ck_assert_msg(c == '\n' || (c >= 0x20 && c != 0x7f),
                      "raw control 0x%02x at offset %d in:\n%s", c,
                      (int)(j.p - (const unsigned char *)text), text);
        if (c == 0xc2 && j.p + 1 < j.end)
            ck_assert_msg(j.p[1] < 0x80 || j.p[1] > 0x9f, "a raw C1 control in:\n%s",
                          text);
        ck_assert_msg(jv_utf8(&j), "not UTF-8 (%s):\n%s", j.why, text);
    }
    ck_assert_msg(h_count_lines(text) == want, "%d lines, want %d:\n%s",
                  h_count_lines(text), want, text);
}

/* text is valid UTF-8. */
static void assert_utf8(const char *text) {
    jv j = {(const unsigned char *)text,
            (const unsigned char *)text + strlen(text), NULL};
    while (j.p < j.end)
        ck_assert_msg(jv_utf8(&j), "not UTF-8 (%s) at offset %d:\n%s", j.why,
                      (int)(j.p - (const unsigned char *)text), text);
}

/* --------------------------------------------------------- refused keys */

/* Keys refused everywhere: invalid UTF-8 (a stray byte, an overlong '/', a
 * surrogate, a cut sequence), C0 (ESC, LF, TAB), DEL, C1 (U+009B: CSI). */
static const char *const input_bad_keys[] = {
    "bad\xff", "a\xc0\xaf", "s\xed\xa0\x80", "cut\xe2\x82", "esc\x1b[31mred",
    "line\nbreak", "tab\tkey", "del\x7f", "csi\xc2\2332J", /* \233: U+009B */
};
#define INPUT_NBAD (sizeof input_bad_keys / sizeof *input_bad_keys)

START_TEST(test_bad_keys_refused) {
    const char *url = h_db_new(_i);
    h_migrate(url);
    for (size_t i = 0; i < INPUT_NBAD; i++) {
        const char *k = input_bad_keys[i];
        h_expect_usage(h_bin(), url, ARGS("run", "tick", "--key", k), "--key");
        h_expect_usage(h_bin(), url, ARGS("enqueue", "tick", "--key", k), "--key");
        h_expect_usage(h_bin(), url, ARGS("reset", "tick", "--key", k), "--key");
        h_expect_usage(h_bin(), url, ARGS("wait", "tick", "--key", k), "--key");
    }
    /* Nothing stored. */
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM rt_run"), 0);
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM rt_param"), 0);
    /* The message says why and where, on one line. */
    pid_t p = h_spawn(h_bin(), url, ARGS("run", "tick", "--key", "esc\x1b[31m"), NULL);
    EXPECT_EXIT(p, h_wait(p, 10000), 2);
    ck_assert_msg(strstr(h_stderr(p), "control character"), "%s", h_stderr(p));
    p = h_spawn(h_bin(), url, ARGS("enqueue", "tick", "--key", "x\xff"), NULL);
    EXPECT_EXIT(p, h_wait(p, 10000), 2);
    ck_assert_msg(strstr(h_stderr(p), "UTF-8"), "%s", h_stderr(p));
    /* retry and cancel name a run as JOB/KEY. */
    h_expect_usage(h_bin(), url, ARGS("cancel", "tick/a\x1b"), "control character");
    /* Good keys still go: UTF-8 letters, spaces, slashes. */
    p = h_spawn(h_bin(), url, ARGS("run", "tick", "--key", "2026-12 Zürich/東京 ok"), NULL);
    EXPECT_EXIT(p, h_wait(p, 10000), 0);
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM rt_run"), 1);
}
END_TEST

static const rt_step input_tick_steps[] = {{"tick", NULL}, {NULL, NULL}};
static const rt_job input_tick = {.name = "tick", .steps = input_tick_steps};

START_TEST(test_bad_keys_refused_api) {
    const char *url = h_db_new(_i);
    h_migrate(url);
    for (size_t i = 0; i < INPUT_NBAD; i++) {
        char err[RT_ERRMSG_MAX] = "";
        rt_enqueue_opts o = {.key = input_bad_keys[i]};
        int rc = rt_enqueue(url, &input_tick, &o, NULL, 0, NULL, err, sizeof err);
        ck_assert_msg(rc == RT_INVALID, "key %zu: rc %d (%s)", i, rc, err);
        ck_assert_msg(strstr(err, "run key"), "%s", err);
        ck_assert_msg(!strchr(err, '\n') && !strchr(err, '\x1b'), "%s", err);
        err[0] = '\0';
        rc = rt_wait(url, "tick", input_bad_keys[i], 0, err, sizeof err);
        ck_assert_msg(rc == RT_INVALID, "rt_wait key %zu: rc %d (%s)", i, rc, err);
        rt_run_info info;
        rc = rt_run_status(url, "tick", input_bad_keys[i], &info, err, sizeof err);
        ck_assert_msg(rc == RT_INVALID, "rt_run_status key %zu: rc %d", i, rc);
    }
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM rt_run"), 0);
}
END_TEST

/* --------------------------------------------- a bad key stored already */

/* SQL for a key (or text) holding ESC, LF, DEL, U+009B and, where the
 * database takes it, a byte that is not UTF-8. */
static char *input_bad_sql(const char *url, int backend, const char *tail) {
    char *sql = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&sql, &n);
    if (backend == H_SQLITE) {
        /* SQLite keeps a TEXT's bytes as they are. */
        fprintf(f, "CAST(X'6f6c641b5b33316d0a6b6579ffc29b7f' AS TEXT) || '%s'", tail);
    } else {
        char *enc = h_query_text(url, "SHOW server_encoding");
        bool any = !strcmp(enc, "SQL_ASCII"); /* bytes as they are */
        fprintf(f, "E'old\\x1b[31m\\nkey%s\\x7f' || '%s'",
                any ? "\\xff\\xc2\\x9b" : "\\u009b", tail);
        free(enc);
    }
    fclose(f);
    return sql;
}

START_TEST(test_old_bad_key_prints_safely) {
    const char *url = h_db_new(_i);
    pid_t p = h_spawn(h_bin(), url, ARGS("run", "tick", "--key", "k1"), NULL);
    EXPECT_EXIT(p, h_wait(p, 10000), 0);
    char sql[1024];
    char *bad = input_bad_sql(url, _i, "1");
    const char *chr = _i == H_SQLITE ? "char" : "chr";
    snprintf(sql, sizeof sql,
             "UPDATE rt_run SET run_key = %s, error = 'two' || %s(10) || "
             "'lines' || %s(27) WHERE run_key = 'k1'",
             bad, chr, chr);
    h_exec(url, sql);
    free(bad);

    /* status and history: one valid JSON document each. */
    const char *out;
    p = h_spawn(h_bin(), url, ARGS("status", "--json"), NULL);
    EXPECT_EXIT(p, h_wait(p, 10000), 0);
    out = h_stdout(p); /* one call: the next frees it */
    ASSERT_JSON(out, strlen(out));
    ck_assert_msg(strstr(h_stdout(p), "old\\u001b[31m\\nkey"), "%s", h_stdout(p));
    p = h_spawn(h_bin(), url, ARGS("history", "--json"), NULL);
    EXPECT_EXIT(p, h_wait(p, 10000), 0);
    out = h_stdout(p); /* one call: the next frees it */
    ASSERT_JSON(out, strlen(out));
    ck_assert_msg(strstr(h_stdout(p), "\"error\":\"two\\nlines\\u001b\""), "%s",
                  h_stdout(p));
    /* The tables: a header and one line for the run, nothing raw. */
    p = h_spawn(h_bin(), url, ARGS("status"), NULL);
    EXPECT_EXIT(p, h_wait(p, 10000), 0);
    assert_terminal_safe(h_stdout(p), 2);
    ck_assert_msg(strstr(h_stdout(p), "old\\x1b[31m\\nkey"), "%s", h_stdout(p));
    p = h_spawn(h_bin(), url, ARGS("history"), NULL);
    EXPECT_EXIT(p, h_wait(p, 10000), 0);
    assert_terminal_safe(h_stdout(p), 2);

    /* Logs: a run resumed by `run JOB` (its latest unfinished run) logs its
     * key on every line; JSON lines parse, text lines stay lines. */
    for (int text = 0; text < 2; text++) {
        const char *key = text ? "k3" : "k2";
        p = h_spawn(h_bin(), url, ARGS("enqueue", "tick", "--key", key), NULL);
        EXPECT_EXIT(p, h_wait(p, 10000), 0);
        bad = input_bad_sql(url, _i, key);
        snprintf(sql, sizeof sql,
                 "UPDATE rt_run SET run_key = %s, queued = 0 WHERE run_key = '%s'",
                 bad, key);
        h_exec(url, sql);
        free(bad);
        p = h_spawn(h_bin(), url, ARGS("run", "tick"),
                    text ? ARGS("RATCHET_LOG=text") : NULL);
        EXPECT_EXIT(p, h_wait(p, 10000), 0);
        if (text) {
            out = h_stderr(p);
            assert_terminal_safe(out, h_count_lines(out));
            ck_assert_msg(strstr(h_stderr(p), "tick[old\\x1b[31m\\nkey"), "%s",
                          h_stderr(p));
        } else {
            assert_json_lines(h_stderr(p));
            ck_assert_msg(strstr(h_stderr(p), "\"key\":\"old\\u001b[31m\\nkey"),
                          "%s", h_stderr(p));
        }
    }
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM rt_run WHERE status = 'done'"),
                     3);
    /* Metrics label running runs with their keys: the text format is UTF-8. */
    h_exec(url, "UPDATE rt_run SET status = 'running', items = 7");
    p = h_spawn(h_bin(), url, ARGS("metrics"), NULL);
    EXPECT_EXIT(p, h_wait(p, 10000), 0);
    assert_utf8(h_stdout(p));
    ck_assert_msg(strstr(h_stdout(p), "ratchet_run_items{job=\"tick\",key=\"old"), "%s",
                  h_stdout(p));
}
END_TEST

/* ------------------------------------------------------------- counters */

/* A run whose item count is near INT64_MAX (a row edited by hand) adds
 * items: the count sticks at INT64_MAX, it does not wrap negative. */
START_TEST(test_items_saturate) {
    const char *url = h_db_new(_i);
    pid_t p = h_spawn(h_bin(), url,
                      ARGS("enqueue", "rowcopy", "--key", "big", "--param", "rows=20"),
                      NULL);
    EXPECT_EXIT(p, h_wait(p, 10000), 0);
    h_exec(url, "UPDATE rt_run SET queued = 0, items = 9223372036854775800 "
                "WHERE run_key = 'big'");
    p = h_spawn(h_bin(), url, ARGS("run", "rowcopy", "--key", "big"), NULL);
    EXPECT_EXIT(p, h_wait(p, 20000), 0);
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM rt_run WHERE run_key = 'big' "
                                      "AND status = 'done'"), 1);
    ck_assert_int_eq(h_query_int(url, "SELECT items FROM rt_run WHERE run_key = 'big'"),
                     INT64_MAX);
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM rowcopy_dst"), 20);
}
END_TEST

/* attempt near INT32_MAX in an INTEGER column (SQLite keeps 64 bits): the
 * next claim makes it 2^31; it is read clamped, not truncated negative. */
START_TEST(test_attempt_clamped) {
    const char *url = h_db_new(H_SQLITE);
    pid_t p = h_spawn(h_bin(), url, ARGS("enqueue", "tick", "--key", "a1"), NULL);
    EXPECT_EXIT(p, h_wait(p, 10000), 0);
    h_exec(url, "UPDATE rt_run SET queued = 0, status = 'interrupted', "
                "attempt = 2147483647 WHERE run_key = 'a1'");
    p = h_spawn(h_bin(), url, ARGS("run", "tick", "--key", "a1"), NULL);
    EXPECT_EXIT(p, h_wait(p, 10000), 0);
    ck_assert_msg(strstr(h_stderr(p), "(attempt 2147483646)"), "%s", h_stderr(p));
    ck_assert_msg(!strstr(h_stderr(p), "attempt -"), "%s", h_stderr(p));
}
END_TEST

/* ------------------------------------------------ a cursor of the wrong type */

/*
 * rowcopy's copy step resumes from cursor_int. Text, a real, or an integer
 * in cursor_bytes is refused with exit 2 naming the run and the column:
 * read as 0, the copy would start over and copy every row again. SQLite
 * only: PostgreSQL's bigint and bytea columns refuse such values when they
 * are written.
 */
START_TEST(test_cursor_wrong_type) {
    const char *url = h_db_new(H_SQLITE);
    pid_t p = h_spawn(h_bin(), url,
                      ARGS("run", "rowcopy", "--key", "c1", "--param", "rows=30"),
                      NULL);
    EXPECT_EXIT(p, h_wait(p, 20000), 0);
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM rowcopy_dst"), 30);
    static const struct {
        const char *set, *says;
    } cases[] = {
        {"cursor_int = 'abc', cursor_bytes = NULL",
         "run rowcopy/c1: cursor_int holds text 'abc', not an integer; fix the "
         "row or 'ratchet reset'"},
        {"cursor_int = 1.5, cursor_bytes = NULL", "cursor_int holds a real 1.5"},
        {"cursor_int = NULL, cursor_bytes = 42",
         "cursor_bytes holds an integer 42, not bytes"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char sql[512];
        snprintf(sql, sizeof sql,
                 "UPDATE rt_run SET status = 'interrupted', finished_ms = NULL, "
                 "step_index = 1, step_name = 'copy', %s WHERE run_key = 'c1'",
                 cases[i].set);
        h_exec(url, sql);
        int64_t epoch = h_query_int(url, "SELECT epoch FROM rt_run WHERE run_key = 'c1'");
        h_expect_usage(h_bin(), url, ARGS("run", "rowcopy", "--key", "c1"), cases[i].says);
        /* Nothing copied twice, the claim rolled back. */
        ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM rowcopy_dst"), 30);
        ck_assert_int_eq(h_query_int(url, "SELECT epoch FROM rt_run WHERE run_key = 'c1'"),
                         epoch);
        ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM rt_run WHERE "
                                          "run_key = 'c1' AND status = 'interrupted'"), 1);
    }
    /* A text that SQLite takes as an integer is one: '30' stored as 30. */
    h_exec(url, "UPDATE rt_run SET cursor_int = '30', cursor_bytes = NULL "
                "WHERE run_key = 'c1'");
    p = h_spawn(h_bin(), url, ARGS("run", "rowcopy", "--key", "c1"), NULL);
    EXPECT_EXIT(p, h_wait(p, 20000), 0);
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM rowcopy_dst"), 30);
}
END_TEST

/* A worker's claim reads the run with rt__run_from_row: the same cursor is
 * a failed attempt naming it (failed for good with --max-attempts 1), not a
 * copy started over. */
START_TEST(test_cursor_wrong_type_worker) {
    const char *url = h_db_new(H_SQLITE);
    pid_t p = h_spawn(h_bin(), url,
                      ARGS("run", "rowcopy", "--key", "w1", "--param", "rows=30"),
                      NULL);
    EXPECT_EXIT(p, h_wait(p, 20000), 0);
    h_exec(url, "UPDATE rt_run SET status = 'interrupted', finished_ms = NULL, "
                "step_index = 1, step_name = 'copy', cursor_int = 'abc', "
                "queued = 1, max_attempts = 1 WHERE run_key = 'w1'");
    pid_t w = h_spawn(h_bin(), url, ARGS("worker"), NULL);
    ck_assert_msg(h_await_int(url, "SELECT count(*) FROM rt_run WHERE status = 'failed'",
                              1, 20000), "%s", h_stderr(w));
    ck_assert_int_eq(kill(w, SIGTERM), 0);
    EXPECT_EXIT(w, h_wait(w, 9000), 0);
    char *error = h_query_text(url, "SELECT error FROM rt_run WHERE run_key = 'w1'");
    ck_assert_msg(error && strstr(error, "run rowcopy/w1: cursor_int holds text 'abc', "
                                         "not an integer"), "%s", error ? error : "NULL");
    free(error);
    ck_assert_int_eq(h_query_int(url, "SELECT count(*) FROM rowcopy_dst"), 30);
}
END_TEST

/* ------------------------------------------------------ in-process cases */

/* rt__buf_json of s, as a malloc'd string. */
static char *input_json(const char *s) {
    rt__buf b = {0};
    rt__buf_json(&b, s);
    return b.p;
}

START_TEST(test_buf_json_cases) {
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"plain", "\"plain\""},
        {"q\"b\\", "\"q\\\"b\\\\\""},
        {"a\nb\r\tc", "\"a\\nb\\r\\tc\""},
        {"esc\x1b[1m", "\"esc\\u001b[1m\""},
        {"\x01\x1f", "\"\\u0001\\u001f\""},
        {"del\x7f", "\"del\\u007f\""},
        {"csi\xc2\x9b", "\"csi\\u009b\""},        /* C1, valid UTF-8 */
        {"nbsp\xc2\xa0", "\"nbsp\xc2\xa0\""},      /* U+00A0 stays */
        {"Z\xc3\xbcrich \xe6\x9d\xb1 \xf0\x9f\x98\x80",
         "\"Z\xc3\xbcrich \xe6\x9d\xb1 \xf0\x9f\x98\x80\""},
        {"bad\xff", "\"bad\\ufffd\""},
        {"\xc0\xaf", "\"\\ufffd\\ufffd\""},        /* overlong '/' */
        {"\xed\xa0\x80x", "\"\\ufffd\\ufffd\\ufffdx\""}, /* a surrogate */
        {"\xf4\x90\x80\x80", "\"\\ufffd\\ufffd\\ufffd\\ufffd\""}, /* > U+10FFFF */
        {"cut\xe2\x82", "\"cut\\ufffd\\ufffd\""},  /* cut at the end */
        {"\x80lead", "\"\\ufffdlead\""},           /* a stray continuation */
        {"", "\"\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *got = input_json(cases[i].in);
        ck_assert_msg(!strcmp(got, cases[i].out), "case %zu: got %s want %s", i,
                      got, cases[i].out);
        const char *why;
        ck_assert_msg(json_valid(got, strlen(got), &why), "case %zu: %s", i, why);
        free(got);
    }
    /* NULL is the empty string. */
    char *got = input_json(NULL);
    ck_assert_str_eq(got, "\"\"");
    free(got);
    /* Every byte value, alone and after a lead byte: always valid JSON. */
    for (int a = 1; a < 256; a++)
        for (int b = 0; b < 256; b += (a >= 0xc0 ? 1 : 255)) {
            char in[3] = {(char)a, (char)b, 0};
            got = input_json(in);
            const char *why;
            ck_assert_msg(json_valid(got, strlen(got), &why), "%02x %02x: %s", a, b,
                          why);
            free(got);
        }
}
END_TEST

START_TEST(test_buf_text_cases) {
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"plain key/2", "plain key/2"},
        {"a\nb\r\tc", "a\\nb\\r\\tc"},
        {"esc\x1b[31m", "esc\\x1b[31m"},
        {"del\x7f", "del\\x7f"},
        {"csi\xc2\x9b", "csi\\u009b"},
        {"bad\xff\xc3", "bad\\xff\\xc3"},
        {"Z\xc3\xbcrich", "Z\xc3\xbcrich"},
        {"back\\slash", "back\\slash"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *got = rt__text_safe(cases[i].in);
        ck_assert_msg(!strcmp(got, cases[i].out), "case %zu: got %s want %s", i,
                      got, cases[i].out);
        free(got);
    }
    char *got = rt__text_safe(NULL);
    ck_assert_str_eq(got, "");
    free(got);
}
END_TEST

START_TEST(test_key_check_cases) {
    char err[200];
    static const char *const good[] = {"k", "2026-12-07", "a b/c:d", "Z\xc3\xbcrich",
                                       "\xf0\x9f\x98\x80", "nbsp\xc2\xa0"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++)
        ck_assert_msg(rt__key_check(good[i], err, sizeof err) == RT_OK, "%s: %s",
                      good[i], err);
    for (size_t i = 0; i < INPUT_NBAD; i++) {
        err[0] = '\0';
        ck_assert_int_eq(rt__key_check(input_bad_keys[i], err, sizeof err), RT_INVALID);
        ck_assert_msg(err[0] && !strchr(err, '\n'), "%zu: '%s'", i, err);
    }
    ck_assert_int_eq(rt__key_check("", err, sizeof err), RT_INVALID);
    ck_assert_int_eq(rt__key_check(NULL, err, sizeof err), RT_INVALID);
    char key[RT__KEY_MAX + 2];
    memset(key, 'k', sizeof key);
    key[RT__KEY_MAX] = '\0';
    ck_assert_int_eq(rt__key_check(key, err, sizeof err), RT_OK);
    key[RT__KEY_MAX] = 'k';
    key[RT__KEY_MAX + 1] = '\0';
    ck_assert_int_eq(rt__key_check(key, err, sizeof err), RT_INVALID);
    ck_assert_msg(strstr(err, "at most 255 bytes"), "%s", err);
    /* Where: the byte, counted from 1. */
    rt__key_check("ab\x1b", err, sizeof err);
    ck_assert_msg(strstr(err, "byte 3"), "%s", err);
}
END_TEST

START_TEST(test_add_items_saturates) {
    struct rt_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.step_items = INT64_MAX - 5;
    rt_add_items(&ctx, 3);
    ck_assert_int_eq(ctx.step_items, INT64_MAX - 2);
    ck_assert_int_eq(ctx.chunk_items, 3);
    rt_add_items(&ctx, 10);
    ck_assert_int_eq(ctx.step_items, INT64_MAX);
    ck_assert_int_eq(ctx.chunk_items, 13);
    rt_add_items(&ctx, INT64_MAX);
    ck_assert_int_eq(ctx.step_items, INT64_MAX);
    ck_assert_int_eq(ctx.chunk_items, INT64_MAX);
    ck_assert_int_eq(rt_items(&ctx), INT64_MAX);
    ck_assert_int_eq(rt__add_sat(INT64_MIN + 1, -5), INT64_MIN);
    ck_assert_int_eq(rt__add_sat(-5, 7), 2);
    ck_assert_int_eq(rt__count_clamp(INT64_C(2147483648)), 2147483646);
    ck_assert_int_eq(rt__count_clamp(-3), 0);
    ck_assert_int_eq(rt__count_clamp(7), 7);
    ck_assert_int_eq(rt__int_clamp(INT64_C(-5000000000)), INT32_MIN);
}
END_TEST

Suite *input_suite(void) {
    Suite *s = suite_create("input");
    TCase *tc = tcase_create("input");
    tcase_set_timeout(tc, 120);
    int n = h_backends();
    tcase_add_loop_test(tc, test_bad_keys_refused, 0, n);
    tcase_add_loop_test(tc, test_bad_keys_refused_api, 0, n);
    tcase_add_loop_test(tc, test_old_bad_key_prints_safely, 0, n);
    tcase_add_loop_test(tc, test_items_saturate, 0, n);
    tcase_add_test(tc, test_attempt_clamped);
    tcase_add_test(tc, test_cursor_wrong_type);
    tcase_add_test(tc, test_cursor_wrong_type_worker);
    suite_add_tcase(s, tc);
    TCase *unit = tcase_create("unit");
    tcase_add_test(unit, test_buf_json_cases);
    tcase_add_test(unit, test_buf_text_cases);
    tcase_add_test(unit, test_key_check_cases);
    tcase_add_test(unit, test_add_items_saturates);
    suite_add_tcase(s, unit);
    return s;
}
