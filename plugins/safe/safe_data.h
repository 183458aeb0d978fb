/* safe_data.h: loaders for the SAFE paper's data (REPRO_MIRROR/longfact, see its MANIFEST.md): the LongFact
 * prompts (two subsets × 38 topics × 30), the 250-prompt LongFact-Objects benchmark set, FActScore's
 * human-labelled atomic facts, and FActScore's step-1 demonstrations. Loaders validate every record and
 * name the file, line and field of the first bad one; counts are the caller's to check against the paper. */
#ifndef RP_SAFE_DATA_H
#define RP_SAFE_DATA_H
#include <stddef.h>
#include "util/err.h"
#include "plugins/safe/safe_text.h"

/* One LongFact prompt. line is the 0-based line in its topic file. */
typedef struct rp_safe_prompt { char *topic, *prompt; int line; } rp_safe_prompt;
/* A list of prompts, in file order (topics sorted by file name). */
typedef struct rp_safe_prompts { rp_safe_prompt *items; size_t n; } rp_safe_prompts;

/* Load one LongFact subset ("objects" or "concepts") from its folder under dir (the longfact data folder).
 * Every topic file must hold only well-formed {"prompt": ...} lines. */
rp_status rp_safe_longfact_load(const char *dir, const char *subset, rp_safe_prompts *out);
/* Load the benchmark set file (lines with topic, line_index, prompt). */
rp_status rp_safe_benchmark_load(const char *path, rp_safe_prompts *out);
/* Free a prompt list; it is empty afterwards. */
void rp_safe_prompts_free(rp_safe_prompts *p);
/* Number of distinct topics in a list. */
size_t rp_safe_prompts_topics(const rp_safe_prompts *p);

/* One human-labelled atomic fact of FActScore: its sentence index in the response and its label
 * (RP_SAFE_SUPPORTED / RP_SAFE_NOT_SUPPORTED / RP_SAFE_IRRELEVANT). */
typedef struct rp_safe_hfact { char *text; size_t sentence; rp_safe_label label; } rp_safe_hfact;
/* One FActScore prompt–response pair. abstained: the model declined (annotations null; no facts). */
typedef struct rp_safe_fs_item {
    char *input, *output, *topic;
    int abstained;
    size_t n_sentences;
    rp_safe_hfact *facts;
    size_t n_facts;
} rp_safe_fs_item;
typedef struct rp_safe_factscore { rp_safe_fs_item *items; size_t n; } rp_safe_factscore;

/* Load one FActScore labelled file (ChatGPT.jsonl, ...); items are appended to out (so several files
 * can be loaded into one set). */
rp_status rp_safe_factscore_load(const char *path, rp_safe_factscore *out);
void rp_safe_factscore_free(rp_safe_factscore *f);
/* Counts of one pair's human labels. */
rp_safe_counts rp_safe_fs_counts(const rp_safe_fs_item *it);

/* FActScore's step-1 demonstrations (demons.json: sentence → list of facts), in file order. */
typedef struct rp_safe_demos { rp_safe_demo *items; size_t n; } rp_safe_demos;
rp_status rp_safe_demos_load(const char *path, rp_safe_demos *out);
void rp_safe_demos_free(rp_safe_demos *d);
/* Pick the demonstrations for one target sentence as the paper does: the first n_fixed in file order plus
 * the n_near others whose sentences score highest by BM25 against the target (ties: file order).
 * idx receives n_fixed + n_near indexes (fewer when there are fewer demos). */
rp_status rp_safe_demos_pick(const rp_safe_demos *d, const char *sentence, size_t n_fixed, size_t n_near,
                             size_t *idx, size_t *n_idx);

#endif
