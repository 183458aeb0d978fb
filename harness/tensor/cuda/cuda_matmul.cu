/* cuda_matmul.cu: y[M,N] = x[M,K] · W[N,K]ᵀ on the GPU for every weight dtype the backend supports, and the
 * embedding lookup (the same per-element dequantization).
 * Few rows (M <= RP_CUDA_GEMV_ROWS, decoding): one warp per weight row dequantizes it in registers and
 * dots it with every x row, so each weight byte is read once per call. More rows (prefill, scoring): the
 * weight is dequantized tile by tile into the backend's scratch and multiplied by cuBLAS sgemm in fp32
 * (f32 weights go to sgemm directly); REPRO_CUDA_MATMUL=bf16 instead rounds x and the tile to bf16 and
 * runs cublasGemmEx on the tensor cores with fp32 accumulation (faster; about 3 significant digits).
 * Invariants: quantized rows are whole blocks (K a multiple of the block size), checked before launch;
 * the scratch never exceeds RP_CUDA_TILE_ELEMS floats (plus the bf16 copy of x), whatever N is. */
#include "tensor/cuda/cuda_common.cuh"
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <stdlib.h>
#include <string.h>
extern "C" {
#include "tensor/quant.h"
}

#define RP_CUDA_GEMV_ROWS 8
#define RP_CUDA_TILE_ELEMS (64ll << 20)

/* y[m, n] for m < M (<= MM) from weight row `row`: the calling warp's lanes split K, then a shuffle sum. */
template <int DT, int MM>
static __device__ __forceinline__ void gemv_row(float *y, int64_t N, int64_t n, const float *x, int M, int64_t K,
                                                const uint8_t *row, int lane) {
    float acc[MM];
#pragma unroll
    for (int m = 0; m < MM; m++) acc[m] = 0.0f;
    for (int64_t k = lane; k < K; k += 32) {
        float wv = dequant<DT>(row, k);
#pragma unroll
        for (int m = 0; m < MM; m++)
            if (m < M) acc[m] += wv * x[(int64_t)m * K + k];
    }
#pragma unroll
    for (int m = 0; m < MM; m++) {
        if (m >= M) break;
        float s = warp_sum(acc[m]);
        if (lane == 0) y[(int64_t)m * N + n] = s;
    }
}

/* One warp per row n of W. */
template <int DT, int MM>
__global__ void gemv_kernel(float *y, const float *x, int M, int64_t K, const uint8_t *w, size_t ldw, int64_t N) {
    int64_t n = (int64_t)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (n >= N) return;   /* whole warps leave together */
    gemv_row<DT, MM>(y, N, n, x, M, K, w + (size_t)n * ldw, threadIdx.x & 31);
}

/* Several weights of one dtype against the same x in one launch (matmul_multi when decoding): warp w takes
 * row w - start[p] of part p, where start[p] <= w < start[p + 1]. */
typedef struct gemv_parts {
    float *y[RP_MATMUL_MAX_PARTS];
    const uint8_t *w[RP_MATMUL_MAX_PARTS];
    size_t ldw[RP_MATMUL_MAX_PARTS];
    int64_t N[RP_MATMUL_MAX_PARTS], start[RP_MATMUL_MAX_PARTS + 1];
    int n;
} gemv_parts;

template <int DT, int MM>
__global__ void gemv_multi_kernel(gemv_parts P, const float *x, int M, int64_t K) {
    int64_t wi = (int64_t)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (wi >= P.start[P.n]) return;
    int p = 0;
    while (p + 1 < P.n && wi >= P.start[p + 1]) p++;
    int64_t n = wi - P.start[p];
    gemv_row<DT, MM>(P.y[p], P.N[p], n, x, M, K, P.w[p] + (size_t)n * P.ldw[p], threadIdx.x & 31);
}

/* out[r, k] = element k of weight row r (fp32 or bf16 out). */
template <int DT, typename TO>
__global__ void dequant_kernel(TO *out, const uint8_t *w, size_t ldw, int64_t rows, int64_t K) {
    int64_t n = rows * K;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t r = i / K, k = i - r * K;
        float v = dequant<DT>(w + (size_t)r * ldw, k);
        if constexpr (sizeof(TO) == 4) out[i] = v;
        else out[i] = __float2bfloat16(v);
    }
}

/* Row-major f32 to bf16 (round to nearest even). */
__global__ void to_bf16_kernel(__nv_bfloat16 *out, const float *x, int64_t n) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        out[i] = __float2bfloat16(x[i]);
}

