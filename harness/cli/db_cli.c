/* db_cli.c: helpers shared by the registry's CLI commands (see db_cli.h). No SQL here: the registry's
 * functions (db/registry.h) do the reading and writing. */
#include "cli/db_cli.h"
#include "cli/run_paths.h"
#include <errno.h>
#include <libgen.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

rp_status rp_cli_open_db(const char *explicit_path, rp_db **db, char *path_out, size_t n) {
    char path[4096];
    *db = NULL;
    rp_status ps = rp_default_db_path(explicit_path, path, sizeof path);
    if (path_out) snprintf(path_out, n, "%s", path);
    if (ps != RP_OK) return ps;
    struct stat sb;
    if (stat(path, &sb) != 0)
        return rp_fail(RP_ERR_NOTFOUND, "%s: no registry there (%s); run an experiment first (repro run SCRIPT) "
                       "or choose one with --db PATH / REPRO_DB", path, strerror(errno));
    if (S_ISDIR(sb.st_mode))
        return rp_fail(RP_ERR_INVAL, "%s is a directory, not a registry file (--db takes the database file, e.g. "
                       "results/repro.db)", path);
    /* Reading needs no write: a file or folder we cannot write is opened read-only. */
    char *tmp = strdup(path);
    int writable = tmp && access(path, W_OK) == 0 && access(dirname(tmp), W_OK) == 0;
    free(tmp);
    return writable ? rp_db_open(path, db) : rp_db_open_readonly(path, db);
}

int rp_cli_fail(const char *cmd, rp_status st) {
    fprintf(stderr, "repro %s: %s\n", cmd, rp_errmsg());
    return rp_status_exit_code(st);
}

int rp_cli_usage(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "repro %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n(see repro %s --help)\n", cmd);
    va_end(ap);
    return 2;
}

int rp_cli_bad_arg(const char *cmd, const char *arg, const char *valued) {
    size_t n = strlen(arg);
    for (const char *p = valued ? strstr(valued, arg) : NULL; n && p; p = strstr(p + 1, arg))
        if ((p == valued || p[-1] == ' ') && (p[n] == ' ' || p[n] == 0))
            return rp_cli_usage(cmd, "option '%s' needs a value", arg);
    if (arg[0] == '-' && arg[1]) return rp_cli_usage(cmd, "unknown option '%s'", arg);
    return rp_cli_usage(cmd, "unexpected argument '%s'", arg);
}

int rp_cli_parse_run_id(const char *s, int64_t *id) {
    if (*s == '#') s++;
    if (!*s) return 0;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (*end || errno || v <= 0) return 0;
    *id = v;
    return 1;
}

void rp_cli_cell(const rp_json *v, char *out, size_t n) {
    switch (rp_json_typeof(v)) {
    case RP_JSON_STRING: snprintf(out, n, "%s", rp_json_str(v, "")); break;
    case RP_JSON_NUMBER: {
        double d = rp_json_num(v, NAN);
        if (d == floor(d) && fabs(d) < 1e15) snprintf(out, n, "%.0f", d);
        else snprintf(out, n, "%.6g", d);
        break;
    }
    case RP_JSON_BOOL: snprintf(out, n, "%s", rp_json_bool(v, 0) ? "true" : "false"); break;
    case RP_JSON_NULL: snprintf(out, n, "-"); break;
    default: {
        rp_buf b = { 0 };
        rp_json_write(v, &b, 0);
        snprintf(out, n, "%s", b.data ? b.data : "");
        rp_buf_free(&b);
    }
    }
}

rp_status rp_cli_print_json(const rp_json *j) {
    rp_buf b = { 0 };
    rp_status st = rp_json_write(j, &b, 1);
    if (st == RP_OK) printf("%s\n", b.data);
    rp_buf_free(&b);
    return st;
}
