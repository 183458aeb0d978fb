/* cuda_rows.cu: the row-wise and elementwise ops on the GPU: RMSNorm, RoPE, SwiGLU, add, softmax,
 * log-softmax, cross-entropy, argmax, and the row gather / weighted scatter-add of expert routing.
 * Row reductions run one block per row with double accumulators for sums (as the reference does), so
 * results agree with ops_ref.c to float rounding; RoPE angles are computed in double from scratch.
 * Invariants: in-place calls (out == x) are safe: every row is fully reduced before any thread writes it;
 * scatter-add uses float atomics, so rows hit by several indices sum in an unspecified order (within
 * rounding of the reference's order); a bad index raises the error flag and the op returns RP_ERR_RANGE
 * with the reference's message. */
#include "tensor/cuda/cuda_common.cuh"
#include <math.h>

#define ROW_THREADS 256

__global__ void rmsnorm_kernel(float *out, const float *x, const float *w, int64_t C, float eps) {
    __shared__ double sh[32];
    const float *xr = x + (int64_t)blockIdx.x * C;
    float *o = out + (int64_t)blockIdx.x * C;
    double ss = 0;
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) ss += (double)xr[c] * xr[c];
    ss = block_sum(ss, sh);
    float r = (float)(1.0 / sqrt(ss / (double)C + eps));
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) o[c] = xr[c] * r * (w ? w[c] : 1.0f);
}

/* RMSNorm of each row. */
rp_status rp_cuda_rmsnorm(rp_backend *be, float *out, const float *x, const float *w, int64_t T, int64_t C, float eps) {
    if (T <= 0) return RP_OK;
    if (T > INT32_MAX) return rp_fail(RP_ERR_RANGE, "cuda: rmsnorm: %lld rows", (long long)T);
    rmsnorm_kernel<<<(unsigned)T, ROW_THREADS>>>(out, x, w, C, eps);
    RP_CUDA_LAUNCHED("rmsnorm");
    return RP_OK;
}

__global__ void rope_kernel(float *x, int64_t T, int H, int D, int half, const int32_t *pos, double base, int neox, int sign) {
    int64_t n = T * H * half;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        int p = (int)(i % half);
        int64_t th = i / half, t = th / H;
        float *v = x + th * D;
        double ang = (double)sign * (double)pos[t] * pow(base, -2.0 * p / (2 * half)), c, s;
        sincos(ang, &s, &c);
        int a = neox ? p : 2 * p, b = neox ? p + half : 2 * p + 1;
        double x0 = v[a], x1 = v[b];
        v[a] = (float)(x0 * c - x1 * s);
        v[b] = (float)(x0 * s + x1 * c);
    }
}

/* Rotary embedding in place at positions sign·pos[t] (sign -1: the inverse rotation, RoPE's backward). */
rp_status rp_cuda_rope_signed(float *x, int64_t T, int H, int D, int rope_dim, const int32_t *pos, float base, int neox,
                              int sign) {
    if (rope_dim > D || rope_dim % 2) return rp_fail(RP_ERR_INVAL, "rope: rope_dim %d must be even and <= head size %d", rope_dim, D);
    int64_t n = T * H * (rope_dim / 2);
    if (n <= 0) return RP_OK;
    rope_kernel<<<grid_for(n, 256), 256>>>(x, T, H, D, rope_dim / 2, pos, (double)base, neox, sign);
    RP_CUDA_LAUNCHED(sign > 0 ? "rope" : "rope backward");
    return RP_OK;
}

/* Rotary embedding in place. */
rp_status rp_cuda_rope(rp_backend *be, float *x, int64_t T, int H, int D, int rope_dim, const int32_t *pos, float base,
                       int neox) {
    return rp_cuda_rope_signed(x, T, H, D, rope_dim, pos, base, neox, 1);
}

__global__ void swiglu_kernel(float *out, const float *gate, const float *up, int64_t n) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        float g = gate[i];
        out[i] = g / (1.0f + expf(-g)) * (up ? up[i] : 1.0f);
    }
}

