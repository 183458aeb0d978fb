/* report.c: the HTML + Markdown report from the registry (see report.h). Everything shown comes from
 * the database (read through db/'s query functions: no SQL here) and the figure files it lists; text is HTML-escaped (or Markdown-escaped) before output;
 * an image is embedded only when its PNG file could be read, otherwise the page says why the figure is
 * missing, so the page never holds a broken image. */
#include "report/report.h"
#include "compare/compare.h"
#include "util/json.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* One reported run. */
typedef struct {
    int64_t id, seed;
    char *experiment, *paper, *commit, *device, *backend, *started, *params;
    int dirty;
} rrun;

/* The finished runs of the reported commit(s), newest first: where a reported run finds the runs that
 * differ from it only by seed. */
typedef struct { const rrun *r; size_t n; } rpool;

static void free_runs(rrun *r, size_t n) {
    for (size_t i = 0; i < n; i++) {
        free(r[i].experiment); free(r[i].paper); free(r[i].commit); free(r[i].device);
        free(r[i].backend); free(r[i].started); free(r[i].params);
    }
    free(r);
}

/* A string member of a query row (empty when missing or null); caller frees. */
static char *member(const rp_json *row, const char *key) { return strdup(rp_json_str(rp_json_get(row, key), "")); }

/* Rank of a run's commit: the newest run of each commit decides (lower rank = newer commit). */
static size_t commit_rank(const rrun *all, size_t n, const char *commit) {
    for (size_t i = 0; i < n; i++) if (!strcmp(all[i].commit, commit)) return i;
    return n;
}

static const rrun *sort_base;
static size_t sort_n;
/* Order: commit (newest first), paper, experiment, id. */
static int run_order(const void *x, const void *y) {
    const rrun *a = x, *b = y;
    size_t ca = commit_rank(sort_base, sort_n, a->commit), cb = commit_rank(sort_base, sort_n, b->commit);
    if (ca != cb) return ca < cb ? -1 : 1;
    int c = strcmp(a->paper, b->paper);
    if (!c) c = strcmp(a->experiment, b->experiment);
    return c ? c : (a->id > b->id) - (a->id < b->id);
}

/* The runs to report: finished ones (of o->experiment when set), of one commit (o->commit, else the
 * latest commit with a finished run) unless o->all_commits, the latest per experiment + params unless
 * o->all_runs; ordered by commit (newest first), paper, experiment, id. *commit_out: the commit chosen. */
