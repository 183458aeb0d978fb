/* cuda_backward.cu: the backward op table on the GPU (rp_bwd_cuda, backward.h's rp_bwd_ops with every pointer a
 * buffer of the cuda backend): each kernel is the adjoint of its forward op, with the meaning, layouts and
 * argument order of the reference table (backward_ref.c), which tests/test_ops_backward.c compares it against.
 * - matmul: cuBLAS sgemm with beta = 1 (dx += dy·W; dw += dyᵀ·x, f32 weights only); other weight dtypes are
 *   dequantized tile by tile into the scratch first (they are constants: dw must be NULL, as on the CPU).
 * - attention: one block per (query, head), flash style in two passes over the keys (no T×T matrix): pass one
 *   recomputes the softmax's max and normalizer and the output o, giving Δ = ⟨dout, o⟩; pass two adds
 *   dS·K to dq (owned by the block) and dS·q, p·dout to dk, dv with float atomics (keys are shared).
 * - selective scan: one thread per state (d, n), lanes of a warp grouped as the forward's; the states are
 *   checkpointed every RP_CUDA_SCAN_CHUNK steps into the scratch and recomputed chunk by chunk backwards.
 * - row ops one block per row (double sums), elementwise ops grid-stride loops.
 * Invariants: gradients are accumulated (+=), a NULL gradient is skipped; the backward context b is unused
 * (NULL is fine); indices are validated on the device before anything is added, so a bad index leaves
 * every gradient untouched and returns RP_ERR_RANGE with the reference's message; the only memory is the
 * backend's grow-only scratch (under its lock), so a training step loop allocates nothing after the first
 * step. Sums hit by several atomics (dk, dv, dB, dC, embedding rows) are in an unspecified order. */
#include "tensor/cuda/cuda_attention.cuh"
#include <cublas_v2.h>
#include <math.h>
extern "C" {
#include "tensor/backward.h"
}

#define BW_THREADS 256
#define RP_CUDA_SCAN_CHUNK 32
#define RP_CUDA_BWD_TILE (64ll << 20)

/* Every index in [0, rows), checked before a scatter (the flag holds the first bad one). */
__global__ void bw_check_idx(const int32_t *idx, int64_t n, int64_t rows, const uint8_t *mask, int *flag) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        if ((!mask || mask[i]) && (idx[i] < 0 || idx[i] >= rows)) raise_flag(flag, (int)i, idx[i]);
}

/* RP_ERR_RANGE with msg (a format taking value, position, bound) when an index of idx[0..n) is outside [0, rows). */
static rp_status check_idx(const int32_t *idx, int64_t n, int64_t rows, const uint8_t *mask, const char *msg) {
    if (n <= 0) return RP_OK;
    if (n > INT32_MAX) return rp_fail(RP_ERR_RANGE, "cuda: %lld indices", (long long)n);
    bw_check_idx<<<grid_for(n, 256), 256>>>(idx, n, rows, mask, rp_cuda_flag());
    RP_CUDA_LAUNCHED("index check");
    int raised, pos, val;
    RP_TRY(rp_cuda_flag_read(&raised, &pos, &val));
    if (raised) return rp_fail(RP_ERR_RANGE, msg, val, pos, (long long)rows);
    return RP_OK;
}

/* ---- matmul ---- */

__global__ void bw_colsum(float *db, const float *dy, int64_t M, int64_t N) {
    for (int64_t n = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; n < N; n += (int64_t)gridDim.x * blockDim.x) {
        double acc = 0;
        for (int64_t m = 0; m < M; m++) acc += dy[m * N + n];
        db[n] += (float)acc;
    }
}

