/* gemm_f32.c: rp_gemm_f32 (gemm_f32.h), the training matmuls' fp32 product on AVX-512. Goto-style blocking:
 * k in chunks of at most KC (the chunk length depends on K only), for each chunk a block of up to MC rows of
 * op(A) packed into MR-row panels (kept in L2), then for each NR-column strip of op(B) a packed KC × NR
 * micro-panel (kept in L1) that the MR × NR register-blocked micro-kernel (14 × 32: 28 zmm accumulators,
 * one broadcast of A per row, two vector loads of B per k) sweeps down the block. C is split into a fixed grid
 * of tasks (rows × columns) chosen to pack the least duplicated data, or, when op(A) needs a transposing pack
 * and fits SHARED_A, A is packed once into the context's shared buffer and C split by columns only, or, when
 * C is taller than BPK_BLOCKS blocks of A (dW = dyᵀ·x of the head, M = 49152 outputs), op(B) is packed once
 * there and C split by rows only; a task owns its elements outright.
 * Invariants: an element's value is C (when accumulating) plus each k chunk's sum in ascending chunk order, a
 * chunk summed from zero in ascending k with one FMA per k,
 * so the grid and the thread count never change a bit of the result; packed panels are zero-padded to MR / NR
 * and only the real rows and columns of C are loaded or stored (masked); the scratch is per thread (rp_bwd). */
#include <cblas.h>
#include <stdatomic.h>
#include "tensor/gemm_f32.h"

static atomic_int use_own = 1;

/* Choose our product or OpenBLAS for the training matmuls. */
void rp_gemm_f32_select(int own) { atomic_store(&use_own, own != 0); }

/* Whether a product of these dimensions goes through rp_gemm_f32. */
int rp_gemm_f32_wanted(int64_t M, int64_t N, int64_t K) { return atomic_load(&use_own) && M >= 1 && N >= 32 && K >= 32; }

#if defined(__AVX512F__)
#include <immintrin.h>

#define MR 14          /* rows of C per micro-kernel (broadcast side) */
#define NR 32          /* columns of C per micro-kernel (two zmm) */
#ifndef KC
#define KC 256         /* longest k chunk: a KC × NR micro-panel of B is 32 KiB, within L1 */
#endif
#define MC (37 * MR)   /* rows per packed block of A (518: a 512-token batch in one block, 530 KiB, within L2) */
#define A_ALL (MC * 640)   /* floats of A's panels packed for all of k at once (1.3 MiB: K <= 640) */
#define SHARED_A ((int64_t)8 << 20)   /* bytes of A that may be packed once for all tasks (the context's shared buffer) */
#define BPK_BLOCKS 4   /* op(B) is packed once and shared only past this many blocks of MC rows: below, packing it
                        * per block costs less than the extra pool run (a barrier; under load, a wait on a preempted worker) */
#ifndef NC
#define NC 128         /* columns of C swept through every k chunk while A is packed for all of k */
#endif

/* C[mr, nr] (+)= Ã · B̃ over kc: Ã one packed panel [kc][MR], B̃ one packed panel [kc][NR]. The products are
 * summed from zero and C added last, so C's lines, prefetched at the start, arrive while the sum runs. */
static void kernel(int64_t kc, const float *restrict a, const float *restrict b, float *c, int64_t ldc, int mr, int nr, int acc) {
    __m512 r[MR][2];
    __mmask16 m0 = nr >= 16 ? 0xffff : (__mmask16)((1u << nr) - 1);
    __mmask16 m1 = nr >= 32 ? 0xffff : nr > 16 ? (__mmask16)((1u << (nr - 16)) - 1) : 0;
#pragma GCC unroll 14
    for (int i = 0; i < MR; i++) {
        if (i < mr) {
            _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0);
            _mm_prefetch((const char *)(c + i * ldc + 16), _MM_HINT_T0);
        }
        r[i][0] = _mm512_setzero_ps();
        r[i][1] = _mm512_setzero_ps();
    }
    for (int64_t k = 0; k < kc; k++) {
        __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16);
        _mm_prefetch((const char *)(a + 16 * MR), _MM_HINT_T0);
