/* cmd_compare.c: `repro compare REV_A REV_B`: resolve two git revisions, optionally build and run a
 * commit that has no runs (--run: in a temporary `git worktree`, never by checking out in place, with the
 * other commit's scripts, presets, seeds and params), then compare their finished runs and exit 1 past the
 * regression threshold so CI can gate on it; a comparison that compared nothing is an error. */
#include "cli/command.h"
#include "cli/run_paths.h"
#include "compare/compare.h"
#include "cli/db_cli.h"
#include <errno.h>
#include <limits.h>
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
    "  --run            a revision without runs is checked out in a temporary git worktree, built, and the\n"
    "                   other revision's finished runs are made again there: same scripts, presets, seeds\n"
    "                   and params, logging into this database\n"
    "  --json           the comparison as JSON\n"
    "exit: 0 no regression, 1 regression (or a --run build/run failed), 2 usage, 4 unknown revision, no runs,\n"
    "      or nothing compared (no group with runs at both revisions),\n"
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

/* One run to make at a commit without runs: the script (relative to the checkout), preset, seed and the
 * params (as key=value arguments) of a run at the other commit. */
typedef struct { char script[1024], preset[64]; long long seed; char **kv; int nkv; } plan_item;

static void free_plan(plan_item *p, int n) {
    for (int i = 0; i < n; i++) { for (int k = 0; k < p[i].nkv; k++) free(p[i].kv[k]); free(p[i].kv); }
    free(p);
}

/* "key=value" for a param value as `repro run` parses it back (strings as is, numbers exact, booleans). */
static char *param_arg(const char *key, const rp_json *v) {
    rp_buf b = { 0 };
    rp_buf_printf(&b, "%s=", key);
    switch (rp_json_typeof(v)) {
    case RP_JSON_STRING: rp_buf_puts(&b, rp_json_str(v, "")); break;
    case RP_JSON_NUMBER: rp_buf_printf(&b, "%.17g", rp_json_num(v, 0)); break;
    case RP_JSON_BOOL: rp_buf_puts(&b, rp_json_bool(v, 0) ? "true" : "false"); break;
    default: rp_json_write(v, &b, 0);
    }
    return b.data;   /* NULL only when out of memory */
}

/* The runs to make at a commit: one per distinct (script, preset, seed, params) among the finished runs
 * at `commit` (the other side), so both sides hold the same experiments with the same settings. */
