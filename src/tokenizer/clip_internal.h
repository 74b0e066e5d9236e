/* The CLIP tokenizer handle (internal: shared by clip_load.c and
 * clip_tokenizer.c). */
#ifndef CDF_TOKENIZER_CLIP_INTERNAL_H
#define CDF_TOKENIZER_CLIP_INTERNAL_H

#include "tokenizer/clip_bpe.h"
#include "tokenizer/clip_tokenizer.h"

/* An "added token" of transformers: split out of the raw text before any
 * clean-up (all special tokens are added tokens, even when they are also
 * ordinary vocabulary entries, like SD2's pad token "!"). */
typedef struct cdf_clip_added {
    char *content;  /* UTF-8, NUL-terminated */
    uint32_t *cps;  /* its code points */
    size_t n_cps;
    int64_t id;
    int lstrip, rstrip, single_word;
} cdf_clip_added;

/* transformers' Trie over the added tokens' code points; node 0 is the root. */
typedef struct cdf_clip_trie_node {
    uint32_t ch;
    int32_t child, sibling; /* -1: none */
    int32_t terminal;       /* a whole added token ends here */
} cdf_clip_trie_node;

struct cdf_tokenizer {
    cdf_clip_bpe bpe;
    cdf_clip_added *added; /* unique contents */
    size_t n_added;
    cdf_clip_trie_node *trie;
    size_t n_trie;
    int64_t bos_id, eos_id, pad_id, unk_id;
    size_t max_length;
};

/* Child of trie node `node` for code point c, or -1. */
static inline int32_t cdf_clip_trie_child(const cdf_tokenizer *t, int32_t node, uint32_t c) {
    for (int32_t k = t->trie[node].child; k >= 0; k = t->trie[k].sibling)
        if (t->trie[k].ch == c) return k;
    return -1;
}

#endif
