/* tasks_json.c: loaders for the JSON-lines and JSON task files (ARC, BoolQ, PIQA, WinoGrande, LAMBADA,
 * TruthfulQA), all through harness/util/json.h.
 *
 * The generic format (rp_tasks_parse_jsonl) fills a task file's templates from each record; the task
 * files in harness/eval/tasks/ hold the ARC, BoolQ and PIQA prompts that way. Prompt formats
 * (lm-evaluation-harness's, adapted to what the staged files keep; delimiter " "):
 *   ARC:        "<query>\nAnswer:" where the staged query is "Question: <question>"; choices the answers.
 *   BoolQ:      "Passage: <passage>\nQuestion: <question>?\nAnswer:" (the staged query + "\nAnswer:");
 *               choices "no", "yes" (lm-eval omits the "Passage: " label; the staged query keeps it).
 *   PIQA:       "Question: <goal>\nAnswer:"; choices sol1, sol2 (authors' jsonl + labels file).
 *   WinoGrande: partial scoring: context i = the sentence up to the blank filled with option i, the
 *               shared continuation (text after the blank) is the scored choice.
 *   LAMBADA:    the passage minus its last word; the choice is the last word.
 *   TruthfulQA: "Q: <question>\nA:"; choices the MC1 or MC2 targets. lm-eval puts a fixed 6-question
 *               "QA primer" before it; that primer is not staged, so this is zero-shot (a known
 *               difference: --shots K draws K other questions with their first true answer instead).
 *               The staged file has empty answer strings (20 in MC1, 31 in MC2); they are dropped.
 * Every malformed record is an error naming the file, the line (or record) and the field. */
#include "eval/task.h"
#include "util/json.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A string member, or an error naming the field. */
static rp_status get_str(const rp_json *o, const char *key, const char *where, const char **out) {
    const rp_json *v = rp_json_get(o, key);
    if (!v) return rp_fail(RP_ERR_FORMAT, "%s: field %s: missing", where, key);
    if (rp_json_typeof(v) != RP_JSON_STRING) return rp_fail(RP_ERR_FORMAT, "%s: field %s: not a string", where, key);
    size_t n = 0;
    const char *s = rp_json_strn(v, &n);
    if (!s || strlen(s) != n) return rp_fail(RP_ERR_FORMAT, "%s: field %s: contains a NUL character", where, key);
    *out = s;
    return RP_OK;
}

/* An integer member in [lo, hi]. */
static rp_status get_int(const rp_json *o, const char *key, long lo, long hi, const char *where, long *out) {
    const rp_json *v = rp_json_get(o, key);
    if (!v) return rp_fail(RP_ERR_FORMAT, "%s: field %s: missing", where, key);
    if (rp_json_typeof(v) != RP_JSON_NUMBER) return rp_fail(RP_ERR_FORMAT, "%s: field %s: not a number", where, key);
    double d = rp_json_num(v, NAN);
    if (!(d >= (double)lo && d <= (double)hi) || d != floor(d))
        return rp_fail(RP_ERR_FORMAT, "%s: field %s: %g is not an integer in [%ld, %ld]", where, key, d, lo, hi);
    *out = (long)d;
    return RP_OK;
}

/* An array of 1..1000 strings: fills strs (malloc'd array of borrowed pointers). */
static rp_status get_str_array(const rp_json *o, const char *key, const char *where, const char ***strs, int *n) {
    *strs = NULL;
    const rp_json *v = rp_json_get(o, key);
    if (!v) return rp_fail(RP_ERR_FORMAT, "%s: field %s: missing", where, key);
    if (rp_json_typeof(v) != RP_JSON_ARRAY) return rp_fail(RP_ERR_FORMAT, "%s: field %s: not an array", where, key);
    size_t m = rp_json_len(v);
    if (m < 1 || m > 1000) return rp_fail(RP_ERR_FORMAT, "%s: field %s: %zu entries (need 1 to 1000)", where, key, m);
    const char **a = malloc(m * sizeof *a);
    if (!a) return rp_fail(RP_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < m; i++) {
        const rp_json *e = rp_json_at(v, i);
        size_t len = 0;
        const char *s = rp_json_typeof(e) == RP_JSON_STRING ? rp_json_strn(e, &len) : NULL;
        if (!s || strlen(s) != len) {
            free(a);
            return rp_fail(RP_ERR_FORMAT, "%s: field %s[%zu]: not a string (or has a NUL)", where, key, i);
        }
        a[i] = s;
    }
    *strs = a;
    *n = (int)m;
    return RP_OK;
}

