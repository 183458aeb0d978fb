/* db.c: opening the run registry and writing everything but metric points (runs, summaries, targets,
 * figures, records). Opening refuses, before writing a byte: a corrupt or non-SQLite file, a schema newer
 * than this build, a folder we cannot write into (WAL needs its -wal and -shm files beside the db).
 * Every write is one autocommit statement, retried while another process holds the write lock. */
#include "db/db_internal.h"
#include <errno.h>
#include <libgen.h>
#include <signal.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

rp_status rp_db_fail(rp_db *db, int rc, const char *what) {
    const char *path = db && db->path ? db->path : "(database)";
    const char *msg = db && db->sq ? sqlite3_errmsg(db->sq) : sqlite3_errstr(rc);
    int prim = rc & 0xff;
    if (prim == SQLITE_NOTADB || prim == SQLITE_CORRUPT)
        return rp_fail(RP_ERR_FORMAT, "%s: %s: the file is corrupt or not a SQLite database (%s)", path, what, msg);
    if (prim == SQLITE_READONLY || prim == SQLITE_CANTOPEN || prim == SQLITE_PERM)
        return rp_fail(RP_ERR_IO, "%s: %s: cannot write the database or its folder (%s)", path, what, msg);
    if (prim == SQLITE_FULL || prim == SQLITE_IOERR)
        return rp_fail(RP_ERR_IO, "%s: %s: %s", path, what, msg);
    return rp_fail(RP_ERR_DB, "%s: %s: %s", path, what, msg);
}

/* Sleep a little between retries so that waiting writers do not spin. */
static void backoff(int attempt) {
    struct timespec ts = { 0, (long)(1000000L * (1 + attempt % 20)) };
    nanosleep(&ts, NULL);
}

int rp_db_step(sqlite3_stmt *st) {
    int rc;
    for (int attempt = 0; attempt < 2000; attempt++) {
        rc = sqlite3_step(st);
        if ((rc & 0xff) != SQLITE_BUSY && (rc & 0xff) != SQLITE_LOCKED) return rc;
        sqlite3_reset(st);
        backoff(attempt);
    }
    return rc;
}

rp_status rp_db_exec(rp_db *db, const char *sql, const char *what) {
    int rc = SQLITE_OK;
    for (int attempt = 0; attempt < 2000; attempt++) {
        rc = sqlite3_exec(db->sq, sql, NULL, NULL, NULL);
        if ((rc & 0xff) != SQLITE_BUSY && (rc & 0xff) != SQLITE_LOCKED) break;
        backoff(attempt);
    }
    return rc == SQLITE_OK ? RP_OK : rp_db_fail(db, rc, what);
}

int rp_db_bind_real(sqlite3_stmt *st, int col, double v) {
    if (isfinite(v)) return sqlite3_bind_double(st, col, v);
    const char *t = isnan(v) ? "nan" : v > 0 ? "inf" : "-inf";
    return sqlite3_bind_text(st, col, t, -1, SQLITE_STATIC);
}

double rp_db_column_real(sqlite3_stmt *st, int col) {
    switch (sqlite3_column_type(st, col)) {
    case SQLITE_FLOAT: case SQLITE_INTEGER: return sqlite3_column_double(st, col);
    case SQLITE_TEXT: {
        const char *t = (const char *)sqlite3_column_text(st, col);
        if (!strcmp(t, "inf")) return INFINITY;
        if (!strcmp(t, "-inf")) return -INFINITY;
        if (strcmp(t, "nan") != 0) { char *end; double v = strtod(t, &end); if (end != t && !*end) return v; }
        return NAN;
    }
    default: return NAN;
    }
}

/* The folder part of path ("." when none); caller frees. */
static char *folder_of(const char *path) {
    char *tmp = strdup(path);
    if (!tmp) return NULL;
    char *d = strdup(dirname(tmp));
    free(tmp);
    return d;
}