#pragma GCC unroll 14
        for (int i = 0; i < MR; i++) {
            __m512 ai = _mm512_set1_ps(a[i]);
            r[i][0] = _mm512_fmadd_ps(ai, b0, r[i][0]);
            r[i][1] = _mm512_fmadd_ps(ai, b1, r[i][1]);
        }
        a += MR;
        b += NR;
    }
#pragma GCC unroll 14
    for (int i = 0; i < MR; i++)
        if (i < mr) {
            if (acc) {
                r[i][0] = _mm512_add_ps(_mm512_maskz_loadu_ps(m0, c + i * ldc), r[i][0]);
                r[i][1] = _mm512_add_ps(_mm512_maskz_loadu_ps(m1, c + i * ldc + 16), r[i][1]);
            }
            _mm512_mask_storeu_ps(c + i * ldc, m0, r[i][0]);
            _mm512_mask_storeu_ps(c + i * ldc + 16, m1, r[i][1]);
        }
}

/* Transpose a 16 × 16 block held as 16 rows in place (row i becomes column i). */
static inline void tr16(__m512 r[16]) {
    __m512 t[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4)
        for (int h = 0; h < 2; h++) {
            __m512d a = _mm512_castps_pd(t[i + h]), b = _mm512_castps_pd(t[i + 2 + h]);
            r[i + 2 * h] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, b));
            r[i + 2 * h + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, b));
        }
    /* now r[4g + c] holds, in 128-bit lane l, column 4l + c of rows 4g..4g+3: gather the lanes */
    for (int i = 0; i < 4; i++) {
        t[i] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0x88);
        t[i + 4] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0xdd);
        t[i + 8] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0x88);
        t[i + 12] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0xdd);
    }
    for (int i = 0; i < 4; i++) {
        r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
        r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xdd);
        r[i + 4] = _mm512_shuffle_f32x4(t[i + 4], t[i + 12], 0x88);
        r[i + 12] = _mm512_shuffle_f32x4(t[i + 4], t[i + 12], 0xdd);
    }
}

/* dst[k·ld + i] = src_i[k] for rows i < n (at most 16, rows n..15 zero; at most 16 values stored per k, under
 * the mask `keep`) and k in [0, kc): the transposing part of both packs, 16 × 16 blocks through registers. */
static void pack_t(const float *const *src, int n, int64_t kc, float *dst, int64_t ld, __mmask16 keep) {
    int64_t k = 0;
    for (; k + 16 <= kc; k += 16) {
        __m512 r[16];
        for (int i = 0; i < 16; i++) {
            if (i < n) _mm_prefetch((const char *)(src[i] + k + 64), _MM_HINT_T0);   /* 4 lines ahead on each row */
            r[i] = i < n ? _mm512_loadu_ps(src[i] + k) : _mm512_setzero_ps();
        }
        tr16(r);
        for (int i = 0; i < 16; i++) _mm512_mask_storeu_ps(dst + (k + i) * ld, keep, r[i]);
    }
    for (; k < kc; k++)
        for (int i = 0; i < 16; i++)
            if (keep >> i & 1) dst[k * ld + i] = i < n ? src[i][k] : 0.0f;
}

/* Pack op(A)[i0:i0+mc, k0:k0+kc] as MR-row panels [panel][k][MR], zero rows past mc. */
static void pack_a(const float *A, int64_t lda, int ta, int64_t i0, int64_t mc, int64_t k0, int64_t kc, float *dst) {
    if (ta) {   /* op(A)(i, k) = A[k·lda + i]: each k's rows are contiguous, so k outermost: one sequential read of
                 * the block's mc values per k (a panel at a time would stride lda per k: the head's dW gathered
                 * its 49152-float rows line by line) */
        for (int64_t k = 0; k < kc; k++) {
            const float *src = A + (k0 + k) * lda + i0;
            for (int64_t ip = 0; ip < mc; ip += MR) {
                int rows = mc - ip < MR ? (int)(mc - ip) : MR;
                if (k + 4 < kc) _mm_prefetch((const char *)(src + 4 * lda + ip), _MM_HINT_T0);   /* rows lda apart: 4 ahead */
                _mm512_mask_storeu_ps(dst + ip * kc + k * MR, 0x3fff, _mm512_maskz_loadu_ps((__mmask16)((1u << rows) - 1), src + ip));
            }
        }
        return;
    }
    for (int64_t ip = 0; ip < mc; ip += MR, dst += kc * MR) {
        int rows = mc - ip < MR ? (int)(mc - ip) : MR;
        const float *src[16];
        for (int i = 0; i < rows; i++) src[i] = A + (i0 + ip + i) * lda + k0;
        pack_t(src, rows, kc, dst, MR, 0x3fff);
    }
}

