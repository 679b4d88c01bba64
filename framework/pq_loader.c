/*
 * pq_loader.c — loads libpq on first use (pq_loader.h says why): dlopen,
 * then dlsym of every function ratchet calls, once per process. A missing
 * library or symbol becomes one line for the caller to show; nothing is
 * retried, so every later PostgreSQL URL gets the same answer at once.
 */
#define _POSIX_C_SOURCE 200809L
#define RT_PQ_LOADER_IMPL
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "internal.h"
#include "pq_loader.h"

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

static void pq_load_once(void) {
    const char *file = getenv("RATCHET_LIBPQ");
    if (!file || !*file) file = "libpq.so.5";
    /* Never closed: the pointers are used until exit. */
    void *h = dlopen(file, RTLD_NOW | RTLD_LOCAL);
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
