/* bench_merge.c: the merge rate of task registries (what a Slurm sweep leaves: one SQLite file per task)
 * into a main registry: runs/s and metric points/s through rp_db_merge_file, for many small tasks and for
 * fewer tasks with long metric series, then the idempotent second pass (every run already there). The
 * reference printed beside it is the registry's own write rate of the same points (rp_db_metric), measured
 * in the same run: a merge copies chunks, so it should be at least as fast per point. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "db/registry.h"
#include "db/sweep.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void die(void) { fprintf(stderr, "bench_merge: %s\n", rp_errmsg()); exit(1); }

/* Write ntasks task files of one run each with npoints points over 4 series; returns seconds spent writing. */
static double write_tasks(const char *dir, int ntasks, long npoints) {
    static const char *names[] = { "loss", "acc", "lr", "grad_norm" };
    double t0 = now();
    for (int k = 0; k < ntasks; k++) {
        char path[512];
        snprintf(path, sizeof path, "%s/task-%d.db", dir, k);
        rp_db *db;
        int64_t run;
        rp_run_info info = { .experiment = "bench_merge", .seed = k };
        if (rp_db_open(path, &db) != RP_OK || rp_db_run_begin(db, &info, &run) != RP_OK) die();
        for (long i = 0; i < npoints; i++)
            if (rp_db_metric(db, run, names[i % 4], (double)(i / 4), 1.0 / (double)(i + 1)) != RP_OK) die();
        if (rp_db_summary(db, run, "final", 0.5, 0.01, 10, 1) != RP_OK) die();
        if (rp_db_run_end(db, run, RP_RUN_FINISHED, NULL, NULL) != RP_OK) die();
        rp_db_close(db);
    }
    return now() - t0;
}

/* Merge every task file into main; returns seconds, and the totals through the pointers. */
static double merge_all(const char *dir, const char *main_path, int ntasks, int64_t *runs, int64_t *points) {
    rp_db *db;
    if (rp_db_open(main_path, &db) != RP_OK) die();
    *runs = *points = 0;
    double t0 = now();
    for (int k = 0; k < ntasks; k++) {
        char path[512];
        snprintf(path, sizeof path, "%s/task-%d.db", dir, k);
        rp_merge_result r;
        if (rp_db_merge_file(db, path, &r) != RP_OK) die();
        *runs += r.runs_added; *points += r.points_added;
    }
    double el = now() - t0;
    rp_db_close(db);
    return el;
}

static void shape(const char *label, int ntasks, long npoints) {
    char dir[] = "/tmp/bench_merge_XXXXXX";
    if (!mkdtemp(dir)) { perror("mkdtemp"); exit(1); }
    double wt = write_tasks(dir, ntasks, npoints);
    char main_path[600];
    snprintf(main_path, sizeof main_path, "%s/main.db", dir);
    int64_t runs, points;
    double mt = merge_all(dir, main_path, ntasks, &runs, &points);
    if (runs != ntasks || points != (int64_t)ntasks * npoints) { fprintf(stderr, "bench_merge: merged %lld runs %lld points, expected %d %ld\n",
                                                                          (long long)runs, (long long)points, ntasks, (long)ntasks * npoints); exit(1); }
    int64_t runs2, points2;
    double mt2 = merge_all(dir, main_path, ntasks, &runs2, &points2);
    printf("merge %-26s %8.0f runs/s %12.0f points/s  (%d task files, %ld points each, %.3f s); "
           "again (all present): %6.0f files/s, %lld added; reference: writing the same points %10.0f points/s\n",
           label, (double)runs / mt, (double)points / mt, ntasks, npoints, mt, (double)ntasks / mt2, (long long)runs2,
           (double)ntasks * (double)npoints / wt);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "bench_merge: could not remove %s\n", dir);
}

int main(void) {
    shape("many small tasks", 200, 100);
    shape("long metric series", 20, 200000);
    return 0;
}
