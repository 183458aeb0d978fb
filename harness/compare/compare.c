/* compare.c: commit comparison over the registry (see compare.h), read through db/'s query functions (no
 * SQL here). Runs are read once per commit, grouped
 * in memory by a key string "experiment \x1f params-without-seed \x1f backend \x1f device"; each group
 * then reads its runs' summaries and the last point of each metric series. Params shown for a group are
 * only those whose values differ between the groups of its experiment. */
#include "compare/compare.h"
#include "util/json.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

rp_agg rp_compare_aggregate(const double *v, int n) {
    rp_agg a = { NAN, NAN, 0 };
    double s = 0;
    for (int i = 0; i < n; i++) if (isfinite(v[i])) { s += v[i]; a.n++; }
    if (!a.n) return a;
    a.mean = s / a.n;
    double ss = 0;
    for (int i = 0; i < n; i++) if (isfinite(v[i])) ss += (v[i] - a.mean) * (v[i] - a.mean);
    a.std = a.n > 1 ? sqrt(ss / (a.n - 1)) : 0;
    return a;
}

int rp_compare_is_regression(double a, double b, int direction, double threshold_pct) {
    if (!direction || !isfinite(a) || !isfinite(b)) return 0;
    double worse = direction > 0 ? a - b : b - a;   /* > 0 when B is worse */
    if (worse <= 0) return 0;
    if (a == 0) return 1;
    return 100.0 * worse / fabs(a) > threshold_pct;
}

/* One finished run. */
typedef struct { int64_t id; int dirty; char *key, *experiment, *params, *backend, *device; } crun;
/* One group: its runs at A and at B (indices into the run arrays). */
typedef struct { char *key; const crun *proto; int64_t *a, *b; int na, nb; } cgroup;

static void free_runs(crun *r, int n) {
    for (int i = 0; i < n; i++) { free(r[i].key); free(r[i].experiment); free(r[i].params); free(r[i].backend); free(r[i].device); }
    free(r);
}

/* params_json without its "seed" member, canonical (keys sorted). */
static char *params_without_seed(const char *params) {
    rp_json *j = NULL;
    if (!params || rp_json_parse(params, strlen(params), &j) != RP_OK) return strdup(params ? params : "{}");
    rp_json *o = rp_json_new_object();
    for (size_t i = 0; o && rp_json_typeof(j) == RP_JSON_OBJECT && i < rp_json_len(j); i++) {
        const char *k = rp_json_key_at(j, i);
        if (!strcmp(k, "seed")) continue;
        rp_buf t = { 0 };
        rp_json *c = NULL;
        if (rp_json_write(rp_json_at(j, i), &t, 0) == RP_OK && rp_json_parse(t.data, t.len, &c) == RP_OK) rp_json_set(o, k, c);
        rp_buf_free(&t);
    }
    rp_buf w = { 0 }, canon = { 0 };
    char *out = NULL;
    if (o && rp_json_write(o, &w, 0) == RP_OK && rp_db_canonical_json(w.data, &canon) == RP_OK) out = strdup(canon.data);
    rp_buf_free(&w); rp_buf_free(&canon);
    rp_json_free(o); rp_json_free(j);
    return out ? out : strdup("{}");
}

/* A string member of a query row (empty when missing or null); caller frees. */
static char *member(const rp_json *row, const char *key) { return strdup(rp_json_str(rp_json_get(row, key), "")); }