static rp_status select_runs(rp_db *db, const rp_report_opts *o, rrun **out, size_t *n, rrun **pool, size_t *npool,
                             char *commit_out, size_t cn) {
    *out = NULL; *n = 0; *pool = NULL; *npool = 0;
    rp_run_filter f = { .experiment = o ? o->experiment : NULL, .commit_prefix = o ? o->commit : NULL, .status = "finished" };
    rp_json *rows = NULL;
    RP_TRY(rp_db_runs(db, &f, &rows));   /* newest first */
    size_t nr = rp_json_len(rows);
    rrun *all = nr ? calloc(nr, sizeof *all) : NULL;
    rp_status s = nr && !all ? rp_fail(RP_ERR_NOMEM, "out of memory") : RP_OK;
    snprintf(commit_out, cn, "%s", nr ? rp_json_str(rp_json_get(rp_json_at(rows, 0), "git_commit"), "") : "");
    size_t na = 0;
    for (size_t i = 0; s == RP_OK && i < nr; i++) {
        const rp_json *row = rp_json_at(rows, i);
        rrun *r = &all[na++];
        r->id = (int64_t)rp_json_num(rp_json_get(row, "id"), 0);
        r->seed = (int64_t)rp_json_num(rp_json_get(row, "seed"), 0);
        r->dirty = rp_json_num(rp_json_get(row, "git_dirty"), 0) != 0;
        r->experiment = member(row, "experiment"); r->paper = member(row, "paper"); r->commit = member(row, "git_commit");
        r->device = member(row, "device"); r->backend = member(row, "backend"); r->started = member(row, "started_at");
        rp_buf pj = { 0 };
        const rp_json *params = rp_json_get(row, "params_json");
        if (params && rp_json_typeof(params) != RP_JSON_NULL) rp_json_write(params, &pj, 0);
        r->params = strdup(pj.data ? pj.data : "{}");
        rp_buf_free(&pj);
        if (!r->experiment || !r->paper || !r->commit || !r->device || !r->backend || !r->started || !r->params)
            s = rp_fail(RP_ERR_NOMEM, "out of memory");
    }
    rp_json_free(rows);
    /* Keep the chosen runs (all arrive newest first, so the first of a key is its latest). */
    rrun *keep = na ? calloc(na, sizeof *keep) : NULL;
    if (s == RP_OK && na && !keep) s = rp_fail(RP_ERR_NOMEM, "out of memory");
    for (size_t i = 0; s == RP_OK && i < na; i++) {
        int take = (o && o->all_commits) || !strcmp(all[i].commit, commit_out);
        for (size_t j = 0; take && !(o && o->all_runs) && j < *n; j++)
            take = strcmp(keep[j].commit, all[i].commit) || strcmp(keep[j].experiment, all[i].experiment) ||
                   strcmp(keep[j].params, all[i].params);
        if (take) keep[(*n)++] = all[i];
    }
    /* keep borrows all's strings; copy them so that each list owns its own. */
    for (size_t i = 0; i < *n; i++) {   /* every entry, so that none is left borrowing on a failure */
        rrun *k = &keep[i];
        k->experiment = strdup(k->experiment); k->paper = strdup(k->paper); k->commit = strdup(k->commit);
        k->device = strdup(k->device); k->backend = strdup(k->backend); k->started = strdup(k->started); k->params = strdup(k->params);
        if (!k->experiment || !k->paper || !k->commit || !k->device || !k->backend || !k->started || !k->params)
            s = rp_fail(RP_ERR_NOMEM, "out of memory");
    }
    if (s == RP_OK && *n) {
        /* Rank commits by their newest run: a copy of keep while it is still newest first. */
        rrun *order = calloc(*n, sizeof *order);
        if (!order) s = rp_fail(RP_ERR_NOMEM, "out of memory");
        else {
            memcpy(order, keep, *n * sizeof *order);
            sort_base = order; sort_n = *n;
            qsort(keep, *n, sizeof *keep, run_order);
            free(order);
        }
    }
    if (s != RP_OK) { free_runs(keep, *n); keep = NULL; *n = 0; free_runs(all, na); all = NULL; na = 0; }
    *out = keep;
    *pool = all;
    *npool = na;
    return s;
}

/* Append text HTML-escaped. */
static void html(rp_buf *b, const char *s) {
    for (; s && *s; s++) {
        switch (*s) {
        case '<': rp_buf_puts(b, "&lt;"); break;
        case '>': rp_buf_puts(b, "&gt;"); break;
        case '&': rp_buf_puts(b, "&amp;"); break;
        case '"': rp_buf_puts(b, "&quot;"); break;
        case '\'': rp_buf_puts(b, "&#39;"); break;
        default: rp_buf_append(b, s, 1);
        }
    }
}

/* Append text for a Markdown table cell (pipes and backslashes escaped, newlines as spaces). */
static void md(rp_buf *b, const char *s) {
    for (; s && *s; s++) {
        if (*s == '|' || *s == '\\' || *s == '*' || *s == '_' || *s == '`' || *s == '<') { rp_buf_puts(b, "\\"); rp_buf_append(b, s, 1); }
        else if (*s == '\n' || *s == '\r') rp_buf_puts(b, " ");
        else rp_buf_append(b, s, 1);
    }
}

/* A double of query JSON (number, or the strings nan/inf/-inf) as display text: "—" for NaN. */
static void num_text(const rp_json *v, char *out, size_t n) {
    double d = rp_db_json_value(v);
    if (isfinite(d)) snprintf(out, n, "%.6g", d);
    else if (isinf(d)) snprintf(out, n, "%s", d > 0 ? "inf" : "-inf");
    else snprintf(out, n, "—");
}

