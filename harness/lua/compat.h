/* compat.h: the one place that papers over Lua 5.4 vs LuaJIT 2.1 (Lua 5.1 API) differences.
 * Bindings include this (via host.h), never lua.h directly. */
#ifndef RP_LUA_COMPAT_H
#define RP_LUA_COMPAT_H
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

#if LUA_VERSION_NUM < 502
#define RP_LUA_51 1
#ifndef LUA_OK
#define LUA_OK 0
#endif
#define rp_lua_rawlen(L, i) lua_objlen((L), (i))
#define rp_lua_setfuncs(L, l) luaL_register((L), NULL, (l))
#define rp_lua_newlib(L, l) (lua_newtable(L), luaL_register((L), NULL, (l)))
#define rp_lua_isinteger_value(L, i) 0
#else
#define RP_LUA_51 0
#define rp_lua_rawlen(L, i) lua_rawlen((L), (i))
#define rp_lua_setfuncs(L, l) luaL_setfuncs((L), (l), 0)
#define rp_lua_newlib(L, l) luaL_newlib((L), (l))
#endif

#endif