/* The finished runs at commit (prefix match), oldest first, read through the registry's run listing. */
static rp_status load_runs(rp_db *db, const char *commit, crun **out, int *n) {
    *out = NULL; *n = 0;
    rp_run_filter f = { .commit_prefix = commit, .status = "finished" };
    rp_json *rows = NULL;
    rp_status s = rp_db_runs(db, &f, &rows);
    size_t nr = rp_json_len(rows);
    if (s == RP_OK && nr && !(*out = calloc(nr, sizeof **out))) s = rp_fail(RP_ERR_NOMEM, "out of memory");
    for (size_t k = 0; s == RP_OK && k < nr; k++) {
        const rp_json *row = rp_json_at(rows, nr - 1 - k);   /* the listing is newest first */
        crun *r = &(*out)[(*n)++];
        r->id = (int64_t)rp_json_num(rp_json_get(row, "id"), 0);
        r->dirty = rp_json_num(rp_json_get(row, "git_dirty"), 0) != 0;
        r->experiment = member(row, "experiment");
        rp_buf raw = { 0 };
        const rp_json *pj = rp_json_get(row, "params_json");
        if (pj && rp_json_typeof(pj) != RP_JSON_NULL) rp_json_write(pj, &raw, 0);
        r->params = params_without_seed(raw.data ? raw.data : "{}");
        rp_buf_free(&raw);
        r->backend = member(row, "backend");
        r->device = member(row, "device");
        if (!r->experiment || !r->params || !r->backend || !r->device) { s = rp_fail(RP_ERR_NOMEM, "out of memory"); break; }
        size_t kl = strlen(r->experiment) + strlen(r->params) + strlen(r->backend) + strlen(r->device) + 4;
        r->key = malloc(kl);
        if (r->key) snprintf(r->key, kl, "%s\x1f%s\x1f%s\x1f%s", r->experiment, r->params, r->backend, r->device);
        else s = rp_fail(RP_ERR_NOMEM, "out of memory");
    }
    rp_json_free(rows);
    return s;
}

rp_status rp_compare_count_runs(rp_db *db, const char *commit, int64_t *n) {
    crun *r;
    int k;
    RP_TRY(load_runs(db, commit, &r, &k));
    free_runs(r, k);
    *n = k;
    return RP_OK;
}

/* A quantity of a group: name, kind (summary/metric), direction and values per side. */
typedef struct { char *name; int metric, dir; double *va, *vb; int na, nb, capa, capb; } cqty;

static rp_status qty_add(cqty **q, int *nq, const char *name, int metric, int dir, int side_b, double v) {
    cqty *x = NULL;
    for (int i = 0; i < *nq; i++) if ((*q)[i].metric == metric && !strcmp((*q)[i].name, name)) { x = &(*q)[i]; break; }
    if (!x) {
        cqty *p = realloc(*q, (size_t)(*nq + 1) * sizeof *p);
        if (!p) return rp_fail(RP_ERR_NOMEM, "out of memory");
        *q = p;
        x = &p[(*nq)++];
        memset(x, 0, sizeof *x);
        x->name = strdup(name);
        x->metric = metric;
        if (!x->name) return rp_fail(RP_ERR_NOMEM, "out of memory");
    }
    if (dir) x->dir = dir;
    double **arr = side_b ? &x->vb : &x->va;
    int *len = side_b ? &x->nb : &x->na, *cap = side_b ? &x->capb : &x->capa;
    if (*len == *cap) {
        *cap = *cap ? 2 * *cap : 8;
        double *p = realloc(*arr, (size_t)*cap * sizeof *p);
        if (!p) return rp_fail(RP_ERR_NOMEM, "out of memory");
        *arr = p;
    }
    (*arr)[(*len)++] = v;
    return RP_OK;
}

/* Gather summaries and last metric values of the given runs into q, read through rp_db_get_run. */
static rp_status gather(rp_db *db, const int64_t *ids, int n, int side_b, cqty **q, int *nq) {
    rp_status st = RP_OK;
    for (int i = 0; st == RP_OK && i < n; i++) {
        rp_json *run = NULL;
        st = rp_db_run(db, ids[i], &run);
        const rp_json *sums = rp_json_get(run, "summaries"), *ms = rp_json_get(run, "metrics");
        for (size_t k = 0; st == RP_OK && k < rp_json_len(sums); k++) {
            const rp_json *x = rp_json_at(sums, k);
            st = qty_add(q, nq, rp_json_str(rp_json_get(x, "name"), "?"), 0, (int)rp_json_num(rp_json_get(x, "direction"), 0),
                         side_b, rp_db_json_value(rp_json_get(x, "value")));
        }
        for (size_t k = 0; st == RP_OK && k < rp_json_len(ms); k++) {
            const char *name = rp_json_str(rp_json_get(rp_json_at(ms, k), "name"), "?");
            double *xs = NULL, *vs = NULL;
            size_t m = 0;
            st = rp_db_get_metric_points(db, ids[i], name, &xs, &vs, &m);
            if (st == RP_OK && m) st = qty_add(q, nq, name, 1, 0, side_b, vs[m - 1]);
            free(xs); free(vs);
        }
        rp_json_free(run);
    }
    return st;
}