/* dx += dy·W, dw += dyᵀ·x, db += Σ_m dy (row-major buffers; cuBLAS sees their transposes). */
static rp_status cuda_matmul_backward(rp_bwd *b, float *dx, float *dw, float *db, const float *dy, const float *x,
                                      int64_t M, int64_t K, const void *w, rp_dtype wt, size_t w_row_bytes, int64_t N) {
    (void)b;
    size_t rb = rp_dtype_row_bytes(wt, K);
    if (K <= 0 || rb == 0 || w_row_bytes < rb)
        return rp_fail(RP_ERR_INVAL, "cuda: matmul backward: %lld-element rows of %s, %zu bytes apart", (long long)K, rp_dtype_name(wt), w_row_bytes);
    if (dw && wt != RP_F32)
        return rp_fail(RP_ERR_UNSUPPORTED, "matmul backward: weight gradient asked for a %s weight (quantized weights are constants; train an adapter)",
                       rp_dtype_name(wt));
    if (wt == RP_F32 && w_row_bytes % 4) return rp_fail(RP_ERR_INVAL, "cuda: matmul backward: f32 row stride %zu", w_row_bytes);
    if (M <= 0 || N <= 0) return RP_OK;
    if (M > INT32_MAX || N > INT32_MAX || K > INT32_MAX) return rp_fail(RP_ERR_RANGE, "cuda: matmul backward: %lld x %lld x %lld", (long long)M, (long long)K, (long long)N);
    cublasHandle_t h = (cublasHandle_t)rp_cuda_cublas();
    const float one = 1.0f;
    if (db) {
        bw_colsum<<<grid_for(N, 256), 256>>>(db, dy, M, N);
        RP_CUDA_LAUNCHED("matmul backward (bias)");
    }
    if (dw)   /* dwᵀ[K,N] += xᵀ[K,M] · dy[M,N] */
        RP_TRY(rp_cuda_blas_status(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_T, (int)K, (int)N, (int)M, &one, x, (int)K, dy, (int)N, &one, dw,
                                               (int)(w_row_bytes / 4)), "matmul backward (dw sgemm)"));
    if (!dx) return RP_OK;
    if (wt == RP_F32)   /* dxᵀ[K,M] += Wᵀ[K,N] · dyᵀ[N,M] */
        return rp_cuda_blas_status(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, (int)K, (int)M, (int)N, &one, (const float *)w,
                                               (int)(w_row_bytes / 4), dy, (int)N, &one, dx, (int)K), "matmul backward (dx sgemm)");
    int64_t R = RP_CUDA_BWD_TILE / K;
    if (R > N) R = N;
    if (R < 1) R = 1;
    rp_cuda_lock();
    float *tile = (float *)rp_cuda_scratch((size_t)(R * K) * sizeof(float));
    rp_status st = tile ? RP_OK : rp_fail(RP_ERR_NOMEM, "cuda: matmul backward: no memory for a %lld x %lld weight tile", (long long)R, (long long)K);
    for (int64_t n0 = 0; st == RP_OK && n0 < N; n0 += R) {
        int64_t r = N - n0 < R ? N - n0 : R;
        st = rp_cuda_dequant_rows(tile, (const uint8_t *)w + (size_t)n0 * w_row_bytes, wt, w_row_bytes, r, K);
        if (st == RP_OK)   /* dxᵀ[K,M] += tileᵀ[K,r] · dy[:, n0:n0+r]ᵀ */
            st = rp_cuda_blas_status(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, (int)K, (int)M, (int)r, &one, tile, (int)K, dy + n0, (int)N,
                                                 &one, dx, (int)K), "matmul backward (dx sgemm, dequantized tile)");
    }
    rp_cuda_unlock();
    return st;
}

/* ---- rows scattered by index: embedding, gather ---- */

__global__ void bw_scatter_rows(float *dx, int64_t C, const int32_t *idx, int64_t n, const float *dout) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n * C; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t r = i / C, c = i - r * C;
        atomicAdd(dx + (int64_t)idx[r] * C + c, dout[i]);
    }
}

/* dx[idx[i]] += dout[i]. */
static rp_status cuda_gather_rows_backward(rp_bwd *b, float *dx, int64_t rows_x, int64_t C, const int32_t *idx, int64_t n,
                                           const float *dout) {
    (void)b;
    if (n <= 0 || C <= 0 || !dx) return RP_OK;
    RP_TRY(check_idx(idx, n, rows_x, NULL, "gather backward: index %d at %d outside [0, %lld)"));
    bw_scatter_rows<<<grid_for(n * C, 256), 256>>>(dx, C, idx, n, dout);
    RP_CUDA_LAUNCHED("gather_rows backward");
    return RP_OK;
}

/* dtable[ids[t]] += dout[t]. */
static rp_status cuda_embed_backward(rp_bwd *b, float *dtable, int64_t V, int64_t C, const int32_t *ids, int64_t T,
                                     const float *dout) {
    return cuda_gather_rows_backward(b, dtable, V, C, ids, T, dout);
}

