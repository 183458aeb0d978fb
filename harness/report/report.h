/* report.h: the reproduction report: a self-contained HTML page (figures embedded as base64 PNG data
 * URIs, no external resource) and its Markdown twin, built from the registry alone. Per paper: a table of
 * targets (name, experiment, paper value, reproduced value, tolerance and kind, status, provenance: run id,
 * short commit with * when dirty, device), each run's summaries, then the figures. By default only the
 * runs of one commit (the latest with a finished run) are shown, and of those the latest finished run
 * per experiment + params, so two commits' numbers are never mixed in one table. Runs that differ only by
 * seed (same commit, experiment, params, backend, device) are aggregated under the latest of them: each
 * summary as mean ± standard error (sample std / sqrt(n)) over the seeds, the latest run per seed. */
#ifndef RP_REPORT_H
#define RP_REPORT_H
#include "db/registry.h"

typedef struct rp_report_opts {
    int all_runs;             /* every finished run, not only the latest per experiment + params */
    const char *experiment;   /* only this experiment (NULL: all) */
    const char *commit;       /* runs of this commit (hash prefix); NULL: the latest commit with a finished run */
    int all_commits;          /* runs of every commit, grouped by commit (newest commit first) */
} rp_report_opts;

/* Write html_path and md_path (either may be NULL to skip it). *nruns receives the runs reported. */
rp_status rp_report_write(rp_db *db, const rp_report_opts *opts, const char *html_path, const char *md_path, int *nruns);

#endif
