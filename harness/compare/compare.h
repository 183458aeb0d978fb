/* compare.h: comparing the finished runs of two commits. Runs are grouped by experiment + params
 * (canonical JSON, without any "seed" key) + backend + device; within a group each summary (and the last
 * value of each metric series) is aggregated over the runs (seeds) as mean ± sample std. A row is a
 * regression when the summary has a direction (higher or lower is better) and B is worse than A by more
 * than threshold_pct percent of |A| (any worsening when A is 0). */
#ifndef RP_COMPARE_H
#define RP_COMPARE_H
#include "db/registry.h"
#include "util/buf.h"

typedef struct rp_compare_opts {
    const char *commit_a, *commit_b;   /* full hashes, or prefixes of the hashes stored in runs.git_commit */
    const char *label_a, *label_b;     /* how to name them in the output (e.g. the revisions as typed) */
    double threshold_pct;              /* e.g. 5 */
} rp_compare_opts;

/* Compare; text receives a human table, json (may be NULL) the same as a JSON object. *regressions is
 * the number of regressed rows. RP_ERR_NOTFOUND when a commit has no finished run (message says which),
 * and when no group has runs at both commits (nothing was compared; text still lists the groups). */
rp_status rp_compare_commits(rp_db *db, const rp_compare_opts *o, rp_buf *text, rp_buf *json, int *regressions);
/* Number of finished runs recorded at commit (a full hash or prefix). */
rp_status rp_compare_count_runs(rp_db *db, const char *commit, int64_t *n);

/* Aggregate of one quantity over a group's runs. */
typedef struct rp_agg { double mean, std; int n; } rp_agg;
/* Mean and sample standard deviation (n-1; 0 for n == 1) of the finite values among v[0..n). */
rp_agg rp_compare_aggregate(const double *v, int n);
/* Whether going from a to b is a regression past threshold_pct for direction (+1 higher, -1 lower is better). */
int rp_compare_is_regression(double a, double b, int direction, double threshold_pct);

#endif
