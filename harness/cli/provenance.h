/* provenance.h: where a run came from: the full git commit, dirty flag and a hash of the diff, the build,
 * the Lua implementation, backend and device, and the environment with secret-looking variables masked. */
#ifndef RP_PROVENANCE_H
#define RP_PROVENANCE_H
#include "db/registry.h"
#include "util/buf.h"

typedef struct rp_provenance {
    char commit[64], diff_sha256[72], build_id[128], lua_impl[64], backend[32], device[256];
    int dirty;
    rp_buf env_json;
} rp_provenance;

/* Collect provenance for the checkout at root (git errors leave commit "unknown"). */
rp_status rp_provenance_collect(const char *root, rp_provenance *p);
/* Fill the provenance fields of a run_info from p (pointers into p). */
void rp_provenance_apply(const rp_provenance *p, rp_run_info *info);
void rp_provenance_free(rp_provenance *p);
/* Whether an environment variable's name looks like it holds a secret (KEY, TOKEN, SECRET, PASSWORD...). */
int rp_env_is_secret(const char *name);
/* The CPU's model name from /proc/cpuinfo. */
void rp_cpu_model(char *out, size_t n);

#endif
