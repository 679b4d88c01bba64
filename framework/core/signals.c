/*
 * signals.c — stop requests and the stop deadline.
 *
 * SIGTERM and SIGINT only set rt__stop_flag (the runner acts on it between
 * items, at a safe point) and arm a one-shot timer for the grace period. When
 * the running step is atomic the handler also interrupts the database call in
 * flight, so the step's transaction rolls back at once instead of finishing
 * work that would be thrown away.
 *
 * The timer's SIGALRM handler is the deadline: it interrupts the database call
 * in flight (rt__store_interrupt: SQLite's interrupt, PQcancel with a local
 * buffer — both safe in a handler), writes one line with write(2) and calls
 * _exit(75). Whatever was not committed is rolled back by the database
 * itself, which is always safe.
 * A repeated signal changes nothing: the first one set the deadline.
 *
 * From the first instruction: rt_main blocks SIGTERM and SIGINT before it
 * does anything else (rt__signals_hold), and `run`, `worker` and `daemon`
 * install the handlers with the default grace as soon as the command is
 * known, then unblock them: a signal that came meanwhile, or before exec
 * (a parent that forks with them blocked, as rt__fork_tied does), lands in
 * the handler then. --grace, parsed later, moves the deadline of a stop
 * that already came (rt__signals_grace). Other commands get the mask they
 * started with back (rt__signals_release) and keep the default actions.
 *
 * The interrupt itself may hang: PQcancel opens a connection to the server
 * and waits for the server to close it, which never happens when the
 * network black-holes the traffic or the server hangs. So the deadline
 * re-arms the timer before it interrupts, and SIGALRM stays deliverable in
 * its own handler (SA_NODEFER): if the interrupt has not returned
 * SIG_INTERRUPT_WAIT_MS later, the handler runs again, nested, skips the
 * interrupt and exits. The exit comes at most that long after the grace.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include "core/core.h"

volatile sig_atomic_t rt__stop_flag = 0;
volatile sig_atomic_t rt__stop_signal = 0;

static rt_store *volatile sig_store;
static volatile sig_atomic_t sig_atomic_step;
static timer_t sig_timer;
static bool sig_timer_ok;
static int64_t sig_grace_ms;
static volatile int64_t sig_stop_ns; /* CLOCK_MONOTONIC of the first stop */
static sigset_t sig_held_old; /* the mask before rt__signals_hold */
static bool sig_held;
static int sig_deadline_code = RT_EXIT_INTERRUPTED;
static bool sig_installed;

/* Async-signal-safe decimal formatting. */
static char *sig_utoa(char *p, uint64_t v, int width) {
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v && n < 23);
    while (n < width) tmp[n++] = '0';
    while (n) *p++ = tmp[--n];
    return p;
}

static char *sig_puts(char *p, const char *s) {
    while (*s) *p++ = *s++;
    return p;
}

/* ISO-8601 UTC from the epoch, by civil-from-days arithmetic (no gmtime). */
static char *sig_iso8601(char *p) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t secs = ts.tv_sec, days = secs / 86400, rem = secs % 86400;
    int64_t z = days + 719468, era = z / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int64_t d = doy - (153 * mp + 2) / 5 + 1;
    int64_t m = mp < 10 ? mp + 3 : mp - 9;
    int64_t y = yoe + era * 400 + (m <= 2);
    p = sig_utoa(p, (uint64_t)y, 4);
    *p++ = '-';
    p = sig_utoa(p, (uint64_t)m, 2);
    *p++ = '-';
    p = sig_utoa(p, (uint64_t)d, 2);
    *p++ = 'T';
    p = sig_utoa(p, (uint64_t)(rem / 3600), 2);
    *p++ = ':';
    p = sig_utoa(p, (uint64_t)(rem / 60 % 60), 2);
    *p++ = ':';
    p = sig_utoa(p, (uint64_t)(rem % 60), 2);
    *p++ = '.';
    p = sig_utoa(p, (uint64_t)(ts.tv_nsec / 1000000), 3);
    *p++ = 'Z';
    return p;
}

#define SIG_INTERRUPT_WAIT_MS 1000

/* Arm the one-shot deadline timer ms from now (async-signal-safe). */
static void sig_arm(int64_t ms) {
    if (!sig_timer_ok) return;
    struct itimerspec its;
    memset(&its, 0, sizeof its);
    its.it_value.tv_sec = ms / 1000;
    its.it_value.tv_nsec = (long)(ms % 1000) * 1000000;
    if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0)
        its.it_value.tv_nsec = 1;
    timer_settime(sig_timer, 0, &its, NULL);
}

