/* run_record.h: recording a run from a C command (repro eval, ...) with the same provenance as
 * `repro run`: git commit, dirty flag and diff hash, build, backend, device, environment (secrets masked). */
#ifndef RP_RUN_RECORD_H
#define RP_RUN_RECORD_H
#include <stdint.h>
#include "db/registry.h"

/* Open the registry (db_path NULL: $REPRO_DB or results/repro.db) and begin a run of `experiment` with
 * params (JSON object text) and seed; *db and *run_id are set. End it with rp_db_run_end, then rp_db_close. */
rp_status rp_run_record_begin(const char *db_path, const char *experiment, const char *paper,
                              const char *params_json, int64_t seed, rp_db **db, int64_t *run_id);

#endif
