/* run.h: the run a Lua state executes under `repro run`: registry handle, run id, seed, where figures go.
 * Owned by the command that created it; the Lua state only borrows it. */
#ifndef RP_LUA_RUN_H
#define RP_LUA_RUN_H
#include <stdint.h>
#include "db/registry.h"

typedef struct rp_run {
    rp_db *db;              /* NULL under `repro exec` (no run is recorded) */
    int64_t id;
    uint64_t seed;
    char experiment[128];
    char figures_dir[1024]; /* results/figures/<experiment>/run-<id> */
    int figures_unrendered; /* count of figures gnuplot could not render */
    int64_t resume_from;    /* `repro run --resume`: the earlier run whose memo units are reused (0: none) */
} rp_run;

#endif
