/* Byte-level BPE of the CLIP tokenizer (internal).
 *
 * Strings live once in a pool and are interned in an open-addressing hash
 * table (symbols); merges are a second table keyed by a pair of symbol
 * indices, giving the merge's rank and the symbol of the concatenation.
 * The model is immutable once loaded; cdf_clip_bpe_word only reads it, so
 * any number of threads may encode at once, each with its own scratch. */
#ifndef CDF_TOKENIZER_CLIP_BPE_H
#define CDF_TOKENIZER_CLIP_BPE_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

#define CDF_CLIP_NO_SYM UINT32_MAX

typedef struct cdf_clip_sym {
    uint32_t off, len; /* bytes in the pool */
    uint32_t hash;
    int32_t vocab_id;  /* value in vocab.json, -1 if the string is not a key there */
    int64_t id;        /* what the string converts to: added token, vocab or unk id */
} cdf_clip_sym;

typedef struct cdf_clip_pair {
    uint32_t a, b;   /* symbol indices; a == CDF_CLIP_NO_SYM marks an empty slot */
    uint32_t rank;   /* line order in merges.txt (the last line wins for a repeated pair) */
    uint32_t merged; /* symbol of a + b */
} cdf_clip_pair;

typedef struct cdf_clip_bpe {
    char *pool;
    size_t pool_len, pool_cap;
    cdf_clip_sym *syms;
    size_t n_syms, syms_cap;
    uint64_t *slots; /* hash << 32 | (symbol index + 1); 0 = empty */
    size_t slot_mask;
    cdf_clip_pair *pairs;
    size_t pair_mask, n_pairs;
    /* GPT-2 bytes_to_unicode(): byte -> printable code point, as UTF-8. */
    char byte_utf8[256][2];
    uint8_t byte_len[256];
} cdf_clip_bpe;

cdf_status cdf_clip_bpe_init(cdf_clip_bpe *m, cdf_err *err);
void cdf_clip_bpe_free(cdf_clip_bpe *m);

/* Sizes the tables for about n_syms symbols of pool_bytes in all and
 * n_pairs merges, so that loading does not rehash (optional). */
cdf_status cdf_clip_bpe_reserve(cdf_clip_bpe *m, size_t n_syms, size_t pool_bytes, size_t n_pairs, cdf_err *err);

/* Index of the symbol spelled s[0..len), added if new. */
cdf_status cdf_clip_intern(cdf_clip_bpe *m, const char *s, size_t len, uint32_t *idx, cdf_err *err);
/* Index of an existing symbol, or CDF_CLIP_NO_SYM. */
uint32_t cdf_clip_find(const cdf_clip_bpe *m, const char *s, size_t len);
static inline const char *cdf_clip_sym_str(const cdf_clip_bpe *m, uint32_t i) { return m->pool + m->syms[i].off; }

/* Records merge (a, b) with `rank`; a repeated pair takes the new rank. */
cdf_status cdf_clip_add_merge(cdf_clip_bpe *m, const char *a, size_t al, const char *b, size_t bl, uint32_t rank,
                              cdf_err *err);

/* Rank of merge (a, b), or UINT32_MAX if the pair is no merge. */
uint32_t cdf_clip_merge_rank(const cdf_clip_bpe *m, uint32_t a, uint32_t b);

/* Per-call working memory of cdf_clip_bpe_word (zero-initialise; free when done). */
typedef struct cdf_clip_bpe_scratch {
    char *word;
    size_t word_cap;
    struct cdf_clip_node *nodes;
    size_t nodes_cap;
    struct cdf_clip_heap_entry *heap;
    size_t heap_cap;
} cdf_clip_bpe_scratch;
void cdf_clip_bpe_scratch_free(cdf_clip_bpe_scratch *s);

/* Receives one BPE token: its text (byte-unicode alphabet, UTF-8, not
 * NUL-terminated) and its id. */
typedef cdf_status (*cdf_clip_token_fn)(void *user, const char *tok, size_t len, int64_t id, cdf_err *err);

/* CLIPTokenizer.bpe() of one pre-token (its UTF-8 bytes) followed by the id
 * look-up: byte -> unicode symbols, "</w>" on the last one, then merge the
 * lowest-ranked adjacent pair everywhere, left to right, until none is left.
 * Strings that are no symbol of the model convert to unk_id. */
cdf_status cdf_clip_bpe_word(const cdf_clip_bpe *m, const uint8_t *bytes, size_t n, int64_t unk_id,
                             cdf_clip_bpe_scratch *s, cdf_clip_token_fn fn, void *user, cdf_err *err);

#endif
