/* suites.h — the list of Check suites; check_main.c runs them all. */
#ifndef RATCHET_SUITES_H
#define RATCHET_SUITES_H
#include <check.h>

Suite *unit_suite(void);
Suite *cli_suite(void);
Suite *pg_suite(void);
Suite *lease_suite(void);
Suite *cron_suite(void);
Suite *daemon_suite(void);
Suite *queue_suite(void);
Suite *ops_suite(void);
Suite *metrics_suite(void);
Suite *contrib_suite(void);
Suite *fault_suite(void);
Suite *failpoint_suite(void);
Suite *diskfull_suite(void);
Suite *pooler_suite(void);
Suite *clock_suite(void);
Suite *states_suite(void);
Suite *signals_suite(void);
Suite *input_suite(void);
Suite *lifecycle_suite(void);
Suite *errors_suite(void);
Suite *embed_suite(void);
/* The fault suite's tcase of network faults (check_pgproxy.c). */
TCase *pgproxy_tcase(void);

#endif