/* Check, before SQLite touches anything, that the folder exists (creating it) and is writable. */
static rp_status check_folder(const char *path) {
    char *dir = folder_of(path);
    if (!dir) return rp_fail(RP_ERR_NOMEM, "out of memory");
    rp_status st = RP_OK;
    struct stat sb;
    if (stat(dir, &sb) != 0) {
        st = rp_mkdirs(dir);
        if (st != RP_OK) st = rp_fail_ctx(st, "%s: cannot create the results folder %s: ", path, dir);
    } else if (!S_ISDIR(sb.st_mode)) {
        st = rp_fail(RP_ERR_IO, "%s: %s is not a folder", path, dir);
    }
    if (st == RP_OK && access(dir, W_OK) != 0)
        st = rp_fail(RP_ERR_IO, "%s: the results folder %s is read-only (%s): the registry needs to write the "
                     "database and its -wal/-shm files there; use a writable folder or --db PATH",
                     path, dir, strerror(errno));
    if (st == RP_OK && access(path, F_OK) == 0 && access(path, W_OK) != 0)
        st = rp_fail(RP_ERR_IO, "%s: the database file is read-only (%s)", path, strerror(errno));
    free(dir);
    return st;
}

/* Read PRAGMA user_version: the first read of the file, so it is also where a non-database shows. */
static rp_status read_version(rp_db *db, int *version) {
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db->sq, "PRAGMA user_version", -1, &st, NULL);
    if (rc != SQLITE_OK) return rp_db_fail(db, rc, "reading the schema version");
    rc = rp_db_step(st);
    *version = rc == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? RP_OK : rp_db_fail(db, rc, "reading the schema version");
}

/* SQL function rp_process_gone(host, pid): 1 when host is this machine and no process pid exists (a
 * pid reused by another process reads as alive: a run is marked lost only when surely gone). */
static void process_gone(sqlite3_context *c, int argc, sqlite3_value **v) {
    (void)argc;
    const char *host = (const char *)sqlite3_value_text(v[0]);
    int64_t pid = sqlite3_value_int64(v[1]);
    char me[256] = "";
    gethostname(me, sizeof me - 1);
    int gone = host && pid > 0 && pid <= INT32_MAX && !strcmp(host, me) && pid != (int64_t)getpid() &&
               kill((pid_t)pid, 0) != 0 && errno == ESRCH;
    sqlite3_result_int(c, gone);
}

/* Make rp_process_gone available to this connection's queries. */
static rp_status add_functions(rp_db *db) {
    int rc = sqlite3_create_function(db->sq, "rp_process_gone", 2, SQLITE_UTF8, NULL, process_gone, NULL, NULL);
    return rc == SQLITE_OK ? RP_OK : rp_db_fail(db, rc, "registering functions");
}

