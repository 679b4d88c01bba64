/*
 * pq_loader.c — loads libpq on first use (pq_loader.h says why): dlopen,
 * then dlsym of every function ratchet calls, once per process. A missing
 * library or symbol becomes one line for the caller to show; nothing is
 * retried, so every later PostgreSQL URL gets the same answer at once.
 *
 * GnuTLS comes along (libpq -> libldap -> libgnutls) and initialises
 * itself in a constructor the moment it is mapped, unless
 * GNUTLS_NO_IMPLICIT_INIT=1 is in the environment. Nothing here uses it:
 * PostgreSQL's TLS is OpenSSL's, and libldap (libpq's LDAP service
 * lookups) calls gnutls_global_init() itself before it starts TLS. That
 * constructor was measured at ~0.85 MiB of a PostgreSQL run's peak RSS and
 * ~0.8 M instructions of its start (docs/BENCHMARKS.md), so the dlopen sees
 * an environment with that one entry added (pq_dlopen).
 */
#define _POSIX_C_SOURCE 200809L
#define RT_PQ_LOADER_IMPL
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"
#include "store/pq_loader.h"

struct rt__pq_api rt__pq;

static pthread_once_t pq_once = PTHREAD_ONCE_INIT;
static bool pq_loaded;
static char pq_error[512];

static void pq_fail(const char *what) {
    const char *why = dlerror();
    snprintf(pq_error, sizeof pq_error, "PostgreSQL support needs libpq%s "
             "(libpq5): %s", what, why ? why : "unknown error");
    /* dlerror text is one line already; make sure of it. */
    for (char *p = pq_error; *p; p++)
        if (*p == '\n' || *p == '\r') *p = ' ';
}

extern char **environ; /* POSIX: the program declares it */

/* Kept for good: another thread's getenv may still be reading it. */
static char **pq_environ;

/*
 * dlopen with GNUTLS_NO_IMPLICIT_INIT=1 added to the environment while it
 * runs (see the top), unless the variable is set already: the user's own
 * choice, and GNUTLS_NO_IMPLICIT_INIT=0 keeps GnuTLS's implicit start. The
 * environment is swapped by assigning environ, which POSIX allows, rather
 * than by setenv: a getenv on another thread meanwhile reads either array,
 * both valid, and nothing is reallocated under it. Should another thread
 * setenv in that window, its new array (a copy of ours) stays, minus our
 * entry. If GnuTLS was loaded before, its constructor ran then, and this
 * changes nothing. What could notice: code that loads GnuTLS later and
 * uses it without gnutls_global_init(), which GnuTLS has not required
 * since 3.3 — it would get GNUTLS_E_LIB_IN_ERROR_STATE.
 */
static void *pq_dlopen(const char *file) {
    static char no_init[] = "GNUTLS_NO_IMPLICIT_INIT=1";
    char **saved = environ;
    size_t n = 0;
    if (!getenv("GNUTLS_NO_IMPLICIT_INIT")) {
        while (saved && saved[n]) n++;
        pq_environ = malloc((n + 2) * sizeof *pq_environ);
    }
    if (!pq_environ) return dlopen(file, RTLD_NOW | RTLD_LOCAL);
    if (n) memcpy(pq_environ, saved, n * sizeof *pq_environ);
    pq_environ[n] = no_init;
    pq_environ[n + 1] = NULL;
    environ = pq_environ;
    void *h = dlopen(file, RTLD_NOW | RTLD_LOCAL);
    if (environ == pq_environ)
        environ = saved;
    else /* a setenv elsewhere copied ours meanwhile */
        unsetenv("GNUTLS_NO_IMPLICIT_INIT");
    return h;
}

static void pq_load_once(void) {
    const char *file = getenv("RATCHET_LIBPQ");
    if (!file || !*file) file = "libpq.so.5";
    /* Never closed: the pointers are used until exit. */
    void *h = pq_dlopen(file);
    if (!h) {
        pq_fail("");
        return;
    }
    struct rt__pq_api api;
    /* POSIX guarantees a dlsym'd function pointer converts back. */
#define RT_PQ_SYM(f)                                                           \
    if (!(api.f = (__typeof__(f) *)dlsym(h, #f))) {                            \
        pq_fail(" 14 or later");                                               \
        dlclose(h);                                                            \
        return;                                                                \
    }
    RT_PQ_FUNCS(RT_PQ_SYM)
#undef RT_PQ_SYM
    rt__pq = api;
    pq_loaded = true;
}

int rt__pq_load(char *err, size_t errlen) {
    pthread_once(&pq_once, pq_load_once);
    if (pq_loaded) return RT_OK;
    if (err && errlen) snprintf(err, errlen, "%s", pq_error);
    return RT_CONN;
}
