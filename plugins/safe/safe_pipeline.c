/* safe_pipeline.c: SAFE's steps as a state machine over every fact of every response. Each round, every
 * unfinished task contributes its next call; LLM calls and searches are handed to the backends in batches
 * (so an HTTP backend keeps many in flight), then every task advances on its answer.
 * Phase 1 splits each distinct sentence into atomic facts; phase 2 walks each fact through
 * revise → relevance → (query → search) × n_queries → rate. Invariants: a task never issues a call after
 * reaching DONE; every fact ends with a label (or failed / unparsed with the text that caused it). */
#include "plugins/safe/safe.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

rp_safe_config rp_safe_config_default(void) {
    return (rp_safe_config){ .n_queries = 5, .k_results = 3, .max_retries = 10, .max_failures = 3, .max_tokens = 512,
                             .temp_split = 0.0, .temp_other = 0.1, .n_fixed_demos = 7, .n_near_demos = 1,
                             .skip_boilerplate = 1, .max_batch = 0 };
}

static char *dup0(const char *s) {
    size_t n = strlen(s);
    char *c = malloc(n + 1);
    if (c) memcpy(c, s, n + 1);
    return c;
}

/* Replace *dst with a copy of s[0..n). */
static rp_status set_str(char **dst, const char *s, size_t n) {
    char *c = malloc(n + 1);
    if (!c) return rp_fail(RP_ERR_NOMEM, "out of memory");
    memcpy(c, s, n);
    c[n] = 0;
    free(*dst);
    *dst = c;
    return RP_OK;
}

/* Account one answered call to a result. */
static void account(rp_safe_result *r, const rp_safe_call *c) {
    r->llm_calls++;
    r->cached_calls += c->cached;
    r->prompt_tokens += c->prompt_tokens;
    r->completion_tokens += c->completion_tokens;
    r->cost += c->cost;
}

/* Run calls through the backend in chunks of max_batch. */
static rp_status llm_batch(rp_safe_llm *llm, rp_safe_call *calls, size_t n, size_t max_batch) {
    size_t step = max_batch ? max_batch : n;
    for (size_t i = 0; i < n; i += step) {
        size_t m = n - i < step ? n - i : step;
        RP_TRY(llm->complete(llm->ctx, calls + i, m));
    }
    return RP_OK;
}

static rp_status search_batch(rp_safe_search *s, rp_safe_query *qs, size_t n, size_t max_batch) {
    size_t step = max_batch ? max_batch : n;
    for (size_t i = 0; i < n; i += step) {
        size_t m = n - i < step ? n - i : step;
        RP_TRY(s->search(s->ctx, qs + i, m));
    }
    return RP_OK;
}

/* ---- phase 1: sentences → facts ---- */

typedef struct split_task {
    size_t item, sentence;
    int attempt, failures, done;
    rp_buf prompt;
    rp_safe_strlist facts;
} split_task;

