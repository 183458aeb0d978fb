/* l_json.c: require("repro.json"): encode Lua values to JSON text and decode JSON text to Lua values,
 * over the core's JSON DOM (util/json.h). Arrays are tables with keys 1..n (an empty table encodes as
 * []), objects have string keys; json.null is a sentinel for null. NaN/Inf encode as null. */
#include "lua/host.h"
#include "lua/l_json.h"
#include "util/json.h"
#include <math.h>
#include <string.h>

RP_LUA_MODULE(json, rp_luaopen_json);

static const char NULL_KEY = 0;

static void push_null(lua_State *L) {
    lua_pushlightuserdata(L, (void *)&NULL_KEY);
    lua_rawget(L, LUA_REGISTRYINDEX);
}

static int is_array(lua_State *L, int idx, size_t *n) {
    size_t len = rp_lua_rawlen(L, idx), count = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TNUMBER) { lua_pop(L, 1); return 0; }
        count++;
    }
    *n = len;
    return count == len;
}

rp_json *rp_lua_to_json(lua_State *L, int idx, int depth) {
    if (idx < 0) idx = lua_gettop(L) + idx + 1;
    if (depth > 64) { luaL_error(L, "json.encode: nesting deeper than 64 (a cycle?)"); return NULL; }
    switch (lua_type(L, idx)) {
    case LUA_TNIL: return rp_json_new_null();
    case LUA_TBOOLEAN: return rp_json_new_bool(lua_toboolean(L, idx));
    case LUA_TNUMBER: return rp_json_new_number(lua_tonumber(L, idx));
    case LUA_TSTRING: { size_t n; const char *s = lua_tolstring(L, idx, &n); return rp_json_new_stringn(s, n); }
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, idx) == (void *)&NULL_KEY) return rp_json_new_null();
        break;
    case LUA_TTABLE: {
        size_t n;
        rp_json *out;
        if (is_array(L, idx, &n)) {
            out = rp_json_new_array();
            for (size_t i = 1; i <= n; i++) {
                lua_rawgeti(L, idx, (int)i);
                rp_json_push(out, rp_lua_to_json(L, -1, depth + 1));
                lua_pop(L, 1);
            }
        } else {
            /* Keys sorted, so equal tables always encode to equal text (params are grouped by it). */
            out = rp_json_new_object();
            lua_newtable(L);
            int keys = lua_gettop(L), nk = 0;
            lua_pushnil(L);
            while (lua_next(L, idx)) {
                lua_pop(L, 1);
                if (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER) {
                    rp_json_free(out);
                    luaL_error(L, "json.encode: table key of type %s", luaL_typename(L, -1));
                    return NULL;
                }
                lua_pushvalue(L, -1);
                if (lua_type(L, -1) == LUA_TNUMBER) {
                    char key[64];
                    snprintf(key, sizeof key, "%.17g", lua_tonumber(L, -1));
                    lua_pop(L, 1);
                    lua_pushstring(L, key);
                }
                lua_rawseti(L, keys, ++nk);
            }
            lua_getglobal(L, "table");
            lua_getfield(L, -1, "sort");
            lua_pushvalue(L, keys);
            lua_call(L, 1, 0);
            lua_pop(L, 1);
            for (int i = 1; i <= nk; i++) {
                lua_rawgeti(L, keys, i);
                const char *k = lua_tostring(L, -1);
                lua_pushvalue(L, -1);
                lua_rawget(L, idx);
                if (lua_isnil(L, -1)) {   /* a numeric key was stringified: look it up as a number */
                    lua_pop(L, 1);
                    lua_pushnumber(L, lua_tonumber(L, -1));
                    lua_rawget(L, idx);
                }
                rp_json_set(out, k, rp_lua_to_json(L, -1, depth + 1));
                lua_pop(L, 2);
            }
            lua_pop(L, 1);
        }
        return out;
    }
    default: break;
    }
    luaL_error(L, "json.encode: cannot encode a %s value", luaL_typename(L, idx));
    return NULL;
}

void rp_lua_push_json(lua_State *L, const rp_json *j) {
    luaL_checkstack(L, 4, "json.decode: too deep");
    switch (rp_json_typeof(j)) {
    case RP_JSON_NULL: push_null(L); break;
    case RP_JSON_BOOL: lua_pushboolean(L, rp_json_bool(j, 0)); break;
    case RP_JSON_NUMBER: {
        double v = rp_json_num(j, 0);
#if !RP_LUA_51
        if (v == floor(v) && fabs(v) < 9007199254740992.0) { lua_pushinteger(L, (lua_Integer)v); break; }
#endif
        lua_pushnumber(L, v);
        break;
    }
    case RP_JSON_STRING: { size_t n; const char *s = rp_json_strn(j, &n); lua_pushlstring(L, s, n); break; }
    case RP_JSON_ARRAY:
        lua_createtable(L, (int)rp_json_len(j), 0);
        for (size_t i = 0; i < rp_json_len(j); i++) { rp_lua_push_json(L, rp_json_at(j, i)); lua_rawseti(L, -2, (int)i + 1); }
        break;
    case RP_JSON_OBJECT:
        lua_createtable(L, 0, (int)rp_json_len(j));
        for (size_t i = 0; i < rp_json_len(j); i++) { rp_lua_push_json(L, rp_json_at(j, i)); lua_setfield(L, -2, rp_json_key_at(j, i)); }
        break;
    }
}

rp_status rp_lua_encode_json(lua_State *L, int idx, rp_buf *out, int pretty) {
    rp_json *j = rp_lua_to_json(L, idx, 0);
    rp_status st = rp_json_write(j, out, pretty);
    rp_json_free(j);
    return st;
}

static int l_encode(lua_State *L) {
    luaL_checkany(L, 1);
    rp_buf b = {0};
    rp_status st = rp_lua_encode_json(L, 1, &b, lua_toboolean(L, 2));
    if (st != RP_OK) { rp_buf_free(&b); return rp_lua_fail(L, st, "json.encode"); }
    lua_pushlstring(L, b.data, b.len);
    rp_buf_free(&b);
    return 1;
}

static int l_decode(lua_State *L) {
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    rp_json *j = NULL;
    rp_status st = rp_json_parse(s, n, &j);
    if (st != RP_OK) return rp_lua_fail(L, st, "json.decode");
    rp_lua_push_json(L, j);
    rp_json_free(j);
    return 1;
}

int rp_luaopen_json(lua_State *L) {
    static const luaL_Reg fns[] = {{"encode", l_encode}, {"decode", l_decode}, {NULL, NULL}};
    rp_lua_newlib(L, fns);
    lua_pushlightuserdata(L, (void *)&NULL_KEY);
    lua_pushlightuserdata(L, (void *)&NULL_KEY);
    lua_rawset(L, LUA_REGISTRYINDEX);
    push_null(L);
    lua_setfield(L, -2, "null");
    return 1;
}
