/* state.c: the Lua state of a script: libraries, module paths, the run pointer in the registry, the
 * seeded math.random, a traceback handler for errors, and interruption by SIGINT/SIGTERM through a
 * count hook (as lua.c does), so a killed run unwinds through Lua and is recorded as killed; under a run,
 * a count hook also writes metric points buffered for about a second (rp_db_flush_due). */
#include "lua/state.h"
#include "lua/host.h"
#include "lua/random.h"
#include "net/http.h"
#include "util/interrupt.h"
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void rp_lua_preload_modules(lua_State *L);

static const char RUN_KEY = 0, SEED_KEY = 0;
static lua_State *volatile active_L;

/* Instructions between two calls of flush_hook: often enough to write a run's buffered metric points
 * within about a second of logging while the script computes without logging, rare enough to cost nothing. */
#define FLUSH_HOOK_COUNT 1000000

/* Count hook of a run's state: write metric points that have waited long enough (see rp_db_flush_due), so
 * a SIGKILL loses at most the last second of them. A failure surfaces at the next metric or the run's end.
 * LuaJIT runs no hook inside compiled traces: there, points logged just before a long compiled stretch
 * that logs nothing wait for the next rp_db_metric call (or the run's end). */
static void flush_hook(lua_State *L, lua_Debug *ar) {
    (void)ar;
    rp_run *r = rp_lua_current_run(L);
    if (r && r->db) (void)rp_db_flush_due(r->db);
}

static void stop_hook(lua_State *L, lua_Debug *ar) {
    (void)ar;
    lua_sethook(L, NULL, 0, 0);
    luaL_error(L, "interrupted");
}

void rp_lua_request_interrupt(void) {
    rp_interrupt_request();   /* C loops (evaluation, pipelines) poll this flag */
    lua_State *L = active_L;
    if (L) lua_sethook(L, stop_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
}

int rp_lua_interrupted(void) { return rp_interrupt_pending(); }

struct rp_run *rp_lua_current_run(lua_State *L) {
    lua_pushlightuserdata(L, (void *)&RUN_KEY);
    lua_rawget(L, LUA_REGISTRYINDEX);
    struct rp_run *r = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return r;
}

unsigned long long rp_lua_seed(lua_State *L, const char *stream) {
    lua_pushlightuserdata(L, (void *)&SEED_KEY);
    lua_rawget(L, LUA_REGISTRYINDEX);
    uint64_t seed = (uint64_t)lua_tonumber(L, -1);
    lua_pop(L, 1);
    return rp_seed_stream(seed, stream);
}

lua_State *rp_lua_state_new(const char *root, rp_run *run, uint64_t seed) {
    lua_State *L = luaL_newstate();
    if (!L) return NULL;
    luaL_openlibs(L);
    rp_lua_preload_modules(L);
    lua_getglobal(L, "package");
    lua_pushfstring(L, "%s/harness/lua/?.lua;%s/plugins/?/init.lua;%s/?.lua;", root, root, root);
    lua_getfield(L, -2, "path");
    lua_concat(L, 2);
    lua_setfield(L, -2, "path");
    lua_pop(L, 1);
    lua_pushlightuserdata(L, (void *)&RUN_KEY);
    lua_pushlightuserdata(L, run);
    lua_rawset(L, LUA_REGISTRYINDEX);
    lua_pushlightuserdata(L, (void *)&SEED_KEY);
    lua_pushnumber(L, (lua_Number)seed);
    lua_rawset(L, LUA_REGISTRYINDEX);
    rp_lua_install_random(L, seed);
    lua_pushstring(L, root);
    lua_setglobal(L, "REPRO_ROOT");
    active_L = L;
    if (run) lua_sethook(L, flush_hook, LUA_MASKCOUNT, FLUSH_HOOK_COUNT);
    rp_http_set_interrupt_check(rp_lua_interrupted);   /* SIGINT abandons HTTP calls in flight too */
    return L;
}

static int traceback(lua_State *L) {
    const char *msg = lua_tostring(L, 1);
    if (!msg) msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
#if RP_LUA_51
    lua_getglobal(L, "debug");
    lua_getfield(L, -1, "traceback");
    lua_pushstring(L, msg);
    lua_pushinteger(L, 2);
    lua_call(L, 2, 1);
#else
    luaL_traceback(L, L, msg, 1);
#endif
    return 1;
}

int rp_lua_pcall_tb(lua_State *L, int nargs, int nresults) {
    int base = lua_gettop(L) - nargs;
    lua_pushcfunction(L, traceback);
    lua_insert(L, base);
    int st = lua_pcall(L, nargs, nresults, base);
    lua_remove(L, base);
    return st;
}

int rp_lua_dofile(lua_State *L, const char *path, int nargs, int nresults) {
    if (access(path, R_OK) != 0) {
        lua_pushfstring(L, "cannot open script %s: no such readable file", path);
        return LUA_ERRFILE;
    }
    int st = luaL_loadfile(L, path);
    if (st != 0) return st;   /* the message holds file:line of a syntax error */
    if (nargs) lua_insert(L, -(nargs + 1));
    return rp_lua_pcall_tb(L, nargs, nresults);
}
