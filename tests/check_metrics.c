/*
 * check_metrics.c — `ratchet metrics` and `--metrics-listen` through the
 * real binaries: exact figures for runs put in known states (by the CLI,
 * then pinned with SQL), label escaping, the exposition format line by
 * line; the HTTP responder of a worker, a worker pool and a daemon (200,
 * 404, 405, 400, 431, HEAD, a silent client that blocks neither another
 * client nor the stop, children that do not keep the port); bad
 * --metrics-listen values (exit 2, one line, nothing touched). Loop tests
 * (_i) run on both backends.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "service/http.h"
#include "suites.h"

/* ----------------------------------------------------------- helpers */

static double met_wall_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* `ratchet metrics` on url: exit 0, its stdout (owned by the harness). */
static const char *met_scrape_cli(const char *url) {
    pid_t p = h_spawn(h_bin(), url, ARGS("metrics"), NULL);
    EXPECT_EXIT(p, h_wait(p, 60000), 0);
    return h_stdout(p);
}

static bool met_name_char(char c, bool first) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
           c == ':' || (!first && c >= '0' && c <= '9');
}

/*
 * The text is well-formed exposition 0.0.4: each line a # HELP, a # TYPE
 * (each family once, gauge) or a sample of the family typed last, with
 * label values escaped (only \\ \" \n) and a number for a value.
 */
static void met_assert_format(const char *text) {
    ck_assert_msg(*text && text[strlen(text) - 1] == '\n', "no final newline");
    char family[128] = "", seen[64][128];
    int nseen = 0, lineno = 0;
    for (const char *line = text; *line; lineno++) {
        const char *end = strchr(line, '\n');
        char buf[4096];
        size_t n = (size_t)(end - line);
        ck_assert_uint_lt(n, sizeof buf);
        memcpy(buf, line, n);
        buf[n] = '\0';
        line = end + 1;
        if (!strncmp(buf, "# HELP ", 7)) continue;
        if (!strncmp(buf, "# TYPE ", 7)) {
            char type[32];
            ck_assert_msg(sscanf(buf + 7, "%127s %31s", family, type) == 2,
                          "line %d: %s", lineno, buf);
            ck_assert_str_eq(type, "gauge");
            for (int i = 0; i < nseen; i++)
                ck_assert_msg(strcmp(seen[i], family), "%s typed twice", family);
            ck_assert_int_lt(nseen, 64);
            snprintf(seen[nseen++], sizeof seen[0], "%s", family);
            continue;
        }
        const char *p = buf;
        ck_assert_msg(met_name_char(*p, true), "line %d: %s", lineno, buf);
        while (met_name_char(*p, false)) p++;
        ck_assert_msg((size_t)(p - buf) == strlen(family) &&
                          !strncmp(buf, family, strlen(family)),
                      "line %d: sample outside its family %s: %s", lineno,
                      family, buf);
        if (*p == '{') {
            p++;
            for (;;) {
                ck_assert_msg(met_name_char(*p, true) && *p != ':', "line %d: %s",
                              lineno, buf);
                while (met_name_char(*p, false) && *p != ':') p++;
                ck_assert_msg(p[0] == '=' && p[1] == '"', "line %d: %s", lineno, buf);
                p += 2;
                while (*p != '"') {
                    ck_assert_msg(*p, "line %d: unterminated label: %s", lineno, buf);
                    if (*p == '\\') {
                        ck_assert_msg(p[1] == '\\' || p[1] == '"' || p[1] == 'n',
                                      "line %d: bad escape: %s", lineno, buf);
                        p++;
                    }
                    p++;
                }
                p++;
                if (*p == ',') {
                    p++;
                    continue;
                }
                ck_assert_msg(*p == '}', "line %d: %s", lineno, buf);
                p++;
                break;
            }
        }
        ck_assert_msg(*p == ' ', "line %d: %s", lineno, buf);
        char *rest;
        strtod(p + 1, &rest);
        ck_assert_msg(rest != p + 1 && *rest == '\0', "line %d: value: %s",
                      lineno, buf);
    }
}

/* The value of the one sample named series (name{labels}); NULL if none. */
static const char *met_find(const char *text, const char *series) {
    size_t n = strlen(series);
    const char *found = NULL;
    for (const char *line = text; *line;) {
        const char *end = strchr(line, '\n');
        if (!strncmp(line, series, n) && line[n] == ' ') {
            ck_assert_msg(!found, "%s appears twice", series);
            found = line + n + 1;
        }
        line = end ? end + 1 : line + strlen(line);
    }
    return found;
}

