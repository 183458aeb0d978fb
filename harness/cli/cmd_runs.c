/* cmd_runs.c: `repro runs`: the registry's runs as a table (newest first) or JSON for tools. */
#include "cli/command.h"
#include "cli/db_cli.h"
#include <stdlib.h>
#include <string.h>

RP_COMMAND(runs, rp_cmd_runs, "list recorded runs (filter by experiment, commit, status)");

static const char usage[] =
    "usage: repro runs [--experiment E] [--commit C] [--status S] [--limit N] [--json] [--db PATH]\n"
    "  Lists runs newest first: id, experiment, status, start time, commit (* = dirty), preset, seed, device.\n"
    "  --commit matches a prefix of the full hash; --status is running, finished, failed, killed or lost.\n"
    "  A run recorded running whose process is gone (same host, no such pid: SIGKILL, a crash) is marked\n"
    "  lost (in the database when it is writable; shown as lost either way).\n"
    "  --limit N shows at most N runs (default 50, 0 = all); --json prints the rows as JSON.\n"
    "  The database is --db PATH, else $REPRO_DB, else results/repro.db.\n"
    "exit: 0 ok, 2 usage, 3 corrupt database, 4 no database, 6 database error";

int rp_cmd_runs(int argc, char **argv) {
    if (rp_cli_wants_help(argc, argv)) { puts(usage); return 0; }
    rp_run_filter f = { .limit = 50 };
    const char *dbp = NULL;
    int as_json = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has = i + 1 < argc;
        if (!strcmp(a, "--json")) as_json = 1;
        else if (!strcmp(a, "--experiment") && has) f.experiment = argv[++i];
        else if (!strcmp(a, "--commit") && has) f.commit_prefix = argv[++i];
        else if (!strcmp(a, "--status") && has) f.status = argv[++i];
        else if (!strcmp(a, "--db") && has) dbp = argv[++i];
        else if (!strcmp(a, "--limit") && has) {
            char *end;
            f.limit = strtoll(argv[++i], &end, 10);
            if (*end || f.limit < 0) return rp_cli_usage("runs", "--limit: '%s' is not a count", argv[i]);
        } else return rp_cli_bad_arg("runs", a, "--experiment --commit --status --db --limit");
    }
    if (f.status && strcmp(f.status, "running") && strcmp(f.status, "finished") && strcmp(f.status, "failed") &&
        strcmp(f.status, "killed") && strcmp(f.status, "lost"))
        return rp_cli_usage("runs", "--status '%s' is not one of running, finished, failed, killed, lost", f.status);
    rp_db *db;
    rp_status st = rp_cli_open_db(dbp, &db, NULL, 0);
    if (st != RP_OK) return rp_cli_fail("runs", st);
    int lost = 0;
    rp_json *rows = NULL;
    st = rp_db_mark_lost(db, &lost);
    if (st == RP_OK && lost) fprintf(stderr, "repro runs: marked %d run%s lost (recorded running, process gone)\n", lost, lost == 1 ? "" : "s");
    if (st == RP_OK) st = rp_db_runs(db, &f, &rows);
    rp_db_close(db);
    if (st != RP_OK) return rp_cli_fail("runs", st);
    if (as_json) {
        st = rp_cli_print_json(rows);
    } else if (rp_json_len(rows) == 0) {
        puts("no runs match");
    } else {
        printf("%-6s %-24s %-9s %-20s %-9s %-7s %-6s %s\n", "ID", "EXPERIMENT", "STATUS", "STARTED (UTC)", "COMMIT", "PRESET", "SEED", "DEVICE");
        for (size_t i = 0; i < rp_json_len(rows); i++) {
            const rp_json *r = rp_json_at(rows, i);
            char id[32], exp[128], status[32], started[64], commit[16], preset[32], seed[32], backend[64], device[128];
            rp_cli_cell(rp_json_get(r, "id"), id, sizeof id);
            rp_cli_cell(rp_json_get(r, "experiment"), exp, sizeof exp);
            rp_cli_cell(rp_json_get(r, "status"), status, sizeof status);
            rp_cli_cell(rp_json_get(r, "started_at"), started, sizeof started);
            rp_cli_cell(rp_json_get(r, "preset"), preset, sizeof preset);
            rp_cli_cell(rp_json_get(r, "seed"), seed, sizeof seed);
            rp_cli_cell(rp_json_get(r, "backend"), backend, sizeof backend);
            rp_cli_cell(rp_json_get(r, "device"), device, sizeof device);
            snprintf(commit, sizeof commit, "%.7s%s", rp_json_str(rp_json_get(r, "git_commit"), "-"),
                     rp_json_num(rp_json_get(r, "git_dirty"), 0) ? "*" : "");
            if (strlen(started) > 19) started[19] = 0;
            printf("%-6s %-24s %-9s %-20s %-9s %-7s %-6s %s/%s\n", id, exp, status, started, commit, preset, seed, backend, device);
        }
    }
    rp_json_free(rows);
    return st == RP_OK ? 0 : rp_cli_fail("runs", st);
}
