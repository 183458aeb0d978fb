/* cuda_rt.cu: the CUDA backend's runtime side: starting the device (once per process), device buffers and
 * host copies, the error flag, the scratch buffer and the cuBLAS handle.
 * Invariants: rp_cuda_init runs its body once (pthread_once) and every later call returns the first
 * result with the same message; buffers are zero-filled at allocation (backend.h's contract); the
 * scratch only grows, and is touched only under the backend mutex. */
#include "tensor/cuda/cuda_common.cuh"
#include <cublas_v2.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static rp_status init_status = RP_ERR_UNSUPPORTED;
static char init_msg[512], desc[512];
static cublasHandle_t blas;
static int *flag_dev;
static void *scratch;
static size_t scratch_bytes;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

/* A runtime error as a status naming what failed. */
rp_status rp_cuda_fail(cudaError_t e, const char *what) {
    return rp_fail(e == cudaErrorMemoryAllocation ? RP_ERR_NOMEM : RP_ERR_UNSUPPORTED, "cuda: %s: %s (%s)", what,
                   cudaGetErrorString(e), cudaGetErrorName(e));
}

static void init_body(void) {
    int n = 0;
    const int dev = 0;
    /* A device chosen with cudaSetDevice holds only for the calling thread, and ops come from several (serve's
     * handlers, pool threads): REPRO_CUDA_DEVICE=i becomes CUDA_VISIBLE_DEVICES=i before the runtime starts,
     * so device 0 is the chosen one in every thread. */
    const char *env = getenv("REPRO_CUDA_DEVICE"), *vis = getenv("CUDA_VISIBLE_DEVICES");
    int remapped = 0;
    if (env && *env && vis && *vis) {
        snprintf(init_msg, sizeof init_msg, "cuda: REPRO_CUDA_DEVICE=%s and CUDA_VISIBLE_DEVICES=%s are both set: set only one", env, vis);
        return;
    }
    if (env && *env) {
        char *end;
        long d = strtol(env, &end, 10);
        if (*end || d < 0) {
            snprintf(init_msg, sizeof init_msg, "cuda: REPRO_CUDA_DEVICE=%s is not a device index", env);
            return;
        }
        setenv("CUDA_VISIBLE_DEVICES", env, 1);
        remapped = 1;
    }
    cudaError_t e = cudaGetDeviceCount(&n);
    if (remapped && (e != cudaSuccess || n == 0)) {
        snprintf(init_msg, sizeof init_msg, "cuda: REPRO_CUDA_DEVICE=%s: no such GPU on this machine (%s)", env,
                 e != cudaSuccess ? cudaGetErrorString(e) : "the runtime reports 0 devices");
        return;
    }
    if (e != cudaSuccess || n == 0) {
        snprintf(init_msg, sizeof init_msg, "cuda: no usable GPU on this machine (%s)",
                 e != cudaSuccess ? cudaGetErrorString(e) : "the runtime reports 0 devices");
        return;
    }
    cudaDeviceProp p;
    int driver = 0;
    if ((e = cudaSetDevice(dev)) != cudaSuccess || (e = cudaGetDeviceProperties(&p, dev)) != cudaSuccess ||
        (e = cudaDriverGetVersion(&driver)) != cudaSuccess || (e = cudaMalloc((void **)&flag_dev, 4 * sizeof(int))) != cudaSuccess ||
        (e = cudaMemset(flag_dev, 0, 4 * sizeof(int))) != cudaSuccess) {
        snprintf(init_msg, sizeof init_msg, "cuda: cannot start device %d: %s", dev, cudaGetErrorString(e));
        return;
    }
    if (p.major < 9) {   /* the build carries sm_90 code and compute_90 PTX: nothing an older GPU can run */
        snprintf(init_msg, sizeof init_msg, "cuda: device %d (%s) is sm_%d%d; this build has kernels for sm_90 and newer only "
                 "(rebuild with CUDA_ARCH='-gencode arch=compute_%d%d,code=sm_%d%d')", dev, p.name, p.major, p.minor,
                 p.major, p.minor, p.major, p.minor);
        return;
    }
    cublasStatus_t bs = cublasCreate(&blas);
    if (bs != CUBLAS_STATUS_SUCCESS) {
        snprintf(init_msg, sizeof init_msg, "cuda: cannot start cuBLAS on device %d: %s (status %d)", dev,
                 cublasGetStatusString(bs), (int)bs);
        return;
    }
    snprintf(desc, sizeof desc, "%s (device %d, %.1f GiB, sm_%d%d, driver %d.%d)", p.name, dev,
             (double)p.totalGlobalMem / (1024.0 * 1024 * 1024), p.major, p.minor, driver / 1000, (driver % 1000) / 10);
    init_status = RP_OK;
}

