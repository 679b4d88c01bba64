/*
 * cron.h — cron expressions: parse "TZ=Europe/Paris 0 3 * * *" once, then
 * ask for the next slot after an instant. The rules (fields, names, aliases,
 * day-of-month/day-of-week combination, daylight saving) are described at
 * the top of cron.c.
 */
#ifndef RT_CRON_H
#define RT_CRON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ratchet.h"

/* A parsed expression. Immutable after parsing: share it freely. */
typedef struct rt__cron rt__cron;

/*
 * Parse expr. On success RT_OK and *out (free with rt__cron_free). On a bad
 * expression RT_INVALID, *out = NULL, and err holds ONE line:
 *   "cron 'EXPR': position N: REASON"  (N = 1-based character column in EXPR)
 * or for whole-expression problems "cron 'EXPR': REASON". RT_MISUSE when
 * expr or out is NULL. err may be NULL (errlen 0). Reads $TZDIR and the zone
 * file to validate a time zone; thread-safe.
 */
int rt__cron_parse(const char *expr, rt__cron **out, char *err, size_t errlen);

/* Free a parsed expression; NULL is a no-op. */
void rt__cron_free(rt__cron *c);

/*
 * The first slot strictly after after_ms (ms since the Unix epoch, UTC),
 * as ms since the epoch (always a whole second); -1 if the expression never
 * fires (e.g. Feb 30). Strictly increasing: next(next(t)) > next(t).
 * For a schedule with a time zone this sets TZ and calls tzset() under a
 * process-wide mutex, restoring TZ afterwards: safe against other calls of
 * rt__cron_next, but a thread calling localtime() at the same moment may
 * see the schedule's zone. UTC schedules touch no global state.
 */
int64_t rt__cron_next(const rt__cron *c, int64_t after_ms);

/*
 * Whether a civil time (seconds since 1970-01-01T00:00 of the proleptic
 * Gregorian calendar, read without a zone) matches every field of c, with
 * the day-of-month/day-of-week rule. For a UTC schedule the civil time is
 * the instant; rt__cron_next's results match (the tests check it).
 */
bool rt__cron_matches(const rt__cron *c, int64_t civil_s);

/* The time zone name ("UTC" when none was given); owned by c. */
const char *rt__cron_zone(const rt__cron *c);

/* Whether the expression has a seconds field (6 fields). */
bool rt__cron_has_seconds(const rt__cron *c);

#endif
