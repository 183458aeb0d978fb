/* tasks_load.c: task names -> their data set's files and parsers. Files are resolved through the asset
 * registry (mirror, cache or download, always sha256-verified) unless opts->mirror names a folder laid
 * out as <asset>/<file> (tests with hand-made data).
 * MMLU is assembled from one CSV per subject: each subject is a group with its own header and its dev
 * split as the few-shot pool (first K in order). The perplexity texts are kept byte for byte (wiki.test.raw
 * keeps its CRLF line ends: llama.cpp's reference figures were computed on the file as it is). */
#include "eval/task.h"
#include "assets/assets.h"
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const task_names[] = {
    "mmlu", "mmlu_cloze", "arc_easy", "arc_challenge", "hellaswag", "piqa", "boolq", "winogrande",
    "truthfulqa_mc1", "truthfulqa_mc2", "lambada", "wikitext2", "tinystories", NULL,
};

/* The names rp_task_load accepts. */
const char *const *rp_task_names(void) { return task_names; }

static rp_status read_rel(const char *mirror, const char *rel, rp_buf *b, char *path, size_t pathsz) {
    snprintf(path, pathsz, "%s/%s", mirror, rel);
    return rp_read_file(path, b);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Subjects present in <mirror>/mmlu/test, sorted. */
static rp_status mmlu_subjects(const char *mirror, char ***out, size_t *n) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/mmlu/test", mirror);
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
    snprintf(rel, sizeof rel, "mmlu/%s/%s_%s.csv", split, subject, split);
    rp_buf b = {0};
    rp_status st = read_rel(mirror, rel, &b, path, sizeof path);
    if (st == RP_OK) st = rp_tasks_parse_mmlu_csv(path, b.data, b.len, subject, cloze, out);
    rp_buf_free(&b);
    return st;
}

