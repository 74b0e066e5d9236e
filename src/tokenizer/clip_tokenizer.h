/* CLIP byte-level BPE tokenizer, as transformers' slow CLIPTokenizer without
 * ftfy (the algorithm is in ../shared/reference/README.md section 1).
 *
 * Loaded from a diffusers `tokenizer/` folder: vocab.json, merges.txt,
 * tokenizer_config.json, special_tokens_map.json. Immutable after loading;
 * encoding is thread-safe. */
#ifndef CDF_TOKENIZER_CLIP_TOKENIZER_H
#define CDF_TOKENIZER_CLIP_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

typedef struct cdf_tokenizer cdf_tokenizer;

/* Longest prompt accepted, in bytes of UTF-8 (longer ones are an error). */
#define CDF_TOKENIZER_MAX_PROMPT_BYTES (1u << 20)

cdf_status cdf_tokenizer_load(cdf_tokenizer **out, const char *dir, cdf_err *err);

/* The same from the files' texts held in memory (copied; need not be
 * NUL-terminated). config_json and special_tokens_json may be NULL (the
 * files are optional); `label` (may be NULL) stands for the folder in
 * messages. The size limits of the files apply. */
typedef struct cdf_tokenizer_texts {
    const char *vocab_json;
    size_t vocab_len;
    const char *merges_txt;
    size_t merges_len;
    const char *config_json;         /* tokenizer_config.json */
    size_t config_len;
    const char *special_tokens_json; /* special_tokens_map.json */
    size_t special_tokens_len;
    const char *label;
} cdf_tokenizer_texts;
cdf_status cdf_tokenizer_load_mem(cdf_tokenizer **out, const cdf_tokenizer_texts *texts, cdf_err *err);
void cdf_tokenizer_free(cdf_tokenizer *t);

/* model_max_length (77 for SD) and the special ids. */
size_t cdf_tokenizer_max_length(const cdf_tokenizer *t);
int64_t cdf_tokenizer_bos_id(const cdf_tokenizer *t);
int64_t cdf_tokenizer_eos_id(const cdf_tokenizer *t);
int64_t cdf_tokenizer_pad_id(const cdf_tokenizer *t);

/* tokenizer(prompt, padding="max_length", max_length=max_len, truncation=True).input_ids:
 * ids[max_len] = bos, up to max_len-2 content ids, eos, pad... .
 * *n_untruncated (may be NULL) = len(tokenizer(prompt).input_ids) incl. bos/eos,
 * so callers can warn about truncation. Invalid UTF-8 is an error (with the byte offset). */
cdf_status cdf_tokenizer_encode(const cdf_tokenizer *t, const char *prompt, int64_t *ids, size_t max_len,
                                size_t *n_untruncated, cdf_err *err);

/* The same for a prompt of `len` bytes that may contain NUL characters
 * (Python strings can; the clean-up drops them). */
cdf_status cdf_tokenizer_encode_len(const cdf_tokenizer *t, const char *prompt, size_t len, int64_t *ids,
                                    size_t max_len, size_t *n_untruncated, cdf_err *err);

/* tokenizer.tokenize(prompt): the BPE strings (byte-unicode alphabet, "</w>"
 * word ends), for tests and debugging. Calls fn once per token. */
cdf_status cdf_tokenizer_tokenize(const cdf_tokenizer *t, const char *prompt,
                                  void (*fn)(void *user, const char *token), void *user, cdf_err *err);
cdf_status cdf_tokenizer_tokenize_len(const cdf_tokenizer *t, const char *prompt, size_t len,
                                      void (*fn)(void *user, const char *token), void *user, cdf_err *err);

#endif
