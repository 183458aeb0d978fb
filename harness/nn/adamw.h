/* adamw.h: the optimizer side of training: AdamW (Loshchilov & Hutter: Adam moments with bias correction,
 * weight decay decoupled from the gradient), learning-rate schedules (constant, linear, cosine, each with
 * linear warm-up), the global gradient norm and the clipping factor it gives, and gradient accumulation
 * (micro-batch gradients add up in the gradient buffer; the step divides by their count).
 * Invariants: rp_adamw_update reads the gradient once and never writes it (the caller zeroes it for the next
 * step; rp_adamw_update_zero zeroes it in the same pass); the work is cut into fixed slices, so the result
 * does not depend on the thread count; grad_scale folds accumulation averaging and clipping into the same pass; the moments m, v are
 * plain f32 arrays of the parameters' length that the caller plans with the parameters (and saves). */
#ifndef RP_ADAMW_H
#define RP_ADAMW_H
#include <stdint.h>
#include "tensor/pool.h"
#include "util/err.h"

typedef struct rp_adamw {
    float beta1, beta2, eps, weight_decay;   /* PyTorch's defaults: 0.9, 0.999, 1e-8, 0.01 */
} rp_adamw;

/* Validates the hyper-parameters (betas in [0, 1), eps > 0, weight decay >= 0), naming the bad field. */
rp_status rp_adamw_check(const rp_adamw *o);
/* One AdamW step t (1-based) at learning rate lr over n parameters, with g·grad_scale as the gradient:
 * m = β1·m + (1−β1)·g, v = β2·v + (1−β2)·g², p −= lr·(m̂ / (√v̂ + ε) + λ·p) with m̂ = m/(1−β1ᵗ), v̂ = v/(1−β2ᵗ).
 * decay = 0 skips weight decay for this tensor (norm gains, biases). Split over pool (NULL: one thread). */
rp_status rp_adamw_update(const rp_adamw *o, rp_pool *pool, float *p, const float *g, float *m, float *v, int64_t n,
                          int64_t t, float lr, float grad_scale, int decay);
/* rp_adamw_update, then g = 0, in the same pass over memory (what a training step wants: no separate memset). */
rp_status rp_adamw_update_zero(const rp_adamw *o, rp_pool *pool, float *p, float *g, float *m, float *v, int64_t n,
                               int64_t t, float lr, float grad_scale, int decay);

typedef enum rp_lr_kind { RP_LR_CONSTANT, RP_LR_LINEAR, RP_LR_COSINE } rp_lr_kind;
typedef struct rp_lr_schedule {
    rp_lr_kind kind;
    float lr, lr_min;          /* peak and final learning rate */
    int64_t warmup, total;     /* steps of linear warm-up from lr/warmup to lr; steps in all */
} rp_lr_schedule;

/* Validates a schedule (lr > 0, 0 <= lr_min <= lr, 0 <= warmup <= total, total >= 1). */
rp_status rp_lr_check(const rp_lr_schedule *s);
/* Learning rate of step `step` (0-based): warm-up lr·(step+1)/warmup, then constant, linear or cosine decay
 * from lr to lr_min over the remaining steps; steps past total stay at lr_min (constant: lr). */
float rp_lr_at(const rp_lr_schedule *s, int64_t step);
/* Parse a schedule kind ("constant", "linear", "cosine"); RP_ERR_INVAL naming the value otherwise. */
rp_status rp_lr_kind_parse(const char *name, rp_lr_kind *out);

/* Σ g² over n values in double, to be summed over tensors and square-rooted: the global norm. */
double rp_grad_sumsq(const float *g, int64_t n);
/* Σ g² split over pool (NULL: one thread) in fixed chunks added in order: the same value on any thread count. */
double rp_grad_sumsq_pool(rp_pool *pool, const float *g, int64_t n);
/* The factor that brings a gradient of global norm `norm` down to max_norm (1 when it is already within, or
 * when max_norm <= 0 means no clipping). */
float rp_grad_clip_scale(double norm, float max_norm);

#endif
