/* backend_cuda.h: the CUDA backend as seen from the rest of the engine: opening it (it exists only in
 * builds where nvcc was found, RP_CUDA=1, and works only where a GPU is visible at run time) and the line
 * describing its device for a run's provenance. Its op table is rp_backend_ops (backend.h); its kernels
 * live in tensor/cuda/. */
#ifndef RP_BACKEND_CUDA_H
#define RP_BACKEND_CUDA_H
#include "tensor/backend.h"
#include "tensor/backward.h"

/* Whether this build contains the CUDA backend (nvcc was found at build time). */
int rp_backend_cuda_built(void);
/* The process-wide CUDA backend, started on first use; RP_ERR_UNSUPPORTED with the reason (no CUDA in this
 * build, no GPU or driver at run time) otherwise. */
rp_status rp_backend_cuda_open(rp_backend **out);
/* "NVIDIA H100 ... (device 0, 79.1 GiB, sm_90, driver 13.0)" once opened; else why it is unavailable. */
const char *rp_backend_cuda_device(void);
/* The backward op table of the GPU (pointers are cuda buffers; the rp_bwd context may be NULL) in builds with
 * CUDA, NULL otherwise; use it only after rp_backend_cuda_open succeeded. */
const rp_bwd_ops *rp_backend_cuda_bwd(void);

#endif
