/* run_paths.h: where the project, the registry and a run's figures live by default. */
#ifndef RP_RUN_PATHS_H
#define RP_RUN_PATHS_H
#include <stddef.h>
#include <stdint.h>
#include "util/err.h"

/* The project root: $REPRO_ROOT, else the folder above the running binary's bin/ (cached). */
const char *rp_project_root(void);

/* explicit if given, else $REPRO_DB, else <project root>/results/repro.db. An explicit empty path
 * (--db '') is RP_ERR_INVAL, never silently the default. */
rp_status rp_default_db_path(const char *explicit_path, char *out, size_t n);
/* <dir of db>/figures/<experiment>/run-<id>. */
void rp_figures_dir(const char *db_path, const char *experiment, int64_t run_id, char *out, size_t n);

#endif