/* Load MMLU: all subjects (subject == NULL) or one. */
static rp_status load_mmlu(const char *mirror, const char *split, const char *subject, int cloze, rp_task **out) {
    if (strcmp(split, "test") && strcmp(split, "val") && strcmp(split, "dev"))
        return rp_fail(RP_ERR_INVAL, "mmlu: split \"%s\" is not one of test, val, dev", split);
    char **subs = NULL;
    size_t ns = 0;
    if (subject) {
        if (!(subs = malloc(sizeof *subs)) || !(subs[0] = strdup(subject))) { free(subs); return rp_fail(RP_ERR_NOMEM, "out of memory"); }
        ns = 1;
    } else {
        RP_TRY(mmlu_subjects(mirror, &subs, &ns));
    }
    char name[256], src[4096];
    snprintf(name, sizeof name, "%s%s%s", cloze ? "mmlu_cloze" : "mmlu", subject ? "_" : "", subject ? subject : "");
    snprintf(src, sizeof src, "%s/mmlu/%s", mirror, split);
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

/* The asset holding a task's data, NULL for an unknown task. */
static const char *task_asset(const char *name) {
    static const char *const map[][2] = {
        {"mmlu", "mmlu"}, {"arc_", "arc"}, {"hellaswag", "hellaswag"}, {"piqa", "piqa"}, {"boolq", "boolq"},
        {"winogrande", "winogrande"}, {"truthfulqa_", "truthfulqa"}, {"lambada", "lambada-openai"},
        {"wikitext2", "wikitext2"}, {"tinystories", "tinystories-valid-slice"}};
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (strncmp(name, map[i][0], strlen(map[i][0])) == 0) return map[i][1];
    return NULL;
}

/* The folder that holds the task's asset folder: the registry gives <root>/<asset> (or, for a one-file
 * asset, <root>/<asset>/<file>), fetched and verified. */
static rp_status data_root(const char *name, char *root, size_t n) {
    const char *asset = task_asset(name);
    root[0] = 0;
    if (!asset) return RP_OK;   /* unknown task: reported below with the valid names */
    RP_TRY(rp_asset_path(asset, NULL, root, n));
    for (int up = 0; up < 2; up++) {
        char *slash = strrchr(root, '/');
        if (!slash) break;
        int named = strcmp(slash + 1, asset) == 0;
        *slash = 0;
        if (named) return RP_OK;
    }
    return rp_fail(RP_ERR_IO, "task %s: the asset registry's path for %s is not inside a folder named %s", name, asset, asset);
}

/* Load a task by name. */
rp_status rp_task_load(const char *name, const rp_task_opts *opts, rp_task **out) {
    *out = NULL;
    const char *split = opts && opts->split ? opts->split : "test";
    char root[4096];
    const char *mirror = opts && opts->mirror ? opts->mirror : NULL;
    if (!mirror) {
        rp_status rst = data_root(name, root, sizeof root);
        if (rst != RP_OK) return rp_fail_ctx(rst, "task %s: ", name);
        mirror = root;
    }
    char path[4096], path2[4096];
    rp_buf b = {0}, b2 = {0};
    rp_status st;
    if (strcmp(name, "mmlu") == 0) return load_mmlu(mirror, split, NULL, 0, out);
    if (strcmp(name, "mmlu_cloze") == 0) return load_mmlu(mirror, split, NULL, 1, out);
    if (strncmp(name, "mmlu_cloze_", 11) == 0) return load_mmlu(mirror, split, name + 11, 1, out);
    if (strncmp(name, "mmlu_", 5) == 0) {
        const char *sub = name + 5;
        for (const char *p = sub; *p; p++)
            if (!((*p >= 'a' && *p <= 'z') || *p == '_')) return rp_fail(RP_ERR_INVAL, "task %s: bad MMLU subject name", name);
        return load_mmlu(mirror, split, sub, 0, out);
    }
    if (strcmp(name, "wikitext2") == 0) return load_text(name, mirror, "wikitext2/wiki.test.raw", out);
    if (strcmp(name, "tinystories") == 0) return load_text(name, mirror, "tinystories-valid-slice/tinystories_val.txt", out);
    if (strcmp(name, "arc_easy") == 0 || strcmp(name, "arc_challenge") == 0) {
        char rel[64];
        snprintf(rel, sizeof rel, "arc/%s.jsonl", name);
        if ((st = read_rel(mirror, rel, &b, path, sizeof path)) == RP_OK)
            st = rp_tasks_parse_query_jsonl(name, path, b.data, b.len, "\nAnswer:", out);
    } else if (strcmp(name, "boolq") == 0) {
        if ((st = read_rel(mirror, "boolq/boolq.jsonl", &b, path, sizeof path)) == RP_OK)
            st = rp_tasks_parse_query_jsonl(name, path, b.data, b.len, "\nAnswer:", out);
    } else if (strcmp(name, "hellaswag") == 0) {
        if ((st = read_rel(mirror, "hellaswag/hellaswag_val_full.txt", &b, path, sizeof path)) == RP_OK)
            st = rp_tasks_parse_hellaswag(path, b.data, b.len, out);
    } else if (strcmp(name, "piqa") == 0) {
        if ((st = read_rel(mirror, "piqa/valid.jsonl", &b, path, sizeof path)) == RP_OK &&
            (st = read_rel(mirror, "piqa/valid-labels.lst", &b2, path2, sizeof path2)) == RP_OK)
            st = rp_tasks_parse_piqa(path, b.data, b.len, path2, b2.data, b2.len, out);
    } else if (strcmp(name, "winogrande") == 0) {
        if ((st = read_rel(mirror, "winogrande/winogrande.jsonl", &b, path, sizeof path)) == RP_OK)
            st = rp_tasks_parse_winogrande(path, b.data, b.len, out);
    } else if (strcmp(name, "truthfulqa_mc1") == 0 || strcmp(name, "truthfulqa_mc2") == 0) {
        if ((st = read_rel(mirror, "truthfulqa/truthfulqa_en_mc.json", &b, path, sizeof path)) == RP_OK)
            st = rp_tasks_parse_truthfulqa(path, b.data, b.len, name[13] - '0', out);
    } else if (strcmp(name, "lambada") == 0) {
        if ((st = read_rel(mirror, "lambada-openai/lambada_openai.jsonl", &b, path, sizeof path)) == RP_OK)
            st = rp_tasks_parse_lambada(path, b.data, b.len, out);
    } else {
        rp_buf l = {0};
        for (const char *const *n = task_names; *n; n++) rp_buf_printf(&l, "%s%s", n == task_names ? "" : ", ", *n);
        st = rp_fail(RP_ERR_INVAL, "unknown task \"%s\"; valid: %s, mmlu_<subject>, mmlu_cloze_<subject>", name, l.data ? l.data : "");
        rp_buf_free(&l);
    }
    rp_buf_free(&b);
    rp_buf_free(&b2);
    return st;
}
