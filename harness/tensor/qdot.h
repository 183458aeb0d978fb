/* qdot.h: fast kernels on quantized weight rows: integer dot products of q4_0 / q4_1 / q8_0 rows with int8
 * activation blocks (AVX-512 VNNI vpdpbusd when compiled for it, plain C otherwise), and fast
 * dequantization of rows to f32 (SIMD for the 32-element block types, the reference for the others).
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
/* Dequantize one row of n elements (any rp_dtype_dequantizable type); fast paths for q4_0/q4_1/q8_0/f16. */
void rp_dequantize_row_fast(rp_dtype t, const void *src, float *y, int64_t n);
/* Fast activation quantization (same result as rp_quantize_row_q8 up to rounding ties). */
void rp_quantize_row_q8_fast(const float *x, int64_t n, rp_q8_row *r);

#endif
