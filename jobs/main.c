/* main.c — the ratchet binary: rt_main() over the example jobs. */
#include "jobs.h"

static const rt_job *const jobs[] = {&rowcopy_job, &aggregate_job, &tick_job,
                                    &noop_job,    &flaky_job,     NULL};

int main(int argc, char **argv) { return rt_main(argc, argv, jobs); }
