/* blas_core.h: makes sure OpenBLAS runs kernels this CPU runs fast, before a command starts (blas_core.c). */
#ifndef RP_BLAS_CORE_H
#define RP_BLAS_CORE_H

/* Where OPENBLAS_CORETYPE is unset, the CPU has AVX2 and FMA, and OpenBLAS chose kernels without them,
 * re-executes this program once (argv as given) with OPENBLAS_CORETYPE=Haswell; returns only when it did
 * not (nothing to do, or the exec failed: then with a note on stderr and the environment as it was). */
void rp_blas_core_ensure(char **argv);
#endif
