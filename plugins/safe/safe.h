/* safe.h: the SAFE pipeline (Search-Augmented Factuality Evaluator) over abstract LLM and search backends,
 * and the content-addressed SQLite cache that every call goes through.
 * A backend answers a batch of calls at once (so an HTTP backend can keep many requests in flight); the
 * pipeline is a state machine over all facts of all responses, advancing every fact one call per round.
 * Invariants: a call's cache key covers everything that determines its answer (backend identity, model,
 * sampling settings, retry index, the full prompt or query) and never a secret; a fact is never dropped
 * silently: every fact ends supported, not supported, irrelevant, unparsed (with the raw model text) or
 * failed (with the transport error). */
#ifndef RP_SAFE_H
#define RP_SAFE_H
#include <stddef.h>
#include <stdint.h>
#include "util/buf.h"
#include "util/err.h"
#include "plugins/safe/safe_text.h"
#include "plugins/safe/safe_data.h"

/* ---- backends ---- */

/* One chat-completion call: a single user message. The backend fills text, token counts, cost and st. */
typedef struct rp_safe_call {
    const char *prompt;
    double temperature;
    int max_tokens;
    int attempt;                  /* retry index (0 first); part of the cache key so retries differ */
    const char *const *choices;   /* a label step's allowed answers ("[Foo]", "[Not Foo]"), else NULL: a scoring
                                   * backend answers with the likeliest; a text backend ignores them */
    int n_choices;
    rp_buf text;                  /* the answer */
    long prompt_tokens, completion_tokens;
    double cost;                  /* US dollars as the backend prices it */
    rp_status st;                 /* RP_OK, or the failure (message in error) */
    char error[512];
    int cached;                   /* answered from the cache */
    int net_retries;              /* HTTP-level retries (429, 5xx, timeouts) made for this call, answered or not */
} rp_safe_call;

/* An LLM backend. name identifies model and endpoint kind ("openai:gpt-3.5-turbo-0125"); it keys the cache. */
typedef struct rp_safe_llm {
    void *ctx;
    char name[160];
    /* Answer n calls (any order, any concurrency). Return RP_OK unless the whole batch must stop
     * (RP_ERR_INTERRUPTED, or replay-mode cache misses); per-call failures go in calls[i].st. */
    rp_status (*complete)(void *ctx, rp_safe_call *calls, size_t n);
    void (*release)(void *ctx);
} rp_safe_llm;

/* One search: query q, k results wanted; text receives the joined result string. */
typedef struct rp_safe_query {
    const char *q;
    int k;
    rp_buf text;
    double cost;
    rp_status st;
    char error[512];
    int cached;
    int net_retries;              /* HTTP-level retries made for this search, answered or not */
} rp_safe_query;

typedef struct rp_safe_search {
    void *ctx;
    char name[160];
    rp_status (*search)(void *ctx, rp_safe_query *qs, size_t n);
    void (*release)(void *ctx);
} rp_safe_search;

/* Release a backend's context (NULL-safe, idempotent: the vtable is cleared). */
void rp_safe_llm_release(rp_safe_llm *l);
void rp_safe_search_release(rp_safe_search *s);
/* Free the buffers of n calls / queries (the arrays are the caller's). */
void rp_safe_calls_free(rp_safe_call *c, size_t n);
void rp_safe_queries_free(rp_safe_query *q, size_t n);

/* ---- the cache ---- */

typedef struct rp_safe_cache rp_safe_cache;
/* Counters of one cache since it was opened. net_* count calls forwarded to the inner backend. */
typedef struct rp_safe_cache_stats {
    uint64_t llm_hits, llm_misses, search_hits, search_misses, stored, net_llm_calls, net_search_calls;
    uint64_t net_retries;         /* HTTP-level retries the inner backends made for forwarded calls */
    double cost_spent, cost_saved;
} rp_safe_cache_stats;

