/*
 * completion.c — `ratchet completion bash`: writes a bash completion script
 * for the program. Nothing is listed twice: the commands and each command's
 * flags are read from the CLI's own usage texts (see cmp_scan: a flag takes
 * a value when its usage shows one, `--key K`; `--if-running fail|skip|wait`
 * lists its choices), and the job names are the ones compiled into the
 * binary, so completing needs no process and no database.
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
 * command shows it, and takes a value if any usage shows one.
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

/* The flags in the line of len bytes at line (see cmp_scan). */
static void cmp_scan_line(const char *line, size_t len, cmp_flags *fs) {
    const char *end = line + len;
    for (const char *p = line; p + 2 < end; p++) {
        if (p[0] != '-' || p[1] != '-' || !(p[2] >= 'a' && p[2] <= 'z') ||
            (p > line && (cmp_is_name(p[-1]) || p[-1] == '_')))
            continue;
        cmp_flag f;
        memset(&f, 0, sizeof f);
        size_t n = 2;
        while (p + n < end && cmp_is_name(p[n])) n++;
        if (n >= sizeof f.name) continue;
        memcpy(f.name, p, n);
        const char *v = p + n; /* what follows the name */
        p += n - 1;
        if (v < end && *v == ' ' && v + 1 < end) {
            const char *w = v + 1 + (v[1] == '[');
            if (*w >= 'A' && *w <= 'Z') {
                f.value = true;
                f.jobs = end - w >= 3 && !strncmp(w, "JOB", 3) &&
                         (end - w == 3 || strchr(" ,]", w[3]));
            } else if (*w >= 'a' && *w <= 'z') {
                size_t k = 0, bars = 0;
                while (w + k < end && (cmp_is_name(w[k]) || w[k] == '|'))
                    bars += w[k++] == '|';
                if (bars > 0 && k < sizeof f.choices) {
                    f.value = true;
                    memcpy(f.choices, w, k);
                    for (char *c = f.choices; *c; c++)
                        if (*c == '|') *c = ' ';
                }
            }
        }
        cmp_merge(fs, &f);
    }
}

/*
 * The flags a usage text shows: every --name in its synopsis (the lines up
 * to the first empty one) and in its option lines (those that begin with
 * "  --"); prose that mentions another command's flag does not count.
 * What follows a flag says whether it takes a value: an upper-case word
 * (`--limit N`, `[ADDR:]PORT`), or lower-case words joined by '|'
 * (`fail|skip|wait`: the choices).
 */
static void cmp_scan(const char *usage, cmp_flags *fs) {
    bool synopsis = true;
    for (const char *line = usage; *line;) {
        size_t len = strcspn(line, "\n");
        if (len == 0) synopsis = false;
        if (synopsis || !strncmp(line, "  --", 4))
            cmp_scan_line(line, len, fs);
        line += len + (line[len] == '\n');
    }
}

/*
 * What a command's first positional argument is, from its usage line
 * (`usage: ratchet [--db URL] run JOB ...`): job names for JOB or [JOB],
 * the words of a literal (`bash`, `a|b`), else nothing (NULL).
 */
static const char *cmp_positional(const char *usage, const char *name,
                                  char *words, size_t wlen) {
    const char *end = strchr(usage, '\n');
    size_t nlen = strlen(name);
    if (!end) end = usage + strlen(usage);
    for (const char *p = usage; p + nlen < end; p++) {
        if (p == usage || p[-1] != ' ' || strncmp(p, name, nlen) || p[nlen] != ' ')
            continue;
        const char *a = p + nlen + 1;
        size_t k = 0;
        while (a + k < end && a[k] != ' ') k++;
        if ((k == 3 && !strncmp(a, "JOB", 3)) || (k == 5 && !strncmp(a, "[JOB]", 5)))
            return "jobs";
        if (k == 0 || k >= wlen || !(a[0] >= 'a' && a[0] <= 'z')) return NULL;
        for (size_t i = 0; i < k; i++) {
            if (!cmp_is_name(a[i]) && a[i] != '|') return NULL;
            words[i] = a[i] == '|' ? ' ' : a[i];
        }
        words[k] = '\0';
        return "words";
    }
    return NULL;
}

/* The flag names of fs, space-separated. */
static void cmp_names(rt__buf *out, const cmp_flags *fs) {
    for (int i = 0; i < fs->n; i++) {
        if (i) rt__buf_puts(out, " ");
        rt__buf_puts(out, fs->v[i].name);
    }
}

