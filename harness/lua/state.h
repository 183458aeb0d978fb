/* state.h: creating the Lua state every script runs in: standard libraries, the repro modules as
 * require("repro.<name>"), package.path over the project's Lua code and plugins, and math.random
 * replaced by the run's seeded generator (identical sequences on Lua 5.4 and LuaJIT). */
#ifndef RP_LUA_STATE_H
#define RP_LUA_STATE_H
#include <stdint.h>
#include "lua/compat.h"
#include "lua/run.h"

/* New state for the project at root (the checkout holding harness/ and plugins/); run may be NULL. */
lua_State *rp_lua_state_new(const char *root, rp_run *run, uint64_t seed);
/* Load and call a script file with a traceback handler; returns 0 or non-zero with the message
 * (file:line and traceback) pushed. nresults as in lua_pcall. */
int rp_lua_dofile(lua_State *L, const char *path, int nargs, int nresults);
/* Call the function below nargs arguments with a traceback handler (like lua_pcall). */
int rp_lua_pcall_tb(lua_State *L, int nargs, int nresults);
/* Ask running Lua code to stop (from a signal handler: async-signal-safe). */
void rp_lua_request_interrupt(void);
/* Whether an interrupt was requested. */
int rp_lua_interrupted(void);

#endif
