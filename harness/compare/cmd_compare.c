/* cmd_compare.c: `repro compare REV_A REV_B`: resolve two git revisions, optionally build and run a
 * commit that has no runs (--run: in a temporary `git worktree`, never by checking out in place), then
 * compare their finished runs and exit 1 past the regression threshold so CI can gate on it. */
#include "cli/command.h"
#include "cli/run_paths.h"
#include "compare/compare.h"
#include "cli/db_cli.h"
#include "lua/state.h"
#include <errno.h>
#include <glob.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

RP_COMMAND(compare, rp_cmd_compare, "compare the runs of two commits (mean ± std over seeds, regressions)");

static const char usage[] =
    "usage: repro compare REV_A REV_B [--threshold PCT] [--run] [--json] [--db PATH]\n"
    "  Groups the finished runs at each revision by experiment + params (without the seed) + backend +\n"
    "  device, aggregates seeds as mean ± std, and prints each summary's (and each metric's last value's)\n"
    "  delta from A to B with its direction; only params that differ between groups are shown; runs made\n"
    "  with uncommitted changes are flagged. REV is anything git rev-parse knows (or a commit hash prefix\n"
    "  stored in the registry).\n"
    "  --threshold PCT  a summary worse by more than PCT% of |A| is a regression (default 5)\n"
    "  --run            a revision without runs is checked out in a temporary git worktree, built, and its\n"
    "                   experiments run there with the smoke preset (the scripts and seeds of the other\n"
    "                   revision's runs, else every experiments/*.lua), logging into this database\n"
    "  --json           the comparison as JSON\n"
    "exit: 0 no regression, 1 regression (or a --run build/run failed), 2 usage, 4 unknown revision or no runs,\n"
    "      6 database error";

