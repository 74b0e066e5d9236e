/* The tokenizer on arbitrary prompt bytes (invalid UTF-8, NULs, control
 * characters, added tokens, very long words): the reference SD1 and SD2
 * tokenizer folders are loaded once; every input is encoded by both (ids,
 * as the pipeline calls it) and tokenized into BPE strings by SD1. */
#include <stdio.h>

#include "harness.h"
#include "tokenizer/clip_tokenizer.h"

/* libFuzzer calls a harness through a plain function pointer, so the loaded
 * tokenizers live here between calls (harness code only; the library keeps
 * no globals). */
static cdf_tokenizer *sd1, *sd2;

static int init(const char *ref) {
    char path[4096];
    cdf_err err = {0};
    snprintf(path, sizeof path, "%s/tokenizer/clip-vit-large-patch14", ref);
    if (cdf_tokenizer_load(&sd1, path, &err) != CDF_OK) {
        fprintf(stderr, "fuzz_tokenizer: %s\n", err.msg);
        return -1;
    }
    snprintf(path, sizeof path, "%s/tokenizer/sd2", ref);
    if (cdf_tokenizer_load(&sd2, path, &err) != CDF_OK) {
        fprintf(stderr, "fuzz_tokenizer: %s\n", err.msg);
        return -1;
    }
    return 0;
}

static void fini(void) {
    cdf_tokenizer_free(sd1);
    cdf_tokenizer_free(sd2);
    sd1 = sd2 = NULL;
}

static void ignore(void *user, const char *token) {
    (void)user;
    (void)token;
}

static int run(const uint8_t *data, size_t size) {
    int64_t ids[77];
    size_t n1 = 0, n2 = 0;
    cdf_err err = {0};
    const char *p = (const char *)data;
    const cdf_status s1 = cdf_tokenizer_encode_len(sd1, p, size, ids, 77, &n1, &err);
    const cdf_status s2 = cdf_tokenizer_encode_len(sd2, p, size, ids, 77, &n2, &err);
    (void)cdf_tokenizer_tokenize_len(sd1, p, size, ignore, NULL, &err);
    /* Both tokenizers accept exactly the same texts (valid UTF-8 within the limit). */
    if ((s1 == CDF_OK) != (s2 == CDF_OK)) __builtin_trap();
    if (s1 == CDF_OK && n1 < 2) __builtin_trap();
    return 0;
}

const cdf_fuzz_target cdf_fuzz_tokenizer = {"tokenizer", init, run, fini};
