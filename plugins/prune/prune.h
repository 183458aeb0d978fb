/* prune.h: the C side of the deeper-layer pruning plugin (Gromov et al. 2024, "The Unreasonable
 * Ineffectiveness of the Deeper Layers"; spec shared/papers/prune.md): the angular-distance statistics
 * between residual-stream states, the layer selection rules, and the export of a pruned model file.
 * States are indexed l = 0..L: x^(l) is the input of block l, x^(L) the output of the last block (before
 * the final norm), as rp_session_forward hands them out.
 * Shapes: S = L + 1 states, T tokens, C = dim. */
#ifndef RP_PLUGIN_PRUNE_H
#define RP_PLUGIN_PRUNE_H
#include <stdint.h>
#include "model/model_file.h"
#include "util/err.h"

/* Accumulates, over samples, d(l, n) = arccos(cos(x^(l), x^(l+n))) / pi for every 0 <= l < l+n <= L
 * (mean and standard error over samples) and ShortGPT's block influence BI_l = 1 - cos(x^(l), x^(l+1))
 * (mean over every token seen). */
typedef struct rp_prune_stats rp_prune_stats;

/* Statistics over S = L + 1 states of C dimensions. */
rp_status rp_prune_stats_new(int S, int C, rp_prune_stats **out);
/* Release; NULL is fine. */
void rp_prune_stats_free(rp_prune_stats *s);
/* Add one sample's states h[l·T·C + t·C + c] ([S, T, C]): the angular distance uses the last token (or,
 * with all_tokens, each token as a sample of its own); block influence uses every token. */
rp_status rp_prune_stats_add(rp_prune_stats *s, const float *h, int64_t T, int all_tokens);
/* Samples counted for the angular distance. */
int64_t rp_prune_stats_count(const rp_prune_stats *s);
/* Number of states S, and their dimension C. */
int rp_prune_stats_states(const rp_prune_stats *s);
int rp_prune_stats_dim(const rp_prune_stats *s);
/* Mean angular distance d(l, n) and its standard error (0 with fewer than 2 samples); NAN outside
 * 0 <= l, 1 <= n, l + n <= L. */
double rp_prune_stats_distance(const rp_prune_stats *s, int l, int n, double *stderr_out);
/* ShortGPT block influence of layer l in [0, L): 1 - the mean over tokens of cos(x^(l), x^(l+1)). */
double rp_prune_stats_influence(const rp_prune_stats *s, int l);

/* The angular distance between two vectors, arccos(cos(a, b)) / pi in [0, 1] (0 when either is zero). */
double rp_prune_angular(const float *a, const float *b, int64_t C);

/* The paper's rule: l* = argmin over l in [0, L-n] of d(l, n) (ties: the smallest l); *l_star gets it and
 * out[0..n) the layers l*..l*+n-1. Errors when n is not in [1, L]. */
rp_status rp_prune_select_angular(const rp_prune_stats *s, int n, int *l_star, int *out);
/* The simple heuristic: the n layers just before the last, L-1-n .. L-2 (n in [0, L-1]). */
rp_status rp_prune_select_heuristic(int L, int n, int *out);
/* ShortGPT: the n layers with the lowest block influence, ascending by index (n in [0, L]). */
rp_status rp_prune_select_influence(const rp_prune_stats *s, int n, int *out);
/* A control: n distinct layers of [0, L) drawn from seed (splitmix64), ascending (n in [0, L]). */
rp_status rp_prune_select_random(int L, int n, uint64_t seed, int *out);

/* Write f (a Llama-family model of any readable format) without the layers whose drop[l] != 0 as a GGUF
 * file at path: blk.<l>.* tensors renumbered consecutively, <arch>.block_count rewritten, every other
 * tensor and metadata entry copied as stored (quantized blocks untouched), and "repro.prune.dropped"
 * listing the original indices; a llama2.c source's tokenizer (tokenizer.bin or tok*.bin beside it, an error
 * when missing) is written as GGUF tokenizer keys. n must equal the file's layer count; dropping every layer
 * is an error. */
rp_status rp_prune_export(const rp_model_file *f, const unsigned char *drop, int n, const char *path);

#endif
