/* db_sweep.c: the registry's side of sweeps: run UUIDs, the sweeps and sweep_points tables, tagging a
 * run with its sweep, and each point's state. A point's state is derived, never stored twice: it is the
 * status of the best run (finished first, then the newest) with the point's experiment, canonical params,
 * preset, seed, commit and diff hash, whichever sweep recorded it; so resuming is "skip finished points"
 * and `repro sweep --status` reads the same query. sweep_points.state only says whether the sweep gave
 * up on a point it never started ('killed') or ran it ('pending' otherwise).
 * Invariants: every runs row has a uuid (a trigger fills it when the writer gives none); sweep ids are
 * the main registry's (task files carry them verbatim so merged runs keep their tag). */
#include "db/db_internal.h"
#include "db/sweep.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

rp_status rp_db_migrate_to_3(rp_db *db) {
    return rp_db_exec(db,
        "ALTER TABLE runs ADD COLUMN uuid TEXT;"
        "ALTER TABLE runs ADD COLUMN sweep_id INTEGER;"
        "ALTER TABLE runs ADD COLUMN sweep_point INTEGER;"
        "UPDATE runs SET uuid = lower(hex(randomblob(16))) WHERE uuid IS NULL;"
        "CREATE UNIQUE INDEX runs_uuid ON runs(uuid);"
        "CREATE INDEX runs_sweep ON runs(sweep_id, sweep_point);"
        "CREATE TRIGGER runs_uuid_default AFTER INSERT ON runs WHEN NEW.uuid IS NULL BEGIN"
        " UPDATE runs SET uuid = lower(hex(randomblob(16))) WHERE id = NEW.id; END;"
        "CREATE TABLE sweeps(id INTEGER PRIMARY KEY, script TEXT NOT NULL, experiment TEXT NOT NULL, preset TEXT,"
        " runner TEXT NOT NULL, git_commit TEXT, git_diff_sha256 TEXT, n_points INTEGER NOT NULL, dir TEXT, job TEXT,"
        " created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')));"
        "CREATE TABLE sweep_points(sweep_id INTEGER NOT NULL, idx INTEGER NOT NULL, seed INTEGER NOT NULL,"
        " params_json TEXT NOT NULL, args_json TEXT NOT NULL, state TEXT NOT NULL DEFAULT 'pending',"
        " PRIMARY KEY(sweep_id, idx));",
        "migrating to version 3 (run uuids, sweeps)");
}

/* Bind text or NULL. */
static int bind_opt(sqlite3_stmt *st, int col, const char *s) {
    return s ? sqlite3_bind_text(st, col, s, -1, SQLITE_TRANSIENT) : sqlite3_bind_null(st, col);
}

rp_status rp_db_sweep_begin(rp_db *db, const rp_sweep_info *s, int64_t *sweep_id) {
    if (!db || !s || !s->script || !s->experiment || !s->runner) return rp_fail(RP_ERR_INVAL, "rp_db_sweep_begin: missing field");
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db->sq, "INSERT INTO sweeps(script, experiment, preset, runner, git_commit, git_diff_sha256,"
                                " n_points, dir) VALUES (?,?,?,?,?,?,?,?)", -1, &st, NULL);
    if (rc != SQLITE_OK) return rp_db_fail(db, rc, "recording a sweep");
    bind_opt(st, 1, s->script); bind_opt(st, 2, s->experiment); bind_opt(st, 3, s->preset); bind_opt(st, 4, s->runner);
    bind_opt(st, 5, s->git_commit); bind_opt(st, 6, s->git_diff_sha256);
    sqlite3_bind_int64(st, 7, s->n_points); bind_opt(st, 8, s->dir);
    rc = rp_db_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) return rp_db_fail(db, rc, "recording a sweep");
    *sweep_id = sqlite3_last_insert_rowid(db->sq);
    return RP_OK;
}

rp_status rp_db_sweep_add_points(rp_db *db, int64_t sweep_id, const rp_sweep_point *pts, size_t n) {
    RP_TRY(rp_db_exec(db, "BEGIN IMMEDIATE", "recording sweep points"));
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db->sq, "INSERT INTO sweep_points(sweep_id, idx, seed, params_json, args_json) VALUES (?,?,?,?,?)",
                                -1, &st, NULL);
    rp_buf canon = {0};
    rp_status s = rc == SQLITE_OK ? RP_OK : rp_db_fail(db, rc, "recording sweep points");
    for (size_t i = 0; s == RP_OK && i < n; i++) {
        rp_buf_clear(&canon);
        s = rp_db_canonical_json(pts[i].params_json, &canon);
        if (s != RP_OK) { rp_fail_ctx(s, "sweep point %zu: params: ", i); break; }
        sqlite3_bind_int64(st, 1, sweep_id);
        sqlite3_bind_int64(st, 2, (int64_t)i);
        sqlite3_bind_int64(st, 3, pts[i].seed);
        sqlite3_bind_text(st, 4, canon.data, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 5, pts[i].args_json, -1, SQLITE_TRANSIENT);
        rc = rp_db_step(st);
        sqlite3_reset(st);
        if (rc != SQLITE_DONE) s = rp_db_fail(db, rc, "recording sweep points");
    }
    sqlite3_finalize(st);
    rp_buf_free(&canon);
    if (s == RP_OK) return rp_db_exec(db, "COMMIT", "recording sweep points");
    sqlite3_exec(db->sq, "ROLLBACK", NULL, NULL, NULL);
    return s;
}

