/* main.c: the `repro` entry point: dispatches to a command from the table; `repro --help` lists them.
 * Exit codes: 0 ok, 1 failure (failed run, regression), 2 usage or bad parameter, 3 bad input file,
 * 4 missing file or I/O, 5 network, 6 database, 130 interrupted. */
#include "cli/blas_core.h"
#include "cli/commands.h"
#include "build_id.h"
#include <stdio.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f, "repro: reproduce ML papers' numbers; every run logged, every figure regenerable.\n\n"
               "usage: repro COMMAND [ARGS...]   (repro COMMAND --help for a command's options)\n\ncommands:\n");
    for (const rp_command_entry *e = rp_commands(); e->name; e++) fprintf(f, "  %-10s %s\n", e->name, e->summary);
    fprintf(f, "\nenvironment: REPRO_DB (registry, default results/repro.db), REPRO_MIRROR (asset mirror folder),\n"
               "REPRO_CACHE (asset cache, default ~/.cache/repro), REPRO_ROOT (project root, default bin/..)\n");
}

int main(int argc, char **argv) {
    rp_blas_core_ensure(argv);
    if (argc < 2) { usage(stderr); return 2; }
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "help") == 0) {
        if (argc > 2 && strcmp(argv[1], "help") == 0) {
            const rp_command_entry *e = rp_command_find(argv[2]);
            if (e) { char *a[] = {argv[2], "--help", NULL}; return e->fn(2, a); }
        }
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0) { printf("repro %s\n", RP_GIT_DESCRIBE); return 0; }
    const rp_command_entry *e = rp_command_find(argv[1]);
    if (!e) {
        fprintf(stderr, "repro: unknown command '%s'\n\n", argv[1]);
        usage(stderr);
        return 2;
    }
    return e->fn(argc - 1, argv + 1);
}
