#include "tokenizer/clip_bpe.h"

#include <stdlib.h>
#include <string.h>

#define NONE UINT32_MAX

struct cdf_clip_node {
    uint32_t start, end; /* bytes of the symbol in the word buffer; start == NONE: merged away */
    uint32_t prev, next;
    uint32_t sym;        /* NONE if the string is no symbol of the model */
};

struct cdf_clip_heap_entry {
    uint32_t rank, pos; /* pos = node of the left symbol */
    uint32_t a, b;      /* the pair when it was pushed (to skip stale entries) */
};

/* ---- tables ------------------------------------------------------------- */

static uint32_t hash_bytes(const char *s, size_t len) {
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < len; i++) h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}

static size_t hash_pair(uint32_t a, uint32_t b) {
    uint64_t x = ((uint64_t)a << 32 | b) * 0x9E3779B97F4A7C15ull;
    return (size_t)(x ^ (x >> 29));
}

cdf_status cdf_clip_bpe_init(cdf_clip_bpe *m, cdf_err *err) {
    memset(m, 0, sizeof *m);
    m->slot_mask = (1u << 10) - 1;
    m->slots = cdf_calloc(m->slot_mask + 1, sizeof *m->slots, err);
    m->pair_mask = (1u << 10) - 1;
    m->pairs = cdf_malloc(m->pair_mask + 1, sizeof *m->pairs, err);
    if (!m->slots || !m->pairs) {
        cdf_clip_bpe_free(m);
        return CDF_ERR_OUT_OF_MEMORY;
    }
    for (size_t i = 0; i <= m->pair_mask; i++) m->pairs[i].a = NONE;
    /* bytes_to_unicode(): printable Latin-1 bytes stand for themselves, the
     * other 68 get U+0100.. in byte order, so no symbol is white space or a
     * control character. */
    uint32_t next = 256;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        uint32_t c = printable ? (uint32_t)b : next++;
        if (c < 0x80) {
            m->byte_utf8[b][0] = (char)c;
            m->byte_len[b] = 1;
        } else {
            m->byte_utf8[b][0] = (char)(0xC0 | (c >> 6));
            m->byte_utf8[b][1] = (char)(0x80 | (c & 0x3F));
            m->byte_len[b] = 2;
        }
    }
    return CDF_OK;
}

void cdf_clip_bpe_free(cdf_clip_bpe *m) {
    free(m->pool);
    free(m->syms);
    free(m->slots);
    free(m->pairs);
    memset(m, 0, sizeof *m);
}

static cdf_status grow_pairs(cdf_clip_bpe *m, cdf_err *err);

static uint32_t find_hashed(const cdf_clip_bpe *m, const char *s, size_t len, uint32_t h, size_t *slot) {
    size_t i = h & m->slot_mask;
    for (;; i = (i + 1) & m->slot_mask) {
        uint64_t v = m->slots[i];
        if (!v) break;
        if ((uint32_t)(v >> 32) != h) continue;
        const cdf_clip_sym *y = &m->syms[(uint32_t)v - 1];
        if (y->len == len && memcmp(m->pool + y->off, s, len) == 0) {
            *slot = i;
            return (uint32_t)v - 1;
        }
    }
    *slot = i;
    return NONE;
}

uint32_t cdf_clip_find(const cdf_clip_bpe *m, const char *s, size_t len) {
    size_t slot;
    return find_hashed(m, s, len, hash_bytes(s, len), &slot);
}

static cdf_status grow_slots(cdf_clip_bpe *m, cdf_err *err) {
    size_t cap = (m->slot_mask + 1) * 2;
    uint64_t *slots = cdf_calloc(cap, sizeof *slots, err);
    if (!slots) return CDF_ERR_OUT_OF_MEMORY;
    for (size_t k = 0; k < m->n_syms; k++) {
        size_t i = m->syms[k].hash & (cap - 1);
        while (slots[i]) i = (i + 1) & (cap - 1);
        slots[i] = (uint64_t)m->syms[k].hash << 32 | ((uint32_t)k + 1);
    }
    free(m->slots);
    m->slots = slots;
    m->slot_mask = cap - 1;
    return CDF_OK;
}

