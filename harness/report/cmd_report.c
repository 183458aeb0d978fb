/* cmd_report.c: `repro report`: write the HTML report and its Markdown twin from the registry. */
#include "cli/command.h"
#include "cli/db_cli.h"
#include "report/report.h"
#include <string.h>
#include "util/buf.h"

RP_COMMAND(report, rp_cmd_report, "write the reproduction report (self-contained HTML + Markdown)");

static const char usage[] =
    "usage: repro report [--out FILE] [--all] [--commit C | --all-commits] [--experiment E] [--db PATH]\n"
    "  Writes FILE (default: report.html beside the database, i.e. results/report.html) and its Markdown\n"
    "  twin (FILE with .md instead of .html): per paper, the targets (paper value, reproduced value,\n"
    "  tolerance and kind, status, provenance: run id, commit, device), each run's summaries, and the\n"
    "  figures embedded as PNG data. Only the latest finished run per experiment + params, unless --all;\n"
    "  only the runs of the latest commit with a finished run, unless --commit C (a hash prefix) or\n"
    "  --all-commits (every commit, each in its own section, newest first). Runs that differ only by seed\n"
    "  are aggregated: each summary's mean ± standard error over the seeds (the latest run per seed).\n"
    "exit: 0 ok, 2 usage, 4 no database or cannot write, 6 database error";

int rp_cmd_report(int argc, char **argv) {
    if (rp_cli_wants_help(argc, argv)) { puts(usage); return 0; }
    const char *dbp = NULL, *out = NULL;
    rp_report_opts o = { 0 };
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--db") && i + 1 < argc) dbp = argv[++i];
        else if (!strcmp(argv[i], "--out") && i + 1 < argc) out = argv[++i];
        else if (!strcmp(argv[i], "--experiment") && i + 1 < argc) o.experiment = argv[++i];
        else if (!strcmp(argv[i], "--commit") && i + 1 < argc) o.commit = argv[++i];
        else if (!strcmp(argv[i], "--all")) o.all_runs = 1;
        else if (!strcmp(argv[i], "--all-commits")) o.all_commits = 1;
        else return rp_cli_bad_arg("report", argv[i], "--db --out --experiment --commit");
    }
    if (o.commit && o.all_commits) return rp_cli_usage("report", "--commit and --all-commits exclude each other");
    rp_db *db;
    char path[4096], html[4096], mdp[4200];
    rp_status st = rp_cli_open_db(dbp, &db, path, sizeof path);
    if (st != RP_OK) return rp_cli_fail("report", st);
    if (out) snprintf(html, sizeof html, "%s", out);
    else {
        const char *slash = strrchr(path, '/');
        snprintf(html, sizeof html, "%.*s%sreport.html", slash ? (int)(slash - path) : 0, path, slash ? "/" : "");
    }
    size_t hl = strlen(html);
    if (hl > 5 && !strcmp(html + hl - 5, ".html")) snprintf(mdp, sizeof mdp, "%.*s.md", (int)(hl - 5), html);
    else snprintf(mdp, sizeof mdp, "%s.md", html);
    const char *slash = strrchr(html, '/');
    if (slash && slash != html) {   /* the report's folder may not exist yet */
        char dir[4096];
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - html), html);
        if ((st = rp_mkdirs(dir)) != RP_OK) { rp_db_close(db); return rp_cli_fail("report", st); }
    }
    int n = 0;
    st = rp_report_write(db, &o, html, mdp, &n);
    rp_db_close(db);
    if (st != RP_OK) return rp_cli_fail("report", st);
    printf("report: %s (and %s), %d run%s\n", html, mdp, n, n == 1 ? "" : "s");
    return 0;
}
