/* Encoding: PreTrainedTokenizer.tokenize (added-token split) around
 * CLIPTokenizer._tokenize (clean-up, regex, BPE), then ids, truncation and
 * padding as tokenizer(prompt, padding="max_length", truncation=True). */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/clip_internal.h"
#include "tokenizer/text_cleanup.h"

size_t cdf_tokenizer_max_length(const cdf_tokenizer *t) { return t->max_length; }
int64_t cdf_tokenizer_bos_id(const cdf_tokenizer *t) { return t->bos_id; }
int64_t cdf_tokenizer_eos_id(const cdf_tokenizer *t) { return t->eos_id; }
int64_t cdf_tokenizer_pad_id(const cdf_tokenizer *t) { return t->pad_id; }

/* ---- transformers' Trie.split, step for step ---------------------------- */

typedef struct split_state {
    size_t start;
    int32_t node;
} split_state;

/* Appends the cut offsets (pairs start, end of each added-token match) of
 * text[0..n) to offs. The lookahead quirks are kept on purpose: which match
 * wins when added tokens overlap is whatever this algorithm decides. */
static cdf_status trie_offsets(const cdf_tokenizer *t, const uint32_t *text, size_t n, size_t **offs, size_t *n_offs,
                               cdf_err *err) {
    split_state *states = cdf_malloc(n + 1, sizeof *states, err);
    unsigned char *drop = cdf_calloc(n + 1, 1, err);
    size_t *o = cdf_malloc(2 * n + 2, sizeof *o, err);
    if (!states || !drop || !o) {
        free(states);
        free(drop);
        free(o);
        return CDF_ERR_OUT_OF_MEMORY;
    }
    size_t ns = 0, no = 0, skip = 0;
    for (size_t cur = 0; cur < n; cur++) {
        if (skip && cur < skip) continue;
        uint32_t c = text[cur];
        int reset = 0;
        for (size_t k = 0; k < ns; k++) {
            size_t start = states[k].start;
            if (t->trie[states[k].node].terminal) {
                size_t end = cur;
                for (size_t l = 0; l < ns; l++) {
                    size_t look = states[l].start, li;
                    int32_t lp = states[l].node;
                    if (look > start) break;
                    li = end = look < start ? cur + 1 : cur;
                    if (t->trie[lp].terminal) {
                        start = look;
                        end = skip = li;
                    }
                    while (li < n) {
                        int32_t next = cdf_clip_trie_child(t, lp, text[li]);
                        if (next < 0) break;
                        lp = next;
                        li++;
                        if (t->trie[lp].terminal) {
                            start = look;
                            end = skip = li;
                        }
                    }
                }
                o[no++] = start;
                o[no++] = end;
                reset = 1;
                break;
            }
            int32_t next = cdf_clip_trie_child(t, states[k].node, c);
            if (next >= 0) states[k].node = next;
            else drop[k] = 1;
        }
        size_t m = 0;
        for (size_t k = 0; k < ns; k++) {
            if (!reset && !drop[k]) states[m++] = states[k];
            drop[k] = 0;
        }
        ns = m;
        if (cur >= skip) {
            int32_t first = cdf_clip_trie_child(t, 0, c);
            if (first >= 0) states[ns++] = (split_state){cur, first};
        }
    }
    for (size_t k = 0; k < ns; k++) {
        if (t->trie[states[k].node].terminal) {
            o[no++] = states[k].start;
            o[no++] = n;
            break;
        }
    }
    free(states);
    free(drop);
    *offs = o;
    *n_offs = no;
    return CDF_OK;
}

/* ---- tokenize ------------------------------------------------------------ */

typedef struct run_ctx {
    const cdf_tokenizer *t;
    cdf_clip_bpe_scratch bpe;
    char *u8;
    size_t u8_cap;
    cdf_clip_token_fn fn;
    void *user;
} run_ctx;

/* One regex match: its UTF-8 bytes through bpe(). */
static cdf_status on_piece(void *user, const uint32_t *cp, size_t n, cdf_err *err) {
    run_ctx *r = user;
    if (4 * n > r->u8_cap) {
        char *b = realloc(r->u8, 4 * n);
        if (!b) return cdf_errf(err, CDF_ERR_OUT_OF_MEMORY, "out of memory encoding a word of %zu characters", n);
        r->u8 = b;
        r->u8_cap = 4 * n;
    }
    size_t len = 0;
    for (size_t i = 0; i < n; i++) len += cdf_utf8_put(cp[i], r->u8 + len);
    return cdf_clip_bpe_word(&r->t->bpe, (const uint8_t *)r->u8, len, r->t->unk_id, &r->bpe, r->fn, r->user, err);
}

