/* The cdiffusers subcommands. Each returns the process exit status. */
#ifndef CDF_CLI_COMMANDS_H
#define CDF_CLI_COMMANDS_H

#include "args.h"

int cmd_generate(const cli_options *o);
int cmd_tokenize(const cli_options *o);
int cmd_run_component(const cli_options *o);
int cmd_list_schedulers(const cli_options *o);
void cli_print_help(const char *topic);

/* Prints "cdiffusers: error: <msg>" to stderr and returns 1. */
int cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Resolves --dtype into weight storage / compute settings. */
void cli_dtype(const char *dtype, int *weight_dtype, int *compute_bf16);

/* Default model folder when --model is not given (the bundled model). */
const char *cli_default_model(void);

#endif
