/* db_schema.c: the registry's schema and its forward-only migrations. PRAGMA user_version holds the
 * version; migration i takes a database from version i to i+1 (0 is an empty file) and runs, with the
 * version bump, inside one immediate transaction, so a crash leaves either the old or the new schema and
 * concurrent openers serialize (each re-reads the version once it holds the write lock).
 * Columns that hold doubles are declared without a type (no affinity): finite values are REAL, NaN and
 * ±Inf the texts 'nan', 'inf', '-inf' (see rp_db_bind_real).
 * Version 1: one metrics row per point (name as text; NaN was lost as NULL).
 * Version 2: metric names interned in metric_names; metrics stored as chunks of little-endian float64
 *            arrays (one row per series per flush: fast to write, exact for every double);
 *            summaries gain a direction (+1 higher is better, -1 lower, 0 neither).
 * Version 3: runs gain uuid (filled by a trigger when not given), sweep_id, sweep_point; tables sweeps
 *            and sweep_points (db_sweep.c). */
#include "db/db_internal.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char schema_v1[] =
    "CREATE TABLE runs(id INTEGER PRIMARY KEY, experiment TEXT NOT NULL, paper TEXT, script TEXT, preset TEXT,"
    " git_commit TEXT, git_dirty INTEGER NOT NULL DEFAULT 0, git_diff_sha256 TEXT, build_id TEXT, lua_impl TEXT,"
    " backend TEXT, device TEXT, seed INTEGER, params_json TEXT, env_json TEXT, plugin_versions_json TEXT,"
    " host TEXT, pid INTEGER, status TEXT NOT NULL, started_at TEXT NOT NULL, ended_at TEXT, error TEXT, traceback TEXT);"
    "CREATE INDEX runs_experiment ON runs(experiment, id);"
    "CREATE INDEX runs_commit ON runs(git_commit);"
    "CREATE TABLE metrics(run_id INTEGER NOT NULL, name TEXT NOT NULL, step REAL, value REAL);"
    "CREATE INDEX metrics_run ON metrics(run_id, name);"
    "CREATE TABLE summaries(run_id INTEGER NOT NULL, name TEXT NOT NULL, value, stderr, n INTEGER NOT NULL DEFAULT 0,"
    " UNIQUE(run_id, name));"
    "CREATE TABLE targets(run_id INTEGER NOT NULL, name TEXT NOT NULL, kind TEXT NOT NULL, paper_value, tolerance,"
    " reproduced, status TEXT NOT NULL, note TEXT, UNIQUE(run_id, name));"
    "CREATE TABLE figures(run_id INTEGER NOT NULL, name TEXT NOT NULL, spec_json TEXT NOT NULL, files_json TEXT,"
    " rendered INTEGER NOT NULL DEFAULT 0, UNIQUE(run_id, name));"
    "CREATE TABLE records(id INTEGER PRIMARY KEY, run_id INTEGER NOT NULL, kind TEXT NOT NULL, key TEXT,"
    " data_json TEXT NOT NULL, created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')));"
    "CREATE INDEX records_run ON records(run_id, kind);";

/* 0 -> 1: the first schema. */
static rp_status migrate_to_1(rp_db *db) { return rp_db_exec(db, schema_v1, "creating the schema (version 1)"); }

/* Write one converted series chunk during the 1 -> 2 migration. */
static rp_status put_chunk(rp_db *db, sqlite3_stmt *ins, int64_t run, int64_t name_id, const double *s,
                           const double *v, size_t n, unsigned char *tmp) {
    sqlite3_bind_int64(ins, 1, run);
    sqlite3_bind_int64(ins, 2, name_id);
    sqlite3_bind_int64(ins, 3, (int64_t)n);
    rp_db_pack_f64(s, n, tmp);
    sqlite3_bind_blob(ins, 4, tmp, (int)(8 * n), SQLITE_TRANSIENT);
    rp_db_pack_f64(v, n, tmp);
    sqlite3_bind_blob(ins, 5, tmp, (int)(8 * n), SQLITE_TRANSIENT);
    int rc = sqlite3_step(ins);
    sqlite3_reset(ins);
    return rc == SQLITE_DONE ? RP_OK : rp_db_fail(db, rc, "migrating metrics to version 2");
}