/* out[t, c] = element c of table row ids[t]; a bad id raises the flag. */
template <int DT>
__global__ void embed_kernel(float *out, const uint8_t *table, size_t row_bytes, int64_t V, int64_t C, const int32_t *ids,
                             int64_t T, int *flag) {
    int64_t n = T * C;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t t = i / C, c = i - t * C;
        int32_t id = ids[t];
        if (id < 0 || id >= V) { if (c == 0) raise_flag(flag, (int)t, id); continue; }
        out[i] = dequant<DT>(table + (size_t)id * row_bytes, c);
    }
}

static int use_bf16(void) {
    static int v = -1;
    if (v < 0) { const char *e = getenv("REPRO_CUDA_MATMUL"); v = e && strcmp(e, "bf16") == 0; }
    return v;
}

/* y[:, n0 : n0+R] = x · Wtileᵀ for a dequantized tile of R rows (fp32 or, with xb set, bf16). */
static rp_status tile_gemm(float *y, const float *x, const void *xb, int64_t M, int64_t K, const void *tile, int64_t R,
                           int64_t N, int64_t n0) {
    cublasHandle_t h = (cublasHandle_t)rp_cuda_cublas();
    const float one = 1.0f, zero = 0.0f;
    if (xb)
        return rp_cuda_blas_status(cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, (int)R, (int)M, (int)K, &one, tile, CUDA_R_16BF, (int)K, xb,
                                        CUDA_R_16BF, (int)K, &zero, y + n0, CUDA_R_32F, (int)N, CUBLAS_COMPUTE_32F,
                                        CUBLAS_GEMM_DEFAULT),
                           "bf16 matmul");
    return rp_cuda_blas_status(cublasSgemm(h, CUBLAS_OP_T, CUBLAS_OP_N, (int)R, (int)M, (int)K, &one, (const float *)tile, (int)K, x,
                                   (int)K, &zero, y + n0, (int)N),
                       "sgemm");
}

template <int DT>
static rp_status matmul_dt(float *y, const float *x, int64_t M, int64_t K, const uint8_t *w, size_t ldw, int64_t N) {
    if (M <= RP_CUDA_GEMV_ROWS) {
        unsigned blocks = (unsigned)((N + 3) / 4);
        if (M <= 1) gemv_kernel<DT, 1><<<blocks, 128>>>(y, x, (int)M, K, w, ldw, N);
        else if (M <= 4) gemv_kernel<DT, 4><<<blocks, 128>>>(y, x, (int)M, K, w, ldw, N);
        else gemv_kernel<DT, RP_CUDA_GEMV_ROWS><<<blocks, 128>>>(y, x, (int)M, K, w, ldw, N);
        RP_CUDA_LAUNCHED("matmul (gemv)");
        return RP_OK;
    }
    int bf = use_bf16();
    if (DT == RP_F32 && !bf && ldw % 4 == 0) {   /* the weight is already an fp32 matrix */
        cublasHandle_t h = (cublasHandle_t)rp_cuda_cublas();
        const float one = 1.0f, zero = 0.0f;
        return rp_cuda_blas_status(cublasSgemm(h, CUBLAS_OP_T, CUBLAS_OP_N, (int)N, (int)M, (int)K, &one, (const float *)w,
                                       (int)(ldw / 4), x, (int)K, &zero, y, (int)N),
                           "sgemm");
    }
    int64_t R = RP_CUDA_TILE_ELEMS / K;
    if (R > N) R = N;
    if (R < 1) R = 1;
    size_t el = bf ? 2 : 4, xbytes = bf ? (size_t)(M * K) * 2 : 0, xoff = (xbytes + 255) & ~(size_t)255;
    rp_cuda_lock();
    char *scr = (char *)rp_cuda_scratch(xoff + (size_t)(R * K) * el);
    rp_status st = scr ? RP_OK : rp_fail(RP_ERR_NOMEM, "cuda: matmul: no memory for a %lld x %lld weight tile", (long long)R, (long long)K);
    void *xb = NULL;
    if (st == RP_OK && bf) {
        xb = scr;
        to_bf16_kernel<<<grid_for(M * K, 256), 256>>>((__nv_bfloat16 *)xb, x, M * K);
        if (cudaGetLastError() != cudaSuccess) st = rp_fail(RP_ERR_UNSUPPORTED, "cuda: matmul: bf16 conversion launch failed");
    }
    for (int64_t n0 = 0; st == RP_OK && n0 < N; n0 += R) {
        int64_t r = N - n0 < R ? N - n0 : R;
        void *tile = scr + xoff;
        if (bf) dequant_kernel<DT, __nv_bfloat16><<<grid_for(r * K, 256), 256>>>((__nv_bfloat16 *)tile, w + (size_t)n0 * ldw, ldw, r, K);
        else dequant_kernel<DT, float><<<grid_for(r * K, 256), 256>>>((float *)tile, w + (size_t)n0 * ldw, ldw, r, K);
        cudaError_t e = cudaGetLastError();
        st = e != cudaSuccess ? rp_cuda_fail(e, "matmul (dequantize)") : tile_gemm(y, x, xb, M, K, tile, r, N, n0);
    }
    rp_cuda_unlock();
    return st;
}

