/* task.c: the task container (items, groups, few-shot pools) and few-shot prompt building.
 * Items own deep copies of their strings; rp_task_add_item is the only way in and checks every item
 * invariant of task.h, so the scorer can index choices and contexts without further checks. */
#include "eval/task.h"
#include <stdlib.h>
#include <string.h>

static char *dup_str(const char *s) {
    size_t n = strlen(s);
    char *p = malloc(n + 1);
    if (p) memcpy(p, s, n + 1);
    return p;
}

static void item_clear(rp_task_item *it) {
    free(it->context);
    for (int c = 0; c < it->n_choices; c++) {
        if (it->choices) free(it->choices[c]);
        if (it->contexts) free(it->contexts[c]);
    }
    free(it->choices);
    free(it->contexts);
    free(it->truth);
    memset(it, 0, sizeof *it);
}

/* Create an empty task with a single unnamed group. */
rp_status rp_task_new(const char *name, rp_task_kind kind, const char *source, rp_task **out) {
    *out = NULL;
    rp_task *t = calloc(1, sizeof *t);
    if (!t) return rp_fail(RP_ERR_NOMEM, "out of memory creating task %s", name);
    t->name = dup_str(name);
    t->source = dup_str(source ? source : "");
    t->kind = kind;
    t->delim = " ";
    t->shot_sep = "\n\n";
    if (!t->name || !t->source) { rp_task_free(t); return rp_fail(RP_ERR_NOMEM, "out of memory creating task %s", name); }
    size_t g;
    rp_status st = rp_task_add_group(t, name, "", 0, &g);
    if (st != RP_OK) { rp_task_free(t); return st; }
    *out = t;
    return RP_OK;
}

/* Free the task, its items, groups and pools. */
void rp_task_free(rp_task *t) {
    if (!t) return;
    for (size_t i = 0; i < t->n_items; i++) item_clear(&t->items[i]);
    free(t->items);
    for (size_t g = 0; g < t->n_groups; g++) {
        for (size_t i = 0; i < t->groups[g].n_shots; i++) item_clear(&t->groups[g].shots[i]);
        free(t->groups[g].shots);
        free(t->groups[g].name);
        free(t->groups[g].header);
    }
    free(t->groups);
    free(t->name);
    free(t->source);
    free(t->text);
    free(t);
}

static rp_status check_item(const rp_task *t, const rp_task_item *it, const char *where) {
    if (it->n_choices < 1 || it->n_choices > 1000)
        return rp_fail(RP_ERR_FORMAT, "%s: field choices: %d choices (need 1 to 1000)", where, it->n_choices);
    if (!it->choices) return rp_fail(RP_ERR_FORMAT, "%s: field choices: missing", where);
    if (!it->contexts && !it->context) return rp_fail(RP_ERR_FORMAT, "%s: field context: missing", where);
    for (int c = 0; c < it->n_choices; c++) {
        if (!it->choices[c] || !it->choices[c][0])
            return rp_fail(RP_ERR_FORMAT, "%s: field choices[%d]: empty answer", where, c);
        if (it->contexts && !it->contexts[c])
            return rp_fail(RP_ERR_FORMAT, "%s: field contexts[%d]: missing", where, c);
    }
    if (it->gold < 0 || it->gold >= it->n_choices)
        return rp_fail(RP_ERR_FORMAT, "%s: field gold: %d is not a choice index (0..%d)", where, it->gold, it->n_choices - 1);
    if (it->truth) {
        int nt = 0;
        for (int c = 0; c < it->n_choices; c++) nt += it->truth[c] != 0;
        if (nt == 0 || nt == it->n_choices)
            return rp_fail(RP_ERR_FORMAT, "%s: field labels: %d of %d choices true (need at least one true and one false)",
                           where, nt, it->n_choices);
    }
    if (it->group < 0 || (size_t)it->group >= t->n_groups)
        return rp_fail(RP_ERR_INVAL, "%s: group %d out of range", where, it->group);
    return RP_OK;
}

static rp_status copy_item(rp_task_item *dst, const rp_task_item *src) {
    memset(dst, 0, sizeof *dst);
    dst->n_choices = src->n_choices;
    dst->gold = src->gold;
    dst->group = src->group;
    dst->choices = calloc((size_t)src->n_choices, sizeof(char *));
    if (!dst->choices) goto nomem;
    if (src->context && !(dst->context = dup_str(src->context))) goto nomem;
    if (src->contexts && !(dst->contexts = calloc((size_t)src->n_choices, sizeof(char *)))) goto nomem;
    if (src->truth) {
        if (!(dst->truth = malloc((size_t)src->n_choices))) goto nomem;
        memcpy(dst->truth, src->truth, (size_t)src->n_choices);
    }
    for (int c = 0; c < src->n_choices; c++) {
        if (!(dst->choices[c] = dup_str(src->choices[c]))) goto nomem;
        if (src->contexts && !(dst->contexts[c] = dup_str(src->contexts[c]))) goto nomem;
    }
    return RP_OK;
nomem:
    item_clear(dst);
    return rp_fail(RP_ERR_NOMEM, "out of memory copying a task item");
}

