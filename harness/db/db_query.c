/* db_query.c: the registry's read side as JSON text, so the CLI prints tables or --json from one source
 * and Lua gets plain data. Columns map to JSON by their SQLite type; columns named *_json hold JSON
 * (checked on insert) and are embedded as is; doubles that are not finite are the strings "nan", "inf",
 * "-inf" (JSON has no such numbers). */
#include "db/db_internal.h"
#include "util/json.h"
#include <math.h>
#include <stdio.h>
#include <string.h>

/* Append the value of column i of the current row. */
static rp_status column_json(sqlite3_stmt *st, int i, rp_buf *out) {
    const char *name = sqlite3_column_name(st, i);
    size_t nl = strlen(name);
    switch (sqlite3_column_type(st, i)) {
    case SQLITE_INTEGER: return rp_buf_printf(out, "%lld", (long long)sqlite3_column_int64(st, i));
    case SQLITE_FLOAT: return rp_db_json_real(out, sqlite3_column_double(st, i));
    case SQLITE_TEXT: {
        const char *t = (const char *)sqlite3_column_text(st, i);
        int n = sqlite3_column_bytes(st, i);
        if (nl > 5 && !strcmp(name + nl - 5, "_json")) return rp_buf_append(out, t, (size_t)n);
        return rp_json_quote(out, t, (size_t)n);
    }
    case SQLITE_BLOB: return rp_buf_printf(out, "\"<%d bytes>\"", sqlite3_column_bytes(st, i));
    default: return rp_buf_puts(out, "null");
    }
}

rp_status rp_db_rows_json(rp_db *db, sqlite3_stmt *st, rp_buf *out, int single_object) {
    int rc, nrow = 0, ncol = sqlite3_column_count(st);
    rp_status s = single_object ? RP_OK : rp_buf_puts(out, "[");
    while (s == RP_OK && (rc = rp_db_step(st)) == SQLITE_ROW) {
        if (single_object && nrow) continue;
        s = rp_buf_puts(out, nrow++ ? ",{" : "{");
        for (int i = 0; s == RP_OK && i < ncol; i++) {
            if (i) s = rp_buf_puts(out, ",");
            const char *name = sqlite3_column_name(st, i);
            if (s == RP_OK) s = rp_json_quote(out, name, strlen(name));
            if (s == RP_OK) s = rp_buf_puts(out, ":");
            if (s == RP_OK) s = column_json(st, i, out);
        }
        if (s == RP_OK) s = rp_buf_puts(out, "}");
    }
    if (s == RP_OK && rc != SQLITE_DONE) s = rp_db_fail(db, rc, "reading");
    if (s == RP_OK) s = single_object ? (nrow ? RP_OK : rp_buf_puts(out, "null")) : rp_buf_puts(out, "]");
    return s;
}

/* A run's columns; status reads 'lost' for a running run whose process is gone (see rp_db_mark_lost). */
#define RUN_COLUMNS "r.id, r.experiment, r.paper, r.script, r.preset, " \
    "CASE WHEN r.status = 'running' AND rp_process_gone(r.host, r.pid) THEN 'lost' ELSE r.status END AS status, " \
    "r.started_at, r.ended_at, " \
    "r.git_commit, r.git_dirty, r.git_diff_sha256, r.build_id, r.lua_impl, r.backend, r.device, r.seed, r.host, " \
    "r.params_json"

rp_status rp_db_list_runs(rp_db *db, const rp_run_filter *f, rp_buf *out_json) {
    if (!db || !out_json) return rp_fail(RP_ERR_INVAL, "rp_db_list_runs: NULL argument");
    RP_TRY(rp_db_flush(db));
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db->sq,
        "SELECT " RUN_COLUMNS " FROM runs r WHERE (?1 IS NULL OR r.experiment = ?1) "
        "AND (?2 IS NULL OR substr(lower(r.git_commit), 1, length(?2)) = lower(?2)) AND (?3 IS NULL OR status = ?3) "
        "ORDER BY r.id DESC LIMIT ?4", -1, &st, NULL);
    if (rc != SQLITE_OK) return rp_db_fail(db, rc, "listing runs");
    if (f && f->experiment) sqlite3_bind_text(st, 1, f->experiment, -1, SQLITE_STATIC);
    if (f && f->commit_prefix) sqlite3_bind_text(st, 2, f->commit_prefix, -1, SQLITE_STATIC);
    if (f && f->status) sqlite3_bind_text(st, 3, f->status, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, f && f->limit > 0 ? f->limit : -1);
    rp_status s = rp_db_rows_json(db, st, out_json, 0);
    sqlite3_finalize(st);
    return s;
}

