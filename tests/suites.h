/*
 * suites.h — the one list of Check suites (libuv's test/test-list.h is the
 * model): RT_SUITES names each suite, in the order check_main.c runs them;
 * a suite NAME is NAME_suite() in tests/check_NAME.c and CK_RUN_SUITE=NAME
 * picks it. RT_PARTS names the parts of a suite kept in a file of their
 * own, tests/check_SUITE_PART.c, whose SUITE_PART_add() adds its tcases to
 * the suite (CK_RUN_SUITE=SUITE CK_RUN_CASE=... picks one). Both lists
 * generate the declarations below and check_main.c's runner list, so a
 * suite is added in one place.
 */
#ifndef RATCHET_SUITES_H
#define RATCHET_SUITES_H
#include <check.h>

#define RT_SUITES(X) \
    X(base)          \
    X(store)         \
    X(postgres)      \
    X(migrate)       \
    X(runner)        \
    X(failpoint)     \
    X(lifecycle)     \
    X(lease)         \
    X(signals)       \
    X(input)         \
    X(ops)           \
    X(worker)        \
    X(daemon)        \
    X(cron)          \
    X(metrics)       \
    X(cli)           \
    X(embed)

/* X(suite, part): tests/check_<suite>_<part>.c. */
#define RT_PARTS(X)          \
    X(store, diskfull)       \
    X(postgres, pooler)      \
    X(postgres, wire)        \
    X(runner, faults)        \
    X(runner, errors)        \
    X(lifecycle, table)      \
    X(lease, clock)          \
    X(signals, contrib)

#define RT_SUITE_DECLARE(name) Suite *name##_suite(void);
#define RT_PART_DECLARE(suite, part) void suite##_##part##_add(Suite *s);
RT_SUITES(RT_SUITE_DECLARE)
RT_PARTS(RT_PART_DECLARE)
#undef RT_SUITE_DECLARE
#undef RT_PART_DECLARE

#endif
