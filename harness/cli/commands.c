/* commands.c: the command table, collected by the build from RP_COMMAND lines in cmd_*.c files. */
#include "cli/commands.h"
#include <string.h>

#include "commands.inc"

#undef RP_COMMAND
#define RP_COMMAND(n, f, s) {#n, f, s}
static const rp_command_entry table[] = {
#include "commands_table.inc"
    {NULL, NULL, NULL}};

const rp_command_entry *rp_commands(void) { return table; }

const rp_command_entry *rp_command_find(const char *name) {
    for (const rp_command_entry *e = table; e->name; e++)
        if (strcmp(e->name, name) == 0) return e;
    return NULL;
}

int rp_cli_wants_help(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) break;
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) return 1;
    }
    return 0;
}
