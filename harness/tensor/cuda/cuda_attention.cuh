/* cuda_attention.cuh: the part of causal GQA attention that the forward kernel (cuda_attention.cu) and the
 * backward kernel (cuda_backward.cu) share: one block per (query, head), its NW warps take the keys
 * 0 .. nk-1 in turn (warp w: keys w, w + NW, ...) with an online softmax each, and the warps' partial
 * results are merged through shared memory.
 * Invariants: qr holds the query, DPL values per lane (lane + 32·i, zero past D); on return, after a
 * __syncthreads, sh_acc[x][d] holds warp x's unnormalized value sum, and every thread has the row's max M,
 * normalizer L and each warp's rescale f[x], so o[d] = Σ_x sh_acc[x][d]·f[x] / L. */
#ifndef RP_TENSOR_CUDA_ATTENTION_CUH
#define RP_TENSOR_CUDA_ATTENTION_CUH
#include "tensor/cuda/cuda_common.cuh"

template <int DPL, int NW>
static __device__ void attn_softmax_pass(const float *qr, const float *kh, const float *vh, int64_t nk, int64_t kv_stride, int D,
                                         float scale, float (*sh_acc)[DPL * 32], float *sh_m, float *sh_l, float *M_out,
                                         float *L_out, float *f) {
    int w = threadIdx.x >> 5, lane = threadIdx.x & 31;
    float acc[DPL];
#pragma unroll
    for (int i = 0; i < DPL; i++) acc[i] = 0.0f;
    float m = -INFINITY, l = 0.0f;
    for (int64_t j = w; j < nk; j += NW) {
        const float *kr = kh + j * kv_stride, *vr = vh + j * kv_stride;
        float s = 0.0f;
#pragma unroll
        for (int i = 0; i < DPL; i++) {
            int d = lane + 32 * i;
            if (d < D) s += qr[i] * kr[d];
        }
        s = warp_sum(s) * scale;
        float mn = fmaxf(m, s), corr = expf(m - mn), p = expf(s - mn);
        l = l * corr + p;
#pragma unroll
        for (int i = 0; i < DPL; i++) {
            int d = lane + 32 * i;
            acc[i] = acc[i] * corr + (d < D ? p * vr[d] : 0.0f);
        }
        m = mn;
    }
#pragma unroll
    for (int i = 0; i < DPL; i++) sh_acc[w][lane + 32 * i] = acc[i];
    if (lane == 0) { sh_m[w] = m; sh_l[w] = l; }
    __syncthreads();
    float M = -INFINITY, L = 0.0f;
    for (int x = 0; x < NW; x++) M = fmaxf(M, sh_m[x]);
    for (int x = 0; x < NW; x++) { f[x] = sh_m[x] == -INFINITY ? 0.0f : expf(sh_m[x] - M); L += sh_l[x] * f[x]; }
    *M_out = M;
    *L_out = L;
}

#endif