cdf_status cdf_clip_intern(cdf_clip_bpe *m, const char *s, size_t len, uint32_t *idx, cdf_err *err) {
    uint32_t h = hash_bytes(s, len);
    size_t slot;
    uint32_t k = find_hashed(m, s, len, h, &slot);
    if (k != NONE) {
        *idx = k;
        return CDF_OK;
    }
    if (m->n_syms >= UINT32_MAX - 1 || len >= UINT32_MAX || m->pool_len + len + 1 >= UINT32_MAX)
        return cdf_errf(err, CDF_ERR_OUT_OF_MEMORY, "tokenizer tables exceed 4 GiB");
    if (m->pool_len + len + 1 > m->pool_cap) {
        size_t cap = m->pool_cap ? m->pool_cap : 1 << 16;
        while (cap < m->pool_len + len + 1) cap *= 2;
        char *p = realloc(m->pool, cap);
        if (!p) return cdf_errf(err, CDF_ERR_OUT_OF_MEMORY, "out of memory growing the string pool to %zu bytes", cap);
        m->pool = p;
        m->pool_cap = cap;
    }
    if (m->n_syms == m->syms_cap) {
        size_t cap = m->syms_cap ? m->syms_cap * 2 : 1024;
        cdf_clip_sym *y = realloc(m->syms, cap * sizeof *y);
        if (!y) return cdf_errf(err, CDF_ERR_OUT_OF_MEMORY, "out of memory growing the symbol table");
        m->syms = y;
        m->syms_cap = cap;
    }
    cdf_clip_sym *y = &m->syms[m->n_syms];
    y->off = (uint32_t)m->pool_len;
    y->len = (uint32_t)len;
    y->hash = h;
    y->vocab_id = -1;
    y->id = -1;
    memcpy(m->pool + m->pool_len, s, len);
    m->pool[m->pool_len + len] = '\0';
    m->pool_len += len + 1;
    m->slots[slot] = (uint64_t)h << 32 | ((uint32_t)m->n_syms + 1);
    *idx = (uint32_t)m->n_syms++;
    /* Keep the load factor at or below one half. */
    if (m->n_syms * 2 > m->slot_mask + 1) return grow_slots(m, err);
    return CDF_OK;
}

cdf_status cdf_clip_bpe_reserve(cdf_clip_bpe *m, size_t n_syms, size_t pool_bytes, size_t n_pairs, cdf_err *err) {
    if (n_syms > (1u << 26) || pool_bytes > (1u << 30) || n_pairs > (1u << 26)) return CDF_OK; /* only a hint */
    while (2 * n_syms > m->slot_mask + 1) {
        cdf_status st = grow_slots(m, err);
        if (st) return st;
    }
    while (2 * n_pairs > m->pair_mask + 1) {
        cdf_status st = grow_pairs(m, err);
        if (st) return st;
    }
    if (n_syms > m->syms_cap) {
        cdf_clip_sym *y = realloc(m->syms, n_syms * sizeof *y);
        if (!y) return cdf_errf(err, CDF_ERR_OUT_OF_MEMORY, "out of memory sizing the symbol table");
        m->syms = y;
        m->syms_cap = n_syms;
    }
    if (pool_bytes > m->pool_cap) {
        char *p = realloc(m->pool, pool_bytes);
        if (!p) return cdf_errf(err, CDF_ERR_OUT_OF_MEMORY, "out of memory sizing the string pool");
        m->pool = p;
        m->pool_cap = pool_bytes;
    }
    return CDF_OK;
}

static const cdf_clip_pair *find_pair(const cdf_clip_bpe *m, uint32_t a, uint32_t b) {
    for (size_t i = hash_pair(a, b) & m->pair_mask;; i = (i + 1) & m->pair_mask) {
        const cdf_clip_pair *p = &m->pairs[i];
        if (p->a == NONE) return NULL;
        if (p->a == a && p->b == b) return p;
    }
}

uint32_t cdf_clip_merge_rank(const cdf_clip_bpe *m, uint32_t a, uint32_t b) {
    const cdf_clip_pair *p = find_pair(m, a, b);
    return p ? p->rank : NONE;
}