/* silu(gate) · up. */
rp_status rp_cuda_swiglu(rp_backend *be, float *out, const float *gate, const float *up, int64_t n) {
    if (n <= 0) return RP_OK;
    swiglu_kernel<<<grid_for(n, 256), 256>>>(out, gate, up, n);
    RP_CUDA_LAUNCHED("swiglu");
    return RP_OK;
}

__global__ void add_kernel(float *y, const float *a, const float *b, int64_t n) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) y[i] = a[i] + b[i];
}

/* Elementwise sum. */
rp_status rp_cuda_add(rp_backend *be, float *y, const float *a, const float *b, int64_t n) {
    if (n <= 0) return RP_OK;
    add_kernel<<<grid_for(n, 256), 256>>>(y, a, b, n);
    RP_CUDA_LAUNCHED("add");
    return RP_OK;
}

/* mode 0: softmax, 1: log-softmax (out may equal x). */
__global__ void softmax_kernel(float *out, const float *x, int64_t n, int mode) {
    const float *v = x + (int64_t)blockIdx.x * n;
    float *o = out + (int64_t)blockIdx.x * n;
    float mx;
    double lse;
    row_lse(v, n, &mx, &lse);
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x)
        o[i] = mode ? (float)((double)v[i] - lse) : (float)exp((double)v[i] - lse);
}

static rp_status rows_ok(const char *op, int64_t rows, int64_t n) {
    if (rows > INT32_MAX || n <= 0) return rp_fail(RP_ERR_INVAL, "cuda: %s: %lld rows of %lld", op, (long long)rows, (long long)n);
    return RP_OK;
}

/* Softmax of each row in place. */
rp_status rp_cuda_softmax(rp_backend *be, float *x, int64_t rows, int64_t n) {
    if (rows <= 0) return RP_OK;
    RP_TRY(rows_ok("softmax", rows, n));
    softmax_kernel<<<(unsigned)rows, ROW_THREADS>>>(x, x, n, 0);
    RP_CUDA_LAUNCHED("softmax");
    return RP_OK;
}

/* Log-softmax of each row. */
rp_status rp_cuda_log_softmax(rp_backend *be, float *out, const float *x, int64_t rows, int64_t n) {
    if (rows <= 0) return RP_OK;
    RP_TRY(rows_ok("log_softmax", rows, n));
    softmax_kernel<<<(unsigned)rows, ROW_THREADS>>>(out, x, n, 1);
    RP_CUDA_LAUNCHED("log_softmax");
    return RP_OK;
}

__global__ void cross_entropy_kernel(float *loss, const float *logits, const int32_t *target, int64_t n, int *flag) {
    int64_t r = blockIdx.x;
    int32_t tg = target[r];
    if (tg < 0 || tg >= n) { if (threadIdx.x == 0) raise_flag(flag, (int)r, tg); return; }   /* uniform per block */
    const float *v = logits + r * n;
    float mx;
    double lse;
    row_lse(v, n, &mx, &lse);
    if (threadIdx.x == 0) loss[r] = (float)(lse - v[tg]);
}

/* Negative log-likelihood of each row's target. */
rp_status rp_cuda_cross_entropy(rp_backend *be, float *loss, const float *logits, const int32_t *target, int64_t rows,
                                int64_t n) {
    if (rows <= 0) return RP_OK;
    RP_TRY(rows_ok("cross_entropy", rows, n));
    cross_entropy_kernel<<<(unsigned)rows, ROW_THREADS>>>(loss, logits, target, n, rp_cuda_flag());
    RP_CUDA_LAUNCHED("cross_entropy");
    int raised, pos, val;
    RP_TRY(rp_cuda_flag_read(&raised, &pos, &val));
    if (raised) return rp_fail(RP_ERR_RANGE, "cross_entropy: target %d of row %d outside [0, %lld)", val, pos, (long long)n);
    return RP_OK;
}

