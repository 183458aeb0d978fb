/* safe_text.h: the pure, network-free parts of SAFE (Wei et al. 2024, "Long-form factuality"):
 * F1@K, sentence splitting, the parsers for each step's model output, and the prompt texts.
 * Nothing here allocates behind the caller's back except into rp_buf / rp_safe_strlist values the caller
 * frees; nothing here reads files or the network. All parsers accept arbitrary bytes (fuzzed). */
#ifndef RP_SAFE_TEXT_H
#define RP_SAFE_TEXT_H
#include <stddef.h>
#include "util/buf.h"
#include "util/err.h"

/* ---- F1@K (paper Eq. 1) ---- */

/* One response's counts: supported, not supported, irrelevant. */
typedef struct rp_safe_counts { long s, ns, ir; } rp_safe_counts;

/* Precision S/(S+NS) of one response; NaN when S+NS == 0 (undefined, excluded from averages). */
double rp_safe_precision(long s, long ns);
/* Recall at K: min(S/K, 1); K must be >= 1 (K < 1 gives NaN). */
double rp_safe_recall_k(long s, long k);
/* F1@K of one response: 2·P·R_K/(P+R_K) when S > 0, else 0; NaN for K < 1 or negative counts. */
double rp_safe_f1k(long s, long ns, long k);

/* Per-response averages over n responses (the paper's Table 30 columns): means of S, NS, I, of per-response
 * precision (over responses with S+NS > 0; n_prec says how many), of R_K and F1@K (over all n). */
typedef struct rp_safe_summary {
    size_t n, n_prec;
    double s, ns, ir, prec, recall, f1;
} rp_safe_summary;
/* Average per-response metrics at one K over n responses. n == 0 gives NaNs with n = 0. */
rp_status rp_safe_summarize(const rp_safe_counts *c, size_t n, long k, rp_safe_summary *out);

/* ---- string lists ---- */

/* A list of owned NUL-terminated strings. */
typedef struct rp_safe_strlist { char **items; size_t n, cap; } rp_safe_strlist;
/* Append a copy of s[0..len). */
rp_status rp_safe_strlist_push(rp_safe_strlist *l, const char *s, size_t len);
/* Free every string and the array; the list is empty and reusable. */
void rp_safe_strlist_free(rp_safe_strlist *l);

/* ---- step 0: sentences ---- */

/* Split a response into sentences: paragraphs on newlines, then sentence ends ('.', '!', '?' plus closing
 * quotes/brackets) followed by space and a capital, digit or quote, unless the word before the period is a
 * known abbreviation or a single capital initial ("J. R. R. Tolkien"). Sentences are trimmed; empty ones
 * dropped. When skip_boilerplate != 0, sentences opening with "Sure" or "Please", and a first sentence
 * opening with "Here are", are left out (they hold no facts, as in the paper). */
rp_status rp_safe_split_sentences(const char *text, size_t len, int skip_boilerplate, rp_safe_strlist *out);

/* ---- parsers of model output (each step) ---- */

/* Step 1: the bulleted list of atomic facts. Items are lines opening with "- " (after optional indent); if
 * there are none, lines opening with "* "; if none either, a numbered list ("1. " or "1) "; small models
 * write those). Indented lines continuing an item are joined with a space; the first unindented other line
 * after an item ends the list. Returns RP_OK with n == 0 when nothing parses (the caller retries or records). */
rp_status rp_safe_parse_facts(const char *text, size_t len, rp_safe_strlist *out);
/* Steps 2 and 4: the content of the first non-empty fenced code block (``` with an optional language word
 * on the opening line), trimmed; empty blocks ("```\n```") are skipped. *found = 0 (and out empty) when
 * there is no complete, non-empty block. */
rp_status rp_safe_parse_code_block(const char *text, size_t len, rp_buf *out, int *found);
/* Content of the first [...] with ASCII punctuation removed and whitespace trimmed/collapsed; *found = 0
 * when there is no closed bracket pair. */
rp_status rp_safe_parse_bracket(const char *text, size_t len, rp_buf *out, int *found);

/* Labels a parse can yield. */
typedef enum rp_safe_label {
    RP_SAFE_UNPARSED = 0,     /* no valid label in the text */
    RP_SAFE_SUPPORTED,
    RP_SAFE_NOT_SUPPORTED,
    RP_SAFE_IRRELEVANT,
    RP_SAFE_RELEVANT,
} rp_safe_label;
/* A short stable name: "unparsed", "supported", "not_supported", "irrelevant", "relevant". */
const char *rp_safe_label_name(rp_safe_label l);
/* Step 3: "[Foo]" → RELEVANT, "[Not Foo]" → IRRELEVANT (exact labels after punctuation stripping), else UNPARSED. */
rp_safe_label rp_safe_parse_relevance(const char *text, size_t len);
/* Step 4 final: "[Supported]" → SUPPORTED, "[Not Supported]" → NOT_SUPPORTED, else UNPARSED. */
rp_safe_label rp_safe_parse_rating(const char *text, size_t len);

/* ---- prompts (our own wording, following the paper's description of each step) ---- */

/* One few-shot demonstration for step 1: a sentence and its atomic facts. */
typedef struct rp_safe_demo { const char *sentence; const char *const *facts; size_t n_facts; } rp_safe_demo;

/* Step 1 prompt: the instruction block, the demonstrations, then the target sentence. */
rp_status rp_safe_prompt_split(const rp_safe_demo *demos, size_t n_demos, const char *sentence, rp_buf *out);
/* Step 2 prompt: make `fact` self-contained given the full response; answer in a code block. */
rp_status rp_safe_prompt_revise(const char *fact, const char *response, rp_buf *out);
/* Step 3 prompt: the Foo / Not Foo relevance question. */
rp_status rp_safe_prompt_relevance(const char *question, const char *response, const char *fact, rp_buf *out);
/* Step 4 query prompt: KNOWLEDGE (NULL or "" → "N/A") and the statement; one search query in a code block. */
rp_status rp_safe_prompt_query(const char *knowledge, const char *fact, rp_buf *out);
/* Step 4 final prompt: is the statement supported by KNOWLEDGE; end with [Supported] or [Not Supported]. */
rp_status rp_safe_prompt_rate(const char *knowledge, const char *fact, rp_buf *out);
/* The benchmark's response-length postamble (one sentence, our wording of paper fn. 15), appended with
 * one space to each LongFact prompt when asked. */
extern const char rp_safe_postamble[];

#endif
