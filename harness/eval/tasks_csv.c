/* tasks_csv.c: an RFC 4180 CSV record reader and the MMLU loader built on it.
 *
 * MMLU prompt formats (chosen to match lm-evaluation-harness, and through it the original paper):
 *   mmlu (letters): header "The following are multiple choice questions (with answers) about <subject>.\n\n",
 *     each question "<question>\nA. <a>\nB. <b>\nC. <c>\nD. <d>\nAnswer:", choices " A" " B" " C" " D";
 *     few-shot examples are the dev split's first K in file order (Hendrycks et al.'s protocol).
 *   mmlu_cloze: header "The following are questions (with answers) about <subject>.\n\n", each question
 *     "Question: <question>\nAnswer:", choices " <answer text>" (the "cloze" form SmolLM2's card reports).
 * <subject> is the file name's subject with '_' read as ' '. Leading/trailing whitespace of the question
 * is stripped; the answer texts are kept as they are. Invariant: a record must have exactly 6 fields and
 * an answer letter A-D, else the error names the file, the line, the record and the field. */
#include "eval/task.h"
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Read one CSV record (see task.h). */
rp_status rp_csv_record(const char *path, const char *data, size_t len, size_t *pos, size_t *line,
                        rp_buf *fields, size_t *starts, int max, int *nf) {
    size_t p = *pos, ln = *line;
    int n = 0;
    rp_buf_clear(fields);
    for (;;) {
        if (n >= max) return rp_fail(RP_ERR_FORMAT, "%s: line %zu: more than %d fields", path, ln, max);
        starts[n++] = fields->len;
        if (p < len && data[p] == '"') {
            size_t qline = ln;
            p++;
            for (;;) {
                if (p >= len) return rp_fail(RP_ERR_FORMAT, "%s: line %zu: field %d: quoted field never closed", path, qline, n);
                char ch = data[p];
                if (ch == '"') {
                    if (p + 1 < len && data[p + 1] == '"') { RP_TRY(rp_buf_append(fields, "\"", 1)); p += 2; continue; }
                    p++;
                    break;
                }
                if (ch == '\n') ln++;
                RP_TRY(rp_buf_append(fields, &ch, 1));
                p++;
            }
            if (p < len && data[p] != ',' && data[p] != '\n' && !(data[p] == '\r' && p + 1 < len && data[p + 1] == '\n'))
                return rp_fail(RP_ERR_FORMAT, "%s: line %zu: field %d: unexpected character after a closing quote", path, ln, n);
        } else {
            size_t s = p;
            while (p < len && data[p] != ',' && data[p] != '\n' && !(data[p] == '\r' && p + 1 < len && data[p + 1] == '\n')) {
                p++;   /* a quote inside an unquoted field is literal (as Python's csv reads MMLU) */
            }
            RP_TRY(rp_buf_append(fields, data + s, p - s));
        }
        RP_TRY(rp_buf_append(fields, "", 1));   /* NUL between fields */
        if (p < len && data[p] == ',') { p++; continue; }
        if (p < len && data[p] == '\r') p++;
        if (p < len && data[p] == '\n') { p++; ln++; }
        break;
    }
    *pos = p;
    *line = ln;
    *nf = n;
    return RP_OK;
}

static void strip(char **s) {
    char *p = *s;
    while (*p && isspace((unsigned char)*p)) p++;
    size_t n = strlen(p);
    while (n > 0 && isspace((unsigned char)p[n - 1])) p[--n] = 0;
    *s = p;
}

/* Parse one MMLU CSV (one subject). */
rp_status rp_tasks_parse_mmlu_csv(const char *path, const char *data, size_t len, const char *subject,
                                  int cloze, rp_task **out) {
    *out = NULL;
    rp_task *t = NULL;
    rp_buf fields = {0}, ctx = {0}, header = {0};
    rp_status st = RP_OK;
    char name[256];
    snprintf(name, sizeof name, "%s_%s", cloze ? "mmlu_cloze" : "mmlu", subject);
    if ((st = rp_task_new(name, RP_TASK_MC, path, &t)) != RP_OK) return st;
    /* The subject's header (group 0). */
    if ((st = rp_buf_printf(&header, "The following are %squestions (with answers) about ",
                            cloze ? "" : "multiple choice ")) != RP_OK) goto done;
    for (const char *s = subject; *s; s++)
        if ((st = rp_buf_append(&header, *s == '_' ? " " : s, 1)) != RP_OK) goto done;
    if ((st = rp_buf_puts(&header, ".\n\n")) != RP_OK) goto done;
    free(t->groups[0].header);
    t->groups[0].header = header.data;
    header.data = NULL;

    size_t pos = 0, line = 1, rec = 0;
    while (pos < len) {
        size_t starts[8];
        int nf;
        size_t rec_line = line;
        /* A blank line at the very end is not a record. */
        if (data[pos] == '\n' || (data[pos] == '\r' && pos + 1 < len && data[pos + 1] == '\n')) {
            size_t q = pos + (data[pos] == '\r' ? 2 : 1);
            if (q >= len) break;
        }
        if ((st = rp_csv_record(path, data, len, &pos, &line, &fields, starts, 8, &nf)) != RP_OK) goto done;
        rec++;
        if (nf != 6) {
            st = rp_fail(RP_ERR_FORMAT, "%s: line %zu (record %zu): %d fields, expected 6 (question, A, B, C, D, answer)",
                         path, rec_line, rec, nf);
            goto done;
        }
        char *f[6];
        for (int k = 0; k < 6; k++) f[k] = fields.data + starts[k];
        char *ans = f[5];
        strip(&ans);
        if (strlen(ans) != 1 || ans[0] < 'A' || ans[0] > 'D') {
            st = rp_fail(RP_ERR_FORMAT, "%s: line %zu (record %zu): field answer: \"%.20s\" is not one of A, B, C, D",
                         path, rec_line, rec, ans);
            goto done;
        }
        char *q = f[0];
        strip(&q);
        rp_buf_clear(&ctx);
        if (cloze) st = rp_buf_printf(&ctx, "Question: %s\nAnswer:", q);
        else st = rp_buf_printf(&ctx, "%s\nA. %s\nB. %s\nC. %s\nD. %s\nAnswer:", q, f[1], f[2], f[3], f[4]);
        if (st != RP_OK) goto done;
        char *letters[4] = {"A", "B", "C", "D"};
        rp_task_item it = {0};
        it.context = ctx.data;
        it.choices = cloze ? &f[1] : letters;
        it.n_choices = 4;
        it.gold = ans[0] - 'A';
        char where[512];
        snprintf(where, sizeof where, "%s: line %zu (record %zu)", path, rec_line, rec);
        if ((st = rp_task_add_item(t, &it, where)) != RP_OK) goto done;
    }
    if (t->n_items == 0) { st = rp_fail(RP_ERR_FORMAT, "%s: no records", path); goto done; }
done:
    rp_buf_free(&fields);
    rp_buf_free(&ctx);
    rp_buf_free(&header);
    if (st != RP_OK) { rp_task_free(t); return st; }
    *out = t;
    return RP_OK;
}
