/* db_merge.c: folding a task registry (one Slurm task's SQLite file) into the main registry. The task
 * file is ATTACHed read-only to the main connection and copied inside one immediate transaction, so a
 * merge is atomic per file: all of its new runs with everything they logged, or nothing.
 * Invariants: runs are keyed by uuid (a uuid already present is skipped, so merging is idempotent);
 * columns are copied by name, the intersection of both files' columns, so a task written by a build
 * with fewer columns still merges; every table holding a run_id column in both files follows its runs;
 * metric name ids are re-interned by name. A task file is merged only when complete: it passes
 * quick_check, has runs, and none of them is still 'running'. */
#include "db/db_internal.h"
#include "db/sweep.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* One integer from a one-row query (with an optional text parameter); -1 on error. */
static int64_t query_int(rp_db *db, const char *sql, const char *param) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db->sq, sql, -1, &st, NULL) != SQLITE_OK) return -1;
    if (param) sqlite3_bind_text(st, 1, param, -1, SQLITE_STATIC);
    int64_t v = rp_db_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
    sqlite3_finalize(st);
    return v;
}

/* Comma-separated columns of table present in both main and task (minus skip1/skip2), into cols. */
static rp_status common_columns(rp_db *db, const char *table, const char *skip1, const char *skip2, rp_buf *cols) {
    sqlite3_stmt *st;
    char sql[512];
    snprintf(sql, sizeof sql, "SELECT m.name FROM pragma_table_info('%s', 'main') m JOIN pragma_table_info('%s', 'task') t "
             "ON t.name = m.name ORDER BY m.cid", table, table);
    int rc = sqlite3_prepare_v2(db->sq, sql, -1, &st, NULL);
    if (rc != SQLITE_OK) return rp_db_fail(db, rc, "reading table columns");
    rp_buf_clear(cols);
    while ((rc = rp_db_step(st)) == SQLITE_ROW) {
        const char *c = (const char *)sqlite3_column_text(st, 0);
        if ((skip1 && !strcmp(c, skip1)) || (skip2 && !strcmp(c, skip2))) continue;
        rp_buf_printf(cols, "%s\"%s\"", cols->len ? ", " : "", c);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) return rp_db_fail(db, rc, "reading table columns");
    if (!cols->len) rp_buf_puts(cols, "");
    return RP_OK;
}

/* Check the attached task file before anything is copied; the message names path. */
static rp_status check_task(rp_db *db, const char *path) {
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db->sq, "PRAGMA task.quick_check", -1, &st, NULL);
    if (rc != SQLITE_OK) return rp_fail(RP_ERR_FORMAT, "%s: not a readable registry (%s)", path, sqlite3_errmsg(db->sq));
    rc = rp_db_step(st);
    int ok = rc == SQLITE_ROW && !strcmp((const char *)sqlite3_column_text(st, 0), "ok");
    char why[256];
    snprintf(why, sizeof why, "%s", rc == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : sqlite3_errmsg(db->sq));
    sqlite3_finalize(st);
    if (!ok) return rp_fail(RP_ERR_FORMAT, "%s: corrupt or not a registry (%s): not merged", path, why);
    int64_t version = query_int(db, "PRAGMA task.user_version", NULL);
    if (version != RP_DB_SCHEMA)
        return rp_fail(RP_ERR_FORMAT, "%s: schema version %lld, this repro writes %d: open it once with this repro "
                       "(e.g. `repro runs --db %s`) to migrate it, then merge", path, (long long)version, RP_DB_SCHEMA, path);
    int64_t nruns = query_int(db, "SELECT count(*) FROM task.runs", NULL);
    if (nruns <= 0) return rp_fail(RP_ERR_FORMAT, "%s: holds no run (the task never started its run): not merged", path);
    int64_t running = query_int(db, "SELECT id FROM task.runs WHERE status='running' ORDER BY id LIMIT 1", NULL);
    if (running > 0)
        return rp_fail(RP_ERR_FORMAT, "%s: half-written: run %lld is still 'running' (the task is still writing, or died "
                       "without ending it): not merged", path, (long long)running);
    return RP_OK;
}