/* ---- row ops ---- */

/* dx = r·(w∘dy) − r³/C · x · Σ(w∘dy∘x) per row; rs[t] = r for the dw pass. */
__global__ void bw_rmsnorm_rows(float *dx, float *rs, const float *dout, const float *x, const float *w, int64_t C, float eps) {
    __shared__ double sh[32];
    int64_t t = blockIdx.x;
    const float *xr = x + t * C, *dr = dout + t * C;
    double ss = 0, dot = 0;
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
        ss += (double)xr[c] * xr[c];
        dot += (double)dr[c] * (w ? w[c] : 1.0f) * xr[c];
    }
    ss = block_sum(ss, sh);
    dot = block_sum(dot, sh);
    double r = 1.0 / sqrt(ss / (double)C + eps);
    if (threadIdx.x == 0 && rs) rs[t] = (float)r;
    if (dx)
        for (int64_t c = threadIdx.x; c < C; c += blockDim.x)
            dx[t * C + c] += (float)(r * dr[c] * (w ? w[c] : 1.0f) - r * r * r / (double)C * xr[c] * dot);
}

/* dw[c] += Σ_t dout[t,c]·x[t,c]·rs[t] (one thread per column: no atomics, a fixed order). */
__global__ void bw_rmsnorm_dw(float *dw, const float *rs, const float *dout, const float *x, int64_t T, int64_t C) {
    for (int64_t c = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; c < C; c += (int64_t)gridDim.x * blockDim.x) {
        double acc = 0;
        for (int64_t t = 0; t < T; t++) acc += (double)dout[t * C + c] * x[t * C + c] * rs[t];
        dw[c] += (float)acc;
    }
}

/* RMSNorm backward: dx per row, dw by columns from the rows' 1/rms kept in the scratch. */
static rp_status cuda_rmsnorm_backward(rp_bwd *b, float *dx, float *dw, const float *dout, const float *x, const float *w,
                                       int64_t T, int64_t C, float eps) {
    (void)b;
    if (T <= 0 || C <= 0) return RP_OK;
    if (T > INT32_MAX) return rp_fail(RP_ERR_RANGE, "cuda: rmsnorm backward: %lld rows", (long long)T);
    rp_cuda_lock();
    float *rs = dw ? (float *)rp_cuda_scratch((size_t)T * sizeof(float)) : NULL;
    rp_status st = dw && !rs ? rp_fail(RP_ERR_NOMEM, "cuda: rmsnorm backward: no scratch for %lld rows", (long long)T) : RP_OK;
    if (st == RP_OK) {
        bw_rmsnorm_rows<<<(unsigned)T, BW_THREADS>>>(dx, rs, dout, x, w, C, eps);
        st = rp_cuda_launched("rmsnorm backward");
    }
    if (st == RP_OK && dw) {
        bw_rmsnorm_dw<<<grid_for(C, 128), 128>>>(dw, rs, dout, x, T, C);
        st = rp_cuda_launched("rmsnorm backward (dw)");
    }
    rp_cuda_unlock();
    return st;
}

/* The inverse rotation, in place. */
static rp_status cuda_rope_backward(rp_bwd *b, float *dx, int64_t T, int H, int D, int rope_dim, const int32_t *pos, float base,
                                    int neox) {
    (void)b;
    return rp_cuda_rope_signed(dx, T, H, D, rope_dim, pos, base, neox, -1);
}

__global__ void bw_swiglu(float *dgate, float *dup, const float *dout, const float *gate, const float *up, int64_t n) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        float g = gate[i], s = 1.0f / (1.0f + expf(-g)), u = up ? up[i] : 1.0f;
        if (dgate) dgate[i] += dout[i] * u * s * (1.0f + g * (1.0f - s));
        if (dup) dup[i] += dout[i] * g * s;
    }
}

/* d silu(g)/dg = σ(g)·(1 + g·(1 − σ(g))). */
static rp_status cuda_swiglu_backward(rp_bwd *b, float *dgate, float *dup, const float *dout, const float *gate, const float *up,
                                      int64_t n) {
    (void)b;
    if (n <= 0) return RP_OK;
    bw_swiglu<<<grid_for(n, 256), 256>>>(dgate, dup, dout, gate, up, n);
    RP_CUDA_LAUNCHED("swiglu backward");
    return RP_OK;
}

