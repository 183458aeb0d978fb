/* gemm_bf16_amx.c: the AMX kernel of rp_gemm_bf16: a 32 × 32 block of C as 2 × 2 fp32 accumulator tiles
 * (tmm0-3) fed by two row tiles of A (tmm4, tmm5) and two column tiles of B (tmm6, tmm7) per k block of 32,
 * four TDPBF16PS each (layout in gemm_bf16_impl.h). Compiled for AMX by function attributes whatever -march
 * says, and called only when rp_gemm_bf16_best found AMX and the OS granted the tile state.
 * Invariant: an element is C (accumulate) or 0, plus the k blocks in ascending order, one TDPBF16PS each; a
 * block C does not hold whole (rows or columns past M, N) goes through a 32 × 32 buffer in the same order. */
#include <string.h>
#include "tensor/gemm_bf16_impl.h"

#if defined(__x86_64__)
#include <immintrin.h>

#define AMX_TARGET __attribute__((target("amx-tile,amx-bf16,avx512f")))

typedef struct tile_cfg {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} tile_cfg;

/* Configure this thread's eight tiles as 16 rows of 64 bytes. */
AMX_TARGET void rp_gemm_bf16_amx_begin(void) {
    tile_cfg cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int t = 0; t < 8; t++) { cfg.rows[t] = 16; cfg.colsb[t] = 64; }
    /* our own asm with the whole struct as operand: GCC 12's _tile_loadconfig lets the stores to rows and colsb be
     * dropped as dead */
    __asm__ volatile("ldtilecfg %0" : : "m"(cfg));
}

/* Release this thread's tile state. */
AMX_TARGET void rp_gemm_bf16_amx_end(void) { _tile_release(); }

/* The 2 × 2 tiles of C at c (row stride ldc floats) over nkb k blocks. */
AMX_TARGET static void tiles(const uint16_t *a, const uint16_t *b, int64_t nkb, float *c, int64_t ldc, int acc) {
    size_t s = (size_t)ldc * sizeof(float);
    if (acc) {
        _tile_loadd(0, c, s);
        _tile_loadd(1, c + 16, s);
        _tile_loadd(2, c + 16 * ldc, s);
        _tile_loadd(3, c + 16 * ldc + 16, s);
    } else {
        _tile_zero(0); _tile_zero(1); _tile_zero(2); _tile_zero(3);
    }
    const uint16_t *a1 = a + nkb * RP_BF16_TILE, *b1 = b + nkb * RP_BF16_TILE;
    for (int64_t kb = 0; kb < nkb; kb++) {
        int64_t o = kb * RP_BF16_TILE;
        _tile_loadd(4, a + o, 64);
        _tile_loadd(6, b + o, 64);
        _tile_dpbf16ps(0, 4, 6);
        _tile_loadd(7, b1 + o, 64);
        _tile_dpbf16ps(1, 4, 7);
        _tile_loadd(5, a1 + o, 64);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
    }
    _tile_stored(0, c, s);
    _tile_stored(1, c + 16, s);
    _tile_stored(2, c + 16 * ldc, s);
    _tile_stored(3, c + 16 * ldc + 16, s);
}

/* One 32 × 32 block of C on AMX: in place when C holds it whole, else through cbuf. */
AMX_TARGET void rp_gemm_bf16_block_amx(const uint16_t *a, const uint16_t *b, int64_t nkb, float *c, int64_t ldc, int rows,
                                       int cols, int acc, float *cbuf) {
    if (rows == 32 && cols == 32) { tiles(a, b, nkb, c, ldc, acc); return; }
    __mmask16 m0 = cols >= 16 ? 0xffff : (__mmask16)((1u << cols) - 1);
    __mmask16 m1 = cols >= 32 ? 0xffff : cols > 16 ? (__mmask16)((1u << (cols - 16)) - 1) : 0;
    if (acc)
        for (int i = 0; i < 32; i++) {
            _mm512_storeu_ps(cbuf + i * 32, i < rows ? _mm512_maskz_loadu_ps(m0, c + i * ldc) : _mm512_setzero_ps());
            _mm512_storeu_ps(cbuf + i * 32 + 16, i < rows ? _mm512_maskz_loadu_ps(m1, c + i * ldc + 16) : _mm512_setzero_ps());
        }
    tiles(a, b, nkb, cbuf, 32, acc);
    for (int i = 0; i < rows; i++) {
        _mm512_mask_storeu_ps(c + i * ldc, m0, _mm512_loadu_ps(cbuf + i * 32));
        _mm512_mask_storeu_ps(c + i * ldc + 16, m1, _mm512_loadu_ps(cbuf + i * 32 + 16));
    }
}
#endif
