/* l_json.h: Lua <-> JSON conversions for other bindings (figure specs, params, records). */
#ifndef RP_L_JSON_H
#define RP_L_JSON_H
#include "lua/compat.h"
#include "util/json.h"

/* Convert the Lua value at idx to a JSON DOM (raises on unencodable values). */
rp_json *rp_lua_to_json(lua_State *L, int idx, int depth);
/* Push a JSON DOM as a Lua value. */
void rp_lua_push_json(lua_State *L, const rp_json *j);
/* Encode the Lua value at idx as JSON text appended to out. */
rp_status rp_lua_encode_json(lua_State *L, int idx, rp_buf *out, int pretty);

#endif
