/* safe_f1k.c: F1@K of Wei et al. 2024 (Eq. 1): precision S/(S+NS), recall min(S/K, 1), their harmonic mean
 * when S > 0 and 0 otherwise; computed per response, then averaged (never a ratio of means).
 * Irrelevant facts never enter the score. */
#include "plugins/safe/safe_text.h"
#include <math.h>

double rp_safe_precision(long s, long ns) {
    if (s < 0 || ns < 0 || s + ns == 0) return NAN;
    return (double)s / (double)(s + ns);
}

double rp_safe_recall_k(long s, long k) {
    if (k < 1 || s < 0) return NAN;
    return s >= k ? 1.0 : (double)s / (double)k;
}

double rp_safe_f1k(long s, long ns, long k) {
    if (k < 1 || s < 0 || ns < 0) return NAN;
    if (s == 0) return 0.0;
    double p = rp_safe_precision(s, ns), r = rp_safe_recall_k(s, k);
    return 2.0 * p * r / (p + r);
}

rp_status rp_safe_summarize(const rp_safe_counts *c, size_t n, long k, rp_safe_summary *out) {
    *out = (rp_safe_summary){ .n = n, .s = NAN, .ns = NAN, .ir = NAN, .prec = NAN, .recall = NAN, .f1 = NAN };
    if (k < 1) return rp_fail(RP_ERR_INVAL, "F1@K: K must be >= 1, got %ld", k);
    if (n == 0) return RP_OK;
    double s = 0, ns = 0, ir = 0, prec = 0, rec = 0, f1 = 0;
    size_t np = 0;
    for (size_t i = 0; i < n; i++) {
        if (c[i].s < 0 || c[i].ns < 0 || c[i].ir < 0)
            return rp_fail(RP_ERR_INVAL, "F1@K: response %zu has negative counts (S %ld, NS %ld, I %ld)",
                           i, c[i].s, c[i].ns, c[i].ir);
        s += (double)c[i].s; ns += (double)c[i].ns; ir += (double)c[i].ir;
        if (c[i].s + c[i].ns > 0) { prec += rp_safe_precision(c[i].s, c[i].ns); np++; }
        rec += rp_safe_recall_k(c[i].s, k);
        f1 += rp_safe_f1k(c[i].s, c[i].ns, k);
    }
    double dn = (double)n;
    out->s = s / dn; out->ns = ns / dn; out->ir = ir / dn;
    out->n_prec = np;
    out->prec = np ? prec / (double)np : NAN;
    out->recall = rec / dn;
    out->f1 = f1 / dn;
    return RP_OK;
}
