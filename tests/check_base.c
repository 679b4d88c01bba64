/*
 * check_base.c — in-process tests of framework/base (util.c): the number and
 * boolean parsers, JSON escaping, and the masking of passwords in URLs and
 * conninfo strings before they reach a log line or an error message.
 */
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <libpq-fe.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <string.h>

#include "harness.h"
#include "service/service.h"
#include "suites.h"

START_TEST(test_parsers) {
    int64_t i;
    double d;
    bool b;
    ck_assert(rt__parse_int64("42", &i) && i == 42);
    ck_assert(rt__parse_int64("-9223372036854775808", &i) && i == INT64_MIN);
    ck_assert(!rt__parse_int64("9223372036854775808", &i));
    ck_assert(!rt__parse_int64("12x", &i));
    ck_assert(!rt__parse_int64("", &i));
    ck_assert(!rt__parse_int64(" 1", &i));
    ck_assert(rt__parse_double("2.5", &d) && d == 2.5);
    ck_assert(!rt__parse_double("nan", &d));
    ck_assert(!rt__parse_double("1e999", &d));
    ck_assert(rt__parse_bool("Yes", &b) && b);
    ck_assert(rt__parse_bool("off", &b) && !b);
    ck_assert(!rt__parse_bool("maybe", &b));
}
END_TEST

START_TEST(test_json_escape) {
    rt__buf b = {0};
    rt__buf_json(&b, "a\"b\\c\nd\x01");
    ck_assert_str_eq(b.p, "\"a\\\"b\\\\c\\nd\\u0001\"");
    rt__buf_free(&b);
}
END_TEST

START_TEST(test_mask_secrets) {
    static const char *const cases[][2] = {
        {"postgresql://bob:pw@h:5432/db", "postgresql://bob:***@h:5432/db"},
        {"postgres://bob@h/db", "postgres://bob@h/db"},
        {"postgresql://h/db?user=u&password=pw&sslmode=require",
         "postgresql://h/db?user=u&password=***&sslmode=require"},
        {"host=h password=pw user=u", "host=h password=*** user=u"},
        {"host=h password = 'p w\\' x' user=u", "host=h password = *** user=u"},
        {"PASSWORD=pw", "PASSWORD=***"},
        {"host=h mypassword=x", "host=h mypassword=x"},
        {"a \"postgresql://u:pw@[::1/db\" b", "a \"postgresql://u:***@[::1/db\" b"},
        {"sqlite:/tmp/x.db", "sqlite:/tmp/x.db"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *got = rt__mask_secrets(cases[i][0]);
        ck_assert_str_eq(got, cases[i][1]);
        free(got);
    }
}
END_TEST

Suite *base_suite(void) {
    Suite *su = suite_create("base");
    TCase *tc = tcase_create("parts");
    tcase_add_test(tc, test_parsers);
    tcase_add_test(tc, test_json_escape);
    tcase_add_test(tc, test_mask_secrets);
    suite_add_tcase(su, tc);
    return su;
}
