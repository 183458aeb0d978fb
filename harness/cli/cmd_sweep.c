/* cmd_sweep.c: `repro sweep SCRIPT.lua [--preset P] [--jobs N] [--db PATH] key=v1,v2 ... [seed=1,2,3]`:
 * the cartesian product of the listed values, each point a `repro run` child process, at most N at
 * once (the local process pool). Seeds listed with seed= become --seed, so `repro compare` can
 * aggregate them as mean ± std. Exit 1 when any point failed, 130 when interrupted. */
#include "cli/command.h"
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

RP_COMMAND(sweep, rp_cmd_sweep, "run an experiment over the product of param values, N processes at once");

#define MAX_AXES 16
#define MAX_VALUES 64

typedef struct axis { char key[64]; char *values[MAX_VALUES]; int n; } axis;

static const char *SWEEP_HELP =
    "usage: repro sweep SCRIPT.lua [--preset P] [--jobs N] [--db PATH] key=v1,v2,... [seed=1,2,3]\n"
    "  Runs every combination of the listed values as its own `repro run` (N at once, default 1).\n"
    "exit: 0 all finished, 1 some point failed, 2 bad usage, 130 interrupted\n";

static volatile sig_atomic_t stop;
static void on_signal(int sig) { (void)sig; stop = 1; }

int rp_cmd_sweep(int argc, char **argv) {
    if (rp_cli_wants_help(argc, argv) || argc < 2) { fputs(SWEEP_HELP, argc < 2 ? stderr : stdout); return argc < 2 ? 2 : 0; }
    const char *script = NULL, *preset = NULL, *db = NULL;
    int jobs = 1, naxes = 0;
    axis axes[MAX_AXES];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if ((!strcmp(a, "--preset") || !strcmp(a, "--jobs") || !strcmp(a, "--db")) && i + 1 < argc) {
            if (!strcmp(a, "--preset")) preset = argv[++i];
            else if (!strcmp(a, "--db")) db = argv[++i];
            else if ((jobs = atoi(argv[++i])) < 1) { fprintf(stderr, "repro sweep: --jobs expects a positive integer\n"); return 2; }
        } else if (a[0] == '-') { fprintf(stderr, "repro sweep: unknown option %s\n%s", a, SWEEP_HELP); return 2; }
        else if (!script) script = a;
        else {
            const char *eq = strchr(a, '=');
            if (!eq || eq == a || (size_t)(eq - a) >= sizeof axes[0].key || naxes == MAX_AXES) {
                fprintf(stderr, "repro sweep: expected key=v1,v2,... got '%s'\n", a);
                return 2;
            }
            axis *ax = &axes[naxes++];
            snprintf(ax->key, sizeof ax->key, "%.*s", (int)(eq - a), a);
            ax->n = 0;
            char *vals = strdup(eq + 1), *save = NULL;
            for (char *v = strtok_r(vals, ",", &save); v; v = strtok_r(NULL, ",", &save)) {
                if (ax->n == MAX_VALUES) { fprintf(stderr, "repro sweep: more than %d values for %s\n", MAX_VALUES, ax->key); return 2; }
                ax->values[ax->n++] = v;
            }
            if (!ax->n) { fprintf(stderr, "repro sweep: no values for %s\n", ax->key); return 2; }
        }
    }
    if (!script) { fputs(SWEEP_HELP, stderr); return 2; }
    long total = 1;
    for (int a = 0; a < naxes; a++) total *= axes[a].n;
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    long started = 0, done = 0, failed = 0;
    int running = 0;
    while ((started < total && !stop) || running > 0) {
        if (started < total && !stop && running < jobs) {
            char *av[8 + MAX_AXES];
            char buf[MAX_AXES][512];
            int n = 0;
            av[n++] = "repro"; av[n++] = "run"; av[n++] = (char *)script;
            if (preset) { av[n++] = "--preset"; av[n++] = (char *)preset; }
            if (db) { av[n++] = "--db"; av[n++] = (char *)db; }
            long k = started;
            for (int a = 0; a < naxes; a++) {
                const char *v = axes[a].values[k % axes[a].n];
                k /= axes[a].n;
                if (!strcmp(axes[a].key, "seed")) { av[n++] = "--seed"; av[n++] = (char *)v; }
                else { snprintf(buf[a], sizeof buf[a], "%.63s=%.400s", axes[a].key, v); av[n++] = buf[a]; }
            }
            av[n] = NULL;
            pid_t pid = fork();
            if (pid == 0) {
                signal(SIGINT, SIG_DFL); signal(SIGTERM, SIG_DFL);
                execv("/proc/self/exe", av);
                _exit(127);
            }
            if (pid < 0) { perror("repro sweep: fork"); break; }
            started++;
            running++;
            continue;
        }
        int st;
        pid_t pid = wait(&st);
        if (pid < 0) break;
        running--;
        done++;
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) failed++;
        fprintf(stderr, "repro sweep: %ld/%ld done, %ld failed\n", done, total, failed);
    }
    if (stop) { fprintf(stderr, "repro sweep: interrupted after %ld of %ld points\n", done, total); return 130; }
    return failed ? 1 : 0;
}
