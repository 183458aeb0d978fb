/* gguf_write.h: a GGUF v3 writer (llama.cpp's model file format, little-endian): metadata key/values of any
 * GGUF type (scalars, strings, arrays of fixed-size values or strings) and tensors of any stored type
 * (f32, f16, bf16, the GGUF quantized blocks), each tensor's data aligned to general.alignment (32 unless
 * the caller sets that key). General on purpose: a pruned model's export and training's export both use it.
 * Invariants: keys and tensor names are unique (setting a key again replaces its value, in place); tensor
 * data is borrowed until rp_gguf_writer_write returns; the file appears under its name only once complete
 * (written to "<path>.tmp", then renamed), so a failed write never leaves a truncated model behind. */
#ifndef RP_MODEL_GGUF_WRITE_H
#define RP_MODEL_GGUF_WRITE_H
#include <stddef.h>
#include <stdint.h>
#include "model/model_file.h"
#include "tensor/dtype.h"
#include "util/err.h"

typedef struct rp_gguf_writer rp_gguf_writer;

/* GGUF metadata value types (the on-disk numbering). */
typedef enum rp_gguf_type {
    RP_GGUF_U8, RP_GGUF_I8, RP_GGUF_U16, RP_GGUF_I16, RP_GGUF_U32, RP_GGUF_I32, RP_GGUF_F32, RP_GGUF_BOOL,
    RP_GGUF_STRING, RP_GGUF_ARRAY, RP_GGUF_U64, RP_GGUF_I64, RP_GGUF_F64
} rp_gguf_type;

/* An empty writer (NULL on out of memory). */
rp_gguf_writer *rp_gguf_writer_new(void);
/* Release it (borrowed tensor data is untouched). NULL is fine. */
void rp_gguf_writer_free(rp_gguf_writer *w);
/* Set a scalar: integer types take iv (range-checked against the type), RP_GGUF_F32/F64 take fv,
 * RP_GGUF_BOOL takes iv 0 or 1. */
rp_status rp_gguf_writer_set_int(rp_gguf_writer *w, const char *key, rp_gguf_type t, int64_t iv);
rp_status rp_gguf_writer_set_float(rp_gguf_writer *w, const char *key, rp_gguf_type t, double fv);
/* Set a string value (len bytes, need not be NUL-terminated). */
rp_status rp_gguf_writer_set_string(rp_gguf_writer *w, const char *key, const char *s, size_t len);
/* Set an array of n fixed-size elements of type et, given as their little-endian bytes (copied). */
rp_status rp_gguf_writer_set_array(rp_gguf_writer *w, const char *key, rp_gguf_type et, const void *data, int64_t n);
/* Set an array of n strings (copied). */
rp_status rp_gguf_writer_set_string_array(rp_gguf_writer *w, const char *key, const char *const *strs,
                                          const size_t *lens, int64_t n);
/* Copy metadata entry `key` of an open model file (any format) with its type; nested arrays are refused. */
rp_status rp_gguf_writer_copy_meta(rp_gguf_writer *w, const rp_model_file *f, const char *key);
/* Copy every metadata entry of f in file order: a GGUF's with their stored types; a llama2.c or safetensors
 * source's synthesized integers and floats as u32 (i64 beyond u32) and f32, the types llama.cpp reads. */
rp_status rp_gguf_writer_copy_all_meta(rp_gguf_writer *w, const rp_model_file *f);
/* Remove a key if present (returns whether it was). */
int rp_gguf_writer_remove(rp_gguf_writer *w, const char *key);
/* Add a tensor: shape row-major, outermost first (as rp_weight); data (nbytes, which must equal what the
 * dtype and shape imply) is borrowed until the write. */
rp_status rp_gguf_writer_add_tensor(rp_gguf_writer *w, const char *name, rp_dtype dt, int ndim, const int64_t *shape,
                                    const void *data, size_t nbytes);
/* Write the file (via "<path>.tmp" and a rename). */
rp_status rp_gguf_writer_write(rp_gguf_writer *w, const char *path);

#endif
