/* drops.c — placeholder, written next. */
#include "torture.h"

void t_drops(const t_env *env, int backend, t_rng *rng) {
    (void)env;
    (void)backend;
    (void)rng;
    t_report("not yet");
}
