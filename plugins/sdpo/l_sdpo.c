/* l_sdpo.c: require("repro.sdpo"): the sDPO plugin's C for Lua scripts (plugins/sdpo/sdpo.h).
 *   sdpo.dpo_loss(logp, ref_logp, beta) -> loss, {dloss/dlogp}, {loss=, reward_chosen=, reward_rejected=,
 *                                          accuracy=, margin=, gamma_policy=, gamma_ref=}
 *       (logp, ref_logp: 2P numbers, chosen then rejected per pair: the trainer's loss-hook layout)
 *   sdpo.softplus_neg(z)                -> −log σ(z)
 *   sdpo.load_pairs(path, format)       -> {{messages={{role=, content=}...}, chosen=, rejected=, score=, record=}...}
 *   sdpo.parse_pairs(text, format, name) -> the same from a string (name is used in errors)
 *       format: "ultrafeedback" | "orca" | "hh"
 *   sdpo.cache_key{{tag, bytes}, ...}   -> 64-hex key over tagged parts
 *   sdpo.cache_write(path, key, {values})
 *   sdpo.cache_read(path, key, n)       -> {values} | nil, "missing"|"stale"|"damaged", message
 *   sdpo.file_digest(path)              -> sha256 hex of a file
 *   sdpo.mkdirs(path)                   a folder and its parents (the cache folder before a file is written)
 * Errors from the C core are raised naming the function, the file, the record and the field. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "lua/host.h"
#include "util/buf.h"
#include "plugins/sdpo/sdpo.h"

RP_LUA_MODULE(sdpo, rp_luaopen_sdpo);

/* A list of n numbers at idx into a new buffer on the Lua stack (as userdata, freed by the GC). */
static double *read_numbers(lua_State *L, int idx, const char *what, size_t *n) {
    luaL_checktype(L, idx, LUA_TTABLE);
    *n = rp_lua_rawlen(L, idx);
    double *v = lua_newuserdata(L, (*n ? *n : 1) * sizeof *v);
    for (size_t i = 0; i < *n; i++) {
        lua_rawgeti(L, idx, (int)i + 1);
        if (lua_type(L, -1) != LUA_TNUMBER) luaL_error(L, "%s: entry %d is not a number", what, (int)i + 1);
        v[i] = lua_tonumber(L, -1);
        lua_pop(L, 1);
    }
    return v;
}

static void set_num(lua_State *L, const char *k, double v) { lua_pushnumber(L, v); lua_setfield(L, -2, k); }

/* sdpo.dpo_loss(logp, ref_logp, beta) -> loss, grad, stats */
static int l_dpo_loss(lua_State *L) {
    size_t n, nr;
    double *lp = read_numbers(L, 1, "sdpo.dpo_loss: logp", &n);
    double *rl = read_numbers(L, 2, "sdpo.dpo_loss: ref_logp", &nr);
    double beta = luaL_checknumber(L, 3);
    if (n != nr || n % 2 || n == 0)
        return luaL_error(L, "sdpo.dpo_loss: logp has %d entries and ref_logp %d; need the same even number > 0", (int)n, (int)nr);
    double *g = lua_newuserdata(L, n * sizeof *g);
    rp_dpo_stats s;
    rp_status st = rp_dpo_loss(lp, rl, (int)(n / 2), beta, &s, g);
    if (st != RP_OK) return rp_lua_fail(L, st, "sdpo.dpo_loss");
    lua_pushnumber(L, s.loss);
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) { lua_pushnumber(L, g[i]); lua_rawseti(L, -2, (int)i + 1); }
    lua_createtable(L, 0, 7);
    set_num(L, "loss", s.loss); set_num(L, "reward_chosen", s.reward_chosen); set_num(L, "reward_rejected", s.reward_rejected);
    set_num(L, "accuracy", s.accuracy); set_num(L, "margin", s.margin); set_num(L, "gamma_policy", s.gamma_policy);
    set_num(L, "gamma_ref", s.gamma_ref);
    return 3;
}

static int l_softplus_neg(lua_State *L) { lua_pushnumber(L, rp_dpo_softplus_neg(luaL_checknumber(L, 1))); return 1; }

static void push_set(lua_State *L, const rp_pref_set *set) {
    lua_createtable(L, (int)set->n, 0);
    for (size_t i = 0; i < set->n; i++) {
        const rp_pref_pair *p = &set->pairs[i];
        lua_createtable(L, 0, 5);
        lua_createtable(L, p->n_msgs, 0);
        for (int k = 0; k < p->n_msgs; k++) {
            lua_createtable(L, 0, 2);
            lua_pushstring(L, p->msgs[k].role); lua_setfield(L, -2, "role");
            lua_pushstring(L, p->msgs[k].content); lua_setfield(L, -2, "content");
            lua_rawseti(L, -2, k + 1);
        }
        lua_setfield(L, -2, "messages");
        lua_pushstring(L, p->chosen); lua_setfield(L, -2, "chosen");
        lua_pushstring(L, p->rejected); lua_setfield(L, -2, "rejected");
        if (!isnan(p->score)) set_num(L, "score", p->score);
        lua_pushinteger(L, (lua_Integer)p->record); lua_setfield(L, -2, "record");
        lua_rawseti(L, -2, (int)i + 1);
    }
}

static int finish_set(lua_State *L, rp_status st, rp_pref_set *set, const char *what) {
    if (st != RP_OK) { rp_pref_set_free(set); return rp_lua_fail(L, st, what); }
    push_set(L, set);
    rp_pref_set_free(set);
    return 1;
}

