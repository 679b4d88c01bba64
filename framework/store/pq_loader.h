/*
 * pq_loader.h — libpq, loaded with dlopen() when a PostgreSQL URL is first
 * parsed, opened or wrapped, never at process start: a run on SQLite does
 * not map libpq and the ~20 libraries it pulls in (Kerberos, LDAP,
 * OpenSSL ...), which cost ~9 ms and most of the RSS of every start.
 *
 * It includes <libpq-fe.h> (the types, and the prototypes the pointers are
 * typed from); after it, each PQ* function ratchet calls names a pointer of
 * the table rt__pq, so the calls read as written. Call rt__pq_load() first
 * on every path that can reach libpq without an open store (the URL check,
 * so pg_open too, and pg_wrap).
 */
#ifndef RT_PQ_LOADER_H
#define RT_PQ_LOADER_H

#include <libpq-fe.h>
#include <stddef.h>

/* Every libpq function ratchet calls; a new call needs its line here. */
#define RT_PQ_FUNCS(X)                                                         \
    X(PQcancel) X(PQclear) X(PQcmdStatus) X(PQcmdTuples)                       \
    X(PQconnectdbParams) X(PQconninfoFree) X(PQconninfoParse)                  \
    X(PQconsumeInput) X(PQenterPipelineMode) X(PQerrorMessage) X(PQexec)       \
    X(PQexecPrepared) X(PQexitPipelineMode) X(PQfinish) X(PQflush)             \
    X(PQfreeCancel) X(PQfreemem) X(PQftype) X(PQgetCancel) X(PQgetResult)      \
    X(PQgetisnull) X(PQgetlength) X(PQgetvalue) X(PQnfields) X(PQntuples)      \
    X(PQpipelineSync) X(PQprepare) X(PQresultErrorField) X(PQresultStatus)     \
    X(PQsendPrepare) X(PQsendQueryParams) X(PQsendQueryPrepared)               \
    X(PQsetNoticeProcessor) X(PQsocket) X(PQstatus) X(PQunescapeBytea)

/* The pointers, typed from libpq-fe.h's own declarations. */
struct rt__pq_api {
#define RT_PQ_MEMBER(f) __typeof__(f) *f;
    RT_PQ_FUNCS(RT_PQ_MEMBER)
#undef RT_PQ_MEMBER
};
extern struct rt__pq_api rt__pq;

/*
 * Load libpq once per process (thread-safe; later calls return the first
 * outcome): RATCHET_LIBPQ names the file when set, else "libpq.so.5" (a
 * process already linked with libpq gets that same copy). RT_OK, or RT_CONN
 * (the CLI's exit 1, as for a server it cannot reach) with one line in err
 * ("PostgreSQL support needs libpq (libpq5): ..."); err may be NULL.
 */
int rt__pq_load(char *err, size_t errlen);

#ifndef RT_PQ_LOADER_IMPL
#define PQcancel rt__pq.PQcancel
#define PQclear rt__pq.PQclear
#define PQcmdStatus rt__pq.PQcmdStatus
#define PQcmdTuples rt__pq.PQcmdTuples
#define PQconnectdbParams rt__pq.PQconnectdbParams
#define PQconninfoFree rt__pq.PQconninfoFree
#define PQconninfoParse rt__pq.PQconninfoParse
#define PQconsumeInput rt__pq.PQconsumeInput
#define PQenterPipelineMode rt__pq.PQenterPipelineMode
#define PQerrorMessage rt__pq.PQerrorMessage
#define PQexec rt__pq.PQexec
#define PQexecPrepared rt__pq.PQexecPrepared
#define PQexitPipelineMode rt__pq.PQexitPipelineMode
#define PQfinish rt__pq.PQfinish
#define PQflush rt__pq.PQflush
#define PQfreeCancel rt__pq.PQfreeCancel
#define PQfreemem rt__pq.PQfreemem
#define PQftype rt__pq.PQftype
#define PQgetCancel rt__pq.PQgetCancel
#define PQgetResult rt__pq.PQgetResult
#define PQgetisnull rt__pq.PQgetisnull
#define PQgetlength rt__pq.PQgetlength
#define PQgetvalue rt__pq.PQgetvalue
#define PQnfields rt__pq.PQnfields
#define PQntuples rt__pq.PQntuples
#define PQpipelineSync rt__pq.PQpipelineSync
#define PQprepare rt__pq.PQprepare
#define PQresultErrorField rt__pq.PQresultErrorField
#define PQresultStatus rt__pq.PQresultStatus
#define PQsendPrepare rt__pq.PQsendPrepare
#define PQsendQueryParams rt__pq.PQsendQueryParams
#define PQsendQueryPrepared rt__pq.PQsendQueryPrepared
#define PQsetNoticeProcessor rt__pq.PQsetNoticeProcessor
#define PQsocket rt__pq.PQsocket
#define PQstatus rt__pq.PQstatus
#define PQunescapeBytea rt__pq.PQunescapeBytea
#endif

#endif
