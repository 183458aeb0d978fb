/* dtype.h: element and block types of tensors. Values equal GGML/GGUF type ids where one exists, so a
 * GGUF tensor's type field maps straight to rp_dtype after validation (rp_dtype_valid).
 * Quantized types store rows as whole blocks of rp_dtype_block(t) elements taking rp_dtype_block_bytes(t). */
#ifndef RP_DTYPE_H
#define RP_DTYPE_H
#include <stddef.h>
#include <stdint.h>

typedef enum rp_dtype {
    RP_F32 = 0, RP_F16 = 1, RP_Q4_0 = 2, RP_Q4_1 = 3, RP_Q8_0 = 8, RP_Q8_1 = 9,
    RP_Q4_K = 12, RP_Q6_K = 14, RP_Q8_K = 15, RP_I8 = 24, RP_I16 = 25, RP_I32 = 26, RP_F64 = 28, RP_BF16 = 30,
    RP_NF4 = 100,   /* QLoRA 4-bit NormalFloat, blocks of 64 with an f32 absmax (ours, not a GGUF type) */
} rp_dtype;

/* Whether id names a dtype this engine knows. */
int rp_dtype_valid(int id);
/* Elements per block (1 for plain types). */
int rp_dtype_block(rp_dtype t);
/* Bytes per block (element size for plain types). */
size_t rp_dtype_block_bytes(rp_dtype t);
/* Short name ("q4_1", "f32"). */
const char *rp_dtype_name(rp_dtype t);
/* Bytes taken by a row of n elements; 0 when n is not a multiple of the block size or overflows. */
size_t rp_dtype_row_bytes(rp_dtype t, int64_t n);

#endif
