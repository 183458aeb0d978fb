/* registry.h: the SQLite run registry (results/repro.db). One connection per process, WAL mode, a busy
 * timeout, schema versioned by PRAGMA user_version with forward-only migrations; a database from a newer
 * schema is refused with a clear error rather than touched. Metric points are buffered and written in
 * batches inside transactions, by count and by time (a point waits about half a second at most while
 * points keep coming or rp_db_flush_due is called, so a SIGKILL loses at most the last second); NaN and ±Inf are stored faithfully (as text 'nan', 'inf', '-inf' in a REAL
 * column's companion, or any lossless scheme) and read back as the same doubles.
 * Several processes may write into one database at once without losing rows. */
#ifndef RP_REGISTRY_H
#define RP_REGISTRY_H
#include <stddef.h>
#include <stdint.h>
#include "util/err.h"
#include "util/buf.h"

typedef struct rp_db rp_db;

/* Open (creating and migrating as needed). Errors: corrupt file, newer schema, read-only folder. */
rp_status rp_db_open(const char *path, rp_db **out);
void rp_db_close(rp_db *db);                 /* flushes pending metrics; NULL is fine */
/* Open an existing registry for reading only (no file is created, nothing migrated or written): works on
 * a read-only file or folder. Errors: missing or unreadable file, corrupt, not a registry, other schema. */
rp_status rp_db_open_readonly(const char *path, rp_db **out);
/* Whether db was opened with rp_db_open_readonly. */
int rp_db_is_readonly(rp_db *db);
/* The underlying sqlite3* for modules that keep their own tables (e.g. plugins' caches). */
void *rp_db_sqlite(rp_db *db);
/* The schema version stored in the open database (PRAGMA user_version). */
int rp_db_schema_version(rp_db *db);

/* What a run records at its start (all strings may be NULL). JSON fields are JSON text. */
typedef struct rp_run_info {
    const char *experiment, *paper, *script, *preset;
    const char *git_commit;       /* full hash */
    int git_dirty;
    const char *git_diff_sha256;  /* of `git diff HEAD`, NULL when clean */
    const char *build_id, *lua_impl, *backend, *device;
    int64_t seed;
    const char *params_json, *env_json, *plugin_versions_json;
} rp_run_info;

/* LOST: recorded running, but its process is gone (found by rp_db_mark_lost, never set by a run). */
typedef enum rp_run_status { RP_RUN_RUNNING, RP_RUN_FINISHED, RP_RUN_FAILED, RP_RUN_KILLED, RP_RUN_LOST } rp_run_status;
/* The lowercase name stored in runs.status ("running", "finished", "failed", "killed", "lost"). */
const char *rp_run_status_name(rp_run_status s);

/* Mark as lost every run recorded running on this host whose process no longer exists (its end never got
 * recorded: SIGKILL, a crash, a power cut); *n_lost (may be NULL) receives how many. Read-only: a no-op
 * (rp_db_list_runs and rp_db_get_run show such runs as lost either way). */
rp_status rp_db_mark_lost(rp_db *db, int *n_lost);
/* Insert a `runs` row with status running and the start time; returns its id. */
rp_status rp_db_run_begin(rp_db *db, const rp_run_info *info, int64_t *run_id);
/* Flush metrics, set status, end time, error message and traceback (NULL when none). */
rp_status rp_db_run_end(rp_db *db, int64_t run_id, rp_run_status st, const char *error, const char *traceback);

/* Buffer one point of a metric series (step may be any number: a step, a context length, ...). */
rp_status rp_db_metric(rp_db *db, int64_t run_id, const char *name, double step, double value);
/* Write buffered points now (one transaction). Also called automatically every N points, when the oldest
 * buffered point is about half a second old (checked at each rp_db_metric), and at end/close. */
rp_status rp_db_flush(rp_db *db);
/* Flush only when buffered points have waited about half a second: cheap enough to call often from a
 * loop that logs nothing for a while (the Lua host calls it from a count hook). */
