/* dtype.c: sizes and names of element and block types (GGML layouts for the quantized ones).
 * Invariant: every dtype rp_dtype_valid accepts has a block size >= 1 and a block byte count >= 1. */
#include "tensor/dtype.h"

typedef struct dtype_info { int id; int block; size_t bytes; const char *name; } dtype_info;

/* Block layouts as in ggml: q4_0 = f16 scale + 16 bytes of nibbles; q4_1 adds an f16 min; q8_0 = f16 + 32
 * int8; q8_1 = two f16 + 32 int8; q4_K = 2 f16 + 12 scale bytes + 128 nibble bytes; q6_K = 128 low + 64 high
 * + 16 scales + f16; q8_K = f32 + 256 int8 + 16 int16 sums; nf4 = f32 absmax + 32 nibble bytes. */
static const dtype_info table[] = {
    {RP_F32, 1, 4, "f32"},     {RP_F16, 1, 2, "f16"},     {RP_Q4_0, 32, 18, "q4_0"},
    {RP_Q4_1, 32, 20, "q4_1"}, {RP_Q8_0, 32, 34, "q8_0"}, {RP_Q8_1, 32, 36, "q8_1"},
    {RP_Q4_K, 256, 144, "q4_K"}, {RP_Q6_K, 256, 210, "q6_K"}, {RP_Q8_K, 256, 292, "q8_K"},
    {RP_I8, 1, 1, "i8"},       {RP_I16, 1, 2, "i16"},     {RP_I32, 1, 4, "i32"},
    {RP_F64, 1, 8, "f64"},     {RP_BF16, 1, 2, "bf16"},   {RP_NF4, 64, 36, "nf4"},
};

static const dtype_info *lookup(int id) {
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (table[i].id == id) return &table[i];
    return NULL;
}

/* Whether id names a dtype this engine knows. */
int rp_dtype_valid(int id) { return lookup(id) != NULL; }

/* Elements per block (1 for plain types, 0 for an unknown id). */
int rp_dtype_block(rp_dtype t) { const dtype_info *d = lookup((int)t); return d ? d->block : 0; }

/* Bytes per block (0 for an unknown id). */
size_t rp_dtype_block_bytes(rp_dtype t) { const dtype_info *d = lookup((int)t); return d ? d->bytes : 0; }

/* Short name, "?" for an unknown id. */
const char *rp_dtype_name(rp_dtype t) { const dtype_info *d = lookup((int)t); return d ? d->name : "?"; }

/* Bytes of a row of n elements; 0 for an unknown type, a partial block, a negative n, or overflow. */
size_t rp_dtype_row_bytes(rp_dtype t, int64_t n) {
    const dtype_info *d = lookup((int)t);
    if (!d || n < 0 || n % d->block) return 0;
    uint64_t blocks = (uint64_t)(n / d->block);
    if (blocks > (uint64_t)SIZE_MAX / d->bytes) return 0;
    return (size_t)blocks * d->bytes;
}