static rp_status phase_split(const rp_safe_config *cfg, rp_safe_llm *llm, const rp_safe_demos *demos,
                             const rp_safe_item *items, size_t n, rp_safe_result *res) {
    split_task *t = NULL;
    size_t nt = 0;
    rp_status st = RP_OK;
    /* sentences and one task per distinct sentence */
    for (size_t i = 0; st == RP_OK && i < n; i++) {
        if (items[i].facts) continue;
        const char *resp = items[i].response ? items[i].response : "";
        st = rp_safe_split_sentences(resp, strlen(resp), cfg->skip_boilerplate, &res[i].sentences);
        for (size_t s = 0; st == RP_OK && s < res[i].sentences.n; s++) {
            size_t prev = 0;
            while (prev < s && strcmp(res[i].sentences.items[prev], res[i].sentences.items[s]) != 0) prev++;
            if (prev < s) continue;
            split_task *g = realloc(t, (nt + 1) * sizeof *g);
            if (!g) { st = rp_fail(RP_ERR_NOMEM, "out of memory"); break; }
            t = g;
            memset(&t[nt], 0, sizeof t[nt]);
            t[nt].item = i;
            t[nt].sentence = s;
            split_task *k = &t[nt++];
            size_t want = (size_t)(cfg->n_fixed_demos + cfg->n_near_demos), idx_n = 0;
            size_t *idx = calloc(want ? want : 1, sizeof *idx);
            rp_safe_demo *pick = calloc(want ? want : 1, sizeof *pick);
            if (!idx || !pick) st = rp_fail(RP_ERR_NOMEM, "out of memory");
            if (st == RP_OK && demos)
                st = rp_safe_demos_pick(demos, res[i].sentences.items[s], (size_t)cfg->n_fixed_demos,
                                        (size_t)cfg->n_near_demos, idx, &idx_n);
            for (size_t d = 0; st == RP_OK && d < idx_n; d++) pick[d] = demos->items[idx[d]];
            if (st == RP_OK) st = rp_safe_prompt_split(pick, idx_n, res[i].sentences.items[s], &k->prompt);
            free(idx);
            free(pick);
        }
    }
    rp_safe_call *calls = calloc(nt ? nt : 1, sizeof *calls);
    size_t *who = calloc(nt ? nt : 1, sizeof *who);
    if (st == RP_OK && (!calls || !who)) st = rp_fail(RP_ERR_NOMEM, "out of memory");
    for (;;) {
        if (st != RP_OK) break;
        if (cfg->should_stop && cfg->should_stop(cfg->stop_ud)) { st = rp_fail(RP_ERR_INTERRUPTED, "SAFE: stopped between rounds"); break; }
        size_t nc = 0;
        for (size_t k = 0; k < nt; k++) {
            if (t[k].done) continue;
            rp_buf_clear(&calls[nc].text);
            rp_buf keep = calls[nc].text;
            memset(&calls[nc], 0, sizeof calls[nc]);
            calls[nc].text = keep;
            calls[nc].prompt = t[k].prompt.data;
            calls[nc].temperature = cfg->temp_split;
            calls[nc].max_tokens = cfg->max_tokens;
            calls[nc].attempt = t[k].attempt;
            calls[nc].st = RP_ERR_INTERRUPTED;   /* until a backend answers */
            who[nc++] = k;
        }
        if (nc == 0) break;
        st = llm_batch(llm, calls, nc, cfg->max_batch);
        if (st != RP_OK) break;
        for (size_t c = 0; st == RP_OK && c < nc; c++) {
            split_task *k = &t[who[c]];
            rp_safe_result *r = &res[k->item];
            r->net_retries += calls[c].net_retries;
            if (calls[c].st != RP_OK) {
                r->failures++;
                if (++k->failures > cfg->max_failures) {
                    k->done = 1;
                    rp_buf msg = {0};
                    st = rp_buf_printf(&msg, "(transport failure: %s)", calls[c].error);
                    if (st == RP_OK) st = rp_safe_strlist_push(&r->split_raw_unparsed, msg.data, msg.len);
                    rp_buf_free(&msg);
                }
                continue;
            }
            account(r, &calls[c]);
            size_t before = k->facts.n;
            st = rp_safe_parse_facts(calls[c].text.data ? calls[c].text.data : "", calls[c].text.len, &k->facts);
            if (st != RP_OK) break;
            if (k->facts.n > before) { k->done = 1; continue; }
            r->retries += k->attempt < cfg->max_retries;
            if (++k->attempt > cfg->max_retries) {
                k->done = 1;
                st = rp_safe_strlist_push(&r->split_raw_unparsed, calls[c].text.data ? calls[c].text.data : "", calls[c].text.len);
            }
        }
    }
    /* facts in sentence order */
    for (size_t k = 0; st == RP_OK && k < nt; k++) {
        rp_safe_result *r = &res[t[k].item];
        if (t[k].facts.n == 0) continue;
        rp_safe_fact *g = realloc(r->facts, (r->n_facts + t[k].facts.n) * sizeof *g);
        if (!g) { st = rp_fail(RP_ERR_NOMEM, "out of memory"); break; }
        r->facts = g;
        for (size_t f = 0; f < t[k].facts.n; f++) {
            rp_safe_fact *x = &r->facts[r->n_facts++];
            memset(x, 0, sizeof *x);
            x->sentence = t[k].sentence;
            x->atomic = t[k].facts.items[f];
            t[k].facts.items[f] = NULL;
        }
    }
    for (size_t k = 0; k < nt; k++) { rp_buf_free(&t[k].prompt); rp_safe_strlist_free(&t[k].facts); }
    if (calls) rp_safe_calls_free(calls, nt);
    free(calls); free(who); free(t);
    return st;
}

/* ---- phase 2: facts → labels ---- */

typedef enum fstate { F_REVISE, F_RELEVANCE, F_QUERY, F_SEARCH, F_RATE, F_DONE } fstate;

