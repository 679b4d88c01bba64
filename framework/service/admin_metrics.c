/*
 * admin_metrics.c — rt_metrics_text (ratchet.h, "operating"): the
 * Prometheus text of metrics.c for a program of its own, as `ratchet
 * metrics` prints it; and rt_free for the text it returns.
 */
#include <stdlib.h>

#include "service/metrics.h"

int rt_metrics_text(rt_db *db, char **text) {
    if (!text) return RT_MISUSE;
    *text = NULL;
    rt_store *s = rt__db_store(db);
    if (!s) return RT_MISUSE;
    rt__buf out = {0};
    int rc = rt__metrics_render(s, &out);
    if (rc != RT_OK) {
        rt__buf_free(&out);
        return rc;
    }
    *text = out.p ? out.p : rt__xstrdup("");
    return RT_OK;
}

void rt_free(void *p) { free(p); }