/* mode 0 softmax: dx += y∘(dy − ⟨dy, y⟩); mode 1 log-softmax: dx += dy − exp(y)·Σdy. */
__global__ void bw_softmax(float *dx, const float *dy, const float *y, int64_t n, int mode) {
    __shared__ double sh[32];
    const float *g = dy + (int64_t)blockIdx.x * n, *v = y + (int64_t)blockIdx.x * n;
    float *o = dx + (int64_t)blockIdx.x * n;
    double s = 0;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) s += mode ? (double)g[i] : (double)g[i] * v[i];
    s = block_sum(s, sh);
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x)
        o[i] += mode ? (float)(g[i] - exp((double)v[i]) * s) : (float)(v[i] * (g[i] - s));
}

static rp_status softmax_bw(float *dx, const float *dy, const float *y, int64_t rows, int64_t n, int mode) {
    if (rows <= 0 || n <= 0) return RP_OK;
    if (rows > INT32_MAX) return rp_fail(RP_ERR_RANGE, "cuda: softmax backward: %lld rows", (long long)rows);
    bw_softmax<<<(unsigned)rows, BW_THREADS>>>(dx, dy, y, n, mode);
    RP_CUDA_LAUNCHED(mode ? "log_softmax backward" : "softmax backward");
    return RP_OK;
}
static rp_status cuda_softmax_backward(rp_bwd *b, float *dx, const float *dy, const float *y, int64_t rows, int64_t n) {
    (void)b;
    return softmax_bw(dx, dy, y, rows, n, 0);
}
static rp_status cuda_log_softmax_backward(rp_bwd *b, float *dx, const float *dy, const float *y, int64_t rows, int64_t n) {
    (void)b;
    return softmax_bw(dx, dy, y, rows, n, 1);
}

/* dlogits[r] += dloss[r]·(softmax(logits[r]) − onehot(target[r])) for each scored row (targets checked before). */
__global__ void bw_cross_entropy(float *dl, const float *logits, const int32_t *target, const float *dloss, const uint8_t *mask,
                                 int64_t n) {
    int64_t r = blockIdx.x;
    if (mask && !mask[r]) return;   /* uniform per block */
    const float *v = logits + r * n;
    float mx;
    double lse;
    row_lse(v, n, &mx, &lse);
    double g = dloss ? dloss[r] : 1.0;
    int32_t tg = target[r];
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x)
        dl[r * n + i] += (float)(g * (exp((double)v[i] - lse) - (i == tg)));
}

static rp_status cuda_cross_entropy_backward(rp_bwd *b, float *dlogits, const float *logits, const int32_t *target,
                                             const float *dloss, const uint8_t *mask, int64_t rows, int64_t n) {
    (void)b;
    if (rows <= 0 || !dlogits) return RP_OK;
    if (rows > INT32_MAX || n <= 0) return rp_fail(RP_ERR_INVAL, "cuda: cross_entropy backward: %lld rows of %lld", (long long)rows, (long long)n);
    RP_TRY(check_idx(target, rows, n, mask, "cross_entropy backward: target %d of row %d outside [0, %lld)"));
    bw_cross_entropy<<<(unsigned)rows, BW_THREADS>>>(dlogits, logits, target, dloss, mask, n);
    RP_CUDA_LAUNCHED("cross_entropy backward");
    return RP_OK;
}

/* dx[i] += weight[i]·dout[idx[i]], dweight[i] += ⟨dout[idx[i]], x[i]⟩ (one block per row i). */
__global__ void bw_scatter_add(float *dx, float *dweight, const float *dout, const float *x, int64_t C, const int32_t *idx,
                               const float *weight) {
    __shared__ double sh[32];
    int64_t i = blockIdx.x;
    const float *g = dout + (int64_t)idx[i] * C, *xr = x + i * C;
    float wgt = weight ? weight[i] : 1.0f;
    double dot = 0;
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
        if (dx) dx[i * C + c] += wgt * g[c];
        dot += (double)g[c] * xr[c];
    }
    if (!dweight) return;   /* uniform per block */
    dot = block_sum(dot, sh);
    if (threadIdx.x == 0) dweight[i] += (float)dot;
}

