/* test_ops.c: the engine's op-test program. test_every_op walks the op enum (backend.h) on every available
 * backend (ref, cpu), running each op through backend buffers (alloc, copy in, op, copy out) against the
 * "ref" backend with a normalized-error threshold per op written beside its case; a backend lacking an op
 * is reported by name. The tests before it go deeper on single kernels: awkward sizes, every weight
 * dtype, int8 paths, and the references against closed forms (rotations preserve norms, uniform logits
 * give log n, a first scan step, a conv split in two with carried state). Quantized formats and their dot
 * products: test_quant.c. test_simd checks the vector primitives of simd.h (the build's ISA: AVX-512, AVX2 or
 * plain C) against double loops at every length up to 40 (vector bodies, masked and scalar tails) and the
 * vector exp against libm over its whole range (overflow clamp, denormals, underflow to 0, -inf). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "check.h"
#include "tensor/backend.h"
#include "tensor/backend_cuda.h"
#ifdef RP_CUDA
#include "tensor/cuda/cuda_ops.h"
#endif
#include "tensor/ops.h"
#include "tensor/ops_ref.h"
#include "tensor/qdot.h"
#include "tensor/quant.h"
#include "tensor/simd.h"
#include "tensor/tensor.h"

#include "test_vectors.h"

/* Weight matrix [N,K] in dtype t (quantized from random floats). */
static void *make_w(rp_dtype t, int64_t N, int64_t K, size_t *ldw) {
    *ldw = rp_dtype_row_bytes(t, K);
    unsigned char *w = malloc(*ldw * (size_t)N);
    float *row = randv(K, 0.5f);
    for (int64_t n = 0; n < N; n++) {
        for (int64_t k = 0; k < K; k++) row[k] = frand() * 0.5f;
        if (t == RP_Q4_K || t == RP_Q6_K) {   /* no quantizer here: random bytes with sane scales */
            for (size_t i = 0; i < *ldw; i++) w[(size_t)n * *ldw + i] = (unsigned char)(rng >> (i % 56)), frand();
            size_t bb = rp_dtype_block_bytes(t);
            for (size_t b = 0; b < *ldw / bb; b++) {
                unsigned char *blk = w + (size_t)n * *ldw + b * bb;
                uint16_t d = rp_f32_to_f16(0.01f), dm = rp_f32_to_f16(0.005f);
                if (t == RP_Q4_K) { memcpy(blk, &d, 2); memcpy(blk + 2, &dm, 2); }
                else memcpy(blk + 208, &d, 2);
            }
        } else {
            rp_quantize_row(t, row, w + (size_t)n * *ldw, K);
        }
    }
    free(row);
    return w;
}

/* Every weight dtype a matmul takes, and one matmul case of it: W[N,K] (random, quantized), x[M,K], y for
 * the backend under test and yr from the reference. */
static const rp_dtype matmul_types[] = { RP_F32, RP_F16, RP_BF16, RP_Q4_0, RP_Q4_1, RP_Q8_0, RP_Q4_K, RP_Q6_K };
typedef struct mm_case { rp_dtype t; int64_t M, K, N; size_t ldw; void *w; float *x, *y, *yr; } mm_case;
static mm_case mm_case_new(rp_backend *ref, rp_dtype t, int64_t M) {
    mm_case c = { t, M, (t == RP_Q4_K || t == RP_Q6_K) ? 512 : 320, 200, 0, NULL, NULL, NULL, NULL };
    c.w = make_w(t, c.N, c.K, &c.ldw);
    c.x = randv(M * c.K, 1.0f);
    c.y = calloc((size_t)(M * c.N), 4);
    c.yr = calloc((size_t)(M * c.N), 4);
    CHECK(rp_ref_matmul(ref, c.yr, c.x, M, c.K, c.w, t, c.ldw, c.N) == RP_OK);
    return c;
}
static void mm_case_free(mm_case *c) { free(c->w); free(c->x); free(c->y); free(c->yr); }

/* simd.h primitives against double-precision loops, n = 0..40 (tails of every length), and the vector exp
 * against libm: within 1 ulp where e^x is a normal float, within one denormal step below, 0 for x <= -104. */
static void test_simd(void) {
    float a[40], b[40], y[40], y0[40], g[40];
    for (int n = 0; n <= 40; n++) {
        for (int i = 0; i < n; i++) { a[i] = 0.37f * (float)((i * 7) % 11) - 1.3f; b[i] = 0.21f * (float)((i * 5) % 13) - 1.1f; y0[i] = 0.5f - 0.03f * (float)i; }
        double dot = 0, mag = 1e-30, mx = -INFINITY, es = 0;
        for (int i = 0; i < n; i++) { dot += (double)a[i] * b[i]; mag += fabs((double)a[i] * b[i]); mx = fmax(mx, a[i]); }
        CHECK_NEAR(rp_vdot(a, b, n), dot, 1e-6 * mag);
        CHECK(n == 0 || rp_vmax(a, n) == (float)mx);
        memcpy(y, y0, sizeof y);
        rp_vaxpy(y, 0.75f, b, n);
        int bad = 0;
        for (int i = 0; i < 40; i++) bad += fabs(y[i] - (i < n ? y0[i] + 0.75 * b[i] : y0[i])) > 1e-6;   /* lanes past n untouched */
        memcpy(y, y0, sizeof y);
        rp_vmul_add(y, a, b, n);
        for (int i = 0; i < 40; i++) bad += fabs(y[i] - (i < n ? y0[i] + (double)a[i] * b[i] : y0[i])) > 1e-6;
        memcpy(y, a, sizeof y);
        rp_vscale(y, -1.5f, n);
        for (int i = 0; i < n; i++) bad += y[i] != -1.5f * a[i];
        rp_vswiglu(g, a, b, n);
        for (int i = 0; i < n; i++) bad += fabs(g[i] - a[i] / (1 + exp(-(double)a[i])) * b[i]) > 1e-6 * (1 + fabs(g[i]));
        memcpy(y, a, sizeof y);
        for (int i = 0; i < n; i++) es += exp((double)a[i] - 0.5);
        CHECK_NEAR(rp_vexp_sum(a, 0.5f, n), es, 1e-6 * es);
        CHECK_NEAR(rp_vexp_sub_sum(y, 0.5f, n), es, 1e-6 * es);
        for (int i = 0; i < 40; i++) bad += fabs(y[i] - (i < n ? exp((double)a[i] - 0.5) : a[i])) > 1e-6 * exp((double)a[i]);
        CHECK_MSG(bad == 0, "simd primitives: %d wrong values at n = %d", bad, n);
    }
    /* exp over [-110, 88.5] in 40-element calls (each covers body and tail), and the special inputs */
    enum { NX = 200000 };
    float *x = malloc(NX * sizeof *x), *e = malloc(NX * sizeof *e);
    for (int i = 0; i < NX; i++) x[i] = -110.0f + 198.5f * (float)i / (NX - 1);
    x[0] = -INFINITY;
    x[1] = 0.0f;
    x[2] = -103.999f;
    memcpy(e, x, NX * sizeof *e);
    for (int i = 0; i < NX; i += 37) rp_vexp_sub_sum(e + i, 0.0f, NX - i < 37 ? NX - i : 37);
    double worst = 0;
    int bad = 0;
    for (int i = 0; i < NX; i++) {
        double want = exp((double)x[i]);
        if (want >= 1.1754943508222875e-38) worst = fmax(worst, fabs(e[i] - want) / (want * 1.1920928955078125e-07));
        else if (x[i] <= -104.0f) bad += e[i] != 0.0f;
        else bad += fabs(e[i] - want) > 1.401298464324817e-45;
    }
    CHECK_MSG(worst <= 1.0, "vector exp: %.2f ulp worst (1 allowed; 0.65 measured on AVX2)", worst);
    CHECK_MSG(bad == 0 && e[0] == 0.0f && e[1] == 1.0f, "vector exp: %d wrong values in the denormal range or at 0 / -inf", bad);
    free(x);
    free(e);
}

