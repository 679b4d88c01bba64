/*
 * completion.c — `ratchet completion bash`: writes a bash completion script
 * for the program. Nothing is listed twice: the commands and each command's
 * flags come from the option tables the CLI parses with (rt__cli_opt: a
 * flag takes a value unless it is RT_CLI_FLAG; an RT_CLI_CHOICE lists its
 * choices, RT_CLI_JOBS values are job names; RT_CLI_HIDDEN ones are left
 * out), and the job names are the ones compiled into the binary, so
 * completing needs no process and no database.
 */
#include <string.h>

#include "cli/cli.h"

#define CMP_MAX_FLAGS 64

typedef struct cmp_flag {
    char name[40];    /* "--key" */
    bool value;       /* takes a value */
    bool jobs;        /* the value is a job name (or JOB,...) */
    char choices[96]; /* "fail skip wait": the value is one of these */
} cmp_flag;

typedef struct cmp_flags {
    cmp_flag v[CMP_MAX_FLAGS];
    int n;
} cmp_flags;

static bool cmp_is_name(char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-';
}

/* A word bash may take as it is, inside single quotes and in compgen -W. */
static bool cmp_safe_word(const char *s) {
    if (!*s) return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
              (*s >= '0' && *s <= '9') || strchr("._:+@-", *s)))
            return false;
    return true;
}

static cmp_flag *cmp_find(cmp_flags *fs, const char *name) {
    for (int i = 0; i < fs->n; i++)
        if (!strcmp(fs->v[i].name, name)) return &fs->v[i];
    return NULL;
}

/*
 * Add what is known about flag f to fs: a flag is one flag, whatever
 * command has it, and takes a value if any command's takes one.
 */
static void cmp_merge(cmp_flags *fs, const cmp_flag *f) {
    cmp_flag *old = cmp_find(fs, f->name);
    if (!old) {
        if (fs->n < CMP_MAX_FLAGS) fs->v[fs->n++] = *f;
        return;
    }
    old->value |= f->value;
    old->jobs |= f->jobs;
    if (!old->choices[0]) memcpy(old->choices, f->choices, sizeof old->choices);
}

/* The options of table opts (NULL: none) but the hidden ones, into fs. */
static void cmp_table(const rt__cli_opt *opts, cmp_flags *fs) {
    for (const rt__cli_opt *o = opts; o && o->name; o++) {
        if ((o->flags & RT_CLI_HIDDEN) || strlen(o->name) >= sizeof fs->v[0].name)
            continue;
        cmp_flag f;
        memset(&f, 0, sizeof f);
        memcpy(f.name, o->name, strlen(o->name) + 1);
        f.value = o->kind != RT_CLI_FLAG;
        f.jobs = (o->flags & RT_CLI_JOBS) != 0;
        if (o->kind == RT_CLI_CHOICE && strlen(o->meta) < sizeof f.choices) {
            memcpy(f.choices, o->meta, strlen(o->meta) + 1);
            for (char *c = f.choices; *c; c++)
                if (*c == '|') *c = ' ';
        }
        cmp_merge(fs, &f);
    }
}

/*
 * What a command's first positional argument is (rt__cli_cmd.pos): job
 * names for JOB, the words of a literal (`bash`, `a|b`), else nothing
 * (NULL).
 */
static const char *cmp_positional(const rt__cli_cmd *d, char *words,
                                  size_t wlen) {
    const char *a = d->pos;
    if (!a || d->maxpos == 0) return NULL;
    if (!strcmp(a, "JOB")) return "jobs";
    size_t k = strlen(a);
    if (k == 0 || k >= wlen || !(a[0] >= 'a' && a[0] <= 'z')) return NULL;
    for (size_t i = 0; i < k; i++) {
        if (!cmp_is_name(a[i]) && a[i] != '|') return NULL;
        words[i] = a[i] == '|' ? ' ' : a[i];
    }
    words[k] = '\0';
    return "words";
}

/* The flag names of fs, space-separated. */
static void cmp_names(FILE *out, const cmp_flags *fs) {
    for (int i = 0; i < fs->n; i++) {
        if (i) fputs(" ", out);
        fputs(fs->v[i].name, out);
    }
}

