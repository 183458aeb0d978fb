/* cmd_sweep.c: `repro sweep`: an experiment over the cross product of param values (and/or the points of
 * a --points file), each point one `repro run` tagged with the sweep's id, run by a runner (runners/:
 * a local process pool, or a Slurm array job whose per-task registries are merged back). Each point's
 * params are resolved here exactly as `repro run` resolves them, so a point whose params, preset, seed
 * and commit (and diff hash) already have a finished run is skipped unless --force: re-running a sweep
 * finishes only what is missing. `repro sweep --status ID` shows each point's state.
 * Invariant: what a point did is read back from the registry, never assumed from a runner's report. */
#include "cli/command.h"
#include "cli/experiment_call.h"
#include "cli/provenance.h"
#include "cli/run_paths.h"
#include "cli/sweep_points.h"
#include "cli/db_cli.h"
#include "db/sweep.h"
#include "lua/l_json.h"
#include "lua/state.h"
#include "runners/runner.h"
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

RP_COMMAND(sweep, rp_cmd_sweep, "run an experiment over many points (local pool or Slurm), resumable; --status ID");

static const char SWEEP_HELP[] =
    "usage: repro sweep SCRIPT.lua [--preset P] [--runner local|slurm] [--jobs N] [--points FILE] [--force]\n"
    "                   [--db PATH] [--dir DIR] [slurm: --cpus N --mem M --gpus N --time MIN --partition P]\n"
    "                   key=v1,v2,... key=a..b ... [seed=1..3]\n"
    "       repro sweep --status ID [--db PATH] [--json]\n"
    "  Runs every combination of the listed values (a..b: the integers a to b), crossed with the lines of\n"
    "  --points FILE (each line: key=value ...), as its own `repro run` tagged with the sweep's id. seed=\n"
    "  values become the runs' seeds, so `repro compare` and `repro report` aggregate them (mean ± std).\n"
    "  A point that already has a finished run with the same params, preset, seed and commit is skipped\n"
    "  (--force runs it again), so re-running an interrupted sweep finishes only what is missing.\n"
    "  --runner local  a pool of --jobs worker processes (default: cores / threads the experiment declares);\n"
    "                  worker logs in DIR/point-<i>.log\n"
    "  --runner slurm  an sbatch array (one task per point; CPUs, memory, GPUs and time from the experiment's\n"
    "                  resources or the flags; --jobs caps tasks running at once), followed with squeue; each\n"
    "                  task writes DIR/task-<i>/task-<i>.db, merged into the registry as it ends. DIR must be on a\n"
    "                  filesystem the nodes share (default: <registry folder>/sweeps/sweep-<id>).\n"
    "  --status ID     each point's state: finished, failed, killed, running or missing (--json for tools)\n"
    "exit: 0 every point finished, 1 some point failed/killed/missing, 2 bad usage or param, 4 I/O or\n"
    "      scheduler error, 6 database error, 130 interrupted (finished runs are kept; re-run to resume)\n";

/* `repro sweep --status ID`. */
static int show_status(const char *id_s, const char *dbp, int as_json) {
    int64_t id;
    if (!rp_cli_parse_run_id(id_s, &id)) return rp_cli_usage("sweep", "--status: '%s' is not a sweep id", id_s);
    rp_db *db;
    rp_status st = rp_cli_open_db(dbp, &db, NULL, 0);
    if (st != RP_OK) return rp_cli_fail("sweep", st);
    rp_buf out = {0};
    st = rp_db_sweep_status_json(db, id, &out);
    rp_db_close(db);
    rp_json *j = NULL;
    if (st == RP_OK) st = rp_json_parse(out.data, out.len, &j);
    rp_buf_free(&out);
    if (st != RP_OK) return rp_cli_fail("sweep", st);
    const rp_json *pts = rp_json_get(j, "points"), *sw = rp_json_get(j, "sweep");
    size_t n = rp_json_len(pts), counts[5] = {0};
    static const char *const names[5] = { "finished", "failed", "killed", "running", "missing" };
    for (size_t i = 0; i < n; i++) {
        const char *s = rp_json_str(rp_json_get(rp_json_at(pts, i), "status"), "missing");
        for (int k = 0; k < 5; k++) if (!strcmp(s, names[k])) counts[k]++;
    }
    if (as_json) st = rp_cli_print_json(j);
    else {
        char cell[64];
        rp_cli_cell(rp_json_get(sw, "runner"), cell, sizeof cell);
        printf("sweep %lld: %s, preset %s, runner %s, commit %.12s\n", (long long)id, rp_json_str(rp_json_get(sw, "script"), "?"),
               rp_json_str(rp_json_get(sw, "preset"), "none"), cell, rp_json_str(rp_json_get(sw, "git_commit"), "?"));
        printf("%-6s %-9s %-7s %-8s %s\n", "POINT", "STATUS", "RUN", "SEED", "ARGS");
        for (size_t i = 0; i < n; i++) {
            const rp_json *p = rp_json_at(pts, i);
            char idx[32], run[32], seed[32];
            rp_cli_cell(rp_json_get(p, "idx"), idx, sizeof idx);
            rp_cli_cell(rp_json_get(p, "run_id"), run, sizeof run);
            rp_cli_cell(rp_json_get(p, "seed"), seed, sizeof seed);
            printf("%-6s %-9s %-7s %-8s", idx, rp_json_str(rp_json_get(p, "status"), "?"), run, seed);
            const rp_json *args = rp_json_get(p, "args_json");
            for (size_t a = 0; a < rp_json_len(args); a++) printf(" %s", rp_json_str(rp_json_at(args, a), ""));
            printf("\n");
        }
        printf("%zu points: %zu finished, %zu failed, %zu killed, %zu running, %zu missing\n", n, counts[0], counts[1],
               counts[2], counts[3], counts[4]);
    }
    rp_json_free(j);
    return st != RP_OK ? rp_cli_fail("sweep", st) : counts[0] == n ? 0 : 1;
}

