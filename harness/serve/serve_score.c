/* serve_score.c: log-probabilities of tokens for `repro serve` (serve_score.h): a piece of a prompt (at most
 * RP_SERVE_SCORE_ROWS positions) is run with every position's logits, each row scored against the next token. */
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

/* Score the prompt's next piece teacher-forced, continuing the cache. */
rp_status rp_serve_score_piece(rp_session *s, const int32_t *toks, size_t n, size_t from, size_t T, int n_top,
                               rp_serve_tokenlp *out) {
    if ((int64_t)from != rp_session_n_past(s) || T == 0 || T > RP_SERVE_SCORE_ROWS || from + T + 1 > n)
        return rp_fail(RP_ERR_INVAL, "serve: scoring piece [%zu, %zu) of a %zu-token prompt with %lld positions cached",
                       from, from + T, n, (long long)rp_session_n_past(s));
    const int V = rp_model_config(rp_session_model(s))->vocab;
    float *logits = malloc(T * (size_t)V * sizeof *logits);
    if (!logits) return rp_fail(RP_ERR_NOMEM, "serve: out of memory for %zu rows of logits", T);
    rp_status st = rp_session_forward(s, toks + from, (int64_t)T, RP_LOGITS_ALL, logits, NULL);
    for (size_t t = 0; st == RP_OK && t < T; t++)
        rp_serve_score_row(logits + t * (size_t)V, V, toks[from + t + 1], n_top, &out[from + t]);
    free(logits);
    return st;
}