/* Pack op(B)[k0:k0+kc, j0:j0+nr] as one panel [k][NR], zero columns past nr. */
static void pack_b(const float *B, int64_t ldb, int tb, int64_t k0, int64_t kc, int64_t j0, int nr, float *dst) {
    if (!tb) {   /* op(B)(k, j) = B[k·ldb + j]: rows of B are contiguous */
        __mmask16 m0 = nr >= 16 ? 0xffff : (__mmask16)((1u << nr) - 1);
        __mmask16 m1 = nr >= 32 ? 0xffff : nr > 16 ? (__mmask16)((1u << (nr - 16)) - 1) : 0;
        for (int64_t k = 0; k < kc; k++) {
            const float *src = B + (k0 + k) * ldb + j0;
            _mm512_store_ps(dst + k * NR, _mm512_maskz_loadu_ps(m0, src));
            _mm512_store_ps(dst + k * NR + 16, _mm512_maskz_loadu_ps(m1, src + 16));
        }
        return;
    }
    for (int h = 0; h < NR; h += 16) {   /* op(B)(k, j) = B[j·ldb + k]: a transpose, 16 columns at a time */
        const float *src[16];
        int n = nr - h < 0 ? 0 : nr - h > 16 ? 16 : nr - h;
        for (int j = 0; j < n; j++) src[j] = B + (j0 + h + j) * ldb + k0;
        pack_t(src, n, kc, dst + h, NR, 0xffff);
    }
}

typedef struct gemm_job {
    rp_bwd *b;
    int ta, tb, acc, mt, nt, failed;
    int64_t M, N, K, lda, ldb, ldc, kc;
    const float *A, *B;
    float *C;
    float *apk;   /* A's panels for all of M and k, packed once for every task (NULL: each task packs its own) */
    float *bpk;   /* B's strips for all of N and k, packed once (NULL: packed per row block): strip s, chunk at k0
                   * at bpk + s·NR·K + k0·NR */
} gemm_job;

/* Columns [jc, jc + nc) of a row block: for each k chunk (A's panels for it at ap + mcp·pc), each NR strip of
 * B packed once into bp and swept by the micro-kernel down the block's mc rows. */
static void block_cols(const gemm_job *j, const float *ap, int64_t mcp, float *bp, int64_t ic, int64_t mc, int64_t jc, int64_t nc,
                       int64_t pc0, int64_t pc1) {
    for (int64_t pc = pc0; pc < pc1; pc += j->kc) {
        int64_t kc = j->K - pc < j->kc ? j->K - pc : j->kc;
        const float *a = ap + mcp * (pc - pc0);
        for (int64_t jr = jc; jr < jc + nc; jr += NR) {
            int nr = jc + nc - jr < NR ? (int)(jc + nc - jr) : NR;
            const float *b = j->bpk ? j->bpk + jr * j->K + pc * NR : bp;
            if (!j->bpk) pack_b(j->B, j->ldb, j->tb, pc, kc, jr, nr, bp);
            for (int64_t ir = 0; ir < mc; ir += MR)
                kernel(kc, a + ir * kc, b, j->C + (ic + ir) * j->ldc + jr, j->ldc, mc - ir < MR ? (int)(mc - ir) : MR, nr,
                       j->acc || pc > 0);
        }
    }
}

/* One task: rows [m0, m1) × columns [n0, n1) of C, all of k. When a row block's panels of A for the whole
 * of k fit in A_ALL floats, they are packed once and C is swept NC columns at a time through every k chunk,
 * so a block of C stays in cache between chunks (the 100 MB logits would otherwise go to memory once per
 * chunk); otherwise k chunks are outermost and A is packed one chunk at a time. */
