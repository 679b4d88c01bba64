/*
 * metrics.h — Prometheus metrics of the runs in the database: rendering
 * (metrics.c, `ratchet metrics`) and serving them over HTTP from a daemon
 * or worker (metrics_serve.c, `--metrics-listen`).
 */
#ifndef RT_METRICS_H
#define RT_METRICS_H

#include "service/service.h"

/*
 * Append the text exposition (format 0.0.4) of what s holds to out: runs
 * by job and status, items, last success and failure, progress and lease
 * ages of running runs, schedule lateness, queue depth. Reads only; a
 * handful of queries whatever the size of rt_run (see metrics.c for their
 * cost). An error leaves a partial text in out and the message in
 * s->errmsg.
 */
int rt__metrics_render(rt_store *s, rt__buf *out);

/*
 * A `--metrics-listen` value of command cmd (NULL: it is missing), checked
 * before anything starts (the CLI's option table calls it through
 * service/cli_entry.h). Returns RT_EXIT_OK, or RT_EXIT_USAGE after one
 * usage line.
 */
int rt__metrics_listen_check(const char *cmd, const char *v);

typedef struct rt__metrics_server rt__metrics_server;

/*
 * Serve GET /metrics on listen ([ADDR:]PORT, loopback unless ADDR says
 * otherwise) from a thread of this process, which opens its own connection
 * to url for each scrape. The thread blocks every signal, so stop handling
 * and the grace deadline stay the main thread's. guard_forks: this process
 * forks children that go on without exec (the worker pool): a fork then
 * waits until no scrape holds a database connection, so a child never
 * inherits SQLite or libpq in the middle of a call, and the child closes
 * the server's sockets. Returns RT_EXIT_OK (logs event metrics_listen with
 * the bound address) or RT_EXIT_USAGE (one line: cannot listen).
 */
int rt__metrics_serve_start(const char *listen, const char *url,
                            bool guard_forks, rt__metrics_server **out);
/* Stop serving (a scrape in flight is interrupted) and free; NULL: no-op. */
void rt__metrics_serve_stop(rt__metrics_server *m);

#endif