/* A point's `repro run` arguments (after "run"): script, --preset, --seed, then key=value pairs. */
static char **point_args(const char *script, const char *preset, const rp_point *p) {
    char **av = calloc(p->n + 7, sizeof *av);
    if (!av) return NULL;
    size_t k = 0;
    char seed[32];
    snprintf(seed, sizeof seed, "%lld", (long long)p->seed);
    av[k++] = strdup(script);
    if (preset) { av[k++] = strdup("--preset"); av[k++] = strdup(preset); }
    av[k++] = strdup("--seed"); av[k++] = strdup(seed);
    for (size_t i = 0; i < p->n; i++) {
        size_t len = strlen(p->kv[i].key) + strlen(p->kv[i].value) + 2;
        if ((av[k] = malloc(len))) snprintf(av[k], len, "%s=%s", p->kv[i].key, p->kv[i].value);
        k++;
    }
    for (size_t i = 0; i < k; i++) if (!av[i]) { for (size_t j = 0; j < k; j++) free(av[j]); free(av); return NULL; }
    return av;
}

static void free_args(char **av) {
    if (!av) return;
    for (char **a = av; *a; a++) free(*a);
    free(av);
}

/* Resolve every point's params through the script (as `repro run` would) into JSON texts; args_json gets
 * each point's arguments. Returns 0, or 2 after printing which point and param was wrong. */
static int resolve_points(lua_State *L, int spec, const char *preset, const rp_point_list *pl, char **const *args,
                          rp_buf *params, rp_buf *args_json) {
    for (size_t i = 0; i < pl->n; i++) {
        lua_pushstring(L, preset ? preset : "");
        lua_newtable(L);
        for (size_t k = 0; k < pl->p[i].n; k++) { lua_pushstring(L, pl->p[i].kv[k].value); lua_setfield(L, -2, pl->p[i].kv[k].key); }
        if (rp_experiment_call(L, "resolve", spec, 2, 1) != LUA_OK) {
            const char *msg = lua_tostring(L, -1);
            const char *tb = strstr(msg, "\nstack traceback:");
            fprintf(stderr, "repro sweep: point %zu: %.*s\n", i, tb ? (int)(tb - msg) : (int)strlen(msg), msg);
            return 2;
        }
        rp_lua_encode_json(L, -1, &params[i], 0);
        lua_pop(L, 1);
        lua_newtable(L);
        int n = 0;
        for (char *const *a = args[i] + 1; *a; a++) { lua_pushstring(L, *a); lua_rawseti(L, -2, ++n); }
        if (!n) { lua_pushstring(L, ""); lua_rawseti(L, -2, 1); }
        rp_lua_encode_json(L, -1, &args_json[i], 0);
        lua_pop(L, 1);
    }
    return 0;
}

