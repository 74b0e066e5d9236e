/* Tokenizer files: the input is vocab.json, merges.txt,
 * tokenizer_config.json and special_tokens_map.json joined by 0xFF bytes
 * (a byte that never occurs in UTF-8, so no valid file needs it); fewer
 * parts leave the optional files absent. A tokenizer that loads is then
 * used on a prompt, which exercises the tables it built. */
#include <string.h>

#include "harness.h"
#include "tokenizer/clip_tokenizer.h"

#define SEP 0xFF

/* One prompt with words, added tokens, punctuation, digits, accents and CJK
 * (each encode costs as much as the load under coverage instrumentation). */
static const char prompt[] = "<|startoftext|>a photo of a cat, Hello  WORLD!! caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac "
                             "x'll 123<|endoftext|>";

static int run(const uint8_t *data, size_t size) {
    const char *part[4] = {NULL};
    size_t len[4] = {0};
    size_t np = 0, start = 0;
    for (size_t i = 0; i <= size && np < 4; i++) {
        if (i == size || data[i] == SEP) {
            part[np] = (const char *)data + start;
            len[np++] = i - start;
            start = i + 1;
        }
    }
    if (np < 2) return 0;
    cdf_tokenizer_texts tx = {part[0], len[0], part[1], len[1], part[2], len[2], part[3], len[3], "fuzz"};
    cdf_tokenizer *t = NULL;
    cdf_err err = {0};
    if (cdf_tokenizer_load_mem(&t, &tx, &err) != CDF_OK) return 0;
    int64_t ids[77];
    size_t n;
    (void)cdf_tokenizer_encode(t, prompt, ids, 77, &n, &err);
    /* The part after a fifth separator, if any, is a prompt too. */
    if (start < size && np == 4) (void)cdf_tokenizer_encode_len(t, (const char *)data + start, size - start, ids, 77,
                                                                NULL, &err);
    cdf_tokenizer_free(t);
    return 0;
}

const cdf_fuzz_target cdf_fuzz_tokenizer_load = {"tokenizer_load", NULL, run, NULL};
