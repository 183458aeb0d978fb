/* cmd_exec.c: `repro exec FILE.lua [ARGS...]`: run a plain Lua script with every repro module available
 * and no run recorded (Lua tests, quick scripts). The script sees its arguments in the global `arg`. */
#include "cli/command.h"
#include "cli/run_paths.h"
#include "lua/state.h"
#include <stdio.h>
#include <string.h>

RP_COMMAND(exec, rp_cmd_exec, "run a Lua script with the repro modules, recording nothing");

int rp_cmd_exec(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        fputs("usage: repro exec FILE.lua [ARGS...]\n  Runs FILE.lua with require(\"repro.*\") available; no run is recorded.\n"
              "exit: 0 ok, 1 Lua error (message with file:line and traceback)\n", argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    rp_run run = {0};
    lua_State *L = rp_lua_state_new(rp_project_root(), &run, 1);
    if (!L) return 1;
    lua_newtable(L);
    for (int i = 1; i < argc; i++) { lua_pushstring(L, argv[i]); lua_rawseti(L, -2, i - 1); }
    lua_setglobal(L, "arg");
    int st = rp_lua_dofile(L, argv[1], 0, 0);
    if (st != LUA_OK) fprintf(stderr, "repro exec: %s\n", lua_tostring(L, -1));
    lua_close(L);
    return st == LUA_OK ? 0 : 1;
}
