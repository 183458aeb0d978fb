/* run_record.c: begin a run from a C command with the same provenance as `repro run` (run_record.h). */
#include "cli/run_record.h"
#include "cli/provenance.h"
#include "cli/run_paths.h"
#include "lua/compat.h"
#include "lua/state.h"

rp_status rp_run_record_begin(const char *db_path, const char *experiment, const char *paper,
                              const char *params_json, int64_t seed, rp_db **db, int64_t *run_id) {
    char path[4096];
    RP_TRY(rp_default_db_path(db_path, path, sizeof path));
    RP_TRY(rp_db_open(path, db));
    rp_provenance p;
    rp_provenance_collect(rp_project_root(), &p);
    rp_run_info info = {.experiment = experiment, .paper = paper, .params_json = params_json, .seed = seed};
    rp_provenance_apply(&p, &info);
    rp_status st = rp_db_run_begin(*db, &info, run_id);
    rp_provenance_free(&p);
    if (st != RP_OK) { rp_db_close(*db); *db = NULL; }
    return st;
}
