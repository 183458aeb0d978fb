/* jamba.h: the Jamba hybrid Transformer-Mamba-MoE model family (Lieber et al. 2024, AI21; spec
 * shared/papers/jamba.md): configurations with every knob of the paper's design space, the tensor list
 * each configuration implies (what parameter and cache accounting walks), and a CPU fp32 model with a
 * hybrid cache (KV for attention layers, conv + SSM state for Mamba layers), forward, scoring, generation.
 * Layer i is attention when (i - attn_offset) mod (a + m) < a, Mamba otherwise; its feed-forward is an
 * MoE when moe_every > 0 and i mod moe_every == moe_offset, a dense SwiGLU MLP otherwise.
 * Invariants: a configuration that passed rp_jamba_config_check is internally consistent (ratio divides
 * the block, block divides the depth, 1 <= top_k <= n_experts, heads divide evenly); the model allocates
 * exactly the tensors rp_jamba_walk lists; no function here exits or aborts on bad input. */
#ifndef RP_JAMBA_H
#define RP_JAMBA_H
#include <stdint.h>
#include "nn/adamw.h"
#include "tensor/backend.h"
#include "util/err.h"

typedef struct rp_jamba_config {
    char name[48];
    int n_layer, block_len;          /* layers in all; l, layers per Jamba block */
    int attn, mamba, attn_offset;    /* a:m ratio; position of the first attention layer in each a+m group */
    int moe_every, moe_offset;       /* e (0: no MoE); MoE layers are i % e == moe_offset */
    int n_experts, top_k, moe_renorm;/* n, K; renormalise the K weights (Mixtral) or not (released Jamba) */
    int d_model, n_head, n_head_kv, head_dim, ffn_dim, vocab;
    int d_state, d_conv, expand, dt_rank;
    int conv_bias, inner_norms;      /* Mamba conv bias; Jamba's RMSNorms on dt, B, C (paper §6.4) */
    int rope, tied;                  /* RoPE in attention (Jamba: none); tied embeddings */
    float rope_theta, norm_eps, init_std;
} rp_jamba_config;

/* Copy the named configuration (jamba-v0.1, mixtral-8x7b, mistral-7b, llama-2-7b, llama-2-70b, and each
 * with "-tiny": the same layer pattern at a size that runs here) into out; RP_ERR_NOTFOUND names the valid ones. */
rp_status rp_jamba_config_get(const char *name, rp_jamba_config *out);
/* Names of the configurations, NULL-terminated. */
const char *const *rp_jamba_config_names(void);
/* Check every knob; the error names the configuration, the field and the value. */
rp_status rp_jamba_config_check(const rp_jamba_config *c);
/* Whether layer i has an attention mixer (else Mamba), and an MoE feed-forward (else a dense MLP). */
int rp_jamba_layer_is_attn(const rp_jamba_config *c, int i);
int rp_jamba_layer_is_moe(const rp_jamba_config *c, int i);
/* Mamba inner width (expand · d_model). */
int rp_jamba_d_inner(const rp_jamba_config *c);

/* One tensor of a model or of its cache. expert is -1 outside MoE experts; layer -1 outside layers. */
typedef struct rp_jamba_tensor {
    char name[80];
    int layer, expert, ndim;
    int64_t shape[3];
    int64_t numel;
} rp_jamba_tensor;
typedef void (*rp_jamba_tensor_fn)(void *ud, const rp_jamba_tensor *t);
/* Call fn for every parameter tensor of the configuration, in the released checkpoint's order and names. */
void rp_jamba_walk(const rp_jamba_config *c, rp_jamba_tensor_fn fn, void *ud);
/* Call fn for every cache tensor of one sequence of n_ctx tokens: attention k/v [n_ctx, kv·head_dim];
 * Mamba conv state [d_inner, conv_rows] and ssm state [d_inner, d_state]. conv_rows: d_conv - 1 is what
 * decoding needs (this model); HF's cache keeps d_conv. */
void rp_jamba_walk_cache(const rp_jamba_config *c, int64_t n_ctx, int conv_rows, rp_jamba_tensor_fn fn, void *ud);

/* Parameter and cache accounting, all from the walks. */
typedef struct rp_jamba_counts {
    int64_t total, active;           /* parameters; active: all but the experts a token does not use */
    int64_t embed;                   /* embedding + LM head */
    int64_t n_tensors;
    int n_attn, n_mamba, n_moe, n_attn_moe, n_mamba_moe;
    int64_t kv_values_per_token;     /* k and v values cached per token, all attention layers */
    int64_t mamba_state_values;      /* per sequence, conv (d_conv rows, as HF keeps) + ssm, all Mamba layers */
} rp_jamba_counts;
/* Count the configuration's tensors. */
void rp_jamba_count(const rp_jamba_config *c, rp_jamba_counts *out);

