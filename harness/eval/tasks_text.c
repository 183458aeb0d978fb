/* tasks_text.c: the HellaSwag loader (llama.cpp's 6-lines-per-item text format).
 *
 * Prompt format (as llama.cpp's --hellaswag and lm-evaluation-harness): the context line
 * "<activity_label>: <ctx>" (already preprocessed in the staged file), then " " + ending; acc_norm is
 * the score both report. Invariant: each item is exactly 6 lines (context, a gold digit 0-3, four
 * non-empty endings); anything else is an error naming the file, the line and the item. */
#include "eval/task.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Next line [*s, *e) starting at *pos (a trailing CR is dropped); 0 at end of data. */
static int next_line(const char *data, size_t len, size_t *pos, size_t *s, size_t *e) {
    if (*pos >= len) return 0;
    size_t p = *pos;
    const char *nl = memchr(data + p, '\n', len - p);
    size_t end = nl ? (size_t)(nl - data) : len;
    *s = p;
    *e = end;
    if (*e > *s && data[*e - 1] == '\r') (*e)--;
    *pos = nl ? end + 1 : len;
    return 1;
}

/* Parse the HellaSwag text format. */
rp_status rp_tasks_parse_hellaswag(const char *path, const char *data, size_t len, rp_task **out) {
    *out = NULL;
    rp_task *t;
    RP_TRY(rp_task_new("hellaswag", RP_TASK_MC, path, &t));
    rp_status st = RP_OK;
    char *lines[6] = {0};
    size_t pos = 0, line = 0;
    for (size_t item = 1;; item++) {
        size_t first = line + 1;
        int got = 0;
        for (int k = 0; k < 6; k++) {
            size_t s, e;
            if (!next_line(data, len, &pos, &s, &e)) break;
            line++;
            if (memchr(data + s, 0, e - s)) {
                st = rp_fail(RP_ERR_FORMAT, "%s: line %zu (item %zu): NUL byte in text", path, line, item);
                goto done;
            }
            free(lines[k]);
            lines[k] = malloc(e - s + 1);
            if (!lines[k]) { st = rp_fail(RP_ERR_NOMEM, "out of memory reading %s", path); goto done; }
            memcpy(lines[k], data + s, e - s);
            lines[k][e - s] = 0;
            got++;
        }
        if (got == 0) break;
        if (got < 6) {
            st = rp_fail(RP_ERR_FORMAT, "%s: line %zu (item %zu): item truncated after %d of 6 lines", path, line, item, got);
            goto done;
        }
        const char *g = lines[1];
        if (!(g[0] >= '0' && g[0] <= '3' && g[1] == 0)) {
            st = rp_fail(RP_ERR_FORMAT, "%s: line %zu (item %zu): field gold: \"%.20s\" is not a digit 0-3", path, first + 1, item, g);
            goto done;
        }
        rp_task_item it = {0};
        it.context = lines[0];
        it.choices = &lines[2];
        it.n_choices = 4;
        it.gold = g[0] - '0';
        char where[512];
        snprintf(where, sizeof where, "%s: line %zu (item %zu)", path, first, item);
        if ((st = rp_task_add_item(t, &it, where)) != RP_OK) goto done;
    }
    if (t->n_items == 0) st = rp_fail(RP_ERR_FORMAT, "%s: no items", path);
done:
    for (int k = 0; k < 6; k++) free(lines[k]);
    if (st != RP_OK) { rp_task_free(t); return st; }
    *out = t;
    return RP_OK;
}