static void base64(rp_buf *b, const unsigned char *p, size_t n) {
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char q[4];
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)p[i] << 16 | (i + 1 < n ? (unsigned)p[i + 1] << 8 : 0) | (i + 2 < n ? p[i + 2] : 0);
        q[0] = tab[v >> 18 & 63]; q[1] = tab[v >> 12 & 63];
        q[2] = i + 1 < n ? tab[v >> 6 & 63] : '=';
        q[3] = i + 2 < n ? tab[v & 63] : '=';
        rp_buf_append(b, q, 4);
    }
}

/* The file in a figure's files list that ends with ext, or NULL. */
static const char *file_with(const rp_json *files, const char *ext) {
    size_t el = strlen(ext);
    for (size_t i = 0; i < rp_json_len(files); i++) {
        const char *f = rp_json_str(rp_json_at(files, i), "");
        size_t fl = strlen(f);
        if (fl > el && !strcmp(f + fl - el, ext)) return f;
    }
    return NULL;
}

static const char css[] =
    "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
    "table{border-collapse:collapse;margin:1em 0;font-size:14px}th,td{border:1px solid #ccc;padding:4px 8px;text-align:left}"
    "th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}"
    ".pass{color:#0a7d20;font-weight:600}.fail{color:#c0181f;font-weight:600}.not_reproducible{color:#777}"
    "figure{margin:1.5em 0}figure img{max-width:100%;border:1px solid #ddd}figcaption{font-size:13px;color:#555}"
    "code{font-size:12px}.missing{color:#a60;font-style:italic}";

/* Provenance text: "run 12 · abc1234* · cpu/device". */
static void provenance(const rrun *r, char *out, size_t n) {
    snprintf(out, n, "run %lld · %.7s%s · %s%s%s", (long long)r->id, r->commit[0] ? r->commit : "unknown",
             r->dirty ? "*" : "", r->backend, r->backend[0] ? "/" : "", r->device);
}

/* The targets of a paper's runs: one HTML table and one Markdown table. */
static rp_status targets(rp_db *db, const rrun *runs, size_t lo, size_t hi, rp_buf *h, rp_buf *m) {
    int any = 0;
    for (size_t i = lo; i < hi; i++) {
        rp_json *run = NULL;
        RP_TRY(rp_db_run(db, runs[i].id, &run));
        const rp_json *tg = rp_json_get(run, "targets");
        for (size_t k = 0; k < rp_json_len(tg); k++) {
            const rp_json *t = rp_json_at(tg, k);
            if (!any++) {
                rp_buf_puts(h, "<table><tr><th>target</th><th>experiment</th><th>paper</th><th>reproduced</th>"
                               "<th>tolerance / kind</th><th>status</th><th>provenance</th></tr>\n");
                rp_buf_puts(m, "| target | experiment | paper | reproduced | tolerance / kind | status | provenance |\n"
                               "|---|---|---:|---:|---|---|---|\n");
            }
            const char *name = rp_json_str(rp_json_get(t, "name"), "?"), *kind = rp_json_str(rp_json_get(t, "kind"), "?");
            const char *status = rp_json_str(rp_json_get(t, "status"), "?"), *note = rp_json_str(rp_json_get(t, "note"), "");
            char pv[64], tol[64], rv[64], tk[128], prov[512];
            num_text(rp_json_get(t, "paper_value"), pv, sizeof pv);
            num_text(rp_json_get(t, "tolerance"), tol, sizeof tol);
            num_text(rp_json_get(t, "reproduced"), rv, sizeof rv);
            if (!strcmp(kind, "exact")) snprintf(tk, sizeof tk, "± %s (exact)", tol);
            else if (!strcmp(kind, "statistical")) snprintf(tk, sizeof tk, "± %s (statistical: z standard errors)", tol);
            else if (!strcmp(kind, "shape"))   /* a qualitative claim: no paper number or tolerance */
                snprintf(tk, sizeof tk, "shape: the claim %s", !strcmp(status, "pass") ? "held" : "did not hold");
            else snprintf(tk, sizeof tk, "not reproducible here");
            provenance(&runs[i], prov, sizeof prov);
            rp_buf_puts(h, "<tr><td>"); html(h, name);
            if (*note) { rp_buf_puts(h, "<br><small>"); html(h, note); rp_buf_puts(h, "</small>"); }
            rp_buf_puts(h, "</td><td>"); html(h, runs[i].experiment);
            rp_buf_puts(h, "</td><td class=num>"); html(h, pv);
            rp_buf_puts(h, "</td><td class=num>"); html(h, rv);
            rp_buf_puts(h, "</td><td>"); html(h, tk);
            rp_buf_printf(h, "</td><td class=\"%s\">", !strcmp(status, "pass") ? "pass" : !strcmp(status, "fail") ? "fail" : "not_reproducible");
            html(h, status);
            rp_buf_puts(h, "</td><td>"); html(h, prov);
            rp_buf_puts(h, "</td></tr>\n");
            rp_buf_puts(m, "| "); md(m, name);
            if (*note) { rp_buf_puts(m, " (");  md(m, note); rp_buf_puts(m, ")"); }
            rp_buf_puts(m, " | "); md(m, runs[i].experiment);
            rp_buf_puts(m, " | "); md(m, pv); rp_buf_puts(m, " | "); md(m, rv); rp_buf_puts(m, " | "); md(m, tk);
            rp_buf_puts(m, " | "); rp_buf_puts(m, !strcmp(status, "pass") ? "**pass**" : !strcmp(status, "fail") ? "**FAIL**" : "not reproducible");
            rp_buf_puts(m, " | "); md(m, prov); rp_buf_puts(m, " |\n");
        }
        rp_json_free(run);
    }
    if (any) { rp_buf_puts(h, "</table>\n"); rp_buf_puts(m, "\n"); }
    else { rp_buf_puts(h, "<p>No targets recorded.</p>\n"); rp_buf_puts(m, "No targets recorded.\n\n"); }
    return RP_OK;
}

