/*
 * cli/below.h — what status.c and history.c still use of the layers below
 * the CLI: they read rt_run with SQL of their own through the store's
 * statements and render it. This is the one header of cli/ allowed to
 * include another layer's (tools/includes.sh --check); it goes away when
 * the runs come from ratchet.h as data (rows or JSON) that cli/ renders.
 */
#ifndef RT_CLI_BELOW_H
#define RT_CLI_BELOW_H

#include "cli/cli.h"
#include "core/core.h"

/* ----------------------------------------------------------- status.c */

/* Runs of job (all when NULL), newest first, as a table or one JSON document. */
int rt__status_render(rt_store *s, const char *job, int64_t limit, bool json,
                      rt__buf *out);
/* Appends one row read from st: a JSON object's members, or a table line. */
typedef void (*rt__status_row_fn)(rt__buf *out, rt_stmt *st, bool json);
/*
 * Run sql and list its rows: header then one line per row, or one JSON
 * document {"runs":[{...},...]}. An error leaves a partial list in out.
 */
int rt__status_rows(rt_store *s, const char *sql, int nargs,
                    const rt_value *args, bool json, const char *header,
                    rt__status_row_fn row, rt__buf *out);
/* Finished runs of job (all when NULL), newest finish first. */
int rt__ops_history(rt_store *s, const char *job, int64_t limit, bool json,
                    rt__buf *out);
/* An integer column, -1 when NULL. */
int64_t rt__status_int(rt_stmt *st, int col);
/* ,"name":"2026-11-22T15:08:00.123Z" or ,"name":null when ms < 0. */
void rt__status_json_time(rt__buf *b, const char *name, int64_t ms);
/* s as a JSON string, or null when NULL. */
void rt__status_json_text(rt__buf *b, const char *s);
/* A run's first members: "id":12,"job":"...","key":"...","status":"..." */
void rt__status_json_run(rt__buf *b, int64_t id, const char *job,
                         const char *key, const char *status);
/* A duration for people: "850ms", "12.3s", "5m", "3h", "2d"; "-" if < 0. */
void rt__status_age(char *out, size_t n, int64_t ms);

#endif
