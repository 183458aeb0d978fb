/* report.c: the HTML + Markdown report from the registry (see report.h). Everything shown comes from
 * the database and the figure files it lists; text is HTML-escaped (or Markdown-escaped) before output;
 * an image is embedded only when its PNG file could be read, otherwise the page says why the figure is
 * missing, so the page never holds a broken image. */
#include "report/report.h"
#include "net/json.h"
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* One reported run. */
typedef struct {
    int64_t id;
    char *experiment, *paper, *commit, *device, *backend, *started, *params;
    int dirty;
} rrun;

static char *dup_col(sqlite3_stmt *st, int i) {
    const unsigned char *t = sqlite3_column_text(st, i);
    return strdup(t ? (const char *)t : "");
}

static void free_runs(rrun *r, size_t n) {
    for (size_t i = 0; i < n; i++) {
        free(r[i].experiment); free(r[i].paper); free(r[i].commit); free(r[i].device);
        free(r[i].backend); free(r[i].started); free(r[i].params);
    }
    free(r);
}

/* The runs to report, ordered by paper, experiment, id. */
static rp_status select_runs(sqlite3 *sq, const char *path, const rp_report_opts *o, rrun **out, size_t *n) {
    const char *sql = o && o->all_runs
        ? "SELECT id, experiment, COALESCE(paper, ''), COALESCE(git_commit, ''), git_dirty, COALESCE(device, ''), "
          "COALESCE(backend, ''), started_at, COALESCE(params_json, '{}') FROM runs WHERE status = 'finished' "
          "AND (?1 IS NULL OR experiment = ?1) ORDER BY paper, experiment, id"
        : "SELECT id, experiment, COALESCE(paper, ''), COALESCE(git_commit, ''), git_dirty, COALESCE(device, ''), "
          "COALESCE(backend, ''), started_at, COALESCE(params_json, '{}') FROM runs WHERE id IN (SELECT MAX(id) FROM runs "
          "WHERE status = 'finished' AND (?1 IS NULL OR experiment = ?1) GROUP BY experiment, COALESCE(params_json, '')) "
          "ORDER BY paper, experiment, id";
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(sq, sql, -1, &st, NULL) != SQLITE_OK)
        return rp_fail(RP_ERR_DB, "%s: selecting runs: %s", path, sqlite3_errmsg(sq));
    if (o && o->experiment) sqlite3_bind_text(st, 1, o->experiment, -1, SQLITE_STATIC);
    size_t cap = 0;
    *out = NULL; *n = 0;
    rp_status s = RP_OK;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? 2 * cap : 16;
            rrun *p = realloc(*out, cap * sizeof *p);
            if (!p) { s = rp_fail(RP_ERR_NOMEM, "out of memory"); break; }
            *out = p;
        }
        rrun *r = &(*out)[(*n)++];
        r->id = sqlite3_column_int64(st, 0);
        r->experiment = dup_col(st, 1); r->paper = dup_col(st, 2); r->commit = dup_col(st, 3);
        r->dirty = sqlite3_column_int(st, 4);
        r->device = dup_col(st, 5); r->backend = dup_col(st, 6); r->started = dup_col(st, 7); r->params = dup_col(st, 8);
    }
    if (s == RP_OK && rc != SQLITE_DONE) s = rp_fail(RP_ERR_DB, "%s: selecting runs: %s", path, sqlite3_errmsg(sq));
    sqlite3_finalize(st);
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

