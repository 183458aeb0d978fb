/* l_prune.c: require("repro.prune"): the prune plugin's C (prune.h) for Lua scripts. Layers are 0-based
 * everywhere, as m:skip_layers takes them; states are 0..L (x^(l) = input of block l).
 *   prune.stats(S, C)             -> st ("repro.prune.stats"): statistics over S = L+1 states of C dims
 *   st:add(h [, {all_tokens=}])   h: repro.tensor [S, C] (one token) or [S, T, C] (m:hidden_states)
 *   st:count()                    -> samples counted for d(l, n)
 *   st:distance(l, n)             -> mean d(l, n), its standard error
 *   st:matrix()                   -> {mean = {[l+1] = {[n] = d}}, stderr = {...}} for every valid (l, n)
 *   st:influence()                -> {BI_0, ..., BI_{L-1}} (ShortGPT, list index l+1)
 *   st:select("angular"|"influence", n) -> {layers}, l* (angular only)
 *   prune.select_heuristic(L, n)  -> {L-1-n .. L-2}
 *   prune.select_random(L, n, seed) -> {n distinct layers}
 *   prune.angular(a, b)           -> arccos(cos(a, b)) / pi of two tensors with the same element count
 *   prune.export(src, dst, {layers}) writes src without those layers as a GGUF file at dst
 * Errors name the function and the value that was wrong. */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "lua/host.h"
#include "lua/l_tensor.h"
#include "prune.h"

RP_LUA_MODULE(prune, rp_luaopen_prune);

#define STATS_CLASS "repro.prune.stats"

static void stats_release(void *p) { rp_prune_stats_free(p); }
static rp_prune_stats *check(lua_State *L) { return rp_lua_checkobj(L, 1, STATS_CLASS); }
static const luaL_Reg *stats_methods(void);

/* An f32 host tensor's elements (raises otherwise). */
static const float *tensor_f32(lua_State *L, int idx, const rp_tensor **out) {
    const rp_tensor *t = rp_lua_check_tensor(L, idx);
    if (t->dtype != RP_F32 || !t->storage->backend->ops->host_memory)
        luaL_error(L, "prune: argument %d must be an f32 tensor in host memory", idx);
    *out = t;
    return rp_tensor_data(t);
}

static int l_stats(lua_State *L) {
    long long S = rp_lua_checkinteger(L, 1), C = rp_lua_checkinteger(L, 2);
    rp_prune_stats *s;
    rp_status st = rp_prune_stats_new((int)(S > 1 << 20 ? -1 : S), (int)(C > 1 << 24 ? -1 : C), &s);
    if (st != RP_OK) return rp_lua_fail(L, st, "prune.stats");
    rp_lua_newobj(L, STATS_CLASS, s, stats_methods(), stats_release);
    return 1;
}

static int l_add(lua_State *L) {
    rp_prune_stats *s = check(L);
    const rp_tensor *t;
    const float *h = tensor_f32(L, 2, &t);
    int all = 0;
    if (lua_istable(L, 3)) {
        static const char *const keys[] = { "all_tokens", NULL };
        rp_lua_check_keys(L, 3, "stats:add", keys);
        all = rp_lua_field_bool(L, 3, "all_tokens", 0);
    }
    int S = rp_prune_stats_states(s);
    int64_t T = t->ndim == 3 ? t->shape[1] : 1, C = t->shape[t->ndim - 1];
    if ((t->ndim != 2 && t->ndim != 3) || t->shape[0] != S || C != rp_prune_stats_dim(s))
        return luaL_error(L, "stats:add: a states tensor of %d dims, %d rows of %d, expected [%d, %d] or [%d, T, %d]", t->ndim,
                          (int)t->shape[0], (int)C, S, rp_prune_stats_dim(s), S, rp_prune_stats_dim(s));
    rp_status st = rp_prune_stats_add(s, h, T, all);
    if (st != RP_OK) return rp_lua_fail(L, st, "stats:add");
    return 0;
}

static int l_count(lua_State *L) { lua_pushinteger(L, (lua_Integer)rp_prune_stats_count(check(L))); return 1; }

static int l_distance(lua_State *L) {
    rp_prune_stats *s = check(L);
    long long l = rp_lua_checkinteger(L, 2), n = rp_lua_checkinteger(L, 3);
    int Lr = rp_prune_stats_states(s) - 1;
    if (l < 0 || n < 1 || l + n > Lr) return luaL_error(L, "stats:distance: (l = %d, n = %d) outside 0 <= l, 1 <= n, l + n <= %d", (int)l, (int)n, Lr);
    double se, d = rp_prune_stats_distance(s, (int)l, (int)n, &se);
    lua_pushnumber(L, d);
    lua_pushnumber(L, se);
    return 2;
}

static int l_matrix(lua_State *L) {
    rp_prune_stats *s = check(L);
    int Lr = rp_prune_stats_states(s) - 1;
    lua_createtable(L, 0, 2);
    for (int pass = 0; pass < 2; pass++) {
        lua_createtable(L, Lr, 0);
        for (int l = 0; l < Lr; l++) {
            lua_createtable(L, Lr - l, 0);
            for (int n = 1; l + n <= Lr; n++) {
                double se, d = rp_prune_stats_distance(s, l, n, &se);
                lua_pushnumber(L, pass ? se : d);
                lua_rawseti(L, -2, n);
            }
            lua_rawseti(L, -2, l + 1);
        }
        lua_setfield(L, -2, pass ? "stderr" : "mean");
    }
    return 1;
}

static int l_influence(lua_State *L) {
    rp_prune_stats *s = check(L);
    int Lr = rp_prune_stats_states(s) - 1;
    lua_createtable(L, Lr, 0);
    for (int l = 0; l < Lr; l++) { lua_pushnumber(L, rp_prune_stats_influence(s, l)); lua_rawseti(L, -2, l + 1); }
    return 1;
}

