/* jobs.h — the example jobs compiled into the ratchet binary. */
#ifndef RATCHET_JOBS_H
#define RATCHET_JOBS_H

#include "ratchet.h"

extern const rt_job rowcopy_job;
extern const rt_job aggregate_job;
extern const rt_job tick_job;
extern const rt_job noop_job;
extern const rt_job flaky_job;

#endif