/* Copy the new runs and everything that hangs off them; inside the caller's transaction. */
static rp_status copy_task(rp_db *db, rp_merge_result *res) {
    rp_buf cols = {0}, sql = {0};
    rp_status s = rp_db_exec(db, "DROP TABLE IF EXISTS temp.merge_map;"
                             "CREATE TEMP TABLE merge_map(old INTEGER PRIMARY KEY, new INTEGER NOT NULL);",
                             "preparing a merge");
    if (s == RP_OK) s = common_columns(db, "runs", "id", NULL, &cols);
    /* Runs one by one, in id order, so each new id is known. */
    sqlite3_stmt *sel = NULL, *ins = NULL, *map = NULL;
    if (s == RP_OK) {
        rp_buf_printf(&sql, "INSERT INTO main.runs(%s) SELECT %s FROM task.runs WHERE id=?", cols.data, cols.data);
        int rc = sqlite3_prepare_v2(db->sq, "SELECT id FROM task.runs WHERE uuid IS NULL OR uuid NOT IN "
                                    "(SELECT uuid FROM main.runs WHERE uuid IS NOT NULL) ORDER BY id", -1, &sel, NULL);
        if (rc == SQLITE_OK) rc = sqlite3_prepare_v2(db->sq, sql.data, -1, &ins, NULL);
        if (rc == SQLITE_OK) rc = sqlite3_prepare_v2(db->sq, "INSERT INTO temp.merge_map(old, new) VALUES (?,?)", -1, &map, NULL);
        if (rc != SQLITE_OK) s = rp_db_fail(db, rc, "preparing the run copy");
    }
    int rc;
    while (s == RP_OK && (rc = rp_db_step(sel)) == SQLITE_ROW) {
        int64_t old = sqlite3_column_int64(sel, 0);
        sqlite3_bind_int64(ins, 1, old);
        rc = rp_db_step(ins);
        sqlite3_reset(ins);
        if (rc != SQLITE_DONE) { s = rp_db_fail(db, rc, "copying a run"); break; }
        sqlite3_bind_int64(map, 1, old);
        sqlite3_bind_int64(map, 2, sqlite3_last_insert_rowid(db->sq));
        rc = rp_db_step(map);
        sqlite3_reset(map);
        if (rc != SQLITE_DONE) { s = rp_db_fail(db, rc, "mapping a run id"); break; }
        res->runs_added++;
    }
    sqlite3_finalize(sel); sqlite3_finalize(ins); sqlite3_finalize(map);
    if (s == RP_OK) res->runs_skipped = query_int(db, "SELECT count(*) FROM task.runs", NULL) - res->runs_added;
    /* Metric names by name, then metric chunks with both ids mapped. */
    if (s == RP_OK)
        s = rp_db_exec(db, "INSERT OR IGNORE INTO main.metric_names(name) SELECT name FROM task.metric_names;"
                       "INSERT INTO main.metrics(run_id, name_id, n, steps, vals) SELECT mm.new, mn.id, m.n, m.steps, m.vals"
                       " FROM task.metrics m JOIN temp.merge_map mm ON mm.old = m.run_id"
                       " JOIN task.metric_names tn ON tn.id = m.name_id JOIN main.metric_names mn ON mn.name = tn.name"
                       " ORDER BY m.id", "copying metrics");
    if (s == RP_OK)
        res->points_added = query_int(db, "SELECT COALESCE(sum(m.n), 0) FROM task.metrics m JOIN temp.merge_map mm ON mm.old = m.run_id", NULL);
    /* Every other table with a run_id column in both files (summaries, targets, figures, records, ...). */
    sqlite3_stmt *tabs = NULL;
    if (s == RP_OK) {
        rc = sqlite3_prepare_v2(db->sq, "SELECT t.name FROM task.sqlite_master t JOIN main.sqlite_master m ON m.name = t.name"
                                " WHERE t.type = 'table' AND t.name NOT IN ('runs', 'metrics', 'metric_names')"
                                " AND EXISTS (SELECT 1 FROM pragma_table_info(t.name, 'task') WHERE name = 'run_id')"
                                " ORDER BY t.name", -1, &tabs, NULL);
        if (rc != SQLITE_OK) s = rp_db_fail(db, rc, "listing tables to merge");
    }
    while (s == RP_OK && (rc = rp_db_step(tabs)) == SQLITE_ROW) {
        char table[128];
        snprintf(table, sizeof table, "%s", (const char *)sqlite3_column_text(tabs, 0));
        /* An INTEGER PRIMARY KEY other than run_id is a row id of the task file: let main assign its own. */
        char pk[128] = "";
        sqlite3_stmt *p;
        char q[256];
        snprintf(q, sizeof q, "SELECT name FROM pragma_table_info('%s', 'main') WHERE pk = 1 AND upper(type) = 'INTEGER'", table);
        if (sqlite3_prepare_v2(db->sq, q, -1, &p, NULL) == SQLITE_OK) {
            if (rp_db_step(p) == SQLITE_ROW) snprintf(pk, sizeof pk, "%s", (const char *)sqlite3_column_text(p, 0));
            sqlite3_finalize(p);
        }
        s = common_columns(db, table, "run_id", pk[0] ? pk : NULL, &cols);
        if (s != RP_OK) break;
        /* the select list names the columns of x (the task's row) */
        rp_buf sel_cols = {0};
        for (char *c = cols.data; c && *c;) {
            char *e = strstr(c, ", ");
            rp_buf_printf(&sel_cols, "%sx.%.*s", sel_cols.len ? ", " : "", e ? (int)(e - c) : (int)strlen(c), c);
            c = e ? e + 2 : NULL;
        }
        rp_buf_clear(&sql);
        rp_buf_printf(&sql, "INSERT INTO main.\"%s\"(run_id%s%s) SELECT mm.new%s%s FROM task.\"%s\" x "
                      "JOIN temp.merge_map mm ON mm.old = x.run_id", table, cols.len ? ", " : "", cols.data,
                      sel_cols.len ? ", " : "", sel_cols.len ? sel_cols.data : "", table);
        rp_buf_free(&sel_cols);
        char what[192];
        snprintf(what, sizeof what, "copying table %s", table);
        s = rp_db_exec(db, sql.data, what);
    }
    sqlite3_finalize(tabs);
    rp_buf_free(&cols);
    rp_buf_free(&sql);
    return s;
}

