/* ops.c: shape and backend checks in front of the op table (ops.h). */
#include "tensor/ops.h"

static rp_status check_f32(const rp_tensor *t, const char *op, const char *arg, int ndim) {
    if (t->dtype != RP_F32) return rp_fail(RP_ERR_INVAL, "%s: %s has dtype %s, f32 expected", op, arg, rp_dtype_name(t->dtype));
    if (t->ndim != ndim) return rp_fail(RP_ERR_INVAL, "%s: %s has %d dimensions, %d expected", op, arg, t->ndim, ndim);
    if (!rp_tensor_is_contiguous(t)) return rp_fail(RP_ERR_INVAL, "%s: %s is not contiguous", op, arg);
    return RP_OK;
}

static rp_status same_backend(const rp_tensor *a, const rp_tensor *b, const char *op) {
    if (a->storage->backend != b->storage->backend)
        return rp_fail(RP_ERR_INVAL, "%s: operands on backends %s and %s", op, a->storage->backend->name, b->storage->backend->name);
    return RP_OK;
}

/* Checked matmul. */
rp_status rp_op_matmul(rp_tensor *y, const rp_tensor *x, const rp_tensor *w) {
    RP_TRY(check_f32(y, "matmul", "y", 2));
    RP_TRY(check_f32(x, "matmul", "x", 2));
    if (w->ndim != 2) return rp_fail(RP_ERR_INVAL, "matmul: w has %d dimensions, 2 expected", w->ndim);
    if (w->shape[1] != x->shape[1] || y->shape[0] != x->shape[0] || y->shape[1] != w->shape[0])
        return rp_fail(RP_ERR_INVAL, "matmul: shapes y[%lld,%lld] x[%lld,%lld] w[%lld,%lld] do not match",
                       (long long)y->shape[0], (long long)y->shape[1], (long long)x->shape[0], (long long)x->shape[1],
                       (long long)w->shape[0], (long long)w->shape[1]);
    RP_TRY(same_backend(y, x, "matmul"));
    RP_TRY(same_backend(y, w, "matmul"));
    rp_backend *be = y->storage->backend;
    return RP_BACKEND_CALL(be, matmul, rp_tensor_data(y), rp_tensor_data(x), x->shape[0], x->shape[1], rp_tensor_data(w),
                           w->dtype, (size_t)w->stride[0], w->shape[0]);
}

/* Checked embedding lookup. */
rp_status rp_op_embed(rp_tensor *out, const rp_tensor *table, const int32_t *ids, int64_t T) {
    RP_TRY(check_f32(out, "embed", "out", 2));
    if (table->ndim != 2 || table->shape[1] != out->shape[1] || out->shape[0] != T)
        return rp_fail(RP_ERR_INVAL, "embed: table/out shapes do not match %lld tokens", (long long)T);
    RP_TRY(same_backend(out, table, "embed"));
    rp_backend *be = out->storage->backend;
    return RP_BACKEND_CALL(be, embed, rp_tensor_data(out), rp_tensor_data(table), table->dtype, (size_t)table->stride[0],
                           table->shape[0], table->shape[1], ids, T);
}

/* Checked RMSNorm. */
rp_status rp_op_rmsnorm(rp_tensor *out, const rp_tensor *x, const rp_tensor *w, float eps) {
    RP_TRY(check_f32(out, "rmsnorm", "out", 2));
    RP_TRY(check_f32(x, "rmsnorm", "x", 2));
    if (out->shape[0] != x->shape[0] || out->shape[1] != x->shape[1]) return rp_fail(RP_ERR_INVAL, "rmsnorm: out and x shapes differ");
    if (w) {
        RP_TRY(check_f32(w, "rmsnorm", "w", 1));
        if (w->shape[0] != x->shape[1]) return rp_fail(RP_ERR_INVAL, "rmsnorm: w has %lld elements, %lld expected", (long long)w->shape[0], (long long)x->shape[1]);
    }
    rp_backend *be = out->storage->backend;
    return RP_BACKEND_CALL(be, rmsnorm, rp_tensor_data(out), rp_tensor_data(x), w ? rp_tensor_data(w) : NULL, x->shape[0],
                           x->shape[1], eps);
}

/* Checked in-place softmax. */
rp_status rp_op_softmax(rp_tensor *x) {
    if (x->dtype != RP_F32 || !rp_tensor_is_contiguous(x)) return rp_fail(RP_ERR_INVAL, "softmax: x must be contiguous f32");
    int64_t n = x->shape[x->ndim - 1];
    rp_backend *be = x->storage->backend;
    return RP_BACKEND_CALL(be, softmax, rp_tensor_data(x), rp_tensor_numel(x) / (n ? n : 1), n);
}