static void test_matmul(rp_backend *cpu, rp_backend *ref, int int8) {
    int64_t Ms[] = { 1, 3, 8, 70 };
    for (size_t ti = 0; ti < sizeof matmul_types / sizeof matmul_types[0]; ti++)
        for (size_t mi = 0; mi < 4; mi++) {
            mm_case c = mm_case_new(ref, matmul_types[ti], Ms[mi]);
            rp_dtype t = c.t;
            int64_t M = c.M, K = c.K, N = c.N;
            void *w = c.w;
            float *x = c.x, *y = c.y;
            CHECK(RP_BACKEND_CALL(cpu, matmul, y, x, M, K, w, t, c.ldw, N) == RP_OK);
            double e = rel_err(y, c.yr, M * N);
            if (int8 && M < 8 && rp_qdot_supported(t)) {
                /* int8 activations: equal to the reference integer dot, within 1% of the f32 result */
                CHECK_MSG(e < 2e-2, "%s M=%lld: rel err %g vs f32 reference", rp_dtype_name(t), (long long)M, e);
                float d[16], s[16];
                int8_t q[512];
                rp_q8_row a = { d, s, q, 0 };
                double e2 = 0, mx = 1e-6;
                for (int64_t m = 0; m < M; m++) {
                    rp_quantize_row_q8(x + m * K, K, &a);
                    for (int64_t n = 0; n < N; n++) {
                        float r = rp_dot_q8_ref(t, (char *)w + n * c.ldw, &a, K);
                        e2 = fmax(e2, fabs(r - y[m * N + n]));
                        mx = fmax(mx, fabs(r));
                    }
                }
                CHECK_MSG(e2 / mx < 1e-5, "%s M=%lld: rel err %g vs integer reference", rp_dtype_name(t), (long long)M, e2 / mx);
            } else {
                CHECK_MSG(e < 1e-5, "%s M=%lld: rel err %g", rp_dtype_name(t), (long long)M, e);
            }
            mm_case_free(&c);
        }
}

/* Several matmuls sharing x in one call equal the reference matmul of each (same and mixed dtypes). */
static void test_matmul_multi(rp_backend *cpu, rp_backend *ref) {
    rp_dtype sets[2][3] = { { RP_Q4_1, RP_Q4_1, RP_Q4_1 }, { RP_Q8_0, RP_F16, RP_Q4_0 } };
    int64_t Ns[3] = { 96, 40, 136 }, Ms[3] = { 1, 3, 70 }, K = 256;
    for (int si = 0; si < 2; si++)
        for (int mi = 0; mi < 3; mi++) {
            int64_t M = Ms[mi];
            float *x = randv(M * K, 1.0f);
            rp_matmul_part parts[3];
            void *ws[3];
            float *want[3];
            for (int p = 0; p < 3; p++) {
                size_t ldw;
                ws[p] = make_w(sets[si][p], Ns[p], K, &ldw);
                parts[p] = (rp_matmul_part){ calloc((size_t)(M * Ns[p]), 4), ws[p], sets[si][p], ldw, Ns[p], NULL };
                want[p] = calloc((size_t)(M * Ns[p]), 4);
                CHECK(rp_ref_matmul(ref, want[p], x, M, K, ws[p], sets[si][p], ldw, Ns[p]) == RP_OK);
            }
            CHECK(RP_BACKEND_CALL(cpu, matmul_multi, x, M, K, parts, 3) == RP_OK);
            for (int p = 0; p < 3; p++) {
                CHECK_MSG(rel_err(parts[p].y, want[p], M * Ns[p]) < 1e-5, "set %d M=%lld part %d: %g", si, (long long)M, p,
                          rel_err(parts[p].y, want[p], M * Ns[p]));
                free(parts[p].y); free(want[p]); free(ws[p]);
            }
            free(x);
        }
    rp_matmul_part none[1];
    CHECK(RP_BACKEND_CALL(cpu, matmul_multi, NULL, 1, 32, none, 0) == RP_ERR_INVAL);
}

static void test_tensor_api(rp_backend *cpu) {
    rp_tensor *x, *w, *y, *v;
    int64_t sx[2] = { 5, 64 }, sw[2] = { 7, 64 }, sy[2] = { 5, 7 };
    CHECK(rp_tensor_new(cpu, RP_F32, 2, sx, &x) == RP_OK);
    CHECK(rp_tensor_new(cpu, RP_Q8_0, 2, sw, &w) == RP_OK);
    CHECK(rp_tensor_new(cpu, RP_F32, 2, sy, &y) == RP_OK);
    CHECK(w->stride[0] == 2 * 34);
    CHECK(rp_tensor_is_contiguous(x));
    float *xd = rp_tensor_data(x);
    for (int i = 0; i < 5 * 64; i++) xd[i] = frand();
    float wf[64];
    for (int r = 0; r < 7; r++) {
        for (int k = 0; k < 64; k++) wf[k] = (float)(r + 1) * (k % 2 ? 1.0f : -1.0f) / 8;
        rp_quantize_row(RP_Q8_0, wf, (char *)rp_tensor_data(w) + r * 68, 64);
    }
    CHECK(rp_op_matmul(y, x, w) == RP_OK);
    float *yd = rp_tensor_data(y);
    for (int m = 0; m < 5; m++) {
        double want = 0, mag = 0;   /* 5 rows: the int8-activation path, within 1% of the magnitude */
        for (int k = 0; k < 64; k++) { want += xd[m * 64 + k] * (k % 2 ? 1.0 : -1.0) / 8 * 3; mag += fabs(xd[m * 64 + k]) * 3 / 8; }
        CHECK_NEAR(yd[m * 7 + 2], want, 1e-2 * mag);
    }
    CHECK(rp_op_matmul(x, y, w) == RP_ERR_INVAL);   /* shape mismatch */
    CHECK(rp_tensor_narrow(x, 1, 3, &v) == RP_OK);
    CHECK(v->shape[0] == 2 && rp_tensor_data(v) == xd + 64);
    rp_tensor_free(v);
    CHECK(rp_tensor_narrow(x, 4, 6, &v) == RP_ERR_RANGE);
    rp_tensor bad;
    int64_t big[2] = { 1000, 1000 };
    CHECK(rp_tensor_init_view(&bad, x->storage, 0, RP_F32, 2, big) == RP_ERR_RANGE);
    int64_t odd[1] = { 33 };
    CHECK(rp_tensor_new(cpu, RP_Q4_0, 1, odd, &v) == RP_ERR_INVAL);
    rp_tensor_free(x); rp_tensor_free(w); rp_tensor_free(y);

    /* a backend without matmul: the op is an error, not a fallback */
    rp_backend_ops ops = *cpu->ops;
    ops.matmul = NULL;
    rp_backend lame = { "lame", &ops, NULL, NULL };
    float a = 1, b = 1, c;
    CHECK(RP_BACKEND_CALL(&lame, matmul, &c, &a, 1, 1, &b, RP_F32, 4, 1) == RP_ERR_UNSUPPORTED);
    CHECK(strstr(rp_errmsg(), "lame lacks op matmul") != NULL);
}