/* Calls fn on each non-blank line of a JSON-lines buffer with the parsed object. */
typedef rp_status (*line_fn)(rp_task *t, const rp_json *o, const char *where, void *arg);

static rp_status each_jsonl(rp_task *t, const char *path, const char *data, size_t len, line_fn fn, void *arg) {
    size_t pos = 0, line = 0;
    while (pos < len) {
        const char *nl = memchr(data + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - data) : len;
        size_t s = pos;
        pos = nl ? end + 1 : len;
        line++;
        size_t e = end;
        while (s < e && (data[s] == ' ' || data[s] == '\t' || data[s] == '\r')) s++;
        while (e > s && (data[e - 1] == ' ' || data[e - 1] == '\t' || data[e - 1] == '\r')) e--;
        if (s == e) continue;
        char where[512];
        snprintf(where, sizeof where, "%s: line %zu", path, line);
        rp_json *o = NULL;
        rp_status st = rp_json_parse(data + s, e - s, &o);
        if (st != RP_OK) return rp_fail_ctx(st, "%s: ", where);
        if (rp_json_typeof(o) != RP_JSON_OBJECT) st = rp_fail(RP_ERR_FORMAT, "%s: not a JSON object", where);
        else st = fn(t, o, where, arg);
        rp_json_free(o);
        RP_TRY(st);
    }
    if (t->n_items == 0) return rp_fail(RP_ERR_FORMAT, "%s: no records", path);
    return RP_OK;
}

/* A new task of the given name and kind filled by fn over the records of a jsonl file (freed on error). */
static rp_status parse_jsonl_task(const char *name, rp_task_kind kind, const char *path, const char *data, size_t len,
                                  line_fn fn, rp_task **out) {
    *out = NULL;
    rp_task *t;
    RP_TRY(rp_task_new(name, kind, path, &t));
    rp_status st = each_jsonl(t, path, data, len, fn, NULL);
    if (st != RP_OK) { rp_task_free(t); return st; }
    *out = t;
    return RP_OK;
}

/* Expand a template: "{field}" (letters, digits, _) becomes the record's string field; every other
 * character is copied, so "{" not followed by a field name and "}" stand for themselves. */
static rp_status expand(const char *tpl, const rp_json *o, const char *where, rp_buf *out) {
    rp_buf_clear(out);
    RP_TRY(rp_buf_puts(out, ""));
    for (const char *p = tpl; *p;) {
        size_t k = 0;
        if (*p == '{')
            while (p[1 + k] == '_' || (p[1 + k] >= 'a' && p[1 + k] <= 'z') || (p[1 + k] >= 'A' && p[1 + k] <= 'Z') ||
                   (p[1 + k] >= '0' && p[1 + k] <= '9')) k++;
        if (k > 0 && k < 64 && p[1 + k] == '}') {
            char key[64];
            memcpy(key, p + 1, k);
            key[k] = 0;
            const char *v;
            RP_TRY(get_str(o, key, where, &v));
            RP_TRY(rp_buf_puts(out, v));
            p += k + 2;
        } else {
            RP_TRY(rp_buf_append(out, p, 1));
            p++;
        }
    }
    return RP_OK;
}

