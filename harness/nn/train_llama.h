/* train_llama.h: training a Llama-family decoder on the CPU, llm.c style: hand-written forward and backward
 * passes per layer over buffers planned once (parameters, gradients, AdamW moments, activations, backward
 * scratch), so forward/backward/update allocate nothing. Methods: full fine-tuning (every weight f32 and
 * trainable), LoRA (frozen base weights kept as the file has them, quantized or not; low-rank adapters
 * A[r, in], B[out, r] with scale alpha/r and input dropout on the targeted linears) and QLoRA (the frozen
 * linears re-quantized to NF4 with double quantization). Objectives: next-token cross-entropy averaged over
 * the scored (mask = 1) positions, or a plugin's loss over per-sequence log-probabilities (the sum over
 * scored positions) through rp_seq_loss_fn, whose gradient flows back through the same kernels.
 * Shapes: B sequences × T tokens (BT rows), C = dim, H/Hkv heads of D, F = ffn, V = vocab, r = LoRA rank.
 * Invariants: gradients accumulate over rp_trainer_forward_backward calls until rp_trainer_update, which
 * averages them over those calls, clips, steps AdamW and zeroes them; dropout masks are a function of
 * (seed, step, linear, position) only, so a resumed run repeats an uninterrupted one bit for bit. */
#ifndef RP_NN_TRAIN_LLAMA_H
#define RP_NN_TRAIN_LLAMA_H
#include <stdint.h>
#include "model/model_file.h"
#include "nn/adamw.h"
#include "tensor/pool.h"
#include "util/err.h"

typedef enum rp_train_method { RP_TRAIN_FULL, RP_TRAIN_LORA, RP_TRAIN_QLORA } rp_train_method;
/* The F32 linears' products (forward, dx, dW): fp32, or inputs rounded to bf16 with fp32 sums on the CPU's bf16
 * unit (gemm_bf16.h: AMX, else AVX512-BF16; fp32 on a machine with neither, rp_trainer_precision says so).
 * Weights, gradients and AdamW state stay fp32 either way (fp32 masters, as mixed-precision training keeps).
 * Tolerance: each product within (2·2⁻⁸ + (K+2)·2⁻²³)·Σ|a·b| of fp32's (tests/test_gemm_bf16.c); a stories260K
 * full fine-tune's losses within 1% of fp32's over 8 steps (tests/test_train.c). */
typedef enum rp_train_precision { RP_TRAIN_FP32 = 0, RP_TRAIN_BF16 = 1 } rp_train_precision;

typedef struct rp_train_opts {
    rp_train_method method;
    int B, T;                   /* the largest batch a step takes (B sequences of T tokens) */
    int lora_rank;              /* LoRA / QLoRA: r >= 1 */
    float lora_alpha;           /* scale = alpha / r */
    float lora_dropout;         /* in [0, 1) */
    const char *lora_targets;   /* comma-separated: attn_q attn_k attn_v attn_output ffn_gate ffn_up ffn_down (or HF
                                 * q_proj k_proj v_proj o_proj gate_proj up_proj down_proj); NULL: "attn_q,attn_v" */
    rp_adamw adamw;
    float init_std;             /* from scratch: weights ~ N(0, init_std²) (0: 0.02); output projections / sqrt(2L) */
    uint64_t seed;              /* initialisation and dropout */
    int n_threads;              /* <= 0: the machine's cores */
    int bf16_base;              /* LoRA: frozen F32/F16 base linears stored as BF16 (half the bytes of F32; products
                                 * accumulate in f32). Tolerance: logits within 1% of their largest magnitude of the
                                 * F32 base's, losses of the same steps within 2% (tests/test_train.c; measured 0.5%
                                 * and 0.6% on stories260K). Trainable weights stay f32 (AdamW needs f32 masters,
                                 * and without a bf16 GEMM on the CPU a bf16 copy would only add a conversion). */
    rp_train_precision precision;   /* the F32 linears' products (default fp32) */
} rp_train_opts;

typedef struct rp_trainer rp_trainer;

/* A plugin's objective over per-sequence log-probabilities: given seq_logp[b] = Σ_t mask·log p(target) for the
 * B sequences of the batch, set *loss and dlogp[b] = ∂loss/∂seq_logp[b]. Returns a status (with a message). */
typedef rp_status (*rp_seq_loss_fn)(void *ud, const double *seq_logp, int B, double *loss, double *dlogp);