static cdf_status grow_pairs(cdf_clip_bpe *m, cdf_err *err) {
    size_t cap = (m->pair_mask + 1) * 2;
    cdf_clip_pair *pairs = cdf_malloc(cap, sizeof *pairs, err);
    if (!pairs) return CDF_ERR_OUT_OF_MEMORY;
    for (size_t i = 0; i < cap; i++) pairs[i].a = NONE;
    for (size_t k = 0; k <= m->pair_mask; k++) {
        if (m->pairs[k].a == NONE) continue;
        size_t i = hash_pair(m->pairs[k].a, m->pairs[k].b) & (cap - 1);
        while (pairs[i].a != NONE) i = (i + 1) & (cap - 1);
        pairs[i] = m->pairs[k];
    }
    free(m->pairs);
    m->pairs = pairs;
    m->pair_mask = cap - 1;
    return CDF_OK;
}

cdf_status cdf_clip_add_merge(cdf_clip_bpe *m, const char *a, size_t al, const char *b, size_t bl, uint32_t rank,
                              cdf_err *err) {
    uint32_t ia, ib, iab;
    cdf_status st = cdf_clip_intern(m, a, al, &ia, err);
    if (!st) st = cdf_clip_intern(m, b, bl, &ib, err);
    if (st) return st;
    char small[256];
    char *cat = al + bl <= sizeof small ? small : cdf_malloc(al + bl, 1, err);
    if (!cat) return CDF_ERR_OUT_OF_MEMORY;
    memcpy(cat, a, al);
    memcpy(cat + al, b, bl);
    st = cdf_clip_intern(m, cat, al + bl, &iab, err);
    if (cat != small) free(cat);
    if (st) return st;
    size_t i = hash_pair(ia, ib) & m->pair_mask;
    while (m->pairs[i].a != NONE && !(m->pairs[i].a == ia && m->pairs[i].b == ib)) i = (i + 1) & m->pair_mask;
    if (m->pairs[i].a == NONE) m->n_pairs++;
    m->pairs[i] = (cdf_clip_pair){ia, ib, rank, iab};
    if (m->n_pairs * 2 > m->pair_mask + 1) return grow_pairs(m, err);
    return CDF_OK;
}

/* ---- merging ------------------------------------------------------------ */

void cdf_clip_bpe_scratch_free(cdf_clip_bpe_scratch *s) {
    free(s->word);
    free(s->nodes);
    free(s->heap);
    memset(s, 0, sizeof *s);
}

static int heap_less(const struct cdf_clip_heap_entry *x, const struct cdf_clip_heap_entry *y) {
    return x->rank < y->rank || (x->rank == y->rank && x->pos < y->pos);
}

static void heap_push(struct cdf_clip_heap_entry *h, size_t *n, struct cdf_clip_heap_entry e) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!heap_less(&e, &h[p])) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = e;
}

static struct cdf_clip_heap_entry heap_pop(struct cdf_clip_heap_entry *h, size_t *n) {
    struct cdf_clip_heap_entry top = h[0], last = h[--*n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && heap_less(&h[c + 1], &h[c])) c++;
        if (!heap_less(&h[c], &last)) break;
        h[i] = h[c];
        i = c;
    }
    if (*n) h[i] = last;
    return top;
}

static void push_pair(const cdf_clip_bpe *m, const struct cdf_clip_node *nodes, uint32_t left,
                      struct cdf_clip_heap_entry *h, size_t *n) {
    uint32_t right = nodes[left].next;
    if (right == NONE || nodes[left].sym == NONE || nodes[right].sym == NONE) return;
    const cdf_clip_pair *p = find_pair(m, nodes[left].sym, nodes[right].sym);
    if (p) heap_push(h, n, (struct cdf_clip_heap_entry){p->rank, left, p->a, p->b});
}

static cdf_status grow(void **p, size_t *cap, size_t need, size_t elem, cdf_err *err) {
    if (need <= *cap) return CDF_OK;
    void *q = cdf_malloc(need, elem, err);
    if (!q) return CDF_ERR_OUT_OF_MEMORY;
    free(*p);
    *p = q;
    *cap = need;
    return CDF_OK;
}

static int64_t id_of(const cdf_clip_bpe *m, uint32_t sym, const char *s, size_t len, int64_t unk_id) {
    if (sym == NONE) sym = cdf_clip_find(m, s, len);
    return sym == NONE ? unk_id : m->syms[sym].id;
}