/* "k=v k2=v2" of the params of run r whose values differ between the groups of its experiment. */
static void params_diff(const cgroup *g, int ng, int gi, rp_buf *txt, rp_json *obj) {
    rp_json *mine = NULL;
    const char *p = g[gi].proto->params;
    if (rp_json_parse(p, strlen(p), &mine) != RP_OK) return;
    for (size_t k = 0; k < rp_json_len(mine); k++) {
        const char *key = rp_json_key_at(mine, k);
        rp_buf a = { 0 };
        rp_json_write(rp_json_at(mine, k), &a, 0);
        int differs = 0;
        for (int j = 0; j < ng && !differs; j++) {
            if (j == gi || strcmp(g[j].proto->experiment, g[gi].proto->experiment)) continue;
            rp_json *other = NULL;
            if (rp_json_parse(g[j].proto->params, strlen(g[j].proto->params), &other) != RP_OK) continue;
            rp_buf b = { 0 };
            const rp_json *ov = rp_json_get(other, key);
            if (ov) rp_json_write(ov, &b, 0);
            differs = !ov || strcmp(a.data, b.data) != 0;
            rp_buf_free(&b);
            rp_json_free(other);
        }
        if (differs) {
            rp_buf_printf(txt, " %s=%s", key, a.data);
            rp_json *c = NULL;
            if (rp_json_parse(a.data, a.len, &c) == RP_OK) rp_json_set(obj, key, c);
        }
        rp_buf_free(&a);
    }
    rp_json_free(mine);
}

/* Append "mean ± std" (or "mean" for one run, "-" for none). */
static void agg_text(rp_buf *b, rp_agg a) {
    if (!a.n) rp_buf_puts(b, "-");
    else if (a.n == 1) rp_buf_printf(b, "%.6g", a.mean);
    else rp_buf_printf(b, "%.6g ± %.3g", a.mean, a.std);
}

static rp_json *num_or_null(double v) { return isfinite(v) ? rp_json_new_number(v) : rp_json_new_null(); }

static int add_group(cgroup **g, int *ng, const crun *r, int side_b) {
    int gi = -1;
    for (int i = 0; i < *ng; i++) if (!strcmp((*g)[i].key, r->key)) { gi = i; break; }
    if (gi < 0) {
        cgroup *p = realloc(*g, (size_t)(*ng + 1) * sizeof *p);
        if (!p) return -1;
        *g = p;
        gi = (*ng)++;
        memset(&p[gi], 0, sizeof p[gi]);
        p[gi].key = r->key;
        p[gi].proto = r;
    }
    cgroup *x = &(*g)[gi];
    int64_t **arr = side_b ? &x->b : &x->a;
    int *len = side_b ? &x->nb : &x->na;
    int64_t *p = realloc(*arr, (size_t)(*len + 1) * sizeof *p);
    if (!p) return -1;
    *arr = p;
    p[(*len)++] = r->id;
    return 0;
}

