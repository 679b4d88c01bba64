/*
 * cli/cli.h — what the command-line tool's files share: the option tables
 * and their parser (args.c), the command table (cli.c), the listings of
 * runs (status.c, history.c) and the completion script (completion.c).
 *
 * The CLI is a client of ratchet.h. What it needs from below that is wrong
 * for the public API (the log, usage errors, rt_main's signals, the
 * foreground run, worker pool and daemon under them) comes through
 * service/cli_entry.h, which this header is the only includer of; no file
 * of cli/ includes another layer's header.
 */
#ifndef RT_CLI_H
#define RT_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "ratchet.h"
#include "service/cli_entry.h"

/* ------------------------------------------------- status.c, history.c */

/* `status` and `history` (finished runs only) on the database at url:
 * the listing on stdout, and the exit code. */
int rt__cli_status(const char *url, const char *job, int64_t limit, bool json);
int rt__cli_history(const char *url, const char *job, int64_t limit,
                    bool json);
/* Writes one run: a JSON object's members, or a table line. */
typedef void (*rt__cli_row_fn)(FILE *out, const rt_run_row *r, bool json);
/*
 * List the runs rt_list_runs(job, limit, finished) gives: header then one
 * line per run (row), or one JSON document {"runs":[{...},...]}. Returns
 * the exit code; nothing is printed when the runs cannot be read.
 */
int rt__cli_list(const char *url, const char *job, int64_t limit, bool json,
                 bool finished, const char *header, rt__cli_row_fn row);
/* ,"name":"2026-11-22T15:08:00.123Z" or ,"name":null when ms < 0. */
void rt__cli_json_time(FILE *out, const char *name, int64_t ms);
/* s as a JSON string, or null when NULL. */
void rt__cli_json_text(FILE *out, const char *s);
/* A run's first members: "id":12,"job":"...","key":"...","status":"..." */
void rt__cli_json_run(FILE *out, const rt_run_row *r);
/* A duration for people: "850ms", "12.3s", "5m", "3h", "2d"; "-" if < 0. */
void rt__cli_age(char *out, size_t n, int64_t ms);

/* ------------------------------------------------------------- args.c */

/* What an option's value is (rt__cli_opt.kind), and the error it gives. */
typedef enum rt__cli_kind {
    RT_CLI_FLAG,   /* no value; --flag=x is not this flag */
    RT_CLI_TEXT,   /* any value; none: "CMD: NAME WANT" */
    RT_CLI_WORD,   /* a non-empty value; none or empty: "CMD: NAME WANT" */
    RT_CLI_LIST,   /* as TEXT, repeatable: every value kept in order */
    RT_CLI_PAIR,   /* NAME=VALUE, repeatable; else "CMD: NAME WANT, got 'V'" */
    RT_CLI_INT,    /* an integer in [min, max]; else as PAIR */
    RT_CLI_REAL,   /* a number in [min, max]; else as PAIR */
    RT_CLI_CHOICE, /* one of meta's words ("fail|skip|wait"): .i is which */
    RT_CLI_CHECK,  /* checked by check(), which says what is wrong */
} rt__cli_kind;

#define RT_CLI_HIDDEN 1u   /* internal: not completed, not documented */
#define RT_CLI_JOBS 2u     /* the value names jobs (completion offers them) */
#define RT_CLI_MIN_OPEN 4u /* RT_CLI_REAL: min itself is refused */

#define RT_CLI_MAX_SLOTS 32
#define RT_CLI_MAX_POS 2

/* An option's value as parsed (the last one given, and all for lists). */
typedef struct rt__cli_val {
    bool set;
    const char *text;   /* as given (argv's) */
    int64_t i;          /* RT_CLI_INT; RT_CLI_CHOICE: the choice's index */
    double d;           /* RT_CLI_REAL */
    const char **list;  /* RT_CLI_LIST, RT_CLI_PAIR: NULL-ended; malloc'd */
    int n;
} rt__cli_val;

/* One option of a command: a row of its table, which ends in {NULL}. */
typedef struct rt__cli_opt {
    const char *name;   /* "--grace" */
    rt__cli_kind kind;
    int slot;           /* where its value goes (aliases share a slot) */
    const char *want;   /* the error's words: "takes seconds > 0" */
    double min, max;    /* RT_CLI_INT, RT_CLI_REAL */
    const char *meta;   /* the value's name for people ("S"); the choices */
    unsigned flags;     /* RT_CLI_HIDDEN, RT_CLI_JOBS, RT_CLI_MIN_OPEN */
    /* RT_CLI_CHECK: value (NULL: missing) into out; an exit code, after
     * one usage line when it is not RT_EXIT_OK */
    int (*check)(const char *cmd, const struct rt__cli_opt *o,
                 const char *value, struct rt__cli_val *out);
} rt__cli_opt;

typedef struct rt__cli_args {
    const char *pos[RT_CLI_MAX_POS]; /* positional arguments, in order */
    int npos;
    rt__cli_val v[RT_CLI_MAX_SLOTS];
} rt__cli_args;

/*
 * Read argv (argc arguments, the command's own) against opts for command
 * cmd (NULL: the global options, whose errors name no command) into out,
 * zeroed by the caller: RT_EXIT_OK, or the exit code of the first usage
 * error after its one line. Up to maxpos arguments not starting with '-'
 * are positional; any other unknown argument is an error - unless rest is
 * given, which then receives them in order (*nrest counts them).
 */
int rt__cli_parse(const char *cmd, const rt__cli_opt *opts, int maxpos,
                  int argc, char **argv, rt__cli_args *out, char **rest,
                  int *nrest);
void rt__cli_args_free(rt__cli_args *a);

/* ------------------------------------------------------- completion.c */

struct rt__cli; /* cli.c's: the line rt_main was given */

/* A command: a row of cli.c's command table, which ends in {NULL}. */
typedef struct rt__cli_cmd {
    const char *name;
    const char *usage;        /* its --help: "usage: ratchet [--db URL] ..." */
    const rt__cli_opt *opts;  /* its options (NULL: none) */
    int maxpos;               /* positional arguments it takes */
    const char *pos;          /* its first one, for completion: "JOB" (a job
                                 name), words ("bash", "a|b"), or NULL */
    bool db;                  /* it opens the database: --db applies */
    int (*run)(const struct rt__cli *c, const rt__cli_args *a);
    /* SIGTERM/SIGINT stop it at a safe point (else they just end it),
     * and stop_exit is its exit code when the stop deadline passes. */
    bool stops;
    int stop_exit;
} rt__cli_cmd;

/*
 * Write to out a bash completion script for the program prog (a path; its
 * base name is what gets completed): the commands cmds with the options of
 * their tables (and the global ones that take a value, for a command that
 * opens the database), the global options global, and the names of jobs
 * (NULL-ended). Options marked RT_CLI_HIDDEN are left out.
 */
void rt__completion_bash(FILE *out, const char *prog,
                         const rt__cli_opt *global, const rt__cli_cmd *cmds,
                         const rt_job *const *jobs);

#endif
