/* qdot.h: fast kernels on quantized weight rows: integer dot products of q4_0 / q4_1 / q8_0 rows with int8
 * activation blocks (AVX-512 VNNI vpdpbusd when compiled for it, AVX2 vpmaddubsw on machines without
 * AVX-512, plain C otherwise), f32-activation dots (AVX-512 or AVX2), and fast dequantization of rows to f32
 * (SIMD for the 32-element block types and halves, the reference for the others).
 * Invariant: each result equals the reference (rp_dot_q8_ref, rp_dequantize_row) up to float rounding. */
#ifndef RP_QDOT_H
#define RP_QDOT_H
#include "tensor/quant.h"

/* Whether rp_qdot_row handles weights of type t. */
int rp_qdot_supported(rp_dtype t);
/* Dot product of one weight row (n elements, type t) with an int8 activation row. */
float rp_qdot_row(rp_dtype t, const void *w, const rp_q8_row *a, int64_t n);
/* Whether rp_fdot_row handles weights of type t (exact f32 products of dequantized weights). */
int rp_fdot_supported(rp_dtype t);
/* Dot product of one weight row (n elements of type t) with f32 activations x, dequantizing in registers:
 * equal to dot(dequantize(w), x) up to f32 rounding. xsum[b] = Σ x[32b .. 32b+32) (needed by q4_0 / q4_1;
 * may be NULL for the other types). */
float rp_fdot_row(rp_dtype t, const void *w, const float *x, const float *xsum, int64_t n);
/* 24-bit fixed-point activations split in three byte limbs, for exact-quality integer dot products:
 * per block of 32, X = round(x / d) with d = max|x| / (2^23 - 1), X = x2·65536 + x1·256 + x0 (x2 signed,
 * x1 and x0 unsigned bytes); xsum[b] = Σ x over the block (f32). The rounding error is about 2^-23 of the
 * block's largest value: as precise as f32 products, at the cost of three vpdpbusd per 64 weights. */
typedef struct rp_q24_row { float *d, *xsum, *x2sum; uint8_t *x0, *x1; int8_t *x2; int64_t nb; } rp_q24_row;
/* Whether rp_q24dot_row handles weights of type t (q4_0, q4_1, q8_0 when built with AVX-512 VNNI). */
int rp_q24dot_supported(rp_dtype t);
/* Fill r (d, xsum, x2sum: n/32 floats; x0, x1, x2: n bytes) from x[n]; x2sum[b] = Σ x2 over block b. */
void rp_quantize_row_q24(const float *x, int64_t n, rp_q24_row *r);
/* Dot product of a q4_0 / q4_1 / q8_0 weight row with 24-bit activations. */
float rp_q24dot_row(rp_dtype t, const void *w, const rp_q24_row *a, int64_t n);
/* The same in grouped limb order (four blocks' elements 0..15, then their 16..31: qdot_packed.c), zero-padded
 * to whole groups of four blocks: the activations of the decode layout. */
void rp_quantize_row_q24g(const float *x, int64_t n, rp_q24_row *r);
/* Bytes of memory rp_q24_row_carve needs for an n-element row (room for either limb order). */
size_t rp_q24_row_bytes(int64_t n);
/* Point r's arrays into mem (rp_q24_row_bytes(n) bytes, 64-byte aligned). */
void rp_q24_row_carve(rp_q24_row *r, void *mem, int64_t n);

/* Decode layout (qdot_packed.c): q4_0 / q4_1 / q8_0 rows repacked once (nibbles, then scales; the
 * same bytes per row) so that the one-token kernel streams them with one load per four blocks. */
/* Whether t has a decode layout. */
int rp_packed_supported(rp_dtype t);
/* Whether this build runs packed dots with VNNI (otherwise they are plain C: correct, slow). */
int rp_packed_fast(void);
/* Repack `rows` rows of K elements (GGUF blocks of type t, ldw bytes apart) into dst (same stride). */
rp_status rp_packed_repack(rp_dtype t, const void *src, void *dst, int64_t rows, int64_t K, size_t ldw);
/* y[m·ldy] = packed row w · a[m] (grouped 24-bit activations), m in [0, M); each row's result is independent
 * of M (the arithmetic of a row does not change with the batch). */
void rp_packed_dot_rows(rp_dtype t, const void *w, const rp_q24_row *a, int M, int64_t K, float *y, int64_t ldy);
/* The plain-C packed dot (reference for tests; what non-VNNI builds run). */
float rp_packed_dot_ref(rp_dtype t, const void *w, const rp_q24_row *a, int64_t K);
/* y[m·ldy] = packed row w · f32 row x + m·ldx, m in [0, M): weights dequantized once per block for all rows
 * (batched decoding); each row's result is independent of M. */
void rp_packed_fdot_rows(rp_dtype t, const void *w, const float *x, int64_t ldx, int M, int64_t K, float *y, int64_t ldy);
/* y[m·ldy + n] = packed row n (w + n·ldw) · f32 row x + m·ldx, m in [0, M), n in [0, N): the batched-decoding
 * matmul over a range of weight rows; each (m, n) result is independent of M, N and the other rows. */
void rp_packed_fdot_tile(rp_dtype t, const void *w, size_t ldw, int64_t N, const float *x, int64_t ldx, int M, int64_t K,
                         float *y, int64_t ldy);
/* The plain-C f32 packed dot (reference for tests; what non-VNNI builds run). */
float rp_packed_fdot_ref(rp_dtype t, const void *w, const float *x, int64_t K);
/* Dequantize one row of n elements (any rp_dtype_dequantizable type); fast paths for q4_0/q4_1/q8_0/f16. */
void rp_dequantize_row_fast(rp_dtype t, const void *src, float *y, int64_t n);
/* Fast activation quantization (same result as rp_quantize_row_q8 up to rounding ties). */
void rp_quantize_row_q8_fast(const float *x, int64_t n, rp_q8_row *r);

#endif