static int64_t added_index(const cdf_tokenizer *t, const cdf_u32buf *p) {
    for (size_t i = 0; i < t->n_added; i++)
        if (t->added[i].n_cps == p->n && memcmp(t->added[i].cps, p->v, p->n * sizeof *p->v) == 0) return (int64_t)i;
    return -1;
}

static void lstrip(cdf_u32buf *p) {
    size_t k = 0;
    while (k < p->n && cdf_py_isspace(p->v[k])) k++;
    memmove(p->v, p->v + k, (p->n - k) * sizeof *p->v);
    p->n -= k;
}

static void rstrip(cdf_u32buf *p) {
    while (p->n && cdf_py_isspace(p->v[p->n - 1])) p->n--;
}

/* The flags of added tokens act on their neighbours, in list order, seeing
 * the changes made for earlier tokens (as the Python loop does). */
static cdf_status apply_added_flags(const cdf_tokenizer *t, cdf_u32buf *pcs, size_t np, cdf_err *err) {
    for (size_t i = 0; i < np; i++) {
        int64_t a = added_index(t, &pcs[i]);
        if (a < 0) continue;
        const cdf_clip_added *tok = &t->added[a];
        cdf_u32buf *left = i > 0 ? &pcs[i - 1] : NULL, *right = i + 1 < np ? &pcs[i + 1] : NULL;
        if (tok->rstrip && right && right->n) lstrip(right);
        if (tok->lstrip && left && left->n) rstrip(left);
        if (tok->single_word && left && left->n && left->v[left->n - 1] != ' ') {
            cdf_status st = cdf_u32buf_append(left, pcs[i].v, pcs[i].n, err);
            if (st) return st;
            pcs[i].n = 0;
        } else if (tok->single_word && right && right->n && right->v[0] != ' ') {
            cdf_u32buf joined = {0};
            cdf_status st = cdf_u32buf_append(&joined, pcs[i].v, pcs[i].n, err);
            if (!st) st = cdf_u32buf_append(&joined, right->v, right->n, err);
            if (st) {
                cdf_u32buf_free(&joined);
                return st;
            }
            cdf_u32buf_free(right);
            *right = joined;
            pcs[i].n = 0;
        }
    }
    return CDF_OK;
}

/* tokenizer.tokenize(prompt), each token handed to fn with its id. */
static cdf_status run(const cdf_tokenizer *t, const char *prompt, size_t len, cdf_clip_token_fn fn, void *user,
                      cdf_err *err) {
    if (!t || !prompt) return cdf_errf(err, CDF_ERR_INVALID_ARGUMENT, "tokenizer: NULL %s", t ? "prompt" : "handle");
    if (len > CDF_TOKENIZER_MAX_PROMPT_BYTES)
        return cdf_errf(err, CDF_ERR_INVALID_ARGUMENT, "prompt: longer than the limit of %u bytes",
                        (unsigned)CDF_TOKENIZER_MAX_PROMPT_BYTES);
    cdf_u32buf text = {0}, clean = {0};
    cdf_u32buf *pcs = NULL;
    size_t *offs = NULL, n_offs = 0, np = 0;
    run_ctx r = {.t = t, .fn = fn, .user = user};
    cdf_status st = cdf_utf8_decode(prompt, len, "prompt", &text, err);
    if (!st) st = trie_offsets(t, text.v, text.n, &offs, &n_offs, err);
    if (!st) {
        pcs = cdf_calloc(n_offs + 2, sizeof *pcs, err);
        if (!pcs) st = CDF_ERR_OUT_OF_MEMORY;
    }
    /* cut_text: pieces between consecutive offsets, empty and backwards cuts skipped. */
    for (size_t k = 0, start = 0; !st && k <= n_offs; k++) {
        size_t end = k < n_offs ? offs[k] : text.n;
        if (start >= end) continue;
        st = cdf_u32buf_append(&pcs[np++], text.v + start, end - start, err);
        start = end;
    }
    if (!st) st = apply_added_flags(t, pcs, np, err);
    for (size_t i = 0; !st && i < np; i++) {
        if (!pcs[i].n) continue;
        int64_t a = added_index(t, &pcs[i]);
        if (a >= 0) {
            st = fn(user, t->added[a].content, strlen(t->added[a].content), t->added[a].id, err);
        } else {
            st = cdf_clip_clean(pcs[i].v, pcs[i].n, &clean, err);
            if (!st) st = cdf_clip_pretokenize(clean.v, clean.n, on_piece, &r, err);
        }
    }
    for (size_t i = 0; i < np; i++) cdf_u32buf_free(&pcs[i]);
    free(pcs);
    free(offs);
    free(r.u8);
    cdf_clip_bpe_scratch_free(&r.bpe);
    cdf_u32buf_free(&text);
    cdf_u32buf_free(&clean);
    return st;
}