rp_status rp_db_flush_due(rp_db *db);
/* A summary: a scalar with optional standard error (NaN when none) and n (0 when unknown); direction
 * +1 higher is better, -1 lower is better, 0 neither. Replaces an earlier summary of the same name. */
rp_status rp_db_summary(rp_db *db, int64_t run_id, const char *name, double value, double stderr_, int64_t n, int direction);
/* A target: the paper's value vs the reproduced one. kind: "exact", "statistical", "shape" or "not_reproducible".
 * status: "pass", "fail", "inconclusive" (a statistical target short of the n it needs), "not_reproducible" (the harness decides it before calling). */
rp_status rp_db_target(rp_db *db, int64_t run_id, const char *name, const char *kind, double paper_value,
                       double tolerance, double reproduced, const char *status, const char *note);
/* A figure: its spec as JSON (type, title, axes, series with their data) so `repro plot` can re-render
 * from the database alone; files_json lists the written files; rendered 0 when gnuplot failed/missing. */
rp_status rp_db_figure(rp_db *db, int64_t run_id, const char *name, const char *spec_json, const char *files_json, int rendered);
/* A free-form artifact / record (JSON), e.g. a per-response record of a pipeline. */
rp_status rp_db_record(rp_db *db, int64_t run_id, const char *kind, const char *key, const char *json);
/* The JSON text of the latest record of kind/key in run_id, appended to out; RP_ERR_NOTFOUND when none. */
rp_status rp_db_record_get(rp_db *db, int64_t run_id, const char *kind, const char *key, rp_buf *out);
/* The run a resumed run reuses finished units from (db_memo.c): the latest run before `before` with the same
 * experiment, canonical params, plugin versions and seed holding memo records; *from = 0 when none. */
rp_status rp_db_memo_source(rp_db *db, const rp_run_info *info, int64_t before, int64_t *from, int64_t *n_units);

struct rp_json;
/* Queries return JSON text in out (arrays of objects), so the CLI can print tables or --json alike. */
typedef struct rp_run_filter { const char *experiment, *commit_prefix, *status; int64_t limit; } rp_run_filter;
/* The runs matching f, newest first, as a JSON array of run objects. */
rp_status rp_db_list_runs(rp_db *db, const rp_run_filter *f, rp_buf *out_json);
/* One run with everything: info, params, env, summaries, targets, figures, metric names with counts. */
rp_status rp_db_get_run(rp_db *db, int64_t run_id, rp_buf *out_json);
/* rp_db_list_runs and rp_db_get_run, parsed: *rows / *run is the JSON value (free with rp_json_free). */
rp_status rp_db_runs(rp_db *db, const rp_run_filter *f, struct rp_json **rows);
rp_status rp_db_run(rp_db *db, int64_t run_id, struct rp_json **run);
/* Points of one metric of one run: [[step, value], ...]. */
rp_status rp_db_get_metric(rp_db *db, int64_t run_id, const char *name, rp_buf *out_json);
/* The same points as doubles, bit for bit as logged (NaN, ±Inf included); *steps and *values are
 * malloc'd arrays of *n elements (free them). In get_metric's JSON, non-finite values are the strings
 * "nan", "inf", "-inf"; the same holds for summaries and targets in get_run. */
rp_status rp_db_get_metric_points(rp_db *db, int64_t run_id, const char *name, double **steps, double **values, size_t *n);
/* A double of query JSON: numbers as they are, "inf" / "-inf" as ±Inf, anything else (null, "nan") NaN. */
double rp_db_json_value(const struct rp_json *v);
/* The version of the SQLite library in use (for a run's environment record). */
const char *rp_db_sqlite_version(void);
/* The latest finished run of experiment (RP_ERR_NOTFOUND when none). */
rp_status rp_db_latest_finished(rp_db *db, const char *experiment, int64_t *run_id);
/* Append json (text) in canonical form: object keys sorted at every depth, compact. rp_db_run_begin
 * stores params_json this way, so equal params are equal text (for grouping in report and compare). */
rp_status rp_db_canonical_json(const char *json, rp_buf *out);
/* The path the database was opened with. */
const char *rp_db_path(rp_db *db);

#endif
