/* sweep.h: the registry's sweep and merge API (db_sweep.c, db_merge.c). A sweep is a list of points (an
 * experiment's params + seed); each point becomes one run tagged with (sweep_id, sweep_point). A point's
 * state is the status of the best run with its key (experiment, canonical params, preset, seed, commit,
 * diff hash): "finished", "failed", "killed", "running" or "missing". Runs carry a uuid, so task
 * registries written elsewhere (Slurm tasks) fold into one registry without duplicates. */
#ifndef RP_DB_SWEEP_H
#define RP_DB_SWEEP_H
#include <stddef.h>
#include <stdint.h>
#include "db/registry.h"

typedef struct rp_sweep_info {
    const char *script, *experiment, *preset, *runner, *git_commit, *git_diff_sha256, *dir;
    int64_t n_points;
} rp_sweep_info;

/* One point: its resolved params (JSON object text, canonicalized on insert), its seed, and the
 * `repro run` arguments that produce it (JSON array of strings). */
typedef struct rp_sweep_point { const char *params_json, *args_json; int64_t seed; } rp_sweep_point;

/* A point's state: its index, the run that stands for it (0 when none) and that run's status. */
typedef struct rp_sweep_state { int64_t idx, run_id; char status[16]; } rp_sweep_state;

/* Insert a sweeps row; *sweep_id is its id. */
rp_status rp_db_sweep_begin(rp_db *db, const rp_sweep_info *s, int64_t *sweep_id);
/* Record the sweep's n points (indices 0..n-1) in one transaction. */
rp_status rp_db_sweep_add_points(rp_db *db, int64_t sweep_id, const rp_sweep_point *pts, size_t n);
/* Record the scheduler's job id of a sweep (Slurm). */
rp_status rp_db_sweep_set_job(rp_db *db, int64_t sweep_id, const char *job);
/* Tag a run with the sweep and point it belongs to. */
rp_status rp_db_run_set_sweep(rp_db *db, int64_t run_id, int64_t sweep_id, int64_t point);
/* Mark a point the sweep never started (it was interrupted first) as killed. */
rp_status rp_db_sweep_point_given_up(rp_db *db, int64_t sweep_id, int64_t point);
/* A worker process pid died without ending its run: mark that point's running run killed with why. */
rp_status rp_db_sweep_reap(rp_db *db, int64_t sweep_id, int64_t point, int64_t pid, const char *why);
/* Every point's state, in index order (*out malloc'd, *n entries; free it). */
rp_status rp_db_sweep_states(rp_db *db, int64_t sweep_id, rp_sweep_state **out, size_t *n);
/* {"sweep": {...}, "points": [{idx, seed, params_json, args_json, run_id, status}, ...]} appended to out. */
rp_status rp_db_sweep_status_json(rp_db *db, int64_t sweep_id, rp_buf *out);

/* What folding one task registry into the main one did. */
typedef struct rp_merge_result { int64_t runs_added, runs_skipped, points_added; } rp_merge_result;
/* Fold the runs of the registry file task_path into db, in one transaction: runs whose uuid db already
 * holds are skipped (merging twice adds nothing); metrics, summaries, targets, figures and records (every
 * table with a run_id column present in both) follow their run. A file that is not a complete registry
 * (corrupt, no runs, or a run still 'running': the task is still writing or died) is refused with
 * RP_ERR_FORMAT and a message naming it; nothing of it is merged. */
rp_status rp_db_merge_file(rp_db *db, const char *task_path, rp_merge_result *res);

#endif
