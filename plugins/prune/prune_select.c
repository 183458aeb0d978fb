/* prune_select.c: which layers to drop. The paper's similarity rule (the block l*..l*+n-1 whose input and
 * output states are closest in angular distance), its simple heuristic (the n layers just before the last),
 * ShortGPT's lowest block influence (single layers, not necessarily contiguous), and a seeded random control.
 * Invariant: every rule writes n distinct layer indices in ascending order. */
#include "prune.h"
#include "util/rng.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

rp_status rp_prune_select_angular(const rp_prune_stats *s, int n, int *l_star, int *out) {
    int L = rp_prune_stats_states(s) - 1;
    if (n < 1 || n > L) return rp_fail(RP_ERR_INVAL, "prune: block size n = %d outside [1, %d]", n, L);
    if (rp_prune_stats_count(s) == 0) return rp_fail(RP_ERR_INVAL, "prune: no samples for the angular distance");
    int best = 0;
    double bd = INFINITY;
    for (int l = 0; l + n <= L; l++) {
        double d = rp_prune_stats_distance(s, l, n, NULL);
        if (d < bd) { bd = d; best = l; }
    }
    *l_star = best;
    for (int i = 0; i < n; i++) out[i] = best + i;
    return RP_OK;
}

rp_status rp_prune_select_heuristic(int L, int n, int *out) {
    if (L < 1 || n < 0 || n > L - 1) return rp_fail(RP_ERR_INVAL, "prune: heuristic drops n = %d of %d layers (keeps the last: n in [0, %d])", n, L, L - 1);
    for (int i = 0; i < n; i++) out[i] = L - 1 - n + i;
    return RP_OK;
}

static int cmp_int(const void *a, const void *b) { return *(const int *)a - *(const int *)b; }

rp_status rp_prune_select_influence(const rp_prune_stats *s, int n, int *out) {
    int L = rp_prune_stats_states(s) - 1;
    if (n < 0 || n > L) return rp_fail(RP_ERR_INVAL, "prune: n = %d outside [0, %d]", n, L);
    unsigned char *taken = calloc((size_t)L, 1);
    if (!taken) return rp_fail(RP_ERR_NOMEM, "prune: out of memory");
    for (int k = 0; k < n; k++) {   /* n smallest, ties to the lower index: n·L is tiny */
        int best = -1;
        double bv = INFINITY;
        for (int l = 0; l < L; l++) {
            double v = rp_prune_stats_influence(s, l);
            if (!taken[l] && (best < 0 || v < bv)) { bv = v; best = l; }
        }
        taken[best] = 1;
        out[k] = best;
    }
    free(taken);
    qsort(out, (size_t)n, sizeof *out, cmp_int);
    return RP_OK;
}

rp_status rp_prune_select_random(int L, int n, uint64_t seed, int *out) {
    if (L < 1 || n < 0 || n > L) return rp_fail(RP_ERR_INVAL, "prune: random drop of n = %d outside [0, %d]", n, L);
    int *perm = malloc((size_t)L * sizeof *perm);
    if (!perm) return rp_fail(RP_ERR_NOMEM, "prune: out of memory");
    for (int i = 0; i < L; i++) perm[i] = i;
    uint64_t x = seed;
    for (int i = 0; i < n; i++) {   /* partial Fisher-Yates */
        int j = i + (int)(rp_splitmix64(&x) % (uint64_t)(L - i));
        int t = perm[i]; perm[i] = perm[j]; perm[j] = t;
    }
    memcpy(out, perm, (size_t)n * sizeof *out);
    free(perm);
    qsort(out, (size_t)n, sizeof *out, cmp_int);
    return RP_OK;
}