void rt__completion_bash(FILE *out, const char *prog,
                         const rt__cli_opt *options, const rt__cli_cmd *cmds,
                         const rt_job *const *jobs) {
    const char *base = strrchr(prog, '/');
    base = base ? base + 1 : prog;
    if (!cmp_safe_word(base)) base = "ratchet";
    char fn[128];
    size_t n = 0;
    fn[n++] = '_';
    for (const char *s = base; *s && n + 1 < sizeof fn; s++)
        fn[n++] = (cmp_is_name(*s) && *s != '-') || (*s >= 'A' && *s <= 'Z') ? *s : '_';
    fn[n] = '\0';

    cmp_flags global = {0}, all = {0};
    cmp_table(options, &global);
    for (int i = 0; i < global.n; i++) cmp_merge(&all, &global.v[i]);
    for (const rt__cli_cmd *d = cmds; d->name; d++) {
        cmp_flags fs = {0};
        cmp_table(d->opts, &fs);
        for (int i = 0; i < fs.n; i++) cmp_merge(&all, &fs.v[i]);
    }

    fprintf(out,
                   "# bash completion for %s (ratchet %s): commands, their flags and the\n"
                   "# jobs built into it. Load it with:  source <(%s completion bash)\n"
                   "%s() {\n"
                   "    local cur=${COMP_WORDS[COMP_CWORD]} prev= cmd= words i j npos=0\n"
                   "    local jobs='",
                   base, RT_VERSION, base, fn);
    bool first = true;
    for (int i = 0; jobs && jobs[i]; i++) {
        if (!cmp_safe_word(jobs[i]->name)) continue;
        fprintf(out, "%s%s", first ? "" : " ", jobs[i]->name);
        first = false;
    }
    fputs("'\n"
                      "    ((COMP_CWORD > 0)) && prev=${COMP_WORDS[COMP_CWORD-1]}\n"
                      "    # --flag=value arrives as three words: --flag = value\n"
                      "    if [[ $cur == = ]]; then cur=\n"
                      "    elif [[ $prev == = ]] && ((COMP_CWORD > 1)); then "
                      "prev=${COMP_WORDS[COMP_CWORD-2]}; fi\n"
                      "    for ((i = 1; i < COMP_CWORD; i++)); do\n"
                      "        case ${COMP_WORDS[i]} in\n", out);
    /* Before the command only global flags may stand. */
    bool any = false;
    for (int i = 0; i < global.n; i++) {
        if (!global.v[i].value) continue;
        fprintf(out, "%s%s", any ? "|" : "        ", global.v[i].name);
        any = true;
    }
    if (any)
        fputs(") [[ ${COMP_WORDS[i+1]} == = ]] && ((i++)); ((i++)) ;;\n", out);
    fputs("        -*|=) ;;\n"
                      "        *) cmd=${COMP_WORDS[i]}; break ;;\n"
                      "        esac\n"
                      "    done\n"
                      "    # positional arguments after the command, flag values left out\n"
                      "    for ((j = i + 1; j < COMP_CWORD; j++)); do\n"
                      "        case ${COMP_WORDS[j]} in\n", out);
    any = false;
    for (int i = 0; i < all.n; i++) {
        if (!all.v[i].value) continue;
        fprintf(out, "%s%s", any ? "|" : "        ", all.v[i].name);
        any = true;
    }
    if (any)
        fputs(") [[ ${COMP_WORDS[j+1]} == = ]] && ((j++)); ((j++)) ;;\n", out);
    fputs("        -*|=) ;;\n"
                      "        *) ((npos++)) ;;\n"
                      "        esac\n"
                      "    done\n"
                      "    case $prev in\n", out);
    /* A flag's value: its choices, job names, or nothing to offer. */
    for (int i = 0; i < all.n; i++)
        if (all.v[i].choices[0])
            fprintf(out,
                           "    %s) COMPREPLY=($(compgen -W '%s' -- \"$cur\")); "
                           "return 0 ;;\n",
                           all.v[i].name, all.v[i].choices);
    for (int i = 0; i < all.n; i++)
        if (all.v[i].jobs && !all.v[i].choices[0])
            fprintf(out,
                           "    %s) COMPREPLY=($(compgen -W \"$jobs\" -- \"$cur\")); "
                           "return 0 ;;\n",
                           all.v[i].name);
    any = false;
    for (int i = 0; i < all.n; i++) {
        if (!all.v[i].value || all.v[i].jobs || all.v[i].choices[0]) continue;
        fprintf(out, "%s%s", any ? "|" : "    ", all.v[i].name);
        any = true;
    }
    if (any) fputs(") COMPREPLY=(); return 0 ;;\n", out);
    fputs("    esac\n"
                      "    case $cmd in\n"
                      "    '')\n"
                      "        words='", out);
    cmp_names(out, &global);
    fputs("'\n        [[ $cur == -* ]] || words='", out);
    for (const rt__cli_cmd *d = cmds; d->name; d++) fprintf(out, "%s ", d->name);
    fputs("help' ;;\n    help)\n        ((npos > 0)) && words= || words='", out);
    for (const rt__cli_cmd *d = cmds; d->name; d++)
        fprintf(out, "%s%s", d == cmds ? "" : " ", d->name);
    fputs("' ;;\n", out);
    for (const rt__cli_cmd *d = cmds; d->name; d++) {
        cmp_flags fs = {0};
        for (int i = 0; d->db && i < global.n; i++)
            if (global.v[i].value) cmp_merge(&fs, &global.v[i]);
        cmp_table(d->opts, &fs);
        cmp_flag help = {.name = "--help"};
        cmp_merge(&fs, &help);
        char lit[96];
        const char *pos = cmp_positional(d, lit, sizeof lit);
        fprintf(out, "    %s)\n        words='", d->name);
        cmp_names(out, &fs);
        fputs("'\n", out);
        if (pos && !strcmp(pos, "jobs"))
            fputs("        [[ $cur == -* ]] || { ((npos > 0)) && words= || "
                              "words=$jobs; } ;;\n", out);
        else if (pos)
            fprintf(out, "        [[ $cur == -* ]] || { ((npos > 0)) && words= || "
                                "words='%s'; } ;;\n", lit);
        else
            fputs("        [[ $cur == -* ]] || words= ;;\n", out);
    }
    fprintf(out,
                   "    *) words= ;;\n"
                   "    esac\n"
                   "    COMPREPLY=($(compgen -W \"$words\" -- \"$cur\"))\n"
                   "    return 0\n"
                   "}\n"
                   "complete -F %s %s\n",
                   fn, base);
}
