/*
 * proc.c — the real binary as child processes: spawn it with its output in
 * files, wait for it with a timeout (sleeping on SIGCHLD, which main()
 * keeps blocked, so an exit is seen the instant it happens), and read what
 * /proc says about it (caught signals, children). Every child is recorded
 * until it is reaped, so a failure can stop them all.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "torture.h"

#define PROC_MAX 64
static pid_t live[PROC_MAX];

static void proc_forget(pid_t pid) {
    for (int i = 0; i < PROC_MAX; i++)
        if (live[i] == pid) live[i] = 0;
}

pid_t t_spawn(const t_env *env, const char *url, const char *errpath,
              const char *const *argv, const char *const *extra_env) {
    const char *args[64];
    int n = 0;
    args[n++] = env->bin;
    for (int i = 0; argv && argv[i] && n < 63; i++) args[n++] = argv[i];
    args[n] = NULL;
    char outpath[600];
    snprintf(outpath, sizeof outpath, "%s.out", errpath);
    /* No signal may reach the child before it has default handlers: the
     * driver's own (torture.c) would run in it. */
    sigset_t all, old;
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, &old);
    /* A close-on-exec pipe tells when the child has become the binary:
     * random instants count from there, and before it /proc would show the
     * driver's copy (its handlers, its signal mask). */
    int exec_pipe[2];
    if (pipe2(exec_pipe, O_CLOEXEC) != 0) t_fail("pipe2: %s", strerror(errno));
    pid_t pid = fork();
    if (pid < 0) t_fail("fork: %s", strerror(errno));
    if (pid == 0) {
        close(exec_pipe[0]);
        int o = open(outpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int e = open(errpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (o < 0 || e < 0) _exit(126);
        dup2(o, 1);
        dup2(e, 2);
        close(o);
        close(e);
        if (url) setenv("RATCHET_DB", url, 1);
        setenv("RATCHET_LOG", "json", 1);
        for (int i = 0; extra_env && extra_env[i]; i++) putenv((char *)extra_env[i]);
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        signal(SIGPIPE, SIG_DFL);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        execv(env->bin, (char *const *)args);
        int why = errno;
        ssize_t w = write(exec_pipe[1], &why, sizeof why);
        (void)w;
        _exit(127);
    }
    sigprocmask(SIG_SETMASK, &old, NULL);
    close(exec_pipe[1]);
    int why = 0;
    ssize_t got;
    while ((got = read(exec_pipe[0], &why, sizeof why)) < 0 && errno == EINTR) {
    }
    close(exec_pipe[0]);
    if (got > 0) t_fail("cannot execute %s: %s", env->bin, strerror(why));
    for (int i = 0; i < PROC_MAX; i++)
        if (!live[i]) {
            live[i] = pid;
            break;
        }
    return pid;
}

int t_wait(pid_t pid, int64_t timeout_ms) {
    int64_t deadline = t_now_us() + timeout_ms * 1000;
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    for (;;) {
        int status;
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) {
            proc_forget(pid);
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        }
        if (r < 0) t_fail("waitpid(%d): %s", (int)pid, strerror(errno));
        int64_t left = deadline - t_now_us();
        if (left <= 0) return -1;
        struct timespec ts = {(time_t)(left / 1000000), (long)(left % 1000000) * 1000};
        /* Any child's SIGCHLD wakes us (a pending one at once): look again. */
        sigtimedwait(&chld, NULL, &ts);
    }
}

void t_kill_reap(pid_t pid) {
    if (pid <= 0) return;
    kill(pid, SIGCONT);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    proc_forget(pid);
}

void t_proc_cleanup(void) {
    for (int i = 0; i < PROC_MAX; i++)
        if (live[i]) t_kill_reap(live[i]);
}

/* The value of a "Name:\t..." line of /proc/PID/status (into out). */
static bool proc_status_field(pid_t pid, const char *name, char *out, size_t n) {
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return false;
    bool found = false;
    size_t len = strlen(name);
    while (!found && fgets(line, sizeof line, f))
        if (!strncmp(line, name, len) && line[len] == ':') {
            snprintf(out, n, "%s", line + len + 1);
            found = true;
        }
    fclose(f);
    return found;
}

bool t_alive(pid_t pid) {
    char v[64];
    if (!proc_status_field(pid, "State", v, sizeof v)) return false;
    char state = v[strspn(v, " \t")];
    return state != 'Z' && state != 'X';
}

bool t_await_death(pid_t pid, int64_t timeout_ms) {
    for (int64_t until = t_now_ms() + timeout_ms; t_alive(pid);) {
        if (t_now_ms() > until) return false;
        t_sleep_us(1000);
    }
    return true;
}

bool t_catches(pid_t pid, int sig) {
    char v[64];
    if (!proc_status_field(pid, "SigCgt", v, sizeof v)) return false;
    unsigned long long mask = strtoull(v, NULL, 16);
    return (mask >> (sig - 1)) & 1ULL;
}

int t_children(pid_t pid, pid_t *out, int max) {
    DIR *d = opendir("/proc");
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < max) {
        if (e->d_name[0] < '1' || e->d_name[0] > '9') continue;
        char path[300], buf[512];
        snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        size_t len = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[len] = '\0';
        const char *p = strrchr(buf, ')');
        int ppid = -1;
        char state = '?';
        if (p && sscanf(p + 2, "%c %d", &state, &ppid) == 2 && ppid == pid &&
            state != 'Z')
            out[n++] = (pid_t)atoi(e->d_name);
    }
    closedir(d);
    return n;
}

bool t_stop(pid_t pid) {
    if (kill(pid, SIGSTOP) != 0) t_fail("SIGSTOP %d: %s", (int)pid, strerror(errno));
    /* waitpid(WUNTRACED) would also report an exit; /proc says "T" once
     * the stop has happened, "Z" if the process ended first. */
    for (int64_t until = t_now_ms() + 5000; t_now_ms() < until;) {
        char v[64];
        if (!proc_status_field(pid, "State", v, sizeof v)) return false;
        char state = v[strspn(v, " \t")];
        if (state == 'T') return true;
        if (state == 'Z' || state == 'X') return false;
        t_sleep_us(200);
    }
    t_fail("process %d did not stop within 5 s of SIGSTOP", (int)pid);
}

char *t_slurp(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return strdup("");
    size_t cap = 4096, len = 0, n;
    char *buf = malloc(cap);
    while (buf && (n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (cap - len < 2) buf = realloc(buf, cap *= 2);
    }
    fclose(f);
    if (!buf) t_fail("out of memory");
    buf[len] = '\0';
    return buf;
}

bool t_file_has(const char *path, const char *needle) {
    return t_file_count(path, needle) > 0;
}

int t_file_count(const char *path, const char *needle) {
    char *text = t_slurp(path);
    int n = 0;
    for (const char *p = text; (p = strstr(p, needle)); p++) n++;
    free(text);
    return n;
}

const char *t_file_gist(const char *path) {
    static char out[700];
    char *text = t_slurp(path);
    const char *best = NULL, *last = NULL;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        last = line;
        if (strstr(line, "\"level\":\"error\"")) best = line;
    }
    snprintf(out, sizeof out, "%s: %s", path, best ? best : last ? last : "(empty)");
    free(text);
    return out;
}