rp_status rp_db_merge_file(rp_db *db, const char *task_path, rp_merge_result *res) {
    memset(res, 0, sizeof *res);
    if (!db || !task_path) return rp_fail(RP_ERR_INVAL, "rp_db_merge_file: NULL argument");
    struct stat sb;
    if (stat(task_path, &sb) != 0 || !S_ISREG(sb.st_mode)) return rp_fail(RP_ERR_NOTFOUND, "%s: no such task file", task_path);
    RP_TRY(rp_db_flush(db));
    /* Read-only URI: the merge never writes into the task file. */
    rp_buf uri = {0};
    rp_buf_puts(&uri, "file:");
    for (const char *c = task_path; *c; c++) {
        if (*c == '%' || *c == '?' || *c == '#') rp_buf_printf(&uri, "%%%02X", (unsigned char)*c);
        else rp_buf_append(&uri, c, 1);
    }
    rp_buf_puts(&uri, "?mode=ro");
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db->sq, "ATTACH DATABASE ? AS task", -1, &st, NULL);
    if (rc == SQLITE_OK) { sqlite3_bind_text(st, 1, uri.data, -1, SQLITE_TRANSIENT); rc = rp_db_step(st); sqlite3_finalize(st); }
    rp_buf_free(&uri);
    if (rc != SQLITE_DONE && rc != SQLITE_OK)
        return rp_fail(RP_ERR_FORMAT, "%s: cannot open it as a registry (%s): not merged", task_path, sqlite3_errmsg(db->sq));
    rp_status s = rp_db_exec(db, "BEGIN IMMEDIATE", "locking the registry for a merge");
    if (s == RP_OK) {
        s = check_task(db, task_path);
        if (s == RP_OK) s = copy_task(db, res);
        if (s == RP_OK) s = rp_db_exec(db, "COMMIT", "committing a merge");
        if (s != RP_OK) {
            sqlite3_exec(db->sq, "ROLLBACK", NULL, NULL, NULL);
            memset(res, 0, sizeof *res);
        }
    }
    sqlite3_exec(db->sq, "DROP TABLE IF EXISTS temp.merge_map", NULL, NULL, NULL);
    sqlite3_exec(db->sq, "DETACH DATABASE task", NULL, NULL, NULL);
    return s;
}
