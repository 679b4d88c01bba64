/* check_main.c — runs every suite of suites.h, in its order, each test in
 * its own process (CK_FORK). */
#include <stdlib.h>
#include <string.h>

#include "suites.h"

/* The parts (RT_PARTS) of the suite called name join it. */
static void add_parts(const char *name, Suite *s) {
#define RT_PART_ADD(suite, part) \
    if (!strcmp(name, #suite)) suite##_##part##_add(s);
    RT_PARTS(RT_PART_ADD)
#undef RT_PART_ADD
}

int main(void) {
    SRunner *sr = srunner_create(NULL);
#define RT_SUITE_ADD(name)                 \
    {                                      \
        Suite *s = name##_suite();         \
        add_parts(#name, s);               \
        srunner_add_suite(sr, s);          \
    }
    RT_SUITES(RT_SUITE_ADD)
#undef RT_SUITE_ADD
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