static void gemm_task(void *ctx, int task, int n_tasks, int thread) {
    gemm_job *j = ctx;
    (void)n_tasks;
    int64_t m0, m1, n0, n1;
    rp_bwd_split(j->M, task / j->nt, j->mt, MR, &m0, &m1);
    rp_bwd_split(j->N, task % j->nt, j->nt, NR, &n0, &n1);
    if (m0 >= m1 || n0 >= n1) return;
    if (j->apk) {   /* A packed already: only B's strips here, C swept NC columns at a time through all of k */
        float *bp = rp_bwd_scratch(j->b, thread, (size_t)KC * NR * sizeof(float));
        if (!bp) { j->failed = 1; return; }
        for (int64_t ic = m0; ic < m1; ic += MC) {
            int64_t mc = m1 - ic < MC ? m1 - ic : MC, mcp = (mc + MR - 1) / MR * MR;
            for (int64_t jc = n0; jc < n1; jc += NC)
                block_cols(j, j->apk + ic * j->K, mcp, bp, ic, mc, jc, n1 - jc < NC ? n1 - jc : NC, 0, j->K);
        }
        return;
    }
    int all_k = (int64_t)MC * j->K <= A_ALL;
    size_t a_floats = all_k ? (size_t)A_ALL : (size_t)MC * KC;
    float *ap = rp_bwd_scratch(j->b, thread, (a_floats + (j->bpk ? 0 : (size_t)KC * NR)) * sizeof(float));
    if (!ap) { j->failed = 1; return; }
    float *bp = ap + a_floats;
    for (int64_t ic = m0; ic < m1; ic += MC) {
        int64_t mc = m1 - ic < MC ? m1 - ic : MC, mcp = (mc + MR - 1) / MR * MR;
        if (all_k) {
            for (int64_t pc = 0; pc < j->K; pc += j->kc)
                pack_a(j->A, j->lda, j->ta, ic, mc, pc, j->K - pc < j->kc ? j->K - pc : j->kc, ap + mcp * pc);
            for (int64_t jc = n0; jc < n1; jc += NC) block_cols(j, ap, mcp, bp, ic, mc, jc, n1 - jc < NC ? n1 - jc : NC, 0, j->K);
        } else {
            for (int64_t pc = 0; pc < j->K; pc += j->kc) {
                int64_t kc = j->K - pc < j->kc ? j->K - pc : j->kc;
                pack_a(j->A, j->lda, j->ta, ic, mc, pc, kc, ap);
                block_cols(j, ap, mcp, bp, ic, mc, n0, n1 - n0, pc, pc + kc);
            }
        }
    }
}

/* Pack the shared operand for every task, a slice of it per task, each part for all k chunks at the place the
 * tasks read it: A's MR-row panels when apk is set (row block ic at apk + ic·K, its chunk pc at + mcp·pc, its
 * panel p at + p·MR·kc), otherwise B's NR-column strips (strip s, chunk pc at bpk + s·NR·K + pc·NR). */
static void pack_task(void *ctx, int task, int n_tasks, int thread) {
    gemm_job *j = ctx;
    (void)thread;
    int64_t p0, p1, w = j->apk ? MR : NR, n = j->apk ? j->M : j->N;
    rp_bwd_split((n + w - 1) / w, task, n_tasks, 1, &p0, &p1);
    for (int64_t p = p0; p < p1; p++) {
        int64_t i = p * w, ic = i / MC * MC, mcp = ((j->M - ic < MC ? j->M - ic : MC) + MR - 1) / MR * MR;
        for (int64_t pc = 0; pc < j->K; pc += j->kc) {
            int64_t kc = j->K - pc < j->kc ? j->K - pc : j->kc, part = n - i < w ? n - i : w;
            if (j->apk) pack_a(j->A, j->lda, j->ta, i, part, pc, kc, j->apk + ic * j->K + mcp * pc + (i - ic) * kc);
            else pack_b(j->B, j->ldb, j->tb, pc, kc, i, (int)part, j->bpk + i * j->K + pc * NR);
        }
    }
}

