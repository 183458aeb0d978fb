/* cmd_merge.c: `repro merge DIR|FILES... [--db PATH] [--json]`: fold task registries (the per-task SQLite
 * files a Slurm sweep writes) into the main registry. Each file is merged atomically and at most once
 * per run (runs are keyed by uuid), so merging a folder again adds nothing; a half-written or corrupt
 * task file is reported by name and left out, and the others still merge. */
#include "cli/command.h"
#include "cli/run_paths.h"
#include "cli/db_cli.h"
#include "db/sweep.h"
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

RP_COMMAND(merge, rp_cmd_merge, "fold task registries (a Slurm sweep's task-*.db files) into the registry, without duplicates");

static const char MERGE_HELP[] =
    "usage: repro merge DIR|FILE.db ... [--db PATH] [--json]\n"
    "  Folds each task registry (for a folder: every *.db file in it and in its subfolders, by path) into the registry\n"
    "  (--db PATH, else $REPRO_DB, else results/repro.db). Runs are keyed by their uuid: a run already\n"
    "  there is skipped, so merging twice adds nothing. Each file goes in whole or not at all; a file\n"
    "  whose run is still 'running' (the task is writing, or died) or that is corrupt is reported and\n"
    "  left out, and the other files still merge.\n"
    "exit: 0 every file merged, 1 some file refused, 2 bad usage, 4 no such file, 6 database error\n";

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Append the *.db files of folder arg and of its subfolders one level down (each folder's sorted by name),
 * or the file arg itself, to list. */
static rp_status collect(const char *arg, char ***list, size_t *n, int depth) {
    struct stat sb;
    if (stat(arg, &sb) != 0) return rp_fail(RP_ERR_NOTFOUND, "%s: no such file or folder", arg);
    size_t start = *n;
    if (S_ISDIR(sb.st_mode)) {
        DIR *d = opendir(arg);
        if (!d) return rp_fail(RP_ERR_IO, "%s: cannot read the folder", arg);
        struct dirent *e;
        char sub[4096];
        while ((e = readdir(d))) {
            size_t l = strlen(e->d_name);
            snprintf(sub, sizeof sub, "%s/%s", arg, e->d_name);
            if (depth == 0 && e->d_name[0] != '.' && stat(sub, &sb) == 0 && S_ISDIR(sb.st_mode)) {
                rp_status st = collect(sub, list, n, 1);
                if (st != RP_OK) { closedir(d); return st; }
                continue;
            }
            if (l < 4 || strcmp(e->d_name + l - 3, ".db")) continue;
            char **g = realloc(*list, (*n + 1) * sizeof *g);
            if (!g) { closedir(d); return rp_fail(RP_ERR_NOMEM, "out of memory"); }
            *list = g;
            size_t pl = strlen(arg) + l + 2;
            if (!((*list)[*n] = malloc(pl))) { closedir(d); return rp_fail(RP_ERR_NOMEM, "out of memory"); }
            snprintf((*list)[(*n)++], pl, "%s/%s", arg, e->d_name);
        }
        closedir(d);
        if (*n > start) qsort(*list + start, *n - start, sizeof **list, by_name);   /* a subfolder's files sort by their path; none: *list may be NULL */
        return RP_OK;
    }
    char **g = realloc(*list, (*n + 1) * sizeof *g);
    if (!g || !(g[*n] = strdup(arg))) { *list = g ? g : *list; return rp_fail(RP_ERR_NOMEM, "out of memory"); }
    *list = g;
    (*n)++;
    return RP_OK;
}

int rp_cmd_merge(int argc, char **argv) {
    if (rp_cli_wants_help(argc, argv)) { fputs(MERGE_HELP, stdout); return 0; }
    const char *dbp = NULL;
    int as_json = 0;
    char **files = NULL;
    size_t nfiles = 0;
    rp_status st = RP_OK;
    int nargs = 0;
    for (int i = 1; i < argc && st == RP_OK; i++) {
        if (!strcmp(argv[i], "--json")) as_json = 1;
        else if (!strcmp(argv[i], "--db") && i + 1 < argc) dbp = argv[++i];
        else if (argv[i][0] == '-') { for (size_t k = 0; k < nfiles; k++) free(files[k]); free(files); return rp_cli_bad_arg("merge", argv[i], "--db"); }
        else { st = collect(argv[i], &files, &nfiles, 0); nargs++; }
    }
    if (st == RP_OK && !nargs) { free(files); return rp_cli_usage("merge", "give a folder or task registry files to merge"); }
    char path[4096];
    rp_db *db = NULL;
    if (st == RP_OK) { rp_default_db_path(dbp, path, sizeof path); st = rp_db_open(path, &db); }
    if (st != RP_OK) { for (size_t k = 0; k < nfiles; k++) free(files[k]); free(files); return rp_cli_fail("merge", st); }
    int64_t runs = 0, skipped = 0, points = 0;
    size_t refused = 0;
    if (as_json) printf("{\"files\": [");
    char real_db[4096];
    if (!realpath(path, real_db)) real_db[0] = 0;
    for (size_t k = 0; k < nfiles; k++) {
        char real[4096];
        if (realpath(files[k], real) && !strcmp(real, real_db)) continue;   /* never the registry into itself */
        rp_merge_result r;
        rp_status ms = rp_db_merge_file(db, files[k], &r);
        if (ms == RP_ERR_DB || ms == RP_ERR_IO || ms == RP_ERR_NOMEM) st = ms;
        if (ms != RP_OK) refused++;
        runs += r.runs_added; skipped += r.runs_skipped; points += r.points_added;
        if (as_json) {
            printf("%s{\"file\": \"", k ? ", " : "");
            for (const char *c = files[k]; *c; c++) printf(*c == '"' || *c == '\\' ? "\\%c" : "%c", *c);
            printf("\", \"merged\": %s, \"runs_added\": %lld, \"runs_skipped\": %lld, \"points_added\": %lld",
                   ms == RP_OK ? "true" : "false", (long long)r.runs_added, (long long)r.runs_skipped, (long long)r.points_added);
            if (ms != RP_OK) {
                printf(", \"error\": \"");
                for (const char *c = rp_errmsg(); *c; c++) printf(*c == '"' || *c == '\\' ? "\\%c" : (unsigned char)*c < 32 ? " " : "%c", *c);
                printf("\"");
            }
            printf("}");
        } else if (ms == RP_OK) {
            printf("%s: %lld runs added (%lld metric points), %lld already there\n", files[k], (long long)r.runs_added,
                   (long long)r.points_added, (long long)r.runs_skipped);
        } else fprintf(stderr, "repro merge: %s\n", rp_errmsg());
    }
    if (as_json) printf("], \"runs_added\": %lld, \"runs_skipped\": %lld, \"points_added\": %lld, \"refused\": %zu}\n",
                        (long long)runs, (long long)skipped, (long long)points, refused);
    else printf("merged %zu of %zu files into %s: %lld runs added, %lld already there, %lld metric points\n", nfiles - refused,
                nfiles, path, (long long)runs, (long long)skipped, (long long)points);
    rp_db_close(db);
    for (size_t k = 0; k < nfiles; k++) free(files[k]);
    free(files);
    if (st != RP_OK) return rp_cli_fail("merge", st);
    return refused ? 1 : 0;
}
