/*
 * fuzz_param.c — `--param NAME=VALUE` (run, enqueue, rt_enqueue): the
 * split and the typed checks of rt__enqueue_params against a job with an
 * int, a real, a bool and a text param, then what a step reads back with
 * rt_param_int64 / _double / _bool; also the strict number parsers alone.
 *
 * Invariants: accepted params are stored with the last value per name;
 * what the check accepts, the step can read as that type (and what it
 * refuses comes with a message); rt__parse_int64 accepts exactly
 * [+-]digits in range and rt__parse_double nothing that starts with white
 * space or is not finite; a bool is one of the documented words.
 * Input: NAME=VALUE lines (the first line of a second job with no declared
 * params: any name is accepted, when it starts with '*').
 */
#define _POSIX_C_SOURCE 200809L
#include <ctype.h>
#include <math.h>
#include <strings.h>

#include "fuzz.h"
#include "service/service.h"

#define FUZZ_MAX_PARAMS 16

static int fuzz_noop(rt_ctx *ctx) {
    (void)ctx;
    return RT_DONE;
}

static const rt_step fuzz_steps[] = {{"only", fuzz_noop}, {NULL, NULL}};

static const rt_param_def fuzz_params[] = {
    {"n", RT_PARAM_INT, "1", "an integer"},
    {"r", RT_PARAM_REAL, NULL, "a number"},
    {"b", RT_PARAM_BOOL, "false", "a bool"},
    {"t", RT_PARAM_TEXT, NULL, "text"},
    {NULL, 0, NULL, NULL},
};

static const rt_job fuzz_typed = {.name = "typed", .steps = fuzz_steps, .params = fuzz_params};
static const rt_job fuzz_open = {.name = "open", .steps = fuzz_steps};

static bool fuzz_int_text(const char *s) {
    if (*s == '+' || *s == '-') s++;
    if (!*s) return false;
    for (; *s; s++)
        if (*s < '0' || *s > '9') return false;
    return true;
}

static void fuzz_numbers(const char *v) {
    int64_t i;
    if (rt__parse_int64(v, &i)) {
        FUZZ_CHECK(fuzz_int_text(v), "int '%s' accepted as %lld", v, (long long)i);
        char back[32];
        snprintf(back, sizeof back, "%lld", (long long)i);
        int64_t j;
        FUZZ_CHECK(rt__parse_int64(back, &j) && i == j, "int '%s' -> %s", v, back);
    } else if (fuzz_int_text(v) && strlen(v) < 19) {
        FUZZ_CHECK(false, "int '%s' refused", v);
    }
    double d;
    if (rt__parse_double(v, &d))
        FUZZ_CHECK(isfinite(d) && !isspace((unsigned char)v[0]), "real '%s' accepted as %g",
                   v, d);
    bool b;
    if (rt__parse_bool(v, &b)) {
        static const char *const words[] = {"1", "true", "yes", "on", "0", "false", "no", "off"};
        int k = 0;
        while (k < 8 && strcasecmp(v, words[k])) k++;
        FUZZ_CHECK(k < 8 && b == (k < 4), "bool '%s' accepted as %d", v, b);
    }
}

/* What a step of a run with these params reads, against what was checked. */
static void fuzz_read_back(const rt_job *job, rt__params *params) {
    rt__run run;
    memset(&run, 0, sizeof run);
    run.params = *params;
    rt_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.job = job;
    ctx.run = &run;
    int64_t i;
    double d;
    bool b;
    for (int k = 0; k < params->n; k++) {
        const char *name = params->v[k].name;
        FUZZ_CHECK(!strcmp(rt_param(&ctx, name, NULL), params->v[k].value), "param %s", name);
        int rc = RT_OK;
        if (job == &fuzz_typed && !strcmp(name, "n")) rc = rt_param_int64(&ctx, name, 0, &i);
        if (job == &fuzz_typed && !strcmp(name, "r")) rc = rt_param_double(&ctx, name, 0, &d);
        if (job == &fuzz_typed && !strcmp(name, "b")) rc = rt_param_bool(&ctx, name, 0, &b);
        FUZZ_CHECK(rc == RT_OK, "param %s='%s' was accepted, the step cannot read it: %s",
                   name, params->v[k].value, ctx.errmsg);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 4096) return 0;
    char *text = fuzz_str(data, size);
    const rt_job *job = &fuzz_typed;
    char *body = text;
    if (*body == '*') {
        job = &fuzz_open;
        body++;
    }
    char *v[FUZZ_MAX_PARAMS + 1];
    int n = fuzz_split(body, '\n', v, FUZZ_MAX_PARAMS);
    v[n] = NULL;
    for (int k = 0; k < n; k++) {
        const char *eq = strchr(v[k], '=');
        fuzz_numbers(eq ? eq + 1 : v[k]);
    }
    rt_enqueue_opts o = {.params = (const char *const *)v};
    rt__params out = {0};
    char err[1024] = "";
    int rc = rt__enqueue_params(job, &o, &out, err, sizeof err);
    if (rc == RT_OK) {
        for (int k = 0; k < n; k++) {
            const char *eq = strchr(v[k], '=');
            FUZZ_CHECK(eq && eq != v[k], "'%s' accepted", v[k]);
            char *name = strndup(v[k], (size_t)(eq - v[k]));
            const char *last = eq + 1;
            for (int j = k + 1; j < n; j++)
                if (!strncmp(v[j], name, strlen(name)) && v[j][strlen(name)] == '=')
                    last = v[j] + strlen(name) + 1;
            const char *got = rt__params_get(&out, name);
            FUZZ_CHECK(got && !strcmp(got, last), "param %s: stored '%s', given '%s'", name,
                       got ? got : "(none)", last);
            free(name);
        }
        fuzz_read_back(job, &out);
    } else {
        FUZZ_CHECK(rc == RT_INVALID && *err, "rc %d, message '%s'", rc, err);
    }
    rt__params_free(&out);
    free(text);
    return 0;
}