void rt__completion_bash(rt__buf *out, const char *prog, const char *options,
                         const rt__cli_doc *cmds, const rt_job *const *jobs) {
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
    cmp_scan(options, &global);
    for (int i = 0; i < global.n; i++) cmp_merge(&all, &global.v[i]);
    for (const rt__cli_doc *d = cmds; d->name; d++) {
        cmp_flags fs = {0};
        cmp_scan(d->usage, &fs);
        for (int i = 0; i < fs.n; i++) cmp_merge(&all, &fs.v[i]);
    }

    rt__buf_printf(out,
                   "# bash completion for %s (ratchet %s): commands, their flags and the\n"
                   "# jobs built into it. Load it with:  source <(%s completion bash)\n"
                   "%s() {\n"
                   "    local cur=${COMP_WORDS[COMP_CWORD]} prev= cmd= words i j npos=0\n"
                   "    local jobs='",
                   base, RT_VERSION, base, fn);
    bool first = true;
    for (int i = 0; jobs && jobs[i]; i++) {
        if (!cmp_safe_word(jobs[i]->name)) continue;
        rt__buf_printf(out, "%s%s", first ? "" : " ", jobs[i]->name);
        first = false;
    }
    rt__buf_puts(out, "'\n"
                      "    ((COMP_CWORD > 0)) && prev=${COMP_WORDS[COMP_CWORD-1]}\n"
                      "    # --flag=value arrives as three words: --flag = value\n"
                      "    if [[ $cur == = ]]; then cur=\n"
                      "    elif [[ $prev == = ]] && ((COMP_CWORD > 1)); then "
                      "prev=${COMP_WORDS[COMP_CWORD-2]}; fi\n"
                      "    for ((i = 1; i < COMP_CWORD; i++)); do\n"
                      "        case ${COMP_WORDS[i]} in\n");
    /* Before the command only global flags may stand. */
    bool any = false;
    for (int i = 0; i < global.n; i++) {
        if (!global.v[i].value) continue;
        rt__buf_printf(out, "%s%s", any ? "|" : "        ", global.v[i].name);
        any = true;
    }
    if (any)
        rt__buf_puts(out, ") [[ ${COMP_WORDS[i+1]} == = ]] && ((i++)); ((i++)) ;;\n");
    rt__buf_puts(out, "        -*|=) ;;\n"
                      "        *) cmd=${COMP_WORDS[i]}; break ;;\n"
                      "        esac\n"
                      "    done\n"
                      "    # positional arguments after the command, flag values left out\n"
                      "    for ((j = i + 1; j < COMP_CWORD; j++)); do\n"
                      "        case ${COMP_WORDS[j]} in\n");
    any = false;
    for (int i = 0; i < all.n; i++) {
        if (!all.v[i].value) continue;
        rt__buf_printf(out, "%s%s", any ? "|" : "        ", all.v[i].name);
        any = true;
    }
    if (any)
        rt__buf_puts(out, ") [[ ${COMP_WORDS[j+1]} == = ]] && ((j++)); ((j++)) ;;\n");
    rt__buf_puts(out, "        -*|=) ;;\n"
                      "        *) ((npos++)) ;;\n"
                      "        esac\n"
                      "    done\n"
                      "    case $prev in\n");
    /* A flag's value: its choices, job names, or nothing to offer. */
    for (int i = 0; i < all.n; i++)
        if (all.v[i].choices[0])
            rt__buf_printf(out,
                           "    %s) COMPREPLY=($(compgen -W '%s' -- \"$cur\")); "
                           "return 0 ;;\n",
                           all.v[i].name, all.v[i].choices);
    for (int i = 0; i < all.n; i++)
        if (all.v[i].jobs && !all.v[i].choices[0])
            rt__buf_printf(out,
                           "    %s) COMPREPLY=($(compgen -W \"$jobs\" -- \"$cur\")); "
                           "return 0 ;;\n",
                           all.v[i].name);
    any = false;
    for (int i = 0; i < all.n; i++) {
        if (!all.v[i].value || all.v[i].jobs || all.v[i].choices[0]) continue;
        rt__buf_printf(out, "%s%s", any ? "|" : "    ", all.v[i].name);
        any = true;
    }
    if (any) rt__buf_puts(out, ") COMPREPLY=(); return 0 ;;\n");
    rt__buf_puts(out, "    esac\n"
                      "    case $cmd in\n"
                      "    '')\n"
                      "        words='");
    cmp_names(out, &global);
    rt__buf_puts(out, "'\n        [[ $cur == -* ]] || words='");
    for (const rt__cli_doc *d = cmds; d->name; d++) rt__buf_printf(out, "%s ", d->name);
    rt__buf_puts(out, "help' ;;\n    help)\n        ((npos > 0)) && words= || words='");
    for (const rt__cli_doc *d = cmds; d->name; d++)
        rt__buf_printf(out, "%s%s", d == cmds ? "" : " ", d->name);
    rt__buf_puts(out, "' ;;\n");
    for (const rt__cli_doc *d = cmds; d->name; d++) {
        cmp_flags fs = {0};
        cmp_scan(d->usage, &fs);
        cmp_flag help = {.name = "--help"};
        cmp_merge(&fs, &help);
        char lit[96];
        const char *pos = cmp_positional(d->usage, d->name, lit, sizeof lit);
        rt__buf_printf(out, "    %s)\n        words='", d->name);
        cmp_names(out, &fs);
        rt__buf_puts(out, "'\n");
        if (pos && !strcmp(pos, "jobs"))
            rt__buf_puts(out, "        [[ $cur == -* ]] || { ((npos > 0)) && words= || "
                              "words=$jobs; } ;;\n");
        else if (pos)
            rt__buf_printf(out, "        [[ $cur == -* ]] || { ((npos > 0)) && words= || "
                                "words='%s'; } ;;\n", lit);
        else
            rt__buf_puts(out, "        [[ $cur == -* ]] || words= ;;\n");
    }
    rt__buf_printf(out,
                   "    *) words= ;;\n"
                   "    esac\n"
                   "    COMPREPLY=($(compgen -W \"$words\" -- \"$cur\"))\n"
                   "    return 0\n"
                   "}\n"
                   "complete -F %s %s\n",
                   fn, base);
}
