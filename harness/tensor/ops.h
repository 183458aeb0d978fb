/* ops.h: tensor-level entry points: check shapes, dtypes, contiguity and backends of the views, then
 * dispatch through the op table of the tensors' backend (backend.h). Hot loops that already hold
 * validated buffers may call RP_BACKEND_CALL directly.
 * Invariant: every tensor passed to one call lives on the same backend; a mismatch is RP_ERR_INVAL. */
#ifndef RP_OPS_H
#define RP_OPS_H
#include "tensor/tensor.h"
#include "tensor/backend.h"

/* y[M,N] = x[M,K] · w[N,K]ᵀ (w any dequantizable dtype, y and x f32 contiguous). */
rp_status rp_op_matmul(rp_tensor *y, const rp_tensor *x, const rp_tensor *w);
/* out[T,C] = rows ids[0..T) of table[V,C]. */
rp_status rp_op_embed(rp_tensor *out, const rp_tensor *table, const int32_t *ids, int64_t T);
/* RMSNorm of the rows of x[T,C] scaled by w[C] (may be NULL). */
rp_status rp_op_rmsnorm(rp_tensor *out, const rp_tensor *x, const rp_tensor *w, float eps);
/* Softmax of each row of x in place. */
rp_status rp_op_softmax(rp_tensor *x);

#endif
