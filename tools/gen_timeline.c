/* gen_timeline.c - see gen_timeline.h. */
#include "tools/gen_timeline.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/core/progress.h"

sk_status gen_timeline_open(gen_timeline *t, const char *path)
{
    memset(t, 0, sizeof *t);
    if (!path) return SK_OK;
    t->f = fopen(path, "w");
    SK_CHECK(t->f, SK_E_IO, "--timeline-out '%s': cannot create: %s", path, strerror(errno));
    t->path = strdup(path);
    t->t0 = sk_progress_now();
    if (!t->path) {
        fclose(t->f);
        t->f = NULL;
        return SK_ERR(SK_E_OOM, "--timeline-out: out of memory");
    }
    return SK_OK;
}

sk_status gen_timeline_add(gen_timeline *t, int64_t frame, const char *text, const char *key,
                           const char *source)
{
    if (!t->f) return SK_OK;
    cJSON *j = cJSON_CreateObject();
    SK_CHECK(j, SK_E_OOM, "--timeline-out: out of memory");
    cJSON_AddNumberToObject(j, "frame", (double)frame);
    if (!text && key) cJSON_AddStringToObject(j, "embeds", key);
    else cJSON_AddStringToObject(j, "prompt", text ? text : "");
    char ws[32];
    snprintf(ws, sizeof ws, "%.3f", sk_progress_now() - t->t0);
    cJSON_AddRawToObject(j, "wall_s", ws);
    cJSON_AddStringToObject(j, "source", source);
    char *line = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    SK_CHECK(line, SK_E_OOM, "--timeline-out: out of memory");
    const int bad = fprintf(t->f, "%s\n", line) < 0 || fflush(t->f) != 0;
    free(line);
    SK_CHECK(!bad, SK_E_IO, "--timeline-out '%s': write failed: %s", t->path, strerror(errno));
    return SK_OK;
}

sk_status gen_timeline_close(gen_timeline *t)
{
    sk_status st = SK_OK;
    if (t->f && fclose(t->f) != 0)
        st = SK_ERR(SK_E_IO, "--timeline-out '%s': closing failed: %s", t->path, strerror(errno));
    free(t->path);
    memset(t, 0, sizeof *t);
    return st;
}
