/* cmd_run.c: `repro run SCRIPT.lua [--preset NAME] [--seed N] [--db PATH] [key=value ...]`: the run
 * lifecycle of design.md §2. Params are resolved before anything is recorded (a bad param records
 * nothing); then the run row is inserted with full provenance, the script runs under a traceback
 * handler, and the run ends finished, failed (error + traceback) or killed (SIGINT/SIGTERM/SIGHUP).
 * Metrics logged before an error or a signal are flushed, never lost; points wait at most about a second
 * in memory (the registry's time-based flush), so even SIGKILL loses only the last second's. */
#include "cli/command.h"
#include "cli/experiment_call.h"
#include "cli/model_cli.h"
#include "cli/provenance.h"
#include "cli/run_paths.h"
#include "db/sweep.h"
#include "lua/l_json.h"
#include "lua/state.h"
#include "util/buf.h"
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tensor/backend.h"

RP_COMMAND(run, rp_cmd_run, "run an experiment script and record it in the registry");

static const char *RUN_HELP =
    "usage: repro run SCRIPT.lua [--preset smoke|demo|full|paper] [--seed N] [--db PATH] [--device cpu|cuda] [--resume] [key=value ...]\n"
    "  Resolves params (script defaults, then the preset, then key=value), records the run with its\n"
    "  provenance, runs it, and stores metrics, summaries, figures and targets in the registry.\n"
    "  --list-params  print the script's params and presets, run nothing\n"
    "  --resume       reuse the units of work (ctx:memo) finished by the latest earlier run with the same\n"
    "                 experiment, params, plugin versions and seed (a killed or failed run); the new run\n"
    "                 records them again, so it holds every unit; with no such run it starts from scratch\n"
    "  --device cuda  models the script loads without naming a backend run on the GPU (REPRO_DEVICE), and the\n"
    "                 run records backend cuda and the GPU; without a GPU the run is refused before it starts\n"
    "exit: 0 finished, 1 failed, 2 bad usage or param, 130 killed (SIGINT, SIGTERM, SIGHUP)\n";

static volatile sig_atomic_t signals_seen;
static void on_signal(int sig) {
    if (signals_seen++) { signal(sig, SIG_DFL); raise(sig); }
    rp_lua_request_interrupt();
}

static void print_params(lua_State *L, int spec, const char *preset) {
    lua_getfield(L, spec, "name");
    printf("experiment %s\nparams:\n", lua_tostring(L, -1));
    lua_pop(L, 1);
    lua_getfield(L, spec, "params");
    lua_getglobal(L, "require");
    lua_pushstring(L, "repro.json");
    lua_call(L, 1, 1);
    lua_getfield(L, -1, "encode");
    lua_pushvalue(L, -3);
    lua_pushboolean(L, 1);
    lua_call(L, 2, 1);
    printf("%s\npresets:", lua_tostring(L, -1));
    lua_pop(L, 3);
    lua_getfield(L, spec, "presets");
    lua_pushnil(L);
    while (lua_next(L, -2)) { printf(" %s", lua_tostring(L, -2)); lua_pop(L, 1); }
    printf("\n");
    lua_pop(L, 1);
    rp_resources r;
    if (rp_experiment_resources(L, spec, preset, &r) == LUA_OK) {
        char t[32] = "(not declared)";
        if (r.time_min) snprintf(t, sizeof t, "%d min", r.time_min);
        printf("resources%s%s%s: threads %d, memory %s, gpu %d, time %s\n", preset ? " (preset " : "", preset ? preset : "", preset ? ")" : "", r.threads, r.memory[0] ? r.memory : "(not declared)", r.gpu, t);
    } else lua_pop(L, 1);
}