/* Append `"key":` then the rows of sql (bound to run_id) as an array. */
static rp_status member_rows(rp_db *db, rp_buf *out, const char *key, const char *sql, int64_t run_id) {
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db->sq, sql, -1, &st, NULL);
    if (rc != SQLITE_OK) return rp_db_fail(db, rc, key);
    sqlite3_bind_int64(st, 1, run_id);
    rp_status s = rp_buf_printf(out, ",\"%s\":", key);
    if (s == RP_OK) s = rp_db_rows_json(db, st, out, 0);
    sqlite3_finalize(st);
    return s;
}

rp_status rp_db_get_run(rp_db *db, int64_t run_id, rp_buf *out_json) {
    if (!db || !out_json) return rp_fail(RP_ERR_INVAL, "rp_db_get_run: NULL argument");
    RP_TRY(rp_db_flush(db));
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db->sq, "SELECT " RUN_COLUMNS ", r.env_json, r.plugin_versions_json, r.pid, r.error, "
                                "r.traceback FROM runs r WHERE r.id = ?", -1, &st, NULL);
    if (rc != SQLITE_OK) return rp_db_fail(db, rc, "reading a run");
    sqlite3_bind_int64(st, 1, run_id);
    rp_buf one = { 0 };
    rp_status s = rp_db_rows_json(db, st, &one, 1);
    sqlite3_finalize(st);
    if (s == RP_OK && !strcmp(one.data, "null"))
        s = rp_db_run_not_found(db, run_id);
    /* Reopen the object to append the run's children. */
    if (s == RP_OK) s = rp_buf_append(out_json, one.data, one.len - 1);
    rp_buf_free(&one);
    if (s == RP_OK) s = member_rows(db, out_json, "summaries",
        "SELECT name, value, stderr, n, direction FROM summaries WHERE run_id = ? ORDER BY name", run_id);
    if (s == RP_OK) s = member_rows(db, out_json, "targets",
        "SELECT name, kind, paper_value, tolerance, reproduced, status, note FROM targets WHERE run_id = ? ORDER BY rowid", run_id);
    if (s == RP_OK) s = member_rows(db, out_json, "figures",
        "SELECT name, rendered, files_json, spec_json FROM figures WHERE run_id = ? ORDER BY rowid", run_id);
    if (s == RP_OK) s = member_rows(db, out_json, "metrics",
        "SELECT k.name AS name, SUM(m.n) AS count FROM metrics m JOIN metric_names k ON k.id = m.name_id "
        "WHERE m.run_id = ? GROUP BY k.name ORDER BY k.name", run_id);
    if (s == RP_OK) s = member_rows(db, out_json, "records",
        "SELECT kind, COUNT(*) AS count FROM records WHERE run_id = ? GROUP BY kind ORDER BY kind", run_id);
    if (s == RP_OK) s = rp_buf_puts(out_json, "}");
    return s;
}

rp_status rp_db_latest_finished(rp_db *db, const char *experiment, int64_t *run_id) {
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db->sq, "SELECT id FROM runs WHERE experiment = ? AND status = 'finished' ORDER BY id DESC LIMIT 1",
                                -1, &st, NULL);
    if (rc != SQLITE_OK) return rp_db_fail(db, rc, "finding the latest run");
    sqlite3_bind_text(st, 1, experiment, -1, SQLITE_STATIC);
    rc = rp_db_step(st);
    if (rc == SQLITE_ROW) *run_id = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    if (rc == SQLITE_ROW) return RP_OK;
    if (rc == SQLITE_DONE) return rp_fail(RP_ERR_NOTFOUND, "%s: no finished run of experiment '%s'", rp_db_path(db), experiment);
    return rp_db_fail(db, rc, "finding the latest run");
}

double rp_db_json_value(const rp_json *v) {
    if (rp_json_typeof(v) == RP_JSON_NUMBER) return rp_json_num(v, NAN);
    const char *t = rp_json_str(v, "");
    return !strcmp(t, "inf") ? INFINITY : !strcmp(t, "-inf") ? -INFINITY : NAN;
}

const char *rp_db_sqlite_version(void) { return sqlite3_libversion(); }

/* Parse the JSON text a query wrote into *out (freeing the text). */
static rp_status parsed(rp_status st, rp_buf *text, rp_json **out) {
    *out = NULL;
    if (st == RP_OK) st = rp_json_parse(text->data, text->len, out);
    rp_buf_free(text);
    return st;
}

rp_status rp_db_runs(rp_db *db, const rp_run_filter *f, rp_json **rows) {
    rp_buf text = { 0 };
    return parsed(rp_db_list_runs(db, f, &text), &text, rows);
}

rp_status rp_db_run(rp_db *db, int64_t run_id, rp_json **run) {
    rp_buf text = { 0 };
    return parsed(rp_db_get_run(db, run_id, &text), &text, run);
}
