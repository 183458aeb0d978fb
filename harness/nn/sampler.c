/* sampler.c: greedy / temperature / top-p sampling with a xorshift64* generator seeded by splitmix64.
 * Top-p keeps the smallest set of most probable tokens whose mass reaches p (candidates below
 * (1-p)/(n-1) cannot belong to it and are dropped before sorting, as llama2.c does). */
#include "nn/sampler.h"
#include <math.h>
#include <stdlib.h>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

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

/* First index of the maximum (NaNs after x[0] are skipped; a NaN x[0] gives 0): the plain loop's answer. */
static int argmax_plain(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++) if (x[i] > x[best]) best = i;
    return best;
}

/* First index of the maximum: the plain loop's answer, found in two vector passes (the largest non-NaN
 * value, then the first element equal to it: the plain loop stops moving exactly there). */
int rp_argmax(const float *x, int n) {
#if defined(__AVX512F__)
    if (n >= 64 && x[0] == x[0]) {
        __m512 m = _mm512_set1_ps(x[0]);
        int i = 0;
        for (; i + 16 <= n; i += 16) m = _mm512_max_ps(_mm512_loadu_ps(x + i), m);   /* a NaN lane keeps m's */
        float mx = _mm512_reduce_max_ps(m);
        for (; i < n; i++) mx = x[i] > mx ? x[i] : mx;
        __m512 vm = _mm512_set1_ps(mx);
        for (i = 0; i + 16 <= n; i += 16) {
            __mmask16 k = _mm512_cmp_ps_mask(_mm512_loadu_ps(x + i), vm, _CMP_EQ_OQ);
            if (k) return i + __builtin_ctz(k);
        }
        for (; i < n; i++) if (x[i] == mx) return i;
    }
#endif
    return argmax_plain(x, n);
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
