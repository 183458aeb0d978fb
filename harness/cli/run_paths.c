/* run_paths.c: default locations of the registry and figures (see run_paths.h). */
#include "cli/run_paths.h"
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *rp_project_root(void) {
    static char root[PATH_MAX];
    if (root[0]) return root;
    const char *env = getenv("REPRO_ROOT");
    if (env && *env) { snprintf(root, sizeof root, "%s", env); return root; }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = 0;
        char *s = strrchr(exe, '/');           /* .../bin/repro -> .../bin */
        if (s) { *s = 0; s = strrchr(exe, '/'); }
        if (s) { *s = 0; snprintf(root, sizeof root, "%s", exe); }
    }
    if (!root[0]) snprintf(root, sizeof root, ".");
    return root;
}

rp_status rp_default_db_path(const char *explicit_path, char *out, size_t n) {
    const char *env = getenv("REPRO_DB");
    if (explicit_path && !*explicit_path) {
        snprintf(out, n, "%s", "");
        return rp_fail(RP_ERR_INVAL, "--db '': the database path is empty (give a file, or leave --db out for "
                       "$REPRO_DB or results/repro.db)");
    }
    if (explicit_path) snprintf(out, n, "%s", explicit_path);
    else if (env && *env) snprintf(out, n, "%s", env);
    else snprintf(out, n, "%s/results/repro.db", rp_project_root());
    return RP_OK;
}

void rp_figures_dir(const char *db_path, const char *experiment, int64_t run_id, char *out, size_t n) {
    const char *slash = strrchr(db_path, '/');
    int dirlen = slash ? (int)(slash - db_path) : 1;
    snprintf(out, n, "%.*s/figures/%s/run-%lld", dirlen, slash ? db_path : ".", experiment, (long long)run_id);
}
