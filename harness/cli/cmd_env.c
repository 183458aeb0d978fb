/* cmd_env.c: `repro env [--json]`: what a run would record about this machine and checkout. */
#include "cli/command.h"
#include "cli/provenance.h"
#include "cli/run_paths.h"
#include "lua/state.h"
#include "util/json.h"
#include <stdio.h>
#include <string.h>

RP_COMMAND(env, rp_cmd_env, "show the provenance a run records (commit, build, device, environment)");

int rp_cmd_env(int argc, char **argv) {
    if (rp_cli_wants_help(argc, argv)) {
        puts("usage: repro env [--json]\n  Prints the git commit, dirty flag, build, Lua, backend, device and environment\n"
             "  (secret-looking variables masked) that `repro run` records.");
        return 0;
    }
    int as_json = argc > 1 && !strcmp(argv[1], "--json");
    rp_provenance p;
    rp_provenance_collect(rp_project_root(), &p);
    if (as_json) {
        rp_json *o = rp_json_new_object(), *env = NULL;
        rp_json_set(o, "commit", rp_json_new_string(p.commit));
        rp_json_set(o, "dirty", rp_json_new_bool(p.dirty));
        rp_json_set(o, "diff_sha256", p.dirty ? rp_json_new_string(p.diff_sha256) : rp_json_new_null());
        rp_json_set(o, "build", rp_json_new_string(p.build_id));
        rp_json_set(o, "lua", rp_json_new_string(p.lua_impl));
        rp_json_set(o, "backend", rp_json_new_string(p.backend));
        rp_json_set(o, "device", rp_json_new_string(p.device));
        if (rp_json_parse(p.env_json.data, p.env_json.len, &env) == RP_OK) rp_json_set(o, "environment", env);
        rp_buf b = {0};
        rp_json_write(o, &b, 1);
        puts(b.data);
        rp_buf_free(&b);
        rp_json_free(o);
    } else {
        printf("commit   %s%s\n", p.commit, p.dirty ? " (dirty)" : "");
        if (p.dirty) printf("diff     sha256 %s\n", p.diff_sha256);
        printf("build    %s\nlua      %s\nbackend  %s\ndevice   %s\nenv      %s\n", p.build_id, p.lua_impl, p.backend, p.device, p.env_json.data);
    }
    rp_provenance_free(&p);
    return 0;
}