/* The next line of a labels file as an integer in [0, n). */
static rp_status next_label(struct rp_tasks_jsonl *f, size_t *pos, size_t *line, int n, size_t item, const char *where, int *gold) {
    if (*pos >= f->labels_len)
        return rp_fail(RP_ERR_FORMAT, "%s: record %zu has no label: %s has only %zu lines", where, item, f->labels_path, *line);
    const char *nl = memchr(f->labels + *pos, '\n', f->labels_len - *pos);
    size_t end = nl ? (size_t)(nl - f->labels) : f->labels_len, s = *pos, e = end;
    *pos = nl ? end + 1 : f->labels_len;
    (*line)++;
    while (e > s && (f->labels[e - 1] == '\r' || f->labels[e - 1] == ' ')) e--;
    long v = 0;
    size_t i = s;
    for (; i < e && i - s < 6 && f->labels[i] >= '0' && f->labels[i] <= '9'; i++) v = v * 10 + (f->labels[i] - '0');
    if (i == s || i != e || v >= n)
        return rp_fail(RP_ERR_FORMAT, "%s: line %zu: label \"%.*s\" is not an integer in [0, %d)", f->labels_path, *line,
                       (int)(e - s > 20 ? 20 : e - s), f->labels + s, n);
    *gold = (int)v;
    return RP_OK;
}

struct tpl_arg { struct rp_tasks_jsonl *f; size_t pos, line; rp_buf ctx, ch[RP_TASKS_MAX_CHOICE_TEMPLATES]; };

static rp_status tpl_line(rp_task *t, const rp_json *o, const char *where, void *arg) {
    struct tpl_arg *a = arg;
    struct rp_tasks_jsonl *f = a->f;
    RP_TRY(expand(f->prompt, o, where, &a->ctx));
    const char **ch = NULL, *fixed[RP_TASKS_MAX_CHOICE_TEMPLATES];
    int n = f->n_choice_templates;
    if (f->choices_field) {
        RP_TRY(get_str_array(o, f->choices_field, where, &ch, &n));
    } else {
        for (int c = 0; c < n; c++) {
            RP_TRY(expand(f->choice_templates[c], o, where, &a->ch[c]));
            fixed[c] = a->ch[c].data;
        }
    }
    rp_status st = RP_OK;
    int gold = 0;
    if (f->gold_field) {
        long g = 0;
        st = get_int(o, f->gold_field, 0, n - 1, where, &g);
        gold = (int)g;
    } else {
        st = next_label(f, &a->pos, &a->line, n, t->n_items + 1, where, &gold);
    }
    if (st == RP_OK) {
        rp_task_item it = {.context = a->ctx.data, .choices = (char **)(ch ? ch : fixed), .n_choices = n, .gold = gold};
        st = rp_task_add_item(t, &it, where);
    }
    free(ch);
    return st;
}

/* Parse JSON lines through a task file's templates. */
rp_status rp_tasks_parse_jsonl(const char *name, const char *path, const char *data, size_t len,
                               const rp_tasks_jsonl *spec, rp_task **out) {
    *out = NULL;
    struct rp_tasks_jsonl f = *spec;
    if (!f.prompt || (!f.choices_field && (f.n_choice_templates < 1 || f.n_choice_templates > RP_TASKS_MAX_CHOICE_TEMPLATES)) ||
        (!f.gold_field && !f.labels))
        return rp_fail(RP_ERR_INVAL, "task %s: a jsonl task needs a prompt, choices (a field or 1 to %d templates) and gold (a field or a labels file)",
                       name, RP_TASKS_MAX_CHOICE_TEMPLATES);
    rp_task *t;
    RP_TRY(rp_task_new(name, RP_TASK_MC, path, &t));
    struct tpl_arg a = {.f = &f};
    rp_status st = each_jsonl(t, path, data, len, tpl_line, &a);
    if (st == RP_OK && f.labels) {
        while (a.pos < f.labels_len && (f.labels[a.pos] == '\n' || f.labels[a.pos] == '\r' || f.labels[a.pos] == ' ')) a.pos++;
        if (a.pos < f.labels_len)
            st = rp_fail(RP_ERR_FORMAT, "%s: more labels than the %zu records of %s", f.labels_path, t->n_items, path);
    }
    rp_buf_free(&a.ctx);
    for (int c = 0; c < RP_TASKS_MAX_CHOICE_TEMPLATES; c++) rp_buf_free(&a.ch[c]);
    if (st != RP_OK) { rp_task_free(t); return st; }
    *out = t;
    return RP_OK;
}