/* sdpo.load_pairs(path, format) -> pairs */
static int l_load_pairs(lua_State *L) {
    rp_pref_format fmt;
    rp_status st = rp_pref_format_parse(luaL_checkstring(L, 2), &fmt);
    if (st != RP_OK) return rp_lua_fail(L, st, "sdpo.load_pairs");
    rp_pref_set set = { 0 };
    return finish_set(L, rp_pref_load(luaL_checkstring(L, 1), fmt, &set), &set, "sdpo.load_pairs");
}

/* sdpo.parse_pairs(text, format, name) -> pairs */
static int l_parse_pairs(lua_State *L) {
    size_t len;
    const char *text = luaL_checklstring(L, 1, &len);
    rp_pref_format fmt;
    rp_status st = rp_pref_format_parse(luaL_checkstring(L, 2), &fmt);
    if (st != RP_OK) return rp_lua_fail(L, st, "sdpo.parse_pairs");
    rp_pref_set set = { 0 };
    return finish_set(L, rp_pref_parse(text, len, fmt, luaL_optstring(L, 3, "<string>"), &set), &set, "sdpo.parse_pairs");
}

/* sdpo.cache_key{{tag, bytes}, ...} -> hex */
static int l_cache_key(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    rp_sha256_ctx c;
    rp_ref_key_begin(&c);
    for (int i = 1; i <= (int)rp_lua_rawlen(L, 1); i++) {
        lua_rawgeti(L, 1, i);
        if (!lua_istable(L, -1)) return luaL_error(L, "sdpo.cache_key: part %d must be {tag, bytes}", i);
        lua_rawgeti(L, -1, 1);
        lua_rawgeti(L, -2, 2);
        size_t len;
        const char *tag = lua_tostring(L, -2), *data = lua_tolstring(L, -1, &len);
        if (!tag || !data) return luaL_error(L, "sdpo.cache_key: part %d must be {tag, bytes} with two strings", i);
        rp_ref_key_part(&c, tag, data, len);
        lua_pop(L, 3);
    }
    rp_ref_key k;
    rp_ref_key_end(&c, &k);
    lua_pushstring(L, k.hex);
    return 1;
}

static void check_key(lua_State *L, int idx, rp_ref_key *k) {
    size_t len;
    const char *s = luaL_checklstring(L, idx, &len);
    if (len != 64) luaL_error(L, "sdpo cache: key must be 64 hex digits (got %d bytes)", (int)len);
    memcpy(k->hex, s, 65);
}

/* sdpo.cache_write(path, key, values) */
static int l_cache_write(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    rp_ref_key k;
    check_key(L, 2, &k);
    size_t n;
    double *v = read_numbers(L, 3, "sdpo.cache_write: values", &n);
    rp_status st = rp_ref_cache_write(path, &k, v, n);
    if (st != RP_OK) return rp_lua_fail(L, st, "sdpo.cache_write");
    return 0;
}

/* sdpo.cache_read(path, key, n) -> values | nil, why, message */
static int l_cache_read(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    rp_ref_key k;
    check_key(L, 2, &k);
    long long n = rp_lua_checkinteger(L, 3);
    if (n < 0 || n > (1LL << 32)) return luaL_error(L, "sdpo.cache_read: n = %d out of range", (int)n);
    double *v = lua_newuserdata(L, (size_t)(n ? n : 1) * sizeof *v);
    rp_status st = rp_ref_cache_read(path, &k, v, (size_t)n);
    if (st != RP_OK) {
        if (st != RP_ERR_NOTFOUND && st != RP_ERR_FORMAT) return rp_lua_fail(L, st, "sdpo.cache_read");
        lua_pushnil(L);
        lua_pushstring(L, st == RP_ERR_FORMAT ? "damaged" : strstr(rp_errmsg(), "no file") ? "missing" : "stale");
        lua_pushstring(L, rp_errmsg());
        return 3;
    }
    lua_createtable(L, (int)n, 0);
    for (long long i = 0; i < n; i++) { lua_pushnumber(L, v[i]); lua_rawseti(L, -2, (int)i + 1); }
    return 1;
}

/* sdpo.file_digest(path) -> hex */
static int l_file_digest(lua_State *L) {
    char hex[65];
    rp_status st = rp_sha256_file(luaL_checkstring(L, 1), hex);
    if (st != RP_OK) return rp_lua_fail(L, st, "sdpo.file_digest");
    lua_pushstring(L, hex);
    return 1;
}

/* sdpo.mkdirs(path) */
static int l_mkdirs(lua_State *L) {
    rp_status st = rp_mkdirs(luaL_checkstring(L, 1));
    if (st != RP_OK) return rp_lua_fail(L, st, "sdpo.mkdirs");
    return 0;
}

/* The module table. */
int rp_luaopen_sdpo(lua_State *L) {
    static const luaL_Reg fns[] = { { "dpo_loss", l_dpo_loss }, { "softplus_neg", l_softplus_neg }, { "load_pairs", l_load_pairs },
                                    { "parse_pairs", l_parse_pairs }, { "cache_key", l_cache_key }, { "cache_write", l_cache_write },
                                    { "cache_read", l_cache_read }, { "file_digest", l_file_digest }, { "mkdirs", l_mkdirs },
                                    { NULL, NULL } };
    rp_lua_newlib(L, fns);
    return 1;
}