typedef struct fact_task {
    size_t item, fact;
    fstate state;
    int attempt, failures, qi;
    rp_buf prompt, knowledge, query;
} fact_task;

static rp_status fact_prompt(fact_task *t, const rp_safe_item *it, rp_safe_fact *f) {
    switch (t->state) {
    case F_REVISE: return rp_safe_prompt_revise(f->atomic, it->response ? it->response : "", &t->prompt);
    case F_RELEVANCE: return rp_safe_prompt_relevance(it->question ? it->question : "", it->response ? it->response : "",
                                                      f->revised, &t->prompt);
    case F_QUERY: return rp_safe_prompt_query(t->knowledge.data, f->revised, &t->prompt);
    case F_RATE: return rp_safe_prompt_rate(t->knowledge.data, f->revised, &t->prompt);
    default: return RP_OK;
    }
}

/* Move to a new state, resetting the retry counter and building the next prompt. */
static rp_status go(fact_task *t, fstate s, const rp_safe_item *it, rp_safe_fact *f) {
    t->state = s;
    t->attempt = 0;
    return fact_prompt(t, it, f);
}

/* A parse failed: retry, or give up with the step's fallback. Returns 1 when giving up. */
static int parse_failed(const rp_safe_config *cfg, fact_task *t, rp_safe_fact *f) {
    if (t->attempt < cfg->max_retries) { t->attempt++; f->retries++; return 0; }
    return 1;
}

static rp_status fact_answer(const rp_safe_config *cfg, fact_task *t, const rp_safe_item *it, rp_safe_fact *f,
                             const rp_safe_call *c) {
    const char *txt = c->text.data ? c->text.data : "";
    size_t len = c->text.len;
    rp_buf tmp = {0};
    int found = 0;
    rp_status st = RP_OK;
    switch (t->state) {
    case F_REVISE:
        st = rp_safe_parse_code_block(txt, len, &tmp, &found);
        if (st != RP_OK) break;
        if (found) { f->revise_parsed = 1; st = set_str(&f->revised, tmp.data, tmp.len); if (st == RP_OK) st = go(t, F_RELEVANCE, it, f); }
        else if (parse_failed(cfg, t, f)) { st = set_str(&f->revised, f->atomic, strlen(f->atomic)); if (st == RP_OK) st = go(t, F_RELEVANCE, it, f); }
        break;
    case F_RELEVANCE: {
        rp_safe_label l = rp_safe_parse_relevance(txt, len);
        if (l == RP_SAFE_IRRELEVANT) { f->relevance_parsed = 1; f->label = RP_SAFE_IRRELEVANT; t->state = F_DONE; }
        else if (l == RP_SAFE_RELEVANT) { f->relevance_parsed = 1; st = go(t, F_QUERY, it, f); }
        else if (parse_failed(cfg, t, f)) st = go(t, F_QUERY, it, f);   /* never parseable: treated as relevant */
        break;
    }
    case F_QUERY:
        st = rp_safe_parse_code_block(txt, len, &tmp, &found);
        if (st != RP_OK) break;
        if (found) {
            rp_buf_clear(&t->query);
            st = rp_buf_append(&t->query, tmp.data, tmp.len);
            t->state = F_SEARCH;
        } else if (parse_failed(cfg, t, f)) {
            if (cfg->query_fallback) {   /* search the statement itself; the raw answer is kept */
                rp_buf_clear(&t->query);
                st = rp_buf_puts(&t->query, f->revised);
                if (st == RP_OK) st = set_str(&f->raw, txt, len);
                f->query_fallbacks++;
                t->state = F_SEARCH;
            } else {
                f->label = RP_SAFE_UNPARSED;
                st = set_str(&f->raw, txt, len);
                t->state = F_DONE;
            }
        }
        break;
    case F_RATE: {
        rp_safe_label l = rp_safe_parse_rating(txt, len);
        if (l == RP_SAFE_SUPPORTED || l == RP_SAFE_NOT_SUPPORTED) { f->label = l; t->state = F_DONE; free(f->raw); f->raw = NULL; }
        else if (parse_failed(cfg, t, f)) { f->label = RP_SAFE_UNPARSED; st = set_str(&f->raw, txt, len); t->state = F_DONE; }
        break;
    }
    default: break;
    }
    rp_buf_free(&tmp);
    return st;
}