__global__ void argmax_kernel(int32_t *out, const float *x, int64_t n) {
    __shared__ float sv[32];
    __shared__ int64_t si[32];
    const float *v = x + (int64_t)blockIdx.x * n;
    float best = v[0];
    int64_t bi = 0;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x)   /* each thread keeps its first largest */
        if (v[i] > best || (i < bi && v[i] == best)) { best = v[i]; bi = i; }
    for (int o = 16; o > 0; o >>= 1) {
        float ov = __shfl_xor_sync(0xffffffffu, best, o);
        int64_t oi = __shfl_xor_sync(0xffffffffu, bi, o);
        if (ov > best || (ov == best && oi < bi)) { best = ov; bi = oi; }
    }
    int w = threadIdx.x >> 5, l = threadIdx.x & 31, nw = blockDim.x >> 5;
    if (l == 0) { sv[w] = best; si[w] = bi; }
    __syncthreads();
    if (threadIdx.x == 0) {
        for (int k = 1; k < nw; k++)
            if (sv[k] > best || (sv[k] == best && si[k] < bi)) { best = sv[k]; bi = si[k]; }
        out[blockIdx.x] = (int32_t)bi;
    }
}

/* Index of each row's maximum, the first on ties. */
rp_status rp_cuda_argmax(rp_backend *be, int32_t *out, const float *x, int64_t rows, int64_t n) {
    if (n <= 0 || n > INT32_MAX) return rp_fail(RP_ERR_INVAL, "argmax: rows of %lld", (long long)n);
    if (rows <= 0) return RP_OK;
    RP_TRY(rows_ok("argmax", rows, n));
    argmax_kernel<<<(unsigned)rows, ROW_THREADS>>>(out, x, n);
    RP_CUDA_LAUNCHED("argmax");
    return RP_OK;
}

__global__ void gather_kernel(float *out, const float *x, int64_t rows_x, int64_t C, const int32_t *idx, int64_t n, int *flag) {
    int64_t total = n * C;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t r = i / C, c = i - r * C;
        int32_t id = idx[r];
        if (id < 0 || id >= rows_x) { if (c == 0) raise_flag(flag, (int)r, id); continue; }
        out[i] = x[(int64_t)id * C + c];
    }
}

/* out[i] = x[idx[i]]. */
rp_status rp_cuda_gather_rows(rp_backend *be, float *out, const float *x, int64_t rows_x, int64_t C, const int32_t *idx,
                              int64_t n) {
    if (n <= 0 || C <= 0) return RP_OK;
    gather_kernel<<<grid_for(n * C, 256), 256>>>(out, x, rows_x, C, idx, n, rp_cuda_flag());
    RP_CUDA_LAUNCHED("gather_rows");
    int raised, pos, val;
    RP_TRY(rp_cuda_flag_read(&raised, &pos, &val));
    if (raised) return rp_fail(RP_ERR_RANGE, "gather_rows: index %d at %d outside [0, %lld)", val, pos, (long long)rows_x);
    return RP_OK;
}

__global__ void check_idx_kernel(const int32_t *idx, int64_t n, int64_t rows, int *flag) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        if (idx[i] < 0 || idx[i] >= rows) raise_flag(flag, (int)i, idx[i]);
}

__global__ void scatter_add_kernel(float *out, int64_t rows_out, const float *x, int64_t C, const int32_t *idx,
                                   const float *weight, int64_t n) {
    int64_t total = n * C;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t r = i / C, c = i - r * C;
        atomicAdd(out + (int64_t)idx[r] * C + c, (weight ? weight[r] : 1.0f) * x[i]);
    }
}

/* out[idx[i]] += weight[i] · x[i]; every index is checked before anything is added (nothing half-done). */
rp_status rp_cuda_scatter_add_rows(rp_backend *be, float *out, int64_t rows_out, const float *x, int64_t C,
                                   const int32_t *idx, const float *weight, int64_t n) {
    if (n <= 0 || C <= 0) return RP_OK;
    check_idx_kernel<<<grid_for(n, 256), 256>>>(idx, n, rows_out, rp_cuda_flag());
    RP_CUDA_LAUNCHED("scatter_add_rows (index check)");
    int raised, pos, val;
    RP_TRY(rp_cuda_flag_read(&raised, &pos, &val));
    if (raised) return rp_fail(RP_ERR_RANGE, "scatter_add_rows: index %d at %d outside [0, %lld)", val, pos, (long long)rows_out);
    scatter_add_kernel<<<grid_for(n * C, 256), 256>>>(out, rows_out, x, C, idx, weight, n);
    RP_CUDA_LAUNCHED("scatter_add_rows");
    return RP_OK;
}