rp_status rp_db_open(const char *path, rp_db **out) {
    *out = NULL;
    if (!path || !*path) return rp_fail(RP_ERR_INVAL, "rp_db_open: empty database path");
    RP_TRY(check_folder(path));
    rp_db *db = calloc(1, sizeof *db);
    if (!db || !(db->path = strdup(path))) { free(db); return rp_fail(RP_ERR_NOMEM, "out of memory"); }
    int rc = sqlite3_open_v2(path, &db->sq, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    rp_status st = RP_OK;
    if (rc != SQLITE_OK) st = rp_db_fail(db, rc, "opening");
    if (st == RP_OK) sqlite3_busy_timeout(db->sq, 30000);
    int version = 0;
    if (st == RP_OK) st = read_version(db, &version);
    if (st == RP_OK && version > RP_DB_SCHEMA)
        st = rp_fail(RP_ERR_UNSUPPORTED, "%s has schema version %d, newer than this repro (%d): upgrade repro",
                     path, version, RP_DB_SCHEMA);
    if (st == RP_OK) st = rp_db_exec(db, "PRAGMA journal_mode=WAL", "switching to WAL");
    if (st == RP_OK) st = rp_db_exec(db, "PRAGMA synchronous=NORMAL", "setting synchronous");
    if (st == RP_OK) st = rp_db_migrate(db);
    if (st == RP_OK) st = add_functions(db);
    if (st == RP_OK) rp_db_clock_start();
    if (st == RP_OK) {
        rc = sqlite3_prepare_v3(db->sq, "INSERT INTO metrics(run_id, name_id, n, steps, vals) VALUES (?,?,?,?,?)",
                                -1, SQLITE_PREPARE_PERSISTENT, &db->ins_chunk, NULL);
        if (rc != SQLITE_OK) st = rp_db_fail(db, rc, "preparing the metric insert");
    }
    if (st != RP_OK) {
        sqlite3_finalize(db->ins_chunk);
        sqlite3_close(db->sq);
        free(db->path);
        free(db);
        return st;
    }
    *out = db;
    return RP_OK;
}

rp_status rp_db_mark_lost(rp_db *db, int *n_lost) {
    if (n_lost) *n_lost = 0;
    if (!db) return rp_fail(RP_ERR_INVAL, "rp_db_mark_lost: NULL database");
    if (db->readonly) return RP_OK;   /* queries still show such runs as lost */
    RP_TRY(rp_db_exec(db, "UPDATE runs SET status = 'lost', ended_at = COALESCE(ended_at, strftime('%Y-%m-%dT%H:%M:%fZ','now')), "
                          "error = COALESCE(error, 'process ' || pid || ' on ' || host || ' is gone (killed without a chance "
                          "to record its end, e.g. SIGKILL or a crash)') WHERE " RP_DB_LOST_SQL, "marking lost runs"));
    if (n_lost) *n_lost = sqlite3_changes(db->sq);
    return RP_OK;
}

/* Open read-only with flags (and, for a file in a folder we cannot write, immutable: SQLite then needs
 * no -shm file); check it is a registry of this build's schema. */
static rp_status open_ro(rp_db *db, const char *uri_or_path, int flags) {
    int rc = sqlite3_open_v2(uri_or_path, &db->sq, flags, NULL);
    if (rc != SQLITE_OK) return rp_db_fail(db, rc, "opening read-only");
    sqlite3_busy_timeout(db->sq, 30000);
    int version = 0;
    RP_TRY(read_version(db, &version));
    RP_TRY(add_functions(db));
    if (version > RP_DB_SCHEMA)
        return rp_fail(RP_ERR_UNSUPPORTED, "%s has schema version %d, newer than this repro (%d): upgrade repro",
                       db->path, version, RP_DB_SCHEMA);
    if (version == 0)
        return rp_fail(RP_ERR_FORMAT, "%s: not a repro registry (no schema; the file is empty or another program's database)", db->path);
    if (version < RP_DB_SCHEMA)
        return rp_fail(RP_ERR_UNSUPPORTED, "%s has schema version %d, older than this repro's (%d), and is opened read-only: "
                       "make it writable once so that a writing command (repro run) migrates it", db->path, version, RP_DB_SCHEMA);
    return RP_OK;
}

rp_status rp_db_open_readonly(const char *path, rp_db **out) {
    *out = NULL;
    if (!path || !*path) return rp_fail(RP_ERR_INVAL, "rp_db_open_readonly: empty database path");
    if (access(path, R_OK) != 0) return rp_fail(RP_ERR_NOTFOUND, "%s: cannot read the registry (%s)", path, strerror(errno));
    rp_db *db = calloc(1, sizeof *db);
    if (!db || !(db->path = strdup(path))) { free(db); return rp_fail(RP_ERR_NOMEM, "out of memory"); }
    db->readonly = 1;
    rp_status st = open_ro(db, path, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX);
    if (st != RP_OK && st != RP_ERR_FORMAT && st != RP_ERR_UNSUPPORTED) {
        /* A WAL database in a folder we cannot write: no -shm can be made, so read it as immutable. */
        sqlite3_close(db->sq);
        db->sq = NULL;
        char *uri = sqlite3_mprintf("file:%s?immutable=1", path);
        st = uri ? open_ro(db, uri, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_URI)
                 : rp_fail(RP_ERR_NOMEM, "out of memory");
        sqlite3_free(uri);
    }
    if (st != RP_OK) {
        sqlite3_close(db->sq);
        free(db->path);
        free(db);
        return st;
    }
    *out = db;
    return RP_OK;
}

int rp_db_is_readonly(rp_db *db) { return db ? db->readonly : 0; }

rp_status rp_db_run_not_found(rp_db *db, int64_t run_id) {
    /* A damaged page can read as missing rows rather than as an error: ask SQLite to check the b-trees
     * (only on this path, where the cost of a full check is paid once by a failing command). */
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db->sq, "PRAGMA quick_check(1)", -1, &st, NULL);
    if (rc != SQLITE_OK) return rp_db_fail(db, rc, "checking the database");
    rc = rp_db_step(st);
    rp_status s;
    if (rc == SQLITE_ROW && strcmp((const char *)sqlite3_column_text(st, 0), "ok")) {
        char what[512];
        snprintf(what, sizeof what, "%s", (const char *)sqlite3_column_text(st, 0));
        for (char *c = what; *c; c++) if (*c == '\n') *c = ' ';
        s = rp_fail(RP_ERR_FORMAT, "%s: the database is corrupt (%s), so run %lld cannot be read; restore it from a backup "
                    "or move it aside", db->path, what, (long long)run_id);
    }
    else if (rc != SQLITE_ROW) s = rp_db_fail(db, rc, "checking the database");
    else s = rp_fail(RP_ERR_NOTFOUND, "%s: no run with id %lld", db->path, (long long)run_id);
    sqlite3_finalize(st);
    return s;
}

