/* cmd_demo.c: `repro demo [--preset P]`: the main job: the demo preset of every script in
 * experiments/ (each in its own `repro run` process, so one failure does not stop the others),
 * then the report; prints where the report is. Exit 1 when any run failed. */
#include "cli/command.h"
#include "cli/run_paths.h"
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
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

int rp_cmd_demo(int argc, char **argv) {
    const char *preset = "demo";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            puts("usage: repro demo [--preset NAME]\n  Runs the demo preset (or NAME) of every experiment script, then `repro report`.");
            return 0;
        }
        if (!strcmp(argv[i], "--preset") && i + 1 < argc) preset = argv[++i];
    }
    char pattern[4200];
    snprintf(pattern, sizeof pattern, "%s/experiments/*.lua", rp_project_root());
    glob_t g;
    if (glob(pattern, 0, NULL, &g) != 0) { fprintf(stderr, "repro demo: no experiments in %s\n", pattern); return 4; }
    int failed = 0;
    for (size_t i = 0; i < g.gl_pathc; i++) {
        fprintf(stderr, "== repro run %s --preset %s\n", g.gl_pathv[i], preset);
        char *av[] = {"repro", "run", g.gl_pathv[i], "--preset", (char *)preset, NULL};
        int rc = spawn(av);
        if (rc != 0) { failed++; fprintf(stderr, "== %s exited with %d\n", g.gl_pathv[i], rc); }
    }
    globfree(&g);
    char out[4200];
    snprintf(out, sizeof out, "%s/results/report.html", rp_project_root());
    char *rv[] = {"repro", "report", "--out", out, NULL};
    int rc = spawn(rv);
    if (rc == 0) printf("report: %s (and report.md beside it)\n", out);
    else fprintf(stderr, "repro demo: the report failed (exit %d)\n", rc);
    return failed || rc ? 1 : 0;
}
