/* tensor.c: refcounted storage and tensor views (tensor.h). All size arithmetic is overflow-checked. */
#include "tensor/tensor.h"
#include <stdlib.h>
#include "tensor/backend.h"

/* New zero-filled storage owned by be. */
rp_status rp_storage_new(rp_backend *be, size_t nbytes, rp_storage **out) {
    if (!be) be = rp_backend_default();
    rp_storage *s = calloc(1, sizeof *s);
    if (!s) return rp_fail(RP_ERR_NOMEM, "storage: out of memory");
    s->data = be->ops->alloc ? be->ops->alloc(be, nbytes) : NULL;
    if (!s->data) { free(s); return rp_fail(RP_ERR_NOMEM, "storage: cannot allocate %zu bytes on backend %s", nbytes, be->name); }
    s->refcount = 1;
    s->backend = be;
    s->nbytes = nbytes;
    s->owned = 1;
    s->free_fn = be->ops->free;
    *out = s;
    return RP_OK;
}

/* Storage over bytes owned elsewhere. */
rp_status rp_storage_wrap(rp_backend *be, void *data, size_t nbytes, rp_storage **out) {
    if (!be) be = rp_backend_default();
    if (!be->ops->host_memory)
        return rp_fail(RP_ERR_UNSUPPORTED, "storage: backend %s cannot wrap host memory (allocate and copy in)", be->name);
    rp_storage *s = calloc(1, sizeof *s);
    if (!s) return rp_fail(RP_ERR_NOMEM, "storage: out of memory");
    s->refcount = 1;
    s->backend = be;
    s->data = data;
    s->nbytes = nbytes;
    *out = s;
    return RP_OK;
}

/* One more reference. */
void rp_storage_retain(rp_storage *s) { if (s) s->refcount++; }

/* One reference less; frees at zero. */
void rp_storage_release(rp_storage *s) {
    if (!s || --s->refcount > 0) return;
    if (s->owned && s->free_fn) s->free_fn(s->backend, s->data);
    free(s);
}

/* Contiguous strides and the byte size of the tensor; RP_ERR_RANGE on overflow or bad shape. */
static rp_status layout(rp_tensor *t, rp_dtype dt, int ndim, const int64_t *shape, size_t *nbytes) {
    if (ndim < 1 || ndim > RP_MAX_DIMS) return rp_fail(RP_ERR_INVAL, "tensor: %d dimensions (1..%d allowed)", ndim, RP_MAX_DIMS);
    if (!rp_dtype_valid((int)dt)) return rp_fail(RP_ERR_INVAL, "tensor: unknown dtype %d", (int)dt);
    for (int i = 0; i < ndim; i++)
        if (shape[i] < 0) return rp_fail(RP_ERR_INVAL, "tensor: negative dimension %d = %lld", i, (long long)shape[i]);
    size_t row = rp_dtype_row_bytes(dt, shape[ndim - 1]);
    if (row == 0 && shape[ndim - 1] != 0)
        return rp_fail(RP_ERR_INVAL, "tensor: innermost size %lld is not whole %s blocks", (long long)shape[ndim - 1], rp_dtype_name(dt));
    t->dtype = dt;
    t->ndim = ndim;
    size_t acc = row;
    t->stride[ndim - 1] = rp_dtype_block(dt) == 1 ? (int64_t)rp_dtype_block_bytes(dt) : 0;
    t->shape[ndim - 1] = shape[ndim - 1];
    for (int i = ndim - 2; i >= 0; i--) {
        t->stride[i] = (int64_t)acc;
        t->shape[i] = shape[i];
        if (shape[i] && acc > SIZE_MAX / (size_t)shape[i]) return rp_fail(RP_ERR_RANGE, "tensor: size overflows");
        acc *= (size_t)shape[i];
    }
    for (int i = ndim; i < RP_MAX_DIMS; i++) { t->shape[i] = 1; t->stride[i] = 0; }
    *nbytes = acc;
    return RP_OK;
}

/* Fill a stack view without taking a reference. */
rp_status rp_tensor_init_view(rp_tensor *t, rp_storage *s, size_t offset, rp_dtype dt, int ndim, const int64_t *shape) {
    size_t nbytes;
    RP_TRY(layout(t, dt, ndim, shape, &nbytes));
    if (offset > s->nbytes || nbytes > s->nbytes - offset)
        return rp_fail(RP_ERR_RANGE, "tensor view: %zu bytes at offset %zu past the end of storage (%zu bytes)", nbytes, offset, s->nbytes);
    t->storage = s;
    t->offset = offset;
    return RP_OK;
}

/* Heap view taking a reference. */
rp_status rp_tensor_view(rp_storage *s, size_t offset, rp_dtype dt, int ndim, const int64_t *shape, rp_tensor **out) {
    rp_tensor *t = calloc(1, sizeof *t);
    if (!t) return rp_fail(RP_ERR_NOMEM, "tensor: out of memory");
    rp_status st = rp_tensor_init_view(t, s, offset, dt, ndim, shape);
    if (st != RP_OK) { free(t); return st; }
    rp_storage_retain(s);
    *out = t;
    return RP_OK;
}

