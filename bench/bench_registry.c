/* bench_registry.c: metric points per second through the registry (rp_db_metric, buffered and written
 * in batched transactions) into a fresh SQLite file, against the target of 1,000,000 points/s.
 * Three shapes: one series, eight interleaved series, and four processes writing at once. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "db/registry.h"

#define TARGET 1e6

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Log n points over nseries series into one run of db at path; returns seconds (open to close). */
static double log_points(const char *path, long n, int nseries) {
    static const char *names[] = { "loss", "acc", "lr", "grad_norm", "ppl", "tok_s", "mem", "time" };
    double t0 = now();
    rp_db *db;
    if (rp_db_open(path, &db) != RP_OK) { fprintf(stderr, "%s\n", rp_errmsg()); exit(1); }
    rp_run_info info = { .experiment = "bench" };
    int64_t run;
    if (rp_db_run_begin(db, &info, &run) != RP_OK) { fprintf(stderr, "%s\n", rp_errmsg()); exit(1); }
    for (long i = 0; i < n; i++)
        if (rp_db_metric(db, run, names[i % nseries], (double)(i / nseries), 1.0 / (double)(i + 1)) != RP_OK) {
            fprintf(stderr, "%s\n", rp_errmsg()); exit(1);
        }
    if (rp_db_run_end(db, run, RP_RUN_FINISHED, NULL, NULL) != RP_OK) { fprintf(stderr, "%s\n", rp_errmsg()); exit(1); }
    rp_db_close(db);
    return now() - t0;
}

static void report(const char *what, long n, double secs) {
    double rate = (double)n / secs;
    printf("registry %-32s %10.0f points/s  (%ld points in %.3f s)  ratio to target 1e6/s: %.2fx %s\n",
           what, rate, n, secs, rate / TARGET, rate >= TARGET ? "ok" : "BELOW TARGET");
}

int main(void) {
    char dir[] = "/tmp/repro-bench-registry-XXXXXX", path[256];
    if (!mkdtemp(dir)) { perror("mkdtemp"); return 1; }
    long n = 4000000;
    snprintf(path, sizeof path, "%s/one.db", dir);
    report("1 series", n, log_points(path, n, 1));
    snprintf(path, sizeof path, "%s/eight.db", dir);
    report("8 interleaved series", n, log_points(path, n, 8));
    snprintf(path, sizeof path, "%s/procs.db", dir);
    enum { P = 4 };
    double t0 = now();
    pid_t pids[P];
    for (int p = 0; p < P; p++) if ((pids[p] = fork()) == 0) { log_points(path, n / P, 4); _exit(0); }
    int bad = 0;
    for (int p = 0; p < P; p++) { int st; waitpid(pids[p], &st, 0); bad += !(WIFEXITED(st) && WEXITSTATUS(st) == 0); }
    report("4 processes x 4 series (total)", n, now() - t0);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return bad ? 1 : 0;
}