int rp_cmd_sweep(int argc, char **argv) {
    if (rp_cli_wants_help(argc, argv)) { fputs(SWEEP_HELP, stdout); return 0; }
    const char *script = NULL, *preset = NULL, *dbp = NULL, *runner = "local", *points_file = NULL, *dir_opt = NULL;
    const char *status_id = NULL;
    int jobs = 0, jobs_given = 0, force = 0, as_json = 0;
    rp_slurm_opts so = { .poll_s = 1.0 };
    char **axes = calloc((size_t)argc, sizeof *axes);
    int naxes = 0;
    static const char valued[] = "--preset --runner --jobs --db --points --dir --status --cpus --mem --gpus --time --partition";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has = i + 1 < argc;
        if (!strcmp(a, "--force")) force = 1;
        else if (!strcmp(a, "--json")) as_json = 1;
        else if (!strcmp(a, "--preset") && has) preset = argv[++i];
        else if (!strcmp(a, "--runner") && has) runner = argv[++i];
        else if (!strcmp(a, "--db") && has) dbp = argv[++i];
        else if (!strcmp(a, "--points") && has) points_file = argv[++i];
        else if (!strcmp(a, "--dir") && has) dir_opt = argv[++i];
        else if (!strcmp(a, "--status") && has) status_id = argv[++i];
        else if (!strcmp(a, "--mem") && has) so.memory = argv[++i];
        else if (!strcmp(a, "--partition") && has) so.partition = argv[++i];
        else if ((!strcmp(a, "--jobs") || !strcmp(a, "--cpus") || !strcmp(a, "--gpus") || !strcmp(a, "--time")) && has) {
            char *end;
            long v = strtol(argv[++i], &end, 10);
            if (*end || v < (strcmp(a, "--gpus") ? 1 : 0) || v > INT_MAX) { free(axes); return rp_cli_usage("sweep", "%s: '%s' is not a positive integer", a, argv[i]); }
            if (!strcmp(a, "--jobs")) jobs = jobs_given = (int)v;
            else if (!strcmp(a, "--cpus")) so.cpus = (int)v;
            else if (!strcmp(a, "--gpus")) so.gpus = (int)v + 1;   /* +1: given (0 is a valid count) */
            else so.time_min = (int)v;
        } else if (a[0] == '-') { free(axes); return rp_cli_bad_arg("sweep", a, valued); }
        else if (!script) script = a;
        else if (strchr(a, '=')) axes[naxes++] = argv[i];
        else { free(axes); return rp_cli_bad_arg("sweep", a, valued); }
    }
    if (status_id) { free(axes); return show_status(status_id, dbp, as_json); }
    if (!script) { free(axes); return rp_cli_usage("sweep", "no experiment script given"); }
    if (strcmp(runner, "local") && strcmp(runner, "slurm")) { free(axes); return rp_cli_usage("sweep", "--runner '%s' is not local or slurm", runner); }
    rp_point_list pl;
    rp_status st = rp_sweep_points_build(axes, naxes, points_file, &pl);
    free(axes);
    if (st != RP_OK) { fprintf(stderr, "repro sweep: %s\n", rp_errmsg()); return 2; }

    /* Load the script once: its name, resources, and each point's resolved params. */
    lua_State *L = rp_lua_state_new(rp_project_root(), NULL, 1);
    char err[4096];
    int spec = L ? rp_experiment_load(L, script, err, sizeof err) : 0;
    if (!spec) { fprintf(stderr, "repro sweep: %s\n", L ? err : "cannot create a Lua state"); if (L) lua_close(L); rp_sweep_points_free(&pl); return 2; }
    rp_resources res;
    char experiment[128] = "";
    if (rp_experiment_resources(L, spec, preset, &res) != LUA_OK) { fprintf(stderr, "repro sweep: %s\n", lua_tostring(L, -1)); lua_close(L); rp_sweep_points_free(&pl); return 2; }
    lua_getfield(L, spec, "name");
    snprintf(experiment, sizeof experiment, "%s", lua_tostring(L, -1));
    lua_pop(L, 1);
    size_t n = pl.n;
    char ***args = calloc(n, sizeof *args);
    rp_buf *params = calloc(n, sizeof *params), *args_json = calloc(n, sizeof *args_json);
    rp_sweep_point *pts = calloc(n, sizeof *pts);
    int code = args && params && args_json && pts ? 0 : 1;
    for (size_t i = 0; !code && i < n; i++) if (!(args[i] = point_args(script, preset, &pl.p[i]))) code = 1;
    if (!code) code = resolve_points(L, spec, preset, &pl, args, params, args_json);
    lua_close(L);
    rp_db *db = NULL;
    char dbpath[4096], dir[4096], exe[4096];
    rp_provenance prov = {0};
    int64_t sweep_id = 0;
    rp_plan plan = {0};
    if (!code) {
        rp_default_db_path(dbp, dbpath, sizeof dbpath);
        if ((st = rp_db_open(dbpath, &db)) != RP_OK) code = rp_cli_fail("sweep", st);
    }
    if (!code) {
        ssize_t l = readlink("/proc/self/exe", exe, sizeof exe - 1);
        exe[l > 0 ? l : 0] = 0;
        rp_provenance_collect(rp_project_root(), &prov);
        rp_sweep_info si = { .script = script, .experiment = experiment, .preset = preset, .runner = runner,
                             .git_commit = prov.commit, .git_diff_sha256 = prov.dirty ? prov.diff_sha256 : NULL,
                             .n_points = (int64_t)n, .dir = dir_opt };
        for (size_t i = 0; i < n; i++) pts[i] = (rp_sweep_point){ params[i].data, args_json[i].data, pl.p[i].seed };
        st = rp_db_sweep_begin(db, &si, &sweep_id);
        if (st == RP_OK) st = rp_db_sweep_add_points(db, sweep_id, pts, n);
        if (st != RP_OK) code = rp_cli_fail("sweep", st);
    }
    if (!code) {
        if (dir_opt) snprintf(dir, sizeof dir, "%s", dir_opt);
        else {
            const char *slash = strrchr(dbpath, '/');
            snprintf(dir, sizeof dir, "%.*s/sweeps/sweep-%lld", slash ? (int)(slash - dbpath) : 1, slash ? dbpath : ".", (long long)sweep_id);
        }
        char absdir[4096];
        if ((st = rp_mkdirs(dir)) != RP_OK) code = rp_cli_fail("sweep", st);
        else if (realpath(dir, absdir)) snprintf(dir, sizeof dir, "%s", absdir);
    }
    rp_sweep_state *states = NULL;
    size_t nstates = 0;
    if (!code && (st = rp_db_sweep_states(db, sweep_id, &states, &nstates)) != RP_OK) code = rp_cli_fail("sweep", st);
    if (!code) {
        char absdb[4096];
        plan = (rp_plan){ .sweep_id = sweep_id, .exe = exe, .db_path = realpath(dbpath, absdb) ? absdb : dbpath, .dir = dir,
                          .root = rp_project_root(), .points = calloc(n ? n : 1, sizeof(rp_plan_point)), .total = n };
        for (size_t i = 0; i < nstates; i++)
            if (force || strcmp(states[i].status, "finished")) plan.points[plan.n++] = (rp_plan_point){ states[i].idx, args[states[i].idx] };
        int ncpu = (int)sysconf(_SC_NPROCESSORS_ONLN);
        int default_jobs = ncpu / (res.threads > 0 ? res.threads : 1) > 0 ? ncpu / res.threads : 1;
        if (!jobs) jobs = default_jobs;
        fprintf(stderr, "repro sweep: sweep %lld of %s: %zu points, %zu already finished%s, %zu to run (%s runner, %d at once)\n",
                (long long)sweep_id, experiment, n, n - plan.n, force ? " (--force: run again)" : "", plan.n, runner, jobs);
        if (!strcmp(runner, "local")) st = rp_runner_local(db, &plan, jobs);
        else {
            if (!so.cpus) so.cpus = res.threads;
            if (!so.memory && res.memory[0]) so.memory = res.memory;
            so.gpus = so.gpus ? so.gpus - 1 : res.gpu;
            if (!so.time_min) so.time_min = res.time_min;
            so.max_parallel = jobs_given ? jobs : 0;   /* by default the cluster decides how many run at once */
            st = rp_runner_slurm(db, &plan, &so);
        }
        if (st != RP_OK) fprintf(stderr, "repro sweep: %s\n", rp_errmsg());
        free(states);
        states = NULL;
        rp_status s2 = rp_db_sweep_states(db, sweep_id, &states, &nstates);
        size_t fin = 0, bad = 0;
        for (size_t i = 0; s2 == RP_OK && i < nstates; i++) { if (!strcmp(states[i].status, "finished")) fin++; else bad++; }
        fprintf(stderr, "repro sweep: sweep %lld: %zu of %zu points finished, %zu not (repro sweep --status %lld)\n",
                (long long)sweep_id, fin, nstates, bad, (long long)sweep_id);
        printf("%lld\n", (long long)sweep_id);
        code = st == RP_ERR_INTERRUPTED ? 130 : st != RP_OK ? rp_status_exit_code(st) : s2 != RP_OK ? rp_status_exit_code(s2) : bad ? 1 : 0;
    }
    free(states);
    free(plan.points);
    rp_db_close(db);
    rp_provenance_free(&prov);
    for (size_t i = 0; i < n; i++) {
        if (args) free_args(args[i]);
        if (params) rp_buf_free(&params[i]);
        if (args_json) rp_buf_free(&args_json[i]);
    }
    free(args); free(params); free(args_json); free(pts);
    rp_sweep_points_free(&pl);
    return code;
}
