/* db_cli.c: helpers shared by the registry's CLI commands (see db_cli.h). */
#include "db/db_cli.h"
#include "cli/run_paths.h"
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sqlite3.h>
#include <unistd.h>

rp_status rp_cli_open_db(const char *explicit_path, rp_db **db, char *path_out, size_t n) {
    char path[4096];
    rp_default_db_path(explicit_path, path, sizeof path);
    if (path_out) snprintf(path_out, n, "%s", path);
    if (access(path, F_OK) != 0)
        return rp_fail(RP_ERR_NOTFOUND, "%s: no registry there (%s); run an experiment first (repro run SCRIPT) "
                       "or choose one with --db PATH / REPRO_DB", path, strerror(errno));
    return rp_db_open(path, db);
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

rp_status rp_db_latest_finished(rp_db *db, const char *experiment, int64_t *run_id) {
    sqlite3 *sq = rp_db_sqlite(db);
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(sq, "SELECT id FROM runs WHERE experiment = ? AND status = 'finished' ORDER BY id DESC LIMIT 1",
                                -1, &st, NULL);
    if (rc != SQLITE_OK) return rp_fail(RP_ERR_DB, "%s: %s", rp_db_path(db), sqlite3_errmsg(sq));
    sqlite3_bind_text(st, 1, experiment, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) *run_id = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    if (rc == SQLITE_ROW) return RP_OK;
    if (rc == SQLITE_DONE) return rp_fail(RP_ERR_NOTFOUND, "%s: no finished run of experiment '%s'", rp_db_path(db), experiment);
    return rp_fail(RP_ERR_DB, "%s: %s", rp_db_path(db), sqlite3_errmsg(sq));
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
