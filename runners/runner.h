/* runner.h: the runners that execute a sweep's points (runners/local.c: a pool of worker processes on this
 * machine; runners/slurm.c: an sbatch array on a Slurm cluster, per-task registries merged back). A runner
 * gets a plan (the points still to run, each as `repro run` arguments) and returns when every point ended
 * or the user stopped it; what each point did is read back from the registry, never from the runner.
 * Invariants: every point runs as its own `repro run` with REPRO_SWEEP_ID and REPRO_SWEEP_POINT set, so
 * its run is tagged; a runner never loses a finished run: interrupted, it stops the points in flight
 * (they end 'killed'), marks the ones it never started, and merges whatever tasks wrote. */
#ifndef RP_RUNNER_H
#define RP_RUNNER_H
#include <stddef.h>
#include <stdint.h>
#include "db/registry.h"

/* One point to run: its index in the sweep and its `repro run` arguments after "run" (NULL-terminated,
 * without --db: the runner adds where the run is recorded). */
typedef struct rp_plan_point { int64_t idx; char **args; } rp_plan_point;

typedef struct rp_plan {
    int64_t sweep_id;
    const char *exe;        /* absolute path of the repro binary the workers run */
    const char *db_path;    /* the main registry */
    const char *dir;        /* the sweep's folder: worker logs, Slurm script, task registries */
    const char *root;       /* the project checkout the workers run in */
    rp_plan_point *points;
    size_t n;
    size_t total;           /* points in the sweep, skipped ones included (for the progress line) */
} rp_plan;

/* Slurm placement: from the experiment's declared resources, overridden by flags. */
typedef struct rp_slurm_opts {
    int cpus, gpus, time_min, max_parallel;  /* 0: not given */
    const char *memory, *partition;          /* NULL: not given */
    double poll_s;                           /* squeue polling interval */
} rp_slurm_opts;

/* Run the plan's points as child processes, at most jobs at once. Returns RP_OK when all were run
 * (some may have failed), RP_ERR_INTERRUPTED when SIGINT/SIGTERM stopped it. */
rp_status rp_runner_local(rp_db *db, const rp_plan *plan, int jobs);
/* Write the sbatch array script, submit it, follow it with squeue, merge each task's registry as the task
 * leaves the queue. Returns RP_ERR_INTERRUPTED when stopped (the job is cancelled and merged first). */
rp_status rp_runner_slurm(rp_db *db, const rp_plan *plan, const rp_slurm_opts *o);

/* The progress line a runner shows (on a terminal: redrawn in place; else one line per change). */
typedef struct rp_sweep_progress { size_t total, skipped, done, running, failed, shown_done, shown_running; double t0; int tty; } rp_sweep_progress;
/* Start the display for a plan (time zero is now). */
void rp_sweep_progress_start(rp_sweep_progress *p, const rp_plan *plan);
/* Redraw with the current counts. */
void rp_sweep_progress_show(rp_sweep_progress *p);
/* End the line. */
void rp_sweep_progress_end(rp_sweep_progress *p);
/* Seconds on a monotonic clock. */
double rp_sweep_now(void);

#endif
