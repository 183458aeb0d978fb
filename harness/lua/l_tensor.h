/* l_tensor.h: what other bindings need to hand tensors to Lua as repro.tensor objects (l_tensor.c). */
#ifndef RP_LUA_L_TENSOR_H
#define RP_LUA_L_TENSOR_H
#include "lua/host.h"
#include "tensor/backend.h"
#include "tensor/tensor.h"

/* Push t as a repro.tensor; the Lua object owns the view (and its storage reference). */
void rp_lua_push_tensor(lua_State *L, rp_tensor *t);
/* Push a new zero f32 tensor of shape[0..ndim) on host memory and return it (raises on failure). */
rp_tensor *rp_lua_new_tensor(lua_State *L, int ndim, const int64_t *shape);
/* The repro.tensor at idx (raises when it is not one or was closed). */
rp_tensor *rp_lua_check_tensor(lua_State *L, int idx);

#endif
