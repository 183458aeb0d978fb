/* db_memo.c: the registry side of resumable runs (ctx:memo in repro.experiment). A finished unit of work is
 * a `records` row of kind "memo" in its run, keyed by the unit's key, holding the unit's result as JSON; a
 * resumed run reads the units of the run it resumes and writes each one it reuses again under its own id,
 * so every run holds all of its units and a resume of a resume needs only the latest run. Invariant: a run
 * is resumed only from an earlier run of the same experiment with byte-equal canonical params, plugin
 * versions and seed, so a reused unit is one the new run would have computed with the same inputs. */
#include "db/db_internal.h"
#include <stdlib.h>
#include <string.h>

/* The latest run before `before` with the same experiment, params, plugin versions and seed that recorded
 * at least one memo unit; *from = 0 when there is none. *n_units receives how many units it holds. */
rp_status rp_db_memo_source(rp_db *db, const rp_run_info *info, int64_t before, int64_t *from, int64_t *n_units) {
    if (!db || !info || !info->experiment || !from) return rp_fail(RP_ERR_INVAL, "rp_db_memo_source: needs a registry and a run's info");
    *from = 0;
    if (n_units) *n_units = 0;
    rp_buf canon = {0};
    if (info->params_json) RP_TRY(rp_db_canonical_json(info->params_json, &canon));
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db->sq,
        "SELECT r.id, (SELECT COUNT(*) FROM records m WHERE m.run_id = r.id AND m.kind = 'memo') AS n FROM runs r"
        " WHERE r.experiment = ? AND r.id < ? AND r.seed = ? AND r.params_json IS ? AND r.plugin_versions_json IS ?"
        " AND EXISTS (SELECT 1 FROM records m WHERE m.run_id = r.id AND m.kind = 'memo') ORDER BY r.id DESC LIMIT 1", -1, &st, NULL);
    if (rc == SQLITE_OK) rc = sqlite3_bind_text(st, 1, info->experiment, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 2, before);
    if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 3, info->seed);
    if (rc == SQLITE_OK) rc = canon.data ? sqlite3_bind_text(st, 4, canon.data, -1, SQLITE_STATIC) : sqlite3_bind_null(st, 4);
    if (rc == SQLITE_OK) rc = info->plugin_versions_json ? sqlite3_bind_text(st, 5, info->plugin_versions_json, -1, SQLITE_STATIC)
                                                         : sqlite3_bind_null(st, 5);
    if (rc == SQLITE_OK) {
        rc = rp_db_step(st);
        if (rc == SQLITE_ROW) {
            *from = sqlite3_column_int64(st, 0);
            if (n_units) *n_units = sqlite3_column_int64(st, 1);
            rc = SQLITE_DONE;
        }
    }
    rp_status s = rc == SQLITE_DONE ? RP_OK : rp_db_fail(db, rc, "finding the run to resume");
    sqlite3_finalize(st);
    rp_buf_free(&canon);
    return s;
}

/* The JSON text of the latest record of kind/key in run_id, appended to out; RP_ERR_NOTFOUND when none. */
rp_status rp_db_record_get(rp_db *db, int64_t run_id, const char *kind, const char *key, rp_buf *out) {
    if (!db || !kind || !key || !out) return rp_fail(RP_ERR_INVAL, "rp_db_record_get: needs a registry, a kind and a key");
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db->sq, "SELECT data_json FROM records WHERE run_id = ? AND kind = ? AND key = ? ORDER BY id DESC LIMIT 1",
                                -1, &st, NULL);
    if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 1, run_id);
    if (rc == SQLITE_OK) rc = sqlite3_bind_text(st, 2, kind, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK) rc = sqlite3_bind_text(st, 3, key, -1, SQLITE_STATIC);
    rp_status s = RP_OK;
    if (rc == SQLITE_OK) {
        rc = rp_db_step(st);
        if (rc == SQLITE_ROW) s = rp_buf_puts(out, (const char *)sqlite3_column_text(st, 0));
        else if (rc == SQLITE_DONE) s = rp_fail(RP_ERR_NOTFOUND, "run %lld has no %s record '%s'", (long long)run_id, kind, key);
        else s = rp_db_fail(db, rc, "reading a record");
    } else {
        s = rp_db_fail(db, rc, "reading a record");
    }
    sqlite3_finalize(st);
    return s;
}
