/* blas_core.c: the OpenBLAS kernel check every command runs first (blas_core.h). OpenBLAS picks its kernels
 * when it is loaded, before main, from a table of the CPUs it knows; Debian 12's 0.3.21 does not know
 * recent ones (an Emerald Rapids Xeon, 2026-12-06) and falls back to its Prescott (SSE3) kernels, where an
 * sdpo run spent 92% of its time in sgemm. The only remedy after loading is a fresh process with
 * OPENBLAS_CORETYPE set, so the command re-executes itself with Haswell's kernels (AVX2 + FMA: what the
 * Makefile presets for tests and benchmarks, and what this machine kind's reference figures used). A
 * user's own OPENBLAS_CORETYPE is never overridden, and a run records the variable in its environment.
 * Invariant: at most one re-exec (the variable is set before it), and a failed exec leaves the environment
 * as it was. */
#include "cli/blas_core.h"
#include <cblas.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* Whether OpenBLAS's kernel set (its core name, e.g. "Haswell", "Prescott") uses AVX2 and FMA. */
static int core_is_avx2(const char *core) {
    static const char *const avx2[] = { "haswell", "zen", "skylakex", "cooperlake", "sapphirerapids" };
    for (size_t i = 0; core && i < sizeof avx2 / sizeof avx2[0]; i++)
        if (strcasecmp(core, avx2[i]) == 0) return 1;
    return 0;
}

void rp_blas_core_ensure(char **argv) {
    const char *set = getenv("OPENBLAS_CORETYPE");
    if (set && *set) return;
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) return;
    const char *core = openblas_get_corename();
    if (core_is_avx2(core)) return;
    if (setenv("OPENBLAS_CORETYPE", "Haswell", 1) != 0) return;
    fflush(NULL);
    execv("/proc/self/exe", argv);
    int e = errno;
    unsetenv("OPENBLAS_CORETYPE");
    fprintf(stderr, "repro: note: OpenBLAS runs its %s kernels on this AVX2 CPU (slow matmuls); restarting with "
                    "OPENBLAS_CORETYPE=Haswell failed: %s. Set OPENBLAS_CORETYPE=Haswell yourself to fix it.\n",
            core ? core : "?", strerror(e));
}