/* Parse {"query","choices","gold"} lines: the template "{query}" + suffix. */
rp_status rp_tasks_parse_query_jsonl(const char *name, const char *path, const char *data, size_t len,
                                     const char *suffix, rp_task **out) {
    rp_buf prompt = {0};
    rp_status st = rp_buf_printf(&prompt, "{query}%s", suffix);
    rp_tasks_jsonl f = {.prompt = prompt.data, .choices_field = "choices", .gold_field = "gold"};
    if (st == RP_OK) st = rp_tasks_parse_jsonl(name, path, data, len, &f, out);
    rp_buf_free(&prompt);
    return st;
}

/* Parse PIQA's jsonl with its labels file: "Question: {goal}\nAnswer:", choices {sol1}, {sol2}. */
rp_status rp_tasks_parse_piqa(const char *path, const char *data, size_t len, const char *labels_path,
                              const char *labels, size_t labels_len, rp_task **out) {
    static const char *const ch[] = {"{sol1}", "{sol2}"};
    rp_tasks_jsonl f = {.prompt = "Question: {goal}\nAnswer:", .choice_templates = ch, .n_choice_templates = 2,
                        .labels_path = labels_path, .labels = labels ? labels : "", .labels_len = labels_len};
    return rp_tasks_parse_jsonl("piqa", path, data, len, &f, out);
}

static rp_status wino_line(rp_task *t, const rp_json *o, const char *where, void *arg) {
    const char **ctxs, *cont;
    int n;
    long gold;
    RP_TRY(get_str(o, "continuation", where, &cont));
    RP_TRY(get_str_array(o, "context_options", where, &ctxs, &n));
    rp_status st = RP_OK;
    if (n != 2) st = rp_fail(RP_ERR_FORMAT, "%s: field context_options: %d entries, expected 2", where, n);
    if (st == RP_OK) st = get_int(o, "gold", 0, 1, where, &gold);
    if (st == RP_OK) {
        /* Strip the continuation like lm-eval's partial target (" " + rest.strip()). */
        while (*cont == ' ') cont++;
        const char *ch[2] = {cont, cont};
        rp_task_item it = {.contexts = (char **)ctxs, .choices = (char **)ch, .n_choices = 2, .gold = (int)gold};
        st = rp_task_add_item(t, &it, where);
    }
    free(ctxs);
    return st;
}

/* Parse WinoGrande's partial-scoring jsonl. */
rp_status rp_tasks_parse_winogrande(const char *path, const char *data, size_t len, rp_task **out) {
    return parse_jsonl_task("winogrande", RP_TASK_MC, path, data, len, wino_line, out);
}

static rp_status lambada_line(rp_task *t, const rp_json *o, const char *where, void *arg) {
    const char *ctx, *cont;
    RP_TRY(get_str(o, "context", where, &ctx));
    RP_TRY(get_str(o, "continuation", where, &cont));
    while (*cont == ' ') cont++;
    /* The delimiter " " goes between passage and word; drop trailing spaces of the passage. */
    size_t n = strlen(ctx);
    while (n > 0 && ctx[n - 1] == ' ') n--;
    rp_buf c = {0};
    rp_status st = rp_buf_append(&c, ctx, n);
    if (st == RP_OK && n == 0) st = rp_fail(RP_ERR_FORMAT, "%s: field context: empty", where);
    if (st == RP_OK) {
        const char *ch[1] = {cont};
        rp_task_item it = {.context = c.data, .choices = (char **)ch, .n_choices = 1, .gold = 0};
        st = rp_task_add_item(t, &it, where);
    }
    rp_buf_free(&c);
    return st;
}

/* Parse LAMBADA's {"context","continuation"} lines. */
rp_status rp_tasks_parse_lambada(const char *path, const char *data, size_t len, rp_task **out) {
    return parse_jsonl_task("lambada", RP_TASK_LASTWORD, path, data, len, lambada_line, out);
}