/* Whether two runs differ at most by seed (and run id): same commit, experiment, params, backend, device. */
static int same_but_seed(const rrun *a, const rrun *b) {
    return !strcmp(a->commit, b->commit) && !strcmp(a->experiment, b->experiment) && !strcmp(a->params, b->params) &&
           !strcmp(a->backend, b->backend) && !strcmp(a->device, b->device);
}

/* The runs that differ from r only by seed, the newest per seed (pool is newest first); only when r is
 * the newest of them (so each group is shown once). Returns how many were put in out (0 otherwise). */
static size_t seed_group(const rrun *r, const rpool *pool, const rrun **out) {
    size_t n = 0;
    for (size_t i = 0; i < pool->n; i++) {
        const rrun *p = &pool->r[i];
        if (!same_but_seed(p, r)) continue;
        if (!n && p->id != r->id) return 0;   /* a newer run of the group is the one that shows it */
        int seen = 0;
        for (size_t j = 0; j < n && !seen; j++) seen = out[j]->seed == p->seed;
        if (!seen) out[n++] = p;
    }
    return n;
}

/* When r's group holds two or more seeds: each summary of r as mean ± standard error (sample std /
 * sqrt(n)) over the seeds, one HTML and one Markdown table. */
static rp_status seed_table(rp_db *db, const rrun *r, const rpool *pool, const rp_json *sums, rp_buf *h, rp_buf *m) {
    const rrun **g = pool->n ? malloc(pool->n * sizeof *g) : NULL;
    size_t ng = g ? seed_group(r, pool, g) : 0;
    if (ng < 2 || !rp_json_len(sums)) { free(g); return RP_OK; }
    size_t ns = rp_json_len(sums);
    double *v = malloc(ns * ng * sizeof *v);
    if (!v) { free(g); return rp_fail(RP_ERR_NOMEM, "out of memory"); }
    for (size_t i = 0; i < ns * ng; i++) v[i] = NAN;
    rp_status st = RP_OK;
    for (size_t k = 0; st == RP_OK && k < ng; k++) {   /* v[s * ng + k]: summary s of seed k */
        rp_json *run = NULL;
        if ((st = rp_db_run(db, g[k]->id, &run)) != RP_OK) break;
        const rp_json *gs = rp_json_get(run, "summaries");
        for (size_t s = 0; s < ns; s++) {
            const char *name = rp_json_str(rp_json_get(rp_json_at(sums, s), "name"), "");
            for (size_t j = 0; j < rp_json_len(gs); j++)
                if (!strcmp(rp_json_str(rp_json_get(rp_json_at(gs, j), "name"), ""), name))
                    v[s * ng + k] = rp_db_json_value(rp_json_get(rp_json_at(gs, j), "value"));
        }
        rp_json_free(run);
    }
    if (st == RP_OK) {
        rp_buf seeds = { 0 };
        for (size_t k = 0; k < ng; k++) rp_buf_printf(&seeds, "%s%lld (run %lld)", k ? ", " : "", (long long)g[k]->seed, (long long)g[k]->id);
        rp_buf_printf(h, "<p>Over %zu seeds (runs that differ only by seed, the latest per seed): ", ng);
        html(h, seeds.data);
        rp_buf_puts(h, "</p>\n<table><tr><th>summary</th><th>mean</th><th>± standard error</th><th>seeds</th></tr>\n");
        rp_buf_printf(m, "Over %zu seeds (runs that differ only by seed, the latest per seed): ", ng);
        md(m, seeds.data);
        rp_buf_puts(m, "\n\n| summary | mean | ± standard error | seeds |\n|---|---:|---:|---:|\n");
        rp_buf_free(&seeds);
        for (size_t s = 0; s < ns; s++) {
            const char *name = rp_json_str(rp_json_get(rp_json_at(sums, s), "name"), "?");
            rp_agg a = rp_compare_aggregate(v + s * ng, (int)ng);
            char mean[64] = "—", se[64] = "—";
            if (a.n) snprintf(mean, sizeof mean, "%.6g", a.mean);
            if (a.n > 1) snprintf(se, sizeof se, "%.3g", a.std / sqrt((double)a.n));
            rp_buf_puts(h, "<tr><td>"); html(h, name);
            rp_buf_printf(h, "</td><td class=num>%s</td><td class=num>%s</td><td class=num>%d</td></tr>\n", mean, se, a.n);
            rp_buf_puts(m, "| "); md(m, name);
            rp_buf_printf(m, " | %s | %s | %d |\n", mean, se, a.n);
        }
        rp_buf_puts(h, "</table>\n");
        rp_buf_puts(m, "\n");
    }
    free(v);
    free(g);
    return st;
}

