/* gemm_bf16.h: the training matmuls on the CPU's bf16 units: C[M,N] (+)= op(A)·op(B) with fp32 A, B and C
 * (the callers keep fp32 tensors: fp32 master weights, as mixed-precision training does), the inputs rounded to
 * bf16 (round to nearest even) while they are packed, the products summed in fp32. op() and the leading
 * dimensions are rp_gemm_f32's (gemm_f32.h): the three training variants are y = x·Wᵀ (ta 0, tb 1),
 * dx += dy·W (0, 0), dW += dyᵀ·x (1, 0).
 * Units, chosen once per process at run time: AMX tiles (TDPBF16PS; the process asks the kernel for the tile
 * state with arch_prctl(ARCH_REQ_XCOMP_PERM, XTILEDATA)), else AVX512-BF16 (VDPBF16PS), else none, and then
 * rp_gemm_bf16 is rp_gemm_f32 (fp32 inputs, nothing rounded): rp_gemm_bf16_unit says which, so a trainer can
 * report the precision it really ran.
 * Tolerance (tests/test_gemm_bf16.c): each input is within 2⁻⁸ relative of its bf16 rounding, so an element
 * is within (2·2⁻⁸ + 2⁻¹⁶ + (K+2)·2⁻²³)·(|C₀| + Σₖ |a_ik·b_kj|) of the exact fp32-input product (both units
 * treat bf16 subnormals as zero: inputs under 2⁻¹²⁶ in magnitude count as 0, outside that bound).
 * Invariants: every element of C is one task's and is summed over k in one fixed order whatever the thread
 * count or partition (bit-identical across thread counts, for a given unit); C is only written (accumulate 0)
 * or read then written (accumulate 1); columns past N are never touched; nothing is allocated beyond the
 * context's per-thread scratch. Layout and kernels: gemm_bf16.c (tasks), gemm_bf16_x86.c (packing and the
 * AVX512-BF16 kernel), gemm_bf16_amx.c (the AMX kernel), gemm_bf16_ref.c (the plain reference). */
#ifndef RP_GEMM_BF16_H
#define RP_GEMM_BF16_H
#include <stdint.h>
#include "tensor/backward.h"

typedef enum rp_bf16_unit { RP_BF16_NONE = 0, RP_BF16_AVX512 = 1, RP_BF16_AMX = 2 } rp_bf16_unit;

/* The unit rp_gemm_bf16 uses now: the best the machine and the OS allow, or a lower one chosen with
 * rp_gemm_bf16_use. */
rp_bf16_unit rp_gemm_bf16_unit(void);
/* The best unit this machine and OS allow (detected once per process). */
rp_bf16_unit rp_gemm_bf16_best(void);
/* A unit's name: "amx", "avx512_bf16" or "none". */
const char *rp_gemm_bf16_unit_name(rp_bf16_unit u);
/* Cap the unit rp_gemm_bf16 uses, process-wide (the tests and benchmarks run each unit in one process); an
 * error naming both units when u is above rp_gemm_bf16_best. */
rp_status rp_gemm_bf16_use(rp_bf16_unit u);
/* Whether the training matmuls should take the bf16 route for a product of these dimensions: a bf16 unit, and
 * no side under 32 (a LoRA rank-8 product gains nothing from tiles). */
int rp_gemm_bf16_wanted(int64_t M, int64_t N, int64_t K);
/* C = op(A)·op(B) (accumulate 0) or C += op(A)·op(B) (accumulate 1) with bf16-rounded inputs and fp32 sums, on
 * b's pool (rp_gemm_f32 when no bf16 unit); an error only for dimensions over 2^31 (C untouched) or scratch that
 * cannot be allocated (C then partly written). */
rp_status rp_gemm_bf16(rp_bwd *b, int ta, int tb, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                       const float *B, int64_t ldb, int accumulate, float *C, int64_t ldc);
/* The same product as plain loops: inputs rounded to bf16 (rp_f32_to_bf16), products and sum in double. */
void rp_gemm_bf16_ref(int ta, int tb, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *B,
                      int64_t ldb, int accumulate, float *C, int64_t ldc);

#endif
