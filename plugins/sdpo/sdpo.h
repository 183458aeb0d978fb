/* sdpo.h: the C side of the sDPO plugin (Kim et al., "sDPO: Don't Use Your Data All at Once", arXiv 2403.19270):
 * the DPO loss over per-sequence log-probabilities with its implicit rewards and gradient, the preference-data
 * loaders (UltraFeedback binarized, Azure-format Orca DPO pairs, HH-RLHF transcripts), and the on-disk cache of
 * reference log-probabilities. Pure functions of their inputs: no Lua, no SQL, no globals.
 * Conventions: a batch of P pairs is laid out as 2P sequences, chosen then rejected for each pair
 * (logp[2i] = log π(y_w|x_i), logp[2i+1] = log π(y_l|x_i)), the layout the trainer's loss hook sees. */
#ifndef RP_PLUGIN_SDPO_H
#define RP_PLUGIN_SDPO_H
#include <stddef.h>
#include <stdint.h>
#include "util/err.h"
#include "util/sha256.h"

/* ---- DPO loss (dpo_loss.c) ---------------------------------------------------------------------------------- */

/* What one batch of pairs gives: the mean loss −log σ(β(γ_θ − γ_ref)) and the reward statistics (TRL's). */
typedef struct rp_dpo_stats {
    double loss;            /* mean over pairs */
    double reward_chosen;   /* mean r_w = β(log π_θ(y_w|x) − log π_ref(y_w|x)) */
    double reward_rejected; /* mean r_l likewise */
    double accuracy;        /* share of pairs with r_w > r_l (ties count 0, as TRL) */
    double margin;          /* mean r_w − r_l */
    double gamma_policy;    /* mean γ_θ = log π_θ(y_w|x) − log π_θ(y_l|x) */
    double gamma_ref;       /* mean γ_ref */
} rp_dpo_stats;

/* The DPO loss of P pairs at temperature beta > 0 from the policy's and the reference's per-sequence
 * log-probabilities (2P each, chosen/rejected interleaved); dlogp (2P, may be NULL) gets ∂loss/∂logp, the
 * gradient of the mean loss w.r.t. the policy's log-probabilities. Non-finite inputs are an error. */
rp_status rp_dpo_loss(const double *logp, const double *ref_logp, int P, double beta, rp_dpo_stats *st, double *dlogp);

/* The per-pair loss −log σ(z) = log(1 + e^{−z}), computed without overflow for any finite z. */
double rp_dpo_softplus_neg(double z);

/* ---- preference data (pref_data.c) --------------------------------------------------------------------------- */

typedef enum rp_pref_format { RP_PREF_ULTRAFEEDBACK, RP_PREF_ORCA_AZURE, RP_PREF_HH } rp_pref_format;

typedef struct rp_pref_msg { char *role, *content; } rp_pref_msg;   /* role: "system", "user", "assistant" */

/* One preference pair: the prompt as a conversation (ending with a user turn), the two responses, and
 * score = score_chosen − score_rejected where the source gives scores (NAN otherwise). */
typedef struct rp_pref_pair {
    rp_pref_msg *msgs;
    int n_msgs;
    char *chosen, *rejected;
    double score;
    int64_t record;         /* 1-based line number in its file */
} rp_pref_pair;

typedef struct rp_pref_set { rp_pref_pair *pairs; size_t n, cap; } rp_pref_set;

/* Parse a format name: "ultrafeedback", "orca", "hh". */
rp_status rp_pref_format_parse(const char *name, rp_pref_format *out);
/* Parse JSONL text (len bytes; blank lines skipped) in the given format, appending pairs to set. A malformed
 * record is an error naming `name` (the file), the 1-based record and the field; set keeps what came before. */
rp_status rp_pref_parse(const char *text, size_t len, rp_pref_format fmt, const char *name, rp_pref_set *set);
/* Read a .jsonl or .jsonl.gz file (gzip detected by content) and parse it as rp_pref_parse does. */
rp_status rp_pref_load(const char *path, rp_pref_format fmt, rp_pref_set *set);
/* Release the pairs (the set may be reused after). */
void rp_pref_set_free(rp_pref_set *set);

/* ---- reference log-probability cache (ref_cache.c) --------------------------------------------------------- */

/* The cache key: sha256 over tagged parts (model weights' digest, adapter digest, data digest, settings), hex. */
typedef struct rp_ref_key { char hex[65]; } rp_ref_key;

/* Start a key. */
void rp_ref_key_begin(rp_sha256_ctx *c);
/* Add one named part (tag and length are hashed with the bytes, so parts cannot alias). */
void rp_ref_key_part(rp_sha256_ctx *c, const char *tag, const void *data, size_t len);
/* Finish the key as hex. */
void rp_ref_key_end(rp_sha256_ctx *c, rp_ref_key *out);

/* Write n values under key to path atomically (its folder created if missing; a temporary file in the same folder, fsync, rename), so a
 * killed run leaves either the old file or the new one, never a partial file at path. */
rp_status rp_ref_cache_write(const char *path, const rp_ref_key *key, const double *v, size_t n);
/* Read the values cached at path for key into v (n values expected). RP_ERR_NOTFOUND: no file, or a file for
 * another key (a changed reference or data: recompute); RP_ERR_FORMAT: a damaged file (bad magic, wrong size,
 * checksum mismatch), the message naming the path and what is wrong. v is untouched unless RP_OK. */
rp_status rp_ref_cache_read(const char *path, const rp_ref_key *key, double *v, size_t n);

#endif