/* Open (creating) a cache database file. */
rp_status rp_safe_cache_open(const char *path, rp_safe_cache **out);
void rp_safe_cache_close(rp_safe_cache *c);
rp_safe_cache_stats rp_safe_cache_get_stats(const rp_safe_cache *c);
/* Number of entries stored. */
int64_t rp_safe_cache_count(rp_safe_cache *c);
/* Write the whole cache to a new SQLite file (shareable; import it elsewhere or open it for replay). */
rp_status rp_safe_cache_export(rp_safe_cache *c, const char *path);
/* Add every entry of an exported file that this cache lacks; *n_new (may be NULL) gets how many. */
rp_status rp_safe_cache_import(rp_safe_cache *c, const char *path, int64_t *n_new);
/* Wrap a backend: answers come from the cache when present, else from inner (then stored at once, so an
 * interrupted run resumes without repeating finished calls). replay != 0: inner may be NULL (then out->name, set by the caller, names the backend to key on); a miss is
 * RP_ERR_NOTFOUND naming the request. The wrapper borrows inner and the cache. */
rp_status rp_safe_llm_cached(rp_safe_cache *c, rp_safe_llm *inner, int replay, rp_safe_llm *out);
rp_status rp_safe_search_cached(rp_safe_cache *c, rp_safe_search *inner, int replay, rp_safe_search *out);
/* The hex sha256 key of an LLM call / a search under a backend name (exposed for tests and tools). */
rp_status rp_safe_llm_key(const char *backend, const rp_safe_call *call, char hex[65]);
rp_status rp_safe_search_key(const char *backend, const rp_safe_query *q, char hex[65]);

/* ---- concrete backends ---- */

/* An OpenAI-compatible chat-completions endpoint (OpenAI, vLLM, llama.cpp server, Ollama, `repro serve`).
 * The API key is read from the environment variable api_key_env (NULL or unset: no Authorization header)
 * when the backend is created and kept only in memory. Prices in US dollars per million tokens. */
typedef struct rp_safe_openai_config {
    const char *base_url;         /* e.g. "https://api.openai.com/v1" (".../chat/completions" is appended) */
    const char *model;
    const char *api_key_env;      /* e.g. "OPENAI_API_KEY" */
    double price_in_per_m, price_out_per_m;
    int max_concurrent;           /* requests in flight (default 4) */
    double requests_per_min, tokens_per_min;   /* <= 0: unlimited */
    int max_retries;              /* HTTP retries (default 5) */
    double timeout_s;             /* per attempt (default 120) */
    double backoff_base_s;        /* first backoff (default 0.5 s) */
} rp_safe_openai_config;
rp_status rp_safe_openai_new(const rp_safe_openai_config *cfg, rp_safe_llm *out);
/* Parse a chat-completions response body into a call's text and token counts (RP_ERR_FORMAT with the
 * reason on anything else: HTML, truncated or malformed JSON, an error object, no choices). */
rp_status rp_safe_openai_parse(const char *body, size_t len, rp_safe_call *call);

/* The in-process local model (GGUF or llama2.c) through its chat template, no HTTP; name "local:<file>".
 * score_labels != 0: a call with choices (the relevance and rating steps) is answered with the choice of
 * highest log-likelihood after the templated prompt (engine scoring, no sampling), so even a small model
 * gives a verdict; the name is then "local-scored:<file>" so its answers are cached apart. */
rp_status rp_safe_local_new(const char *model_path, int n_ctx, int score_labels, rp_safe_llm *out);

/* Serper (google.serper.dev) as the paper used it; key from api_key_env (default "SERPER_API_KEY"). */
typedef struct rp_safe_serper_config {
    const char *url;              /* default "https://google.serper.dev/search" */
    const char *api_key_env;
    double price_per_query;       /* US dollars per query (default 0.001) */
    int max_concurrent, max_retries;
    double requests_per_min, timeout_s, backoff_base_s;
} rp_safe_serper_config;
rp_status rp_safe_serper_new(const rp_safe_serper_config *cfg, rp_safe_search *out);
/* Turn a Serper response body into SAFE's result string (answer box, knowledge graph, first k organic
 * results; a fixed "no good result" text when the organic list is empty). RP_ERR_FORMAT (a failure the
 * pipeline retries and the cache never stores) when the body is not a JSON object, or has none of
 * answerBox, knowledgeGraph and an "organic" array (e.g. {"searchParameters":{}}). */
