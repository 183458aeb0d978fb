/* llama.h: Llama-family decoder models (RMSNorm, RoPE, grouped-query attention, SwiGLU, tied or untied
 * head) built over an open model file, and sessions that run them with a KV cache.
 *
 * A model's weights are tensors in buffers of its backend; on the CPU those buffers wrap the mmapped file
 * (quantized blocks are never copied; norm vectors get small f32 buffers). A session owns a KV cache and
 * every activation, one backend buffer planned at creation for n_ctx positions and at most n_batch tokens
 * per forward call, so the per-token loop allocates nothing. Results (logits, hidden states, scores) reach
 * the host only through copies out of that buffer.
 * Shapes: C = dim, L = layers, H / Hkv heads, D = head size, F = FFN size, V = vocabulary, T = tokens
 * of one forward call.
 * Invariants: a session's cache holds positions [0, n_past) computed with the model's layer-skip mask
 * at the time; changing the mask or the backend invalidates the cache (rp_session_reset). */
#ifndef RP_NN_LLAMA_H
#define RP_NN_LLAMA_H
#include <stddef.h>
#include <stdint.h>
#include "model/model_file.h"
#include "model/tokenizer.h"
#include "tensor/backend.h"
#include "tensor/tensor.h"
#include "util/err.h"

typedef struct rp_model rp_model;
typedef struct rp_session rp_session;

typedef struct rp_model_opts {
    const char *tokenizer_path;  /* llama2.c checkpoints: tokenizer .bin (default: tokenizer.bin or tok*.bin beside the model) */
    rp_backend *backend;         /* NULL: rp_backend_default() (REPRO_REFERENCE=1 forces the reference backend) */
} rp_model_opts;

/* Build a model over an open file (the file must outlive the model); no tokenizer is attached. */
rp_status rp_model_new(const rp_model_file *f, rp_backend *be, rp_model **out);
/* Open path (GGUF, llama2.c, safetensors), build the model and its tokenizer; the model owns the file. */
rp_status rp_model_load(const char *path, const rp_model_opts *opts, rp_model **out);
/* Free the model (and the file and tokenizer it owns). NULL is fine. Sessions must be freed first. */
void rp_model_free(rp_model *m);
/* Hyper-parameters. */
const rp_llama_config *rp_model_config(const rp_model *m);
/* The tokenizer (NULL for models built with rp_model_new). */
const rp_tokenizer *rp_model_tokenizer(const rp_model *m);
/* The model file. */
const rp_model_file *rp_model_file_of(const rp_model *m);
/* The backend it computes on; switching takes effect for new forward calls (reset sessions first). Weights
 * stay in their buffers, so switching works between backends that share host memory (cpu, ref, a cpu with
 * other threads); anything else is RP_ERR_UNSUPPORTED. */
rp_backend *rp_model_backend(const rp_model *m);
rp_status rp_model_set_backend(rp_model *m, rp_backend *be);
/* Skip layers: skip[l] != 0 runs the model with layer l replaced by the identity (no weight is copied);
 * skip == NULL clears the mask. n must equal the layer count. */
rp_status rp_model_set_skip(rp_model *m, const unsigned char *skip, int n);
/* Whether layer l is skipped. */
int rp_model_layer_skipped(const rp_model *m, int l);
/* Bytes of the decode-layout weight copies built so far (0 until the model first decodes: they are made
 * lazily, see rp_model_decode_layout in llama_impl.h). */
size_t rp_model_decode_layout_bytes(const rp_model *m);
/* The session the model keeps for scoring many short sequences (created on first use with n_ctx and
 * n_logits, freed with the model), so consecutive scoring calls reuse cached prefixes. */
rp_status rp_model_scoring_session(rp_model *m, int n_ctx, int n_logits, rp_session **out);

/* A session for up to n_ctx positions (<= 0: min(context length, 2048)) with forward calls of up to
 * n_batch tokens (<= 0: 512), of which up to n_logits (<= 0: 64) may ask for every position's logits. */
rp_status rp_session_new(rp_model *m, int n_ctx, int n_batch, int n_logits, rp_session **out);
void rp_session_free(rp_session *s);
/* Forget the cache (n_past = 0). */
void rp_session_reset(rp_session *s);
/* Keep only the first n positions of the cache (n <= n_past), e.g. to reuse a shared prompt prefix. */
rp_status rp_session_truncate(rp_session *s, int64_t n);
/* Positions in the cache, and the tokens they hold (rp_session_n_past of them). */
int64_t rp_session_n_past(const rp_session *s);
const int32_t *rp_session_tokens(const rp_session *s);
int rp_session_n_ctx(const rp_session *s);
rp_model *rp_session_model(const rp_session *s);

typedef enum rp_logits_mode { RP_LOGITS_NONE, RP_LOGITS_LAST, RP_LOGITS_ALL } rp_logits_mode;

/* Run T tokens at positions n_past .. n_past+T-1 and append them to the cache. T may exceed n_batch
 * (processed in pieces) except with RP_LOGITS_ALL, where T <= n_logits. logits (host memory, may be NULL)
 * receives a copy of the logits: [1, V] (LAST) or [T, V] (ALL); they also stay in the session's logits
 * tensor (rp_session_logits) until the next call.
 * When hidden != NULL (host memory) it receives the input of every layer and the final residual (before
 * the output norm): hidden[(l · T + t) · C + c] for l in [0, L], so (L+1)·T·C floats (T <= n_batch). */
rp_status rp_session_forward(rp_session *s, const int32_t *tokens, int64_t T, rp_logits_mode mode, float *logits,
                             float *hidden);
/* Batched decoding: one forward over n sequences at once, each a session of its own (own cache, any
 * length): tokens[t] is appended to seqs[t] at its next position, and logits (host, may be NULL) receives
 * the n rows of next-token logits [n, V]. s is a work session (same model) with n_batch and n_logits >= n
 * whose cache is not used. Each row's arithmetic is that of a one-sequence forward of the same token, so
 * results equal rp_session_forward's (on the CPU backend: bit for bit). Host-memory backends only. */
rp_status rp_session_step(rp_session *s, rp_session *const *seqs, const int32_t *tokens, int n, float *logits);
/* The logits of the last forward call as a tensor view [rows, V] on the session's backend buffer (rows 0
 * when it asked for none); valid until the next call. Read it with rp_tensor_copy_out. */
const rp_tensor *rp_session_logits(const rp_session *s, int64_t *rows);
/* Teacher-forced scoring: for i in [from, n-1), lp[i - from] = log p(tokens[i+1] | tokens[0..i]) and,
 * when greedy != NULL, greedy[i - from] = whether tokens[i+1] is the argmax. Reuses the cache when its
 * content is a prefix of tokens (the session remembers what it holds), so choices sharing a context only
 * pay for their own tokens. */
rp_status rp_session_score(rp_session *s, const int32_t *tokens, int64_t n, int64_t from, float *lp,
                           unsigned char *greedy);
/* rp_session_score of nseq sequences, packed (pack.c): many short sequences per forward of up to n_batch
 * tokens, each attending only to itself, consecutive ones sharing a prefix that covers their context
 * (the choices of a question) laid out once. The results equal rp_session_score's up to float rounding.
 * Leaves the cache empty. */
rp_status rp_session_score_many(rp_session *s, int nseq, const int32_t *const *seqs, const int64_t *lens,
                                const int64_t *from, float *const *out, unsigned char *const *greedy);

#endif