/* A stored double (REAL, or the texts nan/inf/-inf) as display text: "—" for NaN. */
static void num_text(sqlite3_stmt *st, int i, char *out, size_t n) {
    int t = sqlite3_column_type(st, i);
    if (t == SQLITE_FLOAT || t == SQLITE_INTEGER) snprintf(out, n, "%.6g", sqlite3_column_double(st, i));
    else if (t == SQLITE_TEXT && strcmp((const char *)sqlite3_column_text(st, i), "nan")) snprintf(out, n, "%s", sqlite3_column_text(st, i));
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
static rp_status targets(sqlite3 *sq, const rrun *runs, size_t lo, size_t hi, rp_buf *h, rp_buf *m) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(sq, "SELECT name, kind, paper_value, tolerance, reproduced, status, COALESCE(note, '') "
                           "FROM targets WHERE run_id = ? ORDER BY rowid", -1, &st, NULL) != SQLITE_OK)
        return rp_fail(RP_ERR_DB, "reading targets: %s", sqlite3_errmsg(sq));
    int any = 0;
    for (size_t i = lo; i < hi; i++) {
        sqlite3_bind_int64(st, 1, runs[i].id);
        while (sqlite3_step(st) == SQLITE_ROW) {
            if (!any++) {
                rp_buf_puts(h, "<table><tr><th>target</th><th>experiment</th><th>paper</th><th>reproduced</th>"
                               "<th>tolerance / kind</th><th>status</th><th>provenance</th></tr>\n");
                rp_buf_puts(m, "| target | experiment | paper | reproduced | tolerance / kind | status | provenance |\n"
                               "|---|---|---:|---:|---|---|---|\n");
            }
            const char *name = (const char *)sqlite3_column_text(st, 0), *kind = (const char *)sqlite3_column_text(st, 1);
            const char *status = (const char *)sqlite3_column_text(st, 5), *note = (const char *)sqlite3_column_text(st, 6);
            char pv[64], tol[64], rv[64], tk[128], prov[512];
            num_text(st, 2, pv, sizeof pv);
            num_text(st, 3, tol, sizeof tol);
            num_text(st, 4, rv, sizeof rv);
            if (!strcmp(kind, "exact")) snprintf(tk, sizeof tk, "± %s (exact)", tol);
            else if (!strcmp(kind, "statistical")) snprintf(tk, sizeof tk, "± %s (statistical: z standard errors)", tol);
            else snprintf(tk, sizeof tk, "%s", !strcmp(kind, "shape") ? "shape" : "not reproducible here");
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
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    if (any) { rp_buf_puts(h, "</table>\n"); rp_buf_puts(m, "\n"); }
    else { rp_buf_puts(h, "<p>No targets recorded.</p>\n"); rp_buf_puts(m, "No targets recorded.\n\n"); }
    return RP_OK;
}

/* One run's summaries and figures. */
static rp_status run_details(sqlite3 *sq, const rrun *r, const char *md_dir, rp_buf *h, rp_buf *m) {
    char prov[512];
    provenance(r, prov, sizeof prov);
    rp_buf_puts(h, "<h3>"); html(h, r->experiment); rp_buf_puts(h, " <small>("); html(h, prov);
    rp_buf_puts(h, ", "); html(h, r->started); rp_buf_puts(h, ")</small></h3>\n<p>params: <code>"); html(h, r->params);
    rp_buf_puts(h, "</code></p>\n");
    rp_buf_puts(m, "### "); md(m, r->experiment); rp_buf_puts(m, " ("); md(m, prov); rp_buf_puts(m, ")\n\nparams: `");
    rp_buf_puts(m, r->params); rp_buf_puts(m, "`\n\n");
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(sq, "SELECT name, value, stderr, n, direction FROM summaries WHERE run_id = ? ORDER BY name", -1, &st, NULL) != SQLITE_OK)
        return rp_fail(RP_ERR_DB, "reading summaries: %s", sqlite3_errmsg(sq));
    sqlite3_bind_int64(st, 1, r->id);
    int any = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        if (!any++) {
            rp_buf_puts(h, "<table><tr><th>summary</th><th>value</th><th>± stderr</th><th>n</th><th>better</th></tr>\n");
            rp_buf_puts(m, "| summary | value | ± stderr | n | better |\n|---|---:|---:|---:|---|\n");
        }
        char v[64], se[64], n[32];
        num_text(st, 1, v, sizeof v);
        num_text(st, 2, se, sizeof se);
        snprintf(n, sizeof n, "%lld", (long long)sqlite3_column_int64(st, 3));
        int dir = sqlite3_column_int(st, 4);
        const char *better = dir > 0 ? "higher" : dir < 0 ? "lower" : "";
        rp_buf_puts(h, "<tr><td>"); html(h, (const char *)sqlite3_column_text(st, 0));
        rp_buf_puts(h, "</td><td class=num>"); html(h, v); rp_buf_puts(h, "</td><td class=num>"); html(h, se);
        rp_buf_printf(h, "</td><td class=num>%s</td><td>%s</td></tr>\n", n, better);
        rp_buf_puts(m, "| "); md(m, (const char *)sqlite3_column_text(st, 0));
        rp_buf_printf(m, " | %s | %s | %s | %s |\n", v, se, n, better);
    }
    sqlite3_finalize(st);
    if (any) { rp_buf_puts(h, "</table>\n"); rp_buf_puts(m, "\n"); }
    if (sqlite3_prepare_v2(sq, "SELECT name, COALESCE(files_json, '[]'), rendered, spec_json FROM figures WHERE run_id = ? ORDER BY rowid",
                           -1, &st, NULL) != SQLITE_OK)
        return rp_fail(RP_ERR_DB, "reading figures: %s", sqlite3_errmsg(sq));
    sqlite3_bind_int64(st, 1, r->id);
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(st, 0), *fj = (const char *)sqlite3_column_text(st, 1);
        rp_json *files = NULL, *spec = NULL;
        if (rp_json_parse(fj, strlen(fj), &files) != RP_OK) files = NULL;
        const char *sj = (const char *)sqlite3_column_text(st, 3);
        if (rp_json_parse(sj, strlen(sj), &spec) != RP_OK) spec = NULL;
        const char *title = rp_json_str(rp_json_get(spec, "title"), name);
        const char *png = sqlite3_column_int(st, 2) ? file_with(files, ".png") : NULL;
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
        rp_json_free(files);
        rp_json_free(spec);
    }
    sqlite3_finalize(st);
    return RP_OK;
}