rp_status rp_safe_serper_parse(const char *body, size_t len, int k, rp_buf *out);
extern const char rp_safe_no_result[];

/* A local BM25 index (SQLite FTS5) over the text files of a folder, split into paragraphs. */
rp_status rp_safe_bm25_build(const char *index_path, const char *docs_dir, int64_t *n_passages);
rp_status rp_safe_bm25_new(const char *index_path, rp_safe_search *out);

/* ---- the pipeline ---- */

typedef struct rp_safe_config {
    int n_queries;            /* searches per relevant fact (5) */
    int k_results;            /* results per search (3) */
    int max_retries;          /* re-asks per parse-dependent call (10) */
    int max_failures;         /* transport failures per fact before it is recorded failed (3) */
    int max_tokens;           /* per call (512) */
    double temp_split, temp_other;   /* 0 and 0.1 as in the paper */
    int n_fixed_demos, n_near_demos; /* 7 and 1 */
    int skip_boilerplate;     /* 1 */
    int query_fallback;       /* 0 (paper): an unparseable query leaves the fact unparsed; 1: search the fact itself */
    size_t max_batch;         /* calls handed to a backend at once (0: all of a round) */
    int (*should_stop)(void *ud);   /* checked between rounds: non-zero stops with RP_ERR_INTERRUPTED (may be NULL) */
    void *stop_ud;
} rp_safe_config;
/* The paper's settings. */
rp_safe_config rp_safe_config_default(void);

/* What to rate: a question and response; facts NULL runs steps 0-1 on the response, else steps 2-4 are run
 * on the given facts (e.g. FActScore's human-split facts). */
typedef struct rp_safe_item {
    const char *question, *response;
    const char *const *facts;
    size_t n_facts;
} rp_safe_item;

/* Everything SAFE did for one fact. */
typedef struct rp_safe_fact {
    size_t sentence;              /* index into the result's sentences (SIZE_MAX when given) */
    char *atomic, *revised;
    int revise_parsed, relevance_parsed;
    int query_fallbacks;          /* searches made with the fact as query (query_fallback) */
    rp_safe_strlist queries, results;
    rp_safe_label label;          /* SUPPORTED, NOT_SUPPORTED, IRRELEVANT, or UNPARSED (raw set) */
    int failed;                   /* transport failures exhausted (error set) */
    char *raw, *error;
    long llm_calls, searches, retries;   /* retries: re-asks after unparseable answers */
    long net_retries, failures;   /* HTTP-level retries; transport failures (each retried by the pipeline) */
} rp_safe_fact;

typedef struct rp_safe_result {
    rp_safe_strlist sentences;
    rp_safe_strlist split_raw_unparsed;  /* raw step-1 output of sentences no fact could be parsed from */
    rp_safe_fact *facts;
    size_t n_facts;
    rp_safe_counts counts;        /* S, NS, I */
    long n_unparsed, n_failed;
    long llm_calls, searches, retries, cached_calls;
    long net_retries, failures;   /* HTTP-level retries and transport failures, facts and splitting included */
    long prompt_tokens, completion_tokens;
    double cost;                  /* of every call made for it (cached or not): a cold run's price */
} rp_safe_result;

/* Rate n items; results[i] answers items[i] (caller-allocated, zeroed). demos may be NULL when every item
 * gives its facts. Returns RP_OK unless a backend stopped the batch (interrupt, replay miss). */
rp_status rp_safe_rate(const rp_safe_config *cfg, rp_safe_llm *llm, rp_safe_search *search,
                       const rp_safe_demos *demos, const rp_safe_item *items, size_t n, rp_safe_result *results);
void rp_safe_result_free(rp_safe_result *r);
/* The per-response record: counts, cost, every sentence, fact, revision, query, search result, verdict. */
rp_status rp_safe_result_json(const rp_safe_result *r, const rp_safe_item *item, rp_buf *out);

#endif
