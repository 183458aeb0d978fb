/* l_serve.c: require("repro.serve"): an in-process `repro serve` (the OpenAI-compatible endpoint over a
 * local model, serve/serve.h) for scripts, so a demo needs no second terminal. It lives with the host
 * because plugins know the engine, not the host's server (the SAFE plugin's init.lua requires it).
 *   serve.start(model_path, {ctx=, max_tokens=, id=}) -> server with :url(), :requests(), :close()
 * The server is a full userdata; :close(), __gc and __close share one idempotent release. */
#include "lua/host.h"
#include "serve/serve.h"

RP_LUA_MODULE(serve, rp_luaopen_serve);

#define CLS_SERVER "repro.server"
static void release_server(void *p) { rp_serve_stop(p); }
static int server_url(lua_State *L) {
    rp_server *s = rp_lua_checkobj(L, 1, CLS_SERVER);
    lua_pushfstring(L, "http://127.0.0.1:%d/v1", rp_serve_port(s));
    return 1;
}
static int server_requests(lua_State *L) { lua_pushnumber(L, (double)rp_serve_requests(rp_lua_checkobj(L, 1, CLS_SERVER))); return 1; }
static int server_close(lua_State *L) { rp_lua_closeobj(L, 1, CLS_SERVER); return 0; }

/* serve.start(model_path, {ctx=, max_tokens=, id=}) -> server with :url(), :requests(), :close() */
static int l_start(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    rp_serve_opts o = {.host = "127.0.0.1", .port = 0};
    if (lua_istable(L, 2)) {
        static const char *const valid[] = {"ctx", "max_tokens", "id", NULL};
        rp_lua_check_keys(L, 2, "serve.start options", valid);
        o.n_ctx = (int)rp_lua_field_integer(L, 2, "ctx", 0);
        o.default_max_tokens = (int)rp_lua_field_integer(L, 2, "max_tokens", 0);
        o.model_id = rp_lua_field_string(L, 2, "id", NULL);
    }
    rp_server *s = NULL;
    rp_status st = rp_serve_start(path, &o, &s);
    if (st != RP_OK) return rp_lua_fail(L, st, "serve.start");
    static const luaL_Reg m[] = {{"url", server_url}, {"requests", server_requests}, {"close", server_close}, {NULL, NULL}};
    rp_lua_newobj(L, CLS_SERVER, s, m, release_server);
    return 1;
}

/* The module table. */
int rp_luaopen_serve(lua_State *L) {
    static const luaL_Reg fns[] = {{"start", l_start}, {NULL, NULL}};
    rp_lua_newlib(L, fns);
    return 1;
}
