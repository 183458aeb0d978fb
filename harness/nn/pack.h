/* pack.h: the seam between session.c's forward pass and pack.c's packed scoring (internal to nn/): a
 * packed forward gives every token its own position and runs attention segment by segment.
 * Invariant: segments are listed in packed-row order, each group's prefix before its suffixes. */
#ifndef RP_NN_PACK_H
#define RP_NN_PACK_H
#include <stdint.h>
#include "util/err.h"

typedef struct rp_session rp_session;

/* A run of packed rows [row, row + len) attending to the keys at rows [base, base + pos0) (its group's
 * prefix) and to itself causally; its positions are pos0 .. pos0 + len - 1. A prefix has base == row,
 * pos0 == 0. */
typedef struct rp_pack_seg { int64_t row, base, len, pos0; } rp_pack_seg;

typedef struct rp_pack {
    const int32_t *pos;          /* [T] each packed token's position in its own sequence */
    const rp_pack_seg *seg;      /* [n_seg] */
    int64_t n_seg;
} rp_pack;

/* One layer's attention over a packed forward's segments (s->pack set); kl / vl: the layer's cache rows,
 * which it reorders (each suffix's keys and values are moved to follow their prefix). */
rp_status rp_pack_attention(rp_session *s, float *kl, float *vl, float scale);

#endif
