/* modules.c: registers every C binding module (collected by the build from RP_LUA_MODULE lines into
 * lua_modules.inc) in package.preload as "repro.<name>". */
#include "lua/host.h"
#include "lua_modules.inc"

void rp_lua_preload_modules(lua_State *L);

static void reg(lua_State *L, const char *name, lua_CFunction fn) {
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "preload");
    lua_pushcfunction(L, fn);
    lua_setfield(L, -2, name);
    lua_pop(L, 2);
}

/* Put every binding module into package.preload. */
void rp_lua_preload_modules(lua_State *L) {
#undef RP_LUA_MODULE
#define RP_LUA_MODULE(name, fn) reg(L, "repro." #name, fn)
#include "lua_modules.inc"
    (void)reg;
}
