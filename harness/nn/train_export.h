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
    RP_EXPORT_F32     /* every tensor F32: the merged weights exactly */
} rp_export_type;

/* Parse "base", "f16" or "f32". */
rp_status rp_export_type_parse(const char *name, rp_export_type *out);
/* Write tr's model to path as GGUF v3. base: the file the trainer was built on (metadata, per-tensor types and
 * any tensor the trainer does not hold, e.g. rope_freqs, are taken from it), or NULL for a model trained from
 * scratch (llama metadata from the trainer's config, every tensor F32 or F16). tok: written as tokenizer keys
 * when the base has none (a llama2.c checkpoint); may be NULL. <arch>.block_count is the trainer's layer count
 * (a trainer built on a pruned file exports the pruned model). A base type without a quantizer is an error
 * naming the tensor. The file appears only when complete. */
rp_status rp_trainer_write_gguf(const rp_trainer *tr, const rp_model_file *base, const rp_tokenizer *tok, rp_export_type type,
                                const char *path);

#endif