/* Return fn<dt> args for each weight dtype (a template instance per dtype). */
#define DISPATCH(dt, fn, args)                                              \
    switch (dt) {                                                           \
    case RP_F32: return fn<RP_F32> args;                                    \
    case RP_F16: return fn<RP_F16> args;                                    \
    case RP_BF16: return fn<RP_BF16> args;                                  \
    case RP_Q4_0: return fn<RP_Q4_0> args;                                  \
    case RP_Q4_1: return fn<RP_Q4_1> args;                                  \
    case RP_Q8_0: return fn<RP_Q8_0> args;                                  \
    case RP_Q4_K: return fn<RP_Q4_K> args;                                  \
    case RP_Q6_K: return fn<RP_Q6_K> args;                                  \
    default: break;                                                         \
    }

template <int DT>
static rp_status dequant_rows_dt(float *out, const uint8_t *w, size_t ldw, int64_t rows, int64_t K) {
    dequant_kernel<DT, float><<<grid_for(rows * K, 256), 256>>>(out, w, ldw, rows, K);
    RP_CUDA_LAUNCHED("dequantize weight rows");
    return RP_OK;
}

/* out[rows, K] (f32, dense) = weight rows of dtype t, ldw bytes apart, dequantized on the device. */
rp_status rp_cuda_dequant_rows(float *out, const void *w, rp_dtype t, size_t ldw, int64_t rows, int64_t K) {
    if (rows <= 0) return RP_OK;
    const uint8_t *wb = (const uint8_t *)w;
    DISPATCH(t, dequant_rows_dt, (out, wb, ldw, rows, K));
    return rp_fail(RP_ERR_UNSUPPORTED, "backend cuda cannot dequantize dtype %s", rp_dtype_name(t));
}

static int weight_dtype(rp_dtype t) {
    return t == RP_F32 || t == RP_F16 || t == RP_BF16 || t == RP_Q4_0 || t == RP_Q4_1 || t == RP_Q8_0 || t == RP_Q4_K ||
           t == RP_Q6_K;
}

template <int DT>
static rp_status dequant_host_dt(const uint8_t *row, float *y, int64_t n) {
    for (int64_t k = 0; k < n; k++) y[k] = dequant<DT>(row, k);
    return RP_OK;
}

/* The device dequantizer on the host, element by element. */
rp_status rp_cuda_dequant_host(rp_dtype t, const void *row, float *y, int64_t n) {
    if (!weight_dtype(t) || rp_dtype_row_bytes(t, n) == 0)
        return rp_fail(RP_ERR_INVAL, "cuda: dequant_host: %lld elements of %s", (long long)n, rp_dtype_name(t));
    DISPATCH(t, dequant_host_dt, ((const uint8_t *)row, y, n));
    return RP_ERR_UNSUPPORTED;
}

/* Which dtypes the ops take on this backend. */
int rp_cuda_supports_op(const rp_backend *be, rp_op op, const rp_dtype *dtypes, int n_dtypes) {
    int weights = op == RP_OP_MATMUL || op == RP_OP_MATMUL_MULTI || op == RP_OP_EMBED;
    for (int i = 0; i < n_dtypes; i++)
        if (weights ? !weight_dtype(dtypes[i]) : dtypes[i] != RP_F32) return 0;
    return 1;
}

static rp_status check_rows(const char *op, rp_dtype wt, int64_t K, size_t ldw) {
    if (!weight_dtype(wt)) return rp_fail(RP_ERR_UNSUPPORTED, "backend cuda lacks op %s for dtype %s", op, rp_dtype_name(wt));
    size_t rb = rp_dtype_row_bytes(wt, K);
    if (K <= 0 || rb == 0) return rp_fail(RP_ERR_INVAL, "cuda: %s: rows of %lld elements are not whole %s blocks", op, (long long)K, rp_dtype_name(wt));
    if (ldw < rb) return rp_fail(RP_ERR_INVAL, "cuda: %s: row stride %zu bytes < row size %zu", op, ldw, rb);
    if (wt == RP_F32 && ldw % 4) return rp_fail(RP_ERR_INVAL, "cuda: %s: f32 row stride %zu bytes is not a multiple of 4", op, ldw);
    if (K > INT32_MAX) return rp_fail(RP_ERR_RANGE, "cuda: %s: K = %lld too large for cuBLAS", op, (long long)K);
    return RP_OK;
}