/* Parse a method name ("full", "lora", "qlora"). */
rp_status rp_train_method_parse(const char *name, rp_train_method *out);
/* Parse a precision name ("fp32", "bf16"). */
rp_status rp_train_precision_parse(const char *name, rp_train_precision *out);
/* A trainer for a model: from the weights of f (read only; must outlive the trainer for LoRA, whose frozen base
 * points into it) with f's configuration, or, with f == NULL, initialised from scratch with *cfg (full only). */
rp_status rp_trainer_new(const rp_model_file *f, const rp_llama_config *cfg, const rp_train_opts *opts, rp_trainer **out);
/* Release a trainer. NULL is fine. */
void rp_trainer_free(rp_trainer *tr);
/* The precision its products really run in: "fp32", or "bf16 (amx)" / "bf16 (avx512_bf16)"; "fp32 (no bf16 unit)"
 * when bf16 was asked on a machine without one. */
const char *rp_trainer_precision(const rp_trainer *tr);
/* The model configuration it trains. */
const rp_llama_config *rp_trainer_config(const rp_trainer *tr);
/* Trainable parameters (adapters only for LoRA), and the optimizer steps taken. */
int64_t rp_trainer_n_params(const rp_trainer *tr);
int64_t rp_trainer_step_count(const rp_trainer *tr);

/* Forward and backward on a batch: tokens[B·T] inputs, targets[B·T] next tokens, mask[B·T] (NULL: all scored;
 * 0: not scored, e.g. a prompt); B <= opts.B, T <= opts.T. Gradients are added to the accumulated ones.
 * loss_fn NULL: mean cross-entropy over scored positions; else the plugin's loss (see rp_seq_loss_fn).
 * *loss gets the batch's loss. */
rp_status rp_trainer_forward_backward(rp_trainer *tr, const int32_t *tokens, const int32_t *targets, const uint8_t *mask,
                                      int B, int T, rp_seq_loss_fn loss_fn, void *ud, double *loss);
/* Forward only (no dropout, gradients untouched): mean cross-entropy over scored positions into *loss, and,
 * when seq_logp != NULL, each sequence's summed log-probability of its scored targets. */
rp_status rp_trainer_eval(rp_trainer *tr, const int32_t *tokens, const int32_t *targets, const uint8_t *mask, int B, int T,
                          double *loss, double *seq_logp);
/* One optimizer step at learning rate lr over the gradients accumulated since the last one (averaged over the
 * forward_backward calls), clipped to max_norm (<= 0: no clipping); *grad_norm (may be NULL) gets the norm
 * before clipping. Zeroes the gradients. */
rp_status rp_trainer_update(rp_trainer *tr, float lr, float max_norm, double *grad_norm);
/* Zero the accumulated gradients without stepping. */
void rp_trainer_zero_grad(rp_trainer *tr);

/* Save the trainable parameters and optimizer state (moments, step) to path; the frozen base is not written. */
rp_status rp_trainer_save(const rp_trainer *tr, const char *path);
/* Load what rp_trainer_save wrote into a trainer built the same way; errors name the file, the tensor and the
 * field that does not match, and leave the trainer unchanged. */
rp_status rp_trainer_load(rp_trainer *tr, const char *path);
/* Drop the optimizer state (AdamW moments and step count; gradients too) and keep the weights, so that training
 * goes on as a new run from the current model (sDPO's steps; the learning-rate schedule restarts as well). */
void rp_trainer_reset_optimizer(rp_trainer *tr);

/* Receives one weight of an exported model: GGUF name, row-major f32 data [rows, cols] (valid during the call). */
typedef rp_status (*rp_weight_sink)(void *ud, const char *name, const float *data, int64_t rows, int64_t cols);
/* Hand every weight of the trained model to sink as dense f32, LoRA adapters merged (W + alpha/r·B·A, the base
 * dequantized from its file type or NF4), in GGUF names and order; a GGUF writer is the sink. Stops at the
 * first status the sink returns that is not RP_OK. */
rp_status rp_trainer_export(const rp_trainer *tr, rp_weight_sink sink, void *ud);
/* The logits [B·T, V] of the last rp_trainer_eval (overwritten by the next forward; a forward_backward turns
 * them into their gradient). */
const float *rp_trainer_logits(const rp_trainer *tr);

/* Test access: the i-th trainable tensor (name, values, gradient, length); NULL past the end. */
const char *rp_trainer_param(rp_trainer *tr, int i, float **p, float **g, int64_t *n);

#endif