/* ---- public entry points -------------------------------------------------- */

typedef struct id_list {
    int64_t *v;
    size_t n, cap;
} id_list;

static cdf_status collect_id(void *user, const char *tok, size_t len, int64_t id, cdf_err *err) {
    (void)tok;
    (void)len;
    id_list *l = user;
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 128;
        int64_t *v = realloc(l->v, cap * sizeof *v);
        if (!v) return cdf_errf(err, CDF_ERR_OUT_OF_MEMORY, "out of memory collecting token ids");
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = id;
    return CDF_OK;
}

/* strlen, but stops one past the prompt limit (run() reports that). */
static size_t prompt_len(const char *prompt) {
    return prompt ? strnlen(prompt, CDF_TOKENIZER_MAX_PROMPT_BYTES + 1) : 0;
}

cdf_status cdf_tokenizer_encode(const cdf_tokenizer *t, const char *prompt, int64_t *ids, size_t max_len,
                                size_t *n_untruncated, cdf_err *err) {
    return cdf_tokenizer_encode_len(t, prompt, prompt_len(prompt), ids, max_len, n_untruncated, err);
}

cdf_status cdf_tokenizer_encode_len(const cdf_tokenizer *t, const char *prompt, size_t len, int64_t *ids,
                                    size_t max_len, size_t *n_untruncated, cdf_err *err) {
    if (max_len < 2)
        return cdf_errf(err, CDF_ERR_INVALID_ARGUMENT, "tokenizer: max_len %zu leaves no room for bos and eos",
                        max_len);
    if (!ids) return cdf_errf(err, CDF_ERR_INVALID_ARGUMENT, "tokenizer: NULL ids buffer");
    id_list l = {0};
    cdf_status st = run(t, prompt, len, collect_id, &l, err);
    if (!st) {
        size_t keep = l.n < max_len - 2 ? l.n : max_len - 2; /* truncation side "right" */
        ids[0] = t->bos_id;
        if (keep) memcpy(ids + 1, l.v, keep * sizeof *ids);
        ids[keep + 1] = t->eos_id;
        for (size_t i = keep + 2; i < max_len; i++) ids[i] = t->pad_id;
        if (n_untruncated) *n_untruncated = l.n + 2;
    }
    free(l.v);
    return st;
}

typedef struct str_sink {
    void (*fn)(void *user, const char *token);
    void *user;
    char *buf;
    size_t cap;
} str_sink;

static cdf_status emit_string(void *user, const char *tok, size_t len, int64_t id, cdf_err *err) {
    (void)id;
    str_sink *s = user;
    if (len + 1 > s->cap) {
        char *b = realloc(s->buf, len + 1);
        if (!b) return cdf_errf(err, CDF_ERR_OUT_OF_MEMORY, "out of memory copying a token of %zu bytes", len);
        s->buf = b;
        s->cap = len + 1;
    }
    memcpy(s->buf, tok, len);
    s->buf[len] = '\0';
    s->fn(s->user, s->buf);
    return CDF_OK;
}

cdf_status cdf_tokenizer_tokenize(const cdf_tokenizer *t, const char *prompt,
                                  void (*fn)(void *user, const char *token), void *user, cdf_err *err) {
    return cdf_tokenizer_tokenize_len(t, prompt, prompt_len(prompt), fn, user, err);
}

cdf_status cdf_tokenizer_tokenize_len(const cdf_tokenizer *t, const char *prompt, size_t len,
                                      void (*fn)(void *user, const char *token), void *user, cdf_err *err) {
    if (!fn) return cdf_errf(err, CDF_ERR_INVALID_ARGUMENT, "tokenizer: NULL callback");
    str_sink s = {fn, user, NULL, 0};
    cdf_status st = run(t, prompt, len, emit_string, &s, err);
    free(s.buf);
    return st;
}