static rp_status cuda_scatter_add_rows_backward(rp_bwd *b, float *dx, float *dweight, const float *dout, int64_t rows_out,
                                                const float *x, int64_t C, const int32_t *idx, const float *weight, int64_t n) {
    (void)b;
    if (n <= 0 || C <= 0 || (!dx && !dweight)) return RP_OK;
    RP_TRY(check_idx(idx, n, rows_out, NULL, "scatter_add backward: index %d at %d outside [0, %lld)"));
    bw_scatter_add<<<(unsigned)n, BW_THREADS>>>(dx, dweight, dout, x, C, idx, weight);
    RP_CUDA_LAUNCHED("scatter_add_rows backward");
    return RP_OK;
}

/* ---- attention ---- */

template <int DPL, int NW>
__global__ void bw_attention(float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k, const float *v,
                             int64_t pos0, int H, int group, int D, int64_t kv_stride, float scale) {
    __shared__ float sh_acc[NW][DPL * 32];
    __shared__ float sh_m[NW], sh_l[NW];
    int64_t t = blockIdx.x / H;
    int h = (int)(blockIdx.x % H), g = h / group, w = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const float *qv = q + ((int64_t)t * H + h) * D, *go = dout + ((int64_t)t * H + h) * D;
    float qr[DPL], gr[DPL], acc[DPL];
#pragma unroll
    for (int i = 0; i < DPL; i++) {
        int d = lane + 32 * i;
        qr[i] = d < D ? qv[d] : 0.0f;
        gr[i] = d < D ? go[d] : 0.0f;
    }
    /* pass 1: the forward's max, normalizer and output, merged over the warps */
    int64_t nk = pos0 + t + 1;
    float M, L, f[NW];
    attn_softmax_pass<DPL, NW>(qr, k + (int64_t)g * D, v + (int64_t)g * D, nk, kv_stride, D, scale, sh_acc, sh_m, sh_l, &M, &L, f);
    float delta = 0.0f;   /* Δ = ⟨dout, o⟩ = Σ_j p_j ⟨dout, v_j⟩ */
#pragma unroll
    for (int i = 0; i < DPL; i++) {
        int d = lane + 32 * i;
        if (d < D) {
            float o = 0.0f;
            for (int x = 0; x < NW; x++) o += sh_acc[x][d] * f[x];
            delta += gr[i] * (o / L);
        }
    }
    delta = warp_sum(delta);
    __syncthreads();   /* sh_acc is reused for dq below */
    /* pass 2: p_j, dS_j = p_j·(⟨dout, v_j⟩ − Δ)·scale; dq += dS_j k_j, dk_j += dS_j q, dv_j += p_j dout */
#pragma unroll
    for (int i = 0; i < DPL; i++) acc[i] = 0.0f;
    for (int64_t j = w; j < nk; j += NW) {
        const float *kr = k + j * kv_stride + (int64_t)g * D, *vr = v + j * kv_stride + (int64_t)g * D;
        float s = 0.0f, dp = 0.0f;
#pragma unroll
        for (int i = 0; i < DPL; i++) {
            int d = lane + 32 * i;
            if (d < D) { s += qr[i] * kr[d]; dp += gr[i] * vr[d]; }
        }
        s = warp_sum(s) * scale;
        dp = warp_sum(dp);
        float p = expf(s - M) / L, ds = p * (dp - delta) * scale;
        int64_t off = j * kv_stride + (int64_t)g * D;
#pragma unroll
        for (int i = 0; i < DPL; i++) {
            int d = lane + 32 * i;
            if (d < D) {
                acc[i] += ds * kr[d];
                if (dk) atomicAdd(dk + off + d, ds * qr[i]);
                if (dv) atomicAdd(dv + off + d, p * gr[i]);
            }
        }
    }
    if (!dq) return;   /* uniform per block */
#pragma unroll
    for (int i = 0; i < DPL; i++) sh_acc[w][lane + 32 * i] = acc[i];
    __syncthreads();
    float *o = dq + ((int64_t)t * H + h) * D;
    for (int d = threadIdx.x; d < D; d += blockDim.x) {
        float s = 0.0f;
        for (int x = 0; x < NW; x++) s += sh_acc[x][d];
        o[d] += s;
    }
}

