/* cuda_ssm.cu: the Mamba-side ops on the GPU: the causal depthwise conv1d with carried state and the
 * selective scan in its recurrent form: for N <= 32, one thread per state value (d, n) walks the T steps
 * with h[d,n] in a register and a group of NP (N rounded up to a power of two) lanes sums C·h over n with
 * shuffles, so D·NP threads keep the GPU busy; for 32 < N <= 64, one thread per channel holds all N
 * values. A chunked parallel scan over T is not written yet.
 * Invariants: the conv reads the old state before the state kernel overwrites it (same stream, launched
 * after); state sizes K-1 <= 64 and N <= 64 as in the reference's limits; the scan's arithmetic follows
 * ops_ref.c (float state update with expf; the sum over n in float by shuffles, or double in the wide kernel). */
#include "tensor/cuda/cuda_common.cuh"

__global__ void conv1d_kernel(float *out, const float *x, int64_t T, int64_t C, const float *w, const float *b, int K,
                              const float *state) {
    int64_t n = T * C;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t t = i / C, c = i - t * C;
        double acc = b ? b[c] : 0.0;
        for (int k = 0; k < K; k++) {
            int64_t src = t - K + 1 + k;
            double xv = src >= 0 ? x[src * C + c] : (state ? state[c * (K - 1) + (K - 1 + src)] : 0.0);
            acc += (double)w[c * K + k] * xv;
        }
        out[i] = (float)acc;
    }
}

/* The new state of channel c: the last K-1 inputs of [state, x] (ascending, so old entries are read before
 * they are overwritten). */
__global__ void conv1d_state_kernel(float *state, const float *x, int64_t T, int64_t C, int K) {
    for (int64_t c = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; c < C; c += (int64_t)gridDim.x * blockDim.x) {
        float *s = state + c * (K - 1);
        for (int i = 0; i < K - 1; i++) {
            int64_t src = T - (K - 1) + i;
            s[i] = src >= 0 ? x[src * C + c] : s[K - 1 + src];
        }
    }
}

/* Causal depthwise conv over T steps, state carried. */
rp_status rp_cuda_conv1d_causal(rp_backend *be, float *out, const float *x, int64_t T, int64_t C, const float *w,
                                const float *b, int K, float *state) {
    if (K < 1) return rp_fail(RP_ERR_INVAL, "conv1d_causal: kernel size %d < 1", K);
    if (K - 1 > 64) return rp_fail(RP_ERR_UNSUPPORTED, "conv1d_causal: kernel size %d > 65", K);
    if (T <= 0 || C <= 0) return RP_OK;
    conv1d_kernel<<<grid_for(T * C, 256), 256>>>(out, x, T, C, w, b, K, state);
    RP_CUDA_LAUNCHED("conv1d_causal");
    if (state && K > 1) {
        conv1d_state_kernel<<<grid_for(C, 128), 128>>>(state, x, T, C, K);
        RP_CUDA_LAUNCHED("conv1d_causal (state)");
    }
    return RP_OK;
}

template <int NMAX>
__global__ void scan_kernel(float *y, const float *u, const float *dt, const float *A, const float *B, const float *Cm,
                            const float *Dp, int64_t T, int64_t D, int N, float *h) {
    int64_t d = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (d >= D) return;
    float hs[NMAX], a[NMAX];
#pragma unroll
    for (int n = 0; n < NMAX; n++) {
        hs[n] = n < N ? h[d * N + n] : 0.0f;
        a[n] = n < N ? A[d * N + n] : 0.0f;
    }
    float dp = Dp ? Dp[d] : 0.0f;
    for (int64_t t = 0; t < T; t++) {
        float dtv = dt[t * D + d], uv = u[t * D + d];
        const float *Bt = B + t * N, *Ct = Cm + t * N;
        double acc = 0;
#pragma unroll
        for (int n = 0; n < NMAX; n++) {
            if (n < N) {
                hs[n] = expf(dtv * a[n]) * hs[n] + dtv * Bt[n] * uv;
                acc += (double)Ct[n] * hs[n];
            }
        }
        y[t * D + d] = (float)acc + (Dp ? dp * uv : 0.0f);
    }
#pragma unroll
    for (int n = 0; n < NMAX; n++)
        if (n < N) h[d * N + n] = hs[n];
}

/* One thread per (d, n): lanes [g·NP, g·NP + NP) of a warp hold channel d's states; all lanes take part
 * in the shuffles (lanes past N or D contribute 0). */
template <int NP>
__global__ void scan_lanes_kernel(float *y, const float *u, const float *dt, const float *A, const float *B, const float *Cm,
                                  const float *Dp, int64_t T, int64_t D, int N, float *h) {
    int64_t g = (int64_t)blockIdx.x * blockDim.x + threadIdx.x, d = g / NP;
    int n = (int)(g % NP);
    bool live = d < D && n < N;
    float hs = live ? h[d * N + n] : 0.0f, a = live ? A[d * N + n] : 0.0f, dp = (Dp && d < D) ? Dp[d] : 0.0f;
    for (int64_t t = 0; t < T; t++) {
        float dtv = 0.0f, uv = 0.0f, p = 0.0f;
        if (live) {
            dtv = dt[t * D + d];
            uv = u[t * D + d];
            hs = expf(dtv * a) * hs + dtv * B[t * N + n] * uv;
            p = Cm[t * N + n] * hs;
        }
        for (int o = NP / 2; o > 0; o >>= 1) p += __shfl_xor_sync(0xffffffffu, p, o, NP);
        if (live && n == 0) y[t * D + d] = p + (Dp ? dp * uv : 0.0f);
    }
    if (live) h[d * N + n] = hs;
}

/* Selective scan over T steps for D channels and N states; h read and updated. */
rp_status rp_cuda_selective_scan(rp_backend *be, float *y, const float *u, const float *dt, const float *A,
                                 const float *B, const float *Cm, const float *Dp, int64_t T, int64_t D, int64_t N,
                                 float *h, float *ckpt) {
    (void)ckpt;   /* the cuda backward computes its own checkpoints */
    if (N < 1 || N > 64) return rp_fail(RP_ERR_UNSUPPORTED, "cuda: selective_scan: state size %lld (1..64 supported)", (long long)N);
    if (T <= 0 || D <= 0) return RP_OK;
    int np = 1;
    while (np < N) np <<= 1;
    unsigned lanes = (unsigned)((D * np + 127) / 128);
    switch (np) {
    case 1: scan_lanes_kernel<1><<<lanes, 128>>>(y, u, dt, A, B, Cm, Dp, T, D, (int)N, h); break;
    case 2: scan_lanes_kernel<2><<<lanes, 128>>>(y, u, dt, A, B, Cm, Dp, T, D, (int)N, h); break;
    case 4: scan_lanes_kernel<4><<<lanes, 128>>>(y, u, dt, A, B, Cm, Dp, T, D, (int)N, h); break;
    case 8: scan_lanes_kernel<8><<<lanes, 128>>>(y, u, dt, A, B, Cm, Dp, T, D, (int)N, h); break;
    case 16: scan_lanes_kernel<16><<<lanes, 128>>>(y, u, dt, A, B, Cm, Dp, T, D, (int)N, h); break;
    case 32: scan_lanes_kernel<32><<<lanes, 128>>>(y, u, dt, A, B, Cm, Dp, T, D, (int)N, h); break;
    default: scan_kernel<64><<<(unsigned)((D + 127) / 128), 128>>>(y, u, dt, A, B, Cm, Dp, T, D, (int)N, h); break;
    }
    RP_CUDA_LAUNCHED("selective_scan");
    return RP_OK;
}
