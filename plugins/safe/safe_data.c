/* safe_data.c: LongFact / FActScore / demonstration loaders. Each JSON line is parsed on its own, so an
 * error names the file and 1-based line; strings are copied out, so nothing keeps the JSON tree alive.
 * Invariant: on error the output list holds only fully built items and can be freed as usual. */
#include "plugins/safe/safe_data.h"
#include "util/json.h"
#include "util/buf.h"
#include <ctype.h>
#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static char *dupn(const char *s, size_t n) {
    char *c = malloc(n + 1);
    if (c) { memcpy(c, s, n); c[n] = 0; }
    return c;
}
static char *dup0(const char *s) { return dupn(s, strlen(s)); }

/* Calls fn on each non-blank line of a JSONL file, parsed. */
typedef rp_status (*line_fn)(const char *path, size_t lineno, const rp_json *j, void *ctx);
static rp_status each_jsonl(const char *path, line_fn fn, void *ctx) {
    rp_buf b = {0};
    RP_TRY(rp_read_file(path, &b));
    rp_status st = RP_OK;
    size_t p = 0, lineno = 0;
    while (st == RP_OK && p < b.len) {
        size_t e = p;
        while (e < b.len && b.data[e] != '\n') e++;
        lineno++;
        size_t q = p;
        while (q < e && isspace((unsigned char)b.data[q])) q++;
        if (q < e) {
            rp_json *j = NULL;
            st = rp_json_parse(b.data + p, e - p, &j);
            if (st != RP_OK) st = rp_fail_ctx(st, "%s:%zu: ", path, lineno);
            else st = fn(path, lineno, j, ctx);
            rp_json_free(j);
        }
        p = e + 1;
    }
    rp_buf_free(&b);
    return st;
}

static rp_status push_prompt(rp_safe_prompts *out, const char *topic, const char *prompt, int line) {
    rp_safe_prompt *p = realloc(out->items, (out->n + 1) * sizeof *p);
    if (!p) return rp_fail(RP_ERR_NOMEM, "out of memory growing the prompt list");
    out->items = p;
    rp_safe_prompt *it = &p[out->n];
    it->topic = dup0(topic);
    it->prompt = dup0(prompt);
    it->line = line;
    if (!it->topic || !it->prompt) { free(it->topic); free(it->prompt); return rp_fail(RP_ERR_NOMEM, "out of memory"); }
    out->n++;
    return RP_OK;
}

static const char *str_field(const rp_json *j, const char *key) {
    const rp_json *v = rp_json_get(j, key);
    return v && rp_json_typeof(v) == RP_JSON_STRING ? rp_json_str(v, NULL) : NULL;
}