cdf_status cdf_clip_bpe_word(const cdf_clip_bpe *m, const uint8_t *bytes, size_t n, int64_t unk_id,
                             cdf_clip_bpe_scratch *s, cdf_clip_token_fn fn, void *user, cdf_err *err) {
    if (n == 0) return CDF_OK;
    /* CLIPTokenizer seeds its bpe() cache with these two: they come back
     * whole, without "</w>" (their bytes are their own byte-unicode form). */
    static const char *const seeded[] = {"<|startoftext|>", "<|endoftext|>"};
    for (int k = 0; k < 2; k++)
        if (n == strlen(seeded[k]) && memcmp(bytes, seeded[k], n) == 0)
            return fn(user, seeded[k], n, id_of(m, NONE, seeded[k], n, unk_id), err);

    if (n > UINT32_MAX / 8) return cdf_errf(err, CDF_ERR_INVALID_ARGUMENT, "word of %zu bytes is too long", n);
    cdf_status st = grow((void **)&s->word, &s->word_cap, 2 * n + 4, 1, err);
    if (!st) st = grow((void **)&s->nodes, &s->nodes_cap, n, sizeof *s->nodes, err);
    /* n-1 initial pairs plus at most 2 new ones per merge. */
    if (!st) st = grow((void **)&s->heap, &s->heap_cap, 3 * n + 1, sizeof *s->heap, err);
    if (st) return st;
    char *w = s->word;
    struct cdf_clip_node *nodes = s->nodes;
    struct cdf_clip_heap_entry *heap = s->heap;

    size_t wl = 0;
    for (size_t i = 0; i < n; i++) {
        nodes[i].start = (uint32_t)wl;
        memcpy(w + wl, m->byte_utf8[bytes[i]], m->byte_len[bytes[i]]);
        wl += m->byte_len[bytes[i]];
        nodes[i].end = (uint32_t)wl;
        nodes[i].prev = i ? (uint32_t)i - 1 : NONE;
        nodes[i].next = i + 1 < n ? (uint32_t)i + 1 : NONE;
    }
    memcpy(w + wl, "</w>", 4);
    wl += 4;
    nodes[n - 1].end = (uint32_t)wl;
    for (size_t i = 0; i < n; i++) nodes[i].sym = cdf_clip_find(m, w + nodes[i].start, nodes[i].end - nodes[i].start);

    size_t hn = 0;
    for (size_t i = 0; i + 1 < n; i++) push_pair(m, nodes, (uint32_t)i, heap, &hn);

    /* Python merges every occurrence of the best pair, left to right, before
     * it looks at the pairs those merges create; so take the whole batch of
     * the lowest rank off the heap (in position order) before merging. A
     * merge never recreates its own pair, so the batch is complete. The
     * batch is parked in the heap array's tail: pushes during the batch add
     * at most 2 entries per merge, each merge consuming one batch entry. */
    while (hn > 0) {
        uint32_t rank = heap[0].rank, a = heap[0].a, b = heap[0].b;
        size_t nb = 0, cap = s->heap_cap;
        while (hn > 0 && heap[0].rank == rank) {
            struct cdf_clip_heap_entry e = heap_pop(heap, &hn);
            heap[cap - 1 - nb++] = e; /* below hn + pushes: see the bound above */
        }
        for (size_t k = 0; k < nb; k++) {
            uint32_t p = heap[cap - 1 - k].pos;
            if (nodes[p].start == NONE || nodes[p].sym != a) continue;
            uint32_t q = nodes[p].next;
            if (q == NONE || nodes[q].sym != b) continue;
            const cdf_clip_pair *pr = find_pair(m, a, b);
            nodes[p].end = nodes[q].end;
            nodes[p].sym = pr->merged;
            nodes[p].next = nodes[q].next;
            if (nodes[q].next != NONE) nodes[nodes[q].next].prev = p;
            nodes[q].start = NONE;
            if (nodes[p].prev != NONE) push_pair(m, nodes, nodes[p].prev, heap, &hn);
            push_pair(m, nodes, p, heap, &hn);
        }
    }

    for (uint32_t i = 0; i != NONE; i = nodes[i].next) {
        const char *t = w + nodes[i].start;
        size_t len = nodes[i].end - nodes[i].start;
        st = fn(user, t, len, id_of(m, nodes[i].sym, t, len, unk_id), err);
        if (st) return st;
    }
    return CDF_OK;
}
