/* experiment_call.c: loading an experiment script and calling repro.experiment on it (experiment_call.h).
 * Invariant: every call leaves the stack balanced as documented, whatever the script raises. */
#include "cli/experiment_call.h"
#include "lua/state.h"
#include <stdio.h>
#include <string.h>

int rp_experiment_load(lua_State *L, const char *script, char *err, size_t errlen) {
    if (rp_lua_dofile(L, script, 0, 1) != LUA_OK) {
        snprintf(err, errlen, "%s", lua_tostring(L, -1));
        lua_pop(L, 1);
        return 0;
    }
    if (!lua_istable(L, -1)) {
        snprintf(err, errlen, "%s must return experiment.define{...} (got %s)", script, luaL_typename(L, -1));
        lua_pop(L, 1);
        return 0;
    }
    return lua_gettop(L);
}

int rp_experiment_call(lua_State *L, const char *fn, int spec_idx, int nargs, int nres) {
    lua_getglobal(L, "require");
    lua_pushstring(L, "repro.experiment");
    lua_call(L, 1, 1);
    lua_getfield(L, -1, fn);
    lua_remove(L, -2);
    lua_pushvalue(L, spec_idx);
    for (int i = 0; i < nargs; i++) lua_pushvalue(L, -(nargs + 2));
    int st = rp_lua_pcall_tb(L, nargs + 1, nres);
    if (st == LUA_OK) {
        for (int i = 0; i < nres; i++) lua_insert(L, -(nres + nargs));  /* drop the argument copies */
        lua_pop(L, nargs);
    }
    return st;
}

/* An integer field of the table on top of the stack (dflt when absent). */
static int int_field(lua_State *L, const char *k, int dflt) {
    lua_getfield(L, -1, k);
    int v = lua_isnumber(L, -1) ? (int)lua_tointeger(L, -1) : dflt;
    lua_pop(L, 1);
    return v;
}

int rp_experiment_resources(lua_State *L, int spec_idx, const char *preset, rp_resources *r) {
    memset(r, 0, sizeof *r);
    r->threads = 1;
    if (preset && *preset) lua_pushstring(L, preset);
    else lua_pushnil(L);
    int st = rp_experiment_call(L, "_describe", spec_idx, 1, 1);
    if (st != LUA_OK) return st;
    lua_getfield(L, -1, "resources");
    if (lua_istable(L, -1)) {
        r->threads = int_field(L, "threads", 1);
        r->gpu = int_field(L, "gpu", 0);
        r->time_min = int_field(L, "time_min", 0);
        lua_getfield(L, -1, "memory");
        if (lua_isstring(L, -1)) snprintf(r->memory, sizeof r->memory, "%s", lua_tostring(L, -1));
        lua_pop(L, 1);
    }
    lua_pop(L, 2);
    return LUA_OK;
}
