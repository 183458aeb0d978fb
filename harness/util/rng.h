/* rng.h: splitmix64, the one small seeded generator for code that needs reproducible draws without a library
 * (any seed, 0 included, gives a good stream; the state advances by the golden-ratio constant). Header-only.
 * Invariant: the same seed gives the same sequence on every platform (only 64-bit integer arithmetic). */
#ifndef RP_UTIL_RNG_H
#define RP_UTIL_RNG_H
#include <stdint.h>

/* The next 64 random bits of the stream whose state is *s. */
static inline uint64_t rp_splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

#endif
