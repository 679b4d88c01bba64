/*
 * fuzz_steps.c — a run's step list as stored in the database (names joined
 * by '\n'; read back on every resume, and it may have been written by an
 * older build or by hand) compared with the job's: the words
 * rt__runner_describe_change finds for the difference. Invariants: some
 * words always, both ways round; a list compared with itself plus one new
 * step appended names that step as added.
 * Input: the stored list, a NUL byte, the job's list (when there is no NUL,
 * the job's list is "a\nb\nc").
 */
#define _POSIX_C_SOURCE 200809L
#include "fuzz.h"
#include "service/service.h"

static void fuzz_describe(const char *was, const char *now, rt__buf *out) {
    out->len = 0;
    if (out->p) out->p[0] = '\0';
    rt__runner_describe_change(was, now, out);
    FUZZ_CHECK(out->p && out->len > 0 && strlen(out->p) == out->len,
               "'%s' -> '%s': no words", was, now);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 4096) return 0;
    const uint8_t *nul = memchr(data, 0, size);
    char *was = fuzz_str(data, nul ? (size_t)(nul - data) : size);
    char *now = nul ? fuzz_str(nul + 1, size - (size_t)(nul - data) - 1) : strdup("a\nb\nc");
    rt__buf out = {0};
    fuzz_describe(was, now, &out);
    fuzz_describe(now, was, &out);
    /* one step appended (a name no list has) */
    size_t n = strlen(was);
    char *more = malloc(n + 16);
    if (!more) abort();
    snprintf(more, n + 16, "%s%s\x01zz", was, *was ? "\n" : "");
    fuzz_describe(was, more, &out);
    if (!strstr(was, "\x01zz"))
        FUZZ_CHECK(strstr(out.p, "step '\x01zz' was added"), "'%s' -> '%s': '%s'", was, more,
                   out.p);
    rt__buf_free(&out);
    free(more);
    free(was);
    free(now);
    return 0;
}
