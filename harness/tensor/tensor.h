/* tensor.h: the engine's one tensor type: views (dtype, shape, byte strides, offset) on refcounted storage
 * that a backend owns. The model's weights, the session's activations, KV cache and logits, and the op
 * tests all use it. Storage either owns its bytes (allocated by its backend) or, on a backend with host
 * memory, wraps bytes someone else keeps alive (an mmapped model file): then no byte is copied and release
 * is the wrapper's business. Host code reads and writes a tensor's bytes only through rp_tensor_copy_out /
 * rp_tensor_copy_in (a memcpy on the CPU backends).
 * Invariants: a view never outlives its storage's bytes (each view holds one reference); shapes are
 * row-major, outermost first, shape[ndim-1] innermost; for quantized dtypes the innermost dimension is
 * stored as whole blocks and its stride is meaningless (rows are addressed with stride[ndim-2]). */
#ifndef RP_TENSOR_H
#define RP_TENSOR_H
#include <stddef.h>
#include <stdint.h>
#include "tensor/dtype.h"
#include "util/err.h"

#define RP_MAX_DIMS 4

struct rp_backend;

typedef struct rp_storage {
    int refcount;
    struct rp_backend *backend;   /* who owns / can compute on these bytes */
    void *data;
    size_t nbytes;
    int owned;                    /* 1: freed through free_fn at refcount 0; 0: wrapped, left alone */
    void (*free_fn)(struct rp_backend *, void *);   /* the backend's free, captured at allocation */
} rp_storage;

typedef struct rp_tensor {
    rp_storage *storage;
    rp_dtype dtype;
    int ndim;
    int64_t shape[RP_MAX_DIMS];
    int64_t stride[RP_MAX_DIMS];  /* bytes */
    size_t offset;                /* bytes from storage->data */
} rp_tensor;

/* New storage of nbytes owned by backend be (zero-filled). */
rp_status rp_storage_new(struct rp_backend *be, size_t nbytes, rp_storage **out);
/* Storage wrapping host bytes kept alive elsewhere (e.g. an mmapped file); never freed by us. Only backends
 * with host memory can wrap (others: RP_ERR_UNSUPPORTED; allocate and rp_tensor_copy_in instead). */
rp_status rp_storage_wrap(struct rp_backend *be, void *data, size_t nbytes, rp_storage **out);
/* Take one more reference. */
void rp_storage_retain(rp_storage *s);
/* Drop one reference; the last one frees owned bytes. NULL is fine. */
void rp_storage_release(rp_storage *s);

/* A contiguous tensor of the given shape on fresh storage of backend be. */
rp_status rp_tensor_new(struct rp_backend *be, rp_dtype dt, int ndim, const int64_t *shape, rp_tensor **out);
/* A contiguous view over existing storage at byte offset (checked against the storage size). */
rp_status rp_tensor_view(rp_storage *s, size_t offset, rp_dtype dt, int ndim, const int64_t *shape, rp_tensor **out);
/* Free the view and drop its storage reference. NULL is fine. */
void rp_tensor_free(rp_tensor *t);
/* Fill a stack tensor struct as a contiguous view (no reference taken: the caller keeps s alive).
 * Used in hot loops, where allocation is not allowed. */
rp_status rp_tensor_init_view(rp_tensor *t, rp_storage *s, size_t offset, rp_dtype dt, int ndim, const int64_t *shape);
/* Pointer to the first byte of the view. */
void *rp_tensor_data(const rp_tensor *t);
/* Number of elements. */
int64_t rp_tensor_numel(const rp_tensor *t);
/* Whether rows are densely packed (strides are those of a contiguous tensor). */
int rp_tensor_is_contiguous(const rp_tensor *t);
/* Bytes of one innermost row (quantized: whole blocks). */
size_t rp_tensor_row_bytes(const rp_tensor *t);
/* A view of rows [r0, r1) of the outermost dimension (no copy, takes a reference). */
rp_status rp_tensor_narrow(const rp_tensor *t, int64_t r0, int64_t r1, rp_tensor **out);
/* A view of index i of the outermost dimension, one dimension less (no copy, takes a reference); a 1-D
 * tensor gives a 1-element 1-D view. */
rp_status rp_tensor_select(const rp_tensor *t, int64_t i, rp_tensor **out);
/* Bytes of a contiguous tensor (whole blocks for quantized dtypes). */
size_t rp_tensor_nbytes(const rp_tensor *t);
/* Copy nbytes from byte offset off of a contiguous tensor to host memory, through its backend. */
rp_status rp_tensor_copy_out(const rp_tensor *t, size_t off, void *host_dst, size_t nbytes);
/* Copy nbytes of host memory into a contiguous tensor at byte offset off, through its backend. */
rp_status rp_tensor_copy_in(rp_tensor *t, size_t off, const void *host_src, size_t nbytes);

#endif
