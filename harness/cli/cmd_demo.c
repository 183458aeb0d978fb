/* cmd_demo.c: `repro demo [--preset P]`: the main job: the demo preset of every script in
 * experiments/ (each in its own `repro run` process, so one failure does not stop the others),
 * then the report; prints where the report is. Before it starts it prints the plan with the expected
 * duration (each script's declared `seconds` for the preset, measured on an idle 2-core machine), and
 * around each experiment its position, its expected and actual time, and the time left (the declared
 * estimates scaled by how fast this machine has been so far). Exit 1 when any run failed. */
#include "cli/command.h"
#include "cli/run_paths.h"
#include "lua/state.h"
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

RP_COMMAND(demo, rp_cmd_demo, "run the demo preset of every experiment, then write the report");

static int spawn(char *const argv[]) {
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) { execv("/proc/self/exe", argv); _exit(127); }
    int st;
    if (waitpid(pid, &st, 0) < 0) return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* The script's declared seconds for preset (spec.seconds[preset]); -1 when it declares none or does not load. */
static double expected_seconds(const char *script, const char *preset) {
    rp_run run = {0};
    lua_State *L = rp_lua_state_new(rp_project_root(), &run, 1);
    if (!L) return -1;
    double s = -1;
    if (rp_lua_dofile(L, script, 0, 1) == LUA_OK && lua_istable(L, -1)) {
        lua_getfield(L, -1, "seconds");
        if (lua_istable(L, -1)) {
            lua_getfield(L, -1, preset);
            if (lua_type(L, -1) == LUA_TNUMBER) s = lua_tonumber(L, -1);
        }
    }
    lua_close(L);
    return s;
}

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* "1 min 05 s" / "42 s" into buf. */
static const char *dur(double s, char *buf, size_t n) {
    long t = (long)(s + 0.5);
    if (t >= 60) snprintf(buf, n, "%ld min %02ld s", t / 60, t % 60);
    else snprintf(buf, n, "%ld s", t);
    return buf;
}

int rp_cmd_demo(int argc, char **argv) {
    const char *preset = "demo";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            puts("usage: repro demo [--preset NAME]\n"
                 "  Runs the demo preset (or NAME) of every experiment script, then `repro report`. Prints the\n"
                 "  expected duration first (about 5 minutes for the demo preset on an idle 2-core machine)\n"
                 "  and each experiment's progress and the time left as it goes.\n"
                 "exit: 0 all runs and the report succeeded, 1 some failed, 2 usage, 4 no experiments");
            return 0;
        }
        if (!strcmp(argv[i], "--preset") && i + 1 < argc) preset = argv[++i];
        else { fprintf(stderr, "repro demo: unknown argument '%s' (usage: repro demo [--preset NAME])\n", argv[i]); return 2; }
    }
    char pattern[4200];
    snprintf(pattern, sizeof pattern, "%s/experiments/*.lua", rp_project_root());
    glob_t g;
    if (glob(pattern, 0, NULL, &g) != 0) { fprintf(stderr, "repro demo: no experiments in %s\n", pattern); return 4; }
    double *want = calloc(g.gl_pathc, sizeof *want);
    if (!want) { globfree(&g); fprintf(stderr, "repro demo: out of memory\n"); return 1; }
    double total = 0;
    size_t unknown = 0;
    for (size_t i = 0; i < g.gl_pathc; i++) {
        want[i] = expected_seconds(g.gl_pathv[i], preset);
        if (want[i] < 0) unknown++; else total += want[i];
    }
    char b1[32], b2[32], b3[32];
    fprintf(stderr, "repro demo: %zu experiments, preset %s: expected about %s on an idle 2-core machine%s\n", g.gl_pathc, preset,
            dur(total, b1, sizeof b1), unknown ? " (some scripts declare no estimate)" : "");
    int failed = 0;
    double t0 = now_s(), done_want = 0;
    for (size_t i = 0; i < g.gl_pathc; i++) {
        const char *name = strrchr(g.gl_pathv[i], '/') ? strrchr(g.gl_pathv[i], '/') + 1 : g.gl_pathv[i];
        double elapsed = now_s() - t0;
        /* how this machine compares with the estimates so far (1 until something finished) */
        double speed = done_want > 1 ? elapsed / done_want : 1;
        if (want[i] >= 0)
            fprintf(stderr, "== [%zu/%zu] repro run %s --preset %s (expected %s; %s elapsed, about %s left)\n", i + 1, g.gl_pathc,
                    name, preset, dur(want[i] * speed, b1, sizeof b1), dur(elapsed, b2, sizeof b2),
                    dur((total - done_want) * speed, b3, sizeof b3));
        else
            fprintf(stderr, "== [%zu/%zu] repro run %s --preset %s (no estimate; %s elapsed)\n", i + 1, g.gl_pathc, name, preset,
                    dur(elapsed, b2, sizeof b2));
        double ts = now_s();
        char *av[] = {"repro", "run", g.gl_pathv[i], "--preset", (char *)preset, NULL};
        int rc = spawn(av);
        if (want[i] >= 0) done_want += want[i];
        fprintf(stderr, "== [%zu/%zu] %s %s in %s\n", i + 1, g.gl_pathc, name, rc == 0 ? "finished" : "FAILED", dur(now_s() - ts, b1, sizeof b1));
        if (rc != 0) { failed++; fprintf(stderr, "== %s exited with %d\n", g.gl_pathv[i], rc); }
    }
    size_t n_exp = g.gl_pathc;
    globfree(&g);
    free(want);
    char out[4200];
    snprintf(out, sizeof out, "%s/results/report.html", rp_project_root());
    char *rv[] = {"repro", "report", "--out", out, NULL};
    int rc = spawn(rv);
    fprintf(stderr, "repro demo: %zu of %zu experiments finished, %s in all\n", n_exp - (size_t)failed, n_exp, dur(now_s() - t0, b1, sizeof b1));
    if (rc == 0) printf("report: %s (and report.md beside it)\n", out);
    else fprintf(stderr, "repro demo: the report failed (exit %d)\n", rc);
    return failed || rc ? 1 : 0;
}
