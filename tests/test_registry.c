/* test_registry.c: the SQLite run registry: round trips of every table, NaN/±Inf kept bit for bit, a
 * corrupt file and a newer schema refused untouched, a read-only folder refused, a version-1 database
 * migrated, several forked writer processes logging into one database without losing a row, points
 * written by time, dead runs marked lost, and read-only opening.
 * Expected values come from the formulas that generated them or from raw SQL on the file, never from an
 * earlier output of the registry. */
#include <errno.h>
#include <math.h>
#include <float.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "check.h"
#include "db/registry.h"

static char tmpdir[256];

static void path_in(char *out, size_t n, const char *name) { snprintf(out, n, "%s/%s", tmpdir, name); }

/* One scalar from raw SQL on the file (independent of the registry's read path). */
static int64_t sql_int(const char *path, const char *sql) {
    sqlite3 *q;
    sqlite3_stmt *st;
    int64_t v = -1;
    if (sqlite3_open_v2(path, &q, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(q, sql, -1, &st, NULL) == SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
    }
    sqlite3_close(q);
    return v;
}

static int same_bits(double a, double b) { return memcmp(&a, &b, sizeof a) == 0; }

static void test_round_trip(void) {
    char path[512];
    path_in(path, sizeof path, "sub/dir/rt.db");   /* folders are created */
    rp_db *db = NULL;
    CHECK_MSG(rp_db_open(path, &db) == RP_OK, "%s", rp_errmsg());
    if (!db) return;
    CHECK(rp_db_schema_version(db) == 3);
    rp_run_info info = { .experiment = "toy", .paper = "paper-x", .preset = "smoke", .git_commit = "0123456789abcdef",
                         .git_dirty = 1, .git_diff_sha256 = "feed", .backend = "cpu", .device = "zen4", .seed = 7,
                         .params_json = "{\"lr\":0.5,\"name\":\"a \\\"q\\\"\"}" };
    int64_t run = 0;
    CHECK(rp_db_run_begin(db, &info, &run) == RP_OK);
    CHECK(run > 0);
    /* Interleaved series, more points than one batch so automatic flushes happen mid-run. */
    const int N = 20000;
    int failures = 0;
    for (int i = 0; i < N; i++) {
        failures += rp_db_metric(db, run, "loss", i, 1.0 / (i + 1)) != RP_OK;
        if (i % 3 == 0) failures += rp_db_metric(db, run, "acc", i * 0.5, i % 7) != RP_OK;
    }
    CHECK(failures == 0);
    CHECK(rp_db_summary(db, run, "final_loss", 0.25, 0.01, 100, -1) == RP_OK);
    CHECK(rp_db_summary(db, run, "final_loss", 0.125, 0.02, 200, -1) == RP_OK);   /* replaces */
    CHECK(rp_db_summary(db, run, "bad", 1, 1, 1, 5) == RP_ERR_INVAL);
    CHECK(rp_db_target(db, run, "top1", "exact", 0.9, 0.01, 0.905, "pass", "ok") == RP_OK);
    CHECK(rp_db_target(db, run, "top1x", "fuzzy", 0.9, 0.01, 0.905, "pass", NULL) == RP_ERR_INVAL);
    CHECK(rp_db_figure(db, run, "curve", "{\"type\":\"lines\"}", "[\"curve.png\"]", 1) == RP_OK);
    CHECK(rp_db_figure(db, run, "bad", "{not json", NULL, 0) == RP_ERR_INVAL);
    CHECK(rp_db_record(db, run, "response", "q1", "{\"text\":\"hi\"}") == RP_OK);
    CHECK(rp_db_summary(db, run + 1000, "x", 1, 0, 0, 0) == RP_ERR_NOTFOUND);
    CHECK(rp_db_run_end(db, run, RP_RUN_FINISHED, NULL, NULL) == RP_OK);

    double *s = NULL, *v = NULL;
    size_t n = 0;
    CHECK(rp_db_get_metric_points(db, run, "loss", &s, &v, &n) == RP_OK);
    CHECK(n == (size_t)N);
    int bad = 0;
    for (size_t i = 0; i < n; i++) bad += s[i] != (double)i || v[i] != 1.0 / (double)(i + 1);
    CHECK(bad == 0);
    free(s); free(v);
    CHECK(rp_db_get_metric_points(db, run, "acc", &s, &v, &n) == RP_OK);
    CHECK(n == (size_t)((N + 2) / 3));
    bad = 0;
    for (size_t i = 0; i < n; i++) bad += s[i] != (double)(3 * i) * 0.5 || v[i] != (double)((3 * i) % 7);
    CHECK(bad == 0);
    free(s); free(v);
    CHECK(rp_db_get_metric_points(db, run, "nope", &s, &v, &n) == RP_OK && n == 0);

    rp_buf j = { 0 };
    CHECK(rp_db_get_metric(db, run, "acc", &j) == RP_OK);
    CHECK(j.data && !strncmp(j.data, "[[0,0],[1.5,3],[3,6],[4.5,2]", 28));
    rp_buf_clear(&j);
    CHECK(rp_db_get_run(db, run, &j) == RP_OK);
    CHECK(j.data && strstr(j.data, "\"experiment\":\"toy\""));
    CHECK(j.data && strstr(j.data, "\"params_json\":{\"lr\":0.5,\"name\":\"a \\\"q\\\"\"}"));
    CHECK(j.data && strstr(j.data, "\"status\":\"finished\""));
    CHECK(j.data && strstr(j.data, "{\"name\":\"final_loss\",\"value\":0.125,\"stderr\":0.02,\"n\":200,\"direction\":-1}"));
    CHECK(j.data && strstr(j.data, "\"status\":\"pass\""));
    CHECK(j.data && strstr(j.data, "{\"name\":\"loss\",\"count\":20000}"));
    CHECK(j.data && strstr(j.data, "\"git_dirty\":1"));
    rp_buf_clear(&j);
    CHECK(rp_db_get_run(db, run + 99, &j) == RP_ERR_NOTFOUND);

    int64_t run2;
    rp_run_info info2 = { .experiment = "other", .git_commit = "abcdef" };
    CHECK(rp_db_run_begin(db, &info2, &run2) == RP_OK);
    rp_buf_clear(&j);
    rp_run_filter f = { .experiment = "toy" };
    CHECK(rp_db_list_runs(db, &f, &j) == RP_OK);
    CHECK(j.data && strstr(j.data, "\"experiment\":\"toy\"") && !strstr(j.data, "\"other\""));
    rp_buf_clear(&j);
    rp_run_filter g = { .commit_prefix = "abc", .status = "running" };
    CHECK(rp_db_list_runs(db, &g, &j) == RP_OK);
    CHECK(j.data && strstr(j.data, "\"experiment\":\"other\"") && !strstr(j.data, "\"toy\""));
    /* A commit prefix is matched literally ('_' and '%' are no wildcards) and without regard to case. */
    static const struct { const char *prefix; int match; } pre[] = { { "ABCD", 1 }, { "a_c", 0 }, { "%", 0 }, { "abd", 0 } };
    for (int k = 0; k < 4; k++) {
        rp_buf_clear(&j);
        rp_run_filter h = { .commit_prefix = pre[k].prefix };
        CHECK(rp_db_list_runs(db, &h, &j) == RP_OK);
        CHECK_MSG(j.data && !!strstr(j.data, "\"experiment\":\"other\"") == pre[k].match, "prefix %s: %s", pre[k].prefix, j.data);
    }
    rp_buf_free(&j);
    /* Params are stored canonically: keys sorted at every depth, whatever order the script produced. */
    rp_run_info unordered = { .experiment = "canon", .params_json = "{\"b\":1, \"a\":{\"d\":2,\"c\":[3,{\"f\":true,\"e\":\"x\"}]}}" };
    CHECK(rp_db_run_begin(db, &unordered, &run2) == RP_OK);
    rp_buf_clear(&j);
    CHECK(rp_db_get_run(db, run2, &j) == RP_OK);
    CHECK_MSG(j.data && strstr(j.data, "\"params_json\":{\"a\":{\"c\":[3,{\"e\":\"x\",\"f\":true}],\"d\":2},\"b\":1}"), "%s", j.data);
    rp_buf_free(&j);
    rp_run_info bad_params = { .experiment = "x", .params_json = "{oops" };
    CHECK(rp_db_run_begin(db, &bad_params, &run2) == RP_ERR_INVAL);
    rp_db_close(db);
    CHECK(sql_int(path, "SELECT COUNT(*) FROM runs") == 3);
    CHECK(sql_int(path, "SELECT n FROM summaries WHERE name='final_loss'") == 200);
}

static void test_nonfinite(void) {
    char path[512];
    path_in(path, sizeof path, "nan.db");
    rp_db *db = NULL;
    CHECK_MSG(rp_db_open(path, &db) == RP_OK, "%s", rp_errmsg());
    if (!db) return;
    rp_run_info info = { .experiment = "nan" };
    int64_t run;
    CHECK(rp_db_run_begin(db, &info, &run) == RP_OK);
    uint64_t payload_bits = 0x7ff8000000012345ull;
    double payload;
    memcpy(&payload, &payload_bits, 8);
    double vals[] = { NAN, INFINITY, -INFINITY, -0.0, DBL_MIN / 4, DBL_MAX, -NAN, payload, 1e-310, 3.0 };
    int nv = (int)(sizeof vals / sizeof vals[0]);
    for (int i = 0; i < nv; i++) CHECK(rp_db_metric(db, run, "v", vals[nv - 1 - i], vals[i]) == RP_OK);
    CHECK(rp_db_summary(db, run, "s_nan", INFINITY, NAN, 0, 1) == RP_OK);
    CHECK(rp_db_target(db, run, "t", "shape", -INFINITY, NAN, 2.0, "fail", NULL) == RP_OK);
    rp_db_close(db);   /* close flushes */
    CHECK_MSG(rp_db_open(path, &db) == RP_OK, "%s", rp_errmsg());
    if (!db) return;
    double *s, *v;
    size_t n;
    CHECK(rp_db_get_metric_points(db, run, "v", &s, &v, &n) == RP_OK);
    CHECK(n == (size_t)nv);
    for (int i = 0; i < nv && n == (size_t)nv; i++) {
        CHECK_MSG(same_bits(v[i], vals[i]), "value %d", i);
        CHECK_MSG(same_bits(s[i], vals[nv - 1 - i]), "step %d", i);
    }
    free(s); free(v);
    rp_buf j = { 0 };
    CHECK(rp_db_get_metric(db, run, "v", &j) == RP_OK);
    CHECK_MSG(j.data && !strncmp(j.data, "[[3,\"nan\"],[", 12), "%.60s", j.data);
    if (j.data && j.len > 12) {   /* the denormal step reads back exactly through its decimal text */
        char *end;
        CHECK(strtod(j.data + 12, &end) == 1e-310 && !strncmp(end, ",\"inf\"],[\"nan\",\"-inf\"]", 22));
    }
    rp_buf_clear(&j);
    CHECK(rp_db_get_run(db, run, &j) == RP_OK);
    CHECK(j.data && strstr(j.data, "\"value\":\"inf\",\"stderr\":\"nan\""));
    CHECK(j.data && strstr(j.data, "\"paper_value\":\"-inf\",\"tolerance\":\"nan\",\"reproduced\":2"));
    rp_buf_free(&j);
    rp_db_close(db);
    CHECK(sql_int(path, "SELECT COUNT(*) FROM summaries WHERE stderr = 'nan' AND value = 'inf'") == 1);
}

/* Whether the file at path has exactly the bytes in want. */
static int file_is(const char *path, const char *want, size_t n) {
    rp_buf b = { 0 };
    int ok = rp_read_file(path, &b) == RP_OK && b.len == n && !memcmp(b.data, want, n);
    rp_buf_free(&b);
    return ok;
}

static void test_corrupt(void) {
    char path[512];
    path_in(path, sizeof path, "corrupt.db");
    char junk[4096];
    for (size_t i = 0; i < sizeof junk; i++) junk[i] = (char)(i * 37 + 11);
    CHECK(rp_write_file(path, junk, sizeof junk) == RP_OK);
    rp_db *db = NULL;
    rp_status st = rp_db_open(path, &db);
    CHECK(st == RP_ERR_FORMAT && db == NULL);
    CHECK_MSG(strstr(rp_errmsg(), path) && strstr(rp_errmsg(), "corrupt"), "%s", rp_errmsg());
    CHECK(file_is(path, junk, sizeof junk));
    /* A valid header over garbage pages. */
    memcpy(junk, "SQLite format 3", 16);
    CHECK(rp_write_file(path, junk, sizeof junk) == RP_OK);
    st = rp_db_open(path, &db);
    CHECK_MSG(st == RP_ERR_FORMAT && strstr(rp_errmsg(), path), "%d %s", st, rp_errmsg());
    CHECK(file_is(path, junk, sizeof junk));
    rp_db_close(db);
}

static void test_newer_schema(void) {
    char path[512], want[700];
    path_in(path, sizeof path, "newer.db");
    sqlite3 *q;
    CHECK(sqlite3_open(path, &q) == SQLITE_OK);
    CHECK(sqlite3_exec(q, "CREATE TABLE future(x); PRAGMA user_version=99;", NULL, NULL, NULL) == SQLITE_OK);
    sqlite3_close(q);
    rp_buf before = { 0 };
    CHECK(rp_read_file(path, &before) == RP_OK);
    rp_db *db = NULL;
    CHECK(rp_db_open(path, &db) == RP_ERR_UNSUPPORTED && db == NULL);
    snprintf(want, sizeof want, "%s has schema version 99, newer than this repro (3): upgrade repro", path);
    CHECK_MSG(!strcmp(rp_errmsg(), want), "%s", rp_errmsg());
    CHECK(file_is(path, before.data, before.len));
    CHECK(sql_int(path, "PRAGMA user_version") == 99);
    rp_buf_free(&before);
}

/* The read-only checks; returns the number that failed (run in a child when we must drop root). */
static int readonly_checks(const char *dir, const char *path) {
    int before = checks_failed;
    rp_db *db = NULL;
    CHECK(rp_db_open(path, &db) == RP_ERR_IO && db == NULL);
    CHECK_MSG(strstr(rp_errmsg(), "read-only") && strstr(rp_errmsg(), dir), "%s", rp_errmsg());
    CHECK(access(path, F_OK) != 0);
    return checks_failed - before;
}

static void test_readonly(void) {
    char dir[512], path[600];
    path_in(dir, sizeof dir, "ro");
    snprintf(path, sizeof path, "%s/repro.db", dir);
    CHECK(mkdir(dir, 0755) == 0);
    chmod(dir, 0555);
    if (geteuid() != 0) {
        readonly_checks(dir, path);
    } else {   /* root ignores modes: check as user nobody in a child */
        chmod(tmpdir, 0755);
        pid_t pid = fork();
        if (pid == 0) {
            if (setgid(65534) != 0 || setuid(65534) != 0) { printf("skip: read-only folder check (cannot drop root)\n"); _exit(0); }
            _exit(readonly_checks(dir, path) ? 1 : 0);
        }
        int status = 0;
        waitpid(pid, &status, 0);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        chmod(tmpdir, 0700);
    }
    chmod(dir, 0755);
}

/* Points are written by time as well as by count: two points, then ~0.7 s, then a third point: the
 * file (read with raw SQL, as a SIGKILL would leave it) holds the first ones; rp_db_flush_due writes
 * points that waited without a further rp_db_metric. A run recorded running whose process is gone is
 * marked lost; one whose process lives is not. */
static void test_time_flush_and_lost(void) {
    char path[512];
    path_in(path, sizeof path, "time.db");
    rp_db *db;
    CHECK_MSG(rp_db_open(path, &db) == RP_OK, "%s", rp_errmsg());
    rp_run_info info = { .experiment = "t" };
    int64_t run;
    CHECK(rp_db_run_begin(db, &info, &run) == RP_OK);
    CHECK(rp_db_metric(db, run, "x", 0, 1) == RP_OK && rp_db_metric(db, run, "x", 1, 2) == RP_OK);
    CHECK(sql_int(path, "SELECT COALESCE(SUM(n), 0) FROM metrics") == 0);   /* buffered */
    usleep(700000);
    CHECK(rp_db_metric(db, run, "x", 2, 3) == RP_OK);
    CHECK(sql_int(path, "SELECT COALESCE(SUM(n), 0) FROM metrics") == 3);
    CHECK(rp_db_metric(db, run, "x", 3, 4) == RP_OK);
    CHECK(rp_db_flush_due(db) == RP_OK && sql_int(path, "SELECT COALESCE(SUM(n), 0) FROM metrics") == 3);   /* not due yet */
    usleep(700000);
    CHECK(rp_db_flush_due(db) == RP_OK && sql_int(path, "SELECT COALESCE(SUM(n), 0) FROM metrics") == 4);
    /* A run begun by a child that then dies without ending it. */
    pid_t pid = fork();
    if (pid == 0) {
        rp_db *c;
        int64_t r2;
        _exit(rp_db_open(path, &c) == RP_OK && rp_db_run_begin(c, &info, &r2) == RP_OK ? 0 : 1);   /* no end, no close */
    }
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    int lost = -1;
    CHECK(rp_db_mark_lost(db, &lost) == RP_OK && lost == 1);
    CHECK(sql_int(path, "SELECT COUNT(*) FROM runs WHERE status = 'lost'") == 1);
    CHECK(sql_int(path, "SELECT COUNT(*) FROM runs WHERE status = 'running'") == 1);   /* ours lives */
    CHECK(rp_db_mark_lost(db, &lost) == RP_OK && lost == 0);
    CHECK(rp_db_run_end(db, run, RP_RUN_FINISHED, NULL, NULL) == RP_OK);
    rp_db_close(db);
    /* Read-only: reads work, writes are refused with a message, nothing is created. */
    CHECK_MSG(rp_db_open_readonly(path, &db) == RP_OK, "%s", rp_errmsg());
    rp_buf b = { 0 };
    CHECK(rp_db_get_run(db, run, &b) == RP_OK && strstr(b.data, "\"finished\""));
    CHECK(rp_db_summary(db, run, "s", 1, NAN, 0, 0) != RP_OK && strstr(rp_errmsg(), "time.db"));
    rp_buf_free(&b);
    rp_db_close(db);
    char missing[600];
    snprintf(missing, sizeof missing, "%s/none.db", tmpdir);
    CHECK(rp_db_open_readonly(missing, &db) == RP_ERR_NOTFOUND && access(missing, F_OK) != 0);
}

/* Version 1 as it was shipped (the migration's starting point), written here independently. */
static const char v1_sql[] =
    "CREATE TABLE runs(id INTEGER PRIMARY KEY, experiment TEXT NOT NULL, paper TEXT, script TEXT, preset TEXT,"
    " git_commit TEXT, git_dirty INTEGER NOT NULL DEFAULT 0, git_diff_sha256 TEXT, build_id TEXT, lua_impl TEXT,"
    " backend TEXT, device TEXT, seed INTEGER, params_json TEXT, env_json TEXT, plugin_versions_json TEXT,"
    " host TEXT, pid INTEGER, status TEXT NOT NULL, started_at TEXT NOT NULL, ended_at TEXT, error TEXT, traceback TEXT);"
    "CREATE INDEX runs_experiment ON runs(experiment, id); CREATE INDEX runs_commit ON runs(git_commit);"
    "CREATE TABLE metrics(run_id INTEGER NOT NULL, name TEXT NOT NULL, step REAL, value REAL);"
    "CREATE INDEX metrics_run ON metrics(run_id, name);"
    "CREATE TABLE summaries(run_id INTEGER NOT NULL, name TEXT NOT NULL, value, stderr, n INTEGER NOT NULL DEFAULT 0, UNIQUE(run_id, name));"
    "CREATE TABLE targets(run_id INTEGER NOT NULL, name TEXT NOT NULL, kind TEXT NOT NULL, paper_value, tolerance,"
    " reproduced, status TEXT NOT NULL, note TEXT, UNIQUE(run_id, name));"
    "CREATE TABLE figures(run_id INTEGER NOT NULL, name TEXT NOT NULL, spec_json TEXT NOT NULL, files_json TEXT,"
    " rendered INTEGER NOT NULL DEFAULT 0, UNIQUE(run_id, name));"
    "CREATE TABLE records(id INTEGER PRIMARY KEY, run_id INTEGER NOT NULL, kind TEXT NOT NULL, key TEXT,"
    " data_json TEXT NOT NULL, created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')));"
    "CREATE INDEX records_run ON records(run_id, kind);"
    "INSERT INTO runs(id, experiment, status, started_at) VALUES (5, 'old', 'finished', '2025-01-01T00:00:00Z');"
    "INSERT INTO metrics VALUES (5, 'loss', 0, 2.5), (5, 'acc', 0, 0.1), (5, 'loss', 1, NULL), (5, 'loss', 2, 1.5);"
    "INSERT INTO summaries(run_id, name, value, stderr, n) VALUES (5, 'final', 1.5, 0.1, 3);"
    "PRAGMA user_version=1;";

static void test_migration(void) {
    char path[512];
    path_in(path, sizeof path, "v1.db");
    sqlite3 *q;
    CHECK(sqlite3_open(path, &q) == SQLITE_OK);
    CHECK(sqlite3_exec(q, v1_sql, NULL, NULL, NULL) == SQLITE_OK);
    sqlite3_close(q);
    rp_db *db = NULL;
    CHECK_MSG(rp_db_open(path, &db) == RP_OK, "%s", rp_errmsg());
    if (!db) return;
    CHECK(rp_db_schema_version(db) == 3);
    double *s, *v;
    size_t n;
    CHECK(rp_db_get_metric_points(db, 5, "loss", &s, &v, &n) == RP_OK);
    CHECK(n == 3);
    if (n == 3) {
        CHECK(s[0] == 0 && v[0] == 2.5 && s[1] == 1 && isnan(v[1]) && s[2] == 2 && v[2] == 1.5);
    }
    free(s); free(v);
    CHECK(rp_db_get_metric_points(db, 5, "acc", &s, &v, &n) == RP_OK && n == 1 && v[0] == 0.1);
    free(s); free(v);
    /* New writes work on the migrated file, directions included. */
    CHECK(rp_db_summary(db, 5, "final2", 2, NAN, 0, 1) == RP_OK);
    rp_db_close(db);
    CHECK(sql_int(path, "PRAGMA user_version") == 3);
    CHECK(sql_int(path, "SELECT length(uuid) FROM runs WHERE id=5") == 32);   /* old runs get a uuid too */
    CHECK(sql_int(path, "SELECT direction FROM summaries WHERE name='final'") == 0);
    CHECK(sql_int(path, "SELECT direction FROM summaries WHERE name='final2'") == 1);
    CHECK(sql_int(path, "SELECT COUNT(*) FROM sqlite_master WHERE name='metrics_v1'") == 0);
}

enum { WRITERS = 6, RUNS_PER = 8, POINTS = 40000 };

/* One child process: RUNS_PER runs, each with POINTS points over two series, a summary and a record. */
static int writer(const char *path, int w) {
    rp_db *db;
    if (rp_db_open(path, &db) != RP_OK) { fprintf(stderr, "writer %d: %s\n", w, rp_errmsg()); return 1; }
    for (int r = 0; r < RUNS_PER; r++) {
        char params[64];
        snprintf(params, sizeof params, "{\"w\":%d,\"r\":%d}", w, r);
        rp_run_info info = { .experiment = "conc", .params_json = params, .seed = w * 100 + r };
        int64_t run;
        if (rp_db_run_begin(db, &info, &run) != RP_OK) goto fail;
        for (int i = 0; i < POINTS; i++) {
            if (rp_db_metric(db, run, (i & 1) ? "odd" : "even", i, w * 1e6 + r * 1e4 + i) != RP_OK) goto fail;
        }
        if (rp_db_summary(db, run, "w", w, NAN, 1, 0) != RP_OK) goto fail;
        if (rp_db_record(db, run, "rec", NULL, params) != RP_OK) goto fail;
        if (rp_db_run_end(db, run, RP_RUN_FINISHED, NULL, NULL) != RP_OK) goto fail;
    }
    rp_db_close(db);
    return 0;
fail:
    fprintf(stderr, "writer %d: %s\n", w, rp_errmsg());
    rp_db_close(db);
    return 1;
}

static void test_concurrent(void) {
    char path[512];
    path_in(path, sizeof path, "conc.db");
    pid_t pids[WRITERS];
    for (int w = 0; w < WRITERS; w++) {
        pids[w] = fork();
        if (pids[w] == 0) _exit(writer(path, w));
    }
    int failed = 0;
    for (int w = 0; w < WRITERS; w++) {
        int status = 0;
        waitpid(pids[w], &status, 0);
        failed += !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    CHECK(failed == 0);
    CHECK(sql_int(path, "SELECT COUNT(*) FROM runs WHERE status='finished'") == WRITERS * RUNS_PER);
    CHECK(sql_int(path, "SELECT COUNT(*) FROM summaries") == WRITERS * RUNS_PER);
    CHECK(sql_int(path, "SELECT COUNT(*) FROM records") == WRITERS * RUNS_PER);
    CHECK(sql_int(path, "SELECT SUM(n) FROM metrics") == (int64_t)WRITERS * RUNS_PER * POINTS);
    /* Every point of every run is there, in order, with its value. */
    rp_db *db;
    CHECK_MSG(rp_db_open(path, &db) == RP_OK, "%s", rp_errmsg());
    int bad = 0;
    for (int64_t run = 1; run <= WRITERS * RUNS_PER; run++) {
        int64_t seed = -1;
        char sql[128];
        snprintf(sql, sizeof sql, "SELECT seed FROM runs WHERE id=%lld", (long long)run);
        seed = sql_int(path, sql);
        int w = (int)(seed / 100), r = (int)(seed % 100);
        for (int par = 0; par < 2; par++) {
            double *s, *v;
            size_t n;
            if (rp_db_get_metric_points(db, run, par ? "odd" : "even", &s, &v, &n) != RP_OK || n != POINTS / 2) { bad++; continue; }
            for (size_t k = 0; k < n; k++) {
                int i = (int)(2 * k) + par;
                bad += s[k] != i || v[k] != w * 1e6 + r * 1e4 + i;
            }
            free(s); free(v);
        }
    }
    CHECK_MSG(bad == 0, "%d bad series/points", bad);
    rp_db_close(db);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/repro-test-registry-XXXXXX");
    if (!mkdtemp(tmpdir)) { perror("mkdtemp"); return 1; }
    test_round_trip();
    test_nonfinite();
    test_corrupt();
    test_newer_schema();
    test_readonly();
    test_migration();
    test_concurrent();
    test_time_flush_and_lost();
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (!checks_failed && system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return checks_done("registry");
}
