/*
 * cli/cli.h — what the command-line tool's files share: the listings of
 * runs (status.c) and the completion script (completion.c).
 */
#ifndef RT_CLI_H
#define RT_CLI_H

#include "service/service.h"

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
/* One usage line (event usage) on stderr; returns RT_EXIT_USAGE. */
int rt__cli_usage(const char *fmt, ...) RT_PRINTF(1, 2);
/* A whole decimal integer, or a finite number, without leading space. */
bool rt__cli_int(const char *s, int64_t *out);
bool rt__cli_real(const char *s, double *out);

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
 * Append to out a bash completion script for the program prog (a path; its
 * base name is what gets completed): the commands cmds with the options of
 * their tables (and the global ones that take a value, for a command that
 * opens the database), the global options global, and the names of jobs
 * (NULL-ended). Options marked RT_CLI_HIDDEN are left out.
 */
void rt__completion_bash(rt__buf *out, const char *prog,
                         const rt__cli_opt *global, const rt__cli_cmd *cmds,
                         const rt_job *const *jobs);

#endif
