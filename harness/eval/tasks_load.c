/* tasks_load.c: the task registry: task names -> task files (one JSON file per task, lm-eval's task
 * folders in spirit) -> their data files and the file-format parser that reads them.
 * Task files: the built-in ones in harness/eval/tasks/ (embedded at build time by embed_tasks.py), then
 * every folder in $REPRO_TASKS (colon-separated), whose files override built-ins of the same name. A
 * file <name>.json holds {"task": <name>, "description", "asset", "split", "format", "data", ...}; the
 * keys each format takes are listed in FORMATS below, and unknown keys are errors naming the file.
 * Data files resolve through the asset registry (mirror, cache or download, always sha256-verified),
 * under opts->mirror (a folder laid out as <asset>/<file>, for tests), or, with "local": true, beside
 * the task file. Only the file formats are C; prompts, choices, gold and metrics are the task file's.
 * MMLU ("subjects": true) is one CSV per subject: each subject is a group with its own header and its
 * dev split as the few-shot pool (first K in order); <task>_<subject> scores one subject. Perplexity
 * texts are kept byte for byte (wiki.test.raw keeps its CRLF line ends: llama.cpp's reference figures
 * were computed on the file as it is). */
#include "eval/task.h"
#include "assets/assets.h"
#include "net/json.h"
#include <dirent.h>
#include <pthread.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static rp_status read_rel(const char *mirror, const char *rel, rp_buf *b, char *path, size_t pathsz) {
    snprintf(path, pathsz, "%s/%s", mirror, rel);
    return rp_read_file(path, b);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Subjects present in <mirror>/mmlu/test, sorted. */
static rp_status mmlu_subjects(const char *mirror, char ***out, size_t *n) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/test", mirror);
    DIR *d = opendir(dir);
    if (!d) return rp_fail(RP_ERR_NOTFOUND, "%s: cannot open the MMLU test folder", dir);
    char **v = NULL;
    size_t m = 0;
    struct dirent *e;
    rp_status st = RP_OK;
    while ((e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name);
        const char *suf = "_test.csv";
        if (l <= strlen(suf) || strcmp(e->d_name + l - strlen(suf), suf) != 0) continue;
        char **p = realloc(v, (m + 1) * sizeof *p);
        if (!p) { st = rp_fail(RP_ERR_NOMEM, "out of memory"); break; }
        v = p;
        if (!(v[m] = strndup(e->d_name, l - strlen(suf)))) { st = rp_fail(RP_ERR_NOMEM, "out of memory"); break; }
        m++;
    }
    closedir(d);
    if (st == RP_OK && m == 0) st = rp_fail(RP_ERR_NOTFOUND, "%s: no <subject>_test.csv files", dir);
    if (st != RP_OK) { for (size_t i = 0; i < m; i++) free(v[i]); free(v); return st; }
    qsort(v, m, sizeof *v, cmp_str);
    *out = v;
    *n = m;
    return RP_OK;
}

static rp_status mmlu_file(const char *mirror, const char *split, const char *subject, int cloze, rp_task **out) {
    char rel[1024], path[4096];
    snprintf(rel, sizeof rel, "%s/%s_%s.csv", split, subject, split);
    rp_buf b = {0};
    rp_status st = read_rel(mirror, rel, &b, path, sizeof path);
    if (st == RP_OK) st = rp_tasks_parse_mmlu_csv(path, b.data, b.len, subject, cloze, out);
    rp_buf_free(&b);
    return st;
}

