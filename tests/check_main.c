/* check_main.c — runs every suite, each test in its own process (CK_FORK). */
#include <stdlib.h>

#include "suites.h"

int main(void) {
    SRunner *sr = srunner_create(unit_suite());
    srunner_add_suite(sr, cli_suite());
    srunner_add_suite(sr, pg_suite());
    srunner_add_suite(sr, lease_suite());
    srunner_add_suite(sr, cron_suite());
    srunner_add_suite(sr, daemon_suite());
    srunner_add_suite(sr, queue_suite());
    srunner_add_suite(sr, ops_suite());
    srunner_add_suite(sr, metrics_suite());
    srunner_add_suite(sr, contrib_suite());
    srunner_add_suite(sr, fault_suite());
    srunner_add_suite(sr, failpoint_suite());
    srunner_add_suite(sr, diskfull_suite());
    srunner_add_suite(sr, pooler_suite());
    srunner_add_suite(sr, clock_suite());
    srunner_add_suite(sr, states_suite());
    srunner_add_suite(sr, signals_suite());
    srunner_add_suite(sr, input_suite());
    srunner_add_suite(sr, lifecycle_suite());
    srunner_add_suite(sr, errors_suite());
    srunner_add_suite(sr, embed_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
