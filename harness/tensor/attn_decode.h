/* attn_decode.h: the CPU attention of one decoding query (one new token) for a range of query heads,
 * reading each KV-cache row once for all the heads that use it. Internal to tensor/ (ops_cpu.c's attention
 * calls it when T == 1). */
#ifndef RP_ATTN_DECODE_H
#define RP_ATTN_DECODE_H
#include <stdint.h>

#define RP_ATTN_DECODE_MAX_HEADS 64   /* most query heads per call (callers split larger ranges) */

/* Whether rp_attn_decode_heads has a kernel for head dimension D (AVX-512 builds: 32, 64, 128; elsewhere
 * none: the caller keeps its matrix-vector route, which is also faster for tiny heads such as D = 8). */
int rp_attn_decode_supported(int D);
/* out[h] = softmax(scale · q[h] · K_g^T) · V_g for query heads h in [h0, h1) (h1 - h0 <= RP_ATTN_DECODE_MAX_HEADS;
 * head h at q + h·D and out + h·D), where g = h / group is its KV head: column g·D of nk cache rows of k and
 * v, kv_stride floats apart; D supported (above). S: scratch of (h1 - h0)·nk floats. Equal to the plain two-pass softmax attention
 * up to float rounding. */
void rp_attn_decode_heads(float *out, const float *q, const float *k, const float *v, int64_t nk, int h0, int h1, int group,
                          int D, int64_t kv_stride, float scale, float *S);

#endif