/* 1 -> 2: intern metric names, pack points into chunks, add summaries.direction. */
static rp_status migrate_to_2(rp_db *db) {
    RP_TRY(rp_db_exec(db,
        "ALTER TABLE metrics RENAME TO metrics_v1;"
        "DROP INDEX metrics_run;"
        "CREATE TABLE metric_names(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);"
        "CREATE TABLE metrics(id INTEGER PRIMARY KEY, run_id INTEGER NOT NULL, name_id INTEGER NOT NULL,"
        " n INTEGER NOT NULL, steps BLOB NOT NULL, vals BLOB NOT NULL);"
        "CREATE INDEX metrics_run ON metrics(run_id, name_id);"
        "INSERT INTO metric_names(name) SELECT DISTINCT name FROM metrics_v1 ORDER BY name;"
        "ALTER TABLE summaries ADD COLUMN direction INTEGER NOT NULL DEFAULT 0;",
        "migrating to version 2"));
    enum { CH = 4096 };
    sqlite3_stmt *sel = NULL, *ins = NULL;
    int rc = sqlite3_prepare_v2(db->sq, "SELECT m.run_id, n.id, m.step, m.value FROM metrics_v1 m "
                                "JOIN metric_names n ON n.name = m.name ORDER BY m.run_id, n.id, m.rowid", -1, &sel, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(db->sq, "INSERT INTO metrics(run_id, name_id, n, steps, vals) VALUES (?,?,?,?,?)", -1, &ins, NULL);
    if (rc != SQLITE_OK) { sqlite3_finalize(sel); return rp_db_fail(db, rc, "migrating metrics to version 2"); }
    double *s = malloc(CH * sizeof *s), *v = malloc(CH * sizeof *v);
    unsigned char *tmp = malloc(8 * CH);
    rp_status st = s && v && tmp ? RP_OK : rp_fail(RP_ERR_NOMEM, "out of memory migrating metrics");
    int64_t run = -1, name = -1;
    size_t n = 0;
    while (st == RP_OK && (rc = sqlite3_step(sel)) == SQLITE_ROW) {
        int64_t r = sqlite3_column_int64(sel, 0), nm = sqlite3_column_int64(sel, 1);
        if (n && (r != run || nm != name || n == CH)) { st = put_chunk(db, ins, run, name, s, v, n, tmp); n = 0; }
        run = r; name = nm;
        s[n] = rp_db_column_real(sel, 2);   /* version 1 kept NaN as NULL: it reads back as NaN */
        v[n] = rp_db_column_real(sel, 3);
        n++;
    }
    if (st == RP_OK && rc != SQLITE_DONE) st = rp_db_fail(db, rc, "reading version 1 metrics");
    if (st == RP_OK && n) st = put_chunk(db, ins, run, name, s, v, n, tmp);
    sqlite3_finalize(sel);
    sqlite3_finalize(ins);
    free(s); free(v); free(tmp);
    if (st == RP_OK) st = rp_db_exec(db, "DROP TABLE metrics_v1", "migrating to version 2");
    return st;
}

static rp_status (*const migrations[RP_DB_SCHEMA])(rp_db *) = { migrate_to_1, migrate_to_2, rp_db_migrate_to_3 };

rp_status rp_db_migrate(rp_db *db) {
    RP_TRY(rp_db_exec(db, "BEGIN IMMEDIATE", "locking the database for a schema check"));
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db->sq, "PRAGMA user_version", -1, &st, NULL);
    int version = -1;
    if (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) version = sqlite3_column_int(st, 0);
    if (rc == SQLITE_OK) rc = sqlite3_finalize(st);
    rp_status s = rc == SQLITE_OK && version >= 0 ? RP_OK : rp_db_fail(db, rc, "reading the schema version");
    if (s == RP_OK && version > RP_DB_SCHEMA)   /* another process upgraded it since we looked */
        s = rp_fail(RP_ERR_UNSUPPORTED, "%s has schema version %d, newer than this repro (%d): upgrade repro",
                    db->path, version, RP_DB_SCHEMA);
    for (int v = version; s == RP_OK && v < RP_DB_SCHEMA; v++) {
        s = migrations[v](db);
        char sql[64];
        snprintf(sql, sizeof sql, "PRAGMA user_version=%d", v + 1);
        if (s == RP_OK) s = rp_db_exec(db, sql, "setting the schema version");
        if (s != RP_OK) rp_fail_ctx(s, "schema migration %d -> %d: ", v, v + 1);
    }
    if (s == RP_OK) return rp_db_exec(db, "COMMIT", "committing the schema");
    sqlite3_exec(db->sq, "ROLLBACK", NULL, NULL, NULL);
    return s;
}
