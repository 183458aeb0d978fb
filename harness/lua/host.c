/* host.c: the helpers every C binding uses (host.h): objects as full userdata with one idempotent
 * release shared by close(), __gc and __close; strict integers; config-table key checks; errors from
 * rp_status. An object's userdata holds a pointer that becomes NULL once released. */
#include "lua/host.h"
#include <math.h>
#include <stdio.h>
#include <string.h>

typedef struct rp_lua_obj { void *ptr; void (*release)(void *); } rp_lua_obj;

static int obj_release(lua_State *L) {
    rp_lua_obj *o = lua_touserdata(L, 1);
    if (o && o->ptr) {
        void *p = o->ptr;
        o->ptr = NULL;
        if (o->release) o->release(p);
    }
    return 0;
}

static int obj_tostring(lua_State *L) {
    rp_lua_obj *o = lua_touserdata(L, 1);
    lua_getmetatable(L, 1);
    lua_getfield(L, -1, "__name");
    const char *cls = lua_tostring(L, -1);
    lua_pushfstring(L, "%s: %p%s", cls ? cls : "object", (void *)o, o && o->ptr ? "" : " (closed)");
    return 1;
}

void rp_lua_newobj(lua_State *L, const char *cls, void *ptr, const luaL_Reg *methods, void (*release)(void *)) {
    rp_lua_obj *o = lua_newuserdata(L, sizeof *o);
    o->ptr = ptr;
    o->release = release;
    if (luaL_newmetatable(L, cls)) {
        lua_pushstring(L, cls);
        lua_setfield(L, -2, "__name");
        lua_newtable(L);
        if (methods) rp_lua_setfuncs(L, methods);
        lua_pushcfunction(L, obj_release);
        lua_setfield(L, -2, "close");
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, obj_release);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, obj_release);
        lua_setfield(L, -2, "__close");
        lua_pushcfunction(L, obj_tostring);
        lua_setfield(L, -2, "__tostring");
    }
    lua_setmetatable(L, -2);
}

void *rp_lua_checkobj(lua_State *L, int idx, const char *cls) {
    rp_lua_obj *o = luaL_checkudata(L, idx, cls);
    if (!o->ptr) luaL_error(L, "%s used after close", cls);
    return o->ptr;
}

void rp_lua_closeobj(lua_State *L, int idx, const char *cls) {
    luaL_checkudata(L, idx, cls);
    lua_pushcfunction(L, obj_release);
    lua_pushvalue(L, idx < 0 ? idx - 1 : idx);
    lua_call(L, 1, 0);
}

long long rp_lua_checkinteger(lua_State *L, int idx) {
    lua_Number n = luaL_checknumber(L, idx);
#if !RP_LUA_51
    if (lua_isinteger(L, idx)) return (long long)lua_tointeger(L, idx);
#endif
    if (n != floor(n) || !(n >= -9007199254740992.0 && n <= 9007199254740992.0))
        luaL_argerror(L, idx, lua_pushfstring(L, "integer expected, got %f", n));
    return (long long)n;
}

long long rp_lua_optinteger(lua_State *L, int idx, long long def) {
    return lua_isnoneornil(L, idx) ? def : rp_lua_checkinteger(L, idx);
}

int rp_lua_fail(lua_State *L, rp_status st, const char *what) {
    return luaL_error(L, "%s: %s (%s)", what, rp_errmsg(), rp_status_name(st));
}

void rp_lua_check_keys(lua_State *L, int idx, const char *what, const char *const valid[]) {
    luaL_checktype(L, idx, LUA_TTABLE);
    if (idx < 0) idx = lua_gettop(L) + idx + 1;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        int ok = 0;
        if (lua_type(L, -1) == LUA_TSTRING) {
            const char *k = lua_tostring(L, -1);
            for (int i = 0; valid[i]; i++) if (strcmp(k, valid[i]) == 0) { ok = 1; break; }
        }
        if (!ok) {
            luaL_Buffer b;
            luaL_buffinit(L, &b);
            for (int i = 0; valid[i]; i++) { if (i) luaL_addstring(&b, ", "); luaL_addstring(&b, valid[i]); }
            luaL_pushresult(&b);
            const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : luaL_typename(L, -2);
            luaL_error(L, "%s: unknown option '%s' (valid: %s)", what, k, lua_tostring(L, -1));
        }
    }
}

#define FIELD_GET(L, idx, key) (lua_getfield((L), (idx), (key)), lua_isnil((L), -1))

double rp_lua_field_number(lua_State *L, int idx, const char *key, double def) {
    if (FIELD_GET(L, idx, key)) { lua_pop(L, 1); return def; }
    if (lua_type(L, -1) != LUA_TNUMBER) luaL_error(L, "option '%s': number expected, got %s", key, luaL_typename(L, -1));
    double v = lua_tonumber(L, -1);
    lua_pop(L, 1);
    return v;
}

long long rp_lua_field_integer(lua_State *L, int idx, const char *key, long long def) {
    if (FIELD_GET(L, idx, key)) { lua_pop(L, 1); return def; }
    if (lua_type(L, -1) != LUA_TNUMBER) luaL_error(L, "option '%s': integer expected, got %s", key, luaL_typename(L, -1));
    double v = lua_tonumber(L, -1);
    if (v != floor(v)) luaL_error(L, "option '%s': integer expected, got %f", key, v);
    lua_pop(L, 1);
    return (long long)v;
}

const char *rp_lua_field_string(lua_State *L, int idx, const char *key, const char *def) {
    if (FIELD_GET(L, idx, key)) { lua_pop(L, 1); return def; }
    if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "option '%s': string expected, got %s", key, luaL_typename(L, -1));
    const char *s = lua_tostring(L, -1);   /* stays alive: it is referenced by the table */
    lua_pop(L, 1);
    return s;
}

int rp_lua_field_bool(lua_State *L, int idx, const char *key, int def) {
    if (FIELD_GET(L, idx, key)) { lua_pop(L, 1); return def; }
    if (lua_type(L, -1) != LUA_TBOOLEAN) luaL_error(L, "option '%s': boolean expected, got %s", key, luaL_typename(L, -1));
    int v = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return v;
}