/* One run's summaries (and, over its seeds, their mean ± standard error) and figures. */
static rp_status run_details(rp_db *db, const rrun *r, const rpool *pool, const char *md_dir, rp_buf *h, rp_buf *m) {
    char prov[512];
    provenance(r, prov, sizeof prov);
    rp_buf_puts(h, "<h3>"); html(h, r->experiment); rp_buf_puts(h, " <small>("); html(h, prov);
    rp_buf_puts(h, ", "); html(h, r->started); rp_buf_puts(h, ")</small></h3>\n<p>params: <code>"); html(h, r->params);
    rp_buf_puts(h, "</code></p>\n");
    rp_buf_puts(m, "### "); md(m, r->experiment); rp_buf_puts(m, " ("); md(m, prov); rp_buf_puts(m, ")\n\nparams: `");
    rp_buf_puts(m, r->params); rp_buf_puts(m, "`\n\n");
    rp_json *run = NULL;
    RP_TRY(rp_db_run(db, r->id, &run));
    const rp_json *sums = rp_json_get(run, "summaries"), *figs = rp_json_get(run, "figures");
    int any = 0;
    for (size_t k = 0; k < rp_json_len(sums); k++) {
        const rp_json *x = rp_json_at(sums, k);
        const char *sname = rp_json_str(rp_json_get(x, "name"), "?");
        if (!any++) {
            rp_buf_puts(h, "<table><tr><th>summary</th><th>value</th><th>± stderr</th><th>n</th><th>better</th></tr>\n");
            rp_buf_puts(m, "| summary | value | ± stderr | n | better |\n|---|---:|---:|---:|---|\n");
        }
        char v[64], se[64], n[32];
        num_text(rp_json_get(x, "value"), v, sizeof v);
        num_text(rp_json_get(x, "stderr"), se, sizeof se);
        double cnt = rp_json_num(rp_json_get(x, "n"), 0);
        if (cnt > 0) snprintf(n, sizeof n, "%.0f", cnt);
        else snprintf(n, sizeof n, "—");   /* n unknown */
        int dir = (int)rp_json_num(rp_json_get(x, "direction"), 0);
        const char *better = dir > 0 ? "higher" : dir < 0 ? "lower" : "";
        rp_buf_puts(h, "<tr><td>"); html(h, sname);
        rp_buf_puts(h, "</td><td class=num>"); html(h, v); rp_buf_puts(h, "</td><td class=num>"); html(h, se);
        rp_buf_printf(h, "</td><td class=num>%s</td><td>%s</td></tr>\n", n, better);
        rp_buf_puts(m, "| "); md(m, sname);
        rp_buf_printf(m, " | %s | %s | %s | %s |\n", v, se, n, better);
    }
    if (any) { rp_buf_puts(h, "</table>\n"); rp_buf_puts(m, "\n"); }
    rp_status st = seed_table(db, r, pool, sums, h, m);
    if (st != RP_OK) { rp_json_free(run); return st; }
    for (size_t k = 0; k < rp_json_len(figs); k++) {
        const rp_json *fig = rp_json_at(figs, k), *files = rp_json_get(fig, "files_json"), *spec = rp_json_get(fig, "spec_json");
        const char *name = rp_json_str(rp_json_get(fig, "name"), "?");
        const char *title = rp_json_str(rp_json_get(spec, "title"), name);
        const char *png = rp_json_num(rp_json_get(fig, "rendered"), 0) ? file_with(files, ".png") : NULL;
        rp_buf img = { 0 };
        if (png && rp_read_file(png, &img) != RP_OK) { rp_buf_free(&img); png = NULL; }
        if (png && (img.len < 8 || memcmp(img.data, "\x89PNG\r\n\x1a\n", 8))) png = NULL;
        rp_buf_puts(h, "<figure>");
        if (png) {
            rp_buf_puts(h, "<img alt=\""); html(h, title); rp_buf_puts(h, "\" src=\"data:image/png;base64,");
            base64(h, (const unsigned char *)img.data, img.len);
            rp_buf_puts(h, "\">");
            size_t dl = strlen(md_dir);   /* link relative to the Markdown file when the image sits below it */
            const char *link = dl && !strncmp(png, md_dir, dl) && png[dl] == '/' ? png + dl + 1 : png;
            rp_buf_puts(m, "!["); md(m, title); rp_buf_puts(m, "]("); rp_buf_puts(m, link); rp_buf_puts(m, ")\n\n");
        } else {
            const char *gp = file_with(files, ".gp");
            rp_buf_puts(h, "<p class=missing>figure not rendered or its image is missing");
            if (gp) { rp_buf_puts(h, " (script: <code>"); html(h, gp); rp_buf_puts(h, "</code>; redraw with repro plot)"); }
            rp_buf_puts(h, "</p>");
            rp_buf_puts(m, "*figure "); md(m, name); rp_buf_puts(m, " not rendered or missing (redraw with `repro plot`)*\n\n");
        }
        rp_buf_puts(h, "<figcaption>"); html(h, name);
        if (strcmp(title, name)) { rp_buf_puts(h, ": "); html(h, title); }
        rp_buf_puts(h, "</figcaption></figure>\n");
        rp_buf_free(&img);
    }
    rp_json_free(run);
    return RP_OK;
}

