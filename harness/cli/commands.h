/* commands.h: lookup in the CLI's command table (built from RP_COMMAND lines). */
#ifndef RP_COMMANDS_H
#define RP_COMMANDS_H
#include "cli/command.h"

typedef struct rp_command_entry { const char *name; rp_command_fn fn; const char *summary; } rp_command_entry;

/* All commands, terminated by a NULL name. */
const rp_command_entry *rp_commands(void);
/* The command called name, or NULL. */
const rp_command_entry *rp_command_find(const char *name);

#endif
