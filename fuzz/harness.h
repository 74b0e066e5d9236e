/* Fuzz harnesses: one per parser of untrusted input.
 *
 * Each harness is a plain function over a byte buffer, so that the same
 * code runs under libFuzzer (fuzz/libfuzzer_main.c, built by CDF_FUZZ=ON or
 * scripts/fuzz.sh) and without it in the normal test suite
 * (tests/test_fuzz_regress.c replays fuzz/corpus/<name>/ and
 * fuzz/crashers/<name>/ through it). A harness never fails on bad input: the
 * parsers must reject it with an error; a crash, a sanitizer report, a leak
 * or an allocation above libFuzzer's malloc limit is the finding. */
#ifndef CDF_FUZZ_HARNESS_H
#define CDF_FUZZ_HARNESS_H

#include <stddef.h>
#include <stdint.h>

typedef struct cdf_fuzz_target {
    const char *name; /* corpus folder name, e.g. "safetensors" */
    /* Loads what the harness needs besides its input (the reference SD1
     * tokenizer, ...) from the reference folder; NULL when nothing. Returns 0
     * on success. Called once, before run. */
    int (*init)(const char *reference_dir);
    /* Feeds one input to the parser(s). Always returns 0 (libFuzzer's rule). */
    int (*run)(const uint8_t *data, size_t size);
    void (*fini)(void); /* frees what init loaded; NULL when nothing */
} cdf_fuzz_target;

extern const cdf_fuzz_target cdf_fuzz_safetensors;    /* safetensors header + tensor table + reads */
extern const cdf_fuzz_target cdf_fuzz_config;         /* config.json -> UNet/VAE/CLIP/scheduler configs */
extern const cdf_fuzz_target cdf_fuzz_tokenizer_load; /* vocab.json, merges.txt, special-token files */
extern const cdf_fuzz_target cdf_fuzz_tokenizer;      /* the SD1/SD2 tokenizers on arbitrary prompt bytes */
extern const cdf_fuzz_target cdf_fuzz_cli;            /* the command-line parser on argv split at NULs */

#endif
