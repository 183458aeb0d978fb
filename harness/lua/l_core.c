/* l_core.c: require("repro.core"): the run-facing primitives behind repro.experiment's ctx object:
 * metrics, summaries, targets, figures and records go to the run's registry; outside a run
 * (`repro exec`) they are accepted and dropped, so scripts and tests can call them freely. */
#include "lua/host.h"
#include "lua/l_json.h"
#include "lua/run.h"
#include "lua/state.h"
#include "plot/plot.h"
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

RP_LUA_MODULE(core, rp_luaopen_core);

static rp_run *live_run(lua_State *L) {
    rp_run *r = rp_lua_current_run(L);
    return r && r->db ? r : NULL;
}

static int check(lua_State *L, rp_status st, const char *what) {
    if (st != RP_OK) return rp_lua_fail(L, st, what);
    return 0;
}

/* core.metric(name, step, value) */
static int l_metric(lua_State *L) {
    const char *name = luaL_checkstring(L, 1);
    double step = luaL_checknumber(L, 2), value = luaL_checknumber(L, 3);
    rp_run *r = live_run(L);
    if (r) check(L, rp_db_metric(r->db, r->id, name, step, value), "log metric");
    return 0;
}

/* core.summary(name, value, stderr|nil, n|nil, direction) */
static int l_summary(lua_State *L) {
    const char *name = luaL_checkstring(L, 1);
    double v = luaL_checknumber(L, 2);
    double se = luaL_optnumber(L, 3, NAN);
    long long n = rp_lua_optinteger(L, 4, 0);
    int dir = (int)rp_lua_optinteger(L, 5, 0);
    rp_run *r = live_run(L);
    if (r) check(L, rp_db_summary(r->db, r->id, name, v, se, n, dir), "log summary");
    return 0;
}

/* core.target(name, kind, paper, tolerance, reproduced, status, note) */
static int l_target(lua_State *L) {
    const char *name = luaL_checkstring(L, 1), *kind = luaL_checkstring(L, 2);
    double paper = luaL_optnumber(L, 3, NAN), tol = luaL_optnumber(L, 4, NAN), rep = luaL_optnumber(L, 5, NAN);
    const char *status = luaL_checkstring(L, 6), *note = luaL_optstring(L, 7, NULL);
    rp_run *r = live_run(L);
    if (r) check(L, rp_db_target(r->db, r->id, name, kind, paper, tol, rep, status, note), "record target");
    return 0;
}

/* core.figure(spec_table) -> rendered(bool), files(table of paths) */
static int l_figure(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_getfield(L, 1, "name");
    const char *name = lua_tostring(L, -1);
    if (!name) luaL_error(L, "figure: 'name' is required");
    lua_pop(L, 1);
    rp_buf spec = {0}, files = {0};
    if (rp_lua_encode_json(L, 1, &spec, 0) != RP_OK) { rp_buf_free(&spec); return rp_lua_fail(L, RP_ERR_INVAL, "figure spec"); }
    rp_run *r = live_run(L);
    int rendered = 0;
    if (r) {
        rp_status st = rp_plot_render(spec.data, r->figures_dir, &files, &rendered);
        if (st != RP_OK && st != RP_ERR_UNSUPPORTED && st != RP_ERR_NOTFOUND) {
            rp_buf_free(&spec); rp_buf_free(&files);
            return rp_lua_fail(L, st, "figure");
        }
        if (!rendered) {
            r->figures_unrendered++;
            fprintf(stderr, "repro: figure %s not rendered: %s\n", name, rp_errmsg());
        }
        st = rp_db_figure(r->db, r->id, name, spec.data, files.len ? files.data : "[]", rendered);
        rp_buf_free(&spec);
        if (st != RP_OK) { rp_buf_free(&files); return rp_lua_fail(L, st, "record figure"); }
    } else {
        rp_buf_free(&spec);
    }
    lua_pushboolean(L, rendered);
    rp_json *fj = NULL;
    if (files.len && rp_json_parse(files.data, files.len, &fj) == RP_OK) { rp_lua_push_json(L, fj); rp_json_free(fj); }
    else lua_newtable(L);
    rp_buf_free(&files);
    return 2;
}

/* core.record(kind, key, value) where value is a table (JSON-encoded) or a JSON string */
static int l_record(lua_State *L) {
    const char *kind = luaL_checkstring(L, 1), *key = luaL_checkstring(L, 2);
    rp_run *r = live_run(L);
    if (!r) return 0;
    rp_buf b = {0};
    if (lua_type(L, 3) == LUA_TSTRING) rp_buf_puts(&b, lua_tostring(L, 3));
    else rp_lua_encode_json(L, 3, &b, 0);
    rp_status st = rp_db_record(r->db, r->id, kind, key, b.data ? b.data : "null");
    rp_buf_free(&b);
    return check(L, st, "record");
}

/* core.memo_get(key) -> JSON text of the unit `key` finished by the run this one resumes, or nil */
static int l_memo_get(lua_State *L) {
    const char *key = luaL_checkstring(L, 1);
    rp_run *r = live_run(L);
    if (!r || !r->resume_from) { lua_pushnil(L); return 1; }
    rp_buf b = {0};
    rp_status st = rp_db_record_get(r->db, r->resume_from, "memo", key, &b);
    if (st == RP_ERR_NOTFOUND) { rp_buf_free(&b); lua_pushnil(L); return 1; }
    if (st != RP_OK) { rp_buf_free(&b); return rp_lua_fail(L, st, "memo"); }
    lua_pushlstring(L, b.data, b.len);
    rp_buf_free(&b);
    return 1;
}

/* core.resumed_from() -> the run id this run resumes (nil when it resumes none) */
static int l_resumed_from(lua_State *L) {
    rp_run *r = live_run(L);
    if (r && r->resume_from) lua_pushnumber(L, (lua_Number)r->resume_from); else lua_pushnil(L);
    return 1;
}

static int l_run_id(lua_State *L) {
    rp_run *r = live_run(L);
    if (r) lua_pushnumber(L, (lua_Number)r->id); else lua_pushnil(L);
    return 1;
}

static int l_seed(lua_State *L) {
    lua_pushnumber(L, (lua_Number)(rp_lua_seed(L, luaL_optstring(L, 1, "default")) >> 11));
    return 1;
}

/* core.now() -> monotonic wall-clock seconds (timings and progress rates; os.clock counts the CPU time of
 * every thread, os.time whole seconds) */
static int l_now(lua_State *L) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    lua_pushnumber(L, (lua_Number)ts.tv_sec + ts.tv_nsec * 1e-9);
    return 1;
}

static int l_interrupted(lua_State *L) { lua_pushboolean(L, rp_lua_interrupted()); return 1; }

int rp_luaopen_core(lua_State *L) {
    static const luaL_Reg fns[] = {
        {"metric", l_metric}, {"summary", l_summary}, {"target", l_target}, {"figure", l_figure},
        {"record", l_record}, {"run_id", l_run_id}, {"seed", l_seed}, {"interrupted", l_interrupted},
        {"memo_get", l_memo_get}, {"resumed_from", l_resumed_from}, {"now", l_now}, {NULL, NULL}};
    rp_lua_newlib(L, fns);
    return 1;
}
