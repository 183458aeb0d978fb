/* model_file.h: one read-only view over a model file, whatever its format (GGUF v2/v3, llama2.c .bin,
 * safetensors + config.json). Weights are exposed under GGUF/llama.cpp names ("token_embd.weight",
 * "blk.0.attn_q.weight", "output_norm.weight", ...) with row-major shapes (outermost first: a linear
 * layer y = x·Wᵀ with in C, out O has shape {O, C}), data pointing into the mmapped file (no copy).
 * Every size and offset is validated before use; a hostile file gets RP_ERR_FORMAT naming the field. */
#ifndef RP_MODEL_FILE_H
#define RP_MODEL_FILE_H
#include <stdint.h>
#include "tensor/dtype.h"
#include "util/err.h"

typedef struct rp_weight {
    const char *name;
    rp_dtype dtype;
    int ndim;
    int64_t shape[4];   /* row-major, outermost first; shape[ndim-1] is contiguous */
    const void *data;   /* into the mapping; valid while the file is open */
    size_t nbytes;
} rp_weight;

typedef enum rp_meta_type { RP_META_NONE, RP_META_INT, RP_META_FLOAT, RP_META_BOOL, RP_META_STRING, RP_META_ARRAY } rp_meta_type;

/* Hyper-parameters of a Llama-family decoder (also what a Mamba/MoE hybrid extends later). */
typedef struct rp_llama_config {
    int n_layer, dim, n_head, n_head_kv, head_dim, ffn_dim, vocab;
    int rope_dim;           /* dimensions rotated per head (== head_dim for Llama) */
    int rope_neox;          /* 0: rotate adjacent pairs (GGUF llama, llama2.c); 1: rotate halves (HF layout) */
    float rope_base, norm_eps;
    int context_len;
    int tied_embeddings;    /* no output.weight: the head reuses token_embd.weight */
} rp_llama_config;

typedef struct rp_model_file rp_model_file;

/* Open a model file; format detected from content (GGUF magic, safetensors header, else llama2.c).
 * Weight data alignment: GGUF data follows general.alignment (32 by default); llama2.c data is 4-byte
 * aligned; safetensors data is as aligned as its header length makes it (8 for files written by HF). */
rp_status rp_model_file_open(const char *path, rp_model_file **out);
/* Open a model held in memory (any of the formats; for safetensors the config.json is looked up beside
 * name). The bytes are borrowed and must outlive the file; name is used in error messages. */
rp_status rp_model_file_open_memory(const void *data, size_t len, const char *name, rp_model_file **out);
/* Close and unmap; NULL is fine. */
void rp_model_file_free(rp_model_file *f);
/* "gguf", "llama2c" or "safetensors". */
const char *rp_model_file_format(const rp_model_file *f);
/* The path (or memory name) it was opened with. */
const char *rp_model_file_path(const rp_model_file *f);
/* Number of weights and the i-th one. */
int rp_model_file_n_weights(const rp_model_file *f);
const rp_weight *rp_model_file_weight_at(const rp_model_file *f, int i);
/* Weight by name, NULL when absent. */
const rp_weight *rp_model_file_weight(const rp_model_file *f, const char *name);
/* Number of metadata entries and the i-th key (file order). */
int rp_model_file_n_meta(const rp_model_file *f);
const char *rp_model_file_meta_key_at(const rp_model_file *f, int i);
/* Metadata by GGUF key ("llama.block_count"); the other formats expose theirs under the same keys.
 * meta_int / meta_float return 1 and set *out when the key exists with a fitting type (ints and bools for
 * meta_int; floats and ints for meta_float), else 0. meta_string: NUL-terminated, owned by f; NULL if absent. */
rp_meta_type rp_model_file_meta_type(const rp_model_file *f, const char *key);
int rp_model_file_meta_int(const rp_model_file *f, const char *key, int64_t *out);
int rp_model_file_meta_float(const rp_model_file *f, const char *key, double *out);
const char *rp_model_file_meta_string(const rp_model_file *f, const char *key);
/* Array metadata: element count (-1 when not an array), and string / int / float elements (1 on success).
 * meta_array_string returns bytes inside the mapping that are NOT NUL-terminated: use *len.
 * Nested arrays are validated but their elements are not exposed. */
int64_t rp_model_file_meta_array_len(const rp_model_file *f, const char *key);
const char *rp_model_file_meta_array_string(const rp_model_file *f, const char *key, int64_t i, size_t *len);
int rp_model_file_meta_array_float(const rp_model_file *f, const char *key, int64_t i, double *out);
int rp_model_file_meta_array_int(const rp_model_file *f, const char *key, int64_t i, int64_t *out);
/* Fill a Llama config from the metadata (general.architecture must be "llama"; defaults: head_count_kv =
 * head_count, rope.dimension_count = head_dim, rope.freq_base 10000, rms eps 1e-5, context 2048,
 * rope_neox from the key "repro.rope_neox", else 0), vocab = rows of token_embd.weight, tied when there is
 * no output.weight, checking that every weight it implies exists with the right shape. */
rp_status rp_model_file_llama_config(const rp_model_file *f, rp_llama_config *cfg);

#endif