void rp_db_close(rp_db *db) {
    if (!db) return;
    if (db->nbuf && rp_db_flush(db) != RP_OK)
        fprintf(stderr, "repro: warning: %s\n", rp_errmsg());
    sqlite3_finalize(db->ins_chunk);
    sqlite3_close(db->sq);
    rp_db_metrics_free(db);
    free(db->path);
    free(db);
}

void *rp_db_sqlite(rp_db *db) { return db ? db->sq : NULL; }

int rp_db_schema_version(rp_db *db) {
    int v = -1;
    if (db && read_version(db, &v) != RP_OK) v = -1;
    return v;
}

const char *rp_run_status_name(rp_run_status s) {
    switch (s) {
    case RP_RUN_RUNNING: return "running";
    case RP_RUN_FINISHED: return "finished";
    case RP_RUN_FAILED: return "failed";
    case RP_RUN_KILLED: return "killed";
    case RP_RUN_LOST: return "lost";
    }
    return "unknown";
}

/* Bind text or NULL. */
static int bind_text(sqlite3_stmt *st, int col, const char *s) {
    return s ? sqlite3_bind_text(st, col, s, -1, SQLITE_TRANSIENT) : sqlite3_bind_null(st, col);
}

/* Check that s (a *_json field) is NULL or valid JSON, so that queries can embed it verbatim. */
static rp_status check_json(rp_db *db, const char *field, const char *s) {
    if (!s) return RP_OK;
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db->sq, "SELECT json_valid(?)", -1, &st, NULL);
    if (rc != SQLITE_OK) return rp_db_fail(db, rc, "checking JSON");
    sqlite3_bind_text(st, 1, s, -1, SQLITE_STATIC);
    int ok = sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0) == 1;
    sqlite3_finalize(st);
    return ok ? RP_OK : rp_fail(RP_ERR_INVAL, "%s: %s is not valid JSON: %.200s", db->path, field, s);
}

/* Prepare, let bind() fill the parameters, step to completion; errors name `what`. */
static rp_status write1(rp_db *db, const char *sql, const char *what, int (*bind)(sqlite3_stmt *, const void *),
                        const void *arg) {
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db->sq, sql, -1, &st, NULL);
    if (rc != SQLITE_OK) return rp_db_fail(db, rc, what);
    rc = bind(st, arg);
    if (rc == SQLITE_OK) rc = rp_db_step(st);
    rp_status s = (rc == SQLITE_DONE || rc == SQLITE_OK) ? RP_OK : rp_db_fail(db, rc, what);
    sqlite3_finalize(st);
    return s;
}

static int bind_run(sqlite3_stmt *st, const void *arg) {
    const rp_run_info *in = arg;
    char host[256] = "";
    gethostname(host, sizeof host - 1);
    const char *txt[] = { in->experiment, in->paper, in->script, in->preset, in->git_commit, in->git_diff_sha256,
                          in->build_id, in->lua_impl, in->backend, in->device, in->params_json, in->env_json,
                          in->plugin_versions_json, host };
    int rc = SQLITE_OK;
    for (int i = 0; i < 14 && rc == SQLITE_OK; i++) rc = bind_text(st, i + 1, txt[i]);
    if (rc == SQLITE_OK) rc = sqlite3_bind_int(st, 15, in->git_dirty ? 1 : 0);
    if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 16, in->seed);
    if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 17, (int64_t)getpid());
    return rc;
}

rp_status rp_db_run_begin(rp_db *db, const rp_run_info *info, int64_t *run_id) {
    if (!db || !info || !run_id) return rp_fail(RP_ERR_INVAL, "rp_db_run_begin: NULL argument");
    if (!info->experiment || !*info->experiment) return rp_fail(RP_ERR_INVAL, "%s: a run needs an experiment name", db->path);
    RP_TRY(check_json(db, "params_json", info->params_json));
    RP_TRY(check_json(db, "env_json", info->env_json));
    RP_TRY(check_json(db, "plugin_versions_json", info->plugin_versions_json));
    rp_buf canon = { 0 };
    rp_run_info ci = *info;
    if (info->params_json) {
        rp_status cs = rp_db_canonical_json(info->params_json, &canon);
        if (cs != RP_OK) { rp_buf_free(&canon); return rp_fail_ctx(cs, "%s: params_json: ", db->path); }
        ci.params_json = canon.data;
    }
    /* The insert and last_insert_rowid must see the same connection state: one statement, then read it. */
    rp_status st = write1(db, "INSERT INTO runs(experiment, paper, script, preset, git_commit, git_diff_sha256, build_id, "
                      "lua_impl, backend, device, params_json, env_json, plugin_versions_json, host, git_dirty, seed, "
                      "pid, status, started_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,'running',"
                      "strftime('%Y-%m-%dT%H:%M:%fZ','now'))",
                  "recording the start of a run", bind_run, &ci);
    rp_buf_free(&canon);
    if (st != RP_OK) return st;
    *run_id = sqlite3_last_insert_rowid(db->sq);
    return RP_OK;
}