int rp_cmd_run(int argc, char **argv) {
    if (rp_cli_wants_help(argc, argv) || argc < 2) {
        fputs(RUN_HELP, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *script = NULL, *preset = NULL, *db_path = NULL;
    long long seed = 1;
    int list_params = 0, n_over = 0, resume = 0;
    const char *over[256];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if ((!strcmp(a, "--preset") || !strcmp(a, "--seed") || !strcmp(a, "--db") || !strcmp(a, "--device")) && i + 1 >= argc) {
            fprintf(stderr, "repro run: %s needs a value\n", a);
            return 2;
        }
        if (!strcmp(a, "--preset")) preset = argv[++i];
        else if (!strcmp(a, "--db")) db_path = argv[++i];
        else if (!strcmp(a, "--list-params")) list_params = 1;
        else if (!strcmp(a, "--resume")) resume = 1;
        else if (!strcmp(a, "--device")) {
            rp_backend *be;
            if (rp_cli_device_open("repro run", argv[++i], &be)) return 2;   /* sets REPRO_DEVICE: model.load, provenance */
        } else if (!strcmp(a, "--seed")) {
            char *end;
            seed = strtoll(argv[++i], &end, 10);
            if (*end || end == argv[i]) { fprintf(stderr, "repro run: --seed expects an integer, got '%s'\n", argv[i]); return 2; }
        } else if (a[0] == '-' && a[1] == '-') {
            fprintf(stderr, "repro run: unknown option %s\n%s", a, RUN_HELP);
            return 2;
        } else if (strchr(a, '=') && script) {
            if (n_over == 256) { fprintf(stderr, "repro run: too many key=value params\n"); return 2; }
            over[n_over++] = a;
        } else if (!script) script = a;
        else { fprintf(stderr, "repro run: unexpected argument '%s' (params are key=value)\n", a); return 2; }
    }
    if (!script) { fputs(RUN_HELP, stderr); return 2; }
    rp_run run = {0};
    run.seed = (uint64_t)seed;
    lua_State *L = rp_lua_state_new(rp_project_root(), &run, run.seed);
    if (!L) { fprintf(stderr, "repro run: cannot create a Lua state\n"); return 1; }
    lua_newtable(L);
    int overrides = lua_gettop(L);
    for (int i = 0; i < n_over; i++) {
        const char *eq = strchr(over[i], '=');
        lua_pushlstring(L, over[i], (size_t)(eq - over[i]));
        lua_pushstring(L, eq + 1);
        lua_settable(L, overrides);
    }

    char lerr[4096];
    int spec = rp_experiment_load(L, script, lerr, sizeof lerr);
    if (!spec) { fprintf(stderr, "repro run: %s\n", lerr); lua_close(L); return 2; }
    if (list_params) { print_params(L, spec, preset); lua_close(L); return 0; }
    lua_pushstring(L, preset ? preset : "");
    lua_pushvalue(L, overrides);
    if (rp_experiment_call(L, "resolve", spec, 2, 1) != LUA_OK) {
        const char *msg = lua_tostring(L, -1);
        const char *tb = strstr(msg, "\nstack traceback:");
        fprintf(stderr, "repro run: %.*s\n", tb ? (int)(tb - msg) : (int)strlen(msg), msg);
        lua_close(L);
        return 2;
    }
    int params = lua_gettop(L);
    if (rp_experiment_call(L, "_describe", spec, 0, 1) != LUA_OK) { fprintf(stderr, "repro run: %s\n", lua_tostring(L, -1)); lua_close(L); return 1; }
    int desc = lua_gettop(L);
    lua_getfield(L, desc, "name");
    snprintf(run.experiment, sizeof run.experiment, "%s", lua_tostring(L, -1));
    lua_getfield(L, desc, "paper");
    const char *paper = lua_tostring(L, -1);
    rp_buf params_json = {0}, versions_json = {0};
    rp_lua_encode_json(L, params, &params_json, 0);
    lua_getfield(L, desc, "versions");
    rp_lua_encode_json(L, -1, &versions_json, 0);
    lua_pop(L, 1);

    char dbp[4096];
    rp_status st = rp_default_db_path(db_path, dbp, sizeof dbp);
    if (st == RP_OK) st = rp_db_open(dbp, &run.db);
    if (st != RP_OK) {
        fprintf(stderr, "repro run: %s\n", rp_errmsg());
        rp_buf_free(&params_json); rp_buf_free(&versions_json); lua_close(L);
        return rp_status_exit_code(st);
    }
    rp_provenance prov;
    rp_provenance_collect(rp_project_root(), &prov);
    rp_run_info info = {.experiment = run.experiment, .paper = paper, .script = script, .preset = preset,
                        .seed = seed, .params_json = params_json.data, .plugin_versions_json = versions_json.data};
    rp_provenance_apply(&prov, &info);
    st = rp_db_run_begin(run.db, &info, &run.id);
    int64_t n_units = 0;
    if (st == RP_OK && resume) st = rp_db_memo_source(run.db, &info, run.id, &run.resume_from, &n_units);
    rp_provenance_free(&prov);
    rp_buf_free(&params_json);
    rp_buf_free(&versions_json);
    if (st != RP_OK) { fprintf(stderr, "repro run: %s\n", rp_errmsg()); rp_db_close(run.db); lua_close(L); return rp_status_exit_code(st); }
    const char *sweep_env = getenv("REPRO_SWEEP_ID"), *point_env = getenv("REPRO_SWEEP_POINT");
    if (sweep_env && point_env && rp_db_run_set_sweep(run.db, run.id, atoll(sweep_env), atoll(point_env)) != RP_OK)
        fprintf(stderr, "repro run: warning: tagging run %lld with sweep %s: %s\n", (long long)run.id, sweep_env, rp_errmsg());
    rp_figures_dir(dbp, run.experiment, run.id, run.figures_dir, sizeof run.figures_dir);
    rp_mkdirs(run.figures_dir);
    fprintf(stderr, "repro: run %lld of %s (preset %s, seed %lld) started\n", (long long)run.id, run.experiment, preset ? preset : "none", seed);
    if (resume && run.resume_from)
        fprintf(stderr, "repro: resuming run %lld: %lld finished units of work are reused\n", (long long)run.resume_from, (long long)n_units);
    else if (resume)
        fprintf(stderr, "repro: --resume: no earlier run of %s with these params, plugin versions and seed holds finished units; starting from scratch\n", run.experiment);

    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGHUP, on_signal);   /* a closed terminal ends the run as killed, like SIGTERM */
    lua_newtable(L);
    lua_pushstring(L, preset ? preset : "");
    lua_setfield(L, -2, "preset");
    lua_pushnumber(L, (lua_Number)seed);
    lua_setfield(L, -2, "seed");
    int info_idx = lua_gettop(L);
    lua_pushvalue(L, params);
    lua_pushvalue(L, info_idx);
    int lst = rp_experiment_call(L, "_execute", spec, 2, 2);
    rp_run_status rs = RP_RUN_FINISHED;
    int code = 0;
    if (lst != LUA_OK) {
        const char *msg = lua_tostring(L, -1);
        if (!msg) msg = "(error object is not a string)";
        const char *tb = strstr(msg, "\nstack traceback:");
        char err[4096];
        snprintf(err, sizeof err, "%.*s", tb ? (int)(tb - msg) : (int)strlen(msg), msg);
        rs = rp_lua_interrupted() ? RP_RUN_KILLED : RP_RUN_FAILED;
        code = rs == RP_RUN_KILLED ? 130 : 1;
        fprintf(stderr, "repro: run %lld %s: %s\n", (long long)run.id, rp_run_status_name(rs), rs == RP_RUN_KILLED ? "interrupted" : msg);
        st = rp_db_run_end(run.db, run.id, rs, rs == RP_RUN_KILLED ? "interrupted by signal" : err, tb ? tb + 1 : NULL);
    } else {
        int ntargets = (int)lua_tonumber(L, -2), nfailed = (int)lua_tonumber(L, -1);
        st = rp_db_run_end(run.db, run.id, rs, NULL, NULL);
        fprintf(stderr, "repro: run %lld finished: %d targets (%d outside tolerance)%s; figures in %s\n", (long long)run.id,
                ntargets, nfailed, run.figures_unrendered ? ", some figures not rendered (gnuplot missing or failed)" : "", run.figures_dir);
    }
    if (st != RP_OK) { fprintf(stderr, "repro run: recording the end of run %lld: %s\n", (long long)run.id, rp_errmsg()); code = code ? code : 6; }
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    lua_close(L);
    rp_db_close(run.db);
    printf("%lld\n", (long long)run.id);
    return code;
}
