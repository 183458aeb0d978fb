/* cmd_plot.c: `repro plot RUN|EXPERIMENT`: re-render a run's figures from the database alone (the
 * figures table keeps each spec with its data; read through db/, handed to the plotter as data), into the run's figures folder or --out DIR, and record
 * the new files and rendered flag. EXPERIMENT means its latest finished run. */
#include "cli/command.h"
#include "cli/run_paths.h"
#include "cli/db_cli.h"
#include "plot/plot.h"
#include <stdlib.h>
#include <string.h>

RP_COMMAND(plot, rp_cmd_plot, "re-render a run's figures (PNG + SVG) from the database alone");

static const char usage[] =
    "usage: repro plot RUN|EXPERIMENT [--out DIR] [--db PATH]\n"
    "  Re-renders every figure of run RUN (an id), or of the latest finished run of EXPERIMENT, from the\n"
    "  specs stored in the registry: <name>.dat + <name>.gp + <name>.png + <name>.svg in the run's figures\n"
    "  folder (<db folder>/figures/<experiment>/run-<id>) or DIR. Needs gnuplot (gnuplot-nox).\n"
    "exit: 0 all rendered, 1 some figure not rendered (gnuplot missing or failed), 2 usage,\n"
    "      4 no database / run / figure, 6 database error";

/* One figure of the run as read from the database. */
typedef struct { char *name, *spec; } fig_row;

/* Read the run's experiment and its figures (each spec as JSON text for the plotter). */
static rp_status load(rp_db *db, int64_t run, char *experiment, size_t n, fig_row **figs, size_t *nfigs) {
    *figs = NULL; *nfigs = 0;
    rp_json *r = NULL;
    RP_TRY(rp_db_run(db, run, &r));
    snprintf(experiment, n, "%s", rp_json_str(rp_json_get(r, "experiment"), ""));
    const rp_json *fs = rp_json_get(r, "figures");
    size_t nf = rp_json_len(fs);
    rp_status s = nf && !(*figs = calloc(nf, sizeof **figs)) ? rp_fail(RP_ERR_NOMEM, "out of memory") : RP_OK;
    for (size_t i = 0; s == RP_OK && i < nf; i++) {
        fig_row *f = &(*figs)[(*nfigs)++];
        rp_buf spec = { 0 };
        f->name = strdup(rp_json_str(rp_json_get(rp_json_at(fs, i), "name"), ""));
        s = rp_json_write(rp_json_get(rp_json_at(fs, i), "spec_json"), &spec, 0);
        f->spec = spec.data;
        if (s == RP_OK && (!f->name || !f->spec)) s = rp_fail(RP_ERR_NOMEM, "out of memory");
    }
    rp_json_free(r);
    return s;
}

int rp_cmd_plot(int argc, char **argv) {
    if (rp_cli_wants_help(argc, argv)) { puts(usage); return 0; }
    const char *dbp = NULL, *target = NULL, *out = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--db") && i + 1 < argc) dbp = argv[++i];
        else if (!strcmp(argv[i], "--out") && i + 1 < argc) out = argv[++i];
        else if (argv[i][0] != '-' && !target) target = argv[i];
        else return rp_cli_bad_arg("plot", argv[i], "--db --out");
    }
    if (!target) return rp_cli_usage("plot", "which run? give a run id or an experiment name");
    rp_db *db;
    char path[4096];
    rp_status st = rp_cli_open_db(dbp, &db, path, sizeof path);
    if (st != RP_OK) return rp_cli_fail("plot", st);
    int64_t run;
    if (!rp_cli_parse_run_id(target, &run)) st = rp_db_latest_finished(db, target, &run);
    char experiment[256] = "";
    fig_row *figs = NULL;
    size_t nfigs = 0;
    if (st == RP_OK) st = load(db, run, experiment, sizeof experiment, &figs, &nfigs);
    if (st == RP_OK && !nfigs) st = rp_fail(RP_ERR_NOTFOUND, "run %lld (%s) has no figures", (long long)run, experiment);
    int code = 0;
    if (st != RP_OK) code = rp_cli_fail("plot", st);
    char dir[4096];
    if (out) snprintf(dir, sizeof dir, "%s", out);
    else rp_figures_dir(path, experiment, run, dir, sizeof dir);
    int not_rendered = 0;
    for (size_t i = 0; !code && i < nfigs; i++) {
        rp_buf files = { 0 };
        int rendered = 0;
        rp_status ps = rp_plot_render(figs[i].spec, dir, &files, &rendered);
        if (ps == RP_ERR_INVAL || ps == RP_ERR_IO || ps == RP_ERR_NOMEM) {
            fprintf(stderr, "repro plot: run %lld: %s\n", (long long)run, rp_errmsg());
            not_rendered++;
        } else {
            if (!rendered) { fprintf(stderr, "repro plot: %s\n", rp_errmsg()); not_rendered++; }
            else {
                char base[256];
                rp_plot_file_base(figs[i].name, base, sizeof base);
                printf("%s/%s.png %s/%s.svg\n", dir, base, dir, base);
            }
            rp_status ds = rp_db_figure(db, run, figs[i].name, figs[i].spec, files.len ? files.data : "[]", rendered);
            if (ds != RP_OK) code = rp_cli_fail("plot", ds);
        }
        rp_buf_free(&files);
    }
    for (size_t i = 0; i < nfigs; i++) { free(figs[i].name); free(figs[i].spec); }
    free(figs);
    rp_db_close(db);
    if (!code && not_rendered) {
        fprintf(stderr, "repro plot: %d of %zu figures not rendered\n", not_rendered, nfigs);
        code = 1;
    }
    return code;
}