typedef struct topic_ctx { rp_safe_prompts *out; const char *topic; } topic_ctx;
static rp_status topic_line(const char *path, size_t lineno, const rp_json *j, void *vctx) {
    topic_ctx *c = vctx;
    const char *prompt = str_field(j, "prompt");
    if (!prompt || !*prompt) return rp_fail(RP_ERR_FORMAT, "%s:%zu: field \"prompt\": missing or not a non-empty string", path, lineno);
    return push_prompt(c->out, c->topic, prompt, (int)lineno - 1);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

rp_status rp_safe_longfact_load(const char *dir, const char *subset, rp_safe_prompts *out) {
    const char *date;
    if (strcmp(subset, "objects") == 0) date = "01-12-2024";
    else if (strcmp(subset, "concepts") == 0) date = "01-10-2024";
    else return rp_fail(RP_ERR_INVAL, "LongFact subset \"%s\": must be \"objects\" or \"concepts\"", subset);
    rp_buf folder = {0}, prefix = {0}, path = {0};
    rp_status st = rp_buf_printf(&folder, "%s/longfact-%s_gpt4_%s_noduplicates", dir, subset, date);
    if (st == RP_OK) st = rp_buf_printf(&prefix, "longfact-%s_", subset);
    DIR *d = st == RP_OK ? opendir(folder.data) : NULL;
    if (st == RP_OK && !d) st = rp_fail(RP_ERR_NOTFOUND, "%s: cannot open the LongFact folder", folder.data);
    char **names = NULL;
    size_t nn = 0;
    struct dirent *de;
    while (st == RP_OK && (de = readdir(d))) {
        size_t l = strlen(de->d_name);
        if (l <= prefix.len + 6 || strncmp(de->d_name, prefix.data, prefix.len) != 0 || strcmp(de->d_name + l - 6, ".jsonl") != 0)
            continue;
        char **g = realloc(names, (nn + 1) * sizeof *g);
        if (!g || !(g[nn] = dup0(de->d_name))) { if (g) names = g; st = rp_fail(RP_ERR_NOMEM, "out of memory"); break; }
        names = g;
        nn++;
    }
    if (d) closedir(d);
    if (st == RP_OK && nn == 0) st = rp_fail(RP_ERR_NOTFOUND, "%s: no %s*.jsonl topic files", folder.data, prefix.data);
    if (nn) qsort(names, nn, sizeof *names, cmp_str);
    for (size_t i = 0; st == RP_OK && i < nn; i++) {
        size_t l = strlen(names[i]);
        char *topic = dupn(names[i] + prefix.len, l - prefix.len - 6);
        if (!topic) { st = rp_fail(RP_ERR_NOMEM, "out of memory"); break; }
        rp_buf_clear(&path);
        st = rp_buf_printf(&path, "%s/%s", folder.data, names[i]);
        topic_ctx c = {out, topic};
        if (st == RP_OK) st = each_jsonl(path.data, topic_line, &c);
        free(topic);
    }
    for (size_t i = 0; i < nn; i++) free(names[i]);
    free(names);
    rp_buf_free(&folder); rp_buf_free(&prefix); rp_buf_free(&path);
    return st;
}

static rp_status bench_line(const char *path, size_t lineno, const rp_json *j, void *vout) {
    const char *topic = str_field(j, "topic"), *prompt = str_field(j, "prompt");
    const rp_json *li = rp_json_get(j, "line_index");
    if (!topic || !*topic) return rp_fail(RP_ERR_FORMAT, "%s:%zu: field \"topic\": missing or empty", path, lineno);
    if (!prompt || !*prompt) return rp_fail(RP_ERR_FORMAT, "%s:%zu: field \"prompt\": missing or empty", path, lineno);
    double v = rp_json_num(li, NAN);
    if (!(v >= 0 && v < 1e6) || v != floor(v))
        return rp_fail(RP_ERR_FORMAT, "%s:%zu: field \"line_index\": not a non-negative integer", path, lineno);
    return push_prompt(vout, topic, prompt, (int)v);
}

rp_status rp_safe_benchmark_load(const char *path, rp_safe_prompts *out) { return each_jsonl(path, bench_line, out); }

void rp_safe_prompts_free(rp_safe_prompts *p) {
    for (size_t i = 0; i < p->n; i++) { free(p->items[i].topic); free(p->items[i].prompt); }
    free(p->items);
    p->items = NULL;
    p->n = 0;
}

size_t rp_safe_prompts_topics(const rp_safe_prompts *p) {
    size_t n = 0;
    for (size_t i = 0; i < p->n; i++) {
        size_t j = 0;
        while (j < i && strcmp(p->items[j].topic, p->items[i].topic) != 0) j++;
        if (j == i) n++;
    }
    return n;
}

/* ---- FActScore ---- */

static void fs_item_free(rp_safe_fs_item *it) {
    free(it->input); free(it->output); free(it->topic);
    for (size_t i = 0; i < it->n_facts; i++) free(it->facts[i].text);
    free(it->facts);
    memset(it, 0, sizeof *it);
}

static rp_status fs_line(const char *path, size_t lineno, const rp_json *j, void *vout) {
    rp_safe_factscore *out = vout;
    const char *input = str_field(j, "input"), *output = str_field(j, "output"), *topic = str_field(j, "topic");
    if (!input) return rp_fail(RP_ERR_FORMAT, "%s:%zu: field \"input\": missing or not a string", path, lineno);
    if (!output) return rp_fail(RP_ERR_FORMAT, "%s:%zu: field \"output\": missing or not a string", path, lineno);
    const rp_json *ann = rp_json_get(j, "annotations");
    if (!ann || (rp_json_typeof(ann) != RP_JSON_NULL && rp_json_typeof(ann) != RP_JSON_ARRAY))
        return rp_fail(RP_ERR_FORMAT, "%s:%zu: field \"annotations\": missing or neither null nor a list", path, lineno);
    rp_safe_fs_item it = {0};
    rp_status st = RP_OK;
    it.input = dup0(input); it.output = dup0(output); it.topic = dup0(topic ? topic : "");
    if (!it.input || !it.output || !it.topic) st = rp_fail(RP_ERR_NOMEM, "out of memory");
    it.abstained = rp_json_typeof(ann) == RP_JSON_NULL;
    it.n_sentences = rp_json_len(ann);
    for (size_t s = 0; st == RP_OK && s < it.n_sentences; s++) {
        const rp_json *sent = rp_json_at(ann, s);
        const rp_json *hf = rp_json_get(sent, "human-atomic-facts");
        if (!hf || rp_json_typeof(hf) == RP_JSON_NULL) continue;   /* a sentence without human facts */
        if (rp_json_typeof(hf) != RP_JSON_ARRAY) {
            st = rp_fail(RP_ERR_FORMAT, "%s:%zu: annotations[%zu].human-atomic-facts: not a list", path, lineno, s);
            break;
        }
        for (size_t f = 0; st == RP_OK && f < rp_json_len(hf); f++) {
            const rp_json *fact = rp_json_at(hf, f);
            const char *text = str_field(fact, "text"), *label = str_field(fact, "label");
            rp_safe_label l = RP_SAFE_UNPARSED;
            if (label && strcmp(label, "S") == 0) l = RP_SAFE_SUPPORTED;
            else if (label && strcmp(label, "NS") == 0) l = RP_SAFE_NOT_SUPPORTED;
            else if (label && strcmp(label, "IR") == 0) l = RP_SAFE_IRRELEVANT;
            if (!text || l == RP_SAFE_UNPARSED) {
                st = rp_fail(RP_ERR_FORMAT, "%s:%zu: annotations[%zu].human-atomic-facts[%zu]: %s \"%s\"", path, lineno,
                             s, f, !text ? "text missing, label" : "label not S/NS/IR:", label ? label : "(none)");
                break;
            }
            rp_safe_hfact *g = realloc(it.facts, (it.n_facts + 1) * sizeof *g);
            if (!g) { st = rp_fail(RP_ERR_NOMEM, "out of memory"); break; }
            it.facts = g;
            g[it.n_facts] = (rp_safe_hfact){ dup0(text), s, l };
            if (!g[it.n_facts].text) { st = rp_fail(RP_ERR_NOMEM, "out of memory"); break; }
            it.n_facts++;
        }
    }
    if (st == RP_OK) {
        rp_safe_fs_item *g = realloc(out->items, (out->n + 1) * sizeof *g);
        if (!g) st = rp_fail(RP_ERR_NOMEM, "out of memory");
        else { out->items = g; g[out->n++] = it; return RP_OK; }
    }
    fs_item_free(&it);
    return st;
}

rp_status rp_safe_factscore_load(const char *path, rp_safe_factscore *out) { return each_jsonl(path, fs_line, out); }

void rp_safe_factscore_free(rp_safe_factscore *f) {
    for (size_t i = 0; i < f->n; i++) fs_item_free(&f->items[i]);
    free(f->items);
    f->items = NULL;
    f->n = 0;
}

rp_safe_counts rp_safe_fs_counts(const rp_safe_fs_item *it) {
    rp_safe_counts c = {0, 0, 0};
    for (size_t i = 0; i < it->n_facts; i++) {
        if (it->facts[i].label == RP_SAFE_SUPPORTED) c.s++;
        else if (it->facts[i].label == RP_SAFE_NOT_SUPPORTED) c.ns++;
        else if (it->facts[i].label == RP_SAFE_IRRELEVANT) c.ir++;
    }
    return c;
}

/* ---- demonstrations ---- */

void rp_safe_demos_free(rp_safe_demos *d) {
    for (size_t i = 0; i < d->n; i++) {
        free((char *)d->items[i].sentence);
        for (size_t j = 0; j < d->items[i].n_facts; j++) free((char *)d->items[i].facts[j]);
        free((void *)d->items[i].facts);
    }
    free(d->items);
    d->items = NULL;
    d->n = 0;
}

rp_status rp_safe_demos_load(const char *path, rp_safe_demos *out) {
    rp_buf b = {0};
    RP_TRY(rp_read_file(path, &b));
    rp_json *j = NULL;
    rp_status st = rp_json_parse(b.data, b.len, &j);
    rp_buf_free(&b);
    if (st != RP_OK) return rp_fail_ctx(st, "%s: ", path);
    if (rp_json_typeof(j) != RP_JSON_OBJECT) { rp_json_free(j); return rp_fail(RP_ERR_FORMAT, "%s: not a JSON object of sentence → facts", path); }
    size_t n = rp_json_len(j);
    out->items = calloc(n ? n : 1, sizeof *out->items);
    if (!out->items) { rp_json_free(j); return rp_fail(RP_ERR_NOMEM, "out of memory"); }
    for (size_t i = 0; st == RP_OK && i < n; i++) {
        const char *key = rp_json_key_at(j, i);
        const rp_json *facts = rp_json_at(j, i);
        if (!key || rp_json_typeof(facts) != RP_JSON_ARRAY) { st = rp_fail(RP_ERR_FORMAT, "%s: entry %zu: value is not a list of facts", path, i); break; }
        rp_safe_demo *d = &out->items[out->n];
        size_t nf = rp_json_len(facts);
        const char **fl = calloc(nf ? nf : 1, sizeof *fl);
        d->sentence = dup0(key);
        d->facts = fl;
        out->n++;
        if (!fl || !d->sentence) { st = rp_fail(RP_ERR_NOMEM, "out of memory"); break; }
        for (size_t f = 0; f < nf; f++) {
            const char *s = rp_json_str(rp_json_at(facts, f), NULL);
            if (!s) { st = rp_fail(RP_ERR_FORMAT, "%s: entry %zu (\"%.40s\"): fact %zu is not a string", path, i, key, f); break; }
            if (!(fl[f] = dup0(s))) { st = rp_fail(RP_ERR_NOMEM, "out of memory"); break; }
            d->n_facts = f + 1;
        }
    }
    rp_json_free(j);
    if (st != RP_OK) rp_safe_demos_free(out);
    return st;
}

/* Lower-case alphanumeric tokens of s, as a list. */
static rp_status tokens(const char *s, rp_safe_strlist *out) {
    for (size_t i = 0; s[i];) {
        while (s[i] && !isalnum((unsigned char)s[i])) i++;
        size_t b = i;
        while (s[i] && isalnum((unsigned char)s[i])) i++;
        if (i > b) {
            RP_TRY(rp_safe_strlist_push(out, s + b, i - b));
            for (char *c = out->items[out->n - 1]; *c; c++) *c = (char)tolower((unsigned char)*c);
        }
    }
    return RP_OK;
}

static size_t count_tok(const rp_safe_strlist *l, const char *t) {
    size_t n = 0;
    for (size_t i = 0; i < l->n; i++) n += strcmp(l->items[i], t) == 0;
    return n;
}

rp_status rp_safe_demos_pick(const rp_safe_demos *d, const char *sentence, size_t n_fixed, size_t n_near,
                             size_t *idx, size_t *n_idx) {
    *n_idx = 0;
    size_t nf = n_fixed < d->n ? n_fixed : d->n;
    for (size_t i = 0; i < nf; i++) idx[(*n_idx)++] = i;
    size_t nc = d->n - nf;
    if (n_near == 0 || nc == 0) return RP_OK;
    /* BM25 (k1 = 1.5, b = 0.75) of the target's tokens against each remaining demo sentence */
    rp_safe_strlist q = {0};
    rp_safe_strlist *docs = calloc(nc, sizeof *docs);
    double *score = calloc(nc, sizeof *score);
    rp_status st = (!docs || !score) ? rp_fail(RP_ERR_NOMEM, "out of memory") : tokens(sentence, &q);
    double avg = 0;
    for (size_t i = 0; st == RP_OK && i < nc; i++) { st = tokens(d->items[nf + i].sentence, &docs[i]); avg += (double)docs[i].n; }
    if (st == RP_OK) {
        avg = avg / (double)nc;
        if (avg <= 0) avg = 1;
        for (size_t t = 0; t < q.n; t++) {
            size_t df = 0;
            for (size_t i = 0; i < nc; i++) df += count_tok(&docs[i], q.items[t]) > 0;
            double idf = log(((double)nc - (double)df + 0.5) / ((double)df + 0.5) + 1.0);
            for (size_t i = 0; i < nc; i++) {
                double tf = (double)count_tok(&docs[i], q.items[t]);
                score[i] += idf * tf * 2.5 / (tf + 1.5 * (0.25 + 0.75 * (double)docs[i].n / avg));
            }
        }
        for (size_t k = 0; k < n_near && k < nc; k++) {
            size_t best = nc;
            for (size_t i = 0; i < nc; i++) {
                if (score[i] < 0) continue;                       /* taken */
                if (best == nc || score[i] > score[best]) best = i;
            }
            if (best == nc) break;
            idx[(*n_idx)++] = nf + best;
            score[best] = -1;
        }
    }
    rp_safe_strlist_free(&q);
    for (size_t i = 0; docs && i < nc; i++) rp_safe_strlist_free(&docs[i]);
    free(docs);
    free(score);
    return st;
}