template <int DPL>
static void bw_attention_launch(unsigned blocks, float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k,
                                const float *v, int64_t pos0, int H, int group, int D, int64_t kv_stride, float scale) {
    bw_attention<DPL, 4><<<blocks, 128>>>(dq, dk, dv, dout, q, k, v, pos0, H, group, D, kv_stride, scale);
}

static rp_status cuda_attention_backward(rp_bwd *b, float *dq, float *dk, float *dv, const float *dout, const float *q,
                                         const float *k, const float *v, int64_t T, int64_t pos0, int H, int Hkv, int D,
                                         int64_t kv_stride, float scale) {
    (void)b;
    if (Hkv <= 0 || H % Hkv) return rp_fail(RP_ERR_INVAL, "attention backward: %d heads not a multiple of %d kv heads", H, Hkv);
    if (D <= 0 || D > 256) return rp_fail(RP_ERR_UNSUPPORTED, "cuda: attention backward: head size %d (1..256 supported)", D);
    if (T <= 0) return RP_OK;
    if (T * H > INT32_MAX || pos0 < 0) return rp_fail(RP_ERR_RANGE, "cuda: attention backward: %lld queries x %d heads at %lld", (long long)T, H, (long long)pos0);
    unsigned blocks = (unsigned)(T * H);
    int group = H / Hkv;
    if (D <= 32) bw_attention_launch<1>(blocks, dq, dk, dv, dout, q, k, v, pos0, H, group, D, kv_stride, scale);
    else if (D <= 64) bw_attention_launch<2>(blocks, dq, dk, dv, dout, q, k, v, pos0, H, group, D, kv_stride, scale);
    else if (D <= 128) bw_attention_launch<4>(blocks, dq, dk, dv, dout, q, k, v, pos0, H, group, D, kv_stride, scale);
    else bw_attention_launch<8>(blocks, dq, dk, dv, dout, q, k, v, pos0, H, group, D, kv_stride, scale);
    RP_CUDA_LAUNCHED("attention backward");
    return RP_OK;
}

/* ---- Mamba: conv1d, selective scan ---- */

/* dx[s,c] += Σ_k dy[s+K-1-k, c]·w[c,k] over the outputs that saw input s. */
__global__ void bw_conv_dx(float *dx, const float *dy, int64_t T, int64_t C, const float *w, int K) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < T * C; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t s = i / C, c = i - s * C;
        double acc = 0;
        for (int k = 0; k < K; k++) {
            int64_t t = s + K - 1 - k;
            if (t < T) acc += (double)dy[t * C + c] * w[c * K + k];
        }
        dx[i] += (float)acc;
    }
}

/* dw[c,k] += Σ_t dy[t,c]·x[t-K+1+k, c] (thread i = k·C + c, so neighbours read neighbouring channels); db by k == 0. */
__global__ void bw_conv_dw(float *dw, float *db, const float *dy, const float *x, int64_t T, int64_t C, int K) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (int64_t)K * C; i += (int64_t)gridDim.x * blockDim.x) {
        int k = (int)(i / C);
        int64_t c = i - (int64_t)k * C;
        double gw = 0, gb = 0;
        for (int64_t t = 0; t < T; t++) {
            int64_t s = t - K + 1 + k;
            if (s >= 0) gw += (double)dy[t * C + c] * x[s * C + c];
            if (k == 0) gb += dy[t * C + c];
        }
        if (dw) dw[c * K + k] += (float)gw;
        if (db && k == 0) db[c] += (float)gb;
    }
}

static rp_status cuda_conv1d_causal_backward(rp_bwd *b, float *dx, float *dw, float *db, const float *dout, const float *x,
                                             int64_t T, int64_t C, const float *w, int K) {
    (void)b;
    if (K < 1) return rp_fail(RP_ERR_INVAL, "conv1d_causal backward: kernel size %d < 1", K);
    if (T <= 0 || C <= 0) return RP_OK;
    if (dx) {
        bw_conv_dx<<<grid_for(T * C, 256), 256>>>(dx, dout, T, C, w, K);
        RP_CUDA_LAUNCHED("conv1d_causal backward (dx)");
    }
    if (dw || db) {
        bw_conv_dw<<<grid_for((int64_t)K * C, 128), 128>>>(dw, db, dout, x, T, C, K);
        RP_CUDA_LAUNCHED("conv1d_causal backward (dw)");
    }
    return RP_OK;
}