/* Check and append a deep copy of an item. */
rp_status rp_task_add_item(rp_task *t, const rp_task_item *it, const char *where) {
    RP_TRY(check_item(t, it, where));
    if (t->kind == RP_TASK_MC2 && !it->truth) return rp_fail(RP_ERR_FORMAT, "%s: field labels: missing (MC2 task)", where);
    if (t->n_items == t->cap_items) {
        size_t cap = t->cap_items ? t->cap_items * 2 : 64;
        rp_task_item *p = realloc(t->items, cap * sizeof *p);
        if (!p) return rp_fail(RP_ERR_NOMEM, "out of memory growing task %s to %zu items", t->name, cap);
        t->items = p;
        t->cap_items = cap;
    }
    RP_TRY(copy_item(&t->items[t->n_items], it));
    t->n_items++;
    return RP_OK;
}

/* Append a group with its header. */
rp_status rp_task_add_group(rp_task *t, const char *name, const char *header, int shots_in_order, size_t *index) {
    rp_task_group *p = realloc(t->groups, (t->n_groups + 1) * sizeof *p);
    if (!p) return rp_fail(RP_ERR_NOMEM, "out of memory adding group %s", name);
    t->groups = p;
    rp_task_group *g = &t->groups[t->n_groups];
    memset(g, 0, sizeof *g);
    g->name = dup_str(name);
    g->header = dup_str(header);
    g->shots_in_order = shots_in_order;
    if (!g->name || !g->header) {
        free(g->name); free(g->header);
        return rp_fail(RP_ERR_NOMEM, "out of memory adding group %s", name);
    }
    *index = t->n_groups++;
    return RP_OK;
}

/* Give group g the items of pool as its few-shot examples (pool is consumed). */
rp_status rp_task_set_shots(rp_task *t, size_t g, rp_task *pool) {
    if (g >= t->n_groups) { rp_task_free(pool); return rp_fail(RP_ERR_INVAL, "group %zu out of range", g); }
    rp_task_group *gr = &t->groups[g];
    for (size_t i = 0; i < gr->n_shots; i++) item_clear(&gr->shots[i]);
    free(gr->shots);
    gr->shots = pool->items;
    gr->n_shots = pool->n_items;
    for (size_t i = 0; i < gr->n_shots; i++) gr->shots[i].group = (int)g;
    pool->items = NULL;
    pool->n_items = pool->cap_items = 0;
    rp_task_free(pool);
    return RP_OK;
}

/* The context before choice c. */
const char *rp_task_item_context(const rp_task_item *it, int c) {
    return it->contexts ? it->contexts[c] : it->context;
}

static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* Uniform in [0, n) without modulo bias. */
static size_t below(uint64_t *s, size_t n) {
    uint64_t lim = UINT64_MAX - UINT64_MAX % n;
    uint64_t r;
    do r = splitmix64(s); while (r >= lim);
    return (size_t)(r % n);
}

/* Seeded Fisher-Yates shuffle of idx[0..n). */
void rp_task_shuffle(size_t *idx, size_t n, uint64_t seed) {
    uint64_t s = seed ^ 0x5DEECE66DULL;
    for (size_t i = n; i > 1; i--) {
        size_t j = below(&s, i);
        size_t tmp = idx[i - 1]; idx[i - 1] = idx[j]; idx[j] = tmp;
    }
}

static rp_status append_example(const rp_task *t, const rp_task_item *ex, rp_buf *out) {
    RP_TRY(rp_buf_puts(out, rp_task_item_context(ex, ex->gold)));
    RP_TRY(rp_buf_puts(out, t->delim));
    RP_TRY(rp_buf_puts(out, ex->choices[ex->gold]));
    return rp_buf_puts(out, t->shot_sep);
}

/* Header plus K few-shot examples for item i. */
rp_status rp_task_prefix(const rp_task *t, size_t i, int k, uint64_t seed, rp_buf *out) {
    rp_buf_clear(out);
    if (i >= t->n_items) return rp_fail(RP_ERR_INVAL, "task %s: item %zu out of range (%zu items)", t->name, i, t->n_items);
    if (k < 0) return rp_fail(RP_ERR_INVAL, "task %s: negative number of shots %d", t->name, k);
    const rp_task_item *it = &t->items[i];
    const rp_task_group *g = &t->groups[it->group];
    RP_TRY(rp_buf_puts(out, g->header));
    if (k == 0) return RP_OK;
    /* The pool: the group's own examples, or every other item of the task. */
    size_t m = g->shots ? g->n_shots : (t->n_items > 0 ? t->n_items - 1 : 0);
    size_t kk = (size_t)k < m ? (size_t)k : m;
    if (g->shots && g->shots_in_order) {
        for (size_t j = 0; j < kk; j++) RP_TRY(append_example(t, &g->shots[j], out));
        return RP_OK;
    }
    size_t *pick = malloc((kk ? kk : 1) * sizeof *pick);
    if (!pick) return rp_fail(RP_ERR_NOMEM, "out of memory drawing few-shot examples");
    uint64_t s = seed * 0x9E3779B97F4A7C15ULL + i + 1;
    rp_status st = RP_OK;
    for (size_t j = 0; j < kk; j++) {
        size_t r;
        int dup;
        do { /* rejection of repeats: kk is small next to m in practice, and kk <= m always */
            r = below(&s, m);
            if (!g->shots && r >= i) r++;   /* skip the item itself */
            dup = 0;
            for (size_t q = 0; q < j; q++) dup |= pick[q] == r;
        } while (dup);
        pick[j] = r;
        const rp_task_item *ex = g->shots ? &g->shots[r] : &t->items[r];
        if ((st = append_example(t, ex, out)) != RP_OK) break;
    }
    free(pick);
    return st;
}
