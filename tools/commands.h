/* commands.h - subcommand entry points. Each returns the process exit code:
 * 0 success, 1 runtime failure (message printed), 2 bad usage. */
#ifndef SK_COMMANDS_H
#define SK_COMMANDS_H

typedef int (*sk_command_fn)(int argc, char **argv);
typedef struct { const char *name; sk_command_fn fn; const char *summary; } sk_command;

int sk_cmd_inspect(int argc, char **argv);
int sk_cmd_generate(int argc, char **argv);
int sk_cmd_decode(int argc, char **argv);
int sk_cmd_encode(int argc, char **argv);
int sk_cmd_encode_text(int argc, char **argv);
int sk_cmd_bench(int argc, char **argv);
int sk_cmd_compare(int argc, char **argv);
int sk_cmd_serve(int argc, char **argv);

#endif