static void test_elementwise(rp_backend *cpu, rp_backend *ref) {
    const int T = 37, C = 200;
    float *x = randv(T * C, 4.0f), *w = randv(C, 1.0f), *a = calloc(T * C, 4), *b = calloc(T * C, 4);
    CHECK(RP_BACKEND_CALL(cpu, rmsnorm, a, x, w, T, C, 1e-5f) == RP_OK);
    CHECK(RP_BACKEND_CALL(ref, rmsnorm, b, x, w, T, C, 1e-5f) == RP_OK);
    CHECK(rel_err(a, b, T * C) < 1e-5);
    /* closed form: a row of constant c normalizes to ±1 */
    float ones[8] = { 3, 3, 3, 3, 3, 3, 3, 3 }, o[8];
    rp_ref_rmsnorm(ref, o, ones, NULL, 1, 8, 0);
    CHECK_NEAR(o[5], 1.0, 1e-6);

    float *up = randv(T * C, 4.0f);
    CHECK(RP_BACKEND_CALL(cpu, swiglu, a, x, up, T * C) == RP_OK);
    CHECK(RP_BACKEND_CALL(ref, swiglu, b, x, up, T * C) == RP_OK);
    CHECK(rel_err(a, b, T * C) < 1e-5);
    float g0 = 0, one = 1, r0;
    rp_ref_swiglu(ref, &r0, &g0, &one, 1);
    CHECK_NEAR(r0, 0.0, 1e-9);

    for (int i = 0; i < T * C; i++) x[i] *= 10;   /* wide logits */
    memcpy(a, x, sizeof(float) * T * C);
    memcpy(b, x, sizeof(float) * T * C);
    CHECK(RP_BACKEND_CALL(cpu, softmax, a, T, C) == RP_OK);
    CHECK(RP_BACKEND_CALL(ref, softmax, b, T, C) == RP_OK);
    CHECK(rel_err(a, b, T * C) < 1e-5);
    CHECK(RP_BACKEND_CALL(cpu, log_softmax, a, x, T, C) == RP_OK);
    CHECK(RP_BACKEND_CALL(ref, log_softmax, b, x, T, C) == RP_OK);
    CHECK(rel_err(a, b, T * C) < 1e-5);
    float *ls = malloc(sizeof(float) * T * C);
    memcpy(ls, b, sizeof(float) * T * C);
    int32_t tg[37];
    for (int t = 0; t < T; t++) tg[t] = (t * 31) % C;
    CHECK(RP_BACKEND_CALL(cpu, cross_entropy, a, x, tg, T, C) == RP_OK);
    CHECK(RP_BACKEND_CALL(ref, cross_entropy, b, x, tg, T, C) == RP_OK);
    CHECK(rel_err(a, b, T) < 1e-5);
    for (int t = 0; t < T; t++) CHECK_NEAR(b[t], -ls[t * C + tg[t]], 1e-4);
    free(ls);
    float zeros[100] = { 0 };
    int32_t t5 = 5, t100 = 100;
    CHECK(rp_ref_cross_entropy(ref, a, zeros, &t5, 1, 100) == RP_OK);
    CHECK_NEAR(a[0], log(100.0), 1e-5);
    CHECK(RP_BACKEND_CALL(cpu, cross_entropy, a, zeros, &t100, 1, 100) == RP_ERR_RANGE);
    free(x); free(w); free(a); free(b); free(up);
}

static void test_rope(rp_backend *cpu, rp_backend *ref) {
    const int T = 9, H = 3, D = 64;
    for (int neox = 0; neox < 2; neox++)
        for (int rd = 32; rd <= 64; rd += 32) {
            float *x = randv(T * H * D, 1.0f), *a = malloc(sizeof(float) * T * H * D), *b = malloc(sizeof(float) * T * H * D);
            int32_t pos[9];
            for (int t = 0; t < T; t++) pos[t] = t * 97;
            pos[0] = 0;
            memcpy(a, x, sizeof(float) * T * H * D);
            memcpy(b, x, sizeof(float) * T * H * D);
            CHECK(RP_BACKEND_CALL(cpu, rope, a, T, H, D, rd, pos, 10000.0f, neox) == RP_OK);
            CHECK(RP_BACKEND_CALL(ref, rope, b, T, H, D, rd, pos, 10000.0f, neox) == RP_OK);
            CHECK(rel_err(a, b, T * H * D) < 1e-5);
            for (int i = 0; i < H * D; i++) CHECK_NEAR(b[i], x[i], 1e-6);      /* position 0: identity */
            for (int i = rd; i < D; i++) CHECK_NEAR(b[5 * H * D + i], x[5 * H * D + i], 0);  /* unrotated dims */
            /* pair norms preserved */
            for (int i = 0; i < rd / 2; i++) {
                int p0 = neox ? i : 2 * i, p1 = neox ? i + rd / 2 : 2 * i + 1;
                float *v = b + 4 * H * D, *u = x + 4 * H * D;
                CHECK_NEAR(v[p0] * v[p0] + v[p1] * v[p1], u[p0] * u[p0] + u[p1] * u[p1], 1e-5);
            }
            /* adjacent layout at position 1, pair 0 rotates by exactly 1 radian */
            if (!neox) {
                float v[2] = { 1, 0 };
                int32_t p1 = 1;
                rp_ref_rope(ref, v, 1, 1, 2, 2, &p1, 10000.0f, 0);
                CHECK_NEAR(v[0], cos(1.0), 1e-6);
                CHECK_NEAR(v[1], sin(1.0), 1e-6);
            }
            free(x); free(a); free(b);
        }
}

static void test_attention(rp_backend *cpu, rp_backend *ref) {
    /* T == 1 is decoding: head dims 32 / 64 / 128 take attn_decode.c's kernels, others the sgemv route; long
     * caches cross many chunks with a tail; one KV head (MQA) is split over the threads; run on 1 and 2 threads */
    struct { int T, pos0, H, Hkv, D; } cases[] = { { 1, 0, 4, 4, 16 }, { 1, 37, 6, 2, 64 }, { 70, 5, 6, 2, 16 }, { 130, 0, 9, 3, 64 }, { 3, 10, 8, 4, 8 },
                                                   { 1, 1000, 8, 2, 32 }, { 1, 300, 9, 3, 64 }, { 1, 77, 4, 1, 128 }, { 1, 50, 8, 8, 48 },
                                                   { 1, 20, 130, 1, 32 }, { 1, 0, 8, 2, 32 } };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int T = cases[c].T, p0 = cases[c].pos0, H = cases[c].H, Hkv = cases[c].Hkv, D = cases[c].D;
        int64_t kvs = (int64_t)Hkv * D, nk = p0 + T;
        float *q = randv((int64_t)T * H * D, 1.0f), *k = randv(nk * kvs, 1.0f), *v = randv(nk * kvs, 1.0f);
        float *a = calloc((size_t)T * H * D, 4), *b = calloc((size_t)T * H * D, 4);
        float sc = 1.0f / sqrtf((float)D);
        CHECK(RP_BACKEND_CALL(cpu, attention, a, q, k, v, T, p0, H, Hkv, D, kvs, sc) == RP_OK);
        CHECK(RP_BACKEND_CALL(ref, attention, b, q, k, v, T, p0, H, Hkv, D, kvs, sc) == RP_OK);
        CHECK_MSG(rel_err(a, b, (int64_t)T * H * D) < 1e-5, "case %zu: %g", c, rel_err(a, b, (int64_t)T * H * D));
        if (p0 == 0) {   /* the first query sees only key 0: its output is v[0] of its kv head */
            for (int h = 0; h < H; h++) CHECK_NEAR(b[h * D + 1], v[(h / (H / Hkv)) * D + 1], 1e-6);
        }
        free(q); free(k); free(v); free(a); free(b);
    }
}