static int push_layers(lua_State *L, const int *v, int n) {
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) { lua_pushinteger(L, v[i]); lua_rawseti(L, -2, i + 1); }
    return 1;
}

/* n checked against [0, max] before any buffer is sized from it. */
static int check_n(lua_State *L, int idx, int max, const char *what) {
    long long n = rp_lua_checkinteger(L, idx);
    if (n < 0 || n > max) luaL_error(L, "%s: n = %d outside [0, %d]", what, (int)(n > 1 << 30 ? 1 << 30 : n), max);
    return (int)n;
}

static int l_select(lua_State *L) {
    rp_prune_stats *s = check(L);
    const char *rule = luaL_checkstring(L, 2);
    int Lr = rp_prune_stats_states(s) - 1;
    int n = check_n(L, 3, Lr, "stats:select");
    int *v = lua_newuserdata(L, (size_t)(n ? n : 1) * sizeof *v);
    int l_star = -1;
    rp_status st;
    if (strcmp(rule, "angular") == 0) st = rp_prune_select_angular(s, n, &l_star, v);
    else if (strcmp(rule, "influence") == 0) st = rp_prune_select_influence(s, n, v);
    else return luaL_error(L, "stats:select: unknown rule '%s' (angular, influence)", rule);
    if (st != RP_OK) return rp_lua_fail(L, st, "stats:select");
    push_layers(L, v, n);
    if (l_star < 0) return 1;
    lua_pushinteger(L, l_star);
    return 2;
}

static int l_select_heuristic(lua_State *L) {
    long long Lr = rp_lua_checkinteger(L, 1);
    if (Lr < 1 || Lr > 1 << 20) return luaL_error(L, "prune.select_heuristic: L = %d out of range", (int)(Lr < 0 ? -1 : Lr > 1 << 20 ? -1 : Lr));
    int n = check_n(L, 2, (int)Lr - 1, "prune.select_heuristic");
    int *v = lua_newuserdata(L, (size_t)(n ? n : 1) * sizeof *v);
    rp_status st = rp_prune_select_heuristic((int)Lr, n, v);
    if (st != RP_OK) return rp_lua_fail(L, st, "prune.select_heuristic");
    return push_layers(L, v, n);
}

static int l_select_random(lua_State *L) {
    long long Lr = rp_lua_checkinteger(L, 1);
    if (Lr < 1 || Lr > 1 << 20) return luaL_error(L, "prune.select_random: L out of range");
    int n = check_n(L, 2, (int)Lr, "prune.select_random");
    long long seed = rp_lua_checkinteger(L, 3);
    int *v = lua_newuserdata(L, (size_t)(n ? n : 1) * sizeof *v);
    rp_status st = rp_prune_select_random((int)Lr, n, (uint64_t)seed, v);
    if (st != RP_OK) return rp_lua_fail(L, st, "prune.select_random");
    return push_layers(L, v, n);
}

static int l_angular(lua_State *L) {
    const rp_tensor *a, *b;
    const float *x = tensor_f32(L, 1, &a), *y = tensor_f32(L, 2, &b);
    int64_t n = rp_tensor_numel(a);
    if (n != rp_tensor_numel(b)) return luaL_error(L, "prune.angular: %d and %d elements", (int)n, (int)rp_tensor_numel(b));
    lua_pushnumber(L, rp_prune_angular(x, y, n));
    return 1;
}

static int l_export(lua_State *L) {
    const char *src = luaL_checkstring(L, 1), *dst = luaL_checkstring(L, 2);
    luaL_checktype(L, 3, LUA_TTABLE);
    rp_model_file *f;
    rp_status st = rp_model_file_open(src, &f);
    if (st != RP_OK) return rp_lua_fail(L, st, "prune.export");
    rp_llama_config cfg;
    st = rp_model_file_llama_config(f, &cfg);
    if (st != RP_OK) { rp_model_file_free(f); return rp_lua_fail(L, st, "prune.export"); }
    unsigned char *drop = calloc((size_t)cfg.n_layer, 1);
    if (!drop) { rp_model_file_free(f); return luaL_error(L, "prune.export: out of memory"); }
    int n = (int)rp_lua_rawlen(L, 3);
    for (int i = 0; i < n; i++) {
        lua_rawgeti(L, 3, i + 1);
        int isnum = lua_isnumber(L, -1);
        lua_Number v = lua_tonumber(L, -1);
        lua_pop(L, 1);
        if (!isnum || !(v >= 0 && v < cfg.n_layer) || v != (lua_Number)(int)v) {
            free(drop);
            rp_model_file_free(f);
            return luaL_error(L, "prune.export: layer %d of the list (%f) is not an integer in [0, %d)", i + 1, (double)v, cfg.n_layer);
        }
        drop[(int)v] = 1;
    }
    st = rp_prune_export(f, drop, cfg.n_layer, dst);
    free(drop);
    rp_model_file_free(f);
    if (st != RP_OK) return rp_lua_fail(L, st, "prune.export");
    return 0;
}


static const luaL_Reg *stats_methods(void) {
    static const luaL_Reg m[] = {
        { "add", l_add }, { "count", l_count }, { "distance", l_distance }, { "matrix", l_matrix },
        { "influence", l_influence }, { "select", l_select }, { NULL, NULL },
    };
    return m;
}

/* The module table. */
int rp_luaopen_prune(lua_State *L) {
    static const luaL_Reg fns[] = {
        { "stats", l_stats }, { "select_heuristic", l_select_heuristic }, { "select_random", l_select_random },
        { "angular", l_angular }, { "export", l_export }, { NULL, NULL },
    };
    rp_lua_newlib(L, fns);
    return 1;
}
