/* cuda_common.cuh: what the CUDA backend's .cu files share: turning runtime errors into statuses, the
 * device error flag that index-validating kernels raise, the grow-only scratch, block reductions and the
 * per-element dequantization of every weight dtype the backend computes with (GGML block layouts, as
 * tensor/quant.h and its reference rp_dequantize_row).
 * Invariants: a kernel launch is followed by RP_CUDA_LAUNCHED, so a failed launch becomes a status naming
 * the op; dequant<DT>(row, k) equals element k of rp_dequantize_row(DT, row) exactly (same f16 / bf16
 * conversions, same float arithmetic order). */
#ifndef RP_TENSOR_CUDA_COMMON_CUH
#define RP_TENSOR_CUDA_COMMON_CUH
#include <cuda_runtime.h>
#include <cuda_fp16.h>
#include <stdint.h>
#include "tensor/cuda/cuda_ops.h"

/* A runtime error as a status naming what failed. */
rp_status rp_cuda_fail(cudaError_t e, const char *what);
#define RP_CUDA_TRY(call, what) do { cudaError_t e_ = (call); if (e_ != cudaSuccess) return rp_cuda_fail(e_, what); } while (0)
/* After a launch: the launch error, if any, as a status naming the op; with REPRO_CUDA_SYNC=1 it also waits for
 * the kernel, so a fault inside it (an illegal address) is reported against this op instead of a later copy. */
rp_status rp_cuda_launched(const char *what);
#define RP_CUDA_LAUNCHED(what) RP_TRY(rp_cuda_launched(what))
/* Rotary embedding at positions sign·pos (cuda_rows.cu): +1 the forward, -1 its inverse (the backward). */
rp_status rp_cuda_rope_signed(float *x, int64_t T, int H, int D, int rope_dim, const int32_t *pos, float base, int neox,
                              int sign);

/* The device error flag: [0] set to 1 by a kernel that met a bad index, [1] the index's position, [2] the value. */
int *rp_cuda_flag(void);
/* Read the flag back (waits for the kernels issued so far) and clear it: 1 when it was raised, with pos and val. */
rp_status rp_cuda_flag_read(int *raised, int *pos, int *val);
/* A device scratch buffer of at least nbytes, reused across calls (grow-only); NULL when out of memory.
 * The caller holds rp_cuda_lock() while the kernels using it are issued. */
void *rp_cuda_scratch(size_t nbytes);
void rp_cuda_lock(void);
void rp_cuda_unlock(void);
/* A cuBLAS status (cublasStatus_t) as RP_OK or a status naming what failed, with cuBLAS's reason. */
rp_status rp_cuda_blas_status(int s, const char *what);
/* out[rows, K] (f32, dense) = weight rows of dtype t (ldw bytes apart) dequantized on the device (cuda_matmul.cu). */
rp_status rp_cuda_dequant_rows(float *out, const void *w, rp_dtype t, size_t ldw, int64_t rows, int64_t K);
/* The cuBLAS handle (created by rp_cuda_init), as an opaque pointer. */
void *rp_cuda_cublas(void);

/* Raise the error flag with the offending position and value (first one wins). */
static __device__ __forceinline__ void raise_flag(int *flag, int pos, int val) {
    if (atomicCAS(flag, 0, 1) == 0) { flag[1] = pos; flag[2] = val; }
}

/* Host-and-device helpers, so that the host can check the dequantizers against the reference (rp_cuda_dequant_host). */
#define RP_HD __host__ __device__ __forceinline__
static RP_HD uint16_t ld_u16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static RP_HD float f16f(const uint8_t *p) { return __half2float(__ushort_as_half(ld_u16(p))); }
static RP_HD float bf16f(const uint8_t *p) {
    union { uint32_t u; float f; } v;
    v.u = (uint32_t)ld_u16(p) << 16;
    return v.f;
}