/* The sample's value as printed, which must be want exactly. */
static void met_expect(const char *text, const char *series, const char *want) {
    const char *v = met_find(text, series);
    ck_assert_msg(v, "no %s in:\n%s", series, text);
    size_t n = strcspn(v, "\n");
    ck_assert_msg(strlen(want) == n && !strncmp(v, want, n),
                  "%s is %.*s, want %s", series, (int)n, v, want);
}

static double met_value(const char *text, const char *series) {
    const char *v = met_find(text, series);
    ck_assert_msg(v, "no %s in:\n%s", series, text);
    return strtod(v, NULL);
}

static void met_expect_near(const char *text, const char *series, double want,
                            double tolerance) {
    double v = met_value(text, series);
    ck_assert_msg(fabs(v - want) <= tolerance, "%s is %.3f, want %.3f +- %.0f",
                  series, v, want, tolerance);
}

static void met_run_ok(const char *bin, const char *url, const char *const *argv,
                       int want) {
    pid_t p = h_spawn(bin, url, argv, NULL);
    EXPECT_EXIT(p, h_wait(p, 60000), want);
}

/* SQL for a line feed, per backend. */
static const char *met_lf(int backend) {
    return backend == H_PG ? "chr(10)" : "char(10)";
}

/* --------------------------------------------------------------- HTTP */

/* The port a serving process announced (event metrics_listen). */
static int met_port(pid_t p, const char *prefix) {
    ck_assert_msg(h_await_stderr(p, "serving metrics on http://", 30000),
                  "no metrics_listen line:\n%s", h_stderr(p));
    const char *at = strstr(h_stderr(p), prefix);
    ck_assert_msg(at, "want %s in:\n%s", prefix, h_stderr(p));
    int port = atoi(at + strlen(prefix));
    ck_assert_int_gt(port, 0);
    return port;
}

static int met_connect(int family, int port) {
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    int rc;
    if (family == AF_INET6) {
        struct sockaddr_in6 a = {.sin6_family = AF_INET6,
                                 .sin6_port = htons((uint16_t)port)};
        a.sin6_addr = in6addr_loopback;
        rc = connect(fd, (struct sockaddr *)&a, sizeof a);
    } else {
        struct sockaddr_in a = {.sin_family = AF_INET,
                                .sin_port = htons((uint16_t)port)};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        rc = connect(fd, (struct sockaddr *)&a, sizeof a);
    }
    ck_assert_msg(rc == 0, "connect to port %d: %s", port, strerror(errno));
    return fd;
}

/* Everything fd sends until it closes, within timeout_ms; malloc'd. NULL
 * when it is still open then. */
