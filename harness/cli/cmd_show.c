/* cmd_show.c: `repro show RUN`: one run with its provenance, params, summaries, targets, figures and
 * metric series, as text or JSON. */
#include "cli/command.h"
#include "cli/db_cli.h"
#include <math.h>
#include <string.h>

RP_COMMAND(show, rp_cmd_show, "show one run: provenance, params, summaries, targets, figures");

static const char usage[] =
    "usage: repro show RUN [--json] [--db PATH]\n"
    "  RUN is a run id (see repro runs). Prints the run's provenance (commit, dirty flag, build, Lua,\n"
    "  backend, device, seed), params, summaries (value ± stderr, n when known, direction), targets (an exact\n"
    "  target's numbers; whether a shape target's claim held), figures, metric\n"
    "  series with their point counts, and the error and traceback of a failed run. --json: everything as JSON.\n"
    "exit: 0 ok, 2 usage, 3 corrupt database, 4 no database or no such run, 6 database error";

/* Print "  key: value" for each listed member of o that is not null. */
static void fields(const rp_json *o, const char *const *keys) {
    for (; *keys; keys++) {
        const rp_json *v = rp_json_get(o, *keys);
        if (!v || rp_json_typeof(v) == RP_JSON_NULL) continue;
        char cell[1024];
        rp_cli_cell(v, cell, sizeof cell);
        printf("  %-16s %s\n", *keys, cell);
    }
}

/* A value of a target as text, or NULL when it is missing or not finite (stored as "nan"). */
static const char *finite_cell(const rp_json *v, char *out, size_t n) {
    if (rp_json_typeof(v) != RP_JSON_NUMBER) return NULL;
    rp_cli_cell(v, out, n);
    return out;
}

/* What a target checked, by kind: an exact target its numbers; a shape target whether the paper's
 * qualitative claim held (it has no paper number or tolerance); a not-reproducible one the paper's value. */
static void target_text(const rp_json *t, char *out, size_t n) {
    const char *kind = rp_json_str(rp_json_get(t, "kind"), "?"), *status = rp_json_str(rp_json_get(t, "status"), "?");
    char pv[64], rv[64], tol[64];
    const char *p = finite_cell(rp_json_get(t, "paper_value"), pv, sizeof pv);
    const char *r = finite_cell(rp_json_get(t, "reproduced"), rv, sizeof rv);
    const char *tl = finite_cell(rp_json_get(t, "tolerance"), tol, sizeof tol);
    if (!strcmp(kind, "shape")) {
        int k = snprintf(out, n, "shape: the paper's claim %s", !strcmp(status, "pass") ? "held" : "did not hold");
        if (r && k >= 0 && (size_t)k < n) snprintf(out + k, n - (size_t)k, " (measured %s)", r);
    } else if (!strcmp(kind, "not_reproducible")) {
        snprintf(out, n, "not reproducible here%s%s", p ? "; the paper reports " : "", p ? p : "");
    } else {
        snprintf(out, n, "paper %s, reproduced %s, tolerance ± %s (%s)", p ? p : "-", r ? r : "-", tl ? tl : "-", kind);
    }
}

