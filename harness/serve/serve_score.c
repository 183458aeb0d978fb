/* serve_score.c: log-probabilities of tokens for `repro serve` (serve_score.h): a prompt is run in pieces of
 * the session's n_logits positions with every position's logits, each row scored against the next token. */
#include "serve/serve_score.h"
#include <math.h>
#include <stdlib.h>

/* Log-softmax of row[target] and the top n alternatives into t. */
void rp_serve_score_row(const float *row, int V, int32_t target, int n_top, rp_serve_tokenlp *t) {
    float mx = row[0];
    for (int v = 1; v < V; v++) if (row[v] > mx) mx = row[v];
    double sum = 0;
    for (int v = 0; v < V; v++) sum += exp((double)(row[v] - mx));
    float lse = mx + (float)log(sum);
    if (n_top > RP_SERVE_TOP_MAX) n_top = RP_SERVE_TOP_MAX;
    t->id = target;
    t->lp = row[target] - lse;
    t->n_top = 0;
    for (int v = 0; v < V && n_top > 0; v++) {           /* insertion into the sorted top list */
        float x = row[v];
        if (t->n_top == n_top && x <= row[t->top_id[n_top - 1]]) continue;
        int k = t->n_top < n_top ? t->n_top++ : n_top - 1;
        while (k > 0 && row[t->top_id[k - 1]] < x) { t->top_id[k] = t->top_id[k - 1]; k--; }
        t->top_id[k] = v;
    }
    for (int k = 0; k < t->n_top; k++) t->top_lp[k] = row[t->top_id[k]] - lse;
}

/* Score a prompt teacher-forced from an empty cache. */
rp_status rp_serve_score_prompt(rp_session *s, const int32_t *toks, size_t n, int n_top, rp_serve_tokenlp *out) {
    rp_session_reset(s);
    const int V = rp_model_config(rp_session_model(s))->vocab;
    const size_t chunk = RP_SERVE_SCORE_ROWS;
    float *logits = malloc(chunk * (size_t)V * sizeof *logits);
    if (!logits) return rp_fail(RP_ERR_NOMEM, "serve: out of memory for %zu rows of logits", chunk);
    rp_status st = RP_OK;
    for (size_t i = 0; st == RP_OK && i + 1 < n;) {
        size_t T = n - 1 - i < chunk ? n - 1 - i : chunk;
        st = rp_session_forward(s, toks + i, (int64_t)T, RP_LOGITS_ALL, logits, NULL);
        for (size_t t = 0; st == RP_OK && t < T; t++)
            rp_serve_score_row(logits + t * (size_t)V, V, toks[i + t + 1], n_top, &out[i + t]);
        i += T;
    }
    free(logits);
    return st;
}