/* Parse the TruthfulQA MC JSON array (mc = 1 or 2). */
rp_status rp_tasks_parse_truthfulqa(const char *path, const char *data, size_t len, int mc, rp_task **out) {
    *out = NULL;
    if (mc != 1 && mc != 2) return rp_fail(RP_ERR_INVAL, "truthfulqa: mc must be 1 or 2, not %d", mc);
    rp_task *t;
    RP_TRY(rp_task_new(mc == 1 ? "truthfulqa_mc1" : "truthfulqa_mc2", mc == 1 ? RP_TASK_MC : RP_TASK_MC2, path, &t));
    rp_json *root = NULL;
    rp_status st = rp_json_parse(data, len, &root);
    if (st != RP_OK) { rp_task_free(t); return rp_fail_ctx(st, "%s: ", path); }
    if (rp_json_typeof(root) != RP_JSON_ARRAY) { st = rp_fail(RP_ERR_FORMAT, "%s: top level is not a JSON array", path); goto done; }
    const char *tkey = mc == 1 ? "mc1_targets" : "mc2_targets";
    rp_buf ctx = {0};
    for (size_t r = 0; r < rp_json_len(root) && st == RP_OK; r++) {
        const rp_json *o = rp_json_at(root, r);
        char where[512];
        snprintf(where, sizeof where, "%s: record %zu", path, r + 1);
        if (rp_json_typeof(o) != RP_JSON_OBJECT) { st = rp_fail(RP_ERR_FORMAT, "%s: not a JSON object", where); break; }
        const char *q, **ch = NULL;
        int n = 0;
        const rp_json *tg = rp_json_get(o, tkey);
        if ((st = get_str(o, "question", where, &q)) != RP_OK) break;
        if (!tg || rp_json_typeof(tg) != RP_JSON_OBJECT) { st = rp_fail(RP_ERR_FORMAT, "%s: field %s: missing or not an object", where, tkey); break; }
        char where2[600];
        snprintf(where2, sizeof where2, "%s: %s", where, tkey);
        if ((st = get_str_array(tg, "choices", where2, &ch, &n)) != RP_OK) break;
        const rp_json *lab = rp_json_get(tg, "labels");
        unsigned char *truth = calloc((size_t)n, 1);
        int gold = -1, ntrue = 0;
        if (!truth) st = rp_fail(RP_ERR_NOMEM, "out of memory");
        else if (!lab || rp_json_typeof(lab) != RP_JSON_ARRAY || rp_json_len(lab) != (size_t)n)
            st = rp_fail(RP_ERR_FORMAT, "%s: field labels: missing, not an array, or not %d entries like choices", where2, n);
        int kept = 0;
        for (int c = 0; st == RP_OK && c < n; c++) {
            const rp_json *l = rp_json_at(lab, (size_t)c);
            double d = rp_json_typeof(l) == RP_JSON_NUMBER ? rp_json_num(l, NAN) : NAN;
            if (d != 0 && d != 1) { st = rp_fail(RP_ERR_FORMAT, "%s: field labels[%d]: not 0 or 1", where2, c); break; }
            if (!ch[c][0]) continue;   /* the staged file has empty answer strings: not real choices */
            ch[kept] = ch[c];
            truth[kept] = d == 1;
            if (d == 1) { ntrue++; if (gold < 0) gold = kept; }
            kept++;
        }
        n = kept;
        if (st == RP_OK && mc == 1 && ntrue != 1)
            st = rp_fail(RP_ERR_FORMAT, "%s: field labels: %d true answers, MC1 needs exactly one", where2, ntrue);
        if (st == RP_OK && gold < 0) st = rp_fail(RP_ERR_FORMAT, "%s: field labels: no true answer", where2);
        rp_buf_clear(&ctx);
        if (st == RP_OK) st = rp_buf_printf(&ctx, "Q: %s\nA:", q);
        if (st == RP_OK) {
            rp_task_item it = {.context = ctx.data, .choices = (char **)ch, .n_choices = n, .gold = gold,
                               .truth = mc == 2 ? truth : NULL};
            st = rp_task_add_item(t, &it, where);
        }
        free(truth);
        free(ch);
    }
    rp_buf_free(&ctx);
    if (st == RP_OK && t->n_items == 0) st = rp_fail(RP_ERR_FORMAT, "%s: no records", path);
done:
    rp_json_free(root);
    if (st != RP_OK) { rp_task_free(t); return st; }
    *out = t;
    return RP_OK;
}
