/* test_compare.c: commit comparison: aggregation against closed forms (mean, sample std), the regression
 * rule in both directions and at zero, and a registry holding runs of two commits: grouping by params
 * without the seed, only differing params shown, dirty runs warned about, a regression past the
 * threshold (and none under a looser one), groups present at one commit only, and a comparison in
 * which no group met being an error. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "check.h"
#include "compare/compare.h"
#include "util/json.h"

static const char A[] = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", B[] = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

static void test_math(void) {
    double v[] = { 2, 4, 4, 4, 5, 5, 7, 9 };   /* mean 5, sum of squares 32, sample var 32/7 */
    rp_agg a = rp_compare_aggregate(v, 8);
    CHECK(a.n == 8);
    CHECK_NEAR(a.mean, 5, 1e-12);
    CHECK_NEAR(a.std, sqrt(32.0 / 7.0), 1e-12);
    double w[] = { 3, NAN, INFINITY };
    a = rp_compare_aggregate(w, 3);
    CHECK(a.n == 1 && a.mean == 3 && a.std == 0);
    a = rp_compare_aggregate(w + 1, 2);
    CHECK(a.n == 0 && isnan(a.mean));
    CHECK(rp_compare_is_regression(0.80, 0.75, +1, 5) == 1);    /* -6.25% on higher-is-better */
    CHECK(rp_compare_is_regression(0.80, 0.77, +1, 5) == 0);    /* -3.75% */
    CHECK(rp_compare_is_regression(0.80, 0.95, +1, 5) == 0);    /* better */
    CHECK(rp_compare_is_regression(2.0, 2.2, -1, 5) == 1);      /* +10% on lower-is-better */
    CHECK(rp_compare_is_regression(2.0, 1.0, -1, 5) == 0);
    CHECK(rp_compare_is_regression(1.0, 0.0, 0, 5) == 0);       /* no direction: never */
    CHECK(rp_compare_is_regression(0.0, -0.001, +1, 5) == 1);   /* any worsening from 0 */
    CHECK(rp_compare_is_regression(-1.0, -1.1, +1, 5) == 1);    /* |A| as the base */
}

/* One finished run with summaries acc (higher better) and loss (lower better) and a metric series. */
static void add_run(rp_db *db, const char *commit, int dirty, const char *params, int seed, double acc, double loss) {
    rp_run_info info = { .experiment = "exp", .git_commit = commit, .git_dirty = dirty, .backend = "cpu", .device = "d",
                         .seed = seed, .params_json = params, .script = "experiments/exp.lua" };
    int64_t run;
    CHECK(rp_db_run_begin(db, &info, &run) == RP_OK);
    CHECK(rp_db_summary(db, run, "acc", acc, NAN, 10, +1) == RP_OK);
    CHECK(rp_db_summary(db, run, "loss", loss, NAN, 10, -1) == RP_OK);
    for (int i = 0; i < 5; i++) rp_db_metric(db, run, "train_loss", i, loss + 4 - i);
    CHECK(rp_db_run_end(db, run, RP_RUN_FINISHED, NULL, NULL) == RP_OK);
}