/* Load MMLU: all subjects (subject == NULL) or one. */
static rp_status load_mmlu(const char *task, const char *mirror, const char *split, const char *subject, int cloze, rp_task **out) {
    if (strcmp(split, "test") && strcmp(split, "val") && strcmp(split, "dev"))
        return rp_fail(RP_ERR_INVAL, "%s: split \"%s\" is not one of test, val, dev", task, split);
    char **subs = NULL;
    size_t ns = 0;
    if (subject) {
        if (!(subs = malloc(sizeof *subs)) || !(subs[0] = strdup(subject))) { free(subs); return rp_fail(RP_ERR_NOMEM, "out of memory"); }
        ns = 1;
    } else {
        RP_TRY(mmlu_subjects(mirror, &subs, &ns));
    }
    char name[256], src[4096];
    snprintf(name, sizeof name, "%s%s%s", task, subject ? "_" : "", subject ? subject : "");
    snprintf(src, sizeof src, "%s/%s", mirror, split);
    rp_task *t = NULL;
    rp_status st = rp_task_new(name, RP_TASK_MC, src, &t);
    for (size_t s = 0; s < ns && st == RP_OK; s++) {
        rp_task *one = NULL, *dev = NULL;
        size_t g = 0;
        if ((st = mmlu_file(mirror, split, subs[s], cloze, &one)) != RP_OK) break;
        if (s == 0) {
            /* Reuse the initial group for the first subject. */
            free(t->groups[0].name);
            free(t->groups[0].header);
            t->groups[0] = one->groups[0];
            t->groups[0].shots_in_order = 1;
            one->groups[0].name = one->groups[0].header = NULL;
        } else {
            st = rp_task_add_group(t, subs[s], one->groups[0].header, 1, &g);
        }
        for (size_t i = 0; st == RP_OK && i < one->n_items; i++) {
            one->items[i].group = (int)g;
            st = rp_task_add_item(t, &one->items[i], one->source);
            one->items[i].group = 0;
        }
        rp_task_free(one);
        if (st == RP_OK && strcmp(split, "dev") != 0) {
            if ((st = mmlu_file(mirror, "dev", subs[s], cloze, &dev)) == RP_OK) st = rp_task_set_shots(t, g, dev);
        }
    }
    for (size_t s = 0; s < ns; s++) free(subs[s]);
    free(subs);
    if (st != RP_OK) { rp_task_free(t); return st; }
    *out = t;
    return RP_OK;
}

static rp_status load_text(const char *name, const char *mirror, const char *rel, rp_task **out) {
    char path[4096];
    rp_buf b = {0};
    RP_TRY(read_rel(mirror, rel, &b, path, sizeof path));
    rp_task *t;
    rp_status st = rp_task_new(name, RP_TASK_TEXT, path, &t);
    if (st != RP_OK) { rp_buf_free(&b); return st; }
    t->text = b.data;
    t->text_len = b.len;
    *out = t;
    return RP_OK;
}

/* ---- task files ---- */

typedef struct builtin_task { const char *name, *path, *json; } builtin_task;
static const builtin_task builtins[] = {
#include "tasks_builtin.inc"
};
#define N_BUILTINS (sizeof builtins / sizeof builtins[0])

/* The keys a task file may hold: every format takes COMMON; each format adds its own. */
static const char *const COMMON[] = {"task", "description", "note", "asset", "local", "split", "format", "data", "metric", "fewshot", NULL};
typedef struct format_def { const char *name; rp_task_kind kind; const char *const keys[6]; const char *const metrics[4]; } format_def;
static const format_def FORMATS[] = {
    {"jsonl", RP_TASK_MC, {"prompt", "choices", "gold", "labels", NULL}, {"acc", "acc_norm", NULL}},
    {"hellaswag_txt", RP_TASK_MC, {NULL}, {"acc", "acc_norm", NULL}},
    {"winogrande_jsonl", RP_TASK_MC, {NULL}, {"acc", "acc_norm", NULL}},
    {"truthfulqa_json", RP_TASK_MC, {"mc", NULL}, {"acc", "acc_norm", "mc2", NULL}},
    {"lambada_jsonl", RP_TASK_LASTWORD, {NULL}, {"acc", "ppl", NULL}},
    {"mmlu_csv", RP_TASK_MC, {"cloze", "subjects", NULL}, {"acc", "acc_norm", NULL}},
    {"text", RP_TASK_TEXT, {NULL}, {"ppl", "bpb", "word_ppl", "nll"}},
};

/* A task file as read: its JSON and where it came from (its folder holds "local" data). */
typedef struct task_file { rp_json *j; char path[4096], dir[4096]; const format_def *fmt; } task_file;

