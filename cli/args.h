/* Command-line parsing for the cdiffusers tool, kept free of side effects
 * (no I/O, no globals) so that it can be unit-tested and fuzzed. */
#ifndef CDF_CLI_ARGS_H
#define CDF_CLI_ARGS_H

#include <stddef.h>
#include <stdint.h>

#define CLI_MAX_PROMPTS 64
#define CLI_MAX_SEEDS 64

typedef enum cli_command {
    CLI_GENERATE = 0,
    CLI_TOKENIZE,
    CLI_RUN_COMPONENT,
    CLI_LIST_SCHEDULERS,
    CLI_HELP,
    CLI_VERSION
} cli_command;

typedef struct cli_options {
    cli_command cmd;
    const char *model, *vae, *variant, *dtype, *scheduler, *scheduler_config, *output, *latents, *output_tensor;
    const char *component, *input;
    const char *prompts[CLI_MAX_PROMPTS];
    size_t n_prompts;
    const char *negatives[CLI_MAX_PROMPTS];
    size_t n_negatives;
    uint64_t seeds[CLI_MAX_SEEDS];
    size_t n_seeds;
    int seed_given;
    long steps, batch, height, width, clip_skip, threads;
    double guidance;
    int karras, quiet, vae_tiling, vae_slicing, low_memory;
    long attention_slice;
    long grid_rows, grid_cols;
    const char *help_topic; /* subcommand whose help was asked for */
} cli_options;

/* Parses argv[1..argc-1]. Returns 0, or -1 with a message in err. */
int cli_parse(int argc, char **argv, cli_options *o, char *err, size_t cap);

/* Parses "0,3,5", "0-7" or "0..7" into seeds (at most cap). Returns count or -1. */
int cli_parse_seeds(const char *s, uint64_t *out, size_t cap, char *err, size_t errcap);

#endif