static int64_t sig_mono_ns(void) { /* clock_gettime is async-signal-safe */
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void sig_on_stop(int sig) {
    int saved = errno;
    if (!rt__stop_flag) {
        sig_stop_ns = sig_mono_ns();
        rt__stop_flag = 1;
        rt__stop_signal = sig;
        sig_arm(sig_grace_ms);
    }
    rt_store *s = sig_store;
    if (s && sig_atomic_step) rt__store_interrupt(s);
    errno = saved;
}

static volatile sig_atomic_t sig_deadline_hit;

static void sig_on_deadline(int sig) {
    (void)sig;
    rt_store *s = sig_store;
    bool first = !sig_deadline_hit;
    sig_deadline_hit = 1;
    if (first && s) {
        sig_arm(SIG_INTERRUPT_WAIT_MS); /* this handler again, nested */
        rt__store_interrupt(s);
    }
    char line[320], *p = line;
    bool json = rt__log_json();
    if (json) {
        p = sig_puts(p, "{\"ts\":\"");
        p = sig_iso8601(p);
        p = sig_puts(p, "\",\"level\":\"error\",\"event\":\"deadline\",\"msg\":\"");
    } else {
        p = sig_puts(p, "\r\033[K");
        p = sig_iso8601(p);
        p = sig_puts(p, " error deadline: ");
    }
    p = sig_puts(p, "stop deadline of ");
    p = sig_utoa(p, (uint64_t)sig_grace_ms, 1);
    p = sig_puts(p, " ms passed");
    if (!first) {
        p = sig_puts(p, " and the database did not answer the interrupt within ");
        p = sig_utoa(p, SIG_INTERRUPT_WAIT_MS, 1);
        p = sig_puts(p, " ms");
    }
    p = sig_puts(p, json ? "; exiting, uncommitted work rolls back\"}\n"
                         : "; exiting, uncommitted work rolls back\n");
    ssize_t w = write(STDERR_FILENO, line, (size_t)(p - line));
    (void)w;
    _exit(sig_deadline_code);
}

void rt__signals_deadline_code(int code) { sig_deadline_code = code; }

/* SIGTERM and SIGINT, the stop signals. */
static void sig_stop_set(sigset_t *set) {
    sigemptyset(set);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGINT);
}

void rt__signals_hold(void) {
    sigset_t stop;
    sig_stop_set(&stop);
    sigprocmask(SIG_BLOCK, &stop, &sig_held_old);
    sig_held = true;
}

void rt__signals_release(void) {
    if (sig_held) sigprocmask(SIG_SETMASK, &sig_held_old, NULL);
    sig_held = false;
}

/* The stop signals delivered from now on: one pending lands here. */
static void sig_unblock(void) {
    sigset_t stop;
    sig_stop_set(&stop);
    sigprocmask(SIG_UNBLOCK, &stop, NULL);
    sig_held = false;
}

/* The deadline timer of this process (a child of fork has none). */
static void sig_timer_new(void) {
    struct sigevent sev;
    memset(&sev, 0, sizeof sev);
    sev.sigev_notify = SIGEV_SIGNAL;
    sev.sigev_signo = SIGALRM;
    sig_timer_ok = timer_create(CLOCK_MONOTONIC, &sev, &sig_timer) == 0;
}

/*
 * The grace is grace_ms from now on; a stop that came already gets its
 * deadline grace_ms after it came (at once if that has passed). The stop
 * signals are blocked meanwhile, so the handler cannot arm the timer
 * between the two.
 */
static void sig_set_grace(int64_t grace_ms) {
    sigset_t stop, old;
    sig_stop_set(&stop);
    sigprocmask(SIG_BLOCK, &stop, &old);
    sig_grace_ms = grace_ms;
    if (rt__stop_flag && !sig_deadline_hit) {
        int64_t left = grace_ms - (sig_mono_ns() - sig_stop_ns) / 1000000;
        sig_arm(left > 0 ? left : 0);
    }
    sigprocmask(SIG_SETMASK, &old, NULL);
}

void rt__signals_grace(int64_t grace_ms) { sig_set_grace(grace_ms); }

int rt__signals_install(int64_t grace_ms) {
    if (sig_installed) {
        sig_set_grace(grace_ms);
        sig_unblock();
        return sig_timer_ok ? RT_OK : RT_DBERR;
    }
    sig_grace_ms = grace_ms;
    sig_deadline_hit = 0;
    rt__store_on_stop(&rt__stop_flag);
    /* The timer first: a stop that lands the moment the handler is in
     * arms it. */
    sig_timer_new();
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sa.sa_handler = sig_on_stop;
    sigaddset(&sa.sa_mask, SIGTERM);
    sigaddset(&sa.sa_mask, SIGINT);
    if (sigaction(SIGTERM, &sa, NULL) || sigaction(SIGINT, &sa, NULL))
        return RT_DBERR;
    sa.sa_handler = sig_on_deadline;
    sa.sa_flags = SA_RESTART | SA_NODEFER; /* nested when the interrupt hangs */
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGALRM, &sa, NULL)) return RT_DBERR;
    sig_installed = true;
    sig_unblock();
    return sig_timer_ok ? RT_OK : RT_DBERR;
}

int rt__signals_child(int64_t grace_ms) {
    /* The parent's timer is not inherited; a stop inherited (the flag) or
     * come since the fork (blocked) gets its deadline from here. */
    sig_timer_new();
    sig_deadline_hit = 0;
    if (rt__stop_flag) sig_stop_ns = sig_mono_ns();
    sig_set_grace(grace_ms);
    sig_unblock();
    return sig_timer_ok ? RT_OK : RT_DBERR;
}

void rt__signals_store(rt_store *s) { sig_store = s; }

void rt__signals_atomic(bool atomic) { sig_atomic_step = atomic; }

bool rt__signals_atomic_stopped(void) {
    return rt__stop_flag && sig_atomic_step;
}

pid_t rt__fork_tied(void) {
    pid_t parent = getpid();
    /* The child starts with the stop signals blocked, so that one sent
     * before it handles them (rt__signals_child, or rt_main after exec)
     * waits for the handler instead of killing it. */
    sigset_t stop, old;
    sig_stop_set(&stop);
    sigprocmask(SIG_BLOCK, &stop, &old);
    pid_t pid = fork();
    if (pid != 0) {
        sigprocmask(SIG_SETMASK, &old, NULL);
        return pid;
    }
#ifdef __linux__
    prctl(PR_SET_PDEATHSIG, SIGTERM);
#endif
    if (getppid() != parent) _exit(RT_EXIT_OK); /* it died meanwhile */
    sigprocmask(SIG_SETMASK, &stop, NULL);
    return 0;
}