static void test_routing_and_scan(rp_backend *cpu, rp_backend *ref) {
    float x[3 * 4] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 }, g[2 * 4], out[3 * 4] = { 0 };
    int32_t idx[2] = { 2, 0 }, bad[1] = { 3 };
    CHECK(RP_BACKEND_CALL(cpu, gather_rows, g, x, 3, 4, idx, 2) == RP_OK);
    CHECK(g[0] == 9 && g[4] == 1);
    CHECK(RP_BACKEND_CALL(cpu, gather_rows, g, x, 3, 4, bad, 1) == RP_ERR_RANGE);
    float wts[2] = { 0.5f, 2.0f };
    CHECK(RP_BACKEND_CALL(cpu, scatter_add_rows, out, 3, g, 4, idx, wts, 2) == RP_OK);
    CHECK(out[8] == 4.5f && out[0] == 2.0f && out[4] == 0.0f);

    /* conv1d: in two pieces with carried state equals one pass */
    const int T = 11, C = 5, K = 4;
    float *cx = randv(T * C, 1.0f), *cw = randv(C * K, 1.0f), *cb = randv(C, 1.0f);
    float y1[55], y2[55], st[5 * 3] = { 0 };
    CHECK(RP_BACKEND_CALL(ref, conv1d_causal, y1, cx, T, C, cw, cb, K, NULL) == RP_OK);
    float y3[55];
    CHECK(RP_BACKEND_CALL(cpu, conv1d_causal, y3, cx, T, C, cw, cb, K, NULL) == RP_OK);
    CHECK(rel_err(y3, y1, T * C) < 1e-6);
    {   /* wide channels (vector path) and a carried state, cpu vs reference */
        int64_t T2 = 9, C2 = 70;
        float *x2 = randv(T2 * C2, 1.0f), *w2 = randv(C2 * 4, 1.0f), *sa = randv(C2 * 3, 1.0f), *sb = malloc(sizeof(float) * C2 * 3);
        memcpy(sb, sa, sizeof(float) * C2 * 3);
        float *ya = malloc(sizeof(float) * T2 * C2), *yb = malloc(sizeof(float) * T2 * C2);
        CHECK(RP_BACKEND_CALL(cpu, conv1d_causal, ya, x2, T2, C2, w2, NULL, 4, sa) == RP_OK);
        CHECK(RP_BACKEND_CALL(ref, conv1d_causal, yb, x2, T2, C2, w2, NULL, 4, sb) == RP_OK);
        CHECK(rel_err(ya, yb, T2 * C2) < 1e-6);
        CHECK(rel_err(sa, sb, C2 * 3) == 0);
        /* T shorter than the history: the state keeps part of the old one */
        CHECK(RP_BACKEND_CALL(cpu, conv1d_causal, ya, x2, 2, C2, w2, NULL, 4, sa) == RP_OK);
        CHECK(RP_BACKEND_CALL(ref, conv1d_causal, yb, x2, 2, C2, w2, NULL, 4, sb) == RP_OK);
        CHECK(rel_err(ya, yb, 2 * C2) < 1e-6);
        CHECK(rel_err(sa, sb, C2 * 3) == 0);
        free(x2); free(w2); free(sa); free(sb); free(ya); free(yb);
    }
    CHECK(RP_BACKEND_CALL(cpu, conv1d_causal, y2, cx, 6, C, cw, cb, K, st) == RP_OK);
    CHECK(RP_BACKEND_CALL(cpu, conv1d_causal, y2 + 6 * C, cx + 6 * C, T - 6, C, cw, cb, K, st) == RP_OK);
    CHECK(rel_err(y2, y1, T * C) < 1e-6);
    CHECK_NEAR(y1[0], cb[0] + cw[K - 1] * cx[0], 1e-6);   /* t = 0 sees only x[0] */
    free(cx); free(cw); free(cb);

    int64_t Ns[3] = { 16, 5, 16 };   /* the last with D not a multiple of 8 or 16: the vector kernels' masked block */
    for (int ni = 0; ni < 3; ni++) {
        int64_t L = 50, D = ni == 2 ? 37 : 40, N = Ns[ni];
        float *u = randv(L * D, 1.0f), *dt = randv(L * D, 0.5f), *A = randv(D * N, 1.0f), *B = randv(L * N, 1.0f),
              *Cm = randv(L * N, 1.0f), *Dp = randv(D, 1.0f);
        for (int64_t i = 0; i < L * D; i++) dt[i] = fabsf(dt[i]);
        for (int64_t i = 0; i < D * N; i++) A[i] = -fabsf(A[i]) - 0.1f;
        float *ya = calloc((size_t)(L * D), 4), *yb = calloc((size_t)(L * D), 4), *ha = calloc((size_t)(D * N), 4), *hb = calloc((size_t)(D * N), 4);
        CHECK(RP_BACKEND_CALL(cpu, selective_scan, ya, u, dt, A, B, Cm, Dp, L, D, N, ha, NULL) == RP_OK);
        CHECK(RP_BACKEND_CALL(ref, selective_scan, yb, u, dt, A, B, Cm, Dp, L, D, N, hb, NULL) == RP_OK);
        CHECK(rel_err(ya, yb, L * D) < 1e-5);
        CHECK(rel_err(ha, hb, D * N) < 1e-5);
        /* closed form for the first step from h = 0: y = dt·u·(B·C) + D·u */
        double bc = 0;
        for (int64_t n = 0; n < N; n++) bc += B[n] * Cm[n];
        CHECK_NEAR(yb[3], dt[3] * u[3] * bc + Dp[3] * u[3], 1e-5);
        free(u); free(dt); free(A); free(B); free(Cm); free(Dp); free(ya); free(yb); free(ha); free(hb);
    }
}

/* ---- every op of the enum on every backend against "ref", through backend buffers ----
 * Each case builds its inputs on the host, uploads them to the backend under test and to ref, runs the
 * op on both, copies the outputs back and returns the normalized error (largest |a - b| over largest
 * |b|). The threshold is written beside each case; backward passes will join the same table. */

typedef struct dev { rp_backend *be; void *p[12]; int n; } dev;
/* A backend buffer holding a copy of host bytes (zeros when host is NULL). */
static void *up(dev *d, const void *host, size_t nbytes) {
    void *p = d->be->ops->alloc(d->be, nbytes ? nbytes : 1);
    if (p && host) CHECK(rp_backend_copy_from_host(d->be, p, host, nbytes) == RP_OK);
    d->p[d->n++] = p;
    return p;
}
static void down(dev *d, void *host, const void *p, size_t nbytes) { CHECK(rp_backend_copy_to_host(d->be, host, p, nbytes) == RP_OK); }
static void drop(dev *d) { for (int i = 0; i < d->n; i++) d->be->ops->free(d->be, d->p[i]); d->n = 0; }

/* Run one case body on be and on ref: BODY uses dv (the dev) and writes its output to out (host). */
#define ON_BOTH(out, out_ref, ...)                                              \
    do { { dev dv = { be, { 0 }, 0 }; float *out_ = out; __VA_ARGS__ drop(&dv); }       \
         { dev dv = { ref, { 0 }, 0 }; float *out_ = out_ref; __VA_ARGS__ drop(&dv); } } while (0)

static double case_matmul(rp_backend *be, rp_backend *ref) {
    int64_t M = 5, K = 256, N = 64;
    size_t ldw;
    void *w = make_w(RP_Q4_1, N, K, &ldw);
    float *x = randv(M * K, 1.0f), *a = calloc((size_t)(M * N), 4), *b = calloc((size_t)(M * N), 4);
    ON_BOTH(a, b, { float *y = up(&dv, NULL, (size_t)(M * N) * 4);
              CHECK(RP_BACKEND_CALL(dv.be, matmul, y, up(&dv, x, (size_t)(M * K) * 4), M, K, up(&dv, w, ldw * (size_t)N), RP_Q4_1, ldw, N) == RP_OK);
              down(&dv, out_, y, (size_t)(M * N) * 4); });
    double e = rel_err(a, b, M * N);
    free(w); free(x); free(a); free(b);
    return e;
}