static rp_status plan_from_runs(rp_db *db, const char *commit, const char *root, plan_item **items, int *n) {
    *items = NULL; *n = 0;
    rp_run_filter f = { .commit_prefix = commit, .status = "finished" };
    rp_json *rows = NULL;
    rp_status st = rp_db_runs(db, &f, &rows);
    size_t rl = strlen(root), nr = rp_json_len(rows);
    for (size_t i = 0; st == RP_OK && i < nr; i++) {
        const rp_json *r = rp_json_at(rows, nr - 1 - i), *params = rp_json_get(r, "params_json");
        const char *s = rp_json_str(rp_json_get(r, "script"), NULL);
        if (!s) continue;
        if (!strncmp(s, root, rl) && s[rl] == '/') s += rl + 1;   /* absolute inside the checkout */
        plan_item it = { .seed = (long long)rp_json_num(rp_json_get(r, "seed"), 1) };
        snprintf(it.script, sizeof it.script, "%s", s);
        snprintf(it.preset, sizeof it.preset, "%s", rp_json_str(rp_json_get(r, "preset"), ""));
        it.kv = calloc(rp_json_len(params) + 1, sizeof *it.kv);
        for (size_t k = 0; it.kv && k < rp_json_len(params); k++)
            if (strcmp(rp_json_key_at(params, k), "seed") && !(it.kv[it.nkv++] = param_arg(rp_json_key_at(params, k), rp_json_at(params, k))))
                st = rp_fail(RP_ERR_NOMEM, "out of memory");
        if (!it.kv) st = rp_fail(RP_ERR_NOMEM, "out of memory");
        int dup = 0;   /* seeds of one group, or reruns, need one run each, not one per row */
        for (int j = 0; st == RP_OK && j < *n && !dup; j++) {
            const plan_item *o = &(*items)[j];
            dup = !strcmp(o->script, it.script) && !strcmp(o->preset, it.preset) && o->seed == it.seed && o->nkv == it.nkv;
            for (int k = 0; dup && k < it.nkv; k++) dup = !strcmp(o->kv[k], it.kv[k]);
        }
        plan_item *p = st == RP_OK && !dup ? realloc(*items, (size_t)(*n + 1) * sizeof *p) : NULL;
        if (p) { *items = p; p[(*n)++] = it; }
        else {
            if (st == RP_OK && !dup) st = rp_fail(RP_ERR_NOMEM, "out of memory");
            for (int k = 0; k < it.nkv; k++) free(it.kv[k]);
            free(it.kv);
        }
    }
    rp_json_free(rows);
    return st;
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
    /* The runs' provenance (commit, scripts) comes from the worktree, even when REPRO_ROOT names this checkout. */
    char *saved_root = getenv("REPRO_ROOT") ? strdup(getenv("REPRO_ROOT")) : NULL;
    setenv("REPRO_ROOT", wt, 1);
    for (int i = 0; !failures && i < nplan; i++) {
        char path[1200], seed[32];
        snprintf(path, sizeof path, "%s/%s", wt, plan[i].script);
        struct stat sb;
        if (stat(path, &sb) != 0) { fprintf(stderr, "repro compare: %s does not exist at %.12s: skipped\n", plan[i].script, commit); continue; }
        snprintf(seed, sizeof seed, "%lld", plan[i].seed);
        char **argv = calloc((size_t)plan[i].nkv + 12, sizeof *argv);
        if (!argv) { failures++; break; }
        int a = 0;
        argv[a++] = "bin/repro"; argv[a++] = "run"; argv[a++] = plan[i].script;
        if (plan[i].preset[0]) { argv[a++] = "--preset"; argv[a++] = plan[i].preset; }
        argv[a++] = "--seed"; argv[a++] = seed; argv[a++] = "--db"; argv[a++] = (char *)db_path;
        for (int k = 0; k < plan[i].nkv; k++) argv[a++] = plan[i].kv[k];
        rp_buf line = { 0 };
        for (int k = 1; k < a; k++) rp_buf_printf(&line, " %s", argv[k]);
        fprintf(stderr, "repro compare: at %.12s: repro%s\n", commit, line.data);
        rp_buf_free(&line);
        if (run_proc(argv, wt, NULL) != 0) { fprintf(stderr, "repro compare: that run failed\n"); failures++; }
        free(argv);
    }
    if (saved_root) setenv("REPRO_ROOT", saved_root, 1);
    else unsetenv("REPRO_ROOT");
    free(saved_root);
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
    rp_db *db;
    rp_status st = rp_default_db_path(dbp, path, sizeof path);
    if (st == RP_OK) st = do_run ? rp_db_open(path, &db) : rp_cli_open_db(dbp, &db, NULL, 0);
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
            int nplan = 0;
            st = plan_from_runs(db, full[1 - k], root, &plan, &nplan);
            if (st == RP_OK && !nplan)
                st = rp_fail(RP_ERR_NOTFOUND, "--run: %s has no finished runs either, so there is nothing to run %s with "
                             "(run the experiments at one of them first)", revs[1 - k], revs[k]);
            if (st != RP_OK) { free_plan(plan, nplan); rp_db_close(db); return rp_cli_fail("compare", st); }
            rp_db_flush(db);
            failures += run_commit(root, full[k], dbabs, plan, nplan);
            free_plan(plan, nplan);
        }
    }
    rp_compare_opts o = { .commit_a = full[0], .commit_b = full[1], .label_a = revs[0], .label_b = revs[1], .threshold_pct = threshold };
    rp_buf text = { 0 }, json = { 0 };
    int regressions = 0;
    st = rp_compare_commits(db, &o, &text, as_json ? &json : NULL, &regressions);
    rp_db_close(db);
    if (st != RP_OK) {
        if (st == RP_ERR_NOTFOUND && text.len) fputs(text.data, stdout);   /* the groups that did not meet */
        rp_buf_free(&text); rp_buf_free(&json);
        if (failures) fprintf(stderr, "repro compare: %d build/run failure(s) with --run\n", failures);
        return rp_cli_fail("compare", st);
    }
    fputs(as_json ? json.data : text.data, stdout);
    if (as_json) putchar('\n');
    rp_buf_free(&text);
    rp_buf_free(&json);
    if (failures) fprintf(stderr, "repro compare: %d build/run failure(s) with --run\n", failures);
    return regressions || failures ? 1 : 0;
}
