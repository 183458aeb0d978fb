/* run_paths.c: default locations of the registry and figures (see run_paths.h). */
#include "cli/run_paths.h"
#include "lua/state.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void rp_default_db_path(const char *explicit_path, char *out, size_t n) {
    const char *env = getenv("REPRO_DB");
    if (explicit_path && *explicit_path) snprintf(out, n, "%s", explicit_path);
    else if (env && *env) snprintf(out, n, "%s", env);
    else snprintf(out, n, "%s/results/repro.db", rp_project_root());
}

void rp_figures_dir(const char *db_path, const char *experiment, int64_t run_id, char *out, size_t n) {
    const char *slash = strrchr(db_path, '/');
    int dirlen = slash ? (int)(slash - db_path) : 1;
    snprintf(out, n, "%.*s/figures/%s/run-%lld", dirlen, slash ? db_path : ".", experiment, (long long)run_id);
}