/* y = x · Wᵀ. */
rp_status rp_cuda_matmul(rp_backend *be, float *y, const float *x, int64_t M, int64_t K, const void *w, rp_dtype wt,
                         size_t w_row_bytes, int64_t N) {
    RP_TRY(check_rows("matmul", wt, K, w_row_bytes));
    if (M < 0 || N < 0 || M > INT32_MAX || N > INT32_MAX) return rp_fail(RP_ERR_RANGE, "cuda: matmul: M = %lld, N = %lld", (long long)M, (long long)N);
    if (M == 0 || N == 0) return RP_OK;
    const uint8_t *wb = (const uint8_t *)w;
    DISPATCH(wt, matmul_dt, (y, x, M, K, wb, w_row_bytes, N));
    return rp_fail(RP_ERR_UNSUPPORTED, "backend cuda lacks op matmul for dtype %s", rp_dtype_name(wt));
}

template <int DT>
static rp_status gemv_multi_dt(const gemv_parts *P, const float *x, int64_t M, int64_t K) {
    unsigned blocks = (unsigned)((P->start[P->n] + 3) / 4);
    if (M <= 1) gemv_multi_kernel<DT, 1><<<blocks, 128>>>(*P, x, (int)M, K);
    else if (M <= 4) gemv_multi_kernel<DT, 4><<<blocks, 128>>>(*P, x, (int)M, K);
    else gemv_multi_kernel<DT, RP_CUDA_GEMV_ROWS><<<blocks, 128>>>(*P, x, (int)M, K);
    RP_CUDA_LAUNCHED("matmul_multi (gemv)");
    return RP_OK;
}

/* Parts of one dtype with few rows: one launch for all of them; otherwise each part in turn (they share x). */
rp_status rp_cuda_matmul_multi(rp_backend *be, const float *x, int64_t M, int64_t K, const rp_matmul_part *parts, int n) {
    if (n < 1 || n > RP_MATMUL_MAX_PARTS) return rp_fail(RP_ERR_INVAL, "matmul: %d parts (1..%d)", n, RP_MATMUL_MAX_PARTS);
    int fuse = M >= 1 && M <= RP_CUDA_GEMV_ROWS;
    gemv_parts P;
    memset(&P, 0, sizeof P);
    P.n = n;
    for (int p = 0; p < n; p++) {
        RP_TRY(check_rows("matmul", parts[p].wt, K, parts[p].ldw));
        if (parts[p].N < 0 || parts[p].N > INT32_MAX) return rp_fail(RP_ERR_RANGE, "cuda: matmul: N = %lld", (long long)parts[p].N);
        fuse = fuse && parts[p].wt == parts[0].wt;
        P.y[p] = parts[p].y;
        P.w[p] = (const uint8_t *)parts[p].w;
        P.ldw[p] = parts[p].ldw;
        P.N[p] = parts[p].N;
        P.start[p + 1] = P.start[p] + parts[p].N;
    }
    if (fuse && P.start[n] > 0) { DISPATCH(parts[0].wt, gemv_multi_dt, (&P, x, M, K)); }
    for (int p = 0; p < n; p++) RP_TRY(rp_cuda_matmul(be, parts[p].y, x, M, K, parts[p].w, parts[p].wt, parts[p].ldw, parts[p].N));
    return RP_OK;
}

template <int DT>
static rp_status embed_dt(float *out, const uint8_t *table, size_t row_bytes, int64_t V, int64_t C, const int32_t *ids, int64_t T) {
    embed_kernel<DT><<<grid_for(T * C, 256), 256>>>(out, table, row_bytes, V, C, ids, T, rp_cuda_flag());
    RP_CUDA_LAUNCHED("embed");
    int raised, pos, val;
    RP_TRY(rp_cuda_flag_read(&raised, &pos, &val));
    if (raised) return rp_fail(RP_ERR_RANGE, "embed: token id %d at position %d outside vocabulary [0, %lld)", val, pos, (long long)V);
    return RP_OK;
}

/* Rows ids[t] of the table, dequantized. */
rp_status rp_cuda_embed(rp_backend *be, float *out, const void *table, rp_dtype dt, size_t row_bytes, int64_t V,
                        int64_t C, const int32_t *ids, int64_t T) {
    RP_TRY(check_rows("embed", dt, C, row_bytes));
    if (T <= 0) return RP_OK;
    const uint8_t *tb = (const uint8_t *)table;
    DISPATCH(dt, embed_dt, (out, tb, row_bytes, V, C, ids, T));
    return rp_fail(RP_ERR_UNSUPPORTED, "backend cuda lacks op embed for dtype %s", rp_dtype_name(dt));
}