/* A transport failure: retry the same call, or record the fact failed. */
static rp_status fact_failure(const rp_safe_config *cfg, fact_task *t, rp_safe_result *r, rp_safe_fact *f, const char *err) {
    f->failures++;
    r->failures++;
    if (++t->failures <= cfg->max_failures) return RP_OK;
    f->failed = 1;
    t->state = F_DONE;
    return set_str(&f->error, err, strlen(err));
}

/* The allowed answers of the two label steps, as their parsers accept them (for scoring backends). */
static const char *const relevance_choices[] = {"[Foo]", "[Not Foo]"};
static const char *const rating_choices[] = {"[Supported]", "[Not Supported]"};

static rp_status phase_facts(const rp_safe_config *cfg, rp_safe_llm *llm, rp_safe_search *search,
                             const rp_safe_item *items, size_t n, rp_safe_result *res) {
    size_t nt = 0;
    for (size_t i = 0; i < n; i++) nt += res[i].n_facts;
    fact_task *t = calloc(nt ? nt : 1, sizeof *t);
    rp_safe_call *calls = calloc(nt ? nt : 1, sizeof *calls);
    rp_safe_query *qs = calloc(nt ? nt : 1, sizeof *qs);
    size_t *cw = calloc(nt ? nt : 1, sizeof *cw), *qw = calloc(nt ? nt : 1, sizeof *qw);
    rp_status st = (!t || !calls || !qs || !cw || !qw) ? rp_fail(RP_ERR_NOMEM, "out of memory") : RP_OK;
    size_t k = 0;
    for (size_t i = 0; st == RP_OK && i < n; i++)
        for (size_t f = 0; st == RP_OK && f < res[i].n_facts; f++, k++) {
            t[k].item = i;
            t[k].fact = f;
            st = rp_buf_append(&t[k].knowledge, "", 0);
            if (st == RP_OK) st = go(&t[k], F_REVISE, &items[i], &res[i].facts[f]);
        }
    while (st == RP_OK) {
        if (cfg->should_stop && cfg->should_stop(cfg->stop_ud)) { st = rp_fail(RP_ERR_INTERRUPTED, "SAFE: stopped between rounds"); break; }
        size_t nc = 0, nq = 0;
        for (size_t j = 0; j < nt; j++) {
            if (t[j].state == F_DONE) continue;
            if (t[j].state == F_SEARCH) {
                rp_buf keep = qs[nq].text;
                rp_buf_clear(&keep);
                memset(&qs[nq], 0, sizeof qs[nq]);
                qs[nq].text = keep;
                qs[nq].q = t[j].query.data;
                qs[nq].k = cfg->k_results;
                qs[nq].st = RP_ERR_INTERRUPTED;
                qw[nq++] = j;
            } else {
                rp_buf keep = calls[nc].text;
                rp_buf_clear(&keep);
                memset(&calls[nc], 0, sizeof calls[nc]);
                calls[nc].text = keep;
                calls[nc].prompt = t[j].prompt.data;
                calls[nc].temperature = cfg->temp_other;
                calls[nc].max_tokens = cfg->max_tokens;
                calls[nc].attempt = t[j].attempt;
                if (t[j].state == F_RELEVANCE) { calls[nc].choices = relevance_choices; calls[nc].n_choices = 2; }
                if (t[j].state == F_RATE) { calls[nc].choices = rating_choices; calls[nc].n_choices = 2; }
                calls[nc].st = RP_ERR_INTERRUPTED;
                cw[nc++] = j;
            }
        }
        if (nc == 0 && nq == 0) break;
        if (nc) st = llm_batch(llm, calls, nc, cfg->max_batch);
        if (st == RP_OK && nq) st = search_batch(search, qs, nq, cfg->max_batch);
        if (st != RP_OK) break;
        for (size_t c = 0; st == RP_OK && c < nc; c++) {
            fact_task *x = &t[cw[c]];
            rp_safe_fact *f = &res[x->item].facts[x->fact];
            f->net_retries += calls[c].net_retries;
            res[x->item].net_retries += calls[c].net_retries;
            if (calls[c].st != RP_OK) { st = fact_failure(cfg, x, &res[x->item], f, calls[c].error); continue; }
            account(&res[x->item], &calls[c]);
            f->llm_calls++;
            st = fact_answer(cfg, x, &items[x->item], f, &calls[c]);
        }
        for (size_t q = 0; st == RP_OK && q < nq; q++) {
            fact_task *x = &t[qw[q]];
            rp_safe_fact *f = &res[x->item].facts[x->fact];
            f->net_retries += qs[q].net_retries;
            res[x->item].net_retries += qs[q].net_retries;
            if (qs[q].st != RP_OK) { st = fact_failure(cfg, x, &res[x->item], f, qs[q].error); continue; }
            res[x->item].searches++;
            res[x->item].cost += qs[q].cost;
            f->searches++;
            const char *txt = qs[q].text.data ? qs[q].text.data : "";
            st = rp_safe_strlist_push(&f->queries, x->query.data, x->query.len);
            if (st == RP_OK) st = rp_safe_strlist_push(&f->results, txt, qs[q].text.len);
            if (st == RP_OK && x->knowledge.len) st = rp_buf_append(&x->knowledge, "\n", 1);
            if (st == RP_OK) st = rp_buf_append(&x->knowledge, txt, qs[q].text.len);
            if (st != RP_OK) break;
            x->qi++;
            st = go(x, x->qi < cfg->n_queries ? F_QUERY : F_RATE, &items[x->item], f);
        }
    }
    for (size_t j = 0; t && j < nt; j++) { rp_buf_free(&t[j].prompt); rp_buf_free(&t[j].knowledge); rp_buf_free(&t[j].query); }
    if (calls) rp_safe_calls_free(calls, nt);
    if (qs) rp_safe_queries_free(qs, nt);
    free(t); free(calls); free(qs); free(cw); free(qw);
    return st;
}

