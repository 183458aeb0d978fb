/* gemm_f32.h: the engine's own fp32 matrix product for the training matmuls, C[M,N] (+)= op(A)·op(B),
 * with op(A) M×K and op(B) K×N read through a transpose flag and a leading dimension each (row-major):
 *   op(A)(i,k) = ta ? A[k·lda + i] : A[i·lda + k],   op(B)(k,j) = tb ? B[j·ldb + k] : B[k·ldb + j].
 * The three training variants, all three routed here: y = x·Wᵀ (ta 0, tb 1), dx += dy·W (0, 0), dW += dyᵀ·x (1, 0).
 * rp_gemm_f32 packs panels and runs an AVX-512 register-blocked micro-kernel, split into tasks of C over the
 * backward context's pool (gemm_f32.c); rp_gemm_f32_ref is the plain triple loop it is tested against.
 * Invariants: every element of C is one task's, summed over k in the same order (blocks of k ascending,
 * one fused multiply-add per k) whatever the thread count or partition, so results are bit-identical
 * across runs and thread counts; C is only written (accumulate 0) or read then written (accumulate 1), so
 * accumulate 0 needs no zeroed C; nothing is allocated beyond the context's per-thread and shared scratch (so a
 * caller must not hold rp_bwd_shared's buffer across a call). Without
 * AVX-512 the same call goes to OpenBLAS. Tests: tests/test_gemm.c. */
#ifndef RP_GEMM_F32_H
#define RP_GEMM_F32_H
#include <stdint.h>
#include "tensor/backward.h"

/* C = op(A)·op(B) (accumulate 0) or C += op(A)·op(B) (accumulate 1) on b's pool; an error only for dimensions
 * over 2^31 (C untouched) or scratch that cannot be allocated (C then partly written). */
rp_status rp_gemm_f32(rp_bwd *b, int ta, int tb, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                      const float *B, int64_t ldb, int accumulate, float *C, int64_t ldc);
/* Route the training matmuls (rp_cpu_matmul_forward, rp_bwd_cpu.matmul) through rp_gemm_f32 (own != 0, the
 * default) or OpenBLAS (own == 0), process-wide: the benchmarks time both in one run. */
void rp_gemm_f32_select(int own);
/* Whether the training matmuls use rp_gemm_f32 for a product of these dimensions: selected, and no side
 * under 32 (a LoRA rank-8 product is faster through OpenBLAS). */
int rp_gemm_f32_wanted(int64_t M, int64_t N, int64_t K);
/* The same product as plain loops with a double accumulator per element (the reference). */
void rp_gemm_f32_ref(int ta, int tb, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *B,
                     int64_t ldb, int accumulate, float *C, int64_t ldc);

#endif
