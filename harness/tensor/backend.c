/* backend.c: the process-wide backends (created on first use), op names and support queries, host copies
 * and op dispatch errors.
 * Invariants: rp_backend_cpu() and rp_backend_ref() return the same object for the life of the process;
 * op_names and op_slots have one entry per rp_op, in enum order (checked at compile time by their sizes). */
#include "tensor/backend.h"
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tensor/backend_cuda.h"
#include "tensor/ops_ref.h"
#include "tensor/quant.h"

static rp_backend ref_backend = { "ref", &rp_ref_ops, NULL, NULL };
static rp_backend *cpu_backend;
static pthread_once_t cpu_once = PTHREAD_ONCE_INIT;

static void cpu_init(void) {
    if (rp_backend_cpu_new(0, &cpu_backend) != RP_OK) {
        fprintf(stderr, "repro: cannot start the cpu backend (%s); using the reference backend\n", rp_errmsg());
        cpu_backend = &ref_backend;
    }
}

/* The shared fast CPU backend. */
rp_backend *rp_backend_cpu(void) {
    pthread_once(&cpu_once, cpu_init);
    return cpu_backend;
}

/* The shared reference backend. */
rp_backend *rp_backend_ref(void) { return &ref_backend; }

/* "ref" when REPRO_REFERENCE=1, else "cpu". */
rp_backend *rp_backend_default(void) {
    const char *e = getenv("REPRO_REFERENCE");
    if (e && strcmp(e, "0") != 0 && *e) return rp_backend_ref();
    return rp_backend_cpu();
}

/* Backend by name. */
rp_backend *rp_backend_by_name(const char *name) {
    if (!name) return NULL;
    if (strcmp(name, "cpu") == 0) return rp_backend_cpu();
    if (strcmp(name, "ref") == 0) return rp_backend_ref();
    rp_backend *be = NULL;
    if (strcmp(name, "cuda") == 0 && rp_backend_cuda_open(&be) == RP_OK) return be;
    return NULL;
}

/* Backend by name with the reason when there is none. */
rp_status rp_backend_open(const char *name, rp_backend **out) {
    if (name && strcmp(name, "cuda") == 0) return rp_backend_cuda_open(out);
    rp_backend *be = rp_backend_by_name(name);
    if (!be) return rp_fail(RP_ERR_INVAL, "unknown backend '%s' (valid: cpu, ref, cuda)", name ? name : "(null)");
    *out = be;
    return RP_OK;
}

/* The error for an op a backend lacks. */
rp_status rp_backend_lacks(const rp_backend *be, const char *op) {
    return rp_fail(RP_ERR_UNSUPPORTED, "backend %s lacks op %s", be ? be->name : "(null)", op);
}

static const char *const op_names[] = {
    "matmul", "matmul_multi", "embed", "rmsnorm", "rope", "attention", "swiglu", "add", "softmax", "log_softmax",
    "cross_entropy", "argmax", "gather_rows", "scatter_add_rows", "conv1d_causal", "selective_scan",
};
_Static_assert(sizeof op_names / sizeof op_names[0] == RP_OP_COUNT, "one name per rp_op");

/* Where each op's function pointer sits in the table, to ask whether a backend has it. */
static const size_t op_slots[] = {
    offsetof(rp_backend_ops, matmul), offsetof(rp_backend_ops, matmul_multi), offsetof(rp_backend_ops, embed),
    offsetof(rp_backend_ops, rmsnorm), offsetof(rp_backend_ops, rope), offsetof(rp_backend_ops, attention),
    offsetof(rp_backend_ops, swiglu), offsetof(rp_backend_ops, add), offsetof(rp_backend_ops, softmax),
    offsetof(rp_backend_ops, log_softmax), offsetof(rp_backend_ops, cross_entropy), offsetof(rp_backend_ops, argmax),
    offsetof(rp_backend_ops, gather_rows), offsetof(rp_backend_ops, scatter_add_rows),
    offsetof(rp_backend_ops, conv1d_causal), offsetof(rp_backend_ops, selective_scan),
};
_Static_assert(sizeof op_slots / sizeof op_slots[0] == RP_OP_COUNT, "one slot per rp_op");

/* The op's name. */
const char *rp_op_name(rp_op op) { return (int)op >= 0 && op < RP_OP_COUNT ? op_names[op] : "?"; }

static int has_slot(const rp_backend *be, rp_op op) {
    void (*fn)(void);
    memcpy(&fn, (const char *)be->ops + op_slots[op], sizeof fn);
    return fn != NULL;
}

/* Whether be runs op on these dtypes: a filled slot, then the backend's own answer, else the CPU rule
 * (weights of matmul / matmul_multi / embed: any dequantizable dtype; everything else f32). */
int rp_backend_supports(const rp_backend *be, rp_op op, const rp_dtype *dtypes, int n_dtypes) {
    if (!be || (int)op < 0 || op >= RP_OP_COUNT || !has_slot(be, op)) return 0;
    if (be->ops->supports_op) return be->ops->supports_op(be, op, dtypes, n_dtypes);
    int weights = op == RP_OP_MATMUL || op == RP_OP_MATMUL_MULTI || op == RP_OP_EMBED;
    for (int i = 0; i < n_dtypes; i++)
        if (weights ? !rp_dtype_dequantizable(dtypes[i]) : dtypes[i] != RP_F32) return 0;
    return 1;
}

/* The support check as a status with a message naming backend, op and dtypes. */
rp_status rp_backend_require(const rp_backend *be, rp_op op, const rp_dtype *dtypes, int n_dtypes) {
    if (rp_backend_supports(be, op, dtypes, n_dtypes)) return RP_OK;
    if (!be || (int)op < 0 || op >= RP_OP_COUNT || !has_slot(be, op)) return rp_backend_lacks(be, rp_op_name(op));
    return rp_fail(RP_ERR_UNSUPPORTED, "backend %s lacks op %s for dtype %s", be->name, rp_op_name(op),
                   n_dtypes > 0 ? rp_dtype_name(dtypes[0]) : "(none)");
}

/* Copy out of a backend buffer. */
rp_status rp_backend_copy_to_host(rp_backend *be, void *host_dst, const void *src, size_t nbytes) {
    if (!be->ops->copy_to_host) return rp_backend_lacks(be, "copy_to_host");
    return be->ops->copy_to_host(be, host_dst, src, nbytes);
}

/* Copy into a backend buffer. */
rp_status rp_backend_copy_from_host(rp_backend *be, void *dst, const void *host_src, size_t nbytes) {
    if (!be->ops->copy_from_host) return rp_backend_lacks(be, "copy_from_host");
    return be->ops->copy_from_host(be, dst, host_src, nbytes);
}

/* Wait for the backend. */
rp_status rp_backend_sync(rp_backend *be) { return be->ops->sync ? be->ops->sync(be) : RP_OK; }