static double case_matmul_multi(rp_backend *be, rp_backend *ref) {
    int64_t M = 3, K = 128, N0 = 40, N1 = 24;
    size_t l0, l1;
    void *w0 = make_w(RP_Q8_0, N0, K, &l0), *w1 = make_w(RP_F16, N1, K, &l1);
    float *x = randv(M * K, 1.0f), *a = calloc((size_t)(M * (N0 + N1)), 4), *b = calloc((size_t)(M * (N0 + N1)), 4);
    ON_BOTH(a, b, { float *y = up(&dv, NULL, (size_t)(M * (N0 + N1)) * 4);
              rp_matmul_part parts[2] = { { y, up(&dv, w0, l0 * (size_t)N0), RP_Q8_0, l0, N0, NULL },
                                          { y + M * N0, up(&dv, w1, l1 * (size_t)N1), RP_F16, l1, N1, NULL } };
              CHECK(RP_BACKEND_CALL(dv.be, matmul_multi, up(&dv, x, (size_t)(M * K) * 4), M, K, parts, 2) == RP_OK);
              down(&dv, out_, y, (size_t)(M * (N0 + N1)) * 4); });
    double e = rel_err(a, b, M * (N0 + N1));
    free(w0); free(w1); free(x); free(a); free(b);
    return e;
}

static double case_embed(rp_backend *be, rp_backend *ref) {
    int64_t V = 50, C = 64, T = 7;
    size_t ld;
    void *tab = make_w(RP_Q8_0, V, C, &ld);
    int32_t ids[7] = { 0, 49, 3, 3, 17, 8, 1 };
    float *a = calloc((size_t)(T * C), 4), *b = calloc((size_t)(T * C), 4);
    ON_BOTH(a, b, { float *o = up(&dv, NULL, (size_t)(T * C) * 4);
              CHECK(RP_BACKEND_CALL(dv.be, embed, o, up(&dv, tab, ld * (size_t)V), RP_Q8_0, ld, V, C, up(&dv, ids, sizeof ids), T) == RP_OK);
              down(&dv, out_, o, (size_t)(T * C) * 4); });
    double e = rel_err(a, b, T * C);
    free(tab); free(a); free(b);
    return e;
}

/* Ops of one f32 input x[n] and one f32 output (rmsnorm, swiglu, add, softmax, log_softmax). */
static double case_unary(rp_backend *be, rp_backend *ref, rp_op op) {
    const int64_t T = 9, C = 70, n = T * C;
    float *x = randv(n, 6.0f), *y = randv(n, 2.0f), *w = randv(C, 1.0f), *a = calloc((size_t)n, 4), *b = calloc((size_t)n, 4);
    ON_BOTH(a, b, { float *o = up(&dv, op == RP_OP_SOFTMAX ? x : NULL, (size_t)n * 4), *dx = up(&dv, x, (size_t)n * 4), *dy = up(&dv, y, (size_t)n * 4);
              rp_status st = RP_ERR_INVAL;
              switch (op) {
              case RP_OP_RMSNORM: st = RP_BACKEND_CALL(dv.be, rmsnorm, o, dx, up(&dv, w, (size_t)C * 4), T, C, 1e-5f); break;
              case RP_OP_SWIGLU: st = RP_BACKEND_CALL(dv.be, swiglu, o, dx, dy, n); break;
              case RP_OP_ADD: st = RP_BACKEND_CALL(dv.be, add, o, dx, dy, n); break;
              case RP_OP_SOFTMAX: st = RP_BACKEND_CALL(dv.be, softmax, o, T, C); break;
              case RP_OP_LOG_SOFTMAX: st = RP_BACKEND_CALL(dv.be, log_softmax, o, dx, T, C); break;
              default: break;
              }
              CHECK_MSG(st == RP_OK, "%s on %s: %s", rp_op_name(op), dv.be->name, rp_errmsg());
              down(&dv, out_, o, (size_t)n * 4); });
    double e = rel_err(a, b, n);
    free(x); free(y); free(w); free(a); free(b);
    return e;
}
static double case_rmsnorm(rp_backend *be, rp_backend *ref) { return case_unary(be, ref, RP_OP_RMSNORM); }
static double case_swiglu(rp_backend *be, rp_backend *ref) { return case_unary(be, ref, RP_OP_SWIGLU); }
static double case_add(rp_backend *be, rp_backend *ref) { return case_unary(be, ref, RP_OP_ADD); }
static double case_softmax(rp_backend *be, rp_backend *ref) { return case_unary(be, ref, RP_OP_SOFTMAX); }
static double case_log_softmax(rp_backend *be, rp_backend *ref) { return case_unary(be, ref, RP_OP_LOG_SOFTMAX); }

static double case_rope(rp_backend *be, rp_backend *ref) {
    const int T = 6, H = 3, D = 64;
    const int64_t n = (int64_t)T * H * D;
    float *x = randv(n, 1.0f), *a = calloc((size_t)n, 4), *b = calloc((size_t)n, 4);
    int32_t pos[6] = { 0, 1, 2, 40, 41, 500 };
    ON_BOTH(a, b, { float *o = up(&dv, x, (size_t)n * 4);
              CHECK(RP_BACKEND_CALL(dv.be, rope, o, T, H, D, 48, up(&dv, pos, sizeof pos), 10000.0f, 1) == RP_OK);
              down(&dv, out_, o, (size_t)n * 4); });
    double e = rel_err(a, b, n);
    free(x); free(a); free(b);
    return e;
}

static double case_attention(rp_backend *be, rp_backend *ref) {
    const int T = 20, p0 = 7, H = 6, Hkv = 2, D = 32;
    const int64_t kvs = (int64_t)Hkv * D, nk = p0 + T, n = (int64_t)T * H * D;
    float *q = randv(n, 1.0f), *k = randv(nk * kvs, 1.0f), *v = randv(nk * kvs, 1.0f), *a = calloc((size_t)n, 4), *b = calloc((size_t)n, 4);
    ON_BOTH(a, b, { float *o = up(&dv, NULL, (size_t)n * 4);
              CHECK(RP_BACKEND_CALL(dv.be, attention, o, up(&dv, q, (size_t)n * 4), up(&dv, k, (size_t)(nk * kvs) * 4),
                                    up(&dv, v, (size_t)(nk * kvs) * 4), T, p0, H, Hkv, D, kvs, 1.0f / sqrtf((float)D)) == RP_OK);
              down(&dv, out_, o, (size_t)n * 4); });
    double e = rel_err(a, b, n);
    free(q); free(k); free(v); free(a); free(b);
    return e;
}

static double case_cross_entropy(rp_backend *be, rp_backend *ref) {
    const int64_t R = 11, V = 300;
    float *x = randv(R * V, 8.0f), a[11], b[11];
    int32_t tg[11];
    for (int r = 0; r < R; r++) tg[r] = (int32_t)((r * 53) % V);
    ON_BOTH(a, b, { float *o = up(&dv, NULL, (size_t)R * 4);
              CHECK(RP_BACKEND_CALL(dv.be, cross_entropy, o, up(&dv, x, (size_t)(R * V) * 4), up(&dv, tg, sizeof tg), R, V) == RP_OK);
              down(&dv, out_, o, (size_t)R * 4); });
    free(x);
    return rel_err(a, b, R);
}

static double case_argmax(rp_backend *be, rp_backend *ref) {
    const int64_t R = 13, V = 1000;
    float *x = randv(R * V, 1.0f), a[13], b[13];
    x[5 * V + 999] = 2.0f;   /* the last column wins a row; a tie goes to the first index */
    x[6 * V + 10] = x[6 * V + 20] = 3.0f;
    ON_BOTH(a, b, { int32_t *o = up(&dv, NULL, (size_t)R * 4), h[13];
              CHECK(RP_BACKEND_CALL(dv.be, argmax, o, up(&dv, x, (size_t)(R * V) * 4), R, V) == RP_OK);
              down(&dv, h, o, sizeof h);
              for (int r = 0; r < R; r++) out_[r] = (float)h[r]; });
    CHECK(b[5] == 999 && b[6] == 10);
    free(x);
    return rel_err(a, b, R);
}

