/* sampler.c: greedy / temperature / top-p sampling with a xorshift64* generator seeded by splitmix64.
 * Top-p keeps the smallest set of most probable tokens whose mass reaches p (candidates below
 * (1-p)/(n-1) cannot belong to it and are dropped before sorting, as llama2.c does). */
#include "nn/sampler.h"
#include <math.h>
#include <stdlib.h>

typedef struct cand { float p; int id; } cand;

struct rp_sampler {
    int n;
    float temperature, top_p;
    uint64_t state;
    cand *c;       /* [n] */
};

/* Sampler with its scratch. */
rp_status rp_sampler_new(int n_vocab, float temperature, float top_p, uint64_t seed, rp_sampler **out) {
    if (n_vocab <= 0) return rp_fail(RP_ERR_INVAL, "sampler: vocabulary of %d", n_vocab);
    rp_sampler *s = calloc(1, sizeof *s);
    if (!s || !(s->c = malloc((size_t)n_vocab * sizeof *s->c))) { free(s); return rp_fail(RP_ERR_NOMEM, "sampler: out of memory"); }
    s->n = n_vocab;
    s->temperature = temperature;
    s->top_p = top_p;
    uint64_t z = seed + 0x9e3779b97f4a7c15ull;   /* splitmix64: any seed, 0 included, gives a good state */
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    s->state = (z ^ (z >> 31)) | 1;
    *out = s;
    return RP_OK;
}

/* Free. */
void rp_sampler_free(rp_sampler *s) {
    if (!s) return;
    free(s->c);
    free(s);
}

/* Uniform in [0, 1). */
static float next_uniform(rp_sampler *s) {
    s->state ^= s->state >> 12;
    s->state ^= s->state << 25;
    s->state ^= s->state >> 27;
    return (float)((s->state * 0x2545f4914f6cdd1dull) >> 40) / 16777216.0f;
}

/* First index of the maximum. */
int rp_argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++) if (x[i] > x[best]) best = i;
    return best;
}

static int by_prob_desc(const void *a, const void *b) {
    float pa = ((const cand *)a)->p, pb = ((const cand *)b)->p;
    return pa < pb ? 1 : pa > pb ? -1 : ((const cand *)a)->id - ((const cand *)b)->id;
}

/* Sample one token. */
int rp_sampler_sample(rp_sampler *s, const float *logits) {
    if (s->temperature <= 0) return rp_argmax(logits, s->n);
    float mx = logits[rp_argmax(logits, s->n)];
    double sum = 0;
    for (int i = 0; i < s->n; i++) {
        s->c[i].p = expf((logits[i] - mx) / s->temperature);
        s->c[i].id = i;
        sum += s->c[i].p;
    }
    float r = next_uniform(s);
    if (s->top_p <= 0 || s->top_p >= 1) {
        double acc = 0, target = r * sum;
        for (int i = 0; i < s->n; i++) { acc += s->c[i].p; if (acc > target) return i; }
        return s->n - 1;
    }
    float cut = (float)((1.0 - s->top_p) / (s->n - 1) * sum);
    int k = 0;
    for (int i = 0; i < s->n; i++) if (s->c[i].p >= cut) s->c[k++] = s->c[i];
    qsort(s->c, (size_t)k, sizeof *s->c, by_prob_desc);
    double acc = 0, limit = s->top_p * sum;
    int last = k - 1;
    for (int i = 0; i < k; i++) { acc += s->c[i].p; if (acc >= limit) { last = i; break; } }
    double target = r * acc, run = 0;
    for (int i = 0; i <= last; i++) { run += s->c[i].p; if (run > target) return s->c[i].id; }
    return s->c[last].id;
}