/* Element k of a weight row of dtype DT (a value of rp_dtype). */
template <int DT> RP_HD float dequant(const uint8_t *row, int64_t k);
template <> RP_HD float dequant<RP_F32>(const uint8_t *row, int64_t k) { return ((const float *)row)[k]; }
template <> RP_HD float dequant<RP_F16>(const uint8_t *row, int64_t k) { return f16f(row + 2 * k); }
template <> RP_HD float dequant<RP_BF16>(const uint8_t *row, int64_t k) { return bf16f(row + 2 * k); }
template <> RP_HD float dequant<RP_Q4_0>(const uint8_t *row, int64_t k) {
    const uint8_t *b = row + (k >> 5) * 18;
    int j = (int)(k & 31), q = j < 16 ? (b[2 + j] & 0x0f) : (b[2 + j - 16] >> 4);
    return (float)(q - 8) * f16f(b);
}
template <> RP_HD float dequant<RP_Q4_1>(const uint8_t *row, int64_t k) {
    const uint8_t *b = row + (k >> 5) * 20;
    int j = (int)(k & 31), q = j < 16 ? (b[4 + j] & 0x0f) : (b[4 + j - 16] >> 4);
    return (float)q * f16f(b) + f16f(b + 2);
}
template <> RP_HD float dequant<RP_Q8_0>(const uint8_t *row, int64_t k) {
    const uint8_t *b = row + (k >> 5) * 34;
    return (float)(int8_t)b[2 + (k & 31)] * f16f(b);
}
template <> RP_HD float dequant<RP_Q4_K>(const uint8_t *row, int64_t k) {
    const uint8_t *b = row + (k >> 8) * 144, *s = b + 4, *qs = b + 16;
    int i = (int)(k & 255), j64 = i >> 6, hi = (i >> 5) & 1, l = i & 31, j = 2 * j64 + hi, sc, mn;
    if (j < 4) { sc = s[j] & 63; mn = s[j + 4] & 63; }
    else { sc = (s[j + 4] & 0x0f) | ((s[j - 4] >> 6) << 4); mn = (s[j + 4] >> 4) | ((s[j] >> 6) << 4); }
    uint8_t q = qs[32 * j64 + l];
    float d = f16f(b) * (float)sc, m = f16f(b + 2) * (float)mn;
    return d * (float)(hi ? q >> 4 : q & 0x0f) - m;
}
template <> RP_HD float dequant<RP_Q6_K>(const uint8_t *row, int64_t k) {
    const uint8_t *b = row + (k >> 8) * 210;
    int i = (int)(k & 255), half = i >> 7, r = i & 127, g = r >> 5, l = r & 31;
    const uint8_t *ql = b + 64 * half, *qh = b + 128 + 32 * half;
    const int8_t *sc = (const int8_t *)(b + 192) + 8 * half;
    int lo = (g & 1) ? ql[l + 32] : ql[l];
    lo = (g & 2) ? lo >> 4 : lo & 0x0f;
    int q = (lo | (((qh[l] >> (2 * g)) & 3) << 4)) - 32;
    return f16f(b + 208) * (float)sc[l / 16 + 2 * g] * (float)q;
}

/* Sum over a warp (every lane gets it). */
template <typename T> static __device__ __forceinline__ T warp_sum(T v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
static __device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}
/* Sum over a block of blockDim.x threads (a multiple of 32, at most 1024); every thread gets it. sh: 32 slots. */
template <typename T> static __device__ T block_sum(T v, T *sh) {
    v = warp_sum(v);
    int w = threadIdx.x >> 5, l = threadIdx.x & 31, nw = blockDim.x >> 5;
    __syncthreads();
    if (l == 0) sh[w] = v;
    __syncthreads();
    v = l < nw ? sh[l] : (T)0;
    return warp_sum(v);
}
static __device__ float block_max(float v, float *sh) {
    v = warp_max(v);
    int w = threadIdx.x >> 5, l = threadIdx.x & 31, nw = blockDim.x >> 5;
    __syncthreads();
    if (l == 0) sh[w] = v;
    __syncthreads();
    v = l < nw ? sh[l] : -INFINITY;
    return warp_max(v);
}

/* The row's max and log-sum-exp (every thread gets both). */
static __device__ void row_lse(const float *v, int64_t n, float *mx_out, double *lse_out) {
    __shared__ float shm[32];
    __shared__ double shs[32];
    float mx = -INFINITY;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) mx = fmaxf(mx, v[i]);
    mx = block_max(mx, shm);
    double s = 0;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) s += exp((double)v[i] - mx);
    s = block_sum(s, shs);
    *mx_out = mx;
    *lse_out = mx + log(s);
}

/* Blocks of `threads` covering n items, capped for a grid-stride loop. */
static inline unsigned grid_for(int64_t n, int threads) {
    int64_t b = (n + threads - 1) / threads;
    return (unsigned)(b < 1 ? 1 : b > 65535 * 16 ? 65535 * 16 : b);
}

#endif
