/* l_model.h: what other bindings may ask of repro.model objects (e.g. repro.eval scoring a model through
 * the C LM interface instead of the Lua table protocol). */
#ifndef RP_LUA_L_MODEL_H
#define RP_LUA_L_MODEL_H
#include "eval/lm.h"
#include "lua/host.h"

/* If the value at idx is a repro.model object (or the table its m:as_lm() returns), fill *out with the
 * model's rp_lm and return 1; else return 0. Raises if the model was closed. The rp_lm is valid while the
 * object is alive (keep it on the stack). */
int rp_lua_model_lm(lua_State *L, int idx, rp_lm *out);

#endif
