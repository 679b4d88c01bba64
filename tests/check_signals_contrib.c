/*
 * check_signals_contrib.c — the signals suite's contrib part: the service
 * examples in contrib/ keep their grace figures consistent: every `--grace
 * G` a file passes must end before the platform's SIGKILL at T seconds (G <=
 * T - 2, the margin for the process to exit), where T is the file's own
 * figure (systemd TimeoutStopSec, Kubernetes terminationGracePeriodSeconds
 * of the same document) or the platform's fixed one (Heroku 30 s;
 * docker/podman stop and Cloud Run 10 s, where ratchet's default of 8 s
 * fits). Plus the systemd unit's essentials. Files are read from
 * RATCHET_SRC_DIR (default: the current directory, the repository's root
 * under `make check`).
 */
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "suites.h"

#define CONTRIB_MARGIN_S 2

static char *contrib_read(const char *rel) {
    const char *dir = getenv("RATCHET_SRC_DIR");
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir && *dir ? dir : ".", rel);
    FILE *f = fopen(path, "r");
    ck_assert_msg(f, "cannot read %s (set RATCHET_SRC_DIR to the source tree)", path);
    static char buf[65536];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return strdup(buf);
}

/* The number after the first `key` that has one (skipping = : space,
 * quotes and commas; prose such as "--grace to commit" is passed over);
 * -1 if none. *after: where the number ends. */
static double contrib_number(const char *text, const char *key, const char **after) {
    for (const char *at = strstr(text, key); at; at = strstr(at + 1, key)) {
        const char *p = at + strlen(key);
        while (*p && strchr(" =:\"',", *p)) p++;
        char *end;
        double v = strtod(p, &end);
        if (end == p || (*p < '0' || *p > '9')) continue;
        if (after) *after = end;
        return v;
    }
    return -1;
}

/* A YAML field's number, on a line that is not a comment; -1 if none. */
static double contrib_yaml_number(const char *doc, const char *field) {
    for (const char *line = doc; line && *line;) {
        const char *p = line + strspn(line, " ");
        const char *eol = strchr(line, '\n');
        size_t n = strlen(field);
        if (*p != '#' && !strncmp(p, field, n) && p[n] == ':')
            return strtod(p + n + 1, NULL);
        line = eol ? eol + 1 : NULL;
    }
    return -1;
}

/* Every --grace in text fits before T; returns how many there are. */
static int contrib_check_graces(const char *file, const char *text, double t) {
    int n = 0;
    const char *p = text;
    double g;
    while ((g = contrib_number(p, "--grace", &p)) >= 0) {
        ck_assert_msg(g > 0 && g <= t - CONTRIB_MARGIN_S,
                      "%s: --grace %g does not end %d s before the platform's "
                      "SIGKILL at %g s",
                      file, g, CONTRIB_MARGIN_S, t);
        n++;
    }
    return n;
}

START_TEST(test_systemd) {
    const char *file = "contrib/systemd/ratchet-daemon.service";
    char *text = contrib_read(file);
    double t = contrib_number(text, "\nTimeoutStopSec", NULL);
    ck_assert_msg(t > 0, "%s: no TimeoutStopSec", file);
    ck_assert_int_ge(contrib_check_graces(file, text, t), 1);
    ck_assert(strstr(text, "\nType=notify\n"));
    ck_assert(strstr(text, "\nKillSignal=SIGTERM\n"));
    ck_assert(strstr(text, "\nKillMode=mixed\n"));
    /* WATCHDOG=1 comes from the daemon alone, every WatchdogSec/2. */
    double w = contrib_number(text, "\nWatchdogSec", NULL);
    ck_assert_msg(w >= 60, "%s: WatchdogSec %g is shorter than a loop may wait", file, w);
    ck_assert(strstr(text, "\nExecStart=/usr/local/bin/ratchet daemon "));
    free(text);
}
END_TEST

START_TEST(test_heroku) {
    const char *file = "contrib/heroku/Procfile";
    char *text = contrib_read(file);
    int processes = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        if (line[0] == '#' || !strchr(line, ':')) continue;
        processes++;
        ck_assert_msg(contrib_check_graces(file, line, 30) == 1,
                      "%s: no --grace in '%s'", file, line);
        ck_assert_msg(strstr(line, "RATCHET_DB=\"$DATABASE_URL\" exec ratchet "),
                      "%s: '%s'", file, line);
    }
    ck_assert_int_eq(processes, 2);
    free(text);
}
END_TEST

/* Each YAML document: its terminationGracePeriodSeconds bounds its --grace. */
static void contrib_check_k8s(const char *file, int want_docs) {
    char *text = contrib_read(file);
    int docs = 0;
    for (char *doc = text; doc; docs++) {
        char *next = strstr(doc, "\n---\n");
        if (next) *next = '\0';
        double t = contrib_yaml_number(doc, "terminationGracePeriodSeconds");
        ck_assert_msg(t > 0, "%s: document %d has no terminationGracePeriodSeconds",
                      file, docs + 1);
        ck_assert_msg(contrib_check_graces(file, doc, t) >= 1,
                      "%s: document %d passes no --grace", file, docs + 1);
        doc = next ? next + 5 : NULL;
    }
    ck_assert_int_eq(docs, want_docs);
    free(text);
}

START_TEST(test_kubernetes) {
    contrib_check_k8s("contrib/kubernetes/cronjob.yaml", 1);
    contrib_check_k8s("contrib/kubernetes/deployment.yaml", 2);
    char *text = contrib_read("contrib/kubernetes/cronjob.yaml");
    ck_assert(strstr(text, "\n  concurrencyPolicy: Forbid\n"));
    free(text);
}
END_TEST

START_TEST(test_container) {
    const char *file = "contrib/container/Containerfile";
    char *text = contrib_read(file);
    ck_assert_int_ge(contrib_check_graces(file, text, 10), 1);
    ck_assert(strstr(text, "\nSTOPSIGNAL SIGTERM\n"));
    ck_assert(strstr(text, "\nUSER 10001:10001\n"));
    ck_assert(strstr(text, "\nFROM debian:"));
    free(text);
}
END_TEST

void signals_contrib_add(Suite *s) {
    TCase *tc = tcase_create("contrib");
    tcase_add_test(tc, test_systemd);
    tcase_add_test(tc, test_heroku);
    tcase_add_test(tc, test_kubernetes);
    tcase_add_test(tc, test_container);
    suite_add_tcase(s, tc);
}