struct end_args { int64_t run; const char *status, *error, *tb; };
static int bind_end(sqlite3_stmt *st, const void *arg) {
    const struct end_args *a = arg;
    int rc = sqlite3_bind_text(st, 1, a->status, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK) rc = bind_text(st, 2, a->error);
    if (rc == SQLITE_OK) rc = bind_text(st, 3, a->tb);
    if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 4, a->run);
    return rc;
}

/* Whether run_id names a row of runs. */
static rp_status check_run(rp_db *db, int64_t run_id) {
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db->sq, "SELECT 1 FROM runs WHERE id=?", -1, &st, NULL);
    if (rc != SQLITE_OK) return rp_db_fail(db, rc, "looking up a run");
    sqlite3_bind_int64(st, 1, run_id);
    rc = rp_db_step(st);
    sqlite3_finalize(st);
    if (rc == SQLITE_ROW) return RP_OK;
    if (rc == SQLITE_DONE) return rp_db_run_not_found(db, run_id);
    return rp_db_fail(db, rc, "looking up a run");
}

rp_status rp_db_run_end(rp_db *db, int64_t run_id, rp_run_status s, const char *error, const char *traceback) {
    if (!db) return rp_fail(RP_ERR_INVAL, "rp_db_run_end: NULL database");
    rp_status fst = rp_db_flush(db);   /* the run's points go in before its status says it ended */
    RP_TRY(check_run(db, run_id));
    struct end_args a = { run_id, rp_run_status_name(s), error, traceback };
    RP_TRY(write1(db, "UPDATE runs SET status=?, error=?, traceback=?, ended_at=strftime('%Y-%m-%dT%H:%M:%fZ','now') "
                      "WHERE id=?", "recording the end of a run", bind_end, &a));
    return fst;
}

struct summary_args { int64_t run; const char *name; double v, se; int64_t n; int dir; };
static int bind_summary(sqlite3_stmt *st, const void *arg) {
    const struct summary_args *a = arg;
    int rc = sqlite3_bind_int64(st, 1, a->run);
    if (rc == SQLITE_OK) rc = sqlite3_bind_text(st, 2, a->name, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK) rc = rp_db_bind_real(st, 3, a->v);
    if (rc == SQLITE_OK) rc = rp_db_bind_real(st, 4, a->se);
    if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 5, a->n);
    if (rc == SQLITE_OK) rc = sqlite3_bind_int(st, 6, a->dir);
    return rc;
}

rp_status rp_db_summary(rp_db *db, int64_t run_id, const char *name, double value, double stderr_, int64_t n, int direction) {
    if (!db || !name || !*name) return rp_fail(RP_ERR_INVAL, "rp_db_summary: a summary needs a name");
    if (direction < -1 || direction > 1)
        return rp_fail(RP_ERR_INVAL, "summary %s: direction %d must be +1 (higher is better), -1 (lower) or 0", name, direction);
    RP_TRY(check_run(db, run_id));
    struct summary_args a = { run_id, name, value, stderr_, n, direction };
    return write1(db, "INSERT OR REPLACE INTO summaries(run_id, name, value, stderr, n, direction) VALUES (?,?,?,?,?,?)",
                  "writing a summary", bind_summary, &a);
}

