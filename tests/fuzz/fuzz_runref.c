/*
 * fuzz_runref.c — RUN as `ratchet retry RUN` and `ratchet cancel RUN` take
 * it: rt__run_ref_parse. Invariants: a run id is all digits and > 0; a
 * JOB/KEY reference splits at the first '/' into a non-empty job and key
 * that put back together give the text; a refusal is RT_INVALID with a
 * message and nothing allocated.
 * Input: the text.
 */
#include "fuzz.h"
#include "service/service.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 4096) return 0;
    char *text = fuzz_str(data, size);
    rt__run_ref ref;
    char err[512] = "";
    int rc = rt__run_ref_parse(text, &ref, err, sizeof err);
    if (rc != RT_OK) {
        FUZZ_CHECK(rc == RT_INVALID && *err && !ref.job && !ref.key && ref.id == 0,
                   "'%s': rc %d", text, rc);
    } else if (ref.id > 0) {
        FUZZ_CHECK(!ref.job && !ref.key && strspn(text, "0123456789") == strlen(text),
                   "'%s': id %lld", text, (long long)ref.id);
        char back[32];
        snprintf(back, sizeof back, "%lld", (long long)ref.id);
        const char *digits = text + strspn(text, "0");
        FUZZ_CHECK(!strcmp(back, digits), "'%s': id %lld", text, (long long)ref.id);
    } else {
        FUZZ_CHECK(ref.id == 0 && ref.job && ref.key && *ref.job && *ref.key &&
                       !strchr(ref.job, '/'),
                   "'%s': job '%s' key '%s'", text, ref.job ? ref.job : "(null)",
                   ref.key ? ref.key : "(null)");
        size_t jl = strlen(ref.job);
        FUZZ_CHECK(!strncmp(text, ref.job, jl) && text[jl] == '/' &&
                       !strcmp(text + jl + 1, ref.key),
                   "'%s': job '%s' key '%s'", text, ref.job, ref.key);
    }
    rt__run_ref_free(&ref);
    free(text);
    return 0;
}
