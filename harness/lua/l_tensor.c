/* l_tensor.c: require("repro.tensor"): the engine's tensor (tensor/tensor.h) as a Lua object, so scripts
 * hold hidden states and logits without building nested tables.
 *   tensor.new{d1, d2, ...}        -> zero f32 tensor            tensor.from(nested table) -> f32 tensor
 *   t:dtype() -> "f32"   t:shape() -> {d1, ...}   t:dim()   t:numel()   #t -> d1
 *   t:get(i, j, ...)  t:set(i, j, ..., v)   (1-based, one index per dimension)
 *   t:row(i) -> view of index i of the first dimension   t:narrow(first, last) -> rows first..last (views)
 *   t:totable() -> nested tables
 *   t:dot(u)  t:norm()  t:cosine(u)  t:mean()  t:argmax() (1-based index into the flattened tensor)
 *   t:ffi() (LuaJIT) -> cdata float* on the elements (0-based), keeping them alive while it is referenced
 *   t:close() (also __gc / __close)
 * Invariants: a Lua tensor is a heap view holding one reference on its storage; views share storage and
 * stay valid after the tensor they came from is closed; element access reads the bytes directly only on
 * host-memory backends (every tensor made here lives on one); views are always contiguous. Integer
 * arguments reject fractions on both runtimes; use after close raises. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "lua/host.h"
#include "lua/l_tensor.h"

RP_LUA_MODULE(tensor, rp_luaopen_tensor);

#define CLS "repro.tensor"

static void release(void *p) { rp_tensor_free(p); }

/* luaL_error with the full printf format (lua_pushfstring knows no %lld). */
static int terr(lua_State *L, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int terr(lua_State *L, const char *fmt, ...) {
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    luaL_where(L, 1);
    lua_pushstring(L, msg);
    lua_concat(L, 2);
    return lua_error(L);
}
static const luaL_Reg *methods(void);

static void setup_class(lua_State *L);

/* Push t as a repro.tensor (the object owns the view). */
void rp_lua_push_tensor(lua_State *L, rp_tensor *t) {
    rp_lua_newobj(L, CLS, t, methods(), release);
    lua_getmetatable(L, -1);
    lua_getfield(L, -1, "__len");
    int ready = !lua_isnil(L, -1);
    lua_pop(L, 1);
    if (!ready) setup_class(L);
    lua_pop(L, 1);
}

/* A host-memory f32 tensor of the given shape (zeros), pushed. */
rp_tensor *rp_lua_new_tensor(lua_State *L, int ndim, const int64_t *shape) {
    rp_tensor *t;
    rp_status st = rp_tensor_new(rp_backend_ref(), RP_F32, ndim, shape, &t);
    if (st != RP_OK) rp_lua_fail(L, st, "tensor");
    rp_lua_push_tensor(L, t);
    return t;
}

static rp_tensor *check(lua_State *L, int idx) {
    rp_tensor *t = rp_lua_checkobj(L, idx, CLS);
    return t;
}

/* The repro.tensor at idx, for other bindings. */
rp_tensor *rp_lua_check_tensor(lua_State *L, int idx) { return check(L, idx); }

/* The elements of an f32 tensor on host memory. */
static float *elems(lua_State *L, const rp_tensor *t) {
    if (t->dtype != RP_F32) terr(L, "tensor: dtype %s (element access needs f32)", rp_dtype_name(t->dtype));
    if (!t->storage->backend->ops->host_memory)
        terr(L, "tensor: on backend %s (copy it to the host first)", t->storage->backend->name);
    return rp_tensor_data(t);
}

static int l_dtype(lua_State *L) { lua_pushstring(L, rp_dtype_name(check(L, 1)->dtype)); return 1; }
static int l_dim(lua_State *L) { lua_pushinteger(L, check(L, 1)->ndim); return 1; }
static int l_numel(lua_State *L) { lua_pushnumber(L, (lua_Number)rp_tensor_numel(check(L, 1))); return 1; }
static int l_len(lua_State *L) { lua_pushinteger(L, (lua_Integer)check(L, 1)->shape[0]); return 1; }

static int l_shape(lua_State *L) {
    rp_tensor *t = check(L, 1);
    lua_createtable(L, t->ndim, 0);
    for (int i = 0; i < t->ndim; i++) { lua_pushnumber(L, (lua_Number)t->shape[i]); lua_rawseti(L, -2, i + 1); }
    return 1;
}

/* The flat offset of the 1-based indices at stack positions first .. first+ndim-1. */
static int64_t flat_index(lua_State *L, const rp_tensor *t, int first, const char *what) {
    int64_t off = 0;
    for (int d = 0; d < t->ndim; d++) {
        long long i = rp_lua_checkinteger(L, first + d);
        if (i < 1 || i > t->shape[d])
            terr(L, "tensor:%s: index %d is %lld, outside 1..%lld", what, d + 1, i, (long long)t->shape[d]);
        off = off * t->shape[d] + (i - 1);
    }
    return off;
}

static int l_get(lua_State *L) {
    rp_tensor *t = check(L, 1);
    if (lua_gettop(L) != 1 + t->ndim) return terr(L, "tensor:get: %d indices for a %d-dimensional tensor", lua_gettop(L) - 1, t->ndim);
    lua_pushnumber(L, elems(L, t)[flat_index(L, t, 2, "get")]);
    return 1;
}

static int l_set(lua_State *L) {
    rp_tensor *t = check(L, 1);
    if (lua_gettop(L) != 2 + t->ndim) return terr(L, "tensor:set: %d indices and a value expected", t->ndim);
    float v = (float)luaL_checknumber(L, 2 + t->ndim);
    elems(L, t)[flat_index(L, t, 2, "set")] = v;
    return 0;
}

static int l_row(lua_State *L) {
    rp_tensor *t = check(L, 1);
    long long i = rp_lua_checkinteger(L, 2);
    if (t->ndim < 2) return terr(L, "tensor:row: a 1-dimensional tensor has no rows (use get)");
    if (i < 1 || i > t->shape[0]) return terr(L, "tensor:row: %lld outside 1..%lld", i, (long long)t->shape[0]);
    rp_tensor *v;
    rp_status st = rp_tensor_select(t, i - 1, &v);
    if (st != RP_OK) return rp_lua_fail(L, st, "tensor:row");
    rp_lua_push_tensor(L, v);
    return 1;
}

static int l_narrow(lua_State *L) {
    rp_tensor *t = check(L, 1);
    long long a = rp_lua_checkinteger(L, 2), b = rp_lua_checkinteger(L, 3);
    if (a < 1 || b < a - 1 || b > t->shape[0])
        return terr(L, "tensor:narrow: rows %lld..%lld outside 1..%lld", a, b, (long long)t->shape[0]);
    rp_tensor *v;
    rp_status st = rp_tensor_narrow(t, a - 1, b, &v);
    if (st != RP_OK) return rp_lua_fail(L, st, "tensor:narrow");
    rp_lua_push_tensor(L, v);
    return 1;
}

static void push_nested(lua_State *L, const rp_tensor *t, const float *p, int d) {
    int64_t n = t->shape[d];
    lua_createtable(L, (int)n, 0);
    int64_t inner = 1;
    for (int k = d + 1; k < t->ndim; k++) inner *= t->shape[k];
    for (int64_t i = 0; i < n; i++) {
        if (d == t->ndim - 1) lua_pushnumber(L, p[i]);
        else push_nested(L, t, p + i * inner, d + 1);
        lua_rawseti(L, -2, (int)i + 1);
    }
}

static int l_totable(lua_State *L) {
    rp_tensor *t = check(L, 1);
    luaL_checkstack(L, t->ndim + 4, "tensor:totable");
    push_nested(L, t, elems(L, t), 0);
    return 1;
}

/* The shape of a nested table at idx (rectangular, numbers at the leaves). */
static int nested_shape(lua_State *L, int idx, int64_t *shape) {
    int nd = 0;
    lua_pushvalue(L, idx);
    while (lua_istable(L, -1)) {
        if (nd == RP_MAX_DIMS) terr(L, "tensor.from: more than %d levels of nesting", RP_MAX_DIMS);
        shape[nd++] = (int64_t)rp_lua_rawlen(L, -1);
        if (shape[nd - 1] == 0) terr(L, "tensor.from: an empty table at level %d", nd);
        lua_rawgeti(L, -1, 1);
        lua_remove(L, -2);
    }
    lua_pop(L, 1);
    if (nd == 0) terr(L, "tensor.from: a table of numbers (or of tables of numbers) expected");
    return nd;
}

static void fill_nested(lua_State *L, const int64_t *shape, int nd, int d, float *p, int64_t inner) {
    if ((int64_t)rp_lua_rawlen(L, -1) != shape[d] || !lua_istable(L, -1))
        terr(L, "tensor.from: level %d has %d entries where %lld were expected (tables must be rectangular)", d + 1,
                   (int)rp_lua_rawlen(L, -1), (long long)shape[d]);
    for (int64_t i = 0; i < shape[d]; i++) {
        lua_rawgeti(L, -1, (int)i + 1);
        if (d == nd - 1) {
            if (!lua_isnumber(L, -1)) terr(L, "tensor.from: entry %lld at level %d is a %s, not a number", (long long)i + 1, d + 1, luaL_typename(L, -1));
            p[i] = (float)lua_tonumber(L, -1);
        } else {
            if (!lua_istable(L, -1)) terr(L, "tensor.from: entry %lld at level %d is a %s, not a table", (long long)i + 1, d + 1, luaL_typename(L, -1));
            fill_nested(L, shape, nd, d + 1, p + i * inner, inner / shape[d + 1]);
        }
        lua_pop(L, 1);
    }
}

static int l_from(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    int64_t shape[RP_MAX_DIMS];
    int nd = nested_shape(L, 1, shape);
    rp_tensor *t = rp_lua_new_tensor(L, nd, shape);
    int64_t inner = rp_tensor_numel(t) / shape[0];
    lua_pushvalue(L, 1);
    luaL_checkstack(L, 2 * nd + 4, "tensor.from");
    fill_nested(L, shape, nd, 0, rp_tensor_data(t), inner);
    lua_pop(L, 1);
    return 1;
}

static int l_new(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    int nd = (int)rp_lua_rawlen(L, 1);
    if (nd < 1 || nd > RP_MAX_DIMS) return terr(L, "tensor.new: %d dimensions (1..%d)", nd, RP_MAX_DIMS);
    int64_t shape[RP_MAX_DIMS];
    for (int i = 0; i < nd; i++) {
        lua_rawgeti(L, 1, i + 1);
        long long n = rp_lua_checkinteger(L, -1);
        if (n < 1) return terr(L, "tensor.new: dimension %d is %lld", i + 1, n);
        shape[i] = n;
        lua_pop(L, 1);
    }
    rp_lua_new_tensor(L, nd, shape);
    return 1;
}

/* Two tensors of the same element count, for the reductions. */
static int64_t pair(lua_State *L, const float **a, const float **b, const char *what) {
    rp_tensor *x = check(L, 1), *y = check(L, 2);
    int64_t n = rp_tensor_numel(x);
    if (rp_tensor_numel(y) != n) return terr(L, "tensor:%s: %lld and %lld elements", what, (long long)n, (long long)rp_tensor_numel(y));
    *a = elems(L, x);
    *b = elems(L, y);
    return n;
}

static int l_dot(lua_State *L) {
    const float *a, *b;
    int64_t n = pair(L, &a, &b, "dot");
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    lua_pushnumber(L, s);
    return 1;
}

static int l_cosine(lua_State *L) {
    const float *a, *b;
    int64_t n = pair(L, &a, &b, "cosine");
    double ab = 0, aa = 0, bb = 0;
    for (int64_t i = 0; i < n; i++) { ab += (double)a[i] * b[i]; aa += (double)a[i] * a[i]; bb += (double)b[i] * b[i]; }
    lua_pushnumber(L, aa > 0 && bb > 0 ? ab / sqrt(aa * bb) : 0.0);
    return 1;
}

static int l_norm(lua_State *L) {
    rp_tensor *t = check(L, 1);
    const float *a = elems(L, t);
    double s = 0;
    for (int64_t i = 0, n = rp_tensor_numel(t); i < n; i++) s += (double)a[i] * a[i];
    lua_pushnumber(L, sqrt(s));
    return 1;
}

static int l_mean(lua_State *L) {
    rp_tensor *t = check(L, 1);
    const float *a = elems(L, t);
    int64_t n = rp_tensor_numel(t);
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += a[i];
    lua_pushnumber(L, n ? s / (double)n : 0.0);
    return 1;
}

static int l_argmax(lua_State *L) {
    rp_tensor *t = check(L, 1);
    const float *a = elems(L, t);
    int64_t n = rp_tensor_numel(t), best = 0;
    for (int64_t i = 1; i < n; i++) if (a[i] > a[best]) best = i;
    lua_pushnumber(L, (lua_Number)(best + 1));
    return 1;
}

/* For t:ffi(): the elements' address and a token holding one more storage reference (freed by unref). */
static int l_ffi_ref(lua_State *L) {
    rp_tensor *t = check(L, 1);
    float *p = elems(L, t);
    rp_tensor *keep;
    rp_status st = rp_tensor_narrow(t, 0, t->shape[0], &keep);
    if (st != RP_OK) return rp_lua_fail(L, st, "tensor:ffi");
    lua_pushlightuserdata(L, p);
    lua_pushlightuserdata(L, keep);
    return 2;
}

static int l_ffi_unref(lua_State *L) {
    rp_tensor_free(lua_touserdata(L, 1));
    return 0;
}

static const luaL_Reg *methods(void) {
    static const luaL_Reg m[] = {
        { "dtype", l_dtype }, { "shape", l_shape }, { "dim", l_dim }, { "numel", l_numel }, { "get", l_get },
        { "set", l_set }, { "row", l_row }, { "narrow", l_narrow }, { "totable", l_totable }, { "dot", l_dot },
        { "norm", l_norm }, { "cosine", l_cosine }, { "mean", l_mean }, { "argmax", l_argmax }, { NULL, NULL } };
    return m;
}

#if RP_LUA_51
/* LuaJIT: t:ffi() as a cast of the address, with a finalizer that drops the storage reference it took. */
static const char ffi_chunk[] =
    "local methods, ref, unref = ...\n"
    "local ok, ffi = pcall(require, 'ffi')\n"
    "if not ok then return end\n"
    "methods.ffi = function(t)\n"
    "  local p, token = ref(t)\n"
    "  return ffi.gc(ffi.cast('float *', p), function() unref(token) end)\n"
    "end\n";
#endif

/* Complete the class metatable (on top of the stack) once per Lua state: __len and, under LuaJIT, t:ffi(). */
static void setup_class(lua_State *L) {
    lua_pushcfunction(L, l_len);
    lua_setfield(L, -2, "__len");
#if RP_LUA_51
    if (luaL_loadbuffer(L, ffi_chunk, sizeof ffi_chunk - 1, "=repro.tensor.ffi") != 0) lua_error(L);
    lua_getfield(L, -2, "__index");
    lua_pushcfunction(L, l_ffi_ref);
    lua_pushcfunction(L, l_ffi_unref);
    lua_call(L, 3, 0);
#else
    (void)l_ffi_ref;
    (void)l_ffi_unref;
#endif
}

/* The module table. */
int rp_luaopen_tensor(lua_State *L) {
    static const luaL_Reg fns[] = { { "new", l_new }, { "from", l_from }, { NULL, NULL } };
    rp_lua_newlib(L, fns);
    return 1;
}