rp_status rp_compare_commits(rp_db *db, const rp_compare_opts *o, rp_buf *text, rp_buf *json, int *regressions) {
    *regressions = 0;
    RP_TRY(rp_db_flush(db));
    crun *ra = NULL, *rb = NULL;
    int na = 0, nb = 0;
    rp_status st = load_runs(db, o->commit_a, &ra, &na);
    if (st == RP_OK) st = load_runs(db, o->commit_b, &rb, &nb);
    if (st == RP_OK && (!na || !nb))
        st = rp_fail(RP_ERR_NOTFOUND, "%s: no finished run at %s (%s)%s", rp_db_path(db), !na ? o->label_a : o->label_b,
                     !na ? o->commit_a : o->commit_b, "; run its experiments first, or pass --run to build and run it in a temporary worktree");
    cgroup *g = NULL;
    int ng = 0;
    for (int i = 0; st == RP_OK && i < na; i++) if (add_group(&g, &ng, &ra[i], 0)) st = rp_fail(RP_ERR_NOMEM, "out of memory");
    for (int i = 0; st == RP_OK && i < nb; i++) if (add_group(&g, &ng, &rb[i], 1)) st = rp_fail(RP_ERR_NOMEM, "out of memory");
    int dirty_a = 0, dirty_b = 0;
    for (int i = 0; i < na; i++) dirty_a += ra[i].dirty;
    for (int i = 0; i < nb; i++) dirty_b += rb[i].dirty;
    rp_json *root = rp_json_new_object(), *jgroups = rp_json_new_array(), *warn = rp_json_new_array();
    if (st == RP_OK) {
        rp_buf_printf(text, "compare A=%s (%.12s, %d runs) -> B=%s (%.12s, %d runs), regression threshold %g%%\n",
                      o->label_a, o->commit_a, na, o->label_b, o->commit_b, nb, o->threshold_pct);
        char w[256];
        if (dirty_a) { snprintf(w, sizeof w, "%d run(s) at A were made with uncommitted changes (dirty): numbers may not match the commit", dirty_a); rp_buf_printf(text, "warning: %s\n", w); rp_json_push(warn, rp_json_new_string(w)); }
        if (dirty_b) { snprintf(w, sizeof w, "%d run(s) at B were made with uncommitted changes (dirty): numbers may not match the commit", dirty_b); rp_buf_printf(text, "warning: %s\n", w); rp_json_push(warn, rp_json_new_string(w)); }
    }
    for (int gi = 0; st == RP_OK && gi < ng; gi++) {
        cgroup *x = &g[gi];
        rp_json *jg = rp_json_new_object(), *jp = rp_json_new_object(), *rows = rp_json_new_array();
        rp_buf_printf(text, "\n%s [%s/%s]", x->proto->experiment, x->proto->backend, x->proto->device);
        params_diff(g, ng, gi, text, jp);
        rp_buf_printf(text, "  (runs: A %d, B %d)\n", x->na, x->nb);
        rp_json_set(jg, "experiment", rp_json_new_string(x->proto->experiment));
        rp_json_set(jg, "backend", rp_json_new_string(x->proto->backend));
        rp_json_set(jg, "device", rp_json_new_string(x->proto->device));
        rp_json_set(jg, "params", jp);
        rp_json_set(jg, "runs_a", rp_json_new_number(x->na));
        rp_json_set(jg, "runs_b", rp_json_new_number(x->nb));
        if (!x->na || !x->nb) {
            rp_buf_printf(text, "  only at %s: nothing to compare\n", x->na ? "A" : "B");
        } else {
            cqty *q = NULL;
            int nq = 0;
            st = gather(db, x->a, x->na, 0, &q, &nq);
            if (st == RP_OK) st = gather(db, x->b, x->nb, 1, &q, &nq);
            for (int k = 0; st == RP_OK && k < nq; k++) {
                rp_agg A = rp_compare_aggregate(q[k].va, q[k].na), B = rp_compare_aggregate(q[k].vb, q[k].nb);
                double d = B.mean - A.mean, pct = A.mean != 0 ? 100.0 * d / fabs(A.mean) : NAN;
                int reg = rp_compare_is_regression(A.mean, B.mean, q[k].dir, o->threshold_pct);
                *regressions += reg;
                rp_buf_printf(text, "  %-7s %-28s ", q[k].metric ? "metric" : "summary", q[k].name);
                rp_buf line = { 0 };
                agg_text(&line, A);
                rp_buf_puts(&line, " -> ");
                agg_text(&line, B);
                rp_buf_printf(text, "%-44s", line.data);
                rp_buf_free(&line);
                if (isfinite(d)) rp_buf_printf(text, " %+.4g", d); else rp_buf_puts(text, " -");
                if (isfinite(pct)) rp_buf_printf(text, " (%+.2f%%)", pct);
                const char *dir = q[k].dir > 0 ? "higher is better" : q[k].dir < 0 ? "lower is better" : q[k].metric ? "last value" : "no direction";
                const char *verdict = reg ? "REGRESSION" : !q[k].dir || !isfinite(d) || d == 0 ? "" :
                                      (d > 0) == (q[k].dir > 0) ? "better" : "worse (within threshold)";
                rp_buf_printf(text, "  %s%s%s\n", dir, *verdict ? "  " : "", verdict);
                rp_json *row = rp_json_new_object();
                rp_json_set(row, "kind", rp_json_new_string(q[k].metric ? "metric" : "summary"));
                rp_json_set(row, "name", rp_json_new_string(q[k].name));
                rp_json_set(row, "direction", rp_json_new_number(q[k].dir));
                rp_json_set(row, "a_mean", num_or_null(A.mean)); rp_json_set(row, "a_std", num_or_null(A.std));
                rp_json_set(row, "a_n", rp_json_new_number(A.n));
                rp_json_set(row, "b_mean", num_or_null(B.mean)); rp_json_set(row, "b_std", num_or_null(B.std));
                rp_json_set(row, "b_n", rp_json_new_number(B.n));
                rp_json_set(row, "delta", num_or_null(d));
                rp_json_set(row, "delta_pct", num_or_null(pct));
                rp_json_set(row, "regression", rp_json_new_bool(reg));
                rp_json_push(rows, row);
            }
            for (int k = 0; k < nq; k++) { free(q[k].name); free(q[k].va); free(q[k].vb); }
            free(q);
        }
        rp_json_set(jg, "rows", rows);
        rp_json_push(jgroups, jg);
    }
    int compared = 0;
    for (int gi = 0; gi < ng; gi++) compared += g[gi].na && g[gi].nb;
    if (st == RP_OK && !compared) {
        rp_buf_puts(text, "\nnothing compared: no group has runs at both A and B\n");
        st = rp_fail(RP_ERR_NOTFOUND, "compared nothing: none of the %d group(s) (experiment + params + backend + device) "
                     "has finished runs at both %s and %s, so no number was compared (runs with other params or presets "
                     "do not compare; rerun with the same ones, or use --run to run the missing commit with them)",
                     ng, o->label_a, o->label_b);
    }
    if (st == RP_OK) {
        rp_buf_printf(text, "\n%d group%s compared, %d regression%s past %g%%\n", compared, compared == 1 ? "" : "s",
                      *regressions, *regressions == 1 ? "" : "s", o->threshold_pct);
        if (json) {
            rp_json_set(root, "a", rp_json_new_string(o->commit_a));
            rp_json_set(root, "b", rp_json_new_string(o->commit_b));
            rp_json_set(root, "threshold_pct", rp_json_new_number(o->threshold_pct));
            rp_json_set(root, "groups", jgroups);
            jgroups = NULL;
            rp_json_set(root, "warnings", warn);
            warn = NULL;
            rp_json_set(root, "regressions", rp_json_new_number(*regressions));
            rp_json_set(root, "groups_compared", rp_json_new_number(compared));
            st = rp_json_write(root, json, 1);
        }
    }
    rp_json_free(root);
    rp_json_free(jgroups);
    rp_json_free(warn);
    for (int i = 0; i < ng; i++) { free(g[i].a); free(g[i].b); }
    free(g);
    free_runs(ra, na);
    free_runs(rb, nb);
    return st;
}