static int in_list(const char *s, const char *const *list, size_t max) {
    for (size_t i = 0; i < max && list[i]; i++) if (!strcmp(s, list[i])) return 1;
    return 0;
}

/* A string field of a task file ("" when absent and optional). */
static rp_status tf_str(const task_file *f, const char *key, int required, const char **out) {
    const rp_json *v = rp_json_get(f->j, key);
    *out = "";
    if (!v) return required ? rp_fail(RP_ERR_FORMAT, "%s: field %s: missing", f->path, key) : RP_OK;
    if (rp_json_typeof(v) != RP_JSON_STRING) return rp_fail(RP_ERR_FORMAT, "%s: field %s: not a string", f->path, key);
    *out = rp_json_str(v, "");
    return RP_OK;
}

static int tf_bool(const task_file *f, const char *key) { return rp_json_bool(rp_json_get(f->j, key), 0); }

/* Parse and check a task file: an object, "task" equal to its name, known keys, a known format,
 * metrics that format computes, a plain relative data path. */
static rp_status tf_parse(const char *name, const char *text, size_t len, const char *path, task_file *f) {
    memset(f, 0, sizeof *f);
    snprintf(f->path, sizeof f->path, "%s", path);
    snprintf(f->dir, sizeof f->dir, "%s", path);
    char *slash = strrchr(f->dir, '/');
    if (slash) *slash = 0; else snprintf(f->dir, sizeof f->dir, ".");
    rp_status st = rp_json_parse(text, len, &f->j);
    if (st != RP_OK) return rp_fail_ctx(st, "%s: ", path);
    if (rp_json_typeof(f->j) != RP_JSON_OBJECT) return rp_fail(RP_ERR_FORMAT, "%s: not a JSON object", path);
    const char *task, *format, *data, *fewshot;
    RP_TRY(tf_str(f, "task", 1, &task));
    if (strcmp(task, name)) return rp_fail(RP_ERR_FORMAT, "%s: field task: \"%s\" is not the file's name \"%s\"", path, task, name);
    RP_TRY(tf_str(f, "format", 1, &format));
    for (size_t i = 0; i < sizeof FORMATS / sizeof FORMATS[0]; i++) if (!strcmp(format, FORMATS[i].name)) f->fmt = &FORMATS[i];
    if (!f->fmt) return rp_fail(RP_ERR_FORMAT, "%s: field format: \"%s\" is not one of jsonl, hellaswag_txt, winogrande_jsonl, "
                                "truthfulqa_json, lambada_jsonl, mmlu_csv, text", path, format);
    for (size_t i = 0; i < rp_json_len(f->j); i++) {
        const char *k = rp_json_key_at(f->j, i);
        if (!in_list(k, COMMON, 99) && !in_list(k, f->fmt->keys, 6))
            return rp_fail(RP_ERR_FORMAT, "%s: field %s: not a key of a %s task file", path, k, format);
    }
    const rp_json *m = rp_json_get(f->j, "metric");
    for (size_t i = 0; m && i < rp_json_len(m); i++) {
        const char *mn = rp_json_str(rp_json_at(m, i), "");
        if (!in_list(mn, f->fmt->metrics, 4)) return rp_fail(RP_ERR_FORMAT, "%s: field metric: \"%s\" is not computed for a %s task", path, mn, format);
    }
    if (m && (rp_json_typeof(m) != RP_JSON_ARRAY || rp_json_len(m) == 0)) return rp_fail(RP_ERR_FORMAT, "%s: field metric: not a list of names", path);
    RP_TRY(tf_str(f, "fewshot", 0, &fewshot));
    if (*fewshot && strcmp(fewshot, "items") && !(strcmp(fewshot, "dev") == 0 && f->fmt->kind == RP_TASK_MC && tf_bool(f, "subjects")))
        return rp_fail(RP_ERR_FORMAT, "%s: field fewshot: \"%s\" is not items (other items of the task)%s", path, fewshot,
                       tf_bool(f, "subjects") ? " or dev (the subject's dev split)" : "");
    RP_TRY(tf_str(f, "data", !tf_bool(f, "subjects"), &data));
    if (data[0] == '/' || strstr(data, ".."))
        return rp_fail(RP_ERR_FORMAT, "%s: field data: \"%s\" must be a relative path without ..", path, data);
    if (!tf_bool(f, "local")) RP_TRY(tf_str(f, "asset", 1, &data));
    return RP_OK;
}