rp_status rp_report_write(rp_db *db, const rp_report_opts *opts, const char *html_path, const char *md_path, int *nruns) {
    rrun *runs = NULL, *all = NULL;
    size_t n = 0, nall = 0;
    char commit[64] = "";
    RP_TRY(rp_db_flush(db));
    RP_TRY(select_runs(db, opts, &runs, &n, &all, &nall, commit, sizeof commit));
    rpool pool = { all, nall };
    if (nruns) *nruns = (int)n;
    rp_buf h = { 0 }, m = { 0 };
    char now[64], scope[256];
    time_t t = time(NULL);
    strftime(now, sizeof now, "%Y-%m-%d %H:%M UTC", gmtime(&t));
    int all_commits = opts && opts->all_commits;
    snprintf(scope, sizeof scope, "%s, %s", opts && opts->all_runs ? "every finished run" : "the latest finished run per experiment and params",
             all_commits ? "of every commit, grouped by commit" :
             opts && opts->commit ? "of the commit asked for" : "of the latest commit with finished runs (--all-commits for every commit)");
    rp_buf_printf(&h, "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8><title>repro report</title>"
                      "<meta name=viewport content=\"width=device-width\"><style>%s</style></head><body>\n"
                      "<h1>Reproduction report</h1>\n<p>Generated %s from <code>", css, now);
    html(&h, rp_db_path(db));
    rp_buf_printf(&h, "</code>: %zu run%s (", n, n == 1 ? "" : "s");
    html(&h, scope);
    if (!all_commits && n) rp_buf_printf(&h, ": commit <code>%.12s</code>", runs[0].commit);
    rp_buf_puts(&h, "). Provenance: run id · commit (* = uncommitted changes) · backend/device.</p>\n");
    rp_buf_printf(&m, "# Reproduction report\n\nGenerated %s from `%s`: %zu run%s (", now, rp_db_path(db), n, n == 1 ? "" : "s");
    md(&m, scope);
    if (!all_commits && n) rp_buf_printf(&m, ": commit `%.12s`", runs[0].commit);
    rp_buf_puts(&m, "). Provenance: run id · commit (\\* = uncommitted changes) · backend/device.\n\n");
    if (!n) { rp_buf_puts(&h, "<p>No finished runs yet.</p>\n"); rp_buf_puts(&m, "No finished runs yet.\n"); }
    rp_status st = RP_OK;
    char md_dir[4096] = "";
    const char *slash = md_path ? strrchr(md_path, '/') : NULL;
    if (slash) snprintf(md_dir, sizeof md_dir, "%.*s", (int)(slash - md_path), md_path);
    for (size_t lo = 0; st == RP_OK && lo < n;) {
        size_t hi = lo;
        if (all_commits && (!lo || strcmp(runs[lo].commit, runs[lo - 1].commit))) {   /* a commit's section */
            rp_buf_printf(&h, "<h2 class=commit>commit <code>%.12s</code></h2>\n", runs[lo].commit[0] ? runs[lo].commit : "unknown");
            rp_buf_printf(&m, "## commit `%.12s`\n\n", runs[lo].commit[0] ? runs[lo].commit : "unknown");
        }
        while (hi < n && !strcmp(runs[hi].paper, runs[lo].paper) && !strcmp(runs[hi].commit, runs[lo].commit)) hi++;
        const char *paper = runs[lo].paper[0] ? runs[lo].paper : "(no paper)";
        rp_buf_puts(&h, all_commits ? "<h3>" : "<h2>"); html(&h, paper); rp_buf_puts(&h, all_commits ? "</h3>\n" : "</h2>\n");
        rp_buf_puts(&m, all_commits ? "### " : "## "); md(&m, paper); rp_buf_puts(&m, "\n\n");
        st = targets(db, runs, lo, hi, &h, &m);
        for (size_t i = lo; st == RP_OK && i < hi; i++) st = run_details(db, &runs[i], &pool, md_dir, &h, &m);
        lo = hi;
    }
    /* Lets a headless browser (tests/report_test.sh) tell that every image decoded. */
    rp_buf_puts(&h, "<script>window.addEventListener('load',function(){var im=document.images,ok=0;"
                    "for(var i=0;i<im.length;i++)if(im[i].complete&&im[i].naturalWidth>0)ok++;"
                    "document.body.setAttribute('data-images',ok+'/'+im.length);});</script>\n</body></html>\n");
    if (st == RP_OK && html_path) st = rp_write_file(html_path, h.data, h.len);
    if (st == RP_OK && md_path) st = rp_write_file(md_path, m.data, m.len);
    rp_buf_free(&h);
    rp_buf_free(&m);
    free_runs(runs, n);
    free_runs(all, nall);
    return st;
}
