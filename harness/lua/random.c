/* random.c: the run's seeded generator (xoshiro256** seeded by splitmix64) behind math.random and
 * math.randomseed, so a script's random draws depend only on the run's seed and are the same on Lua 5.4
 * and LuaJIT. Named streams (rp_lua_seed) give plugins independent, reproducible seeds. */
#include "lua/host.h"
#include "lua/random.h"
#include <math.h>
#include <string.h>

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

void rp_rng_seed(rp_rng *r, uint64_t seed) {
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
}

uint64_t rp_rng_next(rp_rng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double rp_rng_uniform(rp_rng *r) { return (double)(rp_rng_next(r) >> 11) * 0x1.0p-53; }

uint64_t rp_rng_below(rp_rng *r, uint64_t n) {
    if (n == 0) return 0;
    uint64_t lim = UINT64_MAX - UINT64_MAX % n, v;
    do v = rp_rng_next(r); while (v >= lim);
    return v % n;
}

uint64_t rp_seed_stream(uint64_t seed, const char *stream) {
    uint64_t h = 1469598103934665603ULL;
    for (const unsigned char *p = (const unsigned char *)stream; *p; p++) h = (h ^ *p) * 1099511628211ULL;
    uint64_t x = seed ^ h;
    return splitmix64(&x);
}

static const char RNG_KEY = 0;
static rp_rng *get_rng(lua_State *L) {
    lua_pushlightuserdata(L, (void *)&RNG_KEY);
    lua_rawget(L, LUA_REGISTRYINDEX);
    rp_rng *r = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return r;
}

static int l_random(lua_State *L) {
    rp_rng *r = get_rng(L);
    int n = lua_gettop(L);
    if (n == 0) { lua_pushnumber(L, rp_rng_uniform(r)); return 1; }
    long long lo = 1, hi;
    if (n == 1) hi = rp_lua_checkinteger(L, 1);
    else { lo = rp_lua_checkinteger(L, 1); hi = rp_lua_checkinteger(L, 2); }
    luaL_argcheck(L, lo <= hi, n, "interval is empty");
    uint64_t span = (uint64_t)hi - (uint64_t)lo + 1;
    lua_pushnumber(L, (lua_Number)(lo + (long long)(span ? rp_rng_below(r, span) : rp_rng_next(r))));
#if !RP_LUA_51
    lua_pushinteger(L, (lua_Integer)lua_tonumber(L, -1));
    lua_remove(L, -2);
#endif
    return 1;
}

static int l_randomseed(lua_State *L) {
    rp_rng_seed(get_rng(L), (uint64_t)rp_lua_optinteger(L, 1, 0));
    return 0;
}

void rp_lua_install_random(lua_State *L, uint64_t seed) {
    lua_pushlightuserdata(L, (void *)&RNG_KEY);
    rp_rng *r = lua_newuserdata(L, sizeof *r);
    rp_rng_seed(r, rp_seed_stream(seed, "math.random"));
    lua_rawset(L, LUA_REGISTRYINDEX);
    lua_getglobal(L, "math");
    lua_pushcfunction(L, l_random);
    lua_setfield(L, -2, "random");
    lua_pushcfunction(L, l_randomseed);
    lua_setfield(L, -2, "randomseed");
    lua_pop(L, 1);
}