/* Whether name is a plain task name (no path characters). */
static int plain_name(const char *name) {
    if (!*name || strlen(name) > 200) return 0;
    for (const char *p = name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_' || *p == '-')) return 0;
    return 1;
}

/* Find and parse the task file of exactly `name`: $REPRO_TASKS folders first, then the built-ins.
 * RP_ERR_NOTFOUND (with no message set) when there is none. */
static rp_status tf_find(const char *name, task_file *f) {
    f->j = NULL;
    const char *env = getenv("REPRO_TASKS");
    if (env && *env) {
        char *list = strdup(env), *save = NULL;
        if (!list) return rp_fail(RP_ERR_NOMEM, "out of memory");
        for (char *d = strtok_r(list, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
            char path[4096];
            struct stat sb;
            snprintf(path, sizeof path, "%s/%s.json", d, name);
            if (stat(path, &sb) != 0) continue;
            rp_buf b = {0};
            rp_status st = rp_read_file(path, &b);
            if (st == RP_OK) st = tf_parse(name, b.data, b.len, path, f);
            rp_buf_free(&b);
            free(list);
            return st;
        }
        free(list);
    }
    for (size_t i = 0; i < N_BUILTINS; i++)
        if (!strcmp(builtins[i].name, name)) return tf_parse(name, builtins[i].json, strlen(builtins[i].json), builtins[i].path, f);
    return RP_ERR_NOTFOUND;
}

static pthread_mutex_t names_lock = PTHREAD_MUTEX_INITIALIZER;
static char **names_cache;

/* The names rp_task_load accepts: the built-ins and every *.json in $REPRO_TASKS, sorted, unique. */
const char *const *rp_task_names(void) {
    pthread_mutex_lock(&names_lock);
    size_t n = 0, cap = N_BUILTINS + 1;
    char **v = malloc(cap * sizeof *v);
    for (size_t i = 0; v && i < N_BUILTINS; i++) v[n++] = strdup(builtins[i].name);
    const char *env = getenv("REPRO_TASKS");
    char *list = env && *env ? strdup(env) : NULL, *save = NULL;
    for (char *d = list ? strtok_r(list, ":", &save) : NULL; v && d; d = strtok_r(NULL, ":", &save)) {
        DIR *dir = opendir(d);
        struct dirent *e;
        while (dir && (e = readdir(dir)) != NULL) {
            size_t l = strlen(e->d_name);
            if (l <= 5 || strcmp(e->d_name + l - 5, ".json")) continue;
            char *nm = strndup(e->d_name, l - 5);
            int dup = !nm || !plain_name(nm);
            for (size_t i = 0; !dup && i < n; i++) dup = v[i] && !strcmp(v[i], nm);
            char **p = dup ? v : realloc(v, (n + 2) * sizeof *v);
            if (dup || !p) { free(nm); continue; }
            v = p;
            v[n++] = nm;
        }
        if (dir) closedir(dir);
    }
    free(list);
    static const char *const empty[] = {NULL};
    if (v) {
        size_t k = 0;
        for (size_t i = 0; i < n; i++) if (v[i]) v[k++] = v[i];   /* drop failed copies */
        qsort(v, k, sizeof *v, cmp_str);
        v[k] = NULL;
    }
    if (names_cache) { for (char **p = names_cache; *p; p++) free(*p); free(names_cache); }
    names_cache = v;
    pthread_mutex_unlock(&names_lock);
    return v ? (const char *const *)v : empty;
}

/* The folder holding a task file's data files: beside the file ("local"), <mirror>/<asset>, or the
 * asset registry's folder for the asset (fetched and verified). */
static rp_status data_dir(const task_file *f, const char *mirror, char *out, size_t n) {
    if (tf_bool(f, "local")) { snprintf(out, n, "%s", f->dir); return RP_OK; }
    const char *asset = rp_json_str(rp_json_get(f->j, "asset"), "");
    if (mirror) { snprintf(out, n, "%s/%s", mirror, asset); return RP_OK; }
    RP_TRY(rp_asset_path(asset, NULL, out, n));
    for (int up = 0; up < 2; up++) {   /* <root>/<asset>, or <root>/<asset>/<file> for a one-file asset */
        char *slash = strrchr(out, '/');
        if (slash && strcmp(slash + 1, asset) == 0) return RP_OK;
        if (!slash) break;
        *slash = 0;
    }
    if (strlen(out) >= strlen(asset) && strcmp(out + strlen(out) - strlen(asset), asset) == 0) return RP_OK;
    return rp_fail(RP_ERR_IO, "%s: the asset registry's path for %s is not inside a folder named %s", f->path, asset, asset);
}

/* The generic JSON-lines format: the task file's templates. */
static rp_status load_jsonl(const char *name, const task_file *f, const char *dir, rp_task **out) {
    const char *prompt, *choices_field = NULL, *gold = NULL, *labels;
    const char *tpl[RP_TASKS_MAX_CHOICE_TEMPLATES];
    int ntpl = 0;
    RP_TRY(tf_str(f, "prompt", 1, &prompt));
    const rp_json *ch = rp_json_get(f->j, "choices");
    if (ch && rp_json_typeof(ch) == RP_JSON_STRING) choices_field = rp_json_str(ch, "");
    else if (ch && rp_json_typeof(ch) == RP_JSON_ARRAY && rp_json_len(ch) >= 1 && rp_json_len(ch) <= RP_TASKS_MAX_CHOICE_TEMPLATES) {
        for (size_t i = 0; i < rp_json_len(ch); i++) {
            if (rp_json_typeof(rp_json_at(ch, i)) != RP_JSON_STRING) return rp_fail(RP_ERR_FORMAT, "%s: field choices[%zu]: not a string", f->path, i);
            tpl[ntpl++] = rp_json_str(rp_json_at(ch, i), "");
        }
    } else {
        return rp_fail(RP_ERR_FORMAT, "%s: field choices: needs a field name or a list of 1 to %d templates", f->path, RP_TASKS_MAX_CHOICE_TEMPLATES);
    }
    RP_TRY(tf_str(f, "labels", 0, &labels));
    RP_TRY(tf_str(f, "gold", !*labels, &gold));
    if (*gold && *labels) return rp_fail(RP_ERR_FORMAT, "%s: fields gold and labels: give one, not both", f->path);
    if (strstr(labels, "..") || labels[0] == '/') return rp_fail(RP_ERR_FORMAT, "%s: field labels: \"%s\" must be a relative path without ..", f->path, labels);
    char path[4096], lpath[4096];
    rp_buf b = {0}, lb = {0};
    rp_status st = read_rel(dir, rp_json_str(rp_json_get(f->j, "data"), ""), &b, path, sizeof path);
    if (st == RP_OK && *labels) st = read_rel(dir, labels, &lb, lpath, sizeof lpath);
    if (st == RP_OK) {
        rp_tasks_jsonl spec = {.prompt = prompt, .choices_field = choices_field, .choice_templates = tpl, .n_choice_templates = ntpl,
                               .gold_field = *gold ? gold : NULL, .labels_path = lpath, .labels = *labels ? (lb.data ? lb.data : "") : NULL,
                               .labels_len = lb.len};
        st = rp_tasks_parse_jsonl(name, path, b.data, b.len, &spec, out);
    }
    rp_buf_free(&b);
    rp_buf_free(&lb);
    return st;
}

/* Read a task's data with its file format. */
static rp_status load_file(const char *name, const char *subject, const task_file *f, const rp_task_opts *opts, rp_task **out) {
    const char *mirror = opts && opts->mirror ? opts->mirror : NULL;
    const char *split = rp_json_str(rp_json_get(f->j, "split"), "test");
    if (opts && opts->split) {
        if (!tf_bool(f, "subjects") && strcmp(opts->split, split))
            return rp_fail(RP_ERR_INVAL, "task %s: split \"%s\": the task file %s declares only \"%s\"", name, opts->split, f->path, split);
        split = opts->split;
    }
    char dir[4096];
    RP_TRY(data_dir(f, mirror, dir, sizeof dir));
    const char *fmt = f->fmt->name, *data = rp_json_str(rp_json_get(f->j, "data"), "");
    if (!strcmp(fmt, "jsonl")) return load_jsonl(name, f, dir, out);
    if (!strcmp(fmt, "mmlu_csv")) return load_mmlu(name, dir, split, subject, tf_bool(f, "cloze"), out);
    if (!strcmp(fmt, "text")) return load_text(name, dir, data, out);
    char path[4096];
    rp_buf b = {0};
    rp_status st = read_rel(dir, data, &b, path, sizeof path);
    if (st == RP_OK) {
        if (!strcmp(fmt, "hellaswag_txt")) st = rp_tasks_parse_hellaswag(path, b.data, b.len, out);
        else if (!strcmp(fmt, "winogrande_jsonl")) st = rp_tasks_parse_winogrande(path, b.data, b.len, out);
        else if (!strcmp(fmt, "lambada_jsonl")) st = rp_tasks_parse_lambada(path, b.data, b.len, out);
        else {
            double mc = rp_json_num(rp_json_get(f->j, "mc"), 0);
            if (mc != 1 && mc != 2) st = rp_fail(RP_ERR_FORMAT, "%s: field mc: needs 1 or 2", f->path);
            else st = rp_tasks_parse_truthfulqa(path, b.data, b.len, (int)mc, out);
        }
    }
    rp_buf_free(&b);
    if (st == RP_OK) {   /* the task is named by its task file, whatever the parser called it */
        char *nm = strdup(name);
        if (!nm) { rp_task_free(*out); *out = NULL; return rp_fail(RP_ERR_NOMEM, "out of memory"); }
        free((*out)->name);
        (*out)->name = nm;
    }
    return st;
}

/* Load a task by name. */
rp_status rp_task_load(const char *name, const rp_task_opts *opts, rp_task **out) {
    *out = NULL;
    if (!plain_name(name)) return rp_fail(RP_ERR_INVAL, "task \"%s\": a task name is letters, digits, _ and -", name);
    task_file f;
    const char *subject = NULL;
    rp_status st = tf_find(name, &f);
    if (st == RP_ERR_NOTFOUND) {
        /* <task>_<subject> of a task with "subjects": the longest such prefix wins. */
        char pre[256];
        snprintf(pre, sizeof pre, "%s", name);
        for (char *us = strrchr(pre, '_'); us && st == RP_ERR_NOTFOUND; us = strrchr(pre, '_')) {
            *us = 0;
            st = tf_find(pre, &f);
            if (st == RP_OK && !tf_bool(&f, "subjects")) { rp_json_free(f.j); f.j = NULL; st = RP_ERR_NOTFOUND; }
            if (st == RP_OK) subject = name + (us - pre) + 1;
        }
    }
    if (st == RP_ERR_NOTFOUND) {
        rp_buf l = {0};
        const char *const *n = rp_task_names();
        for (size_t i = 0; n[i]; i++) rp_buf_printf(&l, "%s%s", i ? ", " : "", n[i]);
        st = rp_fail(RP_ERR_INVAL, "unknown task \"%s\"; valid: %s, mmlu_<subject>, mmlu_cloze_<subject> "
                     "(task files: harness/eval/tasks/ and $REPRO_TASKS)", name, l.data ? l.data : "");
        rp_buf_free(&l);
        return st;
    }
    if (st != RP_OK) { rp_json_free(f.j); return st; }
    if (subject) {
        char base[256];
        snprintf(base, sizeof base, "%.*s", (int)(subject - 1 - name), name);
        st = load_file(base, subject, &f, opts, out);
    } else {
        st = load_file(name, NULL, &f, opts, out);
    }
    rp_json_free(f.j);
    if (st != RP_OK) return rp_fail_ctx(st, "task %s: ", name);
    return RP_OK;
}