/* New contiguous tensor on fresh storage. */
rp_status rp_tensor_new(rp_backend *be, rp_dtype dt, int ndim, const int64_t *shape, rp_tensor **out) {
    rp_tensor probe;
    size_t nbytes;
    RP_TRY(layout(&probe, dt, ndim, shape, &nbytes));
    rp_storage *s;
    RP_TRY(rp_storage_new(be, nbytes, &s));
    rp_status st = rp_tensor_view(s, 0, dt, ndim, shape, out);
    rp_storage_release(s);
    return st;
}

/* Free a heap view. */
void rp_tensor_free(rp_tensor *t) {
    if (!t) return;
    rp_storage_release(t->storage);
    free(t);
}

/* First byte of the view. */
void *rp_tensor_data(const rp_tensor *t) { return (char *)t->storage->data + t->offset; }

/* Element count. */
int64_t rp_tensor_numel(const rp_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

/* Bytes of one innermost row. */
size_t rp_tensor_row_bytes(const rp_tensor *t) { return rp_dtype_row_bytes(t->dtype, t->shape[t->ndim - 1]); }

/* Whether strides are the contiguous ones. */
int rp_tensor_is_contiguous(const rp_tensor *t) {
    if (rp_dtype_block(t->dtype) == 1 && t->stride[t->ndim - 1] != (int64_t)rp_dtype_block_bytes(t->dtype)) return 0;
    int64_t acc = (int64_t)rp_tensor_row_bytes(t);
    for (int i = t->ndim - 2; i >= 0; i--) {
        if (t->shape[i] > 1 && t->stride[i] != acc) return 0;
        acc *= t->shape[i];
    }
    return 1;
}

/* Rows [r0, r1) of the outermost dimension. */
rp_status rp_tensor_narrow(const rp_tensor *t, int64_t r0, int64_t r1, rp_tensor **out) {
    if (r0 < 0 || r1 < r0 || r1 > t->shape[0])
        return rp_fail(RP_ERR_RANGE, "tensor narrow: rows [%lld, %lld) outside [0, %lld)", (long long)r0, (long long)r1, (long long)t->shape[0]);
    rp_tensor *v = malloc(sizeof *v);
    if (!v) return rp_fail(RP_ERR_NOMEM, "tensor: out of memory");
    *v = *t;
    v->shape[0] = r1 - r0;
    v->offset = t->offset + (size_t)(r0 * (t->ndim > 1 ? t->stride[0] : (int64_t)rp_dtype_block_bytes(t->dtype)));
    rp_storage_retain(v->storage);
    *out = v;
    return RP_OK;
}

/* Index i of the outermost dimension. */
rp_status rp_tensor_select(const rp_tensor *t, int64_t i, rp_tensor **out) {
    if (t->ndim == 1) return rp_tensor_narrow(t, i, i + 1, out);
    if (i < 0 || i >= t->shape[0])
        return rp_fail(RP_ERR_RANGE, "tensor select: index %lld outside [0, %lld)", (long long)i, (long long)t->shape[0]);
    rp_tensor *v = malloc(sizeof *v);
    if (!v) return rp_fail(RP_ERR_NOMEM, "tensor: out of memory");
    *v = *t;
    v->offset = t->offset + (size_t)(i * t->stride[0]);
    v->ndim = t->ndim - 1;
    for (int d = 0; d < v->ndim; d++) { v->shape[d] = t->shape[d + 1]; v->stride[d] = t->stride[d + 1]; }
    v->shape[v->ndim] = 0;
    v->stride[v->ndim] = 0;
    rp_storage_retain(v->storage);
    *out = v;
    return RP_OK;
}

/* Bytes of a contiguous tensor. */
size_t rp_tensor_nbytes(const rp_tensor *t) {
    size_t n = rp_tensor_row_bytes(t);
    for (int i = 0; i < t->ndim - 1; i++) n *= (size_t)t->shape[i];
    return n;
}

static rp_status copy_check(const rp_tensor *t, size_t off, size_t nbytes, const char *what) {
    if (!rp_tensor_is_contiguous(t)) return rp_fail(RP_ERR_INVAL, "%s: tensor is not contiguous", what);
    size_t total = rp_tensor_nbytes(t);
    if (off > total || nbytes > total - off)
        return rp_fail(RP_ERR_RANGE, "%s: %zu bytes at offset %zu of a %zu-byte tensor", what, nbytes, off, total);
    return RP_OK;
}

/* Copy out through the backend. */
rp_status rp_tensor_copy_out(const rp_tensor *t, size_t off, void *host_dst, size_t nbytes) {
    RP_TRY(copy_check(t, off, nbytes, "tensor copy out"));
    return rp_backend_copy_to_host(t->storage->backend, host_dst, (const char *)rp_tensor_data(t) + off, nbytes);
}

/* Copy in through the backend. */
rp_status rp_tensor_copy_in(rp_tensor *t, size_t off, const void *host_src, size_t nbytes) {
    RP_TRY(copy_check(t, off, nbytes, "tensor copy in"));
    return rp_backend_copy_from_host(t->storage->backend, (char *)rp_tensor_data(t) + off, host_src, nbytes);
}
