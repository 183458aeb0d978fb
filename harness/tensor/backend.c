/* backend.c: the process-wide backends (created on first use) and op dispatch errors.
 * Invariant: rp_backend_cpu() and rp_backend_ref() return the same object for the life of the process. */
#include "tensor/backend.h"
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tensor/ops_ref.h"

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
    return NULL;
}

/* The error for an op a backend lacks. */
rp_status rp_backend_lacks(const rp_backend *be, const char *op) {
    return rp_fail(RP_ERR_UNSUPPORTED, "backend %s lacks op %s", be ? be->name : "(null)", op);
}
