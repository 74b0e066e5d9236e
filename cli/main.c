/* cdiffusers: Stable Diffusion text-to-image from diffusers model folders. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cdiffusers.h"
#include "commands.h"

int cli_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("cdiffusers: error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

void cli_dtype(const char *dtype, int *weight_dtype, int *compute_bf16) {
    *weight_dtype = CDF_DTYPE_F32;
    *compute_bf16 = 0;
    if (dtype && strcmp(dtype, "fp16") == 0) *weight_dtype = CDF_DTYPE_F16;
    if (dtype && strcmp(dtype, "bf16") == 0) {
        *weight_dtype = CDF_DTYPE_BF16;
        *compute_bf16 = 1;
    }
}

int main(int argc, char **argv) {
    cli_options o;
    char err[512];
    if (cli_parse(argc, argv, &o, err, sizeof err) != 0) return cli_error("%s", err);
    switch (o.cmd) {
    case CLI_HELP: cli_print_help(o.help_topic); return 0;
    case CLI_VERSION: printf("cdiffusers %s\n", cdf_version()); return 0;
    case CLI_TOKENIZE: return cmd_tokenize(&o);
    case CLI_RUN_COMPONENT: return cmd_run_component(&o);
    case CLI_LIST_SCHEDULERS: return cmd_list_schedulers(&o);
    case CLI_GENERATE: return cmd_generate(&o);
    }
    return 1;
}