rp_status rp_report_write(rp_db *db, const rp_report_opts *opts, const char *html_path, const char *md_path, int *nruns) {
    sqlite3 *sq = rp_db_sqlite(db);
    rrun *runs = NULL;
    size_t n = 0;
    RP_TRY(rp_db_flush(db));
    RP_TRY(select_runs(sq, rp_db_path(db), opts, &runs, &n));
    if (nruns) *nruns = (int)n;
    rp_buf h = { 0 }, m = { 0 };
    char now[64];
    time_t t = time(NULL);
    strftime(now, sizeof now, "%Y-%m-%d %H:%M UTC", gmtime(&t));
    rp_buf_printf(&h, "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8><title>repro report</title>"
                      "<meta name=viewport content=\"width=device-width\"><style>%s</style></head><body>\n"
                      "<h1>Reproduction report</h1>\n<p>Generated %s from <code>", css, now);
    html(&h, rp_db_path(db));
    rp_buf_printf(&h, "</code>: %zu run%s (%s). Provenance: run id · commit (* = uncommitted changes) · backend/device.</p>\n",
                  n, n == 1 ? "" : "s", opts && opts->all_runs ? "every finished run" : "the latest finished run per experiment and params");
    rp_buf_printf(&m, "# Reproduction report\n\nGenerated %s from `%s`: %zu run%s (%s). Provenance: run id · commit "
                      "(\\* = uncommitted changes) · backend/device.\n\n", now, rp_db_path(db), n, n == 1 ? "" : "s",
                  opts && opts->all_runs ? "every finished run" : "the latest finished run per experiment and params");
    if (!n) { rp_buf_puts(&h, "<p>No finished runs yet.</p>\n"); rp_buf_puts(&m, "No finished runs yet.\n"); }
    rp_status st = RP_OK;
    char md_dir[4096] = "";
    const char *slash = md_path ? strrchr(md_path, '/') : NULL;
    if (slash) snprintf(md_dir, sizeof md_dir, "%.*s", (int)(slash - md_path), md_path);
    for (size_t lo = 0; st == RP_OK && lo < n;) {
        size_t hi = lo;
        while (hi < n && !strcmp(runs[hi].paper, runs[lo].paper)) hi++;
        const char *paper = runs[lo].paper[0] ? runs[lo].paper : "(no paper)";
        rp_buf_puts(&h, "<h2>"); html(&h, paper); rp_buf_puts(&h, "</h2>\n");
        rp_buf_puts(&m, "## "); md(&m, paper); rp_buf_puts(&m, "\n\n");
        st = targets(sq, runs, lo, hi, &h, &m);
        for (size_t i = lo; st == RP_OK && i < hi; i++) st = run_details(sq, &runs[i], md_dir, &h, &m);
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
    return st;
}
