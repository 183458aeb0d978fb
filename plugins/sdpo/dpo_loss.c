/* dpo_loss.c: the DPO objective of Rafailov et al. as sDPO writes it (Eq. 1): per pair
 *   z = β(γ_θ − γ_ref),  γ = log π(y_w|x) − log π(y_l|x),  loss = −log σ(z) = softplus(−z),
 * averaged over the pairs, with TRL's implicit rewards r = β(log π_θ − log π_ref) per response, reward accuracy
 * (share of r_w > r_l) and margin (r_w − r_l). Invariant: when policy equals reference every z is 0 and the
 * loss is exactly ln 2; the gradient is ∂loss/∂log π_θ(y_w) = −β σ(−z)/P = −∂loss/∂log π_θ(y_l). */
#include <math.h>
#include "plugins/sdpo/sdpo.h"

/* log(1 + e^{−z}) without overflow: for z < 0 it is −z + log(1 + e^{z}). */
double rp_dpo_softplus_neg(double z) {
    return z >= 0 ? log1p(exp(-z)) : -z + log1p(exp(z));
}

/* σ(−z) = 1 / (1 + e^{z}), stable for both signs. */
static double sigmoid_neg(double z) {
    if (z >= 0) { double e = exp(-z); return e / (1.0 + e); }
    return 1.0 / (1.0 + exp(z));
}

/* The mean DPO loss of P pairs, its statistics and its gradient by the policy's log-probabilities. */
rp_status rp_dpo_loss(const double *logp, const double *ref_logp, int P, double beta, rp_dpo_stats *st, double *dlogp) {
    if (P < 1) return rp_fail(RP_ERR_INVAL, "dpo loss: need at least one pair (got %d)", P);
    if (!(beta > 0) || !isfinite(beta)) return rp_fail(RP_ERR_INVAL, "dpo loss: beta must be a positive number (got %g)", beta);
    for (int i = 0; i < 2 * P; i++) {
        if (!isfinite(logp[i])) return rp_fail(RP_ERR_INVAL, "dpo loss: policy log-probability %d is %g", i + 1, logp[i]);
        if (!isfinite(ref_logp[i])) return rp_fail(RP_ERR_INVAL, "dpo loss: reference log-probability %d is %g", i + 1, ref_logp[i]);
    }
    rp_dpo_stats s = { 0 };
    for (int i = 0; i < P; i++) {
        double lw = logp[2 * i], ll = logp[2 * i + 1], rw = ref_logp[2 * i], rl = ref_logp[2 * i + 1];
        double r_w = beta * (lw - rw), r_l = beta * (ll - rl);
        double z = r_w - r_l;   /* = β(γ_θ − γ_ref) */
        s.loss += rp_dpo_softplus_neg(z);
        s.reward_chosen += r_w;
        s.reward_rejected += r_l;
        s.accuracy += r_w > r_l ? 1.0 : 0.0;
        s.margin += z;
        s.gamma_policy += lw - ll;
        s.gamma_ref += rw - rl;
        if (dlogp) {
            double g = beta * sigmoid_neg(z) / P;
            dlogp[2 * i] = -g;
            dlogp[2 * i + 1] = g;
        }
    }
    s.loss /= P; s.reward_chosen /= P; s.reward_rejected /= P; s.accuracy /= P; s.margin /= P;
    s.gamma_policy /= P; s.gamma_ref /= P;
    if (st) *st = s;
    return RP_OK;
}
