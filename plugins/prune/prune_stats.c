/* prune_stats.c: angular distances d(l, n) between residual-stream states, averaged over samples with their
 * standard error, and ShortGPT's block influence, accumulated one sample at a time. Per sample the S norms
 * are computed once and each of the S(S-1)/2 pairs costs one dot product over C (double accumulation),
 * so a sample costs about S²C/2 multiply-adds: nothing next to the forward pass that produced it.
 * Invariants: sum[i·S + j] and sq[i·S + j] (i < j) hold the sums of d(i, j-i) and its square over count
 * samples; bi_sum[l] sums cos(x^(l), x^(l+1)) over bi_count tokens. */
#include "prune.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

struct rp_prune_stats {
    int S, C;
    int64_t count, bi_count;
    double *sum, *sq;       /* [S, S], upper triangle used */
    double *bi_sum;         /* [S - 1] */
    double *norm;           /* [S] scratch */
};

rp_status rp_prune_stats_new(int S, int C, rp_prune_stats **out) {
    *out = NULL;
    if (S < 2 || S > 4096 || C < 1) return rp_fail(RP_ERR_INVAL, "prune stats: %d states of %d dimensions (need at least 2 states, 1 dimension)", S, C);
    rp_prune_stats *s = calloc(1, sizeof *s);
    if (!s) return rp_fail(RP_ERR_NOMEM, "prune stats: out of memory");
    s->S = S; s->C = C;
    s->sum = calloc((size_t)S * S, sizeof *s->sum);
    s->sq = calloc((size_t)S * S, sizeof *s->sq);
    s->bi_sum = calloc((size_t)S, sizeof *s->bi_sum);
    s->norm = calloc((size_t)S, sizeof *s->norm);
    if (!s->sum || !s->sq || !s->bi_sum || !s->norm) { rp_prune_stats_free(s); return rp_fail(RP_ERR_NOMEM, "prune stats: out of memory"); }
    *out = s;
    return RP_OK;
}

void rp_prune_stats_free(rp_prune_stats *s) {
    if (!s) return;
    free(s->sum); free(s->sq); free(s->bi_sum); free(s->norm);
    free(s);
}

static double dot(const float *a, const float *b, int64_t C) {
    double acc = 0;
    for (int64_t c = 0; c < C; c++) acc += (double)a[c] * b[c];
    return acc;
}

/* cos from a dot product and two norms, clamped to [-1, 1] (0 when a norm is 0). */
static double cosine(double ab, double na, double nb) {
    if (na <= 0 || nb <= 0) return 0;
    double c = ab / (na * nb);
    return c > 1 ? 1 : c < -1 ? -1 : c;
}

double rp_prune_angular(const float *a, const float *b, int64_t C) {
    double na = sqrt(dot(a, a, C)), nb = sqrt(dot(b, b, C));
    if (na <= 0 || nb <= 0) return 0;
    return acos(cosine(dot(a, b, C), na, nb)) / M_PI;
}

/* Add the pairwise distances of one token's states (x^(l) at h + l·stride). */
static void add_token(rp_prune_stats *s, const float *h, int64_t stride) {
    const int S = s->S, C = s->C;
    for (int l = 0; l < S; l++) s->norm[l] = sqrt(dot(h + l * stride, h + l * stride, C));
    for (int i = 0; i < S - 1; i++)
        for (int j = i + 1; j < S; j++) {
            double d = acos(cosine(dot(h + i * stride, h + j * stride, C), s->norm[i], s->norm[j])) / M_PI;
            s->sum[i * S + j] += d;
            s->sq[i * S + j] += d * d;
        }
    s->count++;
}

rp_status rp_prune_stats_add(rp_prune_stats *s, const float *h, int64_t T, int all_tokens) {
    if (T < 1) return rp_fail(RP_ERR_INVAL, "prune stats: a sample of %lld tokens", (long long)T);
    const int S = s->S;
    const int64_t C = s->C, stride = T * C;   /* h: [S, T, C] */
    if (all_tokens) for (int64_t t = 0; t < T; t++) add_token(s, h + t * C, stride);
    else add_token(s, h + (T - 1) * C, stride);
    for (int64_t t = 0; t < T; t++) {
        const float *x = h + t * C;
        double na = sqrt(dot(x, x, C));
        for (int l = 0; l < S - 1; l++) {
            const float *y = x + (l + 1) * stride;
            double nb = sqrt(dot(y, y, C));
            s->bi_sum[l] += cosine(dot(x + l * stride, y, C), na, nb);
            na = nb;
        }
        s->bi_count++;
    }
    return RP_OK;
}

int64_t rp_prune_stats_count(const rp_prune_stats *s) { return s->count; }
int rp_prune_stats_states(const rp_prune_stats *s) { return s->S; }
int rp_prune_stats_dim(const rp_prune_stats *s) { return s->C; }

double rp_prune_stats_distance(const rp_prune_stats *s, int l, int n, double *se) {
    if (se) *se = 0;
    if (l < 0 || n < 1 || l + n >= s->S || s->count == 0) return NAN;
    double k = (double)s->count, mean = s->sum[l * s->S + l + n] / k;
    if (se && s->count > 1) {
        double var = (s->sq[l * s->S + l + n] - k * mean * mean) / (k - 1);
        *se = var > 0 ? sqrt(var / k) : 0;
    }
    return mean;
}

double rp_prune_stats_influence(const rp_prune_stats *s, int l) {
    if (l < 0 || l >= s->S - 1 || s->bi_count == 0) return NAN;
    return 1.0 - s->bi_sum[l] / (double)s->bi_count;
}