static double case_gather_rows(rp_backend *be, rp_backend *ref) {
    const int64_t R = 9, C = 33, n = 5;
    float *x = randv(R * C, 1.0f), a[5 * 33], b[5 * 33];
    int32_t idx[5] = { 8, 0, 3, 3, 1 };
    ON_BOTH(a, b, { float *o = up(&dv, NULL, (size_t)(n * C) * 4);
              CHECK(RP_BACKEND_CALL(dv.be, gather_rows, o, up(&dv, x, (size_t)(R * C) * 4), R, C, up(&dv, idx, sizeof idx), n) == RP_OK);
              down(&dv, out_, o, (size_t)(n * C) * 4); });
    free(x);
    return rel_err(a, b, n * C);
}

static double case_scatter_add_rows(rp_backend *be, rp_backend *ref) {
    const int64_t R = 6, C = 33, n = 5;
    float *x = randv(n * C, 1.0f), *base = randv(R * C, 1.0f), wt[5] = { 0.5f, 1, 2, -1, 0.25f }, a[6 * 33], b[6 * 33];
    int32_t idx[5] = { 5, 0, 3, 3, 1 };
    ON_BOTH(a, b, { float *o = up(&dv, base, (size_t)(R * C) * 4);
              CHECK(RP_BACKEND_CALL(dv.be, scatter_add_rows, o, R, up(&dv, x, (size_t)(n * C) * 4), C, up(&dv, idx, sizeof idx), up(&dv, wt, sizeof wt), n) == RP_OK);
              down(&dv, out_, o, (size_t)(R * C) * 4); });
    free(x); free(base);
    return rel_err(a, b, R * C);
}

static double case_conv1d_causal(rp_backend *be, rp_backend *ref) {
    const int64_t T = 10, C = 70;
    const int K = 4;
    float *x = randv(T * C, 1.0f), *w = randv(C * K, 1.0f), *bias = randv(C, 1.0f), *st = randv(C * (K - 1), 1.0f);
    float *a = calloc((size_t)(T * C + C * (K - 1)), 4), *b = calloc((size_t)(T * C + C * (K - 1)), 4);
    ON_BOTH(a, b, { float *o = up(&dv, NULL, (size_t)(T * C) * 4), *s = up(&dv, st, (size_t)(C * (K - 1)) * 4);
              CHECK(RP_BACKEND_CALL(dv.be, conv1d_causal, o, up(&dv, x, (size_t)(T * C) * 4), T, C, up(&dv, w, (size_t)(C * K) * 4),
                                    up(&dv, bias, (size_t)C * 4), K, s) == RP_OK);
              down(&dv, out_, o, (size_t)(T * C) * 4);
              down(&dv, out_ + T * C, s, (size_t)(C * (K - 1)) * 4); });
    double e = rel_err(a, b, T * C + C * (K - 1));
    free(x); free(w); free(bias); free(st); free(a); free(b);
    return e;
}

static double case_selective_scan(rp_backend *be, rp_backend *ref) {
    const int64_t L = 12, D = 24, N = 16;
    float *u = randv(L * D, 1.0f), *dt = randv(L * D, 0.5f), *A = randv(D * N, 1.0f), *B = randv(L * N, 1.0f),
          *Cm = randv(L * N, 1.0f), *Dp = randv(D, 1.0f);
    for (int64_t i = 0; i < L * D; i++) dt[i] = fabsf(dt[i]);
    for (int64_t i = 0; i < D * N; i++) A[i] = -fabsf(A[i]) - 0.1f;
    float *a = calloc((size_t)(L * D + D * N), 4), *b = calloc((size_t)(L * D + D * N), 4);
    ON_BOTH(a, b, { float *y = up(&dv, NULL, (size_t)(L * D) * 4), *h = up(&dv, NULL, (size_t)(D * N) * 4);
              CHECK(RP_BACKEND_CALL(dv.be, selective_scan, y, up(&dv, u, (size_t)(L * D) * 4), up(&dv, dt, (size_t)(L * D) * 4),
                                    up(&dv, A, (size_t)(D * N) * 4), up(&dv, B, (size_t)(L * N) * 4), up(&dv, Cm, (size_t)(L * N) * 4),
                                    up(&dv, Dp, (size_t)D * 4), L, D, N, h, NULL) == RP_OK);
              down(&dv, out_, y, (size_t)(L * D) * 4);
              down(&dv, out_ + L * D, h, (size_t)(D * N) * 4); });
    double e = rel_err(a, b, L * D + D * N);
    free(u); free(dt); free(A); free(B); free(Cm); free(Dp); free(a); free(b);
    return e;
}

/* One row per rp_op, in enum order: the case and the largest normalized error allowed against ref. */
static const struct op_case { rp_op op; double tol; double (*run)(rp_backend *, rp_backend *); rp_dtype dt; } op_cases[] = {
    { RP_OP_MATMUL, 1e-5, case_matmul, RP_Q4_1 },
    { RP_OP_MATMUL_MULTI, 1e-5, case_matmul_multi, RP_Q8_0 },
    { RP_OP_EMBED, 1e-6, case_embed, RP_Q8_0 },
    { RP_OP_RMSNORM, 1e-5, case_rmsnorm, RP_F32 },
    { RP_OP_ROPE, 1e-5, case_rope, RP_F32 },
    { RP_OP_ATTENTION, 1e-5, case_attention, RP_F32 },
    { RP_OP_SWIGLU, 1e-5, case_swiglu, RP_F32 },
    { RP_OP_ADD, 1e-7, case_add, RP_F32 },
    { RP_OP_SOFTMAX, 1e-5, case_softmax, RP_F32 },
    { RP_OP_LOG_SOFTMAX, 1e-5, case_log_softmax, RP_F32 },
    { RP_OP_CROSS_ENTROPY, 1e-5, case_cross_entropy, RP_F32 },
    { RP_OP_ARGMAX, 0, case_argmax, RP_F32 },
    { RP_OP_GATHER_ROWS, 0, case_gather_rows, RP_F32 },
    { RP_OP_SCATTER_ADD_ROWS, 1e-6, case_scatter_add_rows, RP_F32 },
    { RP_OP_CONV1D_CAUSAL, 1e-6, case_conv1d_causal, RP_F32 },
    { RP_OP_SELECTIVE_SCAN, 1e-5, case_selective_scan, RP_F32 },
};

/* The CUDA kernels' dequantizer (run on the host: no GPU needed) equals the reference on every element of
 * rows of every weight dtype, K-quants included. */
static void test_cuda_dequant(void) {
#ifdef RP_CUDA
    for (size_t ti = 0; ti < sizeof matmul_types / sizeof matmul_types[0]; ti++) {
        rp_dtype t = matmul_types[ti];
        int64_t K = 512;
        size_t ldw;
        unsigned char *w = make_w(t, 3, K, &ldw);
        float a[512], b[512];
        for (int r = 0; r < 3; r++) {
            CHECK(rp_dequantize_row(t, w + r * ldw, b, K) == RP_OK);
            CHECK(rp_cuda_dequant_host(t, w + r * ldw, a, K) == RP_OK);
            int bad = 0;
            for (int64_t k = 0; k < K; k++) bad += a[k] != b[k] && fabsf(a[k] - b[k]) > 1e-6f * fabsf(b[k]);
            CHECK_MSG(bad == 0, "cuda dequantizer %s row %d: %d of %lld elements differ", rp_dtype_name(t), r, bad, (long long)K);
        }
        free(w);
    }
    float y[32];
    CHECK(rp_cuda_dequant_host(RP_NF4, y, y, 64) == RP_ERR_INVAL);
#else
    printf("skip: the CUDA dequantizer check needs a build with CUDA (nvcc)\n");
#endif
}

/* The cuda backend when this build has it and a GPU is visible; otherwise NULL after a counted skip line
 * (and a check that the refusal is the clear one: RP_ERR_UNSUPPORTED naming cuda). */
static rp_backend *cuda_or_skip(void) {
    rp_backend *be = NULL;
    if (rp_backend_cuda_open(&be) == RP_OK) return be;
    CHECK(strstr(rp_errmsg(), "cuda") != NULL);
    CHECK(rp_backend_by_name("cuda") == NULL);
    CHECK(rp_backend_open("cuda", &be) == RP_ERR_UNSUPPORTED);
    printf("skip [gpu]: op tests on the cuda backend: %s\n", rp_errmsg());
    return NULL;
}

