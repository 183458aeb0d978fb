/* gemm_bf16_impl.h: what gemm_bf16.c shares with its kernel files (gemm_bf16_x86.c, gemm_bf16_amx.c): the packed
 * layout and the kernels, compiled for AVX512-BF16 / AMX by function attributes and called only after
 * rp_gemm_bf16_best found the unit.
 * Packed layout (bf16 as uint16_t): k is padded with zeros to nkb blocks of 32; a tile is 16 × 32 bf16 (1 KiB,
 * rows of 64 bytes), the shape of an AMX tile operand.
 *   A (rows i of op(A)): tile (rt, kb) at a + (rt·nkb + kb)·512 holds rows 16·rt.. of k block kb, row r at
 *     + r·32, k in order (AMX's A operand).
 *   B (a strip of 32 columns j of op(B)): tile (ct, kb) at b + (ct·nkb + kb)·512 holds k pairs p of block kb as
 *     rows, row p at + p·32 = columns 16·ct.. each as (k = 2p, 2p+1) (AMX's B operand, "VNNI" pairs).
 * Rows past M, columns past N and k past K are packed as zeros, so a 32 × 32 block of C is always computed
 * whole and only its real part stored. A long k is packed and summed a chunk of k blocks at a time, C holding the
 * fp32 sum between chunks: storing and reloading it is exact, so the chunking changes no bit of the result. */
#ifndef RP_GEMM_BF16_IMPL_H
#define RP_GEMM_BF16_IMPL_H
#include <stdint.h>

#define RP_BF16_TILE 512   /* bf16 per packed tile (16 rows × 32) */

/* Pack rows [i0, i0 + rows) of op(A) (rows <= the 16-row tiles given by n_rt) for the nkb k blocks from block kb0 (k
 * from 32·kb0) into a. */
void rp_gemm_bf16_pack_a(int ta, const float *A, int64_t lda, int64_t i0, int64_t rows, int64_t n_rt, int64_t K, int64_t kb0,
                         int64_t nkb, uint16_t *a);
/* Pack columns [j0, j0 + cols) of op(B) (cols <= 32) for the nkb k blocks from block kb0 into one 32-column strip b. */
void rp_gemm_bf16_pack_b(int tb, const float *B, int64_t ldb, int64_t j0, int cols, int64_t K, int64_t kb0, int64_t nkb,
                         uint16_t *b);
/* One 32 × 32 block of C (its first rows × cols real) from two packed row tiles at a and a strip at b over nkb k
 * blocks, on AVX512-BF16: C = (accumulate ? C : 0) + Σ. */
void rp_gemm_bf16_block_avx512(const uint16_t *a, const uint16_t *b, int64_t nkb, float *c, int64_t ldc, int rows, int cols,
                               int acc);
/* The same block on AMX tiles (after rp_gemm_bf16_amx_begin on this thread); cbuf: 32 × 32 floats of scratch
 * for a block that C does not hold whole. */
void rp_gemm_bf16_block_amx(const uint16_t *a, const uint16_t *b, int64_t nkb, float *c, int64_t ldc, int rows, int cols,
                            int acc, float *cbuf);
/* Configure this thread's tiles for rp_gemm_bf16_block_amx (eight 16 × 64-byte tiles). */
void rp_gemm_bf16_amx_begin(void);
/* Release this thread's tile state. */
void rp_gemm_bf16_amx_end(void);

#endif
