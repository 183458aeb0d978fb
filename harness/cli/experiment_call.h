/* experiment_call.h: the host's calls into an experiment script (shared by `repro run` and `repro sweep`):
 * loading the script's experiment.define{...} table and calling repro.experiment's entry points on it. */
#ifndef RP_EXPERIMENT_CALL_H
#define RP_EXPERIMENT_CALL_H
#include <stddef.h>
#include "lua/compat.h"

/* Run script and leave its experiment table on the stack; returns its index, or 0 with the reason in err. */
int rp_experiment_load(lua_State *L, const char *script, char *err, size_t errlen);
/* Call repro.experiment's fn(spec, <nargs values on the stack>) with a traceback handler; on LUA_OK the
 * arguments are replaced by nres results, else the error message is on the stack. */
int rp_experiment_call(lua_State *L, const char *fn, int spec_idx, int nargs, int nres);
/* The experiment's declared resources (threads >= 1, gpu >= 0, memory "" or like "4G", time_min 0 when
 * not declared), read from repro.experiment's _describe. */
typedef struct rp_resources { int threads, gpu, time_min; char memory[32]; } rp_resources;
/* Fill r from the spec at spec_idx, as declared for preset (NULL or "": the experiment's own values); returns 0
 * or non-zero with the error message on the stack. */
int rp_experiment_resources(lua_State *L, int spec_idx, const char *preset, rp_resources *r);

#endif