static void test_commits(const char *dir) {
    char path[512];
    snprintf(path, sizeof path, "%s/cmp.db", dir);
    rp_db *db;
    CHECK_MSG(rp_db_open(path, &db) == RP_OK, "%s", rp_errmsg());
    const char *p1 = "{\"lr\":0.1,\"n\":10,\"seed\":1}", *p1b = "{\"n\":10,\"lr\":0.1,\"seed\":2}", *p1c = "{\"lr\":0.1,\"n\":10,\"seed\":3}";
    const char *p2 = "{\"lr\":0.2,\"n\":10}";
    add_run(db, A, 0, p1, 1, 0.80, 1.00);
    add_run(db, A, 0, p1b, 2, 0.82, 1.10);
    add_run(db, A, 0, p1c, 3, 0.84, 1.20);
    add_run(db, A, 0, p2, 1, 0.50, 3.00);
    add_run(db, B, 1, p1, 1, 0.70, 0.90);
    add_run(db, B, 0, p1b, 2, 0.72, 1.00);
    add_run(db, B, 0, p1c, 3, 0.74, 1.10);
    add_run(db, B, 0, "{\"lr\":0.3,\"n\":10}", 1, 0.9, 0.5);   /* only at B */
    /* A failed run at B must not count. */
    rp_run_info bad = { .experiment = "exp", .git_commit = B, .params_json = p1, .backend = "cpu", .device = "d" };
    int64_t brun;
    rp_db_run_begin(db, &bad, &brun);
    rp_db_summary(db, brun, "acc", 0.0, NAN, 1, 1);
    rp_db_run_end(db, brun, RP_RUN_FAILED, "boom", NULL);

    rp_compare_opts o = { .commit_a = "aaaa", .commit_b = B, .label_a = "A", .label_b = "B", .threshold_pct = 5 };
    rp_buf text = { 0 }, json = { 0 };
    int reg = -1;
    CHECK_MSG(rp_compare_commits(db, &o, &text, &json, &reg) == RP_OK, "%s", rp_errmsg());
    if (text.data) printf("%s", text.data);
    /* acc: 0.82 ± 0.02 -> 0.72 ± 0.02 is -12.2%: one regression; loss 1.1 -> 1.0 is better. */
    CHECK(reg == 1);
    CHECK(text.data && strstr(text.data, "REGRESSION"));
    CHECK(text.data && strstr(text.data, "warning: 1 run(s) at B"));
    CHECK(text.data && strstr(text.data, " lr=0.1") && !strstr(text.data, "n=10") && !strstr(text.data, "seed="));
    CHECK(text.data && strstr(text.data, "only at B"));
    rp_json *j = NULL;
    CHECK(json.data && rp_json_parse(json.data, json.len, &j) == RP_OK);
    const rp_json *groups = rp_json_get(j, "groups");
    CHECK(rp_json_len(groups) == 3);
    int found = 0;
    for (size_t g = 0; g < rp_json_len(groups); g++) {
        const rp_json *grp = rp_json_at(groups, g);
        if (rp_json_num(rp_json_path(grp, "params.lr"), 0) != 0.1) continue;
        CHECK(rp_json_num(rp_json_get(grp, "runs_a"), 0) == 3 && rp_json_num(rp_json_get(grp, "runs_b"), 0) == 3);
        const rp_json *rows = rp_json_get(grp, "rows");
        for (size_t r = 0; r < rp_json_len(rows); r++) {
            const rp_json *row = rp_json_at(rows, r);
            const char *name = rp_json_str(rp_json_get(row, "name"), "");
            if (!strcmp(name, "acc")) {
                found++;
                CHECK_NEAR(rp_json_num(rp_json_get(row, "a_mean"), 0), 0.82, 1e-12);
                CHECK_NEAR(rp_json_num(rp_json_get(row, "a_std"), 0), 0.02, 1e-12);
                CHECK_NEAR(rp_json_num(rp_json_get(row, "b_mean"), 0), 0.72, 1e-12);
                CHECK_NEAR(rp_json_num(rp_json_get(row, "delta_pct"), 0), -100 * 0.10 / 0.82, 1e-9);
                CHECK(rp_json_bool(rp_json_get(row, "regression"), 0) == 1);
            } else if (!strcmp(name, "loss")) {
                found++;
                CHECK_NEAR(rp_json_num(rp_json_get(row, "a_mean"), 0), 1.1, 1e-12);
                CHECK(rp_json_bool(rp_json_get(row, "regression"), 1) == 0);
            } else if (!strcmp(name, "train_loss")) {
                found++;   /* last point: loss + 4 - 4 */
                CHECK_NEAR(rp_json_num(rp_json_get(row, "a_mean"), 0), 1.1, 1e-12);
                CHECK_NEAR(rp_json_num(rp_json_get(row, "b_mean"), 0), 1.0, 1e-12);
            }
        }
    }
    CHECK(found == 3);
    rp_json_free(j);
    /* A looser threshold passes. */
    o.threshold_pct = 15;
    rp_buf_clear(&text);
    CHECK(rp_compare_commits(db, &o, &text, NULL, &reg) == RP_OK && reg == 0);
    /* A commit without runs is named in the error. */
    o.commit_b = "cccc";
    o.label_b = "HEAD~3";
    CHECK(rp_compare_commits(db, &o, &text, NULL, &reg) == RP_ERR_NOTFOUND && strstr(rp_errmsg(), "HEAD~3"));
    int64_t n = -1;
    CHECK(rp_compare_count_runs(db, B, &n) == RP_OK && n == 4);
    /* Runs at both commits but no group at both (other params, as after a --run with another preset):
     * compared nothing, which is an error rather than "0 regressions". */
    static const char D[] = "dddddddddddddddddddddddddddddddddddddddd";
    add_run(db, D, 0, "{\"lr\":0.9,\"n\":10}", 1, 0.9, 0.5);
    o.commit_b = D;
    o.label_b = "D";
    rp_buf_clear(&text);
    CHECK(rp_compare_commits(db, &o, &text, NULL, &reg) == RP_ERR_NOTFOUND && strstr(rp_errmsg(), "compared nothing"));
    CHECK(text.data && strstr(text.data, "nothing compared") && strstr(text.data, "only at B"));
    rp_buf_free(&text);
    rp_buf_free(&json);
    rp_db_close(db);
}

int main(void) {
    char dir[] = "/tmp/repro-test-compare-XXXXXX";
    if (!mkdtemp(dir)) { perror("mkdtemp"); return 1; }
    test_math();
    test_commits(dir);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (!checks_failed && system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return checks_done("compare");
}