/* Start the device once; later calls repeat the first answer. */
rp_status rp_cuda_init(void) {
    pthread_once(&init_once, init_body);
    if (init_status != RP_OK) return rp_fail(init_status, "%s", init_msg);
    return RP_OK;
}

/* One line about the device. */
const char *rp_cuda_device_desc(void) { return init_status == RP_OK ? desc : init_msg; }

/* A cuBLAS status as a status naming what failed. */
rp_status rp_cuda_blas_status(int s, const char *what) {
    if (s == CUBLAS_STATUS_SUCCESS) return RP_OK;
    return rp_fail(s == CUBLAS_STATUS_ALLOC_FAILED ? RP_ERR_NOMEM : RP_ERR_UNSUPPORTED, "cuda: %s failed: %s (cuBLAS status %d)", what,
                   cublasGetStatusString((cublasStatus_t)s), s);
}

/* The cuBLAS handle. */
void *rp_cuda_cublas(void) { return (void *)blas; }

/* A zero-filled device buffer. */
void *rp_cuda_alloc(rp_backend *be, size_t nbytes) {
    void *p = NULL;
    if (cudaMalloc(&p, nbytes ? nbytes : 1) != cudaSuccess) { cudaGetLastError(); return NULL; }
    if (cudaMemset(p, 0, nbytes ? nbytes : 1) != cudaSuccess) { cudaFree(p); return NULL; }
    return p;
}

/* Release a device buffer (waits for the kernels that may still read it). */
void rp_cuda_free(rp_backend *be, void *p) { if (p) cudaFree(p); }

/* Device to host (waits for every op issued before). */
rp_status rp_cuda_copy_to_host(rp_backend *be, void *host_dst, const void *src, size_t nbytes) {
    if (nbytes) RP_CUDA_TRY(cudaMemcpy(host_dst, src, nbytes, cudaMemcpyDeviceToHost), "copy to host");
    return RP_OK;
}

/* Host to device. */
rp_status rp_cuda_copy_from_host(rp_backend *be, void *dst, const void *host_src, size_t nbytes) {
    if (nbytes) RP_CUDA_TRY(cudaMemcpy(dst, host_src, nbytes, cudaMemcpyHostToDevice), "copy from host");
    return RP_OK;
}

/* The launch check of every kernel (and, with REPRO_CUDA_SYNC=1, a wait that pins a fault on the op). */
rp_status rp_cuda_launched(const char *what) {
    static int sync = -1;
    if (sync < 0) { const char *e = getenv("REPRO_CUDA_SYNC"); sync = e && strcmp(e, "1") == 0; }
    cudaError_t e = cudaGetLastError();
    if (e == cudaSuccess && sync) e = cudaDeviceSynchronize();
    if (e != cudaSuccess) return rp_cuda_fail(e, what);
    return RP_OK;
}

/* Wait for every op issued so far; an asynchronous kernel fault surfaces here. */
rp_status rp_cuda_sync(rp_backend *be) {
    RP_CUDA_TRY(cudaDeviceSynchronize(), "sync");
    return RP_OK;
}

/* The device error flag. */
int *rp_cuda_flag(void) { return flag_dev; }

/* Read and clear the flag. */
rp_status rp_cuda_flag_read(int *raised, int *pos, int *val) {
    int h[4];
    RP_CUDA_TRY(cudaMemcpy(h, flag_dev, sizeof h, cudaMemcpyDeviceToHost), "reading the error flag");
    *raised = h[0];
    *pos = h[1];
    *val = h[2];
    if (h[0]) RP_CUDA_TRY(cudaMemset(flag_dev, 0, sizeof h), "clearing the error flag");
    return RP_OK;
}

/* Grow-only scratch (the caller holds the lock). */
void *rp_cuda_scratch(size_t nbytes) {
    if (nbytes <= scratch_bytes) return scratch;
    if (scratch) cudaFree(scratch);
    scratch = NULL;
    scratch_bytes = 0;
    size_t n = nbytes + nbytes / 4;
    if (cudaMalloc(&scratch, n) != cudaSuccess) { cudaGetLastError(); scratch = NULL; return NULL; }
    scratch_bytes = n;
    return scratch;
}

/* The backend mutex around scratch users. */
void rp_cuda_lock(void) { pthread_mutex_lock(&mu); }
void rp_cuda_unlock(void) { pthread_mutex_unlock(&mu); }