/* Deeper GPU checks than the one case per op: every weight dtype through both matmul paths (few rows:
 * the in-register dequantizing kernel; many rows: dequantized tiles through cuBLAS), attention for
 * decoding against a long cache and for head sizes that are not multiples of 32, the scan for each of its
 * kernels (state sizes 5, 16, 40, a carried state, no D term), and the range errors. */
static void test_cuda_deep(rp_backend *be, rp_backend *ref) {
    int64_t Ms[] = { 1, 3, 8, 9, 70 };
    for (size_t ti = 0; ti < sizeof matmul_types / sizeof matmul_types[0]; ti++)
        for (size_t mi = 0; mi < sizeof Ms / sizeof Ms[0]; mi++) {
            mm_case c = mm_case_new(ref, matmul_types[ti], Ms[mi]);
            dev dv = { be, { 0 }, 0 };
            float *dy = up(&dv, NULL, (size_t)(c.M * c.N) * 4);
            rp_status st = RP_BACKEND_CALL(be, matmul, dy, up(&dv, c.x, (size_t)(c.M * c.K) * 4), c.M, c.K,
                                           up(&dv, c.w, c.ldw * (size_t)c.N), c.t, c.ldw, c.N);
            CHECK_MSG(st == RP_OK, "cuda matmul %s M=%lld: %s", rp_dtype_name(c.t), (long long)c.M, rp_errmsg());
            down(&dv, c.y, dy, (size_t)(c.M * c.N) * 4);
            drop(&dv);
            double e = rel_err(c.y, c.yr, c.M * c.N);
            CHECK_MSG(e < 1e-5, "cuda matmul %s M=%lld: rel err %g", rp_dtype_name(c.t), (long long)c.M, e);
            mm_case_free(&c);
        }
    struct { int T, pos0, H, Hkv, D; } cases[] = { { 1, 0, 4, 4, 16 }, { 1, 700, 9, 3, 64 }, { 70, 5, 6, 2, 80 },
                                                  { 130, 0, 9, 3, 64 }, { 3, 10, 8, 4, 128 }, { 2, 33, 2, 1, 256 } };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int T = cases[c].T, p0 = cases[c].pos0, H = cases[c].H, Hkv = cases[c].Hkv, D = cases[c].D;
        int64_t kvs = (int64_t)Hkv * D, nk = p0 + T, n = (int64_t)T * H * D;
        float *q = randv(n, 1.0f), *k = randv(nk * kvs, 1.0f), *v = randv(nk * kvs, 1.0f), *a = calloc((size_t)n, 4), *b = calloc((size_t)n, 4);
        float sc = 1.0f / sqrtf((float)D);
        CHECK(RP_BACKEND_CALL(ref, attention, b, q, k, v, T, p0, H, Hkv, D, kvs, sc) == RP_OK);
        dev dv = { be, { 0 }, 0 };
        float *o = up(&dv, NULL, (size_t)n * 4);
        CHECK(RP_BACKEND_CALL(be, attention, o, up(&dv, q, (size_t)n * 4), up(&dv, k, (size_t)(nk * kvs) * 4),
                              up(&dv, v, (size_t)(nk * kvs) * 4), T, p0, H, Hkv, D, kvs, sc) == RP_OK);
        down(&dv, a, o, (size_t)n * 4);
        drop(&dv);
        CHECK_MSG(rel_err(a, b, n) < 1e-5, "cuda attention case %zu: %g", c, rel_err(a, b, n));
        free(q); free(k); free(v); free(a); free(b);
    }
    for (int mi = 0; mi < 3; mi++) {   /* matmul_multi: one launch for same-dtype parts (few rows), or part by part */
        int64_t M = (int64_t[]){ 1, 5, 70 }[mi], K = 256, Ns[3] = { 96, 40, 136 }, tot = 96 + 40 + 136;
        size_t ld;
        void *ws[3];
        float *x = randv(M * K, 1.0f), *a = calloc((size_t)(M * tot), 4), *b = calloc((size_t)(M * tot), 4);
        dev dv = { be, { 0 }, 0 };
        float *dy = up(&dv, NULL, (size_t)(M * tot) * 4), *dx = up(&dv, x, (size_t)(M * K) * 4);
        rp_matmul_part parts[3];
        for (int p = 0, off = 0; p < 3; off += (int)(M * Ns[p]), p++) {
            ws[p] = make_w(RP_Q4_1, Ns[p], K, &ld);
            CHECK(rp_ref_matmul(ref, b + off, x, M, K, ws[p], RP_Q4_1, ld, Ns[p]) == RP_OK);
            parts[p] = (rp_matmul_part){ dy + off, up(&dv, ws[p], ld * (size_t)Ns[p]), RP_Q4_1, ld, Ns[p], NULL };
        }
        CHECK(RP_BACKEND_CALL(be, matmul_multi, dx, M, K, parts, 3) == RP_OK);
        down(&dv, a, dy, (size_t)(M * tot) * 4);
        drop(&dv);
        CHECK_MSG(rel_err(a, b, M * tot) < 1e-5, "cuda matmul_multi M=%lld: %g", (long long)M, rel_err(a, b, M * tot));
        for (int p = 0; p < 3; p++) free(ws[p]);
        free(x); free(a); free(b);
    }
    int64_t scan_ns[3] = { 5, 16, 40 };   /* state sizes: a partial lane group, a full one, the wide kernel */
    for (int ni = 0; ni < 3; ni++) {
        int64_t L = 50, D = 40, N = scan_ns[ni];
        float *u = randv(L * D, 1.0f), *dt = randv(L * D, 0.5f), *A = randv(D * N, 1.0f), *B = randv(L * N, 1.0f),
              *Cm = randv(L * N, 1.0f), *h0 = randv(D * N, 1.0f);
        for (int64_t i = 0; i < L * D; i++) dt[i] = fabsf(dt[i]);
        for (int64_t i = 0; i < D * N; i++) A[i] = -fabsf(A[i]) - 0.1f;
        float *ya = calloc((size_t)(L * D + D * N), 4), *yb = calloc((size_t)(L * D + D * N), 4);
        memcpy(yb + L * D, h0, (size_t)(D * N) * 4);
        CHECK(RP_BACKEND_CALL(ref, selective_scan, yb, u, dt, A, B, Cm, NULL, L, D, N, yb + L * D, NULL) == RP_OK);
        dev dv = { be, { 0 }, 0 };
        float *y = up(&dv, NULL, (size_t)(L * D) * 4), *h = up(&dv, h0, (size_t)(D * N) * 4);
        CHECK(RP_BACKEND_CALL(be, selective_scan, y, up(&dv, u, (size_t)(L * D) * 4), up(&dv, dt, (size_t)(L * D) * 4),
                              up(&dv, A, (size_t)(D * N) * 4), up(&dv, B, (size_t)(L * N) * 4), up(&dv, Cm, (size_t)(L * N) * 4),
                              NULL, L, D, N, h, NULL) == RP_OK);
        down(&dv, ya, y, (size_t)(L * D) * 4);
        down(&dv, ya + L * D, h, (size_t)(D * N) * 4);
        drop(&dv);
        CHECK_MSG(rel_err(ya, yb, L * D + D * N) < 1e-5, "cuda selective_scan N=%lld: %g", (long long)N, rel_err(ya, yb, L * D + D * N));
        free(u); free(dt); free(A); free(B); free(Cm); free(h0); free(ya); free(yb);
    }
    {   /* bad indices: RP_ERR_RANGE with the reference's message, and the backend still works after */
        dev dv = { be, { 0 }, 0 };
        float tab[4 * 32] = { 0 }, z[100] = { 0 }, one;
        int32_t bad[2] = { 1, 4 }, t100 = 100;
        float *o = up(&dv, NULL, 2 * 32 * 4);
        CHECK(RP_BACKEND_CALL(be, embed, o, up(&dv, tab, sizeof tab), RP_F32, 32 * 4, 4, 32, up(&dv, bad, sizeof bad), 2) == RP_ERR_RANGE);
        CHECK(strstr(rp_errmsg(), "token id 4 at position 1") != NULL);
        CHECK(RP_BACKEND_CALL(be, cross_entropy, o, up(&dv, z, sizeof z), up(&dv, &t100, 4), 1, 100) == RP_ERR_RANGE);
        CHECK(strstr(rp_errmsg(), "target 100") != NULL);
        int32_t t5 = 5;
        CHECK(RP_BACKEND_CALL(be, cross_entropy, o, up(&dv, z, sizeof z), up(&dv, &t5, 4), 1, 100) == RP_OK);
        down(&dv, &one, o, 4);
        CHECK_NEAR(one, log(100.0), 1e-5);   /* uniform logits: log n */
        CHECK(rp_backend_sync(be) == RP_OK);
        drop(&dv);
    }
    CHECK(!rp_backend_supports(be, RP_OP_MATMUL, (rp_dtype[]){ RP_NF4 }, 1));
}

