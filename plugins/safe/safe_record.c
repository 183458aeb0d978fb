/* safe_record.c: the per-response JSON record of a SAFE rating (what the registry stores with
 * rp_db_record): the question and response, counts, calls, re-asks (retries) and HTTP-level retries
 * (net_retries), tokens, cost, F1@64/F1@178, every sentence and,
 * per fact, its text, revision, relevance, queries, search results, verdict and any raw or error text. */
#include "plugins/safe/safe.h"
#include "util/json.h"
#include <math.h>
#include <stdint.h>
#include <string.h>

static rp_status q(rp_buf *o, const char *s) { return rp_json_quote(o, s ? s : "", s ? strlen(s) : 0); }

static rp_status list(rp_buf *o, const rp_safe_strlist *l) {
    RP_TRY(rp_buf_puts(o, "["));
    for (size_t i = 0; i < l->n; i++) {
        if (i) RP_TRY(rp_buf_puts(o, ","));
        RP_TRY(q(o, l->items[i]));
    }
    return rp_buf_puts(o, "]");
}

static rp_status num(rp_buf *o, const char *key, double v) {
    if (!isfinite(v)) return rp_buf_printf(o, ",\"%s\":null", key);
    return rp_buf_printf(o, ",\"%s\":%.17g", key, v);
}

rp_status rp_safe_result_json(const rp_safe_result *r, const rp_safe_item *item, rp_buf *o) {
    rp_buf_clear(o);
    RP_TRY(rp_buf_puts(o, "{\"question\":"));
    RP_TRY(q(o, item ? item->question : NULL));
    RP_TRY(rp_buf_puts(o, ",\"response\":"));
    RP_TRY(q(o, item ? item->response : NULL));
    RP_TRY(rp_buf_printf(o, ",\"supported\":%ld,\"not_supported\":%ld,\"irrelevant\":%ld,\"unparsed\":%ld,\"failed\":%ld,"
                            "\"facts_total\":%zu,\"llm_calls\":%ld,\"searches\":%ld,\"retries\":%ld,\"net_retries\":%ld,"
                            "\"transport_failures\":%ld,\"cached_calls\":%ld,\"prompt_tokens\":%ld,\"completion_tokens\":%ld",
                         r->counts.s, r->counts.ns, r->counts.ir, r->n_unparsed, r->n_failed, r->n_facts, r->llm_calls,
                         r->searches, r->retries, r->net_retries, r->failures, r->cached_calls, r->prompt_tokens,
                         r->completion_tokens));
    RP_TRY(num(o, "cost", r->cost));
    RP_TRY(num(o, "precision", rp_safe_precision(r->counts.s, r->counts.ns)));
    RP_TRY(num(o, "f1_64", rp_safe_f1k(r->counts.s, r->counts.ns, 64)));
    RP_TRY(num(o, "f1_178", rp_safe_f1k(r->counts.s, r->counts.ns, 178)));
    RP_TRY(rp_buf_puts(o, ",\"sentences\":"));
    RP_TRY(list(o, &r->sentences));
    RP_TRY(rp_buf_puts(o, ",\"split_unparsed\":"));
    RP_TRY(list(o, &r->split_raw_unparsed));
    RP_TRY(rp_buf_puts(o, ",\"facts\":["));
    for (size_t i = 0; i < r->n_facts; i++) {
        const rp_safe_fact *f = &r->facts[i];
        if (i) RP_TRY(rp_buf_puts(o, ","));
        if (f->sentence == SIZE_MAX) RP_TRY(rp_buf_puts(o, "{\"sentence\":null"));
        else RP_TRY(rp_buf_printf(o, "{\"sentence\":%zu", f->sentence));
        RP_TRY(rp_buf_puts(o, ",\"atomic\":"));
        RP_TRY(q(o, f->atomic));
        RP_TRY(rp_buf_puts(o, ",\"revised\":"));
        RP_TRY(q(o, f->revised));
        RP_TRY(rp_buf_printf(o, ",\"revise_parsed\":%s,\"relevance_parsed\":%s,\"label\":\"%s\",\"failed\":%s,"
                                "\"query_fallbacks\":%d,\"llm_calls\":%ld,\"searches\":%ld,\"retries\":%ld,\"net_retries\":%ld,"
                                "\"transport_failures\":%ld,\"queries\":",
                             f->revise_parsed ? "true" : "false", f->relevance_parsed ? "true" : "false",
                             f->failed ? "failed" : rp_safe_label_name(f->label), f->failed ? "true" : "false",
                             f->query_fallbacks, f->llm_calls, f->searches, f->retries, f->net_retries, f->failures));
        RP_TRY(list(o, &f->queries));
        RP_TRY(rp_buf_puts(o, ",\"results\":"));
        RP_TRY(list(o, &f->results));
        if (f->raw) { RP_TRY(rp_buf_puts(o, ",\"raw\":")); RP_TRY(q(o, f->raw)); }
        if (f->error) { RP_TRY(rp_buf_puts(o, ",\"error\":")); RP_TRY(q(o, f->error)); }
        RP_TRY(rp_buf_puts(o, "}"));
    }
    return rp_buf_puts(o, "]}");
}
