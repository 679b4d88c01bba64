/*
 * fuzz.h — what the fuzz targets share: libFuzzer's entry point, a check
 * that aborts naming the broken invariant (so libFuzzer and the replay
 * driver both report it as a crash; on stdout, as `make fuzz` closes the
 * targets' stderr to keep their log lines out), and input helpers.
 */
#ifndef RT_FUZZ_H
#define RT_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond, ...)                                                  \
    do {                                                                       \
        if (!(cond)) {                                                         \
            printf("fuzz invariant broken at %s:%d: %s\n  ", __FILE__,       \
                   __LINE__, #cond);                                           \
            printf(__VA_ARGS__);                                               \
            printf("\n");                                                      \
            fflush(stdout);                                                    \
            abort();                                                           \
        }                                                                      \
    } while (0)

/* The bytes as a C string (malloc'd), cut at the first NUL. */
static inline char *fuzz_str(const uint8_t *data, size_t size) {
    char *s = malloc(size + 1);
    if (!s) abort();
    memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

/* Split s in place at each sep; at most max pieces (the last keeps the rest). */
static inline int fuzz_split(char *s, char sep, char **v, int max) {
    int n = 0;
    while (n < max) {
        v[n++] = s;
        char *e = n < max ? strchr(s, sep) : NULL;
        if (!e) break;
        *e = '\0';
        s = e + 1;
    }
    return n;
}

/* Eight bytes of data (zero-padded) as an integer; advances the input. */
static inline uint64_t fuzz_u64(const uint8_t **data, size_t *size) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) {
        v = v << 8 | (*size ? **data : 0);
        if (*size) {
            (*data)++;
            (*size)--;
        }
    }
    return v;
}

#endif