/* ---- the model ---- */
typedef struct rp_jamba_model rp_jamba_model;
typedef struct rp_jamba_cache rp_jamba_cache;

/* Build a model with freshly initialised weights (the spec's from-scratch init: normal(0, init_std)
 * linears and embeddings, unit norms, A_log = log(n+1), D = 1, dt bias = softplus^-1 of a log-uniform
 * step in [1e-3, 1e-1]), seeded; runs its kernels through the op table of be (borrowed; NULL: the
 * default backend). */
rp_status rp_jamba_model_new(const rp_jamba_config *c, uint64_t seed, rp_backend *be, rp_jamba_model **out);
/* Free the model (NULL is fine). */
void rp_jamba_model_free(rp_jamba_model *m);
/* The model's configuration. */
const rp_jamba_config *rp_jamba_model_config(const rp_jamba_model *m);
/* Parameters actually allocated by the model, counted as it allocated them (independently of the walk). */
int64_t rp_jamba_model_n_params(const rp_jamba_model *m);
/* Visit every tensor of the configuration's walk with the model's buffer for it (NULL: none) and that
 * buffer's allocated size (-1: none): the check that the built model holds exactly the walked tensors. */
void rp_jamba_model_each(rp_jamba_model *m, void (*fn)(void *ud, const rp_jamba_tensor *t, float *data, int64_t allocated), void *ud);

/* Seconds the forwards of a model spent per layer kind: the attention mixers, the Mamba mixers, the MoE and
 * the dense-MLP feed-forwards, and the rest (embedding, norms, residual adds, final norm, LM head). Wall
 * clock, or with cpu_clock set the calling thread's CPU time (what a one-thread backend costs, whatever
 * else a shared host runs). */
typedef struct rp_jamba_layer_times { double attn, mamba, moe, mlp, other; int cpu_clock; } rp_jamba_layer_times;
/* While t is non-NULL, every forward of m adds its seconds per layer kind to *t (the caller zeroes the sums
 * and picks the clock); NULL stops. What a benchmark splits one decoding step's cost with (a few clock
 * reads per layer). */
void rp_jamba_model_time_layers(rp_jamba_model *m, rp_jamba_layer_times *t);

/* A hybrid cache for one sequence of up to n_ctx tokens. */
rp_status rp_jamba_cache_new(const rp_jamba_model *m, int n_ctx, rp_jamba_cache **out);
void rp_jamba_cache_free(rp_jamba_cache *c);
/* Empty the cache (position 0, zero states). */
void rp_jamba_cache_reset(rp_jamba_cache *c);
/* Pretend pos tokens are already cached (pos <= n_ctx): KV rows and states filled with small seeded
 * values. For timing decode steps at a context length without running the prefill (spec §3). */
rp_status rp_jamba_cache_fill(rp_jamba_cache *c, int pos, uint64_t seed);
/* Tokens already in the cache. */
int rp_jamba_cache_pos(const rp_jamba_cache *c);
/* Bytes the cache holds (KV + conv + SSM state). */
int64_t rp_jamba_cache_bytes(const rp_jamba_cache *c);

/* Run T tokens after those in the cache and append them. logits (may be NULL) receives [T, vocab], or
 * [1, vocab] for the last token only when last_only; aux (may be NULL) receives the load-balancing loss
 * over the router outputs of all MoE layers for these T tokens (0 without MoE). Ids are checked. */
rp_status rp_jamba_forward(rp_jamba_model *m, rp_jamba_cache *c, const int32_t *ids, int T, float *logits,
                           int last_only, double *aux);
/* One decoding step of nseq sequences at once, one new token each (ids [nseq]), sequence i after the tokens
 * in its own cache ks[i] (distinct caches of this model): the matmuls and the MoE routing run over the nseq
 * rows together, attention, conv and scan per sequence; logits (may be NULL) [nseq, vocab]. Equals nseq
 * separate rp_jamba_forward calls up to float rounding. The scratch is ks[0]'s. */
rp_status rp_jamba_decode_batch(rp_jamba_model *m, rp_jamba_cache *const *ks, int nseq, const int32_t *ids, float *logits);
/* The feed-forward of layer `layer` alone (its dense MLP, or its router and experts) on T rows of normalised
 * input u [T, d_model] into out [T, d_model], in the cache's scratch (the cache's position is untouched):
 * what an MoE benchmark times against a dense matmul of the same active FLOPs. */
