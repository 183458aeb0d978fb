/* nf4.h: 4-bit NormalFloat weights with double quantization, as QLoRA (Dettmers et al. 2023) stores a frozen
 * base model: each block of 64 weights of a row keeps a 4-bit code into the 16 NF4 levels (quantiles of a
 * standard normal, scaled to [-1, 1], with an exact 0) and the block's absmax; the absmaxes themselves are
 * quantized again (second level): the mean of all absmaxes is subtracted and each run of 256 is stored as
 * int8 with one f32 scale (QLoRA uses an 8-bit float here; linear int8 is our choice, same 4.127 bits per
 * weight). Matmuls dequantize tiles on the fly into thread scratch and hand them to sgemm.
 * Invariants: cols is a multiple of 64; codes hold two weights per byte, the lower column in the low nibble;
 * a weight dequantizes to rp_nf4_levels[code] · (offset + qabsmax · scale2 of its run). */
#ifndef RP_NF4_H
#define RP_NF4_H
#include <stdint.h>
#include "tensor/backward.h"
#include "tensor/pool.h"
#include "util/err.h"

#define RP_NF4_BLOCK 64     /* weights per absmax */
#define RP_NF4_BLOCK2 256   /* absmaxes per second-level scale */

extern const float rp_nf4_levels[16];

typedef struct rp_nf4 {
    int64_t rows, cols;     /* W[rows, cols]: a linear layer's [out, in] */
    uint8_t *codes;         /* rows·cols/2 bytes */
    int8_t *qabsmax;        /* rows·cols/64 second-level codes */
    float *scale2;          /* one per 256 absmaxes */
    float offset;           /* mean absmax */
} rp_nf4;

/* Quantize W[rows, cols] (cols a multiple of 64) into a new rp_nf4 (free with rp_nf4_free). */
rp_status rp_nf4_quantize(const float *w, int64_t rows, int64_t cols, rp_nf4 **out);
/* The same on a thread pool (NULL: the calling thread); the bytes are identical whatever the pool's size. */
rp_status rp_nf4_quantize_pool(const float *w, int64_t rows, int64_t cols, rp_pool *pool, rp_nf4 **out);
/* Release an NF4 tensor. NULL is fine. */
void rp_nf4_free(rp_nf4 *q);
/* Bytes the tensor takes (codes, second-level codes and scales). */
size_t rp_nf4_bytes(const rp_nf4 *q);
/* Dequantize columns [c0, c0+n) of row r into y (c0 and n multiples of 64). */
void rp_nf4_dequantize(const rp_nf4 *q, int64_t r, int64_t c0, int64_t n, float *y);
/* y[M, rows] = x[M, cols] · Wᵀ with W dequantized a tile at a time into b's scratch (b is required; its pool
 * may be NULL). */
rp_status rp_nf4_matmul(rp_bwd *b, float *y, const float *x, int64_t M, const rp_nf4 *q);
/* dx[M, cols] += dy[M, rows] · W: the input gradient through a frozen NF4 weight. */
rp_status rp_nf4_matmul_backward(rp_bwd *b, float *dx, const float *dy, int64_t M, const rp_nf4 *q);

#endif
