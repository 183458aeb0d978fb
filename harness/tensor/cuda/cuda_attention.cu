/* cuda_attention.cu: causal grouped-query attention on the GPU for prefill and for decoding against the
 * KV cache, flash-attention style: scores are never stored. One block per (query t, head h); its warps
 * take the keys 0 .. pos0+t in turn (warp w: keys w, w + NW, ...), each with an online softmax (running
 * max m, normalizer l, weighted value sum in registers, D/32 values per lane), and the warps' partial
 * results are merged through shared memory at the end.
 * Invariants: memory is O(NW · D) shared floats per block whatever the context length; head sizes up to
 * 256 (D/32 values per lane in registers); query head h reads kv head h / (H / Hkv), as ops_ref.c. */
#include "tensor/cuda/cuda_attention.cuh"
#include <math.h>

template <int DPL, int NW>
__global__ void attention_kernel(float *out, const float *q, const float *k, const float *v, int64_t pos0, int H, int group,
                                 int D, int64_t kv_stride, float scale) {
    __shared__ float sh_acc[NW][DPL * 32];
    __shared__ float sh_m[NW], sh_l[NW];
    int64_t t = blockIdx.x / H;
    int h = (int)(blockIdx.x % H), g = h / group, lane = threadIdx.x & 31;
    const float *qv = q + ((int64_t)t * H + h) * D;
    float qr[DPL];
#pragma unroll
    for (int i = 0; i < DPL; i++) {
        int d = lane + 32 * i;
        qr[i] = d < D ? qv[d] : 0.0f;
    }
    float M, L, f[NW];
    attn_softmax_pass<DPL, NW>(qr, k + (int64_t)g * D, v + (int64_t)g * D, pos0 + t + 1, kv_stride, D, scale, sh_acc, sh_m, sh_l, &M,
                               &L, f);
    float *o = out + ((int64_t)t * H + h) * D;
    for (int d = threadIdx.x; d < D; d += blockDim.x) {
        float s = 0.0f;
        for (int x = 0; x < NW; x++) s += sh_acc[x][d] * f[x];
        o[d] = s / L;
    }
}

template <int DPL>
static void launch(int nw, unsigned blocks, float *out, const float *q, const float *k, const float *v, int64_t pos0, int H,
                   int group, int D, int64_t kv_stride, float scale) {
    if (nw == 8) attention_kernel<DPL, 8><<<blocks, 256>>>(out, q, k, v, pos0, H, group, D, kv_stride, scale);
    else attention_kernel<DPL, 4><<<blocks, 128>>>(out, q, k, v, pos0, H, group, D, kv_stride, scale);
}

/* Causal attention of T queries at positions pos0 .. pos0+T-1 against cache rows 0 .. pos0+t. */
rp_status rp_cuda_attention(rp_backend *be, float *out, const float *q, const float *k, const float *v, int64_t T,
                            int64_t pos0, int H, int Hkv, int D, int64_t kv_stride, float scale) {
    if (Hkv <= 0 || H % Hkv) return rp_fail(RP_ERR_INVAL, "attention: %d heads not a multiple of %d kv heads", H, Hkv);
    if (D <= 0 || D > 256) return rp_fail(RP_ERR_UNSUPPORTED, "cuda: attention: head size %d (1..256 supported)", D);
    if (T <= 0) return RP_OK;
    if (T * H > INT32_MAX || pos0 < 0) return rp_fail(RP_ERR_RANGE, "cuda: attention: %lld queries x %d heads at %lld", (long long)T, H, (long long)pos0);
    unsigned blocks = (unsigned)(T * H);
    int nw = blocks < 256 ? 8 : 4;   /* few queries (decoding): more warps share each one's keys */
    int group = H / Hkv;
    if (D <= 32) launch<1>(nw, blocks, out, q, k, v, pos0, H, group, D, kv_stride, scale);
    else if (D <= 64) launch<2>(nw, blocks, out, q, k, v, pos0, H, group, D, kv_stride, scale);
    else if (D <= 128) launch<4>(nw, blocks, out, q, k, v, pos0, H, group, D, kv_stride, scale);
    else launch<8>(nw, blocks, out, q, k, v, pos0, H, group, D, kv_stride, scale);
    RP_CUDA_LAUNCHED("attention");
    return RP_OK;
}