/* A statement with int64 parameters ?1..?3 and an optional text ?4 (those it names), stepped to completion. */
static rp_status exec_ids(rp_db *db, const char *sql, const char *what, int64_t a, int64_t b, int64_t c, const char *t) {
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db->sq, sql, -1, &st, NULL);
    if (rc != SQLITE_OK) return rp_db_fail(db, rc, what);
    int np = sqlite3_bind_parameter_count(st);
    sqlite3_bind_int64(st, 1, a);
    if (np >= 2) sqlite3_bind_int64(st, 2, b);
    if (np >= 3) sqlite3_bind_int64(st, 3, c);
    if (np >= 4) bind_opt(st, 4, t);
    rc = rp_db_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? RP_OK : rp_db_fail(db, rc, what);
}

rp_status rp_db_run_set_sweep(rp_db *db, int64_t run_id, int64_t sweep_id, int64_t point) {
    return exec_ids(db, "UPDATE runs SET sweep_id=?2, sweep_point=?3 WHERE id=?1", "tagging a run with its sweep",
                    run_id, sweep_id, point, NULL);
}

rp_status rp_db_sweep_point_given_up(rp_db *db, int64_t sweep_id, int64_t point) {
    return exec_ids(db, "UPDATE sweep_points SET state='killed' WHERE sweep_id=?1 AND idx=?2", "marking a sweep point killed",
                    sweep_id, point, 0, NULL);
}

rp_status rp_db_sweep_reap(rp_db *db, int64_t sweep_id, int64_t point, int64_t pid, const char *why) {
    return exec_ids(db, "UPDATE runs SET status='killed', error=?4, ended_at=strftime('%Y-%m-%dT%H:%M:%fZ','now') "
                    "WHERE sweep_id=?1 AND sweep_point=?2 AND pid=?3 AND status='running'", "marking a dead worker's run killed",
                    sweep_id, point, pid, why);
}

rp_status rp_db_sweep_set_job(rp_db *db, int64_t sweep_id, const char *job) {
    return exec_ids(db, "UPDATE sweeps SET job=?4 WHERE id=?1", "recording a sweep's job id", sweep_id, 0, 0, job);
}

/* Each point of a sweep with the run that stands for it: the finished one if any, else the newest. */
static const char POINTS_SQL[] =
    "SELECT p.idx AS idx, p.seed AS seed, p.params_json AS params_json, p.args_json AS args_json,"
    " r.id AS run_id, COALESCE(r.status, CASE p.state WHEN 'killed' THEN 'killed' ELSE 'missing' END) AS status"
    " FROM sweep_points p JOIN sweeps s ON s.id = p.sweep_id"
    " LEFT JOIN runs r ON r.id = (SELECT q.id FROM runs q WHERE q.experiment = s.experiment AND q.params_json = p.params_json"
    "   AND q.preset IS s.preset AND q.seed = p.seed AND q.git_commit IS s.git_commit AND q.git_diff_sha256 IS s.git_diff_sha256"
    "   ORDER BY q.status = 'finished' DESC, q.id DESC LIMIT 1)"
    " WHERE p.sweep_id = ? ORDER BY p.idx";

rp_status rp_db_sweep_states(rp_db *db, int64_t sweep_id, rp_sweep_state **out, size_t *n) {
    *out = NULL; *n = 0;
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db->sq, POINTS_SQL, -1, &st, NULL);
    if (rc != SQLITE_OK) return rp_db_fail(db, rc, "reading a sweep's points");
    sqlite3_bind_int64(st, 1, sweep_id);
    size_t cap = 0;
    rp_status s = RP_OK;
    while ((rc = rp_db_step(st)) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? 2 * cap : 64;
            rp_sweep_state *g = realloc(*out, cap * sizeof *g);
            if (!g) { s = rp_fail(RP_ERR_NOMEM, "out of memory reading sweep points"); break; }
            *out = g;
        }
        rp_sweep_state *p = &(*out)[(*n)++];
        p->idx = sqlite3_column_int64(st, 0);
        p->run_id = sqlite3_column_type(st, 4) == SQLITE_NULL ? 0 : sqlite3_column_int64(st, 4);
        snprintf(p->status, sizeof p->status, "%s", (const char *)sqlite3_column_text(st, 5));
    }
    if (s == RP_OK && rc != SQLITE_DONE) s = rp_db_fail(db, rc, "reading a sweep's points");
    sqlite3_finalize(st);
    if (s != RP_OK) { free(*out); *out = NULL; *n = 0; }
    return s;
}

rp_status rp_db_sweep_status_json(rp_db *db, int64_t sweep_id, rp_buf *out) {
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db->sq, "SELECT id, script, experiment, preset, runner, git_commit, n_points, dir, job, created_at "
                                "FROM sweeps WHERE id=?", -1, &st, NULL);
    if (rc != SQLITE_OK) return rp_db_fail(db, rc, "reading a sweep");
    sqlite3_bind_int64(st, 1, sweep_id);
    size_t mark = out->len;
    rp_status s = rp_buf_puts(out, "{\"sweep\":");
    if (s == RP_OK) s = rp_db_rows_json(db, st, out, 1);
    sqlite3_finalize(st);
    if (s == RP_OK && !strcmp(out->data + out->len - 4, "null")) {
        out->len = mark; out->data[mark] = 0;
        return rp_fail(RP_ERR_NOTFOUND, "%s: no sweep with id %lld", db->path, (long long)sweep_id);
    }
    if (s != RP_OK) return s;
    rc = sqlite3_prepare_v2(db->sq, POINTS_SQL, -1, &st, NULL);
    if (rc != SQLITE_OK) return rp_db_fail(db, rc, "reading a sweep's points");
    sqlite3_bind_int64(st, 1, sweep_id);
    s = rp_buf_puts(out, ",\"points\":");
    if (s == RP_OK) s = rp_db_rows_json(db, st, out, 0);
    sqlite3_finalize(st);
    if (s == RP_OK) s = rp_buf_puts(out, "}");
    return s;
}
