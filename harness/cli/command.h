/* command.h: how a CLI command joins `repro`. A file harness/<dir>/cmd_<name>.c (or plugins/<p>/cmd_*.c)
 * holds, at the start of a line:
 *     RP_COMMAND(generate, rp_cmd_generate, "generate text from a model");
 * and defines int rp_cmd_generate(int argc, char **argv) (argv[0] is the command name; it returns the
 * process exit code, handles --help itself). The build collects those lines into the command table, so
 * adding a command never edits a shared file. */
#ifndef RP_COMMAND_H
#define RP_COMMAND_H

typedef int (*rp_command_fn)(int argc, char **argv);
#define RP_COMMAND(name, fn, summary) int fn(int argc, char **argv)

/* Whether argv holds -h or --help (the usual first check of a command). */
int rp_cli_wants_help(int argc, char **argv);

#endif
