/* backend_cuda.c: the C shim of the CUDA backend: its op table over the kernels of tensor/cuda/ (compiled
 * only when the build defines RP_CUDA, i.e. nvcc was found), and the clear refusal of builds without it.
 * Invariants: the backend is one process-wide object, handed out only after the device started
 * (rp_cuda_init succeeded), so no op ever runs without a GPU; every op slot the table fills is checked
 * against the "ref" backend by tests/test_ops.c when a GPU is present, every backward op (rp_bwd_cuda) against
 * rp_bwd_ref by tests/test_ops_backward.c. */
#include "tensor/backend_cuda.h"
#include <stdio.h>

#ifdef RP_CUDA
#include "tensor/cuda/cuda_ops.h"

static const rp_backend_ops cuda_ops = {
    .host_memory = 0, .alloc = rp_cuda_alloc, .free = rp_cuda_free, .copy_to_host = rp_cuda_copy_to_host,
    .copy_from_host = rp_cuda_copy_from_host, .sync = rp_cuda_sync, .supports_op = rp_cuda_supports_op,
    .matmul = rp_cuda_matmul, .matmul_multi = rp_cuda_matmul_multi, .embed = rp_cuda_embed, .rmsnorm = rp_cuda_rmsnorm,
    .rope = rp_cuda_rope, .attention = rp_cuda_attention, .swiglu = rp_cuda_swiglu, .add = rp_cuda_add,
    .softmax = rp_cuda_softmax, .log_softmax = rp_cuda_log_softmax, .cross_entropy = rp_cuda_cross_entropy,
    .argmax = rp_cuda_argmax, .gather_rows = rp_cuda_gather_rows, .scatter_add_rows = rp_cuda_scatter_add_rows,
    .conv1d_causal = rp_cuda_conv1d_causal, .selective_scan = rp_cuda_selective_scan,
};
static rp_backend cuda_backend = { "cuda", &cuda_ops, NULL, NULL };

/* Built with CUDA. */
int rp_backend_cuda_built(void) { return 1; }

/* The backend once the device started. */
rp_status rp_backend_cuda_open(rp_backend **out) {
    RP_TRY(rp_cuda_init());
    *out = &cuda_backend;
    return RP_OK;
}

/* The device line (or why there is none). */
const char *rp_backend_cuda_device(void) { return rp_cuda_device_desc(); }

/* The GPU's backward table. */
const rp_bwd_ops *rp_backend_cuda_bwd(void) { return &rp_bwd_cuda; }

#else

/* Built without CUDA. */
int rp_backend_cuda_built(void) { return 0; }

/* Always refused: the kernels were not compiled. */
rp_status rp_backend_cuda_open(rp_backend **out) {
    (void)out;
    return rp_fail(RP_ERR_UNSUPPORTED, "backend cuda: this build has no CUDA backend (nvcc was not found when it was built; "
                                       "install the CUDA toolkit and rebuild, or run make CUDA=1 NVCC=/path/to/nvcc)");
}

/* Why there is no device. */
const char *rp_backend_cuda_device(void) { return "none (built without CUDA)"; }

/* No backward table without CUDA. */
const rp_bwd_ops *rp_backend_cuda_bwd(void) { return NULL; }

#endif