static char *met_read_all(int fd, int timeout_ms) {
    size_t len = 0, cap = 65536;
    char *out = malloc(cap);
    int64_t deadline = h_now_ms() + timeout_ms;
    for (;;) {
        int64_t left = deadline - h_now_ms();
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        if (left <= 0 || poll(&pf, 1, (int)left) <= 0) {
            free(out);
            return NULL;
        }
        if (len + 4096 > cap) out = realloc(out, cap *= 2);
        ssize_t n = recv(fd, out + len, cap - len - 1, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break; /* a reset after the response counts as the end */
        len += (size_t)n;
    }
    out[len] = '\0';
    return out;
}

/* Send request, read the whole response (the server closes). */
static char *met_http_raw(int family, int port, const char *request, size_t n) {
    int fd = met_connect(family, port);
    ck_assert_int_eq(send(fd, request, n, MSG_NOSIGNAL), (ssize_t)n);
    char *resp = met_read_all(fd, 30000);
    close(fd);
    ck_assert_msg(resp, "no complete response to %.40s", request);
    return resp;
}

static char *met_http(int port, const char *request) {
    return met_http_raw(AF_INET, port, request, strlen(request));
}

static int met_status(const char *resp) {
    ck_assert_msg(!strncmp(resp, "HTTP/1.0 ", 9), "response: %.80s", resp);
    return atoi(resp + 9);
}

static const char *met_body(const char *resp) {
    const char *b = strstr(resp, "\r\n\r\n");
    ck_assert_msg(b, "no end of head: %s", resp);
    return b + 4;
}

/* The response's Content-Length header. */
static long met_length(const char *resp) {
    const char *h = strstr(resp, "\r\nContent-Length: ");
    ck_assert_msg(h, "no Content-Length: %s", resp);
    return atol(h + 18);
}

/* A GET of /metrics: 200, the right type and length; the body, malloc'd. */
static char *met_get(int family, int port) {
    static const char req[] = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
    char *resp = met_http_raw(family, port, req, sizeof req - 1);
    ck_assert_int_eq(met_status(resp), 200);
    ck_assert_msg(strstr(resp, "\r\nContent-Type: text/plain; version=0.0.4"),
                  "%.300s", resp);
    const char *body = met_body(resp);
    ck_assert_int_eq(met_length(resp), (long)strlen(body));
    char *copy = strdup(body);
    free(resp);
    met_assert_format(copy);
    return copy;
}

/* ----------------------------------------------------- parsing (unit) */

START_TEST(test_parse_listen) {
    static const struct {
        const char *spec, *addr;
        int family, port;
    } ok[] = {
        {"9100", "127.0.0.1", AF_INET, 9100},
        {"0", "127.0.0.1", AF_INET, 0},
        {"65535", "127.0.0.1", AF_INET, 65535},
        {"127.0.0.1:9100", "127.0.0.1", AF_INET, 9100},
        {"0.0.0.0:80", "0.0.0.0", AF_INET, 80},
        {"10.1.2.3:9", "10.1.2.3", AF_INET, 9},
        {"localhost:9100", "127.0.0.1", AF_INET, 9100},
        {"[::1]:9100", "::1", AF_INET6, 9100},
        {"[::]:0", "::", AF_INET6, 0},
        {"[fe80::1]:1", "fe80::1", AF_INET6, 1},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        struct sockaddr_storage ss;
        socklen_t len = 0;
        char err[256] = "", ip[64] = "";
        ck_assert_msg(rt__http_parse_listen(ok[i].spec, &ss, &len, err,
                                            sizeof err) == RT_OK,
                      "%s: %s", ok[i].spec, err);
        ck_assert_int_eq(ss.ss_family, ok[i].family);
        int port;
        if (ok[i].family == AF_INET6) {
            struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
            inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof ip);
            port = ntohs(a->sin6_port);
            ck_assert_int_eq(len, sizeof *a);
        } else {
            struct sockaddr_in *a = (struct sockaddr_in *)&ss;
            inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
            port = ntohs(a->sin_port);
            ck_assert_int_eq(len, sizeof *a);
        }
        ck_assert_str_eq(ip, ok[i].addr);
        ck_assert_int_eq(port, ok[i].port);
    }
    static const struct {
        const char *spec, *says;
    } bad[] = {
        {"", "[ADDR:]PORT"},
        {"abc", "port must be a number"},
        {"65536", "port must be a number"},
        {"123456", "port must be a number"},
        {"-1", "port must be a number"},
        {"127.0.0.1:", "port must be a number"},
        {":9100", "give the address before ':'"},
        {"::1:9100", "in brackets"},
        {"[::1]9100", "[ADDR]:PORT"},
        {"[::1", "[ADDR]:PORT"},
        {"[]:9100", "[ADDR]:PORT"},
        {"[127.0.0.1]:9100", "not an IPv6 address"},
        {"1.2.3.4.5:80", "not an IPv4 address"},
        {"256.0.0.1:80", "not an IPv4 address"},
        {"db.example:9100", "not looked up"},
        {"127.0.0.1:9100 ", "port must be a number"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct sockaddr_storage ss;
        socklen_t len = 0;
        char err[256] = "";
        ck_assert_msg(rt__http_parse_listen(bad[i].spec, &ss, &len, err,
                                            sizeof err) == RT_INVALID,
                      "'%s' accepted", bad[i].spec);
        ck_assert_msg(strstr(err, bad[i].says), "'%s': %s", bad[i].spec, err);
        ck_assert(!strchr(err, '\n'));
    }
}
END_TEST

/* ------------------------------------------------- exact figures (CLI) */

START_TEST(test_values) {
    const char *url = h_db_new(_i);
    h_migrate(url);
    met_run_ok(h_bin(), url, ARGS("run", "rowcopy", "--key", "a", "--param", "rows=100"), 0);
    met_run_ok(h_bin(), url, ARGS("run", "rowcopy", "--key", "b", "--param", "rows=50"), 0);
    met_run_ok(h_bin(), url, ARGS("run", "rowcopy", "--key", "r", "--param", "rows=10"), 0);
    met_run_ok(h_test_bin(), url, ARGS("run", "fail", "--key", "f"), 1);
    met_run_ok(h_bin(), url, ARGS("enqueue", "noop", "--key", "q1"), 0);
    met_run_ok(h_bin(), url, ARGS("enqueue", "noop", "--key", "q2"), 0);
    met_run_ok(h_bin(), url, ARGS("enqueue", "noop", "--key", "later", "--run-at", "+1h"), 0);
    for (int i = 1; i <= 3; i++) {
        char key[8];
        snprintf(key, sizeof key, "s%d", i);
        met_run_ok(h_bin(), url, ARGS("run", "tick", "--key", key), 0);
    }
    /* Pin the times, and make r a running run with a lease. */
    h_exec(url, "UPDATE rt_run SET finished_ms = 1700000000123 WHERE run_key = 'a'");
    h_exec(url, "UPDATE rt_run SET finished_ms = 1700000005000 WHERE run_key = 'b'");
    h_exec(url, "UPDATE rt_run SET finished_ms = 1600000000001 WHERE run_key = 'f'");
    h_exec(url, "UPDATE rt_run SET status = 'running', finished_ms = NULL, items = 7, "
                "updated_ms = 1000 WHERE run_key = 'r'");
    h_exec(url, "INSERT INTO rt_lease (scope, job, run_key, owner, fast, acquired_ms, "
                "heartbeat_ms, expires_ms) VALUES ('rowcopy', 'rowcopy', 'r', "
                "'host:1:x', 0, 2000, 3500, 4000)");
    h_exec(url, "UPDATE rt_run SET created_ms = 5000 WHERE run_key = 'q1'");
    /* Slots: s1 started 250 ms late; s2, newer, was skipped; s3 is not due. */
    h_exec(url, "UPDATE rt_run SET slot_ms = 1700000000000, started_ms = "
                "1700000000250 WHERE run_key = 's1'");
    h_exec(url, "UPDATE rt_run SET slot_ms = 1700000060000, started_ms = NULL, "
                "status = 'skipped' WHERE run_key = 's2'");
    h_exec(url, "UPDATE rt_run SET slot_ms = 4102444800000, started_ms = NULL, "
                "status = 'pending', finished_ms = NULL WHERE run_key = 's3'");

    double wall = met_wall_s();
    const char *out = met_scrape_cli(url);
    met_assert_format(out);
    static const char *const statuses[] = {"pending", "running", "interrupted", "done",
                                           "failed", "skipped", "cancelled"};
    static const int rowcopy[] = {0, 1, 0, 2, 0, 0, 0}, fail[] = {0, 0, 0, 0, 1, 0, 0},
                     noop[] = {3, 0, 0, 0, 0, 0, 0}, tick[] = {1, 0, 0, 1, 0, 1, 0};
    for (int k = 0; k < 7; k++) {
        char series[128], want[8];
        const struct { const char *job; const int *n; } jobs[] = {
            {"rowcopy", rowcopy}, {"fail", fail}, {"noop", noop}, {"tick", tick}};
        for (int j = 0; j < 4; j++) {
            snprintf(series, sizeof series, "ratchet_runs{job=\"%s\",status=\"%s\"}",
                     jobs[j].job, statuses[k]);
            snprintf(want, sizeof want, "%d", jobs[j].n[k]);
            met_expect(out, series, want);
        }
    }
    met_expect(out, "ratchet_items_done{job=\"rowcopy\"}", "157");
    met_expect(out, "ratchet_items_done{job=\"noop\"}", "0");
    met_expect(out, "ratchet_last_success_timestamp_seconds{job=\"rowcopy\"}",
               "1700000005.000");
    met_expect(out, "ratchet_last_failure_timestamp_seconds{job=\"fail\"}",
               "1600000000.001");
    ck_assert(!met_find(out, "ratchet_last_success_timestamp_seconds{job=\"fail\"}"));
    ck_assert(!met_find(out, "ratchet_last_failure_timestamp_seconds{job=\"rowcopy\"}"));
    met_expect(out, "ratchet_run_items{job=\"rowcopy\",key=\"r\"}", "7");
    /* Ages share one reading of the clock: their differences are exact. */
    const char *progress = "ratchet_run_seconds_since_progress{job=\"rowcopy\",key=\"r\"}";
    const char *lease = "ratchet_lease_age_seconds{job=\"rowcopy\",key=\"r\"}";
    const char *beat = "ratchet_lease_heartbeat_age_seconds{job=\"rowcopy\",key=\"r\"}";
    met_expect_near(out, progress, wall - 1.0, 60);
    ck_assert_int_eq(llround(met_value(out, progress) * 1000) -
                         llround(met_value(out, lease) * 1000), 1000);
    ck_assert_int_eq(llround(met_value(out, lease) * 1000) -
                         llround(met_value(out, beat) * 1000), 1500);
    met_expect(out, "ratchet_schedule_last_slot_timestamp_seconds{job=\"tick\"}",
               "1700000060.000");
    met_expect(out, "ratchet_schedule_lateness_seconds{job=\"tick\"}", "0.250");
    ck_assert(!met_find(out, "ratchet_schedule_lateness_seconds{job=\"rowcopy\"}"));
    met_expect(out, "ratchet_queue_depth{job=\"noop\"}", "2");
    met_expect(out, "ratchet_queue_delayed{job=\"noop\"}", "1");
    met_expect(out, "ratchet_queue_depth{job=\"rowcopy\"}", "0");
    met_expect_near(out, "ratchet_queue_oldest_age_seconds{job=\"noop\"}", wall - 5.0, 60);
    met_expect(out, "ratchet_queue_oldest_age_seconds{job=\"rowcopy\"}", "0.000");
    ck_assert(met_find(out, "ratchet_metrics_query_seconds"));

    /* The newest slot waits to start: its lateness grows with the clock. */
    h_exec(url, "UPDATE rt_run SET status = 'pending', finished_ms = NULL WHERE "
                "run_key = 's2'");
    wall = met_wall_s();
    out = met_scrape_cli(url);
    met_expect_near(out, "ratchet_schedule_lateness_seconds{job=\"tick\"}",
                    wall - 1700000060.0, 60);
    /* Done later than s1's: 0.999 late. */
    h_exec(url, "UPDATE rt_run SET status = 'done', started_ms = 1700000060999 "
                "WHERE run_key = 's2'");
    out = met_scrape_cli(url);
    met_expect(out, "ratchet_schedule_lateness_seconds{job=\"tick\"}", "0.999");
    met_expect(out, "ratchet_runs{job=\"tick\",status=\"done\"}", "2");
}
END_TEST

/* Job names and keys with a quote, a backslash and a line feed. */
START_TEST(test_label_escaping) {
    const char *url = h_db_new(_i);
    h_migrate(url);
    met_run_ok(h_bin(), url, ARGS("enqueue", "noop", "--key", "k"), 0);
    char sql[512];
    /* The key as one stored before keys were checked (a line feed). */
    snprintf(sql, sizeof sql,
             "UPDATE rt_run SET job = 'we\"ird\\job' || %s || 'x', status = "
             "'running', items = 3, run_key = 'k\"q\\x' || %s || 'y'",
             met_lf(_i), met_lf(_i));
    h_exec(url, sql);
    snprintf(sql, sizeof sql,
             "INSERT INTO rt_lease (scope, job, run_key, owner, fast, acquired_ms, "
             "heartbeat_ms, expires_ms) SELECT job, job, run_key, 'o', 0, 1, 1, 1 "
             "FROM rt_run");
    h_exec(url, sql);
    const char *out = met_scrape_cli(url);
    met_assert_format(out);
    met_expect(out, "ratchet_runs{job=\"we\\\"ird\\\\job\\nx\",status=\"running\"}", "1");
    met_expect(out, "ratchet_run_items{job=\"we\\\"ird\\\\job\\nx\",key=\"k\\\"q\\\\x\\ny\"}",
               "3");
    ck_assert(met_find(out, "ratchet_lease_age_seconds{job=\"we\\\"ird\\\\job\\nx\","
                            "key=\"k\\\"q\\\\x\\ny\"}"));
}
END_TEST

START_TEST(test_empty_and_usage) {
    const char *url = h_db_new(H_SQLITE);
    const char *out = met_scrape_cli(url);
    met_assert_format(out);
    /* Every family is there, and no sample but the query time. */
    ck_assert(strstr(out, "# TYPE ratchet_runs gauge\n"));
    ck_assert(strstr(out, "# TYPE ratchet_queue_depth gauge\n"));
    int samples = 0;
    for (const char *l = out; *l; l = strchr(l, '\n') + 1) samples += *l != '#';
    ck_assert_int_eq(samples, 1);
    h_expect_usage(h_bin(), url, ARGS("metrics", "extra"), "unexpected argument 'extra'");
    h_expect_usage(h_bin(), url, ARGS("metrics", "--json"), "unknown option '--json'");
}
END_TEST

/* ------------------------------------------------ --metrics-listen usage */

START_TEST(test_listen_usage) {
    const char *url = h_db_new(H_SQLITE); /* never created: all fail first */
    static const struct {
        const char *value, *says;
    } bad[] = {
        {"abc", "port must be a number"}, {"70000", "port must be a number"},
        {":9100", "before ':'"},          {"::1:9100", "in brackets"},
        {"[::1", "[ADDR]:PORT"},          {"db.example:9100", "not looked up"},
        {"", "[ADDR:]PORT"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        h_expect_usage(h_bin(), url, ARGS("worker", "--metrics-listen", bad[i].value),
                       bad[i].says);
        h_expect_usage(h_bin(), url,
                       ARGS("daemon", "--schedule", "tick=* * * * *",
                            "--metrics-listen", bad[i].value),
                       bad[i].says);
    }
    h_expect_usage(h_bin(), url, ARGS("worker", "--metrics-listen"), "needs [ADDR:]PORT");
    h_expect_usage(h_bin(), url, ARGS("daemon", "--metrics-listen"), "needs [ADDR:]PORT");
    /* A port someone else holds: one line, exit 2, before the database. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(listen(fd, 1), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    char spec[32];
    snprintf(spec, sizeof spec, "127.0.0.1:%d", ntohs(a.sin_port));
    h_expect_usage(h_bin(), url, ARGS("worker", "--metrics-listen", spec),
                   "Address already in use");
    close(fd);
    struct stat st;
    ck_assert_msg(stat(url + strlen("sqlite:"), &st) != 0, "the database was created");
}
END_TEST

/* ------------------------------------------------------- the responder */

START_TEST(test_http_worker) {
    const char *url = h_db_new(_i);
    h_migrate(url);
    pid_t w = h_spawn(h_bin(), url,
                      ARGS("worker", "--metrics-listen", "127.0.0.1:0", "--grace", "3"),
                      NULL);
    int port = met_port(w, "http://127.0.0.1:");
    met_run_ok(h_bin(), url, ARGS("enqueue", "noop", "--key", "h1"), 0);
    ck_assert_msg(h_await_int(url, "SELECT count(*) FROM rt_run WHERE status = 'done'",
                              1, 30000),
                  "the worker ran nothing:\n%s", h_stderr(w));
    char *body = met_get(AF_INET, port);
    met_expect(body, "ratchet_runs{job=\"noop\",status=\"done\"}", "1");
    met_expect(body, "ratchet_queue_depth{job=\"noop\"}", "0");
    free(body);

    char *r = met_http(port, "GET /metrics?name[]=x HTTP/1.0\r\n\r\n");
    ck_assert_int_eq(met_status(r), 200);
    free(r);
    r = met_http(port, "HEAD /metrics HTTP/1.0\r\n\r\n");
    ck_assert_int_eq(met_status(r), 200);
    ck_assert_int_gt(met_length(r), 100);
    ck_assert_str_eq(met_body(r), "");
    free(r);
    r = met_http(port, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    ck_assert_int_eq(met_status(r), 404);
    free(r);
    r = met_http(port, "GET /metricsx HTTP/1.0\n\n");
    ck_assert_int_eq(met_status(r), 404);
    free(r);
    r = met_http(port, "POST /metrics HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello");
    ck_assert_int_eq(met_status(r), 405);
    ck_assert_msg(strstr(r, "\r\nAllow: GET, HEAD\r\n"), "%s", r);
    free(r);
    r = met_http(port, "DELETE /metrics HTTP/1.0\r\n\r\n");
    ck_assert_int_eq(met_status(r), 405);
    free(r);
    r = met_http(port, "GARBAGE\r\n\r\n");
    ck_assert_int_eq(met_status(r), 400);
    free(r);
    char big[RT_HTTP_MAX_REQUEST + 100];
    memset(big, 'a', sizeof big);
    memcpy(big, "GET /", 5);
    r = met_http_raw(AF_INET, port, big, sizeof big);
    ck_assert_int_eq(met_status(r), 431);
    free(r);

    /* A client that says nothing, one that stops half-way, and a full house
     * of idle connections: the next scrape is answered at once (not after
     * the RT_HTTP_READ_MS they may take), then the oldest are dropped. */
    int idle[RT_HTTP_MAX_CLIENTS];
    for (int i = 0; i < RT_HTTP_MAX_CLIENTS; i++) idle[i] = met_connect(AF_INET, port);
    ck_assert_int_eq(send(idle[1], "GET /metr", 9, MSG_NOSIGNAL), 9);
    int64_t t0 = h_now_ms();
    body = met_get(AF_INET, port);
    ck_assert_int_lt(h_now_ms() - t0, RT_HTTP_READ_MS / 2);
    free(body);
    char *gone = met_read_all(idle[0], 10000); /* evicted: closed, no answer */
    ck_assert_msg(gone && !*gone, "the oldest idle client got: %s", gone ? gone : "(open)");
    free(gone);

    /* SIGTERM with idle clients still connected: exit 0 within the grace,
     * and they see the connection close. */
    t0 = h_now_ms();
    kill(w, SIGTERM);
    EXPECT_EXIT(w, h_wait(w, 10000), 0);
    ck_assert_int_lt(h_now_ms() - t0, 3000);
    char *closed = met_read_all(idle[RT_HTTP_MAX_CLIENTS - 1], 2000);
    ck_assert_msg(closed != NULL, "an idle connection stayed open after the exit");
    free(closed);
    for (int i = 0; i < RT_HTTP_MAX_CLIENTS; i++) close(idle[i]);
    ck_assert(!strstr(h_stderr(w), "\"level\":\"error\""));
}
END_TEST

/* The socket inode of the listener on port (from /proc/net/tcp), 0 if none. */
static unsigned long met_listen_inode(int port) {
    FILE *f = fopen("/proc/net/tcp", "r");
    ck_assert(f);
    char line[512];
    unsigned long inode = 0;
    while (fgets(line, sizeof line, f)) {
        unsigned lport, state;
        unsigned long ino;
        if (sscanf(line, " %*d: %*x:%x %*x:%*x %x %*s %*s %*s %*s %*s %lu", &lport,
                   &state, &ino) == 3 &&
            (int)lport == port && state == 0x0A)
            inode = ino;
    }
    fclose(f);
    return inode;
}

/* Does pid have socket inode among its descriptors? */
static bool met_has_socket(pid_t pid, unsigned long inode) {
    char dir[64], want[64];
    snprintf(dir, sizeof dir, "/proc/%d/fd", (int)pid);
    snprintf(want, sizeof want, "socket:[%lu]", inode);
    DIR *d = opendir(dir);
    if (!d) return false;
    bool found = false;
    struct dirent *e;
    while ((e = readdir(d)) && !found) {
        char path[600], target[128];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        ssize_t n = readlink(path, target, sizeof target - 1);
        if (n > 0) {
            target[n] = '\0';
            found = !strcmp(target, want);
        }
    }
    closedir(d);
    return found;
}

/* A child just forked shares its parent's descriptors until it has run
 * (the atfork handler closes them): await that, as a fork without the
 * handler would keep them for good. */
static bool met_await_no_socket(pid_t pid, unsigned long inode, int timeout_ms) {
    int64_t deadline = h_now_ms() + timeout_ms;
    while (met_has_socket(pid, inode)) {
        if (h_now_ms() >= deadline) return false;
        struct timespec ts = {0, 5000000};
        nanosleep(&ts, NULL);
    }
    return true;
}

/* The children of pid (from /proc/PID/stat). */
static int met_children(pid_t parent, pid_t *out, int max) {
    DIR *d = opendir("/proc");
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < max) {
        char path[300], stat[512];
        snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        size_t got = fread(stat, 1, sizeof stat - 1, f);
        fclose(f);
        stat[got] = '\0';
        const char *close_paren = strrchr(stat, ')');
        int ppid;
        if (close_paren && sscanf(close_paren + 2, "%*c %d", &ppid) == 1 &&
            ppid == parent)
            out[n++] = atoi(e->d_name);
    }
    closedir(d);
    return n;
}

static bool met_await_children(pid_t parent, int want, pid_t *out, int timeout_ms) {
    int64_t deadline = h_now_ms() + timeout_ms;
    while (met_children(parent, out, 8) != want) {
        if (h_now_ms() >= deadline) return false;
        struct timespec ts = {0, 5000000}; /* poll the condition every 5 ms */
        nanosleep(&ts, NULL);
    }
    return true;
}

/* A pool of two: one port for the pool; the children hold neither the
 * listener nor a client; a child killed and restarted while scrapes go on
 * (the fork waits for the scrape's connection to close) works. */
START_TEST(test_http_pool) {
    const char *url = h_db_new(_i);
    h_migrate(url);
    pid_t w = h_spawn(h_bin(), url,
                      ARGS("worker", "--concurrency", "2", "--metrics-listen",
                           "127.0.0.1:0", "--grace", "4"),
                      NULL);
    int port = met_port(w, "http://127.0.0.1:");
    unsigned long inode = met_listen_inode(port);
    ck_assert_msg(inode != 0, "no listener on port %d", port);
    ck_assert(met_has_socket(w, inode));
    pid_t kids[8];
    ck_assert_msg(met_await_children(w, 2, kids, 10000), "not two worker processes");
    for (int i = 0; i < 2; i++)
        ck_assert_msg(met_await_no_socket(kids[i], inode, 10000),
                      "worker process %d holds the metrics socket", (int)kids[i]);
    for (int i = 0; i < 10; i++) {
        char key[16];
        snprintf(key, sizeof key, "p%d", i);
        met_run_ok(h_bin(), url, ARGS("enqueue", "noop", "--key", key), 0);
    }
    ck_assert_msg(h_await_int(url, "SELECT count(*) FROM rt_run WHERE status = 'done'", 10,
                              30000),
                  "the pool did not finish 10 runs in 30 s:\n%s", h_stderr(w));
    char *body = met_get(AF_INET, port);
    met_expect(body, "ratchet_runs{job=\"noop\",status=\"done\"}", "10");
    free(body);

    kill(kids[0], SIGKILL);
    pid_t now[8];
    int64_t deadline = h_now_ms() + 20000;
    int scrapes = 0;
    for (;;) { /* scrape while the supervisor restarts it */
        body = met_get(AF_INET, port);
        free(body);
        scrapes++;
        int n = met_children(w, now, 8);
        if (n == 2 && now[0] != kids[0] && now[1] != kids[0]) break;
        ck_assert_msg(h_now_ms() < deadline, "the killed worker was not restarted");
    }
    ck_assert_int_gt(scrapes, 0);
    for (int i = 0; i < 2; i++)
        ck_assert_msg(met_await_no_socket(now[i], inode, 10000),
                      "worker process %d holds the metrics socket", (int)now[i]);
    for (int i = 10; i < 20; i++) {
        char key[16];
        snprintf(key, sizeof key, "p%d", i);
        met_run_ok(h_bin(), url, ARGS("enqueue", "noop", "--key", key), 0);
    }
    ck_assert_msg(h_await_int(url, "SELECT count(*) FROM rt_run WHERE status = 'done'", 20,
                              30000),
                  "the pool did not finish 20 runs in 30 s:\n%s", h_stderr(w));
    body = met_get(AF_INET, port);
    met_expect(body, "ratchet_runs{job=\"noop\",status=\"done\"}", "20");
    free(body);
    int64_t t0 = h_now_ms();
    kill(w, SIGTERM);
    EXPECT_EXIT(w, h_wait(w, 10000), 0);
    ck_assert_int_lt(h_now_ms() - t0, 4000);
    ck_assert_int_eq(met_listen_inode(port), 0);
}
END_TEST

/* A daemon serves its schedule's lateness; IPv6 loopback. */
START_TEST(test_http_daemon) {
    const char *url = h_db_new(_i);
    h_migrate(url);
    pid_t d = h_spawn(h_bin(), url,
                      ARGS("daemon", "--schedule", "tick=* * * * * *", "--workers", "0",
                           "--metrics-listen", "[::1]:0", "--grace", "3"),
                      NULL);
    int port = met_port(d, "http://[::1]:");
    ck_assert_msg(h_await_int(url, "SELECT count(*) FROM rt_run WHERE job = 'tick' AND "
                                   "status = 'done'", 2, 30000),
                  "no tick run:\n%s", h_stderr(d));
    double wall = met_wall_s();
    char *body = met_get(AF_INET6, port);
    double late = met_value(body, "ratchet_schedule_lateness_seconds{job=\"tick\"}");
    ck_assert_msg(late >= -0.5 && late < 5.0, "lateness %.3f", late);
    met_expect_near(body, "ratchet_schedule_last_slot_timestamp_seconds{job=\"tick\"}",
                    wall, 5);
    ck_assert_int_ge((int)met_value(body, "ratchet_runs{job=\"tick\",status=\"done\"}"), 2);
    free(body);
    int64_t t0 = h_now_ms();
    kill(d, SIGTERM);
    EXPECT_EXIT(d, h_wait(d, 10000), 0);
    ck_assert_int_lt(h_now_ms() - t0, 3000);
}
END_TEST

Suite *metrics_suite(void) {
    Suite *s = suite_create("metrics");
    TCase *tc = tcase_create("metrics");
    tcase_set_timeout(tc, 120);
    int n = h_backends();
    tcase_add_test(tc, test_parse_listen);
    tcase_add_loop_test(tc, test_values, 0, n);
    tcase_add_loop_test(tc, test_label_escaping, 0, n);
    tcase_add_test(tc, test_empty_and_usage);
    tcase_add_test(tc, test_listen_usage);
    tcase_add_loop_test(tc, test_http_worker, 0, n);
    tcase_add_loop_test(tc, test_http_pool, 0, n);
    tcase_add_loop_test(tc, test_http_daemon, 0, n);
    suite_add_tcase(s, tc);
    return s;
}