/* The state before each chunk's first step: H0[c, d, n] for chunks c of RP_CUDA_SCAN_CHUNK steps (H0[0] = 0). */
template <int NP>
__global__ void bw_scan_checkpoints(float *H0, const float *u, const float *dt, const float *A, const float *B, int64_t T,
                                    int64_t D, int N) {
    int64_t gi = (int64_t)blockIdx.x * blockDim.x + threadIdx.x, d = gi / NP;
    int n = (int)(gi % NP);
    if (d >= D || n >= N) return;   /* no shuffles here */
    float hs = 0.0f, a = A[d * N + n];
    for (int64_t t = 0; t < T; t++) {
        if (t % RP_CUDA_SCAN_CHUNK == 0) H0[(t / RP_CUDA_SCAN_CHUNK) * D * N + d * N + n] = hs;
        float dtv = dt[t * D + d];
        hs = expf(dtv * a) * hs + dtv * B[t * N + n] * u[t * D + d];
    }
}

/* Sum over the NP lanes of a channel (xor offsets below NP), every lane taking part. */
template <int NP> static __device__ __forceinline__ float lanes_sum(float v) {
    for (int o = NP / 2; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
/* Sum over the channels of a warp for the same n (xor offsets NP..16). */
template <int NP> static __device__ __forceinline__ float channels_sum(float v) {
    for (int o = NP; o < 32; o <<= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* The adjoint recurrence backwards in time, chunk by chunk from the checkpoints (as rp_ref_selective_scan_backward). */
template <int NP>
__global__ void bw_scan(float *du, float *ddt, float *dA, float *dB, float *dC, float *dDp, const float *H0, const float *dy,
                        const float *u, const float *dt, const float *A, const float *B, const float *Cm, const float *Dp, int64_t T,
                        int64_t D, int N) {
    int64_t gi = (int64_t)blockIdx.x * blockDim.x + threadIdx.x, d = gi / NP;
    int n = (int)(gi % NP), lane = threadIdx.x & 31;
    bool live = d < D && n < N, lead = d < D && n == 0;
    float a_n = live ? A[d * N + n] : 0.0f, dp = (Dp && d < D) ? Dp[d] : 0.0f;
    float g = 0.0f, gA = 0.0f, gD = 0.0f, hs[RP_CUDA_SCAN_CHUNK];
    int64_t nch = (T + RP_CUDA_SCAN_CHUNK - 1) / RP_CUDA_SCAN_CHUNK;
    for (int64_t c = nch - 1; c >= 0; c--) {
        int64_t t0 = c * RP_CUDA_SCAN_CHUNK, len = T - t0 < RP_CUDA_SCAN_CHUNK ? T - t0 : RP_CUDA_SCAN_CHUNK;
        float h0 = live ? H0[c * D * N + d * N + n] : 0.0f, hv = h0;
        for (int i = 0; i < len; i++) {   /* the chunk's states again */
            int64_t t = t0 + i;
            if (live) {
                float dtv = dt[t * D + d];
                hv = expf(dtv * a_n) * hv + dtv * B[t * N + n] * u[t * D + d];
            }
            hs[i] = hv;
        }
        for (int i = (int)len - 1; i >= 0; i--) {
            int64_t t = t0 + i;
            float dtv = 0.0f, x = 0.0f, gy = 0.0f, gd = 0.0f, gx = 0.0f, pc = 0.0f, pb = 0.0f;
            if (live) {
                dtv = dt[t * D + d];
                x = u[t * D + d];
                gy = dy[t * D + d];
                float a = expf(dtv * a_n), prev = i ? hs[i - 1] : h0;
                g += gy * Cm[t * N + n];
                pc = gy * hs[i];
                float da = g * a * prev;
                gd = da * a_n + g * B[t * N + n] * x;
                gA += da * dtv;
                pb = g * dtv * x;
                gx = g * dtv * B[t * N + n];
                g *= a;
            }
            gd = lanes_sum<NP>(gd);
            gx = lanes_sum<NP>(gx);
            pc = channels_sum<NP>(pc);
            pb = channels_sum<NP>(pb);
            if (lead) {
                if (ddt) ddt[t * D + d] += gd;
                if (du) du[t * D + d] += gx + (Dp ? gy * dp : 0.0f);
                gD += gy * x;
            }
            if (lane < NP && n < N && d < D) {   /* the warp's first channel adds the warp's sum for each n */
                if (dC) atomicAdd(dC + t * N + n, pc);
                if (dB) atomicAdd(dB + t * N + n, pb);
            }
        }
    }
    if (live && dA) dA[d * N + n] += gA;
    if (lead && dDp && Dp) dDp[d] += gD;
}

template <int NP>
static void bw_scan_launch(float *du, float *ddt, float *dA, float *dB, float *dC, float *dDp, float *H0, const float *dy,
                           const float *u, const float *dt, const float *A, const float *B, const float *Cm, const float *Dp,
                           int64_t T, int64_t D, int N) {
    unsigned blocks = (unsigned)((D * NP + 127) / 128);
    bw_scan_checkpoints<NP><<<blocks, 128>>>(H0, u, dt, A, B, T, D, N);
    bw_scan<NP><<<blocks, 128>>>(du, ddt, dA, dB, dC, dDp, H0, dy, u, dt, A, B, Cm, Dp, T, D, N);
}

static rp_status cuda_selective_scan_backward(rp_bwd *b, float *du, float *ddt, float *dA, float *dB, float *dC, float *dDp,
                                              const float *dy, const float *u, const float *dt, const float *A, const float *B,
                                              const float *Cm, const float *Dp, int64_t T, int64_t D, int64_t N,
                                              const float *ckpt) {
    (void)b; (void)ckpt;   /* its checkpoints are recomputed (the cuda forward saves none) */
    if (N < 1 || N > 32) return rp_fail(RP_ERR_UNSUPPORTED, "cuda: selective_scan backward: state size %lld (1..32 supported)", (long long)N);
    if (T <= 0 || D <= 0) return RP_OK;
    int np = 1;
    while (np < N) np <<= 1;
    if (D * np > (int64_t)INT32_MAX * 64) return rp_fail(RP_ERR_RANGE, "cuda: selective_scan backward: %lld channels", (long long)D);
    int64_t nch = (T + RP_CUDA_SCAN_CHUNK - 1) / RP_CUDA_SCAN_CHUNK;
    rp_cuda_lock();
    float *H0 = (float *)rp_cuda_scratch((size_t)(nch * D * N) * sizeof(float));
    rp_status st = H0 ? RP_OK : rp_fail(RP_ERR_NOMEM, "cuda: selective_scan backward: no scratch for %lld checkpoints of %lld x %lld states",
                                        (long long)nch, (long long)D, (long long)N);
    if (st == RP_OK) {
        switch (np) {
        case 1: bw_scan_launch<1>(du, ddt, dA, dB, dC, dDp, H0, dy, u, dt, A, B, Cm, Dp, T, D, (int)N); break;
        case 2: bw_scan_launch<2>(du, ddt, dA, dB, dC, dDp, H0, dy, u, dt, A, B, Cm, Dp, T, D, (int)N); break;
        case 4: bw_scan_launch<4>(du, ddt, dA, dB, dC, dDp, H0, dy, u, dt, A, B, Cm, Dp, T, D, (int)N); break;
        case 8: bw_scan_launch<8>(du, ddt, dA, dB, dC, dDp, H0, dy, u, dt, A, B, Cm, Dp, T, D, (int)N); break;
        case 16: bw_scan_launch<16>(du, ddt, dA, dB, dC, dDp, H0, dy, u, dt, A, B, Cm, Dp, T, D, (int)N); break;
        default: bw_scan_launch<32>(du, ddt, dA, dB, dC, dDp, H0, dy, u, dt, A, B, Cm, Dp, T, D, (int)N); break;
        }
        st = rp_cuda_launched("selective_scan backward");
    }
    rp_cuda_unlock();
    return st;
}

extern "C" const rp_bwd_ops rp_bwd_cuda = {
    "cuda", cuda_matmul_backward, cuda_embed_backward, cuda_rmsnorm_backward, cuda_rope_backward, cuda_attention_backward,
    cuda_swiglu_backward, cuda_softmax_backward, cuda_log_softmax_backward, cuda_cross_entropy_backward,
    cuda_gather_rows_backward, cuda_scatter_add_rows_backward, cuda_conv1d_causal_backward, cuda_selective_scan_backward,
};
