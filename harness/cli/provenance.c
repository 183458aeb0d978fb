/* provenance.c: collecting a run's provenance. Git is asked through `git -C root ...` (popen, read-only
 * commands); the environment is recorded as JSON with secret-looking values replaced by "***". */
#include "cli/provenance.h"
#include "build_id.h"
#include "lua/compat.h"
#if RP_LUA_51
#include <luajit.h>
#endif
#include "db/registry.h"
#include "tensor/backend_cuda.h"
#include "util/json.h"
#include "util/sha256.h"
#include <cblas.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern char **environ;

static int run_capture(const char *cmd, rp_buf *out) {
    FILE *f = popen(cmd, "r");
    if (!f) return -1;
    char tmp[8192];
    size_t n;
    rp_buf_clear(out);
    while ((n = fread(tmp, 1, sizeof tmp, f)) > 0) rp_buf_append(out, tmp, n);
    int st = pclose(f);
    if (!out->data) rp_buf_append(out, "", 0);
    return st;
}

static void trim(char *s) {
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1])) s[--n] = 0;
}

int rp_env_is_secret(const char *name) {
    static const char *const words[] = {"KEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "AUTH", "CREDENTIAL", "COOKIE", "SESSION", NULL};
    char up[256];
    size_t i;
    for (i = 0; name[i] && name[i] != '=' && i < sizeof up - 1; i++) up[i] = (char)toupper((unsigned char)name[i]);
    up[i] = 0;
    for (int w = 0; words[w]; w++) if (strstr(up, words[w])) return 1;
    return 0;
}

void rp_cpu_model(char *out, size_t n) {
    snprintf(out, n, "unknown cpu");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) == 0) {
            char *c = strchr(line, ':');
            if (c) { snprintf(out, n, "%s", c + 2); trim(out); }
            break;
        }
    }
    fclose(f);
}

rp_status rp_provenance_collect(const char *root, rp_provenance *p) {
    memset(p, 0, sizeof *p);
    rp_buf out = {0};
    char cmd[4400];
    snprintf(p->commit, sizeof p->commit, "unknown");
    snprintf(cmd, sizeof cmd, "git -C '%s' rev-parse HEAD 2>/dev/null", root);
    if (run_capture(cmd, &out) == 0 && out.len >= 40) { snprintf(p->commit, sizeof p->commit, "%s", out.data); trim(p->commit); }
    snprintf(cmd, sizeof cmd, "git -C '%s' status --porcelain --untracked-files=no 2>/dev/null", root);
    if (run_capture(cmd, &out) == 0 && out.len > 0) {
        p->dirty = 1;
        snprintf(cmd, sizeof cmd, "git -C '%s' diff HEAD 2>/dev/null", root);
        if (run_capture(cmd, &out) == 0) {
            uint8_t h[32];
            rp_sha256(out.data, out.len, h);
            rp_sha256_hex(h, p->diff_sha256);
        }
    }
    char gpu[256] = "none";   /* the first GPU's name, driver and memory, when nvidia-smi answers */
    if (run_capture("nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null", &out) == 0 &&
        out.len > 0) {
        snprintf(gpu, sizeof gpu, "%s", out.data);
        gpu[strcspn(gpu, "\n")] = 0;
    }
    rp_buf_free(&out);
    snprintf(p->build_id, sizeof p->build_id, "%s %s %s", RP_GIT_DESCRIBE, __DATE__, __TIME__);
#if RP_LUA_51
    snprintf(p->lua_impl, sizeof p->lua_impl, "%s", LUAJIT_VERSION);
#else
    snprintf(p->lua_impl, sizeof p->lua_impl, "%s", LUA_RELEASE);
#endif
    const char *dev = getenv("REPRO_DEVICE");   /* set by repro run --device */
    rp_backend *gbe;
    int on_gpu = dev && strcmp(dev, "cuda") == 0 && rp_backend_open("cuda", &gbe) == RP_OK;
    snprintf(p->backend, sizeof p->backend, "%s", on_gpu ? "cuda" : dev && strcmp(dev, "ref") == 0 ? "ref" : "cpu");
    char cpu[200];
    rp_cpu_model(cpu, sizeof cpu);
    if (on_gpu) snprintf(p->device, sizeof p->device, "%s", rp_backend_cuda_device());
    else snprintf(p->device, sizeof p->device, "%s (%ld cores)", cpu, sysconf(_SC_NPROCESSORS_ONLN));

    rp_json *env = rp_json_new_object(), *vars = rp_json_new_object();
    rp_json_set(env, "cpu", rp_json_new_string(cpu));
    rp_json_set(env, "blas", rp_json_new_string(openblas_get_config()));   /* version, and the kernels it runs */
    rp_json_set(env, "cores", rp_json_new_number((double)sysconf(_SC_NPROCESSORS_ONLN)));
    rp_json_set(env, "memory_bytes", rp_json_new_number((double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE)));
    rp_json_set(env, "lua", rp_json_new_string(p->lua_impl));
    rp_json_set(env, "sqlite", rp_json_new_string(rp_db_sqlite_version()));
    rp_json_set(env, "gpu", rp_json_new_string(gpu));
    rp_json_set(env, "cuda_backend", rp_json_new_string(rp_backend_cuda_built() ? "built" : "not built (no nvcc at build time)"));
    for (char **e = environ; *e; e++) {
        const char *eq = strchr(*e, '=');
        if (!eq) continue;
        char name[256];
        size_t n = (size_t)(eq - *e) < sizeof name - 1 ? (size_t)(eq - *e) : sizeof name - 1;
        memcpy(name, *e, n);
        name[n] = 0;
        if (strncmp(name, "REPRO_", 6) && strncmp(name, "OPENBLAS_", 9) && strncmp(name, "OMP_", 4) &&
            strncmp(name, "CUDA_", 5) && strcmp(name, "PATH") && strcmp(name, "HOSTNAME") && !rp_env_is_secret(name))
            continue;
        rp_json_set(vars, name, rp_json_new_string(rp_env_is_secret(name) ? "***" : eq + 1));
    }
    rp_json_set(env, "variables", vars);
    rp_status st = rp_json_write(env, &p->env_json, 0);
    rp_json_free(env);
    return st;
}

void rp_provenance_apply(const rp_provenance *p, rp_run_info *info) {
    info->git_commit = p->commit;
    info->git_dirty = p->dirty;
    info->git_diff_sha256 = p->dirty ? p->diff_sha256 : NULL;
    info->build_id = p->build_id;
    info->lua_impl = p->lua_impl;
    info->backend = p->backend;
    info->device = p->device;
    info->env_json = p->env_json.data;
}

void rp_provenance_free(rp_provenance *p) { rp_buf_free(&p->env_json); }
