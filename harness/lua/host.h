/* host.h: what C bindings need from the Lua host. Works on Lua 5.4 and LuaJIT 2.1 (compat.h).
 * A binding file harness/lua/l_<name>.c (or plugins/<p>/l_<name>.c) holds, at the start of a line:
 *     RP_LUA_MODULE(model, rp_luaopen_model);
 * and defines int rp_luaopen_model(lua_State *L) pushing the module table; scripts get it with
 * require("repro.model"). The build collects those lines, so no shared file is edited.
 * Rules (design.md §4): C objects are full userdata made with rp_lua_newobj, with __gc (and __close on
 * 5.4) calling one idempotent release; use after release raises; integer args reject fractions;
 * config tables reject unknown keys; only bindings raise Lua errors (rp_lua_fail). */
#ifndef RP_LUA_HOST_H
#define RP_LUA_HOST_H
#include "lua/compat.h"
#include "util/err.h"

#define RP_LUA_MODULE(name, fn) int fn(lua_State *L)

/* Push a new userdata holding ptr, with the class metatable `cls` (created on first use with `methods`
 * as __index and `release` as the idempotent destructor, called at most once). */
void rp_lua_newobj(lua_State *L, const char *cls, void *ptr, const luaL_Reg *methods, void (*release)(void *));
/* The live pointer of the object at idx of class cls; raises "cls used after close" when released. */
void *rp_lua_checkobj(lua_State *L, int idx, const char *cls);
/* Release the object at idx now (what obj:close() does). */
void rp_lua_closeobj(lua_State *L, int idx, const char *cls);
/* Integer argument that rejects fractions and out-of-range values on both runtimes. */
long long rp_lua_checkinteger(lua_State *L, int idx);
long long rp_lua_optinteger(lua_State *L, int idx, long long def);
/* Raise a Lua error from a C status: "<what>: <rp_errmsg()>". Never returns. */
int rp_lua_fail(lua_State *L, rp_status st, const char *what);
/* Check that table at idx has only keys from valid (NULL-terminated); raises listing the valid keys. */
void rp_lua_check_keys(lua_State *L, int idx, const char *what, const char *const valid[]);
/* Optional fields of a config table at idx. */
double rp_lua_field_number(lua_State *L, int idx, const char *key, double def);
long long rp_lua_field_integer(lua_State *L, int idx, const char *key, long long def);
const char *rp_lua_field_string(lua_State *L, int idx, const char *key, const char *def);
int rp_lua_field_bool(lua_State *L, int idx, const char *key, int def);

/* The run this Lua state is executing (NULL outside `repro run`); see run.h. */
struct rp_run;
struct rp_run *rp_lua_current_run(lua_State *L);
/* The run's seed-derived 64-bit seed for a named stream (stable across runtimes). */
unsigned long long rp_lua_seed(lua_State *L, const char *stream);

#endif
