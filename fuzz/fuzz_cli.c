/* The command-line parser: the input split at NUL bytes is argv[1..]
 * (argv[0] is "cdiffusers"), at most 256 arguments. */
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "harness.h"

#define MAX_ARGS 256

static int run(const uint8_t *data, size_t size) {
    /* A NUL-terminated copy: every argument ends at a NUL, the last one too. */
    char *buf = malloc(size + 1);
    if (!buf) return 0;
    memcpy(buf, data, size);
    buf[size] = '\0';
    char *argv[MAX_ARGS + 2];
    int argc = 0;
    argv[argc++] = "cdiffusers";
    for (size_t i = 0; i <= size && argc <= MAX_ARGS;) {
        argv[argc++] = buf + i;
        i += strlen(buf + i) + 1;
    }
    argv[argc] = NULL;
    cli_options o;
    char err[512];
    err[0] = '\0';
    if (cli_parse(argc, argv, &o, err, sizeof err) != 0) {
        if (!err[0] || !memchr(err, '\0', sizeof err)) abort(); /* a failure must say why */
    } else {
        if (o.n_prompts > CLI_MAX_PROMPTS || o.n_negatives > CLI_MAX_PROMPTS || o.n_seeds > CLI_MAX_SEEDS) abort();
    }
    free(buf);
    return 0;
}

const cdf_fuzz_target cdf_fuzz_cli = {"cli", NULL, run, NULL};
