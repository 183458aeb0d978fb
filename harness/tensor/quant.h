/* quant.h: block formats of quantized weights (GGML layouts, little-endian, packed) and their plain
 * reference conversions to and from f32, plus the int8 activation blocks the integer dot products use.
 * Invariants: a row of n elements of a block type is n / block whole blocks (rp_dtype_row_bytes);
 * every function here is the reference the faster kernels are checked against. */
#ifndef RP_QUANT_H
#define RP_QUANT_H
#include <stddef.h>
#include <stdint.h>
#include "tensor/dtype.h"
#include "util/err.h"

#define RP_QK 32     /* elements per q4_0 / q4_1 / q8_0 block */
#define RP_QK_K 256  /* elements per K-quant super-block */

#pragma pack(push, 1)
typedef struct { uint16_t d; uint8_t qs[16]; } rp_block_q4_0;            /* x = (nibble - 8) * d */
typedef struct { uint16_t d, m; uint8_t qs[16]; } rp_block_q4_1;         /* x = nibble * d + m */
typedef struct { uint16_t d; int8_t qs[32]; } rp_block_q8_0;             /* x = q * d */
typedef struct { uint16_t d, dmin; uint8_t scales[12]; uint8_t qs[128]; } rp_block_q4_K;
typedef struct { uint8_t ql[128]; uint8_t qh[64]; int8_t scales[16]; uint16_t d; } rp_block_q6_K;
#pragma pack(pop)

/* IEEE half <-> float (software; exact for every half, round-to-nearest-even the other way). */
float rp_f16_to_f32(uint16_t h);
uint16_t rp_f32_to_f16(float f);
/* bfloat16 <-> float (round-to-nearest-even; NaN stays NaN). */
float rp_bf16_to_f32(uint16_t h);
uint16_t rp_f32_to_bf16(float f);

/* Whether rows of this dtype can be turned into f32 by rp_dequantize_row. */
int rp_dtype_dequantizable(rp_dtype t);
/* Reference: n elements (a multiple of the block size) of a row of type t at src into f32 y. */
rp_status rp_dequantize_row(rp_dtype t, const void *src, float *y, int64_t n);
/* Reference quantizers (round to nearest, as GGML's reference ones) for q4_0, q4_1, q8_0, q4_K, q6_K, f16, bf16, f32:
 * n elements (multiple of the block size) of x into dst, rp_dtype_row_bytes(t, n) bytes. */
rp_status rp_quantize_row(rp_dtype t, const float *x, void *dst, int64_t n);
/* Reference K-quant quantizers (quant_k.c; q4_K, q6_K: llama.cpp's scale/min search, weights in 256-element
 * super-blocks): n (multiple of 256) finite values of x into dst; a non-finite value is RP_ERR_INVAL naming it.
 * rp_quantize_row dispatches these two types here. */
rp_status rp_quantize_row_k(rp_dtype t, const float *x, void *dst, int64_t n);

/* Int8 activations for integer dot products: a row of n (multiple of 32) values as nb = n/32 blocks,
 * q[32*b .. 32*b+32) = round(x / d[b]) with d[b] = max|x| / 127 over the block, s[b] = d[b] * sum(q). */
typedef struct rp_q8_row { float *d, *s; int8_t *q; int64_t nb; } rp_q8_row;
/* Quantize x (n values) into r, whose arrays hold n/32 (d, s) and n bytes. */
void rp_quantize_row_q8(const float *x, int64_t n, rp_q8_row *r);
/* Reference dot product of one weight row (q4_0, q4_1 or q8_0; n elements) with an int8 activation row. */
float rp_dot_q8_ref(rp_dtype t, const void *w, const rp_q8_row *a, int64_t n);

#endif
