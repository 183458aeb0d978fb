/* serve_score.h: token log-probabilities for `repro serve`: one row of logits scored (log-softmax of the
 * chosen token and the top-N alternatives), and a prompt's own tokens scored teacher-forced on a session.
 * Invariants: scores are log-softmax values of the model's logits (no temperature); alternatives are sorted
 * most likely first, ties in vocabulary order. Runs on the engine's scheduler thread only (serve_job.h). */
#ifndef RP_SERVE_SCORE_H
#define RP_SERVE_SCORE_H
#include <stddef.h>
#include <stdint.h>
#include "nn/llama.h"
#include "serve/serve_job.h"

enum { RP_SERVE_SCORE_ROWS = 64 };   /* positions per all-logits forward: a scoring session's n_logits */

/* Score target in row[V] with its n_top (<= RP_SERVE_TOP_MAX) most likely alternatives into t. */
void rp_serve_score_row(const float *row, int V, int32_t target, int n_top, rp_serve_tokenlp *t);
/* Score toks[from+1 .. from+T] after their prefixes (out[i - 1] for token i) with n_top alternatives, on a
 * session whose cache holds exactly toks[0 .. from); 1 <= T <= RP_SERVE_SCORE_ROWS and from + T < n. A
 * prompt scored piece by piece from 0 in pieces of RP_SERVE_SCORE_ROWS leaves toks[0 .. n-1) in the cache
 * (the last token not run, so generation can go on from it); the engine interleaves the pieces with other
 * slots' decoding steps. */
rp_status rp_serve_score_piece(rp_session *s, const int32_t *toks, size_t n, size_t from, size_t T, int n_top,
                               rp_serve_tokenlp *out);

#endif
