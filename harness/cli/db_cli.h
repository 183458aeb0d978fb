/* db_cli.h: what the registry's commands (runs, show, plot, report, compare) share: choosing and opening
 * the database (--db PATH, else $REPRO_DB, else results/repro.db), reporting a failed status as
 * "repro CMD: message" with the status's exit code, and small table helpers over query JSON. */
#ifndef RP_DB_CLI_H
#define RP_DB_CLI_H
#include <stdint.h>
#include <stdio.h>
#include "db/registry.h"
#include "util/json.h"

/* Open the registry at explicit_path (or the default) for reading commands: a missing file is
 * RP_ERR_NOTFOUND rather than a new empty database, an empty explicit path or a directory RP_ERR_INVAL;
 * a file or folder we cannot write is opened read-only. path_out (may be NULL) receives the path. */
rp_status rp_cli_open_db(const char *explicit_path, rp_db **db, char *path_out, size_t n);
/* Print "repro CMD: <rp_errmsg()>" to stderr and return the exit code of st. */
int rp_cli_fail(const char *cmd, rp_status st);
/* Print a usage error "repro CMD: msg" (+ "see repro CMD --help") and return 2. */
int rp_cli_usage(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Report an argument the command's parser did not take, and return 2: "option '--out' needs a value"
 * when arg is one of the space-separated valued options (it came last), "unknown option" for other
 * dashed words, else "unexpected argument". */
int rp_cli_bad_arg(const char *cmd, const char *arg, const char *valued);
/* Parse a run id ("12" or "#12"); returns 0 when s is not a positive integer. */
int rp_cli_parse_run_id(const char *s, int64_t *id);
/* A value of a query row as display text: strings as is, numbers %.6g (integers exact), null "-". */
void rp_cli_cell(const rp_json *v, char *out, size_t n);
/* Print a JSON value (pretty) followed by a newline; a value the writer refuses prints nothing. */
rp_status rp_cli_print_json(const rp_json *j);

#endif