rp_status rp_jamba_ffn_forward(rp_jamba_model *m, rp_jamba_cache *c, int layer, const float *u, int T, float *out);
/* lp[i] = log p(ids[i+1] | ids[0..i]) for i < n-1, from a fresh cache (one forward); aux as above. */
rp_status rp_jamba_score(rp_jamba_model *m, const int32_t *ids, int n, double *lp, double *aux);
/* One forward from a fresh cache: top[i] (may be NULL) = the most likely token after ids[0..i] for i < n
 * (ties: the lowest id), lp (may be NULL; then n >= 2) as rp_jamba_score's; aux as above. What in-context
 * accuracy is measured with: the greedy answer at each position of a prompt, in one pass. */
rp_status rp_jamba_predict(rp_jamba_model *m, const int32_t *ids, int n, double *lp, int32_t *top, double *aux);
/* Attention probabilities of attention layer `layer` (0-based, RP_ERR_INVAL naming the first attention
 * layer when it is not one) over one fresh forward of ids[n]: out [nq, n_head, n] receives, for query
 * position qpos[i] and head h, the softmax weights over key positions 0..qpos[i] (zeros after): what the
 * attention op mixes the values with (grouped-query heads share their KV head's keys). */
rp_status rp_jamba_attention_maps(rp_jamba_model *m, const int32_t *ids, int n, int layer, const int *qpos, int nq, float *out);
/* Generate up to max_new tokens after the prompt (greedy when temperature <= 0, else sampled with seed);
 * writes them to out and their number to n_out. */
rp_status rp_jamba_generate(rp_jamba_model *m, const int32_t *prompt, int n_prompt, int max_new, float temperature,
                            uint64_t seed, int32_t *out, int *n_out);

/* ---- training from scratch (jamba_train.c) ---- */
typedef struct rp_jamba_trainer rp_jamba_trainer;
/* What one training forward measured: mean cross-entropy (nats per predicted token), the load-balancing
 * loss (0 without MoE), the largest |value| of the Mamba layers' raw dt, B, C projections (before the
 * inner RMSNorms: the paper's §6.4 activations) and of the final residual stream. */
typedef struct rp_jamba_train_stats { double loss, aux, max_inner, max_resid; } rp_jamba_train_stats;
/* A trainer for model m (borrowed; its weights are updated in place) over sequences of up to max_T
 * predicted tokens; loss = cross-entropy + aux_coef · load-balancing loss. Plans gradients, AdamW moments
 * and activations now. RP_ERR_UNSUPPORTED for renormalised top-K routing. */
rp_status rp_jamba_trainer_new(rp_jamba_model *m, int max_T, float aux_coef, rp_jamba_trainer **out);
/* Free the trainer (NULL is fine); the model stays. */
void rp_jamba_trainer_free(rp_jamba_trainer *t);
/* Forward and backward over ids[0..T] (T+1 tokens: inputs ids[0..T), targets ids[1..T]), from an empty
 * state; gradients are ADDED to the trainer's (micro-batches accumulate); ids are checked. */
rp_status rp_jamba_trainer_forward_backward(rp_jamba_trainer *t, const int32_t *ids, int T, rp_jamba_train_stats *out);
/* The same with the loss weighted per predicted token: loss = Σ mask[i]·CE_i / Σ mask[i] (mask [T], each
 * finite and >= 0, not all zero; NULL: all ones): training on the answer positions of a task only. */
rp_status rp_jamba_trainer_forward_backward_masked(rp_jamba_trainer *t, const int32_t *ids, int T, const float *mask,
                                                   rp_jamba_train_stats *out);
/* One AdamW step (opt, learning rate lr) with the accumulated gradients times grad_scale (1/micro-batches),
 * clipped to global norm clip (<= 0: none); then zeroes the gradients. gnorm (may be NULL): the norm
 * before clipping. RP_ERR_RANGE when the gradient is not finite (weights untouched). */
rp_status rp_jamba_trainer_update(rp_jamba_trainer *t, const rp_adamw *opt, float lr, float grad_scale, float clip, double *gnorm);
/* The accumulated gradient of one of the model's parameter buffers (as rp_jamba_model_each hands them
 * out); NULL for anything else. */
const float *rp_jamba_trainer_grad(const rp_jamba_trainer *t, const float *param);

/* ---- the machine a timing ran on (jamba_machine.c) ---- */
typedef struct rp_jamba_machine {
    double load1;        /* 1-minute load average (-1: unknown) */
    double gflops_wall;  /* one-thread fp32 FMA rate per wall-second now: what a timing gets */
    double gflops_cpu;   /* the same per CPU-second: the core's calibrated peak */
} rp_jamba_machine;
/* Probe the load and the one-thread FMA rate (best of 5 runs of about 2 ms); never fails. */
void rp_jamba_machine_probe(rp_jamba_machine *out);

#endif
