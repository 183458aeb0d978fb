/* random.h: the seeded generator shared by the Lua host and C code that needs reproducible draws. */
#ifndef RP_LUA_RANDOM_H
#define RP_LUA_RANDOM_H
#include <stdint.h>
#include "lua/compat.h"

typedef struct rp_rng { uint64_t s[4]; } rp_rng;
/* Seed from one 64-bit value. */
void rp_rng_seed(rp_rng *r, uint64_t seed);
/* Next 64 random bits. */
uint64_t rp_rng_next(rp_rng *r);
/* Uniform double in [0, 1). */
double rp_rng_uniform(rp_rng *r);
/* Uniform integer in [0, n) without modulo bias. */
uint64_t rp_rng_below(rp_rng *r, uint64_t n);
/* A seed for a named stream derived from the run's seed. */
uint64_t rp_seed_stream(uint64_t seed, const char *stream);
/* Replace math.random / math.randomseed in L by a generator seeded from seed. */
void rp_lua_install_random(lua_State *L, uint64_t seed);

#endif