rp_status rp_safe_rate(const rp_safe_config *cfg, rp_safe_llm *llm, rp_safe_search *search,
                       const rp_safe_demos *demos, const rp_safe_item *items, size_t n, rp_safe_result *res) {
    if (cfg->n_queries < 0 || cfg->k_results < 1 || cfg->max_retries < 0 || cfg->max_failures < 0 || cfg->max_tokens < 1)
        return rp_fail(RP_ERR_INVAL, "SAFE config: n_queries %d, k_results %d, max_retries %d, max_failures %d, max_tokens %d "
                       "(need n_queries >= 0, k_results >= 1, retries/failures >= 0, max_tokens >= 1)",
                       cfg->n_queries, cfg->k_results, cfg->max_retries, cfg->max_failures, cfg->max_tokens);
    rp_status st = RP_OK;
    for (size_t i = 0; st == RP_OK && i < n; i++) {
        if (!items[i].facts) continue;
        res[i].facts = calloc(items[i].n_facts ? items[i].n_facts : 1, sizeof *res[i].facts);
        if (!res[i].facts) { st = rp_fail(RP_ERR_NOMEM, "out of memory"); break; }
        for (size_t f = 0; f < items[i].n_facts; f++) {
            res[i].facts[f].sentence = SIZE_MAX;
            if (!(res[i].facts[f].atomic = dup0(items[i].facts[f] ? items[i].facts[f] : ""))) { st = rp_fail(RP_ERR_NOMEM, "out of memory"); break; }
            res[i].n_facts++;
        }
    }
    if (st == RP_OK) st = phase_split(cfg, llm, demos, items, n, res);
    if (st == RP_OK) st = phase_facts(cfg, llm, search, items, n, res);
    for (size_t i = 0; i < n; i++) {
        rp_safe_result *r = &res[i];
        r->counts = (rp_safe_counts){0, 0, 0};
        r->n_unparsed = r->n_failed = 0;
        for (size_t f = 0; f < r->n_facts; f++) {
            rp_safe_fact *x = &r->facts[f];
            if (x->failed) r->n_failed++;
            else if (x->label == RP_SAFE_SUPPORTED) r->counts.s++;
            else if (x->label == RP_SAFE_NOT_SUPPORTED) r->counts.ns++;
            else if (x->label == RP_SAFE_IRRELEVANT) r->counts.ir++;
            else r->n_unparsed++;
            r->retries += x->retries;
        }
    }
    return st;
}

void rp_safe_result_free(rp_safe_result *r) {
    rp_safe_strlist_free(&r->sentences);
    rp_safe_strlist_free(&r->split_raw_unparsed);
    for (size_t f = 0; f < r->n_facts; f++) {
        rp_safe_fact *x = &r->facts[f];
        free(x->atomic); free(x->revised); free(x->raw); free(x->error);
        rp_safe_strlist_free(&x->queries);
        rp_safe_strlist_free(&x->results);
    }
    free(r->facts);
    memset(r, 0, sizeof *r);
}