int rp_cmd_show(int argc, char **argv) {
    if (rp_cli_wants_help(argc, argv)) { puts(usage); return 0; }
    const char *dbp = NULL, *run_arg = NULL;
    int as_json = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json")) as_json = 1;
        else if (!strcmp(argv[i], "--db") && i + 1 < argc) dbp = argv[++i];
        else if (argv[i][0] != '-' && !run_arg) run_arg = argv[i];
        else return rp_cli_bad_arg("show", argv[i], "--db");
    }
    int64_t id;
    if (!run_arg) return rp_cli_usage("show", "which run? give a run id (see repro runs)");
    if (!rp_cli_parse_run_id(run_arg, &id)) return rp_cli_usage("show", "'%s' is not a run id", run_arg);
    rp_db *db;
    rp_status st = rp_cli_open_db(dbp, &db, NULL, 0);
    if (st != RP_OK) return rp_cli_fail("show", st);
    rp_json *r = NULL;
    st = rp_db_run(db, id, &r);
    rp_db_close(db);
    if (st != RP_OK) return rp_cli_fail("show", st);
    if (as_json) {
        st = rp_cli_print_json(r);
        rp_json_free(r);
        return st == RP_OK ? 0 : rp_cli_fail("show", st);
    }
    printf("run %lld: %s [%s]\n", (long long)id, rp_json_str(rp_json_get(r, "experiment"), "?"), rp_json_str(rp_json_get(r, "status"), "?"));
    static const char *const prov[] = { "paper", "script", "preset", "seed", "started_at", "ended_at", "git_commit", "git_dirty",
                                        "git_diff_sha256", "build_id", "lua_impl", "backend", "device", "host", "pid", NULL };
    fields(r, prov);
    const rp_json *params = rp_json_get(r, "params_json");
    if (rp_json_len(params)) {
        puts("params:");
        for (size_t i = 0; i < rp_json_len(params); i++) {
            char cell[512];
            rp_cli_cell(rp_json_at(params, i), cell, sizeof cell);
            printf("  %-24s %s\n", rp_json_key_at(params, i), cell);
        }
    }
    const rp_json *sums = rp_json_get(r, "summaries");
    if (rp_json_len(sums)) {
        puts("summaries:");
        for (size_t i = 0; i < rp_json_len(sums); i++) {
            const rp_json *s = rp_json_at(sums, i);
            char v[64], se[64], n[48] = "";
            rp_cli_cell(rp_json_get(s, "value"), v, sizeof v);
            rp_cli_cell(rp_json_get(s, "stderr"), se, sizeof se);
            double cnt = rp_json_num(rp_json_get(s, "n"), 0);
            if (cnt > 0) snprintf(n, sizeof n, "  n=%.0f", cnt);   /* n unknown: say nothing rather than n=? */
            int dir = (int)rp_json_num(rp_json_get(s, "direction"), 0), has_se = strcmp(se, "nan") && strcmp(se, "-");
            printf("  %-32s %s%s%s%s  %s\n", rp_json_str(rp_json_get(s, "name"), "?"), v, has_se ? " ± " : "",
                   has_se ? se : "", n, dir > 0 ? "(higher is better)" : dir < 0 ? "(lower is better)" : "");
        }
    }
    const rp_json *tg = rp_json_get(r, "targets");
    if (rp_json_len(tg)) {
        puts("targets:");
        for (size_t i = 0; i < rp_json_len(tg); i++) {
            const rp_json *t = rp_json_at(tg, i);
            char what[1024];
            target_text(t, what, sizeof what);
            const char *note = rp_json_str(rp_json_get(t, "note"), NULL);
            printf("  %-5s %-36s %s%s%s\n", rp_json_str(rp_json_get(t, "status"), "?"), rp_json_str(rp_json_get(t, "name"), "?"),
                   what, note ? ": " : "", note ? note : "");
        }
    }
    const rp_json *figs = rp_json_get(r, "figures");
    if (rp_json_len(figs)) {
        puts("figures:");
        for (size_t i = 0; i < rp_json_len(figs); i++) {
            const rp_json *f = rp_json_at(figs, i), *files = rp_json_get(f, "files_json");
            printf("  %-24s %s", rp_json_str(rp_json_get(f, "name"), "?"),
                   rp_json_num(rp_json_get(f, "rendered"), 0) ? "rendered" : "NOT rendered");
            for (size_t k = 0; k < rp_json_len(files); k++) printf(" %s", rp_json_str(rp_json_at(files, k), ""));
            putchar('\n');
        }
    }
    const rp_json *ms = rp_json_get(r, "metrics");
    if (rp_json_len(ms)) {
        puts("metrics:");
        for (size_t i = 0; i < rp_json_len(ms); i++)
            printf("  %-32s %.0f points\n", rp_json_str(rp_json_get(rp_json_at(ms, i), "name"), "?"),
                   rp_json_num(rp_json_get(rp_json_at(ms, i), "count"), 0));
    }
    const char *err = rp_json_str(rp_json_get(r, "error"), NULL), *tb = rp_json_str(rp_json_get(r, "traceback"), NULL);
    if (err) printf("error: %s\n", err);
    if (tb) printf("traceback:\n%s\n", tb);
    rp_json_free(r);
    return 0;
}
