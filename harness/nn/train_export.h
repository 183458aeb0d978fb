/* train_export.h: a trained model (LoRA / QLoRA adapters merged, or fully fine-tuned weights) written as a
 * GGUF file that `repro generate` and llama.cpp load: rp_trainer_export's dense f32 weights re-quantized to
 * each tensor's type in the base file, or F16 / F32 on request, with the base file's metadata (tokenizer keys
 * included, or written from a separate tokenizer for llama2.c checkpoints) so the file is self-contained.
 * The exported model is the trained model in eval mode: for QLoRA that is the NF4-rounded base the adapters were
 * trained on plus the adapters, so even an untrained QLoRA export differs from the original file by NF4's
 * rounding (then by the base type's, when re-quantized); LoRA and full exports of unchanged weights are exact. */
#ifndef RP_NN_TRAIN_EXPORT_H
#define RP_NN_TRAIN_EXPORT_H
#include "model/model_file.h"
#include "model/tokenizer.h"
#include "nn/train_llama.h"
#include "util/err.h"

typedef enum rp_export_type {
    RP_EXPORT_BASE,   /* each tensor in the type the base file stores it in (F32 without a base) */
    RP_EXPORT_F16,    /* matrices F16, vectors (norms) F32, as llama.cpp's converters write F16 models */
    RP_EXPORT_F32,    /* every tensor F32: the merged weights exactly */
    RP_EXPORT_Q4_0, RP_EXPORT_Q4_1, RP_EXPORT_Q8_0,   /* matrices in this type, vectors F32 (llama.cpp's quantize */
    RP_EXPORT_Q4_K, RP_EXPORT_Q6_K                    /* keeps 1-D tensors F32 too); see rp_export_opts for fallbacks */
} rp_export_type;

/* How to export. A matrix whose rows are not whole blocks of the requested type falls back, as llama.cpp's quantize
 * does: q4_K / q6_K to q8_0 (llama.cpp: q5_0 / q8_0; we have no q5_0 quantizer), q4_0 / q4_1 / q8_0 to f16. */
typedef struct rp_export_opts {
    rp_export_type type;
    int n_threads;            /* rows are converted on this many threads (<= 0: the machine's cores); bytes identical */
} rp_export_opts;

/* What an export did: tensors written, those that fell back to another type (and the first one's name). */
typedef struct rp_export_report {
    int n_tensors, n_fallback, n_copied_rows_tensors;   /* the last: tensors whose every row kept the base's bytes */
    char first_fallback[96];
} rp_export_report;

/* Parse "base", "f16", "f32", "q4_0", "q4_1", "q8_0", "q4_k" or "q6_k". */
rp_status rp_export_type_parse(const char *name, rp_export_type *out);
/* Write tr's model to path as GGUF v3. base: the file the trainer was built on (metadata, per-tensor types and
 * any tensor the trainer does not hold, e.g. rope_freqs, are taken from it), or NULL for a model trained from
 * scratch (llama metadata from the trainer's config, every tensor F32 or F16). tok: written as tokenizer keys
 * when the base has none (a llama2.c checkpoint); may be NULL. <arch>.block_count is the trainer's layer count
 * (a trainer built on a pruned file exports the pruned model). A row the trainer did not change (it equals the
 * base row dequantized, to 1e-6 of the row's largest magnitude: the trainer's dequantization may round in another
 * order) keeps the base's bytes when the target type is the base's, so an untrained export in base types is
 * byte-identical even where re-quantizing would pick other scales (q6_K: about 1 super-block in 5). A base type without a quantizer is an error
 * naming the tensor. The file appears only when complete. Progress (weights/s, ETA) is drawn on a terminal. */
rp_status rp_trainer_write_gguf(const rp_trainer *tr, const rp_model_file *base, const rp_tokenizer *tok, rp_export_type type,
                                const char *path);
/* The same with options (NULL: base types, all cores) and a report of what was written (rep may be NULL). */
rp_status rp_trainer_write_gguf_opts(const rp_trainer *tr, const rp_model_file *base, const rp_tokenizer *tok,
                                     const rp_export_opts *opts, const char *path, rp_export_report *rep);

#endif
