/*
 * args.c — the one argument parser of the CLI. Every command describes its
 * options in one table (rt__cli_opt, in cli.c next to the command) and
 * this file reads argv against it: `--flag value` and `--flag=value`, a
 * flag without a value only as itself, positional arguments up to the
 * command's count, and the one-line usage errors the commands have always
 * given ("run: --grace takes seconds > 0, got 'x'"). The global options
 * (--db, --help, --version) are one more table, read first from anywhere
 * on the line with the unknown arguments kept in order for the command.
 * completion.c writes the bash completion from the same tables.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

/* The option of table opts that arg names, *value pointing after its '='
 * (NULL when none). A flag that takes no value matches only as itself. */
static const rt__cli_opt *args_find(const rt__cli_opt *opts, const char *arg,
                                    const char **value) {
    for (const rt__cli_opt *o = opts; o && o->name; o++) {
        size_t n = strlen(o->name);
        if (strncmp(arg, o->name, n)) continue;
        if (arg[n] == '\0') {
            *value = NULL;
            return o;
        }
        if (arg[n] == '=' && o->kind != RT_CLI_FLAG) {
            *value = arg + n + 1;
            return o;
        }
    }
    return NULL;
}

static void args_push(rt__cli_val *v, const char *text) {
    const char **l = realloc((void *)v->list, sizeof *l * (size_t)(v->n + 2));
    if (!l) abort();
    l[v->n++] = text;
    l[v->n] = NULL;
    v->list = l;
}

/* "CMD: " before a message, nothing for the global options. */
#define ARGS_PFX(cmd) (cmd) ? (cmd) : "", (cmd) ? ": " : ""

/* Check value v (NULL: missing) of o into out: RT_EXIT_OK, or the usage
 * error's exit code after its line. */
static int args_value(const char *cmd, const rt__cli_opt *o, const char *v,
                      rt__cli_val *out) {
    const char *got = v ? v : "";
    int64_t n = 0;
    double d = 0;
    switch (o->kind) {
    case RT_CLI_FLAG:
        break;
    case RT_CLI_TEXT:
    case RT_CLI_WORD:
    case RT_CLI_LIST:
        if (!v || (o->kind == RT_CLI_WORD && !*v))
            return rt__cli_usage("%s%s%s %s", ARGS_PFX(cmd), o->name, o->want);
        if (o->kind == RT_CLI_LIST) args_push(out, v);
        break;
    case RT_CLI_PAIR:
        if (!v || !strchr(v, '=') || *v == '=')
            return rt__cli_usage("%s%s%s %s, got '%s'", ARGS_PFX(cmd), o->name,
                                 o->want, got);
        args_push(out, v);
        break;
    case RT_CLI_INT:
        if (!rt__cli_int(v, &n) || (double)n < o->min || (double)n > o->max)
            return rt__cli_usage("%s%s%s %s, got '%s'", ARGS_PFX(cmd), o->name,
                                 o->want, got);
        out->i = n;
        break;
    case RT_CLI_REAL:
        if (!rt__cli_real(v, &d) || d < o->min || d > o->max ||
            ((o->flags & RT_CLI_MIN_OPEN) && d == o->min))
            return rt__cli_usage("%s%s%s %s, got '%s'", ARGS_PFX(cmd), o->name,
                                 o->want, got);
        out->d = d;
        break;
    case RT_CLI_CHOICE: {
        /* o->meta: the choices, "fail|skip|wait"; out->i: which one */
        int k = 0;
        bool found = false;
        for (const char *c = o->meta; v && *c; k++) {
            size_t len = strcspn(c, "|");
            if (strlen(v) == len && !strncmp(c, v, len)) {
                found = true;
                break;
            }
            c += len + (c[len] == '|');
        }
        if (!found)
            return rt__cli_usage("%s%s%s %s, got '%s'", ARGS_PFX(cmd), o->name,
                                 o->want, got);
        out->i = k;
        break;
    }
    case RT_CLI_CHECK: {
        int code = o->check(cmd, o, v, out);
        if (code != RT_EXIT_OK) return code;
        break;
    }
    }
    out->set = true;
    out->text = v;
    return RT_EXIT_OK;
}

int rt__cli_parse(const char *cmd, const rt__cli_opt *opts, int maxpos,
                  int argc, char **argv, rt__cli_args *out, char **rest,
                  int *nrest) {
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i], *v = NULL;
        const rt__cli_opt *o = args_find(opts, arg, &v);
        if (!o) {
            if (rest) {
                rest[(*nrest)++] = argv[i];
            } else if (arg[0] != '-' && out->npos < maxpos &&
                       out->npos < RT_CLI_MAX_POS) {
                out->pos[out->npos++] = arg;
            } else {
                return rt__cli_usage("%s: %s '%s' (see 'ratchet %s --help')",
                                     cmd, arg[0] == '-' ? "unknown option"
                                                        : "unexpected argument",
                                     arg, cmd);
            }
            continue;
        }
        /* --flag value: the next argument, whatever it looks like. */
        if (o->kind != RT_CLI_FLAG && !v && i + 1 < argc) v = argv[++i];
        int code = args_value(cmd, o, v, &out->v[o->slot]);
        if (code != RT_EXIT_OK) return code;
    }
    return RT_EXIT_OK;
}

void rt__cli_args_free(rt__cli_args *a) {
    for (int i = 0; i < RT_CLI_MAX_SLOTS; i++) free((void *)a->v[i].list);
    memset(a, 0, sizeof *a);
}