static void test_every_op(void) {
    CHECK_MSG(sizeof op_cases / sizeof op_cases[0] == RP_OP_COUNT, "%zu op cases for %d ops: every op needs a case",
              sizeof op_cases / sizeof op_cases[0], RP_OP_COUNT);
    test_cuda_dequant();
    rp_backend *cuda = cuda_or_skip();
    rp_backend *backends[] = { rp_backend_ref(), rp_backend_cpu(), cuda };
    if (cuda) test_cuda_deep(cuda, rp_backend_ref());
    for (size_t bi = 0; bi < sizeof backends / sizeof backends[0] && backends[bi]; bi++)
        for (int i = 0; i < (int)(sizeof op_cases / sizeof op_cases[0]); i++) {
            const struct op_case *c = &op_cases[i];
            rp_backend *be = backends[bi];
            CHECK_MSG(c->op == (rp_op)i, "op case %d is for %s, not %s", i, rp_op_name(c->op), rp_op_name((rp_op)i));
            if (rp_backend_require(be, c->op, &c->dt, 1) != RP_OK) {   /* says which backend lacks which op */
                CHECK_MSG(0, "%s", rp_errmsg());
                continue;
            }
            double e = c->run(be, rp_backend_ref());
            CHECK_MSG(e <= c->tol, "%s on %s: normalized error %g > %g", rp_op_name(c->op), be->name, e, c->tol);
            printf("  op %-16s %-3s vs ref: normalized error %.2g (threshold %.0g)\n", rp_op_name(c->op), be->name, e, c->tol);
        }
    /* names and the refusal of a backend without an op, or without a dtype */
    CHECK(strcmp(rp_op_name(RP_OP_SELECTIVE_SCAN), "selective_scan") == 0 && strcmp(rp_op_name(RP_OP_COUNT), "?") == 0);
    rp_backend_ops ops = *rp_backend_cpu()->ops;
    ops.attention = NULL;
    rp_backend lame = { "lame", &ops, NULL, NULL };
    rp_dtype f32 = RP_F32, i32 = RP_I32;
    CHECK(!rp_backend_supports(&lame, RP_OP_ATTENTION, &f32, 1));
    CHECK(rp_backend_require(&lame, RP_OP_ATTENTION, &f32, 1) == RP_ERR_UNSUPPORTED && strstr(rp_errmsg(), "lame lacks op attention"));
    CHECK(rp_backend_require(rp_backend_cpu(), RP_OP_MATMUL, &i32, 1) == RP_ERR_UNSUPPORTED && strstr(rp_errmsg(), "matmul for dtype i32"));
}

typedef struct sum_ctx { const float *x; int64_t n; double part[64]; int seen[64]; } sum_ctx;
static void sum_task(void *ctx, int task, int n_tasks, int thread) {
    sum_ctx *s = ctx;
    double acc = 0;
    for (int64_t i = task; i < s->n; i += n_tasks) acc += s->x[i];
    s->part[task] = acc;
    if (thread >= 0 && thread < 3) s->seen[task] = thread + 1;
}

/* A task that runs a job of its own on the same pool (batched decoding's attention calls the backend's
 * split attention from inside a split over sequences): the inner tasks run inline, on the outer task's
 * thread id, and each outer task gets its own correct sum. */
typedef struct nest_ctx { rp_pool *p; const float *x; int64_t n; double got[8]; int wrong_thread; } nest_ctx;
static void nest_task(void *ctx, int task, int n_tasks, int thread) {
    nest_ctx *c = ctx;
    sum_ctx s = { c->x, c->n, { 0 }, { 0 } };
    rp_pool_run(c->p, sum_task, &s, 5);
    double acc = 0;
    for (int t = 0; t < 5; t++) { acc += s.part[t]; if (s.seen[t] != thread + 1) c->wrong_thread = 1; }
    c->got[task] = acc;
}

static void test_pool(void) {
    rp_pool *p;
    CHECK(rp_pool_new(3, &p) == RP_OK);
    CHECK(rp_pool_size(p) == 3);
    float *x = randv(10001, 1.0f);
    double want = 0;
    for (int i = 0; i < 10001; i++) want += x[i];
    int bad = 0;
    for (int rep = 0; rep < 2000; rep++) {
        int nt = 1 + rep % 40;                 /* more tasks than threads: claimed dynamically */
        sum_ctx s = { x, 10001, { 0 }, { 0 } };
        rp_pool_run(p, sum_task, &s, nt);
        double got = 0;
        for (int t = 0; t < nt; t++) { got += s.part[t]; if (!s.seen[t]) bad++; }
        if (fabs(got - want) > 1e-9) { CHECK_NEAR(got, want, 1e-9); break; }
    }
    CHECK(bad == 0);
    int nest_bad = 0;
    for (int rep = 0; rep < 200; rep++) {
        nest_ctx c = { p, x, 10001, { 0 }, 0 };
        rp_pool_run(p, nest_task, &c, 8);
        for (int t = 0; t < 8; t++) nest_bad += fabs(c.got[t] - want) > 1e-9;
        nest_bad += c.wrong_thread;
    }
    CHECK_MSG(nest_bad == 0, "nested pool runs: %d wrong sums or thread ids", nest_bad);
    rp_pool_free(p);
    free(x);
    CHECK(rp_cpu_count() >= 1);
}

int main(void) {
    setenv("REPRO_INT8_DOT", "0", 1);          /* exact paths first; the int8 ones below */
    rp_backend *cpu = rp_backend_cpu(), *ref = rp_backend_ref();
    CHECK(strcmp(cpu->name, "cpu") == 0);
    test_matmul(cpu, ref, 0);
    setenv("REPRO_INT8_DOT", "1", 1);          /* int8 activations (VNNI) for every few-row matmul */
    rp_backend *cpu8;
    CHECK(rp_backend_cpu_new(2, &cpu8) == RP_OK);
    test_matmul(cpu8, ref, 1);
    rp_backend_cpu_free(cpu8);
    setenv("REPRO_INT8_DOT", "0", 1);
    test_matmul_multi(cpu, ref);
    test_tensor_api(cpu);
    test_elementwise(cpu, ref);
    test_rope(cpu, ref);
    test_attention(cpu, ref);
    rp_backend *cpu1;   /* one thread: decoding sweeps every KV head's columns at once */
    CHECK(rp_backend_cpu_new(1, &cpu1) == RP_OK);
    test_attention(cpu1, ref);
    rp_backend_cpu_free(cpu1);
    test_routing_and_scan(cpu, ref);
    test_pool();
    test_simd();
    test_every_op();
    return checks_done("test_ops");
}