/* The task grid (mt row parts × nt column parts, mt·nt = n) that packs the least: every column part packs
 * its rows of A again and every row part its columns of B (a transposing pack counted twice). */
static void choose_grid(const gemm_job *j, int n, int *mt, int *nt) {
    double best = -1;
    for (int r = 1; r <= n; r++) {
        if (n % r) continue;
        int c = n / r;
        if ((r > 1 && j->M < (int64_t)r * MR) || (c > 1 && j->N < (int64_t)c * NR)) continue;
        double cost = (double)c * (double)j->M * (double)j->K * (j->ta ? 1 : 2) + (double)r * (double)j->K * (double)j->N * (j->tb ? 2 : 1);
        if (best < 0 || cost < best) { best = cost; *mt = r; *nt = c; }
    }
    if (best < 0) { *mt = 1; *nt = 1; }
}
#endif

/* The fast product: packed panels and the micro-kernel over the pool (OpenBLAS without AVX-512). */
rp_status rp_gemm_f32(rp_bwd *b, int ta, int tb, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                      const float *B, int64_t ldb, int accumulate, float *C, int64_t ldc) {
    if (M > INT32_MAX || N > INT32_MAX || K > INT32_MAX) return rp_fail(RP_ERR_RANGE, "gemm: dimension over 2^31");
    if (M <= 0 || N <= 0) return RP_OK;
#if defined(__AVX512F__)
    if (K <= 0) {   /* an empty sum: C = 0, or C unchanged */
        if (!accumulate)
            for (int64_t i = 0; i < M; i++)
                for (int64_t j = 0; j < N; j++) C[i * ldc + j] = 0.0f;
        return RP_OK;
    }
    int64_t chunks = (K + KC - 1) / KC;
    gemm_job j = { .b = b, .ta = ta, .tb = tb, .acc = accumulate, .M = M, .N = N, .K = K, .lda = lda, .ldb = ldb, .ldc = ldc,
                   .kc = (K + chunks - 1) / chunks, .A = A, .B = B, .C = C };
    int nth = rp_bwd_threads(b);
    int64_t mpad = (M + MR - 1) / MR * MR, strips = (N + NR - 1) / NR, npad = strips * NR;
    if (nth > 1 && !ta && mpad * K * (int64_t)sizeof(float) <= SHARED_A && strips > 1) {
        /* a transposing pack of A done once, shared, instead of once per column task; then the columns split
         * finely (no packing is repeated), so a thread the OS holds back is covered by the others */
        if (!(j.apk = rp_bwd_shared(b, (size_t)(mpad * K) * sizeof(float)))) return rp_fail(RP_ERR_NOMEM, "gemm: out of memory for packed A");
        rp_bwd_run(b, pack_task, &j, nth);
        j.mt = 1;
        j.nt = (int)(strips < 4 * nth ? strips : 4 * nth);
    } else if (M > BPK_BLOCKS * MC && npad * K * (int64_t)sizeof(float) <= SHARED_A) {
        /* op(B) would be packed again for every block of MC rows (dW = dyᵀ·x of the 49152-row head: 95 times):
         * packed once, shared, and C split by rows only, finely (A's rows are packed once either way) */
        if (!(j.bpk = rp_bwd_shared(b, (size_t)(npad * K) * sizeof(float)))) return rp_fail(RP_ERR_NOMEM, "gemm: out of memory for packed B");
        rp_bwd_run(b, pack_task, &j, nth);
        int64_t panels = mpad / MR;
        j.mt = (int)(panels < 4 * nth ? panels : 4 * nth);
        j.nt = 1;
    } else {
        choose_grid(&j, nth, &j.mt, &j.nt);
    }
    rp_bwd_run(b, gemm_task, &j, j.mt * j.nt);
    if (j.failed) return rp_fail(RP_ERR_NOMEM, "gemm: out of memory for packed panels");
    return RP_OK;
#else
    (void)b;
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (int)M, (int)N, (int)K, 1.0f, A,
                (int)lda, B, (int)ldb, accumulate ? 1.0f : 0.0f, C, (int)ldc);
    return RP_OK;
#endif
}
