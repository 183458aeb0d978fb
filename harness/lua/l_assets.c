/* l_assets.c: require("repro.assets"): resolve named models and data sets to verified local paths
 * (fetching them when needed) and list the catalog. assets.fetch returns what was done (source, sha256
 * per file) so a run can record exactly which bytes it used. */
#include "assets/assets.h"
#include "lua/host.h"
#include "lua/l_json.h"

RP_LUA_MODULE(assets, rp_luaopen_assets);

/* assets.path(name [, file]) -> local path */
static int l_path(lua_State *L) {
    const char *name = luaL_checkstring(L, 1), *file = luaL_optstring(L, 2, NULL);
    char path[4096];
    rp_status st = rp_asset_path(name, file, path, sizeof path);
    if (st != RP_OK) return rp_lua_fail(L, st, "asset");
    lua_pushstring(L, path);
    return 1;
}

/* assets.fetch(name [, file]) -> {asset=, path=, files={{file=, path=, source=, size=, sha256=}, ...}} */
static int l_fetch(lua_State *L) {
    const char *name = luaL_checkstring(L, 1), *file = luaL_optstring(L, 2, NULL);
    rp_json *report = NULL;
    rp_status st = rp_asset_fetch(name, file, &report);
    if (st != RP_OK) return rp_lua_fail(L, st, "asset");
    rp_lua_push_json(L, report);
    rp_json_free(report);
    return 1;
}

/* assets.list() -> array of {name=, description=, files=, bytes=, local=} */
static int l_list(lua_State *L) {
    rp_json *list = NULL;
    rp_status st = rp_asset_list(&list);
    if (st != RP_OK) return rp_lua_fail(L, st, "asset list");
    rp_lua_push_json(L, list);
    rp_json_free(list);
    return 1;
}

int rp_luaopen_assets(lua_State *L) {
    static const luaL_Reg fns[] = {{"path", l_path}, {"fetch", l_fetch}, {"list", l_list}, {NULL, NULL}};
    rp_lua_newlib(L, fns);
    return 1;
}