struct target_args { int64_t run; const char *name, *kind, *status, *note; double paper, tol, got; };
static int bind_target(sqlite3_stmt *st, const void *arg) {
    const struct target_args *a = arg;
    int rc = sqlite3_bind_int64(st, 1, a->run);
    if (rc == SQLITE_OK) rc = sqlite3_bind_text(st, 2, a->name, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK) rc = sqlite3_bind_text(st, 3, a->kind, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK) rc = rp_db_bind_real(st, 4, a->paper);
    if (rc == SQLITE_OK) rc = rp_db_bind_real(st, 5, a->tol);
    if (rc == SQLITE_OK) rc = rp_db_bind_real(st, 6, a->got);
    if (rc == SQLITE_OK) rc = sqlite3_bind_text(st, 7, a->status, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK) rc = bind_text(st, 8, a->note);
    return rc;
}

/* Whether s is one of the NULL-terminated list. */
static int one_of(const char *s, const char *const *list) {
    for (; *list; list++) if (!strcmp(s, *list)) return 1;
    return 0;
}

rp_status rp_db_target(rp_db *db, int64_t run_id, const char *name, const char *kind, double paper_value,
                       double tolerance, double reproduced, const char *status, const char *note) {
    static const char *const kinds[] = { "exact", "statistical", "shape", "not_reproducible", NULL };
    static const char *const statuses[] = { "pass", "fail", "inconclusive", "not_reproducible", NULL };
    if (!db || !name || !*name) return rp_fail(RP_ERR_INVAL, "rp_db_target: a target needs a name");
    if (!kind || !one_of(kind, kinds))
        return rp_fail(RP_ERR_INVAL, "target %s: kind '%s' is not one of exact, statistical, shape, not_reproducible", name, kind ? kind : "(null)");
    if (!status || !one_of(status, statuses))
        return rp_fail(RP_ERR_INVAL, "target %s: status '%s' is not one of pass, fail, inconclusive, not_reproducible", name, status ? status : "(null)");
    RP_TRY(check_run(db, run_id));
    struct target_args a = { run_id, name, kind, status, note, paper_value, tolerance, reproduced };
    return write1(db, "INSERT OR REPLACE INTO targets(run_id, name, kind, paper_value, tolerance, reproduced, status, note) "
                      "VALUES (?,?,?,?,?,?,?,?)", "writing a target", bind_target, &a);
}

struct figure_args { int64_t run; const char *name, *spec, *files; int rendered; };
static int bind_figure(sqlite3_stmt *st, const void *arg) {
    const struct figure_args *a = arg;
    int rc = sqlite3_bind_int64(st, 1, a->run);
    if (rc == SQLITE_OK) rc = sqlite3_bind_text(st, 2, a->name, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK) rc = sqlite3_bind_text(st, 3, a->spec, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK) rc = bind_text(st, 4, a->files);
    if (rc == SQLITE_OK) rc = sqlite3_bind_int(st, 5, a->rendered ? 1 : 0);
    return rc;
}

rp_status rp_db_figure(rp_db *db, int64_t run_id, const char *name, const char *spec_json, const char *files_json, int rendered) {
    if (!db || !name || !*name || !spec_json) return rp_fail(RP_ERR_INVAL, "rp_db_figure: a figure needs a name and a spec");
    RP_TRY(check_json(db, "figure spec_json", spec_json));
    RP_TRY(check_json(db, "figure files_json", files_json));
    RP_TRY(check_run(db, run_id));
    struct figure_args a = { run_id, name, spec_json, files_json, rendered };
    return write1(db, "INSERT OR REPLACE INTO figures(run_id, name, spec_json, files_json, rendered) VALUES (?,?,?,?,?)",
                  "writing a figure", bind_figure, &a);
}

struct record_args { int64_t run; const char *kind, *key, *json; };
static int bind_record(sqlite3_stmt *st, const void *arg) {
    const struct record_args *a = arg;
    int rc = sqlite3_bind_int64(st, 1, a->run);
    if (rc == SQLITE_OK) rc = sqlite3_bind_text(st, 2, a->kind, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK) rc = bind_text(st, 3, a->key);
    if (rc == SQLITE_OK) rc = sqlite3_bind_text(st, 4, a->json, -1, SQLITE_STATIC);
    return rc;
}

rp_status rp_db_record(rp_db *db, int64_t run_id, const char *kind, const char *key, const char *json) {
    if (!db || !kind || !*kind || !json) return rp_fail(RP_ERR_INVAL, "rp_db_record: a record needs a kind and JSON");
    RP_TRY(check_json(db, "record json", json));
    struct record_args a = { run_id, kind, key, json };
    return write1(db, "INSERT INTO records(run_id, kind, key, data_json) VALUES (?,?,?,?)", "writing a record", bind_record, &a);
}

const char *rp_db_path(rp_db *db) { return db ? db->path : NULL; }