/* Run argv (in dir when not NULL); stdout into out (when not NULL, else inherited); returns the exit status. */
static int run_proc(char *const argv[], const char *dir, rp_buf *out) {
    int fd[2] = { -1, -1 };
    if (out && pipe(fd) != 0) return -1;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        if (out) { dup2(fd[1], 1); close(fd[0]); close(fd[1]); }
        else dup2(2, 1);   /* progress of child commands goes to stderr, keeping stdout for the comparison */
        if (dir && chdir(dir) != 0) _exit(126);
        execvp(argv[0], argv);
        _exit(127);
    }
    if (out) {
        close(fd[1]);
        char tmp[4096];
        ssize_t n;
        while ((n = read(fd[0], tmp, sizeof tmp)) > 0 || (n < 0 && errno == EINTR)) if (n > 0) rp_buf_append(out, tmp, (size_t)n);
        close(fd[0]);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

/* The full commit hash of rev in the checkout at root; 0 when git does not know it. */
static int rev_parse(const char *root, const char *rev, char *out, size_t n) {
    char spec[512];
    snprintf(spec, sizeof spec, "%s^{commit}", rev);
    char *argv[] = { "git", "-C", (char *)root, "rev-parse", "--verify", "--quiet", spec, NULL };
    rp_buf b = { 0 };
    int rc = run_proc(argv, NULL, &b);
    int ok = rc == 0 && b.len >= 40;
    if (ok) snprintf(out, n, "%.40s", b.data);
    rp_buf_free(&b);
    return ok;
}

/* Scripts (relative to the checkout) and seeds to run at a commit without runs. */
typedef struct { char script[1024]; long long seed; } plan_item;

static int plan_from_runs(rp_db *db, const char *commit, const char *root, plan_item **items) {
    sqlite3 *sq = rp_db_sqlite(db);
    sqlite3_stmt *st;
    int n = 0;
    *items = NULL;
    if (sqlite3_prepare_v2(sq, "SELECT DISTINCT script, seed FROM runs WHERE status = 'finished' AND script IS NOT NULL "
                           "AND substr(lower(git_commit), 1, length(?1)) = lower(?1) ORDER BY script, seed", -1, &st, NULL) != SQLITE_OK) return 0;
    sqlite3_bind_text(st, 1, commit, -1, SQLITE_STATIC);
    size_t rl = strlen(root);
    while (sqlite3_step(st) == SQLITE_ROW) {
        plan_item *p = realloc(*items, (size_t)(n + 1) * sizeof *p);
        if (!p) break;
        *items = p;
        const char *s = (const char *)sqlite3_column_text(st, 0);
        if (!strncmp(s, root, rl) && s[rl] == '/') s += rl + 1;   /* absolute inside the checkout */
        snprintf(p[n].script, sizeof p[n].script, "%s", s);
        p[n].seed = sqlite3_column_int64(st, 1);
        n++;
    }
    sqlite3_finalize(st);
    return n;
}

/* Build commit in a temporary worktree and run the plan there into db_path; returns failures. */
static int run_commit(const char *root, const char *commit, const char *db_path, plan_item *plan, int nplan) {
    char tmp[] = "/tmp/repro-compare-XXXXXX", wt[600];
    if (!mkdtemp(tmp)) { fprintf(stderr, "repro compare: mkdtemp: %s\n", strerror(errno)); return 1; }
    snprintf(wt, sizeof wt, "%s/wt", tmp);
    fprintf(stderr, "repro compare: building %.12s in a temporary worktree %s\n", commit, wt);
    char *add[] = { "git", "-C", (char *)root, "worktree", "add", "--detach", "--quiet", wt, (char *)commit, NULL };
    int failures = 0;
    if (run_proc(add, NULL, NULL) != 0) {
        fprintf(stderr, "repro compare: git worktree add %s %s failed\n", wt, commit);
        rmdir(tmp);
        return 1;
    }
    char *mk[] = { "make", "-s", "-C", wt, "-j2", "--no-print-directory", "bin/repro", NULL };
    if (run_proc(mk, NULL, NULL) != 0) {
        fprintf(stderr, "repro compare: building %.12s failed\n", commit);
        failures = 1;
    }
    glob_t g = { 0 };
    if (!failures && !nplan) {   /* nothing to mirror: every experiment of that commit */
        char pat[700];
        snprintf(pat, sizeof pat, "%s/experiments/*.lua", wt);
        if (glob(pat, 0, NULL, &g) == 0 && g.gl_pathc) {
            plan = calloc(g.gl_pathc, sizeof *plan);
            for (size_t i = 0; plan && i < g.gl_pathc; i++) {
                snprintf(plan[i].script, sizeof plan[i].script, "%s", g.gl_pathv[i] + strlen(wt) + 1);
                plan[i].seed = 1;
            }
            nplan = plan ? (int)g.gl_pathc : 0;
        }
        globfree(&g);
    } else if (nplan) {
        plan_item *copy = malloc((size_t)nplan * sizeof *copy);
        if (copy) memcpy(copy, plan, (size_t)nplan * sizeof *copy);
        plan = copy;
        if (!copy) nplan = 0;
    }
    for (int i = 0; !failures && i < nplan; i++) {
        char path[1200], seed[32];
        snprintf(path, sizeof path, "%s/%s", wt, plan[i].script);
        struct stat sb;
        if (stat(path, &sb) != 0) { fprintf(stderr, "repro compare: %s does not exist at %.12s: skipped\n", plan[i].script, commit); continue; }
        snprintf(seed, sizeof seed, "%lld", plan[i].seed);
        char *argv[] = { "bin/repro", "run", plan[i].script, "--preset", "smoke", "--seed", seed, "--db", (char *)db_path, NULL };
        fprintf(stderr, "repro compare: at %.12s: repro run %s --preset smoke --seed %s\n", commit, plan[i].script, seed);
        if (run_proc(argv, wt, NULL) != 0) { fprintf(stderr, "repro compare: that run failed\n"); failures++; }
    }
    if (nplan) free(plan);
    char *rm[] = { "git", "-C", (char *)root, "worktree", "remove", "--force", wt, NULL };
    if (run_proc(rm, NULL, NULL) != 0) fprintf(stderr, "repro compare: could not remove the worktree %s\n", wt);
    rmdir(tmp);
    return failures;
}

int rp_cmd_compare(int argc, char **argv) {
    if (rp_cli_wants_help(argc, argv)) { puts(usage); return 0; }
    const char *dbp = NULL, *revs[2] = { NULL, NULL };
    int as_json = 0, do_run = 0, nrev = 0;
    double threshold = 5;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json")) as_json = 1;
        else if (!strcmp(argv[i], "--run")) do_run = 1;
        else if (!strcmp(argv[i], "--db") && i + 1 < argc) dbp = argv[++i];
        else if (!strcmp(argv[i], "--threshold") && i + 1 < argc) {
            char *end;
            threshold = strtod(argv[++i], &end);
            if (*end || end == argv[i] || !(threshold >= 0)) return rp_cli_usage("compare", "--threshold: '%s' is not a percentage >= 0", argv[i]);
        } else if (argv[i][0] != '-' && nrev < 2) revs[nrev++] = argv[i];
        else return rp_cli_bad_arg("compare", argv[i], "--db --threshold");
    }
    if (nrev != 2) return rp_cli_usage("compare", "needs two revisions, REV_A and REV_B");
    char path[PATH_MAX], dbabs[PATH_MAX];
    rp_default_db_path(dbp, path, sizeof path);
    rp_db *db;
    rp_status st = do_run ? rp_db_open(path, &db) : rp_cli_open_db(dbp, &db, NULL, 0);
    if (st != RP_OK) return rp_cli_fail("compare", st);
    if (!realpath(path, dbabs)) snprintf(dbabs, sizeof dbabs, "%s", path);
    const char *root = rp_project_root();
    char full[2][64];
    int known[2];
    for (int k = 0; k < 2; k++) {
        known[k] = rev_parse(root, revs[k], full[k], sizeof full[k]);
        if (!known[k]) snprintf(full[k], sizeof full[k], "%s", revs[k]);   /* maybe a hash prefix in the registry */
    }
    int failures = 0;
    if (do_run) {
        for (int k = 0; k < 2; k++) {
            int64_t n = 0;
            st = rp_compare_count_runs(db, full[k], &n);
            if (st != RP_OK) { rp_db_close(db); return rp_cli_fail("compare", st); }
            if (n) continue;
            if (!known[k]) { rp_db_close(db); return rp_cli_usage("compare", "--run: git does not know revision '%s'", revs[k]); }
            plan_item *plan = NULL;
            int nplan = plan_from_runs(db, full[1 - k], root, &plan);
            rp_db_flush(db);
            failures += run_commit(root, full[k], dbabs, plan, nplan);
            free(plan);
        }
    }
    rp_compare_opts o = { .commit_a = full[0], .commit_b = full[1], .label_a = revs[0], .label_b = revs[1], .threshold_pct = threshold };
    rp_buf text = { 0 }, json = { 0 };
    int regressions = 0;
    st = rp_compare_commits(db, &o, &text, as_json ? &json : NULL, &regressions);
    rp_db_close(db);
    if (st != RP_OK) { rp_buf_free(&text); rp_buf_free(&json); return rp_cli_fail("compare", st); }
    fputs(as_json ? json.data : text.data, stdout);
    if (as_json) putchar('\n');
    rp_buf_free(&text);
    rp_buf_free(&json);
    if (failures) fprintf(stderr, "repro compare: %d build/run failure(s) with --run\n", failures);
    return regressions || failures ? 1 : 0;
}
